//! Known error lines in Elsa's logs, and the check that explains each (ELSA-FACTS §5).
//!
//! Elsa logs no "using provider X" line, and EF Core's informational messages are hidden at the
//! default log levels, so what the logs reveal comes from exceptions and a few startup messages:
//! Npgsql/PostgreSQL errors with their SQLSTATE, `SqliteException` (Elsa is on SQLite), .NET
//! socket errors, the file-lock directory error, and the 3.8 startup validations. Each
//! [`Signature`] names the family it belongs to (a cause of `runtime.logs`, with its own fix in
//! the catalogue) and the check that examines the underlying problem.
//!
//! Matching is per line and plain substrings: a signature matches a line when every substring of
//! one of its alternatives occurs in it (case-sensitive; the texts are fixed by .NET, Npgsql
//! and Elsa). How to add one: append a [`Signature`] to [`SIGNATURES`] (order is priority: the
//! first family that matches becomes the finding's cause), give a new family a
//! `[causes.<family>]` table in `checks/051-runtime.logs.toml` and list it in
//! `checks::runtime::LOG_CAUSES`.

/// One known log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Signature {
    /// Stable id, shown in evidence.
    pub id: &'static str,
    /// Alternatives; a line matches when it contains every substring of one of them.
    pub any_of: &'static [&'static [&'static str]],
    /// The cause of `runtime.logs` this signature reports (its family).
    pub family: &'static str,
    /// The check that looks at the underlying problem.
    pub check: &'static str,
    /// What the line means, in one line.
    pub meaning: &'static str,
    /// Only a warning by nature (Elsa keeps running).
    pub warning_only: bool,
}

impl Signature {
    /// Whether `line` is an instance of this signature.
    pub fn matches(&self, line: &str) -> bool {
        self.any_of
            .iter()
            .any(|all| all.iter().all(|needle| line.contains(needle)))
    }
}

