//! The simulated cluster's object store, and its construction from a
//! scenario: the applied manifests plus what the cluster's controllers would
//! have created (`sim.yaml`): ReplicaSets and pods for Deployments, pods for
//! StatefulSets, workload status, Endpoints/EndpointSlices for Services,
//! Namespaces, per-namespace defaults, Events and generated noise.
//!
//! Everything is deterministic: UIDs, generated names, IPs and timestamps are
//! derived from the scenario, so a scenario always yields the same objects.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde_json::{Map, Value, json};

use super::config::{
    ContainerConfig, EventConfig, FileConfig, PodConfig, SimConfig, StateConfig, WorkloadConfig,
};
use super::resources::{self, ResourceDef};
use super::selectors::{field_value, supported_fields};
use super::util::{
    base64_encode, format_rfc3339, hash_parts, hex_id, name_suffix, parse_rfc3339,
    pod_template_hash, uid,
};

/// Default base time of a simulated cluster.
pub const DEFAULT_BASE_TIME: &str = "2025-06-02T08:00:00Z";

/// One manifest document with where it came from (for error messages).
#[derive(Debug, Clone)]
pub struct Manifest {
    /// `file.yaml document 3`.
    pub source: String,
    /// The object as written.
    pub value: Value,
}

/// Key of a stored resource: (group, plural).
type ResKey = (&'static str, &'static str);

/// One stored object, kept compact: its JSON (without `kind`/`apiVersion`,
/// i.e. in list-item form) plus what selectors need, precomputed.
#[derive(Debug, Clone)]
pub struct Entry {
    item: Box<str>,
    labels: Option<Map<String, Value>>,
    fields: Vec<(&'static str, Box<str>)>,
}

impl Entry {
    /// The object as a list item (no `kind`/`apiVersion`), compact JSON.
    pub fn item_json(&self) -> &str {
        &self.item
    }

    /// The object as a GET returns it, compact JSON.
    pub fn full_json(&self, def: &ResourceDef) -> String {
        let head = format!(
            "{{\"apiVersion\":{},\"kind\":{}",
            Value::from(def.api_version()),
            Value::from(def.kind)
        );
        match self.item.strip_prefix('{') {
            Some("}") | None => format!("{head}}}"),
            Some(rest) => format!("{head},{rest}"),
        }
    }

    /// The object as a JSON value (parsed on demand).
    pub fn value(&self, def: &ResourceDef) -> Value {
        let mut v: Value = serde_json::from_str(&self.item).unwrap_or_default();
        if let Some(m) = v.as_object_mut() {
            m.insert("apiVersion".into(), json!(def.api_version()));
            m.insert("kind".into(), json!(def.kind));
        }
        v
    }

    /// `metadata.labels`.
    pub fn labels(&self) -> Option<&Map<String, Value>> {
        self.labels.as_ref()
    }

    /// Value of a supported field selector label (`None` if unsupported).
    pub fn field(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| &**v)
    }
}

/// Runtime files and shell override of a `sim.yaml` pod: (files, shell).
pub type PodFiles = (Vec<FileConfig>, Option<bool>);

/// One change to a stored object, as a watch reports it.
#[derive(Debug, Clone)]
pub struct Change {
    /// Resource version after the change.
    pub rv: u64,
    /// (group, plural).
    pub res: ResKey,
    /// Namespace of the object (`""` when cluster-scoped).
    pub namespace: String,
    /// `ADDED`, `MODIFIED` or `DELETED`.
    pub kind: &'static str,
    /// The object with `kind`/`apiVersion`, compact JSON.
    pub object: String,
    /// Its labels.
    pub labels: Option<Map<String, Value>>,
    /// Its field-selector values.
    pub fields: Vec<(&'static str, Box<str>)>,
}

impl Change {
    /// Value of a supported field selector label.
    pub fn field(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| &**v)
    }
}

/// The served objects.
#[derive(Debug, Default, Clone)]
pub struct Store {
    tables: HashMap<ResKey, BTreeMap<(String, String), Entry>>,
    resource_version: u64,
    logs: HashMap<(String, String, String, bool), String>,
    pod_files: HashMap<(String, String), PodFiles>,
    /// Changes made while serving, oldest first (a watch from a resource version replays them).
    pub changes: Vec<Change>,
}

impl Store {
    /// Build the store for a scenario. Errors are one-line messages that
    /// name the manifest document or the `sim.yaml` entry at fault.
    pub fn build(
        manifests: &[Manifest],
        config: &SimConfig,
        sim_source: &str,
        default_namespace: &str,
    ) -> Result<Store, String> {
        let base = match &config.creation_timestamp {
            Some(t) => parse_rfc3339(t).ok_or_else(|| {
                format!("{sim_source}: creationTimestamp: {t:?} is not an RFC 3339 time")
            })?,
            None => parse_rfc3339(DEFAULT_BASE_TIME).unwrap_or(0),
        };
        let mut b = Builder {
            cfg: config,
            sim: sim_source.to_string(),
            default_ns: default_namespace.to_string(),
            base,
            staged: Vec::new(),
            index: HashMap::new(),
            logs: HashMap::new(),
            pod_files: HashMap::new(),
            ip_counters: HashMap::new(),
            cluster_ips: 0,
        };
        for m in manifests {
            b.add_manifest(&m.source, &m.value)?;
        }
        b.check_references()?;
        b.materialise_workloads()?;
        b.materialise_jobs()?;
        b.materialise_manifest_pods()?;
        b.materialise_service_endpoints();
        b.materialise_namespaces();
        let mut store = Store {
            tables: HashMap::new(),
            resource_version: 1000,
            logs: std::mem::take(&mut b.logs),
            pod_files: std::mem::take(&mut b.pod_files),
            changes: Vec::new(),
        };
        // Namespaces first, as a cluster would have created them first.
        let (nss, rest): (Vec<Staged>, Vec<Staged>) = std::mem::take(&mut b.staged)
            .into_iter()
            .partition(|s| s.def.plural == "namespaces");
        for s in nss.into_iter().chain(rest) {
            store.insert(s.def, s.obj);
        }
        let events = b.build_events(&store)?;
        for e in events {
            store.insert(e.def, e.obj);
        }
        // Noise last and straight into the store: one object in memory at a time.
        b.materialise_noise(&mut store);
        Ok(store)
    }

    fn insert(&mut self, def: &'static ResourceDef, obj: Value) {
        self.put(def, obj);
    }

    /// Store `obj` (replacing one of the same name) under a new resource version; returns the
    /// entry's full JSON and the change for watchers.
    fn put(&mut self, def: &'static ResourceDef, mut obj: Value) -> Change {
        self.resource_version += 1;
        let rv = self.resource_version.to_string();
        let meta = child(&mut obj, "metadata");
        let name = str_of(meta, &["name"]).unwrap_or_default().to_string();
        let ns = str_of(meta, &["namespace"]).unwrap_or_default().to_string();
        map_mut(meta).insert("resourceVersion".into(), json!(rv));
        let labels = meta
            .get("labels")
            .and_then(Value::as_object)
            .filter(|l| !l.is_empty())
            .cloned();
        let fields = supported_fields(def.plural)
            .iter()
            .filter_map(|f| field_value(def.plural, &obj, f).map(|v| (*f, v.into_boxed_str())))
            .collect();
        let m = map_mut(&mut obj);
        m.remove("kind");
        m.remove("apiVersion");
        let item = serde_json::to_string(&obj)
            .unwrap_or_default()
            .into_boxed_str();
        let entry = Entry {
            item,
            labels,
            fields,
        };
        let change = Change {
            rv: self.resource_version,
            res: (def.group, def.plural),
            namespace: ns.clone(),
            kind: "ADDED",
            object: entry.full_json(def),
            labels: entry.labels.clone(),
            fields: entry.fields.clone(),
        };
        self.tables
            .entry((def.group, def.plural))
            .or_default()
            .insert((ns, name), entry);
        change
    }

    /// Create or replace an object while serving; the change is recorded for watchers.
    pub fn upsert(&mut self, def: &'static ResourceDef, obj: Value) -> Change {
        let meta = obj.get("metadata");
        let ns = meta
            .and_then(|m| str_of(m, &["namespace"]))
            .unwrap_or_default()
            .to_string();
        let name = meta
            .and_then(|m| str_of(m, &["name"]))
            .unwrap_or_default()
            .to_string();
        let existed = self.entry(def, &ns, &name).is_some();
        let mut change = self.put(def, obj);
        if existed {
            change.kind = "MODIFIED";
        }
        self.changes.push(change.clone());
        change
    }

    /// Delete an object while serving; returns it (with a new resource version) if it existed.
    pub fn remove(&mut self, def: &'static ResourceDef, ns: &str, name: &str) -> Option<Change> {
        let entry = self
            .tables
            .get_mut(&(def.group, def.plural))?
            .remove(&(ns.to_string(), name.to_string()))?;
        self.resource_version += 1;
        let mut obj = entry.value(def);
        map_mut(child(&mut obj, "metadata")).insert(
            "resourceVersion".into(),
            json!(self.resource_version.to_string()),
        );
        let change = Change {
            rv: self.resource_version,
            res: (def.group, def.plural),
            namespace: ns.to_string(),
            kind: "DELETED",
            object: serde_json::to_string(&obj).unwrap_or_default(),
            labels: entry.labels,
            fields: entry.fields,
        };
        self.changes.push(change.clone());
        Some(change)
    }

    /// Append to a container's current logs.
    pub fn append_log(&mut self, ns: &str, pod: &str, container: &str, text: &str) {
        self.logs
            .entry((
                ns.to_string(),
                pod.to_string(),
                container.to_string(),
                false,
            ))
            .or_default()
            .push_str(text);
    }

    /// Forget a pod's logs and runtime files (it was deleted).
    pub fn forget_pod(&mut self, ns: &str, pod: &str) {
        self.logs.retain(|(n, p, _, _), _| !(n == ns && p == pod));
        self.pod_files.remove(&(ns.to_string(), pod.to_string()));
    }

    /// The `sim.yaml` runtime files and shell override of a pod.
    pub fn pod_files(&self, ns: &str, pod: &str) -> Option<&PodFiles> {
        self.pod_files.get(&(ns.to_string(), pod.to_string()))
    }

    /// Current resource version (the list `metadata.resourceVersion`).
    pub fn resource_version(&self) -> u64 {
        self.resource_version
    }

    /// One stored object.
    pub fn entry(&self, def: &ResourceDef, namespace: &str, name: &str) -> Option<&Entry> {
        self.tables
            .get(&(def.group, def.plural))?
            .get(&(namespace.to_string(), name.to_string()))
    }

    /// One object as a JSON value (with `kind`/`apiVersion`).
    pub fn get(&self, def: &ResourceDef, namespace: &str, name: &str) -> Option<Value> {
        self.entry(def, namespace, name).map(|e| e.value(def))
    }

    /// All objects of a resource, in one namespace or all, in etcd key order
    /// (namespace, then name).
    pub fn list<'a>(
        &'a self,
        def: &ResourceDef,
        namespace: Option<&'a str>,
    ) -> Box<dyn Iterator<Item = (&'a (String, String), &'a Entry)> + 'a> {
        let Some(table) = self.tables.get(&(def.group, def.plural)) else {
            return Box::new(std::iter::empty());
        };
        match namespace {
            Some(ns) => Box::new(
                table
                    .range((ns.to_string(), String::new())..)
                    .take_while(move |((n, _), _)| n == ns),
            ),
            None => Box::new(table.iter()),
        }
    }

    /// Logs of a container, if any were configured.
    pub fn log(&self, ns: &str, pod: &str, container: &str, previous: bool) -> Option<&str> {
        self.logs
            .get(&(
                ns.to_string(),
                pod.to_string(),
                container.to_string(),
                previous,
            ))
            .map(String::as_str)
    }
}

// ---------------------------------------------------------------------------
// JSON helpers
// ---------------------------------------------------------------------------

/// The object map of `v`, turning `v` into an empty object if it is not one.
pub fn map_mut(v: &mut Value) -> &mut Map<String, Value> {
    if !v.is_object() {
        *v = Value::Object(Map::new());
    }
    match v {
        Value::Object(m) => m,
        _ => unreachable!("value was just made an object"),
    }
}

/// `v[key]` as an object, created if missing.
pub fn child<'a>(v: &'a mut Value, key: &str) -> &'a mut Value {
    let c = map_mut(v)
        .entry(key.to_string())
        .or_insert_with(|| json!({}));
    if !c.is_object() {
        *c = json!({});
    }
    c
}

/// String at a path.
pub fn str_of<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    let mut cur = v;
    for p in path {
        cur = cur.get(p)?;
    }
    cur.as_str()
}

fn set_default(v: &mut Value, key: &str, value: Value) {
    map_mut(v).entry(key.to_string()).or_insert(value);
}

fn labels_of(v: &Value) -> Map<String, Value> {
    v.get("metadata")
        .and_then(|m| m.get("labels"))
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default()
}

