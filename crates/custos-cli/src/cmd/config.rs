//! The configuration file: defaults for any option, which environment
//! variables and flags override (flag > environment > file > built-in).
//!
//! The file is TOML. Top-level keys set global options; a table named after
//! a subcommand sets that subcommand's options, nested for nested
//! subcommands. Keys are option names (`retention-days` or
//! `retention_days`). An unknown key is an error, so a typo never silently
//! leaves a default in place.
//!
//! ```toml
//! home = "/home/alice/.custos"
//! [register]
//! server = "http://127.0.0.1:7400"
//! [server]
//! data = "/var/lib/custos"
//! listen = "127.0.0.1:7400"
//! [log.serve]
//! data = "/var/lib/custos-log"
//! ```
//!
//! The file is `--config FILE`, else `$CUSTOS_CONFIG`, else
//! `$XDG_CONFIG_HOME/custos/config.toml` (or `~/.config/custos/config.toml`)
//! if it exists.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result, bail};
use clap::Command;

/// Where the configuration file is, and whether it must exist (it must
/// when named by flag or environment).
pub fn locate(args: &[OsString]) -> Option<(PathBuf, bool)> {
    let mut it = args.iter().skip(1);
    while let Some(a) = it.next() {
        if a == "--" {
            break;
        }
        if a == "--config" {
            return it.next().map(|p| (PathBuf::from(p), true));
        }
        if let Some(p) = a.to_str().and_then(|s| s.strip_prefix("--config=")) {
            return Some((PathBuf::from(p), true));
        }
    }
    if let Some(p) = std::env::var_os("CUSTOS_CONFIG").filter(|p| !p.is_empty()) {
        return Some((PathBuf::from(p), true));
    }
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))?;
    Some((base.join("custos").join("config.toml"), false))
}

/// Reads the file (if any) and makes its settings the defaults of `cmd`.
pub fn load(cmd: Command, file: Option<(PathBuf, bool)>) -> Result<Command> {
    let Some((path, required)) = file else {
        return Ok(cmd);
    };
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if !required && e.kind() == std::io::ErrorKind::NotFound => return Ok(cmd),
        Err(e) => {
            return Err(e).with_context(|| format!("reading the config file {}", path.display()));
        }
    };
    let table: toml::Table = toml::from_str(&text)
        .with_context(|| format!("the config file {} is not valid TOML", path.display()))?;
    apply(cmd, &table, &path, "")
}

/// Applies one table to `cmd` (recursively for subcommand tables).
pub fn apply(mut cmd: Command, table: &toml::Table, path: &Path, prefix: &str) -> Result<Command> {
    for (key, value) in table {
        let name = format!("{prefix}{key}");
        if let toml::Value::Table(sub_table) = value {
            let Some(sub) = cmd.find_subcommand(key).cloned() else {
                bail!(
                    "{}: `[{name}]` is not a custos command (see `custos --help`)",
                    path.display()
                );
            };
            let sub = apply(sub, sub_table, path, &format!("{name}."))?;
            cmd = cmd.mut_subcommand(key, |_| sub);
            continue;
        }
        let id = key.replace('-', "_");
        let known = cmd
            .get_arguments()
            .any(|a| a.get_id() == id.as_str() && !a.is_positional());
        if !known {
            bail!(
                "{}: `{name}` is not an option of `custos {}`",
                path.display(),
                prefix.trim_end_matches('.').replace('.', " ")
            );
        }
        let text = match value {
            toml::Value::String(s) => s.clone(),
            toml::Value::Integer(i) => i.to_string(),
            toml::Value::Boolean(b) => b.to_string(),
            toml::Value::Float(f) => f.to_string(),
            _ => bail!(
                "{}: `{name}` must be a string, number or boolean",
                path.display()
            ),
        };
        // A default satisfies what would otherwise be a required option.
        cmd = cmd.mut_arg(id, |a| a.default_value(text).required(false));
    }
    Ok(cmd)
}

#[cfg(test)]
mod tests {
    use clap::{CommandFactory as _, FromArgMatches as _};

    use super::*;
    use crate::cmd::{Cli, Command as Sub};

    fn parse(toml_text: &str, argv: &[&str]) -> Result<Cli> {
        let table: toml::Table = toml::from_str(toml_text)?;
        let cmd = apply(Cli::command(), &table, Path::new("test.toml"), "")?;
        let m = cmd.try_get_matches_from(argv)?;
        Ok(Cli::from_arg_matches(&m)?)
    }

    #[test]
    fn file_sets_defaults_and_flags_override_them() {
        let text = "home = \"/h\"\n[server]\ndata = \"/d\"\nretention-days = 7\n";
        let cli = parse(text, &["custos", "server"]).unwrap();
        assert_eq!(cli.home.home.as_deref(), Some(Path::new("/h")));
        let Sub::Server(a) = cli.command else {
            panic!("not server")
        };
        assert_eq!((a.data.as_path(), a.retention_days), (Path::new("/d"), 7));

        let cli = parse(text, &["custos", "server", "--data", "/flag"]).unwrap();
        let Sub::Server(a) = cli.command else {
            panic!("not server")
        };
        assert_eq!(a.data.as_path(), Path::new("/flag"));
    }

    #[test]
    fn nested_subcommands_and_bad_keys() {
        let cli = parse(
            "[log.serve]\ndata = \"/l\"\nkey = \"/k\"\nlisten = \"127.0.0.1:1\"\n",
            &["custos", "log", "serve"],
        );
        assert!(cli.is_ok(), "{cli:?}");
        let e = parse("[server]\ndta = \"/d\"\n", &["custos", "server"]).unwrap_err();
        assert!(
            e.to_string().contains("`server.dta` is not an option"),
            "{e}"
        );
        let e = parse("[nope]\nx = 1\n", &["custos", "version"]).unwrap_err();
        assert!(e.to_string().contains("not a custos command"), "{e}");
        let e = parse("home = [1]\n", &["custos", "version"]).unwrap_err();
        assert!(e.to_string().contains("must be a string"), "{e}");
    }

    #[test]
    fn locate_prefers_the_flag() {
        let argv: Vec<OsString> = ["custos", "--config", "/c.toml", "version"]
            .iter()
            .map(OsString::from)
            .collect();
        assert_eq!(locate(&argv), Some((PathBuf::from("/c.toml"), true)));
        let argv: Vec<OsString> = ["custos", "--config=/x.toml"]
            .iter()
            .map(OsString::from)
            .collect();
        assert_eq!(locate(&argv), Some((PathBuf::from("/x.toml"), true)));
    }
}
