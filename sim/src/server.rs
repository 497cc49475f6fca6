//! The HTTP side of the simulated API server: request parsing into the
//! API server's request attributes (verb, group, resource, subresource,
//! namespace, name), bearer-token authentication, injected faults, RBAC,
//! latency, discovery, get/list (selectors, chunking), a minimal watch,
//! pod logs, `pods/portforward` over WebSocket, self reviews, real `Status`
//! error bodies, and the request log.
//!
//! One axum fallback handler does the routing by hand, the way the real
//! server's `RequestInfoFactory` splits paths, so odd paths get the same
//! answers a real cluster gives instead of a framework's default 404.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::{Mutex, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use super::RecordedRequest;
use super::config::{FaultConfig, ImageConfig};
use super::exec;
use super::fs;
use super::kubelet::{self, KubeletConfig, Processes};
use super::portforward::{self, PodRuntime, PortPlan, Tunnel};
use super::rbac::{Attributes, Rbac};
use super::resources::{self, ResourceDef};
use super::selectors::{FieldSelector, LabelSelector};
use super::shell;
use super::store::{Change, Store, str_of};
use super::util::{base64_decode, base64_encode, parse_query};

/// Shared state of a running server.
pub struct ServerState {
    /// When the server started: request times are measured from here.
    pub epoch: std::time::Instant,
    /// Objects (changed by pod create/delete and the kubelet stand-in).
    pub store: RwLock<Store>,
    /// Every change to the store, for open watches.
    pub changes: tokio::sync::broadcast::Sender<Change>,
    /// Bumped whenever a container's logs grow (for `follow=true`).
    pub log_tick: tokio::sync::watch::Sender<u64>,
    /// `images:` of `sim.yaml`: what `pods/exec` finds in a container.
    pub images: BTreeMap<String, ImageConfig>,
    /// The kubelet stand-in, when enabled: runs created pods.
    pub kubelet: Option<KubeletConfig>,
    /// `createdPods:` of `sim.yaml`: what admission, the scheduler and the kubelet make of
    /// created pods.
    pub created_pods: crate::config::CreatedPodsConfig,
    /// Processes the stand-in runs.
    pub processes: Processes,
    /// Expected bearer token.
    pub token: String,
    /// Authorization.
    pub rbac: Rbac,
    /// Injected faults.
    pub faults: Vec<FaultConfig>,
    /// How often each fault fired.
    pub fault_hits: Mutex<Vec<u32>>,
    /// Added latency.
    pub latency: Duration,
    /// `/version` body.
    pub version: Value,
    /// `host:port` for `/api` discovery.
    pub address: String,
    /// Request log.
    pub log: Mutex<Vec<RecordedRequest>>,
    /// `pods/portforward` targets: (namespace, pod, port) → `host:port`.
    pub port_forwards: Vec<(String, String, u16, String)>,
    /// The simulated Service network and DNS (`clusterNetwork: true`).
    pub network: Option<crate::network::Network>,
    /// Kubernetes 1.35+ (`AuthorizePodWebsocketUpgradeCreatePermission`): a WebSocket
    /// `pods/portforward` (a `GET`, so verb `get`) must also be allowed to `create`.
    pub connect_requires_create: bool,
    /// Set to `true` on shutdown: open port-forward tunnels end.
    pub closing: tokio::sync::watch::Sender<bool>,
    /// Accepted connections, TLS handshakes, protocols.
    pub connections: std::sync::Arc<crate::transport::Connections>,
}

impl ServerState {
    /// Read access to the objects.
    pub fn store(&self) -> RwLockReadGuard<'_, Store> {
        self.store
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Write access to the objects.
    pub fn store_mut(&self) -> RwLockWriteGuard<'_, Store> {
        self.store
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Record a change: it is already in the store; open watches get it now.
    pub fn publish(&self, change: Change) {
        let _ = self.changes.send(change);
    }
}

/// A request split like the API server's `RequestInfo`.
#[derive(Debug, Default, Clone)]
struct Info {
    method: String,
    path: String,
    query: Option<String>,
    params: Vec<(String, String)>,
    is_resource: bool,
    /// `/api` or `/apis` path with too few segments to be a resource.
    discovery: bool,
    verb: String,
    group: String,
    version: String,
    resource: String,
    subresource: Option<String>,
    namespace: Option<String>,
    name: Option<String>,
}

impl Info {
    fn param(&self, key: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    fn parse(method: &Method, path: &str, query: Option<&str>) -> Info {
        let params = query.map(parse_query).unwrap_or_default();
        let mut info = Info {
            method: method.as_str().to_string(),
            path: path.to_string(),
            query: query.map(str::to_string),
            params,
            ..Info::default()
        };
        info.verb = method.as_str().to_ascii_lowercase();
        let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
        let rest: &[&str] = match segs.as_slice() {
            ["api"] | ["apis"] | ["api", _] | ["apis", _] | ["apis", _, _] => {
                info.discovery = true;
                return info;
            }
            ["api", version, rest @ ..] => {
                info.version = (*version).to_string();
                rest
            }
            ["apis", group, version, rest @ ..] => {
                info.group = (*group).to_string();
                info.version = (*version).to_string();
                rest
            }
            _ => return info,
        };
        info.is_resource = true;
        let mut parts: Vec<&str> = rest.to_vec();
        let mut watch_prefix = false;
        if parts.first() == Some(&"watch") {
            watch_prefix = true;
            parts.remove(0);
        }
        if parts.first() == Some(&"namespaces")
            && let Some(ns) = parts.get(1)
        {
            info.namespace = Some((*ns).to_string());
            if parts.len() > 2 && !matches!(parts[2], "status" | "finalize") {
                parts.drain(0..2);
            }
        }
        info.resource = parts.first().map(|s| (*s).to_string()).unwrap_or_default();
        info.name = parts.get(1).map(|s| (*s).to_string());
        info.subresource = parts.get(2).map(|s| (*s).to_string());
        if parts.len() > 3 {
            // Deeper paths are never served; make sure nothing matches.
            info.subresource = Some(parts[2..].join("/"));
        }
        let watch = watch_prefix || matches!(info.param("watch"), Some("true" | "1"));
        info.verb = match *method {
            Method::GET | Method::HEAD => {
                if watch {
                    "watch".into()
                } else if info.name.is_some() {
                    "get".into()
                } else {
                    "list".into()
                }
            }
            Method::POST => "create".into(),
            Method::PUT => "update".into(),
            Method::PATCH => "patch".into(),
            Method::DELETE => {
                if info.name.is_some() {
                    "delete".into()
                } else {
                    "deletecollection".into()
                }
            }
            _ => info.method.to_ascii_lowercase(),
        };
        info
    }
}

// ---------------------------------------------------------------------------
// Responses
// ---------------------------------------------------------------------------

fn json_response(code: StatusCode, v: &Value) -> Response {
    raw_json_response(code, serde_json::to_string(v).unwrap_or_default())
}

fn raw_json_response(code: StatusCode, body: String) -> Response {
    let mut r = (code, body).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("no-cache, private"),
    );
    r
}

/// A `metav1.Status` failure body.
pub fn status_body(code: u16, reason: &str, message: &str, details: Option<Value>) -> Value {
    let mut s = json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
    });
    if let Some(m) = s.as_object_mut() {
        if !reason.is_empty() {
            m.insert("reason".into(), json!(reason));
        }
        if let Some(d) = details {
            m.insert("details".into(), d);
        }
        m.insert("code".into(), json!(code));
    }
    s
}

fn status(code: u16, reason: &str, message: &str, details: Option<Value>) -> Response {
    let sc = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    json_response(sc, &status_body(code, reason, message, details))
}

fn not_found_generic() -> Response {
    status(
        404,
        "NotFound",
        "the server could not find the requested resource",
        Some(json!({})),
    )
}

fn details(def: &ResourceDef, name: Option<&str>) -> Value {
    let mut d = Map::new();
    if let Some(n) = name {
        d.insert("name".into(), json!(n));
    }
    if !def.group.is_empty() {
        d.insert("group".into(), json!(def.group));
    }
    d.insert("kind".into(), json!(def.plural));
    Value::Object(d)
}

fn not_found(def: &ResourceDef, name: &str) -> Response {
    status(
        404,
        "NotFound",
        &format!("{} \"{name}\" not found", def.qualified()),
        Some(details(def, Some(name))),
    )
}

fn bad_request(message: &str) -> Response {
    status(400, "BadRequest", message, None)
}

fn method_not_allowed(verb: &str) -> Response {
    status(
        405,
        "MethodNotAllowed",
        &format!(
            "the server does not allow this method on the requested resource ({verb} is not supported by the elsadoctor simulated API server, which is read-only)"
        ),
        Some(json!({})),
    )
}

