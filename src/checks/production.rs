//! Production-readiness checks on the configuration: replicas against the persistence in use,
//! cross-node locking, resources, database TLS, and passwords written in plain text.

use super::config::connection_name;
use super::view::{View, with_view};
use super::{CheckImpl, Finding};
use crate::domain::dotnet_config::{self, Source};
use crate::domain::elsa::{self, Flavor, ProviderRule};
use crate::domain::env_expand::EnvValue;
use crate::domain::npgsql::{self, SslMode};
use crate::facts::{FactKey, Facts, Probe};
use crate::redact;
use crate::report::Evidence;

const NEEDS: &[FactKey] = &[
    FactKey::Workloads,
    FactKey::ConfigSources,
    FactKey::Services,
];

pub const REPLICAS: CheckImpl = CheckImpl {
    id: "production.replicas",
    needs: NEEDS,
    causes: &["sqlite-multi", "multi-node-needs"],
    run: replicas,
};
pub const LOCKING: CheckImpl = CheckImpl {
    id: "production.locking",
    needs: NEEDS,
    causes: &["local-lock", "not-configurable"],
    run: locking,
};
pub const RESOURCES: CheckImpl = CheckImpl {
    id: "production.resources",
    needs: NEEDS,
    causes: &["missing-requests", "missing-limits"],
    run: resources,
};
pub const DB_TLS: CheckImpl = CheckImpl {
    id: "production.db-tls",
    needs: NEEDS,
    causes: &["not-required", "unverified"],
    run: db_tls,
};
pub const INLINE_SECRETS: CheckImpl = CheckImpl {
    id: "production.inline-secrets",
    needs: NEEDS,
    causes: &["env-literal", "configmap"],
    run: inline_secrets,
};

/// Whether the image ends up on SQLite, as far as configuration shows. `None`: cannot tell.
fn uses_sqlite(v: &View<'_>) -> Option<bool> {
    let id = v.identity.as_ref()?;
    match elsa::provider_rule(id.flavor, id.version)? {
        ProviderRule::FixedInCode => Some(true),
        ProviderRule::ShellFeatures => None,
        ProviderRule::DatabaseProviderKey => {
            let p = v
                .config
                .get("DatabaseProvider")
                .map_or("Sqlite", |s| s.value.expose());
            if !elsa::PROVIDERS.contains(&p) {
                // Not an accepted value: the host stops at startup (config.provider says so).
                return None;
            }
            Some(!elsa::POSTGRES_FAMILY.contains(&p))
        }
    }
}

fn replicas(facts: &Facts) -> Finding {
    with_view(facts, |v| {
        let n = v.workload.desired_replicas();
        let ev = Evidence::new("replicas", n.to_string())
            .from(format!("{} spec.replicas", v.workload.reference()));
        if n <= 1 {
            return Finding::pass(format!("{n} replica")).with(ev);
        }
        match uses_sqlite(v) {
            Some(true) => Finding::problem(
                "sqlite-multi",
                format!("{n} replicas on SQLite: every pod has its own database file, so they disagree about every workflow"),
            )
            .with(ev),
            Some(false) => Finding::warn(
                "multi-node-needs",
                format!("{n} replicas share PostgreSQL; they also need cross-node locking, cache invalidation and clustered scheduling"),
            )
            .with(ev),
            None => Finding::skip("the persistence in use is not known — see config.provider").with(ev),
        }
    })
}

fn locking(facts: &Facts) -> Finding {
    with_view(facts, |v| {
        let n = v.workload.desired_replicas();
        if n <= 1 {
            return Finding::pass(format!("{n} replica: a local lock provider is enough"));
        }
        let Some(id) = &v.identity else {
            return Finding::skip("no Elsa image identified — see workload.flavor");
        };
        let Some(version) = id.version else {
            return Finding::skip("the Elsa version is not known — see workload.flavor");
        };
        let mm = version.mm();
        match id.flavor {
            Flavor::ServerWeb if ((3, 3)..(3, 6)).contains(&mm) => {
                let key = "Runtime:DistributedLocking:Provider";
                let s = v.config.get(key);
                let value = s
                    .map(|s| s.value.expose().to_owned())
                    .unwrap_or_else(|| "File".into());
                let ev =
                    s.map(|s| Evidence::new(key, s.value.display()).from(s.source.to_string()));
                if value == "Postgres" || value == "Redis" {
                    Finding::pass(format!("{key}={value}")).with_all(ev)
                } else {
                    Finding::problem(
                        "local-lock",
                        format!("{n} replicas but {key}={value}: each pod locks only against itself (File locks live in its own /app/App_Data/locks)"),
                    )
                    .with_all(ev)
                }
            }
            Flavor::Custom => Finding::skip("a custom build sets its lock provider in code"),
            _ => Finding::problem(
                "not-configurable",
                format!(
                    "{n} replicas, but {} {version} sets its lock provider in code: the stock image locks per pod",
                    id.flavor
                ),
            ),
        }
    })
}

