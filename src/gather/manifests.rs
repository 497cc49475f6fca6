//! Facts from manifests instead of a cluster, for `elsadoctor lint -f PATH...`: files,
//! directories (every `*.yaml`/`*.yml`/`*.json` below, in name order), multi-document YAML,
//! `kind: List`, and `-` for standard input (so `kustomize build | elsadoctor lint -f -` works).
//!
//! The objects become the same [`FactUpdate`]s a cluster run sends: Deployments, StatefulSets,
//! the referenced ConfigMaps and Secrets (Secret `data` decoded, `stringData` taken as is, both
//! held as [`Secret`]s), and Services. Pod specs are scrubbed exactly as in a cluster run.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret as K8sSecret, Service};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use serde_json::Value;

use crate::domain::workload::{Workload, referenced_sources};
use crate::facts::{
    BundleNotes, ConfigMapData, Duplicate, FactUpdate, MigrationFacts, PolicyFacts, Probe,
    Rejected, SecretData,
};
use crate::redact;

/// Why the manifests could not be read (exit code 2).
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("cannot read {path}: {cause}")]
    Read { path: String, cause: String },
    #[error("{path}: {cause}")]
    Parse { path: String, cause: String },
    #[error("no manifests found in {0}")]
    Empty(String),
}

/// One parsed object and where it came from.
#[derive(Debug, Clone)]
pub struct Doc {
    pub path: String,
    pub index: usize,
    pub value: Value,
}

/// Reads every path (`-` = stdin) into parsed documents.
pub fn read(paths: &[PathBuf]) -> Result<Vec<Doc>, ManifestError> {
    let mut files: Vec<(String, String)> = Vec::new();
    for p in paths {
        if p.as_os_str() == "-" {
            let mut text = String::new();
            std::io::stdin()
                .read_to_string(&mut text)
                .map_err(|e| ManifestError::Read {
                    path: "(stdin)".into(),
                    cause: e.to_string(),
                })?;
            files.push(("(stdin)".into(), text));
        } else if p.is_dir() {
            let mut found = Vec::new();
            walk(p, &mut found)?;
            found.sort();
            for f in found {
                files.push((f.display().to_string(), read_file(&f)?));
            }
        } else {
            files.push((p.display().to_string(), read_file(p)?));
        }
    }
    let mut docs = Vec::new();
    for (path, text) in &files {
        docs.extend(parse(path, text)?);
    }
    if docs.is_empty() {
        let names: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
        return Err(ManifestError::Empty(names.join(", ")));
    }
    Ok(docs)
}

fn read_file(p: &Path) -> Result<String, ManifestError> {
    std::fs::read_to_string(p).map_err(|e| ManifestError::Read {
        path: p.display().to_string(),
        cause: e.to_string(),
    })
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), ManifestError> {
    let entries = std::fs::read_dir(dir).map_err(|e| ManifestError::Read {
        path: dir.display().to_string(),
        cause: e.to_string(),
    })?;
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            walk(&p, out)?;
        } else if matches!(
            p.extension().and_then(|x| x.to_str()),
            Some("yaml" | "yml" | "json")
        ) {
            out.push(p);
        }
    }
    Ok(())
}

/// Parses one file's documents (multi-document YAML; JSON is YAML too), expanding `kind: List`.
/// A parse error keeps only the parser's first line: its snippet could show a Secret's value.
pub fn parse(path: &str, text: &str) -> Result<Vec<Doc>, ManifestError> {
    let values: Vec<Value> =
        serde_saphyr::from_multiple(text).map_err(|e| ManifestError::Parse {
            path: path.to_owned(),
            cause: redact::quoted(
                e.to_string()
                    .lines()
                    .next()
                    .unwrap_or("invalid YAML")
                    .split(" --> ")
                    .next()
                    .unwrap_or("")
                    .trim(),
            ),
        })?;
    let mut out = Vec::new();
    for (i, v) in values.into_iter().enumerate() {
        match v {
            Value::Null => {}
            Value::Object(ref m) if m.get("kind").and_then(Value::as_str) == Some("List") => {
                for item in m
                    .get("items")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    out.push(Doc {
                        path: path.to_owned(),
                        index: i + 1,
                        value: item.clone(),
                    });
                }
            }
            Value::Object(_) => out.push(Doc {
                path: path.to_owned(),
                index: i + 1,
                value: v,
            }),
            // Judged with the rest: the API server would refuse it, the others still count.
            other => out.push(Doc {
                path: path.to_owned(),
                index: i + 1,
                value: other,
            }),
        }
    }
    Ok(out)
}

