// Users, roles and API keys over the gateway's identity API (administrators only):
// GET/POST /api/v1/users/, GET/PUT/DELETE /api/v1/users/{id}, POST /api/v1/users/me/api_key.
// twinbill has two roles: administrator (everything) and member (the projects listed).
// A seed-000 API key (`Authorization: token <user_id>:<key>`) is shown once, when it is made.

import {api, listAll, session} from '../api.js';
import {confirmAction} from '../confirm.js';
import {errorBox, field, fieldError, fill, h, table} from '../dom.js';
import {t} from '../i18n.js';

const FIELDS = ['name', 'email', 'password', 'is_admin', 'projects', 'is_active'];

function adminOnly(view) {
  if (session()?.user?.is_admin) return false;
  fill(view, h('h1', {}, t('nav.users')), errorBox(t('users.adminonly')));
  return true;
}

function roleText(user) {
  return t(user.is_admin ? 'users.admin' : 'users.member');
}

async function projectNames() {
  return new Map((await listAll('/api/v1/projects/')).map((p) => [p.id, p.name]));
}

function showErrors(prefix, fields) {
  for (const name of FIELDS) fieldError(`${prefix}-${name}`, (fields || {})[name] || '');
}

/** The role select and the project checkboxes shared by the new-user and edit forms. */
function roleControls(prefix, names, user) {
  const role = h('select', {id: `${prefix}-is_admin`},
    h('option', {value: 'false'}, t('users.member')), h('option', {value: 'true'}, t('users.admin')));
  role.value = String(Boolean(user.is_admin));
  const boxes = [...names].map(([id, name]) => h('label', {class: 'inline'},
    h('input', {type: 'checkbox', value: String(id), checked: (user.projects || []).includes(id)}),
    `${name} (#${id})`));
  const projects = h('fieldset', {class: 'checks', id: `${prefix}-projects`},
    h('legend', {}, t('users.projects')), boxes,
    h('span', {class: 'field-error', id: `${prefix}-projects-error`, role: 'alert'}));
  const chosen = () => boxes.map((b) => b.querySelector('input')).filter((x) => x.checked).map((x) => Number(x.value));
  return {role, projects, chosen};
}

function keyCard() {
  const shown = h('div', {id: 'api-key', 'aria-live': 'polite'});
  const make = h('button', {type: 'button', id: 'make-key'}, t('users.makekey'));
  make.addEventListener('click', async () => {
    if (!await confirmAction(t('users.confirmkey'), t('users.makekey'))) return;
    make.disabled = true;
    try {
      const {body} = await api('/api/v1/users/me/api_key', {method: 'POST'});
      fill(shown, h('p', {class: 'ok'}, t('users.keyonce')),
        h('pre', {class: 'key', id: 'api-key-value', tabindex: '0'}, `Authorization: ${body.authorization}`));
    } catch (err) {
      if (err.status !== 401) fill(shown, errorBox(t('error.action', {message: err.message})));
    } finally {
      make.disabled = false;
    }
  });
  return h('section', {class: 'card', 'aria-labelledby': 'key-title'},
    h('h2', {id: 'key-title'}, t('users.keytitle')),
    h('p', {class: 'hint'}, t('users.keyhint', {email: session()?.user?.email || ''})), make, shown);
}

