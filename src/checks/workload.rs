//! Workload checks: which workload is Elsa, what flavour and version it runs, whether its
//! rollout completed, and whether every pod runs and is ready (and if not, why).

use k8s_openapi::api::core::v1::{ContainerStatus, Event, Pod};

use super::{CheckImpl, Finding, Outcome, not_observed};
use crate::domain::elsa::{self, Flavor, Selection};
use crate::domain::image_contents;
use crate::domain::versions::Clue;
use crate::domain::workload::Workload;
use crate::facts::{FactKey, Facts, Probe};
use crate::redact;
use crate::report::Evidence;

pub const FOUND: CheckImpl = CheckImpl {
    id: "workload.found",
    needs: &[FactKey::Workloads],
    causes: &[
        "none",
        "ambiguous",
        "named-missing",
        "forbidden",
        "rejected",
        "defined-twice",
    ],
    run: found,
};

pub const FLAVOR: CheckImpl = CheckImpl {
    id: "workload.flavor",
    needs: &[FactKey::Workloads, FactKey::PodFiles],
    causes: &[
        "version-unknown",
        "custom-image",
        "studio-only",
        "contents-mismatch",
    ],
    run: flavor,
};

pub const ROLLOUT: CheckImpl = CheckImpl {
    id: "workload.rollout",
    needs: &[FactKey::Workloads],
    causes: &[
        "unavailable",
        "progress-deadline",
        "replica-failure",
        "scaled-to-zero",
        "not-observed",
    ],
    run: rollout,
};

pub const PODS: CheckImpl = CheckImpl {
    id: "workload.pods",
    needs: &[FactKey::Workloads, FactKey::Pods, FactKey::Events],
    causes: &[
        "no-pods",
        "crash-loop",
        "oom-killed",
        "image-pull",
        "config-error",
        "unschedulable",
        "failed-mount",
        "not-ready",
        "restarts",
    ],
    run: pods,
};

/// The workloads as far as they were observed; `Err` when neither kind could be listed.
fn workloads(f: &Facts) -> Result<Vec<Workload<'_>>, Finding> {
    f.workload_pool()
        .ok_or_else(|| not_observed(&f.deployments, "deployments"))
}

/// The selected Elsa workload, or the finding that explains why there is none.
pub fn selected(f: &Facts) -> Result<(Workload<'_>, String), Finding> {
    let all = workloads(f)?;
    match elsa::select_workload(&all, f.scope.workload_hint.as_deref()) {
        Selection::Selected { index, reason } => all
            .get(index)
            .map(|w| (*w, reason))
            .ok_or_else(|| Finding::unknown(None, "selection out of range")),
        _ => Err(Finding::skip(
            "no Elsa workload identified — see workload.found",
        )),
    }
}

/// Lists workloads for evidence: `deployment/x (image a, b)`.
fn describe(w: &Workload<'_>) -> Evidence {
    Evidence::new(w.reference(), w.images().join(", ")).from("image")
}

fn unlisted_kinds(f: &Facts) -> Vec<Evidence> {
    [
        ("deployments", &f.deployments.why_not()),
        ("statefulsets", &f.statefulsets.why_not()),
    ]
    .into_iter()
    .filter_map(|(kind, why)| {
        why.as_ref()
            .map(|w| Evidence::new(format!("{kind} not listed"), w.clone()))
    })
    .collect()
}

/// `lint`: the bundle's notes about workloads (defined twice; refused by the API server).
fn bundle_notes(f: &Facts) -> (Vec<Evidence>, Vec<&crate::facts::Rejected>) {
    let Some(notes) = &f.bundle else {
        return Default::default();
    };
    let workload_kind = |k: &str| matches!(k, "Deployment" | "StatefulSet");
    let twice = notes
        .duplicates
        .iter()
        .filter(|d| workload_kind(&d.kind))
        .map(|d| {
            Evidence::new(
                format!("{}/{}", d.kind.to_lowercase(), d.name),
                d.to_string(),
            )
            .from("manifests")
        })
        .collect();
    let refused = notes
        .rejected
        .iter()
        .filter(|r| workload_kind(&r.kind))
        .collect();
    (twice, refused)
}

fn found(f: &Facts) -> Finding {
    let found = found_among_valid(f);
    let (twice, refused) = bundle_notes(f);
    // The same workload twice: the later definition is the one kubectl apply leaves.
    let found = match twice.first() {
        Some(first) if found.outcome == Outcome::Pass => {
            let mut warn = Finding::warn(
                "defined-twice",
                format!("{}; {}", found.message, first.value),
            );
            warn.evidence = found.evidence;
            warn.vars = found.vars;
            warn
        }
        _ => found,
    }
    .with_all(twice);
    // An Elsa workload the API server would refuse is why none was found (or the named one is
    // missing): say so rather than "no Elsa image".
    if found.outcome == Outcome::Problem && !refused.is_empty() {
        let mut finding = Finding::problem(
            "rejected",
            format!(
                "no accepted workload runs Elsa; the API server would refuse {}",
                refused
                    .iter()
                    .map(|r| r.to_string())
                    .collect::<Vec<_>>()
                    .join("; ")
            ),
        );
        finding.evidence = found.evidence;
        finding.vars = found.vars;
        return finding.with_all(refused.iter().map(|r| {
            Evidence::new(
                format!("{}/{}", r.kind.to_lowercase(), r.name),
                r.to_string(),
            )
            .from("manifests")
        }));
    }
    found
}

