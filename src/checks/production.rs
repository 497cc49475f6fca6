//! Production-readiness checks on the configuration: replicas against the persistence in use,
//! cross-node locking, resources, database TLS, and passwords written in plain text.

use super::with_model;
use super::{CheckImpl, Finding};
use crate::domain::dotnet_config::{self, Source};
use crate::domain::elsa::{self, Flavor, ProviderRule};
use crate::domain::env_expand::EnvValue;
use crate::domain::npgsql::{self, SslMode};
use crate::facts::{FactKey, Facts, Probe};
use crate::model::Effective;
use crate::redact;
use crate::report::Evidence;

const NEEDS: &[FactKey] = &[
    FactKey::Workloads,
    FactKey::ConfigSources,
    FactKey::Services,
    FactKey::PodFiles,
];

/// The model's inputs and the autoscalers: how many replicas may run.
const NEEDS_REPLICAS: &[FactKey] = &[
    FactKey::Workloads,
    FactKey::ConfigSources,
    FactKey::Services,
    FactKey::PodFiles,
    FactKey::Autoscalers,
];

pub const REPLICAS: CheckImpl = CheckImpl {
    id: "production.replicas",
    needs: NEEDS_REPLICAS,
    causes: &["sqlite-multi", "multi-node-needs"],
    run: replicas,
};
pub const LOCKING: CheckImpl = CheckImpl {
    id: "production.locking",
    needs: NEEDS_REPLICAS,
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

/// Whether the image ends up on SQLite for one (flavour, version), as far as configuration
/// shows. `None`: cannot tell.
fn uses_sqlite(v: &Effective, flavor: Flavor, version: Option<elsa::ElsaVersion>) -> Option<bool> {
    match elsa::provider_rule(flavor, version)? {
        ProviderRule::FixedInCode => Some(true),
        // The stock Modular Server image has only the SQLite provider (elsa-audit.md row 1).
        ProviderRule::ShellFeatures => v
            .identity
            .as_ref()
            .and_then(|id| elsa::classify_image(&id.image))
            .is_some_and(|i| i.official)
            .then_some(true),
        ProviderRule::DatabaseProviderKey => {
            let p = v
                .config
                .get("DatabaseProvider")
                .map_or("Sqlite", |s| s.value.expose());
            if !elsa::accepted_providers(flavor, version).contains(&p) {
                // Not an accepted value: the host stops at startup (config.provider says so).
                return None;
            }
            Some(!elsa::postgres_providers(flavor, version).contains(&p))
        }
    }
}

/// [`uses_sqlite`] for the run: the identity's version, or the answer every candidate shares.
fn uses_sqlite_any(v: &Effective) -> Option<bool> {
    let id = v.identity.as_ref()?;
    if v.candidates.len() <= 1 {
        return uses_sqlite(v, id.flavor, id.version);
    }
    let mut answers = v
        .candidates
        .iter()
        .map(|(f, ver)| uses_sqlite(v, *f, Some(*ver)));
    let first = answers.next().flatten();
    answers.all(|a| a == first).then_some(first).flatten()
}

/// The most Elsa pods that may run (`spec.replicas`, or the autoscaler's `maxReplicas`), how
/// to say it in a message ("3 replicas", "up to 6 replicas (HorizontalPodAutoscaler x)"), and
/// the evidence naming where the number came from.
fn replica_count(facts: &Facts, v: &Effective) -> (i32, String, Vec<Evidence>) {
    let r = v.replicas(&facts.autoscalers);
    let n = r.most();
    let mut ev = vec![
        Evidence::new("replicas", r.spec.to_string())
            .from(format!("{} spec.replicas", v.workload().reference())),
    ];
    let unit = if n == 1 { "replica" } else { "replicas" };
    let text = match &r.autoscaler {
        Some((name, min, max)) => {
            ev.push(
                Evidence::new(
                    "autoscaler",
                    format!("minReplicas {min}, maxReplicas {max}"),
                )
                .from(format!("HorizontalPodAutoscaler {name}")),
            );
            format!("up to {n} {unit} (HorizontalPodAutoscaler {name})")
        }
        None => format!("{n} {unit}"),
    };
    if let Some(why) = &r.autoscalers_unknown {
        ev.push(
            Evidence::new(
                "autoscalers",
                format!("not known ({why}); counted without one"),
            )
            .from("horizontalpodautoscalers"),
        );
    }
    (n, text, ev)
}

fn replicas(facts: &Facts) -> Finding {
    with_model(facts, |v| {
        let (n, count, ev) = replica_count(facts, v);
        if n <= 1 {
            return Finding::pass(count).with_all(ev);
        }
        super::over_candidates(v, None, |flavor, version| {
            match uses_sqlite(v, flavor, version) {
            Some(true) => Finding::problem(
                "sqlite-multi",
                format!("{count} on SQLite: every pod has its own database file, so they disagree about every workflow"),
            )
            .with_all(ev.clone()),
            Some(false) => Finding::warn(
                "multi-node-needs",
                format!("{count} share PostgreSQL; they also need cross-node locking, cache invalidation and clustered scheduling"),
            )
            .with_all(ev.clone()),
            None => Finding::skip("the persistence in use is not known — see config.provider")
                .with_all(ev.clone()),
        }
        })
    })
}

fn locking(facts: &Facts) -> Finding {
    with_model(facts, |v| {
        let (n, count, replica_ev) = replica_count(facts, v);
        if n <= 1 {
            return Finding::pass(format!("{count}: a local lock provider is enough"))
                .with_all(replica_ev);
        }
        let n = count;
        super::over_candidates(v, None, |flavor, version| {
            let Some(version) = version else {
                return match flavor {
                    Flavor::Custom => {
                        Finding::skip("a custom build sets its lock provider in code")
                    }
                    _ => Finding::skip("the Elsa version is not known — see workload.flavor"),
                };
            };
            let mm = version.mm();
            match flavor {
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
                            format!("{n} but {key}={value}: each pod locks only against itself (File locks live in its own /app/App_Data/locks)"),
                        )
                        .with_all(ev)
                        .with_all(replica_ev.clone())
                    }
                }
                Flavor::Custom => Finding::skip("a custom build sets its lock provider in code"),
                _ => Finding::problem(
                    "not-configurable",
                    format!(
                        "{n}, but {flavor} {version} sets its lock provider in code: the stock image locks per pod"
                    ),
                )
                .with_all(replica_ev.clone()),
            }
        })
    })
}

