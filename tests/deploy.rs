//! deploy/: the manifests parse as Kubernetes objects (k8s-openapi types), the read-only Role
//! grants exactly what the catalogue's `needs` list (computed from the embedded catalogue, so a
//! new check's need fails here until rbac.yaml grants it), nothing mutating beyond what a check
//! names, the debug-pod Role holds the verbs its modes need, and the Job and the Dockerfile agree.

use std::collections::BTreeSet;
use std::path::Path;

use elsadoctor::catalogue::{Catalogue, parse_need};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::ServiceAccount;
use k8s_openapi::api::rbac::v1::{PolicyRule, Role, RoleBinding};
use serde_json::Value;

const READ_VERBS: &[&str] = &["get", "list", "watch"];

fn docs(file: &str) -> Vec<Value> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("deploy")
        .join(file);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{file}: {e}"));
    serde_saphyr::from_multiple(&text).unwrap_or_else(|e| panic!("{file} is not YAML: {e}"))
}

fn object<T: serde::de::DeserializeOwned>(docs: &[Value], kind: &str, name: &str) -> T {
    let doc = docs
        .iter()
        .find(|d| d["kind"] == kind && d["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} {name}"));
    serde_json::from_value(doc.clone()).unwrap_or_else(|e| panic!("{kind} {name}: {e}"))
}

/// (verb, apiGroup, resource) triples a set of rules grants. Wildcards are refused outright.
fn grants(rules: &[PolicyRule]) -> BTreeSet<(String, String, String)> {
    let mut out = BTreeSet::new();
    for rule in rules {
        assert!(
            rule.resource_names.as_ref().is_none_or(Vec::is_empty),
            "no resourceNames: {rule:?}"
        );
        assert!(rule.non_resource_urls.is_none(), "a Role has no URLs");
        for group in rule.api_groups.iter().flatten() {
            for resource in rule.resources.iter().flatten() {
                for verb in &rule.verbs {
                    assert!(
                        group != "*" && resource != "*" && verb != "*",
                        "no wildcards: {rule:?}"
                    );
                    out.insert((verb.clone(), group.clone(), resource.clone()));
                }
            }
        }
    }
    out
}

/// What the checks need, as (verb, group, resource), and their non-resource URLs.
fn catalogue_needs() -> (BTreeSet<(String, String, String)>, BTreeSet<String>) {
    let catalogue = Catalogue::embedded().expect("catalogue");
    let mut resources = BTreeSet::new();
    let mut urls = BTreeSet::new();
    for check in &catalogue.checks {
        for need in &check.needs {
            match parse_need(need) {
                Some((verb, group, resource)) => {
                    resources.insert((verb.to_owned(), group.to_owned(), resource.to_owned()));
                }
                None => {
                    urls.insert(need.clone());
                }
            }
        }
    }
    (resources, urls)
}

