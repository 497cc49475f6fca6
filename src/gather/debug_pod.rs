//! The short-lived probe pod of `--vantage debug-pod`, and the janitor that makes sure it goes.
//!
//! Lifecycle: a client-chosen name is registered with the [`Janitor`] *before* the create request
//! is sent, so an interruption at any moment leaves a name to delete; the pod runs
//! `elsadoctor probe …` once (restartPolicy Never, activeDeadlineSeconds, small limits, no
//! service-account token, non-root, read-only root filesystem); its end is awaited with a
//! field-selected watch; its stdout (the probe's JSON) is read from `pods/log`; then it is
//! deleted with grace period 0. Whatever happens on the way (an error, the run's deadline, Ctrl-C,
//! SIGTERM) the caller sweeps the janitor, which deletes every pod still registered.
//! `elsadoctor cleanup` removes leftovers of runs that were killed outright (SIGKILL).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{
    Capabilities, Container, EnvFromSource, EnvVar, Pod, PodSecurityContext, PodSpec,
    ResourceRequirements, SeccompProfile, SecurityContext,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Client;
use kube::api::{Api, DeleteParams, ListParams, LogParams, PostParams, WatchEvent, WatchParams};

use super::kube::classify;
use crate::facts::network::PodNotStarted;
use crate::facts::{Failure, Probe};

/// Label every pod elsadoctor creates carries (`kubectl get pods -l app.kubernetes.io/managed-by=elsadoctor`).
pub const MANAGED_BY: (&str, &str) = ("app.kubernetes.io/managed-by", "elsadoctor");
/// Second label: what the pod is for.
pub const COMPONENT: (&str, &str) = ("app.kubernetes.io/component", "probe");
/// The probe image when `--probe-image` is not given.
pub const DEFAULT_PROBE_IMAGE: &str = concat!("elsadoctor:", env!("CARGO_PKG_VERSION"));
/// The container name inside the probe pod.
pub const CONTAINER: &str = "probe";
/// Pause before resuming a watch that ended.
const RESUME_BACKOFF: Duration = Duration::from_millis(100);
/// Largest probe output read back (the JSON report is a few KiB).
const MAX_LOG_BYTES: i64 = 256 * 1024;

/// Pods this process created and has not yet seen deleted, with the client that created
/// them.
#[derive(Clone, Default)]
pub struct Janitor {
    pods: Arc<Mutex<Vec<(Client, String, String)>>>,
}

impl std::fmt::Debug for Janitor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.pending()).finish()
    }
}

impl Janitor {
    /// The process's janitor: every run registers its pods here, and whatever ends the run
    /// (its end, an error, the TUI quitting mid-run, a signal) sweeps it.
    pub fn global() -> &'static Janitor {
        static GLOBAL: std::sync::LazyLock<Janitor> = std::sync::LazyLock::new(Janitor::default);
        &GLOBAL
    }

    fn track(&self, client: &Client, namespace: &str, name: &str) {
        if let Ok(mut pods) = self.pods.lock() {
            pods.push((client.clone(), namespace.to_owned(), name.to_owned()));
        }
    }

    fn forget(&self, namespace: &str, name: &str) {
        if let Ok(mut pods) = self.pods.lock() {
            pods.retain(|(_, ns, n)| !(ns == namespace && n == name));
        }
    }

    /// The pods still registered.
    pub fn pending(&self) -> Vec<(String, String)> {
        self.pods
            .lock()
            .map(|p| p.iter().map(|(_, ns, n)| (ns.clone(), n.clone())).collect())
            .unwrap_or_default()
    }

    /// Deletes every registered pod (404 counts as deleted), each bounded by `timeout`.
    /// Returns the names it could not delete, with why.
    pub async fn sweep(&self, timeout: Duration) -> Vec<String> {
        let pending: Vec<(Client, String, String)> =
            self.pods.lock().map(|p| p.clone()).unwrap_or_default();
        let results =
            futures::future::join_all(pending.into_iter().map(|(client, ns, name)| async move {
                let r = delete(&client, &ns, &name, timeout).await;
                (ns, name, r)
            }))
            .await;
        let mut failed = Vec::new();
        for (ns, name, r) in results {
            match r {
                Ok(()) => self.forget(&ns, &name),
                Err(why) => failed.push(format!("{ns}/{name}: {why}")),
            }
        }
        failed
    }
}

