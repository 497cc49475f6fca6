//! Resolved settings: the parsed command line combined with the environment (terminal, colour,
//! locale) into the decisions the rest of the program reads. Resolving happens once, here.

use std::io::IsTerminal;
use std::time::Duration;

use crate::cli::{Cli, FailOnArg, Format, VantageArg};
use crate::gather::kube::KubeTarget;
use crate::report::FailOn;

/// How text output looks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Style {
    /// ANSI colour: only on a terminal, never with NO_COLOR.
    pub color: bool,
    /// ✔ ‼ ✖ ? ⊘ when the locale is UTF-8; an ASCII fallback otherwise.
    pub unicode: bool,
}

#[derive(Debug, Clone)]
pub struct Settings {
    pub target: KubeTarget,
    /// The report format when not interactive.
    pub format: Format,
    /// Interactive: stdout is a terminal and no -o/--json was given (commands that run checks).
    pub tui: bool,
    /// `--watch`: re-run at this interval.
    pub watch: Option<Duration>,
    pub fail_on: FailOn,
    pub timeout: Duration,
    pub deadline: Duration,
    pub verbosity: u8,
    pub style: Style,
    /// `None`: decide from where elsadoctor runs (here inside a pod, port-forward outside).
    pub vantage: Option<crate::gather::Vantage>,
    pub probe_image: String,
    pub resolv_conf: std::path::PathBuf,
    /// `--elsa-version` / `--elsa-flavor`.
    pub stated: Option<crate::facts::StatedElsa>,
    /// `--dump-facts FILE`: write the run's facts bundle there.
    pub dump_facts: Option<std::path::PathBuf>,
    /// `elsadoctor replay`: the bundle whose facts every run judges instead of a cluster's.
    pub replay: Option<std::sync::Arc<crate::bundle::Bundle>>,
}

/// The environment facts settings depend on, gathered once so resolution stays testable.
#[derive(Debug, Clone, Default)]
pub struct Env {
    pub stdout_is_tty: bool,
    pub no_color: bool,
    pub utf8_locale: bool,
}

impl Env {
    pub fn current() -> Self {
        // Per no-color.org: set and non-empty disables colour.
        let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        // The first of LC_ALL, LC_CTYPE, LANG that is set decides, as in POSIX.
        let locale = ["LC_ALL", "LC_CTYPE", "LANG"]
            .iter()
            .find_map(|k| std::env::var(k).ok().filter(|v| !v.is_empty()))
            .unwrap_or_default()
            .to_ascii_lowercase();
        Self {
            stdout_is_tty: std::io::stdout().is_terminal(),
            no_color,
            utf8_locale: locale.contains("utf-8") || locale.contains("utf8"),
        }
    }
}

impl Settings {
    pub fn resolve(cli: &Cli, env: &Env) -> Self {
        let format = if cli.output.json {
            Format::Json
        } else {
            cli.output.output.unwrap_or(Format::Text)
        };
        let explicit_format = cli.output.json || cli.output.output.is_some();
        Self {
            target: KubeTarget {
                kubeconfig: cli.cluster.kubeconfig.clone(),
                context: cli.cluster.context.clone(),
                namespace: cli.cluster.namespace.clone(),
                workload: cli.cluster.deployment.clone(),
                inline_kubeconfig: None,
                simulation: None,
            },
            format,
            tui: env.stdout_is_tty && !explicit_format,
            watch: cli.output.watch,
            dump_facts: cli.output.dump_facts.clone(),
            replay: None,
            fail_on: match cli.output.fail_on {
                FailOnArg::Fail => FailOn::Fail,
                FailOnArg::Warn => FailOn::Warn,
            },
            timeout: cli.output.timeout,
            deadline: cli.output.deadline,
            verbosity: cli.output.verbose,
            vantage: match cli.output.vantage {
                VantageArg::Auto => None,
                VantageArg::Here => Some(crate::gather::Vantage::Here),
                VantageArg::PortForward => Some(crate::gather::Vantage::PortForward),
                VantageArg::DebugPod => Some(crate::gather::Vantage::DebugPod),
                VantageArg::Ephemeral => Some(crate::gather::Vantage::Ephemeral),
            },
            probe_image: cli.output.probe_image.clone(),
            resolv_conf: cli.output.resolv_conf.clone(),
            stated: (cli.cluster.elsa_version.is_some() || cli.cluster.elsa_flavor.is_some()).then(
                || crate::facts::StatedElsa {
                    version: cli.cluster.elsa_version,
                    flavor: cli.cluster.elsa_flavor.map(Into::into),
                },
            ),
            style: Style {
                color: env.stdout_is_tty && !env.no_color,
                unicode: env.utf8_locale,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[test]
    fn json_flag_and_colour_rules() {
        let cli = Cli::parse_from(["elsadoctor", "--json", "-n", "elsa"]);
        let tty = Env {
            stdout_is_tty: true,
            no_color: false,
            utf8_locale: true,
        };
        let s = Settings::resolve(&cli, &tty);
        assert_eq!(s.format, Format::Json);
        assert_eq!(s.target.namespace.as_deref(), Some("elsa"));
        assert!(s.style.color && s.style.unicode);
        let s = Settings::resolve(
            &cli,
            &Env {
                no_color: true,
                ..tty.clone()
            },
        );
        assert!(!s.style.color, "NO_COLOR wins");
        let s = Settings::resolve(
            &cli,
            &Env {
                stdout_is_tty: false,
                ..tty
            },
        );
        assert!(!s.style.color, "no colour into a pipe");
        assert!(!s.tui, "--json is never interactive");
        let plain = Cli::parse_from(["elsadoctor", "--watch"]);
        let s = Settings::resolve(
            &plain,
            &Env {
                stdout_is_tty: true,
                ..Env::default()
            },
        );
        assert!(s.tui, "a terminal and no -o: the TUI");
        assert_eq!(s.watch, Some(Duration::from_secs(10)));
        let s = Settings::resolve(
            &Cli::parse_from(["elsadoctor", "-o", "text"]),
            &Env {
                stdout_is_tty: true,
                ..Env::default()
            },
        );
        assert!(!s.tui, "-o text on a terminal: the text report");
        assert_eq!(s.format, Format::Text);
        let s = Settings::resolve(&plain, &Env::default());
        assert!(!s.tui, "not a terminal: the text report");
    }
}
