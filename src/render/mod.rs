//! Renderers: thin consumers of the run's event stream. Exactly one renders a run (the TUI in
//! `crate::tui` is the interactive one). Also what `--watch` compares between two runs.

pub mod json;
pub mod markdown;
pub mod text;

use crate::report::{Report, Status};

/// A check whose status differs between two runs (`--watch`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub id: String,
    pub title: String,
    /// `None`: the check was not in the previous run.
    pub before: Option<Status>,
    pub after: Status,
}

/// The checks of `next` whose status is not the one they had in `prev`, in `next`'s order.
pub fn changes(prev: &Report, next: &Report) -> Vec<Change> {
    let before = prev.by_id();
    next.checks
        .iter()
        .filter_map(|c| {
            let was = before.get(c.id.as_str()).map(|p| p.status);
            (was != Some(c.status)).then(|| Change {
                id: c.id.clone(),
                title: c.title.clone(),
                before: was,
                after: c.status,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::{CheckResult, Summary, Target, Tool};

    fn report(statuses: &[(&str, Status)]) -> Report {
        let checks: Vec<CheckResult> = statuses
            .iter()
            .map(|(id, status)| CheckResult {
                id: (*id).into(),
                title: format!("title {id}"),
                category: "cluster".into(),
                status: *status,
                duration_ms: 1,
                message: String::new(),
                evidence: vec![],
                blocked_by: vec![],
                cause: None,
                fix: None,
            })
            .collect();
        Report {
            schema_version: 1,
            tool: Tool::default(),
            target: Target::default(),
            vantage: "here".into(),
            started_at: String::new(),
            duration_ms: 0,
            summary: Summary::of(checks.iter().map(|c| &c.status)),
            checks,
        }
    }

    #[test]
    fn changes_are_the_checks_whose_status_moved() {
        let before = report(&[("a", Status::Fail), ("b", Status::Pass)]);
        let after = report(&[
            ("a", Status::Pass),
            ("b", Status::Pass),
            ("c", Status::Warn),
        ]);
        let got = changes(&before, &after);
        assert_eq!(got.len(), 2);
        assert_eq!(
            (got[0].id.as_str(), got[0].before, got[0].after),
            ("a", Some(Status::Fail), Status::Pass)
        );
        assert_eq!((got[1].id.as_str(), got[1].before), ("c", None));
        assert!(changes(&after, &after).is_empty());
    }
}
