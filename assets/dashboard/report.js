// The report of one property: header controls, filter chips, top stats, the main graph, the
// breakdown cards with their details dialogs, and CSV export. All state that a link should carry
// lives in the URL (see api.js); the tabs picked in each card are remembered in localStorage.
import { html, useState, useEffect, useRef, useMemo } from './vendor/preact-htm.js';
import {
  PERIODS, intervalsFor, parseState, updateState, addFilter, removeFilter, hasGoalFilter,
  queryBody, query, propKeys, currentVisitors, formatMetric, formatChange, formatInt,
  rawValue, csv, download, setPageState, errorText,
} from './api.js';
import { Graph } from './graph.js';
import { FunnelCard } from './funnel.js';

// ---------------------------------------------------------------------------------------------
// What the report shows

const TOP_STATS = [
  ['visitors', 'Unique visitors'],
  ['visits', 'Total visits'],
  ['pageviews', 'Total pageviews'],
  ['views_per_visit', 'Views per visit'],
  ['bounce_rate', 'Bounce rate'],
  ['visit_duration', 'Visit duration'],
];
const GOAL_STATS = [
  ['visitors', 'Unique conversions'],
  ['events', 'Total conversions'],
  ['conversion_rate', 'Conversion rate'],
  ['total_revenue', 'Total revenue'],
];
const topStatsFor = (s) => (hasGoalFilter(s) ? GOAL_STATS : TOP_STATS);
const graphMetric = (s) => {
  const stats = topStatsFor(s);
  return stats.some(([m]) => m === s.metric) ? s.metric : stats[0][0];
};

const COLUMN = {
  visitors: 'Visitors', visits: 'Visits', pageviews: 'Pageviews', events: 'Events',
  bounce_rate: 'Bounce rate', visit_duration: 'Duration', conversion_rate: 'CR',
  total_revenue: 'Revenue', average_revenue: 'Avg. revenue',
};

// A panel: its id (data-panel, data-tab, URL-free), tab label, dimension, metrics in the card,
// and column headings where they differ from COLUMN.
const panel = (id, label, dim, extra = {}) => ({ id, label, dim, metrics: ['visitors'], ...extra });
const GOAL_METRICS = ['visitors', 'events', 'conversion_rate', 'total_revenue'];
export const CARDS = [
  { id: 'sources', title: 'Top sources', panels: [
    panel('sources', 'Sources', 'visit:source'),
    panel('channels', 'Channels', 'visit:channel'),
    panel('utm_source', 'UTM source', 'visit:utm_source'),
    panel('utm_medium', 'UTM medium', 'visit:utm_medium'),
    panel('utm_campaign', 'UTM campaign', 'visit:utm_campaign'),
    panel('utm_content', 'UTM content', 'visit:utm_content'),
    panel('utm_term', 'UTM term', 'visit:utm_term'),
  ] },
  { id: 'pages', title: 'Top pages', panels: [
    panel('pages', 'Pages', 'event:page', { metrics: ['visitors', 'pageviews'] }),
    panel('entry_pages', 'Entry pages', 'visit:entry_page'),
    panel('exit_pages', 'Exit pages', 'visit:exit_page'),
  ] },
  { id: 'locations', title: 'Locations', panels: [
    panel('countries', 'Countries', 'visit:country'),
    panel('regions', 'Regions', 'visit:region_name'),
    panel('cities', 'Cities', 'visit:city_name'),
  ] },
  { id: 'devices', title: 'Devices', panels: [
    panel('browsers', 'Browsers', 'visit:browser'),
    panel('os', 'Operating systems', 'visit:os'),
    panel('devices', 'Devices', 'visit:device'),
  ] },
  { id: 'goals', title: 'Goal conversions', panels: [
    panel('goals', 'Goals', 'event:goal', {
      metrics: GOAL_METRICS, columns: { visitors: 'Uniques', events: 'Total', conversion_rate: 'CR', total_revenue: 'Revenue' },
    }),
  ] },
  { id: 'props', title: 'Custom properties', panels: [panel('props', 'Properties', null, { metrics: ['visitors', 'events'] })] },
];
const PANELS = Object.fromEntries(CARDS.flatMap((c) => c.panels.map((p) => [p.id, p])));

