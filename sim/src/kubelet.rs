//! The kubelet stand-in: runs the pods created through the simulated API (`POST pods`) and
//! their ephemeral containers, when [`KubeletConfig`] is given.
//!
//! A container whose command (`command` then `args`, `$(VAR)` expanded like the kubelet does)
//! starts with `elsadoctor` runs as a real child process: the configured elsadoctor binary with
//! the remaining arguments, a clean environment built like the kubelet builds it (`env` with
//! `value`, `valueFrom.secretKeyRef`, `valueFrom.configMapKeyRef`, `envFrom`, `$(VAR)`), plus
//! `ELSADOCTOR_PROBE_ROOT` / `ELSADOCTOR_PROBE_RESOLV_CONF` from the configuration. What it
//! writes to stdout and stderr becomes the container's log, as the kubelet's CRI logs hold both
//! streams. Any other container just runs, with no log.
//!
//! The pod goes Pending → Running → Succeeded/Failed (`restartPolicy: Never`/`OnFailure`); with
//! `restartPolicy: Always` a finished container shows `CrashLoopBackOff` instead (it is not
//! restarted). `activeDeadlineSeconds` is enforced: the processes are killed and the pod is
//! Failed with reason `DeadlineExceeded`. A missing Secret or ConfigMap key leaves the container
//! waiting with `CreateContainerConfigError`. Children are killed when their pod is deleted and
//! when the server stops.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::task::AbortHandle;

use super::resources::{self, ResourceDef};
use super::server::ServerState;
use super::store::{map_mut, str_of};
use super::util::{base64_decode, format_rfc3339, hex_id};

/// How the stand-in starts `elsadoctor` containers.
#[derive(Debug, Clone)]
pub struct KubeletConfig {
    /// The elsadoctor binary to run (tests: `env!("CARGO_BIN_EXE_elsadoctor")`).
    pub exe: PathBuf,
    /// Passed as `ELSADOCTOR_PROBE_ROOT` (the probe's default `--root`).
    pub probe_root: Option<PathBuf>,
    /// Passed as `ELSADOCTOR_PROBE_RESOLV_CONF` (the probe's default `--resolv-conf`).
    pub resolv_conf: Option<PathBuf>,
}

impl KubeletConfig {
    /// Run `exe` for `elsadoctor` containers.
    pub fn new(exe: impl Into<PathBuf>) -> KubeletConfig {
        KubeletConfig {
            exe: exe.into(),
            probe_root: None,
            resolv_conf: None,
        }
    }

    /// Set `ELSADOCTOR_PROBE_ROOT` for the children.
    pub fn with_probe_root(mut self, root: impl Into<PathBuf>) -> KubeletConfig {
        self.probe_root = Some(root.into());
        self
    }

    /// Set `ELSADOCTOR_PROBE_RESOLV_CONF` for the children.
    pub fn with_resolv_conf(mut self, path: impl Into<PathBuf>) -> KubeletConfig {
        self.resolv_conf = Some(path.into());
        self
    }
}

/// Running container tasks per pod; aborting one kills its child process.
#[derive(Debug, Default)]
pub struct Processes {
    tasks: Mutex<HashMap<(String, String), Vec<AbortHandle>>>,
}

impl Processes {
    fn add(&self, ns: &str, pod: &str, h: AbortHandle) {
        if let Ok(mut t) = self.tasks.lock() {
            t.entry((ns.to_string(), pod.to_string()))
                .or_default()
                .push(h);
        }
    }

    /// Kill everything a pod runs.
    pub fn kill_pod(&self, ns: &str, pod: &str) {
        let handles = self
            .tasks
            .lock()
            .ok()
            .and_then(|mut t| t.remove(&(ns.to_string(), pod.to_string())))
            .unwrap_or_default();
        for h in handles {
            h.abort();
        }
    }

    /// Kill everything (the server stops).
    pub fn kill_all(&self) {
        let all: Vec<AbortHandle> = self
            .tasks
            .lock()
            .map(|mut t| t.drain().flat_map(|(_, v)| v).collect())
            .unwrap_or_default();
        for h in all {
            h.abort();
        }
    }
}

