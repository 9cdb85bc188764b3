//! Kaplan-Meier retention curves by a grouping column, summarised at fixed tenures.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use loyalty_contract::Validated;
use loyalty_features::{FeatureParams, names as n};
use polars::prelude::*;
use serde::Serialize;

use crate::error::Result;

/// The grouping of `loyalty fit km` when none is given.
pub const KM_DEFAULT_BY: &str = "plan_type";

/// One group's survival at 6, 12, 24 and 36 months of tenure (None past its data).
#[derive(Debug, Clone, Serialize)]
pub struct KmGroup {
    pub group: String,
    pub survival_6m: Option<f64>,
    pub survival_12m: Option<f64>,
    pub survival_24m: Option<f64>,
    pub survival_36m: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct KmSummary {
    pub by: String,
    pub as_of: String,
    pub groups: Vec<KmGroup>,
}

/// Per group: tenure -> survival.
fn curves(table: &DataFrame, by: &str) -> Result<BTreeMap<String, BTreeMap<i64, f64>>> {
    let key = table.column(by)?.str()?.clone();
    let tenure = table.column(n::TENURE_MONTHS)?.i64()?.clone();
    let survival = table.column("survival")?.f64()?.clone();
    let mut groups: BTreeMap<String, BTreeMap<i64, f64>> = BTreeMap::new();
    for i in 0..table.height() {
        if let (Some(g), Some(k), Some(s)) = (key.get(i), tenure.get(i), survival.get(i)) {
            groups.entry(g.to_string()).or_default().insert(k, s);
        }
    }
    Ok(groups)
}

/// The curves of the customers known at `as_of`, grouped by `by` (plan_type,
/// contract_months, competition_level or market_id): the table (group, tenure, at
/// risk, events, hazard, survival) and its summary.
pub fn kaplan_meier(v: &Validated, as_of: NaiveDate, by: &str) -> Result<(DataFrame, KmSummary)> {
    let params = FeatureParams { as_of, ..Default::default() };
    let first_bill = crate::dataset::summarised_first_bill_month(v);
    let table = loyalty_features::survival::kaplan_meier_by(&v.tables, &params, by, first_bill)?;
    let at = |curve: &BTreeMap<i64, f64>, months: i64| curve.range(..=months).next_back().map(|(_, s)| *s);
    let groups = curves(&table, by)?
        .into_iter()
        .map(|(group, c)| KmGroup {
            survival_6m: at(&c, 6),
            survival_12m: at(&c, 12),
            survival_24m: at(&c, 24),
            survival_36m: at(&c, 36),
            group,
        })
        .collect();
    Ok((table, KmSummary { by: by.to_string(), as_of: as_of.to_string(), groups }))
}
