//! A customer-bucketed scratch copy of the clean tables.
//!
//! The passes that hold per-customer state (feature aggregates, model summaries,
//! curves) run one customer partition at a time to bound memory. Without a copy, each
//! partition filters every file by a hash of the customer id, so P partitions decode
//! the data P times. Here the rows of each per-customer table are routed by the same
//! hash into `count` buckets of Parquet files (as Spark's shuffle and DuckDB's radix
//! partitioning do), from the batches of validation's first pass over the table (so
//! the input is decoded once for both), and a partition then reads its own bucket.
//!
//! The copy lives in a scratch folder beside the run's outputs (same disk, so no
//! surprise on a small `/tmp`; [`crate::OutputDir::scratch`]), removed when the last
//! plan reading it is dropped.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, mpsc};
use std::thread;

use loyalty_contract::partition::{customer_column, customer_hash, partition_of};
use loyalty_contract::reads::{Reads, Source};
use loyalty_contract::{Copier, RowSink, Table, Tables, collect_streaming};
use polars::prelude::*;

use crate::error::IoError;
use crate::output::ScratchDir;
use crate::write::ScratchWriter;

/// Rows a bucket gathers before they are written as one file (a few row groups).
const ROWS_PER_FILE: usize = 262_144;

/// The customer-bucketed copy of a run's per-customer tables, made while validation
/// reads them ([`Copier`]) or afterwards.
pub struct BucketCopy {
    count: u32,
    scratch: ScratchDir,
    /// The table being copied by a validation pass, and its writer.
    writing: Option<(Table, Arc<Mutex<BucketWriter>>)>,
    /// The files of each bucket of each table copied so far.
    written: BTreeMap<Table, Vec<Vec<PathBuf>>>,
}

impl BucketCopy {
    /// A copy into `count` buckets in `scratch`.
    pub fn new(count: u32, scratch: ScratchDir) -> Self {
        Self { count, scratch, writing: None, written: BTreeMap::new() }
    }

    /// `tables` with their per-customer tables read from the copy: bucket `k` holds
    /// partition `k` of `count`, and a partition of a multiple of `count`, or a small
    /// sample, then reads the one bucket that holds it. A table copied during
    /// validation is used when `clean(table)` (no row was set aside, so the copy holds
    /// the clean rows); any other per-customer table is copied now. Tables that are
    /// not per customer, and whole-table reads of those filtered by month, stay as
    /// they are. Every scan of the copy feeds `reads`. The result owns `scratch`: the
    /// folder goes when the last copy of the tables does.
    pub fn into_tables(
        mut self,
        tables: &Tables,
        clean: impl Fn(Table) -> bool,
        reads: &Reads,
    ) -> Result<Tables, IoError> {
        let mut out = Tables::new();
        let mut scans = BTreeMap::new();
        for (table, lf) in tables {
            let Some(id) = customer_column(*table) else {
                out.insert(*table, lf.clone());
                continue;
            };
            loyalty_contract::cancel::check()?;
            let context = || format!("writing the customer buckets of `{table}`");
            let pl = |source| IoError::Polars { context: context(), source };
            let schema = lf.clone().collect_schema().map_err(pl)?;
            let files = match self.written.remove(table) {
                Some(files) if clean(*table) => files,
                _ => write_buckets(lf.clone(), id, &self.dir(*table)?, self.count).map_err(pl)?,
            };
            let buckets: Vec<LazyFrame> =
                files.iter().map(|f| scan_or_empty(f, &schema)).collect::<PolarsResult<_>>().map_err(pl)?;
            let counted = |lf| reads.counted(*table, Source::BucketCopy, &schema, lf);
            // One scan of every file of the copy: a union of the buckets' scans made the
            // stages after validation 40 s slower at 10M customers.
            let whole = if filtered_by_month(*table) && self.count > 1 {
                lf.clone()
            } else {
                counted(scan_or_empty(&files.concat(), &schema).map_err(pl)?)
            };
            out.insert(*table, whole);
            scans.insert(*table, buckets.into_iter().map(counted).collect());
        }
        Ok(out.with_buckets(self.count, scans, Arc::new(self.scratch)))
    }

    /// A fresh folder for `table`'s copy (a copy made during validation but not used
    /// is replaced).
    fn dir(&self, table: Table) -> Result<PathBuf, IoError> {
        let dir = self.scratch.path().join(table.name());
        if dir.exists() {
            fs::remove_dir_all(&dir).map_err(|e| IoError::Io { path: dir.clone(), source: e })?;
        }
        Ok(dir)
    }
}

