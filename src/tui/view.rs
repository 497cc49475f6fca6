//! The TUI's pure view: draws an [`App`] into a frame and reads nothing else (no clock, no IO),
//! so the same state always gives the same screen and `TestBackend` snapshots are exact.
//!
//! Layout (80×24 and up): two header lines (target, versions, vantage, elapsed, SIMULATED
//! badge), the checks grouped by category on the left, the selected check's message, evidence,
//! fix and commands on the right, and two footer lines (counts and notices, key hints).

use std::time::Duration;

use ratatui::Frame;
use ratatui::layout::{Alignment, Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Clear, List, ListItem, ListState, Paragraph, Wrap};

use super::state::{App, Focus, Mode, Row, RowState, RunKind};
use crate::render::text::symbol;
use crate::report::Status;
use crate::report::humanize;

/// The smallest terminal the layout is made for.
pub const MIN_WIDTH: u16 = 80;
pub const MIN_HEIGHT: u16 = 24;

const SPINNER: [&str; 10] = ["⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏"];
const SPINNER_ASCII: [&str; 4] = ["|", "/", "-", "\\"];

/// Draws the whole screen.
pub fn view(app: &App, frame: &mut Frame<'_>) {
    let area = frame.area();
    if area.width < MIN_WIDTH || area.height < MIN_HEIGHT {
        let msg = format!(
            "terminal too small (need {MIN_WIDTH}×{MIN_HEIGHT}, have {}×{}); q quits",
            area.width, area.height
        );
        let y = area.height / 2;
        let line = Rect::new(area.x, area.y + y, area.width, 1.min(area.height));
        frame.render_widget(
            Paragraph::new(msg)
                .alignment(Alignment::Center)
                .wrap(Wrap { trim: true }),
            line,
        );
        return;
    }
    let [header, body, footer] = Layout::vertical([
        Constraint::Length(2),
        Constraint::Min(3),
        Constraint::Length(2),
    ])
    .areas(area);
    let left_width = (area.width * 2 / 5).max(34);
    let [left, right] =
        Layout::horizontal([Constraint::Length(left_width), Constraint::Min(20)]).areas(body);
    let theme = Theme::new(app);
    draw_header(app, &theme, frame, header);
    draw_list(app, &theme, frame, left);
    draw_detail(app, &theme, frame, right);
    draw_footer(app, &theme, frame, footer);
    match app.mode {
        Mode::Help => draw_help(&theme, frame, area),
        Mode::ConfirmDebugPod => draw_confirm(app, &theme, frame, area),
        Mode::Normal | Mode::Search | Mode::Export => {}
    }
}

/// Colours, or none with NO_COLOR (then only bold and reverse video).
struct Theme {
    color: bool,
    unicode: bool,
}

impl Theme {
    fn new(app: &App) -> Self {
        Self {
            color: app.style.color,
            unicode: app.style.unicode,
        }
    }

    fn fg(&self, c: Color) -> Style {
        if self.color {
            Style::new().fg(c)
        } else {
            Style::new()
        }
    }

    fn status(&self, s: Status) -> Style {
        let c = match s {
            Status::Pass => Color::Green,
            Status::Warn => Color::Yellow,
            Status::Fail => Color::Red,
            Status::Unknown => Color::Magenta,
            Status::Skip => Color::DarkGray,
        };
        self.fg(c).add_modifier(Modifier::BOLD)
    }

    fn dim(&self) -> Style {
        self.fg(Color::DarkGray)
    }

    fn bold(&self) -> Style {
        Style::new().add_modifier(Modifier::BOLD)
    }

    fn symbol(&self, s: Status) -> &'static str {
        if self.unicode {
            symbol(s, true)
        } else {
            match s {
                Status::Pass => "+",
                Status::Warn => "!",
                Status::Fail => "x",
                Status::Unknown => "?",
                Status::Skip => "-",
            }
        }
    }

    fn sep(&self) -> &'static str {
        if self.unicode { " · " } else { " | " }
    }

    fn border(&self, focused: bool) -> Style {
        if focused {
            self.fg(Color::Cyan).add_modifier(Modifier::BOLD)
        } else {
            self.dim()
        }
    }
}

