// c123-live spectator page. Plain ES module, no build step, no third-party code.
// Data: REST /api/v1/... for lists, WebSocket /api/v1/events/{id}/ws for changes
// (full -> refetch, diff -> apply, refresh -> refetch; resume with ?since=seq&epoch=E).
// Wire units: times and pen in centiseconds, gate penalties in seconds.
// Language and formatting: i18n.js; favourites and notifications: fav.js; search and the
// rider detail: detail.js.

import { t, lang, setLang, dateText, eventStatusText } from './i18n.js';
import * as fav from './fav.js';
import { detailHtml } from './detail.js';
import { S, esc, raceById, groupKey, isBestRun, classOf, raceLabel, raceKeys, byRank } from './state.js';
import { renderOnCourse, tickClocks, renderResults, renderStartlist, renderSchedule } from './views.js';

const $ = (id) => document.getElementById(id);
const BACKOFF = [1, 2, 4, 8, 15];

// ---------------------------------------------------------------------------------------------
// Races (formatting is i18n.js')

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
  fav.onCourseChanged(S.oncourse);
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
    fav.resultChanged(raceId, row, i < 0 ? null : cached[i]);
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

function onMessage(ev) {
  let m;
  try { m = JSON.parse(ev.data); } catch { return; }
  // One change may come as several frames (one per race id, `part` of `parts`, same seq):
  // a resume starts after the last change whose every part arrived.
  if (typeof m.seq === 'number') {
    // A `superseded` diff's change arrives folded into the next message that is not one;
    // until it has, a resume starts before the skip (so the replay brings it).
    if (m.superseded) S.skipFrom ??= S.seq;
    else S.skipFrom = null;
    S.seq = (m.part ?? 1) < (m.parts ?? 1) ? m.seq - 1 : m.seq;
  }
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
      fav.statusChanged(d.status, S.detail.event.mainTitle);
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

/** The connection state; its text is looked up at render time, so a language switch keeps it. */
function setConn(state, key) {
  const el = $('conn');
  el.dataset.state = state;
  el.dataset.key = key;
  $('conn-text').textContent = t(key);
}

function connect() {
  clearTimeout(S.retryTimer);
  if (S.ws || S.final || !S.eventId) return;
  const proto = location.protocol === 'https:' ? 'wss:' : 'ws:';
  let url = `${proto}//${location.host}/api/v1/events/${enc(S.eventId)}/ws`;
  if (S.epoch) url += `?since=${S.skipFrom ?? S.seq}&epoch=${enc(S.epoch)}`;
  setConn('connecting', S.attempt ? 'reconnecting' : 'connecting');
  let ws;
  try { ws = new WebSocket(url); } catch { retry(); return; }
  S.ws = ws;
  ws.onopen = () => { S.attempt = 0; setConn('live', 'live'); };
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
    if (detail.event.status === 'official') {
      S.final = true;
      fav.statusChanged('official', detail.event.mainTitle);
      applyDetail(detail);
      await reloadAll();
      return finalState();
    }
    setConn('connecting', 'reconnecting');
    if (S.attempt > 1 || !S.detail) { applyDetail(detail); await reloadAll(); }
  } catch (e) {
    setConn('offline', 'offline');
    if (e.status === 404) return showError(new Error(t('unavailable')));
  }
  S.retryTimer = setTimeout(connect, wait);
}

function finalState() {
  setConn('final', 'final');
  renderHeader();
}

// ---------------------------------------------------------------------------------------------
// Rendering

function showError(e) {
  const el = $('message');
  el.textContent = e?.message ?? String(e);
  el.hidden = false;
}

/** The static labels of index.html, in the current language. */
function renderLabels() {
  for (const el of document.querySelectorAll('[data-i18n]')) el.textContent = t(el.dataset.i18n);
  for (const el of document.querySelectorAll('[data-i18n-ph]')) el.placeholder = t(el.dataset.i18nPh);
  if (!S.detail) $('title').textContent = t('title');
  $('langs').setAttribute('aria-label', t('lang'));
  $('tabs').setAttribute('aria-label', t('view'));
  for (const b of document.querySelectorAll('[data-lang]')) b.setAttribute('aria-pressed', String(b.dataset.lang === lang));
  const c = $('conn');
  if (c.dataset.key) $('conn-text').textContent = t(c.dataset.key);
  renderTools();
}

function renderTools() {
  $('fav-only').setAttribute('aria-pressed', String(S.favOnly));
  $('follow').setAttribute('aria-pressed', String(!S.userPicked));
  $('follow-text').textContent = t(S.userPicked ? 'followLive' : 'following');
  const bell = fav.notifyState();
  $('bell').hidden = bell === 'none' || fav.favCount() === 0;
  $('bell').setAttribute('aria-pressed', String(bell === 'on'));
  $('bell').disabled = bell === 'denied';
  $('bell-text').textContent = t(bell === 'on' ? 'notifyOn' : bell === 'denied' ? 'notifyDenied' : 'notify');
}

function renderHeader() {
  const ev = S.detail?.event;
  if (!ev) return;
  $('title').textContent = ev.mainTitle || t('title');
  document.title = `${ev.mainTitle || t('title')} – ${t('live')}`;
  $('subtitle').textContent = [ev.subTitle, ev.location, dateText(ev.startDate)].filter(Boolean).join(' · ');
  const st = $('status');
  st.hidden = !ev.status;
  st.textContent = eventStatusText(ev.status);
}

