//! The customers table at T out of memory where no stage reads it whole: as each
//! customer partition's features are assembled, the columns only the churn classifier
//! reads (most model inputs) go to a scratch Parquet file in the staged output folder
//! (one per partition, read back in the table's order: [`PartitionRuns`]), and the
//! classifier reads them back a chunk of rows at a time; once CLV is known the churn
//! model and reasons follow into a second file. customers.parquet gets every column
//! back a slice of rows at a time when it is written. At 10M customers that is about
//! 1.7 GB that the scoring and the later stages do not hold.

use std::path::{Path, PathBuf};

use loyalty_contract::col as c;
use loyalty_features::names as n;
use polars::prelude::*;

use crate::churn::{FeatureRows, SCORE_ROWS};
use crate::error::Result;

/// The columns of the customers table that no stage but the classifier reads: its
/// inputs that no segment, curve, offer, retention table or report uses, and the churn
/// model and reasons of each customer (not arpu_12m and data_mb_3m: the offers' adoption
/// cells read them). A column a later stage starts to read must
/// leave this list; a column missing from the table is skipped.
const WRITE_ONLY: [&str; 29] = [
    n::MONTHS_BILLED,
    n::MONTHS_TO_CONTRACT_END,
    n::COMPETITION_INDEX,
    n::LAST_BILL_MONTH,
    n::RECENCY_DAYS,
    n::TOPUPS_12M,
    n::TOPUPS_PER_MONTH,
    n::TOPUP_AMOUNT_12M,
    n::CHARGE_TREND,
    n::CHARGE_VOLATILITY,
    n::DISCOUNT_SHARE_12M,
    n::VOICE_TREND,
    n::DATA_TREND,
    n::LATE_PAYMENT_RATE_12M,
    n::MAX_DAYS_LATE_12M,
    n::UNPAID_AMOUNT_12M,
    n::DAYS_LATE_TREND,
    n::CONTACTS_12M,
    n::UNRESOLVED_12M,
    n::CHANNELS_USED_12M,
    n::SURVEYS_ANSWERED,
    n::SURVEY_AGE_DAYS,
    n::REFERRALS_12M,
    n::SERVICES_HELD,
    n::SERVICES_MARGIN_MONTHLY,
    n::PREMIUM_PCT,
    n::CPV_MONTHLY,
    n::CHURN_MODEL,
    n::CHURN_REASONS,
];

/// The survey aspect scores (survey_product, ...): model inputs only, as above.
fn aspect_columns() -> Vec<String> {
    c::ASPECTS.iter().map(|a| n::survey_aspect(a)).collect()
}

/// Rows of the table joined back and written at a time (whole row groups of the
/// scratch files).
const WRITE_ROWS: usize = 2 * SCORE_ROWS;

/// Where the write-only columns of a customers table went (one scratch file per
/// [`spill`], or the runs of [`PartitionRuns`]), and the table's column order.
pub(crate) struct Spilled {
    parts: Vec<Part>,
    order: Vec<PlSmallStr>,
}

/// Some spilled columns (with customer_id): one scratch file in the table's order, or
/// the customer partitions' runs, row i of the table from run `from[i]` (each run in its
/// partition's order, which the table keeps).
enum Part {
    File(PathBuf),
    Runs { runs: Vec<PathBuf>, from: Vec<u32> },
}

impl Part {
    /// Rows `start..start + len` of the table (fewer at its end), with the columns
    /// `columns` (None: all).
    fn rows(&self, start: usize, len: usize, columns: Option<&[&str]>) -> Result<DataFrame> {
        let pick = |lf: LazyFrame| match columns {
            Some(names) => lf.select(names.iter().map(|name| col(*name)).collect::<Vec<_>>()),
            None => lf,
        };
        match self {
            Part::File(path) => Ok(pick(scan(path)?).slice(start as i64, len as IdxSize).collect()?),
            Part::Runs { runs, from } => {
                let (start, end) = (start.min(from.len()), start.saturating_add(len).min(from.len()));
                // Each run is read on from the rows of it that come before `start`.
                let mut read = vec![0usize; runs.len()];
                for &k in &from[..start] {
                    read[k as usize] += 1;
                }
                interleaved(runs, &mut read, &from[start..end], &pick)
            }
        }
    }

