//! NetworkPolicy evaluation as the API defines it (networking.k8s.io/v1), pure.
//!
//! A pod is *isolated* for a direction when at least one policy in its namespace selects it
//! (`spec.podSelector`) with that direction in `policyTypes`; `policyTypes` left unset means
//! `Ingress`, plus `Egress` when the policy has egress rules. An isolated pod's traffic in that
//! direction is allowed only when some rule of some selecting policy allows it (the union). A rule
//! allows a connection when one of its peers matches the other end (`podSelector` alone: pods of
//! the policy's namespace; `namespaceSelector` alone: every pod of the matching namespaces; both in
//! one peer: those pods of those namespaces, AND; `ipBlock`: addresses in the CIDR outside its
//! `except`) and one of its ports matches (protocol defaults to TCP; `port` a number, a number
//! range up to `endPort`, or a container port *name* resolved on the receiving pod). An empty or
//! absent peer list or port list matches everything.
//!
//! What is not known stays unknown: a namespace whose labels could not be read matches a
//! selector only on the label Kubernetes sets itself (`kubernetes.io/metadata.name`, immutable,
//! since 1.21); anything else about it is [`Tri::Unknown`], and an undecided rule makes the
//! verdict unknown unless another rule allows the traffic outright.

use std::collections::BTreeMap;
use std::net::IpAddr;

use k8s_openapi::api::networking::v1::{
    IPBlock, NetworkPolicy, NetworkPolicyPeer, NetworkPolicyPort,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

/// The label the API server puts on every namespace: its name.
pub const NAMESPACE_NAME_LABEL: &str = "kubernetes.io/metadata.name";

/// The cluster DNS pods as CoreDNS (and kube-dns before it) label them, and where they run.
pub const DNS_NAMESPACE: &str = "kube-system";
pub const DNS_POD_LABEL: (&str, &str) = ("k8s-app", "kube-dns");

/// A three-valued answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tri {
    Yes,
    No,
    Unknown(String),
}

/// What is known of a namespace's labels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NsLabels {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    /// The labels were read: a label not among them is not set.
    pub complete: bool,
    /// Not read, but a `name` label (the common copy-paste `name: kube-system`) is taken as
    /// unset: Kubernetes never sets it, and `lint` judges manifests as applied to a cluster
    /// that holds nothing else about the namespace.
    pub name_label_unset: bool,
    /// Why the labels are not complete (for messages).
    pub why_unknown: Option<String>,
}

impl NsLabels {
    /// A namespace whose labels were read (the automatic label is added if missing).
    pub fn read(name: &str, labels: BTreeMap<String, String>) -> Self {
        let mut labels = labels;
        labels
            .entry(NAMESPACE_NAME_LABEL.to_owned())
            .or_insert_with(|| name.to_owned());
        Self {
            name: name.to_owned(),
            labels,
            complete: true,
            name_label_unset: false,
            why_unknown: None,
        }
    }

    /// A namespace whose labels could not be read: only the automatic label is known.
    pub fn unread(name: &str, why: impl Into<String>) -> Self {
        Self {
            name: name.to_owned(),
            labels: BTreeMap::from([(NAMESPACE_NAME_LABEL.to_owned(), name.to_owned())]),
            complete: false,
            name_label_unset: false,
            why_unknown: Some(why.into()),
        }
    }
}

/// A container port by name, as the receiving pod declares it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamedPort {
    pub name: String,
    pub port: u16,
    pub protocol: String,
}

/// One end of a connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Party {
    pub namespace: NsLabels,
    /// The pod's labels; `None` when this end is not a pod of the cluster (an external host).
    pub pod_labels: Option<BTreeMap<String, String>>,
    /// Its address, when known.
    pub ip: Option<IpAddr>,
    /// Its named container ports; `None` when not known.
    pub ports: Option<Vec<NamedPort>>,
    /// How to call it in messages ("the Elsa pods", "the cluster DNS pods").
    pub what: String,
}

/// The connection: to this port and protocol of the receiving pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Traffic {
    pub port: u16,
    pub protocol: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Ingress,
    Egress,
}

impl Direction {
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Ingress => "Ingress",
            Direction::Egress => "Egress",
        }
    }
    fn rules_word(self) -> &'static str {
        match self {
            Direction::Ingress => "ingress",
            Direction::Egress => "egress",
        }
    }
}