fn found_among_valid(f: &Facts) -> Finding {
    if f.deployments.observed().is_none() && f.statefulsets.observed().is_none() {
        // Nothing listed: unknown, naming the missing right, whatever the pods suggest.
        let mut finding = not_observed(&f.deployments, "the namespace's Deployments");
        if matches!(f.deployments, Probe::Forbidden { .. }) {
            finding.cause = Some("forbidden");
        }
        let finding = finding.with_all(unlisted_kinds(f).into_iter().skip(1));
        let pool = f.workload_pool().unwrap_or_default();
        return match elsa::select_workload(&pool, f.scope.workload_hint.as_deref()) {
            Selection::Selected { index, reason } => match pool.get(index) {
                Some(w) => {
                    let mut finding = finding
                        .with(
                            Evidence::new(
                                format!("inferred {}", w.reference()),
                                format!("{reason}; rebuilt from its pods, which the other checks examine"),
                            )
                            .from(format!("pods {}", w.inferred_from().unwrap_or(""))),
                        )
                        .with(describe(w))
                        .var("workload", w.name())
                        .var("workload_kind", w.kind().as_str());
                    finding.message = format!(
                        "{}; its pods show {} as the Elsa server",
                        finding.message,
                        w.reference()
                    );
                    finding
                }
                None => finding,
            },
            _ => finding,
        };
    }
    let all = match workloads(f) {
        Ok(all) => all,
        Err(finding) => return finding,
    };
    let ns = &f.scope.namespace;
    let partial = unlisted_kinds(f);
    let result = match elsa::select_workload(&all, f.scope.workload_hint.as_deref()) {
        Selection::Selected { index, reason } => {
            let Some(w) = all.get(index) else {
                return Finding::unknown(None, "selection out of range");
            };
            return Finding::pass(format!("{} ({reason})", w.reference()))
                .with(describe(w))
                .with_all(partial)
                .var("workload", w.name())
                .var("workload_kind", w.kind().as_str());
        }
        Selection::NamedMissing(name) => Finding::problem(
            "named-missing",
            format!("no Deployment or StatefulSet named {name} in namespace {ns}"),
        )
        .var("workload", name),
        Selection::None => Finding::problem(
            "none",
            format!(
                "none of the {} workload(s) in namespace {ns} runs an Elsa server image or carries an Elsa label",
                all.len()
            ),
        ),
        Selection::Ambiguous(candidates) => {
            let names: Vec<String> = candidates
                .iter()
                .filter_map(|(i, _)| all.get(*i).map(|w| w.reference()))
                .collect();
            return Finding::problem(
                "ambiguous",
                format!(
                    "{} workloads look like Elsa: {}; pick one with --deployment NAME",
                    candidates.len(),
                    names.join(", ")
                ),
            )
            .with_all(candidates.iter().filter_map(|(i, reason)| {
                all.get(*i)
                    .map(|w| Evidence::new(w.reference(), reason.clone()).from("candidate"))
            }))
            .with_all(partial);
        }
    };
    // When part of the namespace could not be listed, "not found" is not proven.
    if !partial.is_empty() {
        return Finding::unknown(
            Some("forbidden"),
            format!(
                "{} (but not every workload kind could be listed)",
                result.message
            ),
        )
        .with_all(partial);
    }
    result.with_all(all.iter().take(10).map(describe))
}

fn flavor(f: &Facts) -> Finding {
    let (w, _) = match selected(f) {
        Ok(s) => s,
        Err(finding) => return finding,
    };
    // What the inside of the container says (elsa-audit §7), when the exec listing ran.
    let clues: &[Clue] = match &f.pod_files {
        Probe::Observed(l) => &l.clues,
        _ => &[],
    };
    let clue_evidence: Vec<Evidence> = clues
        .iter()
        .map(|c| Evidence::new(c.source.to_string(), &c.detail).from(pod_source(&f.pod_files)))
        .collect();
    let inside_host = image_contents::host_of(clues).filter(|h| {
        matches!(
            h,
            Flavor::ServerWeb | Flavor::ServerAndStudio | Flavor::ModularServer
        )
    });
    let inside_range = image_contents::version_range(clues);
    // The contents "know" the version when the whole range they allow is one provider band
    // of the host (3.0–3.5 is two: they would not say how PostgreSQL is switched on).
    let one_band = |host: Flavor| {
        inside_range.is_some_and(|(from, to)| {
            let top = to.unwrap_or(elsa::ElsaVersion::new(3, 99));
            elsa::provider_band(host, Some(from)) == elsa::provider_band(host, Some(top))
        })
    };
    let inside_words = inside_range.map(image_contents::describe_range);
    let Some(id) = elsa::identify(&w) else {
        let image = w.images().first().cloned().unwrap_or_default();
        // A custom image whose contents show a stock host is judged as that host.
        if let Some(host) = inside_host {
            return contents_verdict(
                host,
                inside_words.as_deref(),
                one_band(host),
                &image,
                "custom image",
            )
            .with_all(clue_evidence)
            .var("image", image);
        }
        return Finding::problem(
            "custom-image",
            format!(
                "no container of {} runs a recognisable Elsa image ({})",
                w.reference(),
                w.images().join(", ")
            ),
        )
        .var("image", image);
    };
    let evidence = Evidence::new("image", &id.image).from(format!("container {}", id.container));
    let listed = assemblies_evidence(&f.pod_files, id.flavor, id.version);
    let base = |finding: Finding| {
        finding
            .with(evidence.clone())
            .with(listed.clone())
            .with_all(clue_evidence.clone())
            .var("image", &id.image)
            .var("container", &id.container)
    };
    // The tag (or name) and the contents disagree: say both, the contents are what runs.
    let named = match id.version {
        Some(v) => format!("{v}"),
        None => String::new(),
    };
    let host_differs = inside_host.is_some_and(|h| h != id.flavor && id.flavor != Flavor::Custom);
    let version_differs = id.version.is_some_and(|v| {
        clues
            .iter()
            .any(|c| !image_contents::admits(&c.constraint, v))
    });
    if id.flavor != Flavor::Studio && (host_differs || version_differs) {
        let said = format!(
            "{}{}",
            id.flavor,
            if named.is_empty() {
                String::new()
            } else {
                format!(" {named}")
            }
        );
        let inside = format!(
            "{}{}",
            inside_host.unwrap_or(id.flavor),
            inside_words
                .as_deref()
                .map(|v| format!(" {v}"))
                .unwrap_or_default()
        );
        return base(Finding::problem(
            "contents-mismatch",
            format!(
                "the image {} says {said}, but its contents say {inside}: the checks follow the contents",
                id.image
            ),
        ));
    }
    match (id.flavor, id.version) {
        (Flavor::Studio, _) => base(Finding::problem(
            "studio-only",
            format!(
                "{} runs Elsa Studio, the designer UI; it stores no workflows (point --deployment at the server)",
                w.reference()
            ),
        )),
        (Flavor::Custom, _) if inside_host.is_some() => base(contents_verdict(
            inside_host.unwrap_or(Flavor::Custom),
            inside_words.as_deref(),
            inside_host.is_some_and(one_band),
            &id.image,
            "custom build",
        )),
        (Flavor::Custom, v) => base(Finding::problem(
            "custom-image",
            match v {
                Some(v) => format!(
                    "custom build {} (version {v} from its tag or labels)",
                    id.image
                ),
                None => format!(
                    "custom build {}: flavour and version cannot be read from the image name",
                    id.image
                ),
            },
        )),
        (flavor, None) => match inside_words {
            Some(v) if one_band(flavor) => base(Finding::pass(format!(
                "{flavor} {v} (from the image contents; the image name and tag of {} do not say)",
                id.image
            ))),
            other => base(Finding::problem(
                "version-unknown",
                format!(
                    "{flavor}, version unknown: the image name and tag ({}) do not say which Elsa release it is{}",
                    id.image,
                    other
                        .map(|v| format!(", and its contents only narrow it to {v}"))
                        .unwrap_or_default()
                ),
            )),
        },
        (flavor, Some(v)) => {
            let band = elsa::provider_band(flavor, Some(v)).unwrap_or("");
            base(Finding::pass(format!("{flavor} {v}")))
                .with(Evidence::new("database provider", band).from("ELSA-FACTS version table"))
        }
    }
}

