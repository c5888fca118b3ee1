// Structure: site -> building -> storey -> space, with the meters and residents of each space.

import {listAll} from '../api.js';
import {fill, h} from '../dom.js';
import {t} from '../i18n.js';
import {typeName} from './meters.js';
import {importSection} from './siteimport.js';

function group(rows, key) {
  const map = new Map();
  for (const row of rows) {
    if (!map.has(row[key])) map.set(row[key], []);
    map.get(row[key]).push(row);
  }
  return map;
}

function node(label, count, children, open) {
  return h('li', {}, h('details', {open},
    h('summary', {}, label, count !== null ? h('span', {class: 'muted'}, ` (${count})`) : null),
    h('ul', {}, children)));
}

export async function render({view, project}) {
  const heading = h('h1', {}, t('nav.structure'));
  fill(view, heading, h('p', {}, t('loading')));
  const query = {project_id: project.id};
  const [sites, buildings, storeys, spaces, residents, devices] = await Promise.all(
    ['sites', 'buildings', 'storeys', 'spaces', 'residents', 'devices'].map(
      (resource) => listAll(`/api/v1/${resource}/`, query)));
  const bySite = group(buildings, 'site_id');
  const byBuilding = group(storeys, 'building_id');
  const byStorey = group(spaces, 'storey_id');
  const residentsBySpace = group(residents, 'space_id');
  const metersBySpace = group(devices.filter((d) => d.device_type), 'space_id');
  const space = (s) => {
    const meters = metersBySpace.get(s.id) || [];
    const people = residentsBySpace.get(s.id) || [];
    return node(s.name, null, [
      ...meters.map((m) => h('li', {class: 'leaf'}, `${t('structure.meter')}: `,
        h('a', {href: `#/meter/${m.id}`}, m.name || m.device_key), ` · ${typeName(m.device_type)}`)),
      ...people.map((r) => h('li', {class: 'leaf'}, `${t('structure.resident')}: ${r.name}`)),
      meters.length || people.length ? null : h('li', {class: 'leaf muted'}, t('structure.empty'))], false);
  };
  const tree = h('ul', {class: 'tree', id: 'structure-tree', 'aria-label': t('nav.structure')},
    sites.map((site) => node(`${t('structure.site')}: ${site.name}`, (bySite.get(site.id) || []).length,
      (bySite.get(site.id) || []).map((b) => node(`${t('structure.building')}: ${b.name}`,
        (byBuilding.get(b.id) || []).length,
        (byBuilding.get(b.id) || []).map((st) => node(`${t('structure.storey')}: ${st.name}`,
          (byStorey.get(st.id) || []).length, (byStorey.get(st.id) || []).map(space), true)), true)), true)));
  const unplaced = devices.filter((d) => d.device_type && !d.space_id).length;
  const treeSlot = h('div', {id: 'structure-slot'}, sites.length ? tree : h('p', {}, t('structure.none')),
    unplaced ? h('p', {class: 'muted'}, t('structure.unplaced', {count: unplaced})) : null);
  fill(view, heading, treeSlot, importSection(project, async () => {
    const fresh = h('div');
    await render({view: fresh, project});
    treeSlot.replaceWith(fresh.querySelector('#structure-slot'));
  }));
}
