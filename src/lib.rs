//! c123-live: live canoe-slalom results from a Canoe123 timing system.
//!
//! Data flows one way (see `ARCHITECTURE.md`):
//!
//! - [`c123`]: the Canoe123 TCP stream: `|` framing codec, frame parser, on-course tracking.
//! - [`xml`]: the Canoe123 XML export parser (pure: bytes in, [`xml::Export`] or an error out).
//! - [`ingest`]: the outside world: TCP sources (connect / listen) and the XML folder watcher.
//! - [`merge`]: the merge loop, the only writer: every [`merge::Input`] is applied in one
//!   SQLite transaction, then published as a [`merge::ChangeSet`] and a new read snapshot.
//! - [`store`]: SQLite access and migrations (`migrations/*.sql`).
//! - [`model`]: the domain model (times in milliseconds, penalties in seconds).
//! - [`result_status`]: the one rule for result statuses (`DNF`, unknown codes) of every input.
//! - [`api`]: the public JSON wire types (centiseconds) and their pure builders from the model;
//!   used by both [`http`] and [`hub`].
//! - [`hub`]: WebSocket rooms, per-client queues, heartbeat, resume ring.
//! - [`scoreboard`]: c123-server's scoreboard protocol (`/ws`, `/api/xml/...`) from the
//!   same committed state, for c123-scoreboard's TVs and LED walls.
//! - [`replicate`]: read replicas over NATS JetStream: the origin publishes every commit,
//!   a replica follows the stream into its own merge loop (`protocol/replication.md`).
//! - [`http`]: the hyper server and REST routes.
//! - [`time`]: civil dates (UTC) and the injectable [`time::Clock`].
//! - [`uri`]: percent-decoded paths and query parameters (http and hub).
//! - [`keys`]: API key generation and constant-time comparison.
//! - [`settings`]: the daemon's settings as one plain value, `Default` = nothing configured.
//! - [`config`]: the command line, environment and `--config` file, resolved to [`settings::Settings`].
//! - [`app`]: the composition root: the only place that wires components, start-up and
//!   orderly shutdown; `main` and the test harnesses start the daemon through it.
//! - [`shutdown`]: the one shutdown signal every task listens to.

pub mod api;
pub mod app;
pub mod c123;
pub mod config;
pub mod http;
pub mod hub;
pub mod ingest;
pub mod keys;
pub mod merge;
pub mod model;
pub mod replicate;
pub mod result_status;
pub mod scoreboard;
pub mod settings;
pub mod shutdown;
pub mod store;
pub mod time;
pub mod uri;
pub mod xml;
