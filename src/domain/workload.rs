//! A borrowed view over the two workload kinds Elsa runs as (Deployment, StatefulSet), so checks
//! and gathering treat them alike, plus the label-selector rendering the API expects.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec, StatefulSet, StatefulSetSpec};
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{Pod, PodSpec, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};

/// Deployment or StatefulSet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum WorkloadKind {
    Deployment,
    StatefulSet,
}

impl WorkloadKind {
    /// kubectl's resource name: `deployment`, `statefulset`.
    pub fn as_str(self) -> &'static str {
        match self {
            WorkloadKind::Deployment => "deployment",
            WorkloadKind::StatefulSet => "statefulset",
        }
    }

    /// Accepts kubectl's spellings: `deployment`, `deployments`, `deploy`, `sts`, ….
    pub fn matches_word(self, word: &str) -> bool {
        let w = word.to_ascii_lowercase();
        match self {
            WorkloadKind::Deployment => {
                matches!(w.as_str(), "deployment" | "deployments" | "deploy")
            }
            WorkloadKind::StatefulSet => {
                matches!(w.as_str(), "statefulset" | "statefulsets" | "sts")
            }
        }
    }
}

/// A workload, borrowed from the facts.
#[derive(Debug, Clone, Copy)]
pub enum Workload<'a> {
    Deployment(&'a Deployment),
    StatefulSet(&'a StatefulSet),
}

static EMPTY_LABELS: BTreeMap<String, String> = BTreeMap::new();

impl<'a> Workload<'a> {
    /// All workloads: Deployments first, then StatefulSets, each in API order.
    pub fn all(deployments: &'a [Deployment], statefulsets: &'a [StatefulSet]) -> Vec<Self> {
        deployments
            .iter()
            .map(Workload::Deployment)
            .chain(statefulsets.iter().map(Workload::StatefulSet))
            .collect()
    }

    pub fn kind(&self) -> WorkloadKind {
        match self {
            Workload::Deployment(_) => WorkloadKind::Deployment,
            Workload::StatefulSet(_) => WorkloadKind::StatefulSet,
        }
    }

    pub fn name(&self) -> &'a str {
        let meta = match self {
            Workload::Deployment(d) => &d.metadata,
            Workload::StatefulSet(s) => &s.metadata,
        };
        meta.name.as_deref().unwrap_or("")
    }

    /// The pods this workload was rebuilt from, when it was not listed but inferred from them
    /// ([`infer_from_pods`]).
    pub fn inferred_from(&self) -> Option<&'a str> {
        let meta = match self {
            Workload::Deployment(d) => &d.metadata,
            Workload::StatefulSet(s) => &s.metadata,
        };
        meta.annotations
            .as_ref()?
            .get(INFERRED_FROM)
            .map(String::as_str)
    }

    /// `deployment/elsa-server`.
    pub fn reference(&self) -> String {
        format!("{}/{}", self.kind().as_str(), self.name())
    }

    pub fn labels(&self) -> &'a BTreeMap<String, String> {
        let meta = match self {
            Workload::Deployment(d) => &d.metadata,
            Workload::StatefulSet(s) => &s.metadata,
        };
        meta.labels.as_ref().unwrap_or(&EMPTY_LABELS)
    }

    /// The labels of its pod template: what a Service's selector is matched against.
    pub fn template_labels(&self) -> &'a BTreeMap<String, String> {
        let meta = match self {
            Workload::Deployment(d) => d.spec.as_ref().and_then(|s| s.template.metadata.as_ref()),
            Workload::StatefulSet(s) => s.spec.as_ref().and_then(|s| s.template.metadata.as_ref()),
        };
        meta.and_then(|m| m.labels.as_ref())
            .unwrap_or(&EMPTY_LABELS)
    }

    pub fn pod_spec(&self) -> Option<&'a PodSpec> {
        match self {
            Workload::Deployment(d) => d.spec.as_ref()?.template.spec.as_ref(),
            Workload::StatefulSet(s) => s.spec.as_ref()?.template.spec.as_ref(),
        }
    }

    /// Images of the regular containers (not init containers).
    pub fn images(&self) -> Vec<String> {
        self.pod_spec()
            .map(|s| {
                s.containers
                    .iter()
                    .filter_map(|c| c.image.clone())
                    .collect()
            })
            .unwrap_or_default()
    }

    pub fn selector(&self) -> Option<&'a LabelSelector> {
        match self {
            Workload::Deployment(d) => d.spec.as_ref().map(|s| &s.selector),
            Workload::StatefulSet(s) => s.spec.as_ref().map(|s| &s.selector),
        }
    }

    /// `spec.replicas`, which defaults to 1.
    pub fn desired_replicas(&self) -> i32 {
        match self {
            Workload::Deployment(d) => d.spec.as_ref().and_then(|s| s.replicas),
            Workload::StatefulSet(s) => s.spec.as_ref().and_then(|s| s.replicas),
        }
        .unwrap_or(1)
    }
}

