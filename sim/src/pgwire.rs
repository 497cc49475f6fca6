//! A PostgreSQL stand-in for a simulated database pod: enough of the frontend/backend protocol
//! (version 3.0) for a real client (tokio-postgres, through the real port-forward or a ClusterIP)
//! to log in and run elsadoctor's read-only catalogue queries, answered from `sim.yaml`
//! (`postgres:` of a pod): its role, password and database, and the Elsa schema it holds.
//!
//! What it speaks: the startup packet (an `SSLRequest` or `GSSENCRequest` is declined with `N`,
//! as a server with TLS off does), cleartext password authentication (pg_hba `password`), the
//! simple query protocol and the extended one (Parse/Bind/Describe/Execute/Close/Sync/Flush),
//! text and binary result formats for `text`, `int4` and `bool`. What it answers: the queries
//! elsadoctor sends (recognised by their text, see [`answer`]); anything else gets SQLSTATE
//! 0A000, so a new query in the product shows up as a failing demo test, not as a made-up
//! result. A wrong password, role or database gets the errors PostgreSQL sends (28P01,
//! 3D000) and the connection closes.

use std::net::SocketAddr;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::config::PostgresConfig;

const SSL_REQUEST: i32 = 80_877_103;
const GSSENC_REQUEST: i32 = 80_877_104;
const PROTOCOL_3: i32 = 196_608;

const TEXT: i32 = 25;
const INT4: i32 = 23;
const BOOL: i32 = 16;

/// Elsa's tables in schema "Elsa" and its `__EFMigrationsHistory` rows, by schema version: the
/// Management and Runtime contexts of the PostgreSQL provider (tests/fixtures/sql holds the same
/// facts as SQL for the real-PostgreSQL tests).
fn elsa_schema(version: &str) -> Option<(&'static [&'static str], &'static [&'static str])> {
    const TABLES_35: &[&str] = &[
        "__EFMigrationsHistory",
        "WorkflowDefinitions",
        "WorkflowInstances",
        "ActivityExecutionRecords",
        "Bookmarks",
        "Triggers",
        "WorkflowExecutionLogRecords",
        "WorkflowInboxMessages",
        "KeyValuePairs",
        "BookmarkQueueItems",
    ];
    const MIGRATIONS_35: &[&str] = &[
        "20231015122234_Initial",
        "20231024160952_Initial",
        "20240329200711_V3_1",
        "20240329200740_V3_1",
        "20240610184748_V3_2",
        "20240610184839_V3_2",
        "20241212211805_V3_3",
        "20250116192950_V3_3",
        "20250222190844_V3_4",
        "20250222190906_V3_4",
        "20250530104953_V3_5",
    ];
    match version {
        "3.5" => Some((TABLES_35, MIGRATIONS_35)),
        _ => None,
    }
}

/// Whether `sim.yaml`'s `elsa:` names a schema the stand-in knows (`none` = an empty database).
pub fn known_schema(version: &str) -> bool {
    version == "none" || elsa_schema(version).is_some()
}

/// Starts a stand-in on `127.0.0.1:0`; it stops when `closing` turns true.
pub async fn spawn(
    config: PostgresConfig,
    mut closing: tokio::sync::watch::Receiver<bool>,
) -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
    let addr = listener.local_addr()?;
    let config = std::sync::Arc::new(config);
    tokio::spawn(async move {
        loop {
            let accepted = tokio::select! {
                _ = closing.wait_for(|c| *c) => break,
                accepted = listener.accept() => accepted,
            };
            {
                {
                    let Ok((stream, peer)) = accepted else {
                        continue;
                    };
                    let _ = stream.set_nodelay(true);
                    let config = config.clone();
                    let mut closing = closing.clone();
                    tokio::spawn(async move {
                        tokio::select! {
                            _ = closing.wait_for(|c| *c) => {}
                            r = session(stream, peer, &config) => {
                                if let Err(e) = r {
                                    tracing::debug!("simulated PostgreSQL session ended: {e}");
                                }
                            }
                        }
                    });
                }
            }
        }
    });
    Ok(addr)
}

type Io = std::io::Result<()>;

fn bad(msg: &str) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, msg.to_string())
}