/// Bytes of log kept per container.
const LOG_CAP: usize = 4 * 1024 * 1024;

fn pods_def() -> Option<&'static ResourceDef> {
    resources::find("", "v1", "pods")
}

fn now() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(0))
        .unwrap_or(0);
    format_rfc3339(secs)
}

/// Change a stored pod and tell the watchers. `false` when the pod is gone.
fn update_pod(state: &ServerState, ns: &str, name: &str, f: impl FnOnce(&mut Value)) -> bool {
    let Some(def) = pods_def() else {
        return false;
    };
    let change = {
        let mut store = state.store_mut();
        let Some(mut pod) = store.get(def, ns, name) else {
            return false;
        };
        f(&mut pod);
        if let Some(m) = pod.get_mut("metadata").and_then(Value::as_object_mut) {
            m.remove("resourceVersion");
        }
        store.upsert(def, pod)
    };
    state.publish(change);
    // Followers of a container's log notice when it stops.
    state.log_tick.send_modify(|t| *t += 1);
    true
}

fn statuses_key(ephemeral: bool) -> &'static str {
    if ephemeral {
        "ephemeralContainerStatuses"
    } else {
        "containerStatuses"
    }
}

/// Replace container `name`'s status, then recompute the pod's phase and conditions.
fn set_status(pod: &mut Value, ephemeral: bool, cs: Value) {
    let name = str_of(&cs, &["name"]).unwrap_or_default().to_string();
    let status = map_mut(pod).entry("status").or_insert_with(|| json!({}));
    let list = map_mut(status)
        .entry(statuses_key(ephemeral))
        .or_insert_with(|| json!([]));
    if let Some(a) = list.as_array_mut() {
        match a
            .iter_mut()
            .find(|c| str_of(c, &["name"]) == Some(name.as_str()))
        {
            Some(slot) => *slot = cs,
            None => a.push(cs),
        }
    }
    recompute(pod);
}

/// Phase and conditions from the container statuses, like the kubelet's status manager.
fn recompute(pod: &mut Value) {
    if str_of(pod, &["status", "reason"]) == Some("DeadlineExceeded") {
        return;
    }
    let statuses: Vec<Value> = pod
        .pointer("/status/containerStatuses")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let restart = str_of(pod, &["spec", "restartPolicy"])
        .unwrap_or("Always")
        .to_string();
    let terminated: Vec<i64> = statuses
        .iter()
        .filter_map(|c| {
            c.pointer("/state/terminated/exitCode")
                .and_then(Value::as_i64)
        })
        .collect();
    let running = statuses
        .iter()
        .filter(|c| c.pointer("/state/running").is_some())
        .count();
    let started = statuses
        .iter()
        .filter(|c| {
            c.pointer("/state/running").is_some()
                || c.pointer("/state/terminated").is_some()
                || c.pointer("/lastState/terminated").is_some()
        })
        .count();
    let all_done = !statuses.is_empty() && terminated.len() == statuses.len();
    let phase = if all_done && restart != "Always" {
        if terminated.iter().all(|c| *c == 0) {
            "Succeeded"
        } else {
            "Failed"
        }
    } else if started > 0 {
        "Running"
    } else {
        "Pending"
    };
    let ready = !statuses.is_empty() && running == statuses.len();
    let at = now();
    let status = map_mut(pod).entry("status").or_insert_with(|| json!({}));
    let s = map_mut(status);
    s.insert("phase".into(), json!(phase));
    let b = |v: bool| if v { "True" } else { "False" };
    let reason = (!ready && matches!(phase, "Succeeded" | "Failed")).then_some("PodCompleted");
    let mut conds = vec![
        json!({"type": "PodReadyToStartContainers", "status": "True", "lastProbeTime": null, "lastTransitionTime": at}),
        json!({"type": "Initialized", "status": "True", "lastProbeTime": null, "lastTransitionTime": at}),
        json!({"type": "Ready", "status": b(ready), "lastProbeTime": null, "lastTransitionTime": at}),
        json!({"type": "ContainersReady", "status": b(ready), "lastProbeTime": null, "lastTransitionTime": at}),
        json!({"type": "PodScheduled", "status": "True", "lastProbeTime": null, "lastTransitionTime": at}),
    ];
    if let Some(r) = reason {
        for c in &mut conds[2..4] {
            map_mut(c).insert("reason".into(), json!(r));
        }
    }
    s.insert("conditions".into(), json!(conds));
}

