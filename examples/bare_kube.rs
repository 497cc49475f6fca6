//! The baseline of `bench/connections.sh`: a bare kube-rs client (default configuration from
//! `KUBECONFIG`, `Client::try_default`, kube-rs's own HTTP/1.1 stack) making the same plain
//! reads as a recorded `elsadoctor` run, with the same dependency structure.
//!
//! ```text
//! bare_kube REQUEST_LOG
//! ```
//!
//! `REQUEST_LOG` is a simulated API server's request log (`SIM_SERVE_LOG`, one JSON object a
//! line). Its requests are replayed in waves: a request joins the wave after the latest one
//! answered before it arrived, and each wave's requests are sent concurrently. The `101`
//! upgrades are replayed through kube-rs's own `exec` (the same command, its output read to
//! the end) and `portforward` (the tunnel opened and closed again, with nothing sent through
//! it: less than the doctor, which logs in and calls the health endpoint through them).
//! `--plain-only` replays the plain reads alone (the earlier baseline). Nothing is done with
//! the answers.

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
    let plain_only = std::env::args().any(|a| a == "--plain-only");
    let Some(path) = std::env::args().skip(1).find(|a| a != "--plain-only") else {
        eprintln!("usage: bare_kube REQUEST_LOG [--plain-only]");
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
            Ok(r) if r.status != 101 || !plain_only => log.push(r),
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
                    if r.status == 101 {
                        return upgrade(client, r).await;
                    }
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

/// Replays an exec or port-forward upgrade with kube-rs's own API.
async fn upgrade(client: kube::Client, r: &Recorded) -> bool {
    use kube::api::{Api, AttachParams};
    // /api/v1/namespaces/{ns}/pods/{name}/{exec|portforward}
    let parts: Vec<&str> = r.path.trim_start_matches('/').split('/').collect();
    let [_, _, _, ns, _, name, verb] = parts.as_slice() else {
        return false;
    };
    let query: Vec<(String, String)> = r
        .query
        .as_deref()
        .unwrap_or_default()
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (decode(k), decode(v)))
        .collect();
    let api: Api<k8s_openapi::api::core::v1::Pod> = Api::namespaced(client, ns);
    match *verb {
        "exec" => {
            let command: Vec<String> = query
                .iter()
                .filter(|(k, _)| k == "command")
                .map(|(_, v)| v.clone())
                .collect();
            let mut params = AttachParams::default().stdin(false).stderr(true);
            if let Some((_, c)) = query.iter().find(|(k, _)| k == "container") {
                params = params.container(c.clone());
            }
            let Ok(mut process) = api.exec(name, command, &params).await else {
                return false;
            };
            if let Some(mut out) = process.stdout() {
                let _ = tokio::io::copy(&mut out, &mut tokio::io::sink()).await;
            }
            process.join().await.is_ok()
        }
        "portforward" => {
            let ports: Vec<u16> = query
                .iter()
                .filter(|(k, _)| k == "ports")
                .filter_map(|(_, v)| v.parse().ok())
                .collect();
            let Ok(mut forwarder) = api.portforward(name, &ports).await else {
                return false;
            };
            for port in &ports {
                drop(forwarder.take_stream(*port));
            }
            forwarder.abort();
            true
        }
        _ => false,
    }
}

/// Percent-decoding of a query component (`+` is a space).
fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
                match u8::from_str_radix(hex, 16) {
                    Ok(b) => {
                        out.push(b);
                        i += 2;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}
