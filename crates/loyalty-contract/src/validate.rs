//! Checking a whole dataset against the contract.
//!
//! A table costs two streaming passes when it is clean. The first counts the breaks
//! of every row rule at once (flags computed by the engine, counted batch by batch in
//! Rust), the range of a month key, and the references to a reference table that do
//! not resolve; a [`Copier`] may take the same batches (the run's bucketed copy).
//! The second is the customer key kernel (`keys.rs`), which answers both duplicate
//! months and references to unknown customers (a few bytes of state per customer, so
//! it runs over every customer at once). Services' three-column key gets a group-by
//! of its own. Examples of offending rows are fetched only for the rules that were
//! broken.

use std::collections::BTreeMap;
use std::sync::Arc;

use polars::prelude::*;
use serde::Serialize;

use crate::collect_streaming;
use crate::error::{ContractError, SchemaProblem};
use crate::keys;
use crate::normalize::{Normalized, normalize};
use crate::reads::Reads;
use crate::rules::{ForeignKey, foreign_keys, row_rules};
use crate::spec::{Kind, Table, TableSpec, col as c};
use crate::tables::Tables;

/// How many offending rows a message quotes.
pub const EXAMPLES: usize = 5;

/// One table as found on disk: a lazy scan, and the same scan with a `source_file` column.
pub struct RawTable {
    pub lf: LazyFrame,
    pub lf_with_files: LazyFrame,
    pub schema: Schema,
    /// The file or folder, for messages.
    pub location: String,
    pub files: usize,
}

#[derive(Default)]
pub struct RawDataset {
    pub tables: BTreeMap<Table, RawTable>,
    /// The counters the scans of `tables` feed.
    pub reads: Reads,
}

