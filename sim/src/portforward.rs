//! `pods/portforward` over WebSocket, as kube-rs (`Api::<Pod>::portforward`) speaks it to a
//! real cluster, tunnelled to real TCP addresses on this machine.
//!
//! What a real cluster does, and so what this does:
//!
//! - The API server authorizes the request like any other (a WebSocket upgrade is a `GET`, so
//!   `get pods/portforward`; from Kubernetes 1.35 also `create`), decodes `ports` (one query
//!   value with commas, or several), finds the pod and proxies the upgrade to its kubelet.
//! - The kubelet (`pkg/kubelet/cri/streaming/portforward/websocket.go`) accepts the
//!   subprotocols `v4.channel.k8s.io` (binary) and `v4.base64.channel.k8s.io`, or none: the
//!   first one the client offers that it knows wins. kube-rs offers
//!   `v5.channel.k8s.io, v4.channel.k8s.io`, so it gets `v4.channel.k8s.io`.
//! - Every message starts with a channel byte. Port `i` of the request has data channel `2i`
//!   and error channel `2i+1`. Before anything else the server writes the port number
//!   (2 bytes, little-endian) once on each of them.
//! - Each port is forwarded on its own (containerd `sandbox_portforward_linux.go`): connect to
//!   `localhost:<port>` in the pod (here: the configured target), copy both ways. When one
//!   direction ends the other gets up to a second. A failure is reported once, as text, on
//!   the port's error channel: `error forwarding port 5432 to pod <sandbox id>, uid : failed
//!   to execute portforward in network namespace "<netns>": ...`.
//! - `v4` has no way to close one channel: the WebSocket closes (normal closure) only once
//!   every port is done, and a client closing the WebSocket ends every port.
//!
//! Backpressure is end to end: a port's target is read only as fast as the WebSocket takes
//! its frames, and frames from the client wait for the target to take the previous ones.

use std::io;
use std::pin::pin;
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role};
use tokio_tungstenite::tungstenite::{Bytes, Message, Utf8Bytes};

use super::util::{base64_decode, base64_encode, hex_id};

/// The binary channel subprotocol, version 4.
pub const V4_BINARY: &str = "v4.channel.k8s.io";
/// The base64 channel subprotocol, version 4 (text frames, channel as an ASCII digit).
pub const V4_BASE64: &str = "v4.base64.channel.k8s.io";

/// How long containerd waits for the second direction once the first has ended.
const HALF_CLOSE_GRACE: Duration = Duration::from_secs(1);
/// containerd's dial timeout.
const DIAL_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a closing WebSocket may take to finish the close handshake.
const CLOSE_GRACE: Duration = Duration::from_secs(5);
/// Bytes read from a target at a time.
const READ_CHUNK: usize = 32 * 1024;
/// Frames queued towards the client (all ports together).
const OUT_QUEUE: usize = 16;
/// Frames queued towards one port's target.
const IN_QUEUE: usize = 8;
/// Channel numbers are one byte: at most 128 ports (kube-rs has the same limit).
pub const MAX_PORTS: usize = 128;

/// Message encoding of the negotiated subprotocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Codec {
    /// Binary frames: channel byte, then the data.
    Binary,
    /// Text frames: channel as `'0' + n`, then the data in base64.
    Base64,
}

/// The subprotocol the kubelet picks from a `Sec-WebSocket-Protocol` header: the first
/// offered one it supports (`""` when none is offered). `None` when nothing fits (the
/// kubelet then answers 403 with an empty body).
pub fn negotiate(offered: Option<&str>) -> Option<(&'static str, Codec)> {
    let offered = offered.map(str::trim).unwrap_or_default();
    let protocols: Vec<&str> = if offered.is_empty() {
        vec![""]
    } else {
        offered.split(',').map(str::trim).collect()
    };
    protocols.into_iter().find_map(|p| match p {
        "" => Some(("", Codec::Binary)),
        V4_BINARY => Some((V4_BINARY, Codec::Binary)),
        V4_BASE64 => Some((V4_BASE64, Codec::Base64)),
        _ => None,
    })
}