function renderRaceSelect() {
  const sel = $('race-select');
  const groups = new Map();
  for (const k of raceKeys()) {
    const cls = classOf(raceById(k));
    const label = cls ? (cls.longTitle || cls.name) : t('other');
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
  $('cat-select').innerHTML = `<option value="">${esc(t('all'))}</option>${
    cats.map((c) => `<option value="${esc(c.catId)}"${c.catId === S.cat ? ' selected' : ''}>${esc(c.name || c.catId)}</option>`).join('')}`;
  $('cat-label').hidden = cats.length === 0;
}

function renderView() {
  const v = $('view');
  // Re-rendering must not take the keyboard focus away from a star or a name.
  const focused = document.activeElement?.closest?.('#view [data-star], #view [data-open]');
  const refocus = focused && (focused.dataset.star ? `[data-star="${focused.dataset.star}"]` : `[data-open="${focused.dataset.open}"]`);
  v.innerHTML = S.tab === 'startlist' ? renderStartlist() : S.tab === 'schedule' ? renderSchedule() : renderResults();
  // The highlight keeps fading from where it was (CSSOM, allowed by the page's CSP).
  for (const tr of v.querySelectorAll('tr.hi')) tr.style.animationDelay = `-${tr.dataset.age / 1000}s`;
  for (const b of document.querySelectorAll('.tabs button')) b.setAttribute('aria-pressed', String(b.dataset.tab === S.tab));
  if (refocus) v.querySelector(refocus)?.focus();
}

function render() {
  renderLabels();
  renderHeader();
  renderOnCourse();
  renderView();
}

// ---------------------------------------------------------------------------------------------
// The rider detail (a dialog: focus kept inside, Escape closes, focus returns to the row)

async function openDetail(bib) {
  const dlg = $('detail');
  const key = S.raceKey;
  $('detail-body').innerHTML = `<p class="empty">${t('loading')}</p>`;
  if (!dlg.open) dlg.showModal();
  try {
    const body = await api(`/events/${enc(S.eventId)}/results/${enc(key)}?detailed=true`);
    const row = body.results.find((r) => String(r.bib) === String(bib));
    if (!row) throw new Error(t('noResults'));
    $('detail-body').innerHTML = detailHtml(row, raceById(key), isBestRun(key) && 'totalTotal' in row);
    $('detail-body').dataset.bib = String(bib);
  } catch (e) {
    $('detail-body').innerHTML = `<p class="message">${esc(e.message)}</p>`;
  }
  dlg.querySelector('[data-close]')?.focus();
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
  renderTools();
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

function wireTools() {
  for (const b of document.querySelectorAll('[data-lang]')) {
    b.addEventListener('click', () => {
      setLang(b.dataset.lang);
      renderRaceSelect();
      render();
    });
  }
  $('search').addEventListener('input', (e) => { S.q = e.target.value.slice(0, 100); renderView(); });
  $('fav-only').addEventListener('click', () => { S.favOnly = !S.favOnly; renderTools(); renderView(); });
  $('bell').addEventListener('click', async () => { await fav.askPermission(); renderTools(); });
  $('follow').addEventListener('click', () => {
    if (!S.userPicked) return;
    S.userPicked = false;
    const k = followKey();
    if (k) selectRace(k, false); else { renderTools(); writeHash(); }
  });
  $('detail').addEventListener('click', (e) => {
    if (e.target.closest('[data-close]') || e.target === $('detail')) $('detail').close();
  });
  $('detail').addEventListener('close', () => {
    const bib = $('detail-body').dataset.bib;
    if (bib) $('view').querySelector(`[data-open="${CSS.escape(bib)}"]`)?.focus();
  });
}

function wire() {
  wireTools();
  $('race-select').addEventListener('change', (e) => selectRace(e.target.value, true));
  $('cat-select').addEventListener('change', (e) => { S.cat = e.target.value; writeHash(); renderView(); });
  for (const b of document.querySelectorAll('.tabs button')) b.addEventListener('click', () => selectTab(b.dataset.tab));
  $('view').addEventListener('click', (e) => {
    const star = e.target.closest('[data-star]');
    if (star) {
      fav.toggleFav(star.dataset.star);
      renderTools();
      renderView();
      renderOnCourse();
      return;
    }
    const open = e.target.closest('[data-open]');
    if (open) { openDetail(open.dataset.open); return; }
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
    ? events.map((e) => `<li><a href="#e=${esc(enc(e.eventId))}">${esc(e.mainTitle)} <span class="club">${esc([e.location, dateText(e.startDate), eventStatusText(e.status)].filter(Boolean).join(' · '))}</span></a></li>`).join('')
    : `<li class="empty">${t('noPublic')}</li>`;
  setConn('final', 'noEvent');
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
    fav.loadFavs(S.eventId);
    renderTools();
    $('events').hidden = true;
    writeHash();
    // The socket's first message is a `full`; the lists are fetched once it is there, so no
    // change can fall between the REST reads and the subscription. Without a socket (official
    // event, blocked WebSocket) `retry` reads everything over REST.
    connect();
  } catch (e) {
    showError(e.status === 404 ? new Error(t('unavailable')) : e);
    setConn('offline', 'offline');
    setTimeout(start, 5000);
  }
}

addEventListener('hashchange', () => {
  const e = new URLSearchParams(location.hash.slice(1)).get('e');
  if (e && e !== S.eventId) location.reload();
});

renderLabels();
wire();
start();
