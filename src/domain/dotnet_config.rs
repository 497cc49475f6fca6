//! The effective configuration an ASP.NET Core host (Elsa's server) builds, and where each
//! value came from.
//!
//! `WebApplication.CreateBuilder` layers, later winning: the image's `appsettings.json` <
//! `appsettings.{Environment}.json` < environment variables (all of them, unprefixed) < command
//! line. Keys are case-insensitive; `:` separates sections; in environment variable names `__`
//! stands for `:`. Names starting with a connection-string prefix map to
//! `ConnectionStrings:<name>`: `CUSTOMCONNSTR_`, `MYSQLCONNSTR_`, `SQLAZURECONNSTR_` and
//! `SQLCONNSTR_` on every runtime, plus `POSTGRESQLCONNSTR_` and six more from .NET 10
//! (dotnet/runtime PR 116037). The environment name comes from `ASPNETCORE_ENVIRONMENT`,
//! overridden by `DOTNET_ENVIRONMENT` (with `WebApplicationBuilder`, .NET 7+, the host adds the
//! `DOTNET_` variables after the `ASPNETCORE_` ones), default `Production`.
//!
//! JSON files are read the way .NET's `JsonConfigurationFileParser` reads them: comments and
//! trailing commas are allowed, a duplicate key (ignoring case) is an error, arrays become
//! `key:0`, `key:1`.

use std::collections::BTreeMap;
use std::fmt;

use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde_json::Value;

/// A configuration value: the real text (for using) and what may be shown.
#[derive(Clone, PartialEq, Eq)]
pub struct ConfigValue {
    value: String,
    display: String,
    /// Known only when the pod runs (fieldRef and the like).
    pub runtime_only: bool,
}

impl ConfigValue {
    /// A value with nothing secret in it (shown through `redact::text` anyway).
    pub fn plain(value: impl Into<String>) -> Self {
        let value = value.into();
        Self {
            display: crate::redact::text(&value),
            value,
            runtime_only: false,
        }
    }

    /// A value with a separately masked display (e.g. a secret expanded into it).
    pub fn with_display(value: impl Into<String>, display: impl Into<String>) -> Self {
        Self {
            value: value.into(),
            display: display.into(),
            runtime_only: false,
        }
    }

    /// A value the kubelet fills in at runtime (`fieldRef`).
    pub fn runtime(what: impl Into<String>) -> Self {
        let what = what.into();
        Self {
            value: String::new(),
            display: format!("<{what}>"),
            runtime_only: true,
        }
    }

    /// The real value: for using it, never for showing it.
    pub fn expose(&self) -> &str {
        &self.value
    }

    /// What may be shown: secrets masked.
    pub fn display(&self) -> &str {
        &self.display
    }
}

impl fmt::Debug for ConfigValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.display)
    }
}

/// Where a setting came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// The image's own `appsettings.json` (elsadoctor's record of it for this version).
    ImageDefault,
    /// A JSON file: its path in the container and the key's path inside it.
    File { path: String, json_path: String },
    /// An environment variable of the container, with where the kubelet took it from.
    Env { var: String, origin: String },
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::ImageDefault => f.write_str("the image's appsettings.json default"),
            Source::File { path, json_path } => write!(f, "{path} at {json_path}"),
            Source::Env { var, origin } => write!(f, "env {var} ({origin})"),
        }
    }
}

/// One effective key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Setting {
    /// The key as the winning source spelled it, `:`-separated.
    pub key: String,
    pub value: ConfigValue,
    pub source: Source,
    /// Sources this one overrode, earliest first.
    pub overridden: Vec<Source>,
}

/// An environment variable as the process sees it.
#[derive(Debug, Clone)]
pub struct EnvInput {
    pub name: String,
    pub value: ConfigValue,
    /// Where the kubelet took it from, e.g. `env[3]`, `envFrom[0] ConfigMap elsa-env`.
    pub origin: String,
}

/// The connection-string prefixes the runtime's environment provider knows.
pub fn connection_string_prefixes(dotnet_major: Option<u32>) -> &'static [&'static str] {
    const NET8: &[&str] = &[
        "MYSQLCONNSTR_",
        "SQLAZURECONNSTR_",
        "SQLCONNSTR_",
        "CUSTOMCONNSTR_",
    ];
    const NET10: &[&str] = &[
        "MYSQLCONNSTR_",
        "SQLAZURECONNSTR_",
        "SQLCONNSTR_",
        "CUSTOMCONNSTR_",
        "POSTGRESQLCONNSTR_",
        "APIHUBCONNSTR_",
        "DOCDBCONNSTR_",
        "EVENTHUBCONNSTR_",
        "NOTIFICATIONHUBCONNSTR_",
        "REDISCACHECONNSTR_",
        "SERVICEBUSCONNSTR_",
    ];
    match dotnet_major {
        Some(v) if v >= 10 => NET10,
        _ => NET8,
    }
}

