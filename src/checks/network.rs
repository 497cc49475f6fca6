//! Network checks: does the database host name a Service of this cluster with the port and ready
//! endpoints (`network.service`, from the API), does it resolve from where Elsa runs
//! (`network.dns`) and does the port accept a TCP connection from there (`network.tcp`).

use k8s_openapi::api::core::v1::{Service, ServicePort};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::{CheckImpl, Finding, not_observed};
use crate::domain::service_host::{self, DEFAULT_CLUSTER_DOMAIN, Form, Host};
use crate::facts::network::{DnsOutcome, ResolvConfSummary, TcpOutcome};
use crate::facts::{DbService, FactKey, Facts, NetworkObservation, Probe};
use crate::report::Evidence;

pub const SERVICE: CheckImpl = CheckImpl {
    id: "network.service",
    needs: &[
        FactKey::Workloads,
        FactKey::ConfigSources,
        FactKey::Services,
        FactKey::PodFiles,
        FactKey::DbService,
    ],
    causes: &[
        "missing",
        "wrong-namespace",
        "port-missing",
        "no-selector",
        "no-ready-endpoints",
    ],
    run: service,
};

pub const DNS: CheckImpl = CheckImpl {
    id: "network.dns",
    needs: &[
        FactKey::Workloads,
        FactKey::ConfigSources,
        FactKey::Services,
        FactKey::PodFiles,
        FactKey::DbService,
        FactKey::Network,
        FactKey::NetworkPolicies,
    ],
    causes: &[
        "nxdomain",
        "servfail",
        "timeout",
        "probe-pod-refused",
        "probe-pod-unschedulable",
        "probe-pod-not-scheduled",
        "probe-pod-image-pull",
        "probe-pod-config-error",
    ],
    run: dns,
};

pub const TCP: CheckImpl = CheckImpl {
    id: "network.tcp",
    needs: &[
        FactKey::Workloads,
        FactKey::ConfigSources,
        FactKey::Services,
        FactKey::PodFiles,
        FactKey::Network,
        FactKey::NetworkPolicies,
    ],
    causes: &[
        "refused",
        "timeout",
        "unreachable",
        "probe-pod-refused",
        "probe-pod-unschedulable",
        "probe-pod-not-scheduled",
        "probe-pod-image-pull",
        "probe-pod-config-error",
    ],
    run: tcp,
};

/// The host and port Elsa connects to, or the finding that says why they are not known.
pub fn db_endpoint(f: &Facts) -> Result<(String, u16), Finding> {
    let plan = crate::model::intended_database(f)
        .map_err(|why| Finding::skip(format!("database host not known: {why}")))?;
    let host = plan.conn.hosts().into_iter().next().ok_or_else(|| {
        Finding::skip("the connection string names no host — see config.connection-string")
    })?;
    Ok((host.host, host.port))
}

fn service(f: &Facts) -> Finding {
    let (host, port) = match db_endpoint(f) {
        Ok(e) => e,
        Err(skip) => return skip,
    };
    let base = |finding: Finding| {
        finding
            .with(
                Evidence::new("database host", format!("{host}:{port}")).from("connection string"),
            )
            .var("db_host", &host)
            .var("db_port", port.to_string())
    };
    let (name, namespace, form) = match service_host::classify(&host, &f.scope.namespace) {
        Host::Ip(ip) => {
            return base(Finding::skip(format!(
                "{ip} is an IP address: no Service is involved (network.tcp tests the path; a Service name survives a database pod's restart, an IP may not)"
            )));
        }
        Host::External(name) => {
            return base(Finding::skip(format!(
                "{name} is not a Service name of this cluster (an external host): network.dns and network.tcp test it"
            )));
        }
        Host::Service {
            name,
            namespace,
            form,
        } => (name, namespace, form),
    };
    let base = |finding: Finding| {
        base(finding)
            .with(Evidence::new(
                "maps to",
                format!(
                    "Service {name} in namespace {namespace} ({})",
                    form.describe()
                ),
            ))
            .var("service", &name)
            .var("db_namespace", &namespace)
    };
    let found = match &f.db_service {
        Probe::Observed(s) => s,
        other => return base(not_observed(other, &format!("Service {name}"))),
    };
    let Some(svc) = &found.service else {
        return base(missing(found, &name, &namespace, form));
    };
    super::blame_database(f, base(judge(svc, found, &name, port)))
}

