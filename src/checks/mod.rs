//! The checks: pure, synchronous functions of [`Facts`] that return a [`Finding`].
//!
//! No IO, no clock, no environment: what a check needs is a field of `Facts`, and unit tests build
//! `Facts` directly. The runner pairs each function with its catalogue entry (title, severity,
//! fix) and decides when it runs (its facts are in, its hard prerequisites passed).
//!
//! How to add a check: write `checks/NNN-<id>.toml`, write `fn(&Facts) -> Finding` in the module
//! of its category, and add a [`CheckImpl`] to [`REGISTRY`] with the facts it reads and every
//! cause it can report. The tests in this module fail until catalogue and registry agree.

use crate::catalogue::Vars;
use crate::facts::{FactKey, Facts, Probe};
use crate::redact;
use crate::report::Evidence;

pub mod cluster;
pub mod config;
pub mod database;
pub mod migration;
pub mod netpol;
pub mod network;
pub mod probe_pod;
pub mod production;
pub mod runtime;
pub mod workload;

/// What a check concluded, before the catalogue's severity is applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Pass,
    /// Does not hold: becomes `fail` or `warn` per the catalogue's severity.
    Problem,
    /// Holds with a caveat, whatever the severity.
    Warn,
    /// Could not observe.
    Unknown,
    /// Does not apply.
    Skip,
}

/// One check's conclusion.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub outcome: Outcome,
    pub message: String,
    pub evidence: Vec<Evidence>,
    /// A cause id from the catalogue entry's `[causes.*]`, selecting the specific fix.
    pub cause: Option<&'static str>,
    /// Template values this finding knows (the failing pod, its container, …).
    pub vars: Vars,
    /// A generated fix where it is mechanical: a strategic-merge patch for the workload.
    pub patch: Option<Box<serde_json::Value>>,
}

impl Finding {
    fn new(outcome: Outcome, cause: Option<&'static str>, message: impl Into<String>) -> Self {
        Self {
            outcome,
            message: message.into(),
            evidence: Vec::new(),
            cause,
            vars: Vars::default(),
            patch: None,
        }
    }

    pub fn pass(message: impl Into<String>) -> Self {
        Self::new(Outcome::Pass, None, message)
    }

    pub fn problem(cause: &'static str, message: impl Into<String>) -> Self {
        Self::new(Outcome::Problem, Some(cause), message)
    }

    pub fn warn(cause: &'static str, message: impl Into<String>) -> Self {
        Self::new(Outcome::Warn, Some(cause), message)
    }

    pub fn unknown(cause: Option<&'static str>, message: impl Into<String>) -> Self {
        Self::new(Outcome::Unknown, cause, message)
    }

    pub fn skip(message: impl Into<String>) -> Self {
        Self::new(Outcome::Skip, None, message)
    }

    pub fn with(mut self, evidence: Evidence) -> Self {
        self.evidence.push(evidence);
        self
    }

    pub fn with_all(mut self, evidence: impl IntoIterator<Item = Evidence>) -> Self {
        self.evidence.extend(evidence);
        self
    }

    pub fn var(mut self, key: &str, value: impl Into<String>) -> Self {
        self.vars.set(key, value);
        self
    }
}

/// A check implementation.
pub struct CheckImpl {
    pub id: &'static str,
    /// The facts it reads: it runs once all of them are in.
    pub needs: &'static [FactKey],
    /// Every cause id it can report (each has a `[causes.*]` entry in the catalogue).
    pub causes: &'static [&'static str],
    pub run: fn(&Facts) -> Finding,
}

