//! The registry's stock Elsa images: what an official `elsaworkflows/…` image (or the bare
//! local `elsa-server` name elsa-core's own manifests build) holds under `/app`.
//!
//! This is the simulator's own table, written from elsa-audit.md §2, §5 and §7, and kept apart
//! from the product's `domain::elsa` on purpose: the doctor is tested against an independent
//! account of the images, not against its own beliefs.

/// The host application an image runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Host {
    /// `Elsa.Server.Web`.
    ServerWeb,
    /// `Elsa.ServerAndStudio.Web` (up to 3.7 previews).
    ServerAndStudio,
    /// `Elsa.ModularServer.Web`, what the server-and-studio image builds from 3.8.
    ModularServer,
    /// Elsa Studio alone (a Blazor UI, no server).
    Studio,
}

/// A stock image, as far as its reference tells.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stock {
    /// The host.
    pub host: Host,
    /// `(major, minor)` when the name or tag says it.
    pub minor: Option<(u32, u32)>,
    /// The patch when the tag says it; else the minor's newest (audit §0) is built.
    pub patch: Option<u32>,
    /// A `-preview` name: pushed from main or `develop/3.6.0` before the release (audit §5).
    pub preview: bool,
}

/// An image reference split into repository and tag (a digest is dropped; a `:` before the
/// last `/` is a registry port).
pub fn split(image: &str) -> (&str, Option<&str>) {
    let no_digest = image.split('@').next().unwrap_or(image);
    let last_slash = no_digest.rfind('/').map_or(0, |i| i + 1);
    match no_digest[last_slash..].rfind(':') {
        Some(i) => (
            &no_digest[..last_slash + i],
            Some(&no_digest[last_slash + i + 1..]),
        ),
        None => (no_digest, None),
    }
}

/// `3.5.3`, `v3.8.0-rc2` → `(3, 5)`; `latest` → none.
fn minor_of_tag(tag: &str) -> Option<(u32, u32)> {
    let mut it = tag.trim_start_matches('v').split(['.', '-', '+']);
    let major: u32 = it.next()?.parse().ok()?;
    let minor: u32 = it.next()?.parse().ok()?;
    (major == 3).then_some((major, minor))
}

/// `-v3-5` → `(3, 5)`, `-v3-3-0-preview` → `(3, 3)`, `-v3` → none.
fn minor_of_suffix(rest: &str) -> Option<(u32, u32)> {
    let mut it = rest.strip_prefix("-v")?.split('-');
    let major: u32 = it.next()?.parse().ok()?;
    let minor: u32 = it.next()?.parse().ok()?;
    Some((major, minor))
}

/// The stock image `image` names, if it is one.
pub fn stock(image: &str) -> Option<Stock> {
    let (repo, tag) = split(image.trim());
    let repo = repo.to_ascii_lowercase();
    let mut parts = repo.rsplit('/');
    let name = parts.next().unwrap_or("");
    let owner = parts.next();
    let (host, rest) = if let Some(rest) = name.strip_prefix("elsa-server-and-studio") {
        (Host::ServerAndStudio, rest)
    } else if let Some(rest) = name.strip_prefix("elsa-server") {
        (Host::ServerWeb, rest)
    } else if let Some(rest) = name.strip_prefix("elsa-studio") {
        (Host::Studio, rest)
    } else {
        return None;
    };
    let official = owner == Some("elsaworkflows") || (owner.is_none() && rest.is_empty());
    if !official || !(rest.is_empty() || rest.starts_with("-v3")) {
        return None;
    }
    let minor = tag.and_then(minor_of_tag).or_else(|| minor_of_suffix(rest));
    let host = match (host, minor) {
        (Host::ServerAndStudio, Some(v)) if v >= (3, 8) => Host::ModularServer,
        (h, _) => h,
    };
    let patch = tag.filter(|t| minor_of_tag(t).is_some()).and_then(|t| {
        t.trim_start_matches('v')
            .split(['.', '-', '+'])
            .nth(2)?
            .parse()
            .ok()
    });
    let preview = rest.ends_with("-preview") && tag.and_then(minor_of_tag).is_none();
    Some(Stock {
        host,
        minor,
        patch,
        preview,
    })
}

