//! Cluster checks: the API answers, the namespace exists, the user's rights cover the run.

use std::collections::{BTreeMap, BTreeSet};

use super::{CheckImpl, Finding, not_observed};
use crate::facts::{AccessRules, FactKey, Facts, Need, Probe, ResourceRule};
use crate::report::Evidence;

pub const API: CheckImpl = CheckImpl {
    id: "cluster.api",
    needs: &[FactKey::ServerVersion],
    causes: &["unreachable", "unauthorized", "server-error"],
    run: api,
};

pub const NAMESPACE: CheckImpl = CheckImpl {
    id: "cluster.namespace",
    // The other facts are the evidence that the namespace exists when its object is not
    // readable (a user bound to a Role inside it may not get cluster-scoped namespaces).
    needs: &[
        FactKey::Namespace,
        FactKey::Access,
        FactKey::Workloads,
        FactKey::Pods,
        FactKey::Services,
    ],
    causes: &["missing", "terminating", "forbidden", "inferred"],
    run: namespace,
};

pub const ACCESS: CheckImpl = CheckImpl {
    id: "cluster.access",
    needs: &[FactKey::Access],
    causes: &["limited", "review-unavailable"],
    run: access,
};

fn api(f: &Facts) -> Finding {
    let server = Evidence::new("API server", &f.scope.server).from("kubeconfig");
    let context = Evidence::new(
        "context",
        f.scope
            .context
            .as_deref()
            .unwrap_or("(in-cluster service account)"),
    )
    .from("kubeconfig");
    let found = match &f.server_version {
        Probe::Observed(v) => Finding::pass(format!("Kubernetes {} answers", v.git_version)).with(
            Evidence::new(
                "server version",
                format!("{} ({})", v.git_version, v.platform),
            )
            .from("GET /version"),
        ),
        // A 403 on /version still proves the API is there and authenticates us.
        Probe::Forbidden { .. } => {
            Finding::pass("the API answers (this user may not read /version)")
        }
        Probe::Absent => Finding::problem(
            "server-error",
            "the server answered 404 to GET /version: it does not look like a Kubernetes API server",
        ),
        Probe::Failed(e) => match e.code {
            Some(401) => Finding::problem(
                "unauthorized",
                "the API rejected the credentials (401 Unauthorized)",
            ),
            Some(code) if code >= 500 => Finding::problem(
                "server-error",
                format!("the API kept failing after retries: {e}"),
            ),
            Some(_) => Finding::problem("server-error", format!("unexpected answer: {e}")),
            None => Finding::problem("unreachable", format!("cannot reach the API: {}", e.reason)),
        },
        Probe::NotAttempted(why) => Finding::unknown(None, format!("not attempted: {why}")),
    };
    found.with(server).with(context)
}

fn namespace(f: &Facts) -> Finding {
    let ns = &f.scope.namespace;
    let source = Evidence::new("namespace", ns).from(f.scope.namespace_source.to_string());
    match &f.namespace {
        Probe::Observed(info) if info.phase.as_deref() == Some("Terminating") => Finding::problem(
            "terminating",
            format!("namespace {ns} is being deleted (phase Terminating)"),
        ),
        Probe::Observed(_) => Finding::pass(format!("namespace {ns} exists")),
        Probe::Absent => Finding::problem(
            "missing",
            format!(
                "namespace {ns} does not exist (taken from {})",
                f.scope.namespace_source
            ),
        ),
        Probe::Forbidden { verb, resource } => {
            let missing = Evidence::new("missing permission", format!("{verb} {resource}"))
                .from(format!("{verb} namespaces/{ns}"));
            if let Some(seen) = objects_seen(f) {
                return Finding::pass(format!(
                    "namespace {ns} exists: the API returned {seen} in it (this user may not {verb} {resource}, so its phase is not known)"
                ))
                .with(Evidence::new("objects in it", seen).from("namespaced lists"))
                .with(missing)
                .with(source);
            }
            if let Some(rights) = namespaced_rights(f) {
                return Finding::warn(
                    "inferred",
                    format!(
                        "namespace {ns} probably exists: this user holds rights in it ({rights}) but may not {verb} {resource}, and no object in it was seen"
                    ),
                )
                .with(Evidence::new("rights in the namespace", rights).from("SelfSubjectRulesReview"))
                .with(missing)
                .with(source);
            }
            let mut found = not_observed(&f.namespace, &format!("namespace {ns}"));
            found.cause = Some("forbidden");
            found
        }
        other => not_observed(other, &format!("namespace {ns}")),
    }
    .with(source)
}

