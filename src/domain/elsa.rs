//! What elsadoctor knows about Elsa itself: image names, flavours and versions, and how the
//! server workload is recognised among a namespace's workloads (ELSA-FACTS §1, §4).
//!
//! Pure functions only. Later issues add provider keys, tables and migration ids here, so this
//! file stays the single source of truth for "what real Elsa does".

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::domain::workload::Workload;

/// Which Elsa host application an image runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Flavor {
    /// `Elsa.Server.Web` (images `elsaworkflows/elsa-server-v3*`, or a local `elsa-server`).
    ServerWeb,
    /// `Elsa.ServerAndStudio.Web` (`elsaworkflows/elsa-server-and-studio-v3*`, up to 3.7).
    ServerAndStudio,
    /// `Elsa.ModularServer.Web` (CShells), what the server-and-studio image builds from 3.8.
    ModularServer,
    /// Elsa Studio alone: the designer UI, not a workflow server.
    Studio,
    /// Not an official image: a custom build.
    Custom,
}

impl fmt::Display for Flavor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Flavor::ServerWeb => "Elsa.Server.Web",
            Flavor::ServerAndStudio => "Elsa.ServerAndStudio.Web",
            Flavor::ModularServer => "Elsa.ModularServer.Web",
            Flavor::Studio => "Elsa Studio",
            Flavor::Custom => "custom build",
        })
    }
}

/// An Elsa version as far as an image reveals it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ElsaVersion {
    pub major: u32,
    pub minor: u32,
    pub patch: Option<u32>,
}

impl ElsaVersion {
    pub const fn new(major: u32, minor: u32) -> Self {
        Self {
            major,
            minor,
            patch: None,
        }
    }

    /// `(major, minor)`, for range comparisons.
    pub fn mm(&self) -> (u32, u32) {
        (self.major, self.minor)
    }
}

impl fmt::Display for ElsaVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.patch {
            Some(p) => write!(f, "{}.{}.{}", self.major, self.minor, p),
            None => write!(f, "{}.{}", self.major, self.minor),
        }
    }
}

/// What an image reference says about Elsa.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageInfo {
    pub flavor: Flavor,
    pub version: Option<ElsaVersion>,
    /// The repository's last path component, e.g. `elsa-server-v3-5`.
    pub name: String,
    pub tag: Option<String>,
    /// Published by the Elsa project (`elsaworkflows/…`) or the official manifests' local build.
    pub official: bool,
}

/// A container image reference split into repository path and tag (digest dropped).
pub fn split_image(image: &str) -> (&str, Option<&str>) {
    let no_digest = image.split('@').next().unwrap_or(image);
    // A `:` after the last `/` is a tag; one before it is a registry port.
    let last_slash = no_digest.rfind('/').map_or(0, |i| i + 1);
    match no_digest[last_slash..].rfind(':') {
        Some(i) => (
            &no_digest[..last_slash + i],
            Some(&no_digest[last_slash + i + 1..]),
        ),
        None => (no_digest, None),
    }
}

/// Recognises an Elsa image. `None` when the image is not Elsa at all.
pub fn classify_image(image: &str) -> Option<ImageInfo> {
    let (repo, tag) = split_image(image.trim());
    let repo_lc = repo.to_ascii_lowercase();
    let mut parts = repo_lc.rsplit('/');
    let name = parts.next().unwrap_or("").to_owned();
    let owner = parts.next();
    let (flavor, rest) = if let Some(rest) = name.strip_prefix("elsa-server-and-studio") {
        (Flavor::ServerAndStudio, rest)
    } else if let Some(rest) = name.strip_prefix("elsa-server") {
        (Flavor::ServerWeb, rest)
    } else if let Some(rest) = name.strip_prefix("elsa-studio") {
        (Flavor::Studio, rest)
    } else if name.contains("elsa") {
        (Flavor::Custom, "")
    } else {
        return None;
    };
    // Official: published under elsaworkflows/, or the bare local name the official manifests build.
    let official = flavor != Flavor::Custom
        && (owner == Some("elsaworkflows") || (owner.is_none() && (rest.is_empty())));
    let known_suffix = rest.is_empty() || rest.starts_with("-v3");
    let mut version = version_from_tag(tag).or_else(|| version_from_name_suffix(rest));
    let flavor = if !official || !known_suffix {
        Flavor::Custom
    } else {
        flavor
    };
    if flavor == Flavor::Custom {
        version = version_from_tag(tag);
    }
    // From 3.8 the server-and-studio image is built from Elsa.ModularServer.Web.
    let flavor = match (flavor, version) {
        (Flavor::ServerAndStudio, Some(v)) if v.mm() >= (3, 8) => Flavor::ModularServer,
        (f, _) => f,
    };
    Some(ImageInfo {
        flavor,
        version,
        name,
        tag: tag.map(str::to_owned),
        official,
    })
}

/// `-v3-5` → 3.5, `-v3-3-0-preview` → 3.3, `-v3` → unknown (the 2023–24 main builds).
pub fn version_from_name_suffix(rest: &str) -> Option<ElsaVersion> {
    let nums: Vec<u32> = rest
        .strip_prefix("-v")?
        .split('-')
        .map_while(|p| p.parse().ok())
        .collect();
    match nums.as_slice() {
        [major, minor, patch, ..] if *patch > 0 => Some(ElsaVersion {
            major: *major,
            minor: *minor,
            patch: Some(*patch),
        }),
        [major, minor, ..] => Some(ElsaVersion::new(*major, *minor)),
        _ => None,
    }
}

/// `3.5.3`, `v3.5.3`, `3.8.0-rc2` → a version; `latest`, `sha-1a2b3c4` → none.
pub fn version_from_tag(tag: Option<&str>) -> Option<ElsaVersion> {
    let t = tag?.trim_start_matches('v');
    let core = t.split(['-', '+']).next()?;
    let mut it = core.split('.');
    let major: u32 = it.next()?.parse().ok()?;
    let minor: u32 = it.next()?.parse().ok()?;
    let patch = it.next().and_then(|p| p.parse().ok());
    (major == 3).then_some(ElsaVersion {
        major,
        minor,
        patch,
    })
}

