// Rendering of the on-course riders and of the three tables (results, start list, schedule).

import { t, sec, sec1, penS, behindText, statusText, clockOf, raceStatusText, raceTypeText } from './i18n.js';
import * as fav from './fav.js';
import { matches, gateHtml } from './detail.js';
import { S, esc, groupKey, isBestRun, raceLabel, sortedRaces, classOf, byRank } from './state.js';

const $ = (id) => document.getElementById(id);
export const HIGHLIGHT_MS = 8000;

export function clockText(e) {
  const c = S.clocks.get(`${e.raceId}|${e.bib}`);
  if (e.time == null) return e.dtStart ? sec1(0) : '–';
  if (e.completed || e.dtFinish) return sec(e.time);
  const extra = c ? Math.min(performance.now() - c.at, 4000) : 0;
  return sec1(e.time + extra / 10);
}

export function renderOnCourse() {
  const list = S.oncourse;
  $('oncourse').hidden = list.length === 0;
  $('oncourse-list').innerHTML = list.map((e) => {
    const ttb = e.ttbDiff ? `<span class="ttb ${String(e.ttbDiff).startsWith('-') ? 'ahead' : 'behind'}">${esc(behindText(e.ttbDiff))}${e.ttbName ? ` ${t('vs')} ${esc(e.ttbName)}` : ''}</span>` : '';
    const done = e.completed || e.dtFinish;
    return `<article class="rider${fav.isFav(e.bib) ? ' fav' : ''}" data-bib="${esc(e.bib)}">
<div class="line1"><span class="who">${fav.isFav(e.bib) ? '<span aria-hidden="true">★ </span>' : ''}${esc(e.bib)} · ${esc(e.name)}</span><span class="clock" data-clock="${esc(`${e.raceId}|${e.bib}`)}">${clockText(e)}</span></div>
<div class="line1"><span class="club">${esc(e.club)}</span><span class="racename">${esc(raceLabel(groupKey(e.raceId), true))}</span></div>
<div class="facts"><span>${t('pen')} ${penS(e.pen) || 0}</span>${done && e.total != null ? `<span>${t('total')} ${sec(e.total)}</span>` : ''}${e.rank ? `<span>${esc(t('rankN', { n: e.rank }))}</span>` : ''}${ttb}${done ? `<span>${t('finished')}</span>` : ''}</div>
<ul class="gates" aria-label="${esc(t('gatePens'))}">${(e.gates ?? []).map(gateHtml).join('')}</ul></article>`;
  }).join('');
}

export function tickClocks() {
  for (const el of document.querySelectorAll('[data-clock]')) {
    const e = S.oncourse.find((x) => `${x.raceId}|${x.bib}` === el.dataset.clock);
    if (e) el.textContent = clockText(e);
  }
}

export function statusCell(code) {
  const s = statusText(code);
  return s.short ? `<abbr class="st" title="${esc(s.long)}">${esc(s.short)}</abbr>` : '';
}

export function runCell(time, pen, status, better) {
  if (status && time == null) return statusCell(status);
  if (time == null) return '';
  return `<span${better ? ' class="better"' : ''}>${sec(time)}</span><span class="pen">${penS(pen) ? `+${penS(pen)}` : ''}</span>${status ? statusCell(status) : ''}`;
}

export function starButton(r) {
  const on = fav.isFav(r.bib);
  return `<button type="button" class="star" data-star="${esc(r.bib)}" aria-pressed="${on}" aria-label="${esc(t(on ? 'unstar' : 'star', { name: r.name }))}">${on ? '★' : '☆'}</button>`;
}

/** The rows the spectator asked for: the category, the search, the favourites filter. */
export function visible(rows) {
  return rows.filter((r) => (!S.cat || r.catId === S.cat) && matches(r, S.q) && (!S.favOnly || fav.isFav(r.bib)));
}