/// The finding for an image judged by its contents alone.
fn contents_verdict(
    host: Flavor,
    version: Option<&str>,
    known: bool,
    image: &str,
    what: &str,
) -> Finding {
    match version {
        Some(v) if known => Finding::pass(format!(
            "{host} {v} ({what} {image}, whose contents show the stock host)"
        )),
        other => Finding::problem(
            "version-unknown",
            format!(
                "{host}, version unknown ({what} {image}, whose contents show the stock host but not its release{})",
                other.map(|v| format!(" beyond {v}")).unwrap_or_default()
            ),
        ),
    }
}

/// Where the listing came from, for evidence.
fn pod_source(listing: &Probe<crate::facts::PodListing>) -> String {
    match listing {
        Probe::Observed(l) => format!("exec in pod {} container {}", l.pod, l.container),
        _ => "exec listing".to_owned(),
    }
}

/// What the exec listing of `/app` says: the host assembly and the PostgreSQL provider.
fn assemblies_evidence(
    listing: &Probe<crate::facts::PodListing>,
    flavor: Flavor,
    version: Option<elsa::ElsaVersion>,
) -> Evidence {
    let l = match listing {
        Probe::Observed(l) => l,
        other if super::kubelet_unreachable(other).is_some() => {
            return Evidence::new(
                "assemblies",
                "not listed: the API server cannot reach the node's kubelet, so exec fails — see runtime.logs",
            );
        }
        other => {
            return Evidence::new(
                "assemblies",
                format!(
                    "not listed: {}",
                    other.why_not().unwrap_or_else(|| "unknown".to_owned())
                ),
            );
        }
    };
    let a = elsa::assemblies(l.dlls());
    let source = format!("exec ls /app/*.dll in pod {}", l.pod);
    if a.count == 0 {
        return Evidence::new("assemblies", "no .dll in /app: not an Elsa host layout")
            .from(source);
    }
    let host = match a.host {
        Some((name, f)) if f == flavor || flavor == Flavor::Custom => name.to_owned(),
        Some((name, f)) => format!("{name} (a {f} host, although the image name says {flavor})"),
        None => "no Elsa host assembly".to_owned(),
    };
    let pg = match a.postgres {
        Some((name, band)) => {
            let stock_without =
                flavor == Flavor::ServerWeb && version.is_some_and(|v| v.mm() >= (3, 6));
            format!(
                "PostgreSQL provider {name} (named so in {band}){}",
                if stock_without {
                    "; the stock image of this version ships none, so this is a custom build"
                } else {
                    ""
                }
            )
        }
        None => "no PostgreSQL provider assembly".to_owned(),
    };
    Evidence::new("assemblies", format!("{host}; {pg}; {} in all", a.count)).from(source)
}

fn condition<'a>(
    conditions: Option<&'a Vec<k8s_openapi::api::apps::v1::DeploymentCondition>>,
    kind: &str,
) -> Option<&'a k8s_openapi::api::apps::v1::DeploymentCondition> {
    conditions?.iter().find(|c| c.type_ == kind)
}

