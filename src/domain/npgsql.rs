//! Npgsql connection strings, read the way Npgsql reads them. Elsa's `ConnectionStrings:PostgreSql`
//! holds an ADO.NET `key=value;` string that .NET's `DbConnectionStringBuilder` splits and
//! Npgsql's `NpgsqlConnectionStringBuilder` interprets; this module reproduces both steps so the
//! doctor can say exactly what Elsa will do with a string: which keywords it sets, which ones Npgsql
//! does not know (and therefore refuses to start with), which values it cannot convert, and where
//! it will connect. It turns the string into a typed [`ConnString`] and, for the doctor's own
//! probe, into a [`tokio_postgres::Config`]. Pure code: no IO, never panics, and the password
//! stays out of every `Debug`, error and rendering ([`ConnString::redacted`]).
//!
//! Sources followed (public repositories, cited by repo and path):
//! * grammar: dotnet/runtime `src/libraries/Common/src/System/Data/Common/DbConnectionOptions.Common.cs`
//!   (`GetKeyValuePair`, `ParseInternal`), `src/libraries/System.Data.Common/src/System/Data/Common/DbConnectionOptions.cs`
//!   (`AppendKeyValuePairBuilder`, the quoting rules used by [`render_pair`]) and
//!   `.../DbConnectionStringBuilder.cs` (the `ConnectionString` setter: every pair is applied in
//!   order, so the last duplicate wins, and a pair without a value *removes* the keyword);
//! * keywords, synonyms, defaults, value checks: npgsql/npgsql `src/Npgsql/NpgsqlConnectionStringBuilder.cs`
//!   (Npgsql 9.x) and `src/Npgsql.SourceGenerators/NpgsqlConnectionStringBuilderSourceGenerator.cs`
//!   with its template `NpgsqlConnectionStringBuilder.snbtxt` (a keyword is the property's
//!   `[DisplayName]`, the property name and the listed synonyms, all upper-cased; enums are parsed
//!   with `Enum.Parse(..., ignoreCase: true)`); Npgsql 10 additions from npgsql/doc
//!   `conceptual/Npgsql/release-notes/10.0.md`;
//! * hosts: `NpgsqlConnectionStringBuilder.TrySplitHostPort`/`PostProcessAndValidate` (one host) and
//!   npgsql/npgsql `src/Npgsql/NpgsqlMultiHostDataSource.cs` (`Host=a,b:5433`);
//! * startup parameters: npgsql/npgsql `src/Npgsql/Internal/NpgsqlConnector.cs` (`WriteStartupMessage`);
//! * pool sizes: npgsql/npgsql `src/Npgsql/PoolingDataSource.cs` (Max Pool Size under Min Pool Size).
//!
//! Defaults that apply to every Npgsql Elsa 3.x ships with (Npgsql 8, 9 and 10; elsa-workflows/elsa-core
//! `Directory.Packages.props` pins Npgsql.EntityFrameworkCore.PostgreSQL 9.0.x for net8/net9 and
//! 10.0.x for net10): Port 5432, Timeout 15 s, Maximum Pool Size 100, Minimum Pool Size 0,
//! SSL Mode `Prefer` (since Npgsql 6.0; `Disable` before), and since Npgsql 8.0 `Require` no longer
//! validates certificates while `Trust Server Certificate` is obsolete and does nothing
//! (npgsql/doc `conceptual/Npgsql/release-notes/8.0.md`).

use std::fmt;
use std::ops::Range;
use std::time::Duration;

use serde::Serialize;

use crate::redact::{MASK, Secret};

// ---------------------------------------------------------------------------------------------
// Keywords
// ---------------------------------------------------------------------------------------------

/// Every connection-string keyword Npgsql 9 and 10 accept (npgsql/npgsql
/// `src/Npgsql/NpgsqlConnectionStringBuilder.cs`, one variant per `[NpgsqlConnectionStringProperty]`).
/// Keywords from older Npgsql versions that were removed (`Integrated Security`,
/// `Client Certificate`, `EF Template Database`, `Use Perf Counters`, …) are *not* here: the Npgsql 9
/// builder this table copies rejects them, so they are reported as unknown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum Keyword {
    // Connection
    Host,
    Port,
    Database,
    Username,
    Password,
    Passfile,
    ApplicationName,
    Enlist,
    SearchPath,
    ClientEncoding,
    Encoding,
    Timezone,
    // Security
    SslMode,
    SslNegotiation,
    SslCertificate,
    SslKey,
    SslPassword,
    RootCertificate,
    CheckCertificateRevocation,
    KerberosServiceName,
    IncludeRealm,
    PersistSecurityInfo,
    LogParameters,
    IncludeErrorDetail,
    ChannelBinding,
    GssEncryptionMode,
    RequireAuth,
    // Pooling
    Pooling,
    MinPoolSize,
    MaxPoolSize,
    ConnectionIdleLifetime,
    ConnectionPruningInterval,
    ConnectionLifetime,
    // Timeouts
    Timeout,
    CommandTimeout,
    CancellationTimeout,
    // Failover and load balancing
    TargetSessionAttributes,
    LoadBalanceHosts,
    HostRecheckSeconds,
    // Advanced
    KeepAlive,
    TcpKeepAlive,
    TcpKeepAliveTime,
    TcpKeepAliveInterval,
    ReadBufferSize,
    WriteBufferSize,
    SocketReceiveBufferSize,
    SocketSendBufferSize,
    MaxAutoPrepare,
    AutoPrepareMinUsages,
    NoResetOnClose,
    ReplicationMode,
    Options,
    ArrayNullabilityMode,
    IncludeFailedBatchedCommand,
    // Multiplexing
    Multiplexing,
    WriteCoalescingBufferThresholdBytes,
    // Obsolete, still accepted
    LoadTableComposites,
    ServerCompatibilityMode,
    TrustServerCertificate,
    InternalCommandTimeout,
}

/// How Npgsql converts a keyword's value (`Convert.ChangeType` / `Enum.Parse` in the generated
/// setter) and the range its property setter enforces.
#[derive(Clone, Copy)]
enum Kind {
    Text,
    Bool,
    /// `Int32`, with an inclusive lower bound and optional upper bound.
    Int(i64, Option<i64>),
    Enum(&'static [&'static str]),
    /// `Target Session Attributes`: a string matched exactly (case-sensitive) against this list.
    Exact(&'static [&'static str]),
}

const ANY_INT: Kind = Kind::Int(i32::MIN as i64, None);
const NON_NEGATIVE: Kind = Kind::Int(0, None);

const SSL_MODES: &[&str] = &[
    "Disable",
    "Allow",
    "Prefer",
    "Require",
    "VerifyCA",
    "VerifyFull",
];
const SSL_NEGOTIATIONS: &[&str] = &["Postgres", "Direct"];
const CHANNEL_BINDINGS: &[&str] = &["Disable", "Prefer", "Require"];
const GSS_ENCRYPTION_MODES: &[&str] = &["Disable", "Prefer", "Require"];
const REPLICATION_MODES: &[&str] = &["Off", "Physical", "Logical"];
const ARRAY_NULLABILITY_MODES: &[&str] = &["Never", "Always", "PerInstance"];
const SERVER_COMPATIBILITY_MODES: &[&str] = &["None", "Redshift", "NoTypeLoading"];
/// `NpgsqlConnectionStringBuilder.ParseTargetSessionAttributes`: an exact, case-sensitive switch.
const TARGET_SESSION_ATTRIBUTES: &[&str] = &[
    "any",
    "primary",
    "standby",
    "prefer-primary",
    "prefer-standby",
    "read-write",
    "read-only",
];

/// `NpgsqlConnection.TimeoutLimit`: the largest `Timeout` Npgsql accepts.
const TIMEOUT_LIMIT: i64 = 1024;

/// One row per keyword: its canonical name (`[DisplayName]`), every other spelling Npgsql accepts
/// (the property name when it differs, then the `[NpgsqlConnectionStringProperty]` synonyms), the
/// value kind, the Npgsql major version that introduced it when newer than 7, and a note when it
/// is obsolete.
struct Spec {
    keyword: Keyword,
    canonical: &'static str,
    synonyms: &'static [&'static str],
    kind: Kind,
    since: Option<u32>,
    obsolete: Option<&'static str>,
}

const fn spec(
    keyword: Keyword,
    canonical: &'static str,
    synonyms: &'static [&'static str],
    kind: Kind,
) -> Spec {
    Spec {
        keyword,
        canonical,
        synonyms,
        kind,
        since: None,
        obsolete: None,
    }
}

const fn since(mut s: Spec, major: u32) -> Spec {
    s.since = Some(major);
    s
}

const fn obsolete(mut s: Spec, note: &'static str) -> Spec {
    s.obsolete = Some(note);
    s
}

