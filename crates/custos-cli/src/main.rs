//! The `custos` command. It only parses arguments and dispatches to the
//! library crates; each subcommand lives in its own module under `cmd/`.
#![forbid(unsafe_code)]

mod cmd;

use clap::{CommandFactory as _, FromArgMatches as _};

/// Exit code for a usage or configuration error (as clap uses).
const EXIT_USAGE: u8 = 2;

fn main() -> std::process::ExitCode {
    let argv: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let command = match cmd::config::load(cmd::Cli::command(), cmd::config::locate(&argv)) {
        Ok(c) => c,
        Err(err) => {
            eprintln!("error: {err:#}");
            return std::process::ExitCode::from(EXIT_USAGE);
        }
    };
    let matches = command.get_matches_from(argv);
    let cli = match cmd::Cli::from_arg_matches(&matches) {
        Ok(c) => c,
        Err(err) => err.exit(),
    };
    match cmd::run(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            std::process::ExitCode::from(1)
        }
    }
}
