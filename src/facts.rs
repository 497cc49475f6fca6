//! Facts: the owned, serializable snapshot of everything a run observed.
//!
//! `gather/` produces facts; checks read them and nothing else. Every fact is a [`Probe`], so
//! "could not look" (forbidden, failed, not attempted) is never confused with "found nothing".
//! Facts hold Kubernetes objects as k8s-openapi types, already scrubbed of secrets by `redact`
//! when they were gathered.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{Event, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use serde::{Deserialize, Serialize, Serializer};

use crate::redact::{self, Secret};

pub mod network;

/// The result of trying to observe one thing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "state", content = "value", rename_all = "camelCase")]
pub enum Probe<T> {
    /// Seen, with its value.
    Observed(T),
    /// The API said it does not exist (404).
    Absent,
    /// The API refused (403): which verb on which resource.
    Forbidden { verb: String, resource: String },
    /// The attempt failed: timeout, connection error, server error, bad answer.
    Failed(Failure),
    /// Not tried, and why (a prerequisite failed, the deadline passed, not needed).
    NotAttempted(String),
}

/// Why an observation failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failure {
    /// The HTTP status, when the API answered.
    pub code: Option<u16>,
    pub reason: String,
    /// Set when the failure is the probe pod of `--vantage debug-pod` never running its probe:
    /// what the scheduler, the kubelet or admission said, for the checks to name as a cause.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probe_pod: Option<Box<network::PodNotStarted>>,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.code {
            Some(code) => write!(f, "HTTP {code}: {}", self.reason),
            None => f.write_str(&self.reason),
        }
    }
}

impl<T> Probe<T> {
    pub fn failed(code: Option<u16>, reason: impl Into<String>) -> Self {
        Probe::Failed(Failure {
            code,
            reason: reason.into(),
            probe_pod: None,
        })
    }

    pub fn observed(&self) -> Option<&T> {
        match self {
            Probe::Observed(v) => Some(v),
            _ => None,
        }
    }

    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> Probe<U> {
        match self {
            Probe::Observed(v) => Probe::Observed(f(v)),
            Probe::Absent => Probe::Absent,
            Probe::Forbidden { verb, resource } => Probe::Forbidden { verb, resource },
            Probe::Failed(e) => Probe::Failed(e),
            Probe::NotAttempted(r) => Probe::NotAttempted(r),
        }
    }

    /// The observed value, or this probe's state (why nothing was observed) as a probe of
    /// another type, for early returns.
    pub fn into_result<U>(self) -> Result<T, Probe<U>> {
        match self {
            Probe::Observed(v) => Ok(v),
            Probe::Absent => Err(Probe::Absent),
            Probe::Forbidden { verb, resource } => Err(Probe::Forbidden { verb, resource }),
            Probe::Failed(e) => Err(Probe::Failed(e)),
            Probe::NotAttempted(r) => Err(Probe::NotAttempted(r)),
        }
    }

    /// This probe's state without its value, as a probe of another type (an observation becomes
    /// "not attempted": use it where the value cannot carry over).
    pub fn recast<U>(self) -> Probe<U> {
        match self.into_result() {
            Ok(_) => Probe::NotAttempted("no value".to_owned()),
            Err(why) => why,
        }
    }

    /// Chains an observation that may itself turn out unobservable.
    pub fn and_then<U>(self, f: impl FnOnce(T) -> Probe<U>) -> Probe<U> {
        match self {
            Probe::Observed(v) => f(v),
            Probe::Absent => Probe::Absent,
            Probe::Forbidden { verb, resource } => Probe::Forbidden { verb, resource },
            Probe::Failed(e) => Probe::Failed(e),
            Probe::NotAttempted(r) => Probe::NotAttempted(r),
        }
    }

    /// Why this probe holds no value, for messages: `None` when observed.
    pub fn why_not(&self) -> Option<String> {
        match self {
            Probe::Observed(_) => None,
            Probe::Absent => Some("not found".to_owned()),
            Probe::Forbidden { verb, resource } => {
                Some(format!("forbidden: this user cannot {verb} {resource}"))
            }
            Probe::Failed(e) => Some(e.to_string()),
            Probe::NotAttempted(r) => Some(format!("not attempted: {r}")),
        }
    }
}

