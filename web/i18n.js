// Czech and English for the spectator page: every label, result status, date and number.
// The language comes from the browser's preferred languages (what it sends as
// Accept-Language) unless the spectator picked one, which is remembered in localStorage.

const STRINGS = {
  en: {
    title: 'Live results', connecting: 'Connecting…', reconnecting: 'Reconnecting…', live: 'Live',
    offline: 'Offline – retrying', final: 'Final results', noEvent: 'No event selected', events: 'Events',
    noPublic: 'No public event yet.', onCourse: 'On course', race: 'Race', category: 'Category', all: 'All',
    view: 'View', results: 'Results', startlist: 'Start list', schedule: 'Schedule', loading: 'Loading…',
    noResults: 'No results yet.', noStartlist: 'No start list.', noMatch: 'Nothing matches the search.',
    rank: '#', bib: 'Bib', name: 'Name', time: 'Time', pen: 'Pen', total: 'Total', behind: 'Behind',
    run1: 'Run 1', run2: 'Run 2', runs12: 'Runs 1 + 2', order: 'Order', start: 'Start', status: 'Status',
    onCourseNow: 'On course now', rankN: 'Rank {n}', finished: 'Finished', vs: 'vs',
    gatePens: 'Gate penalties', gate: 'Gate {n}', upstream: 'upstream', notYet: 'not judged yet',
    clean: 'clean', touch: 'touch (+2 s)', missed: 'missed (+50 s)', gatesOf: 'Gates',
    search: 'Search name, bib or club', searchLabel: 'Search', favourites: 'Favourites only',
    star: 'Add {name} to favourites', unstar: 'Remove {name} from favourites',
    notify: 'Notify me about favourites', notifyOn: 'Notifications on', notifyDenied: 'Notifications blocked',
    followLive: 'Follow the live race', following: 'Following the live race',
    details: 'Details of {name}', close: 'Close', better: 'better run', run: 'Run', noGates: 'No gates yet.',
    catRank: 'Category rank', unavailable: 'This event is not available.', needsJs: 'This page needs JavaScript.',
    nStarted: '{bib} {name} started', nFinished: '{bib} {name} finished', nFinishedRank: '{bib} {name} finished: {total}, rank {rank}',
    nOfficial: 'Results are official: {title}', lang: 'Language', other: 'Other',
    DNS: 'DNS', DNF: 'DNF', DSQ: 'DSQ', DNSlong: 'did not start', DNFlong: 'did not finish', DSQlong: 'disqualified', DNQlong: 'did not qualify',
    rs: ['Scheduled', 'Start list', 'Delayed', 'In progress', 'Unofficial', 'Official', 'Revised', 'Cancelled',
      'Getting ready', 'Unconfirmed', 'Protested', 'Interrupted', 'Rescheduled', 'Postponed'],
    ev: { draft: 'draft', startlist: 'start list', running: 'running', finished: 'finished', official: 'official' },
    rt: {
      'best-run-1': '1st run', 'best-run-2': '2nd run', qualification: 'Qualification', semifinal: 'Semifinal',
      final: 'Final', training: 'Training', seeding: 'Seeding', 'cross-trial': 'Time trial', 'cross-heat': 'Heats',
      'cross-semifinal': 'Semifinal', 'cross-final': 'Final',
    },
  },
  cs: {
    title: 'Živé výsledky', connecting: 'Připojuji…', reconnecting: 'Znovu se připojuji…', live: 'Živě',
    offline: 'Bez spojení – zkouším znovu', final: 'Konečné výsledky', noEvent: 'Není vybrán závod',
    events: 'Závody', noPublic: 'Zatím žádný veřejný závod.', onCourse: 'Na trati', race: 'Závod',
    category: 'Kategorie', all: 'Všechny', view: 'Zobrazení', results: 'Výsledky', startlist: 'Startovka',
    schedule: 'Program', loading: 'Načítám…', noResults: 'Zatím žádné výsledky.', noStartlist: 'Startovní listina není.',
    noMatch: 'Hledání nic nenašlo.', rank: 'Poř.', bib: 'St. č.', name: 'Jméno', time: 'Čas', pen: 'Trest',
    total: 'Výsledek', behind: 'Ztráta', run1: '1. jízda', run2: '2. jízda', runs12: 'Jízdy 1 + 2', order: 'Pořadí',
    start: 'Start', status: 'Stav', onCourseNow: 'Právě na trati', rankN: '{n}. místo', finished: 'V cíli', vs: 'proti',
    gatePens: 'Trestné body na brankách', gate: 'Branka {n}', upstream: 'protivodná', notYet: 'zatím neposouzeno',
    clean: 'čistě', touch: 'dotyk (+2 s)', missed: 'neprojetí (+50 s)', gatesOf: 'Branky',
    search: 'Hledat jméno, st. číslo, oddíl', searchLabel: 'Hledat', favourites: 'Jen oblíbení',
    star: 'Přidat {name} do oblíbených', unstar: 'Odebrat {name} z oblíbených',
    notify: 'Upozorňovat na oblíbené', notifyOn: 'Upozornění zapnuta', notifyDenied: 'Upozornění zablokována',
    followLive: 'Sledovat právě jetý závod', following: 'Sleduji právě jetý závod',
    details: 'Podrobnosti: {name}', close: 'Zavřít', better: 'lepší jízda', run: 'Jízda', noGates: 'Zatím bez branek.',
    catRank: 'Pořadí v kategorii', unavailable: 'Tento závod není dostupný.', needsJs: 'Stránka potřebuje JavaScript.',
    nStarted: '{bib} {name} odstartoval(a)', nFinished: '{bib} {name} v cíli', nFinishedRank: '{bib} {name} v cíli: {total}, {rank}. místo',
    nOfficial: 'Výsledky jsou oficiální: {title}', lang: 'Jazyk', other: 'Ostatní',
    DNS: 'DNS', DNF: 'DNF', DSQ: 'DSQ', DNSlong: 'nestartoval(a)', DNFlong: 'nedokončil(a)', DSQlong: 'diskvalifikován(a)', DNQlong: 'nepostoupil(a)',
    rs: ['Naplánováno', 'Startovka', 'Zpožděno', 'Probíhá', 'Neoficiální', 'Oficiální', 'Opraveno', 'Zrušeno',
      'Připravuje se', 'Nepotvrzeno', 'Protest', 'Přerušeno', 'Přeloženo', 'Odloženo'],
    ev: { draft: 'koncept', startlist: 'startovka', running: 'probíhá', finished: 'dojeto', official: 'oficiální' },
    rt: {
      'best-run-1': '1. jízda', 'best-run-2': '2. jízda', qualification: 'Kvalifikace', semifinal: 'Semifinále',
      final: 'Finále', training: 'Trénink', seeding: 'Nasazení', 'cross-trial': 'Časovka', 'cross-heat': 'Rozjížďky',
      'cross-semifinal': 'Semifinále', 'cross-final': 'Finále',
    },
  },
};

