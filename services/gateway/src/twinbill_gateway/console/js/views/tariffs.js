// Tariffs (/api/v1/tariffs/): what each meter type is priced at, and since when; new, edit (the
// editor is in tariff.js) and delete after a confirmation.

import {api, listAll} from '../api.js';
import {confirmAction} from '../confirm.js';
import {fill, h, table} from '../dom.js';
import {formatTime} from '../format.js';
import {t} from '../i18n.js';
import {typeName} from './meters.js';

export {renderEditor} from './tariff.js';

function prices(tariff) {
  if (tariff.seasons?.length) return t('tariff.seasons', {count: tariff.seasons.length});
  if (tariff.kind === 'flat') return `${tariff.unit_price}`;
  return (tariff.blocks || []).map((b) => (b.up_to === null
    ? t('tariff.above', {price: b.price}) : t('tariff.upto', {up_to: b.up_to, price: b.price}))).join('; ');
}

export async function render({view, project, notify}) {
  const heading = h('h1', {}, t('nav.tariffs'));
  fill(view, heading, h('p', {}, t('loading')));
  const tariffs = await listAll('/api/v1/tariffs/', {project_id: project.id});
  const zone = project.timezone;
  const remove = (x) => async () => {
    const label = x.name || x.id;
    if (!await confirmAction(t('tariffedit.confirmdelete', {name: label}), t('delete'))) return;
    try {
      await api(`/api/v1/tariffs/${x.id}`, {method: 'DELETE'});
      notify(t('tariffedit.deleted', {name: label}));
      await render({view, project, notify});
    } catch (err) {
      if (err.status !== 401) notify(t('error.action', {message: err.message}), 'error');
    }
  };
  fill(view, heading,
    h('p', {}, h('a', {href: '#/tariff/new', class: 'button'}, t('tariffedit.new'))),
    tariffs.length ? table(t('tariffs.caption'),
      [t('tariff.name'), t('meters.type'), t('tariff.kind'), t('tariff.prices'), t('tariff.from'),
        t('tariff.to'), ''],
      tariffs.map((x) => [x.name || '—',
        x.water_meter_kind ? `${typeName(x.device_type)} (${t(`wm.${x.water_meter_kind}`)})` : typeName(x.device_type),
        t(`tariff.${x.kind}`), prices(x), formatTime(x.effective_from, zone),
        x.effective_to ? formatTime(x.effective_to, zone) : t('tariff.open'),
        h('div', {class: 'row-actions'},
          h('a', {href: `#/tariff/${x.id}`, class: 'button', 'aria-label': `${t('edit')} ${x.name || x.id}`}, t('edit')),
          h('button', {type: 'button', class: 'danger', 'aria-label': `${t('delete')} ${x.name || x.id}`,
            onclick: remove(x)}, t('delete')))]), {id: 'tariff-table'})
      : h('p', {}, t('tariffs.none')),
    h('p', {class: 'hint'}, t('tariffs.hint')));
}
