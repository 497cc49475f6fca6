//! The `sim.yaml` format: everything a real cluster's controllers, kubelets
//! and API server policy would contribute that is not in the applied
//! manifests (pods and their states, workload status overrides, events,
//! RBAC, injected faults, latency, noise, and where `pods/portforward`
//! tunnels lead).
//!
//! Unknown keys are rejected (`deny_unknown_fields`) so a typo in a
//! scenario fails loudly instead of silently simulating something else.

use std::collections::BTreeMap;

use serde::Deserialize;

/// Parsed `sim.yaml`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SimConfig {
    /// Default namespace for objects without one and for the kubeconfig context.
    pub namespace: Option<String>,
    /// Fields merged over the default `/version` answer.
    pub version: Option<BTreeMap<String, String>>,
    /// Added to every request.
    #[serde(default)]
    pub latency_ms: u64,
    /// Base time of the simulated cluster (RFC 3339, `YYYY-MM-DDTHH:MM:SSZ`).
    pub creation_timestamp: Option<String>,
    /// Authorization of the doctor's user.
    pub rbac: Option<RbacConfig>,
    /// Injected API failures.
    #[serde(default)]
    pub faults: Vec<FaultConfig>,
    /// Pods the controllers created.
    #[serde(default)]
    pub pods: Vec<PodConfig>,
    /// Workload status overrides.
    #[serde(default)]
    pub workloads: Vec<WorkloadConfig>,
    /// Job overrides (`job/<name>`); a Job's pods are `pods:` entries with `workload: job/<name>`,
    /// and its status follows from them as the Job controller writes it.
    #[serde(default)]
    pub jobs: Vec<JobConfig>,
    /// Events.
    #[serde(default)]
    pub events: Vec<EventConfig>,
    /// Unrelated generated objects.
    #[serde(default)]
    pub noise: NoiseConfig,
    /// Where `pods/portforward` connections to a pod's port are tunnelled.
    #[serde(default)]
    pub port_forwards: Vec<PortForwardConfig>,
    /// The simulated registry: what each image holds, for `pods/exec`. Keyed by image
    /// reference (`repo:tag`) or repository without tag. Images not listed: the stock Elsa
    /// images get their real layout, anything else a minimal shell image.
    #[serde(default)]
    pub images: BTreeMap<String, ImageConfig>,
    /// What the admission chain, the scheduler and the kubelet make of pods created through
    /// the API (`POST pods`: the doctor's debug pod).
    #[serde(default)]
    pub created_pods: CreatedPodsConfig,
    /// Simulate the Service network and cluster DNS for the pods the kubelet stand-in runs:
    /// Services get loopback ClusterIPs (127.96.x.y), each ClusterIP:port with a ready endpoint
    /// listens and tunnels to that endpoint's pod port (where `pods/portforward` leads), and a
    /// DNS server answers `<service>.<namespace>.svc.cluster.local`; the probe pods' resolv.conf
    /// points at it (unless [`crate::KubeletConfig`] names one).
    #[serde(default)]
    pub cluster_network: bool,
}

/// `createdPods:`: why a pod created through the API does not run. Empty: it is admitted,
/// bound to `node-1` and, with a kubelet stand-in, started. Whatever the setting, a container
/// whose environment names a missing Secret or ConfigMap (or key) waits with
/// `CreateContainerConfigError`, as the kubelet leaves it.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreatedPodsConfig {
    /// Admission refuses the create (after validation, as a validating admission plugin or
    /// webhook does).
    pub refuse: Option<RefuseConfig>,
    /// The scheduler finds no node: the pod stays Pending, unbound, with
    /// `PodScheduled=False`, reason `Unschedulable` and this message
    /// (`0/3 nodes are available: 3 Insufficient cpu. …`).
    pub unschedulable: Option<String>,
    /// No scheduler runs: the pod stays Pending, unbound, with no `PodScheduled` condition.
    #[serde(default)]
    pub no_scheduler: bool,
    /// Images the kubelet cannot pull (as written in the pod): the container waits with
    /// `ErrImagePull`, then `ImagePullBackOff`, with containerd's messages for a repository
    /// that does not exist.
    #[serde(default)]
    pub unpullable: Vec<String>,
}

/// An admission refusal: 403 `Forbidden` (`pods "<name>" is forbidden: <message>`, as
/// PodSecurity, ResourceQuota, LimitRange and webhooks answer) or 422 `Invalid`
/// (`Pod "<name>" is invalid: <field>: <message>`, with the cause in `details`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RefuseConfig {
    /// 403 or 422.
    pub code: u16,
    /// What follows `is forbidden: ` (403) or the field's message (422).
    pub message: String,
    /// 422 only: the field path (`spec.containers[0].image`).
    pub field: Option<String>,
}

