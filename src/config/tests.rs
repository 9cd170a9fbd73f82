use super::*;

#[test]
fn flags_win_over_file_and_file_over_defaults() {
    let file: FileConfig = toml::from_str(
        "listen = \"0.0.0.0:9000\"\nmerge-strategy = \"xml-wins\"\nmaster-keys = [\" k1 \", \"\"]\nxml-poll = 2.5",
    )
    .unwrap();
    let args = ServeArgs {
        listen: Some("127.0.0.1:7000".parse().unwrap()),
        ..ServeArgs::default()
    };
    let c = resolve(&args, &file).unwrap();
    assert_eq!(c.listen, "127.0.0.1:7000".parse().unwrap());
    assert_eq!(c.merge.default_strategy, MergeStrategy::XmlWins);
    assert_eq!(c.http.master_keys, vec!["k1".to_string()]);
    assert_eq!(c.xml_poll, Some(Duration::from_millis(2500)));
    assert_eq!(c.synchronous, Synchronous::Full);
}

#[test]
fn unknown_keys_and_bad_values_are_errors() {
    assert!(toml::from_str::<FileConfig>("lisen = \"x\"").is_err());
    let file: FileConfig = toml::from_str("xml-poll = -1.0").unwrap();
    assert!(resolve(&ServeArgs::default(), &file).is_err());
    let file: FileConfig = toml::from_str("synchronous = \"sometimes\"").unwrap();
    assert!(resolve(&ServeArgs::default(), &file).is_err());
}

#[test]
fn tcp_session_caps_default_to_4_per_address_and_16_in_all() {
    let c = resolve(&ServeArgs::default(), &FileConfig::default()).unwrap();
    assert_eq!((c.tcp.max_sessions_per_ip, c.tcp.max_sessions), (4, 16));
    let file: FileConfig =
        toml::from_str("tcp-max-sessions-per-ip = 2\ntcp-max-sessions = 8").unwrap();
    let c = resolve(&ServeArgs::default(), &file).unwrap();
    assert_eq!((c.tcp.max_sessions_per_ip, c.tcp.max_sessions), (2, 8));
    let args = ServeArgs {
        tcp_max_sessions: Some(3),
        ..ServeArgs::default()
    };
    assert_eq!(resolve(&args, &file).unwrap().tcp.max_sessions, 3);
    let zero: FileConfig = toml::from_str("tcp-max-sessions = 0").unwrap();
    let err = resolve(&ServeArgs::default(), &zero).unwrap_err();
    assert_eq!(
        err.to_string(),
        "--tcp-max-sessions: expected at least 1, got 0"
    );
}

#[test]
fn auto_status_on_a_reachable_tcp_listen_needs_tcp_allow() {
    let args = |listen: &str, allow: Vec<std::net::IpAddr>| ServeArgs {
        tcp_listen: Some(listen.parse().unwrap()),
        tcp_allow: allow,
        auto_status: true,
        ..ServeArgs::default()
    };
    let none = FileConfig::default();
    let err = resolve(&args("0.0.0.0:27333", vec![]), &none).unwrap_err();
    assert!(err.to_string().contains("needs --tcp-allow"), "{err}");
    assert!(resolve(&args("[::]:27333", vec![]), &none).is_err());
    let allowed = vec!["192.168.1.5".parse().unwrap()];
    assert!(resolve(&args("0.0.0.0:27333", allowed), &none).is_ok());
    assert!(resolve(&args("127.0.0.1:27333", vec![]), &none).is_ok());
    assert!(resolve(&args("[::1]:27333", vec![]), &none).is_ok());
    // Without --auto-status a reachable listen address stays allowed as before.
    let mut plain = args("0.0.0.0:27333", vec![]);
    plain.auto_status = false;
    assert!(resolve(&plain, &none).is_ok());
}

#[test]
fn cli_definition_is_consistent() {
    use clap::CommandFactory;
    Cli::command().debug_assert();
}

#[test]
fn an_event_id_that_cannot_be_an_event_id_is_refused() {
    for bad in ["a/b", "..", ""] {
        let args = ServeArgs {
            event: Some(bad.into()),
            ..ServeArgs::default()
        };
        let err = resolve(&args, &FileConfig::default()).unwrap_err();
        assert!(err.to_string().starts_with("--event: "), "{bad:?}: {err}");
    }
    let args = ServeArgs {
        event: Some("CZE2.2024040600".into()),
        ..ServeArgs::default()
    };
    assert_eq!(
        resolve(&args, &FileConfig::default())
            .unwrap()
            .event
            .as_deref(),
        Some("CZE2.2024040600")
    );
}

/// A wrong type for a secret must not quote the secret in the error (it goes to the log).
#[test]
fn a_config_error_names_the_line_not_the_value() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.toml");
    std::fs::write(
        &path,
        "listen = \"127.0.0.1:8080\"\nmaster-keys = \"s3cret-master-key\"\n",
    )
    .unwrap();
    let err = FileConfig::load(Some(&path)).unwrap_err().to_string();
    assert!(!err.contains("s3cret"), "{err}");
    assert!(err.contains("line 2"), "{err}");
}

#[test]
fn nats_settings_come_from_flags_or_the_file_and_a_replica_takes_no_input() {
    let file: FileConfig =
        toml::from_str("nats = \"nats://n:4222\"\nnats-creds = \"/etc/c.creds\"").unwrap();
    let c = resolve(&ServeArgs::default(), &file).unwrap();
    let nats = c.replication.nats.expect("nats");
    assert_eq!(nats.url, "nats://n:4222");
    assert_eq!(nats.creds, Some(PathBuf::from("/etc/c.creds")));
    assert!(!c.replication.replica);

    let replica = resolve_replica(&ServeArgs::default(), &file).unwrap();
    assert!(replica.replication.replica);
    let err = resolve_replica(&ServeArgs::default(), &FileConfig::default()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "--nats: a replica needs --nats URL (the origin's NATS)"
    );
    let with_input = ServeArgs {
        xml_dir: Some("/srv/canoe123".into()),
        ..ServeArgs::default()
    };
    let err = resolve_replica(&with_input, &file).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("--xml-dir: a replica takes no input"),
        "{err}"
    );

    let key_only = ServeArgs {
        nats: NatsArgs {
            tls_cert: Some("/c.pem".into()),
            ..NatsArgs::default()
        },
        ..ServeArgs::default()
    };
    assert!(
        resolve(&key_only, &FileConfig::default()).is_err(),
        "TLS without --nats"
    );
    let half = ServeArgs {
        nats: NatsArgs {
            url: Some("tls://n".into()),
            tls_cert: Some("/c.pem".into()),
            ..NatsArgs::default()
        },
        ..ServeArgs::default()
    };
    let err = resolve(&half, &FileConfig::default()).unwrap_err();
    assert!(err.to_string().contains("go together"), "{err}");
}
