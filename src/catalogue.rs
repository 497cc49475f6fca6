//! The check catalogue: one TOML file per check under `checks/`, embedded in the binary (as the
//! JSON `build.rs` converts them to, which loads several times faster than the TOML).
//!
//! The catalogue is data, not code: ids, titles, order, hard prerequisites, the permissions a
//! check needs, and the documented fix (summary, steps, command templates, docs link), optionally
//! specialised per *cause* a check can report. `checks/README.md` is the schema's prose; this
//! module parses and validates it, and fills command templates with a run's real names.
//!
//! How to add a check: write `checks/NNN-<id>.toml` (NNN sets the run order), implement the pure
//! function in `src/checks/`, register it in `checks::REGISTRY`, and list every cause it can emit.
//! `cargo test` fails until the catalogue entry, the implementation and the causes agree.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::Deserialize;

/// Template variables a command may use. A run fills what it knows; an unknown value stays as
/// `<name>` so the command still reads as an instruction. Adding a variable means adding it here.
pub const TEMPLATE_VARS: &[&str] = &[
    "context",
    "namespace",
    "workload",
    "workload_kind",
    "pod",
    "container",
    "image",
    "node",
    "service",
    "configmap",
    "secret",
    "db_host",
    "db_port",
    "database",
    "db_user",
    "db_namespace",
    "fqdn",
    "job",
];

/// `checks/*.toml` as one JSON document, `[[file name, entry], …]` in name order (which is run
/// order), written by `build.rs`.
static EMBEDDED: &str = include_str!(concat!(env!("OUT_DIR"), "/catalogue.json"));

/// [`Catalogue::shared`]'s catalogue.
static SHARED: std::sync::OnceLock<Result<Catalogue, CatalogueError>> = std::sync::OnceLock::new();

/// The files under `checks/`, in name order: the source [`EMBEDDED`] was made from, for the
/// tests that hold the two equal and the files to the directory.
#[cfg(test)]
static FILES: &[(&str, &str)] = &[
    (
        "001-cluster.api.toml",
        include_str!("../checks/001-cluster.api.toml"),
    ),
    (
        "002-cluster.namespace.toml",
        include_str!("../checks/002-cluster.namespace.toml"),
    ),
    (
        "003-cluster.access.toml",
        include_str!("../checks/003-cluster.access.toml"),
    ),
    (
        "010-workload.found.toml",
        include_str!("../checks/010-workload.found.toml"),
    ),
    (
        "011-workload.flavor.toml",
        include_str!("../checks/011-workload.flavor.toml"),
    ),
    (
        "012-workload.rollout.toml",
        include_str!("../checks/012-workload.rollout.toml"),
    ),
    (
        "013-workload.pods.toml",
        include_str!("../checks/013-workload.pods.toml"),
    ),
    (
        "020-config.environment.toml",
        include_str!("../checks/020-config.environment.toml"),
    ),
    (
        "021-config.mounts.toml",
        include_str!("../checks/021-config.mounts.toml"),
    ),
    (
        "022-config.refs.toml",
        include_str!("../checks/022-config.refs.toml"),
    ),
    (
        "023-config.env-expansion.toml",
        include_str!("../checks/023-config.env-expansion.toml"),
    ),
    (
        "024-config.appsettings.toml",
        include_str!("../checks/024-config.appsettings.toml"),
    ),
    (
        "025-config.dead-keys.toml",
        include_str!("../checks/025-config.dead-keys.toml"),
    ),
    (
        "026-config.provider.toml",
        include_str!("../checks/026-config.provider.toml"),
    ),
    (
        "027-config.connection-string.toml",
        include_str!("../checks/027-config.connection-string.toml"),
    ),
    (
        "028-config.probes.toml",
        include_str!("../checks/028-config.probes.toml"),
    ),
    (
        "029-config.signing-key.toml",
        include_str!("../checks/029-config.signing-key.toml"),
    ),
    (
        "030-network.service.toml",
        include_str!("../checks/030-network.service.toml"),
    ),
    (
        "031-network.dns.toml",
        include_str!("../checks/031-network.dns.toml"),
    ),
    (
        "032-network.tcp.toml",
        include_str!("../checks/032-network.tcp.toml"),
    ),
    (
        "033-network.policy.toml",
        include_str!("../checks/033-network.policy.toml"),
    ),
    (
        "040-database.login.toml",
        include_str!("../checks/040-database.login.toml"),
    ),
    (
        "041-database.tables.toml",
        include_str!("../checks/041-database.tables.toml"),
    ),
    (
        "042-database.migrations.toml",
        include_str!("../checks/042-database.migrations.toml"),
    ),
    (
        "043-database.privileges.toml",
        include_str!("../checks/043-database.privileges.toml"),
    ),
    (
        "045-migration.step.toml",
        include_str!("../checks/045-migration.step.toml"),
    ),
    (
        "046-migration.status.toml",
        include_str!("../checks/046-migration.status.toml"),
    ),
    (
        "050-runtime.sqlite-file.toml",
        include_str!("../checks/050-runtime.sqlite-file.toml"),
    ),
    (
        "051-runtime.logs.toml",
        include_str!("../checks/051-runtime.logs.toml"),
    ),
    (
        "052-runtime.health.toml",
        include_str!("../checks/052-runtime.health.toml"),
    ),
    (
        "060-production.replicas.toml",
        include_str!("../checks/060-production.replicas.toml"),
    ),
    (
        "061-production.locking.toml",
        include_str!("../checks/061-production.locking.toml"),
    ),
    (
        "062-production.resources.toml",
        include_str!("../checks/062-production.resources.toml"),
    ),
    (
        "063-production.db-tls.toml",
        include_str!("../checks/063-production.db-tls.toml"),
    ),
    (
        "064-production.pool.toml",
        include_str!("../checks/064-production.pool.toml"),
    ),
    (
        "065-production.inline-secrets.toml",
        include_str!("../checks/065-production.inline-secrets.toml"),
    ),
    (
        "066-production.db-storage.toml",
        include_str!("../checks/066-production.db-storage.toml"),
    ),
];

