//! Gathering: the only module that performs IO (the cluster, or manifest files for `lint`). It turns what it sees into
//! owned [`crate::facts::FactUpdate`]s sent over a channel, each a `Probe`, secrets already
//! masked. Nothing outside this module uses kube-rs.

pub mod db;
pub mod health;
pub mod kube;
pub mod logs;
pub mod manifests;

use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};

/// Scrubs secrets from the workloads' pod templates before they become facts, keeping the
/// literal values it masks as unprintable [`crate::redact::Literals`] (keyed by workload).
pub fn scrub_workloads(
    deployments: &mut [Deployment],
    statefulsets: &mut [StatefulSet],
) -> crate::redact::Literals {
    let mut kept = crate::redact::Literals::new();
    for d in deployments {
        let prefix = format!("deployment/{}", d.metadata.name.clone().unwrap_or_default());
        if let Some(spec) = d.spec.as_mut().and_then(|s| s.template.spec.as_mut()) {
            crate::redact::pod_spec_keeping(spec, &prefix, &mut kept);
        }
    }
    for s in statefulsets {
        let prefix = format!(
            "statefulset/{}",
            s.metadata.name.clone().unwrap_or_default()
        );
        if let Some(spec) = s.spec.as_mut().and_then(|s| s.template.spec.as_mut()) {
            crate::redact::pod_spec_keeping(spec, &prefix, &mut kept);
        }
    }
    kept
}
