//! `elsadoctor lint`: manifests in, the same checks and outputs out, no cluster. Also the
//! generated env-order patch: applying it to the manifest makes the check pass.

mod common;

use std::io::Write;
use std::process::{Command, Stdio};

use common::{elsadoctor, json, scenario_dir, statuses};
use serde_json::Value;

fn manifests(name: &str) -> String {
    std::fs::read_to_string(scenario_dir(name).join("manifests.yaml")).expect("fixture")
}

/// Applies the strategic-merge patch elsadoctor generates for env ordering, with the API
/// server's semantics for this shape: containers merge by `name`; `env` entries merge by
/// `name`; `$setElementOrder/env` gives the resulting order.
fn apply_env_order_patch(deployment: &mut Value, patch: &Value) {
    let lists = ["containers", "initContainers"];
    assert!(
        lists
            .iter()
            .any(|l| patch["spec"]["template"]["spec"][l].is_array()),
        "the patch names containers: {patch}"
    );
    for list in lists {
        let Some(patched) = patch["spec"]["template"]["spec"][list].as_array() else {
            continue;
        };
        apply_to(
            deployment["spec"]["template"]["spec"][list]
                .as_array_mut()
                .expect("the list the patch names exists"),
            patched,
        );
    }
}

/// One list (`containers` or `initContainers`) of [`apply_env_order_patch`].
fn apply_to(containers: &mut [Value], patched: &[Value]) {
    for pc in patched {
        let c = containers
            .iter_mut()
            .find(|c| c["name"] == pc["name"])
            .expect("container named in the patch exists");
        let env = c["env"].as_array().cloned().unwrap_or_default();
        let order: Vec<&str> = pc["$setElementOrder/env"]
            .as_array()
            .expect("order directive")
            .iter()
            .filter_map(|e| e["name"].as_str())
            .collect();
        assert_eq!(order.len(), env.len(), "the order names every variable");
        let reordered: Vec<Value> = order
            .iter()
            .map(|n| {
                let mut base = env
                    .iter()
                    .find(|e| e["name"] == *n)
                    .cloned()
                    .expect("ordered name exists");
                // Merge the patch's entry (name only) into it: nothing else changes.
                if let Some(p) = pc["env"]
                    .as_array()
                    .and_then(|a| a.iter().find(|e| e["name"] == *n))
                {
                    for (k, v) in p.as_object().into_iter().flatten() {
                        base[k] = v.clone();
                    }
                }
                base
            })
            .collect();
        c["env"] = Value::Array(reordered);
    }
}

fn lint_json(home: &std::path::Path, text: &str) -> (Value, i32) {
    let out = elsadoctor(home)
        .args(["lint", "--json", "-f", "-"])
        .write_stdin(text.to_owned())
        .output()
        .expect("runs");
    (json(&out), out.status.code().unwrap_or(-1))
}

#[test]
fn the_generated_env_patch_fixes_the_guide_option_a_order() {
    let home = tempfile::tempdir().expect("tmp");
    let text = manifests("cfg-guide-option-a");
    let (report, code) = lint_json(home.path(), &text);
    assert_eq!(code, 1);
    let check = report["checks"]
        .as_array()
        .and_then(|a| a.iter().find(|c| c["id"] == "config.env-expansion"))
        .expect("check");
    assert_eq!(check["status"], "fail");
    let patch = check["fix"]["patch"].clone();
    assert!(patch.is_object(), "a patch is generated: {check}");
    assert!(
        !patch.to_string().contains("value"),
        "the patch carries names only, never values: {patch}"
    );

    // Apply it to the Deployment in the manifests and lint again.
    let mut docs: Vec<Value> = serde_saphyr::from_multiple(&text).expect("yaml");
    let deployment = docs
        .iter_mut()
        .find(|d| d["kind"] == "Deployment" && d["metadata"]["name"] == "elsa-server")
        .expect("elsa deployment");
    apply_env_order_patch(deployment, &patch);
    let patched: String = docs
        .iter()
        .map(|d| serde_json::to_string(d).expect("json"))
        .collect::<Vec<_>>()
        .join("\n---\n");
    let (after, _) = lint_json(home.path(), &patched);
    let st = statuses(&after);
    assert_eq!(st["config.env-expansion"], "pass", "{after}");
    assert_eq!(st["config.connection-string"], "pass");
}

