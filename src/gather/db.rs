//! The database session: one tokio-postgres connection per run, made with the connection string
//! Elsa really uses, from the chosen vantage, and the read-only queries every database check
//! needs, issued together.
//!
//! Vantage `here` connects to the host directly; `port-forward` finds the Service the host names,
//! a ready pod behind it, and tunnels through the API's `pods/portforward` (tokio-postgres
//! `connect_raw` over the forwarded stream). TLS follows Npgsql's `SSL Mode`: Disable; Prefer and
//! Allow (TLS if offered, no verification); Require (TLS, no verification — Npgsql 8+ semantics);
//! VerifyCA (chain checked, not the name); VerifyFull (chain and name). Roots: the system store
//! plus `Root Certificate` when that file exists where elsadoctor runs. Everything is bounded by
//! `--timeout`. The session never writes: it runs `SELECT`s only.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Pod, Service};
use kube::Client;
use kube::api::{Api, ListParams};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_postgres::tls::MakeTlsConnect;

use crate::domain::image_contents::HistoryRow;
use crate::domain::npgsql::SslMode;
use crate::facts::{
    DbError, DbErrorKind, DbFacts, DbObservation, DbTarget, OtherHistory, Probe, TableRights,
};

/// Where the database probes run from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Vantage {
    Here,
    PortForward,
}

impl std::fmt::Display for Vantage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Vantage::Here => "here",
            Vantage::PortForward => "port-forward",
        })
    }
}

pub use crate::model::DbPlan as Plan;

/// Connects and observes; never errors: every outcome is an observation or a probe state.
pub async fn observe(
    plan: Plan,
    vantage: Vantage,
    client: Option<Client>,
    backend: Option<Result<Backend, Probe<()>>>,
    timeout: Duration,
) -> (DbTarget, Probe<DbObservation>) {
    let hosts = plan.conn.hosts();
    let Some(first) = hosts.first() else {
        return (
            DbTarget::default(),
            Probe::NotAttempted("the connection string names no host".into()),
        );
    };
    let mut target = DbTarget {
        host: first.host.clone(),
        port: first.port,
        database: plan.conn.database().map(str::to_owned),
        user: plan.conn.username().map(str::to_owned),
        ssl_mode: plan
            .conn
            .ssl_mode()
            .map(|m| m.to_string())
            .unwrap_or_default(),
        vantage: vantage.to_string(),
        via: None,
        max_pool_size: plan.conn.max_pool_size().ok(),
        password_is_reference: plan
            .password
            .as_ref()
            .is_some_and(|p| p.expose().starts_with("$(") && p.expose().ends_with(')')),
    };
    let config = match pg_config(&plan, timeout) {
        Ok(c) => c,
        Err(why) => return (target, Probe::NotAttempted(why)),
    };
    let ssl = plan.conn.ssl_mode().unwrap_or(SslMode::Prefer);
    let root_cert = plan
        .conn
        .get(crate::domain::npgsql::Keyword::RootCertificate)
        .map(str::to_owned);
    // The connector needs the system's roots for VerifyCA/VerifyFull; reading them overlaps
    // the port-forward.
    let tls = async move {
        let roots = match ssl {
            SslMode::VerifyCa | SslMode::VerifyFull => native_roots().await,
            _ => Arc::default(),
        };
        tls_connector(ssl, &roots, root_cert.as_deref())
    };
    let result = match vantage {
        Vantage::Here => {
            let tls = match tls.await {
                Ok(t) => t,
                Err(why) => return (target, Probe::NotAttempted(why)),
            };
            tokio::time::timeout(timeout, connect_here(config, tls))
                .await
                .map_err(|_| DbError::timeout(timeout))
                .and_then(|r| r)
        }
        Vantage::PortForward => {
            let (Some(client), Some(backend)) = (client, backend) else {
                return (target, Probe::NotAttempted("no cluster client".into()));
            };
            let (forwarded, tls) =
                futures::join!(forward(client, backend, target.port, timeout), tls);
            let tls = match tls {
                Ok(t) => t,
                Err(why) => return (target, Probe::NotAttempted(why)),
            };
            match forwarded {
                Err(probe) => return (target, probe),
                Ok((pod, stream, errors)) => {
                    target.via = Some(format!("pod/{pod}"));
                    let connected = tokio::time::timeout(
                        timeout,
                        connect_forwarded(config, stream, tls, target.host.clone()),
                    )
                    .await
                    .map_err(|_| DbError::timeout(timeout))
                    .and_then(|r| r);
                    match connected {
                        // The stream ended without a server error: the kubelet's reason, if
                        // it sent one, says why (nothing listens on the port, typically).
                        Err(e) if e.sqlstate.is_none() && e.kind != DbErrorKind::Timeout => {
                            match tokio::time::timeout(Duration::from_millis(500), errors).await {
                                Ok(Some(msg)) => Err(DbError {
                                    kind: if msg.contains("connection refused") {
                                        DbErrorKind::Refused
                                    } else {
                                        DbErrorKind::Other
                                    },
                                    sqlstate: None,
                                    message: crate::redact::text(&msg),
                                }),
                                _ => Err(e),
                            }
                        }
                        other => other,
                    }
                }
            }
        }
    };
    let client = match result {
        Ok(c) => c,
        Err(e) => return (target, Probe::Observed(DbObservation::Refused(e))),
    };
    let facts = tokio::time::timeout(timeout, queries(client, plan.tables)).await;
    let probe = match facts {
        Ok(Ok(f)) => Probe::Observed(DbObservation::Connected(f)),
        Ok(Err(e)) => Probe::failed(
            None,
            format!("a query failed: {}", DbError::from_pg(&e).message),
        ),
        Err(_) => Probe::failed(
            None,
            format!(
                "the queries took longer than --timeout {}",
                crate::report::humanize(timeout)
            ),
        ),
    };
    (target, probe)
}

