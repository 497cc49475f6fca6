//! Unit tests for scenario loading and materialisation: the built-in demo,
//! the fixture scenarios, what the simulated controllers create, and the
//! one-line error messages for broken scenarios.

use super::*;
use crate::resources::find;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/scenarios")
}

fn obj(s: &Scenario, group: &str, plural: &str, ns: &str, name: &str) -> Value {
    let def = find(group, "v1", plural).expect("known resource");
    s.store
        .get(def, ns, name)
        .unwrap_or_else(|| panic!("{plural} {ns}/{name} missing"))
}

fn list(s: &Scenario, group: &str, plural: &str, ns: Option<&str>) -> Vec<Value> {
    let def = find(group, "v1", plural).expect("known resource");
    s.store.list(def, ns).map(|(_, e)| e.value(def)).collect()
}

const MINIMAL: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata:
  name: elsa-server
spec:
  replicas: 3
  selector:
    matchLabels: {app: elsa-server}
  template:
    metadata:
      labels: {app: elsa-server}
    spec:
      containers:
        - name: elsa-server
          image: elsaworkflows/elsa-server-v3-5:latest
          ports: [{name: http, containerPort: 8080}]
---
apiVersion: v1
kind: Service
metadata:
  name: elsa-server
spec:
  selector: {app: elsa-server}
  ports: [{name: http, port: 80, targetPort: http}]
"#;

#[test]
fn builtin_demo_parses() {
    for b in crate::BUILTINS {
        let s = Scenario::builtin(b.name)
            .expect("listed")
            .unwrap_or_else(|e| panic!("built-in {} must load: {e}", b.name));
        assert!(s.config().cluster_network, "{}: clusterNetwork", b.name);
        assert!(!b.description.contains('\n'), "{}: one line", b.name);
    }
    assert!(Scenario::builtin("no-such").is_none());
    assert_eq!(crate::BUILTINS[0].name, crate::DEFAULT_BUILTIN);
    let demo = Scenario::builtin_demo();
    assert_eq!(demo.default_namespace(), "elsa");
    let d = obj(&demo, "apps", "deployments", "elsa", "elsa-server");
    assert_eq!(d["status"]["readyReplicas"], 1);
    assert_eq!(d["status"]["conditions"][0]["type"], "Available");
    assert_eq!(d["status"]["conditions"][0]["status"], "False");
    let p = obj(&demo, "", "pods", "elsa", "elsa-server-7c9d4b6f8-m4tqz");
    let cs = &p["status"]["containerStatuses"][0];
    assert_eq!(cs["state"]["waiting"]["reason"], "CrashLoopBackOff");
    assert_eq!(cs["lastState"]["terminated"]["reason"], "OOMKilled");
    assert_eq!(cs["lastState"]["terminated"]["exitCode"], 137);
    assert_eq!(cs["restartCount"], 6);
    assert!(
        demo.store
            .log("elsa", "elsa-server-7c9d4b6f8-m4tqz", "elsa-server", true)
            .is_some()
    );
}

#[test]
fn every_fixture_loads() {
    let mut n = 0;
    for entry in std::fs::read_dir(fixtures()).expect("fixtures dir") {
        let dir = entry.expect("entry").path();
        if dir.is_dir() {
            let s = Scenario::load_dir(&dir).unwrap_or_else(|e| panic!("{e}"));
            // elsa-core's own manifests set no namespace: that scenario lives in `default`.
            let want = if dir.ends_with("cfg-official-k8s") {
                "default"
            } else {
                "elsa"
            };
            assert_eq!(s.default_namespace(), want, "{}", dir.display());
            n += 1;
        }
    }
    assert!(n >= 13, "only {n} scenarios");
}

