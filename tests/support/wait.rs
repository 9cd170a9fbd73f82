//! Waiting for the daemon without fixed sleeps.
//!
//! [`eventually`] wakes on every published snapshot (`MergeHandle::watch()`), so it returns at
//! the commit that makes the condition true, and a timeout only bounds a failure. [`poll_until`]
//! is for state that publishes no change (a source's or the watcher's status under a mutex):
//! it polls, also bounded, and is the only poll loop in the tests.

use std::sync::Arc;
use std::time::{Duration, Instant};

use c123_live::merge::{MergeHandle, Snapshot};

/// Waits until a published snapshot satisfies `cond` and returns that snapshot. Panics naming
/// `what` after `limit`, or when the merge loop stops first.
pub async fn eventually(
    merge: &MergeHandle,
    what: &str,
    limit: Duration,
    mut cond: impl FnMut(&Snapshot) -> bool,
) -> Arc<Snapshot> {
    let mut published = merge.watch();
    let outcome = tokio::time::timeout(limit, async {
        published
            .wait_for(|s| cond(s))
            .await
            .map(|s| Arc::clone(&s))
    })
    .await;
    match outcome {
        Ok(Ok(snapshot)) => snapshot,
        Ok(Err(_)) => panic!("the merge loop stopped while waiting for {what}"),
        Err(_) => panic!("timed out after {limit:?} waiting for {what}"),
    }
}

/// Polls `cond` every 10 ms until it holds; panics naming `what` after `limit`.
pub async fn poll_until(what: &str, limit: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !cond() {
        assert!(
            Instant::now() < deadline,
            "timed out after {limit:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