/// Evaluate a `metav1.LabelSelector` (matchLabels + matchExpressions).
fn label_selector_matches(selector: &Value, labels: &Map<String, Value>) -> bool {
    if let Some(ml) = selector.get("matchLabels").and_then(Value::as_object) {
        for (k, v) in ml {
            if labels.get(k) != Some(v) {
                return false;
            }
        }
    }
    if let Some(exprs) = selector.get("matchExpressions").and_then(Value::as_array) {
        for e in exprs {
            let key = str_of(e, &["key"]).unwrap_or_default();
            let values: Vec<&str> = e
                .get("values")
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            let have = labels.get(key).and_then(Value::as_str);
            let ok = match str_of(e, &["operator"]).unwrap_or_default() {
                "In" => have.is_some_and(|h| values.contains(&h)),
                "NotIn" => have.is_none_or(|h| !values.contains(&h)),
                "Exists" => have.is_some(),
                "DoesNotExist" => have.is_none(),
                _ => false,
            };
            if !ok {
                return false;
            }
        }
    }
    true
}

/// `docker.io/library/postgres:16` for `postgres:16`, like containerd reports.
fn normalize_image(image: &str) -> String {
    let (name, tag_or_digest) = match image.rsplit_once('@') {
        Some((n, d)) => (n.to_string(), format!("@{d}")),
        None => {
            let last_slash = image.rfind('/').map_or(0, |i| i + 1);
            match image[last_slash..].rfind(':') {
                Some(i) => (
                    image[..last_slash + i].to_string(),
                    image[last_slash + i..].to_string(),
                ),
                None => (image.to_string(), ":latest".to_string()),
            }
        }
    };
    let first = name.split('/').next().unwrap_or_default();
    let has_registry =
        name.contains('/') && (first.contains('.') || first.contains(':') || first == "localhost");
    let full = if has_registry {
        name
    } else if name.contains('/') {
        format!("docker.io/{name}")
    } else {
        format!("docker.io/library/{name}")
    };
    format!("{full}{tag_or_digest}")
}

fn image_repo(image: &str) -> String {
    let n = normalize_image(image);
    match n.rsplit_once('@') {
        Some((r, _)) => r.to_string(),
        None => {
            let last_slash = n.rfind('/').map_or(0, |i| i + 1);
            match n[last_slash..].rfind(':') {
                Some(i) => n[..last_slash + i].to_string(),
                None => n,
            }
        }
    }
}

fn image_tag_is_latest(image: &str) -> bool {
    if image.contains('@') {
        return false;
    }
    let last = image.rsplit('/').next().unwrap_or(image);
    match last.rsplit_once(':') {
        Some((_, tag)) => tag == "latest",
        None => true,
    }
}

// ---------------------------------------------------------------------------
// Builder
// ---------------------------------------------------------------------------

struct Staged {
    def: &'static ResourceDef,
    obj: Value,
}

struct Builder<'a> {
    cfg: &'a SimConfig,
    sim: String,
    default_ns: String,
    base: i64,
    staged: Vec<Staged>,
    index: HashMap<(String, String, String), usize>,
    logs: HashMap<(String, String, String, bool), String>,
    pod_files: HashMap<(String, String), PodFiles>,
    ip_counters: HashMap<String, u32>,
    cluster_ips: u32,
}

/// A parsed `kind/name` workload reference.
struct WorkloadRef {
    def: &'static ResourceDef,
    name: String,
}

fn parse_object_ref(s: &str) -> Option<WorkloadRef> {
    let (kind, name) = s.split_once('/')?;
    let kind = kind.trim();
    let name = name.trim();
    if name.is_empty() {
        return None;
    }
    let def = resources::RESOURCES.iter().find(|r| {
        r.stored
            && (r.kind.eq_ignore_ascii_case(kind)
                || r.singular == kind.to_ascii_lowercase()
                || r.plural == kind.to_ascii_lowercase()
                || r.short_names.contains(&kind))
    })?;
    Some(WorkloadRef {
        def,
        name: name.to_string(),
    })
}

