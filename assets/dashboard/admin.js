// The admin view (/admin, admin token): register properties, edit goals and hostnames, manage
// shared links, and watch the projections (lag, rebuilds, parked events).
// `/admin?parked=<projection>` also lists that projection's parked events.
import { html, useState, useEffect, useRef } from './vendor/preact-htm.js';
import { request, errorText, formatInt, formatDuration, setPageState } from './api.js';
import { useSearch } from './report.js';

const enc = encodeURIComponent;

function ErrorLine({ error }) {
  if (!error) return null;
  return html`<p class="error" role="alert" data-error=${error.code || 'error'}>${errorText(error)}</p>`;
}

/** Runs `fn` (an async action) with a busy flag and an error shown inline. */
function useAction() {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState(null);
  const run = async (fn) => {
    setBusy(true);
    setError(null);
    try {
      return await fn();
    } catch (e) {
      setError(e);
      return undefined;
    } finally {
      setBusy(false);
    }
  };
  return { busy, error, run, setError };
}

export function Admin({ token }) {
  const search = useSearch();
  const parked = new URLSearchParams(search).get('parked');
  const [props, setProps] = useState(null);
  const [error, setError] = useState(null);
  const [projReady, setProjReady] = useState(false);

  const load = () => request('GET', '/api/admin/properties?limit=1000', { token }).then(
    (r) => setProps(r.properties || []),
    (e) => setError(e),
  );
  useEffect(() => {
    load();
  }, [token]);
  useEffect(() => {
    setPageState(error ? 'error' : props && projReady ? 'ready' : 'loading');
  }, [props, projReady, error]);

  return html`<div class="page admin">
    <h1>Admin</h1>
    <${ErrorLine} error=${error} />
    ${parked && html`<${Parked} name=${parked} token=${token} />`}
    <section class="card" aria-labelledby="props-title">
      <h2 id="props-title">Properties</h2>
      ${!props ? html`<p class="muted">Loading…</p>`
        : !props.length ? html`<p class="muted">No properties yet.</p>`
        : html`<div class="table-wrap"><table class="data">
          <thead><tr><th scope="col">Domain</th><th scope="col">Name</th><th scope="col">Timezone</th>
            <th scope="col">Measurement id</th><th scope="col">Read key</th><th scope="col"><span class="sr-only">Actions</span></th></tr></thead>
          <tbody>${props.map((p) => html`<${PropertyRow} key=${p.id} p=${p} token=${token} onSaved=${load} />`)}</tbody>
        </table></div>`}
    </section>
    <${Register} token=${token} onDone=${load} />
    <${Projections} token=${token} onLoaded=${() => setProjReady(true)} />
  </div>`;
}

// ---------------------------------------------------------------------------------------------
// Properties

function PropertyRow({ p, token, onSaved }) {
  const [reveal, setReveal] = useState(false);
  const [open, setOpen] = useState(false);
  const key = p.read_key || '';
  return html`<tr data-property=${p.domain}>
      <td><a href=${`/dashboard/${enc(p.domain)}`}>${p.domain}</a></td>
      <td>${p.name}</td>
      <td>${p.timezone}</td>
      <td><code>${p.measurement_id || '—'}</code></td>
      <td class="key-cell">
        <code data-read-key>${reveal ? key : '•'.repeat(12)}</code>
        <button type="button" class="btn small" aria-pressed=${reveal ? 'true' : 'false'}
          aria-label=${`${reveal ? 'Hide' : 'Reveal'} read key of ${p.domain}`} onClick=${() => setReveal(!reveal)}>
          ${reveal ? 'Hide' : 'Reveal'}</button>
      </td>
      <td><button type="button" class="btn small" aria-expanded=${open ? 'true' : 'false'}
        onClick=${() => setOpen(!open)}>${open ? 'Close' : 'Manage'}</button></td>
    </tr>
    ${open && html`<tr class="manage"><td colspan="6">
      <div class="manage-grid">
        <${GoalsEditor} p=${p} token=${token} onSaved=${onSaved} />
        <${HostnamesEditor} p=${p} token=${token} onSaved=${onSaved} />
        <${FunnelsEditor} p=${p} token=${token} />
        <${SharedLinks} p=${p} token=${token} />
      </div>
    </td></tr>`}`;
}

const goalLine = (g) => (g.event != null ? `event: ${g.event}` : `page: ${g.page}`);
/** One goal per line: `event: Signup`, `page: /thanks*`; a bare `/path` is a page, else an event. */
function parseGoals(text) {
  return text.split('\n').map((l) => l.trim()).filter(Boolean).map((l) => {
    const m = l.match(/^(event|page)\s*:\s*(.+)$/i);
    if (m) return { [m[1].toLowerCase()]: m[2].trim() };
    return l.startsWith('/') ? { page: l } : { event: l };
  });
}

