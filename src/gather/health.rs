//! The Elsa health endpoint for `runtime.health`: one HTTP/1.1 GET through a port-forward to
//! the Elsa container port of one ready pod.
//!
//! The path depends on the version (`domain::elsa::health_probe`): 3.8 Server.Web answers
//! `/health/ready` from its own checks; earlier versions only have `/`, which answers as soon
//! as Kestrel runs. The answer's status and the start of its body (redacted) become the fact.
//! When nothing listens on the port, the kubelet says so on the port-forward's error channel,
//! and that message is the observation. Everything is bounded by `--timeout`.

use std::time::Duration;

use hyper::body::Body as _;
use k8s_openapi::api::core::v1::Pod;
use kube::Client;

use crate::domain::elsa::{self, Identity};
use crate::facts::{HealthAnswer, HealthObservation, Probe};
use crate::gather::db::{ForwardErrors, ForwardStream, forward_to_pod, is_ready};

/// Body bytes kept.
pub const MAX_BODY: usize = 2048;

/// The container port Elsa serves HTTP on: the port named `http`, else 8080 when declared,
/// else the first declared port, else 8080 (the images' default).
pub fn http_port(pod: &Pod, container: &str) -> u16 {
    let ports: Vec<&k8s_openapi::api::core::v1::ContainerPort> = pod
        .spec
        .iter()
        .flat_map(|s| s.containers.iter())
        .filter(|c| c.name == container)
        .flat_map(|c| c.ports.iter().flatten())
        .filter(|p| p.protocol.as_deref().unwrap_or("TCP") == "TCP")
        .collect();
    ports
        .iter()
        .find(|p| p.name.as_deref() == Some("http"))
        .or_else(|| ports.iter().find(|p| p.container_port == elsa::HTTP_PORT))
        .or_else(|| ports.first())
        .and_then(|p| u16::try_from(p.container_port).ok())
        .unwrap_or(8080)
}

/// Asks the health endpoint of the first ready pod.
pub async fn gather(
    client: &Client,
    ns: &str,
    pods: &[Pod],
    identity: Option<&Identity>,
    timeout: Duration,
) -> Probe<HealthObservation> {
    let Some(id) = identity else {
        return Probe::NotAttempted("no Elsa container identified — see workload.flavor".into());
    };
    let Some(probe) = elsa::health_probe(id.flavor, id.version) else {
        return Probe::NotAttempted(match id.version {
            None => "Elsa version not known — see workload.flavor".into(),
            Some(_) => format!("the health endpoints of {} are not known", id.flavor),
        });
    };
    let Some(pod) = pods.iter().find(|p| is_ready(p)) else {
        return Probe::NotAttempted("no ready Elsa pod to ask — see workload.pods".into());
    };
    let pod_name = pod.metadata.name.clone().unwrap_or_default();
    let port = http_port(pod, &id.container);
    let (stream, errors) = match forward_to_pod(client, ns, &pod_name, port, timeout).await {
        Ok(s) => s,
        Err(p) => return p,
    };
    let answer = match tokio::time::timeout(timeout, get(stream, probe.path)).await {
        Ok(Ok((status, body))) => HealthAnswer::Http { status, body },
        Ok(Err(why)) => match refused(errors).await {
            Some(message) => HealthAnswer::Refused { message },
            None => return Probe::failed(None, why),
        },
        Err(_) => {
            return Probe::failed(
                None,
                format!(
                    "{} did not answer within --timeout {}",
                    probe.path,
                    crate::report::humanize(timeout)
                ),
            );
        }
    };
    Probe::Observed(HealthObservation {
        pod: pod_name,
        port,
        path: probe.path.to_owned(),
        answer,
    })
}

/// The kubelet's message on the error channel, if one comes soon.
async fn refused(errors: ForwardErrors) -> Option<String> {
    tokio::time::timeout(Duration::from_millis(500), errors)
        .await
        .ok()
        .flatten()
        .map(|m| crate::redact::text(&m))
}

/// `GET path` over the stream: the status and at most [`MAX_BODY`] bytes of the body.
pub async fn get(stream: ForwardStream, path: &str) -> Result<(u16, String), String> {
    let io = hyper_util::rt::TokioIo::new(stream);
    let (mut sender, conn) = hyper::client::conn::http1::handshake::<_, String>(io)
        .await
        .map_err(|e| format!("HTTP handshake: {e}"))?;
    let driver = tokio::spawn(async move {
        let _ = conn.await;
    });
    let request = hyper::Request::get(path)
        .header(hyper::header::HOST, "localhost")
        .header(hyper::header::USER_AGENT, "elsadoctor")
        .body(String::new())
        .map_err(|e| e.to_string())?;
    let result = async {
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| format!("GET {path}: {}", crate::gather::kube::error_chain(&e)))?;
        let status = response.status().as_u16();
        let mut body = response.into_body();
        let mut bytes: Vec<u8> = Vec::new();
        while bytes.len() < MAX_BODY {
            match std::future::poll_fn(|cx| std::pin::Pin::new(&mut body).poll_frame(cx)).await {
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        bytes.extend_from_slice(&data);
                    }
                }
                // A body cut short still tells what it had to say.
                Some(Err(_)) | None => break,
            }
        }
        bytes.truncate(MAX_BODY);
        Ok((
            status,
            crate::redact::text(&String::from_utf8_lossy(&bytes)),
        ))
    }
    .await;
    driver.abort();
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(ports: serde_json::Value) -> Pod {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "p"},
            "spec": {"containers": [
                {"name": "sidecar", "image": "envoy", "ports": [{"name": "http", "containerPort": 9901}]},
                {"name": "elsa", "image": "elsa", "ports": ports}
            ]}
        }))
        .expect("pod")
    }

    #[test]
    fn the_http_port_is_the_elsa_containers_named_or_8080_or_first() {
        let p = pod(
            serde_json::json!([{"containerPort": 443}, {"name": "http", "containerPort": 5000}]),
        );
        assert_eq!(
            http_port(&p, "elsa"),
            5000,
            "named http, of the Elsa container only"
        );
        let p = pod(serde_json::json!([{"containerPort": 443}, {"containerPort": 8080}]));
        assert_eq!(http_port(&p, "elsa"), 8080);
        let p = pod(
            serde_json::json!([{"containerPort": 5000}, {"containerPort": 53, "protocol": "UDP"}]),
        );
        assert_eq!(http_port(&p, "elsa"), 5000);
        let p = pod(serde_json::json!([]));
        assert_eq!(
            http_port(&p, "elsa"),
            8080,
            "nothing declared: the images' default"
        );
    }
}