impl Builder<'_> {
    fn t(&self, offset: i64) -> String {
        format_rfc3339(self.base + offset)
    }

    fn stage(&mut self, def: &'static ResourceDef, obj: Value) -> Result<(), String> {
        let ns = str_of(&obj, &["metadata", "namespace"])
            .unwrap_or_default()
            .to_string();
        let name = str_of(&obj, &["metadata", "name"])
            .unwrap_or_default()
            .to_string();
        let key = (def.plural.to_string(), ns.clone(), name.clone());
        if self.index.contains_key(&key) {
            return Err(if ns.is_empty() {
                format!("duplicate {} {name:?}", def.kind)
            } else {
                format!("duplicate {} {ns}/{name}", def.kind)
            });
        }
        self.index.insert(key, self.staged.len());
        self.staged.push(Staged { def, obj });
        Ok(())
    }

    fn find(&self, plural: &str, ns: &str, name: &str) -> Option<&Value> {
        let i = self
            .index
            .get(&(plural.to_string(), ns.to_string(), name.to_string()))?;
        self.staged.get(*i).map(|s| &s.obj)
    }

    fn find_mut(&mut self, plural: &str, ns: &str, name: &str) -> Option<&mut Value> {
        let i = *self
            .index
            .get(&(plural.to_string(), ns.to_string(), name.to_string()))?;
        self.staged.get_mut(i).map(|s| &mut s.obj)
    }

    /// Common metadata every stored object gets.
    fn object_meta(&self, def: &ResourceDef, obj: &mut Value) {
        let ns = str_of(obj, &["metadata", "namespace"])
            .unwrap_or_default()
            .to_string();
        let name = str_of(obj, &["metadata", "name"])
            .unwrap_or_default()
            .to_string();
        let ts = self.t(0);
        let m = child(obj, "metadata");
        set_default(m, "uid", json!(uid(&[def.kind, &ns, &name])));
        set_default(m, "creationTimestamp", json!(ts));
        if matches!(
            def.kind,
            "Deployment"
                | "StatefulSet"
                | "ReplicaSet"
                | "Pod"
                | "Ingress"
                | "NetworkPolicy"
                | "Job"
                | "CronJob"
        ) {
            set_default(m, "generation", json!(1));
        }
        let mut full = json!({"apiVersion": def.api_version(), "kind": def.kind});
        let fm = map_mut(&mut full);
        for (k, v) in std::mem::take(map_mut(obj)) {
            fm.insert(k, v);
        }
        *obj = full;
    }

    fn add_manifest(&mut self, source: &str, doc: &Value) -> Result<(), String> {
        if doc.is_null() {
            return Ok(());
        }
        if !doc.is_object() {
            return Err(format!(
                "{source}: expected a Kubernetes object (a mapping)"
            ));
        }
        let api_version =
            str_of(doc, &["apiVersion"]).ok_or_else(|| format!("{source}: missing apiVersion"))?;
        let kind = str_of(doc, &["kind"]).ok_or_else(|| format!("{source}: missing kind"))?;
        if kind == "List" {
            if let Some(items) = doc.get("items").and_then(Value::as_array) {
                for (i, item) in items.iter().enumerate() {
                    self.add_manifest(&format!("{source} items[{i}]"), item)?;
                }
            }
            return Ok(());
        }
        let def = resources::by_kind(api_version, kind).ok_or_else(|| {
            format!("{source}: kind {kind:?} (apiVersion {api_version:?}) is not served by the simulator")
        })?;
        let name = str_of(doc, &["metadata", "name"])
            .filter(|n| !n.is_empty())
            .ok_or_else(|| format!("{source}: {kind} has no metadata.name"))?
            .to_string();
        let mut obj = doc.clone();
        {
            let meta = map_mut(child(&mut obj, "metadata"));
            if def.namespaced {
                if !meta.get("namespace").is_some_and(Value::is_string) {
                    meta.insert("namespace".into(), json!(self.default_ns));
                }
            } else {
                meta.remove("namespace");
            }
        }
        // What `kubectl apply` records.
        let mut applied = obj.clone();
        if let Some(m) = applied.get_mut("metadata").and_then(Value::as_object_mut)
            && let Some(a) = m.get_mut("annotations").and_then(Value::as_object_mut)
        {
            a.remove("kubectl.kubernetes.io/last-applied-configuration");
            if a.is_empty() {
                m.remove("annotations");
            }
        }
        let applied_json = format!("{}\n", serde_json::to_string(&applied).unwrap_or_default());
        map_mut(child(child(&mut obj, "metadata"), "annotations")).insert(
            "kubectl.kubernetes.io/last-applied-configuration".into(),
            json!(applied_json),
        );
        let ns = str_of(&obj, &["metadata", "namespace"])
            .unwrap_or_default()
            .to_string();
        let ctx = format!(
            "{source}: {kind} {}",
            if ns.is_empty() {
                name.clone()
            } else {
                format!("{ns}/{name}")
            }
        );
        match kind {
            "Secret" => normalize_secret(&mut obj),
            "Service" => self.normalize_service(&mut obj),
            "Deployment" | "StatefulSet" => {
                normalize_workload(kind, &name, &mut obj).map_err(|e| format!("{ctx}: {e}"))?
            }
            "Pod" => normalize_pod_spec(child(&mut obj, "spec")),
            "Job" => normalize_job(&name, &mut obj).map_err(|e| format!("{ctx}: {e}"))?,
            "CronJob" => normalize_cron_job(&name, &mut obj).map_err(|e| format!("{ctx}: {e}"))?,
            "Namespace" => normalize_namespace(&name, &mut obj),
            "Event" => {
                set_default(&mut obj, "count", json!(1));
                set_default(&mut obj, "type", json!("Normal"));
            }
            _ => {}
        }
        self.object_meta(def, &mut obj);
        self.stage(def, obj).map_err(|e| format!("{source}: {e}"))
    }

    fn normalize_service(&mut self, obj: &mut Value) {
        let spec = child(obj, "spec");
        set_default(spec, "type", json!("ClusterIP"));
        set_default(spec, "sessionAffinity", json!("None"));
        let ty = str_of(spec, &["type"]).unwrap_or("ClusterIP").to_string();
        if ty != "ExternalName" {
            if !spec.get("clusterIP").is_some_and(Value::is_string) {
                self.cluster_ips += 1;
                let n = self.cluster_ips + 9;
                // With the simulated Service network the ClusterIPs are loopback addresses
                // this machine can listen on; otherwise the usual service CIDR.
                let net = if self.cfg.cluster_network {
                    "127.96"
                } else {
                    "10.96"
                };
                let ip = format!("{net}.{}.{}", n / 250, n % 250 + 1);
                map_mut(spec).insert("clusterIP".into(), json!(ip));
            }
            let ip = spec.get("clusterIP").cloned().unwrap_or(Value::Null);
            set_default(spec, "clusterIPs", json!([ip]));
            set_default(spec, "ipFamilies", json!(["IPv4"]));
            set_default(spec, "ipFamilyPolicy", json!("SingleStack"));
            set_default(spec, "internalTrafficPolicy", json!("Cluster"));
        }
        if matches!(ty.as_str(), "NodePort" | "LoadBalancer") {
            set_default(spec, "externalTrafficPolicy", json!("Cluster"));
        }
        let mut node_port = 30_000 + u32::try_from(hash_parts(&[&ty]) % 2000).unwrap_or(0);
        if let Some(ports) = spec.get_mut("ports").and_then(Value::as_array_mut) {
            for p in ports {
                set_default(p, "protocol", json!("TCP"));
                let port = p.get("port").cloned().unwrap_or(Value::Null);
                set_default(p, "targetPort", port);
                if matches!(ty.as_str(), "NodePort" | "LoadBalancer") {
                    node_port += 1;
                    set_default(p, "nodePort", json!(node_port));
                }
            }
        }
        set_default(obj, "status", json!({"loadBalancer": {}}));
    }

    /// Every `sim.yaml` reference must point at something.
    fn check_references(&self) -> Result<(), String> {
        for (i, p) in self.cfg.pods.iter().enumerate() {
            let ctx = format!("{}: pods[{i}]", self.sim);
            let r = parse_object_ref(&p.workload).ok_or_else(|| {
                format!("{ctx}: workload {:?} must be deployment/<name>, statefulset/<name>, job/<name> or pod/<name>", p.workload)
            })?;
            if !matches!(r.def.kind, "Deployment" | "StatefulSet" | "Job" | "Pod") {
                return Err(format!(
                    "{ctx}: workload {:?}: only deployment/, statefulset/, job/ and pod/ are supported",
                    p.workload
                ));
            }
            let ns = p
                .namespace
                .clone()
                .unwrap_or_else(|| self.default_ns.clone());
            if self.find(r.def.plural, &ns, &r.name).is_none() {
                return Err(format!(
                    "{ctx}: workload {} not found in namespace {ns:?} of the manifests",
                    p.workload
                ));
            }
            if let Some(ph) = &p.phase
                && !matches!(
                    ph.as_str(),
                    "Pending" | "Running" | "Succeeded" | "Failed" | "Unknown"
                )
            {
                return Err(format!(
                    "{ctx}: phase {ph:?} must be Pending, Running, Succeeded, Failed or Unknown"
                ));
            }
            if r.def.kind == "Pod" && p.count.unwrap_or(1) != 1 {
                return Err(format!("{ctx}: count is not allowed for pod/ entries"));
            }
            for (t, c) in &p.conditions {
                if !matches!(c.status.as_str(), "True" | "False" | "Unknown") {
                    return Err(format!(
                        "{ctx}: conditions.{t}.status must be \"True\", \"False\" or \"Unknown\""
                    ));
                }
            }
        }
        for (i, w) in self.cfg.workloads.iter().enumerate() {
            let ctx = format!("{}: workloads[{i}]", self.sim);
            let r = parse_object_ref(&w.name).ok_or_else(|| {
                format!(
                    "{ctx}: name {:?} must be deployment/<name> or statefulset/<name>",
                    w.name
                )
            })?;
            if !matches!(r.def.kind, "Deployment" | "StatefulSet") {
                return Err(format!(
                    "{ctx}: {:?}: only deployment/ and statefulset/ are supported",
                    w.name
                ));
            }
            let ns = w
                .namespace
                .clone()
                .unwrap_or_else(|| self.default_ns.clone());
            if self.find(r.def.plural, &ns, &r.name).is_none() {
                return Err(format!(
                    "{ctx}: {} not found in namespace {ns:?} of the manifests",
                    w.name
                ));
            }
            if r.def.kind == "StatefulSet"
                && (w.progress_deadline_exceeded || w.replica_failure.is_some())
            {
                return Err(format!(
                    "{ctx}: progressDeadlineExceeded and replicaFailure apply to deployments only"
                ));
            }
        }
        Ok(())
    }

    /// Jobs: the pods the Job controller created (`pods:` entries naming `job/<name>`; none
    /// otherwise), labelled and owned as it labels them, and the Job's status as it writes it
    /// (`active`, `succeeded`, `failed`, `startTime`, `completionTime`, and the
    /// `SuccessCriteriaMet`/`Complete` or `FailureTarget`/`Failed` conditions).
    fn materialise_jobs(&mut self) -> Result<(), String> {
        for (i, j) in self.cfg.jobs.iter().enumerate() {
            let ctx = format!("{}: jobs[{i}]", self.sim);
            let r = parse_object_ref(&j.name)
                .filter(|r| r.def.kind == "Job")
                .ok_or_else(|| format!("{ctx}: name {:?} must be job/<name>", j.name))?;
            let ns = j
                .namespace
                .clone()
                .unwrap_or_else(|| self.default_ns.clone());
            if self.find("jobs", &ns, &r.name).is_none() {
                return Err(format!(
                    "{ctx}: {} not found in namespace {ns:?} of the manifests",
                    j.name
                ));
            }
        }
        let jobs: Vec<(String, String)> = self
            .staged
            .iter()
            .filter(|s| s.def.kind == "Job")
            .map(|s| {
                (
                    str_of(&s.obj, &["metadata", "namespace"])
                        .unwrap_or_default()
                        .to_string(),
                    str_of(&s.obj, &["metadata", "name"])
                        .unwrap_or_default()
                        .to_string(),
                )
            })
            .collect();
        for (ns, name) in jobs {
            self.materialise_job(&ns, &name)?;
        }
        Ok(())
    }

    fn materialise_job(&mut self, ns: &str, name: &str) -> Result<(), String> {
        let Some(job) = self.find("jobs", ns, name).cloned() else {
            return Ok(());
        };
        let job_uid = str_of(&job, &["metadata", "uid"])
            .unwrap_or_default()
            .to_string();
        let manual = job
            .pointer("/spec/manualSelector")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        let controller_labels = json!({
            "batch.kubernetes.io/controller-uid": job_uid,
            "batch.kubernetes.io/job-name": name,
            "controller-uid": job_uid,
            "job-name": name,
        });
        // The Job controller's selector and template labels (the API server sets them on create).
        let mut template = job.pointer("/spec/template").cloned().unwrap_or(json!({}));
        {
            let labels = map_mut(child(child(&mut template, "metadata"), "labels"));
            if let Value::Object(m) = &controller_labels {
                for (k, v) in m {
                    labels.insert(k.clone(), v.clone());
                }
            }
        }
        let backoff_limit = job
            .pointer("/spec/backoffLimit")
            .and_then(Value::as_i64)
            .unwrap_or(6);
        let completions = job
            .pointer("/spec/completions")
            .and_then(Value::as_i64)
            .unwrap_or(1);
        let started_ago = self
            .cfg
            .jobs
            .iter()
            .find(|j| {
                parse_object_ref(&j.name).is_some_and(|r| r.def.kind == "Job" && r.name == name)
                    && j.namespace.as_deref().unwrap_or(&self.default_ns) == ns
            })
            .and_then(|j| j.started_seconds_ago);
        let start_secs = match started_ago {
            Some(ago) => {
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(0));
                now - i64::try_from(ago).unwrap_or(0)
            }
            None => self.base,
        };
        let owner = json!({
            "apiVersion": "batch/v1", "kind": "Job", "name": name, "uid": job_uid,
            "controller": true, "blockOwnerDeletion": true
        });
        let entries = self.entries_for("Job", ns, name);
        let mut pods = Vec::new();
        for (idx, e) in &entries {
            let ctx = self.pod_ctx(Some(*idx));
            for i in 0..e.count.unwrap_or(1) {
                let pod_name = match (&e.name, i) {
                    (Some(n), 0) => n.clone(),
                    _ => format!(
                        "{name}-{}",
                        name_suffix(&[ns, name, &idx.to_string(), &i.to_string()], 5)
                    ),
                };
                let pod = self.build_pod(
                    &ctx,
                    ns,
                    &pod_name,
                    &template,
                    Some(&owner),
                    Some(&format!("{name}-")),
                    e,
                    None,
                )?;
                pods.push(pod);
            }
        }
        let phase = |p: &Value| {
            str_of(p, &["status", "phase"])
                .unwrap_or("Pending")
                .to_string()
        };
        let count = |want: &[&str]| {
            i64::try_from(
                pods.iter()
                    .filter(|p| want.contains(&phase(p).as_str()))
                    .count(),
            )
            .unwrap_or(0)
        };
        let (active, succeeded, failed) = (
            count(&["Pending", "Running", "Unknown"]),
            count(&["Succeeded"]),
            count(&["Failed"]),
        );
        let ready = i64::try_from(pods.iter().filter(|p| pod_is_ready(p)).count()).unwrap_or(0);
        let start = format_rfc3339(start_secs);
        let end = format_rfc3339(start_secs + 60);
        let condition = |t: &str, reason: Option<&str>, message: Option<&str>| {
            let mut c = json!({
                "type": t, "status": "True",
                "lastProbeTime": end, "lastTransitionTime": end,
            });
            if let Some(r) = reason {
                map_mut(&mut c).insert("reason".into(), json!(r));
            }
            if let Some(m) = message {
                map_mut(&mut c).insert("message".into(), json!(m));
            }
            c
        };
        let mut status = Map::new();
        status.insert("startTime".into(), json!(start));
        if succeeded >= completions {
            status.insert("completionTime".into(), json!(end));
            status.insert(
                "conditions".into(),
                json!([
                    condition(
                        "SuccessCriteriaMet",
                        Some("CompletionsReached"),
                        Some("Reached expected number of succeeded pods")
                    ),
                    condition(
                        "Complete",
                        Some("CompletionsReached"),
                        Some("Reached expected number of succeeded pods")
                    ),
                ]),
            );
        } else if failed > backoff_limit {
            let msg = "Job has reached the specified backoff limit";
            status.insert(
                "conditions".into(),
                json!([
                    condition("FailureTarget", Some("BackoffLimitExceeded"), Some(msg)),
                    condition("Failed", Some("BackoffLimitExceeded"), Some(msg)),
                ]),
            );
        } else if active > 0 {
            status.insert("active".into(), json!(active));
        }
        if succeeded > 0 {
            status.insert("succeeded".into(), json!(succeeded));
        }
        if failed > 0 {
            status.insert("failed".into(), json!(failed));
        }
        status.insert("ready".into(), json!(ready));
        status.insert("terminating".into(), json!(0));
        status.insert("uncountedTerminatedPods".into(), json!({}));
        if let Some(j) = self.find_mut("jobs", ns, name) {
            let spec = child(j, "spec");
            if !manual {
                map_mut(spec).insert(
                    "selector".into(),
                    json!({"matchLabels": {"batch.kubernetes.io/controller-uid": job_uid}}),
                );
            }
            if let Some(t) = template.get("metadata").cloned() {
                map_mut(child(spec, "template")).insert("metadata".into(), t);
            }
            map_mut(j).insert("status".into(), Value::Object(status));
        }
        let pod_def = def("", "pods")?;
        for p in pods {
            self.stage(pod_def, p)
                .map_err(|e| format!("{}: {e}", self.sim))?;
        }
        Ok(())
    }

    fn entries_for(&self, kind: &str, ns: &str, name: &str) -> Vec<(usize, PodConfig)> {
        self.cfg
            .pods
            .iter()
            .enumerate()
            .filter(|(_, p)| {
                parse_object_ref(&p.workload).is_some_and(|r| r.def.kind == kind && r.name == name)
                    && p.namespace.as_deref().unwrap_or(&self.default_ns) == ns
            })
            .map(|(i, p)| (i, p.clone()))
            .collect()
    }

    fn override_for(&self, kind: &str, ns: &str, name: &str) -> Option<&WorkloadConfig> {
        self.cfg.workloads.iter().find(|w| {
            parse_object_ref(&w.name).is_some_and(|r| r.def.kind == kind && r.name == name)
                && w.namespace.as_deref().unwrap_or(&self.default_ns) == ns
        })
    }

    fn materialise_workloads(&mut self) -> Result<(), String> {
        let workloads: Vec<(&'static str, String, String)> = self
            .staged
            .iter()
            .filter(|s| matches!(s.def.kind, "Deployment" | "StatefulSet"))
            .map(|s| {
                (
                    s.def.kind,
                    str_of(&s.obj, &["metadata", "namespace"])
                        .unwrap_or_default()
                        .to_string(),
                    str_of(&s.obj, &["metadata", "name"])
                        .unwrap_or_default()
                        .to_string(),
                )
            })
            .collect();
        for (kind, ns, name) in workloads {
            if kind == "Deployment" {
                self.materialise_deployment(&ns, &name)?;
            } else {
                self.materialise_statefulset(&ns, &name)?;
            }
        }
        Ok(())
    }

    fn default_entries(
        &self,
        kind: &str,
        ns: &str,
        name: &str,
        replicas: u32,
    ) -> Vec<(Option<usize>, PodConfig)> {
        let entries = self.entries_for(kind, ns, name);
        if !entries.is_empty() {
            return entries.into_iter().map(|(i, p)| (Some(i), p)).collect();
        }
        let create = self
            .override_for(kind, ns, name)
            .and_then(|w| w.create_pods)
            .unwrap_or(true);
        if !create || replicas == 0 {
            return Vec::new();
        }
        vec![(
            None,
            PodConfig {
                workload: format!("{}/{name}", kind.to_ascii_lowercase()),
                count: Some(replicas),
                ..PodConfig::default()
            },
        )]
    }

    fn pod_ctx(&self, idx: Option<usize>) -> String {
        match idx {
            Some(i) => format!("{}: pods[{i}]", self.sim),
            None => format!("{}: default pods", self.sim),
        }
    }

    fn materialise_deployment(&mut self, ns: &str, name: &str) -> Result<(), String> {
        let Some(deploy) = self.find("deployments", ns, name).cloned() else {
            return Ok(());
        };
        let desired = deploy
            .pointer("/spec/replicas")
            .and_then(Value::as_u64)
            .and_then(|v| u32::try_from(v).ok())
            .unwrap_or(1);
        let template = deploy
            .pointer("/spec/template")
            .cloned()
            .unwrap_or(json!({}));
        let deploy_uid = str_of(&deploy, &["metadata", "uid"])
            .unwrap_or_default()
            .to_string();
        let entries = self.default_entries("Deployment", ns, name, desired);
        let template_json = serde_json::to_string(&template).unwrap_or_default();
        let hash_from_name = |old: bool| -> Option<String> {
            entries
                .iter()
                .filter(|(_, e)| e.old == old)
                .find_map(|(_, e)| {
                    let n = e.name.as_ref()?;
                    let rest = n.strip_prefix(&format!("{name}-"))?;
                    let (h, s) = rest.rsplit_once('-')?;
                    (!h.is_empty() && !s.is_empty() && !h.contains('-')).then(|| h.to_string())
                })
        };
        let new_hash = hash_from_name(false).unwrap_or_else(|| pod_template_hash(&template_json));
        let has_old = entries.iter().any(|(_, e)| e.old);
        let old_image = entries
            .iter()
            .find(|(_, e)| e.old)
            .and_then(|(_, e)| e.image.clone());
        let old_hash = hash_from_name(true)
            .unwrap_or_else(|| pod_template_hash(&format!("{template_json}old{old_image:?}")));
        if has_old && old_hash == new_hash {
            return Err(format!(
                "{}: old and new pods of deployment/{name} share the pod-template-hash {new_hash}",
                self.sim
            ));
        }
        let override_cfg = self.override_for("Deployment", ns, name).cloned();
        let selector = deploy
            .pointer("/spec/selector")
            .cloned()
            .unwrap_or(json!({}));

        // Build pods per revision.
        let mut new_pods = Vec::new();
        let mut old_pods = Vec::new();
        for (old, hash, revision) in [
            (true, old_hash.clone(), "1"),
            (false, new_hash.clone(), if has_old { "2" } else { "1" }),
        ] {
            if old && !has_old {
                continue;
            }
            let rs_name = format!("{name}-{hash}");
            let rs_uid = uid(&["ReplicaSet", ns, &rs_name]);
            let mut tmpl = template.clone();
            if old
                && let Some(img) = &old_image
                && let Some(c) = tmpl.pointer_mut("/spec/containers/0")
            {
                map_mut(c).insert("image".into(), json!(img));
            }
            map_mut(child(child(&mut tmpl, "metadata"), "labels"))
                .insert("pod-template-hash".into(), json!(hash));
            let owner = json!({
                "apiVersion": "apps/v1", "kind": "ReplicaSet", "name": rs_name, "uid": rs_uid,
                "controller": true, "blockOwnerDeletion": true
            });
            let mut pods = Vec::new();
            let mut serial = 0usize;
            for (idx, e) in entries.iter().filter(|(_, e)| e.old == old) {
                let ctx = self.pod_ctx(*idx);
                for i in 0..e.count.unwrap_or(1) {
                    serial += 1;
                    let pod_name = match (&e.name, i) {
                        (Some(n), 0) => n.clone(),
                        _ => format!(
                            "{rs_name}-{}",
                            name_suffix(&[&rs_name, &serial.to_string(), &format!("{idx:?}")], 5)
                        ),
                    };
                    let pod = self.build_pod(
                        &ctx,
                        ns,
                        &pod_name,
                        &tmpl,
                        Some(&owner),
                        Some(&format!("{rs_name}-")),
                        e,
                        None,
                    )?;
                    pods.push(pod);
                }
            }
            let pod_count = u32::try_from(pods.len()).unwrap_or(u32::MAX);
            let ready = u32::try_from(pods.iter().filter(|p| pod_is_ready(p)).count()).unwrap_or(0);
            let rs_spec_replicas = if old || has_old { pod_count } else { desired };
            let mut rs_selector = selector.clone();
            map_mut(child(&mut rs_selector, "matchLabels"))
                .insert("pod-template-hash".into(), json!(hash));
            let mut rs_labels = tmpl
                .pointer("/metadata/labels")
                .cloned()
                .unwrap_or(json!({}));
            map_mut(&mut rs_labels).insert("pod-template-hash".into(), json!(hash));
            let max_surge = max_surge(&deploy, desired);
            let mut status = json!({"replicas": pod_count, "observedGeneration": 1});
            {
                let sm = map_mut(&mut status);
                let labeled = pod_count;
                if labeled > 0 {
                    sm.insert("fullyLabeledReplicas".into(), json!(labeled));
                }
                if ready > 0 {
                    sm.insert("readyReplicas".into(), json!(ready));
                    sm.insert("availableReplicas".into(), json!(ready));
                }
            }
            if !old
                && let Some(msg) = override_cfg
                    .as_ref()
                    .and_then(|w| w.replica_failure.clone())
            {
                map_mut(&mut status).insert("conditions".into(), json!([{
                    "type": "ReplicaFailure", "status": "True", "lastTransitionTime": self.t(30),
                    "reason": "FailedCreate", "message": msg
                }]));
            }
            let mut rs = json!({
                "apiVersion": "apps/v1",
                "kind": "ReplicaSet",
                "metadata": {
                    "name": rs_name,
                    "namespace": ns,
                    "uid": rs_uid,
                    "generation": 1,
                    "creationTimestamp": self.t(if old { 0 } else if has_old { 3600 } else { 0 }),
                    "labels": rs_labels,
                    "annotations": {
                        "deployment.kubernetes.io/desired-replicas": desired.to_string(),
                        "deployment.kubernetes.io/max-replicas": (desired + max_surge).to_string(),
                        "deployment.kubernetes.io/revision": revision,
                    },
                    "ownerReferences": [{
                        "apiVersion": "apps/v1", "kind": "Deployment", "name": name, "uid": deploy_uid,
                        "controller": true, "blockOwnerDeletion": true
                    }]
                },
                "spec": {"replicas": rs_spec_replicas, "selector": rs_selector, "template": tmpl},
                "status": status,
            });
            if let Some(mrs) = deploy
                .pointer("/spec/minReadySeconds")
                .filter(|v| v.as_u64().is_some_and(|n| n > 0))
                && let Some(spec) = rs.get("spec").cloned()
            {
                let mut spec = spec;
                map_mut(&mut spec).insert("minReadySeconds".into(), mrs.clone());
                map_mut(&mut rs).insert("spec".into(), spec);
            }
            let rs_def = def("apps", "replicasets")?;
            self.stage(rs_def, rs)
                .map_err(|e| format!("{}: {e}", self.sim))?;
            if old {
                old_pods = pods;
            } else {
                new_pods = pods;
            }
        }
        let pod_def = def("", "pods")?;
        let all: Vec<Value> = old_pods.iter().chain(new_pods.iter()).cloned().collect();
        let total_pods = u32::try_from(all.len()).unwrap_or(u32::MAX);
        let ready = u32::try_from(all.iter().filter(|p| pod_is_ready(p)).count()).unwrap_or(0);
        let updated = u32::try_from(new_pods.len()).unwrap_or(0);
        let old_count = u32::try_from(old_pods.len()).unwrap_or(0);
        let new_rs_spec = if has_old { updated } else { desired };
        let total_spec = new_rs_spec + old_count;
        let available = ready;
        let unavailable = total_spec.saturating_sub(available);
        let max_unavailable = max_unavailable(&deploy, desired);
        let new_rs = format!("{name}-{new_hash}");
        let mut status = Map::new();
        status.insert("observedGeneration".into(), json!(1));
        for (k, v) in [
            ("replicas", total_pods),
            ("updatedReplicas", updated),
            ("readyReplicas", ready),
            ("availableReplicas", available),
            ("unavailableReplicas", unavailable),
        ] {
            if v > 0 {
                status.insert(k.into(), json!(v));
            }
        }
        let mut conditions = Vec::new();
        let avail_ok = available >= desired.saturating_sub(max_unavailable);
        conditions.push(json!({
            "type": "Available",
            "status": if avail_ok { "True" } else { "False" },
            "lastUpdateTime": self.t(40),
            "lastTransitionTime": self.t(40),
            "reason": if avail_ok { "MinimumReplicasAvailable" } else { "MinimumReplicasUnavailable" },
            "message": if avail_ok { "Deployment has minimum availability." } else { "Deployment does not have minimum availability." },
        }));
        let complete = updated == desired && total_pods == desired && available == desired;
        let deadline = override_cfg
            .as_ref()
            .is_some_and(|w| w.progress_deadline_exceeded);
        let (pstatus, preason, pmsg) = if deadline {
            (
                "False",
                "ProgressDeadlineExceeded",
                format!("ReplicaSet \"{new_rs}\" has timed out progressing."),
            )
        } else if complete {
            (
                "True",
                "NewReplicaSetAvailable",
                format!("ReplicaSet \"{new_rs}\" has successfully progressed."),
            )
        } else {
            (
                "True",
                "ReplicaSetUpdated",
                format!("ReplicaSet \"{new_rs}\" is progressing."),
            )
        };
        conditions.push(json!({
            "type": "Progressing", "status": pstatus,
            "lastUpdateTime": self.t(if deadline { 4200 } else { 40 }),
            "lastTransitionTime": self.t(if deadline { 4200 } else { 0 }),
            "reason": preason, "message": pmsg,
        }));
        if let Some(msg) = override_cfg
            .as_ref()
            .and_then(|w| w.replica_failure.clone())
        {
            conditions.push(json!({
                "type": "ReplicaFailure", "status": "True",
                "lastUpdateTime": self.t(30), "lastTransitionTime": self.t(30),
                "reason": "FailedCreate", "message": msg,
            }));
        }
        status.insert("conditions".into(), Value::Array(conditions));
        let revision = if has_old { "2" } else { "1" };
        if let Some(d) = self.find_mut("deployments", ns, name) {
            map_mut(d).insert("status".into(), Value::Object(status));
            map_mut(child(child(d, "metadata"), "annotations"))
                .insert("deployment.kubernetes.io/revision".into(), json!(revision));
        }
        for p in all {
            self.stage(pod_def, p)
                .map_err(|e| format!("{}: {e}", self.sim))?;
        }
        Ok(())
    }

    fn materialise_statefulset(&mut self, ns: &str, name: &str) -> Result<(), String> {
        let Some(sts) = self.find("statefulsets", ns, name).cloned() else {
            return Ok(());
        };
        let desired = sts
            .pointer("/spec/replicas")
            .and_then(Value::as_u64)
            .and_then(|v| u32::try_from(v).ok())
            .unwrap_or(1);
        let template = sts.pointer("/spec/template").cloned().unwrap_or(json!({}));
        let sts_uid = str_of(&sts, &["metadata", "uid"])
            .unwrap_or_default()
            .to_string();
        let service_name = str_of(&sts, &["spec", "serviceName"]).map(str::to_string);
        let entries = self.default_entries("StatefulSet", ns, name, desired);
        let template_json = serde_json::to_string(&template).unwrap_or_default();
        let update_rev = format!("{name}-{}", pod_template_hash(&template_json));
        let old_image = entries
            .iter()
            .find(|(_, e)| e.old)
            .and_then(|(_, e)| e.image.clone());
        let current_rev = format!(
            "{name}-{}",
            pod_template_hash(&format!("{template_json}old{old_image:?}"))
        );
        let has_old = entries.iter().any(|(_, e)| e.old);
        let owner = json!({
            "apiVersion": "apps/v1", "kind": "StatefulSet", "name": name, "uid": sts_uid,
            "controller": true, "blockOwnerDeletion": true
        });
        let mut ordinal = 0u32;
        let mut pods = Vec::new();
        let mut updated = 0u32;
        for (idx, e) in &entries {
            let ctx = self.pod_ctx(*idx);
            for i in 0..e.count.unwrap_or(1) {
                let pod_name = match (&e.name, i) {
                    (Some(n), 0) => n.clone(),
                    _ => format!("{name}-{ordinal}"),
                };
                let pod_ordinal = pod_name
                    .rsplit_once('-')
                    .and_then(|(_, o)| o.parse::<u32>().ok())
                    .unwrap_or(ordinal);
                let rev = if e.old { &current_rev } else { &update_rev };
                if !e.old {
                    updated += 1;
                }
                let mut tmpl = template.clone();
                if e.old
                    && let Some(img) = &old_image
                    && let Some(c) = tmpl.pointer_mut("/spec/containers/0")
                {
                    map_mut(c).insert("image".into(), json!(img));
                }
                {
                    let labels = map_mut(child(child(&mut tmpl, "metadata"), "labels"));
                    labels.insert("controller-revision-hash".into(), json!(rev));
                    labels.insert("statefulset.kubernetes.io/pod-name".into(), json!(pod_name));
                    labels.insert(
                        "apps.kubernetes.io/pod-index".into(),
                        json!(pod_ordinal.to_string()),
                    );
                }
                let mut extra = json!({"hostname": pod_name});
                if let Some(s) = &service_name {
                    map_mut(&mut extra).insert("subdomain".into(), json!(s));
                }
                let pod = self.build_pod(
                    &ctx,
                    ns,
                    &pod_name,
                    &tmpl,
                    Some(&owner),
                    None,
                    e,
                    Some(extra),
                )?;
                pods.push(pod);
                ordinal += 1;
            }
        }
        let total = u32::try_from(pods.len()).unwrap_or(u32::MAX);
        let ready = u32::try_from(pods.iter().filter(|p| pod_is_ready(p)).count()).unwrap_or(0);
        let mut status = Map::new();
        status.insert("observedGeneration".into(), json!(1));
        status.insert("replicas".into(), json!(total));
        for (k, v) in [
            ("readyReplicas", ready),
            ("availableReplicas", ready),
            (
                "currentReplicas",
                if has_old { total - updated } else { total },
            ),
            ("updatedReplicas", updated),
        ] {
            if v > 0 {
                status.insert(k.into(), json!(v));
            }
        }
        status.insert(
            "currentRevision".into(),
            json!(if has_old { &current_rev } else { &update_rev }),
        );
        status.insert("updateRevision".into(), json!(update_rev));
        status.insert("collisionCount".into(), json!(0));
        if let Some(s) = self.find_mut("statefulsets", ns, name) {
            map_mut(s).insert("status".into(), Value::Object(status));
        }
        let pod_def = def("", "pods")?;
        for p in pods {
            self.stage(pod_def, p)
                .map_err(|e| format!("{}: {e}", self.sim))?;
        }
        Ok(())
    }

    /// Manifest pods get a status (from a `pod/<name>` entry or a default
    /// Running/Ready one) unless the manifest gave one.
    fn materialise_manifest_pods(&mut self) -> Result<(), String> {
        let pods: Vec<(usize, String, String)> = self
            .staged
            .iter()
            .enumerate()
            .filter(|(_, s)| s.def.kind == "Pod")
            .map(|(i, s)| {
                (
                    i,
                    str_of(&s.obj, &["metadata", "namespace"])
                        .unwrap_or_default()
                        .to_string(),
                    str_of(&s.obj, &["metadata", "name"])
                        .unwrap_or_default()
                        .to_string(),
                )
            })
            .collect();
        for (i, ns, name) in pods {
            let entries = self.entries_for("Pod", &ns, &name);
            let Some(obj) = self.staged.get(i).map(|s| s.obj.clone()) else {
                continue;
            };
            if entries.is_empty() && obj.get("status").is_some() {
                continue;
            }
            let (idx, entry) = entries
                .into_iter()
                .next()
                .map_or((None, PodConfig::default()), |(i, p)| (Some(i), p));
            let ctx = self.pod_ctx(idx);
            let template = json!({"metadata": obj.get("metadata").cloned().unwrap_or(json!({})), "spec": obj.get("spec").cloned().unwrap_or(json!({}))});
            let owner = obj.pointer("/metadata/ownerReferences/0").cloned();
            let built = self.build_pod(
                &ctx,
                &ns,
                &name,
                &template,
                owner.as_ref(),
                None,
                &entry,
                None,
            )?;
            if let Some(s) = self.staged.get_mut(i) {
                let mut merged = s.obj.clone();
                let m = map_mut(&mut merged);
                if let Some(spec) = built.get("spec") {
                    m.insert("spec".into(), spec.clone());
                }
                if let Some(status) = built.get("status") {
                    m.insert("status".into(), status.clone());
                }
                s.obj = merged;
            }
        }
        Ok(())
    }

    fn node_ip(node: &str) -> String {
        let digits: String = node
            .chars()
            .rev()
            .take_while(char::is_ascii_digit)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        let n = digits
            .parse::<u64>()
            .unwrap_or_else(|_| hash_parts(&[node]) % 200)
            % 240;
        format!("10.0.1.{}", n + 10)
    }

    fn next_pod_ip(&mut self, node: &str) -> String {
        let digits: String = node
            .chars()
            .rev()
            .take_while(char::is_ascii_digit)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        let n = u32::try_from(
            digits
                .parse::<u64>()
                .unwrap_or_else(|_| hash_parts(&[node]) % 16)
                % 16,
        )
        .unwrap_or(0);
        let c = self.ip_counters.entry(node.to_string()).or_insert(0);
        *c += 1;
        let k = *c + 8;
        format!("10.244.{}.{}", n * 16 + (k / 250) % 16, k % 250 + 2)
    }

    #[allow(clippy::too_many_arguments)]
    fn build_pod(
        &mut self,
        ctx: &str,
        ns: &str,
        name: &str,
        template: &Value,
        owner: Option<&Value>,
        generate_name: Option<&str>,
        e: &PodConfig,
        extra_spec: Option<Value>,
    ) -> Result<Value, String> {
        let pod_uid = uid(&["Pod", ns, name]);
        if !e.files.is_empty() || e.shell.is_some() {
            self.pod_files
                .insert((ns.into(), name.into()), (e.files.clone(), e.shell));
        }
        let mut spec = template.get("spec").cloned().unwrap_or(json!({}));
        normalize_pod_spec(&mut spec);
        if let Some(img) = &e.image
            && let Some(c) = spec.pointer_mut("/containers/0")
        {
            map_mut(c).insert("image".into(), json!(img));
        }
        if let Some(x) = extra_spec
            && let Value::Object(m) = x
        {
            let sm = map_mut(&mut spec);
            for (k, v) in m {
                sm.insert(k, v);
            }
        }
        add_service_account_volume(&mut spec, name);
        let phase = e.phase.clone().unwrap_or_else(|| "Running".into());
        let sched_override = e.conditions.get("PodScheduled").map(|c| c.status.as_str());
        let scheduled = e.scheduled.unwrap_or(
            e.node.is_some() || !(phase == "Pending" && sched_override == Some("False")),
        );
        let node = if scheduled {
            Some(e.node.clone().unwrap_or_else(|| "node-1".into()))
        } else {
            None
        };
        if let Some(n) = &node {
            map_mut(&mut spec).insert("nodeName".into(), json!(n));
        }
        let containers: Vec<Value> = spec
            .get("containers")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let names: Vec<String> = containers
            .iter()
            .filter_map(|c| str_of(c, &["name"]).map(str::to_string))
            .collect();
        for cname in e
            .containers
            .keys()
            .chain(e.logs.keys())
            .chain(e.previous_logs.keys())
        {
            if !names.contains(cname) {
                return Err(format!(
                    "{ctx}: no container named {cname:?} in {} (containers: {})",
                    e.workload,
                    names.join(", ")
                ));
            }
        }
        let pod_ready_default = e.ready.unwrap_or(phase == "Running");
        let start = self.base + 10;
        let mut statuses = Vec::new();
        let mut all_ready = !containers.is_empty();
        let mut unready = Vec::new();
        let mut any_creating = false;
        for c in &containers {
            let cname = str_of(c, &["name"]).unwrap_or_default().to_string();
            let image = str_of(c, &["image"]).unwrap_or_default().to_string();
            let cfg = e.containers.get(&cname).cloned().unwrap_or_default();
            let cs = self.container_status(
                ns,
                name,
                &pod_uid,
                &cname,
                &image,
                &cfg,
                &phase,
                pod_ready_default,
                start,
            );
            if cs.pointer("/state/waiting/reason").and_then(Value::as_str)
                == Some("ContainerCreating")
            {
                any_creating = true;
            }
            if cs.get("ready") != Some(&json!(true)) {
                all_ready = false;
                unready.push(cname.clone());
            }
            statuses.push(cs);
            if let Some(l) = e.logs.get(&cname) {
                self.logs
                    .insert((ns.into(), name.into(), cname.clone(), false), l.clone());
            }
            if let Some(l) = e.previous_logs.get(&cname) {
                self.logs
                    .insert((ns.into(), name.into(), cname.clone(), true), l.clone());
            }
        }
        let pod_ready = all_ready && phase == "Running";
        let mut status = Map::new();
        status.insert("phase".into(), json!(phase));
        let mut conditions: Vec<Value> = Vec::new();
        let cond = |t: &str, s: &str, at: i64, reason: Option<&str>, msg: Option<String>| {
            let mut c = json!({"type": t, "status": s, "lastProbeTime": null, "lastTransitionTime": format_rfc3339(at)});
            if let Some(r) = reason {
                map_mut(&mut c).insert("reason".into(), json!(r));
            }
            if let Some(m) = msg {
                map_mut(&mut c).insert("message".into(), json!(m));
            }
            c
        };
        if scheduled {
            let terminal = matches!(phase.as_str(), "Succeeded" | "Failed");
            let sandbox = !any_creating && !terminal;
            conditions.push(cond(
                "PodReadyToStartContainers",
                if sandbox { "True" } else { "False" },
                start + 2,
                None,
                None,
            ));
            conditions.push(cond("Initialized", "True", start, None, None));
            let unready_msg = format!("containers with unready status: [{}]", unready.join(" "));
            if terminal {
                conditions.push(cond(
                    "Ready",
                    "False",
                    start + 30,
                    Some("PodCompleted"),
                    None,
                ));
                conditions.push(cond(
                    "ContainersReady",
                    "False",
                    start + 30,
                    Some("PodCompleted"),
                    None,
                ));
            } else if pod_ready {
                conditions.push(cond("Ready", "True", start + 20, None, None));
                conditions.push(cond("ContainersReady", "True", start + 20, None, None));
            } else {
                conditions.push(cond(
                    "Ready",
                    "False",
                    start,
                    Some("ContainersNotReady"),
                    Some(unready_msg.clone()),
                ));
                conditions.push(cond(
                    "ContainersReady",
                    "False",
                    start,
                    Some("ContainersNotReady"),
                    Some(unready_msg),
                ));
            }
            conditions.push(cond("PodScheduled", "True", start - 5, None, None));
        } else {
            conditions.push(cond(
                "PodScheduled",
                "False",
                start - 5,
                Some("Unschedulable"),
                Some("0/3 nodes are available: 3 Insufficient memory. preemption: 0/3 nodes are available: 3 No preemption victims found for incoming pod.".into()),
            ));
        }
        for (t, o) in &e.conditions {
            let existing = conditions
                .iter_mut()
                .find(|c| str_of(c, &["type"]) == Some(t.as_str()));
            let target = match existing {
                Some(c) => c,
                None => {
                    conditions.push(cond(t, &o.status, start, None, None));
                    let last = conditions.len() - 1;
                    &mut conditions[last]
                }
            };
            let m = map_mut(target);
            m.insert("status".into(), json!(o.status));
            if o.status == "True" && o.reason.is_none() {
                m.remove("reason");
                m.remove("message");
            }
            if let Some(r) = &o.reason {
                m.insert("reason".into(), json!(r));
            }
            if let Some(msg) = &o.message {
                m.insert("message".into(), json!(msg));
            }
        }
        status.insert("conditions".into(), Value::Array(conditions));
        if let Some(n) = &node {
            let host_ip = Self::node_ip(n);
            status.insert("hostIP".into(), json!(host_ip));
            status.insert("hostIPs".into(), json!([{"ip": host_ip}]));
            if !any_creating {
                let ip = self.next_pod_ip(n);
                status.insert("podIP".into(), json!(ip));
                status.insert("podIPs".into(), json!([{"ip": ip}]));
            }
            status.insert("startTime".into(), json!(format_rfc3339(start)));
            if let Some(inits) = spec.get("initContainers").and_then(Value::as_array) {
                let ics: Vec<Value> = inits
                    .iter()
                    .map(|c| {
                        let cname = str_of(c, &["name"]).unwrap_or_default();
                        let image = str_of(c, &["image"]).unwrap_or_default();
                        let cid = format!("containerd://{}", hex_id(&[ns, name, cname, "init"], 64));
                        json!({
                            "name": cname, "image": normalize_image(image),
                            "imageID": format!("{}@sha256:{}", image_repo(image), hex_id(&[image], 64)),
                            "containerID": cid, "ready": true, "restartCount": 0, "started": false,
                            "state": {"terminated": {"exitCode": 0, "reason": "Completed", "startedAt": format_rfc3339(start + 1), "finishedAt": format_rfc3339(start + 3), "containerID": cid}},
                            "lastState": {}
                        })
                    })
                    .collect();
                status.insert("initContainerStatuses".into(), Value::Array(ics));
            }
            status.insert("containerStatuses".into(), Value::Array(statuses));
        }
        status.insert("qosClass".into(), json!(qos_class(&spec)));
        let mut metadata = json!({
            "name": name,
            "namespace": ns,
            "uid": pod_uid,
            "generation": 1,
            "creationTimestamp": format_rfc3339(self.base + 5),
        });
        let mm = map_mut(&mut metadata);
        if let Some(g) = generate_name {
            mm.insert("generateName".into(), json!(g));
        }
        if let Some(l) = template
            .pointer("/metadata/labels")
            .filter(|l| l.as_object().is_some_and(|m| !m.is_empty()))
        {
            mm.insert("labels".into(), l.clone());
        }
        if let Some(a) = template
            .pointer("/metadata/annotations")
            .filter(|a| a.as_object().is_some_and(|m| !m.is_empty()))
        {
            mm.insert("annotations".into(), a.clone());
        }
        if let Some(o) = owner {
            mm.insert("ownerReferences".into(), json!([o]));
        }
        Ok(json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": metadata,
            "spec": spec,
            "status": status,
        }))
    }

    #[allow(clippy::too_many_arguments)]
    fn container_status(
        &self,
        ns: &str,
        pod: &str,
        pod_uid: &str,
        cname: &str,
        image: &str,
        cfg: &ContainerConfig,
        phase: &str,
        pod_ready: bool,
        start: i64,
    ) -> Value {
        let restarts = cfg.restarts;
        let cid = |n: u32| {
            format!(
                "containerd://{}",
                hex_id(&[ns, pod, cname, &n.to_string()], 64)
            )
        };
        let terminated = |s: &StateConfig,
                          default_reason: &str,
                          default_code: i32,
                          started: i64,
                          finished: i64,
                          id: &str| {
            let mut t = json!({
                "exitCode": s.exit_code.unwrap_or(default_code),
                "reason": s.reason.clone().unwrap_or_else(|| default_reason.to_string()),
                "startedAt": s.started_at.clone().unwrap_or_else(|| format_rfc3339(started)),
                "finishedAt": s.finished_at.clone().unwrap_or_else(|| format_rfc3339(finished)),
                "containerID": id,
            });
            if let Some(m) = &s.message {
                map_mut(&mut t).insert("message".into(), json!(m));
            }
            if let Some(sig) = s.signal {
                map_mut(&mut t).insert("signal".into(), json!(sig));
            }
            t
        };
        let last_run_start = start + 5 + i64::from(restarts) * 60;
        let mut has_run = false;
        let mut container_id: Option<String> = None;
        let state = if let Some(w) = &cfg.waiting {
            let reason = w
                .reason
                .clone()
                .unwrap_or_else(|| "ContainerCreating".into());
            let default_msg = match reason.as_str() {
                "CrashLoopBackOff" => Some(format!(
                    "back-off 5m0s restarting failed container={cname} pod={pod}_{ns}({pod_uid})"
                )),
                "ImagePullBackOff" => Some(format!("Back-off pulling image \"{image}\"")),
                "ErrImagePull" => Some(format!(
                    "rpc error: code = NotFound desc = failed to pull and unpack image \"{}\": failed to resolve reference \"{}\": {}: not found",
                    normalize_image(image),
                    normalize_image(image),
                    normalize_image(image)
                )),
                _ => None,
            };
            let mut wv = json!({"reason": reason});
            if let Some(m) = w.message.clone().or(default_msg) {
                map_mut(&mut wv).insert("message".into(), json!(m));
            }
            if reason == "CrashLoopBackOff" || restarts > 0 || cfg.last_terminated.is_some() {
                has_run = true;
            }
            json!({"waiting": wv})
        } else if let Some(t) = &cfg.terminated {
            has_run = true;
            let id = cid(restarts);
            container_id = Some(id.clone());
            json!({"terminated": terminated(t, "Error", 1, last_run_start, last_run_start + 30, &id)})
        } else {
            match phase {
                "Pending" => json!({"waiting": {"reason": "ContainerCreating"}}),
                "Succeeded" => {
                    has_run = true;
                    let id = cid(restarts);
                    container_id = Some(id.clone());
                    json!({"terminated": terminated(&StateConfig::default(), "Completed", 0, last_run_start, last_run_start + 30, &id)})
                }
                "Failed" => {
                    has_run = true;
                    let id = cid(restarts);
                    container_id = Some(id.clone());
                    json!({"terminated": terminated(&StateConfig::default(), "Error", 1, last_run_start, last_run_start + 30, &id)})
                }
                _ => {
                    has_run = true;
                    container_id = Some(cid(restarts));
                    json!({"running": {"startedAt": format_rfc3339(last_run_start)}})
                }
            }
        };
        let last_state = match &cfg.last_terminated {
            Some(l) => {
                has_run = true;
                let prev = restarts.saturating_sub(if cfg.waiting.is_some() { 0 } else { 1 });
                let id = cid(prev);
                if container_id.is_none() {
                    container_id = Some(id.clone());
                }
                json!({"terminated": terminated(l, "Error", 1, last_run_start - 60, last_run_start - 5, &id)})
            }
            None if restarts > 0
                && cfg.waiting.as_ref().and_then(|w| w.reason.as_deref())
                    == Some("CrashLoopBackOff") =>
            {
                let id = cid(restarts);
                container_id = Some(id.clone());
                json!({"terminated": terminated(&StateConfig::default(), "Error", 1, last_run_start - 60, last_run_start - 5, &id)})
            }
            None => json!({}),
        };
        let running = state.get("running").is_some();
        let ready = cfg.ready.unwrap_or(pod_ready && running) && running;
        let mut cs = json!({
            "name": cname,
            "ready": ready,
            "restartCount": restarts,
            "started": running,
            "state": state,
            "lastState": last_state,
        });
        let m = map_mut(&mut cs);
        if has_run {
            m.insert("image".into(), json!(normalize_image(image)));
            m.insert(
                "imageID".into(),
                json!(format!(
                    "{}@sha256:{}",
                    image_repo(image),
                    hex_id(&[image], 64)
                )),
            );
            m.insert(
                "containerID".into(),
                json!(container_id.unwrap_or_else(|| cid(restarts))),
            );
        } else {
            m.insert("image".into(), json!(image));
            m.insert("imageID".into(), json!(""));
        }
        cs
    }

    fn materialise_noise(&mut self, store: &mut Store) {
        let n = &self.cfg.noise;
        if n.pods == 0 && n.configmaps == 0 {
            return;
        }
        let ns = n
            .namespace
            .clone()
            .unwrap_or_else(|| self.default_ns.clone());
        let (pods, cms) = (n.pods, n.configmaps);
        let (Some(pod_def), Some(cm_def), Some(ns_def)) = (
            resources::find("", "v1", "pods"),
            resources::find("", "v1", "configmaps"),
            resources::find("", "v1", "namespaces"),
        ) else {
            return;
        };
        if store.entry(ns_def, "", &ns).is_none() {
            let mut obj = json!({"metadata": {"name": ns}});
            normalize_namespace(&ns, &mut obj);
            self.object_meta(ns_def, &mut obj);
            store.insert(ns_def, obj);
        }
        for i in 0..pods {
            let app = format!("noise-{}", i % 50);
            let hash = pod_template_hash(&app);
            let name = format!(
                "{app}-{hash}-{}",
                name_suffix(&["noise", &i.to_string()], 5)
            );
            let template = noise_pod_template(&app, &hash, i);
            let entry = PodConfig {
                workload: format!("deployment/{app}"),
                node: Some(format!("node-{}", i % 3 + 1)),
                ..PodConfig::default()
            };
            if let Ok(pod) = self.build_pod(
                "noise",
                &ns,
                &name,
                &template,
                None,
                Some(&format!("{app}-{hash}-")),
                &entry,
                None,
            ) {
                store.insert(pod_def, pod);
            }
        }
        for i in 0..cms {
            let app = format!("noise-{}", i % 50);
            let mut props = String::new();
            for k in 0..40 {
                props.push_str(&format!(
                    "{app}.setting.{k:02}=value-{:08x}\n",
                    hash_parts(&[&app, &k.to_string(), &i.to_string()]) & 0xffff_ffff
                ));
            }
            let mut cm = json!({
                "metadata": {"name": format!("{app}-config-{i}"), "namespace": ns, "labels": {"app": app, "app.kubernetes.io/part-of": "noise"}},
                "data": {"application.properties": props, "LOG_LEVEL": "info", "FEATURE_FLAGS": "a,b,c"}
            });
            self.object_meta(cm_def, &mut cm);
            store.insert(cm_def, cm);
        }
    }

    fn materialise_service_endpoints(&mut self) {
        let (Some(ep_def), Some(slice_def)) = (
            resources::find("", "v1", "endpoints"),
            resources::find("discovery.k8s.io", "v1", "endpointslices"),
        ) else {
            return;
        };
        // The `kubernetes` Service in `default`, as every cluster has.
        if self.find("services", "default", "kubernetes").is_none()
            && let Some(svc_def) = resources::find("", "v1", "services")
        {
            let mut svc = json!({
                "metadata": {"name": "kubernetes", "namespace": "default", "labels": {"component": "apiserver", "provider": "kubernetes"}},
                "spec": {"clusterIP": "10.96.0.1", "clusterIPs": ["10.96.0.1"], "ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": 6443}],
                         "type": "ClusterIP", "sessionAffinity": "None", "ipFamilies": ["IPv4"], "ipFamilyPolicy": "SingleStack", "internalTrafficPolicy": "Cluster"},
                "status": {"loadBalancer": {}}
            });
            self.object_meta(svc_def, &mut svc);
            let _ = self.stage(svc_def, svc);
            let mut ep = json!({
                "metadata": {"name": "kubernetes", "namespace": "default", "labels": {"endpointslice.kubernetes.io/skip-mirror": "true"}},
                "subsets": [{"addresses": [{"ip": "10.0.1.2"}], "ports": [{"name": "https", "port": 6443, "protocol": "TCP"}]}]
            });
            self.object_meta(ep_def, &mut ep);
            let _ = self.stage(ep_def, ep);
            let mut slice = json!({
                "metadata": {"name": "kubernetes", "namespace": "default", "labels": {"kubernetes.io/service-name": "kubernetes"}},
                "addressType": "IPv4",
                "endpoints": [{"addresses": ["10.0.1.2"], "conditions": {"ready": true}}],
                "ports": [{"name": "https", "port": 6443, "protocol": "TCP"}]
            });
            self.object_meta(slice_def, &mut slice);
            let _ = self.stage(slice_def, slice);
        }
        let services: Vec<Value> = self
            .staged
            .iter()
            .filter(|s| s.def.kind == "Service")
            .map(|s| s.obj.clone())
            .collect();
        for svc in services {
            let ns = str_of(&svc, &["metadata", "namespace"])
                .unwrap_or_default()
                .to_string();
            let name = str_of(&svc, &["metadata", "name"])
                .unwrap_or_default()
                .to_string();
            let Some(selector) = svc
                .pointer("/spec/selector")
                .and_then(Value::as_object)
                .filter(|s| !s.is_empty())
            else {
                continue;
            };
            let svc_ports: Vec<Value> = svc
                .pointer("/spec/ports")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            let pods: Vec<Value> = self
                .staged
                .iter()
                .filter(|s| s.def.kind == "Pod")
                .filter(|s| str_of(&s.obj, &["metadata", "namespace"]) == Some(ns.as_str()))
                .filter(|s| {
                    let labels = labels_of(&s.obj);
                    selector.iter().all(|(k, v)| labels.get(k) == Some(v))
                })
                .filter(|s| str_of(&s.obj, &["status", "podIP"]).is_some())
                .filter(|s| {
                    !matches!(
                        str_of(&s.obj, &["status", "phase"]),
                        Some("Succeeded" | "Failed")
                    )
                })
                .map(|s| s.obj.clone())
                .collect();
            // Resolve ports per pod; pods with the same port set share a subset.
            let mut subsets: Vec<(Vec<Value>, Vec<Value>, Vec<Value>)> = Vec::new();
            let mut slice_endpoints = Vec::new();
            let mut slice_ports: Option<Vec<Value>> = None;
            for p in &pods {
                let ports: Vec<Value> = svc_ports
                    .iter()
                    .filter_map(|sp| {
                        let target = sp.get("targetPort").cloned().unwrap_or(Value::Null);
                        let port = match &target {
                            Value::Number(_) => target.clone(),
                            Value::String(s) => match s.parse::<u64>() {
                                Ok(n) => json!(n),
                                Err(_) => find_container_port(p, s)?,
                            },
                            _ => sp.get("port").cloned()?,
                        };
                        let mut e = json!({"port": port, "protocol": sp.get("protocol").cloned().unwrap_or(json!("TCP"))});
                        if let Some(n) = sp.get("name").and_then(Value::as_str) {
                            map_mut(&mut e).insert("name".into(), json!(n));
                        }
                        if let Some(a) = sp.get("appProtocol") {
                            map_mut(&mut e).insert("appProtocol".into(), a.clone());
                        }
                        Some(e)
                    })
                    .collect();
                let ip = str_of(p, &["status", "podIP"])
                    .unwrap_or_default()
                    .to_string();
                let target_ref = json!({
                    "kind": "Pod", "namespace": ns,
                    "name": str_of(p, &["metadata", "name"]).unwrap_or_default(),
                    "uid": str_of(p, &["metadata", "uid"]).unwrap_or_default(),
                });
                let mut addr = json!({"ip": ip, "targetRef": target_ref});
                if let Some(n) = str_of(p, &["spec", "nodeName"]) {
                    map_mut(&mut addr).insert("nodeName".into(), json!(n));
                }
                let ready = pod_is_ready(p);
                let entry = match subsets.iter_mut().find(|(ps, _, _)| *ps == ports) {
                    Some(e) => e,
                    None => {
                        subsets.push((ports.clone(), Vec::new(), Vec::new()));
                        let last = subsets.len() - 1;
                        &mut subsets[last]
                    }
                };
                if ready {
                    entry.1.push(addr);
                } else {
                    entry.2.push(addr);
                }
                let mut se = json!({
                    "addresses": [ip],
                    "conditions": {"ready": ready, "serving": ready, "terminating": false},
                    "targetRef": target_ref,
                });
                if let Some(n) = str_of(p, &["spec", "nodeName"]) {
                    map_mut(&mut se).insert("nodeName".into(), json!(n));
                }
                slice_endpoints.push(se);
                if slice_ports.is_none() {
                    slice_ports = Some(
                        ports
                            .iter()
                            .map(|p| {
                                let mut q = p.clone();
                                set_default(&mut q, "name", json!(""));
                                q
                            })
                            .collect(),
                    );
                }
            }
            let svc_labels = svc
                .pointer("/metadata/labels")
                .cloned()
                .unwrap_or(json!({}));
            if self.find("endpoints", &ns, &name).is_none() {
                let subsets_json: Vec<Value> = subsets
                    .into_iter()
                    .map(|(ports, ready, not_ready)| {
                        let mut s = json!({"ports": ports});
                        if !ready.is_empty() {
                            map_mut(&mut s).insert("addresses".into(), Value::Array(ready));
                        }
                        if !not_ready.is_empty() {
                            map_mut(&mut s)
                                .insert("notReadyAddresses".into(), Value::Array(not_ready));
                        }
                        s
                    })
                    .collect();
                let mut ep = json!({
                    "metadata": {"name": name, "namespace": ns, "annotations": {"endpoints.kubernetes.io/last-change-trigger-time": self.t(40)}},
                });
                if svc_labels.as_object().is_some_and(|m| !m.is_empty()) {
                    map_mut(child(&mut ep, "metadata")).insert("labels".into(), svc_labels.clone());
                }
                if !subsets_json.is_empty() {
                    map_mut(&mut ep).insert("subsets".into(), Value::Array(subsets_json));
                }
                self.object_meta(ep_def, &mut ep);
                let _ = self.stage(ep_def, ep);
            }
            let has_slice = self.staged.iter().any(|s| {
                s.def.kind == "EndpointSlice"
                    && str_of(&s.obj, &["metadata", "namespace"]) == Some(ns.as_str())
                    && str_of(
                        &s.obj,
                        &["metadata", "labels", "kubernetes.io/service-name"],
                    ) == Some(name.as_str())
            });
            if !has_slice {
                let mut labels = svc_labels.clone();
                map_mut(&mut labels).insert("kubernetes.io/service-name".into(), json!(name));
                map_mut(&mut labels).insert(
                    "endpointslice.kubernetes.io/managed-by".into(),
                    json!("endpointslice-controller.k8s.io"),
                );
                let slice_name = format!("{name}-{}", name_suffix(&["slice", &ns, &name], 5));
                let mut slice = json!({
                    "metadata": {
                        "name": slice_name, "namespace": ns, "generateName": format!("{name}-"),
                        "labels": labels,
                        "annotations": {"endpoints.kubernetes.io/last-change-trigger-time": self.t(40)},
                        "ownerReferences": [{"apiVersion": "v1", "kind": "Service", "name": name,
                                             "uid": str_of(&svc, &["metadata", "uid"]).unwrap_or_default(),
                                             "controller": true, "blockOwnerDeletion": true}],
                        "generation": 1
                    },
                    "addressType": "IPv4",
                    "endpoints": if slice_endpoints.is_empty() { Value::Null } else { Value::Array(slice_endpoints) },
                    "ports": match slice_ports {
                        Some(p) => Value::Array(p),
                        None => Value::Null,
                    },
                });
                self.object_meta(slice_def, &mut slice);
                let _ = self.stage(slice_def, slice);
            }
        }
    }

    fn materialise_namespaces(&mut self) {
        let Some(ns_def) = resources::find("", "v1", "namespaces") else {
            return;
        };
        let mut names: BTreeSet<String> =
            ["default", "kube-system", "kube-public", "kube-node-lease"]
                .into_iter()
                .map(String::from)
                .collect();
        for s in &self.staged {
            if s.def.namespaced
                && let Some(ns) = str_of(&s.obj, &["metadata", "namespace"])
            {
                names.insert(ns.to_string());
            }
        }
        let noise = &self.cfg.noise;
        if noise.pods > 0 || noise.configmaps > 0 {
            names.insert(
                noise
                    .namespace
                    .clone()
                    .unwrap_or_else(|| self.default_ns.clone()),
            );
        }
        for ns in &names {
            if self.find("namespaces", "", ns).is_none() {
                let mut obj = json!({"metadata": {"name": ns}});
                normalize_namespace(ns, &mut obj);
                self.object_meta(ns_def, &mut obj);
                let _ = self.stage(ns_def, obj);
            }
        }
        // What every namespace gets from the cluster's controllers.
        let all: Vec<String> = self
            .staged
            .iter()
            .filter(|s| s.def.kind == "Namespace")
            .filter_map(|s| str_of(&s.obj, &["metadata", "name"]).map(str::to_string))
            .collect();
        let (Some(cm_def), Some(sa_def)) = (
            resources::find("", "v1", "configmaps"),
            resources::find("", "v1", "serviceaccounts"),
        ) else {
            return;
        };
        for ns in all {
            if self.find("configmaps", &ns, "kube-root-ca.crt").is_none() {
                let mut cm = json!({
                    "metadata": {"name": "kube-root-ca.crt", "namespace": ns, "annotations": {"kubernetes.io/description": "Contains a CA bundle that can be used to verify the kube-apiserver when using internal endpoints such as the internal service IP or kubernetes.default.svc. No other usage is guaranteed across distributions of Kubernetes clusters."}},
                    "data": {"ca.crt": "-----BEGIN CERTIFICATE-----\nMIIBdzCCAR2gAwIBAgIBADAKBggqhkjOPQQDAjAjMSEwHwYDVQQDDBhrM3Mtc2Vy\ndmVyLWNhQDE3MDAwMDAwMDAwHhcNMjUwNjAyMDgwMDAwWhcNMzUwNTMxMDgwMDAw\nWjAjMSEwHwYDVQQDDBhzaW11bGF0ZWQtY2x1c3Rlci1jYS1ub3QtcmVhbDBZMBMG\n-----END CERTIFICATE-----\n"}
                });
                self.object_meta(cm_def, &mut cm);
                let _ = self.stage(cm_def, cm);
            }
            if self.find("serviceaccounts", &ns, "default").is_none() {
                let mut sa = json!({"metadata": {"name": "default", "namespace": ns}});
                self.object_meta(sa_def, &mut sa);
                let _ = self.stage(sa_def, sa);
            }
        }
    }

    fn build_events(&self, store: &Store) -> Result<Vec<Staged>, String> {
        let ev_def = def("", "events")?;
        let mut out = Vec::new();
        for (i, e) in self.cfg.events.iter().enumerate() {
            let ctx = format!("{}: events[{i}]", self.sim);
            out.push(Staged {
                def: ev_def,
                obj: self.build_event(&ctx, i, e, store)?,
            });
        }
        Ok(out)
    }

    fn build_event(
        &self,
        ctx: &str,
        i: usize,
        e: &EventConfig,
        store: &Store,
    ) -> Result<Value, String> {
        let r = parse_object_ref(&e.object).ok_or_else(|| {
            format!(
                "{ctx}: object {:?} must be <kind>/<name>, e.g. pod/elsa-server-0",
                e.object
            )
        })?;
        let ns = if r.def.namespaced {
            e.namespace
                .clone()
                .unwrap_or_else(|| self.default_ns.clone())
        } else {
            String::new()
        };
        let target = &store.get(r.def, &ns, &r.name).ok_or_else(|| {
            format!("{ctx}: object {} not found in namespace {ns:?} (give generated pods an explicit name)", e.object)
        })?;
        let ty = e.type_.clone().unwrap_or_else(|| "Normal".into());
        if ty != "Normal" && ty != "Warning" {
            return Err(format!("{ctx}: type {ty:?} must be Normal or Warning"));
        }
        let count = e.count.unwrap_or(1).max(1);
        let first = match &e.first_timestamp {
            Some(t) => parse_rfc3339(t)
                .ok_or_else(|| format!("{ctx}: firstTimestamp {t:?} is not an RFC 3339 time"))?,
            None => self.base + 60 + i64::try_from(i).unwrap_or(0),
        };
        let last = match &e.last_timestamp {
            Some(t) => parse_rfc3339(t)
                .ok_or_else(|| format!("{ctx}: lastTimestamp {t:?} is not an RFC 3339 time"))?,
            None => first + 30 * i64::from(count - 1),
        };
        let node = str_of(target, &["spec", "nodeName"]).map(str::to_string);
        let component = e.source.clone().unwrap_or_else(|| {
            match (r.def.kind, e.reason.as_str()) {
                (_, "Scheduled" | "FailedScheduling" | "Preempted") => "default-scheduler",
                ("Deployment", _) => "deployment-controller",
                ("ReplicaSet", _) => "replicaset-controller",
                ("StatefulSet", _) => "statefulset-controller",
                ("Service", _) => "service-controller",
                ("Endpoints" | "EndpointSlice", _) => "endpoint-controller",
                ("PersistentVolumeClaim", _) => "persistentvolume-controller",
                ("Pod", _) => "kubelet",
                _ => "default",
            }
            .to_string()
        });
        let mut field_path = e.field_path.clone().or_else(|| {
            e.container
                .as_ref()
                .map(|c| format!("spec.containers{{{c}}}"))
        });
        if field_path.is_none()
            && r.def.kind == "Pod"
            && component == "kubelet"
            && matches!(
                e.reason.as_str(),
                "BackOff"
                    | "Failed"
                    | "Pulling"
                    | "Pulled"
                    | "Created"
                    | "Started"
                    | "Killing"
                    | "Unhealthy"
                    | "ProbeWarning"
            )
            && let Some(cs) = target.pointer("/spec/containers").and_then(Value::as_array)
            && cs.len() == 1
            && let Some(c) = cs.first().and_then(|c| str_of(c, &["name"]))
        {
            field_path = Some(format!("spec.containers{{{c}}}"));
        }
        let mut involved = json!({
            "kind": r.def.kind,
            "name": r.name,
            "uid": str_of(target, &["metadata", "uid"]).unwrap_or_default(),
            "apiVersion": r.def.api_version(),
            "resourceVersion": str_of(target, &["metadata", "resourceVersion"]).unwrap_or_default(),
        });
        if !ns.is_empty() {
            map_mut(&mut involved).insert("namespace".into(), json!(ns));
        }
        if let Some(f) = &field_path {
            map_mut(&mut involved).insert("fieldPath".into(), json!(f));
        }
        let mut source = json!({"component": component});
        if component == "kubelet"
            && let Some(n) = &node
        {
            map_mut(&mut source).insert("host".into(), json!(n));
        }
        let event_ns = if ns.is_empty() {
            "default".to_string()
        } else {
            ns.clone()
        };
        let name = format!(
            "{}.{}",
            r.name,
            hex_id(&[&event_ns, &r.name, &e.reason, &i.to_string()], 16)
        );
        let mut ev = json!({
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {
                "name": name,
                "namespace": event_ns,
                "uid": uid(&["Event", &event_ns, &name]),
                "creationTimestamp": format_rfc3339(first),
            },
            "involvedObject": involved,
            "reason": e.reason,
            "message": e.message,
            "source": source,
            "firstTimestamp": format_rfc3339(first),
            "lastTimestamp": format_rfc3339(last),
            "count": count,
            "type": ty,
            "eventTime": null,
            "reportingComponent": component,
            "reportingInstance": if component == "kubelet" { node.clone().unwrap_or_default() } else { String::new() },
        });
        if component == "kubelet" && node.is_none() {
            map_mut(&mut ev).insert("reportingInstance".into(), json!(""));
        }
        Ok(ev)
    }
}

