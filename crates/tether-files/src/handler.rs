//! [`Files`]: a folder served over the engine, the modules of this crate in the order a
//! request meets them.
//!
//! Every refusal of the path mapping is a 404 (a 400 for a path that is not even
//! well-formed), so a client learns nothing about what lies outside the folder. File bodies
//! go out with [`tether::Response::send_file`]: `sendfile(2)` on plain TCP.

use std::cell::RefCell;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use tether::{Handler, Request, Response, Status};

use crate::cache::{CacheConfig, OpenFileCache, Opened};
use crate::encoding::{self, Encoding};
use crate::listing;
use crate::multipart::{self, Multipart};
use crate::path::{self, Mapped, Rejected};
use crate::precondition::{self, Outcome, Resource};
use crate::range::{self, Ranges};
use crate::resolve::{Refused, Root};

/// How a folder is served.
#[derive(Debug, Clone)]
pub struct Options {
    /// Serve dotfiles and dot-folders (404 otherwise).
    pub dotfiles: bool,
    /// The `Cache-Control` of every file response, if any.
    pub cache_control: Option<String>,
    /// A file (relative to the folder) answered, with 200, for paths that name nothing: the
    /// single-page-application fallback.
    pub spa: Option<PathBuf>,
    /// The file that stands for a folder.
    pub index: String,
    /// The open-file cache of each worker.
    pub cache: CacheConfig,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            dotfiles: false,
            cache_control: None,
            spa: None,
            index: "index.html".to_owned(),
            cache: CacheConfig::default(),
        }
    }
}

/// A folder served with nginx's file semantics. One per worker (its open-file cache takes
/// no lock): build it in the server's handler factory.
///
/// ```no_run
/// # fn main() -> std::io::Result<()> {
/// use std::sync::Arc;
/// use tether_files::{Files, Options, Root};
///
/// let root = Root::new("public")?;
/// let options = Arc::new(Options::default());
/// let server = tether::Server::builder().bind("127.0.0.1:8080")?;
/// server.run_until(
///     move || Files::new(root.clone(), options.clone()),
///     std::future::pending::<()>(),
/// )?;
/// # Ok(()) }
/// ```
pub struct Files {
    cache: RefCell<OpenFileCache>,
    options: Arc<Options>,
}

impl Files {
    /// Serves the files under `root`.
    pub fn new(root: Root, options: Arc<Options>) -> Files {
        Files {
            cache: RefCell::new(OpenFileCache::new(root, options.cache)),
            options,
        }
    }

    /// Answers `req` from the folder (what [`Handler::call`] does), for handlers that
    /// route some paths elsewhere first.
    ///
    /// # Errors
    /// A failed write, or a file that could not be read while its body was being sent: the
    /// connection then closes.
    pub async fn serve(&self, req: &mut Request<'_>, res: &mut Response<'_>) -> io::Result<()> {
        if !matches!(req.method(), "GET" | "HEAD") {
            res.status(Status::METHOD_NOT_ALLOWED)
                .header("Allow", "GET, HEAD");
            return text(res, "method not allowed\n");
        }
        let mapped = match path::map(req.path().as_bytes()) {
            Ok(m) => m,
            Err(rejected) => return refuse(res, rejected),
        };
        if mapped.hidden() && !self.options.dotfiles {
            return not_found(res);
        }
        let now = Instant::now();
        let relative = mapped.relative();
        let opened = match self.open(&relative, now) {
            Ok(o) => o,
            Err(Refused::NotFound) => match &self.options.spa {
                Some(spa) => match self.open(spa, now) {
                    Ok(o) if !o.is_dir => return self.file(req, res, o, spa, now).await,
                    _ => return not_found(res),
                },
                None => return not_found(res),
            },
            Err(_) => return not_found(res),
        };
        if !opened.is_dir {
            if mapped.trailing_slash() {
                return not_found(res);
            }
            return self.file(req, res, opened, &relative, now).await;
        }
        if !mapped.trailing_slash() && !mapped.is_root() {
            return redirect_to_folder(req, res);
        }
        let index = relative.join(&self.options.index);
        match self.open(&index, now) {
            Ok(o) if !o.is_dir => self.file(req, res, o, &index, now).await,
            _ => self.listing(req, res, &mapped, &opened),
        }
    }

