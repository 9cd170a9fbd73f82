// c123-live spectator page. Plain ES module, no build step, no third-party code.
// Data: REST /api/v1/... for lists, WebSocket /api/v1/events/{id}/ws for changes
// (full -> refetch, diff -> apply, refresh -> refetch; resume with ?since=seq&epoch=E).
// Wire units: times and pen in centiseconds, gate penalties in seconds.

const $ = (id) => document.getElementById(id);
const esc = (v) => String(v ?? '').replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
const BACKOFF = [1, 2, 4, 8, 15];
const HIGHLIGHT_MS = 8000;
const RACE_STATUS = ['Scheduled', 'Start list', 'Delayed', 'In progress', 'Unofficial', 'Official', 'Revised',
  'Cancelled', 'Getting ready', 'Unconfirmed', 'Protested', 'Interrupted', 'Rescheduled', 'Postponed'];
const RACE_TYPE = {
  'best-run-1': '1st run', 'best-run-2': '2nd run', qualification: 'Qualification', semifinal: 'Semifinal',
  final: 'Final', training: 'Training', seeding: 'Seeding', 'cross-trial': 'Time trial', 'cross-heat': 'Heats',
  'cross-semifinal': 'Semifinal', 'cross-final': 'Final',
};

const S = {
  eventId: null, detail: null, seq: 0, epoch: null,
  oncourse: [], clocks: new Map(),
  results: new Map(), // group key -> rows
  flash: new Map(), // `${key}|${bib}` -> time highlighted
  raceKey: null, userPicked: false, tab: 'results', cat: '', startlist: null,
  ws: null, attempt: 0, retryTimer: 0, final: false, loading: 0,
};

// ---------------------------------------------------------------------------------------------
// Formatting

const sec = (cs) => (cs == null ? '' : (cs / 100).toFixed(2));
const penS = (cs) => (cs == null ? '' : String(Math.round(cs / 100)));
const clockOf = (d) => (d ? String(d).replace(/^.*T/, '').slice(0, 5) : '');

// ---------------------------------------------------------------------------------------------
// Races: best-run pairs are one race with both runs.

const BR = /^(.+)_BR([12])_(.+)$/;

function raceById(id) {
  return S.detail?.races.find((r) => r.raceId === id);
}

/** The key a race is listed and cached under: for a best-run pair its BR2 id (or the BR1 id
 * when the event has no BR2 race). */
function groupKey(raceId) {
  const m = BR.exec(raceId);
  if (!m) return raceId;
  const br2 = `${m[1]}_BR2_${m[3]}`;
  return raceById(br2) ? br2 : `${m[1]}_BR1_${m[3]}`;
}

function isBestRun(key) {
  return BR.test(key) && /^best-run/.test(raceById(key)?.raceType ?? 'best-run');
}

function classOf(race) {
  return S.detail?.classes.find((c) => c.classId === race?.classId);
}

function raceLabel(key, withClass) {
  const race = raceById(key);
  if (!race) return key;
  const cls = classOf(race);
  const m = BR.exec(key);
  const pair = m && raceById(`${m[1]}_BR1_${m[3]}`) && raceById(`${m[1]}_BR2_${m[3]}`);
  const what = pair ? 'Runs 1 + 2' : (RACE_TYPE[race.raceType] ?? race.raceType ?? '');
  return withClass && cls ? `${cls.name} – ${what}` : what;
}

/** Selectable races: one entry per group key, in race order. */
function raceKeys() {
  const seen = new Set();
  const out = [];
  for (const r of sortedRaces()) {
    const k = groupKey(r.raceId);
    if (!seen.has(k)) { seen.add(k); out.push(k); }
  }
  return out;
}

function sortedRaces() {
  return [...(S.detail?.races ?? [])].sort((a, b) => (a.raceOrder ?? -1) - (b.raceOrder ?? -1));
}

// ---------------------------------------------------------------------------------------------
// REST

async function api(path) {
  const r = await fetch(`/api/v1${path}`, { headers: { Accept: 'application/json' } });
  if (!r.ok) {
    const e = new Error(`${r.status} ${path}`);
    e.status = r.status;
    throw e;
  }
  return r.json();
}

