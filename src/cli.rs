//! The command line: the only place flags are defined (clap derive; doc comments are the help).

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

pub use crate::facts::network::HostPort;
use crate::facts::network::ProbeRequest;

/// Diagnose Elsa Workflows Server on Kubernetes with PostgreSQL.
///
/// Runs an ordered list of checks against the cluster your kubeconfig points at and, for every
/// failure, prints the documented fix with your real names filled in. Read-only by default: it
/// gets, lists and watches objects, asks for one rules review, reads pod logs, runs one `ls` in
/// the Elsa container, and logs in to the database Elsa uses (through a port-forward, or
/// directly with --vantage here) to run SELECTs. Only --vantage debug-pod creates something: one
/// short-lived probe pod, deleted on every exit path (see `elsadoctor cleanup`).
///
/// Examples:
///   elsadoctor demo                         try it against a built-in simulated cluster
///   elsadoctor -n elsa                      check the Elsa server in namespace elsa
///   elsadoctor -n elsa --vantage debug-pod  also test DNS and TCP from inside the namespace
///   elsadoctor -n elsa --deployment elsa-server -o json
///   elsadoctor explain workload.pods        the documented fix for one check
///   elsadoctor -n elsa --watch              re-run every 10 s, marking what changed
///   elsadoctor -n elsa -o markdown          a redacted report to paste into an Elsa issue
///
/// Exit codes: 0 no check failed; 1 a check failed or could not be evaluated (warnings too with
/// --fail-on warn); 2 elsadoctor could not start (bad flags, unreadable kubeconfig).
///
/// On a terminal (stdout a TTY, no -o/--json) elsadoctor is interactive: the checks fill in live
/// on the left, the selected check's evidence and fix on the right. Keys: ↑/↓ j/k move, g/G
/// first/last, PgUp/PgDn page, Enter/Tab switch to the fix pane (there ↑/↓ pick a command),
/// f failures only, / search, r re-run all, R re-run the selected check and its dependents,
/// d probes from a debug pod (asks first), c copy the command (OSC 52), e export Markdown or
/// JSON to a file, ? help, q/Esc/Ctrl-C quit.
/// In that mode logs go to $XDG_STATE_HOME/elsadoctor/elsadoctor.log (else
/// ~/.local/state/elsadoctor/elsadoctor.log, else the temp directory), never to the screen.
#[derive(Debug, Parser)]
#[command(
    name = "elsadoctor",
    version,
    verbatim_doc_comment,
    max_term_width = 100
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,

    #[command(flatten)]
    pub cluster: ClusterArgs,

    #[command(flatten)]
    pub output: OutputArgs,
}

/// Where the cluster is (kubectl's flags and meanings).
#[derive(Debug, Args, Clone, Default)]
pub struct ClusterArgs {
    /// Path to the kubeconfig file (default: KUBECONFIG, then ~/.kube/config, then the
    /// in-cluster service account).
    #[arg(long, value_name = "FILE")]
    pub kubeconfig: Option<PathBuf>,

    /// The kubeconfig context to use (default: the current context).
    #[arg(long, value_name = "NAME")]
    pub context: Option<String>,

    /// The namespace Elsa runs in (default: the context's namespace, else "default").
    #[arg(short = 'n', long, value_name = "NAME", global = true)]
    pub namespace: Option<String>,

    /// The Elsa server workload, as NAME, deployment/NAME or statefulset/NAME (default: the one
    /// workload whose image or labels say Elsa).
    #[arg(long, value_name = "NAME", global = true)]
    pub deployment: Option<String>,

    /// The Elsa version the workload runs, X.Y or X.Y.Z (e.g. 3.5.3), when its image does not
    /// say: version-dependent checks then judge that version instead of every candidate, and
    /// their evidence says you stated it.
    #[arg(long, value_name = "X.Y[.Z]", value_parser = parse_elsa_version, global = true)]
    pub elsa_version: Option<crate::domain::elsa::ElsaVersion>,

