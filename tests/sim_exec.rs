//! `pods/exec`, pod create/delete with the kubelet stand-in, and ephemeral containers on the
//! simulated API server, driven through `elsadoctor::gather::pod` (kube-rs's real
//! `Api::<Pod>::exec` and `logs`) and a raw tokio-tungstenite client for the protocol details
//! kube-rs does not choose (`v4.channel.k8s.io`, refused subprotocols).

use std::time::Duration;

use elsadoctor::facts::Probe;
use elsadoctor::gather::pod::{ExecOutput, exec, logs};
use elsadoctor::sim::{Scenario, SimServer};
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
    let out = observed(run(&server, "custom-0", "sidecar", &["sh", "-c", "ls -d /bin/sh"]).await);
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
    let server = SimServer::start(scenario("")).await.expect("server starts");
    let q = "command=sh&command=-c&command=echo%20hi%3B%20exit%205&container=elsa-server&stdout=true&stderr=true";
    let (ws, proto) = raw_exec(&server, q, "v4.channel.k8s.io").await.expect("v4");
    assert_eq!(proto.as_deref(), Some("v4.channel.k8s.io"));
    let f = frames(ws).await;
    assert!(f.contains(&b"\x01hi\n".to_vec()), "{f:?}");
    assert!(!f.iter().any(|m| m.first() == Some(&255)), "no close signal in v4");
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