fn def(group: &str, plural: &str) -> Result<&'static ResourceDef, String> {
    resources::RESOURCES
        .iter()
        .find(|r| r.group == group && r.plural == plural)
        .ok_or_else(|| format!("internal: resource {plural} missing"))
}

fn pod_is_ready(p: &Value) -> bool {
    p.pointer("/status/conditions")
        .and_then(Value::as_array)
        .is_some_and(|cs| {
            cs.iter().any(|c| {
                str_of(c, &["type"]) == Some("Ready") && str_of(c, &["status"]) == Some("True")
            })
        })
}

fn find_container_port(pod: &Value, port_name: &str) -> Option<Value> {
    pod.pointer("/spec/containers")?
        .as_array()?
        .iter()
        .filter_map(|c| c.get("ports")?.as_array())
        .flatten()
        .find(|p| str_of(p, &["name"]) == Some(port_name))
        .and_then(|p| p.get("containerPort").cloned())
}

fn int_or_percent(v: Option<&Value>, total: u32, round_up: bool, default_pct: u32) -> u32 {
    match v {
        Some(Value::Number(n)) => n.as_u64().and_then(|n| u32::try_from(n).ok()).unwrap_or(0),
        Some(Value::String(s)) => {
            if let Some(p) = s.strip_suffix('%').and_then(|p| p.parse::<u32>().ok()) {
                let x = u64::from(total) * u64::from(p);
                let r = if round_up { x.div_ceil(100) } else { x / 100 };
                u32::try_from(r).unwrap_or(0)
            } else {
                s.parse::<u32>().unwrap_or(0)
            }
        }
        _ => {
            let x = u64::from(total) * u64::from(default_pct);
            u32::try_from(if round_up { x.div_ceil(100) } else { x / 100 }).unwrap_or(0)
        }
    }
}

