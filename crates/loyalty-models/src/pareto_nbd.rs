//! Pareto/NBD (Schmittlein, Morrison & Colombo 1987): purchases while alive are
//! Poisson with λ ~ Gamma(r, α); lifetimes are exponential with μ ~ Gamma(s, β).
//! Likelihood as in Fader & Hardie (2005), "A note on deriving the Pareto/NBD model
//! and related expressions", eq. 22, evaluated in log space.

use serde::Serialize;

use crate::optimize::{Optimum, maximize};
use crate::rfm::{Rfm, weighted_sum};
use crate::special::{ln_gamma, ln_hyp2f1, log_add_exp, log_sub_exp};

#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct ParetoNbd {
    pub r: f64,
    pub alpha: f64,
    pub s: f64,
    pub beta: f64,
}

impl ParetoNbd {
    pub const NAMES: [&'static str; 4] = ["r", "alpha", "s", "beta"];

    pub fn from_slice(p: &[f64]) -> Self {
        ParetoNbd { r: p[0], alpha: p[1], s: p[2], beta: p[3] }
    }

    /// (ln of the "still alive" term, ln of the "died in (t_x, T]" term) of the
    /// likelihood, without the common factor Γ(r+x) α^r β^s / Γ(r).
    fn ln_terms(&self, x: f64, t_x: f64, t: f64) -> (f64, f64) {
        let ParetoNbd { r, alpha, s, beta } = *self;
        let alive = -(r + x) * (alpha + t).ln() - s * (beta + t).ln();
        let rsx = r + s + x;
        let f = |u: f64| {
            if alpha >= beta {
                ln_hyp2f1(rsx, s + 1.0, rsx + 1.0, (alpha - beta) / (alpha + u)) - rsx * (alpha + u).ln()
            } else {
                ln_hyp2f1(rsx, r + x, rsx + 1.0, (beta - alpha) / (beta + u)) - rsx * (beta + u).ln()
            }
        };
        let ln_a0 = if t > t_x { log_sub_exp(f(t_x), f(t)) } else { f64::NEG_INFINITY };
        (alive, (s / rsx).ln() + ln_a0)
    }

    pub fn ln_likelihood(&self, x: f64, t_x: f64, t: f64) -> f64 {
        let ParetoNbd { r, alpha, s, beta } = *self;
        let (alive, died) = self.ln_terms(x, t_x, t);
        ln_gamma(r + x) - ln_gamma(r) + r * alpha.ln() + s * beta.ln() + log_add_exp(alive, died)
    }

    pub fn log_likelihood(&self, rows: &[Rfm]) -> f64 {
        weighted_sum(rows, |r| r.weight, |r| self.ln_likelihood(r.x, r.t_x, r.t))
    }

    /// P(alive at T | x, t_x, T).
    pub fn p_alive(&self, x: f64, t_x: f64, t: f64) -> f64 {
        let (alive, died) = self.ln_terms(x, t_x, t);
        (alive - log_add_exp(alive, died)).exp()
    }

    /// E[transactions in (T, T + horizon] | x, t_x, T].
    pub fn expected_transactions(&self, horizon: f64, x: f64, t_x: f64, t: f64) -> f64 {
        let ParetoNbd { r, alpha, s, beta } = *self;
        let ratio = (beta + t) / (beta + t + horizon);
        let life = if (s - 1.0).abs() < 1e-9 { -ratio.ln() } else { (1.0 - ratio.powf(s - 1.0)) / (s - 1.0) };
        (r + x) * (beta + t) / (alpha + t) * life * self.p_alive(x, t_x, t)
    }
}

pub fn fit(rows: &[Rfm]) -> (ParetoNbd, Optimum) {
    let scale = rows.iter().map(|r| r.t * r.weight).sum::<f64>() / rows.iter().map(|r| r.weight).sum::<f64>().max(1.0);
    let ll = |p: &[f64]| ParetoNbd::from_slice(p).log_likelihood(rows);
    let o = maximize(&ll, &[1.0, scale.max(1e-3), 1.0, scale.max(1e-3)]);
    (ParetoNbd::from_slice(&o.params), o)
}
