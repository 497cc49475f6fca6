//! What the inside of an Elsa container says about its version (elsa-audit §7), and what the
//! database's migration history says (§7 row H): the read-only exec's extra sections (migration
//! ids grepped from the provider assemblies, the runtimeconfig's tfm, the package versions of
//! deps.json) parsed into [`ImageContents`], and both sources turned into [`Clue`]s.
//!
//! Official images are built from source, so their Elsa assemblies say `1.0.0` (§7): the
//! version comes from the migration ids (the minor), the tfm (the .NET band) and the third-party
//! package versions (the patch range, §7 rows D and E). A host built from the NuGet packages
//! names its Elsa version in deps.json (row A), which then wins. Pure: no IO.

use serde::{Deserialize, Serialize};

use super::elsa::{ElsaVersion, Flavor, MIGRATIONS};
use super::versions::{Clue, ClueSource, Constraint};

/// The provider assemblies whose migration ids are read (≤3.5 and 3.6+ names).
pub const PROVIDER_ASSEMBLIES: &[&str] = &[
    "/app/Elsa.EntityFrameworkCore.Sqlite.dll",
    "/app/Elsa.EntityFrameworkCore.PostgreSql.dll",
    "/app/Elsa.Persistence.EFCore.Sqlite.dll",
    "/app/Elsa.Persistence.EFCore.PostgreSql.dll",
];

/// The bound on each section's output (`head -c`); the exec keeps 64 KiB of stdout in all.
pub const SECTION_CAP: usize = 8 * 1024;

const MIGRATIONS_END: &str = "elsadoctor:migrations";
const TFM_END: &str = "elsadoctor:tfm";
const DEPS_END: &str = "elsadoctor:deps";

/// The shell text appended to the `ls` of the listing: three binary-safe greps, each bounded,
/// each followed by its end marker. Missing files are expected (`2>/dev/null`); nothing is
/// written anywhere.
pub fn contents_script() -> String {
    format!(
        "grep -aoHE '[0-9]{{14}}_(V3_[0-9]+|Initial)' {} 2>/dev/null | sort -u | head -c {SECTION_CAP}; echo \"{MIGRATIONS_END}\"; \
         grep -aoHE '\"tfm\": *\"[^\"]*\"' /app/*.runtimeconfig.json 2>/dev/null | head -c {SECTION_CAP}; echo \"{TFM_END}\"; \
         grep -aoHE '\"path\": *\"(elsa|microsoft\\.entityframeworkcore|cshells|nuplane)[a-z0-9.]*/[^\"]*\"' /app/*.deps.json 2>/dev/null | sort -u | head -c {SECTION_CAP}; echo \"{DEPS_END}\"",
        PROVIDER_ASSEMBLIES.join(" ")
    )
}

/// A migration id found in a provider assembly.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FoundMigration {
    pub file: String,
    pub id: String,
}

/// A NuGet package recorded in a deps.json (`"path": "<id>/<version>"`, which only libraries of
/// type `package` carry; the host's own projects have no path).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FoundPackage {
    pub file: String,
    /// The package id, lower-case as NuGet stores it (`microsoft.entityframeworkcore`).
    pub id: String,
    pub version: String,
}

/// What the exec's content sections showed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageContents {
    /// Migration ids in the provider assemblies.
    #[serde(default)]
    pub migrations: Vec<FoundMigration>,
    /// `(runtimeconfig file, tfm)`.
    #[serde(default)]
    pub tfms: Vec<(String, String)>,
    #[serde(default)]
    pub packages: Vec<FoundPackage>,
    /// Sections whose output reached the bound (their last lines are missing).
    #[serde(default)]
    pub truncated: Vec<String>,
    /// The sections were in the output at all (an older doctor's facts have none).
    #[serde(default)]
    pub read: bool,
}

/// Splits `file:match` as `grep -H` prints it (the file names here hold no `:`).
fn split_hit(line: &str) -> Option<(&str, &str)> {
    let (file, hit) = line.split_once(':')?;
    file.starts_with('/').then_some((file, hit))
}

fn migration_id(s: &str) -> bool {
    let Some((ts, rest)) = s.split_at_checked(14) else {
        return false;
    };
    ts.bytes().all(|b| b.is_ascii_digit())
        && (rest == "_Initial"
            || rest
                .strip_prefix("_V3_")
                .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit())))
}

