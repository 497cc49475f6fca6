//! Tests of the TUI: the state machine's answers to keys and run events, and `TestBackend`
//! screen snapshots (insta) of the states the issue lists. The fixtures use the real catalogue's
//! ids, titles and categories; results are built the way the runner builds them.

use std::time::Duration;

use insta::assert_snapshot;
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

use super::state::{App, Cmd, ExportFormat, Focus, Mode, Msg, RowState, RunKind};
use super::view::view;
use crate::catalogue::Catalogue;
use crate::report::{CheckResult, Evidence, Fix, Report, Status, Summary, Target, Tool};
use crate::runner::{PlannedCheck, RunEvent};
use crate::settings::Style;

const STYLE: Style = Style {
    color: true,
    unicode: true,
};

fn catalogue() -> Catalogue {
    Catalogue::embedded().expect("catalogue")
}

fn target() -> Target {
    Target {
        context: Some("kind-elsa".into()),
        namespace: Some("elsa".into()),
        workload: Some("deployment/elsa-server".into()),
        flavor: Some("Elsa.Server.Web".into()),
        elsa_version: Some("3.5".into()),
        simulated: true,
        scenario: None,
        replay: None,
    }
}

fn planned() -> RunEvent {
    RunEvent::Planned {
        target: Target {
            context: Some("kind-elsa".into()),
            namespace: Some("elsa".into()),
            simulated: true,
            ..Default::default()
        },
        checks: catalogue()
            .checks
            .iter()
            .map(|c| PlannedCheck {
                id: c.id.clone(),
                title: c.title.clone(),
                category: c.category.clone(),
            })
            .collect(),
    }
}

/// A result as the runner makes it: the catalogue's title and category, a fix for problems.
fn result(id: &str, status: Status) -> CheckResult {
    let cat = catalogue();
    let spec = cat.get(id).expect("known id");
    let fix = matches!(status, Status::Warn | Status::Fail | Status::Unknown).then(|| Fix {
        summary: spec.fix.summary.clone(),
        steps: spec.fix.steps.clone(),
        commands: vec![
            format!("kubectl --context kind-elsa -n elsa describe {id}"),
            "kubectl --context kind-elsa -n elsa get events".to_owned(),
        ],
        docs: spec.docs.clone(),
        patch: None,
    });
    CheckResult {
        id: id.into(),
        title: spec.title.clone(),
        category: spec.category.clone(),
        status,
        duration_ms: 12,
        message: match status {
            Status::Pass => "holds".into(),
            Status::Skip => "blocked: a prerequisite did not pass".into(),
            _ => format!("{id} does not hold"),
        },
        evidence: if status == Status::Pass {
            vec![]
        } else {
            vec![
                Evidence::new("observed", "CrashLoopBackOff, 6 restarts")
                    .from("pod/elsa-server-x status"),
            ]
        },
        blocked_by: if status == Status::Skip {
            vec!["database.login".into()]
        } else {
            vec![]
        },
        cause: None,
        fix,
    }
}

/// The statuses of the built-in demo's broken deployment.
fn demo_status(id: &str) -> Status {
    match id {
        "workload.rollout" | "workload.pods" | "database.login" => Status::Fail,
        "production.replicas" => Status::Warn,
        "database.tables" | "database.migrations" | "database.privileges" | "production.pool" => {
            Status::Skip
        }
        _ => Status::Pass,
    }
}

fn report(results: Vec<CheckResult>) -> Report {
    Report {
        schema_version: 1,
        tool: Tool::default(),
        target: target(),
        vantage: "port-forward".into(),
        started_at: "2026-11-26T11:00:00Z".into(),
        duration_ms: 480,
        summary: Summary::of(results.iter().map(|r| &r.status)),
        checks: results,
    }
}

/// An app that has finished one run with `status` per check.
fn finished(status: impl Fn(&str) -> Status) -> App {
    let mut app = App::new(STYLE, true, "auto", None);
    app.update(Msg::Run(Box::new(planned())));
    let mut results = Vec::new();
    for (index, c) in catalogue().checks.iter().enumerate() {
        let r = result(&c.id, status(&c.id));
        results.push(r.clone());
        app.update(Msg::Run(Box::new(RunEvent::Finding { index, result: r })));
    }
    app.update(Msg::Run(Box::new(RunEvent::Finished(Box::new(report(
        results,
    ))))));
    app
}

