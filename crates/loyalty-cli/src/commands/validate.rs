//! `loyalty validate`: check a dataset and describe it.

use std::io::Write;

use loyalty_pipeline::Context;
use loyalty_pipeline::dataset::{load_validated, write_rejects};

use crate::cli::{Format, ValidateArgs};
use crate::settings::data_options;

pub fn run(args: ValidateArgs) -> anyhow::Result<()> {
    let staged = match &args.rejects {
        Some(dir) => Some(loyalty_io::OutputDir::begin(dir, loyalty_io::Holds::Outputs, &[&args.data.data])?),
        None => None,
    };
    let validated = load_validated(&data_options(&args.data))?;
    let summary = loyalty_contract::summary::summarize(&validated).during("summarising the dataset")?;
    if let Some(staged) = staged {
        write_rejects(&validated, staged.path(), None)?;
        staged.commit()?;
    }
    match args.format {
        Format::Json => super::print_json(&summary)?,
        Format::Human => {
            let text = loyalty_pipeline::text::summary(&args.data.data.display().to_string(), &summary);
            write!(std::io::stdout(), "{text}")?;
        }
    }
    Ok(())
}