/// The pod ports of the `ports` query values, converted like the API server converts
/// `PodPortForwardOptions.ports`: each value may hold several ports separated by commas.
pub fn parse_ports<'a>(values: impl Iterator<Item = &'a str>) -> Result<Vec<u16>, String> {
    let mut ports = Vec::new();
    for value in values {
        for p in value.split(',') {
            let parsed = if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) {
                Err("invalid syntax")
            } else {
                p.parse::<u16>().map_err(|_| "value out of range")
            };
            match parsed {
                Ok(port) => ports.push(port),
                Err(why) => {
                    return Err(format!(
                        "cannot convert to []int32: strconv.ParseUint: parsing {}: {why}",
                        go_quote(p)
                    ));
                }
            }
        }
    }
    Ok(ports)
}

/// Go's `%q` for the short ASCII strings that end up in messages here.
fn go_quote(s: &str) -> String {
    format!("{s:?}")
}

/// Where the runtime keeps a pod: the names its error messages carry.
#[derive(Debug, Clone)]
pub struct PodRuntime {
    /// The CRI sandbox id (the kubelet reports it as the "pod").
    pub sandbox: String,
    /// The network namespace path (`host` for `hostNetwork` pods).
    pub netns: String,
}

impl PodRuntime {
    /// Stable names derived from the pod's identity.
    pub fn for_pod(namespace: &str, name: &str, uid: &str, host_network: bool) -> PodRuntime {
        let sandbox = hex_id(&["sandbox", namespace, name, uid], 64);
        let netns = if host_network {
            "host".to_string()
        } else {
            let h = hex_id(&["netns", namespace, name, uid], 32);
            format!(
                "/var/run/netns/cni-{}-{}-{}-{}-{}",
                &h[0..8],
                &h[8..12],
                &h[12..16],
                &h[16..20],
                &h[20..32]
            )
        };
        PodRuntime { sandbox, netns }
    }
}

/// One requested port and where its connections go.
#[derive(Debug, Clone)]
pub struct PortPlan {
    /// The pod port.
    pub port: u16,
    /// `host:port` to connect to; `None` when nothing listens on that pod port.
    pub target: Option<String>,
}

/// Everything a tunnel needs once the connection is upgraded.
#[derive(Debug)]
pub struct Tunnel {
    /// Negotiated encoding.
    pub codec: Codec,
    /// The requested ports, in request order (port `i` uses channels `2i` and `2i+1`).
    pub ports: Vec<PortPlan>,
    /// Names for error messages.
    pub runtime: PodRuntime,
    /// Becomes `true` when the server shuts down: every tunnel ends.
    pub closing: watch::Receiver<bool>,
}

/// Wait for the HTTP upgrade to complete, then run the tunnel on it, in a task of its own.
pub fn spawn(on_upgrade: hyper::upgrade::OnUpgrade, tunnel: Tunnel) {
    tokio::spawn(async move {
        let upgraded = match on_upgrade.await {
            Ok(u) => u,
            Err(e) => {
                tracing::debug!("portforward: connection upgrade failed: {e}");
                return;
            }
        };
        let io = hyper_util::rt::TokioIo::new(upgraded);
        let ws = WebSocketStream::from_raw_socket(io, Role::Server, None).await;
        tunnel.run(ws).await;
    });
}

fn data_channel(index: usize) -> u8 {
    u8::try_from(2 * index).unwrap_or(u8::MAX)
}

fn error_channel(index: usize) -> u8 {
    data_channel(index).saturating_add(1)
}

/// One message on `channel` with `data`.
fn encode(codec: Codec, channel: u8, data: &[u8]) -> Message {
    match codec {
        Codec::Binary => {
            let mut frame = Vec::with_capacity(data.len() + 1);
            frame.push(channel);
            frame.extend_from_slice(data);
            Message::Binary(frame.into())
        }
        Codec::Base64 => {
            let mut text = String::with_capacity(data.len() * 4 / 3 + 5);
            text.push(char::from(b'0'.wrapping_add(channel)));
            text.push_str(&base64_encode(data));
            Message::Text(text.into())
        }
    }
}

