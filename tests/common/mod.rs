//! Shared helpers for the integration tests: the real binary in a scrubbed environment, and a
//! simulated cluster per test.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use assert_cmd::Command;
use elsadoctor::sim::{Scenario, SimServer};

/// The binary with an environment that holds nothing of the developer's: no KUBECONFIG, a HOME
/// with no ~/.kube, no colour, a UTF-8 locale unless a test sets another.
pub fn elsadoctor(home: &Path) -> Command {
    let mut cmd = Command::cargo_bin("elsadoctor").expect("binary built");
    cmd.env_clear()
        .env("HOME", home)
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("LANG", "C.UTF-8")
        .env("NO_COLOR", "1");
    cmd
}

pub fn scenario_dir(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/scenarios")
        .join(name)
}

/// A running simulated cluster with its kubeconfig written to a temp dir.
pub struct Cluster {
    pub server: SimServer,
    pub dir: tempfile::TempDir,
    pub kubeconfig: PathBuf,
}

impl Cluster {
    pub async fn start(scenario: &str) -> Self {
        let scenario = Scenario::load_dir(&scenario_dir(scenario)).expect("scenario loads");
        Self::start_with(scenario).await
    }

    pub async fn start_with(scenario: Scenario) -> Self {
        let server = SimServer::start(scenario).await.expect("sim starts");
        let dir = tempfile::tempdir().expect("tempdir");
        let kubeconfig = dir.path().join("kubeconfig");
        std::fs::write(&kubeconfig, server.kubeconfig_yaml()).expect("write kubeconfig");
        Self {
            server,
            dir,
            kubeconfig,
        }
    }

    /// The binary pointed at this cluster.
    pub fn cmd(&self) -> Command {
        let mut cmd = elsadoctor(self.dir.path());
        cmd.arg("--kubeconfig").arg(&self.kubeconfig);
        cmd
    }
}

/// Runs the binary on a blocking thread so the simulated cluster keeps serving meanwhile.
pub async fn run(mut cmd: Command) -> std::process::Output {
    tokio::task::spawn_blocking(move || cmd.output().expect("runs"))
        .await
        .expect("join")
}

/// The JSON report of a finished run.
pub fn json(output: &std::process::Output) -> serde_json::Value {
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not JSON ({e}):\n{}\nstderr:\n{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )
    })
}

/// `id → status` from a JSON report.
pub fn statuses(report: &serde_json::Value) -> std::collections::BTreeMap<String, String> {
    report["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .map(|c| {
            (
                c["id"].as_str().unwrap_or_default().to_owned(),
                c["status"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}