    fn open(&self, relative: &Path, now: Instant) -> Result<Arc<Opened>, Refused> {
        self.cache.borrow_mut().open(relative, now)
    }

    /// A file: its precompressed sibling if the client takes one, the preconditions, then
    /// the whole file, one range, several, or 416.
    async fn file(
        &self,
        req: &mut Request<'_>,
        res: &mut Response<'_>,
        original: Arc<Opened>,
        relative: &Path,
        now: Instant,
    ) -> io::Result<()> {
        let (chosen, encoding, vary) = self.representation(req, original.clone(), relative, now);
        let unix_now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let resource = Resource {
            etag: &chosen.etag,
            last_modified: chosen.mtime,
        };
        let outcome =
            precondition::evaluate(req.method(), &resource, unix_now, |name| values(req, name));
        let range_applies = match outcome {
            Outcome::NotModified => {
                res.status(Status::NOT_MODIFIED);
                self.validators(res, &chosen, vary);
                return Ok(());
            }
            Outcome::PreconditionFailed => {
                res.status(Status::PRECONDITION_FAILED);
                return text(res, "precondition failed\n");
            }
            Outcome::Proceed { range_applies } => range_applies,
        };
        let Some(file) = chosen.file.as_ref() else {
            return not_found(res);
        };
        let len = chosen.len();
        let ranges = if range_applies {
            range::parse_fields(values(req, "range"), len)
        } else {
            Ranges::Full
        };
        // Several ranges have their type in each part; the whole is multipart.
        if !matches!(ranges, Ranges::Multi(_)) {
            res.content_type(&original.content_type);
        }
        if let Some(e) = encoding {
            res.header("Content-Encoding", e.token());
        }
        self.validators(res, &chosen, vary);
        res.header("Accept-Ranges", "bytes");
        match ranges {
            Ranges::Full => send(res, &chosen, file, 0, len).await,
            Ranges::Single(start, end) => {
                res.status(Status::PARTIAL_CONTENT)
                    .header("Content-Range", range::content_range(start, end, len));
                send(res, &chosen, file, start, end - start + 1).await
            }
            Ranges::Multi(ranges) => {
                let boundary =
                    multipart::boundary(chosen.inode() ^ chosen.stamp.mtime_nanos as u64);
                let body = Multipart::new(&boundary, &original.content_type, &ranges, len);
                res.status(Status::PARTIAL_CONTENT)
                    .content_type(&body.content_type());
                res.start_sized(body.content_length());
                for part in body.parts() {
                    res.send_chunk(&part.header).await?;
                    res.send_file(file, part.start, part.end - part.start + 1)
                        .await?;
                }
                res.send_chunk(body.closing()).await
            }
            Ranges::Unsatisfiable => {
                res.status(Status::RANGE_NOT_SATISFIABLE)
                    .header("Content-Range", range::unsatisfied_range(len));
                Ok(())
            }
        }
    }

    /// The representation to send: the original, or the precompressed sibling the client
    /// prefers among those that exist; and whether the answer varies with Accept-Encoding
    /// (some sibling exists). Siblings are looked for only when the client accepts some
    /// encoding: an answer without `Vary` to a client that takes none is the plain file,
    /// right for every client.
    fn representation(
        &self,
        req: &Request<'_>,
        original: Arc<Opened>,
        relative: &Path,
        now: Instant,
    ) -> (Arc<Opened>, Option<Encoding>, bool) {
        if req.header("accept-encoding").is_none() {
            return (original, None, false);
        }
        let mut siblings: [Option<Arc<Opened>>; 3] = [None, None, None];
        for (slot, enc) in siblings.iter_mut().zip(Encoding::PREFERENCE) {
            let mut name = relative.as_os_str().to_owned();
            name.push(enc.suffix());
            *slot = self.open(Path::new(&name), now).ok().filter(|o| !o.is_dir);
        }
        let vary = siblings.iter().any(Option::is_some);
        let index = |e: Encoding| Encoding::PREFERENCE.iter().position(|p| *p == e);
        let choice = encoding::choose(values(req, "accept-encoding"), |e| {
            index(e).is_some_and(|i| siblings[i].is_some())
        });
        match choice.and_then(|e| Some((siblings[index(e)?].clone()?, e))) {
            Some((sibling, e)) => (sibling, Some(e), vary),
            None => (original, None, vary),
        }
    }