/// Which policy and rule decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// No policy selects the pod for this direction: all such traffic is allowed.
    NotIsolated,
    /// `rule` (1-based) of `direction` in `policy` allows it.
    Allowed { policy: String, rule: usize },
    /// Policies select the pod and none of their rules allows it; `notes` explain near misses
    /// (a namespace label nobody sets, a port that differs).
    Denied {
        selecting: Vec<String>,
        notes: Vec<String>,
    },
    /// No rule allows it for certain, and some rule might: what is not known.
    Unknown {
        selecting: Vec<String>,
        why: Vec<String>,
        notes: Vec<String>,
    },
}

/// One rule's peers and ports (either may be absent: everything).
type Rule<'a> = (
    Option<&'a Vec<NetworkPolicyPeer>>,
    Option<&'a Vec<NetworkPolicyPort>>,
);

fn name_of(p: &NetworkPolicy) -> &str {
    p.metadata.name.as_deref().unwrap_or("")
}

/// The directions a policy applies to, with the API's defaulting of an unset `policyTypes`.
pub fn policy_types(p: &NetworkPolicy) -> Vec<Direction> {
    let Some(spec) = &p.spec else {
        return vec![Direction::Ingress];
    };
    match &spec.policy_types {
        Some(types) if !types.is_empty() => types
            .iter()
            .filter_map(|t| match t.as_str() {
                "Ingress" => Some(Direction::Ingress),
                "Egress" => Some(Direction::Egress),
                _ => None,
            })
            .collect(),
        _ => {
            let mut out = vec![Direction::Ingress];
            if spec.egress.as_ref().is_some_and(|e| !e.is_empty()) {
                out.push(Direction::Egress);
            }
            out
        }
    }
}

/// Whether a label selector matches a complete set of labels. An empty selector matches all.
pub fn selector_matches(sel: &LabelSelector, labels: &BTreeMap<String, String>) -> bool {
    selector_tri(sel, labels, true, false) == Tri::Yes
}

/// A selector against labels that may be incomplete (`complete = false`: a label not among
/// them may still be set). `name_unset`: a missing `name` label counts as unset.
fn selector_tri(
    sel: &LabelSelector,
    labels: &BTreeMap<String, String>,
    complete: bool,
    name_unset: bool,
) -> Tri {
    let mut unknown: Option<String> = None;
    let known_absent = |key: &str| complete || (name_unset && key == "name");
    for (k, v) in sel.match_labels.iter().flatten() {
        match labels.get(k) {
            Some(have) if have == v => {}
            Some(_) => return Tri::No,
            None if known_absent(k) => return Tri::No,
            None => {
                unknown.get_or_insert_with(|| format!("{k}={v}"));
            }
        }
    }
    for e in sel.match_expressions.iter().flatten() {
        let values = e.values.clone().unwrap_or_default();
        let have = labels.get(&e.key);
        let r = match (e.operator.as_str(), have) {
            ("In", Some(v)) => Some(values.contains(v)),
            ("NotIn", Some(v)) => Some(!values.contains(v)),
            ("Exists", Some(_)) => Some(true),
            ("DoesNotExist", Some(_)) => Some(false),
            ("In" | "Exists", None) if known_absent(&e.key) => Some(false),
            ("NotIn" | "DoesNotExist", None) if known_absent(&e.key) => Some(true),
            // An operator the API does not define selects nothing.
            ("In" | "NotIn" | "Exists" | "DoesNotExist", None) => None,
            _ => Some(false),
        };
        match r {
            Some(true) => {}
            Some(false) => return Tri::No,
            None => {
                unknown.get_or_insert_with(|| format!("{} {}", e.key, e.operator));
            }
        }
    }
    match unknown {
        Some(req) => Tri::Unknown(req),
        None => Tri::Yes,
    }
}

/// `a=b,c In (x)` for messages.
pub fn describe_selector(sel: &LabelSelector) -> String {
    let mut parts: Vec<String> = sel
        .match_labels
        .iter()
        .flatten()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    for e in sel.match_expressions.iter().flatten() {
        let values = e.values.clone().unwrap_or_default().join(",");
        parts.push(match e.operator.as_str() {
            "Exists" => e.key.clone(),
            "DoesNotExist" => format!("!{}", e.key),
            op => format!("{} {op} ({values})", e.key),
        });
    }
    if parts.is_empty() {
        "{} (everything)".to_owned()
    } else {
        parts.join(",")
    }
}

