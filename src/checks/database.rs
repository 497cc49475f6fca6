//! Database checks, from the one session `gather::db` made with Elsa's own connection string:
//! the login (each SQLSTATE to its fix), Elsa's tables in schema "Elsa", the EF Core migration
//! history against this version, and the app user's privileges. (Pool sizing, which also runs
//! without a session, is `production::POOL`.)

use std::collections::BTreeSet;

use super::{CheckImpl, Finding, not_observed};
use crate::domain::elsa::{self, ElsaVersion};
use crate::facts::{DbErrorKind, DbFacts, DbObservation, FactKey, Facts, Probe};
use crate::report::Evidence;

const NEEDS: &[FactKey] = &[
    FactKey::Workloads,
    FactKey::ConfigSources,
    FactKey::Services,
    FactKey::PodFiles,
    FactKey::Database,
];

pub const LOGIN: CheckImpl = CheckImpl {
    id: "database.login",
    needs: NEEDS,
    causes: &[
        "wrong-password",
        "unexpanded-password",
        "no-access",
        "database-missing",
        "too-many-connections",
        "starting-up",
        "tls-required",
        "tls-unavailable",
        "refused",
        "timeout",
        "external-host",
        "kubelet-unreachable",
        "probe-pod-refused",
        "probe-pod-unschedulable",
        "probe-pod-not-scheduled",
        "probe-pod-image-pull",
        "probe-pod-config-error",
    ],
    run: login,
};
pub const TABLES: CheckImpl = CheckImpl {
    id: "database.tables",
    needs: NEEDS,
    causes: &["schema-missing", "wrong-schema", "tables-missing"],
    run: tables,
};
/// `database.migrations` also names the migration step (`checks::migration`).
const MIGRATION_NEEDS: &[FactKey] = &[
    FactKey::Workloads,
    FactKey::ConfigSources,
    FactKey::Services,
    FactKey::PodFiles,
    FactKey::Database,
    FactKey::Migrations,
];

pub const MIGRATIONS: CheckImpl = CheckImpl {
    id: "database.migrations",
    needs: MIGRATION_NEEDS,
    causes: &["pending", "ahead", "history-missing", "history-elsewhere"],
    run: migrations,
};
pub const PRIVILEGES: CheckImpl = CheckImpl {
    id: "database.privileges",
    needs: NEEDS,
    causes: &["no-table-rights", "no-create"],
    run: privileges,
};
/// Evidence about what was reached, and the template values for the fix.
fn with_target(f: &Facts, finding: Finding) -> Finding {
    let Some(t) = &f.db_target else {
        return finding;
    };
    let mut finding = finding
        .with(
            Evidence::new(
                "database",
                format!(
                    "{}:{} database {} as {} (SSL Mode {})",
                    t.host,
                    t.port,
                    t.database.as_deref().unwrap_or("(default)"),
                    t.user.as_deref().unwrap_or("(none)"),
                    t.ssl_mode
                ),
            )
            .from("effective connection string"),
        )
        .with(
            Evidence::new(
                "vantage",
                match &t.via {
                    Some(via) => format!("{} through {via}", t.vantage),
                    None => t.vantage.clone(),
                },
            )
            .from("--vantage"),
        )
        .var("db_host", &t.host)
        .var("db_port", t.port.to_string());
    if let Some(d) = &t.database {
        finding = finding.var("database", d);
    }
    if let Some(u) = &t.user {
        finding = finding.var("db_user", u);
    }
    if let Some((svc, _)) = crate::domain::service_host::service_of(&t.host, &f.scope.namespace) {
        finding = finding.var("service", svc);
    }
    finding
}