/// The version band that decides how Elsa.Server.Web picks its database (ELSA-FACTS §1).
pub fn provider_band(flavor: Flavor, version: Option<ElsaVersion>) -> Option<&'static str> {
    let v = version?.mm();
    Some(match flavor {
        Flavor::ServerWeb if v < (3, 3) => "3.0–3.2: provider fixed at compile time",
        Flavor::ServerWeb if v < (3, 6) => "3.3–3.5: provider chosen by the DatabaseProvider key",
        Flavor::ServerWeb => "3.6+: hard-coded to SQLite; PostgreSQL needs a custom build",
        Flavor::ServerAndStudio => "3.3–3.7: DatabaseProvider key, some stores always SQLite",
        Flavor::ModularServer => "3.8+: chosen by CShells shell features",
        Flavor::Studio | Flavor::Custom => return None,
    })
}

/// Images of databases and brokers that sit beside Elsa and must never be mistaken for it.
const NOT_ELSA: &[&str] = &[
    "postgres",
    "pgbouncer",
    "mysql",
    "mariadb",
    "mssql",
    "redis",
    "rabbitmq",
    "mongo",
];

/// Why a workload is a candidate for "the Elsa server".
pub fn candidate_reason(w: &Workload<'_>) -> Option<String> {
    let images = w.images();
    for image in &images {
        if let Some(info) = classify_image(image)
            && info.flavor != Flavor::Studio
        {
            return Some(format!("image {image}"));
        }
    }
    let is_backing_service = images.iter().any(|i| {
        let (repo, _) = split_image(i);
        let name = repo.rsplit('/').next().unwrap_or(repo).to_ascii_lowercase();
        NOT_ELSA.iter().any(|n| name.contains(n))
    });
    let studio_only = images
        .iter()
        .filter_map(|i| classify_image(i))
        .any(|i| i.flavor == Flavor::Studio);
    if is_backing_service || studio_only {
        return None;
    }
    let says_elsa = |v: &str| {
        let v = v.to_ascii_lowercase();
        v.contains("elsa") && !v.contains("studio")
    };
    for (k, v) in w.labels() {
        if matches!(
            k.as_str(),
            "app"
                | "app.kubernetes.io/name"
                | "app.kubernetes.io/part-of"
                | "app.kubernetes.io/instance"
        ) && says_elsa(v)
        {
            return Some(format!("label {k}={v}"));
        }
    }
    None
}

/// Which Elsa a workload runs, as far as its spec tells.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub flavor: Flavor,
    pub version: Option<ElsaVersion>,
    pub image: String,
    pub container: String,
}

/// Identifies the Elsa container of a workload: the first container whose image is Elsa (a
/// server flavour preferred over Studio). A custom build takes its version from the image tag or
/// the `app.kubernetes.io/version` label.
pub fn identify(w: &Workload<'_>) -> Option<Identity> {
    let spec = w.pod_spec()?;
    let mut found: Vec<(ImageInfo, &str, &str)> = spec
        .containers
        .iter()
        .filter_map(|c| {
            let image = c.image.as_deref()?;
            classify_image(image).map(|i| (i, image, c.name.as_str()))
        })
        .collect();
    found.sort_by_key(|(i, _, _)| i.flavor == Flavor::Studio);
    let (info, image, container) = found.into_iter().next()?;
    let version = info.version.or_else(|| {
        (info.flavor == Flavor::Custom)
            .then(|| {
                version_from_tag(
                    w.labels()
                        .get("app.kubernetes.io/version")
                        .map(String::as_str),
                )
            })
            .flatten()
    });
    Some(Identity {
        flavor: info.flavor,
        version,
        image: image.to_owned(),
        container: container.to_owned(),
    })
}

/// The outcome of looking for the Elsa server workload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selection {
    /// Exactly one: its index in the workload list, and why it was chosen.
    Selected { index: usize, reason: String },
    /// `--deployment NAME` named nothing in the namespace.
    NamedMissing(String),
    /// No workload looks like Elsa.
    None,
    /// Several look like Elsa: indexes and reasons. Never a silent pick.
    Ambiguous(Vec<(usize, String)>),
}

