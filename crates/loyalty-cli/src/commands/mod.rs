//! One file per subcommand.

pub(crate) mod churn;
pub(crate) mod cluster;
pub(crate) mod features;
pub(crate) mod fit;
mod gen_data;
mod import;
mod run;
mod run_report;
mod scan;
mod validate;

use std::path::Path;
use std::time::Instant;

use anyhow::Context;
use loyalty_contract::Validated;
use tracing::{info, warn};

use crate::InputRejected;
use crate::cli::{Cli, Command, DataArgs};
use crate::report;

pub fn run(cli: Cli) -> anyhow::Result<()> {
    let data = dataset_read(&cli.command);
    // A panic (a bug, or a decoder meeting a corrupt file) becomes an error, so the
    // staging folder is removed on the way out and a corrupt input file gets named.
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| dispatch(cli)))
        .unwrap_or_else(|payload| Err(anyhow::Error::new(crate::panics::Panicked::from_payload(payload.as_ref()))));
    match (result, data) {
        (Err(e), Some(dir)) => Err(name_unreadable_file(e, &dir)),
        (result, _) => result,
    }
}

/// The dataset folder a command reads, if it reads one.
fn dataset_read(command: &Command) -> Option<std::path::PathBuf> {
    match command {
        Command::Validate(a) => Some(a.data.data.clone()),
        Command::Features(a) => Some(a.data.data.clone()),
        Command::Run(a) => Some(a.data.data.clone()),
        Command::Churn(a) => match &a.command {
            crate::cli::ChurnCommand::Train(t) => Some(t.data.data.clone()),
            crate::cli::ChurnCommand::Evaluate(e) => Some(e.data.data.clone()),
        },
        _ => None,
    }
}

/// Polars reports a page it cannot decode without the file; when a command failed on
/// a Polars error, look for the input file that cannot be decoded and name it (the
/// input's fault, exit 1) instead.
fn name_unreadable_file(err: anyhow::Error, data: &Path) -> anyhow::Error {
    let from_polars = err.chain().any(|e| {
        e.downcast_ref::<crate::panics::Panicked>().is_some()
            || e.downcast_ref::<polars::prelude::PolarsError>().is_some()
            || matches!(
                e.downcast_ref::<loyalty_contract::ContractError>(),
                Some(loyalty_contract::ContractError::Polars { .. })
            )
            || matches!(e.downcast_ref::<loyalty_io::IoError>(), Some(loyalty_io::IoError::Polars { .. }))
            || matches!(
                e.downcast_ref::<loyalty_features::FeatureError>(),
                Some(loyalty_features::FeatureError::Polars(_))
            )
    });
    // A failed write (a full disk) is not the input's fault and needs no search.
    let writing = err.chain().any(|e| {
        matches!(e.downcast_ref::<loyalty_io::IoError>(), Some(loyalty_io::IoError::Polars { context, .. }) if context.starts_with("writing"))
    });
    if !from_polars || writing || loyalty_contract::cancel::requested().is_some() {
        return err;
    }
    match loyalty_io::find_unreadable_file(data) {
        Some(unreadable) => anyhow::Error::from(unreadable).context(format!("reading dataset {}", data.display())),
        None => err,
    }
}

fn dispatch(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Gen(args) => gen_data::run(args),
        Command::Validate(args) => validate::run(args),
        Command::Features(args) => features::run(args),
        Command::Run(args) => run::run(args),
        Command::Scan(args) => scan::run(args),
        Command::Fit(args) => fit::run(args),
        Command::Import(args) => import::run(args),
        Command::Churn(args) => churn::run(args),
        Command::Cluster(args) => cluster::run(args),
    }
}

/// Open and validate a dataset. Strict: any broken rule is an error (exit 1). Lenient:
/// broken rules are logged and their rows left out of the returned tables.
pub fn load_validated(args: &DataArgs) -> anyhow::Result<Validated> {
    let started = Instant::now();
    let raw =
        loyalty_io::open_dataset(&args.data).with_context(|| format!("reading dataset {}", args.data.display()))?;
    if args.skip_validation {
        warn!("--skip-validation: row rules are not checked");
        return Ok(loyalty_contract::trust(raw)?);
    }
    let validated = loyalty_contract::validate(raw).with_context(|| format!("validating {}", args.data.display()))?;
    let report = &validated.report;
    if !report.is_clean() {
        if !args.lenient {
            return Err(InputRejected(report::violations(&report.violations)).into());
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

/// Alters a frame before it is written (e.g. pseudonymised ids).
pub type Rewrite<'a> = &'a dyn Fn(&mut polars::prelude::DataFrame) -> polars::prelude::PolarsResult<()>;

/// Write each table's rejected rows to `<dir>/<table>.parquet`: streamed, or collected
/// and passed through `rewrite` first when there is one (rejects are few).
pub fn write_rejects(validated: &Validated, dir: &Path, rewrite: Option<Rewrite>) -> anyhow::Result<()> {
    for (table, lf) in &validated.rejects {
        let path = dir.join(format!("{table}.parquet"));
        let context = || format!("writing rejects of `{table}`");
        match rewrite {
            None => loyalty_io::sink_parquet(lf.clone(), &path).with_context(context)?,
            Some(f) => {
                let mut df = lf.clone().collect().with_context(context)?;
                f(&mut df).with_context(context)?;
                loyalty_io::write_parquet(&mut df, &path).with_context(context)?;
            }
        }
    }
    Ok(())
}
