//! `loyalty import`: public datasets into the contract.

use anyhow::Context;
use loyalty_io::import::{ImportError, cdnow, mlc_churn, wa_churn};
use polars::prelude::{DataFrame, PolarsResult};
use tracing::info;

use crate::cli::{ImportArgs, ImportFileArgs, ImportSource};

/// The converted tables and a line for the log.
type Converted = (Vec<(&'static str, DataFrame)>, String);

/// Read `a.input`, convert it, and write the tables into `a.out` (staged, swapped in
/// whole). A malformed line is an `ImportError`: exit 1, nothing written.
fn import(
    a: &ImportFileArgs,
    convert: impl FnOnce(&[u8]) -> Result<PolarsResult<Converted>, ImportError>,
) -> anyhow::Result<()> {
    let staged = loyalty_io::OutputDir::begin(&a.out, loyalty_io::Holds::Dataset, &[&a.input])?;
    let bytes = std::fs::read(&a.input).with_context(|| format!("reading {}", a.input.display()))?;
    let (tables, what) = convert(&bytes).map_err(loyalty_io::IoError::from)?.context("building the contract tables")?;
    for (name, mut df) in tables {
        loyalty_io::write_parquet(&mut df, &staged.path().join(format!("{name}.parquet")))?;
    }
    let out = staged.commit()?;
    info!("imported {what} into {}", out.display());
    Ok(())
}

fn snapshot_note(subs: usize, churned: usize, (y, m, d): (i32, u32, u32)) -> String {
    format!("{subs} subscribers ({churned} churned), as a snapshot at {y}-{m:02}-{d:02}")
}

pub fn run(args: ImportArgs) -> anyhow::Result<()> {
    match args.source {
        ImportSource::Cdnow(a) => import(&a, |bytes| {
            let log = cdnow::parse(bytes, &a.input)?;
            Ok(cdnow::tables(&log).map(|(tables, free)| {
                let what = format!(
                    "{} purchase lines ({:?} layout); {free} line(s) of $0.00 kept out of top-ups",
                    log.purchases.len(),
                    log.layout
                );
                (tables, what)
            }))
        }),
        ImportSource::WaChurn(a) => import(&a, |bytes| {
            let subs = wa_churn::parse(bytes, &a.input)?;
            let churned = subs.iter().filter(|s| s.churn).count();
            Ok(wa_churn::tables(&subs).map(|t| (t, snapshot_note(subs.len(), churned, wa_churn::SNAPSHOT))))
        }),
        ImportSource::MlcChurn(a) => import(&a, |bytes| {
            let subs = mlc_churn::parse(bytes, &a.input)?;
            let churned = subs.iter().filter(|s| s.churn).count();
            Ok(mlc_churn::tables(&subs).map(|t| (t, snapshot_note(subs.len(), churned, mlc_churn::SNAPSHOT))))
        }),
    }
}
