//! The in-cluster vantages end to end: the real binary against the simulated cluster, whose
//! kubelet stand-in runs the probe pod (this very binary's `probe`) with a resolv.conf that
//! points at a real DNS server in this process, towards real TCP listeners.
//!
//! What is asserted: the findings of network.dns and network.tcp from a debug pod and an
//! ephemeral container, the SQLite listing through /proc/1/root, that the probe pod is created
//! and deleted (also when the run is interrupted), `cleanup`, and that `--vantage here` probes
//! from this process with `--resolv-conf`.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::dns::{TestDns, blackhole_nameserver, pod_resolv_conf};
use common::{Cluster, json, statuses};
use elsadoctor_sim::{KubeletConfig, Scenario};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams, PostParams};

/// The healthy scenario with the database on `port` (connection string and Service).
fn scenario_on_port(port: u16) -> tempfile::TempDir {
    let src = common::scenario_dir("healthy");
    let dir = tempfile::tempdir().expect("tmp");
    let manifests = std::fs::read_to_string(src.join("manifests.yaml"))
        .expect("manifests")
        .replace("Port=5432", &format!("Port={port}"))
        .replace(
            "    - name: postgres\n      port: 5432\n",
            &format!("    - name: postgres\n      port: {port}\n"),
        );
    assert!(
        manifests.contains(&format!("port: {port}")),
        "Service port rewritten"
    );
    std::fs::write(dir.path().join("manifests.yaml"), manifests).expect("write");
    std::fs::copy(src.join("sim.yaml"), dir.path().join("sim.yaml")).expect("copy");
    dir
}

/// A cluster whose kubelet stand-in runs probe pods with `resolv_conf` (and `root` as the
/// filesystem an ephemeral container sees through /proc/1/root).
async fn cluster(
    dir: &Path,
    resolv_conf: &str,
    root: Option<&Path>,
) -> (Cluster, tempfile::TempDir) {
    let conf_dir = tempfile::tempdir().expect("tmp");
    let conf = conf_dir.path().join("resolv.conf");
    std::fs::write(&conf, resolv_conf).expect("resolv.conf");
    let mut kubelet = KubeletConfig::new(env!("CARGO_BIN_EXE_elsadoctor")).with_resolv_conf(&conf);
    if let Some(root) = root {
        kubelet = kubelet.with_probe_root(root);
    }
    let scenario = Scenario::load_dir(dir)
        .expect("scenario")
        .with_kubelet(kubelet);
    (Cluster::start_with(scenario).await, conf_dir)
}

fn check<'a>(report: &'a serde_json::Value, id: &str) -> &'a serde_json::Value {
    report["checks"]
        .as_array()
        .and_then(|a| a.iter().find(|c| c["id"] == id))
        .unwrap_or_else(|| panic!("{id} in the report"))
}

async fn client(cluster: &Cluster) -> kube::Client {
    let kc =
        kube::config::Kubeconfig::from_yaml(&cluster.server.kubeconfig_yaml()).expect("kubeconfig");
    let cfg = kube::Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .expect("config");
    kube::Client::try_from(cfg).expect("client")
}

/// The pods elsadoctor created that still exist.
async fn managed_pods(cluster: &Cluster) -> Vec<String> {
    let api: Api<Pod> = Api::namespaced(client(cluster).await, "elsa");
    api.list(&ListParams::default().labels("app.kubernetes.io/managed-by=elsadoctor"))
        .await
        .expect("list")
        .items
        .into_iter()
        .filter_map(|p| p.metadata.name)
        .collect()
}

