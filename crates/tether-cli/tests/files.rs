//! `tether serve DIR`: a folder at `/`, the operational endpoints under a prefix or on an
//! address of their own, and the demo's live page. Real processes on loopback sockets.

use std::net::SocketAddr;

use tether_test_support::client::Client;
use tether_test_support::process::{Cli, PROCESS_WAIT as WAIT};
use tether_test_support::temp::TempDir;

const CLI: Cli = Cli(env!("CARGO_BIN_EXE_tether"));

/// A folder with a few files, removed when dropped.
fn folder() -> TempDir {
    let dir = TempDir::new("tether-cli-files");
    dir.write("index.html", "<p>home</p>\n");
    dir.write("docs/a.txt", "a text\n");
    dir.write(".env", "SECRET=1\n");
    dir
}

#[test]
fn a_folder_at_the_root_and_the_operational_endpoints_under_the_prefix() {
    let folder = folder();
    let server = CLI.serve(&["--workers", "1", folder.text()]);
    let mut c = server.connect();
    let r = c.get("/");
    assert_eq!((r.status, r.text()), (200, "<p>home</p>\n"));
    assert_eq!(c.get("/docs/a.txt").text(), "a text\n");
    assert_eq!(c.get("/docs").header("location"), Some("/docs/"));
    assert_eq!(c.get("/.env").status, 404);
    // The demo is gone; the operational endpoints moved under /_tether/.
    for gone in ["/plaintext", "/metrics", "/readyz"] {
        assert_eq!(c.get(gone).status, 404, "{gone}");
    }
    let page = c.get("/_tether/");
    assert_eq!(page.status, 200);
    assert!(page
        .header("content-type")
        .unwrap()
        .starts_with("text/html"));
    assert!(page.text().contains("/_tether/metrics.json"));
    let json = c.get("/_tether/metrics.json");
    assert_eq!(json.header("content-type"), Some("application/json"));
    assert!(json.text().contains("\"accepted\":1"), "{}", json.text());
    assert!(c
        .get("/_tether/metrics")
        .text()
        .contains("tether_requests_total"));
    assert_eq!(c.get("/_tether/readyz").text(), "ready\n");
    assert_eq!(c.get("/_tether/healthz").text(), "ok\n");
    assert!(server.log.text().contains("serving "));
}

#[test]
fn the_prefix_can_move_and_the_endpoints_can_leave_the_public_port() {
    let folder = folder();
    let server = CLI.serve(&["--workers", "1", "--admin-prefix", "/ops/", folder.text()]);
    let mut c = server.connect();
    assert_eq!(c.get("/ops/readyz").text(), "ready\n");
    assert_eq!(c.get("/_tether/readyz").status, 404);
    drop(server);

    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let admin: SocketAddr = free.local_addr().unwrap();
    drop(free);
    let admin_flag = admin.to_string();
    let server = CLI.serve(&["--admin-listen", &admin_flag, folder.text()]);
    server
        .log
        .wait_for("admin on http://", WAIT)
        .expect("the admin listener's line");
    let mut c = server.connect();
    assert_eq!(c.get("/docs/a.txt").status, 200);
    assert_eq!(c.get("/_tether/metrics.json").status, 404);
    let mut a = Client::connect(admin);
    let json = a.get("/_tether/metrics.json");
    // The counters are the public server's: its connection and two requests.
    assert!(json.text().contains("\"requests\":2"), "{}", json.text());
    assert_eq!(a.get("/docs/a.txt").status, 404);
}

#[test]
fn a_missing_folder_is_refused_before_anything_binds() {
    let (status, err) = CLI.serve_to_exit(&["/nonexistent/tether/folder"]);
    assert!(!status.success());
    assert!(err.contains("/nonexistent/tether/folder"), "{err}");
    assert!(!err.contains("listening"), "{err}");
}

#[test]
fn without_a_folder_the_root_is_the_live_page_over_the_demo() {
    let server = CLI.serve(&["--workers", "1"]);
    let mut c = server.connect();
    let page = c.get("/");
    assert!(page
        .header("content-type")
        .unwrap()
        .starts_with("text/html"));
    for path in ["/plaintext", "/json", "/echo", "/metrics.json", "/readyz"] {
        assert!(page.text().contains(path), "the page lacks {path}");
    }
    assert_eq!(c.get("/plaintext").text(), "Hello, World!");
    let json = c.get("/metrics.json");
    assert_eq!(json.header("content-type"), Some("application/json"));
    assert!(json.text().contains("\"requests\":2"), "{}", json.text());
}

