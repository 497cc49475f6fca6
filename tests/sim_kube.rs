//! The simulated API server driven by the real kube-rs client: discovery,
//! get/list with selectors and paging, Status errors (404, 403, 400, 401),
//! injected faults, SelfSubjectRulesReview, logs, watch, and every fixture
//! scenario under `tests/fixtures/scenarios`.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use elsadoctor_sim::{Scenario, SimServer, Transport};
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec,
    SelfSubjectRulesReview, SelfSubjectRulesReviewSpec,
};
use k8s_openapi::api::core::v1::{
    ConfigMap, Endpoints, Event, Namespace, PersistentVolumeClaim, Pod, Secret, Service,
    ServiceAccount,
};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Api, ListParams, LogParams, PostParams, WatchEvent, WatchParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/scenarios")
}

fn scenario(name: &str) -> Scenario {
    Scenario::load_dir(&fixtures().join(name)).unwrap_or_else(|e| panic!("{e}"))
}

async fn client(server: &SimServer) -> Client {
    let kubeconfig = Kubeconfig::from_yaml(&server.kubeconfig_yaml()).expect("kubeconfig parses");
    let config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .expect("config");
    Client::try_from(config).expect("client")
}

async fn start(name: &str) -> (SimServer, Client) {
    let server = SimServer::start(scenario(name))
        .await
        .expect("server starts");
    let c = client(&server).await;
    (server, c)
}

fn api_error(e: kube::Error) -> kube::core::Status {
    match e {
        kube::Error::Api(s) => *s,
        other => panic!("expected an API error, got {other:?}"),
    }
}

fn names<K: kube::Resource>(items: &[K]) -> Vec<String> {
    items.iter().filter_map(|o| o.meta().name.clone()).collect()
}

#[tokio::test]
async fn version_and_kubeconfig() {
    let (server, client) = start("healthy").await;
    let v = client.apiserver_version().await.expect("version");
    assert_eq!(v.major, "1");
    assert_eq!(v.minor, "33");
    assert_eq!(v.git_version, "v1.33.1");
    assert_eq!(v.platform, "linux/amd64");
    assert_eq!(client.default_namespace(), "elsa");
    // TLS, as a real API server: the kubeconfig carries the CA that signed its certificate.
    assert!(server.url().starts_with("https://127.0.0.1:"));
    assert_eq!(server.url(), format!("https://{}", server.addr()));
    assert!(
        server
            .kubeconfig_yaml()
            .contains("certificate-authority-data: ")
    );
    assert!(server.token().starts_with("sim-token-"));
    let kc = server.kubeconfig_yaml();
    assert!(kc.contains("current-context: sim"));
    assert!(kc.contains(server.token()));
    let other = SimServer::start(scenario("healthy"))
        .await
        .expect("second server");
    assert_ne!(other.token(), server.token());
    other.shutdown().await;
    server.shutdown().await;
}

#[tokio::test]
async fn version_override_from_sim_yaml() {
    let s = Scenario::from_documents(
        "v",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n",
        Some("version: {minor: \"29\", gitVersion: v1.29.4}\n"),
    )
    .expect("loads");
    let server = SimServer::start(s).await.expect("starts");
    let v = client(&server)
        .await
        .apiserver_version()
        .await
        .expect("version");
    assert_eq!((v.major.as_str(), v.minor.as_str()), ("1", "29"));
    assert_eq!(v.git_version, "v1.29.4");
}

#[tokio::test]
async fn namespaces_get_and_not_found() {
    let (server, client) = start("namespace-missing").await;
    let api: Api<Namespace> = Api::all(client.clone());
    let ns = api.get("elsa").await.expect("elsa exists");
    assert_eq!(ns.status.and_then(|s| s.phase).as_deref(), Some("Active"));
    let e = api_error(api.get("elsa-prod").await.expect_err("missing"));
    assert_eq!(e.code, 404);
    assert_eq!(e.reason, "NotFound");
    assert_eq!(e.message, "namespaces \"elsa-prod\" not found");
    let all = api.list(&ListParams::default()).await.expect("list");
    let all = names(&all.items);
    for n in ["default", "elsa", "kube-system"] {
        assert!(all.contains(&n.to_string()), "{all:?}");
    }
    assert!(!all.contains(&"elsa-prod".to_string()));
    // A list in a missing namespace is an empty 200, a get there a 404 for the object.
    let pods: Api<Pod> = Api::namespaced(client.clone(), "elsa-prod");
    assert!(
        pods.list(&ListParams::default())
            .await
            .expect("empty list")
            .items
            .is_empty()
    );
    let e = api_error(
        pods.get("elsa-server-6d5f8b7c9-x2k4q")
            .await
            .expect_err("404"),
    );
    assert_eq!(e.code, 404);
    assert_eq!(e.message, "pods \"elsa-server-6d5f8b7c9-x2k4q\" not found");
    let deploys: Api<Deployment> = Api::namespaced(client, "elsa-prod");
    let e = api_error(deploys.get("elsa-server").await.expect_err("404"));
    assert_eq!(e.message, "deployments.apps \"elsa-server\" not found");
    let raw = server.requests();
    let last = raw.last().expect("logged");
    assert_eq!(
        (
            last.verb.as_str(),
            last.group.as_str(),
            last.resource.as_str(),
            last.status
        ),
        ("get", "apps", "deployments", 404)
    );
}

