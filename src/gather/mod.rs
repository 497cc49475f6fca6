//! Gathering: the only module that performs IO (the cluster, or manifest files for `lint`). It turns what it sees into
//! owned [`crate::facts::FactUpdate`]s sent over a channel, each a `Probe`, secrets already
//! masked. Nothing outside this module uses kube-rs.

pub mod db;
pub mod kube;
pub mod manifests;
