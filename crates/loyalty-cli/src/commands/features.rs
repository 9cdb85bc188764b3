//! `loyalty features`: the per-customer feature table as of T.

use std::time::Instant;

use anyhow::Context;
use loyalty_contract::{Table, Validated, col as c, collect_streaming};
use loyalty_features::{BillingEngine, FeatureParams};
use polars::prelude::*;
use tracing::info;

use crate::cli::{BillingEngineArg, FeaturesArgs, ModelArgs, Stage};
use crate::commands::load_validated;

/// The end of the last billed month in the (clean) billing table.
pub fn default_as_of(v: &Validated) -> anyhow::Result<chrono::NaiveDate> {
    let df = collect_streaming(v.tables[&Table::Billing].clone().select([col(c::BILL_MONTH).max().alias("last")]))?;
    let days = df.column("last")?.cast(&DataType::Int32)?.i32()?.get(0).context("billing has no rows")?;
    // Polars dates are days since 1970-01-01, which is day 719,163 of the common era.
    let last = chrono::NaiveDate::from_num_days_from_ce_opt(days + 719_163).context("bill_month out of range")?;
    end_of_month(last)
}

pub fn end_of_month(first: chrono::NaiveDate) -> anyhow::Result<chrono::NaiveDate> {
    let next = first.checked_add_months(chrono::Months::new(1)).context("date overflow")?;
    next.pred_opt().context("date underflow")
}

pub fn billing_engine(arg: Option<BillingEngineArg>) -> Option<BillingEngine> {
    arg.map(|a| match a {
        BillingEngineArg::Kernel => BillingEngine::Kernel,
        BillingEngineArg::Polars => BillingEngine::Polars,
    })
}

/// Resolve the model options (flag or environment, else default) into parameters.
/// `last_bill_month`, when the caller already knows it, saves a scan of billing.
pub fn feature_params(
    args: &ModelArgs,
    v: &Validated,
    last_bill_month: Option<chrono::NaiveDate>,
) -> anyhow::Result<FeatureParams> {
    let mut p = FeatureParams {
        as_of: match (args.as_of, last_bill_month) {
            (Some(d), _) => d,
            (None, Some(last)) => end_of_month(last)?,
            (None, None) => default_as_of(v)?,
        },
        billing_engine: billing_engine(args.billing_engine).unwrap_or_default(),
        ..FeatureParams::default()
    };
    if let Some(x) = args.margin_rate {
        p.margin_rate = x;
    }
    if let Some(x) = args.discount_rate {
        p.annual_discount_rate = x;
    }
    if let Some(x) = args.valuation_months {
        p.valuation_months = x;
    }
    if let Some(x) = args.horizon_months {
        p.churn_horizon_months = x;
    }
    p.check()?;
    Ok(p)
}

/// customer_id -> `p_churn_<h>m` from a `loyalty churn train --out` file.
fn read_churn_scores(path: &std::path::Path, h: u32) -> anyhow::Result<std::collections::HashMap<i64, f64>> {
    let column = format!("p_churn_{h}m");
    let bad = |why: String| crate::InputRejected(format!("churn scores {}: {why}", path.display()));
    if !path.is_file() {
        return Err(bad("no such file".into()).into());
    }
    let df = LazyFrame::scan_parquet(PlRefPath::new(path.to_string_lossy().as_ref()), ScanArgsParquet::default())
        .and_then(|lf| {
            lf.select([col(c::CUSTOMER_ID).cast(DataType::Int64), col(column.as_str()).cast(DataType::Float64)])
                .collect()
        })
        .map_err(|e| bad(format!("needs columns customer_id and {column} (the churn horizon is {h} months): {e}")))?;
    let ids = df.column(c::CUSTOMER_ID)?.i64()?;
    let p = df.column(&column)?.f64()?;
    Ok(ids.iter().zip(p.iter()).filter_map(|(i, p)| Some((i?, p?))).collect())
}

pub fn run(args: FeaturesArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    loyalty_io::check_output_file(&args.out, &[&args.data.data])?;
    let validated = load_validated(&args.data)?;
    let mut params = feature_params(&args.model, &validated, None)?;
    params.engine = crate::commands::cluster::engine(&args.engine, &args.data.data, &args.out, &validated)?;
    let mut df = match (args.stage, &args.churn_scores) {
        (Stage::All, Some(path)) => {
            let scores = read_churn_scores(path, params.churn_horizon_months)?;
            loyalty_features::customer_features_with_churn_scores(&validated.tables, &params, &scores)
                .context("computing features")?
                .0
        }
        (Stage::All, None) => {
            loyalty_features::customer_features(&validated.tables, &params).context("computing features")?.0
        }
        (Stage::Aggregates, _) => {
            loyalty_features::customer_aggregates(&validated.tables, &params).context("computing features")?
        }
    };
    tracing::debug!("computed {} rows in {:.2}s", df.height(), started.elapsed().as_secs_f64());
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