impl Copier for BucketCopy {
    fn sink(&mut self, table: Table) -> PolarsResult<Option<RowSink>> {
        let Some(id) = customer_column(table) else { return Ok(None) };
        let dir = self.dir(table).map_err(|e| polars_err!(ComputeError: "{e}"))?;
        let writer = Arc::new(Mutex::new(BucketWriter::new(&dir, id, self.count)?));
        self.writing = Some((table, writer.clone()));
        Ok(Some(Box::new(move |rows: &DataFrame| {
            writer.lock().map_err(|_| polars_err!(ComputeError: "bucket writer poisoned"))?.push(rows)
        })))
    }

    fn written(&mut self, table: Table) -> PolarsResult<()> {
        let Some((writing, writer)) = self.writing.take() else { return Ok(()) };
        debug_assert_eq!(writing, table);
        let files = writer.lock().map_err(|_| polars_err!(ComputeError: "bucket writer poisoned"))?.finish()?;
        self.written.insert(table, files);
        Ok(())
    }
}

/// Whether whole-table reads of `table` filter by month. With more than one bucket
/// those keep reading the original files: their layout (hive folders by month) lets a
/// month filter skip files, and at 10M customers whole-table passes over the copy's
/// files took 1.5x the memory (9.4 GiB, over the budget). The other tables'
/// whole-table reads, and every read of a one-bucket copy (the whole table in a few
/// files), take the copy, so that their input is decoded by validation and the copy
/// only.
fn filtered_by_month(table: Table) -> bool {
    matches!(table, Table::Billing | Table::Topups | Table::Interactions | Table::Surveys)
}

/// A scan of `paths`, or an empty frame of `schema` when there are none.
fn scan_or_empty(paths: &[PathBuf], schema: &Schema) -> PolarsResult<LazyFrame> {
    if paths.is_empty() {
        return Ok(DataFrame::empty_with_schema(schema).lazy());
    }
    let paths: Vec<PlRefPath> = paths.iter().map(|p| PlRefPath::new(p.to_string_lossy().as_ref())).collect();
    let args = ScanArgsParquet { hive_options: HiveOptions::new_disabled(), ..Default::default() };
    LazyFrame::scan_parquet_files(paths.into_iter().collect(), args)
}

/// Stream `lf` once, writing each row into bucket `partition_of(customer_hash(id), count)` under
/// `dir`; the files of each bucket. Rows without a customer id belong to no partition
/// (as with a partition filter) and are dropped.
fn write_buckets(lf: LazyFrame, id: &'static str, dir: &Path, count: u32) -> PolarsResult<Vec<Vec<PathBuf>>> {
    let writer = Arc::new(Mutex::new(BucketWriter::new(dir, id, count)?));
    let sink = writer.clone();
    let plan = lf.sink_batches(
        PlanCallback::new(move |df: DataFrame| {
            let mut w = sink.lock().map_err(|_| polars_err!(ComputeError: "bucket writer poisoned"))?;
            w.push(&df)?;
            Ok(false)
        }),
        false,
        None,
    )?;
    let streamed = collect_streaming(plan);
    let mut w = writer.lock().map_err(|_| polars_err!(ComputeError: "bucket writer poisoned"))?;
    let written = w.finish();
    streamed?;
    written
}

/// Rows waiting per bucket, the files written so far, and the threads that encode
/// them: Parquet encoding then overlaps the scan's decoding instead of holding up the
/// batches behind the one lock.
struct BucketWriter {
    dirs: Vec<PathBuf>,
    id: &'static str,
    pending: Vec<Vec<DataFrame>>,
    pending_rows: Vec<usize>,
    files: Vec<Vec<PathBuf>>,
    to_encoder: Option<mpsc::SyncSender<(PathBuf, DataFrame)>>,
    encoders: Vec<thread::JoinHandle<PolarsResult<()>>>,
}

/// Threads that encode the buckets' files. One was busy all the time at 3M customers
/// (perf: compression, dictionaries and statistics were half of the copy's samples,
/// on one core) while the scan left the other core half idle.
const ENCODERS: usize = 2;

