//! How cluster DNS maps a database host name to a Service: a short name means the pod's own
//! namespace, `svc.ns` and `svc.ns.svc` reach through the pod's search list, and
//! `svc.ns.svc.<cluster domain>` is the full name. An IP address or any other name is not a
//! Service of this cluster (an ExternalName Service is still a Service: it is found by name).
//!
//! The forms follow the pod `resolv.conf` the kubelet writes (`search <ns>.svc.<domain>
//! svc.<domain> <domain>`, `ndots:5`), which is why `postgres.db` works from any namespace while
//! `postgres` only works from the database's own.

use std::net::IpAddr;

/// The cluster domain when nothing says otherwise (kubelet `--cluster-domain`).
pub const DEFAULT_CLUSTER_DOMAIN: &str = "cluster.local";

/// Which spelling of a Service name the host uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Form {
    /// `postgres`: the pod's own namespace.
    Short,
    /// `postgres.db`.
    WithNamespace,
    /// `postgres.db.svc`.
    WithSvc,
    /// `postgres.db.svc.cluster.local`.
    Full,
}

impl Form {
    pub fn describe(self) -> &'static str {
        match self {
            Form::Short => "a short name, which cluster DNS completes with the pod's own namespace",
            Form::WithNamespace => "service.namespace",
            Form::WithSvc => "service.namespace.svc",
            Form::Full => "the full name",
        }
    }
}

/// What a database host is, in cluster terms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Host {
    Ip(IpAddr),
    Service {
        name: String,
        namespace: String,
        form: Form,
    },
    /// A name outside the cluster's Service names (a managed database, a VM).
    External(String),
}

/// Classifies `host` as seen from a pod in `namespace`.
pub fn classify(host: &str, namespace: &str) -> Host {
    let trimmed = host.trim().trim_end_matches('.');
    if let Ok(ip) = trimmed
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<IpAddr>()
    {
        return Host::Ip(ip);
    }
    let lower = trimmed.to_ascii_lowercase();
    let parts: Vec<&str> = lower.split('.').collect();
    let service = |name: &str, ns: &str, form| Host::Service {
        name: name.to_owned(),
        namespace: ns.to_owned(),
        form,
    };
    match parts.as_slice() {
        [svc] if is_label(svc) => service(svc, namespace, Form::Short),
        [svc, ns] if is_label(svc) && is_label(ns) => service(svc, ns, Form::WithNamespace),
        [svc, ns, "svc"] => service(svc, ns, Form::WithSvc),
        [svc, ns, "svc", rest @ ..] if !rest.is_empty() => service(svc, ns, Form::Full),
        _ => Host::External(trimmed.to_owned()),
    }
}

/// The Service and namespace a host names, or `None` for an IP address or an outside name.
pub fn service_of(host: &str, namespace: &str) -> Option<(String, String)> {
    match classify(host, namespace) {
        Host::Service {
            name, namespace, ..
        } => Some((name, namespace)),
        Host::Ip(_) | Host::External(_) => None,
    }
}

/// The full DNS name of a Service.
pub fn fqdn(name: &str, namespace: &str, cluster_domain: &str) -> String {
    format!("{name}.{namespace}.svc.{cluster_domain}")
}

/// A DNS label as Service names use them (RFC 1123).
fn is_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn svc(name: &str, ns: &str, form: Form) -> Host {
        Host::Service {
            name: name.into(),
            namespace: ns.into(),
            form,
        }
    }

    #[test]
    fn cluster_forms() {
        assert_eq!(
            classify("postgres", "elsa"),
            svc("postgres", "elsa", Form::Short)
        );
        assert_eq!(
            classify("postgres.db", "elsa"),
            svc("postgres", "db", Form::WithNamespace)
        );
        assert_eq!(
            classify("postgres.db.svc", "elsa"),
            svc("postgres", "db", Form::WithSvc)
        );
        assert_eq!(
            classify("Postgres.DB.svc.cluster.local.", "elsa"),
            svc("postgres", "db", Form::Full)
        );
        assert_eq!(
            classify("pg.db.svc.k8s.example.org", "elsa"),
            svc("pg", "db", Form::Full)
        );
    }

    #[test]
    fn ips_and_outside_names() {
        assert!(matches!(classify("10.0.0.5", "elsa"), Host::Ip(_)));
        assert!(matches!(classify("[::1]", "elsa"), Host::Ip(_)));
        assert_eq!(
            classify("mydb.abc123.eu-west-1.rds.amazonaws.com", "elsa"),
            Host::External("mydb.abc123.eu-west-1.rds.amazonaws.com".into())
        );
        // Underscores are not Service names.
        assert!(matches!(classify("my_db", "elsa"), Host::External(_)));
    }

    #[test]
    fn services_by_name_and_namespace() {
        assert_eq!(
            service_of("postgres", "elsa"),
            Some(("postgres".into(), "elsa".into()))
        );
        assert_eq!(
            service_of("pg.db.svc.cluster.local", "elsa"),
            Some(("pg".into(), "db".into()))
        );
        assert_eq!(service_of("10.0.0.5", "elsa"), None);
        assert_eq!(
            service_of("mydb.abc123.eu-west-1.rds.amazonaws.com", "elsa"),
            None
        );
    }

    #[test]
    fn full_names() {
        assert_eq!(
            fqdn("postgres", "db", DEFAULT_CLUSTER_DOMAIN),
            "postgres.db.svc.cluster.local"
        );
    }
}