/// Picks the Elsa workload: by name when `hint` is given, else the single candidate.
pub fn select_workload(workloads: &[Workload<'_>], hint: Option<&str>) -> Selection {
    if let Some(name) = hint {
        let (kind_hint, bare) = match name.split_once('/') {
            Some((k, n)) => (Some(k.to_ascii_lowercase()), n),
            None => (None, name),
        };
        return workloads
            .iter()
            .position(|w| {
                w.name() == bare
                    && kind_hint
                        .as_deref()
                        .is_none_or(|k| w.kind().matches_word(k))
            })
            .map_or_else(
                || Selection::NamedMissing(name.to_owned()),
                |index| Selection::Selected {
                    index,
                    reason: "named with --deployment".to_owned(),
                },
            );
    }
    let candidates: Vec<(usize, String)> = workloads
        .iter()
        .enumerate()
        .filter_map(|(i, w)| candidate_reason(w).map(|r| (i, r)))
        .collect();
    match candidates.len() {
        0 => Selection::None,
        1 => {
            let (index, reason) = candidates.into_iter().next().unwrap_or_default();
            Selection::Selected { index, reason }
        }
        _ => Selection::Ambiguous(candidates),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(major: u32, minor: u32) -> Option<ElsaVersion> {
        Some(ElsaVersion::new(major, minor))
    }

    #[test]
    fn splits_registry_port_tag_and_digest() {
        assert_eq!(
            split_image("reg:5000/acme/elsa-server:3.5.1@sha256:ab"),
            ("reg:5000/acme/elsa-server", Some("3.5.1"))
        );
        assert_eq!(split_image("reg:5000/elsa"), ("reg:5000/elsa", None));
    }

    #[test]
    fn recognises_official_images_and_versions() {
        let i = classify_image("elsaworkflows/elsa-server-v3-5:latest").expect("elsa");
        assert_eq!((i.flavor, i.version), (Flavor::ServerWeb, v(3, 5)));
        let i = classify_image("docker.io/elsaworkflows/elsa-server-v3-3-0-preview:sha-1a2b")
            .expect("elsa");
        assert_eq!((i.flavor, i.version), (Flavor::ServerWeb, v(3, 3)));
        let i = classify_image("elsaworkflows/elsa-server-v3:latest").expect("elsa");
        assert_eq!((i.flavor, i.version), (Flavor::ServerWeb, None));
        let i = classify_image("elsaworkflows/elsa-server-v3-5:3.5.3").expect("elsa");
        assert_eq!(i.version.map(|v| v.to_string()), Some("3.5.3".into()));
        let i = classify_image("elsaworkflows/elsa-server-and-studio-v3-5:latest").expect("elsa");
        assert_eq!(i.flavor, Flavor::ServerAndStudio);
        let i = classify_image("elsaworkflows/elsa-server-and-studio-v3:3.8.0-rc2").expect("elsa");
        assert_eq!(i.flavor, Flavor::ModularServer);
        let i = classify_image("elsa-server:latest").expect("local build");
        assert_eq!((i.flavor, i.official), (Flavor::ServerWeb, true));
        let i = classify_image("elsaworkflows/elsa-studio-v3-5:latest").expect("studio");
        assert_eq!(i.flavor, Flavor::Studio);
    }

    #[test]
    fn custom_builds_are_custom_with_tag_version() {
        let i = classify_image("ghcr.io/acme/elsa-server:3.4.2").expect("elsa");
        assert_eq!(
            (i.flavor, i.version),
            (
                Flavor::Custom,
                Some(ElsaVersion {
                    major: 3,
                    minor: 4,
                    patch: Some(2)
                })
            )
        );
        let i = classify_image("acme/my-elsa-host:2024.1").expect("elsa");
        assert_eq!((i.flavor, i.version), (Flavor::Custom, None));
        assert_eq!(classify_image("postgres:16"), None);
    }

    #[test]
    fn version_bands_follow_elsa_facts() {
        assert!(
            provider_band(Flavor::ServerWeb, v(3, 2))
                .expect("band")
                .starts_with("3.0")
        );
        assert!(
            provider_band(Flavor::ServerWeb, v(3, 5))
                .expect("band")
                .contains("DatabaseProvider")
        );
        assert!(
            provider_band(Flavor::ServerWeb, v(3, 6))
                .expect("band")
                .contains("SQLite")
        );
        assert_eq!(provider_band(Flavor::ServerWeb, None), None);
    }
}

// ---------------------------------------------------------------------------------------------
// Configuration knowledge (ELSA-FACTS §1, §4, §6).
// ---------------------------------------------------------------------------------------------

/// The .NET major version an official image runs: 3.0–3.2 on .NET 8, 3.3–3.5 on .NET 9,
/// 3.6+ on .NET 10 (ELSA-FACTS §4 Dockerfiles). It decides, among other things, which
/// connection-string environment prefixes work.
pub fn dotnet_major(flavor: Flavor, version: Option<ElsaVersion>) -> Option<u32> {
    if matches!(flavor, Flavor::Custom | Flavor::Studio) {
        return None;
    }
    let v = version?.mm();
    Some(if v < (3, 3) {
        8
    } else if v < (3, 6) {
        9
    } else {
        10
    })
}

/// The accepted values of `DatabaseProvider` on 3.3–3.5 (the `SqlDatabaseProvider` enum), exact
/// case: `Enum.Parse` without ignoreCase.
pub const PROVIDERS: &[&str] = &[
    "SqlServer",
    "Sqlite",
    "MySql",
    "PostgreSql",
    "Citus",
    "YugabyteDb",
    "Oracle",
    "CockroachDb",
];

/// Providers that speak PostgreSQL through Npgsql; each reads `ConnectionStrings:<same name>`.
pub const POSTGRES_FAMILY: &[&str] = &["PostgreSql", "Citus", "YugabyteDb", "CockroachDb"];

/// How an image chooses its persistence provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProviderRule {
    /// 3.3–3.5 Server.Web / ServerAndStudio: the `DatabaseProvider` key, default `Sqlite`.
    DatabaseProviderKey,
    /// 3.0–3.2 or 3.6+ Server.Web: fixed in code; the stock image cannot use PostgreSQL.
    FixedInCode,
    /// 3.8 ModularServer: CShells shell features.
    ShellFeatures,
}

pub fn provider_rule(flavor: Flavor, version: Option<ElsaVersion>) -> Option<ProviderRule> {
    let v = version?.mm();
    match flavor {
        Flavor::ServerWeb if ((3, 3)..(3, 6)).contains(&v) => {
            Some(ProviderRule::DatabaseProviderKey)
        }
        Flavor::ServerWeb => Some(ProviderRule::FixedInCode),
        // 3.3–3.5 read DatabaseProvider; the 3.6/3.7 previews from main hard-code SQLite
        // (elsa-audit.md row 8; the host was deleted before 3.6.0).
        Flavor::ServerAndStudio if ((3, 3)..(3, 6)).contains(&v) => {
            Some(ProviderRule::DatabaseProviderKey)
        }
        Flavor::ServerAndStudio => Some(ProviderRule::FixedInCode),
        Flavor::ModularServer => Some(ProviderRule::ShellFeatures),
        Flavor::Studio | Flavor::Custom => None,
    }
}

/// The `DatabaseProvider` values a host accepts at a version (the `SqlDatabaseProvider` enum,
/// elsa-audit.md row 6): Server.Web 3.3.0–3.3.1 has five, 3.3.2 adds Oracle, 3.4 adds Citus
/// and YugabyteDb; ServerAndStudio has the first five throughout. Anything else stops the host
/// at start (`Enum.Parse`). An unknown 3.3 patch counts as 3.3.2+.
pub fn accepted_providers(flavor: Flavor, version: Option<ElsaVersion>) -> &'static [&'static str] {
    const BASE: &[&str] = &["SqlServer", "Sqlite", "MySql", "PostgreSql", "CockroachDb"];
    const WITH_ORACLE: &[&str] = &[
        "SqlServer",
        "Sqlite",
        "MySql",
        "PostgreSql",
        "CockroachDb",
        "Oracle",
    ];
    match (flavor, version) {
        (Flavor::ServerWeb, Some(v)) if v.mm() >= (3, 4) => PROVIDERS,
        (Flavor::ServerWeb, Some(v)) if v.mm() == (3, 3) && v.patch.is_some_and(|p| p < 2) => BASE,
        (Flavor::ServerWeb, _) => WITH_ORACLE,
        _ => BASE,
    }
}

