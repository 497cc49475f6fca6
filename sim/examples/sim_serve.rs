//! Serves a scenario from the simulated cluster and runs one command against it, for benchmarks:
//!
//! ```text
//! cargo run --release -p elsadoctor-sim --example sim_serve -- DIR [--latency-ms N] [--no-h2|--plain] -- COMMAND [ARGS...]
//! ```
//!
//! The command runs with `KUBECONFIG` pointing at the simulation (so hyperfine or elsadoctor can
//! be the command). When it exits, one JSON line goes to stderr: the number of API requests
//! served and the longest chain of strictly sequential requests, the run's critical path, and the
//! TCP connections accepted, TLS handshakes completed, and connections per protocol.
//! With `SIM_SERVE_LOG=FILE` the request log is written there, one JSON object a line.
//! `--no-h2` serves TLS offering only `http/1.1` in ALPN (the server is TLS with `h2` otherwise).
//! `--plain` serves cleartext HTTP: no TLS at all, the floor of what saving handshakes can buy.

use std::process::ExitCode;

use elsadoctor_sim::{Scenario, SimServer, Transport, longest_sequential_chain};

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(split) = args.iter().position(|a| a == "--") else {
        eprintln!("usage: sim_serve DIR [--latency-ms N] [--no-h2|--plain] -- COMMAND [ARGS...]");
        return ExitCode::from(2);
    };
    let (ours, command) = (&args[..split], &args[split + 1..]);
    let Some(dir) = ours.first() else {
        eprintln!("sim_serve: a scenario directory is required");
        return ExitCode::from(2);
    };
    let no_h2 = ours.iter().any(|a| a == "--no-h2");
    let plain = ours.iter().any(|a| a == "--plain");
    if no_h2 && plain {
        eprintln!("sim_serve: --no-h2 and --plain exclude each other");
        return ExitCode::from(2);
    }
    let rest: Vec<&String> = ours
        .iter()
        .skip(1)
        .filter(|a| *a != "--no-h2" && *a != "--plain")
        .collect();
    let latency = match rest.as_slice() {
        [flag, n] if *flag == "--latency-ms" => n.parse::<u64>().ok(),
        [] => None,
        _ => {
            eprintln!("sim_serve: unexpected arguments {rest:?}");
            return ExitCode::from(2);
        }
    };
    let path = std::path::Path::new(dir);
    let read = |name: &str| std::fs::read_to_string(path.join(name));
    let scenario = match (read("manifests.yaml"), latency) {
        (Ok(manifests), Some(ms)) => {
            let sim = read("sim.yaml").unwrap_or_default() + &format!("\nlatencyMs: {ms}\n");
            Scenario::from_documents(dir, &manifests, Some(&sim))
        }
        _ => Scenario::load_dir(path),
    };
    let scenario = match scenario {
        Ok(s) => s,
        Err(e) => {
            eprintln!("sim_serve: {e}");
            return ExitCode::from(2);
        }
    };
    let transport = if plain {
        Transport::Plain
    } else if no_h2 {
        Transport::TlsHttp1
    } else {
        Transport::Tls
    };
    let server = match SimServer::start_with(scenario, transport).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("sim_serve: {e}");
            return ExitCode::from(2);
        }
    };
    let Ok(dir) = tempfile::tempdir() else {
        eprintln!("sim_serve: cannot create a temporary directory");
        return ExitCode::from(2);
    };
    let kubeconfig = dir.path().join("kubeconfig");
    if let Err(e) = std::fs::write(&kubeconfig, server.kubeconfig_yaml()) {
        eprintln!("sim_serve: {e}");
        return ExitCode::from(2);
    }
    let Some((program, rest)) = command.split_first() else {
        eprintln!("sim_serve: no command after --");
        return ExitCode::from(2);
    };
    let mut child = std::process::Command::new(program);
    child.args(rest).env("KUBECONFIG", &kubeconfig);
    // The simulation keeps serving on the runtime's threads while this one waits.
    let status = tokio::task::spawn_blocking(move || child.status())
        .await
        .unwrap_or_else(|e| Err(std::io::Error::other(e)));
    let log = server.requests();
    let slowest = log
        .iter()
        .max_by_key(|r| r.answered_us.saturating_sub(r.received_us));
    if let Ok(path) = std::env::var("SIM_SERVE_LOG") {
        let lines: Vec<String> = log
            .iter()
            .map(|r| serde_json::to_string(r).unwrap_or_default())
            .collect();
        if let Err(e) = std::fs::write(&path, lines.join("\n") + "\n") {
            eprintln!("sim_serve: cannot write {path}: {e}");
        }
    }
    let conns = server.connection_stats();
    eprintln!(
        "{{\"requests\":{},\"connections\":{},\"tlsHandshakes\":{},\"tlsResumed\":{},\"h2Connections\":{},\"http1Connections\":{},\"longestChain\":{},\"slowestServerUs\":{},\"slowestPath\":{:?}}}",
        log.len(),
        conns.accepted,
        conns.tls_handshakes,
        conns.tls_resumed,
        conns.h2,
        conns.http1,
        longest_sequential_chain(&log),
        slowest.map_or(0, |r| r.answered_us.saturating_sub(r.received_us)),
        slowest.map_or(String::new(), |r| format!(
            "{} {}",
            r.path,
            r.query.clone().unwrap_or_default()
        ))
    );
    server.shutdown().await;
    match status {
        Ok(s) if s.success() => ExitCode::SUCCESS,
        Ok(_) => ExitCode::from(1),
        Err(e) => {
            eprintln!("sim_serve: cannot run {program}: {e}");
            ExitCode::from(2)
        }
    }
}