fn rollout(f: &Facts) -> Finding {
    let (w, _) = match selected(f) {
        Ok(s) => s,
        Err(finding) => return finding,
    };
    if let Some(pods) = w.inferred_from() {
        // Rebuilt from its pods: the workload's status (the rollout) was never read.
        let mut finding =
            not_observed(&f.deployments, &format!("the rollout of {}", w.reference()));
        if matches!(w, Workload::StatefulSet(_)) {
            finding = not_observed(
                &f.statefulsets,
                &format!("the rollout of {}", w.reference()),
            );
        }
        return finding.with(Evidence::new("pods seen", pods.replace(',', ", ")).from("list pods"));
    }
    let desired = w.desired_replicas();
    if desired == 0 {
        return Finding::problem(
            "scaled-to-zero",
            format!(
                "{} is scaled to 0 replicas: nothing runs Elsa",
                w.reference()
            ),
        );
    }
    match w {
        Workload::Deployment(d) => {
            let st = d.status.clone().unwrap_or_default();
            let available = st.available_replicas.unwrap_or(0);
            let updated = st.updated_replicas.unwrap_or(0);
            let ready = st.ready_replicas.unwrap_or(0);
            let counts = Evidence::new(
                "replicas",
                format!(
                    "desired {desired}, updated {updated}, ready {ready}, available {available}"
                ),
            )
            .from(format!("{} status", w.reference()));
            // The controller has not processed this generation: its status (if any) describes
            // an older spec, or nothing at all. Counting replicas on it would blame the pods.
            let generation = d.metadata.generation;
            let observed = st.observed_generation;
            if d.status.is_none() || observed.is_none() || observed < generation {
                let shown = |g: Option<i64>| g.map_or_else(|| "none".to_owned(), |g| g.to_string());
                return Finding::warn(
                    "not-observed",
                    format!(
                        "the Deployment controller has not yet processed {} (generation {}, observed generation {}): its status says nothing about this spec yet",
                        w.reference(),
                        shown(generation),
                        shown(observed)
                    ),
                )
                .with(
                    Evidence::new("metadata.generation", shown(generation))
                        .from(w.reference()),
                )
                .with(
                    Evidence::new("status.observedGeneration", shown(observed))
                        .from(format!("{} status", w.reference())),
                )
                .with(counts);
            }
            let conds = st.conditions.as_ref();
            let cond_evidence = |c: &k8s_openapi::api::apps::v1::DeploymentCondition| {
                Evidence::new(
                    format!("condition {}", c.type_),
                    redact::text(&format!(
                        "{} {}: {}",
                        c.status,
                        c.reason.as_deref().unwrap_or(""),
                        c.message.as_deref().unwrap_or("")
                    )),
                )
                .from(format!("{} status.conditions", w.reference()))
            };
            if let Some(c) = condition(conds, "Progressing").filter(|c| {
                c.status == "False" && c.reason.as_deref() == Some("ProgressDeadlineExceeded")
            }) {
                return Finding::problem(
                    "progress-deadline",
                    format!(
                        "the rollout of {} stopped making progress (ProgressDeadlineExceeded)",
                        w.reference()
                    ),
                )
                .with(counts)
                .with(cond_evidence(c));
            }
            if let Some(c) = condition(conds, "ReplicaFailure").filter(|c| c.status == "True") {
                return Finding::problem(
                    "replica-failure",
                    format!("the controller cannot create pods for {}", w.reference()),
                )
                .with(counts)
                .with(cond_evidence(c));
            }
            if available < desired {
                return Finding::problem(
                    "unavailable",
                    format!("{available} of {desired} replicas available"),
                )
                .with(counts);
            }
            if updated < desired {
                return Finding::warn(
                    "unavailable",
                    format!("rollout in progress: {updated} of {desired} replicas updated"),
                )
                .with(counts);
            }
            Finding::pass(format!(
                "{available}/{desired} replicas available, rollout complete"
            ))
            .with(counts)
        }
        Workload::StatefulSet(s) => {
            let st = s.status.clone().unwrap_or_default();
            let ready = st.ready_replicas.unwrap_or(0);
            let available = st.available_replicas.unwrap_or(ready);
            let counts = Evidence::new(
                "replicas",
                format!("desired {desired}, ready {ready}, available {available}"),
            )
            .from(format!("{} status", w.reference()));
            if available < desired {
                return Finding::problem(
                    "unavailable",
                    format!("{available} of {desired} replicas available"),
                )
                .with(counts);
            }
            if st.current_revision.is_some() && st.current_revision != st.update_revision {
                return Finding::warn(
                    "unavailable",
                    "rollout in progress: pods are being replaced with the new revision",
                )
                .with(counts);
            }
            Finding::pass(format!("{available}/{desired} replicas available")).with(counts)
        }
    }
}

/// What is wrong with one pod, most severe first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodProblem {
    pub cause: &'static str,
    pub container: Option<String>,
    pub detail: String,
}

/// Severity order of pod causes: the first one found decides the finding's fix.
const CAUSE_ORDER: &[&str] = &[
    "oom-killed",
    "crash-loop",
    "image-pull",
    "config-error",
    "failed-mount",
    "unschedulable",
    "not-ready",
    "restarts",
];

fn rank(cause: &str) -> usize {
    CAUSE_ORDER
        .iter()
        .position(|c| *c == cause)
        .unwrap_or(CAUSE_ORDER.len())
}

fn container_problem(cs: &ContainerStatus) -> Option<PodProblem> {
    let state = cs.state.as_ref();
    let last = cs.last_state.as_ref().and_then(|s| s.terminated.as_ref());
    let last_text = last.map(|t| {
        format!(
            "; last exit {} (code {})",
            t.reason.as_deref().unwrap_or("unknown"),
            t.exit_code
        )
    });
    let restarts = format!("{} restart(s)", cs.restart_count);
    let mk = |cause, detail: String| {
        Some(PodProblem {
            cause,
            container: Some(cs.name.clone()),
            detail: redact::text(&detail),
        })
    };
    if let Some(w) = state.and_then(|s| s.waiting.as_ref()) {
        let reason = w.reason.as_deref().unwrap_or("Waiting");
        let msg = w
            .message
            .as_deref()
            .map(|m| format!(": {m}"))
            .unwrap_or_default();
        let oom = last.and_then(|t| t.reason.as_deref()) == Some("OOMKilled");
        return match reason {
            "CrashLoopBackOff" if oom => mk(
                "oom-killed",
                format!("{reason}, {restarts}{}", last_text.unwrap_or_default()),
            ),
            "CrashLoopBackOff" | "RunContainerError" => mk(
                "crash-loop",
                format!("{reason}, {restarts}{}", last_text.unwrap_or_default()),
            ),
            "ErrImagePull" | "ImagePullBackOff" | "InvalidImageName" | "ErrImageNeverPull" => {
                mk("image-pull", format!("{reason}{msg}"))
            }
            "CreateContainerConfigError" | "CreateContainerError" => {
                mk("config-error", format!("{reason}{msg}"))
            }
            _ => None,
        };
    }
    if let Some(t) = state.and_then(|s| s.terminated.as_ref()) {
        let reason = t.reason.as_deref().unwrap_or("Terminated");
        let cause = if reason == "OOMKilled" {
            "oom-killed"
        } else {
            "crash-loop"
        };
        if t.exit_code != 0 || cause == "oom-killed" {
            return mk(
                cause,
                format!("terminated: {reason} (code {}), {restarts}", t.exit_code),
            );
        }
    }
    None
}

