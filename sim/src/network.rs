//! The simulated Service network and cluster DNS (`clusterNetwork: true` in `sim.yaml`), for the
//! pods the kubelet stand-in runs (elsadoctor's probe pod).
//!
//! - Services have loopback ClusterIPs (127.96.x.y, assigned by the store). For each
//!   ClusterIP:port whose Service has a ready endpoint, a real TCP listener on that address
//!   tunnels every connection to the endpoint pod's port, i.e. to where `pods/portforward` to
//!   that pod and port leads (round robin over ready endpoints, as kube-proxy spreads them).
//!   A Service port without a ready endpoint has no listener: connecting is refused, as
//!   kube-proxy's REJECT rule makes it. Tunnelled connections come from 127.244.0.1, standing for
//!   the client pod's address (kube-proxy does not masquerade in-cluster traffic).
//! - A DNS server on 127.0.0.1 (UDP, and TCP on the same port) answers, authoritatively for
//!   `cluster.local`, `<service>.<namespace>.svc.cluster.local` with the ClusterIP (A; AAAA gets
//!   NOERROR with no answer, the Services being IPv4 single-stack), and NXDOMAIN for any other
//!   name, as CoreDNS would for names that exist nowhere (the simulation has no upstream).
//! - [`Network::resolv_conf`] writes the resolv.conf the kubelet gives a pod in a namespace
//!   (ClusterFirst: the namespace's search list, `ndots:5`), pointing at that server with
//!   elsadoctor's `nameserver IP:PORT` extension, since the server is not on port 53.
//!
//! The listeners bind 127.96.x.y: every 127/8 address is loopback on Linux; where one cannot be
//! bound (macOS has only 127.0.0.1 by default, or the port is taken) that Service port is left
//! without a listener and a warning is logged.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use hickory_proto::op::{Message, Metadata, ResponseCode};
use hickory_proto::rr::rdata::{A, SOA};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};

use super::resources;
use super::store::{Store, str_of};

/// The cluster domain.
pub const ZONE: &str = "cluster.local";

/// The running network: the DNS server and where the resolv.conf files are written.
#[derive(Debug)]
pub struct Network {
    dns: SocketAddr,
    dir: tempfile::TempDir,
    /// `ClusterIP:port` → the pod targets it tunnels to (for tests and the log).
    routes: Vec<(SocketAddr, Vec<String>)>,
}

impl Network {
    /// The DNS server's address.
    pub fn dns(&self) -> SocketAddr {
        self.dns
    }

    /// The listening ClusterIP:port addresses and their endpoints' targets.
    pub fn routes(&self) -> &[(SocketAddr, Vec<String>)] {
        &self.routes
    }

    /// The resolv.conf of a pod in `namespace`, written once.
    pub fn resolv_conf(&self, namespace: &str) -> std::io::Result<PathBuf> {
        let safe: String = namespace
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
            .collect();
        let path = self.dir.path().join(format!("{safe}.resolv.conf"));
        if !path.exists() {
            std::fs::write(&path, pod_resolv_conf(self.dns, namespace))?;
        }
        Ok(path)
    }
}

/// The kubelet's resolv.conf (ClusterFirst) for a pod in `namespace`.
pub fn pod_resolv_conf(nameserver: SocketAddr, namespace: &str) -> String {
    format!(
        "search {namespace}.svc.{ZONE} svc.{ZONE} {ZONE}\nnameserver {nameserver}\noptions ndots:5\n"
    )
}

