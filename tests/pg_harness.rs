//! Tests of the real-PostgreSQL harness itself (tests/common/pg.rs): the server starts, SCRAM and
//! TLS behave like a production server, the Elsa fixtures load with the right owner, the log
//! records client statements, cleanup works even when the test process is killed, and
//! `blackhole()` really hangs.

mod common;

use std::net::TcpStream;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::pg::{self, PgOptions, Postgres, Tls};
use tokio_postgres::NoTls;
use tokio_postgres::error::SqlState;

async fn connect(conn: &str) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
    let (client, connection) = tokio_postgres::connect(conn, NoTls).await?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(client)
}

fn server_error(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{} {}: {}", db.severity(), db.code().code(), db.message()),
        None => e.to_string(),
    }
}

#[test]
fn server_starts_and_answers() {
    let pg = Postgres::shared();
    eprintln!(
        "shared server started in {:?} (port {})",
        pg.started_in(),
        pg.port()
    );
    assert_eq!(pg.psql("postgres", "SELECT 1"), "1");
    assert_eq!(pg.host(), "127.0.0.1");
    assert!(pg.ca_cert().is_none());
    let settings = pg.psql(
        "postgres",
        "SELECT current_setting('listen_addresses'), current_setting('port'), \
                current_setting('log_statement'), current_setting('log_connections'), \
                current_setting('ssl'), current_setting('password_encryption'), \
                current_setting('unix_socket_directories')",
    );
    assert_eq!(
        settings,
        format!(
            "127.0.0.1|{}|all|on|off|scram-sha-256|{}",
            pg.port(),
            pg.socket_dir().display()
        )
    );
    // Several statements, one of which cannot run in a transaction block, in one call.
    pg.psql(
        "postgres",
        "CREATE DATABASE harness_multi; SELECT 1; DROP DATABASE harness_multi;",
    );
    let hba = pg.psql(
        "postgres",
        "SELECT type, auth_method FROM pg_hba_file_rules ORDER BY line_number",
    );
    assert_eq!(hba, "local|trust\nhost|scram-sha-256");
}

#[test]
fn psql_reports_errors() {
    let pg = Postgres::shared();
    let err = pg
        .try_psql(
            "postgres",
            "SELECT 1; SELECT * FROM no_such_table; SELECT 2",
        )
        .expect_err("an SQL error must fail psql");
    assert!(
        err.contains("relation \"no_such_table\" does not exist"),
        "{err}"
    );
    // ON_ERROR_STOP: nothing after the error runs, and the status is psql's 3.
    assert!(err.contains("exit status: 3"), "{err}");
}

#[tokio::test]
async fn scram_login_with_right_and_wrong_password() {
    let pg = Postgres::shared();
    pg.create_role("scram_user", "s3cret;pw");
    pg.create_database("scram_db", "scram_user");
    let stored = pg.psql(
        "postgres",
        "SELECT left(rolpassword, 14) FROM pg_authid WHERE rolname = 'scram_user'",
    );
    assert_eq!(stored, "SCRAM-SHA-256$");

    let client = connect(&pg.libpq_string("scram_db", "scram_user", "s3cret;pw"))
        .await
        .expect("login with the right password");
    let row = client
        .query_one("SELECT current_user::text, current_database()::text", &[])
        .await
        .expect("query");
    assert_eq!(row.get::<_, String>(0), "scram_user");
    assert_eq!(row.get::<_, String>(1), "scram_db");

    let Err(err) = connect(&pg.libpq_string("scram_db", "scram_user", "wrong")).await else {
        panic!("the wrong password must fail");
    };
    assert_eq!(
        err.code(),
        Some(&SqlState::INVALID_PASSWORD),
        "{}",
        server_error(&err)
    );
    assert!(
        server_error(&err).contains("password authentication failed for user \"scram_user\""),
        "{}",
        server_error(&err)
    );

    assert_eq!(
        pg.connection_string("scram_db", "scram_user", "s3cret;pw"),
        format!(
            "Host=127.0.0.1;Port={};Database=scram_db;Username=scram_user;Password=\"s3cret;pw\"",
            pg.port()
        )
    );
}