/// One `images:` entry.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ImageConfig {
    /// The stock image whose contents this one has (a retagged or mirrored official image,
    /// `elsaworkflows/elsa-server-v3-5:3.5.1`); `files` are added on top.
    pub stock: Option<String>,
    /// Files in the image (a path ending in `/` is a directory).
    #[serde(default)]
    pub files: Vec<FileConfig>,
    /// Whether the image has `/bin/sh` and coreutils (`ls`, `echo`); default true. Without
    /// one, exec answers like the runtime: `executable file not found in $PATH`.
    pub shell: Option<bool>,
}

/// A file: its path, or `{path, size}`, or `{path, content}`.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum FileConfig {
    /// Just the path (size 0).
    Path(String),
    /// Path and size.
    Sized(SizedFileConfig),
}

/// A file with a size.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SizedFileConfig {
    /// Absolute path.
    pub path: String,
    /// Size in bytes (what `ls -l` shows); ignored when `content` is given.
    #[serde(default)]
    pub size: u64,
    /// The file's text (what `cat` and `grep` read); without it the file holds `size` NUL
    /// bytes.
    pub content: Option<String>,
}

/// `rbac:` section.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RbacConfig {
    /// User name in Forbidden messages; default `system:serviceaccount:<namespace>:doctor`.
    pub user: Option<String>,
    /// When present: only these rules are granted (plus discovery and self reviews).
    pub rules: Option<Vec<RuleConfig>>,
    /// Denials on top of "everything allowed" (or on top of `rules`).
    #[serde(default)]
    pub deny: Vec<DenyConfig>,
}

/// One allowed rule, `rbac.authorization.k8s.io/v1` PolicyRule shape plus `namespaces`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RuleConfig {
    /// API groups (`""` = core, `"*"` = all).
    #[serde(default)]
    pub api_groups: Vec<String>,
    /// Resources (`"*"`, `"pods"`, `"pods/log"`, `"pods/*"`).
    #[serde(default)]
    pub resources: Vec<String>,
    /// Verbs (`"*"` = all).
    #[serde(default)]
    pub verbs: Vec<String>,
    /// Restrict to these object names (empty = all).
    #[serde(default)]
    pub resource_names: Vec<String>,
    /// Non-resource URLs (`/healthz`, `/metrics`, `*`).
    #[serde(default, rename = "nonResourceURLs")]
    pub non_resource_urls: Vec<String>,
    /// Sim extension: the rule is bound by a RoleBinding in these namespaces
    /// only (empty = ClusterRoleBinding, applies everywhere incl. cluster scope).
    #[serde(default)]
    pub namespaces: Vec<String>,
}

/// One denial.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DenyConfig {
    /// Verb or `*`.
    pub verb: String,
    /// Resource plural (optionally `res/sub`) or `*`.
    pub resource: String,
    /// API group; omitted = any group.
    pub group: Option<String>,
    /// Subresource (`portforward`, `log`, or `*` for any); with it, `resource` names the
    /// parent resource (`{verb: create, resource: pods, subresource: portforward}` is the
    /// same as `{verb: create, resource: pods/portforward}`).
    pub subresource: Option<String>,
    /// Namespace; omitted = everywhere.
    pub namespace: Option<String>,
}

/// One injected fault.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FaultConfig {
    /// Verb filter (`get`, `list`, ...); omitted = any.
    pub verb: Option<String>,
    /// Resource filter (plural); omitted = any.
    pub resource: Option<String>,
    /// Group filter; omitted = any.
    pub group: Option<String>,
    /// Subresource filter; omitted = any.
    pub subresource: Option<String>,
    /// Namespace filter; omitted = any.
    pub namespace: Option<String>,
    /// Name filter; omitted = any.
    pub name: Option<String>,
    /// Path prefix filter (useful for `/version`, `/apis`); omitted = any.
    pub path: Option<String>,
    /// HTTP status code to answer with.
    pub status: u16,
    /// How many matching requests fail; omitted = all of them.
    pub times: Option<u32>,
    /// Status message override.
    pub message: Option<String>,
    /// Extra delay before the failure is returned.
    #[serde(default)]
    pub delay_ms: u64,
}

