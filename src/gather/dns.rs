//! Name resolution with pod semantics: the names of [`crate::domain::resolv::candidates`], in
//! glibc's order, each asked of the resolv.conf's nameservers (UDP, TCP when a UDP answer is
//! truncated) for A and AAAA, every attempt recorded as evidence.
//!
//! hickory-resolver does the wire work only: it gets one absolute name at a time (ndots 0, no
//! search list, no hosts file, no cache), so the order of attempts is ours and visible.
//!
//! Each name is asked of the nameservers as glibc's `res_send` does: `attempts` rounds over them
//! in file order, `timeout` per query; an answer (addresses, NXDOMAIN, NODATA) ends the round,
//! a timeout, SERVFAIL or REFUSED moves on to the next server.
//!
//! What continues the search follows glibc's `res_search` (resolv/res_query.c):
//! - NXDOMAIN and NODATA (NOERROR, no address): next name;
//! - SERVFAIL: next name too (glibc's `got_servfail`); if no later name resolves the overall
//!   outcome is `servFail` (glibc reports TRY_AGAIN, "temporary failure in name resolution");
//! - a timeout, REFUSED, FORMERR or any other error ends the search with that outcome (glibc's
//!   `done`): getaddrinfo gives up there too, which is why one dead nameserver fails every name.
//!
//! Unlike glibc, a nameserver port where nothing listens reads as a timeout, not as "connection
//! refused": hickory sends from unconnected UDP sockets, which never see the ICMP error.
//!
//! A name that parses as an IP address is "resolved" without a query. The whole resolution is
//! bounded by the caller's timeout; an attempt cut short by it is recorded as `timeout`.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use hickory_resolver::config::{
    ConnectionConfig, NameServerConfig, ResolveHosts, ResolverConfig, ResolverOpts,
};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::net::{DnsError, NetError};
use hickory_resolver::proto::op::ResponseCode;
use hickory_resolver::proto::rr::{RData, RecordType};
use hickory_resolver::{Resolver, TokioResolver};
use tokio::time::Instant;

use crate::domain::resolv::{self, ResolvConf};
pub use crate::facts::network::{DnsAttempt, DnsOutcome, DnsResult};

