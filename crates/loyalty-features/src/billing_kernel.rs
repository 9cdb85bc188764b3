//! The billing aggregation as a columnar kernel fed by the streaming engine.
//!
//! Billing is the one table with many rows per customer (one per month), and its
//! features need about thirty sums per customer. As a Polars group-by that is thirty
//! accumulator arrays, each updated at a random place for every row: with millions of
//! customers every row costs dozens of cache misses (the stage takes 31 s with it at
//! 5M customers and 85M bills, 19 s with this kernel, and half the memory). Here the
//! streaming engine still scans, filters and decodes the files (in parallel, with
//! predicate and projection pushdown) and hands batches to
//! `sink_batches`; this kernel folds each batch into one compact record per customer,
//! so a row touches one or two cache lines. Counts and the x-sums of the slopes are
//! not accumulated at all: they follow from bit masks of the months present.
//!
//! Its sums are those of the reference group-by plan (`BillingEngine::Polars` in
//! `per_customer`), and it turns them into features with that plan's final
//! expressions, written out here; a test checks that the two engines agree.

use std::sync::Arc;

use chrono::NaiveDate;
use loyalty_contract::col as c;
pub(crate) use loyalty_contract::slots::Slots;
use polars::prelude::*;
use rayon::prelude::*;

use crate::names as n;
use crate::{FeatureParams, MarginBasis, epoch_days};

/// Months in the window (k = 0 is the last known month).
const WINDOW: usize = 12;
const LAST_3: u16 = 0b111;
const LAST_6: u16 = 0b11_1111;

/// What every bill of a customer updates, kept apart from the window's sums ([`Acc`],
/// about 300 bytes): two bills in three are before the window and touch only this. Read
/// from the sums, each of those bills waited on memory (perf, 3M customers).
#[derive(Clone, Copy)]
struct History {
    last_bill: i32,
    /// The last bill month with usage before the window (for the silent prepaid
    /// customers the leavers need the last activity of).
    last_active_before: i32,
    months_billed: u32,
}

impl Default for History {
    fn default() -> Self {
        History { last_bill: i32::MIN, last_active_before: i32::MIN, months_billed: 0 }
    }
}

/// One customer's running sums over the window. Bit k of a mask is set when the bill
/// of month k of the window is present (`months`) and carries the named measurement.
#[derive(Clone)]
struct Acc {
    last_active: i32,
    months: u16,
    voice_known: u16,
    data_known: u16,
    late_known: u16,
    charge3: Exact,
    margin3: Exact,
    data3: Exact,
    charge12: Exact,
    charge_sq12: Exact,
    discount12: Exact,
    late12: Exact,
    unpaid12: Exact,
    unpaid3: Exact,
    max_late: f64,
    // sum y and sum x*y over the last 6 months, x = -k
    charge_sy: Exact,
    charge_sxy: Exact,
    voice_sy: Exact,
    voice_sxy: Exact,
    data_sy: Exact,
    data_sxy: Exact,
    late_sy: Exact,
    late_sxy: Exact,
}

impl Default for Acc {
    fn default() -> Self {
        Acc {
            last_active: i32::MIN,
            months: 0,
            voice_known: 0,
            data_known: 0,
            late_known: 0,
            charge3: Exact::default(),
            margin3: Exact::default(),
            data3: Exact::default(),
            charge12: Exact::default(),
            charge_sq12: Exact::default(),
            discount12: Exact::default(),
            late12: Exact::default(),
            unpaid12: Exact::default(),
            unpaid3: Exact::default(),
            max_late: f64::NEG_INFINITY,
            charge_sy: Exact::default(),
            charge_sxy: Exact::default(),
            voice_sy: Exact::default(),
            voice_sxy: Exact::default(),
            data_sy: Exact::default(),
            data_sxy: Exact::default(),
            late_sy: Exact::default(),
            late_sxy: Exact::default(),
        }
    }
}

/// A sum kept in fixed point (units of 2^-64, in an i128: exact, and no overflow at
/// any magnitude a bill can have), so it does not depend on the order the bills
/// arrive in: the streaming engine feeds the kernel in an order that varies from run
/// to run, and float addition is not associative (a trend moved in its last bit).
#[derive(Debug, Clone, Copy, Default)]
struct Exact(i128);

impl Exact {
    const UNIT: f64 = 18_446_744_073_709_551_616.0;

    fn get(self) -> f64 {
        self.0 as f64 / Self::UNIT
    }
}