#[tokio::test]
async fn list_deployments_and_typed_objects() {
    let (_server, client) = start("healthy").await;
    let api: Api<Deployment> = Api::namespaced(client.clone(), "elsa");
    let list = api.list(&ListParams::default()).await.expect("list");
    assert_eq!(names(&list.items), ["elsa-server", "postgres"]);
    let elsa = &list.items[0];
    let status = elsa.status.as_ref().expect("status");
    assert_eq!(status.ready_replicas, Some(2));
    assert_eq!(status.available_replicas, Some(2));
    let containers = &elsa
        .spec
        .as_ref()
        .expect("spec")
        .template
        .spec
        .as_ref()
        .expect("pod spec")
        .containers;
    assert_eq!(
        containers[0].image.as_deref(),
        Some("elsaworkflows/elsa-server-v3-5:latest")
    );
    let env = containers[0].env.as_ref().expect("env");
    let pos = |n: &str| env.iter().position(|e| e.name == n).expect(n);
    assert!(pos("POSTGRES_PASSWORD") < pos("ConnectionStrings__PostgreSql"));
    assert!(list.metadata.resource_version.is_some());
    // Every served kind deserializes into its k8s-openapi type.
    let ns = "elsa";
    assert_eq!(
        Api::<Pod>::namespaced(client.clone(), ns)
            .list(&ListParams::default())
            .await
            .expect("pods")
            .items
            .len(),
        3
    );
    assert_eq!(
        Api::<ReplicaSet>::namespaced(client.clone(), ns)
            .list(&ListParams::default())
            .await
            .expect("rs")
            .items
            .len(),
        2
    );
    assert!(
        Api::<StatefulSet>::namespaced(client.clone(), ns)
            .list(&ListParams::default())
            .await
            .expect("sts")
            .items
            .is_empty()
    );
    let svcs = Api::<Service>::namespaced(client.clone(), ns)
        .list(&ListParams::default())
        .await
        .expect("svc");
    assert_eq!(names(&svcs.items), ["elsa-server", "postgres"]);
    let ep = Api::<Endpoints>::namespaced(client.clone(), ns)
        .get("elsa-server")
        .await
        .expect("endpoints");
    let subsets = ep.subsets.expect("subsets");
    assert_eq!(subsets[0].addresses.as_ref().map(Vec::len), Some(2));
    let slices = Api::<EndpointSlice>::namespaced(client.clone(), ns)
        .list(&ListParams::default().labels("kubernetes.io/service-name=elsa-server"))
        .await
        .expect("slices");
    assert_eq!(slices.items.len(), 1);
    let secret = Api::<Secret>::namespaced(client.clone(), ns)
        .get("postgres-secret")
        .await
        .expect("secret");
    assert!(secret.data.expect("data").contains_key("password"));
    assert!(
        Api::<ConfigMap>::namespaced(client.clone(), ns)
            .get("kube-root-ca.crt")
            .await
            .is_ok()
    );
    assert!(
        Api::<ServiceAccount>::namespaced(client.clone(), ns)
            .get("default")
            .await
            .is_ok()
    );
    assert!(
        Api::<PersistentVolumeClaim>::namespaced(client.clone(), ns)
            .get("postgres-data")
            .await
            .is_ok()
    );
    let all_pods = Api::<Pod>::all(client.clone())
        .list(&ListParams::default())
        .await
        .expect("all pods");
    assert_eq!(all_pods.items.len(), 3);
    let scale = api.get_scale("elsa-server").await.expect("scale");
    assert_eq!(scale.spec.and_then(|s| s.replicas), Some(2));
    assert_eq!(
        scale
            .status
            .map(|s| s.selector.unwrap_or_default())
            .as_deref(),
        Some("app=elsa-server")
    );
}

