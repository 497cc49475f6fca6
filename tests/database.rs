//! The database checks against real PostgreSQL servers configured for each situation: TLS
//! demanded or absent, a role or its rights missing, too few connections, a server that is down
//! or a host that never answers, and the direct `--vantage here`. Also: the doctor's session only
//! reads, and a run opens exactly one database connection.

mod common;

use std::time::{Duration, Instant};

use common::pg::{PgOptions, Postgres, Tls};
use common::{Cluster, DbSetup, database_lock, json, prepare, scenario_dir};
use serde_json::Value;

/// The healthy scenario with its manifests edited, served against `pg` (prepared per `setup`),
/// optionally forwarding the postgres pod somewhere else. Returns the report and exit code.
async fn run(
    pg: &Postgres,
    setup: DbSetup,
    edit: impl Fn(String) -> String,
    forward_to: Option<std::net::SocketAddr>,
    args: &[&str],
) -> (Value, i32, String) {
    run_with_env(pg, setup, edit, forward_to, args, &[]).await
}

/// [`run`], with `env` set for the doctor.
async fn run_with_env(
    pg: &Postgres,
    setup: DbSetup,
    edit: impl Fn(String) -> String,
    forward_to: Option<std::net::SocketAddr>,
    args: &[&str],
    env: &[(&str, &std::path::Path)],
) -> (Value, i32, String) {
    let src = scenario_dir("healthy");
    let dir = tempfile::tempdir().expect("tmp");
    let manifests = std::fs::read_to_string(src.join("manifests.yaml")).expect("manifests");
    std::fs::write(dir.path().join("manifests.yaml"), edit(manifests)).expect("write");
    std::fs::copy(src.join("sim.yaml"), dir.path().join("sim.yaml")).expect("copy");
    let (_tmp, mut scenario) = prepare(dir.path(), &setup, pg);
    if let Some(to) = forward_to {
        scenario = scenario.with_port_forward("elsa", "postgres-5b8f4c9d7-tq2zl", 5432, to);
    }
    let cluster = Cluster::start_with(scenario).await;
    let mut cmd = cluster.cmd();
    cmd.arg("--json").args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let before = pg.log().len();
    let out = common::run(cmd).await;
    let server_log = pg.log().get(before..).unwrap_or_default().to_owned();
    (json(&out), out.status.code().unwrap_or(-1), server_log)
}

fn check<'a>(report: &'a Value, id: &str) -> &'a Value {
    report["checks"]
        .as_array()
        .and_then(|a| a.iter().find(|c| c["id"] == id))
        .unwrap_or_else(|| panic!("no {id}"))
}

fn cause(report: &Value, id: &str) -> (String, String) {
    let c = check(report, id);
    (
        c["status"].as_str().unwrap_or("").to_owned(),
        c["cause"].as_str().unwrap_or("").to_owned(),
    )
}