impl Stock {
    /// The host's assembly (`CMD ["dotnet", "<this>"]`).
    fn host_assembly(self) -> Option<&'static str> {
        match self.host {
            Host::ServerWeb => Some("Elsa.Server.Web.dll"),
            Host::ServerAndStudio => Some("Elsa.ServerAndStudio.Web.dll"),
            Host::ModularServer => Some("Elsa.ModularServer.Web.dll"),
            Host::Studio => None,
        }
    }

    /// The EF Core module prefix: renamed in 3.6 (an unknown version counts as the older).
    fn ef_prefix(self) -> &'static str {
        if self.minor.is_some_and(|v| v >= (3, 6)) {
            "Elsa.Persistence.EFCore"
        } else {
            "Elsa.EntityFrameworkCore"
        }
    }

    /// Whether the image ships the Elsa PostgreSQL provider (audit rows 1, 21, 22): not
    /// Server.Web 3.0 or 3.6+, not ServerAndStudio 3.0–3.2, never ModularServer. An image of
    /// unknown version is taken to be a 3.3–3.5 build.
    fn ships_postgres(self) -> bool {
        match (self.host, self.minor) {
            (Host::ServerWeb, Some(v)) => v > (3, 0) && v < (3, 6),
            (Host::ServerAndStudio, Some(v)) => v >= (3, 3),
            (Host::ServerWeb | Host::ServerAndStudio, None) => true,
            (Host::ModularServer | Host::Studio, _) => false,
        }
    }

    /// The patch that is built: the tag's, else the minor's newest tag (audit §0; 3.8 is
    /// 3.8.0-rc2, counted as patch 0).
    fn patch_built(self) -> Option<u32> {
        let (_, m) = self.minor?;
        self.patch.or(match m {
            0 => Some(6),
            1 => Some(3),
            2 => Some(4),
            3 => Some(5),
            4..=6 => Some(3),
            7 => Some(1),
            8 => Some(0),
            _ => None,
        })
    }

    /// The target framework (audit §5; previews were built before the move to .NET 10).
    fn tfm(self) -> Option<&'static str> {
        let v = self.minor?;
        Some(if v < (3, 3) {
            "net8.0"
        } else if v < (3, 6) || self.preview {
            "net9.0"
        } else {
            "net10.0"
        })
    }

    /// `Microsoft.EntityFrameworkCore` of the build (audit §7 row D). 3.0's is not in the
    /// audit, nor are the previews' (built from main): those get versions the audit's table
    /// does not hold, so they prove nothing.
    fn ef_core(self) -> Option<&'static str> {
        let (_, m) = self.minor?;
        let p = self.patch_built()?;
        if self.preview {
            return Some("9.0.10");
        }
        Some(match (m, p) {
            (0, _) => "8.0.2",
            (1, _) => "8.0.4",
            (2, _) => "8.0.10",
            (3, 0 | 1) => "9.0.0",
            (3, _) => "9.0.1",
            (4, 0) => "9.0.3",
            (4, 1 | 2) => "9.0.6",
            (4, _) => "9.0.8",
            (5, 0) => "9.0.7",
            (5, 1 | 2) => "9.0.9",
            (5, _) => "9.0.11",
            (6 | 7, _) => "10.0.3",
            _ => "10.0.9",
        })
    }

    /// `Elsa.Studio` of a ServerAndStudio build (audit §7 row E).
    fn studio(self) -> Option<&'static str> {
        if self.host != Host::ServerAndStudio || self.preview {
            return None;
        }
        let (_, m) = self.minor?;
        Some(match (m, self.patch_built()?) {
            (1, _) => "3.2.0-preview.307",
            (2, _) => "3.2.1-preview.558",
            (3, _) => "3.3.0-rc4",
            (4, _) => "3.4.0",
            (5, 0) => "3.5.0-preview.1092",
            (5, 1) => "3.5.1-preview.1211",
            (5, 2) => "3.5.1-preview.1276",
            (5, _) => "3.5.2",
            _ => return None,
        })
    }

    /// The migration ids a provider assembly of this build holds: PostgreSQL's from audit §2;
    /// SQLite's carry the same suffixes with other timestamps (§2, §7 row B: the Runtime
    /// V3_5–V3_8 stamps are the audit's, the rest are this table's own). Previews were built
    /// before the Runtime V3_6 migration (2025-12-04) existed.
    fn migrations(self, sqlite: bool) -> Vec<&'static str> {
        let Some(v) = self.minor else {
            return Vec::new();
        };
        let newest = if self.preview { (3, 5) } else { v };
        let table: &[(&str, &str, (u32, u32))] = if sqlite {
            &[
                ("20231015122100_Initial", "", (3, 0)),
                ("20231024160800_Initial", "", (3, 0)),
                ("20240329200600_V3_1", "", (3, 1)),
                ("20240329200650_V3_1", "", (3, 1)),
                ("20240610184600_V3_2", "", (3, 2)),
                ("20240610184700_V3_2", "", (3, 2)),
                ("20241212211700_V3_3", "", (3, 3)),
                ("20250116192900_V3_3", "", (3, 3)),
                ("20250222190800_V3_4", "", (3, 4)),
                ("20250222190850_V3_4", "", (3, 4)),
                ("20250530104854_V3_5", "", (3, 5)),
                ("20251116182700_V3_6", "", (3, 6)),
                ("20251204150006_V3_6", "", (3, 6)),
                ("20260122123040_V3_7", "", (3, 7)),
                ("20260520121618_V3_8", "", (3, 8)),
            ]
        } else {
            &[
                ("20231015122234_Initial", "Management", (3, 0)),
                ("20240329200740_V3_1", "Management", (3, 1)),
                ("20240610184839_V3_2", "Management", (3, 2)),
                ("20241212211805_V3_3", "Management", (3, 3)),
                ("20250222190906_V3_4", "Management", (3, 4)),
                ("20251116182753_V3_6", "Management", (3, 6)),
                ("20231024160952_Initial", "Runtime", (3, 0)),
                ("20240329200711_V3_1", "Runtime", (3, 1)),
                ("20240610184748_V3_2", "Runtime", (3, 2)),
                ("20250116192950_V3_3", "Runtime", (3, 3)),
                ("20250222190844_V3_4", "Runtime", (3, 4)),
                ("20250530104953_V3_5", "Runtime", (3, 5)),
                ("20251204150341_V3_6", "Runtime", (3, 6)),
                ("20260122123049_V3_7", "Runtime", (3, 7)),
                ("20260520121653_V3_8", "Runtime", (3, 8)),
                ("20231015122250_Initial", "Identity", (3, 0)),
                ("20240329200810_V3_1", "Identity", (3, 1)),
                ("20240610184941_V3_2", "Identity", (3, 2)),
                ("20241212211900_V3_3", "Identity", (3, 3)),
                ("20250222190930_V3_4", "Identity", (3, 4)),
                ("20231015122203_Initial", "Alterations", (3, 0)),
                ("20240329200643_V3_1", "Alterations", (3, 1)),
                ("20240610184626_V3_2", "Alterations", (3, 2)),
                ("20241212211604_V3_3", "Alterations", (3, 3)),
                ("20250222190820_V3_4", "Alterations", (3, 4)),
            ]
        };
        table
            .iter()
            .filter(|(_, _, since)| *since <= newest)
            .map(|(id, _, _)| *id)
            .collect()
    }

    /// Files of the image with their sizes or bytes: `/app` and the image root.
    pub fn files(self) -> Vec<(String, File)> {
        let mut out = vec![
            ("/usr/share/dotnet/dotnet".to_string(), File::Sized(70_000)),
            ("/app/appsettings.json".to_string(), File::Sized(4_000)),
        ];
        let Some(host) = self.host_assembly() else {
            out.push(("/app/wwwroot/index.html".to_string(), File::Sized(2_000)));
            return out;
        };
        let ef = self.ef_prefix();
        for d in [
            host,
            "Elsa.dll",
            "Elsa.Workflows.Core.dll",
            "Microsoft.Data.Sqlite.dll",
        ] {
            out.push((format!("/app/{d}"), File::Sized(250_000)));
        }
        out.push((
            format!("/app/{ef}.Sqlite.dll"),
            File::Bytes(assembly(&self.migrations(true))),
        ));
        if self.ships_postgres() {
            out.push((
                format!("/app/{ef}.PostgreSql.dll"),
                File::Bytes(assembly(&self.migrations(false))),
            ));
            for d in ["Npgsql.dll", "Npgsql.EntityFrameworkCore.PostgreSQL.dll"] {
                out.push((format!("/app/{d}"), File::Sized(250_000)));
            }
        }
        let stem = host.trim_end_matches(".dll");
        if let Some(tfm) = self.tfm() {
            out.push((
                format!("/app/{stem}.runtimeconfig.json"),
                File::Bytes(runtimeconfig(tfm).into_bytes()),
            ));
        }
        let mut packages: Vec<(&str, &str)> = Vec::new();
        if let Some(ef) = self.ef_core() {
            packages.push(("Microsoft.EntityFrameworkCore", ef));
            packages.push(("Microsoft.EntityFrameworkCore.Relational", ef));
        }
        if let Some(studio) = self.studio() {
            packages.push(("Elsa.Studio", studio));
        }
        if self.host == Host::ModularServer {
            packages.push(("CShells", "0.0.28"));
            packages.push(("Nuplane", "0.0.8"));
        }
        out.push((
            format!("/app/{stem}.deps.json"),
            File::Bytes(deps_json(stem, self.tfm().unwrap_or("net9.0"), &packages).into_bytes()),
        ));
        let entrypoint = self.minor.is_some_and(|v| v > (3, 5))
            || (self.minor == Some((3, 5)) && self.patch_built().is_some_and(|p| p >= 1));
        if entrypoint {
            out.push((
                "/entrypoint.sh".to_string(),
                File::Bytes(b"#!/bin/sh\nset -e\nexec \"$@\"\n".to_vec()),
            ));
        }
        // The SQLite files the app creates at every start, whatever its configuration.
        let always = match self.host {
            Host::ServerWeb if self.minor.is_some_and(|v| v < (3, 6)) => None,
            Host::ServerWeb | Host::ServerAndStudio => Some("/app/elsa.sqlite.db"),
            Host::ModularServer => Some("/app/elsa_workflows.db"),
            Host::Studio => None,
        };
        out.extend(always.map(|p| (p.to_string(), File::Sized(126_976))));
        out
    }
}

