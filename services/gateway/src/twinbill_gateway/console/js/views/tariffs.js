// Tariffs (/api/v1/tariffs/): what each meter type is priced at, and since when.

import {listAll} from '../api.js';
import {fill, h, table} from '../dom.js';
import {formatTime} from '../format.js';
import {t} from '../i18n.js';
import {typeName} from './meters.js';

function prices(tariff) {
  if (tariff.kind === 'flat') return `${tariff.unit_price}`;
  return (tariff.blocks || []).map((b) => (b.up_to === null
    ? t('tariff.above', {price: b.price}) : t('tariff.upto', {up_to: b.up_to, price: b.price}))).join('; ');
}

export async function render({view, project}) {
  const heading = h('h1', {}, t('nav.tariffs'));
  fill(view, heading, h('p', {}, t('loading')));
  const tariffs = await listAll('/api/v1/tariffs/', {project_id: project.id});
  const zone = project.timezone;
  fill(view, heading, tariffs.length ? table(t('tariffs.caption'),
    [t('tariff.name'), t('meters.type'), t('tariff.kind'), t('tariff.prices'), t('tariff.from'),
      t('tariff.to')],
    tariffs.map((x) => [x.name || '—',
      x.water_meter_kind ? `${typeName(x.device_type)} (${t(`wm.${x.water_meter_kind}`)})` : typeName(x.device_type),
      t(`tariff.${x.kind}`), prices(x), formatTime(x.effective_from, zone),
      x.effective_to ? formatTime(x.effective_to, zone) : t('tariff.open')]), {id: 'tariff-table'})
    : h('p', {}, t('tariffs.none')),
  h('p', {class: 'hint'}, t('tariffs.readonly')));
}
