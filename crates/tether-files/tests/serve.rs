//! A folder served by [`Files`] over real loopback sockets: types, validators and
//! preconditions, ranges, folders, precompressed siblings, dotfiles, symlinks, and every
//! kind of path that must not reach outside the folder.

use std::path::PathBuf;
use std::sync::Arc;

use std::time::{Duration, Instant};

use tether::{CloseReason, ConnState, Running};
use tether_files::{Files, Options, Root};
use tether_test_support::client::{Client, Reply};
use tether_test_support::events::Events;
use tether_test_support::handler::big_body;
use tether_test_support::request::{get, get_with, head};
use tether_test_support::server::{spawn, unlimited};
use tether_test_support::temp::TempDir;

const SECRET: &[u8] = b"TOP SECRET, outside the folder";

/// A folder tree in a fresh temporary directory, with a secret file beside the folder.
struct Tree {
    top: TempDir,
}

impl Tree {
    fn new() -> Tree {
        let top = TempDir::new("tether-files");
        for (path, data) in [
            ("root/hello.txt", &b"hello world\n"[..]),
            ("root/data.bin", &big_body(10_000)[..]),
            ("root/style.css", b"body { color: red }\n"),
            ("root/style.css.gz", b"css as gzip"),
            ("root/style.css.br", b"css as brotli"),
            ("root/sub/index.html", b"<p>the index of sub</p>\n"),
            ("root/list/a.txt", b"a"),
            ("root/list/<script>alert(1)</script>.txt", b"x"),
            ("root/list/.hidden", b"h"),
            ("root/.secret", b"a dotfile"),
            ("root/app/index.html", b"<p>single page</p>\n"),
            ("secret.txt", SECRET),
        ] {
            top.write(path, data);
        }
        let (root, top_path) = (top.path().join("root"), top.path());
        std::os::unix::fs::symlink(root.join("hello.txt"), root.join("link-in")).unwrap();
        std::os::unix::fs::symlink(top_path.join("secret.txt"), root.join("link-out")).unwrap();
        std::os::unix::fs::symlink(top_path, root.join("up")).unwrap();
        Tree { top }
    }

    fn root(&self) -> PathBuf {
        self.top.path().join("root")
    }

    fn serve(&self, options: Options) -> Running {
        self.serve_on(unlimited(), options)
    }

    fn serve_on(&self, builder: tether::Builder, options: Options) -> Running {
        let root = Root::new(self.root()).unwrap();
        let options = Arc::new(options);
        spawn(builder, move || Files::new(root.clone(), options.clone()))
    }
}

fn fetch(c: &mut Client, path: &str, headers: &[&str]) -> Reply {
    c.request(&get_with(path, headers))
}

#[test]
fn files_have_their_type_and_the_connection_is_reused() {
    let tree = Tree::new();
    let srv = tree.serve(Options::default());
    let mut c = Client::connect(srv.local_addr());
    let r = fetch(&mut c, "/hello.txt", &[]);
    assert_eq!((r.status, r.text()), (200, "hello world\n"));
    assert_eq!(r.header("content-type"), Some("text/plain; charset=utf-8"));
    assert_eq!(r.header("content-length"), Some("12"));
    assert_eq!(r.header("accept-ranges"), Some("bytes"));
    let r = fetch(&mut c, "/data.bin", &[]);
    assert_eq!(r.header("content-type"), Some("application/octet-stream"));
    assert!(r.body == big_body(10_000));
    let r = fetch(&mut c, "/style.css", &[]);
    assert_eq!(r.header("content-type"), Some("text/css; charset=utf-8"));
    c.send(&head("/data.bin"));
    let r = c.head_reply();
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-length"), Some("10000"));
    assert!(r.body.is_empty());
    assert_eq!(fetch(&mut c, "/missing.txt", &[]).status, 404);
    assert_eq!(
        c.request(b"POST /hello.txt HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n")
            .header("allow"),
        Some("GET, HEAD")
    );
    assert_eq!(srv.stats().accepted, 1);
}

