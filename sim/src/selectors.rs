//! Label and field selectors with the Kubernetes API server's semantics.
//!
//! This module is pure: it parses `labelSelector` / `fieldSelector` query
//! strings exactly like `k8s.io/apimachinery/pkg/labels` and `pkg/fields`
//! (same grammar, same validation, same error wording) and evaluates them
//! against JSON objects. The server turns a [`SelectorError`] into a
//! `400 BadRequest` Status whose message is the error's text.

use serde_json::Value;

/// A selector that the API server would reject; the text is the message the
/// real server puts in its `BadRequest` Status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SelectorError(pub String);

impl std::fmt::Display for SelectorError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for SelectorError {}

// ---------------------------------------------------------------------------
// Label selectors
// ---------------------------------------------------------------------------

/// Operator of one label requirement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LabelOp {
    /// `k=v`
    Equals,
    /// `k==v`
    DoubleEquals,
    /// `k!=v`
    NotEquals,
    /// `k in (a,b)`
    In,
    /// `k notin (a,b)`
    NotIn,
    /// `k`
    Exists,
    /// `!k`
    DoesNotExist,
    /// `k>5`
    GreaterThan,
    /// `k<5`
    LessThan,
}

/// One requirement of a label selector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Requirement {
    /// Label key.
    pub key: String,
    /// Operator.
    pub op: LabelOp,
    /// Values, sorted and de-duplicated like the Go `sets.String`.
    pub values: Vec<String>,
}

impl Requirement {
    /// Whether a label set satisfies this requirement.
    fn matches(&self, labels: Option<&serde_json::Map<String, Value>>) -> bool {
        let value = labels
            .and_then(|l| l.get(&self.key))
            .and_then(Value::as_str);
        match self.op {
            LabelOp::Equals | LabelOp::DoubleEquals | LabelOp::In => {
                value.is_some_and(|v| self.values.iter().any(|x| x == v))
            }
            LabelOp::NotEquals | LabelOp::NotIn => {
                value.is_none_or(|v| !self.values.iter().any(|x| x == v))
            }
            LabelOp::Exists => value.is_some(),
            LabelOp::DoesNotExist => value.is_none(),
            LabelOp::GreaterThan | LabelOp::LessThan => {
                let Some(have) = value.and_then(|v| v.parse::<i64>().ok()) else {
                    return false;
                };
                let Some(want) = self.values.first().and_then(|v| v.parse::<i64>().ok()) else {
                    return false;
                };
                if self.op == LabelOp::GreaterThan {
                    have > want
                } else {
                    have < want
                }
            }
        }
    }
}

/// A parsed label selector: all requirements must hold (AND).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LabelSelector {
    /// The requirements, in the order given.
    pub requirements: Vec<Requirement>,
}

impl LabelSelector {
    /// Parse a selector with the grammar of `labels.Parse`.
    pub fn parse(input: &str) -> Result<LabelSelector, SelectorError> {
        let tokens = lex(input);
        let mut parser = Parser { tokens, pos: 0 };
        parser.parse().map_err(SelectorError)
    }

    /// True when the selector selects everything.
    pub fn is_empty(&self) -> bool {
        self.requirements.is_empty()
    }

    /// Whether an object's `metadata.labels` satisfy the selector.
    pub fn matches_object(&self, obj: &Value) -> bool {
        let labels = obj
            .get("metadata")
            .and_then(|m| m.get("labels"))
            .and_then(Value::as_object);
        self.matches_labels(labels)
    }

