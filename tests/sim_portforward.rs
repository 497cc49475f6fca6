//! `pods/portforward` on the simulated API server, driven by kube-rs's real
//! `Api::<Pod>::portforward` (WebSocket, `v4.channel.k8s.io`) and by a raw
//! tokio-tungstenite client for the protocol details kube-rs does not exercise:
//! bytes both ways to real TCP servers, several ports on one connection, the
//! kubelet's error-channel text for ports nothing listens on, the API server's
//! and kubelet's refusals, RBAC (`get`, and `create` from 1.35), faults, the
//! request log and shutdown.

use std::net::SocketAddr;
use std::time::Duration;

use elsadoctor_sim::{Scenario, SimServer, Transport};
use futures::{SinkExt, StreamExt};
use k8s_openapi::api::core::v1::Pod;
use kube::api::Api;
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::{Bytes, Message};

const NS: &str = "elsa";
const POD: &str = "postgres-5b8f4c9d7-tq2zl";
/// Generous bound for anything that should take milliseconds.
const WITHIN: Duration = Duration::from_secs(20);

const MANIFESTS: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: postgres, namespace: elsa}
spec:
  replicas: 1
  selector: {matchLabels: {app: postgres}}
  template:
    metadata: {labels: {app: postgres}}
    spec:
      containers:
        - name: postgres
          image: postgres:16
          ports: [{containerPort: 5432}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: other, namespace: elsa}
spec:
  replicas: 1
  selector: {matchLabels: {app: other}}
  template:
    metadata: {labels: {app: other}}
    spec:
      containers: [{name: app, image: busybox}]
"#;

/// `sim.yaml` for [`MANIFESTS`] plus `extra` (more top-level keys).
fn sim_yaml(extra: &str) -> String {
    format!(
        "namespace: elsa\npods:\n  - {{workload: deployment/postgres, name: {POD}}}\n  - {{workload: deployment/other, name: unscheduled-0, phase: Pending, scheduled: false}}\n  - {{workload: deployment/other, name: creating-0, phase: Pending}}\n  - {{workload: deployment/other, name: pulling-0, phase: Pending, containers: {{app: {{waiting: {{reason: ImagePullBackOff}}}}}}}}\n  - {{workload: deployment/other, name: done-0, phase: Succeeded}}\n{extra}"
    )
}

fn scenario(extra: &str) -> Scenario {
    Scenario::from_documents("portforward", MANIFESTS, Some(&sim_yaml(extra)))
        .unwrap_or_else(|e| panic!("{e}"))
}

async fn client(server: &SimServer) -> Client {
    let kubeconfig = Kubeconfig::from_yaml(&server.kubeconfig_yaml()).expect("kubeconfig parses");
    let config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .expect("config");
    Client::try_from(config).expect("client")
}

/// A cleartext server, for the tests that speak the raw WebSocket handshake on a bare socket.
async fn start_plain(s: Scenario) -> (SimServer, Api<Pod>) {
    let server = SimServer::start_with(s, Transport::Plain)
        .await
        .expect("server starts");
    let pods = Api::<Pod>::namespaced(client(&server).await, NS);
    (server, pods)
}

async fn start(s: Scenario) -> (SimServer, Api<Pod>) {
    let server = SimServer::start(s).await.expect("server starts");
    let pods = Api::<Pod>::namespaced(client(&server).await, NS);
    (server, pods)
}

/// A TCP server on 127.0.0.1 that writes back what it reads, each connection until EOF.
async fn echo_server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            tokio::spawn(async move {
                let (mut r, mut w) = conn.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
            });
        }
    });
    addr
}

/// A TCP server that greets with `banner` and closes.
async fn banner_server(banner: &'static [u8]) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            let _ = conn.write_all(banner).await;
        }
    });
    addr
}

/// An address nothing listens on.
async fn closed_port() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    listener.local_addr().expect("addr")
}

fn api_error(e: kube::Error) -> kube::core::Status {
    match e {
        kube::Error::Api(s) => *s,
        other => panic!("expected an API error, got {other:?}"),
    }
}

