//! The result model: what a check found, and the report every renderer shows.
//!
//! These serde types *are* the `--json` wire format (DESIGN §5). The format is versioned by
//! `schemaVersion`; `schema/report.schema.json` is generated from these types and a test keeps the
//! committed copy in sync. Field names are camelCase on the wire. Values reach this module already
//! redacted (see `redact`).

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The wire format's version. Bump it on any incompatible change.
pub const SCHEMA_VERSION: u32 = 1;

/// The outcome of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// The check holds.
    Pass,
    /// It holds with a caveat, or a warn-severity check does not hold.
    Warn,
    /// It does not hold.
    Fail,
    /// It could not be observed (forbidden, timeout, missing fact): never a guess.
    Unknown,
    /// It was not run: a hard prerequisite did not pass, or it does not apply.
    Skip,
}

impl Status {
    pub const ALL: [Status; 5] = [
        Status::Pass,
        Status::Warn,
        Status::Fail,
        Status::Unknown,
        Status::Skip,
    ];

    /// Stops the checks that name this one as a hard prerequisite: only a failure, or a check
    /// that could not run itself. An `unknown` was not seen to fail, so it never blocks
    /// (DESIGN §3, "Unknown is not failed").
    pub fn blocks_dependents(self) -> bool {
        matches!(self, Status::Fail | Status::Skip)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pass => "pass",
            Status::Warn => "warn",
            Status::Fail => "fail",
            Status::Unknown => "unknown",
            Status::Skip => "skip",
        }
    }
}

/// One observed fact shown to the operator, with where it came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Evidence {
    pub label: String,
    pub value: String,
    /// Where the value was observed, e.g. `pod/elsa-server-x status.containerStatuses[0]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
}

impl Evidence {
    pub fn new(label: impl Into<String>, value: impl Into<String>) -> Self {
        Self {
            label: label.into(),
            value: value.into(),
            source: None,
        }
    }

    pub fn from(mut self, source: impl Into<String>) -> Self {
        self.source = Some(source.into());
        self
    }
}

/// A documented fix with the run's real names filled in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Fix {
    pub summary: String,
    pub steps: Vec<String>,
    pub commands: Vec<String>,
    pub docs: String,
    /// A generated strategic-merge patch for the workload, where the fix is mechanical
    /// (`kubectl patch <workload> --type strategic -p '<patch>'`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub patch: Option<serde_json::Value>,
}

/// One check's result, in the report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CheckResult {
    pub id: String,
    pub title: String,
    pub category: String,
    pub status: Status,
    pub duration_ms: u64,
    pub message: String,
    pub evidence: Vec<Evidence>,
    /// The prerequisites that did not pass, when `status` is `skip` for that reason.
    pub blocked_by: Vec<String>,
    /// Which documented cause the finding matched, when the check names one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cause: Option<String>,
    /// Present for warn, fail and unknown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fix: Option<Fix>,
}

/// What was examined.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Target {
    pub context: Option<String>,
    pub namespace: Option<String>,
    /// `deployment/<name>` or `statefulset/<name>`.
    pub workload: Option<String>,
    pub flavor: Option<String>,
    pub elsa_version: Option<String>,
    /// True when the cluster is elsadoctor's built-in simulation (`elsadoctor demo`).
    #[serde(default)]
    pub simulated: bool,
    /// With `simulated`: the built-in scenario and what it shows, in one line.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scenario: Option<String>,
    /// Present when the checks ran on a facts bundle (`elsadoctor replay`), not on a cluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replay: Option<ReplayOrigin>,
}

/// Where the facts of a replayed report come from: the bundle's header.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReplayOrigin {
    /// When the bundle was written (RFC 3339, UTC).
    pub created_at: String,
    /// The elsadoctor version that gathered the facts.
    pub elsadoctor: String,
    /// The API server and context the facts were gathered from.
    pub origin: String,
    /// The vantage of the original run.
    pub vantage: String,
}

impl ReplayOrigin {
    /// One line for headers: `REPLAY of facts gathered 2026-…Z by elsadoctor 0.1.0 from …`.
    pub fn banner(&self) -> String {
        format!(
            "REPLAY of facts gathered {} by elsadoctor {} from {} (vantage {}): no cluster was contacted",
            self.created_at, self.elsadoctor, self.origin, self.vantage
        )
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Tool {
    pub name: String,
    pub version: String,
}

impl Default for Tool {
    fn default() -> Self {
        Self {
            name: env!("CARGO_PKG_NAME").to_owned(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
        }
    }
}

/// Counts per status.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Summary {
    pub pass: u32,
    pub warn: u32,
    pub fail: u32,
    pub unknown: u32,
    pub skip: u32,
}

impl Summary {
    pub fn of<'a>(statuses: impl IntoIterator<Item = &'a Status>) -> Self {
        let mut s = Summary::default();
        for st in statuses {
            *s.slot(*st) += 1;
        }
        s
    }

    fn slot(&mut self, st: Status) -> &mut u32 {
        match st {
            Status::Pass => &mut self.pass,
            Status::Warn => &mut self.warn,
            Status::Fail => &mut self.fail,
            Status::Unknown => &mut self.unknown,
            Status::Skip => &mut self.skip,
        }
    }

    pub fn get(&self, st: Status) -> u32 {
        match st {
            Status::Pass => self.pass,
            Status::Warn => self.warn,
            Status::Fail => self.fail,
            Status::Unknown => self.unknown,
            Status::Skip => self.skip,
        }
    }
}

/// The whole run: the `--json` document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    pub schema_version: u32,
    pub tool: Tool,
    pub target: Target,
    /// Where database probes run from: `here`, `port-forward` (through the API to a pod behind
    /// the database Service), or `offline` for `lint`.
    pub vantage: String,
    /// RFC 3339, UTC.
    pub started_at: String,
    pub duration_ms: u64,
    pub summary: Summary,
    /// In catalogue order.
    pub checks: Vec<CheckResult>,
}

/// When warnings count against the exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FailOn {
    #[default]
    Fail,
    Warn,
}

impl Report {
    /// True when the run should exit 1: a check failed or could not be evaluated (or warned,
    /// with `--fail-on warn`).
    pub fn is_failure(&self, fail_on: FailOn) -> bool {
        self.summary.fail > 0
            || self.summary.unknown > 0
            || (fail_on == FailOn::Warn && self.summary.warn > 0)
    }

    /// Results by id, for tests and the TUI.
    pub fn by_id(&self) -> BTreeMap<&str, &CheckResult> {
        self.checks.iter().map(|c| (c.id.as_str(), c)).collect()
    }
}

/// The JSON Schema of [`Report`], pretty-printed: what `schema/report.schema.json` holds.
pub fn json_schema() -> String {
    let schema = schemars::schema_for!(Report);
    let mut s = serde_json::to_string_pretty(&schema).unwrap_or_default();
    s.push('\n');
    s
}

/// `5s`, `1.5s`, `250ms`.
pub fn humanize(d: std::time::Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{}s", d.as_secs())
    } else if d.as_secs() == 0 {
        format!("{}ms", d.as_millis())
    } else {
        format!("{:.1}s", d.as_secs_f64())
    }
}
