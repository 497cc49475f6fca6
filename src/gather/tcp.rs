//! TCP reachability: resolve a host (the system resolver, or pod resolv.conf semantics through
//! [`crate::gather::dns`]) and connect to each address in turn until one accepts, all within one
//! timeout. The outcome tells apart the failures that have different fixes: refused (the host
//! answers, nothing listens on the port), timed out (packets dropped: a NetworkPolicy, a
//! firewall, a dead host), unreachable (no route), and a name that did not resolve.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use tokio::time::Instant;

use crate::domain::resolv::ResolvConf;
pub use crate::facts::network::{TcpAttempt, TcpOutcome, TcpResult};
use crate::gather::dns::{self, DnsOutcome, DnsResult};

/// How the host name becomes addresses.
#[derive(Debug, Clone)]
pub enum Resolve {
    /// The operating system's resolver (tokio's `lookup_host`: getaddrinfo).
    System,
    /// This resolv.conf, with pod semantics (search list, ndots), via [`dns::resolve`].
    Conf(ResolvConf),
}

/// Resolves `host` and connects to `port` on each address until one accepts. Never errors;
/// returns within `timeout` (plus scheduling).
pub async fn connect(host: &str, port: u16, resolve: Resolve, timeout: Duration) -> TcpResult {
    let started = Instant::now();
    let deadline = started + timeout;
    let mut result = TcpResult {
        host: host.to_owned(),
        port,
        resolver: match resolve {
            Resolve::System => "system".into(),
            Resolve::Conf(_) => "resolv.conf".into(),
        },
        dns: None,
        attempts: Vec::new(),
        outcome: TcpOutcome::TimedOut,
        elapsed_ms: 0,
    };
    let addresses = match resolve_host(host, port, &resolve, deadline).await {
        Ok((addrs, dns)) => {
            result.dns = dns;
            addrs
        }
        Err((outcome, dns)) => {
            result.dns = dns;
            result.outcome = outcome;
            result.elapsed_ms = millis(started.elapsed());
            return result;
        }
    };
    for address in addresses {
        let t0 = Instant::now();
        let outcome = match tokio::time::timeout_at(
            deadline,
            tokio::net::TcpStream::connect(address),
        )
        .await
        {
            Ok(Ok(_stream)) => TcpOutcome::Connected { address },
            Ok(Err(e)) => classify(&e),
            Err(_) => TcpOutcome::TimedOut,
        };
        result.attempts.push(TcpAttempt {
            address,
            outcome: outcome.clone(),
            elapsed_ms: millis(t0.elapsed()),
        });
        let done = outcome.is_connected() || outcome == TcpOutcome::TimedOut;
        result.outcome = outcome;
        if done {
            // Connected, or the time is up for every address after this one too.
            break;
        }
    }
    result.elapsed_ms = millis(started.elapsed());
    result
}

type Resolved = (Vec<SocketAddr>, Option<DnsResult>);
type NotResolved = (TcpOutcome, Option<DnsResult>);

async fn resolve_host(
    host: &str,
    port: u16,
    resolve: &Resolve,
    deadline: Instant,
) -> Result<Resolved, NotResolved> {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = bare.parse::<IpAddr>() {
        return Ok((vec![SocketAddr::new(ip, port)], None));
    }
    match resolve {
        Resolve::Conf(conf) => {
            let left = deadline.saturating_duration_since(Instant::now());
            let r = dns::resolve(host, conf, left).await;
            if r.outcome == DnsOutcome::Resolved {
                let addrs = r
                    .addresses
                    .iter()
                    .map(|ip| SocketAddr::new(*ip, port))
                    .collect();
                Ok((addrs, Some(r)))
            } else {
                Err((
                    TcpOutcome::NameNotResolved {
                        dns: r.outcome.clone(),
                    },
                    Some(r),
                ))
            }
        }
        Resolve::System => {
            match tokio::time::timeout_at(deadline, tokio::net::lookup_host((host, port))).await {
                Ok(Ok(addrs)) => {
                    let addrs: Vec<SocketAddr> = addrs.collect();
                    if addrs.is_empty() {
                        Err((
                            TcpOutcome::NameNotResolved {
                                dns: DnsOutcome::NxDomain,
                            },
                            None,
                        ))
                    } else {
                        Ok((addrs, None))
                    }
                }
                // getaddrinfo's errors reach us as text only; NXDOMAIN reads "Name or service
                // not known", a dead resolver "Temporary failure in name resolution".
                Ok(Err(e)) => {
                    let text = e.to_string();
                    let dns = if text.contains("not known") || text.contains("No address") {
                        DnsOutcome::NxDomain
                    } else if text.contains("Temporary failure") {
                        DnsOutcome::ServFail
                    } else {
                        DnsOutcome::Error {
                            reason: crate::redact::sanitize(&text),
                        }
                    };
                    Err((TcpOutcome::NameNotResolved { dns }, None))
                }
                Err(_) => Err((
                    TcpOutcome::NameNotResolved {
                        dns: DnsOutcome::Timeout,
                    },
                    None,
                )),
            }
        }
    }
}

fn classify(e: &io::Error) -> TcpOutcome {
    match e.kind() {
        io::ErrorKind::ConnectionRefused => TcpOutcome::Refused,
        io::ErrorKind::TimedOut => TcpOutcome::TimedOut,
        io::ErrorKind::HostUnreachable | io::ErrorKind::NetworkUnreachable => {
            TcpOutcome::Unreachable
        }
        _ => TcpOutcome::Error {
            reason: e.to_string(),
        },
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn io_errors_map_to_outcomes() {
        let e = |k| io::Error::from(k);
        assert_eq!(
            classify(&e(io::ErrorKind::ConnectionRefused)),
            TcpOutcome::Refused
        );
        assert_eq!(classify(&e(io::ErrorKind::TimedOut)), TcpOutcome::TimedOut);
        assert_eq!(
            classify(&e(io::ErrorKind::HostUnreachable)),
            TcpOutcome::Unreachable
        );
        assert_eq!(
            classify(&e(io::ErrorKind::NetworkUnreachable)),
            TcpOutcome::Unreachable
        );
        assert!(matches!(
            classify(&e(io::ErrorKind::PermissionDenied)),
            TcpOutcome::Error { .. }
        ));
    }

    #[tokio::test]
    async fn connects_to_a_real_listener() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let r = connect(
            "127.0.0.1",
            addr.port(),
            Resolve::System,
            Duration::from_secs(2),
        )
        .await;
        assert_eq!(r.outcome, TcpOutcome::Connected { address: addr });
        assert_eq!(r.attempts.len(), 1);
    }

    #[tokio::test]
    async fn a_closed_port_is_refused() {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
            l.local_addr().expect("addr").port()
        };
        let r = connect("127.0.0.1", port, Resolve::System, Duration::from_secs(2)).await;
        assert_eq!(r.outcome, TcpOutcome::Refused, "{r:?}");
    }
}
