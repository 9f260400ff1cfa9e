/**
 * The live page of `serve --http` (GET /): connected devices and their subscriptions, recent
 * change batches and who got them, each device's last reload (errors first and in red, with
 * file:line). No framework: it listens to /events (Server-Sent Events, a StatusJson per push)
 * and rebuilds its lists with DOM calls. Every server string (paths, Lua errors, remotes) goes in
 * through textContent, never innerHTML: a file named `<img src=x onerror=…>` stays text.
 * Shipped as strings so tsc builds it with no copy step; the CSP allows exactly these two inline
 * blocks, by hash.
 */
import { createHash } from 'node:crypto'

const CSS = `
:root{--bg:#f5f6f8;--card:#fff;--line:#e2e5ea;--text:#16191d;--muted:#566070;--accent:#2457c5;
--ok:#067647;--ok-bg:#ecfdf3;--bad:#b42318;--bad-bg:#fef3f2;--bad-line:#f4c7c3;--warn:#9a6700;--chip:#eef1f5;
--mono:ui-monospace,SFMono-Regular,"SF Mono",Menlo,Consolas,"Liberation Mono",monospace}
@media (prefers-color-scheme:dark){:root{--bg:#111418;--card:#1a1e24;--line:#2c323b;--text:#e8eaed;--muted:#a3acb9;
--accent:#8ab4ff;--ok:#5fd394;--ok-bg:#12261b;--bad:#ff8a80;--bad-bg:#2d1515;--bad-line:#5c2622;--warn:#f0c04a;--chip:#252b33}}
*{box-sizing:border-box}
body{margin:0;background:var(--bg);color:var(--text);font:15px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif}
header{background:var(--card);border-bottom:1px solid var(--line);padding:14px 28px}
.top{display:flex;align-items:center;gap:12px;flex-wrap:wrap}
h1{font-size:19px;margin:0;font-weight:650;letter-spacing:-.01em}
.meta{color:var(--muted);font-size:13.5px;margin-top:4px;display:flex;flex-wrap:wrap;gap:4px 16px}
.meta b{color:var(--text);font-weight:600}
.live{margin-left:auto;font-size:13px;color:var(--muted);display:flex;align-items:center;gap:7px}
.dot{width:9px;height:9px;border-radius:50%;background:var(--warn)}
.live.on .dot{background:var(--ok)}
main{max-width:1320px;margin:0 auto;padding:22px 28px 40px;display:grid;gap:22px;grid-template-columns:minmax(0,1.15fr) minmax(0,1fr)}
@media (max-width:980px){main{grid-template-columns:minmax(0,1fr);padding:16px}header{padding:12px 16px}}
#alert{grid-column:1/-1}
#alert:empty{display:none}
.banner{background:var(--bad-bg);border:1px solid var(--bad-line);color:var(--bad);border-radius:10px;padding:12px 16px;font-weight:600}
h2{font-size:13px;text-transform:uppercase;letter-spacing:.07em;color:var(--muted);margin:0 0 10px;font-weight:650}
.count{background:var(--chip);color:var(--text);border-radius:999px;padding:1px 8px;margin-left:6px;font-size:12px}
.card{background:var(--card);border:1px solid var(--line);border-radius:12px;padding:14px 16px;margin-bottom:12px}
.card.failing{border-color:var(--bad-line);box-shadow:inset 4px 0 0 var(--bad)}
.row{display:flex;align-items:baseline;gap:10px;flex-wrap:wrap}
.remote{font:600 15px var(--mono)}
.badge{font-size:11.5px;font-weight:650;text-transform:uppercase;letter-spacing:.05em;border-radius:6px;padding:1px 7px;background:var(--chip);color:var(--muted)}
.sub{color:var(--muted);font-size:13.5px}
.chips{display:flex;flex-wrap:wrap;gap:6px;margin-top:8px}
.chip{background:var(--chip);border-radius:6px;padding:2px 8px;font:13px var(--mono)}
.chip small{font-family:system-ui,sans-serif;color:var(--muted);margin-left:6px}
.report{margin-top:10px;border-radius:8px;padding:8px 12px;font-size:14px}
.report.ok{background:var(--ok-bg);color:var(--ok)}
.report.bad{background:var(--bad-bg);color:var(--bad);border:1px solid var(--bad-line)}
.where{font:700 14.5px var(--mono)}
pre{margin:6px 0 0;tab-size:2;white-space:pre-wrap;word-break:break-word;font:13px/1.45 var(--mono);color:var(--text)}
.batch{background:var(--card);border:1px solid var(--line);border-radius:12px;padding:10px 14px;margin-bottom:10px}
.batch .row{justify-content:space-between}
.paths{list-style:none;margin:6px 0 0;padding:0;font:13.5px/1.6 var(--mono)}
.paths li{overflow-wrap:anywhere}
.act{display:inline-block;width:18px;color:var(--muted)}
.act.delete{color:var(--bad)}
.act.rename{color:var(--accent)}
.to{margin-top:8px;font-size:13px;color:var(--muted);display:flex;flex-wrap:wrap;align-items:center;gap:6px}
.to .chip{font-size:12px}
.empty{color:var(--muted);background:var(--card);border:1px dashed var(--line);border-radius:12px;padding:18px}
code{font:13px var(--mono);background:var(--chip);border-radius:5px;padding:1px 5px}
`

