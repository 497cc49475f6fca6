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
use k8s_openapi::api::core::v1::{ConfigMap, Secret as K8sSecret, Service};
use serde_json::Value;

use crate::domain::workload::{Workload, referenced_sources};
use crate::facts::{ConfigMapData, FactUpdate, Probe, SecretData};
use crate::redact;

/// Why the manifests could not be read (exit code 2).
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("cannot read {path}: {cause}")]
    Read { path: String, cause: String },
    #[error("{path}: {cause}")]
    Parse { path: String, cause: String },
    #[error("{path}: document {doc}: {cause}")]
    Object {
        path: String,
        doc: usize,
        cause: String,
    },
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
            _ => {
                return Err(ManifestError::Object {
                    path: path.to_owned(),
                    doc: i + 1,
                    cause: "not a Kubernetes object (expected a mapping with kind)".into(),
                });
            }
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

fn typed<T: serde::de::DeserializeOwned>(d: &Doc) -> Result<T, ManifestError> {
    serde_json::from_value(d.value.clone()).map_err(|e| ManifestError::Object {
        path: d.path.clone(),
        doc: d.index,
        // serde's message names the field; quoted values are masked in case it quotes one.
        cause: redact::quoted(&e.to_string()),
    })
}

/// The namespace lint looks at: `-n`, else the namespace of the manifests' first workload,
/// else `default`.
pub fn namespace(docs: &[Doc], flag: Option<&str>) -> String {
    if let Some(ns) = flag {
        return ns.to_owned();
    }
    docs.iter()
        .find(|d| matches!(kind(d).1, "Deployment" | "StatefulSet"))
        .and_then(namespace_of)
        .unwrap_or("default")
        .to_owned()
}

/// The facts the documents hold for namespace `ns` (objects without a namespace count as being
/// in it, as `kubectl apply -n` would place them).
pub fn facts(docs: &[Doc], ns: &str, hint: Option<&str>) -> Result<Vec<FactUpdate>, ManifestError> {
    let in_ns: Vec<&Doc> = docs
        .iter()
        .filter(|d| namespace_of(d).is_none_or(|n| n == ns))
        .collect();
    let mut deployments: Vec<Deployment> = Vec::new();
    let mut statefulsets: Vec<StatefulSet> = Vec::new();
    let mut config_maps: BTreeMap<String, ConfigMap> = BTreeMap::new();
    let mut secrets: BTreeMap<String, K8sSecret> = BTreeMap::new();
    let mut services: Vec<Service> = Vec::new();
    for d in in_ns {
        match kind(d) {
            ("apps/v1", "Deployment") => deployments.push(typed(d)?),
            ("apps/v1", "StatefulSet") => statefulsets.push(typed(d)?),
            ("v1", "ConfigMap") => {
                let cm: ConfigMap = typed(d)?;
                config_maps.insert(cm.metadata.name.clone().unwrap_or_default(), cm);
            }
            ("v1", "Secret") => {
                let s: K8sSecret = typed(d)?;
                secrets.insert(s.metadata.name.clone().unwrap_or_default(), s);
            }
            ("v1", "Service") => services.push(typed(d)?),
            _ => {}
        }
    }
    let literals = super::scrub_workloads(&mut deployments, &mut statefulsets);
    // Only what the selected workload references, as a cluster run would fetch.
    let all = Workload::all(&deployments, &statefulsets);
    let (cm_names, secret_names) = match crate::domain::elsa::select_workload(&all, hint) {
        crate::domain::elsa::Selection::Selected { index, .. } => all
            .get(index)
            .and_then(|w| w.pod_spec())
            .map(referenced_sources)
            .unwrap_or_default(),
        _ => Default::default(),
    };
    let cms = cm_names
        .into_iter()
        .map(|n| {
            let p = match config_maps.remove(&n) {
                Some(cm) => Probe::Observed(ConfigMapData::from(cm)),
                None => Probe::Absent,
            };
            (n, p)
        })
        .collect();
    let secs = secret_names
        .into_iter()
        .map(|n| {
            let p = match secrets.remove(&n) {
                Some(s) => Probe::Observed(SecretData::from(s)),
                None => Probe::Absent,
            };
            (n, p)
        })
        .collect();
    Ok(vec![
        FactUpdate::Workloads {
            deployments: Probe::Observed(deployments),
            statefulsets: Probe::Observed(statefulsets),
            literals,
            inferred: Default::default(),
        },
        FactUpdate::ConfigSources {
            config_maps: cms,
            secrets: secs,
        },
        FactUpdate::Services(Probe::Observed(services)),
    ])
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
        let updates = facts(&docs, "default", None).expect("facts");
        let FactUpdate::ConfigSources { secrets, .. } = &updates[1] else {
            panic!("order");
        };
        let Probe::Observed(pg) = &secrets["pg"] else {
            panic!("observed");
        };
        assert_eq!(pg.data["password"].expose(), "hunter2");
        assert_eq!(pg.data["user"].expose(), "elsa");
        assert!(!format!("{pg:?}").contains("hunter2"));
    }
}
