//! The text report: checks grouped by category in catalogue order, like `linkerd check`, printed
//! as results stream in (each line as soon as every earlier check is decided). Under every
//! warning, failure and unknown: what was observed, the fix, and the filled-in commands.

use std::io::{self, Write};

use anstyle::{AnsiColor, Effects, Style as Ansi};

use crate::catalogue::{Catalogue, CheckSpec};
use crate::report::{CheckResult, Report, Status, Target};
use crate::runner::{PlannedCheck, RunEvent, humanize};
use crate::settings::Style;

/// The symbol for a status: ✔ ‼ ✖ ? ⊘, or an ASCII fallback.
pub fn symbol(status: Status, unicode: bool) -> &'static str {
    match (status, unicode) {
        (Status::Pass, true) => "✔",
        (Status::Warn, true) => "‼",
        (Status::Fail, true) => "✖",
        (Status::Unknown, true) => "?",
        (Status::Skip, true) => "⊘",
        (Status::Pass, false) => "[ok]",
        (Status::Warn, false) => "[warn]",
        (Status::Fail, false) => "[FAIL]",
        (Status::Unknown, false) => "[??]",
        (Status::Skip, false) => "[skip]",
    }
}

fn status_style(status: Status) -> Ansi {
    let color = match status {
        Status::Pass => AnsiColor::Green,
        Status::Warn => AnsiColor::Yellow,
        Status::Fail => AnsiColor::Red,
        Status::Unknown => AnsiColor::Magenta,
        Status::Skip => AnsiColor::BrightBlack,
    };
    Ansi::new()
        .fg_color(Some(color.into()))
        .effects(Effects::BOLD)
}

/// Applies an ANSI style when colour is on.
struct Paint {
    on: bool,
}

impl Paint {
    fn paint(&self, style: Ansi, text: &str) -> String {
        if self.on {
            format!("{}{text}{}", style.render(), style.render_reset())
        } else {
            text.to_owned()
        }
    }

    fn dim(&self, text: &str) -> String {
        self.paint(Ansi::new().effects(Effects::DIMMED), text)
    }

    fn bold(&self, text: &str) -> String {
        self.paint(Ansi::new().effects(Effects::BOLD), text)
    }
}

/// Consumes run events and writes the text report. Write errors are kept (the first one) so the
/// caller can tell a closed pipe (exit 0) from a real failure.
pub struct TextRenderer<W: Write> {
    out: W,
    style: Style,
    paint: Paint,
    planned: Vec<PlannedCheck>,
    results: Vec<Option<CheckResult>>,
    printed: usize,
    category: Option<String>,
    error: Option<io::Error>,
}

impl<W: Write> TextRenderer<W> {
    pub fn new(out: W, style: Style) -> Self {
        Self {
            out,
            style,
            paint: Paint { on: style.color },
            planned: Vec::new(),
            results: Vec::new(),
            printed: 0,
            category: None,
            error: None,
        }
    }

    /// The first write error, if any.
    pub fn into_error(self) -> Option<io::Error> {
        self.error
    }

    pub fn on_event(&mut self, event: &RunEvent) {
        if self.error.is_some() {
            return;
        }
        if let Err(e) = self.handle(event) {
            self.error = Some(e);
        }
    }

    fn handle(&mut self, event: &RunEvent) -> io::Result<()> {
        match event {
            RunEvent::Planned { target, checks } => {
                self.planned = checks.clone();
                self.results = vec![None; checks.len()];
                self.header(target)?;
            }
            RunEvent::Started { .. } => {}
            RunEvent::Finding { index, result } => {
                if let Some(slot) = self.results.get_mut(*index) {
                    *slot = Some(result.clone());
                }
                self.flush_ready()?;
            }
            RunEvent::Finished(report) => {
                self.flush_ready()?;
                self.summary(report)?;
            }
        }
        self.out.flush()
    }

