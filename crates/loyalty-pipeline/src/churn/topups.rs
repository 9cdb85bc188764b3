//! The prepaid classifier's inputs from the top-up log: BG/NBD fitted at the
//! snapshot's date to the top-up days of its customers, and per customer the repeat
//! top-up days, the weeks since the last one, P(alive) and the expected top-up days
//! in the next h months.
//!
//! A prepaid customer's only contract is the next top-up, so when they top up and
//! whether the pattern has stopped is the signal; BG/NBD turns the history into the
//! probability that it has stopped, which a tree would have to learn from raw recency
//! and frequency per tenure.

use chrono::NaiveDate;
use loyalty_features::{FeatureParams, Tables};
use loyalty_models::{BgNbd, bgnbd, rfm};

use loyalty_features::transactions::DaySummaries;

use super::prepaid::{History, WEEK_DAYS, summaries};
use crate::error::Result;

pub(crate) const REPEAT_DAYS: &str = "topup_repeat_days";
pub(crate) const WEEKS_SINCE: &str = "weeks_since_topup";
pub(crate) const P_ALIVE: &str = "bgnbd_p_alive";
pub(crate) const EXPECTED: &str = "bgnbd_expected_topups";
/// The inputs' names, in the order of [`TopupInputs::columns`].
pub(crate) const NAMES: [&str; 4] = [REPEAT_DAYS, WEEKS_SINCE, P_ALIVE, EXPECTED];

/// BG/NBD fitted to the top-up days of the customers of `tables` up to `as_of`, and
/// the inputs at `as_of` under it, from one pass over the top-ups (None: no top-ups). One fit serves every date: the training snapshots, the test
/// snapshot and T read the same model, so an input means the same at every date
/// (the parameters describe the population, not a customer; fitted at the test
/// snapshot, nothing after it reaches the out-of-time test). A fit at an early date
/// with next to no dropouts yet is degenerate (dropout -> 0) and takes tens of
/// thousands of evaluations; one fit avoids both.
pub(crate) fn fit_model(
    tables: &Tables,
    as_of: NaiveDate,
    base: &FeatureParams,
) -> Result<Option<(BgNbd, TopupInputs)>> {
    if !tables.contains_key(&loyalty_contract::Table::Topups) {
        return Ok(None);
    }
    let started = std::time::Instant::now();
    let (fit_rows, histories) = summaries(tables, as_of, base, |_| true)?;
    if fit_rows.is_empty() {
        return Ok(None);
    }
    let rows = rfm::compress(&fit_rows);
    let (model, o) = bgnbd::fit(&rows);
    tracing::debug!(
        "BG/NBD for the prepaid inputs at {as_of}: {} rows, {} evaluations, {model:?} in {:.2}s",
        rows.len(),
        o.evaluations,
        started.elapsed().as_secs_f64()
    );
    let inputs = TopupInputs::from_histories(&model, histories, horizon_weeks(base));
    Ok(Some((model, inputs)))
}

/// The churn horizon in weeks, the time unit of the top-up summaries.
fn horizon_weeks(base: &FeatureParams) -> f64 {
    f64::from(base.churn_horizon_months) * 365.25 / 12.0 / WEEK_DAYS
}

/// The top-up inputs of every customer with a top-up history at one date, sorted
/// by customer id.
#[derive(Default)]
pub(crate) struct TopupInputs {
    ids: Vec<i64>,
    columns: [Vec<f64>; 4],
}

impl TopupInputs {
    /// The top-up inputs at `as_of` of the customers of `tables` under `model`.
    pub(crate) fn at(tables: &Tables, as_of: NaiveDate, model: &BgNbd, base: &FeatureParams) -> Result<Self> {
        if !tables.contains_key(&loyalty_contract::Table::Topups) {
            return Ok(Self::default());
        }
        let (_, histories) = summaries(tables, as_of, base, |_| true)?;
        Ok(Self::from_histories(model, histories, horizon_weeks(base)))
    }

    /// The inputs at T under `model` of the customers whose periods the features'
    /// pass counted: the same numbers as [`TopupInputs::at`] gives them.
    pub(crate) fn of_days(model: &BgNbd, days: &DaySummaries, base: &FeatureParams) -> Self {
        Self::from_histories(model, days.periods(WEEK_DAYS), horizon_weeks(base))
    }

    /// Per customer: x, weeks since the last top-up, P(alive) and the expected top-up
    /// days in the next `weeks` while alive, P(alive) x E[rate | history] x weeks (the
    /// posterior mean rate is (r + x) / (alpha + T); FHL's full expectation, through
    /// 2F1, costs milliseconds a customer at degenerate parameters).
    fn from_histories(model: &BgNbd, mut histories: Vec<(i64, History)>, weeks: f64) -> Self {
        histories.sort_unstable_by_key(|(id, _)| *id);
        let mut out = Self { ids: Vec::with_capacity(histories.len()), ..Self::default() };
        for (id, (x, t_x, t)) in histories {
            out.ids.push(id);
            let alive = model.p_alive(x, t_x, t);
            let expected = alive * (model.r + x) / (model.alpha + t) * weeks;
            for (column, value) in out.columns.iter_mut().zip([x, t - t_x, alive, expected]) {
                column.push(value);
            }
        }
        out
    }

    /// Whether any customer has a top-up history (the inputs are model features).
    pub(crate) fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// The input `name` for each of `ids` (NaN: no history); None when `name` is not
    /// a top-up input.
    pub(crate) fn column(&self, name: &str, ids: &[i64]) -> Option<Vec<f64>> {
        let k = NAMES.iter().position(|n| *n == name)?;
        let values = &self.columns[k];
        Some(ids.iter().map(|id| self.ids.binary_search(id).map_or(f64::NAN, |i| values[i])).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inputs_follow_the_model_and_missing_customers_are_nan() {
        let model = BgNbd { r: 0.5, alpha: 4.0, a: 0.8, b: 2.5 };
        // customer 9: 6 repeat days, the last at week 20 of 30; customer 3: none in 10
        let inputs = TopupInputs::from_histories(&model, vec![(9, (6.0, 20.0, 30.0)), (3, (0.0, 0.0, 10.0))], 26.0);
        assert_eq!(inputs.ids, vec![3, 9]);
        assert_eq!(inputs.column(REPEAT_DAYS, &[9, 3, 5]).unwrap()[..2], [6.0, 0.0]);
        assert_eq!(inputs.column(WEEKS_SINCE, &[9, 3]).unwrap(), vec![10.0, 10.0]);
        let p = inputs.column(P_ALIVE, &[9, 3, 5]).unwrap();
        assert_eq!(p[0], model.p_alive(6.0, 20.0, 30.0));
        assert_eq!(p[1], 1.0, "no repeat top-up: alive by the model's definition");
        assert!(p[2].is_nan());
        // P(alive) x (r + x) / (alpha + T) x weeks
        let e = inputs.column(EXPECTED, &[9]).unwrap()[0];
        assert!((e - p[0] * 6.5 / 34.0 * 26.0).abs() < 1e-12, "{e}");
        assert!(inputs.column("tenure_months", &[9]).is_none());
    }
}
