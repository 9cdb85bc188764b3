//! Gamma-Gamma spend model (Fader & Hardie 2013, "The Gamma-Gamma model of monetary
//! value"; Colombo & Jiang 1999): a transaction's value is Gamma(p, ν) with ν ~
//! Gamma(q, γ) across customers, independent of the transaction process.

use serde::Serialize;

use crate::optimize::{Optimum, maximize};
use crate::rfm::weighted_sum;
use crate::special::ln_gamma;

/// A customer with `x` > 0 repeat transactions of mean value `mean_value`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Spend {
    pub x: f64,
    pub mean_value: f64,
    pub weight: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct GammaGamma {
    pub p: f64,
    pub q: f64,
    pub gamma: f64,
}

impl GammaGamma {
    pub const NAMES: [&'static str; 3] = ["p", "q", "gamma"];

    pub fn from_slice(v: &[f64]) -> Self {
        GammaGamma { p: v[0], q: v[1], gamma: v[2] }
    }

    pub fn ln_likelihood(&self, x: f64, m: f64) -> f64 {
        let GammaGamma { p, q, gamma } = *self;
        ln_gamma(p * x + q) - ln_gamma(p * x) - ln_gamma(q) + q * gamma.ln() + (p * x - 1.0) * m.ln() + p * x * x.ln()
            - (p * x + q) * (gamma + m * x).ln()
    }

    pub fn log_likelihood(&self, rows: &[Spend]) -> f64 {
        weighted_sum(rows, |r| r.weight, |r| self.ln_likelihood(r.x, r.mean_value))
    }

    /// E[value of a transaction | x, mean value] (the population mean p γ / (q - 1)
    /// when x = 0).
    pub fn expected_value(&self, x: f64, m: f64) -> f64 {
        let GammaGamma { p, q, gamma } = *self;
        (gamma + m * x) * p / (p * x + q - 1.0)
    }
}

/// Rows with x > 0 and a positive mean value only (the model's domain).
pub fn fit(rows: &[Spend]) -> (GammaGamma, Optimum) {
    let rows: Vec<Spend> = rows.iter().copied().filter(|r| r.x > 0.0 && r.mean_value > 0.0).collect();
    let mean =
        rows.iter().map(|r| r.mean_value * r.weight).sum::<f64>() / rows.iter().map(|r| r.weight).sum::<f64>().max(1.0);
    let ll = |v: &[f64]| GammaGamma::from_slice(v).log_likelihood(&rows);
    let o = maximize(&ll, &[1.0, 2.0, mean.max(1e-6)]);
    (GammaGamma::from_slice(&o.params), o)
}
