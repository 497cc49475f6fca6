//! The table of API resources the simulator serves, and the discovery
//! documents built from it (`/api`, `/apis`, `/api/v1`, `/apis/<g>/<v>`,
//! and the aggregated discovery v2 form of `/api` and `/apis`).
//!
//! Verbs, short names and categories are those of a real v1.33 API server,
//! so discovery-driven clients see the same shape they would in a cluster.

use serde_json::{Value, json};

/// One served resource.
#[derive(Debug)]
pub struct ResourceDef {
    /// API group, `""` for core.
    pub group: &'static str,
    /// Version.
    pub version: &'static str,
    /// Plural name (URL segment).
    pub plural: &'static str,
    /// Singular name.
    pub singular: &'static str,
    /// Kind.
    pub kind: &'static str,
    /// Namespaced or cluster-scoped.
    pub namespaced: bool,
    /// Short names.
    pub short_names: &'static [&'static str],
    /// Categories.
    pub categories: &'static [&'static str],
    /// Verbs.
    pub verbs: &'static [&'static str],
    /// Subresources: (name, kind, group/version of the kind or "" for same, verbs).
    pub subresources: &'static [(
        &'static str,
        &'static str,
        &'static str,
        &'static [&'static str],
    )],
    /// Whether objects of this resource are stored and listable.
    pub stored: bool,
}

impl ResourceDef {
    /// `apiVersion` of objects of this resource.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_string()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// `pods` or `deployments.apps`, as in API error messages.
    pub fn qualified(&self) -> String {
        if self.group.is_empty() {
            self.plural.to_string()
        } else {
            format!("{}.{}", self.plural, self.group)
        }
    }
}

const RW: &[&str] = &[
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];
const STATUS: &[&str] = &["get", "patch", "update"];