/// No Service where the host points: maybe it lives in another namespace.
fn missing(found: &DbService, name: &str, namespace: &str, form: Form) -> Finding {
    match &found.elsewhere {
        Probe::Observed(others) if !others.is_empty() => {
            let fqdns: Vec<String> = others
                .iter()
                .map(|ns| service_host::fqdn(name, ns, DEFAULT_CLUSTER_DOMAIN))
                .collect();
            let how = if form == Form::Short {
                "a short name only reaches Services in the pod's own namespace"
            } else {
                "the namespace in the host name is not where the Service is"
            };
            Finding::problem(
                "wrong-namespace",
                format!(
                    "no Service {name} in namespace {namespace}, but there is one in {}: {how}; use {}",
                    others.join(", "),
                    fqdns.join(" or ")
                ),
            )
            .with(Evidence::new("use", fqdns.join(", ")))
            .var("fqdn", fqdns.first().cloned().unwrap_or_default())
        }
        Probe::Observed(_) => Finding::problem(
            "missing",
            format!("no Service {name} in namespace {namespace}, nor in any other namespace"),
        ),
        other => Finding::problem(
            "missing",
            format!("no Service {name} in namespace {namespace}"),
        )
        .with(Evidence::new(
            "other namespaces",
            format!(
                "not searched: {}",
                other.why_not().unwrap_or_else(|| "unknown".to_owned())
            ),
        )),
    }
}

/// The Service exists: port, selector and ready endpoints.
fn judge(svc: &Service, found: &DbService, name: &str, port: u16) -> Finding {
    let spec = svc.spec.clone().unwrap_or_default();
    let kind = spec.type_.as_deref().unwrap_or("ClusterIP");
    if kind == "ExternalName" {
        let target = spec.external_name.unwrap_or_default();
        return Finding::pass(format!(
            "Service {name} is an ExternalName alias for {target}: cluster DNS answers with a CNAME, there are no endpoints to check (network.dns and network.tcp follow it)"
        ))
        .with(Evidence::new("type", format!("ExternalName → {target}")).from("Service spec"));
    }
    let headless = spec.cluster_ip.as_deref() == Some("None");
    let ports = spec.ports.clone().unwrap_or_default();
    let listed = ports
        .iter()
        .map(describe_port)
        .collect::<Vec<_>>()
        .join(", ");
    let ports_evidence = Evidence::new(
        "ports",
        if listed.is_empty() {
            "none".into()
        } else {
            listed
        },
    )
    .from(format!("Service {name}"));
    let Some(sp) = ports.iter().find(|p| p.port == i32::from(port)) else {
        // A headless Service without ports still resolves to pod IPs; any port then works.
        if !(headless && ports.is_empty()) {
            return Finding::problem(
                "port-missing",
                format!(
                    "Service {name} does not expose port {port}, the one in the connection string"
                ),
            )
            .with(ports_evidence);
        }
        return ready_endpoints(found, name, None, headless, spec.selector.is_some())
            .with(ports_evidence);
    };
    let selectorless = spec.selector.as_ref().is_none_or(|s| s.is_empty());
    ready_endpoints(found, name, Some(sp), headless, !selectorless).with(ports_evidence)
}

fn ready_endpoints(
    found: &DbService,
    name: &str,
    port: Option<&ServicePort>,
    headless: bool,
    has_selector: bool,
) -> Finding {
    let slices = match &found.endpoint_slices {
        Probe::Observed(s) => s,
        other => return not_observed(other, &format!("the endpoints of Service {name}")),
    };
    let (ready, not_ready) = count_endpoints(slices, port);
    let shape = if headless {
        "headless Service (DNS answers with the pods' addresses)"
    } else {
        "Service"
    };
    let evidence = Evidence::new("endpoints", format!("{ready} ready, {not_ready} not ready"))
        .from("EndpointSlices");
    if ready > 0 {
        return Finding::pass(format!(
            "{shape} {name} exposes the port and has {ready} ready endpoint{}",
            if ready == 1 { "" } else { "s" }
        ))
        .with(evidence);
    }
    if !has_selector && not_ready == 0 {
        return Finding::problem(
            "no-selector",
            format!(
                "Service {name} has no selector and no endpoints: nothing receives its traffic unless you create an EndpointSlice for it"
            ),
        )
        .with(evidence);
    }
    Finding::problem(
        "no-ready-endpoints",
        format!(
            "Service {name} has no ready endpoint for this port: no PostgreSQL pod behind it is ready{}",
            if not_ready > 0 {
                format!(" ({not_ready} not ready)")
            } else {
                " (its selector matches no pod)".to_owned()
            }
        ),
    )
    .with(evidence)
}

