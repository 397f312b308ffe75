//! Shared by the CLI's integration tests: starting a `custos` service
//! process and learning where it listens.
#![allow(
    clippy::unwrap_used,
    clippy::panic,
    reason = "test helpers: a failure is a test failure"
)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

/// Spawns `cmd` with its standard output piped, and returns the child with
/// the address it printed on its first line (`... listening on ADDR`).
pub fn spawn_listening(cmd: &mut Command) -> (Child, String) {
    let mut child = cmd.stdout(Stdio::piped()).spawn().unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line
        .trim()
        .rsplit_once("listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .1
        .to_owned();
    (child, addr)
}
