//! `elsadoctor probe`, the real binary, against a real DNS server (in-process hickory-server),
//! real TCP listeners, a temp directory standing for the container's `/`, and a real PostgreSQL:
//! the JSON it prints (read back with the crate's own `ProbeReport`), its exit codes, that no
//! password reaches its output, and that its probes run concurrently.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::dns::{TestDns, blackhole_nameserver, pod_resolv_conf};
use elsadoctor::facts::{DbErrorKind, DbObservation, Probe};
use elsadoctor::gather::dns::DnsOutcome;
use elsadoctor::gather::tcp::TcpOutcome;
use elsadoctor::probe::{ProbeReport, ResolvConfSummary};

/// The binary in a scrubbed environment, probing with this resolv.conf.
fn probe(home: &Path, resolv_conf: &Path) -> assert_cmd::Command {
    let mut cmd = common::elsadoctor(home);
    cmd.arg("probe").arg("--resolv-conf").arg(resolv_conf);
    cmd
}

struct Run {
    report: ProbeReport,
    code: i32,
    stdout: String,
    stderr: String,
    took: Duration,
}

async fn run(cmd: assert_cmd::Command) -> Run {
    let t0 = Instant::now();
    let out = common::run(cmd).await;
    let took = t0.elapsed();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(
        stdout.trim_end().lines().count(),
        1,
        "one line of JSON:\n{stdout}\nstderr:\n{stderr}"
    );
    let report: ProbeReport = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("not a ProbeReport ({e}):\n{stdout}\nstderr:\n{stderr}"));
    Run {
        report,
        code: out.status.code().unwrap_or(-1),
        stdout,
        stderr,
        took,
    }
}