/// What the probe pod runs. Its `env` may hold the Elsa container's literal values (a password
/// written into the manifest), so its `Debug` shows variable names only.
#[derive(Clone)]
pub struct ProbeSpec {
    pub image: String,
    /// Arguments after `elsadoctor probe`.
    pub args: Vec<String>,
    pub env: Vec<EnvVar>,
    pub env_from: Vec<EnvFromSource>,
    /// `activeDeadlineSeconds`: the kubelet kills the pod after this long, whatever happens to us.
    pub deadline_seconds: i64,
}

impl std::fmt::Debug for ProbeSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProbeSpec")
            .field("image", &self.image)
            .field("args", &self.args)
            .field("env", &env_names(&self.env))
            .field("env_from", &self.env_from.len())
            .field("deadline_seconds", &self.deadline_seconds)
            .finish()
    }
}

/// The names of environment variables, for logs and `Debug`: never their values.
pub fn env_names(env: &[EnvVar]) -> Vec<&str> {
    env.iter().map(|e| e.name.as_str()).collect()
}

/// A name no other run picks: time and process id, base 36.
pub fn pod_name() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    let mut n = nanos ^ (u128::from(std::process::id()) << 64);
    let mut suffix = String::new();
    while suffix.len() < 10 {
        let digit = u32::try_from(n % 36).unwrap_or(0);
        suffix.push(char::from_digit(digit, 36).unwrap_or('0'));
        n /= 36;
    }
    format!("elsadoctor-probe-{suffix}")
}

