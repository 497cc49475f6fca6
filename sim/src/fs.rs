//! What a simulated container's filesystem holds, for `pods/exec`: the image's files (the
//! `images:` table of `sim.yaml`, or a built-in table for the stock Elsa images, or a minimal
//! shell image), plus the files the app created at run time (per pod `files:`).
//!
//! Names, sizes and directories are modelled, and a file's bytes where the image table or
//! `sim.yaml` gives them (what `cat` and `grep` read); a file without bytes holds `size` NULs.

use std::collections::BTreeMap;

use super::config::{FileConfig, ImageConfig};
use crate::images;

/// A file or a directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Node {
    /// A regular file of this many bytes.
    File(u64),
    /// A directory.
    Dir,
}

/// An in-memory directory tree, keyed by absolute, normalised path.
#[derive(Debug, Clone, Default)]
pub struct Fs {
    nodes: BTreeMap<String, Node>,
    data: BTreeMap<String, Vec<u8>>,
}

/// Normalise an absolute path: no empty or `.` segments, `..` resolved, no trailing slash.
pub fn normalise(path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for seg in path.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            s => parts.push(s),
        }
    }
    format!("/{}", parts.join("/"))
}

impl Fs {
    /// An empty tree with only `/`.
    pub fn new() -> Fs {
        let mut nodes = BTreeMap::new();
        nodes.insert("/".to_string(), Node::Dir);
        Fs {
            nodes,
            data: BTreeMap::new(),
        }
    }

    fn add_parents(&mut self, path: &str) {
        let mut p = path;
        while let Some(i) = p.rfind('/') {
            p = &p[..i];
            let dir = if p.is_empty() { "/" } else { p };
            self.nodes.insert(dir.to_string(), Node::Dir);
            if p.is_empty() {
                break;
            }
        }
    }

    /// Add a file (a path ending in `/` is a directory), with its parent directories.
    pub fn add(&mut self, path: &str, size: u64) {
        let is_dir = path.ends_with('/');
        let p = normalise(path);
        self.add_parents(&p);
        if p != "/" {
            self.data.remove(&p);
            self.nodes
                .insert(p, if is_dir { Node::Dir } else { Node::File(size) });
        }
    }

    /// Add a regular file holding `bytes` (its size is their length).
    pub fn add_bytes(&mut self, path: &str, bytes: Vec<u8>) {
        let p = normalise(path);
        self.add(&p, bytes.len() as u64);
        self.data.insert(p, bytes);
    }

    /// Add the entries of a `files:` list.
    pub fn add_config(&mut self, files: &[FileConfig]) {
        for f in files {
            match f {
                FileConfig::Path(p) => self.add(p, 0),
                FileConfig::Sized(s) => match &s.content {
                    Some(text) => self.add_bytes(&s.path, text.clone().into_bytes()),
                    None => {
                        self.add(&s.path, s.size);
                        self.data.remove(&normalise(&s.path));
                    }
                },
            }
        }
    }

    /// The bytes of the regular file at `path`: its contents, or `size` NULs when none were
    /// given (capped at 16 MiB); `None` when it is not a regular file.
    pub fn read(&self, path: &str) -> Option<Vec<u8>> {
        let p = normalise(path);
        match self.nodes.get(&p)? {
            Node::File(size) => {
                Some(self.data.get(&p).cloned().unwrap_or_else(|| {
                    vec![0; usize::try_from((*size).min(16 << 20)).unwrap_or(0)]
                }))
            }
            Node::Dir => None,
        }
    }

    /// What is at `path` (absolute).
    pub fn lookup(&self, path: &str) -> Option<Node> {
        self.nodes.get(&normalise(path)).copied()
    }

    /// Names in directory `dir` (absolute), sorted by byte order.
    pub fn children(&self, dir: &str) -> Vec<String> {
        let dir = normalise(dir);
        let prefix = if dir == "/" {
            "/".to_string()
        } else {
            format!("{dir}/")
        };
        self.nodes
            .range(prefix.clone()..)
            .take_while(|(k, _)| k.starts_with(&prefix))
            .filter_map(|(k, _)| {
                let rest = &k[prefix.len()..];
                (!rest.is_empty() && !rest.contains('/')).then(|| rest.to_string())
            })
            .collect()
    }
}

/// A container's filesystem and whether it has a shell (`sh`, `ls`, `echo`).
#[derive(Debug, Clone)]
pub struct ContainerFs {
    /// The files.
    pub fs: Fs,
    /// `/bin/sh` and coreutils exist.
    pub shell: bool,
}

/// What a Debian/Ubuntu-based image always has.
const BASE_FILES: &[&str] = &[
    "/bin/sh",
    "/bin/dash",
    "/bin/bash",
    "/bin/ls",
    "/bin/echo",
    "/bin/true",
    "/bin/cat",
    "/bin/grep",
    "/usr/bin/sort",
    "/usr/bin/head",
    "/etc/hostname",
    "/etc/hosts",
    "/etc/passwd",
    "/etc/resolv.conf",
    "/tmp/",
    "/root/",
    "/var/",
];

/// The `images:` entry for an image: by full reference, then by repository without tag.
fn declared<'a>(images: &'a BTreeMap<String, ImageConfig>, image: &str) -> Option<&'a ImageConfig> {
    images.get(image).or_else(|| {
        let (repo, _) = images::split(image);
        images.get(repo)
    })
}

/// The files of a stock Elsa image (module `images`).
fn elsa_image(fs: &mut Fs, image: &str) -> bool {
    let Some(stock) = images::stock(image) else {
        return false;
    };
    for (path, file) in stock.files() {
        match file {
            images::File::Sized(size) => fs.add(&path, size),
            images::File::Bytes(bytes) => fs.add_bytes(&path, bytes),
        }
    }
    true
}