/// Connects directly. Owns its inputs so the future is `Send` for `tokio::spawn`.
async fn connect_here(
    config: tokio_postgres::Config,
    tls: tokio_postgres_rustls::MakeRustlsConnect,
) -> Result<tokio_postgres::Client, DbError> {
    let (client, conn) = config
        .connect(tls)
        .await
        .map_err(|e| DbError::from_pg(&e))?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(client)
}

/// Connects over a port-forwarded stream.
async fn connect_forwarded(
    config: tokio_postgres::Config,
    stream: ForwardStream,
    mut make: tokio_postgres_rustls::MakeRustlsConnect,
    host: String,
) -> Result<tokio_postgres::Client, DbError> {
    let tls = MakeTlsConnect::<ForwardStream>::make_tls_connect(&mut make, &host)
        .map_err(|e| DbError::other(e.to_string()))?;
    let (client, conn) = config
        .connect_raw(stream, tls)
        .await
        .map_err(|e| DbError::from_pg(&e))?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(client)
}

/// tokio-postgres settings from the Npgsql string, bounded by `--timeout`.
fn pg_config(plan: &Plan, timeout: Duration) -> Result<tokio_postgres::Config, String> {
    let mut config = plan.conn.to_tokio_postgres()?;
    if let Some(p) = &plan.password {
        config.password(p.expose());
    }
    if let Some(ip) = plan.host_addr {
        config.hostaddr(ip);
    }
    // Never wait longer than asked, whatever the string's Timeout says.
    config.connect_timeout(
        timeout
            .min(plan.conn.timeout())
            .max(Duration::from_millis(100)),
    );
    config.application_name("elsadoctor");
    Ok(config)
}

