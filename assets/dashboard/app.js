// Entry point: picks the view from location.pathname and keeps the tokens.
//   /dashboard            the list of properties (admin token) or the login form
//   /dashboard/{domain}   one property's report (its read key, or the admin token)
//   /share/{domain}?auth= the same report, read-only, with a shared link's token
//   /admin                the admin view (admin token)
import { html, render, useState, useEffect } from './vendor/preact-htm.js';
import { request, go, errorText, adminToken, setAdminToken, siteKey, setSiteKey, setPageState } from './api.js';
import { Report } from './report.js';
import { Admin } from './admin.js';

/** The current pathname, re-read on every navigation. */
function usePath() {
  const [path, setPath] = useState(location.pathname);
  useEffect(() => {
    const on = () => setPath(location.pathname);
    window.addEventListener('popstate', on);
    window.addEventListener('footfall:navigate', on);
    return () => {
      window.removeEventListener('popstate', on);
      window.removeEventListener('footfall:navigate', on);
    };
  }, []);
  return path;
}

const dashboardUrl = (domain) => `/dashboard/${encodeURIComponent(domain)}`;

/** Same-origin links navigate without reloading the page (modifier clicks open as usual). */
function onLinkClick(e) {
  const a = e.target.closest && e.target.closest('a[href]');
  if (!a || a.target || a.hasAttribute('download') || e.button !== 0) return;
  if (e.metaKey || e.ctrlKey || e.shiftKey || e.altKey || e.defaultPrevented) return;
  const url = new URL(a.href, location.href);
  if (url.origin !== location.origin || !/^\/(dashboard|admin|share)(\/|$)/.test(url.pathname)) return;
  if (url.pathname.startsWith('/dashboard/assets/')) return;
  e.preventDefault();
  go(url.pathname + url.search + url.hash);
}

function App() {
  const path = usePath();
  const [revision, setRevision] = useState(0);
  // Views call this after storing or dropping a token, so that the route reads it again.
  const refresh = () => setRevision((r) => r + 1);
  const admin = adminToken();

  let m;
  let view;
  let shared = false;
  if ((m = path.match(/^\/dashboard\/([^/]+)\/?$/))) {
    view = html`<${SiteReport} domain=${decodeURIComponent(m[1])} revision=${revision} refresh=${refresh} />`;
  } else if ((m = path.match(/^\/share\/([^/]+)\/?$/))) {
    shared = true;
    view = html`<${SharedReport} domain=${decodeURIComponent(m[1])} />`;
  } else if (/^\/admin\/?$/.test(path)) {
    document.title = 'Admin · footfall';
    view = admin
      ? html`<${Admin} token=${admin} />`
      : html`<${LoginPage} title="Admin" adminOnly onDone=${refresh} />`;
  } else {
    document.title = 'Sites · footfall';
    view = admin ? html`<${Sites} token=${admin} />` : html`<${LoginPage} title="Sign in" askDomain onDone=${refresh} />`;
  }

  const signOut = () => {
    setAdminToken(null);
    refresh();
  };
  return html`<div class="app" onClick=${onLinkClick}>
    <nav class="topbar" aria-label="Main">
      <a class="brand" href=${shared ? location.pathname + location.search : '/dashboard'}>footfall</a>
      ${!shared && admin && html`<span class="nav-links">
        <a href="/dashboard" aria-current=${path.replace(/\/$/, '') === '/dashboard' ? 'page' : undefined}>Sites</a>
        <a href="/admin" aria-current=${path.startsWith('/admin') ? 'page' : undefined}>Admin</a>
        <button type="button" class="btn small" onClick=${signOut}>Sign out</button>
      </span>`}
    </nav>
    ${view}
  </div>`;
}

// ---------------------------------------------------------------------------------------------
// Login

/**
 * <form data-login>. With `domain`, the value is stored as that site's key. With `askDomain`, an
 * optional domain field does the same for the domain typed; without a domain the value is tried
 * as the admin token (401 → an error here).
 */
