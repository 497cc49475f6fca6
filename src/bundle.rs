//! The facts bundle: a run's facts as versioned JSON (`--dump-facts FILE`), read back by
//! `elsadoctor replay FILE` to run this elsadoctor's checks on them offline.
//!
//! A bundle holds the same owned snapshot the checks read. Everything in it was redacted when it
//! was gathered (pod specs scrubbed, logs and messages masked); the only values the snapshot
//! keeps in memory unmasked, Secret data and literal env values, are written as their shapes
//! ([`crate::redact::shape`]): the length and structure the checks judge, never a character of
//! the secret. Pure: writing and reading the file is the caller's.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::facts::{FactUpdate, Facts};
use crate::redact;
use crate::report::ReplayOrigin;

/// What the `format` field of every bundle says.
pub const FORMAT: &str = "elsadoctor-facts";

/// The bundle schema this elsadoctor writes. Bump it when a change to [`Facts`] cannot be
/// read by an older reader (a new field with a default can); [`OLDEST_READABLE`] says how far
/// back this reader goes.
pub const SCHEMA_VERSION: u32 = 1;

/// The oldest bundle schema this elsadoctor reads.
pub const OLDEST_READABLE: u32 = 1;

/// The first fields of a bundle, read before the facts so that a bundle of another schema is
/// refused with its reason rather than a parse error.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Header {
    pub format: String,
    pub schema_version: u32,
    /// The elsadoctor version that wrote it.
    pub elsadoctor: String,
    /// When it was written (RFC 3339, UTC).
    pub created_at: String,
    /// The API server URL (no credentials) and context the facts came from.
    pub target: BundleTarget,
    /// Where the database and network probes ran from.
    pub vantage: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BundleTarget {
    pub server: String,
    pub context: Option<String>,
    pub namespace: String,
    pub simulated: bool,
}

/// A bundle read back: its header and its facts.
#[derive(Debug, Clone)]
pub struct Bundle {
    pub header: Header,
    pub facts: Facts,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Writing<'a> {
    #[serde(flatten)]
    header: &'a Header,
    facts: &'a Facts,
}

#[derive(Deserialize)]
struct Reading {
    facts: Facts,
}

/// Why a bundle cannot be replayed: one line, no value from the file beyond its versions.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BundleError {
    #[error("not an elsadoctor facts bundle ({0})")]
    NotABundle(String),
    #[error(
        "the bundle has facts schema {found} (written by elsadoctor {by}); this elsadoctor reads schemas {OLDEST_READABLE} to {SCHEMA_VERSION}: replay it with elsadoctor {by} or newer"
    )]
    Newer { found: u32, by: String },
    #[error(
        "the bundle has facts schema {found} (written by elsadoctor {by}), older than this elsadoctor reads ({OLDEST_READABLE} to {SCHEMA_VERSION}): gather the facts again with --dump-facts"
    )]
    Older { found: u32, by: String },
    #[error("the bundle is damaged: {0}")]
    Damaged(String),
}

/// The bundle of a run: `facts` as the checks read them, written with secrets as shapes.
pub fn write(facts: &Facts, vantage: &str, created_at: &str) -> Result<String, serde_json::Error> {
    let header = Header {
        format: FORMAT.to_owned(),
        schema_version: SCHEMA_VERSION,
        elsadoctor: env!("CARGO_PKG_VERSION").to_owned(),
        created_at: created_at.to_owned(),
        target: BundleTarget {
            server: facts.scope.server.clone(),
            context: facts.scope.context.clone(),
            namespace: facts.scope.namespace.clone(),
            simulated: facts.scope.simulated,
        },
        vantage: vantage.to_owned(),
    };
    redact::shaping(|| {
        serde_json::to_string_pretty(&Writing {
            header: &header,
            facts,
        })
    })
}

/// Reads a bundle: the header first (format and schema), then the facts.
pub fn read(text: &str) -> Result<Bundle, BundleError> {
    let value: serde_json::Value =
        serde_json::from_str(text).map_err(|e| BundleError::Damaged(one_line(&e)))?;
    let Some(obj) = value.as_object() else {
        return Err(BundleError::NotABundle("not a JSON object".to_owned()));
    };
    if obj.get("format").and_then(|f| f.as_str()) != Some(FORMAT) {
        return Err(BundleError::NotABundle(format!(
            "no \"format\": \"{FORMAT}\" field"
        )));
    }
    let by = obj
        .get("elsadoctor")
        .and_then(|v| v.as_str())
        .filter(|v| v.len() <= 32 && v.chars().all(|c| c.is_ascii_graphic()))
        .unwrap_or("(unknown version)")
        .to_owned();
    let found = match obj.get("schemaVersion").and_then(serde_json::Value::as_u64) {
        Some(v) => u32::try_from(v).unwrap_or(u32::MAX),
        None => {
            return Err(BundleError::NotABundle(
                "no numeric \"schemaVersion\" field".to_owned(),
            ));
        }
    };
    if found > SCHEMA_VERSION {
        return Err(BundleError::Newer { found, by });
    }
    if found < OLDEST_READABLE {
        return Err(BundleError::Older { found, by });
    }
    let header: Header =
        serde_json::from_value(value.clone()).map_err(|e| BundleError::Damaged(one_line(&e)))?;
    let Reading { facts } =
        serde_json::from_value(value).map_err(|e| BundleError::Damaged(one_line(&e)))?;
    Ok(Bundle { header, facts })
}

