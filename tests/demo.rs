//! `elsadoctor demo`'s built-in scenarios as a user meets them: `--list`, `--scenario NAME`,
//! the one-line description, an unknown name; and that each built-in tells one true story:
//! from this machine (port-forward) and from a debug pod (the simulated cluster DNS and Service
//! network, the probe pod run by the kubelet stand-in), no two findings contradict each other.

mod common;

use std::collections::BTreeMap;

use common::{elsadoctor, json};
use serde_json::Value;

const BUILTINS: [&str; 3] = ["crash-loop", "healthy", "guide-option-a"];

fn checks(report: &Value) -> BTreeMap<String, Value> {
    report["checks"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| (c["id"].as_str().unwrap_or_default().to_owned(), c.clone()))
        .collect()
}

fn run(name: &str, vantage: &str) -> (std::process::Output, BTreeMap<String, Value>) {
    let home = tempfile::tempdir().expect("tmp");
    let out = elsadoctor(home.path())
        .args([
            "demo",
            "--scenario",
            name,
            "--vantage",
            vantage,
            "-o",
            "json",
        ])
        .output()
        .expect("runs");
    let report = json(&out);
    assert_eq!(report["target"]["simulated"], true);
    (out, checks(&report))
}

fn status<'a>(c: &'a BTreeMap<String, Value>, id: &str) -> &'a str {
    c.get(id)
        .and_then(|c| c["status"].as_str())
        .unwrap_or_else(|| panic!("{id} in the report"))
}

fn message<'a>(c: &'a BTreeMap<String, Value>, id: &str) -> &'a str {
    c.get(id)
        .and_then(|c| c["message"].as_str())
        .unwrap_or_default()
}

/// Pairs of findings that cannot both be true of one cluster. Returns each contradiction.
fn contradictions(c: &BTreeMap<String, Value>) -> Vec<String> {
    let mut found = Vec::new();
    let mut rule = |holds: bool, what: &str| {
        if holds {
            found.push(what.to_owned());
        }
    };
    let st = |id| status(c, id);
    let transport = |m: &str| {
        [
            "refused",
            "forwarding",
            "timed out",
            "unreachable",
            "no ready pod",
        ]
        .iter()
        .any(|w| m.contains(w))
    };
    let login_msg = message(c, "database.login");
    rule(
        st("network.service") == "pass" && st("database.login") == "fail" && transport(login_msg),
        "network.service passes (a ready endpoint) but the database login fails in transport",
    );
    rule(
        st("network.service") == "fail" && st("database.login") == "pass",
        "network.service finds no ready endpoint but the login works",
    );
    rule(
        st("network.dns") == "pass"
            && st("network.tcp") == "fail"
            && message(c, "network.tcp").contains("not resolved"),
        "network.dns resolves the host but network.tcp cannot resolve it",
    );
    rule(
        st("network.tcp") == "pass" && st("network.service") == "fail",
        "network.tcp connects but the Service has no ready endpoint",
    );
    rule(
        st("network.tcp") == "fail" && st("database.login") == "pass",
        "network.tcp fails but the login works",
    );
    rule(
        st("workload.pods") == "pass" && st("workload.rollout") == "fail",
        "every pod is ready but the rollout is not available",
    );
    rule(
        st("database.login") == "pass"
            && [
                "database.tables",
                "database.migrations",
                "database.privileges",
            ]
            .iter()
            .any(|id| st(id) == "skip"),
        "the login works but a database check did not run",
    );
    rule(
        st("database.login") == "pass"
            && c.get("runtime.logs")
                .is_some_and(|l| l["cause"] == "db-unreachable"),
        "the logs say the database is unreachable but the login works",
    );
    // The simulated cluster DNS answers in every built-in: from a debug pod it never fails.
    rule(
        !matches!(st("network.dns"), "pass" | "skip"),
        "network.dns does not pass with a working cluster DNS",
    );
    found
}

#[test]
fn list_names_every_builtin_with_one_line() {
    let home = tempfile::tempdir().expect("tmp");
    let out = elsadoctor(home.path())
        .args(["demo", "--list"])
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(0));
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    for name in BUILTINS {
        let line = stdout
            .lines()
            .find(|l| l.split_whitespace().next() == Some(name))
            .unwrap_or_else(|| panic!("{name} listed: {stdout}"));
        assert!(line.len() > name.len() + 20, "a description: {line}");
    }
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with("crash-loop") && l.ends_with("(default)")),
        "{stdout}"
    );
    assert!(stdout.contains("--scenario NAME"), "{stdout}");
}

#[test]
fn an_unknown_name_is_one_line_with_the_names_exit_2() {
    let home = tempfile::tempdir().expect("tmp");
    let out = elsadoctor(home.path())
        .args(["demo", "--scenario", "heathy"])
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with("elsadoctor: unknown demo scenario \"heathy\""),
        "{err}"
    );
    for name in BUILTINS {
        assert!(err.contains(name), "{err}");
    }
    assert!(out.stdout.is_empty());
}

