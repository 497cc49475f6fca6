//! The binary as a user meets it: help, the catalogue, explain, and bad input. Every error is
//! one line on stderr prefixed `elsadoctor:`, exit code 2, never a panic or a backtrace.

mod common;

use std::time::{Duration, Instant};

use common::{elsadoctor, json, statuses};
use predicates::prelude::*;

fn one_line_error(output: &std::process::Output) -> String {
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert_eq!(output.status.code(), Some(2), "stderr: {stderr}");
    assert_eq!(
        stderr.lines().count(),
        1,
        "one line expected, got:\n{stderr}"
    );
    assert!(stderr.starts_with("elsadoctor: "), "{stderr}");
    assert!(
        !stderr.contains("panicked") && !stderr.contains("RUST_BACKTRACE"),
        "{stderr}"
    );
    assert!(output.stdout.is_empty(), "nothing on stdout for an error");
    stderr
}

#[test]
fn help_teaches_and_exits_zero() {
    let home = tempfile::tempdir().expect("tmp");
    elsadoctor(home.path())
        .arg("--help")
        .assert()
        .success()
        .stdout(predicate::str::contains("elsadoctor demo"))
        .stdout(predicate::str::contains("--deployment"))
        .stdout(predicate::str::contains("Exit codes"));
}

#[test]
fn unknown_flag_is_one_line_exit_2() {
    let home = tempfile::tempdir().expect("tmp");
    let out = elsadoctor(home.path())
        .arg("--frobnicate")
        .output()
        .expect("runs");
    let err = one_line_error(&out);
    assert!(err.contains("--frobnicate"), "{err}");
}

#[test]
fn a_bad_choice_names_the_possible_values_on_its_one_line() {
    let home = tempfile::tempdir().expect("tmp");
    let out = elsadoctor(home.path())
        .args(["--vantage", "pod"])
        .output()
        .expect("runs");
    let err = one_line_error(&out);
    assert!(
        err.contains("possible values: auto, here, port-forward, debug-pod, ephemeral"),
        "{err}"
    );
}

#[test]
fn bad_duration_is_one_line_exit_2() {
    let home = tempfile::tempdir().expect("tmp");
    let out = elsadoctor(home.path())
        .args(["--timeout", "fast"])
        .output()
        .expect("runs");
    let err = one_line_error(&out);
    assert!(err.contains("not a duration"), "{err}");
}

#[test]
fn missing_kubeconfig_file() {
    let home = tempfile::tempdir().expect("tmp");
    let out = elsadoctor(home.path())
        .args(["--kubeconfig", "/nonexistent/kubeconfig"])
        .output()
        .expect("runs");
    let err = one_line_error(&out);
    assert!(err.contains("/nonexistent/kubeconfig"), "{err}");
}

#[test]
fn garbage_kubeconfig() {
    let home = tempfile::tempdir().expect("tmp");
    let path = home.path().join("kc");
    std::fs::write(&path, "{{{ this is not yaml: [").expect("write");
    let out = elsadoctor(home.path())
        .arg("--kubeconfig")
        .arg(&path)
        .output()
        .expect("runs");
    let err = one_line_error(&out);
    assert!(err.contains("cannot read kubeconfig"), "{err}");
}

#[test]
fn no_kubeconfig_anywhere_and_not_in_a_pod() {
    let home = tempfile::tempdir().expect("tmp");
    let out = elsadoctor(home.path()).output().expect("runs");
    let err = one_line_error(&out);
    assert!(err.contains("no kubeconfig found"), "{err}");
}

const KUBECONFIG_CLOSED_PORT: &str = "apiVersion: v1
kind: Config
clusters:
- name: c
  cluster: {server: 'http://127.0.0.1:PORT'}
users:
- name: u
  user: {token: not-a-real-token}
contexts:
- name: dev
  context: {cluster: c, user: u, namespace: elsa}
current-context: dev
";

/// A loopback port with nothing listening (bound, then released).
fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

#[test]
fn unknown_context_lists_the_available_ones() {
    let home = tempfile::tempdir().expect("tmp");
    let path = home.path().join("kc");
    std::fs::write(&path, KUBECONFIG_CLOSED_PORT.replace("PORT", "1")).expect("write");
    let out = elsadoctor(home.path())
        .arg("--kubeconfig")
        .arg(&path)
        .args(["--context", "prod"])
        .output()
        .expect("runs");
    let err = one_line_error(&out);
    assert!(err.contains("\"prod\"") && err.contains("dev"), "{err}");
}

