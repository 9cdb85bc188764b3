//! `loyalty import`: public datasets converted into the contract.

use std::path::{Path, PathBuf};

use loyalty_io::import::{ImportError, cdnow, mlc_churn, wa_churn};
use polars::prelude::{DataFrame, PolarsResult};

use crate::error::{Context, Result};

/// The public datasets `loyalty import` knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// The CDNOW purchase log (master or 1/10 sample layout): purchases become top-ups.
    Cdnow,
    /// IBM's Telco Customer Churn sample: one snapshot of postpaid subscribers.
    WaChurn,
    /// The MLC++ telecom churn table: one snapshot of usage and care calls.
    MlcChurn,
}

/// The converted tables and a line for the log.
type Converted = (Vec<(&'static str, DataFrame)>, String);

fn snapshot_note(subs: usize, churned: usize, (y, m, d): (i32, u32, u32)) -> String {
    format!("{subs} subscribers ({churned} churned), as a snapshot at {y}-{m:02}-{d:02}")
}

fn convert(source: Source, bytes: &[u8], input: &Path) -> Result<PolarsResult<Converted>, ImportError> {
    Ok(match source {
        Source::Cdnow => {
            let log = cdnow::parse(bytes, input)?;
            cdnow::tables(&log).map(|(tables, free)| {
                let what = format!(
                    "{} purchase lines ({:?} layout); {free} line(s) of $0.00 kept out of top-ups",
                    log.purchases.len(),
                    log.layout
                );
                (tables, what)
            })
        }
        Source::WaChurn => {
            let subs = wa_churn::parse(bytes, input)?;
            let churned = subs.iter().filter(|s| s.churn).count();
            wa_churn::tables(&subs).map(|t| (t, snapshot_note(subs.len(), churned, wa_churn::SNAPSHOT)))
        }
        Source::MlcChurn => {
            let subs = mlc_churn::parse(bytes, input)?;
            let churned = subs.iter().filter(|s| s.churn).count();
            mlc_churn::tables(&subs).map(|t| (t, snapshot_note(subs.len(), churned, mlc_churn::SNAPSHOT)))
        }
    })
}

/// Read `input`, convert it, and write the tables into `out` (staged, swapped in
/// whole). A malformed line is an input error naming the line; nothing is written.
/// Returns the folder and a line describing what was imported.
pub fn import(source: Source, input: &Path, out: &Path) -> Result<(PathBuf, String)> {
    let staged = loyalty_io::OutputDir::begin(out, loyalty_io::Holds::Dataset, &[input])?;
    let bytes = std::fs::read(input).map_err(|e| loyalty_io::IoError::Io { path: input.to_path_buf(), source: e })?;
    let (tables, what) =
        convert(source, &bytes, input).map_err(loyalty_io::IoError::from)?.during("building the contract tables")?;
    for (name, mut df) in tables {
        loyalty_io::write_parquet(&mut df, &staged.path().join(format!("{name}.parquet")))?;
    }
    Ok((staged.commit()?, what))
}
