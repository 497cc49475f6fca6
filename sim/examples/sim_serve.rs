//! Serves a scenario from the simulated cluster and runs one command against it, for benchmarks:
//!
//! ```text
//! cargo run --release -p elsadoctor-sim --example sim_serve -- DIR [--latency-ms N] -- COMMAND [ARGS...]
//! ```
//!
//! The command runs with `KUBECONFIG` pointing at the simulation (so hyperfine or elsadoctor can
//! be the command). When it exits, one JSON line goes to stderr: the number of API requests
//! served and the longest chain of strictly sequential requests, the run's critical path.

use std::process::ExitCode;

use elsadoctor_sim::{Scenario, SimServer, longest_sequential_chain};

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(split) = args.iter().position(|a| a == "--") else {
        eprintln!("usage: sim_serve DIR [--latency-ms N] -- COMMAND [ARGS...]");
        return ExitCode::from(2);
    };
    let (ours, command) = (&args[..split], &args[split + 1..]);
    let Some(dir) = ours.first() else {
        eprintln!("sim_serve: a scenario directory is required");
        return ExitCode::from(2);
    };
    let latency = match ours.get(1..) {
        Some([flag, n]) if flag == "--latency-ms" => n.parse::<u64>().ok(),
        Some([]) => None,
        _ => {
            eprintln!("sim_serve: unexpected arguments {:?}", &ours[1..]);
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
    let server = match SimServer::start(scenario).await {
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
    eprintln!(
        "{{\"requests\":{},\"longestChain\":{},\"slowestServerUs\":{},\"slowestPath\":{:?}}}",
        log.len(),
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
