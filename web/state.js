// The page's state and the race helpers every part uses. Best-run pairs are one race with
// both runs.

import { t, raceTypeText } from './i18n.js';

export const esc = (v) => String(v ?? '').replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

export const S = {
  eventId: null, detail: null, seq: 0, epoch: null,
  oncourse: [], clocks: new Map(),
  results: new Map(), // group key -> rows
  flash: new Map(), // `${key}|${bib}` -> time highlighted
  raceKey: null, userPicked: false, tab: 'results', cat: '', startlist: null, q: '', favOnly: false,
  ws: null, attempt: 0, retryTimer: 0, final: false, loading: 0,
};

const BR = /^(.+)_BR([12])_(.+)$/;

export function raceById(id) {
  return S.detail?.races.find((r) => r.raceId === id);
}

/** The key a race is listed and cached under: for a best-run pair its BR2 id (or the BR1 id
 * when the event has no BR2 race). */
export function groupKey(raceId) {
  const m = BR.exec(raceId);
  if (!m) return raceId;
  const br2 = `${m[1]}_BR2_${m[3]}`;
  return raceById(br2) ? br2 : `${m[1]}_BR1_${m[3]}`;
}

export function isBestRun(key) {
  return BR.test(key) && /^best-run/.test(raceById(key)?.raceType ?? 'best-run');
}

export function classOf(race) {
  return S.detail?.classes.find((c) => c.classId === race?.classId);
}

export function raceLabel(key, withClass) {
  const race = raceById(key);
  if (!race) return key;
  const cls = classOf(race);
  const m = BR.exec(key);
  const pair = m && raceById(`${m[1]}_BR1_${m[3]}`) && raceById(`${m[1]}_BR2_${m[3]}`);
  const what = pair ? t('runs12') : raceTypeText(race.raceType);
  return withClass && cls ? `${cls.name} – ${what}` : what;
}

/** Selectable races: one entry per group key, in race order. */
export function raceKeys() {
  const seen = new Set();
  const out = [];
  for (const r of sortedRaces()) {
    const k = groupKey(r.raceId);
    if (!seen.has(k)) { seen.add(k); out.push(k); }
  }
  return out;
}

export function sortedRaces() {
  return [...(S.detail?.races ?? [])].sort((a, b) => (a.raceOrder ?? -1) - (b.raceOrder ?? -1));
}

export function byRank(a, b) {
  const ra = a.rnk ?? Infinity;
  const rb = b.rnk ?? Infinity;
  return ra - rb || (a.bib ?? 0) - (b.bib ?? 0);
}
