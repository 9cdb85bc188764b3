//! How much of each table a run decoded: every scan of an input file, and of the
//! customer-bucketed copy, passes its batches through a counter on the way out of the
//! Parquet reader, so the figures are what the engine delivered, not what a plan
//! asked for.
//!
//! A full decode of a table is every value of every row once; a pass that reads two of
//! ten columns is a fifth of one. `run.json` reports both the rows and the values.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use polars::prelude::*;
use serde::Serialize;

use crate::spec::Table;

/// What a table's scans read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// The dataset's own files.
    Input,
    /// The run's copy of a per-customer table in customer buckets.
    BucketCopy,
}

/// Rows and values delivered by the scans of one table from one source.
#[derive(Debug, Default)]
struct Counter {
    /// Columns of a whole row of the files.
    columns: AtomicU64,
    rows: AtomicU64,
    values: AtomicU64,
}

impl Counter {
    /// Count one batch's values of the `files`' columns: a column a scan adds (a hive
    /// partition value, the file name) is not a decoded value.
    fn add(&self, df: &DataFrame, files: &[PlSmallStr]) {
        let decoded = df.columns().iter().filter(|c| files.contains(c.name())).count();
        let rows = df.height() as u64;
        self.rows.fetch_add(rows, Ordering::Relaxed);
        self.values.fetch_add(rows * decoded as u64, Ordering::Relaxed);
    }
}

fn columns(c: &Counter) -> u64 {
    c.columns.load(Ordering::Relaxed)
}

/// `values` over `rows` x `columns`, when there are any.
fn full_decodes(values: u64, rows: Option<u64>, columns: u64) -> Option<f64> {
    rows.map(|r| r * columns).filter(|&whole| whole > 0).map(|whole| values as f64 / whole as f64)
}

/// A count for each table and source.
pub type PerTable<T> = BTreeMap<(Table, Source), T>;

/// The counters of a run's scans, shared by every copy of the plans that read them.
#[derive(Debug, Clone, Default)]
pub struct Reads(Arc<Mutex<PerTable<Arc<Counter>>>>);

/// The figures of one table from one source.
#[derive(Debug, Clone, Serialize)]
pub struct TableReads {
    pub table: Table,
    pub source: Source,
    /// Rows of the table (as validation counted them), when known.
    pub rows: Option<u64>,
    pub columns: u64,
    pub rows_decoded: u64,
    pub values_decoded: u64,
    /// Values decoded over the table's values: how many times it was decoded whole.
    pub full_decodes: Option<f64>,
}

impl Reads {
    /// `lf`, a scan of `table` from `source` whose files have the columns of
    /// `schema`, with every batch it delivers counted. Projections and filters still
    /// reach the scan below the counter, so the counts are what the reader decoded
    /// (after the filters the reader applies itself).
    ///
    /// Count a union of scans as one: polars 0.55 fails on `len()` over a union of
    /// mapped frames.
    pub fn counted(&self, table: Table, source: Source, schema: &Schema, lf: LazyFrame) -> LazyFrame {
        let counter = self.counter(table, source);
        counter.columns.store(schema.len() as u64, Ordering::Relaxed);
        let files: Vec<PlSmallStr> = schema.iter_names().cloned().collect();
        let flags = OptFlags::PROJECTION_PUSHDOWN | OptFlags::PREDICATE_PUSHDOWN | OptFlags::STREAMING;
        lf.map(
            move |df| {
                counter.add(&df, &files);
                Ok(df)
            },
            flags,
            None,
            Some("count decoded rows"),
        )
    }

    fn counter(&self, table: Table, source: Source) -> Arc<Counter> {
        let mut counters = self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        counters.entry((table, source)).or_default().clone()
    }

    /// The values decoded so far, by table and source.
    pub fn values(&self) -> PerTable<u64> {
        let counters = self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        counters.iter().map(|(k, c)| (*k, c.values.load(Ordering::Relaxed))).collect()
    }

