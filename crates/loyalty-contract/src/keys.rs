//! The key checks of a table whose rows belong to customers, as one kernel fed by a
//! streaming scan: references to unknown customers and, for a (customer, month) key,
//! a month on more than one row.
//!
//! As a Polars group-by per customer, each row is a probe into a hash table of
//! millions of entries (a quarter of validation's time at 1M customers). Here the
//! customers' ids index a dense array when they lie in a compact range (the usual
//! case), and a row costs one lookup and one bit: the months a customer was seen in
//! are a bit set of `words` 64-bit words per customer.

use std::collections::HashMap;
use std::sync::Arc;

use polars::prelude::*;
use rayon::prelude::*;

use crate::slots::Slots;

/// Month words per customer above which the bit sets are not kept (over 21 years of
/// months, or a stray date far from the rest): the caller checks months another way.
const MAX_WORDS: usize = 4;

/// The known customers: their ids and the index of each.
pub(crate) struct Customers {
    ids: Vec<i64>,
    slots: Slots,
}

impl Customers {
    pub(crate) fn new(ids: Vec<i64>) -> Self {
        let slots = Slots::new(&ids);
        Self { ids, slots }
    }
}

/// What the kernel found in one table.
pub(crate) struct Found {
    /// The customers (known or not) with a month on more than one row, one column.
    pub repeated: DataFrame,
    /// Whether `repeated` is the whole answer: false when the months spread too wide
    /// for the bit sets, and the caller checks them another way.
    pub months_checked: bool,
    /// The unknown customers with their rows (`customer`, `__rows`), sorted.
    pub unknown: DataFrame,
    /// With months: the known customers with a row, and the months with a row of a
    /// known customer.
    pub seen: Option<(u64, u64)>,
}

/// The key checks of one table, fed batch by batch ([`Kernel::fold`]): by
/// validation's first pass over the table, so the table is read once for its row
/// rules, its copy and its keys.
///
/// The months each known customer was seen in are a bit set of `words` words from
/// month number `lo`. The window is not known before the rows are read: it starts at
/// the first month seen, one word wide, and widens when a month falls outside it
/// (rows usually come a month at a time, so that happens a few times at most).
pub(crate) struct Kernel {
    customers: Arc<Customers>,
    /// The customer column, and the month column when months are checked.
    customer: &'static str,
    month: Option<&'static str>,
    /// Months are checked, and their window has not outgrown [`MAX_WORDS`].
    months: bool,
    words: usize,
    lo: i64,
    seen: Vec<u64>,
    repeated: Vec<bool>,
    unknown: HashMap<i64, u64>,
    /// The unknown customers' (id, month number) rows.
    unknown_months: HashMap<(i64, i64), u32>,
}

impl Kernel {
    /// A kernel that looks the rows' `customer` up in `customers` and, with `month`,
    /// finds a month on more than one row of a customer.
    pub(crate) fn new(customers: Arc<Customers>, customer: &'static str, month: Option<&'static str>) -> Kernel {
        let n = if month.is_some() { customers.ids.len() } else { 0 };
        Kernel {
            customers,
            customer,
            month,
            months: month.is_some(),
            words: 0,
            lo: 0,
            seen: Vec::new(),
            repeated: vec![false; n],
            unknown: HashMap::new(),
            unknown_months: HashMap::new(),
        }
    }

    /// Fold the rows of `df`.
    pub(crate) fn fold(&mut self, df: &DataFrame) -> PolarsResult<()> {
        let ids = df.column(self.customer)?.as_materialized_series().cast(&DataType::Int64)?;
        let days = match self.month {
            Some(m) => Some(
                df.column(m)?
                    .as_materialized_series()
                    .cast(&DataType::Date)?
                    .to_physical_repr()
                    .cast(&DataType::Int32)?,
            ),
            None => None,
        };
        self.update(ids.i64()?, days.as_ref().map(|d| d.i32()).transpose()?);
        Ok(())
    }

