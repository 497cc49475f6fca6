//! Authorization of the simulated API server: the `rbac:` section of
//! `sim.yaml` evaluated like the RBAC authorizer (verbs, API groups,
//! resources with `res/sub`, `res/*` and `*/sub`, resourceNames, and the sim's
//! per-rule `namespaces` standing in for RoleBindings), plus `deny` entries.
//!
//! The same evaluation answers SelfSubjectAccessReviews and produces the
//! SelfSubjectRulesReview status, so what the server enforces and what it
//! reports can never disagree.

use serde_json::{Value, json};

use super::config::{DenyConfig, RbacConfig, RuleConfig};
use super::resources::RESOURCES;

/// Every resource verb, in the order real rules list them.
pub const ALL_VERBS: &[&str] = &[
    "get",
    "list",
    "watch",
    "create",
    "update",
    "patch",
    "delete",
    "deletecollection",
];

/// Paths every authenticated user may GET (`system:discovery`,
/// `system:basic-user`, `system:public-info-viewer`).
const DISCOVERY_PATHS: &[&str] = &[
    "/api",
    "/api/*",
    "/apis",
    "/apis/*",
    "/healthz",
    "/livez",
    "/openapi",
    "/openapi/*",
    "/readyz",
    "/version",
    "/version/",
];

/// Paths anonymous users may GET (`system:public-info-viewer`).
const PUBLIC_PATHS: &[&str] = &["/healthz", "/livez", "/readyz", "/version", "/version/"];

/// What a request asks to do.
#[derive(Debug, Clone)]
pub struct Attributes<'a> {
    /// Verb.
    pub verb: &'a str,
    /// API group.
    pub group: &'a str,
    /// Resource plural.
    pub resource: &'a str,
    /// Subresource.
    pub subresource: Option<&'a str>,
    /// Namespace (`""` = cluster scope).
    pub namespace: &'a str,
    /// Object name.
    pub name: Option<&'a str>,
}

/// The doctor's authorization.
#[derive(Debug, Clone)]
pub struct Rbac {
    /// User name shown in Forbidden messages.
    pub user: String,
    rules: Option<Vec<RuleConfig>>,
    deny: Vec<DenyConfig>,
}

fn path_matches(pattern: &str, path: &str) -> bool {
    if pattern == "*" {
        return true;
    }
    match pattern.strip_suffix('*') {
        Some(prefix) => path.starts_with(prefix),
        None => pattern == path,
    }
}

fn rule_allows(rule: &RuleConfig, a: &Attributes<'_>) -> bool {
    if !rule.namespaces.is_empty()
        && (a.namespace.is_empty() || !rule.namespaces.iter().any(|n| n == a.namespace))
    {
        return false;
    }
    let verb_ok = rule.verbs.iter().any(|v| v == "*" || v == a.verb);
    let group_ok = rule.api_groups.iter().any(|g| g == "*" || g == a.group);
    let combined = match a.subresource {
        Some(s) => format!("{}/{s}", a.resource),
        None => a.resource.to_string(),
    };
    let resource_ok = rule.resources.iter().any(|r| {
        r == "*"
            || *r == combined
            || a.subresource
                .is_some_and(|s| *r == format!("{}/*", a.resource) || *r == format!("*/{s}"))
    });
    let name_ok = rule.resource_names.is_empty()
        || a.name
            .is_some_and(|n| rule.resource_names.iter().any(|x| x == n));
    verb_ok && group_ok && resource_ok && name_ok
}

fn deny_matches(d: &DenyConfig, a: &Attributes<'_>) -> bool {
    let combined = match a.subresource {
        Some(s) => format!("{}/{s}", a.resource),
        None => a.resource.to_string(),
    };
    let resource_ok = match d.subresource.as_deref() {
        None => d.resource == "*" || d.resource == combined,
        Some(sub) => {
            (d.resource == "*" || d.resource == a.resource)
                && a.subresource.is_some_and(|s| sub == "*" || sub == s)
        }
    };
    (d.verb == "*" || d.verb == a.verb)
        && resource_ok
        && d.group.as_deref().is_none_or(|g| g == "*" || g == a.group)
        && d.namespace.as_deref().is_none_or(|n| n == a.namespace)
}

impl Rbac {
    /// From the `rbac:` section; `None` means everything is allowed.
    pub fn new(cfg: Option<&RbacConfig>, default_namespace: &str) -> Rbac {
        let user = cfg
            .and_then(|c| c.user.clone())
            .unwrap_or_else(|| format!("system:serviceaccount:{default_namespace}:doctor"));
        Rbac {
            user,
            rules: cfg.and_then(|c| c.rules.clone()),
            deny: cfg.map(|c| c.deny.clone()).unwrap_or_default(),
        }
    }