    /// Whether a label map satisfies the selector.
    pub fn matches_labels(&self, labels: Option<&serde_json::Map<String, Value>>) -> bool {
        self.requirements.iter().all(|r| r.matches(labels))
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    Ident,
    In,
    NotIn,
    Eq,
    DoubleEq,
    NotEq,
    Not,
    Open,
    Close,
    Comma,
    Gt,
    Lt,
    End,
    Error,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ctx {
    Values,
    KeyAndOperator,
}

fn is_special(c: char) -> bool {
    matches!(c, '=' | '!' | '(' | ')' | ',' | '>' | '<')
}

fn is_ws(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\r' | '\n')
}

fn keyword(s: &str) -> Option<Tok> {
    Some(match s {
        ")" => Tok::Close,
        "," => Tok::Comma,
        "!" => Tok::Not,
        "==" => Tok::DoubleEq,
        "=" => Tok::Eq,
        ">" => Tok::Gt,
        "in" => Tok::In,
        "<" => Tok::Lt,
        "!=" => Tok::NotEq,
        "notin" => Tok::NotIn,
        "(" => Tok::Open,
        _ => return None,
    })
}

fn lex(input: &str) -> Vec<(Tok, String)> {
    let chars: Vec<char> = input.chars().collect();
    let mut i = 0;
    let mut out = Vec::new();
    loop {
        while i < chars.len() && is_ws(chars[i]) {
            i += 1;
        }
        if i >= chars.len() {
            out.push((Tok::End, String::new()));
            return out;
        }
        if is_special(chars[i]) {
            let mut buffer = String::new();
            let mut last: Option<(Tok, String)> = None;
            while i < chars.len() && is_special(chars[i]) {
                buffer.push(chars[i]);
                if let Some(t) = keyword(&buffer) {
                    last = Some((t, buffer.clone()));
                    i += 1;
                } else if last.is_some() {
                    break;
                } else {
                    i += 1;
                }
            }
            match last {
                Some(t) => out.push(t),
                None => out.push((
                    Tok::Error,
                    format!("error expected: keyword found '{buffer}'"),
                )),
            }
        } else {
            let mut buffer = String::new();
            while i < chars.len() && !is_special(chars[i]) && !is_ws(chars[i]) {
                buffer.push(chars[i]);
                i += 1;
            }
            match keyword(&buffer) {
                Some(t) => out.push((t, buffer)),
                None => out.push((Tok::Ident, buffer)),
            }
        }
    }
}

struct Parser {
    tokens: Vec<(Tok, String)>,
    pos: usize,
}

impl Parser {
    fn peek(&self, ctx: Ctx) -> (Tok, String) {
        let (tok, lit) = self
            .tokens
            .get(self.pos)
            .cloned()
            .unwrap_or((Tok::End, String::new()));
        if ctx == Ctx::Values && (tok == Tok::In || tok == Tok::NotIn) {
            (Tok::Ident, lit)
        } else {
            (tok, lit)
        }
    }

    fn consume(&mut self, ctx: Ctx) -> (Tok, String) {
        let t = self.peek(ctx);
        if self.pos < self.tokens.len() {
            self.pos += 1;
        }
        t
    }

    fn parse(&mut self) -> Result<LabelSelector, String> {
        let mut requirements = Vec::new();
        loop {
            let (tok, lit) = self.peek(Ctx::Values);
            match tok {
                Tok::Ident | Tok::Not => {
                    let r = self
                        .parse_requirement()
                        .map_err(|e| format!("unable to parse requirement: {e}"))?;
                    requirements.push(r);
                    let (t, l) = self.consume(Ctx::Values);
                    match t {
                        Tok::End => return Ok(LabelSelector { requirements }),
                        Tok::Comma => {
                            let (t2, l2) = self.peek(Ctx::Values);
                            if t2 != Tok::Ident && t2 != Tok::Not {
                                return Err(format!(
                                    "found '{l2}', expected: identifier after ','"
                                ));
                            }
                        }
                        _ => return Err(format!("found '{l}', expected: ',' or 'end of string'")),
                    }
                }
                Tok::End => return Ok(LabelSelector { requirements }),
                _ => {
                    return Err(format!(
                        "found '{lit}', expected: !, identifier, or 'end of string'"
                    ));
                }
            }
        }
    }

    fn parse_requirement(&mut self) -> Result<Requirement, String> {
        let (key, op) = self.parse_key_and_infer_operator()?;
        if let Some(op) = op {
            return new_requirement(key, op, Vec::new());
        }
        let op = self.parse_operator()?;
        let values = match op {
            LabelOp::In | LabelOp::NotIn => self.parse_values()?,
            _ => self.parse_exact_value()?,
        };
        new_requirement(key, op, values)
    }

    fn parse_key_and_infer_operator(&mut self) -> Result<(String, Option<LabelOp>), String> {
        let mut op = None;
        let (mut tok, mut lit) = self.consume(Ctx::Values);
        if tok == Tok::Not {
            op = Some(LabelOp::DoesNotExist);
            (tok, lit) = self.consume(Ctx::Values);
        }
        if tok != Tok::Ident {
            return Err(format!("found '{lit}', expected: identifier"));
        }
        validate_label_key(&lit)?;
        let (next, _) = self.peek(Ctx::Values);
        if next == Tok::End || next == Tok::Comma {
            if op.is_none() {
                op = Some(LabelOp::Exists);
            }
        } else if op == Some(LabelOp::DoesNotExist) {
            return Err(format!("found '{lit}', expected: ',' or 'end of string'"));
        }
        Ok((lit, op))
    }

    fn parse_operator(&mut self) -> Result<LabelOp, String> {
        let (tok, lit) = self.consume(Ctx::KeyAndOperator);
        Ok(match tok {
            Tok::In => LabelOp::In,
            Tok::Eq => LabelOp::Equals,
            Tok::DoubleEq => LabelOp::DoubleEquals,
            Tok::Gt => LabelOp::GreaterThan,
            Tok::Lt => LabelOp::LessThan,
            Tok::NotIn => LabelOp::NotIn,
            Tok::NotEq => LabelOp::NotEquals,
            _ => {
                return Err(format!(
                    "found '{lit}', expected: in, notin, =, ==, !=, gt, lt"
                ));
            }
        })
    }

    fn parse_values(&mut self) -> Result<Vec<String>, String> {
        let (tok, lit) = self.consume(Ctx::Values);
        if tok != Tok::Open {
            return Err(format!("found '{lit}' expected: '('"));
        }
        let (tok, lit) = self.peek(Ctx::Values);
        match tok {
            Tok::Ident | Tok::Comma => {
                let s = self.parse_identifiers_list()?;
                let (tok, _) = self.consume(Ctx::Values);
                if tok != Tok::Close {
                    return Err(format!("found '{lit}', expected: ')'"));
                }
                Ok(s)
            }
            Tok::Close => {
                self.consume(Ctx::Values);
                Ok(vec![String::new()])
            }
            _ => Err(format!("found '{lit}', expected: ',', ')' or identifier")),
        }
    }

    fn parse_identifiers_list(&mut self) -> Result<Vec<String>, String> {
        let mut set: Vec<String> = Vec::new();
        let insert = |set: &mut Vec<String>, v: String| {
            if !set.contains(&v) {
                set.push(v);
            }
        };
        loop {
            let (tok, lit) = self.consume(Ctx::Values);
            match tok {
                Tok::Ident => {
                    insert(&mut set, lit);
                    let (tok2, lit2) = self.peek(Ctx::Values);
                    match tok2 {
                        Tok::Comma => continue,
                        Tok::Close => {
                            set.sort();
                            return Ok(set);
                        }
                        _ => return Err(format!("found '{lit2}', expected: ',' or ')'")),
                    }
                }
                Tok::Comma => {
                    if set.is_empty() {
                        insert(&mut set, String::new());
                    }
                    let (tok2, _) = self.peek(Ctx::Values);
                    if tok2 == Tok::Close {
                        insert(&mut set, String::new());
                        set.sort();
                        return Ok(set);
                    }
                    if tok2 == Tok::Comma {
                        self.consume(Ctx::Values);
                        insert(&mut set, String::new());
                    }
                }
                _ => return Err(format!("found '{lit}', expected: ',', or identifier")),
            }
        }
    }

    fn parse_exact_value(&mut self) -> Result<Vec<String>, String> {
        let (tok, _) = self.peek(Ctx::Values);
        if tok == Tok::End || tok == Tok::Comma {
            return Ok(vec![String::new()]);
        }
        let (tok, lit) = self.consume(Ctx::Values);
        if tok == Tok::Ident {
            Ok(vec![lit])
        } else {
            Err(format!("found '{lit}', expected: identifier"))
        }
    }
}

fn new_requirement(key: String, op: LabelOp, values: Vec<String>) -> Result<Requirement, String> {
    let mut errs: Vec<String> = Vec::new();
    if let Err(e) = validate_label_key(&key) {
        errs.push(e);
    }
    match op {
        LabelOp::In | LabelOp::NotIn => {
            if values.is_empty() {
                errs.push(
                    "values: Invalid value: []string{}: for 'in', 'notin' operators, values set can't be empty"
                        .to_string(),
                );
            }
        }
        LabelOp::Equals | LabelOp::DoubleEquals | LabelOp::NotEquals => {
            if values.len() != 1 {
                errs.push(format!(
                    "values: Invalid value: {}: exact-match compatibility requires one single value",
                    go_string_slice(&values)
                ));
            }
        }
        LabelOp::Exists | LabelOp::DoesNotExist => {
            if !values.is_empty() {
                errs.push(format!(
                    "values: Invalid value: {}: values set must be empty for exists and does not exist",
                    go_string_slice(&values)
                ));
            }
        }
        LabelOp::GreaterThan | LabelOp::LessThan => {
            if values.len() != 1 {
                errs.push(format!(
                    "values: Invalid value: {}: for 'Gt', 'Lt' operators, exactly one value is required",
                    go_string_slice(&values)
                ));
            }
            for (i, v) in values.iter().enumerate() {
                if v.parse::<i64>().is_err() {
                    errs.push(format!(
                        "values[{i}]: Invalid value: {v:?}: for 'Gt', 'Lt' operators, the value must be an integer"
                    ));
                }
            }
        }
    }
    if !matches!(op, LabelOp::GreaterThan | LabelOp::LessThan) {
        for (i, v) in values.iter().enumerate() {
            let problems = label_value_problems(v);
            if !problems.is_empty() {
                errs.push(format!(
                    "values[{i}][{key}]: Invalid value: {v:?}: {}",
                    problems.join("; ")
                ));
            }
        }
    }
    match errs.len() {
        0 => Ok(Requirement { key, op, values }),
        1 => Err(errs.remove(0)),
        _ => Err(format!("[{}]", errs.join(", "))),
    }
}

fn go_string_slice(values: &[String]) -> String {
    let inner: Vec<String> = values.iter().map(|v| format!("{v:?}")).collect();
    format!("[]string{{{}}}", inner.join(", "))
}

fn regex_error(msg: &str, fmt: &str, examples: &[&str]) -> String {
    let mut s = format!("{msg} (e.g. ");
    for (i, ex) in examples.iter().enumerate() {
        if i > 0 {
            s.push_str(" or ");
        }
        s.push_str(&format!("'{ex}', "));
    }
    s.push_str(&format!("regex used for validation is '{fmt}')"));
    s
}

const QUALIFIED_NAME_FMT: &str = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]";
const QUALIFIED_NAME_MSG: &str = "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character";
const LABEL_VALUE_FMT: &str = "(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?";
const LABEL_VALUE_MSG: &str = "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character";
const DNS1123_SUBDOMAIN_FMT: &str =
    "[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*";
const DNS1123_SUBDOMAIN_MSG: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character";

/// `([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]` (non-empty).
fn is_qualified_name_part(s: &str) -> bool {
    let b = s.as_bytes();
    match (b.first(), b.last()) {
        (Some(f), Some(l)) => {
            f.is_ascii_alphanumeric()
                && l.is_ascii_alphanumeric()
                && b.iter()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
        }
        _ => false,
    }
}

fn is_dns1123_label(s: &str) -> bool {
    let b = s.as_bytes();
    match (b.first(), b.last()) {
        (Some(f), Some(l)) => {
            (f.is_ascii_lowercase() || f.is_ascii_digit())
                && (l.is_ascii_lowercase() || l.is_ascii_digit())
                && b.iter()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        }
        _ => false,
    }
}

fn dns1123_subdomain_problems(s: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if s.len() > 253 {
        errs.push("must be no more than 253 characters".to_string());
    }
    if !s.split('.').all(is_dns1123_label) {
        errs.push(regex_error(
            DNS1123_SUBDOMAIN_MSG,
            DNS1123_SUBDOMAIN_FMT,
            &["example.com"],
        ));
    }
    errs
}

fn qualified_name_problems(value: &str) -> Vec<String> {
    let mut errs = Vec::new();
    let parts: Vec<&str> = value.split('/').collect();
    let name = match parts.as_slice() {
        [name] => *name,
        [prefix, name] => {
            if prefix.is_empty() {
                errs.push("prefix part must be non-empty".to_string());
            } else {
                for m in dns1123_subdomain_problems(prefix) {
                    errs.push(format!("prefix part {m}"));
                }
            }
            *name
        }
        _ => {
            errs.push(format!(
                "a qualified name {} with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')",
                regex_error(
                    QUALIFIED_NAME_MSG,
                    QUALIFIED_NAME_FMT,
                    &["MyName", "my.name", "123-abc"]
                )
            ));
            return errs;
        }
    };
    if name.is_empty() {
        errs.push("name part must be non-empty".to_string());
    } else if name.len() > 63 {
        errs.push("name part must be no more than 63 characters".to_string());
    }
    if !is_qualified_name_part(name) {
        errs.push(format!(
            "name part {}",
            regex_error(
                QUALIFIED_NAME_MSG,
                QUALIFIED_NAME_FMT,
                &["MyName", "my.name", "123-abc"]
            )
        ));
    }
    errs
}

fn label_value_problems(v: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if v.len() > 63 {
        errs.push("must be no more than 63 characters".to_string());
    }
    if !v.is_empty() && !is_qualified_name_part(v) {
        errs.push(regex_error(
            LABEL_VALUE_MSG,
            LABEL_VALUE_FMT,
            &["MyValue", "my_value", "12345"],
        ));
    }
    errs
}

fn validate_label_key(key: &str) -> Result<(), String> {
    let problems = qualified_name_problems(key);
    if problems.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "key: Invalid value: {key:?}: {}",
            problems.join("; ")
        ))
    }
}