#[test]
fn validators_and_preconditions_follow_rfc_9110() {
    let tree = Tree::new();
    let srv = tree.serve(Options::default());
    let mut c = Client::connect(srv.local_addr());
    let r = fetch(&mut c, "/hello.txt", &[]);
    let etag = r.header("etag").expect("an ETag").to_owned();
    let modified = r
        .header("last-modified")
        .expect("a Last-Modified")
        .to_owned();
    assert!(
        etag.starts_with('"') && !etag.starts_with("W/"),
        "strong: {etag}"
    );

    let inm = format!("If-None-Match: {etag}");
    let r = fetch(&mut c, "/hello.txt", &[&inm]);
    assert_eq!(r.status, 304);
    assert!(r.body.is_empty());
    assert_eq!(r.header("etag"), Some(etag.as_str()));
    assert_eq!(
        fetch(&mut c, "/hello.txt", &["If-None-Match: \"other\""]).status,
        200
    );
    let ims = format!("If-Modified-Since: {modified}");
    assert_eq!(fetch(&mut c, "/hello.txt", &[&ims]).status, 304);
    // If-None-Match wins over If-Modified-Since.
    assert_eq!(
        fetch(&mut c, "/hello.txt", &["If-None-Match: \"other\"", &ims]).status,
        200
    );
    assert_eq!(
        fetch(&mut c, "/hello.txt", &["If-Match: \"other\""]).status,
        412
    );
    let im = format!("If-Match: {etag}");
    assert_eq!(fetch(&mut c, "/hello.txt", &[&im]).status, 200);
    let ius = "If-Unmodified-Since: Sat, 01 Jan 2000 00:00:00 GMT";
    assert_eq!(fetch(&mut c, "/hello.txt", &[ius]).status, 412);
    // If-Match is evaluated first: it passes, and If-Unmodified-Since is then ignored.
    assert_eq!(fetch(&mut c, "/hello.txt", &[&im, ius]).status, 200);
    // HEAD gets the same validators, and the same 304.
    c.send(&head("/hello.txt"));
    let r = c.head_reply();
    assert_eq!(r.header("etag"), Some(etag.as_str()));
    let mut req = String::from("HEAD /hello.txt HTTP/1.1\r\nHost: t\r\n");
    req.push_str(&inm);
    req.push_str("\r\n\r\n");
    c.send(req.as_bytes());
    assert_eq!(c.head_reply().status, 304);
}

#[test]
fn ranges_follow_nginx() {
    let tree = Tree::new();
    let srv = tree.serve(Options::default());
    let mut c = Client::connect(srv.local_addr());
    let body = big_body(10_000);
    let r = fetch(&mut c, "/data.bin", &["Range: bytes=0-4"]);
    assert_eq!(r.status, 206);
    assert_eq!(r.header("content-range"), Some("bytes 0-4/10000"));
    assert_eq!(r.body, &body[..5]);
    let r = fetch(&mut c, "/data.bin", &["Range: bytes=-10"]);
    assert_eq!(r.header("content-range"), Some("bytes 9990-9999/10000"));
    assert_eq!(r.body, &body[9990..]);
    let r = fetch(&mut c, "/data.bin", &["Range: bytes=9995-"]);
    assert_eq!(r.body, &body[9995..]);
    for unsatisfiable in ["bytes=10000-", "bytes=-0", "bytes=20000-30000"] {
        let r = fetch(&mut c, "/data.bin", &[&format!("Range: {unsatisfiable}")]);
        assert_eq!(r.status, 416, "{unsatisfiable}");
        assert_eq!(r.header("content-range"), Some("bytes */10000"));
        assert!(!r.closes());
    }
    // Huge numbers neither overflow nor fail: the last position clamps to the end.
    let r = fetch(
        &mut c,
        "/data.bin",
        &["Range: bytes=9000-18446744073709551615"],
    );
    assert_eq!((r.status, r.body.len()), (206, 1000));
    let r = fetch(
        &mut c,
        "/data.bin",
        &["Range: bytes=99999999999999999999999-"],
    );
    assert_eq!(r.status, 416);
    // Overlapping ranges adding up to more than the file: the whole file, 200.
    let r = fetch(&mut c, "/data.bin", &["Range: bytes=0-9999,0-9999"]);
    assert_eq!((r.status, r.body.len()), (200, 10_000));
    // Several ranges: multipart/byteranges with an exact length.
    let r = fetch(&mut c, "/data.bin", &["Range: bytes=0-1,100-102"]);
    assert_eq!(r.status, 206);
    let ct = r.header("content-type").unwrap().to_owned();
    let boundary = ct
        .strip_prefix("multipart/byteranges; boundary=")
        .expect("multipart/byteranges");
    assert_eq!(
        r.header("content-length"),
        Some(r.body.len().to_string().as_str())
    );
    let text = String::from_utf8_lossy(&r.body).into_owned();
    assert_eq!(text.matches(&format!("--{boundary}\r\n")).count(), 2);
    assert!(text.contains("Content-Range: bytes 0-1/10000"));
    assert!(text.contains("Content-Range: bytes 100-102/10000"));
    assert!(text.ends_with(&format!("--{boundary}--\r\n")));
    // If-Range: the range applies only while the validator matches.
    let etag = fetch(&mut c, "/data.bin", &[])
        .header("etag")
        .unwrap()
        .to_owned();
    let r = fetch(
        &mut c,
        "/data.bin",
        &["Range: bytes=0-4", &format!("If-Range: {etag}")],
    );
    assert_eq!(r.status, 206);
    let r = fetch(
        &mut c,
        "/data.bin",
        &["Range: bytes=0-4", "If-Range: \"old\""],
    );
    assert_eq!((r.status, r.body.len()), (200, 10_000));
    assert_eq!(srv.stats().accepted, 1);
}

