//! `pods/exec`, pod create/delete with the kubelet stand-in, and ephemeral containers on the
//! simulated API server, driven through `elsadoctor::gather::pod` (kube-rs's real
//! `Api::<Pod>::exec` and `logs`) and a raw tokio-tungstenite client for the protocol details
//! kube-rs does not choose (`v4.channel.k8s.io`, refused subprotocols).

use std::time::Duration;

use elsadoctor::facts::Probe;
use elsadoctor::gather::pod::{ExecOutput, exec, logs};
use elsadoctor_sim::{Scenario, SimServer, Transport};
use futures::StreamExt;
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;

const NS: &str = "elsa";
const ELSA_POD: &str = "elsa-server-0";
const WITHIN: Duration = Duration::from_secs(20);

const MANIFESTS: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: elsa-server, namespace: elsa}
spec:
  replicas: 1
  selector: {matchLabels: {app: elsa-server}}
  template:
    metadata: {labels: {app: elsa-server}}
    spec:
      containers:
        - name: elsa-server
          image: elsaworkflows/elsa-server-v3-5:3.5.3
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: custom, namespace: elsa}
spec:
  replicas: 1
  selector: {matchLabels: {app: custom}}
  template:
    metadata: {labels: {app: custom}}
    spec:
      containers:
        - name: app
          image: registry.example/elsa-custom:1.0
        - name: sidecar
          image: busybox:1.36
"#;

const SIM: &str = r#"
namespace: elsa
images:
  registry.example/elsa-custom:
    shell: false
    files: [/app/Custom.Server.dll]
pods:
  - workload: deployment/elsa-server
    name: elsa-server-0
    files: [/app/App_Data/elsa.sqlite.db, {path: /app/App_Data/elsa.sqlite.db-wal, size: 4096}]
  - {workload: deployment/elsa-server, name: elsa-server-done, phase: Succeeded}
  - {workload: deployment/custom, name: custom-0}
"#;

fn scenario(extra: &str) -> Scenario {
    Scenario::from_documents("exec", MANIFESTS, Some(&format!("{SIM}{extra}")))
        .unwrap_or_else(|e| panic!("{e}"))
}

async fn client(server: &SimServer) -> Client {
    let kubeconfig = Kubeconfig::from_yaml(&server.kubeconfig_yaml()).expect("kubeconfig parses");
    let config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .expect("config");
    Client::try_from(config).expect("client")
}

fn argv(a: &[&str]) -> Vec<String> {
    a.iter().map(|s| (*s).to_string()).collect()
}

async fn run(server: &SimServer, pod: &str, container: &str, a: &[&str]) -> Probe<ExecOutput> {
    exec(
        client(server).await,
        NS.into(),
        pod.into(),
        container.into(),
        argv(a),
        WITHIN,
    )
    .await
}

fn observed(p: Probe<ExecOutput>) -> ExecOutput {
    match p {
        Probe::Observed(o) => o,
        other => panic!("expected output, got {other:?}"),
    }
}

/// What the doctor sends to find the assemblies and SQLite files.
fn doctor_script(sqlite: &[&str]) -> String {
    let mut paths = Vec::new();
    for p in sqlite {
        paths.push((*p).to_string());
        paths.push(format!("{p}-wal"));
        paths.push(format!("{p}-shm"));
    }
    format!(
        "ls -1d -- /app/*.dll {} 2>/dev/null; echo \"elsadoctor:ls=$?\"",
        paths.join(" ")
    )
}

#[tokio::test]
async fn the_doctors_ls_script_against_the_stock_3_5_image() {
    let server = SimServer::start(scenario("")).await.expect("server starts");
    let script = doctor_script(&["/app/App_Data/elsa.sqlite.db"]);
    let out = observed(run(&server, ELSA_POD, "elsa-server", &["sh", "-c", &script]).await);
    assert_eq!(
        out.stdout,
        "/app/App_Data/elsa.sqlite.db\n/app/App_Data/elsa.sqlite.db-wal\n\
         /app/Elsa.EntityFrameworkCore.PostgreSql.dll\n/app/Elsa.EntityFrameworkCore.Sqlite.dll\n\
         /app/Elsa.Server.Web.dll\n/app/Elsa.Workflows.Core.dll\n/app/Elsa.dll\n\
         /app/Microsoft.Data.Sqlite.dll\n/app/Npgsql.EntityFrameworkCore.PostgreSQL.dll\n\
         /app/Npgsql.dll\nelsadoctor:ls=2\n"
    );
    assert_eq!(out.stderr, "");
    assert_eq!(out.exit_code, Some(0));
    // The request log shows the upgrade as `get pods/exec`.
    let log = server.requests();
    let r = log
        .iter()
        .find(|r| r.subresource.as_deref() == Some("exec"))
        .expect("exec logged");
    assert_eq!((r.verb.as_str(), r.status), ("get", 101));
}

