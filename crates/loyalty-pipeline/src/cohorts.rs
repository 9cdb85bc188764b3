//! Contract cohorts for the sBG retention model: postpaid customers on one contract
//! length, one cohort per signup month, survivors counted per completed term.

use std::collections::BTreeMap;

use chrono::{Datelike, Months, NaiveDate};
use loyalty_contract::{Table, Validated, col as c, dates::from_epoch_days};
use loyalty_models::Sbg;
use loyalty_models::sbg::{self, CurvePoint};
use polars::prelude::*;
use serde::Serialize;

use crate::PipelineError;
use crate::error::Result;

/// Members of one signup-month cohort: (signup, churn date).
type Members = Vec<(NaiveDate, Option<NaiveDate>)>;

/// Survivors of one cohort after 0..=observed terms of `months` months: members
/// whose churn_date is after signup + t terms (or null), for the terms every member
/// has completed by `as_of`. None when no term is complete.
fn survivors(members: &Members, months: u32, as_of: NaiveDate) -> Option<Vec<f64>> {
    let term = |d: NaiveDate, t: u32| d.checked_add_months(Months::new(t * months));
    let latest = members.iter().map(|m| m.0).max()?;
    let observed = (1..).take_while(|&t| term(latest, t).is_some_and(|e| e <= as_of)).count() as u32;
    if observed == 0 {
        return None;
    }
    let alive_after = |t: u32| {
        members
            .iter()
            .filter(|(s, ch)| match (ch, term(*s, t)) {
                (None, _) => true,
                (Some(ch), Some(end)) => *ch > end,
                (Some(_), None) => false,
            })
            .count() as f64
    };
    Some((0..=observed).map(alive_after).collect())
}

/// The cohorts of customers `df` (signup_date, churn_date) on `months`-month terms.
fn contract_cohorts(df: &DataFrame, months: i64, as_of: NaiveDate) -> Result<Vec<Vec<f64>>> {
    let signup = df.column(c::SIGNUP_DATE)?.date()?.physical().clone();
    let churn = df.column(c::CHURN_DATE)?.date()?.physical().clone();
    let mut cohorts: BTreeMap<(i32, u32), Members> = BTreeMap::new();
    for (s, ch) in signup.iter().zip(churn.iter()) {
        let Some(s) = s.and_then(from_epoch_days) else { continue };
        cohorts.entry((s.year(), s.month())).or_default().push((s, ch.and_then(from_epoch_days)));
    }
    Ok(cohorts.values().filter_map(|m| survivors(m, months as u32, as_of)).collect())
}

/// The most common contract length of `customers` (the shorter on a tie).
fn most_common_length(customers: &DataFrame) -> Result<i64> {
    let mut counts: BTreeMap<i64, usize> = BTreeMap::new();
    for m in customers.column(c::CONTRACT_MONTHS)?.i64()?.iter().flatten() {
        *counts.entry(m).or_default() += 1;
    }
    counts
        .into_iter()
        .max_by_key(|(m, n)| (*n, -*m))
        .map(|(m, _)| m)
        .ok_or_else(|| PipelineError::Data("no postpaid customer with a contract: nothing for sBG to fit".into()))
}

/// The contract cohorts of a dataset for sBG: postpaid customers on the most common
/// contract length (or `months`), one cohort per signup month.
pub fn dataset_cohorts(v: &Validated, as_of: NaiveDate, months: Option<i64>) -> Result<(i64, Vec<Vec<f64>>)> {
    let customers = v.tables[&Table::Customers]
        .clone()
        .filter(col(c::PLAN_TYPE).eq(lit("postpaid")).and(col(c::CONTRACT_MONTHS).gt(lit(0))))
        .select([col(c::SIGNUP_DATE), col(c::CHURN_DATE), col(c::CONTRACT_MONTHS)])
        .collect()?;
    let months = match months {
        Some(m) => m,
        None => most_common_length(&customers)?,
    };
    let chosen = customers.lazy().filter(col(c::CONTRACT_MONTHS).eq(lit(months))).collect()?;
    Ok((months, contract_cohorts(&chosen, months, as_of)?))
}

/// sBG on the contract cohorts of a run.
#[derive(Debug, Clone, Serialize)]
pub struct SbgRetention {
    pub contract_months: i64,
    pub model: Sbg,
    /// Pooled observed against modelled survival, to four terms past the longest cohort.
    pub curve: Vec<CurvePoint>,
}

/// sBG fitted to the dataset's contract cohorts at `as_of`; None when there are none
/// (no contracts, or no completed term).
pub fn sbg_retention(v: &Validated, as_of: NaiveDate) -> Result<Option<SbgRetention>> {
    let (contract_months, cohorts) = match dataset_cohorts(v, as_of, None) {
        Ok(found) => found,
        Err(PipelineError::Data(_)) => return Ok(None),
        Err(e) => return Err(e),
    };
    if cohorts.is_empty() || sbg::check(&cohorts).is_err() {
        return Ok(None);
    }
    let (model, _) = sbg::fit(&cohorts);
    let curve = sbg::curve(&model, &cohorts, sbg::longest_cohort(&cohorts) + 4);
    Ok(Some(SbgRetention { contract_months, model, curve }))
}
