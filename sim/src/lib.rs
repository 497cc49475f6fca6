//! A simulated Kubernetes API server for tests and `elsadoctor demo`.
//!
//! A [`Scenario`] is a directory of manifests (what a user applied) plus an
//! optional `sim.yaml` (what the cluster made of them: pods and their states,
//! events, RBAC, faults, latency). [`SimServer::start`] serves it on
//! `127.0.0.1:<random port>` with the real API's JSON shapes, `Status`
//! errors, selector semantics and discovery, so the real kube-rs client runs
//! against it unchanged; [`SimServer::kubeconfig_yaml`] points a client at it.
//! `pods/portforward` speaks the real WebSocket protocol and tunnels each
//! forwarded port to a real TCP address (`portForwards:` in `sim.yaml`, or
//! [`Scenario::with_port_forward`]).
//!
//! `pods/exec` speaks the real WebSocket channel protocol (`v5.channel.k8s.io`,
//! `v4.channel.k8s.io`) and answers from the container's simulated filesystem with a tiny
//! `sh -c` interpreter (module `shell`): `images:` in `sim.yaml` declares what each image holds
//! (`files:` paths or `{path, size}`, `shell: false` for images without `/bin/sh`), per-pod
//! `files:` adds what the app created at run time, per-pod `shell:` overrides the image; stock
//! Elsa images get their real layout from the simulator's own table (module `images`).
//!
//! Pods can be created (`POST pods`), deleted (one, or a collection by selector) and given
//! ephemeral containers (`PATCH pods/{name}/ephemeralcontainers`); watches see every change.
//! With [`Scenario::with_kubelet`] a kubelet stand-in runs them: containers whose command starts
//! with `elsadoctor` run as child processes of the configured binary, their output becoming the
//! container's log (`follow=true` streams it), the pod moving Pending → Running →
//! Succeeded/Failed.

pub mod config;
mod exec;
mod fs;
mod http;
mod images;
mod kubelet;
mod network;
mod pgwire;
mod portforward;
mod rbac;
mod resources;
pub mod selectors;
mod server;
mod shell;
mod store;
mod transport;
mod util;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};

pub use config::{PortForwardConfig, PostgresConfig, SimConfig};
pub use kubelet::KubeletConfig;
pub use network::bind_udp_and_tcp_on_one_port;
use store::{Manifest, Store};
pub use transport::{CA_PEM, ConnectionRecord, ConnectionStats, Transport};

/// Errors loading a scenario or starting the server. Messages are one line
/// and name the file (and YAML line:column when the parser knows it).
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// A scenario file could not be read.
    #[error("reading {path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A file is not valid YAML (or `sim.yaml` does not have the expected shape).
    #[error("{file}{location}: {message}")]
    Yaml {
        /// The file.
        file: String,
        /// `:line:column` or empty.
        location: String,
        /// The parser's message (first line).
        message: String,
    },
    /// The scenario is inconsistent (unknown kind, missing workload, ...).
    #[error("{0}")]
    Scenario(String),
    /// The directory has no manifests.
    #[error("{0}: no manifests found (expected *.yaml or *.yml files besides sim.yaml)")]
    NoManifests(String),
    /// The listening socket could not be opened.
    #[error("starting the simulated API server on 127.0.0.1: {0}")]
    Bind(#[source] std::io::Error),
    /// The built-in TLS certificate could not be loaded.
    #[error("the simulated API server's TLS configuration: {0}")]
    Tls(String),
}

/// One request as the server saw and answered it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RecordedRequest {
    /// HTTP method.
    pub method: String,
    /// URL path.
    pub path: String,
    /// Raw query string.
    pub query: Option<String>,
    /// get|list|watch|create|update|patch|delete|deletecollection (non-resource: lowercase method).
    pub verb: String,
    /// API group, `""` for core.
    pub group: String,
    /// Resource plural (`""` for non-resource paths).
    pub resource: String,
    /// Subresource.
    pub subresource: Option<String>,
    /// Namespace from the path.
    pub namespace: Option<String>,
    /// Object name from the path.
    pub name: Option<String>,
    /// HTTP status code returned.
    pub status: u16,
    /// When the request arrived, in microseconds since the server started.
    pub received_us: u64,
    /// When its answer was ready (after injected latency), same clock.
    pub answered_us: u64,
    /// The connection it arrived on ([`ConnectionRecord::id`]).
    pub connection: u64,
    /// The HTTP version it arrived as: `HTTP/2.0` or `HTTP/1.1`.
    pub version: String,
}

