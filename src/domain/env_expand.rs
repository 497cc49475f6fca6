//! The environment a container's process actually sees, computed the way the kubelet computes it,
//! with the provenance of every value and the fate of every `$(VAR)` reference.
//!
//! The kubelet (kubernetes/kubernetes `pkg/kubelet/kubelet_pods.go`, `makeEnvironmentVariables`
//! and `getServiceEnvVarMap`) builds a container's environment in this order:
//!
//! 1. **Service links**, lowest precedence: for every Service with a cluster IP (not headless
//!    `None`, not ExternalName) in the pod's namespace, `<SVC>_SERVICE_HOST`, `<SVC>_SERVICE_PORT`,
//!    `<SVC>_SERVICE_PORT_<PORTNAME>`, and the Docker-link style `<SVC>_PORT`,
//!    `<SVC>_PORT_<port>_<PROTO>` with `_PROTO`, `_PORT`, `_ADDR`
//!    (`pkg/kubelet/envvars/envvars.go`). `enableServiceLinks: false` drops them, except for the
//!    master `kubernetes` Service of namespace `default`, which is always added.
//! 2. **`envFrom`**, in list order, every key of the ConfigMap/Secret with the optional prefix;
//!    a later source overwrites an earlier one. A missing source fails the container
//!    (`CreateContainerConfigError`) unless it is `optional`.
//! 3. **`env`**, in list order, overwriting anything before. A literal `value` has its `$(VAR)`
//!    references expanded against what is defined *so far*: the envFrom variables, the `env`
//!    entries above it, then the service-link variables. A reference to a variable that is only
//!    defined further down (or nowhere) stays as literal text: this is the bug where
//!    `ConnectionStrings__PostgreSql = "...;Password=$(POSTGRES_PASSWORD)"` is listed before
//!    `POSTGRES_PASSWORD` and the application receives the text `$(POSTGRES_PASSWORD)` as its
//!    password. `valueFrom` values (Secret/ConfigMap keys, downward API) are never expanded.
//! 4. **`command` and `args`** are expanded afterwards against the complete final environment
//!    (`pkg/kubelet/container/helpers.go`, `ExpandContainerCommandAndArgs`), so there a variable
//!    defined anywhere in the list is available.
//!
//! The `$(VAR)` syntax is kubernetes/kubernetes `third_party/forked/golang/expansion/expand.go`:
//! `$(NAME)` is everything up to the next `)`; an unknown name leaves `$(NAME)` unchanged; `$$` is
//! an escaped `$` (so `$$(X)` yields the text `$(X)`); `$(` without a closing `)` and `$` followed
//! by any other character are copied as they are. Shell forms (`$VAR`, `${VAR}`) are never
//! expanded by Kubernetes; [`shell_style_refs`] finds them.
//!
//! Everything here is pure: what gathering found is passed in through [`Sources`], and values that
//! came from Secrets stay marked as secret through every expansion so that [`Expanded::display`],
//! `Debug` and `Serialize` never show them.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::ops::Range;

use k8s_openapi::api::core::v1::{Container, EnvVar};
use serde::Serialize;
use serde::ser::SerializeStruct;

use crate::redact::{MASK, Secret};

// ---------------------------------------------------------------------------------------------
// Inputs
// ---------------------------------------------------------------------------------------------

/// What gathering knows about a referenced object.
#[derive(Debug, Clone, PartialEq)]
pub enum Lookup<T> {
    Found(T),
    /// The object does not exist (NotFound).
    Missing,
    /// Could not look (forbidden, an API error): why.
    Unknown(String),
}

impl<T> Lookup<T> {
    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> Lookup<U> {
        match self {
            Lookup::Found(t) => Lookup::Found(f(t)),
            Lookup::Missing => Lookup::Missing,
            Lookup::Unknown(why) => Lookup::Unknown(why),
        }
    }
}

/// The ConfigMaps and Secrets of the pod's namespace, as far as gathering could read them.
pub trait Sources {
    fn config_map(&self, name: &str) -> Lookup<&BTreeMap<String, String>>;
    fn secret(&self, name: &str) -> Lookup<&BTreeMap<String, Secret>>;
}

/// A Service as the kubelet's service-link variables need it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ServiceLink {
    pub name: String,
    /// `spec.clusterIP`: empty (ExternalName) or `None` (headless) means no variables.
    pub cluster_ip: String,
    pub ports: Vec<ServicePort>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ServicePort {
    pub name: Option<String>,
    pub port: i32,
    /// `TCP`, `UDP`, `SCTP`; empty means `TCP`.
    pub protocol: String,
}

/// Everything [`expand`] needs about one container of a pod.
pub struct Input<'a> {
    pub container: &'a Container,
    /// `pod.spec.enableServiceLinks`, default true.
    pub enable_service_links: bool,
    /// The Services of the pod's namespace.
    pub services: &'a [ServiceLink],
    /// The `kubernetes` Service in `default`, which the kubelet always adds.
    pub master: Option<&'a ServiceLink>,
    pub sources: &'a dyn Sources,
}

// ---------------------------------------------------------------------------------------------
// Outputs
// ---------------------------------------------------------------------------------------------

/// The environment, command and args the container's process gets.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Expansion {
    /// The final environment, one entry per name. Order: names in the order they were first
    /// defined by `envFrom`/`env`, then the service-link variables nothing replaced (the kubelet
    /// appends them last). The runtime's own order is not defined: the kubelet collects the
    /// variables in a Go map.
    pub vars: Vec<EnvEntry>,
    pub command: Vec<Expanded>,
    pub args: Vec<Expanded>,
    /// A missing non-optional ConfigMap/Secret/key (the container would not start:
    /// `CreateContainerConfigError`), lookups that could not be made, skipped names.
    pub problems: Vec<SourceProblem>,
}

impl Expansion {
    /// The final entry for a variable name.
    pub fn get(&self, name: &str) -> Option<&EnvEntry> {
        self.vars.iter().find(|e| e.name == name)
    }
}

/// One variable of the final environment.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EnvEntry {
    pub name: String,
    pub value: EnvValue,
    /// The definition that won.
    pub origin: Origin,
    /// Earlier definitions this one replaced, lowest precedence first.
    pub overridden: Vec<Origin>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum EnvValue {
    /// A literal `value` after `$(VAR)` expansion (also a service-link value, which has no refs).
    Text(Expanded),
    /// A ConfigMap or Secret value, taken as it is: never expanded, `refs` is empty.
    FromSource { value: Expanded, secret: bool },
    /// `fieldRef` / `resourceFieldRef`, e.g. "fieldRef status.podIP": known only at runtime.
    RuntimeOnly(String),
    /// The referenced source is missing or could not be read: why.
    Unavailable(String),
}

impl EnvValue {
    /// The value, where it is known here.
    pub fn expanded(&self) -> Option<&Expanded> {
        match self {
            EnvValue::Text(x) | EnvValue::FromSource { value: x, .. } => Some(x),
            EnvValue::RuntimeOnly(_) | EnvValue::Unavailable(_) => None,
        }
    }
}

/// Where a variable's definition is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum Origin {
    /// `env[index]` of the container.
    Env { index: usize },
    /// Key `key` of `envFrom[index]` (the variable's name has the prefix, `key` does not).
    EnvFrom {
        index: usize,
        kind: SourceKind,
        name: String,
        key: String,
    },
    /// A service-link variable of this Service.
    ServiceLink { service: String },
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Env { index } => write!(f, "env[{index}]"),
            Origin::EnvFrom {
                index,
                kind,
                name,
                key,
            } => write!(f, "envFrom[{index}] {kind} {name} key {key}"),
            Origin::ServiceLink { service } => write!(f, "service link of Service {service}"),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum SourceKind {
    ConfigMap,
    Secret,
}

impl fmt::Display for SourceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SourceKind::ConfigMap => "ConfigMap",
            SourceKind::Secret => "Secret",
        })
    }
}

/// Something wrong with a referenced ConfigMap or Secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SourceProblem {
    /// e.g. "env[2] secretKeyRef postgres-secret/pasword" or "envFrom[0] configMapRef elsa-config".
    pub origin: String,
    pub kind: SourceKind,
    pub name: String,
    pub key: Option<String>,
    pub optional: bool,
    pub why: String,
}

/// A string after expansion. `value` may contain secret material; it is private, and
/// [`Expanded::display`] masks every span that came from a Secret. `Debug` and `Serialize` use
/// `display()`.
#[derive(Clone, PartialEq)]
pub struct Expanded {
    /// The text as written in the pod spec (for a Secret value, which is not written anywhere in
    /// the spec, the mask).
    raw: String,
    value: String,
    /// Byte ranges of `value` that came from a Secret; sorted, disjoint, not adjacent.
    secret_spans: Vec<Range<usize>>,
    /// Every `$(NAME)` and `$$(NAME)` of `raw`, in order.
    pub refs: Vec<Reference>,
}

/// One `$(NAME)` (or escaped `$$(NAME)`) in a raw string.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Reference {
    /// Everything between `$(` and the next `)`.
    pub name: String,
    /// Byte range in `raw`, from the `$` to the `)`.
    pub span: Range<usize>,
    pub state: RefState,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum RefState {
    /// Replaced by the variable's value.
    Resolved,
    /// Left as literal text because the variable is only defined by `env[index]`, further down.
    DefinedLater { index: usize },
    /// Left as literal text: nothing defines the name.
    Undefined,
    /// `$$(NAME)`: the kubelet outputs the literal text `$(NAME)`.
    Escaped,
    /// Replaced by a value not known here (a fieldRef/resourceFieldRef variable, a source that
    /// could not be read); `value` keeps the reference text in its place.
    RuntimeOnly,
}

impl Expanded {
    /// A string taken as it is, with no references (a service-link value, a test value).
    pub fn literal(text: impl Into<String>) -> Self {
        let text = text.into();
        Self {
            raw: text.clone(),
            value: text,
            secret_spans: Vec::new(),
            refs: Vec::new(),
        }
    }

