// The main graph: the selected metric over time with uPlot (the global from
// vendor/uPlot.iife.min.js), the previous period as a dashed line, and the same series as a
// visually hidden table for screen readers.
import { html, useEffect, useRef } from './vendor/preact-htm.js';
import { formatMetric, formatInt, formatDuration } from './api.js';

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
/** A short axis label from a bucket label (YYYY-MM-DD[ HH:MM:SS]). */
function shortLabel(label, interval) {
  if (!label) return '';
  const [y, mo, d] = label.slice(0, 10).split('-');
  const month = MONTHS[Number(mo) - 1] || mo;
  if (interval === 'minute' || interval === 'hour') return label.slice(11, 16) || label;
  if (interval === 'month') return `${month} ${y}`;
  return `${month} ${Number(d)}`;
}

/** Metrics that are whole numbers: their axis only has whole ticks. */
const COUNTS = ['visitors', 'visits', 'pageviews', 'events'];
const WHOLE_STEPS = [1, 2, 5].flatMap((m) => [1, 10, 100, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8].map((p) => m * p))
  .sort((a, b) => a - b);

function axisValue(metric, v) {
  if (metric === 'visit_duration') return formatDuration(v);
  if (['bounce_rate', 'conversion_rate'].includes(metric)) return `${v}%`;
  if (metric === 'views_per_visit') return Number(v).toFixed(1);
  return formatInt(v);
}

const cssVar = (el, name) => getComputedStyle(el).getPropertyValue(name).trim();

export function Graph({ part, title }) {
  const box = useRef(null);
  const data = part && part.data;
  useEffect(() => {
    const el = box.current;
    if (!data || !el || typeof uPlot === 'undefined') return undefined;
    const { labels, values, prev, metric, interval } = data;
    const xs = labels.map((_, i) => i);
    const accent = cssVar(el, '--accent') || '#6366f1';
    const axis = { stroke: cssVar(el, '--muted') || '#666', grid: { stroke: cssVar(el, '--grid') || '#eee', width: 1 }, ticks: { show: false } };
    const series = [
      { label: 'Time', value: (u, i) => (i == null ? '' : labels[i] ?? '') },
      { label: 'This period', stroke: accent, fill: accent + '22', width: 2, points: { show: labels.length < 40 }, value: (u, v) => (v == null ? '—' : formatMetric(metric, v)) },
    ];
    const d = [xs, values];
    if (prev) {
      series.push({ label: 'Previous period', stroke: cssVar(el, '--muted') || '#999', width: 1.5, dash: [6, 4], points: { show: false }, value: (u, v) => (v == null ? '—' : formatMetric(metric, v)) });
      d.push(prev);
    }
    const u = new uPlot({
      width: el.clientWidth || 600,
      height: 260,
      scales: { x: { time: false }, y: { range: (u, min, max) => [0, max > 0 ? max * 1.1 : 1] } },
      series,
      axes: [
        { ...axis, incrs: [1, 2, 3, 4, 6, 7, 12, 24, 30, 48, 60, 90, 120, 180, 365], space: 70,
          values: (u, splits) => splits.map((i) => shortLabel(labels[Math.round(i)], interval)) },
        { ...axis, size: 64, incrs: COUNTS.includes(metric) ? WHOLE_STEPS : undefined,
          values: (u, splits) => splits.map((v) => axisValue(metric, v)) },
      ],
      legend: { show: true },
      cursor: { drag: { x: false, y: false } },
    }, d, el.querySelector('.plot'));
    const ro = new ResizeObserver(() => u.setSize({ width: el.clientWidth, height: 260 }));
    ro.observe(el);
    return () => {
      ro.disconnect();
      u.destroy();
    };
  }, [data]);

  return html`<div data-chart="main" class="card graph" ref=${box}>
    <div class="plot"></div>
    ${!data && html`<p class="muted loading-note">Loading…</p>`}
    ${data && html`<table class="sr-only">
      <caption>${title} by ${data.interval}</caption>
      <thead><tr><th scope="col">${data.interval}</th><th scope="col">${data.metric}</th>
        ${data.prev && html`<th scope="col">previous period</th>`}</tr></thead>
      <tbody>${data.labels.map((l, i) => html`<tr key=${l}><th scope="row">${l}</th><td>${data.values[i]}</td>
        ${data.prev && html`<td>${data.prev[i] ?? ''}</td>`}</tr>`)}</tbody>
    </table>`}
  </div>`;
}