const dimOf = (def, propKey) => (def.id === 'props' ? (propKey ? `event:props:${propKey}` : null) : def.dim);

/** The metrics of a panel's details dialog and CSV: more than the card shows for visit dimensions. */
function detailMetrics(def, s) {
  if (!def.dim || !def.dim.startsWith('visit:')) return def.metrics;
  return hasGoalFilter(s) ? ['visitors', 'conversion_rate'] : ['visitors', 'visits', 'bounce_rate', 'visit_duration'];
}

const regionNames = (() => {
  try {
    return new Intl.DisplayNames(['en'], { type: 'region' });
  } catch {
    return null;
  }
})();

/** How a dimension value is shown. */
function rowLabel(dim, v) {
  if (v == null || v === '') return '(none)';
  if (dim === 'visit:country' && regionNames) {
    try {
      return regionNames.of(String(v).toUpperCase()) || v;
    } catch {
      return v;
    }
  }
  return String(v);
}

// ---------------------------------------------------------------------------------------------
// Loading: one function fetches everything the current state shows, through a cache of bodies.

const breakdownBody = (site, s, dim, metrics, limit, offset = 0, filters = []) =>
  queryBody(site, s, { metrics, dimensions: [dim], orderBy: [['visitors', 'desc']], limit, offset, filters });

/** The graph's series: labels, values, and the previous period's values aligned by offset. */
async function loadGraph(ask, site, s) {
  const metric = graphMetric(s);
  const dims = [`time:${s.interval}`];
  const series = (res) => {
    const labels = (res.meta && res.meta.time_labels) || res.results.map((r) => r.dimensions[0]);
    const byLabel = new Map(res.results.map((r) => [r.dimensions[0], r]));
    return { labels, byLabel, values: labels.map((l) => rawValue(byLabel.get(l)?.metrics[0]) ?? 0) };
  };
  const res = await ask(queryBody(site, s, { metrics: [metric], dimensions: dims, timeLabels: true, compare: s.compare }));
  const cur = series(res);
  let prev = null;
  let prevLabels = null;
  const range = res.meta && res.meta.comparison_date_range;
  if (s.compare && range) {
    // The previous period on its own, so that buckets empty now still show their old value.
    const p = series(await ask(queryBody(site, s, { metrics: [metric], dimensions: dims, timeLabels: true, dateRange: range })));
    prev = cur.labels.map((_, i) => (i < p.values.length ? p.values[i] : null));
    prevLabels = p.labels;
  } else if (s.compare) {
    prev = cur.labels.map((l) => rawValue(cur.byLabel.get(l)?.comparison?.metrics[0]) ?? null);
  }
  return { metric, interval: s.interval, labels: cur.labels, values: cur.values, prev, prevLabels };
}

async function loadPanel(ask, token, site, s, def, propKey) {
  let keys = null;
  if (def.id === 'props') {
    keys = await propKeys(token, site, s);
    propKey = keys.includes(propKey) ? propKey : keys[0];
    if (!propKey) return { def, keys, propKey: null, dim: null, metrics: def.metrics, rows: [] };
  }
  const dim = dimOf(def, propKey);
  const res = await ask(breakdownBody(site, s, dim, def.metrics, 9));
  return { def, keys, propKey, dim, metrics: def.metrics, rows: res.results };
}

/** Fetches top stats, graph and the given panels; errors are kept per part, never thrown. */
async function loadReport(ask, token, site, s, panelIds, propKey) {
  const settle = (p) => p.then((data) => ({ data }), (error) => ({ error }));
  const stats = topStatsFor(s);
  const [top, graph, ...panels] = await Promise.all([
    settle(ask(queryBody(site, s, { metrics: stats.map(([m]) => m), compare: s.compare }))),
    settle(loadGraph(ask, site, s)),
    ...panelIds.map((id) => settle(loadPanel(ask, token, site, s, PANELS[id], propKey))),
  ]);
  const parts = [top, graph, ...panels];
  return {
    top, graph, stats,
    panels: Object.fromEntries(panelIds.map((id, i) => [id, panels[i]])),
    unauthorized: parts.some((p) => p.error && p.error.status === 401),
    failed: parts.some((p) => p.error),
  };
}

