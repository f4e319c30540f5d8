//! Headless Chromium for the tests that need a real browser: finding it (or skipping, as
//! [`crate::external::require`] decides) and dumping the DOM of a page after it ran.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::external::{find_program, require};
use crate::process::Proc;
use crate::temp::TempDir;

/// Longest run of the browser for one page (a cold start on a busy machine is slow).
const BROWSER_WAIT: Duration = Duration::from_secs(40);

/// The browser, or `None` (after a note) when it is missing and external programs may be
/// skipped; panics with the package to install otherwise.
pub fn chromium() -> Option<PathBuf> {
    let found = match std::env::var_os("CHROMIUM") {
        Some(path) => Some(PathBuf::from(path)).filter(|p| p.exists()),
        None => find_program("chromium", &[]),
    };
    let install = "install Debian's `chromium` package (apt-get install chromium), \
                   or set CHROMIUM to the browser";
    require("headless Chromium", found.is_some(), install).then(|| found.unwrap())
}

/// The DOM of `url` after `budget_ms` of virtual time in headless Chromium (the page's
/// timers and fetches run; the browser exits once the budget is spent and the page idle).
pub fn dump_dom(browser: &Path, url: &str, budget_ms: u32) -> String {
    let profile = TempDir::new("tether-chromium");
    // Files rather than pipes: a helper process of the browser that outlives it cannot
    // keep the test waiting for the end of its output.
    let (out, err) = (
        profile.path().join("dom.html"),
        profile.path().join("stderr.txt"),
    );
    let mut proc = Proc::spawn(
        Command::new(browser)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
                "--disable-dev-shm-usage",
                "--disable-extensions",
            ])
            .arg(format!(
                "--user-data-dir={}",
                profile.path().join("data").display()
            ))
            .arg(format!("--virtual-time-budget={budget_ms}"))
            .arg("--dump-dom")
            .arg(url)
            .stdin(Stdio::null())
            .stdout(File::create(&out).unwrap())
            .stderr(File::create(&err).unwrap()),
    );
    let status = proc.wait_exit(BROWSER_WAIT);
    drop(proc);
    let read = |path| std::fs::read_to_string(path).unwrap_or_default();
    match status {
        Some(s) if s.success() => read(&out),
        Some(s) => panic!("chromium failed ({s}) on {url}; stderr:\n{}", read(&err)),
        None => panic!(
            "chromium did not finish {url} within {BROWSER_WAIT:?}; stderr:\n{}",
            read(&err)
        ),
    }
}
