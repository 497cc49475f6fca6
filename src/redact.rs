//! The one place that decides what is secret and masks it.
//!
//! Secrets are removed when facts are gathered, before they can become evidence, a log line or an
//! error: passwords in connection strings (`Password=`/`PWD=` in Npgsql/ADO.NET form, the userinfo
//! of URLs), values of environment variables whose names say they are secret, and the text the
//! cluster supplies (event messages), which is also stripped of terminal control characters.
//! Nothing else in the program masks anything; everything else calls these functions.

use k8s_openapi::api::core::v1::{Container, EnvVar, PodSpec};

/// What a masked value is replaced with.
pub const MASK: &str = "*****";

/// A secret value (a Secret's key, a password). It exists in memory so the doctor can use it
/// (expand it into a connection string, log in with it), but it cannot be shown: `Debug`,
/// `Display` and `Serialize` all print [`MASK`]. Only [`Secret::expose`] gives the value, and
/// nothing that renders output calls it.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The real value: for using it, never for showing it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn len(&self) -> usize {
        self.0.chars().count()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(MASK)
    }
}

impl std::fmt::Display for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(MASK)
    }
}

/// Reading a secret back (facts replayed from a bundle) gives whatever was written: a bundle
/// holds only shapes (see [`shape`]), so a replayed secret is its shape.
impl<'de> serde::Deserialize<'de> for Secret {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(Secret)
    }
}

/// [`MASK`], except inside [`shaping`] (the facts bundle), where it is the value's [`shape`].
impl serde::Serialize for Secret {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if is_shaping() {
            return s.serialize_str(&shape(&self.0));
        }
        s.serialize_str(MASK)
    }
}

/// Keywords whose value in a `key=value;` connection string is a secret.
const SECRET_KEYWORDS: &[&str] = &["password", "pwd", "passwd", "accesskey", "sharedaccesskey"];

/// Fragments of an environment variable's name that make its value secret.
const SECRET_NAME_PARTS: &[&str] = &[
    "PASSWORD",
    "PASSWD",
    "SECRET",
    "TOKEN",
    "APIKEY",
    "API_KEY",
    "PRIVATEKEY",
    "PRIVATE_KEY",
    "SIGNINGKEY",
    "CREDENTIAL",
];

/// Masks the value of every secret keyword in `key=value;key=value` text (Npgsql/ADO.NET
/// connection strings, also when embedded in a flag like `--cs=Password=…`), keeping the rest
/// (host, database, user) readable. Quoted values (`'…'`, `"…"`) are masked whole.
pub fn connection_string(s: &str) -> String {
    let masked = keyword_spans(s);
    let mut out = String::with_capacity(s.len());
    let mut last = 0;
    for (start, end) in masked {
        out.push_str(&s[last..start]);
        out.push_str(MASK);
        last = end;
    }
    out.push_str(&s[last..]);
    out
}

/// The byte ranges of the secret keyword values in `s` ([`connection_string`] masks them), in
/// order and disjoint. A value that is only a `$(VAR)` reference is not one.
fn keyword_spans(s: &str) -> Vec<(usize, usize)> {
    let bytes = s.as_bytes();
    let mut masked: Vec<(usize, usize)> = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let at_boundary = i == 0 || !(bytes[i - 1].is_ascii_alphanumeric() || bytes[i - 1] == b'_');
        let value_start = at_boundary
            .then(|| {
                SECRET_KEYWORDS.iter().find_map(|kw| {
                    let end = i + kw.len();
                    let word = bytes.get(i..end)?;
                    if !word.eq_ignore_ascii_case(kw.as_bytes()) {
                        return None;
                    }
                    let mut j = end;
                    while bytes.get(j) == Some(&b' ') {
                        j += 1;
                    }
                    (bytes.get(j) == Some(&b'=')).then_some(j + 1)
                })
            })
            .flatten();
        match value_start {
            Some(start) => {
                let len = value_len(&s[start..]);
                // `Password=$(POSTGRES_PASSWORD)` names where the value comes from: keep it.
                let value = s[start..start + len].trim();
                if len > 0 && !is_pure_reference(value) {
                    masked.push((start, start + len));
                }
                i = start + len.max(1);
            }
            None => i += 1,
        }
    }
    masked
}

