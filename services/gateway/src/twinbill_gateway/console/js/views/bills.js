// Bills (seed 000 history/time): filters, the table, and the CSV export the API makes (format=csv).

import {api} from '../api.js';
import {download, errorBox, field, fieldError, fill, h, table} from '../dom.js';
import {formatLocal, localDate} from '../format.js';
import {t} from '../i18n.js';

// history/time's own device_type codes: 10 all, 0 electricity, 1 water.
const TYPES = [['10', 'all'], ['0', 'type.electricity'], ['1', 'type.water']];
const WM = [['', 'all'], ['自来水表', 'wm.tap'], ['纯净水表', 'wm.purified']];
const STATUSES = [['', 'all'], ['issued', 'bill.issued'], ['void', 'bill.void']];

function select(id, options) {
  return h('select', {id}, options.map(([value, key]) => h('option', {value}, t(key))));
}

function filename(response, fallback) {
  const header = response.headers.get('Content-Disposition') || '';
  return header.match(/filename="([^"]+)"/)?.[1] || fallback;
}

export async function render({view, project}) {
  const zone = project.timezone;
  const start = h('input', {id: 'bills-start_date', type: 'date', value: localDate(zone, -31), required: true});
  const end = h('input', {id: 'bills-end_date', type: 'date', value: localDate(zone, 1), required: true});
  const type = select('bills-device_type', TYPES);
  const wm = select('bills-wm_type', WM);
  const meter = h('input', {id: 'bills-device_id', autocomplete: 'off'});
  const building = h('input', {id: 'bills-building', autocomplete: 'off'});
  const status = select('bills-status', STATUSES);
  const results = h('div', {id: 'bills-results', 'aria-live': 'polite'});
  const exportButton = h('button', {type: 'button', id: 'bills-csv'}, t('bills.export'));

  function query() {
    return {project_id: project.id, start_date: start.value, end_date: end.value,
      device_type: type.value, wm_type: wm.value, device_id: meter.value.trim()};
  }
  function check() {
    for (const id of ['start_date', 'end_date', 'device_type', 'wm_type', 'device_id']) fieldError(`bills-${id}`, '');
    if (!start.value || !end.value) {
      fieldError(start.value ? 'bills-end_date' : 'bills-start_date', t('required'));
      return false;
    }
    if (end.value < start.value) {
      fieldError('bills-end_date', t('bills.endbeforestart'));
      return false;
    }
    return true;
  }
  function showError(err) {
    for (const [name, message] of Object.entries(err.fields || {})) fieldError(`bills-${name}`, message);
    fill(results, errorBox(t('error.load', {message: err.message})));
  }
  async function load() {
    if (!check()) return;
    fill(results, h('p', {}, t('loading')));
    try {
      const {body} = await api('/api/v1/scheduler/history/time/', {query: query()});
      const wanted = building.value.trim().toLowerCase();
      const bills = body.data.filter((b) => (!status.value || (b.status || 'issued') === status.value)
        && (!wanted || (b.house_address || []).slice(0, 2).join(' ').toLowerCase().includes(wanted)));
      fill(results, bills.length ? table(t('bills.caption', {count: bills.length, zone}),
        [t('bills.meter'), t('bills.address'), t('bills.residents'), t('bills.period'),
          t('bills.opening'), t('bills.closing'), t('bills.charge'), t('bills.status'), ''],
        bills.map((b) => [b.device_id, (b.house_address || []).filter(Boolean).join(' / '),
          (b.residents || []).map((r) => r.name).join(', '),
          `${formatLocal(b.from_time)} – ${formatLocal(b.to_time)}`,
          b.previous_reading_data, b.reading_data, b.charge,
          t(b.kind === 'credit_note' ? 'bill.credit' : (b.status === 'void' ? 'bill.void' : 'bill.issued')),
          h('a', {href: `#/bill/${b.id}`, class: 'button', 'aria-label': t('bills.printlabel',
            {meter: b.device_id, period: `${formatLocal(b.from_time)} – ${formatLocal(b.to_time)}`})},
          t('bills.print'))]),
        {id: 'bills-table'}) : h('p', {}, t('bills.none')));
    } catch (err) {
      showError(err);
    }
  }
  exportButton.addEventListener('click', async () => {
    if (!check()) return;
    exportButton.disabled = true;
    try {
      const response = await api('/api/v1/scheduler/history/time/',
        {query: {...query(), format: 'csv'}, raw: true});
      const blob = await response.blob();
      download(blob, filename(response, `twinbill-bills-project${project.id}.csv`));
    } catch (err) {
      showError(err);
    } finally {
      exportButton.disabled = false;
    }
  });
  const form = h('form', {class: 'controls', 'aria-label': t('bills.filters'), novalidate: true},
    field(t('bills.from'), start), field(t('bills.to'), end), field(t('meters.type'), type),
    field(t('bills.wm'), wm), field(t('bills.meter'), meter), field(t('bills.building'), building),
    field(t('bills.status'), status),
    h('div', {class: 'actions'}, h('button', {type: 'submit'}, t('bills.apply')), exportButton));
  form.addEventListener('submit', (event) => { event.preventDefault(); load(); });
  fill(view, h('h1', {}, t('nav.bills')), form,
    h('p', {class: 'hint'}, t('bills.hint', {zone})), results);
  await load();
}