/// The API server's `/version`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerVersion {
    pub git_version: String,
    pub platform: String,
}

/// The namespace object, reduced to what checks use.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NamespaceInfo {
    pub name: String,
    /// `Active` or `Terminating`.
    pub phase: Option<String>,
    /// Its labels (NetworkPolicy namespace selectors match them).
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

/// The NetworkPolicies of the namespace, and the labels of the namespaces their selectors may
/// pick (the cluster DNS namespace), for `network.policy`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PolicyFacts {
    pub policies: Vec<k8s_openapi::api::networking::v1::NetworkPolicy>,
    /// Other namespaces' labels, by name (`kube-system`); read only when some policy exists.
    pub namespaces: BTreeMap<String, Probe<BTreeMap<String, String>>>,
}

/// How the namespace migrates (`migration.*`): its Jobs and CronJobs, and for each Job that
/// migrates Elsa's database, its pods and their logs. Specs are scrubbed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MigrationFacts {
    pub jobs: Probe<Vec<k8s_openapi::api::batch::v1::Job>>,
    pub cron_jobs: Probe<Vec<k8s_openapi::api::batch::v1::CronJob>>,
    /// The pods of each migrating Job, by Job name (listed with the Job's selector).
    #[serde(default)]
    pub job_pods: BTreeMap<String, Probe<Vec<Pod>>>,
    /// The logs of those pods' containers, by Job name.
    #[serde(default)]
    pub job_logs: BTreeMap<String, Probe<Vec<PodLog>>>,
    /// When the lists were read (RFC 3339), for a running Job's age; `None` in `lint`.
    #[serde(default)]
    pub observed_at: Option<String>,
}

/// One rule of a SelfSubjectRulesReview.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResourceRule {
    pub verbs: Vec<String>,
    pub api_groups: Vec<String>,
    pub resources: Vec<String>,
    pub resource_names: Vec<String>,
}

/// The answer of one SelfSubjectRulesReview for the namespace.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessRules {
    pub rules: Vec<ResourceRule>,
    /// The authorizer could not list everything (webhook authorizers): a missing rule may
    /// still be allowed.
    pub incomplete: bool,
    pub evaluation_error: Option<String>,
}

/// A permission a check needs, from the catalogue's `needs` (e.g. `list pods`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Need {
    pub check: String,
    pub verb: String,
    pub group: String,
    pub resource: String,
}

/// A ConfigMap's data. Not secret by definition, but people put passwords in them, so its
/// serialized form passes every value through [`redact::text`].
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConfigMapData {
    pub data: BTreeMap<String, String>,
    /// Keys of `binaryData` (their content is never needed).
    pub binary_keys: BTreeSet<String>,
}

impl ConfigMapData {
    pub fn has_key(&self, key: &str) -> bool {
        self.data.contains_key(key) || self.binary_keys.contains(key)
    }
}

impl Serialize for ConfigMapData {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let masked: BTreeMap<&str, String> = self
            .data
            .iter()
            .map(|(k, v)| {
                let shown = if redact::is_shaping() {
                    redact::shape_text(k, v)
                } else {
                    redact::text(v)
                };
                (k.as_str(), shown)
            })
            .collect();
        use serde::ser::SerializeStruct;
        let mut out = s.serialize_struct("ConfigMapData", 2)?;
        out.serialize_field("data", &masked)?;
        out.serialize_field("binaryKeys", &self.binary_keys)?;
        out.end()
    }
}

impl From<k8s_openapi::api::core::v1::ConfigMap> for ConfigMapData {
    fn from(cm: k8s_openapi::api::core::v1::ConfigMap) -> Self {
        Self {
            data: cm.data.unwrap_or_default(),
            binary_keys: cm.binary_data.unwrap_or_default().into_keys().collect(),
        }
    }
}

/// A Secret's data, decoded. Values are [`Secret`]s: usable, never printable (serialized as the
/// mask, or in a facts bundle as their shapes, [`redact::shape_keyed`]).
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
pub struct SecretData {
    pub data: BTreeMap<String, Secret>,
}

