// Events and notifications: the signed-in user's notifications of this project (BEMServer's
// /bemserver/notifications/, count_by_campaign, mark_all_as_read) and the project's recent events
// (/bemserver/events/?campaign_id=: alarm rules, reverse-control and billing outcomes are events
// of the project's "Alarms" scope). A user is notified only of events of the campaign scopes their
// groups are given, at WARNING and above unless they subscribed otherwise (the twin decides).

import {api, session} from '../api.js';
import {errorBox, fill, h, table} from '../dom.js';
import {formatTime} from '../format.js';
import {t} from '../i18n.js';

const LEVELS = ['DEBUG', 'INFO', 'WARNING', 'ERROR', 'CRITICAL'];

/** The signed-in user's unread notifications over every project (count_by_campaign's total). */
export async function unreadCount() {
  const user = session()?.user;
  if (!user) return null;
  const {body} = await api('/bemserver/notifications/count_by_campaign', {query: {user_id: user.id, read: false}});
  return body;
}

/** Show the unread count in the navigation (hidden at 0); errors leave it as it was. */
export async function refreshBadge() {
  const badge = document.getElementById('nav-unread');
  if (!badge) return;
  let counts;
  try { counts = await unreadCount(); } catch { return; }
  const total = counts?.total || 0;
  badge.hidden = total === 0;
  badge.textContent = String(total);
  badge.setAttribute('aria-label', t('events.unreadbadge', {count: total}));
}

/** Category id -> name, and campaign scope id -> name, as the API names them. */
export async function eventNames(project) {
  const [categories, scopes] = await Promise.all([
    api('/bemserver/event_categories/').then((r) => r.body),
    api('/bemserver/campaign_scopes/', {query: {campaign_id: project.id}}).then((r) => r.body)]);
  return {category: Object.fromEntries(categories.map((c) => [c.id, c.name])),
    scope: Object.fromEntries(scopes.map((s) => [s.id, s.name]))};
}

export function levelBadge(level) {
  return h('span', {class: `level level-${String(level).toLowerCase()}`, 'data-level': level}, t(`level.${level}`));
}

/** The project's latest events, newest first. */
export async function recentEvents(project, {levelMin = '', size = 50} = {}) {
  const {body, headers} = await api('/bemserver/events/', {query: {campaign_id: project.id, sort: '-timestamp',
    level_min: levelMin, page_size: size}});
  const pagination = JSON.parse(headers.get('X-Pagination') || '{}');
  return {events: body, total: pagination.total ?? body.length};
}

export function eventsTable(events, names, zone, {id, caption}) {
  return table(caption, [t('events.time'), t('events.level'), t('events.category'), t('events.source'),
    t('events.description')], events.map((e) => [
    formatTime(e.timestamp, zone), levelBadge(e.level), names.category[e.category_id] || `#${e.category_id}`,
    e.source, h('span', {class: 'event-description'}, e.description || '—')]), {id, class: 'bare'});
}