    fn remove(&self) -> Result<()> {
        let paths = match self {
            Part::File(path) => std::slice::from_ref(path),
            Part::Runs { runs, .. } => runs.as_slice(),
        };
        for path in paths {
            std::fs::remove_file(path).map_err(|source| loyalty_io::IoError::Io { path: path.clone(), source })?;
        }
        Ok(())
    }
}

/// `customers` without the write-only columns it has but those in `keep`, which go to
/// a new scratch file in `dir` (with customer_id, to check the rows still line up when
/// they come back), in row groups of [`SCORE_ROWS`] so that the classifier decodes
/// each once. `before`: what earlier calls set aside.
pub(crate) fn spill(
    customers: DataFrame,
    dir: &Path,
    before: Option<Spilled>,
    keep: &[&str],
) -> Result<(DataFrame, Option<Spilled>)> {
    let out = write_only_in(&customers, keep);
    spill_columns(customers, dir, before, out)
}

/// The write-only columns `customers` has, but those in `keep`.
fn write_only_in(customers: &DataFrame, keep: &[&str]) -> Vec<PlSmallStr> {
    let aspects = aspect_columns();
    WRITE_ONLY
        .iter()
        .copied()
        .chain(aspects.iter().map(String::as_str))
        .filter(|name| customers.column(name).is_ok() && !keep.contains(name))
        .map(PlSmallStr::from)
        .collect()
}

/// `customers` with only customer_id and the columns in `keep`: every other column goes
/// to a new scratch file as in [`spill`]. For the last stages, which read a handful of
/// columns of a table of gigabytes.
pub(crate) fn spill_all_but(
    customers: DataFrame,
    dir: &Path,
    before: Option<Spilled>,
    keep: &[&str],
) -> Result<(DataFrame, Option<Spilled>)> {
    let out: Vec<PlSmallStr> = customers
        .get_column_names_owned()
        .into_iter()
        .filter(|name| name.as_str() != c::CUSTOMER_ID && !keep.contains(&name.as_str()))
        .collect();
    spill_columns(customers, dir, before, out)
}

/// `customers` without the columns `out`, which go to a new scratch file.
fn spill_columns(
    customers: DataFrame,
    dir: &Path,
    before: Option<Spilled>,
    out: Vec<PlSmallStr>,
) -> Result<(DataFrame, Option<Spilled>)> {
    if out.is_empty() {
        return Ok((customers, before));
    }
    let Spilled { mut parts, mut order } = before.unwrap_or(Spilled { parts: Vec::new(), order: Vec::new() });
    let path = dir.join(format!(".customers-write-only-{}.parquet", parts.len()));
    let part = customers.select(std::iter::once(PlSmallStr::from(c::CUSTOMER_ID)).chain(out.iter().cloned()))?;
    write_rows(&part, &path, SCORE_ROWS)?;
    drop(part);
    parts.push(Part::File(path));
    order.extend(added_since(&order, &customers));
    let kept = customers.drop_many(out);
    Ok((kept, Some(Spilled { parts, order })))
}

/// `df` into a scratch file at `path`, `rows` rows per row group. Without column
/// statistics: it is read back by row ranges only.
fn write_rows(df: &DataFrame, path: &Path, rows: usize) -> Result<()> {
    let mut writer = loyalty_io::ScratchWriter::create(path, df.schema(), false)?;
    for start in (0..df.height().max(1)).step_by(rows) {
        writer.append(&mut df.slice(start as i64, rows))?;
    }
    writer.finish()?;
    Ok(())
}

/// Rows per row group of a partition's run: a chunk of the table's rows reads a few
/// thousand rows of each run (at 10M customers, 20,000 of each of 10 runs in a chunk of
/// 200,000), and decodes the row groups those rows are in.
const RUN_ROWS: usize = 16_384;

/// The write-only columns of a customers table assembled one customer partition at a
/// time ([`loyalty_features::customer_features_with`]): each partition's go to a run
/// file of their own as the partition is done, and the rows of the table are read back
/// from the runs in the table's order. The table with every column is then never in
/// memory: at 10M customers it was the features stage's peak.
pub(crate) struct PartitionRuns<'a> {
    dir: &'a Path,
    keep: &'a [&'a str],
    runs: Vec<PathBuf>,
    order: Vec<PlSmallStr>,
}

