//! Date arithmetic every crate shares: Polars' day numbers, month ends, and the rule
//! of who is a customer at T.

use chrono::{Datelike, Days, Months, NaiveDate};
use polars::prelude::*;

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

/// (year, month 1-12, day 1-31) of a Polars day number, by Howard Hinnant's
/// `civil_from_days`: integer arithmetic only, exact for every i32. Polars' own
/// `dt().year()` and friends go through chrono per value, which costs more than
/// reading the column.
pub fn civil_from_days(days: i32) -> (i64, u32, u32) {
    let z = i64::from(days) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// `year * 12 + month` of a day number: consecutive months are consecutive numbers.
pub fn month_number(days: i32) -> i64 {
    let (year, month, _) = civil_from_days(days);
    year * 12 + i64::from(month)
}

/// A Date (or Datetime) column mapped value by value through `f` of its day numbers
/// (nulls stay null).
/// Dates come in runs of one day (a month's bills, a file per month): `f` runs once per
/// run (the calendar arithmetic of every bill's month was 5% of validating the bills).
fn map_days<T, F>(e: Expr, name: &'static str, f: F) -> Expr
where
    F: Fn(i32) -> T::Native + Copy + Send + Sync + 'static,
    T: PolarsNumericType,
    T::Array: polars::prelude::ArrayFromIterDtype<T::Native> + polars::prelude::ArrayFromIterDtype<Option<T::Native>>,
{
    e.map_with_fmt_str(
        move |c| {
            // A Datetime (a `lit` of a NaiveDate is one) becomes its day first.
            let days = c.as_materialized_series().cast(&DataType::Date)?.to_physical_repr().cast(&DataType::Int32)?;
            let mut last: Option<(i32, T::Native)> = None;
            let once_per_run = |day: i32| match last {
                Some((d, value)) if d == day => value,
                _ => {
                    let value = f(day);
                    last = Some((day, value));
                    value
                }
            };
            let out: ChunkedArray<T> = days.i32()?.apply_nonnull_values_generic(T::get_static_dtype(), once_per_run);
            Ok(out.with_name(c.name().clone()).into_series().into_column())
        },
        |_, field| Ok(Field::new(field.name().clone(), T::get_static_dtype())),
        name,
    )
}

/// [`month_number`] of a Date expression, as Int64.
pub fn month_number_expr(e: Expr) -> Expr {
    map_days::<Int64Type, _>(e, "month_number", month_number)
}

/// [`month_number`] of a Date expression, as Int32: every i32 day's fits, in half
/// the memory of [`month_number_expr`]'s column.
pub fn month_number_i32_expr(e: Expr) -> Expr {
    map_days::<Int32Type, _>(e, "month_number_i32", |days| month_number(days) as i32)
}

/// The day of the month (1-31) of a Date expression, as Int32.
pub fn day_of_month_expr(e: Expr) -> Expr {
    map_days::<Int32Type, _>(e, "day_of_month", |days| civil_from_days(days).2 as i32)
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
    fn civil_dates_agree_with_chrono() {
        // Every day from 1600 to 2400, and the ends of the i32 range chrono can hold.
        for days in (epoch_days(d(1600, 1, 1))..=epoch_days(d(2400, 12, 31))).chain([-719_468, -719_469]) {
            let date = from_epoch_days(days).unwrap();
            let (y, m, day) = civil_from_days(days);
            assert_eq!((y, m, day), (i64::from(date.year()), date.month(), date.day()), "{date}");
            assert_eq!(month_number(days), i64::from(date.year()) * 12 + i64::from(date.month()));
        }
        let df = polars::df!("d" => [Some(d(2024, 2, 29)), None, Some(d(1969, 12, 31))]).unwrap();
        let out = df
            .lazy()
            .select([
                month_number_expr(col("d")).alias("m"),
                month_number_i32_expr(col("d")).alias("m32"),
                day_of_month_expr(col("d")).alias("day"),
            ])
            .collect()
            .unwrap();
        let m: Vec<Option<i64>> = out.column("m").unwrap().i64().unwrap().iter().collect();
        let m32: Vec<Option<i64>> =
            out.column("m32").unwrap().i32().unwrap().iter().map(|v| v.map(i64::from)).collect();
        assert_eq!(m32, m);
        let day: Vec<Option<i32>> = out.column("day").unwrap().i32().unwrap().iter().collect();
        assert_eq!(m, [Some(2024 * 12 + 2), None, Some(1969 * 12 + 12)]);
        assert_eq!(day, [Some(29), None, Some(31)]);
        // A Datetime (a date's `lit` is one, at midnight), and a time after midnight:
        // its day, where its physical nanoseconds do not fit a day number.
        let at = |date: NaiveDate, h: u32| date.and_hms_opt(h, 0, 0).unwrap();
        let df = polars::df!("t" => [at(d(2024, 2, 29), 23), at(d(1969, 12, 31), 0)]).unwrap();
        let out = df
            .lazy()
            .select([
                month_number_expr(col("t")).alias("m"),
                day_of_month_expr(col("t")).alias("day"),
                day_of_month_expr(lit(d(2024, 3, 17))).alias("lit_day"),
            ])
            .collect()
            .unwrap();
        assert_eq!(out.column("m").unwrap().i64().unwrap().to_vec(), [Some(2024 * 12 + 2), Some(1969 * 12 + 12)]);
        assert_eq!(out.column("day").unwrap().i32().unwrap().to_vec(), [Some(29), Some(31)]);
        assert_eq!(out.column("lit_day").unwrap().i32().unwrap().get(0), Some(17));
    }

    #[test]
    fn month_ends() {
        assert_eq!(end_of_month(d(2024, 2, 1)), Some(d(2024, 2, 29)));
        assert_eq!(end_of_month(d(2023, 12, 15)), Some(d(2023, 12, 31)));
        assert_eq!(month_end_minus(d(2024, 5, 31), 3), Some(d(2024, 2, 29)));
        assert_eq!(month_end_minus(d(2024, 12, 31), 6), Some(d(2024, 6, 30)));
    }

    #[test]
    fn month_and_day_expressions_agree_with_each_value_in_runs_and_changes() {
        // Runs of one day, single days, nulls inside and between runs, two chunks.
        let days = [19_723, 19_723, 19_723, 19_754, 19_723, 19_754, 19_737, 19_737, -1, 0];
        let values: Vec<Option<i32>> = days.iter().enumerate().map(|(i, &v)| (i % 4 != 1).then_some(v)).collect();
        let mut s = Series::new("d".into(), &values[..5]).cast(&DataType::Date).unwrap();
        s.append(&Series::new("d".into(), &values[5..]).cast(&DataType::Date).unwrap()).unwrap();
        let df = DataFrame::new(values.len(), vec![s.into_column()]).unwrap();
        let got = df
            .lazy()
            .select([month_number_expr(col("d")).alias("m"), day_of_month_expr(col("d")).alias("day")])
            .collect()
            .unwrap();
        let months: Vec<Option<i64>> = values.iter().map(|v| v.map(month_number)).collect();
        let day_of: Vec<Option<i32>> = values.iter().map(|v| v.map(|v| civil_from_days(v).2 as i32)).collect();
        assert_eq!(got.column("m").unwrap().i64().unwrap().to_vec(), months);
        assert_eq!(got.column("day").unwrap().i32().unwrap().to_vec(), day_of);
    }
}