    /// Fold rows: their customer `ids`, and each row's month as epoch `days`.
    fn update(&mut self, ids: &Int64Chunked, days: Option<&Int32Chunked>) {
        // A chunked array's `get(row)` walks its chunks: the days are read in step.
        let mut days = days.filter(|_| self.months).map(|d| d.iter());
        // Rows come in runs of one month (a file per month, or a month's bills
        // together): the last day's month number is reused.
        let mut last: Option<(i32, i64)> = None;
        for id in ids.iter() {
            let day = days.as_mut().and_then(|d| d.next()).flatten();
            let Some(id) = id else { continue };
            let month = day.map(|day| match last {
                Some((d, m)) if d == day => m,
                _ => {
                    let m = crate::dates::month_number(day);
                    last = Some((day, m));
                    m
                }
            });
            match self.customers.slots.get(id) {
                Some(slot) => {
                    if let Some(m) = month {
                        self.see(slot, m);
                    }
                }
                None => {
                    *self.unknown.entry(id).or_default() += 1;
                    if let Some(m) = month.filter(|_| self.months) {
                        *self.unknown_months.entry((id, m)).or_default() += 1;
                    }
                }
            }
        }
    }

    /// Mark month `m` seen for the customer at `slot`.
    fn see(&mut self, slot: usize, m: i64) {
        let inside = |k: &Kernel| m >= k.lo && m < k.lo + 64 * k.words as i64;
        if !inside(self) && !self.widen(m) {
            return;
        }
        let k = m - self.lo;
        let (word, bit) = (slot * self.words + (k / 64) as usize, 1u64 << (k % 64));
        if self.seen[word] & bit != 0 {
            self.repeated[slot] = true;
        }
        self.seen[word] |= bit;
    }

    /// Widen the window to take month `m`, with its spare months on the side it grew
    /// toward; false (and months no longer checked here) when that takes more than
    /// [`MAX_WORDS`] words.
    fn widen(&mut self, m: i64) -> bool {
        if !self.months {
            return false;
        }
        let union = self.seen.chunks_exact(self.words.max(1)).fold(vec![0u64; self.words], |mut u, bits| {
            u.iter_mut().zip(bits).for_each(|(u, b)| *u |= b);
            u
        });
        let first = union
            .iter()
            .enumerate()
            .find(|(_, w)| **w != 0)
            .map(|(i, w)| i as i64 * 64 + i64::from(w.trailing_zeros()));
        let last = union
            .iter()
            .enumerate()
            .rev()
            .find(|(_, w)| **w != 0)
            .map(|(i, w)| i as i64 * 64 + 63 - i64::from(w.leading_zeros()));
        let (lo, hi) = match (first, last) {
            (Some(f), Some(l)) => ((self.lo + f).min(m), (self.lo + l).max(m)),
            _ => (m, m),
        };
        let words = ((hi - lo) / 64 + 1) as usize;
        if words > MAX_WORDS {
            self.months = false;
            (self.words, self.seen) = (0, Vec::new());
            self.repeated = Vec::new();
            self.unknown_months = HashMap::new();
            return false;
        }
        let new_lo = if m < self.lo { hi - 64 * words as i64 + 1 } else { lo };
        let mut seen = vec![0u64; self.customers.ids.len() * words];
        if self.words > 0 {
            for (slot, bits) in self.seen.chunks_exact(self.words).enumerate() {
                for (w, &word) in bits.iter().enumerate() {
                    let mut rest = word;
                    while rest != 0 {
                        let k = self.lo + w as i64 * 64 + i64::from(rest.trailing_zeros()) - new_lo;
                        seen[slot * words + (k / 64) as usize] |= 1u64 << (k % 64);
                        rest &= rest - 1;
                    }
                }
            }
        }
        (self.seen, self.words, self.lo) = (seen, words, new_lo);
        true
    }

    pub(crate) fn finish(self) -> PolarsResult<Found> {
        let customer = self.customer;
        let mut repeated: Vec<i64> =
            self.repeated.iter().zip(&self.customers.ids).filter(|(r, _)| **r).map(|(_, id)| *id).collect();
        repeated.extend(self.unknown_months.iter().filter(|(_, n)| **n > 1).map(|((id, _), _)| *id));
        repeated.sort_unstable();
        repeated.dedup();
        let mut unknown: Vec<(i64, u64)> = self.unknown.into_iter().collect();
        unknown.sort_unstable();
        let seen = self.months.then(|| {
            let mut months = vec![0u64; self.words];
            let mut customers = 0;
            for bits in self.seen.chunks_exact(self.words.max(1)) {
                customers += u64::from(bits.iter().any(|w| *w != 0));
                months.iter_mut().zip(bits).for_each(|(m, w)| *m |= w);
            }
            (customers, months.iter().map(|w| u64::from(w.count_ones())).sum())
        });
        Ok(Found {
            seen,
            months_checked: self.months,
            repeated: DataFrame::new(repeated.len(), vec![Column::new(customer.into(), repeated)])?,
            unknown: DataFrame::new(
                unknown.len(),
                vec![
                    Column::new(customer.into(), unknown.iter().map(|u| u.0).collect::<Vec<_>>()),
                    Column::new(crate::validate::ROWS.into(), unknown.iter().map(|u| u.1).collect::<Vec<_>>()),
                ],
            )?,
        })
    }
}