/// The `DatabaseProvider` values that put the stores on PostgreSQL through Npgsql, per host and
/// version (elsa-audit.md rows 6, 30): ServerAndStudio configures EF only for PostgreSql (its
/// CockroachDb gives in-memory stores); Server.Web 3.3 has PostgreSql and CockroachDb, 3.4+
/// also Citus and YugabyteDb.
pub fn postgres_providers(flavor: Flavor, version: Option<ElsaVersion>) -> &'static [&'static str] {
    match (flavor, version) {
        (Flavor::ServerAndStudio, _) => &["PostgreSql"],
        (Flavor::ServerWeb, Some(v)) if v.mm() >= (3, 4) => POSTGRES_FAMILY,
        _ => &["PostgreSql", "CockroachDb"],
    }
}

/// Elsa's default PostgreSQL connection string in the image's appsettings.json (3.3–3.5).
pub const DEFAULT_POSTGRES_CONNECTION: &str = "Server=localhost;Username=elsa;Database=elsa;Port=5432;Password=elsa;SSLMode=Prefer;MaxPoolSize=2000;Timeout=60";

/// The keys of the image's own appsettings.json that the checks depend on.
pub fn image_defaults(flavor: Flavor, version: Option<ElsaVersion>) -> serde_json::Value {
    match provider_rule(flavor, version) {
        Some(ProviderRule::DatabaseProviderKey) => {
            let sqlite = if flavor == Flavor::ServerAndStudio {
                "Data Source=elsa.sqlite.db;Cache=Shared;"
            } else {
                "Data Source=App_Data/elsa.sqlite.db;Cache=Shared;"
            };
            serde_json::json!({
                "DatabaseProvider": "Sqlite",
                "ConnectionStrings": {"Sqlite": sqlite, "PostgreSql": DEFAULT_POSTGRES_CONNECTION},
                "Runtime": {"DistributedLocking": {"Provider": "File"}}
            })
        }
        _ => serde_json::json!({}),
    }
}

/// Keys the guide or folklore sets that no Elsa version reads, matched on the configuration key
/// (case-insensitive, by prefix), with the cause id and what to use instead.
pub struct DeadKey {
    pub prefix: &'static str,
    pub cause: &'static str,
    pub instead: &'static str,
}

pub const DEAD_KEYS: &[DeadKey] = &[
    DeadKey {
        prefix: "Elsa:Persistence",
        cause: "guide-keys",
        instead: "3.3–3.5: DatabaseProvider=PostgreSql plus ConnectionStrings__PostgreSql; 3.0–3.2 and 3.6+ stock images cannot switch (custom build)",
    },
    DeadKey {
        prefix: "Elsa:Modules",
        cause: "guide-keys",
        instead: "3.3–3.5: DatabaseProvider=PostgreSql covers every module; other versions need a custom build",
    },
    DeadKey {
        prefix: "Elsa:AutoMigrate",
        cause: "automigrate",
        instead: "nothing: migrations run at startup by default",
    },
    DeadKey {
        prefix: "Persistence:RunMigrations",
        cause: "automigrate",
        instead: "nothing: migrations run at startup by default (RunMigrations is set in code on the EF feature)",
    },
    DeadKey {
        prefix: "REDIS:CONNECTIONSTRING",
        cause: "misnamed",
        instead: "ConnectionStrings__Redis",
    },
    DeadKey {
        prefix: "RABBITMQ:CONNECTIONSTRING",
        cause: "misnamed",
        instead: "ConnectionStrings__RabbitMq",
    },
    DeadKey {
        prefix: "ELSA:RUNTIME:TYPE",
        cause: "misnamed",
        instead: "nothing: the runtime is chosen in code",
    },
    DeadKey {
        prefix: "ELSA:CACHING:TYPE",
        cause: "misnamed",
        instead: "nothing: distributed caching is chosen in code",
    },
    DeadKey {
        prefix: "ConnectionStrings:SqlLite",
        cause: "misnamed",
        instead: "ConnectionStrings__Sqlite",
    },
    DeadKey {
        prefix: "ConnectionStrings:DefaultConnection",
        cause: "misnamed",
        instead: "the provider's own name, e.g. ConnectionStrings__PostgreSql",
    },
];

/// The dead-key entry a configuration key matches.
pub fn dead_key(key: &str) -> Option<&'static DeadKey> {
    let k = key.to_ascii_lowercase();
    DEAD_KEYS.iter().find(|d| {
        let p = d.prefix.to_ascii_lowercase();
        k == p || k.starts_with(&format!("{p}:"))
    })
}

/// HTTP paths an image serves for health, per flavour and version (ELSA-FACTS §4).
pub fn health_paths(
    flavor: Flavor,
    version: Option<ElsaVersion>,
) -> Option<&'static [&'static str]> {
    let v = version?.mm();
    Some(match flavor {
        Flavor::ServerWeb if v >= (3, 8) => &["/", "/health/live", "/health/ready"],
        Flavor::ServerWeb => &["/"],
        Flavor::ServerAndStudio => &["/health"],
        // 3.7.1 and 3.8.0-rc2 map `/` only (elsa-audit.md row 12).
        Flavor::ModularServer => &["/"],
        Flavor::Studio | Flavor::Custom => return None,
    })
}

/// The health path `runtime.health` asks, and whether its answer says more than "Kestrel is up".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HealthProbe {
    pub path: &'static str,
    /// The endpoint runs Elsa's own checks (3.8 `/health/ready`: runtime, workflow stores,
    /// distributed locks). Before 3.8 the endpoint has no checks and answers 200 as soon as
    /// the web server runs, database or not.
    pub checks_stores: bool,
}

/// The endpoint to probe for a flavour and version (ELSA-FACTS §4); `None` when the version is
/// unknown or the flavour's endpoints are not known.
pub fn health_probe(flavor: Flavor, version: Option<ElsaVersion>) -> Option<HealthProbe> {
    let v = version?.mm();
    match flavor {
        Flavor::ServerWeb if v >= (3, 8) => Some(HealthProbe {
            path: "/health/ready",
            checks_stores: true,
        }),
        Flavor::ServerWeb => Some(HealthProbe {
            path: "/",
            checks_stores: false,
        }),
        Flavor::ServerAndStudio => Some(HealthProbe {
            path: "/health",
            checks_stores: false,
        }),
        Flavor::ModularServer | Flavor::Studio | Flavor::Custom => None,
    }
}

