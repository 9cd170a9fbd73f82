//! What the tool reads about processes (Linux `/proc`) and the one limit it raises.

/// `VmRSS` of a process in KiB (0 if unreadable).
pub fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// CPU seconds (user, system) a process (`"self"` or a PID) has used so far (0 if unreadable).
pub fn cpu_secs(pid: &str) -> (f64, f64) {
    let tick = 100.0; // USER_HZ on Linux
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| parse_stat_cpu(&s))
        .map_or((0.0, 0.0), |(u, s)| (u / tick, s / tick))
}

/// utime and stime (ticks) of a `/proc/PID/stat` line.
fn parse_stat_cpu(stat: &str) -> Option<(f64, f64)> {
    // The command name may hold spaces and parentheses: fields are counted after the last
    // `)`. State is field 3; utime 14, stime 15.
    let rest = stat.rsplit_once(')')?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    Some((f.get(11)?.parse().ok()?, f.get(12)?.parse().ok()?))
}

/// The 1, 5 and 15 minute load averages, as printed in every report.
pub fn load() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

/// Raises the soft `RLIMIT_NOFILE` to the hard limit; returns the new soft limit (0 if it
/// cannot be read). The daemon, a child, inherits it.
pub fn raise_nofile() -> u64 {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    let Ok((_, hard)) = getrlimit(Resource::RLIMIT_NOFILE) else {
        return 0;
    };
    // Failing to raise it is not fatal: the caller compares what it got with what it needs.
    let _ = setrlimit(Resource::RLIMIT_NOFILE, hard, hard);
    getrlimit(Resource::RLIMIT_NOFILE).map_or(0, |(soft, _)| soft)
}

/// Asks a child process to stop (SIGTERM), as systemd would.
pub fn terminate(pid: u32) {
    use nix::sys::signal::{kill, Signal};
    if let Ok(pid) = i32::try_from(pid) {
        // An already exited child is fine: the caller waits and then kills anyway.
        let _ = kill(nix::unistd::Pid::from_raw(pid), Signal::SIGTERM);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_count_after_the_command_name() {
        let line = "42 (a (b) c) S 1 42 42 0 -1 4194560 100 0 0 0 250 30 0 0 20 0 1 0";
        assert_eq!(parse_stat_cpu(line), Some((250.0, 30.0)));
        assert_eq!(parse_stat_cpu("garbage"), None);
    }

    #[test]
    fn own_process_is_readable() {
        assert!(rss_kib(std::process::id()) > 0);
        assert!(raise_nofile() > 0);
    }
}