export function renderResults() {
  const rows0 = S.results.get(S.raceKey);
  if (!rows0) return `<p class="empty">${t('loading')}</p>`;
  const cat = S.cat;
  let rows = visible(rows0);
  if (cat) rows = [...rows].sort((a, b) => (a.catRnk ?? Infinity) - (b.catRnk ?? Infinity) || byRank(a, b));
  if (!rows.length) return `<p class="empty">${t(rows0.length ? 'noMatch' : 'noResults')}</p>`;
  const br = isBestRun(S.raceKey) && rows.some((r) => 'totalTotal' in r);
  const now = Date.now();
  const head = br
    ? `<th class="n" scope="col">${t('run1')}</th><th class="n" scope="col">${t('run2')}</th>`
    : `<th class="n" scope="col">${t('time')}</th><th class="n wide" scope="col">${t('pen')}</th>`;
  const body = rows.map((r) => {
    const ft = S.flash.get(`${S.raceKey}|${r.bib}`);
    const age = ft ? now - ft : Infinity;
    const cls = [age < HIGHLIGHT_MS ? 'hi' : '', fav.isFav(r.bib) ? 'fav' : ''].filter(Boolean).join(' ');
    const hi = `${cls ? ` class="${cls}"` : ''}${age < HIGHLIGHT_MS ? ` data-age="${age}"` : ''}`;
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
    return `<tr data-bib="${esc(r.bib)}"${hi}><td class="n">${starButton(r)}</td><td class="n">${rank ?? ''}</td><td class="n">${esc(r.bib)}</td><td><button type="button" class="who" data-open="${esc(r.bib)}" aria-haspopup="dialog" aria-label="${esc(t('details', { name: r.name }))}">${esc(r.name)}</button><span class="club">${esc(r.club)}</span></td>${cells}<td class="n"><b>${total}</b></td><td class="n">${esc(rank === 1 ? '' : behindText(behind))}</td></tr>`;
  }).join('');
  return `<table><caption>${esc(raceLabel(S.raceKey, true))}${cat ? ` · ${esc(cat)}` : ''}</caption><thead><tr><th class="n" scope="col"><span class="vh">${t('favourites')}</span></th><th class="n" scope="col">${t('rank')}</th><th class="n" scope="col">${t('bib')}</th><th scope="col">${t('name')}</th>${head}<th class="n" scope="col">${t('total')}</th><th class="n" scope="col">${t('behind')}</th></tr></thead><tbody>${body}</tbody></table>`;
}

export function renderStartlist() {
  const sl = S.startlist;
  if (!sl || sl.key !== S.raceKey) return `<p class="empty">${t('loading')}</p>`;
  const rows = visible(sl.rows);
  if (!rows.length) return `<p class="empty">${t(sl.rows.length ? 'noMatch' : 'noStartlist')}</p>`;
  return `<table><caption>${t('startlist')} · ${esc(raceLabel(S.raceKey, true))}</caption><thead><tr><th class="n" scope="col"><span class="vh">${t('favourites')}</span></th><th class="n" scope="col">${t('order')}</th><th class="n" scope="col">${t('bib')}</th><th scope="col">${t('name')}</th><th class="n" scope="col">${t('start')}</th></tr></thead><tbody>${
    rows.map((r) => `<tr data-bib="${esc(r.bib)}"${fav.isFav(r.bib) ? ' class="fav"' : ''}><td class="n">${starButton(r)}</td><td class="n">${esc(r.startOrder)}</td><td class="n">${esc(r.bib)}</td><td>${esc(r.name)}<span class="club">${esc(r.club)}</span></td><td class="n">${esc(clockOf(r.startTime))}</td></tr>`).join('')
  }</tbody></table>`;
}

export function renderSchedule() {
  const live = new Set(S.oncourse.map((e) => groupKey(e.raceId)));
  const rows = sortedRaces().map((r) => {
    const k = groupKey(r.raceId);
    const cls = classOf(r);
    const status = live.has(k) ? t('onCourseNow') : raceStatusText(r.raceStatus);
    return `<tr><td class="n">${esc(clockOf(r.startTime))}</td><td><a href="#" data-race="${esc(k)}">${esc(cls?.name ?? r.raceId)}</a> <span class="club">${esc(raceTypeText(r.raceType))}</span></td><td>${esc(status)}</td></tr>`;
  }).join('');
  return `<table><caption>${t('schedule')}</caption><thead><tr><th class="n" scope="col">${t('start')}</th><th scope="col">${t('race')}</th><th scope="col">${t('status')}</th></tr></thead><tbody>${rows}</tbody></table>`;
}