    fn header(&mut self, target: &Target) -> io::Result<()> {
        let mut parts = vec![format!("elsadoctor {}", env!("CARGO_PKG_VERSION"))];
        if let Some(c) = &target.context {
            parts.push(format!("context {c}"));
        }
        if let Some(n) = &target.namespace {
            parts.push(format!("namespace {n}"));
        }
        let sep = if self.style.unicode { " · " } else { " | " };
        writeln!(self.out, "{}", self.paint.bold(&parts.join(sep)))?;
        if let Some(r) = &target.replay {
            writeln!(
                self.out,
                "{}",
                self.paint.paint(status_style(Status::Warn), &r.banner())
            )?;
        }
        if target.simulated {
            let banner = "SIMULATED cluster (elsadoctor demo): nothing here touches a real cluster";
            writeln!(
                self.out,
                "{}",
                self.paint.paint(status_style(Status::Warn), banner)
            )?;
            if let Some(scenario) = &target.scenario {
                writeln!(self.out, "scenario {scenario}")?;
            }
        }
        Ok(())
    }

    /// Prints every result whose predecessors are all printed.
    fn flush_ready(&mut self) -> io::Result<()> {
        while let Some(Some(result)) = self.results.get(self.printed) {
            let result = result.clone();
            self.check(&result)?;
            self.printed += 1;
        }
        Ok(())
    }

    fn check(&mut self, r: &CheckResult) -> io::Result<()> {
        if self.category.as_deref() != Some(r.category.as_str()) {
            let rule = if self.style.unicode { "─" } else { "-" };
            writeln!(self.out)?;
            writeln!(self.out, "{}", self.paint.bold(&r.category))?;
            writeln!(self.out, "{}", rule.repeat(r.category.chars().count()))?;
            self.category = Some(r.category.clone());
        }
        let sym = self
            .paint
            .paint(status_style(r.status), symbol(r.status, self.style.unicode));
        match r.status {
            Status::Pass => {
                writeln!(self.out, "{sym} {}: {}", r.title, r.message)?;
            }
            Status::Skip => {
                writeln!(
                    self.out,
                    "{sym} {} {}",
                    r.title,
                    self.paint.dim(&format!("[{}] {}", r.id, r.message))
                )?;
            }
            _ => {
                writeln!(
                    self.out,
                    "{sym} {} {}",
                    r.title,
                    self.paint.dim(&format!("[{}]", r.id))
                )?;
                self.details(r)?;
            }
        }
        Ok(())
    }

    fn details(&mut self, r: &CheckResult) -> io::Result<()> {
        let bullet = if self.style.unicode { "•" } else { "-" };
        writeln!(self.out, "    {}", r.message)?;
        for e in &r.evidence {
            let source = e
                .source
                .as_ref()
                .map(|s| self.paint.dim(&format!("  ({s})")))
                .unwrap_or_default();
            writeln!(self.out, "    {bullet} {}: {}{source}", e.label, e.value)?;
        }
        if let Some(fix) = &r.fix {
            writeln!(self.out, "    {} {}", self.paint.bold("fix:"), fix.summary)?;
            for (i, step) in fix.steps.iter().enumerate() {
                writeln!(self.out, "      {}. {step}", i + 1)?;
            }
            for cmd in &fix.commands {
                writeln!(self.out, "      $ {cmd}")?;
            }
            if let Some(patch) = &fix.patch {
                writeln!(
                    self.out,
                    "    {} (kubectl patch --type strategic -p '…'):",
                    self.paint.bold("generated patch")
                )?;
                writeln!(self.out, "      {patch}")?;
            }
            writeln!(self.out, "    {} {}", self.paint.dim("docs:"), fix.docs)?;
        }
        Ok(())
    }