impl<'a> PartitionRuns<'a> {
    /// Runs in `dir`; the columns in `keep` stay in memory.
    pub(crate) fn new(dir: &'a Path, keep: &'a [&'a str]) -> Self {
        PartitionRuns { dir, keep, runs: Vec::new(), order: Vec::new() }
    }

    /// The next partition's rows (sorted by customer_id): its write-only columns go to
    /// a run, the others are returned.
    pub(crate) fn set_aside(&mut self, rows: DataFrame) -> Result<DataFrame> {
        let out = write_only_in(&rows, self.keep);
        if out.is_empty() {
            return Ok(rows);
        }
        let path = self.dir.join(format!(".customers-write-only-run-{}.parquet", self.runs.len()));
        let run = rows.select(std::iter::once(PlSmallStr::from(c::CUSTOMER_ID)).chain(out.iter().cloned()))?;
        write_rows(&run, &path, RUN_ROWS)?;
        drop(run);
        self.runs.push(path);
        if self.order.is_empty() {
            self.order = rows.get_column_names_owned();
        }
        Ok(rows.drop_many(out))
    }

    /// The runs as the spilled columns of the table: row i of the table came from run
    /// `from[i]` (None: one run, already in the table's order). They are read where
    /// they are, a chunk of the table's rows at a time, from each run the rows of it the
    /// chunk holds; merged into one file first they cost a write of every column (3 s
    /// of the features stage at 10M customers). None when nothing was set aside.
    pub(crate) fn spilled(self, from: Option<Vec<u32>>) -> Option<Spilled> {
        let PartitionRuns { runs, order, .. } = self;
        if runs.is_empty() {
            return None;
        }
        let part = match from.filter(|_| runs.len() > 1) {
            Some(from) => Part::Runs { runs, from },
            None => Part::File(runs.into_iter().next()?),
        };
        Some(Spilled { parts: vec![part], order })
    }
}

/// The rows of one chunk of the table from the runs (`pick` of each): row i from run
/// `from[i]`, each run read on from `read[run]` (advanced past what is taken).
fn interleaved(
    runs: &[PathBuf],
    read: &mut [usize],
    from: &[u32],
    pick: &dyn Fn(LazyFrame) -> LazyFrame,
) -> Result<DataFrame> {
    let mut wanted = vec![0usize; runs.len()];
    for &k in from {
        wanted[k as usize] += 1;
    }
    let mut pieces: Option<DataFrame> = None;
    let mut offset = vec![0 as IdxSize; runs.len()];
    let mut height = 0 as IdxSize;
    for (k, run) in runs.iter().enumerate().filter(|&(k, _)| wanted[k] > 0) {
        let piece = pick(scan(run)?).slice(read[k] as i64, wanted[k] as IdxSize).collect()?;
        read[k] += wanted[k];
        offset[k] = height;
        height += piece.height() as IdxSize;
        match pieces.as_mut() {
            Some(all) => {
                all.vstack_mut_owned(piece)?;
            }
            None => pieces = Some(piece),
        }
    }
    let pieces = pieces.ok_or_else(|| PolarsError::ComputeError("no run rows for a chunk".into()))?;
    let idx: Vec<IdxSize> = from
        .iter()
        .map(|&k| {
            let at = offset[k as usize];
            offset[k as usize] += 1;
            at
        })
        .collect();
    Ok(pieces.take(&IdxCa::from_vec("__idx".into(), idx))?)
}

/// The columns of `customers` that `order` does not name, in the table's order.
fn added_since(order: &[PlSmallStr], customers: &DataFrame) -> Vec<PlSmallStr> {
    customers.get_column_names_owned().into_iter().filter(|name| !order.contains(name)).collect()
}

/// The customers table at T with its write-only columns on disk, as the classifier
/// reads it.
pub(crate) struct WithSpilled<'a> {
    pub kept: &'a DataFrame,
    /// None: nothing was set aside, the table is whole in memory.
    pub spilled: Option<&'a Spilled>,
}

impl FeatureRows for WithSpilled<'_> {
    fn in_memory(&self) -> &DataFrame {
        self.kept
    }

    fn rows(&self, start: usize, len: usize) -> Result<DataFrame> {
        match self.spilled {
            Some(spilled) => spilled.rows(self.kept, start, len),
            None => self.kept.rows(start, len),
        }
    }
}

impl Spilled {
    /// `customers` (the kept columns, rows in the order they were spilled, columns added
    /// since at the end) with the spilled columns back, into the Parquet file `path`
    /// a slice of rows at a time; the scratch files go.
    pub(crate) fn write_joined(&self, customers: &DataFrame, path: &Path) -> Result<()> {
        let rows = customers.height();
        let mut writer = loyalty_io::AppendWriter::new(path);
        for start in (0..rows.max(1)).step_by(WRITE_ROWS) {
            writer.append(&self.rows(customers, start, WRITE_ROWS.min(rows - start))?)?;
        }
        writer.finish()?;
        self.parts.iter().try_for_each(Part::remove)
    }