fn fault_response(f: &FaultConfig) -> Response {
    let (reason, default_msg, details): (&str, &str, Option<Value>) = match f.status {
        400 => ("BadRequest", "simulated fault", None),
        401 => ("Unauthorized", "Unauthorized", None),
        403 => ("Forbidden", "forbidden: simulated fault", Some(json!({}))),
        404 => (
            "NotFound",
            "the server could not find the requested resource",
            Some(json!({})),
        ),
        409 => (
            "Conflict",
            "Operation cannot be fulfilled: simulated fault",
            Some(json!({})),
        ),
        410 => ("Expired", "too old resource version: simulated fault", None),
        429 => (
            "TooManyRequests",
            "Too many requests, please try again later.",
            Some(json!({"retryAfterSeconds": 1})),
        ),
        500 => (
            "InternalError",
            "Internal error occurred: simulated fault",
            Some(json!({"causes": [{"message": "simulated fault"}]})),
        ),
        503 => (
            "ServiceUnavailable",
            "the server is currently unable to handle the request (simulated fault)",
            None,
        ),
        504 => (
            "Timeout",
            "Timeout: request did not complete within the allotted timeout (simulated fault)",
            Some(json!({"retryAfterSeconds": 1})),
        ),
        _ => ("", "simulated fault", None),
    };
    let msg = f.message.clone().unwrap_or_else(|| default_msg.to_string());
    let mut r = status(f.status, reason, &msg, details);
    if matches!(f.status, 429 | 503 | 504) {
        r.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    }
    r
}

fn forbidden(user: &str, info: &Info, def_qualified: &str) -> Response {
    let resource = match &info.subresource {
        Some(s) => format!("{}/{s}", info.resource),
        None => info.resource.clone(),
    };
    let scope = match info.namespace.as_deref() {
        Some(ns) if !ns.is_empty() => format!("in the namespace \"{ns}\""),
        _ => "at the cluster scope".to_string(),
    };
    let why = format!(
        "User \"{user}\" cannot {} resource \"{resource}\" in API group \"{}\" {scope}",
        info.verb, info.group
    );
    let message = match &info.name {
        Some(n) => format!("{def_qualified} \"{n}\" is forbidden: {why}"),
        None => format!("{def_qualified} is forbidden: {why}"),
    };
    let mut d = Map::new();
    if let Some(n) = &info.name {
        d.insert("name".into(), json!(n));
    }
    if !info.group.is_empty() {
        d.insert("group".into(), json!(info.group));
    }
    d.insert("kind".into(), json!(info.resource));
    status(403, "Forbidden", &message, Some(Value::Object(d)))
}

// ---------------------------------------------------------------------------
// Handler
// ---------------------------------------------------------------------------

/// The single entry point: every request goes through here.
pub async fn handle(State(state): State<std::sync::Arc<ServerState>>, req: Request) -> Response {
    let received = state.epoch.elapsed();
    let (mut parts, body) = req.into_parts();
    let upgrade = parts.extensions.remove::<hyper::upgrade::OnUpgrade>();
    let connection = parts
        .extensions
        .get::<crate::transport::ConnectionId>()
        .map_or(0, |c| c.0);
    let version = format!("{:?}", parts.version);
    state.connections.request(
        connection,
        if parts.version == hyper::Version::HTTP_2 {
            "h2"
        } else {
            "http/1.1"
        },
    );
    let info = Info::parse(&parts.method, parts.uri.path(), parts.uri.query());
    if !state.latency.is_zero() {
        tokio::time::sleep(state.latency).await;
    }
    let body = axum::body::to_bytes(body, 4 * 1024 * 1024)
        .await
        .unwrap_or_default();
    let response = process(&state, &info, &parts.headers, &body, upgrade).await;
    let rec = RecordedRequest {
        method: info.method.clone(),
        path: info.path.clone(),
        query: info.query.clone(),
        verb: info.verb.clone(),
        group: info.group.clone(),
        resource: info.resource.clone(),
        subresource: info.subresource.clone(),
        namespace: info.namespace.clone(),
        name: info.name.clone(),
        status: response.status().as_u16(),
        received_us: micros(received),
        answered_us: micros(state.epoch.elapsed()),
        connection,
        version,
    };
    if let Ok(mut log) = state.log.lock() {
        log.push(rec);
    }
    response
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

fn take_fault(state: &ServerState, info: &Info) -> Option<FaultConfig> {
    let mut hits = state.fault_hits.lock().ok()?;
    for (i, f) in state.faults.iter().enumerate() {
        let eq = |want: &Option<String>, have: &str| want.as_deref().is_none_or(|w| w == have);
        let matches = eq(&f.verb, &info.verb)
            && eq(&f.resource, &info.resource)
            && eq(&f.group, &info.group)
            && eq(&f.subresource, info.subresource.as_deref().unwrap_or(""))
            && eq(&f.namespace, info.namespace.as_deref().unwrap_or(""))
            && eq(&f.name, info.name.as_deref().unwrap_or(""))
            && f.path.as_deref().is_none_or(|p| info.path.starts_with(p));
        if !matches {
            continue;
        }
        let fired = hits.get(i).copied().unwrap_or(0);
        if f.times.is_some_and(|t| fired >= t) {
            continue;
        }
        if let Some(h) = hits.get_mut(i) {
            *h += 1;
        }
        return Some(f.clone());
    }
    None
}

async fn process(
    state: &std::sync::Arc<ServerState>,
    info: &Info,
    headers: &axum::http::HeaderMap,
    body: &Bytes,
    upgrade: Option<hyper::upgrade::OnUpgrade>,
) -> Response {
    // Authentication.
    let auth = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let anonymous = match auth {
        None => true,
        Some(a) => {
            let token = a.strip_prefix("Bearer ").map(str::trim);
            if token != Some(state.token.as_str()) {
                return status(401, "Unauthorized", "Unauthorized", None);
            }
            false
        }
    };
    let user = if anonymous {
        "system:anonymous".to_string()
    } else {
        state.rbac.user.clone()
    };

    // Faults come before authorization.
    if let Some(f) = take_fault(state, info) {
        if f.delay_ms > 0 {
            tokio::time::sleep(Duration::from_millis(f.delay_ms)).await;
        }
        return fault_response(&f);
    }

    if !info.is_resource {
        let verb = info.verb.as_str();
        if !state.rbac.allows_path(verb, &info.path, anonymous) {
            return status(
                403,
                "Forbidden",
                &format!(
                    "forbidden: User \"{user}\" cannot {verb} path \"{}\"",
                    info.path
                ),
                Some(json!({})),
            );
        }
        return non_resource(state, info, headers);
    }

    // Authorization of resource requests.
    let ns_attr = info.namespace.clone().unwrap_or_default();
    let attrs = Attributes {
        verb: &info.verb,
        group: &info.group,
        resource: &info.resource,
        subresource: info.subresource.as_deref(),
        namespace: &ns_attr,
        name: info.name.as_deref(),
    };
    let allowed = if anonymous {
        false
    } else {
        state.rbac.allows(&attrs)
    };
    if !allowed {
        let qualified = if info.group.is_empty() {
            info.resource.clone()
        } else {
            format!("{}.{}", info.resource, info.group)
        };
        return forbidden(&user, info, &qualified);
    }

    if !resources::group_version_served(&info.group, &info.version) {
        return not_found_generic();
    }
    let Some(def) = resources::find(&info.group, &info.version, &info.resource) else {
        return not_found_generic();
    };
    // Cluster-scoped resources are not served under /namespaces/{ns}/,
    // except `namespaces/{name}` itself.
    if !def.namespaced && info.namespace.is_some() && def.plural != "namespaces" {
        return not_found_generic();
    }
    if !def.stored {
        return reviews(state, info, def, body);
    }
    if def.plural == "pods" && info.subresource.as_deref() == Some("portforward") {
        return portforward(state, info, def, headers, anonymous, &user, upgrade);
    }
    if def.plural == "pods" && info.subresource.as_deref() == Some("exec") {
        return exec_request(state, info, def, headers, anonymous, upgrade);
    }
    match info.verb.as_str() {
        "get" => get(state, info, def),
        "create" if def.plural == "pods" && info.name.is_none() => {
            create_pod(state, info, def, body)
        }
        "delete" if def.plural == "pods" && info.subresource.is_none() => {
            delete_pod(state, info, def)
        }
        "deletecollection" if def.plural == "pods" => delete_pods(state, info, def),
        "patch"
            if def.plural == "pods"
                && info.subresource.as_deref() == Some("ephemeralcontainers") =>
        {
            patch_ephemeral(state, info, def, headers, body)
        }
        "list" => list(state, info, def),
        "watch" => watch(state, info, def),
        other => method_not_allowed(other),
    }
}

fn wants_aggregated(headers: &axum::http::HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| {
            a.split(',')
                .next()
                .is_some_and(|first| first.contains("as=APIGroupDiscoveryList"))
        })
}

