//! Scenario tests: the real binary against the simulated cluster, one scenario directory per
//! situation under tests/fixtures/scenarios/. Each directory's `expected.toml` names the status
//! of **every** check (a new check fails these tests until each scenario says what it expects),
//! optionally a cause per check, extra arguments, and the exit code.

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use common::{Cluster, json, statuses};

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Expected {
    /// Extra command-line arguments (e.g. `-n other`).
    #[serde(default)]
    args: Vec<String>,
    exit: i32,
    status: BTreeMap<String, String>,
    #[serde(default)]
    cause: BTreeMap<String, String>,
    /// Substrings the text of a check's message must contain.
    #[serde(default)]
    message: BTreeMap<String, String>,
    /// Where `lint` on the manifests legitimately differs from the cluster run.
    #[serde(default)]
    lint: BTreeMap<String, String>,
    /// The state of the real PostgreSQL behind the scenario's `postgres` pod.
    #[serde(default)]
    database: common::DbSetup,
    /// How many requests the simulated cluster answered, keyed `"<verb> <resource> <status>"`
    /// (`"delete pods 200"`): what the run did to the cluster.
    #[serde(default)]
    requests: BTreeMap<String, usize>,
}

fn expected(dir: &Path) -> Option<Expected> {
    let text = std::fs::read_to_string(dir.join("expected.toml")).ok()?;
    Some(toml::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", dir.display())))
}

/// The canary scenario's password: it must never reach a report or a bundle.
const CANARY: &str = "CANARY-7f3a9c1e-DO-NOT-LEAK";

/// Where a replayed report differs from the run's: per check its status, cause, message and
/// evidence; the target but for the replay label.
fn same_report(run: &serde_json::Value, replayed: &serde_json::Value) -> Vec<String> {
    let mut diffs = Vec::new();
    let mut target = replayed["target"].clone();
    if target
        .as_object_mut()
        .and_then(|t| t.remove("replay"))
        .is_none()
    {
        diffs.push("the report's target has no replay label".to_owned());
    }
    if target != run["target"] {
        diffs.push(format!("target {target} vs {}", run["target"]));
    }
    if run["vantage"] != replayed["vantage"] {
        diffs.push(format!(
            "vantage {} vs {}",
            replayed["vantage"], run["vantage"]
        ));
    }
    let empty = Vec::new();
    let a = run["checks"].as_array().unwrap_or(&empty);
    let b = replayed["checks"].as_array().unwrap_or(&empty);
    if a.len() != b.len() {
        diffs.push(format!("{} checks vs {}", b.len(), a.len()));
    }
    for (x, y) in a.iter().zip(b) {
        // The fix's commands are filled with the names known when the check ran: live, a check
        // may run before the pods arrive (`<pod>`), in a replay every fact is in at once.
        let fix = |c: &serde_json::Value| {
            let mut f = c["fix"].clone();
            if let Some(o) = f.as_object_mut() {
                o.remove("commands");
            }
            f
        };
        if fix(x) != fix(y) {
            diffs.push(format!(
                "{} fix: replayed {} vs run {}",
                x["id"],
                fix(y),
                fix(x)
            ));
        }
        for field in ["id", "status", "cause", "message", "evidence", "blockedBy"] {
            if x[field] != y[field] {
                diffs.push(format!(
                    "{} {field}: replayed {} vs run {}",
                    x["id"], y[field], x[field]
                ));
            }
        }
    }
    diffs
}

/// The checks `lint` runs: everything that can be judged from manifests alone.
fn offline(id: &str) -> bool {
    matches!(
        id,
        "workload.found" | "workload.flavor" | "network.policy" | "migration.step"
    ) || id.starts_with("config.")
        || id.starts_with("production.")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_scenario_matches_its_expected_statuses() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/scenarios");
    let mut dirs: Vec<_> = std::fs::read_dir(&root)
        .expect("scenarios dir")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    // `SCENARIOS=probe-pod cargo test --test scenarios`: only the scenarios whose name contains
    // it, while iterating on them.
    let only = std::env::var("SCENARIOS").ok().filter(|s| !s.is_empty());
    if let Some(only) = &only {
        dirs.retain(|d| {
            d.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.contains(only.as_str()))
        });
    }
    let catalogue = elsadoctor::catalogue::Catalogue::embedded().expect("catalogue");
    let all_ids: Vec<String> = catalogue.ids().map(str::to_owned).collect();
    let mut ran = 0;
    let mut failures = Vec::new();
    let pg = common::tls_server();
    let _lock = common::database_lock().await;
    for dir in dirs {
        let name = dir
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("")
            .to_owned();
        let Some(exp) = expected(&dir) else {
            continue;
        };
        let listed: Vec<String> = exp.status.keys().cloned().collect();
        let mut sorted_ids = all_ids.clone();
        sorted_ids.sort();
        assert_eq!(
            listed, sorted_ids,
            "{name}/expected.toml must list every check id"
        );

        let (_tmp, scenario) = common::prepare(&dir, &exp.database, pg);
        let cluster = Cluster::start_with(scenario).await;
        let bundle = cluster.dir.path().join("facts.json");
        let mut cmd = cluster.cmd();
        cmd.arg("--json")
            .args(&exp.args)
            .arg("--dump-facts")
            .arg(&bundle);
        let out = common::run(cmd).await;
        // A default run writes nothing to stderr: findings go to stdout, the libraries' logs
        // (kube-client logs every failed exec or port-forward) only with -vvv.
        if !exp.args.iter().any(|a| a.starts_with("-v")) && !out.stderr.is_empty() {
            failures.push(format!(
                "{name}: a default run wrote to stderr: {}",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        let report = json(&out);
        let log = cluster.server.requests();
        for (key, want) in &exp.requests {
            let got = log
                .iter()
                .filter(|r| {
                    let resource = match &r.subresource {
                        Some(sub) => format!("{}/{sub}", r.resource),
                        None => r.resource.clone(),
                    };
                    format!("{} {resource} {}", r.verb, r.status) == *key
                })
                .count();
            if got != *want {
                failures.push(format!("{name}: {got} requests {key:?}, expected {want}"));
            }
        }
        // The run's facts bundle, replayed offline, must give the same report; and it must
        // hold no secret.
        match std::fs::read_to_string(&bundle) {
            Ok(text) => {
                if text.contains(CANARY) {
                    failures.push(format!(
                        "{name}: the facts bundle holds the canary password"
                    ));
                }
                let mut replay = common::elsadoctor(cluster.dir.path());
                replay.args(["replay", "--json"]).arg(&bundle);
                let replayed = common::run(replay).await;
                failures.extend(
                    same_report(&report, &json(&replayed))
                        .into_iter()
                        .map(|d| format!("{name}: replay: {d}")),
                );
                if replayed.status.code() != out.status.code() {
                    failures.push(format!(
                        "{name}: replay exit {:?}, the run's {:?}",
                        replayed.status.code(),
                        out.status.code()
                    ));
                }
            }
            Err(e) => failures.push(format!("{name}: no facts bundle: {e}")),
        }
        let got = statuses(&report);
        if got != exp.status {
            let differing: Vec<String> = got
                .iter()
                .filter(|(id, s)| exp.status.get(*id) != Some(*s))
                .map(|(id, s)| {
                    let msg = report["checks"]
                        .as_array()
                        .and_then(|a| a.iter().find(|c| c["id"] == id.as_str()))
                        .and_then(|c| c["message"].as_str())
                        .unwrap_or("");
                    format!("    {id} {s}: {msg}")
                })
                .collect();
            failures.push(format!(
                "{name}: statuses\n  expected {:?}\n  got      {:?}\n{}",
                exp.status,
                got,
                differing.join("\n")
            ));
        }
        for (id, cause) in &exp.cause {
            let c = report["checks"]
                .as_array()
                .and_then(|a| a.iter().find(|c| c["id"] == id.as_str()))
                .map(|c| c["cause"].as_str().unwrap_or("").to_owned());
            if c.as_deref() != Some(cause.as_str()) {
                failures.push(format!("{name}: {id} cause expected {cause}, got {c:?}"));
            }
        }
        for (id, needle) in &exp.message {
            let msg = report["checks"]
                .as_array()
                .and_then(|a| a.iter().find(|c| c["id"] == id.as_str()))
                .and_then(|c| c["message"].as_str())
                .unwrap_or("")
                .to_owned();
            if !msg.contains(needle.as_str()) {
                failures.push(format!("{name}: {id} message {msg:?} lacks {needle:?}"));
            }
        }
        // The same manifests through `lint`: the offline checks must agree with the cluster run.
        let mut lint = common::elsadoctor(cluster.dir.path());
        lint.args(["lint", "--json", "-f"])
            .arg(dir.join("manifests.yaml"))
            .args(&exp.args);
        let lint_out = common::run(lint).await;
        let lint_got = statuses(&json(&lint_out));
        let mut lint_want: BTreeMap<String, String> = exp
            .status
            .iter()
            .filter(|(id, _)| offline(id))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        lint_want.extend(exp.lint.clone());
        if lint_got != lint_want {
            failures.push(format!(
                "{name}: lint statuses\n  expected {lint_want:?}\n  got      {lint_got:?}"
            ));
        }
        if out.status.code() != Some(exp.exit) {
            failures.push(format!(
                "{name}: exit {:?}, expected {}; stderr: {}",
                out.status.code(),
                exp.exit,
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        ran += 1;
    }
    assert!(
        ran >= 10 || only.is_some(),
        "only {ran} scenarios have expected.toml"
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