#[test]
fn folders_redirect_index_and_list() {
    let tree = Tree::new();
    let srv = tree.serve(Options::default());
    let mut c = Client::connect(srv.local_addr());
    let r = fetch(&mut c, "/sub?x=1", &[]);
    assert_eq!(r.status, 301);
    assert_eq!(r.header("location"), Some("/sub/?x=1"));
    let r = fetch(&mut c, "/sub/", &[]);
    assert_eq!((r.status, r.text()), (200, "<p>the index of sub</p>\n"));
    assert_eq!(r.header("content-type"), Some("text/html; charset=utf-8"));
    let r = fetch(&mut c, "/list/", &[]);
    assert_eq!(r.status, 200);
    let page = r.text();
    assert!(page.contains("a.txt"));
    assert!(!page.contains("<script>"), "a name is escaped: {page}");
    assert!(page.contains("&lt;script&gt;"));
    assert!(!page.contains(".hidden"));
    let r = fetch(&mut c, "/list/", &["Accept: application/json"]);
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert!(r.text().starts_with('['), "{}", r.text());
    assert!(r.text().contains("\"a.txt\""));
    // A file named with a trailing slash is not found.
    assert_eq!(fetch(&mut c, "/hello.txt/", &[]).status, 404);
    let r = fetch(&mut c, "/", &[]);
    assert!(r.text().contains("hello.txt"));
}

#[test]
fn precompressed_siblings_are_served_to_clients_that_take_them() {
    let tree = Tree::new();
    let srv = tree.serve(Options::default());
    let mut c = Client::connect(srv.local_addr());
    let plain = fetch(&mut c, "/style.css", &[]);
    assert_eq!(plain.header("content-encoding"), None);
    let r = fetch(&mut c, "/style.css", &["Accept-Encoding: gzip, br"]);
    assert_eq!(r.header("content-encoding"), Some("br"));
    assert_eq!(r.text(), "css as brotli");
    assert_eq!(r.header("content-type"), Some("text/css; charset=utf-8"));
    assert_eq!(r.header("vary"), Some("Accept-Encoding"));
    assert_ne!(r.header("etag"), plain.header("etag"));
    let r = fetch(&mut c, "/style.css", &["Accept-Encoding: gzip"]);
    assert_eq!(r.header("content-encoding"), Some("gzip"));
    assert_eq!(r.header("content-length"), Some("11"));
    let r = fetch(&mut c, "/style.css", &["Accept-Encoding: br;q=0, gzip;q=0"]);
    assert_eq!(r.header("content-encoding"), None);
    assert_eq!(r.header("vary"), Some("Accept-Encoding"));
    // No sibling: no Vary.
    let r = fetch(&mut c, "/hello.txt", &["Accept-Encoding: gzip, br"]);
    assert_eq!(
        (r.header("content-encoding"), r.header("vary")),
        (None, None)
    );
}

#[test]
fn dotfiles_are_hidden_unless_allowed() {
    let tree = Tree::new();
    let srv = tree.serve(Options::default());
    let mut c = Client::connect(srv.local_addr());
    assert_eq!(fetch(&mut c, "/.secret", &[]).status, 404);
    assert_eq!(fetch(&mut c, "/list/.hidden", &[]).status, 404);
    let srv = tree.serve(Options {
        dotfiles: true,
        ..Options::default()
    });
    let mut c = Client::connect(srv.local_addr());
    assert_eq!(fetch(&mut c, "/.secret", &[]).text(), "a dotfile");
}