fn aggregated_response(v: &Value) -> Response {
    let mut r = json_response(StatusCode::OK, v);
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(
            "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList",
        ),
    );
    r
}

fn non_resource(state: &ServerState, info: &Info, headers: &axum::http::HeaderMap) -> Response {
    if info.verb != "get" && info.verb != "head" {
        return status(
            405,
            "MethodNotAllowed",
            "the server does not allow this method on the requested resource",
            Some(json!({})),
        );
    }
    let path = info.path.trim_end_matches('/');
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    match segs.as_slice() {
        ["version"] => json_response(StatusCode::OK, &state.version),
        ["healthz"] | ["livez"] | ["readyz"] => {
            let mut r = (StatusCode::OK, "ok").into_response();
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; charset=utf-8"),
            );
            r
        }
        ["api"] => {
            if wants_aggregated(headers) {
                aggregated_response(&resources::aggregated(true))
            } else {
                json_response(StatusCode::OK, &resources::api_versions(&state.address))
            }
        }
        ["apis"] => {
            if wants_aggregated(headers) {
                aggregated_response(&resources::aggregated(false))
            } else {
                json_response(StatusCode::OK, &resources::api_group_list())
            }
        }
        ["api", "v1"] => json_response(StatusCode::OK, &resources::api_resource_list("", "v1")),
        ["apis", g] => match resources::api_group(g) {
            Some(v) => json_response(StatusCode::OK, &v),
            None => not_found_generic(),
        },
        ["apis", g, v] if resources::group_served(g) && resources::group_version_served(g, v) => {
            json_response(StatusCode::OK, &resources::api_resource_list(g, v))
        }
        _ => not_found_generic(),
    }
}

/// The object as a GET returns it (the store keeps kind/apiVersion).
fn get(state: &std::sync::Arc<ServerState>, info: &Info, def: &ResourceDef) -> Response {
    let name = info.name.clone().unwrap_or_default();
    let ns = if def.namespaced {
        info.namespace.clone().unwrap_or_default()
    } else {
        String::new()
    };
    if def.namespaced && info.namespace.is_none() {
        // `/api/v1/pods/x` is not a valid path.
        return not_found_generic();
    }
    let store = state.store();
    let Some(entry) = store.entry(def, &ns, &name) else {
        return not_found(def, &name);
    };
    match info.subresource.as_deref() {
        None | Some("status") => raw_json_response(StatusCode::OK, entry.full_json(def)),
        Some("ephemeralcontainers") if def.plural == "pods" => {
            raw_json_response(StatusCode::OK, entry.full_json(def))
        }
        Some("log") if def.plural == "pods" => {
            let pod = entry.value(def);
            drop(store);
            pod_log(state, info, &pod)
        }
        Some("scale") if def.subresources.iter().any(|(s, ..)| *s == "scale") => {
            let obj = &entry.value(def);
            let replicas = obj.pointer("/spec/replicas").cloned().unwrap_or(json!(1));
            let status_replicas = obj.pointer("/status/replicas").cloned().unwrap_or(json!(0));
            let selector = obj
                .pointer("/spec/selector/matchLabels")
                .and_then(Value::as_object)
                .map(|m| {
                    m.iter()
                        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
                        .collect::<Vec<_>>()
                        .join(",")
                })
                .unwrap_or_default();
            let meta = obj.get("metadata").cloned().unwrap_or(json!({}));
            let mut m = Map::new();
            for k in [
                "name",
                "namespace",
                "uid",
                "resourceVersion",
                "creationTimestamp",
            ] {
                if let Some(v) = meta.get(k) {
                    m.insert(k.into(), v.clone());
                }
            }
            json_response(
                StatusCode::OK,
                &json!({
                    "kind": "Scale", "apiVersion": "autoscaling/v1", "metadata": m,
                    "spec": {"replicas": replicas},
                    "status": {"replicas": status_replicas, "selector": selector}
                }),
            )
        }
        Some(_) => not_found_generic(),
    }
}

fn pod_log(state: &std::sync::Arc<ServerState>, info: &Info, pod: &Value) -> Response {
    let pod_name = str_of(pod, &["metadata", "name"]).unwrap_or_default();
    let ns = str_of(pod, &["metadata", "namespace"]).unwrap_or_default();
    let regular: Vec<String> = pod_containers(pod, false)
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    let containers: Vec<String> = pod_containers(pod, true)
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    let container = match info.param("container").filter(|c| !c.is_empty()) {
        Some(c) => c.to_string(),
        None if regular.len() == 1 => regular[0].clone(),
        None => {
            return bad_request(&format!(
                "a container name must be specified for pod {pod_name}, choose one of: [{}]",
                containers.join(" ")
            ));
        }
    };
    if !containers.contains(&container) {
        return bad_request(&format!(
            "container {container} is not valid for pod {pod_name}"
        ));
    }
    let cs = ["containerStatuses", "ephemeralContainerStatuses"]
        .iter()
        .filter_map(|k| {
            pod.pointer(&format!("/status/{k}"))
                .and_then(Value::as_array)
        })
        .flatten()
        .find(|c| str_of(c, &["name"]) == Some(container.as_str()));
    let previous = matches!(info.param("previous"), Some("true" | "1"));
    let follow = matches!(info.param("follow"), Some("true" | "1"));
    if follow && !previous && cs.is_some_and(|c| c.pointer("/state/running").is_some()) {
        return follow_log(state, ns, pod_name, &container);
    }
    let text: String = if previous {
        let has_last = cs.is_some_and(|c| c.pointer("/lastState/terminated").is_some());
        match state.store().log(ns, pod_name, &container, true) {
            Some(t) => t.to_string(),
            None if has_last => String::new(),
            None => {
                return bad_request(&format!(
                    "previous terminated container \"{container}\" in pod \"{pod_name}\" not found"
                ));
            }
        }
    } else {
        let waiting = cs.and_then(|c| c.pointer("/state/waiting"));
        let has_last = cs.is_some_and(|c| c.pointer("/lastState/terminated").is_some());
        let store = state.store();
        match (store.log(ns, pod_name, &container, false), waiting) {
            (Some(t), _) => t.to_string(),
            (None, Some(_)) if has_last => store
                .log(ns, pod_name, &container, true)
                .unwrap_or_default()
                .to_string(),
            (None, Some(w)) => {
                let reason = str_of(w, &["reason"]).unwrap_or("ContainerCreating");
                let why = match reason {
                    "ImagePullBackOff" | "ErrImagePull" => "trying and failing to pull image",
                    other => other,
                };
                return bad_request(&format!(
                    "container \"{container}\" in pod \"{pod_name}\" is waiting to start: {why}"
                ));
            }
            (None, None) if cs.is_none() => {
                return bad_request(&format!(
                    "container \"{container}\" in pod \"{pod_name}\" is waiting to start: ContainerCreating"
                ));
            }
            (None, None) => String::new(),
        }
    };
    let mut lines: Vec<&str> = text.lines().collect();
    if let Some(n) = info
        .param("tailLines")
        .and_then(|n| n.parse::<usize>().ok())
    {
        let skip = lines.len().saturating_sub(n);
        lines.drain(0..skip);
    }
    let timestamps = matches!(info.param("timestamps"), Some("true" | "1"));
    let mut out = String::new();
    for l in lines {
        if timestamps {
            out.push_str("2025-06-02T08:00:15.000000000Z ");
        }
        out.push_str(l);
        out.push('\n');
    }
    if let Some(n) = info
        .param("limitBytes")
        .and_then(|n| n.parse::<usize>().ok())
    {
        let mut cut = n.min(out.len());
        while cut > 0 && !out.is_char_boundary(cut) {
            cut -= 1;
        }
        out.truncate(cut);
    }
    let mut r = (StatusCode::OK, out).into_response();
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    r
}

/// `pods/log?follow=true` of a running container: what is there, then what is appended, until
/// the container stops running (or the pod goes away, or the server stops).
fn follow_log(
    state: &std::sync::Arc<ServerState>,
    ns: &str,
    pod: &str,
    container: &str,
) -> Response {
    let (ns, pod, container) = (ns.to_string(), pod.to_string(), container.to_string());
    let tick = state.log_tick.subscribe();
    let closing = state.closing.subscribe();
    let st = state.clone();
    let stream = futures::stream::unfold(
        (st, tick, closing, 0usize, false),
        move |(st, mut tick, mut closing, offset, done)| {
            let (ns, pod, container) = (ns.clone(), pod.clone(), container.clone());
            async move {
                if done {
                    return None;
                }
                loop {
                    tick.borrow_and_update();
                    let (text, running) = {
                        let store = st.store();
                        let text = store
                            .log(&ns, &pod, &container, false)
                            .unwrap_or_default()
                            .to_string();
                        let running = resources::find("", "v1", "pods")
                            .and_then(|def| store.get(def, &ns, &pod))
                            .is_some_and(|p| {
                                ["containerStatuses", "ephemeralContainerStatuses"]
                                    .iter()
                                    .filter_map(|k| {
                                        p.pointer(&format!("/status/{k}"))
                                            .and_then(Value::as_array)
                                            .cloned()
                                    })
                                    .flatten()
                                    .any(|c| {
                                        str_of(&c, &["name"]) == Some(container.as_str())
                                            && c.pointer("/state/running").is_some()
                                    })
                            });
                        (text, running)
                    };
                    if text.len() > offset {
                        let chunk = Bytes::from(text[offset..].to_string());
                        let next = text.len();
                        return Some((
                            Ok::<Bytes, Infallible>(chunk),
                            (st, tick, closing, next, !running),
                        ));
                    }
                    if !running {
                        return None;
                    }
                    tokio::select! {
                        r = tick.changed() => if r.is_err() { return None; },
                        _ = closing.wait_for(|c| *c) => return None,
                    }
                }
            }
        },
    );
    let mut r = Response::new(Body::from_stream(stream));
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    r
}