    fn from_source(value: &str, secret: bool) -> Self {
        if !secret {
            return Self::literal(value);
        }
        let raw = if value.is_empty() { "" } else { MASK };
        Self {
            raw: raw.to_owned(),
            value: value.to_owned(),
            secret_spans: if value.is_empty() {
                Vec::new()
            } else {
                std::iter::once(0..value.len()).collect()
            },
            refs: Vec::new(),
        }
    }

    /// The text as written in the pod spec, before expansion.
    pub fn raw(&self) -> &str {
        &self.raw
    }

    /// The value with every span that came from a Secret replaced by the mask: safe to show.
    pub fn display(&self) -> String {
        let mut out = String::with_capacity(self.value.len());
        let mut last = 0;
        for span in &self.secret_spans {
            out.push_str(&self.value[last..span.start]);
            out.push_str(MASK);
            last = span.end;
        }
        out.push_str(&self.value[last..]);
        out
    }

    /// The real value: for using it (connecting with it), never for showing it.
    pub fn expose(&self) -> &str {
        &self.value
    }

    /// True when any part of the value came from a Secret.
    pub fn is_secret(&self) -> bool {
        !self.secret_spans.is_empty()
    }

    /// True when a `$(NAME)` stayed literal because its variable was not defined in time.
    pub fn has_unresolved(&self) -> bool {
        self.refs
            .iter()
            .any(|r| matches!(r.state, RefState::DefinedLater { .. } | RefState::Undefined))
    }
}

impl fmt::Debug for Expanded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Expanded")
            .field("raw", &self.raw)
            .field("value", &self.display())
            .field("refs", &self.refs)
            .finish()
    }
}

impl Serialize for Expanded {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut st = s.serialize_struct("Expanded", 4)?;
        st.serialize_field("raw", &self.raw)?;
        st.serialize_field("value", &self.display())?;
        st.serialize_field("secret", &self.is_secret())?;
        st.serialize_field("refs", &self.refs)?;
        st.end()
    }
}

// ---------------------------------------------------------------------------------------------
// The `$(VAR)` syntax: kubernetes/kubernetes third_party/forked/golang/expansion/expand.go
// ---------------------------------------------------------------------------------------------

/// A variable's current value while expanding.
struct Binding {
    value: String,
    secret_spans: Vec<Range<usize>>,
    /// False for runtime-only and unreadable values.
    known: bool,
}

impl Binding {
    fn of(x: &Expanded) -> Self {
        Self {
            value: x.value.clone(),
            secret_spans: x.secret_spans.clone(),
            known: !x.refs.iter().any(|r| r.state == RefState::RuntimeOnly),
        }
    }

    fn unknown() -> Self {
        Self {
            value: String::new(),
            secret_spans: Vec::new(),
            known: false,
        }
    }
}

/// What a name maps to at the point of expansion (expand.go `MappingFuncFor`: the first map that
/// has the name wins, else the reference text stays).
enum Resolve<'b> {
    Value(&'b Binding),
    Later(usize),
    Undefined,
}

/// Appends a secret span, merging it with an adjacent one so masks do not reveal boundaries.
fn push_span(spans: &mut Vec<Range<usize>>, span: Range<usize>) {
    if span.is_empty() {
        return;
    }
    match spans.last_mut() {
        Some(last) if last.end == span.start => last.end = span.end,
        _ => spans.push(span),
    }
}

/// `(NAME)` at `pos` of `raw`: the name and the end of the `)`.
fn paren_ref_at(raw: &str, pos: usize) -> Option<(&str, usize)> {
    let rest = raw.get(pos..)?.strip_prefix('(')?;
    let close = rest.find(')')?;
    Some((&rest[..close], pos + 1 + close + 1))
}

/// expand.go `Expand` + `tryReadVariableName`, recording every reference and where secret text
/// landed.
///
/// One deliberate difference: for `$` followed by a non-ASCII character, Go appends the operator
/// and `string(input[0])`, i.e. the first *byte* of the character converted to a rune, and then
/// copies the remaining bytes: `"$é"` becomes `"$Ã\xa9"`, invalid UTF-8. Here the character is
/// kept whole.
/// The largest value elsadoctor builds by expansion. Chained references can double a value at
/// every step (the kubelet would happily build gigabytes, and the kernel would then refuse to
/// start the process: the whole environment must fit in ARG_MAX, 2 MiB on Linux); a reference
/// that would grow a value past this stays unexpanded, like a value known only at runtime.
pub const MAX_EXPANDED_BYTES: usize = 128 * 1024;

fn expand_raw<'b>(raw: &str, resolve: impl Fn(&str) -> Resolve<'b>) -> Expanded {
    let bytes = raw.as_bytes();
    let mut value = String::with_capacity(raw.len());
    let mut secret_spans = Vec::new();
    let mut refs = Vec::new();
    let mut checkpoint = 0;
    let mut cursor = 0;
    while cursor < bytes.len() {
        if bytes[cursor] == b'$' && cursor + 1 < bytes.len() {
            value.push_str(&raw[checkpoint..cursor]);
            let advance = match bytes[cursor + 1] {
                b'$' => {
                    // Escaped operator: `$$` → `$`; what follows is scanned as plain text.
                    value.push('$');
                    if let Some((name, end)) = paren_ref_at(raw, cursor + 2) {
                        refs.push(Reference {
                            name: name.to_owned(),
                            span: cursor..end,
                            state: RefState::Escaped,
                        });
                    }
                    1
                }
                b'(' => match paren_ref_at(raw, cursor + 1) {
                    Some((name, end)) => {
                        let state = match resolve(name) {
                            Resolve::Value(b)
                                if b.known
                                    && value.len().saturating_add(b.value.len())
                                        <= MAX_EXPANDED_BYTES =>
                            {
                                let start = value.len();
                                value.push_str(&b.value);
                                for s in &b.secret_spans {
                                    push_span(&mut secret_spans, start + s.start..start + s.end);
                                }
                                RefState::Resolved
                            }
                            other => {
                                value.push_str(&raw[cursor..end]);
                                match other {
                                    Resolve::Value(_) => RefState::RuntimeOnly,
                                    Resolve::Later(index) => RefState::DefinedLater { index },
                                    Resolve::Undefined => RefState::Undefined,
                                }
                            }
                        };
                        refs.push(Reference {
                            name: name.to_owned(),
                            span: cursor..end,
                            state,
                        });
                        end - cursor - 1
                    }
                    None => {
                        // Incomplete reference: `$(` is copied and scanning goes on after it.
                        value.push_str("$(");
                        1
                    }
                },
                _ => {
                    // Not an expression: the operator and the next character are copied.
                    let next = raw[cursor + 1..].chars().next().unwrap_or('$');
                    value.push('$');
                    value.push(next);
                    next.len_utf8()
                }
            };
            cursor += advance;
            checkpoint = cursor + 1;
        }
        cursor += 1;
    }
    value.push_str(&raw[checkpoint.min(raw.len())..]);
    Expanded {
        raw: raw.to_owned(),
        value,
        secret_spans,
        refs,
    }
}

/// Expands `raw` against plain (non-secret) values, as `expansion.Expand(raw,
/// MappingFuncFor(vars))` does; a name not in `vars` stays literal ([`RefState::Undefined`]).
pub fn expand_str(raw: &str, vars: &BTreeMap<String, String>) -> Expanded {
    let bindings: HashMap<&str, Binding> = vars
        .iter()
        .map(|(k, v)| {
            (
                k.as_str(),
                Binding {
                    value: v.clone(),
                    secret_spans: Vec::new(),
                    known: true,
                },
            )
        })
        .collect();
    expand_raw(raw, |name| match bindings.get(name) {
        Some(b) => Resolve::Value(b),
        None => Resolve::Undefined,
    })
}

/// Shell-style references that Kubernetes never expands: `$VAR`, `${VAR}` (returns the names
/// and spans). `$$` pairs and `$(…)` are the kubelet's syntax and are skipped.
pub fn shell_style_refs(s: &str) -> Vec<(String, Range<usize>)> {
    fn ident_len(b: &[u8]) -> usize {
        match b.first() {
            Some(c) if c.is_ascii_alphabetic() || *c == b'_' => b
                .iter()
                .take_while(|c| c.is_ascii_alphanumeric() || **c == b'_')
                .count(),
            _ => 0,
        }
    }
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] != b'$' {
            i += 1;
            continue;
        }
        match b.get(i + 1) {
            Some(b'$') => i += 2,
            Some(b'(') => match s[i + 2..].find(')') {
                Some(close) => i += 2 + close + 1,
                None => i += 2,
            },
            Some(b'{') => {
                let start = i + 2;
                let len = ident_len(&b[start..]);
                match s[start..].find('}') {
                    Some(close) if len > 0 && close >= len => {
                        out.push((s[start..start + len].to_owned(), i..start + close + 1));
                        i = start + close + 1;
                    }
                    _ => i += 1,
                }
            }
            Some(_) => {
                let len = ident_len(&b[i + 1..]);
                if len > 0 {
                    out.push((s[i + 1..i + 1 + len].to_owned(), i..i + 1 + len));
                    i += 1 + len;
                } else {
                    i += 1;
                }
            }
            None => i += 1,
        }
    }
    out
}

/// The names `raw` references with `$(NAME)` (not escaped ones).
fn referenced_names(raw: &str) -> Vec<String> {
    expand_raw(raw, |_| Resolve::Undefined)
        .refs
        .into_iter()
        .filter(|r| r.state != RefState::Escaped)
        .map(|r| r.name)
        .collect()
}

/// A `$(X)` in a literal `value` at `env[at]` whose `X` is first defined further down the
/// same list, at `env[defined_at]`: the kubelet leaves the text literal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LaterReference {
    pub at: usize,
    pub var: String,
    pub name: String,
    pub defined_at: usize,
}

/// Every reference of `env` that names a variable defined only after it (a name defined both
/// before and after resolves to the earlier value and is not listed; a name defined nowhere is
/// not listed either: that is another problem).
pub fn later_references(env: &[EnvVar]) -> Vec<LaterReference> {
    let mut out = Vec::new();
    for (i, e) in env.iter().enumerate() {
        let Some(value) = e.value.as_deref() else {
            continue;
        };
        for r in expand_str(value, &BTreeMap::new()).refs {
            if r.state == RefState::Escaped {
                continue;
            }
            let defined_before = env[..i].iter().any(|d| d.name == r.name);
            let later = env
                .iter()
                .enumerate()
                .skip(i + 1)
                .find(|(_, d)| d.name == r.name);
            if let (false, Some((j, _))) = (defined_before, later) {
                out.push(LaterReference {
                    at: i,
                    var: e.name.clone(),
                    name: r.name.clone(),
                    defined_at: j,
                });
            }
        }
    }
    out
}