    /// ETag, Last-Modified, Cache-Control and Vary: what a 200, a 206 and a 304 share.
    fn validators(&self, res: &mut Response<'_>, opened: &Opened, vary: bool) {
        res.header("ETag", &opened.etag)
            .header("Last-Modified", &opened.last_modified);
        if let Some(cc) = &self.options.cache_control {
            res.header("Cache-Control", cc);
        }
        if vary {
            res.header("Vary", "Accept-Encoding");
        }
    }

    /// A folder without an index: its entries as HTML, or JSON when the client asks.
    fn listing(
        &self,
        req: &Request<'_>,
        res: &mut Response<'_>,
        mapped: &Mapped,
        folder: &Opened,
    ) -> io::Result<()> {
        let entries = {
            let cache = self.cache.borrow();
            listing::read(cache.root(), &folder.path, self.options.dotfiles)
        };
        let Ok(entries) = entries else {
            return not_found(res);
        };
        if listing::wants_json(values(req, "accept")) {
            res.content_type("application/json")
                .write(listing::json(&entries).as_bytes());
        } else {
            res.content_type("text/html; charset=utf-8")
                .write(listing::html(req.path(), &entries, mapped.is_root()).as_bytes());
        }
        res.header("Vary", "Accept");
        Ok(())
    }
}

impl Handler for Files {
    async fn call(&self, req: &mut Request<'_>, res: &mut Response<'_>) -> io::Result<()> {
        self.serve(req, res).await
    }
}

/// `len` bytes of `opened` from `start` as the body: from the bytes the cache keeps of a
/// small file, else from the file by `send_file`.
async fn send(
    res: &mut Response<'_>,
    opened: &Opened,
    file: &std::fs::File,
    start: u64,
    len: u64,
) -> io::Result<()> {
    match &opened.content {
        Some(bytes) => {
            let n = bytes.len();
            let from = usize::try_from(start).map_or(n, |s| s.min(n));
            let to = usize::try_from(start.saturating_add(len)).map_or(n, |e| e.min(n));
            res.body_bytes(bytes.slice(from..to));
            Ok(())
        }
        None => res.send_file(file, start, len).await,
    }
}

/// Every value of the header `name`, over all its field lines.
fn values<'r>(req: &'r Request<'_>, name: &'r str) -> impl Iterator<Item = &'r [u8]> + 'r {
    req.headers()
        .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v)
}

fn text(res: &mut Response<'_>, body: &'static str) -> io::Result<()> {
    res.content_type("text/plain; charset=utf-8")
        .body_static(body.as_bytes());
    Ok(())
}

fn not_found(res: &mut Response<'_>) -> io::Result<()> {
    res.status(Status::NOT_FOUND);
    text(res, "not found\n")
}

/// A path the mapping refused: 400 when it is not even well-formed, 404 otherwise (it
/// names something this server does not serve).
fn refuse(res: &mut Response<'_>, rejected: Rejected) -> io::Result<()> {
    tracing::debug!(reason = rejected.name(), "path refused");
    match rejected {
        Rejected::NotAbsolute
        | Rejected::MalformedEscape
        | Rejected::ControlByte
        | Rejected::InvalidUtf8 => {
            res.status(Status::BAD_REQUEST);
            text(res, "bad request\n")
        }
        _ => not_found(res),
    }
}

/// `/folder` answers 301 to `/folder/`, the query kept: the listing's links are relative.
fn redirect_to_folder(req: &Request<'_>, res: &mut Response<'_>) -> io::Result<()> {
    let mut location = format!("{}/", req.path());
    if let Some(q) = req.query() {
        location.push('?');
        location.push_str(q);
    }
    res.status(Status::MOVED_PERMANENTLY)
        .header("Location", &location);
    text(res, "moved\n")
}