#[test]
fn the_generated_env_patch_fixes_the_guides_init_container() {
    // The guide's migration init container, verbatim (issue 12 #1): the patch orders its env
    // under `initContainers`, and after it the container's references resolve.
    let home = tempfile::tempdir().expect("tmp");
    let text = manifests("ctr-guide-init-order");
    let (report, code) = lint_json(home.path(), &text);
    assert_eq!(code, 1);
    let check = report["checks"]
        .as_array()
        .and_then(|a| a.iter().find(|c| c["id"] == "config.env-expansion"))
        .expect("check");
    assert_eq!(check["status"], "fail");
    assert!(
        check["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("initContainer migrations:")),
        "{check}"
    );
    let patch = check["fix"]["patch"].clone();
    assert_eq!(
        patch["spec"]["template"]["spec"]["initContainers"][0]["name"], "migrations",
        "{patch}"
    );
    let mut docs: Vec<Value> = serde_saphyr::from_multiple(&text).expect("yaml");
    let deployment = docs
        .iter_mut()
        .find(|d| d["kind"] == "Deployment" && d["metadata"]["name"] == "elsa-server")
        .expect("elsa deployment");
    apply_env_order_patch(deployment, &patch);
    let patched: String = docs
        .iter()
        .map(|d| serde_json::to_string(d).expect("json"))
        .collect::<Vec<_>>()
        .join("\n---\n");
    let (after, _) = lint_json(home.path(), &patched);
    assert_eq!(statuses(&after)["config.env-expansion"], "pass", "{after}");
}

#[test]
fn text_output_shows_the_patch_under_the_fix() {
    let home = tempfile::tempdir().expect("tmp");
    let out = elsadoctor(home.path())
        .args(["lint", "-f"])
        .arg(scenario_dir("cfg-guide-option-a").join("manifests.yaml"))
        .output()
        .expect("runs");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("generated patch"), "{text}");
    assert!(text.contains("$setElementOrder/env"), "{text}");
    assert!(text.contains("[config.env-expansion]"));
    assert!(
        !text.contains("[cluster."),
        "lint runs no cluster checks: {text}"
    );
}

#[test]
fn directories_multi_documents_and_stdin_agree() {
    let home = tempfile::tempdir().expect("tmp");
    let dir = tempfile::tempdir().expect("tmp");
    // Split the healthy manifests over two files in a nested directory.
    let text = manifests("healthy");
    let docs: Vec<&str> = text.split("\n---\n").collect();
    let (a, b) = docs.split_at(docs.len() / 2);
    std::fs::create_dir(dir.path().join("nested")).expect("mkdir");
    std::fs::write(dir.path().join("a.yaml"), a.join("\n---\n")).expect("write");
    std::fs::write(dir.path().join("nested/b.yml"), b.join("\n---\n")).expect("write");
    std::fs::write(dir.path().join("README.md"), "not a manifest").expect("write");
    let from_dir = elsadoctor(home.path())
        .args(["lint", "--json", "-f"])
        .arg(dir.path())
        .output()
        .expect("runs");
    let (from_stdin, _) = lint_json(home.path(), &text);
    assert_eq!(statuses(&json(&from_dir)), statuses(&from_stdin));
    assert_eq!(json(&from_dir)["vantage"], "offline");
}

#[test]
fn unparseable_yaml_is_one_line_with_file_and_line_exit_2() {
    let home = tempfile::tempdir().expect("tmp");
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("broken.yaml");
    std::fs::write(
        &path,
        "apiVersion: v1\nkind: Secret\nstringData:\n  password: hunter2\n  other: [unclosed\n",
    )
    .expect("write");
    let out = elsadoctor(home.path())
        .args(["lint", "-f"])
        .arg(&path)
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with("elsadoctor: ") && err.contains("broken.yaml") && err.contains("line"),
        "{err}"
    );
    assert!(!err.contains("hunter2"), "{err}");

    let out = elsadoctor(home.path())
        .args(["lint", "-f", "/nonexistent/manifests"])
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(2));
    let out = elsadoctor(home.path()).arg("lint").output().expect("runs");
    assert_eq!(out.status.code(), Some(2), "-f is required");
}