/// What "does not hold" means for a check: a failure or a warning.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Fail,
    Warn,
}

/// A fix as written in the catalogue (templates not yet filled).
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct FixTemplate {
    /// One sentence: what to do.
    pub summary: String,
    /// Ordered steps, Markdown allowed.
    #[serde(default)]
    pub steps: Vec<String>,
    /// Shell commands with `{variable}` templates.
    #[serde(default)]
    pub commands: Vec<String>,
}

/// One catalogue entry.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckSpec {
    pub id: String,
    pub title: String,
    pub category: String,
    #[serde(default)]
    pub depends_on: Vec<String>,
    #[serde(default)]
    pub needs: Vec<String>,
    pub severity: Severity,
    pub why: String,
    pub docs: String,
    /// The general fix, used when a finding names no cause.
    pub fix: FixTemplate,
    /// Fixes for specific causes (`workload.pods` → `crash-loop`, `image-pull`, …).
    #[serde(default)]
    pub causes: BTreeMap<String, FixTemplate>,
    /// The file it came from (set by the loader).
    #[serde(skip)]
    pub file: String,
}

impl CheckSpec {
    /// The fix for a cause, falling back to the general fix.
    pub fn fix_for(&self, cause: Option<&str>) -> &FixTemplate {
        cause.and_then(|c| self.causes.get(c)).unwrap_or(&self.fix)
    }
}

/// The whole catalogue, in run order.
#[derive(Debug, Clone)]
pub struct Catalogue {
    pub checks: Vec<CheckSpec>,
}

/// Why the catalogue is unusable. Only reachable through a broken build, but reported, not
/// panicked on, so tests can name the problem.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum CatalogueError {
    #[error("{file}: {reason}")]
    Parse { file: String, reason: String },
    #[error("{file}: file name says id {expected:?} but the entry says {found:?}")]
    IdMismatch {
        file: String,
        expected: String,
        found: String,
    },
    #[error("duplicate check id {0:?}")]
    Duplicate(String),
    #[error("{file}: file names must start with a three-digit order and be in order")]
    Order { file: String },
    #[error("{id}: depends on {dep:?}, which is not an earlier check")]
    Dependency { id: String, dep: String },
    #[error("{id}: template variable {{{var}}} is not one of catalogue::TEMPLATE_VARS")]
    UnknownVar { id: String, var: String },
    #[error(
        "{id}: need {need:?} is not `<verb> <resource>` with a resource catalogue::api_group knows"
    )]
    UnknownNeed { id: String, need: String },
    #[error("{id}: category {category:?} does not match the id's prefix")]
    Category { id: String, category: String },
}