/// Every implemented check. Order does not matter here: the catalogue decides.
pub static REGISTRY: &[CheckImpl] = &[
    cluster::API,
    cluster::NAMESPACE,
    cluster::ACCESS,
    workload::FOUND,
    workload::FLAVOR,
    workload::ROLLOUT,
    workload::PODS,
    config::ENVIRONMENT,
    config::MOUNTS,
    config::REFS,
    config::ENV_EXPANSION,
    config::APPSETTINGS,
    config::DEAD_KEYS,
    config::PROVIDER,
    config::CONNECTION_STRING,
    config::PROBES,
    config::SIGNING_KEY,
    network::SERVICE,
    network::DNS,
    network::TCP,
    netpol::POLICY,
    database::LOGIN,
    database::TABLES,
    database::MIGRATIONS,
    database::PRIVILEGES,
    migration::STEP,
    migration::STATUS,
    runtime::SQLITE_FILE,
    production::REPLICAS,
    production::LOCKING,
    production::RESOURCES,
    production::DB_TLS,
    production::POOL,
    production::INLINE_SECRETS,
    runtime::LOGS,
    runtime::HEALTH,
    production::DB_STORAGE,
];

/// The checks that test the database the configuration points at, in effect or not.
const INTENDED_DATABASE: &[&str] = &[
    "network.service",
    "network.dns",
    "network.tcp",
    "database.login",
    "database.tables",
    "database.migrations",
    "database.privileges",
    "production.pool",
];

/// Runs one check. The network and database checks test the PostgreSQL the configuration
/// points at even when Elsa does not use it yet (a wrong provider, a version that decides
/// otherwise): each such finding says so plainly, so that its status is never read as "Elsa is
/// fine" (DESIGN.md §3: one problem must not hide the next).
pub fn run(imp: &CheckImpl, facts: &Facts) -> Finding {
    let finding = (imp.run)(facts);
    if !INTENDED_DATABASE.contains(&imp.id) || finding.outcome == Outcome::Skip {
        return finding;
    }
    match facts.effective().ok().and_then(|v| v.not_in_effect()) {
        Some(why) => {
            let mut f = finding.with(Evidence::new("Elsa and this database", why.clone()));
            f.message = format!("{} (Elsa does not use this database yet: {why})", f.message);
            f
        }
        None => finding,
    }
}

pub fn find(id: &str) -> Option<&'static CheckImpl> {
    REGISTRY.iter().find(|c| c.id == id)
}

/// The finding for a fact that could not be observed: `unknown`, naming what was missing.
pub fn not_observed<T>(probe: &Probe<T>, what: &str) -> Finding {
    match probe {
        Probe::Forbidden { verb, resource } => Finding::unknown(
            None,
            format!("cannot see {what}: this user may not {verb} {resource}"),
        )
        .with(Evidence::new(
            "missing permission",
            format!("{verb} {resource}"),
        )),
        Probe::NotAttempted(why) => Finding::unknown(None, format!("{what} not observed: {why}")),
        other => Finding::unknown(
            None,
            format!(
                "{what} not observed: {}",
                other.why_not().unwrap_or_default()
            ),
        ),
    }
}

/// What the API server answers for pods/log, pods/exec and pods/portforward when it cannot
/// reach the node's kubelet (port 10250): no address for the node, or the dial failing (a
/// private control plane without konnectivity, a firewall).
const KUBELET_UNREACHABLE: &[&str] = &[
    "no preferred addresses found",
    "error dialing backend",
    ":10250",
];

/// The API server's reason, when `probe` failed because the API server cannot reach the
/// node's kubelet.
pub fn kubelet_unreachable<T>(probe: &Probe<T>) -> Option<&str> {
    match probe {
        Probe::Failed(e) if KUBELET_UNREACHABLE.iter().any(|s| e.reason.contains(s)) => {
            Some(e.reason.as_str())
        }
        _ => None,
    }
}

