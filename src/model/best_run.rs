//! Best-run pairs (BR1 + BR2): one athlete's two runs combined, then ranked by the better
//! run's total. Domain units (milliseconds, penalty seconds); [`crate::api`] turns the result
//! into public rows.

use std::collections::BTreeMap;

use super::ranking::{behind, shared_ranks};
use super::{Event, Race, ResultRow};

/// Is this race one run of a best-run pair whose rows we combine? `(br1_id, br2_id)`.
pub fn best_run_pair(race: &Race) -> Option<(String, String)> {
    if race.race_type().is_best_run() {
        Race::best_run_partner(&race.race_id)
    } else {
        None
    }
}

/// The combined view of one athlete over a best-run pair (domain units), before ranking.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Combined<'a> {
    pub participant_id: &'a str,
    pub br1: Option<&'a ResultRow>,
    pub br2: Option<&'a ResultRow>,
    /// The second run's own total/penalty, `None` when TCP polluted them with the first
    /// run's values (see [`combine`]).
    pub br2_pen_s: Option<i64>,
    pub br2_total_ms: Option<i64>,
    pub better_run_nr: Option<i32>,
    pub total_total_ms: Option<i64>,
}

/// Combines one athlete's two runs.
///
/// - A run counts when it has a total and no status; the smaller total wins, a tie goes to
///   the first run (Canoe123's `BetterRunNr` convention), the only counting run wins alone.
/// - Pollution guard (live-mini #180): Canoe123's TCP `Results` for a second run carry the
///   *better* run's penalty/total. When the second run's total is not `time + pen` but equals
///   the first run's total (±20 ms), its own penalty and total are unknown: they are shown as
///   `null` (never invented) and the first run wins.
/// - Nothing counts: no better run, no `totalTotal`, unranked. An export's `TotalTotal` that
///   no run time in the file supports is not shown (see the tests on C1M_ST_BR2_6).
pub fn combine<'a>(
    pid: &'a str,
    br1: Option<&'a ResultRow>,
    br2: Option<&'a ResultRow>,
) -> Combined<'a> {
    let mut br2_pen_s = br2.and_then(|r| r.pen_s);
    let mut br2_total_ms = br2.and_then(|r| r.total_ms);
    if let (Some(r1), Some(r2)) = (br1, br2) {
        if let (None, None, Some(t1), Some(time), Some(pen), Some(total)) = (
            &r1.status,
            &r2.status,
            r1.total_ms,
            r2.time_ms,
            r2.pen_s,
            r2.total_ms,
        ) {
            if (total - (time + pen * 1000)).abs() > 20 && (total - t1).abs() <= 20 {
                br2_pen_s = None;
                br2_total_ms = None;
            }
        }
    }
    let t1 = br1.filter(|r| r.status.is_none()).and_then(|r| r.total_ms);
    let t2 = br2.filter(|r| r.status.is_none()).and(br2_total_ms);
    let (better_run_nr, total_total_ms) = match (t1, t2) {
        (Some(a), Some(b)) if b < a => (Some(2), Some(b)),
        (Some(a), _) => (Some(1), Some(a)),
        (None, Some(b)) => (Some(2), Some(b)),
        (None, None) => (None, None),
    };
    Combined {
        participant_id: pid,
        br1,
        br2,
        br2_pen_s,
        br2_total_ms,
        better_run_nr,
        total_total_ms,
    }
}

