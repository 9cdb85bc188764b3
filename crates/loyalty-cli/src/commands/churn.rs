//! `loyalty churn`: train and score (out of time), or cross-validate one snapshot.

use std::io::Write;
use std::path::Path;

use loyalty_pipeline::churn::evaluate::cross_validate;
use loyalty_pipeline::churn::{PlanDesigns, fit_churn};
use loyalty_pipeline::dataset::{default_as_of, load_validated};
use loyalty_pipeline::{Overrides, RunConfig};

use crate::cli::{ChurnArgs, ChurnCommand, ChurnEvalArgs, ChurnTrainArgs, Format};
use crate::settings::{data_options, resolve};

pub fn run(args: ChurnArgs) -> anyhow::Result<()> {
    match args.command {
        ChurnCommand::Train(a) => train(a),
        ChurnCommand::Evaluate(a) => evaluate(a),
    }
}

/// The settings with T resolved against the data: pinned, or the end of the last
/// billed month.
fn at_t(mut cfg: RunConfig, v: &loyalty_contract::Validated) -> anyhow::Result<RunConfig> {
    if !cfg.as_of_pinned {
        cfg.model.as_of = default_as_of(v)?;
    }
    Ok(cfg)
}

fn train(a: ChurnTrainArgs) -> anyhow::Result<()> {
    let t = &a.tuning;
    let tuning = Overrides {
        trees: t.trees,
        train_snapshots: t.train_snapshots,
        max_train_rows: t.max_train_rows,
        ..Overrides::default()
    };
    let mut cfg = resolve(&a.settings, tuning)?;
    cfg.churn.keep_designs = a.designs_out.is_some();
    let inputs: Vec<&Path> = std::iter::once(a.data.data.as_path()).chain(a.settings.config.as_deref()).collect();
    if let Some(path) = &a.out {
        loyalty_io::check_output_file(path, &inputs)?;
    }
    if let Some(dir) = &a.designs_out {
        loyalty_io::check_output_file(&dir.join("postpaid_train.parquet"), &inputs)?;
    }
    let v = load_validated(&data_options(&a.data))?;
    let cfg = at_t(cfg, &v)?;
    let mut fit = fit_churn(&v, &cfg.churn, &cfg.model, None)?;
    if let Some(path) = &a.out {
        loyalty_io::write_table_atomic(&mut fit.scores, path)?;
    }
    if let Some(dir) = &a.designs_out {
        write_designs(&mut fit.designs, dir)?;
    }
    match a.format {
        Format::Json => super::print_json(&fit.report),
        Format::Human => Ok(write!(std::io::stdout(), "{}", loyalty_pipeline::text::churn_training(&fit.report))?),
    }
}

/// Every plan type's training and test rows, one Parquet file each.
fn write_designs(designs: &mut [PlanDesigns], dir: &Path) -> anyhow::Result<()> {
    for d in designs {
        let plan = d.plan.as_str();
        loyalty_io::write_table_atomic(&mut d.train, &dir.join(format!("{plan}_train.parquet")))?;
        loyalty_io::write_table_atomic(&mut d.test, &dir.join(format!("{plan}_test.parquet")))?;
    }
    Ok(())
}

fn evaluate(a: ChurnEvalArgs) -> anyhow::Result<()> {
    let cfg = resolve(&a.settings, Overrides { folds: a.folds, trees: a.trees, ..Overrides::default() })?;
    let v = load_validated(&data_options(&a.data))?;
    let cfg = at_t(cfg, &v)?;
    let cv = cross_validate(&v, &cfg.churn, &cfg.model)?;
    match a.format {
        Format::Json => super::print_json(&cv),
        Format::Human => Ok(write!(std::io::stdout(), "{}", loyalty_pipeline::text::cross_validation(&cv))?),
    }
}