impl Catalogue {
    /// The check `id` and every check that depends on it, directly or through others, in run
    /// order: what the TUI's `R` re-runs. Unknown id: an empty catalogue. Prerequisites outside
    /// the subset count as holding in the runner.
    pub fn with_dependents(&self, id: &str) -> Catalogue {
        let mut wanted: BTreeSet<&str> = BTreeSet::new();
        // Dependencies point at earlier checks, so one pass in order closes the set.
        for c in &self.checks {
            if c.id == id || c.depends_on.iter().any(|d| wanted.contains(d.as_str())) {
                wanted.insert(c.id.as_str());
            }
        }
        Catalogue {
            checks: self
                .checks
                .iter()
                .filter(|c| wanted.contains(c.id.as_str()))
                .cloned()
                .collect(),
        }
    }

    /// The embedded catalogue: `checks/*.toml` as the JSON `build.rs` made of them, validated
    /// as [`Catalogue::parse`] validates the TOML.
    pub fn embedded() -> Result<Self, CatalogueError> {
        let entries: Vec<(String, CheckSpec)> =
            serde_json::from_str(EMBEDDED).map_err(|e| CatalogueError::Parse {
                file: "checks/*.toml, as embedded".to_owned(),
                reason: e.to_string(),
            })?;
        Self::validate(entries.into_iter().map(|(file, spec)| (file, Ok(spec))))
    }

