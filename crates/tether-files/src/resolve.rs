//! Walking a relative path under the root without letting a symlink lead out of it.
//!
//! Each component is looked at with `symlink_metadata`; a symlink is followed only when its
//! canonical target is inside the canonical root. Checking every component, not just the
//! last, refuses a link to a folder outside (`/docs -> /etc`) and a chain of links whose
//! last hop escapes. The check and the later `open` are separate system calls, so someone
//! who can write inside the root can still race them; this guards against links placed in
//! the tree, not against a hostile local user.

use std::fmt;
use std::fs::{self, Metadata};
use std::io;
use std::path::{Component, Path, PathBuf};

/// The folder files are served from, canonicalized once.
#[derive(Debug, Clone)]
pub struct Root {
    canonical: PathBuf,
}

/// A path that resolved inside the root, with the metadata of what it names (the target,
/// for a symlink).
#[derive(Debug)]
pub struct Resolved {
    /// The path to open: the root joined with the components, symlinks replaced by their
    /// canonical targets.
    pub path: PathBuf,
    /// The metadata of the file or folder at `path`.
    pub metadata: Metadata,
}

/// Why a path did not resolve. The caller answers 404 to all of them (telling "outside the
/// root" from "missing" would tell a client what exists outside).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// Nothing there, a dangling symlink, or a file used as a folder (`/a.txt/b`).
    NotFound,
    /// A symlink whose target is outside the root, or a component that is not a plain
    /// name (`..`, an absolute path).
    Escapes,
    /// A FIFO, socket or device: opening one could block or read something that is not a
    /// file.
    SpecialFile,
    /// Another error from the file system (permission denied, too many open files, a
    /// symlink loop).
    Io(io::ErrorKind),
}

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refused::NotFound => f.write_str("not found"),
            Refused::Escapes => f.write_str("escapes the root"),
            Refused::SpecialFile => f.write_str("not a regular file or folder"),
            Refused::Io(kind) => write!(f, "i/o error: {kind}"),
        }
    }
}

impl std::error::Error for Refused {}

impl Refused {
    fn from_io(e: &io::Error) -> Refused {
        match e.kind() {
            io::ErrorKind::NotFound | io::ErrorKind::NotADirectory => Refused::NotFound,
            kind => Refused::Io(kind),
        }
    }
}

impl Root {
    /// Canonicalizes `dir` once; every resolved path must stay under the result.
    ///
    /// # Errors
    /// The error of `canonicalize`, or `NotADirectory` when `dir` is not a folder.
    pub fn new(dir: impl AsRef<Path>) -> io::Result<Root> {
        let canonical = fs::canonicalize(dir)?;
        if !fs::metadata(&canonical)?.is_dir() {
            return Err(io::Error::new(
                io::ErrorKind::NotADirectory,
                format!("{} is not a folder", canonical.display()),
            ));
        }
        Ok(Root { canonical })
    }

    /// The canonical root folder.
    pub fn path(&self) -> &Path {
        &self.canonical
    }

    /// Whether `canonical` (already canonical) is the root or under it.
    pub fn contains(&self, canonical: &Path) -> bool {
        canonical.starts_with(&self.canonical)
    }

    /// Walks `relative` (plain names only, as [`crate::Mapped::relative`] gives) from the
    /// root; an empty path resolves to the root itself.
    ///
    /// # Errors
    /// A [`Refused`]: missing, escaping through a symlink, a special file, or an I/O error.
    pub fn resolve(&self, relative: &Path) -> Result<Resolved, Refused> {
        let mut current = self.canonical.clone();
        let mut metadata = fs::metadata(&current).map_err(|e| Refused::from_io(&e))?;
        for component in relative.components() {
            let Component::Normal(name) = component else {
                return Err(Refused::Escapes);
            };
            if !metadata.is_dir() {
                return Err(Refused::NotFound);
            }
            current.push(name);
            let here = fs::symlink_metadata(&current).map_err(|e| Refused::from_io(&e))?;
            metadata = if here.file_type().is_symlink() {
                let target = self.follow(&current)?;
                let meta = fs::metadata(&target).map_err(|e| Refused::from_io(&e))?;
                current = target;
                meta
            } else {
                here
            };
        }
        if !metadata.is_file() && !metadata.is_dir() {
            return Err(Refused::SpecialFile);
        }
        Ok(Resolved {
            path: current,
            metadata,
        })
    }