/// Diagnoses one pod from its status and its Warning events.
pub fn pod_problem(pod: &Pod, events: &[&Event]) -> Option<PodProblem> {
    let status = pod.status.as_ref();
    let statuses: Vec<&ContainerStatus> = status
        .into_iter()
        .flat_map(|s| {
            s.init_container_statuses
                .iter()
                .flatten()
                .chain(s.container_statuses.iter().flatten())
        })
        .collect();
    let mut problems: Vec<PodProblem> = statuses
        .iter()
        .filter_map(|cs| container_problem(cs))
        .collect();
    let phase = status.and_then(|s| s.phase.as_deref()).unwrap_or("Unknown");
    let conditions = status.and_then(|s| s.conditions.as_ref());
    let cond = |t: &str| conditions.and_then(|c| c.iter().find(|c| c.type_ == t));
    let event_msg = |reason: &str| {
        events
            .iter()
            .find(|e| e.reason.as_deref() == Some(reason))
            .and_then(|e| e.message.as_deref())
            .map(redact::text)
    };
    if let Some(c) = cond("PodScheduled").filter(|c| c.status == "False") {
        problems.push(PodProblem {
            cause: "unschedulable",
            container: None,
            detail: redact::text(&format!(
                "not scheduled: {}",
                event_msg("FailedScheduling")
                    .or_else(|| c.message.clone())
                    .unwrap_or_else(|| c.reason.clone().unwrap_or_default())
            )),
        });
    }
    let running = phase == "Running";
    if !running && let Some(msg) = event_msg("FailedMount") {
        problems.push(PodProblem {
            cause: "failed-mount",
            container: None,
            detail: format!("volume cannot be mounted: {msg}"),
        });
    }
    let ready = cond("Ready").is_some_and(|c| c.status == "True");
    if problems.is_empty() && !ready {
        let why = event_msg("Unhealthy")
            .map(|m| format!(": {m}"))
            .unwrap_or_default();
        let detail = match phase {
            "Running" => format!("running but not ready{why}"),
            "Failed" => format!(
                "phase Failed{}",
                status
                    .and_then(|s| s.reason.as_deref())
                    .map(|r| format!(" ({r})"))
                    .unwrap_or_default()
            ),
            other => format!("phase {other}, not ready{why}"),
        };
        problems.push(PodProblem {
            cause: "not-ready",
            container: None,
            detail: redact::text(&detail),
        });
    }
    if problems.is_empty() {
        let restarted = statuses.iter().find(|cs| cs.restart_count > 0);
        if let Some(cs) = restarted {
            let last = cs
                .last_state
                .as_ref()
                .and_then(|s| s.terminated.as_ref())
                .map(|t| {
                    format!(
                        "; last exit {} (code {}){}",
                        t.reason.as_deref().unwrap_or("unknown"),
                        t.exit_code,
                        t.finished_at
                            .as_ref()
                            .map(|at| format!(" at {}", at.0))
                            .unwrap_or_default()
                    )
                })
                .unwrap_or_default();
            problems.push(PodProblem {
                cause: "restarts",
                container: Some(cs.name.clone()),
                detail: format!("ready, but restarted {} time(s){last}", cs.restart_count),
            });
        }
    }
    problems.into_iter().min_by_key(|p| rank(p.cause))
}

