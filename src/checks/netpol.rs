//! `network.policy`: do the NetworkPolicies of Elsa's namespace let the Elsa pods reach cluster
//! DNS (UDP and TCP 53 to the `k8s-app=kube-dns` pods in `kube-system`) and the database pods on
//! their port, and let the database pods accept Elsa? Evaluated by [`crate::domain::netpol`];
//! each finding names the policy and rule that decides.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Container, Pod, Service};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::{CheckImpl, Finding, not_observed};
use crate::domain::netpol::{
    self, DNS_NAMESPACE, DNS_POD_LABEL, Direction, NamedPort, NsLabels, Party, Traffic, Verdict,
};
use crate::domain::service_host::{self, Host};
use crate::domain::workload::Workload;
use crate::facts::{FactKey, Facts, NOT_IN_BUNDLE, NetworkObservation, PolicyFacts, Probe};
use crate::report::Evidence;

pub const POLICY: CheckImpl = CheckImpl {
    id: "network.policy",
    needs: &[
        FactKey::Namespace,
        FactKey::Workloads,
        FactKey::ConfigSources,
        FactKey::Services,
        FactKey::PodFiles,
        FactKey::DbPods,
        FactKey::NetworkPolicies,
    ],
    causes: &[
        "dns-blocked",
        "namespace-label",
        "db-egress-blocked",
        "db-ingress-blocked",
    ],
    run: policy,
};

/// The pod template labels of a workload (what its pods carry, besides the controllers').
fn template_labels(w: Workload<'_>) -> BTreeMap<String, String> {
    let meta = match w {
        Workload::Deployment(d) => d.spec.as_ref().and_then(|s| s.template.metadata.as_ref()),
        Workload::StatefulSet(s) => s.spec.as_ref().and_then(|s| s.template.metadata.as_ref()),
    };
    meta.and_then(|m| m.labels.clone()).unwrap_or_default()
}

fn named_ports<'a>(containers: impl IntoIterator<Item = &'a Container>) -> Vec<NamedPort> {
    containers
        .into_iter()
        .flat_map(|c| c.ports.iter().flatten())
        .filter_map(|p| {
            Some(NamedPort {
                name: p.name.clone()?,
                port: u16::try_from(p.container_port).ok()?,
                protocol: p.protocol.clone().unwrap_or_else(|| "TCP".to_owned()),
            })
        })
        .collect()
}

/// What is known of a namespace's labels, from the namespace fact, the policies' facts or the
/// bundle.
fn ns_labels(f: &Facts, pf: &PolicyFacts, name: &str) -> NsLabels {
    let lint = f.bundle.is_some();
    if let Some(ns) = f.namespace.observed().filter(|n| n.name == name) {
        return NsLabels::read(name, ns.labels.clone());
    }
    let why = match pf.namespaces.get(name) {
        Some(Probe::Observed(labels)) => return NsLabels::read(name, labels.clone()),
        Some(Probe::Forbidden { verb, resource }) => {
            format!("this user may not {verb} {resource} ({name})")
        }
        Some(Probe::NotAttempted(why)) if why == NOT_IN_BUNDLE => {
            format!("namespace {name} is {NOT_IN_BUNDLE}")
        }
        Some(other) => other.why_not().unwrap_or_default(),
        None if lint => format!("namespace {name} is {NOT_IN_BUNDLE}"),
        None => format!("the labels of namespace {name} were not read"),
    };
    NsLabels {
        name_label_unset: lint,
        ..NsLabels::unread(name, why)
    }
}

/// The cluster DNS pods as CoreDNS runs them.
fn dns_party(f: &Facts, pf: &PolicyFacts) -> Party {
    Party {
        namespace: ns_labels(f, pf, DNS_NAMESPACE),
        pod_labels: Some(BTreeMap::from([(
            DNS_POD_LABEL.0.to_owned(),
            DNS_POD_LABEL.1.to_owned(),
        )])),
        ip: None,
        // CoreDNS's container ports, as its Deployment in every distribution names them.
        ports: Some(vec![
            NamedPort {
                name: "dns".into(),
                port: 53,
                protocol: "UDP".into(),
            },
            NamedPort {
                name: "dns-tcp".into(),
                port: 53,
                protocol: "TCP".into(),
            },
        ]),
        what: "the cluster DNS pods".into(),
    }
}

