// One bill as a resident receives it (GET /api/v1/bills/{id}): address, residents, meter, period,
// readings (each segment when the meter was exchanged), the tariff's block lines and charges, the
// total. The page prints on its own (print CSS hides the console around it): the browser's
// "Save as PDF" makes the document.

import {api} from '../api.js';
import {errorBox, fill, h, table} from '../dom.js';
import {formatTime} from '../format.js';
import {t} from '../i18n.js';
import {typeName} from './meters.js';

// a bill's own device_type: 1 water, 2 electricity (the registry's codes)
function meterType(bill) {
  const type = typeName(bill.device_type);
  return bill.water_meter_kind ? `${type} (${t(`wm.${bill.water_meter_kind}`)})` : type;
}

function unitOf(bill) {
  return bill.device_type === 1 ? 'm³' : bill.device_type === 2 ? 'kWh' : '';
}

function status(bill) {
  if (bill.kind === 'credit_note') return t('bill.credit');
  return t(bill.status === 'void' ? 'bill.void' : 'bill.issued');
}

function source(value) {
  return value ? t(`source.${value}`) : '';
}

function fact(label, value, id) {
  return [h('dt', {}, label), h('dd', id ? {id} : {}, value)];
}

function blockRange(line, unit) {
  if (line.block === 0) return t('printbill.flat');
  const lower = line.lower ?? '0';
  return line.upper === null ? t('printbill.above', {lower, unit})
    : t('printbill.range', {lower, upper: line.upper, unit});
}

function tariffName(bill, id) {
  return (bill.charge_detail?.tariffs || []).find((x) => x.id === id)?.name || '';
}

export async function render({view, project, params}) {
  const {body: bill} = await api(`/api/v1/bills/${encodeURIComponent(params[0])}`);
  const zone = bill.timezone || project.timezone;
  const unit = unitOf(bill);
  const when = (value) => formatTime(value, zone);
  const detail = bill.charge_detail || {};
  const segments = bill.segments || [];
  const exchanged = segments.length > 1 || (bill.flags || []).includes('exchange');
  const title = h('h1', {}, t('printbill.title', {meter: bill.device_key}));
  if (bill.project_id !== project.id) {
    fill(view, title, errorBox(t('printbill.otherproject', {project: bill.project_id})));
    return;
  }
  const address = (bill.house_address || []).filter(Boolean).join(' / ');
  const residents = (bill.residents || []).map((r) => (r.cellphone ? `${r.name} (${r.cellphone})` : r.name));
  const readings = table(t('printbill.readings'),
    [t('printbill.opening'), t('printbill.closing'), t('printbill.multiplier'), t('printbill.consumption')],
    segments.map((s) => [
      h('span', {}, `${s.opening_reading} `, h('small', {class: 'muted'}, `${when(s.opening_time)} · ${source(s.opening_source)}`)),
      h('span', {}, `${s.closing_reading} `, h('small', {class: 'muted'}, `${when(s.closing_time)} · ${source(s.closing_source)}`)),
      `×${s.multiplier}`, `${s.consumption} ${unit}`]),
    {id: 'bill-readings', class: 'bare'});
  const lines = (detail.lines || []).map((line) => [
    [tariffName(bill, line.tariff_id), line.season].filter(Boolean).join(' · '),
    line.block === 0 ? '—' : String(line.block), blockRange(line, unit),
    `${line.quantity} ${unit}`, line.unit_price, line.amount]);
  const standing = (detail.charges || []).map((c) => [tariffName(bill, c.tariff_id), '—',
    t('printbill.standing', {share: c.share}), '', c.per_period, c.amount]);
  const charges = table(t('printbill.lines'),
    [t('printbill.tariff'), t('printbill.block'), t('printbill.blockrange'), t('printbill.quantity'),
      t('printbill.unitprice'), t('printbill.amount')],
    [...lines, ...standing], {id: 'bill-lines', class: 'bare'});
  const windows = (detail.accumulation || []).map((w) => h('li', {}, t('printbill.window', {
    from: when(w.window_start), to: when(w.window_end), before: w.accumulated_before, used: w.consumption, unit})));
  const notes = [
    exchanged ? h('p', {class: 'notice-box', id: 'bill-exchange'}, t('printbill.exchanged', {count: segments.length})) : null,
    bill.estimated ? h('p', {class: 'notice-box'}, t('printbill.estimated')) : null,
    bill.true_up ? h('p', {class: 'notice-box'}, t('printbill.trueup')) : null,
    bill.status === 'void' ? h('p', {class: 'notice-box'}, t('printbill.voided', {reason: bill.void?.reason || ''})) : null,
  ];
  fill(view, h('article', {class: 'bill', id: 'bill', 'aria-labelledby': 'bill-title'},
    h('div', {class: 'bill-head'},
      h('div', {}, h('p', {class: 'muted'}, `twinbill · ${project.name}`), Object.assign(title, {id: 'bill-title'})),
      h('div', {class: 'actions'},
        h('button', {type: 'button', id: 'bill-print', onclick: () => window.print()}, t('printbill.print')),
        h('a', {href: '#/bills', class: 'button secondary'}, t('back')))),
    h('dl', {class: 'facts', id: 'bill-facts'},
      fact(t('bills.address'), address || '—', 'bill-address'),
      fact(t('bills.residents'), residents.join(', ') || '—', 'bill-residents'),
      fact(t('bills.meter'), `${bill.device_key}${bill.device_name ? ` · ${bill.device_name}` : ''}`),
      fact(t('meters.type'), meterType(bill)),
      fact(t('bills.period'), `${when(bill.from_time)} – ${when(bill.to_time)} (${zone})`, 'bill-period'),
      fact(t('bills.status'), status(bill)),
      fact(t('printbill.issued'), when(bill.created_at)),
      fact(t('printbill.number'), bill.id)),
    notes,
    h('h2', {}, t('printbill.readings')), readings,
    h('h2', {}, t('printbill.lines')), charges,
    windows.length ? h('ul', {class: 'hint'}, windows) : null,
    h('dl', {class: 'facts bill-total'},
      fact(t('printbill.totalconsumption'), `${bill.consumption} ${unit}`, 'bill-consumption'),
      fact(t('printbill.total'), bill.charge, 'bill-charge'))));
}