impl Serialize for SecretData {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let shown: BTreeMap<&str, String> = self
            .data
            .iter()
            .map(|(k, v)| {
                let shown = if redact::is_shaping() {
                    redact::shape_keyed(k, v.expose())
                } else {
                    redact::MASK.to_owned()
                };
                (k.as_str(), shown)
            })
            .collect();
        use serde::ser::SerializeStruct;
        let mut out = s.serialize_struct("SecretData", 1)?;
        out.serialize_field("data", &shown)?;
        out.end()
    }
}

/// What the doctor tried to reach, for evidence (never the password).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DbTarget {
    pub host: String,
    pub port: u16,
    pub database: Option<String>,
    pub user: Option<String>,
    pub ssl_mode: String,
    /// `here`, `port-forward` or `debug-pod`.
    pub vantage: String,
    /// The pod a port-forward went through, or the probe pod that logged in.
    pub via: Option<String>,
    /// The password sent was literally a `$(VAR)` reference (an expansion that did not happen).
    pub password_is_reference: bool,
    /// Maximum Pool Size of the connection string (Npgsql default 100).
    pub max_pool_size: Option<u32>,
}

/// Why a login did not succeed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DbErrorKind {
    /// The server answered with an error (see `sqlstate`).
    Server,
    Refused,
    Timeout,
    Tls,
    Other,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DbError {
    pub kind: DbErrorKind,
    pub sqlstate: Option<String>,
    /// Secrets masked.
    pub message: String,
}

/// One expected table: whether it exists in schema "Elsa" and the app user's rights on it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableRights {
    pub name: String,
    pub exists: bool,
    pub select: bool,
    pub insert: bool,
    pub update: bool,
    pub delete: bool,
}

/// What one database session observed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DbFacts {
    pub server_version: String,
    pub current_user: String,
    pub database: String,
    pub max_connections: i32,
    pub reserved_connections: i32,
    pub current_connections: i32,
    pub schema_exists: bool,
    pub can_create_in_database: bool,
    pub can_create_in_schema: bool,
    /// USAGE on schema "Elsa": without it no table in it can be used.
    pub schema_usage: bool,
    pub history_exists: bool,
    /// Where the server saw the session come from (a port-forward arrives on the pod's loopback).
    pub client_addr: Option<String>,
    pub tables: Vec<TableRights>,
    /// Tables that look like Elsa's outside schema "Elsa" (`schema.table`).
    pub elsewhere: Vec<String>,
    /// `"Elsa"."__EFMigrationsHistory"` ids; `None` when the table does not exist or cannot be
    /// read (see `history_exists`).
    pub history: Option<Vec<String>>,
    /// The same rows with the EF Core `ProductVersion` that applied each (empty when the
    /// history cannot be read); `domain::image_contents::database_clues` reads them.
    #[serde(default)]
    pub history_rows: Vec<crate::domain::image_contents::HistoryRow>,
    /// EF Core history tables other than `"Elsa"."__EFMigrationsHistory"`: the guide's
    /// per-context tables, a lower-case `elsa` schema, `public` (`database.migrations`).
    #[serde(default)]
    pub other_histories: Vec<OtherHistory>,
}

/// A migration history table Elsa does not read, and what it holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OtherHistory {
    pub schema: String,
    pub table: String,
    /// Its `MigrationId`s, oldest first; `None` when the user may not read it.
    pub ids: Option<Vec<String>>,
}

/// The outcome of trying to log in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "camelCase")]
pub enum DbObservation {
    Connected(DbFacts),
    Refused(DbError),
}

impl From<k8s_openapi::api::core::v1::Secret> for SecretData {
    /// `data` decoded; `stringData` too, which a manifest (lint) may carry although a server
    /// never returns it.
    fn from(s: k8s_openapi::api::core::v1::Secret) -> Self {
        let mut data: BTreeMap<String, Secret> = s
            .data
            .unwrap_or_default()
            .into_iter()
            .map(|(k, v)| (k, Secret::new(String::from_utf8_lossy(&v.0).into_owned())))
            .collect();
        for (k, v) in s.string_data.unwrap_or_default() {
            data.insert(k, Secret::new(v));
        }
        Self { data }
    }
}

/// The Service the database host names, seen from the API (`network.service`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DbService {
    pub name: String,
    pub namespace: String,
    /// The Service object; `None` when no Service of that name exists there.
    pub service: Option<Service>,
    /// Its EndpointSlices (label `kubernetes.io/service-name`).
    pub endpoint_slices: Probe<Vec<EndpointSlice>>,
    /// Other namespaces holding a Service of the same name; looked up only when the Service is
    /// not where the host points (needs a cluster-wide `list services`).
    pub elsewhere: Probe<Vec<String>>,
}