/// The length of a connection-string value at the start of `s`: up to the next `;`, or a whole
/// quoted value (with doubled quotes as escapes).
fn value_len(s: &str) -> usize {
    let trimmed = s.trim_start();
    let lead = s.len() - trimmed.len();
    let mut chars = trimmed.char_indices();
    match chars.next() {
        Some((_, q @ ('\'' | '"'))) => {
            let mut prev_quote = false;
            for (i, c) in chars {
                if c == q {
                    if prev_quote {
                        prev_quote = false;
                        continue;
                    }
                    prev_quote = true;
                } else if prev_quote {
                    return lead + i;
                }
            }
            s.len()
        }
        // An unquoted value ends at `;`, or with its line: a password in one log line must not
        // take the following lines with it.
        _ => s.find([';', '\n', '\r']).unwrap_or(s.len()),
    }
}

/// Masks the password in the userinfo of URLs (`postgres://user:pw@host/db`).
pub fn urls(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(scheme_end) = rest.find("://") {
        let auth_start = scheme_end + 3;
        out.push_str(&rest[..auth_start]);
        let after = &rest[auth_start..];
        let auth_end = after
            .find(|c: char| c == '/' || c == '?' || c == '#' || c.is_whitespace())
            .unwrap_or(after.len());
        let authority = &after[..auth_end];
        match authority.rfind('@') {
            Some(at) => {
                let userinfo = &authority[..at];
                match userinfo.find(':') {
                    Some(colon) => {
                        out.push_str(&userinfo[..=colon]);
                        out.push_str(MASK);
                    }
                    None => out.push_str(userinfo),
                }
                out.push_str(&authority[at..]);
            }
            None => out.push_str(authority),
        }
        rest = &after[auth_end..];
    }
    out.push_str(rest);
    out
}

// ---------------------------------------------------------------------------------------------
// Shapes: how secrets are written to a facts bundle (`--dump-facts`).
//
// A bundle must hold no secret, yet `replay` must judge it exactly as the run did. So every
// secret value is written as its *shape*: the same text with each secret character replaced by
// a stand-in that keeps what the checks judge and nothing else: the length in characters and in
// UTF-8 bytes, ASCII-ness, whitespace, the characters that parsers give meaning to (quotes, `;`,
// `=`, `,`, brackets, `:`, `\`, `$`) and `$(VAR)` references (variable names, never values).
// Every other character becomes `x` (ASCII) or a fixed letter of the same UTF-8 width. Where a
// value holds its secret inside structure (an Npgsql connection string's `Password=`, a URL's
// userinfo, a JSON property whose name says secret) only that part is shaped; a bare value is
// shaped whole. The few public values a check compares against (the published sample signing
// key) are kept as they are.