fn resources(facts: &Facts) -> Finding {
    with_view(facts, |v| {
        let r = v.container.resources.clone().unwrap_or_default();
        let has =
            |m: &Option<
                std::collections::BTreeMap<
                    String,
                    k8s_openapi::apimachinery::pkg::api::resource::Quantity,
                >,
            >,
             k: &str| { m.as_ref().and_then(|m| m.get(k)).map(|q| q.0.clone()) };
        let (rc, rm, lm) = (
            has(&r.requests, "cpu"),
            has(&r.requests, "memory"),
            has(&r.limits, "memory"),
        );
        let ev = Evidence::new(
            "resources",
            format!(
                "requests cpu {}, memory {}; limits memory {}",
                rc.as_deref().unwrap_or("unset"),
                rm.as_deref().unwrap_or("unset"),
                lm.as_deref().unwrap_or("unset")
            ),
        )
        .from(format!("container {}", v.container.name));
        if rc.is_none() || rm.is_none() {
            return Finding::problem(
                "missing-requests",
                "CPU or memory requests are not set: the scheduler cannot place Elsa predictably",
            )
            .with(ev);
        }
        if lm.is_none() {
            return Finding::problem("missing-limits", "no memory limit: .NET sizes its heap from the node, and one pod can starve the others").with(ev);
        }
        Finding::pass("requests and a memory limit are set").with(ev)
    })
}

fn db_tls(facts: &Facts) -> Finding {
    with_view(facts, |v| {
        if uses_sqlite(v) != Some(false) {
            return Finding::skip("PostgreSQL is not the provider in effect — see config.provider");
        }
        let key = format!("ConnectionStrings:{}", connection_name(v));
        let Some(s) = v
            .config
            .get(&key)
            .filter(|s| s.source != Source::ImageDefault)
        else {
            return Finding::skip(format!("{key} is not set — see config.connection-string"));
        };
        let Ok(cs) = npgsql::parse(s.value.expose()) else {
            return Finding::skip(format!(
                "{key} does not parse — see config.connection-string"
            ));
        };
        let mode = match cs.ssl_mode() {
            Ok(m) => m,
            Err(e) => {
                return Finding::skip(format!(
                    "SSL Mode is not valid ({e}) — see config.connection-string"
                ));
            }
        };
        let ev = Evidence::new("SSL Mode", mode.to_string()).from(s.source.to_string());
        // Since Npgsql 8, Require never verifies and Trust Server Certificate does nothing.
        match mode {
            SslMode::VerifyFull | SslMode::VerifyCa => {
                Finding::pass(format!("SSL Mode {mode}: encrypted and verified")).with(ev)
            }
            SslMode::Require => Finding::problem(
                "unverified",
                "SSL Mode Require: encrypted, but the server's certificate is not verified",
            )
            .with(ev),
            _ => Finding::problem(
                "not-required",
                format!("SSL Mode {mode}: the connection may run unencrypted"),
            )
            .with(ev),
        }
    })
}

/// A literal value that carries a password: a connection string with a literal password, or a
/// secret-named variable with a literal value. Facts are scrubbed when gathered, so a literal
/// password shows up as the mask; a `$(VAR)` reference is kept and is not literal.
fn literal_password(name: &str, value: &str) -> bool {
    if let Ok(cs) = npgsql::parse(value)
        && let Some(p) = cs.password()
    {
        return !p.is_empty() && !p.expose().starts_with("$(");
    }
    value == redact::MASK || redact::env_value(name, value) == redact::MASK
}

fn inline_secrets(facts: &Facts) -> Finding {
    with_view(facts, |v| {
        let mut evidence = Vec::new();
        let mut cause = None;
        for (i, e) in v.container.env.iter().flatten().enumerate() {
            let Some(value) = e.value.as_deref() else {
                continue;
            };
            if literal_password(&e.name, value) {
                cause.get_or_insert("env-literal");
                evidence.push(
                    Evidence::new(
                        format!("{} (env[{i}])", e.name),
                        redact::env_value(&e.name, value),
                    )
                    .from("env value"),
                );
            }
        }
        for (name, probe) in &facts.config_maps {
            let Probe::Observed(cm) = probe else { continue };
            for (key, value) in &cm.data {
                let hit = if key.ends_with(".json") {
                    // Judge the file's values as .NET reads them, key by key.
                    dotnet_config::parse_appsettings(value).is_ok_and(|json| {
                        let mut cfg = dotnet_config::EffectiveConfig::default();
                        cfg.add_json(&json, |_| Source::ImageDefault);
                        cfg.iter().any(|s| {
                            let leaf = s.key.rsplit(':').next().unwrap_or(&s.key);
                            literal_password(leaf, s.value.expose())
                        })
                    })
                } else {
                    literal_password(key, value)
                };
                if hit {
                    cause.get_or_insert("configmap");
                    evidence.push(
                        Evidence::new(
                            format!("ConfigMap {name} key {key}"),
                            "holds a password in plain text",
                        )
                        .from("ConfigMap data"),
                    );
                }
            }
        }
        // envFrom ConfigMap values become env vars too.
        for e in &v.expansion.vars {
            if let (
                EnvValue::FromSource {
                    secret: false,
                    value,
                },
                crate::domain::env_expand::Origin::EnvFrom { .. },
            ) = (&e.value, &e.origin)
                && literal_password(&e.name, value.expose())
                && cause.is_none()
            {
                cause = Some("configmap");
                evidence.push(
                    Evidence::new(&e.name, "a password from a ConfigMap")
                        .from(e.origin.to_string()),
                );
            }
        }
        match cause {
            None => Finding::pass(
                "no password is written literally in env values or referenced ConfigMaps",
            ),
            Some(c) => Finding::problem(
                c,
                format!("{} place(s) hold a password in plain text", evidence.len()),
            )
            .with_all(evidence),
        }
    })
}