/// The read-only queries, pipelined on the one connection.
async fn queries(
    c: tokio_postgres::Client,
    tables: Vec<String>,
) -> Result<DbFacts, tokio_postgres::Error> {
    // The names are elsadoctor's own constants; quoted as SQL literals all the same.
    let array = format!(
        "ARRAY[{}]::text[]",
        tables
            .iter()
            .map(|t| format!("'{}'", t.replace('\'', "''")))
            .collect::<Vec<_>>()
            .join(",")
    );
    // Privileges are tested by OID from pg_catalog: name-based functions raise errors (instead
    // of answering false) when the user lacks USAGE on the schema.
    let server = c.query_one(
        "SELECT version(), current_user::text, current_database()::text, \
         current_setting('max_connections')::int, current_setting('superuser_reserved_connections')::int, \
         (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend')::int, \
         n.oid IS NOT NULL, \
         h.oid IS NOT NULL, \
         has_database_privilege(current_database(), 'CREATE'), \
         COALESCE(has_schema_privilege(n.oid, 'CREATE'), false), \
         COALESCE(has_schema_privilege(n.oid, 'USAGE'), false), \
         COALESCE(has_schema_privilege(n.oid, 'USAGE') AND has_table_privilege(h.oid, 'SELECT'), false), \
         host(inet_client_addr()) \
         FROM (SELECT 1) AS one \
         LEFT JOIN pg_namespace n ON n.nspname = 'Elsa' \
         LEFT JOIN pg_class h ON h.relnamespace = n.oid AND h.relname = '__EFMigrationsHistory'",
        &[],
    );
    let present_sql = format!(
        "SELECT t, c.oid IS NOT NULL, \
         COALESCE(has_schema_privilege(n.oid, 'USAGE') AND has_table_privilege(c.oid, 'SELECT'), false), \
         COALESCE(has_schema_privilege(n.oid, 'USAGE') AND has_table_privilege(c.oid, 'INSERT'), false), \
         COALESCE(has_schema_privilege(n.oid, 'USAGE') AND has_table_privilege(c.oid, 'UPDATE'), false), \
         COALESCE(has_schema_privilege(n.oid, 'USAGE') AND has_table_privilege(c.oid, 'DELETE'), false) \
         FROM unnest({array}) AS t \
         LEFT JOIN pg_namespace n ON n.nspname = 'Elsa' \
         LEFT JOIN pg_class c ON c.relnamespace = n.oid AND c.relname = t AND c.relkind IN ('r', 'p')"
    );
    let present = c.query(present_sql.as_str(), &[]);
    // Tables that look like Elsa's but live elsewhere: lower-case `elsa`, `public`, `Elsa_` names.
    let elsewhere_sql = format!(
        "SELECT n.nspname::text, c.relname::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE c.relkind IN ('r', 'p') AND n.nspname IN ('elsa', 'public') \
           AND (c.relname ILIKE 'elsa\\_%' OR lower(c.relname) = ANY(SELECT lower(x) FROM unnest({array}) x)) \
         ORDER BY 1, 2 LIMIT 20"
    );
    let elsewhere = c.query(elsewhere_sql.as_str(), &[]);
    // Other EF Core history tables (the guide's per-context ones, a lower-case schema,
    // `public`), with their ids read through query_to_xml so one statement reads them all; a
    // table the user may not read gives NULL.
    let histories = c.query(
        "SELECT n.nspname::text, c.relname::text, \
         CASE WHEN has_schema_privilege(n.oid, 'USAGE') AND has_table_privilege(c.oid, 'SELECT') \
         THEN COALESCE((xpath('/row/ids/text()', query_to_xml(format('SELECT string_agg(%I::text, '' '' ORDER BY %I) AS ids FROM %I.%I', 'MigrationId', 'MigrationId', n.nspname, c.relname), false, true, '')))[1]::text, '') END \
         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE c.relkind IN ('r', 'p') AND lower(c.relname) LIKE '\\_\\_efmigrationshistory%' \
           AND NOT (n.nspname = 'Elsa' AND c.relname = '__EFMigrationsHistory') \
           AND EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attname = 'MigrationId' AND NOT a.attisdropped) \
         ORDER BY 1, 2 LIMIT 20",
        &[],
    );
    let (server, present, elsewhere, histories) =
        futures::join!(server, present, elsewhere, histories);
    let server = server?;
    let history_exists: bool = server.get(7);
    let history_readable: bool = server.get(11);
    // The ids and the EF Core version that applied each (elsa-audit §7 row H).
    let history_rows: Option<Vec<HistoryRow>> = if history_exists && history_readable {
        Some(
            c.query(
                "SELECT \"MigrationId\"::text, \"ProductVersion\"::text FROM \"Elsa\".\"__EFMigrationsHistory\" ORDER BY 1",
                &[],
            )
            .await?
            .iter()
            .map(|r| HistoryRow {
                migration_id: r.get(0),
                product_version: r.get(1),
            })
            .collect(),
        )
    } else {
        None
    };
    let history = history_rows
        .as_ref()
        .map(|rows| rows.iter().map(|r| r.migration_id.clone()).collect());
    Ok(DbFacts {
        server_version: server.get::<_, String>(0),
        current_user: server.get(1),
        database: server.get(2),
        max_connections: server.get(3),
        reserved_connections: server.get(4),
        current_connections: server.get(5),
        schema_exists: server.get(6),
        can_create_in_database: server.get(8),
        can_create_in_schema: server.get(9),
        schema_usage: server.get(10),
        history_exists,
        history_rows: history_rows.unwrap_or_default(),
        client_addr: server.get(12),
        tables: present?
            .iter()
            .map(|r| TableRights {
                name: r.get(0),
                exists: r.get(1),
                select: r.get(2),
                insert: r.get(3),
                update: r.get(4),
                delete: r.get(5),
            })
            .collect(),
        elsewhere: elsewhere?
            .iter()
            .map(|r| format!("{}.{}", r.get::<_, String>(0), r.get::<_, String>(1)))
            .collect(),
        history,
        other_histories: histories?
            .iter()
            .map(|r| OtherHistory {
                schema: r.get(0),
                table: r.get(1),
                ids: r
                    .get::<_, Option<String>>(2)
                    .map(|ids| ids.split_whitespace().map(str::to_owned).collect()),
            })
            .collect(),
    })
}

