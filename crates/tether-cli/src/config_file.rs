//! `tether serve --config FILE` and `--print-config`: the settings of `tether serve` as a
//! TOML file whose keys are the names of its flags.

use std::path::PathBuf;

use clap::CommandFactory;
use tether::Config;

use crate::serve::ServeArgs;

/// Keys of a configuration file that are not flags of `tether serve` themselves.
const DIR_KEY: &str = "dir";

/// Splices the settings of `--config FILE` into the arguments of `tether serve`: each
/// `key = value` becomes `--key value` (`true` a bare `--key`, `false` nothing), placed
/// before the flags given on the command line so that those override them (the subcommand
/// lets a later flag override an earlier one). The folder (`dir = "..."`) is returned
/// apart: it applies only when the command line names none.
///
/// # Errors
/// A file that cannot be read or is not TOML, a key that names no flag, a value of the
/// wrong kind, or a value its flag refuses: each message names the file and the key.
pub fn with_config_file(
    mut argv: Vec<std::ffi::OsString>,
) -> Result<(Vec<std::ffi::OsString>, Option<PathBuf>), String> {
    if argv.get(1).and_then(|a| a.to_str()) != Some("serve") {
        return Ok((argv, None));
    }
    let mut path = None;
    for (i, arg) in argv.iter().enumerate().skip(2) {
        let Some(arg) = arg.to_str() else { continue };
        if arg == "--config" {
            path = argv.get(i + 1).map(PathBuf::from);
        } else if let Some(p) = arg.strip_prefix("--config=") {
            path = Some(PathBuf::from(p));
        }
    }
    let Some(path) = path else {
        return Ok((argv, None));
    };
    let (flags, dir) = file_args(&path)?;
    // The file's flags alone first, so that a bad value is reported as the file's.
    let mut alone = vec!["tether".into(), "serve".into()];
    alone.extend(flags.iter().cloned());
    if let Err(e) = crate::Cli::command().try_get_matches_from(&alone) {
        let text = e.to_string();
        let text = text.trim_start_matches("error: ").trim_end();
        return Err(format!("{}: {text}", path.display()));
    }
    argv.splice(2..2, flags.into_iter().map(Into::into));
    Ok((argv, dir))
}

/// The flags a configuration file stands for, and its folder.
fn file_args(path: &std::path::Path) -> Result<(Vec<String>, Option<PathBuf>), String> {
    let shown = path.display();
    let text = std::fs::read_to_string(path).map_err(|e| format!("{shown}: {e}"))?;
    let table: toml::Table = text.parse().map_err(|e| format!("{shown}: {e}"))?;
    let mut cli = crate::Cli::command();
    cli.build();
    let serve = cli
        .find_subcommand("serve")
        .ok_or("the serve subcommand exists")?;
    let known: Vec<&str> = serve
        .get_arguments()
        .filter_map(|a| a.get_long())
        .filter(|l| !["config", "print-config", "help", "version"].contains(l))
        .collect();
    let mut flags = Vec::new();
    let mut dir = None;
    for (key, value) in &table {
        let text = match value {
            toml::Value::String(s) => s.clone(),
            toml::Value::Integer(n) => n.to_string(),
            toml::Value::Float(x) => x.to_string(),
            toml::Value::Boolean(b) => b.to_string(),
            _ => {
                return Err(format!(
                    "{shown}: {key}: a string, a number or true/false is expected"
                ))
            }
        };
        if key == DIR_KEY {
            dir = Some(PathBuf::from(text));
            continue;
        }
        if !known.contains(&key.as_str()) {
            return Err(format!(
                "{shown}: unknown key '{key}' (the keys are the long flags of `tether serve`, and dir)"
            ));
        }
        let takes_value = serve
            .get_arguments()
            .find(|a| a.get_long() == Some(key.as_str()))
            .is_some_and(|a| a.get_action().takes_values());
        match (value, takes_value) {
            (toml::Value::Boolean(true), false) => flags.push(format!("--{key}")),
            (toml::Value::Boolean(false), false) => {}
            (_, false) => return Err(format!("{shown}: {key}: true or false is expected")),
            (_, true) => {
                flags.push(format!("--{key}"));
                flags.push(text);
            }
        }
    }
    Ok((flags, dir))
}

impl ServeArgs {
    /// The effective settings as a configuration file that `--config` reads back: every
    /// flag with its value, defaults included; unset optional ones as comments.
    pub fn to_toml(&self) -> String {
        use toml::Value;
        let text = |s: &str| Value::String(s.to_owned()).to_string();
        let mut out = String::from("# tether serve --print-config\n");
        let mut line = |key: &str, value: Option<String>| {
            out.push_str(&match value {
                Some(v) => format!("{key} = {v}\n"),
                None => format!("# {key} = (not set)\n"),
            });
        };
        line(
            DIR_KEY,
            self.dir.as_ref().map(|d| text(&d.display().to_string())),
        );
        line("listen", Some(text(&self.listen.to_string())));
        let config = self.config();
        for setting in Config::SETTINGS {
            let value = config.get(setting.name()).unwrap_or_default();
            let toml = if setting.is_switch() {
                (value == setting.switch_value()).to_string()
            } else if value.parse::<i64>().is_ok() || value.parse::<f64>().is_ok() {
                value
            } else {
                text(&value)
            };
            line(&setting.flag(), Some(toml));
        }
        line("metrics-path", Some(text(&self.metrics_path)));
        line("ready-path", Some(text(&self.ready_path)));
        line("live-path", Some(text(&self.live_path)));
        line("admin-prefix", Some(text(&self.admin_prefix)));
        line(
            "admin-listen",
            self.admin_listen.map(|a| text(&a.to_string())),
        );
        line("access-log", self.access_log.as_deref().map(text));
        line("dotfiles", Some(self.files.dotfiles.to_string()));
        line(
            "cache-control",
            self.files.cache_control.as_deref().map(text),
        );
        line(
            "spa",
            self.files
                .spa
                .as_ref()
                .map(|p| text(&p.display().to_string())),
        );
        let path = |p: &Option<PathBuf>| p.as_ref().map(|p| text(&p.display().to_string()));
        line("tls-cert", path(&self.tls.tls_cert));
        line("tls-key", path(&self.tls.tls_key));
        line(
            "tls-self-signed",
            Some(self.tls.tls_self_signed.to_string()),
        );
        out
    }
}
