// c123-live operator console. Plain ES module, no third-party code.
// The master key is typed once, kept in sessionStorage (this tab only) and sent as the
// X-Master-Key header; it never goes into a URL, a log or localStorage. The console polls
// /api/v1/admin/status every second and /api/v1/admin/log every 2 s; rates (commits/s,
// frames/s) are derived here from the counters of two polls, and the last 10 minutes of
// them are kept as at most 600 points per chart.

const $ = (id) => document.getElementById(id);
const esc = (v) => String(v ?? '').replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
const KEY = 'c123live.masterKey';
const POLL_MS = 1000;
const LOG_EVERY = 2;
const POINTS = 600;

const S = {
  key: null, timer: 0, polls: 0, last: null, lastAt: 0, dt: 0, html: new Map(),
  refusals: new Map(), // eventId -> reason of the last refused action
  series: { commits: [], frames: [], clients: [] },
};

class HttpError extends Error {
  constructor(status, body) {
    super(body?.message ? `${body.error ?? status}: ${body.message}` : `HTTP ${status}`);
    this.status = status;
  }
}

async function call(path, { method = 'GET', body } = {}) {
  // The master key also authorises an event's status and config changes, so the console
  // never needs (or holds) an event's own API key.
  const headers = { Accept: 'application/json', 'X-Master-Key': S.key };
  if (body) headers['Content-Type'] = 'application/json';
  const r = await fetch(path, { method, headers, body: body ? JSON.stringify(body) : undefined, cache: 'no-store' });
  const json = await r.json().catch(() => null);
  if (!r.ok) throw new HttpError(r.status, json);
  return json;
}

// ---------------------------------------------------------------------------------------------
// Formatting