impl std::ops::AddAssign<f64> for Exact {
    #[inline]
    fn add_assign(&mut self, v: f64) {
        self.0 += fixed_64(v);
    }
}

/// `(v * 2^64).round_ties_even() as i128`, without its two library calls (the rounding
/// and the float-to-i128 conversion were a quarter of the kernel's samples, perf at 1M
/// customers). A normal float is a 53-bit integer times a power of two; when that power
/// times 2^64 is at least 1 (every magnitude above 2^-12), the scaled value is that
/// integer shifted left: exact, so nothing to round. Smaller magnitudes, zeros, NaN
/// and magnitudes that would not fit take the general path.
#[inline]
fn fixed_64(v: f64) -> i128 {
    let bits = v.to_bits();
    let exponent = ((bits >> 52) & 0x7ff) as i32;
    // v = mantissa * 2^(exponent - 1075), so v * 2^64 = mantissa << (exponent - 1011).
    let shift = exponent - 1011;
    if exponent != 0x7ff && (0..=74).contains(&shift) {
        let mantissa = ((bits & ((1 << 52) - 1)) | (1 << 52)) as i128;
        let scaled = mantissa << shift;
        return if bits >> 63 == 1 { -scaled } else { scaled };
    }
    (v * Exact::UNIT).round_ties_even() as i128
}

/// Whole months in `days` (at least 0) between two firsts of months: days / 30.4375
/// rounded, the ratio's nearest integer. 30.4375 = 487/16, and 16 * days / 487 is
/// never halfway between two integers (487 is odd), so integer division rounds it as
/// the float division and its rounding did, without the library call.
#[inline]
fn months_before(days: i32) -> usize {
    ((16 * i64::from(days) + 243) / 487) as usize
}

/// n, sum x and sum x^2 of the months in a mask, x = -k.
fn mask_sums(mask: u16) -> (f64, f64, f64) {
    let (mut nn, mut sx, mut sxx) = (0.0, 0.0, 0.0);
    for k in 0..WINDOW {
        if mask >> k & 1 == 1 {
            nn += 1.0;
            sx -= k as f64;
            sxx += (k * k) as f64;
        }
    }
    (nn, sx, sxx)
}

/// A numeric column of one batch: borrowed when it is one chunk without nulls, else a
/// copy with NaN for null (NaN is not a valid value: rule `finite`).
pub(crate) enum Nums<'a> {
    F64(&'a [f64]),
    I64(&'a [i64]),
    /// One chunk of integers with nulls (days_late: a null reads as NaN), read where it
    /// is: its copy as floats was two passes over the column in every batch.
    I64Nullable(&'a <Int64Type as PolarsDataType>::Array),
    Owned(Vec<f64>),
}

impl Nums<'_> {
    #[inline]
    pub(crate) fn get(&self, i: usize) -> f64 {
        match self {
            Nums::F64(v) => v[i],
            Nums::I64(v) => v[i] as f64,
            Nums::I64Nullable(a) => match a.validity() {
                Some(valid) if !valid.get_bit(i) => f64::NAN,
                _ => a.values()[i] as f64,
            },
            Nums::Owned(v) => v[i],
        }
    }
}

pub(crate) fn nums<'a>(df: &'a DataFrame, name: &str) -> PolarsResult<Nums<'a>> {
    let column = df.column(name)?;
    if let Ok(ints) = column.i64()
        && ints.chunks().len() == 1
        && column.null_count() > 0
        && let Some(chunk) = ints.downcast_iter().next()
    {
        return Ok(Nums::I64Nullable(chunk));
    }
    if column.null_count() == 0 {
        match column.dtype() {
            DataType::Float64 => {
                if let Ok(v) = column.f64()?.cont_slice() {
                    return Ok(Nums::F64(v));
                }
            }
            DataType::Int64 => {
                if let Ok(v) = column.i64()?.cont_slice() {
                    return Ok(Nums::I64(v));
                }
            }
            _ => {}
        }
    }
    let s = column.as_materialized_series().cast(&DataType::Float64)?;
    Ok(Nums::Owned(s.f64()?.iter().map(|v| v.unwrap_or(f64::NAN)).collect()))
}

/// The billing columns of one batch.
struct Batch<'a> {
    id: std::borrow::Cow<'a, [i64]>,
    month: std::borrow::Cow<'a, [i32]>,
    charge: Nums<'a>,
    cost: Nums<'a>,
    voice: Nums<'a>,
    data: Nums<'a>,
    sms: Nums<'a>,
    discount: Nums<'a>,
    paid: Nums<'a>,
    days_late: Nums<'a>,
}

