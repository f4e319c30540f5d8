//! `tether serve --config FILE` and `--print-config`: the same names as the flags, flags
//! over the file, errors naming the key before anything binds.

use std::path::PathBuf;
use std::process::Output;

use tether_test_support::process::Cli;

const CLI: Cli = Cli(env!("CARGO_BIN_EXE_tether"));

/// A file in a fresh temporary folder, removed when dropped.
struct Temp(PathBuf);

impl Temp {
    fn file(name: &str, text: &str) -> Temp {
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("tether-config-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        Temp(path)
    }

    fn path(&self) -> &str {
        self.0.to_str().unwrap()
    }
}

impl Drop for Temp {
    fn drop(&mut self) {
        if let Some(dir) = self.0.parent() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

fn serve_output(args: &[&str]) -> Output {
    CLI.command("serve")
        .args(args)
        .output()
        .expect("run tether serve")
}

fn printed(args: &[&str]) -> String {
    let out = serve_output(&[args, &["--print-config"]].concat());
    assert!(out.status.success(), "{out:?}");
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn print_config_names_every_flag_and_reads_back_the_same() {
    let text = printed(&[]);
    let help = CLI.help("serve");
    for flag in help
        .split_whitespace()
        .filter_map(|w| w.strip_prefix("--"))
        .map(|w| w.trim_end_matches(|c: char| !c.is_ascii_alphanumeric() && c != '-'))
        .filter(|w| !["config", "print-config", "help", "version"].contains(w))
    {
        assert!(
            text.contains(&format!("\n{flag} = ")) || text.contains(&format!("# {flag} = ")),
            "--print-config lacks {flag}:\n{text}"
        );
    }
    assert!(text.contains("idle-timeout = \"75s\""), "{text}");
    // Read back, the printed file gives the same settings.
    let file = Temp::file("all.toml", &text);
    assert_eq!(printed(&["--config", file.path()]), text);
}

#[test]
fn flags_override_the_file() {
    let file = Temp::file(
        "t.toml",
        "idle-timeout = \"7s\"\nmax-requests = 5\ndotfiles = true\ncache-control = \"max-age=60\"\n",
    );
    let text = printed(&["--config", file.path(), "--idle-timeout", "9s"]);
    assert!(text.contains("idle-timeout = \"9s\""), "{text}");
    assert!(text.contains("max-requests = 5\n"), "{text}");
    assert!(text.contains("dotfiles = true\n"), "{text}");
    assert!(text.contains("cache-control = \"max-age=60\""), "{text}");
}

#[test]
fn an_unknown_key_or_a_bad_value_is_refused_naming_it() {
    for (body, names) in [
        ("idle-timeot = \"5s\"\n", "unknown key 'idle-timeot'"),
        ("idle-timeout = \"banana\"\n", "--idle-timeout"),
        ("max-requests = \"many\"\n", "--max-requests"),
        ("dotfiles = \"yes\"\n", "dotfiles: true or false"),
        ("workers = [1, 2]\n", "workers: a string"),
        ("not toml at all", "t.toml"),
    ] {
        let file = Temp::file("t.toml", body);
        let out = serve_output(&["--config", file.path(), "--listen", "127.0.0.1:0"]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{body}: {err}");
        assert!(err.contains(names), "{body}: {err}");
        assert!(err.contains("t.toml"), "the file is named: {err}");
        assert!(!err.contains("listening"), "nothing binds: {err}");
    }
}

#[test]
fn a_served_folder_and_its_settings_can_come_from_the_file() {
    let site = Temp::file("index.html", "<p>from the file's folder</p>\n");
    let folder = site.0.parent().unwrap().to_str().unwrap().to_owned();
    let file = Temp::file(
        "serve.toml",
        &format!("dir = \"{folder}\"\nadmin-prefix = \"/ops/\"\nworkers = 1\n"),
    );
    let server = CLI.serve(&["--config", file.path()]);
    let mut c = server.connect();
    assert_eq!(c.get("/").text(), "<p>from the file's folder</p>\n");
    assert_eq!(c.get("/ops/readyz").text(), "ready\n");
}
