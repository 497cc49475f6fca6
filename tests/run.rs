//! Whole runs of the real binary against the simulated cluster, asserting on what a user and the
//! API server see: the requests made, the secrets never shown, the text, the exit codes.

mod common;

use std::io::Read;
use std::process::Stdio;

use common::{Cluster, elsadoctor, json, statuses};

fn text(out: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transient_api_errors_are_retried_and_the_run_passes() {
    let db = Cluster::start_with_database("api-flaky").await;
    let cluster = &db.cluster;
    let mut cmd = cluster.cmd();
    cmd.arg("--json");
    let out = common::run(cmd).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let log = cluster.server.requests();
    let ns_gets: Vec<u16> = log
        .iter()
        .filter(|r| r.verb == "get" && r.resource == "namespaces")
        .map(|r| r.status)
        .collect();
    assert_eq!(
        ns_gets,
        [500, 500, 200],
        "two 500s, then the retry succeeds"
    );
    let deploy_lists: Vec<u16> = log
        .iter()
        .filter(|r| r.verb == "list" && r.resource == "deployments")
        .map(|r| r.status)
        .collect();
    assert_eq!(deploy_lists, [503, 200]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pods_are_listed_by_selector_and_a_default_run_only_reads() {
    let db = Cluster::start_with_database("healthy").await;
    let cluster = &db.cluster;
    let mut cmd = cluster.cmd();
    cmd.arg("--json");
    let out = common::run(cmd).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let log = cluster.server.requests();
    // Two pod lists: Elsa's pods, and the pods behind the database Service (for the
    // port-forward). Both by label selector, never the whole namespace.
    let pod_lists: Vec<String> = log
        .iter()
        .filter(|r| r.resource == "pods" && r.verb == "list")
        .map(|r| r.query.clone().unwrap_or_default())
        .collect();
    assert_eq!(pod_lists.len(), 2, "{pod_lists:?}");
    assert!(
        pod_lists
            .iter()
            .any(|q| q.contains("labelSelector=app%3Delsa-server")),
        "{pod_lists:?}"
    );
    assert!(
        pod_lists
            .iter()
            .any(|q| q.contains("labelSelector=app%3Dpostgres")),
        "{pod_lists:?}"
    );
    // Read-only: get, list and watch, the one rules review, and the read-only subresources
    // (pods/log, one `ls` through pods/exec, pods/portforward). Nothing is created, changed
    // or deleted.
    for r in &log {
        let allowed = matches!(r.verb.as_str(), "get" | "list" | "watch")
            || (r.verb == "create" && r.resource == "selfsubjectrulesreviews");
        assert!(allowed, "unexpected {} {} {}", r.method, r.path, r.verb);
        assert!(
            matches!(r.method.as_str(), "GET")
                || (r.method == "POST" && r.resource == "selfsubjectrulesreviews"),
            "{r:?}"
        );
        let sub = r.subresource.as_deref();
        assert!(
            matches!(sub, None | Some("log" | "exec" | "portforward")),
            "{r:?}"
        );
        let upgrade = matches!(sub, Some("portforward" | "exec")) && r.status == 101;
        assert!((200..300).contains(&r.status) || upgrade, "{r:?}");
    }
    let execs: Vec<_> = log
        .iter()
        .filter(|r| r.subresource.as_deref() == Some("exec"))
        .collect();
    assert_eq!(execs.len(), 1, "one exec: the ls of /app");
    assert!(
        execs[0]
            .query
            .as_deref()
            .is_some_and(|q| q.contains("command=sh&command=-c&command=ls+-1d")),
        "{execs:?}"
    );
    assert_eq!(
        log.iter()
            .filter(|r| r.subresource.as_deref() == Some("portforward"))
            .count(),
        2,
        "two port-forwards: one database connection, one health request"
    );
    // Events are asked for per object with a field selector, not listed wholesale.
    let event_queries: Vec<String> = log
        .iter()
        .filter(|r| r.resource == "events")
        .map(|r| r.query.clone().unwrap_or_default())
        .collect();
    assert!(!event_queries.is_empty());
    assert!(
        event_queries
            .iter()
            .all(|q| q.contains("fieldSelector=involvedObject.name"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deployment_flag_resolves_an_ambiguous_namespace() {
    let cluster = Cluster::start("two-candidates").await;
    let mut cmd = cluster.cmd();
    cmd.args(["--json", "--deployment", "elsa-server-canary"]);
    let out = common::run(cmd).await;
    let report = json(&out);
    assert_eq!(statuses(&report)["workload.found"], "pass");
    assert_eq!(
        report["target"]["workload"],
        "deployment/elsa-server-canary"
    );
    let mut cmd = cluster.cmd();
    cmd.args(["--json", "--deployment", "statefulset/elsa-server"]);
    let report = json(&common::run(cmd).await);
    assert_eq!(report["checks"][3]["cause"], "named-missing");
}

const CANARY: &str = "CANARY-7f3a9c1e-DO-NOT-LEAK";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_canary_password_never_appears_in_any_output() {
    let cluster = Cluster::start("canary-password").await;
    // Sanity: the canary really is in the cluster's answers, so the test can fail.
    let manifests =
        std::fs::read_to_string(common::scenario_dir("canary-password").join("manifests.yaml"))
            .expect("manifests");
    assert!(manifests.contains(CANARY));
    for args in [
        vec!["-vv"],
        vec!["--json", "-vvv"],
        vec!["--deployment", "nope", "-vv"],
    ] {
        let mut cmd = cluster.cmd();
        cmd.args(&args);
        let out = common::run(cmd).await;
        let all = text(&out);
        assert!(!all.contains(CANARY), "leaked with {args:?}:\n{all}");
        assert!(
            !all.contains(cluster.server.token()),
            "token leaked with {args:?}"
        );
    }
    // An error message about a kubeconfig that holds the secret must not quote it: neither a
    // syntax error (parsers print the offending line) nor a type error (they quote the value).
    let dir = tempfile::tempdir().expect("tmp");
    let kc = dir.path().join("kc");
    let head = "apiVersion: v1\nkind: Config\ncurrent-context: c\ncontexts:\n- name: c\n  context: {cluster: x, user: u}\nclusters:\n- name: x\n  cluster: {server: 'http://127.0.0.1:1'}\nusers:\n- name: u\n";
    for user in [
        format!("  user: {{password: {CANARY}, username: [broken\n"),
        format!("  user: \"{CANARY}\"\n"),
        format!("  user: {{token: [\"{CANARY}\"]}}\n"),
    ] {
        std::fs::write(&kc, format!("{head}{user}")).expect("write");
        let out = elsadoctor(dir.path())
            .arg("--kubeconfig")
            .arg(&kc)
            .output()
            .expect("runs");
        assert_eq!(out.status.code(), Some(2), "{}", text(&out));
        assert!(
            text(&out).starts_with("elsadoctor: cannot read kubeconfig"),
            "{}",
            text(&out)
        );
        assert!(!text(&out).contains(CANARY), "{}", text(&out));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_stdout_exits_zero() {
    let cluster = Cluster::start("crashloop-oom").await;
    let mut cmd = std::process::Command::new(assert_cmd::cargo::cargo_bin("elsadoctor"));
    cmd.env_clear()
        .env("HOME", cluster.dir.path())
        .arg("--kubeconfig")
        .arg(&cluster.kubeconfig)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let status = tokio::task::spawn_blocking(move || {
        let mut child = cmd.spawn().expect("spawn");
        // Read one byte, then close the pipe: the rest of the report hits a broken pipe.
        let mut stdout = child.stdout.take().expect("stdout");
        let mut first = [0u8; 1];
        stdout.read_exact(&mut first).expect("first byte");
        drop(stdout);
        let mut stderr = String::new();
        child
            .stderr
            .take()
            .expect("stderr")
            .read_to_string(&mut stderr)
            .expect("stderr");
        (child.wait().expect("wait"), stderr)
    })
    .await
    .expect("join");
    assert_eq!(status.0.code(), Some(0), "stderr: {}", status.1);
    assert!(
        status.1.is_empty(),
        "no error for a closed pipe: {}",
        status.1
    );
}

#[test]
fn demo_is_labelled_simulated_and_fails_like_a_real_run() {
    let home = tempfile::tempdir().expect("tmp");
    let out = elsadoctor(home.path()).arg("demo").output().expect("runs");
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("SIMULATED"), "{stdout}");
    // Which scenario, and what it shows, is part of the report; stderr stays quiet.
    assert!(stdout.contains("\nscenario crash-loop: "), "{stdout}");
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("✖ Elsa pods are running and ready"),
        "{stdout}"
    );
    assert!(
        stdout.contains("$ kubectl --context sim -n elsa describe pod elsa-server-7c9d4b6f8-"),
        "the fix names the real pod: {stdout}"
    );

    let out = elsadoctor(home.path())
        .args(["demo", "--json"])
        .output()
        .expect("runs");
    let report = json(&out);
    assert_eq!(report["target"]["simulated"], true);
    assert_eq!(report["target"]["elsaVersion"], "3.5");
    // One true story: the PostgreSQL pod is not ready, and every finding about the database
    // says so; none claims a ready endpoint beside a refused login.
    let check = |id: &str| {
        report["checks"]
            .as_array()
            .and_then(|a| a.iter().find(|c| c["id"] == id))
            .cloned()
            .unwrap_or_default()
    };
    assert_eq!(check("network.service")["cause"], "no-ready-endpoints");
    assert_eq!(check("database.login")["cause"], "refused");
    assert!(
        check("database.login")["message"]
            .as_str()
            .is_some_and(|m| m.contains("no ready pod")),
        "{}",
        check("database.login")
    );
    assert_eq!(check("runtime.logs")["cause"], "db-unreachable");

    // A user's scenario: the healthy one has no database behind its postgres pod in `demo`, so
    // everything passes but the login, which the kubelet-style port-forward refuses.
    let dir = common::scenario_dir("healthy");
    let out = elsadoctor(home.path())
        .args(["demo", "--json", "--scenario"])
        .arg(&dir)
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let st = statuses(&json(&out));
    let failed: Vec<&String> = st
        .iter()
        .filter(|(_, s)| *s == "fail")
        .map(|(id, _)| id)
        .collect();
    assert_eq!(failed, ["database.login"], "{st:?}");

    let out = elsadoctor(home.path())
        .args(["demo", "--scenario", "/nonexistent/scenario"])
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.starts_with("elsadoctor: cannot load scenario"), "{err}");
}

#[test]
fn text_output_ascii_fallback_and_no_colour_in_a_pipe() {
    let home = tempfile::tempdir().expect("tmp");
    let out = elsadoctor(home.path())
        .env("LANG", "C")
        .env_remove("NO_COLOR")
        .arg("demo")
        .output()
        .expect("runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("[FAIL] Elsa pods are running and ready"),
        "{stdout}"
    );
    assert!(
        stdout.contains("[ok] Kubernetes API is reachable"),
        "{stdout}"
    );
    assert!(!stdout.contains('\u{1b}'), "no ANSI escapes into a pipe");
    assert!(stdout.is_ascii() || !stdout.contains('✔'));
    // Categories come in catalogue order, each once.
    let cluster = stdout.find("\ncluster\n").expect("cluster heading");
    let workload = stdout.find("\nworkload\n").expect("workload heading");
    assert!(cluster < workload);
    assert!(
        stdout.contains("Summary: 24 passed, 1 warning, 5 failed, 0 unknown, 7 skipped in "),
        "{stdout}"
    );
}

#[test]
fn fail_on_warn_counts_warnings() {
    // pods-forbidden has a warn (cluster.access) and an unknown; a scenario with only a warning:
    // the healthy one with a version-less image would do, but `demo --scenario` plus a warn-only
    // expectation is covered by the unit tests of Report::is_failure. Here: the flag parses and
    // changes the exit code when the only problems are warnings.
    let home = tempfile::tempdir().expect("tmp");
    let dir = tempfile::tempdir().expect("tmp");
    let manifests = std::fs::read_to_string(common::scenario_dir("healthy").join("manifests.yaml"))
        .expect("manifests")
        .replace(
            "elsaworkflows/elsa-server-v3-5:latest",
            "elsa-server:latest",
        );
    std::fs::write(dir.path().join("manifests.yaml"), manifests).expect("write");
    std::fs::copy(
        common::scenario_dir("healthy").join("sim.yaml"),
        dir.path().join("sim.yaml"),
    )
    .expect("copy");
    // The version is stated: elsa-server:latest alone leaves checks that differ between
    // releases unknown, which counts against the exit code as it should.
    // Offline (lint) with the version stated: no database to reach, and elsa-server:latest
    // alone would leave the release-dependent checks unknown, which counts as it should.
    let run = |extra: &[&str]| {
        elsadoctor(home.path())
            .args(["lint", "--json", "--elsa-version", "3.5.3", "-f"])
            .arg(dir.path().join("manifests.yaml"))
            .args(extra)
            .output()
            .expect("runs")
    };
    let out = run(&[]);
    let st = statuses(&json(&out));
    assert!(st.values().any(|s| s == "warn"), "{st:?}");
    assert!(
        !st.values().any(|s| s == "fail" || s == "unknown"),
        "{st:?}"
    );
    assert_eq!(out.status.code(), Some(0), "{st:?}");
    assert_eq!(run(&["--fail-on", "warn"]).status.code(), Some(1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gathering_is_concurrent_four_round_trips_deep() {
    // With latency on every request, requests that overlap in time were issued concurrently;
    // the chain of strictly sequential ones is the run's critical path:
    //   (version | namespace | rules review | deployments | statefulsets | NetworkPolicies |
    //    HorizontalPodAutoscalers | Jobs | CronJobs)
    //   -> (Elsa's pods | the referenced Secret | services)
    //   -> (events | logs | the health port-forward | the exec listing | the database
    //       Service's EndpointSlices | the pods behind it)
    //   -> the database port-forward.
    let src = common::scenario_dir("healthy");
    let dir = tempfile::tempdir().expect("tmp");
    std::fs::copy(
        src.join("manifests.yaml"),
        dir.path().join("manifests.yaml"),
    )
    .expect("copy");
    // Latency far above scheduling jitter on a loaded machine, so requests issued together
    // always overlap and only real sequencing lengthens the chain.
    let sim =
        std::fs::read_to_string(src.join("sim.yaml")).expect("sim.yaml") + "\nlatencyMs: 200\n";
    std::fs::write(dir.path().join("sim.yaml"), sim).expect("write");
    let db = Cluster::start_with_database_from(dir.path(), |s| s).await;
    let cluster = &db.cluster;
    let mut cmd = cluster.cmd();
    cmd.arg("--json");
    let out = common::run(cmd).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let log = cluster.server.requests();
    assert_eq!(
        elsadoctor_sim::longest_sequential_chain(&log),
        4,
        "{log:#?}"
    );
    // 9 + 3 + (3 event lists: the workload and its 2 pods; 1 pod list; 2 pod logs; the
    // health port-forward; 1 exec; 1 EndpointSlice list) + 1 database port-forward.
    assert_eq!(log.len(), 9 + 3 + 9 + 1, "{log:#?}");
    let hpa_lists = log
        .iter()
        .filter(|r| r.resource == "horizontalpodautoscalers" && r.verb == "list")
        .count();
    assert_eq!(
        hpa_lists, 1,
        "the autoscalers are listed once, in the first wave"
    );
    let secret_gets: Vec<_> = log.iter().filter(|r| r.resource == "secrets").collect();
    assert_eq!(secret_gets.len(), 1);
    assert_eq!(secret_gets[0].name.as_deref(), Some("postgres-secret"));
    assert_eq!(
        log.iter().filter(|r| r.resource == "services").count(),
        1,
        "the Service the port-forward needs comes from the one services list"
    );
}

/// Issue 11: take away each single right the catalogue's checks need, one at a time, from a
/// healthy cluster. Every run ends normally; no check that needs the missing right passes
/// without naming it; the right is named; nothing is blocked by an `unknown` prerequisite.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_missing_right_is_named_and_blocks_nothing() {
    use std::collections::BTreeMap;
    let catalogue = elsadoctor::catalogue::Catalogue::embedded().expect("catalogue");
    let mut needs: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
    for check in &catalogue.checks {
        for need in &check.needs {
            if let Some((verb, _group, resource)) = elsadoctor::catalogue::parse_need(need) {
                needs
                    .entry((verb.to_owned(), resource.to_owned()))
                    .or_default()
                    .push(check.id.clone());
            }
        }
    }
    assert!(needs.len() >= 10, "{needs:?}");
    let healthy = common::scenario_dir("healthy");
    let sim = std::fs::read_to_string(healthy.join("sim.yaml")).expect("sim.yaml");
    let mut failures = Vec::new();
    for ((verb, resource), checks) in &needs {
        let right = format!("{verb} {resource}");
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::copy(
            healthy.join("manifests.yaml"),
            dir.path().join("manifests.yaml"),
        )
        .expect("copy manifests");
        std::fs::write(
            dir.path().join("sim.yaml"),
            format!("{sim}\nrbac:\n  deny:\n    - {{verb: {verb}, resource: {resource}}}\n"),
        )
        .expect("write sim.yaml");
        let scenario = elsadoctor_sim::Scenario::load_dir(dir.path()).expect("scenario loads");
        let cluster = Cluster::start_with(scenario).await;
        let mut cmd = cluster.cmd();
        cmd.arg("--json");
        let out = common::run(cmd).await;
        if !matches!(out.status.code(), Some(0 | 1)) || !out.stderr.is_empty() {
            failures.push(format!(
                "without {right}: exit {:?}, stderr {}",
                out.status.code(),
                String::from_utf8_lossy(&out.stderr)
            ));
            continue;
        }
        let report = json(&out);
        let all = report["checks"].as_array().expect("checks");
        let status = |id: &str| {
            all.iter()
                .find(|c| c["id"] == id)
                .and_then(|c| c["status"].as_str())
                .unwrap_or("")
                .to_owned()
        };
        // The catalogue's needs say what a check may need; what it needed in this run is what
        // the API server refused. A refused right is named, and a check that needs it passes
        // only when it says it saw enough without it (its text names the right).
        let (base, sub) = match resource.split_once('/') {
            Some((b, s)) => (b, Some(s)),
            None => (resource.as_str(), None),
        };
        let refused = cluster.server.requests().iter().any(|r| {
            r.status == 403
                && r.verb == *verb
                && r.resource == base
                && r.subresource.as_deref() == sub
        });
        if !refused {
            continue;
        }
        if !report.to_string().contains(&right) {
            failures.push(format!("without {right}: the report never names it"));
        }
        let named_by_some = checks.iter().any(|id| {
            all.iter()
                .find(|c| c["id"] == id.as_str())
                .is_some_and(|c| c["status"] != "pass" || c.to_string().contains(&right))
        });
        if !named_by_some {
            failures.push(format!(
                "without {right}: every check that needs it passes without naming it ({checks:?})"
            ));
        }
        for c in all {
            for dep in c["blockedBy"].as_array().into_iter().flatten() {
                let dep_status = status(dep.as_str().unwrap_or(""));
                if dep_status == "unknown" || dep_status == "pass" || dep_status == "warn" {
                    failures.push(format!(
                        "without {right}: {} blocked by {dep}, which is {dep_status}",
                        c["id"]
                    ));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