fn draw_header(app: &App, theme: &Theme, frame: &mut Frame<'_>, area: Rect) {
    let t = &app.target;
    let sep = theme.sep();
    let mut first = vec![Span::styled(
        format!(" elsadoctor {}", env!("CARGO_PKG_VERSION")),
        theme.bold(),
    )];
    if t.replay.is_some() {
        first.push(Span::raw(" "));
        first.push(Span::styled(
            " REPLAY ",
            theme
                .fg(Color::Yellow)
                .add_modifier(Modifier::REVERSED | Modifier::BOLD),
        ));
    }
    if app.simulated || t.simulated {
        first.push(Span::raw(" "));
        first.push(Span::styled(
            " SIMULATED ",
            theme
                .fg(Color::Yellow)
                .add_modifier(Modifier::REVERSED | Modifier::BOLD),
        ));
        // The title has room for the scenario's name; its one-line story is in the report.
        if let Some(name) = t.scenario.as_deref().and_then(|s| s.split(':').next()) {
            first.push(Span::raw(format!(" scenario {name}")));
        }
    }
    let facts = [
        format!("context {}", t.context.as_deref().unwrap_or("?")),
        format!("namespace {}", t.namespace.as_deref().unwrap_or("?")),
    ];
    first.push(Span::raw(format!("{sep}{}", facts.join(sep))));

    let elsa = match (&t.flavor, &t.elsa_version) {
        (Some(f), Some(v)) => format!("{f} {v}"),
        (Some(f), None) => f.clone(),
        _ => "Elsa ?".to_owned(),
    };
    let progress = match &app.running {
        Some(kind) => {
            let what = match kind {
                RunKind::All => "running".to_owned(),
                RunKind::Subset(id) => format!("re-running {id}+"),
                RunKind::DebugPod => "running (debug pod)".to_owned(),
            };
            format!("{what} {} ", seconds(app.elapsed))
        }
        None if app.runs == 0 => "not run ".to_owned(),
        None if app.runs == 1 => format!("done in {} ", seconds(app.elapsed)),
        None => format!("run {} done in {} ", app.runs, seconds(app.elapsed)),
    };
    let workload = t.workload.as_deref().unwrap_or("workload ?");
    let mut second = format!(" {workload}{sep}{elsa}{sep}vantage {}", app.vantage);
    if let Some(r) = &t.replay {
        second.push_str(&format!("{sep}facts of {} from {}", r.created_at, r.origin));
    }
    if let Some(every) = app.watch {
        second.push_str(&format!("{sep}watching every {}", humanize(every)));
    }
    let [line1, line2] =
        Layout::vertical([Constraint::Length(1), Constraint::Length(1)]).areas(area);
    let progress_width = u16::try_from(progress.chars().count()).unwrap_or(0);
    let [left1, right1] =
        Layout::horizontal([Constraint::Min(1), Constraint::Length(progress_width)]).areas(line1);
    frame.render_widget(Paragraph::new(Line::from(first)), left1);
    frame.render_widget(
        Paragraph::new(Line::styled(progress, theme.bold())).alignment(Alignment::Right),
        right1,
    );
    frame.render_widget(Paragraph::new(Line::styled(second, theme.dim())), line2);
}

fn seconds(d: Duration) -> String {
    format!("{:.1}s", d.as_secs_f64())
}

fn draw_list(app: &App, theme: &Theme, frame: &mut Frame<'_>, area: Rect) {
    let visible = app.visible();
    let inner = area.width.saturating_sub(2) as usize;
    let mut items = Vec::new();
    let mut selected_item = None;
    let mut category: Option<&str> = None;
    for &i in &visible {
        let row = &app.rows[i];
        if category != Some(row.category.as_str()) {
            items.push(ListItem::new(Line::styled(
                row.category.clone(),
                theme.bold(),
            )));
            category = Some(row.category.as_str());
        }
        if i == app.selected {
            selected_item = Some(items.len());
        }
        items.push(ListItem::new(row_line(app, theme, row, inner)));
    }
    let title = match (app.failures_only, app.search.is_empty()) {
        (false, true) => " Checks ".to_owned(),
        (true, true) => " Checks: failures only ".to_owned(),
        (false, false) => format!(" Checks matching \"{}\" ", app.search),
        (true, false) => format!(" Failures matching \"{}\" ", app.search),
    };
    let block = Block::bordered()
        .title(title)
        .border_style(theme.border(app.focus == Focus::List));
    if items.is_empty() {
        let empty = if app.rows.is_empty() {
            "waiting for the run to start…"
        } else {
            "no check matches (f toggles the filter, Esc clears the search)"
        };
        frame.render_widget(
            Paragraph::new(empty)
                .style(theme.dim())
                .wrap(Wrap { trim: true })
                .block(block),
            area,
        );
        return;
    }
    let list = List::new(items)
        .block(block)
        .highlight_style(Style::new().add_modifier(Modifier::REVERSED));
    let mut state = ListState::default().with_selected(selected_item);
    frame.render_stateful_widget(list, area, &mut state);
}

