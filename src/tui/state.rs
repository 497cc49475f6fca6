//! The TUI's state machine: every input, run event and timer tick is a [`Msg`]; [`App::update`]
//! changes the state and may ask the event loop for one side effect ([`Cmd`]). Nothing here
//! does IO, so the whole behaviour is unit-testable and the view (`super::view`) only reads it.

use std::time::Duration;

use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};

use crate::report::{CheckResult, Report, Status, Summary, Target};
use crate::runner::RunEvent;
use crate::settings::Style;

/// Everything that can happen to the TUI.
#[derive(Debug, Clone)]
pub enum Msg {
    Key(KeyEvent),
    /// The terminal's size (at start and on every resize).
    Resize {
        width: u16,
        height: u16,
    },
    /// The spinner's clock while a run is in progress: time since the run started.
    Tick {
        elapsed: Duration,
    },
    /// An event of the current run.
    Run(Box<RunEvent>),
    /// The current run could not happen (e.g. the cluster could not be reached).
    RunFailed(String),
    /// `--watch`: the next periodic run is due.
    WatchDue,
    /// A line for the footer (the outcome of a copy or an export).
    Notice(String),
    /// SIGINT/SIGTERM from outside.
    Quit,
}

/// Which checks a run covers, and from where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunKind {
    /// The whole catalogue.
    All,
    /// A check and every check depending on it (`R`).
    Subset(String),
    /// The whole catalogue with `--vantage debug-pod` (`d`, after consent).
    DebugPod,
}

/// The Markdown or JSON export (`e`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportFormat {
    Markdown,
    Json,
}

/// A side effect the event loop performs for [`App::update`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cmd {
    /// Start a run (cancelling one in progress).
    Run(RunKind),
    /// Put this text on the clipboard (OSC 52).
    Copy(String),
    /// Write the report to a file.
    Export(ExportFormat, Box<Report>),
    Quit,
}

/// Which pane the arrow keys move in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Focus {
    List,
    Detail,
}

/// What the keyboard is talking to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Normal,
    /// Typing a `/` search.
    Search,
    Help,
    /// Asked "run the debug-pod probes?".
    ConfirmDebugPod,
    /// Asked "Markdown or JSON?".
    Export,
}

/// Where one check stands in the current run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RowState {
    /// Planned, its facts not asked for yet.
    Pending,
    Running,
    Done(Box<CheckResult>),
}

/// One check in the left pane.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    pub id: String,
    pub title: String,
    pub category: String,
    pub state: RowState,
    /// The status this check had when the current run started (for the change marker).
    pub previous: Option<Status>,
}

impl Row {
    pub fn result(&self) -> Option<&CheckResult> {
        match &self.state {
            RowState::Done(r) => Some(r),
            _ => None,
        }
    }

    pub fn status(&self) -> Option<Status> {
        self.result().map(|r| r.status)
    }

    /// Its status differs from the one before this run (a re-run or `--watch`).
    pub fn changed(&self) -> bool {
        matches!((self.previous, self.status()), (Some(a), Some(b)) if a != b)
    }

    /// Failed, warned or unknown; while it is being re-run, what it was before, so the
    /// failures filter does not empty during a re-run.
    fn is_problem(&self) -> bool {
        matches!(
            self.status().or(self.previous),
            Some(Status::Fail | Status::Warn | Status::Unknown)
        )
    }
}

/// The whole TUI state.
#[derive(Debug, Clone)]
pub struct App {
    pub style: Style,
    pub simulated: bool,
    pub target: Target,
    /// The vantage the last finished run reported, or what was asked for.
    pub vantage: String,
    pub rows: Vec<Row>,
    /// The run in progress.
    pub running: Option<RunKind>,
    /// Time since the current run started, or the last run's duration.
    pub elapsed: Duration,
    /// Completed runs.
    pub runs: u32,
    /// The merged result of the runs so far (a subset re-run replaces its checks).
    pub report: Option<Report>,
    /// Index into `rows`.
    pub selected: usize,
    pub focus: Focus,
    pub mode: Mode,
    /// Index into the selected check's fix commands (`c` copies it).
    pub command: usize,
    pub detail_scroll: u16,
    pub failures_only: bool,
    pub search: String,
    pub notice: Option<String>,
    pub watch: Option<Duration>,
    pub size: (u16, u16),
    pub quit: bool,
}