    fn summary(&mut self, report: &Report) -> io::Result<()> {
        let s = report.summary;
        let parts = [
            (Status::Pass, s.pass, "passed"),
            (
                Status::Warn,
                s.warn,
                if s.warn == 1 { "warning" } else { "warnings" },
            ),
            (Status::Fail, s.fail, "failed"),
            (Status::Unknown, s.unknown, "unknown"),
            (Status::Skip, s.skip, "skipped"),
        ]
        .iter()
        .map(|(st, n, word)| {
            let text = format!("{n} {word}");
            if *n > 0 {
                self.paint.paint(status_style(*st), &text)
            } else {
                text
            }
        })
        .collect::<Vec<_>>()
        .join(", ");
        let took = humanize(std::time::Duration::from_millis(report.duration_ms));
        writeln!(self.out)?;
        writeln!(self.out, "Summary: {parts} in {took}")?;
        if s.fail + s.warn + s.unknown > 0 {
            writeln!(
                self.out,
                "{}",
                self.paint
                    .dim("elsadoctor explain <check-id> shows a check's full documented fix")
            )?;
        }
        Ok(())
    }
}

/// `elsadoctor checks`: the catalogue in run order.
pub fn catalogue(out: &mut dyn Write, cat: &Catalogue) -> io::Result<()> {
    let width = cat.ids().map(str::len).max().unwrap_or(0);
    writeln!(out, "{:<width$}  {:<4}  TITLE / NEEDS", "ID", "SEV")?;
    for c in &cat.checks {
        writeln!(
            out,
            "{:<width$}  {:<4}  {}",
            c.id,
            c.severity.to_string(),
            c.title
        )?;
        let mut notes = Vec::new();
        if !c.depends_on.is_empty() {
            notes.push(format!("after {}", c.depends_on.join(", ")));
        }
        if !c.needs.is_empty() {
            notes.push(format!("needs {}", c.needs.join(", ")));
        }
        if !notes.is_empty() {
            writeln!(out, "{:<width$}        {}", "", notes.join("; "))?;
        }
    }
    Ok(())
}

/// `elsadoctor explain ID`: why a check matters and its documented fixes (templates unfilled).
pub fn explain(out: &mut dyn Write, spec: &CheckSpec) -> io::Result<()> {
    writeln!(out, "{} — {}", spec.id, spec.title)?;
    writeln!(out, "severity when it does not hold: {}", spec.severity)?;
    if !spec.depends_on.is_empty() {
        writeln!(out, "runs after: {}", spec.depends_on.join(", "))?;
    }
    if !spec.needs.is_empty() {
        writeln!(out, "needs: {}", spec.needs.join(", "))?;
    }
    writeln!(out)?;
    writeln!(out, "Why: {}", spec.why.trim())?;
    let mut fix = |title: &str, f: &crate::catalogue::FixTemplate| -> io::Result<()> {
        writeln!(out)?;
        writeln!(out, "{title}: {}", f.summary)?;
        for (i, s) in f.steps.iter().enumerate() {
            writeln!(out, "  {}. {s}", i + 1)?;
        }
        for c in &f.commands {
            writeln!(out, "  $ {c}")?;
        }
        Ok(())
    };
    fix("Fix", &spec.fix)?;
    for (cause, f) in &spec.causes {
        fix(&format!("When {cause}"), f)?;
    }
    writeln!(out)?;
    writeln!(out, "Docs: {}", spec.docs)?;
    Ok(())
}

/// `--watch`: what changed since the previous run, after that run's report.
pub fn changes(
    out: &mut dyn Write,
    changes: &[crate::render::Change],
    style: Style,
    every: std::time::Duration,
) -> io::Result<()> {
    let paint = Paint { on: style.color };
    let arrow = if style.unicode { "→" } else { "->" };
    writeln!(out)?;
    if changes.is_empty() {
        writeln!(out, "{}", paint.bold("Changed since last run: nothing"))?;
    } else {
        writeln!(out, "{}", paint.bold("Changed since last run:"))?;
        for c in changes {
            let before = c.before.map_or("new", Status::as_str);
            let after = paint.paint(status_style(c.after), c.after.as_str());
            writeln!(
                out,
                "  {} {} {before} {arrow} {after}",
                c.id,
                paint.dim(&c.title)
            )?;
        }
    }
    writeln!(
        out,
        "{}",
        paint.dim(&format!(
            "(watching: next run in {}; Ctrl-C ends)",
            humanize(every)
        ))
    )?;
    out.flush()
}