/// The database end: its pods (labels, address, ports) and the port they receive on, or what
/// is known when it is not a pod of this namespace.
struct DbEnd {
    party: Party,
    port: u16,
    /// Whether its pods are in Elsa's namespace (their ingress policies are then listed).
    here: bool,
    described: String,
}

fn db_end(f: &Facts, pf: &PolicyFacts) -> Result<DbEnd, Finding> {
    let (host, port) = super::network::db_endpoint(f)?;
    let ns = f.scope.namespace.as_str();
    let (svc_name, svc_ns) = match service_host::classify(&host, ns) {
        Host::Ip(ip) => {
            return Ok(DbEnd {
                party: Party {
                    namespace: NsLabels::unread("(none)", "an address, not a pod"),
                    pod_labels: None,
                    ip: Some(ip),
                    ports: None,
                    what: format!("the database at {ip}"),
                },
                port,
                here: false,
                described: format!("{ip}:{port}"),
            });
        }
        Host::External(name) => {
            return Ok(DbEnd {
                party: Party {
                    namespace: NsLabels::unread("(none)", "a host outside the cluster"),
                    pod_labels: None,
                    ip: None,
                    ports: None,
                    what: format!("the database host {name}"),
                },
                port,
                here: false,
                described: format!("{name}:{port} (outside the cluster)"),
            });
        }
        Host::Service {
            name, namespace, ..
        } => (name, namespace),
    };
    if svc_ns != ns {
        return Ok(DbEnd {
            party: Party {
                namespace: ns_labels(f, pf, &svc_ns),
                pod_labels: None,
                ip: None,
                ports: None,
                what: format!("the database pods in namespace {svc_ns}"),
            },
            port,
            here: false,
            described: format!("Service {svc_name} in namespace {svc_ns}, port {port}"),
        });
    }
    let unknown = |why: String| Finding::unknown(None, why);
    let services = match &f.services {
        Probe::Observed(s) => s,
        other => return Err(not_observed(other, "the namespace's Services")),
    };
    let Some(svc) = services
        .iter()
        .find(|s| s.metadata.name.as_deref() == Some(svc_name.as_str()))
    else {
        return Err(Finding::skip(format!(
            "no Service {svc_name} in this namespace — see network.service"
        )));
    };
    let selector = svc.spec.as_ref().and_then(|s| s.selector.clone());
    let Some(selector) = selector.filter(|s| !s.is_empty()) else {
        return Err(Finding::skip(format!(
            "Service {svc_name} has no selector: the database behind it is not a pod the policies can be matched against"
        )));
    };
    let (labels, ip, containers, from) = match db_pod(f, &selector) {
        Some((pod, labels)) => (
            labels,
            pod.status
                .as_ref()
                .and_then(|s| s.pod_ip.as_deref())
                .and_then(|ip| ip.parse().ok()),
            pod.spec
                .as_ref()
                .map(|s| s.containers.clone())
                .unwrap_or_default(),
            format!("pod {}", pod.metadata.name.as_deref().unwrap_or("")),
        ),
        None => match db_workload(f, &selector) {
            Some((w, spec_containers)) => {
                (template_labels(w), None, spec_containers, w.reference())
            }
            None => {
                return Err(unknown(format!(
                    "the pods behind Service {svc_name} are not known (no pod or workload matches its selector): their policies cannot be matched"
                )));
            }
        },
    };
    let ports = named_ports(&containers);
    let target = target_port(svc, port, &ports);
    Ok(DbEnd {
        party: Party {
            namespace: ns_labels(f, pf, ns),
            pod_labels: Some(labels),
            ip,
            ports: Some(ports),
            what: "the database pods".into(),
        },
        port: target,
        here: true,
        described: format!("{from} behind Service {svc_name}, pod port {target}"),
    })
}

