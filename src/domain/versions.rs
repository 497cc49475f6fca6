//! What is known about which Elsa a workload runs (DESIGN.md §3 "Versions"): each source of
//! knowledge — the user (`--elsa-version`), the image's contents (the exec listing: migration ids
//! in the provider assemblies, the runtimeconfig's tfm, deps.json, `/entrypoint.sh`), the
//! database's migration history, the image tag and the image name — yields [`Clue`]s, each a
//! [`Constraint`] on the (flavour, version) pair with the evidence it came from.
//!
//! The candidates are the Elsa releases that satisfy every clue; a version-dependent check
//! concludes when every candidate gives the same answer. Pure data and functions: no IO.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::elsa::{ElsaVersion, Flavor};

/// Where a clue comes from, strongest first (the order in which disagreements are resolved).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ClueSource {
    /// `--elsa-version` / `--elsa-flavor`: the user stated it.
    User,
    /// What the exec listing found inside the Elsa container.
    ImageContents,
    /// `"Elsa"."__EFMigrationsHistory"`: the newest version that migrated the database.
    Database,
    /// The image tag (`3.5.3`, `v3.8.0-rc2`).
    ImageTag,
    /// The image repository's name (`elsa-server-v3-5`) and its publishing history.
    ImageName,
}

impl fmt::Display for ClueSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ClueSource::User => "stated by the user",
            ClueSource::ImageContents => "image contents",
            ClueSource::Database => "database migration history",
            ClueSource::ImageTag => "image tag",
            ClueSource::ImageName => "image name",
        })
    }
}

/// What a clue says about the (flavour, version) pair.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum Constraint {
    /// The host application is this flavour.
    Host { flavor: Flavor },
    /// Exactly this version (a patch when known; `patch: None` means any patch of the minor).
    Exact { version: ElsaVersion },
    /// A version from `from` to `to`, both inclusive (`patch: None` in `from` means the minor's
    /// first patch, in `to` its last).
    Between { from: ElsaVersion, to: ElsaVersion },
    /// At least this version (the database was migrated by it, so the image is not older —
    /// or the image is older and the database is ahead; see `database.migrations`).
    AtLeast { version: ElsaVersion },
}

/// One piece of knowledge about the version, with the evidence it came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Clue {
    pub source: ClueSource,
    /// What was seen, for the evidence: `Runtime migration 20250530104853_V3_5 in
    /// /app/Elsa.EntityFrameworkCore.Sqlite.dll`.
    pub detail: String,
    pub constraint: Constraint,
}
