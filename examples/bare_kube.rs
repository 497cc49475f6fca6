//! The baseline of `bench/connections.sh`: a bare kube-rs client (default configuration from
//! `KUBECONFIG`, `Client::try_default`, kube-rs's own HTTP/1.1 stack) making the same plain
//! reads as a recorded `elsadoctor` run, with the same dependency structure.
//!
//! ```text
//! bare_kube REQUEST_LOG
//! ```
//!
//! `REQUEST_LOG` is a simulated API server's request log (`SIM_SERVE_LOG`, one JSON object a
//! line). Its plain requests (not the `101` upgrades, which a bare client would not make) are
//! replayed in waves: a request joins the wave after the latest one answered before it arrived,
//! and each wave's requests are sent concurrently. Nothing is done with the answers.

use std::process::ExitCode;

use futures::future::join_all;

#[derive(serde::Deserialize)]
struct Recorded {
    method: String,
    path: String,
    query: Option<String>,
    namespace: Option<String>,
    status: u16,
    received_us: u64,
    answered_us: u64,
}

#[tokio::main]
async fn main() -> ExitCode {
    let Some(path) = std::env::args().nth(1) else {
        eprintln!("usage: bare_kube REQUEST_LOG");
        return ExitCode::from(2);
    };
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("bare_kube: {path}: {e}");
            return ExitCode::from(2);
        }
    };
    let mut log: Vec<Recorded> = Vec::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        match serde_json::from_str::<Recorded>(line) {
            Ok(r) if r.status != 101 => log.push(r),
            Ok(_) => {}
            Err(e) => {
                eprintln!("bare_kube: {path}: {e}");
                return ExitCode::from(2);
            }
        }
    }
    // Wave of each request: one more than the latest wave answered before it arrived.
    let mut waves = vec![0usize; log.len()];
    for i in 0..log.len() {
        waves[i] = (0..log.len())
            .filter(|&j| log[j].answered_us < log[i].received_us)
            .map(|j| waves[j] + 1)
            .max()
            .unwrap_or(0);
    }
    let client = match kube::Client::try_default().await {
        Ok(c) => c,
        Err(e) => {
            eprintln!("bare_kube: {e}");
            return ExitCode::from(2);
        }
    };
    let last = waves.iter().copied().max().unwrap_or(0);
    let mut failed = 0;
    for wave in 0..=last {
        let reads = log
            .iter()
            .zip(&waves)
            .filter(|(_, w)| **w == wave)
            .map(|(r, _)| {
                let client = client.clone();
                async move {
                    let uri = match &r.query {
                        Some(q) => format!("{}?{q}", r.path),
                        None => r.path.clone(),
                    };
                    let body = if r.method == "POST" {
                        serde_json::json!({
                            "apiVersion": "authorization.k8s.io/v1",
                            "kind": "SelfSubjectRulesReview",
                            "spec": {"namespace": r.namespace.clone().unwrap_or_default()}
                        })
                        .to_string()
                        .into_bytes()
                    } else {
                        Vec::new()
                    };
                    let req = hyper::Request::builder()
                        .method(r.method.as_str())
                        .uri(uri)
                        .header("content-type", "application/json")
                        .body(body);
                    match req {
                        Ok(req) => client.request_text(req).await.is_ok(),
                        Err(_) => false,
                    }
                }
            });
        failed += join_all(reads).await.into_iter().filter(|ok| !ok).count();
    }
    if failed > 0 {
        eprintln!("bare_kube: {failed} reads failed");
        return ExitCode::from(1);
    }
    ExitCode::SUCCESS
}
