// The funnel card: the property's funnels (GET /api/v2/funnels), one picked in a select, and its
// steps for the report's range and filters (POST /api/v2/funnel). It loads on its own, beside the
// report's ready contract, and marks its own section `data-state="ready"` when it has its answer.
// A property without funnels shows no card.
import { html, useState, useEffect } from './vendor/preact-htm.js';
import { request, queryBody, formatInt, errorText } from './api.js';

export function FunnelCard({ site, token, s }) {
  const [funnels, setFunnels] = useState(null);
  const [name, setName] = useState(null);
  const [answer, setAnswer] = useState(null);

  useEffect(() => {
    request('GET', `/api/v2/funnels?site_id=${encodeURIComponent(site)}`, { token })
      .then((r) => setFunnels(r.funnels), () => setFunnels([]));
  }, [site, token]);

  const picked = funnels && (funnels.find((f) => f.name === name) || funnels[0]);
  const base = queryBody(site, s, { metrics: ['visitors'] });
  const key = JSON.stringify([picked && picked.name, base.date_range, base.filters]);
  useEffect(() => {
    if (!picked) return undefined;
    let live = true;
    setAnswer(null);
    request('POST', '/api/v2/funnel', {
      token,
      body: { site_id: site, funnel: picked.name, date_range: base.date_range, filters: base.filters },
    }).then((r) => live && setAnswer({ key, steps: r.steps }), (e) => live && setAnswer({ key, error: e }));
    return () => {
      live = false;
    };
  }, [key]);

  if (!picked) return null;
  const ready = answer && answer.key === key;
  const steps = ready && answer.steps;
  const max = Math.max(1, ...(steps || []).map((st) => st.visitors));
  return html`<article class="card panel-card funnel-card" aria-label="Funnels">
    <div class="card-head">
      <h2>Funnels</h2>
      <label class="field inline">Funnel
        <select data-control="funnel" value=${picked.name} onChange=${(e) => setName(e.currentTarget.value)}>
          ${funnels.map((f) => html`<option value=${f.name} key=${f.name}>${f.name}</option>`)}
        </select>
      </label>
    </div>
    <section data-panel="funnel" data-state=${ready ? 'ready' : 'loading'} aria-busy=${!ready}>
      ${answer && answer.error && html`<p class="error" role="alert">${errorText(answer.error)}</p>`}
      ${!ready && html`<p class="muted">Loading…</p>`}
      ${steps && html`<div class="rows" style="--cols:3">
        <div class="rows-head" aria-hidden="true"><span>Step</span><span class="num">Visitors</span>
          <span class="num">Conversion</span><span class="num">Drop-off</span></div>
        <ol>${steps.map((st) => html`<li data-row data-value=${st.label} key=${st.step}>
          <span class="label-cell">
            <span class="bar" style=${`width:${(st.visitors / max) * 100}%`}></span>
            <span class="row-label">${st.step}. ${st.label}</span>
          </span>
          <span class="num" aria-label="Visitors" data-visitors=${st.visitors}>${formatInt(st.visitors)}</span>
          <span class="num" aria-label="Conversion from the first step">${st.conversion_rate}%</span>
          <span class="num" aria-label="Drop-off from the previous step">${formatInt(st.dropoff)}</span>
        </li>`)}</ol>
      </div>`}
    </section>
  </article>`;
}
