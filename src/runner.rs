//! The runner: walks the catalogue as facts arrive, and emits [`RunEvent`]s.
//!
//! Gathering runs elsewhere and sends [`FactUpdate`]s over a channel. After each update the runner
//! evaluates, in catalogue order, every check whose facts are all in and whose hard
//! prerequisites are decided: a prerequisite that failed (or was itself skipped) makes the check
//! `skip` with `blockedBy`; an `unknown` one does not block. So results stream as soon as they
//! can be known. When the `--deadline` passes, facts still missing become `Failed` ("deadline reached") and their checks report `unknown`.
//! Every renderer consumes the same event stream; the final [`Report`] is the last event.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use crate::catalogue::{Catalogue, CheckSpec, Vars};
use crate::checks::{self, CheckImpl, Finding, Outcome};
use crate::domain::elsa;
use crate::domain::workload::Workload;
use crate::facts::{FactKey, FactUpdate, Facts, Failure, Need, Probe, Scope};
use crate::report::{CheckResult, Fix, Report, Status, Summary, Target, Tool};

/// A check as announced before the run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedCheck {
    pub id: String,
    pub title: String,
    pub category: String,
}

/// What happens during a run, in order: `Planned`, then `Started`/`Finding` as facts arrive
/// (findings may come out of catalogue order), then `Finished`.
#[derive(Debug, Clone)]
pub enum RunEvent {
    Planned {
        target: Target,
        checks: Vec<PlannedCheck>,
    },
    Started {
        id: String,
    },
    Finding {
        /// Position in catalogue order.
        index: usize,
        result: CheckResult,
    },
    Finished(Box<Report>),
}

/// The permissions the catalogue's checks need, for `cluster.access`. The rules review itself
/// is left out: when its answer exists, the right to ask was there.
pub fn needs(catalogue: &Catalogue) -> Vec<Need> {
    catalogue
        .checks
        .iter()
        .flat_map(|spec| {
            spec.needs.iter().filter_map(|n| {
                crate::catalogue::parse_need(n)
                    .filter(|(_, _, resource)| *resource != "selfsubjectrulesreviews")
                    .map(|(verb, group, resource)| Need {
                        check: spec.id.clone(),
                        verb: verb.to_owned(),
                        group: group.to_owned(),
                        resource: resource.to_owned(),
                    })
            })
        })
        .collect()
}

struct Slot<'a> {
    spec: &'a CheckSpec,
    imp: &'static CheckImpl,
    started: Option<Instant>,
    result: Option<CheckResult>,
}

/// Runs the catalogue against facts arriving on `updates`, calling `emit` for every event, and
/// returns the report. Checks in the catalogue without an implementation are a build error
/// caught by tests; here they are reported as `unknown` rather than panicking.
pub async fn run(
    catalogue: &Catalogue,
    scope: Scope,
    vantage: &str,
    updates: mpsc::UnboundedReceiver<FactUpdate>,
    deadline: Duration,
    emit: &mut dyn FnMut(RunEvent),
) -> Report {
    run_keeping_facts(catalogue, scope, vantage, updates, deadline, emit)
        .await
        .0
}