/// The channel and data of a message from the client; `None` for frames the kubelet skips
/// (empty, undecodable).
fn decode(codec: Codec, msg: Message) -> Option<(u8, Bytes)> {
    let raw: Bytes = match msg {
        Message::Binary(b) => b,
        Message::Text(t) => Bytes::from(t),
        _ => return None,
    };
    let (&first, rest) = raw.split_first()?;
    match codec {
        Codec::Binary => Some((first, raw.slice(1..))),
        Codec::Base64 => {
            let text = std::str::from_utf8(rest).ok()?;
            let data = base64_decode(text)?;
            Some((first.wrapping_sub(b'0'), Bytes::from(data)))
        }
    }
}

impl Tunnel {
    /// Serve the WebSocket until every port is done or the client goes away.
    pub async fn run<S>(self, mut ws: WebSocketStream<S>)
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let Tunnel {
            codec,
            ports,
            runtime,
            mut closing,
        } = self;
        // websocket.go: the port number on every data and error channel, before any data.
        for (i, plan) in ports.iter().enumerate() {
            let le = plan.port.to_le_bytes();
            for ch in [data_channel(i), error_channel(i)] {
                if ws.feed(encode(codec, ch, &le)).await.is_err() {
                    return;
                }
            }
        }
        if ws.flush().await.is_err() {
            return;
        }
        let (mut sink, mut stream) = ws.split();
        let (out_tx, mut out_rx) = mpsc::channel::<Message>(OUT_QUEUE);
        let mut inputs = Vec::with_capacity(ports.len());
        let mut forwards = tokio::task::JoinSet::new();
        for (i, plan) in ports.into_iter().enumerate() {
            let (in_tx, in_rx) = mpsc::channel::<Bytes>(IN_QUEUE);
            inputs.push(in_tx);
            let port = PortForward {
                index: i,
                plan,
                runtime: runtime.clone(),
                codec,
                input: in_rx,
                out: out_tx.clone(),
            };
            forwards.spawn(port.run());
        }
        drop(out_tx);

        // Client to pods: demultiplex by channel. Frames for error channels, unknown
        // channels or finished ports are dropped, as the kubelet drops them.
        let reader = async move {
            let mut inputs = inputs;
            let mut closed = false;
            loop {
                let next = if closed {
                    // Finish the close handshake (tungstenite answers on the next read).
                    tokio::time::timeout(CLOSE_GRACE, stream.next())
                        .await
                        .unwrap_or_default()
                } else {
                    stream.next().await
                };
                let msg = match next {
                    Some(Ok(m)) => m,
                    Some(Err(_)) | None => break,
                };
                if msg.is_close() {
                    // Every port ends when the connection does.
                    inputs.clear();
                    closed = true;
                    continue;
                }
                let Some((channel, data)) = decode(codec, msg) else {
                    continue;
                };
                if channel % 2 == 1 || data.is_empty() {
                    continue;
                }
                if let Some(tx) = inputs.get(usize::from(channel / 2)) {
                    // Waits while the port's target is slow; fails once the port is done.
                    let _ = tx.send(data).await;
                }
            }
        };
        // Pods to client; once every port is done, a normal closure.
        let writer = async move {
            while let Some(msg) = out_rx.recv().await {
                if sink.send(msg).await.is_err() {
                    return;
                }
            }
            let _ = sink
                .send(Message::Close(Some(CloseFrame {
                    code: CloseCode::Normal,
                    reason: Utf8Bytes::from_static(""),
                })))
                .await;
        };
        tokio::select! {
            _ = async { tokio::join!(reader, writer) } => {}
            _ = closing.wait_for(|c| *c) => {}
        }
        // Whatever is still running (a target that never closes) ends with the tunnel.
        forwards.shutdown().await;
    }
}

/// One port of a tunnel: containerd's `portForward` for it.
struct PortForward {
    index: usize,
    plan: PortPlan,
    runtime: PodRuntime,
    codec: Codec,
    input: mpsc::Receiver<Bytes>,
    out: mpsc::Sender<Message>,
}

