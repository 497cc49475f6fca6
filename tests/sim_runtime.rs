//! Gathering for the runtime checks against the simulated cluster, through the real kube-rs
//! client: pod logs (current and previous, redacted, 400 for "no previous container"), the
//! health endpoint through a real port-forward and a real HTTP/1.1 exchange, and the pods
//! behind the database Service.

use std::time::Duration;

use elsadoctor::domain::elsa::{ElsaVersion, Flavor, Identity};
use elsadoctor::facts::{HealthAnswer, Probe};
use elsadoctor::gather::{db, health, logs};
use elsadoctor_sim::{Scenario, SimServer};
use k8s_openapi::api::core::v1::{Pod, Service};
use kube::api::{Api, ListParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};

const TIMEOUT: Duration = Duration::from_secs(5);

const MANIFESTS: &str = r#"
apiVersion: v1
kind: Namespace
metadata: {name: elsa}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: elsa-server, namespace: elsa, labels: {app: elsa-server}}
spec:
  replicas: 3
  selector: {matchLabels: {app: elsa-server}}
  template:
    metadata: {labels: {app: elsa-server}}
    spec:
      containers:
        - name: elsa-server
          image: elsaworkflows/elsa-server-v3:3.8.0
          ports: [{name: http, containerPort: 8080}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: postgres, namespace: elsa, labels: {app: postgres}}
spec:
  replicas: 1
  selector: {matchLabels: {app: postgres}}
  template:
    metadata: {labels: {app: postgres}}
    spec:
      containers:
        - name: postgres
          image: postgres:latest
---
apiVersion: v1
kind: Service
metadata: {name: postgres, namespace: elsa}
spec:
  selector: {app: postgres}
  ports: [{port: 5432}]
"#;

const SIM: &str = r#"
namespace: elsa
pods:
  - workload: deployment/elsa-server
    name: elsa-a
    http:
      port: 8080
      responses:
        "/health/ready": {status: 503, body: "Unhealthy: Elsa workflow store 'WorkflowInstanceStore' is not reachable."}
    logs:
      elsa-server: |
        info: Now listening on: http://[::]:8080
  - workload: deployment/elsa-server
    name: elsa-b
    ready: false
    containers:
      elsa-server:
        restarts: 4
        waiting: {reason: CrashLoopBackOff}
        lastTerminated: {reason: Error, exitCode: 139}
    previousLogs:
      elsa-server: |
        fail: connecting with Host=postgres;Username=elsa;Password=hunter2-secret
        Npgsql.PostgresException (0x80004005): 28P01: password authentication failed for user "elsa"
  - workload: deployment/elsa-server
    name: elsa-c
    containers:
      elsa-server:
        restarts: 1
  - workload: deployment/postgres
    name: postgres-0
"#;

async fn start(sim: &str) -> (SimServer, Client) {
    let scenario = Scenario::from_documents("runtime", MANIFESTS, Some(sim)).expect("scenario");
    let server = SimServer::start(scenario).await.expect("sim starts");
    let kubeconfig = Kubeconfig::from_yaml(&server.kubeconfig_yaml()).expect("kubeconfig");
    let config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .expect("config");
    (server, Client::try_from(config).expect("client"))
}

async fn elsa_pods(client: &Client) -> Vec<Pod> {
    let api: Api<Pod> = Api::namespaced(client.clone(), "elsa");
    let mut pods = api
        .list(&ListParams::default().labels("app=elsa-server"))
        .await
        .expect("pods")
        .items;
    pods.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
    pods
}

fn identity() -> Identity {
    Identity {
        flavor: Flavor::ServerWeb,
        version: Some(ElsaVersion::new(3, 8)),
        image: "elsaworkflows/elsa-server-v3:3.8.0".into(),
        container: "elsa-server".into(),
    }
}