/// Every resource the simulator knows.
pub static RESOURCES: &[ResourceDef] = &[
    ResourceDef {
        group: "",
        version: "v1",
        plural: "configmaps",
        singular: "configmap",
        kind: "ConfigMap",
        namespaced: true,
        short_names: &["cm"],
        categories: &[],
        verbs: RW,
        subresources: &[],
        stored: true,
    },
    ResourceDef {
        group: "",
        version: "v1",
        plural: "endpoints",
        singular: "endpoints",
        kind: "Endpoints",
        namespaced: true,
        short_names: &["ep"],
        categories: &[],
        verbs: RW,
        subresources: &[],
        stored: true,
    },
    ResourceDef {
        group: "",
        version: "v1",
        plural: "events",
        singular: "event",
        kind: "Event",
        namespaced: true,
        short_names: &["ev"],
        categories: &[],
        verbs: RW,
        subresources: &[],
        stored: true,
    },
    ResourceDef {
        group: "",
        version: "v1",
        plural: "namespaces",
        singular: "namespace",
        kind: "Namespace",
        namespaced: false,
        short_names: &["ns"],
        categories: &[],
        verbs: &[
            "create", "delete", "get", "list", "patch", "update", "watch",
        ],
        subresources: &[
            ("finalize", "Namespace", "", &["update"]),
            ("status", "Namespace", "", STATUS),
        ],
        stored: true,
    },
    ResourceDef {
        group: "",
        version: "v1",
        plural: "persistentvolumeclaims",
        singular: "persistentvolumeclaim",
        kind: "PersistentVolumeClaim",
        namespaced: true,
        short_names: &["pvc"],
        categories: &[],
        verbs: RW,
        subresources: &[("status", "PersistentVolumeClaim", "", STATUS)],
        stored: true,
    },
    ResourceDef {
        group: "",
        version: "v1",
        plural: "pods",
        singular: "pod",
        kind: "Pod",
        namespaced: true,
        short_names: &["po"],
        categories: &["all"],
        verbs: RW,
        subresources: &[
            ("log", "Pod", "", &["get"]),
            (
                "portforward",
                "PodPortForwardOptions",
                "",
                &["create", "get"],
            ),
            ("status", "Pod", "", STATUS),
        ],
        stored: true,
    },
    ResourceDef {
        group: "",
        version: "v1",
        plural: "secrets",
        singular: "secret",
        kind: "Secret",
        namespaced: true,
        short_names: &[],
        categories: &[],
        verbs: RW,
        subresources: &[],
        stored: true,
    },
    ResourceDef {
        group: "",
        version: "v1",
        plural: "serviceaccounts",
        singular: "serviceaccount",
        kind: "ServiceAccount",
        namespaced: true,
        short_names: &["sa"],
        categories: &[],
        verbs: RW,
        subresources: &[],
        stored: true,
    },
    ResourceDef {
        group: "",
        version: "v1",
        plural: "services",
        singular: "service",
        kind: "Service",
        namespaced: true,
        short_names: &["svc"],
        categories: &["all"],
        verbs: &[
            "create",
            "delete",
            "deletecollection",
            "get",
            "list",
            "patch",
            "update",
            "watch",
        ],
        subresources: &[("status", "Service", "", STATUS)],
        stored: true,
    },
    ResourceDef {
        group: "apps",
        version: "v1",
        plural: "deployments",
        singular: "deployment",
        kind: "Deployment",
        namespaced: true,
        short_names: &["deploy"],
        categories: &["all"],
        verbs: RW,
        subresources: &[
            ("scale", "Scale", "autoscaling/v1", STATUS),
            ("status", "Deployment", "", STATUS),
        ],
        stored: true,
    },
    ResourceDef {
        group: "apps",
        version: "v1",
        plural: "replicasets",
        singular: "replicaset",
        kind: "ReplicaSet",
        namespaced: true,
        short_names: &["rs"],
        categories: &["all"],
        verbs: RW,
        subresources: &[
            ("scale", "Scale", "autoscaling/v1", STATUS),
            ("status", "ReplicaSet", "", STATUS),
        ],
        stored: true,
    },
    ResourceDef {
        group: "apps",
        version: "v1",
        plural: "statefulsets",
        singular: "statefulset",
        kind: "StatefulSet",
        namespaced: true,
        short_names: &["sts"],
        categories: &["all"],
        verbs: RW,
        subresources: &[
            ("scale", "Scale", "autoscaling/v1", STATUS),
            ("status", "StatefulSet", "", STATUS),
        ],
        stored: true,
    },
    ResourceDef {
        group: "batch",
        version: "v1",
        plural: "cronjobs",
        singular: "cronjob",
        kind: "CronJob",
        namespaced: true,
        short_names: &["cj"],
        categories: &["all"],
        verbs: RW,
        subresources: &[("status", "CronJob", "", STATUS)],
        stored: true,
    },
    ResourceDef {
        group: "batch",
        version: "v1",
        plural: "jobs",
        singular: "job",
        kind: "Job",
        namespaced: true,
        short_names: &[],
        categories: &["all"],
        verbs: RW,
        subresources: &[("status", "Job", "", STATUS)],
        stored: true,
    },
    ResourceDef {
        group: "discovery.k8s.io",
        version: "v1",
        plural: "endpointslices",
        singular: "endpointslice",
        kind: "EndpointSlice",
        namespaced: true,
        short_names: &[],
        categories: &[],
        verbs: RW,
        subresources: &[],
        stored: true,
    },
    ResourceDef {
        group: "networking.k8s.io",
        version: "v1",
        plural: "ingresses",
        singular: "ingress",
        kind: "Ingress",
        namespaced: true,
        short_names: &["ing"],
        categories: &[],
        verbs: RW,
        subresources: &[("status", "Ingress", "", STATUS)],
        stored: true,
    },
    ResourceDef {
        group: "autoscaling",
        version: "v2",
        plural: "horizontalpodautoscalers",
        singular: "horizontalpodautoscaler",
        kind: "HorizontalPodAutoscaler",
        namespaced: true,
        short_names: &["hpa"],
        categories: &["all"],
        verbs: RW,
        subresources: &[("status", "HorizontalPodAutoscaler", "", STATUS)],
        stored: true,
    },
    ResourceDef {
        group: "networking.k8s.io",
        version: "v1",
        plural: "networkpolicies",
        singular: "networkpolicy",
        kind: "NetworkPolicy",
        namespaced: true,
        short_names: &["netpol"],
        categories: &[],
        verbs: RW,
        subresources: &[],
        stored: true,
    },
    ResourceDef {
        group: "authorization.k8s.io",
        version: "v1",
        plural: "selfsubjectaccessreviews",
        singular: "selfsubjectaccessreview",
        kind: "SelfSubjectAccessReview",
        namespaced: false,
        short_names: &[],
        categories: &[],
        verbs: &["create"],
        subresources: &[],
        stored: false,
    },
    ResourceDef {
        group: "authorization.k8s.io",
        version: "v1",
        plural: "selfsubjectrulesreviews",
        singular: "selfsubjectrulesreview",
        kind: "SelfSubjectRulesReview",
        namespaced: false,
        short_names: &[],
        categories: &[],
        verbs: &["create"],
        subresources: &[],
        stored: false,
    },
];

/// Look a resource up by group, version and plural.
pub fn find(group: &str, version: &str, plural: &str) -> Option<&'static ResourceDef> {
    RESOURCES
        .iter()
        .find(|r| r.group == group && r.version == version && r.plural == plural)
}

/// Look a resource up by `apiVersion` and `kind` (as written in a manifest).
pub fn by_kind(api_version: &str, kind: &str) -> Option<&'static ResourceDef> {
    RESOURCES
        .iter()
        .find(|r| r.kind == kind && r.api_version() == api_version && r.stored)
}

/// API groups other than core, in the order `/apis` lists them.
fn groups() -> Vec<(&'static str, &'static str)> {
    let mut out: Vec<(&str, &str)> = Vec::new();
    for r in RESOURCES {
        if !r.group.is_empty() && !out.contains(&(r.group, r.version)) {
            out.push((r.group, r.version));
        }
    }
    out
}

