// Meters: the project's devices, and a meter's page over seed 002's open API: current values with
// their times (/dt/open/v1/instance?ids=), a uPlot chart of one or more numeric Stream attributes
// (/dt/open/v1/instance/attribute/{id} with start and downsample), the raw table and a CSV file.

import uPlot from '/console/vendor/uPlot.esm.js';
import {api, listAll} from '../api.js';
import {download, errorBox, field, fill, h, table} from '../dom.js';
import {csvCell, formatTime} from '../format.js';
import {t} from '../i18n.js';
import {controlSection} from './control.js';

export const RANGES = ['1h-ago', '6h-ago', '24h-ago', '7d-ago', '30d-ago'];
export const DOWNSAMPLES = ['', '1m-avg', '5m-avg', '1h-avg', '1m-last', '1h-last', '1dc-last'];
const RAW_ROWS = 500;

export function typeName(deviceType) {
  return t(deviceType === 1 ? 'type.water' : deviceType === 2 ? 'type.electricity' : 'type.other');
}

export async function renderList({view, project}) {
  fill(view, h('h1', {}, t('nav.meters')), h('p', {}, t('loading')));
  const devices = await listAll('/api/v1/devices/', {project_id: project.id});
  const meters = devices.filter((d) => d.device_type);
  fill(view, h('h1', {}, t('nav.meters')),
    meters.length ? table(t('meters.caption', {count: meters.length}),
      [t('meters.name'), t('meters.key'), t('meters.type'), t('meters.status'), t('meters.lastseen')],
      meters.map((d) => [
        h('a', {href: `#/meter/${d.id}`}, d.name || d.device_key), d.device_key, typeName(d.device_type),
        h('span', {class: d.online ? 'ok' : 'off'}, t(d.online ? 'online' : 'offline')),
        formatTime(d.last_seen, project.timezone)]))
      : h('p', {}, t('meters.none')));
}

function seconds(key) {
  const value = Number(key);
  return key.length >= 13 ? value / 1000 : value;
}

async function loadSeries(attribute, {start, downsample}) {
  const {body} = await api(`/dt/open/v1/instance/attribute/${attribute.id}`,
    {query: {start, downsample}});
  const points = new Map();
  for (const series of body.data.value || []) {
    for (const [key, value] of Object.entries(series.dps)) {
      points.set(seconds(key), value === null || value === 'NaN' ? null : Number(value));
    }
  }
  return points;
}

