//! How the simulated API server is reached. Like a real kube-apiserver it serves TLS only by
//! default, offering `h2` and `http/1.1` through ALPN: plain requests share one HTTP/2
//! connection, while exec and port-forward upgrade an HTTP/1.1 connection to WebSocket.
//! [`Transport::TlsHttp1`] offers only `http/1.1` (a server, or a proxy in front of one, without
//! HTTP/2), and [`Transport::Plain`] is cleartext for tests that speak raw HTTP/1.1 to it.
//!
//! The certificate is a static, test-only pair committed in `sim/tls/` (a self-signed CA whose
//! key was discarded after signing one server certificate for `127.0.0.1`, `localhost` and
//! `kubernetes.default.svc`, valid until 2126). Never trust that CA for anything else. Both keys
//! are RSA-2048, what kubeadm (and so kind and minikube) generates by default, so a full
//! handshake costs the server an RSA signature as a real one does; like Go's TLS server, this
//! one issues TLS 1.3 session tickets, so a client that keeps them resumes later connections
//! without a certificate or a signature ([`ConnectionRecord::resumed`]).
//!
//! Every accepted TCP connection, completed TLS handshake and negotiated protocol is counted
//! ([`ConnectionRecord`]), and each request in the log names its connection, so tests and
//! benchmarks can see how a client used its connections.

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;

/// The test-only CA that signed the server certificate (PEM).
pub const CA_PEM: &str = include_str!("../tls/ca.crt");
const CERT_PEM: &str = include_str!("../tls/server.crt");
const KEY_PEM: &str = include_str!("../tls/server.key");

/// How the server is reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Transport {
    /// TLS, ALPN offering `h2` and `http/1.1` (a real API server).
    #[default]
    Tls,
    /// TLS, ALPN offering only `http/1.1`: no HTTP/2.
    TlsHttp1,
    /// Cleartext HTTP/1.1 (and HTTP/2 with prior knowledge).
    Plain,
}

impl Transport {
    /// `https` or `http`.
    pub fn scheme(self) -> &'static str {
        match self {
            Transport::Plain => "http",
            Transport::Tls | Transport::TlsHttp1 => "https",
        }
    }
}

/// One accepted TCP connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionRecord {
    /// Its number, from 1 in accept order; requests in the log carry it.
    pub id: u64,
    /// Whether a TLS handshake completed on it.
    pub tls: bool,
    /// Whether that handshake resumed an earlier session (a TLS 1.3 ticket this server issued
    /// on another connection) instead of a full one: no certificate, no signature.
    pub resumed: bool,
    /// The protocol spoken: `h2` or `http/1.1` (from ALPN; for cleartext, `http/1.1`, or `h2`
    /// once a request arrived as HTTP/2), `""` until the handshake finished or if it failed.
    pub protocol: String,
    /// Requests answered on it.
    pub requests: u64,
}

/// Totals over a server's connections.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ConnectionStats {
    /// TCP connections accepted.
    pub accepted: u64,
    /// TLS handshakes completed.
    pub tls_handshakes: u64,
    /// Of those, the ones that resumed a session (the rest were full handshakes).
    pub tls_resumed: u64,
    /// Connections speaking HTTP/2.
    pub h2: u64,
    /// Connections speaking HTTP/1.1.
    pub http1: u64,
}

/// The connection a request arrived on (a request extension).
#[derive(Debug, Clone, Copy)]
pub struct ConnectionId(pub u64);

/// The server's connection counters.
#[derive(Debug, Default)]
pub struct Connections {
    next: AtomicU64,
    list: Mutex<Vec<ConnectionRecord>>,
}

impl Connections {
    fn accepted(&self) -> u64 {
        let id = self.next.fetch_add(1, Ordering::SeqCst) + 1;
        if let Ok(mut l) = self.list.lock() {
            l.push(ConnectionRecord {
                id,
                tls: false,
                resumed: false,
                protocol: String::new(),
                requests: 0,
            });
        }
        id
    }

    fn update(&self, id: u64, f: impl FnOnce(&mut ConnectionRecord)) {
        if let Ok(mut l) = self.list.lock()
            && let Some(r) = l.iter_mut().find(|r| r.id == id)
        {
            f(r);
        }
    }

