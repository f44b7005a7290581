// Everything the dashboard's views share that is not a view: talking to the server (one fetch
// wrapper), tokens, the report state kept in the URL, building v2 query bodies (one place),
// number formatting (one place), CSV, and the page's loading/ready contract.

// ---------------------------------------------------------------------------------------------
// HTTP

/** An API answer that was not 2xx: `status` is the HTTP status, `code` the JSON error code. */
export class ApiError extends Error {
  constructor(status, code, message) {
    super(message || code || `HTTP ${status}`);
    this.status = status;
    this.code = code;
  }
}

/**
 * Sends one request and returns the parsed JSON (null for 204). `token` goes in as bearer,
 * `body` as JSON. Throws ApiError on a non-2xx answer, with the server's {"error":{code,message}}
 * when it sent one; a network failure becomes an ApiError with status 0.
 */
export async function request(method, path, { token, body, signal } = {}) {
  const headers = { Accept: 'application/json' };
  if (token) headers.Authorization = `Bearer ${token}`;
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  let res;
  try {
    res = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      signal,
    });
  } catch (e) {
    if (e.name === 'AbortError') throw e;
    throw new ApiError(0, 'network', 'The server could not be reached.');
  }
  if (res.status === 204) return null;
  const text = await res.text();
  let json = null;
  try {
    json = text ? JSON.parse(text) : null;
  } catch {
    json = null;
  }
  if (!res.ok) {
    const err = (json && json.error) || {};
    throw new ApiError(res.status, err.code || 'http_' + res.status, err.message || text.slice(0, 200));
  }
  return json;
}

/** Human text for an error shown to the user. */
export function errorText(e) {
  if (e instanceof ApiError) return e.message || e.code;
  return String((e && e.message) || e);
}

// ---------------------------------------------------------------------------------------------
// Tokens (sessionStorage: they last as long as the tab)

const ADMIN_KEY = 'footfall.admin';
const siteKeyName = (domain) => `footfall.key.${domain}`;

function storageGet(name) {
  try {
    return sessionStorage.getItem(name);
  } catch {
    return null;
  }
}
function storageSet(name, value) {
  try {
    if (value == null) sessionStorage.removeItem(name);
    else sessionStorage.setItem(name, value);
  } catch {
    /* storage disabled: the token lasts only for this page */
  }
}

export const adminToken = () => storageGet(ADMIN_KEY);
export const setAdminToken = (t) => storageSet(ADMIN_KEY, t);
export const siteKey = (domain) => storageGet(siteKeyName(domain));
export const setSiteKey = (domain, key) => storageSet(siteKeyName(domain), key);

// ---------------------------------------------------------------------------------------------
// Client-side navigation: every URL change goes through `go`, and views re-read `location`
// on the 'footfall:navigate' and 'popstate' events.

export function go(url, { replace = false } = {}) {
  if (url === location.pathname + location.search + location.hash) return;
  history[replace ? 'replaceState' : 'pushState'](null, '', url);
  window.dispatchEvent(new Event('footfall:navigate'));
}

// ---------------------------------------------------------------------------------------------
// Report state in the query string

export const PERIODS = [
  ['realtime', 'Realtime'],
  ['day', 'Today'],
  ['7d', 'Last 7 days'],
  ['30d', 'Last 30 days'],
  ['month', 'Month to date'],
  ['lastmonth', 'Last month'],
  ['12mo', 'Last 12 months'],
  ['custom', 'Custom range'],
];
export const INTERVALS = ['minute', 'hour', 'day', 'week', 'month'];
// The intervals offered for each period (a URL may still ask for another one).
const PERIOD_INTERVALS = {
  realtime: ['minute'],
  day: ['minute', 'hour'],
  '7d': ['hour', 'day'],
  '30d': ['day', 'week'],
  month: ['day', 'week'],
  lastmonth: ['day', 'week'],
  '12mo': ['day', 'week', 'month'],
  custom: ['hour', 'day', 'week', 'month'],
};
const DATE_RE = /^\d{4}-\d{2}-\d{2}$/;

export function defaultInterval(period) {
  return { realtime: 'minute', day: 'hour', '12mo': 'month' }[period] || 'day';
}

export function intervalsFor(state) {
  const list = PERIOD_INTERVALS[state.period] || INTERVALS;
  return list.includes(state.interval) ? list : [...list, state.interval];
}

/** `op,dimension,value`, split on the first two commas only (the value may hold commas). */
function parseFilter(s) {
  const a = s.indexOf(',');
  const b = a < 0 ? -1 : s.indexOf(',', a + 1);
  if (b < 0) return null;
  return [s.slice(0, a), s.slice(a + 1, b), s.slice(b + 1)];
}

