//! The interactive terminal UI (`elsadoctor` on a terminal, `elsadoctor demo`): one more
//! consumer of the runner's [`RunEvent`] stream, like the text and JSON renderers.
//!
//! Shape (STYLE habit 9): [`state`] is the state machine (`Msg` → `App::update` → optional
//! `Cmd`), [`view`] draws a state and reads nothing else, and this module is the event loop: a
//! reader thread turns terminal input into messages, the current run's events arrive over a
//! channel, a 100 ms tick drives the spinner only while a run is in progress, and the screen is
//! redrawn after each message, never while idle. `ratatui::try_init` installs a panic hook that
//! restores the terminal; every exit path calls `ratatui::restore`.

pub mod state;
pub mod view;

use std::future::Future;
use std::io::Write;
use std::path::PathBuf;
use std::pin::Pin;
use std::time::Duration;

use ratatui::crossterm::event::{self, Event};
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::app::AppError;
use crate::catalogue::Catalogue;
use crate::gather::kube::KubeTarget;
use crate::report::Report;
use crate::runner::RunEvent;
use crate::settings::Settings;
use state::{App, Cmd, ExportFormat, Msg, RunKind};

type RunFuture<'a> = Pin<Box<dyn Future<Output = Result<Report, AppError>> + 'a>>;

/// How often the spinner and the elapsed time advance while checks run.
const TICK: Duration = Duration::from_millis(100);

/// Runs the TUI until the user quits; returns the report the exit code comes from. An error
/// before the first run finished (e.g. an unreadable kubeconfig) ends the TUI and is returned.
pub async fn run(
    settings: &Settings,
    target: &KubeTarget,
    catalogue: &Catalogue,
) -> Result<Report, AppError> {
    let mut terminal = ratatui::try_init().map_err(AppError::Output)?;
    let result = event_loop(&mut terminal, settings, target, catalogue).await;
    ratatui::restore();
    result
}

async fn event_loop(
    terminal: &mut ratatui::DefaultTerminal,
    settings: &Settings,
    target: &KubeTarget,
    catalogue: &Catalogue,
) -> Result<Report, AppError> {
    let (msg_tx, mut msg_rx) = mpsc::unbounded_channel::<Msg>();
    spawn_input_reader(msg_tx);
    // Events carry the number of the run that sent them, so a cancelled run's late events
    // are dropped.
    let (ev_tx, mut ev_rx) = mpsc::unbounded_channel::<(u64, RunEvent)>();
    let vantage = settings
        .vantage
        .map_or_else(|| "auto".to_owned(), |v| v.to_string());
    let mut app = App::new(
        settings.style,
        target.simulation.is_some(),
        &vantage,
        settings.watch,
    );
    if let Ok(size) = terminal.size() {
        app.update(Msg::Resize {
            width: size.width,
            height: size.height,
        });
    }
    let mut generation = 0u64;
    let start = |kind: &RunKind, generation: u64| -> RunFuture<'_> {
        let subset;
        let cat = match kind {
            RunKind::Subset(id) => {
                subset = catalogue.with_dependents(id);
                subset
            }
            RunKind::All | RunKind::DebugPod => catalogue.clone(),
        };
        let vantage = (*kind == RunKind::DebugPod).then_some(crate::gather::Vantage::DebugPod);
        let tx = ev_tx.clone();
        Box::pin(async move {
            let mut emit = move |e: RunEvent| {
                let _ = tx.send((generation, e));
            };
            crate::app::execute(settings, target, &cat, vantage, &mut emit).await
        })
    };
    let mut current: Option<RunFuture<'_>> = Some(start(&RunKind::All, generation));
    let mut started = Instant::now();
    let mut next_watch: Option<Instant> = None;
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let interrupted = shutdown_signal();
    tokio::pin!(interrupted);
    draw(terminal, &app)?;

    loop {
        let msg = tokio::select! {
            biased;
            Some(msg) = msg_rx.recv() => msg,
            Some((g, ev)) = ev_rx.recv() => {
                if g != generation { continue; }
                Msg::Run(Box::new(ev))
            }
            done = async { match current.as_mut() { Some(f) => f.await, None => std::future::pending().await } }, if current.is_some() => {
                current = None;
                if let Some(every) = app.watch {
                    next_watch = Some(Instant::now() + every);
                }
                match done {
                    // The Finished event is already queued (or handled).
                    Ok(_) => continue,
                    Err(e) if app.report.is_none() => return Err(e),
                    Err(e) => Msg::RunFailed(e.to_string()),
                }
            }
            _ = tick.tick(), if app.running.is_some() => Msg::Tick { elapsed: started.elapsed() },
            () = async { match next_watch { Some(at) => tokio::time::sleep_until(at).await, None => std::future::pending().await } }, if current.is_none() && next_watch.is_some() => {
                next_watch = None;
                Msg::WatchDue
            }
            () = &mut interrupted => Msg::Quit,
        };
        let mut pending = Some(msg);
        while let Some(msg) = pending.take() {
            match app.update(msg) {
                None => {}
                Some(Cmd::Quit) => return Ok(app.final_report()),
                Some(Cmd::Run(kind)) => {
                    generation += 1;
                    next_watch = None;
                    started = Instant::now();
                    tick.reset();
                    current = Some(start(&kind, generation));
                }
                Some(Cmd::Copy(text)) => pending = Some(Msg::Notice(copy(&text))),
                Some(Cmd::Export(format, report)) => {
                    pending = Some(Msg::Notice(export(format, &report)));
                }
            }
        }
        draw(terminal, &app)?;
    }
}

