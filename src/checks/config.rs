//! Configuration checks: what the Elsa process will actually see, per flavour and version, and
//! every gap between that and a working PostgreSQL setup. All read the shared [`View`].

use super::with_model;
use super::{CheckImpl, Finding, Outcome};
use crate::domain::dotnet_config::{self, Source};
use crate::domain::elsa::{self, Flavor, ProviderRule};
use crate::domain::env_expand::{
    EnvValue, RefState, SourceKind, dependency_order, shell_style_refs,
};
use crate::domain::npgsql;
use crate::facts::{FactKey, Facts, NOT_IN_BUNDLE, Probe};
use crate::model::{APP_DIR, FileContent};
use crate::redact;
use crate::report::Evidence;
use k8s_openapi::api::core::v1::EnvVar;

/// Every config check reads the workload, its referenced sources and the namespace's Services.
const NEEDS: &[FactKey] = &[
    FactKey::Workloads,
    FactKey::ConfigSources,
    FactKey::Services,
    FactKey::PodFiles,
];

pub const ENVIRONMENT: CheckImpl = CheckImpl {
    id: "config.environment",
    needs: NEEDS,
    causes: &["mismatch", "case-mismatch", "conflict", "unexpanded"],
    run: environment,
};
pub const MOUNTS: CheckImpl = CheckImpl {
    id: "config.mounts",
    needs: NEEDS,
    causes: &[
        "configmap-missing",
        "secret-missing",
        "key-missing",
        "hides-app",
        "wrong-path",
        "optional-missing",
        "unknown-source",
        "not-in-bundle",
    ],
    run: mounts,
};
pub const REFS: CheckImpl = CheckImpl {
    id: "config.refs",
    needs: NEEDS,
    causes: &[
        "configmap-missing",
        "secret-missing",
        "key-missing",
        "optional-missing",
        "not-in-bundle",
        "rejected",
        "defined-twice",
        "database-key-missing",
        "database-source-missing",
    ],
    run: refs,
};
pub const ENV_EXPANSION: CheckImpl = CheckImpl {
    id: "config.env-expansion",
    needs: NEEDS,
    causes: &[
        "defined-later",
        "undefined",
        "in-mounted-file",
        "shell-style",
    ],
    run: env_expansion,
};
pub const APPSETTINGS: CheckImpl = CheckImpl {
    id: "config.appsettings",
    needs: NEEDS,
    causes: &["invalid-json", "duplicate-key"],
    run: appsettings,
};
pub const DEAD_KEYS: CheckImpl = CheckImpl {
    id: "config.dead-keys",
    needs: NEEDS,
    causes: &["guide-keys", "automigrate", "misnamed"],
    run: dead_keys,
};
pub const PROVIDER: CheckImpl = CheckImpl {
    id: "config.provider",
    // The exec listing tells whether a Modular Server image holds the PostgreSQL provider.
    needs: &[
        FactKey::Workloads,
        FactKey::ConfigSources,
        FactKey::Services,
        FactKey::PodFiles,
    ],
    causes: &[
        "missing",
        "wrong-case",
        "not-accepted",
        "sqlite",
        "mysql-fallback",
        "memory-stores",
        "other-provider",
        "cannot-switch",
        "sqlite-any-version",
        "modular",
        "modular-sqlite",
        "modular-both",
    ],
    run: provider,
};
pub const CONNECTION_STRING: CheckImpl = CheckImpl {
    id: "config.connection-string",
    needs: NEEDS,
    causes: &[
        "missing",
        "localhost",
        "unexpanded",
        "shell-style",
        "unparseable",
        "unknown-keywords",
        "source-unknown",
    ],
    run: connection_string,
};
pub const PROBES: CheckImpl = CheckImpl {
    id: "config.probes",
    needs: NEEDS,
    causes: &[
        "missing",
        "path-missing",
        "path-version-dependent",
        "wrong-port",
    ],
    run: probes,
};
pub const SIGNING_KEY: CheckImpl = CheckImpl {
    id: "config.signing-key",
    needs: &[
        FactKey::Workloads,
        FactKey::ConfigSources,
        FactKey::Services,
        FactKey::PodFiles,
    ],
    causes: &[
        "missing",
        "whitespace",
        "sample-value",
        "non-ascii",
        "too-short",
    ],
    run: signing_key,
};

fn source_evidence(label: &str, s: &dotnet_config::Setting) -> Evidence {
    Evidence::new(label, s.value.display()).from(s.source.to_string())
}

// --- config.environment ------------------------------------------------------------------

fn environment(facts: &Facts) -> Finding {
    with_model(facts, |v| {
        let (env, var) = &v.environment;
        let from = var.as_ref().map_or(
            "default: neither ASPNETCORE_ENVIRONMENT nor DOTNET_ENVIRONMENT is set".to_owned(),
            |n| format!("env {n}"),
        );
        let env_evidence = Evidence::new("environment", env).from(from);
        if env.contains("$(") {
            return Finding::problem(
                "unexpanded",
                format!("the environment name is the literal text {env:?}: a $(…) reference that did not resolve"),
            )
            .with(env_evidence);
        }
        let in_app: Vec<_> = v
            .files
            .iter()
            .filter(|f| f.dir() == APP_DIR && f.environment().is_some())
            .collect();
        let mut finding = if in_app.is_empty() {
            Finding::pass(format!(
                "environment {env}; no environment-specific appsettings file is mounted"
            ))
        } else if let Some(hit) = in_app
            .iter()
            .find(|f| f.environment() == Some(env.as_str()))
        {
            Finding::pass(format!(
                "environment {env} reads the mounted {}",
                hit.file_name()
            ))
        } else {
            let file = in_app[0];
            let other = file.environment().unwrap_or_default();
            if other.eq_ignore_ascii_case(env) {
                Finding::problem(
                    "case-mismatch",
                    format!(
                        "{} differs from appsettings.{env}.json only in letter case; Linux file names are case-sensitive, so the file is never read",
                        file.file_name()
                    ),
                )
            } else {
                Finding::problem(
                    "mismatch",
                    format!(
                        "{} is mounted but the environment is {env}: .NET reads appsettings.{env}.json, so the mounted file is ignored",
                        file.file_name()
                    ),
                )
            }
            .var(if file.kind == SourceKind::ConfigMap { "configmap" } else { "secret" }, &file.source)
        };
        // ASPNETCORE_ENVIRONMENT and DOTNET_ENVIRONMENT that disagree: DOTNET_ wins, quietly.
        let value = |n: &str| {
            v.env
                .iter()
                .find(|e| e.name == n)
                .map(|e| e.value.expose().to_owned())
        };
        if let (Some(a), Some(d)) = (value("ASPNETCORE_ENVIRONMENT"), value("DOTNET_ENVIRONMENT"))
            && a != d
            && finding.outcome == Outcome::Pass
        {
            finding = Finding::warn(
                "conflict",
                format!(
                    "ASPNETCORE_ENVIRONMENT={a} and DOTNET_ENVIRONMENT={d} disagree; DOTNET_ENVIRONMENT wins"
                ),
            );
        }
        finding.with(env_evidence).with_all(in_app.iter().map(|f| {
            Evidence::new("mounted", &f.path).from(format!("{} {} key {}", f.kind, f.source, f.key))
        }))
    })
}

// --- config.mounts -----------------------------------------------------------------------