#[tokio::test]
async fn label_selectors_reach_the_server() {
    let (server, client) = start("two-candidates").await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), "elsa");
    let lp = ListParams::default().labels("app=elsa-server");
    let list = pods.list(&lp).await.expect("list");
    assert_eq!(
        names(&list.items),
        ["elsa-server-6d5f8b7c9-p7v9w", "elsa-server-6d5f8b7c9-x2k4q"]
    );
    let log = server.requests();
    let req = log.last().expect("logged");
    assert_eq!(req.verb, "list");
    assert_eq!(req.resource, "pods");
    assert_eq!(req.namespace.as_deref(), Some("elsa"));
    assert!(
        req.query
            .as_deref()
            .is_some_and(|q| q.contains("labelSelector=app%3Delsa-server")),
        "{:?}",
        req.query
    );
    let set_based = pods
        .list(
            &ListParams::default()
                .labels("app.kubernetes.io/name=elsa-server,track notin (canary)"),
        )
        .await
        .expect("list");
    assert_eq!(set_based.items.len(), 2);
    let canary = pods
        .list(&ListParams::default().labels("app.kubernetes.io/name in (elsa-server),track"))
        .await
        .expect("list");
    assert_eq!(names(&canary.items), ["elsa-server-canary-8c6b9f7d5-r4w2n"]);
    let none = pods
        .list(&ListParams::default().labels("!app"))
        .await
        .expect("list");
    assert!(none.items.is_empty());
    // Malformed selector: a real 400 Status.
    let e = api_error(
        pods.list(&ListParams::default().labels("app in (a"))
            .await
            .expect_err("400"),
    );
    assert_eq!(e.code, 400);
    assert_eq!(e.reason, "BadRequest");
    assert_eq!(
        e.message,
        "unable to parse requirement: found '', expected: ',' or ')'"
    );
    // Field selectors on pods.
    let on_node = pods
        .list(&ListParams::default().fields("spec.nodeName=node-3,status.phase=Running"))
        .await
        .expect("list");
    assert_eq!(
        names(&on_node.items),
        ["elsa-server-canary-8c6b9f7d5-r4w2n"]
    );
    let e = api_error(
        pods.list(&ListParams::default().fields("spec.foo=bar"))
            .await
            .expect_err("400"),
    );
    assert_eq!((e.code, e.reason.as_str()), (400, "BadRequest"));
    assert_eq!(e.message, "field label not supported: spec.foo");
    let deploys: Api<Deployment> = Api::namespaced(client, "elsa");
    let e = api_error(
        deploys
            .list(&ListParams::default().fields("status.phase=Running"))
            .await
            .expect_err("400"),
    );
    assert_eq!(e.message, "field label not supported: status.phase");
    let by_name = deploys
        .list(&ListParams::default().fields("metadata.name=elsa-server-canary"))
        .await
        .expect("list");
    assert_eq!(names(&by_name.items), ["elsa-server-canary"]);
}

#[tokio::test]
async fn events_by_field_selector() {
    let (server, client) = start("crashloop-oom").await;
    let events: Api<Event> = Api::namespaced(client, "elsa");
    let lp = ListParams::default()
        .fields("involvedObject.name=elsa-server-59c7d4f8b6-k8m2t,involvedObject.kind=Pod");
    let list = events.list(&lp).await.expect("list");
    assert_eq!(list.items.len(), 2);
    let backoff = list
        .items
        .iter()
        .find(|e| e.reason.as_deref() == Some("BackOff"))
        .expect("BackOff");
    assert_eq!(backoff.type_.as_deref(), Some("Warning"));
    assert_eq!(backoff.count, Some(24));
    assert_eq!(backoff.involved_object.namespace.as_deref(), Some("elsa"));
    assert!(backoff.last_timestamp.is_some() && backoff.first_timestamp.is_some());
    let warnings = events
        .list(&ListParams::default().fields("type=Warning"))
        .await
        .expect("list");
    assert_eq!(warnings.items.len(), 1);
    let q = server
        .requests()
        .last()
        .and_then(|r| r.query.clone())
        .unwrap_or_default();
    assert!(q.contains("fieldSelector=type%3DWarning"), "{q}");
}

