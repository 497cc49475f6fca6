//! The namespace's NetworkPolicies (one list) and, when there is any, the labels of the
//! cluster DNS namespace their egress rules select by (one get). A 403 on either is recorded
//! as such: `network.policy` then names what it could not see.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::Client;
use kube::api::{Api, ListParams};

use crate::domain::netpol::DNS_NAMESPACE;
use crate::facts::{PolicyFacts, Probe};
use crate::redact;

pub async fn gather(client: &Client, ns: &str, timeout: Duration) -> Probe<PolicyFacts> {
    let api: Api<NetworkPolicy> = Api::namespaced(client.clone(), ns);
    let lp = ListParams::default();
    let listed = super::kube::read(
        "networkpolicies",
        "list",
        "networkpolicies",
        timeout,
        || api.list(&lp),
    )
    .await;
    let policies = match listed {
        Probe::Observed(l) => l
            .items
            .into_iter()
            .map(|mut p| {
                redact::metadata(&mut p.metadata);
                p
            })
            .collect::<Vec<_>>(),
        other => return other.recast(),
    };
    let mut namespaces = BTreeMap::new();
    if !policies.is_empty() && ns != DNS_NAMESPACE {
        let ns_api: Api<Namespace> = Api::all(client.clone());
        let p = super::kube::read("namespace", "get", "namespaces", timeout, || {
            ns_api.get(DNS_NAMESPACE)
        })
        .await;
        namespaces.insert(
            DNS_NAMESPACE.to_owned(),
            p.map(|n| n.metadata.labels.unwrap_or_default()),
        );
    }
    Probe::Observed(PolicyFacts {
        policies,
        namespaces,
    })
}
