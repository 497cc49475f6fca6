//! `-o markdown` and `--watch` from outside: the real binary against the simulated cluster.
//! The Markdown report is made to be pasted into a public issue, so it gets the same canary
//! test as the other outputs.

mod common;

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::sync::mpsc;
use std::time::Duration;

use common::Cluster;

const CANARY: &str = "CANARY-7f3a9c1e-DO-NOT-LEAK";

fn text(out: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn markdown_report_has_versions_table_and_fixes_and_no_secret() {
    let cluster = Cluster::start("canary-password").await;
    let manifests =
        std::fs::read_to_string(common::scenario_dir("canary-password").join("manifests.yaml"))
            .expect("manifests");
    assert!(manifests.contains(CANARY), "the test can fail");
    for args in [vec!["-o", "markdown"], vec!["-o", "markdown", "-vv"]] {
        let mut cmd = cluster.cmd();
        cmd.args(&args);
        let out = common::run(cmd).await;
        let all = text(&out);
        assert!(!all.contains(CANARY), "leaked with {args:?}:\n{all}");
        assert!(!all.contains(cluster.server.token()), "token leaked");
        let md = String::from_utf8_lossy(&out.stdout);
        assert!(md.starts_with("### elsadoctor report\n"), "{md}");
        assert!(md.contains("| Kubernetes | v1."), "{md}");
        assert!(md.contains("| Vantage | port-forward |"), "{md}");
        assert!(md.contains("| | Check | Result |"), "{md}");
        assert!(md.contains("`cluster.api`"), "{md}");
    }
}

#[test]
fn demo_markdown_is_labelled_and_details_the_failures() {
    let home = tempfile::tempdir().expect("tmp");
    let out = common::elsadoctor(home.path())
        .args(["demo", "-o", "markdown"])
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let md = String::from_utf8_lossy(&out.stdout);
    assert!(md.contains("SIMULATED"), "{md}");
    assert!(md.contains("##### ✖ fail `workload.pods`"), "{md}");
    assert!(md.contains("```sh\nkubectl --context sim -n elsa"), "{md}");
    assert!(
        !md.contains("##### ✔"),
        "passing checks get no details:\n{md}"
    );
}

#[test]
fn watch_reruns_reports_changes_and_ends_on_sigint_with_the_last_exit_code() {
    let home = tempfile::tempdir().expect("tmp");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_elsadoctor"))
        .args(["demo", "--watch", "200ms"])
        .env_clear()
        .env("HOME", home.path())
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("LANG", "C.UTF-8")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut seen = Vec::new();
    let mut summaries = 0;
    let mut changed = 0;
    while changed < 2 {
        let line = rx
            .recv_timeout(Duration::from_secs(30))
            .unwrap_or_else(|_| panic!("no third run within 30 s:\n{}", seen.join("\n")));
        summaries += usize::from(line.starts_with("Summary:"));
        changed += usize::from(line == "Changed since last run: nothing");
        seen.push(line);
    }
    assert_eq!(summaries, 3, "{}", seen.join("\n"));
    assert!(
        seen.iter()
            .any(|l| l.starts_with("(watching: next run in 200ms")),
        "{}",
        seen.join("\n")
    );
    let killed = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(killed.success());
    let status = child.wait().expect("wait");
    assert_eq!(
        status.code(),
        Some(1),
        "the demo's failures decide the exit code"
    );
}

#[test]
fn watch_needs_text_or_the_tui() {
    let home = tempfile::tempdir().expect("tmp");
    let out = common::elsadoctor(home.path())
        .args(["demo", "--watch", "--json"])
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("--watch works with"), "{err}");
}
