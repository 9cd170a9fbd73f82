//! In-process router tests (`oneshot`, no socket).