/// The table, in priority order: root causes before their consequences.
pub static SIGNATURES: &[Signature] = &[
    Signature {
        id: "sqlite-exception",
        any_of: &[&["SqliteException"], &["SQLite Error"]],
        family: "sqlite",
        check: "config.provider",
        meaning: "Elsa is running on SQLite, not PostgreSQL (Microsoft.Data.Sqlite error): see also runtime.sqlite-file",
        warning_only: false,
    },
    Signature {
        id: "unknown-provider",
        any_of: &[&["Requested value '", "' was not found"]],
        family: "bad-provider",
        check: "config.provider",
        meaning: "DatabaseProvider holds a value Elsa 3.3–3.5 does not know, so the server stops at startup",
        warning_only: false,
    },
    Signature {
        id: "signing-key-default",
        any_of: &[&["SigningKey uses a known public default value"]],
        family: "signing-key",
        check: "config.signing-key",
        meaning: "Elsa 3.8 refuses to start: the signing key is the published sample value",
        warning_only: false,
    },
    Signature {
        id: "signing-key-missing",
        any_of: &[&["SigningKey is required"]],
        family: "signing-key",
        check: "config.signing-key",
        meaning: "Elsa 3.8 refuses to start: the signing key is empty",
        warning_only: false,
    },
    Signature {
        id: "signing-key-invalid",
        any_of: &[
            &["SigningKey must not contain leading or trailing whitespace"],
            &["SigningKey contains non-printable or non-ASCII"],
            &["SigningKey must be at least 32"],
        ],
        family: "signing-key",
        check: "config.signing-key",
        meaning: "Elsa 3.8 refuses to start: the signing key has whitespace at an end, non-ASCII characters, or fewer than 32 characters (checked in every environment)",
        warning_only: false,
    },
    Signature {
        // CShells 0.0.14 and 0.0.24+ (elsa-audit.md row 16); only PostgreSql* features matter
        // (stock 3.8 may warn about others).
        id: "shell-feature-missing",
        any_of: &[
            &["is missing feature(s)", "PostgreSql"],
            &["not available in the runtime feature catalog", "PostgreSql"],
        ],
        family: "modular-feature",
        check: "config.provider",
        meaning: "the Modular Server was asked for a PostgreSQL shell feature its image does not contain, and started without it",
        warning_only: false,
    },
    Signature {
        id: "shell-connection-string",
        any_of: &[&["Connection string not configured for"]],
        family: "modular-feature",
        check: "config.provider",
        meaning: "a Modular Server persistence feature is enabled without a ConnectionString",
        warning_only: false,
    },
    Signature {
        id: "name-resolution",
        any_of: &[
            &["Name or service not known"],
            &["SocketException", "Resource temporarily unavailable"],
            &["No such host is known"],
        ],
        family: "dns",
        check: "network.dns",
        meaning: "a host name (the database host, when Npgsql logs it) does not resolve from the pod",
        warning_only: false,
    },
    Signature {
        id: "connection-refused",
        any_of: &[&["Failed to connect to"], &["Npgsql", "Connection refused"]],
        family: "db-unreachable",
        check: "network.tcp",
        meaning: "Npgsql could not open a TCP connection to the database (refused or unreachable)",
        warning_only: false,
    },
    Signature {
        id: "connect-timeout",
        any_of: &[&["Timeout during connecting"]],
        family: "db-unreachable",
        check: "network.tcp",
        meaning: "Npgsql gave up connecting to the database: nothing answered in time",
        warning_only: false,
    },
    Signature {
        id: "pg-28P01",
        any_of: &[
            &["28P01: "],
            &["SqlState: 28P01"],
            &["password authentication failed for user"],
        ],
        family: "db-auth",
        check: "database.login",
        meaning: "PostgreSQL rejected the user name or password (SQLSTATE 28P01)",
        warning_only: false,
    },
    Signature {
        id: "pg-3D000",
        any_of: &[&["3D000: "], &["SqlState: 3D000"]],
        family: "db-missing",
        check: "database.login",
        meaning: "the database named in the connection string does not exist (SQLSTATE 3D000)",
        warning_only: false,
    },
    Signature {
        id: "pg-42501",
        any_of: &[&["42501: "], &["SqlState: 42501"]],
        family: "db-permission",
        check: "database.privileges",
        meaning: "the database user lacks a privilege Elsa needs (SQLSTATE 42501)",
        warning_only: false,
    },
    Signature {
        id: "pg-42P01",
        any_of: &[&["42P01: "], &["SqlState: 42P01"]],
        family: "db-tables",
        check: "database.tables",
        meaning: "a table Elsa queries does not exist (SQLSTATE 42P01): migrations not run, or another database or schema; see also database.migrations",
        warning_only: false,
    },
    Signature {
        id: "pg-42703",
        any_of: &[&["42703: "], &["SqlState: 42703"]],
        family: "db-schema-mismatch",
        check: "database.migrations",
        meaning: "a column Elsa expects does not exist (SQLSTATE 42703): the image is newer than the database schema",
        warning_only: false,
    },
    Signature {
        id: "lock-directory",
        any_of: &[
            &["Failed to ensure that lock file directory"],
            &["App_Data", "Read-only file system"],
            &["App_Data", "Access to the path"],
        ],
        family: "lock-dir",
        check: "production.locking",
        meaning: "Elsa cannot create its file-lock directory App_Data/locks: the working directory /app is read-only or not writable for the user",
        warning_only: false,
    },
    Signature {
        id: "store-unreachable",
        any_of: &[&["Elsa workflow store", "is not reachable"]],
        family: "db-unreachable",
        check: "network.tcp",
        meaning: "Elsa 3.8's readiness check cannot reach a workflow store (its database)",
        warning_only: false,
    },
    Signature {
        id: "lock-unreachable",
        any_of: &[&["Elsa distributed lock provider is not reachable"]],
        family: "lock-unreachable",
        check: "production.locking",
        meaning: "Elsa 3.8's readiness check cannot reach the distributed lock provider",
        warning_only: false,
    },
    Signature {
        id: "local-lock-provider",
        any_of: &[&["Distributed workflow runtime is using local-only lock provider"]],
        family: "local-lock",
        check: "production.locking",
        meaning: "Elsa 3.8 warns that the distributed runtime uses a lock that does not reach other pods",
        warning_only: true,
    },
];

/// Every family, in priority order, without repeats.
pub fn families() -> Vec<&'static str> {
    let mut out: Vec<&'static str> = Vec::new();
    for s in SIGNATURES {
        if !out.contains(&s.family) {
            out.push(s.family);
        }
    }
    out
}

