//! A short description of a validated dataset: what `loyalty validate` prints and
//! `loyalty run` writes into `run.json` (`dataset`).

use std::collections::BTreeMap;

use chrono::NaiveDate;
use polars::prelude::*;
use serde::Serialize;

use crate::collect_streaming;
use crate::spec::{Table, col as c};
use crate::validate::{TableReport, Validated, Violation};

#[derive(Debug, Clone, Serialize)]
pub struct BillingSummary {
    pub rows: u64,
    pub customers_billed: u64,
    pub first_month: Option<NaiveDate>,
    pub last_month: Option<NaiveDate>,
    pub months: u64,
    pub total_charge: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct ChurnSummary {
    /// Customers with a churn_date.
    pub churned: u64,
    /// churned / customers.
    pub churned_share: f64,
    /// Churn dates inside the billed months, over customer-months billed.
    pub monthly_churn_rate: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct SurveySummary {
    pub surveys: u64,
    pub customers_surveyed: u64,
    /// customers_surveyed / customers.
    pub coverage: f64,
    pub first: Option<NaiveDate>,
    pub last: Option<NaiveDate>,
}

#[derive(Debug, Clone, Serialize)]
pub struct DatasetSummary {
    pub tables: Vec<TableReport>,
    pub customers: u64,
    /// Customers without a churn_date.
    pub active_customers: u64,
    pub plan_mix: BTreeMap<String, u64>,
    pub contract_mix: BTreeMap<String, u64>,
    pub markets: u64,
    pub billing: BillingSummary,
    pub churn: ChurnSummary,
    pub surveys: Option<SurveySummary>,
    pub rows_rejected: u64,
    pub violations: Vec<Violation>,
}

fn u64_at(df: &DataFrame, name: &str) -> PolarsResult<u64> {
    Ok(df.column(name)?.cast(&DataType::UInt64)?.u64()?.get(0).unwrap_or(0))
}

pub(crate) fn f64_at(df: &DataFrame, name: &str) -> PolarsResult<f64> {
    Ok(df.column(name)?.cast(&DataType::Float64)?.f64()?.get(0).unwrap_or(0.0))
}

pub(crate) fn date_at(df: &DataFrame, name: &str) -> PolarsResult<Option<NaiveDate>> {
    let days = df.column(name)?.cast(&DataType::Int32)?.i32()?.get(0);
    Ok(days.and_then(crate::dates::from_epoch_days))
}

fn counts(lf: LazyFrame, by: Expr) -> PolarsResult<BTreeMap<String, u64>> {
    let df = collect_streaming(
        lf.group_by([by.cast(DataType::String).fill_null(lit("none")).alias("k")]).agg([len().alias("n")]),
    )?;
    let keys = df.column("k")?.str()?.clone();
    let n = df.column("n")?.cast(&DataType::UInt64)?;
    let n = n.u64()?;
    Ok(keys.iter().zip(n.iter()).map(|(k, v)| (k.unwrap_or("none").to_string(), v.unwrap_or(0))).collect())
}

/// One pass over the bills, for a table the validation did not summarise on its way.
pub(crate) fn billing_summary(billing: &LazyFrame) -> PolarsResult<BillingSummary> {
    let bill = collect_streaming(billing.clone().select([
        len().alias("rows"),
        col(c::CUSTOMER_ID).n_unique().alias("customers"),
        col(c::BILL_MONTH).min().alias("first"),
        col(c::BILL_MONTH).max().alias("last"),
        col(c::BILL_MONTH).n_unique().alias("months"),
        col(c::TOTAL_CHARGE).sum().alias("charge"),
    ]))?;
    Ok(BillingSummary {
        rows: u64_at(&bill, "rows")?,
        customers_billed: u64_at(&bill, "customers")?,
        first_month: date_at(&bill, "first")?,
        last_month: date_at(&bill, "last")?,
        months: u64_at(&bill, "months")?,
        total_charge: f64_at(&bill, "charge")?,
    })
}

pub fn summarize(v: &Validated) -> PolarsResult<DatasetSummary> {
    let customers = v.tables[&Table::Customers].clone();
    let billing = v.tables[&Table::Billing].clone();

    let cust = collect_streaming(customers.clone().select([
        len().alias("n"),
        col(c::CHURN_DATE).is_not_null().sum().alias("churned"),
        col(c::MARKET_ID).n_unique().alias("markets"),
    ]))?;
    let n_customers = u64_at(&cust, "n")?;
    let churned = u64_at(&cust, "churned")?;

    let billing_summary = match &v.billing {
        Some(found) => found.clone(),
        None => billing_summary(&billing)?,
    };
    let (first, last) = (billing_summary.first_month, billing_summary.last_month);

    let monthly_churn_rate = match (first, last) {
        (Some(first), Some(last)) => {
            let end = last.checked_add_months(chrono::Months::new(1)).unwrap_or(last);
            let in_window = collect_streaming(
                customers
                    .clone()
                    .filter(col(c::CHURN_DATE).gt_eq(lit(first)).and(col(c::CHURN_DATE).lt(lit(end))))
                    .select([len().alias("n")]),
            )?;
            let churns = u64_at(&in_window, "n")? as f64;
            churns / (billing_summary.rows.max(1) as f64)
        }
        _ => 0.0,
    };

    let surveys = match v.tables.get(&Table::Surveys) {
        None => None,
        Some(s) => {
            let df = collect_streaming(s.clone().select([
                len().alias("n"),
                col(c::CUSTOMER_ID).n_unique().alias("customers"),
                col(c::SURVEY_DATE).min().alias("first"),
                col(c::SURVEY_DATE).max().alias("last"),
            ]))?;
            let surveyed = u64_at(&df, "customers")?;
            Some(SurveySummary {
                surveys: u64_at(&df, "n")?,
                customers_surveyed: surveyed,
                coverage: surveyed as f64 / n_customers.max(1) as f64,
                first: date_at(&df, "first")?,
                last: date_at(&df, "last")?,
            })
        }
    };

    Ok(DatasetSummary {
        tables: v.report.tables.clone(),
        customers: n_customers,
        active_customers: n_customers - churned,
        plan_mix: counts(customers.clone(), col(c::PLAN_TYPE))?,
        contract_mix: counts(customers.clone(), col(c::CONTRACT_MONTHS))?,
        markets: u64_at(&cust, "markets")?,
        billing: billing_summary,
        churn: ChurnSummary { churned, churned_share: churned as f64 / n_customers.max(1) as f64, monthly_churn_rate },
        surveys,
        rows_rejected: v.report.rows_rejected(),
        violations: v.report.violations.clone(),
    })
}