/// Starts the DNS server and the ClusterIP listeners. `port_forwards` are the pod port targets
/// (namespace, pod, port, `host:port`).
///
/// Two simulations at once (two demos, parallel tests) must not share ClusterIP:port: the
/// store's 127.96.a.b addresses move to 127.(96+k).a.b, with the first `k` whose listeners can
/// all be bound, and the Services are updated to match before anyone reads them.
pub async fn start(
    store: &mut Store,
    port_forwards: &[(String, String, u16, String)],
    closing: tokio::sync::watch::Receiver<bool>,
) -> std::io::Result<Network> {
    let (Some(services), Some(slices)) = (
        resources::find("", "v1", "services"),
        resources::find("discovery.k8s.io", "v1", "endpointslices"),
    ) else {
        return Err(std::io::Error::other("no Service resource"));
    };
    let slice_list: Vec<Value> = store
        .list(slices, None)
        .map(|(_, e)| e.value(slices))
        .collect();
    let service_list: Vec<Value> = store
        .list(services, None)
        .map(|(_, e)| e.value(services))
        .collect();
    let mut planned: Vec<Planned> = Vec::new();
    for svc in service_list {
        let ns = str_of(&svc, &["metadata", "namespace"]).unwrap_or_default();
        let name = str_of(&svc, &["metadata", "name"]).unwrap_or_default();
        let Some(ip) =
            str_of(&svc, &["spec", "clusterIP"]).and_then(|s| s.parse::<Ipv4Addr>().ok())
        else {
            continue;
        };
        let mut ports = Vec::new();
        for port in svc
            .pointer("/spec/ports")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let Some(number) = port
                .get("port")
                .and_then(Value::as_u64)
                .and_then(|p| u16::try_from(p).ok())
            else {
                continue;
            };
            let port_name = port.get("name").and_then(Value::as_str).unwrap_or("");
            let targets = ready_targets(&slice_list, ns, name, port_name, port_forwards);
            if ip.is_loopback() && !targets.is_empty() {
                ports.push((number, targets));
            }
        }
        planned.push((svc.clone(), ip, ports));
    }
    let moved = |ip: Ipv4Addr, k: u8| {
        let [a, b, c, d] = ip.octets();
        if a == 127 && b == 96 {
            Ipv4Addr::new(127, 96 + k, c, d)
        } else {
            ip
        }
    };
    let seed = u8::try_from(std::process::id() % 150).unwrap_or(0);
    let mut bound: Vec<(SocketAddr, TcpListener, Vec<String>)> = Vec::new();
    let mut shift = 0u8;
    'attempts: for attempt in 0..150u8 {
        let k = (seed + attempt) % 150;
        bound.clear();
        for (svc, ip, ports) in &planned {
            for (port, targets) in ports {
                let addr = SocketAddr::new(IpAddr::V4(moved(*ip, k)), *port);
                match TcpListener::bind(addr).await {
                    Ok(l) => bound.push((addr, l, targets.clone())),
                    Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => continue 'attempts,
                    Err(e) => tracing::warn!(
                        "simulated Service {}: cannot listen on {addr}: {e}; connections to it will be refused",
                        str_of(svc, &["metadata", "name"]).unwrap_or_default()
                    ),
                }
            }
        }
        shift = k;
        break;
    }
    let mut records: HashMap<String, Ipv4Addr> = HashMap::new();
    for (mut svc, ip, _) in planned {
        let ip = moved(ip, shift);
        let ns = str_of(&svc, &["metadata", "namespace"])
            .unwrap_or_default()
            .to_string();
        let name = str_of(&svc, &["metadata", "name"])
            .unwrap_or_default()
            .to_string();
        records.insert(format!("{name}.{ns}.svc.{ZONE}."), ip);
        if shift != 0
            && ip.is_loopback()
            && let Some(spec) = svc.get_mut("spec").and_then(Value::as_object_mut)
        {
            spec.insert("clusterIP".into(), Value::String(ip.to_string()));
            spec.insert(
                "clusterIPs".into(),
                Value::Array(vec![Value::String(ip.to_string())]),
            );
            if let Some(m) = svc.get_mut("metadata").and_then(Value::as_object_mut) {
                m.remove("resourceVersion");
            }
            store.upsert(services, svc);
        }
    }
    let mut routes = Vec::new();
    for (addr, listener, targets) in bound {
        routes.push((addr, targets.clone()));
        tokio::spawn(forward(listener, targets, closing.clone()));
    }
    let (udp, tcp, dns) = bind_udp_and_tcp_on_one_port().await?;
    let records = Arc::new(records);
    tokio::spawn(serve_udp(udp, records.clone(), closing.clone()));
    tokio::spawn(serve_tcp(tcp, records, closing));
    Ok(Network {
        dns,
        dir: tempfile::tempdir()?,
        routes,
    })
}

/// A Service to route: its object, its ClusterIP, and each port with its ready targets.
type Planned = (Value, Ipv4Addr, Vec<(u16, Vec<String>)>);