function GoalsEditor({ p, token, onSaved }) {
  const [text, setText] = useState((p.goals || []).map(goalLine).join('\n'));
  const { busy, error, run } = useAction();
  const [saved, setSaved] = useState(false);
  const id = `goals-${p.id}`;
  const save = (e) => {
    e.preventDefault();
    setSaved(false);
    run(async () => {
      await request('PUT', `/api/admin/properties/${enc(p.id)}/goals`, { token, body: { goals: parseGoals(text) } });
      setSaved(true);
      onSaved();
    });
  };
  return html`<form class="editor" data-editor="goals" onSubmit=${save}>
    <label for=${id}><strong>Goals</strong> <span class="muted">one a line: <code>event: Signup</code> or <code>page: /thanks*</code></span></label>
    <textarea id=${id} rows="4" value=${text} onInput=${(e) => setText(e.target.value)}></textarea>
    <${ErrorLine} error=${error} />
    <div class="row-actions"><button type="submit" class="btn small primary" disabled=${busy}>Save goals</button>
      ${saved && html`<span class="muted" role="status">Saved</span>`}</div>
  </form>`;
}

const funnelLine = (f) => `${f.name}: ${f.steps.map(goalLine).join(' > ')}`;
/** One funnel a line: `Checkout: /cart > page: /pay* > event: Purchase` (steps as goals are). */
function parseFunnels(text) {
  return text.split('\n').map((l) => l.trim()).filter(Boolean).map((l) => {
    const colon = l.indexOf(':');
    const name = colon < 0 ? l : l.slice(0, colon).trim();
    const steps = colon < 0 ? [] : parseGoals(l.slice(colon + 1).split('>').join('\n'));
    return { name, steps };
  });
}

/** The property's funnels, read from GET /api/admin/properties/{id} (the list leaves them out). */
function FunnelsEditor({ p, token }) {
  const [text, setText] = useState(null);
  const { busy, error, run } = useAction();
  const [saved, setSaved] = useState(false);
  const id = `funnels-${p.id}`;
  useEffect(() => {
    run(async () => {
      const full = await request('GET', `/api/admin/properties/${enc(p.id)}`, { token });
      setText((full.funnels || []).map(funnelLine).join('\n'));
    });
  }, [p.id]);
  const save = (e) => {
    e.preventDefault();
    setSaved(false);
    run(async () => {
      const r = await request('PUT', `/api/admin/properties/${enc(p.id)}/funnels`, { token, body: { funnels: parseFunnels(text || '') } });
      setText(r.funnels.map(funnelLine).join('\n'));
      setSaved(true);
    });
  };
  return html`<form class="editor" data-editor="funnels" onSubmit=${save}>
    <label for=${id}><strong>Funnels</strong> <span class="muted">one a line: <code>Checkout: /cart > event: Purchase</code> (2 to 8 steps)</span></label>
    <textarea id=${id} rows="3" value=${text ?? ''} disabled=${text == null} onInput=${(e) => setText(e.target.value)}></textarea>
    <${ErrorLine} error=${error} />
    <div class="row-actions"><button type="submit" class="btn small primary" disabled=${busy || text == null}>Save funnels</button>
      ${saved && html`<span class="muted" role="status">Saved</span>`}</div>
  </form>`;
}

function HostnamesEditor({ p, token, onSaved }) {
  const [text, setText] = useState((p.hostnames || []).join('\n'));
  const { busy, error, run } = useAction();
  const [saved, setSaved] = useState(false);
  const id = `hosts-${p.id}`;
  const save = (e) => {
    e.preventDefault();
    setSaved(false);
    const hostnames = text.split(/[\n,]/).map((h) => h.trim()).filter(Boolean);
    run(async () => {
      await request('PUT', `/api/admin/properties/${enc(p.id)}/hostnames`, { token, body: { hostnames } });
      setSaved(true);
      onSaved();
    });
  };
  return html`<form class="editor" data-editor="hostnames" onSubmit=${save}>
    <label for=${id}><strong>Hostnames</strong> <span class="muted">one a line, <code>*.example.net</code> allowed</span></label>
    <textarea id=${id} rows="4" value=${text} onInput=${(e) => setText(e.target.value)}></textarea>
    <${ErrorLine} error=${error} />
    <div class="row-actions"><button type="submit" class="btn small primary" disabled=${busy}>Save hostnames</button>
      ${saved && html`<span class="muted" role="status">Saved</span>`}</div>
  </form>`;
}