#[tokio::test]
async fn logs_are_read_per_pod_with_the_previous_instance_and_redacted() {
    let (server, client) = start(SIM).await;
    let pods = elsa_pods(&client).await;
    let Probe::Observed(read) = logs::gather(&client, "elsa", &pods, "elsa-server", TIMEOUT).await
    else {
        panic!("logs not observed");
    };
    let find = |pod: &str, previous: bool| {
        read.iter()
            .find(|l| l.pod == pod && l.previous == previous)
            .map(|l| l.text.clone())
    };
    assert!(
        matches!(find("elsa-a", false), Some(Probe::Observed(t)) if t.contains("Now listening"))
    );
    assert_eq!(find("elsa-a", true), None, "no restarts: no previous read");
    let Some(Probe::Observed(prev)) = find("elsa-b", true) else {
        panic!("previous logs of elsa-b: {read:?}");
    };
    assert!(prev.contains("28P01"), "{prev}");
    assert!(
        !prev.contains("hunter2-secret"),
        "redacted at gather time: {prev}"
    );
    // Restarted but no terminated instance left to read: nothing there, not a failure.
    assert_eq!(find("elsa-c", true), Some(Probe::Absent));
    // Every read asked for a bounded tail of the Elsa container.
    let log_reads: Vec<_> = server
        .requests()
        .into_iter()
        .filter(|r| r.subresource.as_deref() == Some("log"))
        .collect();
    assert_eq!(log_reads.len(), 5, "{log_reads:?}");
    assert!(log_reads.iter().all(|r| {
        let q = r.query.clone().unwrap_or_default();
        q.contains("tailLines=200")
            && q.contains("container=elsa-server")
            && q.contains("limitBytes=")
    }));
}

#[tokio::test]
async fn refused_log_reads_make_the_fact_forbidden() {
    let sim = format!("{SIM}\nrbac:\n  deny:\n    - {{verb: get, resource: pods/log}}\n");
    let (_server, client) = start(&sim).await;
    let pods = elsa_pods(&client).await;
    let got = logs::gather(&client, "elsa", &pods, "elsa-server", TIMEOUT).await;
    assert_eq!(
        got,
        Probe::Forbidden {
            verb: "get".into(),
            resource: "pods/log".into()
        }
    );
}

#[tokio::test]
async fn the_health_endpoint_answers_through_a_port_forward() {
    let (server, client) = start(SIM).await;
    let pods = elsa_pods(&client).await;
    let Probe::Observed(h) =
        health::gather(&client, "elsa", &pods, Some(&identity()), TIMEOUT).await
    else {
        panic!("health not observed");
    };
    assert_eq!(
        (h.pod.as_str(), h.port, h.path.as_str()),
        ("elsa-a", 8080, "/health/ready")
    );
    assert_eq!(
        h.answer,
        HealthAnswer::Http {
            status: 503,
            body: "Unhealthy: Elsa workflow store 'WorkflowInstanceStore' is not reachable.".into()
        }
    );
    let forwards: Vec<_> = server
        .requests()
        .into_iter()
        .filter(|r| r.subresource.as_deref() == Some("portforward"))
        .collect();
    assert_eq!(forwards.len(), 1);
    assert_eq!(forwards[0].status, 101);
    // A 3.7 image is asked at `/`, which this pod does not answer: a real 404.
    let mut id = identity();
    id.version = Some(ElsaVersion::new(3, 7));
    let Probe::Observed(h) = health::gather(&client, "elsa", &pods, Some(&id), TIMEOUT).await
    else {
        panic!("health not observed");
    };
    assert_eq!(h.path, "/");
    assert!(
        matches!(h.answer, HealthAnswer::Http { status: 404, .. }),
        "{h:?}"
    );
}