// ---------------------------------------------------------------------------
// Field selectors
// ---------------------------------------------------------------------------

/// One term of a field selector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldTerm {
    /// Field path, e.g. `status.phase` (not trimmed, like the real parser).
    pub field: String,
    /// True for `!=`.
    pub negated: bool,
    /// Unescaped value.
    pub value: String,
}

/// A parsed field selector: all terms must hold (AND).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldSelector {
    /// Terms, sorted like the real parser sorts them.
    pub terms: Vec<FieldTerm>,
}

impl FieldSelector {
    /// Parse with the grammar of `fields.ParseSelector`.
    pub fn parse(input: &str) -> Result<FieldSelector, SelectorError> {
        let mut parts = split_terms(input);
        parts.sort();
        let mut terms = Vec::new();
        for part in parts {
            if part.is_empty() {
                continue;
            }
            let Some((lhs, op, rhs)) = split_term(&part) else {
                return Err(SelectorError(format!(
                    "invalid selector: '{input}'; can't understand '{part}'"
                )));
            };
            let value = unescape_value(rhs)?;
            terms.push(FieldTerm {
                field: lhs.to_string(),
                negated: op == "!=",
                value,
            });
        }
        Ok(FieldSelector { terms })
    }

    /// True when the selector selects everything.
    pub fn is_empty(&self) -> bool {
        self.terms.is_empty()
    }