// ---------------------------------------------------------------------------------------------
// CSV export

function fileRange(res, s) {
  const r = res && res.query && res.query.date_range;
  if (Array.isArray(r)) return r.map((d) => String(d).slice(0, 10));
  if (s.period === 'custom') return [s.from, s.to];
  return [s.period, new Date().toLocaleDateString('en-CA')];
}

/** Builds the CSV of a panel or of the whole dashboard ('dashboard'): {text, filename}. */
export async function exportData(token, site, s, name, propKey) {
  const ask = (body) => query(token, body);
  if (name !== 'dashboard') {
    const def = PANELS[name];
    if (!def) throw new Error(`unknown panel ${name}`);
    let key = propKey;
    if (def.id === 'props' && !key) key = (await propKeys(token, site, s))[0];
    const dim = dimOf(def, key);
    const metrics = detailMetrics(def, s);
    const res = dim ? await ask(breakdownBody(site, s, dim, metrics, 10000)) : { results: [] };
    const rows = [[dim || 'event:props', ...metrics], ...res.results.map((r) => [r.dimensions[0], ...r.metrics])];
    const [from, to] = fileRange(res, s);
    return { text: csv(rows), filename: `footfall-${site}-${name}-${from}-${to}.csv` };
  }
  const stats = topStatsFor(s).map(([m]) => m);
  const top = await ask(queryBody(site, s, { metrics: stats }));
  const rows = [['section', 'dimension', 'value', 'metric', 'number']];
  const t = top.results[0];
  stats.forEach((m, i) => rows.push(['top_stats', '', '', m, t ? t.metrics[i] : '']));
  const graph = await loadGraph(ask, site, { ...s, compare: false });
  graph.labels.forEach((l, i) => rows.push(['graph', `time:${s.interval}`, l, graph.metric, graph.values[i]]));
  const parts = await Promise.all(Object.values(PANELS).map(async (def) => {
    let key = propKey;
    if (def.id === 'props' && !key) key = (await propKeys(token, site, s))[0];
    const dim = dimOf(def, key);
    if (!dim) return [];
    const metrics = detailMetrics(def, s);
    const res = await ask(breakdownBody(site, s, dim, metrics, 100));
    return res.results.flatMap((r) => metrics.map((m, i) => [def.id, dim, r.dimensions[0], m, r.metrics[i]]));
  }));
  parts.forEach((p) => rows.push(...p));
  const [from, to] = fileRange(top, s);
  return { text: csv(rows), filename: `footfall-${site}-dashboard-${from}-${to}.csv` };
}

// ---------------------------------------------------------------------------------------------
// The report

/** The current location's query string, re-read on every navigation. */
export function useSearch() {
  const [search, setSearch] = useState(location.search);
  useEffect(() => {
    const on = () => setSearch(location.search);
    window.addEventListener('popstate', on);
    window.addEventListener('footfall:navigate', on);
    return () => {
      window.removeEventListener('popstate', on);
      window.removeEventListener('footfall:navigate', on);
    };
  }, []);
  return search;
}

function loadTabs() {
  try {
    return JSON.parse(localStorage.getItem('footfall.tabs')) || {};
  } catch {
    return {};
  }
}

/**
 * Props: site (domain), token (bearer), shared (read-only share link), login (a function giving
 * the login form shown after a 401, or null).
 */