fn container_id(ns: &str, pod: &str, container: &str) -> String {
    format!(
        "containerd://{}",
        hex_id(&["container", ns, pod, container], 64)
    )
}

fn base_status(c: &Value, ns: &str, pod: &str) -> Value {
    let name = str_of(c, &["name"]).unwrap_or_default();
    let image = str_of(c, &["image"]).unwrap_or_default();
    json!({
        "name": name,
        "image": image,
        "imageID": format!("{image}@sha256:{}", hex_id(&["image", image], 64)),
        "containerID": container_id(ns, pod, name),
        "restartCount": 0,
        "ready": false,
        "started": false,
        "state": {}
    })
}

/// The status of a container that is still being created (what a new pod starts with).
pub fn creating_status(c: &Value) -> Value {
    json!({
        "name": str_of(c, &["name"]).unwrap_or_default(),
        "image": str_of(c, &["image"]).unwrap_or_default(),
        "imageID": "",
        "restartCount": 0,
        "ready": false,
        "started": false,
        "state": {"waiting": {"reason": "ContainerCreating"}}
    })
}

/// The environment the kubelet gives container `c` of `pod`; `Err` is the
/// `CreateContainerConfigError` message.
fn resolve_env(
    state: &ServerState,
    ns: &str,
    c: &Value,
) -> Result<BTreeMap<String, String>, String> {
    let store = state.store();
    let secrets = resources::find("", "v1", "secrets");
    let configmaps = resources::find("", "v1", "configmaps");
    let lookup = |secret: bool, name: &str| -> Option<Value> {
        let def = if secret { secrets? } else { configmaps? };
        store.get(def, ns, name)
    };
    let key_of = |obj: &Value, secret: bool, key: &str| -> Option<String> {
        if secret {
            let b64 = str_of(obj, &["data", key])?;
            base64_decode(b64).map(|b| String::from_utf8_lossy(&b).into_owned())
        } else {
            str_of(obj, &["data", key]).map(str::to_string)
        }
    };
    let mut env: BTreeMap<String, String> = BTreeMap::new();
    for src in c
        .get("envFrom")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let prefix = str_of(src, &["prefix"]).unwrap_or_default();
        for (secret, key) in [(false, "configMapRef"), (true, "secretRef")] {
            let Some(r) = src.get(key) else { continue };
            let name = str_of(r, &["name"]).unwrap_or_default();
            let optional = r.get("optional") == Some(&json!(true));
            match lookup(secret, name) {
                Some(obj) => {
                    let keys: Vec<String> = obj
                        .get("data")
                        .and_then(Value::as_object)
                        .map(|m| m.keys().cloned().collect())
                        .unwrap_or_default();
                    for k in keys {
                        if let Some(v) = key_of(&obj, secret, &k) {
                            env.insert(format!("{prefix}{k}"), v);
                        }
                    }
                }
                None if optional => {}
                None => {
                    let kind = if secret { "secret" } else { "configmap" };
                    return Err(format!("{kind} \"{name}\" not found"));
                }
            }
        }
    }
    for e in c.get("env").and_then(Value::as_array).into_iter().flatten() {
        let Some(name) = str_of(e, &["name"]) else {
            continue;
        };
        if let Some(v) = str_of(e, &["value"]) {
            let expanded = expand(v, &env);
            env.insert(name.to_string(), expanded);
            continue;
        }
        for (secret, key) in [(true, "secretKeyRef"), (false, "configMapKeyRef")] {
            let Some(r) = e.pointer(&format!("/valueFrom/{key}")) else {
                continue;
            };
            let obj_name = str_of(r, &["name"]).unwrap_or_default();
            let k = str_of(r, &["key"]).unwrap_or_default();
            let optional = r.get("optional") == Some(&json!(true));
            let kind = if secret { "secret" } else { "configmap" };
            match lookup(secret, obj_name) {
                Some(obj) => match key_of(&obj, secret, k) {
                    Some(v) => {
                        env.insert(name.to_string(), v);
                    }
                    None if optional => {}
                    None => {
                        return Err(format!(
                            "couldn't find key {k} in {} {ns}/{obj_name}",
                            if secret { "Secret" } else { "ConfigMap" }
                        ));
                    }
                },
                None if optional => {}
                None => return Err(format!("{kind} \"{obj_name}\" not found")),
            }
        }
    }
    Ok(env)
}

