//! Panics as errors: the hook records where a panic happened instead of printing a
//! trace, and `commands::run` turns a caught panic into [`Panicked`], reported like any
//! internal error (exit 2), or as the corrupt input file it came from (exit 1).

use std::sync::Mutex;

static LAST: Mutex<Option<String>> = Mutex::new(None);

/// Record the location of every panic; print nothing (the error path reports it; with
/// `RUST_BACKTRACE` set, the backtrace goes to the debug log, `-v`).
pub fn install() {
    std::panic::set_hook(Box::new(|info| {
        let at = info.location().map(|l| format!("{}:{}", l.file(), l.line())).unwrap_or_default();
        tracing::debug!("panic at {at}: {}", std::backtrace::Backtrace::capture());
        *LAST.lock().unwrap_or_else(|p| p.into_inner()) = Some(at);
    }));
}

/// A panic caught at the top of a command.
#[derive(Debug, thiserror::Error)]
#[error("internal error (a bug; please report it): {message} at {location}")]
pub struct Panicked {
    message: String,
    location: String,
}

impl Panicked {
    pub fn from_payload(payload: &(dyn std::any::Any + Send)) -> Self {
        let location = LAST.lock().unwrap_or_else(|p| p.into_inner()).take().unwrap_or_else(|| "?".into());
        Self { message: loyalty_io::panic_text(payload), location }
    }
}