    /// The Elsa host the workload runs, when its image does not say (a custom build of a
    /// stock host).
    #[arg(long, value_enum, value_name = "HOST", global = true)]
    pub elsa_flavor: Option<FlavorArg>,
}

/// `--elsa-flavor` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FlavorArg {
    /// Elsa.Server.Web
    ServerWeb,
    /// Elsa.ServerAndStudio.Web
    ServerAndStudio,
    /// Elsa.ModularServer.Web
    ModularServer,
}

impl From<FlavorArg> for crate::domain::elsa::Flavor {
    fn from(f: FlavorArg) -> Self {
        match f {
            FlavorArg::ServerWeb => crate::domain::elsa::Flavor::ServerWeb,
            FlavorArg::ServerAndStudio => crate::domain::elsa::Flavor::ServerAndStudio,
            FlavorArg::ModularServer => crate::domain::elsa::Flavor::ModularServer,
        }
    }
}

/// Parses `3.5`, `3.5.3`, `v3.8.0`: an Elsa 3 version.
fn parse_elsa_version(s: &str) -> Result<crate::domain::elsa::ElsaVersion, String> {
    let t = s.trim().trim_start_matches('v');
    let parts: Vec<&str> = t.split('.').collect();
    let num = |p: &str| p.parse::<u32>().ok();
    match parts.as_slice() {
        [ma, mi] | [ma, mi, _] if num(ma) == Some(3) && num(mi).is_some_and(|m| m <= 8) => {
            let patch = match parts.get(2) {
                Some(p) => Some(num(p).ok_or_else(|| format!("{s:?} is not X.Y or X.Y.Z"))?),
                None => None,
            };
            Ok(crate::domain::elsa::ElsaVersion {
                major: 3,
                minor: num(mi).unwrap_or_default(),
                patch,
            })
        }
        [_, _] | [_, _, _] => Err(format!(
            "{s:?} is not an Elsa 3 release this elsadoctor knows (3.0 … 3.8)"
        )),
        _ => Err(format!("{s:?} is not X.Y or X.Y.Z (example: 3.5.3)")),
    }
}

/// How to run and report (valid with every command that runs checks).
#[derive(Debug, Args, Clone)]
pub struct OutputArgs {
    /// Output format (default: the interactive TUI when stdout is a terminal, text otherwise).
    #[arg(short = 'o', long, value_enum, global = true)]
    pub output: Option<Format>,