fn login(f: &Facts) -> Finding {
    let found = match &f.database {
        Probe::NotAttempted(why) if why.contains("is not a Service of this cluster") => {
            Finding::unknown(Some("external-host"), why.clone())
        }
        Probe::NotAttempted(why) => Finding::skip(format!("no login attempted: {why}")),
        Probe::Observed(DbObservation::Connected(d)) => {
            let found = Finding::pass(format!(
                "logged in as {} to database {} ({})",
                d.current_user,
                d.database,
                d.server_version
                    .split(" on ")
                    .next()
                    .unwrap_or(&d.server_version)
            ));
            // Through a port-forward the session arrives on the database pod's loopback, which
            // pg_hba may trust without a password: then the password was not really tested.
            match d.client_addr.as_deref() {
                Some(a @ ("127.0.0.1" | "::1")) => found.with(
                    Evidence::new(
                        "note",
                        format!("the server saw this session come from {a}; if its pg_hba trusts loopback, the password was not verified — only a login from the app's pod proves it"),
                    )
                    .from("inet_client_addr()"),
                ),
                _ => found,
            }
        }
        Probe::Observed(DbObservation::Refused(e)) => {
            let reference = f
                .db_target
                .as_ref()
                .is_some_and(|t| t.password_is_reference);
            let msg = e.message.clone();
            match (e.kind, e.sqlstate.as_deref()) {
                (_, Some("28P01")) if reference => Finding::problem(
                    "unexpanded-password",
                    format!(
                        "28P01: the password sent was the literal text $(…), not a password — see config.env-expansion ({msg})"
                    ),
                ),
                (_, Some("28P01")) => Finding::problem("wrong-password", format!("28P01: {msg}")),
                (_, Some("28000")) if msg.contains("no encryption") => Finding::problem(
                    "tls-required",
                    format!(
                        "28000: the server accepts this login only over TLS, and SSL Mode sent none ({msg})"
                    ),
                ),
                (_, Some("28000")) => Finding::problem("no-access", format!("28000: {msg}")),
                (_, Some("3D000")) => Finding::problem("database-missing", format!("3D000: {msg}")),
                (_, Some("53300")) => {
                    Finding::problem("too-many-connections", format!("53300: {msg}"))
                }
                (_, Some("57P03")) => Finding::problem("starting-up", format!("57P03: {msg}")),
                (_, Some(code)) => Finding::problem("no-access", format!("{code}: {msg}")),
                (DbErrorKind::Tls, _) => {
                    Finding::problem("tls-unavailable", format!("TLS failed: {msg}"))
                }
                (DbErrorKind::Refused, _) => {
                    Finding::problem("refused", format!("connection refused: {msg}"))
                }
                (DbErrorKind::Timeout, _) => Finding::problem("timeout", msg),
                _ => Finding::unknown(None, format!("the login failed: {msg}")),
            }
        }
        other => match (
            super::probe_pod::why(other),
            super::kubelet_unreachable(other),
        ) {
            (Some(why), _) => super::probe_pod::finding(why, "The login from the debug pod"),
            // The login goes through a port-forward, which the API server opens via the kubelet.
            (None, Some(reason)) => {
                super::kubelet_finding(reason, "the database through a port-forward", false)
            }
            (None, None) => not_observed(other, "the database"),
        },
    };
    with_target(f, super::blame_database(f, found))
}

/// The session's facts, or the finding that says the login check explains why there are none.
fn session(f: &Facts) -> Result<&DbFacts, Finding> {
    match &f.database {
        Probe::Observed(DbObservation::Connected(d)) => Ok(d),
        _ => Err(Finding::skip("no database session — see database.login")),
    }
}

fn version(f: &Facts) -> Option<ElsaVersion> {
    f.effective().ok()?.identity.as_ref()?.version
}