function LoginForm({ domain, askDomain, adminOnly, onDone }) {
  const [token, setToken] = useState('');
  const [site, setSite] = useState('');
  const [error, setError] = useState(null);
  const [busy, setBusy] = useState(false);

  const submit = async (e) => {
    e.preventDefault();
    // Read from the form itself: the inputs' state may not have re-rendered yet.
    const fd = new FormData(e.currentTarget);
    const value = String(fd.get('token') || token).trim();
    const typed = String(fd.get('domain') || site);
    if (!value) return setError('Enter a token or a read key.');
    if (domain) {
      setSiteKey(domain, value);
      return onDone();
    }
    const d = typed.trim().replace(/^https?:\/\//, '').replace(/\/.*$/, '');
    if (askDomain && d) {
      setSiteKey(d, value);
      return go(dashboardUrl(d));
    }
    setBusy(true);
    setError(null);
    try {
      await request('GET', '/api/admin/properties?limit=1', { token: value });
      setAdminToken(value);
      onDone();
    } catch (err) {
      setError(err.status === 401
        ? (adminOnly ? 'That is not the admin token.' : 'That is not the admin token. To open one site with its read key, enter the site domain too.')
        : errorText(err));
    } finally {
      setBusy(false);
    }
    return undefined;
  };

  return html`<form data-login class="card login" onSubmit=${submit}>
    <label class="field">${adminOnly ? 'Admin token' : 'Admin token or read key'}
      <input type="password" name="token" autocomplete="current-password" required value=${token}
        onInput=${(e) => setToken(e.target.value)} /></label>
    ${askDomain && html`<label class="field">Site domain <span class="muted">(optional, for a read key)</span>
      <input type="text" name="domain" placeholder="shop.example" autocapitalize="off" spellcheck="false"
        value=${site} onInput=${(e) => setSite(e.target.value)} /></label>`}
    ${error && html`<p class="error" role="alert" data-error="login">${error}</p>`}
    <button type="submit" class="btn primary" disabled=${busy}>${busy ? 'Checking…' : 'Open'}</button>
  </form>`;
}

function LoginPage({ title, ...props }) {
  useEffect(() => setPageState('ready'), []);
  return html`<div class="page narrow">
    <h1>${title}</h1>
    <${LoginForm} ...${props} />
  </div>`;
}

// ---------------------------------------------------------------------------------------------
// Views

/** The properties the admin token sees, each linked to its report. */
function Sites({ token }) {
  const [list, setList] = useState(null);
  const [error, setError] = useState(null);
  useEffect(() => {
    setPageState('loading');
    request('GET', '/api/admin/properties?limit=1000', { token }).then(
      (r) => {
        setList(r.properties || []);
        setPageState('ready');
      },
      (e) => {
        if (e.status === 401) setAdminToken(null);
        setError(e);
        setPageState('error');
      },
    );
  }, [token]);
  if (error) {
    return html`<div class="page"><p class="error" role="alert" data-error=${error.code}>${error.status === 401
      ? 'The stored admin token is no longer valid; reload to sign in again.' : errorText(error)}</p></div>`;
  }
  return html`<div class="page">
    <div class="page-head"><h1>Sites</h1><a class="btn" href="/admin">Admin</a></div>
    ${!list ? html`<p class="muted">Loading…</p>` : !list.length
      ? html`<p class="muted">No properties yet. <a href="/admin">Register one in the admin view.</a></p>`
      : html`<ul class="site-list">
        ${list.map((p) => html`<li key=${p.id} class="card">
          <a href=${dashboardUrl(p.domain)} class="site-link">${p.domain}</a>
          <span class="muted">${p.name}${p.timezone ? ` · ${p.timezone}` : ''}</span>
        </li>`)}
      </ul>`}
  </div>`;
}

/** /dashboard/{domain}: a `#key=` fragment is stored as the site's key and removed from the URL. */
function SiteReport({ domain, revision, refresh }) {
  if (location.hash.startsWith('#key=')) {
    setSiteKey(domain, decodeURIComponent(location.hash.slice(5)));
    history.replaceState(null, '', location.pathname + location.search);
  }
  document.title = `${domain} · footfall`;
  const token = siteKey(domain) || adminToken();
  const login = () => html`<${LoginForm} domain=${domain} onDone=${refresh} />`;
  if (!token) {
    return html`<div class="page narrow">
      <h1>${domain}</h1>
      <${LoginPageState} />
      ${login()}
    </div>`;
  }
  return html`<div class="page"><${Report} key=${`${revision}:${token}`} site=${domain} token=${token} login=${login} /></div>`;
}

/** /share/{domain}?auth=TOKEN: read-only; no login form. */
function SharedReport({ domain }) {
  const token = new URLSearchParams(location.search).get('auth');
  document.title = `${domain} · footfall`;
  if (!token) {
    return html`<div class="page"><h1>${domain}</h1><${LoginPageState} state="error" />
      <p data-error="unauthorized" role="alert" class="error">This shared link is not valid (it may have been revoked).</p></div>`;
  }
  return html`<div class="page"><${Report} key=${token} site=${domain} token=${token} shared /></div>`;
}

/** Sets the page state for views that have nothing to load. */
function LoginPageState({ state = 'ready' }) {
  useEffect(() => setPageState(state), [state]);
  return null;
}

render(html`<${App} />`, document.getElementById('app'));