pub type ForwardStream = Box<dyn ForwardIo>;

/// The port-forwarded byte stream, boxed.
pub trait ForwardIo: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> ForwardIo for T {}

/// The database host's Service and the pods behind it, listed once: the same list serves
/// `production.db-storage` and the port-forward.
#[derive(Debug, Clone)]
pub struct Backend {
    pub service: String,
    pub namespace: String,
    pub spec: k8s_openapi::api::core::v1::ServiceSpec,
    /// The pods the Service selects (specs not yet scrubbed).
    pub pods: Probe<Vec<Pod>>,
}

/// Finds the Service `host` names (from the namespace's Services already listed, else one GET
/// in its namespace) and lists the pods it selects. `Err` says why there is none.
pub async fn backend(
    client: &Client,
    namespace: &str,
    known_services: &[Service],
    host: &str,
    timeout: Duration,
) -> Result<Backend, Probe<()>> {
    let Some((svc, ns)) = crate::domain::service_host::service_of(host, namespace) else {
        return Err(Probe::NotAttempted(format!(
            "{host} is not a Service of this cluster (an external database)"
        )));
    };
    // The namespace's Services were listed already: no second read for the same fact.
    let listed = (ns == namespace)
        .then(|| {
            known_services
                .iter()
                .find(|s| s.metadata.name.as_deref() == Some(svc.as_str()))
                .cloned()
        })
        .flatten();
    let service = match listed {
        Some(s) => s,
        None if ns == namespace => {
            return Err(Probe::NotAttempted(format!(
                "no Service {svc} in namespace {ns}"
            )));
        }
        None => {
            let services: Api<Service> = Api::namespaced(client.clone(), &ns);
            match tokio::time::timeout(timeout, services.get_opt(&svc)).await {
                Ok(Ok(Some(s))) => s,
                Ok(Ok(None)) => {
                    return Err(Probe::NotAttempted(format!(
                        "no Service {svc} in namespace {ns}"
                    )));
                }
                Ok(Err(e)) => return Err(crate::gather::kube::classify(&e, "get", "services")),
                Err(_) => return Err(Probe::failed(None, "no answer within --timeout".to_owned())),
            }
        }
    };
    let spec = service.spec.unwrap_or_default();
    let pods = match spec.selector.as_ref().filter(|s| !s.is_empty()) {
        None => Probe::NotAttempted(format!(
            "Service {svc} has no selector: its endpoints are managed by hand"
        )),
        Some(selector) => {
            let label_query = selector
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(",");
            let api: Api<Pod> = Api::namespaced(client.clone(), &ns);
            match tokio::time::timeout(
                timeout,
                api.list(&ListParams::default().labels(&label_query)),
            )
            .await
            {
                Ok(Ok(l)) => Probe::Observed(l.items),
                Ok(Err(e)) => crate::gather::kube::classify(&e, "list", "pods"),
                Err(_) => Probe::failed(None, "no answer within --timeout".to_owned()),
            }
        }
    };
    Ok(Backend {
        service: svc,
        namespace: ns,
        spec,
        pods,
    })
}

