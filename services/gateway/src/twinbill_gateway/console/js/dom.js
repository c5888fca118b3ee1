// Small DOM helpers: elements are built with properties and text nodes, never from HTML strings,
// so a meter name or a resident can never inject markup.

/** h('a', {href: '#/x', class: 'c'}, 'text', child) */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith('on')) el.addEventListener(name.slice(2), value);
    else if (name === 'class') el.className = value;
    else if (name === 'dataset') Object.assign(el.dataset, value);
    else if (name in el && typeof value !== 'string') el[name] = value;
    else el.setAttribute(name, value === true ? '' : value);
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

/** Replace an element's content. */
export function fill(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

/** A table with a caption, headers and rows of cells (strings or nodes). */
export function table(caption, headers, rows, attrs = {}) {
  return h('div', {class: 'table-wrap'},
    h('table', attrs,
      h('caption', {}, caption),
      h('thead', {}, h('tr', {}, headers.map((name) => h('th', {scope: 'col'}, name)))),
      h('tbody', {}, rows.map((cells) => h('tr', {}, cells.map((cell) => h('td', {}, cell)))))));
}

/** A labelled control: <label for=id>text</label> + control + a place for the field's error. */
export function field(labelText, control, {hint} = {}) {
  const errorId = `${control.id}-error`;
  control.setAttribute('aria-describedby', errorId);
  return h('div', {class: 'field'},
    h('label', {for: control.id}, labelText),
    control,
    hint ? h('small', {class: 'hint'}, hint) : null,
    h('span', {class: 'field-error', id: errorId, role: 'alert'}));
}

/** Show a message for one field (or clear it with ''). */
export function fieldError(id, message) {
  const control = document.getElementById(id);
  const slot = document.getElementById(`${id}-error`);
  if (slot) slot.textContent = message || '';
  if (control) control.setAttribute('aria-invalid', message ? 'true' : 'false');
}

/** Offer a Blob as a file download. */
export function download(blob, filename) {
  const url = URL.createObjectURL(blob);
  const link = h('a', {href: url, download: filename, hidden: true});
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60000);
}

/** An error box for the page (role=alert, so screen readers announce it). */
export function errorBox(message) {
  return h('p', {class: 'error', role: 'alert'}, message);
}
