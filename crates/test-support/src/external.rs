//! External programs (curl, ab, wrk, nginx, python3): finding them, and failing or skipping
//! a test that needs one that is missing.
//!
//! A missing program fails its test with the package to install, unless
//! `TETHER_SKIP_EXTERNAL=1` is set, in which case the test prints a note and passes.

use std::path::{Path, PathBuf};

/// `TETHER_SKIP_EXTERNAL=1`: tests whose programs are missing pass after a note.
pub fn skip_external() -> bool {
    std::env::var("TETHER_SKIP_EXTERNAL").is_ok_and(|v| v == "1")
}

/// The executable `program` in a directory of `PATH` or of `extra` (searched last).
pub fn find_program(program: &str, extra: &[&str]) -> Option<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    dirs.extend(extra.iter().map(PathBuf::from));
    dirs.into_iter()
        .map(|d| d.join(program))
        .find(|p| is_executable(p))
}

/// Whether `program` is on `PATH`.
pub fn on_path(program: &str) -> bool {
    find_program(program, &[]).is_some()
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    p.metadata()
        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// True when the test should go on; false (after a note) when it is to be skipped; panics
/// with the install hint when `what` is missing and skipping was not asked for.
pub fn require(what: &str, present: bool, install: &str) -> bool {
    if present {
        return true;
    }
    if skip_external() {
        println!("note: skipping: {what} is not available ({install}); TETHER_SKIP_EXTERNAL=1");
        return false;
    }
    panic!(
        "{what} is required by this test but was not found: {install} \
         (or set TETHER_SKIP_EXTERNAL=1 to skip tests that need external programs)"
    );
}

/// `program` found on `PATH` or in `extra` folders; `None` (after a note) when it is
/// missing and skipping was asked for, as [`require`] decides.
pub fn program(program: &str, extra: &[&str], install: &str) -> Option<PathBuf> {
    let found = find_program(program, extra);
    require(program, found.is_some(), install).then_some(found)?
}
