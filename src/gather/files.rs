//! File listings by glob, as the container sees its filesystem: `/app/*.dll`, `/app/*.db*`.
//!
//! Patterns are container paths. They are matched below `root` (the container's `/`, or where a
//! test or a simulated kubelet put a copy of it), and results are reported with `root` stripped,
//! so `/app/elsa.sqlite.db` reads the same whatever the root. A pattern that matches nothing is a
//! listing with no entries (an absent SQLite file is an answer); a directory that cannot be read,
//! an invalid pattern, or a pattern that climbs out with `..` is an error of that listing.

use std::path::{Component, Path};

/// At most this many entries per pattern; more set `truncated`.
pub const MAX_ENTRIES: usize = 1000;

pub use crate::facts::network::{FileEntry, FileKind, FileListing};

/// Lists the paths matching `pattern` (a container path) below `root`. Never panics.
pub fn list(pattern: &str, root: &Path) -> FileListing {
    let mut listing = FileListing {
        pattern: pattern.to_owned(),
        entries: Vec::new(),
        truncated: false,
        errors: Vec::new(),
    };
    let relative = pattern.trim_start_matches('/');
    if relative.is_empty() {
        listing.errors.push("empty pattern".into());
        return listing;
    }
    if Path::new(relative)
        .components()
        .any(|c| matches!(c, Component::ParentDir))
    {
        listing
            .errors
            .push("a pattern may not contain `..` (it would leave the root)".into());
        return listing;
    }
    let root_text = root.to_string_lossy();
    let full = format!(
        "{}/{relative}",
        glob::Pattern::escape(root_text.trim_end_matches('/'))
    );
    let options = glob::MatchOptions {
        case_sensitive: true,
        require_literal_separator: true,
        require_literal_leading_dot: false,
    };
    let paths = match glob::glob_with(&full, options) {
        Ok(p) => p,
        Err(e) => {
            listing.errors.push(format!("invalid pattern: {}", e.msg));
            return listing;
        }
    };
    for item in paths {
        match item {
            Ok(path) => {
                if listing.entries.len() == MAX_ENTRIES {
                    listing.truncated = true;
                    break;
                }
                let shown = container_path(&path, root);
                match std::fs::symlink_metadata(&path) {
                    Ok(meta) => listing.entries.push(FileEntry {
                        path: shown,
                        kind: kind(&meta.file_type()),
                        size: meta.len(),
                        modified: meta.modified().ok().and_then(rfc3339),
                    }),
                    Err(e) => listing.errors.push(format!("{shown}: {}", io_reason(&e))),
                }
            }
            Err(e) => listing.errors.push(format!(
                "{}: {}",
                container_path(e.path(), root),
                io_reason(e.error())
            )),
        }
    }
    listing
}

fn container_path(path: &Path, root: &Path) -> String {
    match path.strip_prefix(root) {
        Ok(rest) => format!("/{}", rest.to_string_lossy()),
        Err(_) => path.to_string_lossy().into_owned(),
    }
}

fn kind(t: &std::fs::FileType) -> FileKind {
    if t.is_symlink() {
        FileKind::Symlink
    } else if t.is_dir() {
        FileKind::Dir
    } else if t.is_file() {
        FileKind::File
    } else {
        FileKind::Other
    }
}

fn io_reason(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::PermissionDenied => "permission denied".into(),
        std::io::ErrorKind::NotFound => "not found".into(),
        _ => e.to_string(),
    }
}

fn rfc3339(t: std::time::SystemTime) -> Option<String> {
    let ts = jiff::Timestamp::try_from(t).ok()?;
    Some(ts.round(jiff::Unit::Second).ok()?.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree() -> tempfile::TempDir {
        let dir = tempfile::tempdir().expect("tmp");
        let app = dir.path().join("app");
        std::fs::create_dir_all(app.join("data")).expect("mkdir");
        std::fs::write(app.join("Elsa.dll"), b"1234").expect("write");
        std::fs::write(app.join("Npgsql.dll"), b"12").expect("write");
        std::fs::write(app.join("elsa.sqlite.db"), b"").expect("write");
        std::fs::write(app.join(".hidden.dll"), b"").expect("write");
        dir
    }

    #[test]
    fn lists_container_paths_with_size_and_time() {
        let dir = tree();
        let l = list("/app/*.dll", dir.path());
        assert!(l.is_ok(), "{l:?}");
        let paths: Vec<&str> = l.entries.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(
            paths,
            ["/app/.hidden.dll", "/app/Elsa.dll", "/app/Npgsql.dll"]
        );
        let elsa = &l.entries[1];
        assert_eq!((elsa.kind, elsa.size), (FileKind::File, 4));
        let modified = elsa.modified.as_deref().expect("mtime");
        assert!(
            modified.ends_with('Z') && modified.parse::<jiff::Timestamp>().is_ok(),
            "{modified}"
        );
        let l = list("/app/*", dir.path());
        assert!(
            l.entries
                .iter()
                .any(|e| e.path == "/app/data" && e.kind == FileKind::Dir)
        );
    }

    #[test]
    fn nothing_matching_is_an_empty_listing() {
        let dir = tree();
        let l = list("/app/*.db-wal", dir.path());
        assert!(l.is_ok() && l.entries.is_empty(), "{l:?}");
        let l = list("/nowhere/*", dir.path());
        assert!(l.is_ok() && l.entries.is_empty(), "{l:?}");
    }

    #[test]
    fn bad_patterns_are_errors_not_panics() {
        let dir = tree();
        assert!(!list("/app/[", dir.path()).is_ok());
        assert!(!list("/../etc/*", dir.path()).is_ok());
        assert!(!list("/", dir.path()).is_ok());
        assert!(!list("", dir.path()).is_ok());
    }

    #[test]
    fn a_root_with_glob_characters_is_taken_literally() {
        let outer = tempfile::tempdir().expect("tmp");
        let root = outer.path().join("r[1]");
        std::fs::create_dir_all(root.join("app")).expect("mkdir");
        std::fs::write(root.join("app/x.dll"), b"").expect("write");
        let l = list("app/*.dll", &root);
        assert_eq!(l.entries.len(), 1, "{l:?}");
        assert_eq!(l.entries[0].path, "/app/x.dll");
    }
}
