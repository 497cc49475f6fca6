//! Kubernetes reads: the kube-rs client built with kubectl's config semantics, and the facts the
//! cluster and workload checks need, gathered concurrently and sent as they land.
//!
//! Phases (each arrow is one round trip on the critical path):
//! `/version` ‖ namespace ‖ rules review ‖ (deployments ‖ statefulsets → pods by selector → events)
//! Every read is bounded by `--timeout`; GETs and LISTs that fail with 5xx, 429, a timeout or a
//! connection error are retried a bounded number of times with backoff. A 403 becomes
//! `Probe::Forbidden`, a 404 `Probe::Absent`, anything else `Probe::Failed`, never an empty list.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use futures::future::join_all;
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::authorization::v1::{SelfSubjectRulesReview, SelfSubjectRulesReviewSpec};
use k8s_openapi::api::core::v1::{
    ConfigMap, Event, Namespace, Pod, PodSpec, Secret as K8sSecret, Service,
};
use kube::api::{Api, ListParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};
use tokio::sync::mpsc::UnboundedSender;

use crate::domain::elsa::{self, Selection};
use crate::domain::workload::{Workload, referenced_sources, selector_query};
use crate::facts::{
    AccessRules, ConfigMapData, FactKey, FactUpdate, Inferred, NamespaceInfo, NamespaceSource,
    Probe, ResourceRule, Scope, SecretData, ServerVersion,
};
use crate::gather::db;
use crate::redact;

/// Attempts per read: the first try plus two retries.
const ATTEMPTS: u32 = 3;
/// Backoff before the first retry; doubles each time.
const BACKOFF: Duration = Duration::from_millis(150);
/// Above this many pods, events are listed once for the namespace instead of once per pod.
const PER_POD_EVENT_LISTS: usize = 10;

/// Where the cluster is, as given on the command line.
#[derive(Debug, Clone, Default)]
pub struct KubeTarget {
    pub kubeconfig: Option<PathBuf>,
    pub context: Option<String>,
    pub namespace: Option<String>,
    pub workload: Option<String>,
    /// A kubeconfig given as text (the built-in simulation), used instead of any file.
    pub inline_kubeconfig: Option<String>,
    /// Set for `elsadoctor demo`: the scenario and what it shows, in one line. The run is
    /// then labelled SIMULATED and the line goes into the report (stderr stays quiet).
    pub simulation: Option<String>,
}

/// Why the doctor could not start talking to a cluster (exit code 2).
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("cannot read kubeconfig {path}: {cause}")]
    Kubeconfig { path: String, cause: String },
    #[error("context {name:?} is not in the kubeconfig (contexts: {available})")]
    UnknownContext { name: String, available: String },
    #[error("no current context in the kubeconfig: pass --context (contexts: {available})")]
    NoCurrentContext { available: String },
    #[error(
        "no kubeconfig found (--kubeconfig, KUBECONFIG, ~/.kube/config) and not running in a pod: {cause}"
    )]
    NoConfig { cause: String },
    #[error("cannot build a Kubernetes client: {0}")]
    Client(String),
}

/// One line from an error and its causes, secrets masked. Only the first line of each error is
/// kept: parsers append source snippets below it, and a snippet of a kubeconfig can hold a
/// password or token.
pub fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let first_line = |e: &dyn std::error::Error| {
        let text = e.to_string();
        let line = text.lines().next().unwrap_or("").trim().to_owned();
        line.split(" --> ")
            .next()
            .unwrap_or("")
            .trim_end()
            .to_owned()
    };
    let mut parts = vec![first_line(e)];
    let mut src = e.source();
    while let Some(s) = src {
        let text = first_line(s);
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        src = s.source();
    }
    redact::text(&parts.join(": ").replace('\n', " "))
}

/// Loads the kubeconfig the way kubectl does and builds a client.
pub async fn connect(
    target: &KubeTarget,
    timeout: Duration,
) -> Result<(Client, Scope), ConnectError> {
    let (config, context, ns_from_context) = load_config(target).await?;
    let (namespace, namespace_source) = match (&target.namespace, ns_from_context) {
        (Some(ns), _) => (ns.clone(), NamespaceSource::Flag),
        (None, Some(src)) => (config.default_namespace.clone(), src),
        (None, None) => ("default".to_owned(), NamespaceSource::Default),
    };
    let server = redact::urls(&config.cluster_url.to_string());
    let mut config = config;
    config.connect_timeout = Some(timeout);
    // Every read is bounded by `--timeout` where it is made; the client's own read timeout is
    // only a backstop, a little later, so it never races those bounds (it also applies to the
    // port-forward's websocket, where it would cut the stream at the same instant).
    config.read_timeout = Some(timeout + Duration::from_secs(1));
    config.write_timeout = Some(timeout + Duration::from_secs(1));
    config.reset_reader_on_write = true;
    // Retries are ours (bounded, logged, applied to 500 too), not the client's.
    config.default_retry = false;
    let client = crate::gather::connect::client(config)
        .map_err(|e| ConnectError::Client(error_chain(&e)))?;
    Ok((
        client,
        Scope {
            context,
            server: server.trim_end_matches('/').to_owned(),
            namespace,
            namespace_source,
            workload_hint: target.workload.clone(),
            simulated: false,
            scenario: None,
            stated: None,
            replay: None,
        },
    ))
}