export function Report({ site, token, shared, login }) {
  const search = useSearch();
  const s = useMemo(() => parseState(search), [search]);
  const [tabs, setTabs] = useState(loadTabs);
  const [propKey, setPropKey] = useState(null);
  const [result, setResult] = useState({ key: null });
  const [tick, setTick] = useState(0);
  const [details, setDetails] = useState(null);
  const cache = useRef(new Map());

  const activeTabs = CARDS.map((c) => (c.panels.some((p) => p.id === tabs[c.id]) ? tabs[c.id] : c.panels[0].id));
  const loadKey = JSON.stringify([site, token, search, activeTabs, propKey]);

  // A query body answered once is not asked again until a realtime refresh clears the cache.
  const ask = (body) => {
    const k = JSON.stringify(body);
    if (!cache.current.has(k)) {
      if (cache.current.size > 300) cache.current.clear();
      cache.current.set(k, query(token, body).catch((e) => {
        cache.current.delete(k);
        throw e;
      }));
    }
    return cache.current.get(k);
  };

  useEffect(() => {
    let live = true;
    loadReport(ask, token, site, s, activeTabs, propKey).then((r) => live && setResult({ key: loadKey, ...r }));
    return () => {
      live = false;
    };
  }, [loadKey, tick]);

  // Realtime: everything again every 10 s.
  useEffect(() => {
    if (s.period !== 'realtime') return undefined;
    const id = setInterval(() => {
      cache.current.clear();
      setTick((t) => t + 1);
    }, 10000);
    return () => clearInterval(id);
  }, [s.period]);

  const unauthorized = result.unauthorized;
  const status = unauthorized ? 'error' : result.key !== loadKey ? 'loading' : result.failed ? 'error' : 'ready';
  useEffect(() => setPageState(status), [status, result]);

  // Tests and scripts: window.footfallExport(name) → Promise of the CSV text.
  const exportNow = (name) => exportData(token, site, s, name, propKey);
  useEffect(() => {
    window.footfallExport = (name) => exportNow(name).then((r) => r.text);
  });
  const exportClick = (name) => exportNow(name).then((r) => download(r.filename, r.text), (e) => alert(errorText(e)));

  if (unauthorized) {
    return html`<div class="report">
      <h1 class="site">${site}</h1>
      <p data-error="unauthorized" role="alert" class="error">${shared
        ? 'This shared link is not valid (it may have been revoked).'
        : 'That key does not open this dashboard.'}</p>
      ${!shared && login && login()}
    </div>`;
  }

  const setTab = (card, id) => {
    if (!activeTabs.includes(id)) setPageState('loading');
    const next = { ...tabs, [card]: id };
    setTabs(next);
    try {
      localStorage.setItem('footfall.tabs', JSON.stringify(next));
    } catch { /* not remembered */ }
  };
  const stale = status === 'loading';

  return html`<div class=${'report' + (stale ? ' stale' : '')}>
    <${Header} site=${site} token=${token} s=${s} onExport=${() => exportClick('dashboard')} />
    <${FilterChips} filters=${s.filters} />
    ${result.top && html`<${TopStats} part=${result.top} stats=${result.stats} s=${s} />`}
    ${result.graph?.error
      ? html`<div data-chart="main" class="card graph"><${ErrorBox} error=${result.graph.error} /></div>`
      : html`<${Graph} part=${result.graph} title=${result.graph?.data && (COLUMN[result.graph.data.metric] || result.graph.data.metric)} />`}
    <div class="cards">
      ${CARDS.map((card, i) => html`<${Card} key=${card.id} card=${card} active=${activeTabs[i]}
        part=${result.panels && result.panels[activeTabs[i]]}
        onTab=${(id) => setTab(card.id, id)} onDetails=${setDetails} onExport=${exportClick}
        onPropKey=${(k) => {
          if (k !== propKey) setPageState('loading');
          setPropKey(k);
        }} />`)}
      <${FunnelCard} site=${site} token=${token} s=${s} />
    </div>
    ${details && html`<${Details} def=${PANELS[details]} site=${site} token=${token} s=${s}
      propKey=${result.panels?.props?.data?.propKey ?? propKey} onClose=${() => setDetails(null)} />`}
  </div>`;
}