/// The keyword table, in the order of npgsql/npgsql `src/Npgsql/NpgsqlConnectionStringBuilder.cs`.
const SPECS: &[Spec] = &[
    spec(Keyword::Host, "Host", &["Server"], Kind::Text),
    spec(Keyword::Port, "Port", &[], Kind::Int(1, None)),
    spec(Keyword::Database, "Database", &["DB"], Kind::Text),
    spec(
        Keyword::Username,
        "Username",
        &["User Name", "UserId", "User Id", "UID"],
        Kind::Text,
    ),
    spec(Keyword::Password, "Password", &["PSW", "PWD"], Kind::Text),
    spec(Keyword::Passfile, "Passfile", &[], Kind::Text),
    spec(
        Keyword::ApplicationName,
        "Application Name",
        &["ApplicationName"],
        Kind::Text,
    ),
    spec(Keyword::Enlist, "Enlist", &[], Kind::Bool),
    spec(
        Keyword::SearchPath,
        "Search Path",
        &["SearchPath"],
        Kind::Text,
    ),
    spec(
        Keyword::ClientEncoding,
        "Client Encoding",
        &["ClientEncoding"],
        Kind::Text,
    ),
    spec(Keyword::Encoding, "Encoding", &[], Kind::Text),
    spec(Keyword::Timezone, "Timezone", &[], Kind::Text),
    spec(
        Keyword::SslMode,
        "SSL Mode",
        &["SslMode"],
        Kind::Enum(SSL_MODES),
    ),
    since(
        spec(
            Keyword::SslNegotiation,
            "SSL Negotiation",
            &["SslNegotiation"],
            Kind::Enum(SSL_NEGOTIATIONS),
        ),
        9,
    ),
    spec(
        Keyword::SslCertificate,
        "SSL Certificate",
        &["SslCertificate"],
        Kind::Text,
    ),
    spec(Keyword::SslKey, "SSL Key", &["SslKey"], Kind::Text),
    spec(
        Keyword::SslPassword,
        "SSL Password",
        &["SslPassword"],
        Kind::Text,
    ),
    spec(
        Keyword::RootCertificate,
        "Root Certificate",
        &["RootCertificate"],
        Kind::Text,
    ),
    spec(
        Keyword::CheckCertificateRevocation,
        "Check Certificate Revocation",
        &["CheckCertificateRevocation"],
        Kind::Bool,
    ),
    spec(
        Keyword::KerberosServiceName,
        "Kerberos Service Name",
        &["KerberosServiceName", "Krbsrvname"],
        Kind::Text,
    ),
    spec(
        Keyword::IncludeRealm,
        "Include Realm",
        &["IncludeRealm"],
        Kind::Bool,
    ),
    spec(
        Keyword::PersistSecurityInfo,
        "Persist Security Info",
        &["PersistSecurityInfo"],
        Kind::Bool,
    ),
    spec(
        Keyword::LogParameters,
        "Log Parameters",
        &["LogParameters"],
        Kind::Bool,
    ),
    spec(
        Keyword::IncludeErrorDetail,
        "Include Error Detail",
        &["IncludeErrorDetail"],
        Kind::Bool,
    ),
    since(
        spec(
            Keyword::ChannelBinding,
            "Channel Binding",
            &["ChannelBinding"],
            Kind::Enum(CHANNEL_BINDINGS),
        ),
        8,
    ),
    // Npgsql 10 (release notes 10.0.md; the docs table names it "GSS Encryption Mode").
    since(
        spec(
            Keyword::GssEncryptionMode,
            "GSS Encryption Mode",
            &["GssEncryptionMode"],
            Kind::Enum(GSS_ENCRYPTION_MODES),
        ),
        10,
    ),
    // Npgsql 10 (release notes 10.0.md use the property name `RequireAuth`).
    since(
        spec(
            Keyword::RequireAuth,
            "Require Auth",
            &["RequireAuth"],
            Kind::Text,
        ),
        10,
    ),
    spec(Keyword::Pooling, "Pooling", &[], Kind::Bool),
    spec(
        Keyword::MinPoolSize,
        "Minimum Pool Size",
        &["MinPoolSize"],
        NON_NEGATIVE,
    ),
    spec(
        Keyword::MaxPoolSize,
        "Maximum Pool Size",
        &["MaxPoolSize"],
        NON_NEGATIVE,
    ),
    spec(
        Keyword::ConnectionIdleLifetime,
        "Connection Idle Lifetime",
        &["ConnectionIdleLifetime"],
        ANY_INT,
    ),
    spec(
        Keyword::ConnectionPruningInterval,
        "Connection Pruning Interval",
        &["ConnectionPruningInterval"],
        ANY_INT,
    ),
    spec(
        Keyword::ConnectionLifetime,
        "Connection Lifetime",
        &["ConnectionLifetime", "Load Balance Timeout"],
        ANY_INT,
    ),
    spec(
        Keyword::Timeout,
        "Timeout",
        &[],
        Kind::Int(0, Some(TIMEOUT_LIMIT)),
    ),
    spec(
        Keyword::CommandTimeout,
        "Command Timeout",
        &["CommandTimeout"],
        NON_NEGATIVE,
    ),
    spec(
        Keyword::CancellationTimeout,
        "Cancellation Timeout",
        &["CancellationTimeout"],
        Kind::Int(-1, None),
    ),
    spec(
        Keyword::TargetSessionAttributes,
        "Target Session Attributes",
        &["TargetSessionAttributes"],
        Kind::Exact(TARGET_SESSION_ATTRIBUTES),
    ),
    spec(
        Keyword::LoadBalanceHosts,
        "Load Balance Hosts",
        &["LoadBalanceHosts"],
        Kind::Bool,
    ),
    spec(
        Keyword::HostRecheckSeconds,
        "Host Recheck Seconds",
        &["HostRecheckSeconds"],
        NON_NEGATIVE,
    ),
    // DisplayName "Keepalive" and property "KeepAlive" upper-case to the same keyword.
    spec(Keyword::KeepAlive, "Keepalive", &[], NON_NEGATIVE),
    spec(
        Keyword::TcpKeepAlive,
        "TCP Keepalive",
        &["TcpKeepAlive"],
        Kind::Bool,
    ),
    spec(
        Keyword::TcpKeepAliveTime,
        "TCP Keepalive Time",
        &["TcpKeepAliveTime"],
        NON_NEGATIVE,
    ),
    spec(
        Keyword::TcpKeepAliveInterval,
        "TCP Keepalive Interval",
        &["TcpKeepAliveInterval"],
        NON_NEGATIVE,
    ),
    spec(
        Keyword::ReadBufferSize,
        "Read Buffer Size",
        &["ReadBufferSize"],
        ANY_INT,
    ),
    spec(
        Keyword::WriteBufferSize,
        "Write Buffer Size",
        &["WriteBufferSize"],
        ANY_INT,
    ),
    spec(
        Keyword::SocketReceiveBufferSize,
        "Socket Receive Buffer Size",
        &["SocketReceiveBufferSize"],
        ANY_INT,
    ),
    spec(
        Keyword::SocketSendBufferSize,
        "Socket Send Buffer Size",
        &["SocketSendBufferSize"],
        ANY_INT,
    ),
    spec(
        Keyword::MaxAutoPrepare,
        "Max Auto Prepare",
        &["MaxAutoPrepare"],
        NON_NEGATIVE,
    ),
    spec(
        Keyword::AutoPrepareMinUsages,
        "Auto Prepare Min Usages",
        &["AutoPrepareMinUsages"],
        Kind::Int(1, None),
    ),
    spec(
        Keyword::NoResetOnClose,
        "No Reset On Close",
        &["NoResetOnClose"],
        Kind::Bool,
    ),
    spec(
        Keyword::ReplicationMode,
        "Replication Mode",
        &["ReplicationMode"],
        Kind::Enum(REPLICATION_MODES),
    ),
    spec(Keyword::Options, "Options", &[], Kind::Text),
    spec(
        Keyword::ArrayNullabilityMode,
        "Array Nullability Mode",
        &["ArrayNullabilityMode"],
        Kind::Enum(ARRAY_NULLABILITY_MODES),
    ),
    // Npgsql 10 (release notes 10.0.md use the property name `IncludeFailedBatchedCommand`).
    since(
        spec(
            Keyword::IncludeFailedBatchedCommand,
            "Include Failed Batched Command",
            &["IncludeFailedBatchedCommand"],
            Kind::Bool,
        ),
        10,
    ),
    spec(Keyword::Multiplexing, "Multiplexing", &[], Kind::Bool),
    spec(
        Keyword::WriteCoalescingBufferThresholdBytes,
        "Write Coalescing Buffer Threshold Bytes",
        &["WriteCoalescingBufferThresholdBytes"],
        ANY_INT,
    ),
    obsolete(
        spec(
            Keyword::LoadTableComposites,
            "Load Table Composites",
            &["LoadTableComposites"],
            Kind::Bool,
        ),
        "obsolete since Npgsql 9: configure type loading on NpgsqlDataSourceBuilder",
    ),
    obsolete(
        spec(
            Keyword::ServerCompatibilityMode,
            "Server Compatibility Mode",
            &["ServerCompatibilityMode"],
            Kind::Enum(SERVER_COMPATIBILITY_MODES),
        ),
        "obsolete since Npgsql 9: configure type loading on NpgsqlDataSourceBuilder",
    ),
    obsolete(
        spec(
            Keyword::TrustServerCertificate,
            "Trust Server Certificate",
            &["TrustServerCertificate"],
            Kind::Bool,
        ),
        "obsolete since Npgsql 8 and does nothing: Require no longer validates certificates, \
         VerifyCA/VerifyFull do",
    ),
    obsolete(
        spec(
            Keyword::InternalCommandTimeout,
            "Internal Command Timeout",
            &["InternalCommandTimeout"],
            ANY_INT,
        ),
        "obsolete and does nothing",
    ),
];

impl Keyword {
    /// Every keyword, in Npgsql's order.
    pub fn all() -> impl Iterator<Item = Keyword> {
        SPECS.iter().map(|s| s.keyword)
    }

    /// The keyword a key names, matched as Npgsql does: the key (with `==` already turned into `=`)
    /// loses trailing whitespace, is lower-cased then upper-cased with .NET-like simple case mapping
    /// (`DbConnectionOptions.GetKeyName`, then `keyword.ToUpperInvariant()` in the indexer), and
    /// must equal a display name, property name or synonym exactly: inner spaces count
    /// (`Max Pool Size` is *not* a keyword, `MaxPoolSize` and `Maximum Pool Size` are).
    pub fn from_key(key: &str) -> Option<Keyword> {
        let folded = fold_case(key.trim_end());
        SPECS
            .iter()
            .find(|s| {
                s.canonical.eq_ignore_ascii_case(&folded)
                    || s.synonyms
                        .iter()
                        .any(|syn| syn.eq_ignore_ascii_case(&folded))
            })
            .map(|s| s.keyword)
    }