async fn read_message<R: AsyncRead + Unpin>(r: &mut R) -> std::io::Result<(u8, Vec<u8>)> {
    let tag = r.read_u8().await?;
    let len = r.read_i32().await?;
    let len = usize::try_from(len - 4).map_err(|_| bad("negative message length"))?;
    if len > 1 << 20 {
        return Err(bad("message too long"));
    }
    let mut body = vec![0; len];
    r.read_exact(&mut body).await?;
    Ok((tag, body))
}

/// A backend message: tag, length, body.
fn message(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut m = Vec::with_capacity(body.len() + 5);
    m.push(tag);
    let len = i32::try_from(body.len() + 4).unwrap_or(i32::MAX);
    m.extend_from_slice(&len.to_be_bytes());
    m.extend_from_slice(body);
    m
}

fn cstr(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(s.as_bytes());
    out.push(0);
}

/// Reads NUL-terminated strings and integers from a message body.
struct Cursor<'a>(&'a [u8]);

impl Cursor<'_> {
    fn cstr(&mut self) -> std::io::Result<String> {
        let end = self
            .0
            .iter()
            .position(|b| *b == 0)
            .ok_or_else(|| bad("unterminated string"))?;
        let s = String::from_utf8_lossy(&self.0[..end]).into_owned();
        self.0 = &self.0[end + 1..];
        Ok(s)
    }
    fn bytes(&mut self, n: usize) -> std::io::Result<&[u8]> {
        if self.0.len() < n {
            return Err(bad("short message"));
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Ok(a)
    }
    fn i16(&mut self) -> std::io::Result<i16> {
        let b = self.bytes(2)?;
        Ok(i16::from_be_bytes([b[0], b[1]]))
    }
    fn i32(&mut self) -> std::io::Result<i32> {
        let b = self.bytes(4)?;
        Ok(i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
}

fn error_response(severity: &str, code: &str, text: &str) -> Vec<u8> {
    let mut b = Vec::new();
    for (field, value) in [
        (b'S', severity),
        (b'V', severity),
        (b'C', code),
        (b'M', text),
    ] {
        b.push(field);
        cstr(&mut b, value);
    }
    b.push(0);
    message(b'E', &b)
}

fn ready() -> Vec<u8> {
    message(b'Z', b"I")
}

async fn session(mut stream: TcpStream, peer: SocketAddr, config: &PostgresConfig) -> Io {
    // Startup: declined encryption requests, then the 3.0 startup packet.
    let params = loop {
        let len = stream.read_i32().await?;
        let len = usize::try_from(len - 4).map_err(|_| bad("negative startup length"))?;
        if !(4..=10_000).contains(&len) {
            return Err(bad("bad startup length"));
        }
        let mut body = vec![0; len];
        stream.read_exact(&mut body).await?;
        let mut c = Cursor(&body);
        match c.i32()? {
            SSL_REQUEST | GSSENC_REQUEST => stream.write_all(b"N").await?,
            PROTOCOL_3 => {
                let mut params = std::collections::HashMap::new();
                loop {
                    let k = c.cstr()?;
                    if k.is_empty() {
                        break;
                    }
                    params.insert(k, c.cstr()?);
                }
                break params;
            }
            other => return Err(bad(&format!("unsupported protocol {other}"))),
        }
    };
    let user = params.get("user").cloned().unwrap_or_default();
    let database = params
        .get("database")
        .cloned()
        .unwrap_or_else(|| user.clone());
    // pg_hba `password`: ask for the password in clear.
    stream
        .write_all(&message(b'R', &3i32.to_be_bytes()))
        .await?;
    let (tag, body) = read_message(&mut stream).await?;
    if tag != b'p' {
        return Err(bad("expected a password message"));
    }
    let password = Cursor(&body).cstr()?;
    if user != config.user || password != config.password {
        let e = error_response(
            "FATAL",
            "28P01",
            &format!("password authentication failed for user \"{user}\""),
        );
        return stream.write_all(&e).await;
    }
    if database != config.database {
        let e = error_response(
            "FATAL",
            "3D000",
            &format!("database \"{database}\" does not exist"),
        );
        return stream.write_all(&e).await;
    }
    let mut out = message(b'R', &0i32.to_be_bytes());
    for (k, v) in [
        ("server_version", config.version_number()),
        ("server_encoding", "UTF8"),
        ("client_encoding", "UTF8"),
        ("DateStyle", "ISO, MDY"),
        ("integer_datetimes", "on"),
        ("standard_conforming_strings", "on"),
        ("TimeZone", "UTC"),
    ] {
        let mut b = Vec::new();
        cstr(&mut b, k);
        cstr(&mut b, v);
        out.extend(message(b'S', &b));
    }
    let mut key = Vec::new();
    key.extend_from_slice(&(peer.port() as i32).to_be_bytes());
    key.extend_from_slice(&0x5eed_i32.to_be_bytes());
    out.extend(message(b'K', &key));
    out.extend(ready());
    stream.write_all(&out).await?;
    serve(&mut stream, peer, config).await
}

/// A result column value.
#[derive(Debug, Clone)]
enum Val {
    Text(String),
    Int(i32),
    Bool(bool),
}

impl Val {
    fn encode(&self, binary: bool) -> Option<Vec<u8>> {
        Some(match (self, binary) {
            (Val::Text(s), _) => s.clone().into_bytes(),
            (Val::Int(i), true) => i.to_be_bytes().to_vec(),
            (Val::Int(i), false) => i.to_string().into_bytes(),
            (Val::Bool(b), true) => vec![u8::from(*b)],
            (Val::Bool(b), false) => {
                if *b {
                    b"t".to_vec()
                } else {
                    b"f".to_vec()
                }
            }
        })
    }
}

/// Column names and types, and the rows.
struct Answer {
    columns: Vec<(&'static str, i32)>,
    rows: Vec<Vec<Val>>,
}

fn row_description(columns: &[(&'static str, i32)]) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend_from_slice(&i16::try_from(columns.len()).unwrap_or(0).to_be_bytes());
    for (name, oid) in columns {
        cstr(&mut b, name);
        b.extend_from_slice(&0i32.to_be_bytes()); // table
        b.extend_from_slice(&0i16.to_be_bytes()); // column
        b.extend_from_slice(&oid.to_be_bytes());
        let size: i16 = match *oid {
            INT4 => 4,
            BOOL => 1,
            _ => -1,
        };
        b.extend_from_slice(&size.to_be_bytes());
        b.extend_from_slice(&(-1i32).to_be_bytes()); // typmod
        b.extend_from_slice(&0i16.to_be_bytes()); // format
    }
    message(b'T', &b)
}

fn data_rows(answer: &Answer, formats: &[i16]) -> Vec<u8> {
    let mut out = Vec::new();
    for row in &answer.rows {
        let mut b = Vec::new();
        b.extend_from_slice(&i16::try_from(row.len()).unwrap_or(0).to_be_bytes());
        for (i, v) in row.iter().enumerate() {
            let binary = match formats {
                [] => false,
                [one] => *one == 1,
                many => many.get(i) == Some(&1),
            };
            match v.encode(binary) {
                Some(bytes) => {
                    b.extend_from_slice(&i32::try_from(bytes.len()).unwrap_or(0).to_be_bytes());
                    b.extend_from_slice(&bytes);
                }
                None => b.extend_from_slice(&(-1i32).to_be_bytes()),
            }
        }
        out.extend(message(b'D', &b));
    }
    let mut tag = Vec::new();
    cstr(&mut tag, &format!("SELECT {}", answer.rows.len()));
    out.extend(message(b'C', &tag));
    out
}

/// The text inside `ARRAY[...]::text[]` of a query: the quoted names, unquoted.
fn array_literal(query: &str) -> Vec<String> {
    let Some(start) = query.find("ARRAY[") else {
        return Vec::new();
    };
    let rest = &query[start + 6..];
    let Some(end) = rest.find("]::text[]") else {
        return Vec::new();
    };
    rest[..end]
        .split(',')
        .map(str::trim)
        .filter(|s| s.len() >= 2 && s.starts_with('\'') && s.ends_with('\''))
        .map(|s| s[1..s.len() - 1].replace("''", "'"))
        .collect()
}

/// The answer to one of elsadoctor's queries, from the configured database.
fn answer(query: &str, peer: SocketAddr, config: &PostgresConfig) -> Result<Answer, String> {
    let q = query.trim();
    let schema = config.elsa.as_deref().and_then(elsa_schema);
    let (tables, migrations): (&[&str], &[&str]) = schema.unwrap_or((&[], &[]));
    let has_history = tables.contains(&"__EFMigrationsHistory");
    if q.starts_with("SELECT version(), current_user::text, current_database()::text,") {
        let t = |n| (n, TEXT);
        let b = |n| (n, BOOL);
        return Ok(Answer {
            columns: vec![
                t("version"),
                t("current_user"),
                t("current_database"),
                ("current_setting", INT4),
                ("current_setting", INT4),
                ("count", INT4),
                b("?column?"),
                b("?column?"),
                b("has_database_privilege"),
                b("coalesce"),
                b("coalesce"),
                b("coalesce"),
                t("host"),
            ],
            rows: vec![vec![
                Val::Text(config.version_string()),
                Val::Text(config.user.clone()),
                Val::Text(config.database.clone()),
                Val::Int(config.max_connections),
                Val::Int(3),
                Val::Int(config.connections),
                Val::Bool(schema.is_some()),
                Val::Bool(has_history),
                // The role owns the database and Elsa's schema, as the guide sets it up.
                Val::Bool(true),
                Val::Bool(schema.is_some()),
                Val::Bool(schema.is_some()),
                Val::Bool(has_history),
                Val::Text(peer.ip().to_string()),
            ]],
        });
    }
    if q.starts_with("SELECT t, c.oid IS NOT NULL,") && q.contains("FROM unnest(") {
        let rows = array_literal(q)
            .into_iter()
            .map(|name| {
                let exists = tables.contains(&name.as_str());
                let mut row = vec![Val::Text(name)];
                row.extend(std::iter::repeat_n(Val::Bool(exists), 5));
                row
            })
            .collect();
        return Ok(Answer {
            columns: vec![
                ("t", TEXT),
                ("?column?", BOOL),
                ("coalesce", BOOL),
                ("coalesce", BOOL),
                ("coalesce", BOOL),
                ("coalesce", BOOL),
            ],
            rows,
        });
    }
    if q.starts_with("SELECT n.nspname::text, c.relname::text FROM pg_class c") {
        // Nothing that looks like Elsa's outside schema "Elsa".
        return Ok(Answer {
            columns: vec![("nspname", TEXT), ("relname", TEXT)],
            rows: Vec::new(),
        });
    }
    if q.starts_with("SELECT n.nspname::text, c.relname::text, CASE WHEN") {
        // No migration history table besides "Elsa"."__EFMigrationsHistory".
        return Ok(Answer {
            columns: vec![("nspname", TEXT), ("relname", TEXT), ("case", TEXT)],
            rows: Vec::new(),
        });
    }
    if q.starts_with("SELECT \"MigrationId\"::text, \"ProductVersion\"::text FROM \"Elsa\".\"__EFMigrationsHistory\"")
    {
        if !has_history {
            return Err(
                "42P01 relation \"Elsa.__EFMigrationsHistory\" does not exist".to_string(),
            );
        }
        let mut ids: Vec<&str> = migrations.to_vec();
        ids.sort_unstable();
        return Ok(Answer {
            columns: vec![("MigrationId", TEXT), ("ProductVersion", TEXT)],
            rows: ids
                .into_iter()
                .map(|id| vec![Val::Text(id.to_string()), Val::Text("9.0.4".to_string())])
                .collect(),
        });
    }
    Err("0A000 the simulated PostgreSQL answers only elsadoctor's own queries".to_string())
}

fn error_of(e: &str) -> Vec<u8> {
    let (code, text) = e.split_once(' ').unwrap_or(("XX000", e));
    error_response("ERROR", code, text)
}

/// The query loop after login.
async fn serve<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    peer: SocketAddr,
    config: &PostgresConfig,
) -> Io {
    let mut statements: std::collections::HashMap<String, String> = Default::default();
    // portal → (statement text, result formats)
    let mut portals: std::collections::HashMap<String, (String, Vec<i16>)> = Default::default();
    // After an error in the extended protocol everything up to Sync is skipped.
    let mut failed = false;
    let mut out: Vec<u8> = Vec::new();
    loop {
        let (tag, body) = read_message(stream).await?;
        let mut c = Cursor(&body);
        if failed && tag != b'S' && tag != b'X' {
            continue;
        }
        match tag {
            b'Q' => {
                let q = c.cstr()?;
                match answer(&q, peer, config) {
                    Ok(a) => {
                        out.extend(row_description(&a.columns));
                        out.extend(data_rows(&a, &[]));
                    }
                    Err(e) => out.extend(error_of(&e)),
                }
                out.extend(ready());
                stream.write_all(&out).await?;
                out.clear();
            }
            b'P' => {
                let name = c.cstr()?;
                let q = c.cstr()?;
                match answer(&q, peer, config) {
                    Ok(_) => {
                        statements.insert(name, q);
                        out.extend(message(b'1', &[]));
                    }
                    Err(e) => {
                        out.extend(error_of(&e));
                        failed = true;
                    }
                }
            }
            b'B' => {
                let portal = c.cstr()?;
                let statement = c.cstr()?;
                let nformats = usize::try_from(c.i16()?).unwrap_or(0);
                for _ in 0..nformats {
                    c.i16()?;
                }
                let nparams = usize::try_from(c.i16()?).unwrap_or(0);
                for _ in 0..nparams {
                    let len = c.i32()?;
                    if let Ok(n) = usize::try_from(len) {
                        c.bytes(n)?;
                    }
                }
                let nresults = usize::try_from(c.i16()?).unwrap_or(0);
                let mut formats = Vec::with_capacity(nresults);
                for _ in 0..nresults {
                    formats.push(c.i16()?);
                }
                match statements.get(&statement) {
                    Some(q) => {
                        portals.insert(portal, (q.clone(), formats));
                        out.extend(message(b'2', &[]));
                    }
                    None => {
                        out.extend(error_response(
                            "ERROR",
                            "26000",
                            &format!("prepared statement \"{statement}\" does not exist"),
                        ));
                        failed = true;
                    }
                }
            }
            b'D' => {
                let kind = c.bytes(1)?[0];
                let name = c.cstr()?;
                let q = if kind == b'S' {
                    statements.get(&name).cloned()
                } else {
                    portals.get(&name).map(|(q, _)| q.clone())
                };
                match q.map(|q| answer(&q, peer, config)) {
                    Some(Ok(a)) => {
                        if kind == b'S' {
                            out.extend(message(b't', &0i16.to_be_bytes()));
                        }
                        out.extend(row_description(&a.columns));
                    }
                    Some(Err(e)) => {
                        out.extend(error_of(&e));
                        failed = true;
                    }
                    None => {
                        out.extend(error_response("ERROR", "26000", "no such statement"));
                        failed = true;
                    }
                }
            }
            b'E' => {
                let portal = c.cstr()?;
                match portals.get(&portal) {
                    Some((q, formats)) => match answer(q, peer, config) {
                        Ok(a) => out.extend(data_rows(&a, formats)),
                        Err(e) => {
                            out.extend(error_of(&e));
                            failed = true;
                        }
                    },
                    None => {
                        out.extend(error_response("ERROR", "34000", "no such portal"));
                        failed = true;
                    }
                }
            }
            b'C' => {
                let kind = c.bytes(1)?[0];
                let name = c.cstr()?;
                if kind == b'S' {
                    statements.remove(&name);
                } else {
                    portals.remove(&name);
                }
                out.extend(message(b'3', &[]));
            }
            b'H' => {
                stream.write_all(&out).await?;
                out.clear();
            }
            b'S' => {
                failed = false;
                portals.remove("");
                out.extend(ready());
                stream.write_all(&out).await?;
                out.clear();
            }
            b'X' => return Ok(()),
            other => {
                out.extend(error_response(
                    "FATAL",
                    "08P01",
                    &format!("invalid frontend message type {}", char::from(other)),
                ));
                stream.write_all(&out).await?;
                return Ok(());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_array_is_read_back_from_the_query() {
        let q = "SELECT t FROM unnest(ARRAY['Workflows','O''Brien']::text[]) AS t";
        assert_eq!(array_literal(q), vec!["Workflows", "O'Brien"]);
    }

    #[test]
    fn an_unknown_query_is_refused_not_invented() {
        let cfg = PostgresConfig::default();
        let peer: SocketAddr = "127.0.0.1:1".parse().unwrap_or_else(|_| unreachable!());
        assert!(answer("SELECT 1", peer, &cfg).is_err());
    }
}
