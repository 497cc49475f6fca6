//! Runtime checks: what the running Elsa pods say about themselves. `runtime.sqlite-file` judges
//! the exec listing of the Elsa container: on Server.Web up to 3.5 `App_Data/elsa.sqlite.db`
//! exists only when Elsa runs on SQLite, so it proves the silent fallback; elsewhere the file is
//! created whatever the provider and proves nothing (ELSA-FACTS §1, §8). `runtime.logs` matches
//! the recent (and previous) logs against the known signatures of `domain::log_signatures`;
//! `runtime.health` judges the answer of the version's health endpoint.

use std::collections::BTreeMap;

use super::workload::selected;
use super::{CheckImpl, Finding, kubelet_finding, kubelet_unreachable, not_observed};
use crate::domain::elsa::{self, Flavor};
use crate::domain::log_signatures::{self, Signature};
use crate::facts::{FactKey, Facts, HealthAnswer, PodListing, PodLog, Probe};
use crate::report::Evidence;

/// The signature families in priority order, then any further causes of `runtime.logs`: one
/// list, so the two consts below cannot drift apart.
macro_rules! log_causes {
    ($($extra:literal),*) => {
        &[
            "sqlite",
            "bad-provider",
            "signing-key",
            "modular-feature",
            "dns",
            "db-unreachable",
            "db-auth",
            "db-missing",
            "db-permission",
            "db-tables",
            "db-schema-mismatch",
            "lock-dir",
            "lock-unreachable",
            "local-lock",
            $($extra),*
        ]
    };
}

/// The causes of `runtime.logs`: the signature families, in priority order.
pub const LOG_CAUSES: &[&str] = log_causes!();

pub const LOGS: CheckImpl = CheckImpl {
    id: "runtime.logs",
    needs: &[FactKey::Workloads, FactKey::Logs],
    causes: log_causes!("kubelet-unreachable"),
    run: logs,
};

pub const HEALTH: CheckImpl = CheckImpl {
    id: "runtime.health",
    needs: &[
        FactKey::Workloads,
        FactKey::ConfigSources,
        FactKey::Services,
        FactKey::PodFiles,
        FactKey::Health,
    ],
    causes: &[
        "unhealthy",
        "unexpected-status",
        "not-listening",
        "kubelet-unreachable",
    ],
    run: health,
};

/// Matching lines shown per signature.
const LINES_PER_SIGNATURE: usize = 3;
/// Characters of a log line shown.
const LINE_CHARS: usize = 240;

/// `s` cut to `max` characters, with an ellipsis when cut.
fn truncate(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_owned(),
    }
}

/// `pod/x (container c, previous instance)`.
fn where_(l: &PodLog) -> String {
    format!(
        "pod/{} (container {}, {})",
        l.pod,
        l.container,
        if l.previous {
            "previous instance"
        } else {
            "current"
        }
    )
}