fn is_rolling(deploy: &Value) -> bool {
    str_of(deploy, &["spec", "strategy", "type"]).unwrap_or("RollingUpdate") == "RollingUpdate"
}

fn max_surge(deploy: &Value, desired: u32) -> u32 {
    if !is_rolling(deploy) {
        return 0;
    }
    int_or_percent(
        deploy.pointer("/spec/strategy/rollingUpdate/maxSurge"),
        desired,
        true,
        25,
    )
}

/// `deploymentutil.MaxUnavailable`.
fn max_unavailable(deploy: &Value, desired: u32) -> u32 {
    if !is_rolling(deploy) || desired == 0 {
        return 0;
    }
    let surge = max_surge(deploy, desired);
    let mut unavailable = int_or_percent(
        deploy.pointer("/spec/strategy/rollingUpdate/maxUnavailable"),
        desired,
        false,
        25,
    );
    if surge == 0 && unavailable == 0 {
        unavailable = 1;
    }
    unavailable.min(desired)
}

pub fn qos_class(spec: &Value) -> &'static str {
    let containers: Vec<&Value> = ["containers", "initContainers"]
        .iter()
        .filter_map(|k| spec.get(*k).and_then(Value::as_array))
        .flatten()
        .collect();
    let mut any = false;
    let mut guaranteed = true;
    for c in &containers {
        let req = c.pointer("/resources/requests").and_then(Value::as_object);
        let lim = c.pointer("/resources/limits").and_then(Value::as_object);
        if req.is_some_and(|m| !m.is_empty()) || lim.is_some_and(|m| !m.is_empty()) {
            any = true;
        }
        for r in ["cpu", "memory"] {
            let l = lim.and_then(|m| m.get(r));
            let q = req.and_then(|m| m.get(r)).or(l);
            if l.is_none() || q != l {
                guaranteed = false;
            }
        }
    }
    if !any {
        "BestEffort"
    } else if guaranteed {
        "Guaranteed"
    } else {
        "Burstable"
    }
}