impl<'a> Batch<'a> {
    fn read(df: &'a DataFrame) -> PolarsResult<Self> {
        let (ids, months) = (df.column(c::CUSTOMER_ID)?, df.column(c::BILL_MONTH)?);
        if ids.null_count() > 0 || months.null_count() > 0 {
            polars_bail!(ComputeError: "billing: customer_id and bill_month may not be null (rule not_null)");
        }
        // The canonical types in one chunk (the batch is rechunked) are read where they
        // are; anything else is copied as the canonical type.
        let id = match ids.i64().ok().and_then(|ca| ca.cont_slice().ok()) {
            Some(ids) => std::borrow::Cow::Borrowed(ids),
            None => {
                let ids = ids.as_materialized_series().cast(&DataType::Int64)?;
                std::borrow::Cow::Owned(ids.i64()?.into_no_null_iter().collect())
            }
        };
        let month = match months.date().ok().and_then(|ca| ca.physical().cont_slice().ok()) {
            Some(months) => std::borrow::Cow::Borrowed(months),
            None => {
                let months = months.as_materialized_series().to_physical_repr().cast(&DataType::Int32)?;
                std::borrow::Cow::Owned(months.i32()?.into_no_null_iter().collect())
            }
        };
        Ok(Batch {
            id,
            month,
            charge: nums(df, c::TOTAL_CHARGE)?,
            cost: nums(df, c::COST)?,
            voice: nums(df, c::VOICE_MINUTES)?,
            data: nums(df, c::DATA_MB)?,
            sms: nums(df, c::SMS_COUNT)?,
            discount: nums(df, c::DISCOUNT)?,
            paid: nums(df, c::AMOUNT_PAID)?,
            days_late: nums(df, c::DAYS_LATE)?,
        })
    }
}

/// The accumulated state of one billing pass.
pub(crate) struct BillingKernel {
    slots: Arc<Slots>,
    history: Vec<History>,
    acc: Vec<Acc>,
    last_known: i32,
    window_start: i32,
    margin_rate: f64,
    /// The first contract violation met (the kernel relies on the contract: it runs
    /// after validation, or under --skip-validation on trust).
    violation: Option<String>,
    rows: u64,
    busy: std::time::Duration,
}

fn date_str(days: i32) -> String {
    loyalty_contract::dates::from_epoch_days(days).map_or_else(|| days.to_string(), |d| d.to_string())
}

impl BillingKernel {
    /// A kernel for `customers` customers (unique ids) at their `slots` (shared with the
    /// partition's other kernels and placements, built once), with the window ending
    /// at the last known bill month; rows of other customers are ignored (as the left
    /// join onto the customer base would).
    pub(crate) fn new(
        customers: usize,
        slots: Arc<Slots>,
        last_known: NaiveDate,
        window_start: NaiveDate,
        params: &FeatureParams,
    ) -> Self {
        BillingKernel {
            history: vec![History::default(); customers],
            acc: vec![Acc::default(); customers],
            slots,
            last_known: epoch_days(last_known),
            window_start: epoch_days(window_start),
            margin_rate: params.margin_rate,
            violation: None,
            rows: 0,
            busy: std::time::Duration::ZERO,
        }
    }

    fn violate(&mut self, message: String) {
        if self.violation.is_none() {
            self.violation = Some(message);
        }
    }

    /// Fold one batch of billing rows (canonical types) into the sums.
    pub(crate) fn update(&mut self, mut df: DataFrame) -> PolarsResult<()> {
        let started = std::time::Instant::now();
        df.rechunk_mut();
        self.fold(&Batch::read(&df)?);
        self.rows += df.height() as u64;
        self.busy += started.elapsed();
        Ok(())
    }