/// The signatures one line matches.
pub fn matching(line: &str) -> impl Iterator<Item = &'static Signature> + '_ {
    SIGNATURES.iter().filter(move |s| s.matches(line))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(line: &str) -> Vec<&'static str> {
        matching(line).map(|s| s.id).collect()
    }

    #[test]
    fn the_audits_row_16_messages_match() {
        let cases = [
            (
                "Shell 'Default' is missing feature(s) 'PostgreSqlWorkflowPersistence' from the runtime feature catalog",
                "shell-feature-missing",
            ),
            (
                "Shell Default requested 1 feature(s) that are not available in the runtime feature catalog: PostgreSqlWorkflowPersistence",
                "shell-feature-missing",
            ),
            (
                "Connection string not configured for PostgreSqlWorkflowDefinitionPersistence",
                "shell-connection-string",
            ),
            (
                "SigningKey must not contain leading or trailing whitespace.",
                "signing-key-invalid",
            ),
            (
                "SigningKey must be at least 32 ASCII characters long.",
                "signing-key-invalid",
            ),
            (
                "Elsa workflow store workflow-definitions is not reachable.",
                "store-unreachable",
            ),
            (
                "Elsa distributed lock provider is not reachable.",
                "lock-unreachable",
            ),
        ];
        for (line, id) in cases {
            assert_eq!(ids(line), vec![id], "{line}");
        }
        // Stock 3.8 may warn about non-PostgreSQL features: not ours to report.
        assert!(ids("requested 1 feature(s) that are not available in the runtime feature catalog: AIPersistence").is_empty());
    }

    #[test]
    fn the_messages_of_elsa_facts_section_5_match_their_signature() {
        let cases = [
            (
                "Npgsql.PostgresException (0x80004005): 28P01: password authentication failed for user \"elsa\"",
                "pg-28P01",
            ),
            (
                "Npgsql.PostgresException (0x80004005): 3D000: database \"elsa\" does not exist",
                "pg-3D000",
            ),
            (
                "Npgsql.PostgresException (0x80004005): 42P01: relation \"Elsa.WorkflowDefinitions\" does not exist",
                "pg-42P01",
            ),
            (
                "Npgsql.PostgresException (0x80004005): 42703: column w.OriginalSource does not exist",
                "pg-42703",
            ),
            (
                "Npgsql.PostgresException (0x80004005): 42501: permission denied for schema Elsa",
                "pg-42501",
            ),
            (
                "Npgsql.NpgsqlException (0x80004005): Failed to connect to 10.96.4.20:5432",
                "connection-refused",
            ),
            (
                "System.Net.Sockets.SocketException (00000001, 11): Resource temporarily unavailable",
                "name-resolution",
            ),
            (
                "System.Net.Sockets.SocketException (00000005, 0xFFFDFFFF): Name or service not known",
                "name-resolution",
            ),
            (
                "Microsoft.Data.Sqlite.SqliteException (0x80004005): SQLite Error 1: 'no such table: WorkflowDefinitions'.",
                "sqlite-exception",
            ),
            (
                "System.Exception: Failed to ensure that lock file directory /usr/app/App_Data/locks exists",
                "lock-directory",
            ),
            (
                "System.IO.IOException: Read-only file system : '/app/App_Data'",
                "lock-directory",
            ),
            (
                "Microsoft.Extensions.Options.OptionsValidationException: SigningKey uses a known public default value. Configure a unique key.",
                "signing-key-default",
            ),
            (
                "Microsoft.Extensions.Options.OptionsValidationException: SigningKey is required outside Development.",
                "signing-key-missing",
            ),
            (
                "warn: Distributed workflow runtime is using local-only lock provider FileDistributedSynchronizationProvider",
                "local-lock-provider",
            ),
            (
                "Unhandled exception. System.ArgumentException: Requested value 'Postgres' was not found.",
                "unknown-provider",
            ),
            (
                "Npgsql.NpgsqlException (0x80004005): Exception while connecting ---> System.TimeoutException: Timeout during connecting",
                "connect-timeout",
            ),
        ];
        for (line, id) in cases {
            assert_eq!(ids(line), vec![id], "{line}");
        }
    }

    #[test]
    fn ordinary_lines_match_nothing() {
        for line in [
            "info: Microsoft.Hosting.Lifetime[14]",
            "      Now listening on: http://[::]:8080",
            "      Application started. Press Ctrl+C to shut down.",
            "      Hosting environment: Production",
            "      Content root path: /app",
            "info: Microsoft.EntityFrameworkCore.Migrations[20405]",
            "      No migrations were applied. The database is already up to date.",
            // A number that happens to look like a SQLSTATE is not one.
            "info: request served on port 42703 in 42501 microseconds",
            // An OTLP exporter that cannot reach its collector is not the database.
            "Grpc.Core.RpcException: Status(StatusCode=\"Unavailable\", DebugException=\"System.Net.Sockets.SocketException (111): Connection refused\")",
        ] {
            assert!(ids(line).is_empty(), "{line}: {:?}", ids(line));
        }
    }

    #[test]
    fn families_keep_table_order_and_every_signature_names_a_check() {
        let f = families();
        assert_eq!(f.first(), Some(&"sqlite"));
        assert_eq!(f.last(), Some(&"local-lock"));
        let mut seen = std::collections::BTreeSet::new();
        for s in SIGNATURES {
            assert!(seen.insert(s.id), "duplicate signature {}", s.id);
            assert!(s.check.contains('.'), "{}: {}", s.id, s.check);
            assert!(!s.any_of.is_empty() && s.any_of.iter().all(|a| !a.is_empty()));
        }
    }
}