/// The content sections of the listing's output (what follows the `ls` status line). Lines that
/// do not have the expected shape are ignored; a line cut by `head -c` runs into its section's
/// end marker and marks the section truncated.
pub fn parse_contents(stdout: &str) -> ImageContents {
    let mut out = ImageContents::default();
    let mut section: Vec<&str> = Vec::new();
    let mut ends = 0;
    for line in stdout.lines() {
        let line = line.trim_end_matches('\r');
        let Some(pos) = [MIGRATIONS_END, TFM_END, DEPS_END]
            .iter()
            .find_map(|m| line.find(m).map(|p| (p, *m)))
        else {
            section.push(line);
            continue;
        };
        let (at, marker) = pos;
        if at > 0 {
            out.truncated
                .push(marker.trim_start_matches("elsadoctor:").to_owned());
        }
        ends += 1;
        for l in section.drain(..) {
            let Some((file, hit)) = split_hit(l) else {
                continue;
            };
            match marker {
                MIGRATIONS_END if migration_id(hit) => out.migrations.push(FoundMigration {
                    file: file.to_owned(),
                    id: hit.to_owned(),
                }),
                TFM_END => {
                    let tfm = hit.rsplit('"').nth(1).unwrap_or("");
                    if !tfm.is_empty() {
                        out.tfms.push((file.to_owned(), tfm.to_owned()));
                    }
                }
                DEPS_END => {
                    let path = hit.rsplit('"').nth(1).unwrap_or("");
                    if let Some((id, version)) = path.split_once('/')
                        && !version.is_empty()
                        && !version.contains('/')
                    {
                        out.packages.push(FoundPackage {
                            file: file.to_owned(),
                            id: id.to_owned(),
                            version: version.to_owned(),
                        });
                    }
                }
                _ => {}
            }
        }
    }
    out.read = ends == 3;
    out
}

const fn v(major: u32, minor: u32, patch: u32) -> ElsaVersion {
    ElsaVersion {
        major,
        minor,
        patch: Some(patch),
    }
}

const fn minor(m: u32) -> ElsaVersion {
    ElsaVersion::new(3, m)
}

/// `3.5.3`, `3.8.0-rc2` → the version (a pre-release counts as its patch).
pub fn parse_package_version(s: &str) -> Option<ElsaVersion> {
    let core = s.split(['-', '+']).next()?;
    let mut it = core.split('.');
    let major = it.next()?.parse().ok()?;
    let minor = it.next()?.parse().ok()?;
    let patch = it.next().map(str::parse).transpose().ok()?;
    Some(ElsaVersion {
        major,
        minor,
        patch,
    })
}