    fn fold(&mut self, b: &Batch) {
        for i in 0..b.id.len() {
            let Some(slot) = self.slots.get(b.id[i]) else { continue };
            let d = b.month[i];
            if d > self.last_known {
                continue;
            }
            let h = &mut self.history[slot];
            h.months_billed += 1;
            h.last_bill = h.last_bill.max(d);
            let z = |v: f64| if v.is_nan() { 0.0 } else { v };
            if d < self.window_start {
                if z(b.voice.get(i)) + z(b.data.get(i)) + z(b.sms.get(i)) + b.charge.get(i) > 0.0 {
                    h.last_active_before = h.last_active_before.max(d);
                }
                continue;
            }
            let a = &mut self.acc[slot];
            let k = months_before(self.last_known - d).min(WINDOW - 1);
            let bit = 1u16 << k;
            if a.months & bit != 0 {
                let (id, m) = (b.id[i], date_str(d));
                self.violate(format!(
                    "billing: two bills for customer_id {id} in month {m} (rule duplicate_key); validation was skipped"
                ));
                continue;
            }
            let y = b.charge.get(i);
            if y.is_nan() {
                let id = b.id[i];
                self.violate(format!(
                    "billing: total_charge is null for customer_id {id} (rule not_null); validation was skipped"
                ));
                continue;
            }
            a.months |= bit;
            let (voice, data, dl, paid) = (b.voice.get(i), b.data.get(i), b.days_late.get(i), b.paid.get(i));
            if z(voice) + z(data) + z(b.sms.get(i)) + y > 0.0 {
                a.last_active = a.last_active.max(d);
            }
            let margin = if b.cost.get(i).is_nan() { y * self.margin_rate } else { y - b.cost.get(i) };
            if k <= 2 {
                a.charge3 += y;
                a.margin3 += margin;
                a.data3 += z(data);
            }
            if !data.is_nan() {
                a.data_known |= bit;
            }
            a.charge12 += y;
            a.charge_sq12 += y * y;
            a.discount12 += z(b.discount.get(i));
            // Late: paid after the due date, or (days_late unknown) paid short.
            let unpaid_short = dl.is_nan() && !paid.is_nan() && paid < y;
            if (!dl.is_nan() && dl > 0.0) || unpaid_short {
                a.late12 += 1.0;
            }
            if !dl.is_nan() {
                a.late_known |= bit;
                a.max_late = a.max_late.max(dl);
            }
            if !paid.is_nan() {
                a.unpaid12 += (y - paid).max(0.0);
                if k <= 2 {
                    a.unpaid3 += (y - paid).max(0.0);
                }
            }
            if k <= 5 {
                let x = -(k as f64);
                a.charge_sy += y;
                a.charge_sxy += x * y;
                if !voice.is_nan() {
                    a.voice_known |= bit;
                    a.voice_sy += voice;
                    a.voice_sxy += x * voice;
                }
                if !data.is_nan() {
                    a.data_sy += data;
                    a.data_sxy += x * data;
                }
                if !dl.is_nan() {
                    a.late_sy += dl;
                    a.late_sxy += x * dl;
                }
            }
        }
    }

    /// The billing features of every customer of the kernel, in the order of its slots
    /// (the partition base's rows, so they go onto the base as they are), then the last
    /// bill month with usage before the window. The reference plan's final expressions
    /// (`billing_features` in `per_customer`) are computed here on the kernel's sums
    /// ([`features_of`]), not by Polars on thirty-four columns of sums: a customer's sums
    /// are read once, and no column of sums is made (at 1M customers the sums' columns
    /// and their expressions were 0.3-0.4 s of the partition's placing, on one core).
    pub(crate) fn features(self, basis: MarginBasis) -> PolarsResult<Vec<Column>> {
        if let Some(v) = self.violation {
            polars_bail!(ComputeError: "{v}");
        }
        tracing::debug!("billing kernel: {} rows folded in {:.2}s", self.rows, self.busy.as_secs_f64());
        let date = |name: &str, days: &mut dyn Iterator<Item = Option<i32>>| -> PolarsResult<Column> {
            Ok(Int32Chunked::from_iter_options(name.into(), days).into_series().cast(&DataType::Date)?.into())
        };
        let billed = |h: &History| h.months_billed > 0;
        let mut columns = vec![
            date(n::LAST_BILL_MONTH, &mut self.history.iter().map(|h| billed(h).then_some(h.last_bill)))?,
            Int64Chunked::from_iter_options(
                n::MONTHS_BILLED.into(),
                self.history.iter().map(|h| billed(h).then_some(i64::from(h.months_billed))),
            )
            .into_column(),
            date(
                "__last_active_bill",
                &mut self.acc.iter().map(|a| (a.last_active != i32::MIN).then_some(a.last_active)),
            )?,
        ];
        columns.extend(float_features(&self.acc, basis));
        let before = |h: &History| (h.last_active_before != i32::MIN).then_some(h.last_active_before);
        columns.push(date(crate::per_customer::BILL_BEFORE_WINDOW, &mut self.history.iter().map(before))?);
        Ok(columns)
    }
}