/// One streaming pass over `lf` through a [`Kernel`]: the rows whose `customer` is
/// not one of `customers`, and (with `month`) the customers that have a month on more
/// than one row.
#[cfg(test)]
pub(crate) fn check(
    lf: LazyFrame,
    customer: &'static str,
    month: Option<&'static str>,
    customers: Arc<Customers>,
) -> PolarsResult<Found> {
    let kernel = Kernel::new(customers, customer, month);
    crate::fold_batches(lf, kernel, |k, df| k.fold(&df))?.finish()
}

/// A key column after the customer: text, or a number (integers, dates and
/// timestamps as their integer representation).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum KeyPart {
    Text,
    Number,
}

/// The customers (`customer`, the key's first column) with two rows that agree on
/// every column of the key, up to collisions of a 64-bit hash of the other columns: a
/// superset of the customers with a repeated key, for an exact check of their rows
/// alone. Fed batch by batch (by validation's first pass), keeping 16 bytes a row
/// (rows with a null in the key are not checked), where a group-by on the whole key
/// stored and hashed each row's encoded key: most of the time to validate services.
pub(crate) struct RepeatedKeys {
    customer: &'static str,
    rest: Vec<(&'static str, KeyPart)>,
    rows: Vec<(i64, u64)>,
}

impl RepeatedKeys {
    pub(crate) fn new(customer: &'static str, rest: Vec<(&'static str, KeyPart)>) -> Self {
        Self { customer, rest, rows: Vec::new() }
    }

    pub(crate) fn update(&mut self, df: &DataFrame) -> PolarsResult<()> {
        let ids = df.column(self.customer)?.as_materialized_series().cast(&DataType::Int64)?;
        let mut keyed = ids.is_not_null();
        let mut hashes = vec![0u64; df.height()];
        for &(name, part) in &self.rest {
            let column = df.column(name)?.as_materialized_series();
            let column = match part {
                KeyPart::Text => column.cast(&DataType::String)?,
                KeyPart::Number => column.to_physical_repr().cast(&DataType::Int64)?,
            };
            keyed = &keyed & &column.is_not_null();
            mix_into(&mut hashes, &column)?;
        }
        let rows = ids.i64()?.iter().zip(hashes).zip(keyed.iter());
        self.rows.extend(rows.filter_map(|((id, h), keyed)| id.filter(|_| keyed == Some(true)).map(|id| (id, h))));
        Ok(())
    }

    pub(crate) fn finish(mut self) -> PolarsResult<DataFrame> {
        self.rows.par_sort_unstable();
        let mut repeated: Vec<i64> = self.rows.windows(2).filter(|w| w[0] == w[1]).map(|w| w[0].0).collect();
        repeated.dedup();
        DataFrame::new(repeated.len(), vec![Column::new(self.customer.into(), repeated)])
    }
}