    /// Rows `start..start + len` of `customers` (the kept columns) with the spilled
    /// columns back, in the table's order (columns added since at the end).
    fn rows(&self, customers: &DataFrame, start: usize, len: usize) -> Result<DataFrame> {
        let mut joined = customers.slice(start as i64, len);
        for part in &self.parts {
            let back = part.rows(start, len, None)?;
            let (now, then) = (joined.column(c::CUSTOMER_ID)?, back.column(c::CUSTOMER_ID)?);
            // Pseudonymised ids are text by now: `check_rows` compared them before.
            if now.dtype() == then.dtype() {
                same_rows(now, then)?;
            }
            joined.hstack_mut(back.drop(c::CUSTOMER_ID)?.columns())?;
        }
        let mut order = self.order.clone();
        order.extend(added_since(&self.order, customers));
        Ok(joined.select(order)?)
    }

    /// Whether `customers` still has the rows of the spilled columns, in their order: a
    /// stage that reordered them would pair customers with others' columns (a program
    /// error, exit 2). Called before the ids are pseudonymised, which
    /// [`Spilled::write_joined`] can then no longer compare.
    pub(crate) fn check_rows(&self, customers: &DataFrame) -> Result<()> {
        for part in &self.parts {
            let ids = part.rows(0, usize::MAX, Some(&[c::CUSTOMER_ID]))?;
            same_rows(customers.column(c::CUSTOMER_ID)?, ids.column(c::CUSTOMER_ID)?)?;
        }
        Ok(())
    }
}

fn scan(path: &Path) -> Result<LazyFrame> {
    Ok(LazyFrame::scan_parquet(PlRefPath::new(path.to_string_lossy().as_ref()), Default::default())?)
}

