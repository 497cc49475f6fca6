//! `pods/exec` over WebSocket, as kube-rs (`Api::<Pod>::exec`) and kubectl speak it.
//!
//! - Subprotocols: `v5.channel.k8s.io` (the API server terminates the WebSocket itself and adds
//!   the close signal) and `v4.channel.k8s.io`; the first one offered that is supported wins.
//! - Binary frames, first byte the channel: 0 stdin, 1 stdout, 2 stderr, 3 error (a JSON
//!   `metav1.Status`, what the kubelet writes when the process ends), 4 resize; v5 also 255,
//!   `[255, n]` = "channel n is closed".
//! - When the connection opens, every channel the server writes gets an empty frame (the
//!   channel byte alone), as `wsstream.Conn` does.
//! - The status is `{"metadata":{},"status":"Success"}`, or for a non-zero exit
//!   `reason: NonZeroExitCode` with the exit code as the `ExitCode` cause, exactly as the
//!   kubelet marshals it; a runtime failure (no such executable) is an `InternalError`.

use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::sync::watch;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role};

use super::shell::{Exit, Outcome};

/// Version 5 of the channel protocol (close signal).
pub const V5: &str = "v5.channel.k8s.io";
/// Version 4 of the channel protocol (JSON status on channel 3).
pub const V4: &str = "v4.channel.k8s.io";

const STDOUT: u8 = 1;
const STDERR: u8 = 2;
const ERROR: u8 = 3;
const CLOSE: u8 = 255;
/// Bytes per data frame.
const CHUNK: usize = 32 * 1024;

/// The protocol picked from a `Sec-WebSocket-Protocol` header: the first offered one that is
/// supported. `Err` carries the offered list for the refusal message.
pub fn negotiate(offered: Option<&str>) -> Result<&'static str, Vec<String>> {
    let offered: Vec<String> = offered
        .unwrap_or_default()
        .split(',')
        .map(|p| p.trim().to_string())
        .filter(|p| !p.is_empty())
        .collect();
    offered
        .iter()
        .find_map(|p| match p.as_str() {
            V5 => Some(V5),
            V4 => Some(V4),
            _ => None,
        })
        .ok_or(offered)
}

/// The status the kubelet writes on the error channel for how the process ended.
/// `argv` and `container_id` only appear in failure messages.
pub fn status_json(exit: &Exit, argv: &[String], container_id: &str) -> Value {
    match exit {
        Exit::Code(0) => json!({"metadata": {}, "status": "Success"}),
        Exit::Code(code) => json!({
            "metadata": {},
            "status": "Failure",
            "message": format!(
                "command terminated with non-zero exit code: error executing command [{}], exit code {code}",
                argv.join(" ")
            ),
            "reason": "NonZeroExitCode",
            "details": {"causes": [{"reason": "ExitCode", "message": code.to_string()}]}
        }),
        Exit::NotFound(exe) => {
            let why = format!(
                "error executing command in container: failed to exec in container: failed to start exec \"{container_id}\": OCI runtime exec failed: exec failed: unable to start container process: exec: \"{exe}\": executable file not found in $PATH: unknown"
            );
            json!({
                "metadata": {},
                "status": "Failure",
                "message": format!("Internal error occurred: {why}"),
                "reason": "InternalError",
                "details": {"causes": [{"message": why}]},
                "code": 500
            })
        }
    }
}

/// Everything a session needs once the connection is upgraded.
pub struct Session {
    /// Negotiated protocol ([`V5`] or [`V4`]).
    pub protocol: &'static str,
    /// What the process produced.
    pub outcome: Outcome,
    /// The error-channel status.
    pub status: Value,
    /// Whether the client asked for stdout / stderr.
    pub stdout: bool,
    /// See `stdout`.
    pub stderr: bool,
    /// Becomes `true` on server shutdown.
    pub closing: watch::Receiver<bool>,
}