/// A UDP socket and a TCP listener on one free port, as a nameserver needs. The kernel's
/// choice for UDP may be taken on TCP by another process; another port is tried then. The
/// tests' nameserver binds the same way.
pub async fn bind_udp_and_tcp_on_one_port() -> std::io::Result<(UdpSocket, TcpListener, SocketAddr)>
{
    let mut tries = 0;
    loop {
        let udp = UdpSocket::bind(("127.0.0.1", 0)).await?;
        let addr = udp.local_addr()?;
        match TcpListener::bind(addr).await {
            Ok(tcp) => return Ok((udp, tcp, addr)),
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse && tries < 50 => tries += 1,
            Err(e) => return Err(e),
        }
    }
}

/// The `host:port` targets of the ready endpoints of Service `ns/name`'s port `port_name`.
fn ready_targets(
    slices: &[Value],
    ns: &str,
    name: &str,
    port_name: &str,
    port_forwards: &[(String, String, u16, String)],
) -> Vec<String> {
    let mut targets = Vec::new();
    for slice in slices {
        if str_of(slice, &["metadata", "namespace"]) != Some(ns)
            || str_of(slice, &["metadata", "labels", "kubernetes.io/service-name"]) != Some(name)
        {
            continue;
        }
        let ports = slice
            .get("ports")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let Some(pod_port) = ports
            .iter()
            .find(|p| p.get("name").and_then(Value::as_str).unwrap_or("") == port_name)
            .and_then(|p| p.get("port").and_then(Value::as_u64))
            .and_then(|p| u16::try_from(p).ok())
        else {
            continue;
        };
        for ep in slice
            .get("endpoints")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if ep.pointer("/conditions/ready").and_then(Value::as_bool) != Some(true) {
                continue;
            }
            let Some(pod) = str_of(ep, &["targetRef", "name"]) else {
                continue;
            };
            if let Some((_, _, _, to)) = port_forwards
                .iter()
                .find(|(n, p, port, _)| n == ns && p == pod && *port == pod_port)
            {
                targets.push(to.clone());
            }
        }
    }
    targets
}

/// Tunnels each accepted connection to the next target.
async fn forward(
    listener: TcpListener,
    targets: Vec<String>,
    mut closing: tokio::sync::watch::Receiver<bool>,
) {
    let next = AtomicUsize::new(0);
    loop {
        let accepted = tokio::select! {
            _ = closing.wait_for(|c| *c) => return,
            a = listener.accept() => a,
        };
        let Ok((mut inbound, _)) = accepted else {
            continue;
        };
        let to = targets[next.fetch_add(1, Ordering::Relaxed) % targets.len()].clone();
        let mut closing = closing.clone();
        tokio::spawn(async move {
            let Ok(mut outbound) = connect_from_pod_network(&to).await else {
                return;
            };
            tokio::select! {
                _ = closing.wait_for(|c| *c) => {}
                _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
            }
        });
    }
}

/// Where tunnelled connections come from: kube-proxy does not masquerade in-cluster traffic,
/// so the server sees a pod address, not the node's loopback. A loopback address outside
/// 127.0.0.1 stands for it (plain loopback where it cannot be bound).
const POD_NETWORK_SOURCE: Ipv4Addr = Ipv4Addr::new(127, 244, 0, 1);

async fn connect_from_pod_network(to: &str) -> std::io::Result<TcpStream> {
    let addr: SocketAddr = match tokio::net::lookup_host(to).await?.next() {
        Some(a) => a,
        None => return Err(std::io::Error::other("no address")),
    };
    if addr.is_ipv4() {
        let socket = tokio::net::TcpSocket::new_v4()?;
        if socket
            .bind(SocketAddr::new(IpAddr::V4(POD_NETWORK_SOURCE), 0))
            .is_ok()
        {
            return socket.connect(addr).await;
        }
    }
    TcpStream::connect(addr).await
}

fn soa() -> Option<Record> {
    let zone = Name::from_ascii(format!("{ZONE}.")).ok()?;
    let soa = SOA::new(
        Name::from_ascii("ns.dns.cluster.local.").ok()?,
        Name::from_ascii("hostmaster.cluster.local.").ok()?,
        1,
        7200,
        1800,
        86400,
        30,
    );
    Some(Record::from_rdata(zone, 30, RData::SOA(soa)))
}