    /// The canonical target of the symlink at `link`, when it is inside the root.
    ///
    /// # Errors
    /// `NotFound` for a dangling link, `Escapes` for a target outside the root.
    pub fn follow(&self, link: &Path) -> Result<PathBuf, Refused> {
        let target = fs::canonicalize(link).map_err(|e| Refused::from_io(&e))?;
        if self.contains(&target) {
            Ok(target)
        } else {
            Err(Refused::Escapes)
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::os::unix::fs::symlink;
    use std::sync::atomic::{AtomicU32, Ordering};

    /// A fresh folder under the system temp dir, removed on drop.
    pub(crate) struct TempDir(pub PathBuf);

    impl TempDir {
        pub(crate) fn new(tag: &str) -> TempDir {
            static NEXT: AtomicU32 = AtomicU32::new(0);
            let n = NEXT.fetch_add(1, Ordering::Relaxed);
            let dir =
                std::env::temp_dir().join(format!("tether-files-{tag}-{}-{n}", std::process::id()));
            let _ = fs::remove_dir_all(&dir);
            fs::create_dir_all(&dir).unwrap();
            TempDir(dir)
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    /// `<tmp>/root/{index.html, sub/page.txt}` and `<tmp>/secret.txt` beside the root.
    fn tree() -> (TempDir, Root) {
        let tmp = TempDir::new("resolve");
        let root = tmp.0.join("root");
        fs::create_dir_all(root.join("sub")).unwrap();
        fs::write(root.join("index.html"), "hello").unwrap();
        fs::write(root.join("sub/page.txt"), "page").unwrap();
        fs::write(tmp.0.join("secret.txt"), "secret").unwrap();
        fs::create_dir_all(tmp.0.join("outside")).unwrap();
        fs::write(tmp.0.join("outside/data.txt"), "outside").unwrap();
        let r = Root::new(&root).unwrap();
        (tmp, r)
    }

    #[test]
    fn root_must_be_a_folder() {
        let (tmp, _) = tree();
        assert!(Root::new(tmp.0.join("secret.txt")).is_err());
        assert!(Root::new(tmp.0.join("missing")).is_err());
    }

    #[test]
    fn plain_file_and_folder() {
        let (_tmp, root) = tree();
        let r = root.resolve(Path::new("index.html")).unwrap();
        assert!(r.metadata.is_file());
        assert_eq!(r.metadata.len(), 5);
        assert_eq!(r.path, root.path().join("index.html"));
        let r = root.resolve(Path::new("sub")).unwrap();
        assert!(r.metadata.is_dir());
        let r = root.resolve(Path::new("")).unwrap();
        assert!(r.metadata.is_dir());
        assert_eq!(r.path, root.path());
    }

    #[test]
    fn missing_and_file_as_folder_are_not_found() {
        let (_tmp, root) = tree();
        assert_eq!(
            root.resolve(Path::new("nope")).unwrap_err(),
            Refused::NotFound
        );
        assert_eq!(
            root.resolve(Path::new("index.html/x")).unwrap_err(),
            Refused::NotFound
        );
    }

    #[test]
    fn non_plain_components_escape() {
        let (_tmp, root) = tree();
        assert_eq!(
            root.resolve(Path::new("../secret.txt")).unwrap_err(),
            Refused::Escapes
        );
        assert_eq!(
            root.resolve(Path::new("/etc/passwd")).unwrap_err(),
            Refused::Escapes
        );
    }

    #[test]
    fn link_inside_to_inside_is_followed() {
        let (_tmp, root) = tree();
        symlink("sub/page.txt", root.path().join("alias.txt")).unwrap();
        symlink("sub", root.path().join("subdir")).unwrap();
        let r = root.resolve(Path::new("alias.txt")).unwrap();
        assert_eq!(r.path, root.path().join("sub/page.txt"));
        assert_eq!(r.metadata.len(), 4);
        let r = root.resolve(Path::new("subdir/page.txt")).unwrap();
        assert_eq!(r.path, root.path().join("sub/page.txt"));
    }

    #[test]
    fn link_to_file_beside_root_is_refused() {
        let (tmp, root) = tree();
        symlink(tmp.0.join("secret.txt"), root.path().join("leak.txt")).unwrap();
        symlink("../secret.txt", root.path().join("sub/rel.txt")).unwrap();
        assert_eq!(
            root.resolve(Path::new("leak.txt")).unwrap_err(),
            Refused::Escapes
        );
        // `../secret.txt` from `sub` is `root/secret.txt`: missing, and still inside.
        assert_eq!(
            root.resolve(Path::new("sub/rel.txt")).unwrap_err(),
            Refused::NotFound
        );
        symlink("../../secret.txt", root.path().join("sub/rel2.txt")).unwrap();
        assert_eq!(
            root.resolve(Path::new("sub/rel2.txt")).unwrap_err(),
            Refused::Escapes
        );
    }

    #[test]
    fn folder_link_outside_is_refused() {
        let (tmp, root) = tree();
        symlink(tmp.0.join("outside"), root.path().join("ext")).unwrap();
        assert_eq!(
            root.resolve(Path::new("ext/data.txt")).unwrap_err(),
            Refused::Escapes
        );
        assert_eq!(
            root.resolve(Path::new("ext")).unwrap_err(),
            Refused::Escapes
        );
    }

    #[test]
    fn root_prefix_sibling_is_outside() {
        // `<tmp>/rootx` starts with the bytes of `<tmp>/root` but is not under it.
        let (tmp, root) = tree();
        fs::create_dir_all(tmp.0.join("rootx")).unwrap();
        fs::write(tmp.0.join("rootx/f"), "x").unwrap();
        symlink(tmp.0.join("rootx/f"), root.path().join("f")).unwrap();
        assert_eq!(root.resolve(Path::new("f")).unwrap_err(), Refused::Escapes);
    }

    #[test]
    fn chain_of_links_escaping_is_refused() {
        let (tmp, root) = tree();
        // a -> b (inside) -> c (inside) -> secret (outside)
        symlink(tmp.0.join("secret.txt"), root.path().join("c")).unwrap();
        symlink("c", root.path().join("b")).unwrap();
        symlink("b", root.path().join("a")).unwrap();
        assert_eq!(root.resolve(Path::new("a")).unwrap_err(), Refused::Escapes);
        // A chain through an outside link that comes back in ends inside: allowed.
        symlink(root.path().join("index.html"), tmp.0.join("back")).unwrap();
        symlink(tmp.0.join("back"), root.path().join("round")).unwrap();
        let r = root.resolve(Path::new("round")).unwrap();
        assert_eq!(r.path, root.path().join("index.html"));
    }

    #[test]
    fn dangling_link_is_not_found() {
        let (_tmp, root) = tree();
        symlink("nowhere.txt", root.path().join("dangling")).unwrap();
        assert_eq!(
            root.resolve(Path::new("dangling")).unwrap_err(),
            Refused::NotFound
        );
    }

    #[test]
    fn link_loop_is_an_error() {
        let (_tmp, root) = tree();
        symlink("loop2", root.path().join("loop1")).unwrap();
        symlink("loop1", root.path().join("loop2")).unwrap();
        assert!(matches!(
            root.resolve(Path::new("loop1")).unwrap_err(),
            Refused::Io(_)
        ));
    }

    #[test]
    fn socket_is_a_special_file() {
        let (_tmp, root) = tree();
        let _listener = std::os::unix::net::UnixListener::bind(root.path().join("sock")).unwrap();
        assert_eq!(
            root.resolve(Path::new("sock")).unwrap_err(),
            Refused::SpecialFile
        );
    }
}
