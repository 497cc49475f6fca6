//! The Kubernetes API client's connections: one per run, as kubectl does.
//!
//! kube-rs's default stack speaks HTTP/1.1 only and opens one TCP+TLS connection per concurrent
//! request (a TLS handshake costs more than the requests it carries). This stack, built on
//! kube-rs's public extension points ([`ClientBuilder::new`], [`ConfigExt`]), sends every plain
//! API request over one HTTP/2 connection negotiated by ALPN (`h2`, then `http/1.1`), opened by
//! the first request while the others wait for it (single flight). When the server picks
//! HTTP/1.1 (no `h2` in its ALPN, or a cleartext `http://` server), plain requests go through a
//! pooled HTTP/1.1 client with keep-alive, which starts with the connection that found out. A
//! request carrying `Upgrade` (exec, port-forward, attach: WebSocket) always goes over HTTP/1.1,
//! as it must. TCP_NODELAY is on for every connection.
//!
//! Everything else is kube-rs's own: its rustls configuration from the kubeconfig (CA, client
//! certificate, exec plugin identity, `tls-server-name`, `insecure-skip-tls-verify`), its
//! base-URI, authentication (token, basic, refreshable exec/OIDC tokens) and extra-header
//! (impersonation) layers. A kubeconfig with a `proxy-url` keeps kube-rs's own stack unchanged.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_rustls::{FixedServerNameResolver, HttpsConnector, HttpsConnectorBuilder};
use hyper_timeout::TimeoutConnector;
use hyper_util::client::legacy::connect::{Connection, HttpConnector};
use hyper_util::rt::TokioExecutor;
use kube::client::{Body, ClientBuilder, ConfigExt};
use kube::{Client, Config};
use tower::{BoxError, Service, ServiceBuilder};

type Connector = TimeoutConnector<HttpsConnector<HttpConnector>>;
type Io = <Connector as Service<hyper::Uri>>::Response;
type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// The kube client for `config`: kube-rs's layers over [`Route`].
pub fn client(config: Config) -> Result<Client, kube::Error> {
    if config.proxy_url.is_some() {
        // Proxies (and their errors for protocols this build lacks) stay kube-rs's business.
        return Client::try_from(config);
    }
    let route = Route::new(&config)?;
    let service = ServiceBuilder::new()
        .layer(config.base_uri_layer())
        .option_layer(config.auth_layer()?)
        .layer(config.extra_headers_layer()?)
        .map_err(BoxError::from)
        .service(route);
    Ok(ClientBuilder::new(service, config.default_namespace.clone()).build())
}

/// TCP with TCP_NODELAY, then TLS with ALPN `alpn` (or cleartext for `http://`).
fn connector(
    config: &Config,
    tls: rustls::ClientConfig,
    h2: bool,
) -> Result<HttpsConnector<HttpConnector>, kube::Error> {
    let mut tcp = HttpConnector::new();
    tcp.enforce_http(false);
    tcp.set_nodelay(true);
    let mut builder = HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http();
    if let Some(name) = &config.tls_server_name {
        let name = name.clone().try_into().map_err(|e| {
            kube::Error::RustlsTls(kube::client::RustlsTlsError::InvalidServerName(e))
        })?;
        builder = builder.with_server_name_resolver(FixedServerNameResolver::new(name));
    }
    Ok(if h2 {
        builder.enable_http1().enable_http2().wrap_connector(tcp)
    } else {
        builder.enable_http1().wrap_connector(tcp)
    })
}

/// The plain connection's state, behind an async lock held while connecting (single flight).
enum Plain {
    /// Nothing connected yet, or the HTTP/2 connection ended.
    Unknown,
    /// The server speaks HTTP/2: every plain request is a stream on this connection.
    H2(hyper::client::conn::http2::SendRequest<Body>),
    /// The server picked HTTP/1.1: plain requests use the pooled HTTP/1.1 client.
    Http1,
}

/// Routes each request: upgrades over HTTP/1.1, the rest over the shared HTTP/2 connection (or
/// the HTTP/1.1 pool when the server has no HTTP/2).
#[derive(Clone)]
pub struct Route {
    http1: hyper_util::client::legacy::Client<Stashed, Body>,
    shared: Arc<Shared>,
}