fn write_conf(dir: &Path, text: &str) -> std::path::PathBuf {
    let path = dir.join("resolv.conf");
    std::fs::write(&path, text).expect("write resolv.conf");
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resolves_with_the_search_list_and_connects() {
    let dns = TestDns::start().await;
    dns.add_a("postgres.elsa.svc.cluster.local", "127.0.0.1")
        .await;
    dns.add_a("postgres.db.svc.cluster.local", "127.0.0.1")
        .await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let dir = tempfile::tempdir().expect("tmp");
    let conf = write_conf(dir.path(), &dns.resolv_conf("elsa"));
    let mut cmd = probe(dir.path(), &conf);
    cmd.args(["--dns", "postgres", "--dns", "postgres.db"])
        .args(["--dns", "postgres.elsa.svc.cluster.local."])
        .arg("--tcp")
        .arg(format!("postgres:{port}"));
    let r = run(cmd).await;
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    let ResolvConfSummary::Read { ndots, search, .. } = &r.report.resolv_conf else {
        panic!("resolv.conf read: {:?}", r.report.resolv_conf);
    };
    assert_eq!(*ndots, 5);
    assert_eq!(search[0], "elsa.svc.cluster.local");

    let [short, other_ns, fqdn] = &r.report.dns[..] else {
        panic!("three results: {:?}", r.report.dns);
    };
    assert_eq!(
        short.answered_by.as_deref(),
        Some("postgres.elsa.svc.cluster.local")
    );
    let names: Vec<&str> = other_ns.attempts.iter().map(|a| a.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "postgres.db.elsa.svc.cluster.local",
            "postgres.db.svc.cluster.local"
        ],
        "the names tried before the one that answered"
    );
    assert_eq!(fqdn.attempts.len(), 1);
    assert_eq!(
        r.report.tcp[0].outcome,
        TcpOutcome::Connected {
            address: format!("127.0.0.1:{port}").parse().expect("addr")
        }
    );
    // The wire format the debug pod's logs carry.
    let v: serde_json::Value = serde_json::from_str(&r.stdout).expect("json");
    assert_eq!(v["schemaVersion"], 1);
    assert_eq!(v["tool"]["name"], "elsadoctor");
    assert_eq!(v["dns"][1]["attempts"][0]["outcome"]["kind"], "nxDomain");
    assert_eq!(v["dns"][1]["attempts"][0]["rcode"], "NXDOMAIN");
    assert_eq!(v["dns"][1]["answeredBy"], "postgres.db.svc.cluster.local");
    assert!(v["dns"][1]["attempts"][0]["elapsedMs"].is_u64());
    assert_eq!(v["tcp"][0]["outcome"]["kind"], "connected");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nxdomain_servfail_and_timeout_fail_the_run_each_in_its_own_words() {
    let dns = TestDns::start().await;
    dns.servfail_zone("broken.svc.cluster.local");
    let dir = tempfile::tempdir().expect("tmp");
    let conf = write_conf(dir.path(), &dns.resolv_conf("elsa"));
    let mut cmd = probe(dir.path(), &conf);
    cmd.args(["--dns", "nothere", "--dns", "db.broken.svc.cluster.local."]);
    let r = run(cmd).await;
    assert_eq!(r.code, 1);
    assert_eq!(r.report.dns[0].outcome, DnsOutcome::NxDomain);
    assert_eq!(r.report.dns[0].attempts.len(), 4);
    assert_eq!(r.report.dns[1].outcome, DnsOutcome::ServFail);

    let (silent, _socket) = blackhole_nameserver();
    let conf = write_conf(dir.path(), &pod_resolv_conf(&[silent], "elsa"));
    let mut cmd = probe(dir.path(), &conf);
    cmd.args(["--dns", "postgres", "--timeout", "1s"]);
    let r = run(cmd).await;
    assert_eq!(r.code, 1);
    assert_eq!(r.report.dns[0].outcome, DnsOutcome::Timeout);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_refused_and_timed_out() {
    let dir = tempfile::tempdir().expect("tmp");
    let conf = write_conf(dir.path(), "nameserver 127.0.0.1:1\n");
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr");
    let (hole, _guard) = common::pg::blackhole();
    let mut cmd = probe(dir.path(), &conf);
    cmd.arg("--tcp")
        .arg(closed.to_string())
        .arg("--tcp")
        .arg(hole.to_string())
        .args(["--timeout", "1s"]);
    let r = run(cmd).await;
    assert_eq!(r.code, 1);
    assert_eq!(r.report.tcp[0].outcome, TcpOutcome::Refused);
    assert_eq!(r.report.tcp[1].outcome, TcpOutcome::TimedOut);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dns_and_tcp_probes_run_concurrently() {
    let (silent, _socket) = blackhole_nameserver();
    let (hole, _guard) = common::pg::blackhole();
    let dir = tempfile::tempdir().expect("tmp");
    let conf = write_conf(dir.path(), &pod_resolv_conf(&[silent], "elsa"));
    let mut cmd = probe(dir.path(), &conf);
    cmd.args(["--dns", "postgres", "--dns", "elsa-db"])
        .args(["--tcp", "postgres:5432"])
        .arg("--tcp")
        .arg(hole.to_string())
        .args(["--timeout", "2s"]);
    let r = run(cmd).await;
    assert_eq!(r.code, 1);
    assert!(
        r.report
            .dns
            .iter()
            .all(|d| d.outcome == DnsOutcome::Timeout)
    );
    assert_eq!(
        r.report.tcp[0].outcome,
        TcpOutcome::NameNotResolved {
            dns: DnsOutcome::Timeout
        }
    );
    assert_eq!(r.report.tcp[1].outcome, TcpOutcome::TimedOut);
    // In series these four would take 8 s.
    assert!(r.took < Duration::from_secs(3), "took {:?}", r.took);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_are_listed_as_container_paths_below_the_root() {
    let dir = tempfile::tempdir().expect("tmp");
    let root = dir.path().join("rootfs");
    std::fs::create_dir_all(root.join("app")).expect("mkdir");
    std::fs::write(root.join("app/Elsa.Server.Web.dll"), b"dll").expect("write");
    std::fs::write(root.join("app/elsa.sqlite.db"), b"sqlite").expect("write");
    std::fs::write(root.join("app/elsa.sqlite.db-wal"), b"").expect("write");
    let conf = write_conf(dir.path(), "");

    // The simulated kubelet's way: the environment.
    let mut cmd = probe(dir.path(), &conf);
    cmd.env("ELSADOCTOR_PROBE_ROOT", &root).args([
        "--files",
        "/app/*.dll",
        "--files",
        "/app/*.db*",
    ]);
    let r = run(cmd).await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.report.root, root);
    let paths: Vec<Vec<&str>> = r
        .report
        .files
        .iter()
        .map(|l| l.entries.iter().map(|e| e.path.as_str()).collect())
        .collect();
    assert_eq!(
        paths,
        [
            vec!["/app/Elsa.Server.Web.dll"],
            vec!["/app/elsa.sqlite.db", "/app/elsa.sqlite.db-wal"]
        ]
    );
    assert_eq!(r.report.files[1].entries[0].size, 6);

    // An explicit --root wins over the environment; a bad pattern fails only its listing.
    let mut cmd = probe(dir.path(), &conf);
    cmd.env("ELSADOCTOR_PROBE_ROOT", "/nonexistent")
        .arg("--root")
        .arg(&root)
        .args([
            "--files",
            "/app/*.dll",
            "--files",
            "/app/[",
            "--files",
            "/app/*.wal",
        ]);
    let r = run(cmd).await;
    assert_eq!(r.code, 1);
    assert_eq!(r.report.files[0].entries.len(), 1);
    assert!(!r.report.files[1].errors.is_empty());
    assert!(r.report.files[2].is_ok() && r.report.files[2].entries.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_resolv_conf_comes_from_the_environment_unless_a_flag_says_otherwise() {
    let dns = TestDns::start().await;
    dns.add_a("postgres.elsa.svc.cluster.local", "10.96.0.20")
        .await;
    let dir = tempfile::tempdir().expect("tmp");
    let good = write_conf(dir.path(), &dns.resolv_conf("elsa"));
    let mut cmd = common::elsadoctor(dir.path());
    cmd.env("ELSADOCTOR_PROBE_RESOLV_CONF", &good)
        .args(["probe", "--dns", "postgres"]);
    let r = run(cmd).await;
    assert_eq!(r.code, 0, "{}", r.stdout);

    let mut cmd = common::elsadoctor(dir.path());
    cmd.env("ELSADOCTOR_PROBE_RESOLV_CONF", &good).args([
        "probe",
        "--dns",
        "postgres",
        "--resolv-conf",
        "/nonexistent/resolv.conf",
    ]);
    let r = run(cmd).await;
    assert_eq!(r.code, 1);
    assert!(matches!(
        r.report.resolv_conf,
        ResolvConfSummary::Unreadable { .. }
    ));
    assert!(matches!(r.report.dns[0].outcome, DnsOutcome::Error { .. }));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn db_logs_in_with_the_string_from_the_environment_and_never_prints_the_password() {
    let pg = common::pg::Postgres::shared();
    let canary = "Canary-pw-7f3a;x";
    pg.psql(
        "postgres",
        "DROP DATABASE IF EXISTS probe_db WITH (FORCE); DROP ROLE IF EXISTS probe_user;",
    );
    pg.create_role("probe_user", canary);
    pg.create_database("probe_db", "probe_user");
    let dir = tempfile::tempdir().expect("tmp");
    let conf = write_conf(dir.path(), "");
    let good = pg.connection_string("probe_db", "probe_user", canary);

    let mut cmd = probe(dir.path(), &conf);
    cmd.env("ConnectionStrings__PostgreSql", &good).args([
        "--db",
        "--db-env",
        "ConnectionStrings__PostgreSql",
        "--db-table",
        "WorkflowDefinitions",
    ]);
    let r = run(cmd).await;
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    let db = r.report.db.as_ref().expect("db probed");
    assert_eq!(db.env, "ConnectionStrings__PostgreSql");
    assert_eq!(db.target.user.as_deref(), Some("probe_user"));
    assert_eq!(db.target.vantage, "here");
    let Probe::Observed(DbObservation::Connected(facts)) = &db.observation else {
        panic!("logged in: {:?}", db.observation);
    };
    assert_eq!(facts.current_user, "probe_user");
    assert_eq!(facts.tables.len(), 1);
    assert!(!facts.tables[0].exists);
    for text in [&r.stdout, &r.stderr] {
        assert!(!text.contains("Canary-pw"), "password leaked: {text}");
    }

    // A wrong password: 28P01, exit 1, and the password still nowhere.
    let wrong = pg.connection_string("probe_db", "probe_user", "Canary-wrong-9c1e");
    let mut cmd = probe(dir.path(), &conf);
    cmd.env("ELSADOCTOR_DB_CONNECTION", &wrong).arg("--db");
    let r = run(cmd).await;
    assert_eq!(r.code, 1);
    let db = r.report.db.as_ref().expect("db probed");
    let Probe::Observed(DbObservation::Refused(e)) = &db.observation else {
        panic!("refused: {:?}", db.observation);
    };
    assert_eq!(
        (e.kind, e.sqlstate.as_deref()),
        (DbErrorKind::Server, Some("28P01"))
    );
    for text in [&r.stdout, &r.stderr] {
        assert!(!text.contains("Canary-"), "password leaked: {text}");
    }

    // The variable unset: the probe says so, and fails.
    let mut cmd = probe(dir.path(), &conf);
    cmd.arg("--db");
    let r = run(cmd).await;
    assert_eq!(r.code, 1);
    let db = r.report.db.as_ref().expect("db reported");
    assert!(
        matches!(&db.observation, Probe::NotAttempted(why) if why.contains("ELSADOCTOR_DB_CONNECTION")),
        "{:?}",
        db.observation
    );
}

#[test]
fn usage_errors_exit_2_with_one_line() {
    let dir = tempfile::tempdir().expect("tmp");
    for args in [
        vec!["probe"],
        vec!["probe", "--tcp", "postgres"],
        vec!["probe", "--tcp", "postgres:99999"],
        vec!["probe", "--db-table", "Workflows"],
        vec!["probe", "--dns", "x", "--timeout", "soon"],
    ] {
        let out = common::elsadoctor(dir.path())
            .args(&args)
            .output()
            .expect("runs");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert_eq!(stderr.trim_end().lines().count(), 1, "{args:?}: {stderr}");
        assert!(stderr.starts_with("elsadoctor: "), "{args:?}: {stderr}");
        assert!(out.stdout.is_empty(), "{args:?}");
    }
}

#[test]
fn help_teaches_with_examples() {
    let dir = tempfile::tempdir().expect("tmp");
    let out = common::elsadoctor(dir.path())
        .args(["probe", "--help"])
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(0));
    let help = String::from_utf8_lossy(&out.stdout);
    for needle in [
        "elsadoctor probe --dns postgres --tcp postgres:5432",
        "--db-env",
        "ELSADOCTOR_PROBE_ROOT",
        "ELSADOCTOR_PROBE_RESOLV_CONF",
        "Exit codes",
    ] {
        assert!(help.contains(needle), "{needle:?} missing from:\n{help}");
    }
}
