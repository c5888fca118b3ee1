// Billing runs (/api/v1/billing/runs/): outcome counts per run, and a run's meters with reasons.

import {api} from '../api.js';
import {errorBox, field, fill, h, table} from '../dom.js';
import {formatTime} from '../format.js';
import {t} from '../i18n.js';
import {typeName} from './meters.js';

const OUTCOMES = ['', 'skipped', 'estimated', 'failed', 'exception'];

export function runOutcome(run) {
  return t('run.counts', {billed: run.billed, estimated: run.estimated, skipped: run.skipped,
    failed: run.failed + (run.exceptions || 0)});
}

export async function renderList({view, project}) {
  const heading = h('h1', {}, t('nav.runs'));
  fill(view, heading, h('p', {}, t('loading')));
  const {body: runs} = await api('/api/v1/billing/runs/', {query: {project_id: project.id, page_size: 50}});
  const zone = project.timezone;
  fill(view, heading, runs.length ? table(t('runs.caption'),
    [t('run.fire'), t('meters.type'), t('run.period'), t('run.status'), t('run.outcome')],
    runs.map((run) => [
      h('a', {href: `#/run/${encodeURIComponent(run.run_id)}`}, formatTime(run.fire_time, zone)),
      typeName(run.device_type),
      `${formatTime(run.period_start, zone)} – ${formatTime(run.period_end, zone)}`,
      t(run.finished ? 'run.finished' : 'run.running'), runOutcome(run)]), {id: 'run-table'})
    : h('p', {}, t('runs.none')));
}

export async function renderRun({view, project, params}) {
  const runId = decodeURIComponent(params[0]);
  const outcome = h('select', {id: 'outcome'},
    OUTCOMES.map((o) => h('option', {value: o}, o ? t(`outcome.${o}`) : t('all'))));
  const devices = h('div', {id: 'run-devices'});
  const zone = project.timezone;
  async function load() {
    const {body: run} = await api(`/api/v1/billing/runs/${encodeURIComponent(runId)}`,
      {query: {outcome: outcome.value, page_size: 500}});
    fill(devices, run.devices.length ? table(t('run.devices'),
      [t('meters.key'), t('run.outcome'), t('run.reason')],
      run.devices.map((d) => [d.device_key, t(`outcome.${d.outcome}`), d.reason || d.estimate_reason || '']))
      : h('p', {}, t('run.nodevices')),
    run.dead_lettered_jobs?.length ? table(t('run.deadjobs'), [t('run.job'), t('run.reason')],
      run.dead_lettered_jobs.map((j) => [j.job_id, j.reason])) : null);
    return run;
  }
  const run = await load();
  outcome.addEventListener('change', () => load().catch((err) => fill(devices,
    errorBox(t('error.load', {message: err.message})))));
  fill(view, h('h1', {}, `${t('run.title')} ${run.run_id}`),
    h('dl', {class: 'facts'},
      h('dt', {}, t('meters.type')), h('dd', {}, typeName(run.device_type)),
      h('dt', {}, t('run.period')), h('dd', {},
        `${formatTime(run.period_start, zone)} – ${formatTime(run.period_end, zone)}`),
      h('dt', {}, t('run.status')), h('dd', {}, t(run.finished ? 'run.finished' : 'run.running')),
      h('dt', {}, t('run.outcome')), h('dd', {}, runOutcome(run))),
    h('p', {class: 'hint'}, t('run.billedhint')),
    field(t('run.filter'), outcome), devices,
    h('p', {}, h('a', {href: '#/runs'}, t('back'))));
}
