//! What the in-pod probes observed (`elsadoctor probe`, the debug pod, `--vantage here`):
//! DNS resolutions, TCP connections, file listings and the database login, as plain data, and
//! the request that says what to probe. Gathering produces these; the network checks judge
//! them; the CLI converts its flags into a [`ProbeRequest`].

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::facts::{DbObservation, DbTarget, Probe};
use crate::report::Tool;

/// What one probe run should look at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeRequest {
    /// Names to resolve with the resolv.conf's rules.
    pub dns: Vec<String>,
    /// Addresses to connect to.
    pub tcp: Vec<HostPort>,
    /// Container-path globs to list.
    pub files: Vec<String>,
    /// The resolv.conf to resolve with.
    pub resolv_conf: PathBuf,
    /// The directory that stands for the container's `/`.
    pub root: PathBuf,
    /// Log in to the database with the connection string in `db_env`.
    pub db: bool,
    pub db_env: String,
    /// Tables to look for in schema "Elsa".
    pub db_tables: Vec<String>,
    /// Each probe's limit.
    pub timeout: Duration,
}

/// `HOST:PORT` of `--tcp`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPort {
    pub host: String,
    pub port: u16,
}

impl std::fmt::Display for HostPort {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

/// How one name, or a whole resolution, ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum DnsOutcome {
    /// At least one address.
    Resolved,
    /// NXDOMAIN, or NODATA (the name exists without an address; its attempt's `rcode` says
    /// `NOERROR`). Overall: every name tried was one of the two.
    NxDomain,
    /// The nameserver answered SERVFAIL (overall: some name did, and none resolved).
    ServFail,
    /// No answer within the time allowed.
    Timeout,
    /// Anything else: REFUSED, the nameserver's port closed, an invalid name.
    Error { reason: String },
}

impl DnsOutcome {
    /// Whether glibc's `res_search` goes on to the next name after this one.
    pub(crate) fn continues_search(&self) -> bool {
        matches!(self, DnsOutcome::NxDomain | DnsOutcome::ServFail)
    }
}

impl std::fmt::Display for DnsOutcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DnsOutcome::Resolved => f.write_str("resolved"),
            DnsOutcome::NxDomain => f.write_str("NXDOMAIN (no such name)"),
            DnsOutcome::ServFail => f.write_str("SERVFAIL (the nameserver failed)"),
            DnsOutcome::Timeout => f.write_str("timed out"),
            DnsOutcome::Error { reason } => write!(f, "error: {reason}"),
        }
    }
}

/// One name asked for (A and AAAA together).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DnsAttempt {
    /// The absolute name, without the trailing dot.
    pub name: String,
    pub outcome: DnsOutcome,
    /// The response code when a nameserver answered: `NOERROR`, `NXDOMAIN`, `SERVFAIL`, `REFUSED`…
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rcode: Option<String>,
    /// The nameserver whose answer this is (the last one asked, when none answered).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nameserver: Option<SocketAddr>,
    pub elapsed_ms: u64,
}

/// The evidence of resolving one name the way a pod would.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DnsResult {
    /// The name as asked (`postgres`).
    pub query: String,
    /// The nameservers asked, from the resolv.conf.
    pub nameservers: Vec<SocketAddr>,
    /// Every name tried, in order, up to the one that ended the search.
    pub attempts: Vec<DnsAttempt>,
    /// The name that gave the addresses (`postgres.elsa.svc.cluster.local`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub answered_by: Option<String>,
    pub addresses: Vec<IpAddr>,
    pub outcome: DnsOutcome,
    pub elapsed_ms: u64,
}

/// How a connection attempt ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum TcpOutcome {
    /// The handshake completed with this address.
    Connected {
        address: SocketAddr,
    },
    /// Reset: the host is there but nothing listens on the port.
    Refused,
    /// No answer within the timeout: dropped packets.
    TimedOut,
    /// No route to the host or its network (EHOSTUNREACH, ENETUNREACH).
    Unreachable,
    /// The name did not resolve; how it failed.
    NameNotResolved {
        dns: DnsOutcome,
    },
    Error {
        reason: String,
    },
}

impl TcpOutcome {
    pub fn is_connected(&self) -> bool {
        matches!(self, TcpOutcome::Connected { .. })
    }
}

