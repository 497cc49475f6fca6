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
    Some(Stock { host, minor })
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

    fn ships_postgres(self) -> bool {
        match self.host {
            Host::ServerWeb => self.minor.is_none_or(|v| v < (3, 6)),
            Host::ServerAndStudio | Host::ModularServer => true,
            Host::Studio => false,
        }
    }

    /// Files under `/app` (and the image root) with their sizes.
    pub fn files(self) -> Vec<(String, u64)> {
        let mut out = vec![
            ("/usr/share/dotnet/dotnet".to_string(), 70_000),
            ("/app/appsettings.json".to_string(), 4_000),
        ];
        let Some(host) = self.host_assembly() else {
            out.push(("/app/wwwroot/index.html".to_string(), 2_000));
            return out;
        };
        let ef = self.ef_prefix();
        let mut dlls = vec![
            host.to_string(),
            "Elsa.dll".to_string(),
            "Elsa.Workflows.Core.dll".to_string(),
            "Microsoft.Data.Sqlite.dll".to_string(),
            format!("{ef}.Sqlite.dll"),
        ];
        if self.ships_postgres() {
            dlls.push(format!("{ef}.PostgreSql.dll"));
            dlls.push("Npgsql.dll".to_string());
            dlls.push("Npgsql.EntityFrameworkCore.PostgreSQL.dll".to_string());
        }
        out.extend(dlls.into_iter().map(|d| (format!("/app/{d}"), 250_000)));
        if self.minor.is_some_and(|v| v >= (3, 5)) {
            out.push(("/entrypoint.sh".to_string(), 1_200));
        }
        // The SQLite files the app creates at every start, whatever its configuration.
        let always = match self.host {
            Host::ServerWeb if self.minor.is_some_and(|v| v < (3, 6)) => None,
            Host::ServerWeb | Host::ServerAndStudio => Some("/app/elsa.sqlite.db"),
            Host::ModularServer => Some("/app/elsa_workflows.db"),
            Host::Studio => None,
        };
        out.extend(always.map(|p| (p.to_string(), 126_976)));
        out
    }
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
                minor: Some((3, 5))
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
}