fn resources(facts: &Facts) -> Finding {
    with_model(facts, |v| {
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
    with_model(facts, |v| {
        if uses_sqlite_any(v) != Some(false) {
            return Finding::skip("PostgreSQL is not the provider in effect — see config.provider");
        }
        let key = format!("ConnectionStrings:{}", v.connection_name());
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
    with_model(facts, |v| {
        let mut evidence = Vec::new();
        let mut cause = None;
        // Every container of the pod: an init container's or a sidecar's literal password is
        // as readable in the workload's spec as Elsa's (issue 12 #1); those name their container.
        for c in &v.containers {
            let prefix = v.container_prefix(c);
            for (i, e) in c.container.env.iter().flatten().enumerate() {
                let Some(value) = e.value.as_deref() else {
                    continue;
                };
                if literal_password(&e.name, value) {
                    cause.get_or_insert("env-literal");
                    evidence.push(
                        Evidence::new(
                            format!("{prefix}{} (env[{i}])", e.name),
                            redact::env_value(&e.name, value),
                        )
                        .from("env value"),
                    );
                }
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

pub const POOL: CheckImpl = CheckImpl {
    id: "production.pool",
    needs: &[
        FactKey::Workloads,
        FactKey::ConfigSources,
        FactKey::Services,
        FactKey::PodFiles,
        FactKey::Database,
        FactKey::DbPods,
        FactKey::Autoscalers,
    ],
    causes: &["exceeds"],
    run: pool,
};

/// The connections the server admits, and where the numbers came from.
struct ServerLimit {
    available: i64,
    evidence: Evidence,
}

/// `max_connections` and the reserved slots as the database workload's manifest states them:
/// its PostgreSQL container's command line, or a `*.conf` file a ConfigMap mounts into it (the
/// command line wins, as in PostgreSQL). `Err`: why it is not known.
fn manifest_limit(f: &Facts) -> Result<ServerLimit, String> {
    use crate::domain::pg_conf::{self, Origin};
    let (_, subject, _) = db_workload(f).map_err(|finding| finding.message)?;
    let container =
        pg_container(subject.spec).ok_or_else(|| format!("{} has no containers", subject.name))?;
    let words: Vec<&str> = container
        .command
        .iter()
        .flatten()
        .chain(container.args.iter().flatten())
        .map(String::as_str)
        .collect();
    // The ConfigMap files mounted into the container: (ConfigMap, key, path, text).
    let volumes: std::collections::BTreeMap<&str, &k8s_openapi::api::core::v1::Volume> = subject
        .spec
        .volumes
        .iter()
        .flatten()
        .map(|v| (v.name.as_str(), v))
        .collect();
    let mut files: Vec<(String, String, String, String)> = Vec::new();
    let mut unread = Vec::new();
    for m in container.volume_mounts.iter().flatten() {
        let Some(cm) = volumes
            .get(m.name.as_str())
            .and_then(|v| v.config_map.as_ref())
        else {
            continue;
        };
        let data = match f.config_maps.get(&cm.name) {
            Some(Probe::Observed(d)) => &d.data,
            Some(other) => {
                unread.push(format!(
                    "ConfigMap {} ({})",
                    cm.name,
                    other.why_not().unwrap_or_default()
                ));
                continue;
            }
            None => continue,
        };
        let keys: Vec<(String, String)> = match &cm.items {
            Some(items) => items
                .iter()
                .map(|i| (i.key.clone(), i.path.clone()))
                .collect(),
            None => data.keys().map(|k| (k.clone(), k.clone())).collect(),
        };
        let mount = m.mount_path.trim_end_matches('/');
        let sub = m.sub_path.as_deref().filter(|s| !s.is_empty());
        for (key, path) in keys {
            let at = match sub {
                Some(sp) if sp == path => mount.to_owned(),
                Some(_) => continue,
                None => format!("{mount}/{path}"),
            };
            if let (true, Some(text)) = (at.ends_with(".conf"), data.get(&key)) {
                files.push((cm.name.clone(), key, at, text.clone()));
            }
        }
    }
    // One setting: the command line's, else the last file's that sets it.
    let setting = |name: &str| -> Option<(u32, String)> {
        if let Some(found) = pg_conf::from_command_line(words.iter().copied(), name)
            && let (Some(n), Origin::CommandLine(opt)) = (found.as_u32(), &found.origin)
        {
            return Some((
                n,
                format!("{} container {} `{opt}`", subject.name, container.name),
            ));
        }
        files.iter().rev().find_map(|(cm, key, at, text)| {
            let found = pg_conf::from_conf(text, name)?;
            let line = match found.origin {
                Origin::File { line } => line,
                Origin::CommandLine(_) => 0,
            };
            Some((
                found.as_u32()?,
                format!("ConfigMap {cm} key {key} line {line}, mounted at {at}"),
            ))
        })
    };
    let Some((max, from)) = setting("max_connections") else {
        let mut why = format!(
            "{} (PostgreSQL behind Service {}) sets no max_connections in its command line or in a mounted *.conf",
            subject.name,
            db_workload(f).map(|(s, _, _)| s).unwrap_or_default()
        );
        if !unread.is_empty() {
            why.push_str(&format!("; not read: {}", unread.join(", ")));
        }
        return Err(why);
    };
    let (reserved, reserved_from) = setting("superuser_reserved_connections")
        .map(|(n, from)| (n, format!("superuser_reserved_connections {n} ({from})")))
        .unwrap_or((
            pg_conf::DEFAULT_SUPERUSER_RESERVED,
            format!(
                "superuser_reserved_connections {} (PostgreSQL's default)",
                pg_conf::DEFAULT_SUPERUSER_RESERVED
            ),
        ));
    let (extra, extra_text) = match setting("reserved_connections") {
        Some((n, from)) => (n, format!(" − reserved_connections {n} ({from})")),
        None => (0, String::new()),
    };
    let available = i64::from(max) - i64::from(reserved) - i64::from(extra);
    Ok(ServerLimit {
        available,
        evidence: Evidence::new(
            "server",
            format!("max_connections {max} ({from}) − {reserved_from}{extra_text} = {available}"),
        )
        .from("database workload manifest"),
    })
}

fn pool(f: &Facts) -> Finding {
    use crate::facts::DbObservation;
    with_model(f, |v| {
        let (replicas, count, mut ev) = replica_count(f, v);
        let replicas = i64::from(replicas.max(0));
        let per_pod = match f.db_target.as_ref().and_then(|t| t.max_pool_size) {
            Some(n) => n,
            None => match v
                .intended_database()
                .and_then(|plan| plan.conn.max_pool_size())
            {
                Ok(n) => n,
                Err(why) => {
                    return Finding::skip(format!("the pool size is not known: {why}"));
                }
            },
        };
        let wanted = replicas * i64::from(per_pod);
        ev.insert(
            0,
            Evidence::new(
                "replicas × Maximum Pool Size",
                format!("{replicas} × {per_pod} = {wanted}"),
            )
            .from("workload and connection string"),
        );
        let manifest = manifest_limit(f);
        // A login's numbers are the server's own: they win over what a manifest says.
        let limit = match &f.database {
            Probe::Observed(DbObservation::Connected(d)) => {
                let available = i64::from(d.max_connections) - i64::from(d.reserved_connections);
                if let Ok(m) = &manifest
                    && m.available != available
                {
                    ev.push(
                        Evidence::new("manifest", m.evidence.value.clone())
                            .from("database workload manifest (the running server's settings win)"),
                    );
                }
                ServerLimit {
                    available,
                    evidence: Evidence::new(
                        "server",
                        format!(
                            "max_connections {} − superuser_reserved_connections {} = {available}; {} in use now",
                            d.max_connections, d.reserved_connections, d.current_connections
                        ),
                    )
                    .from("pg_settings, pg_stat_activity"),
                }
            }
            other => match manifest {
                Ok(m) => m,
                Err(why) => {
                    let session = match other {
                        Probe::Observed(_) => "the login failed (see database.login)".to_owned(),
                        _ => "there is no database session".to_owned(),
                    };
                    return Finding::skip(format!(
                        "max_connections is not known: {session}, and {why}"
                    ))
                    .with_all(ev);
                }
            },
        };
        let available = limit.available;
        ev.push(limit.evidence);
        if let Some(why) = v.not_in_effect() {
            ev.push(Evidence::new(
                "Elsa and this database",
                format!("configured, but not in use: {why}"),
            ));
        }
        if wanted > available {
            return Finding::problem(
                "exceeds",
                format!(
                    "the pools of {count} may open {wanted} connections; the server allows {available}"
                ),
            )
            .with_all(ev);
        }
        Finding::pass(format!(
            "{wanted} pooled connections at most, within {available}"
        ))
        .with_all(ev)
    })
}

pub const DB_STORAGE: CheckImpl = CheckImpl {
    id: "production.db-storage",
    needs: &[
        FactKey::Workloads,
        FactKey::ConfigSources,
        FactKey::Services,
        FactKey::PodFiles,
        FactKey::DbPods,
    ],
    causes: &[
        "no-volume",
        "ephemeral-volume",
        "pg18-mount-path",
        "host-path",
        "unpinned-image",
    ],
    run: db_storage,
};

/// Where the official `postgres` image keeps its data before 18.
const PG_DATA_LEGACY: &str = "/var/lib/postgresql/data";

/// The pod spec the in-cluster PostgreSQL runs with: a pod's, or its workload's template.
struct DbSubject<'a> {
    /// `pod/x` or `statefulset/x`.
    name: String,
    pod: Option<&'a str>,
    spec: &'a k8s_openapi::api::core::v1::PodSpec,
    /// volumeClaimTemplates of the owning StatefulSet (their volumes are PVCs in the pods).
    claim_templates: Vec<String>,
}

/// Whether `path` is `dir` or below it.
fn under(path: &str, dir: &str) -> bool {
    let dir = dir.trim_end_matches('/');
    path == dir || path.starts_with(&format!("{dir}/"))
}

/// The PostgreSQL major version of an official `postgres` image: `18` for `postgres:18.1`,
/// `postgres:18-alpine`; `latest` and untagged count as today's latest (18). `None` for other
/// images or tags.
fn official_pg_major(image: &str) -> Option<u32> {
    let (repo, tag) = elsa::split_image(image);
    let last = repo.rsplit('/').next().unwrap_or(repo);
    if last != "postgres" || repo.contains("bitnami") {
        return None;
    }
    match tag {
        None | Some("latest") if !image.contains('@') => Some(18),
        None | Some("latest") => None,
        Some(t) => t
            .split(['.', '-'])
            .next()
            .and_then(|m| m.parse::<u32>().ok()),
    }
}

/// The PostgreSQL container of a pod spec: the one whose image says PostgreSQL, else the one
/// listening on 5432, else the first.
fn pg_container(
    spec: &k8s_openapi::api::core::v1::PodSpec,
) -> Option<&k8s_openapi::api::core::v1::Container> {
    let looks_pg = |c: &&k8s_openapi::api::core::v1::Container| {
        c.image.as_deref().is_some_and(|i| {
            let (repo, _) = elsa::split_image(i);
            let last = repo.rsplit('/').next().unwrap_or(repo).to_ascii_lowercase();
            last.contains("postgres") || last.contains("postgis") || last.contains("timescale")
        })
    };
    spec.containers
        .iter()
        .find(looks_pg)
        .or_else(|| {
            spec.containers
                .iter()
                .find(|c| c.ports.iter().flatten().any(|p| p.container_port == 5432))
        })
        .or_else(|| spec.containers.first())
}

fn db_storage(f: &Facts) -> Finding {
    let (svc, subject, unused) = match db_workload(f) {
        Ok(x) => x,
        Err(finding) => return finding,
    };
    let finding = judge_storage(&svc, &subject);
    match unused {
        Some(why) => finding.with(Evidence::new("Elsa and this database", why)),
        None => finding,
    }
}

/// The in-cluster PostgreSQL behind the connection string's Service: its Service's name, the
/// pod spec it runs with (a pod's when the pods were listed, else its workload's template:
/// Service selector ⊆ template labels), and, when Elsa does not use that database (yet), why.
/// `Err`: the finding to report when there is none to look at.
fn db_workload(f: &Facts) -> Result<(String, DbSubject<'_>, Option<String>), Finding> {
    let (host, unused) = match db_host(f) {
        Ok(h) => h,
        Err(why) => return Err(Finding::skip(format!("database host not known: {why}"))),
    };
    let ns = f.scope.namespace.as_str();
    let Some((svc, svc_ns)) = crate::domain::service_host::service_of(&host.host, ns) else {
        return Err(Finding::skip(format!(
            "{} names no Service (an external database): its storage is looked after where it runs",
            host.host
        )));
    };
    let service = (svc_ns == ns)
        .then(|| {
            f.services
                .observed()
                .and_then(|l| l.iter().find(|s| s.metadata.name.as_deref() == Some(&svc)))
        })
        .flatten();
    if svc_ns == ns && service.is_none() && f.services.observed().is_some() {
        return Err(Finding::skip(format!(
            "no Service {svc} in this namespace — see network.service"
        )));
    }
    let selector = service.and_then(|s| s.spec.as_ref()?.selector.as_ref());
    if service.is_some() && selector.is_none_or(|s| s.is_empty()) {
        return Err(Finding::skip(format!(
            "Service {svc} has no selector: the database behind it is not a pod of this cluster's controllers"
        )));
    }
    // The owning workload, from the workloads already listed: template labels ⊇ selector.
    let matches = |labels: Option<&std::collections::BTreeMap<String, String>>| {
        selector
            .is_some_and(|sel| labels.is_some_and(|l| sel.iter().all(|(k, v)| l.get(k) == Some(v))))
    };
    let deployments = f.deployments.observed().map(Vec::as_slice).unwrap_or(&[]);
    let statefulsets = f.statefulsets.observed().map(Vec::as_slice).unwrap_or(&[]);
    let owner_sts = statefulsets.iter().find(|s| {
        matches(
            s.spec
                .as_ref()
                .and_then(|sp| sp.template.metadata.as_ref())
                .and_then(|m| m.labels.as_ref()),
        )
    });
    let owner_deploy = deployments.iter().find(|d| {
        matches(
            d.spec
                .as_ref()
                .and_then(|sp| sp.template.metadata.as_ref())
                .and_then(|m| m.labels.as_ref()),
        )
    });
    let claim_templates: Vec<String> = owner_sts
        .and_then(|s| s.spec.as_ref()?.volume_claim_templates.as_ref())
        .map(|t| t.iter().filter_map(|c| c.metadata.name.clone()).collect())
        .unwrap_or_default();
    let pods = f.db_pods.observed().map(Vec::as_slice).unwrap_or(&[]);
    let subject = if let Some(p) = pods.iter().find(|p| p.spec.is_some()) {
        p.spec.as_ref().map(|spec| DbSubject {
            name: format!("pod/{}", p.metadata.name.as_deref().unwrap_or("")),
            pod: p.metadata.name.as_deref(),
            spec,
            claim_templates: claim_templates.clone(),
        })
    } else if let Some(s) = owner_sts {
        s.spec
            .as_ref()
            .and_then(|sp| sp.template.spec.as_ref())
            .map(|spec| DbSubject {
                name: format!("statefulset/{}", s.metadata.name.as_deref().unwrap_or("")),
                pod: None,
                spec,
                claim_templates: claim_templates.clone(),
            })
    } else {
        owner_deploy.and_then(|d| {
            d.spec
                .as_ref()
                .and_then(|sp| sp.template.spec.as_ref())
                .map(|spec| DbSubject {
                    name: format!("deployment/{}", d.metadata.name.as_deref().unwrap_or("")),
                    pod: None,
                    spec,
                    claim_templates: Vec::new(),
                })
        })
    };
    let Some(subject) = subject else {
        return Err(match &f.db_pods {
            Probe::Observed(_) => Finding::unknown(
                None,
                format!("Service {svc} selects no pods, and no workload here matches its selector"),
            ),
            other => super::not_observed(other, "the PostgreSQL pods"),
        });
    };
    Ok((svc, subject, unused))
}

/// The database host of the effective connection string, and, when Elsa does not use that
/// database (yet), why: the PostgreSQL a deployment means to use deserves persistent storage
/// before the provider is fixed.
fn db_host(f: &Facts) -> Result<(npgsql::HostPort, Option<String>), String> {
    let (conn, unused) = match crate::model::intended_database(f) {
        Ok(plan) => (
            plan.conn,
            f.effective()
                .ok()
                .and_then(|v| v.not_in_effect())
                .map(|why| format!("configured, but not in use: {why}")),
        ),
        // No login of the app's to reproduce (a missing Secret key, a source this user may not
        // read), but the host it names is still the PostgreSQL this deployment means.
        Err(why) => {
            let configured = f.effective().ok().and_then(|v| {
                let (_, s) = v.configured_connection().ok()?;
                npgsql::parse(s.value.expose()).ok()
            });
            match configured {
                Some(conn) => (conn, Some(format!("configured, but not in use: {why}"))),
                None => return Err(why),
            }
        }
    };
    conn.hosts()
        .into_iter()
        .next()
        .map(|h| (h, unused))
        .ok_or_else(|| "the connection string names no host — see config.connection-string".into())
}

fn judge_storage(svc: &str, s: &DbSubject<'_>) -> Finding {
    let Some(c) = pg_container(s.spec) else {
        return Finding::unknown(None, format!("{} has no containers", s.name));
    };
    let image = c.image.clone().unwrap_or_default();
    let mut evidence = vec![
        Evidence::new("PostgreSQL", format!("{} behind Service {svc}", s.name)),
        Evidence::new("image", image.clone()).from(format!("container {}", c.name)),
    ];
    let mounts: Vec<&k8s_openapi::api::core::v1::VolumeMount> =
        c.volume_mounts.iter().flatten().collect();
    let major = official_pg_major(&image);
    let pgdata = c
        .env
        .iter()
        .flatten()
        .find(|e| e.name == "PGDATA")
        .and_then(|e| e.value.clone());
    let bitnami = image.contains("bitnami/postgresql");
    let data_dir = pgdata.clone().unwrap_or_else(|| match major {
        Some(m) if m >= 18 => format!("/var/lib/postgresql/{m}/docker"),
        _ if bitnami => "/bitnami/postgresql/data".to_owned(),
        _ => PG_DATA_LEGACY.to_owned(),
    });
    evidence.push(
        Evidence::new("data directory", data_dir.clone()).from(if pgdata.is_some() {
            "PGDATA"
        } else {
            "the image's default"
        }),
    );
    // A volume where images before 18 kept their data, on an 18+ image (ELSA-FACTS §3).
    let legacy_on_18 = major.filter(|m| *m >= 18).and(
        mounts
            .iter()
            .find(|mt| mt.mount_path.trim_end_matches('/') == PG_DATA_LEGACY),
    );
    // The mount that holds the data directory: the deepest one above it; on 18+ with the old
    // path, the volume meant for the data is judged as such.
    let data_mount = mounts
        .iter()
        .filter(|m| under(&data_dir, &m.mount_path))
        .max_by_key(|m| m.mount_path.len())
        .or(legacy_on_18);
    let mut problems: Vec<(&'static str, String)> = Vec::new();
    match data_mount {
        None => problems.push((
            "no-volume",
            format!("no volume holds {data_dir}: the data lives in the container's own filesystem and is lost with the container"),
        )),
        Some(m) => {
            let volume = s
                .spec
                .volumes
                .iter()
                .flatten()
                .find(|v| v.name == m.name);
            let kind = match volume {
                Some(v) if v.persistent_volume_claim.is_some() => format!(
                    "persistentVolumeClaim {}",
                    v.persistent_volume_claim
                        .as_ref()
                        .map(|p| p.claim_name.as_str())
                        .unwrap_or_default()
                ),
                Some(v) if v.empty_dir.is_some() => {
                    problems.push((
                        "ephemeral-volume",
                        format!("{} is an emptyDir: the data is deleted whenever the pod is deleted, evicted or rescheduled", m.name),
                    ));
                    "emptyDir".to_owned()
                }
                Some(v) if v.ephemeral.is_some() => {
                    problems.push((
                        "ephemeral-volume",
                        format!("{} is a generic ephemeral volume: its claim is deleted with the pod", m.name),
                    ));
                    "ephemeral".to_owned()
                }
                Some(v) if v.host_path.is_some() => {
                    problems.push((
                        "host-path",
                        format!("{} is a hostPath: the data stays on one node, and a pod scheduled elsewhere starts empty", m.name),
                    ));
                    "hostPath".to_owned()
                }
                Some(_) => "a volume (not emptyDir)".to_owned(),
                None if s.claim_templates.contains(&m.name) => {
                    format!("volumeClaimTemplate {}", m.name)
                }
                None => format!("volume {} (not declared in the spec)", m.name),
            };
            evidence.push(Evidence::new(
                "data volume",
                format!("{} at {}: {kind}", m.name, m.mount_path),
            ));
        }
    }
    if let (Some(m), Some(legacy)) = (major, legacy_on_18) {
        problems.push((
            "pg18-mount-path",
            format!(
                "PostgreSQL {m}{} with a volume at {PG_DATA_LEGACY} ({}): from 18 the official image expects the volume at /var/lib/postgresql and refuses to start with one at {PG_DATA_LEGACY}",
                if elsa::split_image(&image).1.is_none_or(|t| t == "latest") {
                    " (what `latest` is today)"
                } else {
                    ""
                },
                legacy.name
            ),
        ));
    }
    let digest = image.contains("@sha256:");
    match elsa::split_image(&image).1 {
        _ if digest => evidence.push(Evidence::new("image pinned", "by digest")),
        None => problems.push((
            "unpinned-image",
            format!("the image {image} has no tag, which means `latest`: a restart can bring a new major version"),
        )),
        Some("latest") => problems.push((
            "unpinned-image",
            format!("the image {image} follows `latest`: a restart can bring a new major version"),
        )),
        Some(tag) => evidence.push(Evidence::new(
            "image pinned",
            format!("tag {tag} (a digest would pin it exactly)"),
        )),
    }
    let mut finding = if problems.is_empty() {
        Finding::pass(format!(
            "PostgreSQL behind Service {svc} keeps its data on a persistent volume and pins its image"
        ))
    } else {
        let order = DB_STORAGE.causes;
        problems.sort_by_key(|(c, _)| order.iter().position(|o| o == c).unwrap_or(usize::MAX));
        let message = problems
            .iter()
            .map(|(_, m)| m.as_str())
            .collect::<Vec<_>>()
            .join("; ");
        Finding::problem(problems[0].0, message)
    };
    finding = finding
        .with_all(evidence)
        .var("service", svc)
        .var("image", image);
    if let Some(p) = s.pod {
        finding = finding.var("pod", p);
    }
    finding
}

#[cfg(test)]
mod db_storage_tests {
    use super::*;
    use crate::checks::Outcome;
    use crate::checks::test_support::{deployment, with_elsa_and_postgres};

    /// Elsa 3.5 on PostgreSQL at `host`, plus a postgres Deployment with the given image and
    /// data volume, and its Service.
    fn facts(host: &str, pg_image: &str, volume: serde_json::Value, mount: &str) -> Facts {
        let mut elsa = deployment("elsa-server", "elsaworkflows/elsa-server-v3-5:3.5.3", 1);
        elsa["spec"]["template"]["spec"]["containers"][0]["env"] = serde_json::json!([
            {"name": "DatabaseProvider", "value": "PostgreSql"},
            {"name": "ConnectionStrings__PostgreSql",
             "value": format!("Host={host};Database=elsa;Username=elsa;Password=pw")}
        ]);
        let mut pg = deployment("postgres", pg_image, 1);
        pg["spec"]["template"]["spec"]["containers"][0]["volumeMounts"] =
            serde_json::json!([{"name": "data", "mountPath": mount}]);
        let mut vol = volume;
        vol["name"] = serde_json::json!("data");
        pg["spec"]["template"]["spec"]["volumes"] = serde_json::json!([vol]);
        with_elsa_and_postgres(elsa, pg)
    }

    fn pvc() -> serde_json::Value {
        serde_json::json!({"persistentVolumeClaim": {"claimName": "pg-data"}})
    }

    #[test]
    fn a_pvc_and_a_pinned_tag_pass() {
        let f = facts("postgres", "postgres:16", pvc(), "/var/lib/postgresql/data");
        let r = db_storage(&f);
        assert_eq!(r.outcome, Outcome::Pass, "{r:?}");
        assert!(
            r.evidence
                .iter()
                .any(|e| e.value.contains("persistentVolumeClaim pg-data"))
        );
    }

    #[test]
    fn the_official_manifest_emptydir_and_latest_are_reported() {
        let f = facts(
            "postgres",
            "postgres:latest",
            serde_json::json!({"emptyDir": {}}),
            "/var/lib/postgresql/data",
        );
        let r = db_storage(&f);
        assert_eq!(
            (r.outcome, r.cause),
            (Outcome::Problem, Some("ephemeral-volume"))
        );
        assert!(r.message.contains("emptyDir"), "{}", r.message);
        assert!(r.message.contains("/var/lib/postgresql"), "{}", r.message);
        assert!(r.message.contains("latest"), "{}", r.message);
    }

    #[test]
    fn postgres_18_with_the_old_mount_path_is_the_pitfall() {
        let f = facts(
            "postgres",
            "postgres:18.1",
            pvc(),
            "/var/lib/postgresql/data",
        );
        let r = db_storage(&f);
        assert_eq!(r.cause, Some("pg18-mount-path"), "{r:?}");
        assert!(r.message.contains("refuses to start"), "{}", r.message);
        let f = facts("postgres", "postgres:18.1", pvc(), "/var/lib/postgresql");
        assert_eq!(db_storage(&f).outcome, Outcome::Pass);
        let f = facts("postgres", "postgres:17", pvc(), "/var/lib/postgresql/data");
        assert_eq!(db_storage(&f).outcome, Outcome::Pass);
    }

    #[test]
    fn an_untagged_image_is_unpinned_and_a_digest_is_best() {
        let f = facts(
            "postgres",
            "bitnami/postgresql",
            pvc(),
            "/bitnami/postgresql",
        );
        assert_eq!(db_storage(&f).cause, Some("unpinned-image"));
        let f = facts(
            "postgres",
            "postgres@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
            pvc(),
            "/var/lib/postgresql/data",
        );
        let r = db_storage(&f);
        assert_eq!(r.outcome, Outcome::Pass, "{r:?}");
        assert!(r.evidence.iter().any(|e| e.value == "by digest"));
    }

    #[test]
    fn no_volume_and_host_path_are_reported() {
        let f = facts("postgres", "postgres:16", pvc(), "/srv/other");
        assert_eq!(db_storage(&f).cause, Some("no-volume"));
        let f = facts(
            "postgres",
            "postgres:16",
            serde_json::json!({"hostPath": {"path": "/data/pg"}}),
            "/var/lib/postgresql/data",
        );
        assert_eq!(db_storage(&f).cause, Some("host-path"));
    }

    #[test]
    fn pods_observed_take_precedence_over_the_template() {
        let mut f = facts("postgres", "postgres:16", pvc(), "/var/lib/postgresql/data");
        f.db_pods = Probe::Observed(
            serde_json::from_value(serde_json::json!([{
                "metadata": {"name": "postgres-0", "labels": {"app": "postgres"}},
                "spec": {
                    "containers": [{"name": "postgres", "image": "postgres:latest",
                                    "volumeMounts": [{"name": "data", "mountPath": "/var/lib/postgresql"}]}],
                    "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": "data-postgres-0"}}]
                }
            }]))
            .expect("pods"),
        );
        let r = db_storage(&f);
        assert_eq!(r.cause, Some("unpinned-image"), "{r:?}");
        assert_eq!(r.vars.fill("{pod}"), "postgres-0");
    }

    #[test]
    fn an_external_host_is_skipped_with_the_reason() {
        let f = facts(
            "elsa.abc123.eu-west-1.rds.amazonaws.com",
            "postgres:16",
            pvc(),
            "/var/lib/postgresql/data",
        );
        let r = db_storage(&f);
        assert_eq!(r.outcome, Outcome::Skip);
        assert!(r.message.contains("external database"), "{}", r.message);
        let f = facts(
            "pg-missing",
            "postgres:16",
            pvc(),
            "/var/lib/postgresql/data",
        );
        let r = db_storage(&f);
        assert_eq!(r.outcome, Outcome::Skip);
        assert!(r.message.contains("see network.service"));
    }

    #[test]
    fn pg_major_reads_official_tags_only() {
        assert_eq!(official_pg_major("postgres:16-alpine"), Some(16));
        assert_eq!(
            official_pg_major("docker.io/library/postgres:18.1"),
            Some(18)
        );
        assert_eq!(official_pg_major("postgres"), Some(18));
        assert_eq!(official_pg_major("bitnami/postgresql:17"), None);
        assert_eq!(
            official_pg_major("ghcr.io/cloudnative-pg/postgresql:16"),
            None
        );
    }
}

#[cfg(test)]
mod inline_secret_tests {
    use super::*;
    use crate::checks::test_support::{deployment, with_deployments};

    #[test]
    fn an_init_containers_literal_password_is_found_and_named() {
        let mut d = deployment("elsa-server", "elsaworkflows/elsa-server-v3-5:3.5.3", 1);
        d["spec"]["template"]["spec"]["initContainers"] = serde_json::json!([{
            "name": "migrations", "image": "elsaworkflows/elsa-server:latest",
            "env": [{"name": "POSTGRES_PASSWORD", "value": "hunter2-but-longer"}]
        }]);
        let f = inline_secrets(&with_deployments(serde_json::json!([d])));
        assert_eq!(f.cause, Some("env-literal"), "{}", f.message);
        let e = f.evidence.first().expect("evidence");
        assert_eq!(
            e.label,
            "initContainer migrations: POSTGRES_PASSWORD (env[0])"
        );
        assert!(!format!("{f:?}").contains("hunter2"), "never shown");
    }
}

#[cfg(test)]
mod pool_tests {
    use super::*;
    use crate::checks::Outcome;
    use crate::checks::test_support::{deployment, with_elsa_and_postgres};
    use crate::facts::ConfigMapData;

    /// Elsa 3.5 on PostgreSQL with `replicas` and `Maximum Pool Size` `pool`, a postgres
    /// Deployment with `args`, its Service, and no database session (as in lint).
    fn facts(replicas: i32, pool: u32, args: serde_json::Value) -> Facts {
        let mut elsa = deployment(
            "elsa-server",
            "elsaworkflows/elsa-server-v3-5:3.5.3",
            replicas,
        );
        elsa["spec"]["template"]["spec"]["containers"][0]["env"] = serde_json::json!([
            {"name": "DatabaseProvider", "value": "PostgreSql"},
            {"name": "Runtime__DistributedLocking__Provider", "value": "Postgres"},
            {"name": "ConnectionStrings__PostgreSql",
             "value": format!("Host=postgres;Database=elsa;Username=elsa;Password=pw;Maximum Pool Size={pool}")}
        ]);
        let mut pg = deployment("postgres", "postgres:16", 1);
        pg["spec"]["template"]["spec"]["containers"][0]["args"] = args;
        let mut f = with_elsa_and_postgres(elsa, pg);
        f.database = Probe::NotAttempted("lint".into());
        f.autoscalers = Probe::Observed(Vec::new());
        f
    }

    fn evidence(r: &Finding) -> String {
        r.evidence
            .iter()
            .map(|e| {
                format!(
                    "{}: {} ({})",
                    e.label,
                    e.value,
                    e.source.as_deref().unwrap_or("")
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    #[test]
    fn max_connections_from_the_database_args_without_a_login() {
        let f = facts(3, 40, serde_json::json!(["-c", "max_connections=100"]));
        let r = pool(&f);
        assert_eq!(
            (r.outcome, r.cause),
            (Outcome::Problem, Some("exceeds")),
            "{r:?}"
        );
        let ev = evidence(&r);
        assert!(ev.contains("3 × 40 = 120"), "{ev}");
        assert!(
            ev.contains("max_connections 100 (deployment/postgres container postgres `-c max_connections=100`) − superuser_reserved_connections 3 (PostgreSQL's default) = 97"),
            "{ev}"
        );
        let f = facts(2, 40, serde_json::json!(["--max_connections=100"]));
        assert_eq!(pool(&f).outcome, Outcome::Pass);
    }

    #[test]
    fn max_connections_from_a_mounted_postgresql_conf() {
        let mut f = facts(
            2,
            40,
            serde_json::json!(["-c", "config_file=/etc/postgresql/postgresql.conf"]),
        );
        let Probe::Observed(d) = &mut f.deployments else {
            unreachable!()
        };
        let pg: &mut k8s_openapi::api::apps::v1::Deployment = &mut d[1];
        let spec = pg
            .spec
            .as_mut()
            .expect("test value")
            .template
            .spec
            .as_mut()
            .expect("test value");
        spec.volumes = Some(vec![
            serde_json::from_value(serde_json::json!(
                {"name": "conf", "configMap": {"name": "postgres-conf"}}
            ))
            .expect("test value"),
        ]);
        spec.containers[0].volume_mounts = Some(vec![
            serde_json::from_value(
                serde_json::json!({"name": "conf", "mountPath": "/etc/postgresql"}),
            )
            .expect("test value"),
        ]);
        let conf = "# max_connections = 10\nmax_connections = 50   # change requires restart\n";
        f.config_maps.insert(
            "postgres-conf".into(),
            Probe::Observed(ConfigMapData {
                data: [("postgresql.conf".to_owned(), conf.to_owned())].into(),
                ..Default::default()
            }),
        );
        let r = pool(&f);
        assert_eq!(r.cause, Some("exceeds"), "{r:?}");
        let ev = evidence(&r);
        assert!(
            ev.contains("max_connections 50 (ConfigMap postgres-conf key postgresql.conf line 2, mounted at /etc/postgresql/postgresql.conf)"),
            "{ev}"
        );
        // The command line wins over the file.
        f.deployments = {
            let Probe::Observed(mut d) = f.deployments.clone() else {
                unreachable!()
            };
            d[1].spec
                .as_mut()
                .expect("test value")
                .template
                .spec
                .as_mut()
                .expect("test value")
                .containers[0]
                .args = Some(vec!["-c".into(), "max_connections=300".into()]);
            Probe::Observed(d)
        };
        assert_eq!(pool(&f).outcome, Outcome::Pass, "{:?}", pool(&f));
    }

    #[test]
    fn an_autoscalers_max_replicas_counts_for_replicas_locking_and_pool() {
        let mut f = facts(1, 20, serde_json::json!(["-c", "max_connections=100"]));
        assert_eq!(pool(&f).outcome, Outcome::Pass);
        assert_eq!(replicas(&f).outcome, Outcome::Pass);
        f.autoscalers = Probe::Observed(vec![
            serde_json::from_value(serde_json::json!({
                "metadata": {"name": "elsa-server", "namespace": "elsa"},
                "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "elsa-server"},
                         "minReplicas": 2, "maxReplicas": 6}
            }))
            .expect("test value"),
        ]);
        let r = pool(&f);
        assert_eq!(r.cause, Some("exceeds"), "{r:?}");
        assert!(
            r.message.contains("HorizontalPodAutoscaler elsa-server"),
            "{}",
            r.message
        );
        let ev = evidence(&r);
        assert!(ev.contains("6 × 20 = 120"), "{ev}");
        assert!(
            ev.contains("minReplicas 2, maxReplicas 6 (HorizontalPodAutoscaler elsa-server)"),
            "{ev}"
        );
        let r = replicas(&f);
        assert_eq!(r.cause, Some("multi-node-needs"), "{r:?}");
        assert!(
            r.message
                .starts_with("up to 6 replicas (HorizontalPodAutoscaler elsa-server)"),
            "{}",
            r.message
        );
        // 3.5 with the Postgres lock: locking passes, but judged for 6 replicas.
        assert_eq!(locking(&f).outcome, Outcome::Pass);
        let mut env = f.clone();
        let Probe::Observed(d) = &mut env.deployments else {
            unreachable!()
        };
        d[0].spec
            .as_mut()
            .expect("test value")
            .template
            .spec
            .as_mut()
            .expect("test value")
            .containers[0]
            .env
            .as_mut()
            .expect("test value")
            .remove(1);
        let r = locking(&env);
        assert_eq!(r.cause, Some("local-lock"), "{r:?}");
        assert!(r.message.contains("up to 6 replicas"), "{}", r.message);
    }

    #[test]
    fn a_login_wins_and_nothing_known_is_a_skip() {
        let mut f = facts(3, 40, serde_json::json!(["-c", "max_connections=100"]));
        f.database = Probe::Observed(crate::facts::DbObservation::Connected(
            serde_json::from_value(serde_json::json!({
                "server_version": "16.4", "current_user": "elsa", "database": "elsa",
                "max_connections": 500, "reserved_connections": 3, "current_connections": 4,
                "schema_exists": true, "can_create_in_database": true,
                "can_create_in_schema": true, "schema_usage": true, "history_exists": true,
                "client_addr": null, "tables": [], "elsewhere": [], "history": []
            }))
            .expect("db facts"),
        ));
        let r = pool(&f);
        assert_eq!(r.outcome, Outcome::Pass, "{r:?}");
        let ev = evidence(&r);
        assert!(
            ev.contains("max_connections 500 − superuser_reserved_connections 3 = 497"),
            "{ev}"
        );
        assert!(ev.contains("the running server's settings win"), "{ev}");
        let f = facts(3, 40, serde_json::json!(["-c", "shared_buffers=1GB"]));
        let r = pool(&f);
        assert_eq!(r.outcome, Outcome::Skip, "{r:?}");
        assert!(
            r.message.contains("sets no max_connections"),
            "{}",
            r.message
        );
    }
}