/// The sample signing key in 3.8's appsettings.json, which 3.8 refuses outside Development and
/// Demo.
pub const SAMPLE_SIGNING_KEY: &str = "CHANGE_ME_TO_A_SECURE_RANDOM_KEY";

/// The public default keys 3.8 knows, compared case-insensitively (elsa-audit.md row 3): the
/// sample, and the key Server.Web's appsettings.json shipped in 3.0–3.7 (verified at
/// 3.8.0-rc2 ValidateIdentityTokenOptions.cs and 3.7.1 appsettings.json).
pub const KNOWN_SIGNING_KEYS: &[&str] =
    &[SAMPLE_SIGNING_KEY, "sufficiently-large-secret-signing-key"];

/// The port Elsa listens on in its images (.NET 8+ default `ASPNETCORE_HTTP_PORTS=8080`).
pub const HTTP_PORT: i32 = 8080;

#[cfg(test)]
mod config_tests {
    use super::*;

    #[test]
    fn health_probe_follows_the_endpoint_table() {
        let v = |m| Some(ElsaVersion::new(3, m));
        let p = health_probe(Flavor::ServerWeb, v(8)).expect("3.8");
        assert_eq!((p.path, p.checks_stores), ("/health/ready", true));
        let p = health_probe(Flavor::ServerWeb, v(7)).expect("3.7");
        assert_eq!((p.path, p.checks_stores), ("/", false));
        let p = health_probe(Flavor::ServerAndStudio, v(5)).expect("3.5");
        assert_eq!((p.path, p.checks_stores), ("/health", false));
        assert_eq!(health_probe(Flavor::ServerWeb, None), None);
        assert_eq!(health_probe(Flavor::ModularServer, v(8)), None);
    }

    #[test]
    fn runtime_and_rules_follow_the_version_table() {
        let v = |m| Some(ElsaVersion::new(3, m));
        assert_eq!(dotnet_major(Flavor::ServerWeb, v(2)), Some(8));
        assert_eq!(dotnet_major(Flavor::ServerWeb, v(5)), Some(9));
        assert_eq!(dotnet_major(Flavor::ServerWeb, v(6)), Some(10));
        assert_eq!(
            provider_rule(Flavor::ServerWeb, v(5)),
            Some(ProviderRule::DatabaseProviderKey)
        );
        assert_eq!(
            provider_rule(Flavor::ServerWeb, v(2)),
            Some(ProviderRule::FixedInCode)
        );
        assert_eq!(
            provider_rule(Flavor::ServerWeb, v(7)),
            Some(ProviderRule::FixedInCode)
        );
        assert_eq!(
            provider_rule(Flavor::ModularServer, v(8)),
            Some(ProviderRule::ShellFeatures)
        );
        assert_eq!(
            image_defaults(Flavor::ServerWeb, v(5))["DatabaseProvider"],
            "Sqlite"
        );
    }

    #[test]
    fn dead_keys_match_by_prefix_ignoring_case() {
        assert_eq!(
            dead_key("Elsa:Persistence:Provider").map(|d| d.cause),
            Some("guide-keys")
        );
        assert_eq!(
            dead_key("elsa:modules:management:persistence:provider").map(|d| d.cause),
            Some("guide-keys")
        );
        assert_eq!(
            dead_key("Elsa:AutoMigrate").map(|d| d.cause),
            Some("automigrate")
        );
        assert!(dead_key("ElsaX").is_none());
        assert!(dead_key("DatabaseProvider").is_none());
    }
}

// ---------------------------------------------------------------------------------------------
// Database knowledge (ELSA-FACTS §2, §8): schema, tables, migration ids, SQLite fallback paths.
// ---------------------------------------------------------------------------------------------

/// Elsa's schema in PostgreSQL: capital E, so always quoted in SQL.
pub const SCHEMA: &str = "Elsa";

/// The migrations history table every Elsa DbContext shares, inside [`SCHEMA`].
pub const HISTORY_TABLE: &str = "__EFMigrationsHistory";

/// A table and the release that added it.
pub struct TableSpec {
    pub context: &'static str,
    pub name: &'static str,
    pub since: (u32, u32),
}

const fn t(context: &'static str, name: &'static str, since: (u32, u32)) -> TableSpec {
    TableSpec {
        context,
        name,
        since,
    }
}

/// Tables of the Management and Runtime contexts, the ones every PostgreSQL-backed Elsa uses.
pub const TABLES: &[TableSpec] = &[
    t("Management", "WorkflowDefinitions", (3, 0)),
    t("Management", "WorkflowInstances", (3, 0)),
    t("Runtime", "ActivityExecutionRecords", (3, 0)),
    t("Runtime", "Bookmarks", (3, 0)),
    t("Runtime", "Triggers", (3, 0)),
    t("Runtime", "WorkflowExecutionLogRecords", (3, 0)),
    t("Runtime", "WorkflowInboxMessages", (3, 0)),
    t("Runtime", "KeyValuePairs", (3, 1)),
    t("Runtime", "BookmarkQueueItems", (3, 3)),
    t("Runtime", "BookmarkQueueDeadLetterItems", (3, 8)),
];

/// The tables a given version has.
pub fn expected_tables(version: ElsaVersion) -> impl Iterator<Item = &'static TableSpec> {
    TABLES.iter().filter(move |t| t.since <= version.mm())
}

/// A migration id and the release that first ships it.
pub struct MigrationSpec {
    pub context: &'static str,
    pub id: &'static str,
    pub since: (u32, u32),
}

const fn m(context: &'static str, id: &'static str, since: (u32, u32)) -> MigrationSpec {
    MigrationSpec { context, id, since }
}