fn read_kubeconfig(path: &Path) -> Result<Kubeconfig, ConnectError> {
    Kubeconfig::read_from(path).map_err(|e| ConnectError::Kubeconfig {
        path: path.display().to_string(),
        cause: redact::quoted(&error_chain(&e)),
    })
}

/// kubectl's order: `--kubeconfig`, then `KUBECONFIG` (several files merged), then
/// `~/.kube/config`, then the in-cluster service account.
async fn load_config(
    target: &KubeTarget,
) -> Result<(Config, Option<String>, Option<NamespaceSource>), ConnectError> {
    let kubeconfig = if let Some(text) = &target.inline_kubeconfig {
        Some(
            Kubeconfig::from_yaml(text).map_err(|e| ConnectError::Kubeconfig {
                path: "(built-in)".to_owned(),
                cause: redact::quoted(&error_chain(&e)),
            })?,
        )
    } else if let Some(path) = &target.kubeconfig {
        Some(read_kubeconfig(path)?)
    } else if std::env::var_os("KUBECONFIG").is_some_and(|v| !v.is_empty()) {
        let joined = std::env::var("KUBECONFIG").unwrap_or_default();
        Some(
            Kubeconfig::from_env()
                .map_err(|e| ConnectError::Kubeconfig {
                    path: joined.clone(),
                    cause: redact::quoted(&error_chain(&e)),
                })?
                .ok_or(ConnectError::Kubeconfig {
                    path: joined,
                    cause: "empty".to_owned(),
                })?,
        )
    } else {
        match home_kubeconfig() {
            Some(p) if p.exists() => Some(read_kubeconfig(&p)?),
            _ => None,
        }
    };
    let Some(kc) = kubeconfig else {
        let config = Config::incluster().map_err(|e| ConnectError::NoConfig {
            cause: error_chain(&e),
        })?;
        return Ok((config, None, Some(NamespaceSource::InCluster)));
    };
    let available = kc
        .contexts
        .iter()
        .map(|c| c.name.as_str())
        .collect::<Vec<_>>()
        .join(", ");
    let context = match (&target.context, &kc.current_context) {
        (Some(c), _) => c.clone(),
        (None, Some(c)) if !c.is_empty() => c.clone(),
        _ => return Err(ConnectError::NoCurrentContext { available }),
    };
    let Some(named) = kc.contexts.iter().find(|c| c.name == context) else {
        return Err(ConnectError::UnknownContext {
            name: context,
            available,
        });
    };
    let ns_source = named
        .context
        .as_ref()
        .and_then(|c| c.namespace.as_ref())
        .map(|_| NamespaceSource::Context);
    let options = KubeConfigOptions {
        context: Some(context.clone()),
        ..Default::default()
    };
    let config = Config::from_custom_kubeconfig(kc, &options)
        .await
        .map_err(|e| ConnectError::Kubeconfig {
            path: target
                .kubeconfig
                .as_ref()
                .map_or_else(|| "(default)".to_owned(), |p| p.display().to_string()),
            cause: error_chain(&e),
        })?;
    Ok((config, Some(context), ns_source))
}

fn home_kubeconfig() -> Option<PathBuf> {
    std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".kube").join("config"))
}

/// Turns a kube error into the probe state that says what happened.
pub fn classify<T>(e: &kube::Error, verb: &str, resource: &str) -> Probe<T> {
    match e {
        kube::Error::Api(status) if status.code == 403 => Probe::Forbidden {
            verb: verb.to_owned(),
            resource: resource.to_owned(),
        },
        kube::Error::Api(status) if status.code == 404 => Probe::Absent,
        kube::Error::Api(status) => Probe::failed(
            Some(status.code),
            redact::text(&format!("{} ({})", status.message, status.reason)),
        ),
        other => Probe::failed(None, error_chain(other)),
    }
}

