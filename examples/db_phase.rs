//! For `bench/db.sh`: the database phase alone (connect, TLS per SSL Mode, every query), run N
//! times against the server a Npgsql connection string names, with `--vantage here`. Prints the
//! median and the slowest wall time in milliseconds.
//!
//! ```text
//! cargo run --release --example db_phase -- "Host=127.0.0.1;Port=5432;…" 20
//! ```

use std::process::ExitCode;
use std::time::{Duration, Instant};

use elsadoctor::domain::{elsa, npgsql};
use elsadoctor::facts::{DbObservation, Probe};
use elsadoctor::gather::db::{Plan, Vantage, observe};

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let (Some(conn), runs) = (
        args.next(),
        args.next().and_then(|n| n.parse().ok()).unwrap_or(20),
    ) else {
        eprintln!("usage: db_phase CONNECTION_STRING [RUNS]");
        return ExitCode::from(2);
    };
    let mut times = Vec::new();
    for _ in 0..runs {
        let cs = match npgsql::parse(&conn) {
            Ok(cs) => cs,
            Err(e) => {
                eprintln!("db_phase: {e}");
                return ExitCode::from(2);
            }
        };
        let plan = Plan {
            password: cs.password(),
            conn: cs,
            tables: elsa::TABLES.iter().map(|t| t.name.to_owned()).collect(),
            host_addr: None,
        };
        let t0 = Instant::now();
        let (_, observed) = observe(plan, Vantage::Here, None, None, Duration::from_secs(5)).await;
        times.push(t0.elapsed());
        if !matches!(observed, Probe::Observed(DbObservation::Connected(_))) {
            eprintln!("db_phase: not connected: {observed:?}");
            return ExitCode::from(1);
        }
    }
    times.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "{{\"runs\":{},\"medianMs\":{:.1},\"maxMs\":{:.1}}}",
        times.len(),
        ms(times[times.len() / 2]),
        ms(times[times.len() - 1])
    );
    ExitCode::SUCCESS
}