/// A table from a package version to the Elsa releases that shipped it, and how to say it.
type Band = fn(&str) -> Option<(Constraint, &'static str)>;

/// The EF Core versions of the official builds (elsa-audit §7 row D): the Elsa releases that
/// pinned `Microsoft.EntityFrameworkCore` at that version, and how to say it.
fn ef_core_band(ef: &str) -> Option<(Constraint, &'static str)> {
    let between = |from, to| Constraint::Between { from, to };
    Some(match ef {
        "8.0.4" => (
            Constraint::Exact {
                version: v(3, 1, 3),
            },
            "3.1.3",
        ),
        "8.0.10" => (
            Constraint::Exact {
                version: v(3, 2, 4),
            },
            "3.2.4",
        ),
        "9.0.0" => (between(v(3, 3, 0), v(3, 3, 1)), "3.3.0–3.3.1"),
        "9.0.1" => (between(v(3, 3, 2), v(3, 3, 5)), "3.3.2–3.3.5"),
        "9.0.3" => (
            Constraint::Exact {
                version: v(3, 4, 0),
            },
            "3.4.0",
        ),
        "9.0.6" => (between(v(3, 4, 1), v(3, 4, 2)), "3.4.1–3.4.2"),
        "9.0.8" => (
            Constraint::Exact {
                version: v(3, 4, 3),
            },
            "3.4.3",
        ),
        "9.0.7" => (
            Constraint::Exact {
                version: v(3, 5, 0),
            },
            "3.5.0",
        ),
        "9.0.9" => (between(v(3, 5, 1), v(3, 5, 2)), "3.5.1–3.5.2"),
        "9.0.11" => (
            Constraint::Exact {
                version: v(3, 5, 3),
            },
            "3.5.3",
        ),
        "10.0.3" => (
            between(v(3, 6, 0), v(3, 7, 1)),
            "3.6.x–3.7.x release builds",
        ),
        "10.0.8" => (Constraint::Exact { version: minor(8) }, "3.8.0-preview1"),
        "10.0.9" => (Constraint::Exact { version: minor(8) }, "3.8.0-rc1/rc2"),
        _ => return None,
    })
}

/// The `Elsa.Studio` package of the ServerAndStudio builds (§7 row E).
fn studio_band(studio: &str) -> Option<(Constraint, &'static str)> {
    let exact = |version| Constraint::Exact { version };
    Some(match studio {
        "3.2.0-preview.307" => (exact(v(3, 1, 3)), "3.1.3"),
        "3.2.1-preview.558" => (exact(v(3, 2, 4)), "3.2.4"),
        "3.3.0-rc4" => (exact(minor(3)), "3.3.x"),
        "3.4.0" => (exact(minor(4)), "3.4.x"),
        "3.5.0-preview.1092" => (exact(v(3, 5, 0)), "3.5.0"),
        "3.5.1-preview.1211" => (exact(v(3, 5, 1)), "3.5.1"),
        "3.5.1-preview.1276" => (exact(v(3, 5, 2)), "3.5.2"),
        "3.5.2" => (exact(v(3, 5, 3)), "3.5.3"),
        _ => return None,
    })
}

/// The CShells library of the ModularServer builds (§7 row D).
fn cshells_band(cshells: &str) -> Option<(Constraint, &'static str)> {
    Some(match cshells {
        "0.0.14" => (
            Constraint::Between {
                from: v(3, 7, 0),
                to: v(3, 7, 1),
            },
            "3.7.x",
        ),
        "0.0.24-preview.132" => (Constraint::Exact { version: minor(8) }, "3.8.0-preview1"),
        "0.0.28" => (Constraint::Exact { version: minor(8) }, "3.8.0-rc1/rc2"),
        _ => return None,
    })
}

/// The host application assemblies (elsa-audit §5: `CMD ["dotnet", "<Host>.dll"]`).
const HOSTS: &[(&str, Flavor)] = &[
    ("Elsa.Server.Web.dll", Flavor::ServerWeb),
    ("Elsa.ServerAndStudio.Web.dll", Flavor::ServerAndStudio),
    ("Elsa.ModularServer.Web.dll", Flavor::ModularServer),
];

/// The migration id's minor: `_V3_5` → 5, `_Initial` → 0.
fn migration_minor(id: &str) -> Option<u32> {
    if id.ends_with("_Initial") {
        return Some(0);
    }
    id.rsplit_once("_V3_")?.1.parse().ok()
}

/// The context a known PostgreSQL id belongs to (the SQLite ids' timestamps differ, §2).
fn context_of(id: &str) -> Option<&'static str> {
    MIGRATIONS.iter().find(|m| m.id == id).map(|m| m.context)
}

fn clue(detail: String, constraint: Constraint) -> Clue {
    Clue {
        source: ClueSource::ImageContents,
        detail,
        constraint,
    }
}

