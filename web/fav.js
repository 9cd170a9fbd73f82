// Favourites (starred riders, per event, in localStorage) and the browser notifications about
// them: a favourite starts, finishes, and the event's results become official. Permission is
// asked only when the spectator taps the bell (browsers ignore or punish a prompt on load).

import { t, sec } from './i18n.js';

const KEY = (eventId) => `c123live.fav.${eventId}`;
/** Bounded: a page of 500 stars is a mistake, not a use. */
const MAX_FAVS = 500;

let eventId = null;
let favs = new Set();
/** What was already announced, so a reconnect or a repeated diff does not notify twice. */
const told = new Set();
let onCourseBefore = new Set();
/** The first list after loading is what was already happening: nothing to announce. */
let primed = false;

export function loadFavs(id) {
  eventId = id;
  favs = new Set();
  try {
    const v = JSON.parse(localStorage.getItem(KEY(id)) ?? '[]');
    if (Array.isArray(v)) for (const b of v.slice(0, MAX_FAVS)) favs.add(String(b));
  } catch { /* a damaged entry starts empty */ }
}

function save() {
  try { localStorage.setItem(KEY(eventId), JSON.stringify([...favs])); } catch { /* not remembered */ }
}

export const isFav = (bib) => favs.has(String(bib));
export const favCount = () => favs.size;

export function toggleFav(bib) {
  const b = String(bib);
  if (favs.has(b)) favs.delete(b);
  else if (favs.size < MAX_FAVS) favs.add(b);
  save();
  return favs.has(b);
}

/** The bell: `off` (never asked), `on`, `denied`, or `none` (no Notification API). */
export function notifyState() {
  const N = window.Notification;
  if (!N) return 'none';
  if (N.permission === 'granted') return 'on';
  if (N.permission === 'denied') return 'denied';
  return 'off';
}

/** Asks for permission; only ever called from a tap. */
export async function askPermission() {
  const N = window.Notification;
  if (!N || N.permission !== 'default') return notifyState();
  try { await N.requestPermission(); } catch { /* old Safari: callback form, ignored */ }
  return notifyState();
}

function notify(id, text) {
  if (told.has(id)) return;
  told.add(id);
  if (told.size > 5000) told.clear(); // bounded; a repeat after 5000 announcements is harmless
  if (notifyState() !== 'on') return;
  try {
    new window.Notification(text, { tag: id, lang: document.documentElement.lang });
  } catch { /* mobile Chrome needs a service worker for `new Notification`; nothing to do */ }
}

/** Compares the new on-course list with the last one: a favourite appearing has started, one
 * marked finished (or leaving the course with a time) has finished. */
export function onCourseChanged(list) {
  const now = new Set();
  for (const e of list) {
    const id = `${e.raceId}|${e.bib}`;
    now.add(id);
    if (!isFav(e.bib) || !primed) continue;
    if (!onCourseBefore.has(id)) notify(`start|${id}`, t('nStarted', { bib: e.bib, name: e.name }));
    if (e.completed || e.dtFinish) finished(e.raceId, e.bib, e.name, e.total, e.rank);
  }
  onCourseBefore = now;
  primed = true;
}

/** A result row changed: a favourite with a total (or a status) has finished. */
export function resultChanged(raceId, row, old) {
  if (!isFav(row.bib)) return;
  const done = (r) => r && (r.total != null || r.status);
  if (done(row) && !done(old)) finished(raceId, row.bib, row.name, row.total, row.rnk);
}

function finished(raceId, bib, name, total, rank) {
  const text = total != null && rank
    ? t('nFinishedRank', { bib, name, total: sec(total), rank })
    : t('nFinished', { bib, name });
  notify(`finish|${raceId}|${bib}`, text);
}

/** The event's status changed. */
export function statusChanged(status, title) {
  if (status === 'official' && favs.size) notify(`official|${eventId}`, t('nOfficial', { title }));
}
