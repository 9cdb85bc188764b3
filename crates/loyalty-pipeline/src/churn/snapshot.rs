//! Labelled snapshots: the features of the customers active at a date T0 and whether
//! each churned in (T0, T0 + h], as a design matrix for the classifiers.

use std::collections::{BTreeMap, HashSet};

use chrono::NaiveDate;
use loyalty_contract::partition::Slice;
use loyalty_contract::{Table, Validated, col as c, dates, labels};
use loyalty_features::{FeatureParams, Tables, customer_features, names as n};
use loyalty_models::BgNbd;
use loyalty_models::churn::Design;
use polars::prelude::*;
use serde::Serialize;

use super::topups::{self, TopupInputs};
use crate::dataset::months_after;
use crate::error::{Context, Result};

/// Columns that are not model inputs: keys and the value outputs that already fold in
/// a survival curve.
const NOT_FEATURES: [&str; 4] = [c::CUSTOMER_ID, n::CCV, n::CPV, n::CLV];

/// The services each customer holds at a date (catalog service -> customer ids).
pub(crate) type Held = BTreeMap<String, HashSet<i64>>;

/// The model inputs at a date that are not columns of the feature table: the
/// catalog services each customer holds, and the prepaid top-up inputs.
#[derive(Default)]
pub(crate) struct Extra {
    pub held: Held,
    pub topups: TopupInputs,
}

impl Extra {
    /// The inputs at `as_of` of the customers of `tables`; the top-up inputs only
    /// with a top-up model (a prepaid classifier reads them).
    pub(crate) fn at(tables: &Tables, as_of: NaiveDate, base: &FeatureParams, model: Option<&BgNbd>) -> Result<Self> {
        let topups = match model {
            Some(model) => TopupInputs::at(tables, as_of, model, base)?,
            None => TopupInputs::default(),
        };
        Self::with_topups(tables, as_of, topups)
    }

    /// The services held at `as_of` with top-up inputs computed already.
    pub(crate) fn with_topups(tables: &Tables, as_of: NaiveDate, topups: TopupInputs) -> Result<Self> {
        Ok(Self { held: services_held(tables, as_of)?, topups })
    }
}

/// The plan types, each with its own churn model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Plan {
    Postpaid,
    Prepaid,
}

impl Plan {
    pub const ALL: [Plan; 2] = [Plan::Postpaid, Plan::Prepaid];

    pub fn as_str(self) -> &'static str {
        match self {
            Plan::Postpaid => "postpaid",
            Plan::Prepaid => "prepaid",
        }
    }
}

/// The labelled rows of one plan type at a snapshot.
pub(crate) struct PlanRows {
    pub ids: Vec<i64>,
    pub design: Design,
    pub y: Vec<f64>,
    /// Customers of the plan active at the snapshot, sampled or not.
    pub population: usize,
}

/// One labelled snapshot: the customers active at its date (or a uniform sample of
/// them), per plan type.
pub(crate) struct Snapshot {
    /// The postpaid rows' behavioural signals and `churned` (the label).
    pub frame: DataFrame,
    pub plans: BTreeMap<Plan, PlanRows>,
}

/// The model inputs of each plan type.
pub(crate) type Names = BTreeMap<Plan, Vec<String>>;

/// Customers of each plan type signed up by `as_of` and not churned by then.
fn active_by_plan(v: &Validated, as_of: NaiveDate) -> Result<BTreeMap<Plan, usize>> {
    let df = loyalty_contract::collect_streaming(
        v.tables[&Table::Customers]
            .clone()
            .filter(dates::active_at(as_of))
            .group_by([col(c::PLAN_TYPE)])
            .agg([len().cast(DataType::UInt64).alias("n")]),
    )?;
    let mut counts: BTreeMap<Plan, usize> = Plan::ALL.iter().map(|p| (*p, 0)).collect();
    for (plan, k) in labels::strs(df.column(c::PLAN_TYPE)?)?.zip(df.column("n")?.u64()?.iter()) {
        if let (Some(plan), Some(k)) = (plan, k)
            && let Some(p) = Plan::ALL.iter().find(|p| p.as_str() == plan)
        {
            counts.insert(*p, k as usize);
        }
    }
    Ok(counts)
}