// ---------------------------------------------------------------------------------------------
// Header: domain, current visitors, period/interval/compare, export

const localDate = (d) => d.toLocaleDateString('en-CA'); // YYYY-MM-DD in local time

function Header({ site, token, s, onExport }) {
  const onPeriod = (e) => {
    const period = e.target.value;
    if (period !== 'custom') return updateState({ period });
    const to = new Date();
    const from = new Date(Date.now() - 29 * 86400000);
    return updateState({ period, from: s.from || localDate(from), to: s.to || localDate(to) });
  };
  const onDate = (field) => (e) => {
    const next = { from: s.from, to: s.to, [field]: e.target.value };
    if (/^\d{4}-\d{2}-\d{2}$/.test(next.from) && /^\d{4}-\d{2}-\d{2}$/.test(next.to) && next.from <= next.to) {
      updateState({ period: 'custom', ...next });
    }
  };
  return html`<header class="report-head">
    <div class="site-line">
      <h1 class="site">${site}</h1>
      <${CurrentVisitors} site=${site} token=${token} />
    </div>
    <div class="controls">
      <label class="field">Period
        <select data-control="period" value=${s.period} onChange=${onPeriod}>
          ${PERIODS.map(([id, label]) => html`<option value=${id} selected=${id === s.period}>${label}</option>`)}
        </select></label>
      ${s.period === 'custom' && html`
        <label class="field">From <input type="date" data-control="from" value=${s.from} max=${s.to} onChange=${onDate('from')} /></label>
        <label class="field">To <input type="date" data-control="to" value=${s.to} min=${s.from} onChange=${onDate('to')} /></label>`}
      <label class="field">Interval
        <select data-control="interval" value=${s.interval} onChange=${(e) => updateState({ interval: e.target.value })}>
          ${intervalsFor(s).map((i) => html`<option value=${i} selected=${i === s.interval}>${i[0].toUpperCase() + i.slice(1)}</option>`)}
        </select></label>
      <label class="check"><input type="checkbox" data-control="compare" checked=${s.compare}
        onChange=${(e) => updateState({ compare: e.target.checked })} /> Compare to previous period</label>
      <label class="check" title="Add the property's imported history (Plausible CSV) where a report can include it">
        <input type="checkbox" data-control="imports" checked=${s.imports}
        onChange=${(e) => updateState({ imports: e.target.checked })} /> Include imported data</label>
      <button type="button" class="btn" data-export="dashboard" onClick=${onExport}>Export CSV</button>
    </div>
  </header>`;
}

/** Visitors of the last 5 minutes, polled every 10 s whatever the period. */
function CurrentVisitors({ site, token }) {
  const [n, setN] = useState(null);
  useEffect(() => {
    let live = true;
    const poll = () => currentVisitors(token, site).then((v) => live && setN(Number(v)), () => {});
    poll();
    const id = setInterval(poll, 10000);
    return () => {
      live = false;
      clearInterval(id);
    };
  }, [site, token]);
  return html`<span class="current" data-metric="current_visitors" data-raw=${n ?? ''} aria-live="polite">
    <span class="pulse" aria-hidden="true"></span>${n == null ? '…' : formatInt(n)} current visitor${n === 1 ? '' : 's'}
  </span>`;
}

function FilterChips({ filters }) {
  if (!filters.length) return html`<div data-filters class="chips"></div>`;
  return html`<div data-filters class="chips">
    ${filters.map(([op, dim, value], i) => html`<span class="chip" key=${i}>
      <span class="chip-dim">${dim}</span> <span class="chip-op">${op}</span> <strong>${value === '' ? '(none)' : value}</strong>
      <button type="button" class="chip-x" data-filter-remove aria-label=${`Remove filter ${dim} ${op} ${value}`}
        onClick=${() => removeFilter(i)}>×</button>
    </span>`)}
  </div>`;
}

function ErrorBox({ error }) {
  return html`<p class="error" role="alert" data-error=${error.code || 'error'}>${errorText(error)}</p>`;
}

