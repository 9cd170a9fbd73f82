//! The README's settings table is the operator's reference: every `serve` flag is in it with
//! its environment variable, nothing in it is missing from the command line, and the
//! defaults it states are the ones `serve` resolves when nothing is set, which are
//! `Settings::default()` (what the tests and `App::start` start from).

use std::collections::BTreeMap;

use c123_live::config::{Cli, FileConfig, ServeArgs};
use c123_live::settings::Settings;
use clap::CommandFactory;

/// The flags, environment variables and default cell of every row of the README table.
fn readme_rows() -> Vec<(Vec<String>, Vec<String>, String)> {
    let readme = include_str!("../../README.md");
    let start = readme
        .find("| flag | env | default |")
        .expect("the settings table");
    readme[start..]
        .lines()
        .skip(2)
        .take_while(|l| l.starts_with('|'))
        .map(|line| {
            let cells: Vec<&str> = line.trim_matches('|').split(" | ").collect();
            assert_eq!(cells.len(), 3, "three cells: {line}");
            let ticked = |cell: &str| -> Vec<String> {
                cell.split('`')
                    .skip(1)
                    .step_by(2)
                    .map(|t| t.split_whitespace().next().unwrap_or_default().to_owned())
                    .collect()
            };
            let flags = ticked(cells[0])
                .into_iter()
                .filter(|t| t.starts_with("--"))
                .collect();
            let envs = ticked(cells[1])
                .into_iter()
                .filter(|t| t.starts_with("C123_LIVE_"))
                .collect();
            (flags, envs, cells[2].trim().to_owned())
        })
        .collect()
}

/// `--flag → env` as clap defines them for `serve` and the global flags.
fn clap_flags() -> BTreeMap<String, Option<String>> {
    let cli = Cli::command();
    let serve = cli
        .find_subcommand("serve")
        .expect("serve subcommand")
        .clone();
    cli.get_arguments()
        .chain(serve.get_arguments())
        .filter_map(|a| {
            let long = a.get_long()?;
            Some((
                format!("--{long}"),
                a.get_env().map(|e| e.to_string_lossy().into_owned()),
            ))
        })
        .filter(|(flag, _)| flag != "--help" && flag != "--version")
        .collect()
}

#[test]
fn every_serve_flag_is_in_the_readme_table_with_its_environment_variable() {
    let flags = clap_flags();
    let mut documented = BTreeMap::new();
    for (row_flags, envs, _) in readme_rows() {
        assert_eq!(
            row_flags.len(),
            envs.len(),
            "one env per flag in the row {row_flags:?} / {envs:?}"
        );
        for (flag, env) in row_flags.into_iter().zip(envs) {
            documented.insert(flag, env);
        }
    }
    // `--config` is described in the sentence above the table, not in it.
    let undocumented: Vec<_> = flags
        .keys()
        .filter(|f| *f != "--config" && !documented.contains_key(*f))
        .collect();
    assert!(
        undocumented.is_empty(),
        "flags missing from the README: {undocumented:?}"
    );
    for (flag, env) in &documented {
        let Some(clap_env) = flags.get(flag) else {
            panic!("the README lists {flag}, which `serve` does not have");
        };
        assert_eq!(clap_env.as_deref(), Some(env.as_str()), "{flag}");
    }
    assert_eq!(
        documented.len() + 1,
        flags.len(),
        "the table and clap, less --config"
    );
}

/// The README's default cells, by the row's first flag.
fn readme_defaults() -> BTreeMap<String, String> {
    readme_rows()
        .into_iter()
        .map(|(flags, _, default)| (flags[0].clone(), default))
        .collect()
}

/// Checks every default the README states against `c`.
fn assert_readme_defaults(c: &Settings, source: &str) {
    let defaults = readme_defaults();
    let first_ticked = |flag: &str| -> Vec<String> {
        defaults[flag]
            .split('`')
            .skip(1)
            .step_by(2)
            .map(str::to_owned)
            .collect()
    };
    let secs = |d: std::time::Duration| d.as_secs().to_string();
    let cases: Vec<(&str, Vec<String>)> = vec![
        (
            "--synchronous",
            vec![format!("{:?}", c.synchronous).to_lowercase()],
        ),
        ("--listen", vec![c.listen.to_string()]),
        (
            "--tcp-max-sessions-per-ip",
            vec![
                c.tcp.max_sessions_per_ip.to_string(),
                c.tcp.max_sessions.to_string(),
            ],
        ),
        (
            "--merge-strategy",
            vec![c.merge.default_strategy.as_str().to_owned()],
        ),
        (
            "--max-connections-per-ip",
            vec![c.http.max_connections_per_ip.to_string()],
        ),
        ("--max-ws-per-ip", vec![c.http.max_ws_per_ip.to_string()]),
        (
            "--ws-max-per-event",
            vec![c.hub.max_per_event.to_string(), c.hub.max_total.to_string()],
        ),
        (
            "--ws-ping-interval",
            vec![secs(c.hub.ping_interval), secs(c.hub.pong_timeout)],
        ),
        ("--ws-close-grace", vec![secs(c.hub.close_grace)]),
    ];
    for (flag, resolved) in cases {
        let stated = first_ticked(flag);
        assert_eq!(
            stated[..resolved.len()],
            resolved[..],
            "{source}, {flag}: README says {:?}",
            defaults[flag]
        );
    }
    // Settings the table calls off / none resolve to nothing.
    assert!(c.xml_dir.is_none() && c.c123.is_none() && c.tcp_listen.is_none());
    assert!(c.scoreboard.listen.is_none(), "--scoreboard-listen is off");
    assert!(!c.tcp.auto_status && c.max_db_bytes.is_none());
    assert!(c.http.trusted_proxies.is_empty() && c.http.master_keys.is_empty());
    assert!(c.static_dir.is_none() && c.event.is_none() && c.xml_poll.is_none());
    assert!(
        c.replication.nats.is_none() && !c.replication.replica,
        "no replication"
    );
    assert_eq!(c.db, c123_live::config::default_db_path(), "{source}");
}

#[test]
fn the_readme_defaults_are_what_serve_resolves_from_nothing() {
    let c = c123_live::config::resolve(
        &ServeArgs {
            dev: true,
            ..ServeArgs::default()
        },
        &FileConfig::default(),
    )
    .expect("defaults resolve");
    assert_readme_defaults(&c, "resolved from nothing");
}

#[test]
fn the_readme_defaults_are_settings_default() {
    let d = Settings::default();
    assert_readme_defaults(&d, "Settings::default()");
    assert!(!d.http.dev, "dev mode is off by default");
}