async fn timed<T>(f: impl Future<Output = T>) -> T {
    tokio::time::timeout(WITHIN, f)
        .await
        .expect("finished in time")
}

/// Write `payload` and read as many bytes back, concurrently.
async fn round_trip(stream: tokio::io::DuplexStream, payload: &[u8]) -> Vec<u8> {
    let (mut rd, mut wr) = tokio::io::split(stream);
    let mut back = vec![0u8; payload.len()];
    let (w, r) = tokio::join!(wr.write_all(payload), rd.read_exact(&mut back));
    w.expect("write");
    r.expect("read");
    back
}

fn refused_text(port: u16) -> (String, String) {
    (
        format!("error forwarding port {port} to pod "),
        format!(
            "IPv4: dial tcp4 127.0.0.1:{port}: connect: connection refused IPv6 dial tcp6 [::1]:{port}: connect: connection refused "
        ),
    )
}

fn assert_refused(text: &str, port: u16) {
    let (head, tail) = refused_text(port);
    assert!(text.starts_with(&head), "{text}");
    assert!(text.ends_with(&tail), "{text}");
    assert!(
        text.contains(
            ", uid : failed to execute portforward in network namespace \"/var/run/netns/cni-"
        ),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "failed to connect to localhost:{port} inside namespace \""
        )),
        "{text}"
    );
}

#[tokio::test]
async fn bytes_round_trip_to_a_real_tcp_server() {
    let echo = echo_server().await;
    let (server, pods) = start(scenario("").with_port_forward(NS, POD, 5432, echo)).await;
    let mut pf = timed(pods.portforward(POD, &[5432]))
        .await
        .expect("upgrade");
    let stream = pf.take_stream(5432).expect("stream for 5432");
    assert!(pf.take_stream(5432).is_none());
    assert_eq!(
        timed(round_trip(stream, b"SELECT 1;")).await,
        b"SELECT 1;".to_vec()
    );
    drop(pf);
    server.shutdown().await;
}

#[tokio::test]
async fn one_mebibyte_each_way() {
    let echo = echo_server().await;
    let (server, pods) = start(scenario("").with_port_forward(NS, POD, 5432, echo)).await;
    let mut pf = timed(pods.portforward(POD, &[5432]))
        .await
        .expect("upgrade");
    let stream = pf.take_stream(5432).expect("stream");
    let payload: Vec<u8> = (0..1024 * 1024u32).map(|i| (i * 7 % 251) as u8).collect();
    let back = timed(round_trip(stream, &payload)).await;
    assert!(back == payload, "payload came back altered");
    // Closing our side ends the forward; the tunnel winds down cleanly.
    timed(pf.join()).await.expect("port forwarder ends cleanly");
    server.shutdown().await;
}

#[tokio::test]
async fn several_connections_in_sequence_reach_the_target() {
    let echo = echo_server().await;
    let (server, pods) = start(scenario("").with_port_forward(NS, POD, 5432, echo)).await;
    for i in 0..3u8 {
        let mut pf = timed(pods.portforward(POD, &[5432]))
            .await
            .expect("upgrade");
        let stream = pf.take_stream(5432).expect("stream");
        assert_eq!(timed(round_trip(stream, &[i; 100])).await, vec![i; 100]);
        timed(pf.join()).await.expect("clean end");
    }
    server.shutdown().await;
}

#[tokio::test]
async fn two_ports_on_one_connection() {
    let (pg, web) = (
        echo_server().await,
        banner_server(b"HTTP/1.1 200 OK\r\n\r\n").await,
    );
    let s = scenario("")
        .with_port_forward(NS, POD, 5432, pg)
        .with_port_forward(NS, POD, 8080, web);
    let (server, pods) = start(s).await;
    let mut pf = timed(pods.portforward(POD, &[5432, 8080]))
        .await
        .expect("upgrade");
    let (a, mut b) = (
        pf.take_stream(5432).expect("5432"),
        pf.take_stream(8080).expect("8080"),
    );
    let mut banner = vec![0u8; 19];
    timed(b.read_exact(&mut banner)).await.expect("banner");
    assert_eq!(banner, b"HTTP/1.1 200 OK\r\n\r\n");
    assert_eq!(timed(round_trip(a, b"ping")).await, b"ping");
    drop(b);
    drop(pf);
    server.shutdown().await;
}

