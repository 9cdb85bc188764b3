//! `loyalty run`: every stage of the pipeline (validate, churn model, features,
//! segments, curves, retention, report), outputs staged in a temporary folder and
//! swapped into `--out` only when everything succeeded.

use std::collections::HashMap;
use std::time::Instant;

use anyhow::Context;
use loyalty_contract::col as c;
use loyalty_features::curves::satisfaction_curves;
use loyalty_features::{names as n, retention, segments};
use polars::prelude::*;
use serde::Serialize;
use serde_json::json;
use tracing::{info, warn};

use crate::InputRejected;
use crate::cli::RunArgs;
use crate::commands::features::{billing_engine, end_of_month};
use crate::commands::run_report;
use crate::commands::{load_validated, write_rejects};
use crate::config::RunConfig;

/// Wall time and peak memory of one stage.
#[derive(Debug, Clone, Serialize)]
pub struct StageRecord {
    pub stage: &'static str,
    pub wall_seconds: f64,
    /// Peak resident memory of the process during the stage (Linux: VmHWM after a reset).
    pub peak_rss_mib: Option<f64>,
}

struct Stages {
    done: Vec<StageRecord>,
    current: Option<(&'static str, Instant, indicatif::ProgressBar)>,
    total: usize,
}

/// Reset the kernel's peak-RSS counter (Linux >= 4.0), so each stage reports its own peak.
fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

impl Stages {
    fn new(total: usize) -> Self {
        Self { done: Vec::new(), current: None, total }
    }

    /// End the current stage and start `stage`, unless the run was asked to stop.
    fn begin(&mut self, stage: &'static str) -> Result<(), loyalty_contract::cancel::Interrupted> {
        self.end();
        loyalty_contract::cancel::check()?;
        reset_peak_rss();
        let k = self.done.len() + 1;
        let bar = crate::logging::stage_spinner(&format!("[{k}/{}] {stage}", self.total));
        self.current = Some((stage, Instant::now(), bar));
        Ok(())
    }

    fn end(&mut self) {
        if let Some((stage, started, bar)) = self.current.take() {
            bar.finish_and_clear();
            let record =
                StageRecord { stage, wall_seconds: started.elapsed().as_secs_f64(), peak_rss_mib: peak_rss_mib() };
            info!(
                "stage {stage} done in {:.2}s (peak {:.0} MiB)",
                record.wall_seconds,
                record.peak_rss_mib.unwrap_or(f64::NAN)
            );
            self.done.push(record);
        }
    }
}

/// The environment variable holding the pseudonymisation key.
pub const PSEUDONYM_KEY_VAR: &str = "LOYALTY_PSEUDONYM_KEY";

/// Keyed hashing of customer ids: `c` + 16 hex digits of BLAKE3 keyed with a key
/// derived from the secret. The same id and secret always give the same pseudonym, so
/// outputs of different runs still join; without the secret the ids cannot be recovered
/// or checked by guessing.
pub struct Pseudonymizer {
    key: [u8; 32],
}

impl Pseudonymizer {
    pub fn from_env() -> anyhow::Result<Self> {
        let secret = std::env::var(PSEUDONYM_KEY_VAR).map_err(|_| {
            anyhow::anyhow!("--pseudonymize-ids needs a secret key in the environment variable {PSEUDONYM_KEY_VAR}")
        })?;
        if secret.len() < 16 {
            anyhow::bail!("{PSEUDONYM_KEY_VAR} is too short: use at least 16 characters of secret");
        }
        Ok(Self { key: blake3::derive_key("loyalty 2026 customer id pseudonyms", secret.as_bytes()) })
    }

    pub fn pseudonym(&self, id: &str) -> String {
        let h = blake3::keyed_hash(&self.key, id.as_bytes());
        format!("c{}", &h.to_hex()[..16])
    }