#[tokio::test]
async fn rbac_denials_are_real_forbidden_statuses() {
    let (server, client) = start("pods-forbidden").await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), "elsa");
    let e = api_error(pods.list(&ListParams::default()).await.expect_err("403"));
    assert_eq!(e.code, 403);
    assert_eq!(e.reason, "Forbidden");
    assert_eq!(
        e.message,
        "pods is forbidden: User \"system:serviceaccount:elsa:doctor\" cannot list resource \"pods\" in API group \"\" in the namespace \"elsa\""
    );
    let details = e.details.expect("details");
    assert_eq!(details.kind, "pods");
    let all: Api<Pod> = Api::all(client.clone());
    let e = api_error(all.list(&ListParams::default()).await.expect_err("403"));
    assert_eq!(
        e.message,
        "pods is forbidden: User \"system:serviceaccount:elsa:doctor\" cannot list resource \"pods\" in API group \"\" at the cluster scope"
    );
    // Getting a single pod is still allowed; so is listing deployments.
    assert!(pods.get("elsa-server-6d5f8b7c9-x2k4q").await.is_ok());
    assert!(
        Api::<Deployment>::namespaced(client.clone(), "elsa")
            .list(&ListParams::default())
            .await
            .is_ok()
    );
    let e = api_error(
        Api::<Event>::namespaced(client.clone(), "elsa")
            .list(&ListParams::default())
            .await
            .expect_err("403"),
    );
    assert!(
        e.message.starts_with("events is forbidden: "),
        "{}",
        e.message
    );
    let statuses: Vec<u16> = server.requests().iter().map(|r| r.status).collect();
    assert_eq!(statuses, [403, 403, 200, 200, 403]);

    // The rules review agrees with what was enforced.
    let reviews: Api<SelfSubjectRulesReview> = Api::all(client.clone());
    let review = SelfSubjectRulesReview {
        spec: SelfSubjectRulesReviewSpec {
            namespace: Some("elsa".into()),
        },
        ..Default::default()
    };
    let out = reviews
        .create(&PostParams::default(), &review)
        .await
        .expect("review");
    let status = out.status.expect("status");
    assert!(!status.incomplete);
    let verbs_for = |group: &str, resource: &str| -> Vec<String> {
        status
            .resource_rules
            .iter()
            .filter(|r| {
                r.api_groups
                    .as_ref()
                    .is_some_and(|g| g.iter().any(|g| g == group || g == "*"))
                    && r.resources
                        .as_ref()
                        .is_some_and(|rs| rs.iter().any(|x| x == resource || x == "*"))
            })
            .flat_map(|r| r.verbs.clone())
            .collect()
    };
    let pod_verbs = verbs_for("", "pods");
    assert!(pod_verbs.contains(&"get".to_string()), "{pod_verbs:?}");
    assert!(!pod_verbs.contains(&"list".to_string()), "{pod_verbs:?}");
    assert!(!pod_verbs.contains(&"*".to_string()), "{pod_verbs:?}");
    assert!(!verbs_for("", "events").contains(&"list".to_string()));
    assert!(verbs_for("apps", "deployments").contains(&"list".to_string()));
    assert!(!status.non_resource_rules.is_empty());

    // So does an access review.
    let access: Api<SelfSubjectAccessReview> = Api::all(client);
    let ask = |verb: &str, resource: &str| SelfSubjectAccessReview {
        spec: SelfSubjectAccessReviewSpec {
            resource_attributes: Some(ResourceAttributes {
                namespace: Some("elsa".into()),
                verb: Some(verb.into()),
                resource: Some(resource.into()),
                ..Default::default()
            }),
            ..Default::default()
        },
        ..Default::default()
    };
    let denied = access
        .create(&PostParams::default(), &ask("list", "pods"))
        .await
        .expect("review");
    assert!(!denied.status.expect("status").allowed);
    let allowed = access
        .create(&PostParams::default(), &ask("get", "pods"))
        .await
        .expect("review");
    assert!(allowed.status.expect("status").allowed);
}

