//! One file per subcommand; none imports another. Each parses nothing itself: it
//! turns its arguments into the library's inputs, calls `loyalty_pipeline`, and
//! prints the result.

mod churn;
mod cluster;
mod features;
mod fit;
mod gen_data;
mod import;
mod run;
mod scan;
mod validate;

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::cli::{ChurnCommand, Cli, Command, FitModel};

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
fn dataset_read(command: &Command) -> Option<PathBuf> {
    match command {
        Command::Validate(a) => Some(a.data.data.clone()),
        Command::Features(a) => Some(a.data.data.clone()),
        Command::Run(a) => Some(a.data.data.clone()),
        Command::Churn(a) => match &a.command {
            ChurnCommand::Train(t) => Some(t.data.data.clone()),
            ChurnCommand::Evaluate(e) => Some(e.data.data.clone()),
        },
        Command::Fit(f) => match &f.model {
            FitModel::Km(k) => Some(k.data.data.clone()),
            FitModel::Sbg(s) => s.data.clone(),
            FitModel::Bgnbd(t) | FitModel::ParetoNbd(t) | FitModel::GammaGamma(t) => t.data.clone(),
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
            || e.downcast_ref::<loyalty_pipeline::PipelineError>().is_some_and(|p| p.is_from_polars())
    });
    if !from_polars || loyalty_contract::cancel::requested().is_some() {
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

/// `value` as pretty JSON on stdout.
fn print_json(value: &impl serde::Serialize) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, value)?;
    writeln!(out)?;
    Ok(())
}
