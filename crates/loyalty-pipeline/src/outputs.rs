//! Everything `loyalty run` computes, and how it is laid out in the output folder.

use std::path::Path;

use loyalty_contract::Validated;
use polars::prelude::*;

use crate::churn::{ChurnFit, ChurnReport};
use crate::cohorts::SbgRetention;
use crate::dataset::{Rewrite, write_rejects};
use crate::error::Result;
use crate::pseudonym::Pseudonymizer;

/// The tables, models and figures' data of one run.
pub struct Outputs {
    /// One row per customer active at T: features, value, loyalty, churn, segments.
    pub customers: DataFrame,
    pub segments: DataFrame,
    pub tiers: DataFrame,
    pub lorenz: DataFrame,
    /// Gini coefficient of monthly margin.
    pub gini: f64,
    /// Where each segment axis turns high (no CPV cut: CPV could not be estimated).
    pub segment_cuts: loyalty_features::segments::Cuts,
    pub curves: DataFrame,
    pub zones: DataFrame,
    pub gaps: DataFrame,
    pub drivers: DataFrame,
    pub signals: DataFrame,
    pub winback: DataFrame,
    pub economics: DataFrame,
    /// The Kaplan-Meier curves the customers without a churn score fall back on.
    pub survival: DataFrame,
    /// sBG on contract cohorts, when they exist.
    pub sbg: Option<SbgRetention>,
    /// The churn model, when the history was long enough to train one.
    pub churn: Option<ChurnFit>,
}

/// `model_quality.json`: the churn model's report, or why there is none.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(untagged)]
pub enum ModelQuality<'a> {
    Fitted(&'a ChurnReport),
    NotFitted { fitted: bool, reason: &'static str },
}

impl Outputs {
    pub fn model_quality(&self) -> ModelQuality<'_> {
        match &self.churn {
            Some(fit) => ModelQuality::Fitted(&fit.report),
            None => ModelQuality::NotFitted {
                fitted: false,
                reason: "the data is too short for out-of-time validation, or has no churner",
            },
        }
    }

    /// Replace the customer ids of every per-customer table.
    pub(crate) fn pseudonymize(&mut self, p: &Pseudonymizer) -> PolarsResult<()> {
        p.apply(&mut self.customers)?;
        p.apply(&mut self.winback)
    }

    /// Write every table into `dir`: the large ones as Parquet, the ones analysts open
    /// in a spreadsheet as CSV too, the small ones as CSV only.
    pub(crate) fn write(&mut self, dir: &Path) -> Result<()> {
        loyalty_io::write_parquet(&mut self.customers, &dir.join("customers.parquet"))?;
        loyalty_io::write_parquet(&mut self.survival, &dir.join("survival.parquet"))?;
        for (name, df) in [
            ("segments", &mut self.segments),
            ("tiers", &mut self.tiers),
            ("lorenz", &mut self.lorenz),
            ("curves", &mut self.curves),
            ("winback", &mut self.winback),
        ] {
            loyalty_io::write_parquet(df, &dir.join(format!("{name}.parquet")))?;
            loyalty_io::write_csv(df, &dir.join(format!("{name}.csv")))?;
        }
        for (name, df) in [
            ("zones", &mut self.zones),
            ("satisfaction_gap", &mut self.gaps),
            ("drivers", &mut self.drivers),
            ("signals", &mut self.signals),
            ("retention_economics", &mut self.economics),
        ] {
            loyalty_io::write_csv(df, &dir.join(format!("{name}.csv")))?;
        }
        loyalty_io::write_json(&self.model_quality(), &dir.join("model_quality.json"))?;
        Ok(())
    }
}

/// The rejected rows of a lenient run into `dir/rejects`, pseudonymised when the
/// outputs are.
pub(crate) fn write_run_rejects(v: &Validated, dir: &Path, pseudonyms: Option<&Pseudonymizer>) -> Result<()> {
    if v.rejects.is_empty() {
        return Ok(());
    }
    let rewrite = |df: &mut DataFrame| pseudonyms.map_or(Ok(()), |p| p.apply(df));
    let rewrite: Option<Rewrite> = pseudonyms.is_some().then_some(&rewrite as _);
    write_rejects(v, &dir.join("rejects"), rewrite)
}