fn retryable(e: &kube::Error) -> bool {
    match e {
        kube::Error::Api(status) => status.code >= 500 || status.code == 429,
        kube::Error::HyperError(_) | kube::Error::Service(_) => true,
        _ => false,
    }
}

/// One read: bounded by `timeout`, retried on transient failures, classified into a probe.
pub(crate) async fn read<T, F, Fut>(
    what: &'static str,
    verb: &'static str,
    resource: &'static str,
    timeout: Duration,
    f: F,
) -> Probe<T>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<T, kube::Error>>,
{
    let mut delay = BACKOFF;
    let mut last = Probe::NotAttempted("no attempt made".to_owned());
    for attempt in 1..=ATTEMPTS {
        match tokio::time::timeout(timeout, f()).await {
            Ok(Ok(v)) => return Probe::Observed(v),
            Ok(Err(e)) => {
                let transient = retryable(&e);
                last = classify(&e, verb, resource);
                tracing::debug!(what, attempt, error = %error_chain(&e), "read failed");
                if !transient {
                    return last;
                }
            }
            Err(_) => {
                tracing::debug!(what, attempt, "read timed out");
                last = Probe::failed(
                    None,
                    format!(
                        "no answer within --timeout {}",
                        crate::report::humanize(timeout)
                    ),
                );
            }
        }
        if attempt < ATTEMPTS {
            tokio::time::sleep(delay).await;
            delay *= 2;
        }
    }
    last
}

