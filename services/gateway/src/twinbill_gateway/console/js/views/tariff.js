// The tariff editor (POST /api/v1/tariffs/, PUT /api/v1/tariffs/{id}) with a live preview of what
// a consumption costs across the blocks. The preview is priced by billing's own domain code
// (POST /api/v1/tariffs/preview, the same pricing a bill goes through): the page does no pricing.
// Seasons, reset dates and rounding are kept as stored (the API edits them); this page edits the
// prices, blocks, dates, standing charge and accumulation period.

import {api} from '../api.js';
import {errorBox, field, fieldError, fill, h, table} from '../dom.js';
import {formatTime, localDate, zonedIso} from '../format.js';
import {t} from '../i18n.js';

const KEPT = ['description', 'seasons', 'reset_month', 'reset_day', 'timezone', 'rounding', 'rounding_mode'];
const FIELDS = ['name', 'device_type', 'water_meter_kind', 'kind', 'unit_price', 'blocks', 'effective_from',
  'effective_to', 'standing_charge', 'accumulation_period', 'consumption', 'period_start', 'period_end'];

function option(value, label) {
  return h('option', {value}, label);
}

function blockRow(block, onChange, onRemove, index) {
  const upTo = h('input', {id: `tariff-block-${index}-up_to`, inputmode: 'decimal', size: 8,
    value: block.up_to ?? '', autocomplete: 'off', 'aria-label': t('tariffedit.upto', {n: index + 1})});
  const price = h('input', {id: `tariff-block-${index}-price`, inputmode: 'decimal', size: 8,
    value: block.price ?? '', autocomplete: 'off', 'aria-label': t('tariffedit.blockprice', {n: index + 1})});
  for (const input of [upTo, price]) input.addEventListener('input', onChange);
  return h('tr', {}, h('td', {}, String(index + 1)), h('td', {}, upTo), h('td', {}, price),
    h('td', {}, h('button', {type: 'button', class: 'secondary', onclick: onRemove,
      'aria-label': t('tariffedit.removeblock', {n: index + 1})}, '−')));
}

/** The local date (YYYY-MM-DD in the zone) of an ISO instant, '' for none. */
function fromLocal(iso, zone) {
  return iso ? formatTime(iso, zone).slice(0, 10) : '';
}