/// Whether a pod is Running and Ready.
pub fn is_ready(p: &Pod) -> bool {
    p.status.as_ref().is_some_and(|s| {
        s.phase.as_deref() == Some("Running")
            && s.conditions
                .iter()
                .flatten()
                .any(|c| c.type_ == "Ready" && c.status == "True")
    })
}

/// Opens a port-forward to a ready pod behind the database host's Service.
async fn forward(
    client: Client,
    backend: Result<Backend, Probe<()>>,
    port: u16,
    timeout: Duration,
) -> Result<(String, ForwardStream, ForwardErrors), Probe<DbObservation>> {
    let backend = backend.map_err(|p| match p {
        Probe::NotAttempted(why) => Probe::NotAttempted(format!(
            "{why}: a port-forward can only reach pods behind a Service (rerun with --vantage here)"
        )),
        other => other.recast(),
    })?;
    let svc = backend.service.as_str();
    if backend.spec.selector.as_ref().is_none_or(|s| s.is_empty()) {
        return Err(Probe::NotAttempted(format!(
            "Service {svc} has no selector: there is no pod to forward to"
        )));
    }
    let target_port = backend
        .spec
        .ports
        .iter()
        .flatten()
        .find(|p| p.port == i32::from(port))
        .and_then(|p| p.target_port.clone());
    let pods = match backend.pods {
        Probe::Observed(p) => p,
        other => return Err(other.recast()),
    };
    let Some(pod) = pods.into_iter().find(is_ready) else {
        return Err(Probe::Observed(DbObservation::Refused(DbError {
            kind: DbErrorKind::Refused,
            sqlstate: None,
            message: format!("Service {svc} has no ready pod to forward to"),
        })));
    };
    let pod_name = pod.metadata.name.clone().unwrap_or_default();
    let container_port = match target_port {
        Some(k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(n)) => {
            u16::try_from(n).ok()
        }
        Some(k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::String(name)) => pod
            .spec
            .iter()
            .flat_map(|s| s.containers.iter())
            .flat_map(|c| c.ports.iter().flatten())
            .find(|p| p.name.as_deref() == Some(name.as_str()))
            .and_then(|p| u16::try_from(p.container_port).ok()),
        None => Some(port),
    };
    let Some(container_port) = container_port else {
        return Err(Probe::NotAttempted(format!(
            "Service {svc} maps port {port} to a port its pods do not declare"
        )));
    };
    let (stream, errors) = forward_to_pod(
        &client,
        &backend.namespace,
        &pod_name,
        container_port,
        timeout,
    )
    .await?;
    Ok((pod_name, stream, errors))
}

/// Opens a port-forward to `port` of pod `ns/pod`: the byte stream, and the port's error
/// channel (what the kubelet says when nothing listens there). The forwarder lives as long as
/// the stream is used.
pub async fn forward_to_pod<T>(
    client: &Client,
    ns: &str,
    pod: &str,
    port: u16,
    timeout: Duration,
) -> Result<(ForwardStream, ForwardErrors), Probe<T>> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    let mut forwarder = match tokio::time::timeout(timeout, pods.portforward(pod, &[port])).await {
        Ok(Ok(f)) => f,
        Ok(Err(e)) => {
            // The websocket upgrade is a GET: Kubernetes authorises `get pods/portforward`
            // (and, from 1.35, `create` as well).
            return Err(
                match crate::gather::kube::classify(&e, "get", "pods/portforward") {
                    Probe::Absent => Probe::failed(
                        Some(404),
                        format!("the API did not open a port-forward to pod {pod}"),
                    ),
                    other => other,
                },
            );
        }
        Err(_) => {
            return Err(Probe::failed(
                None,
                "the port-forward did not open within --timeout".to_owned(),
            ));
        }
    };
    let Some(stream) = forwarder.take_stream(port) else {
        return Err(Probe::failed(
            None,
            "the port-forward gave no stream".to_owned(),
        ));
    };
    // What the kubelet says when it cannot reach the port inside the pod arrives on the error
    // channel, while the data stream just ends.
    let errors: ForwardErrors = match forwarder.take_error(port) {
        Some(f) => Box::pin(f),
        None => Box::pin(std::future::ready(None)),
    };
    // Keep the forwarder alive for the life of the connection.
    tokio::spawn(async move {
        let _ = forwarder.join().await;
    });
    Ok((Box::new(stream), errors))
}