/// A kubelet's own answer, relayed as is by the API server's upgrade proxy: plain text, not a
/// `Status` (kube-rs turns it into an `Error::Api` with this text as the message).
fn kubelet_text(code: StatusCode, text: &str) -> Response {
    let mut r = (code, text.to_string()).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

fn header_str(headers: &axum::http::HeaderMap, name: header::HeaderName) -> &str {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
}

/// Whether the pod has a ready sandbox (the kubelet's runtime lists it), and whether its
/// containers run. Pending pods whose containers wait after the sandbox came up (image pull
/// failures, config errors) have one; pods still being created or already finished do not.
fn sandbox_state(pod: &Value) -> Option<bool> {
    match str_of(pod, &["status", "phase"]).unwrap_or("Pending") {
        "Running" => Some(true),
        "Pending" => {
            let statuses = ["containerStatuses", "initContainerStatuses"]
                .iter()
                .filter_map(|k| {
                    pod.pointer(&format!("/status/{k}"))
                        .and_then(Value::as_array)
                })
                .flatten();
            let mut sandbox = false;
            for cs in statuses {
                if cs.pointer("/state/running").is_some()
                    || cs.pointer("/state/terminated").is_some()
                {
                    sandbox = true;
                }
                if let Some(reason) = cs.pointer("/state/waiting/reason").and_then(Value::as_str)
                    && reason != "ContainerCreating"
                {
                    sandbox = true;
                }
            }
            sandbox.then_some(false)
        }
        _ => None,
    }
}

/// `pods/portforward`: the API server's checks, then the kubelet's, then the upgrade.
fn portforward(
    state: &ServerState,
    info: &Info,
    def: &ResourceDef,
    headers: &axum::http::HeaderMap,
    anonymous: bool,
    user: &str,
    upgrade: Option<hyper::upgrade::OnUpgrade>,
) -> Response {
    // Connect resources take GET (WebSocket) and POST (SPDY) only.
    if !matches!(info.method.as_str(), "GET" | "POST") {
        return status(
            405,
            "MethodNotAllowed",
            "the server does not allow this method on the requested resource",
            Some(json!({})),
        );
    }
    let (Some(ns), Some(name)) = (info.namespace.as_deref(), info.name.as_deref()) else {
        return not_found_generic();
    };
    // The API server decodes PodPortForwardOptions from the query.
    let ports = match portforward::parse_ports(
        info.params
            .iter()
            .filter(|(k, _)| k == "ports")
            .map(|(_, v)| v.as_str()),
    ) {
        Ok(p) => p,
        Err(e) => return bad_request(&e),
    };
    // 1.35+: the connect handler also authorizes `create` (a WebSocket upgrade is a GET).
    // Its Forbidden carries the authorizer's reason, which RBAC leaves empty.
    if state.connect_requires_create && info.verb != "create" {
        let allowed = !anonymous
            && state.rbac.allows(&Attributes {
                verb: "create",
                group: &info.group,
                resource: &info.resource,
                subresource: info.subresource.as_deref(),
                namespace: ns,
                name: Some(name),
            });
        if !allowed {
            tracing::debug!("portforward: {user} may not create pods/portforward in {ns}");
            return status(
                403,
                "Forbidden",
                &format!("pods \"{name}\" is forbidden: "),
                Some(json!({"name": name, "kind": "pods"})),
            );
        }
    }
    let Some(pod) = state.store().get(def, ns, name) else {
        return not_found(def, name);
    };
    if str_of(&pod, &["spec", "nodeName"]).is_none_or(str::is_empty) {
        return bad_request(&format!("pod {name} does not have a host assigned"));
    }
    // The API server's upgrade-aware proxy wants an upgrade request.
    let connection = header_str(headers, header::CONNECTION).to_ascii_lowercase();
    if !connection.contains("upgrade") {
        return bad_request("Upgrade request required");
    }
    // From here on the kubelet answers.
    let websocket = header_str(headers, header::UPGRADE).eq_ignore_ascii_case("websocket")
        && connection.split(',').any(|t| t.trim() == "upgrade");
    if !websocket {
        return kubelet_text(
            StatusCode::BAD_REQUEST,
            "unable to upgrade: the simulated API server serves pods/portforward over WebSocket only (v4.channel.k8s.io); SPDY is not simulated",
        );
    }
    if ports.is_empty() {
        return kubelet_text(
            StatusCode::BAD_REQUEST,
            "query parameter \"port\" is required",
        );
    }
    if ports.contains(&0) {
        return kubelet_text(StatusCode::BAD_REQUEST, "port \"0\" must be > 0");
    }
    if ports.len() > portforward::MAX_PORTS {
        return kubelet_text(
            StatusCode::BAD_REQUEST,
            &format!(
                "the simulated kubelet forwards at most {} ports per connection",
                portforward::MAX_PORTS
            ),
        );
    }
    let Some(running) = sandbox_state(&pod) else {
        return kubelet_text(
            StatusCode::INTERNAL_SERVER_ERROR,
            &format!("pod not found (\"{name}_{ns}\")"),
        );
    };
    // The runtime's streaming server: golang.org/x/net/websocket's handshake.
    if info.method != "GET" {
        return kubelet_text(StatusCode::METHOD_NOT_ALLOWED, "bad method");
    }
    let key = header_str(headers, header::SEC_WEBSOCKET_KEY);
    if key.is_empty() {
        return kubelet_text(StatusCode::BAD_REQUEST, "mismatch challenge/response");
    }
    if header_str(headers, header::SEC_WEBSOCKET_VERSION) != "13" {
        let mut r = kubelet_text(StatusCode::BAD_REQUEST, "missing or bad WebSocket Version");
        r.headers_mut().insert(
            header::SEC_WEBSOCKET_VERSION,
            HeaderValue::from_static("13"),
        );
        return r;
    }
    let offered = headers
        .get(header::SEC_WEBSOCKET_PROTOCOL)
        .and_then(|v| v.to_str().ok());
    let Some((protocol, codec)) = portforward::negotiate(offered) else {
        return kubelet_text(StatusCode::FORBIDDEN, "");
    };
    let Some(on_upgrade) = upgrade else {
        return kubelet_text(StatusCode::BAD_REQUEST, "not websocket protocol");
    };
    let plans = ports
        .iter()
        .map(|&port| PortPlan {
            port,
            target: if running {
                state
                    .port_forwards
                    .iter()
                    .find(|(n, p, pp, _)| n == ns && p == name && *pp == port)
                    .map(|(.., to)| to.clone())
            } else {
                None
            },
        })
        .collect();
    let uid = str_of(&pod, &["metadata", "uid"]).unwrap_or_default();
    let host_network = pod
        .pointer("/spec/hostNetwork")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    portforward::spawn(
        on_upgrade,
        Tunnel {
            codec,
            ports: plans,
            runtime: PodRuntime::for_pod(ns, name, uid, host_network),
            closing: state.closing.subscribe(),
        },
    );
    let accept = tokio_tungstenite::tungstenite::handshake::derive_accept_key(key.as_bytes());
    let mut r = Response::new(Body::empty());
    *r.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = r.headers_mut();
    h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    h.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    if let Ok(v) = HeaderValue::from_str(&accept) {
        h.insert(header::SEC_WEBSOCKET_ACCEPT, v);
    }
    if !protocol.is_empty() {
        h.insert(
            header::SEC_WEBSOCKET_PROTOCOL,
            HeaderValue::from_static(protocol),
        );
    }
    r
}

/// Names of a pod's containers (`spec.containers`, then `spec.ephemeralContainers`), with
/// their images.
fn pod_containers(pod: &Value, ephemeral: bool) -> Vec<(String, String)> {
    let keys: &[&str] = if ephemeral {
        &["containers", "ephemeralContainers"]
    } else {
        &["containers"]
    };
    keys.iter()
        .filter_map(|k| pod.pointer(&format!("/spec/{k}")).and_then(Value::as_array))
        .flatten()
        .filter_map(|c| {
            Some((
                str_of(c, &["name"])?.to_string(),
                str_of(c, &["image"]).unwrap_or_default().to_string(),
            ))
        })
        .collect()
}

/// The `101 Switching Protocols` answer to a WebSocket upgrade.
fn switching_protocols(key: &str, protocol: &'static str) -> Response {
    let accept = tokio_tungstenite::tungstenite::handshake::derive_accept_key(key.as_bytes());
    let mut r = Response::new(Body::empty());
    *r.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = r.headers_mut();
    h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    h.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    if let Ok(v) = HeaderValue::from_str(&accept) {
        h.insert(header::SEC_WEBSOCKET_ACCEPT, v);
    }
    if !protocol.is_empty() {
        h.insert(
            header::SEC_WEBSOCKET_PROTOCOL,
            HeaderValue::from_static(protocol),
        );
    }
    r
}

/// `pods/exec`: the API server's checks (options, RBAC `create` from 1.35, pod, container,
/// phase), the upgrade, then the container's answer from its simulated filesystem.
fn exec_request(
    state: &ServerState,
    info: &Info,
    def: &ResourceDef,
    headers: &axum::http::HeaderMap,
    anonymous: bool,
    upgrade: Option<hyper::upgrade::OnUpgrade>,
) -> Response {
    if !matches!(info.method.as_str(), "GET" | "POST") {
        return status(
            405,
            "MethodNotAllowed",
            "the server does not allow this method on the requested resource",
            Some(json!({})),
        );
    }
    let (Some(ns), Some(name)) = (info.namespace.as_deref(), info.name.as_deref()) else {
        return not_found_generic();
    };
    let argv: Vec<String> = info
        .params
        .iter()
        .filter(|(k, _)| k == "command")
        .map(|(_, v)| v.clone())
        .collect();
    let flag = |k: &str| matches!(info.param(k), Some("true" | "1"));
    let (stdin, stdout, stderr) = (flag("stdin"), flag("stdout"), flag("stderr"));
    if state.connect_requires_create && info.verb != "create" {
        let allowed = !anonymous
            && state.rbac.allows(&Attributes {
                verb: "create",
                group: &info.group,
                resource: &info.resource,
                subresource: info.subresource.as_deref(),
                namespace: ns,
                name: Some(name),
            });
        if !allowed {
            return status(
                403,
                "Forbidden",
                &format!("pods \"{name}\" is forbidden: "),
                Some(json!({"name": name, "kind": "pods"})),
            );
        }
    }
    if argv.is_empty() {
        return bad_request("you must specify at least 1 command");
    }
    if !stdin && !stdout && !stderr {
        return bad_request("you must specify at least one of stdin, stdout, stderr");
    }
    let Some(pod) = state.store().get(def, ns, name) else {
        return not_found(def, name);
    };
    let containers = pod_containers(&pod, true);
    let container = match info.param("container").filter(|c| !c.is_empty()) {
        Some(c) => c.to_string(),
        None => match pod_containers(&pod, false).as_slice() {
            [(only, _)] => only.clone(),
            all => {
                let names: Vec<&str> = all.iter().map(|(n, _)| n.as_str()).collect();
                return bad_request(&format!(
                    "a container name must be specified for pod {name}, choose one of: [{}]",
                    names.join(" ")
                ));
            }
        },
    };
    let Some(image) = containers
        .iter()
        .find(|(n, _)| *n == container)
        .map(|(_, i)| i.clone())
    else {
        return bad_request(&format!(
            "container {container} is not valid for pod {name}"
        ));
    };
    let phase = str_of(&pod, &["status", "phase"]).unwrap_or("Pending");
    if matches!(phase, "Succeeded" | "Failed") {
        return bad_request(&format!(
            "cannot exec into a container in a completed pod; current phase is {phase}"
        ));
    }
    if str_of(&pod, &["spec", "nodeName"]).is_none_or(str::is_empty) {
        return bad_request(&format!("pod {name} does not have a host assigned"));
    }
    let connection = header_str(headers, header::CONNECTION).to_ascii_lowercase();
    if !connection.contains("upgrade") {
        return bad_request("Upgrade request required");
    }
    if !header_str(headers, header::UPGRADE).eq_ignore_ascii_case("websocket") {
        return bad_request(
            "unable to upgrade connection: the simulated API server serves pods/exec over WebSocket only (v5.channel.k8s.io, v4.channel.k8s.io); SPDY is not simulated",
        );
    }
    let offered = headers
        .get(header::SEC_WEBSOCKET_PROTOCOL)
        .and_then(|v| v.to_str().ok());
    let protocol = match exec::negotiate(offered) {
        Ok(p) => p,
        Err(offered) => {
            return bad_request(&format!(
                "unable to upgrade connection: requested protocol(s) are not supported: [{}]; supports [{} {}]",
                offered.join(" "),
                exec::V5,
                exec::V4
            ));
        }
    };
    // The kubelet: the container must be running.
    let running = ["containerStatuses", "ephemeralContainerStatuses"]
        .iter()
        .filter_map(|k| {
            pod.pointer(&format!("/status/{k}"))
                .and_then(Value::as_array)
        })
        .flatten()
        .find(|cs| str_of(cs, &["name"]) == Some(container.as_str()))
        .is_some_and(|cs| cs.pointer("/state/running").is_some());
    if !running {
        return kubelet_text(
            StatusCode::NOT_FOUND,
            &format!("unable to upgrade connection: container not found (\"{container}\")"),
        );
    }
    let key = header_str(headers, header::SEC_WEBSOCKET_KEY).to_string();
    if key.is_empty() || header_str(headers, header::SEC_WEBSOCKET_VERSION) != "13" {
        return bad_request(
            "websocket: not a websocket handshake: bad Sec-WebSocket-Key or version",
        );
    }
    let Some(on_upgrade) = upgrade else {
        return bad_request("Upgrade request required");
    };
    let first = pod_containers(&pod, false)
        .first()
        .is_some_and(|(n, _)| *n == container);
    let (files, shell_override) = match state.store().pod_files(ns, name) {
        Some((files, shell)) if first => (files.clone(), *shell),
        _ => (Vec::new(), None),
    };
    let cfs = fs::container_fs(&state.images, &image, &files, shell_override);
    let outcome = shell::exec(&argv, &cfs.fs, cfs.shell);
    let container_id = super::util::hex_id(&["exec", ns, name, &container, &argv.join(" ")], 64);
    let status_v = exec::status_json(&outcome.exit, &argv, &container_id);
    exec::spawn(
        on_upgrade,
        exec::Session {
            protocol,
            outcome,
            status: status_v,
            stdout,
            stderr,
            closing: state.closing.subscribe(),
        },
    );
    switching_protocols(&key, protocol)
}

/// A `422 Invalid` Status: `Pod "x" is invalid: field: message` for each cause.
fn invalid(name: &str, causes: &[(String, &str, String)]) -> Response {
    let parts: Vec<String> = causes
        .iter()
        .map(|(field, _, message)| format!("{field}: {message}"))
        .collect();
    let what = if parts.len() == 1 {
        parts[0].clone()
    } else {
        format!("[{}]", parts.join(", "))
    };
    let causes_v: Vec<Value> = causes
        .iter()
        .map(|(field, reason, message)| {
            json!({"reason": reason, "message": message, "field": field})
        })
        .collect();
    status(
        422,
        "Invalid",
        &format!("Pod \"{name}\" is invalid: {what}"),
        Some(json!({"name": name, "kind": "Pod", "causes": causes_v})),
    )
}

fn now_rfc3339() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(0))
        .unwrap_or(0);
    super::util::format_rfc3339(secs)
}