/// One problem with a mount: outcome, cause, message, and the source it concerns.
type MountProblem = (Outcome, &'static str, String, Option<(SourceKind, String)>);

fn mounts(facts: &Facts) -> Finding {
    with_model(facts, |v| {
        let volumes = v.spec().volumes.clone().unwrap_or_default();
        let mut problems: Vec<MountProblem> = Vec::new();
        let mut evidence = Vec::new();
        for m in v.container.volume_mounts.iter().flatten() {
            let Some(vol) = volumes.iter().find(|x| x.name == m.name) else {
                continue;
            };
            let (kind, name, optional, items) = if let Some(cm) = &vol.config_map {
                (
                    SourceKind::ConfigMap,
                    cm.name.clone(),
                    cm.optional.unwrap_or(false),
                    cm.items.clone(),
                )
            } else if let Some(s) = &vol.secret {
                (
                    SourceKind::Secret,
                    s.secret_name.clone().unwrap_or_default(),
                    s.optional.unwrap_or(false),
                    s.items.clone(),
                )
            } else {
                continue;
            };
            evidence.push(
                Evidence::new(crate::model::describe_mount(m), format!("{kind} {name}"))
                    .from("volumeMounts"),
            );
            let sub = m.sub_path.as_deref().filter(|s| !s.is_empty());
            if m.mount_path.trim_end_matches('/') == APP_DIR && sub.is_none() {
                problems.push((
                    Outcome::Problem,
                    "hides-app",
                    format!("volume {} is mounted over {APP_DIR} without subPath: it replaces the application's files", m.name),
                    Some((kind, name.clone())),
                ));
            }
            let probe_state = match kind {
                SourceKind::ConfigMap => {
                    facts.config_maps.get(&name).map(|p| p.clone().map(|_| ()))
                }
                SourceKind::Secret => facts.secrets.get(&name).map(|p| p.clone().map(|_| ())),
            };
            match probe_state {
                Some(Probe::Observed(())) => {}
                Some(Probe::Absent) if optional => problems.push((
                    Outcome::Warn,
                    "optional-missing",
                    format!("optional {kind} {name} does not exist: volume {} is empty", m.name),
                    Some((kind, name.clone())),
                )),
                Some(Probe::Absent) => problems.push((
                    Outcome::Problem,
                    if kind == SourceKind::ConfigMap { "configmap-missing" } else { "secret-missing" },
                    format!("{kind} {name} (volume {}) does not exist: the pod cannot start (FailedMount)", m.name),
                    Some((kind, name.clone())),
                )),
                Some(Probe::NotAttempted(why)) if why == NOT_IN_BUNDLE => problems.push((
                    Outcome::Warn,
                    "not-in-bundle",
                    format!("{kind} {name} (volume {}) is {NOT_IN_BUNDLE}", m.name),
                    Some((kind, name.clone())),
                )),
                other => problems.push((
                    Outcome::Unknown,
                    "unknown-source",
                    format!(
                        "{kind} {name} could not be read: {}",
                        other.and_then(|p| p.why_not()).unwrap_or_else(|| "not gathered".into())
                    ),
                    Some((kind, name.clone())),
                )),
            }
            // Keys named by items or subPath must exist in the source.
            let wanted: Vec<String> = match (&items, sub) {
                (Some(items), _) => items.iter().map(|i| i.key.clone()).collect(),
                (None, Some(sp)) => vec![sp.to_owned()],
                (None, None) => Vec::new(),
            };
            let has = |k: &str| match kind {
                SourceKind::ConfigMap => match facts.config_maps.get(&name) {
                    Some(Probe::Observed(cm)) => Some(cm.has_key(k)),
                    _ => None,
                },
                SourceKind::Secret => match facts.secrets.get(&name) {
                    Some(Probe::Observed(s)) => Some(s.data.contains_key(k)),
                    _ => None,
                },
            };
            for k in wanted {
                if has(&k) == Some(false) {
                    problems.push((
                        Outcome::Problem,
                        "key-missing",
                        format!("{kind} {name} has no key {k:?} (volume {}{})", m.name,
                            if sub.is_some() { ": with subPath the kubelet mounts an empty directory instead of a file" } else { "" }),
                        Some((kind, name.clone())),
                    ));
                }
            }
        }
        for f in v
            .files
            .iter()
            .filter(|f| f.is_appsettings() && f.dir() != APP_DIR)
        {
            problems.push((
                Outcome::Problem,
                "wrong-path",
                format!(
                    "{} lands in {}, but Elsa reads appsettings files only from {APP_DIR}",
                    f.file_name(),
                    f.dir()
                ),
                Some((f.kind, f.source.clone())),
            ));
        }
        let rank = |o: Outcome| match o {
            Outcome::Problem => 0,
            Outcome::Unknown => 1,
            _ => 2,
        };
        problems.sort_by_key(|p| rank(p.0));
        let count = evidence.len();
        let Some((outcome, cause, message, source)) = problems.first().cloned() else {
            return Finding::pass(if count == 0 {
                "no ConfigMap or Secret volumes are mounted".to_owned()
            } else {
                format!("{count} ConfigMap/Secret mount(s) resolve")
            })
            .with_all(evidence);
        };
        let more = problems.iter().skip(1).map(|p| Evidence::new("also", &p.2));
        let mut finding = match outcome {
            Outcome::Warn => Finding::warn(cause, message),
            Outcome::Unknown => Finding::unknown(Some(cause), message),
            _ => Finding::problem(cause, message),
        }
        .with_all(evidence)
        .with_all(more);
        if let Some((kind, name)) = source {
            finding = finding.var(
                if kind == SourceKind::ConfigMap {
                    "configmap"
                } else {
                    "secret"
                },
                name,
            );
        }
        finding
    })
}

// --- config.refs -------------------------------------------------------------------------

fn refs(facts: &Facts) -> Finding {
    let finding = refs_of_workload(facts);
    // `lint`: a document of the bundle the API server would refuse is not created, whatever
    // refers to it; it is a finding on its own, whatever its kind (workload.found reports a
    // refused Elsa workload, and this check then does not run).
    let refused: Vec<&crate::facts::Rejected> =
        facts.bundle.iter().flat_map(|b| &b.rejected).collect();
    let twice = facts
        .bundle
        .iter()
        .flat_map(|b| &b.duplicates)
        .filter(|d| matches!(d.kind.as_str(), "ConfigMap" | "Secret"))
        .map(|d| {
            Evidence::new(
                format!("{}/{}", d.kind.to_lowercase(), d.name),
                d.to_string(),
            )
            .from("manifests")
        })
        .collect::<Vec<_>>();
    let evidence = refused.iter().map(|r| {
        Evidence::new(
            format!("{}/{}", r.kind.to_lowercase(), r.name),
            r.to_string(),
        )
        .from("manifests")
    });
    let finding = match refused.first() {
        Some(first) if finding.outcome != Outcome::Problem => {
            let var = if first.kind == "ConfigMap" {
                "configmap"
            } else {
                "secret"
            };
            let mut f =
                Finding::problem("rejected", format!("the API server would refuse {first}"))
                    .var(var, &first.name);
            f.evidence = finding.evidence;
            f
        }
        _ => match twice.first() {
            // The same ConfigMap or Secret twice: the later definition is the one used.
            Some(first) if finding.outcome == Outcome::Pass => {
                let mut w = Finding::warn(
                    "defined-twice",
                    format!("{}; {}", finding.message, first.value),
                );
                w.evidence = finding.evidence;
                w
            }
            _ => finding,
        },
    };
    finding.with_all(evidence).with_all(twice)
}

/// Whose reference a source problem is: the Elsa container (its findings read as before),
/// another container of the Elsa pod, or a container of the database's workload.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Owner {
    Elsa,
    Pod,
    Database,
}

/// One reference problem with the container it belongs to.
struct RefProblem<'a> {
    owner: Owner,
    /// `initContainer migrations`, or `deployment/postgres container postgres`.
    label: String,
    container: String,
    problem: &'a crate::domain::env_expand::SourceProblem,
}