const enc = encodeURIComponent;

async function loadResults(key) {
  const body = await api(`/events/${enc(S.eventId)}/results/${enc(key)}`);
  S.results.set(key, body.results);
}

async function loadOnCourse() {
  const body = await api(`/events/${enc(S.eventId)}/oncourse`);
  setOnCourse(body.oncourse);
}

async function loadStartlist(key) {
  const body = await api(`/events/${enc(S.eventId)}/startlist/${enc(key)}`);
  S.startlist = { key, rows: body.startlist };
}

/** Refetches everything the page shows (after a `full`, a `refresh`, or while offline). */
async function reloadAll() {
  S.results.clear();
  const jobs = [loadOnCourse()];
  if (S.raceKey) jobs.push(loadResults(S.raceKey));
  if (S.tab === 'startlist' && S.raceKey) jobs.push(loadStartlist(S.raceKey));
  await Promise.all(jobs);
  render();
}

// ---------------------------------------------------------------------------------------------
// Applying messages

function applyDetail(detail) {
  S.detail = detail;
  const keys = raceKeys();
  if (S.raceKey && !keys.includes(groupKey(S.raceKey))) S.raceKey = null;
  if (S.raceKey) S.raceKey = groupKey(S.raceKey);
  if (!S.raceKey) S.raceKey = followKey() ?? keys.find((k) => raceById(k)?.raceStatus === 3) ?? keys[0] ?? null;
  renderHeader();
  renderRaceSelect();
}

function followKey() {
  const first = S.oncourse[0];
  return first && raceById(first.raceId) ? groupKey(first.raceId) : null;
}

function setOnCourse(list) {
  const now = performance.now();
  const clocks = new Map();
  for (const e of list) {
    const id = `${e.raceId}|${e.bib}`;
    const old = S.clocks.get(id);
    clocks.set(id, old && old.time === e.time ? old : { time: e.time, at: now });
  }
  S.clocks = clocks;
  S.oncourse = [...list].sort((a, b) => (a.position ?? 99) - (b.position ?? 99));
  if (!S.userPicked) {
    const k = followKey();
    if (k && k !== S.raceKey) selectRace(k, false);
  }
}

const WATCHED = ['time', 'pen', 'total', 'status', 'prevTime', 'prevPen', 'totalTotal', 'prevStatus', 'currStatus'];

/** Upserts rows by bib into a cached race and marks the rows whose run data changed. */
function upsertResults(raceId, rows) {
  const key = groupKey(raceId);
  const cached = S.results.get(key);
  if (!cached) return false;
  const now = Date.now();
  for (const row of rows) {
    const i = cached.findIndex((r) => r.bib === row.bib);
    if (i < 0) {
      cached.push(row);
      if (row.time != null || row.status) S.flash.set(`${key}|${row.bib}`, now);
    } else {
      const old = cached[i];
      if (WATCHED.some((f) => f in row && row[f] !== old[f])) S.flash.set(`${key}|${row.bib}`, now);
      cached[i] = { ...old, ...row };
    }
  }
  cached.sort(byRank);
  return key === S.raceKey;
}

function byRank(a, b) {
  const ra = a.rnk ?? Infinity;
  const rb = b.rnk ?? Infinity;
  return ra - rb || (a.bib ?? 0) - (b.bib ?? 0);
}

function onMessage(ev) {
  let m;
  try { m = JSON.parse(ev.data); } catch { return; }
  // One change may come as several frames (one per race id, `part` of `parts`, same seq):
  // a resume starts after the last change whose every part arrived.
  if (typeof m.seq === 'number') S.seq = (m.part ?? 1) < (m.parts ?? 1) ? m.seq - 1 : m.seq;
  if (m.epoch) S.epoch = m.epoch;
  if (m.type === 'full') {
    applyDetail(m.data);
    reloadAll().catch(showError);
  } else if (m.type === 'refresh') {
    reloadAll().catch(showError);
  } else if (m.type === 'diff' && m.data) {
    const d = m.data;
    let dirty = false;
    if (d.status) {
      S.detail.event.status = d.status;
      renderHeader();
    }
    if (Array.isArray(d.oncourse)) {
      setOnCourse(d.oncourse);
      renderOnCourse();
    }
    if (Array.isArray(d.results) && d.raceId) dirty = upsertResults(d.raceId, d.results) || dirty;
    if (dirty && S.tab === 'results') renderView();
  }
}

