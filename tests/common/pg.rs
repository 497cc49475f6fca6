//! A real PostgreSQL server for integration tests.
//!
//! Each [`Postgres`] is its own cluster. `initdb` runs on a fresh temp dir, and `pg_ctl` starts
//! the server on a free loopback port with its unix socket in that temp dir. Nothing of the
//! machine's own PostgreSQL setup is used.
//!
//! * **Binaries.** If `PATH` has `initdb`, the harness follows symlinks to the directory it
//!   really lives in (`/usr/local/bin/initdb` may point into `/usr/lib/postgresql/15/bin`) and
//!   uses that directory when it also holds `pg_ctl`, `pg_isready` and `psql`. Otherwise it uses
//!   the highest `/usr/lib/postgresql/<major>/bin`. Every tool comes from that one directory.
//!   Debian's `/usr/bin/psql` wrapper is never used.
//! * **Root.** `initdb` and `postgres` refuse to run as root, and tests run as root in CI. When
//!   the effective uid (from `id -u`; the crate forbids `unsafe`, so there is no libc call) is 0,
//!   the server-side tools (`initdb`, `pg_ctl`) run through `runuser -u postgres --`, and the temp
//!   dir is `chown -R`'d to `postgres` first. If the `postgres` user does not exist, it is created
//!   with `useradd --system`. Client tools (`psql`, `pg_isready`, `openssl`) run as the calling
//!   user, and root can read the postgres-owned log and CA files. When the uid is not 0, everything
//!   runs directly as the calling user. The database superuser is always named `postgres`, whoever
//!   runs the server.
//! * **Auth.** The superuser `postgres` has a random password and uses scram-sha-256 over TCP,
//!   with `local all postgres trust` over the unix socket for [`Postgres::psql`]. Every other
//!   role can connect only over TCP on 127.0.0.1 with scram-sha-256. [`Tls::Required`] makes that
//!   line `hostssl`.
//! * **Cleanup.** [`Drop`] runs `pg_ctl stop -m fast` and then removes the temp dir.
//!   [`Postgres::shared`] lives in a `OnceLock` static, which is never dropped. To cover it, and a
//!   test binary that is killed or aborts, every server also gets a **watchdog**: a small `sh`
//!   process in its own process group, so the terminal's Ctrl-C does not reach it. The watchdog
//!   ignores INT/TERM/HUP and blocks reading a pipe whose only write end belongs to the test
//!   process. When the test process ends for any reason, including SIGKILL, the kernel closes the
//!   pipe. The watchdog then runs `pg_ctl stop -m immediate` and `rm -rf` on the temp dir. A
//!   normal `Drop` writes `done` to the pipe first, so the watchdog just exits. Do not count on
//!   "leftover servers die with the test process group": `pg_ctl` starts the postmaster with
//!   `setsid()`, so the postmaster is in a session of its own. The watchdog is what stops it.
//! * **Log.** `log_statement = 'all'` and `log_connections = on`, with `logging_collector = off`.
//!   `pg_ctl -l <tempdir>/server.log` captures stderr. [`Postgres::log`] reads that file.
#![allow(dead_code)]

use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt as _;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// How long [`Postgres::start`] waits for the server to accept connections.
const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// How many free ports `start` tries when the one it picked was taken before the bind.
const PORT_ATTEMPTS: usize = 5;

/// The server's TLS setup.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Tls {
    /// `ssl = off`.
    #[default]
    Off,
    /// `ssl = on` with a server cert signed by a per-server CA. Plain connections are allowed too
    /// (the pg_hba line is `host`).
    On,
    /// `ssl = on`, and TCP logins are accepted only over TLS (the pg_hba line is `hostssl`).
    /// A plain connection fails with 28000 "no pg_hba.conf entry … no encryption".
    Required,
}

#[derive(Debug, Clone, Default)]
pub struct PgOptions {
    pub tls: Tls,
    /// `max_connections`. `None` keeps PostgreSQL's default of 100.
    pub max_connections: Option<u32>,
    /// `superuser_reserved_connections`. `None` keeps PostgreSQL's default of 3.
    pub superuser_reserved: Option<u32>,
}

