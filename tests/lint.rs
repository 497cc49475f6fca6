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
    let containers = deployment["spec"]["template"]["spec"]["containers"]
        .as_array_mut()
        .expect("containers");
    for pc in patch["spec"]["template"]["spec"]["containers"]
        .as_array()
        .expect("patch containers")
    {
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
        !text.contains("cluster"),
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