/// [`run`], also returning the facts the checks read at the end (for `--dump-facts`).
pub async fn run_keeping_facts(
    catalogue: &Catalogue,
    scope: Scope,
    vantage: &str,
    mut updates: mpsc::UnboundedReceiver<FactUpdate>,
    deadline: Duration,
    emit: &mut dyn FnMut(RunEvent),
) -> (Report, Facts) {
    let started_at = k8s_openapi::jiff::Timestamp::now();
    let t0 = Instant::now();
    let mut facts = Facts::new(scope, needs(catalogue));
    let mut slots: Vec<Slot<'_>> = Vec::new();
    for spec in &catalogue.checks {
        match checks::find(&spec.id) {
            Some(imp) => slots.push(Slot {
                spec,
                imp,
                started: None,
                result: None,
            }),
            None => tracing::error!(id = %spec.id, "catalogue entry without implementation"),
        }
    }
    emit(RunEvent::Planned {
        target: target(&facts),
        checks: slots
            .iter()
            .map(|s| PlannedCheck {
                id: s.spec.id.clone(),
                title: s.spec.title.clone(),
                category: s.spec.category.clone(),
            })
            .collect(),
    });

    let mut arrived: BTreeSet<FactKey> = BTreeSet::new();
    let stop_at = tokio::time::Instant::now() + deadline;
    loop {
        let next = tokio::time::timeout_at(stop_at, updates.recv()).await;
        match next {
            Ok(Some(update)) => {
                // Take every update already queued before judging: each fact drops the
                // effective model, and judging after each would rebuild it for nothing.
                let mut judge = false;
                let mut next = Some(update);
                while let Some(update) = next.take() {
                    match update {
                        FactUpdate::Started(keys) => {
                            for slot in slots.iter_mut().filter(|s| s.started.is_none()) {
                                if slot.imp.needs.iter().any(|k| keys.contains(k)) {
                                    slot.started = Some(Instant::now());
                                    emit(RunEvent::Started {
                                        id: slot.spec.id.clone(),
                                    });
                                }
                            }
                        }
                        update => {
                            if let Some(key) = update.key() {
                                arrived.insert(key);
                            }
                            update.apply(&mut facts);
                            judge = true;
                        }
                    }
                    next = updates.try_recv().ok();
                }
                if !judge {
                    continue;
                }
            }
            Ok(None) => break,
            Err(_) => {
                let why: Probe<()> = Probe::Failed(Failure {
                    code: None,
                    reason: format!(
                        "the run's --deadline of {} passed before this was observed",
                        humanize(deadline)
                    ),
                    probe_pod: None,
                });
                for key in missing_keys(&arrived) {
                    facts.set_unobserved(key, &why);
                    arrived.insert(key);
                }
                break;
            }
        }
        evaluate(&mut slots, &facts, &arrived, emit);
    }
    // Gathering ended: whatever never arrived was not attempted.
    let why: Probe<()> = Probe::NotAttempted("gathering ended without it".to_owned());
    for key in missing_keys(&arrived) {
        facts.set_unobserved(key, &why);
        arrived.insert(key);
    }
    evaluate(&mut slots, &facts, &arrived, emit);

    let results: Vec<CheckResult> = slots.into_iter().filter_map(|s| s.result).collect();
    let report = Report {
        schema_version: crate::report::SCHEMA_VERSION,
        tool: Tool::default(),
        target: target(&facts),
        vantage: vantage.to_owned(),
        started_at: started_at.to_string(),
        duration_ms: millis(t0.elapsed()),
        summary: Summary::of(results.iter().map(|r| &r.status)),
        checks: results,
    };
    emit(RunEvent::Finished(Box::new(report.clone())));
    (report, facts)
}

fn missing_keys(arrived: &BTreeSet<FactKey>) -> Vec<FactKey> {
    FactKey::ALL
        .iter()
        .copied()
        .filter(|k| !arrived.contains(k))
        .collect()
}

