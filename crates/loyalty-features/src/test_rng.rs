//! Seeded draws for the tests' random inputs (xorshift: the same numbers on every run).

/// Draws in `0..n` from the seed.
pub(crate) fn below(seed: u64) -> impl FnMut(u64) -> u64 {
    let mut state = seed;
    move |n| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state % n
    }
}
