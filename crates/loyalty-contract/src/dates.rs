//! Date arithmetic every crate shares: Polars' day numbers, month ends, and the rule
//! of who is a customer at T.

use chrono::{Datelike, Days, Months, NaiveDate};
use polars::prelude::{Expr, col, lit};

use crate::col as c;

/// 1970-01-01, day 0 of a Polars `Date`.
pub const EPOCH: NaiveDate = NaiveDate::from_ymd_opt(1970, 1, 1).expect("1970-01-01 is a date");

/// Days since 1970-01-01, as Polars stores a Date.
pub fn epoch_days(d: NaiveDate) -> i32 {
    (d - EPOCH).num_days() as i32
}

/// The date of a Polars day number (None outside chrono's range).
pub fn from_epoch_days(days: i32) -> Option<NaiveDate> {
    if days >= 0 {
        EPOCH.checked_add_days(Days::new(days as u64))
    } else {
        EPOCH.checked_sub_days(Days::new(days.unsigned_abs() as u64))
    }
}

/// The last day of the month of `d`.
pub fn end_of_month(d: NaiveDate) -> Option<NaiveDate> {
    let first = d.with_day0(0)?;
    first.checked_add_months(Months::new(1))?.pred_opt()
}

/// The month end `months` months before the month end `t` (the day before the same
/// day number of the following month, so 31 May minus 3 months is 28/29 February).
pub fn month_end_minus(t: NaiveDate, months: u32) -> Option<NaiveDate> {
    t.succ_opt()?.checked_sub_months(Months::new(months))?.pred_opt()
}

/// Customers at the end of day `t`: signed up by then and not churned by then (a
/// churn_date after T is not known at T). A filter on the customers table.
pub fn active_at(t: NaiveDate) -> Expr {
    col(c::SIGNUP_DATE).lt_eq(lit(t)).and(col(c::CHURN_DATE).is_null().or(col(c::CHURN_DATE).gt(lit(t))))
}

/// Services held at the end of day `t`: started by then and not ended by then. A
/// filter on the services table.
pub fn held_at(t: NaiveDate) -> Expr {
    col(c::START_DATE).lt_eq(lit(t)).and(col(c::END_DATE).is_null().or(col(c::END_DATE).gt(lit(t))))
}

/// Customers whose churn_date falls in (from, to].
pub fn churned_between(from: NaiveDate, to: NaiveDate) -> Expr {
    col(c::CHURN_DATE).gt(lit(from)).and(col(c::CHURN_DATE).lt_eq(lit(to)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(y: i32, m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, day).unwrap()
    }

    #[test]
    fn day_numbers_round_trip() {
        for date in [d(1970, 1, 1), d(1969, 12, 31), d(2024, 2, 29), d(1677, 9, 22), d(2262, 4, 11)] {
            assert_eq!(from_epoch_days(epoch_days(date)), Some(date));
        }
        assert_eq!(epoch_days(d(1970, 1, 2)), 1);
        assert_eq!(epoch_days(d(1969, 12, 31)), -1);
    }

    #[test]
    fn month_ends() {
        assert_eq!(end_of_month(d(2024, 2, 1)), Some(d(2024, 2, 29)));
        assert_eq!(end_of_month(d(2023, 12, 15)), Some(d(2023, 12, 31)));
        assert_eq!(month_end_minus(d(2024, 5, 31), 3), Some(d(2024, 2, 29)));
        assert_eq!(month_end_minus(d(2024, 12, 31), 6), Some(d(2024, 6, 30)));
    }
}
