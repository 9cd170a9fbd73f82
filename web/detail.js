// Search and the per-rider detail: a result row opens a dialog with both runs (a best-run
// pair) or the one run: time, penalty, total, rank and every gate with its penalty.

import { t, sec, penS, statusText, raceTypeText, behindText } from './i18n.js';

const esc = (v) => String(v ?? '').replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

/** Lower case without diacritics, so "novak" finds "Novák". */
export const fold = (s) => String(s ?? '').normalize('NFD').replace(/[\u0300-\u036f]/g, '').toLowerCase();

/** Does a row match the search text (name, bib or club)? */
export function matches(row, q) {
  if (!q) return true;
  const f = fold(q).trim();
  if (/^\d+$/.test(f)) return String(row.bib ?? '') === f || fold(row.name).includes(f);
  return fold(row.name).includes(f) || fold(row.club).includes(f);
}

export function gateHtml(g) {
  const p = g.penalty;
  const cls = p == null ? 'pn' : p >= 50 ? 'p50' : p > 0 ? 'p2' : 'p0';
  const rev = g.type === 'reverse';
  const what = p == null ? t('notYet') : p >= 50 ? t('missed') : p > 0 ? t('touch') : t('clean');
  const label = `${t('gate', { n: g.number })}${rev ? ` (${t('upstream')})` : ''}: ${what}`;
  return `<li class="${cls}${rev ? ' rev' : ''}" title="${esc(label)}" aria-label="${esc(label)}"><span class="num" aria-hidden="true">${g.number}</span><b aria-hidden="true">${p == null ? '·' : p}</b></li>`;
}

function statusCell(code) {
  const s = statusText(code);
  return s.short ? `<abbr class="st" title="${esc(s.long)}">${esc(s.short)}</abbr>` : '';
}

function runBlock(label, run, better) {
  const gates = run.gates ?? [];
  const facts = run.status && run.time == null
    ? `<dd>${statusCell(run.status)}</dd>`
    : `<div><dt>${t('time')}</dt><dd>${sec(run.time) || '–'}</dd></div><div><dt>${t('pen')}</dt><dd>${penS(run.pen) || '0'}</dd></div><div><dt>${t('total')}</dt><dd>${sec(run.total) || '–'}</dd></div>${run.rnk ? `<div><dt>${t('rank')}</dt><dd>${run.rnk}.</dd></div>` : ''}`;
  return `<section class="run${better ? ' better-run' : ''}"><h3>${esc(label)}${better ? ` <span class="tag">${t('better')}</span>` : ''}</h3>
<dl class="facts">${facts}</dl>
${gates.length ? `<ul class="gates" aria-label="${esc(t('gatePens'))}">${gates.map(gateHtml).join('')}</ul>` : `<p class="empty">${t('noGates')}</p>`}</section>`;
}

/** The dialog's body for one detailed row (`?detailed=true`) of a race. */
export function detailHtml(row, race, bestRun) {
  const runs = [];
  if (bestRun) {
    runs.push(runBlock(t('run1'), {
      time: row.prevTime, pen: row.prevPen, total: row.prevTotal, rnk: row.prevRnk,
      status: row.prevStatus, gates: row.prevGates,
    }, row.betterRunNr === 1));
    if (row.prevTime != null || row.prevStatus) {
      runs.push(runBlock(t('run2'), { time: row.time, pen: row.pen, total: row.total, status: row.currStatus, gates: row.gates }, row.betterRunNr === 2));
    }
  } else {
    runs.push(runBlock(raceTypeText(race?.raceType) || t('run'), { time: row.time, pen: row.pen, total: row.total, rnk: row.rnk, status: row.status, gates: row.gates }, false));
  }
  const total = bestRun ? row.totalTotal : row.total;
  const overall = row.status && total == null ? statusCell(row.status) : sec(total);
  return `<header class="dhead"><h2 id="detail-h">${esc(row.bib)} · ${esc(row.name)}</h2>
<button type="button" class="close" data-close aria-label="${esc(t('close'))}">×</button></header>
<p class="club">${esc(row.club)}${row.catId ? ` · ${esc(row.catId)}${row.catRnk ? ` ${row.catRnk}.` : ''}` : ''}</p>
<p class="overall"><span>${row.rnk ? `${esc(t('rankN', { n: row.rnk }))} · ` : ''}${t('total')}: <b>${overall || '–'}</b></span>${row.totalBehind ? ` <span class="club">${esc(behindText(row.totalBehind))}</span>` : ''}</p>
${runs.join('')}`;
}