    /// A request arrived on connection `id` speaking `protocol`.
    pub fn request(&self, id: u64, protocol: &str) {
        self.update(id, |r| {
            r.requests += 1;
            if !r.tls {
                protocol.clone_into(&mut r.protocol);
            }
        });
    }

    /// Every connection so far.
    pub fn snapshot(&self) -> Vec<ConnectionRecord> {
        self.list.lock().map(|l| l.clone()).unwrap_or_default()
    }

    /// Totals so far.
    pub fn stats(&self) -> ConnectionStats {
        let list = self.snapshot();
        ConnectionStats {
            accepted: list.len() as u64,
            tls_handshakes: list.iter().filter(|r| r.tls).count() as u64,
            tls_resumed: list.iter().filter(|r| r.resumed).count() as u64,
            h2: list.iter().filter(|r| r.protocol == "h2").count() as u64,
            http1: list.iter().filter(|r| r.protocol == "http/1.1").count() as u64,
        }
    }
}

/// The TLS acceptor for `transport`, or `None` for cleartext.
pub fn acceptor(transport: Transport) -> Result<Option<tokio_rustls::TlsAcceptor>, String> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let alpn: Vec<Vec<u8>> = match transport {
        Transport::Plain => return Ok(None),
        Transport::Tls => vec![b"h2".to_vec(), b"http/1.1".to_vec()],
        Transport::TlsHttp1 => vec![b"http/1.1".to_vec()],
    };
    let certs = CertificateDer::pem_slice_iter(CERT_PEM.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("server certificate: {e}"))?;
    let key = PrivateKeyDer::from_pem_slice(KEY_PEM.as_bytes())
        .map_err(|e| format!("server key: {e}"))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS versions: {e}"))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| format!("server certificate: {e}"))?;
    config.alpn_protocols = alpn;
    // Stateless session tickets, as Go's crypto/tls issues them by default.
    config.ticketer =
        rustls::crypto::ring::Ticketer::new().map_err(|e| format!("session tickets: {e}"))?;
    Ok(Some(tokio_rustls::TlsAcceptor::from(Arc::new(config))))
}

/// Accepts connections until `shutdown` fires, then closes them gracefully (idle HTTP/1.1
/// connections at once, HTTP/2 with GOAWAY after their streams end).
pub async fn serve(
    listener: TcpListener,
    app: axum::Router,
    tls: Option<tokio_rustls::TlsAcceptor>,
    connections: Arc<Connections>,
    mut shutdown: tokio::sync::oneshot::Receiver<()>,
) {
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    loop {
        let accepted = tokio::select! {
            _ = &mut shutdown => break,
            a = listener.accept() => a,
        };
        let tcp = match accepted {
            Ok((tcp, _)) => tcp,
            Err(e) => {
                // Out of descriptors and the like: back off instead of spinning.
                tracing::warn!("simulated API server: accept: {e}");
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        // Like every Go server, the API server's connections have TCP_NODELAY: small
        // websocket frames (exec, port-forward) are not held back for delayed ACKs.
        let _ = tcp.set_nodelay(true);
        let id = connections.accepted();
        let watcher = graceful.watcher();
        let (app, tls, connections) = (app.clone(), tls.clone(), connections.clone());
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
                req.extensions_mut().insert(ConnectionId(id));
                let mut app = app.clone();
                async move { tower_service::Service::call(&mut app, req).await }
            });
            let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
            match tls {
                None => {
                    let conn = builder.serve_connection_with_upgrades(TokioIo::new(tcp), service);
                    let _ = watcher.watch(conn.into_owned()).await;
                }
                Some(acceptor) => {
                    let handshake =
                        tokio::time::timeout(Duration::from_secs(10), acceptor.accept(tcp)).await;
                    let Ok(Ok(stream)) = handshake else {
                        return;
                    };
                    let session = stream.get_ref().1;
                    let h2 = session.alpn_protocol() == Some(b"h2");
                    let resumed = session.handshake_kind() == Some(rustls::HandshakeKind::Resumed);
                    connections.update(id, |r| {
                        r.tls = true;
                        r.resumed = resumed;
                        r.protocol = if h2 { "h2" } else { "http/1.1" }.to_owned();
                    });
                    builder = if h2 {
                        builder.http2_only()
                    } else {
                        builder.http1_only()
                    };
                    let conn =
                        builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
                    let _ = watcher.watch(conn.into_owned()).await;
                }
            }
        });
    }
    drop(listener);
    graceful.shutdown().await;
}