/// What the listing's paths and the content sections say about the (flavour, version) pair
/// (elsa-audit §7 rows A–F): `paths` are the listed paths (`/app/*.dll`, `/entrypoint.sh`).
pub fn image_clues(paths: &[String], contents: &ImageContents) -> Vec<Clue> {
    let mut out = Vec::new();
    let dlls: Vec<&str> = paths
        .iter()
        .filter_map(|p| p.strip_prefix("/app/"))
        .filter(|n| !n.contains('/') && n.ends_with(".dll"))
        .collect();
    let host = HOSTS
        .iter()
        .find(|(name, _)| dlls.contains(name))
        .map(|(name, flavor)| (*name, *flavor));
    if let Some((name, flavor)) = host {
        out.push(clue(
            format!("host assembly /app/{name}"),
            Constraint::Host { flavor },
        ));
    }
    // Row A: an Elsa package (not Elsa Studio, which is versioned apart) means a NuGet host.
    let elsa_package = contents.packages.iter().find(|p| {
        (p.id == "elsa" || p.id.starts_with("elsa.workflows."))
            && parse_package_version(&p.version).is_some_and(|v| v.major == 3)
    });
    if let Some(p) = elsa_package
        && let Some(version) = parse_package_version(&p.version)
    {
        out.push(clue(
            format!(
                "package {}/{} (type package) in {}",
                p.id, p.version, p.file
            ),
            Constraint::Exact { version },
        ));
    }
    // Row B: the newest migration id across the provider assemblies gives the minor.
    let newest = contents
        .migrations
        .iter()
        .filter_map(|m| Some((migration_minor(&m.id)?, m)))
        .max_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1.id.cmp(&b.1.id)));
    if let Some((n, m)) = newest
        && !contents.truncated.iter().any(|t| t == "migrations")
    {
        let what = match context_of(&m.id) {
            Some(c) => format!("{c} migration"),
            None => "newest migration".to_owned(),
        };
        let only = if n == 0 { " (Initial only: 3.0)" } else { "" };
        // The 3.6/3.7 preview images are .NET 9 builds from main made before their minor's
        // migration existed (audit §5, §1 row 20): on a net9 build the newest id is only a
        // lower bound from 3.5 on.
        let net9 = contents.tfms.iter().any(|(_, t)| t == "net9.0");
        let (constraint, bound) = if net9 && n >= 5 {
            (
                Constraint::AtLeast { version: minor(n) },
                " (a lower bound: .NET 9 previews of 3.6/3.7 carry no newer id)",
            )
        } else {
            (Constraint::Exact { version: minor(n) }, "")
        };
        out.push(clue(
            format!("{what} {} in {}{only}{bound}", m.id, m.file),
            constraint,
        ));
    }
    // Row C: the target framework.
    if let Some((file, tfm)) = contents.tfms.first() {
        let c = match tfm.as_str() {
            "net8.0" => Some(Constraint::Between {
                from: minor(0),
                to: minor(2),
            }),
            // 3.3–3.5, and the 3.6/3.7 preview images built before the move to .NET 10.
            "net9.0" => Some(Constraint::Between {
                from: minor(3),
                to: minor(7),
            }),
            "net10.0" => Some(Constraint::AtLeast { version: minor(6) }),
            _ => None,
        };
        if let Some(c) = c {
            out.push(clue(format!("\"tfm\": \"{tfm}\" in {file}"), c));
        }
    }
    // Rows D and E hold for the official source builds only: a NuGet host pins its own.
    if elsa_package.is_none() {
        let find = |id: &str| contents.packages.iter().find(|p| p.id == id);
        let bands: [(&str, Band); 3] = [
            ("microsoft.entityframeworkcore", ef_core_band),
            ("elsa.studio", studio_band),
            ("cshells", cshells_band),
        ];
        for (id, band) in bands {
            if let Some(p) = find(id)
                && let Some((c, says)) = band(&p.version)
            {
                out.push(clue(
                    format!("{id}/{} in {} (official builds: {says})", p.version, p.file),
                    c,
                ));
            }
        }
    }
    // Row F: the assembly naming and the 3.5.1 entrypoint.
    let old = dlls
        .iter()
        .find(|d| d.starts_with("Elsa.EntityFrameworkCore."));
    let new = dlls
        .iter()
        .find(|d| d.starts_with("Elsa.Persistence.EFCore."));
    match (old, new) {
        (Some(d), None) => out.push(clue(
            format!("/app/{d} (EF Core modules named Elsa.EntityFrameworkCore.* up to 3.5)"),
            Constraint::Between {
                from: minor(0),
                to: minor(5),
            },
        )),
        (None, Some(d)) => out.push(clue(
            format!("/app/{d} (EF Core modules named Elsa.Persistence.EFCore.* from 3.6)"),
            Constraint::AtLeast { version: minor(6) },
        )),
        _ => {}
    }
    if host.is_some() && paths.iter().any(|p| p == "/entrypoint.sh") {
        out.push(clue(
            "/entrypoint.sh in the image root (official images from 3.5.1)".to_owned(),
            Constraint::AtLeast {
                version: v(3, 5, 1),
            },
        ));
    }
    out
}

/// One row of `"Elsa"."__EFMigrationsHistory"`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HistoryRow {
    pub migration_id: String,
    pub product_version: String,
}

