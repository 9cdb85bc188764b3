//! The knobs of the feature stage and the arithmetic of discounting.

use chrono::{Datelike, Months, NaiveDate};
use serde::{Deserialize, Serialize};

use crate::FeatureError;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FeatureParams {
    /// T: features use only what is known at the end of this day.
    pub as_of: NaiveDate,
    /// Margin as a share of total_charge when a bill has no cost.
    pub margin_rate: f64,
    /// What `margin_monthly` (and so CCV, CLV and the pyramid) counts: the margin
    /// billed, or the margin collected (amount_paid minus cost).
    pub margin_basis: MarginBasis,
    /// Yearly discount rate; monthly d = (1 + rate)^(1/12) - 1.
    pub annual_discount_rate: f64,
    /// n: valuation horizon in months for CCV, CPV and CLV.
    pub valuation_months: u32,
    /// h: churn horizon in months.
    pub churn_horizon_months: u32,
    /// competition_index cut points: low below the first, high from the second.
    pub competition_index_cuts: [f64; 2],
    /// When a market has no competition_index: competitors at or below the first cut
    /// are low, above the second high.
    pub competitors_cuts: [i64; 2],
    /// A prepaid customer without a churn_date counts as churned this many days after
    /// their last activity (top-up or bill with usage).
    pub prepaid_inactivity_days: i64,
    /// Pseudo-count pulling a cell's adoption rate toward the base rate (CPV).
    pub adoption_prior_weight: f64,
    /// How the bill and top-up sums are computed (the same numbers either way).
    pub billing_engine: BillingEngine,
    /// The per-customer aggregates run in customer hash partitions of about this many
    /// active customers (bounded memory; the same numbers); 0: all at once.
    pub customers_per_partition: u64,
    /// Where the per-customer aggregates of the event tables run (chosen on the
    /// command line, not in the file).
    #[serde(skip)]
    pub engine: crate::remote::Engine,
    /// Keep each top-up's day while the features at T are computed, for the BG/NBD
    /// periods of the prepaid classifier's inputs (`FeaturesAtT::topup_days`): set by
    /// `loyalty run`, not in the file.
    #[serde(skip)]
    pub topup_days: bool,
}

/// Billed margin is total_charge minus cost; collected margin counts only what was
/// paid: amount_paid minus cost (a bill without amount_paid counts as paid in full).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MarginBasis {
    #[default]
    Billed,
    Collected,
}

/// The bill and top-up aggregations: columnar kernels fed by the streaming engine
/// (fast, one record per customer), or the reference Polars group-by plans.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BillingEngine {
    #[default]
    Kernel,
    Polars,
}

impl Default for FeatureParams {
    fn default() -> Self {
        Self {
            as_of: NaiveDate::from_ymd_opt(2024, 12, 31).expect("valid date"),
            margin_rate: 0.35,
            margin_basis: MarginBasis::Billed,
            annual_discount_rate: 0.10,
            valuation_months: 24,
            churn_horizon_months: 6,
            competition_index_cuts: [1.0 / 3.0, 2.0 / 3.0],
            competitors_cuts: [1, 3],
            prepaid_inactivity_days: 90,
            adoption_prior_weight: 10.0,
            billing_engine: BillingEngine::Kernel,
            customers_per_partition: 500_000,
            engine: crate::remote::Engine::default(),
            topup_days: false,
        }
    }
}

impl FeatureParams {
    pub fn check(&self) -> Result<(), FeatureError> {
        let bad = |m: &str| Err(FeatureError::Config(m.to_string()));
        if !(0.0..=1.0).contains(&self.margin_rate) {
            return bad("margin_rate must be between 0 and 1");
        }
        if !(0.0..1.0).contains(&self.annual_discount_rate) {
            return bad("annual_discount_rate must be in [0, 1)");
        }
        if self.valuation_months == 0 || self.churn_horizon_months == 0 {
            return bad("valuation_months and churn_horizon_months must be at least 1");
        }
        if self.competition_index_cuts[0] > self.competition_index_cuts[1] {
            return bad("competition_index_cuts must be increasing");
        }
        Ok(())
    }

    /// The first day of the last month whose bill is known at T.
    pub fn last_known_bill_month(&self) -> NaiveDate {
        last_known_bill_month(self.as_of)
    }
}

/// The first day of the last month that has ended by the end of day `t`.
pub fn last_known_bill_month(t: NaiveDate) -> NaiveDate {
    let next = t.succ_opt().unwrap_or(t);
    let first = next.with_day(1).expect("day 1 exists");
    first.checked_sub_months(Months::new(1)).unwrap_or(first)
}

pub fn monthly_discount_rate(annual: f64) -> f64 {
    (1.0 + annual).powf(1.0 / 12.0) - 1.0
}

/// sum_{t=1..n} 1/(1+d)^t.
pub fn annuity_factor(d: f64, n: u32) -> f64 {
    (1..=n).map(|t| (1.0 + d).powi(-(t as i32))).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_bill_month_is_the_last_ended_month() {
        let d = |y, m, d| NaiveDate::from_ymd_opt(y, m, d).unwrap();
        assert_eq!(last_known_bill_month(d(2024, 12, 31)), d(2024, 12, 1));
        assert_eq!(last_known_bill_month(d(2024, 3, 15)), d(2024, 2, 1));
        assert_eq!(last_known_bill_month(d(2024, 3, 1)), d(2024, 2, 1));
        assert_eq!(last_known_bill_month(d(2024, 2, 29)), d(2024, 2, 1));
    }

    #[test]
    fn discounting() {
        // 10% a year is 0.797% a month: 1.1^(1/12) = 1.0079741.
        let d = monthly_discount_rate(0.10);
        assert!((d - 0.007_974_1).abs() < 1e-7);
        // Two months at d = 10%: 1/1.1 + 1/1.21 = 0.909091 + 0.826446 = 1.735537.
        assert!((annuity_factor(0.10, 2) - 1.735_537).abs() < 1e-6);
        assert_eq!(annuity_factor(0.0, 24), 24.0);
    }
}