/// The configuration key an environment variable sets, if any. `DOTNET_` and `ASPNETCORE_`
/// variables also feed the host, but the unprefixed provider still sees them under their full
/// name, so they are keys too.
pub fn env_key(name: &str, dotnet_major: Option<u32>) -> String {
    let upper = name.to_ascii_uppercase();
    for prefix in connection_string_prefixes(dotnet_major) {
        if upper.starts_with(prefix) {
            let rest = &name[prefix.len()..];
            return format!("ConnectionStrings:{}", rest.replace("__", ":"));
        }
    }
    name.replace("__", ":")
}

/// The effective configuration: case-insensitive keys to settings.
#[derive(Debug, Clone, Default)]
pub struct EffectiveConfig {
    entries: BTreeMap<String, Setting>,
}

impl EffectiveConfig {
    /// Adds a layer of keys; later layers override earlier ones.
    pub fn layer(&mut self, items: impl IntoIterator<Item = (String, ConfigValue, Source)>) {
        for (key, value, source) in items {
            let norm = key.to_ascii_lowercase();
            let overridden = match self.entries.remove(&norm) {
                Some(mut old) => {
                    old.overridden.push(old.source);
                    old.overridden
                }
                None => Vec::new(),
            };
            self.entries.insert(
                norm,
                Setting {
                    key,
                    value,
                    source,
                    overridden,
                },
            );
        }
    }

    /// Adds a JSON file (already parsed).
    pub fn add_json(&mut self, json: &Value, source: impl Fn(&str) -> Source) {
        let mut flat = Vec::new();
        flatten(json, "", &mut flat);
        self.layer(flat.into_iter().map(|(k, v)| {
            let src = source(&k);
            (k, ConfigValue::plain(v), src)
        }));
    }

    /// Adds the process environment.
    pub fn add_env(&mut self, env: &[EnvInput], dotnet_major: Option<u32>) {
        self.layer(env.iter().map(|e| {
            (
                env_key(&e.name, dotnet_major),
                e.value.clone(),
                Source::Env {
                    var: e.name.clone(),
                    origin: e.origin.clone(),
                },
            )
        }));
    }

    /// The setting for a key (case-insensitive, `:`-separated).
    pub fn get(&self, key: &str) -> Option<&Setting> {
        self.entries.get(&key.to_ascii_lowercase())
    }

    /// Every setting whose key starts with `prefix:` (case-insensitive).
    pub fn section<'a>(&'a self, prefix: &str) -> impl Iterator<Item = &'a Setting> + 'a {
        let p = format!("{}:", prefix.to_ascii_lowercase());
        self.entries
            .iter()
            .filter(move |(k, _)| k.starts_with(&p))
            .map(|(_, s)| s)
    }

    pub fn iter(&self) -> impl Iterator<Item = &Setting> {
        self.entries.values()
    }
}

/// The .NET environment name and where it came from. Elsa's hosts use `WebApplicationBuilder`,
/// where `DOTNET_ENVIRONMENT` overrides `ASPNETCORE_ENVIRONMENT` (.NET 7+); neither means
/// `Production`.
pub fn environment_name(env: &[EnvInput]) -> (String, Option<&EnvInput>) {
    let find = |n: &str| env.iter().rev().find(|e| e.name == n);
    match find("DOTNET_ENVIRONMENT").or_else(|| find("ASPNETCORE_ENVIRONMENT")) {
        Some(e) => (e.value.expose().to_owned(), Some(e)),
        None => ("Production".to_owned(), None),
    }
}

/// Flattens JSON into configuration keys the way .NET does (`a:b`, arrays as `a:0`). Booleans
/// become `True`/`False` (JsonElement's ToString), numbers keep their text, null is empty.
fn flatten(v: &Value, prefix: &str, out: &mut Vec<(String, String)>) {
    let join = |k: &str| {
        if prefix.is_empty() {
            k.to_owned()
        } else {
            format!("{prefix}:{k}")
        }
    };
    match v {
        Value::Object(m) => {
            if m.is_empty() && !prefix.is_empty() {
                out.push((prefix.to_owned(), String::new()));
            }
            for (k, v) in m {
                flatten(v, &join(k), out);
            }
        }
        Value::Array(a) => {
            for (i, v) in a.iter().enumerate() {
                flatten(v, &join(&i.to_string()), out);
            }
        }
        Value::String(s) => out.push((prefix.to_owned(), s.clone())),
        Value::Bool(b) => out.push((prefix.to_owned(), if *b { "True" } else { "False" }.into())),
        Value::Number(n) => out.push((prefix.to_owned(), n.to_string())),
        Value::Null => out.push((prefix.to_owned(), String::new())),
    }
}