/// The first database pod the facts hold whose labels the Service selects.
fn db_pod<'a>(
    f: &'a Facts,
    selector: &BTreeMap<String, String>,
) -> Option<(&'a Pod, BTreeMap<String, String>)> {
    f.db_pods.observed()?.iter().find_map(|p| {
        let labels = p.metadata.labels.clone().unwrap_or_default();
        selector
            .iter()
            .all(|(k, v)| labels.get(k) == Some(v))
            .then_some((p, labels))
    })
}

fn db_workload<'a>(
    f: &'a Facts,
    selector: &BTreeMap<String, String>,
) -> Option<(Workload<'a>, Vec<Container>)> {
    let pool = f.workload_pool()?;
    pool.into_iter().find_map(|w| {
        let labels = template_labels(w);
        if !selector.iter().all(|(k, v)| labels.get(k) == Some(v)) {
            return None;
        }
        Some((w, w.pod_spec()?.containers.clone()))
    })
}

/// The pod port behind the Service port the connection string uses (policies see the pod's
/// port, after the Service's translation).
fn target_port(svc: &Service, port: u16, named: &[NamedPort]) -> u16 {
    let Some(sp) = svc
        .spec
        .as_ref()
        .and_then(|s| s.ports.as_ref())
        .and_then(|ps| ps.iter().find(|p| p.port == i32::from(port)))
    else {
        return port;
    };
    match &sp.target_port {
        Some(IntOrString::Int(n)) => u16::try_from(*n).unwrap_or(port),
        Some(IntOrString::String(name)) => named
            .iter()
            .find(|n| &n.name == name)
            .map_or(port, |n| n.port),
        None => port,
    }
}

/// The Elsa pods as the policies see them.
fn elsa_party(f: &Facts, pf: &PolicyFacts) -> Result<Party, Finding> {
    let model = f.effective().map_err(|u| match u {
        crate::model::Unavailable::Skip(m) => Finding::skip(m.clone()),
        crate::model::Unavailable::Unknown(m) => Finding::unknown(None, m.clone()),
    })?;
    let w = model.workload();
    Ok(Party {
        namespace: ns_labels(f, pf, &f.scope.namespace),
        pod_labels: Some(template_labels(w)),
        ip: None,
        ports: Some(named_ports(&model.spec().containers)),
        what: "the Elsa pods".into(),
    })
}

/// The names of the policies that restrict the Elsa pods' egress, when the facts hold them.
pub fn restricting_elsa_egress(f: &Facts) -> Vec<String> {
    let Some(pf) = f.network_policies.observed() else {
        return Vec::new();
    };
    let Ok(elsa) = elsa_party(f, pf) else {
        return Vec::new();
    };
    netpol::selecting(&pf.policies, Direction::Egress, &elsa)
        .iter()
        .filter_map(|p| p.metadata.name.clone())
        .collect()
}

/// The note `network.dns` and `network.tcp` add when policies restrict Elsa's egress and the
/// probes ran from somewhere that does not carry Elsa's labels.
pub fn vantage_note(f: &Facts, o: &NetworkObservation, finding: Finding) -> Finding {
    if o.vantage == "ephemeral" {
        return finding;
    }
    let names = restricting_elsa_egress(f);
    if names.is_empty() {
        return finding;
    }
    let from = if o.vantage == "debug-pod" {
        "the debug pod does not carry the Elsa pods' labels"
    } else {
        "this machine is not an Elsa pod"
    };
    finding.with(Evidence::new(
        "NetworkPolicies",
        format!(
            "{} restrict the Elsa pods' egress, but {from}, so this probe does not pass through them: see network.policy, or rerun with --vantage ephemeral to probe from inside an Elsa pod",
            names.join(", ")
        ),
    ))
}

/// One requirement judged: its label, the verdict and the cause if it is denied.
struct Judged {
    what: String,
    verdict: Verdict,
    cause: &'static str,
}

