//! Progress bars for long work, drawn on standard error.
//!
//! A bar is hidden when the output is for scripts (`--json`) or standard
//! error is not a terminal, so it never mixes with parsed output.

use std::io::IsTerminal as _;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// A bar with `message` for work whose length is learnt later
/// ([`ProgressBar::set_length`]).
pub fn bar(json: bool, message: &'static str) -> ProgressBar {
    let target = if json || !std::io::stderr().is_terminal() {
        ProgressDrawTarget::hidden()
    } else {
        ProgressDrawTarget::stderr()
    };
    let bar = ProgressBar::with_draw_target(Some(0), target).with_message(message);
    if let Ok(style) =
        ProgressStyle::with_template("{msg:>20} [{bar:40}] {pos}/{len} ({per_sec}, eta {eta})")
    {
        bar.set_style(style.progress_chars("=> "));
    }
    bar
}