/// Management and Runtime migration ids of the PostgreSQL provider (ELSA-FACTS §2).
pub const MIGRATIONS: &[MigrationSpec] = &[
    m("Management", "20231015122234_Initial", (3, 0)),
    m("Management", "20240329200740_V3_1", (3, 1)),
    m("Management", "20240610184839_V3_2", (3, 2)),
    m("Management", "20241212211805_V3_3", (3, 3)),
    m("Management", "20250222190906_V3_4", (3, 4)),
    m("Management", "20251116182753_V3_6", (3, 6)),
    m("Runtime", "20231024160952_Initial", (3, 0)),
    m("Runtime", "20240329200711_V3_1", (3, 1)),
    m("Runtime", "20240610184748_V3_2", (3, 2)),
    m("Runtime", "20250116192950_V3_3", (3, 3)),
    m("Runtime", "20250222190844_V3_4", (3, 4)),
    m("Runtime", "20250530104953_V3_5", (3, 5)),
    m("Runtime", "20251204150341_V3_6", (3, 6)),
    m("Runtime", "20260122123049_V3_7", (3, 7)),
    m("Runtime", "20260520121653_V3_8", (3, 8)),
];

/// The migration ids a given version expects to find applied.
pub fn expected_migrations(version: ElsaVersion) -> impl Iterator<Item = &'static MigrationSpec> {
    MIGRATIONS.iter().filter(move |m| m.since <= version.mm())
}

/// Where a flavour writes its SQLite database when it uses (or falls back to) SQLite, and
/// whether finding the file there proves a fallback (ELSA-FACTS §1, §8).
pub fn sqlite_paths(
    flavor: Flavor,
    version: Option<ElsaVersion>,
) -> &'static [(&'static str, bool)] {
    let v = version.map(|v| v.mm());
    match flavor {
        // 3.3.0–3.3.1 (and 3.3 builds of unknown patch): Quartz always uses SQLite on that
        // file, PostgreSQL or not (elsa-audit.md row 7), so it proves nothing.
        Flavor::ServerWeb
            if v == Some((3, 3)) && version.and_then(|x| x.patch).is_none_or(|p| p < 2) =>
        {
            &[("/app/App_Data/elsa.sqlite.db", false)]
        }
        // 3.0–3.5: App_Data/elsa.sqlite.db, only there when SQLite is really used.
        Flavor::ServerWeb if v.is_some_and(|v| v < (3, 6)) => {
            &[("/app/App_Data/elsa.sqlite.db", true)]
        }
        // 3.6+: hard-coded SQLite: the file is always there.
        Flavor::ServerWeb => &[("/app/elsa.sqlite.db", false)],
        // Some stores always use SQLite (3.4/3.5): the file proves nothing.
        Flavor::ServerAndStudio => &[("/app/elsa.sqlite.db", false)],
        Flavor::ModularServer => &[("/app/elsa_workflows.db", false)],
        Flavor::Studio | Flavor::Custom => &[],
    }
}

/// Every SQLite path any flavour uses, so one listing serves whatever the flavour turns out
/// to be.
pub const ALL_SQLITE_PATHS: &[&str] = &[
    "/app/App_Data/elsa.sqlite.db",
    "/app/elsa.sqlite.db",
    "/app/elsa_workflows.db",
];

/// SQLite's companion files: the write-ahead log and its shared-memory index.
pub const SQLITE_COMPANIONS: &[&str] = &["-wal", "-shm"];

/// The marker line the listing ends with, carrying `ls`'s exit status.
const LISTING_MARKER: &str = "elsadoctor:ls=";

/// The read-only command run in the Elsa container, one `sh -c`: `ls` of the host's assemblies,
/// `/entrypoint.sh` and every SQLite path with its companions, then the bounded greps of
/// [`image_contents::contents_script`] (migration ids, tfm, package versions; elsa-audit §7).
/// `sh` expands the globs (every Elsa image has `sh`); missing paths are expected, so `ls`'s
/// complaints are dropped and its status is printed instead. Nothing is written.
pub fn listing_command() -> Vec<String> {
    let paths = listing_globs();
    vec![
        "sh".to_owned(),
        "-c".to_owned(),
        format!(
            "ls -1d -- {} 2>/dev/null; echo \"{LISTING_MARKER}$?\"; {}",
            paths.join(" "),
            super::image_contents::contents_script()
        ),
    ]
}

/// What the listing looks for: the host's assemblies and every SQLite path with its companions.
pub fn listing_globs() -> Vec<String> {
    let mut paths = vec!["/app/*.dll".to_owned(), "/entrypoint.sh".to_owned()];
    for p in ALL_SQLITE_PATHS {
        paths.push((*p).to_owned());
        for c in SQLITE_COMPANIONS {
            paths.push(format!("{p}{c}"));
        }
    }
    paths
}

/// The paths the listing shows to exist. `ls` exits 1 (busybox) or 2 (GNU) when some path is
/// missing, which is the normal case; 126/127 mean there is no usable `ls`.
pub fn parse_listing(stdout: &str) -> Result<Vec<String>, String> {
    let mut paths = Vec::new();
    for line in stdout.lines() {
        let line = line.trim_end_matches('\r');
        if let Some(status) = line.strip_prefix(LISTING_MARKER) {
            return match status.trim().parse::<i32>() {
                Ok(0..=2) => Ok(paths),
                Ok(code) => Err(format!("ls failed in the container (exit status {code})")),
                Err(_) => Err(format!("unexpected listing status {status:?}")),
            };
        }
        // A glob that matched nothing is passed on literally and, being missing, not printed.
        if line.starts_with('/') && !line.contains('*') {
            paths.push(line.to_owned());
        }
    }
    Err("the listing ended without its status line".to_owned())
}

/// What the assemblies in `/app` say about the host and its PostgreSQL support.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assemblies {
    /// The host application's assembly and the flavour it belongs to.
    pub host: Option<(&'static str, Flavor)>,
    /// The PostgreSQL provider assembly, and the versions that name belongs to.
    pub postgres: Option<(&'static str, &'static str)>,
    pub count: usize,
}

const HOST_ASSEMBLIES: &[(&str, Flavor)] = &[
    ("Elsa.Server.Web.dll", Flavor::ServerWeb),
    ("Elsa.ServerAndStudio.Web.dll", Flavor::ServerAndStudio),
    ("Elsa.ModularServer.Web.dll", Flavor::ModularServer),
];