    /// Replace every id column (customer_id, referred_id) of `df` with its pseudonym.
    pub fn apply(&self, df: &mut DataFrame) -> PolarsResult<()> {
        for name in [c::CUSTOMER_ID, c::REFERRED_ID] {
            let Ok(column) = df.column(name) else { continue };
            let text = column.as_materialized_series().cast(&DataType::String)?;
            let hashed: Vec<Option<String>> = text.str()?.iter().map(|v| v.map(|id| self.pseudonym(id))).collect();
            df.with_column(Column::new(name.into(), hashed))?;
        }
        Ok(())
    }
}

/// Contract months, the sBG fit and, per period t, (t, pooled observed, sBG) survival.
pub type SbgRetention = (i64, loyalty_models::Sbg, Vec<(u32, Option<f64>, f64)>);

/// Everything the run computed, for the files and the report.
pub struct Outputs {
    pub customers: DataFrame,
    pub segments: DataFrame,
    pub tiers: DataFrame,
    pub lorenz: DataFrame,
    pub gini: f64,
    pub curves: DataFrame,
    pub zones: DataFrame,
    pub gaps: DataFrame,
    pub drivers: DataFrame,
    pub signals: DataFrame,
    pub winback: DataFrame,
    pub economics: DataFrame,
    pub survival: DataFrame,
    /// sBG on contract cohorts, when they exist.
    pub sbg: Option<SbgRetention>,
    pub model_quality: serde_json::Value,
    pub churn: Option<crate::commands::churn::ChurnFit>,
}

fn resolve_config(args: &RunArgs) -> anyhow::Result<RunConfig> {
    let mut cfg = match &args.config {
        Some(path) => RunConfig::load(path)?,
        None => RunConfig::default(),
    };
    let m = &args.model;
    if let Some(x) = m.margin_rate {
        cfg.model.margin_rate = x;
    }
    if let Some(x) = m.discount_rate {
        cfg.model.annual_discount_rate = x;
    }
    if let Some(x) = m.valuation_months {
        cfg.model.valuation_months = x;
    }
    if let Some(x) = m.horizon_months {
        cfg.model.churn_horizon_months = x;
    }
    if let Some(e) = billing_engine(m.billing_engine) {
        cfg.model.billing_engine = e;
    }
    if args.pseudonymize_ids {
        cfg.output.pseudonymize_ids = true;
    }
    cfg.check()?;
    Ok(cfg)
}

pub fn run(args: RunArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    let command_line: Vec<String> = std::env::args().collect();
    let mut cfg = resolve_config(&args)?;
    // Fail before any work when the key is missing.
    let pseudonyms = if cfg.output.pseudonymize_ids { Some(Pseudonymizer::from_env()?) } else { None };
    // Every reason --out cannot be written is found here, before any stage runs; the
    // lock it takes keeps a second run off the same folder until this one ends.
    let inputs: Vec<&std::path::Path> =
        std::iter::once(args.data.data.as_path()).chain(args.config.as_deref()).collect();
    let staged = loyalty_io::OutputDir::begin(&args.out, loyalty_io::Holds::Outputs, &inputs)
        .with_context(|| format!("preparing {}", args.out.display()))?;
    let mut stages = Stages::new(9);

    stages.begin("validate")?;
    let validated = load_validated(&args.data)?;
    let summary = loyalty_contract::summary::summarize(&validated)
        .map_err(anyhow::Error::from)
        .context("summarising the dataset")?;
    let inputs = loyalty_io::fingerprints(&args.data.data)?;
    // T: flag or environment, else the config, else the end of the last billed month.
    let as_of = match (args.model.as_of, cfg.as_of_pinned) {
        (Some(d), _) => d,
        (None, true) => cfg.model.as_of,
        (None, false) => match summary.billing.last_month {
            Some(last) => end_of_month(last)?,
            None => return Err(InputRejected("billing has no rows: nothing to run on".into()).into()),
        },
    };
    cfg.model.as_of = as_of;
    cfg.model.engine = crate::commands::cluster::engine(&args.engine, &args.data.data, &args.out, &validated)?;
    let params = cfg.model.clone();
    let h = params.churn_horizon_months;

    // Features at T once: the classifier scores them and CLV reads the scores back.
    stages.begin("features")?;
    let (mut customers, curves_km) =
        loyalty_features::customer_features(&validated.tables, &params).context("computing features")?;

    stages.begin("churn model")?;
    let churn = match crate::commands::churn::fit_churn(&validated, as_of, h, &cfg.churn, &params, Some(&customers)) {
        Ok(fit) => Some(fit),
        Err(e) if e.downcast_ref::<InputRejected>().is_some() => {
            warn!("no churn classifier ({e}); loyalty comes from the Kaplan-Meier curves alone");
            None
        }
        Err(e) => return Err(e.context("fitting the churn model")),
    };

    stages.begin("clv")?;
    if let Some(fit) = &churn {
        let p_col = format!("p_churn_{h}m");
        let ids = fit.scores.column(c::CUSTOMER_ID)?.i64()?;
        let p = fit.scores.column(&p_col)?.f64()?;
        let map: HashMap<i64, f64> = ids.iter().zip(p.iter()).filter_map(|(id, p)| Some((id?, p?))).collect();
        let model = loyalty_features::ChurnScores { horizon_months: h, p_churn: &map, fallback: &curves_km };
        loyalty_features::with_survival(&mut customers, &params, &model)
            .map_err(anyhow::Error::from)
            .context("CLV from the churn scores")?;
    }
    let survival = n::survival_at(h);
    let p_churn = format!("p_churn_{h}m");
    let mut customers = customers
        .lazy()
        .with_columns([
            col(survival.as_str()).alias("loyalty"),
            (lit(1.0) - col(survival.as_str())).alias(p_churn.as_str()),
        ])
        .collect()?;
    // The churn model and reasons of each scored customer, placed by customer_id (no
    // join: it would copy every column of the table).
    match &churn {
        Some(fit) => {
            let index: HashMap<i64, IdxSize> = fit
                .scores
                .column(c::CUSTOMER_ID)?
                .i64()?
                .iter()
                .enumerate()
                .filter_map(|(i, id)| Some((id?, i as IdxSize)))
                .collect();
            let at: IdxCa = customers
                .column(c::CUSTOMER_ID)?
                .i64()?
                .iter()
                .map(|id| id.and_then(|id| index.get(&id).copied()))
                .collect();
            let placed = fit.scores.select(["churn_model", crate::commands::churn::REASONS])?.take(&at)?;
            customers.hstack_mut(placed.columns())?;
            customers = customers.lazy().with_column(col("churn_model").fill_null(lit("kaplan_meier"))).collect()?;
        }
        None => customers = customers.lazy().with_columns([lit("kaplan_meier").alias("churn_model")]).collect()?,
    }

    stages.begin("segments")?;
    let customers = segments::assign(
        customers,
        "loyalty",
        cfg.segments.split()?,
        cfg.segments.tier_shares,
        cfg.curves.satisfaction_scale,
    )
    .map_err(anyhow::Error::from)
    .context("assigning segments")?;
    let segment_table = segments::segment_table(&customers, "loyalty")?;
    let tier_table = segments::tier_table(&customers)?;
    let (lorenz, gini) = segments::lorenz(&customers)?;

    stages.begin("curves")?;
    let curve_tables = satisfaction_curves(&validated.tables, &params, &cfg.curves, &customers, "loyalty")
        .context("satisfaction-loyalty curves")?;
    let signals = match &churn {
        Some(fit) => retention::signal_table(&fit.test_frame, "churned")?,
        None => DataFrame::empty(),
    };

    stages.begin("retention")?;
    let winback = retention::winback(&validated.tables, &params, cfg.output.winback_months)
        .map_err(anyhow::Error::from)
        .context("win-back list")?;
    let economics = retention::retention_economics(&customers, &params, "loyalty")
        .map_err(anyhow::Error::from)
        .context("retention economics")?;
    let sbg = match crate::commands::fit::dataset_cohorts(&validated, as_of, None) {
        Ok((months, cohorts)) if !cohorts.is_empty() && loyalty_models::sbg::check(&cohorts).is_ok() => {
            let (m, _) = loyalty_models::sbg::fit(&cohorts);
            let longest = cohorts.iter().map(Vec::len).max().unwrap_or(1) as u32 - 1;
            Some((months, m, crate::commands::fit::sbg_curve(&m, &cohorts, longest + 4)))
        }
        Ok(_) => None,
        Err(e) if e.downcast_ref::<InputRejected>().is_some() => None,
        Err(e) => return Err(e.context("sBG retention curves")),
    };
    let model_quality = match &churn {
        Some(fit) => fit.report.clone(),
        None => {
            json!({"fitted": false, "reason": "the data is too short for out-of-time validation, or has no churner"})
        }
    };
    let mut out = Outputs {
        customers,
        segments: segment_table,
        tiers: tier_table,
        lorenz,
        gini,
        curves: curve_tables.curves,
        zones: curve_tables.zones,
        gaps: curve_tables.gaps,
        drivers: curve_tables.drivers,
        signals,
        winback,
        economics,
        survival: curves_km.table()?,
        sbg,
        model_quality,
        churn,
    };
    if let Some(p) = &pseudonyms {
        p.apply(&mut out.customers)?;
        p.apply(&mut out.winback)?;
    }

    stages.begin("report")?;
    let html = run_report::document(&out, &summary, &cfg, &args.data.data, env!("CARGO_PKG_VERSION")).html();

    stages.begin("write")?;
    let dir = staged.path().to_path_buf();
    if !validated.rejects.is_empty() {
        let rewrite = |df: &mut DataFrame| pseudonyms.as_ref().map_or(Ok(()), |p| p.apply(df));
        write_rejects(&validated, &dir.join("rejects"), pseudonyms.is_some().then_some(&rewrite as _))?;
    }
    loyalty_io::write_parquet(&mut out.customers, &dir.join("customers.parquet"))?;
    loyalty_io::write_parquet(&mut out.survival, &dir.join("survival.parquet"))?;
    for (name, df) in [
        ("segments", &mut out.segments),
        ("tiers", &mut out.tiers),
        ("lorenz", &mut out.lorenz),
        ("curves", &mut out.curves),
        ("winback", &mut out.winback),
    ] {
        loyalty_io::write_parquet(df, &dir.join(format!("{name}.parquet")))?;
        loyalty_io::write_csv(df, &dir.join(format!("{name}.csv")))?;
    }
    for (name, df) in [
        ("zones", &mut out.zones),
        ("satisfaction_gap", &mut out.gaps),
        ("drivers", &mut out.drivers),
        ("signals", &mut out.signals),
        ("retention_economics", &mut out.economics),
    ] {
        loyalty_io::write_csv(df, &dir.join(format!("{name}.csv")))?;
    }
    loyalty_io::write_json(&out.model_quality, &dir.join("model_quality.json"))?;
    loyalty_io::write_text(&html, &dir.join("report.html"))?;
    stages.end();

    let rejects: u64 = summary.rows_rejected;
    let run_json = json!({
        "version": env!("CARGO_PKG_VERSION"),
        "command_line": command_line,
        "config": cfg,
        "data": args.data.data.display().to_string(),
        "lenient": args.data.lenient,
        "engine": format!("{:?}", cfg.model.engine),
        "as_of": as_of.to_string(),
        "inputs": {
            "tables": summary.tables,
            "files": inputs,
        },
        "rows_rejected": rejects,
        "violations": summary.violations,
        "dataset": summary,
        "active_customers_at_as_of": out.customers.height(),
        "churn_classifier": out.churn.is_some(),
        "margin_gini": out.gini,
        "top_20_percent": top_20_percent(&out.tiers)?,
        "pseudonymized_ids": pseudonyms.is_some(),
        "stages": stages.done,
        "wall_seconds": started.elapsed().as_secs_f64(),
        "peak_rss_mib": stages.done.iter().filter_map(|s| s.peak_rss_mib).fold(0.0, f64::max),
    });
    loyalty_io::write_json(&run_json, &dir.join("run.json"))?;
    let target = staged.commit().with_context(|| format!("moving outputs into {}", args.out.display()))?;
    info!("wrote {} in {:.2}s", target.display(), started.elapsed().as_secs_f64());
    eprintln!("report: {}", target.join("report.html").display());
    Ok(())
}

/// The 80/20 check: shares of revenue and margin from the top 20% of customers by
/// margin (platinum + gold at the default tier shares).
fn top_20_percent(tiers: &DataFrame) -> anyhow::Result<serde_json::Value> {
    let top = tiers.clone().lazy().filter(col("tier").eq(lit("platinum")).or(col("tier").eq(lit("gold"))));
    let sums = top.select([col("share").sum(), col("revenue_share").sum(), col("margin_share").sum()]).collect()?;
    let get = |c: &str| -> anyhow::Result<f64> { Ok(sums.column(c)?.f64()?.get(0).unwrap_or(f64::NAN)) };
    Ok(
        json!({"customer_share": get("share")?, "revenue_share": get("revenue_share")?, "margin_share": get("margin_share")?}),
    )
}