const JS = `
'use strict';
var state = null, skew = 0, live = document.getElementById('live');
function h(tag, cls, kids) {
  var el = document.createElement(tag);
  if (cls) el.className = cls;
  (kids || []).forEach(function (k) { if (k !== null && k !== undefined) el.append(typeof k === 'string' ? document.createTextNode(k) : k); });
  return el;
}
function ago(iso) {
  var s = Math.max(0, Math.round((Date.now() - skew - Date.parse(iso)) / 1000));
  if (s < 5) return 'just now';
  if (s < 60) return s + ' s ago';
  if (s < 3600) return Math.floor(s / 60) + ' min ago';
  if (s < 86400) return Math.floor(s / 3600) + ' h ' + Math.floor(s % 3600 / 60) + ' min ago';
  return Math.floor(s / 86400) + ' d ago';
}
function dur(ms) {
  var s = Math.floor(ms / 1000);
  if (s < 60) return s + ' s';
  if (s < 3600) return Math.floor(s / 60) + ' min';
  if (s < 86400) return Math.floor(s / 3600) + ' h ' + Math.floor(s % 3600 / 60) + ' min';
  return Math.floor(s / 86400) + ' d ' + Math.floor(s % 86400 / 3600) + ' h';
}
function bytes(n) {
  var u = ['B', 'KB', 'MB', 'GB', 'TB'], i = 0;
  while (n >= 1000 && i < u.length - 1) { n /= 1000; i++; }
  return (i === 0 ? n : n.toFixed(n < 10 ? 1 : 0)) + ' ' + u[i];
}
function clock(iso) { return new Date(iso).toLocaleTimeString(); }
function when(iso) { var t = h('span', 'ago', [ago(iso)]); t.dataset.at = iso; t.title = new Date(iso).toLocaleString(); return t; }
function plural(n, one, many) { return n + ' ' + (n === 1 ? one : many); }
function where(e) { return e.file ? e.file + (e.line !== null ? ':' + e.line : '') : null; }

function header(s) {
  var meta = document.getElementById('meta');
  meta.replaceChildren(
    h('span', '', ['serving ', h('b', '', [s.address])]),
    h('span', '', [h('b', '', [plural(s.files, 'file', 'files')])]),
    h('span', '', ['up ', h('b', 'uptime', [dur(s.uptimeMs)])]),
    h('span', '', ['key ', h('code', '', [s.key.slice(0, 8) + '\\u2026' + s.key.slice(-8)])]),
    h('span', '', ['assetsync ' + s.version]));
  meta.querySelector('code').title = s.key;
  document.title = 'assetsync \\u00b7 ' + plural(s.clients.length, 'device', 'devices');
}

function alerts(s) {
  var failing = s.clients.filter(function (c) { return c.lastReport && !c.lastReport.ok; });
  var box = document.getElementById('alert');
  if (failing.length === 0) { box.replaceChildren(); return; }
  var first = failing[0].lastReport.error;
  box.replaceChildren(h('div', 'banner', [
    failing.length === 1 ? failing[0].remote : plural(failing.length, 'device', 'devices'), ' failed to reload',
    first && where(first) ? ': ' + where(first) : '']));
}

function report(r) {
  if (!r) return h('div', 'report sub', ['no reload reported yet']);
  if (r.ok) return h('div', 'report ok', ['\\u2713 reloaded ' + plural(r.paths.length, 'file', 'files') + ' in ' + r.ms + ' ms \\u00b7 ', when(r.at)]);
  var e = r.error || { message: 'reload failed', file: null, line: null };
  return h('div', 'report bad', [
    h('div', 'row', [h('span', '', ['\\u2717 reload failed']), where(e) ? h('span', 'where', [where(e)]) : null, h('span', 'sub', [when(r.at)])]),
    h('pre', '', [e.message])]);
}

function devices(s) {
  var list = document.getElementById('devices');
  document.getElementById('ndev').textContent = String(s.clients.length);
  if (s.clients.length === 0) {
    list.replaceChildren(h('div', 'empty', ['No devices connected. Start one with ', h('code', '', ['assetsync watch --server <host:port>']), ' or ', h('code', '', ['assetsync run']), '.']));
    return;
  }
  var sorted = s.clients.slice().sort(function (a, b) {
    return (a.lastReport && !a.lastReport.ok ? 0 : 1) - (b.lastReport && !b.lastReport.ok ? 0 : 1);
  });
  list.replaceChildren.apply(list, sorted.map(function (c) {
    var failing = c.lastReport && !c.lastReport.ok;
    var subs = c.subscriptions.length === 0 ? [h('span', 'sub', ['no subscriptions'])] : c.subscriptions.map(function (x) {
      return h('span', 'chip', [x.pattern, h('small', '', [x.instances.map(function (i) { return '#' + i; }).join(' ')])]);
    });
    var card = h('section', 'card device' + (failing ? ' failing' : ''), [
      h('div', 'row', [h('span', 'remote', [c.remote]), h('span', 'badge', [c.transport]),
        h('span', 'sub', ['connected ', when(c.since), ' \\u00b7 ' + bytes(c.bytes.sent) + ' sent \\u00b7 ' + bytes(c.bytes.received) + ' received'])]),
      h('div', 'chips', subs),
      report(c.lastReport)]);
    card.dataset.remote = c.remote;
    return card;
  }));
}

function batches(s) {
  var list = document.getElementById('batches');
  if (s.batches.length === 0) { list.replaceChildren(h('div', 'empty', ['No changes yet. Save a file in the served folder.'])); return; }
  list.replaceChildren.apply(list, s.batches.map(function (b) {
    var items = b.changes.map(function (c) {
      var mark = c.action === 'delete' ? '\\u2212' : c.action === 'rename' ? '\\u21b7' : '\\u2022';
      var act = h('span', 'act ' + c.action, [mark]);
      act.title = c.action === 'delete' ? 'deleted' : c.action === 'rename' ? 'renamed' : 'changed';
      return h('li', '', [act, c.from ? c.from + ' \\u2192 ' + c.path : c.path]);
    });
    if (b.changeCount > b.changes.length) items.push(h('li', 'sub', ['\\u2026 and ' + (b.changeCount - b.changes.length) + ' more']));
    var to = b.recipientCount === 0 ? [h('span', '', ['no device subscribed'])]
      : [h('span', '', ['sent to'])].concat(b.recipients.map(function (r) { return h('span', 'chip', [r]); }),
        b.recipientCount > b.recipients.length ? [' +' + (b.recipientCount - b.recipients.length)] : []);
    var el = h('section', 'batch', [
      h('div', 'row', [h('span', '', [h('b', '', [clock(b.at)]), ' \\u00b7 ' + plural(b.changeCount, 'change', 'changes')]),
        h('span', 'sub', [b.lagMs === null ? '' : b.lagMs + ' ms after save'])]),
      h('ul', 'paths', items),
      h('div', 'to', to)]);
    el.dataset.seq = String(b.seq);
    return el;
  }));
}

function render(s) {
  // The page's clock may differ from the server's: times are shown relative to the server's.
  state = s; skew = Date.now() - (Date.parse(s.startedAt) + s.uptimeMs);
  header(s); alerts(s); devices(s); batches(s);
}
setInterval(function () {
  document.querySelectorAll('.ago').forEach(function (el) { el.textContent = ago(el.dataset.at); });
  var up = document.querySelector('.uptime');
  if (state && up) up.textContent = dur(Date.now() - skew - Date.parse(state.startedAt));
}, 1000);
function connect() {
  var es = new EventSource('events');
  es.addEventListener('status', function (e) { render(JSON.parse(e.data)); });
  es.onopen = function () { live.className = 'live on'; live.lastChild.textContent = 'live'; };
  es.onerror = function () { live.className = 'live'; live.lastChild.textContent = 'reconnecting\\u2026'; };
}
connect();
`

