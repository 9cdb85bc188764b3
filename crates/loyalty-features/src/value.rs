//! Loyalty scores and value: CCV, CPV and CLV (DOMAIN.md sections 1-2).
//!
//! CPV's adoption probability P_ij is the adoption rate of service j among
//! comparable customers: same plan_type, same ARPU quintile and same data-usage
//! tercile (both within the plan), where "adopted" means held at any time up to T.
//! Each cell's rate is shrunk toward the base-wide rate with a pseudo-count
//! (`adoption_prior_weight`), so small cells do not produce 0% or 100%.

use loyalty_contract::col as c;
use loyalty_contract::{Table, collect_streaming};

use crate::billing_kernel::Slots;
use polars::prelude::*;

use crate::names as n;
use crate::per_customer::{exact_sum, held_at};
use crate::survival::SurvivalModel;
use crate::{FeatureError, FeatureParams, Tables, annuity_factor, monthly_discount_rate};

pub(crate) const CELL: &str = "__cell";

/// Percentile rank in [0, 1] (average ties) within `over`; nulls score 0.5.
/// Inputs are rounded to 6 decimals first: parallel float sums differ in their last
/// bits from run to run, and ranks must not flip on that noise.
fn pct_rank(x: Expr, over: Option<&str>) -> PolarsResult<Expr> {
    let x = x.cast(DataType::Float64).round(6, RoundMode::HalfToEven);
    let rank =
        x.clone().rank(RankOptions { method: RankMethod::Average, descending: false }, None).cast(DataType::Float64);
    let count = x.count().cast(DataType::Float64);
    let (rank, count) = match over {
        Some(g) => (rank.over([col(g)])?, count.over([col(g)])?),
        None => (rank, count),
    };
    Ok(when(count.clone().gt(lit(1.0)))
        .then((rank - lit(1.0)) / (count - lit(1.0)))
        .otherwise(lit(0.5))
        .fill_null(lit(0.5)))
}

/// Quantile bin 0..q-1 of `x` within `over` (nulls in bin 0).
fn quantile_bin(x: Expr, q: u32, over: &str) -> PolarsResult<Expr> {
    Ok((pct_rank(x, Some(over))? * lit(f64::from(q)))
        .floor()
        .clip(lit(0.0), lit(f64::from(q - 1)))
        .cast(DataType::Int32))
}

/// The comparable-customer cell used for adoption rates.
fn cell_expr() -> PolarsResult<Expr> {
    Ok(concat_str(
        [
            col(c::PLAN_TYPE),
            quantile_bin(col(n::ARPU_12M), 5, c::PLAN_TYPE)?.cast(DataType::String),
            quantile_bin(col(n::DATA_MB_3M), 3, c::PLAN_TYPE)?.cast(DataType::String),
        ],
        "/",
        false,
    ))
}