fn show(set: &BTreeSet<(String, String, String)>) -> String {
    set.iter()
        .map(|(v, g, r)| {
            if g.is_empty() {
                format!("{v} {r}")
            } else {
                format!("{v} {r}.{g}")
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

#[test]
fn the_read_only_role_grants_exactly_the_catalogues_needs() {
    let rbac = docs("rbac.yaml");
    let role: Role = object(&rbac, "Role", "elsadoctor");
    let granted = grants(role.rules.as_deref().unwrap_or_default());
    let (needed, urls) = catalogue_needs();
    assert!(!needed.is_empty(), "the catalogue lists needs");

    let missing: BTreeSet<_> = needed.difference(&granted).cloned().collect();
    assert!(
        missing.is_empty(),
        "deploy/rbac.yaml Role elsadoctor lacks: {} (a check's `needs` lists them)",
        show(&missing)
    );
    let extra: BTreeSet<_> = granted.difference(&needed).cloned().collect();
    assert!(
        extra.is_empty(),
        "deploy/rbac.yaml Role elsadoctor grants what no check needs: {}",
        show(&extra)
    );
    // Nothing mutating unless a check names it (the rules review, pods/exec, pods/portforward).
    for (verb, group, resource) in &granted {
        if !READ_VERBS.contains(&verb.as_str()) {
            assert!(
                needed.contains(&(verb.clone(), group.clone(), resource.clone())),
                "mutating {verb} {resource} granted without a check needing it"
            );
            assert!(
                ![
                    "update",
                    "patch",
                    "delete",
                    "deletecollection",
                    "escalate",
                    "bind"
                ]
                .contains(&verb.as_str()),
                "the read-only Role must not {verb} {resource}"
            );
        }
    }
    // Non-resource URLs cannot be granted by a Role; only ones every user may read are allowed.
    for url in &urls {
        assert!(
            ["get /version", "get /healthz", "get /readyz", "get /livez"].contains(&url.as_str()),
            "{url} needs a ClusterRole: deploy/rbac.yaml cannot grant it"
        );
    }
}

#[test]
fn the_debug_pod_role_holds_the_mutating_verbs_and_nothing_else() {
    let rbac = docs("rbac.yaml");
    let role: Role = object(&rbac, "Role", "elsadoctor-debug-pod");
    let granted = grants(role.rules.as_deref().unwrap_or_default());
    let t = |v: &str, r: &str| (v.to_owned(), String::new(), r.to_owned());
    let want: BTreeSet<_> = ["create", "get", "list", "watch", "delete"]
        .iter()
        .map(|v| t(v, "pods"))
        .chain([t("get", "pods/log"), t("patch", "pods/ephemeralcontainers")])
        .collect();
    assert_eq!(granted, want, "{}", show(&granted));
}

#[test]
fn both_roles_are_bound_to_the_service_account_the_job_uses() {
    let rbac = docs("rbac.yaml");
    let sa: ServiceAccount = object(&rbac, "ServiceAccount", "elsadoctor");
    let namespace = sa.metadata.namespace.clone().expect("namespaced");
    for role in ["elsadoctor", "elsadoctor-debug-pod"] {
        let binding: RoleBinding = object(&rbac, "RoleBinding", role);
        assert_eq!(binding.role_ref.kind, "Role");
        assert_eq!(binding.role_ref.name, role);
        assert_eq!(
            binding.metadata.namespace.as_deref(),
            Some(namespace.as_str())
        );
        let subjects = binding.subjects.unwrap_or_default();
        assert_eq!(subjects.len(), 1, "{role}");
        assert_eq!(subjects[0].kind, "ServiceAccount");
        assert_eq!(Some(&subjects[0].name), sa.metadata.name.as_ref());
        assert_eq!(subjects[0].namespace.as_deref(), Some(namespace.as_str()));
        let r: Role = object(&rbac, "Role", role);
        assert_eq!(r.metadata.namespace.as_deref(), Some(namespace.as_str()));
    }

    let jobs = docs("job.yaml");
    let job: Job = object(&jobs, "Job", "elsadoctor");
    assert_eq!(job.metadata.namespace.as_deref(), Some(namespace.as_str()));
    let spec = job.spec.expect("spec");
    assert_eq!(spec.backoff_limit, Some(0), "a failed check must not rerun");
    let pod = spec.template.spec.expect("pod spec");
    assert_eq!(pod.service_account_name.as_deref(), Some("elsadoctor"));
    assert_eq!(pod.restart_policy.as_deref(), Some("Never"));
    let psc = pod.security_context.expect("pod securityContext");
    assert_eq!(psc.run_as_non_root, Some(true));
    let [c] = &pod.containers[..] else {
        panic!("one container");
    };
    let args = c.args.clone().unwrap_or_default();
    assert!(args.iter().any(|a| a == "--json"), "{args:?}");
    let i = args.iter().position(|a| a == "-n").expect("-n");
    assert_eq!(args.get(i + 1), Some(&namespace));
    let sc = c
        .security_context
        .clone()
        .expect("container securityContext");
    assert_eq!(sc.read_only_root_filesystem, Some(true));
    assert_eq!(sc.allow_privilege_escalation, Some(false));
    assert_eq!(
        sc.capabilities.and_then(|c| c.drop),
        Some(vec!["ALL".to_owned()])
    );
    let res = c.resources.clone().expect("resources");
    for (what, map) in [("requests", res.requests), ("limits", res.limits)] {
        let map = map.unwrap_or_else(|| panic!("{what}"));
        assert!(
            map.contains_key("cpu") && map.contains_key("memory"),
            "{what}"
        );
    }

    // The image's user is the one the Job runs as.
    let dockerfile =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/Dockerfile"))
            .expect("Dockerfile");
    let user = dockerfile
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix("USER "))
        .expect("a USER line");
    let uid: i64 = user
        .split(':')
        .next()
        .and_then(|u| u.trim().parse().ok())
        .expect("numeric uid");
    assert_eq!(psc.run_as_user, Some(uid));
    assert_ne!(uid, 0);
    assert!(
        dockerfile.contains("--target x86_64-unknown-linux-musl"),
        "a static build"
    );
}