/// The port-forward's error channel: at most one message.
pub type ForwardErrors =
    std::pin::Pin<Box<dyn std::future::Future<Output = Option<String>> + Send>>;

/// The system's trusted roots, read once per process on a blocking thread, off the login's
/// critical path: the bundle file alone, or the certificate directories as well
/// ([`all_system_roots`], when there is no bundle), which cost several times more.
static NATIVE_ROOTS: tokio::sync::OnceCell<Arc<Vec<CertificateDer<'static>>>> =
    tokio::sync::OnceCell::const_new();

async fn native_roots() -> Arc<Vec<CertificateDer<'static>>> {
    NATIVE_ROOTS
        .get_or_init(|| async {
            tokio::task::spawn_blocking(system_roots)
                .await
                .map(Arc::new)
                .unwrap_or_default()
        })
        .await
        .clone()
}

/// The system's bundle file of roots, the one OpenSSL (and so .NET on Linux, and Npgsql) reads
/// first: `SSL_CERT_FILE`, else the platform's (`/etc/ssl/certs/ca-certificates.crt` and the
/// like). Distributions generate it from their certificate directory, whose files OpenSSL only
/// looks into for an issuer the bundle lacks; reading the directory too, file by file (on
/// Debian each certificate two or three times, through its hash links), is three quarters of
/// the work for nothing new. [`RootsThenDirectory`] looks there only when the bundle does not
/// vouch for the server. No bundle: every root the platform has.
fn system_roots() -> Vec<CertificateDer<'static>> {
    let file = std::env::var_os("SSL_CERT_FILE")
        .map(std::path::PathBuf::from)
        .or_else(|| openssl_probe::probe().cert_file);
    if let Some(file) = file {
        let bundle = std::fs::read_to_string(&file)
            .ok()
            .and_then(|text| bundle_certificates(&text))
            .unwrap_or_else(|| rustls_native_certs::load_certs_from_paths(Some(&file), None).certs);
        if !bundle.is_empty() {
            return bundle;
        }
    }
    all_system_roots().as_ref().clone()
}

/// The `CERTIFICATE` blocks of a PEM bundle, sorted and without repeats as rustls-native-certs
/// returns them; `None` when a block does not decode (the caller then reads the file as
/// rustls-native-certs does). The certificates are public, so this finds the blocks with the
/// standard library's substring search and decodes them with the general-purpose base64:
/// rustls's PEM reader, constant-time and byte by byte, made reading Debian's 144 roots the
/// largest single cost of a run.
fn bundle_certificates(text: &str) -> Option<Vec<CertificateDer<'static>>> {
    use base64::Engine as _;
    const BEGIN: &str = "-----BEGIN CERTIFICATE-----";
    const END: &str = "-----END CERTIFICATE-----";
    let mut certs = Vec::new();
    let mut rest = text;
    let mut body = String::new();
    while let Some(at) = rest.find(BEGIN) {
        rest = &rest[at + BEGIN.len()..];
        let end = rest.find(END)?;
        body.clear();
        for line in rest[..end].split_ascii_whitespace() {
            body.push_str(line);
        }
        let der = base64::engine::general_purpose::STANDARD
            .decode(&body)
            .ok()?;
        certs.push(CertificateDer::from(der));
        rest = &rest[end + END.len()..];
    }
    certs.sort_unstable_by(|a, b| a.as_ref().cmp(b.as_ref()));
    certs.dedup();
    Some(certs)
}

/// Every root the platform has: the bundle file and every certificate in the certificate
/// directories (`SSL_CERT_DIR` and the platform's), read once per process when needed.
fn all_system_roots() -> Arc<Vec<CertificateDer<'static>>> {
    static ALL: std::sync::OnceLock<Arc<Vec<CertificateDer<'static>>>> = std::sync::OnceLock::new();
    ALL.get_or_init(|| Arc::new(rustls_native_certs::load_native_certs().certs))
        .clone()
}

