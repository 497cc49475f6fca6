//! The database host's Service as the API sees it (`network.service`): the Service where the host
//! points, its EndpointSlices, and, when it is not there, the namespaces that do hold a Service
//! of that name (so the fix can name the full DNS name to use).

use std::time::Duration;

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::Client;
use kube::api::{Api, ListParams};

use super::kube::read;
use crate::domain::service_host;
use crate::facts::{DbService, Probe};

/// Looks up the Service `host` names. `listed` are the Services of `namespace`, already read:
/// a Service there is not fetched again.
pub async fn db_service(
    client: Client,
    namespace: String,
    listed: Probe<Vec<Service>>,
    host: String,
    timeout: Duration,
) -> Probe<DbService> {
    let Some((name, ns)) = service_host::service_of(&host, &namespace) else {
        return Probe::NotAttempted(format!("{host} is not a Service name of this cluster"));
    };
    let by_name = |list: &[Service]| {
        list.iter()
            .find(|s| s.metadata.name.as_deref() == Some(name.as_str()))
            .cloned()
    };
    let service: Probe<Option<Service>> = if ns == namespace {
        listed.map(|l| by_name(&l))
    } else {
        let api: Api<Service> = Api::namespaced(client.clone(), &ns);
        read("service", "get", "services", timeout, || api.get_opt(&name)).await
    };
    let service = match service.into_result() {
        Ok(s) => s,
        Err(why) => return why,
    };
    let slices_api: Api<EndpointSlice> = Api::namespaced(client.clone(), &ns);
    let by_service = ListParams::default().labels(&format!("kubernetes.io/service-name={name}"));
    let endpoint_slices = if service.is_some() {
        read("endpointslices", "list", "endpointslices", timeout, || {
            slices_api.list(&by_service)
        })
        .await
        .map(|l| l.items)
    } else {
        Probe::NotAttempted(format!("no Service {name} in namespace {ns}"))
    };
    let elsewhere = if service.is_some() {
        Probe::NotAttempted("the Service is where the host points".to_owned())
    } else {
        // One cluster-wide list, field-selected by name: often forbidden to a namespaced
        // Role, in which case the finding says the search was not possible.
        let all: Api<Service> = Api::all(client);
        let lp = ListParams::default().fields(&format!("metadata.name={name}"));
        read("services", "list", "services", timeout, || all.list(&lp))
            .await
            .map(|l| {
                l.items
                    .into_iter()
                    .filter_map(|s| s.metadata.namespace)
                    .filter(|n| n != &ns)
                    .collect()
            })
    };
    Probe::Observed(DbService {
        name,
        namespace: ns,
        service,
        endpoint_slices,
        elsewhere,
    })
}

/// What the probe pod needs to log in as Elsa does: the Elsa container's `env` (literal values
/// restored) and `envFrom`, so the kubelet resolves the same Secrets and `$(VAR)`s for it, and
/// the variable that holds the connection string. `Debug` shows variable names only.
#[derive(Clone, PartialEq)]
pub struct DbEnv {
    pub var: String,
    pub env: Vec<k8s_openapi::api::core::v1::EnvVar>,
    pub env_from: Vec<k8s_openapi::api::core::v1::EnvFromSource>,
}

impl std::fmt::Debug for DbEnv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DbEnv")
            .field("var", &self.var)
            .field("env", &crate::gather::debug_pod::env_names(&self.env))
            .field("env_from", &self.env_from.len())
            .finish()
    }
}

/// The probe pod's database environment; `None` when the connection string does not come
/// from an environment variable (a mounted appsettings file: the session then goes through a
/// port-forward).
pub fn database_env(f: &crate::facts::Facts) -> Option<DbEnv> {
    let v = f.effective().ok()?;
    Some(DbEnv {
        var: v.connection_env_var()?.to_owned(),
        env: v.container.env.clone().unwrap_or_default(),
        env_from: v.container.env_from.clone().unwrap_or_default(),
    })
}

/// Why DNS and TCP are not probed through a port-forward.
pub const NEEDS_IN_CLUSTER: &str = "DNS and TCP are tested from inside the cluster only: rerun with --vantage debug-pod (or --vantage here from a pod)";

/// What to probe for the database host: its name (unless it is an IP address) and host:port.
fn targets(host: &str, port: u16) -> (Option<String>, crate::facts::network::HostPort) {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    let name = bare
        .parse::<std::net::IpAddr>()
        .is_err()
        .then(|| host.to_owned());
    let tcp = crate::facts::network::HostPort {
        host: bare.to_owned(),
        port,
    };
    (name, tcp)
}

/// The probe arguments for the database host: DNS (unless it is an IP address) and TCP.
pub fn probe_args(host: &str, port: u16, timeout: Duration) -> Vec<String> {
    let (name, tcp) = targets(host, port);
    let mut args = Vec::new();
    if let Some(name) = name {
        args.extend(["--dns".to_owned(), name]);
    }
    args.extend([
        "--tcp".to_owned(),
        tcp.to_string(),
        "--timeout".to_owned(),
        format!("{}ms", timeout.as_millis()),
    ]);
    args
}