    /// Re-run every SECONDS (default 10) and mark what changed since the previous run, e.g. to
    /// watch a rollout after applying a fix. TUI and text output; Ctrl-C ends it with the last
    /// run's exit code.
    #[arg(long, value_name = "SECONDS", num_args = 0..=1, default_missing_value = "10",
          value_parser = parse_duration, global = true)]
    pub watch: Option<Duration>,

    /// Same as -o json: one JSON document on stdout.
    #[arg(long, global = true, conflicts_with = "output")]
    pub json: bool,

    /// Time limit for each single probe (an API request), e.g. 5s, 500ms.
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = parse_duration, global = true)]
    pub timeout: Duration,

    /// Time limit for the whole run; checks still waiting then report unknown.
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = parse_duration, global = true)]
    pub deadline: Duration,

    /// Where the network, database and file probes run from. `auto`: `here` inside a pod,
    /// `port-forward` outside. `here`: this machine (DNS with --resolv-conf, TCP, the
    /// database). `port-forward`: the database through the API to a pod behind its Service;
    /// DNS and TCP are skipped (read-only). `debug-pod`: also runs DNS and TCP probes from a
    /// short-lived pod in the namespace (creates and deletes one pod; needs --probe-image
    /// pullable by the cluster). `ephemeral`: runs them from an ephemeral container added to one
    /// Elsa pod, which stays in that pod's spec until the pod is replaced.
    #[arg(long, value_enum, default_value_t = VantageArg::Auto, global = true)]
    pub vantage: VantageArg,

    /// Image for the debug pod and the ephemeral container: an elsadoctor image (see
    /// deploy/Dockerfile) that the cluster can pull.
    #[arg(long, value_name = "IMAGE", global = true, default_value = crate::gather::debug_pod::DEFAULT_PROBE_IMAGE)]
    pub probe_image: String,

    /// resolv.conf used for DNS probes with --vantage here.
    #[arg(
        long,
        value_name = "FILE",
        global = true,
        default_value = "/etc/resolv.conf"
    )]
    pub resolv_conf: PathBuf,

    /// Exit 1 on warnings too, not only on failures.
    #[arg(long, value_enum, default_value_t = FailOnArg::Fail, value_name = "LEVEL", global = true)]
    pub fail_on: FailOnArg,

    /// Also write the run's facts to FILE as a bundle (versioned JSON) that `elsadoctor replay
    /// FILE` re-judges offline. Secrets are never in it: they were redacted when gathered, and
    /// Secret values are written only as their shapes (length, structure), never their text.
    /// Attach it to an issue next to `-o markdown`.
    #[arg(long, value_name = "FILE", global = true)]
    pub dump_facts: Option<PathBuf>,

    /// More logging on stderr (-v info, -vv debug, -vvv trace). Secrets are never logged.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Human-readable, grouped by category, with fixes under failures.
    Text,
    /// The versioned JSON report (schema/report.schema.json).
    Json,
    /// A redacted report to paste into an Elsa GitHub issue: versions, vantage, a table of
    /// checks, and the evidence and fix of every failing one.
    Markdown,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum VantageArg {
    Auto,
    Here,
    PortForward,
    DebugPod,
    Ephemeral,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FailOnArg {
    Fail,
    Warn,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// List the checks in run order: id, title, what each needs.
    Checks,
    /// Show one check's documented fix and why it matters.
    Explain {
        /// A check id, e.g. workload.pods (see `elsadoctor checks`).
        id: String,
    },
    /// Check manifests offline: the configuration and production checks, no cluster needed.
    ///
    /// Reads files, directories (every *.yaml, *.yml, *.json below) and multi-document YAML;
    /// `-` reads standard input, so `kustomize build overlays/prod | elsadoctor lint -f -` and
    /// `helm template elsa ./chart | elsadoctor lint -f -` work. Secret values are used for
    /// $(VAR) expansion and never printed. Same outputs and exit codes as a cluster run.
    Lint {
        /// Manifest files or directories; `-` for standard input.
        #[arg(short = 'f', long = "filename", value_name = "PATH", required = true, num_args = 1..)]
        files: Vec<PathBuf>,
    },
    /// Delete leftover probe pods (label app.kubernetes.io/managed-by=elsadoctor).
    ///
    /// A run deletes its debug pod on every exit it gets to handle (success, failure, Ctrl-C,
    /// SIGTERM); this removes the pods of runs that were killed outright. Pods younger than
    /// --min-age are left alone, so a run in progress keeps its pod.
    Cleanup {
        /// Only delete pods at least this old.
        #[arg(long, value_name = "DURATION", default_value = "1m", value_parser = parse_duration)]
        min_age: Duration,
    },
    /// Run every check against a built-in simulated cluster (no cluster needed).
    ///
    /// The simulation serves an Elsa deployment over a real (loopback) Kubernetes API, with its
    /// own Service network, cluster DNS and, where the scenario has one, a database that
    /// answers; every output is labelled SIMULATED. Each built-in scenario is one consistent
    /// cluster: no two findings contradict each other. The run starts by saying, on stderr,
    /// which scenario it shows. --vantage debug-pod (or `d` in the TUI) works too: the probe
    /// pod runs this binary and resolves through the simulated cluster DNS.
    ///
    /// Examples:
    ///   elsadoctor demo --list                   the built-in scenarios, one line each
    ///   elsadoctor demo                          the default one (crash-loop)
    ///   elsadoctor demo --scenario healthy --vantage debug-pod
    ///   elsadoctor demo --scenario ./my-scenario your own directory (format: README.md,
    ///                                            "Scenarios")
    #[command(verbatim_doc_comment)]
    Demo {
        /// A built-in scenario by name (see --list), or a scenario directory: *.yaml manifests
        /// and an optional sim.yaml. A value with a `/` is always a directory.
        #[arg(long, value_name = "NAME|DIR", conflicts_with = "list")]
        scenario: Option<String>,
        /// List the built-in scenarios with what each shows, and exit.
        #[arg(long)]
        list: bool,
    },
    /// Run this elsadoctor's checks on a facts bundle (from --dump-facts), offline.
    ///
    /// No cluster is contacted. Every output (text, JSON, markdown, the TUI) is labelled
    /// REPLAY with the bundle's date and origin, so a report from someone else's cluster can be
    /// re-judged after elsadoctor learns something new. A bundle of a newer schema is refused.
    Replay {
        /// The bundle file, or `-` for standard input.
        #[arg(value_name = "FILE")]
        file: PathBuf,
    },
    /// The in-pod agent: DNS, TCP, file and database probes from where it runs; prints JSON.
    ///
    /// This is what `--vantage debug-pod` runs inside the cluster, and you can run it yourself
    /// from any pod (or your machine). Names resolve the way the pod's resolver does: the
    /// resolv.conf's search list and ndots, every name tried listed in the output. TCP targets
    /// resolve the same way. All probes run at once; the run takes at most --timeout (plus a
    /// moment). The database connection string is read from an environment variable, never from
    /// the command line, and its password is never printed.
    ///
    /// Examples:
    ///   elsadoctor probe --dns postgres --tcp postgres:5432
    ///   elsadoctor probe --dns postgres.elsa.svc.cluster.local. --timeout 2s
    ///   elsadoctor probe --files '/app/*.dll' --files '/app/*.db*'
    ///   ConnectionStrings__PostgreSql='Host=postgres;…' \
    ///     elsadoctor probe --db --db-env ConnectionStrings__PostgreSql --db-table Workflows
    ///
    /// Output: one JSON document on one line of stdout (schemaVersion 1): resolvConf, dns[],
    /// tcp[], files[], db. Exit codes: 0 every probe succeeded (a name resolved, a port
    /// connected, a pattern listed, the database login worked); 1 any did not; 2 bad flags.
    #[command(verbatim_doc_comment)]
    Probe(ProbeArgs),
}

/// What `elsadoctor probe` probes. `timeout` comes from the global `--timeout`.
#[derive(Debug, Args, Clone)]
pub struct ProbeArgs {
    /// Resolve NAME with the resolv.conf's rules (repeatable). A trailing dot makes it absolute.
    #[arg(long = "dns", value_name = "NAME")]
    pub dns: Vec<String>,

    /// Connect to HOST:PORT over TCP (repeatable); HOST resolves as --dns does.
    /// IPv6: [fd00::1]:5432.
    #[arg(long = "tcp", value_name = "HOST:PORT", value_parser = parse_host_port)]
    pub tcp: Vec<HostPort>,

    /// List the paths matching GLOB (a container path, e.g. '/app/*.dll'; repeatable).
    #[arg(long = "files", value_name = "GLOB")]
    pub files: Vec<String>,

    /// The resolv.conf to resolve with.
    #[arg(
        long,
        value_name = "PATH",
        env = "ELSADOCTOR_PROBE_RESOLV_CONF",
        default_value = "/etc/resolv.conf"
    )]
    pub resolv_conf: PathBuf,

    /// The directory that stands for the container's / when listing --files.
    #[arg(
        long,
        value_name = "DIR",
        env = "ELSADOCTOR_PROBE_ROOT",
        default_value = "/"
    )]
    pub root: PathBuf,

    /// Log in to PostgreSQL with the Npgsql connection string in the environment variable
    /// ELSADOCTOR_DB_CONNECTION (or --db-env); read-only queries only.
    #[arg(long)]
    pub db: bool,

    /// The environment variable holding the connection string, e.g.
    /// ConnectionStrings__PostgreSql.
    #[arg(
        long,
        value_name = "VAR",
        default_value = "ELSADOCTOR_DB_CONNECTION",
        requires = "db"
    )]
    pub db_env: String,

    /// A table to look for in schema "Elsa" with --db (repeatable), e.g. WorkflowDefinitions.
    #[arg(long = "db-table", value_name = "NAME", requires = "db")]
    pub db_tables: Vec<String>,

    /// Set from the global --timeout: each probe's limit.
    #[arg(skip = std::time::Duration::from_secs(5))]
    pub timeout: Duration,
}