/// Runs every check that can run now.
fn evaluate(
    slots: &mut [Slot<'_>],
    facts: &Facts,
    arrived: &BTreeSet<FactKey>,
    emit: &mut dyn FnMut(RunEvent),
) {
    for index in 0..slots.len() {
        if slots[index].result.is_some() {
            continue;
        }
        let slot = &slots[index];
        if !slot.imp.needs.iter().all(|k| arrived.contains(k)) {
            continue;
        }
        // Hard prerequisites must be decided first (they are earlier in the catalogue).
        let mut blocked = Vec::new();
        let mut undecided = false;
        for dep in &slot.spec.depends_on {
            // A prerequisite outside this run's plan (the cluster checks, in `lint`) holds.
            let Some(dep_slot) = slots.iter().find(|s| &s.spec.id == dep) else {
                continue;
            };
            match &dep_slot.result {
                Some(r) if r.status.blocks_dependents() => blocked.push(dep.clone()),
                Some(_) => {}
                None => undecided = true,
            }
        }
        if undecided {
            continue;
        }
        let started = slot.started.unwrap_or_else(Instant::now);
        let finding = if blocked.is_empty() {
            checks::run(slot.imp, facts)
        } else {
            Finding::skip(format!(
                "blocked: {} failed or did not run",
                blocked.join(", ")
            ))
        };
        let result = to_result(slot.spec, facts, finding, blocked, started.elapsed());
        let slot = &mut slots[index];
        if slot.started.is_none() {
            emit(RunEvent::Started {
                id: slot.spec.id.clone(),
            });
        }
        slot.result = Some(result.clone());
        emit(RunEvent::Finding { index, result });
    }
}

/// Applies the catalogue: severity, title, and the fix filled with this run's names.
fn to_result(
    spec: &CheckSpec,
    facts: &Facts,
    finding: Finding,
    blocked_by: Vec<String>,
    took: Duration,
) -> CheckResult {
    let status = match finding.outcome {
        Outcome::Pass => Status::Pass,
        Outcome::Problem => match spec.severity {
            crate::catalogue::Severity::Fail => Status::Fail,
            crate::catalogue::Severity::Warn => Status::Warn,
        },
        Outcome::Warn => Status::Warn,
        Outcome::Unknown => Status::Unknown,
        Outcome::Skip => Status::Skip,
    };
    let fix = matches!(status, Status::Warn | Status::Fail | Status::Unknown).then(|| {
        let vars = run_vars(facts).overlay(&finding.vars);
        let template = spec.fix_for(finding.cause);
        Fix {
            summary: template.summary.clone(),
            steps: template.steps.clone(),
            commands: template.commands.iter().map(|c| vars.fill(c)).collect(),
            docs: spec.docs.clone(),
            patch: finding.patch.as_deref().cloned(),
        }
    });
    CheckResult {
        id: spec.id.clone(),
        title: spec.title.clone(),
        category: spec.category.clone(),
        status,
        duration_ms: millis(took),
        message: finding.message,
        evidence: finding.evidence,
        blocked_by,
        cause: finding.cause.map(str::to_owned),
        fix,
    }
}

/// Template values every finding of this run shares.
fn run_vars(facts: &Facts) -> Vars {
    let mut v = Vars::default();
    if let Some(ctx) = &facts.scope.context {
        v.set("context", ctx);
    }
    v.set("namespace", &facts.scope.namespace);
    if let Ok((w, _)) = checks::workload::selected(facts) {
        v.set("workload", w.name());
        v.set("workload_kind", w.kind().as_str());
        if let Some(id) = elsa::identify(&w) {
            v.set("container", id.container);
            v.set("image", id.image);
        }
    }
    if let Some(p) = facts.pods.observed().and_then(|p| p.first()) {
        v.set("pod", p.metadata.name.clone().unwrap_or_default());
    }
    v
}

fn target(facts: &Facts) -> Target {
    let selected: Option<Workload<'_>> = checks::workload::selected(facts).ok().map(|(w, _)| w);
    let identity = selected.as_ref().and_then(elsa::identify);
    Target {
        context: facts.scope.context.clone(),
        namespace: Some(facts.scope.namespace.clone()),
        workload: selected.map(|w| w.reference()),
        flavor: identity.as_ref().map(|i| i.flavor.to_string()),
        elsa_version: identity.and_then(|i| i.version).map(|v| v.to_string()),
        simulated: facts.scope.simulated,
        scenario: facts.scope.scenario.clone(),
        replay: facts.scope.replay.clone(),
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

pub use crate::report::humanize;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::test_support::{deployment, scope};
    use crate::facts::{NamespaceInfo, ServerVersion};

    async fn drive(
        updates: Vec<FactUpdate>,
        deadline: Duration,
        keep_open: bool,
    ) -> (Report, Vec<RunEvent>) {
        let cat = Catalogue::embedded().expect("catalogue");
        let (tx, rx) = mpsc::unbounded_channel();
        for u in updates {
            tx.send(u).expect("send");
        }
        let holder = keep_open.then_some(tx.clone());
        drop(tx);
        let mut events = Vec::new();
        let report = run(&cat, scope(), "here", rx, deadline, &mut |e| events.push(e)).await;
        drop(holder);
        (report, events)
    }

    fn healthy_start() -> Vec<FactUpdate> {
        vec![
            FactUpdate::ServerVersion(Probe::Observed(ServerVersion {
                git_version: "v1.33.1".into(),
                platform: "linux/amd64".into(),
            })),
            FactUpdate::Namespace(Probe::Observed(NamespaceInfo {
                name: "elsa".into(),
                phase: Some("Active".into()),
                labels: Default::default(),
            })),
        ]
    }

    #[tokio::test]
    async fn unreachable_api_skips_dependents_with_blocked_by() {
        let (report, _) = drive(
            vec![FactUpdate::ServerVersion(Probe::failed(
                None,
                "connection refused",
            ))],
            Duration::from_secs(5),
            false,
        )
        .await;
        let by_id = report.by_id();
        assert_eq!(by_id["cluster.api"].status, Status::Fail);
        assert_eq!(by_id["cluster.namespace"].status, Status::Skip);
        assert_eq!(by_id["cluster.namespace"].blocked_by, vec!["cluster.api"]);
        assert_eq!(
            by_id["workload.found"].blocked_by,
            vec!["cluster.namespace"]
        );
        assert_eq!(by_id["workload.pods"].blocked_by, vec!["workload.found"]);
        assert!(report.is_failure(crate::report::FailOn::Fail));
    }

    #[tokio::test]
    async fn an_unknown_prerequisite_blocks_nothing() {
        // The namespace may not be read: its dependents still run and say what they see.
        let updates = vec![
            FactUpdate::ServerVersion(Probe::Observed(ServerVersion {
                git_version: "v1.36.2".into(),
                platform: "linux/amd64".into(),
            })),
            FactUpdate::Namespace(Probe::Forbidden {
                verb: "get".into(),
                resource: "namespaces".into(),
            }),
            FactUpdate::Workloads {
                deployments: Probe::Forbidden {
                    verb: "list".into(),
                    resource: "deployments".into(),
                },
                statefulsets: Probe::Forbidden {
                    verb: "list".into(),
                    resource: "statefulsets".into(),
                },
                literals: Default::default(),
                inferred: Default::default(),
            },
        ];
        let (report, _) = drive(updates, Duration::from_secs(5), false).await;
        let by_id = report.by_id();
        assert_eq!(by_id["cluster.namespace"].status, Status::Unknown);
        for c in &report.checks {
            for dep in &c.blocked_by {
                assert!(
                    by_id[dep.as_str()].status.blocks_dependents(),
                    "{} blocked by {dep}, which is {:?}",
                    c.id,
                    by_id[dep.as_str()].status
                );
            }
        }
        assert!(by_id["workload.pods"].blocked_by.is_empty());
        assert_ne!(by_id["cluster.access"].status, Status::Skip);
        let found = &by_id["workload.found"];
        assert_eq!(found.status, Status::Unknown);
        assert!(
            found.message.contains("list deployments"),
            "{}",
            found.message
        );
    }

    #[tokio::test]
    async fn results_are_in_catalogue_order_and_fixes_are_filled() {
        let mut updates = healthy_start();
        updates.push(FactUpdate::Workloads {
            deployments: Probe::Observed(vec![]),
            statefulsets: Probe::Observed(vec![]),
            literals: Default::default(),
            inferred: Default::default(),
        });
        let (report, events) = drive(updates, Duration::from_secs(5), false).await;
        let ids: Vec<_> = report.checks.iter().map(|c| c.id.as_str()).collect();
        let cat = Catalogue::embedded().expect("catalogue");
        assert_eq!(ids, cat.ids().collect::<Vec<_>>());
        let found = &report.by_id()["workload.found"];
        assert_eq!(found.status, Status::Fail);
        let fix = found.fix.as_ref().expect("fix on failure");
        assert!(fix.commands.iter().all(|c| !c.contains("{namespace}")));
        assert!(
            fix.commands.iter().any(|c| c.contains("-n elsa")),
            "{:?}",
            fix.commands
        );
        assert!(
            report.by_id()["cluster.api"].fix.is_none(),
            "no fix on pass"
        );
        assert!(matches!(events.first(), Some(RunEvent::Planned { .. })));
        assert!(matches!(events.last(), Some(RunEvent::Finished(_))));
    }

    #[tokio::test]
    async fn a_finding_streams_before_gathering_ends() {
        let cat = Catalogue::embedded().expect("catalogue");
        let (tx, rx) = mpsc::unbounded_channel();
        let (seen_tx, mut seen_rx) = mpsc::unbounded_channel();
        // The gatherer stand-in sends the workloads only after it has seen a finding: if the
        // runner waited for the end of gathering, the workloads would never arrive in time and
        // workload.found would be unknown (deadline) instead of fail.
        let gatherer = tokio::spawn(async move {
            for u in healthy_start() {
                tx.send(u).expect("send");
            }
            let first = seen_rx.recv().await;
            tx.send(FactUpdate::Workloads {
                deployments: Probe::Observed(vec![]),
                statefulsets: Probe::Observed(vec![]),
                literals: Default::default(),
                inferred: Default::default(),
            })
            .expect("send");
            first
        });
        let report = run(
            &cat,
            scope(),
            "here",
            rx,
            Duration::from_secs(5),
            &mut |e| {
                if let RunEvent::Finding { result, .. } = &e {
                    let _ = seen_tx.send(result.id.clone());
                }
            },
        )
        .await;
        assert_eq!(
            gatherer.await.expect("join").as_deref(),
            Some("cluster.api")
        );
        assert_eq!(report.by_id()["workload.found"].status, Status::Fail);
    }

    #[tokio::test]
    async fn deadline_turns_missing_facts_into_unknown() {
        let mut updates = healthy_start();
        updates.push(FactUpdate::Workloads {
            deployments: Probe::Observed(vec![
                serde_json::from_value(deployment(
                    "elsa-server",
                    "elsaworkflows/elsa-server-v3-5:latest",
                    1,
                ))
                .expect("deployment"),
            ]),
            statefulsets: Probe::Observed(vec![]),
            literals: Default::default(),
            inferred: Default::default(),
        });
        let (report, _) = drive(updates, Duration::from_millis(50), true).await;
        let pods = &report.by_id()["workload.pods"];
        assert_eq!(pods.status, Status::Unknown);
        assert!(
            pods.message.contains("--deadline of 50ms"),
            "{}",
            pods.message
        );
        assert_eq!(report.by_id()["workload.found"].status, Status::Pass);
        assert_eq!(
            report.target.workload.as_deref(),
            Some("deployment/elsa-server")
        );
        assert_eq!(report.target.elsa_version.as_deref(), Some("3.5"));
    }
}