/// A file of the table: only a size, or its bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum File {
    /// So many NUL bytes (nothing the doctor reads).
    Sized(u64),
    /// These bytes.
    Bytes(Vec<u8>),
}

/// A stand-in for a .NET assembly: a PE header, then each migration id as the `[Migration]`
/// attribute blob stores it (prolog `01 00`, the length, the UTF-8 string, `00 00`), amid NULs.
fn assembly(ids: &[&str]) -> Vec<u8> {
    let mut b = b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff\x00\x00PE\x00\x00".to_vec();
    b.extend(std::iter::repeat_n(0u8, 512));
    for id in ids {
        b.extend_from_slice(&[0x01, 0x00, u8::try_from(id.len()).unwrap_or(0)]);
        b.extend_from_slice(id.as_bytes());
        b.extend_from_slice(&[0x00, 0x00, 0x00]);
    }
    b.extend(std::iter::repeat_n(0u8, 256));
    b
}

/// `<Host>.runtimeconfig.json` as `dotnet publish` writes it.
fn runtimeconfig(tfm: &str) -> String {
    let fw = tfm.trim_start_matches("net");
    format!(
        "{{\n  \"runtimeOptions\": {{\n    \"tfm\": \"{tfm}\",\n    \"frameworks\": [\n      {{\n        \"name\": \"Microsoft.NETCore.App\",\n        \"version\": \"{fw}\"\n      }},\n      {{\n        \"name\": \"Microsoft.AspNetCore.App\",\n        \"version\": \"{fw}\"\n      }}\n    ]\n  }}\n}}\n"
    )
}

