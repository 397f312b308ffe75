//! The `custos` command. It only parses arguments and dispatches to the
//! library crates; each subcommand lives in its own module under `cmd/`.
#![forbid(unsafe_code)]

mod cmd;

use clap::{CommandFactory as _, FromArgMatches as _};

/// The process's allocator: mimalloc keeps memory it has freed for the
/// next allocation, where glibc's allocator gives large blocks back to the
/// kernel and takes them again zeroed: a key directory epoch of 10,000
/// changes at a million accounts allocates and frees about 100 MB, and
/// spent 9 % of its time in those page faults and zeroing (BENCHMARKS.md,
/// session 13). It changes no result, only where memory comes from.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
