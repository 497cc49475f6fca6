#!/usr/bin/env bash
# Connections per run, and a whole run against a bare kube-rs client making the same reads
# (see bench/README.md). Needs hyperfine. Prints a Markdown summary; raw JSON in bench/results/.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v hyperfine >/dev/null || { echo "bench: install hyperfine (apt-get install hyperfine)" >&2; exit 2; }

# PROFILE=dev measures debug builds (no release build on a busy machine).
profile=${PROFILE:-release}
dir=$(case "$profile" in dev) echo debug ;; *) echo "$profile" ;; esac)
# NO_BUILD=1 measures the binaries already built.
if [ -z "${NO_BUILD:-}" ]; then
  cargo build --profile "$profile" --quiet --bin elsadoctor --example bare_kube
  cargo build --profile "$profile" --quiet -p elsadoctor-sim --example sim_serve
fi
bin=target/$dir/elsadoctor
bare=target/$dir/examples/bare_kube
serve=target/$dir/examples/sim_serve
scen=tests/fixtures/scenarios/healthy
out=bench/results
mkdir -p "$out"
runs=${RUNS:-30}

# One doctor run records the requests the baseline replays (same requests, same waves). It is
# recorded with RECORD_LATENCY_MS (default 5) of latency per request so that requests the doctor
# sends concurrently overlap in the log: at 0 ms most finish before their siblings arrive and the
# replay would be needlessly sequential.
record_ms=${RECORD_LATENCY_MS:-5}
SIM_SERVE_LOG="$out/healthy-requests.jsonl" "$serve" "$scen" --latency-ms "$record_ms" -- "$bin" --json >/dev/null 2>&1 || true

stats() { # label, sim_serve flags..., -- command...: one run, its connection counts
  local label=$1; shift
  local line
  line=$({ "$serve" "$scen" "$@" 2>&1 >/dev/null || true; } | tail -n 1)
  python3 - "$label" "$line" <<'PY'
import json, sys
s = json.loads(sys.argv[2])
full = s['tlsHandshakes'] - s.get('tlsResumed', 0)
print(f"| {sys.argv[1]} | {s['requests']} | {s['connections']} | {s['tlsHandshakes']} | {full} | {s['h2Connections']} | {s['http1Connections']} |")
PY
}

echo "## Connections in one run (simulated API server, TLS)"
echo
echo "| client | requests | TCP connections | TLS handshakes | of them full (not resumed) | HTTP/2 | HTTP/1.1 |"
echo "|---|---|---|---|---|---|---|"
stats "elsadoctor (h2 offered)" -- "$bin" --json
stats "elsadoctor (server without h2)" --no-h2 -- "$bin" --json
stats "bare kube-rs, same requests (reads + exec + port-forwards)" -- "$bare" "$out/healthy-requests.jsonl"
stats "bare kube-rs, plain reads only" -- "$bare" "$out/healthy-requests.jsonl" --plain-only
stats "bare kube-rs, same requests, cleartext server (no TLS)" --plain -- "$bare" "$out/healthy-requests.jsonl"

echo
echo "## Wall time: a whole run vs the bare kube-rs client (one hyperfine invocation)"
echo
"$serve" "$scen" -- hyperfine -i --style none --warmup 3 --runs "$runs" \
  --export-json "$out/connections.json" \
  -n elsadoctor "$bin --json" \
  -n bare-kube-rs "$bare $out/healthy-requests.jsonl" \
  -n bare-kube-rs-plain "$bare $out/healthy-requests.jsonl --plain-only" >/dev/null 2>&1 || true
# The floor of what saving handshakes can buy: the same bare client and requests against the same
# server serving cleartext (no TLS at all), alternated with the TLS baseline in one invocation of
# its own (the server's transport is fixed per sim_serve).
"$serve" "$scen" --plain -- hyperfine -i --style none --warmup 3 --runs "$runs" \
  --export-json "$out/connections-cleartext.json" \
  -n bare-kube-rs-cleartext "$bare $out/healthy-requests.jsonl" >/dev/null 2>&1 || true
python3 - "$out/connections.json" "$out/connections-cleartext.json" <<'PY'
import json, sys
r = {x["command"]: x for x in json.load(open(sys.argv[1]))["results"]}
c = json.load(open(sys.argv[2]))["results"][0]
d, b, p = r["elsadoctor"], r["bare-kube-rs"], r["bare-kube-rs-plain"]
print("| command | mean | median | min |")
print("|---|---|---|---|")
for name, x in (("elsadoctor --json (whole run)", d),
                ("bare kube-rs, same requests", b),
                ("bare kube-rs, plain reads only", p),
                ("bare kube-rs, same requests, cleartext server (separate invocation)", c)):
    print(f"| {name} | {x['mean']*1000:.1f} ms | {x['median']*1000:.1f} ms | {x['min']*1000:.1f} ms |")
print(f"\nratio whole run / bare client, same requests: mean {d['mean']/b['mean']:.2f}, median {d['median']/b['median']:.2f} (goal <= 0.6)")
print(f"ratio whole run / bare client, plain reads only: mean {d['mean']/p['mean']:.2f}, median {d['median']/p['median']:.2f}")
print(f"floor: bare client without any TLS / bare client with TLS: mean {c['mean']/b['mean']:.2f}, median {c['median']/b['median']:.2f}"
      " (no client making these requests to this server can go below it by saving handshakes)")
PY
