//! `gather::dns` and `gather::tcp` against a real DNS server (hickory-server, in-process, zone
//! cluster.local) and real sockets: the order of attempts under ndots:5, what ends the search
//! (NXDOMAIN and SERVFAIL go on, a timeout stops), and connected vs refused vs timed out.

mod common;

use std::time::{Duration, Instant};

use common::dns::{TestDns, blackhole_nameserver, pod_resolv_conf};
use elsadoctor::domain::resolv::ResolvConf;
use elsadoctor::gather::dns::{DnsOutcome, DnsResult, resolve};
use elsadoctor::gather::tcp::{Resolve, TcpOutcome, connect};

const T: Duration = Duration::from_secs(3);

fn tried(r: &DnsResult) -> Vec<(&str, &DnsOutcome)> {
    r.attempts
        .iter()
        .map(|a| (a.name.as_str(), &a.outcome))
        .collect()
}

async fn server_and_conf(namespace: &str) -> (TestDns, ResolvConf) {
    let dns = TestDns::start().await;
    let conf = ResolvConf::parse(&dns.resolv_conf(namespace));
    (dns, conf)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_short_name_answers_from_the_pods_namespace_first() {
    let (dns, conf) = server_and_conf("elsa").await;
    dns.add_a("postgres.elsa.svc.cluster.local", "10.96.1.5")
        .await;
    let r = resolve("postgres", &conf, T).await;
    assert_eq!(r.outcome, DnsOutcome::Resolved, "{r:#?}");
    assert_eq!(
        r.answered_by.as_deref(),
        Some("postgres.elsa.svc.cluster.local")
    );
    assert_eq!(
        r.addresses,
        vec!["10.96.1.5".parse::<std::net::IpAddr>().expect("ip")]
    );
    assert_eq!(r.attempts.len(), 1);
    assert_eq!(r.attempts[0].rcode.as_deref(), Some("NOERROR"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_in_another_namespace_lists_the_names_tried_before() {
    let (dns, conf) = server_and_conf("elsa").await;
    dns.add_a("postgres.db.svc.cluster.local", "10.96.2.7")
        .await;
    dns.add_a("postgres.db.svc.cluster.local", "fd00::7").await;
    let r = resolve("postgres.db", &conf, T).await;
    assert_eq!(
        tried(&r),
        [
            ("postgres.db.elsa.svc.cluster.local", &DnsOutcome::NxDomain),
            ("postgres.db.svc.cluster.local", &DnsOutcome::Resolved),
        ]
    );
    assert_eq!(r.attempts[0].rcode.as_deref(), Some("NXDOMAIN"));
    assert_eq!(r.addresses.len(), 2, "A and AAAA: {r:?}");

    // The short name from namespace elsa does not reach it: every candidate is NXDOMAIN.
    let r = resolve("postgres", &conf, T).await;
    assert_eq!(r.outcome, DnsOutcome::NxDomain, "{r:#?}");
    assert_eq!(
        r.attempts
            .iter()
            .map(|a| a.name.as_str())
            .collect::<Vec<_>>(),
        [
            "postgres.elsa.svc.cluster.local",
            "postgres.svc.cluster.local",
            "postgres.cluster.local",
            "postgres",
        ]
    );
    assert!(r.attempts.iter().all(|a| a.outcome == DnsOutcome::NxDomain));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trailing_dot_asks_only_that_name() {
    let (dns, conf) = server_and_conf("elsa").await;
    dns.add_a("postgres.elsa.svc.cluster.local", "10.96.1.5")
        .await;
    let r = resolve("postgres.elsa.svc.cluster.local.", &conf, T).await;
    assert_eq!(
        tried(&r),
        [("postgres.elsa.svc.cluster.local", &DnsOutcome::Resolved)]
    );
    let r = resolve("postgres.other.svc.cluster.local.", &conf, T).await;
    assert_eq!(
        tried(&r),
        [("postgres.other.svc.cluster.local", &DnsOutcome::NxDomain)]
    );
    assert_eq!(r.outcome, DnsOutcome::NxDomain);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_name_without_an_address_is_nodata() {
    let (dns, conf) = server_and_conf("elsa").await;
    // svc.cluster.local exists (it has children) but holds no address.
    dns.add_a("postgres.elsa.svc.cluster.local", "10.96.1.5")
        .await;
    let r = resolve("elsa.svc.cluster.local.", &conf, T).await;
    assert_eq!(r.outcome, DnsOutcome::NxDomain, "{r:#?}");
    assert_eq!(r.attempts[0].rcode.as_deref(), Some("NOERROR"), "NODATA");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn servfail_goes_on_to_the_next_name_like_glibc() {
    let (dns, conf) = server_and_conf("elsa").await;
    dns.servfail_zone("elsa.svc.cluster.local");
    dns.add_a("postgres.svc.cluster.local", "10.96.3.3").await;
    let r = resolve("postgres", &conf, T).await;
    assert_eq!(
        tried(&r),
        [
            ("postgres.elsa.svc.cluster.local", &DnsOutcome::ServFail),
            ("postgres.svc.cluster.local", &DnsOutcome::Resolved),
        ]
    );
    assert_eq!(r.attempts[0].rcode.as_deref(), Some("SERVFAIL"));

    // When nothing resolves, SERVFAIL is the overall outcome, not NXDOMAIN.
    dns.servfail_zone("cluster.local");
    let r = resolve("nothere", &conf, T).await;
    assert_eq!(r.outcome, DnsOutcome::ServFail, "{r:#?}");
    assert_eq!(r.attempts.len(), 4);
    assert_eq!(r.attempts[3].outcome, DnsOutcome::NxDomain, "as-is: {r:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_too_big_for_udp_comes_over_tcp() {
    let (dns, conf) = server_and_conf("elsa").await;
    // 60 A records: about 1 KB, over the 512 bytes of a UDP answer without EDNS, so the server
    // truncates and the query is repeated over TCP.
    for i in 1..=60 {
        dns.add_a(
            "postgres-pool.elsa.svc.cluster.local",
            &format!("10.0.1.{i}"),
        )
        .await;
    }
    let r = resolve("postgres-pool", &conf, T).await;
    assert_eq!(r.outcome, DnsOutcome::Resolved, "{r:#?}");
    assert_eq!(r.addresses.len(), 60);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_nameserver_times_out_and_ends_the_search() {
    let (addr, _socket) = blackhole_nameserver();
    let conf = ResolvConf::parse(&pod_resolv_conf(&[addr], "elsa"));
    let t0 = Instant::now();
    let r = resolve("postgres", &conf, Duration::from_millis(1500)).await;
    let took = t0.elapsed();
    assert_eq!(r.outcome, DnsOutcome::Timeout, "{r:#?}");
    assert_eq!(
        tried(&r),
        [("postgres.elsa.svc.cluster.local", &DnsOutcome::Timeout)],
        "glibc stops at a timeout"
    );
    assert!(took < Duration::from_millis(2500), "took {took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_second_nameserver_answers_when_the_first_is_silent() {
    let (dead, _socket) = blackhole_nameserver();
    let dns = TestDns::start().await;
    dns.add_a("postgres.elsa.svc.cluster.local", "10.96.1.5")
        .await;
    // timeout:1 per query and nameserver, as glibc would wait.
    let conf = ResolvConf::parse(&pod_resolv_conf(&[dead, dns.addr], "elsa"));
    let r = resolve("postgres", &conf, Duration::from_secs(4)).await;
    assert_eq!(r.outcome, DnsOutcome::Resolved, "{r:#?}");
    assert_eq!(r.attempts[0].nameserver, Some(dns.addr));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_resolves_with_the_pods_rules_then_connects() {
    let (dns, conf) = server_and_conf("elsa").await;
    dns.add_a("postgres.elsa.svc.cluster.local", "127.0.0.1")
        .await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let r = connect("postgres", port, Resolve::Conf(conf.clone()), T).await;
    assert_eq!(
        r.outcome,
        TcpOutcome::Connected {
            address: format!("127.0.0.1:{port}").parse().expect("addr")
        },
        "{r:#?}"
    );
    let dns_evidence = r.dns.expect("resolution recorded");
    assert_eq!(
        dns_evidence.answered_by.as_deref(),
        Some("postgres.elsa.svc.cluster.local")
    );

    drop(listener);
    let r = connect("postgres", port, Resolve::Conf(conf.clone()), T).await;
    assert_eq!(r.outcome, TcpOutcome::Refused, "{r:#?}");

    let r = connect("nothere", port, Resolve::Conf(conf), T).await;
    assert_eq!(
        r.outcome,
        TcpOutcome::NameNotResolved {
            dns: DnsOutcome::NxDomain
        }
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_to_a_blackhole_times_out_within_the_timeout() {
    let (addr, _guard) = common::pg::blackhole();
    let t0 = Instant::now();
    let r = connect(
        &addr.ip().to_string(),
        addr.port(),
        Resolve::System,
        Duration::from_millis(800),
    )
    .await;
    let took = t0.elapsed();
    assert_eq!(r.outcome, TcpOutcome::TimedOut, "{r:#?}");
    assert!(
        took >= Duration::from_millis(700) && took < Duration::from_millis(1800),
        "took {took:?}"
    );
}
