//! Freed memory handed back to the system where a run has just freed a lot of it.
//!
//! An allocator keeps the pages it frees for a while (jemalloc here: three seconds),
//! to hand them out again without asking the system. Where a step frees a table and
//! the next builds another of other sizes, both count towards the run's peak until
//! the kept pages go. At those points the run calls [`release`]; the binary says what
//! that does for its allocator ([`set_release`]). Releasing at every free instead
//! (jemalloc's `dirty_decay_ms:0`) made the 10M-customer run far slower: every page
//! taken again is a page fault.

use std::sync::OnceLock;

static RELEASE: OnceLock<fn()> = OnceLock::new();

/// What [`release`] does from now on (the first call wins).
pub fn set_release(release: fn()) {
    let _ = RELEASE.set(release);
}

/// Hand the pages the allocator keeps back to the system, if the binary said how.
pub fn release() {
    if let Some(release) = RELEASE.get() {
        release();
    }
}
