#!/usr/bin/env bash
# The debug pod's lifecycle and time bound against the simulated cluster (examples/debug_pod_lifecycle.rs):
# RUNS debug-pod runs in a row (default 50), INTERRUPTED of them (default 10) sent SIGINT at
# pseudo-random moments, pods left behind counted after each run; then five runs with DNS and the
# database host unanswerable, timed against --timeout + 2 s.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-50}
INTERRUPTED=${INTERRUPTED:-10}
cargo build --release --quiet --bin elsadoctor --example debug_pod_lifecycle
target/release/examples/debug_pod_lifecycle target/release/elsadoctor "$RUNS" "$INTERRUPTED" | tee bench/results/debug_pod.json
