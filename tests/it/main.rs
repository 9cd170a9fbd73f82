//! The integration tests: one binary, one module per area, as ripgrep and rust-analyzer do.
//! Each module starts the real daemon (or a real part of it) on 127.0.0.1 port 0 through
//! `support`; one binary links once and its tests share the machine's two threads.
//!
//! Tests that need the process to themselves (they read the process's own RSS, open 10 000
//! sockets, or time a default timer to the second) are in `tests/solo`, a second binary whose
//! tests take turns.

#[path = "../support/mod.rs"]
mod support;

mod browser_operator;
mod browser_pages;
mod browser_spectator;
mod c123_codec;
mod c123_frame;
mod c123_recording;
mod core_pipeline;
mod crash_safety;
mod daemon_process;
mod direct_mode;
mod faults_storage;
mod faults_tcp;
mod field_bounds;
mod http_best_run;
mod http_cache;
mod http_compression;
mod http_edges;
mod http_guards;
mod http_hostile;
mod http_lifecycle;
mod http_openapi;
mod http_properties;
mod http_result_status;
mod http_static;
mod layers;
mod merge_loop_fixes;
mod merge_strategy;
mod operator_api;
mod readme_settings;
mod replication;
mod scoreboard;
mod security;
mod store_integrity;
mod store_roundtrip;
mod tcp_ingest;
mod tcp_timers;
mod watcher;
mod ws_coalesce;
mod ws_fanout;
mod ws_lifecycle;
mod ws_live_mini_reducer;
mod ws_messages;
mod ws_per_ip;
mod xml_properties;