    /// The embedded catalogue, loaded once per process and kept for its life (a run only reads
    /// it). [`Catalogue::prefetch`] starts the loading early.
    pub fn shared() -> Result<&'static Catalogue, CatalogueError> {
        SHARED
            .get_or_init(Catalogue::embedded)
            .as_ref()
            .map_err(Clone::clone)
    }

    /// Starts loading [`Catalogue::shared`] on its own thread, so that it overlaps parsing the
    /// command line and starting the runtime instead of following them.
    pub fn prefetch() {
        let _ = std::thread::Builder::new()
            .name("catalogue".to_owned())
            .spawn(|| {
                let _ = Catalogue::shared();
            });
    }

    /// Parses and validates catalogue files given as (file name, content), in name order.
    pub fn parse<'a>(
        files: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<Self, CatalogueError> {
        Self::validate(files.into_iter().map(|(file, text)| {
            let spec = toml::from_str(text).map_err(|e| e.to_string().replace('\n', " "));
            (file.to_owned(), spec)
        }))
    }

    /// Validates parsed entries, given as (file name, entry or why it did not parse), in name
    /// order.
    fn validate(
        entries: impl IntoIterator<Item = (String, Result<CheckSpec, String>)>,
    ) -> Result<Self, CatalogueError> {
        let mut checks: Vec<CheckSpec> = Vec::new();
        let mut last_order: Option<(u32, String)> = None;
        for (file, spec) in entries {
            let file = file.as_str();
            let (order, expected_id) = split_file_name(file).ok_or(CatalogueError::Order {
                file: file.to_owned(),
            })?;
            if let Some((prev, prev_name)) = &last_order
                && (order <= *prev || file <= prev_name.as_str())
            {
                return Err(CatalogueError::Order {
                    file: file.to_owned(),
                });
            }
            last_order = Some((order, file.to_owned()));
            let mut spec = spec.map_err(|reason| CatalogueError::Parse {
                file: file.to_owned(),
                reason,
            })?;
            spec.file = file.to_owned();
            if spec.id != expected_id {
                return Err(CatalogueError::IdMismatch {
                    file: file.to_owned(),
                    expected: expected_id.to_owned(),
                    found: spec.id,
                });
            }
            if checks.iter().any(|c| c.id == spec.id) {
                return Err(CatalogueError::Duplicate(spec.id));
            }
            if spec.id.split('.').next() != Some(spec.category.as_str()) {
                return Err(CatalogueError::Category {
                    id: spec.id,
                    category: spec.category,
                });
            }
            // A dependency must be an earlier entry: this makes cycles impossible by construction
            // and keeps `ls checks/` a valid run order.
            for dep in &spec.depends_on {
                if !checks.iter().any(|c| &c.id == dep) {
                    return Err(CatalogueError::Dependency {
                        id: spec.id.clone(),
                        dep: dep.clone(),
                    });
                }
            }
            for fix in std::iter::once(&spec.fix).chain(spec.causes.values()) {
                for cmd in &fix.commands {
                    for var in template_vars(cmd) {
                        if !TEMPLATE_VARS.contains(&var) {
                            return Err(CatalogueError::UnknownVar {
                                id: spec.id.clone(),
                                var: var.to_owned(),
                            });
                        }
                    }
                }
            }
            for need in &spec.needs {
                if parse_need(need).is_none() && !need.starts_with("get /") {
                    return Err(CatalogueError::UnknownNeed {
                        id: spec.id.clone(),
                        need: need.clone(),
                    });
                }
            }
            checks.push(spec);
        }
        Ok(Self { checks })
    }

    pub fn get(&self, id: &str) -> Option<&CheckSpec> {
        self.checks.iter().find(|c| c.id == id)
    }

    pub fn ids(&self) -> impl Iterator<Item = &str> {
        self.checks.iter().map(|c| c.id.as_str())
    }

    /// Ids close to `wanted`, best first, for "did you mean" messages.
    pub fn near(&self, wanted: &str) -> Vec<&str> {
        let mut scored: Vec<(f64, &str)> = self
            .ids()
            .map(|id| {
                let tail = id.split('.').nth(1).unwrap_or(id);
                let score =
                    strsim::jaro_winkler(wanted, id).max(strsim::jaro_winkler(wanted, tail));
                (score, id)
            })
            .filter(|(s, _)| *s > 0.75)
            .collect();
        scored.sort_by(|a, b| b.0.total_cmp(&a.0));
        scored.into_iter().take(3).map(|(_, id)| id).collect()
    }
}

/// The API group of a resource the checks read (`pods` → core, `deployments` → `apps`).
pub fn api_group(resource: &str) -> Option<&'static str> {
    let base = resource.split('/').next().unwrap_or(resource);
    Some(match base {
        "pods"
        | "events"
        | "services"
        | "endpoints"
        | "configmaps"
        | "secrets"
        | "namespaces"
        | "persistentvolumeclaims" => "",
        "deployments" | "statefulsets" | "replicasets" => "apps",
        "endpointslices" => "discovery.k8s.io",
        "networkpolicies" => "networking.k8s.io",
        "horizontalpodautoscalers" => "autoscaling",
        "jobs" | "cronjobs" => "batch",
        "selfsubjectrulesreviews" => "authorization.k8s.io",
        _ => return None,
    })
}

/// `"list pods"` → `("list", "", "pods")`. Non-resource URLs (`get /version`) give `None`.
pub fn parse_need(need: &str) -> Option<(&str, &'static str, &str)> {
    let (verb, resource) = need.trim().split_once(' ')?;
    let resource = resource.trim();
    if resource.starts_with('/') {
        return None;
    }
    Some((verb, api_group(resource)?, resource))
}

/// `"013-workload.pods.toml"` → `(13, "workload.pods")`.
fn split_file_name(file: &str) -> Option<(u32, &str)> {
    let stem = file.strip_suffix(".toml")?;
    let (num, id) = stem.split_once('-')?;
    if num.len() != 3 || !num.bytes().all(|b| b.is_ascii_digit()) || id.is_empty() {
        return None;
    }
    Some((num.parse().ok()?, id))
}

/// The `{name}` variables a template uses (`{{` and `}}` are literal braces).
pub fn template_vars(template: &str) -> Vec<&str> {
    tokens(template)
        .into_iter()
        .filter_map(|t| match t {
            Token::Var(v) => Some(v),
            Token::Text(_) => None,
        })
        .collect()
}