/// One running PostgreSQL cluster. See the module docs for the layout, auth and cleanup.
pub struct Postgres {
    bin: PathBuf,
    /// Holds `data/`, `tls/`, `server.log` and the unix socket. Removed on drop.
    root: tempfile::TempDir,
    data: PathBuf,
    log_path: PathBuf,
    port: u16,
    password: String,
    ca_cert: Option<PathBuf>,
    tls: Tls,
    /// From `start` being called to `pg_isready` answering: initdb, certificates, pg_ctl start.
    started_in: Duration,
    stopped: Mutex<bool>,
    /// Its stdin is the pipe the watchdog waits on. See the module docs.
    watchdog: Mutex<Option<Child>>,
}

impl Postgres {
    /// Runs initdb and starts a server, and returns once `pg_isready` says it accepts
    /// connections. Panics, with the server log's tail, if that takes more than 30 s.
    pub fn start(opts: PgOptions) -> Postgres {
        let t0 = Instant::now();
        let bin = pg_bin_dir();
        let root = tempfile::Builder::new()
            .prefix("elsadoctor-pg-")
            .tempdir()
            .expect("create the PostgreSQL temp dir");
        let dir = root.path().to_path_buf();
        let data = dir.join("data");
        let log_path = dir.join("server.log");
        let password = random_hex(16);
        let pwfile = dir.join("pwfile");
        std::fs::write(&pwfile, format!("{password}\n")).expect("write the initdb pwfile");

        let ca_cert = match opts.tls {
            Tls::Off => None,
            Tls::On | Tls::Required => Some(make_certs(&dir.join("tls"))),
        };
        if is_root() {
            ensure_postgres_user();
            run(
                Command::new("chown").arg("-R").arg("postgres:").arg(&dir),
                "chown the PostgreSQL temp dir",
            );
        }

        let mut initdb = server_cmd(&bin.join("initdb"), &dir);
        initdb
            .arg("-D")
            .arg(&data)
            .args(["-U", "postgres", "-A", "scram-sha-256", "-E", "UTF8"])
            .args(["--no-locale", "--no-sync", "--no-instructions"])
            .arg(format!("--pwfile={}", pwfile.display()));
        run(&mut initdb, "initdb");
        // The password does not need to stay on disk once it is in pg_authid.
        let _ = std::fs::remove_file(&pwfile);

        write_config(&data, &dir, &opts);
        write_hba(&data, opts.tls);

        let mut pg = Postgres {
            bin,
            root,
            data,
            log_path,
            port: 0,
            password,
            ca_cert,
            tls: opts.tls,
            started_in: Duration::ZERO,
            stopped: Mutex::new(true),
            watchdog: Mutex::new(None),
        };
        // The watchdog goes up before the server, so that a panic from here on cannot leak it.
        // A panic also drops `pg`, and its Drop stops whatever did start.
        *pg.watchdog.lock().expect("watchdog lock") = Some(pg.spawn_watchdog());
        pg.launch();
        pg.started_in = t0.elapsed();
        pg
    }