#[test]
fn deployment_materialises_replicaset_and_pods() {
    let s = Scenario::from_documents("t", MINIMAL, Some("namespace: elsa\n")).expect("loads");
    let rs = list(&s, "apps", "replicasets", Some("elsa"));
    assert_eq!(rs.len(), 1);
    let rs = &rs[0];
    let rs_name = rs["metadata"]["name"].as_str().expect("name");
    let hash = rs["metadata"]["labels"]["pod-template-hash"]
        .as_str()
        .expect("hash");
    assert_eq!(rs_name, format!("elsa-server-{hash}"));
    assert_eq!(rs["metadata"]["ownerReferences"][0]["kind"], "Deployment");
    assert_eq!(rs["metadata"]["ownerReferences"][0]["controller"], true);
    let deploy = obj(&s, "apps", "deployments", "elsa", "elsa-server");
    assert_eq!(
        rs["metadata"]["ownerReferences"][0]["uid"],
        deploy["metadata"]["uid"]
    );
    let pods = list(&s, "", "pods", Some("elsa"));
    assert_eq!(pods.len(), 3);
    for p in &pods {
        let name = p["metadata"]["name"].as_str().expect("name");
        assert!(name.starts_with(&format!("{rs_name}-")), "{name}");
        assert_eq!(name.len(), rs_name.len() + 6);
        assert_eq!(p["metadata"]["labels"]["pod-template-hash"], hash);
        assert_eq!(p["metadata"]["labels"]["app"], "elsa-server");
        assert_eq!(p["metadata"]["ownerReferences"][0]["name"], rs_name);
        assert_eq!(p["status"]["phase"], "Running");
        assert_eq!(p["spec"]["nodeName"], "node-1");
        assert!(p["status"]["podIP"].is_string());
        let types: Vec<&str> = p["status"]["conditions"]
            .as_array()
            .expect("conditions")
            .iter()
            .filter_map(|c| c["type"].as_str())
            .collect();
        assert_eq!(
            types,
            [
                "PodReadyToStartContainers",
                "Initialized",
                "Ready",
                "ContainersReady",
                "PodScheduled"
            ]
        );
        let cs = &p["status"]["containerStatuses"][0];
        assert_eq!(cs["ready"], true);
        assert_eq!(
            cs["image"],
            "docker.io/elsaworkflows/elsa-server-v3-5:latest"
        );
        assert!(
            cs["containerID"]
                .as_str()
                .is_some_and(|c| c.starts_with("containerd://"))
        );
        assert!(cs["state"]["running"]["startedAt"].is_string());
    }
    let st = &deploy["status"];
    assert_eq!(st["replicas"], 3);
    assert_eq!(st["readyReplicas"], 3);
    assert_eq!(st["availableReplicas"], 3);
    assert_eq!(st["updatedReplicas"], 3);
    assert!(st.get("unavailableReplicas").is_none());
    assert_eq!(st["conditions"][0]["reason"], "MinimumReplicasAvailable");
    assert_eq!(st["conditions"][1]["reason"], "NewReplicaSetAvailable");
    assert_eq!(
        deploy["spec"]["strategy"]["rollingUpdate"]["maxSurge"],
        "25%"
    );
    assert_eq!(deploy["metadata"]["generation"], 1);
    assert!(deploy["metadata"]["resourceVersion"].is_string());
    assert!(
        deploy["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"]
            .is_string()
    );
    // Endpoints and EndpointSlice for the Service, named port resolved.
    let ep = obj(&s, "", "endpoints", "elsa", "elsa-server");
    assert_eq!(
        ep["subsets"][0]["addresses"].as_array().map(Vec::len),
        Some(3)
    );
    assert_eq!(ep["subsets"][0]["ports"][0]["port"], 8080);
    let slices = list(&s, "discovery.k8s.io", "endpointslices", Some("elsa"));
    assert_eq!(slices.len(), 1);
    assert_eq!(
        slices[0]["metadata"]["labels"]["kubernetes.io/service-name"],
        "elsa-server"
    );
    let svc = obj(&s, "", "services", "elsa", "elsa-server");
    assert!(
        svc["spec"]["clusterIP"]
            .as_str()
            .is_some_and(|ip| ip.starts_with("10.96."))
    );
    // Namespaces and per-namespace defaults.
    for ns in ["elsa", "default", "kube-system"] {
        let n = obj(&s, "", "namespaces", "", ns);
        assert_eq!(n["status"]["phase"], "Active");
        assert_eq!(n["metadata"]["labels"]["kubernetes.io/metadata.name"], ns);
    }
    assert!(obj(&s, "", "configmaps", "elsa", "kube-root-ca.crt").is_object());
    assert!(obj(&s, "", "services", "default", "kubernetes").is_object());
}

