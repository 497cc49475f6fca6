//! Shared helpers for the integration tests: the real binary in a scrubbed environment, and a
//! simulated cluster per test.
#![allow(dead_code)]

pub mod dns;
pub mod pg;

use std::path::{Path, PathBuf};

use assert_cmd::Command;
use elsadoctor_sim::{Scenario, SimServer};

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

/// How the shared test PostgreSQL is prepared for a scenario. By default: role `elsa` with the
/// password of the scenario's own `postgres-secret`, database `elsa` owned by it, Elsa 3.5's
/// schema and migration history.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DbSetup {
    /// `3.5` (default), `3.8`, or `none`.
    pub schema: Option<String>,
    /// A password for the role other than the Secret's (a wrong-password scenario).
    pub role_password: Option<String>,
    /// `false`: no database `elsa`.
    pub create_database: Option<bool>,
    /// Another role that owns Elsa's schema and tables (the app role then has no rights on them).
    pub owner: Option<String>,
    /// `false`: no role `elsa` at all.
    pub create_role: Option<bool>,
    /// SQL run as superuser in database `elsa` after the schema is loaded.
    pub extra_sql: Option<String>,
}

/// One PostgreSQL with TLS on for this test binary: the scenarios' connection strings say
/// `SSL Mode=VerifyCA`.
pub fn tls_server() -> &'static pg::Postgres {
    static SERVER: std::sync::OnceLock<pg::Postgres> = std::sync::OnceLock::new();
    SERVER.get_or_init(|| {
        pg::Postgres::start(pg::PgOptions {
            tls: pg::Tls::On,
            ..Default::default()
        })
    })
}

/// The scenario Secret's password (`postgres-secret`), as the pods would see it.
fn secret_password(manifests: &str) -> Option<String> {
    let docs: Vec<serde_json::Value> = serde_saphyr::from_multiple(manifests).ok()?;
    let secret = docs
        .into_iter()
        .find(|d| d["kind"] == "Secret" && d["metadata"]["name"] == "postgres-secret")?;
    let s: k8s_openapi::api::core::v1::Secret = serde_json::from_value(secret).ok()?;
    s.string_data
        .and_then(|m| m.get("password").cloned())
        .or_else(|| {
            s.data.and_then(|m| {
                m.get("password")
                    .map(|b| String::from_utf8_lossy(&b.0).into_owned())
            })
        })
}

/// The scenario's `postgres` pod, as its sim.yaml names it.
fn postgres_pod(sim_yaml: &str) -> Option<String> {
    let v: serde_json::Value = serde_saphyr::from_str(sim_yaml).ok()?;
    v["pods"]
        .as_array()?
        .iter()
        .find(|p| p["workload"] == "deployment/postgres")?["name"]
        .as_str()
        .map(str::to_owned)
}

/// Prepares the database and a copy of the scenario whose `Root Certificate` is the test
/// server's CA, served with the postgres pod's port 5432 forwarded to the real server.
pub fn prepare(dir: &Path, setup: &DbSetup, pg: &pg::Postgres) -> (tempfile::TempDir, Scenario) {
    let manifests = std::fs::read_to_string(dir.join("manifests.yaml")).expect("manifests");
    let sim = std::fs::read_to_string(dir.join("sim.yaml")).unwrap_or_default();
    pg.psql(
        "postgres",
        "DROP DATABASE IF EXISTS elsa WITH (FORCE); DROP ROLE IF EXISTS elsa;",
    );
    let password = setup
        .role_password
        .clone()
        .or_else(|| secret_password(&manifests))
        .unwrap_or_else(|| "elsa".to_owned());
    if let Some(owner) = &setup.owner {
        pg.psql(
            "postgres",
            &format!("DROP ROLE IF EXISTS {owner}; CREATE ROLE {owner};"),
        );
    }
    if setup.create_role != Some(false) {
        pg.create_role("elsa", &password);
    }
    if setup.create_database != Some(false) {
        let db_owner = if setup.create_role == Some(false) {
            "postgres"
        } else {
            "elsa"
        };
        pg.create_database("elsa", db_owner);
        match setup.schema.as_deref().unwrap_or("3.5") {
            "none" => {}
            v => pg.load_elsa("elsa", setup.owner.as_deref().unwrap_or(db_owner), v),
        }
        if let Some(sql) = &setup.extra_sql {
            pg.psql("elsa", sql);
        }
    }
    let manifests = match pg.ca_cert() {
        Some(ca) => manifests.replace("/etc/ssl/postgres/ca.crt", &ca.display().to_string()),
        None => manifests,
    };
    let tmp = tempfile::tempdir().expect("tmp");
    std::fs::write(tmp.path().join("manifests.yaml"), &manifests).expect("write");
    std::fs::write(tmp.path().join("sim.yaml"), &sim).expect("write");
    let mut scenario = Scenario::load_dir(tmp.path()).expect("scenario loads");
    if let Some(pod) = postgres_pod(&sim) {
        let ns = scenario.default_namespace().to_owned();
        let addr: std::net::SocketAddr = format!("{}:{}", pg.host(), pg.port())
            .parse()
            .expect("addr");
        scenario = scenario.with_port_forward(&ns, &pod, 5432, addr);
    }
    (tmp, scenario)
}

/// Tests of one binary share one PostgreSQL and its `elsa` role and database: one scenario at a
/// time holds them.
pub async fn database_lock() -> tokio::sync::MutexGuard<'static, ()> {
    static LOCK: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    LOCK.lock().await
}

/// A cluster serving a scenario, its real database prepared, and the lock on that database.
pub struct WithDatabase {
    pub cluster: Cluster,
    _tmp: tempfile::TempDir,
    _lock: tokio::sync::MutexGuard<'static, ()>,
}

impl Cluster {
    /// A fixture scenario served with its real PostgreSQL (default database setup).
    pub async fn start_with_database(name: &str) -> WithDatabase {
        Self::start_with_database_from(&scenario_dir(name), |s| s).await
    }

    /// The same for a scenario directory, with a chance to adjust the loaded scenario.
    pub async fn start_with_database_from(
        dir: &Path,
        adjust: impl FnOnce(Scenario) -> Scenario,
    ) -> WithDatabase {
        let lock = database_lock().await;
        let (tmp, scenario) = prepare(dir, &DbSetup::default(), tls_server());
        WithDatabase {
            cluster: Self::start_with(adjust(scenario)).await,
            _tmp: tmp,
            _lock: lock,
        }
    }
}
