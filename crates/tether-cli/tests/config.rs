//! `tether serve --config FILE` and `--print-config`: the same names as the flags, flags
//! over the file, errors naming the key before anything binds.

use std::process::Output;

use tether_test_support::process::Cli;
use tether_test_support::temp::TempDir;

const CLI: Cli = Cli(env!("CARGO_BIN_EXE_tether"));

/// A file in a fresh temporary folder (removed when the folder is dropped) and its path.
fn temp_file(name: &str, text: &str) -> (TempDir, String) {
    let dir = TempDir::new("tether-config");
    let path = dir.write(name, text);
    (dir, path.to_str().expect("a UTF-8 path").to_owned())
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
    let (_dir, file) = temp_file("all.toml", &text);
    assert_eq!(printed(&["--config", file.as_str()]), text);
}

#[test]
fn flags_override_the_file() {
    let (_dir, file) = temp_file(
        "t.toml",
        "idle-timeout = \"7s\"\nmax-requests = 5\ndotfiles = true\ncache-control = \"max-age=60\"\n",
    );
    let text = printed(&["--config", file.as_str(), "--idle-timeout", "9s"]);
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
        let (_dir, file) = temp_file("t.toml", body);
        let out = serve_output(&["--config", file.as_str(), "--listen", "127.0.0.1:0"]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{body}: {err}");
        assert!(err.contains(names), "{body}: {err}");
        assert!(err.contains("t.toml"), "the file is named: {err}");
        assert!(!err.contains("listening"), "nothing binds: {err}");
    }
}

#[test]
fn a_served_folder_and_its_settings_can_come_from_the_file() {
    let site = TempDir::new("tether-config-site");
    site.write("index.html", "<p>from the file's folder</p>\n");
    let folder = site.text();
    let (_dir, file) = temp_file(
        "serve.toml",
        &format!("dir = \"{folder}\"\nadmin-prefix = \"/ops/\"\nworkers = 1\n"),
    );
    let server = CLI.serve(&["--config", file.as_str()]);
    let mut c = server.connect();
    assert_eq!(c.get("/").text(), "<p>from the file's folder</p>\n");
    assert_eq!(c.get("/ops/readyz").text(), "ready\n");
}
