//! The flags of `tether serve` come from the one definition of each engine setting
//! (`tether::Config::SETTINGS`): every setting is a flag, shown in `--help` with its default,
//! and a flag that did not exist before the table reaches the engine.

use tether::Config;
use tether_test_support::process::Cli;

const CLI: Cli = Cli(env!("CARGO_BIN_EXE_tether"));

#[test]
fn help_lists_every_setting_with_its_default() {
    let help = CLI.help("serve");
    for s in Config::SETTINGS {
        let flag = if s.is_switch() {
            format!("--{}", s.flag())
        } else {
            format!("--{} <{}>", s.flag(), s.value_name())
        };
        let line = help
            .lines()
            .find(|l| l.trim_start().starts_with(&format!("{flag} ")))
            .unwrap_or_else(|| panic!("{flag} ({}) missing from --help:\n{help}", s.name()));
        assert!(
            line.ends_with(&format!("[default: {}]", s.flag_default())),
            "{}: {line}",
            s.name()
        );
        assert!(
            !line.contains(&format!("`{}`", s.name())),
            "a setting named as a field rather than a flag: {line}"
        );
    }
}

#[test]
fn a_flag_new_with_the_table_reaches_the_engine() {
    let tether = CLI.serve(&["--workers", "1", "--max-uri-len", "32"]);
    let status = |target: &str| {
        let r = tether
            .connect()
            .exchange("GET", target, &["Connection: close"], None)
            .unwrap_or_else(|e| panic!("GET {target}: {e}"));
        r.status.to_string()
    };
    assert_eq!(status("/plaintext"), "200");
    assert_eq!(status(&format!("/plaintext?{}", "x".repeat(64))), "414");
}

#[test]
fn range_errors_of_new_flags_name_the_flag() {
    let (status, err) = CLI.serve_to_exit(&["--read-buffer-size", "100"]);
    assert_eq!(status.code(), Some(2), "{err}");
    assert!(err.contains("'--read-buffer-size'"), "{err}");
}