/// Starts reading the system's roots in the background when `mode` verifies the server's
/// certificate, so that the reading overlaps the lookup of the database's pods and the
/// port-forward instead of following them.
pub fn warm_native_roots(mode: Option<SslMode>) {
    if matches!(mode, Some(SslMode::VerifyCa | SslMode::VerifyFull)) {
        tokio::spawn(native_roots());
    }
}

/// The TLS connector for an SSL Mode; `native` are the system's roots (used by VerifyCA and
/// VerifyFull only).
fn tls_connector(
    mode: SslMode,
    native: &[CertificateDer<'static>],
    root_cert: Option<&str>,
) -> Result<tokio_postgres_rustls::MakeRustlsConnect, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?;
    let config = match mode {
        SslMode::Disable | SslMode::Allow | SslMode::Prefer | SslMode::Require => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NoVerification(provider)))
            .with_no_client_auth(),
        SslMode::VerifyCa | SslMode::VerifyFull => {
            let mut pinned = Vec::new();
            if let Some(path) = root_cert.filter(|p| std::path::Path::new(p).exists()) {
                use rustls::pki_types::pem::PemObject;
                for cert in CertificateDer::pem_file_iter(path)
                    .map_err(|e| format!("Root Certificate {path}: {e}"))?
                {
                    pinned.push(cert.map_err(|e| format!("Root Certificate {path}: {e}"))?);
                }
            }
            let verifier = RootsThenDirectory {
                first: webpki_verifier(native.iter().chain(&pinned), &provider)?,
                pinned,
                provider: provider.clone(),
                everything: std::sync::OnceLock::new(),
                check_name: mode == SslMode::VerifyFull,
            };
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(verifier))
                .with_no_client_auth()
        }
    };
    Ok(tokio_postgres_rustls::MakeRustlsConnect::new(config))
}

/// A chain verifier trusting `roots` (a certificate it cannot use is left out, as OpenSSL does).
fn webpki_verifier<'a>(
    roots: impl Iterator<Item = &'a CertificateDer<'static>>,
    provider: &Arc<rustls::crypto::CryptoProvider>,
) -> Result<Arc<rustls::client::WebPkiServerVerifier>, String> {
    let mut store = rustls::RootCertStore::empty();
    for cert in roots {
        let _ = store.add(cert.clone());
    }
    rustls::client::WebPkiServerVerifier::builder_with_provider(Arc::new(store), provider.clone())
        .build()
        .map_err(|e| e.to_string())
}

/// VerifyCA/VerifyFull's trust as Npgsql has it on Linux: the system's roots or the Root
/// Certificate. The bundle file and the Root Certificate are tried first; only a certificate
/// they do not vouch for makes it read the certificate directories as well (once per run) and
/// judge again, so the answer is the one the union gives. VerifyCA checks the chain only, not
/// the host name.
#[derive(Debug)]
struct RootsThenDirectory {
    first: Arc<rustls::client::WebPkiServerVerifier>,
    pinned: Vec<CertificateDer<'static>>,
    provider: Arc<rustls::crypto::CryptoProvider>,
    everything: std::sync::OnceLock<Option<Arc<rustls::client::WebPkiServerVerifier>>>,
    /// VerifyFull: the certificate must also name the host.
    check_name: bool,
}

impl RootsThenDirectory {
    fn everything(&self) -> Option<&Arc<rustls::client::WebPkiServerVerifier>> {
        self.everything
            .get_or_init(|| {
                let all = all_system_roots();
                webpki_verifier(all.iter().chain(&self.pinned), &self.provider).ok()
            })
            .as_ref()
    }
}

impl ServerCertVerifier for RootsThenDirectory {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let first =
            self.first
                .verify_server_cert(end_entity, intermediates, server_name, ocsp, now);
        let verdict = match first {
            Err(rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer)) => {
                match self.everything() {
                    Some(all) => {
                        all.verify_server_cert(end_entity, intermediates, server_name, ocsp, now)
                    }
                    None => first,
                }
            }
            other => other,
        };
        match verdict {
            Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::NotValidForName
                | rustls::CertificateError::NotValidForNameContext { .. },
            )) if !self.check_name => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.first.verify_tls12_signature(message, cert, dss)
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.first.verify_tls13_signature(message, cert, dss)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.first.supported_verify_schemes()
    }
}

