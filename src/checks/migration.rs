//! The migration path: how this deployment migrates Elsa's database (`migration.step`: init
//! containers of the Elsa pod, Jobs and CronJobs of the namespace, judged for the version by
//! [`crate::domain::migration`]) and how the migrating Jobs went (`migration.status`: their
//! status and their pods' logs). `database.migrations` names the step found here.

use k8s_openapi::api::batch::v1::Job;

use super::{CheckImpl, Finding, Outcome, not_observed, over_candidates, with_model};
use crate::domain::elsa::{ElsaVersion, Flavor};
use crate::domain::migration::{self, JobState, Problem, Runs, Step, StepKind};
use crate::facts::{FactKey, Facts, MigrationFacts, Probe};
use crate::model::Effective;
use crate::report::Evidence;

const NEEDS: &[FactKey] = &[
    FactKey::Workloads,
    FactKey::ConfigSources,
    FactKey::Services,
    FactKey::PodFiles,
    FactKey::Migrations,
];

pub const STEP: CheckImpl = CheckImpl {
    id: "migration.step",
    needs: NEEDS,
    causes: &[
        "dotnet-ef",
        "env-order",
        "no-such-knob",
        "version-mismatch",
        "unneeded",
    ],
    run: step,
};

pub const STATUS: CheckImpl = CheckImpl {
    id: "migration.status",
    needs: NEEDS,
    causes: &["backoff-limit", "failed", "running"],
    run: status,
};

/// The migration steps found, and what could not be looked at.
pub struct Found {
    pub steps: Vec<Step>,
    /// Sources that were not observed (Jobs that may not be listed, …), with why.
    pub unseen: Vec<String>,
}