/// The answer to one query message (`None`: not a query we can parse; no answer).
fn respond(packet: &[u8], records: &HashMap<String, Ipv4Addr>) -> Option<Vec<u8>> {
    let request = Message::from_vec(packet).ok()?;
    let mut response = Message::response(request.metadata.id, request.metadata.op_code);
    response.metadata = Metadata::response_from_request(&request.metadata);
    response.metadata.authoritative = true;
    response.metadata.recursion_available = true;
    let Some(query) = request.queries.first().cloned() else {
        response.metadata.response_code = ResponseCode::FormErr;
        return response.to_vec().ok();
    };
    let name = query.name().to_lowercase().to_ascii();
    let name = if name.ends_with('.') {
        name
    } else {
        format!("{name}.")
    };
    response.add_query(query.clone());
    match records.get(&name) {
        Some(ip) if query.query_type() == RecordType::A => {
            response.add_answer(Record::from_rdata(
                query.name().clone(),
                30,
                RData::A(A(*ip)),
            ));
        }
        // The name exists; it has no record of that type (NODATA).
        Some(_) => {
            response.add_authorities(soa());
        }
        None => {
            response.metadata.response_code = ResponseCode::NXDomain;
            response.add_authorities(soa());
        }
    }
    response.to_vec().ok()
}

async fn serve_udp(
    socket: UdpSocket,
    records: Arc<HashMap<String, Ipv4Addr>>,
    mut closing: tokio::sync::watch::Receiver<bool>,
) {
    let mut buf = vec![0u8; 4096];
    loop {
        let received = tokio::select! {
            _ = closing.wait_for(|c| *c) => return,
            r = socket.recv_from(&mut buf) => r,
        };
        let Ok((n, peer)) = received else { continue };
        if let Some(answer) = respond(&buf[..n], &records) {
            let _ = socket.send_to(&answer, peer).await;
        }
    }
}

async fn serve_tcp(
    listener: TcpListener,
    records: Arc<HashMap<String, Ipv4Addr>>,
    mut closing: tokio::sync::watch::Receiver<bool>,
) {
    loop {
        let accepted = tokio::select! {
            _ = closing.wait_for(|c| *c) => return,
            a = listener.accept() => a,
        };
        let Ok((mut stream, _)) = accepted else {
            continue;
        };
        let records = records.clone();
        tokio::spawn(async move {
            loop {
                let Ok(len) = stream.read_u16().await else {
                    return;
                };
                let mut packet = vec![0u8; usize::from(len)];
                if stream.read_exact(&mut packet).await.is_err() {
                    return;
                }
                let Some(answer) = respond(&packet, &records) else {
                    return;
                };
                let Ok(len) = u16::try_from(answer.len()) else {
                    return;
                };
                if stream.write_all(&len.to_be_bytes()).await.is_err()
                    || stream.write_all(&answer).await.is_err()
                {
                    return;
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ask(name: &str, ty: RecordType, records: &HashMap<String, Ipv4Addr>) -> Message {
        let mut q = Message::query();
        q.add_query(hickory_proto::op::Query::query(
            Name::from_ascii(name).unwrap_or_else(|_| Name::root()),
            ty,
        ));
        let bytes = q.to_vec().unwrap_or_default();
        let answer = respond(&bytes, records).unwrap_or_default();
        Message::from_vec(&answer).unwrap_or_else(|_| Message::query())
    }

    #[test]
    fn services_resolve_and_other_names_do_not() {
        let mut records = HashMap::new();
        records.insert(
            "postgres.elsa.svc.cluster.local.".to_string(),
            Ipv4Addr::new(127, 96, 0, 11),
        );
        let a = ask("Postgres.elsa.svc.cluster.local.", RecordType::A, &records);
        assert_eq!(a.metadata.response_code, ResponseCode::NoError);
        assert_eq!(a.answers.len(), 1);
        let aaaa = ask(
            "postgres.elsa.svc.cluster.local.",
            RecordType::AAAA,
            &records,
        );
        assert_eq!(aaaa.metadata.response_code, ResponseCode::NoError);
        assert!(aaaa.answers.is_empty());
        let none = ask("postgres.svc.cluster.local.", RecordType::A, &records);
        assert_eq!(none.metadata.response_code, ResponseCode::NXDomain);
    }
}