/// The namespaced objects the API returned, as `2 pods, 1 deployment`, when any: an object
/// listed in the namespace proves it exists (a list in a namespace that does not exist is
/// merely empty).
fn objects_seen(f: &Facts) -> Option<String> {
    let count = |n: usize, what: &str| (n > 0).then(|| format!("{n} {what}"));
    let len = |p: Option<usize>| p.unwrap_or(0);
    let parts: Vec<String> = [
        count(len(f.deployments.observed().map(Vec::len)), "deployment(s)"),
        count(
            len(f.statefulsets.observed().map(Vec::len)),
            "statefulset(s)",
        ),
        count(len(f.pods.observed().map(Vec::len)), "pod(s)"),
        count(len(f.services.observed().map(Vec::len)), "service(s)"),
    ]
    .into_iter()
    .flatten()
    .collect();
    (!parts.is_empty()).then(|| parts.join(", "))
}

/// Rights on namespaced resources the rules review shows, beyond the reviews every user may
/// make: a hint (not proof) that a RoleBinding exists in the namespace.
fn namespaced_rights(f: &Facts) -> Option<String> {
    let rules = f.access.observed()?;
    let rights: BTreeSet<String> = rules
        .rules
        .iter()
        .flat_map(|r| r.resources.iter())
        .filter(|res| !res.starts_with("selfsubject"))
        .cloned()
        .collect();
    (!rights.is_empty()).then(|| rights.into_iter().collect::<Vec<_>>().join(", "))
}

/// True when one of `rules` grants `verb` on `group`/`resource` for every object (a rule limited
/// to resourceNames does not cover a list, so it does not count).
pub fn allows(rules: &[ResourceRule], verb: &str, group: &str, resource: &str) -> bool {
    let (base, sub) = match resource.split_once('/') {
        Some((b, s)) => (b, Some(s)),
        None => (resource, None),
    };
    rules.iter().any(|r| {
        let any = |v: &[String], want: &str| v.iter().any(|x| x == "*" || x == want);
        let resource_ok = r.resources.iter().any(|x| {
            x == "*"
                || x == resource
                || sub.is_some_and(|s| x == &format!("{base}/*") || x == &format!("*/{s}"))
        });
        r.resource_names.is_empty()
            && any(&r.verbs, verb)
            && any(&r.api_groups, group)
            && resource_ok
    })
}

/// The needs the rules do not cover, with the checks that need each.
pub fn missing_rights<'a>(
    rules: &AccessRules,
    needs: &'a [Need],
) -> BTreeMap<String, Vec<&'a str>> {
    let mut missing: BTreeMap<String, Vec<&str>> = BTreeMap::new();
    for n in needs {
        if !allows(&rules.rules, &n.verb, &n.group, &n.resource) {
            let group = if n.group.is_empty() {
                String::new()
            } else {
                format!(".{}", n.group)
            };
            missing
                .entry(format!("{} {}{}", n.verb, n.resource, group))
                .or_default()
                .push(&n.check);
        }
    }
    missing
}

