//! The JSON report (`-o json`, `--json`): one pretty-printed document on stdout once the run
//! finishes, the [`crate::report::Report`] type as is. The schema lives in
//! `schema/report.schema.json` and is versioned by `schemaVersion`.

use std::io::{self, Write};

use crate::report::Report;

/// Writes the report and a trailing newline.
pub fn write(out: &mut dyn Write, report: &Report) -> io::Result<()> {
    serde_json::to_writer_pretty(&mut *out, report).map_err(io::Error::other)?;
    writeln!(out)?;
    out.flush()
}