/// The same env list reordered so every `$(X)` that names a variable of this list comes after
/// X's definition (stable: otherwise keep the original order). None if the references form a
/// cycle.
///
/// A reference must come after every definition of its name; entries with the same name keep
/// their relative order (the last one is the final value); a variable referencing itself
/// (`PATH=$(PATH):/x`) is not a dependency, since no order could satisfy it. Only literal
/// `value`s count: `valueFrom` is never expanded.
pub fn dependency_order(env: &[EnvVar]) -> Option<Vec<EnvVar>> {
    let n = env.len();
    let mut by_name: HashMap<&str, Vec<usize>> = HashMap::new();
    for (i, e) in env.iter().enumerate() {
        by_name.entry(e.name.as_str()).or_default().push(i);
    }
    let mut before: Vec<BTreeSet<usize>> = vec![BTreeSet::new(); n];
    for idxs in by_name.values() {
        for w in idxs.windows(2) {
            before[w[1]].insert(w[0]);
        }
    }
    for (i, e) in env.iter().enumerate() {
        let Some(raw) = e.value.as_deref().filter(|v| !v.is_empty()) else {
            continue;
        };
        for name in referenced_names(raw) {
            if name == e.name {
                continue;
            }
            if let Some(idxs) = by_name.get(name.as_str()) {
                before[i].extend(idxs.iter().copied());
            }
        }
    }
    // Kahn's algorithm, always taking the lowest original index that is ready: the result is the
    // original order whenever that order is already valid.
    let mut pending: Vec<usize> = before.iter().map(BTreeSet::len).collect();
    let mut after: Vec<Vec<usize>> = vec![Vec::new(); n];
    for (i, deps) in before.iter().enumerate() {
        for &d in deps {
            after[d].push(i);
        }
    }
    let mut ready: BTreeSet<usize> = (0..n).filter(|&i| pending[i] == 0).collect();
    let mut out = Vec::with_capacity(n);
    while let Some(i) = ready.pop_first() {
        out.push(env[i].clone());
        for &k in &after[i] {
            pending[k] -= 1;
            if pending[k] == 0 {
                ready.insert(k);
            }
        }
    }
    (out.len() == n).then_some(out)
}

// ---------------------------------------------------------------------------------------------
// Service links: kubernetes/kubernetes pkg/kubelet/envvars/envvars.go
// ---------------------------------------------------------------------------------------------

/// `makeEnvVariableName`: upper case, `-` → `_`.
fn env_var_name(s: &str) -> String {
    s.replace('-', "_").to_uppercase()
}

/// `v1helper.IsServiceIPSet`: a cluster IP that is neither empty (ExternalName) nor `None`.
fn is_service_ip_set(ip: &str) -> bool {
    !ip.is_empty() && ip != "None"
}

/// Go's `net.JoinHostPort`: IPv6 addresses in brackets.
fn join_host_port(host: &str, port: i32) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// `FromServices` for one Service.
fn link_vars(s: &ServiceLink) -> Vec<(String, String)> {
    if !is_service_ip_set(&s.cluster_ip) {
        return Vec::new();
    }
    let prefix = env_var_name(&s.name);
    let mut out = vec![(format!("{prefix}_SERVICE_HOST"), s.cluster_ip.clone())];
    // API validation requires a port on every Service with a cluster IP (the kubelet indexes
    // Ports[0] unguarded); without one only the host can be said.
    let Some(first) = s.ports.first() else {
        return out;
    };
    let port_var = format!("{prefix}_SERVICE_PORT");
    out.push((port_var.clone(), first.port.to_string()));
    for p in &s.ports {
        if let Some(name) = p.name.as_deref().filter(|n| !n.is_empty()) {
            out.push((
                format!("{port_var}_{}", env_var_name(name)),
                p.port.to_string(),
            ));
        }
    }
    // makeLinkVariables: Docker-compatible link variables.
    for (i, p) in s.ports.iter().enumerate() {
        let protocol = if p.protocol.is_empty() {
            "TCP"
        } else {
            p.protocol.as_str()
        };
        let lower = protocol.to_lowercase();
        let url = format!("{lower}://{}", join_host_port(&s.cluster_ip, p.port));
        if i == 0 {
            out.push((format!("{prefix}_PORT"), url.clone()));
        }
        let port_prefix = format!("{prefix}_PORT_{}_{}", p.port, protocol.to_uppercase());
        out.push((port_prefix.clone(), url));
        out.push((format!("{port_prefix}_PROTO"), lower));
        out.push((format!("{port_prefix}_PORT"), p.port.to_string()));
        out.push((format!("{port_prefix}_ADDR"), s.cluster_ip.clone()));
    }
    out
}

/// The service-link variables of these Services, in the kubelet's order per Service
/// (`FromServices`). Services without a cluster IP (headless, ExternalName) give none.
pub fn service_link_vars(services: &[ServiceLink]) -> Vec<(String, String)> {
    services.iter().flat_map(link_vars).collect()
}

/// One service-link variable with the Service it came from.
struct LinkVar {
    name: String,
    binding: Binding,
    service: String,
}

/// `getServiceEnvVarMap`: the master Service always, the namespace's Services when service links
/// are enabled. A Service named `kubernetes` in the pod's own namespace replaces the master's
/// (the kubelet's map keeps the namespace one whichever order it lists them in).
fn service_env(input: &Input<'_>) -> Vec<LinkVar> {
    let mut chosen: Vec<&ServiceLink> = Vec::new();
    if let Some(m) = input.master {
        chosen.push(m);
    }
    if input.enable_service_links {
        for s in input.services {
            match chosen.iter().position(|c| c.name == s.name) {
                Some(i) => chosen[i] = s,
                None => chosen.push(s),
            }
        }
    }
    let mut out: Vec<LinkVar> = Vec::new();
    let mut at: HashMap<String, usize> = HashMap::new();
    for s in chosen {
        for (name, value) in link_vars(s) {
            let var = LinkVar {
                name: name.clone(),
                binding: Binding {
                    value,
                    secret_spans: Vec::new(),
                    known: true,
                },
                service: s.name.clone(),
            };
            // `m[e.Name] = e.Value`: a later duplicate name wins.
            match at.get(&name) {
                Some(&i) => out[i] = var,
                None => {
                    at.insert(name, out.len());
                    out.push(var);
                }
            }
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// makeEnvironmentVariables: kubernetes/kubernetes pkg/kubelet/kubelet_pods.go
// ---------------------------------------------------------------------------------------------

/// The relaxed name rule (kubernetes/kubernetes staging/src/k8s.io/apimachinery/pkg/util/
/// validation/validation.go `IsRelaxedEnvVarName`): non-empty printable ASCII without `=`.
///
/// Since RelaxedEnvironmentVariableValidation (kubernetes/kubernetes PR #123385, 1.30; GA 1.34)
/// the kubelet no longer filters envFrom keys at all: ConfigMap/Secret keys are already limited
/// to `[-._a-zA-Z0-9]+` by the API and the prefix to this rule, so keys such as `app.name` or
/// `1KEY` are injected as they are (kubelets before 1.30 skipped keys failing the C-identifier
/// rule, with an `InvalidEnvironmentVariableNames` event). Only a name no process environment
/// can hold is skipped here, which API-valid objects never produce.
fn is_relaxed_env_var_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| (b' '..=b'~').contains(&b) && b != b'=')
}

/// The environment under construction: the kubelet's `tmpEnv` plus provenance.
struct Builder<'i> {
    entries: Vec<EnvEntry>,
    bindings: Vec<Binding>,
    index: HashMap<String, usize>,
    links: Vec<LinkVar>,
    link_index: HashMap<String, usize>,
    env: &'i [EnvVar],
    problems: Vec<SourceProblem>,
}

impl<'i> Builder<'i> {
    fn define(&mut self, name: &str, value: EnvValue, binding: Binding, origin: Origin) {
        match self.index.get(name) {
            Some(&i) => {
                let entry = &mut self.entries[i];
                let old = std::mem::replace(&mut entry.origin, origin);
                entry.overridden.push(old);
                entry.value = value;
                self.bindings[i] = binding;
            }
            None => {
                let overridden = self
                    .link_index
                    .get(name)
                    .map(|&j| {
                        vec![Origin::ServiceLink {
                            service: self.links[j].service.clone(),
                        }]
                    })
                    .unwrap_or_default();
                self.index.insert(name.to_owned(), self.entries.len());
                self.entries.push(EnvEntry {
                    name: name.to_owned(),
                    value,
                    origin,
                    overridden,
                });
                self.bindings.push(binding);
            }
        }
    }