fn normalize_secret(obj: &mut Value) {
    let string_data = map_mut(obj).remove("stringData");
    if let Some(Value::Object(sd)) = string_data {
        let data = map_mut(child(obj, "data"));
        for (k, v) in sd {
            let s = match v {
                Value::String(s) => s,
                other => other.to_string(),
            };
            data.insert(k, json!(base64_encode(s.as_bytes())));
        }
    }
    set_default(obj, "type", json!("Opaque"));
}

fn normalize_namespace(name: &str, obj: &mut Value) {
    map_mut(child(child(obj, "metadata"), "labels"))
        .insert("kubernetes.io/metadata.name".into(), json!(name));
    set_default(obj, "spec", json!({"finalizers": ["kubernetes"]}));
    map_mut(child(obj, "status")).insert("phase".into(), json!("Active"));
}

fn normalize_container(c: &mut Value) {
    set_default(c, "terminationMessagePath", json!("/dev/termination-log"));
    set_default(c, "terminationMessagePolicy", json!("File"));
    let image = str_of(c, &["image"]).unwrap_or_default().to_string();
    set_default(
        c,
        "imagePullPolicy",
        json!(if image_tag_is_latest(&image) {
            "Always"
        } else {
            "IfNotPresent"
        }),
    );
    set_default(c, "resources", json!({}));
    if let Some(ports) = c.get_mut("ports").and_then(Value::as_array_mut) {
        for p in ports {
            set_default(p, "protocol", json!("TCP"));
        }
    }
    for probe in ["livenessProbe", "readinessProbe", "startupProbe"] {
        if let Some(p) = c.get_mut(probe).filter(|p| p.is_object()) {
            set_default(p, "timeoutSeconds", json!(1));
            set_default(p, "periodSeconds", json!(10));
            set_default(p, "successThreshold", json!(1));
            set_default(p, "failureThreshold", json!(3));
            if let Some(h) = p.get_mut("httpGet").filter(|h| h.is_object()) {
                set_default(h, "scheme", json!("HTTP"));
                set_default(h, "path", json!("/"));
            }
        }
    }
    if let Some(env) = c.get_mut("env").and_then(Value::as_array_mut) {
        for e in env {
            if let Some(fr) = e
                .pointer_mut("/valueFrom/fieldRef")
                .filter(|f| f.is_object())
            {
                set_default(fr, "apiVersion", json!("v1"));
            }
        }
    }
}

