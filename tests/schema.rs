//! The committed JSON Schema of the `--json` report must match the Rust types that produce it.
//! Regenerate with `UPDATE_SCHEMA=1 cargo test --test schema` after a deliberate change (and bump
//! `report::SCHEMA_VERSION` when the change is incompatible).

use std::path::Path;

#[test]
fn committed_schema_matches_the_report_types() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("schema/report.schema.json");
    let generated = elsadoctor::report::json_schema();
    if std::env::var_os("UPDATE_SCHEMA").is_some() {
        std::fs::write(&path, &generated).expect("write schema");
    }
    let committed = std::fs::read_to_string(&path).expect("schema/report.schema.json exists");
    assert!(
        committed == generated,
        "schema/report.schema.json is stale: run UPDATE_SCHEMA=1 cargo test --test schema"
    );
}