/// DNS and TCP towards the database host from the chosen vantage. `ephemeral_target` is the
/// Elsa pod and container an ephemeral container would join; `database`, the environment and
/// tables for a login from the debug pod.
pub async fn probe(
    client: Client,
    namespace: String,
    options: crate::gather::Options,
    host: String,
    port: u16,
    ephemeral_target: Option<(String, String)>,
    database: Option<(DbEnv, Vec<String>)>,
) -> Probe<crate::facts::NetworkObservation> {
    use crate::gather::Vantage;
    use crate::gather::debug_pod::{self, ProbeSpec};
    let timeout = options.timeout;
    let spec = |args: Vec<String>, env, env_from| ProbeSpec {
        image: options.probe_image.clone(),
        args,
        env,
        env_from,
        deadline_seconds: deadline_seconds(timeout),
    };
    match options.vantage {
        Vantage::PortForward => Probe::NotAttempted(NEEDS_IN_CLUSTER.to_owned()),
        Vantage::Here => {
            let (name, tcp) = targets(&host, port);
            let args = crate::facts::network::ProbeRequest {
                dns: name.into_iter().collect(),
                tcp: vec![tcp],
                files: Vec::new(),
                resolv_conf: options.resolv_conf.clone(),
                root: "/".into(),
                db: false,
                db_env: String::new(),
                db_tables: Vec::new(),
                timeout,
            };
            Probe::Observed(crate::facts::NetworkObservation {
                vantage: "here".to_owned(),
                via: None,
                report: crate::probe::run(args).await,
            })
        }
        Vantage::DebugPod => {
            let mut args = probe_args(&host, port, timeout);
            let (env, env_from) = match database {
                Some((db, tables)) => {
                    args.extend(["--db".to_owned(), "--db-env".to_owned(), db.var]);
                    for t in tables {
                        args.extend(["--db-table".to_owned(), t]);
                    }
                    (db.env, db.env_from)
                }
                None => (Vec::new(), Vec::new()),
            };
            let ran = debug_pod::run(
                client,
                namespace,
                spec(args, env, env_from),
                options.janitor.clone(),
                timeout,
            )
            .await;
            observation("debug-pod", ran)
        }
        Vantage::Ephemeral => {
            let Some((pod, container)) = ephemeral_target else {
                return Probe::NotAttempted(
                    "no running Elsa pod to add an ephemeral container to — see workload.pods"
                        .to_owned(),
                );
            };
            let mut args = probe_args(&host, port, timeout);
            for pattern in crate::domain::elsa::listing_globs() {
                args.extend(["--files".to_owned(), pattern]);
            }
            let spec = spec(args, Vec::new(), Vec::new());
            let ran = debug_pod::ephemeral(client, namespace, pod, container, spec, timeout).await;
            observation("ephemeral", ran)
        }
    }
}

/// A probe pod's (or container's) run as the network fact: its report, read from its output.
fn observation(
    vantage: &str,
    ran: Probe<crate::gather::debug_pod::Ran>,
) -> Probe<crate::facts::NetworkObservation> {
    ran.and_then(|ran| {
        parse_report(&ran.output, &ran.pod).map(|report| crate::facts::NetworkObservation {
            vantage: vantage.to_owned(),
            via: Some(ran.pod),
            report,
        })
    })
}

/// The probe pod must outlive the probes (each bounded by `timeout`) plus scheduling and an
/// image pull; the kubelet kills it after this many seconds whatever happens to the doctor.
fn deadline_seconds(timeout: Duration) -> i64 {
    i64::try_from(timeout.as_secs())
        .unwrap_or(60)
        .saturating_mul(2)
        + 120
}

/// The probe's JSON report from its log. Anything else in the log (a crash, an image without
/// the probe) is reported with its first line.
pub fn parse_report(output: &str, pod: &str) -> Probe<crate::probe::ProbeReport> {
    let line = output
        .lines()
        .rev()
        .find(|l| l.trim_start().starts_with('{'))
        .unwrap_or("");
    match serde_json::from_str(line) {
        Ok(r) => Probe::Observed(r),
        Err(e) => Probe::failed(
            None,
            format!(
                "the probe in {pod} printed no report ({e}); its log begins: {:?}",
                crate::redact::text(
                    output
                        .lines()
                        .next()
                        .unwrap_or("")
                        .chars()
                        .take(200)
                        .collect::<String>()
                        .as_str()
                )
            ),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_values_never_reach_debug_output() {
        let env = vec![k8s_openapi::api::core::v1::EnvVar {
            name: "BACKUP".into(),
            value: Some("Password=hunter2".into()),
            ..Default::default()
        }];
        let db = DbEnv {
            var: "ConnectionStrings__PostgreSql".into(),
            env: env.clone(),
            env_from: vec![],
        };
        let spec = crate::gather::debug_pod::ProbeSpec {
            image: "example/elsadoctor:1".into(),
            args: vec![],
            env,
            env_from: vec![],
            deadline_seconds: 60,
        };
        for shown in [format!("{db:?}"), format!("{spec:?}")] {
            assert!(shown.contains("BACKUP"), "{shown}");
            assert!(!shown.contains("hunter2"), "{shown}");
        }
    }

    #[test]
    fn probe_arguments_for_names_and_addresses() {
        let t = Duration::from_secs(2);
        assert_eq!(
            probe_args("postgres.db", 5432, t),
            [
                "--dns",
                "postgres.db",
                "--tcp",
                "postgres.db:5432",
                "--timeout",
                "2000ms"
            ]
        );
        assert_eq!(
            probe_args("10.0.0.5", 5432, t),
            ["--tcp", "10.0.0.5:5432", "--timeout", "2000ms"]
        );
        assert_eq!(
            probe_args("[fd00::1]", 5433, t),
            ["--tcp", "[fd00::1]:5433", "--timeout", "2000ms"]
        );
    }
}