/// Gathers every fact, sending each as soon as it is known. Returns when all are sent.
pub async fn gather(
    client: Client,
    scope: Scope,
    options: crate::gather::Options,
    tx: UnboundedSender<FactUpdate>,
) {
    let timeout = options.timeout;
    let send = |u: FactUpdate| {
        // The runner stopped listening (deadline or shutdown): nothing left to do with it.
        let _ = tx.send(u);
    };
    send(FactUpdate::Started(vec![
        FactKey::ServerVersion,
        FactKey::Namespace,
        FactKey::Access,
        FactKey::Workloads,
        FactKey::NetworkPolicies,
        FactKey::Autoscalers,
        FactKey::Migrations,
    ]));
    let ns = scope.namespace.as_str();

    // The HorizontalPodAutoscalers: the one targeting Elsa sets how many pods may run.
    let autoscalers = async {
        let api: Api<k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler> =
            Api::namespaced(client.clone(), ns);
        let lp = ListParams::default();
        let p = read(
            "horizontalpodautoscalers",
            "list",
            "horizontalpodautoscalers",
            timeout,
            || api.list(&lp),
        )
        .await;
        send(FactUpdate::Autoscalers(p.map(|l| l.items)));
    };

    let migrations = async {
        let p = super::migration::gather(&client, ns, timeout).await;
        send(FactUpdate::Migrations(p));
    };

    let policies = async {
        let p = super::netpol::gather(&client, ns, timeout).await;
        send(FactUpdate::NetworkPolicies(p));
    };

    let version = async {
        let p = read("server version", "get", "/version", timeout, || {
            client.apiserver_version()
        })
        .await;
        send(FactUpdate::ServerVersion(p.map(|v| ServerVersion {
            git_version: v.git_version,
            platform: v.platform,
        })));
    };

    let namespace = async {
        let api: Api<Namespace> = Api::all(client.clone());
        let p = read("namespace", "get", "namespaces", timeout, || api.get(ns)).await;
        send(FactUpdate::Namespace(p.map(|n| NamespaceInfo {
            name: n.metadata.name.unwrap_or_default(),
            phase: n.status.and_then(|s| s.phase),
            labels: n.metadata.labels.unwrap_or_default(),
        })));
    };

    let access = async {
        let api: Api<SelfSubjectRulesReview> = Api::all(client.clone());
        let review = SelfSubjectRulesReview {
            spec: SelfSubjectRulesReviewSpec {
                namespace: Some(ns.to_owned()),
            },
            ..Default::default()
        };
        let pp = PostParams::default();
        let p = read(
            "rules review",
            "create",
            "selfsubjectrulesreviews",
            timeout,
            || api.create(&pp, &review),
        )
        .await;
        send(FactUpdate::Access(p.and_then(|r| {
            let Some(st) = r.status else {
                return Probe::failed(None, "the rules review came back without a status");
            };
            Probe::Observed(AccessRules {
                rules: st
                    .resource_rules
                    .into_iter()
                    .map(|r| ResourceRule {
                        verbs: r.verbs,
                        api_groups: r.api_groups.unwrap_or_default(),
                        resources: r.resources.unwrap_or_default(),
                        resource_names: r.resource_names.unwrap_or_default(),
                    })
                    .collect(),
                incomplete: st.incomplete,
                evaluation_error: st.evaluation_error.map(|e| redact::text(&e)),
            })
        })));
    };

    let workload = async {
        let deploy_api: Api<Deployment> = Api::namespaced(client.clone(), ns);
        let sts_api: Api<StatefulSet> = Api::namespaced(client.clone(), ns);
        let lp = ListParams::default();
        let (deployments, statefulsets) = futures::join!(
            read("deployments", "list", "deployments", timeout, || deploy_api
                .list(&lp)),
            read("statefulsets", "list", "statefulsets", timeout, || sts_api
                .list(&lp)),
        );
        let mut deployments = deployments.map(|l| l.items);
        let mut statefulsets = statefulsets.map(|l| l.items);
        // A user who may list neither kind (a Role that grants pods but not apps) still sees
        // the pods: the workloads are rebuilt from them, and workload.found says what it may
        // not list.
        let mut inferred = Inferred::default();
        if deployments.observed().is_none() && statefulsets.observed().is_none() {
            let pod_api: Api<Pod> = Api::namespaced(client.clone(), ns);
            let lp = ListParams::default();
            if let Probe::Observed(list) =
                read("pods", "list", "pods", timeout, || pod_api.list(&lp)).await
            {
                let (d, s) = crate::domain::workload::infer_from_pods(&list.items);
                inferred = Inferred {
                    deployments: d,
                    statefulsets: s,
                };
            }
        }
        let mut literals = super::scrub_workloads(
            match &mut deployments {
                Probe::Observed(d) => d.as_mut_slice(),
                _ => &mut [],
            },
            match &mut statefulsets {
                Probe::Observed(s) => s.as_mut_slice(),
                _ => &mut [],
            },
        );
        literals.extend(super::scrub_workloads(
            &mut inferred.deployments,
            &mut inferred.statefulsets,
        ));
        let target = select(
            &deployments,
            &statefulsets,
            &inferred,
            scope.workload_hint.as_deref(),
        );
        let workloads_seen = (
            deployments.clone(),
            statefulsets.clone(),
            literals.clone(),
            inferred.clone(),
        );
        send(FactUpdate::Workloads {
            deployments,
            statefulsets,
            literals,
            inferred,
        });
        let (name, selector, (mut config_map_names, secret_names), identity) = match target {
            Ok(t) => t,
            Err(why) => {
                send(FactUpdate::Logs(Probe::NotAttempted(why.clone())));
                send(FactUpdate::Health(Probe::NotAttempted(why.clone())));
                send(FactUpdate::DbPods(Probe::NotAttempted(why.clone())));
                send(FactUpdate::Pods(Probe::NotAttempted(why.clone())));
                send(FactUpdate::Events(Probe::NotAttempted(why.clone())));
                send(FactUpdate::ConfigSources {
                    config_maps: BTreeMap::new(),
                    secrets: BTreeMap::new(),
                });
                send(FactUpdate::Services(Probe::NotAttempted(why.clone())));
                send(FactUpdate::DbService(Probe::NotAttempted(why.clone())));
                send(FactUpdate::PodFiles(Probe::NotAttempted(why.clone())));
                send(FactUpdate::Network(Probe::NotAttempted(why.clone())));
                send(FactUpdate::Database {
                    target: None,
                    observation: Probe::NotAttempted(why),
                });
                return;
            }
        };
        // The ConfigMaps a PostgreSQL workload here mounts (its postgresql.conf), fetched with
        // Elsa's own: production.pool reads max_connections from them without a login.
        config_map_names.extend(crate::domain::workload::database_config_maps(
            &Workload::all(
                workloads_seen.0.observed().map_or(&[][..], Vec::as_slice),
                workloads_seen.1.observed().map_or(&[][..], Vec::as_slice),
            ),
        ));
        send(FactUpdate::Started(vec![
            FactKey::Pods,
            FactKey::Events,
            FactKey::ConfigSources,
            FactKey::Services,
            FactKey::Database,
            FactKey::DbService,
            FactKey::Network,
            FactKey::PodFiles,
            FactKey::Logs,
            FactKey::Health,
            FactKey::DbPods,
        ]));
        let (running_tx, running_rx) = tokio::sync::oneshot::channel();
        let sources_then_database = sources_and_database(
            client.clone(),
            scope.clone(),
            (config_map_names, secret_names),
            workloads_seen,
            options.clone(),
            running_rx,
            tx.clone(),
        );
        let pods_then_events = async {
            let pod_api: Api<Pod> = Api::namespaced(client.clone(), ns);
            let lp = ListParams::default().labels(&selector);
            let pods = read("pods", "list", "pods", timeout, || pod_api.list(&lp))
                .await
                .map(|l| scrubbed(l, |p: &mut Pod| p.spec.as_mut()));
            let mut objects: Vec<String> = vec![name];
            if let Probe::Observed(list) = &pods {
                objects.extend(list.iter().filter_map(|p| p.metadata.name.clone()));
            }
            let container = identity.as_ref().map(|i| i.container.clone());
            let running = running_pod(&pods, container.as_deref());
            let _ = running_tx.send(running.clone());
            let listed = pods.clone();
            send(FactUpdate::Pods(pods));
            // Events, logs, the health endpoint and the file listing all need only the pod
            // list: at once.
            let events = async {
                let events = events_for(&client, ns, &objects, timeout).await;
                send(FactUpdate::Events(events));
            };
            // The listing's clues (what the contents say about the version) for the health
            // path when the image does not name the version.
            let listing = async {
                let p = match running {
                    // The ephemeral container lists the files itself (see the network probe).
                    _ if options.vantage == crate::gather::Vantage::Ephemeral => return Vec::new(),
                    Some((pod, container)) => {
                        list_pod_files(client.clone(), ns.to_owned(), pod, container, timeout).await
                    }
                    None => Probe::NotAttempted(
                        "no Elsa container is running to look into — see workload.pods".to_owned(),
                    ),
                };
                let clues = p.observed().map(|l| l.clues.clone()).unwrap_or_default();
                send(FactUpdate::PodFiles(p));
                clues
            };
            let logs = async {
                let logs = match (&listed, &identity) {
                    (Probe::Observed(pods), Some(id)) => {
                        super::logs::gather(&client, ns, pods, &id.container, timeout).await
                    }
                    (Probe::Observed(_), None) => Probe::NotAttempted(
                        "no Elsa container identified — see workload.flavor".to_owned(),
                    ),
                    (other, _) => other.clone().recast(),
                };
                send(FactUpdate::Logs(logs));
            };
            let health = |identity: Option<elsa::Identity>| {
                let (client, listed, send) = (&client, &listed, &send);
                async move {
                    let health = match listed {
                        Probe::Observed(pods) => {
                            super::health::gather(client, ns, pods, identity.as_ref(), timeout)
                                .await
                        }
                        other => other.clone().recast(),
                    };
                    send(FactUpdate::Health(health));
                }
            };
            match &identity {
                // The image names the version: the health path is known at once.
                Some(id) if id.version.is_some() => {
                    futures::join!(events, listing, logs, health(identity.clone()));
                }
                // Otherwise the container's contents may tell it (the model reasons the same).
                _ => {
                    let listing_then_health = async {
                        let clues = listing.await;
                        let refined = identity
                            .clone()
                            .map(|id| crate::model::refine(scope.stated.as_ref(), id, &clues).0);
                        health(refined).await;
                    };
                    futures::join!(events, logs, listing_then_health);
                }
            }
        };
        futures::join!(sources_then_database, pods_then_events);
    };

    futures::join!(
        version,
        namespace,
        access,
        workload,
        policies,
        autoscalers,
        migrations
    );
}