    /// Whether a resource request is allowed. Self reviews always are.
    pub fn allows(&self, a: &Attributes<'_>) -> bool {
        if a.group == "authorization.k8s.io"
            && matches!(
                a.resource,
                "selfsubjectrulesreviews" | "selfsubjectaccessreviews"
            )
            && a.verb == "create"
        {
            return true;
        }
        let granted = match &self.rules {
            None => true,
            Some(rules) => rules.iter().any(|r| rule_allows(r, a)),
        };
        granted && !self.deny.iter().any(|d| deny_matches(d, a))
    }

    /// Whether a non-resource request (`/version`, `/healthz`) is allowed.
    pub fn allows_path(&self, verb: &str, path: &str, anonymous: bool) -> bool {
        if verb == "get" || verb == "head" {
            let public = if anonymous {
                PUBLIC_PATHS
            } else {
                DISCOVERY_PATHS
            };
            if public.iter().any(|p| path_matches(p, path)) {
                return true;
            }
        }
        if anonymous {
            return false;
        }
        match &self.rules {
            None => true,
            Some(rules) => rules.iter().any(|r| {
                r.namespaces.is_empty()
                    && r.verbs.iter().any(|v| v == "*" || v == verb)
                    && r.non_resource_urls.iter().any(|p| path_matches(p, path))
            }),
        }
    }