fn refs_of_workload(facts: &Facts) -> Finding {
    with_model(facts, |v| {
        let mut problems: Vec<RefProblem<'_>> = v
            .expansion
            .problems
            .iter()
            .map(|p| RefProblem {
                owner: Owner::Elsa,
                label: format!("container {}", v.container.name),
                container: v.container.name.clone(),
                problem: p,
            })
            .collect();
        for c in v.containers.iter().filter(|c| !v.is_elsa_container(c)) {
            problems.extend(c.expansion.problems.iter().map(|p| RefProblem {
                owner: Owner::Pod,
                label: c.label(),
                container: c.name().to_owned(),
                problem: p,
            }));
        }
        if let Some(db) = &v.database {
            for c in &db.containers {
                problems.extend(c.expansion.problems.iter().map(|p| RefProblem {
                    owner: Owner::Database,
                    label: format!("{} {}", db.workload().reference(), c.label()),
                    container: c.name().to_owned(),
                    problem: p,
                }));
            }
        }
        let others = v.containers.len().saturating_sub(1);
        if problems.is_empty() {
            let mut also = Vec::new();
            if others > 0 {
                also.push(format!("{others} other container(s) of the pod"));
            }
            if let Some(db) = &v.database {
                also.push(format!(
                    "the database workload {} (behind Service {})",
                    db.workload().reference(),
                    db.service
                ));
            }
            let tail = if also.is_empty() {
                String::new()
            } else {
                format!(", also for {}", also.join(" and "))
            };
            return Finding::pass(format!(
                "every ConfigMap and Secret that env and envFrom reference exists with its keys{tail}"
            ));
        }
        // Classify from the facts: does the object exist, could it be read?
        let state = |kind: SourceKind, name: &str| -> Option<Probe<()>> {
            match kind {
                SourceKind::ConfigMap => facts.config_maps.get(name).map(|p| p.clone().map(|_| ())),
                SourceKind::Secret => facts.secrets.get(name).map(|p| p.clone().map(|_| ())),
            }
        };
        let refused = |kind: SourceKind, name: &str| {
            let k = if kind == SourceKind::ConfigMap {
                "ConfigMap"
            } else {
                "Secret"
            };
            facts
                .bundle
                .as_ref()
                .is_some_and(|b| b.rejection(k, name).is_some())
        };
        let classify = |r: &RefProblem<'_>| -> (Outcome, &'static str) {
            let p = r.problem;
            let db = r.owner == Owner::Database;
            let missing = match (db, p.kind) {
                (true, _) => "database-source-missing",
                (false, SourceKind::ConfigMap) => "configmap-missing",
                (false, SourceKind::Secret) => "secret-missing",
            };
            match (state(p.kind, &p.name), p.optional) {
                (Some(Probe::Observed(())), false) if db => {
                    (Outcome::Problem, "database-key-missing")
                }
                (Some(Probe::Observed(())), false) => (Outcome::Problem, "key-missing"),
                (Some(Probe::Absent), false) => (Outcome::Problem, missing),
                (Some(Probe::Observed(()) | Probe::Absent), true) => {
                    (Outcome::Warn, "optional-missing")
                }
                (Some(Probe::Failed(_)), _) if refused(p.kind, &p.name) => {
                    (Outcome::Problem, "rejected")
                }
                (Some(Probe::NotAttempted(why)), _) if why == NOT_IN_BUNDLE => {
                    (Outcome::Warn, "not-in-bundle")
                }
                _ => (Outcome::Unknown, missing),
            }
        };
        let rank = |o: Outcome| match o {
            Outcome::Problem => 0,
            Outcome::Unknown => 1,
            _ => 2,
        };
        // The first of the worst: Elsa's own container, then the pod's others, then the database.
        let worst = problems
            .iter()
            .min_by_key(|p| rank(classify(p).0))
            .unwrap_or(&problems[0]);
        let (outcome, cause) = classify(worst);
        let why = |r: &RefProblem<'_>| {
            let p = r.problem;
            match classify(r) {
                (_, "not-in-bundle") => format!(
                    "{} {} is {NOT_IN_BUNDLE}",
                    if p.kind == SourceKind::ConfigMap {
                        "ConfigMap"
                    } else {
                        "Secret"
                    },
                    p.name
                ),
                _ => redact::text(&p.why),
            }
        };
        let mut message = match worst.owner {
            Owner::Elsa => format!("{}: {}", worst.problem.origin, why(worst)),
            _ => format!("{}: {}: {}", worst.label, worst.problem.origin, why(worst)),
        };
        if worst.owner == Owner::Database
            && outcome == Outcome::Problem
            && let Some(db) = &v.database
        {
            message.push_str(&format!(
                " — so the database pod never starts, which explains the database and network findings that follow ({} is behind Service {})",
                db.workload().reference(),
                db.service
            ));
        }
        let evidence = problems.iter().map(|p| {
            let label = match p.owner {
                Owner::Elsa => p.problem.origin.clone(),
                _ => format!("{} {}", p.label, p.problem.origin),
            };
            Evidence::new(label, why(p)).from("env/envFrom")
        });
        let var = if worst.problem.kind == SourceKind::ConfigMap {
            "configmap"
        } else {
            "secret"
        };
        let mut finding = match outcome {
            Outcome::Problem => Finding::problem(cause, message),
            Outcome::Warn => Finding::warn(cause, message),
            _ => Finding::unknown(None, message),
        }
        .with_all(evidence)
        .var(var, &worst.problem.name)
        .var("container", &worst.container);
        if worst.owner == Owner::Database
            && let Some(db) = &v.database
        {
            finding = finding
                .var("workload", db.workload().name())
                .var("workload_kind", db.workload().kind().as_str());
        }
        finding
    })
}

// --- config.env-expansion ----------------------------------------------------------------

fn env_expansion(facts: &Facts) -> Finding {
    with_model(facts, |v| {
        let mut later = Vec::new();
        let mut undefined = Vec::new();
        // Containers with a reference defined further down, each with its reordered env.
        let mut reorder: Vec<(crate::model::ContainerKind, String, Vec<EnvVar>)> = Vec::new();
        let mut named = Vec::new();
        for c in &v.containers {
            let elsa = v.is_elsa_container(c);
            let prefix = v.container_prefix(c);
            let before = later.len() + undefined.len();
            let later_before = later.len();
            for e in &c.expansion.vars {
                let EnvValue::Text(x) = &e.value else {
                    continue;
                };
                for r in &x.refs {
                    match r.state {
                        RefState::DefinedLater { index } => later.push(
                            Evidence::new(
                                format!("{prefix}{} ({})", e.name, e.origin),
                                format!("$({}) is defined later, at env[{index}]: the value keeps the literal text $({})", r.name, r.name),
                            )
                            .from("env order"),
                        ),
                        RefState::Undefined => undefined.push(
                            Evidence::new(
                                format!("{prefix}{} ({})", e.name, e.origin),
                                format!("$({}) is never defined: the value keeps the literal text", r.name),
                            )
                            .from("env"),
                        ),
                        _ => {}
                    }
                }
            }
            if later.len() + undefined.len() > before {
                named.push((elsa, c.label()));
            }
            if later.len() > later_before
                && let Some(order) = dependency_order(c.container.env.as_deref().unwrap_or(&[]))
            {
                reorder.push((c.kind, c.name().to_owned(), order));
            }
        }
        // `initContainer migrations: ` when other containers than Elsa's have the problem (and
        // then Elsa's too, when it has one): a finding about Elsa's alone reads as it always did.
        let whose = if named.iter().all(|(elsa, _)| *elsa) {
            String::new()
        } else {
            let labels: Vec<&str> = named.iter().map(|(_, l)| l.as_str()).collect();
            format!("{}: ", labels.join(", "))
        };
        if !later.is_empty() {
            let mut finding = Finding::problem(
                "defined-later",
                format!(
                    "{whose}{} reference(s) point at variables defined further down the env list; Kubernetes expands $(VAR) only from earlier entries",
                    later.len()
                ),
            )
            .with_all(later)
            .with_all(undefined);
            if !reorder.is_empty() {
                finding.patch = Some(Box::new(reorder_patch_for(&reorder)));
            }
            if let Some((_, name, _)) = reorder.first() {
                finding = finding.var("container", name);
            }
            return finding;
        }
        if !undefined.is_empty() {
            return Finding::problem(
                "undefined",
                format!(
                    "{whose}{} reference(s) name variables that are never defined",
                    undefined.len()
                ),
            )
            .with_all(undefined);
        }
        // $(…) inside a mounted JSON file: neither Kubernetes nor .NET expands it.
        for f in v.files.iter().filter(|f| f.is_appsettings()) {
            if let Probe::Observed(c) = &f.content
                && let Some((line, text)) = c
                    .expose()
                    .lines()
                    .enumerate()
                    .find(|(_, l)| l.contains("$("))
            {
                let shown = match c {
                    FileContent::Text(_) => redact::text(text.trim()),
                    FileContent::Secret(_) => redact::MASK.to_owned(),
                };
                return Finding::problem(
                    "in-mounted-file",
                    format!("{} contains $(…) at line {}: a mounted file is never expanded, the text stays literal", f.file_name(), line + 1),
                )
                .with(Evidence::new(format!("{}:{}", f.path, line + 1), shown).from(format!("{} {} key {}", f.kind, f.source, f.key)))
                .var(if f.kind == SourceKind::ConfigMap { "configmap" } else { "secret" }, &f.source);
            }
        }
        let shell: Vec<Evidence> = v
            .container
            .env
            .iter()
            .flatten()
            .enumerate()
            .filter_map(|(i, e)| {
                let value = e.value.as_deref()?;
                let refs = shell_style_refs(value);
                (!refs.is_empty()).then(|| {
                    let names: Vec<String> = refs.iter().map(|(n, _)| format!("${n}")).collect();
                    Evidence::new(
                        format!("{} (env[{i}])", e.name),
                        format!(
                            "{} stays literal: Kubernetes expands only $(VAR)",
                            names.join(", ")
                        ),
                    )
                    .from("env")
                })
            })
            .collect();
        if !shell.is_empty() {
            return Finding::warn(
                "shell-style",
                format!(
                    "{} variable(s) use shell-style $VAR, which Kubernetes never expands",
                    shell.len()
                ),
            )
            .with_all(shell);
        }
        let resolved = v
            .expansion
            .vars
            .iter()
            .filter(|e| matches!(&e.value, EnvValue::Text(x) if x.refs.iter().any(|r| r.state == RefState::Resolved)))
            .count();
        Finding::pass(if resolved == 0 {
            "no $(VAR) references".to_owned()
        } else {
            format!("all $(VAR) references in {resolved} variable(s) resolve")
        })
    })
}

