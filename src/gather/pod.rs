//! Looking inside a pod: run a command in a container (`pods/exec` over WebSocket) and read a
//! container's logs (`pods/log`). Each call owns its arguments, is bounded by a timeout and
//! caps what it keeps, and answers with a [`Probe`] classified like [`super::kube::classify`]:
//! RBAC refusals are `Forbidden`, a pod or previous instance that does not exist is `Absent`,
//! an image without a shell is `Failed` with a reason starting `no shell:`.

use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Status;
use kube::api::{Api, AttachParams, LogParams};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt};

use crate::facts::Probe;
use crate::redact;

/// Bytes kept of each of stdout, stderr and logs; the rest is read and dropped.
pub const OUTPUT_CAP: usize = 64 * 1024;

/// What a command printed and how it ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecOutput {
    /// Standard output (lossy UTF-8, at most [`OUTPUT_CAP`] bytes).
    pub stdout: String,
    /// Standard error (same).
    pub stderr: String,
    /// The exit status; `None` when the connection ended without one.
    pub exit_code: Option<i32>,
}

/// Read everything from `r`, keeping the first `cap` bytes.
async fn read_capped<R: AsyncRead + Unpin>(mut r: R, cap: usize) -> String {
    let mut kept = Vec::new();
    let mut buf = vec![0u8; 8192];
    loop {
        match r.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                let room = cap.saturating_sub(kept.len());
                kept.extend_from_slice(&buf[..n.min(room)]);
            }
        }
    }
    String::from_utf8_lossy(&kept).into_owned()
}

/// `cannot get resource "pods/exec"` → `get`.
fn denied_verb(message: &str) -> Option<String> {
    let rest = message.split("cannot ").nth(1)?;
    let verb = rest.split_whitespace().next()?;
    Some(verb.to_string())
}

fn timed_out<T>(timeout: Duration) -> Probe<T> {
    Probe::failed(
        None,
        format!(
            "no answer within --timeout {}",
            crate::report::humanize(timeout)
        ),
    )
}

/// The exit code in a kubelet `NonZeroExitCode` status.
fn exit_code_of(status: &Status) -> Option<i32> {
    status
        .details
        .as_ref()?
        .causes
        .as_ref()?
        .iter()
        .find(|c| c.reason.as_deref() == Some("ExitCode"))
        .and_then(|c| c.message.as_deref()?.parse().ok())
}

/// Whether `exe` names a shell.
fn is_shell(exe: &str) -> bool {
    matches!(
        exe.rsplit('/').next().unwrap_or(exe),
        "sh" | "bash" | "dash" | "ash" | "zsh"
    )
}

/// Run `argv` in `container` of `pod` (stdout and stderr, no stdin, no TTY).
pub async fn exec(
    client: kube::Client,
    namespace: String,
    pod: String,
    container: String,
    argv: Vec<String>,
    timeout: Duration,
) -> Probe<ExecOutput> {
    let api: Api<Pod> = Api::namespaced(client, &namespace);
    let params = AttachParams::default()
        .container(container)
        .stdin(false)
        .stdout(true)
        .stderr(true);
    let exe = argv.first().cloned().unwrap_or_default();
    let run = async {
        let mut proc = api.exec(&pod, argv, &params).await?;
        let stdout = proc.stdout();
        let stderr = proc.stderr();
        let status = proc.take_status();
        let out = async {
            match stdout {
                Some(r) => read_capped(r, OUTPUT_CAP).await,
                None => String::new(),
            }
        };
        let err = async {
            match stderr {
                Some(r) => read_capped(r, OUTPUT_CAP).await,
                None => String::new(),
            }
        };
        let st = async {
            match status {
                Some(s) => s.await,
                None => None,
            }
        };
        let (stdout, stderr, status) = tokio::join!(out, err, st);
        let _ = proc.join().await;
        Ok::<_, kube::Error>((stdout, stderr, status))
    };
    let (stdout, stderr, status) = match tokio::time::timeout(timeout, run).await {
        Err(_) => return timed_out(timeout),
        Ok(Err(e)) => return classify_exec(&e),
        Ok(Ok(v)) => v,
    };
    let exit_code = match &status {
        None => None,
        Some(s) if s.status.as_deref() == Some("Success") => Some(0),
        Some(s) if s.reason.as_deref() == Some("NonZeroExitCode") => exit_code_of(s),
        Some(s) => {
            let message = redact::text(s.message.as_deref().unwrap_or("no message"));
            let missing = message.contains("executable file not found")
                || message.contains("no such file or directory");
            return if missing && is_shell(&exe) {
                Probe::failed(
                    None,
                    format!("no shell: the image has no {exe} ({message})"),
                )
            } else {
                Probe::failed(None, format!("exec failed: {message}"))
            };
        }
    };
    Probe::Observed(ExecOutput {
        stdout,
        stderr,
        exit_code,
    })
}

fn classify_exec(e: &kube::Error) -> Probe<ExecOutput> {
    match e {
        kube::Error::Api(status) if status.code == 403 => Probe::Forbidden {
            verb: denied_verb(&status.message).unwrap_or_else(|| "create".to_string()),
            resource: "pods/exec".to_string(),
        },
        // Only the API server's own NotFound means the pod is gone; a kubelet's 404 (container
        // not running) is plain text.
        kube::Error::Api(status) if status.code == 404 && status.reason == "NotFound" => {
            Probe::Absent
        }
        kube::Error::Api(status) => Probe::failed(
            Some(status.code),
            redact::text(&format!("{} ({})", status.message, status.reason)),
        ),
        other => super::kube::classify(other, "create", "pods/exec"),
    }
}

/// The last `tail_lines` lines of `container`'s logs (of its previous instance with
/// `previous`), at most [`OUTPUT_CAP`] bytes, secrets masked. A previous instance that does
/// not exist is `Absent`.
pub async fn logs(
    client: kube::Client,
    namespace: String,
    pod: String,
    container: String,
    previous: bool,
    tail_lines: i64,
    timeout: Duration,
) -> Probe<String> {
    let api: Api<Pod> = Api::namespaced(client, &namespace);
    let params = LogParams {
        container: Some(container),
        previous,
        tail_lines: Some(tail_lines),
        limit_bytes: i64::try_from(OUTPUT_CAP).ok(),
        ..LogParams::default()
    };
    match tokio::time::timeout(timeout, api.logs(&pod, &params)).await {
        Err(_) => timed_out(timeout),
        Ok(Ok(text)) => Probe::Observed(redact::text(&text)),
        Ok(Err(kube::Error::Api(s)))
            if s.code == 400
                && s.message.contains("previous terminated container")
                && s.message.contains("not found") =>
        {
            Probe::Absent
        }
        Ok(Err(e)) => super::kube::classify(&e, "get", "pods/log"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verbs_from_forbidden_messages() {
        assert_eq!(
            denied_verb(
                "pods \"x\" is forbidden: User \"u\" cannot get resource \"pods/exec\" in API group \"\""
            )
            .as_deref(),
            Some("get")
        );
        assert_eq!(denied_verb("pods \"x\" is forbidden: "), None);
    }

    #[tokio::test]
    async fn capped_reads_drain_everything() {
        let data = vec![b'a'; 100_000];
        let s = read_capped(&data[..], 10).await;
        assert_eq!(s, "aaaaaaaaaa");
    }
}