/// Rows of the list a page key moves by, given the terminal height: all but the header (2),
/// footer (2) and the pane's borders (2).
fn page_rows(height: u16) -> usize {
    usize::from(height.saturating_sub(6)).max(1)
}

impl App {
    /// A TUI about to start its first full run.
    pub fn new(style: Style, simulated: bool, vantage: &str, watch: Option<Duration>) -> Self {
        Self {
            style,
            simulated,
            target: Target {
                simulated,
                ..Default::default()
            },
            vantage: vantage.to_owned(),
            rows: Vec::new(),
            running: Some(RunKind::All),
            elapsed: Duration::ZERO,
            runs: 0,
            report: None,
            selected: 0,
            focus: Focus::List,
            mode: Mode::Normal,
            command: 0,
            detail_scroll: 0,
            failures_only: false,
            search: String::new(),
            notice: None,
            watch,
            size: (80, 24),
            quit: false,
        }
    }

    /// The rows the list shows, after the failures filter and the search, as indexes into
    /// `rows` (catalogue order).
    pub fn visible(&self) -> Vec<usize> {
        let needle = self.search.to_lowercase();
        self.rows
            .iter()
            .enumerate()
            .filter(|(_, r)| !self.failures_only || r.is_problem())
            .filter(|(_, r)| {
                needle.is_empty()
                    || r.id.to_lowercase().contains(&needle)
                    || r.title.to_lowercase().contains(&needle)
                    || r.result()
                        .is_some_and(|c| c.message.to_lowercase().contains(&needle))
            })
            .map(|(i, _)| i)
            .collect()
    }

    /// The selected row, when the filters leave it visible.
    pub fn selected_row(&self) -> Option<&Row> {
        self.visible()
            .contains(&self.selected)
            .then(|| self.rows.get(self.selected))
            .flatten()
    }

    /// Counts of the current results.
    pub fn summary(&self) -> Summary {
        let statuses: Vec<Status> = self.rows.iter().filter_map(Row::status).collect();
        Summary::of(statuses.iter())
    }

    /// The report to export and to take the exit code from: the last finished run's (merged
    /// with later subset re-runs), even while another run is in progress; before any run
    /// finished, the results so far with every check that has none counted as unknown.
    pub fn final_report(&self) -> Report {
        if let Some(report) = &self.report {
            return report.clone();
        }
        let checks: Vec<CheckResult> = self
            .rows
            .iter()
            .filter_map(|r| r.result().cloned())
            .collect();
        let mut summary = Summary::of(checks.iter().map(|c| &c.status));
        let missing = (self.rows.len() - checks.len()).max(usize::from(self.rows.is_empty()));
        summary.unknown += u32::try_from(missing).unwrap_or(u32::MAX);
        Report {
            schema_version: crate::report::SCHEMA_VERSION,
            tool: crate::report::Tool::default(),
            target: self.target.clone(),
            vantage: self.vantage.clone(),
            started_at: String::new(),
            duration_ms: u64::try_from(self.elapsed.as_millis()).unwrap_or(u64::MAX),
            summary,
            checks,
        }
    }

    /// Handles one message; returns the side effect to perform, if any.
    pub fn update(&mut self, msg: Msg) -> Option<Cmd> {
        match msg {
            Msg::Key(key) => self.key(key),
            Msg::Resize { width, height } => {
                self.size = (width, height);
                None
            }
            Msg::Tick { elapsed } => {
                self.elapsed = elapsed;
                None
            }
            Msg::Run(event) => {
                self.run_event(*event);
                None
            }
            Msg::RunFailed(why) => {
                self.running = None;
                for row in &mut self.rows {
                    if !matches!(row.state, RowState::Done(_)) {
                        row.state = RowState::Pending;
                    }
                }
                self.notice = Some(format!("run failed: {why}"));
                None
            }
            Msg::WatchDue => {
                if self.running.is_some() || self.mode == Mode::ConfirmDebugPod {
                    return None;
                }
                self.start(RunKind::All)
            }
            Msg::Notice(text) => {
                self.notice = Some(text);
                None
            }
            Msg::Quit => {
                self.quit = true;
                Some(Cmd::Quit)
            }
        }
    }

