//! An HTTP server standing in for a process in a simulated pod (Elsa's health endpoint): it
//! answers configured paths with their status and body, and 404 otherwise. It listens on a
//! loopback port and `pods/portforward` to the pod's port is tunnelled to it, so a client sees
//! a real HTTP/1.1 exchange through the real port-forward protocol.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::config::HttpResponseConfig;

type Answers = Arc<BTreeMap<String, HttpResponseConfig>>;

async fn answer(State(answers): State<Answers>, req: Request) -> Response {
    let Some(a) = answers.get(req.uri().path()) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let status = a
        .status
        .and_then(|s| StatusCode::from_u16(s).ok())
        .unwrap_or(StatusCode::OK);
    let mut r = Response::new(Body::from(a.body.clone()));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

/// Starts a responder on `127.0.0.1:0`; it stops when `closing` turns true.
pub async fn spawn(
    responses: BTreeMap<String, HttpResponseConfig>,
    mut closing: tokio::sync::watch::Receiver<bool>,
) -> std::io::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
    let addr = listener.local_addr()?;
    let app = axum::Router::new()
        .fallback(answer)
        .with_state(Arc::new(responses));
    tokio::spawn(async move {
        use axum::serve::ListenerExt;
        let listener = listener.tap_io(|tcp| {
            let _ = tcp.set_nodelay(true);
        });
        let serve = axum::serve(listener, app).with_graceful_shutdown(async move {
            let _ = closing.wait_for(|c| *c).await;
        });
        if let Err(e) = serve.await {
            tracing::warn!("simulated pod HTTP server stopped: {e}");
        }
    });
    Ok(addr)
}

/// Names of the pods a workload (`deployment/x`, `statefulset/x`) owns, from their owner
/// references (a Deployment's pods belong to its ReplicaSet `x-<hash>`).
pub fn pods_of(store: &super::store::Store, ns: &str, workload: &str) -> Vec<String> {
    let Some(def) = super::resources::find("", "v1", "pods") else {
        return Vec::new();
    };
    let (kind, name) = workload.split_once('/').unwrap_or(("", workload));
    let kind = kind.to_ascii_lowercase();
    store
        .list(def, Some(ns))
        .filter(|(_, e)| {
            let pod = e.value(def);
            let owners = pod
                .pointer("/metadata/ownerReferences")
                .and_then(serde_json::Value::as_array)
                .cloned()
                .unwrap_or_default();
            owners.iter().any(|o| {
                let owner_kind = o
                    .get("kind")
                    .and_then(serde_json::Value::as_str)
                    .unwrap_or("");
                let owner = o
                    .get("name")
                    .and_then(serde_json::Value::as_str)
                    .unwrap_or("");
                match (kind.as_str(), owner_kind) {
                    ("deployment", "ReplicaSet") => {
                        owner.rsplit_once('-').is_some_and(|(d, _)| d == name)
                    }
                    ("statefulset", "StatefulSet") => owner == name,
                    _ => false,
                }
            })
        })
        .map(|((_, n), _)| n.clone())
        .collect()
}