/// A rule broken by some rows.
#[derive(Debug, Clone, Serialize)]
pub struct Violation {
    pub table: Table,
    pub location: String,
    pub column: String,
    pub rule: String,
    pub description: String,
    pub rows: u64,
    /// A few offending rows, as `key=value` text.
    pub examples: Vec<String>,
    /// The files those example rows came from.
    pub files: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct TableReport {
    pub table: Table,
    pub location: String,
    pub files: usize,
    pub rows_read: u64,
    pub rows_rejected: u64,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct ValidationReport {
    pub tables: Vec<TableReport>,
    pub violations: Vec<Violation>,
}

impl ValidationReport {
    pub fn is_clean(&self) -> bool {
        self.violations.is_empty()
    }

    pub fn rows_rejected(&self) -> u64 {
        self.tables.iter().map(|t| t.rows_rejected).sum()
    }
}

/// The outcome of validation: clean tables (canonical types, bad rows removed), the
/// bad rows with the rules they broke, and the report.
pub struct Validated {
    pub tables: Tables,
    pub rejects: BTreeMap<Table, LazyFrame>,
    pub report: ValidationReport,
    /// The billing summary, when the validation's passes over a clean billing table
    /// found it on their way (the dataset summary then need not read the bills again).
    pub billing: Option<crate::summary::BillingSummary>,
    /// How much of each table the scans decoded, from validation on.
    pub reads: Reads,
}

/// Rows whose key breaks a key-level rule (duplicate key, unknown reference).
struct KeyViolation {
    column: &'static str,
    rule: &'static str,
    description: String,
    /// The bad keys (join columns), with `__rows`.
    keys: DataFrame,
    join_on: Vec<&'static str>,
}

pub(crate) const ROWS: &str = "__rows";
const REJECT_RULE: &str = "reject_rule";

fn pl(table: Table) -> impl Fn(PolarsError) -> ContractError {
    move |source| ContractError::Polars { table, source }
}

fn all_not_null(columns: &[&str]) -> Expr {
    columns.iter().map(|k| col(*k).is_not_null()).reduce(Expr::and).unwrap_or(lit(true))
}

fn exprs(columns: &[&'static str]) -> Vec<Expr> {
    columns.iter().map(|k| col(*k)).collect()
}

fn rows_sum(df: &DataFrame) -> PolarsResult<u64> {
    df.column(ROWS)?.as_materialized_series().cast(&DataType::UInt64)?.sum::<u64>()
}

/// Coerce every table to the contract's types without checking any row rule: for
/// input already validated upstream (`--skip-validation`). Table- and column-level
/// problems still fail.
pub fn trust(raw: RawDataset) -> Result<Validated, ContractError> {
    let mut out = Validated {
        tables: Tables::new(),
        rejects: BTreeMap::new(),
        report: ValidationReport::default(),
        billing: None,
        reads: raw.reads.clone(),
    };
    let mut problems = Vec::new();
    for (table, t) in raw.tables {
        let spec = table.spec();
        match normalize(spec, t.lf, &t.schema, &t.location) {
            Ok(n) => {
                let canonical: Vec<Expr> = spec.columns.iter().map(|col_spec| col(col_spec.name)).collect();
                out.tables.insert(table, n.lf.select(canonical));
                out.report.tables.push(TableReport {
                    table,
                    location: t.location,
                    files: t.files,
                    rows_read: 0,
                    rows_rejected: 0,
                });
            }
            Err(p) => problems.extend(p),
        }
    }
    if problems.is_empty() { Ok(out) } else { Err(ContractError::Schema(problems)) }
}

/// Where a copy of a table's rows goes, batch by batch.
pub type RowSink = Box<dyn FnMut(&DataFrame) -> PolarsResult<()> + Send>;

/// A copy of each table made by validation's first pass over it (the run's customer
/// bucketed copy), so that the input is decoded once for both.
pub trait Copier {
    /// Where to copy `table`'s rows (in its canonical columns), or None to leave it.
    fn sink(&mut self, table: Table) -> PolarsResult<Option<RowSink>>;
    /// The pass that fed [`Copier::sink`]'s sink for `table` has ended, or failed: end
    /// its copy. A table with rows that validation set aside is copied with them;
    /// whoever uses the copy checks the table's report first.
    fn written(&mut self, table: Table) -> PolarsResult<()>;
}

/// Copies nothing.
struct NoCopy;

impl Copier for NoCopy {
    fn sink(&mut self, _: Table) -> PolarsResult<Option<RowSink>> {
        Ok(None)
    }

    fn written(&mut self, _: Table) -> PolarsResult<()> {
        Ok(())
    }
}

/// Check every table, parents first so children are checked against the clean parents.
pub fn validate(raw: RawDataset) -> Result<Validated, ContractError> {
    validate_copying(raw, &mut NoCopy)
}

/// [`validate`], with each table's first pass feeding `copier` too.
pub fn validate_copying(raw: RawDataset, copier: &mut dyn Copier) -> Result<Validated, ContractError> {
    let mut problems = Vec::new();
    if raw.tables.contains_key(&Table::Services) && !raw.tables.contains_key(&Table::ServiceCatalog) {
        let services = &raw.tables[&Table::Services];
        problems.push(SchemaProblem {
            table: Table::Services,
            location: services.location.clone(),
            column: c::SERVICE.into(),
            rule: "missing_table".into(),
            detail: "services needs service_catalog.parquet to say what each service is worth".into(),
        });
    }
    let mut normalized = BTreeMap::new();
    for (table, t) in &raw.tables {
        let spec = table.spec();
        let plain = normalize(spec, t.lf.clone(), &t.schema, &t.location);
        let mut schema_with_files = t.schema.clone();
        schema_with_files.with_column(c::SOURCE_FILE.into(), DataType::String);
        let with_files = normalize(spec, t.lf_with_files.clone(), &schema_with_files, &t.location);
        match (plain, with_files) {
            (Ok(plain), Ok(with_files)) => {
                normalized.insert(*table, (plain, with_files));
            }
            (Err(p), _) | (_, Err(p)) => problems.extend(p),
        }
    }
    if !problems.is_empty() {
        return Err(ContractError::Schema(problems));
    }

    let mut out = Validated {
        tables: Tables::new(),
        rejects: BTreeMap::new(),
        report: ValidationReport::default(),
        billing: None,
        reads: raw.reads.clone(),
    };
    // The clean customers' ids, once they are checked: the index the key checks of
    // every per-customer table look customers up in.
    let mut customers: Option<Arc<keys::Customers>> = None;
    for table in Table::ALL {
        let Some((plain, with_files)) = normalized.remove(&table) else { continue };
        let t = &raw.tables[&table];
        let known = customers.clone();
        validate_table(table.spec(), t, (plain, with_files), (known, &mut *copier), &mut out).map_err(pl(table))?;
        if table == Table::Customers {
            customers = Some(Arc::new(keys::Customers::new(clean_ids(&out.tables[&table]).map_err(pl(table))?)));
        }
    }
    let empty: Vec<SchemaProblem> =
        out.report.tables.iter().filter(|r| r.table.required() && r.rows_read == 0).map(empty_table).collect();
    if !empty.is_empty() {
        return Err(ContractError::Schema(empty));
    }
    Ok(out)
}

/// What the first pass finds in a table: its rows, the rows breaking each row rule,
/// the range of a month key, and what the dataset summary reads of the bills.
#[derive(Default)]
struct FirstPass {
    rows: u64,
    broken: Vec<u64>,
    /// Rows whose reference of each lookup did not resolve.
    unresolved: Vec<u64>,
    /// The first and last day of the month key, as epoch days.
    months: Option<(i32, i32)>,
    /// The first and last bill month, as epoch days.
    bills: Option<(i32, i32)>,
    charges: f64,
    /// The key checks, fed the same batches.
    kernel: Option<keys::Kernel>,
    repeated: Option<keys::RepeatedKeys>,
}

/// Which columns the first pass folds: boolean `flags` (a row rule broken), counted,
/// and references to look up in a reference table's keys.
struct FirstPassColumns {
    flags: Vec<String>,
    lookups: Vec<Lookup>,
    month: Option<&'static str>,
    billing: bool,
    canonical: Vec<PlSmallStr>,
}

fn widen(range: Option<(i32, i32)>, days: &Column) -> PolarsResult<Option<(i32, i32)>> {
    let days = days.cast(&DataType::Int32)?;
    let days = days.i32()?;
    Ok(match (range, days.min(), days.max()) {
        (Some((lo, hi)), Some(a), Some(b)) => Some((lo.min(a), hi.max(b))),
        (None, Some(a), Some(b)) => Some((a, b)),
        (range, _, _) => range,
    })
}

impl FirstPass {
    fn fold(&mut self, df: &DataFrame, what: &FirstPassColumns, copy: Option<&mut RowSink>) -> PolarsResult<()> {
        self.rows += df.height() as u64;
        self.broken.resize(what.flags.len(), 0);
        for (flag, n) in what.flags.iter().zip(self.broken.iter_mut()) {
            *n += df.column(flag)?.as_materialized_series().bool()?.num_trues() as u64;
        }
        self.unresolved.resize(what.lookups.len(), 0);
        for (lookup, n) in what.lookups.iter().zip(self.unresolved.iter_mut()) {
            *n += lookup.unresolved(df)?;
        }
        if let Some(month) = what.month {
            self.months = widen(self.months, df.column(month)?)?;
        }
        if let Some(kernel) = self.kernel.as_mut() {
            kernel.fold(df)?;
        }
        if let Some(repeated) = self.repeated.as_mut() {
            repeated.update(df)?;
        }
        if what.billing {
            self.bills = widen(self.bills, df.column(c::BILL_MONTH)?)?;
            let charges = df.column(c::TOTAL_CHARGE)?.as_materialized_series().cast(&DataType::Float64)?;
            self.charges += charges.f64()?.sum().unwrap_or(0.0);
        }
        if let Some(copy) = copy {
            copy(&df.select(what.canonical.iter().cloned())?)?;
        }
        Ok(())
    }
}

/// Pass 1 over `lf` (a table's normalized rows, with the flags of `what`),
/// feeding `copier`'s copy of `table` from the same batches when it takes one, and
/// the key checks there are.
fn first_pass(
    lf: LazyFrame,
    table: Table,
    what: FirstPassColumns,
    (kernel, repeated): (Option<keys::Kernel>, Option<keys::RepeatedKeys>),
    copier: &mut dyn Copier,
) -> PolarsResult<FirstPass> {
    let sink = copier.sink(table)?;
    let copying = sink.is_some();
    let start = FirstPass { kernel, repeated, ..FirstPass::default() };
    let folded = crate::fold_batches(lf, (start, sink), move |(pass, sink), df| pass.fold(&df, &what, sink.as_mut()));
    let written = if copying { copier.written(table) } else { Ok(()) };
    let (pass, _) = folded?;
    written?;
    Ok(pass)
}

/// A reference to a reference table (markets, the service catalog: a few rows), to
/// look up in its keys as the first pass reads the rows.
struct Lookup {
    /// Which of `foreign_keys(table)` it is.
    index: usize,
    column: &'static str,
    keys: std::collections::HashSet<String>,
}

impl Lookup {
    /// Rows of `df` whose reference is set and not a key.
    fn unresolved(&self, df: &DataFrame) -> PolarsResult<u64> {
        let values = df.column(self.column)?.cast(&DataType::String)?;
        Ok(values.str()?.iter().flatten().filter(|v| !self.keys.contains(*v)).count() as u64)
    }
}

/// The references of `table` to reference tables. The first pass counts those that do
/// not resolve, so the join that names the unknown values runs only when there are some.
fn reference_lookups(table: Table, out: &Validated) -> PolarsResult<Vec<Lookup>> {
    let mut lookups = Vec::new();
    for (index, fk) in foreign_keys(table).into_iter().enumerate() {
        let Some(parent) = out.tables.get(&fk.parent) else { continue };
        if crate::partition::customer_column(fk.parent).is_some() {
            continue;
        }
        let keys = collect_streaming(parent.clone().select([col(fk.parent_column).cast(DataType::String)]))?;
        let keys = keys.column(fk.parent_column)?.str()?.iter().flatten().map(str::to_string).collect();
        lookups.push(Lookup { index, column: fk.column, keys });
    }
    Ok(lookups)
}

/// The customer ids of the clean customers table.
fn clean_ids(customers: &LazyFrame) -> PolarsResult<Vec<i64>> {
    let df = collect_streaming(customers.clone().select([col(c::CUSTOMER_ID)]))?;
    Ok(df.column(c::CUSTOMER_ID)?.i64()?.iter().flatten().collect())
}

/// A required table without a row: nothing can be computed from it.
fn empty_table(r: &TableReport) -> SchemaProblem {
    SchemaProblem {
        table: r.table,
        location: r.location.clone(),
        column: "*".into(),
        rule: "empty_table".into(),
        detail: format!("`{}` has no rows; the run needs at least one", r.table),
    }
}

fn validate_table(
    spec: &TableSpec,
    raw: &RawTable,
    (plain, with_files): (Normalized, Normalized),
    (customers, copier): (Option<Arc<keys::Customers>>, &mut dyn Copier),
    out: &mut Validated,
) -> PolarsResult<()> {
    let table = spec.table;
    let mut rules = plain.parse_rules.clone();
    rules.extend(row_rules(spec));

    // Pass 1: row count, the number of rows breaking each row rule, the range of a
    // (customer, month) key's months and the per-customer key checks; folded from the
    // batches in Rust so that the bucket copy can take the same batches (an aggregate
    // beside a sink made polars buffer the scan for the slower one: 4.9 GiB at 3M
    // customers).
    let months = month_key(spec);
    let (names, flags): (Vec<String>, Vec<Expr>) = rules
        .iter()
        .enumerate()
        .map(|(i, r)| (format!("__v{i}"), r.violates.clone().fill_null(lit(false)).alias(format!("__v{i}"))))
        .unzip();
    let lookups = reference_lookups(table, out)?;
    let looked_up: Vec<usize> = lookups.iter().map(|l| l.index).collect();
    // The customer kernel (unknown customers, and repeated months while their bit
    // sets stay small) reads the first pass's batches.
    let kernel = match customers {
        Some(known) if customer_reference(table).is_some() => {
            Some(keys::Kernel::new(known, c::CUSTOMER_ID, months.map(|(_, m)| m)))
        }
        _ => None,
    };
    // A unique key of the customer, alone or with other columns: repeated keys found
    // the same way.
    let repeated = match (spec.key, customer_key_parts(spec)) {
        (_, Some(rest)) if spec.unique_key && months.is_none() => Some(keys::RepeatedKeys::new(c::CUSTOMER_ID, rest)),
        ([only], None) if spec.unique_key && *only == c::CUSTOMER_ID => {
            Some(keys::RepeatedKeys::new(c::CUSTOMER_ID, Vec::new()))
        }
        _ => None,
    };
    let what = FirstPassColumns {
        flags: names,
        lookups,
        month: months.map(|(_, m)| m),
        billing: table == Table::Billing,
        canonical: spec.columns.iter().map(|col_spec| col_spec.name.into()).collect(),
    };
    let started = std::time::Instant::now();
    let mut pass = first_pass(plain.lf.clone().with_columns(flags), table, what, (kernel, repeated), copier)?;
    let found = pass.kernel.take().map(keys::Kernel::finish).transpose()?;
    let repeated = pass.repeated.take().map(keys::RepeatedKeys::finish).transpose()?;
    tracing::debug!("{table}: row rules and per-customer keys in {:.2}s", started.elapsed().as_secs_f64());
    let started = std::time::Instant::now();
    let rows_read = pass.rows;
    let broken: Vec<(usize, u64)> = pass.broken.iter().copied().enumerate().filter(|&(_, n)| n > 0).collect();
    // How many rows of each looked-up reference did not resolve.
    let unresolved: BTreeMap<usize, u64> = looked_up.into_iter().zip(pass.unresolved.iter().copied()).collect();

    // Pass 2, when needed: a group-by per remaining check.
    // The month number grows with the day: the extremes' numbers, not every row's.
    let number = crate::dates::month_number;
    let range = pass.months.map_or((None, None), |(lo, hi)| (Some(number(lo)), Some(number(hi))));
    let mut key_violations = Vec::new();
    if spec.unique_key {
        let dups = match (months, &found) {
            (Some(_), Some(f)) if f.months_checked => rows_of_keys(plain.lf.clone(), &f.repeated, spec.key)?,
            (Some((customer, month)), _) => {
                let flagged =
                    MonthsByCustomer::collect(plain.lf.clone(), customer, month, range)?.months_seen_twice()?;
                rows_of_keys(plain.lf.clone(), &flagged, spec.key)?
            }
            (None, _) => match &repeated {
                Some(flagged) => rows_of_keys(plain.lf.clone(), flagged, spec.key)?,
                None => duplicate_keys(plain.lf.clone(), spec.key)?,
            },
        };
        if dups.height() > 0 {
            key_violations.push(KeyViolation {
                column: spec.key[spec.key.len() - 1],
                rule: "duplicate_key",
                description: format!("({}) must be unique", spec.key.join(", ")),
                keys: dups,
                join_on: spec.key.to_vec(),
            });
        }
    }
    for (k, fk) in foreign_keys(table).into_iter().enumerate() {
        let Some(parent) = out.tables.get(&fk.parent) else { continue };
        if unresolved.get(&k) == Some(&0) {
            continue;
        }
        let orphans = match &found {
            Some(f) if customer_reference(table) == Some(fk.rule) => f.unknown.clone(),
            _ => unknown_references(references(plain.lf.clone(), fk.column), parent.clone(), &fk)?,
        };
        if orphans.height() > 0 {
            key_violations.push(KeyViolation {
                column: fk.column,
                rule: fk.rule,
                description: format!("`{}` must be a `{}` of {}", fk.column, fk.parent_column, fk.parent),
                keys: orphans,
                join_on: vec![fk.column],
            });
        }
    }

    tracing::debug!("{table}: other keys and references in {:.2}s", started.elapsed().as_secs_f64());
    let canonical: Vec<Expr> = spec.columns.iter().map(|col_spec| col(col_spec.name)).collect();
    if broken.is_empty() && key_violations.is_empty() {
        if let (Table::Billing, Some((customers_billed, months))) = (table, found.as_ref().and_then(|f| f.seen)) {
            out.billing = Some(crate::summary::BillingSummary {
                rows: rows_read,
                customers_billed,
                first_month: pass.bills.and_then(|b| crate::dates::from_epoch_days(b.0)),
                last_month: pass.bills.and_then(|b| crate::dates::from_epoch_days(b.1)),
                months,
                total_charge: pass.charges,
            });
        }
        out.tables.insert(table, plain.lf.select(canonical));
        out.report.tables.push(TableReport {
            table,
            location: raw.location.clone(),
            files: raw.files,
            rows_read,
            rows_rejected: 0,
        });
        return Ok(());
    }

    // Quote a few offending rows of every broken rule.
    for &(i, n) in &broken {
        let rule = &rules[i];
        let examples = row_examples(spec, with_files.lf.clone().filter(rule.violates.clone()), rule.column)?;
        out.report.violations.push(Violation {
            table,
            location: raw.location.clone(),
            column: rule.column.to_string(),
            rule: rule.rule.to_string(),
            description: rule.description.clone(),
            rows: n,
            examples: examples.0,
            files: examples.1,
        });
    }
    for kv in &key_violations {
        let head = kv.keys.head(Some(EXAMPLES));
        let on = exprs(&kv.join_on);
        let offending = with_files.lf.clone().join(head.lazy(), on.clone(), on, JoinArgs::new(JoinType::Semi));
        let examples = row_examples(spec, offending, kv.column)?;
        out.report.violations.push(Violation {
            table,
            location: raw.location.clone(),
            column: kv.column.to_string(),
            rule: kv.rule.to_string(),
            description: kv.description.clone(),
            rows: rows_sum(&kv.keys)?,
            examples: examples.0,
            files: examples.1,
        });
    }

    // Flag every row, then split into clean rows and rejects.
    let flag = |lf: LazyFrame| -> LazyFrame {
        let mut flags = Vec::new();
        let mut labels = Vec::new();
        let mut lf = lf.with_columns(
            broken
                .iter()
                .map(|&(i, _)| rules[i].violates.clone().fill_null(lit(false)).alias(format!("__v{i}")))
                .collect::<Vec<_>>(),
        );
        for &(i, _) in &broken {
            flags.push(format!("__v{i}"));
            labels.push(format!("{}:{}", rules[i].column, rules[i].rule));
        }
        for (k, kv) in key_violations.iter().enumerate() {
            let name = format!("__k{k}");
            let keys = kv.keys.clone().lazy().select(exprs(&kv.join_on)).with_column(lit(true).alias(&name));
            let on = exprs(&kv.join_on);
            lf = lf
                .join(keys, on.clone(), on, JoinArgs::new(JoinType::Left))
                .with_column(col(&name).fill_null(lit(false)));
            flags.push(name);
            labels.push(format!("{}:{}", kv.column, kv.rule));
        }
        let any_bad = flags.iter().map(|f| col(f.as_str())).reduce(Expr::or).unwrap_or(lit(false));
        let reasons = concat_str(
            flags
                .iter()
                .zip(&labels)
                .map(|(f, l)| when(col(f.as_str())).then(lit(l.clone())).otherwise(lit(NULL).cast(DataType::String)))
                .collect::<Vec<_>>(),
            ",",
            true,
        );
        lf.with_columns([any_bad.alias("__bad"), reasons.alias(REJECT_RULE)])
    };
    out.tables.insert(table, flag(plain.lf).filter(col("__bad").not()).select(canonical.clone()));
    let mut reject_cols = canonical;
    reject_cols.push(col(REJECT_RULE));
    reject_cols.push(col(c::SOURCE_FILE));
    let rejects = flag(with_files.lf).filter(col("__bad")).select(reject_cols);
    let rows_rejected = collect_streaming(rejects.clone().select([len().cast(DataType::UInt64).alias(ROWS)]))?
        .column(ROWS)?
        .u64()?
        .get(0)
        .unwrap_or(0);
    out.rejects.insert(table, rejects);
    out.report.tables.push(TableReport {
        table,
        location: raw.location.clone(),
        files: raw.files,
        rows_read,
        rows_rejected,
    });
    Ok(())
}

/// The (customer, month) columns of a unique key made of exactly those, e.g. billing's
/// (customer_id, bill_month): checked by [`MonthsByCustomer`].
fn month_key(spec: &TableSpec) -> Option<(&'static str, &'static str)> {
    match spec.key {
        [customer, month] if spec.unique_key && crate::partition::customer_column(spec.table) == Some(*customer) => {
            Some((customer, month))
        }
        _ => None,
    }
}

/// The rule of `table`'s reference from `customer_id` to the customers, if it has one.
fn customer_reference(table: Table) -> Option<&'static str> {
    foreign_keys(table)
        .into_iter()
        .find(|fk| fk.column == c::CUSTOMER_ID && fk.parent == Table::Customers)
        .map(|fk| fk.rule)
}

/// The columns after the customer of a key of several columns that starts with the
/// customer, when each is text or a number (what [`keys::RepeatedKeys`]
/// hashes).
fn customer_key_parts(spec: &TableSpec) -> Option<Vec<(&'static str, keys::KeyPart)>> {
    let (first, rest) = spec.key.split_first()?;
    if *first != c::CUSTOMER_ID || rest.is_empty() {
        return None;
    }
    let part = |name: &&'static str| {
        let kind = spec.columns.iter().find(|column| column.name == *name)?.kind;
        match kind {
            Kind::Utf8 => Some((*name, keys::KeyPart::Text)),
            Kind::Int | Kind::Date | Kind::Timestamp => Some((*name, keys::KeyPart::Number)),
            Kind::Float | Kind::Bool => None,
        }
    };
    rest.iter().map(part).collect()
}

/// The keys on more than one row among the rows of the customers in `flagged` (a
/// one-column frame of customer ids), with `__rows`.
fn rows_of_keys(lf: LazyFrame, flagged: &DataFrame, key: &[&'static str]) -> PolarsResult<DataFrame> {
    if flagged.height() == 0 {
        let schema = lf.select(exprs(key)).collect_schema()?;
        let mut empty = DataFrame::empty_with_schema(&schema);
        empty.with_column(Column::new_empty(ROWS.into(), &DataType::UInt64))?;
        return Ok(empty);
    }
    let on = [col(key[0])];
    duplicate_keys(lf.join(flagged.clone().lazy(), on.clone(), on, JoinArgs::new(JoinType::Semi)), key)
}

/// Keys that occur more than once, with `__rows` (a key with a null is not checked).
fn duplicate_keys(lf: LazyFrame, key: &[&'static str]) -> PolarsResult<DataFrame> {
    collect_streaming(
        lf.filter(all_not_null(key))
            .group_by(exprs(key))
            .agg([len().cast(DataType::UInt64).alias(ROWS)])
            .filter(col(ROWS).gt(lit(1u64))),
    )
}

/// One row per customer of a table keyed by (customer, month): its rows, its rows with
/// a month, and the month bits that tell whether a month repeats. For month ranges too
/// wide for the bit sets of [`keys::Kernel`].
///
/// Per customer: the row count and, for each 31-month word of the months present, the
/// sum of 2^(month index within the word). A sum of powers of two has as many one bits
/// as terms exactly when no power repeats (a repeated power carries, and
/// popcount(c) < c for every count c >= 2), so a customer has a month twice iff the one
/// bits of their sums fall short of their rows. Counts and sums stream with a few
/// bytes of state per customer; a per-customer `n_unique` of the months holds every
/// row (8 GB at 3 million customers x 36 months).
struct MonthsByCustomer {
    customer: &'static str,
    /// customer, `__dated` (rows with a month), `__w0..`.
    per_customer: DataFrame,
}

impl MonthsByCustomer {
    /// `range`: the lowest and highest [`crate::dates::month_number`] of the table (None: no months).
    fn collect(
        lf: LazyFrame,
        customer: &'static str,
        month: &'static str,
        range: (Option<i64>, Option<i64>),
    ) -> PolarsResult<Self> {
        let mut aggs = vec![col(month).is_not_null().cast(DataType::UInt64).sum().alias("__dated")];
        let mut lf = lf.filter(col(customer).is_not_null());
        if let (Some(lo), Some(hi)) = range {
            lf = lf.with_column((crate::dates::month_number_expr(col(month)) - lit(lo)).alias("__k"));
            for w in 0..=(hi - lo) / WORD {
                aggs.push(month_bit(col("__k"), w).sum().alias(format!("__w{w}")));
            }
        }
        let per_customer = collect_streaming(lf.group_by([col(customer)]).agg(aggs))?;
        Ok(Self { customer, per_customer })
    }

    /// The customers that have a month on more than one row, as a one-column frame.
    fn months_seen_twice(&self) -> PolarsResult<DataFrame> {
        let dated = self.per_customer.column("__dated")?.u64()?;
        let mut ones = vec![0u64; self.per_customer.height()];
        for c in self.per_customer.columns().iter().filter(|c| c.name().starts_with("__w")) {
            for (acc, v) in ones.iter_mut().zip(c.i64()?.iter()) {
                *acc += v.map_or(0, |v| u64::from(v.count_ones()));
            }
        }
        let mask: BooleanChunked = dated.iter().zip(&ones).map(|(n, ones)| Some(n.unwrap_or(0) != *ones)).collect();
        self.per_customer.select([self.customer])?.filter(&mask)
    }
}

/// Months per word of [`MonthsByCustomer`]: 31 distinct powers of two sum below 2^31.
const WORD: i64 = 31;

/// 2^(k mod 31) where month offset `k` falls in word `w` (k div 31 = w), else 0.
fn month_bit(k: Expr, w: i64) -> Expr {
    k.map_with_fmt_str(
        move |c| {
            let k = c.as_materialized_series().cast(&DataType::Int64)?;
            let bits: Int64Chunked = k.i64()?.apply_nonnull_values_generic(DataType::Int64, |k| {
                if k.div_euclid(WORD) == w { 1i64 << k.rem_euclid(WORD) } else { 0 }
            });
            Ok(bits.with_name(c.name().clone()).into_series().into_column())
        },
        |_, f| Ok(Field::new(f.name().clone(), DataType::Int64)),
        "month_bit",
    )
}

/// Each non-null value of `column` with `__rows`, its row count.
fn references(lf: LazyFrame, column: &str) -> LazyFrame {
    lf.filter(col(column).is_not_null()).group_by([col(column)]).agg([len().cast(DataType::UInt64).alias(ROWS)])
}

/// The referenced values (`fk.column`, `__rows`) that are not keys of the (clean)
/// parent, sorted.
fn unknown_references(values: LazyFrame, parent: LazyFrame, fk: &ForeignKey) -> PolarsResult<DataFrame> {
    let keys = parent.select([col(fk.parent_column).alias(fk.column)]).unique(None, UniqueKeepStrategy::Any);
    let found =
        collect_streaming(values.join(keys, [col(fk.column)], [col(fk.column)], JoinArgs::new(JoinType::Anti)))?;
    found.sort([fk.column], SortMultipleOptions::default())
}

/// Up to `EXAMPLES` offending rows as text, and the files they came from.
fn row_examples(spec: &TableSpec, offending: LazyFrame, column: &str) -> PolarsResult<(Vec<String>, Vec<String>)> {
    let mut shown: Vec<&str> = spec.key.to_vec();
    if !shown.contains(&column) {
        shown.push(column);
    }
    let mut select: Vec<Expr> = shown.iter().map(|k| col(*k)).collect();
    select.push(col(c::SOURCE_FILE));
    let df = offending.select(select).limit(EXAMPLES as IdxSize).collect()?;
    let mut examples = Vec::new();
    let mut files: Vec<String> = Vec::new();
    for i in 0..df.height() {
        let mut parts = Vec::new();
        for name in &shown {
            let value = df.column(name)?.get(i)?;
            parts.push(format!("{name}={}", show(&value)));
        }
        examples.push(parts.join(" "));
        if let AnyValue::String(f) = df.column(c::SOURCE_FILE)?.get(i)?
            && !files.iter().any(|x| x == f)
        {
            files.push(f.to_string());
        }
    }
    Ok((examples, files))
}

fn show(value: &AnyValue) -> String {
    match value {
        AnyValue::Null => "null".into(),
        AnyValue::String(s) => format!("{s:?}"),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(df: DataFrame) -> RawTable {
        let schema = df.schema().as_ref().clone();
        let with_files = df.clone().lazy().with_column(lit("mem.parquet").alias(c::SOURCE_FILE));
        RawTable { lf: df.lazy(), lf_with_files: with_files, schema, location: "mem".into(), files: 1 }
    }

    fn dataset(customers: DataFrame, billing: DataFrame) -> RawDataset {
        let mut d = RawDataset::default();
        d.tables.insert(Table::Customers, raw(customers));
        d.tables.insert(Table::Billing, raw(billing));
        d
    }

    fn customers() -> DataFrame {
        df!(
            "customer_id" => [1i64, 2, 3],
            "signup_date" => ["2023-01-05", "2023-02-01", "2023-03-01"],
            "market_id" => ["a", "a", "b"],
            "plan_type" => ["prepaid", "postpaid", "postpaid"],
        )
        .unwrap()
    }

    fn billing(charges: [f64; 3], ids: [i64; 3]) -> DataFrame {
        df!(
            "customer_id" => ids,
            "bill_month" => ["2024-01-01", "2024-01-01", "2024-02-01"],
            "total_charge" => charges,
        )
        .unwrap()
    }

    #[test]
    fn a_clean_billing_table_is_summarised_on_the_way() {
        // Customers 1 and 2 in January, 1 in February: 2 customers, 2 months, 35.5.
        let v = validate(dataset(customers(), billing([10.0, 20.0, 5.5], [1, 2, 1]))).unwrap();
        let found = v.billing.clone().expect("summarised on the way");
        let read = crate::summary::billing_summary(&v.tables[&Table::Billing]).unwrap();
        assert_eq!(format!("{found:?}"), format!("{read:?}"));
        assert_eq!((found.rows, found.customers_billed, found.months, found.total_charge), (3, 2, 2, 35.5));
        assert_eq!(found.first_month.map(|d| d.to_string()).as_deref(), Some("2024-01-01"));
        assert_eq!(found.last_month.map(|d| d.to_string()).as_deref(), Some("2024-02-01"));
        // With a row rejected the bills are read again, clean: the summary does not
        // count the rejected row.
        let v = validate(dataset(customers(), billing([10.0, -20.0, 5.5], [1, 2, 1]))).unwrap();
        assert!(v.billing.is_none());
    }

    fn rules_broken(v: &Validated) -> Vec<String> {
        v.report.violations.iter().map(|x| format!("{}.{}:{}={}", x.table, x.column, x.rule, x.rows)).collect()
    }

    #[test]
    fn a_service_held_twice_from_one_date_is_a_duplicate_key() {
        // Customer 1 has "tv" from March twice; the other rows share two of the three
        // key columns with another row, not all three.
        let services = df!(
            "customer_id" => [1i64, 1, 1, 1, 2, 2],
            "service" => ["tv", "tv", "tv", "net", "tv", "net"],
            "start_date" => ["2024-03-01", "2024-03-01", "2024-04-01", "2024-03-01", "2024-03-01", "2024-03-01"],
        )
        .unwrap();
        let mut d = dataset(customers(), billing([1.0, 2.0, 3.0], [1, 2, 2]));
        d.tables.insert(Table::Services, raw(services.clone()));
        let catalog = df!("service" => ["tv", "net"], "monthly_price" => [10.0, 20.0], "monthly_margin" => [3.0, 5.0]);
        d.tables.insert(Table::ServiceCatalog, raw(catalog.unwrap()));
        let v = validate(d).unwrap();
        assert_eq!(rules_broken(&v), ["services.start_date:duplicate_key=2"]);
        let examples = v.report.violations[0].examples.join(" ");
        assert!(examples.contains("customer_id=1") && examples.contains("\"tv\""), "{examples}");
        // The customers the hash pass flags: 1 only.
        let rest = [(c::SERVICE, keys::KeyPart::Text), (c::START_DATE, keys::KeyPart::Number)];
        let typed = services.lazy().with_column(col(c::START_DATE).cast(DataType::Date));
        let flagged = keys::customers_with_repeated_keys(typed, c::CUSTOMER_ID, &rest).unwrap();
        assert_eq!(flagged.column(c::CUSTOMER_ID).unwrap().i64().unwrap().to_vec(), [Some(1)]);
    }

    #[test]
    fn clean_dataset_passes() {
        let v = validate(dataset(customers(), billing([1.0, 2.0, 3.0], [1, 2, 2]))).unwrap();
        assert!(v.report.is_clean(), "{:?}", rules_broken(&v));
        assert_eq!(v.report.tables[0].rows_read, 3);
        let billing = v.tables[&Table::Billing].clone().collect().unwrap();
        assert_eq!(billing.height(), 3);
    }

    #[test]
    fn negative_charge_duplicate_and_orphan_are_reported_and_rejected() {
        // Row 1: total_charge -1 (non_negative). Rows 2, 3: customer 9 is unknown.
        let b = billing([-1.0, 2.0, 3.0], [1, 9, 9]);
        let v = validate(dataset(customers(), b)).unwrap();
        assert_eq!(rules_broken(&v), ["billing.total_charge:non_negative=1", "billing.customer_id:unknown_customer=2"]);
        assert_eq!(v.report.violations[1].examples[0], "customer_id=9 bill_month=2024-01-01");
        assert_eq!(v.tables[&Table::Billing].clone().collect().unwrap().height(), 0);
        let rejects = v.rejects[&Table::Billing].clone().collect().unwrap();
        assert_eq!(rejects.height(), 3);
        assert_eq!(v.report.rows_rejected(), 3);
    }

    #[test]
    fn duplicate_composite_key() {
        let b = df!(
            "customer_id" => [1i64, 1, 2],
            "bill_month" => ["2024-01-01", "2024-01-01", "2024-01-01"],
            "total_charge" => [1.0, 1.0, 1.0],
        )
        .unwrap();
        let v = validate(dataset(customers(), b)).unwrap();
        assert_eq!(rules_broken(&v), ["billing.bill_month:duplicate_key=2"]);
    }

    #[test]
    fn repeated_months_are_found_over_any_span() {
        // A span the kernel's bit sets hold (2 years), and one they do not (40 years:
        // the group-by checks); customer 9 is unknown in both.
        for far in ["2022-03-01", "1984-03-01"] {
            let b = df!(
                "customer_id" => [1i64, 1, 2, 9],
                "bill_month" => ["2024-03-01", "2024-03-01", far, "2024-03-01"],
                "total_charge" => [1.0, 1.0, 1.0, 1.0],
            )
            .unwrap();
            let v = validate(dataset(customers(), b)).unwrap();
            assert_eq!(
                rules_broken(&v),
                ["billing.bill_month:duplicate_key=2", "billing.customer_id:unknown_customer=1"],
                "{far}"
            );
        }
    }

    #[test]
    fn months_seen_twice_is_exact_across_words() {
        // 1: three months, no repeat. 2: January twice. 3: months 38 months apart (other
        // words), no repeat. 4: March twice and a gap (as many rows as months spanned).
        // 5: month index 31 (the second word) twice, beside index 0.
        let d = |s: &str| chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap();
        let rows = [
            (1, "2020-01-01"),
            (1, "2020-02-01"),
            (1, "2020-03-01"),
            (2, "2020-01-01"),
            (2, "2020-01-01"),
            (3, "2020-01-01"),
            (3, "2023-03-01"),
            (4, "2020-03-01"),
            (4, "2020-03-01"),
            (4, "2020-05-01"),
            (5, "2020-01-01"),
            (5, "2022-08-01"),
            (5, "2022-08-01"),
        ];
        let df = df!(
            "customer_id" => rows.iter().map(|r| r.0 as i64).collect::<Vec<_>>(),
            "bill_month" => rows.iter().map(|r| d(r.1)).collect::<Vec<_>>(),
        )
        .unwrap();
        let flagged = by_customer(df.lazy()).months_seen_twice().unwrap();
        let mut ids: Vec<i64> = flagged.column("customer_id").unwrap().i64().unwrap().iter().flatten().collect();
        ids.sort();
        assert_eq!(ids, [2, 4, 5]);
    }

    /// The per-customer pass over billing rows, with the month range pass 1 finds.
    fn by_customer(billing: LazyFrame) -> MonthsByCustomer {
        let range = billing
            .clone()
            .select([
                crate::dates::month_number_expr(col("bill_month")).min().alias("lo"),
                crate::dates::month_number_expr(col("bill_month")).max().alias("hi"),
            ])
            .collect()
            .unwrap();
        let at = |name: &str| range.column(name).unwrap().i64().unwrap().get(0);
        MonthsByCustomer::collect(billing, "customer_id", "bill_month", (at("lo"), at("hi"))).unwrap()
    }

    #[test]
    fn the_group_by_checks_find_repeated_months_and_unknown_customers() {
        // The checks for month ranges too wide for the kernel's bit sets. 200 customers;
        // billing with a duplicate month for 7 of them, 11 unknown ids, and a row
        // without a month (not a duplicate, still a reference).
        let ids: Vec<i64> = (1..=200).collect();
        let customers = df!("customer_id" => &ids).unwrap();
        let month = |m: &str| Some(chrono::NaiveDate::parse_from_str(m, "%Y-%m-%d").unwrap());
        let mut bill_ids: Vec<i64> = ids.clone();
        let mut months = vec![month("2024-01-01"); ids.len()];
        for id in [3i64, 17, 50, 51, 120, 199, 200] {
            bill_ids.push(id);
            months.push(month("2024-01-01"));
        }
        for id in 1000..1011 {
            bill_ids.push(id);
            months.push(month("2024-02-01"));
        }
        bill_ids.push(3000);
        months.push(None);
        let billing = df!("customer_id" => &bill_ids, "bill_month" => &months).unwrap();
        let flagged = by_customer(billing.clone().lazy()).months_seen_twice().unwrap();
        let dups = rows_of_keys(billing.clone().lazy(), &flagged, &["customer_id", "bill_month"]).unwrap();
        let mut dup_ids: Vec<i64> = dups.column("customer_id").unwrap().i64().unwrap().iter().flatten().collect();
        dup_ids.sort();
        assert_eq!(dup_ids, [3, 17, 50, 51, 120, 199, 200]);
        assert_eq!(rows_sum(&dups).unwrap(), 14);
        let fk = foreign_keys(Table::Billing).remove(0);
        let values = references(billing.lazy(), "customer_id");
        let orphans = unknown_references(values, customers.clone().lazy(), &fk).unwrap();
        let orphan_ids: Vec<i64> = orphans.column("customer_id").unwrap().i64().unwrap().iter().flatten().collect();
        assert_eq!(orphan_ids, (1000..1011).chain([3000]).collect::<Vec<_>>());
        assert_eq!(duplicate_keys(customers.lazy(), &["customer_id"]).unwrap().height(), 0);
    }
}
