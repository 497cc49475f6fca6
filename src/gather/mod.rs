//! Gathering: the only module that performs IO (the cluster, or manifest files for `lint`). It turns what it sees into
//! owned [`crate::facts::FactUpdate`]s sent over a channel, each a `Probe`, secrets already
//! masked. Nothing outside this module uses kube-rs or hickory. `dns`, `tcp` and `files` are the
//! probes `elsadoctor probe` runs from inside a pod.

pub mod connect;
pub mod db;
pub mod debug_pod;
pub mod dns;
pub mod files;
pub mod health;
pub mod kube;
pub mod logs;
pub mod manifests;
pub mod migration;
pub mod netpol;
pub mod network;
pub mod pod;
pub mod tcp;

use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};

/// Scrubs secrets from the workloads' pod templates before they become facts, keeping the
/// literal values it masks as unprintable [`crate::redact::Literals`] (keyed by workload).
pub fn scrub_workloads(
    deployments: &mut [Deployment],
    statefulsets: &mut [StatefulSet],
) -> crate::redact::Literals {
    let mut kept = crate::redact::Literals::new();
    for d in deployments {
        crate::redact::metadata(&mut d.metadata);
        let prefix = format!("deployment/{}", d.metadata.name.clone().unwrap_or_default());
        if let Some(spec) = d.spec.as_mut().and_then(|s| s.template.spec.as_mut()) {
            crate::redact::pod_spec_keeping(spec, &prefix, &mut kept);
        }
    }
    for s in statefulsets {
        crate::redact::metadata(&mut s.metadata);
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

/// Where the network, database and file probes run from (DESIGN §4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Vantage {
    /// This process: inside a pod, or on a machine with a route into the cluster network.
    Here,
    /// Through the API: database checks over a port-forward; DNS and TCP are not tested.
    PortForward,
    /// A short-lived probe pod in the namespace runs DNS and TCP; the database session goes
    /// through a port-forward.
    DebugPod,
    /// An ephemeral container in one Elsa pod runs the probes, with that pod's network and
    /// process namespace.
    Ephemeral,
}

impl Vantage {
    /// How the database session is made from this vantage.
    pub fn database(self) -> db::Vantage {
        match self {
            Vantage::Here => db::Vantage::Here,
            Vantage::PortForward | Vantage::DebugPod | Vantage::Ephemeral => {
                db::Vantage::PortForward
            }
        }
    }
}

impl std::fmt::Display for Vantage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Vantage::Here => "here",
            Vantage::PortForward => "port-forward",
            Vantage::DebugPod => "debug-pod",
            Vantage::Ephemeral => "ephemeral",
        })
    }
}

/// How gathering reaches into the cluster network, from the command line.
#[derive(Debug, Clone)]
pub struct Options {
    pub timeout: std::time::Duration,
    pub vantage: Vantage,
    /// The image of the debug pod and of the ephemeral container.
    pub probe_image: String,
    /// resolv.conf for DNS probes from `here` (default /etc/resolv.conf).
    pub resolv_conf: std::path::PathBuf,
    /// Every pod or container the run creates is registered here, so it is removed on any exit.
    pub janitor: debug_pod::Janitor,
}