    /// Check every field is one the resource supports; the error carries the
    /// real API server's message.
    pub fn validate_for(&self, resource: &str) -> Result<(), SelectorError> {
        for t in &self.terms {
            if !field_supported(resource, &t.field) {
                return Err(SelectorError(format!(
                    "field label not supported: {}",
                    t.field
                )));
            }
        }
        Ok(())
    }

    /// Whether an object of `resource` satisfies the selector. Unsupported
    /// fields never match (call [`FieldSelector::validate_for`] first).
    pub fn matches(&self, resource: &str, obj: &Value) -> bool {
        self.terms
            .iter()
            .all(|t| match field_value(resource, obj, &t.field) {
                Some(v) => (v == t.value) != t.negated,
                None => false,
            })
    }

    /// Like [`FieldSelector::matches`], with field values from `lookup`
    /// (`None` = unsupported field, which never matches).
    pub fn matches_with<'a>(&self, lookup: impl Fn(&str) -> Option<&'a str>) -> bool {
        self.terms.iter().all(|t| match lookup(&t.field) {
            Some(v) => (v == t.value) != t.negated,
            None => false,
        })
    }
}

fn split_terms(input: &str) -> Vec<String> {
    if input.is_empty() {
        return Vec::new();
    }
    let mut terms = Vec::new();
    let mut cur = String::new();
    let mut escaped = false;
    for c in input.chars() {
        if escaped {
            cur.push(c);
            escaped = false;
        } else if c == '\\' {
            cur.push(c);
            escaped = true;
        } else if c == ',' {
            terms.push(std::mem::take(&mut cur));
        } else {
            cur.push(c);
        }
    }
    terms.push(cur);
    terms
}

