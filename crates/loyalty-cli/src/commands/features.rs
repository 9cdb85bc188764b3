//! `loyalty features`: the per-customer feature table as of T.

use std::time::Instant;

use loyalty_pipeline::dataset::{default_as_of, load_validated};
use loyalty_pipeline::features::{Stage as FeatureStage, feature_table};
use loyalty_pipeline::{Overrides, engine};
use tracing::info;

use crate::cli::{FeaturesArgs, Stage};
use crate::settings::{data_options, engine_choice, resolve};

pub fn run(args: FeaturesArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    let cfg = resolve(&args.settings, Overrides::default())?;
    loyalty_io::check_output_file(&args.out, &[&args.data.data])?;
    let validated = load_validated(&data_options(&args.data))?;
    let mut params = cfg.model.clone();
    if !cfg.as_of_pinned {
        params.as_of = default_as_of(&validated)?;
    }
    params.engine = engine::connect(&engine_choice(&args.engine), &args.data.data, &args.out, &validated)?;
    let stage = match args.stage {
        Stage::All => FeatureStage::All,
        Stage::Aggregates => FeatureStage::Aggregates,
    };
    let mut df = feature_table(&validated, &params, stage, args.churn_scores.as_deref())?;
    loyalty_io::write_table_atomic(&mut df, &args.out)?;
    info!(
        "wrote {} customers active at {} to {} in {:.2}s",
        df.height(),
        params.as_of,
        args.out.display(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