/// Wait for the upgrade, then play the session in a task of its own.
pub fn spawn(on_upgrade: hyper::upgrade::OnUpgrade, session: Session) {
    tokio::spawn(async move {
        let upgraded = match on_upgrade.await {
            Ok(u) => u,
            Err(e) => {
                tracing::debug!("exec: connection upgrade failed: {e}");
                return;
            }
        };
        let io = hyper_util::rt::TokioIo::new(upgraded);
        let ws = WebSocketStream::from_raw_socket(io, Role::Server, None).await;
        let mut closing = session.closing.clone();
        tokio::select! {
            () = session.run(ws) => {}
            _ = closing.wait_for(|c| *c) => {}
        }
    });
}

fn frame(channel: u8, data: &[u8]) -> Message {
    let mut v = Vec::with_capacity(data.len() + 1);
    v.push(channel);
    v.extend_from_slice(data);
    Message::Binary(v.into())
}

impl Session {
    async fn run<S>(self, ws: WebSocketStream<S>)
    where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let (mut sink, mut stream) = ws.split();
        // Drain what the client sends (stdin, resize, pings, its close) in the background.
        let reader = tokio::spawn(async move {
            while let Some(Ok(msg)) = stream.next().await {
                if msg.is_close() {
                    break;
                }
            }
        });
        let v5 = self.protocol == V5;
        let mut frames: Vec<Message> = Vec::new();
        let mut channels = vec![ERROR];
        if self.stdout {
            channels.push(STDOUT);
        }
        if self.stderr {
            channels.push(STDERR);
        }
        channels.sort_unstable();
        for ch in &channels {
            frames.push(frame(*ch, &[]));
        }
        if self.stdout {
            for chunk in self.outcome.stdout.chunks(CHUNK) {
                frames.push(frame(STDOUT, chunk));
            }
        }
        if self.stderr {
            for chunk in self.outcome.stderr.chunks(CHUNK) {
                frames.push(frame(STDERR, chunk));
            }
        }
        if v5 {
            for ch in [STDOUT, STDERR] {
                if channels.contains(&ch) {
                    frames.push(frame(CLOSE, &[ch]));
                }
            }
        }
        let status = serde_json::to_vec(&self.status).unwrap_or_default();
        frames.push(frame(ERROR, &status));
        if v5 {
            frames.push(frame(CLOSE, &[ERROR]));
        }
        for f in frames {
            if sink.feed(f).await.is_err() {
                return;
            }
        }
        let _ = sink
            .send(Message::Close(Some(CloseFrame {
                code: CloseCode::Normal,
                reason: "".into(),
            })))
            .await;
        // Give the client a moment to answer the close, then drop the connection.
        let _ = tokio::time::timeout(std::time::Duration::from_secs(5), reader).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negotiation() {
        assert_eq!(
            negotiate(Some("v5.channel.k8s.io, v4.channel.k8s.io")),
            Ok(V5)
        );
        assert_eq!(negotiate(Some("v4.channel.k8s.io")), Ok(V4));
        assert_eq!(negotiate(Some("x, v4.channel.k8s.io")), Ok(V4));
        assert!(negotiate(Some("channel.k8s.io")).is_err());
        assert!(negotiate(None).is_err());
    }

    #[test]
    fn statuses_like_the_kubelet() {
        let argv = vec!["sh".to_string(), "-c".to_string(), "exit 3".to_string()];
        assert_eq!(
            status_json(&Exit::Code(0), &argv, "c").to_string(),
            r#"{"metadata":{},"status":"Success"}"#
        );
        let s = status_json(&Exit::Code(3), &argv, "c");
        assert_eq!(s["reason"], "NonZeroExitCode");
        assert_eq!(s["details"]["causes"][0]["reason"], "ExitCode");
        assert_eq!(s["details"]["causes"][0]["message"], "3");
        let s = status_json(&Exit::NotFound("sh".into()), &argv, "c");
        assert!(
            s["message"]
                .as_str()
                .is_some_and(|m| m.contains("executable file not found in $PATH"))
        );
    }
}