/// The labels a namespace selector asks for that the namespace does not carry (known or
/// taken as unset), each explained.
fn missing_namespace_labels(sel: &LabelSelector, ns: &NsLabels) -> Vec<String> {
    let mut out = Vec::new();
    for (k, v) in sel.match_labels.iter().flatten() {
        if ns.labels.contains_key(k) {
            continue;
        }
        let unset = ns.complete || (ns.name_label_unset && k == "name");
        if !unset {
            continue;
        }
        let mut note = format!(
            "namespace {} carries no label {k} (the selector asks for {k}={v})",
            ns.name
        );
        if k == "name" {
            note.push_str(&format!(
                "; Kubernetes labels every namespace with {NAMESPACE_NAME_LABEL}={}, never with name — select {NAMESPACE_NAME_LABEL}: {v}",
                ns.name
            ));
        }
        out.push(note);
    }
    out
}

/// Whether `ip` lies in the block.
fn in_block(block: &IPBlock, ip: IpAddr) -> Tri {
    match cidr_contains(&block.cidr, ip) {
        None => Tri::Unknown(format!("ipBlock {} is not a CIDR", block.cidr)),
        Some(false) => Tri::No,
        Some(true) => {
            for ex in block.except.iter().flatten() {
                if cidr_contains(ex, ip) == Some(true) {
                    return Tri::No;
                }
            }
            Tri::Yes
        }
    }
}

/// `Some(contains)` for a well-formed CIDR of the same family, `Some(false)` for the other
/// family, `None` when it does not parse.
pub fn cidr_contains(cidr: &str, ip: IpAddr) -> Option<bool> {
    let (addr, len) = cidr.split_once('/')?;
    let net: IpAddr = addr.parse().ok()?;
    let len: u32 = len.parse().ok()?;
    match (net, ip) {
        (IpAddr::V4(n), IpAddr::V4(i)) if len <= 32 => {
            let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
            Some(u32::from(n) & mask == u32::from(i) & mask)
        }
        (IpAddr::V6(n), IpAddr::V6(i)) if len <= 128 => {
            let mask = if len == 0 {
                0
            } else {
                u128::MAX << (128 - len)
            };
            Some(u128::from(n) & mask == u128::from(i) & mask)
        }
        (IpAddr::V4(_), IpAddr::V6(_)) | (IpAddr::V6(_), IpAddr::V4(_)) => Some(false),
        _ => None,
    }
}

/// Whether one peer of a rule matches the other end; `policy_ns` is the policy's namespace.
fn peer_matches(peer: &NetworkPolicyPeer, policy_ns: &str, other: &Party) -> Tri {
    if let Some(block) = &peer.ip_block {
        return match other.ip {
            Some(ip) => in_block(block, ip),
            None => Tri::Unknown(format!(
                "ipBlock {}: the address of {} is not known",
                block.cidr, other.what
            )),
        };
    }
    // podSelector and namespaceSelector select pods only, never external addresses.
    let Some(labels) = &other.pod_labels else {
        return Tri::No;
    };
    let ns_ok = match &peer.namespace_selector {
        Some(sel) => selector_tri(
            sel,
            &other.namespace.labels,
            other.namespace.complete,
            other.namespace.name_label_unset,
        ),
        None if other.namespace.name == policy_ns => Tri::Yes,
        None => Tri::No,
    };
    let pod_ok = match &peer.pod_selector {
        Some(sel) => selector_tri(sel, labels, true, false),
        None => Tri::Yes,
    };
    match (ns_ok, pod_ok) {
        (Tri::No, _) | (_, Tri::No) => Tri::No,
        (Tri::Unknown(r), _) | (_, Tri::Unknown(r)) => Tri::Unknown(format!(
            "whether namespace {} carries {r}: {}",
            other.namespace.name,
            other
                .namespace
                .why_unknown
                .as_deref()
                .unwrap_or("its labels are not known")
        )),
        (Tri::Yes, Tri::Yes) => Tri::Yes,
    }
}

