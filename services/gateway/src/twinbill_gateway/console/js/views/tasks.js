// Billing tasks (seed 000): the list, and an editor whose crontab shows its next five fire times
// in the project's time zone before saving (GET /api/v1/scheduler/crontab/preview/).

import {api} from '../api.js';
import {confirmAction} from '../confirm.js';
import {errorBox, field, fieldError, fill, h, table} from '../dom.js';
import {formatLocal} from '../format.js';
import {t} from '../i18n.js';

const CRON_FIELDS = ['month', 'day', 'hour', 'minute'];

export function cronText(crontab) {
  return CRON_FIELDS.map((name) => `${name} ${crontab[name]}`).join(' · ');
}

function taskType(deviceType) {
  return t(deviceType === 1 ? 'type.water' : 'type.electricity');
}

export async function loadTasks(project) {
  const {body} = await api('/api/v1/scheduler/tasks/',
    {query: {project_id: project.id, device_type: 0, page_size: 100}});
  return body.data.results;
}

export async function nextFires(project, crontab, count = 5) {
  const {body} = await api('/api/v1/scheduler/crontab/preview/',
    {query: {project_id: project.id, count, ...crontab}});
  return body.data;
}

export async function renderList({view, project, notify}) {
  const heading = h('h1', {}, t('nav.tasks'));
  fill(view, heading, h('p', {}, t('loading')));
  const tasks = await loadTasks(project);
  const rows = tasks.map((task) => [
    h('a', {href: `#/task/${task.natrual_key}`}, task.name),
    taskType(task.device_type), cronText(task.crontab),
    t(task.enabled ? 'enabled' : 'disabled'), formatLocal(task.last_run_at),
    h('div', {class: 'row-actions'},
      h('a', {href: `#/task/${task.natrual_key}`, class: 'button'}, t('edit')),
      h('button', {type: 'button', class: 'danger', 'aria-label': `${t('delete')} ${task.name}`,
        onclick: async () => {
          const ok = await confirmAction(t('task.confirmdelete', {name: task.name}), t('delete'));
          if (!ok) return;
          try {
            await api(`/api/v1/scheduler/tasks/${task.natrual_key}/`, {method: 'DELETE'});
            notify(t('task.deleted', {name: task.name}));
            await renderList({view, project, notify});
          } catch (err) {
            notify(t('error.action', {message: err.message}), 'error');
          }
        }}, t('delete')))]);
  fill(view, heading,
    h('p', {}, h('a', {href: '#/task/new', class: 'button'}, t('task.new'))),
    tasks.length ? table(t('tasks.caption', {zone: project.timezone}),
      [t('task.name'), t('meters.type'), t('task.crontab'), t('task.state'), t('task.lastrun'), ''],
      rows, {id: 'task-table'}) : h('p', {}, t('tasks.none')));
}

export async function renderEditor({view, project, params, notify}) {
  const creating = params[0] === 'new';
  const task = creating
    ? {name: '', description: '', enabled: true, device_type: 2,
      crontab: {month: '*', day: '1', hour: '0', minute: '0'}}
    : (await api(`/api/v1/scheduler/tasks/${params[0]}/`)).body.data;
  if (!creating && task.project_id !== project.id) {
    fill(view, errorBox(t('task.otherproject', {project: task.project_id})));
    return;
  }
  const name = h('input', {id: 'task-name', value: task.name, required: true, maxlength: '200'});
  const description = h('input', {id: 'task-description', value: task.description});
  const enabled = h('input', {id: 'task-enabled', type: 'checkbox', checked: task.enabled});
  const deviceType = h('select', {id: 'task-device_type', disabled: !creating},
    h('option', {value: '1'}, t('type.water')), h('option', {value: '2'}, t('type.electricity')));
  deviceType.value = String(task.device_type);
  const cron = Object.fromEntries(CRON_FIELDS.map((f) => [f, h('input', {
    id: `task-crontab.${f}`, value: String(task.crontab[f]), class: 'cron', autocomplete: 'off',
    spellcheck: false})]));
  const preview = h('div', {id: 'preview', 'aria-live': 'polite'});
  const message = h('div', {id: 'task-message', 'aria-live': 'polite'});
  const save = h('button', {type: 'submit'}, t(creating ? 'task.create' : 'save'));

  function crontab() {
    return Object.fromEntries(CRON_FIELDS.map((f) => [f, cron[f].value.trim()]));
  }
  function showErrors(fields) {
    for (const id of ['name', 'description', 'enabled', 'device_type', ...CRON_FIELDS.map((f) => `crontab.${f}`)]) {
      fieldError(`task-${id}`, fields[id] || '');
    }
  }
  let seq = 0;
  async function updatePreview() {
    const mine = ++seq;
    try {
      const data = await nextFires(project, crontab());
      if (mine !== seq) return;
      showErrors({});
      fill(preview, h('h2', {}, t('task.nextfires', {zone: data.timezone})),
        h('ol', {id: 'fire-times'}, data.fire_times.map((x) => h('li', {}, formatLocal(x)))));
    } catch (err) {
      if (mine !== seq) return;
      showErrors(err.fields);
      fill(preview, errorBox(t('task.badcrontab', {message: err.message})));
    }
  }
  let timer = null;
  for (const input of Object.values(cron)) {
    input.addEventListener('input', () => {
      clearTimeout(timer);
      timer = setTimeout(updatePreview, 300);
    });
  }
  const form = h('form', {class: 'card', novalidate: true, 'aria-labelledby': 'task-title'},
    h('h1', {id: 'task-title'}, creating ? t('task.new') : `${t('edit')}: ${task.name}`),
    field(t('task.name'), name),
    field(t('task.description'), description),
    field(t('meters.type'), deviceType),
    h('div', {class: 'field inline-field'}, enabled, h('label', {for: 'task-enabled'}, t('enabled')),
      h('span', {class: 'field-error', id: 'task-enabled-error'})),
    h('fieldset', {class: 'cron-fields'}, h('legend', {}, t('task.crontab')),
      CRON_FIELDS.map((f) => field(t(`cron.${f}`), cron[f]))),
    h('p', {class: 'hint'}, t('cron.help', {zone: project.timezone})),
    preview, message,
    h('div', {class: 'actions'}, save, h('a', {href: '#/tasks', class: 'button'}, t('back'))));
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    fill(message);
    showErrors({});
    if (!name.value.trim()) {
      showErrors({name: t('required')});
      name.focus();
      return;
    }
    save.disabled = true;
    const body = {name: name.value.trim(), description: description.value, enabled: enabled.checked,
      crontab: crontab()};
    try {
      if (creating) {
        const created = await api('/api/v1/scheduler/task/', {method: 'POST',
          body: {...body, project_id: project.id, device_type: Number(deviceType.value)}});
        notify(t('task.created', {name: body.name}));
        location.hash = `#/task/${created.body.data.natrual_key}`;
      } else {
        await api(`/api/v1/scheduler/tasks/${task.natrual_key}/`, {method: 'PUT', body});
        fill(message, h('p', {class: 'ok', role: 'status'}, t('task.saved')));
      }
    } catch (err) {
      showErrors(err.fields);
      fill(message, errorBox(t('task.notsaved', {message: err.message})));
    } finally {
      save.disabled = false;
    }
  });
  fill(view, form);
  await updatePreview();
}