/// A list's items, each with the secrets in its pod spec masked before it becomes a fact.
fn scrubbed<T: Clone + kube::Resource>(
    list: kube::api::ObjectList<T>,
    spec: impl Fn(&mut T) -> Option<&mut PodSpec>,
) -> Vec<T> {
    scrubbed_items(list.items, spec)
}

/// Items with the secrets in their pod specs masked.
fn scrubbed_items<T: kube::Resource>(
    items: Vec<T>,
    spec: impl Fn(&mut T) -> Option<&mut PodSpec>,
) -> Vec<T> {
    items
        .into_iter()
        .map(|mut item| {
            redact::metadata(item.meta_mut());
            if let Some(s) = spec(&mut item) {
                redact::pod_spec(s);
            }
            item
        })
        .collect()
}

/// The referenced ConfigMaps and Secrets and the namespace's Services, then the database session
/// made with the connection string those facts produce (computed by the same pure code the
/// checks use).
async fn sources_and_database(
    client: Client,
    scope: Scope,
    (config_map_names, secret_names): SourceNames,
    workloads: (
        Probe<Vec<Deployment>>,
        Probe<Vec<StatefulSet>>,
        redact::Literals,
        Inferred,
    ),
    options: crate::gather::Options,
    running: tokio::sync::oneshot::Receiver<Option<(String, String)>>,
    tx: UnboundedSender<FactUpdate>,
) {
    let timeout = options.timeout;
    let vantage = options.vantage.database();
    let ns = scope.namespace.clone();
    let service_api: Api<Service> = Api::namespaced(client.clone(), &ns);
    let lp = ListParams::default();
    let ((config_maps, secrets), services) = futures::join!(
        config_sources(
            client.clone(),
            ns.clone(),
            config_map_names,
            secret_names,
            timeout
        ),
        read("services", "list", "services", timeout, || {
            let (api, lp) = (service_api.clone(), lp.clone());
            async move { api.list(&lp).await }
        }),
    );
    let services = services.map(|l| l.items);
    let mut known = crate::facts::Facts::new(scope.clone(), Vec::new());
    let (mut config_maps, mut secrets) = (config_maps, secrets);
    let mut sources = FactUpdate::ConfigSources {
        config_maps: config_maps.clone(),
        secrets: secrets.clone(),
    };
    for u in [
        FactUpdate::Workloads {
            deployments: workloads.0,
            statefulsets: workloads.1,
            literals: workloads.2,
            inferred: workloads.3,
        },
        sources.clone(),
        FactUpdate::Services(services.clone()),
    ] {
        u.apply(&mut known);
    }
    // The database workload's own ConfigMaps and Secrets (config.refs judges them like Elsa's),
    // those Elsa's pod does not reference already: known once the host and its Service are.
    let (db_cms, db_secrets) = crate::model::database_sources(&known);
    let db_cms: BTreeSet<String> = db_cms
        .into_iter()
        .filter(|n| !config_maps.contains_key(n))
        .collect();
    let db_secrets: BTreeSet<String> = db_secrets
        .into_iter()
        .filter(|n| !secrets.contains_key(n))
        .collect();
    if !db_cms.is_empty() || !db_secrets.is_empty() {
        let (more_cms, more_secrets) =
            config_sources(client.clone(), ns.clone(), db_cms, db_secrets, timeout).await;
        config_maps.extend(more_cms);
        secrets.extend(more_secrets);
        sources = FactUpdate::ConfigSources {
            config_maps,
            secrets,
        };
        sources.clone().apply(&mut known);
    }
    let _ = tx.send(sources);
    let _ = tx.send(FactUpdate::Services(services));
    let known_services = known.services.observed().cloned().unwrap_or_default();
    let send_db_pods = |backend: &Result<db::Backend, Probe<()>>| {
        let pods = match backend {
            Ok(b) => b
                .pods
                .clone()
                .map(|pods| scrubbed_items(pods, |p: &mut Pod| p.spec.as_mut())),
            Err(p) => p.clone().recast(),
        };
        let _ = tx.send(FactUpdate::DbPods(pods));
    };
    // The database the configuration points at, whether or not Elsa uses it yet: the checks
    // say which (issue 11 #7), so one finding does not hide the next.
    let plan = match crate::model::intended_database(&known) {
        Ok(plan) => plan,
        Err(why) => {
            let _ = tx.send(FactUpdate::Network(Probe::NotAttempted(why.clone())));
            if options.vantage == crate::gather::Vantage::Ephemeral {
                let _ = tx.send(FactUpdate::PodFiles(Probe::NotAttempted(why.clone())));
            }
            let _ = tx.send(FactUpdate::DbService(Probe::NotAttempted(why.clone())));
            let _ = tx.send(FactUpdate::DbPods(Probe::NotAttempted(why.clone())));
            let _ = tx.send(FactUpdate::Database {
                target: None,
                observation: Probe::NotAttempted(why),
            });
            return;
        }
    };
    db::warm_native_roots(plan.conn.ssl_mode().ok());
    let host = plan.conn.hosts().into_iter().next();
    // From a debug pod the login happens there too, when the pod can be given the connection
    // string the way Elsa gets it (from its environment); otherwise through a port-forward.
    let in_pod = if options.vantage == crate::gather::Vantage::DebugPod {
        crate::gather::network::database_env(&known).map(|env| (env, plan.tables.clone()))
    } else {
        None
    };
    let login_in_pod = in_pod.is_some();
    let service = async {
        let p = match &host {
            Some(h) => {
                crate::gather::network::db_service(
                    client.clone(),
                    ns.clone(),
                    known.services.clone(),
                    h.host.clone(),
                    timeout,
                )
                .await
            }
            None => Probe::NotAttempted("the connection string names no host".to_owned()),
        };
        let _ = tx.send(FactUpdate::DbService(p));
    };
    let database = async {
        let db_host = host.as_ref().map(|h| h.host.clone()).unwrap_or_default();
        let find_backend = db::backend(&client, &ns, &known_services, &db_host, timeout);
        if login_in_pod {
            // Only the pods behind the Service (production.db-storage); the probe logs in.
            send_db_pods(&find_backend.await);
            return;
        }
        let (t, o) = match vantage {
            // The port-forward goes to a pod of that one list.
            db::Vantage::PortForward => {
                let backend = find_backend.await;
                send_db_pods(&backend);
                db::observe(plan, vantage, Some(client.clone()), Some(backend), timeout).await
            }
            db::Vantage::Here => {
                let (backend, observed) = futures::join!(
                    find_backend,
                    db::observe(plan, vantage, None, None, timeout)
                );
                send_db_pods(&backend);
                observed
            }
        };
        let _ = tx.send(FactUpdate::Database {
            target: Some(t),
            observation: o,
        });
    };
    let network = async {
        let Some(h) = &host else {
            let _ = tx.send(FactUpdate::Network(Probe::NotAttempted(
                "the connection string names no host".to_owned(),
            )));
            return;
        };
        let ephemeral = options.vantage == crate::gather::Vantage::Ephemeral;
        // Only the ephemeral container needs the running pod; the others start at once.
        let target = if ephemeral {
            running.await.ok().flatten()
        } else {
            None
        };
        let p = crate::gather::network::probe(
            client.clone(),
            ns.clone(),
            options.clone(),
            h.host.clone(),
            h.port,
            target.clone(),
            in_pod,
        )
        .await;
        if login_in_pod {
            let (target, observation) = match &p {
                Probe::Observed(obs) => match &obs.report.db {
                    Some(db) => {
                        let mut t = db.target.clone();
                        t.vantage = "debug-pod".to_owned();
                        t.via = obs.via.clone();
                        (Some(t), db.observation.clone())
                    }
                    None => (
                        None,
                        Probe::failed(None, "the probe pod returned no database result"),
                    ),
                },
                other => (None, other.clone().recast()),
            };
            let _ = tx.send(FactUpdate::Database {
                target,
                observation,
            });
        }
        if ephemeral {
            let listing = match (&p, target) {
                (Probe::Observed(obs), Some((pod, container))) => {
                    Probe::Observed(listing_from_files(&obs.report, pod, container))
                }
                (other, _) => other.clone().recast(),
            };
            let _ = tx.send(FactUpdate::PodFiles(listing));
        }
        let _ = tx.send(FactUpdate::Network(p));
    };
    futures::join!(service, database, network);
}