/// The finding for a kubelet the API server cannot reach. `runtime.logs` explains it in full;
/// the other checks that go through the kubelet name it and point there, so the run explains
/// it once.
pub fn kubelet_finding(reason: &str, what: &str, explained_here: bool) -> Finding {
    let see = if explained_here {
        ""
    } else {
        " — see runtime.logs"
    };
    Finding::unknown(
        Some("kubelet-unreachable"),
        format!(
            "cannot see {what}: the API server cannot reach the node's kubelet, so logs, exec and port-forward fail (kubectl logs and kubectl exec fail the same way){see}"
        ),
    )
    .with(Evidence::new("API server said", redact::text(reason)).from("HTTP 500"))
}

/// Runs a check on the effective Elsa of the facts ([`crate::model`]), or returns the finding
/// that says why there is none. The Elsa container's name is a template value of every
/// finding made this way.
pub fn with_model(facts: &Facts, f: impl FnOnce(&crate::model::Effective) -> Finding) -> Finding {
    match facts.effective() {
        Ok(v) => {
            let container = v.container.name.clone();
            let mut finding = f(v);
            // A finding about another container (an init container, the database's) names it.
            finding
                .vars
                .0
                .entry("container".to_owned())
                .or_insert(container);
            finding
        }
        Err(crate::model::Unavailable::Skip(m)) => Finding::skip(m.clone()),
        Err(crate::model::Unavailable::Unknown(m)) => Finding::unknown(None, m.clone()),
    }
}

/// Why the database's own workload cannot start, from its configuration: a required
/// ConfigMap/Secret or key its containers reference is missing (`config.refs` reports it). The
/// database and network findings that follow name it, since it explains them.
pub fn database_cannot_start(facts: &Facts) -> Option<String> {
    let v = facts.effective().ok()?;
    let db = v.database.as_ref()?;
    let missing = |kind: crate::domain::env_expand::SourceKind, name: &str| {
        let state = match kind {
            crate::domain::env_expand::SourceKind::ConfigMap => {
                facts.config_maps.get(name).map(|p| p.clone().map(|_| ()))
            }
            crate::domain::env_expand::SourceKind::Secret => {
                facts.secrets.get(name).map(|p| p.clone().map(|_| ()))
            }
        };
        matches!(state, Some(Probe::Observed(()) | Probe::Absent))
    };
    db.containers.iter().find_map(|c| {
        let p = c
            .expansion
            .problems
            .iter()
            .find(|p| !p.optional && missing(p.kind, &p.name))?;
        Some(format!(
            "the database workload {} cannot start: {} {}: {} — see config.refs",
            db.workload().reference(),
            c.label(),
            p.origin,
            redact::text(&p.why)
        ))
    })
}

/// A failing database or network finding, with the reason the database pod cannot start
/// when there is one ([`database_cannot_start`]).
pub fn blame_database(facts: &Facts, finding: Finding) -> Finding {
    if !matches!(finding.outcome, Outcome::Problem | Outcome::Unknown) {
        return finding;
    }
    match database_cannot_start(facts) {
        Some(why) => {
            let mut f = finding.with(Evidence::new("database workload", &why).from("config.refs"));
            f.message = format!("{}; {why}", f.message);
            f
        }
        None => finding,
    }
}

