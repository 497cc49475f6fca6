//! Pod logs for `runtime.logs`: the tail of the Elsa container's log in every workload pod,
//! and the previous instance's for containers that restarted, all read at once.
//!
//! Each read ([`crate::gather::pod::logs`]) is bounded (last [`TAIL_LINES`] lines, at most
//! [`crate::gather::pod::OUTPUT_CAP`] bytes, `--timeout`) and redacted with
//! [`crate::redact::text`] before it becomes a fact. A 400 saying there is no
//! previous terminated container means there is nothing to read, not an error; one refused
//! read makes the whole fact `Forbidden` (`get pods/log`), so "could not look" never passes.

use std::time::Duration;

use futures::future::join_all;
use k8s_openapi::api::core::v1::Pod;
use kube::Client;

use crate::facts::{PodLog, Probe};

/// Lines read from the end of each log.
pub const TAIL_LINES: i64 = 200;

/// Restarts of `container` in `pod`, from its status.
fn restarts(pod: &Pod, container: &str) -> i32 {
    pod.status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.name == container))
        .map_or(0, |c| c.restart_count)
}

/// Reads the logs of `container` in every pod (and the previous instance's where it
/// restarted), concurrently.
pub async fn gather(
    client: &Client,
    ns: &str,
    pods: &[Pod],
    container: &str,
    timeout: Duration,
) -> Probe<Vec<PodLog>> {
    let mut wanted: Vec<(String, bool)> = Vec::new();
    for p in pods {
        let Some(name) = p.metadata.name.clone() else {
            continue;
        };
        if restarts(p, container) > 0 {
            wanted.push((name.clone(), true));
        }
        wanted.push((name, false));
    }
    let reads = join_all(wanted.into_iter().map(|(pod, previous)| async move {
        let text = crate::gather::pod::logs(
            client.clone(),
            ns.to_owned(),
            pod.clone(),
            container.to_owned(),
            previous,
            TAIL_LINES,
            timeout,
        )
        .await;
        PodLog {
            pod,
            container: container.to_owned(),
            previous,
            text,
        }
    }))
    .await;
    if let Some(refused) = reads
        .iter()
        .find(|l| matches!(l.text, Probe::Forbidden { .. }))
    {
        return refused.text.clone().recast();
    }
    Probe::Observed(reads)
}