#[tokio::test]
async fn rules_mode_with_namespaced_binding() {
    let sim = r#"
namespace: elsa
rbac:
  rules:
    - {apiGroups: ["", "apps"], resources: ["*"], verbs: ["get", "list", "watch"], namespaces: [elsa]}
"#;
    let s = Scenario::from_documents(
        "rules",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a, namespace: elsa}\n",
        Some(sim),
    )
    .expect("loads");
    let server = SimServer::start(s).await.expect("starts");
    let client = client(&server).await;
    assert!(
        Api::<ConfigMap>::namespaced(client.clone(), "elsa")
            .get("a")
            .await
            .is_ok()
    );
    // Discovery is always allowed.
    assert!(client.apiserver_version().await.is_ok());
    let e = api_error(
        Api::<Namespace>::all(client.clone())
            .list(&ListParams::default())
            .await
            .expect_err("403"),
    );
    assert_eq!(
        e.message,
        "namespaces is forbidden: User \"system:serviceaccount:elsa:doctor\" cannot list resource \"namespaces\" in API group \"\" at the cluster scope"
    );
    // GET namespaces/elsa is authorized in the namespace "elsa" (a real RBAC quirk).
    assert!(
        Api::<Namespace>::all(client.clone())
            .get("elsa")
            .await
            .is_ok()
    );
    let e = api_error(
        Api::<Namespace>::all(client.clone())
            .get("default")
            .await
            .expect_err("403"),
    );
    assert_eq!(
        e.message,
        "namespaces \"default\" is forbidden: User \"system:serviceaccount:elsa:doctor\" cannot get resource \"namespaces\" in API group \"\" in the namespace \"default\""
    );
    let e = api_error(
        Api::<Deployment>::namespaced(client.clone(), "default")
            .list(&ListParams::default())
            .await
            .expect_err("403"),
    );
    assert!(
        e.message.starts_with("deployments.apps is forbidden: "),
        "{}",
        e.message
    );
    assert_eq!(e.details.map(|d| d.group), Some("apps".to_string()));
}

#[tokio::test]
async fn fault_fails_twice_then_succeeds() {
    let (server, client) = start("api-flaky").await;
    let api: Api<Namespace> = Api::all(client.clone());
    for _ in 0..2 {
        let e = api_error(api.get("elsa").await.expect_err("fault"));
        assert_eq!(e.code, 500);
        assert_eq!(e.reason, "InternalError");
        assert_eq!(e.message, "Internal error occurred: simulated fault");
    }
    assert!(api.get("elsa").await.is_ok());
    let log: Vec<(String, String, u16)> = server
        .requests()
        .into_iter()
        .map(|r| (r.verb, r.resource, r.status))
        .collect();
    assert_eq!(
        log,
        [
            ("get".to_string(), "namespaces".to_string(), 500),
            ("get".to_string(), "namespaces".to_string(), 500),
            ("get".to_string(), "namespaces".to_string(), 200),
        ]
    );
    // kube-rs retries a 503 on its own: one call, two requests.
    let deploys: Api<Deployment> = Api::namespaced(client, "elsa");
    assert_eq!(
        deploys
            .list(&ListParams::default())
            .await
            .expect("retried")
            .items
            .len(),
        2
    );
    let statuses: Vec<u16> = server
        .requests()
        .iter()
        .filter(|r| r.resource == "deployments")
        .map(|r| r.status)
        .collect();
    assert_eq!(statuses, [503, 200]);
}

