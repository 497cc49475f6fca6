//! Versions when the image names none (issue 13, DESIGN.md §3 "Versions"): the guide's manifests
//! verbatim run `elsaworkflows/elsa-server:latest`, and the doctor must still conclude where every
//! candidate release agrees, and say so; `--elsa-version` states the version instead.

use std::path::Path;

use assert_cmd::Command;
use serde_json::Value;

fn lint(file: &str, extra: &[&str]) -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/guide")
        .join(file);
    let out = Command::cargo_bin("elsadoctor")
        .expect("binary")
        .env_clear()
        .env("NO_COLOR", "1")
        .args(["lint", "-o", "json", "-f"])
        .arg(&path)
        .args(extra)
        .output()
        .expect("run");
    assert!(
        out.stderr.is_empty(),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("json report")
}

fn check<'a>(report: &'a Value, id: &str) -> &'a Value {
    report["checks"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["id"] == id))
        .unwrap_or_else(|| panic!("{id} missing"))
}

fn evidence(c: &Value) -> String {
    c["evidence"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| {
            format!(
                "{} = {}",
                e["label"].as_str().unwrap_or(""),
                e["value"].as_str().unwrap_or("")
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn the_guides_options_fail_config_provider_over_every_candidate() {
    for file in ["option-a.yaml", "option-b.yaml"] {
        let r = lint(file, &[]);
        let p = check(&r, "config.provider");
        assert_eq!(p["status"], "fail", "{file}: {p}");
        let ev = evidence(p);
        assert!(
            ev.contains("candidates Elsa.Server.Web 3.0.0–3.8.0"),
            "{file}: {ev}"
        );
        assert!(
            ev.contains("Elsa.Server.Web 3.3.0–3.5.3 = DatabaseProvider is not set"),
            "{file}: {ev}"
        );
        assert!(ev.contains("3.0.0–3.2.4, 3.6.0–3.8.0"), "{file}: {ev}");
        assert!(
            p["fix"]["summary"]
                .as_str()
                .unwrap_or("")
                .contains("whichever release"),
            "{file}: the fix is the any-version one: {}",
            p["fix"]
        );
    }
}

#[test]
fn a_stated_version_is_judged_alone_and_named() {
    let r = lint("option-a.yaml", &["--elsa-version", "3.5.3"]);
    let p = check(&r, "config.provider");
    assert_eq!(p["status"], "fail");
    assert!(
        p["message"]
            .as_str()
            .unwrap_or("")
            .contains("DatabaseProvider is not set"),
        "{p}"
    );
    let ev = evidence(p);
    assert!(
        ev.contains("--elsa-version 3.5.3 (stated by the user)"),
        "{ev}"
    );
    let r = lint("option-a.yaml", &["--elsa-version", "3.7"]);
    let p = check(&r, "config.provider");
    assert!(
        p["message"]
            .as_str()
            .unwrap_or("")
            .contains("fixes its database provider in code"),
        "{p}"
    );
}

#[test]
fn a_bad_stated_version_is_one_line_exit_2() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/guide/option-a.yaml");
    for bad in ["4.0", "3.x", "banana", "3.9.1"] {
        let out = Command::cargo_bin("elsadoctor")
            .expect("binary")
            .env_clear()
            .args(["lint", "-f"])
            .arg(&path)
            .args(["--elsa-version", bad])
            .output()
            .expect("run");
        assert_eq!(out.status.code(), Some(2), "{bad}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(bad), "{bad}: {err}");
        assert!(!err.contains("panicked"), "{err}");
    }
}