/// Ready and not-ready endpoints in the slices that carry the Service port (by its name).
fn count_endpoints(slices: &[EndpointSlice], port: Option<&ServicePort>) -> (usize, usize) {
    let mut ready = 0;
    let mut not_ready = 0;
    for slice in slices {
        let carries = match port {
            None => true,
            Some(sp) => slice.ports.as_ref().is_none_or(|ports| {
                ports.is_empty()
                    || ports.iter().any(|p| {
                        p.name.as_deref().unwrap_or("") == sp.name.as_deref().unwrap_or("")
                    })
            }),
        };
        if !carries {
            continue;
        }
        for ep in &slice.endpoints {
            // `ready` unset means ready, per the EndpointSlice API.
            let is_ready = ep.conditions.as_ref().and_then(|c| c.ready).unwrap_or(true);
            if is_ready {
                ready += ep.addresses.len().max(1);
            } else {
                not_ready += ep.addresses.len().max(1);
            }
        }
    }
    (ready, not_ready)
}

/// The in-cluster probes, or the finding for why there are none.
fn observation<'a>(f: &'a Facts, what: &str) -> Result<&'a NetworkObservation, Finding> {
    match &f.network {
        Probe::Observed(o) => Ok(o),
        // A vantage that does not reach into the cluster network: a choice, not a failure.
        Probe::NotAttempted(why) => Err(Finding::skip(why.clone())),
        other => Err(match super::probe_pod::why(other) {
            Some(why) => super::probe_pod::finding(why, what),
            None => not_observed(other, "the in-cluster probes"),
        }),
    }
}

/// Where the probes ran, for evidence.
fn vantage_evidence(o: &NetworkObservation) -> Evidence {
    let value = match (&o.vantage[..], &o.via) {
        ("here", _) => "this machine (--vantage here)".to_owned(),
        ("debug-pod", Some(pod)) => {
            format!("debug pod {pod} in the namespace (deleted after the run)")
        }
        ("ephemeral", Some(c)) => format!(
            "ephemeral container {c} (it stays in the pod's spec until the pod is replaced)"
        ),
        (v, via) => format!("{v} {}", via.as_deref().unwrap_or("")),
    };
    Evidence::new("probed from", value)
}

fn resolv_evidence(o: &NetworkObservation) -> Option<Evidence> {
    match &o.report.resolv_conf {
        ResolvConfSummary::Read {
            path,
            nameservers,
            search,
            ndots,
            ..
        } => Some(
            Evidence::new(
                "resolv.conf",
                format!(
                    "nameserver {}; search {}; ndots:{ndots}",
                    nameservers
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join(", "),
                    if search.is_empty() {
                        "(none)".to_owned()
                    } else {
                        search.join(" ")
                    }
                ),
            )
            .from(path.display().to_string()),
        ),
        ResolvConfSummary::Unreadable { path, error } => Some(
            Evidence::new("resolv.conf", format!("unreadable: {error}"))
                .from(path.display().to_string()),
        ),
    }
}

/// The database host and port and the in-cluster probes both network checks judge, or the
/// finding that says why there are none.
fn probed<'a>(f: &'a Facts, what: &str) -> Result<(String, u16, &'a NetworkObservation), Finding> {
    let (host, port) = db_endpoint(f)?;
    let o = observation(f, what).map_err(|finding| finding.var("db_host", &host))?;
    Ok((host, port, o))
}

/// What every finding from the probes carries: where they ran, and the names for the fix.
fn decorate(finding: Finding, o: &NetworkObservation, host: &str, port: u16) -> Finding {
    let finding = finding
        .with(vantage_evidence(o))
        .var("db_host", host)
        .var("db_port", port.to_string());
    match &o.via {
        Some(pod) => finding.var("pod", pod.split('/').next().unwrap_or(pod)),
        None => finding,
    }
}

