//! Logs and progress go to stderr; data goes to stdout.

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressStyle};
use tracing_subscriber::EnvFilter;

use crate::cli::GlobalArgs;

pub fn init(args: &GlobalArgs) {
    let level = if args.quiet {
        "error"
    } else if args.verbose {
        "debug"
    } else {
        "info"
    };
    // Ballista and DataFusion log every job and task at info: only their warnings.
    let quiet_engines = ["ballista", "ballista_core", "ballista_scheduler", "ballista_executor", "datafusion"]
        .map(|target| {
            format!(
                ",{target}={}",
                if args.verbose {
                    "info"
                } else if args.quiet {
                    "error"
                } else {
                    "warn"
                }
            )
        })
        .concat();
    let filter =
        EnvFilter::try_from_env("LOYALTY_LOG").unwrap_or_else(|_| EnvFilter::new(format!("{level}{quiet_engines}")));
    let color = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(color)
        .with_target(false)
        .init();
    QUIET.set(args.quiet).ok();
}

static QUIET: std::sync::OnceLock<bool> = std::sync::OnceLock::new();

/// A progress bar on a terminal; hidden otherwise (logs say what happened instead).
pub fn progress(len: u64, what: &str) -> ProgressBar {
    if !std::io::stderr().is_terminal() || QUIET.get().copied().unwrap_or(false) {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(len);
    bar.set_style(
        ProgressStyle::with_template("{msg:>12} [{bar:40}] {pos}/{len} ({eta})")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar.set_message(what.to_string());
    bar
}

/// A spinner for one pipeline stage on a terminal (hidden otherwise, or with --quiet:
/// the stage's log line says when it ends).
pub fn stage_spinner(what: &str) -> ProgressBar {
    if !std::io::stderr().is_terminal() || QUIET.get().copied().unwrap_or(false) {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new_spinner();
    bar.set_style(
        ProgressStyle::with_template("{spinner} {msg} {elapsed}").unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    bar.set_message(what.to_string());
    bar.enable_steady_tick(std::time::Duration::from_millis(120));
    bar
}
