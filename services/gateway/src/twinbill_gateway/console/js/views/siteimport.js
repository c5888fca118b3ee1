// Site CSV import (POST /api/v1/io/sites_csv, seed 001's upload_sites_csv): the twin checks the
// whole file first and imports nothing when any cell is wrong, naming each problem as
// "<line>.<column>". The page lists them (row, column, message) and shows the file with each bad
// cell marked on its own row, so a property manager can fix the spreadsheet and send it again.

import {api} from '../api.js';
import {errorBox, field, fill, h, table} from '../dom.js';
import {t} from '../i18n.js';

const SHOWN_ROWS = 300;

/** RFC 4180 records of `text`, each with the physical line it ends on (as Python's csv.reader
 * counts them); blank lines are skipped as csv.DictReader skips them. */
export function parseCsv(text) {
  const records = [];
  let record = []; let cell = ''; let quoted = false; let line = 1; let started = false;
  const endRecord = () => {
    record.push(cell);
    if (started || record.length > 1 || cell !== '') records.push({line, cells: record});
    record = []; cell = ''; started = false;
  };
  const body = text.replace(/^\ufeff/, '');
  for (let i = 0; i < body.length; i += 1) {
    const c = body[i];
    if (quoted) {
      if (c === '"' && body[i + 1] === '"') { cell += '"'; i += 1; } else if (c === '"') quoted = false;
      else { if (c === '\n') line += 1; cell += c; }
    } else if (c === '"') { quoted = true; started = true; } else if (c === ',') { record.push(cell); cell = ''; started = true; } else if (c === '\r') {
      // \r\n ends the record at the \n
    } else if (c === '\n') { endRecord(); line += 1; } else { cell += c; started = true; }
  }
  if (cell !== '' || record.length || started) endRecord();
  return records;
}

/** {line: {column: message}} and the problems naming no line, from the API's fields. */
function problemsByLine(fields) {
  const byLine = new Map();
  const general = [];
  for (const [key, message] of Object.entries(fields || {})) {
    const match = key.match(/^(\d+)\.(.+)$/);
    if (!match) { general.push(`${key}: ${message}`); continue; }
    const line = Number(match[1]);
    if (!byLine.has(line)) byLine.set(line, {});
    byLine.get(line)[match[2]] = message;
  }
  return {byLine, general};
}

function columnName(column) {
  return {_row: t('csv.wholerow'), _header: t('csv.header'), _file: t('csv.file')}[column] || column;
}

function fileTable(records, byLine) {
  const [header, ...rows] = records;
  if (!header) return null;
  const shown = rows.filter((r) => byLine.has(r.line)).concat(rows.filter((r) => !byLine.has(r.line)))
    .slice(0, SHOWN_ROWS).sort((a, b) => a.line - b.line);
  return h('div', {class: 'table-wrap'}, h('table', {id: 'csv-file'},
    h('caption', {}, t('csv.filecaption')),
    h('thead', {}, h('tr', {}, h('th', {scope: 'col'}, t('csv.line')),
      header.cells.map((name) => h('th', {scope: 'col', class: byLine.get(1) ? 'bad-cell' : null}, name)),
      h('th', {scope: 'col'}, t('csv.problems')))),
    h('tbody', {}, shown.map((row) => {
      const problems = byLine.get(row.line) || {};
      return h('tr', {class: Object.keys(problems).length ? 'bad-row' : null, dataset: {line: String(row.line)}},
        h('th', {scope: 'row'}, String(row.line)),
        header.cells.map((name, i) => {
          const bad = problems[name.trim()];
          return h('td', bad ? {class: 'bad-cell', title: bad, dataset: {column: name.trim()}}
            : {dataset: {column: name.trim()}}, row.cells[i] ?? '');
        }),
        h('td', {class: 'error'}, Object.entries(problems).map(([column, message]) => `${columnName(column)}: ${message}`).join('; ')));
    }))));
}

/** The import card of the structure page; `done()` reloads the tree after a good import. */
export function importSection(project, done) {
  const file = h('input', {id: 'csv-upload', type: 'file', accept: '.csv,text/csv'});
  const result = h('div', {id: 'csv-result', 'aria-live': 'polite'});
  const send = h('button', {type: 'submit'}, t('csv.import'));
  const form = h('form', {class: 'controls', 'aria-label': t('csv.title')},
    field(t('csv.choose'), file, {hint: t('csv.hint')}), send);
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    const chosen = file.files[0];
    if (!chosen) {
      fill(result, errorBox(t('csv.nofile')));
      return;
    }
    send.disabled = true;
    fill(result, h('p', {}, t('loading')));
    const text = await chosen.text();
    const upload = new FormData();
    upload.append('project_id', String(project.id));
    upload.append('file', new Blob([text], {type: 'text/csv'}), chosen.name);
    try {
      const {body: counts} = await api('/api/v1/io/sites_csv', {method: 'POST', query: {project_id: project.id},
        form: upload});
      fill(result, h('p', {class: 'ok', id: 'csv-imported'}, t('csv.imported', {counts: Object.entries(counts)
        .filter(([, n]) => n).map(([name, n]) => `${n} ${name}`).join(', ') || '0'})));
      await done();
    } catch (err) {
      if (err.status === 401) return;
      const {byLine, general} = problemsByLine(err.fields);
      const listed = [...byLine].flatMap(([line, problems]) => Object.entries(problems)
        .map(([column, message]) => [String(line), columnName(column), message]));
      fill(result, errorBox(t('csv.rejected', {message: err.message})),
        general.length ? h('ul', {class: 'error'}, general.map((x) => h('li', {}, x))) : null,
        listed.length ? table(t('csv.errors', {count: listed.length}), [t('csv.line'), t('csv.column'), t('csv.message')],
          listed, {id: 'csv-errors'}) : null,
        byLine.size ? fileTable(parseCsv(text), byLine) : null);
    } finally {
      send.disabled = false;
    }
  });
  return h('section', {'aria-labelledby': 'csv-title'}, h('h2', {id: 'csv-title'}, t('csv.title')), form, result);
}