impl Combined<'_> {
    /// The total of the run that did not count: ties on `totalTotal` are broken by it (ICF
    /// rule, as Canoe123 ranks them: `TotalRnk` gives distinct ranks when the other runs
    /// differ). `(true, None)` sorts after every real total.
    fn tie_key(&self) -> (bool, Option<i64>) {
        let other = match self.better_run_nr {
            Some(1) => self
                .br2
                .filter(|r| r.status.is_none())
                .and(self.br2_total_ms),
            Some(2) => self
                .br1
                .filter(|r| r.status.is_none())
                .and_then(|r| r.total_ms),
            _ => None,
        };
        (other.is_none(), other)
    }

    /// Start order, then bib, of the run shown (the second when it exists).
    fn start_key(&self) -> (i32, u32) {
        let row = self.br2.or(self.br1);
        (
            row.and_then(|r| r.start_order).unwrap_or(i32::MAX),
            row.and_then(|r| r.bib).unwrap_or(u32::MAX),
        )
    }

    /// The key equal athletes share a rank by: `totalTotal`, then the other run.
    fn rank_key(&self) -> Option<(i64, (bool, Option<i64>))> {
        self.total_total_ms.map(|t| (t, self.tie_key()))
    }
}

/// A rank and the gap to the leader (`"+1.23"`); both `None` for an unranked athlete.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Place {
    pub rnk: Option<i32>,
    pub behind: Option<String>,
}

/// One athlete of a best-run pair with the overall place and the place in their category.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RankedCombined<'a> {
    pub combined: Combined<'a>,
    pub overall: Place,
    pub category: Place,
}

/// Places of athletes already in rank order; equal rank keys share a rank.
fn places(items: &[&Combined<'_>]) -> Vec<Place> {
    let leader = items.iter().find_map(|c| c.total_total_ms);
    let ranks = shared_ranks(items.iter().map(|c| c.rank_key()));
    items
        .iter()
        .zip(ranks)
        .map(|(c, rnk)| match (c.total_total_ms, leader, rnk) {
            (Some(t), Some(l), Some(rnk)) => Place {
                rnk: Some(rnk),
                behind: Some(behind(t, l)),
            },
            _ => Place::default(),
        })
        .collect()
}

/// The athletes of a best-run pair, combined and in rank order: by `totalTotal` (ties broken
/// by the other run, then start order), athletes without one after all ranked ones. Overall
/// and per-category places are computed over the same order.
pub fn rank_pair<'a>(event: &'a Event, br1_id: &str, br2_id: &str) -> Vec<RankedCombined<'a>> {
    let r1 = event.results.get(br1_id).map(|m| &**m);
    let r2 = event.results.get(br2_id).map(|m| &**m);
    let mut pids: Vec<&'a String> = r1
        .into_iter()
        .flat_map(BTreeMap::keys)
        .chain(r2.into_iter().flat_map(BTreeMap::keys))
        .collect();
    pids.sort();
    pids.dedup();
    let mut combined: Vec<Combined<'a>> = pids
        .into_iter()
        .map(|pid| {
            combine(
                pid,
                r1.and_then(|m| m.get(pid)),
                r2.and_then(|m| m.get(pid)),
            )
        })
        .collect();
    combined.sort_by(|a, b| {
        (
            a.total_total_ms.is_none(),
            a.total_total_ms,
            a.tie_key(),
            a.start_key(),
            a.participant_id,
        )
            .cmp(&(
                b.total_total_ms.is_none(),
                b.total_total_ms,
                b.tie_key(),
                b.start_key(),
                b.participant_id,
            ))
    });
    let all: Vec<&Combined<'_>> = combined.iter().collect();
    let overall = places(&all);
    let mut by_cat: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (i, c) in combined.iter().enumerate() {
        let cat = event
            .participants
            .get(c.participant_id)
            .and_then(|p| p.cat_id.as_deref());
        if let Some(cat) = cat {
            by_cat.entry(cat).or_default().push(i);
        }
    }
    let mut category: Vec<Place> = vec![Place::default(); combined.len()];
    for idx in by_cat.values() {
        let items: Vec<&Combined<'_>> = idx.iter().map(|&i| &combined[i]).collect();
        for (k, place) in idx.iter().zip(places(&items)) {
            category[*k] = place;
        }
    }
    combined
        .into_iter()
        .zip(overall)
        .zip(category)
        .map(|((combined, overall), category)| RankedCombined {
            combined,
            overall,
            category,
        })
        .collect()
}