export async function renderList({view, notify}) {
  if (adminOnly(view)) return;
  const heading = h('h1', {}, t('nav.users'));
  fill(view, heading, h('p', {}, t('loading')));
  const [users, names] = await Promise.all([listAll('/api/v1/users/'), projectNames()]);
  const me = session()?.user?.id;
  const rows = users.map((user) => [
    h('a', {href: `#/user/${user.id}`}, user.name), user.email, roleText(user),
    t(user.is_active ? 'users.active' : 'users.inactive'),
    user.is_admin ? t('all') : user.projects.map((id) => names.get(id) || `#${id}`).join(', ') || '—',
    h('div', {class: 'row-actions'},
      h('a', {href: `#/user/${user.id}`, class: 'button', 'aria-label': `${t('edit')} ${user.email}`}, t('edit')),
      user.id === me ? null : h('button', {type: 'button', class: 'danger', 'aria-label': `${t('delete')} ${user.email}`,
        onclick: async () => {
          if (!await confirmAction(t('users.confirmdelete', {email: user.email}), t('delete'))) return;
          try {
            await api(`/api/v1/users/${user.id}`, {method: 'DELETE'});
            notify(t('users.deleted', {email: user.email}));
            await renderList({view, notify});
          } catch (err) {
            if (err.status !== 401) notify(t('error.action', {message: err.message}), 'error');
          }
        }}, t('delete')))]);

  const name = h('input', {id: 'new-name', autocomplete: 'off', maxlength: '80'});
  const email = h('input', {id: 'new-email', type: 'email', autocomplete: 'off'});
  const password = h('input', {id: 'new-password', type: 'password', autocomplete: 'new-password'});
  const {role, projects, chosen} = roleControls('new', names, {is_admin: false, projects: []});
  const message = h('div', {id: 'new-message', 'aria-live': 'polite'});
  const form = h('form', {class: 'card', novalidate: true, 'aria-labelledby': 'new-title'},
    h('h2', {id: 'new-title'}, t('users.new')),
    field(t('users.name'), name), field(t('signin.email'), email),
    field(t('signin.password'), password, {hint: t('users.passwordhint')}),
    field(t('users.role'), role), projects, message,
    h('div', {class: 'actions'}, h('button', {type: 'submit'}, t('task.create'))));
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    showErrors('new', {});
    fill(message);
    try {
      const {body} = await api('/api/v1/users/', {method: 'POST', body: {name: name.value.trim(),
        email: email.value.trim(), password: password.value, is_admin: role.value === 'true', projects: chosen()}});
      notify(t('users.created', {email: body.email}));
      await renderList({view, notify});
    } catch (err) {
      if (err.status === 401) return;
      showErrors('new', err.fields);
      fill(message, errorBox(t('task.notsaved', {message: err.message})));
    }
  });
  fill(view, heading,
    table(t('users.caption', {count: users.length}),
      [t('users.name'), t('signin.email'), t('users.role'), t('users.state'), t('users.projects'), ''],
      rows, {id: 'user-table'}),
    h('div', {class: 'grid'}, form, keyCard()));
}

export async function renderUser({view, params}) {
  if (adminOnly(view)) return;
  const [{body: user}, names] = await Promise.all([api(`/api/v1/users/${params[0]}`), projectNames()]);
  const name = h('input', {id: 'user-name', value: user.name, maxlength: '80'});
  const password = h('input', {id: 'user-password', type: 'password', autocomplete: 'new-password'});
  const active = h('input', {id: 'user-is_active', type: 'checkbox', checked: user.is_active});
  const {role, projects, chosen} = roleControls('user', names, user);
  const message = h('div', {id: 'user-message', 'aria-live': 'polite'});
  const form = h('form', {class: 'card', novalidate: true, 'aria-labelledby': 'user-title'},
    h('h1', {id: 'user-title'}, `${user.name} · ${user.email}`),
    field(t('users.name'), name),
    field(t('users.newpassword'), password, {hint: t('users.keeppassword')}),
    field(t('users.role'), role),
    h('div', {class: 'field inline-field'}, active, h('label', {for: 'user-is_active'}, t('users.active')),
      h('span', {class: 'field-error', id: 'user-is_active-error'})),
    projects, h('p', {class: 'hint'}, t('users.rolehint')), message,
    h('div', {class: 'actions'}, h('button', {type: 'submit'}, t('save')),
      h('a', {href: '#/users', class: 'button secondary'}, t('back'))));
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    showErrors('user', {});
    fill(message);
    const body = {name: name.value.trim(), is_admin: role.value === 'true', is_active: active.checked,
      projects: chosen()};
    if (password.value) body.password = password.value;
    try {
      await api(`/api/v1/users/${user.id}`, {method: 'PUT', body});
      password.value = '';
      fill(message, h('p', {class: 'ok', role: 'status'}, t('users.saved')));
    } catch (err) {
      if (err.status === 401) return;
      showErrors('user', err.fields);
      fill(message, errorBox(t('task.notsaved', {message: err.message})));
    }
  });
  fill(view, form);
}
