#!/usr/bin/env bash
# Crash-safety harness: starts the real daemon (release build) on a temporary database, feeds
# it live results and whole XML exports over HTTP, kills it with SIGKILL at random moments
# and restarts it, CRASH_ROUNDS times (default 200). After every kill it checks
# PRAGMA integrity_check, that every acknowledged (2xx) input is stored, that no XML import
# is half-applied, that the epoch is kept and that no event's seq went backwards.
#
#   scripts/crash-harness.sh                    # 200 rounds, seed 0x5EED
#   CRASH_ROUNDS=1000 CRASH_SEED=42 scripts/crash-harness.sh
#   CRASH_PROFILE=debug scripts/crash-harness.sh   # the debug binary (slower, no rebuild)
#
# The short version (4 rounds) runs with every `cargo test`.
set -euo pipefail
cd "$(dirname "$0")/.."
export CRASH_ROUNDS="${CRASH_ROUNDS:-200}"
profile=(--release)
[ "${CRASH_PROFILE:-release}" = debug ] && profile=()
exec nice cargo test "${profile[@]}" --locked --test crash_safety -- --ignored --nocapture kill_9_loses_no_acknowledged_input_long
