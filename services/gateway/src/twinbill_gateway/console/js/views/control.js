// Reverse control on a meter's page: seed 002's PATCH /dt/open/v1/instance/{id} with
// [{id, expectvalue}] for State attributes, and each one's state as the API reports it.
//
// The twin keeps the desired value (`expectvalue`, set at the attribute's `mtime`) and the
// device's outcome after seed 002's own fields: `expectstatus` (pending once set; applied when
// the device's set_reply said 200; refused with `expectcode`/`expectmessage` for any other code;
// expired when the command was never delivered), and `expecttime`, when that outcome came. The
// page shows those fields; it does not infer an outcome from the reported value.

import {api} from '../api.js';
import {errorBox, fill, h, table} from '../dom.js';
import {formatTime} from '../format.js';
import {t} from '../i18n.js';

/** Whether the device's reported `value` is the desired one, compared as the attribute's type. */
export function sameValue(value, wanted, datatype) {
  if (value === null || value === undefined || value === '') return false;
  if (datatype === 'Number') return Number(value) === Number(wanted);
  if (datatype === 'Boolean') {
    const truth = (x) => ['true', '1'].includes(String(x).trim().toLowerCase());
    return truth(value) === truth(wanted);
  }
  if (datatype === 'Json Object' || datatype === 'Json Array') {
    try { return JSON.stringify(JSON.parse(value)) === JSON.stringify(JSON.parse(wanted)); } catch { return false; }
  }
  return String(value) === String(wanted);
}

const OUTCOMES = ['pending', 'applied', 'refused', 'expired'];

/** 'none' | 'pending' | 'applied' | 'refused' | 'expired' for one State attribute, from the API's
 * `expectstatus` (a desired value kept from before the twin recorded outcomes has none: pending). */
export function controlState(attr) {
  if (attr.expectvalue === null || attr.expectvalue === undefined || attr.expectvalue === '') return 'none';
  return OUTCOMES.includes(attr.expectstatus) ? attr.expectstatus : 'pending';
}

/** Whether the device reports the desired value now (said beside the state, not used for it). */
function reportsDesired(attr) {
  return sameValue(attr.value, attr.expectvalue, attr.datatype) && attr.stime >= attr.mtime;
}

function stateCell(attr, zone) {
  const state = controlState(attr);
  const detail = [];
  if (state === 'refused') {
    detail.push(h('span', {class: 'refusal'}, attr.expectcode !== null && attr.expectcode !== undefined
      ? t('control.refusedcode', {code: attr.expectcode}) : t('control.refusednocode'),
    attr.expectmessage ? `: ${attr.expectmessage}` : ''));
  }
  if (state !== 'none' && state !== 'pending' && attr.expecttime) {
    detail.push(h('small', {class: 'muted'}, t('control.outcomeat', {time: formatTime(attr.expecttime, zone)})));
  }
  if (state === 'pending' && reportsDesired(attr)) detail.push(h('small', {class: 'muted'}, t('control.reportsdesired')));
  return h('span', {class: `control-${state}`, 'data-state': state}, t(`control.${state}`),
    detail.flatMap((node) => [h('br'), node]));
}

function input(attr) {
  const id = `expect-${attr.id}`;
  const label = attr.displayname || attr.name;
  if (attr.datatype === 'Boolean') {
    return h('select', {id, 'aria-label': t('control.newfor', {name: label})},
      h('option', {value: 'true'}, 'true'), h('option', {value: 'false'}, 'false'));
  }
  return h('input', {id, 'aria-label': t('control.newfor', {name: label}), autocomplete: 'off',
    inputmode: attr.datatype === 'Number' ? 'decimal' : undefined, size: 10,
    value: attr.expectvalue || ''});
}

/** The reverse-control section of a meter page; `reload()` reads the instance again. */
export function controlSection(instance, zone, reload) {
  const states = (instance.attr || []).filter((a) => a.attrtype === 'State');
  if (!states.length) return null;
  const message = h('div', {id: 'control-message', role: 'status', 'aria-live': 'polite'});
  const refresh = (text) => reload(text).catch((err) => err.status !== 401
    && fill(message, errorBox(t('error.load', {message: err.message}))));
  const rows = states.map((attr) => {
    const control = input(attr);
    if (attr.datatype === 'Boolean' && attr.expectvalue) {
      control.value = ['false', '0'].includes(attr.expectvalue.trim().toLowerCase()) ? 'false' : 'true';
    }
    const set = async (event) => {
      event.preventDefault();
      const wanted = control.value.trim();
      if (!wanted) {
        fill(message, errorBox(t('control.empty', {name: attr.displayname || attr.name})));
        return;
      }
      button.disabled = true;
      try {
        await api(`/dt/open/v1/instance/${instance.id}`, {method: 'PATCH',
          body: [{id: attr.id, expectvalue: wanted}]});
      } catch (err) {
        if (err.status !== 401) fill(message, errorBox(t('control.failed', {message: err.message})));
        button.disabled = false;
        return;
      }
      await refresh(t('control.sent', {name: attr.displayname || attr.name, value: wanted}));
    };
    const button = h('button', {type: 'submit'}, t('control.set'));
    return [attr.displayname && attr.displayname !== attr.name ? `${attr.displayname} (${attr.name})` : attr.name,
      h('span', {}, attr.value === '' ? '—' : attr.value, h('br'),
        h('small', {class: 'muted'}, formatTime(attr.stime, zone))),
      h('span', {}, attr.expectvalue || '—', h('br'),
        h('small', {class: 'muted'}, attr.expectvalue ? formatTime(attr.mtime, zone) : '')),
      stateCell(attr, zone),
      h('form', {class: 'row-actions', onsubmit: set}, control, button)];
  });
  return h('section', {id: 'control', 'aria-labelledby': 'control-title'},
    h('h2', {id: 'control-title'}, t('control.title')),
    table(t('control.title'), [t('attr.name'), t('control.reported'), t('control.desired'), t('control.state'),
      t('control.new')], rows, {id: 'control-table', class: 'bare'}),
    message,
    h('p', {class: 'hint'}, t('control.hint'), ' ',
      h('button', {type: 'button', id: 'control-refresh', class: 'secondary',
        onclick: () => refresh('')}, t('control.refresh'))));
}