    /// The mapping for `env[at]`: `MappingFuncFor(tmpEnv, serviceEnv)`, and for a name neither
    /// defines, whether an `env` entry further down would have.
    fn resolve(&self, name: &str, at: usize) -> Resolve<'_> {
        if let Some(&i) = self.index.get(name) {
            return Resolve::Value(&self.bindings[i]);
        }
        if let Some(&i) = self.link_index.get(name) {
            return Resolve::Value(&self.links[i].binding);
        }
        match self
            .env
            .iter()
            .enumerate()
            .skip(at + 1)
            .find(|(_, e)| e.name == name)
        {
            Some((j, _)) => Resolve::Later(j),
            None => Resolve::Undefined,
        }
    }

    fn problem(
        &mut self,
        origin: String,
        kind: SourceKind,
        name: &str,
        key: Option<&str>,
        optional: bool,
        why: String,
    ) {
        self.problems.push(SourceProblem {
            origin,
            kind,
            name: name.to_owned(),
            key: key.map(str::to_owned),
            optional,
            why,
        });
    }

    /// One key of an envFrom source.
    fn env_from_key(&mut self, src: &EnvFromRef<'_>, key: &str, value: &str) {
        let name = format!("{}{key}", src.prefix);
        if !is_relaxed_env_var_name(&name) {
            self.problem(
                src.origin.to_owned(),
                src.kind,
                src.name,
                Some(key),
                src.optional,
                format!(
                    "{name:?} is not a possible environment variable name (printable ASCII \
                     other than '='): skipped"
                ),
            );
            return;
        }
        if value.contains('\0') {
            self.problem(
                src.origin.to_owned(),
                src.kind,
                src.name,
                Some(key),
                src.optional,
                format!(
                    "the value of {name} contains a NUL byte, which the container runtime \
                     rejects (setenv: invalid argument)"
                ),
            );
        }
        let secret = src.kind == SourceKind::Secret;
        let x = Expanded::from_source(value, secret);
        let binding = Binding::of(&x);
        self.define(
            &name,
            EnvValue::FromSource { value: x, secret },
            binding,
            Origin::EnvFrom {
                index: src.index,
                kind: src.kind,
                name: src.name.to_owned(),
                key: key.to_owned(),
            },
        );
    }

    /// An envFrom source that is missing or could not be read.
    fn source_missing(&mut self, src: &EnvFromRef<'_>, found: Lookup<()>) {
        let why = match found {
            Lookup::Found(()) => return,
            Lookup::Missing if src.optional => return,
            Lookup::Missing => format!("{} {} not found: {NOT_STARTED}", src.kind, src.name),
            Lookup::Unknown(why) => format!("could not read {} {}: {why}", src.kind, src.name),
        };
        self.problem(
            src.origin.to_owned(),
            src.kind,
            src.name,
            None,
            src.optional,
            why,
        );
    }

    /// One `configMapKeyRef`/`secretKeyRef` of `env`. A missing optional source or key defines
    /// nothing (the kubelet `continue`s: an earlier definition of the name stays).
    fn key_ref(&mut self, r: &KeyRef<'_>, found: KeyLookup) {
        let origin = Origin::Env { index: r.index };
        let problem = match found {
            KeyLookup::Value(v) => {
                let secret = r.kind == SourceKind::Secret;
                if v.contains('\0') {
                    let why = format!(
                        "the value of {} contains a NUL byte, which the container runtime \
                         rejects (setenv: invalid argument)",
                        r.var
                    );
                    self.problem(r.origin(), r.kind, r.name, Some(r.key), r.optional, why);
                }
                let x = Expanded::from_source(&v, secret);
                let binding = Binding::of(&x);
                self.define(
                    r.var,
                    EnvValue::FromSource { value: x, secret },
                    binding,
                    origin,
                );
                return;
            }
            KeyLookup::NoSource | KeyLookup::NoKey(_) if r.optional => return,
            KeyLookup::NoSource => format!("{} {} not found: {NOT_STARTED}", r.kind, r.name),
            KeyLookup::NoKey(keys) => {
                let mut why = format!("{} {} has no key {:?}", r.kind, r.name, r.key);
                if !keys.is_empty() {
                    why.push_str(&format!(" (its keys: {})", keys.join(", ")));
                }
                format!("{why}: {NOT_STARTED}")
            }
            // Whether an optional ref to an unreadable source defines the variable is not known:
            // the entry says so rather than pretending it is absent.
            KeyLookup::Unknown(why) => format!("could not read {} {}: {why}", r.kind, r.name),
        };
        self.problem(
            r.origin(),
            r.kind,
            r.name,
            Some(r.key),
            r.optional,
            problem.clone(),
        );
        self.define(
            r.var,
            EnvValue::Unavailable(problem),
            Binding::unknown(),
            origin,
        );
    }
}

/// An `envFrom` entry being read.
struct EnvFromRef<'a> {
    index: usize,
    kind: SourceKind,
    name: &'a str,
    prefix: &'a str,
    optional: bool,
    origin: &'a str,
}

/// A `configMapKeyRef`/`secretKeyRef` of `env[index]`.
struct KeyRef<'a> {
    var: &'a str,
    index: usize,
    kind: SourceKind,
    name: &'a str,
    key: &'a str,
    optional: bool,
}

impl KeyRef<'_> {
    fn origin(&self) -> String {
        let field = match self.kind {
            SourceKind::ConfigMap => "configMapKeyRef",
            SourceKind::Secret => "secretKeyRef",
        };
        format!("env[{}] {field} {}/{}", self.index, self.name, self.key)
    }
}

/// A `configMapKeyRef`/`secretKeyRef` after looking it up.
enum KeyLookup {
    Value(String),
    NoSource,
    NoKey(Vec<String>),
    Unknown(String),
}

fn key_lookup<T>(
    found: Lookup<&BTreeMap<String, T>>,
    key: &str,
    value: impl Fn(&T) -> &str,
) -> KeyLookup {
    match found {
        Lookup::Found(data) => match data.get(key) {
            Some(v) => KeyLookup::Value(value(v).to_owned()),
            None => KeyLookup::NoKey(data.keys().cloned().collect()),
        },
        Lookup::Missing => KeyLookup::NoSource,
        Lookup::Unknown(why) => KeyLookup::Unknown(why),
    }
}

const NOT_STARTED: &str = "the container cannot start (CreateContainerConfigError)";

/// Computes the container's environment, command and args as the kubelet would.
pub fn expand(input: &Input<'_>) -> Expansion {
    let c = input.container;
    let env: &[EnvVar] = c.env.as_deref().unwrap_or_default();
    let links = service_env(input);
    let link_index = links
        .iter()
        .enumerate()
        .map(|(i, l)| (l.name.clone(), i))
        .collect();
    let mut b = Builder {
        entries: Vec::new(),
        bindings: Vec::new(),
        index: HashMap::new(),
        links,
        link_index,
        env,
        problems: Vec::new(),
    };

    // envFrom, in order; ConfigMapRef is looked at before SecretRef, as in the kubelet's switch.
    for (i, ef) in c.env_from.iter().flatten().enumerate() {
        let prefix = ef.prefix.as_deref().unwrap_or("");
        if let Some(cm) = &ef.config_map_ref {
            let origin = format!("envFrom[{i}] configMapRef {}", cm.name);
            let src = EnvFromRef {
                index: i,
                kind: SourceKind::ConfigMap,
                name: &cm.name,
                prefix,
                optional: cm.optional.unwrap_or(false),
                origin: &origin,
            };
            match input.sources.config_map(&cm.name) {
                Lookup::Found(data) => {
                    for (k, v) in data {
                        b.env_from_key(&src, k, v);
                    }
                }
                other => b.source_missing(&src, other.map(|_| ())),
            }
        } else if let Some(sr) = &ef.secret_ref {
            let origin = format!("envFrom[{i}] secretRef {}", sr.name);
            let src = EnvFromRef {
                index: i,
                kind: SourceKind::Secret,
                name: &sr.name,
                prefix,
                optional: sr.optional.unwrap_or(false),
                origin: &origin,
            };
            match input.sources.secret(&sr.name) {
                Lookup::Found(data) => {
                    for (k, v) in data {
                        b.env_from_key(&src, k, v.expose());
                    }
                }
                other => b.source_missing(&src, other.map(|_| ())),
            }
        }
    }

    // env, in order: a literal value is expanded against what is defined so far.
    for (i, e) in env.iter().enumerate() {
        let origin = Origin::Env { index: i };
        let raw = e.value.as_deref().unwrap_or("");
        let Some(vf) = e.value_from.as_ref().filter(|_| raw.is_empty()) else {
            let x = expand_raw(raw, |name| b.resolve(name, i));
            let binding = Binding::of(&x);
            b.define(&e.name, EnvValue::Text(x), binding, origin);
            continue;
        };
        if let Some(f) = &vf.field_ref {
            let what = format!("fieldRef {}", f.field_path);
            b.define(
                &e.name,
                EnvValue::RuntimeOnly(what),
                Binding::unknown(),
                origin,
            );
        } else if let Some(r) = &vf.resource_field_ref {
            let what = match r.container_name.as_deref().filter(|n| !n.is_empty()) {
                Some(cn) => format!("resourceFieldRef {} of container {cn}", r.resource),
                None => format!("resourceFieldRef {}", r.resource),
            };
            b.define(
                &e.name,
                EnvValue::RuntimeOnly(what),
                Binding::unknown(),
                origin,
            );
        } else if let Some(k) = &vf.config_map_key_ref {
            let r = KeyRef {
                var: &e.name,
                index: i,
                kind: SourceKind::ConfigMap,
                name: &k.name,
                key: &k.key,
                optional: k.optional.unwrap_or(false),
            };
            let found = key_lookup(input.sources.config_map(&k.name), &k.key, String::as_str);
            b.key_ref(&r, found);
        } else if let Some(k) = &vf.secret_key_ref {
            let r = KeyRef {
                var: &e.name,
                index: i,
                kind: SourceKind::Secret,
                name: &k.name,
                key: &k.key,
                optional: k.optional.unwrap_or(false),
            };
            let found = key_lookup(input.sources.secret(&k.name), &k.key, Secret::expose);
            b.key_ref(&r, found);
        } else {
            // A valueFrom naming no source this API version knows: the kubelet sets "".
            let x = Expanded::literal("");
            let binding = Binding::of(&x);
            b.define(&e.name, EnvValue::Text(x), binding, origin);
        }
    }

    // The service-link variables nothing replaced come last.
    let Builder {
        mut entries,
        mut bindings,
        mut index,
        links,
        problems,
        ..
    } = b;
    for l in links {
        if index.contains_key(&l.name) {
            continue;
        }
        index.insert(l.name.clone(), entries.len());
        entries.push(EnvEntry {
            name: l.name.clone(),
            value: EnvValue::Text(Expanded::literal(l.binding.value.clone())),
            origin: Origin::ServiceLink { service: l.service },
            overridden: Vec::new(),
        });
        bindings.push(l.binding);
    }

    // command and args: against the complete final environment (ExpandContainerCommandAndArgs).
    let final_env = |name: &str| match index.get(name) {
        Some(&i) => Resolve::Value(&bindings[i]),
        None => Resolve::Undefined,
    };
    let command = c
        .command
        .iter()
        .flatten()
        .map(|s| expand_raw(s, final_env))
        .collect();
    let args = c
        .args
        .iter()
        .flatten()
        .map(|s| expand_raw(s, final_env))
        .collect();

    Expansion {
        vars: entries,
        command,
        args,
        problems,
    }
}