/// The first running pod with the Elsa container, for the exec listing and the ephemeral
/// container.
fn running_pod(pods: &Probe<Vec<Pod>>, container: Option<&str>) -> Option<(String, String)> {
    let container = container?;
    // The container itself must be running: a crash-looping one has nothing to exec into.
    pods.observed()?.iter().find_map(|p| {
        let status = p.status.as_ref()?;
        let running = status.phase.as_deref() == Some("Running")
            && status.container_statuses.iter().flatten().any(|c| {
                c.name == container && c.state.as_ref().is_some_and(|s| s.running.is_some())
            });
        let name = p.metadata.name.clone()?;
        running.then(|| (name, container.to_owned()))
    })
}

/// The exec listing: one `ls` through `sh` in the Elsa container (read-only).
async fn list_pod_files(
    client: Client,
    ns: String,
    pod: String,
    container: String,
    timeout: Duration,
) -> Probe<crate::facts::PodListing> {
    crate::gather::pod::exec(
        client,
        ns,
        pod.clone(),
        container.clone(),
        elsa::listing_command(),
        timeout,
    )
    .await
    .and_then(|out| match elsa::parse_listing(&out.stdout) {
        Ok(paths) => {
            let contents = crate::domain::image_contents::parse_contents(&out.stdout);
            let clues = crate::domain::image_contents::image_clues(&paths, &contents);
            Probe::Observed(crate::facts::PodListing {
                pod,
                container,
                paths,
                contents,
                clues,
            })
        }
        Err(why) => Probe::failed(None, why),
    })
}

