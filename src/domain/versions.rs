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

/// The Elsa 3 releases a stock image can be (elsa-audit.md §0: the newest tag of each minor and
/// every patch before it; 3.8 exists only as 3.8.0 release candidates), per host:
/// Server.Web 3.0–3.8; ServerAndStudio 3.0–3.5, plus the 3.6/3.7 previews from main (audit row
/// 8); ModularServer as the 3.8 server-and-studio image.
const RELEASES: &[(u32, &[u32])] = &[
    (0, &[0, 1, 2, 3, 4, 5, 6]),
    (1, &[0, 1, 2, 3]),
    (2, &[0, 1, 2, 3, 4]),
    (3, &[0, 1, 2, 3, 4, 5]),
    (4, &[0, 1, 2, 3]),
    (5, &[0, 1, 2, 3]),
    (6, &[0, 1, 2, 3]),
    (7, &[0, 1]),
    (8, &[0]),
];

/// Every (host, release) pair a stock Elsa image can be.
pub fn releases() -> Vec<(Flavor, ElsaVersion)> {
    let mut out = Vec::new();
    for (minor, patches) in RELEASES {
        for p in *patches {
            let v = ElsaVersion {
                major: 3,
                minor: *minor,
                patch: Some(*p),
            };
            out.push((Flavor::ServerWeb, v));
            if *minor <= 7 {
                out.push((Flavor::ServerAndStudio, v));
            }
            if *minor == 8 {
                out.push((Flavor::ModularServer, v));
            }
        }
    }
    out
}

/// `a <= b` where a missing patch in `a` means the minor's first patch.
fn not_after(a: ElsaVersion, b: ElsaVersion, missing_patch_is_last: bool) -> bool {
    let fill = |v: ElsaVersion, last: bool| {
        (
            v.major,
            v.minor,
            v.patch.unwrap_or(if last { u32::MAX } else { 0 }),
        )
    };
    fill(a, false) <= fill(b, missing_patch_is_last)
}

impl Constraint {
    /// Whether the pair satisfies this constraint.
    pub fn allows(&self, flavor: Flavor, version: ElsaVersion) -> bool {
        match self {
            Constraint::Host { flavor: f } => *f == flavor,
            Constraint::Exact { version: e } => {
                e.mm() == version.mm() && e.patch.is_none_or(|p| Some(p) == version.patch)
            }
            Constraint::Between { from, to } => {
                not_after(*from, version, false) && not_after(version, *to, true)
            }
            Constraint::AtLeast { version: v } => not_after(*v, version, false),
        }
    }
}

/// The candidates: every release allowed by every clue. When the clues contradict each other
/// (a tag naming a release that does not exist, contents that say 3.6 under a `-v3-5` tag),
/// clues are taken strongest source first and each one is kept only if some release still
/// satisfies everything kept so far; a contradicted weaker clue is set aside (the evidence
/// still lists it, and `workload.flavor` names the disagreement).
pub fn candidates(clues: &[Clue]) -> Vec<(Flavor, ElsaVersion)> {
    let all = releases();
    let mut order: Vec<&Clue> = clues.iter().collect();
    order.sort_by_key(|c| (c.source, !matches!(c.constraint, Constraint::Host { .. })));
    let mut kept: Vec<&Clue> = Vec::new();
    let allowed = |kept: &[&Clue]| -> Vec<(Flavor, ElsaVersion)> {
        all.iter()
            .copied()
            .filter(|(f, v)| kept.iter().all(|c| c.constraint.allows(*f, *v)))
            .collect()
    };
    for c in order {
        kept.push(c);
        if allowed(&kept).is_empty() {
            kept.pop();
        }
    }
    allowed(&kept)
}

/// A short account of a candidate set: `Elsa.Server.Web 3.0.0–3.8.0` or
/// `Elsa.Server.Web 3.3.0–3.5.3, Elsa.ServerAndStudio.Web 3.4.0`.
pub fn describe(pairs: &[(Flavor, ElsaVersion)]) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut flavors: Vec<Flavor> = Vec::new();
    for (f, _) in pairs {
        if !flavors.contains(f) {
            flavors.push(*f);
        }
    }
    for f in flavors {
        let mut vs: Vec<ElsaVersion> = pairs
            .iter()
            .filter(|(g, _)| *g == f)
            .map(|(_, v)| *v)
            .collect();
        vs.sort();
        // Runs of consecutive releases (in the release table's order) become ranges.
        let order: Vec<ElsaVersion> = releases()
            .into_iter()
            .filter(|(g, _)| *g == f)
            .map(|(_, v)| v)
            .collect();
        let mut runs: Vec<(ElsaVersion, ElsaVersion)> = Vec::new();
        for v in vs {
            let idx = order.iter().position(|o| *o == v);
            match (runs.last_mut(), idx) {
                (Some((_, end)), Some(i))
                    if order
                        .iter()
                        .position(|o| o == end)
                        .is_some_and(|j| j + 1 == i) =>
                {
                    *end = v
                }
                _ => runs.push((v, v)),
            }
        }
        let text: Vec<String> = runs
            .iter()
            .map(|(a, b)| {
                if a == b {
                    a.to_string()
                } else {
                    format!("{a}–{b}")
                }
            })
            .collect();
        parts.push(format!("{f} {}", text.join(", ")));
    }
    parts.join("; ")
}