fn kind(d: &Doc) -> (&str, &str) {
    let s = |k: &str| d.value.get(k).and_then(Value::as_str).unwrap_or("");
    (s("apiVersion"), s("kind"))
}

fn namespace_of(d: &Doc) -> Option<&str> {
    d.value
        .get("metadata")
        .and_then(|m| m.get("namespace"))
        .and_then(Value::as_str)
}

fn name_of(d: &Doc) -> &str {
    d.value
        .get("metadata")
        .and_then(|m| m.get("name"))
        .and_then(Value::as_str)
        .unwrap_or("")
}

/// Where a document came from, for notes: `file document N`.
fn place(d: &Doc) -> String {
    format!("{} document {}", d.path, d.index)
}

/// The document as the typed object, or why the API server would refuse it: the field at
/// fault (serde's path) and the reason, any quoted value masked.
fn typed<T: serde::de::DeserializeOwned>(d: &Doc) -> Result<T, Box<Rejected>> {
    serde_path_to_error::deserialize(&d.value).map_err(|e| {
        let path = e.path().to_string();
        let field = (path != "." && !path.is_empty()).then_some(path);
        let inner = e.inner().to_string();
        let (_, k) = kind(d);
        let cause = if k == "Secret"
            && field.as_deref().is_some_and(|f| f.starts_with("data."))
            && !inner.starts_with("invalid type")
        {
            // The base64 decoder's "Invalid symbol 60, offset 0." says nothing to a reader.
            "not valid base64: values under a Secret's data must be base64; put plain text under stringData".to_owned()
        } else {
            redact::quoted(&inner)
        };
        Box::new(Rejected {
            file: d.path.clone(),
            doc: d.index,
            kind: k.to_owned(),
            name: name_of(d).to_owned(),
            field,
            cause,
        })
    })
}

fn rejected(d: &Doc, field: Option<&str>, cause: &str) -> Rejected {
    Rejected {
        file: d.path.clone(),
        doc: d.index,
        kind: kind(d).1.to_owned(),
        name: name_of(d).to_owned(),
        field: field.map(str::to_owned),
        cause: cause.to_owned(),
    }
}

/// What the API server refuses before looking at the object's schema: a document that is not an
/// object with `apiVersion`, `kind` and a name, or a workload kind under an API version the
/// server no longer serves.
fn shape_problem(d: &Doc) -> Option<Rejected> {
    if !d.value.is_object() {
        return Some(rejected(
            d,
            None,
            "not a Kubernetes object (expected a mapping with apiVersion and kind)",
        ));
    }
    let (api, k) = kind(d);
    if k.is_empty() {
        return Some(rejected(
            d,
            Some("kind"),
            "missing: every object needs a kind",
        ));
    }
    if api.is_empty() {
        return Some(rejected(d, Some("apiVersion"), "missing"));
    }
    let generate = d
        .value
        .get("metadata")
        .and_then(|m| m.get("generateName"))
        .is_some();
    if name_of(d).is_empty() && !generate {
        return Some(rejected(
            d,
            Some("metadata.name"),
            "missing: the object has no name",
        ));
    }
    if matches!(k, "Deployment" | "StatefulSet" | "DaemonSet" | "ReplicaSet")
        && api != "apps/v1"
        && matches!(api, "extensions/v1beta1" | "apps/v1beta1" | "apps/v1beta2")
    {
        return Some(rejected(
            d,
            Some("apiVersion"),
            &format!("{api} is no longer served for {k}; use apps/v1"),
        ));
    }
    None
}

/// The namespace lint looks at: `-n`, else the namespace of the manifests' first workload,
/// else `default`.
pub fn namespace(docs: &[Doc], flag: Option<&str>) -> String {
    if let Some(ns) = flag {
        return ns.to_owned();
    }
    docs.iter()
        .find(|d| matches!(kind(d).1, "Deployment" | "StatefulSet"))
        // A migration Job linted on its own: its namespace.
        .or_else(|| docs.iter().find(|d| matches!(kind(d).1, "Job" | "CronJob")))
        .and_then(namespace_of)
        .unwrap_or("default")
        .to_owned()
}