/// Adoption rate of every catalog service in every comparable-customer cell:
/// columns `__cell`, service, monthly_margin, p_adopt; and each customer's cell.
fn cell_rates(
    base: &DataFrame,
    tables: &Tables,
    params: &FeatureParams,
) -> Result<Option<(LazyFrame, LazyFrame)>, FeatureError> {
    let (Some(services), Some(catalog)) = (tables.get(&Table::Services), tables.get(&Table::ServiceCatalog)) else {
        return Ok(None);
    };
    let cells = base.clone().lazy().select([col(c::CUSTOMER_ID), cell_expr()?.alias(CELL)]).collect()?.lazy();
    let catalog = catalog.clone().select([col(c::SERVICE), col(c::MONTHLY_MARGIN)]);
    let ever = services
        .clone()
        .filter(col(c::START_DATE).lt_eq(lit(params.as_of)))
        .select([col(c::CUSTOMER_ID), col(c::SERVICE)])
        .unique(None, UniqueKeepStrategy::Any)
        .join(cells.clone(), [col(c::CUSTOMER_ID)], [col(c::CUSTOMER_ID)], JoinArgs::new(JoinType::Inner));
    let total = base.height() as f64;
    let a = params.adoption_prior_weight;
    let adopters =
        ever.clone().group_by([col(CELL), col(c::SERVICE)]).agg([len().cast(DataType::Float64).alias("__k")]);
    let base_rate =
        ever.group_by([col(c::SERVICE)]).agg([(len().cast(DataType::Float64) / lit(total.max(1.0))).alias("__p0")]);
    let cell_sizes = cells.clone().group_by([col(CELL)]).agg([len().cast(DataType::Float64).alias("__n")]);
    // Every cell x service (a cross join through a constant key).
    let rates = collect_streaming(
        cell_sizes
            .with_column(lit(1).alias("__one"))
            .join(
                catalog.with_column(lit(1).alias("__one")),
                [col("__one")],
                [col("__one")],
                JoinArgs::new(JoinType::Inner),
            )
            .join(adopters, [col(CELL), col(c::SERVICE)], [col(CELL), col(c::SERVICE)], JoinArgs::new(JoinType::Left))
            .join(base_rate, [col(c::SERVICE)], [col(c::SERVICE)], JoinArgs::new(JoinType::Left))
            .select([
                col(CELL),
                col(c::SERVICE),
                col(c::MONTHLY_MARGIN),
                ((col("__k").fill_null(lit(0.0)) + lit(a) * col("__p0").fill_null(lit(0.0))) / (col("__n") + lit(a)))
                    .alias("p_adopt"),
            ]),
    )?
    .lazy();
    Ok(Some((rates, cells)))
}

fn held(tables: &Tables, params: &FeatureParams) -> Option<LazyFrame> {
    tables.get(&Table::Services).map(|s| {
        held_at(s.clone(), params.as_of)
            .select([col(c::CUSTOMER_ID), col(c::SERVICE)])
            .unique(None, UniqueKeepStrategy::Any)
    })
}

/// Estimated P(customer adopts service) for every (active customer, catalog service):
/// columns customer_id, service, p_adopt, held (at T), monthly_margin.
pub fn adoption_rates(base: &DataFrame, tables: &Tables, params: &FeatureParams) -> Result<DataFrame, FeatureError> {
    let Some(a) = Adoption::of(base, tables, params)? else { return Ok(DataFrame::empty()) };
    let rows = a.rows(&a.cells)?;
    Ok(collect_streaming(rows.sort([c::CUSTOMER_ID, c::SERVICE], SortMultipleOptions::default()))?)
}

/// The adoption model, collected: each customer's comparable-customer cell, the rates
/// of every cell x service, the services held at T. Its rows for a subset of the
/// customers ([`Adoption::rows`]) let a caller go through the base in chunks.
pub(crate) struct Adoption {
    /// customer_id, `__cell`.
    pub(crate) cells: DataFrame,
    rates: DataFrame,
    held: DataFrame,
}

impl Adoption {
    /// None without services or a catalog.
    pub(crate) fn of(base: &DataFrame, tables: &Tables, params: &FeatureParams) -> Result<Option<Self>, FeatureError> {
        let (Some((rates, cells)), Some(held)) = (cell_rates(base, tables, params)?, held(tables, params)) else {
            return Ok(None);
        };
        Ok(Some(Adoption {
            cells: cells.collect()?,
            rates: rates.collect()?,
            held: collect_streaming(held.with_column(lit(true).alias("held")))?,
        }))
    }

    /// Every cell x catalog service: `__cell`, service, monthly_margin, p_adopt.
    pub(crate) fn rates(&self) -> &DataFrame {
        &self.rates
    }

    /// The services held at T (customer_id, service) of the id range of `cells` (a
    /// slice of [`Adoption::cells`]).
    pub(crate) fn held_between(&self, cells: &DataFrame) -> PolarsResult<DataFrame> {
        self.held_of(cells)?.select([col(c::CUSTOMER_ID), col(c::SERVICE)]).collect()
    }