    /// The canonical spelling (Npgsql's `[DisplayName]`), e.g. `SSL Mode`.
    pub fn canonical(self) -> &'static str {
        self.spec().canonical
    }

    /// The other spellings Npgsql accepts for this keyword.
    pub fn synonyms(self) -> &'static [&'static str] {
        self.spec().synonyms
    }

    /// The Npgsql major version that introduced the keyword, when newer than Npgsql 7 (older
    /// Npgsql rejects it as unknown). `None` for keywords every Npgsql 7+ accepts.
    pub fn introduced_in(self) -> Option<u32> {
        self.spec().since
    }

    /// Why the keyword is obsolete, when Npgsql marks it `[Obsolete]` (still accepted).
    pub fn obsolete(self) -> Option<&'static str> {
        self.spec().obsolete
    }

    /// True for keywords whose value is a secret (`Password`, `SSL Password`).
    pub fn is_secret(self) -> bool {
        matches!(self, Keyword::Password | Keyword::SslPassword)
    }

    fn spec(self) -> &'static Spec {
        // Every variant has a row; the fallback keeps this total without a panic path.
        SPECS
            .iter()
            .find(|s| s.keyword == self)
            .unwrap_or(&SPECS[0])
    }
}

impl fmt::Display for Keyword {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.canonical())
    }
}

/// .NET's invariant simple case mapping, approximated char by char: lower-case then upper-case,
/// keeping a char whose full mapping is not a single char (U+0130 maps to `i` as in .NET).
fn fold_case(s: &str) -> String {
    s.chars()
        .map(|c| {
            let lower = if c == '\u{130}' {
                'i'
            } else {
                single(c.to_lowercase()).unwrap_or(c)
            };
            single(lower.to_uppercase()).unwrap_or(lower)
        })
        .collect()
}

fn single(mut it: impl Iterator<Item = char>) -> Option<char> {
    let first = it.next()?;
    it.next().is_none().then_some(first)
}

// ---------------------------------------------------------------------------------------------
// Parsing (DbConnectionOptions.GetKeyValuePair)
// ---------------------------------------------------------------------------------------------

/// One `key=value` pair, in the order written.
#[derive(Clone, PartialEq, Eq)]
pub struct Pair {
    /// The key as written: leading and trailing whitespace removed and `==` turned into `=`, case
    /// kept.
    pub key: String,
    /// The Npgsql keyword the key names; `None` when Npgsql does not know it (and so refuses the
    /// whole connection string).
    pub keyword: Option<Keyword>,
    /// The value, unquoted (`''`/`""` inside quotes turned into one quote; unquoted values trimmed).
    /// For `Password` this is the secret: `Debug` never shows it.
    pub value: String,
    /// The quote the value was written in (`'` or `"`), `None` for an unquoted value. An unquoted
    /// empty value (`Key=;`) is .NET's null: Npgsql *removes* the keyword, resetting it to its
    /// default; a quoted empty value (`Key=''`) sets the empty string.
    pub quote: Option<char>,
    /// Byte range of the whole pair in the input, from the key's first character to the end of the
    /// value (closing quote included), without the separating `;`.
    pub span: Range<usize>,
    /// Byte range of the value as written (quotes included); empty when there is no value.
    pub value_span: Range<usize>,
}

impl Pair {
    /// True when the value is a secret: a `Password`/`SSL Password` spelling, or an unknown key
    /// whose name says secret (`Passwd`, `Pasword`, `ApiToken`…), so typos do not leak either.
    pub fn is_secret(&self) -> bool {
        match self.keyword {
            Some(k) => k.is_secret(),
            None => {
                let upper = fold_case(&self.key);
                ["PASS", "PWD", "PSW", "SECRET", "TOKEN"]
                    .iter()
                    .any(|p| upper.contains(p))
            }
        }
    }

    /// True when the pair has no value at all (`Key=;`): Npgsql resets the keyword to its default.
    pub fn is_null(&self) -> bool {
        self.quote.is_none() && self.value.is_empty()
    }
}

impl fmt::Debug for Pair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Pair");
        d.field("key", &self.key).field("keyword", &self.keyword);
        if self.is_secret() {
            d.field("value", &format_args!("{MASK}"));
        } else {
            d.field("value", &self.value);
        }
        d.field("quote", &self.quote)
            .field("span", &self.span)
            .finish()
    }
}

/// A connection string .NET itself would reject (`ArgumentException: Format of the initialization
/// string does not conform to specification starting at index N`). The message never quotes the
/// input, which may hold a password.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("at character {position}: {message}")]
pub struct ParseError {
    /// 0-based character index, as .NET reports it: the start of the offending pair.
    pub position: usize,
    pub message: String,
}

fn error(position: usize, message: impl Into<String>) -> ParseError {
    ParseError {
        position,
        message: message.into(),
    }
}

/// Splits a connection string exactly as `DbConnectionStringBuilder` does (not ODBC rules): pairs
/// separated by `;`, whitespace around keys and values ignored, empty segments (`;;`) skipped,
/// values quoted with `'` or `"` (the quote doubled inside), `==` in a key standing for `=`, an
/// unquoted value must not end with a quote, NUL only as trailing padding. Keys are then matched to
/// Npgsql keywords; unknown keys are kept (see [`ConnString::unknown_keywords`]), not dropped.
pub fn parse(s: &str) -> Result<ConnString, ParseError> {
    let chars: Vec<(usize, char)> = s.char_indices().collect();
    let mut pairs = Vec::new();
    let mut pos = 0;
    while pos < chars.len() {
        let (next, pair) = next_pair(s, &chars, pos)?;
        match pair {
            Some(p) => pairs.push(p),
            None => break,
        }
        pos = next;
    }
    Ok(ConnString {
        source: s.to_owned(),
        pairs,
    })
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum State {
    NothingYet,
    Key,
    KeyEqual,
    KeyEnd,
    Unquoted,
    Quoted(char),
    QuotedQuote(char),
    QuotedEnd,
    NullTermination,
}

/// What to do with the current character once the state machine has looked at it.
enum Step {
    /// Consume it, appending it to the buffer or not.
    Next { append: bool },
    /// Look at the same character again in the new state (`goto case` in .NET).
    Again,
    /// The pair ends before this character.
    Exit,
}

/// One call of `GetKeyValuePair`: reads the pair starting at char index `start` and returns the
/// index where the next one starts.
fn next_pair(
    s: &str,
    chars: &[(usize, char)],
    start: usize,
) -> Result<(usize, Option<Pair>), ParseError> {
    let mut startposition = start;
    let mut state = State::NothingYet;
    let mut buffer = String::new();
    let mut key: Option<String> = None;
    let mut value: Option<String> = None;
    let mut quote: Option<char> = None;
    let mut quote_at = 0usize;
    let mut key_start = 0usize;
    let mut eq_end = 0usize;
    let mut value_start = 0usize;
    let mut value_end = 0usize;
    let mut current = '\0';
    let mut i = start;

    'chars: while i < chars.len() {
        let (byte, c) = chars[i];
        current = c;
        let step = loop {
            let step = match state {
                State::NothingYet => {
                    if c == ';' || c.is_whitespace() {
                        Step::Next { append: false }
                    } else if c == '\0' {
                        state = State::NullTermination;
                        Step::Next { append: false }
                    } else if c.is_control() {
                        return Err(error(
                            startposition,
                            format!(
                                "control character (U+{:04X}) where a keyword should start",
                                c as u32
                            ),
                        ));
                    } else {
                        startposition = i;
                        key_start = byte;
                        if c == '=' {
                            state = State::KeyEqual;
                            Step::Next { append: false }
                        } else {
                            state = State::Key;
                            Step::Next { append: true }
                        }
                    }
                }
                State::Key => {
                    if c == '=' {
                        state = State::KeyEqual;
                        Step::Next { append: false }
                    } else if !c.is_whitespace() && c.is_control() {
                        return Err(error(
                            startposition,
                            format!("control character (U+{:04X}) in a keyword", c as u32),
                        ));
                    } else {
                        Step::Next { append: true }
                    }
                }
                State::KeyEqual => {
                    if c == '=' {
                        // `==` is a literal `=` in the key.
                        state = State::Key;
                        Step::Next { append: true }
                    } else {
                        let name = key_name(&buffer);
                        if name.is_empty() {
                            return Err(error(startposition, "a pair has no keyword before '='"));
                        }
                        key = Some(name);
                        buffer.clear();
                        eq_end = byte;
                        state = State::KeyEnd;
                        Step::Again
                    }
                }
                State::KeyEnd => {
                    if c.is_whitespace() {
                        Step::Next { append: false }
                    } else if c == '\'' || c == '"' {
                        state = State::Quoted(c);
                        quote = Some(c);
                        quote_at = i;
                        value_start = byte;
                        Step::Next { append: false }
                    } else if c == ';' || c == '\0' {
                        Step::Exit
                    } else if c.is_control() {
                        return Err(error(
                            startposition,
                            format!(
                                "control character (U+{:04X}) in a value; quote the value",
                                c as u32
                            ),
                        ));
                    } else {
                        state = State::Unquoted;
                        value_start = byte;
                        value_end = byte + c.len_utf8();
                        Step::Next { append: true }
                    }
                }
                State::Unquoted => {
                    if c.is_whitespace() {
                        Step::Next { append: true }
                    } else if c.is_control() || c == ';' {
                        Step::Exit
                    } else {
                        value_end = byte + c.len_utf8();
                        Step::Next { append: true }
                    }
                }
                State::Quoted(q) => {
                    if c == q {
                        state = State::QuotedQuote(q);
                        Step::Next { append: false }
                    } else if c == '\0' {
                        return Err(error(
                            startposition,
                            format!(
                                "NUL character inside the value quoted at character {quote_at}"
                            ),
                        ));
                    } else {
                        Step::Next { append: true }
                    }
                }
                State::QuotedQuote(q) => {
                    if c == q {
                        // A doubled quote stands for one quote.
                        state = State::Quoted(q);
                        Step::Next { append: true }
                    } else {
                        value = Some(buffer.clone());
                        value_end = byte;
                        state = State::QuotedEnd;
                        Step::Again
                    }
                }
                State::QuotedEnd => {
                    if c.is_whitespace() {
                        Step::Next { append: false }
                    } else if c == ';' {
                        Step::Exit
                    } else if c == '\0' {
                        state = State::NullTermination;
                        Step::Next { append: false }
                    } else {
                        return Err(error(
                            startposition,
                            format!(
                                "unexpected character after the value quoted at character {quote_at}; \
                                 a quote inside a quoted value must be doubled"
                            ),
                        ));
                    }
                }
                State::NullTermination => {
                    if c == '\0' || c.is_whitespace() {
                        Step::Next { append: false }
                    } else {
                        return Err(error(i, "text after a NUL character"));
                    }
                }
            };
            if !matches!(step, Step::Again) {
                break step;
            }
        };
        match step {
            Step::Next { append } => {
                if append {
                    buffer.push(c);
                }
                i += 1;
            }
            Step::Again => {}
            Step::Exit => break 'chars,
        }
    }

    match state {
        State::Key => {
            return Err(error(startposition, "a keyword is not followed by '='"));
        }
        State::Quoted(q) => {
            let kind = if q == '\'' { "single" } else { "double" };
            return Err(error(
                startposition,
                format!("unterminated {kind}-quoted value (quote opened at character {quote_at})"),
            ));
        }
        State::KeyEqual => {
            // `Key=` at the very end: a keyword with no value.
            let name = key_name(&buffer);
            if name.is_empty() {
                return Err(error(startposition, "a pair has no keyword before '='"));
            }
            key = Some(name);
            eq_end = s.len();
        }
        State::Unquoted => {
            let trimmed = buffer.trim().to_owned();
            if trimmed.ends_with(['\'', '"']) {
                return Err(error(
                    startposition,
                    "an unquoted value ends with a quote character; quote the whole value",
                ));
            }
            value = Some(trimmed);
        }
        State::QuotedQuote(_) => {
            value = Some(buffer);
            value_end = s.len();
        }
        State::QuotedEnd | State::NothingYet | State::KeyEnd | State::NullTermination => {}
    }
    if current == ';' && i < chars.len() {
        i += 1;
    }

    let Some(key) = key else {
        return Ok((i, None));
    };
    let (value, value_span) = match value {
        Some(v) => (v, value_start..value_end),
        None => {
            quote = None;
            (String::new(), eq_end..eq_end)
        }
    };
    let end = if value_span.is_empty() {
        eq_end
    } else {
        value_span.end
    };
    let keyword = Keyword::from_key(&key);
    Ok((
        i,
        Some(Pair {
            key,
            keyword,
            value,
            quote,
            span: key_start..end,
            value_span,
        }),
    ))
}