#[tokio::test]
async fn exit_codes_and_stderr() {
    let server = SimServer::start(scenario("")).await.expect("server starts");
    let out = observed(
        run(
            &server,
            ELSA_POD,
            "elsa-server",
            &["sh", "-c", "echo out; ls /nope; exit 3"],
        )
        .await,
    );
    assert_eq!(out.stdout, "out\n");
    assert_eq!(
        out.stderr,
        "ls: cannot access '/nope': No such file or directory\n"
    );
    assert_eq!(out.exit_code, Some(3));
    let out = observed(run(&server, ELSA_POD, "elsa-server", &["sh", "-c", "psql"]).await);
    assert_eq!(
        (out.stderr.as_str(), out.exit_code),
        ("sh: 1: psql: not found\n", Some(127))
    );
    // argv without a shell.
    let out = observed(run(&server, ELSA_POD, "elsa-server", &["ls", "/app/Npgsql.dll"]).await);
    assert_eq!(
        (out.stdout.as_str(), out.exit_code),
        ("/app/Npgsql.dll\n", Some(0))
    );
}

#[tokio::test]
async fn an_image_without_a_shell() {
    let server = SimServer::start(scenario("")).await.expect("server starts");
    match run(&server, "custom-0", "app", &["sh", "-c", "ls /app"]).await {
        Probe::Failed(f) => {
            assert!(f.reason.starts_with("no shell:"), "{}", f.reason);
            assert!(
                f.reason.contains("executable file not found in $PATH"),
                "{}",
                f.reason
            );
        }
        other => panic!("expected a failure, got {other:?}"),
    }
    // The sidecar (no declaration: a minimal image) has one.
    let out = observed(
        run(
            &server,
            "custom-0",
            "sidecar",
            &["sh", "-c", "ls -d /bin/sh"],
        )
        .await,
    );
    assert_eq!(out.stdout, "/bin/sh\n");
}

#[tokio::test]
async fn refusals_from_the_api_server() {
    let server = SimServer::start(scenario("")).await.expect("server starts");
    assert_eq!(
        run(&server, "nope", "elsa-server", &["true"]).await,
        Probe::Absent
    );
    match run(&server, ELSA_POD, "nope", &["true"]).await {
        Probe::Failed(f) => {
            assert_eq!(f.code, Some(400));
            assert!(
                f.reason
                    .contains("container nope is not valid for pod elsa-server-0"),
                "{}",
                f.reason
            );
        }
        other => panic!("expected a failure, got {other:?}"),
    }
    // A plain GET is not an upgrade.
    let req = axum::http::Request::get(format!(
        "/api/v1/namespaces/{NS}/pods/{ELSA_POD}/exec?command=true&stdout=true"
    ))
    .body(Vec::new())
    .expect("request");
    match client(&server).await.request_text(req).await {
        Err(kube::Error::Api(s)) => {
            assert_eq!(
                (s.code, s.message.as_str()),
                (400, "Upgrade request required")
            )
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    match run(&server, "elsa-server-done", "elsa-server", &["true"]).await {
        Probe::Failed(f) => assert!(f.reason.contains("completed pod"), "{}", f.reason),
        other => panic!("expected a failure, got {other:?}"),
    }
}

#[tokio::test]
async fn rbac_get_then_create_from_1_35() {
    let deny_get = "rbac:\n  deny: [{verb: get, resource: pods/exec}]\n";
    let server = SimServer::start(scenario(deny_get))
        .await
        .expect("server starts");
    assert_eq!(
        run(&server, ELSA_POD, "elsa-server", &["true"]).await,
        Probe::Forbidden {
            verb: "get".into(),
            resource: "pods/exec".into()
        }
    );
    let deny_create = "version: {minor: \"35\"}\nrbac:\n  deny: [{verb: create, resource: pods, subresource: exec}]\n";
    let server = SimServer::start(scenario(deny_create))
        .await
        .expect("server starts");
    assert_eq!(
        run(&server, ELSA_POD, "elsa-server", &["true"]).await,
        Probe::Forbidden {
            verb: "create".into(),
            resource: "pods/exec".into()
        }
    );
    // Before 1.35 a denied `create` does not matter for a WebSocket upgrade.
    let old = SimServer::start(scenario(
        "rbac:\n  deny: [{verb: create, resource: pods/exec}]\n",
    ))
    .await
    .expect("server starts");
    let out = observed(run(&old, ELSA_POD, "elsa-server", &["true"]).await);
    assert_eq!(out.exit_code, Some(0));
}

type Ws = tokio_tungstenite::WebSocketStream<TcpStream>;

async fn raw_exec(
    server: &SimServer,
    query: &str,
    protocols: &str,
) -> Result<(Ws, Option<String>), tokio_tungstenite::tungstenite::Error> {
    let url = format!(
        "ws://{}/api/v1/namespaces/{NS}/pods/{ELSA_POD}/exec?{query}",
        server.addr()
    );
    let mut req = url.into_client_request()?;
    req.headers_mut().insert(
        "Authorization",
        HeaderValue::from_str(&format!("Bearer {}", server.token())).expect("header"),
    );
    req.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        HeaderValue::from_str(protocols).expect("header"),
    );
    let tcp = TcpStream::connect(server.addr()).await.expect("tcp");
    let (ws, resp) = tokio_tungstenite::client_async(req, tcp).await?;
    let proto = resp
        .headers()
        .get("Sec-WebSocket-Protocol")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    Ok((ws, proto))
}

/// Every binary frame until the server closes.
async fn frames(mut ws: Ws) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let msg = tokio::time::timeout(WITHIN, ws.next())
            .await
            .expect("in time");
        match msg {
            Some(Ok(Message::Binary(b))) => out.push(b.to_vec()),
            Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return out,
            Some(Ok(_)) => {}
        }
    }
}