impl std::fmt::Display for TcpOutcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TcpOutcome::Connected { address } => write!(f, "connected to {address}"),
            TcpOutcome::Refused => f.write_str("connection refused"),
            TcpOutcome::TimedOut => f.write_str("timed out"),
            TcpOutcome::Unreachable => f.write_str("host or network unreachable"),
            TcpOutcome::NameNotResolved { dns } => write!(f, "name not resolved: {dns}"),
            TcpOutcome::Error { reason } => write!(f, "error: {reason}"),
        }
    }
}

/// One address tried.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TcpAttempt {
    pub address: SocketAddr,
    pub outcome: TcpOutcome,
    pub elapsed_ms: u64,
}

/// The evidence of reaching `host:port`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TcpResult {
    pub host: String,
    pub port: u16,
    /// `system` or `resolv.conf`.
    pub resolver: String,
    /// The resolution, when it went through a resolv.conf.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dns: Option<DnsResult>,
    pub attempts: Vec<TcpAttempt>,
    pub outcome: TcpOutcome,
    pub elapsed_ms: u64,
}

/// What a path is (not following a final symlink).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum FileKind {
    File,
    Dir,
    Symlink,
    Other,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FileEntry {
    /// The path inside the container (`/app/Elsa.dll`).
    pub path: String,
    pub kind: FileKind,
    pub size: u64,
    /// Last modification, RFC 3339 UTC, when the filesystem records it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub modified: Option<String>,
}

/// The answer for one pattern.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FileListing {
    pub pattern: String,
    /// In path order.
    pub entries: Vec<FileEntry>,
    #[serde(default)]
    pub truncated: bool,
    /// Why (part of) the listing could not be made: `/app/secret: permission denied`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<String>,
}

impl FileListing {
    /// Listed without an error (possibly with no entries).
    pub fn is_ok(&self) -> bool {
        self.errors.is_empty()
    }
}

/// Everything one `elsadoctor probe` run observed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProbeReport {
    pub schema_version: u32,
    pub tool: Tool,
    /// The directory that stood for the container's `/` for `files`.
    pub root: PathBuf,
    pub resolv_conf: ResolvConfSummary,
    pub dns: Vec<DnsResult>,
    pub tcp: Vec<TcpResult>,
    pub files: Vec<FileListing>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub db: Option<DbProbe>,
}

/// The resolv.conf the names were resolved with, or why it could not be read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ResolvConfSummary {
    #[serde(rename_all = "camelCase")]
    Read {
        path: PathBuf,
        nameservers: Vec<SocketAddr>,
        search: Vec<String>,
        ndots: u8,
        timeout_secs: u64,
        attempts: u8,
    },
    Unreadable {
        path: PathBuf,
        error: String,
    },
}

/// The database login.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DbProbe {
    /// The environment variable the connection string came from.
    pub env: String,
    pub target: DbTarget,
    pub observation: Probe<DbObservation>,
}

/// Why the probe pod of `--vantage debug-pod` never ran its probe, as the scheduler, the
/// kubelet or the API server's admission said it. Each is final for the run: the pod is deleted
/// and the checks that would have used its report name this as their cause.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum PodNotStarted {
    /// The create was refused (PodSecurity, a ResourceQuota or LimitRange, a validating
    /// webhook: 403; validation: 422): the `Status` body's reason and message.
    Refused {
        code: u16,
        reason: String,
        message: String,
    },
    /// `PodScheduled=False`, reason `Unschedulable`: no node fits; the scheduler's message.
    Unschedulable { pod: String, message: String },
    /// Neither bound to a node nor judged by a scheduler within `--timeout`.
    NotScheduled { pod: String, waited_ms: u64 },
    /// The kubelet cannot pull the image (`ErrImagePull`, `ImagePullBackOff`,
    /// `InvalidImageName`).
    ImagePull {
        pod: String,
        image: String,
        reason: String,
        message: String,
    },
    /// `CreateContainerConfigError`: the kubelet cannot build the container's configuration (a
    /// Secret or ConfigMap, or a key in one, that the environment refers to is missing).
    ContainerConfig { pod: String, message: String },
}

impl PodNotStarted {
    /// The probe pod's name, when it was created.
    pub fn pod(&self) -> Option<&str> {
        match self {
            PodNotStarted::Refused { .. } => None,
            PodNotStarted::Unschedulable { pod, .. }
            | PodNotStarted::NotScheduled { pod, .. }
            | PodNotStarted::ImagePull { pod, .. }
            | PodNotStarted::ContainerConfig { pod, .. } => Some(pod),
        }
    }
}