fn tables(f: &Facts) -> Finding {
    let d = match session(f) {
        Ok(d) => d,
        Err(finding) => return finding,
    };
    let v = version(f);
    // Unknown version: hold it to the tables every release has.
    let expected: Vec<&str> = match v {
        Some(v) => elsa::expected_tables(v).map(|t| t.name).collect(),
        None => elsa::expected_tables(ElsaVersion::new(3, 0))
            .map(|t| t.name)
            .collect(),
    };
    let elsewhere = d
        .elsewhere
        .iter()
        .map(|t| Evidence::new("found elsewhere", t).from("information_schema.tables"));
    if !d.schema_exists {
        if !d.elsewhere.is_empty() {
            return Finding::problem(
                "wrong-schema",
                "there is no schema \"Elsa\", but Elsa-like tables exist in another schema: they are not the ones Elsa uses",
            )
            .with_all(elsewhere);
        }
        return Finding::problem(
            "schema-missing",
            "schema \"Elsa\" does not exist: Elsa's migrations have never run against this database",
        );
    }
    let missing: Vec<&str> = expected
        .iter()
        .copied()
        .filter(|name| !d.tables.iter().any(|t| t.name == *name && t.exists))
        .collect();
    if !missing.is_empty() {
        return Finding::problem(
            "tables-missing",
            format!(
                "{} of {} expected tables are missing from \"Elsa\": {}",
                missing.len(),
                expected.len(),
                missing.join(", ")
            ),
        )
        .with_all(elsewhere);
    }
    let of = v.map_or("every release".to_owned(), |v| format!("Elsa {v}"));
    Finding::pass(format!(
        "all {} tables of {of} exist in schema \"Elsa\"",
        expected.len()
    ))
}

fn migrations(f: &Facts) -> Finding {
    let d = match session(f) {
        Ok(d) => d,
        Err(finding) => return finding,
    };
    if d.history_exists && d.history.is_none() {
        return Finding::unknown(
            None,
            format!(
                "{} may not read \"Elsa\".\"__EFMigrationsHistory\" — see database.privileges",
                d.current_user
            ),
        );
    }
    let Some(history) = &d.history else {
        if let Some(finding) = history_elsewhere(d) {
            return finding;
        }
        let any_table = d.tables.iter().any(|t| t.exists);
        return if any_table {
            Finding::problem(
                "history-missing",
                "Elsa's tables exist but \"Elsa\".\"__EFMigrationsHistory\" does not: EF will try to create the tables again",
            )
        } else {
            Finding::skip("no Elsa tables and no history — see database.tables")
        };
    };
    // What the history says about the version that migrated it (elsa-audit §7 row H).
    let history_says: Vec<Evidence> =
        crate::domain::image_contents::database_clues(&d.history_rows)
            .into_iter()
            .map(|c| Evidence::new(c.source.to_string(), c.detail))
            .collect();
    let Some(v) = version(f) else {
        return Finding::skip("the Elsa version is not known — see workload.flavor")
            .with(Evidence::new(
                "applied",
                format!("{} migration(s)", history.len()),
            ))
            .with_all(history_says);
    };
    let applied: BTreeSet<&str> = history.iter().map(String::as_str).collect();
    let pending: Vec<&str> = elsa::expected_migrations(v)
        .map(|m| m.id)
        .filter(|id| !applied.contains(id))
        .collect();
    let ahead: Vec<&str> = elsa::MIGRATIONS
        .iter()
        .filter(|m| m.since > v.mm() && applied.contains(m.id))
        .map(|m| m.id)
        .collect();
    let latest = |ctx: &str| {
        history
            .iter()
            .filter(|id| {
                elsa::MIGRATIONS
                    .iter()
                    .any(|m| m.context == ctx && m.id == id.as_str())
            })
            .max()
            .cloned()
            .unwrap_or_else(|| "(none)".into())
    };
    let mut ev = vec![
        Evidence::new("latest Management", latest("Management"))
            .from("\"Elsa\".\"__EFMigrationsHistory\""),
        Evidence::new("latest Runtime", latest("Runtime"))
            .from("\"Elsa\".\"__EFMigrationsHistory\""),
    ];
    ev.extend(history_says);
    if !pending.is_empty() {
        let step = f
            .effective()
            .ok()
            .map(|e| super::migration::pending_note(f, e, v))
            .unwrap_or_default();
        return Finding::problem(
            "pending",
            format!(
                "{} migration(s) of Elsa {v} are not applied: {}{step}",
                pending.len(),
                pending.join(", ")
            ),
        )
        .with_all(ev);
    }
    if !ahead.is_empty() {
        return Finding::problem(
            "ahead",
            format!(
                "the database has migrations newer than Elsa {v}: {}",
                ahead.join(", ")
            ),
        )
        .with_all(ev);
    }
    Finding::pass(format!(
        "every Management and Runtime migration of Elsa {v} is applied"
    ))
    .with_all(ev)
}

