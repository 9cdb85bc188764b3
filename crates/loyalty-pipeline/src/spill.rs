//! The customers table at T out of memory where no stage reads it: each stage holds
//! the columns it reads, and the others wait in scratch Parquet files in the staged
//! output folder. As each customer partition's features are assembled, every column
//! the rest of the features stage does not read goes to a run file of its own
//! ([`PartitionRuns`]); at each later stage boundary the columns the next stage does
//! not read follow ([`spill_all_but`]) and those it reads come back
//! ([`Spilled::bring_back`]). The churn classifier reads its inputs back a chunk of rows
//! at a time, and customers.parquet gets every column back a slice of rows at a time
//! when it is written. At 10M customers a column of numbers is 49 MB, and the table at
//! T has about seventy.

use std::path::{Path, PathBuf};

use loyalty_contract::col as c;
use polars::prelude::*;

use crate::churn::{FeatureRows, SCORE_ROWS};
use crate::error::Result;

/// Rows of the table joined back and written at a time (whole row groups of the
/// scratch files).
const WRITE_ROWS: usize = 2 * SCORE_ROWS;

/// Where the set-aside columns of a customers table are (scratch files, or the runs of
/// [`PartitionRuns`]), and the table's column order.
pub(crate) struct Spilled {
    parts: Vec<Part>,
    order: Vec<PlSmallStr>,
}

/// Some set-aside columns (with customer_id) in one place.
struct Part {
    place: Place,
    /// The columns whose latest copy is here: one brought back into memory, or set
    /// aside again later, is read from there.
    live: Vec<PlSmallStr>,
}

/// One scratch file in the table's order, or the customer partitions' runs, row i of
/// the table from run `from[i]` (each run in its partition's order, which the table
/// keeps).
enum Place {
    File(PathBuf),
    Runs { runs: Vec<PathBuf>, from: Vec<u32> },
}

impl Place {
    /// Rows `start..start + len` of the table (fewer at its end): customer_id and
    /// `columns`.
    fn rows(&self, start: usize, len: usize, columns: &[PlSmallStr]) -> Result<DataFrame> {
        let names: Vec<Expr> =
            std::iter::once(col(c::CUSTOMER_ID)).chain(columns.iter().map(|name| col(name.clone()))).collect();
        let pick = |lf: LazyFrame| lf.select(names.clone());
        match self {
            Place::File(path) => Ok(pick(scan(path)?).slice(start as i64, len as IdxSize).collect()?),
            Place::Runs { runs, from } => {
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
            Place::File(path) => std::slice::from_ref(path),
            Place::Runs { runs, .. } => runs.as_slice(),
        };
        for path in paths {
            std::fs::remove_file(path).map_err(|source| loyalty_io::IoError::Io { path: path.clone(), source })?;
        }
        Ok(())
    }
}

/// `customers` with only customer_id and the columns in `keep`: every other column goes
/// to a new scratch file in `dir` (with customer_id, to check the rows still line up
/// when they come back), in row groups of [`SCORE_ROWS`] so that the classifier decodes
/// each once. `before`: what earlier calls set aside.
pub(crate) fn spill_all_but(
    customers: DataFrame,
    dir: &Path,
    before: Option<Spilled>,
    keep: &[&str],
) -> Result<(DataFrame, Option<Spilled>)> {
    let out = all_but(&customers, keep);
    if out.is_empty() {
        return Ok((customers, before));
    }
    let Spilled { mut parts, mut order } = before.unwrap_or(Spilled { parts: Vec::new(), order: Vec::new() });
    let path = dir.join(format!(".customers-set-aside-{}.parquet", parts.len()));
    let part = customers.select(std::iter::once(PlSmallStr::from(c::CUSTOMER_ID)).chain(out.iter().cloned()))?;
    write_rows(&part, &path, SCORE_ROWS)?;
    drop(part);
    // The copies written now are the latest: any older one is read no more.
    for part in &mut parts {
        part.live.retain(|name| !out.contains(name));
    }
    parts.push(Part { place: Place::File(path), live: out.clone() });
    order.extend(added_since(&order, &customers));
    let kept = customers.drop_many(out);
    loyalty_contract::memory::release();
    Ok((kept, Some(Spilled { parts, order })))
}

/// The columns of `customers` but customer_id and those in `keep`.
fn all_but(customers: &DataFrame, keep: &[&str]) -> Vec<PlSmallStr> {
    customers
        .get_column_names_owned()
        .into_iter()
        .filter(|name| name.as_str() != c::CUSTOMER_ID && !keep.contains(&name.as_str()))
        .collect()
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

/// The columns of a customers table assembled one customer partition at a time
/// ([`loyalty_features::customer_features_with`]) that the rest of the features stage
/// does not read: each partition's go to a run file of their own as the partition is
/// done, and the rows of the table are read back from the runs in the table's order.
/// The table with every column is then never in memory: at 10M customers it was the
/// features stage's peak.
pub(crate) struct PartitionRuns<'a> {
    dir: &'a Path,
    keep: &'a [&'a str],
    runs: Vec<PathBuf>,
    order: Vec<PlSmallStr>,
    set_aside: Vec<PlSmallStr>,
}

