//! A real DNS server for the tests, in-process: hickory-server's authoritative catalogue for the
//! zone `cluster.local` on 127.0.0.1 (UDP and TCP on the same free port), records added with
//! [`TestDns::add_a`]. Names under a zone given to [`TestDns::servfail_zone`] get SERVFAIL, as
//! from a nameserver whose upstream is broken. [`blackhole_nameserver`] is a UDP port that takes
//! queries and never answers, for timeouts.
//!
//! A resolv.conf pointing at the server is [`TestDns::resolv_conf`]; it uses elsadoctor's
//! `nameserver IP:PORT` extension, since the server is not on port 53.

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hickory_server::Server;
use hickory_server::net::runtime::{Time, TokioRuntimeProvider};
use hickory_server::proto::op::ResponseCode;
use hickory_server::proto::rr::rdata::{A, AAAA, SOA};
use hickory_server::proto::rr::{LowerName, Name, RData, Record};
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use hickory_server::store::in_memory::InMemoryZoneHandler;
use hickory_server::zone_handler::{AxfrPolicy, Catalog, MessageResponseBuilder, ZoneType};

/// The zone every test server is authoritative for.
pub const ZONE: &str = "cluster.local";

/// A running server. Dropping it stops it.
pub struct TestDns {
    pub addr: SocketAddr,
    zone: Arc<InMemoryZoneHandler>,
    servfail: Arc<Mutex<Vec<LowerName>>>,
    _server: Server<Handler>,
}

struct Handler {
    catalog: Catalog,
    servfail: Arc<Mutex<Vec<LowerName>>>,
}

#[async_trait::async_trait]
impl RequestHandler for Handler {
    async fn handle_request<R: ResponseHandler, T: Time>(
        &self,
        request: &Request,
        mut response_handle: R,
    ) -> ResponseInfo {
        let failing = request.request_info().ok().is_some_and(|info| {
            let name = info.query.name();
            self.servfail
                .lock()
                .expect("servfail lock")
                .iter()
                .any(|zone| zone.zone_of(name))
        });
        if failing {
            let response = MessageResponseBuilder::new(&request.queries, None)
                .error_msg(&request.metadata, ResponseCode::ServFail);
            return response_handle
                .send_response(response)
                .await
                .expect("send SERVFAIL");
        }
        self.catalog
            .handle_request::<R, T>(request, response_handle)
            .await
    }
}

fn name(s: &str) -> Name {
    let absolute = if s.ends_with('.') {
        s.to_owned()
    } else {
        format!("{s}.")
    };
    Name::from_ascii(absolute).expect("valid DNS name")
}

impl TestDns {
    /// Starts a server on a free port of 127.0.0.1. Call from inside a tokio runtime.
    pub async fn start() -> Self {
        let origin = name(ZONE);
        let zone = InMemoryZoneHandler::<TokioRuntimeProvider>::empty(
            origin.clone(),
            ZoneType::Primary,
            AxfrPolicy::Deny,
        );
        let soa = SOA::new(
            name("ns.dns.cluster.local"),
            name("hostmaster.cluster.local"),
            1,
            7200,
            1800,
            86400,
            30,
        );
        assert!(
            zone.upsert(Record::from_rdata(origin.clone(), 30, RData::SOA(soa)), 1)
                .await,
            "SOA inserted"
        );
        let zone = Arc::new(zone);
        // Names outside cluster.local get NXDOMAIN from an empty root zone, as CoreDNS's
        // upstream would answer for a name that does not exist (a catalogue without it
        // answers REFUSED).
        let root = InMemoryZoneHandler::<TokioRuntimeProvider>::empty(
            Name::root(),
            ZoneType::Primary,
            AxfrPolicy::Deny,
        );
        let root_soa = SOA::new(
            name("a.root-servers.net"),
            name("nstld.example"),
            1,
            1800,
            900,
            604800,
            86400,
        );
        assert!(
            root.upsert(
                Record::from_rdata(Name::root(), 30, RData::SOA(root_soa)),
                1
            )
            .await,
            "root SOA inserted"
        );
        let mut catalog = Catalog::new();
        catalog.upsert(LowerName::new(&origin), vec![zone.clone()]);
        catalog.upsert(LowerName::new(&Name::root()), vec![Arc::new(root)]);
        let servfail = Arc::new(Mutex::new(Vec::new()));
        let handler = Handler {
            catalog,
            servfail: servfail.clone(),
        };
        let (udp, tcp, addr) = elsadoctor_sim::bind_udp_and_tcp_on_one_port()
            .await
            .expect("bind a nameserver port on UDP and TCP");
        let mut server = Server::new(handler);
        server.register_socket(udp);
        server.register_listener(tcp, Duration::from_secs(5), 16);
        Self {
            addr,
            zone,
            servfail,
            _server: server,
        }
    }

    /// Adds an A record (`postgres.elsa.svc.cluster.local` → `ip`).
    pub async fn add_a(&self, host: &str, ip: &str) {
        let ip: IpAddr = ip.parse().expect("ip");
        let rdata = match ip {
            IpAddr::V4(v4) => RData::A(A(v4)),
            IpAddr::V6(v6) => RData::AAAA(AAAA(v6)),
        };
        assert!(
            self.zone
                .upsert(Record::from_rdata(name(host), 30, rdata), 1)
                .await,
            "record for {host} inserted"
        );
    }

    /// Every name at or below `zone` gets SERVFAIL from now on.
    pub fn servfail_zone(&self, zone: &str) {
        self.servfail
            .lock()
            .expect("servfail lock")
            .push(LowerName::new(&name(zone)));
    }

    /// A pod's resolv.conf in `namespace`, pointing at this server.
    pub fn resolv_conf(&self, namespace: &str) -> String {
        pod_resolv_conf(&[self.addr], namespace)
    }
}

/// The kubelet's resolv.conf for a pod in `namespace` (ClusterFirst), with these nameservers.
pub fn pod_resolv_conf(nameservers: &[SocketAddr], namespace: &str) -> String {
    let mut s =
        format!("search {namespace}.svc.{ZONE} svc.{ZONE} {ZONE}\noptions ndots:5 timeout:1\n");
    for ns in nameservers {
        s.push_str(&format!("nameserver {ns}\n"));
    }
    s
}

/// A UDP "nameserver" that receives queries and never answers. Keep the socket alive.
pub fn blackhole_nameserver() -> (SocketAddr, std::net::UdpSocket) {
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind blackhole UDP");
    (socket.local_addr().expect("addr"), socket)
}