fn describe(j: &Judged, direction: Direction, subject: &str) -> String {
    match &j.verdict {
        Verdict::NotIsolated => format!(
            "{}: allowed — no policy selects {subject} for {}",
            j.what,
            direction.as_str()
        ),
        Verdict::Allowed { policy, rule } => format!(
            "{}: allowed by {policy}, {} rule {rule}",
            j.what,
            direction.as_str().to_ascii_lowercase()
        ),
        Verdict::Denied { selecting, notes } => {
            let mut s = format!(
                "{}: denied — {} select{} {subject} for {} and no rule allows it",
                j.what,
                selecting.join(", "),
                if selecting.len() == 1 { "s" } else { "" },
                direction.as_str()
            );
            for n in notes {
                s.push_str("; ");
                s.push_str(n);
            }
            s
        }
        Verdict::Unknown {
            selecting,
            why,
            notes,
        } => {
            let mut s = format!(
                "{}: not known — {} select {subject}; no rule allows it for certain: {}",
                j.what,
                selecting.join(", "),
                why.join("; ")
            );
            for n in notes {
                s.push_str("; ");
                s.push_str(n);
            }
            s
        }
    }
}

fn policy(f: &Facts) -> Finding {
    let pf = match &f.network_policies {
        Probe::Observed(pf) => pf,
        other => return not_observed(other, "the namespace's NetworkPolicies"),
    };
    let ns = &f.scope.namespace;
    if pf.policies.is_empty() {
        if f.bundle.is_some() {
            return Finding::skip(
                "no NetworkPolicy among the manifests given: the cluster may hold others — run elsadoctor against the cluster to judge them",
            );
        }
        return Finding::pass(format!(
            "no NetworkPolicy in namespace {ns}: nothing restricts the Elsa pods' or the database's traffic"
        ))
        .with(Evidence::new("NetworkPolicies", "none").from(format!("namespace {ns}")));
    }
    let elsa = match elsa_party(f, pf) {
        Ok(p) => p,
        Err(finding) => return finding,
    };
    let names: Vec<String> = pf
        .policies
        .iter()
        .filter_map(|p| p.metadata.name.clone())
        .collect();
    let mut evidence =
        vec![Evidence::new("NetworkPolicies", names.join(", ")).from(format!("namespace {ns}"))];
    let dns = dns_party(f, pf);
    let mut egress: Vec<Judged> = ["UDP", "TCP"]
        .into_iter()
        .map(|proto| Judged {
            what: format!("DNS ({proto} 53 to k8s-app=kube-dns in {DNS_NAMESPACE})"),
            verdict: netpol::evaluate(
                &pf.policies,
                Direction::Egress,
                &elsa,
                &dns,
                &Traffic {
                    port: 53,
                    protocol: proto.into(),
                },
            ),
            cause: "dns-blocked",
        })
        .collect();
    let mut ingress: Vec<Judged> = Vec::new();
    match db_end(f, pf) {
        Ok(db) => {
            let traffic = Traffic {
                port: db.port,
                protocol: "TCP".into(),
            };
            egress.push(Judged {
                what: format!("database ({}, TCP)", db.described),
                verdict: netpol::evaluate(
                    &pf.policies,
                    Direction::Egress,
                    &elsa,
                    &db.party,
                    &traffic,
                ),
                cause: "db-egress-blocked",
            });
            if db.here {
                ingress.push(Judged {
                    what: format!("the database pods from the Elsa pods (TCP {})", db.port),
                    verdict: netpol::evaluate(
                        &pf.policies,
                        Direction::Ingress,
                        &db.party,
                        &elsa,
                        &traffic,
                    ),
                    cause: "db-ingress-blocked",
                });
            } else if db.party.pod_labels.is_none() && db.party.ip.is_none() {
                evidence.push(Evidence::new(
                    "database side",
                    format!(
                        "not judged: {} — the policies there are not listed",
                        db.described
                    ),
                ));
            }
        }
        Err(finding) => evidence.push(Evidence::new(
            "database",
            format!("not judged: {}", finding.message),
        )),
    }
    let lines: Vec<(String, &Judged)> = egress
        .iter()
        .map(|j| (describe(j, Direction::Egress, "the Elsa pods"), j))
        .chain(
            ingress
                .iter()
                .map(|j| (describe(j, Direction::Ingress, "the database pods"), j)),
        )
        .collect();
    for (line, j) in &lines {
        let label = if j.cause == "db-ingress-blocked" {
            "ingress"
        } else {
            "egress"
        };
        evidence.push(Evidence::new(label, line.clone()));
    }
    let denied: Vec<&(String, &Judged)> = lines
        .iter()
        .filter(|(_, j)| matches!(j.verdict, Verdict::Denied { .. }))
        .collect();
    if let Some((line, j)) = denied.first() {
        let label_mistake =
            matches!(&j.verdict, Verdict::Denied { notes, .. } if !notes.is_empty());
        let cause = if j.cause == "dns-blocked" && label_mistake {
            "namespace-label"
        } else {
            j.cause
        };
        let more = denied.len() - 1;
        let mut msg = line.clone();
        if more > 0 {
            msg.push_str(&format!(" (and {more} more denied: see evidence)"));
        }
        return Finding::problem(cause, msg).with_all(evidence);
    }
    if let Some((line, _)) = lines
        .iter()
        .find(|(_, j)| matches!(j.verdict, Verdict::Unknown { .. }))
    {
        return Finding::unknown(None, line.clone()).with_all(evidence);
    }
    let allowed = lines
        .iter()
        .filter(|(_, j)| matches!(j.verdict, Verdict::Allowed { .. }))
        .count();
    Finding::pass(format!(
        "the NetworkPolicies allow DNS and the database for the Elsa pods ({allowed} of {} paths allowed by a rule, the rest not restricted)",
        lines.len()
    ))
    .with_all(evidence)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::Outcome;
    use crate::checks::test_support::with_deployments;
    use serde_json::json;

    fn facts(policies: serde_json::Value, lint: bool) -> Facts {
        let mut f = with_deployments(json!([
            {"metadata": {"name": "elsa-server", "namespace": "elsa"},
             "spec": {"selector": {"matchLabels": {"app": "elsa-server"}},
               "template": {"metadata": {"labels": {"app": "elsa-server"}},
                 "spec": {"containers": [{"name": "elsa-server",
                   "image": "elsaworkflows/elsa-server-v3-5:latest",
                   "env": [{"name": "DatabaseProvider", "value": "PostgreSql"},
                           {"name": "ConnectionStrings__PostgreSql", "value": "Host=postgres;Port=5432;Database=elsa;Username=elsa;Password=x"}]}]}}}},
            {"metadata": {"name": "postgres", "namespace": "elsa"},
             "spec": {"selector": {"matchLabels": {"app": "postgres"}},
               "template": {"metadata": {"labels": {"app": "postgres"}},
                 "spec": {"containers": [{"name": "postgres", "image": "postgres:16",
                   "ports": [{"name": "postgres", "containerPort": 5432}]}]}}}}
        ]));
        f.scope.namespace = "elsa".into();
        f.services = Probe::Observed(
            serde_json::from_value(json!([{"metadata": {"name": "postgres"},
              "spec": {"selector": {"app": "postgres"},
                       "ports": [{"port": 5432, "targetPort": "postgres"}]}}]))
            .expect("svc"),
        );
        f.config_maps = BTreeMap::new();
        f.secrets = BTreeMap::new();
        f.network_policies = Probe::Observed(PolicyFacts {
            policies: serde_json::from_value(policies).expect("policies"),
            namespaces: BTreeMap::new(),
        });
        if lint {
            f.bundle = Some(Default::default());
        }
        f
    }

    fn deny_egress() -> serde_json::Value {
        json!({"metadata": {"name": "default-deny-egress"},
               "spec": {"podSelector": {}, "policyTypes": ["Egress"]}})
    }

    fn allow_dns(ns_label: (&str, &str)) -> serde_json::Value {
        json!({"metadata": {"name": "allow-dns"},
          "spec": {"podSelector": {}, "policyTypes": ["Egress"],
            "egress": [{"to": [{"namespaceSelector": {"matchLabels": {ns_label.0: ns_label.1}},
                                "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}}],
                        "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]}]}})
    }

    fn allow_db(port: u16) -> serde_json::Value {
        json!({"metadata": {"name": "allow-postgres"},
          "spec": {"podSelector": {"matchLabels": {"app": "elsa-server"}}, "policyTypes": ["Egress"],
            "egress": [{"to": [{"podSelector": {"matchLabels": {"app": "postgres"}}}],
                        "ports": [{"port": port}]}]}})
    }

    #[test]
    fn none_passes_live_and_skips_in_lint() {
        assert_eq!(policy(&facts(json!([]), false)).outcome, Outcome::Pass);
        let lint = policy(&facts(json!([]), true));
        assert_eq!(lint.outcome, Outcome::Skip);
        assert!(lint.message.contains("cluster may hold others"));
    }

    #[test]
    fn default_deny_with_dns_and_database_passes() {
        let f = facts(
            json!([
                deny_egress(),
                allow_dns(("kubernetes.io/metadata.name", "kube-system")),
                allow_db(5432)
            ]),
            true,
        );
        let r = policy(&f);
        assert_eq!(r.outcome, Outcome::Pass, "{r:?}");
        let all: String = r.evidence.iter().map(|e| e.value.clone()).collect();
        assert!(all.contains("allowed by allow-dns, egress rule 1"), "{all}");
        assert!(
            all.contains("allowed by allow-postgres, egress rule 1"),
            "{all}"
        );
    }

    #[test]
    fn the_name_label_is_named_in_lint_and_unknown_live_when_unreadable() {
        let policies = json!([
            deny_egress(),
            allow_dns(("name", "kube-system")),
            allow_db(5432)
        ]);
        let r = policy(&facts(policies.clone(), true));
        assert_eq!(
            (r.outcome, r.cause),
            (Outcome::Problem, Some("namespace-label"))
        );
        assert!(
            r.message.contains("allow-dns egress rule 1"),
            "{}",
            r.message
        );
        assert!(
            r.message.contains("kubernetes.io/metadata.name"),
            "{}",
            r.message
        );
        let mut live = facts(policies, false);
        live.network_policies = Probe::Observed(PolicyFacts {
            namespaces: BTreeMap::from([(
                "kube-system".to_owned(),
                Probe::Forbidden {
                    verb: "get".into(),
                    resource: "namespaces".into(),
                },
            )]),
            ..live.network_policies.observed().cloned().expect("pf")
        });
        let r = policy(&live);
        assert_eq!(r.outcome, Outcome::Unknown, "{r:?}");
        assert!(
            r.message.contains("may not get namespaces"),
            "{}",
            r.message
        );
    }

    #[test]
    fn a_blocked_database_port_names_the_policies() {
        let f = facts(
            json!([
                deny_egress(),
                allow_dns(("kubernetes.io/metadata.name", "kube-system")),
                allow_db(5433)
            ]),
            true,
        );
        let r = policy(&f);
        assert_eq!(
            (r.outcome, r.cause),
            (Outcome::Problem, Some("db-egress-blocked"))
        );
        assert!(r.message.contains("default-deny-egress"), "{}", r.message);
        assert!(r.message.contains("allow-postgres"), "{}", r.message);
        assert!(r.message.contains("pod port 5432"), "{}", r.message);
    }

    #[test]
    fn database_ingress_from_elsa() {
        let ing = json!({"metadata": {"name": "pg-ingress"},
          "spec": {"podSelector": {"matchLabels": {"app": "postgres"}},
            "ingress": [{"from": [{"podSelector": {"matchLabels": {"app": "other"}}}]}]}});
        let r = policy(&facts(json!([ing]), false));
        assert_eq!(
            (r.outcome, r.cause),
            (Outcome::Problem, Some("db-ingress-blocked"))
        );
        assert!(r.message.contains("pg-ingress"), "{}", r.message);
    }
}