/// What the database's migration history says (elsa-audit §7 row H): the newest `_V3_x` id
/// was applied by that minor or a later one, and the EF Core version that applied it maps to
/// the official builds' patch range (row D), again as a lower bound: a later patch of the same
/// minor adds no migration.
pub fn database_clues(history: &[HistoryRow]) -> Vec<Clue> {
    let mut out = Vec::new();
    let newest = history
        .iter()
        .filter(|r| migration_id(&r.migration_id))
        .filter_map(|r| Some((migration_minor(&r.migration_id)?, r)))
        .max_by(|a, b| {
            a.0.cmp(&b.0)
                .then_with(|| a.1.migration_id.cmp(&b.1.migration_id))
        });
    let Some((n, row)) = newest else {
        return out;
    };
    let db = |detail: String, constraint| Clue {
        source: ClueSource::Database,
        detail,
        constraint,
    };
    if n > 0 {
        out.push(db(
            format!(
                "newest applied migration {} (applied by Elsa {} or later)",
                row.migration_id,
                minor(n)
            ),
            Constraint::AtLeast { version: minor(n) },
        ));
    }
    if let Some((c, says)) = ef_core_band(&row.product_version) {
        let from = match c {
            Constraint::Exact { version } => version,
            Constraint::Between { from, .. } => from,
            Constraint::AtLeast { version } => version,
            Constraint::Host { .. } => return out,
        };
        out.push(db(
            format!(
                "{} applied by EF Core {} (official builds: {says})",
                row.migration_id, row.product_version
            ),
            Constraint::AtLeast { version: from },
        ));
    }
    out
}

/// Whether `version` satisfies `c` (a minor-only version satisfies a bound on its minor when
/// some patch of it could).
pub fn admits(c: &Constraint, version: ElsaVersion) -> bool {
    let lo = |b: &ElsaVersion| (b.major, b.minor, b.patch.unwrap_or(0));
    let hi = |b: &ElsaVersion| (b.major, b.minor, b.patch.unwrap_or(u32::MAX));
    let (vlo, vhi) = (lo(&version), hi(&version));
    match c {
        Constraint::Host { .. } => true,
        Constraint::Exact { version: e } => vlo <= hi(e) && lo(e) <= vhi,
        Constraint::Between { from, to } => vlo <= hi(to) && lo(from) <= vhi,
        Constraint::AtLeast { version: a } => vhi >= lo(a),
    }
}

/// The narrowest version range the clues allow together, for the message of
/// `workload.flavor` (`None` when they say nothing about the version, or contradict).
pub fn version_range(clues: &[Clue]) -> Option<(ElsaVersion, Option<ElsaVersion>)> {
    let key = |b: &ElsaVersion, top: bool| {
        (
            b.major,
            b.minor,
            b.patch.unwrap_or(if top { u32::MAX } else { 0 }),
        )
    };
    let mut from: Option<ElsaVersion> = None;
    let mut to: Option<ElsaVersion> = None;
    let mut any = false;
    for c in clues {
        let (f, t) = match &c.constraint {
            Constraint::Host { .. } => continue,
            Constraint::Exact { version } => (*version, Some(*version)),
            Constraint::Between { from, to } => (*from, Some(*to)),
            Constraint::AtLeast { version } => (*version, None),
        };
        any = true;
        // Tighter wins; at the same bound, the one that names a patch.
        if from.is_none_or(|cur| {
            key(&f, false) > key(&cur, false)
                || (key(&f, false) == key(&cur, false) && f.patch.is_some())
        }) {
            from = Some(f);
        }
        if let Some(t) = t
            && to.is_none_or(|cur| {
                key(&t, true) < key(&cur, true)
                    || (key(&t, true) == key(&cur, true) && t.patch.is_some())
            })
        {
            to = Some(t);
        }
    }
    let from = from?;
    if !any || to.is_some_and(|t| key(&t, true) < key(&from, false)) {
        return None;
    }
    Some((from, to))
}

/// `3.5.1–3.5.2`, `3.5`, `3.6 or later`.
pub fn describe_range(range: (ElsaVersion, Option<ElsaVersion>)) -> String {
    match range {
        (f, None) => format!("{f} or later"),
        (f, Some(t)) if f == t => f.to_string(),
        (f, Some(t)) if f.mm() == t.mm() && f.patch.is_none() && t.patch.is_none() => f.to_string(),
        (f, Some(t)) if f.mm() == t.mm() && t.patch.is_none() => {
            format!("{f}–{}.{}.x", t.major, t.minor)
        }
        (f, Some(t)) => format!("{f}–{t}"),
    }
}