/// Required-field causes of a list of containers (`spec.containers` or
/// `spec.ephemeralContainers`), starting at index `from`.
fn container_causes(list: &[Value], key: &str, from: usize) -> Vec<(String, &'static str, String)> {
    let mut causes = Vec::new();
    for (i, c) in list.iter().enumerate().skip(from) {
        for field in ["name", "image"] {
            if str_of(c, &[field]).is_none_or(str::is_empty) {
                causes.push((
                    format!("spec.{key}[{i}].{field}"),
                    "FieldValueRequired",
                    "Required value".to_string(),
                ));
            }
        }
    }
    causes
}

/// `POST pods`: the API server's minimum validation and defaults, then the stand-in kubelet.
fn create_pod(
    state: &std::sync::Arc<ServerState>,
    info: &Info,
    def: &'static ResourceDef,
    body: &Bytes,
) -> Response {
    let Some(ns) = info.namespace.clone() else {
        return method_not_allowed("create");
    };
    let mut pod: Value = match serde_json::from_slice(body) {
        Ok(v @ Value::Object(_)) => v,
        Ok(_) => return bad_request("the object provided is unrecognized (must be of type Pod)"),
        Err(e) => {
            return bad_request(&format!(
                "the object provided is unrecognized (must be of type Pod): couldn't get version/kind; json parse error: {e}"
            ));
        }
    };
    if let Some(k) = pod.get("kind").and_then(Value::as_str)
        && k != "Pod"
    {
        return bad_request(&format!(
            "the object provided is unrecognized (must be of type Pod): kind {k:?}"
        ));
    }
    let meta = super::store::child(&mut pod, "metadata");
    if let Some(n) = str_of(meta, &["namespace"])
        && !n.is_empty()
        && n != ns
    {
        return bad_request(
            "the namespace of the provided object does not match the namespace sent on the request",
        );
    }
    let given = str_of(meta, &["name"]).unwrap_or_default().to_string();
    let generate = str_of(meta, &["generateName"])
        .unwrap_or_default()
        .to_string();
    let containers: Vec<Value> = pod
        .pointer("/spec/containers")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let mut causes = Vec::new();
    if given.is_empty() && generate.is_empty() {
        causes.push((
            "metadata.name".to_string(),
            "FieldValueRequired",
            "Required value: name or generateName is required".to_string(),
        ));
    }
    if containers.is_empty() {
        causes.push((
            "spec.containers".to_string(),
            "FieldValueRequired",
            "Required value".to_string(),
        ));
    }
    causes.extend(container_causes(&containers, "containers", 0));
    if !causes.is_empty() {
        return invalid(&given, &causes);
    }
    let mut store = state.store_mut();
    let name = if given.is_empty() {
        let seed = store.resource_version().to_string();
        format!(
            "{generate}{}",
            super::util::name_suffix(&[&ns, &generate, &seed], 5)
        )
    } else {
        given
    };
    // Validating admission (PodSecurity, quotas, webhooks) runs before the object is stored.
    if let Some(r) = &state.created_pods.refuse {
        return admission_refusal(&name, r);
    }
    if store.entry(def, &ns, &name).is_some() {
        return status(
            409,
            "AlreadyExists",
            &format!("pods \"{name}\" already exists"),
            Some(json!({"name": name, "kind": "pods"})),
        );
    }
    let created = now_rfc3339();
    let m = super::store::map_mut(super::store::child(&mut pod, "metadata"));
    for k in [
        "resourceVersion",
        "managedFields",
        "deletionTimestamp",
        "selfLink",
    ] {
        m.remove(k);
    }
    m.insert("name".into(), json!(name));
    m.insert("namespace".into(), json!(ns));
    m.insert(
        "uid".into(),
        json!(super::util::uid(&[
            "Pod",
            &ns,
            &name,
            &created,
            &store.resource_version().to_string()
        ])),
    );
    m.insert("creationTimestamp".into(), json!(created));
    let spec = super::store::child(&mut pod, "spec");
    super::store::normalize_pod_spec(spec);
    super::store::add_service_account_volume(spec, &name);
    // Without a scheduler's verdict the pod stays unbound, with only the API server's status.
    let unbound = state.created_pods.unschedulable.is_some() || state.created_pods.no_scheduler;
    if !unbound && str_of(spec, &["nodeName"]).is_none_or(str::is_empty) {
        super::store::map_mut(spec).insert("nodeName".into(), json!("node-1"));
    }
    let qos = super::store::qos_class(spec);
    let statuses: Vec<Value> = containers.iter().map(kubelet::creating_status).collect();
    let pod_ip = format!(
        "10.244.1.{}",
        2 + super::util::hash_parts(&[&ns, &name]) % 250
    );
    let status = if unbound && str_of(spec, &["nodeName"]).is_none_or(str::is_empty) {
        json!({"phase": "Pending", "qosClass": qos})
    } else {
        json!({
            "phase": "Pending",
            "conditions": [
                {"type": "PodScheduled", "status": "True", "lastProbeTime": null, "lastTransitionTime": created},
                {"type": "Initialized", "status": "True", "lastProbeTime": null, "lastTransitionTime": created},
                {"type": "Ready", "status": "False", "lastProbeTime": null, "lastTransitionTime": created, "reason": "ContainersNotReady"},
                {"type": "ContainersReady", "status": "False", "lastProbeTime": null, "lastTransitionTime": created, "reason": "ContainersNotReady"}
            ],
            "hostIP": "10.0.0.11",
            "hostIPs": [{"ip": "10.0.0.11"}],
            "podIP": pod_ip,
            "podIPs": [{"ip": pod_ip}],
            "startTime": created,
            "qosClass": qos,
            "containerStatuses": statuses
        })
    };
    super::store::map_mut(&mut pod).insert("status".into(), status);
    let change = store.upsert(def, pod);
    let body = store
        .entry(def, &ns, &name)
        .map(|e| e.full_json(def))
        .unwrap_or_default();
    let stored = store.get(def, &ns, &name);
    drop(store);
    state.publish(change);
    if let Some(p) = stored
        && !kubelet::hold_pod(state, &p)
        && let Some(cfg) = &state.kubelet
    {
        kubelet::start_pod(state, cfg, &p);
    }
    raw_json_response(StatusCode::CREATED, body)
}