/// The longest chain of requests where each one arrived only after the previous one was
/// answered: the round trips a client spent in sequence. Gathering that is concurrent keeps it
/// short whatever the number of requests.
pub fn longest_sequential_chain(log: &[RecordedRequest]) -> usize {
    let mut by_arrival: Vec<&RecordedRequest> = log.iter().collect();
    by_arrival.sort_by_key(|r| r.received_us);
    // depth[i] = longest chain ending with request i.
    let mut depth: Vec<usize> = Vec::with_capacity(by_arrival.len());
    for (i, r) in by_arrival.iter().enumerate() {
        let best = by_arrival[..i]
            .iter()
            .zip(&depth)
            .filter(|(p, _)| p.answered_us <= r.received_us)
            .map(|(_, d)| *d)
            .max()
            .unwrap_or(0);
        depth.push(best + 1);
    }
    depth.into_iter().max().unwrap_or(0)
}

/// Whether the `/version` answer is Kubernetes 1.`minor` or later (`"35+"` counts as 35).
fn minor_at_least(version: &Value, minor: u32) -> bool {
    let major = version.get("major").and_then(Value::as_str).unwrap_or("1");
    let digits: String = version
        .get("minor")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    major.trim_end_matches('+') == "1" && digits.parse::<u32>().is_ok_and(|m| m >= minor)
}

/// A scenario that ships inside the binary (`sim/src/demo/<name>/`), for `elsadoctor demo`.
#[derive(Debug, Clone, Copy)]
pub struct Builtin {
    /// What `demo --scenario` takes.
    pub name: &'static str,
    /// One line: what the scenario shows.
    pub description: &'static str,
    manifests: &'static str,
    sim: &'static str,
}

/// The built-in scenario `elsadoctor demo` runs without `--scenario`.
pub const DEFAULT_BUILTIN: &str = "crash-loop";

macro_rules! builtin {
    ($name:literal, $description:literal) => {
        Builtin {
            name: $name,
            description: $description,
            manifests: include_str!(concat!("demo/", $name, "/manifests.yaml")),
            sim: include_str!(concat!("demo/", $name, "/sim.yaml")),
        }
    };
}

/// Every built-in scenario, the default first. Each is one consistent cluster: every finding
/// the doctor reports on it is true of that cluster at once (tests/demo.rs proves it).
pub const BUILTINS: &[Builtin] = &[
    builtin!(
        "crash-loop",
        "Elsa 3.5 with one pod OOMKilled in CrashLoopBackOff and a PostgreSQL pod that is not ready, so nothing reaches the database"
    ),
    builtin!(
        "healthy",
        "a healthy Elsa 3.5 on PostgreSQL 16: every pod ready, the database answering with Elsa's tables and 3.5 migrations"
    ),
    builtin!(
        "guide-option-a",
        "the guide's Option A as written: Elsa runs but stays on SQLite, and its PostgreSQL connection string is never usable"
    ),
];

/// A loaded scenario: manifests plus `sim.yaml`, already materialised.
#[derive(Clone)]
pub struct Scenario {
    name: String,
    objects: Vec<Value>,
    config: SimConfig,
    store: Arc<Store>,
    kubelet: Option<KubeletConfig>,
}

impl std::fmt::Debug for Scenario {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scenario")
            .field("name", &self.name)
            .field("objects", &self.objects.len())
            .field("namespace", &self.default_namespace())
            .finish_non_exhaustive()
    }
}

