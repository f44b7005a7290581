/* footfall tracker: pageviews (also on SPA navigation), custom events, outbound links, file
   downloads and engagement. No cookies, no dependencies. Speaks the Plausible Events API.
   <script defer data-domain="shop.example" src="https://footfall.example/js/footfall.js"></script>
   Options: data-api, data-hash, data-allow-localhost, data-outbound-links, data-file-downloads. */
(function (w, d) {
  'use strict';
  var l = w.location, s = d.currentScript, last;
  var has = function (a) { return !!s && s.hasAttribute(a); };
  var domain = (s && s.getAttribute('data-domain')) || l.hostname;
  var api = (s && s.getAttribute('data-api')) || (s ? new URL(s.src).origin : '') + '/api/event';
  var hash = has('data-hash');
  var local = /^(localhost|127(\.\d+){3}|\[::1\])$/.test(l.hostname) || l.protocol === 'file:';
  function send(name, o) {
    o = o || {};
    var done = o.callback || function () {};
    if (local && !has('data-allow-localhost')) return done();
    var b = { n: name, u: l.href, d: domain, r: d.referrer || null };
    if (hash) b.h = 1;
    if (o.props) b.p = o.props;
    if (o.revenue) b.$ = o.revenue;
    if (o.interactive === false) b.i = false;
    var data = JSON.stringify(b);
    // A text/plain beacon needs no CORS preflight and survives the page unloading.
    if (w.navigator.sendBeacon && w.navigator.sendBeacon(api, new Blob([data], { type: 'text/plain' }))) return done();
    w.fetch(api, { method: 'POST', body: data, keepalive: true, headers: { 'Content-Type': 'text/plain' } }).then(done, done);
  }
  function page() {
    var p = l.pathname + (hash ? l.hash : '');
    if (p !== last) { last = p; send('pageview'); }
  }
  var queued = (w.footfall && w.footfall.q) || [];
  w.footfall = send;
  for (var i = 0; i < queued.length; i++) send.apply(null, queued[i]);
  var h = w.history;
  if (h.pushState) {
    var push = h.pushState;
    h.pushState = function () { push.apply(this, arguments); page(); };
    w.addEventListener('popstate', page);
  }
  if (hash) w.addEventListener('hashchange', page);
  d.addEventListener('click', function (e) {
    var a = e.target && e.target.closest && e.target.closest('a[href]');
    if (!a || e.button > 1) return;
    var name = has('data-file-downloads') && /\.(pdf|csv|txt|docx?|xlsx?|pptx?|zip|gz|7z|rar|dmg|exe|msi|pkg|iso|mp3|mp4|mov|avi|wav)([?#]|$)/i.test(a.pathname)
      ? 'File Download'
      : has('data-outbound-links') && a.host && a.host !== l.host ? 'Outbound Link: Click' : 0;
    if (name) send(name, { props: { url: a.href } });
  }, true);
  d.addEventListener('visibilitychange', function () {
    if (d.visibilityState === 'hidden') send('engagement', { interactive: false });
  });
  page();
})(window, document);