/// The ephemeral container's `--files` results as a listing.
fn listing_from_files(
    report: &crate::probe::ProbeReport,
    pod: String,
    container: String,
) -> crate::facts::PodListing {
    let mut paths: Vec<String> = report
        .files
        .iter()
        .flat_map(|l| l.entries.iter().map(|e| e.path.clone()))
        .collect();
    paths.sort();
    paths.dedup();
    let contents = crate::domain::image_contents::ImageContents::default();
    let clues = crate::domain::image_contents::image_clues(&paths, &contents);
    crate::facts::PodListing {
        pod,
        container,
        paths,
        contents,
        clues,
    }
}

/// Names of the ConfigMaps and Secrets a pod template references.
type SourceNames = (BTreeSet<String>, BTreeSet<String>);

/// The selected workload's name, label selector and referenced sources, or why its pods and
/// sources cannot be fetched.
fn select(
    deployments: &Probe<Vec<Deployment>>,
    statefulsets: &Probe<Vec<StatefulSet>>,
    inferred: &Inferred,
    hint: Option<&str>,
) -> Result<(String, String, SourceNames, Option<elsa::Identity>), String> {
    let empty_d = Vec::new();
    let empty_s = Vec::new();
    let all = if deployments.observed().is_none() && statefulsets.observed().is_none() {
        Workload::all(&inferred.deployments, &inferred.statefulsets)
    } else {
        Workload::all(
            deployments.observed().unwrap_or(&empty_d),
            statefulsets.observed().unwrap_or(&empty_s),
        )
    };
    match elsa::select_workload(&all, hint) {
        Selection::Selected { index, .. } => {
            let w = all.get(index).ok_or("selection out of range")?;
            let sel = w
                .selector()
                .ok_or_else(|| format!("{} has no selector", w.reference()))?;
            let query = selector_query(sel).map_err(|e| format!("{}: {e}", w.reference()))?;
            let sources = w.pod_spec().map(referenced_sources).unwrap_or_default();
            Ok((w.name().to_owned(), query, sources, elsa::identify(w)))
        }
        _ => Err("no Elsa workload identified: see workload.found".to_owned()),
    }
}

