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

/** The zone's offset from UTC at an instant, as "+08:00" (Intl's longOffset). */
function offsetAt(date, timeZone) {
  const part = new Intl.DateTimeFormat('en-US', {timeZone, timeZoneName: 'longOffset'})
    .formatToParts(date).find((p) => p.type === 'timeZoneName')?.value || 'GMT';
  return part === 'GMT' ? '+00:00' : part.slice(3);
}

/** Local midnight of a YYYY-MM-DD date in the zone, as ISO 8601 with its offset. */
export function zonedIso(date, timeZone) {
  const guess = new Date(`${date}T00:00:00Z`);
  const first = offsetAt(guess, timeZone);
  const [sign, hours, minutes] = [first[0] === '-' ? -1 : 1, Number(first.slice(1, 3)), Number(first.slice(4, 6))];
  const instant = new Date(guess.getTime() - sign * (hours * 60 + minutes) * 60000);
  return `${date}T00:00:00${offsetAt(instant, timeZone)}`;
}