/// The host the clues name.
pub fn host_of(clues: &[Clue]) -> Option<Flavor> {
    clues.iter().find_map(|c| match c.constraint {
        Constraint::Host { flavor } => Some(flavor),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paths(p: &[&str]) -> Vec<String> {
        p.iter().map(|s| (*s).to_owned()).collect()
    }

    const V353: &str = "\
/app/Elsa.EntityFrameworkCore.PostgreSql.dll:20231024160952_Initial
/app/Elsa.EntityFrameworkCore.PostgreSql.dll:20250530104953_V3_5
/app/Elsa.EntityFrameworkCore.Sqlite.dll:20250530104854_V3_5
elsadoctor:migrations
/app/Elsa.Server.Web.runtimeconfig.json:\"tfm\": \"net9.0\"
elsadoctor:tfm
/app/Elsa.Server.Web.deps.json:\"path\": \"microsoft.entityframeworkcore.relational/9.0.11\"
/app/Elsa.Server.Web.deps.json:\"path\": \"microsoft.entityframeworkcore/9.0.11\"
elsadoctor:deps
";

    #[test]
    fn a_stock_353_layout_gives_the_minor_the_band_and_the_patch() {
        let c = parse_contents(V353);
        assert!(c.read && c.truncated.is_empty());
        assert_eq!(c.migrations.len(), 3);
        assert_eq!(c.tfms[0].1, "net9.0");
        assert_eq!(c.packages.len(), 2);
        let clues = image_clues(
            &paths(&[
                "/app/Elsa.Server.Web.dll",
                "/app/Elsa.EntityFrameworkCore.Sqlite.dll",
                "/entrypoint.sh",
            ]),
            &c,
        );
        assert_eq!(host_of(&clues), Some(Flavor::ServerWeb));
        assert!(clues.iter().all(|c| c.source == ClueSource::ImageContents));
        let minor_clue = clues
            .iter()
            .find(|c| c.detail.contains("Runtime migration 20250530104953_V3_5"))
            .expect("runtime id named");
        assert_eq!(
            minor_clue.constraint,
            Constraint::AtLeast {
                version: ElsaVersion::new(3, 5)
            },
            "net9: a 3.6/3.7 preview could carry it too"
        );
        let naming = clues
            .iter()
            .find(|c| c.detail.contains("up to 3.5"))
            .expect("naming clue");
        assert!(!admits(&naming.constraint, ElsaVersion::new(3, 6)));
        assert!(clues.iter().any(|c| c.detail.contains("3.5.3")
            && c.constraint
                == Constraint::Exact {
                    version: v(3, 5, 3)
                }));
        assert_eq!(version_range(&clues), Some((v(3, 5, 3), Some(v(3, 5, 3)))));
        assert!(admits(&minor_clue.constraint, v(3, 5, 1)));
        assert!(!admits(&minor_clue.constraint, v(3, 4, 3)));
    }

    #[test]
    fn initial_only_is_30_and_a_nuget_host_wins_over_the_third_party_bands() {
        let out = "/app/Elsa.EntityFrameworkCore.Sqlite.dll:20231024160000_Initial\nelsadoctor:migrations\nelsadoctor:tfm\n\
                   /app/My.Host.deps.json:\"path\": \"elsa.workflows.core/3.5.3\"\n\
                   /app/My.Host.deps.json:\"path\": \"microsoft.entityframeworkcore/9.0.1\"\nelsadoctor:deps\n";
        let clues = image_clues(&[], &parse_contents(out));
        assert!(clues.iter().any(|c| c.constraint
            == Constraint::Exact {
                version: ElsaVersion::new(3, 0)
            }
            && c.detail.contains("Initial only")));
        assert!(clues.iter().any(|c| c.constraint
            == Constraint::Exact {
                version: v(3, 5, 3)
            }));
        assert!(
            !clues
                .iter()
                .any(|c| c.detail.contains("entityframeworkcore")),
            "EF Core's band is for official builds only: {clues:?}"
        );
        assert_eq!(host_of(&clues), None);
    }

    #[test]
    fn truncation_and_garbage_are_not_read_as_facts() {
        let out = "/app/Elsa.Persistence.EFCore.Sqlite.dll:20260122123040_V3_7\n/app/Elsa.Persistence.EFCore.Sqlite.dll:2026052012elsadoctor:migrations\n\
                   junk line\n/app/x.runtimeconfig.json:\"tfm\": \"net10.0\"\nelsadoctor:tfm\nelsadoctor:deps\n";
        let c = parse_contents(out);
        assert_eq!(c.truncated, vec!["migrations".to_owned()]);
        assert_eq!(c.migrations.len(), 1);
        let clues = image_clues(&[], &c);
        assert!(
            !clues.iter().any(|c| c.detail.contains("V3_7")),
            "a truncated section may lack the newest id"
        );
        assert!(clues.iter().any(|c| c.constraint
            == Constraint::AtLeast {
                version: ElsaVersion::new(3, 6)
            }));
        assert!(!parse_contents("elsadoctor:migrations\n").read);
        assert!(!migration_id("2025053010485_V3_5"));
        assert!(!migration_id("20250530104854_V3_"));
        assert!(migration_id("20250530104854_V3_10"));
    }

    #[test]
    fn modular_and_studio_bands() {
        let out = "elsadoctor:migrations\nelsadoctor:tfm\n/app/Elsa.ModularServer.Web.deps.json:\"path\": \"cshells/0.0.28\"\nelsadoctor:deps\n";
        let clues = image_clues(
            &paths(&["/app/Elsa.ModularServer.Web.dll"]),
            &parse_contents(out),
        );
        assert_eq!(host_of(&clues), Some(Flavor::ModularServer));
        assert!(clues.iter().any(|c| c.detail.contains("3.8.0-rc1/rc2")));
        let out = "elsadoctor:migrations\nelsadoctor:tfm\n/app/Elsa.ServerAndStudio.Web.deps.json:\"path\": \"elsa.studio/3.5.1-preview.1276\"\nelsadoctor:deps\n";
        let clues = image_clues(&[], &parse_contents(out));
        assert_eq!(
            clues[0].constraint,
            Constraint::Exact {
                version: v(3, 5, 2)
            }
        );
    }

    #[test]
    fn the_history_gives_lower_bounds() {
        let rows = [
            ("20231024160952_Initial", "8.0.4"),
            ("20250530104953_V3_5", "9.0.9"),
            ("20250222190844_V3_4", "9.0.3"),
        ]
        .map(|(m, p)| HistoryRow {
            migration_id: m.into(),
            product_version: p.into(),
        });
        let clues = database_clues(&rows);
        assert_eq!(clues.len(), 2);
        assert!(clues.iter().all(|c| c.source == ClueSource::Database));
        assert_eq!(
            clues[1].constraint,
            Constraint::AtLeast {
                version: v(3, 5, 1)
            }
        );
        assert!(database_clues(&[]).is_empty());
    }

    #[test]
    fn ranges_and_their_words() {
        let c = |constraint| clue(String::new(), constraint);
        let clues = [
            c(Constraint::Between {
                from: minor(3),
                to: minor(7),
            }),
            c(Constraint::Exact { version: minor(5) }),
            c(Constraint::AtLeast {
                version: v(3, 5, 1),
            }),
        ];
        let r = version_range(&clues).expect("range");
        assert_eq!(describe_range(r), "3.5.1–3.5.x");
        let r = version_range(&[
            c(Constraint::Exact { version: minor(3) }),
            c(Constraint::Between {
                from: v(3, 3, 0),
                to: v(3, 3, 1),
            }),
        ]);
        assert_eq!(r.map(describe_range).as_deref(), Some("3.3.0–3.3.1"));
        assert_eq!(describe_range((minor(6), None)), "3.6 or later");
        assert_eq!(
            version_range(&[
                c(Constraint::Exact { version: minor(5) }),
                c(Constraint::AtLeast { version: minor(6) })
            ]),
            None
        );
        let script = contents_script();
        assert!(script.contains("grep -aoHE '[0-9]{14}_(V3_[0-9]+|Initial)'"));
        assert_eq!(script.matches("head -c 8192").count(), 3);
    }
}