/// The filesystem of a container running `image`, with the pod's runtime `files` added and the
/// `shell` override applied.
pub fn container_fs(
    images: &BTreeMap<String, ImageConfig>,
    image: &str,
    runtime_files: &[FileConfig],
    shell_override: Option<bool>,
) -> ContainerFs {
    let mut fs = Fs::new();
    let shell = match declared(images, image) {
        Some(decl) => {
            let shell = decl.shell.unwrap_or(true);
            if shell {
                for f in BASE_FILES {
                    fs.add(f, 0);
                }
            }
            if let Some(stock) = &decl.stock {
                elsa_image(&mut fs, stock);
            }
            fs.add_config(&decl.files);
            shell
        }
        None => {
            for f in BASE_FILES {
                fs.add(f, 0);
            }
            elsa_image(&mut fs, image);
            true
        }
    };
    fs.add_config(runtime_files);
    ContainerFs {
        fs,
        shell: shell_override.unwrap_or(shell),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tree_and_children() {
        let mut fs = Fs::new();
        fs.add("/app/a.dll", 3);
        fs.add("/app/App_Data/", 0);
        fs.add("/app/.hidden", 1);
        assert_eq!(fs.lookup("/app"), Some(Node::Dir));
        assert_eq!(fs.lookup("/app/./a.dll"), Some(Node::File(3)));
        assert_eq!(fs.lookup("/app/App_Data"), Some(Node::Dir));
        assert_eq!(fs.lookup("/nope"), None);
        assert_eq!(fs.children("/app"), vec![".hidden", "App_Data", "a.dll"]);
        assert_eq!(fs.children("/"), vec!["app"]);
    }

    #[test]
    fn stock_elsa_images() {
        let none = BTreeMap::new();
        let v35 = container_fs(&none, "elsaworkflows/elsa-server-v3-5:3.5.3", &[], None);
        assert!(v35.shell);
        assert!(v35.fs.lookup("/app/Elsa.Server.Web.dll").is_some());
        assert!(
            v35.fs
                .lookup("/app/Elsa.EntityFrameworkCore.PostgreSql.dll")
                .is_some()
        );
        assert!(v35.fs.lookup("/app/App_Data/elsa.sqlite.db").is_none());
        let v36 = container_fs(
            &none,
            "elsaworkflows/elsa-server-v3-6-0-preview:3.6.0",
            &[],
            None,
        );
        assert!(v36.fs.lookup("/app/elsa.sqlite.db").is_some());
        assert!(
            v36.fs
                .lookup("/app/Elsa.Persistence.EFCore.PostgreSql.dll")
                .is_none()
        );
        let modular = container_fs(
            &none,
            "elsaworkflows/elsa-server-and-studio-v3:3.8.0",
            &[],
            None,
        );
        assert!(
            modular
                .fs
                .lookup("/app/Elsa.ModularServer.Web.dll")
                .is_some()
        );
        // Audit rows 1 and 21: the ModularServer image ships only the SQLite provider.
        assert!(
            modular
                .fs
                .lookup("/app/Elsa.Persistence.EFCore.PostgreSql.dll")
                .is_none()
        );
        let sqlite = modular
            .fs
            .read("/app/Elsa.Persistence.EFCore.Sqlite.dll")
            .expect("the SQLite provider's bytes");
        assert!(
            sqlite.windows(19).any(|w| w == b"20260520121618_V3_8"),
            "the 3.8 Runtime migration id is in the assembly"
        );
        let other = container_fs(&none, "postgres:16", &[], None);
        assert!(other.shell && other.fs.lookup("/bin/ls").is_some());
        assert!(other.fs.lookup("/app").is_none());
    }

    #[test]
    fn declared_images_and_overrides() {
        let mut images = BTreeMap::new();
        images.insert(
            "registry.example/elsa-custom".to_string(),
            ImageConfig {
                stock: None,
                files: vec![FileConfig::Path("/app/Custom.dll".into())],
                shell: Some(false),
            },
        );
        let c = container_fs(
            &images,
            "registry.example/elsa-custom:1.0",
            &[FileConfig::Path("/app/App_Data/elsa.sqlite.db".into())],
            None,
        );
        assert!(!c.shell);
        assert!(c.fs.lookup("/app/Custom.dll").is_some());
        assert!(c.fs.lookup("/app/App_Data/elsa.sqlite.db").is_some());
        assert!(c.fs.lookup("/bin/sh").is_none());
        let c = container_fs(&images, "busybox", &[], Some(false));
        assert!(!c.shell);
        images.insert(
            "elsa-server:latest".to_string(),
            ImageConfig {
                stock: Some("elsaworkflows/elsa-server-v3-2:3.2.4".into()),
                files: vec![FileConfig::Sized(crate::config::SizedFileConfig {
                    path: "/app/notes.txt".into(),
                    size: 0,
                    content: Some("hello".into()),
                })],
                shell: None,
            },
        );
        let c = container_fs(&images, "elsa-server:latest", &[], None);
        assert!(c.shell);
        assert_eq!(c.fs.read("/app/notes.txt"), Some(b"hello".to_vec()));
        assert_eq!(c.fs.lookup("/app/notes.txt"), Some(Node::File(5)));
        assert!(
            c.fs.lookup("/app/Elsa.EntityFrameworkCore.Sqlite.dll")
                .is_some()
        );
        assert_eq!(c.fs.read("/app/App_Data"), None);
    }
}
