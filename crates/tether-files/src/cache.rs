//! An open-file cache in the manner of nginx's `open_file_cache`.
//!
//! A hit saves the path walk, the `open` and the `fstat` of a request, and keeps the ETag
//! and dates already formatted. An entry is trusted for [`CacheConfig::valid_for`] (1 s by
//! default), then the path is walked and stat'ed again: an unchanged file keeps its entry
//! (and open descriptor), a changed one is reopened. "Not found" and the other lasting
//! refusals are cached for as long, so a flood of requests for a missing file costs one
//! walk per second instead of one per request.
//!
//! The cache is not thread-safe, on purpose: the engine runs one single-threaded worker per
//! core, and each worker keeps its own cache, which needs no lock. Values are `Arc`s so a
//! response still sending a file keeps it open after its entry is evicted or replaced.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io;

use bytes::Bytes;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::resolve::{Refused, Root};
use crate::validators::Stamp;

/// A file or folder as opened, with everything a response needs precomputed.
#[derive(Debug)]
pub struct Opened {
    /// The open file; `None` for a folder.
    pub file: Option<File>,
    /// The path it was opened at (symlinks resolved).
    pub path: PathBuf,
    /// A folder.
    pub is_dir: bool,
    /// Inode, length and nanosecond mtime, from the opened file's own `fstat`.
    pub stamp: Stamp,
    /// The modification time in seconds since the epoch.
    pub mtime: u64,
    /// The strong ETag, quotes included.
    pub etag: String,
    /// The Last-Modified value.
    pub last_modified: String,
    /// The Content-Type by the file's extension (meaningless for a folder).
    pub content_type: String,
    /// The bytes of a small file ([`CacheConfig::max_content`]), read when it was opened:
    /// its answer is then one write with the head, rather than a write, a `sendfile` and
    /// the two `setsockopt` calls that cork them together.
    pub content: Option<Bytes>,
}

impl Opened {
    /// The length in bytes.
    pub fn len(&self) -> u64 {
        self.stamp.len
    }

    /// Whether the file is empty.
    pub fn is_empty(&self) -> bool {
        self.stamp.len == 0
    }

    /// The inode number.
    pub fn inode(&self) -> u64 {
        self.stamp.inode
    }
}

/// How long entries are trusted and how many are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheConfig {
    /// How long an entry is used without looking at the file system again.
    pub valid_for: Duration,
    /// The most entries kept; the least recently used goes first. 0 turns caching off.
    pub max_entries: usize,
    /// Files up to this size keep their bytes in the cache too (0: none). With the
    /// defaults a worker holds at most 1000 x 16 KiB of them.
    pub max_content: u64,
}

impl Default for CacheConfig {
    /// 1 s, 1000 entries, the bytes of files up to 16 KiB.
    fn default() -> CacheConfig {
        CacheConfig {
            valid_for: Duration::from_secs(1),
            max_entries: 1000,
            max_content: 16 << 10,
        }
    }
}

struct Slot {
    result: Result<Arc<Opened>, Refused>,
    checked: Instant,
    used: u64,
}

/// The cache of one worker, keyed by the bytes of the relative path asked for (hashing
/// bytes, not a `Path`'s components, keeps a hit cheap).
pub struct OpenFileCache {
    root: Root,
    config: CacheConfig,
    entries: HashMap<Key, Slot>,
    /// Use (a counter) to key, as of when each key was stored or last passed over for
    /// eviction: a hit only bumps its slot's `used`, and eviction skips (and re-files) a
    /// key used since it was filed, so that the oldest of the rest goes first.
    recency: BTreeMap<u64, Key>,
    tick: u64,
}

type Key = Arc<[u8]>;

/// The `len` bytes of a small file, from its start.
fn read_all(file: &File, len: u64) -> Result<Bytes, Refused> {
    use std::os::unix::fs::FileExt;
    let mut buf =
        vec![0u8; usize::try_from(len).map_err(|_| Refused::Io(io::ErrorKind::InvalidData))?];
    file.read_exact_at(&mut buf, 0)
        .map_err(|e| Refused::Io(e.kind()))?;
    Ok(Bytes::from(buf))
}

fn key(relative: &Path) -> &[u8] {
    relative.as_os_str().as_encoded_bytes()
}

impl OpenFileCache {
    /// An empty cache for files under `root`.
    pub fn new(root: Root, config: CacheConfig) -> OpenFileCache {
        OpenFileCache {
            root,
            config,
            entries: HashMap::new(),
            recency: BTreeMap::new(),
            tick: 0,
        }
    }

    /// The root files are opened under.
    pub fn root(&self) -> &Root {
        &self.root
    }