/// The annotation that marks a workload rebuilt from its pods (see [`infer_from_pods`]), with
/// the pods it was rebuilt from.
pub const INFERRED_FROM: &str = "elsadoctor.io/inferred-from-pods";

/// Labels the controllers add to each pod, not part of the pod template.
const CONTROLLER_LABELS: &[&str] = &[
    "pod-template-hash",
    "controller-revision-hash",
    "statefulset.kubernetes.io/pod-name",
    "apps.kubernetes.io/pod-index",
];

/// The workloads behind `pods`, rebuilt from them when the workloads themselves may not be
/// listed: the owner's name (a ReplicaSet's name without its pod-template hash is its
/// Deployment's), the pod's labels without the controllers' as template labels and selector,
/// the pod's spec as template, and as replicas the number of pods seen. No status: nothing of
/// the rollout was observed. Pods without a ReplicaSet or StatefulSet owner are left out.
pub fn infer_from_pods(pods: &[Pod]) -> (Vec<Deployment>, Vec<StatefulSet>) {
    // (kind, name) -> (template labels, spec, pod names)
    type Seen = BTreeMap<(WorkloadKind, String), (BTreeMap<String, String>, PodSpec, Vec<String>)>;
    let mut seen: Seen = BTreeMap::new();
    for pod in pods {
        let labels = pod.metadata.labels.clone().unwrap_or_default();
        let Some(owner) = pod
            .metadata
            .owner_references
            .iter()
            .flatten()
            .find(|o| o.controller == Some(true))
        else {
            continue;
        };
        let key = match owner.kind.as_str() {
            "ReplicaSet" => {
                let name = labels
                    .get("pod-template-hash")
                    .and_then(|h| owner.name.strip_suffix(&format!("-{h}")))
                    .unwrap_or(&owner.name);
                (WorkloadKind::Deployment, name.to_owned())
            }
            "StatefulSet" => (WorkloadKind::StatefulSet, owner.name.clone()),
            _ => continue,
        };
        let Some(spec) = pod.spec.clone() else {
            continue;
        };
        let mut template_labels = labels;
        template_labels.retain(|k, _| !CONTROLLER_LABELS.contains(&k.as_str()));
        let entry = seen
            .entry(key)
            .or_insert_with(|| (template_labels, spec, Vec::new()));
        entry.2.push(pod.metadata.name.clone().unwrap_or_default());
    }
    let mut deployments = Vec::new();
    let mut statefulsets = Vec::new();
    for ((kind, name), (labels, spec, pod_names)) in seen {
        let metadata = ObjectMeta {
            name: Some(name),
            namespace: pods.first().and_then(|p| p.metadata.namespace.clone()),
            labels: Some(labels.clone()),
            annotations: Some(BTreeMap::from([(
                INFERRED_FROM.to_owned(),
                pod_names.join(","),
            )])),
            ..Default::default()
        };
        let template = PodTemplateSpec {
            metadata: Some(ObjectMeta {
                labels: Some(labels.clone()),
                ..Default::default()
            }),
            spec: Some(spec),
        };
        let selector = LabelSelector {
            match_labels: Some(labels),
            ..Default::default()
        };
        let replicas = i32::try_from(pod_names.len()).ok();
        match kind {
            WorkloadKind::Deployment => deployments.push(Deployment {
                metadata,
                spec: Some(DeploymentSpec {
                    replicas,
                    selector,
                    template,
                    ..Default::default()
                }),
                status: None,
            }),
            WorkloadKind::StatefulSet => statefulsets.push(StatefulSet {
                metadata,
                spec: Some(StatefulSetSpec {
                    replicas,
                    selector,
                    template,
                    ..Default::default()
                }),
                status: None,
            }),
        }
    }
    (deployments, statefulsets)
}

