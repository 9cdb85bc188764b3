//! The leavers' and joiners' bill values ([`crate::leavers::bill_values`]) as one
//! kernel fed by the billing scan: a few sums per person at a dense index.
//!
//! A group-by over the joined window rows held every leaver's and joiner's bills at
//! once: at 10M customers x 36 months that was about 4.8 GB on top of the run. The
//! kernel keeps 13 numbers per person. Sums are fixed point, as the group-by's were
//! ([`crate::per_customer::exact_sum`]), so they do not depend on the order the scan
//! delivers the bills in.

use loyalty_contract::col as c;
use loyalty_contract::dates::month_number;
use loyalty_contract::slots::Slots;
use polars::prelude::*;

use crate::billing_kernel::{Nums, nums};
use crate::names as n;

use crate::per_customer::{FIXED_POINT, fixed};

/// Which of one person's bills count: kept apart from the sums (12 bytes against 72),
/// because every bill of the scan reads it and few go on to the sums. Reading the sums
/// for every bill stalled on memory in two thirds of the fold's samples (perf, 3M
/// customers). Months are `year * 12 + month`.
#[derive(Clone, Copy)]
struct Windows {
    /// First month of the 3 months up to the month of active_until; [`NO_WINDOW`] for
    /// joiners who stay.
    leave: i32,
    /// First month of the signup month and the 2 after.
    join: i32,
    whole: bool,
}

/// A window that no month is in.
const NO_WINDOW: i32 = i32::MIN;

/// Whether `month` is in the 3-month window starting at `from`.
fn within(from: i32, month: i32) -> bool {
    from != NO_WINDOW && (from..=from.saturating_add(2)).contains(&month)
}

/// One person's sums (72 bytes: at 10M customers there are millions of them).
#[derive(Clone, Copy, Default)]
struct Person {
    /// Bills counted at all (in a window, or any bill when `whole`).
    rows: u32,
    leave_n: u32,
    join_n: u32,
    /// charge, margin, collected over the leave window.
    leave_sum: [i64; 3],
    /// charge, margin over the join window.
    join_sum: [i64; 2],
    /// margin, collected over every bill.
    whole_sum: [i64; 2],
}

/// The state of one pass: who is counted, and their sums so far.
pub(crate) struct LeaverKernel {
    ids: Vec<i64>,
    slots: Slots,
    windows: Vec<Windows>,
    people: Vec<Person>,
    margin_rate: f64,
    /// The counted bills of the batch being folded (kept for the next batch).
    counted: Vec<Counted>,
}

/// A bill of the batch that counts: its person, the windows it counts in and its
/// values in fixed point (0 for a value that is not a number, which adds nothing).
struct Counted {
    slot: u32,
    leave: bool,
    join: bool,
    whole: bool,
    charge: i64,
    margin: i64,
    /// The margin less what is unpaid.
    collected: i64,
}

/// The month number of a day (days since the epoch): every i32 day's fits in an i32.
fn month_of(days: i32) -> i32 {
    month_number(days) as i32
}

/// The month number of an optional date column's value at `i` (days since the epoch).
fn month_at(days: &Int32Chunked, i: usize) -> Option<i32> {
    days.get(i).map(month_of)
}

impl LeaverKernel {
    /// `people`: customer_id, signup_date, active_until (null for joiners who stay) and
    /// whole_history, one row per person.
    pub(crate) fn new(people: &DataFrame, margin_rate: f64) -> PolarsResult<Self> {
        let ids: Vec<i64> = people.column(c::CUSTOMER_ID)?.i64()?.iter().map(|v| v.unwrap_or(i64::MIN)).collect();
        let days = |name: &str| -> PolarsResult<Int32Chunked> {
            let s = people.column(name)?.as_materialized_series().cast(&DataType::Date)?;
            Ok(s.to_physical_repr().i32()?.clone())
        };
        let (signup, until) = (days(c::SIGNUP_DATE)?, days(crate::leavers::ACTIVE_UNTIL)?);
        let whole = people.column(crate::leavers::WHOLE_HISTORY)?.bool()?;
        let windows = (0..ids.len())
            .map(|i| Windows {
                leave: month_at(&until, i).map_or(NO_WINDOW, |m| m - 2),
                join: month_at(&signup, i).unwrap_or(NO_WINDOW),
                whole: whole.get(i).unwrap_or(false),
            })
            .collect();
        let people = vec![Person::default(); ids.len()];
        Ok(LeaverKernel { slots: Slots::new(&ids), ids, windows, people, margin_rate, counted: Vec::new() })
    }