/// Whether the group/version is served.
pub fn group_version_served(group: &str, version: &str) -> bool {
    if group.is_empty() {
        return version == "v1";
    }
    groups().iter().any(|(g, v)| *g == group && *v == version)
}

/// Whether the group is served (any version).
pub fn group_served(group: &str) -> bool {
    groups().iter().any(|(g, _)| *g == group)
}

fn storage_version_hash(r: &ResourceDef) -> String {
    super::util::base64_encode(
        &super::util::fnv64(format!("{}/{}/{}", r.group, r.version, r.kind).as_bytes())
            .to_be_bytes(),
    )
}

/// `GET /api`.
pub fn api_versions(server_address: &str) -> Value {
    json!({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}]
    })
}

fn group_entry(group: &str, version: &str) -> Value {
    let gv = json!({"groupVersion": format!("{group}/{version}"), "version": version});
    json!({"name": group, "versions": [gv.clone()], "preferredVersion": gv})
}

/// `GET /apis`.
pub fn api_group_list() -> Value {
    let groups: Vec<Value> = groups().iter().map(|(g, v)| group_entry(g, v)).collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

/// `GET /apis/<group>`.
pub fn api_group(group: &str) -> Option<Value> {
    let (g, v) = groups().into_iter().find(|(g, _)| *g == group)?;
    let mut e = group_entry(g, v);
    if let Some(m) = e.as_object_mut() {
        m.insert("kind".into(), json!("APIGroup"));
        m.insert("apiVersion".into(), json!("v1"));
    }
    Some(e)
}

/// `GET /api/v1` or `/apis/<group>/<version>`.
pub fn api_resource_list(group: &str, version: &str) -> Value {
    let mut resources = Vec::new();
    for r in RESOURCES
        .iter()
        .filter(|r| r.group == group && r.version == version)
    {
        let mut e = json!({
            "name": r.plural,
            "singularName": r.singular,
            "namespaced": r.namespaced,
            "kind": r.kind,
            "verbs": r.verbs,
        });
        if let Some(m) = e.as_object_mut() {
            if !r.short_names.is_empty() {
                m.insert("shortNames".into(), json!(r.short_names));
            }
            if !r.categories.is_empty() {
                m.insert("categories".into(), json!(r.categories));
            }
            if r.stored {
                m.insert("storageVersionHash".into(), json!(storage_version_hash(r)));
            }
        }
        resources.push(e);
        for (sub, kind, gv, verbs) in r.subresources {
            let mut e = json!({
                "name": format!("{}/{}", r.plural, sub),
                "singularName": "",
                "namespaced": r.namespaced,
                "kind": kind,
                "verbs": verbs,
            });
            if let (Some(m), Some((g, v))) = (e.as_object_mut(), gv.split_once('/')) {
                m.insert("group".into(), json!(g));
                m.insert("version".into(), json!(v));
            }
            resources.push(e);
        }
    }
    let gv = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": resources})
}

fn discovery_group(group: &str, version: &str) -> Value {
    let mut resources = Vec::new();
    for r in RESOURCES
        .iter()
        .filter(|r| r.group == group && r.version == version)
    {
        let subs: Vec<Value> = r
            .subresources
            .iter()
            .map(|(sub, kind, gv, verbs)| {
                let (g, v) = gv.split_once('/').unwrap_or((group, version));
                json!({
                    "subresource": sub,
                    "responseKind": {"group": g, "version": v, "kind": kind},
                    "verbs": verbs,
                })
            })
            .collect();
        let mut e = json!({
            "resource": r.plural,
            "responseKind": {"group": group, "version": version, "kind": r.kind},
            "scope": if r.namespaced { "Namespaced" } else { "Cluster" },
            "singularResource": r.singular,
            "verbs": r.verbs,
        });
        if let Some(m) = e.as_object_mut() {
            if !r.short_names.is_empty() {
                m.insert("shortNames".into(), json!(r.short_names));
            }
            if !r.categories.is_empty() {
                m.insert("categories".into(), json!(r.categories));
            }
            if !subs.is_empty() {
                m.insert("subresources".into(), json!(subs));
            }
        }
        resources.push(e);
    }
    let mut meta = json!({});
    if !group.is_empty()
        && let Some(m) = meta.as_object_mut()
    {
        m.insert("name".into(), json!(group));
    }
    json!({
        "metadata": meta,
        "versions": [{"version": version, "resources": resources, "freshness": "Current"}]
    })
}

/// Aggregated discovery (`apidiscovery.k8s.io/v2`) for `/api` (core) or `/apis`.
pub fn aggregated(core: bool) -> Value {
    let items: Vec<Value> = if core {
        vec![discovery_group("", "v1")]
    } else {
        groups()
            .iter()
            .map(|(g, v)| discovery_group(g, v))
            .collect()
    };
    json!({
        "kind": "APIGroupDiscoveryList",
        "apiVersion": "apidiscovery.k8s.io/v2",
        "metadata": {},
        "items": items
    })
}
