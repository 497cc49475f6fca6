//! Pod logs for `runtime.logs`: the tail of the Elsa container's log in every workload pod,
//! and the previous instance's for containers that restarted, all read at once.
//!
//! Each read is bounded (last [`TAIL_LINES`] lines, at most [`LIMIT_BYTES`] bytes, `--timeout`)
//! and redacted with [`crate::redact::text`] before it becomes a fact. A 400 saying there is no
//! previous terminated container means there is nothing to read, not an error; one refused
//! read makes the whole fact `Forbidden` (`get pods/log`), so "could not look" never passes.

use std::time::Duration;

use futures::future::join_all;
use k8s_openapi::api::core::v1::Pod;
use kube::Client;
use kube::api::{Api, LogParams};

use crate::facts::{PodLog, Probe};

/// Lines read from the end of each log.
pub const TAIL_LINES: i64 = 200;
/// Bytes read at most from each log.
pub const LIMIT_BYTES: i64 = 64 * 1024;

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
    let api: Api<Pod> = Api::namespaced(client.clone(), ns);
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
    let reads = join_all(wanted.into_iter().map(|(pod, previous)| {
        let api = api.clone();
        async move {
            let lp = LogParams {
                container: Some(container.to_owned()),
                previous,
                tail_lines: Some(TAIL_LINES),
                limit_bytes: Some(LIMIT_BYTES),
                ..LogParams::default()
            };
            let text = read(&api, &pod, &lp, timeout).await;
            PodLog {
                pod,
                container: container.to_owned(),
                previous,
                text,
            }
        }
    }))
    .await;
    if let Some(refused) = reads
        .iter()
        .find(|l| matches!(l.text, Probe::Forbidden { .. }))
    {
        return crate::gather::db::recast(refused.text.clone());
    }
    Probe::Observed(reads)
}

/// Redacts line by line: a connection string's value ends at the line's end, so a password
/// near the end of one line must not take the following lines with it.
pub fn redact_lines(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for line in text.lines() {
        out.push_str(&crate::redact::text(line));
        out.push('\n');
    }
    out
}

/// One log read, classified.
async fn read(api: &Api<Pod>, pod: &str, lp: &LogParams, timeout: Duration) -> Probe<String> {
    match tokio::time::timeout(timeout, api.logs(pod, lp)).await {
        Ok(Ok(text)) => Probe::Observed(redact_lines(&text)),
        Ok(Err(kube::Error::Api(s)))
            if lp.previous
                && s.code == 400
                && s.message.contains("previous terminated container") =>
        {
            Probe::Absent
        }
        Ok(Err(e)) => crate::gather::kube::classify(&e, "get", "pods/log"),
        Err(_) => Probe::failed(
            None,
            format!(
                "no answer within --timeout {}",
                crate::runner::humanize(timeout)
            ),
        ),
    }
}
