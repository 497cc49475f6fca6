//! How the namespace migrates (`migration.*`): the namespace's Jobs and CronJobs (one list
//! each, in the first wave), then, for each Job that migrates Elsa's database
//! ([`crate::domain::migration::is_migration_job`]), its pods (listed with the Job's own
//! selector) and the logs of its migrating containers ([`super::logs::gather`]). Read-only:
//! Jobs are listed, never created or run.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::Pod;
use kube::Client;
use kube::api::{Api, ListParams};

use crate::domain::migration;
use crate::facts::{MigrationFacts, Probe};
use crate::redact;

/// Pods of one Job whose logs are read (the newest).
const PODS_PER_JOB: usize = 3;

/// The Job's `spec.selector.matchLabels` as a label selector (`batch.kubernetes.io/controller-uid=…`),
/// else the `batch.kubernetes.io/job-name` label the Job controller sets on its pods.
fn selector(job: &Job) -> String {
    let labels = job
        .spec
        .as_ref()
        .and_then(|s| s.selector.as_ref())
        .and_then(|s| s.match_labels.as_ref())
        .filter(|l| !l.is_empty());
    match labels {
        Some(l) => l
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(","),
        None => format!(
            "batch.kubernetes.io/job-name={}",
            job.metadata.name.as_deref().unwrap_or_default()
        ),
    }
}

pub async fn gather(client: &Client, ns: &str, timeout: Duration) -> Probe<MigrationFacts> {
    let job_api: Api<Job> = Api::namespaced(client.clone(), ns);
    let cron_api: Api<CronJob> = Api::namespaced(client.clone(), ns);
    let lp = ListParams::default();
    let (jobs, cron_jobs) = futures::join!(
        super::kube::read("jobs", "list", "jobs", timeout, || job_api.list(&lp)),
        super::kube::read("cronjobs", "list", "cronjobs", timeout, || cron_api
            .list(&lp)),
    );
    let observed_at = Some(k8s_openapi::jiff::Timestamp::now().to_string());
    let jobs = jobs.map(|l| {
        l.items
            .into_iter()
            .map(|mut j| {
                redact::job(&mut j);
                j
            })
            .collect::<Vec<_>>()
    });
    let cron_jobs = cron_jobs.map(|l| {
        l.items
            .into_iter()
            .map(|mut j| {
                redact::cron_job(&mut j);
                j
            })
            .collect::<Vec<_>>()
    });
    let migrating: Vec<Job> = jobs
        .observed()
        .into_iter()
        .flatten()
        .filter(|j| migration::is_migration_job(j))
        .cloned()
        .collect();
    let per_job = futures::future::join_all(migrating.iter().map(|job| async move {
        let name = job.metadata.name.clone().unwrap_or_default();
        let pod_api: Api<Pod> = Api::namespaced(client.clone(), ns);
        let lp = ListParams::default().labels(&selector(job));
        let pods = super::kube::read("pods", "list", "pods", timeout, || pod_api.list(&lp))
            .await
            .map(|l| {
                let mut items = l.items;
                // Newest first.
                items.sort_by(|a, b| {
                    b.metadata
                        .creation_timestamp
                        .as_ref()
                        .map(|t| t.0)
                        .cmp(&a.metadata.creation_timestamp.as_ref().map(|t| t.0))
                });
                items.truncate(PODS_PER_JOB);
                items
                    .into_iter()
                    .map(|mut p| {
                        redact::metadata(&mut p.metadata);
                        if let Some(s) = p.spec.as_mut() {
                            redact::pod_spec(s);
                        }
                        p
                    })
                    .collect::<Vec<_>>()
            });
        let containers: Vec<String> = migration::job_steps(job)
            .into_iter()
            .map(|s| s.container)
            .collect();
        let logs = match &pods {
            Probe::Observed(list) => {
                let mut all = Vec::new();
                let mut refused = None;
                for c in &containers {
                    match super::logs::gather(client, ns, list, c, timeout).await {
                        Probe::Observed(l) => all.extend(l),
                        other => refused = Some(other),
                    }
                }
                match refused {
                    Some(p) if all.is_empty() => p,
                    _ => Probe::Observed(all),
                }
            }
            other => other.clone().recast(),
        };
        (name, pods, logs)
    }))
    .await;
    let mut job_pods = BTreeMap::new();
    let mut job_logs = BTreeMap::new();
    for (name, pods, logs) in per_job {
        job_pods.insert(name.clone(), pods);
        job_logs.insert(name, logs);
    }
    Probe::Observed(MigrationFacts {
        jobs,
        cron_jobs,
        job_pods,
        job_logs,
        observed_at,
    })
}