/// The [`FEATURES`] columns of the customers `acc`, in its order: blocks of customers
/// side by side, each writing its rows of every column.
fn float_features(acc: &[Acc], basis: MarginBasis) -> Vec<Column> {
    let len = acc.len();
    let mut values: Vec<Vec<f64>> = (0..FEATURES.len()).map(|_| vec![0.0; len]).collect();
    let mut set: Vec<Vec<bool>> = (0..FEATURES.len()).map(|_| vec![false; len]).collect();
    let block = 1 << 16;
    let mut blocks: Vec<Vec<(&mut [f64], &mut [bool])>> =
        (0..len.div_ceil(block)).map(|_| Vec::with_capacity(FEATURES.len())).collect();
    for (v, ok) in values.iter_mut().zip(set.iter_mut()) {
        for (k, rows) in v.chunks_mut(block).zip(ok.chunks_mut(block)).enumerate() {
            blocks[k].push(rows);
        }
    }
    let table: Vec<(f64, f64, f64)> = (0..64u16).map(mask_sums).collect();
    blocks.into_par_iter().zip(acc.par_chunks(block)).for_each(|(mut columns, accs)| {
        for (i, a) in accs.iter().enumerate() {
            for ((v, ok), f) in columns.iter_mut().zip(features_of(a, basis, &table)) {
                v[i] = f.unwrap_or(0.0);
                ok[i] = f.is_some();
            }
        }
    });
    FEATURES.iter().zip(values).zip(&set).map(|((name, v), ok)| nullable(name, v, ok)).collect()
}

/// The billing features [`features_of`] gives, in its order (the reference plan's).
const FEATURES: [&str; 16] = [
    n::ARPU_3M,
    n::ARPU_12M,
    n::MARGIN_MONTHLY,
    n::MARGIN_COLLECTED_MONTHLY,
    n::CHARGE_3M,
    n::UNPAID_AMOUNT_3M,
    n::DATA_MB_3M,
    n::CHARGE_TREND,
    n::CHARGE_VOLATILITY,
    n::DISCOUNT_SHARE_12M,
    n::VOICE_TREND,
    n::DATA_TREND,
    n::LATE_PAYMENT_RATE_12M,
    n::MAX_DAYS_LATE_12M,
    n::UNPAID_AMOUNT_12M,
    n::DAYS_LATE_TREND,
];

/// `num / den` where `den` is positive (a comparison false for NaN), else null.
fn ratio(num: f64, den: f64) -> Option<f64> {
    (den > 0.0).then(|| num / den)
}

/// The OLS slope (n Sxy - Sx Sy) / (n Sxx - Sx^2) of the months in `mask`, null with
/// fewer than two points or no spread in x.
fn slope(table: &[(f64, f64, f64)], mask: u16, sy: Exact, sxy: Exact) -> Option<f64> {
    let (nn, sx, sxx) = table[usize::from(mask & LAST_6)];
    let (sy, sxy) = (sy.get(), sxy.get());
    let den = nn * sxx - sx * sx;
    (nn >= 2.0 && den > 1e-12).then(|| (nn * sxy - sx * sy) / den)
}

/// One customer's billing features ([`FEATURES`]) from its sums: the reference plan's
/// final expressions, operation for operation, so the floats are the same to the bit
/// (each Polars expression is one IEEE operation per row; `clip_min` keeps NaN). A
/// customer without bills in the window has zero counts where the reference plan has
/// nulls: every feature divides by a count or is guarded by one, so both give null
/// (charge_3m and the unpaid amounts 0, the plan's zero fill).
fn features_of(a: &Acc, basis: MarginBasis, table: &[(f64, f64, f64)]) -> [Option<f64>; 16] {
    let pop = |m: u16| f64::from(m.count_ones());
    let (n3, n12) = (pop(a.months & LAST_3), pop(a.months));
    let (charge3, margin3, unpaid3) = (a.charge3.get(), a.margin3.get(), a.unpaid3.get());
    let (charge12, discount12) = (a.charge12.get(), a.discount12.get());
    let collected = ratio(margin3 - unpaid3, n3);
    let margin = match basis {
        MarginBasis::Billed => ratio(margin3, n3),
        MarginBasis::Collected => collected,
    };
    let volatility = ratio(charge12, n12).and_then(|mean| {
        let var = ratio(a.charge_sq12.get(), n12)? - mean * mean;
        let var = if var < 0.0 { 0.0 } else { var };
        ratio(var.sqrt(), mean)
    });
    let late_known = pop(a.late_known);
    [
        ratio(charge3, n3),
        ratio(charge12, n12),
        margin,
        collected,
        Some(charge3),
        Some(unpaid3),
        ratio(a.data3.get(), pop(a.data_known & LAST_3)),
        slope(table, a.months, a.charge_sy, a.charge_sxy),
        volatility,
        ratio(discount12, charge12 + discount12),
        slope(table, a.voice_known, a.voice_sy, a.voice_sxy),
        slope(table, a.data_known, a.data_sy, a.data_sxy),
        ratio(a.late12.get(), n12),
        (late_known > 0.0).then_some(a.max_late),
        Some(a.unpaid12.get()),
        slope(table, a.late_known, a.late_sy, a.late_sxy),
    ]
}