/// What one read-only exec into the Elsa container listed: its assemblies and the SQLite files
/// at the flavour's fallback paths (`workload.flavor`, `runtime.sqlite-file`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PodListing {
    pub pod: String,
    pub container: String,
    /// The paths that exist, as the container sees them.
    pub paths: Vec<String>,
    /// What the listing's content sections read (migration ids, tfm, package versions);
    /// empty when the listing came from elsewhere (the ephemeral container's `--files`).
    #[serde(default)]
    pub contents: crate::domain::image_contents::ImageContents,
    /// What the paths and contents say about the version (`ClueSource::ImageContents`),
    /// computed once when the listing is read.
    #[serde(default)]
    pub clues: Vec<crate::domain::versions::Clue>,
}

impl PodListing {
    /// The assembly file names (`Elsa.Server.Web.dll`) under `/app`.
    pub fn dlls(&self) -> impl Iterator<Item = &str> {
        self.paths
            .iter()
            .filter_map(|p| p.strip_prefix("/app/"))
            .filter(|n| !n.contains('/') && n.ends_with(".dll"))
    }
}

/// The DNS and TCP probes towards the database host, from an in-cluster vantage.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NetworkObservation {
    /// `here`, `debug-pod` or `ephemeral`.
    pub vantage: String,
    /// The pod (and container) the probes ran in; `None` for `here`.
    pub via: Option<String>,
    pub report: network::ProbeReport,
}

/// Logs of one container of one Elsa pod, redacted when they were read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PodLog {
    pub pod: String,
    pub container: String,
    /// The previous (terminated) instance of the container, not the current one.
    pub previous: bool,
    /// The tail of the log; `Absent` when there is no previous instance to read.
    pub text: Probe<String>,
}

/// What the Elsa health endpoint answered through a port-forward.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthObservation {
    pub pod: String,
    /// The container port forwarded to.
    pub port: u16,
    pub path: String,
    pub answer: HealthAnswer,
}

/// The health endpoint's answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum HealthAnswer {
    /// An HTTP response: its status and the start of its body (redacted).
    Http { status: u16, body: String },
    /// Nothing accepted the connection on the port inside the pod (the kubelet's message).
    Refused { message: String },
}

/// What reading a bundle of manifests (`lint`) noticed about the objects themselves, before any
/// check: documents the API server would refuse, and objects defined more than once.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BundleNotes {
    pub rejected: Vec<Rejected>,
    pub duplicates: Vec<Duplicate>,
    /// Every object of the bundle in the namespace, as `Kind/name` (after de-duplication).
    pub objects: BTreeSet<String>,
}

impl BundleNotes {
    /// The rejection of the object `Kind/name`, if the bundle holds one.
    pub fn rejection(&self, kind: &str, name: &str) -> Option<&Rejected> {
        self.rejected
            .iter()
            .find(|r| r.kind == kind && r.name == name)
    }
}

/// Why `lint` did not observe a ConfigMap or Secret the workload references: the manifests do
/// not hold it, and the cluster may.
pub const NOT_IN_BUNDLE: &str = "not among the manifests given; it must exist in the cluster";

/// A document the API server would refuse (a wrong type, Secret `data` that is not base64).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rejected {
    pub file: String,
    /// 1-based document number within the file.
    pub doc: usize,
    pub kind: String,
    pub name: String,
    /// The field at fault (`data.password`, `spec.replicas`), when known.
    pub field: Option<String>,
    /// Why, with any quoted value masked.
    pub cause: String,
}

impl fmt::Display for Rejected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} document {} ({}/{})",
            self.file, self.doc, self.kind, self.name
        )?;
        match &self.field {
            Some(field) => write!(f, ": {field}: {}", self.cause),
            None => write!(f, ": {}", self.cause),
        }
    }
}

/// The same kind/namespace/name twice in a bundle: the later document wins, as with
/// `kubectl apply`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Duplicate {
    pub kind: String,
    pub name: String,
    /// `file document N` of the definition that was replaced.
    pub first: String,
    /// `file document N` of the definition used.
    pub later: String,
}

