// Today's and this month's consumption per energy type, from the meters' billing registers over
// seed 002's attribute query (no private endpoint): one `1dc-last` series per meter (the last
// reading of each local day in the project's zone) from 35 days before the month began.
//
// A meter's consumption in a period = (its latest reading - its last reading before the period
// began) x its multiplier: the same "last reading at or before" rule the bills open and close
// with. A meter whose first reading is inside the period counts from that first reading. A meter
// exchange or a register rollover inside the period is not taken apart here (the bills do that);
// such a meter's negative advance is left out, and the meter counted in `skipped`.

import {api} from '../api.js';
import {localDate, formatTime} from '../format.js';

const LOOKBACK_DAYS = 35;
const PARALLEL = 6;

/** A decimal string as [BigInt units, scale]. */
function parseDecimal(text) {
  const [whole, fraction = ''] = String(text).trim().split('.');
  return [BigInt(`${whole}${fraction}` || '0'), fraction.length];
}

function rescale([units, scale], to) {
  return units * 10n ** BigInt(to - scale);
}

/** Exact decimal arithmetic on strings (readings, multipliers): a - b, a * b, sum. */
export function decimalSub(a, b) {
  const x = parseDecimal(a); const y = parseDecimal(b);
  const scale = Math.max(x[1], y[1]);
  return format(rescale(x, scale) - rescale(y, scale), scale);
}

export function decimalMul(a, b) {
  const x = parseDecimal(a); const y = parseDecimal(b);
  return format(x[0] * y[0], x[1] + y[1]);
}

export function decimalSum(values) {
  return values.reduce((acc, value) => {
    const x = parseDecimal(acc); const y = parseDecimal(value);
    const scale = Math.max(x[1], y[1]);
    return format(rescale(x, scale) + rescale(y, scale), scale);
  }, '0');
}

function format(units, scale) {
  const negative = units < 0n;
  let digits = (negative ? -units : units).toString().padStart(scale + 1, '0');
  if (scale) digits = `${digits.slice(0, -scale)}.${digits.slice(-scale)}`.replace(/\.?0+$/, '');
  return `${negative ? '-' : ''}${digits}`;
}

/** A reading as plain decimal text (a float the JSON wrote as 1e-7 included). */
function plain(value) {
  const text = String(value);
  return /e/i.test(text) ? Number(value).toFixed(9).replace(/\.?0+$/, '') : text;
}

/** Thrown when the page was left: the remaining queries are not sent. */
export class PageLeft extends Error {}

async function inBatches(items, work, alive) {
  const out = [];
  for (let i = 0; i < items.length; i += PARALLEL) {
    if (!alive()) throw new PageLeft('the page was left');
    out.push(...await Promise.all(items.slice(i, i + PARALLEL).map(work)));
  }
  return out;
}

/** The billing register's attribute of each meter (the product's billing_register, else `total`). */
async function registers(meters) {
  let products = [];
  try {
    products = (await api('/api/v1/products/', {query: {page_size: 1000}})).body;
  } catch (err) {
    if (err.status !== 403) throw err; // products are for administrators; members use `total`
  }
  const registerOf = new Map(products.map((p) => [p.product_key, p.billing_register]));
  const withTwin = meters.filter((m) => m.instance_id);
  const instances = new Map();
  for (let i = 0; i < withTwin.length; i += 500) {
    const ids = withTwin.slice(i, i + 500).map((m) => m.instance_id).join(',');
    for (const instance of (await api('/dt/open/v1/instance', {query: {ids}})).body.data) {
      instances.set(instance.id, instance);
    }
  }
  return withTwin.map((meter) => {
    const name = registerOf.get(meter.product_key) || 'total';
    const attr = (instances.get(meter.instance_id)?.attr || []).find((a) => a.name === name);
    return attr ? {meter, attr} : null;
  }).filter(Boolean);
}

/** One meter's [today, month] consumption (decimal strings), or null for a period without data. */
async function meterUse({meter, attr}, zone, today, month) {
  const start = Date.now() - (Number(today.slice(8, 10)) + LOOKBACK_DAYS) * 86400000;
  const {body} = await api(`/dt/open/v1/instance/attribute/${attr.id}`,
    {query: {start: String(start), downsample: '1dc-last', timezone: zone}});
  const days = [];
  for (const series of body.data.value || []) {
    for (const [key, value] of Object.entries(series.dps)) {
      if (value === null || value === 'NaN') continue;
      const ms = key.length >= 13 ? Number(key) : Number(key) * 1000;
      days.push([formatTime(ms, zone).slice(0, 10), ms, plain(value)]);
    }
  }
  days.sort((a, b) => a[1] - b[1]);
  if (!days.length) return [null, null];
  const latest = days[days.length - 1][2];
  const use = async (since) => {
    const before = days.filter(([date]) => date < since);
    const inside = days.filter(([date]) => date >= since);
    if (!inside.length) return before.length ? '0' : null;
    let base = before.length ? before[before.length - 1][2] : null;
    if (base === null) { // first reading inside the period: count from it
      const first = await api(`/dt/open/v1/instance/attribute/${attr.id}`,
        {query: {start: String(inside[0][1]), downsample: '0all-first', timezone: zone}});
      base = plain(Object.values(first.body.data.value?.[0]?.dps || {})[0] ?? latest);
    }
    return decimalMul(decimalSub(latest, base), String(meter.multiplier || '1'));
  };
  return [await use(today), await use(`${month}-01`)];
}

/**
 * {water: {unit, today, month, meters, skipped}, electricity: {...}} for the project's meters.
 * Water is device_type 1, electricity 2 (the registry's codes). `alive()` false (the user left
 * the page) stops the queries between batches (PageLeft).
 */
export async function consumptionByType(meters, zone, {alive = () => true} = {}) {
  const today = localDate(zone);
  const month = today.slice(0, 7);
  const found = await registers(meters.filter((m) => m.device_type === 1 || m.device_type === 2));
  const uses = await inBatches(found, (entry) => meterUse(entry, zone, today, month), alive);
  const out = {};
  found.forEach(({meter, attr}, index) => {
    const type = meter.device_type === 1 ? 'water' : 'electricity';
    const slot = out[type] || (out[type] = {unit: attr.unit || (type === 'water' ? 'm3' : 'kWh'),
      today: [], month: [], meters: 0, skipped: new Set()});
    slot.meters += 1;
    const [day, period] = uses[index];
    for (const [name, value] of [['today', day], ['month', period]]) {
      if (value === null) continue;
      if (value.startsWith('-')) slot.skipped.add(meter.id); else slot[name].push(value);
    }
  });
  for (const slot of Object.values(out)) {
    slot.today = decimalSum(slot.today);
    slot.month = decimalSum(slot.month);
    slot.skipped = slot.skipped.size;
  }
  return {today, month, types: out};
}