impl From<ProbeArgs> for ProbeRequest {
    fn from(a: ProbeArgs) -> Self {
        ProbeRequest {
            dns: a.dns,
            tcp: a.tcp,
            files: a.files,
            resolv_conf: a.resolv_conf,
            root: a.root,
            db: a.db,
            db_env: a.db_env,
            db_tables: a.db_tables,
            timeout: a.timeout,
        }
    }
}

/// Parses `postgres:5432`, `10.0.0.5:5432`, `[fd00::1]:5432`.
pub fn parse_host_port(s: &str) -> Result<HostPort, String> {
    let s = s.trim();
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        let (host, port) = rest
            .split_once("]:")
            .ok_or_else(|| format!("{s:?} is not [IPV6]:PORT"))?;
        (host, port)
    } else {
        s.rsplit_once(':')
            .ok_or_else(|| format!("{s:?} is not HOST:PORT (example: postgres:5432)"))?
    };
    if host.is_empty() || host.contains(':') && !s.starts_with('[') {
        return Err(format!(
            "{s:?} is not HOST:PORT (write IPv6 addresses as [fd00::1]:5432)"
        ));
    }
    let port: u16 = port
        .parse()
        .ok()
        .filter(|p| *p != 0)
        .ok_or_else(|| format!("{port:?} in {s:?} is not a port (1-65535)"))?;
    Ok(HostPort {
        host: host.to_owned(),
        port,
    })
}