#[test]
fn crashloop_status_and_events() {
    let s = Scenario::load_dir(&fixtures().join("crashloop-oom")).expect("loads");
    let p = obj(&s, "", "pods", "elsa", "elsa-server-59c7d4f8b6-k8m2t");
    assert_eq!(p["metadata"]["labels"]["pod-template-hash"], "59c7d4f8b6");
    assert_eq!(p["status"]["phase"], "Running");
    let ready = p["status"]["conditions"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["type"] == "Ready"))
        .expect("Ready condition");
    assert_eq!(ready["status"], "False");
    assert_eq!(ready["reason"], "ContainersNotReady");
    assert_eq!(
        ready["message"],
        "containers with unready status: [elsa-server]"
    );
    let cs = &p["status"]["containerStatuses"][0];
    assert_eq!(cs["ready"], false);
    assert_eq!(cs["started"], false);
    assert!(
        cs["state"]["waiting"]["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("back-off 5m0s restarting failed container=elsa-server pod=elsa-server-59c7d4f8b6-k8m2t_elsa("))
    );
    let d = obj(&s, "apps", "deployments", "elsa", "elsa-server");
    assert_eq!(d["status"]["unavailableReplicas"], 1);
    assert!(d["status"].get("readyReplicas").is_none());
    assert_eq!(
        d["status"]["conditions"][0]["reason"],
        "MinimumReplicasUnavailable"
    );
    assert_eq!(d["status"]["conditions"][1]["reason"], "ReplicaSetUpdated");
    let events = list(&s, "", "events", Some("elsa"));
    let backoff = events
        .iter()
        .find(|e| e["reason"] == "BackOff")
        .expect("BackOff event");
    assert_eq!(backoff["type"], "Warning");
    assert_eq!(backoff["count"], 24);
    assert_eq!(backoff["involvedObject"]["kind"], "Pod");
    assert_eq!(backoff["involvedObject"]["uid"], p["metadata"]["uid"]);
    assert_eq!(
        backoff["involvedObject"]["fieldPath"],
        "spec.containers{elsa-server}"
    );
    assert_eq!(backoff["source"]["component"], "kubelet");
    assert_eq!(backoff["source"]["host"], "node-2");
    assert!(
        backoff["metadata"]["name"]
            .as_str()
            .is_some_and(|n| n.starts_with("elsa-server-59c7d4f8b6-k8m2t."))
    );
    let scaling = events
        .iter()
        .find(|e| e["reason"] == "ScalingReplicaSet")
        .expect("scaling event");
    assert_eq!(scaling["source"]["component"], "deployment-controller");
    assert_eq!(scaling["involvedObject"]["apiVersion"], "apps/v1");
}

#[test]
fn pending_pods() {
    let s = Scenario::load_dir(&fixtures().join("unschedulable")).expect("loads");
    let p = obj(&s, "", "pods", "elsa", "elsa-server-8d7c6b5f49-t2x6v");
    assert_eq!(p["status"]["phase"], "Pending");
    assert!(p["spec"].get("nodeName").is_none());
    assert!(p["status"].get("podIP").is_none());
    assert!(p["status"].get("containerStatuses").is_none());
    assert_eq!(p["status"]["conditions"].as_array().map(Vec::len), Some(1));
    assert_eq!(p["status"]["conditions"][0]["reason"], "Unschedulable");
    assert_eq!(p["status"]["qosClass"], "Burstable");
    let ep = obj(&s, "", "endpoints", "elsa", "elsa-server");
    assert!(ep.get("subsets").is_none());

    let s = Scenario::load_dir(&fixtures().join("image-pull")).expect("loads");
    let p = obj(&s, "", "pods", "elsa", "elsa-server-7b4f9d6c58-w9zq5");
    let cs = &p["status"]["containerStatuses"][0];
    assert_eq!(cs["state"]["waiting"]["reason"], "ImagePullBackOff");
    assert_eq!(cs["imageID"], "");
    assert!(cs.get("containerID").is_none());
    assert_eq!(cs["image"], "elsaworkflows/elsa-server-v3-5:3.5.99-typo");
    assert_eq!(
        p["spec"]["containers"][0]["imagePullPolicy"],
        "IfNotPresent"
    );

    let s = Scenario::load_dir(&fixtures().join("missing-secret-key")).expect("loads");
    let p = obj(&s, "", "pods", "elsa", "elsa-server-6f9b8c5d47-n5j8r");
    assert_eq!(
        p["status"]["containerStatuses"][0]["state"]["waiting"]["message"],
        "couldn't find key pasword in Secret elsa/postgres-secret"
    );
}

#[test]
fn rollout_stuck_has_two_replicasets() {
    let s = Scenario::load_dir(&fixtures().join("rollout-stuck")).expect("loads");
    let rs = list(&s, "apps", "replicasets", Some("elsa"));
    let elsa_rs: Vec<&Value> = rs
        .iter()
        .filter(|r| r["metadata"]["labels"]["app"] == "elsa-server")
        .collect();
    assert_eq!(elsa_rs.len(), 2);
    let d = obj(&s, "apps", "deployments", "elsa", "elsa-server");
    assert_eq!(
        d["metadata"]["annotations"]["deployment.kubernetes.io/revision"],
        "2"
    );
    let st = &d["status"];
    assert_eq!(st["replicas"], 2);
    assert_eq!(st["updatedReplicas"], 1);
    assert_eq!(st["readyReplicas"], 1);
    assert_eq!(st["unavailableReplicas"], 1);
    // maxUnavailable 1 of 2: one available pod is enough for Available=True.
    assert_eq!(st["conditions"][0]["status"], "True");
    assert_eq!(st["conditions"][1]["status"], "False");
    assert_eq!(st["conditions"][1]["reason"], "ProgressDeadlineExceeded");
    assert_eq!(
        st["conditions"][1]["message"],
        "ReplicaSet \"elsa-server-9c4d8f7b65\" has timed out progressing."
    );
    let old = obj(&s, "", "pods", "elsa", "elsa-server-6d5f8b7c9-x2k4q");
    assert_eq!(
        old["metadata"]["ownerReferences"][0]["name"],
        "elsa-server-6d5f8b7c9"
    );
    let new = obj(&s, "", "pods", "elsa", "elsa-server-9c4d8f7b65-v6h2s");
    assert_eq!(new["status"]["phase"], "Running");
    assert_eq!(new["status"]["containerStatuses"][0]["ready"], false);
    assert_eq!(new["status"]["containerStatuses"][0]["started"], true);
    // The probe message in the fixture quotes the pod's real IP.
    assert_eq!(new["status"]["podIP"], "10.244.32.11");
    let ep = obj(&s, "", "endpoints", "elsa", "elsa-server");
    assert_eq!(
        ep["subsets"][0]["addresses"].as_array().map(Vec::len),
        Some(1)
    );
    assert_eq!(
        ep["subsets"][0]["notReadyAddresses"]
            .as_array()
            .map(Vec::len),
        Some(1)
    );
}

#[test]
fn secrets_and_canary() {
    let s = Scenario::load_dir(&fixtures().join("canary-password")).expect("loads");
    let sec = obj(&s, "", "secrets", "elsa", "postgres-secret");
    assert!(sec.get("stringData").is_none());
    assert_eq!(sec["type"], "Opaque");
    assert_eq!(
        sec["data"]["password"],
        util::base64_encode(b"CANARY-7f3a9c1e-DO-NOT-LEAK")
    );
    // kubectl apply's annotation keeps the plaintext, as in a real cluster.
    assert!(
        sec["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"]
            .as_str()
            .is_some_and(|a| a.contains("CANARY-7f3a9c1e-DO-NOT-LEAK"))
    );
}

#[test]
fn statefulset_pods() {
    let m = r#"
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: pg, namespace: db}
spec:
  serviceName: pg
  replicas: 2
  selector: {matchLabels: {app: pg}}
  template:
    metadata: {labels: {app: pg}}
    spec:
      containers: [{name: postgres, image: "postgres:16"}]
"#;
    let s = Scenario::from_documents("t", m, None).expect("loads");
    assert_eq!(s.default_namespace(), "default");
    let p = obj(&s, "", "pods", "db", "pg-1");
    assert_eq!(
        p["metadata"]["labels"]["statefulset.kubernetes.io/pod-name"],
        "pg-1"
    );
    assert_eq!(p["metadata"]["labels"]["apps.kubernetes.io/pod-index"], "1");
    assert_eq!(p["metadata"]["ownerReferences"][0]["kind"], "StatefulSet");
    assert_eq!(p["spec"]["hostname"], "pg-1");
    assert_eq!(p["spec"]["subdomain"], "pg");
    let sts = obj(&s, "apps", "statefulsets", "db", "pg");
    assert_eq!(sts["status"]["readyReplicas"], 2);
    assert_eq!(
        sts["status"]["currentRevision"],
        sts["status"]["updateRevision"]
    );
    assert!(obj(&s, "", "namespaces", "", "db").is_object());
}