/// A validating admission plugin's refusal of pod `name`, as the API server words it.
fn admission_refusal(name: &str, r: &crate::config::RefuseConfig) -> Response {
    if r.code == 422 {
        let field = r.field.clone().unwrap_or_else(|| "spec".to_owned());
        return invalid(name, &[(field, "FieldValueInvalid", r.message.clone())]);
    }
    status(
        r.code,
        "Forbidden",
        &format!("pods \"{name}\" is forbidden: {}", r.message),
        Some(json!({"name": name, "kind": "pods"})),
    )
}

/// Remove a pod, kill what the stand-in runs for it; the deleted object (with its
/// `deletionTimestamp`) as JSON.
fn remove_pod(
    state: &ServerState,
    def: &'static ResourceDef,
    ns: &str,
    name: &str,
) -> Option<Value> {
    let change = {
        let mut store = state.store_mut();
        let change = store.remove(def, ns, name)?;
        store.forget_pod(ns, name);
        change
    };
    state.processes.kill_pod(ns, name);
    let mut obj: Value = serde_json::from_str(&change.object).unwrap_or_default();
    let m = super::store::map_mut(super::store::child(&mut obj, "metadata"));
    m.insert("deletionTimestamp".into(), json!(now_rfc3339()));
    m.insert("deletionGracePeriodSeconds".into(), json!(0));
    state.publish(change);
    state.log_tick.send_modify(|t| *t += 1);
    Some(obj)
}

fn delete_pod(state: &ServerState, info: &Info, def: &'static ResourceDef) -> Response {
    let (Some(ns), Some(name)) = (info.namespace.as_deref(), info.name.as_deref()) else {
        return not_found_generic();
    };
    match remove_pod(state, def, ns, name) {
        Some(obj) => json_response(StatusCode::OK, &obj),
        None => not_found(def, name),
    }
}

fn delete_pods(state: &ServerState, info: &Info, def: &'static ResourceDef) -> Response {
    let f = match filters(info, def) {
        Ok(f) => f,
        Err(r) => return *r,
    };
    let ns = info.namespace.clone();
    let names: Vec<(String, String)> = state
        .store()
        .list(def, ns.as_deref())
        .filter(|(_, e)| {
            f.labels.matches_labels(e.labels()) && f.fields.matches_with(|n| e.field(n))
        })
        .map(|(k, _)| k.clone())
        .collect();
    let items: Vec<Value> = names
        .iter()
        .filter_map(|(n, p)| remove_pod(state, def, n, p))
        .collect();
    let rv = state.store().resource_version().to_string();
    json_response(
        StatusCode::OK,
        &json!({"kind": "PodList", "apiVersion": "v1", "metadata": {"resourceVersion": rv}, "items": items}),
    )
}