#[tokio::test]
async fn v4_and_v5_frames() {
    let server = SimServer::start_with(scenario(""), Transport::Plain)
        .await
        .expect("server starts");
    let q = "command=sh&command=-c&command=echo%20hi%3B%20exit%205&container=elsa-server&stdout=true&stderr=true";
    let (ws, proto) = raw_exec(&server, q, "v4.channel.k8s.io").await.expect("v4");
    assert_eq!(proto.as_deref(), Some("v4.channel.k8s.io"));
    let f = frames(ws).await;
    assert!(f.contains(&b"\x01hi\n".to_vec()), "{f:?}");
    assert!(
        !f.iter().any(|m| m.first() == Some(&255)),
        "no close signal in v4"
    );
    let status = f.iter().find(|m| m.len() > 1 && m[0] == 3).expect("status");
    let v: serde_json::Value = serde_json::from_slice(&status[1..]).expect("json status");
    assert_eq!(v["reason"], "NonZeroExitCode");
    assert_eq!(v["details"]["causes"][0]["reason"], "ExitCode");
    assert_eq!(v["details"]["causes"][0]["message"], "5");

    let q = "command=true&stdout=true";
    let (ws, proto) = raw_exec(&server, q, "v5.channel.k8s.io, v4.channel.k8s.io")
        .await
        .expect("v5");
    assert_eq!(proto.as_deref(), Some("v5.channel.k8s.io"));
    let f = frames(ws).await;
    assert!(f.contains(&vec![255, 1]), "stdout closed: {f:?}");
    assert!(f.contains(&b"\x03{\"metadata\":{},\"status\":\"Success\"}".to_vec()));

    // An unsupported subprotocol is refused with a Status.
    match raw_exec(&server, q, "v3.channel.k8s.io").await {
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => {
            assert_eq!(resp.status().as_u16(), 400);
            let body: serde_json::Value =
                serde_json::from_slice(resp.body().as_deref().unwrap_or_default())
                    .expect("a Status body");
            assert_eq!(body["kind"], "Status");
        }
        other => panic!("expected a refusal, got {:?}", other.map(|(_, p)| p)),
    }
}