/// A strategic-merge patch that sets the env order (names only: values stay as they are, so no
/// secret or literal value is ever copied into the patch).
pub fn reorder_patch(
    container: &str,
    order: &[k8s_openapi::api::core::v1::EnvVar],
) -> serde_json::Value {
    reorder_patch_for(&[(
        crate::model::ContainerKind::Regular,
        container.to_owned(),
        order.to_vec(),
    )])
}

/// One strategic-merge patch that sets the env order of every container listed, init
/// containers under `initContainers` (both lists merge by container name), names only.
pub fn reorder_patch_for(
    containers: &[(crate::model::ContainerKind, String, Vec<EnvVar>)],
) -> serde_json::Value {
    let mut spec = serde_json::Map::new();
    for (kind, name, order) in containers {
        let names: Vec<serde_json::Value> = order
            .iter()
            .map(|e| serde_json::json!({"name": e.name}))
            .collect();
        let list = match kind {
            crate::model::ContainerKind::Init => "initContainers",
            crate::model::ContainerKind::Regular => "containers",
        };
        if let serde_json::Value::Array(a) = spec
            .entry(list)
            .or_insert_with(|| serde_json::Value::Array(Vec::new()))
        {
            a.push(serde_json::json!({
                "name": name,
                "$setElementOrder/env": names,
                "env": names,
            }));
        }
    }
    serde_json::json!({"spec": {"template": {"spec": spec}}})
}

// --- config.appsettings ------------------------------------------------------------------

fn appsettings(facts: &Facts) -> Finding {
    with_model(facts, |v| {
        let files: Vec<_> = v.files.iter().filter(|f| f.is_appsettings()).collect();
        let mut ok = 0;
        for f in &files {
            let Probe::Observed(c) = &f.content else {
                continue;
            };
            match dotnet_config::parse_appsettings(c.expose()) {
                Ok(_) => ok += 1,
                Err(e) => {
                    let cause = if e.duplicate_key {
                        "duplicate-key"
                    } else {
                        "invalid-json"
                    };
                    return Finding::problem(
                        cause,
                        format!(
                            "{} is not valid for .NET at line {}, column {}: {}",
                            f.file_name(),
                            e.line,
                            e.column,
                            redact::text(&e.message)
                        ),
                    )
                    .with(
                        Evidence::new("file", &f.path)
                            .from(format!("{} {} key {}", f.kind, f.source, f.key)),
                    )
                    .var(
                        if f.kind == SourceKind::ConfigMap {
                            "configmap"
                        } else {
                            "secret"
                        },
                        &f.source,
                    );
                }
            }
        }
        Finding::pass(if files.is_empty() {
            "no appsettings file is mounted".to_owned()
        } else {
            format!("{ok} mounted appsettings file(s) parse")
        })
    })
}

// --- config.dead-keys --------------------------------------------------------------------

fn dead_keys(facts: &Facts) -> Finding {
    with_model(facts, |v| {
        let mut found = Vec::new();
        let mut cause = None;
        let mut keys: Vec<(String, String)> = v
            .config
            .iter()
            .map(|s| (s.key.clone(), s.source.to_string()))
            .collect();
        // Keys in any mounted JSON count too, read or not: they show what was intended.
        for f in v.files.iter().filter(|f| f.is_appsettings()) {
            if let Probe::Observed(c) = &f.content
                && let Ok(json) = dotnet_config::parse_appsettings(c.expose())
            {
                let mut cfg = dotnet_config::EffectiveConfig::default();
                cfg.add_json(&json, |_| Source::ImageDefault);
                keys.extend(
                    cfg.iter()
                        .map(|s| (s.key.clone(), format!("{} in {}", s.key, f.path))),
                );
            }
        }
        keys.sort();
        keys.dedup_by(|a, b| a.0.eq_ignore_ascii_case(&b.0));
        for (key, source) in keys {
            if let Some(d) = elsa::dead_key(&key) {
                cause.get_or_insert(d.cause);
                found.push(
                    Evidence::new(key, format!("no Elsa version reads it; use {}", d.instead))
                        .from(source),
                );
            }
        }
        match cause {
            None => Finding::pass("no settings that Elsa never reads"),
            Some(cause) => Finding::problem(
                cause,
                format!(
                    "{} setting(s) have no effect in any Elsa version",
                    found.len()
                ),
            )
            .with_all(found),
        }
    })
}

// --- config.provider ---------------------------------------------------------------------

fn provider(facts: &Facts) -> Finding {
    with_model(facts, |v| {
        super::over_candidates(v, Some("sqlite-any-version"), |flavor, version| {
            provider_for(facts, v, flavor, version)
        })
    })
}

/// The PostgreSQL assembly the exec listing found in `/app`, when it looked.
fn listed_postgres(facts: &Facts) -> Option<bool> {
    facts.pod_files.observed().map(|l| {
        l.dlls()
            .any(|d| d.contains(".PostgreSql.dll") && d.starts_with("Elsa."))
    })
}

/// config.provider for one (flavour, version).
fn provider_for(
    facts: &Facts,
    v: &crate::model::Effective,
    flavor: Flavor,
    version: Option<elsa::ElsaVersion>,
) -> Finding {
    let Some(rule) = elsa::provider_rule(flavor, version) else {
        return match flavor {
            Flavor::Custom => Finding::skip(
                "a custom build chooses its provider in code — not visible in configuration (state the stock host it is built from with --elsa-flavor)",
            ),
            _ => Finding::skip("the Elsa version is not known — see workload.flavor"),
        };
    };
    let version_text = version.map(|x| x.to_string()).unwrap_or_default();
    match rule {
        ProviderRule::FixedInCode => {
            let ignored = v
                .provider_setting()
                .filter(|s| s.source != Source::ImageDefault)
                .map(|s| source_evidence("DatabaseProvider (ignored)", s));
            Finding::problem(
                "cannot-switch",
                format!("{flavor} {version_text} fixes its database provider in code (SQLite in the stock image): configuration cannot switch it to PostgreSQL"),
            )
            .with_all(ignored)
        }
        ProviderRule::ShellFeatures => modular_provider(facts, v, version),
        ProviderRule::DatabaseProviderKey => {
            let Some(s) = v
                .provider_setting()
                .filter(|s| s.source != Source::ImageDefault)
            else {
                return Finding::problem(
                    "missing",
                    "DatabaseProvider is not set: the image's default Sqlite applies, so Elsa keeps SQLite",
                );
            };
            let value = s.value.expose();
            let ev = source_evidence("DatabaseProvider", s);
            let accepted = elsa::accepted_providers(flavor, version);
            if elsa::postgres_providers(flavor, version).contains(&value) {
                let mut f =
                    Finding::pass(format!("DatabaseProvider={value} ({})", s.source)).with(ev);
                if flavor == Flavor::ServerAndStudio {
                    f = f.with(Evidence::new(
                        "note",
                        "this image also keeps some stores in SQLite whatever DatabaseProvider says (elsa-audit.md §4.1)",
                    ));
                }
                return f;
            }
            if !accepted.contains(&value) {
                let lower = value.to_ascii_lowercase();
                let close = accepted.iter().find(|p| {
                    p.eq_ignore_ascii_case(value)
                        || (p.starts_with("Postgre") && lower.starts_with("postgre"))
                });
                if let Some(close) = close {
                    return Finding::problem(
                        "wrong-case",
                        format!(
                            "DatabaseProvider={value:?} is not an accepted value (exact case: {}); the host stops at startup with \"Requested value '{value}' was not found\" — did you mean {close}?",
                            accepted.join(", ")
                        ),
                    )
                    .with(ev);
                }
                return Finding::problem(
                    "not-accepted",
                    format!(
                        "DatabaseProvider={value:?} is not a value {flavor} {version_text} knows ({}): the host stops at startup with \"Requested value '{value}' was not found\"",
                        accepted.join(", ")
                    ),
                )
                .with(ev);
            }
            let net9 = elsa::dotnet_major(flavor, version) == Some(9);
            match (value, flavor) {
                ("Sqlite", _) => Finding::problem("sqlite", "DatabaseProvider=Sqlite: Elsa uses SQLite").with(ev),
                ("MySql", Flavor::ServerAndStudio) if net9 => Finding::problem(
                    "memory-stores",
                    "DatabaseProvider=MySql: the .NET 9 Server + Studio image compiles MySQL out and configures no database at all, so workflows live in memory and are lost at every restart",
                )
                .with(ev),
                ("MySql", _) if net9 => Finding::problem(
                    "mysql-fallback",
                    "DatabaseProvider=MySql: the .NET 9 images compile MySQL out and fall back to SQLite",
                )
                .with(ev),
                ("CockroachDb", Flavor::ServerAndStudio) => Finding::problem(
                    "memory-stores",
                    "DatabaseProvider=CockroachDb: the Server + Studio image configures no database for it, so workflows live in memory and are lost at every restart",
                )
                .with(ev),
                (other, _) => Finding::problem("other-provider", format!("DatabaseProvider={other}: Elsa uses {other}, not PostgreSQL")).with(ev),
            }
        }
    }
}

