//! A run's stop request: the binary records SIGINT or SIGTERM here, and every long
//! loop (stages, customer partitions, scoring chunks, generator waves) asks between
//! steps whether to stop. Pure: one atomic, no signal handling of its own.

use std::sync::atomic::{AtomicI32, Ordering};

static REQUESTED: AtomicI32 = AtomicI32::new(0);

/// The run was asked to stop by a signal (its number).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("interrupted by signal {signal}")]
pub struct Interrupted {
    pub signal: i32,
}

/// Record that `signal` asked the run to stop (the first request wins).
pub fn request(signal: i32) {
    let _ = REQUESTED.compare_exchange(0, signal, Ordering::SeqCst, Ordering::SeqCst);
}

/// The signal that asked the run to stop, if any.
pub fn requested() -> Option<i32> {
    match REQUESTED.load(Ordering::SeqCst) {
        0 => None,
        s => Some(s),
    }
}

/// `Err` once a stop was requested: call between steps of any long loop.
pub fn check() -> Result<(), Interrupted> {
    requested().map_or(Ok(()), |signal| Err(Interrupted { signal }))
}

impl From<Interrupted> for polars::prelude::PolarsError {
    fn from(i: Interrupted) -> Self {
        polars::prelude::PolarsError::ComputeError(i.to_string().into())
    }
}
