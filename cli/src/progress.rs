//! Progress bars on stderr (indicatif) for downloads and model loading. They draw only on
//! a terminal, and `--quiet` turns them off everywhere.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

static QUIET: AtomicBool = AtomicBool::new(false);

pub fn set_quiet(quiet: bool) {
    QUIET.store(quiet, Ordering::SeqCst);
}

/// A spinner with a message and the elapsed time, for work of unknown length.
pub fn spinner(message: String) -> ProgressBar {
    if QUIET.load(Ordering::SeqCst) {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new_spinner().with_message(message);
    bar.set_style(ProgressStyle::with_template("{spinner} {msg} [{elapsed}]").unwrap());
    bar.enable_steady_tick(Duration::from_millis(120));
    bar
}

/// A bar counting `total` bytes.
pub fn bytes(total: u64, message: String) -> ProgressBar {
    if QUIET.load(Ordering::SeqCst) {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(total).with_message(message);
    bar.set_style(ProgressStyle::with_template("{msg} [{bar:30}] {bytes}/{total_bytes} ({eta})").unwrap().progress_chars("=> "));
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}

/// A bar counting `total` items (`kiln eval`'s task items).
pub fn count(total: u64, message: String) -> ProgressBar {
    if QUIET.load(Ordering::SeqCst) {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(total).with_message(message);
    bar.set_style(ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} ({eta})").unwrap().progress_chars("=> "));
    bar
}