#[test]
fn secret_values_are_used_for_expansion_but_never_printed() {
    let home = tempfile::tempdir().expect("tmp");
    let text = manifests("canary-password");
    for args in [vec!["lint", "-f", "-"], vec!["lint", "--json", "-f", "-"]] {
        let mut child = Command::new(assert_cmd::cargo::cargo_bin("elsadoctor"))
            .env_clear()
            .env("HOME", home.path())
            .args(&args)
            .arg("-vv")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(text.as_bytes())
            .expect("write");
        let out = child.wait_with_output().expect("wait");
        let all = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(!all.contains("CANARY-7f3a9c1e-DO-NOT-LEAK"), "{all}");
        assert!(
            all.contains("inline-secrets") || all.contains("plain text"),
            "{all}"
        );
    }
}

// --- issue 12, item 4: lint reports, never aborts on one bad object, never guesses ----------

fn check<'a>(report: &'a Value, id: &str) -> &'a Value {
    report["checks"]
        .as_array()
        .and_then(|a| a.iter().find(|c| c["id"] == id))
        .unwrap_or_else(|| panic!("{id} in {report}"))
}

/// The healthy manifests' documents, split.
fn healthy_docs() -> Vec<String> {
    manifests("healthy")
        .split("\n---\n")
        .map(str::to_owned)
        .collect()
}

fn lint_file(home: &std::path::Path, name: &str, text: &str) -> (Value, i32, String) {
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join(name);
    std::fs::write(&path, text).expect("write");
    let out = elsadoctor(home)
        .args(["lint", "--json", "-f"])
        .arg(&path)
        .output()
        .expect("runs");
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (json(&out), out.status.code().unwrap_or(-1), all)
}

#[test]
fn a_secret_whose_data_is_not_base64_is_a_finding_and_the_rest_is_checked() {
    let home = tempfile::tempdir().expect("tmp");
    let text = manifests("healthy").replace(
        "stringData:\n  username: elsa\n  password: elsa-db-Pa55word\n  database: elsa",
        "data:\n  username: ZWxzYQ==\n  password: <elsa-db-Pa55word>\n  database: ZWxzYQ==",
    );
    assert!(text.contains("<elsa-db-Pa55word>"), "fixture changed");
    let (report, code, all) = lint_file(home.path(), "bundle.yaml", &text);
    assert_eq!(code, 1, "a finding, not an abort: {all}");
    let refs = check(&report, "config.refs");
    assert_eq!(refs["status"], "fail", "{refs}");
    assert_eq!(refs["cause"], "rejected");
    let msg = refs["message"].as_str().expect("message");
    for part in [
        "bundle.yaml document 2",
        "Secret/postgres-secret",
        "data.password",
        "base64",
    ] {
        assert!(msg.contains(part), "{part} in {msg}");
    }
    // The rest is still checked.
    let st = statuses(&report);
    assert_eq!(st["workload.found"], "pass");
    assert_eq!(st["config.provider"], "pass");
    assert!(!all.contains("elsa-db-Pa55word"), "{all}");
    assert!(!all.contains("Invalid symbol"), "{all}");
}

#[test]
fn a_wrong_type_names_the_field_and_a_refused_elsa_workload_is_why_none_is_found() {
    let home = tempfile::tempdir().expect("tmp");
    let text = manifests("healthy").replace("  replicas: 2\n", "  replicas: \"two\"\n");
    let (report, code, all) = lint_file(home.path(), "m.yaml", &text);
    assert_eq!(code, 1, "{all}");
    let found = check(&report, "workload.found");
    assert_eq!(found["status"], "fail", "{found}");
    assert_eq!(found["cause"], "rejected");
    let msg = found["message"].as_str().expect("message");
    assert!(
        msg.contains("Deployment/elsa-server") && msg.contains("spec.replicas"),
        "{msg}"
    );
    assert!(msg.contains("m.yaml document 6"), "{msg}");

    // The same mistake in the database's Deployment: Elsa is still examined, and the refused
    // document is a finding of its own.
    let text = manifests("healthy").replace("  replicas: 1\n", "  replicas: [1]\n");
    let (report, code, _) = lint_file(home.path(), "m.yaml", &text);
    assert_eq!(code, 1);
    assert_eq!(check(&report, "workload.found")["status"], "pass");
    let refs = check(&report, "config.refs");
    assert_eq!(refs["cause"], "rejected", "{refs}");
    assert!(
        refs["message"]
            .as_str()
            .is_some_and(|m| m.contains("Deployment/postgres") && m.contains("spec.replicas"))
    );
}