fn draw(terminal: &mut ratatui::DefaultTerminal, app: &App) -> Result<(), AppError> {
    terminal
        .draw(|frame| view::view(app, frame))
        .map(|_| ())
        .map_err(AppError::Output)
}

/// Terminal input on a thread of its own: crossterm's reader blocks. The thread ends when the
/// loop is gone (the send fails) or the terminal is closed.
fn spawn_input_reader(tx: mpsc::UnboundedSender<Msg>) {
    let spawned = std::thread::Builder::new()
        .name("tui-input".into())
        .spawn(move || {
            loop {
                let msg = match event::read() {
                    Ok(Event::Key(key)) => Msg::Key(key),
                    Ok(Event::Resize(width, height)) => Msg::Resize { width, height },
                    Ok(_) => continue,
                    Err(e) => {
                        tracing::warn!(error = %e, "terminal input ended");
                        break;
                    }
                };
                if tx.send(msg).is_err() {
                    break;
                }
            }
        });
    if let Err(e) = spawned {
        tracing::error!(error = %e, "cannot start the input thread");
    }
}

/// SIGINT or SIGTERM from outside (in raw mode Ctrl-C is a key, handled by `update`).
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Puts `text` on the clipboard with OSC 52 (works over SSH and in tmux with set-clipboard);
/// returns the confirmation for the footer.
fn copy(text: &str) -> String {
    let seq = osc52(text);
    let mut out = std::io::stdout();
    match out.write_all(seq.as_bytes()).and_then(|()| out.flush()) {
        Ok(()) => format!("copied (OSC 52): {text}"),
        Err(e) => format!("copy failed: {e}"),
    }
}

/// The OSC 52 "set clipboard" sequence for `text`.
pub fn osc52(text: &str) -> String {
    format!("\u{1b}]52;c;{}\u{7}", base64(text.as_bytes()))
}

/// Standard base64 with padding (RFC 4648 §4), for OSC 52.
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for (i, shift) in [18u32, 12, 6, 0].into_iter().enumerate() {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[((n >> shift) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Writes the report to `elsadoctor-report-<time>.md|json` in the current directory; returns
/// the confirmation (with the path) or the error for the footer.
fn export(format: ExportFormat, report: &Report) -> String {
    let stamp: String = report
        .started_at
        .chars()
        .filter(char::is_ascii_digit)
        .take(14)
        .collect();
    let stamp = if stamp.is_empty() {
        "unfinished".to_owned()
    } else {
        stamp
    };
    let (ext, name) = match format {
        ExportFormat::Markdown => ("md", "Markdown"),
        ExportFormat::Json => ("json", "JSON"),
    };
    let path = std::env::current_dir()
        .unwrap_or_else(|_| PathBuf::from("."))
        .join(format!("elsadoctor-report-{stamp}.{ext}"));
    let written = std::fs::File::create(&path).and_then(|mut f| match format {
        ExportFormat::Markdown => crate::render::markdown::write(&mut f, report),
        ExportFormat::Json => crate::render::json::write(&mut f, report),
    });
    match written {
        Ok(()) => format!("exported {name} to {}", path.display()),
        Err(e) => format!("export to {} failed: {e}", path.display()),
    }
}

#[cfg(test)]
mod tests;
