//! sBG on contract cohorts, from survivor counts or a dataset, with DERL.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use loyalty_models::{Sbg, sbg};
use serde_json::{Value, json};

use super::FitReport;
use crate::PipelineError;
use crate::dataset::{DataOptions, default_as_of, load_validated};
use crate::error::Result;

/// Where the cohorts come from.
pub enum SbgSource {
    /// Survivors of each cohort at periods 0, 1, 2, ...
    Counts(Vec<Vec<f64>>),
    /// The postpaid cohorts of a dataset on one contract length (default: the most
    /// common) observed up to `as_of` (default: the end of the last billed month).
    Dataset { data: DataOptions, contract_months: Option<i64>, as_of: Option<NaiveDate> },
}

#[derive(Debug, Clone)]
pub struct SbgOptions {
    /// Discount rate per period for DERL.
    pub discount: f64,
    /// DERL of a customer who has made this many renewals.
    pub renewals: u32,
    /// Periods to project the survivor curve to (default: the observed ones plus 5).
    pub project: Option<u32>,
}

impl Default for SbgOptions {
    fn default() -> Self {
        Self { discount: 0.1, renewals: 0, project: None }
    }
}

/// One cohort's counts from text like `1000,631,468`.
pub fn parse_survivors(counts: &[String]) -> Result<Vec<f64>> {
    counts
        .iter()
        .map(|s| s.trim().parse::<f64>())
        .collect::<Result<_, _>>()
        .map_err(|e| PipelineError::Settings(format!("--survivors: {e}: give counts like 1000,631,468")))
}

fn cohorts_of(source: SbgSource, extra: &mut BTreeMap<&'static str, Value>) -> Result<Vec<Vec<f64>>> {
    match source {
        SbgSource::Counts(c) => Ok(c),
        SbgSource::Dataset { data, contract_months, as_of } => {
            let v = load_validated(&data)?;
            let as_of = match as_of {
                Some(d) => d,
                None => default_as_of(&v)?,
            };
            let (months, cohorts) = crate::cohorts::dataset_cohorts(&v, as_of, contract_months)?;
            extra.insert("contract_months", json!(months));
            extra.insert("as_of", json!(as_of.to_string()));
            Ok(cohorts)
        }
    }
}

/// The observed and projected curve, with each period's modelled retention.
fn curve(m: &Sbg, cohorts: &[Vec<f64>], horizon: u32) -> Value {
    let points = sbg::curve(m, cohorts, horizon).into_iter().map(|p| {
        json!({
            "period": p.period,
            "observed_survival": p.observed,
            "model_survival": p.model,
            "model_retention": if p.period > 0 { json!(m.retention(p.period)) } else { Value::Null },
        })
    });
    Value::Array(points.collect())
}

pub fn fit_sbg(source: SbgSource, opts: &SbgOptions) -> Result<FitReport> {
    let started = std::time::Instant::now();
    let mut extra: BTreeMap<&'static str, Value> = BTreeMap::new();
    let cohorts = cohorts_of(source, &mut extra)?;
    sbg::check(&cohorts)?;
    if cohorts.is_empty() {
        return Err(PipelineError::Data("no cohort has completed a contract term by the as-of date".into()));
    }
    let (m, o) = sbg::fit(&cohorts);
    let horizon = opts.project.unwrap_or(sbg::longest_cohort(&cohorts) + 5);
    extra.insert("cohorts", json!(cohorts.len()));
    // Large alpha and beta mean no heterogeneity: every customer churns with the same
    // probability per period, alpha / (alpha + beta).
    extra.insert("mean_churn_per_period", json!(m.alpha / (m.alpha + m.beta)));
    // Churned / customer-periods at risk, over every cohort: the homogeneous estimate.
    let (lost, at_risk) =
        cohorts.iter().flat_map(|n| n.windows(2)).fold((0.0, 0.0), |(l, r), w| (l + w[0] - w[1], r + w[0]));
    extra.insert("pooled_churn_per_period", json!(lost / at_risk.max(1.0)));
    let derl = m.derl(opts.discount, opts.renewals);
    extra.insert("derl", json!({"discount": opts.discount, "renewals": opts.renewals, "value": derl}));
    extra.insert("curve", curve(&m, &cohorts, horizon));
    let customers = cohorts.iter().map(|n| n[0]).sum();
    let mut r = FitReport::new("sbg", &Sbg::NAMES, &o, customers, cohorts.len());
    r.extra = extra;
    r.wall_seconds = started.elapsed().as_secs_f64();
    Ok(r)
}
