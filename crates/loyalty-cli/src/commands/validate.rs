//! `loyalty validate`: check a dataset and describe it.

use std::io::Write;

use anyhow::Context;

use crate::cli::{Format, ValidateArgs};
use crate::commands::{load_validated, write_rejects};
use crate::report;

pub fn run(args: ValidateArgs) -> anyhow::Result<()> {
    let staged = match &args.rejects {
        Some(dir) => Some(loyalty_io::OutputDir::begin(dir, loyalty_io::Holds::Outputs, &[&args.data.data])?),
        None => None,
    };
    let validated = load_validated(&args.data)?;
    let summary = loyalty_contract::summary::summarize(&validated).context("summarising the dataset")?;
    if let Some(staged) = staged {
        write_rejects(&validated, staged.path(), None)?;
        staged.commit()?;
    }
    let mut out = std::io::stdout().lock();
    match args.format {
        Format::Json => {
            serde_json::to_writer_pretty(&mut out, &summary)?;
            writeln!(out)?;
        }
        Format::Human => write!(out, "{}", report::summary(&args.data.data.display().to_string(), &summary))?,
    }
    Ok(())
}