    fn run_event(&mut self, event: RunEvent) {
        match event {
            RunEvent::Planned { target, checks } => {
                if self.target.context.is_none() {
                    self.target.context = target.context;
                    self.target.namespace = target.namespace;
                }
                if self.rows.is_empty() {
                    self.rows = checks
                        .into_iter()
                        .map(|c| Row {
                            id: c.id,
                            title: c.title,
                            category: c.category,
                            state: RowState::Pending,
                            previous: None,
                        })
                        .collect();
                } else {
                    for planned in checks {
                        if let Some(row) = self.rows.iter_mut().find(|r| r.id == planned.id) {
                            row.previous = row.status().or(row.previous);
                            row.state = RowState::Pending;
                        }
                    }
                }
            }
            RunEvent::Started { id } => {
                if let Some(row) = self.rows.iter_mut().find(|r| r.id == id)
                    && !matches!(row.state, RowState::Done(_))
                {
                    row.state = RowState::Running;
                }
            }
            RunEvent::Finding { result, .. } => {
                if let Some(row) = self.rows.iter_mut().find(|r| r.id == result.id) {
                    row.state = RowState::Done(Box::new(result));
                }
            }
            RunEvent::Finished(report) => {
                let report = *report;
                self.elapsed = Duration::from_millis(report.duration_ms);
                self.target = report.target.clone();
                self.vantage = report.vantage.clone();
                self.report = Some(match (self.running.take(), self.report.take()) {
                    (Some(RunKind::Subset(_)), Some(mut merged)) => {
                        for c in report.checks {
                            if let Some(slot) = merged.checks.iter_mut().find(|m| m.id == c.id) {
                                *slot = c;
                            }
                        }
                        merged.summary = Summary::of(merged.checks.iter().map(|c| &c.status));
                        merged.target = report.target;
                        merged
                    }
                    _ => report,
                });
                self.runs += 1;
            }
        }
    }

    /// Starts a run of `kind`: the rows it covers go back to pending.
    fn start(&mut self, kind: RunKind) -> Option<Cmd> {
        self.running = Some(kind.clone());
        self.elapsed = Duration::ZERO;
        if kind == RunKind::DebugPod {
            self.vantage = "debug-pod".to_owned();
        }
        self.notice = None;
        Some(Cmd::Run(kind))
    }

    fn key(&mut self, key: KeyEvent) -> Option<Cmd> {
        if key.kind != KeyEventKind::Press {
            return None;
        }
        if key.modifiers.contains(KeyModifiers::CONTROL) && key.code == KeyCode::Char('c') {
            self.quit = true;
            return Some(Cmd::Quit);
        }
        match self.mode {
            Mode::Help => {
                // Any key closes the overlay.
                self.mode = Mode::Normal;
                None
            }
            Mode::Search => {
                match key.code {
                    KeyCode::Enter => self.mode = Mode::Normal,
                    KeyCode::Esc => {
                        self.search.clear();
                        self.mode = Mode::Normal;
                    }
                    KeyCode::Backspace => {
                        self.search.pop();
                    }
                    KeyCode::Char(c) => self.search.push(c),
                    _ => {}
                }
                self.keep_selection_visible();
                None
            }
            Mode::ConfirmDebugPod => {
                self.mode = Mode::Normal;
                match key.code {
                    KeyCode::Char('y' | 'Y') => self.start(RunKind::DebugPod),
                    _ => {
                        self.notice = Some("debug pod: cancelled".to_owned());
                        None
                    }
                }
            }
            Mode::Export => {
                self.mode = Mode::Normal;
                let format = match key.code {
                    KeyCode::Char('m' | 'M') => ExportFormat::Markdown,
                    KeyCode::Char('j' | 'J') => ExportFormat::Json,
                    _ => {
                        self.notice = Some("export: cancelled".to_owned());
                        return None;
                    }
                };
                Some(Cmd::Export(format, Box::new(self.final_report())))
            }
            Mode::Normal => self.normal_key(key.code),
        }
    }