/// The Modular Server (elsa-audit.md §4.3, rows 1, 10, 11): persistence is a CShells shell
/// feature, and only an image that contains `Elsa.Persistence.EFCore.PostgreSql.dll` can have
/// the PostgreSQL one. Stock images ship only the SQLite provider.
fn modular_provider(
    facts: &Facts,
    v: &crate::model::Effective,
    version: Option<elsa::ElsaVersion>,
) -> Finding {
    let v38 = version.is_none_or(|x| x.mm() >= (3, 8));
    let shell = if v38 {
        "CShells:Shells:Default:Features"
    } else {
        "CShells:Shells:0:Features"
    };
    let enabled = |feature: &str| -> Option<bool> {
        let key = format!("{shell}:{feature}");
        let own = v.config.get(&key);
        // 3.8's CShells disables a feature whose value is `false`; 3.7's ignores the value.
        if v38 && own.is_some_and(|s| s.value.expose().eq_ignore_ascii_case("false")) {
            return Some(false);
        }
        (own.is_some() || v.config.section(&key).next().is_some()).then_some(true)
    };
    let stock = v
        .identity
        .as_ref()
        .and_then(|id| elsa::classify_image(&id.image))
        .is_some_and(|i| i.official);
    let version_text = version.map(|x| x.to_string()).unwrap_or_default();
    let no_provider = |why: &str| {
        Finding::problem(
            "modular",
            format!(
                "Elsa.ModularServer.Web {version_text} ships no PostgreSQL provider ({why}): no setting can move it to PostgreSQL; naming PostgreSql* shell features only makes CShells log a warning and leave them out"
            ),
        )
    };
    match listed_postgres(facts) {
        Some(true) => {}
        Some(false) => return no_provider("no Elsa.Persistence.EFCore.PostgreSql.dll in /app"),
        None if stock => {
            return no_provider("the stock image holds only Elsa.Persistence.EFCore.Sqlite");
        }
        None => {
            return Finding::unknown(
                Some("modular"),
                "this Modular Server image's /app was not listed, so whether it contains the PostgreSQL provider is not known",
            );
        }
    }
    let pg = enabled("PostgreSqlWorkflowPersistence") == Some(true);
    // The image's appsettings.json enables the SQLite feature unless something disables it.
    let sqlite = enabled("SqliteWorkflowPersistence") != Some(false);
    let ev = Evidence::new(
        "shell features",
        format!(
            "{shell}: PostgreSqlWorkflowPersistence {}, SqliteWorkflowPersistence {}",
            if pg { "enabled" } else { "not enabled" },
            if sqlite { "enabled" } else { "disabled" }
        ),
    );
    // Where each feature's own value comes from: the image, a file, env, or 3.8's shell overlay
    // file, which overrides env (elsa-audit.md row 28).
    let sources: Vec<Evidence> = ["PostgreSqlWorkflowPersistence", "SqliteWorkflowPersistence"]
        .iter()
        .filter_map(|feature| {
            let key = format!("{shell}:{feature}");
            let s = v.config.get(&key)?;
            Some(source_evidence(&key, s))
        })
        .collect();
    let ev = std::iter::once(ev).chain(sources).collect::<Vec<_>>();
    match (pg, sqlite) {
        (true, false) => Finding::pass("the PostgreSqlWorkflowPersistence shell feature is enabled and the SQLite one disabled").with_all(ev),
        (true, true) => Finding::problem(
            "modular-both",
            "both the SQLite and the PostgreSQL workflow persistence features are enabled: the outcome is not defined (two providers for the same stores)",
        )
        .with_all(ev),
        (false, _) => {
            let key = format!("{shell}:PostgreSqlWorkflowPersistence");
            let message = match v.config.get(&key) {
                // Disabled explicitly (3.8: `false`), perhaps by the shell overlay over env.
                Some(s) if v38 && s.value.expose().eq_ignore_ascii_case("false") => format!(
                    "the image contains the PostgreSQL provider, but {key} is false (from {}): workflows stay on SQLite (or in memory if the SQLite feature is off)",
                    s.source
                ),
                _ => "the image contains the PostgreSQL provider but no shell feature enables it: workflows stay on SQLite (or in memory if the SQLite feature is off)".to_owned(),
            };
            Finding::problem("modular-sqlite", message).with_all(ev)
        }
    }
}

// --- config.connection-string ------------------------------------------------------------

