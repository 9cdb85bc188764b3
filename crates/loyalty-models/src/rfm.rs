//! Per-customer summaries of a transaction log, compressed into weighted rows.

use rayon::prelude::*;

/// One customer (or `weight` customers) of a transaction log: `x` repeat
/// transactions, the last at `t_x` after the first, observed for `t` after the first
/// (all in the same time unit).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rfm {
    pub x: f64,
    pub t_x: f64,
    pub t: f64,
    pub weight: f64,
}

/// Customers with identical (x, t_x, T) merged into one weighted row: a likelihood
/// evaluation then costs one row per distinct history, not per customer.
pub fn compress(rows: &[Rfm]) -> Vec<Rfm> {
    let mut sorted: Vec<Rfm> = rows.to_vec();
    sorted.sort_by(|a, b| a.x.total_cmp(&b.x).then(a.t_x.total_cmp(&b.t_x)).then(a.t.total_cmp(&b.t)));
    let mut out: Vec<Rfm> = Vec::with_capacity(sorted.len() / 4 + 1);
    for r in sorted {
        match out.last_mut() {
            Some(last) if last.x == r.x && last.t_x == r.t_x && last.t == r.t => last.weight += r.weight,
            _ => out.push(r),
        }
    }
    out
}

/// Check the rows a model can take: finite, x >= 0 whole, 0 <= t_x <= T, t_x = 0
/// when x = 0, weight > 0. Returns the first bad row's index and the reason.
pub fn check(rows: &[Rfm]) -> Result<(), (usize, &'static str)> {
    for (i, r) in rows.iter().enumerate() {
        let bad = if !(r.x.is_finite() && r.t_x.is_finite() && r.t.is_finite() && r.weight.is_finite()) {
            Some("not finite")
        } else if r.x < 0.0 || r.x.fract() != 0.0 {
            Some("x must be a whole number >= 0")
        } else if r.t_x < 0.0 || r.t_x > r.t + 1e-9 {
            Some("t_x must be within [0, T]")
        } else if r.x == 0.0 && r.t_x != 0.0 {
            Some("t_x must be 0 when x is 0")
        } else if r.weight <= 0.0 {
            Some("weight must be > 0")
        } else {
            None
        };
        if let Some(reason) = bad {
            return Err((i, reason));
        }
    }
    Ok(())
}

/// sum of weight * f(row), in fixed chunks (the same result whatever the threads).
pub(crate) fn weighted_sum<T: Sync>(
    rows: &[T],
    weight: impl Fn(&T) -> f64 + Sync,
    f: impl Fn(&T) -> f64 + Sync,
) -> f64 {
    if rows.len() < 16_384 {
        return rows.iter().map(|r| weight(r) * f(r)).sum();
    }
    let parts: Vec<f64> = rows.par_chunks(8_192).map(|c| c.iter().map(|r| weight(r) * f(r)).sum::<f64>()).collect();
    parts.iter().sum()
}

/// sum of f(chunk) over fixed chunks of the rows, in parallel when there are many
/// (fixed chunks: the same result whatever the threads).
pub(crate) fn chunked_sum<T: Sync>(rows: &[T], f: impl Fn(&[T]) -> f64 + Sync) -> f64 {
    if rows.len() < 16_384 {
        return f(rows);
    }
    let parts: Vec<f64> = rows.par_chunks(8_192).map(&f).collect();
    parts.iter().sum()
}