#[tokio::test]
async fn logs_current_and_missing_previous() {
    let extra = "  - workload: deployment/custom\n    name: custom-logs\n    logs: {app: \"line 1\\nline 2\\nline 3\\n\"}\n";
    let server = SimServer::start(scenario(extra))
        .await
        .expect("server starts");
    let c = client(&server).await;
    let text = logs(
        c.clone(),
        NS.into(),
        "custom-logs".into(),
        "app".into(),
        false,
        2,
        WITHIN,
    )
    .await;
    assert_eq!(text, Probe::Observed("line 2\nline 3\n".to_string()));
    let prev = logs(
        c.clone(),
        NS.into(),
        "custom-logs".into(),
        "app".into(),
        true,
        10,
        WITHIN,
    )
    .await;
    assert_eq!(prev, Probe::Absent);
    let missing = logs(c, NS.into(), "nope".into(), "app".into(), false, 10, WITHIN).await;
    assert_eq!(missing, Probe::Absent);
}

// ---------------------------------------------------------------------------------------------
// Pod create/delete and the kubelet stand-in
// ---------------------------------------------------------------------------------------------

use elsadoctor_sim::KubeletConfig;
use futures::TryStreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{
    Api, DeleteParams, ListParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams,
};
use tokio::io::AsyncReadExt;
use tokio::net::TcpListener;

const RUNTIME_MANIFESTS: &str = r#"
apiVersion: v1
kind: Namespace
metadata: {name: elsa}
"#;

fn stand_in(extra_manifests: &str, sim: &str) -> Scenario {
    Scenario::from_documents(
        "standin",
        &format!("{RUNTIME_MANIFESTS}{extra_manifests}"),
        Some(&format!("namespace: elsa\n{sim}")),
    )
    .unwrap_or_else(|e| panic!("{e}"))
    .with_kubelet(KubeletConfig::new(env!("CARGO_BIN_EXE_elsadoctor")))
}

fn pod(name: &str, v: serde_json::Value) -> Pod {
    let mut p = serde_json::json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": "probe"}},
        "spec": {"restartPolicy": "Never"}
    });
    if let (Some(spec), Some(extra)) = (p["spec"].as_object_mut(), v.as_object()) {
        for (k, val) in extra {
            spec.insert(k.clone(), val.clone());
        }
    }
    serde_json::from_value(p).expect("a pod")
}

/// Watch pod `name` until `done` holds (initial state included).
async fn wait_for(api: &Api<Pod>, name: &str, done: impl Fn(&Pod) -> bool) -> Pod {
    let wp = WatchParams::default().fields(&format!("metadata.name={name}"));
    let stream = api.watch(&wp, "0").await.expect("watch");
    futures::pin_mut!(stream);
    tokio::time::timeout(WITHIN, async {
        while let Some(ev) = stream.try_next().await.expect("watch event") {
            if let WatchEvent::Added(p) | WatchEvent::Modified(p) = ev
                && done(&p)
            {
                return p;
            }
        }
        panic!("watch ended before the pod got there");
    })
    .await
    .expect("in time")
}

fn phase(p: &Pod) -> &str {
    p.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or("")
}

fn exit_code(p: &Pod) -> Option<i32> {
    p.status
        .as_ref()?
        .container_statuses
        .as_ref()?
        .first()?
        .state
        .as_ref()?
        .terminated
        .as_ref()
        .map(|t| t.exit_code)
}

async fn pod_logs(server: &SimServer, pod: &str, container: &str) -> String {
    match logs(
        client(server).await,
        NS.into(),
        pod.into(),
        container.into(),
        false,
        100,
        WITHIN,
    )
    .await
    {
        Probe::Observed(t) => t,
        other => panic!("expected logs, got {other:?}"),
    }
}