/// A serde message on one line, quoted values masked (an edited bundle could put anything
/// there).
fn one_line(e: &serde_json::Error) -> String {
    let msg = redact::quoted(&e.to_string());
    let msg: String = msg.split_whitespace().collect::<Vec<_>>().join(" ");
    let mut cut: String = msg.chars().take(200).collect();
    if cut.len() < msg.len() {
        cut.push('…');
    }
    redact::sanitize(&cut)
}

impl Bundle {
    /// Where the facts came from, for the REPLAY label of every output.
    pub fn origin(&self) -> ReplayOrigin {
        let t = &self.header.target;
        let origin = match &t.context {
            Some(c) => format!("{} (context {c})", t.server),
            None => t.server.clone(),
        };
        ReplayOrigin {
            created_at: redact::sanitize(&self.header.created_at),
            elsadoctor: redact::sanitize(&self.header.elsadoctor),
            origin: redact::sanitize(&origin),
            vantage: redact::sanitize(&self.header.vantage),
        }
    }

    /// The facts as the updates gathering would have sent, every fact once.
    pub fn updates(self) -> Vec<FactUpdate> {
        updates(self.facts)
    }
}

/// Every fact of `f` as a [`FactUpdate`], so the runner can judge a snapshot exactly as it
/// judges a live run.
pub fn updates(f: Facts) -> Vec<FactUpdate> {
    let config_maps: BTreeMap<_, _> = f.config_maps;
    vec![
        FactUpdate::ServerVersion(f.server_version),
        FactUpdate::Namespace(f.namespace),
        FactUpdate::Access(f.access),
        FactUpdate::Workloads {
            deployments: f.deployments,
            statefulsets: f.statefulsets,
            literals: f.env_literals,
            inferred: f.inferred,
        },
        FactUpdate::Pods(f.pods),
        FactUpdate::Events(f.events),
        FactUpdate::ConfigSources {
            config_maps,
            secrets: f.secrets,
        },
        FactUpdate::Services(f.services),
        FactUpdate::Database {
            target: f.db_target,
            observation: f.database,
        },
        FactUpdate::DbService(f.db_service),
        FactUpdate::PodFiles(f.pod_files),
        FactUpdate::Network(f.network),
        FactUpdate::Logs(f.logs),
        FactUpdate::Health(f.health),
        FactUpdate::DbPods(f.db_pods),
        FactUpdate::NetworkPolicies(f.network_policies),
        FactUpdate::Autoscalers(f.autoscalers),
        FactUpdate::Migrations(f.migrations),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::test_support::empty;
    use crate::facts::{ConfigMapData, Probe, SecretData};
    use crate::redact::Secret;
    use proptest::prelude::*;

    const CANARY: &str = "CANARY-7f3a9c1e-DO-NOT-LEAK";

    fn facts_with_secrets() -> Facts {
        let mut f = empty();
        let mut data = BTreeMap::new();
        data.insert("password".to_owned(), Secret::new(CANARY));
        data.insert("username".to_owned(), Secret::new("elsa"));
        data.insert(
            "connection".to_owned(),
            Secret::new(format!("Host=pg;Username=elsa;Password={CANARY}")),
        );
        data.insert(
            "signing-key".to_owned(),
            Secret::new(format!(" {CANARY}é ")),
        );
        f.secrets
            .insert("pg".to_owned(), Probe::Observed(SecretData { data }));
        f.env_literals.insert(
            "deployment/elsa/elsa/0".to_owned(),
            Secret::new(format!("Host=p;Password=x$(PW){CANARY}")),
        );
        let mut cm = ConfigMapData::default();
        cm.data.insert(
            "appsettings.json".to_owned(),
            format!("{{\"ConnectionStrings\": {{\"PostgreSql\": \"Host=p;Password={CANARY}\"}},\n \"Password\": \"{CANARY}\", \"Url\": \"postgres://u:{CANARY}@h/db\"}}"),
        );
        cm.data.insert("DB_PASSWORD".to_owned(), CANARY.to_owned());
        cm.data.insert("LOG_LEVEL".to_owned(), "Debug".to_owned());
        f.config_maps.insert("cfg".to_owned(), Probe::Observed(cm));
        f
    }

    #[test]
    fn a_bundle_holds_shapes_never_secrets() {
        let text = write(
            &facts_with_secrets(),
            "port-forward",
            "2026-01-01T00:00:00Z",
        )
        .expect("write");
        assert!(!text.contains(CANARY), "{text}");
        assert!(!text.contains("CANARY"), "{text}");
        let back = read(&text).expect("read").facts;
        let Probe::Observed(s) = &back.secrets["pg"] else {
            panic!("secret")
        };
        let pw = s.data["password"].expose();
        assert_eq!(pw.chars().count(), CANARY.chars().count());
        assert_eq!(
            s.data["username"].expose(),
            "elsa",
            "a user name is what reports show"
        );
        assert_eq!(
            s.data["connection"].expose(),
            format!(
                "Host=pg;Username=elsa;Password={}",
                crate::redact::shape(CANARY)
            )
        );
        let key = s.data["signing-key"].expose();
        assert_eq!(key.len(), format!(" {CANARY}é ").len(), "UTF-8 width kept");
        assert!(key.starts_with(' ') && key.ends_with(' ') && !key.is_ascii());
        let lit = back.env_literals["deployment/elsa/elsa/0"].expose();
        assert!(lit.starts_with("Host=p;Password=x$(PW)"), "{lit}");
        let Probe::Observed(cm) = &back.config_maps["cfg"] else {
            panic!("cm")
        };
        assert_eq!(cm.data["LOG_LEVEL"], "Debug");
        assert!(
            crate::domain::dotnet_config::parse_appsettings(&cm.data["appsettings.json"]).is_ok(),
            "a shaped JSON file still parses: {}",
            cm.data["appsettings.json"]
        );
        // Written again, a replayed bundle is the same bundle.
        let again = write(&back, "port-forward", "2026-01-01T00:00:00Z").expect("write");
        assert_eq!(again, text);
    }

    #[test]
    fn the_sample_signing_key_stays_recognisable() {
        let s = crate::domain::elsa::SAMPLE_SIGNING_KEY;
        assert_eq!(crate::redact::shape(s), s);
    }

    #[test]
    fn other_schemas_are_refused_with_their_reason() {
        let newer = r#"{"format":"elsadoctor-facts","schemaVersion":7,"elsadoctor":"9.0.0"}"#;
        let e = read(newer).expect_err("newer");
        assert!(matches!(e, BundleError::Newer { found: 7, .. }), "{e}");
        assert!(e.to_string().contains("elsadoctor 9.0.0"), "{e}");
        let older = r#"{"format":"elsadoctor-facts","schemaVersion":0,"elsadoctor":"0.0.1"}"#;
        assert!(matches!(
            read(older),
            Err(BundleError::Older { found: 0, .. })
        ));
        assert!(matches!(read("[1]"), Err(BundleError::NotABundle(_))));
        assert!(matches!(read("{}"), Err(BundleError::NotABundle(_))));
        assert!(matches!(read("{"), Err(BundleError::Damaged(_))));
    }

    #[test]
    fn an_edited_value_is_not_echoed() {
        let text = write(&empty(), "here", "t").expect("write");
        let edited = text.replacen("\"state\": \"notAttempted\"", "\"state\": \"hunter2\"", 1);
        let e = read(&edited).expect_err("edited").to_string();
        assert!(!e.contains("hunter2"), "{e}");
        assert!(!e.contains('\n'), "{e}");
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// A truncated or byte-mutated bundle is an error of one line, never a panic.
        #[test]
        fn damaged_bundles_give_one_line(cut in 0usize..4000, at in 0usize..4000, byte in any::<u8>()) {
            let text = write(&facts_with_secrets(), "here", "t").expect("write");
            let mut bytes = text.into_bytes();
            let at = at % bytes.len();
            bytes[at] = byte;
            bytes.truncate(cut.min(bytes.len()));
            let damaged = String::from_utf8_lossy(&bytes);
            if let Err(e) = read(&damaged) {
                let msg = e.to_string();
                prop_assert!(!msg.contains('\n'));
                prop_assert!(!msg.contains("CANARY"));
            }
        }

        /// A shape has the secret's length in characters and bytes, and none of its letters.
        #[test]
        fn shapes_keep_length_and_lose_letters(s in "[a-zA-Z0-9 é€;=]{0,40}") {
            let shaped = crate::redact::shape(&s);
            prop_assert_eq!(shaped.len(), s.len());
            prop_assert_eq!(shaped.chars().count(), s.chars().count());
            prop_assert!(!shaped.chars().any(|c| c.is_ascii_alphanumeric() && c != 'x'));
        }
    }
}
