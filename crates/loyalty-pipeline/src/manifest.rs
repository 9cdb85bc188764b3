//! `run.json`: what a run read, with which settings, what it found, and how long
//! each stage took.

use loyalty_contract::reads::TableReads;
use loyalty_contract::summary::DatasetSummary;
use loyalty_contract::{TableReport, Violation};
use polars::prelude::*;
use serde::Serialize;

use crate::error::Result;
use crate::observer::StageRecord;
use crate::outputs::Outputs;
use crate::run::RunRequest;
use crate::settings::RunConfig;

#[derive(Serialize)]
pub struct RunInputs {
    pub tables: Vec<TableReport>,
    pub files: Vec<loyalty_io::InputFile>,
    /// How much of each table the run decoded, from its files and from its bucket copy.
    pub decoded: Vec<TableReads>,
}

/// The 80/20 check: shares of customers, revenue and margin of the top 20% of
/// customers by margin (platinum + gold at the default tier shares).
#[derive(Debug, Clone, Copy, Serialize)]
pub struct TopShares {
    pub customer_share: f64,
    pub revenue_share: f64,
    pub margin_share: f64,
}

#[derive(Serialize)]
pub struct RunManifest {
    pub version: &'static str,
    pub command_line: Vec<String>,
    pub config: RunConfig,
    pub data: String,
    pub lenient: bool,
    pub engine: String,
    pub as_of: String,
    pub inputs: RunInputs,
    pub rows_rejected: u64,
    pub violations: Vec<Violation>,
    pub dataset: DatasetSummary,
    pub active_customers_at_as_of: usize,
    pub churn_classifier: bool,
    pub margin_gini: f64,
    /// Where CCV, CPV and loyalty turn high; `cpv` is null when CPV could not be
    /// estimated (no services or service catalog), and then nobody is high CPV.
    pub segment_cuts: loyalty_features::segments::Cuts,
    pub cpv_estimated: bool,
    pub top_20_percent: TopShares,
    pub pseudonymized_ids: bool,
    pub stages: Vec<StageRecord>,
    pub wall_seconds: f64,
    /// The largest stage peak.
    pub peak_rss_mib: f64,
}

impl RunManifest {
    pub(crate) fn new(
        req: &RunRequest,
        cfg: &RunConfig,
        summary: DatasetSummary,
        (files, decoded): (Vec<loyalty_io::InputFile>, Vec<TableReads>),
        out: &Outputs,
        stages: Vec<StageRecord>,
        started: std::time::Instant,
    ) -> Result<Self> {
        Ok(RunManifest {
            version: env!("CARGO_PKG_VERSION"),
            command_line: req.command_line.clone(),
            config: cfg.clone(),
            data: req.data.data.display().to_string(),
            lenient: req.data.lenient,
            engine: format!("{:?}", cfg.model.engine),
            as_of: cfg.model.as_of.to_string(),
            inputs: RunInputs { tables: summary.tables.clone(), files, decoded },
            rows_rejected: summary.rows_rejected,
            violations: summary.violations.clone(),
            dataset: summary,
            active_customers_at_as_of: out.customers.height(),
            churn_classifier: out.churn.is_some(),
            margin_gini: out.gini,
            segment_cuts: out.segment_cuts,
            cpv_estimated: out.segment_cuts.cpv.is_some(),
            top_20_percent: top_20_percent(&out.tiers)?,
            pseudonymized_ids: cfg.output.pseudonymize_ids,
            peak_rss_mib: stages.iter().filter_map(|s| s.peak_rss_mib).fold(0.0, f64::max),
            stages,
            wall_seconds: started.elapsed().as_secs_f64(),
        })
    }
}

fn top_20_percent(tiers: &DataFrame) -> Result<TopShares> {
    let top = tiers.clone().lazy().filter(col("tier").eq(lit("platinum")).or(col("tier").eq(lit("gold"))));
    let sums = top.select([col("share").sum(), col("revenue_share").sum(), col("margin_share").sum()]).collect()?;
    let get = |c: &str| -> Result<f64> { Ok(sums.column(c)?.f64()?.get(0).unwrap_or(f64::NAN)) };
    Ok(TopShares {
        customer_share: get("share")?,
        revenue_share: get("revenue_share")?,
        margin_share: get("margin_share")?,
    })
}