fn yaml_error(file: &str, e: &serde_saphyr::Error) -> SimError {
    let location = e
        .location()
        .map(|l| format!(":{}:{}", l.line(), l.column()))
        .unwrap_or_default();
    let text = e.to_string();
    let first = text
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("invalid YAML");
    // The parser prefixes "error: line L column C: "; the location is ours.
    let mut message = first.strip_prefix("error: ").unwrap_or(first);
    if message.starts_with("line ")
        && let Some(i) = message.find(": ")
        && message[..i].contains(" column ")
    {
        message = &message[i + 2..];
    }
    let message = message.to_string();
    SimError::Yaml {
        file: file.to_string(),
        location,
        message,
    }
}

fn parse_manifests(file: &str, text: &str) -> Result<Vec<Manifest>, SimError> {
    let docs: Vec<Value> = serde_saphyr::from_multiple(text).map_err(|e| yaml_error(file, &e))?;
    Ok(docs
        .into_iter()
        .enumerate()
        .filter(|(_, v)| !v.is_null())
        .map(|(i, value)| Manifest {
            source: format!("{file} document {}", i + 1),
            value,
        })
        .collect())
}

fn parse_sim(file: &str, text: &str) -> Result<SimConfig, SimError> {
    let meaningful = text
        .lines()
        .any(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#') && l.trim() != "---");
    if !meaningful {
        return Ok(SimConfig::default());
    }
    serde_saphyr::from_str::<SimConfig>(text).map_err(|e| yaml_error(file, &e))
}

impl Scenario {
    /// Load every `*.yaml`/`*.yml` (multi-document) in `dir` except
    /// `sim.yaml`, plus the optional `sim.yaml`.
    pub fn load_dir(dir: &Path) -> Result<Scenario, SimError> {
        let entries = std::fs::read_dir(dir).map_err(|source| SimError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        let mut files: Vec<PathBuf> = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|source| SimError::Io {
                path: dir.to_path_buf(),
                source,
            })?;
            let path = entry.path();
            let is_yaml = path
                .extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| e == "yaml" || e == "yml");
            let is_sim = path
                .file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n == "sim.yaml" || n == "sim.yml");
            if is_yaml && !is_sim && path.is_file() {
                files.push(path);
            }
        }
        files.sort();
        if files.is_empty() {
            return Err(SimError::NoManifests(dir.display().to_string()));
        }
        let read = |p: &Path| {
            std::fs::read_to_string(p).map_err(|source| SimError::Io {
                path: p.to_path_buf(),
                source,
            })
        };
        let mut manifests = Vec::new();
        for f in &files {
            manifests.extend(parse_manifests(&f.display().to_string(), &read(f)?)?);
        }
        let mut sim_file = None;
        for n in ["sim.yaml", "sim.yml"] {
            let p = dir.join(n);
            if p.is_file() {
                sim_file = Some(p);
                break;
            }
        }
        let (config, sim_label) = match &sim_file {
            Some(p) => (
                parse_sim(&p.display().to_string(), &read(p)?)?,
                p.display().to_string(),
            ),
            None => (
                SimConfig::default(),
                dir.join("sim.yaml").display().to_string(),
            ),
        };
        let name = dir
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("scenario")
            .to_string();
        Scenario::assemble(name, manifests, config, &sim_label)
    }

    /// Build a scenario from in-memory text: `manifests` is multi-document
    /// YAML, `sim_yaml` the optional `sim.yaml` content.
    pub fn from_documents(
        name: &str,
        manifests: &str,
        sim_yaml: Option<&str>,
    ) -> Result<Scenario, SimError> {
        let manifests = parse_manifests(&format!("{name}/manifests.yaml"), manifests)?;
        let sim_label = format!("{name}/sim.yaml");
        let config = match sim_yaml {
            Some(t) => parse_sim(&sim_label, t)?,
            None => SimConfig::default(),
        };
        Scenario::assemble(name.to_string(), manifests, config, &sim_label)
    }

    fn assemble(
        name: String,
        manifests: Vec<Manifest>,
        config: SimConfig,
        sim_label: &str,
    ) -> Result<Scenario, SimError> {
        let ns = config
            .namespace
            .clone()
            .unwrap_or_else(|| "default".to_string());
        for (i, f) in config.faults.iter().enumerate() {
            if !(400..=599).contains(&f.status) {
                return Err(SimError::Scenario(format!(
                    "{sim_label}: faults[{i}]: status {} must be an HTTP error code (400-599)",
                    f.status
                )));
            }
        }
        check_files(&config, sim_label)?;
        let store =
            Store::build(&manifests, &config, sim_label, &ns).map_err(SimError::Scenario)?;
        check_port_forwards(&config, &store, sim_label, &ns)?;
        Ok(Scenario {
            name,
            objects: manifests.into_iter().map(|m| m.value).collect(),
            config,
            store: Arc::new(store),
            kubelet: None,
        })
    }

    /// The default built-in scenario of `elsadoctor demo` ([`DEFAULT_BUILTIN`]).
    pub fn builtin_demo() -> Scenario {
        match Scenario::builtin(DEFAULT_BUILTIN) {
            Some(Ok(s)) => s,
            other => {
                // Unreachable in practice: a unit test proves every built-in parses.
                if let Some(Err(e)) = other {
                    tracing::error!("built-in demo scenario is broken: {e}");
                }
                Scenario {
                    name: "demo".into(),
                    objects: Vec::new(),
                    config: SimConfig::default(),
                    store: Arc::new(Store::default()),
                    kubelet: None,
                }
            }
        }
    }

    /// The built-in scenario `name` (see [`BUILTINS`]); `None` when there is none of that name.
    pub fn builtin(name: &str) -> Option<Result<Scenario, SimError>> {
        let b = BUILTINS.iter().find(|b| b.name == name)?;
        Some(Scenario::from_documents(b.name, b.manifests, Some(b.sim)))
    }

    /// The scenario's name (directory name for [`Scenario::load_dir`]).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The manifests as applied.
    pub fn objects(&self) -> &[Value] {
        &self.objects
    }

    /// The parsed `sim.yaml`.
    pub fn config(&self) -> &SimConfig {
        &self.config
    }

    /// `sim.yaml` `namespace`, default `"default"`.
    pub fn default_namespace(&self) -> &str {
        self.config.namespace.as_deref().unwrap_or("default")
    }

    /// Enable the kubelet stand-in: pods created through the API (`POST pods`) and ephemeral
    /// containers added to a pod run, `elsadoctor` commands as real child processes of
    /// `kubelet.exe` (see [`KubeletConfig`]). Without it, created pods stay Pending.
    pub fn with_kubelet(mut self, kubelet: KubeletConfig) -> Scenario {
        self.kubelet = Some(kubelet);
        self
    }

    /// Tunnel `pods/portforward` connections to `port` of pod `namespace/pod` to `to`
    /// (replacing an earlier target for that port). For tests whose servers listen on
    /// ports only known at run time; `sim.yaml` says the same with `portForwards:`.
    /// Only a Running pod's ports are forwarded; other ports of a Running pod refuse
    /// connections, like a container listening on nothing there.
    pub fn with_port_forward(
        mut self,
        namespace: &str,
        pod: &str,
        port: u16,
        to: std::net::SocketAddr,
    ) -> Scenario {
        let default_ns = self.default_namespace().to_string();
        let same = |f: &PortForwardConfig| {
            f.namespace.as_deref().unwrap_or(&default_ns) == namespace
                && f.pod == pod
                && f.port == port
        };
        self.config.port_forwards.retain(|f| !same(f));
        self.config.port_forwards.push(PortForwardConfig {
            namespace: Some(namespace.to_string()),
            pod: pod.to_string(),
            port,
            to: to.to_string(),
        });
        self
    }
}