std::thread_local! {
    static SHAPING: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Runs `f` (a serialization) with secrets written as their shapes instead of [`MASK`]: only
/// the facts bundle does this.
pub fn shaping<R>(f: impl FnOnce() -> R) -> R {
    struct Reset(bool);
    impl Drop for Reset {
        fn drop(&mut self) {
            SHAPING.with(|s| s.set(self.0));
        }
    }
    let _reset = Reset(SHAPING.with(|s| s.replace(true)));
    f()
}

/// True inside [`shaping`].
pub fn is_shaping() -> bool {
    SHAPING.with(|s| s.get())
}

/// Public values a check compares secrets against: written as they are.
const PUBLIC_VALUES: &[&str] = &[crate::domain::elsa::SAMPLE_SIGNING_KEY];

/// The shape of a secret value: its secret parts (see above) shaped, or the whole value when it
/// has no structure to keep.
pub fn shape(value: &str) -> String {
    if PUBLIC_VALUES.contains(&value) {
        return value.to_owned();
    }
    let spans = secret_spans(value);
    if spans.is_empty() {
        return fill(value);
    }
    shape_spans(value, &spans)
}

/// The shape of one key of a Secret. Keys that name a user, host, port, database or provider
/// hold what every report shows anyway (the connection string's non-secret parts): their values
/// are kept, unless they hold structure with a secret inside.
pub fn shape_keyed(key: &str, value: &str) -> String {
    if !is_secret_name(key) && public_key(key) && secret_spans(value).is_empty() {
        return value.to_owned();
    }
    shape(value)
}

/// The shape of one ConfigMap value: not secret by definition, so only its secret parts are
/// shaped (a password in a connection string or JSON file, a secret-named key's bare value).
pub fn shape_text(key: &str, value: &str) -> String {
    let spans = secret_spans(value);
    if spans.is_empty() {
        if is_secret_name(key) && !value.is_empty() && !is_pure_reference(value) {
            return shape(value);
        }
        return value.to_owned();
    }
    shape_spans(value, &spans)
}

fn public_key(key: &str) -> bool {
    let k: String = key
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_lowercase())
        .collect();
    [
        "user",
        "username",
        "userid",
        "host",
        "hostname",
        "server",
        "database",
        "dbname",
        "db",
        "port",
        "provider",
        "environment",
    ]
    .iter()
    .any(|p| k.ends_with(p))
}

fn shape_spans(value: &str, spans: &[(usize, usize)]) -> String {
    let mut out = String::with_capacity(value.len());
    let mut last = 0;
    for &(start, end) in spans {
        out.push_str(&value[last..start]);
        out.push_str(&fill(&value[start..end]));
        last = end;
    }
    out.push_str(&value[last..]);
    out
}

/// Byte ranges holding a secret inside structure: connection-string keyword values, URL
/// userinfo passwords, JSON string values of secret-named properties. Sorted, disjoint.
fn secret_spans(s: &str) -> Vec<(usize, usize)> {
    let mut spans = keyword_spans(s);
    spans.extend(url_spans(s));
    spans.extend(json_spans(s));
    spans.sort_unstable();
    let mut merged: Vec<(usize, usize)> = Vec::with_capacity(spans.len());
    for (a, b) in spans {
        match merged.last_mut() {
            Some(last) if a <= last.1 => last.1 = last.1.max(b),
            _ => merged.push((a, b)),
        }
    }
    merged
}

fn url_spans(s: &str) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(found) = s[from..].find("://") {
        let auth_start = from + found + 3;
        let after = &s[auth_start..];
        let auth_end = after
            .find(|c: char| c == '/' || c == '?' || c == '#' || c.is_whitespace())
            .unwrap_or(after.len());
        let authority = &after[..auth_end];
        if let Some(at) = authority.rfind('@')
            && let Some(colon) = authority[..at].find(':')
        {
            out.push((auth_start + colon + 1, auth_start + at));
        }
        from = auth_start + auth_end;
    }
    out
}

/// The insides of `"…"` string values whose property name says secret (`"Password": "…"`).
fn json_spans(s: &str) -> Vec<(usize, usize)> {
    // Each string literal: (start of contents, end of contents).
    let bytes = s.as_bytes();
    let mut strings = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'"' {
            let start = i + 1;
            let mut j = start;
            while j < bytes.len() && bytes[j] != b'"' {
                j += if bytes[j] == b'\\' { 2 } else { 1 };
            }
            let end = j.min(bytes.len());
            strings.push((start, end));
            i = end + 1;
        } else {
            i += 1;
        }
    }
    let mut out = Vec::new();
    for pair in strings.windows(2) {
        let ((ks, ke), (vs, ve)) = (pair[0], pair[1]);
        let between = s.get(ke + 1..vs.saturating_sub(1)).unwrap_or("");
        let name = s.get(ks..ke).unwrap_or("");
        let leaf = name.rsplit([':', '_']).next().unwrap_or(name);
        if between.trim() == ":"
            && (is_secret_name(name)
                || SECRET_KEYWORDS.iter().any(|k| leaf.eq_ignore_ascii_case(k)))
            && vs < ve
            && !is_pure_reference(&s[vs..ve])
        {
            out.push((vs, ve));
        }
    }
    out
}