/// `PATCH pods/{name}/ephemeralcontainers` (strategic merge or JSON merge patch): add
/// ephemeral containers; existing ones can be neither changed nor removed.
fn patch_ephemeral(
    state: &std::sync::Arc<ServerState>,
    info: &Info,
    def: &'static ResourceDef,
    headers: &axum::http::HeaderMap,
    body: &Bytes,
) -> Response {
    let (Some(ns), Some(name)) = (info.namespace.clone(), info.name.clone()) else {
        return not_found_generic();
    };
    let content_type = header_str(headers, header::CONTENT_TYPE).to_ascii_lowercase();
    let strategic = content_type.starts_with("application/strategic-merge-patch+json");
    let merge = content_type.starts_with("application/merge-patch+json");
    if !strategic && !merge {
        return status(
            415,
            "UnsupportedMediaType",
            &format!(
                "the body of the request was in an unknown format - accepted media types include: application/merge-patch+json, application/strategic-merge-patch+json (the simulated API server does not apply {content_type})"
            ),
            None,
        );
    }
    let patch: Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(e) => return bad_request(&format!("error decoding patch: {e}")),
    };
    let mut store = state.store_mut();
    let Some(mut pod) = store.get(def, &ns, &name) else {
        return not_found(def, &name);
    };
    let existing: Vec<Value> = pod
        .pointer("/spec/ephemeralContainers")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let patched: Option<Vec<Value>> = patch
        .pointer("/spec/ephemeralContainers")
        .and_then(Value::as_array)
        .cloned();
    let mut result = existing.clone();
    if let Some(list) = patched {
        if strategic {
            for p in list {
                let pname = str_of(&p, &["name"]).unwrap_or_default().to_string();
                match result
                    .iter_mut()
                    .find(|c| !pname.is_empty() && str_of(c, &["name"]) == Some(pname.as_str()))
                {
                    Some(slot) => {
                        if let (Some(dst), Some(src)) = (slot.as_object_mut(), p.as_object()) {
                            for (k, v) in src {
                                dst.insert(k.clone(), v.clone());
                            }
                        }
                    }
                    None => result.push(p),
                }
            }
        } else {
            result = list;
        }
    }
    // Existing ephemeral containers stay exactly as they are.
    for old in &existing {
        let oname = str_of(old, &["name"]).unwrap_or_default();
        match result.iter().find(|c| str_of(c, &["name"]) == Some(oname)) {
            None => {
                return invalid(
                    &name,
                    &[(
                        "spec.ephemeralContainers".into(),
                        "FieldValueForbidden",
                        format!(
                            "Forbidden: existing ephemeral containers \"{oname}\" may not be removed"
                        ),
                    )],
                );
            }
            Some(new) if new != old => {
                return invalid(
                    &name,
                    &[(
                        "spec.ephemeralContainers".into(),
                        "FieldValueForbidden",
                        format!(
                            "Forbidden: existing ephemeral containers \"{oname}\" may not be changed"
                        ),
                    )],
                );
            }
            Some(_) => {}
        }
    }
    let mut causes = container_causes(&result, "ephemeralContainers", existing.len());
    let mut seen: Vec<String> = pod_containers(&pod, false)
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    for (i, c) in result.iter().enumerate() {
        let n = str_of(c, &["name"]).unwrap_or_default().to_string();
        if n.is_empty() {
            continue;
        }
        if seen.contains(&n) {
            causes.push((
                format!("spec.ephemeralContainers[{i}].name"),
                "FieldValueDuplicate",
                format!("Duplicate value: \"{n}\""),
            ));
        }
        seen.push(n);
    }
    if !causes.is_empty() {
        return invalid(&name, &causes);
    }
    let mut added = Vec::new();
    for c in result.iter_mut().skip(existing.len()) {
        let mut tmp = json!({"containers": [c.clone()]});
        super::store::normalize_pod_spec(&mut tmp);
        if let Some(n) = tmp.pointer("/containers/0") {
            *c = n.clone();
        }
        added.push(c.clone());
    }
    super::store::map_mut(super::store::child(&mut pod, "spec"))
        .insert("ephemeralContainers".into(), json!(result));
    if !added.is_empty() {
        let status_v = super::store::child(&mut pod, "status");
        let list = super::store::map_mut(status_v)
            .entry("ephemeralContainerStatuses")
            .or_insert_with(|| json!([]));
        if let Some(a) = list.as_array_mut() {
            a.extend(added.iter().map(kubelet::creating_status));
        }
    }
    if let Some(m) = pod.get_mut("metadata").and_then(Value::as_object_mut) {
        m.remove("resourceVersion");
    }
    let change = store.upsert(def, pod);
    let body = store
        .entry(def, &ns, &name)
        .map(|e| e.full_json(def))
        .unwrap_or_default();
    drop(store);
    state.publish(change);
    if let Some(cfg) = &state.kubelet {
        for c in added {
            kubelet::start_ephemeral(state, cfg, &ns, &name, c);
        }
    }
    raw_json_response(StatusCode::OK, body)
}

struct Filters {
    labels: LabelSelector,
    fields: FieldSelector,
}

fn filters(info: &Info, def: &ResourceDef) -> Result<Filters, Box<Response>> {
    let labels = LabelSelector::parse(info.param("labelSelector").unwrap_or_default())
        .map_err(|e| Box::new(bad_request(&e.0)))?;
    let fields = FieldSelector::parse(info.param("fieldSelector").unwrap_or_default())
        .map_err(|e| Box::new(bad_request(&e.0)))?;
    fields
        .validate_for(def.plural)
        .map_err(|e| Box::new(bad_request(&e.0)))?;
    Ok(Filters { labels, fields })
}

fn key_string(def: &ResourceDef, namespaced_list: bool, key: &(String, String)) -> String {
    if def.namespaced && !namespaced_list {
        format!("{}/{}", key.0, key.1)
    } else {
        key.1.clone()
    }
}

fn list(state: &ServerState, info: &Info, def: &ResourceDef) -> Response {
    let f = match filters(info, def) {
        Ok(f) => f,
        Err(r) => return *r,
    };
    let ns_scope = if def.namespaced {
        info.namespace.as_deref()
    } else {
        None
    };
    let namespaced_list = ns_scope.is_some();
    let store = state.store();
    let rv = store.resource_version();
    let limit = info
        .param("limit")
        .and_then(|l| l.parse::<i64>().ok())
        .filter(|l| *l > 0)
        .and_then(|l| usize::try_from(l).ok());
    let start_after: Option<String> = match info.param("continue").filter(|c| !c.is_empty()) {
        None => None,
        Some(token) => match decode_continue(token) {
            Ok(start) => Some(start),
            Err(e) => return bad_request(&format!("continue key is not valid: {e}")),
        },
    };
    let mut items = Vec::new();
    let mut last_key: Option<String> = None;
    let mut more = false;
    let mut remaining = 0usize;
    for (key, entry) in store.list(def, ns_scope) {
        // Filter first: the key string is only needed for paging and for matched items.
        if !f.labels.matches_labels(entry.labels()) || !f.fields.matches_with(|n| entry.field(n)) {
            continue;
        }
        let k = key_string(def, namespaced_list, key);
        if let Some(start) = &start_after
            && k.as_str() < start.as_str()
        {
            continue;
        }
        if limit.is_some_and(|l| items.len() >= l) {
            more = true;
            remaining += 1;
            continue;
        }
        items.push(entry.item_json());
        last_key = Some(k);
    }
    let mut meta = json!({"resourceVersion": rv.to_string()});
    if more && let Some(k) = last_key {
        let token = encode_continue(rv, &format!("{k}\u{0}"));
        if let Some(m) = meta.as_object_mut() {
            m.insert("continue".into(), json!(token));
            if f.labels.is_empty() && f.fields.is_empty() {
                m.insert("remainingItemCount".into(), json!(remaining));
            }
        }
    }
    // Items are already serialized: assemble the list without re-parsing.
    let mut body = String::with_capacity(items.iter().map(|i| i.len() + 1).sum::<usize>() + 256);
    body.push_str(&format!(
        "{{\"kind\":{},\"apiVersion\":{},\"metadata\":{meta},\"items\":[",
        Value::from(format!("{}List", def.kind)),
        Value::from(def.api_version()),
    ));
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            body.push(',');
        }
        body.push_str(item);
    }
    body.push_str("]}");
    raw_json_response(StatusCode::OK, body)
}

fn encode_continue(rv: u64, start: &str) -> String {
    let raw = json!({"v": "meta.k8s.io/v1", "rv": rv, "start": start}).to_string();
    base64_encode(raw.as_bytes())
        .replace('+', "-")
        .replace('/', "_")
        .trim_end_matches('=')
        .to_string()
}

fn decode_continue(token: &str) -> Result<String, String> {
    let bytes = base64_decode(token).ok_or_else(|| "illegal base64 data".to_string())?;
    let v: Value = serde_json::from_slice(&bytes).map_err(|e| e.to_string())?;
    if v.get("v").and_then(Value::as_str) != Some("meta.k8s.io/v1") {
        return Err("continue key is not in the meta.k8s.io/v1 format".into());
    }
    if v.get("rv").and_then(Value::as_i64).is_none_or(|rv| rv <= 0) {
        return Err("incorrect encoded start resourceVersion (version meta.k8s.io/v1)".into());
    }
    let start = v
        .get("start")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| "encoded start key empty".to_string())?;
    Ok(start.to_string())
}