fn dns(f: &Facts) -> Finding {
    let (host, port, o) = match probed(f, "DNS from the namespace") {
        Ok(p) => p,
        Err(finding) => return finding,
    };
    let base = |finding: Finding| {
        let finding = decorate(finding, o, &host, port);
        match resolv_evidence(o) {
            Some(r) => finding.with(r),
            None => finding,
        }
    };
    if let Host::Ip(ip) = service_host::classify(&host, &f.scope.namespace) {
        return base(Finding::skip(format!(
            "{ip} is an IP address: there is nothing to resolve"
        )));
    }
    let Some(d) = o.report.dns.first() else {
        return base(Finding::unknown(None, "the probe returned no DNS result"));
    };
    let tried = d
        .attempts
        .iter()
        .map(|a| format!("{} ({})", a.name, a.outcome))
        .collect::<Vec<_>>()
        .join(", ");
    let tried = Evidence::new("names tried, in order", tried);
    let finding = match &d.outcome {
        DnsOutcome::Resolved => Finding::pass(format!(
            "{host} resolves to {} (as {})",
            d.addresses
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", "),
            d.answered_by.as_deref().unwrap_or(&host)
        )),
        DnsOutcome::NxDomain => {
            let hint = elsewhere_hint(f);
            let finding = Finding::problem(
                "nxdomain",
                format!(
                    "{host} does not resolve: every name the search list produced is unknown to cluster DNS{}",
                    hint.as_ref()
                        .map(|(ns, fqdn)| format!(
                            "; a Service of that name exists in namespace {ns}: use {fqdn}"
                        ))
                        .unwrap_or_default()
                ),
            );
            match hint {
                Some((_, fqdn)) => finding.var("fqdn", fqdn),
                None => finding,
            }
        }
        DnsOutcome::ServFail => Finding::problem(
            "servfail",
            format!("{host} could not be resolved: the nameserver answered SERVFAIL"),
        ),
        DnsOutcome::Timeout => Finding::problem(
            "timeout",
            format!("{host} could not be resolved: the nameserver did not answer in time"),
        ),
        DnsOutcome::Error { reason } => {
            Finding::unknown(None, format!("{host} could not be resolved: {reason}"))
        }
    };
    super::netpol::vantage_note(f, o, base(finding.with(tried)))
}

/// A Service with the host's name in another namespace, as (namespace, full name).
fn elsewhere_hint(f: &Facts) -> Option<(String, String)> {
    let s = f.db_service.observed()?;
    let ns = s.elsewhere.observed()?.first()?;
    Some((
        ns.clone(),
        service_host::fqdn(&s.name, ns, DEFAULT_CLUSTER_DOMAIN),
    ))
}

fn tcp(f: &Facts) -> Finding {
    let (host, port, o) = match probed(f, "The TCP connection to the database") {
        Ok(p) => p,
        Err(finding) => return finding,
    };
    let base = |finding: Finding| decorate(finding, o, &host, port);
    let Some(t) = o.report.tcp.first() else {
        return base(Finding::unknown(None, "the probe returned no TCP result"));
    };
    let attempts = t
        .attempts
        .iter()
        .map(|a| format!("{} {} ({} ms)", a.address, a.outcome, a.elapsed_ms))
        .collect::<Vec<_>>()
        .join("; ");
    let evidence = Evidence::new(
        "attempts",
        if attempts.is_empty() {
            "none".to_owned()
        } else {
            attempts
        },
    );
    let finding = match &t.outcome {
        TcpOutcome::Connected { address } => Finding::pass(format!(
            "{host}:{port} accepts connections ({address}, {} ms)",
            t.elapsed_ms
        )),
        TcpOutcome::Refused => Finding::problem(
            "refused",
            format!(
                "{host}:{port} refused the connection: the address answers, but nothing listens on the port"
            ),
        ),
        TcpOutcome::TimedOut => Finding::problem(
            "timeout",
            format!(
                "{host}:{port} did not answer within --timeout: packets are dropped on the way"
            ),
        ),
        TcpOutcome::Unreachable => Finding::problem(
            "unreachable",
            format!("{host}:{port} is unreachable: no route to the host or its network"),
        ),
        TcpOutcome::NameNotResolved { dns } => Finding::skip(format!(
            "not attempted: {host} does not resolve ({dns}) — see network.dns"
        )),
        TcpOutcome::Error { reason } => {
            Finding::unknown(None, format!("{host}:{port} could not be tried: {reason}"))
        }
    };
    let finding = super::blame_database(f, finding);
    super::netpol::vantage_note(f, o, base(finding.with(evidence)))
}