// ---------------------------------------------------------------------------------------------
// WebSocket with resume and backoff

function setConn(state, text) {
  const el = $('conn');
  el.dataset.state = state;
  $('conn-text').textContent = text;
}

function connect() {
  clearTimeout(S.retryTimer);
  if (S.ws || S.final || !S.eventId) return;
  const proto = location.protocol === 'https:' ? 'wss:' : 'ws:';
  let url = `${proto}//${location.host}/api/v1/events/${enc(S.eventId)}/ws`;
  if (S.epoch) url += `?since=${S.seq}&epoch=${enc(S.epoch)}`;
  setConn('connecting', S.attempt ? 'Reconnecting…' : 'Connecting…');
  let ws;
  try { ws = new WebSocket(url); } catch { retry(); return; }
  S.ws = ws;
  ws.onopen = () => { S.attempt = 0; setConn('live', 'Live'); };
  ws.onmessage = onMessage;
  ws.onclose = (ev) => {
    S.ws = null;
    if (ev.code === 1000 && /official/i.test(ev.reason)) { S.final = true; }
    retry();
  };
}

/** After a close: check the event over REST (official? gone? server down?), keep the page
 * current from REST while the socket is down, and try again with backoff. */
async function retry() {
  if (S.final) return finalState();
  const wait = BACKOFF[Math.min(S.attempt, BACKOFF.length - 1)] * 1000 * (0.8 + Math.random() * 0.4);
  S.attempt += 1;
  try {
    const detail = await api(`/events/${enc(S.eventId)}`);
    if (detail.event.status === 'official') { S.final = true; applyDetail(detail); await reloadAll(); return finalState(); }
    setConn('connecting', 'Reconnecting…');
    if (S.attempt > 1 || !S.detail) { applyDetail(detail); await reloadAll(); }
  } catch (e) {
    setConn('offline', 'Offline – retrying');
    if (e.status === 404) return showError(new Error('This event is not available.'));
  }
  S.retryTimer = setTimeout(connect, wait);
}

function finalState() {
  setConn('final', 'Final results');
  renderHeader();
}

// ---------------------------------------------------------------------------------------------
// Rendering

function showError(e) {
  const el = $('message');
  el.textContent = e?.message ?? String(e);
  el.hidden = false;
}

function renderHeader() {
  const ev = S.detail?.event;
  if (!ev) return;
  $('title').textContent = ev.mainTitle || 'Live results';
  document.title = `${ev.mainTitle || 'Live results'} – live`;
  $('subtitle').textContent = [ev.subTitle, ev.location, ev.startDate].filter(Boolean).join(' · ');
  const st = $('status');
  st.hidden = !ev.status;
  st.textContent = ev.status ?? '';
}

function renderRaceSelect() {
  const sel = $('race-select');
  const groups = new Map();
  for (const k of raceKeys()) {
    const cls = classOf(raceById(k));
    const label = cls ? (cls.longTitle || cls.name) : 'Other';
    if (!groups.has(label)) groups.set(label, []);
    groups.get(label).push(k);
  }
  sel.innerHTML = [...groups].map(([label, keys]) => `<optgroup label="${esc(label)}">${
    keys.map((k) => `<option value="${esc(k)}"${k === S.raceKey ? ' selected' : ''}>${esc(raceLabel(k, true))}</option>`).join('')
  }</optgroup>`).join('');
  renderCategories();
  $('race').hidden = false;
}

