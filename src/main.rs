//! The `elsadoctor` binary: parse flags, pick the mode, map the outcome to an exit code.
//! Exit codes: 0 no check failed, 1 a check failed or could not be evaluated, 2 could not start.

use std::io::{self, IsTerminal, Write};
use std::process::ExitCode;

use clap::Parser;
use clap::error::ErrorKind;
use elsadoctor::app::{self, AppError, RunOutcome};
use elsadoctor::cli::{Cli, Command, Format};
use elsadoctor::settings::{Env, Settings};

const EXIT_FAILED: u8 = 1;
const EXIT_CANNOT_START: u8 = 2;

fn main() -> ExitCode {
    elsadoctor::catalogue::Catalogue::prefetch();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return usage_error(&e),
    };
    let settings = Settings::resolve(&cli, &Env::current());
    if let Some(Command::Probe(args)) = &cli.command {
        return probe(args.clone(), &settings);
    }
    if settings.watch.is_some() && !settings.tui && settings.format != Format::Text {
        let _ = writeln!(
            io::stderr(),
            "elsadoctor: --watch works with the interactive TUI and -o text; see elsadoctor --help"
        );
        return ExitCode::from(EXIT_CANNOT_START);
    }
    let interactive = settings.tui
        && matches!(
            cli.command,
            None | Some(Command::Demo { list: false, .. }) | Some(Command::Replay { .. })
        );
    init_tracing(settings.verbosity, interactive);

    let stdout = io::stdout();
    let mut out = stdout.lock();
    let result = match &cli.command {
        Some(Command::Checks) => app::list_checks(&mut out).map(|()| None),
        Some(Command::Explain { id }) => app::explain(&mut out, id).map(|()| None),
        Some(Command::Lint { files }) => {
            runtime().and_then(|rt| rt.block_on(app::lint(&settings, files, &mut out)).map(Some))
        }
        Some(Command::Cleanup { min_age }) => runtime().and_then(|rt| {
            rt.block_on(app::cleanup(&settings, *min_age, &mut out))
                .map(|()| None)
        }),
        Some(Command::Demo { list: true, .. }) => app::list_demos(&mut out).map(|()| None),
        Some(Command::Demo { scenario, .. }) => runtime().and_then(|rt| {
            rt.block_on(app::demo(&settings, scenario.as_deref(), &mut out))
                .map(Some)
        }),
        Some(Command::Replay { file }) => runtime().and_then(|rt| {
            rt.block_on(app::replay(&settings, file, &mut out))
                .map(Some)
        }),
        Some(Command::Probe(_)) => Ok(None),
        None => runtime().and_then(|rt| rt.block_on(app::run(&settings, &mut out)).map(Some)),
    };
    drop(out);
    match result {
        Ok(None) => ExitCode::SUCCESS,
        Ok(Some(RunOutcome {
            broken_pipe: true, ..
        })) => ExitCode::SUCCESS,
        Ok(Some(outcome)) if outcome.report.is_failure(settings.fail_on) => {
            ExitCode::from(EXIT_FAILED)
        }
        Ok(Some(_)) => ExitCode::SUCCESS,
        Err(AppError::Output(e)) if e.kind() == io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e @ AppError::Interrupted { signal, .. }) => {
            eprintln!("elsadoctor: {e}");
            // The shell convention: 128 + the signal number.
            ExitCode::from(if signal == "SIGTERM" { 143 } else { 130 })
        }
        Err(e) => {
            eprintln!("elsadoctor: {e}");
            ExitCode::from(EXIT_CANNOT_START)
        }
    }
}