impl fmt::Display for Duplicate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}/{} is defined twice ({} and {}); the later one is used, as kubectl apply would",
            self.kind, self.name, self.first, self.later
        )
    }
}

/// Where the namespace came from, for messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum NamespaceSource {
    Flag,
    Context,
    InCluster,
    Default,
}

impl fmt::Display for NamespaceSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            NamespaceSource::Flag => "--namespace",
            NamespaceSource::Context => "the kubeconfig context",
            NamespaceSource::InCluster => "the pod's service account",
            NamespaceSource::Default => "the default (no namespace set in the context)",
        })
    }
}

/// What the run was pointed at, resolved before gathering.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Scope {
    pub context: Option<String>,
    /// The API server URL, without credentials.
    pub server: String,
    pub namespace: String,
    pub namespace_source: NamespaceSource,
    /// `--deployment NAME`, when given.
    pub workload_hint: Option<String>,
    pub simulated: bool,
    /// The simulated scenario and what it shows (`elsadoctor demo`), in one line.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scenario: Option<String>,
    /// What the user stated about the Elsa the workload runs (`--elsa-version`,
    /// `--elsa-flavor`).
    #[serde(default)]
    pub stated: Option<StatedElsa>,
    /// Set when these facts are replayed from a bundle (`elsadoctor replay`): where and when
    /// they were gathered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replay: Option<crate::report::ReplayOrigin>,
}

/// The Elsa host and version the user stated.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatedElsa {
    pub version: Option<crate::domain::elsa::ElsaVersion>,
    pub flavor: Option<crate::domain::elsa::Flavor>,
}

/// Workloads rebuilt from the pods they own, when the workloads themselves may not be listed.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Inferred {
    pub deployments: Vec<Deployment>,
    pub statefulsets: Vec<StatefulSet>,
}

impl Inferred {
    pub fn is_empty(&self) -> bool {
        self.deployments.is_empty() && self.statefulsets.is_empty()
    }
}

/// Everything observed in one run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Facts {
    pub scope: Scope,
    pub needs: Vec<Need>,
    pub server_version: Probe<ServerVersion>,
    pub namespace: Probe<NamespaceInfo>,
    pub access: Probe<AccessRules>,
    pub deployments: Probe<Vec<Deployment>>,
    pub statefulsets: Probe<Vec<StatefulSet>>,
    /// When neither kind of workload could be listed: the workloads rebuilt from the
    /// namespace's pods ([`crate::domain::workload::infer_from_pods`]), specs scrubbed.
    #[serde(default)]
    pub inferred: Inferred,
    /// The selected workload's pods, listed with its label selector.
    pub pods: Probe<Vec<Pod>>,
    /// Events about the selected workload and its pods.
    pub events: Probe<Vec<Event>>,
    /// The ConfigMaps the workload's pod template references, by name.
    pub config_maps: BTreeMap<String, Probe<ConfigMapData>>,
    /// The Secrets the workload's pod template references, by name.
    pub secrets: BTreeMap<String, Probe<SecretData>>,
    /// The namespace's Services (service links, and where the database host points).
    pub services: Probe<Vec<Service>>,
    /// Literal env values scrubbed from the workloads' pod templates (see
    /// [`crate::redact::Literals`]): usable, never printable.
    pub env_literals: crate::redact::Literals,
    /// What the database session tried to reach.
    pub db_target: Option<DbTarget>,
    /// The database session.
    pub database: Probe<DbObservation>,
    /// The Service behind the database host.
    pub db_service: Probe<DbService>,
    /// The exec listing of one running Elsa pod.
    pub pod_files: Probe<PodListing>,
    /// DNS and TCP towards the database host from the vantage (not attempted through a
    /// port-forward).
    pub network: Probe<NetworkObservation>,
    /// Recent logs of the Elsa container of every workload pod, and the previous instance's
    /// for restarted containers.
    #[serde(default = "not_gathered")]
    pub logs: Probe<Vec<PodLog>>,
    /// The Elsa health endpoint of one ready pod.
    #[serde(default = "not_gathered")]
    pub health: Probe<HealthObservation>,
    /// The pods behind the database host's Service (in-cluster PostgreSQL), specs scrubbed.
    #[serde(default = "not_gathered")]
    pub db_pods: Probe<Vec<Pod>>,
    /// The namespace's NetworkPolicies (`network.policy`).
    #[serde(default = "not_gathered")]
    pub network_policies: Probe<PolicyFacts>,
    /// The namespace's HorizontalPodAutoscalers (autoscaling/v2): the one targeting the Elsa
    /// workload sets how many pods may run (`production.replicas`, `locking`, `pool`).
    #[serde(default = "not_gathered")]
    pub autoscalers: Probe<Vec<k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler>>,
    /// The namespace's Jobs and CronJobs and the migrating Jobs' pods and logs (`migration.*`).
    #[serde(default = "not_gathered")]
    pub migrations: Probe<MigrationFacts>,
    /// What reading the manifests noticed (`lint` only; `None` in a cluster run).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bundle: Option<BundleNotes>,
    /// The effective Elsa these facts make ([`crate::model`]), built on the first
    /// [`Facts::effective`] and dropped by every [`FactUpdate::apply`]. Not part of a facts
    /// file: it is derived.
    #[serde(skip)]
    model: ModelCell,
}