#[test]
fn cache_control_and_the_single_page_fallback() {
    let tree = Tree::new();
    let srv = tree.serve(Options {
        cache_control: Some("max-age=60".into()),
        spa: Some(PathBuf::from("app/index.html")),
        ..Options::default()
    });
    let mut c = Client::connect(srv.local_addr());
    let r = fetch(&mut c, "/hello.txt", &[]);
    assert_eq!(r.header("cache-control"), Some("max-age=60"));
    let r = fetch(&mut c, "/some/client/route", &[]);
    assert_eq!((r.status, r.text()), (200, "<p>single page</p>\n"));
    // The fallback never opens a way out.
    let r = fetch(&mut c, "/%2e%2e/secret.txt", &[]);
    assert_ne!(r.body, SECRET);
}

#[test]
fn symlinks_are_followed_only_inside_the_folder() {
    let tree = Tree::new();
    let srv = tree.serve(Options::default());
    let mut c = Client::connect(srv.local_addr());
    assert_eq!(fetch(&mut c, "/link-in", &[]).text(), "hello world\n");
    assert_eq!(fetch(&mut c, "/link-out", &[]).status, 404);
    assert_eq!(fetch(&mut c, "/up/secret.txt", &[]).status, 404);
}

#[test]
fn no_path_reaches_outside_the_folder() {
    let tree = Tree::new();
    let srv = tree.serve(Options::default());
    let cases = [
        "/../secret.txt",
        "/sub/../../secret.txt",
        "/%2e%2e/secret.txt",
        "/.%2e/secret.txt",
        "/%2E./secret.txt",
        "/%252e%252e/secret.txt",
        "/..%5csecret.txt",
        "/%5c..%5csecret.txt",
        "/..%2fsecret.txt",
        "/hello.txt%00",
        "/%00",
        "/%ff",
        "/%c0%ae%c0%ae/secret.txt",
        "/%zz",
        "/%2",
        "/C:/secret.txt",
        "/c:secret.txt",
        "/con",
        "/nul.txt",
        "/sub/./index.html",
        "//secret.txt",
        "/up/secret.txt",
        "/link-out",
    ];
    for path in cases {
        // A fresh connection each: a 400 closes the connection.
        let mut c = Client::connect(srv.local_addr());
        let r = c.request(&get(path));
        assert!(
            r.status == 400 || r.status == 404,
            "{path}: {} {}",
            r.status,
            String::from_utf8_lossy(&r.body)
        );
        assert!(
            !r.body.windows(SECRET.len()).any(|w| w == SECRET),
            "{path} read the secret"
        );
    }
    // What is inside still is served.
    let mut c = Client::connect(srv.local_addr());
    assert_eq!(fetch(&mut c, "/hello.txt", &[]).status, 200);
    assert!(tree.top.path().join("secret.txt").exists());
}

#[test]
fn pipelined_small_files_are_answered_in_order() {
    let tree = Tree::new();
    let srv = tree.serve(Options::default());
    let mut c = Client::connect(srv.local_addr());
    let paths = [
        "/hello.txt",
        "/style.css",
        "/data.bin",
        "/sub/",
        "/hello.txt",
    ];
    let batch: Vec<u8> = paths.iter().flat_map(|p| get(p)).collect();
    c.send(&batch);
    let lens: Vec<usize> = paths.iter().map(|_| c.reply().body.len()).collect();
    assert_eq!(lens, [12, 20, 10_000, 24, 12]);
    assert_eq!(srv.stats().accepted, 1);
}

#[test]
fn a_client_that_stops_reading_a_large_file_is_cut_at_the_write_timeout() {
    let tree = Tree::new();
    // Larger than what the kernel buffers on both sides of a loopback connection.
    std::fs::write(tree.root().join("large.bin"), big_body(64 << 20)).unwrap();
    let timeout = Duration::from_millis(300);
    let events = Events::default();
    let srv = tree.serve_on(
        events.on(unlimited().write_timeout(timeout)),
        Options::default(),
    );
    let mut c = Client::connect_with_recv_buffer(srv.local_addr(), 4096);
    let since = Instant::now();
    c.send(&get("/large.bin"));
    let (at, closed) = events.first_in(ConnState::Closed);
    assert_eq!(closed.reason, Some(CloseReason::WriteTimeout));
    assert!(at - since >= timeout, "closed after {:?}", at - since);
    assert_eq!(srv.stats().closed_for(CloseReason::WriteTimeout), 1);
}