#[test]
fn help_teaches_list_and_scenario() {
    let home = tempfile::tempdir().expect("tmp");
    let out = elsadoctor(home.path())
        .args(["demo", "--help"])
        .output()
        .expect("runs");
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(help.contains("--list"), "{help}");
    assert!(help.contains("--scenario <NAME|DIR>"), "{help}");
    assert!(
        help.contains("demo --scenario healthy --vantage debug-pod"),
        "{help}"
    );
}

#[test]
fn each_run_says_what_it_shows() {
    for (name, vantage) in [
        ("healthy", "port-forward"),
        ("guide-option-a", "port-forward"),
    ] {
        let (out, _) = run(name, vantage);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.is_empty(),
            "a default run writes nothing to stderr: {err}"
        );
        let report: Value = serde_json::from_slice(&out.stdout).expect("json");
        let scenario = report["target"]["scenario"].as_str().unwrap_or_default();
        assert!(scenario.starts_with(&format!("{name}: ")), "{report:#}");
        assert_eq!(scenario.lines().count(), 1, "{scenario}");
    }
}

#[test]
fn healthy_is_healthy_from_this_machine_and_from_a_debug_pod() {
    for vantage in ["port-forward", "debug-pod"] {
        let (out, c) = run("healthy", vantage);
        assert_eq!(out.status.code(), Some(0), "{vantage}: {c:?}");
        let bad: Vec<(&String, &str)> = c
            .iter()
            .map(|(id, v)| (id, v["status"].as_str().unwrap_or("")))
            .filter(|(_, s)| matches!(*s, "fail" | "unknown"))
            .collect();
        assert!(bad.is_empty(), "{vantage}: {bad:?}");
        for id in [
            "database.login",
            "database.tables",
            "database.migrations",
            "database.privileges",
            "network.service",
        ] {
            assert_eq!(status(&c, id), "pass", "{vantage}: {id}: {:?}", c.get(id));
        }
        assert!(
            message(&c, "database.migrations").contains("3.5"),
            "{}",
            message(&c, "database.migrations")
        );
        assert!(
            contradictions(&c).is_empty(),
            "{vantage}: {:?}",
            contradictions(&c)
        );
    }
}

#[test]
fn healthy_with_a_debug_pod_resolves_and_connects_through_the_cluster_network() {
    let (_, c) = run("healthy", "debug-pod");
    assert_eq!(
        status(&c, "network.dns"),
        "pass",
        "{:?}",
        c.get("network.dns")
    );
    assert!(
        message(&c, "network.dns").contains("as postgres.elsa.svc.cluster.local"),
        "the search list completed the short name: {}",
        message(&c, "network.dns")
    );
    assert_eq!(
        status(&c, "network.tcp"),
        "pass",
        "{:?}",
        c.get("network.tcp")
    );
    // The probe pod's login arrived through the Service, not the port-forward.
    let login = &c["database.login"];
    assert!(
        login
            .to_string()
            .contains("debug-pod through elsadoctor-probe-"),
        "{login}"
    );
}

#[test]
fn crash_loop_agrees_the_database_is_unreachable_from_everywhere() {
    for vantage in ["port-forward", "debug-pod"] {
        let (out, c) = run("crash-loop", vantage);
        assert_eq!(out.status.code(), Some(1));
        assert_eq!(status(&c, "workload.pods"), "fail");
        assert_eq!(status(&c, "network.service"), "fail");
        assert_eq!(status(&c, "database.login"), "fail");
        assert!(
            contradictions(&c).is_empty(),
            "{vantage}: {:?}",
            contradictions(&c)
        );
        if vantage == "debug-pod" {
            // The name resolves (the Service exists); nothing answers behind its ClusterIP.
            assert_eq!(
                status(&c, "network.dns"),
                "pass",
                "{:?}",
                c.get("network.dns")
            );
            assert_eq!(status(&c, "network.tcp"), "fail");
            assert!(
                message(&c, "network.tcp").contains("refused"),
                "{:?}",
                c.get("network.tcp")
            );
        }
    }
}

#[test]
fn guide_option_a_stays_on_sqlite_and_never_uses_its_connection_string() {
    for vantage in ["port-forward", "debug-pod"] {
        let (out, c) = run("guide-option-a", vantage);
        assert_eq!(out.status.code(), Some(1));
        assert_eq!(status(&c, "config.provider"), "fail");
        assert_eq!(status(&c, "config.env-expansion"), "fail");
        assert_ne!(status(&c, "runtime.sqlite-file"), "pass");
        assert_eq!(status(&c, "workload.pods"), "pass");
        assert!(
            contradictions(&c).is_empty(),
            "{vantage}: {:?}",
            contradictions(&c)
        );
    }
}

#[test]
fn two_demos_at_once_do_not_share_a_service_network() {
    // Each simulation moves its ClusterIPs until its listeners bind: both healthy runs find
    // their own database from their own debug pod.
    let a = std::thread::spawn(|| run("healthy", "debug-pod"));
    let b = std::thread::spawn(|| run("healthy", "debug-pod"));
    for r in [a.join().expect("a"), b.join().expect("b")] {
        let (out, c) = r;
        assert_eq!(out.status.code(), Some(0), "{c:?}");
        assert_eq!(status(&c, "network.tcp"), "pass");
    }
}