/// A version-dependent judgement over what is known of the version (DESIGN.md §3 "Versions").
/// With the version known, `judge` runs once. Otherwise it runs for every candidate (flavour,
/// release) pair and the check concludes where they agree: one answer for all is that answer,
/// its evidence naming the candidates; the same status with different causes is `mixed` (a
/// cause of the check's own that says "whatever the version"), when the check has one; any
/// other disagreement is `unknown`, listing which versions give which answer and how to learn
/// the version. With no candidates (a custom build, nothing known) `judge` runs with `None`.
pub fn over_candidates(
    v: &crate::model::Effective,
    mixed: Option<&'static str>,
    judge: impl Fn(crate::domain::elsa::Flavor, Option<crate::domain::elsa::ElsaVersion>) -> Finding,
) -> Finding {
    use crate::domain::versions::describe;
    let Some(id) = &v.identity else {
        return Finding::skip("no Elsa image identified — see workload.flavor");
    };
    if v.candidates.len() <= 1 {
        let f = judge(id.flavor, id.version);
        return if v.version_stated() {
            f.with(Evidence::new("version", v.version_evidence()).from("--elsa-version"))
        } else {
            f
        };
    }
    let mut groups: Vec<(Outcome, Option<&'static str>, Vec<_>, Finding)> = Vec::new();
    for (flavor, version) in &v.candidates {
        let f = judge(*flavor, Some(*version));
        match groups
            .iter_mut()
            .find(|(o, c, _, _)| *o == f.outcome && *c == f.cause)
        {
            Some(g) => g.2.push((*flavor, *version)),
            None => groups.push((f.outcome, f.cause, vec![(*flavor, *version)], f)),
        }
    }
    let all = describe(&v.candidates);
    let known = Evidence::new(
        "version",
        format!(
            "not known — candidates {all} (from {})",
            v.version_evidence()
        ),
    );
    let learn = "state it with --elsa-version X.Y.Z, pin the image to a release tag, or let elsadoctor exec into a running pod (needs get pods/exec) to read it from the image";
    if groups.len() == 1 {
        let (_, _, _, mut f) = groups.remove(0);
        f.message = format!("{} (true of every candidate version: {all})", f.message);
        return f.with(known);
    }
    let per_group: Vec<Evidence> = groups
        .iter()
        .map(|(_, _, pairs, f)| Evidence::new(describe(pairs), f.message.clone()))
        .collect();
    let same_status = groups.iter().all(|(o, _, _, _)| *o == groups[0].0);
    match (same_status, mixed) {
        (true, None) => {
            let (_, _, _, mut f) = groups.remove(0);
            f.message = format!(
                "{} — every other candidate version ({all}) gives the same verdict for its own reason",
                f.message
            );
            f.with(known).with_all(per_group)
        }
        (true, Some(cause)) => {
            let outcome = groups[0].0;
            let mut f = Finding::problem(
                cause,
                format!(
                    "every candidate version ({all}) gives the same verdict, for its own reason"
                ),
            );
            f.outcome = outcome;
            f.with(known).with_all(per_group)
        }
        _ => Finding::unknown(
            None,
            format!("the answer depends on the Elsa version, which is not known ({all}): {learn}"),
        )
        .with(known)
        .with_all(per_group),
    }
}

#[cfg(test)]
pub(crate) mod test_support {
    //! Builders for facts in unit tests.
    use crate::facts::{Facts, NamespaceSource, Probe, Scope};

    pub fn scope() -> Scope {
        Scope {
            context: Some("kind-elsa".into()),
            server: "https://127.0.0.1:6443".into(),
            namespace: "elsa".into(),
            namespace_source: NamespaceSource::Flag,
            workload_hint: None,
            simulated: false,
            scenario: None,
            stated: None,
            replay: None,
        }
    }

    /// Facts with nothing observed.
    pub fn empty() -> Facts {
        Facts::new(scope(), Vec::new())
    }

    /// Facts with the given deployments (JSON) observed and no statefulsets.
    pub fn with_deployments(deployments: serde_json::Value) -> Facts {
        let mut f = empty();
        f.deployments = Probe::Observed(serde_json::from_value(deployments).expect("deployments"));
        f.statefulsets = Probe::Observed(Vec::new());
        f
    }

    /// Elsa's and the database's Deployments (JSON), the `postgres` Service selecting the
    /// latter, and nothing else observed from the cluster: no ConfigMap, Secret, database pod
    /// or session (as in lint).
    pub fn with_elsa_and_postgres(elsa: serde_json::Value, pg: serde_json::Value) -> Facts {
        let mut f = with_deployments(serde_json::json!([elsa, pg]));
        f.services = Probe::Observed(
            serde_json::from_value(serde_json::json!([{
                "metadata": {"name": "postgres", "namespace": "elsa"},
                "spec": {"selector": {"app": "postgres"}, "ports": [{"port": 5432}]}
            }]))
            .expect("services"),
        );
        f.config_maps = Default::default();
        f.secrets = Default::default();
        f.db_pods = Probe::NotAttempted("lint".into());
        f
    }

    /// A Deployment as the API returns it.
    pub fn deployment(name: &str, image: &str, replicas: i32) -> serde_json::Value {
        serde_json::json!({
            "metadata": {"name": name, "namespace": "elsa", "labels": {"app": name}, "generation": 1},
            "spec": {
                "replicas": replicas,
                "selector": {"matchLabels": {"app": name}},
                "template": {
                    "metadata": {"labels": {"app": name}},
                    "spec": {"containers": [{"name": name, "image": image}]}
                }
            },
            "status": {"observedGeneration": 1, "replicas": replicas, "readyReplicas": replicas,
                       "availableReplicas": replicas, "updatedReplicas": replicas,
                       "conditions": [{"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable"},
                                      {"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable"}]}
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalogue::Catalogue;
    use std::collections::BTreeSet;

    /// A check that reads the model runs only once every fact the model reads is in, so live
    /// and replayed runs judge the same model (the version from the container's contents
    /// arrives with `PodFiles`, after the workloads). Only these read no model.
    #[test]
    fn every_check_that_reads_the_model_waits_for_its_inputs() {
        const MODEL_FREE: &[&str] = &[
            "cluster.api",
            "cluster.namespace",
            "cluster.access",
            "workload.found",
            "workload.flavor",
            "workload.rollout",
            "workload.pods",
            "runtime.logs",
        ];
        for imp in REGISTRY.iter().filter(|c| !MODEL_FREE.contains(&c.id)) {
            for key in crate::model::INPUTS {
                assert!(
                    imp.needs.contains(key),
                    "{} reads the model but does not wait for {key:?}",
                    imp.id
                );
            }
        }
    }

    #[test]
    fn every_catalogue_entry_has_an_implementation_and_the_reverse() {
        let cat = Catalogue::embedded().expect("catalogue");
        let in_catalogue: BTreeSet<&str> = cat.ids().collect();
        let implemented: BTreeSet<&str> = REGISTRY.iter().map(|c| c.id).collect();
        assert_eq!(in_catalogue, implemented);
        assert_eq!(REGISTRY.len(), implemented.len(), "duplicate registry id");
    }

    #[test]
    fn causes_agree_between_catalogue_and_implementation() {
        let cat = Catalogue::embedded().expect("catalogue");
        for imp in REGISTRY {
            let spec = cat.get(imp.id).expect("entry");
            let declared: BTreeSet<&str> = imp.causes.iter().copied().collect();
            assert_eq!(
                crate::catalogue::all_causes(spec),
                declared,
                "{}: causes in the catalogue and in the implementation differ",
                imp.id
            );
        }
    }
}

#[cfg(test)]
mod kubelet_tests {
    use super::*;

    #[test]
    fn an_unreachable_kubelet_is_recognised_in_what_real_api_servers_say() {
        for reason in [
            "HTTP 500: no preferred addresses found; known addresses: [] (InternalError)",
            "error dialing backend: dial tcp 10.0.3.17:10250: i/o timeout (InternalError)",
        ] {
            let p: Probe<()> = Probe::failed(Some(500), reason);
            assert_eq!(kubelet_unreachable(&p), Some(reason));
            let f = kubelet_finding(reason, "the logs", false);
            assert_eq!(f.cause, Some("kubelet-unreachable"));
            assert!(f.message.contains("see runtime.logs"), "{}", f.message);
        }
        let other: Probe<()> = Probe::failed(Some(500), "etcdserver: request timed out");
        assert_eq!(kubelet_unreachable(&other), None);
        assert!(
            kubelet_finding("x", "the logs", true)
                .message
                .ends_with("the same way)")
        );
    }
}