    /// `status` of a SelfSubjectRulesReview for `namespace`.
    pub fn rules_review(&self, namespace: &str) -> Value {
        let mut resource_rules: Vec<Value> = vec![json!({
            "verbs": ["create"],
            "apiGroups": ["authorization.k8s.io"],
            "resources": ["selfsubjectaccessreviews", "selfsubjectrulesreviews"]
        })];
        let mut non_resource_rules: Vec<Value> = Vec::new();
        match (&self.rules, self.deny.is_empty()) {
            (None, true) => {
                resource_rules
                    .push(json!({"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]}));
                non_resource_rules.push(json!({"verbs": ["*"], "nonResourceURLs": ["*"]}));
            }
            (Some(rules), true) => {
                for r in rules.iter().filter(|r| {
                    r.namespaces.is_empty() || r.namespaces.iter().any(|n| n == namespace)
                }) {
                    if !r.resources.is_empty() {
                        let mut v = json!({
                            "verbs": r.verbs,
                            "apiGroups": r.api_groups,
                            "resources": r.resources,
                        });
                        if !r.resource_names.is_empty()
                            && let Some(m) = v.as_object_mut()
                        {
                            m.insert("resourceNames".into(), json!(r.resource_names));
                        }
                        resource_rules.push(v);
                    }
                    if !r.non_resource_urls.is_empty() && r.namespaces.is_empty() {
                        non_resource_rules.push(
                            json!({"verbs": r.verbs, "nonResourceURLs": r.non_resource_urls}),
                        );
                    }
                }
            }
            (rules, false) => {
                // Explicit per-resource rules: exactly what `allows` permits.
                let mut grouped: Vec<(String, Vec<String>, Vec<String>)> = Vec::new();
                for def in RESOURCES.iter().filter(|d| d.stored) {
                    let mut names: Vec<(String, Option<&str>)> =
                        vec![(def.plural.to_string(), None)];
                    for (sub, _, _, _) in def.subresources {
                        names.push((format!("{}/{sub}", def.plural), Some(sub)));
                    }
                    for (combined, sub) in names {
                        let verbs: Vec<String> = ALL_VERBS
                            .iter()
                            .filter(|v| {
                                self.allows(&Attributes {
                                    verb: v,
                                    group: def.group,
                                    resource: def.plural,
                                    subresource: sub,
                                    namespace,
                                    name: None,
                                })
                            })
                            .map(|v| (*v).to_string())
                            .collect();
                        if verbs.is_empty() {
                            continue;
                        }
                        match grouped
                            .iter_mut()
                            .find(|(g, vs, _)| g == def.group && *vs == verbs)
                        {
                            Some((_, _, rs)) => rs.push(combined),
                            None => grouped.push((def.group.to_string(), verbs, vec![combined])),
                        }
                    }
                }
                for (g, verbs, rs) in grouped {
                    resource_rules.push(json!({"verbs": verbs, "apiGroups": [g], "resources": rs}));
                }
                match rules {
                    None => {
                        non_resource_rules.push(json!({"verbs": ["*"], "nonResourceURLs": ["*"]}))
                    }
                    Some(rules) => {
                        for r in rules
                            .iter()
                            .filter(|r| !r.non_resource_urls.is_empty() && r.namespaces.is_empty())
                        {
                            non_resource_rules.push(
                                json!({"verbs": r.verbs, "nonResourceURLs": r.non_resource_urls}),
                            );
                        }
                    }
                }
            }
        }
        non_resource_rules.push(json!({"verbs": ["get"], "nonResourceURLs": DISCOVERY_PATHS}));
        json!({
            "resourceRules": resource_rules,
            "nonResourceRules": non_resource_rules,
            "incomplete": false
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attrs<'a>(verb: &'a str, group: &'a str, resource: &'a str, ns: &'a str) -> Attributes<'a> {
        Attributes {
            verb,
            group,
            resource,
            subresource: None,
            namespace: ns,
            name: None,
        }
    }

    #[test]
    fn allow_all_by_default() {
        let r = Rbac::new(None, "elsa");
        assert_eq!(r.user, "system:serviceaccount:elsa:doctor");
        assert!(r.allows(&attrs("list", "", "pods", "elsa")));
        assert!(r.allows_path("get", "/metrics", false));
        assert!(!r.allows_path("get", "/api", true));
        assert!(r.allows_path("get", "/version", true));
    }

    #[test]
    fn deny_list() {
        let cfg = RbacConfig {
            deny: vec![DenyConfig {
                verb: "list".into(),
                resource: "pods".into(),
                ..DenyConfig::default()
            }],
            ..RbacConfig::default()
        };
        let r = Rbac::new(Some(&cfg), "elsa");
        assert!(!r.allows(&attrs("list", "", "pods", "elsa")));
        assert!(!r.allows(&attrs("list", "", "pods", "")));
        assert!(r.allows(&attrs("get", "", "pods", "elsa")));
        let review = r.rules_review("elsa");
        let rules = review["resourceRules"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let pods_rule = rules
            .iter()
            .find(|r| {
                r["resources"]
                    .as_array()
                    .is_some_and(|a| a.contains(&json!("pods")))
            })
            .expect("a rule for pods");
        assert!(
            !pods_rule["verbs"]
                .as_array()
                .is_some_and(|v| v.contains(&json!("list")))
        );
        assert!(
            pods_rule["verbs"]
                .as_array()
                .is_some_and(|v| v.contains(&json!("get")))
        );
    }

    #[test]
    fn deny_subresource() {
        let cfg = RbacConfig {
            deny: vec![DenyConfig {
                verb: "create".into(),
                resource: "pods".into(),
                subresource: Some("portforward".into()),
                ..DenyConfig::default()
            }],
            ..RbacConfig::default()
        };
        let r = Rbac::new(Some(&cfg), "elsa");
        let mut pf = attrs("create", "", "pods", "elsa");
        pf.subresource = Some("portforward");
        assert!(!r.allows(&pf));
        pf.verb = "get";
        assert!(r.allows(&pf));
        assert!(r.allows(&attrs("create", "", "pods", "elsa")));
        let mut log = attrs("create", "", "pods", "elsa");
        log.subresource = Some("log");
        assert!(r.allows(&log));

        let any_sub = RbacConfig {
            deny: vec![DenyConfig {
                verb: "*".into(),
                resource: "pods".into(),
                subresource: Some("*".into()),
                ..DenyConfig::default()
            }],
            ..RbacConfig::default()
        };
        let r = Rbac::new(Some(&any_sub), "elsa");
        assert!(!r.allows(&log));
        assert!(r.allows(&attrs("get", "", "pods", "elsa")));
    }

    #[test]
    fn rules_with_namespaces_and_subresources() {
        let cfg = RbacConfig {
            rules: Some(vec![
                RuleConfig {
                    api_groups: vec!["".into(), "apps".into()],
                    resources: vec!["pods".into(), "deployments".into()],
                    verbs: vec!["get".into(), "list".into()],
                    namespaces: vec!["elsa".into()],
                    ..RuleConfig::default()
                },
                RuleConfig {
                    api_groups: vec!["".into()],
                    resources: vec!["pods/*".into()],
                    verbs: vec!["get".into()],
                    ..RuleConfig::default()
                },
            ]),
            ..RbacConfig::default()
        };
        let r = Rbac::new(Some(&cfg), "elsa");
        assert!(r.allows(&attrs("list", "apps", "deployments", "elsa")));
        assert!(!r.allows(&attrs("list", "apps", "deployments", "other")));
        assert!(!r.allows(&attrs("list", "apps", "deployments", "")));
        assert!(!r.allows(&attrs("get", "", "namespaces", "elsa")));
        let mut log = attrs("get", "", "pods", "other");
        log.subresource = Some("log");
        assert!(r.allows(&log));
        assert!(r.allows(&attrs(
            "create",
            "authorization.k8s.io",
            "selfsubjectrulesreviews",
            ""
        )));
        assert!(r.allows_path("get", "/apis/apps/v1", false));
        assert!(!r.allows_path("get", "/metrics", false));
        let review = r.rules_review("other");
        assert_eq!(review["resourceRules"].as_array().map(Vec::len), Some(2));
    }

    #[test]
    fn resource_names() {
        let cfg = RbacConfig {
            rules: Some(vec![RuleConfig {
                api_groups: vec!["".into()],
                resources: vec!["secrets".into()],
                verbs: vec!["get".into()],
                resource_names: vec!["postgres-secret".into()],
                ..RuleConfig::default()
            }]),
            ..RbacConfig::default()
        };
        let r = Rbac::new(Some(&cfg), "elsa");
        let mut a = attrs("get", "", "secrets", "elsa");
        assert!(!r.allows(&a));
        a.name = Some("postgres-secret");
        assert!(r.allows(&a));
        a.name = Some("other");
        assert!(!r.allows(&a));
    }
}