/// The documents that make the namespace's objects: later definitions of the same
/// kind/name replace earlier ones, as `kubectl apply` of the whole bundle would leave them.
fn deduplicated<'a>(docs: &[&'a Doc], notes: &mut BundleNotes) -> Vec<&'a Doc> {
    let mut out: Vec<&Doc> = Vec::new();
    for d in docs {
        let (_, k) = kind(d);
        let name = name_of(d);
        if k.is_empty() || name.is_empty() {
            out.push(d);
            continue;
        }
        if let Some(pos) = out
            .iter()
            .position(|o| kind(o).1 == k && name_of(o) == name)
        {
            notes.duplicates.push(Duplicate {
                kind: k.to_owned(),
                name: name.to_owned(),
                first: place(out[pos]),
                later: place(d),
            });
            out.remove(pos);
        }
        out.push(d);
    }
    out
}

/// The facts the documents hold for namespace `ns` (objects without a namespace count as being
/// in it, as `kubectl apply -n` would place them). A document the API server would refuse is
/// noted (in [`FactUpdate::Bundle`], sent first) and left out; the rest is still used.
pub fn facts(docs: &[Doc], ns: &str, hint: Option<&str>) -> Vec<FactUpdate> {
    let mut notes = BundleNotes::default();
    let in_ns: Vec<&Doc> = docs
        .iter()
        .filter(|d| namespace_of(d).is_none_or(|n| n == ns))
        .collect();
    let in_ns = deduplicated(&in_ns, &mut notes);
    let mut deployments: Vec<Deployment> = Vec::new();
    let mut statefulsets: Vec<StatefulSet> = Vec::new();
    let mut config_maps: BTreeMap<String, ConfigMap> = BTreeMap::new();
    let mut secrets: BTreeMap<String, K8sSecret> = BTreeMap::new();
    let mut services: Vec<Service> = Vec::new();
    let mut policies: Vec<NetworkPolicy> = Vec::new();
    let mut autoscalers: Vec<k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler> =
        Vec::new();
    let mut jobs: Vec<k8s_openapi::api::batch::v1::Job> = Vec::new();
    let mut cron_jobs: Vec<k8s_openapi::api::batch::v1::CronJob> = Vec::new();
    fn keep<T>(r: Result<T, Box<Rejected>>, into: &mut Vec<T>, notes: &mut BundleNotes) {
        match r {
            Ok(v) => into.push(v),
            Err(e) => notes.rejected.push(*e),
        }
    }
    for d in in_ns {
        if let Some(r) = shape_problem(d) {
            notes.rejected.push(r);
            continue;
        }
        notes
            .objects
            .insert(format!("{}/{}", kind(d).1, name_of(d)));
        match kind(d) {
            ("apps/v1", "Deployment") => keep(typed(d), &mut deployments, &mut notes),
            ("apps/v1", "StatefulSet") => keep(typed(d), &mut statefulsets, &mut notes),
            ("v1", "ConfigMap") => match typed::<ConfigMap>(d) {
                Ok(cm) => {
                    config_maps.insert(cm.metadata.name.clone().unwrap_or_default(), cm);
                }
                Err(e) => notes.rejected.push(*e),
            },
            ("v1", "Secret") => match typed::<K8sSecret>(d) {
                Ok(s) => {
                    secrets.insert(s.metadata.name.clone().unwrap_or_default(), s);
                }
                Err(e) => notes.rejected.push(*e),
            },
            ("v1", "Service") => keep(typed(d), &mut services, &mut notes),
            ("networking.k8s.io/v1", "NetworkPolicy") => keep(typed(d), &mut policies, &mut notes),
            ("autoscaling/v2", "HorizontalPodAutoscaler") => {
                keep(typed(d), &mut autoscalers, &mut notes)
            }
            ("batch/v1", "Job") => keep(typed(d), &mut jobs, &mut notes),
            ("batch/v1", "CronJob") => keep(typed(d), &mut cron_jobs, &mut notes),
            _ => {}
        }
    }
    let literals = super::scrub_workloads(&mut deployments, &mut statefulsets);
    jobs.iter_mut().for_each(redact::job);
    cron_jobs.iter_mut().for_each(redact::cron_job);
    // Only what the selected workload references, as a cluster run would fetch.
    let all = Workload::all(&deployments, &statefulsets);
    let (mut cm_names, secret_names) = match crate::domain::elsa::select_workload(&all, hint) {
        crate::domain::elsa::Selection::Selected { index, .. } => all
            .get(index)
            .and_then(|w| w.pod_spec())
            .map(referenced_sources)
            .unwrap_or_default(),
        _ => Default::default(),
    };
    // And the ConfigMaps a PostgreSQL workload mounts (its postgresql.conf, production.pool).
    cm_names.extend(crate::domain::workload::database_config_maps(&all));
    // A source the bundle does not hold may well be in the cluster: lint cannot know, so it is
    // not observed (never "absent"). One the bundle holds but the API would refuse will not
    // exist after applying it.
    fn source(notes: &BundleNotes, kind: &str, name: &str) -> Option<String> {
        notes
            .rejection(kind, name)
            .map(|r| format!("the API server would refuse it: {r}"))
    }
    let cm_probe =
        |config_maps: &mut BTreeMap<String, ConfigMap>, notes: &BundleNotes, n: &str| match (
            config_maps.remove(n),
            source(notes, "ConfigMap", n),
        ) {
            (Some(cm), _) => Probe::Observed(ConfigMapData::from(cm)),
            (None, Some(why)) => Probe::failed(None, why),
            (None, None) => Probe::NotAttempted(crate::facts::NOT_IN_BUNDLE.to_owned()),
        };
    let secret_probe =
        |secrets: &mut BTreeMap<String, K8sSecret>, notes: &BundleNotes, n: &str| match (
            secrets.remove(n),
            source(notes, "Secret", n),
        ) {
            (Some(s), _) => Probe::Observed(SecretData::from(s)),
            (None, Some(why)) => Probe::failed(None, why),
            (None, None) => Probe::NotAttempted(crate::facts::NOT_IN_BUNDLE.to_owned()),
        };
    let mut cms: BTreeMap<String, Probe<ConfigMapData>> = cm_names
        .into_iter()
        .map(|n| {
            let p = cm_probe(&mut config_maps, &notes, &n);
            (n, p)
        })
        .collect();
    let mut secs: BTreeMap<String, Probe<SecretData>> = secret_names
        .into_iter()
        .map(|n| {
            let p = secret_probe(&mut secrets, &notes, &n);
            (n, p)
        })
        .collect();
    let deployments = Probe::Observed(deployments);
    let statefulsets = Probe::Observed(statefulsets);
    let services = Probe::Observed(services);
    // The database workload's own sources, as a cluster run fetches them once Elsa's
    // configuration names the host (the model finds the workload behind its Service).
    let mut known = crate::facts::Facts::new(scope_for(ns, hint), Vec::new());
    for u in [
        FactUpdate::Workloads {
            deployments: deployments.clone(),
            statefulsets: statefulsets.clone(),
            literals: literals.clone(),
            inferred: Default::default(),
        },
        FactUpdate::ConfigSources {
            config_maps: cms.clone(),
            secrets: secs.clone(),
        },
        FactUpdate::Services(services.clone()),
    ] {
        u.apply(&mut known);
    }
    let (db_cms, db_secrets) = crate::model::database_sources(&known);
    for n in db_cms {
        if let std::collections::btree_map::Entry::Vacant(e) = cms.entry(n) {
            let p = cm_probe(&mut config_maps, &notes, e.key());
            e.insert(p);
        }
    }
    for n in db_secrets {
        if let std::collections::btree_map::Entry::Vacant(e) = secs.entry(n) {
            let p = secret_probe(&mut secrets, &notes, e.key());
            e.insert(p);
        }
    }
    vec![
        FactUpdate::Bundle(notes),
        FactUpdate::Workloads {
            deployments,
            statefulsets,
            literals,
            inferred: Default::default(),
        },
        FactUpdate::ConfigSources {
            config_maps: cms,
            secrets: secs,
        },
        FactUpdate::Services(services),
        FactUpdate::NetworkPolicies(Probe::Observed(PolicyFacts {
            policies,
            namespaces: namespace_labels(docs),
        })),
        FactUpdate::Autoscalers(Probe::Observed(autoscalers)),
        // A bundle's Jobs have not run: no status, pods or logs (migration.status is live only).
        FactUpdate::Migrations(Probe::Observed(MigrationFacts {
            jobs: Probe::Observed(jobs),
            cron_jobs: Probe::Observed(cron_jobs),
            job_pods: BTreeMap::new(),
            job_logs: BTreeMap::new(),
            observed_at: None,
        })),
    ]
}