fn ssl(mode: &str) -> impl Fn(String) -> String {
    let mode = mode.to_owned();
    move |m: String| m.replace("SSL Mode=VerifyCA", &format!("SSL Mode={mode}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthy_session_only_reads_and_uses_one_connection() {
    let _lock = database_lock().await;
    let pg = common::tls_server();
    let (report, code, log) = run(pg, DbSetup::default(), |m| m, None, &[]).await;
    assert_eq!(code, 0, "{report}");
    for id in [
        "database.login",
        "database.tables",
        "database.migrations",
        "database.privileges",
        "production.pool",
    ] {
        assert_eq!(
            check(&report, id)["status"],
            "pass",
            "{id}: {}",
            check(&report, id)
        );
    }
    // The server log (log_statement=all, log_connections=on) of the run.
    let connections = log.matches("connection authorized: user=elsa").count();
    assert_eq!(connections, 1, "one connection per run:\n{log}");
    let statements: Vec<&str> = log
        .lines()
        .filter_map(|l| {
            // `LOG:  statement: …` (simple protocol) or `LOG:  execute <name>: …` (extended).
            l.split_once("LOG:  statement: ").or_else(|| {
                l.split_once("LOG:  execute ")
                    .and_then(|(_, rest)| rest.split_once(": "))
            })
        })
        .map(|(_, s)| s.trim())
        .filter(|s| !s.is_empty())
        .collect();
    assert!(!statements.is_empty(), "{log}");
    for s in &statements {
        let upper = s.to_ascii_uppercase();
        assert!(
            upper.starts_with("SELECT"),
            "a statement that is not a read: {s}"
        );
    }
}

/// VerifyCA with no Root Certificate the doctor can read trusts the system's roots, as Npgsql
/// does on Linux. The bundle file (`SSL_CERT_FILE`) lacks the server's CA; the certificate
/// directory (`SSL_CERT_DIR`) has it: OpenSSL looks there for an issuer the bundle lacks, and
/// so does the doctor, which reads the bundle first and the directory only then. Without the
/// CA in the directory the same login is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_ca_finds_a_root_only_the_certificate_directory_has() {
    let _lock = database_lock().await;
    let pg = common::tls_server();
    let tmp = tempfile::tempdir().expect("tmp");
    let bundle = tmp.path().join("bundle.pem");
    // A bundle of one unrelated root: the simulated API server's test-only CA.
    std::fs::write(&bundle, elsadoctor_sim::CA_PEM).expect("bundle");
    let with_ca = tmp.path().join("with-ca");
    let without_ca = tmp.path().join("without-ca");
    std::fs::create_dir(&with_ca).expect("dir");
    std::fs::create_dir(&without_ca).expect("dir");
    std::fs::copy(
        pg.ca_cert().expect("a TLS server"),
        with_ca.join("postgres-ca.pem"),
    )
    .expect("copy the CA");
    let no_root_cert = |m: String| m.replace(";Root Certificate=/etc/ssl/postgres/ca.crt", "");
    assert!(
        !no_root_cert(
            std::fs::read_to_string(scenario_dir("healthy").join("manifests.yaml"))
                .expect("manifests")
        )
        .contains("Root Certificate"),
        "the edit must leave the system's roots as the only trust"
    );
    for (dir, holds) in [(&with_ca, true), (&without_ca, false)] {
        let env = [
            ("SSL_CERT_FILE", bundle.as_path()),
            ("SSL_CERT_DIR", dir.as_path()),
        ];
        let (report, _, _) =
            run_with_env(pg, DbSetup::default(), no_root_cert, None, &[], &env).await;
        let login = check(&report, "database.login");
        if holds {
            assert_eq!(login["status"], "pass", "{login}");
        } else {
            assert_eq!(login["status"], "fail", "{login}");
            let text = login.to_string().to_ascii_lowercase();
            assert!(
                text.contains("certificate") || text.contains("tls"),
                "{login}"
            );
        }
    }
}

/// The server's certificate names `localhost`, the connection string `postgres`: VerifyCA
/// checks the chain only and logs in (the healthy run), VerifyFull also checks the name and
/// refuses.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_full_refuses_a_certificate_for_another_name() {
    let _lock = database_lock().await;
    let pg = common::tls_server();
    let (report, _, _) = run(pg, DbSetup::default(), ssl("VerifyFull"), None, &[]).await;
    let login = check(&report, "database.login");
    assert_eq!(login["status"], "fail", "{login}");
    assert!(
        login
            .to_string()
            .to_ascii_lowercase()
            .contains("certificate"),
        "{login}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn role_missing_and_rights_missing() {
    let _lock = database_lock().await;
    let pg = common::tls_server();
    // PostgreSQL does not reveal whether a role exists: a missing role fails like a wrong password.
    let setup = DbSetup {
        create_role: Some(false),
        ..Default::default()
    };
    let (report, _, _) = run(pg, setup, |m| m, None, &[]).await;
    assert_eq!(
        cause(&report, "database.login"),
        ("fail".into(), "wrong-password".into())
    );

    let setup = DbSetup {
        owner: Some("elsa_owner".into()),
        ..Default::default()
    };
    let (report, code, _) = run(pg, setup, |m| m, None, &[]).await;
    assert_eq!(code, 1);
    assert_eq!(cause(&report, "database.login").0, "pass");
    assert_eq!(cause(&report, "database.tables").0, "pass");
    assert_eq!(
        cause(&report, "database.privileges"),
        ("fail".into(), "no-table-rights".into())
    );
    let ev = check(&report, "database.privileges")["evidence"].to_string();
    assert!(
        ev.contains("WorkflowDefinitions") && ev.contains("SELECT"),
        "{ev}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_required_by_the_server_but_disabled_and_the_reverse() {
    let _lock = database_lock().await;
    let required = Postgres::start(PgOptions {
        tls: Tls::Required,
        ..Default::default()
    });
    let (report, _, _) = run(&required, DbSetup::default(), ssl("Disable"), None, &[]).await;
    assert_eq!(
        cause(&report, "database.login"),
        ("fail".into(), "tls-required".into())
    );

    let plain = Postgres::start(PgOptions::default());
    let (report, _, _) = run(&plain, DbSetup::default(), ssl("Require"), None, &[]).await;
    assert_eq!(
        cause(&report, "database.login"),
        ("fail".into(), "tls-unavailable".into())
    );
    // Prefer falls back to plain text, as Npgsql does.
    let (report, _, _) = run(&plain, DbSetup::default(), ssl("Prefer"), None, &[]).await;
    assert_eq!(cause(&report, "database.login").0, "pass");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pools_larger_than_the_server_allows() {
    let _lock = database_lock().await;
    let small = Postgres::start(PgOptions {
        tls: Tls::On,
        max_connections: Some(20),
        superuser_reserved: Some(3),
    });
    // 2 replicas × Maximum Pool Size 20 = 40 > 20 − 3.
    let (report, code, _) = run(&small, DbSetup::default(), |m| m, None, &[]).await;
    assert_eq!(
        cause(&report, "production.pool"),
        ("warn".into(), "exceeds".into())
    );
    assert_eq!(code, 0, "a warning alone does not fail the run");
    let ev = check(&report, "production.pool")["evidence"].to_string();
    assert!(
        ev.contains("2 × 20 = 40") && ev.contains("20 − superuser_reserved_connections 3 = 17"),
        "{ev}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_stopped_fails_fast() {
    let _lock = database_lock().await;
    let pg = common::tls_server();
    // A port nothing listens on, as after the server stopped.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr")
    };
    let started = Instant::now();
    let (report, code, _) = run(
        pg,
        DbSetup::default(),
        |m| m,
        Some(closed),
        &["--timeout", "5s"],
    )
    .await;
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(code, 1);
    assert_eq!(
        cause(&report, "database.login"),
        ("fail".into(), "refused".into())
    );
    assert_eq!(check(&report, "database.tables")["status"], "skip");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_that_never_answers_is_bounded_by_the_timeout() {
    let _lock = database_lock().await;
    let pg = common::tls_server();
    let (addr, _guard) = common::pg::blackhole();
    let started = Instant::now();
    let (report, code, _) = run(
        pg,
        DbSetup::default(),
        |m| m,
        Some(addr),
        &["--timeout", "2s"],
    )
    .await;
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(2 + 3),
        "bounded by --timeout, took {took:?}"
    );
    assert_eq!(code, 1);
    assert_eq!(
        cause(&report, "database.login"),
        ("fail".into(), "timeout".into()),
        "{}",
        check(&report, "database.login")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vantage_here_connects_directly() {
    let _lock = database_lock().await;
    let pg = common::tls_server();
    let host = format!("Host={};Port={}", pg.host(), pg.port());
    let direct = move |m: String| m.replace("Host=postgres;Port=5432", &host);
    let (report, _, _) = run(pg, DbSetup::default(), direct, None, &["--vantage", "here"]).await;
    assert_eq!(report["vantage"], "here");
    assert_eq!(
        cause(&report, "database.login").0,
        "pass",
        "{}",
        check(&report, "database.login")
    );
    // From inside the pod, 127.0.0.1 would be the pod itself: the config check says so.
    assert_eq!(
        cause(&report, "config.connection-string"),
        ("fail".into(), "localhost".into())
    );
    let vantage = check(&report, "database.login")["evidence"].to_string();
    assert!(vantage.contains("\"here\""), "{vantage}");
}

/// The same situations from `--vantage here`: a direct connection to the server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_findings_from_vantage_here() {
    let _lock = database_lock().await;
    let pg = common::tls_server();
    let host = format!("Host={};Port={}", pg.host(), pg.port());
    let direct = move |m: String| m.replace("Host=postgres;Port=5432", &host);
    let here = ["--vantage", "here"];
    let cases: Vec<(DbSetup, &str, (&str, &str))> = vec![
        (
            DbSetup {
                role_password: Some("not-the-secret".into()),
                ..Default::default()
            },
            "database.login",
            ("fail", "wrong-password"),
        ),
        (
            DbSetup {
                create_database: Some(false),
                ..Default::default()
            },
            "database.login",
            ("fail", "database-missing"),
        ),
        (
            DbSetup {
                schema: Some("none".into()),
                ..Default::default()
            },
            "database.tables",
            ("fail", "schema-missing"),
        ),
        (
            DbSetup {
                schema: Some("3.8".into()),
                ..Default::default()
            },
            "database.migrations",
            ("fail", "ahead"),
        ),
    ];
    for (setup, id, (status, why)) in cases {
        let (report, _, _) = run(pg, setup, &direct, None, &here).await;
        assert_eq!(report["vantage"], "here");
        assert_eq!(
            cause(&report, id),
            (status.to_owned(), why.to_owned()),
            "{}",
            check(&report, id)
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tables_in_the_wrong_schema_and_history_missing() {
    let _lock = database_lock().await;
    let pg = common::tls_server();
    // The guide's picture: Elsa_* tables in public, no schema "Elsa".
    let setup = DbSetup {
        schema: Some("none".into()),
        extra_sql: Some(
            "CREATE TABLE public.\"Elsa_WorkflowDefinitions\" (id int); \
             CREATE TABLE public.\"Elsa_WorkflowInstances\" (id int);"
                .into(),
        ),
        ..Default::default()
    };
    let (report, _, _) = run(pg, setup, |m| m, None, &[]).await;
    assert_eq!(
        cause(&report, "database.tables"),
        ("fail".into(), "wrong-schema".into())
    );
    let ev = check(&report, "database.tables")["evidence"].to_string();
    assert!(ev.contains("public.Elsa_WorkflowDefinitions"), "{ev}");

    // Tables present, history table gone: created outside migrations.
    let setup = DbSetup {
        extra_sql: Some("DROP TABLE \"Elsa\".\"__EFMigrationsHistory\";".into()),
        ..Default::default()
    };
    let (report, _, _) = run(pg, setup, |m| m, None, &[]).await;
    assert_eq!(cause(&report, "database.tables").0, "pass");
    assert_eq!(
        cause(&report, "database.migrations"),
        ("fail".into(), "history-missing".into())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_external_host_cannot_be_reached_through_a_port_forward() {
    let _lock = database_lock().await;
    let pg = common::tls_server();
    let external = |m: String| {
        m.replace(
            "Host=postgres",
            "Host=elsa.abc123.eu-west-1.rds.amazonaws.com",
        )
    };
    let (report, code, _) = run(pg, DbSetup::default(), external, None, &[]).await;
    assert_eq!(code, 1);
    assert_eq!(
        cause(&report, "database.login"),
        ("unknown".into(), "external-host".into())
    );
    assert!(
        check(&report, "database.login")["message"]
            .as_str()
            .unwrap_or("")
            .contains("--vantage here")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_history_names_the_ef_core_version_that_applied_it() {
    // Audit §7 row H: ProductVersion maps through row D; 9.0.9 is what 3.5.1–3.5.2 shipped.
    let _lock = database_lock().await;
    let pg = common::tls_server();
    let setup = DbSetup {
        extra_sql: Some(
            "UPDATE \"Elsa\".\"__EFMigrationsHistory\" SET \"ProductVersion\" = '9.0.9' \
             WHERE \"MigrationId\" = '20250530104953_V3_5';"
                .into(),
        ),
        ..DbSetup::default()
    };
    let (report, _, _) = run(pg, setup, |m| m, None, &[]).await;
    let ev = check(&report, "database.migrations")["evidence"].to_string();
    assert!(
        ev.contains("20250530104953_V3_5 applied by EF Core 9.0.9 (official builds: 3.5.1–3.5.2)"),
        "{ev}"
    );
    assert!(
        ev.contains("newest applied migration 20250530104953_V3_5 (applied by Elsa 3.5 or later)"),
        "{ev}"
    );
}

/// Issue 12 item 3: the guide's per-context history tables in `public` (and a lower-case schema
/// `elsa`) hold migration rows, `"Elsa"."__EFMigrationsHistory"` does not exist: the history
/// is elsewhere, named with what it holds (ELSA-FACTS §6; elsa-audit §2 for Quartz's row in
/// the default schema, which alone is not Elsa's history).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_guides_history_tables_are_not_where_elsa_looks() {
    let _lock = database_lock().await;
    let pg = common::tls_server();
    let setup = DbSetup {
        schema: Some("none".into()),
        extra_sql: Some(include_str!("fixtures/sql/guide-history-tables.sql").into()),
        ..Default::default()
    };
    let (report, code, _) = run(pg, setup, |m| m, None, &[]).await;
    assert_eq!(code, 1);
    assert_eq!(
        cause(&report, "database.migrations"),
        ("fail".into(), "history-elsewhere".into())
    );
    let c = check(&report, "database.migrations");
    let msg = c["message"].as_str().unwrap_or_default();
    assert!(
        msg.contains("5 migration(s) are recorded in public.\"__EFMigrationsHistory_Management\", public.\"__EFMigrationsHistory_Runtime\""),
        "{msg}"
    );
    assert!(msg.contains("\"Elsa\".\"__EFMigrationsHistory\""), "{msg}");
    let ev = c["evidence"].to_string();
    assert!(ev.contains("latest 20240610184839_V3_2"), "{ev}");
    assert!(ev.contains("latest 20231029150749_AddQuartz"), "{ev}");

    // A lower-case schema `elsa` with the history Elsa would have written in "Elsa".
    let setup = DbSetup {
        schema: Some("none".into()),
        extra_sql: Some(
            "CREATE SCHEMA elsa AUTHORIZATION elsa; \
             CREATE TABLE elsa.\"__EFMigrationsHistory\" (\"MigrationId\" varchar(150) PRIMARY KEY, \"ProductVersion\" varchar(32) NOT NULL); \
             INSERT INTO elsa.\"__EFMigrationsHistory\" VALUES ('20231015122234_Initial', '9.0.4'); \
             ALTER TABLE elsa.\"__EFMigrationsHistory\" OWNER TO elsa;"
                .into(),
        ),
        ..Default::default()
    };
    let (report, _, _) = run(pg, setup, |m| m, None, &[]).await;
    assert_eq!(
        cause(&report, "database.migrations"),
        ("fail".into(), "history-elsewhere".into())
    );
    let msg = check(&report, "database.migrations")["message"].to_string();
    assert!(msg.contains("elsa.\\\"__EFMigrationsHistory\\\""), "{msg}");

    // Quartz's row alone in public is no history of Elsa's: nothing migrated, nothing elsewhere.
    let setup = DbSetup {
        schema: Some("none".into()),
        extra_sql: Some(
            "CREATE TABLE public.\"__EFMigrationsHistory\" (\"MigrationId\" varchar(150) PRIMARY KEY, \"ProductVersion\" varchar(32) NOT NULL); \
             INSERT INTO public.\"__EFMigrationsHistory\" VALUES ('20231029150749_AddQuartz', '9.0.4'); \
             ALTER TABLE public.\"__EFMigrationsHistory\" OWNER TO elsa;"
                .into(),
        ),
        ..Default::default()
    };
    let (report, _, _) = run(pg, setup, |m| m, None, &[]).await;
    assert_eq!(cause(&report, "database.migrations").0, "skip");

    // With Elsa's own history in place, other tables do not matter.
    let setup = DbSetup {
        extra_sql: Some(include_str!("fixtures/sql/guide-history-tables.sql").into()),
        ..Default::default()
    };
    let (report, _, _) = run(pg, setup, |m| m, None, &[]).await;
    assert_eq!(cause(&report, "database.migrations").0, "pass");
}