/// A float column with nulls where `set` is false.
fn nullable(name: &str, values: Vec<f64>, set: &[bool]) -> Column {
    // The packed bits of a boolean column are the validity bitmap polars takes.
    let validity = if set.iter().all(|&s| s) {
        None
    } else {
        BooleanChunked::from_slice(PlSmallStr::EMPTY, set).downcast_iter().next().map(|a| a.values().clone())
    };
    Float64Chunked::from_vec_validity(name.into(), values, validity).into_column()
}

/// The columns of the known bills (bill_month <= last known month) the kernel folds.
pub(crate) fn input(known: LazyFrame) -> LazyFrame {
    let columns = [
        c::CUSTOMER_ID,
        c::BILL_MONTH,
        c::TOTAL_CHARGE,
        c::COST,
        c::VOICE_MINUTES,
        c::DATA_MB,
        c::SMS_COUNT,
        c::DISCOUNT,
        c::AMOUNT_PAID,
        c::DAYS_LATE,
    ];
    known.select(columns.map(col))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reference(v: f64) -> i128 {
        (v * Exact::UNIT).round_ties_even() as i128
    }

    #[test]
    fn fixed_point_matches_the_rounded_product() {
        let mut values = vec![
            0.0,
            -0.0,
            f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::MIN_POSITIVE,
            5e-324,
            2f64.powi(-12),
            2f64.powi(-12) * 0.75,
            2f64.powi(-13) * 3.0,
            2f64.powi(62),
            2f64.powi(63) * 1.999,
            2f64.powi(64),
            1e300,
            -1e300,
            45.99,
            -0.01,
            1.0 / 3.0,
        ];
        // A spread of magnitudes from 2^-80 to 2^70, each sign, with full mantissas.
        let mut x = 0x2545_f491_4f6c_dd1d_u64;
        for _ in 0..200_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let exponent = (x % 150) as i32 - 80;
            let mantissa = 1.0 + (x >> 11) as f64 / (1u64 << 53) as f64;
            let v = mantissa * 2f64.powi(exponent);
            values.push(if x & 1 == 1 { -v } else { v });
        }
        for v in values {
            assert_eq!(fixed_64(v), reference(v), "{v:e}");
        }
    }

    #[test]
    fn a_null_reads_as_nan_whatever_the_column_type() {
        let df = df!(
            "ints" => [Some(3i64), None, Some(-7)],
            "whole_ints" => [1i64, 2, 3],
            "floats" => [Some(0.5f64), None, Some(2.25)],
            "whole_floats" => [0.5f64, 1.5, 2.5],
            "small" => [Some(1i32), None, Some(4)],
        )
        .unwrap();
        let read = |name: &str| {
            let v = nums(&df, name).unwrap();
            (0..3).map(|i| v.get(i)).collect::<Vec<f64>>()
        };
        let same = |a: Vec<f64>, b: [f64; 3]| a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits());
        assert!(matches!(nums(&df, "ints").unwrap(), Nums::I64Nullable(_)));
        assert!(same(read("ints"), [3.0, f64::NAN, -7.0]));
        assert!(same(read("whole_ints"), [1.0, 2.0, 3.0]));
        assert!(same(read("floats"), [0.5, f64::NAN, 2.25]));
        assert!(same(read("whole_floats"), [0.5, 1.5, 2.5]));
        assert!(same(read("small"), [1.0, f64::NAN, 4.0]));
    }

    #[test]
    fn months_before_counts_as_the_rounded_ratio() {
        for days in 0..40_000 {
            let float = (f64::from(days) / 30.4375).round_ties_even() as usize;
            assert_eq!(months_before(days), float, "{days}");
        }
    }
}