/// One pod (or `count` identical pods) created by a workload controller.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PodConfig {
    /// `deployment/<name>` or `statefulset/<name>`.
    pub workload: String,
    /// Workload namespace; default = scenario namespace.
    pub namespace: Option<String>,
    /// Pod name; default generated.
    pub name: Option<String>,
    /// Pending | Running | Succeeded | Failed | Unknown (default Running).
    pub phase: Option<String>,
    /// Pod readiness; default true when Running.
    pub ready: Option<bool>,
    /// spec.nodeName; default `node-1` unless unscheduled.
    pub node: Option<String>,
    /// Whether the pod is bound to a node; default false only for Pending pods
    /// whose PodScheduled condition override is False.
    pub scheduled: Option<bool>,
    /// Per-container status, keyed by container name.
    #[serde(default)]
    pub containers: BTreeMap<String, ContainerConfig>,
    /// Pod condition overrides keyed by type.
    #[serde(default)]
    pub conditions: BTreeMap<String, ConditionConfig>,
    /// Create this many such pods.
    pub count: Option<u32>,
    /// Pod belongs to the previous ReplicaSet / revision of a rollout.
    #[serde(default)]
    pub old: bool,
    /// Overrides the image of the first container (e.g. the old revision's image).
    pub image: Option<String>,
    /// Current container logs keyed by container name (`pods/log`).
    #[serde(default)]
    pub logs: BTreeMap<String, String>,
    /// Previous-instance logs keyed by container name (`pods/log?previous=true`).
    #[serde(default)]
    pub previous_logs: BTreeMap<String, String>,
    /// Files the app created at run time in its (first) container, on top of the image's,
    /// e.g. `/app/App_Data/elsa.sqlite.db` (what `pods/exec` `ls` sees).
    #[serde(default)]
    pub files: Vec<FileConfig>,
    /// Overrides the image's `shell` for the first container.
    pub shell: Option<bool>,
    /// An HTTP server in the pod (needs `name`), reached through `pods/portforward`.
    pub http: Option<HttpConfig>,
    /// The pod runs PostgreSQL: a protocol stand-in answers behind the port-forward to its port
    /// (and the Service network) with this role, database and Elsa schema.
    pub postgres: Option<PostgresConfig>,
}

/// `postgres: { user: elsa, password: ..., database: elsa, elsa: "3.5" }`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PostgresConfig {
    /// The pod port (default 5432).
    #[serde(default = "default_pg_port")]
    pub port: u16,
    /// The one role that may log in.
    pub user: String,
    /// Its password (pg_hba `password`: sent in clear by the client).
    pub password: String,
    /// The one database.
    pub database: String,
    /// The Elsa schema the database holds: `"3.5"`, or `none`.
    pub elsa: Option<String>,
    /// `version()`'s answer (default PostgreSQL 16.4).
    pub version: Option<String>,
    /// `max_connections` (default 100).
    #[serde(default = "default_max_connections")]
    pub max_connections: i32,
    /// Client sessions `pg_stat_activity` counts (default 6: two Elsa pods' pools and this one).
    #[serde(default = "default_connections")]
    pub connections: i32,
}

impl Default for PostgresConfig {
    fn default() -> Self {
        PostgresConfig {
            port: default_pg_port(),
            user: "elsa".into(),
            password: String::new(),
            database: "elsa".into(),
            elsa: None,
            version: None,
            max_connections: default_max_connections(),
            connections: default_connections(),
        }
    }
}

impl PostgresConfig {
    /// `version()`.
    pub fn version_string(&self) -> String {
        self.version.clone().unwrap_or_else(|| {
            "PostgreSQL 16.4 (Debian 16.4-1.pgdg120+2) on x86_64-pc-linux-gnu, compiled by gcc (Debian 12.2.0-14) 12.2.0, 64-bit".to_string()
        })
    }

    /// The `server_version` parameter: the version number from [`Self::version_string`].
    pub fn version_number(&self) -> &str {
        let v = self.version.as_deref().unwrap_or("PostgreSQL 16.4");
        v.split_whitespace().nth(1).unwrap_or("16.4")
    }
}

fn default_pg_port() -> u16 {
    5432
}

fn default_max_connections() -> i32 {
    100
}

fn default_connections() -> i32 {
    6
}

/// A pod's HTTP answers by path, served behind `pods/portforward` to `port` of the pod:
/// `http: { port: 8080, responses: { "/health/ready": { status: 503, body: "..." } } }`.
/// A path without an entry answers 404 with an empty body.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HttpConfig {
    /// The pod port (default 8080, what Elsa's images listen on).
    #[serde(default = "default_http_port")]
    pub port: u16,
    /// Answers keyed by request path (without the query).
    #[serde(default)]
    pub responses: BTreeMap<String, HttpResponseConfig>,
}