    fn update(&mut self, df: &DataFrame) -> PolarsResult<()> {
        let ids = df.column(c::CUSTOMER_ID)?.as_materialized_series().cast(&DataType::Int64)?;
        let months = df.column(c::BILL_MONTH)?.as_materialized_series().to_physical_repr().cast(&DataType::Int32)?;
        let (ids, months) = (ids.i64()?, months.i32()?);
        let values = [nums(df, c::TOTAL_CHARGE)?, nums(df, c::COST)?, nums(df, c::AMOUNT_PAID)?];
        // Bills come in runs of one month (a file per month, or a month's bills
        // together): the last day's month number is reused (5% of the stage's time).
        let mut last: Option<(i32, i32)> = None;
        self.counted.clear();
        for (i, (id, day)) in ids.iter().zip(months.iter()).enumerate() {
            let (Some(id), Some(day)) = (id, day) else { continue };
            let Some(slot) = self.slots.get(id) else { continue };
            let month = match last {
                Some((d, m)) if d == day => m,
                _ => month_of(day),
            };
            last = Some((day, month));
            let w = self.windows[slot];
            let (leave, join) = (within(w.leave, month), within(w.join, month));
            if leave || join || w.whole {
                let [charge, margin, collected] = self.bill_values(&values, i);
                self.counted.push(Counted {
                    slot: slot as u32,
                    leave,
                    join,
                    whole: w.whole,
                    charge,
                    margin,
                    collected,
                });
            }
        }
        // The sums after the window checks, for the counted bills only, their values
        // worked out beside the checks: the loop that reads the persons' records does
        // nothing else, and more of their reads overlap (the first read of a record
        // was 41% of the fold's samples at 3M customers, perf).
        for bill in &self.counted {
            fold(&mut self.people[bill.slot as usize], bill);
        }
        Ok(())
    }

    /// Bill `i`'s charge, margin and collected margin in fixed point.
    fn bill_values(&self, [charge, cost, paid]: &[Nums; 3], i: usize) -> [i64; 3] {
        let charge = charge.get(i);
        let margin = match charge - cost.get(i) {
            m if m.is_nan() => charge * self.margin_rate,
            m => m,
        };
        let unpaid = match (charge - paid.get(i)).max(0.0) {
            u if u.is_nan() => 0.0,
            u => u,
        };
        [charge, margin, margin - unpaid].map(|v| fixed(v).unwrap_or(0))
    }

    /// One row per person with a counted bill, in the order of `people`.
    fn finish(self) -> PolarsResult<DataFrame> {
        let counted: Vec<usize> = (0..self.people.len()).filter(|&i| self.people[i].rows > 0).collect();
        let (people, windows) = (&self.people, &self.windows);
        let mean = |n: fn(&Person) -> u32, sum: fn(&Person) -> i64| -> Float64Chunked {
            counted
                .iter()
                .map(|&i| {
                    let p = &people[i];
                    (n(p) > 0).then(|| sum(p) as f64 / FIXED_POINT / f64::from(n(p)))
                })
                .collect()
        };
        let whole = |sum: fn(&Person) -> i64| -> Float64Chunked {
            counted.iter().map(|&i| windows[i].whole.then(|| sum(&people[i]) as f64 / FIXED_POINT)).collect()
        };
        let months: Int64Chunked =
            counted.iter().map(|&i| windows[i].whole.then_some(i64::from(people[i].rows))).collect();
        let id: Int64Chunked = counted.iter().map(|&i| Some(self.ids[i])).collect();
        let columns = vec![
            id.into_series().with_name(c::CUSTOMER_ID.into()).into(),
            mean(|p| p.leave_n, |p| p.leave_sum[0]).with_name("charge_before_leaving".into()).into_column(),
            mean(|p| p.leave_n, |p| p.leave_sum[1]).with_name("margin_before_leaving".into()).into_column(),
            mean(|p| p.leave_n, |p| p.leave_sum[2]).with_name("collected_margin_before_leaving".into()).into_column(),
            whole(|p| p.whole_sum[1]).with_name("lifetime_collected_margin".into()).into_column(),
            whole(|p| p.whole_sum[0]).with_name("lifetime_margin".into()).into_column(),
            months.with_name(n::MONTHS_BILLED.into()).into_column(),
            mean(|p| p.join_n, |p| p.join_sum[0]).with_name("charge_after_joining".into()).into_column(),
            mean(|p| p.join_n, |p| p.join_sum[1]).with_name("margin_after_joining".into()).into_column(),
        ];
        DataFrame::new(counted.len(), columns)
    }
}

