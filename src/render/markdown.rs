//! The Markdown report (`-o markdown`, and the TUI's export): made to paste into an Elsa GitHub
//! issue. Tool version, target (flavour, Elsa and Kubernetes versions), vantage, a table of every
//! check, then the evidence and fix of each failing, warning or unknown check. It prints only
//! what the [`Report`] holds, and values there are already redacted (`crate::redact`), so no
//! secret reaches it.

use std::io::{self, Write};

use crate::report::{CheckResult, Report, Status};

/// Writes the report.
pub fn write(out: &mut dyn Write, report: &Report) -> io::Result<()> {
    out.write_all(render(report).as_bytes())?;
    out.flush()
}

/// The report as Markdown.
pub fn render(report: &Report) -> String {
    let mut s = String::new();
    let t = &report.target;
    let sim = if t.simulated {
        " (SIMULATED cluster: `elsadoctor demo`)"
    } else {
        ""
    };
    s.push_str(&format!("### elsadoctor report{sim}\n\n"));
    if let Some(r) = &t.replay {
        s.push_str(&format!("**{}**\n\n", cell(&r.banner())));
    }
    s.push_str("| | |\n|---|---|\n");
    let row = |s: &mut String, k: &str, v: String| s.push_str(&format!("| {k} | {} |\n", cell(&v)));
    row(
        &mut s,
        "Tool",
        format!("{} {}", report.tool.name, report.tool.version),
    );
    row(
        &mut s,
        "Workload",
        format!(
            "{} in namespace {}",
            code(t.workload.as_deref().unwrap_or("(not found)")),
            code(t.namespace.as_deref().unwrap_or("?"))
        ),
    );
    row(
        &mut s,
        "Elsa",
        format!(
            "flavour {}, version {}",
            t.flavor.as_deref().unwrap_or("unknown"),
            t.elsa_version.as_deref().unwrap_or("unknown")
        ),
    );
    row(
        &mut s,
        "Kubernetes",
        kubernetes_version(report).unwrap_or_else(|| "unknown".to_owned()),
    );
    row(&mut s, "Vantage", report.vantage.clone());
    if let Some(scenario) = &t.scenario {
        row(&mut s, "Scenario", scenario.clone());
    }
    let sm = report.summary;
    row(
        &mut s,
        "Result",
        format!(
            "{} pass, {} warn, {} fail, {} unknown, {} skip in {} ms",
            sm.pass, sm.warn, sm.fail, sm.unknown, sm.skip, report.duration_ms
        ),
    );
    row(&mut s, "Started", report.started_at.clone());

    s.push_str("\n#### Checks\n\n| | Check | Result |\n|---|---|---|\n");
    for c in &report.checks {
        s.push_str(&format!(
            "| {} | {} {} | {} |\n",
            badge(c.status),
            code(&c.id),
            cell(&c.title),
            cell(&c.message)
        ));
    }

    let problems: Vec<&CheckResult> = report
        .checks
        .iter()
        .filter(|c| matches!(c.status, Status::Fail | Status::Warn | Status::Unknown))
        .collect();
    if !problems.is_empty() {
        s.push_str("\n#### Details\n");
    }
    for c in problems {
        s.push_str(&format!(
            "\n##### {} {} — {}\n\n{}\n",
            badge(c.status),
            code(&c.id),
            c.title,
            c.message
        ));
        if !c.evidence.is_empty() {
            s.push_str("\nEvidence:\n");
            for e in &c.evidence {
                let source = e
                    .source
                    .as_deref()
                    .map(|src| format!(" ({})", code(src)))
                    .unwrap_or_default();
                s.push_str(&format!("- {}: {}{source}\n", e.label, code(&e.value)));
            }
        }
        if let Some(fix) = &c.fix {
            s.push_str(&format!("\nFix: {}\n", fix.summary));
            for (i, step) in fix.steps.iter().enumerate() {
                s.push_str(&format!("{}. {step}\n", i + 1));
            }
            if !fix.commands.is_empty() {
                s.push_str("\n```sh\n");
                for cmd in &fix.commands {
                    s.push_str(cmd);
                    s.push('\n');
                }
                s.push_str("```\n");
            }
            if let Some(patch) = &fix.patch {
                s.push_str(&format!("\nGenerated patch: `{patch}`\n"));
            }
            s.push_str(&format!("\nDocs: {}\n", fix.docs));
        }
    }
    s.push_str(ATTACH);
    s
}