/// `GetKeyName` without the lower-casing (kept as written): trailing whitespace removed.
fn key_name(buffer: &str) -> String {
    buffer.trim_end().to_owned()
}

// ---------------------------------------------------------------------------------------------
// Rendering (DbConnectionOptions.AppendKeyValuePairBuilder)
// ---------------------------------------------------------------------------------------------

/// True for a key .NET can write (`^(?![;\s])[^\p{Cc}]+(?<!\s)$`): not empty, no control
/// characters, not starting with `;` or whitespace, not ending with whitespace.
pub fn is_valid_key(key: &str) -> bool {
    !key.is_empty()
        && !key.starts_with(|c: char| c == ';' || c.is_whitespace())
        && !key.ends_with(char::is_whitespace)
        && !key.chars().any(char::is_control)
}

/// One `key=value` pair written as .NET writes it: `=` in the key doubled; the value bare when it
/// has no quote, `=`, `;`, whitespace or control character, in `'…'` when it has `"` but no `'`,
/// else in `"…"` with `"` doubled. `None` when .NET could not write it (invalid key, NUL in the
/// value). Like .NET, an empty value is written bare (`Key=`), which reads back as "no value".
pub fn render_pair(key: &str, value: &str) -> Option<String> {
    if !is_valid_key(key) || value.contains('\0') {
        return None;
    }
    let mut out = key.replace('=', "==");
    out.push('=');
    let bare = !value
        .chars()
        .any(|c| matches!(c, '"' | '\'' | '=' | ';') || c.is_whitespace() || c.is_control());
    if bare {
        out.push_str(value);
    } else if value.contains('"') && !value.contains('\'') {
        out.push('\'');
        out.push_str(value);
        out.push('\'');
    } else {
        out.push('"');
        out.push_str(&value.replace('"', "\"\""));
        out.push('"');
    }
    Some(out)
}

// ---------------------------------------------------------------------------------------------
// Typed values
// ---------------------------------------------------------------------------------------------

/// Npgsql's `SslMode` (npgsql/npgsql `src/Npgsql/NpgsqlConnectionStringBuilder.cs`, enum values 0–5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum SslMode {
    Disable,
    Allow,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

impl SslMode {
    /// Npgsql's default since 6.0 (it was `Disable` before), so for every Npgsql Elsa 3.x uses.
    pub const DEFAULT: SslMode = SslMode::Prefer;

    /// Parses a value as `Enum.Parse(typeof(SslMode), value, ignoreCase: true)` does: surrounding
    /// whitespace ignored, names in any case (`verifyca`, `VERIFY-FULL` is *not* accepted), or the
    /// enum's number (`0`–`5`). Comma-separated combinations, which .NET would OR together, are
    /// refused.
    pub fn parse(value: &str) -> Option<SslMode> {
        enum_index(value, SSL_MODES).and_then(|i| {
            [
                SslMode::Disable,
                SslMode::Allow,
                SslMode::Prefer,
                SslMode::Require,
                SslMode::VerifyCa,
                SslMode::VerifyFull,
            ]
            .get(i)
            .copied()
        })
    }

    /// The spelling Npgsql uses (`VerifyCA`).
    pub fn as_str(self) -> &'static str {
        match self {
            SslMode::Disable => "Disable",
            SslMode::Allow => "Allow",
            SslMode::Prefer => "Prefer",
            SslMode::Require => "Require",
            SslMode::VerifyCa => "VerifyCA",
            SslMode::VerifyFull => "VerifyFull",
        }
    }
}

impl fmt::Display for SslMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `Enum.Parse(type, value, ignoreCase: true)` for an enum whose members are `names` numbered from
/// 0: the member's index.
fn enum_index(value: &str, names: &[&str]) -> Option<usize> {
    let v = value.trim();
    if v.starts_with(|c: char| c.is_ascii_digit() || c == '+' || c == '-') {
        let n = parse_int32(v).ok()?;
        return usize::try_from(n).ok().filter(|&n| n < names.len());
    }
    let folded = fold_case(v);
    names.iter().position(|n| n.eq_ignore_ascii_case(&folded))
}

/// `Int32.Parse(value, NumberStyles.Integer)`: ASCII whitespace around, an optional sign, ASCII
/// digits, within `i32`.
fn parse_int32(value: &str) -> Result<i32, &'static str> {
    let v = value.trim_matches(|c: char| matches!(c, ' ' | '\t' | '\n' | '\u{b}' | '\u{c}' | '\r'));
    let (negative, digits) = match v.as_bytes().first() {
        Some(b'-') => (true, &v[1..]),
        Some(b'+') => (false, &v[1..]),
        _ => (false, v),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err("not an integer");
    }
    let mut n: i64 = 0;
    for b in digits.bytes() {
        n = n * 10 + i64::from(b - b'0');
        if n > i64::from(i32::MAX) + 1 {
            return Err("out of range for a 32-bit integer");
        }
    }
    let n = if negative { -n } else { n };
    i32::try_from(n).map_err(|_| "out of range for a 32-bit integer")
}

/// `Boolean.Parse`: `true`/`false` in any case, whitespace around ignored. (`yes`, `1` are refused.)
fn parse_bool(value: &str) -> Option<bool> {
    let v = value.trim_matches(|c: char| c.is_whitespace() || c == '\0');
    if v.eq_ignore_ascii_case("true") {
        Some(true)
    } else if v.eq_ignore_ascii_case("false") {
        Some(false)
    } else {
        None
    }
}

/// Checks a value against its keyword's kind; `Err` says why Npgsql refuses it (`Couldn't set
/// <keyword>`), naming the value except for secrets.
fn check_value(keyword: Keyword, value: &str) -> Result<(), String> {
    let shown = if keyword.is_secret() {
        MASK.to_owned()
    } else {
        format!("'{value}'")
    };
    match keyword.spec().kind {
        Kind::Text => Ok(()),
        Kind::Bool => parse_bool(value)
            .map(|_| ())
            .ok_or_else(|| format!("{shown} is not a boolean (Npgsql accepts true or false)")),
        Kind::Int(min, max) => {
            let n = i64::from(parse_int32(value).map_err(|why| format!("{shown} is {why}"))?);
            if n < min {
                return Err(format!("{shown} is below the minimum of {min}"));
            }
            match max {
                Some(max) if n > max => Err(format!("{shown} is above the maximum of {max}")),
                _ => Ok(()),
            }
        }
        Kind::Enum(names) => enum_index(value, names)
            .map(|_| ())
            .ok_or_else(|| format!("{shown} is not one of {}", names.join(", "))),
        Kind::Exact(names) => {
            if names.contains(&value) {
                Ok(())
            } else {
                Err(format!(
                    "{shown} is not one of {} (exact, lower-case)",
                    names.join(", ")
                ))
            }
        }
    }
}

/// One server Npgsql will try, in order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HostPort {
    /// As written: a name, an IP (IPv6 in brackets when a port follows), or a Unix socket directory.
    pub host: String,
    pub port: u16,
}

/// Something Npgsql would refuse when opening a connection with this string.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// The key as written, when the problem belongs to one pair.
    pub key: Option<String>,
    pub keyword: Option<Keyword>,
    /// What Npgsql objects to; never contains a secret value.
    pub message: String,
}

// ---------------------------------------------------------------------------------------------
// ConnString
// ---------------------------------------------------------------------------------------------

/// A parsed Npgsql connection string: every pair in order (unknown ones included) plus the text it
/// came from, so it can be re-rendered byte for byte with only the password masked.
#[derive(Clone, PartialEq, Eq)]
pub struct ConnString {
    source: String,
    pairs: Vec<Pair>,
}