#[tokio::test]
async fn a_closed_port_a_refusal_and_no_ready_pod_are_told_apart() {
    // No HTTP server in the pod: the kubelet's "connection refused" is the observation.
    let quiet = SIM.replace("    http:\n", "    httpOff:\n");
    let quiet = quiet
        .lines()
        .filter(|l| {
            !l.contains("httpOff")
                && !l.contains("port: 8080")
                && !l.contains("responses:")
                && !l.contains("/health/ready")
        })
        .collect::<Vec<_>>()
        .join("\n");
    let (_server, client) = start(&quiet).await;
    let pods = elsa_pods(&client).await;
    let got = health::gather(&client, "elsa", &pods, Some(&identity()), TIMEOUT).await;
    let Probe::Observed(h) = got else {
        panic!("not observed: {got:?}");
    };
    assert!(
        matches!(&h.answer, HealthAnswer::Refused { message } if message.contains("connection refused")),
        "{h:?}"
    );
    // Port-forward refused by RBAC.
    let sim = format!("{SIM}\nrbac:\n  deny:\n    - {{verb: get, resource: pods/portforward}}\n");
    let (_server, client) = start(&sim).await;
    let pods = elsa_pods(&client).await;
    assert_eq!(
        health::gather(&client, "elsa", &pods, Some(&identity()), TIMEOUT).await,
        Probe::Forbidden {
            verb: "get".into(),
            resource: "pods/portforward".into()
        }
    );
    // Only not-ready pods, or no version: nothing is asked.
    let not_ready: Vec<Pod> = pods
        .iter()
        .filter(|p| p.metadata.name.as_deref() == Some("elsa-b"))
        .cloned()
        .collect();
    assert!(matches!(
        health::gather(&client, "elsa", &not_ready, Some(&identity()), TIMEOUT).await,
        Probe::NotAttempted(why) if why.contains("no ready")
    ));
    let mut id = identity();
    id.version = None;
    assert!(matches!(
        health::gather(&client, "elsa", &pods, Some(&id), TIMEOUT).await,
        Probe::NotAttempted(why) if why.contains("version not known")
    ));
}

#[tokio::test]
async fn the_database_service_leads_to_its_pods_once() {
    let (server, client) = start(SIM).await;
    let services: Vec<Service> = Api::<Service>::namespaced(client.clone(), "elsa")
        .list(&ListParams::default())
        .await
        .expect("services")
        .items;
    let before = server.requests().len();
    let b = db::backend(&client, "elsa", &services, "postgres", TIMEOUT)
        .await
        .expect("backend");
    assert_eq!(b.service, "postgres");
    let Probe::Observed(pods) = &b.pods else {
        panic!("{:?}", b.pods);
    };
    let names: Vec<_> = pods
        .iter()
        .filter_map(|p| p.metadata.name.clone())
        .collect();
    assert_eq!(names, ["postgres-0"]);
    let after = server.requests();
    assert_eq!(
        after.len() - before,
        1,
        "one pod list, the Service came from the list given"
    );
    assert!(
        after
            .last()
            .and_then(|r| r.query.clone())
            .is_some_and(|q| q.contains("labelSelector=app%3Dpostgres"))
    );
    let external = db::backend(&client, "elsa", &services, "db.example.com", TIMEOUT).await;
    assert!(matches!(external, Err(Probe::NotAttempted(why)) if why.contains("external")));
}

#[tokio::test]
async fn http_for_a_workload_without_pods_is_a_scenario_error() {
    let sim = "namespace: elsa\npods:\n  - workload: deployment/postgres\n    count: 0\n    http: {responses: {\"/\": {body: ok}}}\n";
    let scenario = Scenario::from_documents("runtime", MANIFESTS, Some(sim)).expect("scenario");
    let err = SimServer::start(scenario)
        .await
        .expect_err("no pods to serve");
    assert!(
        err.to_string()
            .contains("http: no pods of deployment/postgres"),
        "{err}"
    );
}

#[tokio::test]
async fn http_without_a_name_serves_every_pod_of_the_workload() {
    let sim = "namespace: elsa\npods:\n  - workload: deployment/elsa-server\n    count: 3\n    http: {responses: {\"/health/ready\": {body: Healthy}}}\n";
    let (_server, client) = start(sim).await;
    let pods = elsa_pods(&client).await;
    assert_eq!(pods.len(), 3);
    for p in &pods {
        let got = health::gather(
            &client,
            "elsa",
            std::slice::from_ref(p),
            Some(&identity()),
            TIMEOUT,
        )
        .await;
        assert!(
            matches!(&got, Probe::Observed(h) if h.answer == HealthAnswer::Http { status: 200, body: "Healthy".into() }),
            "{got:?}"
        );
    }
}
