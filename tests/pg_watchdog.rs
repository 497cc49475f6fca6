//! The PostgreSQL harness's watchdog: a test process that is killed outright (SIGKILL, no
//! destructors) must not leave its server running or its directory behind.
//!
//! A plain `main` (`harness = false`): run without arguments it is the test, and it starts itself
//! again as the child that owns a server (`--child`), then kills that child.

mod common;

use std::io::{BufRead, BufReader};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::pg::{PgOptions, Postgres};

fn main() {
    if std::env::args().any(|a| a == "--child") {
        child();
    } else {
        watchdog_cleans_up_after_a_killed_test_process();
        println!("test watchdog_cleans_up_after_a_killed_test_process ... ok");
    }
}

/// Starts a server, says where, and waits to be killed.
fn child() {
    let pg = Postgres::start(PgOptions::default());
    println!(
        "WATCHDOG_CHILD_READY {} {}",
        pg.port(),
        pg.socket_dir().display()
    );
    std::thread::sleep(Duration::from_secs(120));
}

fn watchdog_cleans_up_after_a_killed_test_process() {
    let exe = std::env::current_exe().expect("current_exe");
    let mut child = Command::new(exe)
        .arg("--child")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn the child test process");
    let stdout = child.stdout.take().expect("child stdout");
    let mut ready = None;
    for line in BufReader::new(stdout).lines() {
        let line = line.expect("read child stdout");
        if let Some((_, rest)) = line.split_once("WATCHDOG_CHILD_READY ") {
            let (port, dir) = rest.split_once(' ').expect("port and dir");
            ready = Some((port.parse::<u16>().expect("port"), PathBuf::from(dir)));
            break;
        }
    }
    let Some((port, dir)) = ready else {
        let _ = child.kill();
        panic!("the child never reported a server");
    };
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    assert!(TcpStream::connect_timeout(&addr, Duration::from_secs(2)).is_ok());

    child.kill().expect("SIGKILL the child");
    let _ = child.wait();
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let down = TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_err();
        if down && !dir.exists() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "server on {port} still up ({}) or {} still there 15 s after the test process died",
            !down,
            dir.display()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}
