//! Tests of the TUI state machine and screen snapshots.