fn key(app: &mut App, code: KeyCode) -> Option<Cmd> {
    app.update(Msg::Key(KeyEvent::new(code, KeyModifiers::NONE)))
}

fn keys(app: &mut App, s: &str) {
    for c in s.chars() {
        key(app, KeyCode::Char(c));
    }
}

fn screen(app: &App, width: u16, height: u16) -> String {
    let mut t = Terminal::new(TestBackend::new(width, height)).expect("terminal");
    t.draw(|f| view(app, f)).expect("draw");
    t.backend().to_string()
}

fn selected_id(app: &App) -> Option<&str> {
    app.selected_row().map(|r| r.id.as_str())
}

// ---- the state machine ----

#[test]
fn navigation_skips_category_headers_and_stops_at_the_ends() {
    let mut app = finished(demo_status);
    assert_eq!(selected_id(&app), Some("cluster.api"));
    key(&mut app, KeyCode::Char('k'));
    assert_eq!(selected_id(&app), Some("cluster.api"), "stops at the top");
    keys(&mut app, "jjj");
    assert_eq!(selected_id(&app), Some("workload.found"));
    key(&mut app, KeyCode::Char('G'));
    assert_eq!(selected_id(&app), Some("production.db-storage"));
    key(&mut app, KeyCode::Down);
    assert_eq!(selected_id(&app), Some("production.db-storage"));
    key(&mut app, KeyCode::Char('g'));
    assert_eq!(selected_id(&app), Some("cluster.api"));
    app.update(Msg::Resize {
        width: 80,
        height: 24,
    });
    key(&mut app, KeyCode::PageDown);
    assert_eq!(app.selected, 18, "a page is the list's height");
    key(&mut app, KeyCode::PageUp);
    assert_eq!(app.selected, 0);
}

#[test]
fn failures_filter_and_search_narrow_the_list_and_keep_a_visible_selection() {
    let mut app = finished(demo_status);
    key(&mut app, KeyCode::Char('f'));
    let ids: Vec<&str> = app
        .visible()
        .iter()
        .map(|&i| app.rows[i].id.as_str())
        .collect();
    assert_eq!(
        ids,
        [
            "workload.rollout",
            "workload.pods",
            "database.login",
            "production.replicas"
        ]
    );
    assert_eq!(selected_id(&app), Some("workload.rollout"));
    key(&mut app, KeyCode::Char('f'));
    key(&mut app, KeyCode::Char('/'));
    assert_eq!(app.mode, Mode::Search);
    keys(&mut app, "database.migra");
    assert_eq!(app.visible().len(), 1);
    assert_eq!(selected_id(&app), Some("database.migrations"));
    key(&mut app, KeyCode::Enter);
    assert_eq!(app.mode, Mode::Normal);
    assert_eq!(app.search, "database.migra", "Enter keeps the search");
    assert_eq!(
        key(&mut app, KeyCode::Esc),
        None,
        "Esc first clears the search"
    );
    assert!(app.search.is_empty());
    assert_eq!(key(&mut app, KeyCode::Esc), Some(Cmd::Quit));
}

#[test]
fn rerun_keys_ask_for_the_right_runs() {
    let mut app = finished(demo_status);
    assert_eq!(
        key(&mut app, KeyCode::Char('r')),
        Some(Cmd::Run(RunKind::All))
    );
    assert_eq!(app.running, Some(RunKind::All));
    let mut app = finished(demo_status);
    keys(&mut app, "jjjj");
    assert_eq!(
        key(&mut app, KeyCode::Char('R')),
        Some(Cmd::Run(RunKind::Subset("workload.flavor".into())))
    );
    // The debug pod needs consent.
    let mut app = finished(demo_status);
    assert_eq!(key(&mut app, KeyCode::Char('d')), None);
    assert_eq!(app.mode, Mode::ConfirmDebugPod);
    assert_eq!(key(&mut app, KeyCode::Char('n')), None);
    assert_eq!(app.running, None);
    key(&mut app, KeyCode::Char('d'));
    assert_eq!(
        key(&mut app, KeyCode::Char('y')),
        Some(Cmd::Run(RunKind::DebugPod))
    );
    assert_eq!(app.vantage, "debug-pod");
    // Ctrl-C quits from any mode.
    let mut app = finished(demo_status);
    key(&mut app, KeyCode::Char('?'));
    assert_eq!(
        app.update(Msg::Key(KeyEvent::new(
            KeyCode::Char('c'),
            KeyModifiers::CONTROL
        ))),
        Some(Cmd::Quit)
    );
}