/// `elsadoctor probe`: one line of JSON on stdout; exit 0 all probes succeeded, 1 any did not,
/// 2 nothing to probe. Only elsadoctor's own warnings reach stderr unless -v asks for more: a
/// debug pod's log mixes stderr into the stdout the doctor reads back.
fn probe(args: elsadoctor::cli::ProbeArgs, settings: &Settings) -> ExitCode {
    let mut request = elsadoctor::facts::network::ProbeRequest::from(args);
    init_tracing(
        match settings.verbosity {
            0 => None,
            v => Some(v),
        },
        false,
    );
    if let Err(e) = elsadoctor::probe::check_args(&request) {
        eprintln!("elsadoctor: {e}");
        return ExitCode::from(EXIT_CANNOT_START);
    }
    request.timeout = settings.timeout;
    let report = match runtime() {
        Ok(rt) => rt.block_on(elsadoctor::probe::run(request)),
        Err(e) => {
            eprintln!("elsadoctor: {e}");
            return ExitCode::from(EXIT_CANNOT_START);
        }
    };
    let code = elsadoctor::probe::exit_code(&report);
    let line = match serde_json::to_string(&report) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("elsadoctor: cannot write the probe report: {e}");
            return ExitCode::from(EXIT_CANNOT_START);
        }
    };
    let mut out = io::stdout().lock();
    match writeln!(out, "{line}").and_then(|()| out.flush()) {
        Err(e) if e.kind() != io::ErrorKind::BrokenPipe => {
            eprintln!("elsadoctor: cannot write output: {e}");
            ExitCode::from(EXIT_CANNOT_START)
        }
        _ => ExitCode::from(u8::try_from(code).unwrap_or(EXIT_FAILED)),
    }
}

fn runtime() -> Result<tokio::runtime::Runtime, AppError> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| AppError::Scenario(format!("cannot start the async runtime: {e}")))
}

/// clap's errors as one line prefixed `elsadoctor:`; help and version print as usual.
fn usage_error(e: &clap::Error) -> ExitCode {
    match e.kind() {
        ErrorKind::DisplayHelp
        | ErrorKind::DisplayVersion
        | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            let _ = e.print();
            ExitCode::SUCCESS
        }
        _ => {
            let rendered = e.render().to_string();
            let first = rendered
                .lines()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("invalid arguments")
                .trim_start_matches("error: ");
            let tip = rendered
                .lines()
                .find_map(|l| {
                    let l = l.trim();
                    l.strip_prefix("tip: ").map(str::to_owned).or_else(|| {
                        // `[possible values: a, b]` for an enum flag.
                        l.strip_prefix('[')
                            .and_then(|v| v.strip_suffix(']'))
                            .filter(|v| v.starts_with("possible values: "))
                            .map(str::to_owned)
                    })
                })
                .map(|t| format!(" ({t})"))
                .unwrap_or_default();
            let _ = writeln!(
                io::stderr(),
                "elsadoctor: {first}{tip}; see elsadoctor --help"
            );
            ExitCode::from(EXIT_CANNOT_START)
        }
    }
}

/// Logs go to stderr; -v info, -vv debug (kube-rs at info), -vvv trace. `None`: elsadoctor's
/// own warnings only (the probe). In the TUI they go to a file instead (the screen belongs to
/// the TUI): see [`log_file`].
fn init_tracing(verbosity: impl Into<Option<u8>>, interactive: bool) {
    // The libraries' own logs (kube-client logs every failed pods/log, exec or port-forward
    // as an ERROR) are findings here, reported by the checks: they reach stderr only at -vvv.
    let filter = match verbosity.into() {
        None | Some(0) => "elsadoctor=warn,off",
        Some(1) => "elsadoctor=info,off",
        Some(2) => "elsadoctor=debug,off",
        Some(_) => "trace",
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .with_target(false);
    if interactive {
        // No log file, no logs: never the screen.
        if let Some(file) = log_file() {
            let _ = builder
                .with_ansi(false)
                .with_writer(std::sync::Mutex::new(file))
                .try_init();
        }
        return;
    }
    // Colour only for a person at a terminal who did not ask for none.
    let colour =
        io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    let _ = builder.with_ansi(colour).with_writer(io::stderr).try_init();
}

/// The TUI's log file, appended to: $XDG_STATE_HOME/elsadoctor/elsadoctor.log, else
/// ~/.local/state/elsadoctor/elsadoctor.log, else elsadoctor.log in the temp directory.
fn log_file() -> Option<std::fs::File> {
    let state = std::env::var_os("XDG_STATE_HOME")
        .filter(|v| !v.is_empty())
        .map(std::path::PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME")
                .filter(|v| !v.is_empty())
                .map(|h| std::path::PathBuf::from(h).join(".local/state"))
        });
    let candidates = state
        .map(|d| d.join("elsadoctor"))
        .into_iter()
        .chain([std::env::temp_dir()]);
    for dir in candidates {
        if std::fs::create_dir_all(&dir).is_err() {
            continue;
        }
        let opened = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("elsadoctor.log"));
        if let Ok(f) = opened {
            return Some(f);
        }
    }
    None
}