#[tokio::test]
async fn paging_with_limit_and_continue() {
    let s = Scenario::from_documents(
        "paging",
        include_str!("fixtures/scenarios/healthy/manifests.yaml"),
        Some("namespace: elsa\nnoise: {configmaps: 25}\n"),
    )
    .expect("loads");
    let server = SimServer::start(s).await.expect("starts");
    let client = client(&server).await;
    let api: Api<ConfigMap> = Api::namespaced(client, "elsa");
    let everything = api.list(&ListParams::default()).await.expect("list");
    let total = everything.items.len();
    assert_eq!(total, 26); // 25 noise + kube-root-ca.crt
    let mut seen = Vec::new();
    let mut lp = ListParams::default().limit(10);
    let mut pages = 0;
    loop {
        let page = api.list(&lp).await.expect("page");
        pages += 1;
        seen.extend(names(&page.items));
        match page.metadata.continue_.filter(|c| !c.is_empty()) {
            Some(token) => {
                let remaining = page
                    .metadata
                    .remaining_item_count
                    .expect("remainingItemCount");
                assert_eq!(
                    usize::try_from(remaining).expect("count"),
                    total - seen.len()
                );
                lp = ListParams::default().limit(10).continue_token(&token);
            }
            None => break,
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(seen, names(&everything.items));
    // With a selector: chunks still line up, no remainingItemCount (like etcd).
    let lp = ListParams::default()
        .labels("app in (noise-1,noise-2,noise-3)")
        .limit(2);
    let first = api.list(&lp).await.expect("page");
    assert_eq!(first.items.len(), 2);
    assert!(first.metadata.remaining_item_count.is_none());
    let token = first.metadata.continue_.expect("continue");
    let second = api
        .list(
            &ListParams::default()
                .labels("app in (noise-1,noise-2,noise-3)")
                .limit(2)
                .continue_token(&token),
        )
        .await
        .expect("page");
    assert_eq!(second.items.len(), 1);
    assert!(
        second
            .metadata
            .continue_
            .as_deref()
            .is_none_or(str::is_empty)
    );
    let e = api_error(
        api.list(&ListParams::default().limit(2).continue_token("not-a-token"))
            .await
            .expect_err("400"),
    );
    assert_eq!(e.code, 400);
    assert!(
        e.message.starts_with("continue key is not valid: "),
        "{}",
        e.message
    );
}

#[tokio::test]
async fn discovery_legacy_and_aggregated() {
    let (_server, client) = start("healthy").await;
    let discovery = kube::discovery::Discovery::new(client.clone())
        .run()
        .await
        .expect("discovery");
    let apps = discovery.get("apps").expect("apps group");
    let kinds: Vec<String> = apps
        .recommended_resources()
        .into_iter()
        .map(|(ar, _)| ar.kind)
        .collect();
    for k in ["Deployment", "ReplicaSet", "StatefulSet"] {
        assert!(kinds.contains(&k.to_string()), "{kinds:?}");
    }
    let core = discovery.get("").expect("core group");
    let (pods, caps) = core
        .recommended_resources()
        .into_iter()
        .find(|(ar, _)| ar.plural == "pods")
        .expect("pods");
    assert_eq!(pods.kind, "Pod");
    assert!(caps.supports_operation("list"));
    assert!(discovery.get("discovery.k8s.io").is_some());
    assert!(discovery.get("authorization.k8s.io").is_some());
    let aggregated = kube::discovery::Discovery::new(client.clone())
        .run_aggregated()
        .await
        .expect("aggregated discovery");
    assert!(aggregated.get("apps").is_some());
    assert!(aggregated.get("").is_some());
    let groups = client.list_api_groups().await.expect("groups");
    assert!(groups.groups.iter().any(|g| g.name == "apps"));
    let core_resources = client.list_core_api_resources("v1").await.expect("core");
    assert!(
        core_resources
            .resources
            .iter()
            .any(|r| r.name == "pods/log")
    );
}

#[tokio::test]
async fn unknown_paths_and_bad_bodies() {
    let (server, client) = start("healthy").await;
    let req = axum::http::Request::get("/apis/example.com/v1/widgets")
        .body(Vec::new())
        .expect("request");
    let e = api_error(
        client
            .request::<serde_json::Value>(req)
            .await
            .expect_err("404"),
    );
    assert_eq!((e.code, e.reason.as_str()), (404, "NotFound"));
    assert_eq!(
        e.message,
        "the server could not find the requested resource"
    );
    let req = axum::http::Request::get("/api/v1/namespaces/elsa/widgets")
        .body(Vec::new())
        .expect("request");
    let e = api_error(
        client
            .request::<serde_json::Value>(req)
            .await
            .expect_err("404"),
    );
    assert_eq!(
        e.message,
        "the server could not find the requested resource"
    );
    let req = axum::http::Request::post("/apis/authorization.k8s.io/v1/selfsubjectrulesreviews")
        .header("content-type", "application/json")
        .body(b"{not json".to_vec())
        .expect("request");
    let e = api_error(
        client
            .request::<serde_json::Value>(req)
            .await
            .expect_err("400"),
    );
    assert_eq!((e.code, e.reason.as_str()), (400, "BadRequest"));
    // Writes are refused (read-only cluster), after authorization.
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "elsa");
    let e = api_error(
        cms.create(&PostParams::default(), &ConfigMap::default())
            .await
            .expect_err("405"),
    );
    assert_eq!((e.code, e.reason.as_str()), (405, "MethodNotAllowed"));
    // A wrong token is a 401 Unauthorized Status.
    let bad = server
        .kubeconfig_yaml()
        .replace(server.token(), "sim-token-wrong");
    let config = Config::from_custom_kubeconfig(
        Kubeconfig::from_yaml(&bad).expect("kubeconfig"),
        &KubeConfigOptions::default(),
    )
    .await
    .expect("config");
    let bad_client = Client::try_from(config).expect("client");
    let e = api_error(
        Api::<Pod>::namespaced(bad_client, "elsa")
            .list(&ListParams::default())
            .await
            .expect_err("401"),
    );
    assert_eq!(
        (e.code, e.reason.as_str(), e.message.as_str()),
        (401, "Unauthorized", "Unauthorized")
    );
    assert_eq!(server.requests().last().map(|r| r.status), Some(401));
}

#[tokio::test]
async fn pod_logs() {
    let server = SimServer::start(Scenario::builtin_demo())
        .await
        .expect("starts");
    let client = client(&server).await;
    let pods: Api<Pod> = Api::namespaced(client, "elsa");
    let running = pods
        .logs("elsa-server-7c9d4b6f8-k2x9p", &LogParams::default())
        .await
        .expect("logs");
    assert!(
        running.contains("Now listening on: http://[::]:8080"),
        "{running}"
    );
    let previous = pods
        .logs(
            "elsa-server-7c9d4b6f8-m4tqz",
            &LogParams {
                previous: true,
                tail_lines: Some(2),
                ..LogParams::default()
            },
        )
        .await
        .expect("previous logs");
    assert_eq!(previous.lines().count(), 2);
    let e = api_error(
        pods.logs(
            "elsa-server-7c9d4b6f8-k2x9p",
            &LogParams {
                previous: true,
                ..LogParams::default()
            },
        )
        .await
        .expect_err("no previous"),
    );
    assert_eq!(e.code, 400);
    assert_eq!(
        e.message,
        "previous terminated container \"elsa-server\" in pod \"elsa-server-7c9d4b6f8-k2x9p\" not found"
    );
    let log = server.requests();
    let last = log.last().expect("logged");
    assert_eq!(
        (last.resource.as_str(), last.subresource.as_deref()),
        ("pods", Some("log"))
    );
}

#[tokio::test]
async fn watch_sends_initial_events() {
    let (_server, client) = start("healthy").await;
    let pods: Api<Pod> = Api::namespaced(client, "elsa");
    let stream = pods
        .watch(
            &WatchParams::default().labels("app=elsa-server").timeout(5),
            "0",
        )
        .await
        .expect("watch");
    let events: Vec<WatchEvent<Pod>> =
        tokio::time::timeout(Duration::from_secs(10), stream.take(2).try_collect())
            .await
            .expect("in time")
            .expect("events");
    assert!(events.iter().all(|e| matches!(e, WatchEvent::Added(_))));
}

#[tokio::test]
async fn latency_is_applied() {
    let s = Scenario::from_documents(
        "slow",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n",
        Some("latencyMs: 150\n"),
    )
    .expect("loads");
    let server = SimServer::start(s).await.expect("starts");
    let client = client(&server).await;
    let t = Instant::now();
    assert!(
        Api::<ConfigMap>::namespaced(client, "default")
            .get("a")
            .await
            .is_ok()
    );
    assert!(t.elapsed() >= Duration::from_millis(150));
}

#[tokio::test]
async fn every_fixture_scenario_serves() {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(fixtures())
        .expect("fixtures")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    assert!(dirs.len() >= 13);
    for dir in dirs {
        let name = dir
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_string();
        let s = Scenario::load_dir(&dir).unwrap_or_else(|e| panic!("{e}"));
        let ns = s.default_namespace().to_owned();
        let server = SimServer::start(s).await.expect("starts");
        let client = client(&server).await;
        assert!(client.apiserver_version().await.is_ok(), "{name}");
        let deploys = Api::<Deployment>::namespaced(client.clone(), &ns)
            .list(&ListParams::default())
            .await;
        // (api-flaky's 503 on the first deployments list is retried by kube-rs.)
        // A scenario whose RBAC refuses the list must refuse it with a real 403 Status.
        let deploys = match deploys {
            Err(kube::Error::Api(status)) if name == "namespace-role" => {
                assert_eq!(status.code, 403, "{name}");
                continue;
            }
            other => other.unwrap_or_else(|e| panic!("{name}: {e}")),
        };
        assert!(!deploys.items.is_empty(), "{name}");
        let pods = Api::<Pod>::namespaced(client.clone(), &ns)
            .list(&ListParams::default())
            .await;
        match name.as_str() {
            "pods-forbidden" => assert_eq!(api_error(pods.expect_err("403")).code, 403),
            "noise" => assert_eq!(pods.expect("pods").items.len(), 5003),
            _ => assert!(!pods.expect("pods").items.is_empty(), "{name}"),
        }
        if name != "pods-forbidden" {
            let events = Api::<Event>::namespaced(client.clone(), &ns)
                .list(&ListParams::default())
                .await
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            let _ = events.items.len();
        }
        server.shutdown().await;
    }
}

#[tokio::test]
async fn scenario_specifics_over_the_wire() {
    let (_s, client) = start("image-pull").await;
    let pod = Api::<Pod>::namespaced(client, "elsa")
        .get("elsa-server-7b4f9d6c58-w9zq5")
        .await
        .expect("pod");
    let status = pod.status.expect("status");
    assert_eq!(status.phase.as_deref(), Some("Pending"));
    let waiting = status.container_statuses.expect("statuses")[0]
        .state
        .clone()
        .and_then(|s| s.waiting)
        .expect("waiting");
    assert_eq!(waiting.reason.as_deref(), Some("ImagePullBackOff"));

    let (_s, client) = start("no-elsa-workload").await;
    let d = Api::<Deployment>::namespaced(client, "elsa")
        .list(&ListParams::default())
        .await
        .expect("list");
    assert_eq!(names(&d.items), ["postgres", "web"]);

    let (_s, client) = start("canary-password").await;
    let d = Api::<Deployment>::namespaced(client, "elsa")
        .get("elsa-server")
        .await
        .expect("deploy");
    let env = d
        .spec
        .and_then(|s| s.template.spec)
        .map(|s| s.containers[0].env.clone().unwrap_or_default())
        .unwrap_or_default();
    assert!(env.iter().any(|e| {
        e.name == "ConnectionStrings__Backup"
            && e.value
                .as_deref()
                .is_some_and(|v| v.contains("CANARY-7f3a9c1e-DO-NOT-LEAK"))
    }));
}

async fn raw_request(addr: std::net::SocketAddr, request: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    stream.write_all(request.as_bytes()).await.expect("write");
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut buf)).await;
    String::from_utf8_lossy(&buf).into_owned()
}