#[test]
fn a_subset_rerun_replaces_only_its_checks_and_marks_changes() {
    let mut app = finished(demo_status);
    let sub = catalogue().with_dependents("database.login");
    app.update(Msg::Key(KeyEvent::new(
        KeyCode::Char('R'),
        KeyModifiers::NONE,
    )));
    app.update(Msg::Run(Box::new(RunEvent::Planned {
        target: target(),
        checks: sub
            .checks
            .iter()
            .map(|c| PlannedCheck {
                id: c.id.clone(),
                title: c.title.clone(),
                category: c.category.clone(),
            })
            .collect(),
    })));
    let login = app
        .rows
        .iter()
        .find(|r| r.id == "database.login")
        .expect("row");
    assert_eq!(login.state, RowState::Pending);
    assert!(
        app.rows[0].result().is_some(),
        "cluster.api keeps its result"
    );
    let mut results = Vec::new();
    for (index, c) in sub.checks.iter().enumerate() {
        let r = result(&c.id, Status::Pass);
        results.push(r.clone());
        app.update(Msg::Run(Box::new(RunEvent::Finding { index, result: r })));
    }
    app.update(Msg::Run(Box::new(RunEvent::Finished(Box::new(report(
        results,
    ))))));
    let merged = app.final_report();
    assert_eq!(merged.checks.len(), catalogue().checks.len());
    assert_eq!(merged.by_id()["database.login"].status, Status::Pass);
    assert_eq!(merged.by_id()["workload.pods"].status, Status::Fail);
    assert_eq!(merged.summary.fail, 2);
    let login = app
        .rows
        .iter()
        .find(|r| r.id == "database.login")
        .expect("row");
    assert!(login.changed(), "fail → pass is marked");
    assert!(!app.rows[0].changed());
}

#[test]
fn copy_takes_the_command_under_the_cursor_and_export_asks_the_format() {
    let mut app = finished(demo_status);
    key(&mut app, KeyCode::Char('f'));
    assert_eq!(
        key(&mut app, KeyCode::Char('c')),
        Some(Cmd::Copy(
            "kubectl --context kind-elsa -n elsa describe workload.rollout".into()
        ))
    );
    key(&mut app, KeyCode::Tab);
    assert_eq!(app.focus, Focus::Detail);
    key(&mut app, KeyCode::Down);
    key(&mut app, KeyCode::Down);
    assert_eq!(app.command, 1, "stops at the last command");
    assert_eq!(
        key(&mut app, KeyCode::Char('c')),
        Some(Cmd::Copy(
            "kubectl --context kind-elsa -n elsa get events".into()
        ))
    );
    key(&mut app, KeyCode::Char('g'));
    key(&mut app, KeyCode::Char('e'));
    assert_eq!(app.mode, Mode::Export);
    match key(&mut app, KeyCode::Char('m')) {
        Some(Cmd::Export(ExportFormat::Markdown, report)) => {
            assert_eq!(report.checks.len(), catalogue().checks.len());
        }
        other => panic!("expected an export, got {other:?}"),
    }
    // Nothing to copy on a passing check.
    let mut app = finished(|_| Status::Pass);
    assert_eq!(key(&mut app, KeyCode::Char('c')), None);
    assert_eq!(
        app.notice.as_deref(),
        Some("copy: this check has no command")
    );
}