/// Npgsql's Prefer/Require: encrypt, verify nothing.
#[derive(Debug)]
struct NoVerification(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for NoVerification {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

impl DbError {
    fn timeout(t: Duration) -> DbError {
        DbError {
            kind: DbErrorKind::Timeout,
            sqlstate: None,
            message: format!("no answer within --timeout {}", crate::report::humanize(t)),
        }
    }

    fn other(message: String) -> DbError {
        DbError {
            kind: DbErrorKind::Other,
            sqlstate: None,
            message: crate::redact::text(&message),
        }
    }

    /// Classifies a tokio-postgres error: a server error keeps its SQLSTATE; otherwise the
    /// cause chain says refused, timed out, or TLS.
    fn from_pg(e: &tokio_postgres::Error) -> DbError {
        if let Some(db) = e.as_db_error() {
            return DbError {
                kind: DbErrorKind::Server,
                sqlstate: Some(db.code().code().to_owned()),
                message: crate::redact::text(db.message()),
            };
        }
        let chain = crate::gather::kube::error_chain(e);
        let mut src: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(e);
        while let Some(s) = src {
            if let Some(io) = s.downcast_ref::<std::io::Error>() {
                match io.kind() {
                    std::io::ErrorKind::ConnectionRefused => {
                        return DbError {
                            kind: DbErrorKind::Refused,
                            sqlstate: None,
                            message: chain,
                        };
                    }
                    std::io::ErrorKind::TimedOut => {
                        return DbError {
                            kind: DbErrorKind::Timeout,
                            sqlstate: None,
                            message: chain,
                        };
                    }
                    _ => {}
                }
            }
            src = s.source();
        }
        let lower = chain.to_ascii_lowercase();
        if lower.contains("lookup address") || lower.contains("name or service not known") {
            return DbError {
                kind: DbErrorKind::Other,
                sqlstate: None,
                message: format!(
                    "the host name does not resolve from where elsadoctor runs (a cluster-internal name? use --vantage port-forward): {chain}"
                ),
            };
        }
        let kind =
            if lower.contains("tls") || lower.contains("certificate") || lower.contains("ssl") {
                DbErrorKind::Tls
            } else if lower.contains("timed out") || lower.contains("timeout") {
                DbErrorKind::Timeout
            } else if lower.contains("refused") {
                DbErrorKind::Refused
            } else {
                DbErrorKind::Other
            };
        DbError {
            kind,
            sqlstate: None,
            message: chain,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The fast reading of a bundle keeps exactly what rustls-native-certs keeps: every
    /// CERTIFICATE block once, in its order, and nothing else (a key in the file is skipped).
    #[test]
    fn bundle_certificates_are_the_ones_rustls_native_certs_reads() {
        let tls = concat!(env!("CARGO_MANIFEST_DIR"), "/sim/tls/");
        let read = |name: &str| std::fs::read_to_string(format!("{tls}{name}")).unwrap_or_default();
        let text = read("server.crt") + &read("server.key") + &read("ca.crt") + &read("server.crt");
        let dir = tempfile::tempdir().expect("temp dir");
        let file = dir.path().join("bundle.pem");
        std::fs::write(&file, &text).expect("write bundle");

        let ours = bundle_certificates(&text).expect("the bundle parses");
        let theirs = rustls_native_certs::load_certs_from_paths(Some(&file), None).certs;
        assert_eq!(
            ours.len(),
            2,
            "two certificates, the key and the repeat left out"
        );
        assert_eq!(ours, theirs);
    }

    #[test]
    fn a_bundle_that_is_not_pem_is_left_to_rustls_native_certs() {
        let broken = "-----BEGIN CERTIFICATE-----\nnot base64 at all!\n-----END CERTIFICATE-----\n";
        assert!(bundle_certificates(broken).is_none());
        let unterminated = "-----BEGIN CERTIFICATE-----\nMIIB\n";
        assert!(bundle_certificates(unterminated).is_none());
    }
}