/// The Quartz context's only migration, which lands in the default schema's history table
/// (elsa-audit §2): a `public."__EFMigrationsHistory"` holding just it is normal.
const QUARTZ_MIGRATION: &str = "20231029150749_AddQuartz";

/// `"Elsa"."__EFMigrationsHistory"` is absent, but another history table holds Elsa-looking
/// migrations (the guide's `__EFMigrationsHistory_Management`/`_Runtime`, a lower-case schema
/// `elsa`, `public`): Elsa never recorded its own migrations where it looks (ELSA-FACTS §6).
fn history_elsewhere(d: &DbFacts) -> Option<Finding> {
    let holding: Vec<&crate::facts::OtherHistory> = d
        .other_histories
        .iter()
        .filter(|h| {
            h.ids
                .as_ref()
                .is_some_and(|ids| ids.iter().any(|id| id != QUARTZ_MIGRATION))
        })
        .collect();
    if holding.is_empty() {
        return None;
    }
    let name = |h: &crate::facts::OtherHistory| format!("{}.\"{}\"", h.schema, h.table);
    let evidence = d.other_histories.iter().map(|h| {
        let value = match &h.ids {
            Some(ids) if ids.is_empty() => "no rows".to_owned(),
            Some(ids) => format!(
                "{} migration(s), latest {}",
                ids.len(),
                ids.last().map(String::as_str).unwrap_or_default()
            ),
            None => format!("{} may not read it", d.current_user),
        };
        Evidence::new(name(h), value).from("pg_class")
    });
    let rows: usize = holding
        .iter()
        .map(|h| h.ids.as_ref().map_or(0, Vec::len))
        .sum();
    Some(
        Finding::problem(
            "history-elsewhere",
            format!(
                "\"Elsa\".\"__EFMigrationsHistory\" does not exist, but {rows} migration(s) are recorded in {}: Elsa reads and writes only \"Elsa\".\"__EFMigrationsHistory\" (its tables live in schema \"Elsa\"), so these are not Elsa's own migrations and Elsa's have not run here",
                holding.iter().map(|h| name(h)).collect::<Vec<_>>().join(", ")
            ),
        )
        .with_all(evidence),
    )
}