    /// `values` decoded of `table` from `source` over the table's values (`rows` x its
    /// columns), when both are known.
    pub fn full_decodes(&self, table: Table, source: Source, values: u64, rows: Option<u64>) -> Option<f64> {
        let counters = self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        full_decodes(values, rows, columns(counters.get(&(table, source))?))
    }

    /// The figures so far, with each table's row count from `rows_of`.
    pub fn report(&self, rows_of: impl Fn(Table, Source) -> Option<u64>) -> Vec<TableReads> {
        let counters = self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        counters
            .iter()
            .map(|(&(table, source), c)| {
                let rows = rows_of(table, source);
                let columns = columns(c);
                let values_decoded = c.values.load(Ordering::Relaxed);
                TableReads {
                    table,
                    source,
                    rows,
                    columns,
                    rows_decoded: c.rows.load(Ordering::Relaxed),
                    values_decoded,
                    full_decodes: full_decodes(values_decoded, rows, columns),
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> LazyFrame {
        df!("customer_id" => (0..1000i64).collect::<Vec<_>>(), "v" => vec![1.0f64; 1000], "w" => vec![2i32; 1000])
            .unwrap()
            .lazy()
    }

    fn counted(reads: &Reads, source: Source, lf: LazyFrame) -> LazyFrame {
        let schema = lf.clone().collect_schema().unwrap();
        reads.counted(Table::Billing, source, &schema, lf)
    }

    fn only(reads: &Reads) -> TableReads {
        let mut r = reads.report(|_, _| Some(1000));
        assert_eq!(r.len(), 1);
        r.remove(0)
    }

    #[test]
    fn a_whole_pass_is_one_full_decode() {
        let reads = Reads::default();
        let lf = counted(&reads, Source::Input, table());
        crate::collect_streaming(lf.clone()).unwrap();
        let r = only(&reads);
        assert_eq!((r.rows_decoded, r.values_decoded), (1000, 3000));
        assert_eq!(r.full_decodes, Some(1.0));
        crate::collect_streaming(lf).unwrap();
        assert_eq!(only(&reads).full_decodes, Some(2.0));
    }

    #[test]
    fn projections_and_filters_reach_the_scan_below_the_counter() {
        let reads = Reads::default();
        let lf = counted(&reads, Source::BucketCopy, table());
        let sum =
            crate::collect_streaming(lf.filter(col("customer_id").lt(lit(100i64))).select([col("v").sum()])).unwrap();
        assert_eq!(sum.column("v").unwrap().f64().unwrap().get(0), Some(100.0));
        let r = only(&reads);
        // The filter needs customer_id and the sum v: two of three columns.
        assert!(r.values_decoded <= 2 * r.rows_decoded, "{r:?}");
        assert_eq!(r.source, Source::BucketCopy);
    }

    #[test]
    fn unknown_rows_give_no_decode_count() {
        let reads = Reads::default();
        crate::collect_streaming(counted(&reads, Source::Input, table())).unwrap();
        assert_eq!(reads.report(|_, _| None)[0].full_decodes, None);
    }

    #[test]
    fn a_counted_union_counts_its_file_columns_and_has_a_length() {
        let reads = Reads::default();
        let schema = table().collect_schema().unwrap();
        let args = UnionArgs { rechunk: false, parallel: true, ..Default::default() };
        // A hive partition value is a column the files do not hold.
        let month = |lf: LazyFrame| lf.with_columns([lit(7i32).alias("month")]);
        let union = concat(vec![month(table()), month(table())], args).unwrap();
        let lf = reads.counted(Table::Billing, Source::Input, &schema, union);
        crate::collect_streaming(lf.clone()).unwrap();
        let r = only(&reads);
        assert_eq!(r.values_decoded, 3 * 2000, "{r:?}");
        let n = crate::collect_streaming(lf.select([len().alias("n")])).unwrap();
        assert_eq!(n.column("n").unwrap().u32().unwrap().get(0), Some(2000));
    }
}