function renderCategories() {
  const cats = classOf(raceById(S.raceKey))?.categories ?? [];
  if (!cats.some((c) => c.catId === S.cat)) S.cat = '';
  $('cat-select').innerHTML = `<option value="">All</option>${
    cats.map((c) => `<option value="${esc(c.catId)}"${c.catId === S.cat ? ' selected' : ''}>${esc(c.name || c.catId)}</option>`).join('')}`;
  $('cat-label').hidden = cats.length === 0;
}

function gateHtml(g) {
  const p = g.penalty;
  const cls = p == null ? 'pn' : p >= 50 ? 'p50' : p > 0 ? 'p2' : 'p0';
  const rev = g.type === 'reverse' ? ' rev' : '';
  const title = `Gate ${g.number}${g.type === 'reverse' ? ' (upstream)' : ''}: ${p == null ? 'not yet' : `${p} s`}`;
  return `<li class="${cls}${rev}" title="${esc(title)}"><span class="num">${g.number}</span><b>${p == null ? '·' : p}</b></li>`;
}

function clockText(e) {
  const c = S.clocks.get(`${e.raceId}|${e.bib}`);
  if (e.time == null) return e.dtStart ? '0.0' : '–';
  if (e.completed || e.dtFinish) return sec(e.time);
  const extra = c ? Math.min(performance.now() - c.at, 4000) : 0;
  return ((e.time + extra / 10) / 100).toFixed(1);
}

function renderOnCourse() {
  const list = S.oncourse;
  $('oncourse').hidden = list.length === 0;
  $('oncourse-list').innerHTML = list.map((e) => {
    const ttb = e.ttbDiff ? `<span class="ttb ${String(e.ttbDiff).startsWith('-') ? 'ahead' : 'behind'}">${esc(e.ttbDiff)}${e.ttbName ? ` vs ${esc(e.ttbName)}` : ''}</span>` : '';
    const done = e.completed || e.dtFinish;
    return `<article class="rider" data-bib="${esc(e.bib)}">
<div class="line1"><span class="who">${esc(e.bib)} · ${esc(e.name)}</span><span class="clock" data-clock="${esc(`${e.raceId}|${e.bib}`)}">${clockText(e)}</span></div>
<div class="line1"><span class="club">${esc(e.club)}</span><span class="racename">${esc(raceLabel(groupKey(e.raceId), true))}</span></div>
<div class="facts"><span>Pen ${penS(e.pen) || 0}</span>${done && e.total != null ? `<span>Total ${sec(e.total)}</span>` : ''}${e.rank ? `<span>Rank ${esc(e.rank)}</span>` : ''}${ttb}${done ? '<span>Finished</span>' : ''}</div>
<ul class="gates" aria-label="Gate penalties">${(e.gates ?? []).map(gateHtml).join('')}</ul></article>`;
  }).join('');
}

function tickClocks() {
  for (const el of document.querySelectorAll('[data-clock]')) {
    const e = S.oncourse.find((x) => `${x.raceId}|${x.bib}` === el.dataset.clock);
    if (e) el.textContent = clockText(e);
  }
}

function statusCell(status) {
  return status ? `<span class="st">${esc(status)}</span>` : '';
}

function runCell(time, pen, status, better) {
  if (status && time == null) return statusCell(status);
  if (time == null) return '';
  return `<span${better ? ' class="better"' : ''}>${sec(time)}</span><span class="pen">${penS(pen) ? `+${penS(pen)}` : ''}</span>${status ? statusCell(status) : ''}`;
}