/// A JSON file .NET would refuse, with where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}, column {column}: {message}")]
pub struct JsonError {
    pub line: usize,
    pub column: usize,
    pub message: String,
    /// True for a duplicate key (valid JSON, refused by .NET).
    pub duplicate_key: bool,
}

/// Parses an appsettings file with .NET's rules. Comments and trailing commas are blanked out
/// (keeping every line and column where it was) before a strict parse that also rejects keys
/// repeated in one object, ignoring case.
pub fn parse_appsettings(text: &str) -> Result<Value, JsonError> {
    let cleaned = blank_comments_and_trailing_commas(text);
    let mut de = serde_json::Deserializer::from_str(&cleaned);
    let value = DupChecked
        .deserialize(&mut de)
        .and_then(|v| de.end().map(|()| v))
        .map_err(|e| {
            let message = e.to_string();
            let duplicate_key = message.contains("duplicate key");
            // serde_json appends " at line L column C"; keep the message itself.
            let message = message
                .split(" at line ")
                .next()
                .unwrap_or(&message)
                .to_owned();
            JsonError {
                line: e.line(),
                column: e.column(),
                message,
                duplicate_key,
            }
        })?;
    Ok(value)
}

/// Replaces `//` and `/* */` comments (outside strings) and commas that directly precede `}` or
/// `]` with spaces, leaving newlines, so positions stay the same.
fn blank_comments_and_trailing_commas(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out: Vec<char> = chars.clone();
    let mut i = 0;
    let mut in_string = false;
    while i < chars.len() {
        let c = chars[i];
        if in_string {
            if c == '\\' {
                i += 2;
                continue;
            }
            if c == '"' {
                in_string = false;
            }
            i += 1;
            continue;
        }
        match (c, chars.get(i + 1)) {
            ('"', _) => in_string = true,
            ('/', Some('/')) => {
                while i < chars.len() && chars[i] != '\n' {
                    out[i] = ' ';
                    i += 1;
                }
                continue;
            }
            ('/', Some('*')) => {
                let start = i;
                i += 2;
                while i < chars.len() && !(chars[i] == '*' && chars.get(i + 1) == Some(&'/')) {
                    i += 1;
                }
                let end = (i + 2).min(chars.len());
                for slot in out.iter_mut().take(end).skip(start) {
                    if *slot != '\n' {
                        *slot = ' ';
                    }
                }
                i = end;
                continue;
            }
            (',', _) => {
                // A trailing comma: only whitespace or comments (already blanked in `out`, but
                // not yet in `chars` ahead of us) until `}` or `]`.
                let mut j = i + 1;
                loop {
                    match chars.get(j) {
                        Some(w) if w.is_whitespace() => j += 1,
                        Some('/') if chars.get(j + 1) == Some(&'/') => {
                            while j < chars.len() && chars[j] != '\n' {
                                j += 1;
                            }
                        }
                        Some('/') if chars.get(j + 1) == Some(&'*') => {
                            j += 2;
                            while j < chars.len()
                                && !(chars[j] == '*' && chars.get(j + 1) == Some(&'/'))
                            {
                                j += 1;
                            }
                            j += 2;
                        }
                        _ => break,
                    }
                }
                if matches!(chars.get(j), Some('}') | Some(']')) {
                    out[i] = ' ';
                }
            }
            _ => {}
        }
        i += 1;
    }
    out.into_iter().collect()
}

/// Deserializes a JSON value, refusing a key that repeats (ignoring case) within one object.
struct DupChecked;

impl<'de> DeserializeSeed<'de> for DupChecked {
    type Value = Value;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(DupVisitor)
    }
}

struct DupVisitor;