#[test]
fn unreachable_api_fails_cluster_api_skips_the_rest_within_the_deadline() {
    let home = tempfile::tempdir().expect("tmp");
    let path = home.path().join("kc");
    std::fs::write(
        &path,
        KUBECONFIG_CLOSED_PORT.replace("PORT", &closed_port().to_string()),
    )
    .expect("write");
    let started = Instant::now();
    let out = elsadoctor(home.path())
        .env("KUBECONFIG", &path)
        .args(["--json", "--deadline", "10s"])
        .output()
        .expect("runs");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "took {:?}",
        started.elapsed()
    );
    assert_eq!(out.status.code(), Some(1));
    let report = json(&out);
    let st = statuses(&report);
    assert_eq!(st["cluster.api"], "fail");
    for (id, status) in &st {
        if id != "cluster.api" {
            assert_eq!(status, "skip", "{id}");
        }
    }
    let api = &report["checks"][0];
    assert_eq!(api["cause"], "unreachable");
    assert!(
        api["message"]
            .as_str()
            .unwrap_or("")
            .contains("onnection refused"),
        "{api}"
    );
    assert_eq!(report["target"]["context"], "dev");
    assert_eq!(report["target"]["namespace"], "elsa");
}

#[test]
fn checks_lists_the_catalogue_in_order() {
    let home = tempfile::tempdir().expect("tmp");
    let out = elsadoctor(home.path())
        .arg("checks")
        .output()
        .expect("runs");
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    let api = text.find("cluster.api").expect("cluster.api listed");
    let pods = text.find("workload.pods").expect("workload.pods listed");
    assert!(api < pods);
    assert!(text.contains("needs list pods, list events"));
}

#[test]
fn explain_shows_the_fix_and_unknown_ids_suggest_near_matches() {
    let home = tempfile::tempdir().expect("tmp");
    elsadoctor(home.path())
        .args(["explain", "workload.pods"])
        .assert()
        .success()
        .stdout(predicate::str::contains("When oom-killed"))
        .stdout(predicate::str::contains("kubectl --context {context}"));
    let out = elsadoctor(home.path())
        .args(["explain", "workload.pod"])
        .output()
        .expect("runs");
    let err = one_line_error(&out);
    assert!(err.contains("did you mean workload.pods"), "{err}");
}

/// `replay` on the demo's bundle: every output labelled REPLAY; a truncated, edited, foreign or
/// missing bundle is one line and exit 2.
#[test]
fn replay_labels_every_output_and_refuses_bad_bundles_in_one_line() {
    let home = tempfile::tempdir().expect("tmp");
    let bundle = home.path().join("facts.json");
    let demo = elsadoctor(home.path())
        .args(["demo", "-o", "json", "--dump-facts"])
        .arg(&bundle)
        .output()
        .expect("demo");
    let text = std::fs::read_to_string(&bundle).expect("bundle written");
    for (format, label) in [
        ("text", "REPLAY of facts gathered"),
        ("markdown", "REPLAY of facts"),
    ] {
        let out = elsadoctor(home.path())
            .args(["replay", "-o", format])
            .arg(&bundle)
            .output()
            .expect("replay");
        assert_eq!(out.status.code(), demo.status.code());
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(stdout.contains(label), "{format}: {stdout}");
        assert!(
            stdout.contains("SIMULATED"),
            "{format}: the demo's label stays"
        );
    }
    let md = elsadoctor(home.path())
        .args(["demo", "-o", "markdown"])
        .output()
        .expect("markdown");
    assert!(String::from_utf8_lossy(&md.stdout).contains("--dump-facts"));
    let replayed = json(
        &elsadoctor(home.path())
            .args(["replay", "--json"])
            .arg(&bundle)
            .output()
            .expect("json"),
    );
    assert_eq!(statuses(&replayed), statuses(&json(&demo)));
    assert!(replayed["target"]["replay"]["createdAt"].is_string());

    let write = |name: &str, body: &str| {
        let p = home.path().join(name);
        std::fs::write(&p, body).expect("write");
        p
    };
    let cases = [
        write("truncated.json", &text[..text.len() / 2]),
        write("edited.json", &text.replacen("\"state\":", "\"staat\":", 1)),
        write(
            "newer.json",
            &text.replacen("\"schemaVersion\": 1", "\"schemaVersion\": 99", 1),
        ),
        write("report.json", &String::from_utf8_lossy(&demo.stdout)),
        write("empty.json", ""),
        home.path().join("missing.json"),
    ];
    for p in cases {
        let out = elsadoctor(home.path())
            .arg("replay")
            .arg(&p)
            .output()
            .expect("replay");
        let err = one_line_error(&out);
        if p.ends_with("newer.json") {
            assert!(err.contains("schema 99"), "{err}");
        }
    }
}