function renderResults() {
  const rows0 = S.results.get(S.raceKey);
  if (!rows0) return '<p class="empty">Loading…</p>';
  const cat = S.cat;
  let rows = cat ? rows0.filter((r) => r.catId === cat) : rows0;
  if (cat) rows = [...rows].sort((a, b) => (a.catRnk ?? Infinity) - (b.catRnk ?? Infinity) || byRank(a, b));
  if (!rows.length) return '<p class="empty">No results yet.</p>';
  const br = isBestRun(S.raceKey) && rows.some((r) => 'totalTotal' in r);
  const now = Date.now();
  const head = br
    ? '<th class="n" scope="col">Run 1</th><th class="n" scope="col">Run 2</th>'
    : '<th class="n" scope="col">Time</th><th class="n wide" scope="col">Pen</th>';
  const body = rows.map((r) => {
    const t = S.flash.get(`${S.raceKey}|${r.bib}`);
    const age = t ? now - t : Infinity;
    const hi = age < HIGHLIGHT_MS ? ` class="hi" data-age="${age}"` : '';
    const rank = cat ? r.catRnk : r.rnk;
    const behind = cat ? r.catTotalBehind : r.totalBehind;
    let cells;
    let total;
    if (br) {
      const both = r.prevTime != null || r.prevStatus;
      cells = both
        ? `<td class="n">${runCell(r.prevTime, r.prevPen, r.prevStatus, r.betterRunNr === 1)}</td><td class="n">${runCell(r.time, r.pen, r.currStatus, r.betterRunNr === 2)}</td>`
        : `<td class="n">${runCell(r.time, r.pen, r.currStatus ?? r.status, false)}</td><td class="n"></td>`;
      total = r.totalTotal != null ? sec(r.totalTotal) : statusCell(r.status);
    } else {
      cells = `<td class="n">${r.status && r.time == null ? '' : sec(r.time)}</td><td class="n wide">${penS(r.pen)}</td>`;
      total = r.status ? statusCell(r.status) : sec(r.total);
    }
    return `<tr data-bib="${esc(r.bib)}"${hi}><td class="n">${rank ?? ''}</td><td class="n">${esc(r.bib)}</td><td>${esc(r.name)}<span class="club">${esc(r.club)}</span></td>${cells}<td class="n"><b>${total}</b></td><td class="n">${esc(rank === 1 ? '' : behind ?? '')}</td></tr>`;
  }).join('');
  return `<table><caption>${esc(raceLabel(S.raceKey, true))}${cat ? ` · ${esc(cat)}` : ''}</caption><thead><tr><th class="n" scope="col">#</th><th class="n" scope="col">Bib</th><th scope="col">Name</th>${head}<th class="n" scope="col">Total</th><th class="n" scope="col">Behind</th></tr></thead><tbody>${body}</tbody></table>`;
}

function renderStartlist() {
  const sl = S.startlist;
  if (!sl || sl.key !== S.raceKey) return '<p class="empty">Loading…</p>';
  const rows = S.cat ? sl.rows.filter((r) => r.catId === S.cat) : sl.rows;
  if (!rows.length) return '<p class="empty">No start list.</p>';
  return `<table><caption>Start list · ${esc(raceLabel(S.raceKey, true))}</caption><thead><tr><th class="n" scope="col">Order</th><th class="n" scope="col">Bib</th><th scope="col">Name</th><th class="n" scope="col">Start</th></tr></thead><tbody>${
    rows.map((r) => `<tr><td class="n">${esc(r.startOrder)}</td><td class="n">${esc(r.bib)}</td><td>${esc(r.name)}<span class="club">${esc(r.club)}</span></td><td class="n">${esc(clockOf(r.startTime))}</td></tr>`).join('')
  }</tbody></table>`;
}

function renderSchedule() {
  const live = new Set(S.oncourse.map((e) => groupKey(e.raceId)));
  const rows = sortedRaces().map((r) => {
    const k = groupKey(r.raceId);
    const cls = classOf(r);
    const status = live.has(k) ? 'On course now' : (RACE_STATUS[r.raceStatus] ?? '');
    return `<tr><td class="n">${esc(clockOf(r.startTime))}</td><td><a href="#" data-race="${esc(k)}">${esc(cls?.name ?? r.raceId)}</a> <span class="club">${esc(RACE_TYPE[r.raceType] ?? r.raceType)}</span></td><td>${esc(status)}</td></tr>`;
  }).join('');
  return `<table><caption>Schedule</caption><thead><tr><th class="n" scope="col">Start</th><th scope="col">Race</th><th scope="col">Status</th></tr></thead><tbody>${rows}</tbody></table>`;
}

