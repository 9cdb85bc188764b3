//! `loyalty run`: every stage of the pipeline, outputs swapped into place at the end.

use std::time::Instant;

use anyhow::Context;
use polars::prelude::{IntoLazy, col};
use serde::Serialize;
use tracing::info;

use crate::cli::RunArgs;
use crate::commands::features::feature_params;
use crate::commands::{load_validated, write_rejects};

#[derive(Serialize)]
struct Stage {
    stage: &'static str,
    wall_seconds: f64,
}

#[derive(Serialize)]
struct RunSummary<'a> {
    version: &'static str,
    data: String,
    lenient: bool,
    as_of: chrono::NaiveDate,
    params: &'a loyalty_features::FeatureParams,
    dataset: &'a loyalty_contract::summary::DatasetSummary,
    active_customers_at_as_of: usize,
    /// Gini coefficient of monthly margin over the active base (the Lorenz curve is in lorenz.csv).
    margin_gini: f64,
    stages: Vec<Stage>,
    wall_seconds: f64,
}

pub fn run(args: RunArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    let mut stages = Vec::new();
    let mut lap = Instant::now();
    let mut stage = |name: &'static str, lap: &mut Instant| {
        stages.push(Stage { stage: name, wall_seconds: lap.elapsed().as_secs_f64() });
        info!("stage {name} done in {:.2}s", lap.elapsed().as_secs_f64());
        *lap = Instant::now();
    };

    let validated = load_validated(&args.data)?;
    let summary = loyalty_contract::summary::summarize(&validated).context("summarising the dataset")?;
    stage("validate", &mut lap);

    // The summary already found the last billed month: no second scan for T.
    let params = feature_params(&args.model, &validated, summary.billing.last_month)?;
    let (customers, curves) =
        loyalty_features::customer_features(&validated.tables, &params).context("computing features")?;
    stage("features", &mut lap);

    // Segments: loyalty = P(still a customer h months after T), from the survival
    // curves behind CLV; split at the medians of the active base.
    use loyalty_features::segments;
    let survival = loyalty_features::names::survival_at(params.churn_horizon_months);
    let customers = customers.lazy().with_column(col(survival.as_str()).alias("loyalty")).collect()?;
    let mut customers = segments::assign(customers, "loyalty", segments::Split::Quantile(0.5), [0.05, 0.20])
        .context("assigning segments")?;
    let mut segment_table = segments::segment_table(&customers, "loyalty")?;
    let mut tier_table = segments::tier_table(&customers)?;
    let (mut lorenz, gini) = segments::lorenz(&customers)?;
    stage("segments", &mut lap);

    let staged =
        loyalty_io::OutputDir::begin(&args.out).with_context(|| format!("preparing {}", args.out.display()))?;
    if !validated.rejects.is_empty() {
        write_rejects(&validated, &staged.path().join("rejects"))?;
    }
    loyalty_io::write_parquet(&mut customers, &staged.path().join("customers.parquet"))?;
    loyalty_io::write_parquet(&mut curves.table()?, &staged.path().join("survival.parquet"))?;
    for (name, df) in [("segments", &mut segment_table), ("tiers", &mut tier_table), ("lorenz", &mut lorenz)] {
        loyalty_io::write_parquet(df, &staged.path().join(format!("{name}.parquet")))?;
        loyalty_io::write_csv(df, &staged.path().join(format!("{name}.csv")))?;
    }
    stage("write", &mut lap);
    let run_summary = RunSummary {
        version: env!("CARGO_PKG_VERSION"),
        data: args.data.data.display().to_string(),
        lenient: args.data.lenient,
        as_of: params.as_of,
        params: &params,
        dataset: &summary,
        active_customers_at_as_of: customers.height(),
        margin_gini: gini,
        stages,
        wall_seconds: started.elapsed().as_secs_f64(),
    };
    loyalty_io::write_json(&run_summary, &staged.path().join("summary.json"))?;
    let out = staged.commit().with_context(|| format!("moving outputs into {}", args.out.display()))?;
    info!("wrote {} in {:.2}s", out.display(), started.elapsed().as_secs_f64());
    Ok(())
}