fn privileges(f: &Facts) -> Finding {
    let d = match session(f) {
        Ok(d) => d,
        Err(finding) => return finding,
    };
    let lacking: Vec<Evidence> = d
        .tables
        .iter()
        .filter(|t| t.exists && !(t.select && t.insert && t.update && t.delete))
        .map(|t| {
            let missing: Vec<&str> = [
                ("SELECT", t.select),
                ("INSERT", t.insert),
                ("UPDATE", t.update),
                ("DELETE", t.delete),
            ]
            .into_iter()
            .filter(|(_, has)| !has)
            .map(|(n, _)| n)
            .collect();
            Evidence::new(
                format!("\"Elsa\".\"{}\"", t.name),
                format!("missing {}", missing.join(", ")),
            )
            .from("has_table_privilege")
        })
        .collect();
    if !lacking.is_empty() {
        return Finding::problem(
            "no-table-rights",
            format!(
                "{} cannot read and write {} of Elsa's tables",
                d.current_user,
                lacking.len()
            ),
        )
        .with_all(lacking);
    }
    if !d.schema_exists && !d.can_create_in_database {
        return Finding::problem(
            "no-create",
            format!(
                "schema \"Elsa\" is missing and {} may not CREATE in database {}: migrations cannot create it",
                d.current_user, d.database
            ),
        );
    }
    let pending = version(f).is_some_and(|v| {
        let applied: BTreeSet<&str> = d.history.iter().flatten().map(String::as_str).collect();
        elsa::expected_migrations(v).any(|m| !applied.contains(m.id))
    });
    if d.schema_exists && !d.can_create_in_schema && pending {
        return Finding::problem(
            "no-create",
            format!(
                "migrations are pending and {} may not CREATE in schema \"Elsa\"",
                d.current_user
            ),
        );
    }
    Finding::pass(format!(
        "{} can read and write Elsa's tables",
        d.current_user
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::Outcome;
    use crate::checks::test_support::empty;
    use crate::facts::{DbError, DbTarget};

    fn refused(kind: DbErrorKind, sqlstate: Option<&str>, message: &str, reference: bool) -> Facts {
        let mut f = empty();
        f.db_target = Some(DbTarget {
            host: "postgres".into(),
            port: 5432,
            password_is_reference: reference,
            ..Default::default()
        });
        f.database = Probe::Observed(DbObservation::Refused(DbError {
            kind,
            sqlstate: sqlstate.map(str::to_owned),
            message: message.into(),
        }));
        f
    }

    #[test]
    fn each_sqlstate_and_transport_failure_has_its_cause() {
        let cases = [
            (
                DbErrorKind::Server,
                Some("28P01"),
                "password authentication failed",
                false,
                "wrong-password",
            ),
            (
                DbErrorKind::Server,
                Some("28P01"),
                "password authentication failed",
                true,
                "unexpanded-password",
            ),
            (
                DbErrorKind::Server,
                Some("28000"),
                "no pg_hba.conf entry for host \"10.0.0.1\", user \"elsa\", database \"elsa\", no encryption",
                false,
                "tls-required",
            ),
            (
                DbErrorKind::Server,
                Some("28000"),
                "no pg_hba.conf entry for host \"10.0.0.1\", user \"elsa\", database \"elsa\", SSL encryption",
                false,
                "no-access",
            ),
            (
                DbErrorKind::Server,
                Some("3D000"),
                "database \"elsa\" does not exist",
                false,
                "database-missing",
            ),
            (
                DbErrorKind::Server,
                Some("53300"),
                "sorry, too many clients already",
                false,
                "too-many-connections",
            ),
            (
                DbErrorKind::Server,
                Some("57P03"),
                "the database system is starting up",
                false,
                "starting-up",
            ),
            (
                DbErrorKind::Tls,
                None,
                "server does not support TLS",
                false,
                "tls-unavailable",
            ),
            (
                DbErrorKind::Refused,
                None,
                "connection refused",
                false,
                "refused",
            ),
            (
                DbErrorKind::Timeout,
                None,
                "no answer within --timeout 5s",
                false,
                "timeout",
            ),
        ];
        for (kind, code, msg, reference, cause) in cases {
            let found = login(&refused(kind, code, msg, reference));
            assert_eq!(
                (found.outcome, found.cause),
                (Outcome::Problem, Some(cause)),
                "{code:?} {msg}"
            );
            assert_eq!(
                found.vars.0.get("db_host").map(String::as_str),
                Some("postgres")
            );
        }
    }

    #[test]
    fn no_plan_skips_and_an_external_host_is_unknown() {
        let mut f = empty();
        f.database = Probe::NotAttempted("Elsa does not use PostgreSQL here".into());
        assert_eq!(login(&f).outcome, Outcome::Skip);
        f.database =
            Probe::NotAttempted("db.example.com is not a Service of this cluster: …".into());
        let found = login(&f);
        assert_eq!(
            (found.outcome, found.cause),
            (Outcome::Unknown, Some("external-host"))
        );
        f.database = Probe::Forbidden {
            verb: "get".into(),
            resource: "pods/portforward".into(),
        };
        let found = login(&f);
        assert_eq!(found.outcome, Outcome::Unknown);
        assert!(
            found.message.contains("get pods/portforward"),
            "{}",
            found.message
        );
    }
}
