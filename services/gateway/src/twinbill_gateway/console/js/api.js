// The public API, as any client calls it: a bearer token from POST /api/v1/auth/token on every
// request; an expired access token is refreshed once, and when that fails too the session ends
// and the console goes back to sign-in (then back to the page).

const SESSION = 'twinbill.session';

export class ApiError extends Error {
  /** status: HTTP status; fields: {field: message} when the API named bad fields. */
  constructor(status, message, fields = {}) {
    super(message);
    this.status = status;
    this.fields = fields;
  }
}

let expiredHandler = () => {};

/** Called (once per expiry) when the session cannot be renewed. */
export function onSessionExpired(handler) { expiredHandler = handler; }

export function session() {
  try { return JSON.parse(sessionStorage.getItem(SESSION)); } catch { return null; }
}

function saveSession(value) { sessionStorage.setItem(SESSION, JSON.stringify(value)); }

export function clearSession() { sessionStorage.removeItem(SESSION); }

/** Sign in; throws ApiError(401) on wrong credentials. */
export async function signIn(email, password) {
  const response = await fetch('/api/v1/auth/token', {
    method: 'POST', headers: {'Content-Type': 'application/json'},
    body: JSON.stringify({email, password}),
  });
  const body = await readJson(response);
  if (!response.ok) throw errorFrom(response.status, body);
  if (body.status !== 'success') throw new ApiError(401, 'wrong-credentials');
  saveSession({access: body.access_token, refresh: body.refresh_token});
  const me = await api('/api/v1/users/me');
  saveSession({...session(), user: me.body});
  return me.body;
}

/**
 * Sign out: POST /api/v1/auth/token/revoke with the refresh token (it outlives the access token),
 * which refuses every token of this sign-in session from now on; then forget them here.
 * Returns false when the server could not be told (the tokens are forgotten all the same).
 */
export async function signOut() {
  const current = session();
  clearSession();
  if (!current?.refresh) return true;
  try {
    const response = await fetch('/api/v1/auth/token/revoke', {
      method: 'POST', headers: {Authorization: `Bearer ${current.refresh}`},
    });
    // 401: the token had expired or was already revoked: nothing is left to revoke
    return response.ok || response.status === 401;
  } catch {
    return false;
  }
}

async function refresh() {
  const current = session();
  if (!current?.refresh) return false;
  const response = await fetch('/api/v1/auth/token/refresh', {
    method: 'POST', headers: {Authorization: `Bearer ${current.refresh}`},
  });
  if (!response.ok) return false;
  const body = await readJson(response);
  if (body?.status !== 'success') return false;
  saveSession({...current, access: body.access_token, refresh: body.refresh_token});
  return true;
}

async function readJson(response) {
  const text = await response.text();
  if (!text) return null;
  try { return JSON.parse(text); } catch { return {message: text.slice(0, 300)}; }
}

function flatten(errors, prefix = '') {
  const out = {};
  for (const [name, value] of Object.entries(errors || {})) {
    if (Array.isArray(value)) out[prefix + name] = value.join(' ');
    else if (value && typeof value === 'object') Object.assign(out, flatten(value, ''));
    else out[prefix + name] = String(value);
  }
  return out;
}

/** One error from any of the platform's envelopes (seed 000 meta, seed 002, flask-smorest). */
function errorFrom(status, body) {
  if (!body) return new ApiError(status, `HTTP ${status}`);
  if (body.meta) {
    return new ApiError(status, body.meta.message || `HTTP ${status}`, flatten(body.data?.errors));
  }
  if (body.data && (body.data.detail || body.data.errors)) {
    return new ApiError(status, body.data.detail || body.message, flatten(body.data.errors));
  }
  return new ApiError(status, body.message || `HTTP ${status}`, flatten(body.errors));
}

function url(path, query) {
  const params = new URLSearchParams();
  for (const [name, value] of Object.entries(query || {})) {
    if (value !== undefined && value !== null && value !== '') params.append(name, value);
  }
  const text = params.toString();
  return text ? `${path}?${text}` : path;
}

/**
 * Call the API (a JSON `body`, or a FormData `form`). Returns {body, headers} (or the Response with `raw`), throws ApiError.
 * A seed-000 answer whose meta.code is not 0 is an error too.
 */
export async function api(path, {method = 'GET', query, body, form, raw = false, retried = false} = {}) {
  const current = session();
  const headers = {};
  if (current?.access) headers.Authorization = `Bearer ${current.access}`;
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  // a FormData `form` is sent as multipart/form-data (the browser writes the boundary)
  const response = await fetch(url(path, query), {
    method, headers, body: form ?? (body === undefined ? undefined : JSON.stringify(body)),
  });
  if (response.status === 401) {
    if (!retried && await refresh()) return api(path, {method, query, body, form, raw, retried: true});
    clearSession();
    expiredHandler();
    throw new ApiError(401, 'session-expired');
  }
  if (!response.ok) throw errorFrom(response.status, await readJson(response));
  if (raw) return response;
  const parsed = await readJson(response);
  if (parsed?.meta && parsed.meta.code !== 0) throw errorFrom(parsed.meta.code, parsed);
  return {body: parsed, headers: response.headers};
}

/** Every page of a flask-smorest list (X-Pagination), up to `limit` rows. */
export async function listAll(path, query = {}, limit = 5000) {
  const rows = [];
  for (let page = 1; rows.length < limit; page += 1) {
    const {body, headers} = await api(path, {query: {...query, page, page_size: 1000}});
    rows.push(...body);
    const pagination = JSON.parse(headers.get('X-Pagination') || '{}');
    if (!pagination.next_page) break;
  }
  return rows;
}
