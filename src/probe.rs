//! `elsadoctor probe`: the in-pod agent. It resolves names with the pod's resolv.conf rules,
//! connects over TCP, lists files by glob and logs in to PostgreSQL, all at once, and returns one
//! [`ProbeReport`], which `main` prints as a single line of JSON. The debug pod
//! (`--vantage debug-pod`) runs it and the doctor reads the report back from the pod's logs, so
//! the report is both `Serialize` and `Deserialize`; the lead's code may also call [`run`]
//! in-process.
//!
//! Secrets: the connection string comes from an environment variable (never argv), and only the
//! parts [`DbTarget`] holds (host, port, database, user, SSL mode) reach the report.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::domain::resolv::ResolvConf;
use crate::facts::network::HostPort;
pub use crate::facts::network::{DbProbe, ProbeReport, ProbeRequest, ResolvConfSummary};
use crate::facts::{DbObservation, DbTarget, Probe};
use crate::gather::db::{self, Plan, Vantage};
use crate::gather::dns::{self, DnsOutcome, DnsResult};
use crate::gather::files::{self, FileListing};
use crate::gather::tcp::{self, Resolve, TcpOutcome, TcpResult};
use crate::report::Tool;

/// The version of the [`ProbeReport`] wire format.
pub const SCHEMA_VERSION: u32 = 1;

/// Why `elsadoctor probe` will not start (exit code 2).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ProbeError {
    #[error(
        "probe: nothing to probe; give --dns NAME, --tcp HOST:PORT, --files GLOB or --db (see elsadoctor probe --help)"
    )]
    Nothing,
}

/// Refuses a run with nothing to do.
pub fn check_args(args: &ProbeRequest) -> Result<(), ProbeError> {
    if args.dns.is_empty() && args.tcp.is_empty() && args.files.is_empty() && !args.db {
        return Err(ProbeError::Nothing);
    }
    Ok(())
}

/// Runs every requested probe concurrently, each bounded by `args.timeout`.
pub async fn run(args: ProbeRequest) -> ProbeReport {
    let timeout = args.timeout;
    let conf = read_resolv_conf(&args.resolv_conf);
    let summary = match &conf {
        Ok(c) => ResolvConfSummary::Read {
            path: args.resolv_conf.clone(),
            nameservers: c.nameservers.clone(),
            search: c.search.clone(),
            ndots: c.ndots,
            timeout_secs: c.timeout.as_secs(),
            attempts: c.attempts,
        },
        Err(e) => ResolvConfSummary::Unreadable {
            path: args.resolv_conf.clone(),
            error: e.clone(),
        },
    };

    let dns_probes = futures::future::join_all(
        args.dns
            .iter()
            .map(|name| dns_probe(name.clone(), conf.clone(), timeout)),
    );
    let tcp_probes = futures::future::join_all(
        args.tcp
            .iter()
            .map(|target| tcp_probe(target.clone(), conf.clone(), timeout)),
    );
    let file_probes = futures::future::join_all(
        args.files
            .iter()
            .map(|pattern| files_probe(pattern.clone(), args.root.clone(), timeout)),
    );
    let db_probe = async {
        if args.db {
            Some(
                db_probe(
                    &args.db_env,
                    args.db_tables.clone(),
                    conf.clone().ok(),
                    timeout,
                )
                .await,
            )
        } else {
            None
        }
    };
    let (dns, tcp, files, db) = futures::join!(dns_probes, tcp_probes, file_probes, db_probe);
    ProbeReport {
        schema_version: SCHEMA_VERSION,
        tool: Tool::default(),
        root: args.root,
        resolv_conf: summary,
        dns,
        tcp,
        files,
        db,
    }
}

/// 0 when every requested probe succeeded, else 1.
pub fn exit_code(report: &ProbeReport) -> i32 {
    let dns_ok = report.dns.iter().all(|d| d.outcome == DnsOutcome::Resolved);
    let tcp_ok = report.tcp.iter().all(|t| t.outcome.is_connected());
    let files_ok = report.files.iter().all(FileListing::is_ok);
    let db_ok = report
        .db
        .as_ref()
        .is_none_or(|d| matches!(d.observation, Probe::Observed(DbObservation::Connected(_))));
    if dns_ok && tcp_ok && files_ok && db_ok {
        0
    } else {
        1
    }
}

fn read_resolv_conf(path: &Path) -> Result<ResolvConf, String> {
    std::fs::read_to_string(path)
        .map(|text| ResolvConf::parse(&text))
        .map_err(|e| format!("cannot read {}: {e}", path.display()))
}

async fn dns_probe(name: String, conf: Result<ResolvConf, String>, timeout: Duration) -> DnsResult {
    match conf {
        Ok(conf) => dns::resolve(&name, &conf, timeout).await,
        Err(reason) => DnsResult {
            query: name,
            nameservers: Vec::new(),
            attempts: Vec::new(),
            answered_by: None,
            addresses: Vec::new(),
            outcome: DnsOutcome::Error { reason },
            elapsed_ms: 0,
        },
    }
}