/// Parses `5s`, `500ms`, `2m`, `1.5s`, or a bare number of seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, unit) = match s.find(|c: char| !(c.is_ascii_digit() || c == '.')) {
        Some(i) => s.split_at(i),
        None => (s, "s"),
    };
    let value: f64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a duration (examples: 5s, 500ms, 2m)"))?;
    let secs = match unit {
        "ms" => value / 1000.0,
        "s" => value,
        "m" => value * 60.0,
        "h" => value * 3600.0,
        other => {
            return Err(format!(
                "unknown unit {other:?} in {s:?} (use ms, s, m or h)"
            ));
        }
    };
    if !(secs.is_finite() && secs > 0.0 && secs < 86_400.0) {
        return Err(format!("{s:?} must be more than 0 and less than a day"));
    }
    Ok(Duration::from_secs_f64(secs))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("5s"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("3"), Ok(Duration::from_secs(3)));
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("5x").is_err());
        assert!(parse_duration("fast").is_err());
    }

    #[test]
    fn host_ports() {
        let hp = |h: &str, p| HostPort {
            host: h.to_owned(),
            port: p,
        };
        assert_eq!(parse_host_port("postgres:5432"), Ok(hp("postgres", 5432)));
        assert_eq!(parse_host_port("[fd00::1]:5432"), Ok(hp("fd00::1", 5432)));
        assert_eq!(hp("fd00::1", 5432).to_string(), "[fd00::1]:5432");
        for bad in [
            "postgres",
            ":5432",
            "postgres:",
            "postgres:0",
            "postgres:99999",
            "fd00::1:5432",
            "[fd00::1]",
        ] {
            assert!(parse_host_port(bad).is_err(), "{bad}");
        }
    }
}
