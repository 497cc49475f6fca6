#!/usr/bin/env bash
# Benchmarks of a whole elsadoctor run against the simulated cluster (see bench/README.md).
# Needs hyperfine and GNU time (Debian packages `hyperfine`, `time`). Prints a Markdown summary;
# raw hyperfine JSON goes to bench/results/.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v hyperfine >/dev/null || { echo "bench: install hyperfine (apt-get install hyperfine)" >&2; exit 2; }
[ -x /usr/bin/time ] || { echo "bench: install GNU time (apt-get install time)" >&2; exit 2; }

cargo build --release --quiet --bin elsadoctor
cargo build --release --quiet -p elsadoctor-sim --example sim_serve
bin=target/release/elsadoctor
serve=target/release/examples/sim_serve
scen=tests/fixtures/scenarios
out=bench/results
mkdir -p "$out"
runs=${RUNS:-30}

echo "## Concurrency: a full run with injected API latency"
echo
echo "| latency | requests | longest sequential chain | mean wall | budget (chain+1)*latency+50ms |"
echo "|---|---|---|---|---|"
for ms in 0 20; do
  # The benchmark cluster has no database behind its postgres pod, so runs exit 1 (the login is
  # refused); the exit code is not what is measured here.
  stats=$({ "$serve" "$scen/healthy" --latency-ms "$ms" -- "$bin" --json 2>&1 >/dev/null || true; } | tail -n 1)
  requests=$(echo "$stats" | sed -E 's/.*"requests":([0-9]+).*/\1/')
  chain=$(echo "$stats" | sed -E 's/.*"longestChain":([0-9]+).*/\1/')
  "$serve" "$scen/healthy" --latency-ms "$ms" -- \
    hyperfine -i --style none --warmup 3 --runs "$runs" --export-json "$out/latency-$ms.json" \
    "$bin --json" >/dev/null 2>&1
  mean=$(python3 -c "import json;print(round(json.load(open('$out/latency-$ms.json'))['results'][0]['mean']*1000,1))")
  budget=$(( (chain + 1) * ms + 50 ))
  echo "| ${ms} ms | $requests | $chain | ${mean} ms | ${budget} ms |"
done

echo
echo "## Memory and time in a namespace with 5,000 unrelated pods and 2,000 ConfigMaps"
echo
rss() { # scenario -> peak RSS in KiB of one elsadoctor run
  "$serve" "$scen/$1" -- /usr/bin/time -f "%M" -o "$out/rss-$1.txt" "$bin" --json >/dev/null 2>&1 || true
  tail -n 1 "$out/rss-$1.txt"
}
base_rss=$(rss healthy)
noise_rss=$(rss noise)
# Both runs in one hyperfine invocation, each against its own simulation process.
"$serve" "$scen/healthy" -- sh -c "cp \"\$KUBECONFIG\" $out/healthy.kubeconfig; \
  \"$serve\" \"$scen/noise\" -- sh -c 'hyperfine -i --style none --warmup 3 --runs $runs \
    --export-json $out/noise.json \
    -n healthy \"$bin --json --kubeconfig $out/healthy.kubeconfig\" \
    -n noise \"$bin --json\"'" >/dev/null 2>&1 || true
python3 - "$out/noise.json" "$base_rss" "$noise_rss" <<'PY'
import json, sys
r = {x["command"]: x for x in json.load(open(sys.argv[1]))["results"]}
ms = lambda x: x * 1000
h, n = r["healthy"], r["noise"]
cpu = lambda x: ms(x["user"] + x["system"])
print("| namespace | peak RSS | mean wall | elsadoctor CPU (user+sys) |")
print("|---|---|---|---|")
print(f"| healthy | {int(sys.argv[2]) / 1024:.1f} MiB | {ms(h['mean']):.1f} ms | {cpu(h):.1f} ms |")
print(f"| + 5,000 pods, 2,000 ConfigMaps | {int(sys.argv[3]) / 1024:.1f} MiB | {ms(n['mean']):.1f} ms | {cpu(n):.1f} ms |")
print(f"\nnoise / healthy: wall {n['mean'] / h['mean']:.3f}, elsadoctor CPU {cpu(n) / cpu(h):.3f}")
print("(The wall-time difference is the simulated API server evaluating the pods label selector")
print(" over 5,000 objects; elsadoctor sends the same requests in both namespaces.)")
PY