/// The feature rows a plan's classifier reads: its customers, competition level as
/// a number.
pub(crate) fn model_rows(features: LazyFrame, plan: Plan) -> LazyFrame {
    features.filter(col(c::PLAN_TYPE).eq(lit(plan.as_str()))).with_column(
        when(col(n::COMPETITION_LEVEL).eq(lit("low")))
            .then(lit(0.0))
            .when(col(n::COMPETITION_LEVEL).eq(lit("medium")))
            .then(lit(1.0))
            .when(col(n::COMPETITION_LEVEL).eq(lit("high")))
            .then(lit(2.0))
            .otherwise(lit(NULL).cast(DataType::Float64))
            .alias(n::COMPETITION_LEVEL),
    )
}

/// The model inputs of a plan's feature table: every numeric column but keys and
/// value outputs, one indicator per catalog service, then (prepaid) the top-up inputs.
fn feature_names(df: &DataFrame, extra: &Extra, plan: Plan) -> Vec<String> {
    let topups = if plan == Plan::Prepaid && !extra.topups.is_empty() { &topups::NAMES[..] } else { &[] };
    df.columns()
        .iter()
        .filter(|col| {
            let name = col.name().as_str();
            (col.dtype().is_primitive_numeric() || col.dtype().is_bool())
                && !NOT_FEATURES.contains(&name)
                && !name.starts_with("__")
        })
        .map(|col| col.name().to_string())
        .chain(extra.held.keys().map(|s| format!("has_{s}")))
        .chain(topups.iter().map(|s| s.to_string()))
        .collect()
}

/// The customer ids and design matrix (`names`, NaN for missing) of `df`'s rows.
pub(crate) fn design_of(df: &DataFrame, names: &[String], extra: &Extra) -> Result<(Vec<i64>, Design)> {
    let ids: Vec<i64> = df.column(c::CUSTOMER_ID)?.i64()?.iter().map(|v| v.unwrap_or(-1)).collect();
    let mut columns = Vec::with_capacity(names.len());
    for name in names {
        if let Some(service) = name.strip_prefix("has_") {
            let holders = extra.held.get(service);
            columns.push(ids.iter().map(|id| f64::from(u8::from(holders.is_some_and(|h| h.contains(id))))).collect());
        } else if let Some(values) = extra.topups.column(name, &ids) {
            columns.push(values);
        } else {
            columns.push(crate::dataset::floats(df, name, f64::NAN)?);
        }
    }
    Ok((ids, Design::new(names.to_vec(), columns)?))
}

/// The customers every snapshot is computed on: all of them, or a uniform hash sample
/// of about `share` of those active at `sized_at` when more are, with every table's
/// rows of them read in one pass and kept in memory. Each snapshot's features are
/// then a pass over these small frames, not over the data, and the snapshots' time
/// and memory do not grow with the base; the comparable-customer statistics
/// (percentile scores, adoption cells, survival curves) come from the sample.
pub(crate) fn snapshot_sample(v: &Validated, sized_at: NaiveDate, share: usize) -> Result<Tables> {
    let population: usize = active_by_plan(v, sized_at)?.values().sum();
    let slice = (share > 0 && population > share).then(|| Slice::Sample { fraction: share as f64 / population as f64 });
    let started = std::time::Instant::now();
    let mut tables = Tables::new();
    for (table, lf) in loyalty_features::restricted(&v.tables, slice) {
        loyalty_contract::cancel::check()?;
        let df = loyalty_contract::collect_streaming(lf).during_with(|| format!("reading the {table} sample"))?;
        tables.insert(table, df.lazy());
    }
    tracing::debug!("snapshot sample ({slice:?}) read in {:.2}s", started.elapsed().as_secs_f64());
    Ok(tables)
}

/// The labelled snapshot at `as_of` of the customers of `tables` (all, or the sample
/// of [`snapshot_sample`]), with `extra`, their inputs at `as_of` from outside the
/// feature table; each plan's `population` counts its active customers in the whole
/// dataset.
pub(crate) fn snapshot(
    v: &Validated,
    tables: &Tables,
    as_of: NaiveDate,
    names: Option<&Names>,
    base: &FeatureParams,
    extra: &Extra,
) -> Result<Snapshot> {
    let df = features_at(tables, as_of, base)?;
    snapshot_of(v, tables, (as_of, df), names, base, extra)
}

