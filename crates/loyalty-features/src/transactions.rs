//! Per-customer summaries of the transaction log (top-ups) for the BG/NBD,
//! Pareto/NBD and Gamma-Gamma models, as in the published analyses: purchases on the
//! same day merged into one transaction; the first transaction (or the signup, if
//! earlier) is the birth; x counts the later transaction days up to the end of the
//! calibration period, t_x is the time of the last one and T the time observed, both
//! from the birth, in periods of `unit_days`; mean_value is the mean value of the
//! repeat transactions (the first is left out, as the spend model requires).

use chrono::NaiveDate;
use loyalty_contract::col as c;
use polars::prelude::*;

use crate::epoch_days;
use crate::per_customer::day_num;

/// Column names of the summary.
pub mod cols {
    pub const X: &str = "x";
    pub const T_X: &str = "t_x";
    pub const T: &str = "T";
    pub const MEAN_VALUE: &str = "mean_value";
    pub const BIRTH: &str = "birth_date";
}

/// One row per customer of the log who is prepaid or has a transaction, born by the
/// end of the calibration period: customer_id, birth_date, x, t_x, T, mean_value
/// (null when x = 0). Sorted by customer_id.
///
/// The top-ups are read once (customer, day, amount) and summed by a sort and one
/// pass instead of a per-customer, per-day group-by and two joins: at 10M customers
/// the group-by's hashing was half of scoring the prepaid customers at T.
pub fn rfm_summary(
    customers: LazyFrame,
    topups: LazyFrame,
    calibration_end: NaiveDate,
    unit_days: f64,
) -> PolarsResult<DataFrame> {
    let end = epoch_days(calibration_end);
    let events = topups
        .select([col(c::CUSTOMER_ID), day_num(col(c::TS)).alias(DAY), col(c::AMOUNT).cast(DataType::Float64)])
        .filter(col(DAY).lt_eq(lit(end)).and(col(c::CUSTOMER_ID).is_not_null()));
    let people = customers
        .select(people_columns())
        .filter(col(c::CUSTOMER_ID).is_not_null())
        .sort([c::CUSTOMER_ID], SortMultipleOptions::default())
        .collect()?;
    let histories = histories(read_events(events)?);
    summary_frame(&people, &histories, end, unit_days)
}

/// What a summary reads of each customer: customer_id, the signup day and whether
/// they are prepaid (who gets a summary without a transaction).
fn people_columns() -> [Expr; 3] {
    [
        col(c::CUSTOMER_ID),
        day_num(col(c::SIGNUP_DATE)).alias(SIGNUP),
        col(c::PLAN_TYPE).eq(lit("prepaid")).fill_null(lit(false)).alias(PREPAID),
    ]
}

const DAY: &str = "__day";
const SIGNUP: &str = "__signup";
const PREPAID: &str = "__prepaid";

/// One customer's transaction days, same-day purchases merged.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct History {
    pub(crate) id: i64,
    pub(crate) first: i32,
    first_value: f64,
    /// Days after the first one: how many, the last, and their summed value.
    pub(crate) later: u32,
    pub(crate) last: i32,
    later_value: f64,
}

impl History {
    /// A customer's history from their transaction days (the first, how many distinct
    /// ones after it, the last), values unknown (zero).
    pub(crate) fn of_days(id: i64, first: i32, later: u32, last: i32) -> History {
        History { id, first, first_value: 0.0, later, last, later_value: 0.0 }
    }
}

/// (customer_id, day, amount) of every row of `events`, batch by batch as the
/// streaming engine reads them: 24 bytes a top-up, never a frame of them all.
fn read_events(events: LazyFrame) -> PolarsResult<Vec<(i64, i32, f64)>> {
    loyalty_contract::fold_batches(events, Vec::new(), |rows, df| {
        let ids = df.column(c::CUSTOMER_ID)?.i64()?;
        let days = df.column(DAY)?.i32()?;
        let amounts = df.column(c::AMOUNT)?.f64()?;
        let batch = ids.iter().zip(days.iter()).zip(amounts.iter());
        rows.extend(batch.filter_map(|((id, day), amount)| Some((id?, day?, amount.unwrap_or(0.0)))));
        Ok(())
    })
}

