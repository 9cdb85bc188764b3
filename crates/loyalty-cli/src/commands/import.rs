//! `loyalty import`: public datasets into the contract.

use loyalty_pipeline::import::{Source, import};
use tracing::info;

use crate::cli::{ImportArgs, ImportSource};

pub fn run(args: ImportArgs) -> anyhow::Result<()> {
    let (source, a) = match &args.source {
        ImportSource::Cdnow(a) => (Source::Cdnow, a),
        ImportSource::WaChurn(a) => (Source::WaChurn, a),
        ImportSource::MlcChurn(a) => (Source::MlcChurn, a),
    };
    let (out, what) = import(source, &a.input, &a.out)?;
    info!("imported {what} into {}", out.display());
    Ok(())
}