/// The ConfigMaps and Secrets a pod spec references (volumes, projected volumes, env, envFrom of
/// every container), by name.
pub fn referenced_sources(spec: &PodSpec) -> (BTreeSet<String>, BTreeSet<String>) {
    let mut config_maps = BTreeSet::new();
    let mut secrets = BTreeSet::new();
    for v in spec.volumes.iter().flatten() {
        if let Some(cm) = &v.config_map {
            config_maps.insert(cm.name.clone());
        }
        if let Some(name) = v.secret.as_ref().and_then(|s| s.secret_name.clone()) {
            secrets.insert(name);
        }
        for src in v.projected.iter().flat_map(|p| p.sources.iter().flatten()) {
            if let Some(cm) = &src.config_map {
                config_maps.insert(cm.name.clone());
            }
            if let Some(sec) = &src.secret {
                secrets.insert(sec.name.clone());
            }
        }
    }
    let containers = spec
        .containers
        .iter()
        .chain(spec.init_containers.iter().flatten());
    for c in containers {
        for e in c.env.iter().flatten() {
            let Some(from) = &e.value_from else { continue };
            if let Some(r) = &from.config_map_key_ref {
                config_maps.insert(r.name.clone());
            }
            if let Some(r) = &from.secret_key_ref {
                secrets.insert(r.name.clone());
            }
        }
        for e in c.env_from.iter().flatten() {
            if let Some(r) = &e.config_map_ref {
                config_maps.insert(r.name.clone());
            }
            if let Some(r) = &e.secret_ref {
                secrets.insert(r.name.clone());
            }
        }
    }
    config_maps.remove("");
    secrets.remove("");
    (config_maps, secrets)
}

/// Whether a Service with this `spec.selector` sends its traffic to the workload's pods: every
/// selector label is on the pod template with the same value. A Service selector is a plain
/// label map (no expressions); an empty or absent one selects no pod at all (its endpoints are
/// managed by hand), so it selects no workload either.
pub fn selected_by(selector: Option<&BTreeMap<String, String>>, w: &Workload<'_>) -> bool {
    let Some(sel) = selector.filter(|s| !s.is_empty()) else {
        return false;
    };
    let labels = w.template_labels();
    sel.iter().all(|(k, v)| labels.get(k) == Some(v))
}

/// Renders a LabelSelector in the API's query syntax (`a=b,c in (x,y),!d`). An empty selector
/// matches everything, which for a workload means a broken spec: that is an error here, so no
/// caller ever lists a whole namespace by accident.
pub fn selector_query(sel: &LabelSelector) -> Result<String, String> {
    let mut parts: Vec<String> = Vec::new();
    for (k, v) in sel.match_labels.iter().flatten() {
        parts.push(format!("{k}={v}"));
    }
    for e in sel.match_expressions.iter().flatten() {
        let values = e.values.clone().unwrap_or_default().join(",");
        parts.push(match e.operator.as_str() {
            "In" => format!("{} in ({values})", e.key),
            "NotIn" => format!("{} notin ({values})", e.key),
            "Exists" => e.key.clone(),
            "DoesNotExist" => format!("!{}", e.key),
            other => return Err(format!("unknown selector operator {other:?}")),
        });
    }
    if parts.is_empty() {
        return Err("the workload's selector is empty".to_owned());
    }
    Ok(parts.join(","))
}

/// The HorizontalPodAutoscaler that scales `w`: its `spec.scaleTargetRef` names the workload's
/// kind and name (and, when it names one, the `apps` group). Several targeting one workload
/// fight over it (the controller reports `AmbiguousSelector`); the one with the most
/// `maxReplicas` is returned, the most pods that may run.
pub fn autoscaler_for<'h>(
    hpas: &'h [HorizontalPodAutoscaler],
    w: &Workload<'_>,
) -> Option<&'h HorizontalPodAutoscaler> {
    hpas.iter()
        .filter(|h| {
            h.spec.as_ref().is_some_and(|s| {
                let t = &s.scale_target_ref;
                t.kind
                    == match w.kind() {
                        WorkloadKind::Deployment => "Deployment",
                        WorkloadKind::StatefulSet => "StatefulSet",
                    }
                    && t.name == w.name()
                    && t.api_version
                        .as_deref()
                        .is_none_or(|v| v.starts_with("apps/") || v.is_empty())
            })
        })
        .max_by_key(|h| h.spec.as_ref().map_or(0, |s| s.max_replicas))
}

/// Whether an image is a PostgreSQL server image by its name (`postgres`, `postgis`,
/// `timescaledb`, `bitnami/postgresql`, …).
pub fn is_postgres_image(image: &str) -> bool {
    let repo = image.split(['@']).next().unwrap_or(image);
    let last = repo.rsplit('/').next().unwrap_or(repo);
    let last = last.split(':').next().unwrap_or(last).to_ascii_lowercase();
    last.contains("postgres") || last.contains("postgis") || last.contains("timescale")
}

