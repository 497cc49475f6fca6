//! Baseline for `bench/lint.sh`: parse every `*.yaml` in a directory with serde-saphyr into
//! JSON values, the same parse `elsadoctor lint` starts with, and nothing else.

use std::process::ExitCode;

fn main() -> ExitCode {
    let Some(dir) = std::env::args().nth(1) else {
        eprintln!("usage: yaml_parse DIR");
        return ExitCode::from(2);
    };
    let Ok(entries) = std::fs::read_dir(&dir) else {
        eprintln!("yaml_parse: cannot read {dir}");
        return ExitCode::from(2);
    };
    let mut docs = 0usize;
    for e in entries.flatten() {
        let Ok(text) = std::fs::read_to_string(e.path()) else {
            continue;
        };
        match serde_saphyr::from_multiple::<serde_json::Value>(&text) {
            Ok(v) => docs += v.len(),
            Err(err) => {
                eprintln!("yaml_parse: {}: {err}", e.path().display());
                return ExitCode::from(1);
            }
        }
    }
    println!("{docs}");
    ExitCode::SUCCESS
}