/// Every customer's history from (customer_id, day, amount) rows, sorted by customer_id.
fn histories(mut rows: Vec<(i64, i32, f64)>) -> Vec<History> {
    use rayon::prelude::*;
    // Batches arrive in any order: sorting by the amount too adds a day's purchases in
    // one order, so the sums are the same from run to run. By customer first, then each
    // customer's few rows: half the time of one sort by all three (16M top-ups: 0.30 s
    // against 0.58 s, 2 threads), to the same order.
    rows.par_sort_unstable_by_key(|r| r.0);
    rows.par_chunk_by_mut(|a, b| a.0 == b.0)
        .for_each(|one| one.sort_unstable_by(|a, b| a.1.cmp(&b.1).then(a.2.total_cmp(&b.2))));
    let mut out: Vec<History> = Vec::new();
    for (id, day, amount) in rows {
        match out.last_mut() {
            Some(h) if h.id == id && h.last == day && h.later == 0 => h.first_value += amount,
            Some(h) if h.id == id && h.last == day => h.later_value += amount,
            Some(h) if h.id == id => {
                h.later += 1;
                h.last = day;
                h.later_value += amount;
            }
            _ => out.push(History { id, first: day, first_value: amount, later: 0, last: day, later_value: 0.0 }),
        }
    }
    out
}

/// The summary of each customer of `people` (sorted by customer_id) who is prepaid or
/// has a history, born (first transaction or signup, whichever is earlier) by `end`.
fn summary_frame(people: &DataFrame, histories: &[History], end: i32, unit: f64) -> PolarsResult<DataFrame> {
    let ids = people.column(c::CUSTOMER_ID)?.i64()?;
    let signups = people.column(SIGNUP)?.i32()?;
    let prepaid = people.column(PREPAID)?.bool()?;
    let mut out = SummaryColumns::default();
    let mut next = histories.iter().peekable();
    for ((id, signup), prepaid) in ids.iter().zip(signups.iter()).zip(prepaid.iter()) {
        let Some(id) = id else { continue };
        while next.next_if(|h| h.id < id).is_some() {}
        let history = next.peek().filter(|h| h.id == id).map(|h| **h);
        if let Some(birth) = born(signup, prepaid == Some(true), history.as_ref(), end) {
            out.push(id, birth, repeats(history.as_ref(), birth), end, unit);
        }
    }
    out.frame()
}

/// When a customer's summary starts (the signup or the first transaction, whichever is
/// earlier), if they get one: a customer with a history or a prepaid one, born by `end`.
fn born(signup: Option<i32>, prepaid: bool, history: Option<&History>, end: i32) -> Option<i32> {
    if history.is_none() && !prepaid {
        return None;
    }
    let birth = match (signup, history) {
        (Some(s), Some(h)) => s.min(h.first),
        (Some(s), None) => s,
        (None, Some(h)) => h.first,
        (None, None) => return None,
    };
    (birth <= end).then_some(birth)
}

/// The BG/NBD periods (x, t_x, T) of customers whose transaction days up to `end`
/// were counted while their features were computed (the top-up kernel), without the
/// values: what [`rfm_summary`] gives for them, without a pass of its own.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DaySummaries {
    ids: Vec<i64>,
    births: Vec<i32>,
    x: Vec<u32>,
    last: Vec<Option<i32>>,
    end: i32,
}

