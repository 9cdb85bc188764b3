//! Point-in-time customer features and value as of a date T.
//!
//! Every quantity here uses only facts known at T: a bill is known once its month has
//! ended (`bill_month + 1 month <= T + 1 day`), events count when dated at or before T,
//! churn counts when `churn_date <= T`. Per-customer aggregations of the event tables
//! (billing, top-ups, interactions, surveys, referrals, services) are lazy group-bys
//! that run on the streaming engine; the steps that need the whole active base at
//! once (percentile scores, adoption rates of comparable customers, survival curves)
//! work on the one-row-per-customer table.

mod billing_kernel;
pub mod curves;
mod leaver_kernel;
pub mod leavers;
pub mod migration;
pub mod names;
pub mod offers;
mod params;
mod per_customer;
pub mod profiles;
pub mod remote;
pub mod retention;
pub mod segments;
pub mod survival;
#[cfg(test)]
mod test_rng;
mod topup_kernel;
pub mod transactions;
mod value;

use loyalty_contract::Table;
use polars::prelude::*;

pub use params::{
    BillingEngine, FeatureParams, MarginBasis, annuity_factor, last_known_bill_month, monthly_discount_rate,
};
pub use remote::{AggregateFrames, AggregateRequest, Aggregator, Engine};
pub use survival::{ChurnProbabilities, ChurnScores, SurvivalCurves, SurvivalModel};
pub use value::{VALUE_INPUTS, adoption_rates, with_survival};

#[derive(Debug, thiserror::Error)]
pub enum FeatureError {
    #[error("computing features: {0}")]
    Polars(#[from] PolarsError),
    #[error("configuration: {0}")]
    Config(String),
    #[error("the distributed engine: {0}")]
    Remote(String),
    #[error(transparent)]
    Interrupted(#[from] loyalty_contract::cancel::Interrupted),
}

/// The clean tables of a dataset (as validated), by table.
pub use loyalty_contract::Tables;

pub use loyalty_contract::epoch_days;

/// The customer partitions for a pass over every customer of `tables` (None: all at
/// once), about `params.customers_per_partition` customers each.
pub fn customer_slices(
    tables: &Tables,
    params: &FeatureParams,
) -> PolarsResult<Vec<Option<loyalty_contract::partition::Slice>>> {
    use loyalty_contract::partition::Slice;
    let customers = loyalty_contract::collect_streaming(
        tables[&Table::Customers].clone().select([len().cast(DataType::UInt64).alias("n")]),
    )?;
    let n = customers.column("n")?.u64()?.get(0).unwrap_or(0);
    Ok(Slice::split(tables.partition_count(n, params.customers_per_partition)))
}

/// `tables` restricted to the customers of `slice`.
pub fn restricted(tables: &Tables, slice: Option<loyalty_contract::partition::Slice>) -> Tables {
    tables.restricted(slice)
}

/// Only the streaming per-customer aggregates of the active base (no scores, CPV, CLV).
pub fn customer_aggregates(tables: &Tables, params: &FeatureParams) -> Result<DataFrame, FeatureError> {
    params.check()?;
    // The scores' inputs taken on the way are not aggregates.
    Ok(per_customer::assemble(tables, params, &mut Ok::<_, FeatureError>)?.table.drop_many(value::ROW_INPUTS))
}

/// The features of every customer active at `params.as_of`, one row each, sorted by
/// customer_id, with the survival model used for CLV.
pub fn customer_features(tables: &Tables, params: &FeatureParams) -> Result<(DataFrame, SurvivalCurves), FeatureError> {
    let mut at_t = customer_features_with(tables, params, None, Ok::<_, FeatureError>)?;
    value::with_survival(&mut at_t.table, params, &at_t.curves)?;
    Ok((at_t.table, at_t.curves))
}

/// The features at T and what was found on the way.
pub struct FeaturesAtT {
    /// One row per customer active at T, sorted by customer_id: every feature but CLV
    /// and the survival at the churn horizon, which [`with_survival`] adds from the
    /// survival model the caller picks (`curves`, or a churn model's scores).
    pub table: DataFrame,
    /// With more than one customer partition: the partition each row of `table` came
    /// from (the order in which `aside` saw them), in that partition's order.
    pub from: Option<Vec<u32>>,
    /// The survival model used for CLV.
    pub curves: SurvivalCurves,
    /// The prepaid customers who fell silent by T, for [`leavers::analyse`].
    pub silent: leavers::SilentPrepaid,
    /// The BG/NBD periods at T of the customers of the base (with a top-up or
    /// prepaid), counted by the top-up kernel when `FeatureParams::topup_days` asks
    /// for them and the kernels run; None otherwise.
    pub topup_days: Option<transactions::DaySummaries>,
}

/// As [`customer_features`] without CLV and the survival at the horizon (see
/// [`FeaturesAtT::table`]), with the aggregates passed through `aside` before the
/// scores and values are added, one customer partition at a time (each sorted by
/// customer_id): `loyalty run` sets aside there every column but customer_id and
/// [`VALUE_INPUTS`], so that the whole table is never in memory with every column, and
/// adds CLV once it has set aside the columns CLV does not read.
/// `first_bill`: the first bill month of `tables` when the
/// caller knows it (the survival curves' data start; None: a scan of the bills).
pub fn customer_features_with<E: From<FeatureError> + Send>(
    tables: &Tables,
    params: &FeatureParams,
    first_bill: Option<chrono::NaiveDate>,
    mut aside: impl FnMut(DataFrame) -> Result<DataFrame, E> + Send,
) -> Result<FeaturesAtT, E> {
    params.check()?;
    let started = std::time::Instant::now();
    // The survival curves read the tables, not the aggregates: they are fitted beside
    // the first partitions, while the table is small (beside the scores, their
    // group-by's memory came on top of the whole table's).
    let (assembled, curves) = loyalty_contract::ahead::side_by_side(
        || per_customer::assemble(tables, params, &mut aside),
        || {
            let started = std::time::Instant::now();
            let curves = survival::fit_kaplan_meier(tables, params, first_bill);
            tracing::debug!("survival curves in {:.2}s", started.elapsed().as_secs_f64());
            curves
        },
    );
    let per_customer::Assembled { table: base, silent, from, topup_days } = assembled?;
    let curves = curves?;
    tracing::debug!("per-customer aggregates: {} rows in {:.2}s", base.height(), started.elapsed().as_secs_f64());
    let started = std::time::Instant::now();
    let df = value::add_scores(base, tables, params)?;
    tracing::debug!("scores and value in {:.2}s", started.elapsed().as_secs_f64());
    Ok(FeaturesAtT { table: df, from, curves, silent, topup_days })
}

/// As [`customer_features`], with CLV from a churn model's scores (customer_id ->
/// P(churn within `params.churn_horizon_months`)) through [`ChurnScores`]; customers
/// without a score keep the Kaplan-Meier curves.
pub fn customer_features_with_churn_scores(
    tables: &Tables,
    params: &FeatureParams,
    p_churn: &std::collections::HashMap<i64, f64>,
) -> Result<(DataFrame, SurvivalCurves), FeatureError> {
    // As `loyalty run` does it: the features through Kaplan-Meier, then CLV and
    // survival again through the scores.
    let (mut df, curves) = customer_features(tables, params)?;
    let model = ChurnScores {
        horizon_months: params.churn_horizon_months,
        p_churn: ChurnProbabilities::ById(p_churn),
        fallback: &curves,
    };
    value::with_survival(&mut df, params, &model)?;
    Ok((df, curves))
}