function TopStats({ part, stats, s }) {
  if (part.error) return html`<${ErrorBox} error=${part.error} />`;
  const row = part.data.results[0];
  const selected = graphMetric(s);
  return html`<div class="top-stats" role="group" aria-label="Top stats">
    ${stats.map(([m, label], i) => {
      const v = row ? row.metrics[i] : null;
      const change = row && row.comparison ? row.comparison.change[i] : null;
      const c = s.compare ? formatChange(m, change) : null;
      return html`<button type="button" class="stat" key=${m} data-metric=${m} data-raw=${rawValue(v) ?? ''}
          aria-pressed=${m === selected ? 'true' : 'false'} onClick=${() => updateState({ metric: m })}>
        <span class="stat-label">${label}</span>
        <span class="stat-value">${formatMetric(m, v)}</span>
        ${c && html`<span class=${'change ' + c.cls} data-change=${change ?? undefined} aria-label=${c.label}>${c.text}</span>`}
      </button>`;
    })}
  </div>`;
}

// ---------------------------------------------------------------------------------------------
// The main graph (uPlot), with a visually hidden table of the same numbers

// ---------------------------------------------------------------------------------------------
// Breakdown cards

function Card({ card, active, part, onTab, onDetails, onExport, onPropKey }) {
  const tabIds = card.panels.map((p) => p.id);
  const onKey = (e) => {
    const i = tabIds.indexOf(active);
    const j = { ArrowRight: i + 1, ArrowLeft: i - 1, Home: 0, End: tabIds.length - 1 }[e.key];
    if (j == null) return;
    e.preventDefault();
    const id = tabIds[(j + tabIds.length) % tabIds.length];
    onTab(id);
    requestAnimationFrame(() => e.currentTarget?.querySelector(`[data-tab="${id}"]`)?.focus());
  };
  const def = PANELS[active];
  const data = part && part.data;
  return html`<article class="card panel-card" aria-label=${card.title}>
    <div class="card-head">
      <h2>${card.title}</h2>
      ${card.panels.length > 1 && html`<div class="tabs" role="tablist" aria-label=${card.title} onKeyDown=${onKey}>
        ${card.panels.map((p) => html`<button type="button" role="tab" key=${p.id} data-tab=${p.id}
          id=${`tab-${p.id}`} aria-controls=${`panel-${p.id}`} aria-selected=${p.id === active ? 'true' : 'false'}
          tabindex=${p.id === active ? 0 : -1} onClick=${() => onTab(p.id)}>${p.label}</button>`)}
      </div>`}
    </div>
    <section data-panel=${active} id=${`panel-${active}`} role=${card.panels.length > 1 ? 'tabpanel' : undefined}
      aria-labelledby=${card.panels.length > 1 ? `tab-${active}` : undefined}>
      ${active === 'props' && data && data.keys && data.keys.length > 0 && html`<label class="field prop-key">Property
        <select data-control="prop-key" value=${data.propKey} onChange=${(e) => onPropKey(e.target.value)}>
          ${data.keys.map((k) => html`<option value=${k} selected=${k === data.propKey}>${k}</option>`)}
        </select></label>`}
      ${part && part.error ? html`<${ErrorBox} error=${part.error} />`
        : data ? html`<${Rows} def=${def} dim=${data.dim} metrics=${data.metrics} rows=${data.rows} />`
        : html`<p class="muted empty">Loading…</p>`}
      <div class="card-foot">
        <button type="button" class="btn small" data-details=${active} onClick=${() => onDetails(active)}>Details</button>
        <button type="button" class="btn small" data-export=${active} onClick=${() => onExport(active)}>CSV</button>
      </div>
    </section>
  </article>`;
}