    fn normal_key(&mut self, code: KeyCode) -> Option<Cmd> {
        match code {
            KeyCode::Char('q') | KeyCode::Esc => {
                if !self.search.is_empty() && code == KeyCode::Esc {
                    // Esc first clears a search, as in less and k9s.
                    self.search.clear();
                    self.keep_selection_visible();
                    return None;
                }
                self.quit = true;
                return Some(Cmd::Quit);
            }
            KeyCode::Up | KeyCode::Char('k') => self.step(-1),
            KeyCode::Down | KeyCode::Char('j') => self.step(1),
            KeyCode::PageUp => self.page(-1),
            KeyCode::PageDown => self.page(1),
            KeyCode::Char('g') | KeyCode::Home => self.jump(false),
            KeyCode::Char('G') | KeyCode::End => self.jump(true),
            KeyCode::Enter | KeyCode::Tab | KeyCode::BackTab => {
                self.focus = match self.focus {
                    Focus::List => Focus::Detail,
                    Focus::Detail => Focus::List,
                };
            }
            KeyCode::Char('f') => {
                self.failures_only = !self.failures_only;
                self.keep_selection_visible();
            }
            KeyCode::Char('/') => self.mode = Mode::Search,
            KeyCode::Char('?') => self.mode = Mode::Help,
            KeyCode::Char('r') => return self.start(RunKind::All),
            KeyCode::Char('R') => {
                let id = self.selected_row()?.id.clone();
                return self.start(RunKind::Subset(id));
            }
            KeyCode::Char('d') => self.mode = Mode::ConfirmDebugPod,
            KeyCode::Char('e') => {
                if self.rows.iter().all(|r| r.result().is_none()) {
                    self.notice = Some("export: no results yet".to_owned());
                } else {
                    self.mode = Mode::Export;
                }
            }
            KeyCode::Char('c') => {
                let command = self
                    .selected_row()
                    .and_then(Row::result)
                    .and_then(|r| r.fix.as_ref())
                    .and_then(|f| f.commands.get(self.command).or(f.commands.first()))
                    .cloned();
                match command {
                    Some(c) => return Some(Cmd::Copy(c)),
                    None => self.notice = Some("copy: this check has no command".to_owned()),
                }
            }
            _ => {}
        }
        None
    }

    /// Up/down: the list selection, or the command cursor in the detail pane.
    fn step(&mut self, by: isize) {
        if self.focus == Focus::Detail {
            let n = self
                .selected_row()
                .and_then(Row::result)
                .and_then(|r| r.fix.as_ref())
                .map_or(0, |f| f.commands.len());
            if n > 0 {
                self.command = self.command.saturating_add_signed(by).min(n - 1);
            } else {
                self.detail_scroll = self
                    .detail_scroll
                    .saturating_add_signed(i16::try_from(by).unwrap_or(0));
            }
            return;
        }
        self.move_by(by);
    }

    fn page(&mut self, dir: isize) {
        let rows = page_rows(self.size.1);
        if self.focus == Focus::Detail {
            let by = u16::try_from(rows).unwrap_or(u16::MAX);
            self.detail_scroll = if dir < 0 {
                self.detail_scroll.saturating_sub(by)
            } else {
                self.detail_scroll.saturating_add(by)
            };
            return;
        }
        self.move_by(dir * isize::try_from(rows).unwrap_or(1));
    }

    fn move_by(&mut self, by: isize) {
        let visible = self.visible();
        if visible.is_empty() {
            return;
        }
        let at = visible
            .iter()
            .position(|&i| i == self.selected)
            .unwrap_or(0);
        let to = at.saturating_add_signed(by).min(visible.len() - 1);
        self.select(visible[to]);
    }

    fn jump(&mut self, last: bool) {
        let visible = self.visible();
        let to = if last {
            visible.last()
        } else {
            visible.first()
        };
        if let Some(&i) = to {
            self.select(i);
        }
    }

    fn select(&mut self, index: usize) {
        if index != self.selected {
            self.selected = index;
            self.command = 0;
            self.detail_scroll = 0;
        }
    }

    /// After a filter change: keep the selection if it is still shown, else the first shown.
    fn keep_selection_visible(&mut self) {
        let visible = self.visible();
        if !visible.contains(&self.selected)
            && let Some(&first) = visible.first()
        {
            self.select(first);
        }
    }
}