#[tokio::test]
async fn a_created_pod_runs_elsadoctor_to_completion() {
    let server = SimServer::start(stand_in("", ""))
        .await
        .expect("server starts");
    let api: Api<Pod> = Api::namespaced(client(&server).await, NS);
    let spec = serde_json::json!({"containers": [{"name": "probe", "image": "elsadoctor:dev", "command": ["elsadoctor"], "args": ["--version"]}]});
    let created = api
        .create(&PostParams::default(), &pod("probe-ok", spec.clone()))
        .await
        .expect("created");
    assert!(created.metadata.uid.is_some());
    assert!(created.metadata.creation_timestamp.is_some());
    assert!(created.metadata.resource_version.is_some());
    assert_eq!(phase(&created), "Pending");
    let done = wait_for(&api, "probe-ok", |p| phase(p) == "Succeeded").await;
    assert_eq!(exit_code(&done), Some(0));
    assert!(
        pod_logs(&server, "probe-ok", "probe")
            .await
            .contains("elsadoctor 0.1.0")
    );
    // Same name again: 409 AlreadyExists.
    match api
        .create(&PostParams::default(), &pod("probe-ok", spec))
        .await
    {
        Err(kube::Error::Api(s)) => assert_eq!((s.code, s.reason.as_str()), (409, "AlreadyExists")),
        other => panic!("expected AlreadyExists, got {other:?}"),
    }
    // A failing command: Failed, exit code and stderr in the log.
    let spec = serde_json::json!({"containers": [{"name": "probe", "image": "elsadoctor:dev", "command": ["/usr/local/bin/elsadoctor", "explain", "nope"]}]});
    api.create(&PostParams::default(), &pod("probe-fail", spec))
        .await
        .expect("created");
    let done = wait_for(&api, "probe-fail", |p| phase(p) == "Failed").await;
    assert_eq!(exit_code(&done), Some(2));
    assert!(
        pod_logs(&server, "probe-fail", "probe")
            .await
            .contains("unknown check \"nope\"")
    );
    let verbs: Vec<String> = server
        .requests()
        .iter()
        .filter(|r| r.resource == "pods" && r.method == "POST")
        .map(|r| format!("{} {}", r.verb, r.status))
        .collect();
    assert_eq!(verbs, ["create 201", "create 409", "create 201"]);
}

#[tokio::test]
async fn validation_like_the_api_server() {
    let server = SimServer::start(stand_in("", ""))
        .await
        .expect("server starts");
    let api: Api<Pod> = Api::namespaced(client(&server).await, NS);
    let no_containers = pod("x", serde_json::json!({"containers": []}));
    match api.create(&PostParams::default(), &no_containers).await {
        Err(kube::Error::Api(s)) => {
            assert_eq!((s.code, s.reason.as_str()), (422, "Invalid"));
            assert_eq!(
                s.message,
                "Pod \"x\" is invalid: spec.containers: Required value"
            );
        }
        other => panic!("expected Invalid, got {other:?}"),
    }
    let no_image = pod("x", serde_json::json!({"containers": [{"name": "a"}]}));
    match api.create(&PostParams::default(), &no_image).await {
        Err(kube::Error::Api(s)) => assert!(
            s.message
                .contains("spec.containers[0].image: Required value")
        ),
        other => panic!("expected Invalid, got {other:?}"),
    }
    // generateName.
    let mut generated = pod(
        "",
        serde_json::json!({"containers": [{"name": "a", "image": "busybox"}]}),
    );
    generated.metadata.name = None;
    generated.metadata.generate_name = Some("elsadoctor-probe-".into());
    let created = api
        .create(&PostParams::default(), &generated)
        .await
        .expect("created");
    let name = created.metadata.name.expect("a name");
    assert!(name.starts_with("elsadoctor-probe-") && name.len() == "elsadoctor-probe-".len() + 5);
    // A non-elsadoctor image just runs.
    let running = wait_for(&api, &name, |p| phase(p) == "Running").await;
    assert_eq!(exit_code(&running), None);
    assert_eq!(pod_logs(&server, &name, "a").await, "");
}

/// A TCP server that accepts and never answers: an elsadoctor run pointed at it hangs until it
/// is killed, which closes the connection.
async fn blackhole() -> (TcpListener, String) {
    let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = l.local_addr().expect("addr");
    (l, format!("http://{addr}"))
}

/// A kubeconfig for `server_url` in `dir`, and a ConfigMap holding its path.
fn hanging_config(dir: &std::path::Path, server_url: &str) -> String {
    let path = dir.join("kubeconfig");
    std::fs::write(
        &path,
        format!("apiVersion: v1\nkind: Config\nclusters: [{{name: c, cluster: {{server: \"{server_url}\"}}}}]\nusers: [{{name: u, user: {{token: t}}}}]\ncontexts: [{{name: c, context: {{cluster: c, user: u, namespace: elsa}}}}]\ncurrent-context: c\n"),
    )
    .expect("write kubeconfig");
    format!(
        "---\napiVersion: v1\nkind: ConfigMap\nmetadata: {{name: probe-cfg, namespace: elsa}}\ndata: {{path: \"{p}\"}}\n---\napiVersion: v1\nkind: Secret\nmetadata: {{name: probe-secret, namespace: elsa}}\nstringData: {{path: \"{p}\"}}\n",
        p = path.display()
    )
}