/// The memo behind [`Facts::effective`]: a clone or a comparison ignores it (it is derived
/// from the fields beside it).
#[derive(Default)]
struct ModelCell(std::sync::OnceLock<Result<crate::model::Effective, crate::model::Unavailable>>);

impl Clone for ModelCell {
    fn clone(&self) -> Self {
        ModelCell::default()
    }
}

impl PartialEq for ModelCell {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl std::fmt::Debug for ModelCell {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.get().is_some() {
            "ModelCell(built)"
        } else {
            "ModelCell(empty)"
        })
    }
}

/// A fact missing from a facts file written before it existed.
fn not_gathered<T>() -> Probe<T> {
    Probe::NotAttempted("not in this facts file".to_owned())
}

impl Facts {
    /// Facts before anything was gathered: every probe `NotAttempted`.
    pub fn new(scope: Scope, needs: Vec<Need>) -> Self {
        let na = || "not gathered yet".to_owned();
        Self {
            scope,
            needs,
            server_version: Probe::NotAttempted(na()),
            namespace: Probe::NotAttempted(na()),
            access: Probe::NotAttempted(na()),
            deployments: Probe::NotAttempted(na()),
            statefulsets: Probe::NotAttempted(na()),
            inferred: Inferred::default(),
            pods: Probe::NotAttempted(na()),
            events: Probe::NotAttempted(na()),
            config_maps: BTreeMap::new(),
            secrets: BTreeMap::new(),
            services: Probe::NotAttempted(na()),
            env_literals: BTreeMap::new(),
            db_target: None,
            database: Probe::NotAttempted(na()),
            db_service: Probe::NotAttempted(na()),
            pod_files: Probe::NotAttempted(na()),
            network: Probe::NotAttempted(na()),
            logs: Probe::NotAttempted(na()),
            health: Probe::NotAttempted(na()),
            db_pods: Probe::NotAttempted(na()),
            network_policies: Probe::NotAttempted(na()),
            autoscalers: Probe::NotAttempted(na()),
            migrations: Probe::NotAttempted(na()),
            bundle: None,
            model: ModelCell::default(),
        }
    }

    /// The workloads to find Elsa among: the listed ones, or, when neither Deployments nor
    /// StatefulSets could be listed, those rebuilt from the namespace's pods. `None` when there
    /// is neither.
    pub fn workload_pool(&self) -> Option<Vec<crate::domain::workload::Workload<'_>>> {
        use crate::domain::workload::Workload;
        match (&self.deployments, &self.statefulsets) {
            (Probe::Observed(d), Probe::Observed(s)) => Some(Workload::all(d, s)),
            (Probe::Observed(d), _) => Some(Workload::all(d, &[])),
            (_, Probe::Observed(s)) => Some(Workload::all(&[], s)),
            _ if !self.inferred.is_empty() => Some(Workload::all(
                &self.inferred.deployments,
                &self.inferred.statefulsets,
            )),
            _ => None,
        }
    }

    /// The effective Elsa of these facts, computed once (the first call) and shared by
    /// gathering's planning and every check. Facts change only through [`FactUpdate::apply`]
    /// and [`Facts::set_unobserved`], which drop it when a fact it is built from
    /// ([`crate::model::INPUTS`]) changes; write fields directly only before the first call
    /// (as unit tests do when they build facts).
    pub fn effective(&self) -> Result<&crate::model::Effective, &crate::model::Unavailable> {
        self.model
            .0
            .get_or_init(|| crate::model::build(self))
            .as_ref()
    }
}