impl DaySummaries {
    /// The summaries of `customers` (a frame of the customers table, sorted by
    /// customer_id) from their `histories` (sorted the same way; values unused), at
    /// `end`: who gets one, and their birth, read as [`rfm_summary`] reads them.
    pub(crate) fn of(customers: &DataFrame, histories: &[History], end: i32) -> PolarsResult<DaySummaries> {
        let people = customers.clone().lazy().select(people_columns()).collect()?;
        let ids = people.column(c::CUSTOMER_ID)?.i64()?;
        let signups = people.column(SIGNUP)?.i32()?;
        let prepaid = people.column(PREPAID)?.bool()?;
        let mut out = DaySummaries { end, ..DaySummaries::default() };
        let mut next = histories.iter().peekable();
        for ((id, signup), prepaid) in ids.iter().zip(signups.iter()).zip(prepaid.iter()) {
            let Some(id) = id else { continue };
            while next.next_if(|h| h.id < id).is_some() {}
            let history = next.peek().filter(|h| h.id == id).copied();
            let Some(birth) = born(signup, prepaid == Some(true), history, end) else { continue };
            let (x, last, _) = repeats(history, birth);
            out.ids.push(id);
            out.births.push(birth);
            out.x.push(x);
            out.last.push(last);
        }
        Ok(out)
    }

    /// `other`'s customers added (another customer partition, at the same end).
    pub fn append(&mut self, other: DaySummaries) {
        self.ids.extend(other.ids);
        self.births.extend(other.births);
        self.x.extend(other.x);
        self.last.extend(other.last);
        self.end = other.end;
    }

    /// Each customer's (customer_id, (x, t_x, T)) in periods of `unit_days`, to the
    /// last bit as [`rfm_summary`]'s columns.
    pub fn periods(&self, unit_days: f64) -> Vec<(i64, (f64, f64, f64))> {
        let mut columns = SummaryColumns::default();
        for k in 0..self.ids.len() {
            columns.push(self.ids[k], self.births[k], (self.x[k], self.last[k], 0.0), self.end, unit_days);
        }
        (0..columns.ids.len()).map(|k| (columns.ids[k], (columns.x[k], columns.t_x[k], columns.t[k]))).collect()
    }
}

/// (x, last repeat day, summed repeat value) of a history: the transaction days after
/// the birth.
fn repeats(history: Option<&History>, birth: i32) -> (u32, Option<i32>, f64) {
    match history {
        None => (0, None, 0.0),
        Some(h) if h.first > birth => (h.later + 1, Some(h.last), h.first_value + h.later_value),
        Some(h) if h.later > 0 => (h.later, Some(h.last), h.later_value),
        Some(_) => (0, None, 0.0),
    }
}

/// The summary's columns, built a customer at a time.
#[derive(Default)]
struct SummaryColumns {
    ids: Vec<i64>,
    births: Vec<i32>,
    x: Vec<f64>,
    t_x: Vec<f64>,
    t: Vec<f64>,
    mean_value: Vec<Option<f64>>,
}

impl SummaryColumns {
    fn push(&mut self, id: i64, birth: i32, (x, last, value): (u32, Option<i32>, f64), end: i32, unit: f64) {
        // Times by the reciprocal, as Polars divides a column by a number: the same
        // periods to the last bit as the summaries had when they were a Polars plan.
        let per_day = 1.0 / unit;
        self.ids.push(id);
        self.births.push(birth);
        self.x.push(f64::from(x));
        self.t_x.push(last.map_or(0.0, |l| f64::from(l - birth) * per_day));
        self.t.push(f64::from(end - birth) * per_day);
        self.mean_value.push((x > 0).then(|| value / f64::from(x)));
    }