#[test]
fn the_access_log_has_a_line_per_request_escaped_and_complete_at_exit() {
    let folder = folder();
    let log = folder.path().join("access.log");
    let log_flag = log.to_str().unwrap().to_owned();
    let mut server = CLI.serve(&["--workers", "1", "--access-log", &log_flag, folder.text()]);
    let mut c = server.connect();
    let r = c.request(
        b"GET /docs/a.txt HTTP/1.1\r\nHost: t\r\nUser-Agent: probe \xff\"1\"\r\nReferer: http://r/\r\n\r\n",
    );
    assert_eq!(r.status, 200);
    assert_eq!(c.get("/missing\"quote").status, 404);
    for _ in 0..200 {
        assert_eq!(c.get("/index.html").status, 200);
    }
    server.signal(libc::SIGTERM);
    let status = server.wait_exit(WAIT).expect("exits after SIGTERM");
    assert!(status.success(), "{status:?}");
    let text = std::fs::read_to_string(&log).expect("the log file");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines.len(),
        202,
        "every request, written by the exit:\n{text}"
    );
    let first = lines[0];
    assert!(first.starts_with("127.0.0.1 - - ["), "{first}");
    assert!(
        first.ends_with(
            "] \"GET /docs/a.txt HTTP/1.1\" 200 7 \"http://r/\" \"probe \\xFF\\x221\\x22\""
        ),
        "{first}"
    );
    assert!(
        lines[1].contains("\"GET /missing\\x22quote HTTP/1.1\" 404 "),
        "{}",
        lines[1]
    );
}

/// The counters of the server behind `admin` (`--admin-listen`): accepted connections and
/// requests answered.
fn counts(admin: SocketAddr) -> (u64, u64) {
    let json = Client::connect(admin).get("/_tether/metrics.json");
    let field = |name: &str| -> u64 {
        let text = json.text();
        let at = text.find(&format!("\"{name}\":")).expect("the field") + name.len() + 3;
        text[at..]
            .split(|c: char| !c.is_ascii_digit())
            .next()
            .and_then(|n| n.parse().ok())
            .expect("a number")
    };
    (field("accepted"), field("requests"))
}

/// A site with a page that pulls a stylesheet, a script and eight images, and a folder.
fn site() -> TempDir {
    let folder = folder();
    let mut page = String::from(
        "<!DOCTYPE html><html><head><link rel=stylesheet href=style.css>\
         <script src=app.js></script></head><body><a href=docs/>docs</a>",
    );
    for i in 0..8 {
        page.push_str(&format!("<img src=img/{i}.svg>"));
        folder.write(
            &format!("img/{i}.svg"),
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"1\" height=\"1\"/>",
        );
    }
    page.push_str("</body></html>\n");
    folder.write("index.html", page);
    folder.write("style.css", "body { margin: 0 }\n");
    folder.write("app.js", "document.title = 'site';\n");
    folder.write("docs/b.txt", "b text\n");
    folder
}

#[test]
fn curl_wget_and_a_browser_fetch_a_tree_over_reused_connections() {
    use tether_test_support::external::{find_program, require};
    let (curl, wget) = (find_program("curl", &[]), find_program("wget", &[]));
    let (Some(curl), Some(wget)) = (curl, wget) else {
        require("curl and wget", false, "apt-get install curl wget");
        return;
    };
    let folder = site();
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let admin = free.local_addr().unwrap();
    drop(free);
    let admin_flag = admin.to_string();
    let server = CLI.serve(&[
        "--workers",
        "1",
        "--admin-listen",
        &admin_flag,
        folder.text(),
    ]);
    server
        .log
        .wait_for("admin on http://", WAIT)
        .expect("admin");
    let base = format!("http://{}", server.addr);

    // curl: several URLs on one command line share one connection.
    let urls: Vec<String> = ["/", "/style.css", "/app.js", "/docs/a.txt"]
        .iter()
        .map(|p| format!("{base}{p}"))
        .collect();
    let before = counts(admin);
    let out = std::process::Command::new(&curl)
        .args(["-sS", "--fail"])
        .args(urls.iter().flat_map(|u| ["-o", "/dev/null", u.as_str()]))
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let after = counts(admin);
    assert_eq!((after.0 - before.0, after.1 - before.1), (1, 4), "curl");

    // wget -r: the whole tree, following links and listings, over one connection.
    let into = folder.path().join("mirror");
    let before = counts(admin);
    let out = std::process::Command::new(&wget)
        .args(["-r", "-np", "-nv", "-e", "robots=off", "-P"])
        .arg(&into)
        .arg(format!("{base}/"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let mirrored = into.join(server.addr.to_string());
    for file in [
        "index.html",
        "style.css",
        "app.js",
        "img/7.svg",
        "docs/a.txt",
        "docs/b.txt",
    ] {
        assert!(mirrored.join(file).is_file(), "wget did not fetch {file}");
    }
    let after = counts(admin);
    assert_eq!(
        after.0 - before.0,
        1,
        "wget opened more than one connection"
    );
    assert!(
        after.1 - before.1 >= 13,
        "wget made {} requests",
        after.1 - before.1
    );

    // A browser: the page and its eleven resources over the few connections it opens.
    let Some(browser) = tether_test_support::browser::chromium() else {
        return;
    };
    let before = counts(admin);
    let dom = tether_test_support::browser::dump_dom(&browser, &format!("{base}/"), 2000);
    assert!(dom.contains("img/7.svg"), "{dom}");
    let after = counts(admin);
    let (accepted, requests) = (after.0 - before.0, after.1 - before.1);
    assert!(requests >= 11, "the browser made {requests} requests");
    assert!(
        accepted <= 6 && accepted < requests,
        "{accepted} connections for {requests} requests"
    );
}