/// The ConfigMaps that workloads running a PostgreSQL image mount into that container (a
/// `postgresql.conf`): fetched with Elsa's own sources so `production.pool` can read the
/// server's `max_connections` without a login.
pub fn database_config_maps(all: &[Workload<'_>]) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for spec in all.iter().filter_map(|w| w.pod_spec()) {
        for c in spec
            .containers
            .iter()
            .filter(|c| c.image.as_deref().is_some_and(is_postgres_image))
        {
            for m in c.volume_mounts.iter().flatten() {
                if let Some(cm) = spec
                    .volumes
                    .iter()
                    .flatten()
                    .find(|v| v.name == m.name)
                    .and_then(|v| v.config_map.as_ref())
                {
                    out.insert(cm.name.clone());
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_match_labels_and_expressions() {
        let sel: LabelSelector = serde_json::from_value(serde_json::json!({
            "matchLabels": {"app": "elsa-server"},
            "matchExpressions": [
                {"key": "tier", "operator": "In", "values": ["api", "web"]},
                {"key": "canary", "operator": "DoesNotExist"}
            ]
        }))
        .expect("selector");
        assert_eq!(
            selector_query(&sel).expect("query"),
            "app=elsa-server,tier in (api,web),!canary"
        );
    }

    #[test]
    fn finds_every_referenced_source() {
        let spec: PodSpec = serde_json::from_value(serde_json::json!({
            "containers": [{"name": "a",
                "env": [{"name": "P", "valueFrom": {"secretKeyRef": {"name": "pg", "key": "password"}}},
                        {"name": "E", "valueFrom": {"configMapKeyRef": {"name": "env", "key": "e"}}}],
                "envFrom": [{"configMapRef": {"name": "bulk"}}, {"secretRef": {"name": "bulk-secret"}}]}],
            "initContainers": [{"name": "i", "envFrom": [{"secretRef": {"name": "init"}}]}],
            "volumes": [{"name": "c", "configMap": {"name": "elsa-config"}},
                        {"name": "s", "secret": {"secretName": "tls"}},
                        {"name": "p", "projected": {"sources": [{"configMap": {"name": "proj"}}]}}]
        }))
        .expect("spec");
        let (cms, secrets) = referenced_sources(&spec);
        assert_eq!(
            cms.into_iter().collect::<Vec<_>>(),
            ["bulk", "elsa-config", "env", "proj"]
        );
        assert_eq!(
            secrets.into_iter().collect::<Vec<_>>(),
            ["bulk-secret", "init", "pg", "tls"]
        );
    }

    #[test]
    fn infers_the_deployment_and_statefulset_behind_pods() {
        let pods: Vec<Pod> = serde_json::from_value(serde_json::json!([
            {"metadata": {"name": "elsa-server-6d5f8b7c9-x2k4q", "namespace": "elsa",
                "labels": {"app": "elsa-server", "pod-template-hash": "6d5f8b7c9"},
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet",
                    "name": "elsa-server-6d5f8b7c9", "uid": "u1", "controller": true}]},
             "spec": {"containers": [{"name": "elsa-server", "image": "elsaworkflows/elsa-server-v3-5:3.5.2"}]}},
            {"metadata": {"name": "elsa-server-6d5f8b7c9-p7v9w", "namespace": "elsa",
                "labels": {"app": "elsa-server", "pod-template-hash": "6d5f8b7c9"},
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet",
                    "name": "elsa-server-6d5f8b7c9", "uid": "u1", "controller": true}]},
             "spec": {"containers": [{"name": "elsa-server", "image": "elsaworkflows/elsa-server-v3-5:3.5.2"}]}},
            {"metadata": {"name": "pg-0", "labels": {"app": "pg", "controller-revision-hash": "pg-7f"},
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "StatefulSet",
                    "name": "pg", "uid": "u2", "controller": true}]},
             "spec": {"containers": [{"name": "pg", "image": "postgres:17"}]}},
            {"metadata": {"name": "bare"}, "spec": {"containers": [{"name": "x"}]}}
        ]))
        .expect("pods");
        let (d, s) = infer_from_pods(&pods);
        assert_eq!(d.len(), 1);
        assert_eq!(s.len(), 1);
        let w = Workload::Deployment(&d[0]);
        assert_eq!(w.reference(), "deployment/elsa-server");
        assert_eq!(w.desired_replicas(), 2);
        assert_eq!(
            w.inferred_from(),
            Some("elsa-server-6d5f8b7c9-x2k4q,elsa-server-6d5f8b7c9-p7v9w")
        );
        assert_eq!(
            selector_query(w.selector().expect("selector")).expect("query"),
            "app=elsa-server"
        );
        let sts = Workload::StatefulSet(&s[0]);
        assert_eq!(sts.reference(), "statefulset/pg");
        assert!(!sts.labels().contains_key("controller-revision-hash"));
    }

    #[test]
    fn a_service_selects_the_workloads_whose_template_carries_its_labels() {
        let d: Deployment = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "postgres", "labels": {"tier": "db"}},
            "spec": {"selector": {"matchLabels": {"app": "postgres"}},
                "template": {"metadata": {"labels": {"app": "postgres", "role": "primary"}},
                    "spec": {"containers": [{"name": "postgres", "image": "postgres:16"}]}}}
        }))
        .expect("deployment");
        let w = Workload::Deployment(&d);
        let sel = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect()
        };
        assert!(selected_by(Some(&sel(&[("app", "postgres")])), &w));
        assert!(selected_by(
            Some(&sel(&[("app", "postgres"), ("role", "primary")])),
            &w
        ));
        // Every label must match; the workload's own labels do not count, only the template's.
        assert!(!selected_by(
            Some(&sel(&[("app", "postgres"), ("role", "replica")])),
            &w
        ));
        assert!(!selected_by(Some(&sel(&[("tier", "db")])), &w));
        // No selector, or an empty one: endpoints by hand, no workload behind it.
        assert!(!selected_by(Some(&BTreeMap::new()), &w));
        assert!(!selected_by(None, &w));
    }

    #[test]
    fn refuses_an_empty_selector() {
        assert!(selector_query(&LabelSelector::default()).is_err());
    }

    #[test]
    fn kind_words_follow_kubectl() {
        assert!(WorkloadKind::Deployment.matches_word("deploy"));
        assert!(WorkloadKind::StatefulSet.matches_word("sts"));
        assert!(!WorkloadKind::StatefulSet.matches_word("deployment"));
    }

    #[test]
    fn the_autoscaler_is_the_one_whose_target_names_the_workload() {
        let d: Deployment = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "elsa-server"},
            "spec": {"selector": {}, "template": {}}
        }))
        .expect("deployment");
        let hpa = |name: &str, kind: &str, target: &str, max: i32| -> HorizontalPodAutoscaler {
            serde_json::from_value(serde_json::json!({
                "metadata": {"name": name},
                "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": kind, "name": target},
                         "minReplicas": 1, "maxReplicas": max}
            }))
            .expect("hpa")
        };
        let hpas = [
            hpa("other", "Deployment", "postgres", 9),
            hpa("sts", "StatefulSet", "elsa-server", 8),
            hpa("elsa", "Deployment", "elsa-server", 6),
        ];
        let w = Workload::Deployment(&d);
        let found = autoscaler_for(&hpas, &w).expect("found");
        assert_eq!(found.metadata.name.as_deref(), Some("elsa"));
        assert!(autoscaler_for(&hpas[..2], &w).is_none());
    }

    #[test]
    fn postgres_images_and_their_mounted_config_maps() {
        assert!(is_postgres_image("postgres:16"));
        assert!(is_postgres_image(
            "docker.io/bitnami/postgresql:17@sha256:00"
        ));
        assert!(is_postgres_image("timescale/timescaledb:latest-pg16"));
        assert!(!is_postgres_image("elsaworkflows/elsa-server-v3-5:3.5.3"));
        let d: Deployment = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "postgres"},
            "spec": {"selector": {}, "template": {"spec": {
                "containers": [{"name": "pg", "image": "postgres:16",
                                "volumeMounts": [{"name": "conf", "mountPath": "/etc/postgresql"},
                                                 {"name": "data", "mountPath": "/var/lib/postgresql"}]}],
                "volumes": [{"name": "conf", "configMap": {"name": "pg-conf"}},
                            {"name": "data", "emptyDir": {}},
                            {"name": "unused", "configMap": {"name": "not-mounted"}}]
            }}}
        }))
        .expect("deployment");
        let all = [Workload::Deployment(&d)];
        assert_eq!(
            database_config_maps(&all).into_iter().collect::<Vec<_>>(),
            ["pg-conf"]
        );
    }
}
