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
pub(crate) const MAX_WORDS: i64 = 4;

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

/// The months to check for repeats: `column`'s month numbers lie in `lo..lo + 64 * words`.
#[derive(Clone, Copy)]
pub(crate) struct Months<'a> {
    pub column: &'a str,
    pub lo: i64,
    pub words: usize,
}

/// What the kernel found in one table.
pub(crate) struct Found {
    /// The customers (known or not) with a month on more than one row, one column.
    pub repeated: DataFrame,
    /// The unknown customers with their rows (`customer`, `__rows`), sorted.
    pub unknown: DataFrame,
    /// With months: the known customers with a row, and the months with a row of a
    /// known customer.
    pub seen: Option<(u64, u64)>,
}

struct Kernel {
    customers: Arc<Customers>,
    words: usize,
    lo: i64,
    seen: Vec<u64>,
    repeated: Vec<bool>,
    unknown: HashMap<i64, u64>,
    unknown_months: HashMap<(i64, i64), u32>,
}

impl Kernel {
    fn update(&mut self, ids: &Int64Chunked, months: Option<&Int32Chunked>) {
        // A chunked array's `get(row)` walks its chunks: the months are read in step.
        let mut months = months.map(|m| m.iter());
        // Rows come in runs of one month (a file per month, or a month's bills
        // together): the last day's month number is reused.
        let mut last: Option<(i32, i64)> = None;
        for id in ids.iter() {
            let days = months.as_mut().and_then(|m| m.next()).flatten();
            let Some(id) = id else { continue };
            let month = days.map(|days| match last {
                Some((d, k)) if d == days => k,
                _ => {
                    let k = crate::dates::month_number(days) - self.lo;
                    last = Some((days, k));
                    k
                }
            });
            match self.customers.slots.get(id) {
                Some(slot) => {
                    let Some(k) = month else { continue };
                    let (word, bit) = (slot * self.words + (k / 64) as usize, 1u64 << (k % 64));
                    if self.seen[word] & bit != 0 {
                        self.repeated[slot] = true;
                    }
                    self.seen[word] |= bit;
                }
                None => {
                    *self.unknown.entry(id).or_default() += 1;
                    if let Some(k) = month {
                        *self.unknown_months.entry((id, k)).or_default() += 1;
                    }
                }
            }
        }
    }

    fn finish(self, customer: &str) -> PolarsResult<Found> {
        let mut repeated: Vec<i64> =
            self.repeated.iter().zip(&self.customers.ids).filter(|(r, _)| **r).map(|(_, id)| *id).collect();
        repeated.extend(self.unknown_months.iter().filter(|(_, n)| **n > 1).map(|((id, _), _)| *id));
        repeated.sort_unstable();
        repeated.dedup();
        let mut unknown: Vec<(i64, u64)> = self.unknown.into_iter().collect();
        unknown.sort_unstable();
        let seen = (self.words > 0).then(|| {
            let mut months = vec![0u64; self.words];
            let mut customers = 0;
            for bits in self.seen.chunks_exact(self.words) {
                customers += u64::from(bits.iter().any(|w| *w != 0));
                months.iter_mut().zip(bits).for_each(|(m, w)| *m |= w);
            }
            (customers, months.iter().map(|w| u64::from(w.count_ones())).sum())
        });
        Ok(Found {
            seen,
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

/// One streaming pass over `lf`: the rows whose `customer` is not one of `customers`,
/// and (with `months`) the customers that have a month on more than one row.
pub(crate) fn check(
    lf: LazyFrame,
    customer: &str,
    months: Option<Months>,
    customers: Arc<Customers>,
) -> PolarsResult<Found> {
    let words = months.map_or(0, |m| m.words);
    let n = customers.ids.len();
    let kernel = Kernel {
        customers,
        words,
        lo: months.map_or(0, |m| m.lo),
        seen: vec![0; n * words],
        repeated: vec![false; if words > 0 { n } else { 0 }],
        unknown: HashMap::new(),
        unknown_months: HashMap::new(),
    };
    let mut columns = vec![col(customer).cast(DataType::Int64)];
    if let Some(m) = months {
        columns.push(col(m.column).cast(DataType::Date).to_physical().alias("__days"));
    }
    let owned = customer.to_string();
    let kernel = crate::fold_batches(lf.select(columns), kernel, move |k, df| {
        let ids = df.column(&owned)?.i64()?;
        let days = match df.column("__days") {
            Ok(c) => Some(c.as_materialized_series().cast(&DataType::Int32)?),
            Err(_) => None,
        };
        k.update(ids, days.as_ref().map(|d| d.i32()).transpose()?);
        Ok(())
    })?;
    kernel.finish(customer)
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
/// alone. One streaming pass keeping 16 bytes a row (rows with a null in the key are
/// not checked), where a group-by on the whole key stored and hashed each row's
/// encoded key: most of the time to validate services.
pub(crate) fn customers_with_repeated_keys(
    lf: LazyFrame,
    customer: &str,
    rest: &[(&str, KeyPart)],
) -> PolarsResult<DataFrame> {
    let mut columns = vec![col(customer).cast(DataType::Int64)];
    columns.extend(rest.iter().map(|&(name, part)| match part {
        KeyPart::Text => col(name).cast(DataType::String),
        KeyPart::Number => col(name).to_physical().cast(DataType::Int64),
    }));
    let not_null = columns.iter().map(|e| e.clone().is_not_null()).reduce(Expr::and).unwrap_or(lit(true));
    let owned = customer.to_string();
    let mut rows = crate::fold_batches(lf.select(columns).filter(not_null), Vec::new(), move |rows, df| {
        let ids = df.column(&owned)?.i64()?;
        let mut hashes = vec![0u64; df.height()];
        for column in df.columns().iter().skip(1) {
            mix_into(&mut hashes, column.as_materialized_series())?;
        }
        rows.extend(ids.iter().zip(hashes).filter_map(|(id, h)| id.map(|id| (id, h))));
        Ok(())
    })?;
    rows.par_sort_unstable();
    let mut repeated: Vec<i64> = rows.windows(2).filter(|w| w[0] == w[1]).map(|w| w[0].0).collect();
    repeated.dedup();
    DataFrame::new(repeated.len(), vec![Column::new(customer.into(), repeated)])
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
        let lo = crate::dates::month_number(crate::dates::epoch_days(d("2020-01-01").unwrap()));
        let months = Months { column: "bill_month", lo, words: 2 };
        for known in [vec![1i64, 2, 3], vec![3, 1, 2, 10, 2000, 900_000]] {
            let found = check(lf.clone(), "customer_id", Some(months), Arc::new(Customers::new(known))).unwrap();
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
}