impl<'a> PartitionRuns<'a> {
    /// Runs in `dir`; customer_id and the columns in `keep` stay in memory.
    pub(crate) fn new(dir: &'a Path, keep: &'a [&'a str]) -> Self {
        PartitionRuns { dir, keep, runs: Vec::new(), order: Vec::new(), set_aside: Vec::new() }
    }

    /// The next partition's rows (sorted by customer_id): every column but those kept
    /// goes to a run, the kept ones are returned.
    pub(crate) fn set_aside(&mut self, rows: DataFrame) -> Result<DataFrame> {
        let out = all_but(&rows, self.keep);
        if out.is_empty() {
            return Ok(rows);
        }
        if self.runs.is_empty() {
            (self.order, self.set_aside) = (rows.get_column_names_owned(), out.clone());
        } else if out != self.set_aside {
            return Err(PolarsError::SchemaMismatch(
                format!("a customer partition has the columns {out:?} where the first had {:?}", self.set_aside).into(),
            )
            .into());
        }
        let path = self.dir.join(format!(".customers-set-aside-run-{}.parquet", self.runs.len()));
        let run = rows.select(std::iter::once(PlSmallStr::from(c::CUSTOMER_ID)).chain(out.iter().cloned()))?;
        write_rows(&run, &path, RUN_ROWS)?;
        drop(run);
        self.runs.push(path);
        Ok(rows.drop_many(out))
    }

    /// The runs as the set-aside columns of the table: row i of the table came from run
    /// `from[i]` (None: one run, already in the table's order). They are read where
    /// they are, a chunk of the table's rows at a time, from each run the rows of it the
    /// chunk holds; merged into one file first they cost a write of every column (3 s
    /// of the features stage at 10M customers). None when nothing was set aside.
    pub(crate) fn spilled(self, from: Option<Vec<u32>>) -> Option<Spilled> {
        let PartitionRuns { runs, order, set_aside, .. } = self;
        if runs.is_empty() {
            return None;
        }
        let place = match from.filter(|_| runs.len() > 1) {
            Some(from) => Place::Runs { runs, from },
            None => Place::File(runs.into_iter().next()?),
        };
        Some(Spilled { parts: vec![Part { place, live: set_aside }], order })
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

/// The customers table at T with some columns set aside, as the classifier reads it.
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
    /// `customers` (the kept columns, rows in the order they were set aside, columns
    /// added since at the end) with the set-aside columns back, into the Parquet file
    /// `path` a slice of rows at a time; the scratch files go.
    pub(crate) fn write_joined(&self, customers: &DataFrame, path: &Path) -> Result<()> {
        let rows = customers.height();
        let mut writer = loyalty_io::AppendWriter::new(path);
        for start in (0..rows.max(1)).step_by(WRITE_ROWS) {
            writer.append(&self.rows(customers, start, WRITE_ROWS.min(rows - start))?)?;
        }
        writer.finish()?;
        self.parts.iter().try_for_each(|part| part.place.remove())
    }

    /// Rows `start..start + len` of `customers` (the kept columns) with the set-aside
    /// columns back, in the table's order (columns added since at the end). A column in
    /// memory is the one read: a stage may have set it again.
    fn rows(&self, customers: &DataFrame, start: usize, len: usize) -> Result<DataFrame> {
        let mut joined = customers.slice(start as i64, len);
        for part in &self.parts {
            let wanted: Vec<PlSmallStr> =
                part.live.iter().filter(|name| joined.column(name).is_err()).cloned().collect();
            if wanted.is_empty() {
                continue;
            }
            let back = part.place.rows(start, len, &wanted)?;
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

    /// `customers` with the set-aside columns among `names` back at its end, whole, a
    /// column at a time (a column of the partitions' runs is read twice over while it is
    /// put in the table's order). A name in memory already, or never set aside, is
    /// skipped: the stage that reads it finds out.
    pub(crate) fn bring_back(&mut self, mut customers: DataFrame, names: &[&str]) -> Result<DataFrame> {
        for &name in names {
            if customers.column(name).is_ok() {
                continue;
            }
            let Some(part) = self.parts.iter_mut().find(|part| part.live.iter().any(|live| live == name)) else {
                continue;
            };
            let back = part.place.rows(0, usize::MAX, &[PlSmallStr::from(name)])?;
            same_rows(customers.column(c::CUSTOMER_ID)?, back.column(c::CUSTOMER_ID)?)?;
            customers.with_column(back.column(name)?.clone())?;
            part.live.retain(|live| live != name);
        }
        Ok(customers)
    }

    /// Whether `customers` still has the rows of the set-aside columns, in their order:
    /// a stage that reordered them would pair customers with others' columns (a program
    /// error, exit 2). Called before the ids are pseudonymised, which
    /// [`Spilled::write_joined`] can then no longer compare.
    pub(crate) fn check_rows(&self, customers: &DataFrame) -> Result<()> {
        // A file none of whose columns is read any more is not read here either.
        for part in self.parts.iter().filter(|part| !part.live.is_empty()) {
            let ids = part.place.rows(0, usize::MAX, &[])?;
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
        "the customers table changed row order after some of its columns were set aside".into(),
    )
    .into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use loyalty_features::names as n;

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

    /// The columns of `table` set aside, and those kept (besides customer_id).
    const ASIDE: [&str; 2] = [n::RECENCY_DAYS, n::CHURN_REASONS];
    const KEEP: [&str; 2] = [n::LOYALTY, n::MARGIN_MONTHLY];

    #[test]
    fn set_aside_columns_come_back_in_place_with_the_columns_added_since() {
        let dir = tempfile::tempdir().unwrap();
        let (mut kept, spilled) = spill_all_but(table(), dir.path(), None, &KEEP).unwrap();
        let spilled = spilled.expect("two columns set aside");
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
        let (mut kept, spilled) = spill_all_but(first, dir.path(), None, &KEEP).unwrap();
        assert_eq!(kept.get_column_names(), [c::CUSTOMER_ID, n::LOYALTY, n::MARGIN_MONTHLY]);
        let reasons = table().column(n::CHURN_REASONS).unwrap().clone();
        kept.with_column(reasons).unwrap();
        let (mut kept, spilled) = spill_all_but(kept, dir.path(), spilled, &KEEP).unwrap();
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
        let mut runs = PartitionRuns::new(dir.path(), &KEEP);
        let mut kept = runs.set_aside(rows(&[0, 2])).unwrap();
        kept.vstack_mut_owned(runs.set_aside(rows(&[1, 3])).unwrap()).unwrap();
        assert_eq!(kept.get_column_names(), [c::CUSTOMER_ID, n::LOYALTY, n::MARGIN_MONTHLY]);
        // the kept rows merged by customer: 3 (first partition), 5 (second), 8, 13
        let kept = kept.take(&IdxCa::from_vec("i".into(), vec![0, 2, 1, 3])).unwrap();
        let spilled = runs.spilled(Some(vec![0, 1, 0, 1])).expect("two columns set aside");
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
        let (kept, spilled) = spill_all_but(table(), dir.path(), None, &KEEP).unwrap();
        let (kept, spilled) = spill_all_but(kept, dir.path(), spilled, &[n::MARGIN_MONTHLY]).unwrap();
        assert_eq!(kept.get_column_names(), [c::CUSTOMER_ID, n::MARGIN_MONTHLY]);
        let out = dir.path().join("customers.parquet");
        spilled.unwrap().write_joined(&kept, &out).unwrap();
        assert!(read(&out).equals_missing(&table()));
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1, "the scratch files are gone");
    }

    #[test]
    fn a_partition_with_other_columns_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let mut runs = PartitionRuns::new(dir.path(), &KEEP);
        runs.set_aside(table().slice(0, 2)).unwrap();
        let err = runs.set_aside(table().slice(2, 2).drop(n::RECENCY_DAYS).unwrap()).unwrap_err();
        assert!(err.to_string().contains("churn_reasons"), "{err}");
    }

    #[test]
    fn columns_brought_back_come_whole_in_the_tables_order_and_are_set_aside_again_as_they_are_then() {
        let dir = tempfile::tempdir().unwrap();
        let mut runs = PartitionRuns::new(dir.path(), &KEEP);
        let rows = |r: &[IdxSize]| table().take(&IdxCa::from_vec("i".into(), r.to_vec())).unwrap();
        let mut kept = runs.set_aside(rows(&[0, 2])).unwrap();
        kept.vstack_mut_owned(runs.set_aside(rows(&[1, 3])).unwrap()).unwrap();
        let kept = kept.take(&IdxCa::from_vec("i".into(), vec![0, 2, 1, 3])).unwrap();
        let mut spilled = runs.spilled(Some(vec![0, 1, 0, 1]));
        // Only margin_monthly stays; recency comes back from the runs, in table order.
        let (kept, aside) = spill_all_but(kept, dir.path(), spilled.take(), &[n::MARGIN_MONTHLY]).unwrap();
        let mut aside = aside.unwrap();
        let back = aside.bring_back(kept, &[n::RECENCY_DAYS, n::LOYALTY, "never_there"]).unwrap();
        assert_eq!(back.get_column_names(), [c::CUSTOMER_ID, n::MARGIN_MONTHLY, n::RECENCY_DAYS, n::LOYALTY]);
        assert!(back.column(n::RECENCY_DAYS).unwrap().equals_missing(table().column(n::RECENCY_DAYS).unwrap()));
        assert!(back.column(n::LOYALTY).unwrap().equals_missing(table().column(n::LOYALTY).unwrap()));
        // A column set again in memory is the one written, in memory or set aside anew.
        let mut changed = back;
        changed.with_column(Column::new(n::LOYALTY.into(), [0.1, 0.2, 0.3, 0.4])).unwrap();
        let mut expected = table();
        expected.with_column(Column::new(n::LOYALTY.into(), [0.1, 0.2, 0.3, 0.4])).unwrap();
        let (kept, aside) = spill_all_but(changed.clone(), dir.path(), Some(aside), &[n::MARGIN_MONTHLY]).unwrap();
        let out = dir.path().join("customers.parquet");
        aside.unwrap().write_joined(&kept, &out).unwrap();
        assert!(read(&out).equals_missing(&expected), "{}", read(&out));
        let (kept, mut aside) = spill_all_but(changed, dir.path(), None, &[n::MARGIN_MONTHLY]).unwrap();
        let kept = aside.as_mut().unwrap().bring_back(kept, &[n::LOYALTY]).unwrap();
        let rows = WithSpilled { kept: &kept, spilled: aside.as_ref() }.rows(0, 4).unwrap();
        assert!(rows.equals_missing(&expected.select(rows.get_column_names_owned()).unwrap()), "{rows}");
    }

    #[test]
    fn rows_out_of_order_are_refused_and_a_table_with_nothing_to_set_aside_stays_whole() {
        let dir = tempfile::tempdir().unwrap();
        let (kept, spilled) = spill_all_but(table(), dir.path(), None, &KEEP).unwrap();
        let reversed = kept.reverse();
        let err = spilled.unwrap().write_joined(&reversed, &dir.path().join("customers.parquet")).unwrap_err();
        assert!(err.to_string().contains("row order"), "{err}");
        let mut spilled = spill_all_but(table(), dir.path(), None, &KEEP).unwrap().1.unwrap();
        assert!(spilled.check_rows(&table()).is_ok());
        assert!(spilled.check_rows(&reversed).unwrap_err().to_string().contains("row order"));
        let err = spilled.bring_back(reversed, &ASIDE).unwrap_err();
        assert!(err.to_string().contains("row order"), "{err}");
        let narrow = table().select([c::CUSTOMER_ID, n::LOYALTY]).unwrap();
        let (same, none) = spill_all_but(narrow.clone(), dir.path(), None, &KEEP).unwrap();
        assert!(none.is_none() && same.equals_missing(&narrow));
    }
}
