//! BG/NBD (Fader, Hardie & Lee 2005, "Counting your customers the easy way"):
//! while alive a customer buys as a Poisson process with rate λ ~ Gamma(r, α); after
//! each purchase they drop out with probability p ~ Beta(a, b).

use serde::Serialize;

use crate::optimize::{Optimum, maximize};
use crate::rfm::{Rfm, chunked_sum};
use crate::special::{hyp2f1, ln_beta, ln_gamma, ln_hyp2f1, log_add_exp};

#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct BgNbd {
    pub r: f64,
    pub alpha: f64,
    pub a: f64,
    pub b: f64,
}

impl BgNbd {
    pub const NAMES: [&'static str; 4] = ["r", "alpha", "a", "b"];

    pub fn from_slice(p: &[f64]) -> Self {
        BgNbd { r: p[0], alpha: p[1], a: p[2], b: p[3] }
    }

    /// ln L(x, t_x, T) (FHL 2005, eq. 6).
    pub fn ln_likelihood(&self, x: f64, t_x: f64, t: f64) -> f64 {
        let BgNbd { r, alpha, a, b } = *self;
        let common = ln_gamma(r + x) - ln_gamma(r) + r * alpha.ln() - ln_beta(a, b);
        let stays = ln_beta(a, b + x) - (r + x) * (alpha + t).ln();
        if x > 0.0 {
            let drops = ln_beta(a + 1.0, b + x - 1.0) - (r + x) * (alpha + t_x).ln();
            common + log_add_exp(stays, drops)
        } else {
            common + stays
        }
    }

    /// Σ weight · ln L. The terms that depend on x only are computed once per run of
    /// equal x (compressed rows are sorted by x, so once per distinct x).
    pub fn log_likelihood(&self, rows: &[Rfm]) -> f64 {
        let BgNbd { r, alpha, a, b } = *self;
        let base = -ln_gamma(r) + r * alpha.ln() - ln_beta(a, b);
        let chunk = |rows: &[Rfm]| {
            let (mut last_x, mut common, mut stay, mut drop) = (f64::NAN, 0.0, 0.0, 0.0);
            let mut sum = 0.0;
            for row in rows {
                let x = row.x;
                if x != last_x {
                    last_x = x;
                    common = base + ln_gamma(r + x);
                    stay = ln_beta(a, b + x);
                    drop = if x > 0.0 { ln_beta(a + 1.0, b + x - 1.0) } else { f64::NEG_INFINITY };
                }
                let stays = stay - (r + x) * (alpha + row.t).ln();
                let ll = if x > 0.0 {
                    common + log_add_exp(stays, drop - (r + x) * (alpha + row.t_x).ln())
                } else {
                    common + stays
                };
                sum += row.weight * ll;
            }
            sum
        };
        chunked_sum(rows, chunk)
    }

    /// P(alive at T | x, t_x, T).
    pub fn p_alive(&self, x: f64, t_x: f64, t: f64) -> f64 {
        if x == 0.0 {
            return 1.0;
        }
        let BgNbd { r, alpha, a, b } = *self;
        let ln_odds = (a / (b + x - 1.0)).ln() + (r + x) * ((alpha + t) / (alpha + t_x)).ln();
        1.0 / (1.0 + ln_odds.exp())
    }

    /// E[transactions in (T, T + horizon] | x, t_x, T] (FHL 2005, eq. 10). The
    /// factor (1-z)^(r+x) 2F1(r+x, b+x; a+b+x-1; z) is computed through Euler's
    /// transformation, (1-z)^(a-1) 2F1(a+b-1-r, a-1; a+b+x-1; z), whose series stays
    /// small for any x (the direct one overflows for heavy buyers).
    pub fn expected_transactions(&self, horizon: f64, x: f64, t_x: f64, t: f64) -> f64 {
        let BgNbd { r, alpha, a, b } = *self;
        let z = horizon / (alpha + t + horizon);
        let tail = (1.0 - z).powf(a - 1.0) * hyp2f1(a + b - 1.0 - r, a - 1.0, a + b + x - 1.0, z);
        let head = (a + b + x - 1.0) / (a - 1.0) * (1.0 - tail);
        head * self.p_alive_odds_factor(x, t_x, t)
    }

    /// 1 / (1 + δ(x>0) a/(b+x-1) ((α+T)/(α+t_x))^(r+x)) = P(alive).
    fn p_alive_odds_factor(&self, x: f64, t_x: f64, t: f64) -> f64 {
        self.p_alive(x, t_x, t)
    }

    /// P(alive at T + h | x, t_x, T): alive at T, then no dropout at any purchase in
    /// (T, T + h]. Given alive, λ ~ Gamma(r+x, α+T) and p ~ Beta(a, b+x), so
    /// E[(1-p)^N] with N ~ Poisson(λh) is E_p[(1 + c p)^-(r+x)], c = h/(α+T), which is
    /// 2F1(r+x, a; a+b+x; -c) = (1+c)^-(r+x) 2F1(r+x, b+x; a+b+x; c/(1+c)) (Pfaff).
    pub fn p_alive_after(&self, h: f64, x: f64, t_x: f64, t: f64) -> f64 {
        let BgNbd { r, alpha, a, b } = *self;
        let c = h / (alpha + t);
        let stays = -(r + x) * c.ln_1p() + ln_hyp2f1(r + x, b + x, a + b + x, c / (1.0 + c));
        self.p_alive(x, t_x, t) * stays.exp()
    }

    /// Σ_{k=1..steps} E[transactions in step k] / (1+d)^k, steps of `step` periods
    /// after T: the discounted expected transactions that CLV multiplies by the
    /// expected value and margin of a transaction.
    pub fn discounted_transactions(&self, step: f64, steps: u32, d: f64, x: f64, t_x: f64, t: f64) -> f64 {
        let mut previous = 0.0;
        let mut total = 0.0;
        for k in 1..=steps {
            let cumulative = self.expected_transactions(step * f64::from(k), x, t_x, t);
            total += (cumulative - previous) / (1.0 + d).powi(k as i32);
            previous = cumulative;
        }
        total
    }

    /// E[X(t)]: expected transactions of a new customer in (0, t].
    pub fn expected_transactions_new(&self, t: f64) -> f64 {
        self.expected_transactions(t, 0.0, 0.0, 0.0)
    }
}

/// Fit by maximum likelihood (the start: r = 1, α = mean T, a = b = 1).
pub fn fit(rows: &[Rfm]) -> (BgNbd, Optimum) {
    let scale = rows.iter().map(|r| r.t * r.weight).sum::<f64>() / rows.iter().map(|r| r.weight).sum::<f64>().max(1.0);
    let ll = |p: &[f64]| BgNbd::from_slice(p).log_likelihood(rows);
    let o = maximize(&ll, &[1.0, scale.max(1e-3), 1.0, 1.0]);
    (BgNbd::from_slice(&o.params), o)
}
