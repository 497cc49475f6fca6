#!/usr/bin/env bash
# `elsadoctor lint` on 500 Deployments + 500 ConfigMaps, against a bare YAML parse of the same
# files with the same YAML crate (examples/yaml_parse.rs), in one hyperfine run; plus peak RSS.
# Needs hyperfine and GNU time. Target: lint costs < 3x the bare parse.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v hyperfine >/dev/null || { echo "bench: install hyperfine" >&2; exit 2; }
cargo build --release --quiet --bin elsadoctor --example yaml_parse
out=bench/results; mkdir -p "$out"
dir=$(mktemp -d); trap 'rm -rf "$dir"' EXIT
python3 - "$dir" "tests/fixtures/scenarios/healthy/manifests.yaml" <<'PY'
import sys, os
d, healthy = sys.argv[1], sys.argv[2]
open(os.path.join(d, "elsa.yaml"), "w").write(open(healthy).read())
for i in range(499):
    open(os.path.join(d, f"app-{i:03}.yaml"), "w").write(f"""apiVersion: apps/v1
kind: Deployment
metadata:
  name: app-{i}
  namespace: elsa
  labels: {{app: app-{i}, team: t{i % 7}}}
spec:
  replicas: 2
  selector: {{matchLabels: {{app: app-{i}}}}}
  template:
    metadata: {{labels: {{app: app-{i}}}}}
    spec:
      containers:
        - name: web
          image: registry.example/app-{i}:1.{i}
          ports: [{{containerPort: 8080}}]
          env:
            - {{name: LOG_LEVEL, value: info}}
            - {{name: CONFIG, valueFrom: {{configMapKeyRef: {{name: cfg-{i}, key: settings}}}}}}
          resources: {{requests: {{cpu: 100m, memory: 128Mi}}, limits: {{memory: 256Mi}}}}
""")
for i in range(500):
    body = "\n".join(f"    key{j}: value-{i}-{j}" for j in range(20))
    open(os.path.join(d, f"cfg-{i:03}.yaml"), "w").write(f"""apiVersion: v1
kind: ConfigMap
metadata:
  name: cfg-{i}
  namespace: elsa
data:
  settings: |
{body}
""")
PY
hyperfine --style none --warmup 3 --runs "${RUNS:-20}" --export-json "$out/lint.json" \
  -n parse "target/release/examples/yaml_parse $dir" \
  -n lint "target/release/elsadoctor lint --json -f $dir" >/dev/null
/usr/bin/time -f "%M" -o "$out/lint-rss.txt" target/release/elsadoctor lint --json -f "$dir" >/dev/null || true
/usr/bin/time -f "%M" -o "$out/parse-rss.txt" target/release/examples/yaml_parse "$dir" >/dev/null
python3 - "$out/lint.json" "$(cat "$out/parse-rss.txt")" "$(cat "$out/lint-rss.txt")" <<'PY'
import json, sys
r = {x["command"]: x for x in json.load(open(sys.argv[1]))["results"]}
p, l = r["parse"]["mean"] * 1000, r["lint"]["mean"] * 1000
print("| 500 Deployments + 500 ConfigMaps | mean wall | peak RSS |")
print("|---|---|---|")
print(f"| bare YAML parse (serde-saphyr) | {p:.1f} ms | {int(sys.argv[2]) / 1024:.1f} MiB |")
print(f"| elsadoctor lint | {l:.1f} ms | {int(sys.argv[3]) / 1024:.1f} MiB |")
print(f"\nlint / parse: {l / p:.2f}x")
PY