fn split_term(term: &str) -> Option<(&str, &'static str, &str)> {
    for (i, _) in term.char_indices() {
        let rest = &term[i..];
        for op in ["!=", "==", "="] {
            if rest.starts_with(op) {
                return Some((&term[..i], op, &term[i + op.len()..]));
            }
        }
    }
    None
}

fn unescape_value(s: &str) -> Result<String, SelectorError> {
    if !s.contains(['\\', ',', '=']) {
        return Ok(s.to_string());
    }
    let mut out = String::new();
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some(n @ ('\\' | ',' | '=')) => out.push(n),
                Some(n) => {
                    return Err(SelectorError(format!(
                        "invalid field selector: invalid escape sequence: \\{n}"
                    )));
                }
                None => {
                    return Err(SelectorError(
                        "invalid field selector: invalid escape sequence: \\".to_string(),
                    ));
                }
            },
            ',' | '=' => {
                return Err(SelectorError(format!(
                    "invalid field selector: unescaped character in value: {}",
                    u32::from(c)
                )));
            }
            other => out.push(other),
        }
    }
    Ok(out)
}

/// Field labels the real API server accepts for `resource` (plural name).
pub fn supported_fields(resource: &str) -> &'static [&'static str] {
    match resource {
        "pods" => &[
            "metadata.name",
            "metadata.namespace",
            "spec.nodeName",
            "spec.restartPolicy",
            "spec.schedulerName",
            "spec.serviceAccountName",
            "spec.hostNetwork",
            "status.phase",
            "status.podIP",
            "status.nominatedNodeName",
        ],
        "events" => &[
            "metadata.name",
            "metadata.namespace",
            "involvedObject.kind",
            "involvedObject.namespace",
            "involvedObject.name",
            "involvedObject.uid",
            "involvedObject.apiVersion",
            "involvedObject.resourceVersion",
            "involvedObject.fieldPath",
            "reason",
            "reportingComponent",
            "source",
            "type",
        ],
        "secrets" => &["metadata.name", "metadata.namespace", "type"],
        "namespaces" => &["metadata.name", "status.phase"],
        "replicasets" => &["metadata.name", "metadata.namespace", "status.replicas"],
        "services" => &[
            "metadata.name",
            "metadata.namespace",
            "spec.clusterIP",
            "spec.type",
        ],
        _ => &["metadata.name", "metadata.namespace"],
    }
}