#[cfg(test)]
mod growth_tests {
    use super::*;

    #[test]
    fn chained_doubling_is_bounded() {
        // V0 = "xx…", Vn = $(Vn-1)$(Vn-1): 2^40 bytes if expanded without a bound.
        let mut vars = BTreeMap::new();
        vars.insert("V0".to_owned(), "x".repeat(64));
        let mut last = Expanded::literal("");
        for n in 1..40 {
            let raw = format!("$(V{p})$(V{p})", p = n - 1);
            last = expand_str(&raw, &vars);
            vars.insert(format!("V{n}"), last.expose().to_owned());
        }
        assert!(
            last.expose().len() <= MAX_EXPANDED_BYTES,
            "{}",
            last.expose().len()
        );
        assert!(last.has_unresolved() || last.expose().contains("$("));
    }

    struct NoSources;
    impl Sources for NoSources {
        fn config_map(&self, _: &str) -> Lookup<&BTreeMap<String, String>> {
            Lookup::Missing
        }
        fn secret(&self, _: &str) -> Lookup<&BTreeMap<String, Secret>> {
            Lookup::Missing
        }
    }

    #[test]
    fn the_fuzzers_self_reference_stays_bounded() {
        // The fuzzer's input: 7 entries `A` = "$(A)" x 16, each expanding the previous one
        // 16-fold (1 GiB unbounded).
        let env: Vec<EnvVar> = (0..7)
            .map(|_| EnvVar {
                name: "A".into(),
                value: Some("$(A)".repeat(16)),
                value_from: None,
            })
            .collect();
        let container = Container {
            name: "c".into(),
            env: Some(env),
            ..Default::default()
        };
        let x = expand(&Input {
            container: &container,
            enable_service_links: false,
            services: &[],
            master: None,
            sources: &NoSources,
        });
        let a = x.get("A").and_then(|e| e.value.expanded()).expect("A");
        assert!(
            a.expose().len() <= MAX_EXPANDED_BYTES,
            "{}",
            a.expose().len()
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{
        ConfigMapEnvSource, ConfigMapKeySelector, EnvFromSource, EnvVarSource, ObjectFieldSelector,
        SecretEnvSource, SecretKeySelector,
    };
    use proptest::prelude::*;

    // --- fixtures ------------------------------------------------------------------------------

    #[derive(Default)]
    struct TestSources {
        config_maps: BTreeMap<String, BTreeMap<String, String>>,
        secrets: BTreeMap<String, BTreeMap<String, Secret>>,
        forbidden: BTreeSet<String>,
    }

    impl TestSources {
        fn config_map(mut self, name: &str, data: &[(&str, &str)]) -> Self {
            let data = data
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect();
            self.config_maps.insert(name.to_owned(), data);
            self
        }

        fn secret(mut self, name: &str, data: &[(&str, &str)]) -> Self {
            let data = data
                .iter()
                .map(|(k, v)| ((*k).to_owned(), Secret::new(*v)))
                .collect();
            self.secrets.insert(name.to_owned(), data);
            self
        }

        fn forbid(mut self, name: &str) -> Self {
            self.forbidden.insert(name.to_owned());
            self
        }
    }

    impl Sources for TestSources {
        fn config_map(&self, name: &str) -> Lookup<&BTreeMap<String, String>> {
            if self.forbidden.contains(name) {
                return Lookup::Unknown("forbidden".into());
            }
            self.config_maps
                .get(name)
                .map_or(Lookup::Missing, Lookup::Found)
        }

        fn secret(&self, name: &str) -> Lookup<&BTreeMap<String, Secret>> {
            if self.forbidden.contains(name) {
                return Lookup::Unknown("forbidden".into());
            }
            self.secrets
                .get(name)
                .map_or(Lookup::Missing, Lookup::Found)
        }
    }

    fn val(name: &str, value: &str) -> EnvVar {
        EnvVar {
            name: name.into(),
            value: Some(value.into()),
            value_from: None,
        }
    }

    fn from(name: &str, source: EnvVarSource) -> EnvVar {
        EnvVar {
            name: name.into(),
            value: None,
            value_from: Some(source),
        }
    }

    fn secret_key(name: &str, secret: &str, key: &str, optional: bool) -> EnvVar {
        from(
            name,
            EnvVarSource {
                secret_key_ref: Some(SecretKeySelector {
                    name: secret.into(),
                    key: key.into(),
                    optional: optional.then_some(true),
                }),
                ..Default::default()
            },
        )
    }

    fn config_map_key(name: &str, cm: &str, key: &str, optional: bool) -> EnvVar {
        from(
            name,
            EnvVarSource {
                config_map_key_ref: Some(ConfigMapKeySelector {
                    name: cm.into(),
                    key: key.into(),
                    optional: optional.then_some(true),
                }),
                ..Default::default()
            },
        )
    }

    fn field(name: &str, path: &str) -> EnvVar {
        from(
            name,
            EnvVarSource {
                field_ref: Some(ObjectFieldSelector {
                    field_path: path.into(),
                    api_version: None,
                }),
                ..Default::default()
            },
        )
    }

    fn cm_from(name: &str, prefix: Option<&str>, optional: bool) -> EnvFromSource {
        EnvFromSource {
            config_map_ref: Some(ConfigMapEnvSource {
                name: name.into(),
                optional: optional.then_some(true),
            }),
            prefix: prefix.map(str::to_owned),
            secret_ref: None,
        }
    }

    fn secret_from(name: &str, prefix: Option<&str>) -> EnvFromSource {
        EnvFromSource {
            secret_ref: Some(SecretEnvSource {
                name: name.into(),
                optional: None,
            }),
            prefix: prefix.map(str::to_owned),
            config_map_ref: None,
        }
    }

    fn container(env: Vec<EnvVar>, env_from: Vec<EnvFromSource>) -> Container {
        Container {
            name: "elsa".into(),
            env: Some(env),
            env_from: Some(env_from),
            ..Default::default()
        }
    }

    fn run(c: &Container, sources: &TestSources) -> Expansion {
        expand(&Input {
            container: c,
            enable_service_links: true,
            services: &[],
            master: None,
            sources,
        })
    }

    fn text<'e>(x: &'e Expansion, name: &str) -> &'e Expanded {
        x.get(name)
            .and_then(|e| e.value.expanded())
            .unwrap_or_else(|| panic!("{name} has no known value in {x:?}"))
    }

