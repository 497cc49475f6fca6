//! `runtime.sqlite-file`: is there an SQLite database inside the Elsa container, and what does
//! its presence mean for this flavour and version (ELSA-FACTS §1, §8)? On Server.Web up to 3.5
//! `App_Data/elsa.sqlite.db` exists only when Elsa runs on SQLite, so it proves the silent
//! fallback; elsewhere the file is created whatever the provider and proves nothing.

use super::workload::selected;
use super::{CheckImpl, Finding, not_observed};
use crate::domain::elsa::{self, Flavor};
use crate::facts::{FactKey, Facts, PodListing, Probe};
use crate::report::Evidence;

pub const SQLITE_FILE: CheckImpl = CheckImpl {
    id: "runtime.sqlite-file",
    needs: &[FactKey::Workloads, FactKey::PodFiles],
    causes: &["fallback", "unexplained", "no-shell"],
    run: sqlite_file,
};

/// The SQLite files (with their `-wal`/`-shm` companions) a listing shows.
pub fn sqlite_files(listing: &PodListing) -> Vec<&str> {
    listing
        .paths
        .iter()
        .map(String::as_str)
        .filter(|p| {
            elsa::ALL_SQLITE_PATHS.iter().any(|base| {
                *p == *base
                    || elsa::SQLITE_COMPANIONS
                        .iter()
                        .any(|c| p.strip_prefix(base) == Some(c))
            })
        })
        .collect()
}

fn sqlite_file(f: &Facts) -> Finding {
    let (w, _) = match selected(f) {
        Ok(s) => s,
        Err(finding) => return finding,
    };
    let Some(id) = elsa::identify(&w) else {
        return Finding::skip("Elsa flavour not known — see workload.flavor");
    };
    let listing = match &f.pod_files {
        Probe::Observed(l) => l,
        Probe::Failed(e) if e.reason.starts_with("no shell") => {
            return Finding::unknown(
                Some("no-shell"),
                format!(
                    "cannot look inside the Elsa container: {} (rerun with --vantage ephemeral to look from a debug container)",
                    e.reason
                ),
            );
        }
        Probe::NotAttempted(why) => {
            return Finding::skip(format!("nothing listed: {why}"));
        }
        other => return not_observed(other, "the Elsa container's files"),
    };
    let found = sqlite_files(listing);
    let source = format!(
        "exec ls in pod {} container {}",
        listing.pod, listing.container
    );
    let paths = elsa::sqlite_paths(id.flavor, id.version);
    let base = |finding: Finding| {
        finding
            .with(
                Evidence::new(
                    "SQLite files",
                    if found.is_empty() {
                        "none".to_owned()
                    } else {
                        found.join(", ")
                    },
                )
                .from(source.clone()),
            )
            .var("pod", &listing.pod)
            .var("container", &listing.container)
    };
    let version = id.version.map(|v| format!(" {v}")).unwrap_or_default();
    if let Some((path, _)) = paths
        .iter()
        .find(|(p, proves)| *proves && found.contains(p))
    {
        return base(Finding::problem(
            "fallback",
            format!(
                "{path} exists: {}{version} creates it only when it runs on SQLite, so Elsa is not using PostgreSQL — its data lives in the pod and is lost when the pod goes",
                id.flavor
            ),
        ));
    }
    if found.is_empty() {
        let looked: Vec<&str> = if paths.is_empty() {
            elsa::ALL_SQLITE_PATHS.to_vec()
        } else {
            paths.iter().map(|(p, _)| *p).collect()
        };
        return base(Finding::pass(format!(
            "no SQLite database in the container (looked for {})",
            looked.join(", ")
        )));
    }
    if paths.is_empty() {
        // A custom build: nothing says which files it creates.
        return base(Finding::warn(
            "unexplained",
            format!(
                "{} has an SQLite database ({}): a custom build may be using SQLite for some or all of its stores",
                id.image,
                found.join(", ")
            ),
        ));
    }
    let expected: Vec<&str> = paths.iter().map(|(p, _)| *p).collect();
    let unexpected: Vec<&str> = found
        .iter()
        .copied()
        .filter(|p| !expected.iter().any(|e| p.starts_with(e)))
        .collect();
    if !unexpected.is_empty() {
        return base(Finding::warn(
            "unexplained",
            format!(
                "{} is an SQLite path {}{version} does not normally use: something in this image runs on SQLite",
                unexpected.join(", "),
                id.flavor
            ),
        ));
    }
    let why = match id.flavor {
        Flavor::ServerWeb => "this version is wired to SQLite and always creates it",
        Flavor::ServerAndStudio => {
            "this flavour keeps some stores in SQLite even when PostgreSQL works"
        }
        _ => "this flavour creates it whatever the provider",
    };
    base(Finding::pass(format!(
        "{} exists, which proves nothing here: {why}",
        found.join(", ")
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::Outcome;
    use crate::checks::test_support::{deployment, with_deployments};
    use crate::facts::Failure;

    fn facts(image: &str, paths: &[&str]) -> Facts {
        let mut f = with_deployments(serde_json::json!([deployment("elsa-server", image, 1)]));
        f.pod_files = Probe::Observed(PodListing {
            pod: "elsa-server-abc".into(),
            container: "elsa-server".into(),
            paths: paths.iter().map(|p| (*p).to_owned()).collect(),
        });
        f
    }

    #[test]
    fn app_data_file_on_server_35_proves_the_fallback() {
        let f = facts(
            "elsaworkflows/elsa-server-v3-5:latest",
            &[
                "/app/Elsa.Server.Web.dll",
                "/app/App_Data/elsa.sqlite.db",
                "/app/App_Data/elsa.sqlite.db-wal",
            ],
        );
        let r = sqlite_file(&f);
        assert_eq!(r.cause, Some("fallback"), "{}", r.message);
        assert!(r.evidence[0].value.contains("-wal"));
    }

    #[test]
    fn no_file_passes_and_an_expected_file_proves_nothing() {
        let r = sqlite_file(&facts(
            "elsaworkflows/elsa-server-v3-5:latest",
            &["/app/Elsa.Server.Web.dll"],
        ));
        assert_eq!(r.outcome, Outcome::Pass, "{}", r.message);
        let r = sqlite_file(&facts(
            "elsaworkflows/elsa-server-and-studio-v3-5:latest",
            &["/app/elsa.sqlite.db"],
        ));
        assert_eq!(r.outcome, Outcome::Pass, "{}", r.message);
        assert!(r.message.contains("proves nothing"));
    }

    #[test]
    fn an_unexpected_path_warns() {
        let r = sqlite_file(&facts(
            "elsaworkflows/elsa-server-v3-5:latest",
            &["/app/elsa_workflows.db"],
        ));
        assert_eq!(r.cause, Some("unexplained"), "{}", r.message);
    }

    #[test]
    fn no_shell_is_unknown_with_the_ephemeral_hint() {
        let mut f = facts("elsaworkflows/elsa-server-v3-5:latest", &[]);
        f.pod_files = Probe::Failed(Failure {
            code: None,
            reason: "no shell: exec: \"sh\": executable file not found in $PATH".into(),
        });
        let r = sqlite_file(&f);
        assert_eq!(r.outcome, Outcome::Unknown);
        assert_eq!(r.cause, Some("no-shell"));
        assert!(r.message.contains("--vantage ephemeral"));
    }
}
