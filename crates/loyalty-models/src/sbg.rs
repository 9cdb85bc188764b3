//! Shifted-beta-geometric (Fader & Hardie 2007, "How to project customer
//! retention"): each period a customer churns with probability θ ~ Beta(α, β).
//! DERL from Fader & Hardie (2010), "Customer-base valuation in a contractual
//! setting: the perils of ignoring heterogeneity".

use serde::Serialize;

use crate::ModelError;
use crate::optimize::{Optimum, maximize};
use crate::special::{ln_beta, ln_hyp2f1};

#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Sbg {
    pub alpha: f64,
    pub beta: f64,
}

impl Sbg {
    pub const NAMES: [&'static str; 2] = ["alpha", "beta"];

    /// P(T = t): churn in period t = 1, 2, ...
    pub fn ln_churn_in(&self, t: u32) -> f64 {
        ln_beta(self.alpha + 1.0, self.beta + f64::from(t) - 1.0) - ln_beta(self.alpha, self.beta)
    }

    /// S(t) = P(T > t): still a customer after t periods.
    pub fn survival(&self, t: u32) -> f64 {
        (ln_beta(self.alpha, self.beta + f64::from(t)) - ln_beta(self.alpha, self.beta)).exp()
    }

    /// r(t) = S(t) / S(t - 1): the retention rate of period t (rises with t).
    pub fn retention(&self, t: u32) -> f64 {
        (self.beta + f64::from(t) - 1.0) / (self.alpha + self.beta + f64::from(t) - 1.0)
    }

    /// ln L of cohorts: `survivors[0]` customers at the start, `survivors[t]` still
    /// customers after t periods (a cohort observed for k periods has k + 1 counts).
    pub fn log_likelihood(&self, cohorts: &[Vec<f64>]) -> f64 {
        let mut ll = 0.0;
        for n in cohorts {
            for t in 1..n.len() {
                let lost = n[t - 1] - n[t];
                if lost > 0.0 {
                    ll += lost * self.ln_churn_in(t as u32);
                }
            }
            if let Some(&last) = n.last()
                && n.len() > 1
                && last > 0.0
            {
                ll += last * self.survival((n.len() - 1) as u32).ln();
            }
        }
        ll
    }

    /// DERL: discounted expected residual lifetime, in periods, of a customer who has
    /// made `renewals` renewals (is at the end of period renewals + 1), payments at
    /// the start of each period, discount rate `d` per period:
    /// (β+n-1)/(α+β+n-1) 2F1(1, β+n; α+β+n; 1/(1+d)) with n - 1 = renewals.
    pub fn derl(&self, d: f64, renewals: u32) -> f64 {
        let k = f64::from(renewals);
        let (a, b) = (self.alpha, self.beta);
        (b + k) / (a + b + k) * ln_hyp2f1(1.0, b + k + 1.0, a + b + k + 1.0, 1.0 / (1.0 + d)).exp()
    }
}

/// Check survivor counts: finite, non-negative, non-increasing, at least two.
pub fn check(cohorts: &[Vec<f64>]) -> Result<(), ModelError> {
    check_counts(cohorts).map_err(ModelError::BadInput)
}

fn check_counts(cohorts: &[Vec<f64>]) -> Result<(), String> {
    for (i, n) in cohorts.iter().enumerate() {
        if n.len() < 2 {
            return Err(format!("cohort {}: needs at least two counts (start and after one period)", i + 1));
        }
        if n.iter().any(|v| !v.is_finite() || *v < 0.0) {
            return Err(format!("cohort {}: counts must be finite and >= 0", i + 1));
        }
        if let Some(t) = (1..n.len()).find(|&t| n[t] > n[t - 1]) {
            return Err(format!("cohort {}: survivors rise from {} to {} at period {t}", i + 1, n[t - 1], n[t]));
        }
        if n[0] <= 0.0 {
            return Err(format!("cohort {}: no customers at the start", i + 1));
        }
    }
    Ok(())
}

pub fn fit(cohorts: &[Vec<f64>]) -> (Sbg, Optimum) {
    let ll = |p: &[f64]| Sbg { alpha: p[0], beta: p[1] }.log_likelihood(cohorts);
    let o = maximize(&ll, &[1.0, 1.0]);
    (Sbg { alpha: o.params[0], beta: o.params[1] }, o)
}

/// One period of [`curve`]: pooled observed survival (None past the longest cohort)
/// and the model's.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct CurvePoint {
    pub period: u32,
    pub observed: Option<f64>,
    pub model: f64,
}

/// Pooled observed survival (the product of pooled period retention) against the
/// model's, for periods 0..=horizon.
pub fn curve(m: &Sbg, cohorts: &[Vec<f64>], horizon: u32) -> Vec<CurvePoint> {
    let longest = longest_cohort(cohorts);
    let mut observed = 1.0;
    let mut out = Vec::new();
    for t in 0..=horizon {
        if t > 0 && t <= longest {
            let at = |k: u32| cohorts.iter().filter(|n| n.len() > t as usize).map(|n| n[k as usize]).sum::<f64>();
            observed *= at(t) / at(t - 1);
        }
        out.push(CurvePoint { period: t, observed: (t <= longest).then_some(observed), model: m.survival(t) });
    }
    out
}

/// The periods the longest cohort was observed for.
pub fn longest_cohort(cohorts: &[Vec<f64>]) -> u32 {
    cohorts.iter().map(Vec::len).max().unwrap_or(1) as u32 - 1
}