/// Write each (path, frame) received as a copy file ([`write_copy_file`]), until the
/// sender is gone.
fn encode(files: &Mutex<mpsc::Receiver<(PathBuf, DataFrame)>>) -> PolarsResult<()> {
    loop {
        let next = files.lock().map_err(|_| polars_err!(ComputeError: "bucket queue poisoned"))?.recv();
        let Ok((path, mut df)) = next else { return Ok(()) };
        write_copy_file(&path, &mut df)?;
    }
}

/// `df` as one LZ4 Parquet row group at `path` ([`ScratchWriter`]), with every
/// column's statistics, so month filters skip row groups.
fn write_copy_file(path: &Path, df: &mut DataFrame) -> PolarsResult<()> {
    let write = |df: &mut DataFrame| {
        let mut writer = ScratchWriter::create(path, df.schema(), true)?;
        writer.append(df)?;
        writer.finish()
    };
    // A full disk is most likely here: the error names the file.
    write(df).map_err(|e| e.context(format!("writing {}", path.display()).into()))
}

impl BucketWriter {
    fn new(dir: &Path, id: &'static str, count: u32) -> PolarsResult<Self> {
        let dirs: Vec<PathBuf> = (0..count).map(|k| dir.join(format!("bucket-{k}"))).collect();
        for d in &dirs {
            fs::create_dir_all(d).map_err(|e| polars_err!(ComputeError: "creating {}: {e}", d.display()))?;
        }
        let n = count as usize;
        // Two frames waiting at most: the memory of the copy stays a few buckets' worth.
        let (to_encoder, files) = mpsc::sync_channel(2);
        let files = Arc::new(Mutex::new(files));
        let encoders = (0..ENCODERS)
            .map(|k| {
                let files = files.clone();
                thread::Builder::new()
                    .name(format!("bucket-encoder-{k}"))
                    .spawn(move || encode(&files))
                    .map_err(|e| polars_err!(ComputeError: "starting the bucket encoders: {e}"))
            })
            .collect::<PolarsResult<Vec<_>>>()?;
        Ok(Self {
            dirs,
            id,
            pending: vec![Vec::new(); n],
            pending_rows: vec![0; n],
            files: vec![Vec::new(); n],
            to_encoder: Some(to_encoder),
            encoders,
        })
    }

    /// Write what is left, wait for the encoder, and give the files of each bucket.
    fn finish(&mut self) -> PolarsResult<Vec<Vec<PathBuf>>> {
        let flushed = (0..self.dirs.len()).try_for_each(|k| self.flush(k));
        self.to_encoder = None;
        self.encoded()?;
        flushed?;
        Ok(std::mem::take(&mut self.files))
    }

    /// The encoders' outcome (the first error), once they have stopped.
    fn encoded(&mut self) -> PolarsResult<()> {
        let mut outcome = Ok(());
        for encoder in self.encoders.drain(..) {
            let result = match encoder.join() {
                Ok(result) => result,
                Err(_) => Err(polars_err!(ComputeError: "a bucket encoder panicked")),
            };
            if outcome.is_ok() {
                outcome = result;
            }
        }
        outcome
    }

    /// Route the rows of one batch to their buckets, writing a bucket out when it is full.
    fn push(&mut self, df: &DataFrame) -> PolarsResult<()> {
        let count = self.dirs.len();
        if count == 1 {
            return self.push_whole(df);
        }
        let ids = df.column(self.id)?.as_materialized_series().cast(&DataType::Int64)?;
        let mut rows: Vec<Vec<IdxSize>> = vec![Vec::new(); count];
        for (i, id) in ids.i64()?.iter().enumerate() {
            if let Some(id) = id {
                rows[partition_of(customer_hash(id), count as u32) as usize].push(i as IdxSize);
            }
        }
        for (k, idx) in rows.into_iter().enumerate() {
            if idx.is_empty() {
                continue;
            }
            let part = df.take(&IdxCa::from_vec(PlSmallStr::EMPTY, idx))?;
            self.pending_rows[k] += part.height();
            self.pending[k].push(part);
            if self.pending_rows[k] >= ROWS_PER_FILE {
                self.flush(k)?;
            }
        }
        Ok(())
    }