fn watch(state: &ServerState, info: &Info, def: &'static ResourceDef) -> Response {
    let f = match filters(info, def) {
        Ok(f) => f,
        Err(r) => return *r,
    };
    let ns_scope: Option<String> = if def.namespaced {
        info.namespace.clone()
    } else {
        None
    };
    let rv = info.param("resourceVersion").unwrap_or_default();
    let send_initial = matches!(info.param("sendInitialEvents"), Some("true" | "1"));
    let initial = send_initial || rv.is_empty() || rv == "0";
    let in_scope = move |c: &Change, f: &Filters, ns: &Option<String>| {
        c.res == (def.group, def.plural)
            && ns.as_deref().is_none_or(|n| n == c.namespace)
            && f.labels.matches_labels(c.labels.as_ref())
            && f.fields.matches_with(|n| c.field(n))
    };
    let event = |kind: &str, object: &str| {
        Ok::<Bytes, Infallible>(Bytes::from(format!(
            "{{\"type\":\"{kind}\",\"object\":{object}}}\n"
        )))
    };
    let mut lines: Vec<Result<Bytes, Infallible>> = Vec::new();
    // Snapshot, replay and subscription under one lock: no change is lost or doubled.
    let (seen_rv, rx) = {
        let store = state.store();
        if initial {
            for (_, entry) in store.list(def, ns_scope.as_deref()) {
                if f.labels.matches_labels(entry.labels())
                    && f.fields.matches_with(|n| entry.field(n))
                {
                    lines.push(event("ADDED", &entry.full_json(def)));
                }
            }
        } else if let Ok(from) = rv.parse::<u64>() {
            for c in store.changes.iter().filter(|c| c.rv > from) {
                if in_scope(c, &f, &ns_scope) {
                    lines.push(event(c.kind, &c.object));
                }
            }
        }
        if send_initial || matches!(info.param("allowWatchBookmarks"), Some("true" | "1")) {
            let mut meta = json!({"resourceVersion": store.resource_version().to_string()});
            if send_initial && let Some(m) = meta.as_object_mut() {
                m.insert(
                    "annotations".into(),
                    json!({"k8s.io/initial-events-end": "true"}),
                );
            }
            let line = format!(
                "{}\n",
                json!({"type": "BOOKMARK", "object": {"kind": def.kind, "apiVersion": def.api_version(), "metadata": meta}})
            );
            lines.push(Ok(Bytes::from(line)));
        }
        (store.resource_version(), state.changes.subscribe())
    };
    let timeout = info
        .param("timeoutSeconds")
        .and_then(|t| t.parse::<u64>().ok())
        .unwrap_or(1800);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(timeout);
    let closing = state.closing.subscribe();
    let live = futures::stream::unfold(
        (rx, closing, f, ns_scope),
        move |(mut rx, mut closing, f, ns)| async move {
            loop {
                let next = tokio::select! {
                    r = rx.recv() => r,
                    () = tokio::time::sleep_until(deadline) => return None,
                    _ = closing.wait_for(|c| *c) => return None,
                };
                match next {
                    Ok(c) if c.rv > seen_rv && in_scope(&c, &f, &ns) => {
                        let line = event(c.kind, &c.object);
                        return Some((line, (rx, closing, f, ns)));
                    }
                    Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return None,
                }
            }
        },
    );
    let stream = futures::StreamExt::chain(futures::stream::iter(lines), live);
    let mut r = Response::new(Body::from_stream(stream));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

fn reviews(state: &ServerState, info: &Info, def: &ResourceDef, body: &Bytes) -> Response {
    if info.verb != "create" || info.name.is_some() || info.namespace.is_some() {
        if info.verb == "create" {
            return not_found_generic();
        }
        return method_not_allowed(&info.verb);
    }
    let req: Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(e) => {
            return bad_request(&format!(
                "the object provided is unrecognized (must be of type {}): couldn't get version/kind; json parse error: {e}",
                def.kind
            ));
        }
    };
    if !req.is_object() {
        return bad_request(&format!(
            "the object provided is unrecognized (must be of type {})",
            def.kind
        ));
    }
    if let Some(k) = req.get("kind").and_then(Value::as_str)
        && k != def.kind
    {
        return bad_request(&format!(
            "the object provided is unrecognized (must be of type {}): kind {k:?}",
            def.kind
        ));
    }
    let spec = req.get("spec").cloned().unwrap_or(json!({}));
    let status_v = if def.plural == "selfsubjectrulesreviews" {
        let ns = str_of(&spec, &["namespace"]).unwrap_or_default();
        state.rbac.rules_review(ns)
    } else {
        access_review(state, &spec)
    };
    let out = json!({
        "kind": def.kind,
        "apiVersion": def.api_version(),
        "metadata": {"creationTimestamp": null},
        "spec": spec,
        "status": status_v,
    });
    json_response(StatusCode::CREATED, &out)
}

fn access_review(state: &ServerState, spec: &Value) -> Value {
    let allowed = if let Some(ra) = spec.get("resourceAttributes") {
        let s = |k: &str| str_of(ra, &[k]).unwrap_or_default().to_string();
        let (verb, group, resource, sub, ns, name) = (
            s("verb"),
            s("group"),
            s("resource"),
            s("subresource"),
            s("namespace"),
            s("name"),
        );
        state.rbac.allows(&Attributes {
            verb: &verb,
            group: &group,
            resource: &resource,
            subresource: (!sub.is_empty()).then_some(sub.as_str()),
            namespace: &ns,
            name: (!name.is_empty()).then_some(name.as_str()),
        })
    } else if let Some(nra) = spec.get("nonResourceAttributes") {
        let verb = str_of(nra, &["verb"]).unwrap_or_default();
        let path = str_of(nra, &["path"]).unwrap_or_default();
        state.rbac.allows_path(verb, path, false)
    } else {
        false
    };
    if allowed {
        json!({"allowed": true, "reason": format!("RBAC: allowed by ClusterRoleBinding \"elsadoctor-sim\" of ClusterRole \"elsadoctor-sim\" to User \"{}\"", state.rbac.user)})
    } else {
        json!({"allowed": false})
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(method: Method, path: &str, q: Option<&str>) -> Info {
        Info::parse(&method, path, q)
    }

    #[test]
    fn request_info_parsing() {
        let i = info(
            Method::GET,
            "/api/v1/namespaces/elsa/pods",
            Some("labelSelector=a%3Db"),
        );
        assert!(i.is_resource);
        assert_eq!((i.verb.as_str(), i.resource.as_str()), ("list", "pods"));
        assert_eq!(i.namespace.as_deref(), Some("elsa"));
        assert_eq!(i.param("labelSelector"), Some("a=b"));
        let i = info(Method::GET, "/api/v1/namespaces/elsa", None);
        assert_eq!(
            (i.verb.as_str(), i.resource.as_str()),
            ("get", "namespaces")
        );
        assert_eq!(i.name.as_deref(), Some("elsa"));
        assert_eq!(i.namespace.as_deref(), Some("elsa"));
        let i = info(Method::GET, "/api/v1/namespaces", None);
        assert_eq!(
            (i.verb.as_str(), i.resource.as_str()),
            ("list", "namespaces")
        );
        assert_eq!(i.namespace, None);
        let i = info(
            Method::GET,
            "/apis/apps/v1/namespaces/elsa/deployments/x/scale",
            None,
        );
        assert_eq!(i.group, "apps");
        assert_eq!(i.subresource.as_deref(), Some("scale"));
        let i = info(Method::GET, "/api/v1/pods", Some("watch=true"));
        assert_eq!(i.verb, "watch");
        let i = info(Method::GET, "/api/v1/watch/namespaces/elsa/pods", None);
        assert_eq!(
            (i.verb.as_str(), i.namespace.as_deref()),
            ("watch", Some("elsa"))
        );
        let i = info(Method::DELETE, "/api/v1/namespaces/elsa/pods", None);
        assert_eq!(i.verb, "deletecollection");
        let i = info(
            Method::POST,
            "/apis/authorization.k8s.io/v1/selfsubjectrulesreviews",
            None,
        );
        assert_eq!(
            (i.verb.as_str(), i.resource.as_str()),
            ("create", "selfsubjectrulesreviews")
        );
        let i = info(Method::GET, "/apis/apps/v1", None);
        assert!(!i.is_resource && i.discovery);
        let i = info(Method::GET, "/version", None);
        assert!(!i.is_resource && !i.discovery);
    }

    #[test]
    fn continue_tokens_roundtrip() {
        let t = encode_continue(1234, "elsa/pod-a\u{0}");
        assert_eq!(decode_continue(&t).as_deref(), Ok("elsa/pod-a\u{0}"));
        assert!(decode_continue("!!!").is_err());
        assert!(decode_continue(&base64_encode(b"{}")).is_err());
    }

    #[test]
    fn status_bodies() {
        let s = status_body(
            404,
            "NotFound",
            "pods \"x\" not found",
            Some(json!({"name": "x", "kind": "pods"})),
        );
        assert_eq!(s["kind"], "Status");
        assert_eq!(s["status"], "Failure");
        assert_eq!(s["code"], 404);
        assert_eq!(s["details"]["name"], "x");
    }
}