enum Token<'a> {
    Text(&'a str),
    Var(&'a str),
}

/// Splits a template into literal text and `{variables}`; `{{`/`}}` become one literal brace.
fn tokens(template: &str) -> Vec<Token<'_>> {
    let mut out = Vec::new();
    let mut rest = template;
    while let Some(pos) = rest.find(['{', '}']) {
        if pos > 0 {
            out.push(Token::Text(&rest[..pos]));
        }
        let tail = &rest[pos..];
        if tail.starts_with("{{") || tail.starts_with("}}") {
            out.push(Token::Text(&tail[..1]));
            rest = &tail[2..];
        } else if let Some(stripped) = tail.strip_prefix('{')
            && let Some(end) = stripped.find('}')
        {
            out.push(Token::Var(&stripped[..end]));
            rest = &stripped[end + 1..];
        } else {
            out.push(Token::Text(&tail[..1]));
            rest = &tail[1..];
        }
    }
    if !rest.is_empty() {
        out.push(Token::Text(rest));
    }
    out
}

/// Values for template variables, known for this run and this finding.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Vars(pub BTreeMap<String, String>);

impl Vars {
    pub fn set(&mut self, key: &str, value: impl Into<String>) {
        self.0.insert(key.to_owned(), value.into());
    }

    /// This set overlaid with `more` (more wins).
    pub fn overlay(&self, more: &Vars) -> Vars {
        let mut out = self.clone();
        out.0
            .extend(more.0.iter().map(|(k, v)| (k.clone(), v.clone())));
        out
    }

    /// Fills a template; unknown values become `<name>` so the command still teaches.
    pub fn fill(&self, template: &str) -> String {
        let mut out = String::with_capacity(template.len());
        for t in tokens(template) {
            match t {
                Token::Text(s) => out.push_str(s),
                Token::Var(name) => match self.0.get(name) {
                    Some(v) => out.push_str(v),
                    None => {
                        out.push('<');
                        out.push_str(name);
                        out.push('>');
                    }
                },
            }
        }
        out
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Severity::Fail => "fail",
            Severity::Warn => "warn",
        })
    }
}