export async function renderEditor({view, project, params, notify}) {
  const zone = project.timezone;
  const creating = params[0] === 'new';
  const tariff = creating
    ? {name: '', device_type: 1, water_meter_kind: 'tap', kind: 'tiered', unit_price: null,
      blocks: [{up_to: '10', price: ''}, {up_to: null, price: ''}], effective_from: null, effective_to: null,
      standing_charge: '0', accumulation_period: 'billing_period'}
    : (await api(`/api/v1/tariffs/${params[0]}`)).body;
  if (!creating && tariff.project_id !== project.id) {
    fill(view, errorBox(t('tariffedit.otherproject', {project: tariff.project_id})));
    return;
  }
  const name = h('input', {id: 'tariff-name', value: tariff.name || '', maxlength: '200'});
  const deviceType = h('select', {id: 'tariff-device_type', disabled: !creating},
    option('1', t('type.water')), option('2', t('type.electricity')));
  deviceType.value = String(tariff.device_type);
  const wmKind = h('select', {id: 'tariff-water_meter_kind', disabled: !creating},
    option('', t('all')), option('tap', t('wm.tap')), option('purified', t('wm.purified')));
  wmKind.value = tariff.water_meter_kind || '';
  const kind = h('select', {id: 'tariff-kind'}, option('flat', t('tariff.flat')), option('tiered', t('tariff.tiered')));
  kind.value = tariff.kind;
  const unitPrice = h('input', {id: 'tariff-unit_price', inputmode: 'decimal', value: tariff.unit_price ?? '',
    autocomplete: 'off'});
  const from = h('input', {id: 'tariff-effective_from', type: 'date',
    value: tariff.effective_from ? fromLocal(tariff.effective_from, zone) : localDate(zone)});
  const to = h('input', {id: 'tariff-effective_to', type: 'date', value: fromLocal(tariff.effective_to, zone)});
  const standing = h('input', {id: 'tariff-standing_charge', inputmode: 'decimal', value: tariff.standing_charge ?? '0'});
  const accumulation = h('select', {id: 'tariff-accumulation_period'},
    ['billing_period', 'month', 'quarter', 'year'].map((p) => option(p, t(`tariffedit.acc.${p}`))));
  accumulation.value = tariff.accumulation_period || 'billing_period';
  let blocks = (tariff.blocks || []).map((b) => ({...b}));
  const blockBody = h('tbody', {});
  const blockTable = h('div', {class: 'table-wrap', id: 'tariff-blocks'},
    h('table', {class: 'bare'}, h('caption', {}, t('tariffedit.blocks')),
      h('thead', {}, h('tr', {}, [t('printbill.block'), t('tariffedit.uptohead'), t('tariffedit.price'), '']
        .map((x) => h('th', {scope: 'col'}, x)))), blockBody),
    h('span', {class: 'field-error', id: 'tariff-blocks-error', role: 'alert'}),
    h('button', {type: 'button', class: 'secondary', id: 'tariff-addblock', onclick: () => {
      readBlocks();
      blocks.splice(Math.max(0, blocks.length - 1), 0, {up_to: '', price: ''});
      drawBlocks();
      schedule();
    }}, t('tariffedit.addblock')),
    h('p', {class: 'hint'}, t('tariffedit.blockshint')));
  const consumption = h('input', {id: 'tariff-consumption', inputmode: 'decimal', value: '25', autocomplete: 'off'});
  const month = localDate(zone).slice(0, 7);
  const previewFrom = h('input', {id: 'tariff-period_start', type: 'date', value: `${month}-01`});
  const previewTo = h('input', {id: 'tariff-period_end', type: 'date', value: nextMonth(month)});
  const preview = h('div', {id: 'tariff-preview', 'aria-live': 'polite'});
  const message = h('div', {id: 'tariff-message', 'aria-live': 'polite'});
  const save = h('button', {type: 'submit'}, t(creating ? 'task.create' : 'save'));

  function nextMonth(text) {
    const [y, m] = text.split('-').map(Number);
    return m === 12 ? `${y + 1}-01-01` : `${y}-${String(m + 1).padStart(2, '0')}-01`;
  }
  function readBlocks() {
    blocks = blocks.map((_, i) => ({
      up_to: document.getElementById(`tariff-block-${i}-up_to`)?.value.trim() || null,
      price: document.getElementById(`tariff-block-${i}-price`)?.value.trim() || ''}));
  }
  function drawBlocks() {
    fill(blockBody, blocks.map((b, i) => blockRow(b, schedule, () => {
      readBlocks();
      blocks.splice(i, 1);
      drawBlocks();
      schedule();
    }, i)));
  }
  function showKind() {
    const tiered = kind.value === 'tiered';
    unitPrice.closest('.field').hidden = tiered;
    blockTable.hidden = !tiered;
    wmKind.closest('.field').hidden = deviceType.value !== '1';
  }
  function definition() {
    readBlocks();
    const tiered = kind.value === 'tiered';
    const body = {name: name.value.trim(), kind: kind.value,
      unit_price: tiered ? null : unitPrice.value.trim() || null,
      blocks: tiered ? blocks.map((b) => ({up_to: b.up_to, price: b.price})) : [],
      effective_from: from.value ? zonedIso(from.value, zone) : null,
      effective_to: to.value ? zonedIso(to.value, zone) : null,
      standing_charge: standing.value.trim() || '0', accumulation_period: accumulation.value};
    if (deviceType.value === '1') body.water_meter_kind = wmKind.value || null;
    for (const key of KEPT) if (tariff[key] !== undefined && tariff[key] !== null) body[key] = tariff[key];
    if (creating) body.timezone = undefined;
    return body;
  }
  function showErrors(fields, box) {
    const unplaced = [];
    for (const id of FIELDS) fieldError(`tariff-${id}`, '');
    for (const [key, text] of Object.entries(fields || {})) {
      const id = key.split(/[.[]/)[0];
      if (FIELDS.includes(id) && document.getElementById(`tariff-${id}-error`)) {
        const slot = document.getElementById(`tariff-${id}-error`);
        slot.textContent = slot.textContent ? `${slot.textContent} ${key}: ${text}` : (key === id ? text : `${key}: ${text}`);
        document.getElementById(`tariff-${id}`)?.setAttribute('aria-invalid', 'true');
      } else {
        unplaced.push(`${key}: ${text}`);
      }
    }
    if (box && unplaced.length) box.append(h('ul', {class: 'error'}, unplaced.map((x) => h('li', {}, x))));
  }
  let seq = 0;
  let timer = null;
  function schedule() {
    clearTimeout(timer);
    timer = setTimeout(updatePreview, 300);
  }
  async function updatePreview() {
    const mine = ++seq;
    const body = {...definition(), project_id: project.id, consumption: consumption.value.trim(),
      period_start: previewFrom.value ? zonedIso(previewFrom.value, zone) : null,
      period_end: previewTo.value ? zonedIso(previewTo.value, zone) : null,
      effective_from: previewFrom.value ? zonedIso(previewFrom.value, zone) : null, effective_to: null};
    try {
      const {body: charge} = await api('/api/v1/tariffs/preview', {method: 'POST', body});
      if (mine !== seq) return;
      showErrors({});
      const unit = deviceType.value === '1' ? 'm³' : 'kWh';
      fill(preview, table(t('tariffedit.previewcaption', {consumption: charge.consumption, unit}),
        [t('printbill.block'), t('printbill.blockrange'), t('printbill.quantity'), t('printbill.unitprice'),
          t('printbill.amount')],
        [...charge.lines.map((line) => [line.block ? String(line.block) : '—',
          line.block ? (line.upper === null ? t('printbill.above', {lower: line.lower, unit})
            : t('printbill.range', {lower: line.lower, upper: line.upper, unit})) : t('printbill.flat'),
          `${line.quantity} ${unit}`, line.unit_price, line.amount]),
        ...charge.charges.map((c) => ['—', t('printbill.standing', {share: c.share}), '', c.per_period, c.amount])],
        {id: 'preview-lines'}),
      h('p', {class: 'big'}, t('tariffedit.previewtotal'), ' ', h('span', {id: 'preview-total'}, charge.amount)));
    } catch (err) {
      if (mine !== seq || err.status === 401) return;
      const box = errorBox(t('tariffedit.nopreview', {message: err.message}));
      fill(preview, box);
      showErrors(err.fields, preview);
    }
  }
  for (const control of [name, kind, unitPrice, from, to, standing, accumulation, consumption, previewFrom,
    previewTo, deviceType, wmKind]) {
    control.addEventListener(control.tagName === 'SELECT' ? 'change' : 'input', () => {
      showKind();
      schedule();
    });
  }
  const form = h('form', {class: 'card', novalidate: true, 'aria-labelledby': 'tariff-title'},
    h('h1', {id: 'tariff-title'}, creating ? t('tariffedit.new') : `${t('edit')}: ${tariff.name || tariff.id}`),
    h('div', {class: 'grid'},
      h('div', {},
        field(t('tariff.name'), name), field(t('meters.type'), deviceType), field(t('bills.wm'), wmKind),
        field(t('tariff.kind'), kind), field(t('tariffedit.unitprice'), unitPrice), blockTable,
        field(t('tariffedit.standing'), standing), field(t('tariffedit.accumulation'), accumulation),
        field(t('tariff.from'), from, {hint: t('tariffedit.datehint', {zone})}), field(t('tariff.to'), to),
        tariff.seasons?.length ? h('p', {class: 'hint'}, t('tariffedit.seasonskept')) : null),
      h('section', {class: 'preview', 'aria-labelledby': 'preview-title'},
        h('h2', {id: 'preview-title'}, t('tariffedit.preview')),
        field(t('tariffedit.consumption'), consumption),
        field(t('tariffedit.periodstart'), previewFrom), field(t('tariffedit.periodend'), previewTo),
        h('p', {class: 'hint'}, t('tariffedit.previewhint')), preview)),
    message,
    h('div', {class: 'actions'}, save, h('a', {href: '#/tariffs', class: 'button secondary'}, t('back'))));
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    fill(message);
    save.disabled = true;
    const body = definition();
    try {
      if (creating) {
        const created = await api('/api/v1/tariffs/', {method: 'POST',
          body: {...body, project_id: project.id, device_type: Number(deviceType.value)}});
        notify(t('tariffedit.created', {name: body.name || created.body.id}));
        location.hash = `#/tariff/${created.body.id}`;
      } else {
        await api(`/api/v1/tariffs/${tariff.id}`, {method: 'PUT', body});
        fill(message, h('p', {class: 'ok', role: 'status'}, t('tariffedit.saved')));
      }
    } catch (err) {
      if (err.status === 401) return;
      const box = errorBox(t('task.notsaved', {message: err.message}));
      fill(message, box);
      showErrors(err.fields, message);
    } finally {
      save.disabled = false;
    }
  });
  fill(view, form);
  drawBlocks();
  showKind();
  await updatePreview();
}
