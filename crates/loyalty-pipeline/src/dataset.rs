//! Opening and validating a dataset, writing its rejected rows, and the dates it
//! spans.

use std::path::{Path, PathBuf};
use std::time::Instant;

use chrono::NaiveDate;
use loyalty_contract::{Copier, Table, Validated, col as c, collect_streaming};
use loyalty_io::BucketCopy;
use polars::prelude::*;
use tracing::{info, warn};

use crate::error::{Context, PipelineError, Result};

/// Which dataset and how strictly to read it.
#[derive(Debug, Clone)]
pub struct DataOptions {
    pub data: PathBuf,
    /// Set rows that break the contract aside instead of failing.
    pub lenient: bool,
    /// Coerce types but check no row rule.
    pub skip_validation: bool,
}

impl DataOptions {
    pub fn strict(data: impl Into<PathBuf>) -> Self {
        Self { data: data.into(), lenient: false, skip_validation: false }
    }
}

/// Open and validate a dataset. Strict: any broken rule is an error. Lenient: broken
/// rules are logged and their rows left out of the returned tables.
pub fn load_validated(opts: &DataOptions) -> Result<Validated> {
    load_validated_with(opts, None)
}

/// [`load_validated`], with validation's first pass over each table feeding `copier`.
pub fn load_validated_with(opts: &DataOptions, copier: Option<&mut dyn Copier>) -> Result<Validated> {
    let started = Instant::now();
    let dir = opts.data.display();
    let raw = loyalty_io::open_dataset(&opts.data).during_with(|| format!("reading dataset {dir}"))?;
    if opts.skip_validation {
        warn!("--skip-validation: row rules are not checked");
        return Ok(loyalty_contract::trust(raw)?);
    }
    let validated = match copier {
        Some(copier) => loyalty_contract::validate_copying(raw, copier),
        None => loyalty_contract::validate(raw),
    };
    let validated = validated.during_with(|| format!("validating {dir}"))?;
    let report = &validated.report;
    if !report.is_clean() {
        if !opts.lenient {
            return Err(PipelineError::Invalid(report.violations.clone()));
        }
        for v in &report.violations {
            warn!(
                "set aside {} row(s) of `{}`: column `{}`, rule `{}` ({})",
                v.rows, v.table, v.column, v.rule, v.description
            );
        }
    }
    info!(
        "validated {} table(s) in {:.2}s ({} row(s) rejected)",
        report.tables.len(),
        started.elapsed().as_secs_f64(),
        report.rows_rejected()
    );
    Ok(validated)
}

/// The customer-bucketed copy to make while validation reads the dataset in `data`:
/// one bucket per partition of about `per_partition` customers (the customers' file
/// footers count them), none when `per_partition` is 0 (every pass at once, reading
/// the input). The passes after validation read the copy, each partition its bucket,
/// so the input is decoded once whatever its size (with one partition and no copy the
/// whole-table passes read the customers table ten times). The copy is a scratch
/// folder beside the output `staged`.
pub fn bucket_copy(data: &Path, per_partition: u64, staged: &loyalty_io::OutputDir) -> Result<Option<BucketCopy>> {
    if per_partition == 0 {
        return Ok(None);
    }
    let customers = loyalty_io::footer_rows(data, Table::Customers).during("counting the customers")?;
    let parts = loyalty_contract::partition::partition_count(customers, per_partition);
    let scratch = staged.scratch(loyalty_io::ScratchKind::Buckets).during("making the bucket folder")?;
    Ok(Some(BucketCopy::new(parts, scratch)))
}

/// The per-customer tables of `v` read from `copy`: the copy validation made of a
/// table that lost no row, and a copy made now of any other.
pub fn use_buckets(v: &mut Validated, copy: Option<BucketCopy>) -> Result<()> {
    let Some(copy) = copy else { return Ok(()) };
    let started = Instant::now();
    let report = &v.report;
    let clean = |table| {
        report.violations.iter().all(|x| x.table != table)
            && report.tables.iter().any(|t| t.table == table && t.rows_rejected == 0)
    };
    let tables = std::mem::take(&mut v.tables);
    v.tables = copy.into_tables(&tables, clean, &v.reads).during("copying the tables into customer buckets")?;
    info!("the per-customer tables are in customer buckets ({:.2}s)", started.elapsed().as_secs_f64());
    Ok(())
}