impl fmt::Debug for ConnString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnString")
            .field("pairs", &self.pairs)
            .finish()
    }
}

const DEFAULT_PORT: u16 = 5432;
const DEFAULT_TIMEOUT_SECS: u64 = 15;
const DEFAULT_MAX_POOL_SIZE: u32 = 100;
const DEFAULT_MIN_POOL_SIZE: u32 = 0;

impl ConnString {
    /// Every pair, in the order written (duplicates and unknown keys included).
    pub fn pairs(&self) -> &[Pair] {
        &self.pairs
    }

    /// The value Npgsql ends up with for a keyword, whichever spelling set it: the last pair wins.
    /// `None` when no pair sets it, or when the last one has no value (`Key=;` makes Npgsql reset
    /// the keyword to its default).
    pub fn get(&self, k: Keyword) -> Option<&str> {
        let last = self.pairs.iter().rev().find(|p| p.keyword == Some(k))?;
        (!last.is_null()).then_some(last.value.as_str())
    }

    /// The servers Npgsql will try, each `host[:port]` entry of `Host` (comma-separated, trimmed),
    /// the port defaulting to `Port` (else 5432). Entries Npgsql could not use (bad port, empty
    /// entry) are left out here; [`ConnString::try_hosts`] and [`ConnString::problems`] say why.
    pub fn hosts(&self) -> Vec<HostPort> {
        let default_port = self.port().unwrap_or(DEFAULT_PORT);
        self.host_entries()
            .into_iter()
            .filter_map(|entry| entry.ok())
            .map(|(host, port)| HostPort {
                host,
                port: port.unwrap_or(default_port),
            })
            .collect()
    }

    /// Like [`ConnString::hosts`], but any entry Npgsql could not use is an error: no `Host`
    /// ("Host can't be null"), an empty entry, a port that is not a positive integer.
    pub fn try_hosts(&self) -> Result<Vec<HostPort>, String> {
        let default_port = self.port()?;
        let entries = self.host_entries();
        if entries.is_empty() {
            return Err("no Host: Npgsql requires one (\"Host can't be null\")".to_owned());
        }
        entries
            .into_iter()
            .map(|e| {
                e.map(|(host, port)| HostPort {
                    host,
                    port: port.unwrap_or(default_port),
                })
            })
            .collect()
    }

    /// `Host` split as Npgsql does: one entry (no comma) is split at a `:port` unless it is a Unix
    /// socket path (`/dir`, `@abstract`); several entries are each trimmed and split at `:port`.
    fn host_entries(&self) -> Vec<Result<(String, Option<u16>), String>> {
        let Some(host) = self.get(Keyword::Host) else {
            return Vec::new();
        };
        if host.trim().is_empty() {
            return Vec::new();
        }
        if !host.contains(',') {
            if host.starts_with(['/', '@']) {
                return vec![Ok((host.to_owned(), None))];
            }
            return vec![split_host_port(host)];
        }
        host.split(',')
            .map(|entry| {
                let entry = entry.trim();
                if entry.is_empty() {
                    Err("Host lists an empty entry (two commas or a trailing comma)".to_owned())
                } else {
                    split_host_port(entry)
                }
            })
            .collect()
    }

    /// `Port`: default 5432; Npgsql requires a positive `Int32`, and a TCP port fits in 16 bits.
    pub fn port(&self) -> Result<u16, String> {
        match self.get(Keyword::Port) {
            None => Ok(DEFAULT_PORT),
            Some(v) => parse_port(v).map_err(|why| format!("Port {why}")),
        }
    }

    pub fn database(&self) -> Option<&str> {
        self.get(Keyword::Database)
    }

    pub fn username(&self) -> Option<&str> {
        self.get(Keyword::Username)
    }

    /// The password (`Password`, `PWD` or `PSW`), wrapped so it cannot be printed. Npgsql treats
    /// it as opaque text: `$(POSTGRES_PASSWORD)` is a literal value here (Kubernetes expands it
    /// before Elsa starts, or it stays literal).
    pub fn password(&self) -> Option<Secret> {
        self.get(Keyword::Password).map(Secret::new)
    }

    /// `SSL Mode`, defaulting to [`SslMode::DEFAULT`] (`Prefer`, Npgsql 6+). `Err` quotes the
    /// value Npgsql would refuse.
    pub fn ssl_mode(&self) -> Result<SslMode, String> {
        match self.get(Keyword::SslMode) {
            None => Ok(SslMode::DEFAULT),
            Some(v) => SslMode::parse(v)
                .ok_or_else(|| format!("SSL Mode '{v}' is not one of {}", SSL_MODES.join(", "))),
        }
    }

    /// `Trust Server Certificate` (default false; an unparsable value counts as false). Obsolete
    /// since Npgsql 8, where it changes nothing.
    pub fn trust_server_certificate(&self) -> bool {
        self.get(Keyword::TrustServerCertificate)
            .and_then(parse_bool)
            .unwrap_or(false)
    }

    /// `Maximum Pool Size`, default 100. `Err` quotes a value Npgsql would refuse.
    pub fn max_pool_size(&self) -> Result<u32, String> {
        self.pool_size(Keyword::MaxPoolSize, DEFAULT_MAX_POOL_SIZE)
    }

    /// `Minimum Pool Size`, default 0. `Err` quotes a value Npgsql would refuse.
    pub fn min_pool_size(&self) -> Result<u32, String> {
        self.pool_size(Keyword::MinPoolSize, DEFAULT_MIN_POOL_SIZE)
    }

    fn pool_size(&self, k: Keyword, default: u32) -> Result<u32, String> {
        match self.get(k) {
            None => Ok(default),
            Some(v) => {
                check_value(k, v).map_err(|why| format!("{k} {why}"))?;
                parse_int32(v)
                    .ok()
                    .and_then(|n| u32::try_from(n).ok())
                    .ok_or_else(|| format!("{k} '{v}' is not a pool size"))
            }
        }
    }

    /// `Timeout` (seconds to open a connection), default 15 s; zero means wait forever. A value
    /// Npgsql would refuse falls back to the default here; [`ConnString::try_timeout`] reports it.
    pub fn timeout(&self) -> Duration {
        self.try_timeout()
            .unwrap_or(Duration::from_secs(DEFAULT_TIMEOUT_SECS))
    }

    /// `Timeout`, with an error for a value Npgsql refuses (not an integer, outside 0–1024).
    pub fn try_timeout(&self) -> Result<Duration, String> {
        match self.get(Keyword::Timeout) {
            None => Ok(Duration::from_secs(DEFAULT_TIMEOUT_SECS)),
            Some(v) => {
                check_value(Keyword::Timeout, v).map_err(|why| format!("Timeout {why}"))?;
                let secs = parse_int32(v).ok().and_then(|n| u64::try_from(n).ok());
                secs.map(Duration::from_secs)
                    .ok_or_else(|| format!("Timeout '{v}' is not valid"))
            }
        }
    }

    /// Keys Npgsql does not know, as written, each spelling once. Npgsql throws on any of them
    /// (`Keyword not supported` / `Couldn't set`), so Elsa does not start.
    pub fn unknown_keywords(&self) -> Vec<&str> {
        let mut seen: Vec<String> = Vec::new();
        let mut out = Vec::new();
        for p in self.pairs.iter().filter(|p| p.keyword.is_none()) {
            let folded = fold_case(&p.key);
            if !seen.contains(&folded) {
                seen.push(folded);
                out.push(p.key.as_str());
            }
        }
        out
    }

    /// Everything Npgsql would refuse when Elsa opens a connection with this string: unknown
    /// keywords, values its setters cannot convert or reject (checked for *every* pair, as .NET
    /// applies each one in turn), and the checks made when the data source is built (no `Host`,
    /// bad `host:port`, Multiplexing without Pooling, direct SSL below Require, Maximum under
    /// Minimum Pool Size). Messages never contain a secret value.
    pub fn problems(&self) -> Vec<Problem> {
        let mut out = Vec::new();
        for p in &self.pairs {
            match p.keyword {
                None => out.push(Problem {
                    key: Some(p.key.clone()),
                    keyword: None,
                    message: format!("keyword '{}' is not supported by Npgsql", p.key),
                }),
                Some(k) if !p.is_null() => {
                    if let Err(why) = check_value(k, &p.value) {
                        out.push(Problem {
                            key: Some(p.key.clone()),
                            keyword: Some(k),
                            message: format!("{}: {why}", p.key),
                        });
                    }
                }
                Some(_) => {}
            }
        }
        let whole = |message: String, keyword: Option<Keyword>| Problem {
            key: None,
            keyword,
            message,
        };
        if let Err(why) = self.try_hosts() {
            out.push(whole(why, Some(Keyword::Host)));
        }
        let flag = |k: Keyword, default: bool| self.get(k).and_then(parse_bool).unwrap_or(default);
        let pooling = flag(Keyword::Pooling, true);
        if flag(Keyword::Multiplexing, false) && !pooling {
            out.push(whole(
                "Pooling must be on to use Multiplexing".to_owned(),
                Some(Keyword::Multiplexing),
            ));
        }
        let direct = self
            .get(Keyword::SslNegotiation)
            .and_then(|v| enum_index(v, SSL_NEGOTIATIONS))
            == Some(1);
        if direct
            && matches!(
                self.ssl_mode(),
                Ok(SslMode::Disable | SslMode::Allow | SslMode::Prefer)
            )
        {
            out.push(whole(
                "SSL Mode has to be Require or higher to be used with direct SSL Negotiation"
                    .to_owned(),
                Some(Keyword::SslNegotiation),
            ));
        }
        if pooling
            && let (Ok(max), Ok(min)) = (self.max_pool_size(), self.min_pool_size())
            && max < min
        {
            out.push(whole(
                format!("Maximum Pool Size {max} is under Minimum Pool Size {min}"),
                Some(Keyword::MaxPoolSize),
            ));
        }
        out
    }