    /// The number of entries, negative ones included.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are no entries.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Whether `relative` has an entry (valid or not).
    pub fn contains(&self, relative: &Path) -> bool {
        self.entries.contains_key(key(relative))
    }

    /// Drops every entry.
    pub fn clear(&mut self) {
        self.entries.clear();
        self.recency.clear();
    }

    /// The file or folder at `relative` (as [`crate::Mapped::relative`] gives) at time `now`.
    ///
    /// # Errors
    /// The [`Refused`] of the path walk, or of `open`/`fstat`. `NotFound`, `Escapes` and
    /// `SpecialFile` are cached like files; `Io` errors are not, since they may be passing
    /// (too many open files) and caching them would prolong an outage.
    pub fn open(&mut self, relative: &Path, now: Instant) -> Result<Arc<Opened>, Refused> {
        self.tick += 1;
        let tick = self.tick;
        let previous = match self.entries.get_mut(key(relative)) {
            Some(slot) if now.saturating_duration_since(slot.checked) < self.config.valid_for => {
                slot.used = tick;
                return slot.result.clone();
            }
            Some(slot) => slot.result.as_ref().ok().cloned(),
            None => None,
        };
        let result = self.load(relative, previous.as_ref());
        if matches!(result, Err(Refused::Io(_))) {
            self.remove(relative);
        } else {
            self.store(relative, result.clone(), now);
        }
        result
    }

    /// Walks and opens `relative`, keeping `previous` when the file has not changed.
    fn load(
        &self,
        relative: &Path,
        previous: Option<&Arc<Opened>>,
    ) -> Result<Arc<Opened>, Refused> {
        let resolved = self.root.resolve(relative)?;
        let stamp = Stamp::from_metadata(&resolved.metadata);
        let is_dir = resolved.metadata.is_dir();
        if let Some(prev) = previous {
            if prev.path == resolved.path && prev.stamp == stamp && prev.is_dir == is_dir {
                return Ok(Arc::clone(prev));
            }
        }
        let (file, stamp) = if is_dir {
            (None, stamp)
        } else {
            let file = File::open(&resolved.path).map_err(|e| Refused::Io(e.kind()))?;
            // The facts of what was opened, not of what was stat'ed a moment before.
            let meta = file.metadata().map_err(|e| Refused::Io(e.kind()))?;
            if !meta.is_file() {
                return Err(Refused::SpecialFile);
            }
            (Some(file), Stamp::from_metadata(&meta))
        };
        let content = match &file {
            Some(f) if stamp.len <= self.config.max_content => Some(read_all(f, stamp.len)?),
            _ => None,
        };
        Ok(Arc::new(Opened {
            content,
            file,
            path: resolved.path,
            is_dir,
            stamp,
            mtime: stamp.mtime_secs(),
            etag: stamp.etag(),
            last_modified: stamp.last_modified(),
            content_type: crate::mime::content_type(relative),
        }))
    }

    fn store(&mut self, relative: &Path, result: Result<Arc<Opened>, Refused>, now: Instant) {
        if self.config.max_entries == 0 {
            return;
        }
        let used = self.tick;
        if let Some(slot) = self.entries.get_mut(key(relative)) {
            // Its key stays filed under an older use; eviction re-files it.
            *slot = Slot {
                result,
                checked: now,
                used,
            };
            return;
        }
        while self.entries.len() >= self.config.max_entries {
            let Some((filed, oldest)) = self.recency.pop_first() else {
                break;
            };
            match self.entries.get(&oldest) {
                Some(slot) if slot.used > filed => {
                    self.recency.insert(slot.used, oldest);
                }
                _ => {
                    self.entries.remove(&oldest);
                }
            }
        }
        let k: Key = Arc::from(key(relative));
        self.recency.insert(used, Arc::clone(&k));
        self.entries.insert(
            k,
            Slot {
                result,
                checked: now,
                used,
            },
        );
    }