pub fn normalize_pod_spec(spec: &mut Value) {
    set_default(spec, "restartPolicy", json!("Always"));
    set_default(spec, "terminationGracePeriodSeconds", json!(30));
    set_default(spec, "dnsPolicy", json!("ClusterFirst"));
    set_default(spec, "securityContext", json!({}));
    set_default(spec, "schedulerName", json!("default-scheduler"));
    for key in ["containers", "initContainers"] {
        if let Some(cs) = spec.get_mut(key).and_then(Value::as_array_mut) {
            for c in cs {
                normalize_container(c);
            }
        }
    }
}

/// What admission adds to a pod: service account, token volume, tolerations.
pub fn add_service_account_volume(spec: &mut Value, pod_name: &str) {
    let sa = str_of(spec, &["serviceAccountName"])
        .or_else(|| str_of(spec, &["serviceAccount"]))
        .unwrap_or("default")
        .to_string();
    map_mut(spec).insert("serviceAccountName".into(), json!(sa));
    map_mut(spec).insert("serviceAccount".into(), json!(sa));
    set_default(spec, "enableServiceLinks", json!(true));
    set_default(spec, "preemptionPolicy", json!("PreemptLowerPriority"));
    set_default(spec, "priority", json!(0));
    set_default(
        spec,
        "tolerations",
        json!([
            {"effect": "NoExecute", "key": "node.kubernetes.io/not-ready", "operator": "Exists", "tolerationSeconds": 300},
            {"effect": "NoExecute", "key": "node.kubernetes.io/unreachable", "operator": "Exists", "tolerationSeconds": 300}
        ]),
    );
    if spec.get("automountServiceAccountToken") == Some(&json!(false)) {
        return;
    }
    let vol_name = format!(
        "kube-api-access-{}",
        name_suffix(&[pod_name, "kube-api-access"], 5)
    );
    let volume = json!({
        "name": vol_name,
        "projected": {"defaultMode": 420, "sources": [
            {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
            {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
            {"downwardAPI": {"items": [{"fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}, "path": "namespace"}]}}
        ]}
    });
    match map_mut(spec).entry("volumes") {
        serde_json::map::Entry::Occupied(mut o) => {
            if let Some(a) = o.get_mut().as_array_mut() {
                a.push(volume);
            }
        }
        serde_json::map::Entry::Vacant(v) => {
            v.insert(json!([volume]));
        }
    }
    for key in ["containers", "initContainers"] {
        if let Some(cs) = spec.get_mut(key).and_then(Value::as_array_mut) {
            for c in cs {
                let mount = json!({"mountPath": "/var/run/secrets/kubernetes.io/serviceaccount", "name": vol_name, "readOnly": true});
                match map_mut(c).entry("volumeMounts") {
                    serde_json::map::Entry::Occupied(mut o) => {
                        if let Some(a) = o.get_mut().as_array_mut() {
                            a.push(mount);
                        }
                    }
                    serde_json::map::Entry::Vacant(v) => {
                        v.insert(json!([mount]));
                    }
                }
            }
        }
    }
}

/// What the API server validates and defaults on a batch/v1 Job (the selector and its labels
/// are the Job controller's, added when its pods are made).
fn normalize_job(name: &str, obj: &mut Value) -> Result<(), String> {
    let qualified = format!("Job.batch {name:?}");
    let has_containers = obj
        .pointer("/spec/template/spec/containers")
        .and_then(Value::as_array)
        .is_some_and(|c| !c.is_empty());
    if !has_containers {
        return Err(format!(
            "{qualified} is invalid: spec.template.spec.containers: Required value"
        ));
    }
    let restart = obj
        .pointer("/spec/template/spec/restartPolicy")
        .and_then(Value::as_str)
        .unwrap_or("Always");
    if !matches!(restart, "Never" | "OnFailure") {
        return Err(format!(
            "{qualified} is invalid: spec.template.spec.restartPolicy: Required value: valid values: \"OnFailure\", \"Never\""
        ));
    }
    normalize_pod_spec(child(child(child(obj, "spec"), "template"), "spec"));
    let spec = child(obj, "spec");
    set_default(spec, "backoffLimit", json!(6));
    set_default(spec, "completions", json!(1));
    set_default(spec, "parallelism", json!(1));
    set_default(spec, "completionMode", json!("NonIndexed"));
    set_default(spec, "suspend", json!(false));
    set_default(spec, "manualSelector", json!(false));
    set_default(spec, "podReplacementPolicy", json!("TerminatingOrFailed"));
    Ok(())
}

/// What the API server validates and defaults on a batch/v1 CronJob.
fn normalize_cron_job(name: &str, obj: &mut Value) -> Result<(), String> {
    if obj
        .pointer("/spec/schedule")
        .and_then(Value::as_str)
        .is_none()
    {
        return Err(format!(
            "CronJob.batch {name:?} is invalid: spec.schedule: Required value"
        ));
    }
    let spec = child(obj, "spec");
    set_default(spec, "concurrencyPolicy", json!("Allow"));
    set_default(spec, "suspend", json!(false));
    set_default(spec, "successfulJobsHistoryLimit", json!(3));
    set_default(spec, "failedJobsHistoryLimit", json!(1));
    normalize_pod_spec(child(
        child(child(child(spec, "jobTemplate"), "spec"), "template"),
        "spec",
    ));
    Ok(())
}

fn normalize_workload(kind: &str, name: &str, obj: &mut Value) -> Result<(), String> {
    let qualified = format!("{kind}.apps {name:?}");
    let selector = obj
        .pointer("/spec/selector")
        .cloned()
        .filter(|s| s.get("matchLabels").is_some() || s.get("matchExpressions").is_some())
        .ok_or_else(|| format!("{qualified} is invalid: spec.selector: Required value"))?;
    let labels = obj
        .pointer("/spec/template/metadata/labels")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    if !label_selector_matches(&selector, &labels) {
        return Err(format!(
            "{qualified} is invalid: spec.template.metadata.labels: Invalid value: {}: `selector` does not match template `labels`",
            Value::Object(labels)
        ));
    }
    let has_containers = obj
        .pointer("/spec/template/spec/containers")
        .and_then(Value::as_array)
        .is_some_and(|c| !c.is_empty());
    if !has_containers {
        return Err(format!(
            "{qualified} is invalid: spec.template.spec.containers: Required value"
        ));
    }
    let spec = child(obj, "spec");
    set_default(spec, "replicas", json!(1));
    set_default(spec, "revisionHistoryLimit", json!(10));
    if kind == "Deployment" {
        set_default(spec, "progressDeadlineSeconds", json!(600));
        let strategy = child(spec, "strategy");
        set_default(strategy, "type", json!("RollingUpdate"));
        if str_of(strategy, &["type"]) == Some("RollingUpdate") {
            let ru = child(strategy, "rollingUpdate");
            set_default(ru, "maxUnavailable", json!("25%"));
            set_default(ru, "maxSurge", json!("25%"));
        }
    } else {
        set_default(spec, "podManagementPolicy", json!("OrderedReady"));
        let strategy = child(spec, "updateStrategy");
        set_default(strategy, "type", json!("RollingUpdate"));
        if str_of(strategy, &["type"]) == Some("RollingUpdate") {
            set_default(child(strategy, "rollingUpdate"), "partition", json!(0));
        }
        set_default(
            spec,
            "persistentVolumeClaimRetentionPolicy",
            json!({"whenDeleted": "Retain", "whenScaled": "Retain"}),
        );
    }
    let template = child(spec, "template");
    set_default(
        child(template, "metadata"),
        "creationTimestamp",
        Value::Null,
    );
    normalize_pod_spec(child(template, "spec"));
    Ok(())
}

fn noise_pod_template(app: &str, hash: &str, i: usize) -> Value {
    json!({
        "metadata": {"labels": {"app": app, "pod-template-hash": hash, "app.kubernetes.io/part-of": "noise"}},
        "spec": {
            "containers": [{
                "name": "app",
                "image": format!("registry.example.com/noise/{app}:1.{}.0", i % 7),
                "ports": [{"name": "http", "containerPort": 8080}],
                "env": [
                    {"name": "APP_NAME", "value": app},
                    {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}
                ],
                "resources": {"requests": {"cpu": "100m", "memory": "256Mi"}, "limits": {"memory": "512Mi"}},
                "readinessProbe": {"httpGet": {"path": "/ready", "port": "http"}}
            }]
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_normalisation() {
        assert_eq!(
            normalize_image("postgres:16"),
            "docker.io/library/postgres:16"
        );
        assert_eq!(
            normalize_image("postgres"),
            "docker.io/library/postgres:latest"
        );
        assert_eq!(
            normalize_image("elsaworkflows/elsa-server-v3-5:latest"),
            "docker.io/elsaworkflows/elsa-server-v3-5:latest"
        );
        assert_eq!(normalize_image("ghcr.io/a/b:1"), "ghcr.io/a/b:1");
        assert_eq!(
            normalize_image("localhost:5000/b"),
            "localhost:5000/b:latest"
        );
        assert_eq!(image_repo("postgres:16"), "docker.io/library/postgres");
        assert!(image_tag_is_latest("nginx"));
        assert!(image_tag_is_latest("nginx:latest"));
        assert!(!image_tag_is_latest("localhost:5000/nginx:1.2"));
    }

    #[test]
    fn max_unavailable_rules() {
        let d = json!({"spec": {"strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}}}});
        assert_eq!(max_unavailable(&d, 2), 0);
        assert_eq!(max_unavailable(&d, 4), 1);
        assert_eq!(max_surge(&d, 2), 1);
        let d = json!({"spec": {"strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 0}}}});
        assert_eq!(max_unavailable(&d, 3), 1);
        let d = json!({"spec": {"strategy": {"type": "Recreate"}}});
        assert_eq!(max_unavailable(&d, 3), 0);
    }

    #[test]
    fn qos() {
        assert_eq!(
            qos_class(&json!({"containers": [{"name": "a"}]})),
            "BestEffort"
        );
        assert_eq!(
            qos_class(
                &json!({"containers": [{"resources": {"limits": {"cpu": "1", "memory": "1Gi"}}}]})
            ),
            "Guaranteed"
        );
        assert_eq!(
            qos_class(&json!({"containers": [{"resources": {"requests": {"cpu": "1"}}}]})),
            "Burstable"
        );
    }

    #[test]
    fn selector_matching() {
        let labels = json!({"app": "x", "tier": "web"});
        let labels = labels.as_object().cloned().unwrap_or_default();
        assert!(label_selector_matches(
            &json!({"matchLabels": {"app": "x"}}),
            &labels
        ));
        assert!(!label_selector_matches(
            &json!({"matchLabels": {"app": "y"}}),
            &labels
        ));
        assert!(label_selector_matches(
            &json!({"matchExpressions": [{"key": "tier", "operator": "In", "values": ["web"]}]}),
            &labels
        ));
        assert!(!label_selector_matches(
            &json!({"matchExpressions": [{"key": "tier", "operator": "DoesNotExist"}]}),
            &labels
        ));
    }
}