/// `<Host>.deps.json` of a source build: the host and the Elsa modules as projects at 1.0.0
/// (audit §7: no version is ever set), third-party libraries as packages with their path.
fn deps_json(stem: &str, tfm: &str, packages: &[(&str, &str)]) -> String {
    let mut targets = vec![
        format!("      \"{stem}/1.0.0\": {{\n        \"dependencies\": {{\n          \"Elsa.Workflows.Core\": \"1.0.0\"\n        }}\n      }}"),
        "      \"Elsa.Workflows.Core/1.0.0\": {\n        \"runtime\": {\n          \"Elsa.Workflows.Core.dll\": {}\n        }\n      }".to_string(),
    ];
    let mut libraries = vec![
        format!("    \"{stem}/1.0.0\": {{\n      \"type\": \"project\",\n      \"serviceable\": false,\n      \"sha512\": \"\"\n    }}"),
        "    \"Elsa.Workflows.Core/1.0.0\": {\n      \"type\": \"project\",\n      \"serviceable\": false,\n      \"sha512\": \"\"\n    }".to_string(),
    ];
    for (id, v) in packages {
        let lower = id.to_ascii_lowercase();
        targets.push(format!(
            "      \"{id}/{v}\": {{\n        \"runtime\": {{\n          \"lib/{tfm}/{id}.dll\": {{}}\n        }}\n      }}"
        ));
        libraries.push(format!(
            "    \"{id}/{v}\": {{\n      \"type\": \"package\",\n      \"serviceable\": true,\n      \"sha512\": \"sha512-AAAA\",\n      \"path\": \"{lower}/{v}\",\n      \"hashPath\": \"{lower}.{v}.nupkg.sha512\"\n    }}"
        ));
    }
    format!(
        "{{\n  \"runtimeTarget\": {{\n    \"name\": \".NETCoreApp,Version=v{}\"\n  }},\n  \"targets\": {{\n    \".NETCoreApp,Version=v{}\": {{\n{}\n    }}\n  }},\n  \"libraries\": {{\n{}\n  }}\n}}\n",
        tfm.trim_start_matches("net"),
        tfm.trim_start_matches("net"),
        targets.join(",\n"),
        libraries.join(",\n")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_name_their_host_and_version() {
        assert_eq!(
            stock("elsaworkflows/elsa-server-v3-5:latest"),
            Some(Stock {
                host: Host::ServerWeb,
                minor: Some((3, 5)),
                patch: None,
                preview: false,
            })
        );
        assert_eq!(
            stock("elsaworkflows/elsa-server-and-studio-v3:3.8.0-rc2").map(|s| s.host),
            Some(Host::ModularServer)
        );
        assert_eq!(stock("elsa-server:latest").map(|s| s.minor), Some(None));
        assert_eq!(stock("registry.example:5000/team/elsa-server:3.5"), None);
        assert_eq!(stock("postgres:16"), None);
        assert_eq!(split("r:5000/a/b"), ("r:5000/a/b", None));
    }

    fn text(files: &[(String, File)], path: &str) -> String {
        match files.iter().find(|(p, _)| p == path).map(|(_, f)| f) {
            Some(File::Bytes(b)) => String::from_utf8_lossy(b).into_owned(),
            other => panic!("{path}: {other:?}"),
        }
    }

    #[test]
    fn contents_follow_the_release() {
        let at = |r: &str| stock(r).expect("stock").files();
        let has = |f: &[(String, File)], p: &str| f.iter().any(|(q, _)| q == p);
        // Audit rows 21/22: no PostgreSQL provider in Server.Web 3.0, SaS 3.0–3.2, ModularServer.
        let web30 = at("elsaworkflows/elsa-server-v3-0:3.0.6");
        assert!(!has(&web30, "/app/Elsa.EntityFrameworkCore.PostgreSql.dll"));
        let sqlite30 = text(&web30, "/app/Elsa.EntityFrameworkCore.Sqlite.dll");
        assert!(sqlite30.contains("_Initial") && !sqlite30.contains("_V3_"));
        assert!(!has(
            &at("elsaworkflows/elsa-server-and-studio-v3-2:3.2.4"),
            "/app/Elsa.EntityFrameworkCore.PostgreSql.dll"
        ));
        let web351 = at("elsaworkflows/elsa-server-v3-5:3.5.1");
        let pg = text(&web351, "/app/Elsa.EntityFrameworkCore.PostgreSql.dll");
        assert!(pg.contains("20250530104953_V3_5") && !pg.contains("_V3_6"));
        assert!(
            text(&web351, "/app/Elsa.EntityFrameworkCore.Sqlite.dll")
                .contains("20250530104854_V3_5")
        );
        assert!(
            text(&web351, "/app/Elsa.Server.Web.runtimeconfig.json")
                .contains("\"tfm\": \"net9.0\"")
        );
        assert!(
            text(&web351, "/app/Elsa.Server.Web.deps.json")
                .contains("\"path\": \"microsoft.entityframeworkcore/9.0.9\"")
        );
        assert!(
            text(&web351, "/app/Elsa.Server.Web.deps.json")
                .contains("\"Elsa.Workflows.Core/1.0.0\": {\n      \"type\": \"project\"")
        );
        assert!(has(&web351, "/entrypoint.sh"));
        assert!(!has(
            &at("elsaworkflows/elsa-server-v3-5:3.5.0"),
            "/entrypoint.sh"
        ));
        let preview = at("elsaworkflows/elsa-server-v3-6-0-preview:latest");
        let sqlite = text(&preview, "/app/Elsa.Persistence.EFCore.Sqlite.dll");
        assert!(sqlite.contains("_V3_5") && !sqlite.contains("_V3_6"));
        assert!(text(&preview, "/app/Elsa.Server.Web.runtimeconfig.json").contains("net9.0"));
        let sas = at("elsaworkflows/elsa-server-and-studio-v3-5:3.5.3");
        assert!(
            text(&sas, "/app/Elsa.ServerAndStudio.Web.deps.json").contains("elsa.studio/3.5.2")
        );
        let modular = at("elsaworkflows/elsa-server-and-studio-v3:3.8.0-rc2");
        assert!(!has(
            &modular,
            "/app/Elsa.Persistence.EFCore.PostgreSql.dll"
        ));
        assert!(text(&modular, "/app/Elsa.ModularServer.Web.deps.json").contains("cshells/0.0.28"));
        assert!(
            text(&modular, "/app/Elsa.ModularServer.Web.runtimeconfig.json").contains("net10.0")
        );
    }
}