#[tokio::test]
async fn a_port_nothing_listens_on_reports_the_kubelets_error() {
    let echo = echo_server().await;
    let (server, pods) = start(scenario("").with_port_forward(NS, POD, 5432, echo)).await;
    let mut pf = timed(pods.portforward(POD, &[6379]))
        .await
        .expect("upgrade");
    let err = timed(pf.take_error(6379).expect("error future"))
        .await
        .expect("an error message");
    assert_refused(&err, 6379);
    // The WebSocket closes once every port is done: the stream ends.
    let mut stream = pf.take_stream(6379).expect("stream");
    let mut rest = Vec::new();
    timed(stream.read_to_end(&mut rest)).await.expect("EOF");
    assert!(rest.is_empty());
    server.shutdown().await;
}

#[tokio::test]
async fn a_refusing_target_and_a_working_one_side_by_side() {
    let (echo, dead) = (echo_server().await, closed_port().await);
    let s = scenario("")
        .with_port_forward(NS, POD, 5432, echo)
        .with_port_forward(NS, POD, 9187, dead);
    let (server, pods) = start(s).await;
    let mut pf = timed(pods.portforward(POD, &[9187, 5432]))
        .await
        .expect("upgrade");
    let err = timed(pf.take_error(9187).expect("error future"))
        .await
        .expect("an error message");
    assert_refused(&err, 9187);
    // The other port keeps working.
    let stream = pf.take_stream(5432).expect("stream");
    assert_eq!(
        timed(round_trip(stream, b"still here")).await,
        b"still here"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn the_target_closing_ends_the_stream() {
    let hello = banner_server(b"hello").await;
    let (server, pods) = start(scenario("").with_port_forward(NS, POD, 5432, hello)).await;
    let mut pf = timed(pods.portforward(POD, &[5432]))
        .await
        .expect("upgrade");
    let mut stream = pf.take_stream(5432).expect("stream");
    let mut all = Vec::new();
    // containerd gives the other direction up to a second, then the WebSocket closes.
    timed(stream.read_to_end(&mut all)).await.expect("EOF");
    assert_eq!(all, b"hello");
    // kube-rs resolves the error future once its forwarder ends, which needs the stream gone.
    drop(stream);
    let no_error = timed(pf.take_error(5432).expect("error future")).await;
    assert_eq!(no_error, None, "a clean end reports no error");
    server.shutdown().await;
}

#[tokio::test]
async fn sim_yaml_port_forwards() {
    let echo = echo_server().await;
    let extra = format!("portForwards:\n  - {{pod: {POD}, port: 5432, to: \"{echo}\"}}\n");
    let (server, pods) = start(scenario(&extra)).await;
    let mut pf = timed(pods.portforward(POD, &[5432]))
        .await
        .expect("upgrade");
    let stream = pf.take_stream(5432).expect("stream");
    assert_eq!(timed(round_trip(stream, b"yaml")).await, b"yaml");
    server.shutdown().await;

    // `localhost:PORT` resolves too, and a namespace may be given.
    let extra = format!(
        "portForwards:\n  - {{namespace: elsa, pod: {POD}, port: 5432, to: \"localhost:{}\"}}\n",
        echo.port()
    );
    let (server, pods) = start(scenario(&extra)).await;
    let mut pf = timed(pods.portforward(POD, &[5432]))
        .await
        .expect("upgrade");
    let stream = pf.take_stream(5432).expect("stream");
    assert_eq!(timed(round_trip(stream, b"host")).await, b"host");
    server.shutdown().await;
}

#[test]
fn sim_yaml_port_forwards_are_checked() {
    let err = |extra: &str| {
        Scenario::from_documents("pf", MANIFESTS, Some(&sim_yaml(extra)))
            .expect_err("rejected")
            .to_string()
    };
    let e = err("portForwards: [{pod: nope, port: 5432, to: \"127.0.0.1:1\"}]\n");
    assert!(
        e.contains("pf/sim.yaml: portForwards[0]: pod \"nope\" not found in namespace \"elsa\""),
        "{e}"
    );
    assert!(e.contains(POD), "names the pods there: {e}");
    let e = err(&format!(
        "portForwards: [{{pod: {POD}, port: 5432, to: \"127.0.0.1\"}}]\n"
    ));
    assert!(
        e.contains("portForwards[0]: to: \"127.0.0.1\" is not host:port"),
        "{e}"
    );
    let e = err(&format!(
        "portForwards: [{{pod: {POD}, port: 0, to: \"127.0.0.1:1\"}}]\n"
    ));
    assert!(e.contains("portForwards[0]: port must be 1-65535"), "{e}");
    let e = err(&format!(
        "portForwards: [{{pod: {POD}, port: 5432, to: \"127.0.0.1:1\", via: x}}]\n"
    ));
    assert!(e.contains("via"), "unknown keys are errors: {e}");
}

#[tokio::test]
async fn the_api_servers_and_kubelets_refusals() {
    let echo = echo_server().await;
    let s = scenario("")
        .with_port_forward(NS, "pulling-0", 5432, echo)
        .with_port_forward(NS, "creating-0", 5432, echo);
    let (server, pods) = start(s).await;

    let st = api_error(
        timed(pods.portforward("nope", &[5432]))
            .await
            .err()
            .expect("404"),
    );
    assert_eq!((st.code, st.reason.as_str()), (404, "NotFound"));
    assert_eq!(st.message, "pods \"nope\" not found");

    let st = api_error(
        timed(pods.portforward("unscheduled-0", &[5432]))
            .await
            .err()
            .expect("400"),
    );
    assert_eq!((st.code, st.reason.as_str()), (400, "BadRequest"));
    assert_eq!(
        st.message,
        "pod unscheduled-0 does not have a host assigned"
    );

    // No sandbox on the node (still being created, or finished): the kubelet's runtime
    // does not know the pod; its plain-text answer comes through the API server's proxy.
    for name in ["creating-0", "done-0"] {
        let st = api_error(
            timed(pods.portforward(name, &[5432]))
                .await
                .err()
                .expect("500"),
        );
        assert_eq!(st.code, 500);
        assert_eq!(st.message, format!("pod not found (\"{name}_elsa\")"));
    }

    // A pod whose sandbox is up but whose container never started: the upgrade works,
    // the connection is refused even with a target configured.
    let mut pf = timed(pods.portforward("pulling-0", &[5432]))
        .await
        .expect("upgrade");
    let err = timed(pf.take_error(5432).expect("error future"))
        .await
        .expect("error");
    assert_refused(&err, 5432);

    // A plain GET is not an upgrade.
    let req = axum::http::Request::get(format!(
        "/api/v1/namespaces/elsa/pods/{POD}/portforward?ports=5432"
    ))
    .body(Vec::new())
    .expect("request");
    let st = api_error(
        timed(pods.clone().into_client().request_text(req))
            .await
            .expect_err("400"),
    );
    assert_eq!(
        (st.code, st.message.as_str()),
        (400, "Upgrade request required")
    );

    // Ports that are not ports.
    let req = axum::http::Request::get(format!(
        "/api/v1/namespaces/elsa/pods/{POD}/portforward?ports=postgres"
    ))
    .body(Vec::new())
    .expect("request");
    let st = api_error(
        timed(pods.clone().into_client().request_text(req))
            .await
            .expect_err("400"),
    );
    assert_eq!(st.code, 400);
    assert_eq!(
        st.message,
        "cannot convert to []int32: strconv.ParseUint: parsing \"postgres\": invalid syntax"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn rbac_authorizes_the_websocket_get_and_from_1_35_also_create() {
    let echo = echo_server().await;
    let user = "system:serviceaccount:elsa:doctor";

    // 1.33 (the default): a WebSocket upgrade is a GET, authorized as `get pods/portforward`.
    let deny_get = "rbac:\n  deny: [{verb: get, resource: pods, subresource: portforward}]\n";
    let (server, pods) = start(scenario(deny_get).with_port_forward(NS, POD, 5432, echo)).await;
    let st = api_error(
        timed(pods.portforward(POD, &[5432]))
            .await
            .err()
            .expect("403"),
    );
    assert_eq!((st.code, st.reason.as_str()), (403, "Forbidden"));
    assert_eq!(
        st.message,
        format!(
            "pods \"{POD}\" is forbidden: User \"{user}\" cannot get resource \"pods/portforward\" in API group \"\" in the namespace \"elsa\""
        )
    );
    let log = server.requests();
    let last = log.last().expect("logged");
    assert_eq!(
        (last.verb.as_str(), last.subresource.as_deref(), last.status),
        ("get", Some("portforward"), 403)
    );
    server.shutdown().await;

    // ... so on 1.33 denying only `create` does not stop it (as on a real 1.33 cluster).
    let deny_create = "rbac:\n  deny: [{verb: create, resource: pods, subresource: portforward}]\n";
    let (server, pods) = start(scenario(deny_create).with_port_forward(NS, POD, 5432, echo)).await;
    let mut pf = timed(pods.portforward(POD, &[5432]))
        .await
        .expect("1.33 allows");
    let stream = pf.take_stream(5432).expect("stream");
    assert_eq!(timed(round_trip(stream, b"x")).await, b"x");
    server.shutdown().await;

    // 1.35+ (AuthorizePodWebsocketUpgradeCreatePermission): `create` is checked as well, and
    // its Forbidden carries RBAC's (empty) reason.
    let v135 = format!("{deny_create}version: {{minor: \"35\", gitVersion: v1.35.0}}\n");
    let (server, pods) = start(scenario(&v135).with_port_forward(NS, POD, 5432, echo)).await;
    let st = api_error(
        timed(pods.portforward(POD, &[5432]))
            .await
            .err()
            .expect("403"),
    );
    assert_eq!((st.code, st.reason.as_str()), (403, "Forbidden"));
    assert_eq!(st.message, format!("pods \"{POD}\" is forbidden: "));
    server.shutdown().await;

    // `pods/portforward` in the deny list's `resource` form works the same way.
    let deny = "rbac:\n  deny: [{verb: get, resource: pods/portforward}]\n";
    let (server, pods) = start(scenario(deny)).await;
    let st = api_error(
        timed(pods.portforward(POD, &[5432]))
            .await
            .err()
            .expect("403"),
    );
    assert_eq!(st.code, 403);
    server.shutdown().await;
}

#[tokio::test]
async fn request_log_faults_and_discovery() {
    let echo = echo_server().await;
    // 500: kube-rs retries 429/503/504 by itself.
    let faults = "faults: [{subresource: portforward, status: 500, times: 1}]\n";
    let (server, pods) = start(scenario(faults).with_port_forward(NS, POD, 5432, echo)).await;
    let st = api_error(
        timed(pods.portforward(POD, &[5432]))
            .await
            .err()
            .expect("500"),
    );
    assert_eq!((st.code, st.reason.as_str()), (500, "InternalError"));
    let mut pf = timed(pods.portforward(POD, &[5432, 8080]))
        .await
        .expect("second try");
    let stream = pf.take_stream(5432).expect("stream");
    assert_eq!(timed(round_trip(stream, b"log")).await, b"log");

    let log: Vec<_> = server
        .requests()
        .into_iter()
        .filter(|r| r.subresource.as_deref() == Some("portforward"))
        .collect();
    assert_eq!(log.len(), 2);
    for r in &log {
        assert_eq!(r.method, "GET");
        assert_eq!(r.verb, "get");
        assert_eq!(r.resource, "pods");
        assert_eq!(r.namespace.as_deref(), Some("elsa"));
        assert_eq!(r.name.as_deref(), Some(POD));
        assert_eq!(
            r.path,
            format!("/api/v1/namespaces/elsa/pods/{POD}/portforward")
        );
    }
    assert_eq!(log[0].status, 500);
    assert_eq!(log[1].status, 101);
    assert_eq!(log[1].query.as_deref(), Some("&ports=5432%2C8080"));

    // Discovery lists the subresource with the real verbs.
    let client = pods.into_client();
    let resources = client
        .list_core_api_resources("v1")
        .await
        .expect("discovery");
    let pf_res = resources
        .resources
        .iter()
        .find(|r| r.name == "pods/portforward")
        .expect("pods/portforward listed");
    assert_eq!(pf_res.kind, "PodPortForwardOptions");
    assert_eq!(pf_res.verbs, vec!["create".to_string(), "get".to_string()]);
    drop(pf);
    server.shutdown().await;
}

#[tokio::test]
async fn shutdown_ends_open_tunnels() {
    let echo = echo_server().await;
    let (server, pods) = start(scenario("").with_port_forward(NS, POD, 5432, echo)).await;
    let mut pf = timed(pods.portforward(POD, &[5432]))
        .await
        .expect("upgrade");
    let mut stream = pf.take_stream(5432).expect("stream");
    stream.write_all(b"a").await.expect("write");
    let mut one = [0u8; 1];
    timed(stream.read_exact(&mut one)).await.expect("echo");
    server.shutdown().await;
    let mut rest = Vec::new();
    timed(stream.read_to_end(&mut rest))
        .await
        .expect("stream ends after shutdown");
}

/// A PostgreSQL server that knows exactly one conversation: trust authentication, then any
/// simple query answered with one `?column?` row holding `1`. Enough for a real client.
async fn tiny_postgres() -> SocketAddr {
    fn msg(tag: u8, body: &[u8]) -> Vec<u8> {
        let mut m = vec![tag];
        m.extend_from_slice(&(body.len() as i32 + 4).to_be_bytes());
        m.extend_from_slice(body);
        m
    }
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            tokio::spawn(async move {
                // StartupMessage: length, then protocol 3.0 and parameters.
                let mut len = [0u8; 4];
                conn.read_exact(&mut len).await?;
                let mut startup = vec![0u8; i32::from_be_bytes(len) as usize - 4];
                conn.read_exact(&mut startup).await?;
                assert_eq!(&startup[..4], &196608i32.to_be_bytes(), "protocol 3.0");
                let mut hello = msg(b'R', &0i32.to_be_bytes());
                hello.extend(msg(b'S', b"server_version\x0016.4\x00"));
                hello.extend(msg(b'K', &[0, 0, 0, 7, 0, 0, 0, 9]));
                hello.extend(msg(b'Z', b"I"));
                conn.write_all(&hello).await?;
                loop {
                    let mut head = [0u8; 5];
                    conn.read_exact(&mut head).await?;
                    let len = i32::from_be_bytes([head[1], head[2], head[3], head[4]]) as usize;
                    let mut body = vec![0u8; len - 4];
                    conn.read_exact(&mut body).await?;
                    match head[0] {
                        b'Q' => {
                            let mut field = b"?column?\x00".to_vec();
                            field.extend_from_slice(&0i32.to_be_bytes()); // table oid
                            field.extend_from_slice(&0i16.to_be_bytes()); // column
                            field.extend_from_slice(&23i32.to_be_bytes()); // int4
                            field.extend_from_slice(&4i16.to_be_bytes());
                            field.extend_from_slice(&(-1i32).to_be_bytes());
                            field.extend_from_slice(&0i16.to_be_bytes()); // text
                            let mut row_desc = 1i16.to_be_bytes().to_vec();
                            row_desc.extend(field);
                            let mut reply = msg(b'T', &row_desc);
                            reply.extend(msg(b'D', &[0, 1, 0, 0, 0, 1, b'1']));
                            reply.extend(msg(b'C', b"SELECT 1\x00"));
                            reply.extend(msg(b'Z', b"I"));
                            conn.write_all(&reply).await?;
                        }
                        b'X' => return Ok::<(), std::io::Error>(()),
                        other => panic!("unexpected message {other}"),
                    }
                }
            });
        }
    });
    addr
}

#[tokio::test]
async fn a_real_postgres_client_through_the_tunnel() {
    let pg = tiny_postgres().await;
    let (server, pods) = start(scenario("").with_port_forward(NS, POD, 5432, pg)).await;
    let mut pf = timed(pods.portforward(POD, &[5432]))
        .await
        .expect("upgrade");
    let stream = pf.take_stream(5432).expect("stream");
    let mut config = tokio_postgres::Config::new();
    config.user("elsa").dbname("elsa");
    let (client, connection) = timed(config.connect_raw(stream, tokio_postgres::NoTls))
        .await
        .expect("startup through the tunnel");
    let conn = tokio::spawn(connection);
    let rows = timed(client.simple_query("SELECT 1")).await.expect("query");
    let value = rows.iter().find_map(|m| match m {
        tokio_postgres::SimpleQueryMessage::Row(r) => r.get(0).map(str::to_string),
        _ => None,
    });
    assert_eq!(value.as_deref(), Some("1"));
    drop(client);
    timed(conn)
        .await
        .expect("joined")
        .expect("connection ends cleanly");
    timed(pf.join()).await.expect("tunnel ends cleanly");
    server.shutdown().await;
}

// ---------------------------------------------------------------------------
// The wire protocol, with a raw WebSocket client.
// ---------------------------------------------------------------------------

type Ws = tokio_tungstenite::WebSocketStream<TcpStream>;

async fn raw_connect(
    server: &SimServer,
    query: &str,
    protocols: Option<&str>,
) -> Result<(Ws, Option<String>), tokio_tungstenite::tungstenite::Error> {
    let url = format!(
        "ws://{}/api/v1/namespaces/elsa/pods/{POD}/portforward?{query}",
        server.addr()
    );
    let mut req = url.into_client_request()?;
    req.headers_mut().insert(
        "Authorization",
        HeaderValue::from_str(&format!("Bearer {}", server.token())).expect("header"),
    );
    if let Some(p) = protocols {
        req.headers_mut().insert(
            "Sec-WebSocket-Protocol",
            HeaderValue::from_str(p).expect("header"),
        );
    }
    let tcp = TcpStream::connect(server.addr()).await.expect("tcp");
    let (ws, resp) = tokio_tungstenite::client_async(req, tcp).await?;
    let proto = resp
        .headers()
        .get("Sec-WebSocket-Protocol")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    Ok((ws, proto))
}

async fn next_data(ws: &mut Ws) -> Message {
    loop {
        let msg = timed(ws.next()).await.expect("a message").expect("ok");
        if !matches!(msg, Message::Ping(_) | Message::Pong(_)) {
            return msg;
        }
    }
}

#[tokio::test]
async fn wire_protocol_binary() {
    let echo = echo_server().await;
    let (server, _pods) = start_plain(scenario("").with_port_forward(NS, POD, 5432, echo)).await;
    let (mut ws, proto) = raw_connect(&server, "ports=6379&ports=5432", Some("v4.channel.k8s.io"))
        .await
        .expect("upgrade");
    assert_eq!(proto.as_deref(), Some("v4.channel.k8s.io"));
    // The port number, little-endian, first on every channel, in port order.
    let mut initial = Vec::new();
    for _ in 0..4 {
        initial.push(next_data(&mut ws).await);
    }
    let bin = |b: &[u8]| Message::Binary(Bytes::copy_from_slice(b));
    assert_eq!(
        initial,
        vec![
            bin(&[0, 0xeb, 0x18]),
            bin(&[1, 0xeb, 0x18]),
            bin(&[2, 0x38, 0x15]),
            bin(&[3, 0x38, 0x15]),
        ]
    );
    // Port 6379 (channels 0/1) has nothing behind it: one error message on channel 1.
    let err = next_data(&mut ws).await;
    let Message::Binary(err) = err else {
        panic!("binary error frame, got {err:?}")
    };
    assert_eq!(err[0], 1);
    assert_refused(std::str::from_utf8(&err[1..]).expect("utf-8"), 6379);

    // Odd frames are skipped without harm: empty, channel only, the error channel, an
    // unknown channel, data for the failed port, a text frame, pings.
    for frame in [
        bin(&[]),
        bin(&[2]),
        bin(&[3, 1, 2, 3]),
        bin(&[200, 9, 9]),
        bin(&[0, 7, 7]),
        Message::Ping(Bytes::from_static(b"p")),
    ] {
        ws.send(frame).await.expect("send");
    }
    ws.send(Message::Text("\u{2}hi".into()))
        .await
        .expect("text");
    ws.send(bin(&[2, b'o', b'k'])).await.expect("data");
    let mut echoed = Vec::new();
    while echoed.len() < 4 {
        match next_data(&mut ws).await {
            Message::Binary(b) => {
                assert_eq!(b[0], 2, "data comes back on channel 2");
                echoed.extend_from_slice(&b[1..]);
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(echoed, b"hiok");

    // Closing the WebSocket ends every port; the server completes the close handshake.
    ws.close(None).await.expect("close");
    loop {
        match timed(ws.next()).await {
            None | Some(Err(_)) => break,
            Some(Ok(Message::Close(_) | Message::Ping(_) | Message::Pong(_))) => {}
            Some(Ok(other)) => panic!("unexpected {other:?} after close"),
        }
    }
    server.shutdown().await;
}

#[tokio::test]
async fn wire_protocol_base64_and_negotiation() {
    let echo = echo_server().await;
    let (server, _pods) = start_plain(scenario("").with_port_forward(NS, POD, 5432, echo)).await;
    let (mut ws, proto) = raw_connect(
        &server,
        "ports=5432",
        Some("v5.channel.k8s.io, v4.base64.channel.k8s.io, v4.channel.k8s.io"),
    )
    .await
    .expect("upgrade");
    assert_eq!(proto.as_deref(), Some("v4.base64.channel.k8s.io"));
    assert_eq!(next_data(&mut ws).await, Message::Text("0OBU=".into()));
    assert_eq!(next_data(&mut ws).await, Message::Text("1OBU=".into()));
    ws.send(Message::Text("0aGVsbG8=".into()))
        .await
        .expect("send");
    // Five bytes go out and come back in one piece: "hello" on channel '0', in base64.
    assert_eq!(next_data(&mut ws).await, Message::Text("0aGVsbG8=".into()));
    drop(ws);

    // No subprotocol at all: binary, and none named in the answer.
    let (mut ws, proto) = raw_connect(&server, "ports=5432", None)
        .await
        .expect("upgrade");
    assert_eq!(proto, None);
    assert_eq!(
        next_data(&mut ws).await,
        Message::Binary(Bytes::from_static(&[0, 0x38, 0x15]))
    );
    drop(ws);

    // Nothing the kubelet speaks: 403, empty body.
    match raw_connect(&server, "ports=5432", Some("v5.channel.k8s.io")).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => {
            assert_eq!(resp.status(), 403);
        }
        other => panic!("expected 403, got {:?}", other.map(|(_, p)| p)),
    }
    // The kubelet's own checks of the ports.
    for (query, text) in [
        ("", "query parameter \"port\" is required"),
        ("ports=0", "port \"0\" must be > 0"),
    ] {
        match raw_connect(&server, query, Some("v4.channel.k8s.io")).await {
            Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => {
                assert_eq!(resp.status(), 400);
                let body = resp.body().clone().unwrap_or_default();
                assert_eq!(String::from_utf8_lossy(&body), text);
            }
            other => panic!("expected 400, got {:?}", other.map(|(_, p)| p)),
        }
    }
    server.shutdown().await;
}