/** The report state from a query string. */
export function parseState(search) {
  const p = new URLSearchParams(search);
  let period = p.get('period');
  if (!PERIODS.some(([id]) => id === period)) period = '30d';
  const from = p.get('from') || '';
  const to = p.get('to') || '';
  if (period === 'custom' && !(DATE_RE.test(from) && DATE_RE.test(to))) period = '30d';
  const interval = INTERVALS.includes(p.get('interval')) ? p.get('interval') : defaultInterval(period);
  return {
    period,
    from: period === 'custom' ? from : '',
    to: period === 'custom' ? to : '',
    filters: p.getAll('f').map(parseFilter).filter(Boolean),
    metric: p.get('metric') || 'visitors',
    interval,
    intervalSet: p.has('interval') && INTERVALS.includes(p.get('interval')),
    compare: p.get('compare') === 'previous_period',
    imports: p.get('imports') === '1',
    auth: p.get('auth'),
  };
}

// Query-string encoding that leaves `,` `:` `/` readable (all legal in a query).
const enc = (v) => encodeURIComponent(v).replace(/%2C/gi, ',').replace(/%3A/gi, ':').replace(/%2F/gi, '/');

/** The query string ("?..." or "") for a state; `auth` is always kept. */
export function stateSearch(s) {
  const parts = [];
  const add = (k, v) => parts.push(`${k}=${enc(v)}`);
  if (s.period !== '30d') add('period', s.period);
  if (s.period === 'custom') {
    add('from', s.from);
    add('to', s.to);
  }
  for (const [op, dim, value] of s.filters) add('f', `${op},${dim},${value}`);
  if (s.metric && s.metric !== 'visitors') add('metric', s.metric);
  if (s.intervalSet) add('interval', s.interval);
  if (s.compare) add('compare', 'previous_period');
  if (s.imports) add('imports', '1');
  if (s.auth) add('auth', s.auth);
  return parts.length ? '?' + parts.join('&') : '';
}

/** Navigates to the state `patch` applied on the current one (pushState: back undoes it). */
export function updateState(patch) {
  const next = { ...parseState(location.search), ...patch };
  if ('period' in patch && !('interval' in patch)) {
    next.intervalSet = false;
    next.interval = defaultInterval(next.period);
  }
  if ('interval' in patch) next.intervalSet = true;
  const url = location.pathname + stateSearch(next);
  // Flag the page as loading at once, before the new state has even rendered.
  if (url !== location.pathname + location.search) setPageState('loading');
  go(url);
}

/** Adds filter `[op, dim, value]`, replacing an `is` filter already on that dimension. */
export function addFilter(op, dim, value) {
  const s = parseState(location.search);
  const filters = s.filters.filter((f) => !(f[1] === dim && f[0] === 'is' && op === 'is'));
  filters.push([op, dim, value]);
  updateState({ filters });
}

export function removeFilter(index) {
  const s = parseState(location.search);
  updateState({ filters: s.filters.filter((_, i) => i !== index) });
}

export const hasGoalFilter = (s) => s.filters.some((f) => f[1] === 'event:goal');

// ---------------------------------------------------------------------------------------------
// v2 query bodies: the only place they are built

/** The v2 `date_range` of a state. */
export function dateRange(s) {
  if (s.period === 'custom') return [s.from, s.to];
  return { month: 'month_to_date', lastmonth: 'last_month' }[s.period] || s.period;
}

/**
 * A POST /api/v2/query body for the report state `s` of `site`, with the state's filters plus
 * `filters`. `dateRange` overrides the state's range (the graph's previous period).
 */
export function queryBody(site, s, opts) {
  const { metrics, dimensions = [], filters = [], orderBy, limit, offset = 0 } = opts;
  const body = {
    site_id: site,
    date_range: opts.dateRange || dateRange(s),
    metrics,
    filters: [...s.filters.map(([op, dim, v]) => [op, dim, [v]]), ...filters],
  };
  if (dimensions.length) body.dimensions = dimensions;
  if (orderBy) body.order_by = orderBy;
  if (limit) body.pagination = { limit, offset };
  const include = {};
  if (opts.timeLabels) include.time_labels = true;
  if (opts.compare) include.comparisons = { mode: 'previous_period' };
  if (s.imports) include.imports = true;
  if (Object.keys(include).length) body.include = include;
  return body;
}

export const query = (token, body, signal) => request('POST', '/api/v2/query', { token, body, signal });