/// The referenced ConfigMaps and Secrets, each fetched by name (never a namespace-wide list),
/// all at once. Secret values are decoded into [`Secret`]s.
async fn config_sources(
    client: Client,
    ns: String,
    config_maps: BTreeSet<String>,
    secrets: BTreeSet<String>,
    timeout: Duration,
) -> (
    BTreeMap<String, Probe<ConfigMapData>>,
    BTreeMap<String, Probe<SecretData>>,
) {
    let cm_api: Api<ConfigMap> = Api::namespaced(client.clone(), &ns);
    let secret_api: Api<K8sSecret> = Api::namespaced(client, &ns);
    // Owned names: futures that borrow from an iterator's closure are not `Send` for every
    // lifetime, which `tokio::spawn` needs.
    let cms = join_all(config_maps.iter().cloned().map(|name| {
        let api = cm_api.clone();
        async move {
            let p = read("configmap", "get", "configmaps", timeout, || {
                let (api, name) = (api.clone(), name.clone());
                async move { api.get(&name).await }
            })
            .await;
            let p = p.map(ConfigMapData::from);
            (name, p)
        }
    }));
    let secs = join_all(secrets.iter().cloned().map(|name| {
        let api = secret_api.clone();
        async move {
            let p = read("secret", "get", "secrets", timeout, || {
                let (api, name) = (api.clone(), name.clone());
                async move { api.get(&name).await }
            })
            .await;
            let p = p.map(SecretData::from);
            (name, p)
        }
    }));
    let (cms, secs) = futures::join!(cms, secs);
    (cms.into_iter().collect(), secs.into_iter().collect())
}

/// Events about the workload and its pods: one field-selected list per object while there are
/// few, else one list of the namespace's Warning events.
async fn events_for(
    client: &Client,
    ns: &str,
    objects: &[String],
    timeout: Duration,
) -> Probe<Vec<Event>> {
    let api: Api<Event> = Api::namespaced(client.clone(), ns);
    if objects.len() > PER_POD_EVENT_LISTS + 1 {
        let lp = ListParams::default().fields("type=Warning");
        return read("events", "list", "events", timeout, || api.list(&lp))
            .await
            .map(|l| {
                l.items
                    .into_iter()
                    .filter(|e| {
                        e.involved_object
                            .name
                            .as_ref()
                            .is_some_and(|n| objects.contains(n))
                    })
                    .collect()
            });
    }
    let lists = join_all(objects.iter().map(|name| {
        let api = api.clone();
        let lp = ListParams::default().fields(&format!("involvedObject.name={name}"));
        async move { read("events", "list", "events", timeout, || api.list(&lp)).await }
    }))
    .await;
    let mut all = Vec::new();
    for probe in lists {
        match probe {
            Probe::Observed(l) => all.extend(l.items),
            // One refusal or failure means the set is incomplete: say so rather than guess.
            other => return other.map(|_| Vec::new()),
        }
    }
    Probe::Observed(all)
}
