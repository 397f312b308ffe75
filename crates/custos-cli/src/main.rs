//! The `custos` command. It only parses arguments and dispatches to the
//! library crates; each subcommand lives in its own module under `cmd/`.
#![forbid(unsafe_code)]

mod cmd;

use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = cmd::Cli::parse();
    match cmd::run(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            std::process::ExitCode::from(1)
        }
    }
}