/// A scope for reading the bundle's facts through the model (the namespace and the workload
/// hint are all it uses of it).
fn scope_for(ns: &str, hint: Option<&str>) -> crate::facts::Scope {
    crate::facts::Scope {
        context: None,
        server: String::new(),
        namespace: ns.to_owned(),
        namespace_source: crate::facts::NamespaceSource::Flag,
        workload_hint: hint.map(str::to_owned),
        simulated: false,
        scenario: None,
        stated: None,
        replay: None,
    }
}

/// The labels of every Namespace the bundle defines, and, for the cluster DNS namespace when
/// the bundle does not define it, that its labels are not known here.
fn namespace_labels(docs: &[Doc]) -> BTreeMap<String, Probe<BTreeMap<String, String>>> {
    let mut out = BTreeMap::new();
    for d in docs.iter().filter(|d| kind(d) == ("v1", "Namespace")) {
        if let Ok(ns) = serde_json::from_value::<Namespace>(d.value.clone()) {
            let name = ns.metadata.name.clone().unwrap_or_default();
            out.insert(
                name,
                Probe::Observed(ns.metadata.labels.unwrap_or_default()),
            );
        }
    }
    out.entry(crate::domain::netpol::DNS_NAMESPACE.to_owned())
        .or_insert_with(|| Probe::NotAttempted(crate::facts::NOT_IN_BUNDLE.to_owned()));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multi_document_and_lists() {
        let text = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n---\n---\napiVersion: v1\nkind: List\nitems:\n- {apiVersion: v1, kind: Service, metadata: {name: s}}\n";
        let docs = parse("x.yaml", text).expect("parses");
        assert_eq!(docs.len(), 2);
        assert_eq!(kind(&docs[1]), ("v1", "Service"));
    }

    #[test]
    fn parse_errors_name_the_file_and_line_but_never_quote_content() {
        let text =
            "apiVersion: v1\nkind: Secret\nstringData:\n  password: hunter2\n  bad: [unclosed\n";
        let e = parse("secret.yaml", text)
            .expect_err("bad yaml")
            .to_string();
        assert!(e.starts_with("secret.yaml: "), "{e}");
        assert!(e.contains("line"), "{e}");
        assert!(!e.contains("hunter2"), "{e}");
        assert!(!e.contains('\n'));
    }

    #[test]
    fn secrets_from_data_and_string_data_stay_secret() {
        let text = "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: elsa-server}\nspec:\n  selector: {matchLabels: {app: e}}\n  template:\n    metadata: {labels: {app: e}}\n    spec:\n      containers:\n      - name: elsa-server\n        image: elsaworkflows/elsa-server-v3-5:latest\n        env:\n        - {name: P, valueFrom: {secretKeyRef: {name: pg, key: password}}}\n---\napiVersion: v1\nkind: Secret\nmetadata: {name: pg}\ndata: {user: ZWxzYQ==}\nstringData: {password: hunter2}\n";
        let docs = parse("m.yaml", text).expect("parses");
        let updates = facts(&docs, "default", None);
        let FactUpdate::ConfigSources { secrets, .. } = &updates[2] else {
            panic!("order");
        };
        let Probe::Observed(pg) = &secrets["pg"] else {
            panic!("observed");
        };
        assert_eq!(pg.data["password"].expose(), "hunter2");
        assert_eq!(pg.data["user"].expose(), "elsa");
        assert!(!format!("{pg:?}").contains("hunter2"));
    }

    #[test]
    fn a_refused_document_names_its_field_and_never_its_value() {
        let text = "apiVersion: v1\nkind: Secret\nmetadata: {name: pg}\nstringData: {password: 918273645}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\ndata: {a: b}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\ndata: {a: z}\n";
        let docs = parse("m.yaml", text).expect("parses");
        let updates = facts(&docs, "default", None);
        let FactUpdate::Bundle(notes) = &updates[0] else {
            panic!("notes first");
        };
        assert_eq!(notes.rejected.len(), 1, "{notes:?}");
        let r = &notes.rejected[0];
        assert_eq!(
            (r.kind.as_str(), r.name.as_str(), r.doc),
            ("Secret", "pg", 1)
        );
        assert_eq!(r.field.as_deref(), Some("stringData.password"));
        assert!(!r.to_string().contains("918273645"), "{r}");
        assert_eq!(notes.duplicates.len(), 1);
        assert_eq!(notes.duplicates[0].later, "m.yaml document 3");
    }
}