function SharedLinks({ p, token }) {
  const [links, setLinks] = useState(null);
  const [name, setName] = useState('');
  const [created, setCreated] = useState(null);
  const { busy, error, run } = useAction();
  const base = `/api/admin/properties/${enc(p.id)}/shared-links`;
  const load = () => run(async () => setLinks((await request('GET', base, { token })).shared_links || []));
  useEffect(() => {
    load();
  }, [p.id]);
  const create = (e) => {
    e.preventDefault();
    run(async () => {
      const link = await request('POST', base, { token, body: { name: name.trim() } });
      setCreated(link);
      setName('');
      await load();
    });
  };
  const remove = (l) => run(async () => {
    await request('DELETE', `${base}/${enc(l.id)}`, { token });
    if (created && created.id === l.id) setCreated(null);
    await load();
  });
  return html`<div class="editor" data-editor="shared-links">
    <strong>Shared links</strong>
    ${links && !links.length && html`<p class="muted">None.</p>`}
    ${links && links.length > 0 && html`<ul class="links">
      ${links.map((l) => html`<li key=${l.id} data-shared-link=${l.id}>
        <span><strong>${l.name}</strong> <span class="muted">${(l.created_at || '').slice(0, 10)}</span><br />
          <a href=${l.url} class="url">${l.url}</a></span>
        <button type="button" class="btn small danger" disabled=${busy} aria-label=${`Delete shared link ${l.name}`}
          onClick=${() => remove(l)}>Delete</button>
      </li>`)}
    </ul>`}
    ${created && html`<p role="status" class="note">Created: <a href=${created.url}>${created.url}</a></p>`}
    <form class="inline-form" onSubmit=${create}>
      <label class="field">New link name
        <input type="text" required value=${name} onInput=${(e) => setName(e.target.value)} /></label>
      <button type="submit" class="btn small primary" disabled=${busy}>Create link</button>
    </form>
    <${ErrorLine} error=${error} />
  </div>`;
}

function Register({ token, onDone }) {
  const tz = (() => {
    try {
      return Intl.DateTimeFormat().resolvedOptions().timeZone || 'UTC';
    } catch {
      return 'UTC';
    }
  })();
  const [f, setF] = useState({ domain: '', timezone: tz, name: '' });
  const [created, setCreated] = useState(null);
  const { busy, error, run } = useAction();
  const set = (k) => (e) => {
    const v = e.target.value;
    setF((prev) => ({ ...prev, [k]: v }));
  };
  const submit = (e) => {
    e.preventDefault();
    setCreated(null);
    // Read from the form itself: the inputs' state may not have re-rendered yet.
    const fd = new FormData(e.currentTarget);
    const body = Object.fromEntries(['domain', 'timezone', 'name'].map((k) => [k, String(fd.get(k) || '').trim()]));
    run(async () => {
      const p = await request('POST', '/api/admin/properties', { token, body });
      setCreated(p);
      setF({ domain: '', timezone: tz, name: '' });
      onDone();
    });
  };
  return html`<section class="card" aria-labelledby="register-title">
    <h2 id="register-title">Register a property</h2>
    <form class="register" data-form="register" onSubmit=${submit}>
      <label class="field">Domain <input type="text" name="domain" required placeholder="shop.example" value=${f.domain} onInput=${set('domain')} /></label>
      <label class="field">Time zone <input type="text" name="timezone" required value=${f.timezone} onInput=${set('timezone')} /></label>
      <label class="field">Name <input type="text" name="name" required value=${f.name} onInput=${set('name')} /></label>
      <button type="submit" class="btn primary" disabled=${busy}>Register</button>
    </form>
    <${ErrorLine} error=${error} />
    ${created && html`<p role="status" class="note">Registered <a href=${`/dashboard/${enc(created.domain)}`}>${created.domain}</a>
      (measurement id <code>${created.measurement_id}</code>).</p>`}
  </section>`;
}

// ---------------------------------------------------------------------------------------------
// Projections

const num = (v) => (typeof v === 'number' ? formatInt(v) : v ?? '—');

/** A rebuild's progress: a bar from its checkpoint to the log's head, and every field it has. */
function RebuildInfo({ r, head }) {
  if (!r) return html`<span class="muted">—</span>`;
  const hasBar = typeof r.checkpoint === 'number' && typeof head === 'number' && head > 0;
  return html`<div class="rebuild" data-rebuild>
    ${hasBar && html`<progress max=${head} value=${Math.min(r.checkpoint, head)}
      aria-label="Rebuild progress">${Math.round((100 * Math.min(r.checkpoint, head)) / head)}%</progress>`}
    <dl>${Object.entries(r).map(([k, v]) => html`<div key=${k}><dt>${k}</dt><dd>${typeof v === 'object' && v !== null ? JSON.stringify(v) : num(v)}</dd></div>`)}</dl>
  </div>`;
}