fn hanging_spec(deadline: Option<u64>) -> serde_json::Value {
    let mut v = serde_json::json!({"containers": [{
        "name": "probe", "image": "elsadoctor:dev",
        "command": ["elsadoctor"],
        "args": ["--kubeconfig", "$(KC)", "--timeout", "60s", "--deadline", "120s"],
        "env": [{"name": "KC", "valueFrom": {"configMapKeyRef": {"name": "probe-cfg", "key": "path"}}}]
    }]});
    if let (Some(d), Some(m)) = (deadline, v.as_object_mut()) {
        m.insert("activeDeadlineSeconds".into(), serde_json::json!(d));
    }
    v
}

/// The next connection to `l`, then wait for its peer to go away.
async fn accept(l: &TcpListener) -> TcpStream {
    tokio::time::timeout(WITHIN, l.accept())
        .await
        .expect("the child connects in time")
        .expect("accept")
        .0
}

async fn closed(mut conn: TcpStream) {
    let mut buf = vec![0u8; 4096];
    tokio::time::timeout(WITHIN, async {
        loop {
            match conn.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await
    .expect("the child's connection closes in time");
}

#[tokio::test]
async fn deleting_a_pod_kills_its_process() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (l, url) = blackhole().await;
    let server = SimServer::start(stand_in(&hanging_config(dir.path(), &url), ""))
        .await
        .expect("server starts");
    let api: Api<Pod> = Api::namespaced(client(&server).await, NS);
    api.create(&PostParams::default(), &pod("hang", hanging_spec(None)))
        .await
        .expect("created");
    // The child got `--kubeconfig $(KC)` expanded from the ConfigMap: it connects.
    let conn = accept(&l).await;
    let running = wait_for(&api, "hang", |p| phase(p) == "Running").await;
    assert_eq!(exit_code(&running), None);
    let deleted = api
        .delete("hang", &DeleteParams::default())
        .await
        .expect("deleted");
    assert!(
        deleted
            .left()
            .is_some_and(|p| p.metadata.deletion_timestamp.is_some())
    );
    closed(conn).await;
    assert!(api.get_opt("hang").await.expect("get").is_none());
}

#[tokio::test]
async fn active_deadline_seconds_kills_and_fails_the_pod() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (l, url) = blackhole().await;
    let server = SimServer::start(stand_in(&hanging_config(dir.path(), &url), ""))
        .await
        .expect("server starts");
    let api: Api<Pod> = Api::namespaced(client(&server).await, NS);
    // This time the path comes from a Secret key.
    let mut spec = hanging_spec(Some(1));
    spec["containers"][0]["env"] = serde_json::json!([{"name": "KC", "valueFrom": {"secretKeyRef": {"name": "probe-secret", "key": "path"}}}]);
    api.create(&PostParams::default(), &pod("slow", spec))
        .await
        .expect("created");
    let conn = accept(&l).await;
    let failed = wait_for(&api, "slow", |p| phase(p) == "Failed").await;
    let status = failed.status.as_ref().expect("status");
    assert_eq!(status.reason.as_deref(), Some("DeadlineExceeded"));
    assert_eq!(exit_code(&failed), Some(137));
    closed(conn).await;
}

#[tokio::test]
async fn stopping_the_server_kills_the_children() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (l, url) = blackhole().await;
    let server = SimServer::start(stand_in(&hanging_config(dir.path(), &url), ""))
        .await
        .expect("server starts");
    let api: Api<Pod> = Api::namespaced(client(&server).await, NS);
    api.create(&PostParams::default(), &pod("hang", hanging_spec(None)))
        .await
        .expect("created");
    let conn = accept(&l).await;
    server.shutdown().await;
    closed(conn).await;
}

#[tokio::test]
async fn missing_config_leaves_the_container_waiting() {
    let server = SimServer::start(stand_in("", ""))
        .await
        .expect("server starts");
    let api: Api<Pod> = Api::namespaced(client(&server).await, NS);
    api.create(&PostParams::default(), &pod("nocfg", hanging_spec(None)))
        .await
        .expect("created");
    let p = wait_for(&api, "nocfg", |p| {
        p.status
            .as_ref()
            .and_then(|s| s.container_statuses.as_ref())
            .and_then(|c| c.first())
            .and_then(|c| c.state.as_ref()?.waiting.as_ref()?.reason.clone())
            .as_deref()
            == Some("CreateContainerConfigError")
    })
    .await;
    assert_eq!(phase(&p), "Pending");
}