struct Shared {
    /// Offers `h2` and `http/1.1`; only the connect timeout: the connection outlives requests,
    /// each of which is bounded by `--timeout` where it is made.
    negotiating: Connector,
    plain: tokio::sync::Mutex<Plain>,
    /// The connection that found the server speaks HTTP/1.1, for the pool's first connect.
    stash: Arc<Mutex<Option<Io>>>,
    read_timeout: Option<Duration>,
    write_timeout: Option<Duration>,
}

impl Route {
    fn new(config: &Config) -> Result<Route, kube::Error> {
        let tls = config.rustls_client_config()?;
        let mut http1 = TimeoutConnector::new(connector(config, tls.clone(), false)?);
        http1.set_connect_timeout(config.connect_timeout);
        http1.set_read_timeout(config.read_timeout);
        http1.set_write_timeout(config.write_timeout);
        http1.set_reset_reader_on_write(config.reset_reader_on_write);
        let mut negotiating = TimeoutConnector::new(connector(config, tls, true)?);
        negotiating.set_connect_timeout(config.connect_timeout);
        let stash = Arc::new(Mutex::new(None));
        let http1 = hyper_util::client::legacy::Builder::new(TokioExecutor::new()).build(Stashed {
            inner: http1,
            stash: stash.clone(),
        });
        Ok(Route {
            http1,
            shared: Arc::new(Shared {
                negotiating,
                plain: tokio::sync::Mutex::new(Plain::Unknown),
                stash,
                read_timeout: config.read_timeout,
                write_timeout: config.write_timeout,
            }),
        })
    }
}

/// Whether a request asks to switch protocols (WebSocket exec, port-forward, attach).
fn is_upgrade(req: &Request<Body>) -> bool {
    req.headers().contains_key(hyper::header::UPGRADE)
}

impl Shared {
    /// The HTTP/2 connection to send on, connecting first if there is none; `None` when the
    /// server speaks HTTP/1.1 only.
    async fn h2(
        &self,
        uri: &hyper::Uri,
    ) -> Result<Option<hyper::client::conn::http2::SendRequest<Body>>, BoxError> {
        let mut plain = self.plain.lock().await;
        match &*plain {
            Plain::H2(send) if !send.is_closed() => return Ok(Some(send.clone())),
            Plain::Http1 => return Ok(None),
            Plain::H2(_) | Plain::Unknown => {}
        }
        let mut io = self.negotiating.clone().call(uri.clone()).await?;
        if !io.connected().is_negotiated_h2() {
            io.as_mut().set_read_timeout_pinned(self.read_timeout);
            io.as_mut().set_write_timeout_pinned(self.write_timeout);
            if let Ok(mut stash) = self.stash.lock() {
                *stash = Some(io);
            }
            *plain = Plain::Http1;
            return Ok(None);
        }
        let (send, conn) = hyper::client::conn::http2::Builder::new(TokioExecutor::new())
            .handshake(io)
            .await?;
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!("Kubernetes API connection ended: {e}");
            }
        });
        *plain = Plain::H2(send.clone());
        Ok(Some(send))
    }
}

impl Service<Request<Body>> for Route {
    type Response = Response<Incoming>;
    type Error = BoxError;
    type Future = BoxFuture<Result<Response<Incoming>, BoxError>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<Body>) -> Self::Future {
        let http1 = self.http1.clone();
        if is_upgrade(&req) {
            return Box::pin(async move { Ok(http1.request(req).await?) });
        }
        let shared = self.shared.clone();
        Box::pin(async move {
            match shared.h2(req.uri()).await? {
                Some(mut send) => {
                    send.ready().await?;
                    Ok(send.send_request(req).await?)
                }
                None => Ok(http1.request(req).await?),
            }
        })
    }
}

/// The HTTP/1.1 connector, which hands out the stashed connection first.
#[derive(Clone)]
pub struct Stashed {
    inner: Connector,
    stash: Arc<Mutex<Option<Io>>>,
}

impl Service<hyper::Uri> for Stashed {
    type Response = Io;
    type Error = BoxError;
    type Future = BoxFuture<Result<Io, BoxError>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, uri: hyper::Uri) -> Self::Future {
        let stashed = self.stash.lock().ok().and_then(|mut s| s.take());
        match stashed {
            Some(io) => Box::pin(async move { Ok(io) }),
            None => self.inner.call(uri),
        }
    }
}