/// Replaces every character of `s` but whitespace, structural punctuation and `$(VAR)`
/// references by a stand-in of the same UTF-8 width.
fn fill(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(c) = rest.chars().next() {
        if let Some(r) = rest.strip_prefix("$(")
            && let Some(close) = r.find(')')
            && r[..close]
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.' || c == '-')
        {
            let whole = 2 + close + 1;
            out.push_str(&rest[..whole]);
            rest = &rest[whole..];
            continue;
        }
        out.push(match c {
            c if c.is_whitespace() => c,
            '\'' | '"' | ';' | '=' | ',' | '(' | ')' | '{' | '}' | '[' | ']' | ':' | '\\' | '$' => {
                c
            }
            c if c.is_ascii() => 'x',
            c => match c.len_utf8() {
                2 => 'é',
                3 => '€',
                _ => '𝔵',
            },
        });
        rest = &rest[c.len_utf8()..];
    }
    out
}

/// True when an environment variable's name says its value is a secret.
pub fn is_secret_name(name: &str) -> bool {
    let upper = name.to_ascii_uppercase();
    SECRET_NAME_PARTS.iter().any(|p| upper.contains(p))
}

/// An environment variable's literal value as it may be shown: masked whole when the name says
/// secret (unless it only references another variable), else with embedded passwords masked.
pub fn env_value(name: &str, value: &str) -> String {
    if is_secret_name(name) && !value.is_empty() && !is_pure_reference(value) {
        return MASK.to_owned();
    }
    text(value)
}

/// `$(VAR)` and nothing else: shows where the value comes from, not the value.
fn is_pure_reference(v: &str) -> bool {
    v.starts_with("$(") && v.ends_with(')') && !v[2..v.len() - 1].contains(['(', ')', '$'])
}

/// Free text from the cluster or a program (event messages, errors): secrets masked and terminal
/// control characters removed, so it is safe to print.
pub fn text(s: &str) -> String {
    let masked = urls(&connection_string(s));
    sanitize(&masked)
}

/// Masks every quoted value (`"…"`, `'…'`, `` `…` ``) in a parser's message about a file that
/// may hold credentials (a kubeconfig): the message keeps its shape and location, not the values.
pub fn quoted(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut open: Option<char> = None;
    for c in s.chars() {
        match open {
            Some(q) if c == q => {
                out.push_str(MASK);
                out.push(c);
                open = None;
            }
            Some(_) => {}
            None if matches!(c, '"' | '`') => {
                out.push(c);
                open = Some(c);
            }
            None => out.push(c),
        }
    }
    if open.is_some() {
        out.push_str(MASK);
    }
    out
}

/// Removes control characters (escape sequences, carriage returns, bells) except tab and
/// newline, so cluster-supplied text cannot move the cursor or recolour a terminal.
pub fn sanitize(s: &str) -> String {
    s.chars()
        .filter(|c| !c.is_control() || *c == '\n' || *c == '\t')
        .collect()
}

/// The annotation `kubectl apply` writes: the whole manifest again, literal env values and all.
pub const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// Scrubs an object's metadata: drops the last-applied annotation, which repeats the manifest
/// (and so any literal password in it) and which no check reads.
pub fn metadata(meta: &mut k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) {
    if let Some(a) = meta.annotations.as_mut() {
        a.remove(LAST_APPLIED);
    }
}