/** Rows with bars; clicking a label adds the filter `is,<dim>,<value>`. */
function Rows({ def, dim, metrics, rows, onPick }) {
  if (!rows || !rows.length) return html`<p class="muted empty">No data yet</p>`;
  const vi = metrics.indexOf('visitors');
  const max = Math.max(1, ...rows.map((r) => Number(r.metrics[vi]) || 0));
  const heading = (m) => (def.columns && def.columns[m]) || COLUMN[m] || m;
  return html`<div class="rows" style=${`--cols:${metrics.length}`}>
    <div class="rows-head" aria-hidden="true"><span>${def.id === 'props' ? dim : def.label}</span>${metrics.map((m) => html`<span class="num">${heading(m)}</span>`)}</div>
    <ul>
      ${rows.map((r) => {
        const v = r.dimensions[0];
        const pick = () => {
          addFilter('is', dim, v == null ? '' : String(v));
          if (onPick) onPick();
        };
        return html`<li data-row data-value=${v == null ? '' : String(v)} key=${String(v)}>
          <span class="label-cell">
            <span class="bar" style=${`width:${((Number(r.metrics[vi]) || 0) / max) * 100}%`}></span>
            <button type="button" class="row-label" title=${`Filter by ${dim} is ${v ?? ''}`} onClick=${pick}>${rowLabel(dim, v)}</button>
          </span>
          ${metrics.map((m, i) => html`<span class="num" aria-label=${heading(m)}
            data-visitors=${m === 'visitors' ? rawValue(r.metrics[i]) : undefined}>${formatMetric(m, r.metrics[i])}</span>`)}
        </li>`;
      })}
    </ul>
  </div>`;
}

// ---------------------------------------------------------------------------------------------
// Details dialog: search and pages of 100

const PAGE = 100;

function Details({ def, site, token, s, propKey, onClose }) {
  const ref = useRef(null);
  const [q, setQ] = useState('');
  const [search, setSearch] = useState('');
  const [page, setPage] = useState(0);
  const [res, setRes] = useState(null);
  const dim = dimOf(def, propKey);
  const metrics = detailMetrics(def, s);

  useEffect(() => {
    const d = ref.current;
    if (d && !d.open) d.showModal ? d.showModal() : d.setAttribute('open', '');
  }, []);
  useEffect(() => {
    const id = setTimeout(() => {
      setSearch(q);
      setPage(0);
    }, 300);
    return () => clearTimeout(id);
  }, [q]);
  useEffect(() => {
    let live = true;
    if (!dim) {
      setRes({ rows: [] });
      return undefined;
    }
    setRes(null);
    const filters = search ? [['contains', dim, [search]]] : [];
    query(token, breakdownBody(site, s, dim, metrics, PAGE, page * PAGE, filters)).then(
      (r) => live && setRes({ rows: r.results }),
      (e) => live && setRes({ error: e }),
    );
    return () => {
      live = false;
    };
  }, [search, page, dim, JSON.stringify(s)]);

  const close = () => {
    ref.current?.open && ref.current.close();
    onClose();
  };
  return html`<dialog ref=${ref} class="details" aria-labelledby="details-title" onClose=${onClose}
      onClick=${(e) => e.target === ref.current && close()}>
    <div class="details-head">
      <h2 id="details-title">${def.label}</h2>
      <button type="button" class="btn small" onClick=${close} aria-label="Close">×</button>
    </div>
    <label class="field">Search ${def.label.toLowerCase()}
      <input type="search" data-control="details-search" value=${q} onInput=${(e) => setQ(e.target.value)} autofocus /></label>
    <div class="details-body">
      ${!res ? html`<p class="muted">Loading…</p>`
        : res.error ? html`<${ErrorBox} error=${res.error} />`
        : html`<${Rows} def=${def} dim=${dim} metrics=${metrics} rows=${res.rows} onPick=${close} />`}
    </div>
    <nav class="pager" aria-label="Pages">
      <button type="button" class="btn small" disabled=${page === 0} onClick=${() => setPage(page - 1)}>Previous</button>
      <span class="muted">Page ${page + 1}</span>
      <button type="button" class="btn small" disabled=${!res || !res.rows || res.rows.length < PAGE} onClick=${() => setPage(page + 1)}>Next</button>
    </nav>
  </dialog>`;
}