/// Alters a frame before it is written (e.g. pseudonymised ids).
pub type Rewrite<'a> = &'a dyn Fn(&mut DataFrame) -> PolarsResult<()>;

/// Write each table's rejected rows to `<dir>/<table>.parquet`: streamed, or collected
/// and passed through `rewrite` first when there is one (rejects are few).
pub fn write_rejects(validated: &Validated, dir: &Path, rewrite: Option<Rewrite>) -> Result<()> {
    for (table, lf) in &validated.rejects {
        let path = dir.join(format!("{table}.parquet"));
        let context = || format!("writing rejects of `{table}`");
        match rewrite {
            None => loyalty_io::sink_parquet(lf.clone(), &path).during_with(context)?,
            Some(f) => {
                let mut df = lf.clone().collect().during_with(context)?;
                f(&mut df).during_with(context)?;
                loyalty_io::write_parquet(&mut df, &path).during_with(context)?;
            }
        }
    }
    Ok(())
}

/// The first or last `bill_month` of the (clean) billing table, on the streaming
/// engine (the in-memory one reads the whole column: 4.5 GiB at 10M x 36 months).
fn bill_month(v: &Validated, last: bool) -> Result<NaiveDate> {
    let month = if last { col(c::BILL_MONTH).max() } else { col(c::BILL_MONTH).min() };
    let df = collect_streaming(v.tables[&Table::Billing].clone().select([month.alias("m")]))?;
    let days = df.column("m")?.cast(&DataType::Int32)?.i32()?.get(0);
    let days = days.ok_or_else(|| PipelineError::Data("billing has no rows: nothing to run on".into()))?;
    loyalty_contract::dates::from_epoch_days(days)
        .ok_or_else(|| PipelineError::Data(format!("bill_month day {days} is out of range")))
}

/// The first bill month: the validation's summary has it when its pass over a clean
/// billing table found it, else a scan of the bills.
pub fn first_bill_month(v: &Validated) -> Result<NaiveDate> {
    match summarised_first_bill_month(v) {
        Some(first) => Ok(first),
        None => bill_month(v, false),
    }
}

/// The first bill month when the validation's summary has it (the features find it by a
/// scan otherwise, and start the data a month before T when there are no bills).
pub fn summarised_first_bill_month(v: &Validated) -> Option<NaiveDate> {
    v.billing.as_ref().and_then(|b| b.first_month)
}

/// T when no setting pins it: the end of the last billed month.
pub fn default_as_of(v: &Validated) -> Result<NaiveDate> {
    end_of_month(bill_month(v, true)?)
}

/// T: the pinned date (a flag or the config), else the end of `last_bill_month`.
pub fn as_of(pinned: Option<NaiveDate>, last_bill_month: Option<NaiveDate>) -> Result<NaiveDate> {
    match (pinned, last_bill_month) {
        (Some(t), _) => Ok(t),
        (None, Some(last)) => end_of_month(last),
        (None, None) => Err(PipelineError::Data("billing has no rows: nothing to run on".into())),
    }
}

pub(crate) fn end_of_month(d: NaiveDate) -> Result<NaiveDate> {
    loyalty_contract::dates::end_of_month(d).ok_or_else(|| PipelineError::Data(format!("no month end after {d}")))
}

pub(crate) fn months_before(t: NaiveDate, months: u32) -> Result<NaiveDate> {
    loyalty_contract::dates::month_end_minus(t, months)
        .ok_or_else(|| PipelineError::Data(format!("{months} months before {t} is out of range")))
}

pub(crate) fn months_after(t: NaiveDate, months: u32) -> Result<NaiveDate> {
    t.checked_add_months(chrono::Months::new(months))
        .ok_or_else(|| PipelineError::Data(format!("{months} months after {t} is out of range")))
}

/// Every value of a numeric column as f64 (`missing` for nulls).
pub fn floats(df: &DataFrame, name: &str, missing: f64) -> PolarsResult<Vec<f64>> {
    let s = df.column(name)?.as_materialized_series().cast(&DataType::Float64)?;
    Ok(s.f64()?.iter().map(|v| v.unwrap_or(missing)).collect())
}

/// The non-null ids of an i64 column.
pub fn ids(df: &DataFrame, name: &str) -> PolarsResult<Vec<i64>> {
    Ok(df.column(name)?.i64()?.iter().flatten().collect())
}