/// Scrubs a Job as gathered (live or from a bundle): its metadata and its pod template.
pub fn job(j: &mut k8s_openapi::api::batch::v1::Job) {
    metadata(&mut j.metadata);
    if let Some(spec) = j.spec.as_mut().and_then(|s| s.template.spec.as_mut()) {
        pod_spec(spec);
    }
}

/// Scrubs a CronJob as gathered: its metadata and its job template's pod template.
pub fn cron_job(j: &mut k8s_openapi::api::batch::v1::CronJob) {
    metadata(&mut j.metadata);
    if let Some(spec) = j
        .spec
        .as_mut()
        .and_then(|s| s.job_template.spec.as_mut())
        .and_then(|s| s.template.spec.as_mut())
    {
        pod_spec(spec);
    }
}

/// Scrubs literal env values, command and args of every container in a pod spec.
pub fn pod_spec(spec: &mut PodSpec) {
    for c in spec.containers.iter_mut() {
        container(c);
    }
    for c in spec.init_containers.iter_mut().flatten() {
        container(c);
    }
    for c in spec.ephemeral_containers.iter_mut().flatten() {
        if let Some(env) = c.env.as_mut() {
            env_vars(env);
        }
        for a in c.command.iter_mut().chain(c.args.iter_mut()).flatten() {
            *a = text(a);
        }
    }
}

/// Literal values scrubbed from pod templates, kept so the doctor can use them exactly as the app
/// does (log in with an inline password) while nothing can print them. Keyed
/// `<workload>/<container>/<env index>`.
pub type Literals = std::collections::BTreeMap<String, Secret>;

/// [`pod_spec`], also keeping every env value it changes in `kept` under `<prefix>/...`, for
/// the init containers as for the others (a pod's container names are unique across both).
pub fn pod_spec_keeping(spec: &mut PodSpec, prefix: &str, kept: &mut Literals) {
    for c in spec
        .containers
        .iter()
        .chain(spec.init_containers.iter().flatten())
    {
        for (i, e) in c.env.iter().flatten().enumerate() {
            if let Some(v) = &e.value
                && env_value(&e.name, v) != *v
            {
                kept.insert(format!("{prefix}/{}/{i}", c.name), Secret::new(v.clone()));
            }
        }
    }
    pod_spec(spec);
}

fn container(c: &mut Container) {
    if let Some(env) = c.env.as_mut() {
        env_vars(env);
    }
    for a in c.command.iter_mut().chain(c.args.iter_mut()).flatten() {
        *a = text(a);
    }
}

