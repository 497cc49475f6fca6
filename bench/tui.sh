#!/usr/bin/env bash
# bench/tui.sh: the TUI's time to first frame, time to the last result, and idle CPU, with
# `elsadoctor demo` in a private tmux server (120x40). See bench/README.md.
#
#   PROFILE=release|dev (default release)  RUNS=N (default 10)  IDLE=seconds (default 10)
set -euo pipefail
cd "$(dirname "$0")/.."

PROFILE=${PROFILE:-release}
RUNS=${RUNS:-10}
IDLE=${IDLE:-10}
command -v tmux >/dev/null || { echo "bench/tui.sh needs tmux" >&2; exit 2; }
cargo build -q --profile "$PROFILE" --bin elsadoctor
dir=$PROFILE; [ "$PROFILE" = dev ] && dir=debug
BIN=$PWD/target/$dir/elsadoctor

SOCK=elsadoctor-bench-$$
tm() { tmux -L "$SOCK" -f /dev/null "$@"; }
trap 'tm kill-server 2>/dev/null || true' EXIT
now_ms() { echo $(( $(date +%s%N) / 1000000 )); }
# Polls the pane (every ~2 ms plus tmux's own latency) until it shows $1.
wait_for() { until tm capture-pane -p -t b 2>/dev/null | grep -q "$1"; do sleep 0.002; done; }

# The pane waits on `read`, so the clock starts at the keypress that execs the binary: shell and
# tmux start-up are not counted.
start_session() {
  tm kill-server 2>/dev/null || true
  tm new-session -d -x 120 -y 40 -s b "env LANG=C.UTF-8 sh -c 'read x; exec $BIN demo'"
  sleep 0.2 # let the shell reach `read` (setup, not measured)
}

firsts=(); lasts=()
for _ in $(seq "$RUNS"); do
  start_session
  t0=$(now_ms)
  tm send-keys -t b Enter
  wait_for 'elsadoctor 0'
  t1=$(now_ms)
  wait_for 'done in'
  t2=$(now_ms)
  firsts+=($((t1 - t0))); lasts+=($((t2 - t0)))
  tm send-keys -t b q
  # The session ends with the process; let the server go before the next one starts.
  while tm has-session -t b 2>/dev/null; do sleep 0.01; done
  while tm list-sessions >/dev/null 2>&1; do sleep 0.01; done
done
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
echo "first frame:  median $(median "${firsts[@]}") ms  (all: ${firsts[*]})  target < 100 ms"
echo "last result:  median $(median "${lasts[@]}") ms  (all: ${lasts[*]})"

# Idle: the run finished, no input, for $IDLE seconds.
start_session
tm send-keys -t b Enter
wait_for 'done in'
sleep 1
pid=$(tm display -p -t b '#{pane_pid}')
ticks() { awk '{print $14 + $15}' "/proc/$pid/stat"; }
hz=$(getconf CLK_TCK)
before=$(ticks)
sleep "$IDLE"
after=$(ticks)
tm send-keys -t b q
echo "idle CPU:     $(awk -v t=$((after - before)) -v hz="$hz" 'BEGIN {printf "%.2f", t / hz}') s over ${IDLE} s (utime+stime)  target < 0.2 s"