/// ` Δ✖ Pods are ready…   12ms`: change marker, status, title, duration.
fn row_line(app: &App, theme: &Theme, row: &Row, width: usize) -> Line<'static> {
    let marker = if row.changed() {
        if theme.unicode { "Δ" } else { "*" }
    } else {
        " "
    };
    let (sym, style) = match &row.state {
        RowState::Pending => (if theme.unicode { "·" } else { "." }, theme.dim()),
        RowState::Running => {
            let tick = usize::try_from(app.elapsed.as_millis() / 100).unwrap_or(0);
            let frame = if theme.unicode {
                SPINNER[tick % SPINNER.len()]
            } else {
                SPINNER_ASCII[tick % SPINNER_ASCII.len()]
            };
            (frame, theme.fg(Color::Cyan))
        }
        RowState::Done(r) => (theme.symbol(r.status), theme.status(r.status)),
    };
    let duration = match row.result() {
        Some(r) => format!("{}ms", r.duration_ms),
        None => String::new(),
    };
    // marker + symbol + space, title, space, duration
    let room = width.saturating_sub(3 + 1 + duration.chars().count());
    let title = truncate(&row.title, room);
    let pad = room.saturating_sub(title.chars().count());
    Line::from(vec![
        Span::styled(
            marker.to_owned(),
            theme.fg(Color::Cyan).add_modifier(Modifier::BOLD),
        ),
        Span::styled(sym.to_owned(), style),
        Span::raw(format!(" {title}{} ", " ".repeat(pad))),
        Span::styled(duration, theme.dim()),
    ])
}

fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_owned()
    } else {
        let mut t: String = s.chars().take(max.saturating_sub(1)).collect();
        t.push('…');
        t
    }
}

fn draw_detail(app: &App, theme: &Theme, frame: &mut Frame<'_>, area: Rect) {
    let block = Block::bordered().border_style(theme.border(app.focus == Focus::Detail));
    let Some(row) = app.selected_row() else {
        frame.render_widget(Paragraph::new("").block(block), area);
        return;
    };
    let block = block.title(format!(" {} ", row.id));
    let mut lines: Vec<Line<'static>> = vec![Line::styled(row.title.clone(), theme.bold())];
    let Some(r) = row.result() else {
        let what = match row.state {
            RowState::Running => "running…",
            _ => "waiting for its facts…",
        };
        lines.push(Line::styled(what, theme.dim()));
        frame.render_widget(Paragraph::new(lines).block(block), area);
        return;
    };
    lines.push(Line::from(vec![
        Span::styled(
            format!("{} {}", theme.symbol(r.status), r.status.as_str()),
            theme.status(r.status),
        ),
        Span::styled(format!(" in {}ms", r.duration_ms), theme.dim()),
    ]));
    lines.push(Line::raw(r.message.clone()));
    if !r.blocked_by.is_empty() {
        lines.push(Line::from(vec![
            Span::styled("blocked by: ", theme.bold()),
            Span::raw(r.blocked_by.join(", ")),
        ]));
    }
    if !r.evidence.is_empty() {
        lines.push(Line::raw(""));
        lines.push(Line::styled("Evidence", theme.bold()));
        for e in &r.evidence {
            let mut spans = vec![Span::raw(format!("• {}: {}", e.label, e.value))];
            if let Some(src) = &e.source {
                spans.push(Span::styled(format!("  ({src})"), theme.dim()));
            }
            lines.push(Line::from(spans));
        }
    }
    if let Some(fix) = &r.fix {
        lines.push(Line::raw(""));
        lines.push(Line::from(vec![
            Span::styled("Fix: ", theme.bold()),
            Span::raw(fix.summary.clone()),
        ]));
        for (i, cmd) in fix.commands.iter().enumerate() {
            let chosen = i == app.command.min(fix.commands.len().saturating_sub(1));
            let cursor = if chosen && app.focus == Focus::Detail {
                if theme.unicode { "▶ " } else { "> " }
            } else {
                "  "
            };
            let style = if chosen && app.focus == Focus::Detail {
                theme.fg(Color::Cyan).add_modifier(Modifier::BOLD)
            } else {
                theme.fg(Color::Cyan)
            };
            lines.push(Line::from(vec![
                Span::raw(cursor),
                Span::styled(format!("$ {cmd}"), style),
            ]));
        }
        for (i, step) in fix.steps.iter().enumerate() {
            lines.push(Line::raw(format!("{}. {step}", i + 1)));
        }
        if let Some(patch) = &fix.patch {
            lines.push(Line::raw(format!("patch: {patch}")));
        }
        lines.push(Line::from(vec![
            Span::styled("docs: ", theme.dim()),
            Span::raw(fix.docs.clone()),
        ]));
    }
    frame.render_widget(
        Paragraph::new(lines)
            .block(block)
            .wrap(Wrap { trim: false })
            .scroll((app.detail_scroll, 0)),
        area,
    );
}