#[test]
fn noise_is_generated_at_realistic_size() {
    let sim = "namespace: elsa\nnoise: {pods: 120, configmaps: 10}\n";
    let s = Scenario::from_documents("t", MINIMAL, Some(sim)).expect("loads");
    let pods = list(&s, "", "pods", Some("elsa"));
    assert_eq!(pods.len(), 123);
    let noise: Vec<&Value> = pods
        .iter()
        .filter(|p| p["metadata"]["labels"]["app.kubernetes.io/part-of"] == "noise")
        .collect();
    assert_eq!(noise.len(), 120);
    let size = serde_json::to_string(noise[0]).expect("json").len();
    assert!((2000..=3200).contains(&size), "noise pod is {size} bytes");
    let apps: std::collections::BTreeSet<&str> = noise
        .iter()
        .filter_map(|p| p["metadata"]["labels"]["app"].as_str())
        .collect();
    assert_eq!(apps.len(), 50);
    let cms = list(&s, "", "configmaps", Some("elsa"));
    assert_eq!(cms.len(), 11);
    let noise_cm = cms
        .iter()
        .find(|c| c["metadata"]["labels"]["app.kubernetes.io/part-of"] == "noise")
        .expect("noise configmap");
    let size = serde_json::to_string(noise_cm).expect("json").len();
    assert!(
        (1500..=3500).contains(&size),
        "noise configmap is {size} bytes"
    );
}