impl PortForward {
    async fn run(self) {
        let port = self.plan.port;
        let err_channel = error_channel(self.index);
        let (codec, out) = (self.codec, self.out.clone());
        let PodRuntime { sandbox, netns } = self.runtime.clone();
        if let Err(why) = self.forward().await {
            // websocket.go: one message on the error channel, then the port is done.
            let msg = format!(
                "error forwarding port {port} to pod {sandbox}, uid : failed to execute portforward in network namespace {}: {why}",
                go_quote(&netns)
            );
            let _ = out.send(encode(codec, err_channel, msg.as_bytes())).await;
        }
    }

    async fn forward(self) -> Result<(), String> {
        let PortForward {
            index,
            plan,
            runtime,
            codec,
            mut input,
            out,
        } = self;
        let port = plan.port;
        let conn = connect(&plan, &runtime.sandbox).await?;
        let local = conn.local_addr().map(|a| a.port()).unwrap_or(0);
        let peer = format!("127.0.0.1:{local}->127.0.0.1:{port}");
        let (mut rd, mut wr) = conn.into_split();
        let channel = data_channel(index);

        let up = async {
            while let Some(chunk) = input.recv().await {
                wr.write_all(&chunk)
                    .await
                    .map_err(|e| format!("write tcp4 {peer}: write: {}", go_errno(&e)))?;
            }
            // The client is gone: let the target see the end of its input.
            let _ = wr.shutdown().await;
            Ok::<(), String>(())
        };
        let down = async {
            loop {
                let mut buf = vec![0u8; READ_CHUNK + 1];
                let n = rd
                    .read(&mut buf[1..])
                    .await
                    .map_err(|e| format!("read tcp4 {peer}: read: {}", go_errno(&e)))?;
                if n == 0 {
                    return Ok::<(), String>(());
                }
                let msg = match codec {
                    Codec::Binary => {
                        buf[0] = channel;
                        buf.truncate(n + 1);
                        Message::Binary(buf.into())
                    }
                    Codec::Base64 => encode(codec, channel, &buf[1..=n]),
                };
                if out.send(msg).await.is_err() {
                    return Ok(());
                }
            }
        };
        let mut up = pin!(up);
        let mut down = pin!(down);
        // containerd: the first direction to end decides; the other gets a second to finish.
        let (first, up_done) = tokio::select! {
            r = &mut up => (r, true),
            r = &mut down => (r, false),
        };
        let second = if up_done {
            tokio::time::timeout(HALF_CLOSE_GRACE, &mut down).await
        } else {
            tokio::time::timeout(HALF_CLOSE_GRACE, &mut up).await
        };
        first.and(second.unwrap_or(Ok(())))
    }
}

/// containerd's `localhost:<port>` dial inside the pod, here to the configured target.
async fn connect(plan: &PortPlan, sandbox: &str) -> Result<TcpStream, String> {
    let port = plan.port;
    let failed = |v4: &str, v6: &str| {
        format!(
            "failed to connect to localhost:{port} inside namespace {}, IPv4: dial tcp4 127.0.0.1:{port}: {v4} IPv6 dial tcp6 [::1]:{port}: {v6} ",
            go_quote(sandbox)
        )
    };
    let refused = "connect: connection refused";
    let Some(to) = &plan.target else {
        return Err(failed(refused, refused));
    };
    match tokio::time::timeout(DIAL_TIMEOUT, TcpStream::connect(to.as_str())).await {
        Ok(Ok(conn)) => {
            // Go dials with TCP_NODELAY, and so does the kubelet's port-forward.
            let _ = conn.set_nodelay(true);
            Ok(conn)
        }
        Ok(Err(e)) => {
            let why = format!("connect: {}", go_errno(&e));
            Err(failed(&why, &why))
        }
        Err(_) => Err(failed("i/o timeout", "i/o timeout")),
    }
}