    /// One bucket holds every row with a customer id: the batch goes as it is, with no
    /// hash per row and no gathered copy (0.2-0.3 s of the copy's 2 s at 1M customers).
    fn push_whole(&mut self, df: &DataFrame) -> PolarsResult<()> {
        let ids = df.column(self.id)?;
        let kept = match ids.null_count() {
            0 => df.clone(),
            _ => df.filter(&ids.is_not_null())?,
        };
        self.pending_rows[0] += kept.height();
        self.pending[0].push(kept);
        if self.pending_rows[0] >= ROWS_PER_FILE {
            self.flush(0)?;
        }
        Ok(())
    }

    /// Write bucket `k`'s waiting rows as one file.
    fn flush(&mut self, k: usize) -> PolarsResult<()> {
        let mut frames = std::mem::take(&mut self.pending[k]).into_iter();
        self.pending_rows[k] = 0;
        let Some(mut df) = frames.next() else { return Ok(()) };
        for f in frames {
            df.vstack_mut_owned(f)?;
        }
        let path = self.dirs[k].join(format!("part-{:05}.parquet", self.files[k].len()));
        self.files[k].push(path.clone());
        let sent = self.to_encoder.as_ref().is_some_and(|tx| tx.send((path, df)).is_ok());
        if sent {
            return Ok(());
        }
        // The encoder stopped: its error says why.
        self.to_encoder = None;
        self.encoded()?;
        Err(polars_err!(ComputeError: "the bucket encoder stopped"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use loyalty_contract::partition::Slice;

    fn sorted(lf: LazyFrame) -> DataFrame {
        lf.sort(["customer_id", "x"], SortMultipleOptions::default()).collect().unwrap()
    }

    #[test]
    fn a_copy_file_reads_back_as_written() {
        // Numbers plain encoded with nulls and NaN among them; strings as polars writes
        // them (a dictionary); two chunks (as a bucket's gathered batches are) in one
        // row group; statistics on the date only.
        let n = 300;
        let charge: Vec<Option<f64>> = (0..n).map(|i| [Some(1.5), None, Some(f64::NAN), Some(-0.0)][i % 4]).collect();
        let rate: Vec<Option<f32>> = (0..n).map(|i| [Some(0.25), Some(1e-9), None][i % 3]).collect();
        let plan: Vec<Option<&str>> = (0..n).map(|i| [Some("prepaid"), Some("postpaid"), None][i % 3]).collect();
        let id: Vec<Option<i64>> = (0..n).map(|i| (i % 7 != 0).then_some(i as i64 * 13)).collect();
        let days: Vec<Option<i32>> = (0..n).map(|i| (i % 5 != 0).then_some(2)).collect();
        let mut df =
            df!("customer_id" => id, "charge" => charge, "rate" => rate, "plan" => plan, "days" => days).unwrap();
        let months: Vec<i32> = (0..n).map(|i| 19_000 + (i % 36) as i32 * 30).collect();
        df.with_column(Column::new("month".into(), months).cast(&DataType::Date).unwrap()).unwrap();
        let mut chunked = df.slice(0, 100);
        chunked.vstack_mut(&df.slice(100, n)).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("part.parquet");
        write_copy_file(&path, &mut chunked).unwrap();
        let back = LazyFrame::scan_parquet(PlRefPath::new(path.to_string_lossy().as_ref()), Default::default())
            .unwrap()
            .collect()
            .unwrap();
        assert_eq!(back.schema(), df.schema());
        assert!(back.equals_missing(&df), "{back:?}");
        // One row group; the numbers without a dictionary, the repeated string with one.
        let meta = polars_parquet::read::read_metadata(&mut std::fs::File::open(&path).unwrap()).unwrap();
        assert_eq!(meta.row_groups.len(), 1);
        let columns = meta.row_groups[0].parquet_columns();
        let column = |name: &str| columns.iter().find(|c| c.descriptor().path_in_schema[0] == name).unwrap();
        let dictionary = |name: &str| column(name).dictionary_page_offset().is_some();
        assert!(!dictionary("charge") && !dictionary("rate") && !dictionary("days") && !dictionary("customer_id"));
        assert!(dictionary("plan"));
        let footer = std::fs::read(&path).unwrap();
        let statistics = |name: &str| column(name).statistics(&footer).is_some();
        assert!(statistics("month"));
        assert!(["customer_id", "charge", "rate", "plan", "days"].iter().all(|c| !statistics(c)));
    }

    #[test]
    fn a_bucket_holds_exactly_its_partition() {
        let ids: Vec<i64> = (0..5_000).map(|i| i * 7 % 1_301).collect();
        let x: Vec<i64> = (0..5_000).collect();
        let billing = df!("customer_id" => &ids, "x" => &x).unwrap();
        let markets = df!("market_id" => ["a"]).unwrap();
        let tables: Tables =
            [(Table::Billing, billing.clone().lazy()), (Table::Markets, markets.lazy())].into_iter().collect();
        let dir = tempfile::tempdir().unwrap();
        let staged = crate::OutputDir::begin(&dir.path().join("out"), crate::Holds::Outputs, &[]).unwrap();
        let reads = Reads::default();
        let scratch = staged.scratch(crate::ScratchKind::Buckets).unwrap();
        let copy = BucketCopy::new(4, scratch).into_tables(&tables, |_| false, &reads).unwrap();
        assert_eq!(copy.bucket_count(), Some(4));
        let whole = sorted(copy[&Table::Billing].clone());
        assert!(whole.equals(&sorted(billing.clone().lazy())), "{whole:?}");
        // Partitions of the bucket count, of a multiple of it, and of another count.
        for count in [4, 8, 3] {
            let mut seen = 0;
            for slice in Slice::partitions(count) {
                let from_copy = sorted(copy.restricted(Some(slice))[&Table::Billing].clone());
                let filtered = sorted(billing.clone().lazy().filter(slice.predicate("customer_id")));
                assert!(from_copy.equals(&filtered), "{slice:?}");
                seen += from_copy.height();
            }
            assert_eq!(seen, billing.height(), "{count} partitions");
        }
        assert_eq!(copy.restricted(None)[&Table::Markets].clone().collect().unwrap().height(), 1);
        // Partitions of 4 and of 8 read the copy; those of 3 and the whole table do not.
        let copy_reads = reads.report(|_, _| Some(billing.height() as u64));
        assert_eq!(copy_reads.len(), 1, "{copy_reads:?}");
        assert_eq!((copy_reads[0].table, copy_reads[0].source), (Table::Billing, Source::BucketCopy));
        assert_eq!(copy_reads[0].rows_decoded, 2 * billing.height() as u64);
        // The scratch folder goes with the last copy of the tables.
        let scratch = || {
            fs::read_dir(dir.path())
                .unwrap()
                .filter(|e| e.as_ref().unwrap().file_name().to_string_lossy().starts_with(".out.buckets-"))
                .count()
        };
        assert_eq!(scratch(), 1);
        drop(copy);
        assert_eq!(scratch(), 0);
    }

    #[test]
    fn one_bucket_is_the_whole_table_and_every_read_takes_it() {
        let ids: Vec<Option<i64>> = (0..3_000).map(|i| (i % 10 != 3).then_some(i * 7 % 1_301)).collect();
        let x: Vec<i64> = (0..3_000).collect();
        let billing = df!("customer_id" => &ids, "x" => &x).unwrap();
        let tables: Tables = [(Table::Billing, billing.clone().lazy())].into_iter().collect();
        let dir = tempfile::tempdir().unwrap();
        let staged = crate::OutputDir::begin(&dir.path().join("out"), crate::Holds::Outputs, &[]).unwrap();
        let reads = Reads::default();
        let scratch = staged.scratch(crate::ScratchKind::Buckets).unwrap();
        let copy = BucketCopy::new(1, scratch).into_tables(&tables, |_| false, &reads).unwrap();
        // Rows without a customer id belong to no partition, as with a filter.
        let with_id = sorted(billing.clone().lazy().filter(col("customer_id").is_not_null()));
        assert_eq!(with_id.height(), 2_700);
        assert!(sorted(copy[&Table::Billing].clone()).equals(&with_id));
        let sample = Slice::Sample { fraction: 0.25 };
        let from_copy = sorted(copy.restricted(Some(sample))[&Table::Billing].clone());
        assert!(from_copy.equals(&sorted(billing.lazy().filter(sample.predicate("customer_id")))));
        // The whole billing table (filtered by month with more buckets) and the sample
        // both read the copy (the sample's filter is counted as it decodes).
        let copy_reads = reads.report(|_, _| Some(2_700));
        assert_eq!(copy_reads.len(), 1, "{copy_reads:?}");
        assert_eq!(copy_reads[0].source, Source::BucketCopy);
        assert_eq!(copy_reads[0].rows_decoded, 2_700 + from_copy.height() as u64);
    }
}