impl Facts {
    /// Drops the memoised model when the fact `key` is one it is built from
    /// ([`crate::model::INPUTS`]; the scope, its other input, no update changes), so that
    /// judging after logs, events or the database's answer does not rebuild it. `None` (a
    /// whole bundle) may change anything and drops it.
    fn changed(&mut self, key: Option<FactKey>) {
        if key.is_none_or(|k| crate::model::INPUTS.contains(&k)) {
            self.model = ModelCell::default();
        }
    }

    /// Records that a fact was not observed, with `why` (any state but `Observed`).
    pub fn set_unobserved(&mut self, key: FactKey, why: &Probe<()>) {
        self.changed(Some(key));
        fn state<T>(why: &Probe<()>) -> Probe<T> {
            why.clone().recast()
        }
        match key {
            FactKey::ServerVersion => self.server_version = state(why),
            FactKey::Namespace => self.namespace = state(why),
            FactKey::Access => self.access = state(why),
            FactKey::Workloads => {
                self.deployments = state(why);
                self.statefulsets = state(why);
                self.inferred = Inferred::default();
            }
            FactKey::Pods => self.pods = state(why),
            FactKey::Events => self.events = state(why),
            // Per-object facts: nothing was fetched, so there is nothing to mark; checks look
            // up a name and treat a missing entry as not observed.
            FactKey::ConfigSources => {}
            FactKey::Services => self.services = state(why),
            FactKey::Database => self.database = state(why),
            FactKey::DbService => self.db_service = state(why),
            FactKey::PodFiles => self.pod_files = state(why),
            FactKey::Network => self.network = state(why),
            FactKey::Logs => self.logs = state(why),
            FactKey::Health => self.health = state(why),
            FactKey::DbPods => self.db_pods = state(why),
            FactKey::NetworkPolicies => self.network_policies = state(why),
            FactKey::Autoscalers => self.autoscalers = state(why),
            FactKey::Migrations => self.migrations = state(why),
        }
    }
}

/// Names of the facts, so the runner knows when a check's inputs are all in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum FactKey {
    ServerVersion,
    Namespace,
    Access,
    Workloads,
    Pods,
    Events,
    /// The referenced ConfigMaps and Secrets.
    ConfigSources,
    Services,
    Database,
    DbService,
    PodFiles,
    Network,
    Logs,
    Health,
    DbPods,
    NetworkPolicies,
    Autoscalers,
    Migrations,
}

impl FactKey {
    /// Every fact: a run that ends marks the ones that never arrived as not attempted.
    pub const ALL: &[FactKey] = &[
        FactKey::ServerVersion,
        FactKey::Namespace,
        FactKey::Access,
        FactKey::Workloads,
        FactKey::Pods,
        FactKey::Events,
        FactKey::ConfigSources,
        FactKey::Services,
        FactKey::Database,
        FactKey::DbService,
        FactKey::PodFiles,
        FactKey::Network,
        FactKey::Logs,
        FactKey::Health,
        FactKey::DbPods,
        FactKey::NetworkPolicies,
        FactKey::Autoscalers,
        FactKey::Migrations,
    ];
}