fn connection_string(facts: &Facts) -> Finding {
    with_model(facts, |v| {
        if v.identity
            .as_ref()
            .and_then(|id| elsa::provider_rule(id.flavor, id.version))
            != Some(ProviderRule::DatabaseProviderKey)
        {
            return Finding::skip(
                "this image does not read its connection string from configuration — see config.provider",
            );
        }
        let name = v.connection_name();
        let key = format!("ConnectionStrings:{name}");
        let Some(s) = v.config.get(&key) else {
            return Finding::problem("missing", format!("{key} is not set"));
        };
        let ev = source_evidence(&key, s);
        if s.source == Source::ImageDefault {
            return Finding::problem(
                "missing",
                format!(
                    "{key} is not set: the image default points at localhost:5432 inside the pod"
                ),
            )
            .with(ev);
        }
        if s.value.runtime_only {
            return Finding::unknown(
                Some("source-unknown"),
                format!("{key} is only known at runtime"),
            )
            .with(ev);
        }
        if let Source::Env { var, .. } = &s.source
            && let Some(entry) = v.expansion.get(var)
            && let EnvValue::Unavailable(why) = &entry.value
        {
            return Finding::unknown(
                Some("source-unknown"),
                format!("{key} comes from a source that could not be read: {why}"),
            );
        }
        // A reference to a variable whose source is missing or unreadable: the cause is the
        // source (config.refs), not the expansion.
        if let Source::Env { var, .. } = &s.source
            && let Some(EnvValue::Text(x)) = v.expansion.get(var).map(|e| &e.value)
        {
            for r in x.refs.iter().filter(|r| r.state == RefState::RuntimeOnly) {
                if let Some(EnvValue::Unavailable(why)) = v.expansion.get(&r.name).map(|e| &e.value)
                {
                    return Finding::unknown(
                        Some("source-unknown"),
                        format!(
                            "{key} uses $({}), whose source is unavailable ({}) — see config.refs",
                            r.name,
                            redact::text(why)
                        ),
                    )
                    .with(ev);
                }
            }
        }
        let value = s.value.expose();
        if value.contains("$(") {
            return Finding::problem(
                "unexpanded",
                format!("{key} contains the literal text $(…): Npgsql will send it as is — see config.env-expansion"),
            )
            .with(ev);
        }
        if !shell_style_refs(value).is_empty() {
            return Finding::problem(
                "shell-style",
                format!("{key} contains shell-style $VAR text, which nothing expands"),
            )
            .with(ev);
        }
        let cs = match npgsql::parse(value) {
            Ok(cs) => cs,
            Err(e) => {
                return Finding::problem("unparseable", format!("{key} cannot be parsed: {e}"))
                    .with(ev);
            }
        };
        let hosts = cs.hosts();
        let local = hosts.iter().find(|h| {
            matches!(
                h.host.to_ascii_lowercase().as_str(),
                "localhost" | "127.0.0.1" | "::1"
            )
        });
        let mut finding = if let Some(h) = local {
            Finding::problem(
                "localhost",
                format!(
                    "{key} points at {}: inside a pod that is the pod itself, not the database",
                    h.host
                ),
            )
        } else if !cs.unknown_keywords().is_empty() {
            Finding::problem(
                "unknown-keywords",
                format!(
                    "{key} has keywords Npgsql does not know ({}): Npgsql refuses the whole string, so Elsa cannot connect",
                    cs.unknown_keywords()
                        .iter()
                        .map(|k| redact::text(k))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            )
        } else if let Some(p) = cs.problems().first() {
            Finding::problem(
                "unparseable",
                format!(
                    "{key}: Npgsql would refuse it: {}",
                    redact::text(&p.message)
                ),
            )
        } else {
            Finding::pass(format!(
                "{key} → {} database {} as {} ({})",
                hosts
                    .iter()
                    .map(|h| format!("{}:{}", h.host, h.port))
                    .collect::<Vec<_>>()
                    .join(","),
                cs.database().unwrap_or("(user's default)"),
                cs.username().unwrap_or("(none)"),
                s.source
            ))
        };
        finding = finding.with(ev);
        if let Some(h) = hosts.first() {
            finding = finding
                .var("db_host", &h.host)
                .var("db_port", h.port.to_string());
        }
        if let Some(d) = cs.database() {
            finding = finding.var("database", d);
        }
        if let Some(u) = cs.username() {
            finding = finding.var("db_user", u);
        }
        finding
    })
}

// --- config.probes -----------------------------------------------------------------------

fn probes(facts: &Facts) -> Finding {
    with_model(facts, |v| {
        let c = &v.container;
        let probes = [
            ("readiness", c.readiness_probe.as_ref()),
            ("liveness", c.liveness_probe.as_ref()),
            ("startup", c.startup_probe.as_ref()),
        ];
        let defined: Vec<_> = probes
            .iter()
            .filter_map(|(n, p)| p.map(|p| (*n, p)))
            .collect();
        if defined.is_empty() {
            return Finding::warn(
                "missing",
                "no readiness or liveness probe: Kubernetes cannot tell a stuck Elsa from a working one",
            );
        }
        let paths = v
            .identity
            .as_ref()
            .and_then(|id| elsa::health_paths(id.flavor, id.version));
        let ports: Vec<(Option<String>, i32)> = c
            .ports
            .iter()
            .flatten()
            .map(|p| (p.name.clone(), p.container_port))
            .collect();
        let port_override = v.env.iter().any(|e| {
            matches!(
                e.name.as_str(),
                "ASPNETCORE_URLS" | "ASPNETCORE_HTTP_PORTS" | "HTTP_PORTS" | "DOTNET_URLS"
            )
        });
        let mut evidence = Vec::new();
        for (kind, p) in &defined {
            let Some(get) = &p.http_get else {
                evidence.push(
                    Evidence::new(format!("{kind} probe"), "not an HTTP probe")
                        .from("container spec"),
                );
                continue;
            };
            let path = get.path.clone().unwrap_or_else(|| "/".to_owned());
            let port = match &get.port {
                k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(n) => Ok(*n),
                k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::String(name) => ports
                    .iter()
                    .find(|(n, _)| n.as_deref() == Some(name.as_str()))
                    .map(|(_, p)| *p)
                    .ok_or_else(|| name.clone()),
            };
            evidence.push(
                Evidence::new(
                    format!("{kind} probe"),
                    format!(
                        "GET {path} on port {}",
                        match &port {
                            Ok(p) => p.to_string(),
                            Err(n) => n.clone(),
                        }
                    ),
                )
                .from("container spec"),
            );
            match port {
                Err(name) => {
                    return Finding::problem("wrong-port", format!("the {kind} probe uses port name {name:?}, which the container does not declare"))
                        .with_all(evidence);
                }
                Ok(p)
                    if !port_override
                        && p != elsa::HTTP_PORT
                        && !ports.iter().any(|(_, cp)| *cp == p) =>
                {
                    return Finding::problem(
                        "wrong-port",
                        format!(
                            "the {kind} probe calls port {p}, but Elsa listens on {}",
                            elsa::HTTP_PORT
                        ),
                    )
                    .with_all(evidence);
                }
                Ok(_) => {}
            }
            if paths.is_none() && !v.candidates.is_empty() {
                // The version is not known: judge the path against every candidate.
                let serving: Vec<(Flavor, elsa::ElsaVersion)> = v
                    .candidates
                    .iter()
                    .copied()
                    .filter(|(f, ver)| {
                        elsa::health_paths(*f, Some(*ver))
                            .is_some_and(|p| p.contains(&path.as_str()))
                    })
                    .collect();
                let all = crate::domain::versions::describe(&v.candidates);
                if serving.is_empty() {
                    return Finding::problem(
                        "path-missing",
                        format!("the {kind} probe calls {path}, which no candidate version ({all}) serves"),
                    )
                    .with_all(evidence);
                }
                if serving.len() < v.candidates.len() {
                    return Finding::warn(
                        "path-version-dependent",
                        format!(
                            "the {kind} probe calls {path}, which only {} serves; the version is not known ({all})",
                            crate::domain::versions::describe(&serving)
                        ),
                    )
                    .with_all(evidence);
                }
            }
            if let (Some(paths), Some(id)) = (paths, v.identity.as_ref())
                && !paths.contains(&path.as_str())
            {
                return Finding::problem(
                    "path-missing",
                    format!(
                        "the {kind} probe calls {path}, which {} {} does not serve (it serves {})",
                        id.flavor,
                        id.version.map(|x| x.to_string()).unwrap_or_default(),
                        paths.join(", ")
                    ),
                )
                .with_all(evidence);
            }
        }
        let note = if paths.is_none() && v.candidates.is_empty() {
            " (paths not checked: the Elsa version is not known)"
        } else {
            ""
        };
        Finding::pass(format!(
            "{} probe(s) call served endpoints{note}",
            defined.len()
        ))
        .with_all(evidence)
    })
}

// --- config.signing-key ------------------------------------------------------------------

fn signing_key(facts: &Facts) -> Finding {
    with_model(facts, |v| {
        super::over_candidates(v, None, |flavor, version| {
            signing_key_for(v, flavor, version)
        })
    })
}

/// config.signing-key for one (flavour, version): Elsa 3.8's `ValidateIdentityTokenOptions`
/// (elsa-audit.md rows 2–5, 17, 18, §6): every environment rejects an empty key, one with
/// leading or trailing whitespace, non-printable or non-ASCII characters, or fewer than 32
/// characters; the two known public defaults (compared case-insensitively) are tolerated only
/// in Development and Demo (also case-insensitive). Server.Web 3.8's own appsettings.json holds
/// the CHANGE_ME sample, so an unset key is the sample.
fn signing_key_for(
    v: &crate::model::Effective,
    flavor: Flavor,
    version: Option<elsa::ElsaVersion>,
) -> Finding {
    let Some(version) = version else {
        return Finding::skip("the Elsa version is not known — see workload.flavor");
    };
    if version.mm() < (3, 8) {
        return Finding::pass(format!(
            "{flavor} {version}: signing-key validation applies to Elsa 3.8 and later only"
        ));
    }
    let key = match flavor {
        Flavor::ServerWeb | Flavor::Custom => "Identity:Tokens:SigningKey",
        // The identity shell feature binds its own section (audit row 5).
        Flavor::ModularServer => "CShells:Shells:Default:Features:Identity:SigningKey",
        _ => return Finding::skip(format!("{flavor} does not validate a signing key")),
    };
    let env = &v.environment.0;
    let lenient = env.eq_ignore_ascii_case("Development") || env.eq_ignore_ascii_case("Demo");
    let (value, ev) = match v.config.get(key) {
        Some(s) => (
            s.value.expose().to_owned(),
            Some(
                Evidence::new(
                    key,
                    format!("{} characters", s.value.expose().chars().count()),
                )
                .from(s.source.to_string()),
            ),
        ),
        // Both hosts' appsettings.json carry the CHANGE_ME sample (audit row 17, §4.3).
        None => (
            elsa::SAMPLE_SIGNING_KEY.to_owned(),
            Some(Evidence::new(
                key,
                "not set: the image's appsettings.json default, the published sample, applies",
            )),
        ),
    };
    let fail = |cause: &'static str, what: &str| {
        Finding::problem(
            cause,
            format!("{key} {what}: Elsa {version} refuses to start (in every environment)"),
        )
        .with_all(ev.clone())
    };
    if value.is_empty() {
        return fail("missing", "is empty");
    }
    if value.trim() != value {
        return fail(
            "whitespace",
            "has leading or trailing whitespace (a Secret made from a file written by echo ends in a newline)",
        );
    }
    if elsa::KNOWN_SIGNING_KEYS
        .iter()
        .any(|k| k.eq_ignore_ascii_case(&value))
    {
        return if lenient {
            Finding::pass(format!(
                "{key} is a known public default, which 3.8 tolerates in environment {env} only"
            ))
            .with_all(ev)
        } else {
            Finding::problem(
                "sample-value",
                format!("{key} is a known public default value and the environment is {env}: Elsa {version} refuses to start"),
            )
            .with_all(ev)
        };
    }
    if !value.chars().all(|c| c.is_ascii_graphic() || c == ' ') {
        return fail(
            "non-ascii",
            "contains non-printable or non-ASCII characters",
        );
    }
    if value.chars().count() < 32 {
        return fail("too-short", "is shorter than 32 characters");
    }
    Finding::pass(format!("{key} is set and passes 3.8's validation")).with_all(ev)
}

