//! Wiring of read replicas (`crate::replicate`): an origin's publisher, or a replica's
//! database and follower.

use tokio::task::JoinHandle;

use super::AppError;
use crate::merge::MergeHandle;
use crate::replicate::{self, replica::Start, ReplicationError, ReplicationStatus};
use crate::settings::Settings;
use crate::shutdown::Shutdown;
use crate::store::Store;

/// The HTTP settings, and: a replica has `--nats` and no input; a credentials file is
/// readable.
pub(super) fn validate(settings: &Settings) -> Result<(), AppError> {
    let r = &settings.replication;
    http_settings(settings).validate()?;
    // An unreadable credentials file is a setting error: refuse to start, as for any other.
    if let Some(path) = r.nats.as_ref().and_then(|n| n.creds.as_ref()) {
        if let Err(source) = std::fs::File::open(path) {
            return Err(ReplicationError::Creds {
                path: path.clone(),
                source,
            }
            .into());
        }
    }
    if !r.replica {
        return Ok(());
    }
    if r.nats.is_none() {
        return Err(AppError::ReplicaWithoutNats);
    }
    let inputs = settings.xml_dir.is_some()
        || settings.c123.is_some()
        || settings.tcp_listen.is_some()
        || settings.event.is_some();
    if inputs {
        return Err(AppError::ReplicaInputs);
    }
    Ok(())
}

/// The HTTP settings the daemon serves with. A replica refuses the admin API whatever the
/// key (before any key is looked at), so it needs no master key: it runs as in `--dev`,
/// which only opens an admin API it does not serve.
pub(super) fn http_settings(settings: &Settings) -> crate::http::HttpSettings {
    let mut http = settings.http.clone();
    if settings.replication.replica {
        http.dev = true;
    }
    http
}

/// The replication state the daemon reports, when `--nats` is set.
pub(super) fn status(settings: &Settings) -> Option<ReplicationStatus> {
    let r = &settings.replication;
    r.nats.as_ref().map(|_| ReplicationStatus::new(r.replica))
}

/// Waits for the origin's state (up to `start_timeout`) and gives an empty in-memory
/// database the origin's epoch: the `seq`s the replica serves are the origin's.
pub(super) async fn replica_store(
    settings: &Settings,
    status: &ReplicationStatus,
) -> Result<(Store, Start), AppError> {
    let r = &settings.replication;
    let nats = r.nats.as_ref().ok_or(AppError::ReplicaWithoutNats)?;
    let start = replicate::replica::connect(r, nats, status).await?;
    let store_error = |source| AppError::Store {
        path: ":memory:".into(),
        source,
    };
    let mut store = Store::open_in_memory().map_err(store_error)?;
    store.set_epoch(&start.epoch).map_err(store_error)?;
    tracing::info!(epoch = %start.epoch, "replica of the origin's database");
    Ok((store, start))
}

/// The origin's publisher or the replica's follower; `None` without `--nats`.
pub(super) fn spawn(
    settings: &Settings,
    status: Option<&ReplicationStatus>,
    replica: Option<Start>,
    merge: &MergeHandle,
    shutdown: &Shutdown,
) -> Option<JoinHandle<()>> {
    let status = status?.clone();
    let r = &settings.replication;
    match replica {
        Some(start) => Some(replicate::replica::spawn(
            start,
            merge.clone(),
            status,
            shutdown.clone(),
        )),
        None => Some(replicate::publish::spawn(
            r.clone(),
            r.nats.clone()?,
            merge,
            status,
            shutdown.clone(),
        )),
    }
}