async function notificationsSection(project, names, reload) {
  const user = session().user;
  const [{body: mine, headers}, counts] = await Promise.all([
    api('/bemserver/notifications/', {query: {user_id: user.id, campaign_id: project.id, sort: '-timestamp',
      page_size: 50}}),
    unreadCount()]);
  const here = counts.campaigns.find((c) => c.campaign_id === project.id)?.count || 0;
  const total = JSON.parse(headers.get('X-Pagination') || '{}').total ?? mine.length;
  const message = h('div', {id: 'notifications-message', role: 'status', 'aria-live': 'polite'});
  const markAll = async () => {
    button.disabled = true;
    try {
      await api('/bemserver/notifications/mark_all_as_read', {method: 'PUT',
        query: {user_id: user.id, campaign_id: project.id}});
    } catch (err) {
      button.disabled = false;
      if (err.status !== 401) fill(message, errorBox(t('events.markfailed', {message: err.message})));
      return;
    }
    await reload(t('events.marked'));
  };
  const button = h('button', {type: 'button', id: 'mark-all-read', disabled: here === 0, onclick: markAll},
    t('events.markall'));
  const markOne = async (note, control) => {
    control.disabled = true;
    try {
      await api(`/bemserver/notifications/${note.id}`, {method: 'PUT', body: {read: true}});
    } catch (err) {
      control.disabled = false;
      if (err.status !== 401) fill(message, errorBox(t('events.markfailed', {message: err.message})));
      return;
    }
    await reload(t('events.markedone'));
  };
  const rows = mine.map((n) => [
    h('span', {class: n.read ? 'muted' : 'unread', 'data-read': String(n.read)},
      t(n.read ? 'events.read' : 'events.unread'),
      n.read ? null : h('br'),
      n.read ? null : h('button', {type: 'button', class: 'secondary small', 'aria-label': t('events.markonefor',
        {time: formatTime(n.event.timestamp, project.timezone)}),
      onclick: (e) => markOne(n, e.currentTarget)}, t('events.markone'))),
    formatTime(n.event.timestamp, project.timezone), levelBadge(n.event.level),
    names.category[n.event.category_id] || `#${n.event.category_id}`, n.event.source,
    h('span', {class: 'event-description'}, n.event.description || '—')]);
  return h('section', {'aria-labelledby': 'notifications-title'},
    h('h2', {id: 'notifications-title'}, t('events.notifications')),
    h('p', {id: 'unread-count', class: 'big'}, t('events.unreadhere', {count: here})),
    h('p', {class: 'row-actions'}, button),
    message,
    mine.length
      ? table(t('events.notifications'), [t('events.state'), t('events.time'), t('events.level'),
        t('events.category'), t('events.source'), t('events.description')], rows,
      {id: 'notifications', class: 'bare'})
      : h('p', {id: 'notifications-none'}, t('events.nonotifications')),
    total > mine.length ? h('p', {class: 'hint'}, t('events.more', {shown: mine.length, total})) : null,
    h('p', {class: 'hint'}, t('events.notifyhint')));
}

async function eventsSection(project, names, levelMin, onLevel) {
  const {events, total} = await recentEvents(project, {levelMin});
  const select = h('select', {id: 'events-level', onchange: (e) => onLevel(e.target.value)},
    h('option', {value: ''}, t('all')),
    LEVELS.map((level) => h('option', {value: level}, t('events.levelmin', {level: t(`level.${level}`)}))));
  select.value = levelMin;
  return h('section', {'aria-labelledby': 'events-title'},
    h('h2', {id: 'events-title'}, t('events.recent')),
    h('div', {class: 'field inline-field'}, h('label', {for: 'events-level'}, t('events.level')), select),
    events.length
      ? eventsTable(events, names, project.timezone, {id: 'events', caption: t('events.recent')})
      : h('p', {id: 'events-none'}, t('events.none')),
    total > events.length ? h('p', {class: 'hint'}, t('events.more', {shown: events.length, total})) : null,
    h('p', {class: 'hint'}, t('events.hint')));
}

export async function render({view, project}) {
  let levelMin = '';
  const notices = h('div', {}, h('p', {}, t('loading')));
  const recent = h('div', {}, h('p', {}, t('loading')));
  fill(view, h('h1', {}, `${t('nav.events')} · ${project.name}`), notices, recent);
  const names = await eventNames(project);
  const loadNotices = async (text = '') => {
    fill(notices, await notificationsSection(project, names, loadNotices));
    if (text) fill(document.getElementById('notifications-message'), h('p', {class: 'ok'}, text));
    await refreshBadge();
  };
  const loadRecent = async () => fill(recent, await eventsSection(project, names, levelMin, (value) => {
    levelMin = value;
    // the list is built again: keep the keyboard on the level picker
    loadRecent().then(() => document.getElementById('events-level')?.focus(),
      (err) => err.status !== 401 && fill(recent, errorBox(t('error.load', {message: err.message}))));
  }));
  const guard = (slot) => (err) => err.status !== 401 && fill(slot, errorBox(t('error.load', {message: err.message})));
  await Promise.all([loadNotices().catch(guard(notices)), loadRecent().catch(guard(recent))]);
}
