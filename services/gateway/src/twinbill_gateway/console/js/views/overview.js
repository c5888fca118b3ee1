// Overview: meters online/offline and the last report, the next billing fire times, the last run,
// the project's recent events.

import {api, listAll} from '../api.js';
import {errorBox, fill, h, table} from '../dom.js';
import {formatLocal, formatTime} from '../format.js';
import {t} from '../i18n.js';
import {PageLeft, consumptionByType} from './consumption.js';
import {typeName} from './meters.js';
import {runOutcome} from './runs.js';
import {eventNames, eventsTable, recentEvents} from './events.js';
import {loadTasks, nextFires} from './tasks.js';

function card(title, ...body) {
  return h('section', {class: 'card'}, h('h2', {}, title), ...body);
}

async function metersCard(project) {
  const meters = (await listAll('/api/v1/devices/', {project_id: project.id})).filter((d) => d.device_type);
  const online = meters.filter((d) => d.online).length;
  const last = meters.map((d) => d.last_seen).filter(Boolean).sort().pop();
  return card(t('nav.meters'),
    h('p', {class: 'big', id: 'meters-online'}, t('overview.online', {online, offline: meters.length - online})),
    h('p', {}, t('overview.lastreport', {time: formatTime(last, project.timezone)})),
    h('a', {href: '#/meters'}, t('overview.allmeters')));
}

async function consumptionCard(project, alive) {
  const meters = (await listAll('/api/v1/devices/', {project_id: project.id})).filter((d) => d.device_type);
  const {today, month, types} = await consumptionByType(meters, project.timezone, {alive});
  const rows = ['water', 'electricity'].filter((type) => types[type]).map((type) => {
    const slot = types[type];
    return [t(`type.${type}`), h('span', {id: `use-${type}-today`}, `${slot.today} ${slot.unit}`),
      h('span', {id: `use-${type}-month`}, `${slot.month} ${slot.unit}`)];
  });
  const skipped = Object.values(types).reduce((n, slot) => n + slot.skipped, 0);
  return card(t('overview.consumption'), rows.length
    ? table(t('overview.consumption'), [t('meters.type'), t('overview.today'), t('overview.month')],
      rows, {id: 'consumption', class: 'bare'})
    : h('p', {}, t('meters.none')),
  h('p', {class: 'muted', id: 'consumption-days'}, t('overview.usedays', {day: today, month})),
  skipped ? h('p', {class: 'hint'}, t('overview.useskipped', {count: skipped})) : null,
  h('p', {class: 'hint'}, t('overview.usehint')));
}

async function firesCard(project) {
  const tasks = (await loadTasks(project)).filter((task) => task.enabled);
  const next = await Promise.all(tasks.map(async (task) => [task, (await nextFires(project, task.crontab, 1)).fire_times[0]]));
  next.sort((a, b) => a[1].localeCompare(b[1]));
  return card(t('overview.nextfires', {zone: project.timezone}), next.length
    ? table(t('overview.nextfires', {zone: project.timezone}), [t('task.name'), t('meters.type'), t('overview.next')],
      next.map(([task, at]) => [h('a', {href: `#/task/${task.natrual_key}`}, task.name), typeName(task.device_type),
        formatLocal(at)]), {id: 'next-fires', class: 'bare'})
    : h('p', {}, t('overview.nofires')));
}

async function runCard(project) {
  const {body: runs} = await api('/api/v1/billing/runs/', {query: {project_id: project.id, page_size: 1}});
  const run = runs[0];
  return card(t('overview.lastrun'), run
    ? h('div', {id: 'last-run'},
      h('p', {}, h('a', {href: `#/run/${encodeURIComponent(run.run_id)}`},
        `${formatTime(run.fire_time, project.timezone)} · ${typeName(run.device_type)}`)),
      h('p', {}, `${t(run.finished ? 'run.finished' : 'run.running')}: ${runOutcome(run)}`))
    : h('p', {}, t('runs.none')));
}

async function eventsCard(project) {
  const [{events}, names] = await Promise.all([recentEvents(project, {size: 5}), eventNames(project)]);
  return card(t('overview.events'), events.length
    ? eventsTable(events, names, project.timezone, {id: 'recent-events', caption: t('overview.events')})
    : h('p', {id: 'recent-events-none'}, t('events.none')),
  h('a', {href: '#/events'}, t('events.all')));
}

export async function render({view, project}) {
  const grid = h('div', {class: 'grid'});
  fill(view, h('h1', {}, `${t('nav.overview')} · ${project.name}`),
    h('p', {class: 'muted'}, t('overview.zone', {zone: project.timezone})), grid);
  // Each card loads on its own: one failing service leaves the others on the page.
  const slots = [metersCard, consumptionCard, firesCard, runCard, eventsCard].map((make) => {
    const slot = h('div', {class: make === eventsCard ? 'wide' : undefined}, h('p', {}, t('loading')));
    grid.append(slot);
    return make(project, () => grid.isConnected).then((node) => fill(slot, node),
      (err) => err.status !== 401 && !(err instanceof PageLeft)
        && fill(slot, errorBox(t('error.load', {message: err.message}))));
  });
  await Promise.all(slots);
}