#[test]
fn a_document_that_is_not_an_object_is_a_finding_not_an_abort() {
    let home = tempfile::tempdir().expect("tmp");
    let text = format!("- just\n- a list\n---\n{}", manifests("healthy"));
    let (report, code, all) = lint_file(home.path(), "m.yaml", &text);
    assert_eq!(code, 1, "{all}");
    let refs = check(&report, "config.refs");
    assert_eq!(refs["cause"], "rejected", "{refs}");
    assert!(
        refs["message"].as_str().is_some_and(
            |m| m.contains("m.yaml document 1") && m.contains("not a Kubernetes object")
        )
    );
    assert_eq!(check(&report, "config.connection-string")["status"], "pass");
}

#[test]
fn the_same_object_twice_is_one_object_with_a_note() {
    let home = tempfile::tempdir().expect("tmp");
    let docs = healthy_docs();
    let elsa = docs
        .iter()
        .find(|d| d.contains("kind: Deployment") && d.contains("name: elsa-server"))
        .expect("elsa deployment");
    // The later copy differs (another tag): it is the one used.
    let text = format!(
        "{}\n---\n{}",
        docs.join("\n---\n"),
        elsa.replace("elsa-server-v3-5:latest", "elsa-server-v3-5:3.5.1")
    );
    let (report, code, all) = lint_file(home.path(), "m.yaml", &text);
    let found = check(&report, "workload.found");
    assert_eq!(found["status"], "warn", "{found}");
    assert_eq!(found["cause"], "defined-twice");
    let msg = found["message"].as_str().expect("message");
    assert!(!msg.contains("workloads look like Elsa"), "{msg}");
    assert!(
        msg.contains("m.yaml document 6") && msg.contains("m.yaml document 8"),
        "{msg}"
    );
    // The later definition wins.
    assert!(msg.contains("elsa-server-v3-5:3.5.1"), "{msg}");
    assert_eq!(code, 0, "a note is a warning: {all}");
}

#[test]
fn a_secret_outside_the_bundle_must_exist_in_the_cluster_but_a_missing_key_fails() {
    let home = tempfile::tempdir().expect("tmp");
    let without: Vec<String> = healthy_docs()
        .into_iter()
        .filter(|d| !d.contains("kind: Secret"))
        .collect();
    let (report, _, all) = lint_file(home.path(), "m.yaml", &without.join("\n---\n"));
    let refs = check(&report, "config.refs");
    assert_eq!(refs["status"], "warn", "{refs}");
    assert_eq!(refs["cause"], "not-in-bundle");
    assert!(
        refs["message"]
            .as_str()
            .is_some_and(|m| m.contains("postgres-secret")
                && m.contains("not among the manifests given; it must exist in the cluster")),
        "{refs}"
    );
    assert!(
        !all.contains("not found: the container cannot start"),
        "{all}"
    );
    // What the password makes cannot be judged offline: unknown, never pass or fail.
    assert_eq!(
        check(&report, "config.connection-string")["status"],
        "unknown"
    );

    let text = manifests("healthy").replace("  password: elsa-db-Pa55word\n", "  pasword: x\n");
    let (report, code, _) = lint_file(home.path(), "m.yaml", &text);
    assert_eq!(code, 1);
    let refs = check(&report, "config.refs");
    assert_eq!(
        (refs["status"].as_str(), refs["cause"].as_str()),
        (Some("fail"), Some("key-missing")),
        "{refs}"
    );
}

#[test]
fn invalid_yaml_names_file_line_and_column() {
    let home = tempfile::tempdir().expect("tmp");
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("indent.yaml");
    std::fs::write(
        &path,
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\ndata:\n  a: b\n   c: d\n",
    )
    .expect("write");
    let out = elsadoctor(home.path())
        .args(["lint", "-f"])
        .arg(&path)
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("indent.yaml") && err.contains("line 6") && err.contains("column"),
        "{err}"
    );
}