impl<'de> Visitor<'de> for DupVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut out = Vec::new();
        while let Some(v) = seq.next_element_seed(DupChecked)? {
            out.push(v);
        }
        Ok(Value::Array(out))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = serde_json::Map::new();
        let mut seen: BTreeMap<String, String> = BTreeMap::new();
        while let Some(key) = map.next_key::<String>()? {
            if let Some(first) = seen.get(&key.to_ascii_lowercase()) {
                return Err(de::Error::custom(format!(
                    "duplicate key {key:?} (already defined as {first:?}; .NET refuses the file)"
                )));
            }
            seen.insert(key.to_ascii_lowercase(), key.clone());
            let v = map.next_value_seed(DupChecked)?;
            out.insert(key, v);
        }
        Ok(Value::Object(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str, value: &str) -> EnvInput {
        EnvInput {
            name: name.into(),
            value: ConfigValue::plain(value),
            origin: "env[0]".into(),
        }
    }

    #[test]
    fn env_overrides_file_overrides_default_and_keeps_sources() {
        let mut c = EffectiveConfig::default();
        c.add_json(
            &serde_json::json!({"DatabaseProvider": "Sqlite", "ConnectionStrings": {"PostgreSql": "Server=localhost"}}),
            |_| Source::ImageDefault,
        );
        c.add_json(
            &serde_json::json!({"ConnectionStrings": {"PostgreSql": "Host=from-file"}}),
            |p| Source::File {
                path: "/app/appsettings.Production.json".into(),
                json_path: p.into(),
            },
        );
        c.add_env(&[env("DATABASEPROVIDER", "PostgreSql")], Some(9));
        let p = c.get("databaseprovider").expect("set");
        assert_eq!(p.value.expose(), "PostgreSql");
        assert_eq!(p.overridden, vec![Source::ImageDefault]);
        let cs = c.get("ConnectionStrings:PostgreSql").expect("set");
        assert_eq!(cs.value.expose(), "Host=from-file");
        assert!(
            matches!(&cs.source, Source::File { json_path, .. } if json_path == "ConnectionStrings:PostgreSql")
        );
    }

    #[test]
    fn double_underscore_and_connection_string_prefixes_per_runtime() {
        assert_eq!(
            env_key("ConnectionStrings__PostgreSql", Some(9)),
            "ConnectionStrings:PostgreSql"
        );
        assert_eq!(
            env_key("CUSTOMCONNSTR_PostgreSql", Some(8)),
            "ConnectionStrings:PostgreSql"
        );
        assert_eq!(
            env_key("customconnstr_PostgreSql", Some(9)),
            "ConnectionStrings:PostgreSql"
        );
        assert_eq!(
            env_key("POSTGRESQLCONNSTR_PostgreSql", Some(9)),
            "POSTGRESQLCONNSTR_PostgreSql",
            ".NET 9 does not know this prefix"
        );
        assert_eq!(
            env_key("POSTGRESQLCONNSTR_PostgreSql", Some(10)),
            "ConnectionStrings:PostgreSql"
        );
        assert_eq!(
            env_key("Runtime__DistributedLocking__Provider", None),
            "Runtime:DistributedLocking:Provider"
        );
    }

    #[test]
    fn environment_name_precedence() {
        assert_eq!(environment_name(&[]).0, "Production");
        let e = [
            env("DOTNET_ENVIRONMENT", "Staging"),
            env("ASPNETCORE_ENVIRONMENT", "Development"),
        ];
        assert_eq!(
            environment_name(&e).0,
            "Staging",
            "DOTNET_ wins with WebApplicationBuilder"
        );
        assert_eq!(environment_name(&e[1..]).0, "Development");
    }

    #[test]
    fn appsettings_allows_comments_and_trailing_commas() {
        let text = "{\n  // the provider\n  \"DatabaseProvider\": \"PostgreSql\", /* inline */\n  \"A\": [1, 2,],\n}\n";
        let v = parse_appsettings(text).expect("valid for .NET");
        assert_eq!(v["DatabaseProvider"], "PostgreSql");
        assert_eq!(v["A"], serde_json::json!([1, 2]));
        let url = parse_appsettings("{\"u\": \"http://x//y\", }").expect("// in a string");
        assert_eq!(url["u"], "http://x//y");
    }

    #[test]
    fn appsettings_errors_have_line_and_column() {
        let e = parse_appsettings("{\n  \"A\": 1\n  \"B\": 2\n}").expect_err("missing comma");
        assert_eq!((e.line, e.column), (3, 3));
        assert!(!e.duplicate_key);
        let e = parse_appsettings("{\"Elsa\": {\"x\": 1, \"X\": 2}}").expect_err("dup");
        assert!(e.duplicate_key);
        assert!(e.message.contains("\"X\""), "{}", e.message);
    }

    #[test]
    fn flattening_follows_dotnet() {
        let mut c = EffectiveConfig::default();
        c.add_json(&serde_json::json!({"A": {"B": [true, 5, null]}}), |_| {
            Source::ImageDefault
        });
        assert_eq!(c.get("a:b:0").map(|s| s.value.expose()), Some("True"));
        assert_eq!(c.get("A:B:1").map(|s| s.value.expose()), Some("5"));
        assert_eq!(c.get("A:B:2").map(|s| s.value.expose()), Some(""));
        assert_eq!(c.section("a").count(), 3);
    }
}