function renderView() {
  const v = $('view');
  v.innerHTML = S.tab === 'startlist' ? renderStartlist() : S.tab === 'schedule' ? renderSchedule() : renderResults();
  // The highlight keeps fading from where it was (CSSOM, allowed by the page's CSP).
  for (const tr of v.querySelectorAll('tr.hi')) tr.style.animationDelay = `-${tr.dataset.age / 1000}s`;
  for (const b of document.querySelectorAll('.tabs button')) b.setAttribute('aria-pressed', String(b.dataset.tab === S.tab));
}

function render() {
  renderHeader();
  renderOnCourse();
  renderView();
}

// ---------------------------------------------------------------------------------------------
// User actions and the URL (#e=EVENT&r=RACE&t=TAB&c=CAT)

function writeHash() {
  const p = new URLSearchParams();
  if (S.eventId) p.set('e', S.eventId);
  if (S.userPicked && S.raceKey) p.set('r', S.raceKey);
  if (S.tab !== 'results') p.set('t', S.tab);
  if (S.cat) p.set('c', S.cat);
  history.replaceState(null, '', `#${p}`);
}

async function selectRace(key, byUser) {
  S.raceKey = key;
  if (byUser) S.userPicked = true;
  renderRaceSelect();
  writeHash();
  renderView();
  try {
    if (!S.results.has(key)) await loadResults(key);
    if (S.tab === 'startlist') await loadStartlist(key);
  } catch (e) { showError(e); }
  if (S.raceKey === key) renderView();
}

async function selectTab(tab) {
  S.tab = tab;
  writeHash();
  renderView();
  if (tab === 'startlist' && S.raceKey) {
    try { await loadStartlist(S.raceKey); } catch (e) { showError(e); }
    renderView();
  }
}

function wire() {
  $('race-select').addEventListener('change', (e) => selectRace(e.target.value, true));
  $('cat-select').addEventListener('change', (e) => { S.cat = e.target.value; writeHash(); renderView(); });
  for (const b of document.querySelectorAll('.tabs button')) b.addEventListener('click', () => selectTab(b.dataset.tab));
  $('view').addEventListener('click', (e) => {
    const a = e.target.closest('[data-race]');
    if (!a) return;
    e.preventDefault();
    S.tab = 'results';
    selectRace(a.dataset.race, true);
  });
  const wake = () => { if (!S.ws && !S.final && document.visibilityState === 'visible') { S.attempt = 0; connect(); } };
  document.addEventListener('visibilitychange', wake);
  addEventListener('online', wake);
  setInterval(tickClocks, 100);
}

async function chooseEvent() {
  const { events } = await api('/events');
  const running = events.filter((e) => e.status === 'running');
  if (events.length === 1) return events[0].eventId;
  if (running.length === 1) return running[0].eventId;
  $('events').hidden = false;
  $('event-list').innerHTML = events.length
    ? events.map((e) => `<li><a href="#e=${esc(enc(e.eventId))}">${esc(e.mainTitle)} <span class="club">${esc([e.location, e.startDate, e.status].filter(Boolean).join(' · '))}</span></a></li>`).join('')
    : '<li class="empty">No public event yet.</li>';
  setConn('final', 'No event selected');
  return null;
}

async function start() {
  const p = new URLSearchParams(location.hash.slice(1));
  S.tab = ['results', 'startlist', 'schedule'].includes(p.get('t')) ? p.get('t') : 'results';
  S.cat = p.get('c') ?? '';
  if (p.get('r')) { S.raceKey = p.get('r'); S.userPicked = true; }
  try {
    S.eventId = p.get('e') || (await chooseEvent());
    if (!S.eventId) return;
    $('events').hidden = true;
    writeHash();
    // The socket's first message is a `full`; the lists are fetched once it is there, so no
    // change can fall between the REST reads and the subscription. Without a socket (official
    // event, blocked WebSocket) `retry` reads everything over REST.
    connect();
  } catch (e) {
    showError(e.status === 404 ? new Error('This event is not available.') : e);
    setConn('offline', 'Offline – retrying');
    setTimeout(start, 5000);
  }
}

addEventListener('hashchange', () => {
  const e = new URLSearchParams(location.hash.slice(1)).get('e');
  if (e && e !== S.eventId) location.reload();
});

wire();
start();