export async function propKeys(token, site, s) {
  const r = dateRange(s);
  const qs = new URLSearchParams({ site_id: site, date_range: Array.isArray(r) ? r.join(',') : r });
  const res = await request('GET', `/api/v2/prop-keys?${qs}`, { token });
  return (res && res.prop_keys) || [];
}

export const currentVisitors = (token, site) =>
  request('GET', `/api/v1/stats/realtime/visitors?site_id=${encodeURIComponent(site)}`, { token });

// ---------------------------------------------------------------------------------------------
// Formatting: the only place numbers become text

const grouped = new Intl.NumberFormat('en-US');
const POINT_METRICS = ['bounce_rate', 'conversion_rate', 'engagement_rate', 'percentage'];

/** The plain number of a metric value (revenue objects give their value). */
export function rawValue(v) {
  if (v && typeof v === 'object') return v.value;
  return v;
}

/** 1,234 up to 99,999; then 123k, 12.3k-style compact numbers. */
export function formatInt(n) {
  if (n == null || Number.isNaN(n)) return '—';
  const abs = Math.abs(n);
  if (abs < 100000) return grouped.format(Math.round(n));
  for (const [div, unit] of [[1e9, 'B'], [1e6, 'M'], [1e3, 'k']]) {
    if (abs >= div) {
      const x = n / div;
      return (Math.abs(x) < 100 ? x.toFixed(1) : Math.round(x).toString()).replace(/\.0$/, '') + unit;
    }
  }
  return grouped.format(n);
}

export function formatDuration(sec) {
  if (sec == null) return '—';
  const s = Math.round(sec);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m ${s % 60}s`;
  return `${Math.floor(s / 3600)}h ${Math.floor((s % 3600) / 60)}m`;
}

export function formatMoney(v) {
  if (v == null || v.value == null) return '—';
  // No currency: no revenue at all (—), or several currencies mixed (a bare sum).
  if (!v.currency) return v.value === 0 ? '—' : v.value.toFixed(2);
  try {
    return new Intl.NumberFormat('en-US', { style: 'currency', currency: v.currency }).format(v.value);
  } catch {
    return `${v.value.toFixed(2)} ${v.currency}`;
  }
}

/** A metric's value as text. */
export function formatMetric(metric, v) {
  if (v == null) return '—';
  switch (metric) {
    case 'bounce_rate':
    case 'engagement_rate':
    case 'percentage':
      return `${Math.round(v)}%`;
    case 'conversion_rate':
      return `${Math.round(v * 100) / 100}%`;
    case 'visit_duration':
      return formatDuration(v);
    case 'views_per_visit':
      return Number(v).toFixed(2);
    case 'total_revenue':
    case 'average_revenue':
      return formatMoney(v);
    default:
      return formatInt(v);
  }
}

/** A comparison change: {text, label, cls} ("↑ 12%", aria label, good/bad/flat class). */
export function formatChange(metric, change) {
  if (change == null) return { text: '—', label: 'no comparison', cls: 'flat' };
  const unit = POINT_METRICS.includes(metric) ? ' pp' : '%';
  const word = POINT_METRICS.includes(metric) ? 'points' : 'percent';
  const n = Math.abs(Math.round(change * 10) / 10);
  if (change === 0) return { text: `0${unit}`, label: 'no change', cls: 'flat' };
  const up = change > 0;
  // A higher bounce rate or a longer time to convert is bad news.
  const good = metric === 'bounce_rate' ? !up : up;
  return {
    text: `${up ? '↑' : '↓'} ${n}${unit}`,
    label: `${up ? 'up' : 'down'} ${n} ${word} on the previous period`,
    cls: good ? 'good' : 'bad',
  };
}

// ---------------------------------------------------------------------------------------------
// CSV (RFC 4180)

function csvField(v) {
  if (v == null) return '';
  const s = String(typeof v === 'object' ? rawValue(v) ?? '' : v);
  return /[",\r\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}
export const csv = (rows) => rows.map((r) => r.map(csvField).join(',')).join('\r\n') + '\r\n';

/** Offers `text` as a download named `filename`. */
export function download(filename, text) {
  const url = URL.createObjectURL(new Blob([text], { type: 'text/csv;charset=utf-8' }));
  const a = document.createElement('a');
  a.href = url;
  a.download = filename;
  document.body.appendChild(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
}

// ---------------------------------------------------------------------------------------------
// The loading/ready contract: <main data-state="loading|ready|error">, and a performance mark
// each time the page becomes ready.

export function setPageState(state) {
  const main = document.querySelector('main');
  if (!main) return;
  main.dataset.state = state;
  if (state === 'ready') performance.mark('footfall-ready');
}