/// A counted bill into its person's sums.
fn fold(p: &mut Person, bill: &Counted) {
    p.rows += 1;
    if bill.leave {
        p.leave_n += 1;
        p.leave_sum[0] = p.leave_sum[0].wrapping_add(bill.charge);
        p.leave_sum[1] = p.leave_sum[1].wrapping_add(bill.margin);
        p.leave_sum[2] = p.leave_sum[2].wrapping_add(bill.collected);
    }
    if bill.join {
        p.join_n += 1;
        p.join_sum[0] = p.join_sum[0].wrapping_add(bill.charge);
        p.join_sum[1] = p.join_sum[1].wrapping_add(bill.margin);
    }
    if bill.whole {
        p.whole_sum[0] = p.whole_sum[0].wrapping_add(bill.margin);
        p.whole_sum[1] = p.whole_sum[1].wrapping_add(bill.collected);
    }
}

/// [`crate::leavers::bill_values`]: `known` is the billing plan of the bills known at
/// T; one streaming pass feeds the kernel.
pub(crate) fn bill_values(known: LazyFrame, people: &DataFrame, margin_rate: f64) -> PolarsResult<DataFrame> {
    let columns = [c::CUSTOMER_ID, c::BILL_MONTH, c::TOTAL_CHARGE, c::COST, c::AMOUNT_PAID];
    let kernel = LeaverKernel::new(people, margin_rate)?;
    loyalty_contract::fold_batches(known.select(columns.map(col)), kernel, |k, df| k.update(&df))?.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::NaiveDate;

    fn d(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    #[test]
    fn windows_and_whole_history_by_hand() {
        // Person 1 left on 2024-05-20 (window Mar..May 2024), joined 2023-01-15 (window
        // Jan..Mar 2023), whole history. Person 2 joined 2024-04-02 and stays.
        let people = df!(
            c::CUSTOMER_ID => [1i64, 2],
            c::SIGNUP_DATE => [d("2023-01-15"), d("2024-04-02")],
            crate::leavers::ACTIVE_UNTIL => [Some(d("2024-05-20")), None],
            crate::leavers::WHOLE_HISTORY => [true, false],
        )
        .unwrap();
        let months = ["2023-01-01", "2023-02-01", "2023-06-01", "2024-03-01", "2024-05-01", "2024-04-01", "2024-07-01"];
        let bills = df!(
            c::CUSTOMER_ID => [1i64, 1, 1, 1, 1, 2, 2],
            c::BILL_MONTH => months.map(d),
            c::TOTAL_CHARGE => [10.0, 20.0, 30.0, 40.0, 50.0, 7.0, 9.0],
            c::COST => [Some(4.0), Some(5.0), None, Some(10.0), Some(20.0), Some(1.0), Some(1.0)],
            c::AMOUNT_PAID => [10.0, 20.0, 30.0, 30.0, 50.0, 7.0, 9.0],
        )
        .unwrap();
        let got = bill_values(bills.lazy(), &people, 0.5).unwrap();
        let f = |name: &str, row: usize| got.column(name).unwrap().f64().unwrap().get(row);
        assert_eq!(got.column(c::CUSTOMER_ID).unwrap().i64().unwrap().to_vec(), [Some(1), Some(2)]);
        // Leave window: bills of 2024-03 (charge 40, margin 30, unpaid 10) and 2024-05 (50, 30, 0).
        assert_eq!(f("charge_before_leaving", 0), Some(45.0));
        assert_eq!(f("margin_before_leaving", 0), Some(30.0));
        assert_eq!(f("collected_margin_before_leaving", 0), Some(25.0));
        // Join window: 2023-01 (10, 6) and 2023-02 (20, 15).
        assert_eq!(f("charge_after_joining", 0), Some(15.0));
        assert_eq!(f("margin_after_joining", 0), Some(10.5));
        // Whole history: margins 6 + 15 + 15 (no cost: 30 x 0.5) + 30 + 30; 10 unpaid.
        assert_eq!(f("lifetime_margin", 0), Some(96.0));
        assert_eq!(f("lifetime_collected_margin", 0), Some(86.0));
        assert_eq!(got.column(n::MONTHS_BILLED).unwrap().i64().unwrap().get(0), Some(5));
        // Person 2: only the 2024-04 bill is in a window; no leave window, no history.
        assert_eq!(f("charge_after_joining", 1), Some(7.0));
        assert_eq!(f("charge_before_leaving", 1), None);
        assert_eq!(f("lifetime_margin", 1), None);
        assert_eq!(got.column(n::MONTHS_BILLED).unwrap().i64().unwrap().get(1), None);
    }
}