    /// The string as written, byte for byte, except that the value of every secret pair
    /// (`Password`/`PWD`/`PSW`, `SSL Password`, and unknown keys named like a password) is
    /// replaced by [`MASK`], quotes included. An empty value stays empty.
    pub fn redacted(&self) -> String {
        let mut out = String::with_capacity(self.source.len());
        let mut last = 0;
        for p in self
            .pairs
            .iter()
            .filter(|p| p.is_secret() && !p.value_span.is_empty())
        {
            out.push_str(&self.source[last..p.value_span.start]);
            out.push_str(MASK);
            last = p.value_span.end;
        }
        out.push_str(&self.source[last..]);
        out
    }

    /// A `tokio_postgres::Config` that connects where Elsa's Npgsql would:
    /// * every `Host` entry with its port, in order (IPv6 brackets removed; a `/dir` host is a Unix
    ///   socket directory; an abstract `@socket` is refused); `Database`, `Username`, `Password`,
    ///   `Application Name`;
    /// * `Timeout` as `connect_timeout` (0 = none). Npgsql's timeout covers the whole open,
    ///   tokio-postgres's each socket attempt;
    /// * `SSL Mode`: `Disable` → `Disable`; `Allow` and `Prefer` → `Prefer`; `Require`, `VerifyCA`
    ///   and `VerifyFull` → `Require`. tokio-postgres has no verification modes: at this level
    ///   VerifyCA/VerifyFull only *require* TLS, and the caller must add certificate (and, for
    ///   VerifyFull, host name) verification in the TLS connector it passes to `connect`;
    /// * `SSL Negotiation`, `Channel Binding`, `Load Balance Hosts` (→ random order),
    ///   `Target Session Attributes` (`any`; `read-write`/`primary` → ReadWrite;
    ///   `read-only`/`standby` → ReadOnly; `prefer-*` → Any);
    /// * TCP keepalives, off by default as in Npgsql: on with `TCP Keepalive=true`, a
    ///   `TCP Keepalive Time` (idle seconds) or a `Keepalive` (Npgsql's own keepalive query,
    ///   approximated by TCP keepalives with that idle time); `TCP Keepalive Interval`;
    /// * `options`: Npgsql's `Options` as written, plus `-c search_path=…` for `Search Path` and
    ///   `-c TimeZone=…` for `Timezone` (Npgsql sends those as startup parameters, which
    ///   tokio-postgres only allows through `options`).
    ///
    /// `Err` for what makes Npgsql fail too (no Host, bad port, timeout or SSL Mode). `Passfile`,
    /// pooling and the other keywords have no tokio-postgres equivalent and are ignored.
    pub fn to_tokio_postgres(&self) -> Result<tokio_postgres::Config, String> {
        use tokio_postgres::config as tp;

        let mut cfg = tokio_postgres::Config::new();
        for hp in self.try_hosts()? {
            if hp.host.starts_with('@') {
                return Err(
                    "abstract Unix sockets (Host=@…) are not supported by tokio-postgres"
                        .to_owned(),
                );
            }
            let host = hp
                .host
                .strip_prefix('[')
                .and_then(|h| h.strip_suffix(']'))
                .unwrap_or(&hp.host);
            cfg.host(host);
            cfg.port(hp.port);
        }
        if let Some(db) = self.database().filter(|d| !d.is_empty()) {
            cfg.dbname(db);
        }
        if let Some(user) = self.username().filter(|u| !u.is_empty()) {
            cfg.user(user);
        }
        if let Some(pw) = self.password() {
            cfg.password(pw.expose());
        }
        if let Some(app) = self.get(Keyword::ApplicationName).filter(|a| !a.is_empty()) {
            cfg.application_name(app);
        }
        let timeout = self.try_timeout()?;
        if !timeout.is_zero() {
            cfg.connect_timeout(timeout);
        }
        cfg.ssl_mode(match self.ssl_mode()? {
            SslMode::Disable => tp::SslMode::Disable,
            SslMode::Allow | SslMode::Prefer => tp::SslMode::Prefer,
            SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => tp::SslMode::Require,
        });
        if let Some(v) = self.get(Keyword::SslNegotiation) {
            cfg.ssl_negotiation(match enum_index(v, SSL_NEGOTIATIONS) {
                Some(1) => tp::SslNegotiation::Direct,
                _ => tp::SslNegotiation::Postgres,
            });
        }
        if let Some(v) = self.get(Keyword::ChannelBinding) {
            cfg.channel_binding(match enum_index(v, CHANNEL_BINDINGS) {
                Some(0) => tp::ChannelBinding::Disable,
                Some(2) => tp::ChannelBinding::Require,
                _ => tp::ChannelBinding::Prefer,
            });
        }
        if self.get(Keyword::LoadBalanceHosts).and_then(parse_bool) == Some(true) {
            cfg.load_balance_hosts(tp::LoadBalanceHosts::Random);
        }
        if let Some(v) = self.get(Keyword::TargetSessionAttributes) {
            cfg.target_session_attrs(match v {
                "read-write" | "primary" => tp::TargetSessionAttrs::ReadWrite,
                "read-only" | "standby" => tp::TargetSessionAttrs::ReadOnly,
                _ => tp::TargetSessionAttrs::Any,
            });
        }

        let seconds = |k: Keyword| {
            self.get(k)
                .and_then(|v| parse_int32(v).ok())
                .and_then(|n| u64::try_from(n).ok())
                .filter(|&n| n > 0)
        };
        let tcp_keepalive = self.get(Keyword::TcpKeepAlive).and_then(parse_bool) == Some(true);
        let idle = seconds(Keyword::TcpKeepAliveTime).or_else(|| seconds(Keyword::KeepAlive));
        cfg.keepalives(tcp_keepalive || idle.is_some());
        if let Some(idle) = idle {
            cfg.keepalives_idle(Duration::from_secs(idle));
        }
        if let Some(interval) = seconds(Keyword::TcpKeepAliveInterval) {
            cfg.keepalives_interval(Duration::from_secs(interval));
        }

        let mut options: Vec<String> = Vec::new();
        if let Some(o) = self.get(Keyword::Options).filter(|o| !o.is_empty()) {
            options.push(o.to_owned());
        }
        if let Some(sp) = self.get(Keyword::SearchPath).filter(|s| !s.is_empty()) {
            options.push(format!("-c search_path={}", escape_option(sp)));
        }
        if let Some(tz) = self.get(Keyword::Timezone).filter(|t| !t.is_empty()) {
            options.push(format!("-c TimeZone={}", escape_option(tz)));
        }
        if !options.is_empty() {
            cfg.options(options.join(" "));
        }
        Ok(cfg)
    }
}

/// `host[:port]` split as `NpgsqlConnectionStringBuilder.TrySplitHostPort`: at the last `:`, unless
/// another `:` precedes it outside `[…]` (a bare IPv6 address has no port).
fn split_host_port(entry: &str) -> Result<(String, Option<u16>), String> {
    let Some(sep) = entry.rfind(':') else {
        return Ok((entry.to_owned(), None));
    };
    let other = entry[..sep].rfind(':');
    let ipv6_end = entry.rfind(']');
    let splits = match (other, ipv6_end) {
        (None, _) => true,
        (Some(o), Some(end)) => sep > end && o < end,
        (Some(_), None) => false,
    };
    if !splits {
        return Ok((entry.to_owned(), None));
    }
    let port = parse_port(&entry[sep + 1..])
        .map_err(|why| format!("Host entry '{entry}' has a port that {why}"))?;
    Ok((entry[..sep].to_owned(), Some(port)))
}

/// A port as Npgsql reads it (`int.Parse`, then `Port` must be positive), limited to 16 bits.
fn parse_port(v: &str) -> Result<u16, String> {
    let n = parse_int32(v).map_err(|why| format!("'{v}' is {why}"))?;
    if n <= 0 {
        return Err(format!("'{v}' is not positive"));
    }
    u16::try_from(n).map_err(|_| format!("'{v}' is above 65535"))
}