#[tokio::test]
async fn tls_required_refuses_plain_connections() {
    let pg = Postgres::start(PgOptions {
        tls: Tls::Required,
        ..PgOptions::default()
    });
    eprintln!("Tls::Required server started in {:?}", pg.started_in());
    pg.create_role("tls_user", "tls-pw");
    pg.create_database("tls_db", "tls_user");

    let Err(err) = connect(&pg.libpq_string("tls_db", "tls_user", "tls-pw")).await else {
        panic!("a plain connection must be refused");
    };
    let text = server_error(&err);
    assert_eq!(
        err.code(),
        Some(&SqlState::INVALID_AUTHORIZATION_SPECIFICATION),
        "{text}"
    );
    assert!(
        text.contains("no pg_hba.conf entry") && text.contains("no encryption"),
        "{text}"
    );

    // A verifying TLS client accepts the certificate for both names in its SAN.
    let ca = pg
        .ca_cert()
        .expect("a CA for Tls::Required")
        .display()
        .to_string();
    let base = pg.libpq_string("tls_db", "tls_user", "tls-pw");
    for host in ["host=localhost hostaddr=127.0.0.1", "host=127.0.0.1"] {
        let conninfo = format!("{base} {host} sslmode=verify-full sslrootcert='{ca}'");
        let out = pg
            .psql_client(
                &conninfo,
                "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            )
            .unwrap_or_else(|e| panic!("verify-full with {host}: {e}"));
        assert_eq!(out, "t");
    }
    let plain = pg
        .psql_client(&format!("{base} sslmode=disable"), "SELECT 1")
        .expect_err("sslmode=disable must be refused");
    assert!(plain.contains("no pg_hba.conf entry"), "{plain}");
}

#[tokio::test]
async fn tls_on_allows_both_and_options_apply_and_stop_cleans_up() {
    let pg = Postgres::start(PgOptions {
        tls: Tls::On,
        max_connections: Some(7),
        superuser_reserved: Some(2),
    });
    assert_eq!(
        pg.psql(
            "postgres",
            "SELECT current_setting('max_connections'), \
                    current_setting('superuser_reserved_connections'), current_setting('ssl')"
        ),
        "7|2|on"
    );
    pg.create_role("both_user", "pw");
    let plain = connect(&pg.libpq_string("postgres", "both_user", "pw"))
        .await
        .expect("Tls::On accepts plain connections");
    let ssl = plain
        .query_one(
            "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            &[],
        )
        .await
        .expect("query");
    assert!(!ssl.get::<_, bool>(0));
    drop(plain);
    let ca = pg
        .ca_cert()
        .expect("a CA for Tls::On")
        .display()
        .to_string();
    let conninfo = format!(
        "{} sslmode=verify-full sslrootcert='{ca}'",
        pg.libpq_string("postgres", "both_user", "pw")
    );
    assert_eq!(
        pg.psql_client(
            &conninfo,
            "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()"
        )
        .expect("TLS login"),
        "t"
    );

    let dir: PathBuf = pg.socket_dir().to_path_buf();
    let port = pg.port();
    pg.stop();
    pg.stop();
    let refused = TcpStream::connect_timeout(
        &std::net::SocketAddr::from(([127, 0, 0, 1], port)),
        Duration::from_secs(2),
    );
    assert!(refused.is_err(), "the port still answers after stop()");
    assert!(dir.exists());
    drop(pg);
    assert!(!dir.exists(), "{} survived Drop", dir.display());
}

#[tokio::test]
async fn load_elsa_35_as_owner() {
    let pg = Postgres::shared();
    pg.create_role("elsa35", "elsa35-pw");
    pg.create_database("elsa35", "elsa35");
    pg.load_elsa("elsa35", "elsa35", "3.5");

    assert_eq!(
        pg.psql(
            "elsa35",
            r#"SELECT to_regclass('"Elsa"."WorkflowDefinitions"') IS NOT NULL"#
        ),
        "t"
    );
    assert_eq!(
        pg.psql(
            "elsa35",
            r#"SELECT count(*) FROM "Elsa"."__EFMigrationsHistory""#
        ),
        "11"
    );
    assert_eq!(
        pg.psql(
            "elsa35",
            r#"SELECT max("MigrationId") FILTER (WHERE "MigrationId" LIKE '%V3_4'),
                      max("MigrationId"), min("ProductVersion"), max("ProductVersion")
               FROM "Elsa"."__EFMigrationsHistory""#
        ),
        "20250222190906_V3_4|20250530104953_V3_5|9.0.4|9.0.4"
    );
    assert_eq!(
        pg.psql(
            "elsa35",
            r#"SELECT to_regclass('"Elsa"."BookmarkQueueDeadLetterItems"') IS NULL,
                      count(*) FILTER (WHERE relname = 'BookmarkQueueItems')
               FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
               WHERE n.nspname = 'Elsa' AND c.relkind = 'r'"#
        ),
        "t|1"
    );
    // Everything in "Elsa" belongs to the role, as if its own migrations had created it.
    assert_eq!(
        pg.psql(
            "elsa35",
            r#"SELECT pg_get_userbyid(nspowner) FROM pg_namespace WHERE nspname = 'Elsa'
               UNION ALL
               SELECT string_agg(DISTINCT pg_get_userbyid(relowner), ',') FROM pg_class c
               JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'Elsa'
               UNION ALL
               SELECT count(*)::text FROM pg_tables WHERE schemaname = 'Elsa'"#
        ),
        "elsa35\nelsa35\n10"
    );

    let client = connect(&pg.libpq_string("elsa35", "elsa35", "elsa35-pw"))
        .await
        .expect("login as the Elsa role");
    client
        .execute(
            r#"INSERT INTO "Elsa"."WorkflowDefinitions"
               ("Id", "DefinitionId", "MaterializerName", "IsReadonly", "CreatedAt", "Version",
                "IsLatest", "IsPublished")
               VALUES ('1', 'd1', 'Json', false, now(), 1, true, true)"#,
            &[],
        )
        .await
        .expect("the owner can write");
    let err = client
        .query_one(
            r#"SELECT "OriginalSource" FROM "Elsa"."WorkflowDefinitions""#,
            &[],
        )
        .await
        .expect_err("3.5 has no OriginalSource column");
    assert_eq!(err.code(), Some(&SqlState::UNDEFINED_COLUMN));
}

#[test]
fn load_elsa_38() {
    let pg = Postgres::shared();
    pg.create_role("elsa38", "elsa38-pw");
    pg.create_database("elsa38", "elsa38");
    pg.load_elsa("elsa38", "elsa38", "3.8");
    assert_eq!(
        pg.psql(
            "elsa38",
            r#"SELECT count(*), max("MigrationId") FILTER (WHERE "MigrationId" LIKE '2025111%'),
                      max("MigrationId")
               FROM "Elsa"."__EFMigrationsHistory""#
        ),
        "15|20251116182753_V3_6|20260520121653_V3_8"
    );
    assert_eq!(
        pg.psql(
            "elsa38",
            r#"SELECT to_regclass('"Elsa"."BookmarkQueueDeadLetterItems"') IS NOT NULL,
                      (SELECT count(*) FROM pg_tables WHERE schemaname = 'Elsa'),
                      (SELECT count(*) FROM information_schema.columns
                       WHERE table_schema = 'Elsa' AND table_name = 'WorkflowDefinitions'
                         AND column_name = 'OriginalSource'),
                      (SELECT string_agg(DISTINCT tableowner, ',') FROM pg_tables
                       WHERE schemaname = 'Elsa')"#
        ),
        "t|11|1|elsa38"
    );
}

#[tokio::test]
async fn log_records_client_statements_and_connections() {
    let pg = Postgres::shared();
    pg.create_role("log_user", "log-pw");
    let marker = format!("harness-marker-{}", std::process::id());
    let client = connect(&pg.libpq_string("postgres", "log_user", "log-pw"))
        .await
        .expect("login");
    client
        .simple_query(&format!("SELECT '{marker}-simple'"))
        .await
        .expect("simple query");
    client
        .query_one(&format!("SELECT '{marker}-extended'::text"), &[])
        .await
        .expect("extended query");
    let log = pg.log();
    assert!(
        log.contains(&format!("statement: SELECT '{marker}-simple'")),
        "{log}"
    );
    assert!(
        log.contains(&format!("SELECT '{marker}-extended'::text")),
        "{log}"
    );
    assert!(
        log.contains("connection authorized: user=log_user database=postgres"),
        "{log}"
    );
}

#[tokio::test]
async fn blackhole_hangs_instead_of_refusing() {
    let (addr, _guard) = pg::blackhole();
    assert!(addr.ip().is_loopback());
    let t = Instant::now();
    let res =
        tokio::time::timeout(Duration::from_secs(2), tokio::net::TcpStream::connect(addr)).await;
    assert!(
        res.is_err(),
        "connect to {addr} returned {res:?} instead of hanging"
    );
    assert!(t.elapsed() >= Duration::from_secs(2));
}
