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