#[cfg(test)]
mod version_rule_tests {
    //! The audit's rules for config.signing-key and config.provider (elsa-audit.md §1), on facts
    //! built directly.
    use super::*;
    use crate::checks::test_support::{deployment, with_deployments};

    fn facts(image: &str, env: serde_json::Value) -> Facts {
        let mut d = deployment("elsa-server", image, 1);
        d["spec"]["template"]["spec"]["containers"][0]["env"] = env;
        with_deployments(serde_json::json!([d]))
    }

    fn key_env(env_name: &str, key: &str) -> serde_json::Value {
        serde_json::json!([
            {"name": "ASPNETCORE_ENVIRONMENT", "value": env_name},
            {"name": "Identity__Tokens__SigningKey", "value": key}
        ])
    }

    const V38: &str = "elsaworkflows/elsa-server-v3:3.8.0-rc2";

    #[test]
    fn signing_key_rules_of_3_8_in_every_environment() {
        let good = "0123456789abcdefghijklmnopqrstuvwxyzABCD";
        let cases = [
            // rows 2, 4: whitespace and length fail in Development too
            (
                "Development",
                format!("{good}\n"),
                Outcome::Problem,
                Some("whitespace"),
            ),
            (
                "Development",
                "short".to_owned(),
                Outcome::Problem,
                Some("too-short"),
            ),
            (
                "Production",
                format!("{good}é"),
                Outcome::Problem,
                Some("non-ascii"),
            ),
            // row 3: both known defaults, case-insensitively
            (
                "Production",
                "Sufficiently-Large-Secret-Signing-Key".to_owned(),
                Outcome::Problem,
                Some("sample-value"),
            ),
            (
                "Production",
                "change_me_to_a_secure_random_key".to_owned(),
                Outcome::Problem,
                Some("sample-value"),
            ),
            // row 18: the environment comparison is case-insensitive
            (
                "development",
                "sufficiently-large-secret-signing-key".to_owned(),
                Outcome::Pass,
                None,
            ),
            ("Production", good.to_owned(), Outcome::Pass, None),
        ];
        for (env, key, outcome, cause) in cases {
            let f = signing_key(&facts(V38, key_env(env, &key)));
            assert_eq!(
                (f.outcome, f.cause),
                (outcome, cause),
                "{env} {key:?}: {}",
                f.message
            );
            assert!(
                !f.message.contains(&key) || key.len() < 8,
                "the key is never shown"
            );
        }
    }

    #[test]
    fn an_unset_3_8_key_is_the_images_sample() {
        // row 17
        let f = signing_key(&facts(V38, serde_json::json!([])));
        assert_eq!(f.cause, Some("sample-value"), "{}", f.message);
    }

    #[test]
    fn provider_values_follow_host_and_version() {
        let env = |v: &str| serde_json::json!([{"name": "DatabaseProvider", "value": v}]);
        let cases = [
            // row 6: Citus only from 3.4 on Server.Web, never on ServerAndStudio
            (
                "elsaworkflows/elsa-server-v3-5:3.3.5",
                "Citus",
                Some("not-accepted"),
            ),
            ("elsaworkflows/elsa-server-v3-5:3.4.0", "Citus", None),
            (
                "elsaworkflows/elsa-server-v3-5:3.3.1",
                "Oracle",
                Some("not-accepted"),
            ),
            (
                "elsaworkflows/elsa-server-v3-5:3.3.2",
                "Oracle",
                Some("other-provider"),
            ),
            (
                "elsaworkflows/elsa-server-and-studio-v3-5:3.5.3",
                "YugabyteDb",
                Some("not-accepted"),
            ),
            // row 19: MySql and CockroachDb on Server + Studio keep memory stores
            (
                "elsaworkflows/elsa-server-and-studio-v3-5:3.5.3",
                "MySql",
                Some("memory-stores"),
            ),
            (
                "elsaworkflows/elsa-server-and-studio-v3-5:3.5.3",
                "CockroachDb",
                Some("memory-stores"),
            ),
            (
                "elsaworkflows/elsa-server-v3-5:3.5.3",
                "MySql",
                Some("mysql-fallback"),
            ),
            (
                "elsaworkflows/elsa-server-v3-5:3.5.3",
                "postgresql",
                Some("wrong-case"),
            ),
            // row 8: the 3.6/3.7 server-and-studio previews hard-code SQLite
            (
                "elsaworkflows/elsa-server-and-studio-v3-6-0-preview:latest",
                "PostgreSql",
                Some("cannot-switch"),
            ),
            // row 1: the stock Modular Server image has no PostgreSQL provider
            (
                "elsaworkflows/elsa-server-and-studio-v3:3.8.0-rc2",
                "PostgreSql",
                Some("modular"),
            ),
        ];
        for (image, value, cause) in cases {
            let f = provider(&facts(image, env(value)));
            assert_eq!(
                f.cause, cause,
                "{image} DatabaseProvider={value}: {}",
                f.message
            );
        }
    }
}

#[cfg(test)]
mod container_tests {
    //! Every container of the Elsa pod, and the database's own workload (issue 12 items 1, 6).
    use std::collections::BTreeMap;

    use super::*;
    use crate::checks::test_support::{deployment, with_deployments};
    use crate::facts::SecretData;
    use crate::redact::Secret;

    const IMAGE: &str = "elsaworkflows/elsa-server-v3-5:3.5.3";
    const CONN: &str = "Host=postgres;Database=elsa;Username=elsa;Password=$(POSTGRES_PASSWORD)";

    fn password_ref(key: &str) -> serde_json::Value {
        serde_json::json!({"name": "POSTGRES_PASSWORD",
            "valueFrom": {"secretKeyRef": {"name": "postgres-secret", "key": key}}})
    }

    /// The guide's init container: the connection string above the variable it uses.
    fn guide_init() -> serde_json::Value {
        serde_json::json!({"name": "migrations", "image": "elsaworkflows/elsa-server:latest",
            "env": [{"name": "ConnectionStrings__PostgreSql", "value": CONN}, password_ref("password")]})
    }

    fn elsa() -> serde_json::Value {
        let mut d = deployment("elsa-server", IMAGE, 1);
        d["spec"]["template"]["spec"]["containers"][0]["env"] = serde_json::json!([
            {"name": "DatabaseProvider", "value": "PostgreSql"},
            password_ref("password"),
            {"name": "ConnectionStrings__PostgreSql", "value": CONN}
        ]);
        d
    }