/// `files:` of `images:` and `pods:` are absolute paths.
fn check_files(config: &SimConfig, sim_label: &str) -> Result<(), SimError> {
    let path_of = |f: &config::FileConfig| match f {
        config::FileConfig::Path(p) => p.clone(),
        config::FileConfig::Sized(s) => s.path.clone(),
    };
    let lists = config
        .images
        .iter()
        .map(|(image, i)| (format!("images[{image:?}]"), &i.files))
        .chain(
            config
                .pods
                .iter()
                .enumerate()
                .map(|(n, p)| (format!("pods[{n}]"), &p.files)),
        );
    for (at, files) in lists {
        for (i, f) in files.iter().enumerate() {
            let p = path_of(f);
            if !p.starts_with('/') {
                return Err(SimError::Scenario(format!(
                    "{sim_label}: {at}.files[{i}]: {p:?} is not an absolute path"
                )));
            }
        }
    }
    Ok(())
}

/// `portForwards:` entries name pods that exist, a non-zero port and a `host:port` target.
fn check_port_forwards(
    config: &SimConfig,
    store: &Store,
    sim_label: &str,
    default_ns: &str,
) -> Result<(), SimError> {
    let Some(pods) = resources::find("", "v1", "pods") else {
        return Ok(());
    };
    for (i, f) in config.port_forwards.iter().enumerate() {
        let ns = f.namespace.as_deref().unwrap_or(default_ns);
        let at = format!("{sim_label}: portForwards[{i}]");
        if f.port == 0 {
            return Err(SimError::Scenario(format!("{at}: port must be 1-65535")));
        }
        let to_ok = f.to.rsplit_once(':').is_some_and(|(host, port)| {
            !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p > 0)
        });
        if !to_ok {
            return Err(SimError::Scenario(format!(
                "{at}: to: {:?} is not host:port (e.g. \"127.0.0.1:55432\")",
                f.to
            )));
        }
        if store.entry(pods, ns, &f.pod).is_none() {
            let known: Vec<&str> = store
                .list(pods, Some(ns))
                .map(|((_, n), _)| n.as_str())
                .take(10)
                .collect();
            return Err(SimError::Scenario(format!(
                "{at}: pod {:?} not found in namespace {ns:?} (pods there: {})",
                f.pod,
                if known.is_empty() {
                    "none".to_string()
                } else {
                    known.join(", ")
                }
            )));
        }
    }
    Ok(())
}