/// `network.policy` in `lint`: the verdicts come from the manifests' NetworkPolicies, each
/// naming the policy (and rule) that decides; no policy in the bundle is not a pass.
#[test]
fn network_policies_in_the_manifests_are_judged_and_named() {
    let home = tempfile::tempdir().expect("tmp");
    let check = |scenario: &str| {
        let (report, _) = lint_json(home.path(), &manifests(scenario));
        report["checks"]
            .as_array()
            .and_then(|a| a.iter().find(|c| c["id"] == "network.policy"))
            .cloned()
            .expect("network.policy runs in lint")
    };
    let none = check("healthy");
    assert_eq!(none["status"], "skip", "{none}");
    assert!(
        none["message"]
            .as_str()
            .unwrap_or("")
            .contains("cluster may hold others"),
        "{none}"
    );
    let allowed = check("netpol-allowed");
    assert_eq!(allowed["status"], "pass", "{allowed}");
    let evidence = allowed["evidence"].to_string();
    assert!(
        evidence.contains("allowed by allow-dns, egress rule 1"),
        "{evidence}"
    );
    assert!(
        evidence.contains("allowed by elsa-to-postgres, egress rule 1"),
        "{evidence}"
    );
    assert!(
        evidence.contains("allowed by postgres-from-elsa, ingress rule 1"),
        "{evidence}"
    );
    let label = check("netpol-dns-name-label");
    assert_eq!(
        (label["status"].as_str(), label["cause"].as_str()),
        (Some("fail"), Some("namespace-label")),
        "{label}"
    );
    let msg = label["message"].as_str().unwrap_or("");
    assert!(
        msg.contains("allow-dns egress rule 1 selects namespaces by name=kube-system"),
        "{msg}"
    );
    assert!(msg.contains("kubernetes.io/metadata.name"), "{msg}");
    let blocked = check("netpol-db-blocked");
    assert_eq!(
        (blocked["status"].as_str(), blocked["cause"].as_str()),
        (Some("fail"), Some("db-egress-blocked")),
        "{blocked}"
    );
    let msg = blocked["message"].as_str().unwrap_or("");
    assert!(
        msg.contains("default-deny-egress, allow-dns, elsa-to-postgres select the Elsa pods"),
        "{msg}"
    );
    assert!(msg.contains("pod port 5432"), "{msg}");
}

// --- issue 12, item 2: the migration path in lint ------------------------------------------

/// The guide's migration Job (mig-guide-job's last document), linted on its own: the
/// dotnet-ef cause although there is no Elsa workload to compare it with; and with the
/// healthy 3.5 server beside it, the same cause naming the Job.
#[test]
fn the_guides_migration_job_alone_and_beside_the_server_is_dotnet_ef() {
    let home = tempfile::tempdir().expect("tmp");
    let all = manifests("mig-guide-job");
    let job = all
        .split("\n---\n")
        .find(|d| d.contains("kind: Job"))
        .expect("the guide's Job")
        .to_owned();
    let (report, code) = lint_json(home.path(), &job);
    assert_eq!(code, 1, "{report}");
    let step = check(&report, "migration.step");
    assert_eq!(step["status"], "fail", "{step}");
    assert_eq!(step["cause"], "dotnet-ef", "{step}");
    let msg = step["message"].as_str().unwrap_or_default();
    assert!(msg.contains("job/elsa-migrations"), "{msg}");
    assert!(msg.contains("elsaworkflows/elsa-server:latest"), "{msg}");
    // The Job's password reference is scrubbed like any env value, never printed.
    assert!(!report.to_string().contains("elsa-db-Pa55word"));

    let (report, _) = lint_json(home.path(), &all);
    let step = check(&report, "migration.step");
    assert_eq!(step["cause"], "dotnet-ef", "{step}");
    assert!(
        step["evidence"]
            .to_string()
            .contains("dotnet ef database update --context ManagementElsaDbContext"),
        "{step}"
    );
    // migration.status needs the cluster: lint does not run it.
    assert!(
        report["checks"]
            .as_array()
            .is_some_and(|a| a.iter().all(|c| c["id"] != "migration.status"))
    );
}