fn access(f: &Facts) -> Finding {
    let rules = match &f.access {
        Probe::Observed(r) => r,
        other => {
            let mut found = not_observed(other, "the user's permissions");
            found.cause = Some("review-unavailable");
            return found;
        }
    };
    let missing = missing_rights(rules, &f.needs);
    let evidence = missing.iter().map(|(right, checks)| {
        Evidence::new(right.clone(), format!("needed by {}", checks.join(", ")))
            .from("SelfSubjectRulesReview")
    });
    if missing.is_empty() {
        let distinct: std::collections::BTreeSet<(&str, &str, &str)> = f
            .needs
            .iter()
            .map(|n| (n.verb.as_str(), n.group.as_str(), n.resource.as_str()))
            .collect();
        let distinct = distinct.len();
        return Finding::pass(format!(
            "this user may do all {distinct} reads the checks need in namespace {}",
            f.scope.namespace
        ));
    }
    if rules.incomplete {
        let why = rules
            .evaluation_error
            .as_deref()
            .unwrap_or("the authorizer could not list every rule");
        return Finding::unknown(
            Some("review-unavailable"),
            format!(
                "the rules review is incomplete ({why}); {} right(s) not shown may still be granted",
                missing.len()
            ),
        )
        .with_all(evidence);
    }
    let limited: std::collections::BTreeSet<&str> = missing.values().flatten().copied().collect();
    Finding::problem(
        "limited",
        format!(
            "{} right(s) missing; these checks will report unknown: {}",
            missing.len(),
            limited.into_iter().collect::<Vec<_>>().join(", ")
        ),
    )
    .with_all(evidence)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::Outcome;
    use crate::checks::test_support::empty;
    use crate::facts::{NamespaceInfo, ServerVersion};

    fn rule(verbs: &[&str], groups: &[&str], resources: &[&str]) -> ResourceRule {
        let s = |v: &[&str]| v.iter().map(|x| (*x).to_owned()).collect();
        ResourceRule {
            verbs: s(verbs),
            api_groups: s(groups),
            resources: s(resources),
            resource_names: Vec::new(),
        }
    }

    fn need(check: &str, verb: &str, group: &str, resource: &str) -> Need {
        Need {
            check: check.into(),
            verb: verb.into(),
            group: group.into(),
            resource: resource.into(),
        }
    }

    #[test]
    fn api_pass_and_each_failure_cause() {
        let mut f = empty();
        f.server_version = Probe::Observed(ServerVersion {
            git_version: "v1.33.1".into(),
            platform: "linux/amd64".into(),
        });
        let found = api(&f);
        assert_eq!(found.outcome, Outcome::Pass);
        assert!(found.message.contains("v1.33.1"));

        f.server_version = Probe::failed(None, "connection refused");
        assert_eq!(api(&f).cause, Some("unreachable"));
        f.server_version = Probe::failed(Some(401), "Unauthorized");
        assert_eq!(api(&f).cause, Some("unauthorized"));
        f.server_version = Probe::failed(Some(503), "unavailable");
        assert_eq!(api(&f).cause, Some("server-error"));
        f.server_version = Probe::NotAttempted("deadline".into());
        assert_eq!(api(&f).outcome, Outcome::Unknown);
    }

    #[test]
    fn a_forbidden_namespace_is_proven_by_objects_in_it_or_suggested_by_rights() {
        let mut f = empty();
        f.namespace = Probe::Forbidden {
            verb: "get".into(),
            resource: "namespaces".into(),
        };
        // Nothing else known: unknown, naming the right.
        let r = namespace(&f);
        assert_eq!((r.outcome, r.cause), (Outcome::Unknown, Some("forbidden")));
        assert!(r.message.contains("get namespaces"), "{}", r.message);
        // Rights in it (beyond the reviews anyone may make): a warning, not a pass.
        f.access = Probe::Observed(AccessRules {
            rules: vec![
                rule(
                    &["create"],
                    &["authorization.k8s.io"],
                    &["selfsubjectrulesreviews"],
                ),
                rule(&["get", "list"], &[""], &["pods", "services"]),
            ],
            incomplete: false,
            evaluation_error: None,
        });
        let r = namespace(&f);
        assert_eq!((r.outcome, r.cause), (Outcome::Warn, Some("inferred")));
        assert!(r.message.contains("pods, services"), "{}", r.message);
        // An empty list proves nothing; a listed object does.
        f.pods = Probe::Observed(Vec::new());
        assert_eq!(namespace(&f).outcome, Outcome::Warn);
        f.pods = Probe::Observed(vec![Default::default()]);
        let r = namespace(&f);
        assert_eq!(r.outcome, Outcome::Pass);
        assert!(r.message.contains("1 pod(s)"), "{}", r.message);
        assert!(
            r.evidence
                .iter()
                .any(|e| e.label == "missing permission" && e.value == "get namespaces")
        );
    }

    #[test]
    fn namespace_missing_names_where_it_came_from() {
        let mut f = empty();
        f.namespace = Probe::Absent;
        let found = namespace(&f);
        assert_eq!(
            (found.outcome, found.cause),
            (Outcome::Problem, Some("missing"))
        );
        assert!(found.message.contains("--namespace"), "{}", found.message);
        f.namespace = Probe::Observed(NamespaceInfo {
            name: "elsa".into(),
            phase: Some("Terminating".into()),
            labels: Default::default(),
        });
        assert_eq!(namespace(&f).cause, Some("terminating"));
        f.namespace = Probe::Forbidden {
            verb: "get".into(),
            resource: "namespaces".into(),
        };
        let found = namespace(&f);
        assert_eq!(
            (found.outcome, found.cause),
            (Outcome::Unknown, Some("forbidden"))
        );
    }

    #[test]
    fn rules_match_wildcards_and_subresources_but_not_named_objects() {
        let rules = vec![
            rule(&["get", "list"], &[""], &["pods"]),
            rule(&["*"], &["apps"], &["*"]),
            rule(&["get"], &[""], &["pods/*"]),
            ResourceRule {
                resource_names: vec!["one".into()],
                ..rule(&["list"], &[""], &["events"])
            },
        ];
        assert!(allows(&rules, "list", "", "pods"));
        assert!(!allows(&rules, "watch", "", "pods"));
        assert!(allows(&rules, "list", "apps", "statefulsets"));
        assert!(allows(&rules, "get", "", "pods/log"));
        assert!(
            !allows(&rules, "list", "", "events"),
            "resourceNames do not grant a list"
        );
        assert!(
            !allows(&rules, "list", "", "deployments"),
            "apps rules do not grant core"
        );
    }

    #[test]
    fn access_names_missing_rights_and_affected_checks() {
        let mut f = empty();
        f.needs = vec![
            need("workload.pods", "list", "", "pods"),
            need("workload.pods", "list", "", "events"),
            need("workload.found", "list", "apps", "deployments"),
        ];
        f.access = Probe::Observed(AccessRules {
            rules: vec![rule(&["get", "list", "watch"], &["apps"], &["deployments"])],
            incomplete: false,
            evaluation_error: None,
        });
        let found = access(&f);
        assert_eq!(
            (found.outcome, found.cause),
            (Outcome::Problem, Some("limited"))
        );
        assert!(found.message.contains("workload.pods"));
        assert!(!found.message.contains("workload.found"));
        let labels: Vec<_> = found.evidence.iter().map(|e| e.label.as_str()).collect();
        assert_eq!(labels, ["list events", "list pods"]);

        if let Probe::Observed(r) = &mut f.access {
            r.incomplete = true;
        }
        assert_eq!(access(&f).outcome, Outcome::Unknown);

        f.access = Probe::Observed(AccessRules {
            rules: vec![rule(&["*"], &["*"], &["*"])],
            incomplete: false,
            evaluation_error: None,
        });
        assert_eq!(access(&f).outcome, Outcome::Pass);
    }
}