/// An OS error the way Go prints it: `connection refused`, `broken pipe`.
fn go_errno(e: &io::Error) -> String {
    if e.kind() == io::ErrorKind::TimedOut {
        return "i/o timeout".to_string();
    }
    let text = e.to_string();
    let text = match text.find(" (os error ") {
        Some(i) => &text[..i],
        None => text.as_str(),
    };
    let mut chars = text.chars();
    match chars.next() {
        Some(c) => c.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subprotocol_negotiation_follows_the_clients_order() {
        assert_eq!(
            negotiate(Some("v5.channel.k8s.io, v4.channel.k8s.io")),
            Some((V4_BINARY, Codec::Binary))
        );
        assert_eq!(
            negotiate(Some("v4.base64.channel.k8s.io,v4.channel.k8s.io")),
            Some((V4_BASE64, Codec::Base64))
        );
        assert_eq!(negotiate(None), Some(("", Codec::Binary)));
        assert_eq!(negotiate(Some("  ")), Some(("", Codec::Binary)));
        assert_eq!(negotiate(Some("v5.channel.k8s.io")), None);
        assert_eq!(negotiate(Some("SPDY/3.1+portforward.k8s.io")), None);
    }

    #[test]
    fn ports_convert_like_the_api_server() {
        assert_eq!(parse_ports(["5432"].into_iter()), Ok(vec![5432]));
        assert_eq!(
            parse_ports(["5432,8080", "9090"].into_iter()),
            Ok(vec![5432, 8080, 9090])
        );
        assert_eq!(parse_ports(std::iter::empty()), Ok(vec![]));
        assert_eq!(parse_ports(["0"].into_iter()), Ok(vec![0]));
        assert_eq!(
            parse_ports(["http"].into_iter()).expect_err("not a number"),
            "cannot convert to []int32: strconv.ParseUint: parsing \"http\": invalid syntax"
        );
        assert_eq!(
            parse_ports(["70000"].into_iter()).expect_err("too big"),
            "cannot convert to []int32: strconv.ParseUint: parsing \"70000\": value out of range"
        );
        assert!(parse_ports(["5432,"].into_iter()).is_err());
        assert!(parse_ports(["+5"].into_iter()).is_err());
    }

    #[test]
    fn frames_round_trip_in_both_codecs() {
        for codec in [Codec::Binary, Codec::Base64] {
            let msg = encode(codec, 3, b"hello");
            assert_eq!(decode(codec, msg), Some((3, Bytes::from_static(b"hello"))));
        }
        assert_eq!(
            encode(Codec::Binary, 1, &5432u16.to_le_bytes()),
            Message::Binary(Bytes::from_static(&[1, 0x38, 0x15]))
        );
        assert_eq!(
            encode(Codec::Base64, 0, b"hi"),
            Message::Text("0aGk=".into())
        );
        assert_eq!(decode(Codec::Binary, Message::Binary(Bytes::new())), None);
        assert_eq!(
            decode(Codec::Base64, Message::Text("0!!".into())),
            None,
            "undecodable base64 is skipped"
        );
        assert_eq!(decode(Codec::Binary, Message::Ping(Bytes::new())), None);
    }

    #[test]
    fn runtime_names_look_like_containerds() {
        let r = PodRuntime::for_pod("elsa", "postgres-0", "uid-1", false);
        assert_eq!(r.sandbox.len(), 64);
        assert!(r.sandbox.bytes().all(|b| b.is_ascii_hexdigit()));
        assert!(r.netns.starts_with("/var/run/netns/cni-"));
        assert_eq!(r.netns.len(), "/var/run/netns/cni-".len() + 36);
        assert_eq!(
            PodRuntime::for_pod("elsa", "postgres-0", "uid-1", true).netns,
            "host"
        );
        assert_eq!(
            PodRuntime::for_pod("elsa", "postgres-0", "uid-1", false).sandbox,
            r.sandbox
        );
    }

    #[test]
    fn os_errors_print_like_go() {
        let e = io::Error::from_raw_os_error(111);
        assert_eq!(go_errno(&e), "connection refused");
        let e = io::Error::from_raw_os_error(32);
        assert_eq!(go_errno(&e), "broken pipe");
        let e = io::Error::from(io::ErrorKind::TimedOut);
        assert_eq!(go_errno(&e), "i/o timeout");
    }
}
