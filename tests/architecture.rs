//! The module arrows of DESIGN.md §2, enforced: checks, domain, facts and the model import no
//! IO module (gather, probe, the CLI, the runner, the outputs); gather imports no check, no
//! runner and no CLI. A `use` or path that breaks the rule fails here with the file and line.

use std::path::Path;

fn rust_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read_dir") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Every `crate::<module>` named in code (comments skipped) of the files under `roots`.
fn violations(roots: &[&str], forbidden: &[&str]) -> Vec<String> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    for r in roots {
        let p = src.join(r);
        if p.is_dir() {
            rust_files(&p, &mut files);
        } else {
            files.push(p.with_extension("rs"));
        }
    }
    let mut out = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).expect("read");
        for (i, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap_or("");
            for m in forbidden {
                let needle = format!("crate::{m}");
                if let Some(at) = code.find(&needle) {
                    let next = code[at + needle.len()..].chars().next();
                    if next.is_none_or(|c| !c.is_alphanumeric() && c != '_') {
                        out.push(format!("{}:{}: {}", file.display(), i + 1, line.trim()));
                    }
                }
            }
        }
    }
    out
}

#[test]
fn pure_modules_import_no_io() {
    let v = violations(
        &["checks", "domain", "facts", "model"],
        &[
            "gather", "probe", "cli", "runner", "app", "tui", "render", "settings",
        ],
    );
    assert!(v.is_empty(), "pure modules reach IO:\n{}", v.join("\n"));
}

#[test]
fn gather_imports_no_check_runner_or_cli() {
    let v = violations(
        &["gather"],
        &["checks", "runner", "cli", "app", "tui", "render"],
    );
    assert!(v.is_empty(), "gather reaches upward:\n{}", v.join("\n"));
}