    fn postgres(key: &str) -> serde_json::Value {
        let mut d = deployment("postgres", "postgres:16", 1);
        d["spec"]["template"]["spec"]["containers"][0]["env"] =
            serde_json::json!([password_ref(key)]);
        d
    }

    fn facts(deployments: serde_json::Value) -> Facts {
        let mut f = with_deployments(deployments);
        let data = BTreeMap::from([("password".to_owned(), Secret::new("pw"))]);
        f.secrets.insert(
            "postgres-secret".to_owned(),
            Probe::Observed(SecretData { data }),
        );
        f.services = Probe::Observed(
            serde_json::from_value(serde_json::json!([
                {"metadata": {"name": "postgres"}, "spec": {"clusterIP": "10.96.0.20",
                    "selector": {"app": "postgres"}, "ports": [{"port": 5432}]}}
            ]))
            .expect("services"),
        );
        f
    }

    #[test]
    fn the_guides_init_container_order_is_named_and_patched() {
        let mut d = elsa();
        d["spec"]["template"]["spec"]["initContainers"] = serde_json::json!([guide_init()]);
        let f = env_expansion(&facts(serde_json::json!([d])));
        assert_eq!(f.cause, Some("defined-later"), "{}", f.message);
        assert!(
            f.message
                .starts_with("initContainer migrations: 1 reference(s)"),
            "{}",
            f.message
        );
        assert!(
            f.evidence.iter().any(|e| e
                .label
                .starts_with("initContainer migrations: ConnectionStrings__PostgreSql")),
            "{:?}",
            f.evidence
        );
        assert_eq!(
            f.vars.0.get("container").map(String::as_str),
            Some("migrations")
        );
        let patch = f.patch.expect("a patch");
        let init = &patch["spec"]["template"]["spec"]["initContainers"];
        assert_eq!(init[0]["name"], "migrations");
        assert_eq!(
            init[0]["$setElementOrder/env"],
            serde_json::json!([{"name": "POSTGRES_PASSWORD"}, {"name": "ConnectionStrings__PostgreSql"}])
        );
        assert!(
            patch["spec"]["template"]["spec"]
                .get("containers")
                .is_none(),
            "the Elsa container's order is right: not in the patch: {patch}"
        );
        assert!(!patch.to_string().contains("value"), "names only: {patch}");
    }

    #[test]
    fn one_patch_orders_every_container_that_needs_it() {
        let mut d = elsa();
        let c = &mut d["spec"]["template"]["spec"]["containers"][0]["env"];
        // The Elsa container in the guide's Option A order too.
        *c = serde_json::json!([
            {"name": "DatabaseProvider", "value": "PostgreSql"},
            {"name": "ConnectionStrings__PostgreSql", "value": CONN},
            password_ref("password")
        ]);
        d["spec"]["template"]["spec"]["initContainers"] = serde_json::json!([guide_init()]);
        let f = env_expansion(&facts(serde_json::json!([d])));
        assert_eq!(f.cause, Some("defined-later"));
        assert!(
            f.message
                .starts_with("initContainer migrations, container elsa-server: 2 reference(s)"),
            "{}",
            f.message
        );
        let patch = f.patch.expect("a patch");
        let spec = &patch["spec"]["template"]["spec"];
        assert_eq!(spec["initContainers"][0]["name"], "migrations");
        assert_eq!(spec["containers"][0]["name"], "elsa-server");
        assert_eq!(
            spec["containers"][0]["$setElementOrder/env"][1],
            serde_json::json!({"name": "POSTGRES_PASSWORD"})
        );
    }

    #[test]
    fn a_sidecars_missing_key_names_the_sidecar() {
        let mut d = elsa();
        let containers = d["spec"]["template"]["spec"]["containers"]
            .as_array_mut()
            .expect("containers");
        containers.push(serde_json::json!({"name": "log-shipper", "image": "fluent/fluent-bit:3.1.9",
            "env": [{"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "postgres-secret", "key": "token"}}}]}));
        let f = refs(&facts(serde_json::json!([d])));
        assert_eq!(
            (f.outcome, f.cause),
            (Outcome::Problem, Some("key-missing"))
        );
        assert!(
            f.message
                .starts_with("container log-shipper: env[0] secretKeyRef postgres-secret/token"),
            "{}",
            f.message
        );
        assert_eq!(
            f.vars.0.get("container").map(String::as_str),
            Some("log-shipper")
        );
    }

    #[test]
    fn the_database_workloads_missing_key_explains_what_follows() {
        let f = facts(serde_json::json!([elsa(), postgres("postgres-password")]));
        let v = f.effective().expect("model");
        let db = v
            .database
            .as_ref()
            .expect("the workload behind Service postgres");
        assert_eq!(db.workload().reference(), "deployment/postgres");
        assert_eq!(db.service, "postgres");
        let r = refs(&f);
        assert_eq!(r.cause, Some("database-key-missing"), "{}", r.message);
        assert!(
            r.message
                .starts_with("deployment/postgres container postgres: env[0]"),
            "{}",
            r.message
        );
        assert!(
            r.message.contains("database pod never starts"),
            "{}",
            r.message
        );
        assert_eq!(
            r.vars.0.get("workload").map(String::as_str),
            Some("postgres")
        );
        let why = crate::checks::database_cannot_start(&f).expect("a reason");
        assert!(why.contains("deployment/postgres cannot start"), "{why}");
        // A failing finding after it points at it; a passing one is left alone.
        let blamed = crate::checks::blame_database(&f, Finding::problem("refused", "refused"));
        assert!(
            blamed.message.contains("see config.refs"),
            "{}",
            blamed.message
        );
        let ok = crate::checks::blame_database(&f, Finding::pass("fine"));
        assert_eq!(ok.message, "fine");
    }

    #[test]
    fn a_healthy_database_workload_passes_and_is_named() {
        let f = facts(serde_json::json!([elsa(), postgres("password")]));
        let r = refs(&f);
        assert_eq!(r.outcome, Outcome::Pass, "{}", r.message);
        assert!(r.message.contains("deployment/postgres"), "{}", r.message);
        assert!(crate::checks::database_cannot_start(&f).is_none());
    }

    #[test]
    fn a_database_statefulset_whose_own_secret_is_missing() {
        // The database's own Secret, which Elsa does not reference: gathering read it by name.
        let with = |secret: Probe<SecretData>| {
            let mut f = facts(serde_json::json!([elsa()]));
            let mut sts = postgres("password");
            sts["spec"]["serviceName"] = serde_json::json!("postgres");
            sts["spec"]["template"]["spec"]["containers"][0]["envFrom"] =
                serde_json::json!([{"secretRef": {"name": "postgres-superuser"}}]);
            f.statefulsets = Probe::Observed(vec![serde_json::from_value(sts).expect("sts")]);
            f.secrets.insert("postgres-superuser".to_owned(), secret);
            f
        };
        let f = with(Probe::Absent);
        let r = refs(&f);
        assert_eq!(r.cause, Some("database-source-missing"), "{}", r.message);
        assert!(
            r.message
                .starts_with("statefulset/postgres container postgres: envFrom[0]"),
            "{}",
            r.message
        );
        assert_eq!(
            r.vars.0.get("workload_kind").map(String::as_str),
            Some("statefulset")
        );
        assert_eq!(
            r.vars.0.get("secret").map(String::as_str),
            Some("postgres-superuser")
        );
        assert!(crate::checks::database_cannot_start(&f).is_some());
        // Not readable (a 403) is not missing: unknown, and nothing blames it.
        let f = with(Probe::Forbidden {
            verb: "get".to_owned(),
            resource: "secrets".to_owned(),
        });
        assert!(crate::checks::database_cannot_start(&f).is_none());
        assert_eq!(refs(&f).outcome, Outcome::Unknown);
    }

    #[test]
    fn no_workload_behind_the_service_no_database_judgement() {
        // The Service selects app=postgres; this database runs as app=pg.
        let mut pg = postgres("postgres-password");
        pg["spec"]["template"]["metadata"]["labels"] = serde_json::json!({"app": "pg"});
        let f = facts(serde_json::json!([elsa(), pg]));
        assert!(f.effective().expect("model").database.is_none());
        assert_eq!(refs(&f).outcome, Outcome::Pass);
    }
}