    fn held_of(&self, cells: &DataFrame) -> PolarsResult<LazyFrame> {
        // Only the held services of the slice's id range: at 10M customers every held
        // service is a few GB of keys.
        let ids = cells.column(c::CUSTOMER_ID)?.as_materialized_series();
        Ok(match (ids.min::<i64>()?, ids.max::<i64>()?) {
            (Some(lo), Some(hi)) => self
                .held
                .clone()
                .lazy()
                .filter(col(c::CUSTOMER_ID).gt_eq(lit(lo)).and(col(c::CUSTOMER_ID).lt_eq(lit(hi)))),
            _ => self.held.clone().lazy(),
        })
    }

    /// The rows of [`adoption_rates`] for the customers in `cells` (a slice of
    /// [`Adoption::cells`]), in no particular order.
    pub(crate) fn rows(&self, cells: &DataFrame) -> PolarsResult<LazyFrame> {
        let held = self.held_of(cells)?;
        Ok(cells
            .clone()
            .lazy()
            .join(self.rates.clone().lazy(), [col(CELL)], [col(CELL)], JoinArgs::new(JoinType::Inner))
            .join(
                held,
                [col(c::CUSTOMER_ID), col(c::SERVICE)],
                [col(c::CUSTOMER_ID), col(c::SERVICE)],
                JoinArgs::new(JoinType::Left),
            )
            .select([
                col(c::CUSTOMER_ID),
                col(c::SERVICE),
                col("p_adopt"),
                col("held").fill_null(lit(false)),
                col(c::MONTHLY_MARGIN),
            ]))
    }
}

/// CPV per month: the cell's expected margin over all services, less the services
/// the customer already holds.
fn cpv_monthly(base: &DataFrame, tables: &Tables, params: &FeatureParams) -> Result<LazyFrame, FeatureError> {
    let (Some((rates, cells)), Some(held)) = (cell_rates(base, tables, params)?, held(tables, params)) else {
        return Ok(base.clone().lazy().select([col(c::CUSTOMER_ID), lit(0.0).alias(n::CPV_MONTHLY)]));
    };
    let value = (col("p_adopt") * col(c::MONTHLY_MARGIN)).alias("__v");
    let per_cell = rates.clone().group_by([col(CELL)]).agg([exact_sum(value.clone()).alias("__all")]);
    let held_value = held
        .join(cells.clone(), [col(c::CUSTOMER_ID)], [col(c::CUSTOMER_ID)], JoinArgs::new(JoinType::Inner))
        .join(rates, [col(CELL), col(c::SERVICE)], [col(CELL), col(c::SERVICE)], JoinArgs::new(JoinType::Inner))
        .group_by([col(c::CUSTOMER_ID)])
        .agg([exact_sum(value).alias("__held")]);
    Ok(cells
        .join(per_cell, [col(CELL)], [col(CELL)], JoinArgs::new(JoinType::Left))
        .join(held_value, [col(c::CUSTOMER_ID)], [col(c::CUSTOMER_ID)], JoinArgs::new(JoinType::Left))
        .select([
            col(c::CUSTOMER_ID),
            (col("__all").fill_null(lit(0.0)) - col("__held").fill_null(lit(0.0))).alias(n::CPV_MONTHLY),
        ]))
}

/// The aggregate columns that the scores, CPV and CLV read (besides the customers
/// table's own columns and the survival model's inputs): what
/// [`crate::customer_features_with`] must keep in memory.
pub const VALUE_INPUTS: [&str; 13] = [
    n::ARPU_12M,
    n::COMPLAINTS_12M,
    n::CONTACTS_12M,
    n::DATA_MB_3M,
    n::MARGIN_MONTHLY,
    n::MONTHS_BILLED,
    n::RECENCY_DAYS,
    n::REFERRALS_MADE,
    n::SURVEYS_ANSWERED,
    n::SURVEY_RECOMMEND,
    n::TENURE_MONTHS,
    n::TOPUPS_PER_MONTH,
    n::COMPETITION_LEVEL,
];