/// [`RepeatedKeys`] of `lf` in one streaming pass.
#[cfg(test)]
pub(crate) fn customers_with_repeated_keys(
    lf: LazyFrame,
    customer: &'static str,
    rest: &[(&'static str, KeyPart)],
) -> PolarsResult<DataFrame> {
    let keys = RepeatedKeys::new(customer, rest.to_vec());
    crate::fold_batches(lf, keys, |keys, df| keys.update(&df))?.finish()
}

/// Each row's value of `column` mixed into its hash.
fn mix_into(hashes: &mut [u64], column: &Series) -> PolarsResult<()> {
    use std::hash::{Hash, Hasher};
    let mix = |h: &mut u64, v: u64| *h = (h.rotate_left(29) ^ v).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    match column.dtype() {
        DataType::String => {
            for (h, v) in hashes.iter_mut().zip(column.str()?.iter()) {
                let mut hasher = std::hash::DefaultHasher::new();
                v.hash(&mut hasher);
                mix(h, hasher.finish());
            }
        }
        _ => {
            for (h, v) in hashes.iter_mut().zip(column.i64()?.iter()) {
                mix(h, v.unwrap_or_default() as u64);
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_customers_and_repeated_months_in_one_pass() {
        let d = |s: &str| Some(chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap());
        // Known: 1..=3 (dense ids) or 10, 2000, 900000 (sparse). Customer 2 has January
        // twice; 7 is unknown with March twice; 8 is unknown once; a null id is skipped.
        let rows = [
            (Some(1), d("2020-01-01")),
            (Some(1), d("2020-02-01")),
            (Some(2), d("2020-01-01")),
            (Some(2), d("2020-01-01")),
            (Some(3), d("2026-01-01")),
            (Some(3), None),
            (Some(7), d("2020-03-01")),
            (Some(7), d("2020-03-01")),
            (Some(8), d("2020-03-01")),
            (None, d("2020-03-01")),
        ];
        let lf = df!(
            "customer_id" => rows.iter().map(|r| r.0).collect::<Vec<Option<i64>>>(),
            "bill_month" => rows.iter().map(|r| r.1).collect::<Vec<_>>(),
        )
        .unwrap()
        .lazy();
        for known in [vec![1i64, 2, 3], vec![3, 1, 2, 10, 2000, 900_000]] {
            let found = check(lf.clone(), "customer_id", Some("bill_month"), Arc::new(Customers::new(known))).unwrap();
            let ids = |df: &DataFrame| df.column("customer_id").unwrap().i64().unwrap().iter().flatten().collect();
            assert_eq!(ids(&found.repeated), vec![2, 7]);
            assert_eq!(ids(&found.unknown), vec![7, 8]);
            let rows: Vec<u64> = found.unknown.column("__rows").unwrap().u64().unwrap().iter().flatten().collect();
            assert_eq!(rows, [2, 1]);
            // Without a month key: only the references.
            let refs = check(lf.clone(), "customer_id", None, Arc::new(Customers::new(vec![1, 2, 3]))).unwrap();
            assert_eq!((refs.repeated.height(), ids(&refs.unknown)), (0, vec![7, 8]));
        }
    }

    /// The kernel fed `rows` (customer, month number) one row per batch.
    fn fed(rows: &[(i64, i64)], known: Vec<i64>) -> Found {
        let mut k = Kernel::new(Arc::new(Customers::new(known)), "customer_id", Some("bill_month"));
        for &(id, m) in rows {
            // The first day of month number m (year * 12 + month, month 1 to 12).
            let first = chrono::NaiveDate::from_ymd_opt(((m - 1) / 12) as i32, ((m - 1) % 12 + 1) as u32, 1).unwrap();
            let day = crate::dates::epoch_days(first);
            k.update(
                &Int64Chunked::from_slice("id".into(), &[id]),
                Some(&Int32Chunked::from_slice("d".into(), &[day])),
            );
        }
        k.finish().unwrap()
    }

    #[test]
    fn the_month_window_widens_either_way_and_keeps_what_it_saw() {
        let ids = |df: &DataFrame| -> Vec<i64> {
            df.column("customer_id").unwrap().i64().unwrap().iter().flatten().collect()
        };
        let y = |year: i64, month: i64| year * 12 + month;
        assert_eq!(
            crate::dates::month_number(crate::dates::epoch_days(chrono::NaiveDate::from_ymd_opt(2024, 5, 9).unwrap())),
            y(2024, 5)
        );
        // Months arrive rising, falling and jumping across words; customer 1 repeats
        // the first month seen after two widenings, customer 2 a month seen before a
        // widening down, customer 3 never repeats.
        let rows = [
            (1, y(2024, 5)),
            (2, y(2024, 6)),
            (3, y(2024, 5)),
            (3, y(2019, 1)),
            (2, y(2030, 11)),
            (3, y(2030, 11)),
            (2, y(2024, 6)),
            (1, y(2024, 5)),
            (3, y(2024, 6)),
        ];
        let found = fed(&rows, vec![1, 2, 3]);
        assert!(found.months_checked);
        assert_eq!(ids(&found.repeated), vec![1, 2]);
        // 3 customers billed; months 2019-01, 2024-05, 2024-06, 2030-11.
        assert_eq!(found.seen, Some((3, 4)));
        // Falling from the start: the spare months go below.
        let falling: Vec<(i64, i64)> = (0..40).map(|k| (1, y(2030, 0) - k)).chain([(1, y(2030, 0) - 17)]).collect();
        let found = fed(&falling, vec![1]);
        assert_eq!((found.months_checked, ids(&found.repeated), found.seen), (true, vec![1], Some((1, 40))));
        // Over MAX_WORDS words of months: the caller checks them another way.
        let wide = fed(&[(1, y(2000, 0)), (1, y(2000, 0) + 64 * MAX_WORDS as i64)], vec![1]);
        assert!(!wide.months_checked && wide.seen.is_none());
    }
}