function Projections({ token, onLoaded }) {
  const [list, setList] = useState(null);
  const [error, setError] = useState(null);
  const [notes, setNotes] = useState({});
  const loaded = useRef(false);
  useEffect(() => {
    let live = true;
    const poll = () => request('GET', '/api/admin/projections', { token }).then(
      (r) => {
        if (!live) return;
        setList(r.projections || []);
        setError(null);
        if (!loaded.current) {
          loaded.current = true;
          onLoaded();
        }
      },
      (e) => live && setError(e),
    );
    poll();
    const id = setInterval(poll, 2000);
    return () => {
      live = false;
      clearInterval(id);
    };
  }, [token]);

  const rebuild = async (name) => {
    setNotes((n) => ({ ...n, [name]: 'Starting…' }));
    try {
      await request('POST', `/api/admin/projections/${enc(name)}/rebuild`, { token });
      setNotes((n) => ({ ...n, [name]: 'Rebuild started' }));
    } catch (e) {
      setNotes((n) => ({ ...n, [name]: e.code === 'rebuild_in_progress' ? 'A rebuild is already in progress' : errorText(e) }));
    }
  };

  return html`<section class="card" aria-labelledby="proj-title">
    <h2 id="proj-title">Projections</h2>
    <${ErrorLine} error=${error} />
    ${!list ? html`<p class="muted">Loading…</p>` : html`<div class="table-wrap"><table class="data projections">
      <thead><tr>${['Name', 'Gen.', 'State', 'Checkpoint', 'Head', 'Lag', 'Events/s', 'ETA', 'Parked', 'Rebuild', ''].map(
        (h) => html`<th scope="col">${h || html`<span class="sr-only">Actions</span>`}</th>`)}</tr></thead>
      <tbody>${list.map((p) => html`<tr key=${p.name} data-projection=${p.name}>
        <th scope="row">${p.name}</th>
        <td>${p.generation}</td>
        <td><span class=${'state state-' + p.state}>${p.state}</span></td>
        <td class="num">${num(p.checkpoint)}</td>
        <td class="num">${num(p.head)}</td>
        <td class="num">${num(p.lag)}</td>
        <td class="num">${typeof p.events_per_second === 'number' ? formatInt(Math.round(p.events_per_second)) : '—'}</td>
        <td>${typeof p.eta_seconds === 'number' ? formatDuration(p.eta_seconds) : '—'}</td>
        <td>${p.parked > 0 ? html`<a href=${`/admin?parked=${enc(p.name)}`} data-parked=${p.name}>${formatInt(p.parked)} parked</a>` : '0'}</td>
        <td><${RebuildInfo} r=${p.rebuild} head=${p.head} /></td>
        <td><button type="button" class="btn small" data-rebuild-button=${p.name} disabled=${!!p.rebuild}
            onClick=${() => rebuild(p.name)}>Rebuild</button>
          ${notes[p.name] && html`<span class="muted note-inline" role="status">${notes[p.name]}</span>`}</td>
      </tr>`)}</tbody>
    </table></div>`}
  </section>`;
}

/** /admin?parked=<name>: the projection's parked events, and a button to replay them. */
function Parked({ name, token }) {
  const [list, setList] = useState(null);
  const [note, setNote] = useState(null);
  const { busy, error, run } = useAction();
  const base = `/api/admin/projections/${enc(name)}/parked`;
  const load = () => run(async () => setList((await request('GET', `${base}?limit=1000`, { token })).parked || []));
  useEffect(() => {
    setList(null);
    load();
  }, [name]);
  const replay = () => run(async () => {
    const r = await request('POST', `${base}/replay`, { token });
    setNote(`Replay requested for ${r && r.requested != null ? r.requested : 'all'} events.`);
    await load();
  });
  const cols = ['generation', 'position', 'event_id', 'stream_id', 'event_type', 'error', 'parked_at', 'replay_requested'];
  return html`<section class="card" aria-labelledby="parked-title" data-parked-list=${name}>
    <div class="page-head"><h2 id="parked-title">Parked events of ${name}</h2><a href="/admin">Close</a></div>
    <${ErrorLine} error=${error} />
    ${note && html`<p role="status" class="note">${note}</p>`}
    ${!list ? html`<p class="muted">Loading…</p>` : !list.length ? html`<p class="muted">No parked events.</p>`
      : html`<div class="table-wrap"><table class="data">
        <thead><tr>${cols.map((c) => html`<th scope="col">${c}</th>`)}</tr></thead>
        <tbody>${list.map((e, i) => html`<tr key=${i}>${cols.map((c) => html`<td>${String(e[c] ?? '')}</td>`)}</tr>`)}</tbody>
      </table></div>
      <button type="button" class="btn" disabled=${busy} onClick=${replay}>Replay parked events</button>`}
  </section>`;
}