impl Found {
    /// `init container migrations of deployment/elsa-server, job/elsa-migrations (container …)`.
    pub fn names(&self) -> String {
        self.steps
            .iter()
            .map(Step::describe)
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// Every migration step of this deployment: the Elsa pod's init containers, and the Jobs and
/// CronJobs of the namespace that migrate.
pub fn found(f: &Facts, v: &Effective) -> Found {
    let mut steps = migration::init_steps(&v.workload().reference(), v.spec());
    let mut unseen = Vec::new();
    match &f.migrations {
        Probe::Observed(m) => {
            match &m.jobs {
                Probe::Observed(jobs) => steps.extend(jobs.iter().flat_map(migration::job_steps)),
                other => unseen.push(format!("Jobs: {}", other.why_not().unwrap_or_default())),
            }
            match &m.cron_jobs {
                Probe::Observed(cjs) => {
                    steps.extend(cjs.iter().flat_map(migration::cron_job_steps))
                }
                other => unseen.push(format!("CronJobs: {}", other.why_not().unwrap_or_default())),
            }
        }
        other => unseen.push(format!(
            "Jobs and CronJobs: {}",
            other.why_not().unwrap_or_default()
        )),
    }
    Found { steps, unseen }
}

/// The knobs that do not exist, set on the Elsa container itself (`Elsa__AutoMigrate`).
fn server_knobs(v: &Effective) -> Vec<String> {
    v.container
        .env
        .iter()
        .flatten()
        .filter(|e| {
            migration::NO_SUCH_KNOBS
                .iter()
                .any(|k| e.name.eq_ignore_ascii_case(k))
        })
        .map(|e| e.name.clone())
        .collect()
}

fn step_evidence(s: &Step) -> Evidence {
    let what = match s.runs {
        Runs::DotnetEf => "runs the EF Core tools",
        Runs::Bundle => "runs an EF Core migrations bundle",
        Runs::ElsaImage => "runs the Elsa image",
    };
    let line = if s.command_line.is_empty() {
        "(the image's entrypoint)".to_owned()
    } else {
        s.command_line.replace('\n', "; ")
    };
    Evidence::new(s.describe(), format!("{what} in {}: {line}", s.image))
}

fn band(flavor: Flavor, version: Option<ElsaVersion>) -> String {
    match version {
        Some(v) => format!("{flavor} {v}"),
        None => flavor.to_string(),
    }
}

fn judge_steps(
    found: &Found,
    v: &Effective,
    flavor: Flavor,
    version: Option<ElsaVersion>,
) -> Finding {
    // The version as far as every candidate shares it (a minor, or a patch), so that one
    // candidate's message reads true for all.
    let shown = v
        .identity
        .as_ref()
        .and_then(|i| i.version)
        .or(version.map(|x| ElsaVersion::new(x.major, x.minor)));
    let server = band(flavor, shown);
    let evidence: Vec<Evidence> = found.steps.iter().map(step_evidence).collect();
    let knobs = server_knobs(v);
    if found.steps.is_empty() {
        if !knobs.is_empty() {
            return Finding::problem(
                "no-such-knob",
                format!(
                    "the Elsa container sets {}, which no Elsa version reads: nothing migrates because of it",
                    knobs.join(", ")
                ),
            )
            .with(Evidence::new("container", v.container.name.clone()));
        }
        if !found.unseen.is_empty() {
            return Finding::unknown(
                None,
                format!(
                    "no migration step among the init containers; could not look further: {}",
                    found.unseen.join("; ")
                ),
            );
        }
        return match flavor {
            Flavor::Custom => Finding::skip(
                "no migration step found, and whether this custom build migrates at startup is in its own code (RunMigrations on the EF feature)",
            ),
            Flavor::Studio => Finding::skip("Elsa Studio has no database to migrate"),
            _ => Finding::pass(format!(
                "no migration step: {server} migrates its own database at startup"
            )),
        };
    }
    let mut worst: Option<(usize, &Step, Problem)> = None;
    let rank = |p: &Problem| match p {
        Problem::DotnetEf { .. } => 0,
        Problem::NoSuchKnob(_) => 1,
        Problem::VersionMismatch { .. } => 2,
        Problem::Unneeded => 3,
    };
    for s in &found.steps {
        if let Some(p) = migration::judge(s, flavor, version) {
            let r = rank(&p);
            if worst.as_ref().is_none_or(|(w, _, _)| r < *w) {
                worst = Some((r, s, p));
            }
        }
    }
    let finding = match worst {
        None if !knobs.is_empty() => Finding::problem(
            "no-such-knob",
            format!(
                "the Elsa container sets {}, which no Elsa version reads",
                knobs.join(", ")
            ),
        ),
        None => Finding::pass(format!(
            "{} migrate(s) Elsa's database in a way {server} supports",
            found.names()
        )),
        Some((
            _,
            s,
            Problem::DotnetEf {
                in_runtime_image: true,
            },
        )) => Finding::problem(
            "dotnet-ef",
            format!(
                "{} runs `dotnet ef` in {}, a runtime image with no .NET SDK and no dotnet-ef: it cannot run (and the design-time factory would ignore ConnectionStrings__PostgreSql anyway)",
                s.describe(),
                s.image
            ),
        ),
        Some((
            _,
            s,
            Problem::DotnetEf {
                in_runtime_image: false,
            },
        )) => Finding::problem(
            "dotnet-ef",
            format!(
                "{} runs `dotnet ef` without `-- --connectionString`: Elsa's design-time factory ignores ConnectionStrings__PostgreSql and migrates the default `Data Source=local` instead",
                s.describe()
            ),
        ),
        Some((_, s, Problem::NoSuchKnob(k))) => Finding::problem(
            "no-such-knob",
            format!(
                "{} relies on {}, which no Elsa version has",
                s.describe(),
                k.join(", ")
            ),
        ),
        Some((_, s, Problem::VersionMismatch { step })) => Finding::problem(
            "version-mismatch",
            format!(
                "{} migrates with Elsa {step}, but the server runs {server}: the database gets another version's schema",
                s.describe()
            ),
        ),
        Some((_, s, Problem::Unneeded)) => Finding::warn(
            "unneeded",
            format!(
                "{} is not needed: {server} migrates its own database at startup",
                s.describe()
            ),
        ),
    };
    // A Job's or CronJob's own env order (the Elsa pod's containers are config.env-expansion's):
    // said beside any other finding, and the finding itself when nothing worse is wrong.
    let order: Vec<(&Step, &crate::domain::env_expand::LaterReference)> = found
        .steps
        .iter()
        .filter(|s| s.kind != migration::StepKind::InitContainer)
        .flat_map(|s| s.later_refs.iter().map(move |r| (s, r)))
        .collect();
    let finding = match order.first() {
        None => finding,
        Some((s, r)) => {
            let said = format!(
                "the env of {} lists {} before the {} it references, so the value keeps the literal text $({})",
                s.describe(),
                r.var,
                r.name,
                r.name
            );
            if finding.outcome == Outcome::Pass {
                Finding::problem("env-order", said)
            } else if finding.outcome == Outcome::Warn {
                let said = format!("{said}; also, {}", finding.message);
                Finding::problem("env-order", said)
            } else {
                let message = format!("{}; also, {said}", finding.message);
                Finding { message, ..finding }
            }
        }
    };
    let order_evidence = order.iter().map(|(s, r)| {
        Evidence::new(
            format!("{} {} (env[{}])", s.describe(), r.var, r.at),
            format!(
                "$({}) is defined later, at env[{}]: the value keeps the literal text",
                r.name, r.defined_at
            ),
        )
        .from("env order")
    });
    let mut finding = finding
        .with_all(evidence)
        .with_all(order_evidence.collect::<Vec<_>>());
    if let Some(s) = found.steps.first() {
        finding = finding.var("container", s.container.clone());
    }
    finding
}

/// The Jobs' and CronJobs' steps when there is no Elsa workload to judge them against (the
/// guide's migration Job linted on its own): what is wrong whatever the server.
fn steps_without_server(f: &Facts) -> Vec<Step> {
    let Probe::Observed(m) = &f.migrations else {
        return Vec::new();
    };
    m.jobs
        .observed()
        .into_iter()
        .flatten()
        .flat_map(migration::job_steps)
        .chain(
            m.cron_jobs
                .observed()
                .into_iter()
                .flatten()
                .flat_map(migration::cron_job_steps),
        )
        .collect()
}

fn step(f: &Facts) -> Finding {
    if f.effective().is_err() {
        let steps = steps_without_server(f);
        let worst = steps
            .iter()
            .find_map(|s| match migration::judge(s, Flavor::Custom, None) {
                Some(Problem::DotnetEf { in_runtime_image }) => Some((s, in_runtime_image)),
                _ => None,
            });
        if let Some((s, in_runtime_image)) = worst {
            let why = if in_runtime_image {
                format!(
                    "{}, a runtime image with no .NET SDK and no dotnet-ef: it cannot run",
                    s.image
                )
            } else {
                "without `-- --connectionString`: Elsa's design-time factory ignores ConnectionStrings__PostgreSql".to_owned()
            };
            return Finding::problem(
                "dotnet-ef",
                format!(
                    "{} runs `dotnet ef` in {why} (no Elsa workload found to compare its version with — see workload.found)",
                    s.describe()
                ),
            )
            .with_all(steps.iter().map(step_evidence))
            .var("container", s.container.clone());
        }
    }
    with_model(f, |v| {
        let found = found(f, v);
        let container = found.steps.first().map(|s| s.container.clone());
        let finding = if v.identity.is_none() {
            judge_steps(&found, v, Flavor::Custom, None)
        } else {
            over_candidates(v, None, |flavor, version| {
                judge_steps(&found, v, flavor, version)
            })
        };
        match container {
            Some(c) => finding.var("container", c),
            None => finding,
        }
    })
}

/// `1h 4m`, `3m 20s`, `45s`.
fn age(from: &str, to: &str) -> Option<String> {
    let a: k8s_openapi::jiff::Timestamp = from.parse().ok()?;
    let b: k8s_openapi::jiff::Timestamp = to.parse().ok()?;
    let secs = b.as_second() - a.as_second();
    if secs < 0 {
        return None;
    }
    Some(match secs {
        s if s >= 86_400 => format!("{}d {}h", s / 86_400, (s % 86_400) / 3600),
        s if s >= 3600 => format!("{}h {}m", s / 3600, (s % 3600) / 60),
        s if s >= 60 => format!("{}m {}s", s / 60, s % 60),
        s => format!("{s}s"),
    })
}

/// The signatures in a Job's pods' logs, as evidence, and the first one's meaning.
fn log_evidence(m: &MigrationFacts, job: &str) -> (Vec<Evidence>, Option<String>) {
    let mut ev = Vec::new();
    let mut first = None;
    match m.job_logs.get(job) {
        Some(Probe::Observed(logs)) => {
            for l in logs {
                let Probe::Observed(text) = &l.text else {
                    continue;
                };
                for (id, meaning, line) in migration::log_findings(text) {
                    if first.is_none() {
                        first = Some(meaning.to_owned());
                    }
                    ev.push(Evidence::new(format!("log ({id})"), line).from(format!(
                        "pod/{} container {}{}",
                        l.pod,
                        l.container,
                        if l.previous { " (previous)" } else { "" }
                    )));
                }
            }
        }
        Some(other) => ev.push(Evidence::new(
            "logs",
            format!("not read: {}", other.why_not().unwrap_or_default()),
        )),
        None => {}
    }
    (ev, first)
}

fn pods_evidence(m: &MigrationFacts, job: &str) -> Option<Evidence> {
    let Some(Probe::Observed(pods)) = m.job_pods.get(job) else {
        return None;
    };
    let list: Vec<String> = pods
        .iter()
        .map(|p| {
            format!(
                "{} {}",
                p.metadata.name.as_deref().unwrap_or_default(),
                p.status
                    .as_ref()
                    .and_then(|s| s.phase.as_deref())
                    .unwrap_or("Unknown")
            )
        })
        .collect();
    Some(Evidence::new(
        "pods",
        if list.is_empty() {
            "none (deleted, or not created yet)".to_owned()
        } else {
            list.join(", ")
        },
    ))
}

/// One Job's verdict: (rank, finding); a lower rank is worse.
fn job_verdict(m: &MigrationFacts, job: &Job) -> (u8, Finding) {
    let name = job.metadata.name.clone().unwrap_or_default();
    let (logs, first) = log_evidence(m, &name);
    let because = first
        .map(|m| format!("; its log says {m}"))
        .unwrap_or_default();
    let (rank, finding) = match migration::job_state(job) {
        JobState::Failed {
            reason,
            message,
            failed,
        } => {
            let why = message.unwrap_or_default();
            if reason.as_deref() == Some("BackoffLimitExceeded") {
                (
                    0,
                    Finding::problem(
                        "backoff-limit",
                        format!(
                            "job/{name} failed: BackoffLimitExceeded after {failed} failed pod(s){because}"
                        ),
                    ),
                )
            } else {
                (
                    0,
                    Finding::problem(
                        "failed",
                        format!(
                            "job/{name} failed: {} {why}{because}",
                            reason.unwrap_or_else(|| "Failed".to_owned())
                        ),
                    ),
                )
            }
        }
        JobState::Running { started, failed } => {
            let how_long = match (&started, &m.observed_at) {
                (Some(s), Some(now)) => {
                    age(s, now).map(|a| format!(" for {a}")).unwrap_or_default()
                }
                _ => String::new(),
            };
            let retries = if failed > 0 {
                format!(", {failed} pod(s) failed so far")
            } else {
                String::new()
            };
            (
                1,
                Finding::warn(
                    "running",
                    format!("job/{name} is still running{how_long}{retries}{because}"),
                )
                .with_all(started.map(|s| {
                    Evidence::new("started", s).from(format!("job/{name} status.startTime"))
                })),
            )
        }
        JobState::Suspended => (
            1,
            Finding::warn(
                "running",
                format!(
                    "job/{name} is suspended (spec.suspend: true): it has not migrated anything"
                ),
            ),
        ),
        JobState::Complete { completed } => (
            2,
            Finding::pass(format!(
                "job/{name} completed{}",
                completed.map(|c| format!(" at {c}")).unwrap_or_default()
            )),
        ),
    };
    let finding = finding
        .with_all(pods_evidence(m, &name))
        .with_all(logs)
        .var("job", name);
    (rank, finding)
}

fn status(f: &Facts) -> Finding {
    let m = match &f.migrations {
        Probe::Observed(m) => m,
        other => return not_observed(other, "the namespace's Jobs"),
    };
    let jobs = match &m.jobs {
        Probe::Observed(j) => j,
        other => return not_observed(other, "the namespace's Jobs"),
    };
    let migrating: Vec<&Job> = jobs
        .iter()
        .filter(|j| migration::is_migration_job(j))
        .collect();
    if migrating.is_empty() {
        let cron: Vec<String> = m
            .cron_jobs
            .observed()
            .into_iter()
            .flatten()
            .flat_map(migration::cron_job_steps)
            .map(|s| s.owner)
            .collect();
        return Finding::skip(if cron.is_empty() {
            "no Job in this namespace migrates Elsa's database".to_owned()
        } else {
            format!(
                "no Job of {} has run yet (or its Jobs were cleaned up)",
                cron.join(", ")
            )
        });
    }
    let mut verdicts: Vec<(u8, Finding)> = migrating.iter().map(|j| job_verdict(m, j)).collect();
    verdicts.sort_by_key(|(r, _)| *r);
    let others: Vec<Evidence> = verdicts
        .iter()
        .skip(1)
        .map(|(_, f)| Evidence::new("also", f.message.clone()))
        .collect();
    let (_, first) = verdicts.remove(0);
    first.with_all(others)
}

/// What `database.migrations` says about the step that should have applied pending
/// migrations (empty when nothing useful can be said).
pub fn pending_note(f: &Facts, v: &Effective, version: ElsaVersion) -> String {
    let found = found(f, v);
    let flavor = v.identity.as_ref().map_or(Flavor::Custom, |i| i.flavor);
    if !found.steps.is_empty() {
        let init = found
            .steps
            .iter()
            .any(|s| s.kind == StepKind::InitContainer);
        return format!(
            "; {} should have applied them{} — see migration.step and migration.status",
            found.names(),
            if init { " before Elsa started" } else { "" }
        );
    }
    if flavor == Flavor::Custom {
        return "; no migration step found: a custom build applies them at startup only if its host runs migrations (RunMigrations on the EF feature) — see runtime.logs".to_owned();
    }
    if migration::migrates_postgres_at_startup(flavor, version) {
        return format!(
            "; no migration step found: {} applies them itself at startup, so its logs say why it did not — see runtime.logs",
            band(flavor, Some(version))
        );
    }
    if !found.unseen.is_empty() {
        return String::new();
    }
    format!(
        "; no migration step found, and {} does not migrate this PostgreSQL database by itself",
        band(flavor, Some(version))
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_read_like_kubectl() {
        assert_eq!(
            age("2026-01-01T10:00:00Z", "2026-01-01T10:03:20Z").as_deref(),
            Some("3m 20s")
        );
        assert_eq!(
            age("2026-01-01T10:00:00Z", "2026-01-01T12:04:00Z").as_deref(),
            Some("2h 4m")
        );
        assert_eq!(age("2026-01-01T10:00:00Z", "2025-01-01T10:00:00Z"), None);
    }
}
