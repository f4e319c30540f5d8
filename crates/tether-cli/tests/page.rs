//! The live page in a real browser: headless Chromium loads the page while `tether load`
//! drives `/plaintext`, and the numbers the page shows are read back from the DOM it dumps.
//!
//! Chromium runs with a virtual time budget: the page's timers fire as fast as the budget
//! allows, and each `metrics.json` fetch takes real time while virtual time waits. So the
//! page refreshes a few times in about a second of real time; its rates are computed over
//! virtual seconds and only their sign is checked here.
//!
//! The browser is `$CHROMIUM`, else `chromium` on `PATH` (Debian's `chromium` package).

use std::path::Path;
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use tether_test_support::browser::{self, chromium};
use tether_test_support::process::{Cli, Proc, Tether, PROCESS_WAIT};
use tether_test_support::temp::TempDir;

const CLI: Cli = Cli(env!("CARGO_BIN_EXE_tether"));

/// Virtual time the page is given to run its refreshes (one a second).
const BUDGET_MS: u32 = 3000;

/// The DOM of `url` after [`BUDGET_MS`] of virtual time.
fn dump_dom(browser: &Path, url: &str) -> String {
    browser::dump_dom(browser, url, BUDGET_MS)
}

/// The text of the element with `id` (its first text, up to the next tag).
fn text<'a>(dom: &'a str, id: &str) -> &'a str {
    let at = dom
        .find(&format!("id=\"{id}\""))
        .unwrap_or_else(|| panic!("no element #{id} in the page:\n{dom}"));
    let rest = &dom[at..];
    let start = rest.find('>').unwrap() + 1;
    let end = start + rest[start..].find('<').unwrap();
    rest[start..end].trim()
}

/// The number shown by the element with `id` (thousands separators removed).
fn number(dom: &str, id: &str) -> f64 {
    let shown = text(dom, id);
    shown
        .replace(',', "")
        .parse()
        .unwrap_or_else(|_| panic!("#{id} shows {shown:?}, not a number"))
}

/// The refreshes the page made, from `<body data-updated="N">`.
fn refreshes(dom: &str) -> u64 {
    let at = dom.find("data-updated=\"").expect("body has data-updated") + 14;
    let end = at + dom[at..].find('"').unwrap();
    dom[at..end].parse().unwrap()
}

/// `tether load` on `url` for at most `limit`, killed when dropped.
fn load(url: &str, limit: Duration) -> Proc {
    Proc::spawn(
        Command::new(CLI.0)
            .arg("load")
            .args(["-c", "4", "--threads", "1", "--timeout", "2s"])
            .arg("-d")
            .arg(format!("{}ms", limit.as_millis()))
            .arg(url)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
    )
}

/// The counters of `server`, from `path`.
fn metrics(server: &Tether, path: &str) -> serde_json::Value {
    let reply = server.connect().get(path);
    assert_eq!(reply.status, 200, "{path}");
    serde_json::from_str(reply.text()).expect("metrics.json is JSON")
}

/// Waits until `server` has answered more than `n` requests.
fn wait_requests(server: &Tether, path: &str, n: u64) {
    let deadline = Instant::now() + PROCESS_WAIT;
    while metrics(server, path)["requests"].as_u64().unwrap() <= n {
        assert!(Instant::now() < deadline, "the load did not start");
        thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn the_live_page_shows_the_counters_while_a_load_runs() {
    let Some(browser) = chromium() else { return };
    let server = CLI.serve(&["--workers", "1"]);
    let base = format!("http://{}", server.addr);
    let _load = load(&format!("{base}/plaintext"), Duration::from_secs(15));
    wait_requests(&server, "/metrics.json", 100);

    let first = dump_dom(&browser, &format!("{base}/"));
    assert!(refreshes(&first) >= 2, "too few refreshes:\n{first}");
    let requests = number(&first, "requests");
    assert!(requests > 0.0, "requests: {requests}");
    assert!(number(&first, "rps") > 0.0, "requests per second");
    assert!(number(&first, "cps") >= 0.0, "new connections per second");
    let open = number(&first, "open");
    assert!(open >= 1.0, "open connections: {open}");
    let states: f64 = ["new", "active", "idle", "parked", "closing"]
        .iter()
        .map(|s| number(&first, &format!("state-{s}")))
        .sum();
    assert_eq!(states, open, "the states add up to the open connections");
    assert!(number(&first, "reuse") > 0.0, "requests per connection");
    assert!(text(&first, "reuse-words").contains("reuse"));
    // Bytes per second once the counters carry bytes, a dash before.
    let bps = text(&first, "bps");
    if metrics(&server, "/metrics.json")
        .get("bytes_read")
        .is_some()
    {
        assert!(bps.ends_with("B/s"), "bytes per second: {bps:?}");
    } else {
        assert_eq!(bps, "–");
    }
    assert!(first.contains("<code><a href=\"/plaintext\">/plaintext</a></code>"));

    thread::sleep(Duration::from_secs(1));
    let second = dump_dom(&browser, &format!("{base}/"));
    assert!(refreshes(&second) >= 2);
    let later = number(&second, "requests");
    assert!(
        later > requests,
        "requests did not grow between two loads of the page: {requests} then {later}"
    );
    assert!(number(&second, "rps") > 0.0);
}

#[test]
fn the_live_page_of_a_folder_reads_the_counters_beside_it() {
    let Some(browser) = chromium() else { return };
    let dir = TempDir::new("tether-page");
    dir.write("index.html", "<p>home</p>\n");
    let server = CLI.serve(&["--workers", "1", dir.text()]);
    let base = format!("http://{}", server.addr);
    let _load = load(&format!("{base}/"), Duration::from_secs(10));
    wait_requests(&server, "/_tether/metrics.json", 100);

    let dom = dump_dom(&browser, &format!("{base}/_tether/"));
    assert!(refreshes(&dom) >= 2, "too few refreshes:\n{dom}");
    assert!(number(&dom, "requests") > 100.0);
    assert!(number(&dom, "rps") > 0.0);
    assert!(dom.contains("/_tether/metrics.json"), "the endpoints table");
}