/// The probe pod's manifest.
pub fn manifest(namespace: &str, name: &str, spec: &ProbeSpec) -> Pod {
    let labels: BTreeMap<String, String> = [MANAGED_BY, COMPONENT]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    let q = |s: &str| Quantity(s.to_owned());
    let mut args = vec!["probe".to_owned()];
    args.extend(spec.args.iter().cloned());
    Pod {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            namespace: Some(namespace.to_owned()),
            labels: Some(labels),
            annotations: Some(BTreeMap::from([(
                "elsadoctor/purpose".to_owned(),
                "one-shot network probe from this namespace; deleted by the run that created it, or by `elsadoctor cleanup`".to_owned(),
            )])),
            ..Default::default()
        },
        spec: Some(PodSpec {
            restart_policy: Some("Never".to_owned()),
            active_deadline_seconds: Some(spec.deadline_seconds),
            termination_grace_period_seconds: Some(0),
            automount_service_account_token: Some(false),
            enable_service_links: Some(false),
            security_context: Some(PodSecurityContext {
                run_as_non_root: Some(true),
                run_as_user: Some(65532),
                seccomp_profile: Some(SeccompProfile {
                    type_: "RuntimeDefault".to_owned(),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            containers: vec![Container {
                name: CONTAINER.to_owned(),
                image: Some(spec.image.clone()),
                command: Some(vec!["elsadoctor".to_owned()]),
                args: Some(args),
                env: (!spec.env.is_empty()).then(|| spec.env.clone()),
                env_from: (!spec.env_from.is_empty()).then(|| spec.env_from.clone()),
                resources: Some(ResourceRequirements {
                    requests: Some(BTreeMap::from([
                        ("cpu".to_owned(), q("10m")),
                        ("memory".to_owned(), q("16Mi")),
                    ])),
                    limits: Some(BTreeMap::from([
                        ("cpu".to_owned(), q("200m")),
                        ("memory".to_owned(), q("64Mi")),
                    ])),
                    ..Default::default()
                }),
                security_context: Some(SecurityContext {
                    allow_privilege_escalation: Some(false),
                    read_only_root_filesystem: Some(true),
                    capabilities: Some(Capabilities {
                        drop: Some(vec!["ALL".to_owned()]),
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            }],
            ..Default::default()
        }),
        status: None,
    }
}

/// How the probe pod ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ran {
    pub pod: String,
    /// The probe's stdout.
    pub output: String,
    pub exit_code: Option<i32>,
}

/// Creates the probe pod, waits for it to finish, reads its output and deletes it. The pod is
/// registered with `janitor` before it is created and forgotten once deleted, so a caller that
/// drops this future half-way sweeps it.
pub async fn run(
    client: Client,
    namespace: String,
    spec: ProbeSpec,
    janitor: Janitor,
    timeout: Duration,
) -> Probe<Ran> {
    let name = pod_name();
    janitor.track(&client, &namespace, &name);
    let outcome = create_and_read(&client, &namespace, &name, &spec, timeout).await;
    // Delete on every path that gets here; interruptions are the janitor's job.
    match delete(&client, &namespace, &name, timeout).await {
        Ok(()) => janitor.forget(&namespace, &name),
        Err(why) => tracing::warn!(pod = %name, %why, "could not delete the probe pod"),
    }
    outcome
}

async fn create_and_read(
    client: &Client,
    namespace: &str,
    name: &str,
    spec: &ProbeSpec,
    timeout: Duration,
) -> Probe<Ran> {
    let api: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let pod = manifest(namespace, name, spec);
    match tokio::time::timeout(timeout, api.create(&PostParams::default(), &pod)).await {
        Ok(Ok(_)) => {}
        Ok(Err(kube::Error::Api(s))) if refused_by_admission(s.code, &s.message) => {
            return not_started(PodNotStarted::Refused {
                code: s.code,
                reason: s.reason.clone(),
                message: crate::redact::text(&s.message),
            });
        }
        Ok(Err(e)) => return classify(&e, "create", "pods"),
        Err(_) => return Probe::failed(None, "creating the probe pod took longer than --timeout"),
    }
    tracing::info!(pod = %name, image = %spec.image, "probe pod created");
    let end = match finished(
        &api,
        name,
        &spec.image,
        Duration::from_secs(spec.deadline_seconds.unsigned_abs()),
        timeout,
    )
    .await
    {
        // A pod that never ran has no log to read.
        Ok(End::NotStarted(why)) => return not_started(why),
        Ok(end) => end,
        Err(p) => return p,
    };
    let lp = LogParams {
        container: Some(CONTAINER.to_owned()),
        limit_bytes: Some(MAX_LOG_BYTES),
        ..Default::default()
    };
    let output = match tokio::time::timeout(timeout, api.logs(name, &lp)).await {
        Ok(Ok(text)) => text,
        Ok(Err(e)) => return classify(&e, "get", "pods/log"),
        Err(_) => {
            return Probe::failed(
                None,
                "reading the probe pod's log took longer than --timeout",
            );
        }
    };
    match end {
        End::Terminated(exit_code) => Probe::Observed(Ran {
            pod: name.to_owned(),
            output,
            exit_code,
        }),
        End::Failed(why) => Probe::failed(None, format!("probe pod {name} failed: {why}")),
        End::NotStarted(why) => not_started(why),
    }
}

enum End {
    /// The container ran to its end with this exit code.
    Terminated(Option<i32>),
    /// The pod failed after its container started (deadline, eviction).
    Failed(String),
    /// The pod will not run its container: what the scheduler or the kubelet said.
    NotStarted(PodNotStarted),
}

/// The probe state of a probe pod that never ran its probe.
fn not_started<T>(why: PodNotStarted) -> Probe<T> {
    let reason = match &why {
        PodNotStarted::Refused {
            code,
            reason,
            message,
        } => format!(
            "the API server refused to create the probe pod (HTTP {code} {reason}): {message}"
        ),
        PodNotStarted::Unschedulable { pod, message } => {
            format!("probe pod {pod} cannot be scheduled: {message}")
        }
        PodNotStarted::NotScheduled { pod, waited_ms } => format!(
            "probe pod {pod} was not scheduled within {waited_ms} ms (--timeout): no scheduler bound it to a node"
        ),
        PodNotStarted::ImagePull {
            pod,
            image,
            reason,
            message,
        } => format!("probe pod {pod} cannot pull image {image}: {reason}: {message}"),
        PodNotStarted::ContainerConfig { pod, message } => {
            format!("probe pod {pod}: CreateContainerConfigError: {message}")
        }
    };
    Probe::Failed(Failure {
        code: None,
        reason,
        probe_pod: Some(Box::new(why)),
    })
}

/// Whether a refused create is admission's doing (PodSecurity, a ResourceQuota or LimitRange,
/// a validating webhook, validation) rather than RBAC's: RBAC's 403 says the user `cannot
/// create resource`, admission's names what in the pod it will not admit.
fn refused_by_admission(code: u16, message: &str) -> bool {
    code == 422 || (code == 403 && !message.contains("cannot create resource"))
}

/// Waits until the pod has terminated, watching it by name. The client's read timeout ends a
/// quiet watch, so the watch is resumed (after one GET that catches a change in between) until
/// the pod ends or `limit` passes. What makes the pod never run its probe ends the wait as soon
/// as it is reported: the scheduler's `Unschedulable`, an image the kubelet cannot pull, a
/// configuration it cannot build; and a pod neither bound to a node nor judged by a scheduler
/// within `timeout` (a request's time: a scheduler answers in far less).
async fn finished(
    api: &Api<Pod>,
    name: &str,
    image: &str,
    limit: Duration,
    timeout: Duration,
) -> Result<End, Probe<Ran>> {
    let placed = |p: &Pod| -> Option<Option<End>> {
        if let Some(end) = ended(p, image) {
            return Some(Some(end));
        }
        let bound = p
            .spec
            .as_ref()
            .and_then(|s| s.node_name.as_deref())
            .is_some_and(|n| !n.is_empty());
        bound.then_some(None)
    };
    let scheduled = wait_for(api, name, limit, "the probe pod", placed);
    match tokio::time::timeout(timeout, scheduled).await {
        Ok(Ok(Some(end))) => return Ok(end),
        Ok(Ok(None)) => {}
        Ok(Err(p)) => return Err(p),
        Err(_) => {
            return Ok(End::NotStarted(PodNotStarted::NotScheduled {
                pod: name.to_owned(),
                waited_ms: u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX),
            }));
        }
    }
    wait_for(api, name, limit, "the probe pod", |p| ended(p, image)).await
}

/// Waits until `done` says something of the pod `name`: a GET (which catches a change made
/// before the watch starts), then a watch from its resourceVersion, resumed whenever it ends
/// quietly, all within `limit`. `what` names the awaited thing in the timeout message.
async fn wait_for<T>(
    api: &Api<Pod>,
    name: &str,
    limit: Duration,
    what: &str,
    done: impl Fn(&Pod) -> Option<T>,
) -> Result<T, Probe<Ran>> {
    let wait = async {
        loop {
            let current = match api.get(name).await {
                Ok(p) => p,
                Err(e) => return Err(classify(&e, "get", "pods")),
            };
            if let Some(t) = done(&current) {
                return Ok(t);
            }
            let version = current
                .metadata
                .resource_version
                .clone()
                .unwrap_or_default();
            if let Some(t) = watch_until(api, name, &version, &done).await? {
                return Ok(t);
            }
            // A watch that keeps ending at once must not turn into a busy loop of requests.
            tokio::time::sleep(RESUME_BACKOFF).await;
        }
    };
    match tokio::time::timeout(limit, wait).await {
        Ok(r) => r,
        Err(_) => Err(Probe::failed(
            None,
            format!("{what} did not finish within {}s", limit.as_secs()),
        )),
    }
}

/// Watches one pod from `version` until `done` says so (`Some`), the pod is deleted (an
/// error), or the watch ends quietly (`None`: the caller resumes).
async fn watch_until<T>(
    api: &Api<Pod>,
    name: &str,
    version: &str,
    done: &impl Fn(&Pod) -> Option<T>,
) -> Result<Option<T>, Probe<Ran>> {
    let wp = WatchParams::default()
        .fields(&format!("metadata.name={name}"))
        .timeout(290);
    let mut stream = match api.watch(&wp, version).await {
        Ok(s) => s.boxed(),
        Err(e) => return Err(classify(&e, "watch", "pods")),
    };
    while let Some(event) = stream.next().await {
        match event {
            Ok(WatchEvent::Added(p) | WatchEvent::Modified(p)) => {
                if let Some(t) = done(&p) {
                    return Ok(Some(t));
                }
            }
            Ok(WatchEvent::Deleted(_)) => {
                return Err(Probe::failed(
                    None,
                    format!("pod {name} was deleted before the probe finished"),
                ));
            }
            Ok(WatchEvent::Bookmark(_)) => {}
            // 410 Gone (the version is too old) and read timeouts: resume from a fresh GET.
            Ok(WatchEvent::Error(e)) if e.code == 410 => return Ok(None),
            Ok(WatchEvent::Error(e)) => return Err(Probe::failed(Some(e.code), e.message)),
            Err(e) => {
                tracing::debug!(pod = %name, error = %super::kube::error_chain(&e), "watch interrupted; resuming");
                return Ok(None);
            }
        }
    }
    Ok(None)
}

/// Whether a pod's status says it is done, and how; `image` is the probe image, named when
/// it cannot be pulled.
fn ended(pod: &Pod, image: &str) -> Option<End> {
    let status = pod.status.as_ref()?;
    let name = pod.metadata.name.clone().unwrap_or_default();
    if let Some(c) = status
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == "PodScheduled")
        && c.status == "False"
        && c.reason.as_deref() == Some("Unschedulable")
    {
        return Some(End::NotStarted(PodNotStarted::Unschedulable {
            pod: name,
            message: c.message.clone().unwrap_or_default(),
        }));
    }
    let container = status
        .container_statuses
        .iter()
        .flatten()
        .find(|c| c.name == CONTAINER);
    if let Some(t) = container.and_then(|c| c.state.as_ref()?.terminated.as_ref()) {
        return Some(End::Terminated(Some(t.exit_code)));
    }
    if let Some(w) = container.and_then(|c| c.state.as_ref()?.waiting.as_ref())
        && let Some(reason) = w.reason.as_deref()
    {
        let message = crate::redact::text(w.message.as_deref().unwrap_or(""));
        match reason {
            "ErrImagePull" | "ImagePullBackOff" | "InvalidImageName" | "ErrImageNeverPull" => {
                return Some(End::NotStarted(PodNotStarted::ImagePull {
                    pod: name,
                    image: image.to_owned(),
                    reason: reason.to_owned(),
                    message,
                }));
            }
            "CreateContainerConfigError" => {
                return Some(End::NotStarted(PodNotStarted::ContainerConfig {
                    pod: name,
                    message,
                }));
            }
            _ => {}
        }
    }
    match status.phase.as_deref() {
        Some("Failed") => Some(End::Failed(
            status
                .reason
                .clone()
                .or_else(|| status.message.clone())
                .unwrap_or_else(|| "Failed".to_owned()),
        )),
        Some("Succeeded") => Some(End::Terminated(None)),
        _ => None,
    }
}

/// Adds an ephemeral container running the probe to `pod`, targeting `target` (it shares that
/// container's process namespace, so `/proc/1/root` is the Elsa container's filesystem), waits
/// for it to finish and reads its output. Ephemeral containers cannot be removed: it stays in
/// the pod's spec until the pod is replaced.
pub async fn ephemeral(
    client: Client,
    namespace: String,
    pod: String,
    target: String,
    spec: ProbeSpec,
    timeout: Duration,
) -> Probe<Ran> {
    let name = pod_name().replacen("elsadoctor-probe-", "elsadoctor-", 1);
    let api: Api<Pod> = Api::namespaced(client, &namespace);
    let mut args = vec!["probe".to_owned()];
    args.extend(spec.args.iter().cloned());
    let patch = serde_json::json!({
        "spec": {"ephemeralContainers": [{
            "name": name,
            "image": spec.image,
            "command": ["elsadoctor"],
            "args": args,
            "targetContainerName": target,
            "env": [{"name": "ELSADOCTOR_PROBE_ROOT", "value": "/proc/1/root"}],
        }]}
    });
    tracing::warn!(
        pod = %pod,
        container = %name,
        "adding an ephemeral container (--vantage ephemeral): it stays in the pod's spec until the pod is replaced"
    );
    let pp = kube::api::PatchParams::default();
    match tokio::time::timeout(
        timeout,
        api.patch_subresource(
            "ephemeralcontainers",
            &pod,
            &pp,
            &kube::api::Patch::Strategic(patch),
        ),
    )
    .await
    {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => return classify(&e, "patch", "pods/ephemeralcontainers"),
        Err(_) => {
            return Probe::failed(
                None,
                "adding the ephemeral container took longer than --timeout",
            );
        }
    }
    let limit = Duration::from_secs(spec.deadline_seconds.unsigned_abs());
    let state_of = |p: &Pod| -> Option<Result<Option<i32>, String>> {
        let state = p
            .status
            .as_ref()?
            .ephemeral_container_statuses
            .as_ref()?
            .iter()
            .find(|c| c.name == name)?
            .state
            .clone()?;
        if let Some(t) = &state.terminated {
            return Some(Ok(Some(t.exit_code)));
        }
        let reason = state.waiting.as_ref()?.reason.clone()?;
        (reason.contains("ImagePull") || reason == "InvalidImageName").then(|| {
            Err(format!(
                "ephemeral container {name}: {reason} (set --probe-image to an image this cluster can pull)"
            ))
        })
    };
    let exit_code = match wait_for(&api, &pod, limit, "the ephemeral container", state_of).await {
        Ok(Ok(code)) => code,
        Ok(Err(why)) => return Probe::failed(None, why),
        Err(p) => return p,
    };
    let lp = LogParams {
        container: Some(name.clone()),
        limit_bytes: Some(MAX_LOG_BYTES),
        ..Default::default()
    };
    match tokio::time::timeout(timeout, api.logs(&pod, &lp)).await {
        Ok(Ok(output)) => Probe::Observed(Ran {
            pod: format!("{pod}/{name}"),
            output,
            exit_code,
        }),
        Ok(Err(e)) => classify(&e, "get", "pods/log"),
        Err(_) => Probe::failed(
            None,
            "reading the ephemeral container's log took longer than --timeout",
        ),
    }
}

/// Deletes one pod, immediately; a pod that is already gone counts as deleted.
pub async fn delete(
    client: &Client,
    namespace: &str,
    name: &str,
    timeout: Duration,
) -> Result<(), String> {
    let api: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let dp = DeleteParams::default().grace_period(0);
    match tokio::time::timeout(timeout, api.delete(name, &dp)).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(kube::Error::Api(s))) if s.code == 404 => Ok(()),
        Ok(Err(e)) => Err(super::kube::error_chain(&e)),
        Err(_) => Err("no answer within --timeout".to_owned()),
    }
}

/// `elsadoctor cleanup`: deletes the probe pods in `namespace` older than `min_age`. Returns
/// the names deleted, and the ones that could not be, with why.
pub async fn cleanup(
    client: Client,
    namespace: String,
    min_age: Duration,
    timeout: Duration,
) -> Result<(Vec<String>, Vec<String>), String> {
    let api: Api<Pod> = Api::namespaced(client.clone(), &namespace);
    let lp = ListParams::default().labels(&format!("{}={}", MANAGED_BY.0, MANAGED_BY.1));
    let list = match tokio::time::timeout(timeout, api.list(&lp)).await {
        Ok(Ok(l)) => l,
        Ok(Err(e)) => {
            return Err(format!(
                "cannot list pods in namespace {namespace}: {}",
                super::kube::error_chain(&e)
            ));
        }
        Err(_) => {
            return Err(format!(
                "listing pods in namespace {namespace} took longer than --timeout"
            ));
        }
    };
    let now = std::time::SystemTime::now();
    let old: Vec<String> = list
        .items
        .into_iter()
        .filter(|p| {
            p.metadata.creation_timestamp.as_ref().is_none_or(|t| {
                let created = std::time::UNIX_EPOCH
                    + Duration::from_secs(u64::try_from(t.0.as_second()).unwrap_or(0));
                now.duration_since(created).unwrap_or_default() >= min_age
            })
        })
        .filter_map(|p| p.metadata.name)
        .collect();
    let results = futures::future::join_all(old.iter().map(|name| {
        let client = client.clone();
        let namespace = namespace.clone();
        async move {
            (
                name.clone(),
                delete(&client, &namespace, name, timeout).await,
            )
        }
    }))
    .await;
    let mut deleted = Vec::new();
    let mut failed = Vec::new();
    for (name, r) in results {
        match r {
            Ok(()) => deleted.push(name),
            Err(why) => failed.push(format!("{name}: {why}")),
        }
    }
    Ok((deleted, failed))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_manifest_is_locked_down_and_labelled() {
        let spec = ProbeSpec {
            image: "example/elsadoctor:1".into(),
            args: vec!["--dns".into(), "postgres".into()],
            env: vec![],
            env_from: vec![],
            deadline_seconds: 60,
        };
        let pod = manifest("elsa", "elsadoctor-probe-x", &spec);
        let labels = pod.metadata.labels.clone().unwrap_or_default();
        assert_eq!(
            labels.get(MANAGED_BY.0).map(String::as_str),
            Some(MANAGED_BY.1)
        );
        let s = pod.spec.expect("spec");
        assert_eq!(s.restart_policy.as_deref(), Some("Never"));
        assert_eq!(s.active_deadline_seconds, Some(60));
        assert_eq!(s.automount_service_account_token, Some(false));
        let c = &s.containers[0];
        assert_eq!(c.command.as_deref(), Some(&["elsadoctor".to_owned()][..]));
        assert_eq!(c.args.as_ref().map(|a| a[0].as_str()), Some("probe"));
        let limits = c
            .resources
            .as_ref()
            .and_then(|r| r.limits.as_ref())
            .expect("limits");
        assert!(limits.contains_key("memory") && limits.contains_key("cpu"));
        assert_eq!(
            c.security_context
                .as_ref()
                .and_then(|s| s.read_only_root_filesystem),
            Some(true)
        );
    }

    fn pod(status: serde_json::Value) -> Pod {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "elsadoctor-probe-x"},
            "status": status,
        }))
        .expect("pod")
    }

    #[test]
    fn what_stops_a_probe_pod_is_told_apart() {
        let unschedulable = pod(serde_json::json!({"phase": "Pending", "conditions": [
            {"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
             "message": "0/3 nodes are available: 3 Insufficient cpu."}]}));
        assert!(matches!(
            ended(&unschedulable, "i:1"),
            Some(End::NotStarted(PodNotStarted::Unschedulable { ref message, .. })) if message.contains("Insufficient cpu")
        ));
        let waiting = |reason: &str| {
            pod(
                serde_json::json!({"phase": "Pending", "containerStatuses": [
                {"name": CONTAINER, "image": "i:1", "imageID": "", "ready": false, "restartCount": 0,
                 "state": {"waiting": {"reason": reason, "message": "m"}}}]}),
            )
        };
        for reason in ["ErrImagePull", "ImagePullBackOff"] {
            assert!(matches!(
                ended(&waiting(reason), "i:1"),
                Some(End::NotStarted(PodNotStarted::ImagePull { ref image, .. })) if image == "i:1"
            ));
        }
        assert!(matches!(
            ended(&waiting("CreateContainerConfigError"), "i:1"),
            Some(End::NotStarted(PodNotStarted::ContainerConfig { .. }))
        ));
        // Still on its way: no verdict.
        assert!(ended(&waiting("ContainerCreating"), "i:1").is_none());
        assert!(ended(&pod(serde_json::json!({"phase": "Pending"})), "i:1").is_none());
    }

    #[test]
    fn rbac_refusals_are_not_admission_refusals() {
        assert!(!refused_by_admission(
            403,
            "pods is forbidden: User \"u\" cannot create resource \"pods\" in API group \"\" in the namespace \"elsa\""
        ));
        assert!(refused_by_admission(
            403,
            "pods \"p\" is forbidden: exceeded quota: compute, requested: limits.memory=64Mi"
        ));
        assert!(refused_by_admission(
            403,
            "pods \"p\" is forbidden: violates PodSecurity \"restricted:latest\": runAsNonRoot != true"
        ));
        assert!(refused_by_admission(422, "Pod \"p\" is invalid: spec"));
        assert!(!refused_by_admission(409, "already exists"));
    }

    #[test]
    fn names_are_valid_and_differ() {
        let a = pod_name();
        let b = pod_name();
        assert_ne!(a, b);
        assert!(
            a.len() <= 63
                && a.bytes()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-')
        );
    }
}