/// A running simulated API server.
pub struct SimServer {
    addr: SocketAddr,
    token: String,
    namespace: String,
    state: Arc<server::ServerState>,
    transport: Transport,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl std::fmt::Debug for SimServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimServer")
            .field("addr", &self.addr)
            .field("namespace", &self.namespace)
            .finish_non_exhaustive()
    }
}

fn random_token() -> String {
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let stack_addr = &n as *const u64 as usize;
    format!(
        "sim-token-{}",
        util::hex_id(
            &[
                &nanos.to_string(),
                &std::process::id().to_string(),
                &n.to_string(),
                &stack_addr.to_string()
            ],
            32
        )
    )
}

impl SimServer {
    /// Bind `127.0.0.1:0` and serve the scenario from a spawned task, over TLS with ALPN
    /// offering `h2` and `http/1.1`, as a real API server does.
    pub async fn start(scenario: Scenario) -> Result<SimServer, SimError> {
        SimServer::start_with(scenario, Transport::Tls).await
    }

    /// [`SimServer::start`] over the given transport.
    pub async fn start_with(
        scenario: Scenario,
        transport: Transport,
    ) -> Result<SimServer, SimError> {
        let tls = transport::acceptor(transport).map_err(SimError::Tls)?;
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
            .await
            .map_err(SimError::Bind)?;
        let addr = listener.local_addr().map_err(SimError::Bind)?;
        let namespace = scenario.default_namespace().to_string();
        let token = random_token();
        let Scenario {
            config: cfg,
            store,
            kubelet,
            ..
        } = scenario;
        let cfg = &cfg;
        let mut port_forwards: Vec<(String, String, u16, String)> = cfg
            .port_forwards
            .iter()
            .map(|f| {
                (
                    f.namespace.clone().unwrap_or_else(|| namespace.clone()),
                    f.pod.clone(),
                    f.port,
                    f.to.clone(),
                )
            })
            .collect();
        let closing = tokio::sync::watch::channel(false).0;
        // Pods that answer HTTP: a responder each, behind the port-forward to their port (an
        // explicit `portForwards` entry for the same port wins).
        for (i, p) in cfg.pods.iter().enumerate() {
            let Some(http) = &p.http else { continue };
            let ns = p.namespace.clone().unwrap_or_else(|| namespace.clone());
            let names = match &p.name {
                Some(name) => vec![name.clone()],
                None => http::pods_of(&store, &ns, &p.workload),
            };
            if names.is_empty() {
                return Err(SimError::Scenario(format!(
                    "sim.yaml: pods[{i}]: http: no pods of {} in namespace {ns}",
                    p.workload
                )));
            }
            for name in names {
                if port_forwards
                    .iter()
                    .any(|(n, pod, port, _)| *n == ns && *pod == name && *port == http.port)
                {
                    continue;
                }
                let to = http::spawn(http.responses.clone(), closing.subscribe())
                    .await
                    .map_err(SimError::Bind)?;
                port_forwards.push((ns.clone(), name, http.port, to.to_string()));
            }
        }
        // Pods that run PostgreSQL: a protocol stand-in each, the same way.
        for (i, p) in cfg.pods.iter().enumerate() {
            let Some(pg) = &p.postgres else { continue };
            let ns = p.namespace.clone().unwrap_or_else(|| namespace.clone());
            let names = match &p.name {
                Some(name) => vec![name.clone()],
                None => http::pods_of(&store, &ns, &p.workload),
            };
            if names.is_empty() {
                return Err(SimError::Scenario(format!(
                    "sim.yaml: pods[{i}]: postgres: no pods of {} in namespace {ns}",
                    p.workload
                )));
            }
            if let Some(v) = pg.elsa.as_deref().filter(|v| !pgwire::known_schema(v)) {
                return Err(SimError::Scenario(format!(
                    "sim.yaml: pods[{i}]: postgres: elsa: {v:?} is not a schema the simulation holds (3.5 or none)"
                )));
            }
            for name in names {
                if port_forwards
                    .iter()
                    .any(|(n, pod, port, _)| *n == ns && *pod == name && *port == pg.port)
                {
                    continue;
                }
                let to = pgwire::spawn(pg.clone(), closing.subscribe())
                    .await
                    .map_err(SimError::Bind)?;
                port_forwards.push((ns.clone(), name, pg.port, to.to_string()));
            }
        }
        // The server changes its objects: its own copy, unless nobody else holds them.
        let mut store = Arc::unwrap_or_clone(store);
        let network = if cfg.cluster_network {
            Some(
                network::start(&mut store, &port_forwards, closing.subscribe())
                    .await
                    .map_err(SimError::Bind)?,
            )
        } else {
            None
        };
        let mut version = json!({
            "major": "1",
            "minor": "33",
            "emulationMajor": "1",
            "emulationMinor": "33",
            "minCompatibilityMajor": "1",
            "minCompatibilityMinor": "32",
            "gitVersion": "v1.33.1",
            "gitCommit": "8adc0f041b8e7ad1d30e29cc59c6ae7a15e19828",
            "gitTreeState": "clean",
            "buildDate": "2025-05-15T08:19:08Z",
            "goVersion": "go1.24.2",
            "compiler": "gc",
            "platform": "linux/amd64"
        });
        if let (Some(over), Some(m)) = (&cfg.version, version.as_object_mut()) {
            for (k, v) in over {
                m.insert(k.clone(), json!(v));
            }
        }
        let connect_requires_create = minor_at_least(&version, 35);
        let state = Arc::new(server::ServerState {
            epoch: std::time::Instant::now(),
            store: std::sync::RwLock::new(store),
            changes: tokio::sync::broadcast::channel(1024).0,
            log_tick: tokio::sync::watch::channel(0).0,
            images: cfg.images.clone(),
            kubelet,
            created_pods: cfg.created_pods.clone(),
            processes: kubelet::Processes::default(),
            token: token.clone(),
            rbac: rbac::Rbac::new(cfg.rbac.as_ref(), &namespace),
            faults: cfg.faults.clone(),
            fault_hits: Mutex::new(vec![0; cfg.faults.len()]),
            latency: Duration::from_millis(cfg.latency_ms),
            version,
            address: addr.to_string(),
            log: Mutex::new(Vec::new()),
            port_forwards,
            network,
            connect_requires_create,
            closing,
            connections: Arc::default(),
        });
        let app = axum::Router::new()
            .fallback(server::handle)
            .with_state(state.clone());
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(transport::serve(
            listener,
            app,
            tls,
            state.connections.clone(),
            rx,
        ));
        Ok(SimServer {
            addr,
            token,
            namespace,
            state,
            transport,
            shutdown: Some(tx),
            task: Some(task),
        })
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `https://127.0.0.1:PORT` (`http://` for [`Transport::Plain`]).
    pub fn url(&self) -> String {
        format!("{}://{}", self.transport.scheme(), self.addr)
    }

    /// How the server is reached.
    pub fn transport(&self) -> Transport {
        self.transport
    }

    /// Every TCP connection accepted so far, with its TLS handshake, protocol and requests.
    pub fn connections(&self) -> Vec<ConnectionRecord> {
        self.state.connections.snapshot()
    }

    /// Totals over [`SimServer::connections`].
    pub fn connection_stats(&self) -> ConnectionStats {
        self.state.connections.stats()
    }

    /// The bearer token the server accepts.
    pub fn token(&self) -> &str {
        &self.token
    }

    /// A kubeconfig: cluster `sim`, user `sim-user`, context `sim` (current)
    /// with the scenario's default namespace.
    /// Over TLS the cluster carries the test-only CA as `certificate-authority-data`.
    pub fn kubeconfig_yaml(&self) -> String {
        let ca = match self.transport {
            Transport::Plain => String::new(),
            Transport::Tls | Transport::TlsHttp1 => format!(
                "\n    certificate-authority-data: {}",
                util::base64_encode(CA_PEM.as_bytes())
            ),
        };
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: sim\n  cluster:\n    server: {url}{ca}\nusers:\n- name: sim-user\n  user:\n    token: {token}\ncontexts:\n- name: sim\n  context:\n    cluster: sim\n    user: sim-user\n    namespace: {ns}\ncurrent-context: sim\npreferences: {{}}\n",
            url = self.url(),
            token = self.token,
            ns = self.namespace
        )
    }

