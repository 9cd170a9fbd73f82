//! The NATS connection, the stream and the bucket: how a daemon reaches JetStream.

use std::path::PathBuf;
use std::time::Duration;

use async_nats::jetstream::{self, kv, stream};

use super::{ReplicationError, ReplicationSettings, ReplicationStatus};

/// `--nats URL` and the credentials NATS users expect.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NatsSettings {
    /// `nats://host:4222`, `tls://…`, or several comma-separated.
    pub url: String,
    /// A `.creds` file (JWT and NKey seed).
    pub creds: Option<PathBuf>,
    /// CA certificates (PEM) the server's certificate is checked against.
    pub tls_ca: Option<PathBuf>,
    /// Client certificate and key (PEM), for servers that verify clients.
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
}

/// The longest pause between two reconnect attempts: a short outage is over within it.
const MAX_RECONNECT_DELAY: Duration = Duration::from_secs(2);

/// Connects in the background (the daemon never waits for NATS to serve) and keeps
/// reconnecting for ever; `status` follows the connection.
pub(super) async fn connect(
    s: &NatsSettings,
    name: &str,
    status: &ReplicationStatus,
) -> Result<async_nats::Client, ReplicationError> {
    let mut opts = async_nats::ConnectOptions::new()
        .name(name)
        .retry_on_initial_connect()
        .max_reconnects(None)
        .connection_timeout(Duration::from_secs(5))
        .reconnect_delay_callback(|attempts| {
            Duration::from_millis(250u64.saturating_mul(attempts as u64)).min(MAX_RECONNECT_DELAY)
        });
    if let Some(path) = &s.creds {
        opts = opts
            .credentials_file(path)
            .await
            .map_err(|source| ReplicationError::Creds {
                path: path.clone(),
                source,
            })?;
    }
    let tls = s.tls_ca.is_some() || s.tls_cert.is_some() || s.tls_key.is_some();
    if let Some(ca) = &s.tls_ca {
        opts = opts.add_root_certificates(ca.clone());
    }
    match (&s.tls_cert, &s.tls_key) {
        (Some(cert), Some(key)) => {
            opts = opts.add_client_certificate(cert.clone(), key.clone());
        }
        (None, None) => {}
        _ => return Err(ReplicationError::TlsPair),
    }
    if tls {
        opts = opts.require_tls(true);
    }
    let events = status.clone();
    opts = opts.event_callback(move |event| {
        let status = events.clone();
        async move {
            match event {
                async_nats::Event::Connected => {
                    tracing::info!("NATS connected");
                    status.set_connected(true);
                }
                async_nats::Event::Disconnected => {
                    tracing::warn!("NATS disconnected");
                    status.set_connected(false);
                }
                other => tracing::debug!(event = %other, "NATS"),
            }
        }
    });
    opts.connect(s.url.as_str())
        .await
        .map_err(|e| ReplicationError::Connect {
            url: s.url.clone(),
            message: e.to_string(),
        })
}

/// The context every JetStream call goes through, with `timeout` per request.
pub(super) fn context(client: async_nats::Client, timeout: Duration) -> jetstream::Context {
    let mut js = jetstream::new(client);
    js.set_timeout(timeout);
    js
}

/// The stream of records: file storage, old records dropped after `stream_max_age`, a
/// two-minute duplicate window for `Nats-Msg-Id`.
pub(super) fn stream_config(s: &ReplicationSettings) -> stream::Config {
    stream::Config {
        name: s.stream.clone(),
        subjects: vec![format!("{}.>", ReplicationSettings::SUBJECT_PREFIX)],
        storage: stream::StorageType::File,
        max_age: s.stream_max_age,
        duplicate_window: Duration::from_secs(120),
        discard: stream::DiscardPolicy::Old,
        ..Default::default()
    }
}

/// The origin creates the stream and the bucket if they are missing.
pub(super) async fn ensure(
    js: &jetstream::Context,
    s: &ReplicationSettings,
) -> Result<(stream::Stream, kv::Store), ReplicationError> {
    let err = |e: &dyn std::fmt::Display| ReplicationError::JetStream(e.to_string());
    let stream = js
        .get_or_create_stream(stream_config(s))
        .await
        .map_err(|e| err(&e))?;
    let bucket = match js.get_key_value(s.bucket.as_str()).await {
        Ok(b) => b,
        Err(_) => js
            .create_key_value(kv::Config {
                bucket: s.bucket.clone(),
                history: 1,
                storage: stream::StorageType::File,
                ..Default::default()
            })
            .await
            .map_err(|e| err(&e))?,
    };
    Ok((stream, bucket))
}

/// A replica opens what the origin created.
pub(super) async fn open(
    js: &jetstream::Context,
    s: &ReplicationSettings,
) -> Result<(stream::Stream, kv::Store), ReplicationError> {
    let err = |e: &dyn std::fmt::Display| ReplicationError::JetStream(e.to_string());
    let stream = js
        .get_stream(s.stream.as_str())
        .await
        .map_err(|e| err(&e))?;
    let bucket = js
        .get_key_value(s.bucket.as_str())
        .await
        .map_err(|e| err(&e))?;
    Ok((stream, bucket))
}