#[tokio::test]
async fn delete_collection_and_rbac() {
    let server = SimServer::start(stand_in(
        "",
        "rbac:\n  deny: [{verb: delete, resource: pods}, {verb: patch, resource: pods/ephemeralcontainers}]\n",
    ))
    .await
    .expect("server starts");
    let api: Api<Pod> = Api::namespaced(client(&server).await, NS);
    for n in ["a", "b"] {
        api.create(
            &PostParams::default(),
            &pod(
                n,
                serde_json::json!({"containers": [{"name": "c", "image": "busybox"}]}),
            ),
        )
        .await
        .expect("created");
    }
    match api.delete("a", &DeleteParams::default()).await {
        Err(kube::Error::Api(s)) => assert_eq!(s.code, 403),
        other => panic!("expected Forbidden, got {other:?}"),
    }
    let patch =
        serde_json::json!({"spec": {"ephemeralContainers": [{"name": "d", "image": "busybox"}]}});
    match api
        .patch_ephemeral_containers("a", &PatchParams::default(), &Patch::Strategic(patch))
        .await
    {
        Err(kube::Error::Api(s)) => assert_eq!(s.code, 403),
        other => panic!("expected Forbidden, got {other:?}"),
    }
    let gone = api
        .delete_collection(
            &DeleteParams::default(),
            &ListParams::default().labels("app=probe"),
        )
        .await
        .expect("deletecollection");
    let names: Vec<String> = gone
        .left()
        .map(|l| {
            l.items
                .into_iter()
                .filter_map(|p| p.metadata.name)
                .collect()
        })
        .unwrap_or_default();
    assert_eq!(names, ["a", "b"]);
    assert!(
        api.list(&ListParams::default())
            .await
            .expect("list")
            .items
            .is_empty()
    );
}

#[tokio::test]
async fn ephemeral_containers_run_and_stay() {
    let server = SimServer::start(stand_in("", ""))
        .await
        .expect("server starts");
    let api: Api<Pod> = Api::namespaced(client(&server).await, NS);
    api.create(
        &PostParams::default(),
        &pod(
            "app",
            serde_json::json!({"containers": [{"name": "app", "image": "busybox"}]}),
        ),
    )
    .await
    .expect("created");
    wait_for(&api, "app", |p| phase(p) == "Running").await;
    let patch = serde_json::json!({"spec": {"ephemeralContainers": [{
        "name": "doctor", "image": "elsadoctor:dev", "targetContainerName": "app",
        "command": ["elsadoctor", "--version"]}]}});
    let patched = api
        .patch_ephemeral_containers("app", &PatchParams::default(), &Patch::Strategic(patch))
        .await
        .expect("patched");
    assert_eq!(
        patched
            .spec
            .as_ref()
            .and_then(|s| s.ephemeral_containers.as_ref())
            .map(Vec::len),
        Some(1)
    );
    let done = wait_for(&api, "app", |p| {
        p.status
            .as_ref()
            .and_then(|s| s.ephemeral_container_statuses.as_ref())
            .and_then(|c| c.first())
            .and_then(|c| c.state.as_ref()?.terminated.as_ref())
            .is_some()
    })
    .await;
    assert_eq!(phase(&done), "Running");
    assert!(
        pod_logs(&server, "app", "doctor")
            .await
            .contains("elsadoctor 0.1.0")
    );
    // GET .../ephemeralcontainers returns the pod.
    let got = api.get_ephemeral_containers("app").await.expect("get");
    assert_eq!(got.metadata.name.as_deref(), Some("app"));
    // A JSON merge patch that drops it: 422.
    let drop_it = serde_json::json!({"spec": {"ephemeralContainers": []}});
    match api
        .patch_ephemeral_containers("app", &PatchParams::default(), &Patch::Merge(drop_it))
        .await
    {
        Err(kube::Error::Api(s)) => {
            assert_eq!((s.code, s.reason.as_str()), (422, "Invalid"));
            assert!(s.message.contains("may not be removed"), "{}", s.message);
        }
        other => panic!("expected Invalid, got {other:?}"),
    }
    // A second one by strategic merge keeps the first; exec reaches it once it runs, and a
    // finished one is not running any more.
    let patch = serde_json::json!({"spec": {"ephemeralContainers": [{"name": "debug", "image": "busybox"}]}});
    let patched = api
        .patch_ephemeral_containers("app", &PatchParams::default(), &Patch::Strategic(patch))
        .await
        .expect("patched");
    assert_eq!(
        patched
            .spec
            .as_ref()
            .and_then(|s| s.ephemeral_containers.as_ref())
            .map(Vec::len),
        Some(2)
    );
    wait_for(&api, "app", |p| {
        p.status
            .as_ref()
            .and_then(|s| s.ephemeral_container_statuses.as_ref())
            .is_some_and(|c| {
                c.iter().any(|c| {
                    c.name == "debug" && c.state.as_ref().is_some_and(|s| s.running.is_some())
                })
            })
    })
    .await;
    let out = observed(run(&server, "app", "debug", &["sh", "-c", "echo in-debug"]).await);
    assert_eq!(out.stdout, "in-debug\n");
    match run(&server, "app", "doctor", &["true"]).await {
        Probe::Failed(f) => assert!(f.reason.contains("container not found"), "{}", f.reason),
        other => panic!("expected a failure, got {other:?}"),
    }
}