    /// The simulated cluster DNS (`clusterNetwork: true`).
    pub fn cluster_dns(&self) -> Option<SocketAddr> {
        self.state.network.as_ref().map(network::Network::dns)
    }

    /// The Service network's listening `ClusterIP:port` addresses, each with the pod targets
    /// it tunnels to (`clusterNetwork: true`; a Service port without a ready endpoint has none).
    pub fn service_routes(&self) -> Vec<(SocketAddr, Vec<String>)> {
        self.state
            .network
            .as_ref()
            .map(|n| n.routes().to_vec())
            .unwrap_or_default()
    }

    /// Snapshot of every request answered so far.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.state.log.lock().map(|l| l.clone()).unwrap_or_default()
    }

    /// Stop serving: graceful for up to two seconds, then abort. Open port-forward
    /// tunnels end.
    pub async fn shutdown(mut self) {
        self.state.closing.send_replace(true);
        self.state.processes.kill_all();
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(mut task) = self.task.take()
            && tokio::time::timeout(Duration::from_secs(2), &mut task)
                .await
                .is_err()
        {
            task.abort();
        }
    }
}

impl Drop for SimServer {
    fn drop(&mut self) {
        self.state.closing.send_replace(true);
        self.state.processes.kill_all();
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

#[cfg(test)]
mod tests;