fn err(manifests: &str, sim: Option<&str>) -> String {
    Scenario::from_documents("t", manifests, sim)
        .expect_err("must fail")
        .to_string()
}

#[test]
fn errors_are_one_line_and_name_the_file() {
    let e = err(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: [unclosed\n",
        None,
    );
    assert!(e.starts_with("t/manifests.yaml:"), "{e}");
    assert!(!e.contains('\n'), "{e}");
    let e = err(
        MINIMAL,
        Some("namespace: elsa\npods:\n  - workload: deployment/nope\n"),
    );
    assert_eq!(
        e,
        "t/sim.yaml: pods[0]: workload deployment/nope not found in namespace \"elsa\" of the manifests"
    );
    let e = err(MINIMAL, Some("namespace: elsa\nbogus: 1\n"));
    assert!(e.starts_with("t/sim.yaml:"), "{e}");
    assert!(e.contains("bogus"), "{e}");
    assert!(!e.contains('\n'), "{e}");
    let e = err(
        "apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w}\n",
        None,
    );
    assert_eq!(
        e,
        "t/manifests.yaml document 1: kind \"Widget\" (apiVersion \"example.com/v1\") is not served by the simulator"
    );
    let e = err("apiVersion: v1\nkind: ConfigMap\nmetadata: {}\n", None);
    assert_eq!(
        e,
        "t/manifests.yaml document 1: ConfigMap has no metadata.name"
    );
    let e = err(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n",
        None,
    );
    assert_eq!(
        e,
        "t/manifests.yaml document 2: duplicate ConfigMap default/a"
    );
    let bad_selector = MINIMAL.replace(
        "matchLabels: {app: elsa-server}",
        "matchLabels: {app: other}",
    );
    let e = err(&bad_selector, None);
    assert!(
        e.contains("`selector` does not match template `labels`"),
        "{e}"
    );
    let e = err(
        MINIMAL,
        Some(
            "namespace: elsa\npods:\n  - workload: deployment/elsa-server\n    containers: {nope: {restarts: 1}}\n",
        ),
    );
    assert!(e.contains("no container named \"nope\""), "{e}");
    let e = err(
        MINIMAL,
        Some("namespace: elsa\nevents:\n  - {object: pod/ghost, reason: X}\n"),
    );
    assert!(
        e.starts_with("t/sim.yaml: events[0]: object pod/ghost not found"),
        "{e}"
    );
    let e = err(
        MINIMAL,
        Some("namespace: elsa\nfaults:\n  - {status: 200}\n"),
    );
    assert!(e.contains("faults[0]"), "{e}");
    let e = err(
        MINIMAL,
        Some("namespace: elsa\nimages:\n  busybox: {files: [bin/sh]}\n"),
    );
    assert_eq!(
        e,
        "t/sim.yaml: images[\"busybox\"].files[0]: \"bin/sh\" is not an absolute path"
    );
    let e = err(
        MINIMAL,
        Some("namespace: elsa\nimages:\n  busybox: {files: [{path: /x, bytes: 1}]}\n"),
    );
    assert!(e.starts_with("t/sim.yaml"), "{e}");
    let e = err(
        MINIMAL,
        Some(
            "namespace: elsa\npods:\n  - {workload: deployment/elsa-server, files: [{path: a.db, size: 3}]}\n",
        ),
    );
    assert!(e.contains("pods[0].files[0]"), "{e}");
}

#[test]
fn load_dir_errors() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let e = Scenario::load_dir(tmp.path())
        .expect_err("empty")
        .to_string();
    assert!(e.contains("no manifests found"), "{e}");
    std::fs::write(tmp.path().join("a.yaml"), MINIMAL).expect("write");
    std::fs::write(tmp.path().join("sim.yaml"), "namespace: [\n").expect("write");
    let e = Scenario::load_dir(tmp.path())
        .expect_err("bad sim")
        .to_string();
    assert!(e.contains("sim.yaml:"), "{e}");
    std::fs::write(tmp.path().join("sim.yaml"), "# only a comment\n").expect("write");
    let s = Scenario::load_dir(tmp.path()).expect("loads");
    assert_eq!(s.default_namespace(), "default");
    let missing = Scenario::load_dir(&tmp.path().join("nope"))
        .expect_err("missing")
        .to_string();
    assert!(missing.starts_with("reading "), "{missing}");
}

