//! `replica` and `--nats`: the settings of read replicas (`crate::replicate`).

use std::path::PathBuf;

use super::{invalid, resolve, ConfigError, FileConfig, NatsArgs, ServeArgs};
use crate::settings::Settings;

/// The settings of `replica`: those of `serve` (the HTTP and WebSocket ones apply), with
/// `--nats` required and no input (a replica's state comes from the origin only).
pub fn resolve_replica(args: &ServeArgs, file: &FileConfig) -> Result<Settings, ConfigError> {
    let mut s = resolve(args, file)?;
    if s.replication.nats.is_none() {
        return Err(invalid(
            "nats",
            "a replica needs --nats URL (the origin's NATS)",
        ));
    }
    let inputs = [
        ("xml-dir", s.xml_dir.is_some()),
        ("c123", s.c123.is_some()),
        ("tcp-listen", s.tcp_listen.is_some()),
        ("event", s.event.is_some()),
    ];
    if let Some((flag, _)) = inputs.iter().find(|(_, set)| *set) {
        return Err(invalid(
            flag,
            "a replica takes no input: it serves the origin's state from NATS",
        ));
    }
    s.replication.replica = true;
    Ok(s)
}

/// `--nats` and its credentials.
pub(super) fn resolve_nats(
    args: &NatsArgs,
    file: &FileConfig,
    s: &mut Settings,
) -> Result<(), ConfigError> {
    let pick = |a: &Option<PathBuf>, f: &Option<PathBuf>| a.clone().or_else(|| f.clone());
    let creds = pick(&args.creds, &file.nats_creds);
    let tls_ca = pick(&args.tls_ca, &file.nats_tls_ca);
    let tls_cert = pick(&args.tls_cert, &file.nats_tls_cert);
    let tls_key = pick(&args.tls_key, &file.nats_tls_key);
    let Some(url) = args.url.clone().or_else(|| file.nats.clone()) else {
        if creds.is_some() || tls_ca.is_some() || tls_cert.is_some() || tls_key.is_some() {
            return Err(invalid(
                "nats",
                "--nats-creds and --nats-tls-* need --nats URL",
            ));
        }
        return Ok(());
    };
    if tls_cert.is_some() != tls_key.is_some() {
        return Err(invalid(
            "nats-tls-cert",
            "--nats-tls-cert and --nats-tls-key go together",
        ));
    }
    s.replication.nats = Some(crate::replicate::NatsSettings {
        url,
        creds,
        tls_ca,
        tls_cert,
        tls_key,
    });
    Ok(())
}
