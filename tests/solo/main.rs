//! Tests that need the process to themselves, one at a time: they read this process's RSS
//! (`ws_bounds`, `ws_memory`), open thousands of sockets, or time timers at their real
//! defaults (`limits_at_defaults`). Beside the other integration tests these numbers would
//! measure the neighbours. Each test takes [`solo`] first, so two never overlap.

// `tests/it` uses all of `support`; this binary uses a part of it.
#[allow(dead_code)]
#[path = "../support/mod.rs"]
mod support;

mod limits_at_defaults;
mod tcp_memory;
mod ws_bounds;
mod ws_memory;

/// Held for a whole test: the tests of this binary run one at a time whatever
/// `--test-threads` says. Not a `MutexGuard`, because it is held across `.await` on purpose:
/// nothing else runs in this binary meanwhile. A test that panics still releases it (drop).
pub struct Solo(());

static BUSY: std::sync::Mutex<bool> = std::sync::Mutex::new(false);
static FREED: std::sync::Condvar = std::sync::Condvar::new();

pub fn solo() -> Solo {
    let mut busy = BUSY.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    while *busy {
        busy = FREED
            .wait(busy)
            .unwrap_or_else(|poisoned| poisoned.into_inner());
    }
    *busy = true;
    Solo(())
}

impl Drop for Solo {
    fn drop(&mut self) {
        *BUSY.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) = false;
        FREED.notify_one();
    }
}

/// This process's resident memory in KiB (0 where `/proc` has no answer). It counts
/// every thread of the process, so only tests that run alone read it.
pub fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}
