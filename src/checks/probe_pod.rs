//! The probe pod of `--vantage debug-pod` that never ran its probe: refused at creation, not
//! schedulable, not scheduled at all, its image not pullable, its container not configurable.
//! `network.dns`, `network.tcp` and `database.login` (when the login runs in that pod) each
//! report it as their own cause, so the fix is shown where the user looks.

use super::Finding;
use crate::facts::network::PodNotStarted;
use crate::facts::{Failure, Probe};
use crate::report::Evidence;

/// The cause ids, one per way the pod cannot start; every check that runs from the debug pod
/// lists them and has a table for each.
pub const CAUSES: [&str; 5] = [
    "probe-pod-refused",
    "probe-pod-unschedulable",
    "probe-pod-not-scheduled",
    "probe-pod-image-pull",
    "probe-pod-config-error",
];

/// What made the probe pod not run, when that is why `probe` holds no value.
pub fn why<T>(probe: &Probe<T>) -> Option<&PodNotStarted> {
    match probe {
        Probe::Failed(Failure {
            probe_pod: Some(why),
            ..
        }) => Some(why.as_ref()),
        _ => None,
    }
}

/// The finding for a probe pod that never ran its probe; `what` is what was to be tested
/// there ("DNS", "the TCP connection", "the login").
pub fn finding(why: &PodNotStarted, what: &str) -> Finding {
    let pod_evidence = |pod: &str| {
        Evidence::new(
            "debug pod",
            format!("{pod} (deleted; its events stay for about an hour)"),
        )
    };
    let found = match why {
        PodNotStarted::Refused {
            code,
            reason,
            message,
        } => Finding::unknown(
            Some("probe-pod-refused"),
            format!(
                "{what} not tested: the API server would not admit the debug pod ({code} {reason}): {message}"
            ),
        )
        .with(Evidence::new("API server said", message.clone()).from(format!("HTTP {code}"))),
        PodNotStarted::Unschedulable { pod, message } => Finding::unknown(
            Some("probe-pod-unschedulable"),
            format!(
                "{what} not tested: the scheduler found no node for the debug pod: {message}"
            ),
        )
        .with(pod_evidence(pod))
        .with(
            Evidence::new("scheduler said", message.clone())
                .from("condition PodScheduled=False, reason Unschedulable"),
        ),
        PodNotStarted::NotScheduled { pod, waited_ms } => Finding::unknown(
            Some("probe-pod-not-scheduled"),
            format!(
                "{what} not tested: no scheduler placed the debug pod on a node within {} (--timeout); a scheduler answers in well under a second",
                crate::report::humanize(std::time::Duration::from_millis(*waited_ms))
            ),
        )
        .with(pod_evidence(pod)),
        PodNotStarted::ImagePull {
            pod,
            image,
            reason,
            message,
        } => Finding::unknown(
            Some("probe-pod-image-pull"),
            format!(
                "{what} not tested: the kubelet cannot pull the probe image {image} ({reason}); build it from deploy/Dockerfile, push it to a registry this cluster pulls from and pass it with --probe-image"
            ),
        )
        .with(pod_evidence(pod))
        .with(Evidence::new("--probe-image", image.clone()))
        .with(Evidence::new("kubelet said", message.clone()).from(reason.clone()))
        .var("image", image),
        PodNotStarted::ContainerConfig { pod, message } => Finding::unknown(
            Some("probe-pod-config-error"),
            format!(
                "{what} not tested: the kubelet cannot set up the debug pod's container (CreateContainerConfigError): {message}; the debug pod takes Elsa's environment, so Elsa's own pods fail the same way — see config.refs"
            ),
        )
        .with(pod_evidence(pod))
        .with(Evidence::new("kubelet said", message.clone()).from("CreateContainerConfigError")),
    };
    match why.pod() {
        Some(pod) => found.var("pod", pod),
        None => found,
    }
}