#[test]
fn manifest_pods_and_events_are_served() {
    let m = r#"
apiVersion: v1
kind: Pod
metadata: {name: bare, namespace: elsa, labels: {app: bare}}
spec:
  containers: [{name: c, image: "busybox:1.36"}]
---
apiVersion: v1
kind: Pod
metadata: {name: broken, namespace: elsa}
spec:
  containers: [{name: c, image: "busybox:1.36"}]
---
apiVersion: v1
kind: Pod
metadata: {name: given, namespace: elsa}
spec:
  containers: [{name: c, image: "busybox:1.36"}]
status: {phase: Succeeded}
---
apiVersion: v1
kind: Event
metadata: {name: bare.1, namespace: elsa}
involvedObject: {kind: Pod, name: bare, namespace: elsa}
reason: Custom
message: hello
"#;
    let sim = "namespace: elsa\npods:\n  - workload: pod/broken\n    phase: Failed\n";
    let s = Scenario::from_documents("t", m, Some(sim)).expect("loads");
    let bare = obj(&s, "", "pods", "elsa", "bare");
    assert_eq!(bare["status"]["phase"], "Running");
    assert_eq!(bare["metadata"]["labels"]["app"], "bare");
    assert_eq!(bare["status"]["containerStatuses"][0]["ready"], true);
    let broken = obj(&s, "", "pods", "elsa", "broken");
    assert_eq!(broken["status"]["phase"], "Failed");
    assert_eq!(
        broken["status"]["containerStatuses"][0]["state"]["terminated"]["reason"],
        "Error"
    );
    let given = obj(&s, "", "pods", "elsa", "given");
    assert_eq!(given["status"], json!({"phase": "Succeeded"}));
    let ev = obj(&s, "", "events", "elsa", "bare.1");
    assert_eq!(ev["kind"], "Event");
    assert_eq!(ev["count"], 1);
    assert_eq!(ev["type"], "Normal");
}

#[test]
fn generated_ids_are_deterministic() {
    let a = Scenario::from_documents("t", MINIMAL, None).expect("loads");
    let b = Scenario::from_documents("t", MINIMAL, None).expect("loads");
    let pa: Vec<Value> = list(&a, "", "pods", Some("default"));
    let pb: Vec<Value> = list(&b, "", "pods", Some("default"));
    assert_eq!(pa, pb);
}

fn rec(received_us: u64, answered_us: u64) -> RecordedRequest {
    RecordedRequest {
        method: "GET".into(),
        path: "/".into(),
        query: None,
        verb: "get".into(),
        group: String::new(),
        resource: String::new(),
        subresource: None,
        namespace: None,
        name: None,
        status: 200,
        received_us,
        answered_us,
        connection: 1,
        version: "HTTP/2.0".into(),
    }
}

#[test]
fn chain_counts_only_strictly_sequential_requests() {
    assert_eq!(longest_sequential_chain(&[]), 0);
    // Three overlapping requests, then one after all of them, then one after that.
    let log = [rec(0, 20), rec(1, 21), rec(2, 22), rec(30, 50), rec(55, 75)];
    assert_eq!(longest_sequential_chain(&log), 3);
    // Ten strictly sequential requests.
    let serial: Vec<_> = (0..10).map(|i| rec(i * 10, i * 10 + 5)).collect();
    assert_eq!(longest_sequential_chain(&serial), 10);
}