fn env_vars(env: &mut [EnvVar]) {
    for e in env {
        if let Some(v) = e.value.as_mut() {
            *v = env_value(&e.name, v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unquoted_password_ends_with_its_line() {
        let log = "fail: Host=pg;Password=hunter2\nnext line stays\r\nand this one";
        let masked = text(log);
        assert!(!masked.contains("hunter2"), "{masked}");
        assert!(masked.contains("next line stays"), "{masked}");
        assert!(masked.contains("and this one"), "{masked}");
    }

    #[test]
    fn a_secret_never_prints() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s} {s:?}"), "***** *****");
        assert_eq!(serde_json::to_string(&s).expect("json"), "\"*****\"");
        assert_eq!(s.expose(), "hunter2");
    }

    #[test]
    fn masks_npgsql_password_keeps_the_rest() {
        assert_eq!(
            connection_string("Host=postgres;Username=elsa;Password=s3cr3t;Database=elsa"),
            "Host=postgres;Username=elsa;Password=*****;Database=elsa"
        );
        assert_eq!(
            connection_string("Server=x; PWD = 'a;b''c' ;Port=5432"),
            "Server=x; PWD =***** ;Port=5432"
        );
        assert_eq!(connection_string("password=abc"), "password=*****");
        assert_eq!(connection_string("no secrets here"), "no secrets here");
    }

    #[test]
    fn keeps_a_password_that_only_references_a_variable() {
        assert_eq!(
            connection_string("Host=p;Password=$(POSTGRES_PASSWORD);Port=5432"),
            "Host=p;Password=$(POSTGRES_PASSWORD);Port=5432"
        );
        assert_eq!(
            connection_string("Password=x$(P)"),
            "Password=*****",
            "literal text around a reference is still a secret"
        );
    }

    #[test]
    fn masks_url_userinfo() {
        assert_eq!(
            urls("dial postgres://elsa:hunter2@db:5432/elsa failed"),
            "dial postgres://elsa:*****@db:5432/elsa failed"
        );
        assert_eq!(urls("https://host/path"), "https://host/path");
    }

    #[test]
    fn masks_secret_named_env_but_keeps_references() {
        assert_eq!(env_value("POSTGRES_PASSWORD", "letmein"), MASK);
        assert_eq!(
            env_value("POSTGRES_PASSWORD", "$(OTHER)"),
            "$(OTHER)",
            "a reference names a source, not a secret"
        );
        assert_eq!(
            env_value("ASPNETCORE_ENVIRONMENT", "Production"),
            "Production"
        );
        assert_eq!(
            env_value("ConnectionStrings__PostgreSql", "Host=a;Password=x"),
            "Host=a;Password=*****"
        );
    }

    #[test]
    fn masks_quoted_values_in_parser_messages() {
        assert_eq!(
            quoted("invalid type: string \"hunter2\", expected a map at line 3"),
            "invalid type: string \"*****\", expected a map at line 3"
        );
        assert_eq!(quoted("unterminated `abc"), "unterminated `*****");
    }

    #[test]
    fn strips_terminal_control_sequences() {
        assert_eq!(sanitize("ok\u{1b}[31mred\u{7}\r"), "ok[31mred");
    }

    #[test]
    fn scrubs_every_container_in_a_pod_spec() {
        let mut spec: PodSpec = serde_json::from_value(serde_json::json!({
            "containers": [{"name": "a", "env": [
                {"name": "ConnectionStrings__PostgreSql", "value": "Host=p;Password=CANARY"},
                {"name": "DB_PASSWORD", "value": "CANARY"}
            ], "args": ["--cs=Password=CANARY"]}],
            "initContainers": [{"name": "b", "env": [{"name": "X_TOKEN", "value": "CANARY"}]}]
        }))
        .expect("spec");
        pod_spec(&mut spec);
        let json = serde_json::to_string(&spec).expect("json");
        assert!(!json.contains("CANARY"), "{json}");
    }

    #[test]
    fn keeps_the_literals_of_init_containers_too() {
        // The init containers' env is judged like the others' (issue 12 #1): their literal
        // values are kept, unprintable, under their own container's name.
        let mut spec: PodSpec = serde_json::from_value(serde_json::json!({
            "containers": [{"name": "a", "env": [{"name": "DB_PASSWORD", "value": "CANARY-A"}]}],
            "initContainers": [{"name": "migrations", "env": [
                {"name": "LOG_LEVEL", "value": "Debug"},
                {"name": "ConnectionStrings__PostgreSql", "value": "Host=p;Password=CANARY-B"}
            ]}]
        }))
        .expect("spec");
        let mut kept = Literals::new();
        pod_spec_keeping(&mut spec, "deployment/elsa", &mut kept);
        assert_eq!(kept["deployment/elsa/a/0"].expose(), "CANARY-A");
        assert_eq!(
            kept["deployment/elsa/migrations/1"].expose(),
            "Host=p;Password=CANARY-B"
        );
        assert!(
            !kept.contains_key("deployment/elsa/migrations/0"),
            "unchanged values are not kept"
        );
        let json = serde_json::to_string(&spec).expect("json");
        assert!(!json.contains("CANARY"), "{json}");
    }
}