fn default_http_port() -> u16 {
    8080
}

/// One HTTP answer.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HttpResponseConfig {
    /// Status code (default 200).
    pub status: Option<u16>,
    /// Body, sent as `text/plain`.
    #[serde(default)]
    pub body: String,
}

/// Per-container status overrides.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ContainerConfig {
    /// restartCount.
    #[serde(default)]
    pub restarts: u32,
    /// Readiness; default = pod readiness, false when waiting/terminated.
    pub ready: Option<bool>,
    /// Current state waiting.
    pub waiting: Option<StateConfig>,
    /// Current state terminated.
    pub terminated: Option<StateConfig>,
    /// lastState terminated.
    pub last_terminated: Option<StateConfig>,
}

/// A container state (waiting or terminated).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StateConfig {
    /// Reason.
    pub reason: Option<String>,
    /// Message.
    pub message: Option<String>,
    /// Exit code (terminated only).
    pub exit_code: Option<i32>,
    /// Signal (terminated only).
    pub signal: Option<i32>,
    /// startedAt (terminated only).
    pub started_at: Option<String>,
    /// finishedAt (terminated only).
    pub finished_at: Option<String>,
}

/// A pod condition override.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ConditionConfig {
    /// "True" | "False" | "Unknown".
    pub status: String,
    /// Reason.
    pub reason: Option<String>,
    /// Message.
    pub message: Option<String>,
}

/// Workload status overrides.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WorkloadConfig {
    /// `deployment/<name>` or `statefulset/<name>`.
    pub name: String,
    /// Namespace; default = scenario namespace.
    pub namespace: Option<String>,
    /// Progressing=False, reason ProgressDeadlineExceeded.
    #[serde(default)]
    pub progress_deadline_exceeded: bool,
    /// ReplicaFailure=True (reason FailedCreate) with this message.
    pub replica_failure: Option<String>,
    /// Set false to create no default pods for this workload.
    pub create_pods: Option<bool>,
}

/// One `jobs:` entry.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct JobConfig {
    /// `job/<name>`.
    pub name: String,
    /// Namespace; default = scenario namespace.
    pub namespace: Option<String>,
    /// `status.startTime` this many seconds before the simulator starts (wall clock), for a
    /// Job that is still running; default: the scenario's base time.
    pub started_seconds_ago: Option<u64>,
}

/// One Event.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EventConfig {
    /// `<kind>/<name>` of the involved object (kind case-insensitive, e.g. `pod/x`).
    pub object: String,
    /// Namespace of the involved object; default = scenario namespace.
    pub namespace: Option<String>,
    /// Normal | Warning (default Normal).
    #[serde(rename = "type")]
    pub type_: Option<String>,
    /// Reason.
    pub reason: String,
    /// Message.
    #[serde(default)]
    pub message: String,
    /// Count (default 1).
    pub count: Option<u32>,
    /// source.component; default by reason/kind.
    pub source: Option<String>,
    /// involvedObject.fieldPath.
    pub field_path: Option<String>,
    /// Shorthand for fieldPath `spec.containers{<name>}`.
    pub container: Option<String>,
    /// firstTimestamp (RFC 3339).
    pub first_timestamp: Option<String>,
    /// lastTimestamp (RFC 3339).
    pub last_timestamp: Option<String>,
}

/// Generated unrelated objects.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NoiseConfig {
    /// Number of pods.
    #[serde(default)]
    pub pods: usize,
    /// Number of configmaps.
    #[serde(default)]
    pub configmaps: usize,
    /// Namespace; default = scenario namespace.
    pub namespace: Option<String>,
}

/// One `pods/portforward` target: a forwarded connection to `port` of `pod` is tunnelled to
/// the TCP address `to` on this machine (a real server a test or the demo runs). A port of a
/// running pod with no entry here answers like a kubelet whose pod listens on nothing there:
/// the `connection refused` error on the port's error channel.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PortForwardConfig {
    /// Pod namespace; default = scenario namespace.
    pub namespace: Option<String>,
    /// Pod name.
    pub pod: String,
    /// The pod port a client forwards (`ports=5432`).
    pub port: u16,
    /// `host:port` the tunnel connects to, e.g. `127.0.0.1:55432`.
    pub to: String,
}
