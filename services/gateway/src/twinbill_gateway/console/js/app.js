// The console shell: sign-in gate, project picker, language switch and the hash router.
// Each view is a module exporting `render(ctx)`; ctx.view is a fresh container, so a slow answer
// for a page the user already left writes into a detached element and shows nowhere.

import {api, listAll, onSessionExpired, session, signOut} from './api.js';
import {fill, h} from './dom.js';
import {applyStatic, language, setLanguage, t} from './i18n.js';
import * as bill from './views/bill.js';
import * as bills from './views/bills.js';
import * as events from './views/events.js';
import * as meters from './views/meters.js';
import * as overview from './views/overview.js';
import * as runs from './views/runs.js';
import * as signin from './views/signin.js';
import * as structure from './views/structure.js';
import * as tariffs from './views/tariffs.js';
import * as tasks from './views/tasks.js';
import * as users from './views/users.js';

const NEXT = 'twinbill.next';
const PROJECT = 'twinbill.project';
const ROUTES = [
  [/^#\/overview$/, overview.render, 'nav.overview'],
  [/^#\/structure$/, structure.render, 'nav.structure'],
  [/^#\/meters$/, meters.renderList, 'nav.meters'],
  [/^#\/meter\/(\d+)$/, meters.renderMeter, 'nav.meters'],
  [/^#\/tasks$/, tasks.renderList, 'nav.tasks'],
  [/^#\/task\/(new|[0-9a-f]{32})$/, tasks.renderEditor, 'nav.tasks'],
  [/^#\/runs$/, runs.renderList, 'nav.runs'],
  [/^#\/run\/(.+)$/, runs.renderRun, 'nav.runs'],
  [/^#\/bills$/, bills.render, 'nav.bills'],
  [/^#\/bill\/([0-9a-f]{24})$/, bill.render, 'nav.bills'],
  [/^#\/tariffs$/, tariffs.render, 'nav.tariffs'],
  [/^#\/tariff\/(new|[0-9a-f]{24})$/, tariffs.renderEditor, 'nav.tariffs'],
  [/^#\/events$/, events.render, 'nav.events'],
  [/^#\/users$/, users.renderList, 'nav.users'],
  [/^#\/user\/(\d+)$/, users.renderUser, 'nav.users'],
];

const state = {projects: [], project: null};
// A message for the next page shown (the hash change clears the notice otherwise).
let pending = null;
const main = document.getElementById('view');

function notify(message, kind = 'info') {
  const notice = document.getElementById('notice');
  fill(notice, message ? h('p', {class: kind}, message) : null);
}

function showShell(visible) {
  document.getElementById('top').hidden = !visible;
  document.getElementById('nav').hidden = !visible;
}

async function loadProjects() {
  const user = session()?.user;
  if (user?.is_admin) {
    state.projects = await listAll('/api/v1/projects/');
  } else {
    state.projects = await Promise.all((user?.projects || []).map(
      async (id) => (await api(`/api/v1/projects/${id}`)).body));
  }
  const saved = Number(localStorage.getItem(PROJECT));
  state.project = state.projects.find((p) => p.id === saved) || state.projects[0] || null;
  const select = document.getElementById('project');
  fill(select, state.projects.map((p) => h('option', {value: String(p.id)}, `${p.name} (#${p.id})`)));
  if (state.project) select.value = String(state.project.id);
  document.getElementById('nav-users').hidden = !user?.is_admin;
  const who = document.getElementById('who');
  who.textContent = user ? user.email : '';
}

async function route() {
  const hash = location.hash || '#/overview';
  if (hash === '#/signin' || !session()?.access) {
    if (hash !== '#/signin') sessionStorage.setItem(NEXT, hash);
    showShell(false);
    const view = fill(main, h('div'));
    signin.render({view: view.firstChild, notify, next: afterSignIn});
    return;
  }
  showShell(true);
  if (!state.projects.length) {
    try { await loadProjects(); } catch (err) {
      if (err.status === 401) return;
      fill(main, h('p', {class: 'error', role: 'alert'}, t('error.projects', {message: err.message})));
      return;
    }
  }
  const match = ROUTES.find(([pattern]) => pattern.test(hash));
  for (const link of document.querySelectorAll('#nav a')) {
    const current = match && (link.dataset.i18n || link.dataset.route) === match[2];
    if (current) link.setAttribute('aria-current', 'page'); else link.removeAttribute('aria-current');
  }
  const container = h('div');
  fill(main, container);
  if (!match) {
    fill(container, h('p', {class: 'error', role: 'alert'}, t('error.nopage', {page: hash})));
    return;
  }
  if (!state.project) {
    fill(container, h('p', {class: 'error', role: 'alert'}, t('error.noproject')));
    return;
  }
  events.refreshBadge(); // the unread count in the navigation, on every page
  const params = hash.match(match[0]).slice(1);
  document.title = `${t(match[2])} · twinbill`;
  try {
    await match[1]({view: container, project: state.project, params, notify});
  } catch (err) {
    if (err.status === 401) return; // the session handler has taken over
    container.append(h('p', {class: 'error', role: 'alert'}, t('error.load', {message: err.message})));
  }
}

function afterSignIn() {
  const next = sessionStorage.getItem(NEXT);
  sessionStorage.removeItem(NEXT);
  state.projects = [];
  const target = next && next !== '#/signin' ? next : '#/overview';
  if (location.hash === target) route(); else location.hash = target;
}

onSessionExpired(() => {
  if (location.hash !== '#/signin') sessionStorage.setItem(NEXT, location.hash || '#/overview');
  state.projects = [];
  if (location.hash === '#/signin') {
    notify(t('session.expired'), 'error');
    route();
  } else {
    pending = [t('session.expired'), 'error'];
    location.hash = '#/signin';
  }
});

document.getElementById('project').addEventListener('change', (event) => {
  state.project = state.projects.find((p) => String(p.id) === event.target.value) || null;
  if (state.project) localStorage.setItem(PROJECT, String(state.project.id));
  notify('');
  route();
});

const languageSelect = document.getElementById('language');
languageSelect.value = language();
languageSelect.addEventListener('change', (event) => {
  setLanguage(event.target.value);
  applyStatic();
  route();
});

document.getElementById('signout').addEventListener('click', async () => {
  // Revoke the sign-in session (its access and refresh tokens) on the server, then forget them.
  const revoked = await signOut();
  state.projects = [];
  sessionStorage.removeItem(NEXT);
  pending = revoked ? [t('signout.done'), 'info'] : [t('signout.notrevoked'), 'error'];
  location.hash = '#/signin';
});

window.addEventListener('hashchange', () => {
  notify(...(pending || ['']));
  pending = null;
  route();
});
applyStatic();
route();