    fn remove(&mut self, relative: &Path) {
        // Its filed key is dropped when eviction meets it.
        self.entries.remove(key(relative));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resolve::tests::TempDir;
    use std::fs;
    use std::io::Read;

    const SECOND: Duration = Duration::from_secs(1);

    fn setup(max_entries: usize) -> (TempDir, OpenFileCache) {
        let tmp = TempDir::new("cache");
        fs::write(tmp.0.join("a.txt"), "aaaa").unwrap();
        fs::write(tmp.0.join("b.txt"), "bb").unwrap();
        fs::write(tmp.0.join("c.txt"), "c").unwrap();
        fs::create_dir(tmp.0.join("sub")).unwrap();
        let root = Root::new(&tmp.0).unwrap();
        let cache = OpenFileCache::new(
            root,
            CacheConfig {
                valid_for: SECOND,
                max_entries,
                ..CacheConfig::default()
            },
        );
        (tmp, cache)
    }

    fn read_all(opened: &Opened) -> String {
        let mut s = String::new();
        opened
            .file
            .as_ref()
            .unwrap()
            .read_to_string(&mut s)
            .unwrap();
        s
    }

    #[test]
    fn small_files_keep_their_bytes_and_large_ones_do_not() {
        let (tmp, mut cache) = setup(10);
        let t0 = Instant::now();
        let a = cache.open(Path::new("a.txt"), t0).unwrap();
        assert_eq!(a.content.as_deref(), Some(&b"aaaa"[..]));
        fs::write(tmp.0.join("big.bin"), vec![7u8; 16 * 1024 + 1]).unwrap();
        let big = cache.open(Path::new("big.bin"), t0).unwrap();
        assert!(big.content.is_none());
        // A change seen at the next check gives the new bytes.
        fs::write(tmp.0.join("a.txt"), "changed").unwrap();
        let a = cache.open(Path::new("a.txt"), t0 + 2 * SECOND).unwrap();
        assert_eq!(a.content.as_deref(), Some(&b"changed"[..]));
    }

    #[test]
    fn opened_facts() {
        let (tmp, mut cache) = setup(10);
        let t0 = Instant::now();
        let a = cache.open(Path::new("a.txt"), t0).unwrap();
        assert_eq!(a.len(), 4);
        assert!(!a.is_dir);
        assert_eq!(a.content_type, "text/plain; charset=utf-8");
        assert_eq!(a.etag, a.stamp.etag());
        assert_eq!(a.last_modified, crate::validators::last_modified(a.mtime));
        let meta = fs::metadata(tmp.0.join("a.txt")).unwrap();
        assert_eq!(a.stamp, Stamp::from_metadata(&meta));
        assert_eq!(read_all(&a), "aaaa");
        let sub = cache.open(Path::new("sub"), t0).unwrap();
        assert!(sub.is_dir);
        assert!(sub.file.is_none());
    }

    #[test]
    fn hit_within_validity_is_the_same_arc_even_if_the_file_changed() {
        let (tmp, mut cache) = setup(10);
        let t0 = Instant::now();
        let first = cache.open(Path::new("a.txt"), t0).unwrap();
        fs::write(tmp.0.join("a.txt"), "changed!").unwrap();
        let second = cache.open(Path::new("a.txt"), t0 + SECOND / 2).unwrap();
        assert!(Arc::ptr_eq(&first, &second));
        assert_eq!(second.len(), 4);
    }

    #[test]
    fn expiry_restats_and_notices_a_change() {
        let (tmp, mut cache) = setup(10);
        let t0 = Instant::now();
        let first = cache.open(Path::new("a.txt"), t0).unwrap();
        fs::write(tmp.0.join("a.txt"), "changed!").unwrap();
        let second = cache.open(Path::new("a.txt"), t0 + SECOND).unwrap();
        assert!(!Arc::ptr_eq(&first, &second));
        assert_ne!(first.etag, second.etag);
        assert_eq!(second.len(), 8);
        assert_eq!(read_all(&second), "changed!");
    }

    #[test]
    fn expiry_keeps_an_unchanged_file() {
        let (_tmp, mut cache) = setup(10);
        let t0 = Instant::now();
        let first = cache.open(Path::new("b.txt"), t0).unwrap();
        let second = cache.open(Path::new("b.txt"), t0 + 5 * SECOND).unwrap();
        assert!(Arc::ptr_eq(&first, &second));
        // Revalidated at t0 + 5 s: trusted until t0 + 6 s.
        fs::write(_tmp.0.join("b.txt"), "longer").unwrap();
        let third = cache
            .open(Path::new("b.txt"), t0 + 5 * SECOND + SECOND / 2)
            .unwrap();
        assert!(Arc::ptr_eq(&first, &third));
        let fourth = cache.open(Path::new("b.txt"), t0 + 6 * SECOND).unwrap();
        assert!(!Arc::ptr_eq(&first, &fourth));
    }

    #[test]
    fn a_replaced_file_stays_readable_through_an_old_arc() {
        let (tmp, mut cache) = setup(10);
        let t0 = Instant::now();
        let old = cache.open(Path::new("c.txt"), t0).unwrap();
        fs::remove_file(tmp.0.join("c.txt")).unwrap();
        fs::write(tmp.0.join("c.txt"), "new").unwrap();
        let new = cache.open(Path::new("c.txt"), t0 + 2 * SECOND).unwrap();
        assert_ne!(old.inode(), new.inode());
        assert_eq!(read_all(&old), "c");
        assert_eq!(read_all(&new), "new");
    }

    #[test]
    fn least_recently_used_is_evicted() {
        let (_tmp, mut cache) = setup(2);
        let t0 = Instant::now();
        cache.open(Path::new("a.txt"), t0).unwrap();
        cache.open(Path::new("b.txt"), t0).unwrap();
        // Using a makes b the least recently used.
        cache.open(Path::new("a.txt"), t0).unwrap();
        cache.open(Path::new("c.txt"), t0).unwrap();
        assert_eq!(cache.len(), 2);
        assert!(cache.contains(Path::new("a.txt")));
        assert!(!cache.contains(Path::new("b.txt")));
        assert!(cache.contains(Path::new("c.txt")));
        // Now a is the oldest use.
        cache.open(Path::new("b.txt"), t0).unwrap();
        assert!(!cache.contains(Path::new("a.txt")));
        assert!(cache.contains(Path::new("b.txt")));
        assert!(cache.contains(Path::new("c.txt")));
        // Negative entries count and are evicted like the others.
        assert!(cache.open(Path::new("nope"), t0).is_err());
        assert_eq!(cache.len(), 2);
        assert!(!cache.contains(Path::new("c.txt")));
    }

    #[test]
    fn revalidation_refreshes_recency() {
        let (_tmp, mut cache) = setup(2);
        let t0 = Instant::now();
        cache.open(Path::new("a.txt"), t0).unwrap();
        cache.open(Path::new("b.txt"), t0).unwrap();
        cache.open(Path::new("a.txt"), t0 + 2 * SECOND).unwrap();
        cache.open(Path::new("c.txt"), t0 + 2 * SECOND).unwrap();
        assert!(cache.contains(Path::new("a.txt")));
        assert!(!cache.contains(Path::new("b.txt")));
    }

    #[test]
    fn not_found_is_cached_for_the_validity() {
        let (tmp, mut cache) = setup(10);
        let t0 = Instant::now();
        let p = Path::new("late.txt");
        assert_eq!(cache.open(p, t0).unwrap_err(), Refused::NotFound);
        assert!(cache.contains(p));
        fs::write(tmp.0.join("late.txt"), "here").unwrap();
        assert_eq!(
            cache.open(p, t0 + SECOND / 2).unwrap_err(),
            Refused::NotFound
        );
        assert_eq!(cache.open(p, t0 + SECOND).unwrap().len(), 4);
    }

    #[test]
    fn a_deleted_file_becomes_not_found_after_expiry() {
        let (tmp, mut cache) = setup(10);
        let t0 = Instant::now();
        cache.open(Path::new("a.txt"), t0).unwrap();
        fs::remove_file(tmp.0.join("a.txt")).unwrap();
        assert!(cache.open(Path::new("a.txt"), t0).is_ok());
        assert_eq!(
            cache.open(Path::new("a.txt"), t0 + SECOND).unwrap_err(),
            Refused::NotFound
        );
    }

    #[test]
    fn escapes_are_cached_and_io_errors_are_not() {
        let (tmp, mut cache) = setup(10);
        let t0 = Instant::now();
        let outside = TempDir::new("cache-outside");
        fs::write(outside.0.join("secret"), "s").unwrap();
        std::os::unix::fs::symlink(outside.0.join("secret"), tmp.0.join("leak")).unwrap();
        assert_eq!(
            cache.open(Path::new("leak"), t0).unwrap_err(),
            Refused::Escapes
        );
        assert!(cache.contains(Path::new("leak")));
        std::os::unix::fs::symlink("loop", tmp.0.join("loop")).unwrap();
        assert!(matches!(
            cache.open(Path::new("loop"), t0).unwrap_err(),
            Refused::Io(_)
        ));
        assert!(!cache.contains(Path::new("loop")));
    }

    #[test]
    fn zero_entries_disables_caching() {
        let (_tmp, mut cache) = setup(0);
        let t0 = Instant::now();
        let a = cache.open(Path::new("a.txt"), t0).unwrap();
        let b = cache.open(Path::new("a.txt"), t0).unwrap();
        assert!(!Arc::ptr_eq(&a, &b));
        assert!(cache.is_empty());
    }

    #[test]
    fn clear_empties() {
        let (_tmp, mut cache) = setup(10);
        let t0 = Instant::now();
        cache.open(Path::new("a.txt"), t0).unwrap();
        cache.clear();
        assert!(cache.is_empty());
        assert!(cache.open(Path::new("a.txt"), t0).is_ok());
        assert_eq!(cache.len(), 1);
    }
}