/// Whether one port entry of a rule covers the traffic; `receiver` declares named ports.
fn port_matches(p: &NetworkPolicyPort, traffic: &Traffic, receiver: &Party) -> Tri {
    let protocol = p.protocol.as_deref().unwrap_or("TCP");
    if !protocol.eq_ignore_ascii_case(&traffic.protocol) {
        return Tri::No;
    }
    match &p.port {
        None => Tri::Yes,
        Some(IntOrString::Int(n)) => {
            let end = p.end_port.unwrap_or(*n);
            let port = i32::from(traffic.port);
            if *n <= port && port <= end.max(*n) {
                Tri::Yes
            } else {
                Tri::No
            }
        }
        Some(IntOrString::String(name)) => match &receiver.ports {
            Some(ports) => {
                let hit = ports.iter().any(|np| {
                    np.name == *name
                        && np.port == traffic.port
                        && np.protocol.eq_ignore_ascii_case(protocol)
                });
                if hit { Tri::Yes } else { Tri::No }
            }
            None => Tri::Unknown(format!(
                "port name {name:?}: the container ports of {} are not known",
                receiver.what
            )),
        },
    }
}

fn any_tri(items: impl IntoIterator<Item = Tri>) -> Tri {
    let mut unknown = None;
    let mut empty = true;
    for t in items {
        empty = false;
        match t {
            Tri::Yes => return Tri::Yes,
            Tri::No => {}
            Tri::Unknown(r) => {
                unknown.get_or_insert(r);
            }
        }
    }
    if empty {
        return Tri::Yes;
    }
    unknown.map_or(Tri::No, Tri::Unknown)
}

/// The policies among `policies` that select `subject` for `direction` (policies without a
/// namespace count as being in the subject's).
pub fn selecting<'a>(
    policies: &'a [NetworkPolicy],
    direction: Direction,
    subject: &Party,
) -> Vec<&'a NetworkPolicy> {
    let Some(labels) = &subject.pod_labels else {
        return Vec::new();
    };
    policies
        .iter()
        .filter(|p| {
            p.metadata
                .namespace
                .as_deref()
                .is_none_or(|ns| ns == subject.namespace.name)
        })
        .filter(|p| policy_types(p).contains(&direction))
        .filter(|p| {
            let sel = p.spec.as_ref().and_then(|s| s.pod_selector.as_ref());
            sel.is_none_or(|s| selector_matches(s, labels))
        })
        .collect()
}

