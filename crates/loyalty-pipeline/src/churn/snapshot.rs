//! Labelled snapshots: the features of the customers active at a date T0 and whether
//! each churned in (T0, T0 + h], as a design matrix for the classifiers.

use std::collections::{BTreeMap, HashSet};

use chrono::NaiveDate;
use loyalty_contract::partition::Slice;
use loyalty_contract::{Table, Validated, col as c, dates};
use loyalty_features::{FeatureParams, Tables, customer_features, names as n};
use loyalty_models::churn::Design;
use polars::prelude::*;

use crate::dataset::{ids, months_after};
use crate::error::{Context, Result};

/// Columns that are not model inputs: keys and the value outputs that already fold in
/// a survival curve.
const NOT_FEATURES: [&str; 4] = [c::CUSTOMER_ID, n::CCV, n::CPV, n::CLV];

/// The services each customer holds at a date (catalog service -> customer ids).
pub(crate) type Held = BTreeMap<String, HashSet<i64>>;

/// One labelled snapshot: the postpaid customers active at its date (or a uniform
/// sample of them).
pub(crate) struct Snapshot {
    /// Prepaid customers active at the snapshot (not in the design: BG/NBD scores them).
    pub prepaid_ids: Vec<i64>,
    /// The postpaid rows' behavioural signals and `churned` (the label).
    pub frame: DataFrame,
    pub design: Design,
    pub y: Vec<f64>,
    /// Postpaid customers active at the snapshot, sampled or not.
    pub population: usize,
}

/// Postpaid customers signed up by `as_of` and not churned by then.
fn postpaid_active(v: &Validated, as_of: NaiveDate) -> Result<usize> {
    let df = loyalty_contract::collect_streaming(
        v.tables[&Table::Customers]
            .clone()
            .filter(dates::active_at(as_of))
            .filter(col(c::PLAN_TYPE).eq(lit("postpaid")))
            .select([len().cast(DataType::UInt64).alias("n")]),
    )?;
    Ok(df.column("n")?.u64()?.get(0).unwrap_or(0) as usize)
}

/// The feature rows the classifier reads: postpaid customers, competition level as
/// a number.
pub(crate) fn model_rows(features: LazyFrame) -> LazyFrame {
    features.filter(col(c::PLAN_TYPE).eq(lit("postpaid"))).with_column(
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

/// The prepaid customers of a feature table.
pub(crate) fn prepaid_ids(features: &DataFrame) -> Result<Vec<i64>> {
    let prepaid =
        features.clone().lazy().filter(col(c::PLAN_TYPE).eq(lit("prepaid"))).select([col(c::CUSTOMER_ID)]).collect()?;
    Ok(ids(&prepaid, c::CUSTOMER_ID)?)
}

/// The model inputs of a feature table: every numeric column but keys and value
/// outputs, then one indicator per catalog service.
fn feature_names(df: &DataFrame, held: &Held) -> Vec<String> {
    df.columns()
        .iter()
        .filter(|col| {
            let name = col.name().as_str();
            (col.dtype().is_primitive_numeric() || col.dtype().is_bool())
                && !NOT_FEATURES.contains(&name)
                && !name.starts_with("__")
        })
        .map(|col| col.name().to_string())
        .chain(held.keys().map(|s| format!("has_{s}")))
        .collect()
}

/// The customer ids and design matrix (`names`, NaN for missing) of `df`'s rows.
pub(crate) fn design_of(df: &DataFrame, names: &[String], held: &Held) -> Result<(Vec<i64>, Design)> {
    let ids: Vec<i64> = df.column(c::CUSTOMER_ID)?.i64()?.iter().map(|v| v.unwrap_or(-1)).collect();
    let mut columns = Vec::with_capacity(names.len());
    for name in names {
        if let Some(service) = name.strip_prefix("has_") {
            let holders = held.get(service);
            columns.push(ids.iter().map(|id| f64::from(u8::from(holders.is_some_and(|h| h.contains(id))))).collect());
            continue;
        }
        columns.push(crate::dataset::floats(df, name, f64::NAN)?);
    }
    Ok((ids, Design::new(names.to_vec(), columns)?))
}

/// `tables`, or a uniform hash sample of about `cap` of their `population` postpaid
/// customers when there are more (0: no cap).
fn sampled(v: &Validated, population: usize, cap: usize) -> Tables {
    if cap == 0 || population <= cap {
        return v.tables.clone();
    }
    loyalty_features::restricted(&v.tables, Some(Slice::Sample { fraction: cap as f64 / population as f64 }))
}

/// The labelled snapshot at `as_of`. When more than `cap` postpaid customers (0: no
/// cap) are active, the features are computed for a uniform hash sample of about
/// `cap` customers only (every table restricted to them), so a snapshot's memory and
/// time do not grow with the base; the comparable-customer statistics (percentile
/// scores, adoption cells, survival curves) then come from that sample.
pub(crate) fn snapshot(
    v: &Validated,
    as_of: NaiveDate,
    names: Option<&[String]>,
    base: &FeatureParams,
    cap: usize,
) -> Result<Snapshot> {
    let params = FeatureParams { as_of, ..base.clone() };
    let population = postpaid_active(v, as_of)?;
    let tables = sampled(v, population, cap);
    let (df, _) = customer_features(&tables, &params).during_with(|| format!("features as of {as_of}"))?;
    let prepaid_ids = prepaid_ids(&df)?;
    let df = labelled(model_rows(df.lazy()), &tables, as_of, months_after(as_of, base.churn_horizon_months)?)?;
    let held = services_held(&tables, as_of)?;
    let chosen: Vec<String> = match names {
        Some(names) => names.to_vec(),
        None => feature_names(&df, &held),
    };
    let (_, design) = design_of(&df, &chosen, &held)?;
    let y: Vec<f64> = df.column("__label")?.bool()?.iter().map(|v| f64::from(u8::from(v == Some(true)))).collect();
    Ok(Snapshot { prepaid_ids, frame: signals_frame(df)?, design, y, population })
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
pub(crate) fn services_held(tables: &Tables, as_of: NaiveDate) -> Result<Held> {
    let mut held: Held = BTreeMap::new();
    let (Some(services), Some(catalog)) = (tables.get(&Table::Services), tables.get(&Table::ServiceCatalog)) else {
        return Ok(held);
    };
    let names = catalog.clone().select([col(c::SERVICE)]).limit(50).collect()?;
    for name in names.column(c::SERVICE)?.str()?.iter().flatten() {
        held.insert(name.to_string(), HashSet::new());
    }
    let rows = loyalty_contract::collect_streaming(
        services
            .clone()
            .filter(
                col(c::START_DATE)
                    .lt_eq(lit(as_of))
                    .and(col(c::END_DATE).is_null().or(col(c::END_DATE).gt(lit(as_of)))),
            )
            .select([col(c::CUSTOMER_ID), col(c::SERVICE)]),
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