const POSTGRES_ASSEMBLIES: &[(&str, &str)] = &[
    ("Elsa.EntityFrameworkCore.PostgreSql.dll", "3.0–3.5"),
    ("Elsa.Persistence.EFCore.PostgreSql.dll", "3.6+"),
];

/// Reads the assembly names of a listing (file names under `/app`).
pub fn assemblies<'a>(dlls: impl IntoIterator<Item = &'a str>) -> Assemblies {
    let mut out = Assemblies {
        host: None,
        postgres: None,
        count: 0,
    };
    for name in dlls {
        out.count += 1;
        if let Some(h) = HOST_ASSEMBLIES.iter().find(|(n, _)| *n == name) {
            out.host = Some(*h);
        }
        if let Some(p) = POSTGRES_ASSEMBLIES.iter().find(|(n, _)| *n == name) {
            out.postgres = Some(*p);
        }
    }
    out
}

#[cfg(test)]
mod db_tests {
    use super::*;

    #[test]
    fn tables_and_migrations_follow_the_version() {
        let v35 = ElsaVersion::new(3, 5);
        let tables: Vec<&str> = expected_tables(v35).map(|t| t.name).collect();
        assert!(tables.contains(&"BookmarkQueueItems"));
        assert!(!tables.contains(&"BookmarkQueueDeadLetterItems"));
        let ids: Vec<&str> = expected_migrations(v35).map(|m| m.id).collect();
        assert!(ids.contains(&"20250530104953_V3_5"));
        assert!(!ids.contains(&"20251116182753_V3_6"));
        assert_eq!(
            expected_migrations(ElsaVersion::new(3, 8)).count(),
            MIGRATIONS.len()
        );
    }

    #[test]
    fn listing_command_and_its_output() {
        let cmd = listing_command();
        assert_eq!(&cmd[..2], &["sh", "-c"]);
        assert!(
            cmd[2].contains(
                "/app/*.dll /entrypoint.sh /app/App_Data/elsa.sqlite.db /app/App_Data/elsa.sqlite.db-wal"
            )
        );
        assert!(cmd[2].contains("2>/dev/null; echo \"elsadoctor:ls=$?\"; grep -aoHE"));
        assert_eq!(cmd.len(), 3, "one sh -c");
        assert!(cmd[2].ends_with("echo \"elsadoctor:deps\""));
        assert!(
            !cmd[2].contains('>')
                || cmd[2].matches('>').count() == cmd[2].matches("2>/dev/null").count(),
            "writes nothing but /dev/null"
        );
        let out = "/app/Elsa.Server.Web.dll\n/app/Elsa.EntityFrameworkCore.PostgreSql.dll\n/app/App_Data/elsa.sqlite.db\nelsadoctor:ls=2\n";
        let paths = parse_listing(out).expect("listing");
        assert_eq!(paths.len(), 3);
        assert_eq!(parse_listing("elsadoctor:ls=0\n"), Ok(vec![]));
        assert!(parse_listing("sh: 1: ls: not found\nelsadoctor:ls=127\n").is_err());
        assert!(parse_listing("/app/x.dll\n").is_err(), "no status line");
        let a = assemblies([
            "Elsa.Server.Web.dll",
            "Elsa.dll",
            "Elsa.Persistence.EFCore.PostgreSql.dll",
        ]);
        assert_eq!(a.host, Some(("Elsa.Server.Web.dll", Flavor::ServerWeb)));
        assert_eq!(a.postgres.map(|p| p.1), Some("3.6+"));
        assert_eq!(a.count, 3);
    }

    #[test]
    fn sqlite_paths_say_when_the_file_proves_a_fallback() {
        assert_eq!(
            sqlite_paths(Flavor::ServerWeb, Some(ElsaVersion::new(3, 5))),
            &[("/app/App_Data/elsa.sqlite.db", true)]
        );
        assert_eq!(
            sqlite_paths(Flavor::ServerWeb, Some(ElsaVersion::new(3, 6))),
            &[("/app/elsa.sqlite.db", false)]
        );
    }
}

// What an image holds (ELSA-FACTS §1, §4): for the simulated cluster's exec and for checks
// that look at `/app`.
// ---------------------------------------------------------------------------------------------

/// The host assembly an official server image runs (`CMD ["dotnet", "<this>"]`).
pub fn host_assembly(flavor: Flavor) -> Option<&'static str> {
    match flavor {
        Flavor::ServerWeb => Some("Elsa.Server.Web.dll"),
        Flavor::ServerAndStudio => Some("Elsa.ServerAndStudio.Web.dll"),
        Flavor::ModularServer => Some("Elsa.ModularServer.Web.dll"),
        Flavor::Studio | Flavor::Custom => None,
    }
}

/// The EF Core persistence assembly of a provider (`PostgreSql`, `Sqlite`) for a version: the
/// modules were renamed in 3.6 (`Elsa.EntityFrameworkCore.*` → `Elsa.Persistence.EFCore.*`).
/// An unknown version counts as the older name.
pub fn persistence_assembly(provider: &str, version: Option<ElsaVersion>) -> String {
    if version.is_some_and(|v| v.mm() >= (3, 6)) {
        format!("Elsa.Persistence.EFCore.{provider}.dll")
    } else {
        format!("Elsa.EntityFrameworkCore.{provider}.dll")
    }
}

/// Whether the stock image ships the PostgreSQL provider: Elsa.Server.Web 3.6+ references only
/// the SQLite one.
pub fn image_ships_postgres(flavor: Flavor, version: Option<ElsaVersion>) -> bool {
    match flavor {
        Flavor::ServerWeb => version.is_none_or(|v| v.mm() < (3, 6)),
        Flavor::ServerAndStudio | Flavor::ModularServer => true,
        Flavor::Studio | Flavor::Custom => false,
    }
}

/// The assemblies under `/app` of a stock server image that tell what it can do: the host, the
/// SQLite provider, and the PostgreSQL provider with Npgsql when the image ships it.
pub fn image_app_files(flavor: Flavor, version: Option<ElsaVersion>) -> Vec<String> {
    let Some(host) = host_assembly(flavor) else {
        return Vec::new();
    };
    let mut files = vec![
        host.to_string(),
        "Elsa.dll".to_string(),
        "Elsa.Workflows.Core.dll".to_string(),
        "Microsoft.Data.Sqlite.dll".to_string(),
        persistence_assembly("Sqlite", version),
    ];
    if image_ships_postgres(flavor, version) {
        files.push(persistence_assembly("PostgreSql", version));
        files.push("Npgsql.dll".to_string());
        files.push("Npgsql.EntityFrameworkCore.PostgreSQL.dll".to_string());
    }
    files
}