/// The kubelet's `$(VAR)` expansion (Kubernetes `third_party/forked/golang/expansion`), written
/// here on its own so the product's implementation is tested against an independent one:
/// `$$` is a literal `$`, `$(NAME)` is the variable's value or stays literal when undefined, an
/// unclosed `$(` and any other `$x` stay as they are.
fn expand(input: &str, vars: &BTreeMap<String, String>) -> String {
    let mut out = String::with_capacity(input.len());
    let mut rest = input;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        match after.chars().next() {
            None => {
                out.push('$');
                rest = after;
            }
            Some('$') => {
                out.push('$');
                rest = &after[1..];
            }
            Some('(') => match after.find(')') {
                Some(close) => {
                    let name = &after[1..close];
                    match vars.get(name) {
                        Some(v) => out.push_str(v),
                        None => {
                            out.push_str("$(");
                            out.push_str(name);
                            out.push(')');
                        }
                    }
                    rest = &after[close + 1..];
                }
                None => {
                    out.push_str("$(");
                    rest = &after[1..];
                }
            },
            Some(c) => {
                out.push('$');
                out.push(c);
                rest = &after[c.len_utf8()..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// `command` then `args`, expanded against the final environment.
fn argv_of(c: &Value, env: &BTreeMap<String, String>) -> Vec<String> {
    ["command", "args"]
        .iter()
        .filter_map(|k| c.get(*k).and_then(Value::as_array))
        .flatten()
        .filter_map(Value::as_str)
        .map(|a| expand(a, env))
        .collect()
}

/// Append what `r` produces to the container's log, a line at a time.
async fn pump<R: AsyncRead + Unpin>(
    state: &ServerState,
    ns: &str,
    pod: &str,
    container: &str,
    r: R,
) {
    let mut reader = BufReader::new(r);
    let mut line = Vec::new();
    let mut total = 0usize;
    loop {
        line.clear();
        match reader.read_until(b'\n', &mut line).await {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                total += n;
                if total > LOG_CAP {
                    continue;
                }
                let text = String::from_utf8_lossy(&line);
                state.store_mut().append_log(ns, pod, container, &text);
                state.log_tick.send_modify(|t| *t += 1);
            }
        }
    }
}

/// Run one container to completion (or forever, for a non-elsadoctor image). Returns its exit
/// code, `None` when it does not end on its own.
async fn run_container(
    state: Arc<ServerState>,
    cfg: KubeletConfig,
    ns: String,
    pod: String,
    c: Value,
    ephemeral: bool,
) {
    let name = str_of(&c, &["name"]).unwrap_or_default().to_string();
    let env = match resolve_env(&state, &ns, &c) {
        Ok(env) => env,
        Err(message) => {
            let mut cs = base_status(&c, &ns, &pod);
            if let Some(m) = cs.as_object_mut() {
                m.remove("containerID");
                m.insert(
                    "state".into(),
                    json!({"waiting": {"reason": "CreateContainerConfigError", "message": message}}),
                );
            }
            update_pod(&state, &ns, &pod, |p| set_status(p, ephemeral, cs));
            return;
        }
    };
    let argv = argv_of(&c, &env);
    let started_at = now();
    let mut running = base_status(&c, &ns, &pod);
    if let Some(m) = running.as_object_mut() {
        m.insert("ready".into(), json!(!ephemeral));
        m.insert("started".into(), json!(true));
        m.insert(
            "state".into(),
            json!({"running": {"startedAt": started_at}}),
        );
    }
    let is_elsadoctor = argv
        .first()
        .is_some_and(|a| a.rsplit('/').next() == Some("elsadoctor"));
    if !is_elsadoctor {
        update_pod(&state, &ns, &pod, |p| set_status(p, ephemeral, running));
        std::future::pending::<()>().await;
        return;
    }
    let mut cmd = tokio::process::Command::new(&cfg.exe);
    cmd.args(&argv[1..])
        .env_clear()
        .env(
            "PATH",
            "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        )
        .env("HOSTNAME", &pod)
        .envs(&env)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    if let Some(root) = &cfg.probe_root {
        cmd.env("ELSADOCTOR_PROBE_ROOT", root);
    }
    if let Some(resolv) = &cfg.resolv_conf {
        cmd.env("ELSADOCTOR_PROBE_RESOLV_CONF", resolv);
    } else if let Some(network) = &state.network {
        // The pod's resolv.conf points at the simulated cluster DNS.
        match network.resolv_conf(&ns) {
            Ok(path) => {
                cmd.env("ELSADOCTOR_PROBE_RESOLV_CONF", path);
            }
            Err(e) => tracing::warn!("cannot write the simulated pod's resolv.conf: {e}"),
        }
    }
    let mut child = match cmd.spawn() {
        Ok(ch) => ch,
        Err(e) => {
            let mut cs = base_status(&c, &ns, &pod);
            if let Some(m) = cs.as_object_mut() {
                m.insert("state".into(), json!({"terminated": {
                    "exitCode": 128, "reason": "StartError",
                    "message": format!("failed to create containerd task: exec: \"{}\": {e}", cfg.exe.display()),
                    "startedAt": "1970-01-01T00:00:00Z", "finishedAt": now(),
                    "containerID": container_id(&ns, &pod, &name)}}));
            }
            update_pod(&state, &ns, &pod, |p| set_status(p, ephemeral, cs));
            return;
        }
    };
    update_pod(&state, &ns, &pod, |p| set_status(p, ephemeral, running));
    let stdout = child.stdout.take();
    let stderr = child.stderr.take();
    let out = async {
        if let Some(r) = stdout {
            pump(&state, &ns, &pod, &name, r).await;
        }
    };
    let err = async {
        if let Some(r) = stderr {
            pump(&state, &ns, &pod, &name, r).await;
        }
    };
    let (_, _, waited) = tokio::join!(out, err, child.wait());
    let code = match waited {
        Ok(s) => s.code().unwrap_or_else(|| {
            #[cfg(unix)]
            {
                use std::os::unix::process::ExitStatusExt;
                128 + s.signal().unwrap_or(9)
            }
            #[cfg(not(unix))]
            {
                137
            }
        }),
        Err(_) => 128,
    };
    let mut cs = base_status(&c, &ns, &pod);
    let policy = pods_def()
        .and_then(|def| state.store().get(def, &ns, &pod))
        .and_then(|p| str_of(&p, &["spec", "restartPolicy"]).map(str::to_string));
    let restart_always = policy.is_none_or(|r| r == "Always");
    let terminated = json!({
        "exitCode": code,
        "reason": if code == 0 { "Completed" } else { "Error" },
        "startedAt": started_at, "finishedAt": now(),
        "containerID": container_id(&ns, &pod, &name)
    });
    if let Some(m) = cs.as_object_mut() {
        if restart_always && !ephemeral {
            m.insert("lastState".into(), json!({"terminated": terminated}));
            m.insert(
                "state".into(),
                json!({"waiting": {"reason": "CrashLoopBackOff", "message": format!("back-off 10s restarting failed container={name} pod={pod}")}}),
            );
        } else {
            m.insert("state".into(), json!({"terminated": terminated}));
        }
    }
    update_pod(&state, &ns, &pod, |p| set_status(p, ephemeral, cs));
}

/// Start a created pod's containers, enforcing `activeDeadlineSeconds`.
pub fn start_pod(state: &Arc<ServerState>, cfg: &KubeletConfig, pod: &Value) {
    let ns = str_of(pod, &["metadata", "namespace"])
        .unwrap_or_default()
        .to_string();
    let name = str_of(pod, &["metadata", "name"])
        .unwrap_or_default()
        .to_string();
    let containers: Vec<Value> = pod
        .pointer("/spec/containers")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let deadline = pod
        .pointer("/spec/activeDeadlineSeconds")
        .and_then(Value::as_u64)
        .map(Duration::from_secs);
    let (st, c2, ns2, name2) = (state.clone(), cfg.clone(), ns.clone(), name.clone());
    let task = tokio::spawn(async move {
        let all =
            futures::future::join_all(containers.into_iter().map(|c| {
                run_container(st.clone(), c2.clone(), ns2.clone(), name2.clone(), c, false)
            }));
        let Some(limit) = deadline else {
            all.await;
            return;
        };
        if tokio::time::timeout(limit, all).await.is_ok() {
            return;
        }
        // The deadline passed: the children were killed with their futures.
        let at = now();
        update_pod(&st, &ns2, &name2, |p| {
            let list = p
                .pointer_mut("/status/containerStatuses")
                .and_then(Value::as_array_mut);
            for cs in list.into_iter().flatten() {
                if cs.pointer("/state/terminated").is_some() {
                    continue;
                }
                let started = cs
                    .pointer("/state/running/startedAt")
                    .cloned()
                    .unwrap_or(json!(null));
                let id = cs.get("containerID").cloned().unwrap_or(json!(""));
                let m = map_mut(cs);
                m.insert("ready".into(), json!(false));
                m.insert("started".into(), json!(false));
                m.insert(
                    "state".into(),
                    json!({"terminated": {
                    "exitCode": 137, "reason": "Error", "startedAt": started,
                    "finishedAt": at, "containerID": id}}),
                );
            }
            let s = map_mut(map_mut(p).entry("status").or_insert_with(|| json!({})));
            s.insert("phase".into(), json!("Failed"));
            s.insert("reason".into(), json!("DeadlineExceeded"));
            s.insert(
                "message".into(),
                json!("Pod was active on the node longer than the specified deadline"),
            );
        });
    });
    state.processes.add(&ns, &name, task.abort_handle());
}

/// A reference as containerd resolves it: a first component without `.` or `:` (and not
/// `localhost`) is a Docker Hub repository, under `library/` when it has no `/`.
fn fully_qualified(image: &str) -> String {
    let first = image.split('/').next().unwrap_or_default();
    let has_registry =
        image.contains('/') && (first.contains('.') || first.contains(':') || first == "localhost");
    let named = if has_registry {
        image.to_string()
    } else if image.contains('/') {
        format!("docker.io/{image}")
    } else {
        format!("docker.io/library/{image}")
    };
    let last = named.rsplit('/').next().unwrap_or_default();
    if last.contains(':') || last.contains('@') {
        named
    } else {
        format!("{named}:latest")
    }
}

/// The scheduler's and the kubelet's verdicts on a created pod that will not run, written to
/// its status as they write them (`createdPods:` of `sim.yaml`; without a kubelet stand-in,
/// the kubelet's `CreateContainerConfigError` for an environment it cannot resolve). `true`
/// when the pod is not to be started.
pub fn hold_pod(state: &Arc<ServerState>, pod: &Value) -> bool {
    let ns = str_of(pod, &["metadata", "namespace"])
        .unwrap_or_default()
        .to_string();
    let name = str_of(pod, &["metadata", "name"])
        .unwrap_or_default()
        .to_string();
    let created = &state.created_pods;
    if created.no_scheduler {
        return true;
    }
    if let Some(message) = created.unschedulable.clone() {
        let st = state.clone();
        tokio::spawn(async move {
            update_pod(&st, &ns, &name, |p| {
                let s = map_mut(map_mut(p).entry("status").or_insert_with(|| json!({})));
                s.insert(
                    "conditions".into(),
                    json!([{"type": "PodScheduled", "status": "False", "lastProbeTime": null,
                        "lastTransitionTime": now(), "reason": "Unschedulable", "message": message}]),
                );
            });
        });
        return true;
    }
    let containers: Vec<Value> = pod
        .pointer("/spec/containers")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let unpullable: Vec<Value> = containers
        .iter()
        .filter(|c| {
            str_of(c, &["image"]).is_some_and(|i| created.unpullable.iter().any(|u| u == i))
        })
        .cloned()
        .collect();
    if !unpullable.is_empty() {
        let st = state.clone();
        tokio::spawn(async move {
            for c in &unpullable {
                let image = str_of(c, &["image"]).unwrap_or_default();
                let full = fully_qualified(image);
                let pull = format!(
                    "failed to pull and unpack image \"{full}\": failed to resolve reference \"{full}\": pull access denied, repository does not exist or may require authorization: server message: insufficient_scope: authorization failed"
                );
                let err = format!("rpc error: code = Unknown desc = {pull}");
                let backoff = format!("Back-off pulling image \"{image}\": ErrImagePull: {err}");
                for (reason, message) in [("ErrImagePull", err), ("ImagePullBackOff", backoff)] {
                    let mut cs = creating_status(c);
                    map_mut(&mut cs).insert(
                        "state".into(),
                        json!({"waiting": {"reason": reason, "message": message}}),
                    );
                    update_pod(&st, &ns, &name, |p| set_status(p, false, cs));
                }
            }
        });
        return true;
    }
    if state.kubelet.is_some() {
        return false;
    }
    // No stand-in runs the containers, but the kubelet's first step still happens: building
    // each container's environment.
    let st = state.clone();
    tokio::spawn(async move {
        for c in &containers {
            if let Err(message) = resolve_env(&st, &ns, c) {
                let mut cs = creating_status(c);
                map_mut(&mut cs).insert(
                    "state".into(),
                    json!({"waiting": {"reason": "CreateContainerConfigError", "message": message}}),
                );
                update_pod(&st, &ns, &name, |p| set_status(p, false, cs));
            }
        }
    });
    true
}

/// Start one ephemeral container of a pod.
pub fn start_ephemeral(
    state: &Arc<ServerState>,
    cfg: &KubeletConfig,
    ns: &str,
    pod: &str,
    c: Value,
) {
    let task = tokio::spawn(run_container(
        state.clone(),
        cfg.clone(),
        ns.to_string(),
        pod.to_string(),
        c,
        true,
    ));
    state.processes.add(ns, pod, task.abort_handle());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_resolve_like_containerd() {
        assert_eq!(
            fully_qualified("elsadoctor:0.1.0"),
            "docker.io/library/elsadoctor:0.1.0"
        );
        assert_eq!(fully_qualified("example/x"), "docker.io/example/x:latest");
        assert_eq!(
            fully_qualified("registry.example.com:5000/team/x:1"),
            "registry.example.com:5000/team/x:1"
        );
        assert_eq!(fully_qualified("localhost/x:2"), "localhost/x:2");
    }

    #[test]
    fn expansion_follows_the_kubelet() {
        let vars: BTreeMap<String, String> = [("A", "1"), ("PW", "s3cr$t")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        assert_eq!(expand("x=$(A);p=$(PW)", &vars), "x=1;p=s3cr$t");
        assert_eq!(expand("$(MISSING)", &vars), "$(MISSING)");
        assert_eq!(expand("$$(A) $$ $x $", &vars), "$(A) $ $x $");
        assert_eq!(expand("open $(A", &vars), "open $(A");
        assert_eq!(expand("é$(A)é", &vars), "é1é");
    }
}