/// Resolves `name` with the resolv.conf's search list, ndots and nameservers, recording every
/// attempt. Never errors and never takes (much) longer than `timeout`.
pub async fn resolve(name: &str, conf: &ResolvConf, timeout: Duration) -> DnsResult {
    let started = Instant::now();
    let deadline = started + timeout;
    let mut result = DnsResult {
        query: name.to_owned(),
        nameservers: conf.nameservers.clone(),
        attempts: Vec::new(),
        answered_by: None,
        addresses: Vec::new(),
        outcome: DnsOutcome::NxDomain,
        elapsed_ms: 0,
    };
    if let Ok(ip) = name
        .trim()
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse()
    {
        result.addresses = vec![ip];
        result.outcome = DnsOutcome::Resolved;
        return result;
    }
    let names = resolv::candidates(name, conf);
    if names.is_empty() {
        result.outcome = DnsOutcome::Error {
            reason: "empty name".into(),
        };
        return result;
    }
    let mut resolvers = Vec::with_capacity(conf.nameservers.len());
    for ns in &conf.nameservers {
        match build_resolver(*ns, conf.timeout.min(timeout)) {
            Ok(r) => resolvers.push((*ns, r)),
            Err(reason) => {
                result.outcome = DnsOutcome::Error { reason };
                return result;
            }
        }
    }
    let mut servfail = false;
    for candidate in names {
        let t0 = Instant::now();
        let asked =
            tokio::time::timeout_at(deadline, ask_servers(&resolvers, &candidate, conf.attempts))
                .await;
        let attempt = match asked {
            Ok(a) => a,
            Err(_) => Answer {
                outcome: DnsOutcome::Timeout,
                rcode: None,
                addresses: Vec::new(),
                nameserver: None,
            },
        };
        result.attempts.push(DnsAttempt {
            name: candidate.clone(),
            outcome: attempt.outcome.clone(),
            rcode: attempt.rcode,
            nameserver: attempt.nameserver,
            elapsed_ms: millis(t0.elapsed()),
        });
        if attempt.outcome == DnsOutcome::Resolved {
            result.answered_by = Some(candidate);
            result.addresses = attempt.addresses;
            result.outcome = DnsOutcome::Resolved;
            break;
        }
        servfail |= attempt.outcome == DnsOutcome::ServFail;
        if !attempt.outcome.continues_search() {
            result.outcome = attempt.outcome;
            break;
        }
        result.outcome = if servfail {
            DnsOutcome::ServFail
        } else {
            DnsOutcome::NxDomain
        };
    }
    result.elapsed_ms = millis(started.elapsed());
    result
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// glibc's `res_send` loop: `attempts` rounds over the nameservers in order, each query
/// waiting `timeout` (resolv.conf `options timeout`). NXDOMAIN, NODATA and addresses are
/// definitive; a timeout, SERVFAIL, REFUSED or a transport error moves on to the next server, and
/// the last answer that is not a timeout is what remains when every server failed.
async fn ask_servers(resolvers: &[(SocketAddr, TokioResolver)], name: &str, rounds: u8) -> Answer {
    let mut last: Option<Answer> = None;
    for _ in 0..rounds.max(1) {
        for (ns, resolver) in resolvers {
            let mut answer = query(resolver, name).await;
            answer.nameserver = Some(*ns);
            match answer.outcome {
                DnsOutcome::Resolved | DnsOutcome::NxDomain => return answer,
                DnsOutcome::Timeout => {
                    if last.is_none() {
                        last = Some(answer);
                    }
                }
                DnsOutcome::ServFail | DnsOutcome::Error { .. } => last = Some(answer),
            }
        }
    }
    last.unwrap_or(Answer {
        outcome: DnsOutcome::Error {
            reason: "no nameserver to ask".into(),
        },
        rcode: None,
        addresses: Vec::new(),
        nameserver: None,
    })
}

/// A resolver for one nameserver that asks exactly the names it is given, once (the rounds and
/// the server order are [`ask_servers`]'s).
fn build_resolver(ns: SocketAddr, timeout: Duration) -> Result<TokioResolver, String> {
    let connections = [ConnectionConfig::udp(), ConnectionConfig::tcp()]
        .into_iter()
        .map(|mut c| {
            c.port = ns.port();
            c
        })
        .collect();
    let servers = vec![NameServerConfig::new(ns.ip(), true, connections)];
    let config = ResolverConfig::from_parts(None, Vec::new(), servers);
    let mut opts = ResolverOpts::default();
    opts.ndots = 0;
    opts.timeout = timeout;
    opts.attempts = 0;
    opts.cache_size = 0;
    opts.use_hosts_file = ResolveHosts::Never;
    opts.num_concurrent_reqs = 1;
    opts.edns0 = false;
    // A UDP server that never answers must read as a timeout, not as "TCP refused".
    opts.try_tcp_on_error = false;
    Resolver::builder_with_config(config, TokioRuntimeProvider::default())
        .with_options(opts)
        .build()
        .map_err(|e| format!("cannot set up the resolver: {e}"))
}

struct Answer {
    outcome: DnsOutcome,
    rcode: Option<String>,
    addresses: Vec<IpAddr>,
    nameserver: Option<SocketAddr>,
}

/// A and AAAA for one absolute name, asked together (as getaddrinfo does).
async fn query(resolver: &TokioResolver, name: &str) -> Answer {
    let fqdn = format!("{name}.");
    let (a, aaaa) = futures::join!(
        one(resolver, &fqdn, RecordType::A),
        one(resolver, &fqdn, RecordType::AAAA)
    );
    let mut addresses: Vec<IpAddr> = Vec::new();
    for part in [&a, &aaaa] {
        if let One::Addresses(ips) = part {
            addresses.extend(ips);
        }
    }
    if !addresses.is_empty() {
        return Answer {
            outcome: DnsOutcome::Resolved,
            rcode: Some("NOERROR".into()),
            addresses,
            nameserver: None,
        };
    }
    let (outcome, rcode) = match (a, aaaa) {
        (One::Negative(ra), One::Negative(rb)) => {
            // NXDOMAIN when the name does not exist; NOERROR (NODATA) when it does.
            let rcode = if ra == ResponseCode::NXDomain && rb == ResponseCode::NXDomain {
                ra
            } else {
                ResponseCode::NoError
            };
            (DnsOutcome::NxDomain, Some(rcode))
        }
        (One::Failed(outcome, rcode), _) | (_, One::Failed(outcome, rcode)) => (outcome, rcode),
        // An empty answer with no addresses and no error: NODATA.
        _ => (DnsOutcome::NxDomain, Some(ResponseCode::NoError)),
    };
    Answer {
        outcome,
        rcode: rcode.map(|c| rcode_name(c).to_owned()),
        addresses: Vec::new(),
        nameserver: None,
    }
}

enum One {
    Addresses(Vec<IpAddr>),
    /// NXDOMAIN or NODATA, with the response code.
    Negative(ResponseCode),
    Failed(DnsOutcome, Option<ResponseCode>),
}

async fn one(resolver: &TokioResolver, fqdn: &str, rtype: RecordType) -> One {
    match resolver.lookup(fqdn, rtype).await {
        Ok(lookup) => One::Addresses(
            lookup
                .answers()
                .iter()
                .filter_map(|r| match &r.data {
                    RData::A(a) => Some(IpAddr::V4(a.0)),
                    RData::AAAA(a) => Some(IpAddr::V6(a.0)),
                    _ => None,
                })
                .collect(),
        ),
        Err(e) => classify(&e),
    }
}

fn classify(e: &NetError) -> One {
    match e {
        NetError::Dns(DnsError::NoRecordsFound(nr)) => match nr.response_code {
            ResponseCode::NXDomain | ResponseCode::NoError => One::Negative(nr.response_code),
            ResponseCode::ServFail => One::Failed(DnsOutcome::ServFail, Some(nr.response_code)),
            code => One::Failed(
                DnsOutcome::Error {
                    reason: format!("the nameserver answered {}", rcode_name(code)),
                },
                Some(code),
            ),
        },
        NetError::Dns(DnsError::ResponseCode(ResponseCode::ServFail)) => {
            One::Failed(DnsOutcome::ServFail, Some(ResponseCode::ServFail))
        }
        NetError::Dns(DnsError::ResponseCode(code)) => One::Failed(
            DnsOutcome::Error {
                reason: format!("the nameserver answered {}", rcode_name(*code)),
            },
            Some(*code),
        ),
        NetError::Timeout => One::Failed(DnsOutcome::Timeout, None),
        NetError::Io(io) if io.kind() == std::io::ErrorKind::TimedOut => {
            One::Failed(DnsOutcome::Timeout, None)
        }
        NetError::Io(io) if io.kind() == std::io::ErrorKind::ConnectionRefused => One::Failed(
            DnsOutcome::Error {
                reason: "the nameserver's port refused the query (nothing listens there)".into(),
            },
            None,
        ),
        other => {
            let text = other.to_string();
            if text.contains("timed out") {
                One::Failed(DnsOutcome::Timeout, None)
            } else {
                One::Failed(
                    DnsOutcome::Error {
                        reason: crate::redact::sanitize(&text),
                    },
                    None,
                )
            }
        }
    }
}

fn rcode_name(code: ResponseCode) -> &'static str {
    match code {
        ResponseCode::NoError => "NOERROR",
        ResponseCode::FormErr => "FORMERR",
        ResponseCode::ServFail => "SERVFAIL",
        ResponseCode::NXDomain => "NXDOMAIN",
        ResponseCode::NotImp => "NOTIMP",
        ResponseCode::Refused => "REFUSED",
        _ => "other",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_ip_needs_no_query() {
        let conf = ResolvConf::default();
        let r = resolve("10.1.2.3", &conf, Duration::from_millis(50)).await;
        assert_eq!(r.outcome, DnsOutcome::Resolved);
        assert_eq!(r.addresses, vec!["10.1.2.3".parse::<IpAddr>().expect("ip")]);
        assert!(r.attempts.is_empty());
        let r = resolve("[::1]", &conf, Duration::from_millis(50)).await;
        assert_eq!(r.addresses, vec!["::1".parse::<IpAddr>().expect("ip")]);
    }

    #[tokio::test]
    async fn an_empty_name_is_an_error() {
        let r = resolve(" ", &ResolvConf::default(), Duration::from_millis(50)).await;
        assert!(matches!(r.outcome, DnsOutcome::Error { .. }), "{r:?}");
    }

    #[test]
    fn outcomes_serialize_camel_case() {
        let v = serde_json::to_value(DnsOutcome::NxDomain).expect("json");
        assert_eq!(v, serde_json::json!({"kind": "nxDomain"}));
        let v = serde_json::to_value(DnsOutcome::Error { reason: "x".into() }).expect("json");
        assert_eq!(v, serde_json::json!({"kind": "error", "reason": "x"}));
        assert!(DnsOutcome::ServFail.continues_search());
        assert!(!DnsOutcome::Timeout.continues_search());
    }
}
