//! Measures the debug pod's lifecycle against the simulated cluster, for `bench/debug_pod.sh`:
//!
//! ```text
//! cargo run --release --example debug_pod_lifecycle -- ELSADOCTOR_BINARY [RUNS] [INTERRUPTED]
//! ```
//!
//! One simulated cluster (the healthy scenario) whose kubelet stand-in runs probe pods with the
//! given binary and a resolv.conf whose only nameserver never answers, so every probe pod lives
//! for the run's `--timeout`. Then:
//! 1. RUNS runs of `elsadoctor --vantage debug-pod --timeout 1s` in a row; INTERRUPTED of them,
//!    spread evenly, get SIGINT after a pseudo-random delay between 0 and 1.5 s (a fixed seed,
//!    so reruns interrupt at the same moments). After every run, the pods labelled
//!    `app.kubernetes.io/managed-by=elsadoctor` are counted in the simulated cluster.
//! 2. Five runs with DNS and the database host both unanswerable and `--timeout 2s`: wall time
//!    against the bound of timeout + 2 s.
//!
//! One JSON document goes to stdout.

use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use elsadoctor_sim::{KubeletConfig, Scenario, SimServer};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams};

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(exe) = args.first() else {
        eprintln!("usage: debug_pod_lifecycle ELSADOCTOR_BINARY [RUNS] [INTERRUPTED]");
        return ExitCode::from(2);
    };
    let runs: usize = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(50);
    let interrupted: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(10);
    match measure(exe, runs, interrupted).await {
        Ok(doc) => {
            println!("{doc:#}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("debug_pod_lifecycle: {e}");
            ExitCode::from(1)
        }
    }
}

async fn measure(exe: &str, runs: usize, interrupted: usize) -> Result<serde_json::Value, String> {
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    let silent_addr = silent.local_addr().map_err(|e| e.to_string())?;
    let tmp = tempfile::tempdir().map_err(|e| e.to_string())?;
    let conf = tmp.path().join("resolv.conf");
    std::fs::write(
        &conf,
        format!("search elsa.svc.cluster.local svc.cluster.local cluster.local\noptions ndots:5 timeout:1\nnameserver {silent_addr}\n"),
    )
    .map_err(|e| e.to_string())?;
    let dir =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/scenarios/healthy");
    let scenario = Scenario::load_dir(&dir)
        .map_err(|e| e.to_string())?
        .with_kubelet(KubeletConfig::new(exe).with_resolv_conf(&conf));
    let server = SimServer::start(scenario)
        .await
        .map_err(|e| e.to_string())?;
    let kubeconfig = tmp.path().join("kubeconfig");
    std::fs::write(&kubeconfig, server.kubeconfig_yaml()).map_err(|e| e.to_string())?;
    let kc = kube::config::Kubeconfig::from_yaml(&server.kubeconfig_yaml())
        .map_err(|e| e.to_string())?;
    let cfg = kube::Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .map_err(|e| e.to_string())?;
    let pods: Api<Pod> = Api::namespaced(
        kube::Client::try_from(cfg).map_err(|e| e.to_string())?,
        "elsa",
    );
    let count = async || -> Result<usize, String> {
        let lp = ListParams::default().labels("app.kubernetes.io/managed-by=elsadoctor");
        Ok(pods.list(&lp).await.map_err(|e| e.to_string())?.items.len())
    };

    let mut seed: u64 = 0x5eed_e15a;
    let mut next = || {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        seed >> 33
    };
    let every = if interrupted == 0 {
        usize::MAX
    } else {
        runs / interrupted.max(1)
    };
    let mut exit_codes = std::collections::BTreeMap::<String, usize>::new();
    let mut left_after_run = Vec::new();
    let mut signalled = 0;
    for i in 0..runs {
        let mut child = Command::new(exe)
            .arg("--kubeconfig")
            .arg(&kubeconfig)
            .args(["--json", "--vantage", "debug-pod", "--timeout", "1s"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| e.to_string())?;
        if signalled < interrupted && i % every == every - 1 {
            let delay = Duration::from_millis(next() % 1500);
            tokio::time::sleep(delay).await;
            let _ = Command::new("kill")
                .args(["-INT", &child.id().to_string()])
                .status();
            signalled += 1;
        }
        let status = tokio::task::spawn_blocking(move || child.wait())
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())?;
        let code = status.code().map_or("signal".to_owned(), |c| c.to_string());
        *exit_codes.entry(code).or_default() += 1;
        left_after_run.push(count().await?);
    }
    let left = count().await?;

    let mut walls = Vec::new();
    for _ in 0..5 {
        let t0 = Instant::now();
        let status = Command::new(exe)
            .arg("--kubeconfig")
            .arg(&kubeconfig)
            .args(["--json", "--vantage", "debug-pod", "--timeout", "2s"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .map_err(|e| e.to_string())?;
        walls.push((t0.elapsed().as_secs_f64() * 1000.0, status.code()));
    }
    server.shutdown().await;
    drop(silent);
    let ms: Vec<f64> = walls.iter().map(|(w, _)| *w).collect();
    let max = ms.iter().copied().fold(0.0, f64::max);
    Ok(serde_json::json!({
        "lifecycle": {
            "runs": runs,
            "interruptedWithSigint": signalled,
            "exitCodes": exit_codes,
            "podsLeftAfterEachRunMax": left_after_run.iter().max(),
            "podsLeftAtEnd": left,
        },
        "unanswerable": {
            "timeoutMs": 2000,
            "boundMs": 4000,
            "wallMs": ms,
            "maxOverBound": max / 4000.0,
        }
    }))
}
