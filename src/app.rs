//! Orchestration of one run: connect, gather concurrently with the runner, feed exactly one
//! renderer, and return the outcome `main` maps to an exit code. Also the `checks`, `explain` and
//! `demo` commands.

use std::io::{self, Write};

use tokio::sync::mpsc;

use crate::catalogue::Catalogue;
use crate::cli::Format;
use crate::gather::debug_pod::Janitor;
use crate::gather::kube::{ConnectError, KubeTarget, connect, gather};
use crate::render::{json, text::TextRenderer};
use crate::report::Report;
use crate::runner::{self, RunEvent};
use crate::settings::Settings;

/// Why elsadoctor could not do what was asked (exit code 2). Findings are never errors.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("{0}")]
    Connect(#[from] ConnectError),
    #[error("the built-in check catalogue is invalid: {0}")]
    Catalogue(#[from] crate::catalogue::CatalogueError),
    #[error("unknown check {id:?}{hint} (list them with `elsadoctor checks`)")]
    UnknownCheck { id: String, hint: String },
    #[error("cannot write output: {0}")]
    Output(io::Error),
    #[error("{0}")]
    Scenario(String),
    #[error("{0}")]
    Bundle(String),
    #[error("cleanup: {0}")]
    Cleanup(String),
    #[error("interrupted by {signal}{cleanup}")]
    Interrupted {
        signal: &'static str,
        /// What could not be cleaned up, if anything.
        cleanup: String,
    },
}

/// What a run produced.
pub struct RunOutcome {
    pub report: Report,
    /// Set when stdout was closed early (e.g. `| head`): not an error.
    pub broken_pipe: bool,
}

/// Runs every check against the cluster `settings` point at, rendering to `out` (or the TUI).
pub async fn run(settings: &Settings, out: &mut dyn Write) -> Result<RunOutcome, AppError> {
    run_against(settings, &settings.target, out).await
}

/// Runs against `target` (its `simulation` labels the output as the built-in one). Picks the
/// one consumer of the run: the TUI when interactive, else the requested report, repeated with
/// `--watch`.
pub async fn run_against(
    settings: &Settings,
    target: &KubeTarget,
    out: &mut dyn Write,
) -> Result<RunOutcome, AppError> {
    let catalogue = Catalogue::shared()?;
    let outcome = if settings.tui {
        crate::tui::run(settings, target, catalogue)
            .await
            .map(|report| RunOutcome {
                report,
                broken_pipe: false,
            })
    } else {
        match settings.watch {
            Some(every) => watch(settings, target, catalogue, every, out).await,
            None => {
                render_one(settings, out, async |emit: &mut dyn FnMut(RunEvent)| {
                    execute(settings, target, catalogue, None, emit).await
                })
                .await
            }
        }
    };
    // A run that was dropped half-way (the TUI quit during a debug-pod run) leaves its pod
    // registered: delete it now, whatever the outcome.
    for l in Janitor::global().sweep(settings.timeout).await {
        tracing::warn!(pod = %l, "could not delete a probe pod; `elsadoctor cleanup` removes it");
    }
    outcome
}

/// One run: connect, gather concurrently with the runner, and hand every [`RunEvent`] to `emit`.
/// `vantage` overrides the settings' (the TUI's debug-pod re-run). The catalogue may be a
/// subset ([`Catalogue::with_dependents`]): the runner then judges only those checks.
pub async fn execute(
    settings: &Settings,
    target: &KubeTarget,
    catalogue: &Catalogue,
    vantage: Option<crate::gather::Vantage>,
    emit: &mut dyn FnMut(RunEvent),
) -> Result<Report, AppError> {
    if let Some(bundle) = &settings.replay {
        return replay_once(settings, bundle, catalogue, emit).await;
    }
    let (client, mut scope) = connect(target, settings.timeout).await?;
    scope.simulated = target.simulation.is_some();
    scope.scenario = target.simulation.clone();
    scope.stated = settings.stated.clone();
    tracing::info!(context = ?scope.context, namespace = %scope.namespace, server = %scope.server, "starting run");
    let (tx, rx) = mpsc::unbounded_channel();
    // Inside a pod the doctor sits where the app does; outside, the API's port-forward is
    // the way into the cluster network.
    let vantage = vantage.or(settings.vantage).unwrap_or(
        if scope.namespace_source == crate::facts::NamespaceSource::InCluster {
            crate::gather::Vantage::Here
        } else {
            crate::gather::Vantage::PortForward
        },
    );
    let options = crate::gather::Options {
        timeout: settings.timeout,
        vantage,
        probe_image: settings.probe_image.clone(),
        resolv_conf: settings.resolv_conf.clone(),
        janitor: Janitor::global().clone(),
    };
    let gathering = gather(client, scope.clone(), options, tx);
    let vantage = vantage.to_string();
    let running = async {
        let (report, facts) =
            runner::run_keeping_facts(catalogue, scope, &vantage, rx, settings.deadline, emit)
                .await;
        match &settings.dump_facts {
            Some(path) => dump_facts(path, &facts, &vantage, &report.started_at).map(|()| report),
            None => Ok(report),
        }
    };
    // Gathering and the runner share this task. The runner ends when gathering is done or the
    // deadline passes; whatever gathering still waits for is then dropped, which cancels it.
    // Ctrl-C and SIGTERM drop both as well; then every pod the run created is deleted.
    let interrupted = shutdown_signal();
    tokio::pin!(gathering, running, interrupted);
    let mut gathered = false;
    loop {
        tokio::select! {
            report = &mut running => return report,
            () = &mut gathering, if !gathered => gathered = true,
            signal = &mut interrupted => {
                let leftovers = Janitor::global().sweep(settings.timeout).await;
                return Err(AppError::Interrupted {
                    signal,
                    cleanup: if leftovers.is_empty() {
                        String::new()
                    } else {
                        format!(
                            "; could not delete {} (run `elsadoctor cleanup`)",
                            leftovers.join(", ")
                        )
                    },
                });
            }
        }
    }
}

/// Writes the facts bundle of a run to `path`.
fn dump_facts(
    path: &std::path::Path,
    facts: &crate::facts::Facts,
    vantage: &str,
    started_at: &str,
) -> Result<(), AppError> {
    let text = crate::bundle::write(facts, vantage, started_at)
        .map_err(|e| AppError::Bundle(format!("cannot encode the facts bundle: {e}")))?;
    std::fs::write(path, text).map_err(|e| {
        AppError::Bundle(format!(
            "cannot write the facts bundle to {}: {e}",
            path.display()
        ))
    })
}

/// One replay: the bundle's facts fed to the runner as gathering would feed them.
async fn replay_once(
    settings: &Settings,
    bundle: &crate::bundle::Bundle,
    catalogue: &Catalogue,
    emit: &mut dyn FnMut(RunEvent),
) -> Result<Report, AppError> {
    let mut scope = bundle.facts.scope.clone();
    scope.replay = Some(bundle.origin());
    let (tx, rx) = mpsc::unbounded_channel();
    for u in crate::bundle::updates(bundle.facts.clone()) {
        // The receiver lives until the run ends; a send cannot fail here.
        let _ = tx.send(u);
    }
    drop(tx);
    let vantage = bundle.header.vantage.clone();
    let (report, facts) =
        runner::run_keeping_facts(catalogue, scope, &vantage, rx, settings.deadline, emit).await;
    if let Some(path) = &settings.dump_facts {
        dump_facts(path, &facts, &vantage, &bundle.header.created_at)?;
    }
    Ok(report)
}

/// `elsadoctor replay FILE`: this elsadoctor's checks on a facts bundle, in every output.
pub async fn replay(
    settings: &Settings,
    file: &std::path::Path,
    out: &mut dyn Write,
) -> Result<RunOutcome, AppError> {
    let text = if file.as_os_str() == "-" {
        let mut s = String::new();
        io::Read::read_to_string(&mut io::stdin(), &mut s)
            .map_err(|e| AppError::Bundle(format!("cannot read the bundle from stdin: {e}")))?;
        s
    } else {
        std::fs::read_to_string(file)
            .map_err(|e| AppError::Bundle(format!("cannot read {}: {e}", file.display())))?
    };
    let bundle = crate::bundle::read(&text)
        .map_err(|e| AppError::Bundle(format!("{}: {e}", file.display())))?;
    let settings = Settings {
        replay: Some(std::sync::Arc::new(bundle)),
        ..settings.clone()
    };
    run_against(&settings, &settings.target, out).await
}

/// Resolves on Ctrl-C (SIGINT) or SIGTERM, with the signal's name. Never resolves when the
/// handlers cannot be installed (the default action then still ends the process).
async fn shutdown_signal() -> &'static str {
    let ctrl_c = async {
        match tokio::signal::ctrl_c().await {
            Ok(()) => "SIGINT",
            Err(_) => std::future::pending().await,
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
                "SIGTERM"
            }
            Err(_) => std::future::pending().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<&'static str>();
    tokio::select! {
        s = ctrl_c => s,
        s = term => s,
    }
}

/// `elsadoctor cleanup`: deletes leftover probe pods in the namespace.
pub async fn cleanup(
    settings: &Settings,
    min_age: std::time::Duration,
    out: &mut dyn Write,
) -> Result<(), AppError> {
    let (client, scope) = connect(&settings.target, settings.timeout).await?;
    let (deleted, failed) = crate::gather::debug_pod::cleanup(
        client,
        scope.namespace.clone(),
        min_age,
        settings.timeout,
    )
    .await
    .map_err(AppError::Cleanup)?;
    let w = |out: &mut dyn Write, line: String| writeln!(out, "{line}").map_err(AppError::Output);
    if deleted.is_empty() && failed.is_empty() {
        w(
            out,
            format!(
                "no leftover probe pods in namespace {} (older than {})",
                scope.namespace,
                crate::report::humanize(min_age)
            ),
        )?;
    }
    for name in &deleted {
        w(
            out,
            format!("deleted pod/{name} in namespace {}", scope.namespace),
        )?;
    }
    if !failed.is_empty() {
        return Err(AppError::Cleanup(format!(
            "could not delete {}",
            failed.join(", ")
        )));
    }
    Ok(())
}

/// `--watch` for the non-interactive outputs: a full report per run, then what changed since
/// the previous one, until Ctrl-C; the outcome is the last finished run's.
async fn watch(
    settings: &Settings,
    target: &KubeTarget,
    catalogue: &Catalogue,
    every: std::time::Duration,
    out: &mut dyn Write,
) -> Result<RunOutcome, AppError> {
    let mut last: Option<RunOutcome> = None;
    let interrupted = tokio::signal::ctrl_c();
    tokio::pin!(interrupted);
    loop {
        let once = render_one(settings, out, async |emit: &mut dyn FnMut(RunEvent)| {
            execute(settings, target, catalogue, None, emit).await
        });
        let outcome = tokio::select! {
            o = once => o?,
            _ = &mut interrupted => break,
        };
        if outcome.broken_pipe {
            return Ok(outcome);
        }
        if let Some(prev) = &last {
            let changes = crate::render::changes(&prev.report, &outcome.report);
            let written = crate::render::text::changes(out, &changes, settings.style, every);
            if let Err(e) = written {
                return finish(outcome.report, Some(e));
            }
        } else if let Err(e) = writeln!(
            out,
            "\n(watching: next run in {}; Ctrl-C ends)",
            runner::humanize(every)
        )
        .and_then(|()| out.flush())
        {
            return finish(outcome.report, Some(e));
        }
        last = Some(outcome);
        tokio::select! {
            () = tokio::time::sleep(every) => {}
            _ = &mut interrupted => break,
        }
        if let Err(e) = writeln!(out).and_then(|()| out.flush()) {
            return finish(last.map(|l| l.report).unwrap_or_else(empty_report), Some(e));
        }
    }
    Ok(last.unwrap_or_else(|| RunOutcome {
        report: empty_report(),
        broken_pipe: false,
    }))
}

/// A report with nothing in it, for a watch interrupted before its first run finished: it
/// counts one unknown so the exit code says "not evaluated".
fn empty_report() -> Report {
    Report {
        schema_version: crate::report::SCHEMA_VERSION,
        tool: crate::report::Tool::default(),
        target: crate::report::Target::default(),
        vantage: String::new(),
        started_at: String::new(),
        duration_ms: 0,
        summary: crate::report::Summary {
            unknown: 1,
            ..Default::default()
        },
        checks: Vec::new(),
    }
}

/// Renders one run in the requested non-interactive format. `produce` runs the checks and
/// calls the emit function it is given for every event.
async fn render_one(
    settings: &Settings,
    out: &mut dyn Write,
    produce: impl AsyncFnOnce(&mut dyn FnMut(RunEvent)) -> Result<Report, AppError>,
) -> Result<RunOutcome, AppError> {
    let report;
    let write_error = match settings.format {
        Format::Text => {
            let mut renderer = TextRenderer::new(&mut *out, settings.style);
            report = produce(&mut |e: RunEvent| renderer.on_event(&e)).await?;
            renderer.into_error()
        }
        Format::Json => {
            report = produce(&mut |_| {}).await?;
            write_whole(out, |buf| json::write(buf, &report)).err()
        }
        Format::Markdown => {
            report = produce(&mut |_| {}).await?;
            write_whole(out, |buf| crate::render::markdown::write(buf, &report)).err()
        }
    };
    finish(report, write_error)
}

/// `elsadoctor demo [--scenario NAME|DIR]`: serves a built-in scenario (by name, default
/// [`elsadoctor_sim::DEFAULT_BUILTIN`]) or a scenario directory from the simulated cluster on
/// loopback and runs every check against it, labelled SIMULATED. Which scenario, and what it
/// shows, is one line of the report's target (`scenario`), so stderr stays quiet.
pub async fn demo(
    settings: &Settings,
    scenario: Option<&str>,
    out: &mut dyn Write,
) -> Result<RunOutcome, AppError> {
    let (scenario, description) =
        demo_scenario(scenario.unwrap_or(elsadoctor_sim::DEFAULT_BUILTIN))?;
    let simulation = match description {
        Some(description) => format!("{}: {description}", scenario.name()),
        None => format!(
            "your scenario {} (namespace {})",
            scenario.name(),
            scenario.default_namespace()
        ),
    };
    // The kubelet stand-in runs probe pods the doctor creates with this very binary.
    let scenario = match std::env::current_exe() {
        Ok(exe) => scenario.with_kubelet(elsadoctor_sim::KubeletConfig::new(exe)),
        Err(e) => {
            tracing::debug!("no kubelet stand-in: cannot find the running binary: {e}");
            scenario
        }
    };
    let server = elsadoctor_sim::SimServer::start(scenario)
        .await
        .map_err(|e| AppError::Scenario(format!("cannot start the simulated cluster: {e}")))?;
    let target = KubeTarget {
        inline_kubeconfig: Some(server.kubeconfig_yaml()),
        // The simulation's context namespace applies unless -n/--deployment say otherwise.
        kubeconfig: None,
        context: None,
        simulation: Some(simulation),
        ..settings.target.clone()
    };
    let outcome = run_against(settings, &target, out).await;
    server.shutdown().await;
    outcome
}

/// The scenario `demo --scenario` names: a built-in (with its description) or, for a value
/// with a `/` or one that names no built-in but an existing directory, that directory.
fn demo_scenario(
    value: &str,
) -> Result<(elsadoctor_sim::Scenario, Option<&'static str>), AppError> {
    let is_path = value.contains('/') || value.contains(std::path::MAIN_SEPARATOR);
    if !is_path && let Some(b) = elsadoctor_sim::BUILTINS.iter().find(|b| b.name == value) {
        return match elsadoctor_sim::Scenario::builtin(b.name) {
            Some(Ok(s)) => Ok((s, Some(b.description))),
            Some(Err(e)) => Err(AppError::Scenario(format!(
                "the built-in scenario {} is broken: {e}",
                b.name
            ))),
            None => Err(AppError::Scenario(format!("no built-in scenario {value}"))),
        };
    }
    let dir = std::path::Path::new(value);
    if !is_path && !dir.is_dir() {
        let names: Vec<&str> = elsadoctor_sim::BUILTINS.iter().map(|b| b.name).collect();
        return Err(AppError::Scenario(format!(
            "unknown demo scenario {value:?}: the built-ins are {} (or give a scenario directory, e.g. ./{value})",
            names.join(", ")
        )));
    }
    elsadoctor_sim::Scenario::load_dir(dir)
        .map(|s| (s, None))
        .map_err(|e| AppError::Scenario(format!("cannot load scenario: {e}")))
}

/// `elsadoctor demo --list`: each built-in scenario's name and what it shows.
pub fn list_demos(out: &mut dyn Write) -> Result<(), AppError> {
    let width = elsadoctor_sim::BUILTINS
        .iter()
        .map(|b| b.name.len())
        .max()
        .unwrap_or(0);
    let mut text = String::new();
    for b in elsadoctor_sim::BUILTINS {
        let default = if b.name == elsadoctor_sim::DEFAULT_BUILTIN {
            " (default)"
        } else {
            ""
        };
        text.push_str(&format!("{:width$}  {}{default}\n", b.name, b.description));
    }
    text.push_str("\nRun one with `elsadoctor demo --scenario NAME`; add --vantage debug-pod to probe from inside the simulated cluster.\n");
    out.write_all(text.as_bytes()).map_err(AppError::Output)
}

/// `elsadoctor lint -f PATH...`: the workload, configuration and production checks on
/// manifests, no cluster.
pub async fn lint(
    settings: &Settings,
    paths: &[std::path::PathBuf],
    out: &mut dyn Write,
) -> Result<RunOutcome, AppError> {
    use crate::gather::manifests;
    let docs = manifests::read(paths).map_err(|e| AppError::Scenario(e.to_string()))?;
    let namespace = manifests::namespace(&docs, settings.target.namespace.as_deref());
    let updates = manifests::facts(&docs, &namespace, settings.target.workload.as_deref());
    let mut catalogue = Catalogue::embedded()?;
    catalogue.checks.retain(|c| offline_check(&c.id));
    let scope = crate::facts::Scope {
        context: None,
        server: "(manifests)".to_owned(),
        namespace,
        namespace_source: if settings.target.namespace.is_some() {
            crate::facts::NamespaceSource::Flag
        } else {
            crate::facts::NamespaceSource::Default
        },
        workload_hint: settings.target.workload.clone(),
        simulated: false,
        scenario: None,
        stated: settings.stated.clone(),
        replay: None,
    };
    let (tx, rx) = mpsc::unbounded_channel();
    for u in updates {
        // The receiver lives until the run ends; a send cannot fail here.
        let _ = tx.send(u);
    }
    drop(tx);
    render_one(settings, out, async |emit: &mut dyn FnMut(RunEvent)| {
        Ok(runner::run(&catalogue, scope, "offline", rx, settings.deadline, emit).await)
    })
    .await
}

/// The checks `lint` can judge from manifests alone: which workload and image, and the
/// configuration. Anything about live state (API, pods, rollout) needs a cluster.
fn offline_check(id: &str) -> bool {
    matches!(
        id,
        "workload.found" | "workload.flavor" | "network.policy" | "migration.step"
    ) || id.starts_with("config.")
        || id.starts_with("production.")
}

/// `elsadoctor checks`.
pub fn list_checks(out: &mut dyn Write) -> Result<(), AppError> {
    let cat = Catalogue::embedded()?;
    crate::render::text::catalogue(out, &cat).map_err(AppError::Output)
}

/// `elsadoctor explain ID`.
pub fn explain(out: &mut dyn Write, id: &str) -> Result<(), AppError> {
    let cat = Catalogue::embedded()?;
    let Some(spec) = cat.get(id) else {
        let near = cat.near(id);
        let hint = if near.is_empty() {
            String::new()
        } else {
            format!("; did you mean {}?", near.join(", "))
        };
        return Err(AppError::UnknownCheck {
            id: id.to_owned(),
            hint,
        });
    };
    crate::render::text::explain(out, spec).map_err(AppError::Output)
}

/// A finished run and how writing it went: a closed pipe is not an error.
/// Renders a whole document into memory, then writes it in one go: stdout is line-buffered,
/// and a JSON report is hundreds of lines, each of which would otherwise be its own `write`.
fn write_whole(
    out: &mut dyn Write,
    render: impl FnOnce(&mut dyn Write) -> io::Result<()>,
) -> io::Result<()> {
    let mut buf = Vec::with_capacity(64 * 1024);
    render(&mut buf)?;
    out.write_all(&buf)?;
    out.flush()
}

fn finish(report: Report, write_error: Option<io::Error>) -> Result<RunOutcome, AppError> {
    match write_error {
        Some(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(RunOutcome {
            report,
            broken_pipe: true,
        }),
        Some(e) => Err(AppError::Output(e)),
        None => Ok(RunOutcome {
            report,
            broken_pipe: false,
        }),
    }
}