/// How to give maintainers the facts behind this report, so they can re-run the checks.
const ATTACH: &str = "\n#### Facts bundle\n\nTo let maintainers re-run these checks on what \
the cluster showed, run the same command again with `--dump-facts elsadoctor-facts.json` and \
attach that file to the issue (drag it into the comment box). It holds no secret: values were \
redacted when gathered and Secret values are kept only as their length and shape. Anyone can \
re-judge it with `elsadoctor replay elsadoctor-facts.json`.\n";

/// The API server's version, as `cluster.api` observed it.
fn kubernetes_version(report: &Report) -> Option<String> {
    report
        .checks
        .iter()
        .find(|c| c.id == "cluster.api")?
        .evidence
        .iter()
        .find(|e| e.label == "server version")
        .map(|e| e.value.clone())
}

fn badge(status: Status) -> &'static str {
    match status {
        Status::Pass => "✔ pass",
        Status::Warn => "‼ warn",
        Status::Fail => "✖ fail",
        Status::Unknown => "? unknown",
        Status::Skip => "⊘ skip",
    }
}

/// Inline code that survives backticks in the value.
fn code(s: &str) -> String {
    let s = s.replace('\n', " ");
    if s.contains('`') {
        format!("`` {s} ``")
    } else {
        format!("`{s}`")
    }
}

/// A table cell: no line breaks, pipes escaped.
fn cell(s: &str) -> String {
    s.replace('\r', "").replace('\n', " ").replace('|', "\\|")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::{Evidence, Fix, Summary, Target, Tool};

    fn result(id: &str, status: Status) -> CheckResult {
        CheckResult {
            id: id.into(),
            title: format!("title of {id}"),
            category: "Cluster".into(),
            status,
            duration_ms: 3,
            message: "a | b\nc".into(),
            evidence: vec![
                Evidence::new("server version", "v1.33.1 (linux/amd64)").from("GET /version"),
            ],
            blocked_by: vec![],
            cause: None,
            fix: (status != Status::Pass).then(|| Fix {
                summary: "do the thing".into(),
                steps: vec!["first".into()],
                commands: vec!["kubectl -n elsa get pods".into()],
                docs: "https://docs.elsaworkflows.io/".into(),
                patch: None,
            }),
        }
    }

    #[test]
    fn table_details_and_versions() {
        let checks = vec![
            result("cluster.api", Status::Pass),
            result("workload.pods", Status::Fail),
        ];
        let report = Report {
            schema_version: 1,
            tool: Tool::default(),
            target: Target {
                namespace: Some("elsa".into()),
                workload: Some("deployment/elsa-server".into()),
                flavor: Some("v3-5".into()),
                elsa_version: Some("3.5".into()),
                ..Default::default()
            },
            vantage: "port-forward".into(),
            started_at: "2026-01-01T00:00:00Z".into(),
            duration_ms: 12,
            summary: Summary::of(checks.iter().map(|c| &c.status)),
            checks,
        };
        let md = render(&report);
        assert!(
            md.contains("| Kubernetes | v1.33.1 (linux/amd64) |"),
            "{md}"
        );
        assert!(
            md.contains("| ✖ fail | `workload.pods` title of workload.pods | a \\| b c |"),
            "{md}"
        );
        assert!(md.contains("##### ✖ fail `workload.pods`"), "{md}");
        assert!(
            !md.contains("##### ✔ pass"),
            "no details for passing checks:\n{md}"
        );
        assert!(md.contains("```sh\nkubectl -n elsa get pods\n```"), "{md}");
        assert!(md.contains("flavour v3-5, version 3.5"), "{md}");
    }
}