fn pods(f: &Facts) -> Finding {
    let (w, _) = match selected(f) {
        Ok(s) => s,
        Err(finding) => return finding,
    };
    let pods = match &f.pods {
        Probe::Observed(p) => p,
        other => return not_observed(other, &format!("the pods of {}", w.reference())),
    };
    let events: &[Event] = f.events.observed().map(Vec::as_slice).unwrap_or(&[]);
    let events_note = f
        .events
        .why_not()
        .map(|why| Evidence::new("events", format!("not observed: {why}")));
    if pods.is_empty() {
        return Finding::problem(
            "no-pods",
            format!(
                "{} wants {} replica(s) but no pod matches its selector",
                w.reference(),
                w.desired_replicas()
            ),
        )
        .with_all(events_note);
    }
    let mut evidence = Vec::new();
    let mut worst: Option<(&Pod, PodProblem)> = None;
    let mut bad = 0;
    for pod in pods {
        let name = pod.metadata.name.as_deref().unwrap_or("");
        let mut pod_events: Vec<&Event> = events
            .iter()
            .filter(|e| {
                e.involved_object.name.as_deref() == Some(name)
                    && e.type_.as_deref() == Some("Warning")
            })
            .collect();
        pod_events.sort_by(|a, b| {
            b.last_timestamp
                .as_ref()
                .map(|t| t.0)
                .cmp(&a.last_timestamp.as_ref().map(|t| t.0))
        });
        let problem = pod_problem(pod, &pod_events);
        let summary = match &problem {
            Some(p) => p.detail.clone(),
            None => "Running and Ready".to_owned(),
        };
        evidence.push(Evidence::new(format!("pod/{name}"), summary).from("status"));
        for e in pod_events.iter().take(3) {
            evidence.push(
                Evidence::new(
                    format!("event {}", e.reason.as_deref().unwrap_or("")),
                    format!(
                        "{}{}",
                        redact::text(e.message.as_deref().unwrap_or("")),
                        e.count
                            .filter(|c| *c > 1)
                            .map(|c| format!(" (×{c})"))
                            .unwrap_or_default()
                    ),
                )
                .from(format!("event on pod/{name}")),
            );
        }
        if let Some(p) = problem {
            if p.cause != "restarts" {
                bad += 1;
            }
            if worst
                .as_ref()
                .is_none_or(|(_, w)| rank(p.cause) < rank(w.cause))
            {
                worst = Some((pod, p));
            }
        }
    }
    let total = pods.len();
    let Some((pod, problem)) = worst else {
        return Finding::pass(format!("{total}/{total} pods Running and Ready"))
            .with_all(evidence)
            .with_all(events_note);
    };
    let pod_name = pod.metadata.name.clone().unwrap_or_default();
    let message = format!("pod/{pod_name}: {}", problem.detail);
    let mut finding = if problem.cause == "restarts" {
        Finding::warn("restarts", format!("all {total} pods ready; {message}"))
    } else {
        Finding::problem(
            problem.cause,
            format!("{bad} of {total} pods not healthy; {message}"),
        )
    };
    finding = finding
        .with_all(evidence)
        .with_all(events_note)
        .var("pod", &pod_name);
    if let Some(c) = &problem.container {
        finding = finding.var("container", c);
    }
    if let Some(node) = pod.spec.as_ref().and_then(|s| s.node_name.as_deref()) {
        finding = finding.var("node", node);
    }
    finding
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::Outcome;
    use crate::checks::test_support::{deployment, empty, with_deployments};
    use serde_json::json;

    fn facts_with_pods(pods: serde_json::Value, events: serde_json::Value) -> Facts {
        let mut f = with_deployments(json!([deployment(
            "elsa-server",
            "elsaworkflows/elsa-server-v3-5:latest",
            2
        )]));
        f.pods = Probe::Observed(serde_json::from_value(pods).expect("pods"));
        f.events = Probe::Observed(serde_json::from_value(events).expect("events"));
        f
    }

    fn pod(name: &str, phase: &str, ready: bool, cs: serde_json::Value) -> serde_json::Value {
        json!({
            "metadata": {"name": name, "namespace": "elsa"},
            "spec": {"nodeName": "node-1", "containers": [{"name": "elsa-server"}]},
            "status": {"phase": phase,
                "conditions": [{"type": "Ready", "status": if ready {"True"} else {"False"}},
                               {"type": "PodScheduled", "status": "True"}],
                "containerStatuses": [cs]}
        })
    }

    fn running(restarts: i32) -> serde_json::Value {
        json!({"name": "elsa-server", "image": "x", "imageID": "", "ready": true,
               "restartCount": restarts, "state": {"running": {}}})
    }

    fn event(pod: &str, reason: &str, message: &str) -> serde_json::Value {
        json!({"metadata": {"name": format!("{pod}.1")}, "involvedObject": {"kind": "Pod", "name": pod},
               "reason": reason, "message": message, "type": "Warning", "count": 3})
    }

    #[test]
    fn found_selects_the_single_elsa_deployment() {
        let f = with_deployments(json!([
            deployment("postgres", "postgres:16", 1),
            deployment("elsa-server", "elsaworkflows/elsa-server-v3-5:latest", 1)
        ]));
        let r = found(&f);
        assert_eq!(r.outcome, Outcome::Pass);
        assert!(
            r.message.starts_with("deployment/elsa-server"),
            "{}",
            r.message
        );
        assert_eq!(
            r.vars.0.get("workload").map(String::as_str),
            Some("elsa-server")
        );
    }

    #[test]
    fn found_never_picks_silently_among_several() {
        let f = with_deployments(json!([
            deployment("elsa-server", "elsaworkflows/elsa-server-v3-5:latest", 1),
            deployment("elsa-canary", "elsaworkflows/elsa-server-v3-5:latest", 1)
        ]));
        let r = found(&f);
        assert_eq!((r.outcome, r.cause), (Outcome::Problem, Some("ambiguous")));
        assert_eq!(r.evidence.len(), 2);
    }

    #[test]
    fn found_reports_none_named_missing_and_forbidden() {
        let mut f = with_deployments(json!([deployment("postgres", "postgres:16", 1)]));
        assert_eq!(found(&f).cause, Some("none"));
        f.scope.workload_hint = Some("elsa".into());
        assert_eq!(found(&f).cause, Some("named-missing"));
        f.scope.workload_hint = Some("deployment/postgres".into());
        assert_eq!(found(&f).outcome, Outcome::Pass);
        let mut f = empty();
        f.deployments = Probe::Forbidden {
            verb: "list".into(),
            resource: "deployments".into(),
        };
        f.statefulsets = Probe::Forbidden {
            verb: "list".into(),
            resource: "statefulsets".into(),
        };
        let r = found(&f);
        assert_eq!((r.outcome, r.cause), (Outcome::Unknown, Some("forbidden")));
        assert!(r.message.contains("list deployments"), "{}", r.message);
    }

    #[test]
    fn flavor_from_image_name() {
        let f = with_deployments(json!([deployment(
            "elsa-server",
            "elsaworkflows/elsa-server-v3-5:latest",
            1
        )]));
        let r = flavor(&f);
        assert_eq!(r.outcome, Outcome::Pass);
        assert_eq!(r.message, "Elsa.Server.Web 3.5");
        let f = with_deployments(json!([deployment("elsa-server", "elsa-server:latest", 1)]));
        assert_eq!(flavor(&f).cause, Some("version-unknown"));
        let f = with_deployments(json!([deployment("elsa", "ghcr.io/acme/elsa-host:1.0", 1)]));
        assert_eq!(flavor(&f).cause, Some("custom-image"));
        let mut f = with_deployments(json!([deployment(
            "studio",
            "elsaworkflows/elsa-studio-v3-5:latest",
            1
        )]));
        f.scope.workload_hint = Some("studio".into());
        assert_eq!(flavor(&f).cause, Some("studio-only"));
    }

    fn with_contents(image: &str, paths: &[&str], sections: &str) -> Facts {
        use crate::domain::image_contents::{image_clues, parse_contents};
        let mut f = with_deployments(json!([deployment("elsa-server", image, 1)]));
        let paths: Vec<String> = paths.iter().map(|p| (*p).to_owned()).collect();
        let contents = parse_contents(sections);
        let clues = image_clues(&paths, &contents);
        f.pod_files = Probe::Observed(crate::facts::PodListing {
            pod: "elsa-server-abc".into(),
            container: "elsa-server".into(),
            paths,
            contents,
            clues,
        });
        f
    }

    const SAYS_351: &str = "/app/Elsa.EntityFrameworkCore.Sqlite.dll:20250530104854_V3_5\nelsadoctor:migrations\n\
        /app/Elsa.Server.Web.runtimeconfig.json:\"tfm\": \"net9.0\"\nelsadoctor:tfm\n\
        /app/Elsa.Server.Web.deps.json:\"path\": \"microsoft.entityframeworkcore/9.0.9\"\nelsadoctor:deps\n";

    #[test]
    fn flavor_from_image_contents() {
        let layout = [
            "/app/Elsa.Server.Web.dll",
            "/app/Elsa.EntityFrameworkCore.Sqlite.dll",
            "/entrypoint.sh",
        ];
        // `latest` on a name without a version: the contents decide.
        let r = flavor(&with_contents("elsa-server:latest", &layout, SAYS_351));
        assert_eq!(r.outcome, Outcome::Pass, "{}", r.message);
        assert!(
            r.message.starts_with("Elsa.Server.Web 3.5.1–3.5.2"),
            "{}",
            r.message
        );
        let ev: Vec<&str> = r.evidence.iter().map(|e| e.value.as_str()).collect();
        assert!(
            ev.iter().any(|e| e.contains("20250530104854_V3_5")),
            "{ev:?}"
        );
        assert!(ev.iter().any(|e| e.contains("9.0.9")), "{ev:?}");
        // A custom image holding the stock host is judged as that host.
        let r = flavor(&with_contents(
            "registry.example/acme/elsa:7",
            &layout,
            SAYS_351,
        ));
        assert_eq!(r.outcome, Outcome::Pass, "{}", r.message);
        assert!(r.message.contains("whose contents show the stock host"));
        // A tag the contents contradict: a warning naming both.
        let r = flavor(&with_contents(
            "elsaworkflows/elsa-server-v3-6-0-preview:latest",
            &layout,
            SAYS_351,
        ));
        assert_eq!(r.cause, Some("contents-mismatch"));
        assert!(
            r.message.contains("says Elsa.Server.Web 3.6") && r.message.contains("3.5.1–3.5.2"),
            "{}",
            r.message
        );
        // Too little inside to pick a band: still unknown, with what was narrowed.
        let r = flavor(&with_contents(
            "elsa-server:latest",
            &layout[..2],
            "elsadoctor:migrations\nelsadoctor:tfm\nelsadoctor:deps\n",
        ));
        assert_eq!(r.cause, Some("version-unknown"));
        assert!(
            r.message.contains("only narrow it to 3.0–3.5"),
            "{}",
            r.message
        );
    }

    #[test]
    fn rollout_causes() {
        let mut d = deployment("elsa-server", "elsaworkflows/elsa-server-v3-5:latest", 2);
        assert_eq!(
            rollout(&with_deployments(json!([d.clone()]))).outcome,
            Outcome::Pass
        );
        d["status"]["availableReplicas"] = json!(1);
        assert_eq!(
            rollout(&with_deployments(json!([d.clone()]))).cause,
            Some("unavailable")
        );
        d["status"]["conditions"] = json!([{"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded",
            "message": "ReplicaSet \"elsa-server-1\" has timed out progressing."}]);
        let r = rollout(&with_deployments(json!([d.clone()])));
        assert_eq!(r.cause, Some("progress-deadline"));
        assert!(r.evidence.iter().any(|e| e.value.contains("timed out")));
        d["status"]["conditions"] =
            json!([{"type": "ReplicaFailure", "status": "True", "reason": "FailedCreate"}]);
        assert_eq!(
            rollout(&with_deployments(json!([d.clone()]))).cause,
            Some("replica-failure")
        );
        d["spec"]["replicas"] = json!(0);
        assert_eq!(
            rollout(&with_deployments(json!([d]))).cause,
            Some("scaled-to-zero")
        );
    }

    #[test]
    fn a_rollout_the_controller_has_not_processed_is_its_own_cause() {
        let mut d = deployment("elsa-server", "elsaworkflows/elsa-server-v3-5:latest", 2);
        // No status at all: the controller never wrote one.
        d.as_object_mut().expect("object").remove("status");
        let r = rollout(&with_deployments(json!([d.clone()])));
        assert_eq!((r.outcome, r.cause), (Outcome::Warn, Some("not-observed")));
        assert!(!r.message.contains("replicas available"), "{}", r.message);
        assert!(
            r.evidence
                .iter()
                .any(|e| e.label == "metadata.generation" && e.value == "1")
        );
        assert!(
            r.evidence
                .iter()
                .any(|e| e.label == "status.observedGeneration" && e.value == "none")
        );
        // A status for an older generation: still not observed, both generations shown.
        d["metadata"]["generation"] = json!(3);
        d["status"] = json!({"observedGeneration": 2, "replicas": 2, "availableReplicas": 0});
        let r = rollout(&with_deployments(json!([d])));
        assert_eq!(r.cause, Some("not-observed"));
        assert!(
            r.message.contains("generation 3, observed generation 2"),
            "{}",
            r.message
        );
    }

    #[test]
    fn a_workload_rebuilt_from_pods_is_found_unknown_and_its_rollout_unknown() {
        let pods: Vec<Pod> = serde_json::from_value(json!([{
            "metadata": {"name": "elsa-server-6d5f8b7c9-x2k4q", "namespace": "elsa",
                "labels": {"app": "elsa-server", "pod-template-hash": "6d5f8b7c9"},
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet",
                    "name": "elsa-server-6d5f8b7c9", "uid": "u1", "controller": true}]},
            "spec": {"containers": [{"name": "elsa-server",
                "image": "elsaworkflows/elsa-server-v3-5:3.5.2"}]}
        }]))
        .expect("pods");
        let mut f = empty();
        f.deployments = Probe::Forbidden {
            verb: "list".into(),
            resource: "deployments".into(),
        };
        f.statefulsets = Probe::Forbidden {
            verb: "list".into(),
            resource: "statefulsets".into(),
        };
        let (d, s) = crate::domain::workload::infer_from_pods(&pods);
        f.inferred = crate::facts::Inferred {
            deployments: d,
            statefulsets: s,
        };
        let r = found(&f);
        assert_eq!((r.outcome, r.cause), (Outcome::Unknown, Some("forbidden")));
        assert!(r.message.contains("list deployments"), "{}", r.message);
        assert!(
            r.message.contains("deployment/elsa-server"),
            "{}",
            r.message
        );
        let r = rollout(&f);
        assert_eq!(r.outcome, Outcome::Unknown);
        assert!(r.message.contains("list deployments"), "{}", r.message);
        // What the pods show is still examined.
        assert_eq!(flavor(&f).outcome, Outcome::Pass);
    }

    #[test]
    fn pods_all_ready_pass() {
        let f = facts_with_pods(
            json!([
                pod("a", "Running", true, running(0)),
                pod("b", "Running", true, running(0))
            ]),
            json!([]),
        );
        let r = pods(&f);
        assert_eq!(r.outcome, Outcome::Pass);
        assert_eq!(r.message, "2/2 pods Running and Ready");
    }

    #[test]
    fn pods_crash_loop_with_oom_names_pod_container_and_exit() {
        let cs = json!({"name": "elsa-server", "image": "x", "imageID": "", "ready": false, "restartCount": 6,
            "state": {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 5m0s"}},
            "lastState": {"terminated": {"reason": "OOMKilled", "exitCode": 137}}});
        let f = facts_with_pods(
            json!([
                pod("ok", "Running", true, running(0)),
                pod("bad", "Running", false, cs)
            ]),
            json!([event(
                "bad",
                "BackOff",
                "Back-off restarting failed container"
            )]),
        );
        let r = pods(&f);
        assert_eq!((r.outcome, r.cause), (Outcome::Problem, Some("oom-killed")));
        assert!(r.message.contains("1 of 2"), "{}", r.message);
        assert!(r.message.contains("6 restart(s)") && r.message.contains("OOMKilled (code 137)"));
        assert_eq!(r.vars.0.get("pod").map(String::as_str), Some("bad"));
        assert_eq!(
            r.vars.0.get("container").map(String::as_str),
            Some("elsa-server")
        );
        assert!(
            r.evidence
                .iter()
                .any(|e| e.label == "event BackOff" && e.value.contains("(×3)"))
        );
    }

    #[test]
    fn pods_waiting_reasons_map_to_causes() {
        for (reason, cause) in [
            ("ImagePullBackOff", "image-pull"),
            ("ErrImagePull", "image-pull"),
            ("CreateContainerConfigError", "config-error"),
            ("CrashLoopBackOff", "crash-loop"),
        ] {
            let cs = json!({"name": "elsa-server", "image": "x", "imageID": "", "ready": false, "restartCount": 0,
                "state": {"waiting": {"reason": reason, "message": "m"}}});
            let f = facts_with_pods(json!([pod("p", "Pending", false, cs)]), json!([]));
            assert_eq!(pods(&f).cause, Some(cause), "{reason}");
        }
    }

    #[test]
    fn pods_unschedulable_quotes_the_scheduler() {
        let p = json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "elsa-server"}]},
            "status": {"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "False", "reason": "Unschedulable"}]}});
        let f = facts_with_pods(
            json!([p]),
            json!([event(
                "p",
                "FailedScheduling",
                "0/3 nodes are available: 3 Insufficient memory."
            )]),
        );
        let r = pods(&f);
        assert_eq!(r.cause, Some("unschedulable"));
        assert!(r.message.contains("Insufficient memory"), "{}", r.message);
    }

    #[test]
    fn pods_failed_mount_and_not_ready() {
        let p = json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "elsa-server"}]},
            "status": {"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "True"}],
                "containerStatuses": [{"name": "elsa-server", "image": "x", "imageID": "", "ready": false,
                    "restartCount": 0, "state": {"waiting": {"reason": "ContainerCreating"}}}]}});
        let f = facts_with_pods(
            json!([p]),
            json!([event(
                "p",
                "FailedMount",
                "configmap \"elsa-config\" not found"
            )]),
        );
        assert_eq!(pods(&f).cause, Some("failed-mount"));
        let cs = json!({"name": "elsa-server", "image": "x", "imageID": "", "ready": false, "restartCount": 0,
            "state": {"running": {}}});
        let f = facts_with_pods(
            json!([pod("p", "Running", false, cs)]),
            json!([event(
                "p",
                "Unhealthy",
                "Readiness probe failed: HTTP probe failed with statuscode: 404"
            )]),
        );
        let r = pods(&f);
        assert_eq!(r.cause, Some("not-ready"));
        assert!(r.message.contains("404"));
    }

    #[test]
    fn pods_restarted_but_ready_is_a_warning() {
        let f = facts_with_pods(json!([pod("p", "Running", true, running(2))]), json!([]));
        let r = pods(&f);
        assert_eq!((r.outcome, r.cause), (Outcome::Warn, Some("restarts")));
    }

    #[test]
    fn pods_empty_or_forbidden() {
        let mut f = facts_with_pods(json!([]), json!([]));
        assert_eq!(pods(&f).cause, Some("no-pods"));
        f.pods = Probe::Forbidden {
            verb: "list".into(),
            resource: "pods".into(),
        };
        let r = pods(&f);
        assert_eq!(r.outcome, Outcome::Unknown);
        assert!(r.message.contains("list pods"), "{}", r.message);
    }

    #[test]
    fn pods_without_events_still_judged_and_say_so() {
        let mut f = facts_with_pods(json!([pod("p", "Running", true, running(0))]), json!([]));
        f.events = Probe::Forbidden {
            verb: "list".into(),
            resource: "events".into(),
        };
        let r = pods(&f);
        assert_eq!(r.outcome, Outcome::Pass);
        assert!(
            r.evidence
                .iter()
                .any(|e| e.label == "events" && e.value.contains("list events"))
        );
    }
}