#[tokio::test]
async fn following_a_running_containers_log() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (l, url) = blackhole().await;
    let server = SimServer::start(stand_in(&hanging_config(dir.path(), &url), ""))
        .await
        .expect("server starts");
    let api: Api<Pod> = Api::namespaced(client(&server).await, NS);
    let mut spec = hanging_spec(None);
    if let Some(args) = spec
        .pointer_mut("/containers/0/args")
        .and_then(|a| a.as_array_mut())
    {
        args.push(serde_json::json!("-vv"));
    }
    api.create(&PostParams::default(), &pod("chatty", spec))
        .await
        .expect("created");
    let conn = accept(&l).await;
    wait_for(&api, "chatty", |p| phase(p) == "Running").await;
    let lp = kube::api::LogParams {
        follow: true,
        ..kube::api::LogParams::default()
    };
    let stream = api.log_stream("chatty", &lp).await.expect("log stream");
    use futures::AsyncBufReadExt;
    let mut lines = stream.lines();
    let first = tokio::time::timeout(WITHIN, lines.try_next())
        .await
        .expect("a line in time")
        .expect("read");
    assert!(
        first.is_some_and(|l| l.contains("starting run")),
        "verbose start line"
    );
    api.delete("chatty", &DeleteParams::default())
        .await
        .expect("deleted");
    closed(conn).await;
    // The stream ends once the container is gone.
    tokio::time::timeout(WITHIN, async {
        while let Ok(Some(_)) = lines.try_next().await {}
    })
    .await
    .expect("the follow stream ends");
}

#[tokio::test]
async fn watches_see_creates_and_deletes_through_selectors() {
    let server = SimServer::start(stand_in("", ""))
        .await
        .expect("server starts");
    let api: Api<Pod> = Api::namespaced(client(&server).await, NS);
    let rv = api
        .list(&ListParams::default())
        .await
        .expect("list")
        .metadata
        .resource_version
        .expect("a resource version");
    let stream = api
        .watch(&WatchParams::default().labels("app=probe"), &rv)
        .await
        .expect("watch");
    futures::pin_mut!(stream);
    let mut other = pod(
        "other",
        serde_json::json!({"containers": [{"name": "c", "image": "busybox"}]}),
    );
    other.metadata.labels = Some([("app".to_string(), "other".to_string())].into());
    api.create(&PostParams::default(), &other)
        .await
        .expect("created");
    api.create(
        &PostParams::default(),
        &pod(
            "mine",
            serde_json::json!({"containers": [{"name": "c", "image": "busybox"}]}),
        ),
    )
    .await
    .expect("created");
    api.delete("mine", &DeleteParams::default())
        .await
        .expect("deleted");
    let mut seen = Vec::new();
    tokio::time::timeout(WITHIN, async {
        while let Some(ev) = stream.try_next().await.expect("event") {
            let (kind, p) = match ev {
                WatchEvent::Added(p) => ("ADDED", p),
                WatchEvent::Modified(p) => ("MODIFIED", p),
                WatchEvent::Deleted(p) => ("DELETED", p),
                _ => continue,
            };
            seen.push((kind, p.metadata.name.unwrap_or_default()));
            if kind == "DELETED" {
                return;
            }
        }
    })
    .await
    .expect("events in time");
    assert!(seen.iter().all(|(_, n)| n == "mine"), "{seen:?}");
    assert_eq!(seen.first().map(|(k, _)| *k), Some("ADDED"));
    assert_eq!(seen.last().map(|(k, _)| *k), Some("DELETED"));
}