/// The features at `as_of` of the customers of `tables`: what a snapshot computes
/// before its labels and its inputs from outside the feature table.
pub(crate) fn features_at(tables: &Tables, as_of: NaiveDate, base: &FeatureParams) -> Result<DataFrame> {
    let params = FeatureParams { as_of, ..base.clone() };
    let (df, _) = customer_features(tables, &params).during_with(|| format!("features as of {as_of}"))?;
    Ok(df)
}

/// [`snapshot`] from the features `df` at `as_of` ([`features_at`]).
pub(crate) fn snapshot_of(
    v: &Validated,
    tables: &Tables,
    (as_of, df): (NaiveDate, DataFrame),
    names: Option<&Names>,
    base: &FeatureParams,
    extra: &Extra,
) -> Result<Snapshot> {
    let population = active_by_plan(v, as_of)?;
    let end = months_after(as_of, base.churn_horizon_months)?;
    let mut plans = BTreeMap::new();
    let mut frame = DataFrame::empty();
    for plan in Plan::ALL {
        let rows = labelled(model_rows(df.clone().lazy(), plan), tables, as_of, end)?;
        let chosen: Vec<String> = match names {
            Some(names) => names.get(&plan).cloned().unwrap_or_default(),
            None => feature_names(&rows, extra, plan),
        };
        let (ids, design) = design_of(&rows, &chosen, extra)?;
        let y: Vec<f64> =
            rows.column("__label")?.bool()?.iter().map(|v| f64::from(u8::from(v == Some(true)))).collect();
        if plan == Plan::Postpaid {
            frame = signals_frame(rows)?;
        }
        plans.insert(plan, PlanRows { ids, design, y, population: population[&plan] });
    }
    Ok(Snapshot { frame, plans })
}

/// `rows` with `__label`: churned in (as_of, end].
fn labelled(rows: LazyFrame, tables: &Tables, as_of: NaiveDate, end: NaiveDate) -> Result<DataFrame> {
    let churn = tables[&Table::Customers].clone().select([col(c::CUSTOMER_ID), col(c::CHURN_DATE).alias("__churn")]);
    Ok(rows
        .join(churn, [col(c::CUSTOMER_ID)], [col(c::CUSTOMER_ID)], JoinArgs::new(JoinType::Left))
        .with_column(
            col("__churn").gt(lit(as_of)).and(col("__churn").lt_eq(lit(end))).fill_null(lit(false)).alias("__label"),
        )
        .collect()?)
}

/// The behavioural signals the report tabulates against the label.
fn signals_frame(df: DataFrame) -> Result<DataFrame> {
    Ok(df
        .lazy()
        .select([
            col(c::CUSTOMER_ID),
            col(n::COMPLAINTS_12M),
            col(n::UNRESOLVED_12M),
            col(n::LATE_PAYMENT_RATE_12M),
            col(n::DAYS_LATE_TREND),
            col(n::CHANNELS_USED_12M),
            col("__label").alias("churned"),
        ])
        .collect()?)
}

/// The customers holding each catalog service at the end of `as_of` (at most 50
/// services: an indicator feature each).
fn services_held(tables: &Tables, as_of: NaiveDate) -> Result<Held> {
    let mut held: Held = BTreeMap::new();
    let (Some(services), Some(catalog)) = (tables.get(&Table::Services), tables.get(&Table::ServiceCatalog)) else {
        return Ok(held);
    };
    let names = catalog.clone().select([col(c::SERVICE)]).limit(50).collect()?;
    for name in names.column(c::SERVICE)?.str()?.iter().flatten() {
        held.insert(name.to_string(), HashSet::new());
    }
    let rows = loyalty_contract::collect_streaming(
        services.clone().filter(loyalty_contract::dates::held_at(as_of)).select([col(c::CUSTOMER_ID), col(c::SERVICE)]),
    )?;
    for (id, service) in rows.column(c::CUSTOMER_ID)?.i64()?.iter().zip(rows.column(c::SERVICE)?.str()?.iter()) {
        if let (Some(id), Some(service)) = (id, service)
            && let Some(set) = held.get_mut(service)
        {
            set.insert(id);
        }
    }
    Ok(held)
}