const BODY = `<header><div class="top"><h1>assetsync</h1><span class="sub">live status</span>
<span id="live" class="live"><span class="dot"></span><span>connecting\u2026</span></span></div>
<div id="meta" class="meta"></div></header>
<main><div id="alert"></div>
<div><h2>Devices<span id="ndev" class="count">0</span></h2><div id="devices"></div></div>
<div><h2>Recent changes</h2><div id="batches"></div></div></main>
<noscript><p class="empty">This page needs JavaScript. <a href="status">/status</a> has the same as JSON.</p></noscript>`

function sha256(s: string): string {
  return `'sha256-${createHash('sha256').update(s).digest('base64')}'`
}

function page(title: string, body: string, css: string, js: string | null): { html: string; csp: string } {
  const html = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<meta name="color-scheme" content="light dark"><title>${title}</title><link rel="icon" href="data:,">
<style>${css}</style></head>
<body>${body}${js === null ? '' : `<script>${js}</script>`}</body></html>
`
  const csp = [
    "default-src 'none'", `style-src ${sha256(css)}`, js === null ? null : `script-src ${sha256(js)}`,
    "connect-src 'self'", 'img-src data:', "base-uri 'none'", "form-action 'self'", "frame-ancestors 'none'",
  ].filter(Boolean).join('; ')
  return { html, csp }
}

/** The live page and its Content-Security-Policy. */
export const STATUS_PAGE = page('assetsync', BODY, CSS, JS)

const LOGIN_CSS = `${CSS}
form{max-width:420px;margin:12vh auto;background:var(--card);border:1px solid var(--line);border-radius:12px;padding:24px}
label{display:block;font-weight:600;margin:14px 0 6px}
input{width:100%;font:15px var(--mono);padding:8px 10px;border:1px solid var(--line);border-radius:8px;background:var(--bg);color:var(--text)}
button{margin-top:14px;font:600 15px system-ui,sans-serif;padding:8px 16px;border-radius:8px;border:0;background:var(--accent);color:#fff}
.err{color:var(--bad);font-weight:600}`

/** The page a browser gets without the token: a form that sends it once (then the cookie does). */
export function loginPage(why: string | null): { html: string; csp: string } {
  // `why` is one of our own fixed strings, never request data.
  const error = why === 'wrong token' ? '<p class="err">That token is not the server\u2019s.</p>' : ''
  return page('assetsync \u00b7 sign in', `<form method="get" action="/"><h1>assetsync</h1>
<p class="sub">This status page is reachable from the network, so it asks for the server\u2019s access token (<code>--token</code>) once.</p>${error}
<label for="token">Token</label><input id="token" name="token" type="password" autocomplete="current-password" required autofocus>
<button type="submit">Open the status page</button></form>`, LOGIN_CSS, null)
}