fn describe_port(p: &ServicePort) -> String {
    let target = match &p.target_port {
        Some(IntOrString::Int(i)) => i.to_string(),
        Some(IntOrString::String(s)) => format!("'{s}'"),
        None => p.port.to_string(),
    };
    match &p.name {
        Some(n) if !n.is_empty() => format!("{n} {}→{target}", p.port),
        _ => format!("{}→{target}", p.port),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::Outcome;

    fn svc(json: serde_json::Value) -> Service {
        serde_json::from_value(json).expect("service")
    }

    fn slices(ready: &[bool]) -> Probe<Vec<EndpointSlice>> {
        let eps: Vec<serde_json::Value> = ready
            .iter()
            .enumerate()
            .map(|(i, r)| {
                serde_json::json!({"addresses": [format!("10.244.0.{}", i + 10)], "conditions": {"ready": r}})
            })
            .collect();
        Probe::Observed(vec![
            serde_json::from_value(serde_json::json!({
                "metadata": {"name": "postgres-abc", "labels": {"kubernetes.io/service-name": "postgres"}},
                "addressType": "IPv4",
                "endpoints": eps,
                "ports": [{"name": "", "port": 5432, "protocol": "TCP"}]
            }))
            .expect("slice"),
        ])
    }

    fn found(service: Option<Service>, eps: Probe<Vec<EndpointSlice>>) -> DbService {
        DbService {
            name: "postgres".into(),
            namespace: "elsa".into(),
            service,
            endpoint_slices: eps,
            elsewhere: Probe::NotAttempted("found where the host points".into()),
        }
    }

    fn pg(port: i32, selector: bool) -> Service {
        let mut spec = serde_json::json!({"ports": [{"port": port, "targetPort": 5432}], "clusterIP": "10.96.0.20"});
        if selector {
            spec["selector"] = serde_json::json!({"app": "postgres"});
        }
        svc(serde_json::json!({"metadata": {"name": "postgres"}, "spec": spec}))
    }

    #[test]
    fn ready_endpoints_pass() {
        let f = judge(
            &pg(5432, true),
            &found(None, slices(&[true])),
            "postgres",
            5432,
        );
        assert_eq!(f.outcome, Outcome::Pass, "{}", f.message);
    }

    #[test]
    fn wrong_port_and_no_ready_pod() {
        let f = judge(
            &pg(5433, true),
            &found(None, slices(&[true])),
            "postgres",
            5432,
        );
        assert_eq!(f.cause, Some("port-missing"));
        let f = judge(
            &pg(5432, true),
            &found(None, slices(&[false, false])),
            "postgres",
            5432,
        );
        assert_eq!(f.cause, Some("no-ready-endpoints"));
        assert!(f.message.contains("2 not ready"), "{}", f.message);
        let f = judge(
            &pg(5432, true),
            &found(None, Probe::Observed(vec![])),
            "postgres",
            5432,
        );
        assert_eq!(f.cause, Some("no-ready-endpoints"));
        assert!(f.message.contains("matches no pod"), "{}", f.message);
    }

    #[test]
    fn selectorless_without_endpoints() {
        let f = judge(
            &pg(5432, false),
            &found(None, Probe::Observed(vec![])),
            "postgres",
            5432,
        );
        assert_eq!(f.cause, Some("no-selector"));
    }

    #[test]
    fn external_name_and_headless() {
        let ext = svc(
            serde_json::json!({"metadata": {"name": "postgres"}, "spec": {"type": "ExternalName", "externalName": "db.example.com"}}),
        );
        let f = judge(
            &ext,
            &found(None, Probe::Observed(vec![])),
            "postgres",
            5432,
        );
        assert_eq!(f.outcome, Outcome::Pass);
        assert!(f.message.contains("db.example.com"));
        let headless = svc(
            serde_json::json!({"metadata": {"name": "postgres"}, "spec": {"clusterIP": "None", "selector": {"app": "pg"}, "ports": [{"port": 5432}]}}),
        );
        let f = judge(&headless, &found(None, slices(&[true])), "postgres", 5432);
        assert_eq!(f.outcome, Outcome::Pass);
        assert!(f.message.contains("headless"));
    }

    #[test]
    fn a_service_in_another_namespace_gets_its_fqdn() {
        let mut d = found(None, Probe::NotAttempted("no Service".into()));
        d.elsewhere = Probe::Observed(vec!["db".into()]);
        let f = missing(&d, "postgres", "elsa", Form::Short);
        assert_eq!(f.cause, Some("wrong-namespace"));
        assert!(
            f.message.contains("postgres.db.svc.cluster.local"),
            "{}",
            f.message
        );
        d.elsewhere = Probe::Forbidden {
            verb: "list".into(),
            resource: "services".into(),
        };
        let f = missing(&d, "postgres", "elsa", Form::Short);
        assert_eq!(f.cause, Some("missing"));
        assert!(f.evidence.iter().any(|e| e.value.contains("forbidden")));
    }
}