/// A listener standing for the database on 127.0.0.1 (keep it alive), its port, and a DNS
/// server that resolves `postgres.elsa.svc.cluster.local` to it.
async fn listening_database() -> (tokio::net::TcpListener, u16, TestDns) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("listener");
    let port = listener.local_addr().expect("addr").port();
    let dns = TestDns::start().await;
    dns.add_a("postgres.elsa.svc.cluster.local", "127.0.0.1")
        .await;
    (listener, port, dns)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_debug_pod_resolves_and_connects_from_the_namespace_then_goes() {
    let (_listener, port, dns) = listening_database().await;
    let dir = scenario_on_port(port);
    let (cluster, _conf) = cluster(dir.path(), &dns.resolv_conf("elsa"), None).await;
    let mut cmd = cluster.cmd();
    cmd.args([
        "--json",
        "--vantage",
        "debug-pod",
        "--probe-image",
        "example/elsadoctor:test",
        "--timeout",
        "3s",
    ]);
    let out = common::run(cmd).await;
    let report = json(&out);
    assert_eq!(report["vantage"], "debug-pod");
    let dns_check = check(&report, "network.dns");
    assert_eq!(dns_check["status"], "pass", "{dns_check:#}");
    assert!(
        dns_check["message"]
            .as_str()
            .is_some_and(|m| m.contains("postgres.elsa.svc.cluster.local")),
        "{dns_check:#}"
    );
    let tcp = check(&report, "network.tcp");
    assert_eq!(tcp["status"], "pass", "{tcp:#}");
    assert!(
        tcp["message"]
            .as_str()
            .is_some_and(|m| m.contains(&format!("127.0.0.1:{port}")))
    );
    let evidence = tcp["evidence"].to_string();
    assert!(
        evidence.contains("debug pod elsadoctor-probe-"),
        "{evidence}"
    );

    // One pod created with our labels, then deleted; none left.
    let log = cluster.server.requests();
    let creates: Vec<_> = log
        .iter()
        .filter(|r| r.verb == "create" && r.resource == "pods" && r.subresource.is_none())
        .collect();
    assert_eq!(creates.len(), 1, "{creates:?}");
    let deletes: Vec<_> = log
        .iter()
        .filter(|r| r.verb == "delete" && r.resource == "pods")
        .collect();
    assert_eq!(deletes.len(), 1, "{deletes:?}");
    assert_eq!(creates[0].name, None, "created by POST to the collection");
    assert!(
        deletes[0]
            .name
            .as_deref()
            .is_some_and(|n| n.starts_with("elsadoctor-probe-"))
    );
    assert!(managed_pods(&cluster).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nxdomain_and_refused_are_told_apart_with_their_fixes() {
    let port = free_port();
    let dns = TestDns::start().await;
    let dir = scenario_on_port(port);
    // The Service exists in namespace db only: the short name cannot resolve from elsa.
    dns.add_a("postgres.db.svc.cluster.local", "127.0.0.1")
        .await;
    let (cluster, _conf) = cluster(dir.path(), &dns.resolv_conf("elsa"), None).await;
    let mut cmd = cluster.cmd();
    cmd.args(["--json", "--vantage", "debug-pod", "--timeout", "3s"]);
    let report = json(&common::run(cmd).await);
    let d = check(&report, "network.dns");
    assert_eq!(
        (d["status"].as_str(), d["cause"].as_str()),
        (Some("fail"), Some("nxdomain")),
        "{d:#}"
    );
    let tried = d["evidence"].to_string();
    for name in [
        "postgres.elsa.svc.cluster.local",
        "postgres.svc.cluster.local",
        "postgres.cluster.local",
    ] {
        assert!(tried.contains(name), "{name} in {tried}");
    }
    assert_eq!(check(&report, "network.tcp")["status"], "skip");

    // Nothing in these tests listens on 127.0.0.2 (they bind 127.0.0.1), so the port is
    // closed there whatever other tests bind meanwhile.
    dns.add_a("postgres.elsa.svc.cluster.local", "127.0.0.2")
        .await;
    let mut cmd = cluster.cmd();
    cmd.args(["--json", "--vantage", "debug-pod", "--timeout", "3s"]);
    let report = json(&common::run(cmd).await);
    let t = check(&report, "network.tcp");
    assert_eq!(
        (t["status"].as_str(), t["cause"].as_str()),
        (Some("fail"), Some("refused")),
        "{t:#}"
    );
    let fix = t["fix"].to_string();
    assert!(fix.contains("targetPort"), "the refused fix: {fix}");
    assert!(managed_pods(&cluster).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unanswerable_dns_and_host_end_within_the_timeout_plus_two_seconds() {
    let (silent, _socket) = blackhole_nameserver();
    let dir = scenario_on_port(free_port());
    let (cluster, _conf) = cluster(dir.path(), &pod_resolv_conf(&[silent], "elsa"), None).await;
    let mut cmd = cluster.cmd();
    cmd.args(["--json", "--vantage", "debug-pod", "--timeout", "2s"]);
    let t0 = Instant::now();
    let out = common::run(cmd).await;
    let took = t0.elapsed();
    let report = json(&out);
    let d = check(&report, "network.dns");
    assert_eq!(d["cause"], "timeout", "{d:#}");
    // DNS and TCP run side by side in the probe, and the run waits for nothing else that long.
    assert!(took < Duration::from_secs(4), "took {took:?}");
    assert!(managed_pods(&cluster).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ephemeral_container_lists_the_elsa_files_and_probes_from_the_pod() {
    let (_listener, port, dns) = listening_database().await;
    // What /proc/1/root shows: the Elsa container's filesystem after a fallback to SQLite.
    let root = tempfile::tempdir().expect("root");
    std::fs::create_dir_all(root.path().join("app/App_Data")).expect("mkdir");
    for f in [
        "app/Elsa.Server.Web.dll",
        "app/Elsa.dll",
        "app/App_Data/elsa.sqlite.db",
        "app/App_Data/elsa.sqlite.db-wal",
    ] {
        std::fs::write(root.path().join(f), b"x").expect("file");
    }
    let dir = scenario_on_port(port);
    let (cluster, _conf) = cluster(dir.path(), &dns.resolv_conf("elsa"), Some(root.path())).await;
    let mut cmd = cluster.cmd();
    cmd.args(["--json", "--vantage", "ephemeral", "--timeout", "3s"]);
    let out = common::run(cmd).await;
    let report = json(&out);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("stays in the pod's spec"),
        "the warning: {err}"
    );
    let s = check(&report, "runtime.sqlite-file");
    assert_eq!(
        (s["status"].as_str(), s["cause"].as_str()),
        (Some("fail"), Some("fallback")),
        "{s:#}"
    );
    assert!(s["evidence"].to_string().contains("elsa.sqlite.db-wal"));
    assert_eq!(check(&report, "network.tcp")["status"], "pass");
    let log = cluster.server.requests();
    assert!(
        log.iter()
            .any(|r| r.verb == "patch" && r.subresource.as_deref() == Some("ephemeralcontainers"))
    );
    assert!(
        !log.iter()
            .any(|r| r.verb == "create" && r.resource == "pods" && r.subresource.is_none()),
        "no pod created"
    );
    assert!(
        !log.iter().any(|r| r.subresource.as_deref() == Some("exec")),
        "no exec: the container lists the files"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_run_deletes_its_probe_pod() {
    for signal in ["INT", "TERM"] {
        let (silent, _socket) = blackhole_nameserver();
        let dir = scenario_on_port(free_port());
        let (cluster, _conf) = cluster(dir.path(), &pod_resolv_conf(&[silent], "elsa"), None).await;
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_elsadoctor"));
        cmd.env_clear()
            .env("HOME", cluster.dir.path())
            .arg("--kubeconfig")
            .arg(&cluster.kubeconfig)
            .args(["--json", "--vantage", "debug-pod", "--timeout", "20s"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped());
        let child = cmd.spawn().expect("spawn");
        // Wait for the pod to exist (its probe waits on a silent nameserver for 20 s).
        let deadline = Instant::now() + Duration::from_secs(20);
        while managed_pods(&cluster).await.is_empty() {
            assert!(Instant::now() < deadline, "the probe pod never appeared");
            tokio::task::yield_now().await;
        }
        let kill = std::process::Command::new("kill")
            .args([&format!("-{signal}"), &child.id().to_string()])
            .status()
            .expect("kill");
        assert!(kill.success());
        let out = tokio::task::spawn_blocking(move || child.wait_with_output().expect("wait"))
            .await
            .expect("join");
        let want = if signal == "INT" { 130 } else { 143 };
        assert_eq!(
            out.status.code(),
            Some(want),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(String::from_utf8_lossy(&out.stderr).contains("interrupted by SIG"));
        assert!(
            managed_pods(&cluster).await.is_empty(),
            "SIG{signal} left a pod behind"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cleanup_deletes_old_leftovers_and_spares_young_pods() {
    let dir = scenario_on_port(free_port());
    let (cluster, _conf) = cluster(dir.path(), "nameserver 127.0.0.1:9\n", None).await;
    let api: Api<Pod> = Api::namespaced(client(&cluster).await, "elsa");
    let spec = elsadoctor::gather::debug_pod::ProbeSpec {
        image: "example/elsadoctor:test".into(),
        args: vec!["--dns".into(), "postgres".into()],
        env: vec![],
        env_from: vec![],
        deadline_seconds: 60,
    };
    let pod = elsadoctor::gather::debug_pod::manifest("elsa", "elsadoctor-probe-leftover", &spec);
    api.create(&PostParams::default(), &pod)
        .await
        .expect("create");
    // A young pod survives the default --min-age of one minute...
    let out = common::run({
        let mut c = cluster.cmd();
        c.arg("cleanup");
        c
    })
    .await;
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("no leftover probe pods"));
    assert_eq!(
        managed_pods(&cluster).await,
        vec!["elsadoctor-probe-leftover"]
    );
    // ...and goes when it is old enough.
    let out = common::run({
        let mut c = cluster.cmd();
        c.args(["cleanup", "--min-age", "1ms"]);
        c
    })
    .await;
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("deleted pod/elsadoctor-probe-leftover"));
    assert!(managed_pods(&cluster).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vantage_here_probes_from_this_process_with_the_given_resolv_conf() {
    let (_listener, port, dns) = listening_database().await;
    let dir = scenario_on_port(port);
    let (cluster, conf_dir) = cluster(dir.path(), &dns.resolv_conf("elsa"), None).await;
    let mut cmd = cluster.cmd();
    cmd.args([
        "--json",
        "--vantage",
        "here",
        "--timeout",
        "3s",
        "--resolv-conf",
    ])
    .arg(conf_dir.path().join("resolv.conf"));
    let report = json(&common::run(cmd).await);
    let st = statuses(&report);
    assert_eq!(
        st["network.dns"],
        "pass",
        "{:#}",
        check(&report, "network.dns")
    );
    assert_eq!(
        st["network.tcp"],
        "pass",
        "{:#}",
        check(&report, "network.tcp")
    );
    let log = cluster.server.requests();
    assert!(
        !log.iter()
            .any(|r| r.resource == "pods" && r.verb == "create"),
        "no pod from here"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_image_without_a_shell_is_unknown_with_the_ephemeral_hint() {
    let dir = scenario_on_port(free_port());
    let sim = std::fs::read_to_string(dir.path().join("sim.yaml")).expect("sim");
    let sim = sim.replacen(
        "  - workload: deployment/elsa-server\n",
        "  - workload: deployment/elsa-server\n    shell: false\n",
        2,
    );
    std::fs::write(dir.path().join("sim.yaml"), sim).expect("write");
    let (cluster, _conf) = cluster(dir.path(), "nameserver 127.0.0.1:9\n", None).await;
    let mut cmd = cluster.cmd();
    cmd.args(["--json", "--timeout", "3s"]);
    let report = json(&common::run(cmd).await);
    let s = check(&report, "runtime.sqlite-file");
    assert_eq!(
        (s["status"].as_str(), s["cause"].as_str()),
        (Some("unknown"), Some("no-shell")),
        "{s:#}"
    );
    assert!(
        s["fix"]["commands"]
            .to_string()
            .contains("--vantage ephemeral")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_service_in_another_namespace_gets_its_full_name() {
    let dir = scenario_on_port(5432);
    let manifests = std::fs::read_to_string(dir.path().join("manifests.yaml"))
        .expect("manifests")
        .replace(
            "kind: Service\nmetadata:\n  name: postgres\n  namespace: elsa\n",
            "kind: Service\nmetadata:\n  name: postgres\n  namespace: db\n",
        );
    assert!(manifests.contains("namespace: db"));
    std::fs::write(dir.path().join("manifests.yaml"), manifests).expect("write");
    let (cluster, _conf) = cluster(dir.path(), "nameserver 127.0.0.1:9\n", None).await;
    let mut cmd = cluster.cmd();
    cmd.args(["--json", "--timeout", "3s"]);
    let report = json(&common::run(cmd).await);
    let s = check(&report, "network.service");
    assert_eq!(
        (s["status"].as_str(), s["cause"].as_str()),
        (Some("fail"), Some("wrong-namespace")),
        "{s:#}"
    );
    assert!(
        s["message"]
            .as_str()
            .is_some_and(|m| m.contains("postgres.db.svc.cluster.local"))
    );
    assert!(
        s["fix"]["commands"]
            .to_string()
            .contains("postgres.db.svc.cluster.local"),
        "the fix names the FQDN"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_debug_pod_logs_in_with_the_environment_elsa_gets() {
    let pg = common::tls_server();
    let _lock = common::database_lock().await;
    let dns = TestDns::start().await;
    dns.add_a("postgres.elsa.svc.cluster.local", pg.host())
        .await;
    let on_port = scenario_on_port(pg.port());
    let (_tmp, scenario) = common::prepare(on_port.path(), &common::DbSetup::default(), pg);
    let conf_dir = tempfile::tempdir().expect("tmp");
    let conf = conf_dir.path().join("resolv.conf");
    std::fs::write(&conf, dns.resolv_conf("elsa")).expect("resolv.conf");
    let scenario = scenario
        .with_kubelet(KubeletConfig::new(env!("CARGO_BIN_EXE_elsadoctor")).with_resolv_conf(&conf));
    let cluster = Cluster::start_with(scenario).await;
    let mut cmd = cluster.cmd();
    cmd.args(["--json", "--vantage", "debug-pod", "--timeout", "5s"]);
    let out = common::run(cmd).await;
    let report = json(&out);
    let st = statuses(&report);
    for id in [
        "database.login",
        "database.tables",
        "database.migrations",
        "network.tcp",
    ] {
        assert_eq!(st[id], "pass", "{id}: {:#}", check(&report, id));
    }
    let login = check(&report, "database.login");
    assert!(
        login["evidence"].to_string().contains("debug-pod"),
        "the login names its vantage: {login:#}"
    );
    // The session came from the probe pod: no port-forward to the database pod.
    let log = cluster.server.requests();
    assert!(
        !log.iter()
            .any(|r| r.subresource.as_deref() == Some("portforward")
                && r.name.as_deref().is_some_and(|n| n.starts_with("postgres"))),
        "no port-forward to the database"
    );
    assert!(managed_pods(&cluster).await.is_empty());
    // The pod got the password from the Secret through the kubelet, never in its spec.
    let create = log
        .iter()
        .find(|r| r.verb == "create" && r.resource == "pods")
        .expect("the probe pod");
    assert!(create.name.is_none());
}
