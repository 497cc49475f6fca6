//! The `--json` wire format tested from outside: real output deserialized with this test's own
//! types (not the crate's), strictly, so a renamed or dropped field breaks the build of trust
//! here before it breaks a user's script.

mod common;

use std::collections::BTreeMap;

use common::Cluster;
use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Report {
    schema_version: u32,
    tool: Tool,
    target: Target,
    vantage: String,
    started_at: String,
    duration_ms: u64,
    summary: BTreeMap<String, u32>,
    checks: Vec<Check>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Tool {
    name: String,
    version: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Target {
    context: Option<String>,
    namespace: Option<String>,
    workload: Option<String>,
    flavor: Option<String>,
    elsa_version: Option<String>,
    simulated: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Check {
    id: String,
    title: String,
    category: String,
    status: String,
    duration_ms: u64,
    message: String,
    evidence: Vec<Evidence>,
    blocked_by: Vec<String>,
    cause: Option<String>,
    fix: Option<Fix>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Evidence {
    label: String,
    value: String,
    source: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Fix {
    summary: String,
    steps: Vec<String>,
    commands: Vec<String>,
    docs: String,
    patch: Option<serde_json::Value>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_output_matches_the_documented_contract() {
    let cluster = Cluster::start("crashloop-oom").await;
    let mut cmd = cluster.cmd();
    cmd.arg("-o").arg("json");
    let out = common::run(cmd).await;
    let report: Report = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!("{e}\n{}", String::from_utf8_lossy(&out.stdout));
    });
    assert_eq!(report.schema_version, 1);
    assert_eq!(report.tool.name, "elsadoctor");
    assert!(!report.tool.version.is_empty());
    // Outside a cluster the database is reached through the API's port-forward.
    assert_eq!(report.vantage, "port-forward");
    assert!(report.started_at.ends_with('Z'), "{}", report.started_at);
    assert!(report.duration_ms < 60_000);
    assert_eq!(report.target.context.as_deref(), Some("sim"));
    assert_eq!(report.target.namespace.as_deref(), Some("elsa"));
    assert_eq!(
        report.target.workload.as_deref(),
        Some("deployment/elsa-server")
    );
    assert_eq!(report.target.flavor.as_deref(), Some("Elsa.Server.Web"));
    assert_eq!(report.target.elsa_version.as_deref(), Some("3.5"));
    assert!(
        !report.target.simulated,
        "a --kubeconfig run is not the demo"
    );
    let keys: Vec<&str> = report.summary.keys().map(String::as_str).collect();
    assert_eq!(keys, ["fail", "pass", "skip", "unknown", "warn"]);
    assert_eq!(
        report.summary.values().sum::<u32>() as usize,
        report.checks.len()
    );

    let ids: Vec<&str> = report.checks.iter().map(|c| c.id.as_str()).collect();
    let catalogue = elsadoctor::catalogue::Catalogue::embedded().expect("catalogue");
    assert_eq!(ids, catalogue.ids().collect::<Vec<_>>(), "catalogue order");
    for c in &report.checks {
        assert!(["pass", "warn", "fail", "unknown", "skip"].contains(&c.status.as_str()));
        assert!(!c.title.is_empty() && !c.category.is_empty() && !c.message.is_empty());
        assert!(c.duration_ms < 60_000);
        assert!(c.blocked_by.is_empty() || c.status == "skip");
        assert_eq!(
            c.fix.is_some(),
            matches!(c.status.as_str(), "warn" | "fail" | "unknown"),
            "{}",
            c.id
        );
        for e in &c.evidence {
            assert!(!e.label.is_empty() && e.source.as_deref() != Some(""));
            let _ = &e.value;
        }
    }
    let pods = report
        .checks
        .iter()
        .find(|c| c.id == "workload.pods")
        .expect("pods");
    assert_eq!(pods.cause.as_deref(), Some("oom-killed"));
    let fix = pods.fix.as_ref().expect("fix");
    assert!(!fix.summary.is_empty() && !fix.steps.is_empty());
    assert!(fix.docs.starts_with("https://"));
    for fix in report.checks.iter().filter_map(|c| c.fix.as_ref()) {
        // A patch, when present, is a strategic-merge patch of the workload.
        if let Some(p) = &fix.patch {
            assert!(
                p["spec"]["template"]["spec"]["containers"].is_array(),
                "{p}"
            );
        }
    }
    assert!(
        fix.commands.iter().all(|c| !c.contains('{')),
        "every template filled: {:?}",
        fix.commands
    );
}