    /// One server with default options per test binary, started on first use. A static is
    /// never dropped, so the watchdog (module docs) stops it when the test process exits.
    pub fn shared() -> &'static Postgres {
        static SHARED: OnceLock<Postgres> = OnceLock::new();
        SHARED.get_or_init(|| Postgres::start(PgOptions::default()))
    }

    /// Always `127.0.0.1`. The server listens on nothing else, and `localhost` could resolve
    /// to ::1 first.
    pub fn host(&self) -> &str {
        "127.0.0.1"
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The CA that signed the server certificate (PEM), for [`Tls::On`] and [`Tls::Required`].
    /// The server cert has CN=localhost and SAN DNS:localhost, IP:127.0.0.1.
    pub fn ca_cert(&self) -> Option<&Path> {
        self.ca_cert.as_deref()
    }

    /// How long [`Postgres::start`] took (initdb, certificates, pg_ctl start, pg_isready).
    pub fn started_in(&self) -> Duration {
        self.started_in
    }

    pub fn tls(&self) -> Tls {
        self.tls
    }

    /// The random password of the `postgres` superuser over TCP.
    pub fn superuser_password(&self) -> &str {
        &self.password
    }

    /// The directory that holds the unix socket `.s.PGSQL.<port>`.
    pub fn socket_dir(&self) -> &Path {
        self.root.path()
    }

    pub fn data_dir(&self) -> &Path {
        &self.data
    }

    /// Runs `sql` with psql as the `postgres` superuser over the unix socket. The flags are
    /// `-X -q -A -t -v ON_ERROR_STOP=1`, and the SQL goes in on stdin, so several statements and
    /// `CREATE DATABASE` work. Returns stdout without its trailing newlines: unaligned tuples
    /// only, with `|` between columns. Panics with psql's stderr if anything fails.
    pub fn psql(&self, db: &str, sql: &str) -> String {
        self.try_psql(db, sql).unwrap_or_else(|stderr| {
            panic!(
                "psql on database {db:?} failed:\n{stderr}\n--- sql ---\n{}",
                truncate(sql, 2000)
            )
        })
    }

    /// [`Postgres::psql`] without the panic. `Err` holds psql's stderr.
    pub fn try_psql(&self, db: &str, sql: &str) -> Result<String, String> {
        let mut cmd = self.psql_admin(db);
        cmd.args(["-f", "-"]);
        let out = run_with_stdin(&mut cmd, sql.as_bytes());
        if out.status.success() {
            Ok(trim_newlines(&out.stdout))
        } else {
            Err(format!(
                "{} ({})",
                String::from_utf8_lossy(&out.stderr).trim_end(),
                out.status
            ))
        }
    }

    /// Runs psql as an ordinary libpq client with the given conninfo: TCP, with the password in
    /// the conninfo, over TLS when `sslmode` asks for it. Returns stdout (trimmed like
    /// [`Postgres::psql`]) or stderr.
    pub fn psql_client(&self, conninfo: &str, sql: &str) -> Result<String, String> {
        let mut cmd = client_cmd(&self.bin.join("psql"));
        cmd.args([
            "-X",
            "-q",
            "-A",
            "-t",
            "-v",
            "ON_ERROR_STOP=1",
            "-d",
            conninfo,
            "-f",
            "-",
        ]);
        let out = run_with_stdin(&mut cmd, sql.as_bytes());
        if out.status.success() {
            Ok(trim_newlines(&out.stdout))
        } else {
            Err(String::from_utf8_lossy(&out.stderr).trim_end().to_string())
        }
    }

    /// `CREATE ROLE … LOGIN PASSWORD …`. The password is stored as SCRAM (the server's
    /// `password_encryption` is scram-sha-256).
    pub fn create_role(&self, name: &str, password: &str) {
        self.psql(
            "postgres",
            &format!(
                "CREATE ROLE {} LOGIN PASSWORD {};",
                quote_ident(name),
                quote_literal(password)
            ),
        );
    }

    pub fn create_database(&self, name: &str, owner: &str) {
        self.psql(
            "postgres",
            &format!(
                "CREATE DATABASE {} OWNER {};",
                quote_ident(name),
                quote_ident(owner)
            ),
        );
    }

    /// Runs a SQL file as the superuser, in one transaction (`psql -1 -f`). Everything it creates
    /// is owned by `postgres`. [`Postgres::load_elsa`] hands the Elsa objects over to a role.
    pub fn load_sql(&self, db: &str, path: &Path) {
        let mut cmd = self.psql_admin(db);
        cmd.arg("-1").arg("-f").arg(path).stdin(Stdio::null());
        let out = cmd.output().expect("run psql");
        if !out.status.success() {
            panic!(
                "loading {} into {db:?} failed ({}):\n{}",
                path.display(),
                out.status,
                String::from_utf8_lossy(&out.stderr).trim_end()
            );
        }
    }

    /// Loads `tests/fixtures/sql/elsa-<version>.sql` (`"3.5"` or `"3.8"`) into `db`, then makes
    /// `owner` the owner of schema "Elsa" and of every table, view and sequence in it. This is
    /// what the database looks like after Elsa's own EF Core migrations have run as `owner`.
    /// Database-level privileges are left untouched.
    pub fn load_elsa(&self, db: &str, owner: &str, version: &str) {
        self.load_sql(db, &elsa_fixture(version));
        let owner = quote_literal(owner);
        self.psql(
            db,
            &format!(
                r#"DO $$
DECLARE r record;
BEGIN
  EXECUTE format('ALTER SCHEMA %I OWNER TO %I', 'Elsa', {owner});
  FOR r IN SELECT c.relname, c.relkind FROM pg_class c
           JOIN pg_namespace n ON n.oid = c.relnamespace
           WHERE n.nspname = 'Elsa' AND c.relkind IN ('r', 'p', 'v', 'm', 'S')
  LOOP
    EXECUTE format('ALTER %s %I.%I OWNER TO %I',
                   CASE r.relkind WHEN 'v' THEN 'VIEW' WHEN 'm' THEN 'MATERIALIZED VIEW'
                                  WHEN 'S' THEN 'SEQUENCE' ELSE 'TABLE' END,
                   'Elsa', r.relname, {owner});
  END LOOP;
END $$;"#
            ),
        );
    }

    /// Npgsql syntax, as Elsa's `ConnectionStrings__PostgreSql` would hold it:
    /// `Host=127.0.0.1;Port=…;Database=…;Username=…;Password=…`.
    pub fn connection_string(&self, db: &str, user: &str, password: &str) -> String {
        format!(
            "Host={};Port={};Database={};Username={};Password={}",
            self.host(),
            self.port,
            npgsql_value(db),
            npgsql_value(user),
            npgsql_value(password)
        )
    }

    /// libpq key=value syntax, for `tokio_postgres::connect` and `psql -d`.
    pub fn libpq_string(&self, db: &str, user: &str, password: &str) -> String {
        format!(
            "host={} port={} dbname={} user={} password={}",
            self.host(),
            self.port,
            libpq_value(db),
            libpq_value(user),
            libpq_value(password)
        )
    }

    /// The server log so far (stderr of the postmaster, via `pg_ctl -l`).
    pub fn log(&self) -> String {
        match std::fs::read(&self.log_path) {
            Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
            Err(e) => format!("<cannot read {}: {e}>", self.log_path.display()),
        }
    }

    /// `pg_ctl stop -m fast`. Does nothing if the server is already stopped. Panics if pg_ctl
    /// fails for any reason other than "not running".
    pub fn stop(&self) {
        if let Err(e) = self.try_stop() {
            panic!("{e}");
        }
    }

    fn try_stop(&self) -> Result<(), String> {
        let mut stopped = self.stopped.lock().unwrap_or_else(|p| p.into_inner());
        if *stopped {
            return Ok(());
        }
        let out = server_cmd(&self.bin.join("pg_ctl"), self.root.path())
            .arg("-D")
            .arg(&self.data)
            .args(["stop", "-m", "fast", "-w", "-t", "30"])
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("run pg_ctl stop: {e}"))?;
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        if out.status.success() || text.contains("Is server running?") || text.contains("PID file")
        {
            *stopped = true;
            Ok(())
        } else {
            Err(format!("pg_ctl stop failed ({}): {text}", out.status))
        }
    }

    fn psql_admin(&self, db: &str) -> Command {
        let mut cmd = client_cmd(&self.bin.join("psql"));
        let conninfo = format!(
            "host={} port={} user=postgres dbname={}",
            libpq_value(&self.root.path().to_string_lossy()),
            self.port,
            libpq_value(db)
        );
        cmd.args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d"])
            .arg(conninfo);
        cmd
    }

    /// Starts the postmaster on a free port. If another process bound that port between our
    /// probe and the server's bind, it retries with a new one.
    fn launch(&mut self) {
        let deadline = Instant::now() + READY_TIMEOUT;
        for attempt in 1..=PORT_ATTEMPTS {
            self.port = free_port();
            let log_before = self.log().len();
            *self.stopped.lock().expect("stopped lock") = false;
            let out = server_cmd(&self.bin.join("pg_ctl"), self.root.path())
                .arg("-D")
                .arg(&self.data)
                .arg("-l")
                .arg(&self.log_path)
                .arg("-o")
                .arg(format!("-p {}", self.port))
                .args(["start", "-w", "-t"])
                .arg(READY_TIMEOUT.as_secs().to_string())
                .stdin(Stdio::null())
                .output()
                .expect("run pg_ctl start");
            if out.status.success() {
                break;
            }
            let log = self.log();
            let new_log = log.get(log_before..).unwrap_or(&log);
            if attempt < PORT_ATTEMPTS
                && (new_log.contains("Address already in use")
                    || new_log.contains("could not bind"))
            {
                // The postmaster exited when its bind failed.
                *self.stopped.lock().expect("stopped lock") = true;
                continue;
            }
            // `stopped` stays false: a postmaster that is still starting up is stopped by Drop.
            panic!(
                "pg_ctl start failed ({}):\n{}{}\n--- server log tail ---\n{}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr),
                tail(&log, 40)
            );
        }
        // pg_ctl -w already waited for "ready" in postmaster.pid. pg_isready confirms that the
        // TCP listener answers.
        loop {
            let out = client_cmd(&self.bin.join("pg_isready"))
                .args([
                    "-h",
                    "127.0.0.1",
                    "-d",
                    "postgres",
                    "-U",
                    "postgres",
                    "-t",
                    "2",
                    "-p",
                ])
                .arg(self.port.to_string())
                .stdin(Stdio::null())
                .output();
            let last = match &out {
                Ok(o) if o.status.success() => return,
                Ok(o) => format!(
                    "{}: {}{}",
                    o.status,
                    String::from_utf8_lossy(&o.stdout),
                    String::from_utf8_lossy(&o.stderr)
                ),
                Err(e) => e.to_string(),
            };
            if Instant::now() > deadline {
                panic!(
                    "PostgreSQL on port {} not ready after {:?}; pg_isready said {}\n\
                     --- server log tail ---\n{}",
                    self.port,
                    READY_TIMEOUT,
                    last.trim_end(),
                    tail(&self.log(), 40)
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn spawn_watchdog(&self) -> Child {
        // $1 pg_ctl, $2 data dir, $3 temp dir, $4 runuser or "" (when not root).
        const SCRIPT: &str = r#"trap '' INT TERM HUP PIPE
IFS= read -r line
[ "$line" = done ] && exit 0
if [ -n "$4" ]; then
  "$4" -u postgres -- "$1" -D "$2" stop -m immediate -w -t 10 >/dev/null 2>&1
else
  "$1" -D "$2" stop -m immediate -w -t 10 >/dev/null 2>&1
fi
rm -rf "$3"
"#;
        let runuser = if is_root() {
            runuser_path().to_string_lossy().into_owned()
        } else {
            String::new()
        };
        let mut cmd = Command::new("/bin/sh");
        cmd.arg("-c")
            .arg(SCRIPT)
            .arg("elsadoctor-pg-watchdog")
            .arg(self.bin.join("pg_ctl"))
            .arg(&self.data)
            .arg(self.root.path())
            .arg(runuser)
            .current_dir("/")
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            // Its own process group, so that a Ctrl-C of the test run does not reach it.
            .process_group(0);
        cmd.spawn().expect("spawn the PostgreSQL watchdog")
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let stopped = self.try_stop();
        let mut guard = self.watchdog.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(mut child) = guard.take() {
            // If the stop failed, leave the watchdog to it: closing the pipe without "done"
            // makes it run `pg_ctl stop -m immediate`.
            if let (Ok(()), Some(stdin)) = (&stopped, child.stdin.as_mut()) {
                let _ = stdin.write_all(b"done\n");
            }
            drop(child.stdin.take());
            let _ = child.wait();
        }
        // `root` (TempDir) is dropped after this and removes the directory.
    }
}

/// `tests/fixtures/sql/elsa-<version>.sql`.
pub fn elsa_fixture(version: &str) -> PathBuf {
    assert!(
        matches!(version, "3.5" | "3.8"),
        "no Elsa fixture for version {version:?} (have 3.5, 3.8)"
    );
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/sql")
        .join(format!("elsa-{version}.sql"))
}

/// `"name"` with inner quotes doubled.
pub fn quote_ident(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

/// `'text'` with inner quotes doubled (standard_conforming_strings is on).
pub fn quote_literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// A libpq conninfo value, always single-quoted, with `\` and `'` escaped.
fn libpq_value(s: &str) -> String {
    format!("'{}'", s.replace('\\', "\\\\").replace('\'', "\\'"))
}

/// A value as .NET's DbConnectionStringBuilder would write it. Values holding `;`, `=` (not
/// needed, but harmless), quotes or surrounding whitespace are quoted.
fn npgsql_value(s: &str) -> String {
    let needs = s.is_empty() || s.contains([';', '=', '"', '\'']) || s.trim() != s;
    if !needs {
        s.to_string()
    } else if !s.contains('"') {
        format!("\"{s}\"")
    } else if !s.contains('\'') {
        format!("'{s}'")
    } else {
        format!("\"{}\"", s.replace('"', "\"\""))
    }
}

// ---------------------------------------------------------------------------------------------
// Blackhole

/// Keeps a [`blackhole`] address unanswered: the listener, which never accepts, and the
/// connections that fill its queue. Dropping it frees the port.
pub struct BlackholeGuard {
    _listener: TcpListener,
    _fillers: Vec<TcpStream>,
}

/// A loopback address where a TCP connect hangs until the client gives up: no RST and no
/// SYN-ACK. It is a listener with backlog 1 that never accepts. Connections fill its accept
/// queue until a probe connect times out, and from then on Linux drops every new SYN
/// (`tcp_abort_on_overflow = 0`, the default). Keep the guard alive while you use the address.
/// Panics if the queue cannot be filled, which would mean connects are answered.
pub fn blackhole() -> (SocketAddr, BlackholeGuard) {
    let listener = listen_with_backlog_1();
    let addr = listener.local_addr().expect("blackhole local_addr");
    let mut fillers = Vec::new();
    for _ in 0..64 {
        match TcpStream::connect_timeout(&addr, Duration::from_millis(300)) {
            Ok(s) => fillers.push(s),
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {
                return (
                    addr,
                    BlackholeGuard {
                        _listener: listener,
                        _fillers: fillers,
                    },
                );
            }
            Err(e) => panic!("blackhole: filler connect to {addr} failed with {e} (not a timeout)"),
        }
    }
    panic!("blackhole: {addr} still accepted connections after 64 fillers");
}

/// std's TcpListener has no backlog parameter. tokio's TcpSocket does, but it needs a runtime
/// to register with. So this builds a throwaway current-thread runtime on its own OS thread,
/// where dropping a runtime is allowed even when the caller is inside `#[tokio::test]`, and
/// hands back a std listener.
fn listen_with_backlog_1() -> TcpListener {
    std::thread::spawn(|| {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .build()
            .expect("blackhole runtime");
        rt.block_on(async {
            let socket = tokio::net::TcpSocket::new_v4().expect("blackhole socket");
            socket
                .bind(SocketAddr::from(([127, 0, 0, 1], 0)))
                .expect("blackhole bind");
            let listener = socket.listen(1).expect("blackhole listen");
            listener.into_std().expect("blackhole into_std")
        })
    })
    .join()
    .expect("blackhole thread")
}

// ---------------------------------------------------------------------------------------------
// Processes, users, files

fn is_root() -> bool {
    static ROOT: OnceLock<bool> = OnceLock::new();
    *ROOT.get_or_init(|| {
        let out = Command::new("id").arg("-u").output().expect("run id -u");
        String::from_utf8_lossy(&out.stdout).trim() == "0"
    })
}

fn runuser_path() -> PathBuf {
    for p in [
        "/usr/sbin/runuser",
        "/sbin/runuser",
        "/usr/bin/runuser",
        "/bin/runuser",
    ] {
        if Path::new(p).exists() {
            return PathBuf::from(p);
        }
    }
    find_on_path("runuser").expect("runuser (util-linux) is needed to run PostgreSQL as root")
}

/// Creates the `postgres` system user if it is missing. Safe to call from many threads, and
/// from several test processes at once: a failing useradd is fine when the user exists after.
fn ensure_postgres_user() {
    static DONE: OnceLock<()> = OnceLock::new();
    DONE.get_or_init(|| {
        let exists = || {
            Command::new("id")
                .args(["-u", "postgres"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .map(|s| s.success())
                .unwrap_or(false)
        };
        if exists() {
            return;
        }
        let out = Command::new("useradd")
            .args([
                "--system",
                "--user-group",
                "--no-create-home",
                "--shell",
                "/bin/sh",
                "postgres",
            ])
            .output()
            .expect("run useradd");
        assert!(
            exists(),
            "could not create the postgres user: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    });
}

/// A server-side tool: through `runuser -u postgres --` when we are root. It runs with a clean
/// environment and the temp dir as its working directory, because postgres may not be able to
/// enter the test's cwd.
fn server_cmd(program: &Path, cwd: &Path) -> Command {
    let mut cmd = if is_root() {
        let mut c = Command::new(runuser_path());
        c.args(["-u", "postgres", "--"]).arg(program);
        c
    } else {
        Command::new(program)
    };
    scrub_env(&mut cmd);
    cmd.current_dir(cwd);
    cmd
}

/// A client tool, run as the calling user, with no PG* variables from the developer's shell.
fn client_cmd(program: &Path) -> Command {
    let mut cmd = Command::new(program);
    scrub_env(&mut cmd);
    cmd.env("PGCONNECT_TIMEOUT", "10");
    cmd
}

fn scrub_env(cmd: &mut Command) {
    cmd.env_clear()
        .env(
            "PATH",
            std::env::var_os("PATH").unwrap_or_else(|| "/usr/bin:/bin".into()),
        )
        .env("LC_ALL", "C")
        .env("TZ", "UTC");
}

fn run(cmd: &mut Command, what: &str) -> Output {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("{what}: cannot run {cmd:?}: {e}"));
    if !out.status.success() {
        panic!(
            "{what} failed ({}): {cmd:?}\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    out
}

/// Runs `cmd` feeding `input` on stdin from a thread, so a large input cannot deadlock against
/// a full stdout pipe.
fn run_with_stdin(cmd: &mut Command, input: &[u8]) -> Output {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    let mut stdin = child.stdin.take().expect("child stdin");
    let input = input.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&input);
    });
    let out = child.wait_with_output().expect("wait for child");
    let _ = writer.join();
    out
}

/// The directory with initdb, pg_ctl, pg_isready and psql: where PATH's initdb really lives (after
/// symlinks) if all four are there, otherwise the highest /usr/lib/postgresql/<major>/bin.
fn pg_bin_dir() -> PathBuf {
    const TOOLS: [&str; 4] = ["initdb", "pg_ctl", "pg_isready", "psql"];
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        // Resolve symlinks: /usr/local/bin/initdb may point into /usr/lib/postgresql/15/bin,
        // and the other tools must come from the same installation.
        if let Some(initdb) = find_on_path("initdb").and_then(|p| std::fs::canonicalize(p).ok())
            && let Some(dir) = initdb.parent()
            && TOOLS.iter().all(|t| dir.join(t).is_file())
        {
            return dir.to_path_buf();
        }
        let mut best: Option<(u32, PathBuf)> = None;
        if let Ok(entries) = std::fs::read_dir("/usr/lib/postgresql") {
            for entry in entries.flatten() {
                let Ok(major) = entry.file_name().to_string_lossy().parse::<u32>() else {
                    continue;
                };
                let bin = entry.path().join("bin");
                if TOOLS.iter().all(|t| bin.join(t).is_file())
                    && best.as_ref().is_none_or(|(m, _)| major > *m)
                {
                    best = Some((major, bin));
                }
            }
        }
        best.map(|(_, b)| b).expect(
            "PostgreSQL server binaries not found: put initdb on PATH or install \
             postgresql (Debian: /usr/lib/postgresql/<major>/bin)",
        )
    })
    .clone()
}

fn find_on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

fn free_port() -> u16 {
    TcpListener::bind(("127.0.0.1", 0))
        .and_then(|l| l.local_addr())
        .expect("bind 127.0.0.1:0 to find a free port")
        .port()
}

fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut buf))
        .expect("read /dev/urandom");
    buf.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

fn write_config(data: &Path, socket_dir: &Path, opts: &PgOptions) {
    let q = |p: &Path| format!("'{}'", p.to_string_lossy().replace('\'', "''"));
    let mut conf = String::from("\n# --- elsadoctor test harness ---\n");
    conf += "listen_addresses = '127.0.0.1'\n";
    let _ = writeln!(conf, "unix_socket_directories = {}", q(socket_dir));
    conf += "password_encryption = 'scram-sha-256'\n";
    conf += "logging_collector = off\n";
    conf += "log_statement = 'all'\n";
    conf += "log_connections = on\n";
    conf += "log_disconnections = on\n";
    conf += "log_line_prefix = '%m [%p] %q%u@%d '\n";
    conf += "log_timezone = 'UTC'\n";
    // Throwaway clusters: durability is not needed, and speed is.
    conf += "fsync = off\nsynchronous_commit = off\nfull_page_writes = off\n";
    conf += "shared_buffers = '16MB'\n";
    if let Some(n) = opts.max_connections {
        let _ = writeln!(conf, "max_connections = {n}");
    }
    if let Some(n) = opts.superuser_reserved {
        let _ = writeln!(conf, "superuser_reserved_connections = {n}");
    }
    match opts.tls {
        Tls::Off => conf += "ssl = off\n",
        Tls::On | Tls::Required => {
            let tls = socket_dir.join("tls");
            conf += "ssl = on\n";
            let _ = writeln!(conf, "ssl_cert_file = {}", q(&tls.join("server.crt")));
            let _ = writeln!(conf, "ssl_key_file = {}", q(&tls.join("server.key")));
        }
    }
    // Appending keeps the file's owner (postgres when we are root).
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(data.join("postgresql.conf"))
        .expect("open postgresql.conf");
    f.write_all(conf.as_bytes()).expect("write postgresql.conf");
}

fn write_hba(data: &Path, tls: Tls) {
    let tcp = match tls {
        Tls::Off | Tls::On => "host",
        Tls::Required => "hostssl",
    };
    let hba = format!(
        "# elsadoctor test harness\n\
         # TYPE  DATABASE USER     ADDRESS       METHOD\n\
         local   all      postgres               trust\n\
         {tcp:<7} all      all      127.0.0.1/32  scram-sha-256\n"
    );
    // Truncating an existing file keeps its owner.
    std::fs::write(data.join("pg_hba.conf"), hba).expect("write pg_hba.conf");
}

/// A CA and a server cert/key (EC P-256) signed by it, in `dir`. Returns the CA cert path.
fn make_certs(dir: &Path) -> PathBuf {
    std::fs::create_dir_all(dir).expect("create the tls dir");
    let openssl = |args: &[&str], what: &str| {
        let mut cmd = Command::new("openssl");
        cmd.args(args).current_dir(dir);
        run(&mut cmd, what);
    };
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    let mut ca = vec!["req", "-x509"];
    ca.extend(ec);
    ca.extend([
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
        "-days",
        "3650",
        "-subj",
        "/CN=elsadoctor test CA",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign",
    ]);
    openssl(&ca, "openssl: make the test CA");
    let mut csr = vec!["req", "-new"];
    csr.extend(ec);
    csr.extend([
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        "-subj",
        "/CN=localhost",
    ]);
    openssl(&csr, "openssl: make the server key and CSR");
    std::fs::write(
        dir.join("server.ext"),
        "basicConstraints = critical, CA:FALSE\n\
         keyUsage = critical, digitalSignature, keyEncipherment\n\
         extendedKeyUsage = serverAuth\n\
         subjectAltName = DNS:localhost, IP:127.0.0.1\n",
    )
    .expect("write server.ext");
    openssl(
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.crt",
            "-days",
            "3650",
            "-extfile",
            "server.ext",
        ],
        "openssl: sign the server cert",
    );
    // PostgreSQL refuses a key readable by group or others.
    std::fs::set_permissions(
        dir.join("server.key"),
        std::fs::Permissions::from_mode(0o600),
    )
    .expect("chmod 0600 server.key");
    dir.join("ca.crt")
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

fn trim_newlines(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes)
        .trim_end_matches(['\n', '\r'])
        .to_string()
}

fn truncate(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}