/// What the image reference itself says (ELSA-FACTS §0): the host its name belongs to, the
/// version its tag or name suffix names, and what the name's publishing history allows.
pub fn clues_from_image(info: &super::elsa::ImageInfo) -> Vec<Clue> {
    let mut out = Vec::new();
    if info.flavor == Flavor::Custom || info.flavor == Flavor::Studio {
        return out;
    }
    let host = if info.flavor == Flavor::ServerAndStudio && info.version.is_none() {
        // The server-and-studio name builds ServerAndStudio up to 3.7, ModularServer from 3.8.
        None
    } else {
        Some(info.flavor)
    };
    if let Some(flavor) = host {
        out.push(Clue {
            source: ClueSource::ImageName,
            detail: format!("image {} builds {flavor}", info.name),
            constraint: Constraint::Host { flavor },
        });
    } else {
        out.push(Clue {
            source: ClueSource::ImageName,
            detail: format!("image {} builds Elsa.ServerAndStudio.Web (3.0–3.7) or Elsa.ModularServer.Web (3.8)", info.name),
            constraint: Constraint::Between {
                from: ElsaVersion::new(3, 0),
                to: ElsaVersion::new(3, 8),
            },
        });
    }
    let tag_version = super::elsa::version_from_tag(info.tag.as_deref());
    let suffix = info
        .name
        .strip_prefix("elsa-server-and-studio")
        .or_else(|| info.name.strip_prefix("elsa-server"))
        .unwrap_or("");
    let name_version = super::elsa::version_from_name_suffix(suffix);
    if let Some(v) = tag_version {
        out.push(Clue {
            source: ClueSource::ImageTag,
            detail: format!("tag {}", info.tag.as_deref().unwrap_or_default()),
            constraint: Constraint::Exact { version: v },
        });
    }
    if let Some(v) = name_version {
        out.push(Clue {
            source: ClueSource::ImageName,
            detail: format!("image name {}", info.name),
            constraint: Constraint::Exact {
                version: ElsaVersion::new(v.major, v.minor),
            },
        });
    } else if info.name == "elsa-server-v3" {
        // Pushed only from main, 2023-12 … 2024-07: builds before 3.3.
        out.push(Clue {
            source: ClueSource::ImageName,
            detail: "elsa-server-v3 was pushed from main before 3.3 only".to_owned(),
            constraint: Constraint::Between {
                from: ElsaVersion::new(3, 0),
                to: ElsaVersion::new(3, 2),
            },
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::elsa::classify_image;

    fn v(minor: u32, patch: u32) -> ElsaVersion {
        ElsaVersion {
            major: 3,
            minor,
            patch: Some(patch),
        }
    }

    #[test]
    fn the_guides_latest_image_is_every_server_web_release() {
        let info = classify_image("elsaworkflows/elsa-server:latest").expect("elsa");
        let c = candidates(&clues_from_image(&info));
        assert!(c.iter().all(|(f, _)| *f == Flavor::ServerWeb));
        assert_eq!(c.first().map(|p| p.1), Some(v(0, 0)));
        assert_eq!(c.last().map(|p| p.1), Some(v(8, 0)));
        assert_eq!(describe(&c), "Elsa.Server.Web 3.0.0–3.8.0");
    }

    #[test]
    fn a_minor_name_or_tag_narrows_to_its_patches() {
        let info = classify_image("elsaworkflows/elsa-server-v3-5:latest").expect("elsa");
        let c = candidates(&clues_from_image(&info));
        assert_eq!(describe(&c), "Elsa.Server.Web 3.5.0–3.5.3");
        let info = classify_image("elsaworkflows/elsa-server-v3:latest").expect("elsa");
        assert_eq!(
            describe(&candidates(&clues_from_image(&info))),
            "Elsa.Server.Web 3.0.0–3.2.4"
        );
        let info = classify_image("elsaworkflows/elsa-server-v3-5:3.5.3").expect("elsa");
        assert_eq!(
            candidates(&clues_from_image(&info)),
            vec![(Flavor::ServerWeb, v(5, 3))]
        );
    }

    #[test]
    fn contradicting_sources_keep_the_stronger() {
        let clues = vec![
            Clue {
                source: ClueSource::ImageTag,
                detail: "tag 3.5.3".into(),
                constraint: Constraint::Exact { version: v(5, 3) },
            },
            Clue {
                source: ClueSource::ImageContents,
                detail: "Runtime V3_6".into(),
                constraint: Constraint::Exact {
                    version: ElsaVersion::new(3, 6),
                },
            },
            Clue {
                source: ClueSource::ImageContents,
                detail: "Elsa.Server.Web.dll".into(),
                constraint: Constraint::Host {
                    flavor: Flavor::ServerWeb,
                },
            },
        ];
        assert_eq!(describe(&candidates(&clues)), "Elsa.Server.Web 3.6.0–3.6.3");
        let between = Constraint::Between {
            from: ElsaVersion::new(3, 3),
            to: ElsaVersion::new(3, 5),
        };
        assert!(between.allows(Flavor::ServerWeb, v(5, 3)));
        assert!(between.allows(Flavor::ServerWeb, v(3, 0)));
        assert!(!between.allows(Flavor::ServerWeb, v(6, 0)));
        let at_least = Constraint::AtLeast { version: v(5, 1) };
        assert!(!at_least.allows(Flavor::ServerWeb, v(5, 0)));
        assert!(at_least.allows(Flavor::ServerWeb, v(8, 0)));
    }
}