/// Every cause id used anywhere in the catalogue, for the cross-check with implementations.
pub fn all_causes(spec: &CheckSpec) -> BTreeSet<&str> {
    spec.causes.keys().map(String::as_str).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn with_dependents_is_the_check_and_everything_downstream() {
        let cat = Catalogue::embedded().expect("catalogue");
        let sub = cat.with_dependents("workload.found");
        let ids: Vec<&str> = sub.ids().collect();
        assert_eq!(ids.first(), Some(&"workload.found"));
        assert!(ids.contains(&"workload.pods"), "{ids:?}");
        assert!(!ids.contains(&"cluster.api"), "{ids:?}");
        // Closed: every prerequisite of a member is either in the set or upstream of the root.
        for c in &sub.checks {
            if c.id != "workload.found" {
                assert!(
                    c.depends_on.iter().any(|d| ids.contains(&d.as_str())),
                    "{}",
                    c.id
                );
            }
        }
        assert!(cat.with_dependents("no.such").checks.is_empty());
    }

    const OK: &str = r#"
id = "cluster.api"
title = "t"
category = "cluster"
severity = "fail"
why = "w"
docs = "https://example.invalid"
[fix]
summary = "s"
commands = ["kubectl --context {context} version"]
"#;

    #[test]
    fn fills_known_and_marks_unknown_variables() {
        let mut v = Vars::default();
        v.set("namespace", "elsa");
        assert_eq!(
            v.fill("kubectl -n {namespace} logs {pod} --previous"),
            "kubectl -n elsa logs <pod> --previous"
        );
        assert_eq!(v.fill("jsonpath={{.x}}"), "jsonpath={.x}");
        assert_eq!(
            v.fill("go-template='{{{{range .data}}}}{{{{end}}}}' -n {namespace}"),
            "go-template='{{range .data}}{{end}}' -n elsa"
        );
    }

    #[test]
    fn finds_template_variables() {
        assert_eq!(
            template_vars("a {namespace} b {{lit}} {pod}"),
            vec!["namespace", "pod"]
        );
    }

    #[test]
    fn embedded_catalogue_is_valid() {
        let cat = Catalogue::embedded().expect("embedded catalogue");
        assert!(cat.get("cluster.api").is_some());
        let ids: Vec<_> = cat.ids().collect();
        let mut sorted = cat
            .checks
            .iter()
            .map(|c| c.file.clone())
            .collect::<Vec<_>>();
        sorted.sort();
        assert_eq!(
            sorted,
            cat.checks
                .iter()
                .map(|c| c.file.clone())
                .collect::<Vec<_>>()
        );
        assert_eq!(ids.len(), FILES.len());
    }

    #[test]
    fn embedded_json_is_the_toml_files() {
        // build.rs converts the files; what it embeds must read back as the files do.
        let from_toml = Catalogue::parse(FILES.iter().copied()).expect("the TOML files parse");
        let embedded = Catalogue::embedded().expect("the embedded catalogue loads");
        assert_eq!(
            format!("{:?}", embedded.checks),
            format!("{:?}", from_toml.checks)
        );
    }

    #[test]
    fn shared_is_loaded_once_and_is_the_embedded_catalogue() {
        Catalogue::prefetch();
        let first = Catalogue::shared().expect("shared");
        let again = Catalogue::shared().expect("shared");
        assert!(std::ptr::eq(first, again));
        let embedded = Catalogue::embedded().expect("embedded");
        assert_eq!(
            format!("{:?}", first.checks),
            format!("{:?}", embedded.checks)
        );
    }

    #[test]
    fn embedded_list_matches_the_checks_directory() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("checks");
        let mut on_disk: Vec<String> = std::fs::read_dir(&dir)
            .expect("checks/ exists")
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".toml"))
            .collect();
        on_disk.sort();
        let embedded: Vec<String> = FILES.iter().map(|(n, _)| (*n).to_owned()).collect();
        assert_eq!(
            on_disk, embedded,
            "checks/*.toml and catalogue::FILES differ"
        );
    }

    #[test]
    fn rejects_duplicate_ids() {
        let err = Catalogue::parse([("001-cluster.api.toml", OK), ("002-cluster.api.toml", OK)])
            .expect_err("duplicate");
        // The second file's name says cluster.api too, so the duplicate is what fails.
        assert_eq!(err, CatalogueError::Duplicate("cluster.api".into()));
    }

    #[test]
    fn rejects_unknown_template_variable() {
        let bad = OK.replace("{context}", "{contxt}");
        let err = Catalogue::parse([("001-cluster.api.toml", bad.as_str())]).expect_err("var");
        assert!(matches!(err, CatalogueError::UnknownVar { var, .. } if var == "contxt"));
    }

    #[test]
    fn rejects_forward_or_cyclic_dependency() {
        let a = OK.replace("severity", "depends_on = [\"cluster.api\"]\nseverity");
        let err = Catalogue::parse([("001-cluster.api.toml", a.as_str())]).expect_err("cycle");
        assert!(matches!(err, CatalogueError::Dependency { .. }));
    }

    #[test]
    fn rejects_out_of_order_files_and_id_mismatch() {
        let ns = OK
            .replace("cluster.api", "cluster.namespace")
            .replace("{context}", "{namespace}");
        let err = Catalogue::parse([
            ("002-cluster.namespace.toml", ns.as_str()),
            ("001-cluster.api.toml", OK),
        ])
        .expect_err("order");
        assert!(matches!(err, CatalogueError::Order { .. }));
        let err = Catalogue::parse([("001-cluster.ap.toml", OK)]).expect_err("mismatch");
        assert!(matches!(err, CatalogueError::IdMismatch { .. }));
    }

    #[test]
    fn suggests_near_ids() {
        let cat = Catalogue::embedded().expect("catalogue");
        assert_eq!(cat.near("workload.pod").first(), Some(&"workload.pods"));
        assert_eq!(cat.near("pods").first(), Some(&"workload.pods"));
    }
}