fn same_rows(now: &Column, then: &Column) -> Result<()> {
    if now.equals_missing(then) {
        return Ok(());
    }
    Err(PolarsError::ComputeError(
        "the customers table changed row order after its write-only columns were set aside".into(),
    )
    .into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> DataFrame {
        df!(
            c::CUSTOMER_ID => [3i64, 5, 8, 13],
            n::LOYALTY => [0.9, 0.8, 0.7, 0.6],
            n::RECENCY_DAYS => [1.0, 2.0, 3.0, 4.0],
            n::CHURN_REASONS => ["a", "b, c", "", "d"],
            n::MARGIN_MONTHLY => [10.0, 20.0, 30.0, 40.0],
        )
        .unwrap()
    }

    fn read(path: &Path) -> DataFrame {
        LazyFrame::scan_parquet(PlRefPath::new(path.to_str().unwrap()), Default::default()).unwrap().collect().unwrap()
    }

    #[test]
    fn spilled_columns_come_back_in_place_with_the_columns_added_since() {
        let dir = tempfile::tempdir().unwrap();
        let (mut kept, spilled) = spill(table(), dir.path(), None, &[]).unwrap();
        let spilled = spilled.expect("two write-only columns");
        assert_eq!(kept.get_column_names(), [c::CUSTOMER_ID, n::LOYALTY, n::MARGIN_MONTHLY]);
        kept.with_column(Column::new("tier".into(), ["gold", "iron", "iron", "lead"])).unwrap();
        let out = dir.path().join("customers.parquet");
        spilled.write_joined(&kept, &out).unwrap();
        let mut expected = table();
        expected.with_column(Column::new("tier".into(), ["gold", "iron", "iron", "lead"])).unwrap();
        assert!(read(&out).equals_missing(&expected));
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1, "the scratch file is gone");
    }

    #[test]
    fn columns_set_aside_in_two_steps_are_read_back_by_rows_and_written_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let first = table().drop(n::CHURN_REASONS).unwrap();
        let (mut kept, spilled) = spill(first, dir.path(), None, &[]).unwrap();
        assert_eq!(kept.get_column_names(), [c::CUSTOMER_ID, n::LOYALTY, n::MARGIN_MONTHLY]);
        let reasons = table().column(n::CHURN_REASONS).unwrap().clone();
        kept.with_column(reasons).unwrap();
        let (mut kept, spilled) = spill(kept, dir.path(), spilled, &[]).unwrap();
        let spilled = spilled.unwrap();
        assert_eq!(kept.get_column_names(), [c::CUSTOMER_ID, n::LOYALTY, n::MARGIN_MONTHLY]);
        let rows = WithSpilled { kept: &kept, spilled: Some(&spilled) }.rows(1, 2).unwrap();
        let order = [c::CUSTOMER_ID, n::LOYALTY, n::RECENCY_DAYS, n::MARGIN_MONTHLY, n::CHURN_REASONS];
        let expected = table().select(order).unwrap();
        assert!(rows.equals_missing(&expected.slice(1, 2)), "{rows}");
        kept.with_column(Column::new("tier".into(), ["gold", "iron", "iron", "lead"])).unwrap();
        let out = dir.path().join("customers.parquet");
        spilled.write_joined(&kept, &out).unwrap();
        let mut expected = expected;
        expected.with_column(Column::new("tier".into(), ["gold", "iron", "iron", "lead"])).unwrap();
        assert!(read(&out).equals_missing(&expected));
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1, "both scratch files are gone");
    }

    #[test]
    fn partitions_set_aside_one_at_a_time_come_back_in_the_tables_order() {
        let dir = tempfile::tempdir().unwrap();
        let rows = |r: &[IdxSize]| table().take(&IdxCa::from_vec("i".into(), r.to_vec())).unwrap();
        // two partitions, each sorted by customer: 3 and 8, then 5 and 13
        let mut runs = PartitionRuns::new(dir.path(), &[]);
        let mut kept = runs.set_aside(rows(&[0, 2])).unwrap();
        kept.vstack_mut_owned(runs.set_aside(rows(&[1, 3])).unwrap()).unwrap();
        assert_eq!(kept.get_column_names(), [c::CUSTOMER_ID, n::LOYALTY, n::MARGIN_MONTHLY]);
        // the kept rows merged by customer: 3 (first partition), 5 (second), 8, 13
        let kept = kept.take(&IdxCa::from_vec("i".into(), vec![0, 2, 1, 3])).unwrap();
        let spilled = runs.spilled(Some(vec![0, 1, 0, 1])).expect("two write-only columns");
        spilled.check_rows(&kept).unwrap();
        // A chunk from the middle of the table: each run read on from the rows of it
        // before the chunk (5 from the second run, then 8 from the first).
        let middle = WithSpilled { kept: &kept, spilled: Some(&spilled) }.rows(1, 2).unwrap();
        assert!(middle.equals_missing(&table().slice(1, 2)), "{middle}");
        let out = dir.path().join("customers.parquet");
        spilled.write_joined(&kept, &out).unwrap();
        assert!(read(&out).equals_missing(&table()));
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1, "the runs are gone");
    }

    #[test]
    fn all_but_a_few_columns_set_aside_come_back_in_place() {
        let dir = tempfile::tempdir().unwrap();
        let (kept, spilled) = spill(table(), dir.path(), None, &[]).unwrap();
        let (kept, spilled) = spill_all_but(kept, dir.path(), spilled, &[n::MARGIN_MONTHLY]).unwrap();
        assert_eq!(kept.get_column_names(), [c::CUSTOMER_ID, n::MARGIN_MONTHLY]);
        let out = dir.path().join("customers.parquet");
        spilled.unwrap().write_joined(&kept, &out).unwrap();
        assert!(read(&out).equals_missing(&table()));
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1, "the scratch files are gone");
    }

    #[test]
    fn rows_out_of_order_are_refused_and_a_table_without_write_only_columns_stays_whole() {
        let dir = tempfile::tempdir().unwrap();
        let (kept, spilled) = spill(table(), dir.path(), None, &[]).unwrap();
        let reversed = kept.reverse();
        let err = spilled.unwrap().write_joined(&reversed, &dir.path().join("customers.parquet")).unwrap_err();
        assert!(err.to_string().contains("row order"), "{err}");
        let spilled = spill(table(), dir.path(), None, &[]).unwrap().1.unwrap();
        assert!(spilled.check_rows(&table()).is_ok());
        assert!(spilled.check_rows(&reversed).unwrap_err().to_string().contains("row order"));
        let narrow = table().select([c::CUSTOMER_ID, n::LOYALTY]).unwrap();
        let (same, none) = spill(narrow.clone(), dir.path(), None, &[]).unwrap();
        assert!(none.is_none() && same.equals_missing(&narrow));
    }
}