#[test]
fn quitting_mid_run_counts_unfinished_checks_as_unknown() {
    let mut app = App::new(STYLE, false, "auto", None);
    app.update(Msg::Run(Box::new(planned())));
    app.update(Msg::Run(Box::new(RunEvent::Finding {
        index: 0,
        result: result("cluster.api", Status::Pass),
    })));
    let r = app.final_report();
    assert_eq!(r.summary.pass, 1);
    assert_eq!(r.summary.unknown as usize, catalogue().checks.len() - 1);
    assert!(r.is_failure(crate::report::FailOn::Fail));
    // Quitting during a later run: the last finished run decides.
    let mut app = finished(|_| Status::Pass);
    key(&mut app, KeyCode::Char('r'));
    app.update(Msg::Run(Box::new(planned())));
    assert!(!app.final_report().is_failure(crate::report::FailOn::Fail));
    // Nothing at all: still not a success.
    let empty = App::new(STYLE, false, "auto", None).final_report();
    assert!(empty.is_failure(crate::report::FailOn::Fail));
}

#[test]
fn watch_due_starts_a_run_only_when_idle() {
    let mut app = finished(demo_status);
    app.watch = Some(Duration::from_secs(10));
    assert_eq!(app.update(Msg::WatchDue), Some(Cmd::Run(RunKind::All)));
    assert_eq!(app.update(Msg::WatchDue), None, "one run at a time");
}

#[test]
fn osc52_is_base64_in_the_clipboard_sequence() {
    assert_eq!(super::osc52("kubectl"), "\u{1b}]52;c;a3ViZWN0bA==\u{7}");
    assert_eq!(super::osc52("ab"), "\u{1b}]52;c;YWI=\u{7}");
    assert_eq!(super::osc52("abc"), "\u{1b}]52;c;YWJj\u{7}");
}

#[test]
fn no_color_draws_without_colours() {
    let mut app = finished(demo_status);
    app.style.color = false;
    let mut t = Terminal::new(TestBackend::new(100, 30)).expect("terminal");
    t.draw(|f| view(&app, f)).expect("draw");
    let buf = t.backend().buffer();
    assert!(
        buf.content()
            .iter()
            .all(|c| c.fg == ratatui::style::Color::Reset && c.bg == ratatui::style::Color::Reset),
        "a colour with NO_COLOR"
    );
    app.style.color = true;
    t.draw(|f| view(&app, f)).expect("draw");
    assert!(
        t.backend()
            .buffer()
            .content()
            .iter()
            .any(|c| c.fg == ratatui::style::Color::Red),
        "the check can fail: failures are red with colour"
    );
}

// ---- screens ----

#[test]
fn screen_running() {
    let mut app = App::new(STYLE, true, "auto", None);
    app.update(Msg::Run(Box::new(planned())));
    for (index, id) in ["cluster.api", "cluster.namespace"].iter().enumerate() {
        app.update(Msg::Run(Box::new(RunEvent::Finding {
            index,
            result: result(id, Status::Pass),
        })));
    }
    app.update(Msg::Run(Box::new(RunEvent::Started {
        id: "cluster.access".into(),
    })));
    app.update(Msg::Tick {
        elapsed: Duration::from_millis(1230),
    });
    assert_snapshot!(screen(&app, 80, 24));
}

#[test]
fn screen_all_pass() {
    let app = finished(|_| Status::Pass);
    assert_snapshot!(screen(&app, 80, 24));
}

#[test]
fn screen_failure_with_its_fix() {
    let mut app = finished(demo_status);
    keys(&mut app, "f");
    key(&mut app, KeyCode::Down);
    key(&mut app, KeyCode::Tab);
    assert_snapshot!(screen(&app, 120, 40));
}

#[test]
fn screen_failures_only_filter() {
    let mut app = finished(demo_status);
    keys(&mut app, "f");
    assert_snapshot!(screen(&app, 80, 24));
}

#[test]
fn screen_search() {
    let mut app = finished(demo_status);
    keys(&mut app, "/data");
    assert_snapshot!(screen(&app, 80, 24));
}

#[test]
fn screen_help() {
    let mut app = finished(demo_status);
    keys(&mut app, "?");
    assert_snapshot!(screen(&app, 80, 24));
}

#[test]
fn screen_debug_pod_consent() {
    let mut app = finished(demo_status);
    keys(&mut app, "d");
    assert_snapshot!(screen(&app, 80, 24));
}

#[test]
fn screen_too_small() {
    let app = finished(demo_status);
    assert_snapshot!(screen(&app, 79, 24));
}