    fn vars(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn postgres_service() -> ServiceLink {
        ServiceLink {
            name: "postgres".into(),
            cluster_ip: "10.96.0.12".into(),
            ports: vec![ServicePort {
                name: None,
                port: 5432,
                protocol: "TCP".into(),
            }],
        }
    }

    fn master_service() -> ServiceLink {
        ServiceLink {
            name: "kubernetes".into(),
            cluster_ip: "10.96.0.1".into(),
            ports: vec![ServicePort {
                name: Some("https".into()),
                port: 443,
                protocol: "TCP".into(),
            }],
        }
    }

    // --- expand.go's own test table ------------------------------------------------------------

    /// kubernetes/kubernetes third_party/forked/golang/expansion/expand_test.go, doExpansionTest.
    #[test]
    fn expand_go_test_table() {
        let ctx = vars(&[
            ("VAR_A", "A"),
            ("VAR_B", "B"),
            ("VAR_C", "C"),
            ("VAR_REF", "$(VAR_A)"),
            ("VAR_EMPTY", ""),
        ]);
        let cases: &[(&str, &str, &str)] = &[
            ("whole string", "$(VAR_A)", "A"),
            ("repeat", "$(VAR_A)-$(VAR_A)", "A-A"),
            ("beginning", "$(VAR_A)-1", "A-1"),
            ("middle", "___$(VAR_B)___", "___B___"),
            ("end", "___$(VAR_C)", "___C"),
            ("compound", "$(VAR_A)_$(VAR_B)_$(VAR_C)", "A_B_C"),
            ("escape & expand", "$$(VAR_B)_$(VAR_A)", "$(VAR_B)_A"),
            (
                "compound escape",
                "$$(VAR_A)_$$(VAR_B)",
                "$(VAR_A)_$(VAR_B)",
            ),
            ("mixed in escapes", "f000-$$VAR_A", "f000-$VAR_A"),
            ("backslash escape ignored", "foo\\$(VAR_C)bar", "foo\\Cbar"),
            (
                "backslash escape ignored 2",
                "foo\\\\$(VAR_C)bar",
                "foo\\\\Cbar",
            ),
            (
                "lots of backslashes",
                "foo\\\\\\\\$(VAR_A)bar",
                "foo\\\\\\\\Abar",
            ),
            (
                "nested var references",
                "$(VAR_A$(VAR_B))",
                "$(VAR_A$(VAR_B))",
            ),
            (
                "nested var references second type",
                "$(VAR_A$(VAR_B)",
                "$(VAR_A$(VAR_B)",
            ),
            ("value is a reference", "$(VAR_REF)", "$(VAR_A)"),
            (
                "value is a reference x 2",
                "%%$(VAR_REF)--$(VAR_REF)%%",
                "%%$(VAR_A)--$(VAR_A)%%",
            ),
            ("empty var", "foo$(VAR_EMPTY)bar", "foobar"),
            (
                "unterminated expression",
                "foo$(VAR_Awhoops!",
                "foo$(VAR_Awhoops!",
            ),
            (
                "expression without operator",
                "f00__(VAR_A)__",
                "f00__(VAR_A)__",
            ),
            ("shell special vars pass through", "$?_boo_$!", "$?_boo_$!"),
            ("bare operators are ignored", "$VAR_A", "$VAR_A"),
            (
                "undefined vars are passed through",
                "$(VAR_DNE)",
                "$(VAR_DNE)",
            ),
            (
                "multiple (even) operators, var undefined",
                "$$$$$$(BIG_MONEY)",
                "$$$(BIG_MONEY)",
            ),
            (
                "multiple (even) operators, var defined",
                "$$$$$$(VAR_A)",
                "$$$(VAR_A)",
            ),
            (
                "multiple (odd) operators, var undefined",
                "$$$$$$$(GOOD_ODDS)",
                "$$$$(GOOD_ODDS)",
            ),
            (
                "multiple (odd) operators, var defined",
                "$$$$$$$(VAR_A)",
                "$$$A",
            ),
            ("missing open expression", "$VAR_A)", "$VAR_A)"),
            ("shell syntax ignored", "${VAR_A}", "${VAR_A}"),
            (
                "trailing incomplete expression not consumed",
                "$(VAR_B)_______$(A",
                "B_______$(A",
            ),
            (
                "trailing incomplete expression, no content",
                "$(VAR_C)_______$(",
                "C_______$(",
            ),
            (
                "operator at end of input string is preserved",
                "$(VAR_A)foobarzab$",
                "Afoobarzab$",
            ),
            (
                "shell escaped incomplete expr",
                "foo-\\$(VAR_A",
                "foo-\\$(VAR_A",
            ),
            ("lots of $( in middle", "--$($($($($--", "--$($($($($--"),
            (
                "lots of $( in beginning",
                "$($($($($--foo$(",
                "$($($($($--foo$(",
            ),
            ("lots of $( at end", "foo0--$($($($(", "foo0--$($($($("),
            (
                "escaped operators in variable names are not escaped",
                "$(foo$$var)",
                "$(foo$$var)",
            ),
            ("newline not expanded", "\n", "\n"),
        ];
        for (name, input, expected) in cases {
            let x = expand_str(input, &ctx);
            assert_eq!(x.expose(), *expected, "{name}: {input:?}");
            assert_eq!(x.raw(), *input, "{name}");
        }
    }

    /// expand_test.go TestMapReference: each value expanded against those before it.
    #[test]
    fn chained_references_expand_in_order() {
        let c = container(
            vec![
                val("FOO", "bar"),
                val("ZOO", "$(FOO)-1"),
                val("BLU", "$(ZOO)-2"),
            ],
            vec![],
        );
        let x = run(&c, &TestSources::default());
        assert_eq!(text(&x, "ZOO").expose(), "bar-1");
        assert_eq!(text(&x, "BLU").expose(), "bar-1-2");
        assert!(x.problems.is_empty());
    }

    #[test]
    fn references_record_their_spans_and_states() {
        let x = expand_str("a$(B)c$$(D)$(E", &vars(&[("B", "b")]));
        assert_eq!(x.expose(), "abc$(D)$(E");
        assert_eq!(
            x.refs,
            vec![
                Reference {
                    name: "B".into(),
                    span: 1..5,
                    state: RefState::Resolved
                },
                Reference {
                    name: "D".into(),
                    span: 6..11,
                    state: RefState::Escaped
                },
            ]
        );
        assert!(!x.has_unresolved());
        assert!(expand_str("$(NOPE)", &vars(&[])).has_unresolved());
    }

    #[test]
    fn a_dollar_before_a_non_ascii_character_keeps_the_character() {
        // Go copies only the first byte as a rune ("$é" → "$Ã\xa9"); see expand_raw.
        let x = expand_str("p$é$(A)€", &vars(&[("A", "ü")]));
        assert_eq!(x.expose(), "p$éü€");
    }

    #[test]
    fn a_self_reference_sees_the_earlier_definition() {
        let c = container(
            vec![val("PATH", "$(PATH):/app"), val("NEW", "$(NEW)")],
            vec![cm_from("cfg", None, false)],
        );
        let x = run(
            &c,
            &TestSources::default().config_map("cfg", &[("PATH", "/bin")]),
        );
        assert_eq!(text(&x, "PATH").expose(), "/bin:/app");
        assert_eq!(text(&x, "NEW").expose(), "$(NEW)");
        assert_eq!(text(&x, "NEW").refs[0].state, RefState::Undefined);
    }

    // --- the Kubernetes docs example -----------------------------------------------------------

    /// "Define Dependent Environment Variables" (kubernetes.io, dependent-envars.yaml).
    fn dependent_envars() -> Vec<EnvVar> {
        vec![
            val("SERVICE_PORT", "80"),
            val("SERVICE_IP", "172.17.0.1"),
            val(
                "UNCHANGED_REFERENCE",
                "$(PROTOCOL)://$(SERVICE_IP):$(SERVICE_PORT)",
            ),
            val("PROTOCOL", "https"),
            val(
                "SERVICE_ADDRESS",
                "$(PROTOCOL)://$(SERVICE_IP):$(SERVICE_PORT)",
            ),
            val(
                "ESCAPED_REFERENCE",
                "$$(PROTOCOL)://$(SERVICE_IP):$(SERVICE_PORT)",
            ),
        ]
    }

    #[test]
    fn docs_dependent_environment_variables() {
        let x = run(
            &container(dependent_envars(), vec![]),
            &TestSources::default(),
        );
        let unchanged = text(&x, "UNCHANGED_REFERENCE");
        assert_eq!(unchanged.expose(), "$(PROTOCOL)://172.17.0.1:80");
        assert_eq!(unchanged.refs[0].state, RefState::DefinedLater { index: 3 });
        assert_eq!(unchanged.refs[1].state, RefState::Resolved);
        assert!(unchanged.has_unresolved());
        assert_eq!(
            text(&x, "SERVICE_ADDRESS").expose(),
            "https://172.17.0.1:80"
        );
        let escaped = text(&x, "ESCAPED_REFERENCE");
        assert_eq!(escaped.expose(), "$(PROTOCOL)://172.17.0.1:80");
        assert_eq!(escaped.refs[0].state, RefState::Escaped);
        assert!(!escaped.has_unresolved());
        let names: Vec<&str> = x.vars.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "SERVICE_PORT",
                "SERVICE_IP",
                "UNCHANGED_REFERENCE",
                "PROTOCOL",
                "SERVICE_ADDRESS",
                "ESCAPED_REFERENCE"
            ]
        );
    }

    // --- the Elsa bug --------------------------------------------------------------------------

    const CONN: &str = "ConnectionStrings__PostgreSql";
    const CONN_RAW: &str = "Host=postgres;Password=$(POSTGRES_PASSWORD)";

    fn elsa_sources() -> TestSources {
        TestSources::default().secret("postgres-secret", &[("password", "hunter2")])
    }

    #[test]
    fn elsa_connection_string_before_password_stays_literal() {
        let c = container(
            vec![
                val(CONN, CONN_RAW),
                secret_key("POSTGRES_PASSWORD", "postgres-secret", "password", false),
            ],
            vec![],
        );
        let x = run(&c, &elsa_sources());
        let conn = text(&x, CONN);
        assert_eq!(
            conn.expose(),
            CONN_RAW,
            "Kubernetes leaves the text literal"
        );
        assert_eq!(conn.refs.len(), 1);
        assert_eq!(conn.refs[0].name, "POSTGRES_PASSWORD");
        assert_eq!(conn.refs[0].state, RefState::DefinedLater { index: 1 });
        assert_eq!(&CONN_RAW[conn.refs[0].span.clone()], "$(POSTGRES_PASSWORD)");
        assert!(conn.has_unresolved());
        assert!(!conn.is_secret());
        assert_eq!(conn.display(), CONN_RAW);
        assert!(x.problems.is_empty());
    }

    #[test]
    fn elsa_password_first_resolves_and_stays_masked() {
        let c = container(
            vec![
                secret_key("POSTGRES_PASSWORD", "postgres-secret", "password", false),
                val(CONN, CONN_RAW),
            ],
            vec![],
        );
        let x = run(&c, &elsa_sources());
        let conn = text(&x, CONN);
        assert_eq!(conn.refs[0].state, RefState::Resolved);
        assert!(!conn.has_unresolved());
        assert!(conn.is_secret());
        assert_eq!(conn.expose(), "Host=postgres;Password=hunter2");
        assert_eq!(conn.display(), "Host=postgres;Password=*****");
        assert_eq!(conn.raw(), CONN_RAW);
        let pw = x.get("POSTGRES_PASSWORD").expect("password var");
        assert!(matches!(
            pw.value,
            EnvValue::FromSource { secret: true, .. }
        ));
        let shown = format!("{x:?} {}", serde_json::to_string(&x).expect("serialize"));
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("Password=*****"));
    }

    #[test]
    fn elsa_secret_from_env_from_is_masked_everywhere() {
        let c = container(
            vec![val(CONN, "Host=postgres;Password=$(DB_POSTGRES_PASSWORD)")],
            vec![secret_from("postgres-secret", Some("DB_POSTGRES_"))],
        );
        let s = TestSources::default().secret("postgres-secret", &[("PASSWORD", "hunter2")]);
        let x = run(&c, &s);
        let pw = text(&x, "DB_POSTGRES_PASSWORD");
        assert_eq!(pw.expose(), "hunter2");
        assert_eq!(pw.raw(), MASK, "raw never reveals a Secret value");
        assert_eq!(pw.display(), MASK);
        assert_eq!(text(&x, CONN).display(), "Host=postgres;Password=*****");
        let shown = format!("{x:?}{}", serde_json::to_string(&x).expect("json"));
        assert!(!shown.contains("hunter2"), "{shown}");
    }

    // --- envFrom and env -----------------------------------------------------------------------

    #[test]
    fn env_from_with_prefix_and_origins() {
        let c = container(vec![], vec![cm_from("elsa-config", Some("ELSA_"), false)]);
        let s = TestSources::default().config_map("elsa-config", &[("A", "1"), ("b.c", "2")]);
        let x = run(&c, &s);
        assert_eq!(text(&x, "ELSA_A").expose(), "1");
        // Since RelaxedEnvironmentVariableValidation the kubelet injects dotted keys as they are.
        assert_eq!(text(&x, "ELSA_b.c").expose(), "2");
        assert_eq!(
            x.get("ELSA_A").map(|e| &e.origin),
            Some(&Origin::EnvFrom {
                index: 0,
                kind: SourceKind::ConfigMap,
                name: "elsa-config".into(),
                key: "A".into()
            })
        );
        assert!(x.problems.is_empty());
    }

    #[test]
    fn env_overrides_env_from_and_records_it() {
        let c = container(
            vec![val("LOG_LEVEL", "Debug")],
            vec![
                cm_from("base", None, false),
                cm_from("overlay", None, false),
            ],
        );
        let s = TestSources::default()
            .config_map("base", &[("LOG_LEVEL", "Warning")])
            .config_map("overlay", &[("LOG_LEVEL", "Information")]);
        let x = run(&c, &s);
        let e = x.get("LOG_LEVEL").expect("var");
        assert_eq!(text(&x, "LOG_LEVEL").expose(), "Debug");
        assert_eq!(e.origin, Origin::Env { index: 0 });
        assert_eq!(e.overridden.len(), 2);
        assert!(matches!(&e.overridden[0], Origin::EnvFrom { index: 0, .. }));
        assert!(matches!(&e.overridden[1], Origin::EnvFrom { index: 1, .. }));
        assert_eq!(x.vars.len(), 1);
    }

    #[test]
    fn a_reference_sees_the_env_from_value_even_when_env_redefines_it_later() {
        let c = container(
            vec![val("URL", "$(HOST):5432"), val("HOST", "new-host")],
            vec![cm_from("cfg", None, false)],
        );
        let s = TestSources::default().config_map("cfg", &[("HOST", "old-host")]);
        let x = run(&c, &s);
        assert_eq!(text(&x, "URL").expose(), "old-host:5432");
        assert_eq!(text(&x, "URL").refs[0].state, RefState::Resolved);
        assert_eq!(text(&x, "HOST").expose(), "new-host");
    }

    #[test]
    fn value_from_values_are_never_expanded() {
        let c = container(
            vec![val("A", "x"), config_map_key("B", "cfg", "b", false)],
            vec![],
        );
        let s = TestSources::default().config_map("cfg", &[("b", "$(A)")]);
        let x = run(&c, &s);
        let b = text(&x, "B");
        assert_eq!(b.expose(), "$(A)");
        assert!(b.refs.is_empty());
    }

    #[test]
    fn optional_missing_refs_define_nothing_and_are_no_problem() {
        let c = container(
            vec![
                secret_key("NO_SECRET", "absent", "k", true),
                config_map_key("NO_KEY", "cfg", "absent", true),
                config_map_key("KEEP", "absent", "k", true),
            ],
            vec![cm_from("absent", None, true), cm_from("cfg", None, false)],
        );
        let s = TestSources::default().config_map("cfg", &[("KEEP", "from-env-from")]);
        let x = run(&c, &s);
        assert!(x.problems.is_empty(), "{:?}", x.problems);
        assert!(x.get("NO_SECRET").is_none());
        assert!(x.get("NO_KEY").is_none());
        // The kubelet `continue`s: the earlier envFrom definition stays.
        assert_eq!(text(&x, "KEEP").expose(), "from-env-from");
    }

    #[test]
    fn non_optional_missing_key_is_a_problem() {
        let c = container(
            vec![
                val("A", "a"),
                val("B", "b"),
                secret_key("POSTGRES_PASSWORD", "postgres-secret", "pasword", false),
            ],
            vec![],
        );
        let x = run(&c, &elsa_sources());
        assert_eq!(x.problems.len(), 1);
        let p = &x.problems[0];
        assert_eq!(p.origin, "env[2] secretKeyRef postgres-secret/pasword");
        assert_eq!(p.kind, SourceKind::Secret);
        assert_eq!(p.name, "postgres-secret");
        assert_eq!(p.key.as_deref(), Some("pasword"));
        assert!(!p.optional);
        assert!(p.why.contains("CreateContainerConfigError"), "{}", p.why);
        assert!(
            p.why.contains("password"),
            "lists the keys it has: {}",
            p.why
        );
        assert!(matches!(
            x.get("POSTGRES_PASSWORD").map(|e| &e.value),
            Some(EnvValue::Unavailable(_))
        ));
    }

    #[test]
    fn missing_sources_and_unreadable_sources_are_problems() {
        let c = container(
            vec![config_map_key("X", "locked", "k", true)],
            vec![
                cm_from("elsa-config", None, false),
                secret_from("gone", None),
            ],
        );
        let x = run(&c, &TestSources::default().forbid("locked"));
        let origins: Vec<&str> = x.problems.iter().map(|p| p.origin.as_str()).collect();
        assert_eq!(
            origins,
            [
                "envFrom[0] configMapRef elsa-config",
                "envFrom[1] secretRef gone",
                "env[0] configMapKeyRef locked/k"
            ]
        );
        assert!(x.problems[2].optional);
        assert!(x.problems[2].why.contains("forbidden"));
        assert!(matches!(
            x.get("X").map(|e| &e.value),
            Some(EnvValue::Unavailable(_))
        ));
    }

    #[test]
    fn field_refs_are_runtime_only_and_so_is_what_references_them() {
        let c = container(
            vec![
                field("POD_IP", "status.podIP"),
                val("URL", "http://$(POD_IP):8080"),
                val("OUTER", "<$(URL)>"),
            ],
            vec![],
        );
        let x = run(&c, &TestSources::default());
        assert_eq!(
            x.get("POD_IP").map(|e| &e.value),
            Some(&EnvValue::RuntimeOnly("fieldRef status.podIP".into()))
        );
        let url = text(&x, "URL");
        assert_eq!(url.refs[0].state, RefState::RuntimeOnly);
        assert_eq!(url.expose(), "http://$(POD_IP):8080");
        assert!(!url.has_unresolved());
        assert_eq!(text(&x, "OUTER").refs[0].state, RefState::RuntimeOnly);
    }

    #[test]
    fn a_nul_byte_in_a_source_value_is_a_problem() {
        let c = container(vec![], vec![cm_from("cfg", None, false)]);
        let x = run(
            &c,
            &TestSources::default().config_map("cfg", &[("K", "a\0b")]),
        );
        assert_eq!(x.problems.len(), 1);
        assert!(x.problems[0].why.contains("NUL"));
    }

    // --- service links -------------------------------------------------------------------------

    #[test]
    fn service_link_variables_for_postgres() {
        let got = service_link_vars(&[postgres_service()]);
        let want = [
            ("POSTGRES_SERVICE_HOST", "10.96.0.12"),
            ("POSTGRES_SERVICE_PORT", "5432"),
            ("POSTGRES_PORT", "tcp://10.96.0.12:5432"),
            ("POSTGRES_PORT_5432_TCP", "tcp://10.96.0.12:5432"),
            ("POSTGRES_PORT_5432_TCP_PROTO", "tcp"),
            ("POSTGRES_PORT_5432_TCP_PORT", "5432"),
            ("POSTGRES_PORT_5432_TCP_ADDR", "10.96.0.12"),
        ];
        let want: Vec<(String, String)> = want
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        assert_eq!(got, want);
    }

    #[test]
    fn service_link_names_ports_ipv6_and_skipped_services() {
        let svc = ServiceLink {
            name: "elsa-server".into(),
            cluster_ip: "fd00::10".into(),
            ports: vec![
                ServicePort {
                    name: Some("http".into()),
                    port: 8080,
                    protocol: String::new(),
                },
                ServicePort {
                    name: Some("grpc-api".into()),
                    port: 9090,
                    protocol: "TCP".into(),
                },
            ],
        };
        let headless = ServiceLink {
            cluster_ip: "None".into(),
            name: "db-headless".into(),
            ..postgres_service()
        };
        let external = ServiceLink {
            cluster_ip: String::new(),
            name: "external-db".into(),
            ..postgres_service()
        };
        let got: BTreeMap<String, String> = service_link_vars(&[svc, headless, external])
            .into_iter()
            .collect();
        assert_eq!(got["ELSA_SERVER_SERVICE_PORT"], "8080");
        assert_eq!(got["ELSA_SERVER_SERVICE_PORT_HTTP"], "8080");
        assert_eq!(got["ELSA_SERVER_SERVICE_PORT_GRPC_API"], "9090");
        assert_eq!(got["ELSA_SERVER_PORT"], "tcp://[fd00::10]:8080");
        assert_eq!(got["ELSA_SERVER_PORT_9090_TCP_ADDR"], "fd00::10");
        assert!(
            !got.keys()
                .any(|k| k.starts_with("DB_HEADLESS") || k.starts_with("EXTERNAL"))
        );
    }

    #[test]
    fn service_links_are_lowest_and_enable_service_links_false_keeps_kubernetes() {
        let c = container(
            vec![
                val("POSTGRES_SERVICE_HOST", "override"),
                // A classic trap: POSTGRES_PORT is the service link's URL, not a port number.
                val(CONN, "Host=$(POSTGRES_SERVICE_HOST);Port=$(POSTGRES_PORT)"),
            ],
            vec![],
        );
        let services = [postgres_service()];
        let master = master_service();
        let sources = TestSources::default();
        let on = expand(&Input {
            container: &c,
            enable_service_links: true,
            services: &services,
            master: Some(&master),
            sources: &sources,
        });
        assert_eq!(
            text(&on, CONN).expose(),
            "Host=override;Port=tcp://10.96.0.12:5432"
        );
        let host = on.get("POSTGRES_SERVICE_HOST").expect("host");
        assert_eq!(host.origin, Origin::Env { index: 0 });
        assert_eq!(
            host.overridden,
            vec![Origin::ServiceLink {
                service: "postgres".into()
            }]
        );
        assert_eq!(
            on.get("POSTGRES_PORT").map(|e| &e.origin),
            Some(&Origin::ServiceLink {
                service: "postgres".into()
            })
        );
        assert_eq!(text(&on, "KUBERNETES_SERVICE_HOST").expose(), "10.96.0.1");
        assert_eq!(text(&on, "KUBERNETES_SERVICE_PORT_HTTPS").expose(), "443");
        // env-defined names first, then the service links nothing replaced.
        assert_eq!(on.vars[0].name, "POSTGRES_SERVICE_HOST");
        assert_eq!(on.vars[1].name, CONN);

        let off = expand(&Input {
            container: &c,
            enable_service_links: false,
            services: &services,
            master: Some(&master),
            sources: &sources,
        });
        assert!(off.get("POSTGRES_PORT").is_none());
        assert!(!off.vars.iter().any(|e| e.name.starts_with("POSTGRES_PORT")));
        assert_eq!(text(&off, "KUBERNETES_SERVICE_HOST").expose(), "10.96.0.1");
        assert_eq!(
            text(&off, "KUBERNETES_PORT").expose(),
            "tcp://10.96.0.1:443"
        );
        let conn = text(&off, CONN);
        assert_eq!(conn.expose(), "Host=override;Port=$(POSTGRES_PORT)");
        assert_eq!(conn.refs[1].state, RefState::Undefined);
    }

    #[test]
    fn a_kubernetes_service_in_the_namespace_replaces_the_master() {
        let own = ServiceLink {
            cluster_ip: "10.96.5.5".into(),
            ..master_service()
        };
        let master = master_service();
        let c = container(vec![], vec![]);
        let sources = TestSources::default();
        let x = expand(&Input {
            container: &c,
            enable_service_links: true,
            services: std::slice::from_ref(&own),
            master: Some(&master),
            sources: &sources,
        });
        assert_eq!(text(&x, "KUBERNETES_SERVICE_HOST").expose(), "10.96.5.5");
        assert_eq!(
            x.vars
                .iter()
                .filter(|e| e.name == "KUBERNETES_SERVICE_HOST")
                .count(),
            1
        );
    }

    // --- command and args ----------------------------------------------------------------------

    #[test]
    fn command_and_args_expand_against_the_final_environment() {
        let mut c = container(
            vec![
                secret_key("POSTGRES_PASSWORD", "postgres-secret", "password", false),
                val("LATE", "late-value"),
            ],
            vec![],
        );
        c.command = Some(vec!["/app/elsa".into(), "$(LATE)".into()]);
        c.args = Some(vec![
            "--cs=Password=$(POSTGRES_PASSWORD)".into(),
            "$(NOWHERE)".into(),
            "$$(LATE)".into(),
            "${LATE}".into(),
        ]);
        let x = run(&c, &elsa_sources());
        assert_eq!(x.command[1].expose(), "late-value");
        assert_eq!(x.command[1].refs[0].state, RefState::Resolved);
        assert_eq!(x.args[0].display(), "--cs=Password=*****");
        assert_eq!(x.args[0].expose(), "--cs=Password=hunter2");
        assert_eq!(x.args[1].refs[0].state, RefState::Undefined);
        assert_eq!(x.args[2].expose(), "$(LATE)");
        assert_eq!(
            x.args[3].expose(),
            "${LATE}",
            "shell syntax is not Kubernetes syntax"
        );
    }

    #[test]
    fn a_var_defined_later_is_available_to_args_but_not_to_values() {
        let mut c = container(vec![val("A", "$(B)"), val("B", "b")], vec![]);
        c.args = Some(vec!["$(B)".into()]);
        let x = run(&c, &TestSources::default());
        assert_eq!(text(&x, "A").expose(), "$(B)");
        assert_eq!(x.args[0].expose(), "b");
    }

    // --- shell-style refs and dependency order -------------------------------------------------

    #[test]
    fn shell_style_refs_are_found() {
        let s = "Password=${POSTGRES_PASSWORD};Host=$HOST;$(KUBE);$$ESC;${1};$5;${X:-y}";
        let got = shell_style_refs(s);
        let names: Vec<&str> = got.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["POSTGRES_PASSWORD", "HOST", "X"]);
        assert_eq!(&s[got[0].1.clone()], "${POSTGRES_PASSWORD}");
        assert_eq!(&s[got[1].1.clone()], "$HOST");
        assert_eq!(&s[got[2].1.clone()], "${X:-y}");
    }

    fn names(env: &[EnvVar]) -> Vec<&str> {
        env.iter().map(|e| e.name.as_str()).collect()
    }

    #[test]
    fn dependency_order_fixes_the_elsa_bug() {
        let env = vec![
            val("ASPNETCORE_URLS", "http://+:8080"),
            val(CONN, CONN_RAW),
            secret_key("POSTGRES_PASSWORD", "postgres-secret", "password", false),
        ];
        let fixed = dependency_order(&env).expect("no cycle");
        assert_eq!(
            names(&fixed),
            ["ASPNETCORE_URLS", "POSTGRES_PASSWORD", CONN]
        );
        let x = run(&container(fixed, vec![]), &elsa_sources());
        assert_eq!(text(&x, CONN).display(), "Host=postgres;Password=*****");
    }

    #[test]
    fn dependency_order_keeps_a_correct_list_and_fixes_the_docs_example() {
        let ok = vec![
            val("A", "a"),
            val("B", "$(A)"),
            val("C", "$(B)$(A)"),
            val("PATH", "$(PATH):/x"),
        ];
        assert_eq!(dependency_order(&ok), Some(ok.clone()));
        let fixed = dependency_order(&dependent_envars()).expect("no cycle");
        assert_eq!(
            names(&fixed),
            [
                "SERVICE_PORT",
                "SERVICE_IP",
                "PROTOCOL",
                "UNCHANGED_REFERENCE",
                "SERVICE_ADDRESS",
                "ESCAPED_REFERENCE"
            ]
        );
    }

    #[test]
    fn dependency_order_detects_a_cycle() {
        let env = vec![val("A", "$(B)"), val("B", "x$(C)"), val("C", "$(A)")];
        assert_eq!(dependency_order(&env), None);
        // An escaped reference is not a dependency.
        let escaped = vec![val("A", "$$(B)"), val("B", "$(A)")];
        assert_eq!(dependency_order(&escaped), Some(escaped.clone()));
    }

    // --- properties ----------------------------------------------------------------------------

    fn any_text() -> impl Strategy<Value = String> {
        prop_oneof![
            any::<String>(),
            "[$()a-zA-Z_é€ {}\\\\]{0,40}",
            "(\\$\\(?[A-Z]{0,3}\\)?|[a-z]|\\$\\$){0,12}",
        ]
    }

    proptest! {
        #[test]
        fn never_panics(s in any_text(), t in any_text()) {
            let ctx = vars(&[("A", "a$(B)"), ("B", "")]);
            let x = expand_str(&s, &ctx);
            for r in &x.refs {
                prop_assert!(s.get(r.span.clone()).is_some_and(|t| t.starts_with('$')));
            }
            let _ = x.display();
            let _ = shell_style_refs(&s);
            let mut c = container(
                vec![val("A", &s), val("B", &t), secret_key("S", "sec", "k", false), val(&t, &s)],
                vec![cm_from("cfg", Some(&t), false)],
            );
            c.args = Some(vec![s.clone(), t.clone()]);
            let sources = TestSources::default()
                .secret("sec", &[("k", &t)])
                .config_map("cfg", &[("K", &s)]);
            let _ = run(&c, &sources);
            let _ = dependency_order(c.env.as_deref().unwrap_or_default());
        }

        #[test]
        fn without_a_dollar_expansion_is_the_identity(s in any_text()) {
            let s = s.replace('$', "");
            let x = expand_str(&s, &vars(&[("A", "x")]));
            prop_assert_eq!(x.expose(), s.as_str());
            prop_assert!(x.refs.is_empty());
        }

        #[test]
        fn doubling_every_dollar_escapes_everything(s in any_text()) {
            let x = expand_str(&s.replace('$', "$$"), &vars(&[("A", "x"), ("B", "")]));
            prop_assert_eq!(x.expose(), s.as_str());
            prop_assert!(!x.has_unresolved());
        }

        #[test]
        fn display_never_shows_a_secret(
            // The marker keeps a short secret from matching names in the output ("A" in "ALL_k").
            secret in "[A-Z0-9]{1,24}".prop_map(|s| format!("¤{s}¤")),
            before in "[a-z;=$() ]{0,20}",
            after in "[a-z;=$() ]{0,20}",
        ) {
            let raw = format!("{before}$(PW){after}");
            let mut c = container(
                vec![
                    secret_key("PW", "sec", "k", false),
                    val("CONN", &raw),
                    val("OUTER", "[$(CONN)|$(PW)]"),
                ],
                vec![secret_from("sec", Some("ALL_"))],
            );
            c.args = Some(vec![raw.clone(), "$(OUTER)".into()]);
            let sources = TestSources::default().secret("sec", &[("k", &secret)]);
            let x = run(&c, &sources);
            let mut shown = format!("{x:?}");
            shown.push_str(&serde_json::to_string(&x).expect("json"));
            for e in &x.vars {
                if let Some(v) = e.value.expanded() {
                    shown.push_str(&v.display());
                    shown.push_str(v.raw());
                }
            }
            for a in x.args.iter().chain(&x.command) {
                shown.push_str(&a.display());
            }
            prop_assert!(!shown.contains(&secret), "{}", shown);
            // …while the real value is there for use.
            let outer = text(&x, "OUTER");
            prop_assert!(outer.expose().contains(&secret));
            prop_assert!(outer.is_secret());
        }
    }
}

#[cfg(test)]
mod later_reference_tests {
    use super::*;

    fn var(name: &str, value: &str) -> EnvVar {
        EnvVar {
            name: name.into(),
            value: Some(value.into()),
            ..Default::default()
        }
    }

    /// The guide's migration Job: the connection string before the password it references.
    #[test]
    fn a_reference_to_a_later_variable_is_listed_with_both_positions() {
        let env = [
            var(
                "ConnectionStrings__PostgreSql",
                "Host=postgres;Password=$(POSTGRES_PASSWORD)",
            ),
            var("POSTGRES_PASSWORD", "x"),
        ];
        assert_eq!(
            later_references(&env),
            vec![LaterReference {
                at: 0,
                var: "ConnectionStrings__PostgreSql".into(),
                name: "POSTGRES_PASSWORD".into(),
                defined_at: 1,
            }]
        );
        // Defined earlier too, never defined, or escaped: not a later reference.
        let env = [
            var("A", "1"),
            var("B", "$(A) $(NOPE) $$(C)"),
            var("A", "2"),
            var("C", "3"),
        ];
        assert_eq!(later_references(&env), vec![]);
    }
}