/// Whether `subject` may send (egress) to or receive (ingress) from `other` the `traffic`,
/// under `policies`, and which policy and rule decides.
pub fn evaluate(
    policies: &[NetworkPolicy],
    direction: Direction,
    subject: &Party,
    other: &Party,
    traffic: &Traffic,
) -> Verdict {
    let chosen = selecting(policies, direction, subject);
    if chosen.is_empty() {
        return Verdict::NotIsolated;
    }
    let receiver = match direction {
        Direction::Egress => other,
        Direction::Ingress => subject,
    };
    let mut why = Vec::new();
    let mut notes = Vec::new();
    for p in &chosen {
        let name = name_of(p);
        let policy_ns = subject.namespace.name.as_str();
        let rules: Vec<Rule<'_>> = match (direction, &p.spec) {
            (Direction::Egress, Some(s)) => s
                .egress
                .iter()
                .flatten()
                .map(|r| (r.to.as_ref(), r.ports.as_ref()))
                .collect(),
            (Direction::Ingress, Some(s)) => s
                .ingress
                .iter()
                .flatten()
                .map(|r| (r.from.as_ref(), r.ports.as_ref()))
                .collect(),
            (_, None) => Vec::new(),
        };
        for (i, (peers, ports)) in rules.into_iter().enumerate() {
            let rule = i + 1;
            let peer_ok = any_tri(
                peers
                    .into_iter()
                    .flatten()
                    .map(|peer| peer_matches(peer, policy_ns, other)),
            );
            let port_ok = any_tri(
                ports
                    .into_iter()
                    .flatten()
                    .map(|pt| port_matches(pt, traffic, receiver)),
            );
            match (&peer_ok, &port_ok) {
                (Tri::Yes, Tri::Yes) => {
                    return Verdict::Allowed {
                        policy: name.to_owned(),
                        rule,
                    };
                }
                (Tri::No, _) | (_, Tri::No) => {}
                (Tri::Unknown(r), _) | (_, Tri::Unknown(r)) => why.push(format!(
                    "{name} {} rule {rule}: {r}",
                    direction.rules_word()
                )),
            }
            // Near misses worth naming: the ports fit but a namespace label nobody sets
            // keeps the peer from matching.
            if port_ok != Tri::No {
                for peer in peers.into_iter().flatten() {
                    let (Some(sel), Some(pod_labels)) =
                        (&peer.namespace_selector, &other.pod_labels)
                    else {
                        continue;
                    };
                    let pod_ok = peer
                        .pod_selector
                        .as_ref()
                        .is_none_or(|s| selector_matches(s, pod_labels));
                    if !pod_ok {
                        continue;
                    }
                    for m in missing_namespace_labels(sel, &other.namespace) {
                        notes.push(format!(
                            "{name} {} rule {rule} selects namespaces by {}: {m}",
                            direction.rules_word(),
                            describe_selector(sel)
                        ));
                    }
                }
            }
        }
    }
    let selecting: Vec<String> = chosen.iter().map(|p| name_of(p).to_owned()).collect();
    if why.is_empty() {
        Verdict::Denied { selecting, notes }
    } else {
        Verdict::Unknown {
            selecting,
            why,
            notes,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pol(v: serde_json::Value) -> NetworkPolicy {
        serde_json::from_value(v).expect("policy")
    }

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn elsa() -> Party {
        Party {
            namespace: NsLabels::read("elsa", BTreeMap::new()),
            pod_labels: Some(labels(&[("app", "elsa-server")])),
            ip: None,
            ports: Some(vec![]),
            what: "the Elsa pods".into(),
        }
    }

    fn dns(ns: NsLabels) -> Party {
        Party {
            namespace: ns,
            pod_labels: Some(labels(&[DNS_POD_LABEL])),
            ip: None,
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

    fn db() -> Party {
        Party {
            namespace: NsLabels::read("elsa", BTreeMap::new()),
            pod_labels: Some(labels(&[("app", "postgres")])),
            ip: Some("10.0.0.7".parse().expect("ip")),
            ports: Some(vec![NamedPort {
                name: "postgres".into(),
                port: 5432,
                protocol: "TCP".into(),
            }]),
            what: "the database pods".into(),
        }
    }

    fn udp53() -> Traffic {
        Traffic {
            port: 53,
            protocol: "UDP".into(),
        }
    }

    fn pg() -> Traffic {
        Traffic {
            port: 5432,
            protocol: "TCP".into(),
        }
    }

    fn deny_all_egress() -> NetworkPolicy {
        pol(
            json!({"metadata": {"name": "deny-egress", "namespace": "elsa"},
            "spec": {"podSelector": {}, "policyTypes": ["Egress"]}}),
        )
    }

    fn allow_dns(ns_sel: serde_json::Value) -> NetworkPolicy {
        pol(
            json!({"metadata": {"name": "allow-dns", "namespace": "elsa"},
            "spec": {"podSelector": {"matchLabels": {"app": "elsa-server"}},
              "policyTypes": ["Egress"],
              "egress": [{"to": [{"namespaceSelector": ns_sel,
                                  "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}}],
                          "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]}]}}),
        )
    }

    #[test]
    fn no_policy_means_not_isolated() {
        let v = evaluate(&[], Direction::Egress, &elsa(), &db(), &pg());
        assert_eq!(v, Verdict::NotIsolated);
    }

    #[test]
    fn an_ingress_only_policy_does_not_isolate_egress() {
        // policyTypes unset and no egress rules: Ingress only.
        let p = pol(json!({"metadata": {"name": "ing", "namespace": "elsa"},
            "spec": {"podSelector": {}}}));
        assert_eq!(policy_types(&p), vec![Direction::Ingress]);
        let v = evaluate(&[p], Direction::Egress, &elsa(), &db(), &pg());
        assert_eq!(v, Verdict::NotIsolated);
    }

    #[test]
    fn egress_rules_imply_the_egress_type() {
        let p = pol(json!({"metadata": {"name": "e"},
            "spec": {"podSelector": {}, "egress": [{"ports": [{"port": 5432}]}]}}));
        assert_eq!(
            policy_types(&p),
            vec![Direction::Ingress, Direction::Egress]
        );
    }

    #[test]
    fn default_deny_denies_and_a_dns_rule_by_the_automatic_label_allows() {
        let kube_system = NsLabels::unread("kube-system", "forbidden");
        let deny = evaluate(
            &[deny_all_egress()],
            Direction::Egress,
            &elsa(),
            &dns(kube_system.clone()),
            &udp53(),
        );
        assert_eq!(
            deny,
            Verdict::Denied {
                selecting: vec!["deny-egress".into()],
                notes: vec![]
            }
        );
        let policies = [
            deny_all_egress(),
            allow_dns(json!({"matchLabels": {NAMESPACE_NAME_LABEL: "kube-system"}})),
        ];
        let v = evaluate(
            &policies,
            Direction::Egress,
            &elsa(),
            &dns(kube_system),
            &udp53(),
        );
        assert_eq!(
            v,
            Verdict::Allowed {
                policy: "allow-dns".into(),
                rule: 1
            }
        );
    }

    #[test]
    fn the_name_label_copy_paste_is_named() {
        let policies = [
            deny_all_egress(),
            allow_dns(json!({"matchLabels": {"name": "kube-system"}})),
        ];
        // Labels read: definite.
        let read = NsLabels::read("kube-system", BTreeMap::new());
        let Verdict::Denied { notes, .. } =
            evaluate(&policies, Direction::Egress, &elsa(), &dns(read), &udp53())
        else {
            panic!("denied");
        };
        assert_eq!(notes.len(), 1, "{notes:?}");
        assert!(notes[0].contains("allow-dns egress rule 1"), "{notes:?}");
        assert!(
            notes[0].contains("kubernetes.io/metadata.name"),
            "{notes:?}"
        );
        // Not readable (live, forbidden): unknown, saying why.
        let unread = NsLabels::unread("kube-system", "this user may not get namespaces");
        let Verdict::Unknown { why, .. } = evaluate(
            &policies,
            Direction::Egress,
            &elsa(),
            &dns(unread.clone()),
            &udp53(),
        ) else {
            panic!("unknown");
        };
        assert!(why[0].contains("name=kube-system"), "{why:?}");
        assert!(why[0].contains("may not get namespaces"), "{why:?}");
        // lint: the name label is taken as unset.
        let lint = NsLabels {
            name_label_unset: true,
            ..unread
        };
        assert!(matches!(
            evaluate(&policies, Direction::Egress, &elsa(), &dns(lint), &udp53()),
            Verdict::Denied { ref notes, .. } if notes.len() == 1
        ));
        // The label really set: allowed.
        let labelled = NsLabels::read("kube-system", labels(&[("name", "kube-system")]));
        assert!(matches!(
            evaluate(
                &policies,
                Direction::Egress,
                &elsa(),
                &dns(labelled),
                &udp53()
            ),
            Verdict::Allowed { .. }
        ));
    }

    #[test]
    fn both_selectors_in_one_peer_are_anded_and_separate_peers_ored() {
        let and = allow_dns(json!({"matchLabels": {NAMESPACE_NAME_LABEL: "kube-system"}}));
        let other_ns = Party {
            namespace: NsLabels::read("monitoring", BTreeMap::new()),
            ..dns(NsLabels::read("x", BTreeMap::new()))
        };
        assert!(matches!(
            evaluate(&[and], Direction::Egress, &elsa(), &other_ns, &udp53()),
            Verdict::Denied { .. }
        ));
        // Two peers: any pod labelled kube-dns in the policy's namespace, or anything in
        // kube-system — a pod in monitoring matches neither.
        let or = pol(json!({"metadata": {"name": "or"},
            "spec": {"podSelector": {}, "policyTypes": ["Egress"],
              "egress": [{"to": [{"namespaceSelector": {"matchLabels": {NAMESPACE_NAME_LABEL: "kube-system"}}},
                                 {"podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}}]}]}}));
        assert!(matches!(
            evaluate(
                std::slice::from_ref(&or),
                Direction::Egress,
                &elsa(),
                &other_ns,
                &udp53()
            ),
            Verdict::Denied { .. }
        ));
        let same_ns = Party {
            namespace: NsLabels::read("elsa", BTreeMap::new()),
            ..other_ns
        };
        assert!(matches!(
            evaluate(&[or], Direction::Egress, &elsa(), &same_ns, &udp53()),
            Verdict::Allowed { .. }
        ));
    }

    #[test]
    fn ports_protocol_defaults_ranges_and_names() {
        let rule = |ports: serde_json::Value| {
            pol(json!({"metadata": {"name": "p"},
                "spec": {"podSelector": {}, "policyTypes": ["Egress"],
                  "egress": [{"to": [{"podSelector": {}}], "ports": ports}]}}))
        };
        let allowed = |p: NetworkPolicy| {
            matches!(
                evaluate(&[p], Direction::Egress, &elsa(), &db(), &pg()),
                Verdict::Allowed { .. }
            )
        };
        assert!(
            allowed(rule(json!([{"port": 5432}]))),
            "protocol defaults to TCP"
        );
        assert!(!allowed(rule(json!([{"port": 5432, "protocol": "UDP"}]))));
        assert!(allowed(rule(json!([{"port": 5000, "endPort": 6000}]))));
        assert!(!allowed(rule(json!([{"port": 5433, "endPort": 6000}]))));
        assert!(allowed(rule(json!([{"port": "postgres"}]))), "named port");
        assert!(!allowed(rule(json!([{"port": "pg"}]))));
        assert!(!allowed(rule(json!([{"port": 5433}]))));
        assert!(allowed(rule(json!([{"protocol": "TCP"}]))), "no port: all");
        let unknown_ports = Party {
            ports: None,
            ..db()
        };
        assert!(matches!(
            evaluate(
                &[rule(json!([{"port": "postgres"}]))],
                Direction::Egress,
                &elsa(),
                &unknown_ports,
                &pg()
            ),
            Verdict::Unknown { .. }
        ));
    }

    #[test]
    fn ip_blocks_with_exceptions() {
        let p = pol(json!({"metadata": {"name": "ip"},
            "spec": {"podSelector": {}, "policyTypes": ["Egress"],
              "egress": [{"to": [{"ipBlock": {"cidr": "10.0.0.0/8", "except": ["10.0.0.0/24"]}}]}]}}));
        assert!(matches!(
            evaluate(
                std::slice::from_ref(&p),
                Direction::Egress,
                &elsa(),
                &db(),
                &pg()
            ),
            Verdict::Denied { .. }
        ));
        let elsewhere = Party {
            ip: Some("10.1.2.3".parse().expect("ip")),
            ..db()
        };
        assert!(matches!(
            evaluate(&[p], Direction::Egress, &elsa(), &elsewhere, &pg()),
            Verdict::Allowed { .. }
        ));
        assert_eq!(
            cidr_contains("fd00::/8", "fd12::1".parse().expect("ip")),
            Some(true)
        );
        assert_eq!(
            cidr_contains("0.0.0.0/0", "fd12::1".parse().expect("ip")),
            Some(false)
        );
        assert_eq!(
            cidr_contains("garbage", "1.2.3.4".parse().expect("ip")),
            None
        );
    }

    #[test]
    fn ingress_on_the_database_from_elsa_by_pod_selector() {
        let p = pol(json!({"metadata": {"name": "db-in", "namespace": "elsa"},
            "spec": {"podSelector": {"matchLabels": {"app": "postgres"}},
              "ingress": [{"from": [{"podSelector": {"matchLabels": {"app": "elsa-server"}}}],
                           "ports": [{"port": "postgres"}]}]}}));
        assert_eq!(
            evaluate(
                std::slice::from_ref(&p),
                Direction::Ingress,
                &db(),
                &elsa(),
                &pg()
            ),
            Verdict::Allowed {
                policy: "db-in".into(),
                rule: 1
            }
        );
        let other = Party {
            pod_labels: Some(labels(&[("app", "debug")])),
            ..elsa()
        };
        assert!(matches!(
            evaluate(&[p], Direction::Ingress, &db(), &other, &pg()),
            Verdict::Denied { .. }
        ));
    }

    #[test]
    fn expressions() {
        let sel: LabelSelector = serde_json::from_value(json!({"matchExpressions": [
            {"key": "tier", "operator": "In", "values": ["db"]},
            {"key": "canary", "operator": "DoesNotExist"}]}))
        .expect("sel");
        assert!(selector_matches(&sel, &labels(&[("tier", "db")])));
        assert!(!selector_matches(
            &sel,
            &labels(&[("tier", "db"), ("canary", "1")])
        ));
        assert!(!selector_matches(&sel, &labels(&[])));
        assert_eq!(describe_selector(&sel), "tier In (db),!canary");
    }
}