pub(crate) fn add_scores_and_value(
    base: DataFrame,
    tables: &Tables,
    params: &FeatureParams,
    survival: &dyn SurvivalModel,
) -> Result<DataFrame, FeatureError> {
    let d = monthly_discount_rate(params.annual_discount_rate);
    let annuity = annuity_factor(d, params.valuation_months);

    // CPV: expected margin of the services not held, at the comparable customers' rates.
    let started = std::time::Instant::now();
    let cpv_monthly = collect_streaming(cpv_monthly(&base, tables, params)?)?;
    // Placed onto the base by customer_id (a join would copy every column of the base).
    let mut base = base;
    {
        let ids: Vec<i64> = base.column(c::CUSTOMER_ID)?.i64()?.iter().map(|v| v.unwrap_or(i64::MIN)).collect();
        let placed = crate::per_customer::align(&Slots::new(&ids), base.height(), &cpv_monthly)?;
        base.hstack_mut(&placed)?;
    }
    drop(cpv_monthly);
    tracing::debug!("cpv: {:.2}s", started.elapsed().as_secs_f64());
    let started = std::time::Instant::now();

    let frequency = when(col(c::PLAN_TYPE).eq(lit("prepaid")))
        .then(col(n::TOPUPS_PER_MONTH))
        .otherwise(col(n::MONTHS_BILLED).cast(DataType::Float64));
    let advocacy = lit(0.5) * col(n::REFERRALS_MADE).gt(lit(0.0)).cast(DataType::Float64)
        + lit(0.5) * (col(n::SURVEY_RECOMMEND) / lit(10.0)).fill_null(lit(0.0));
    let mut df = base
        .lazy()
        .with_columns([
            col(n::CPV_MONTHLY).fill_null(lit(0.0)),
            (col(n::ARPU_12M) / col(n::ARPU_12M).median().over([col(c::PLAN_TYPE), col(c::MARKET_ID)])? - lit(1.0))
                .alias(n::PREMIUM_PCT),
            advocacy.alias(n::ADVOCACY_SCORE),
            pct_rank(col(n::SURVEYS_ANSWERED) + col(n::CONTACTS_12M) - col(n::COMPLAINTS_12M), None)?
                .alias(n::ENGAGEMENT_SCORE),
            ((pct_rank(-col(n::RECENCY_DAYS), None)?
                + pct_rank(frequency, Some(c::PLAN_TYPE))?
                + pct_rank(col(n::ARPU_12M), None)?
                + pct_rank(col(n::TENURE_MONTHS), None)?)
                / lit(4.0))
            .alias(n::TRANSACTIONAL_LOYALTY),
        ])
        .with_columns([((pct_rank(col(n::PREMIUM_PCT), None)? + col(n::ADVOCACY_SCORE) + col(n::ENGAGEMENT_SCORE))
            / lit(3.0))
        .alias(n::EMOTIONAL_LOYALTY)])
        .with_columns([
            (col(n::MARGIN_MONTHLY).fill_null(lit(0.0)) * lit(annuity)).alias(n::CCV),
            (col(n::CPV_MONTHLY) * lit(annuity)).alias(n::CPV),
        ])
        .collect()?;

    tracing::debug!("scores: {:.2}s", started.elapsed().as_secs_f64());
    with_survival(&mut df, params, survival)?;
    Ok(df)
}

/// Set (or replace) `clv` and `survival_<h>m` of the feature table `df` from the
/// survival model.
pub fn with_survival(df: &mut DataFrame, params: &FeatureParams, survival: &dyn SurvivalModel) -> PolarsResult<()> {
    let d = monthly_discount_rate(params.annual_discount_rate);
    let started = std::time::Instant::now();
    let discounted = survival.discounted_survival(df, d, params.valuation_months)?;
    let s_h = survival.survival_at(df, params.churn_horizon_months)?;
    let margin = df.column(n::MARGIN_MONTHLY)?.cast(&DataType::Float64)?;
    let clv: Vec<f64> = margin.f64()?.iter().zip(&discounted).map(|(m, s)| m.unwrap_or(0.0) * s).collect();
    df.with_column(Column::new(n::CLV.into(), clv))?;
    df.with_column(Column::new(n::survival_at(params.churn_horizon_months).into(), s_h))?;
    tracing::debug!("survival per customer: {:.2}s", started.elapsed().as_secs_f64());
    Ok(())
}
