//! Ranks within one race: by total, ties share a rank; categories ranked separately.
//!
//! [`shared_ranks`] is the one implementation of "equal keys share a rank"; standard races
//! ([`rank_race`]) and best-run pairs ([`super::best_run`]) both use it.

use std::collections::BTreeMap;

use crate::model::{Participant, ResultRow};

/// Competition ranks ("1, 2, 2, 4") of items already sorted by their key: an item whose key
/// equals the previous item's shares its rank, any other takes its position (1-based). `None`
/// keys (unrankable items) get no rank but still take a position, so they never shift the
/// ranks of the items after them (callers sort them last anyway).
pub fn shared_ranks<K: PartialEq>(
    sorted_keys: impl IntoIterator<Item = Option<K>>,
) -> Vec<Option<i32>> {
    let mut rank = 0;
    let mut prev: Option<K> = None;
    sorted_keys
        .into_iter()
        .enumerate()
        .map(|(i, key)| {
            let key = key?;
            if prev.as_ref() != Some(&key) {
                rank = i as i32 + 1;
                prev = Some(key);
            }
            Some(rank)
        })
        .collect()
}

/// `0.00` for the leader's total, `+12.34` (seconds) for the others.
pub fn behind(total_ms: i64, leader_ms: i64) -> String {
    let d = total_ms - leader_ms;
    if d <= 0 {
        "0.00".to_owned()
    } else {
        // Totals are whole hundredths in practice; round the rest half up.
        let cs = (d + 5) / 10;
        format!("+{}.{:02}", cs / 100, cs % 100)
    }
}

/// Recomputes `rnk`, `rnk_order`, `total_behind` and the category equivalents of every row
/// of one race. Unrankable rows (no total, or a status) get `None`, never a rank.
pub fn rank_race(
    rows: &mut BTreeMap<String, ResultRow>,
    participants: &BTreeMap<String, Participant>,
) {
    let mut order: Vec<(i64, i32, String)> = rows
        .values()
        .filter(|r| r.is_rankable())
        .map(|r| {
            (
                r.total_ms.unwrap_or(i64::MAX),
                r.start_order.unwrap_or(i32::MAX),
                r.participant_id.clone(),
            )
        })
        .collect();
    order.sort();
    for r in rows.values_mut() {
        if !r.is_rankable() {
            r.rnk = None;
            r.rnk_order = None;
            r.total_behind = None;
            r.cat_rnk = None;
            r.cat_rnk_order = None;
            r.cat_total_behind = None;
        }
    }
    assign(rows, &order, |r, rank, ord, behind| {
        r.rnk = Some(rank);
        r.rnk_order = Some(ord);
        r.total_behind = Some(behind);
    });
    let mut by_cat: BTreeMap<String, Vec<(i64, i32, String)>> = BTreeMap::new();
    for entry in &order {
        match participants.get(&entry.2).and_then(|p| p.cat_id.clone()) {
            Some(cat) => by_cat.entry(cat).or_default().push(entry.clone()),
            None => {
                if let Some(r) = rows.get_mut(&entry.2) {
                    r.cat_rnk = None;
                    r.cat_rnk_order = None;
                    r.cat_total_behind = None;
                }
            }
        }
    }
    for cat_order in by_cat.values() {
        assign(rows, cat_order, |r, rank, ord, behind| {
            r.cat_rnk = Some(rank);
            r.cat_rnk_order = Some(ord);
            r.cat_total_behind = Some(behind);
        });
    }
}

fn assign(
    rows: &mut BTreeMap<String, ResultRow>,
    order: &[(i64, i32, String)],
    set: impl Fn(&mut ResultRow, i32, i32, String),
) {
    let Some(leader) = order.first().map(|e| e.0) else {
        return;
    };
    let ranks = shared_ranks(order.iter().map(|e| Some(e.0)));
    for (i, ((total, _, pid), rank)) in order.iter().zip(ranks).enumerate() {
        let position = i as i32 + 1;
        if let (Some(r), Some(rank)) = (rows.get_mut(pid), rank) {
            set(r, rank, position, behind(*total, leader));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(pid: &str, total: Option<i64>, status: Option<&str>) -> ResultRow {
        ResultRow {
            race_id: "R".into(),
            participant_id: pid.into(),
            total_ms: total,
            status: status.map(Into::into),
            ..ResultRow::default()
        }
    }

    #[test]
    fn ties_share_a_rank_and_unranked_rows_get_none() {
        let mut rows: BTreeMap<String, ResultRow> = [
            row("a", Some(80_000), None),
            row("b", Some(78_990), None),
            row("c", Some(80_000), None),
            row("d", None, None),
            row("e", Some(70_000), Some("DSQ")),
        ]
        .into_iter()
        .map(|r| (r.participant_id.clone(), r))
        .collect();
        rank_race(&mut rows, &BTreeMap::new());
        assert_eq!(rows["b"].rnk, Some(1));
        assert_eq!(rows["b"].total_behind.as_deref(), Some("0.00"));
        assert_eq!(rows["a"].rnk, Some(2));
        assert_eq!(rows["c"].rnk, Some(2));
        assert_eq!(rows["a"].total_behind.as_deref(), Some("+1.01"));
        assert_eq!(rows["d"].rnk, None);
        assert_eq!(rows["e"].rnk, None);
        assert_eq!(rows["e"].total_behind, None);
    }

    #[test]
    fn shared_ranks_give_equal_keys_one_rank_and_skip_after_them() {
        assert_eq!(
            shared_ranks([Some(1), Some(2), Some(2), Some(3), None]),
            vec![Some(1), Some(2), Some(2), Some(4), None]
        );
        assert_eq!(shared_ranks(Vec::<Option<i32>>::new()), Vec::new());
    }

    #[test]
    fn behind_formats_seconds() {
        assert_eq!(behind(100_000, 100_000), "0.00");
        assert_eq!(behind(121_760, 100_000), "+21.76");
        assert_eq!(behind(160_000, 100_000), "+60.00");
    }
}