async fn tcp_probe(
    target: HostPort,
    conf: Result<ResolvConf, String>,
    timeout: Duration,
) -> TcpResult {
    match conf {
        // Pod semantics: the name resolves with the resolv.conf, as the app's would.
        Ok(conf) => tcp::connect(&target.host, target.port, Resolve::Conf(conf), timeout).await,
        Err(reason) => {
            // An IP needs no resolv.conf.
            if target.host.parse::<std::net::IpAddr>().is_ok() {
                return tcp::connect(&target.host, target.port, Resolve::System, timeout).await;
            }
            TcpResult {
                host: target.host,
                port: target.port,
                resolver: "resolv.conf".into(),
                dns: None,
                attempts: Vec::new(),
                outcome: TcpOutcome::NameNotResolved {
                    dns: DnsOutcome::Error { reason },
                },
                elapsed_ms: 0,
            }
        }
    }
}

/// Globbing blocks (a hung network mount would block forever): it runs on the blocking pool,
/// and the listing reports a timeout instead of holding the run.
async fn files_probe(pattern: String, root: PathBuf, timeout: Duration) -> FileListing {
    let p = pattern.clone();
    let listed = tokio::time::timeout(
        timeout,
        tokio::task::spawn_blocking(move || files::list(&p, &root)),
    )
    .await;
    let error = match listed {
        Ok(Ok(listing)) => return listing,
        Ok(Err(e)) => format!("the listing stopped: {e}"),
        Err(_) => format!(
            "listing took longer than --timeout {}",
            crate::report::humanize(timeout)
        ),
    };
    FileListing {
        pattern,
        entries: Vec::new(),
        truncated: false,
        errors: vec![error],
    }
}

/// Logs in with the connection string in `env`. A host name is resolved with the resolv.conf
/// (pod rules) when there is one, as Npgsql in the app's pod would.
async fn db_probe(
    env: &str,
    tables: Vec<String>,
    conf: Option<crate::domain::resolv::ResolvConf>,
    timeout: Duration,
) -> DbProbe {
    let not_attempted = |why: String| DbProbe {
        env: env.to_owned(),
        target: DbTarget::default(),
        observation: Probe::NotAttempted(why),
    };
    let raw = match std::env::var(env) {
        Ok(v) if !v.trim().is_empty() => v,
        Ok(_) => return not_attempted(format!("the environment variable {env} is empty")),
        Err(std::env::VarError::NotPresent) => {
            return not_attempted(format!("the environment variable {env} is not set"));
        }
        Err(std::env::VarError::NotUnicode(_)) => {
            return not_attempted(format!("the environment variable {env} is not UTF-8"));
        }
    };
    let conn = match crate::domain::npgsql::parse(&raw) {
        Ok(c) => c,
        // The parse error never quotes the input.
        Err(e) => {
            return not_attempted(format!(
                "the connection string in {env} does not parse: {e}"
            ));
        }
    };
    let host = conn.hosts().into_iter().next().map(|h| h.host);
    let host_addr = match (host, conf) {
        (Some(h), Some(conf)) if h.parse::<std::net::IpAddr>().is_err() => {
            let r = crate::gather::dns::resolve(&h, &conf, timeout).await;
            match r.addresses.first() {
                Some(ip) => Some(*ip),
                // This resolv.conf is the one the pod's own resolver uses: nothing else to try.
                None => {
                    return not_attempted(format!(
                        "{h} does not resolve here ({}) — see network.dns",
                        r.outcome
                    ));
                }
            }
        }
        _ => None,
    };
    let plan = Plan {
        password: conn.password(),
        conn,
        tables,
        host_addr,
    };
    // observe bounds the connect and the queries by `timeout` each and says which timed out;
    // this outer limit (a little longer, so observe's own answer wins) bounds the sum.
    let observed = tokio::time::timeout(
        timeout + Duration::from_millis(500),
        db::observe(plan, Vantage::Here, None, None, timeout),
    )
    .await;
    match observed {
        Ok((target, observation)) => DbProbe {
            env: env.to_owned(),
            target,
            observation,
        },
        Err(_) => DbProbe {
            env: env.to_owned(),
            target: DbTarget::default(),
            observation: Probe::failed(
                None,
                format!(
                    "the database did not answer within --timeout {}",
                    crate::report::humanize(timeout)
                ),
            ),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args() -> ProbeRequest {
        ProbeRequest {
            dns: Vec::new(),
            tcp: Vec::new(),
            files: Vec::new(),
            resolv_conf: PathBuf::from("/nonexistent/resolv.conf"),
            root: PathBuf::from("/"),
            db: false,
            db_env: "ELSADOCTOR_DB_CONNECTION".into(),
            db_tables: Vec::new(),
            timeout: Duration::from_secs(1),
        }
    }

    #[test]
    fn nothing_to_do_is_a_usage_error() {
        assert_eq!(check_args(&args()), Err(ProbeError::Nothing));
        let mut a = args();
        a.files.push("/x".into());
        assert_eq!(check_args(&a), Ok(()));
    }

    #[tokio::test]
    async fn an_unreadable_resolv_conf_fails_names_but_not_ips() {
        let mut a = args();
        a.dns.push("postgres".into());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = listener.local_addr().expect("addr").port();
        a.tcp.push(HostPort {
            host: "127.0.0.1".into(),
            port,
        });
        let report = run(a).await;
        assert!(matches!(
            report.resolv_conf,
            ResolvConfSummary::Unreadable { .. }
        ));
        assert!(matches!(report.dns[0].outcome, DnsOutcome::Error { .. }));
        assert!(report.tcp[0].outcome.is_connected(), "{:?}", report.tcp[0]);
        assert_eq!(exit_code(&report), 1);
        let json = serde_json::to_string(&report).expect("json");
        let back: ProbeReport = serde_json::from_str(&json).expect("round trip");
        assert_eq!(back, report);
    }
}