/// Whether `field` may be used in a field selector on `resource`.
pub fn field_supported(resource: &str, field: &str) -> bool {
    supported_fields(resource).contains(&field)
}

/// The string value the API server compares for `field`, `None` when the
/// field is not supported for the resource. Missing values are `""`.
pub fn field_value(resource: &str, obj: &Value, field: &str) -> Option<String> {
    if !field_supported(resource, field) {
        return None;
    }
    let path: &[&str] = match field {
        "source" => &["source", "component"],
        "reportingComponent" => &["reportingComponent"],
        "reason" => &["reason"],
        "type" => &["type"],
        _ => return Some(value_at(obj, &field.split('.').collect::<Vec<_>>())),
    };
    Some(value_at(obj, path))
}

fn value_at(obj: &Value, path: &[&str]) -> String {
    let mut cur = obj;
    for p in path {
        match cur.get(p) {
            Some(v) => cur = v,
            None => return String::new(),
        }
    }
    match cur {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(labels: Value) -> Value {
        json!({"metadata": {"name": "p", "namespace": "elsa", "labels": labels}})
    }

    fn sel(s: &str) -> LabelSelector {
        LabelSelector::parse(s).expect("valid selector")
    }

    fn err(s: &str) -> String {
        LabelSelector::parse(s).expect_err("invalid selector").0
    }

    #[test]
    fn empty_selects_everything() {
        assert!(sel("").is_empty());
        assert!(sel("   ").is_empty());
        assert!(sel("").matches_object(&pod(json!({}))));
        assert!(sel("").matches_object(&json!({"metadata": {}})));
    }

    #[test]
    fn equals_and_double_equals() {
        let p = pod(json!({"app": "elsa-server", "tier": "api"}));
        assert!(sel("app=elsa-server").matches_object(&p));
        assert!(sel("app==elsa-server").matches_object(&p));
        assert!(sel("app = elsa-server").matches_object(&p));
        assert!(!sel("app=postgres").matches_object(&p));
        assert!(!sel("missing=x").matches_object(&p));
        assert_eq!(sel("app==x").requirements[0].op, LabelOp::DoubleEquals);
    }

    #[test]
    fn empty_value_equals() {
        let p = pod(json!({"a": ""}));
        assert!(sel("a=").matches_object(&p));
        assert!(sel("a=,b!=").matches_object(&p));
        assert!(!sel("b=").matches_object(&p));
    }

    #[test]
    fn not_equals_matches_absent() {
        let p = pod(json!({"app": "elsa-server"}));
        assert!(!sel("app!=elsa-server").matches_object(&p));
        assert!(sel("app!=postgres").matches_object(&p));
        assert!(sel("tier!=api").matches_object(&p));
    }

    #[test]
    fn in_and_notin() {
        let p = pod(json!({"env": "prod"}));
        assert!(sel("env in (prod,staging)").matches_object(&p));
        assert!(sel("env in (prod)").matches_object(&p));
        assert!(!sel("env in (dev, staging)").matches_object(&p));
        assert!(!sel("other in (prod)").matches_object(&p));
        assert!(!sel("env notin (prod,staging)").matches_object(&p));
        assert!(sel("env notin (dev)").matches_object(&p));
        assert!(sel("other notin (prod)").matches_object(&p));
        assert_eq!(
            sel("env in (b,a,b)").requirements[0].values,
            vec!["a".to_string(), "b".to_string()]
        );
        // `in` and `notin` may be used as keys and values.
        assert!(sel("in in (notin)").matches_object(&pod(json!({"in": "notin"}))));
    }

    #[test]
    fn empty_sets() {
        assert_eq!(sel("a in ()").requirements[0].values, vec![String::new()]);
        assert_eq!(
            sel("a in (,x)").requirements[0].values,
            vec![String::new(), "x".to_string()]
        );
        assert_eq!(
            sel("a in (x,)").requirements[0].values,
            vec![String::new(), "x".to_string()]
        );
        assert!(sel("a in ()").matches_object(&pod(json!({"a": ""}))));
    }

    #[test]
    fn exists_and_not_exists() {
        let p = pod(json!({"app": "x"}));
        assert!(sel("app").matches_object(&p));
        assert!(!sel("!app").matches_object(&p));
        assert!(sel("!tier").matches_object(&p));
        assert!(!sel("tier").matches_object(&p));
        assert!(sel("! tier").matches_object(&p));
    }

    #[test]
    fn greater_and_less_than() {
        let p = pod(json!({"n": "5"}));
        assert!(sel("n>4").matches_object(&p));
        assert!(!sel("n>5").matches_object(&p));
        assert!(sel("n<6").matches_object(&p));
        assert!(!sel("m<6").matches_object(&p));
        assert!(!sel("n<6").matches_object(&pod(json!({"n": "x"}))));
        assert!(
            err("n>x").contains("the value must be an integer"),
            "{}",
            err("n>x")
        );
    }

    #[test]
    fn comma_is_and() {
        let p = pod(json!({"app": "elsa-server", "tier": "api"}));
        assert!(sel("app=elsa-server,tier=api").matches_object(&p));
        assert!(!sel("app=elsa-server,tier=db").matches_object(&p));
        assert!(sel("app in (elsa-server),!canary,tier").matches_object(&p));
        assert_eq!(sel("a,b=c,!d,e in (f)").requirements.len(), 4);
    }

    #[test]
    fn prefixed_keys() {
        let p = pod(json!({"app.kubernetes.io/name": "elsa"}));
        assert!(sel("app.kubernetes.io/name=elsa").matches_object(&p));
        assert!(sel("app.kubernetes.io/name").matches_object(&p));
    }

    #[test]
    fn malformed_messages_match_apimachinery() {
        assert_eq!(
            err("app in (a"),
            "unable to parse requirement: found '', expected: ',' or ')'"
        );
        assert_eq!(err("app=a,"), "found '', expected: identifier after ','");
        assert_eq!(
            err("app=a b"),
            "found 'b', expected: ',' or 'end of string'"
        );
        assert_eq!(
            err("=a"),
            "found '=', expected: !, identifier, or 'end of string'"
        );
        assert_eq!(
            err("app in a"),
            "unable to parse requirement: found 'a' expected: '('"
        );
        assert_eq!(
            err("app a"),
            "unable to parse requirement: found 'a', expected: in, notin, =, ==, !=, gt, lt"
        );
        assert_eq!(
            err("!app=b"),
            "unable to parse requirement: found 'app', expected: ',' or 'end of string'"
        );
        assert_eq!(
            err("!=x"),
            "found '!=', expected: !, identifier, or 'end of string'"
        );
        assert_eq!(
            err("a in (b c)"),
            "unable to parse requirement: found 'c', expected: ',' or ')'"
        );
        assert_eq!(
            err("a=(b)"),
            "unable to parse requirement: found '(', expected: identifier"
        );
        assert_eq!(
            err("a in (=)"),
            "unable to parse requirement: found '=', expected: ',', ')' or identifier"
        );
    }

    #[test]
    fn invalid_keys_and_values() {
        let e = err("bad@key=x");
        assert!(e.starts_with("unable to parse requirement: key: Invalid value: \"bad@key\": name part must consist of alphanumeric characters"), "{e}");
        let e = err("a/b/c=x");
        assert!(e.contains("a qualified name must consist"), "{e}");
        let e = err("Bad.Prefix/x=y");
        assert!(
            e.contains("prefix part a lowercase RFC 1123 subdomain"),
            "{e}"
        );
        let e = err("app=a@b");
        assert_eq!(
            e,
            "unable to parse requirement: values[0][app]: Invalid value: \"a@b\": a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"
        );
        let long = "x".repeat(64);
        assert!(err(&format!("app={long}")).contains("must be no more than 63 characters"));
        let e = err(&format!("{long}=a"));
        assert!(
            e.contains("name part must be no more than 63 characters"),
            "{e}"
        );
    }

    #[test]
    fn field_selector_parsing() {
        let f = FieldSelector::parse("status.phase=Running,spec.nodeName!=node-1").expect("ok");
        assert_eq!(f.terms.len(), 2);
        // Sorted like the real parser.
        assert_eq!(f.terms[0].field, "spec.nodeName");
        assert!(f.terms[0].negated);
        assert_eq!(f.terms[1].field, "status.phase");
        assert!(!f.terms[1].negated);
        let f = FieldSelector::parse("metadata.name==x").expect("ok");
        assert_eq!(f.terms[0].value, "x");
        assert!(FieldSelector::parse("").expect("ok").is_empty());
        assert!(FieldSelector::parse(",,").expect("ok").is_empty());
        let f = FieldSelector::parse(r"metadata.name=a\,b\=c\\d").expect("ok");
        assert_eq!(f.terms[0].value, r"a,b=c\d");
    }

    #[test]
    fn field_selector_errors() {
        assert_eq!(
            FieldSelector::parse("metadata.name").expect_err("bad").0,
            "invalid selector: 'metadata.name'; can't understand 'metadata.name'"
        );
        assert_eq!(
            FieldSelector::parse(r"metadata.name=a\x")
                .expect_err("bad")
                .0,
            r"invalid field selector: invalid escape sequence: \x"
        );
        assert_eq!(
            FieldSelector::parse("metadata.name=a=b")
                .expect_err("bad")
                .0,
            "invalid field selector: unescaped character in value: 61"
        );
        let f = FieldSelector::parse("spec.foo=bar").expect("parses");
        assert_eq!(
            f.validate_for("pods").expect_err("unsupported").0,
            "field label not supported: spec.foo"
        );
        let f = FieldSelector::parse("status.phase=Running").expect("parses");
        assert!(f.validate_for("pods").is_ok());
        assert_eq!(
            f.validate_for("configmaps").expect_err("unsupported").0,
            "field label not supported: status.phase"
        );
        let f = FieldSelector::parse("type=Opaque").expect("parses");
        assert!(f.validate_for("secrets").is_ok());
        assert!(f.validate_for("events").is_ok());
        assert!(f.validate_for("pods").is_err());
        // Not trimmed: a space makes it a different (unsupported) label.
        let f = FieldSelector::parse("metadata.name =x").expect("parses");
        assert!(f.validate_for("pods").is_err());
        let f = FieldSelector::parse("metadata.namespace=elsa").expect("parses");
        assert!(f.validate_for("namespaces").is_err());
    }

    #[test]
    fn field_selector_matching_pods() {
        let p = json!({
            "metadata": {"name": "a", "namespace": "elsa"},
            "spec": {"nodeName": "node-1", "restartPolicy": "Always", "serviceAccountName": "default"},
            "status": {"phase": "Running", "podIP": "10.244.0.5"}
        });
        let m = |s: &str| FieldSelector::parse(s).expect("ok").matches("pods", &p);
        assert!(m("metadata.name=a"));
        assert!(m("metadata.namespace=elsa"));
        assert!(!m("metadata.namespace=other"));
        assert!(m("spec.nodeName=node-1,status.phase=Running"));
        assert!(!m("spec.nodeName=node-1,status.phase!=Running"));
        assert!(m("status.phase!=Pending"));
        assert!(m("spec.restartPolicy=Always"));
        assert!(m("spec.serviceAccountName=default"));
        assert!(m("status.podIP=10.244.0.5"));
        let unscheduled =
            json!({"metadata": {"name": "b"}, "spec": {}, "status": {"phase": "Pending"}});
        let f = FieldSelector::parse("spec.nodeName=").expect("ok");
        assert!(f.matches("pods", &unscheduled));
        assert!(!f.matches("pods", &p));
        let f = FieldSelector::parse("spec.hostNetwork=false").expect("ok");
        assert!(!f.matches("pods", &p));
    }

    #[test]
    fn field_selector_matching_events_and_secrets() {
        let e = json!({
            "metadata": {"name": "x.1", "namespace": "elsa"},
            "involvedObject": {"kind": "Pod", "name": "elsa-1", "namespace": "elsa", "uid": "u1",
                               "apiVersion": "v1", "resourceVersion": "7", "fieldPath": "spec.containers{elsa}"},
            "reason": "BackOff", "type": "Warning",
            "source": {"component": "kubelet", "host": "node-1"},
            "reportingComponent": "kubelet"
        });
        let m = |s: &str| FieldSelector::parse(s).expect("ok").matches("events", &e);
        assert!(m("involvedObject.kind=Pod,involvedObject.name=elsa-1"));
        assert!(m("involvedObject.namespace=elsa"));
        assert!(m("involvedObject.uid=u1"));
        assert!(m("involvedObject.apiVersion=v1"));
        assert!(m("involvedObject.resourceVersion=7"));
        assert!(m("involvedObject.fieldPath=spec.containers{elsa}"));
        assert!(m("reason=BackOff,type=Warning"));
        assert!(!m("type=Normal"));
        assert!(m("source=kubelet"));
        assert!(m("reportingComponent=kubelet"));
        let s = json!({"metadata": {"name": "s"}, "type": "kubernetes.io/tls"});
        assert!(
            FieldSelector::parse("type=kubernetes.io/tls")
                .expect("ok")
                .matches("secrets", &s)
        );
        assert!(
            !FieldSelector::parse("type=Opaque")
                .expect("ok")
                .matches("secrets", &s)
        );
    }
}