const int = new Intl.NumberFormat('en', { maximumFractionDigits: 0 });
const one = new Intl.NumberFormat('en', { maximumFractionDigits: 1 });
function bytes(n) {
  if (n == null) return '–';
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${one.format(n / 1024)} KiB`;
  return `${one.format(n / 1024 / 1024)} MiB`;
}
function age(ms) {
  if (ms == null) return 'never';
  if (ms < 1000) return `${ms} ms`;
  if (ms < 120000) return `${one.format(ms / 1000)} s`;
  return `${int.format(ms / 60000)} min`;
}
const kv = (pairs) => `<dl class="kv">${pairs.map(([k, v]) => `<dt>${esc(k)}</dt><dd>${v}</dd>`).join('')}</dl>`;
const state = (ok, text) => `<span class="state" data-ok="${ok}">${esc(text)}</span>`;

// ---------------------------------------------------------------------------------------------
// Rates and charts

/** Per-second rate of a counter between two polls (a restart resets counters: no negative). */
function rate(now, before, dt) {
  if (before == null || dt <= 0 || now < before) return 0;
  return (now - before) / dt;
}

function push(series, v) {
  series.push(v);
  if (series.length > POINTS) series.splice(0, series.length - POINTS);
}

function chart(id, title, series, unit) {
  const max = Math.max(1, ...series);
  const w = POINTS - 1;
  const pts = series.map((v, i) => `${w - (series.length - 1 - i)},${(60 - (v / max) * 56).toFixed(1)}`).join(' ');
  const nowV = series.length ? series[series.length - 1] : 0;
  return `<figure class="chart" id="chart-${id}"><figcaption><span>${esc(title)}</span><span data-now>${one.format(nowV)} ${esc(unit)} <span class="mute">(max ${one.format(max)})</span></span></figcaption>
<svg viewBox="0 0 ${w} 62" preserveAspectRatio="none" role="img" aria-label="${esc(`${title}: now ${one.format(nowV)} ${unit}, highest ${one.format(max)} in the last ${series.length} s`)}"><polyline points="${pts}"/></svg></figure>`;
}

// ---------------------------------------------------------------------------------------------
// Rendering

function renderSources(list) {
  if (!list.length) return '<p class="mute">No Canoe123 source configured (--c123 / --tcp-listen).</p>';
  const before = new Map((S.last?.tcpSources ?? []).map((s) => [s.address, s.framesTotal]));
  const dt = S.dt;
  return list.map((s) => {
    const up = s.state === 'connected';
    const fps = rate(s.framesTotal, before.get(s.address), dt);
    return `<div class="card source" data-address="${esc(s.address)}" data-state="${esc(s.state)}">${kv([
      ['Canoe123', `${state(up, up ? 'connected' : `not connected (${s.state})`)}`],
      ['Address', `${esc(s.address)} <span class="mute">${esc(s.mode)}</span>`],
      ['Peer', esc(s.peer ?? '–')],
      ['Last frame', esc(age(s.lastFrameAgeMs))],
      ['Frames/s', `<span data-fps>${one.format(fps)}</span> <span class="mute">(${int.format(s.framesTotal)} total)</span>`],
      ['Parse errors', `<span data-parse-errors>${int.format(s.parseErrors)}</span>`],
      ['Unmatched data', int.format((s.unused?.unknownAthletes ?? 0) + (s.unused?.br2WithoutPenalty ?? 0))],
      ['Last error', esc(s.lastError ?? '–')],
    ])}</div>`;
  }).join('');
}

function renderXml(w) {
  if (!w) return '<p class="mute">No XML folder watched (--xml-dir).</p>';
  return `<div class="card">${kv([
    ['Folder', `${esc(w.folder)} <span class="mute">${esc(w.mode)}</span>`],
    ['Imports', int.format(w.imports)],
    ['Last import', esc(w.lastImportAt ?? 'none yet')],
    ['File', `<span data-last-file>${esc(w.lastImportFile ?? '–')}</span>`],
    ['Rows changed', `<span data-rows-changed>${w.lastRowsChanged ?? '–'}</span>`],
    ['Refusals', `<span data-refusals>${int.format(w.refusals)}</span>`],
    ['Last refusal / error', `<span data-xml-error>${esc(w.lastError ?? '–')}</span>${w.lastErrorAt ? ` <span class="mute">${esc(w.lastErrorAt)}</span>` : ''}`],
  ])}</div>`;
}

function renderStorage(st) {
  const s = st.storage;
  return `<div class="card">${kv([
    ['Merge loop', state(st.mergeLoopRunning, st.mergeLoopRunning ? 'running' : 'stopped')],
    ['Database', `<span data-db-bytes>${bytes(s.dbBytes)}</span> <span class="mute">+ WAL ${bytes(s.walBytes)}</span>`],
    ['Last commit', state(!s.lastCommitFailed, s.lastCommitFailed ? 'FAILED' : 'ok')],
    ['Store errors', int.format(s.storeErrors)],
    ['Skipped rows', int.format(st.skippedRows?.count ?? 0)],
    ['Last commit age', esc(age(st.snapshotAgeMs))],
  ])}</div>`;
}

const LABEL = { draft: 'Back to draft', startlist: 'Publish start list', running: 'Start (running)', finished: 'Finish', official: 'Make official' };

function renderEvents(events) {
  if (!events.length) return '<p class="mute">No event yet.</p>';
  return events.map((e) => {
    const buttons = e.nextStatuses.map((to) => `<button type="button" data-event="${esc(e.eventId)}" data-to="${esc(to)}">${esc(LABEL[to] ?? to)}</button>`).join('');
    const refusal = S.refusals.get(e.eventId);
    const strat = ['tcp-wins', 'xml-wins'].map((s) => `<option value="${s}"${s === e.mergeStrategy ? ' selected' : ''}>${s}</option>`).join('');
    return `<div class="card event" data-event-id="${esc(e.eventId)}">
<div class="head"><b>${esc(e.mainTitle || e.eventId)}</b> <span class="mute">${esc(e.eventId)}</span> <span class="badge" data-status>${esc(e.status)}</span>
<span>seq ${int.format(e.seq)}</span><span>on course ${e.onCourse}</span><span data-ws-clients>WebSocket clients ${int.format(e.wsClients)}</span></div>
<div class="actions" role="group" aria-label="Lifecycle of ${esc(e.eventId)}">${buttons || '<span class="mute">No further transition (official is final).</span>'}
<label>Merge strategy <select data-strategy="${esc(e.eventId)}">${strat}</select></label>${e.mergeStrategyOverridden ? '' : ' <span class="mute">(daemon default)</span>'}</div>
${refusal ? `<p class="refusal" role="alert" data-refusal>${esc(refusal)}</p>` : ''}</div>`;
  }).join('');
}

function renderLog(log) {
  $('log-total').textContent = `(${log.warnings.length} shown, ${log.total} since start)`;
  $('log').innerHTML = [...log.warnings].reverse().map((w) => `<li><span class="mute">${esc(w.at)}</span> <span class="lvl-${esc(w.level)}">${esc(w.level)}</span> <span class="mute">${esc(w.target)}</span> ${esc(w.message)}</li>`).join('')
    || '<li class="mute">No warning since start.</li>';
}

/** Replaces a section's HTML when it changed. An open select is left alone (re-rendering
 * would close it under the operator's hand); a focused button gets its focus back. */
function put(id, html) {
  const el = $(id);
  const a = document.activeElement;
  const inside = el.contains(a) && a !== el;
  if (inside && a.tagName === 'SELECT') return;
  if (S.html.get(id) === html) return;
  S.html.set(id, html);
  const again = inside && a.dataset.to
    ? `button[data-event="${CSS.escape(a.dataset.event)}"][data-to="${CSS.escape(a.dataset.to)}"]` : null;
  el.innerHTML = html;
  if (again) el.querySelector(again)?.focus();
}

function render(st) {
  put('events', renderEvents(st.events));
  put('sources', renderSources(st.tcpSources));
  put('xml', renderXml(st.xmlWatcher));
  put('storage', renderStorage(st));
  const s = S.series;
  $('charts').innerHTML = chart('commits', 'Commits/s', s.commits, '/s') + chart('frames', 'TCP frames/s', s.frames, '/s')
    + chart('clients', 'WebSocket clients', s.clients, '');
}

// ---------------------------------------------------------------------------------------------
// Polling

function setPoll(stateName, text) {
  $('poll').dataset.state = stateName;
  $('poll').textContent = text;
}

// One poll at a time: a poll asked for while one is waiting for the daemon (an action's
// refresh) runs right after it, instead of starting a second timer chain beside it.
async function poll() {
  if (S.polling) { S.again = true; return; }
  S.polling = true;
  try {
    do {
      S.again = false;
      await pollOnce();
    } while (S.again && S.key);
  } finally {
    S.polling = false;
  }
}

async function pollOnce() {
  clearTimeout(S.timer);
  if (!S.key) return;
  const at = performance.now();
  try {
    const st = await call('/api/v1/admin/status');
    S.dt = S.lastAt ? (at - S.lastAt) / 1000 : 0;
    const frames = st.tcpSources.reduce((n, x) => n + x.framesTotal, 0);
    const framesBefore = S.last?.tcpSources.reduce((n, x) => n + x.framesTotal, 0);
    if (S.last) {
      push(S.series.commits, rate(st.commits, S.last.commits, S.dt));
      push(S.series.frames, rate(frames, framesBefore, S.dt));
    }
    push(S.series.clients, st.wsClients);
    render(st);
    S.last = st;
    S.lastAt = at;
    if (S.polls % LOG_EVERY === 0) renderLog(await call('/api/v1/admin/log'));
    S.polls += 1;
    setPoll('ok', `Live · updated ${new Date().toLocaleTimeString('en-GB')}`);
  } catch (e) {
    if (e.status === 401 || e.status === 403) { signOut('The master key was refused.'); return; }
    setPoll('error', `Daemon unreachable: ${e.message}`);
  }
  S.timer = setTimeout(poll, POLL_MS);
}

// ---------------------------------------------------------------------------------------------
// Actions

/** Runs an action on an event; a refusal is kept and shown under the event with its reason. */
async function act(id, what, path, body) {
  try {
    await call(path, { method: 'PATCH', body });
    S.refusals.delete(id);
  } catch (e) {
    S.refusals.set(id, `${what} refused: ${e.message}`);
  }
  await poll();
}

function confirmThen(text, run) {
  const dlg = $('confirm');
  $('confirm-text').textContent = text;
  dlg.returnValue = '';
  dlg.onclose = () => { if (dlg.returnValue === 'ok') run(); };
  dlg.showModal();
}

function transition(id, to) {
  const run = () => act(id, `${id} → ${to}`, `/api/v1/admin/events/${encodeURIComponent(id)}/status`, { status: to });
  if (to === 'official') {
    confirmThen(`Make ${id} official? Results are then final: no more imports or live data, spectators get the final page.`, run);
  } else run();
}

function signOut(why) {
  S.key = null;
  clearTimeout(S.timer);
  try { sessionStorage.removeItem(KEY); } catch { /* nothing stored */ }
  $('console').hidden = true;
  $('login').hidden = false;
  $('logout').hidden = true;
  $('login-error').hidden = !why;
  $('login-error').textContent = why ?? '';
  setPoll('idle', 'Not signed in');
  $('key').focus();
}

async function signIn(key) {
  S.key = key;
  try {
    await call('/api/v1/admin/status');
  } catch (e) {
    signOut(e.status === 401 || e.status === 403 ? 'The master key was refused.' : `Cannot reach the daemon: ${e.message}`);
    return;
  }
  try { sessionStorage.setItem(KEY, key); } catch { /* kept in memory only */ }
  $('login').hidden = true;
  $('login-error').hidden = true;
  $('console').hidden = false;
  $('logout').hidden = false;
  S.last = null;
  S.lastAt = 0;
  S.polls = 0;
  S.html.clear();
  poll();
}

function wire() {
  $('login').addEventListener('submit', (e) => {
    e.preventDefault();
    const k = $('key').value.trim();
    $('key').value = '';
    if (k) signIn(k);
  });
  $('logout').addEventListener('click', () => signOut());
  $('events').addEventListener('click', (e) => {
    const b = e.target.closest('button[data-to]');
    if (b) transition(b.dataset.event, b.dataset.to);
  });
  $('events').addEventListener('change', (e) => {
    const sel = e.target.closest('select[data-strategy]');
    if (sel) act(sel.dataset.strategy, `merge strategy ${sel.value}`, `/api/v1/admin/events/${encodeURIComponent(sel.dataset.strategy)}/config`, { mergeStrategy: sel.value });
  });
}

wire();
let saved = null;
try { saved = sessionStorage.getItem(KEY); } catch { /* none */ }
if (saved) signIn(saved); else signOut();