/// One gathered fact, as sent from `gather` to the runner. Each update is built once and moved
/// once over the channel, so the size difference between variants costs nothing worth a box.
#[derive(Debug, Clone)]
#[allow(clippy::large_enum_variant)]
pub enum FactUpdate {
    /// Gathering of these facts began (the checks waiting on them are now running).
    Started(Vec<FactKey>),
    ServerVersion(Probe<ServerVersion>),
    Namespace(Probe<NamespaceInfo>),
    Access(Probe<AccessRules>),
    Workloads {
        deployments: Probe<Vec<Deployment>>,
        statefulsets: Probe<Vec<StatefulSet>>,
        /// Literal env values scrubbed from their pod templates.
        literals: crate::redact::Literals,
        /// Rebuilt from the pods when neither kind could be listed.
        inferred: Inferred,
    },
    Pods(Probe<Vec<Pod>>),
    Events(Probe<Vec<Event>>),
    ConfigSources {
        config_maps: BTreeMap<String, Probe<ConfigMapData>>,
        secrets: BTreeMap<String, Probe<SecretData>>,
    },
    Services(Probe<Vec<Service>>),
    Database {
        target: Option<DbTarget>,
        observation: Probe<DbObservation>,
    },
    DbService(Probe<DbService>),
    PodFiles(Probe<PodListing>),
    Network(Probe<NetworkObservation>),
    Logs(Probe<Vec<PodLog>>),
    Health(Probe<HealthObservation>),
    DbPods(Probe<Vec<Pod>>),
    NetworkPolicies(Probe<PolicyFacts>),
    Autoscalers(Probe<Vec<k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler>>),
    Migrations(Probe<MigrationFacts>),
    /// What reading the manifests noticed (`lint`); sent before the objects, completes no fact.
    Bundle(BundleNotes),
}

impl FactUpdate {
    /// The fact this update completes, if any.
    pub fn key(&self) -> Option<FactKey> {
        Some(match self {
            FactUpdate::Started(_) | FactUpdate::Bundle(_) => return None,
            FactUpdate::ServerVersion(_) => FactKey::ServerVersion,
            FactUpdate::Namespace(_) => FactKey::Namespace,
            FactUpdate::Access(_) => FactKey::Access,
            FactUpdate::Workloads { .. } => FactKey::Workloads,
            FactUpdate::Pods(_) => FactKey::Pods,
            FactUpdate::Events(_) => FactKey::Events,
            FactUpdate::ConfigSources { .. } => FactKey::ConfigSources,
            FactUpdate::Services(_) => FactKey::Services,
            FactUpdate::Database { .. } => FactKey::Database,
            FactUpdate::DbService(_) => FactKey::DbService,
            FactUpdate::PodFiles(_) => FactKey::PodFiles,
            FactUpdate::Network(_) => FactKey::Network,
            FactUpdate::Logs(_) => FactKey::Logs,
            FactUpdate::Health(_) => FactKey::Health,
            FactUpdate::DbPods(_) => FactKey::DbPods,
            FactUpdate::NetworkPolicies(_) => FactKey::NetworkPolicies,
            FactUpdate::Autoscalers(_) => FactKey::Autoscalers,
            FactUpdate::Migrations(_) => FactKey::Migrations,
        })
    }

    /// Stores the update in `facts`.
    pub fn apply(self, facts: &mut Facts) {
        if !matches!(self, FactUpdate::Started(_)) {
            facts.changed(self.key());
        }
        match self {
            FactUpdate::Started(_) => {}
            FactUpdate::ServerVersion(p) => facts.server_version = p,
            FactUpdate::Namespace(p) => facts.namespace = p,
            FactUpdate::Access(p) => facts.access = p,
            FactUpdate::Workloads {
                deployments,
                statefulsets,
                literals,
                inferred,
            } => {
                facts.deployments = deployments;
                facts.statefulsets = statefulsets;
                facts.env_literals = literals;
                facts.inferred = inferred;
            }
            FactUpdate::Pods(p) => facts.pods = p,
            FactUpdate::Events(p) => facts.events = p,
            FactUpdate::ConfigSources {
                config_maps,
                secrets,
            } => {
                facts.config_maps = config_maps;
                facts.secrets = secrets;
            }
            FactUpdate::Services(p) => facts.services = p,
            FactUpdate::Database {
                target,
                observation,
            } => {
                facts.db_target = target;
                facts.database = observation;
            }
            FactUpdate::DbService(p) => facts.db_service = p,
            FactUpdate::PodFiles(p) => facts.pod_files = p,
            FactUpdate::Network(p) => facts.network = p,
            FactUpdate::Logs(p) => facts.logs = p,
            FactUpdate::Health(p) => facts.health = p,
            FactUpdate::DbPods(p) => facts.db_pods = p,
            FactUpdate::NetworkPolicies(p) => facts.network_policies = p,
            FactUpdate::Autoscalers(p) => facts.autoscalers = p,
            FactUpdate::Migrations(p) => facts.migrations = p,
            FactUpdate::Bundle(notes) => facts.bundle = Some(notes),
        }
    }
}