/// Escapes a value for PostgreSQL's `options` startup parameter, where whitespace separates
/// arguments and a backslash escapes the next character.
fn escape_option(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        if c == '\\' || c.is_whitespace() {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use tokio_postgres::config::{Host, SslMode as TpSslMode};

    fn ok(s: &str) -> ConnString {
        parse(s).expect("parses")
    }

    fn values(cs: &ConnString) -> Vec<(&str, &str)> {
        cs.pairs()
            .iter()
            .map(|p| (p.key.as_str(), p.value.as_str()))
            .collect()
    }

    fn hp(host: &str, port: u16) -> HostPort {
        HostPort {
            host: host.to_owned(),
            port,
        }
    }

    #[test]
    fn synonyms_and_case_insensitivity() {
        let cases = [
            ("Host", Keyword::Host),
            ("SERVER", Keyword::Host),
            ("db", Keyword::Database),
            ("user name", Keyword::Username),
            ("User Id", Keyword::Username),
            ("USERID", Keyword::Username),
            ("uid", Keyword::Username),
            ("Username", Keyword::Username),
            ("pwd", Keyword::Password),
            ("Psw", Keyword::Password),
            ("sslmode", Keyword::SslMode),
            ("SSL Mode", Keyword::SslMode),
            ("Trust Server Certificate", Keyword::TrustServerCertificate),
            ("trustservercertificate", Keyword::TrustServerCertificate),
            ("Root Certificate", Keyword::RootCertificate),
            ("Command Timeout", Keyword::CommandTimeout),
            ("CommandTimeout", Keyword::CommandTimeout),
            ("Minimum Pool Size", Keyword::MinPoolSize),
            ("maxpoolsize", Keyword::MaxPoolSize),
            ("KeepAlive", Keyword::KeepAlive),
            ("keepalive", Keyword::KeepAlive),
            ("searchpath", Keyword::SearchPath),
            ("Application Name", Keyword::ApplicationName),
            ("Include Error Detail", Keyword::IncludeErrorDetail),
            (
                "Target Session Attributes",
                Keyword::TargetSessionAttributes,
            ),
            ("Load Balance Timeout", Keyword::ConnectionLifetime),
            ("Krbsrvname", Keyword::KerberosServiceName),
            ("multiplexing", Keyword::Multiplexing),
        ];
        for (key, kw) in cases {
            assert_eq!(Keyword::from_key(key), Some(kw), "{key}");
        }
        // Inner spaces count, and keywords Npgsql 8+ removed are unknown.
        for key in [
            "Max Pool Size",
            "S S L Mode",
            "SSL  Mode",
            "User",
            "Integrated Security",
            "Client Certificate",
        ] {
            assert_eq!(Keyword::from_key(key), None, "{key}");
        }
        // Case folding is .NET's invariant one, not only ASCII.
        assert_eq!(Keyword::from_key("uıd"), Some(Keyword::Username));
        assert_eq!(Keyword::from_key("UİD"), Some(Keyword::Username));
        // Npgsql 10 additions and obsolete keywords are known, and say so.
        assert_eq!(
            Keyword::from_key("Require Auth"),
            Some(Keyword::RequireAuth)
        );
        assert_eq!(Keyword::RequireAuth.introduced_in(), Some(10));
        assert_eq!(
            Keyword::from_key("GssEncryptionMode"),
            Some(Keyword::GssEncryptionMode)
        );
        assert!(Keyword::TrustServerCertificate.obsolete().is_some());
        assert_eq!(Keyword::Host.introduced_in(), None);
        assert_eq!(Keyword::SslMode.canonical(), "SSL Mode");
        // Every canonical name and synonym maps back to its keyword.
        for k in Keyword::all() {
            assert_eq!(Keyword::from_key(k.canonical()), Some(k));
            for s in k.synonyms() {
                assert_eq!(Keyword::from_key(s), Some(k), "{s}");
            }
        }
        let cs = ok("SERVER=db;user id=u;PwD=p");
        assert_eq!(cs.get(Keyword::Host), Some("db"));
        assert_eq!(cs.username(), Some("u"));
        assert_eq!(
            cs.password().map(|s| s.expose().to_owned()),
            Some("p".to_owned())
        );
    }

    #[test]
    fn quoting() {
        let cs = ok(r#"Password='a;b';Username="x""y";Database='it''s';Application Name="a'b""#);
        assert_eq!(
            values(&cs),
            [
                ("Password", "a;b"),
                ("Username", r#"x"y"#),
                ("Database", "it's"),
                ("Application Name", "a'b")
            ]
        );
        assert_eq!(cs.pairs()[0].quote, Some('\''));
        assert_eq!(cs.pairs()[1].quote, Some('"'));
        // Whitespace inside quotes is kept, outside it is not.
        let cs = ok("Host = ' db ' ; Port = 5433 ");
        assert_eq!(values(&cs), [("Host", " db "), ("Port", "5433")]);
        // A quote in the middle of an unquoted value is just a character.
        assert_eq!(values(&ok("Password=a'b\"c")), [("Password", "a'b\"c")]);
    }

    #[test]
    fn double_equals_in_keys() {
        let cs = ok("a==b=c;==x=y;k===v");
        assert_eq!(values(&cs), [("a=b", "c"), ("=x", "y"), ("k=", "v")]);
        assert!(cs.pairs().iter().all(|p| p.keyword.is_none()));
        // `=` in a value needs no escaping.
        assert_eq!(values(&ok("Options=-c a=b")), [("Options", "-c a=b")]);
    }

    #[test]
    fn whitespace_and_empty_segments() {
        let cs = ok("  ;; Host =  db1 ;;;  Database=elsa ; ;");
        assert_eq!(values(&cs), [("Host", "db1"), ("Database", "elsa")]);
        assert_eq!(cs.pairs()[0].span, 5..16);
        assert_eq!(cs.pairs()[0].value_span, 13..16);
        assert_eq!(ok("").pairs().len(), 0);
        assert_eq!(ok(" ; ;\t\n").pairs().len(), 0);
        // Inner whitespace of keys and unquoted values is kept.
        assert_eq!(values(&ok("Search Path=a, b")), [("Search Path", "a, b")]);
        // Trailing NULs are padding.
        assert_eq!(values(&ok("Host=a\0\0")), [("Host", "a")]);
    }

    #[test]
    fn duplicates_last_one_wins_and_empty_resets() {
        let cs = ok("Host=a;Server=b;Port=1;Port=2");
        assert_eq!(cs.get(Keyword::Host), Some("b"));
        assert_eq!(cs.port(), Ok(2));
        assert_eq!(cs.pairs().len(), 4);
        let cs = ok("SSL Mode=Require;SslMode=");
        assert_eq!(cs.get(Keyword::SslMode), None);
        assert_eq!(cs.ssl_mode(), Ok(SslMode::Prefer));
        let cs = ok("Password=x;Password=''");
        assert_eq!(cs.get(Keyword::Password), Some(""));
    }

    #[test]
    fn multiple_hosts_with_ports() {
        let cs = ok("Host=a, b:5433 ,[::1]:6000,::1;Port=5444");
        assert_eq!(
            cs.hosts(),
            [
                hp("a", 5444),
                hp("b", 5433),
                hp("[::1]", 6000),
                hp("::1", 5444)
            ]
        );
        assert_eq!(ok("Host=a,b:5433").hosts(), [hp("a", 5432), hp("b", 5433)]);
        assert_eq!(ok("Host=db:6432").hosts(), [hp("db", 6432)]);
        assert_eq!(
            ok("Host=/var/run/postgresql").hosts(),
            [hp("/var/run/postgresql", 5432)]
        );
        let bad = ok("Host=a,,b:x");
        assert_eq!(bad.hosts(), [hp("a", 5432)]);
        assert!(bad.try_hosts().is_err());
        assert!(ok("Database=x").try_hosts().is_err());
        assert!(ok("Host=a:0").try_hosts().is_err());
    }

    #[test]
    fn elsa_default_connection_string() {
        let cs = ok(
            "Server=localhost;Username=elsa;Database=elsa;Port=5432;Password=elsa;SSLMode=Prefer;MaxPoolSize=2000;Timeout=60",
        );
        assert_eq!(cs.hosts(), [hp("localhost", 5432)]);
        assert_eq!(cs.max_pool_size(), Ok(2000));
        assert_eq!(cs.timeout(), Duration::from_secs(60));
        assert_eq!(cs.ssl_mode(), Ok(SslMode::Prefer));
        assert_eq!(cs.database(), Some("elsa"));
        assert_eq!(cs.username(), Some("elsa"));
        assert!(cs.unknown_keywords().is_empty());
        assert!(cs.problems().is_empty(), "{:?}", cs.problems());
    }

    #[test]
    fn guide_connection_string_keeps_the_reference_literal() {
        let cs = ok(
            "Host=postgres;Database=elsa_workflows;Username=elsa_user;Password=$(POSTGRES_PASSWORD)",
        );
        assert_eq!(
            cs.password().map(|p| p.expose().to_owned()),
            Some("$(POSTGRES_PASSWORD)".to_owned())
        );
        assert_eq!(cs.hosts(), [hp("postgres", 5432)]);
        assert_eq!(cs.database(), Some("elsa_workflows"));
        assert_eq!(cs.timeout(), Duration::from_secs(15));
        assert_eq!(cs.max_pool_size(), Ok(100));
        assert_eq!(cs.ssl_mode(), Ok(SslMode::Prefer));
        assert!(!cs.trust_server_certificate());
    }

    #[test]
    fn unknown_keywords_are_reported() {
        let cs =
            ok("Host=h;Max Pool Size=5;Integrated Security=true;integrated security=false;User=x");
        assert_eq!(
            cs.unknown_keywords(),
            ["Max Pool Size", "Integrated Security", "User"]
        );
        let problems = cs.problems();
        assert_eq!(problems.iter().filter(|p| p.keyword.is_none()).count(), 4);
        // A missing '=' swallows the next key, as .NET does.
        let cs = ok("Host=h;garbage;Port=5");
        assert_eq!(cs.unknown_keywords(), ["garbage;Port"]);
    }

    #[test]
    fn bad_values() {
        let err = ok("SSL Mode=Prefered").ssl_mode().expect_err("bad");
        assert!(err.contains("'Prefered'"), "{err}");
        for (v, mode) in [
            ("verifyca", SslMode::VerifyCa),
            (" VERIFYFULL ", SslMode::VerifyFull),
            ("disable", SslMode::Disable),
            ("3", SslMode::Require),
        ] {
            assert_eq!(ok(&format!("SslMode={v}")).ssl_mode(), Ok(mode), "{v}");
        }
        assert!(ok("SslMode=verify-full").ssl_mode().is_err());
        assert!(ok("SslMode=6").ssl_mode().is_err());
        assert!(ok("MaxPoolSize=-1").max_pool_size().is_err());
        assert!(ok("Timeout=2000").try_timeout().is_err());
        assert_eq!(ok("Timeout=abc").timeout(), Duration::from_secs(15));
        assert_eq!(ok("Timeout= +30 ").timeout(), Duration::from_secs(30));
        let cs = ok(
            "Host=h;Pooling=yes;Port=0;Target Session Attributes=Primary;Minimum Pool Size=10;Maximum Pool Size=5",
        );
        let messages: Vec<String> = cs.problems().into_iter().map(|p| p.message).collect();
        assert!(
            messages.iter().any(|m| m.starts_with("Pooling: 'yes'")),
            "{messages:?}"
        );
        assert!(
            messages.iter().any(|m| m.starts_with("Port: '0'")),
            "{messages:?}"
        );
        assert!(
            messages
                .iter()
                .any(|m| m.starts_with("Target Session Attributes")),
            "{messages:?}"
        );
        assert!(
            messages
                .iter()
                .any(|m| m.contains("under Minimum Pool Size")),
            "{messages:?}"
        );
        let cs = ok("Host=h;Multiplexing=true;Pooling=false;SslNegotiation=direct");
        assert_eq!(cs.problems().len(), 2, "{:?}", cs.problems());
    }

    #[test]
    fn syntax_errors_have_positions_and_no_input() {
        let e = parse("Host=a;Password='hunter2").expect_err("unterminated");
        assert_eq!(e.position, 7);
        assert!(e.message.contains("unterminated single-quoted"), "{e}");
        assert!(e.to_string().starts_with("at character 7: "));
        assert!(!e.to_string().contains("hunter2"));
        let e = parse("Host=a;Password=\"x").expect_err("unterminated");
        assert!(e.message.contains("double-quoted"));
        let cases = [
            ("Host", 0),
            ("Host=a;Port", 7),
            ("=a", 0),
            ("Host=a';", 0),
            ("Host='a'b", 0),
            ("Host=a;\u{1}", 7),
            ("Host=a\0x", 7),
            ("Ho\u{7}st=a", 0),
        ];
        for (s, position) in cases {
            let e = parse(s).expect_err(s);
            assert_eq!(e.position, position, "{s:?}: {e}");
        }
        // Positions count characters, not bytes.
        assert_eq!(parse("Host=ä;x").expect_err("no =").position, 7);
    }

    #[test]
    fn redaction_masks_every_password_spelling() {
        let s = "Host=h; PWD = 'a;b''c' ;psw=x;Password=\"q\";SSL Password=k;Passwd=t;Username=u;Password=";
        let r = ok(s).redacted();
        assert_eq!(
            r,
            "Host=h; PWD = ***** ;psw=*****;Password=*****;SSL Password=*****;Passwd=*****;Username=u;Password="
        );
        // Everything else byte for byte.
        let s = "  Server = db ;;Database='e l s a';Port=5432;";
        assert_eq!(ok(s).redacted(), s);
        let dbg = format!("{:?}", ok("Password=hunter2;Host=h"));
        assert!(!dbg.contains("hunter2"), "{dbg}");
        assert!(dbg.contains(MASK));
    }

    #[test]
    fn tokio_postgres_mapping() {
        let cs = ok(
            "Host=a,b:5433;Port=5440;Database=elsa;Username=u;Password=p;Timeout=7;SSL Mode=VerifyFull;\
             Application Name=doc;Search Path=public, elsa;TCP Keepalive Time=30;Target Session Attributes=read-write",
        );
        let cfg = cs.to_tokio_postgres().expect("config");
        assert_eq!(
            cfg.get_hosts(),
            [Host::Tcp("a".into()), Host::Tcp("b".into())]
        );
        assert_eq!(cfg.get_ports(), [5440, 5433]);
        assert_eq!(cfg.get_dbname(), Some("elsa"));
        assert_eq!(cfg.get_user(), Some("u"));
        assert_eq!(cfg.get_password(), Some(&b"p"[..]));
        assert_eq!(cfg.get_connect_timeout(), Some(&Duration::from_secs(7)));
        assert_eq!(cfg.get_ssl_mode(), TpSslMode::Require);
        assert_eq!(cfg.get_application_name(), Some("doc"));
        assert_eq!(cfg.get_options(), Some("-c search_path=public,\\ elsa"));
        assert!(cfg.get_keepalives());
        assert_eq!(cfg.get_keepalives_idle(), Duration::from_secs(30));

        let cfg = ok("Host=[::1]:6000;SSL Mode=Disable;Timeout=0")
            .to_tokio_postgres()
            .expect("cfg");
        assert_eq!(cfg.get_hosts(), [Host::Tcp("::1".into())]);
        assert_eq!(cfg.get_ports(), [6000]);
        assert_eq!(cfg.get_ssl_mode(), TpSslMode::Disable);
        assert_eq!(cfg.get_connect_timeout(), None);
        assert!(!cfg.get_keepalives());

        let cfg = ok("Host=h;SSL Mode=Allow")
            .to_tokio_postgres()
            .expect("cfg");
        assert_eq!(cfg.get_ssl_mode(), TpSslMode::Prefer);
        assert_eq!(cfg.get_connect_timeout(), Some(&Duration::from_secs(15)));
        assert_eq!(cfg.get_ports(), [5432]);

        assert!(ok("Database=x").to_tokio_postgres().is_err());
        assert!(ok("Host=h;SSL Mode=nope").to_tokio_postgres().is_err());
        assert!(ok("Host=h;Port=70000").to_tokio_postgres().is_err());
    }

    #[test]
    fn render_pair_follows_dotnet_quoting() {
        assert_eq!(render_pair("Host", "db").as_deref(), Some("Host=db"));
        assert_eq!(
            render_pair("Password", "a;b").as_deref(),
            Some("Password=\"a;b\"")
        );
        assert_eq!(
            render_pair("Password", "x\"y").as_deref(),
            Some("Password='x\"y'")
        );
        assert_eq!(
            render_pair("Password", "it's \"q\"").as_deref(),
            Some("Password=\"it's \"\"q\"\"\"")
        );
        assert_eq!(render_pair("a=b", "c").as_deref(), Some("a==b=c"));
        assert_eq!(render_pair(" Host", "c"), None);
        assert_eq!(render_pair("Host", "a\0"), None);
    }

    const KNOWN_KEYS: &[&str] = &[
        "Host",
        "Server",
        "Port",
        "Database",
        "DB",
        "Username",
        "User Name",
        "User Id",
        "UserId",
        "UID",
        "Password",
        "PSW",
        "PWD",
        "Passfile",
        "SSL Mode",
        "SslMode",
        "Trust Server Certificate",
        "Root Certificate",
        "SSL Certificate",
        "SSL Key",
        "Timeout",
        "Command Timeout",
        "Pooling",
        "Minimum Pool Size",
        "MaxPoolSize",
        "Keepalive",
        "Search Path",
        "Application Name",
        "Target Session Attributes",
        "Multiplexing",
        "Enlist",
        "Encoding",
    ];

    fn known_key() -> impl Strategy<Value = String> {
        (prop::sample::select(KNOWN_KEYS), any::<u64>()).prop_map(|(k, bits)| {
            k.chars()
                .enumerate()
                .map(|(i, c)| {
                    if (bits >> (i % 64)) & 1 == 1 {
                        c.to_ascii_lowercase()
                    } else {
                        c.to_ascii_uppercase()
                    }
                })
                .collect()
        })
    }

    fn value() -> impl Strategy<Value = String> {
        prop_oneof![any::<String>(), "[a-zA-Z0-9 ;='\"\t,:$()*]{0,12}",]
            .prop_map(|v| v.replace('\0', ""))
    }

    fn render(pairs: &[(String, String)]) -> String {
        pairs
            .iter()
            .map(|(k, v)| render_pair(k, v).expect("renderable"))
            .collect::<Vec<_>>()
            .join(";")
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

        #[test]
        fn parse_never_panics(s in any::<String>()) {
            if let Ok(cs) = parse(&s) {
                let _ = (cs.hosts(), cs.try_hosts(), cs.ssl_mode(), cs.max_pool_size(), cs.timeout());
                let _ = (cs.problems(), cs.redacted(), cs.unknown_keywords(), format!("{cs:?}"));
                let _ = cs.to_tokio_postgres();
            }
        }

        #[test]
        fn parse_never_panics_on_connection_string_like_text(s in "[a-zA-Z =;'\"\t,:\\[\\]\\x00\\x01ä]{0,40}") {
            if let Ok(cs) = parse(&s) {
                for p in cs.pairs() {
                    prop_assert!(s.get(p.span.clone()).is_some());
                    prop_assert!(s.get(p.value_span.clone()).is_some());
                }
                let _ = (cs.hosts(), cs.problems(), cs.redacted(), cs.to_tokio_postgres());
            }
        }

        #[test]
        fn rendered_pairs_parse_back(pairs in prop::collection::vec((known_key(), value()), 0..8)) {
            let s = render(&pairs);
            let cs = parse(&s).map_err(|e| TestCaseError::fail(format!("{e} in {s:?}")))?;
            let got: Vec<(String, String)> =
                cs.pairs().iter().map(|p| (p.key.clone(), p.value.clone())).collect();
            prop_assert_eq!(&got, &pairs);
            for p in cs.pairs() {
                prop_assert_eq!(p.keyword, Keyword::from_key(&p.key));
                prop_assert!(p.keyword.is_some());
            }
        }

        #[test]
        fn arbitrary_keys_parse_back(
            pairs in prop::collection::vec(
                (any::<String>().prop_filter("valid key", |k| is_valid_key(k)), value()),
                0..5,
            )
        ) {
            let s = render(&pairs);
            let cs = parse(&s).map_err(|e| TestCaseError::fail(format!("{e} in {s:?}")))?;
            let got: Vec<(String, String)> =
                cs.pairs().iter().map(|p| (p.key.clone(), p.value.clone())).collect();
            prop_assert_eq!(got, pairs);
        }

        #[test]
        fn redacted_never_contains_a_password(
            pairs in prop::collection::vec(
                (prop::sample::select(&["Host", "Username", "Database", "Password", "PWD", "psw"][..]), value()),
                1..8,
            )
        ) {
            let pairs: Vec<(String, String)> =
                pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
            let s = render(&pairs);
            let secret = |k: &str| Keyword::from_key(k) == Some(Keyword::Password);
            // What the string looks like with every (non-empty) password written as the mask.
            let expected = pairs
                .iter()
                .map(|(k, v)| {
                    if secret(k) && !v.is_empty() {
                        format!("{k}={MASK}")
                    } else {
                        render_pair(k, v).unwrap_or_default()
                    }
                })
                .collect::<Vec<_>>()
                .join(";");
            let redacted = parse(&s).map_err(|e| TestCaseError::fail(e.to_string()))?.redacted();
            prop_assert_eq!(&redacted, &expected);
            for (k, v) in &pairs {
                if secret(k) && v.chars().count() >= 4 && !expected.contains(v.as_str()) {
                    prop_assert!(!redacted.contains(v.as_str()));
                }
            }
        }
    }
}
