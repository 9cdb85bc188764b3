//! The future the dataset does not show: the churn the operator would record in the
//! months after the data ends, and each customer's true probability of it. A churn
//! model scored at the end of the data is tested against these (its ceiling is the
//! ranking by the true probabilities).
//!
//! The draws come from a stream of their own per customer, so adding them leaves
//! every table of the dataset unchanged.

use chrono::{Datelike, NaiveDate};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::world::{add_months, days_in_month};

/// The horizons (months after the data ends) of the true churn probabilities.
pub const HORIZONS: [i32; 3] = [3, 6, 12];

/// Separates the future's streams from the dataset's.
const FUTURE_SEED: u64 = 0x5EED_F07E;

/// One customer active at the end of the data.
pub(crate) struct Future {
    /// The churn date the operator would record within 12 months of the end.
    pub churn_date: Option<NaiveDate>,
    /// P(a churn date in (T, T + h months]) for each of [`HORIZONS`].
    pub p_churn: [f64; 3],
}

/// What the future depends on besides the hazard.
pub(crate) struct Now {
    pub seed: u64,
    pub id: i64,
    /// Index of the first month after the data, and the month 0 it counts from.
    pub months: i32,
    pub start: NaiveDate,
    /// The first day after the data.
    pub end: NaiveDate,
    /// Days from departure to the recorded churn (prepaid: the inactivity rule).
    pub delay_days: u64,
}

/// A prepaid customer who has already gone quiet: the churn date is known.
pub(crate) fn pending(declared: NaiveDate, end: NaiveDate) -> Future {
    Future {
        churn_date: (declared < add_months(end, 12)).then_some(declared),
        p_churn: HORIZONS.map(|h| f64::from(u8::from(declared < add_months(end, h)))),
    }
}

/// A customer still active at the end: departures month by month from the monthly
/// hazard (day uniform in the month), recorded `delay_days` later.
pub(crate) fn draw(now: &Now, hazard: impl Fn(i32) -> f64) -> Future {
    let mut rng = ChaCha8Rng::seed_from_u64(now.seed ^ FUTURE_SEED);
    rng.set_stream(now.id as u64);
    let limits = HORIZONS.map(|h| add_months(now.end, h));
    let mut survive = 1.0;
    let mut p_churn = [0.0; 3];
    let mut churn_date = None;
    for k in 0..12 {
        let month_start = add_months(now.start, now.months + k);
        let dim = days_in_month(month_start.year(), month_start.month());
        let h = hazard(now.months + k);
        let recorded = |day: u32| month_start + chrono::Days::new(u64::from(day - 1) + now.delay_days);
        for (p, limit) in p_churn.iter_mut().zip(&limits) {
            let in_time = (1..=dim).filter(|d| recorded(*d) < *limit).count();
            *p += survive * h * in_time as f64 / f64::from(dim);
        }
        survive *= 1.0 - h;
        if churn_date.is_none() && rng.random_bool(h) {
            churn_date = Some(recorded(rng.random_range(1..=dim))).filter(|d| *d < limits[2]);
            if churn_date.is_none() {
                break;
            }
        }
    }
    Future { churn_date, p_churn }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now(delay_days: u64) -> Now {
        let start = NaiveDate::from_ymd_opt(2023, 1, 1).unwrap();
        Now { seed: 1, id: 7, months: 24, start, end: NaiveDate::from_ymd_opt(2025, 1, 1).unwrap(), delay_days }
    }

    #[test]
    fn a_constant_hazard_gives_the_geometric_probabilities() {
        let f = draw(&now(0), |_| 0.1);
        for (p, h) in f.p_churn.iter().zip(HORIZONS) {
            assert!((p - (1.0 - 0.9f64.powi(h))).abs() < 1e-12, "{p} at {h}");
        }
    }

    #[test]
    fn a_recording_delay_pushes_churn_past_the_short_horizon() {
        // 90 days: a departure in the first month is recorded in the fourth at the earliest.
        let f = draw(&now(90), |_| 0.1);
        assert_eq!(f.p_churn[0], 0.0);
        assert!(f.p_churn[1] > 0.0 && f.p_churn[1] < 1.0 - 0.9f64.powi(6));
    }

    #[test]
    fn draws_follow_the_hazard() {
        let hits = (0..20_000)
            .filter(|id| {
                draw(&Now { id: *id, ..now(0) }, |_| 0.05).churn_date.is_some_and(|d| d < add_months(now(0).end, 6))
            })
            .count();
        let expected = 20_000.0 * (1.0 - 0.95f64.powi(6));
        assert!((hits as f64 - expected).abs() < 4.0 * expected.sqrt(), "{hits} vs {expected}");
    }

    #[test]
    fn a_pending_churn_is_certain_by_its_date() {
        let end = NaiveDate::from_ymd_opt(2025, 1, 1).unwrap();
        let f = pending(NaiveDate::from_ymd_opt(2025, 2, 10).unwrap(), end);
        assert_eq!(f.p_churn, [1.0, 1.0, 1.0]);
        let later = pending(NaiveDate::from_ymd_opt(2025, 5, 10).unwrap(), end);
        assert_eq!(later.p_churn, [0.0, 1.0, 1.0]);
    }
}