fn draw_footer(app: &App, theme: &Theme, frame: &mut Frame<'_>, area: Rect) {
    let s = app.summary();
    let mut first = vec![Span::raw(" ")];
    for st in Status::ALL {
        first.push(Span::styled(
            format!("{} {}", theme.symbol(st), s.get(st)),
            if s.get(st) > 0 {
                theme.status(st)
            } else {
                theme.dim()
            },
        ));
        first.push(Span::raw("  "));
    }
    match app.mode {
        Mode::Search => first.push(Span::styled(format!("/{}█", app.search), theme.bold())),
        Mode::Export => first.push(Span::styled(
            "export: m Markdown, j JSON, Esc cancels",
            theme.bold(),
        )),
        _ => {
            if let Some(n) = &app.notice {
                first.push(Span::styled(n.clone(), theme.fg(Color::Cyan)));
            }
        }
    }
    let hints = if app.focus == Focus::Detail {
        "↑↓ command · c copy · PgUp/PgDn scroll · Tab list · r/R rerun · ? keys · q quit"
    } else {
        "↑↓ move · Tab fix · f failures · / search · r/R rerun · c copy · ? keys · q quit"
    };
    let hints = if theme.unicode {
        hints.to_owned()
    } else {
        hints.replace('·', "|").replace("↑↓", "j/k")
    };
    frame.render_widget(
        Paragraph::new(vec![Line::from(first), Line::styled(hints, theme.dim())]),
        area,
    );
}

fn centered(area: Rect, width: u16, height: u16) -> Rect {
    let w = width.min(area.width);
    let h = height.min(area.height);
    Rect::new(
        area.x + (area.width - w) / 2,
        area.y + (area.height - h) / 2,
        w,
        h,
    )
}

const HELP: &[(&str, &str)] = &[
    ("↑/↓  j/k", "move (in the fix pane: pick a command)"),
    ("g/G", "first / last check"),
    ("PgUp/PgDn", "a page (in the fix pane: scroll)"),
    ("Enter/Tab", "switch between the list and the fix pane"),
    ("f", "failures only (fail, warn, unknown)"),
    ("/", "search ids, titles and messages; Esc clears"),
    ("r", "re-run every check"),
    ("R", "re-run the selected check and its dependents"),
    ("d", "run the probes from a debug pod (asks first)"),
    ("c", "copy the selected command (OSC 52)"),
    ("e", "export the report: Markdown or JSON file"),
    ("?", "this help"),
    ("q/Esc/Ctrl-C", "quit"),
];

fn draw_help(theme: &Theme, frame: &mut Frame<'_>, area: Rect) {
    let box_area = centered(area, 66, HELP.len() as u16 + 4);
    let mut lines: Vec<Line<'static>> = HELP
        .iter()
        .map(|(k, v)| {
            Line::from(vec![
                Span::styled(format!(" {k:<13}"), theme.bold()),
                Span::raw((*v).to_owned()),
            ])
        })
        .collect();
    lines.push(Line::raw(""));
    lines.push(Line::styled(
        " Δ marks a status that changed since the previous run.",
        theme.dim(),
    ));
    frame.render_widget(Clear, box_area);
    frame.render_widget(
        Paragraph::new(lines).block(
            Block::bordered()
                .title(" Keys (any key closes) ")
                .border_style(theme.border(true)),
        ),
        box_area,
    );
}

fn draw_confirm(app: &App, theme: &Theme, frame: &mut Frame<'_>, area: Rect) {
    let box_area = centered(area, 64, 8);
    let ns = app.target.namespace.as_deref().unwrap_or("the namespace");
    let text = vec![
        Line::raw(format!(
            "Create a short-lived debug pod in namespace {ns} to run the DNS and TCP probes from inside the cluster?"
        )),
        Line::styled(
            "It is labelled app.kubernetes.io/managed-by=elsadoctor and deleted afterwards.",
            theme.dim(),
        ),
        Line::raw(""),
        Line::styled("y yes · n no", theme.bold()),
    ];
    frame.render_widget(Clear, box_area);
    frame.render_widget(
        Paragraph::new(text).wrap(Wrap { trim: true }).block(
            Block::default()
                .borders(Borders::ALL)
                .title(" Debug pod ")
                .border_style(theme.border(true)),
        ),
        box_area,
    );
}
