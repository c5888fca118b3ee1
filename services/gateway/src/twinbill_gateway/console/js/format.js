// Times and numbers as the console shows them: every time in the project's time zone.

const formatters = new Map();

function formatter(timeZone) {
  if (!formatters.has(timeZone)) {
    // sv-SE writes ISO-like "2026-12-06 18:20:19", the same in both languages.
    formatters.set(timeZone, new Intl.DateTimeFormat('sv-SE', {
      timeZone, year: 'numeric', month: '2-digit', day: '2-digit',
      hour: '2-digit', minute: '2-digit', second: '2-digit'}));
  }
  return formatters.get(timeZone);
}

/** Epoch milliseconds (or an ISO string with offset) in the zone; '—' when unset (0 or null). */
export function formatTime(value, timeZone) {
  if (value === null || value === undefined || value === 0 || value === '') return '—';
  const date = typeof value === 'number' ? new Date(value) : new Date(value);
  if (Number.isNaN(date.getTime())) return String(value);
  return formatter(timeZone).format(date);
}

/** A naive local ISO time from the scheduler or billing ("2026-12-06T18:20:00"), as shown. */
export function formatLocal(value) {
  return value ? String(value).replace('T', ' ') : '—';
}

/** Today's date in the zone as YYYY-MM-DD, `days` days from today. */
export function localDate(timeZone, days = 0) {
  return formatter(timeZone).format(new Date(Date.now() + days * 86400000)).slice(0, 10);
}

/** Quote one CSV cell (RFC 4180). */
export function csvCell(value) {
  const text = value === null || value === undefined ? '' : String(value);
  return /[",\r\n]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
}