#[tokio::test]
async fn odd_input_never_breaks_the_server() {
    let server = SimServer::start_with(scenario("healthy"), Transport::Plain)
        .await
        .expect("starts");
    let token = server.token().to_string();
    let paths = [
        "/",
        "/api/v1/namespaces",
        "/api/v1/namespaces/",
        "/api/v1/namespaces/elsa/pods?limit=-5",
        "/api/v1/namespaces/elsa/pods?limit=99999999999999999999",
        "/api/v1/namespaces/elsa/pods?labelSelector=%ZZ%E2%28",
        "/api/v1/namespaces/elsa/pods?labelSelector=%E2%82%AC%3D%E2%82%AC",
        "/api/v1/namespaces/elsa/pods?fieldSelector=%5C",
        "/api/v1/namespaces/elsa/pods?continue=%00%01",
        "/api/v1/namespaces/elsa/pods/x/log/extra/deep",
        "/api/v1/namespaces/elsa/pods/elsa-server-6d5f8b7c9-x2k4q/log?tailLines=abc&limitBytes=1",
        "/api/v1/namespaces/elsa/pods/elsa-server-6d5f8b7c9-x2k4q/exec",
        "/apis/apps/v1/namespaces/elsa/deployments/elsa-server/scale",
        "/apis/apps",
        "/apis/apps/v2",
        "/apis/nope/v1",
        "/api/v2/pods",
        "/api/v1/watch/namespaces/elsa/pods?timeoutSeconds=0",
        "/version/",
        "/healthz",
        "/openapi/v2",
        "/%FF%FE",
    ];
    for p in paths {
        let req = format!(
            "GET {p} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n"
        );
        let resp = raw_request(server.addr(), &req).await;
        assert!(resp.starts_with("HTTP/1.1 "), "{p}: {resp}");
        assert!(!resp.starts_with("HTTP/1.1 5"), "{p}: {resp}");
    }
    for body in [
        "",
        "null",
        "[1,2]",
        "{\"spec\": 5}",
        "{\"kind\": \"Pod\"}",
        "\u{0}\u{1}",
    ] {
        let req = format!(
            "POST /apis/authorization.k8s.io/v1/selfsubjectrulesreviews HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        let resp = raw_request(server.addr(), &req).await;
        assert!(resp.starts_with("HTTP/1.1 "), "{body:?}: {resp}");
        assert!(!resp.starts_with("HTTP/1.1 5"), "{body:?}: {resp}");
    }
    // Anonymous: public info yes, resources no.
    let resp = raw_request(
        server.addr(),
        "GET /version HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
    let resp = raw_request(
        server.addr(),
        "GET /api/v1/namespaces HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(resp.starts_with("HTTP/1.1 403"), "{resp}");
    assert!(
        resp.contains("User \\\"system:anonymous\\\" cannot list resource \\\"namespaces\\\""),
        "{resp}"
    );
    // Still serving.
    let client = client(&server).await;
    assert!(client.apiserver_version().await.is_ok());
    assert!(server.requests().len() >= 30);
}