export async function renderMeter({view, project, params}) {
  const device = (await api(`/api/v1/devices/${params[0]}`)).body;
  const zone = project.timezone;
  const title = h('h1', {}, `${device.name || device.device_key} · ${device.device_key}`);
  fill(view, title, h('p', {}, t('loading')));
  if (device.project_id !== project.id) {
    fill(view, title, errorBox(t('meter.otherproject', {project: device.project_id})));
    return;
  }
  if (!device.instance_id) {
    fill(view, title, errorBox(t('meter.noinstance')));
    return;
  }
  const instance = (await api('/dt/open/v1/instance', {query: {ids: device.instance_id}})).body.data[0];
  const attrs = instance.attr || [];
  const currentTable = (list) => table(t('meter.current'),
    [t('attr.name'), t('attr.value'), t('attr.unit'), t('attr.kind'), t('attr.sampled'),
      t('attr.received')],
    list.map((a) => [a.displayname && a.displayname !== a.name ? `${a.displayname} (${a.name})` : a.name,
      a.value === '' ? '—' : a.value, a.unit || '', a.attrtype, formatTime(a.stime, zone),
      formatTime(a.atime, zone)]),
    {id: 'current-values'});
  const current = h('div', {}, currentTable(attrs));

  // Reverse control: the State attributes, re-read after each change (or on Refresh), with the
  // current values above them.
  const control = h('div', {id: 'control-slot'});
  async function loadControl(message) {
    const fresh = (await api('/dt/open/v1/instance', {query: {ids: device.instance_id}})).body.data[0];
    fill(current, currentTable(fresh.attr || []));
    fill(control, controlSection(fresh, zone, loadControl));
    if (message) fill(control.querySelector('#control-message'), h('p', {class: 'ok'}, message));
  }
  fill(control, controlSection(instance, zone, loadControl));

  const numeric = attrs.filter((a) => a.attrtype === 'Stream' && a.datatype === 'Number');
  const checks = h('fieldset', {class: 'checks'}, h('legend', {}, t('meter.attributes')),
    numeric.map((a, index) => h('label', {class: 'inline'},
      h('input', {type: 'checkbox', value: String(a.id), checked: index === 0,
        'data-name': a.name}), a.displayname || a.name)));
  const range = h('select', {id: 'range'},
    RANGES.map((r) => h('option', {value: r}, t(`range.${r}`))));
  range.value = '24h-ago';
  const downsample = h('select', {id: 'downsample'},
    DOWNSAMPLES.map((d) => h('option', {value: d}, d ? d : t('downsample.raw'))));
  downsample.value = '5m-avg';
  const show = h('button', {type: 'submit'}, t('meter.show'));
  const csv = h('button', {type: 'button', id: 'meter-csv', disabled: true}, t('csv.download'));
  const form = h('form', {class: 'controls', 'aria-label': t('meter.chart')},
    checks, field(t('meter.range'), range), field(t('meter.downsample'), downsample), show, csv);
  const chartBox = h('div', {class: 'chart', id: 'chart', role: 'img', 'aria-label': t('meter.chart')});
  const status = h('div', {role: 'status', 'aria-live': 'polite', id: 'chart-status'});
  const raw = h('div', {id: 'raw'});
  fill(view, title,
    h('p', {class: 'muted'}, t('meter.summary', {type: typeName(device.device_type),
      state: t(device.online ? 'online' : 'offline'), zone})),
    current, control,
    h('h2', {}, t('meter.chart')), form, status, chartBox,
    h('p', {class: 'hint'}, t('meter.zoomhint')),
    h('h2', {}, t('meter.raw')), raw);
  if (!numeric.length) {
    fill(status, h('p', {}, t('meter.nostream')));
    form.hidden = true;
    return;
  }

  let plot = null;
  let rows = [];
  let names = [];
  async function draw() {
    const chosen = numeric.filter((a) => checks.querySelector(`input[value="${a.id}"]`).checked);
    if (!chosen.length) {
      fill(status, errorBox(t('meter.pickone')));
      return;
    }
    fill(status, h('p', {}, t('loading')));
    show.disabled = true;
    try {
      const loaded = await Promise.all(chosen.map((a) => loadSeries(a,
        {start: range.value, downsample: downsample.value})));
      const times = [...new Set(loaded.flatMap((m) => [...m.keys()]))].sort((a, b) => a - b);
      const data = [times, ...loaded.map((m) => times.map((x) => (m.has(x) ? m.get(x) : null)))];
      names = chosen.map((a) => a.displayname || a.name);
      rows = times.map((x, i) => [x, ...loaded.map((_, s) => data[s + 1][i])]);
      if (plot) plot.destroy();
      chartBox.replaceChildren();
      const count = times.length;
      fill(status, h('p', {id: 'point-count', 'data-points': String(count)},
        t('meter.points', {count})));
      csv.disabled = count === 0;
      if (count) {
        const colors = ['#1f6feb', '#d9480f', '#2b8a3e', '#862e9c', '#c92a2a'];
        plot = new uPlot({
          width: Math.max(280, chartBox.clientWidth || 600), height: 300,
          tzDate: (ts) => uPlot.tzDate(new Date(ts * 1000), zone),
          // 24-hour clock and ISO dates on the axes, in both languages
          fmtDate: (tpl) => uPlot.fmtDate(tpl.replace('{h}:{mm}:{ss}{aa}', '{HH}:{mm}:{ss}')
            .replace('{h}:{mm}{aa}', '{HH}:{mm}').replace('{h}{aa}', '{HH}:00')
            .replace('{M}/{D}/{YY}', '{YYYY}-{MM}-{DD}').replace('{M}/{D}', '{MM}-{DD}')),
          series: [{label: t('attr.time')}, ...names.map((name, i) => ({
            label: name, stroke: colors[i % colors.length], width: 2, spanGaps: true}))],
          axes: [{}, {}],
        }, data, chartBox);
      }
      renderRaw();
    } catch (err) {
      fill(status, errorBox(t('error.load', {message: err.message})));
    } finally {
      show.disabled = false;
    }
  }
  function renderRaw() {
    const shown = rows.slice(-RAW_ROWS).reverse();
    fill(raw, rows.length > RAW_ROWS ? h('p', {class: 'muted'},
      t('meter.rawcut', {shown: RAW_ROWS, count: rows.length})) : null,
    table(t('meter.raw'), [t('attr.time'), ...names],
      shown.map(([x, ...values]) => [formatTime(x * 1000, zone),
        ...values.map((v) => (v === null ? '' : String(v)))]), {id: 'raw-table', class: 'bare'}));
  }
  form.addEventListener('submit', (event) => { event.preventDefault(); draw(); });
  csv.addEventListener('click', () => {
    const lines = [['time', 'epoch_seconds', ...names].map(csvCell).join(',')];
    for (const [x, ...values] of rows) {
      lines.push([formatTime(x * 1000, zone), x, ...values].map(csvCell).join(','));
    }
    download(new Blob([`\ufeff${lines.join('\r\n')}\r\n`], {type: 'text/csv'}),
      `twinbill-${device.device_key}-${range.value}.csv`);
  });
  new ResizeObserver(() => {
    if (plot && chartBox.clientWidth) plot.setSize({width: chartBox.clientWidth, height: 300});
  }).observe(chartBox);
  await draw();
}