#[cfg(test)]
mod image_file_tests {
    use super::*;

    #[test]
    fn provider_assemblies_follow_the_rename() {
        let v35 = Some(ElsaVersion::new(3, 5));
        let v36 = Some(ElsaVersion::new(3, 6));
        assert_eq!(
            persistence_assembly("PostgreSql", v35),
            "Elsa.EntityFrameworkCore.PostgreSql.dll"
        );
        assert_eq!(
            persistence_assembly("PostgreSql", v36),
            "Elsa.Persistence.EFCore.PostgreSql.dll"
        );
        let files = image_app_files(Flavor::ServerWeb, v36);
        assert!(files.contains(&"Elsa.Server.Web.dll".to_string()));
        assert!(!files.iter().any(|f| f.contains("PostgreSql")));
        let files = image_app_files(Flavor::ServerAndStudio, v35);
        assert!(files.contains(&"Elsa.EntityFrameworkCore.PostgreSql.dll".to_string()));
        assert!(image_app_files(Flavor::Studio, v35).is_empty());
    }
}

/// Where each fact of this module was verified against elsa-core's source: the release tags it
/// was read at and the row or section of the fidelity audit (`elsa-audit.md`) that records it.
/// A fact changed here must be re-read at these tags and this table updated with it.
pub struct VerifiedFact {
    /// The item of this module the fact lives in.
    pub fact: &'static str,
    /// The elsa-core tags the fact was read at (`TAG:path`).
    pub at: &'static [&'static str],
    /// The audit row or section.
    pub audit: &'static str,
}

/// Every 3.x minor's newest tag (audit §0): the facts read at each release.
const EVERY_MINOR: &[&str] = &[
    "3.0.6",
    "3.1.3",
    "3.2.4",
    "3.3.5",
    "3.4.3",
    "3.5.3",
    "3.6.3",
    "3.7.1",
    "3.8.0-rc2",
];

pub const VERIFIED: &[VerifiedFact] = &[
    VerifiedFact {
        fact: "provider_rule, provider_band",
        at: EVERY_MINOR,
        audit: "§4.2 provider selection per version",
    },
    VerifiedFact {
        fact: "accepted_providers, POSTGRES_FAMILY (Oracle from 3.3.2, Citus and YugabyteDb from 3.4.0)",
        at: &["3.3.1", "3.3.2", "3.4.0", "3.5.3"],
        audit: "§1 rows 7–8, §8 (3.3–3.5 accepted values)",
    },
    VerifiedFact {
        fact: "MIGRATIONS (PostgreSQL migration ids per context)",
        at: EVERY_MINOR,
        audit: "§2 (identical across every patch of a minor, except 3.3.0-rc1…rc6 and 3.8.0-preview1)",
    },
    VerifiedFact {
        fact: "TABLES, SCHEMA, HISTORY_TABLE",
        at: EVERY_MINOR,
        audit: "§3 tables per context (model snapshots)",
    },
    VerifiedFact {
        fact: "sqlite_paths, ALL_SQLITE_PATHS (Quartz SQLite on 3.3.0–3.3.1)",
        at: &[
            "3.2.4",
            "3.3.0",
            "3.3.1",
            "3.3.2",
            "3.5.3",
            "3.6.3",
            "3.7.1",
            "3.8.0-rc2",
        ],
        audit: "§4.1 SQLite default paths, §1 row 9",
    },
    VerifiedFact {
        fact: "health_probe, health_paths (/health/ready only on 3.8; its body a status word)",
        at: &["3.7.1", "3.8.0-rc2"],
        audit: "§6 health endpoints, §1 row 15",
    },
    VerifiedFact {
        fact: "SAMPLE_SIGNING_KEY, KNOWN_SIGNING_KEYS and the 3.8 signing-key rules",
        at: &["3.7.1", "3.8.0-rc2"],
        audit: "§6 signing key, §1 rows 2–4",
    },
    VerifiedFact {
        fact: "dotnet_major, image_defaults, HTTP_PORT (EXPOSE 80 in 3.0–3.2)",
        at: EVERY_MINOR,
        audit: "§5 docker/*.Dockerfile per tag",
    },
    VerifiedFact {
        fact: "assemblies, image_ships_postgres, image_app_files (ModularServer ships no PostgreSQL provider)",
        at: &["3.5.3", "3.7.1", "3.8.0-rc2"],
        audit: "§4.3 ModularServer, §7 reading the version from a container, §1 row 1",
    },
    VerifiedFact {
        fact: "classify_image, version_from_name_suffix (which names were published from which tags)",
        at: EVERY_MINOR,
        audit: "§5 and ELSA-FACTS §0 as corrected by §8",
    },
    VerifiedFact {
        fact: "DEAD_KEYS (no Elsa__AutoMigrate, no Elsa__Persistence__*)",
        at: &["3.5.3", "3.8.0-rc2"],
        audit: "§1 rows 17–19",
    },
];

#[cfg(test)]
mod verified_tests {
    use super::*;

    /// Every tag the table names is a real 3.x release tag (audit §0): a typo, or a tag that
    /// does not exist, fails here.
    #[test]
    fn every_verified_fact_names_real_release_tags_and_an_audit_row() {
        let releases = crate::domain::versions::releases();
        for f in VERIFIED {
            assert!(!f.at.is_empty(), "{}: no tag", f.fact);
            assert!(f.audit.starts_with('§'), "{}: no audit row", f.fact);
            for tag in f.at {
                let v = version_from_tag(Some(tag))
                    .unwrap_or_else(|| panic!("{}: {tag} is not a version", f.fact));
                assert!(
                    releases.iter().any(|(_, r)| r.mm() == v.mm()
                        && (v.patch.is_none() || r.patch == v.patch)),
                    "{}: {tag} is not a release",
                    f.fact
                );
            }
        }
    }
}
