//! One connection per run (issue 11, item 5): a whole `elsadoctor` run against the simulated
//! API server over TLS, counted from the server's side. Plain API requests share one HTTP/2
//! connection negotiated by ALPN; each upgrade (exec, port-forward) has its own HTTP/1.1
//! connection; without `h2` in the server's ALPN (or in cleartext) HTTP/1.1 connections are
//! kept alive and reused.

mod common;

use std::collections::BTreeSet;

use elsadoctor_sim::{RecordedRequest, Scenario, SimServer, Transport};

struct Run {
    server: SimServer,
    code: i32,
    stderr: String,
}

async fn run(transport: Transport) -> Run {
    let scenario = Scenario::load_dir(&common::scenario_dir("healthy")).expect("scenario loads");
    let server = SimServer::start_with(scenario, transport)
        .await
        .expect("sim starts");
    let dir = tempfile::tempdir().expect("tempdir");
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(&kubeconfig, server.kubeconfig_yaml()).expect("write kubeconfig");
    let mut cmd = common::elsadoctor(dir.path());
    cmd.arg("--kubeconfig").arg(&kubeconfig).arg("--json");
    let out = common::run(cmd).await;
    Run {
        server,
        code: out.status.code().unwrap_or(-1),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn upgraded(r: &RecordedRequest) -> bool {
    r.status == 101
}

/// The run reached the pod through both kinds of upgrade, and each one succeeded.
fn assert_upgrades_worked(log: &[RecordedRequest]) {
    for sub in ["exec", "portforward"] {
        assert!(
            log.iter()
                .any(|r| r.subresource.as_deref() == Some(sub) && upgraded(r)),
            "no successful {sub} upgrade in {log:#?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_whole_run_opens_one_connection_plus_one_per_upgrade() {
    let run = run(Transport::Tls).await;
    // The healthy cluster has no database behind its postgres pod: the login fails (exit 1).
    assert!(
        run.code == 0 || run.code == 1,
        "exit {}: {}",
        run.code,
        run.stderr
    );
    let log = run.server.requests();
    let conns = run.server.connections();
    assert_upgrades_worked(&log);

    let plain: Vec<&RecordedRequest> = log.iter().filter(|r| !upgraded(r)).collect();
    let upgrades: Vec<&RecordedRequest> = log.iter().filter(|r| upgraded(r)).collect();
    assert!(plain.len() >= 10, "{plain:#?}");
    let plain_conns: BTreeSet<u64> = plain.iter().map(|r| r.connection).collect();
    assert_eq!(plain_conns.len(), 1, "plain requests on {plain_conns:?}");
    assert!(plain.iter().all(|r| r.version == "HTTP/2.0"), "{plain:#?}");
    let shared = plain_conns.first().copied().unwrap_or_default();
    let upgrade_conns: BTreeSet<u64> = upgrades.iter().map(|r| r.connection).collect();
    assert_eq!(upgrade_conns.len(), upgrades.len(), "{upgrades:#?}");
    assert!(!upgrade_conns.contains(&shared));
    assert!(
        upgrades.iter().all(|r| r.version == "HTTP/1.1"),
        "{upgrades:#?}"
    );

    let stats = run.server.connection_stats();
    assert_eq!(stats.accepted, 1 + upgrades.len() as u64, "{conns:#?}");
    assert_eq!(stats.tls_handshakes, stats.accepted, "{conns:#?}");
    // The upgrades resume sessions from earlier connections (the server issues tickets as
    // Go's does, and all connections share one client session store). Each ticket is used
    // once and a connection brings two, so when the three upgrades overlap one of them may
    // still need a full handshake; the shared connection itself always does.
    assert!(stats.tls_resumed >= 1, "{conns:#?}");
    assert!(
        !conns
            .iter()
            .find(|c| c.id == shared)
            .is_some_and(|c| c.resumed),
        "{conns:#?}"
    );
    assert_eq!(stats.h2, 1, "{conns:#?}");
    assert_eq!(stats.http1, upgrades.len() as u64, "{conns:#?}");
    let h2 = conns
        .iter()
        .find(|c| c.id == shared)
        .expect("the shared connection");
    assert_eq!(h2.protocol, "h2");
    assert_eq!(h2.requests, plain.len() as u64);
}

/// Against a server without HTTP/2 (TLS offering only `http/1.1`, or cleartext) the run still
/// works, over kept-alive HTTP/1.1 connections that carry several requests each.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_h2_http1_connections_are_kept_alive_and_reused() {
    for transport in [Transport::TlsHttp1, Transport::Plain] {
        let run = run(transport).await;
        assert!(
            run.code == 0 || run.code == 1,
            "{transport:?}: exit {}: {}",
            run.code,
            run.stderr
        );
        let log = run.server.requests();
        let conns = run.server.connections();
        assert_upgrades_worked(&log);
        assert!(log.iter().all(|r| r.version == "HTTP/1.1"), "{transport:?}");
        let stats = run.server.connection_stats();
        assert_eq!(stats.h2, 0, "{transport:?}: {conns:#?}");
        assert_eq!(
            stats.tls_handshakes,
            if transport == Transport::Plain {
                0
            } else {
                stats.accepted
            },
            "{transport:?}: {conns:#?}"
        );
        let plain = log.iter().filter(|r| !upgraded(r)).count() as u64;
        let upgrades = log.len() as u64 - plain;
        // Fewer connections than requests: some carried more than one.
        assert!(
            stats.accepted < plain + upgrades,
            "{transport:?}: {} connections for {} requests",
            stats.accepted,
            log.len()
        );
        assert!(
            conns.iter().any(|c| c.requests > 1),
            "{transport:?}: {conns:#?}"
        );
    }
}

/// A kubeconfig whose CA did not sign the server's certificate is refused at the handshake,
/// on one clear line, exit 2 or a failed connectivity check: never a panic, and no HTTP/2
/// connection is left half-made.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_ca_is_refused() {
    let scenario = Scenario::load_dir(&common::scenario_dir("healthy")).expect("scenario loads");
    let server = SimServer::start(scenario).await.expect("sim starts");
    let dir = tempfile::tempdir().expect("tempdir");
    let kubeconfig = dir.path().join("kubeconfig");
    let yaml = server.kubeconfig_yaml();
    let ca_line = yaml
        .lines()
        .find(|l| l.contains("certificate-authority-data"))
        .expect("CA in kubeconfig")
        .to_owned();
    // A valid certificate that did not sign the server's: the server's own (not a CA).
    let wrong =
        std::fs::read(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("sim/tls/server.crt"))
            .expect("server cert");
    let wrong_b64 = base64_encode(&wrong);
    let yaml = yaml.replace(
        &ca_line,
        &format!("    certificate-authority-data: {wrong_b64}"),
    );
    std::fs::write(&kubeconfig, yaml).expect("write kubeconfig");
    let mut cmd = common::elsadoctor(dir.path());
    cmd.arg("--kubeconfig").arg(&kubeconfig).arg("--json");
    let out = common::run(cmd).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_ne!(out.status.code(), Some(0), "{stdout}");
    assert!(
        stdout.contains("certificate") || stderr.contains("certificate"),
        "{stdout}\n{stderr}"
    );
    assert!(server.requests().is_empty());
    assert_eq!(server.connection_stats().tls_handshakes, 0);
    assert!(!stdout.contains(server.token()) && !stderr.contains(server.token()));
}

fn base64_encode(data: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(T[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}