export const LANGS = Object.keys(STRINGS);
const KEY = 'c123live.lang';

function stored() {
  try { return localStorage.getItem(KEY); } catch { return null; }
}

/** The language to show: the remembered choice, else the first preferred one we have. */
function initial() {
  const s = stored();
  if (LANGS.includes(s)) return s;
  for (const l of navigator.languages ?? [navigator.language]) {
    const base = String(l).toLowerCase().split('-')[0];
    if (base === 'sk' || base === 'cs') return 'cs'; // Slovak readers read Czech
    if (LANGS.includes(base)) return base;
  }
  return 'en';
}

export let lang = initial();
let num2 = null;
let num1 = null;

function setFormatters() {
  num2 = new Intl.NumberFormat(lang, { minimumFractionDigits: 2, maximumFractionDigits: 2, useGrouping: false });
  num1 = new Intl.NumberFormat(lang, { minimumFractionDigits: 1, maximumFractionDigits: 1, useGrouping: false });
  document.documentElement.lang = lang;
}
setFormatters();

export function setLang(l) {
  if (!LANGS.includes(l)) return;
  lang = l;
  try { localStorage.setItem(KEY, l); } catch { /* private mode: not remembered */ }
  setFormatters();
}

/** A string of the current language, `{name}` placeholders filled from `p`. */
export function t(key, p) {
  const s = STRINGS[lang][key] ?? STRINGS.en[key] ?? key;
  return p ? String(s).replace(/\{(\w+)\}/g, (_, k) => p[k] ?? '') : s;
}

export const raceStatusText = (n) => STRINGS[lang].rs[n] ?? '';
export const raceTypeText = (rt) => STRINGS[lang].rt[rt] ?? rt ?? '';
export const eventStatusText = (s) => STRINGS[lang].ev[s] ?? s ?? '';

/** Centiseconds as seconds with two decimals ("51.20" / "51,20"). */
export const sec = (cs) => (cs == null ? '' : num2.format(cs / 100));
/** The running clock: one decimal. */
export const sec1 = (cs) => (cs == null ? '' : num1.format(cs / 100));
/** Penalty centiseconds as whole seconds. */
export const penS = (cs) => (cs == null ? '' : String(Math.round(cs / 100)));
/** A behind text from the API ("+1.23") in the language's decimal sign. */
export const behindText = (s) => (s == null ? '' : lang === 'en' ? String(s) : String(s).replace('.', ','));

/** A result status code shown short, with its long form for the tooltip / screen reader. */
export function statusText(code) {
  const c = String(code ?? '').toUpperCase();
  if (!c) return { short: '', long: '' };
  const long = STRINGS[lang][`${c}long`];
  return { short: STRINGS[lang][c] ?? c, long: long ?? c };
}

/** An ISO date (`2024-06-01`) in the language's form. */
export function dateText(d) {
  if (!d) return '';
  const m = /^(\d{4})-(\d{2})-(\d{2})/.exec(d);
  if (!m) return String(d);
  const dt = new Date(Date.UTC(+m[1], +m[2] - 1, +m[3]));
  return new Intl.DateTimeFormat(lang, { day: 'numeric', month: 'long', year: 'numeric', timeZone: 'UTC' }).format(dt);
}

/** The time of day of an ISO timestamp, as written in it (the venue's clock), "HH:MM". */
export const clockOf = (d) => (d ? String(d).replace(/^.*T/, '').slice(0, 5) : '');