    fn frame(self) -> PolarsResult<DataFrame> {
        let births = Int32Chunked::from_vec(cols::BIRTH.into(), self.births).into_date();
        DataFrame::new_infer_height(vec![
            Column::new(c::CUSTOMER_ID.into(), self.ids),
            births.into_series().into(),
            Column::new(cols::X.into(), self.x),
            Column::new(cols::T_X.into(), self.t_x),
            Column::new(cols::T.into(), self.t),
            Column::new(cols::MEAN_VALUE.into(), self.mean_value),
        ])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The per-customer, per-day group-by and joins the kernel replaced: the same
    /// summary, as a lazy plan.
    fn reference(
        customers: LazyFrame,
        topups: LazyFrame,
        calibration_end: NaiveDate,
        unit_days: f64,
    ) -> PolarsResult<DataFrame> {
        let end = epoch_days(calibration_end);
        let daily = topups
            .select([col(c::CUSTOMER_ID), day_num(col(c::TS)).alias("__day"), col(c::AMOUNT)])
            .filter(col("__day").lt_eq(lit(end)))
            .group_by([col(c::CUSTOMER_ID), col("__day")])
            .agg([col(c::AMOUNT).sum().alias("__value")]);
        let first = daily.clone().group_by([col(c::CUSTOMER_ID)]).agg([col("__day").min().alias("__first")]);
        let births = customers
            .select([col(c::CUSTOMER_ID), day_num(col(c::SIGNUP_DATE)).alias("__signup"), col(c::PLAN_TYPE)])
            .join(first, [col(c::CUSTOMER_ID)], [col(c::CUSTOMER_ID)], JoinArgs::new(JoinType::Left))
            .filter(col("__first").is_not_null().or(col(c::PLAN_TYPE).eq(lit("prepaid"))))
            .select([
                col(c::CUSTOMER_ID),
                polars::lazy::dsl::min_horizontal([col("__signup"), col("__first")])?.alias("__birth"),
            ])
            .filter(col("__birth").lt_eq(lit(end)));
        let repeat = daily
            .join(births.clone(), [col(c::CUSTOMER_ID)], [col(c::CUSTOMER_ID)], JoinArgs::new(JoinType::Inner))
            .filter(col("__day").gt(col("__birth")))
            .group_by([col(c::CUSTOMER_ID)])
            .agg([
                len().cast(DataType::Float64).alias(cols::X),
                col("__day").max().alias("__last"),
                col("__value").sum().alias("__sum"),
            ]);
        let unit = lit(unit_days);
        births
            .join(repeat, [col(c::CUSTOMER_ID)], [col(c::CUSTOMER_ID)], JoinArgs::new(JoinType::Left))
            .select([
                col(c::CUSTOMER_ID),
                col("__birth").cast(DataType::Date).alias(cols::BIRTH),
                col(cols::X).fill_null(lit(0.0)),
                ((col("__last") - col("__birth")).cast(DataType::Float64) / unit.clone())
                    .fill_null(lit(0.0))
                    .alias(cols::T_X),
                ((lit(end) - col("__birth")).cast(DataType::Float64) / unit).alias(cols::T),
                (col("__sum") / col(cols::X)).alias(cols::MEAN_VALUE),
            ])
            .sort([c::CUSTOMER_ID], SortMultipleOptions::default())
            .collect_with_engine(Engine::Streaming)
            .map(|r| r.unwrap_single())
    }

    fn day(n: i32) -> NaiveDate {
        loyalty_contract::dates::from_epoch_days(n).unwrap()
    }

    fn customers(rows: &[(i64, Option<i32>, &str)]) -> LazyFrame {
        let signups: Vec<Option<NaiveDate>> = rows.iter().map(|r| r.1.map(day)).collect();
        df![
            c::CUSTOMER_ID => rows.iter().map(|r| r.0).collect::<Vec<_>>(),
            c::SIGNUP_DATE => signups,
            c::PLAN_TYPE => rows.iter().map(|r| r.2).collect::<Vec<_>>(),
        ]
        .unwrap()
        .lazy()
    }

    /// Top-ups at noon of day `d` (microsecond timestamps, as the contract coerces them).
    fn topups(rows: &[(i64, i32, Option<f64>)]) -> LazyFrame {
        let ts: Vec<i64> = rows.iter().map(|r| (i64::from(r.1) * 86_400 + 43_200) * 1_000_000).collect();
        df![
            c::CUSTOMER_ID => rows.iter().map(|r| r.0).collect::<Vec<_>>(),
            c::TS => ts,
            c::AMOUNT => rows.iter().map(|r| r.2).collect::<Vec<_>>(),
        ]
        .unwrap()
        .lazy()
        .with_column(col(c::TS).cast(DataType::Datetime(TimeUnit::Microseconds, None)))
    }

    #[test]
    fn summaries_match_a_hand_count() {
        let end = 100;
        let people = customers(&[
            (1, Some(0), "prepaid"),   // no top-up: born at signup, x = 0
            (2, Some(7), "postpaid"),  // first top-up before signup: born then
            (3, Some(1), "prepaid"),   // signup before the first top-up: every top-up day repeats
            (4, Some(3), "postpaid"),  // no top-up and not prepaid: left out
            (5, Some(2), "postpaid"),  // top-ups only after the end: left out
            (6, Some(120), "prepaid"), // born after the end: left out
        ]);
        let log = topups(&[
            (2, 5, Some(10.0)),
            (2, 9, Some(4.0)),
            (2, 5, Some(2.5)), // same day as the first: merged into it
            (2, 20, Some(6.0)),
            (2, 20, None),
            (3, 3, Some(8.0)),
            (5, 101, Some(1.0)),
            (7, 4, Some(9.0)), // not a customer
        ]);
        let s = rfm_summary(people, log, day(end), 7.0).unwrap();
        let ids: Vec<i64> = s.column(c::CUSTOMER_ID).unwrap().i64().unwrap().into_no_null_iter().collect();
        assert_eq!(ids, [1, 2, 3]);
        let close = |name: &str, want: [Option<f64>; 3]| {
            let got = s.column(name).unwrap().f64().unwrap().iter().collect::<Vec<_>>();
            let same = got.iter().zip(&want).all(|(g, w)| match (g, w) {
                (Some(g), Some(w)) => (g - w).abs() < 1e-12,
                (g, w) => g == w,
            });
            assert!(same, "{name}: {got:?}, want {want:?}");
        };
        close(cols::X, [Some(0.0), Some(2.0), Some(1.0)]);
        close(cols::T_X, [Some(0.0), Some(15.0 / 7.0), Some(2.0 / 7.0)]);
        close(cols::T, [Some(100.0 / 7.0), Some(95.0 / 7.0), Some(99.0 / 7.0)]);
        close(cols::MEAN_VALUE, [None, Some(5.0), Some(8.0)]);
        let births = s.column(cols::BIRTH).unwrap().cast(&DataType::Int32).unwrap();
        assert_eq!(births.i32().unwrap().into_no_null_iter().collect::<Vec<_>>(), [0, 5, 1]);
    }

    #[test]
    fn summaries_match_the_group_by_plan_on_random_logs() {
        let mut next = crate::test_rng::below(0x2545_f491_4f6c_dd1d);
        let plans = ["prepaid", "postpaid"];
        let people: Vec<(i64, Option<i32>, &str)> =
            (0..400).map(|i| (i * 3, (next(10) > 0).then(|| next(400) as i32), plans[next(2) as usize])).collect();
        let log: Vec<(i64, i32, Option<f64>)> = (0..6_000)
            .map(|_| (next(1_300) as i64, next(420) as i32, (next(20) > 0).then(|| next(10_000) as f64 / 100.0)))
            .collect();
        let end = day(365);
        let fast = rfm_summary(customers(&people), topups(&log), end, 7.0).unwrap();
        let slow = reference(customers(&people), topups(&log), end, 7.0).unwrap();
        assert!(fast.height() > 300, "{}", fast.height());
        assert_eq!(fast.height(), slow.height());
        for name in [c::CUSTOMER_ID, cols::BIRTH] {
            assert!(fast.column(name).unwrap().equals_missing(slow.column(name).unwrap()), "{name}");
        }
        for name in [cols::X, cols::T_X, cols::T, cols::MEAN_VALUE] {
            let (a, b) = (fast.column(name).unwrap().f64().unwrap(), slow.column(name).unwrap().f64().unwrap());
            for (i, (a, b)) in a.iter().zip(b.iter()).enumerate() {
                match (a, b) {
                    (Some(a), Some(b)) => {
                        assert!((a - b).abs() <= 1e-9 * b.abs().max(1.0), "{name} row {i}: {a} vs {b}")
                    }
                    (a, b) => assert_eq!(a, b, "{name} row {i}"),
                }
            }
        }
    }
}
