//! `loyalty validate`: check a dataset and describe it.

use std::io::Write;

use anyhow::Context;

use crate::cli::{Format, ValidateArgs};
use crate::commands::{load_validated, write_rejects};
use crate::report;

pub fn run(args: ValidateArgs) -> anyhow::Result<()> {
    let validated = load_validated(&args.data)?;
    let summary = loyalty_contract::summary::summarize(&validated).context("summarising the dataset")?;
    if let Some(dir) = &args.rejects {
        write_rejects(&validated, dir, None)?;
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