/// One signature's hits: (log index, line), unique lines in order of appearance.
type Hits<'a> = BTreeMap<usize, (&'static Signature, Vec<(usize, &'a str)>)>;

fn logs(f: &Facts) -> Finding {
    if let Err(finding) = selected(f) {
        return finding;
    }
    let list = match &f.logs {
        Probe::Observed(l) => l,
        other => {
            if let Some(reason) = kubelet_unreachable(other) {
                return kubelet_finding(reason, "the Elsa pods' logs", true);
            }
            return not_observed(other, "the Elsa pods' logs");
        }
    };
    let read: Vec<(usize, &PodLog, &str)> = list
        .iter()
        .enumerate()
        .filter_map(|(i, l)| l.text.observed().map(|t| (i, l, t.as_str())))
        .collect();
    let unread: Vec<Evidence> = list
        .iter()
        .filter(|l| !matches!(l.text, Probe::Observed(_) | Probe::Absent))
        .map(|l| {
            Evidence::new(
                "log not read",
                l.text.why_not().unwrap_or_default().to_string(),
            )
            .from(where_(l))
        })
        .collect();
    if read.is_empty() {
        let why = if list.is_empty() {
            "the workload has no pods whose logs could be read — see workload.pods".to_owned()
        } else {
            "no log of the Elsa container could be read".to_owned()
        };
        if let Some(reason) = list.iter().find_map(|l| kubelet_unreachable(&l.text)) {
            return kubelet_finding(reason, "the Elsa pods' logs", true).with_all(unread);
        }
        return Finding::unknown(None, why).with_all(unread);
    }
    // Signature position in the table → its hits.
    let mut hits: Hits<'_> = BTreeMap::new();
    for &(i, _, text) in &read {
        for line in text.lines() {
            for sig in log_signatures::matching(line) {
                let pos = log_signatures::SIGNATURES
                    .iter()
                    .position(|s| s.id == sig.id)
                    .unwrap_or(usize::MAX);
                let entry = hits.entry(pos).or_insert((sig, Vec::new()));
                let line = line.trim();
                if !entry.1.iter().any(|(_, l)| *l == line) {
                    entry.1.push((i, line));
                }
            }
        }
    }
    let read_evidence = read.iter().map(|(_, l, t)| {
        Evidence::new("log read", format!("{} lines", t.lines().count())).from(where_(l))
    });
    if hits.is_empty() {
        return Finding::pass(format!("{} log(s) read, no known error lines", read.len()))
            .with_all(read_evidence)
            .with_all(unread);
    }
    let mut evidence = Vec::new();
    let mut summaries = Vec::new();
    let mut first_hit: Option<&PodLog> = None;
    for (sig, lines) in hits.values() {
        summaries.push(format!("{} — see {}", sig.meaning, sig.check));
        for (i, line) in lines.iter().take(LINES_PER_SIGNATURE) {
            let Some(l) = list.get(*i) else { continue };
            first_hit.get_or_insert(l);
            evidence.push(
                Evidence::new(
                    format!("{} (see {})", sig.id, sig.check),
                    truncate(line, LINE_CHARS),
                )
                .from(where_(l)),
            );
        }
        if lines.len() > LINES_PER_SIGNATURE {
            evidence.push(Evidence::new(
                format!("{} (see {})", sig.id, sig.check),
                format!(
                    "{} more matching line(s) not shown",
                    lines.len() - LINES_PER_SIGNATURE
                ),
            ));
        }
    }
    let serious = hits.values().find(|(s, _)| !s.warning_only);
    let lead = serious.or_else(|| hits.values().next());
    let Some((lead, _)) = lead else {
        return Finding::unknown(None, "no signature");
    };
    let cause = LOG_CAUSES
        .iter()
        .copied()
        .find(|c| *c == lead.family)
        .unwrap_or("db-auth");
    let message = format!("known error lines in the logs: {}", summaries.join("; "));
    let finding = if serious.is_some() {
        Finding::problem(cause, message)
    } else {
        Finding::warn(cause, message)
    };
    let mut finding = finding.with_all(evidence).with_all(unread);
    if let Some(l) = first_hit {
        finding = finding.var("pod", &l.pod).var("container", &l.container);
    }
    finding
}

/// The failing part a 3.8 `/health/ready` body names: the store in "Elsa workflow store 'X' is
/// not reachable", else the health check names Elsa registers.
pub fn failing_part(body: &str) -> Option<String> {
    let marker = "Elsa workflow store '";
    if let Some(start) = body.find(marker) {
        let rest = &body[start + marker.len()..];
        if let Some(end) = rest.find('\'') {
            return Some(format!("workflow store '{}'", &rest[..end]));
        }
    }
    let named: Vec<&str> = [
        "elsa-workflow-persistence",
        "elsa-distributed-locks",
        "elsa-runtime",
    ]
    .into_iter()
    .filter(|n| body.contains(n))
    .collect();
    (!named.is_empty()).then(|| format!("health check {}", named.join(", ")))
}

/// The identity the run's model reasoned (image, contents, `--elsa-version`), else the image's.
fn model_identity(f: &Facts, w: &crate::domain::workload::Workload<'_>) -> Option<elsa::Identity> {
    match f.effective() {
        Ok(v) => v.identity.clone(),
        Err(_) => elsa::identify(w),
    }
}

fn health(f: &Facts) -> Finding {
    let (w, _) = match selected(f) {
        Ok(s) => s,
        Err(finding) => return finding,
    };
    let Some(id) = model_identity(f, &w) else {
        return Finding::skip("no Elsa container identified — see workload.flavor");
    };
    if id.version.is_none() {
        return Finding::skip("Elsa version not known — see workload.flavor");
    }
    let Some(probe) = elsa::health_probe(id.flavor, id.version) else {
        return Finding::skip(format!(
            "the health endpoints of {} are not known — see workload.flavor",
            id.flavor
        ));
    };
    let h = match &f.health {
        Probe::Observed(h) => h,
        other => {
            if let Some(reason) = kubelet_unreachable(other) {
                return kubelet_finding(reason, "the health endpoint", false);
            }
            return not_observed(other, "the health endpoint");
        }
    };
    // Gathering chose the path before the container's contents were read only when the image
    // named the version; a model that learned another version from the contents serves another.
    if h.path != probe.path {
        return Finding::unknown(
            None,
            format!(
                "{} was asked, but {} {} serves its health endpoint at {} — rerun to ask the right one",
                h.path,
                id.flavor,
                id.version.map(|v| v.to_string()).unwrap_or_default(),
                probe.path
            ),
        );
    }
    let at = format!("pod/{} port {}", h.pod, h.port);
    let base = vec![Evidence::new("asked", format!("GET {}", h.path)).from(at.clone())];
    let finding = match &h.answer {
        HealthAnswer::Refused { message } => Finding::problem(
            "not-listening",
            format!(
                "nothing accepts connections on port {} in pod {}: Elsa is not serving HTTP there",
                h.port, h.pod
            ),
        )
        .with_all(base)
        .with(Evidence::new("kubelet", message.clone()).from("port-forward")),
        HealthAnswer::Http { status, body } => {
            let mut ev = base;
            ev.push(Evidence::new("status", status.to_string()).from(at.clone()));
            if !body.trim().is_empty() {
                ev.push(Evidence::new("body", truncate(body.trim(), 400)).from(at));
            }
            match *status {
                200..=299 if probe.checks_stores => Finding::pass(format!(
                    "{} answered {status}: Elsa's runtime, workflow stores and locks report healthy",
                    h.path
                ))
                .with_all(ev),
                200..=299 => Finding::pass(format!(
                    "{} answered {status}: the web server is up",
                    h.path
                ))
                .with_all(ev)
                .with(Evidence::new(
                    "what this proves",
                    format!(
                        "only that Kestrel is up: {} {} registers no health checks on {}, so the database is not touched (see database.login for that)",
                        id.flavor,
                        id.version.map(|v| v.to_string()).unwrap_or_default(),
                        h.path
                    ),
                )),
                503 if probe.checks_stores => {
                    let part = failing_part(body);
                    Finding::problem(
                        "unhealthy",
                        match &part {
                            Some(p) => format!("{} answered 503: {p} is failing", h.path),
                            None => format!(
                                "{} answered 503: Elsa reports itself unhealthy (the body names no store)",
                                h.path
                            ),
                        },
                    )
                    .with_all(ev)
                }
                other => Finding::problem(
                    "unexpected-status",
                    format!("{} answered {other} instead of 200", h.path),
                )
                .with_all(ev),
            }
        }
    };
    finding.var("pod", &h.pod)
}

pub const SQLITE_FILE: CheckImpl = CheckImpl {
    id: "runtime.sqlite-file",
    needs: &[
        FactKey::Workloads,
        FactKey::ConfigSources,
        FactKey::Services,
        FactKey::PodFiles,
    ],
    causes: &["fallback", "unexplained", "no-shell", "kubelet-unreachable"],
    run: sqlite_file,
};

/// The SQLite files (with their `-wal`/`-shm` companions) a listing shows.
pub fn sqlite_files(listing: &PodListing) -> Vec<&str> {
    listing
        .paths
        .iter()
        .map(String::as_str)
        .filter(|p| {
            elsa::ALL_SQLITE_PATHS.iter().any(|base| {
                *p == *base
                    || elsa::SQLITE_COMPANIONS
                        .iter()
                        .any(|c| p.strip_prefix(base) == Some(c))
            })
        })
        .collect()
}

fn sqlite_file(f: &Facts) -> Finding {
    let (w, _) = match selected(f) {
        Ok(s) => s,
        Err(finding) => return finding,
    };
    let Some(id) = model_identity(f, &w) else {
        return Finding::skip("Elsa flavour not known — see workload.flavor");
    };
    let listing = match &f.pod_files {
        Probe::Observed(l) => l,
        Probe::Failed(e) if e.reason.starts_with("no shell") => {
            return Finding::unknown(
                Some("no-shell"),
                format!(
                    "cannot look inside the Elsa container: {} (rerun with --vantage ephemeral to look from a debug container)",
                    e.reason
                ),
            );
        }
        Probe::NotAttempted(why) => {
            return Finding::skip(format!("nothing listed: {why}"));
        }
        other => {
            if let Some(reason) = kubelet_unreachable(other) {
                return kubelet_finding(reason, "the Elsa container's files", false);
            }
            return not_observed(other, "the Elsa container's files");
        }
    };
    let found = sqlite_files(listing);
    let source = format!(
        "exec ls in pod {} container {}",
        listing.pod, listing.container
    );
    let paths = elsa::sqlite_paths(id.flavor, id.version);
    let base = |finding: Finding| {
        finding
            .with(
                Evidence::new(
                    "SQLite files",
                    if found.is_empty() {
                        "none".to_owned()
                    } else {
                        found.join(", ")
                    },
                )
                .from(source.clone()),
            )
            .var("pod", &listing.pod)
            .var("container", &listing.container)
    };
    let version = id.version.map(|v| format!(" {v}")).unwrap_or_default();
    if let Some((path, _)) = paths
        .iter()
        .find(|(p, proves)| *proves && found.contains(p))
    {
        return base(Finding::problem(
            "fallback",
            format!(
                "{path} exists: {}{version} creates it only when it runs on SQLite, so Elsa is not using PostgreSQL — its data lives in the pod and is lost when the pod goes",
                id.flavor
            ),
        ));
    }
    if found.is_empty() {
        let looked: Vec<&str> = if paths.is_empty() {
            elsa::ALL_SQLITE_PATHS.to_vec()
        } else {
            paths.iter().map(|(p, _)| *p).collect()
        };
        return base(Finding::pass(format!(
            "no SQLite database in the container (looked for {})",
            looked.join(", ")
        )));
    }
    if paths.is_empty() {
        // A custom build: nothing says which files it creates.
        return base(Finding::warn(
            "unexplained",
            format!(
                "{} has an SQLite database ({}): a custom build may be using SQLite for some or all of its stores",
                id.image,
                found.join(", ")
            ),
        ));
    }
    let expected: Vec<&str> = paths.iter().map(|(p, _)| *p).collect();
    let unexpected: Vec<&str> = found
        .iter()
        .copied()
        .filter(|p| !expected.iter().any(|e| p.starts_with(e)))
        .collect();
    if !unexpected.is_empty() {
        return base(Finding::warn(
            "unexplained",
            format!(
                "{} is an SQLite path {}{version} does not normally use: something in this image runs on SQLite",
                unexpected.join(", "),
                id.flavor
            ),
        ));
    }
    let why = match id.flavor {
        Flavor::ServerWeb => "this version is wired to SQLite and always creates it",
        Flavor::ServerAndStudio => {
            "this flavour keeps some stores in SQLite even when PostgreSQL works"
        }
        _ => "this flavour creates it whatever the provider",
    };
    base(Finding::pass(format!(
        "{} exists, which proves nothing here: {why}",
        found.join(", ")
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::Outcome;
    use crate::checks::test_support::{deployment, with_deployments};
    use crate::facts::HealthObservation;

    fn facts_with(image: &str) -> Facts {
        with_deployments(serde_json::json!([deployment("elsa-server", image, 1)]))
    }

    fn log(pod: &str, previous: bool, text: Probe<String>) -> PodLog {
        PodLog {
            pod: pod.into(),
            container: "elsa-server".into(),
            previous,
            text,
        }
    }

    #[test]
    fn clean_logs_pass_and_name_what_was_read() {
        let mut f = facts_with("elsaworkflows/elsa-server-v3-5:3.5.3");
        f.logs = Probe::Observed(vec![
            log(
                "p1",
                false,
                Probe::Observed("info: Now listening on: http://[::]:8080\n".into()),
            ),
            log("p1", true, Probe::Absent),
        ]);
        let r = logs(&f);
        assert_eq!(r.outcome, Outcome::Pass, "{r:?}");
        assert!(r.evidence.iter().any(|e| e.value.contains("1 lines")));
    }

    #[test]
    fn a_28p01_in_the_previous_logs_fails_and_points_to_database_login() {
        let mut f = facts_with("elsaworkflows/elsa-server-v3-5:3.5.3");
        let line = "Npgsql.PostgresException (0x80004005): 28P01: password authentication failed for user \"elsa\"";
        f.logs = Probe::Observed(vec![
            log("p1", false, Probe::failed(Some(400), "waiting to start")),
            log(
                "p1",
                true,
                Probe::Observed(format!("{line}\n   at Npgsql.Internal\n{line}\n")),
            ),
        ]);
        let r = logs(&f);
        assert_eq!(r.outcome, Outcome::Problem);
        assert_eq!(r.cause, Some("db-auth"));
        assert!(r.message.contains("see database.login"), "{}", r.message);
        let shown: Vec<_> = r
            .evidence
            .iter()
            .filter(|e| e.label.contains("pg-28P01"))
            .collect();
        assert_eq!(shown.len(), 1, "identical lines shown once: {shown:?}");
        assert!(
            shown[0]
                .source
                .as_deref()
                .is_some_and(|s| s.contains("previous instance"))
        );
        assert!(r.evidence.iter().any(|e| e.label == "log not read"));
        assert_eq!(r.vars.fill("{pod}"), "p1");
    }

    #[test]
    fn the_root_cause_leads_and_a_local_lock_warning_alone_only_warns() {
        let mut f = facts_with("elsaworkflows/elsa-server-v3-5:3.5.3");
        f.logs = Probe::Observed(vec![log(
            "p1",
            false,
            Probe::Observed(
                "warn: Distributed workflow runtime is using local-only lock provider File\nMicrosoft.Data.Sqlite.SqliteException (0x80004005): SQLite Error 1: 'no such table: Triggers'.\n"
                    .into(),
            ),
        )]);
        let r = logs(&f);
        assert_eq!((r.outcome, r.cause), (Outcome::Problem, Some("sqlite")));
        assert!(r.message.contains("see production.locking"));
        f.logs = Probe::Observed(vec![log(
            "p1",
            false,
            Probe::Observed(
                "warn: Distributed workflow runtime is using local-only lock provider File\n"
                    .into(),
            ),
        )]);
        let r = logs(&f);
        assert_eq!((r.outcome, r.cause), (Outcome::Warn, Some("local-lock")));
    }

    #[test]
    fn long_lines_are_cut_and_many_lines_are_counted() {
        let mut f = facts_with("elsaworkflows/elsa-server-v3-5:3.5.3");
        let text: String = (0..5)
            .map(|i| {
                format!(
                    "42P01: relation \"Elsa.T{i}\" does not exist {}\n",
                    "x".repeat(400)
                )
            })
            .collect();
        f.logs = Probe::Observed(vec![log("p1", false, Probe::Observed(text))]);
        let r = logs(&f);
        assert_eq!(r.cause, Some("db-tables"));
        let lines: Vec<_> = r
            .evidence
            .iter()
            .filter(|e| e.label.starts_with("pg-42P01"))
            .collect();
        assert_eq!(lines.len(), LINES_PER_SIGNATURE + 1);
        assert!(lines[0].value.ends_with('…') && lines[0].value.chars().count() == LINE_CHARS + 1);
        assert!(lines[LINES_PER_SIGNATURE].value.contains("2 more"));
    }

    #[test]
    fn unreadable_logs_are_unknown_never_pass() {
        let mut f = facts_with("elsaworkflows/elsa-server-v3-5:3.5.3");
        f.logs = Probe::Forbidden {
            verb: "get".into(),
            resource: "pods/log".into(),
        };
        let r = logs(&f);
        assert_eq!(r.outcome, Outcome::Unknown);
        assert!(r.message.contains("get pods/log"), "{}", r.message);
        f.logs = Probe::Observed(vec![log("p1", false, Probe::failed(None, "timeout"))]);
        assert_eq!(logs(&f).outcome, Outcome::Unknown);
        f.logs = Probe::Observed(vec![]);
        assert_eq!(logs(&f).outcome, Outcome::Unknown);
    }

    fn observed(path: &str, answer: HealthAnswer) -> Probe<HealthObservation> {
        Probe::Observed(HealthObservation {
            pod: "p1".into(),
            port: 8080,
            path: path.into(),
            answer,
        })
    }

    #[test]
    fn a_38_503_names_the_failing_store() {
        let mut f = facts_with("elsaworkflows/elsa-server-v3-8:3.8.0");
        f.health = observed(
            "/health/ready",
            HealthAnswer::Http {
                status: 503,
                body: "Unhealthy: Elsa workflow store 'WorkflowInstanceStore' is not reachable."
                    .into(),
            },
        );
        let r = health(&f);
        assert_eq!((r.outcome, r.cause), (Outcome::Problem, Some("unhealthy")));
        assert!(
            r.message.contains("workflow store 'WorkflowInstanceStore'"),
            "{}",
            r.message
        );
        f.health = observed(
            "/health/ready",
            HealthAnswer::Http {
                status: 200,
                body: "Healthy".into(),
            },
        );
        assert_eq!(health(&f).outcome, Outcome::Pass);
    }

    #[test]
    fn a_200_before_38_passes_but_says_it_proves_only_kestrel() {
        let mut f = facts_with("elsaworkflows/elsa-server-v3-5:3.5.3");
        f.health = observed(
            "/",
            HealthAnswer::Http {
                status: 200,
                body: "Healthy".into(),
            },
        );
        let r = health(&f);
        assert_eq!(r.outcome, Outcome::Pass);
        assert!(
            r.evidence
                .iter()
                .any(|e| e.value.contains("only that Kestrel is up")),
            "{:?}",
            r.evidence
        );
        f.health = observed(
            "/",
            HealthAnswer::Http {
                status: 404,
                body: String::new(),
            },
        );
        assert_eq!(health(&f).cause, Some("unexpected-status"));
        f.health = observed(
            "/",
            HealthAnswer::Refused {
                message: "connection refused".into(),
            },
        );
        assert_eq!(health(&f).cause, Some("not-listening"));
    }

    #[test]
    fn health_skips_without_a_version_and_is_unknown_without_an_answer() {
        let mut f = facts_with("elsaworkflows/elsa-server-v3:latest");
        f.health = Probe::NotAttempted("x".into());
        let r = health(&f);
        assert_eq!(r.outcome, Outcome::Skip);
        assert!(r.message.contains("see workload.flavor"));
        let mut f = facts_with("elsaworkflows/elsa-server-v3-8:3.8.0");
        f.health = Probe::Forbidden {
            verb: "get".into(),
            resource: "pods/portforward".into(),
        };
        let r = health(&f);
        assert_eq!(r.outcome, Outcome::Unknown);
        assert!(r.message.contains("pods/portforward"));
    }

    #[test]
    fn every_signature_points_to_a_check_of_the_catalogue() {
        let cat = crate::catalogue::Catalogue::embedded().expect("catalogue");
        // Added by the network work in parallel (DESIGN §3); drop once they are in the catalogue.
        let planned = ["network.dns", "network.tcp"];
        for s in log_signatures::SIGNATURES {
            assert!(
                cat.get(s.check).is_some() || planned.contains(&s.check),
                "{}: {} is not a check",
                s.id,
                s.check
            );
        }
    }

    #[test]
    fn causes_are_the_signature_families() {
        assert_eq!(LOG_CAUSES.to_vec(), log_signatures::families());
        assert_eq!(LOGS.causes[..LOG_CAUSES.len()], *LOG_CAUSES);
    }

    #[test]
    fn failing_part_reads_the_store_or_the_check_name() {
        assert_eq!(
            failing_part("Elsa workflow store 'Bookmarks' is not reachable."),
            Some("workflow store 'Bookmarks'".into())
        );
        assert_eq!(
            failing_part("{\"elsa-distributed-locks\":\"Unhealthy\"}"),
            Some("health check elsa-distributed-locks".into())
        );
        assert_eq!(failing_part("Unhealthy"), None);
    }

    mod sqlite_file {
        use super::*;
        use crate::checks::Outcome;
        use crate::checks::test_support::{deployment, with_deployments};
        use crate::facts::Failure;

        fn facts(image: &str, paths: &[&str]) -> Facts {
            let mut f = with_deployments(serde_json::json!([deployment("elsa-server", image, 1)]));
            f.pod_files = Probe::Observed(PodListing {
                pod: "elsa-server-abc".into(),
                container: "elsa-server".into(),
                paths: paths.iter().map(|p| (*p).to_owned()).collect(),
                contents: Default::default(),
                clues: Vec::new(),
            });
            f
        }

        #[test]
        fn app_data_file_on_server_35_proves_the_fallback() {
            let f = facts(
                "elsaworkflows/elsa-server-v3-5:latest",
                &[
                    "/app/Elsa.Server.Web.dll",
                    "/app/App_Data/elsa.sqlite.db",
                    "/app/App_Data/elsa.sqlite.db-wal",
                ],
            );
            let r = sqlite_file(&f);
            assert_eq!(r.cause, Some("fallback"), "{}", r.message);
            assert!(r.evidence[0].value.contains("-wal"));
        }

        #[test]
        fn no_file_passes_and_an_expected_file_proves_nothing() {
            let r = sqlite_file(&facts(
                "elsaworkflows/elsa-server-v3-5:latest",
                &["/app/Elsa.Server.Web.dll"],
            ));
            assert_eq!(r.outcome, Outcome::Pass, "{}", r.message);
            let r = sqlite_file(&facts(
                "elsaworkflows/elsa-server-and-studio-v3-5:latest",
                &["/app/elsa.sqlite.db"],
            ));
            assert_eq!(r.outcome, Outcome::Pass, "{}", r.message);
            assert!(r.message.contains("proves nothing"));
        }

        #[test]
        fn an_unexpected_path_warns() {
            let r = sqlite_file(&facts(
                "elsaworkflows/elsa-server-v3-5:latest",
                &["/app/elsa_workflows.db"],
            ));
            assert_eq!(r.cause, Some("unexplained"), "{}", r.message);
        }

        #[test]
        fn no_shell_is_unknown_with_the_ephemeral_hint() {
            let mut f = facts("elsaworkflows/elsa-server-v3-5:latest", &[]);
            f.pod_files = Probe::Failed(Failure {
                code: None,
                reason: "no shell: exec: \"sh\": executable file not found in $PATH".into(),
                probe_pod: None,
            });
            let r = sqlite_file(&f);
            assert_eq!(r.outcome, Outcome::Unknown);
            assert_eq!(r.cause, Some("no-shell"));
            assert!(r.message.contains("--vantage ephemeral"));
        }
    }
}
