//! `loyalty churn`: the churn classifier for postpaid customers.
//!
//! `train` builds labelled snapshots (features as of T0, label = churned in
//! (T0, T0 + h]), validates out of time (trained on earlier T0s, tested on the latest
//! T0 whose label window has ended by T), then refits on every snapshot and scores the
//! postpaid customers active at T. `evaluate` is for datasets with one snapshot only
//! (no history): stratified k-fold cross-validation.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::Write;
use std::time::Instant;

use crate::config::{ChurnConfig, Classifier};
use anyhow::Context;
use chrono::{Months, NaiveDate};
use loyalty_contract::partition::Slice;
use loyalty_contract::{Table, Validated, col as c};
use loyalty_features::transactions::{cols as rc, rfm_summary};
use loyalty_features::{FeatureParams, Tables, customer_features, names as n};
use loyalty_models::churn::{Design, Gbm, Logistic, Metrics, Platt, evaluate, stratified_folds};
use loyalty_models::{BgNbd, Rfm, bgnbd, rfm};
use polars::prelude::*;
use serde::Serialize;
use serde_json::json;

use crate::InputRejected;
use crate::cli::{ChurnArgs, ChurnCommand, ChurnEvalArgs, ChurnTrainArgs, Format};
use crate::commands::features::default_as_of;
use crate::commands::load_validated;

/// The output column of each customer's top churn reasons.
pub const REASONS: &str = "churn_reasons";
/// Columns that are not model inputs: keys, dates, text, and the value outputs that
/// already fold in a survival curve.
const NOT_FEATURES: [&str; 4] = [c::CUSTOMER_ID, "ccv", "cpv", "clv"];

/// One labelled snapshot: the postpaid customers active at `as_of` (or a uniform
/// sample of them).
struct Snapshot {
    /// Prepaid customers active at the snapshot (not in the design: BG/NBD scores them).
    prepaid_ids: Vec<i64>,
    /// The postpaid rows' behavioural signals and `churned` (the label).
    frame: DataFrame,
    design: Design,
    y: Vec<f64>,
    /// Postpaid customers active at the snapshot, sampled or not.
    population: usize,
}

fn month_end_minus(t: NaiveDate, months: u32) -> anyhow::Result<NaiveDate> {
    let next = t.succ_opt().context("date overflow")?;
    let back = next.checked_sub_months(Months::new(months)).context("date underflow")?;
    back.pred_opt().context("date underflow")
}

/// Postpaid customers signed up by `as_of` and not churned by then.
fn postpaid_active(v: &Validated, as_of: NaiveDate) -> anyhow::Result<usize> {
    let df = loyalty_contract::collect_streaming(
        v.tables[&Table::Customers]
            .clone()
            .filter(col(c::SIGNUP_DATE).lt_eq(lit(as_of)))
            .filter(col(c::CHURN_DATE).is_null().or(col(c::CHURN_DATE).gt(lit(as_of))))
            .filter(col(c::PLAN_TYPE).eq(lit("postpaid")))
            .select([len().cast(DataType::UInt64).alias("n")]),
    )?;
    Ok(df.column("n")?.u64()?.get(0).unwrap_or(0) as usize)
}

/// The feature rows the classifier reads: postpaid customers, competition level as
/// a number.
fn model_rows(features: LazyFrame) -> LazyFrame {
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

/// The model inputs of a feature table: every numeric column but keys and value
/// outputs, then one indicator per catalog service.
fn feature_names(df: &DataFrame, held: &BTreeMap<String, HashSet<i64>>) -> Vec<String> {
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
fn design_of(
    df: &DataFrame,
    names: &[String],
    held: &BTreeMap<String, HashSet<i64>>,
) -> anyhow::Result<(Vec<i64>, Design)> {
    let ids: Vec<i64> = df.column(c::CUSTOMER_ID)?.i64()?.iter().map(|v| v.unwrap_or(-1)).collect();
    let mut columns = Vec::with_capacity(names.len());
    for name in names {
        if let Some(service) = name.strip_prefix("has_") {
            let holders = held.get(service);
            columns.push(ids.iter().map(|id| f64::from(u8::from(holders.is_some_and(|h| h.contains(id))))).collect());
            continue;
        }
        let s = df.column(name)?.as_materialized_series().cast(&DataType::Float64)?;
        columns.push(s.f64()?.iter().map(|v| v.unwrap_or(f64::NAN)).collect());
    }
    Ok((ids, Design::new(names.to_vec(), columns).map_err(|e| anyhow::anyhow!(e))?))
}

/// The labelled snapshot at `as_of`. When more than `cap` postpaid customers (0: no
/// cap) are active, the features are computed for a uniform hash sample of about
/// `cap` customers only (every table restricted to them), so a snapshot's memory and
/// time do not grow with the base; the comparable-customer statistics (percentile
/// scores, adoption cells, survival curves) then come from that sample.
fn snapshot(
    v: &Validated,
    as_of: NaiveDate,
    horizon: u32,
    names: Option<&[String]>,
    base: &FeatureParams,
    cap: usize,
) -> anyhow::Result<Snapshot> {
    let params = FeatureParams { as_of, churn_horizon_months: horizon, ..base.clone() };
    let population = postpaid_active(v, as_of)?;
    let tables = match cap {
        0 => v.tables.clone(),
        cap if population <= cap => v.tables.clone(),
        cap => {
            loyalty_features::restricted(&v.tables, Some(Slice::Sample { fraction: cap as f64 / population as f64 }))
        }
    };
    let (df, _) = customer_features(&tables, &params).with_context(|| format!("features as of {as_of}"))?;
    let end = as_of.checked_add_months(Months::new(horizon)).context("date overflow")?;
    let prepaid =
        df.clone().lazy().filter(col(c::PLAN_TYPE).eq(lit("prepaid"))).select([col(c::CUSTOMER_ID)]).collect()?;
    let prepaid_ids: Vec<i64> = prepaid.column(c::CUSTOMER_ID)?.i64()?.iter().flatten().collect();
    let churn = tables[&Table::Customers].clone().select([col(c::CUSTOMER_ID), col(c::CHURN_DATE).alias("__churn")]);
    let df = model_rows(df.lazy())
        .join(churn, [col(c::CUSTOMER_ID)], [col(c::CUSTOMER_ID)], JoinArgs::new(JoinType::Left))
        .with_column(
            col("__churn").gt(lit(as_of)).and(col("__churn").lt_eq(lit(end))).fill_null(lit(false)).alias("__label"),
        )
        .collect()?;
    let held = services_held(&tables, as_of)?;
    let chosen: Vec<String> = match names {
        Some(names) => names.to_vec(),
        None => feature_names(&df, &held),
    };
    let (_, design) = design_of(&df, &chosen, &held)?;
    let y: Vec<f64> = df.column("__label")?.bool()?.iter().map(|v| f64::from(u8::from(v == Some(true)))).collect();
    let frame = df
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
        .collect()?;
    Ok(Snapshot { prepaid_ids, frame, design, y, population })
}

/// Customer ids, P(churn) and the top reasons of each (joined by ", ").
type Scored = (Vec<i64>, Vec<f64>, StringChunked);

/// The postpaid customers of the feature table at T and their scores, 200,000 rows
/// of the table at a time: the design, the model's copies and its per-feature
/// contributions exist for one chunk only, and each chunk's reasons are kept as one
/// Arrow string array (at 10M customers a `String` per reason took gigabytes).
fn score_at(
    features: &DataFrame,
    names: &[String],
    held: &BTreeMap<String, HashSet<i64>>,
    score: impl Fn(&Design) -> (Vec<f64>, Vec<Vec<String>>),
) -> anyhow::Result<Scored> {
    const CHUNK: usize = 200_000;
    let (mut ids, mut p) = (Vec::new(), Vec::new());
    let mut reasons = StringChunked::from_iter_values(REASONS.into(), std::iter::empty::<&str>());
    for start in (0..features.height()).step_by(CHUNK) {
        loyalty_contract::cancel::check()?;
        let rows = model_rows(features.slice(start as i64, CHUNK).lazy()).collect()?;
        if rows.height() == 0 {
            continue;
        }
        let (chunk_ids, design) = design_of(&rows, names, held)?;
        let (cp, cr) = score(&design);
        ids.extend(chunk_ids);
        p.extend(cp);
        reasons.append_owned(StringChunked::from_iter_values(REASONS.into(), cr.iter().map(|r| r.join(", "))))?;
        tracing::debug!("scored rows {start}..{} of {}", start + CHUNK, features.height());
    }
    Ok((ids, p, reasons))
}

/// Prepaid customers: loyalty = P(still active h months after T) under BG/NBD fitted
/// to the top-ups up to T (weeks): P(alive at T) x P(no dropout at a purchase in the
/// next h months).
struct Prepaid {
    ids: Vec<i64>,
    loyalty: Vec<f64>,
    reasons: Vec<String>,
    model: BgNbd,
    log_likelihood: f64,
}

fn prepaid_loyalty(
    v: &Validated,
    t: NaiveDate,
    h: u32,
    ids: &[i64],
    base: &FeatureParams,
) -> anyhow::Result<Option<Prepaid>> {
    if !v.tables.contains_key(&Table::Topups) || ids.is_empty() {
        return Ok(None);
    }
    // The summaries one customer partition at a time (a per-customer, per-day group-by
    // of the top-ups): the fit keeps every customer's (x, t_x, T), compressed to its
    // distinct rows; the scores keep the customers asked for.
    let wanted: HashSet<i64> = ids.iter().copied().collect();
    let mut fit_rows: Vec<Rfm> = Vec::new();
    let mut asked: HashMap<i64, (f64, f64, f64)> = HashMap::with_capacity(ids.len());
    // The group-by holds one entry per customer and top-up day (~100 per prepaid
    // customer over three years): partitions of a quarter of the usual size (at 10M
    // customers x 36 months, 1M-customer partitions added 2 GiB at each).
    let finer = FeatureParams { customers_per_partition: base.customers_per_partition.div_ceil(4), ..base.clone() };
    for slice in loyalty_features::customer_slices(&v.tables, &finer)? {
        loyalty_contract::cancel::check()?;
        let part = loyalty_features::restricted(&v.tables, slice);
        let summary = rfm_summary(part[&Table::Customers].clone(), part[&Table::Topups].clone(), t, 7.0)?;
        let get = |name: &str| -> anyhow::Result<Vec<f64>> {
            Ok(summary
                .column(name)?
                .as_materialized_series()
                .cast(&DataType::Float64)?
                .f64()?
                .iter()
                .map(|v| v.unwrap_or(0.0))
                .collect())
        };
        let (x, t_x, big_t) = (get(rc::X)?, get(rc::T_X)?, get(rc::T)?);
        let rows: Vec<Rfm> = (0..x.len()).map(|i| Rfm { x: x[i], t_x: t_x[i], t: big_t[i], weight: 1.0 }).collect();
        fit_rows.extend(rfm::compress(&rows));
        tracing::debug!("BG/NBD summaries at {t}: {slice:?}, {} customers", summary.height());
        for (i, id) in summary.column(c::CUSTOMER_ID)?.i64()?.iter().enumerate() {
            if let Some(id) = id.filter(|id| wanted.contains(id)) {
                asked.insert(id, (x[i], t_x[i], big_t[i]));
            }
        }
    }
    if fit_rows.is_empty() {
        return Ok(None);
    }
    let (model, o) = bgnbd::fit(&rfm::compress(&fit_rows));
    let weeks = f64::from(h) * 365.25 / 12.0 / 7.0;
    let (mut kept, mut loyalty, mut reasons) = (Vec::new(), Vec::new(), Vec::new());
    for id in ids {
        let Some(&(x, t_x, big_t)) = asked.get(id) else { continue };
        kept.push(*id);
        loyalty.push(model.p_alive_after(weeks, x, t_x, big_t));
        reasons.push(format!("BG/NBD: {} repeat top-up days, the last {:.0} weeks ago", x, big_t - t_x));
    }
    Ok(Some(Prepaid { ids: kept, loyalty, reasons, model, log_likelihood: o.log_likelihood }))
}

/// Customers whose churn_date is in (from, to].
fn churned_between(v: &Validated, from: NaiveDate, to: NaiveDate) -> anyhow::Result<HashSet<i64>> {
    let df = v.tables[&Table::Customers]
        .clone()
        .filter(col(c::CHURN_DATE).gt(lit(from)).and(col(c::CHURN_DATE).lt_eq(lit(to))))
        .select([col(c::CUSTOMER_ID)]);
    let df = loyalty_contract::collect_streaming(df)?;
    Ok(df.column(c::CUSTOMER_ID)?.i64()?.iter().flatten().collect())
}

/// The customers holding each catalog service at the end of `as_of` (at most 50
/// services: an indicator feature each).
fn services_held(tables: &Tables, as_of: NaiveDate) -> anyhow::Result<BTreeMap<String, HashSet<i64>>> {
    let mut held: BTreeMap<String, HashSet<i64>> = BTreeMap::new();
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

/// A uniform, seeded sample of about `cap` of `n` rows (in order), or None when `n <= cap`:
/// boosting time grows with the rows, and a few hundred thousand rows are plenty for a
/// churn classifier. Uniform, so the calibration stays honest.
fn sample_rows(n: usize, cap: usize, seed: u64) -> Option<Vec<usize>> {
    if n <= cap || cap == 0 {
        return None;
    }
    let threshold = (cap as f64 / n as f64 * u64::MAX as f64) as u64;
    let splitmix = |i: u64| {
        let mut z = i.wrapping_add(seed).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    };
    Some((0..n).filter(|&i| splitmix(i as u64) < threshold).collect())
}

/// The final model of [`fit_churn`].
enum Fitted {
    Boosting(Box<Gbm>, Platt),
    Logistic(Logistic),
}

/// `d` and `y` cut to a uniform seeded sample of at most `cap` rows (0: all).
fn capped(d: Design, y: &[f64], cap: usize, seed: u64) -> (Design, Vec<f64>) {
    match sample_rows(d.rows, cap, seed) {
        None => (d, y.to_vec()),
        Some(rows) => (d.take(&rows), rows.iter().map(|&i| y[i]).collect()),
    }
}

/// The labels [`capped`] keeps for the same `cap` and `seed`.
fn capped_y(y: &[f64], cap: usize, seed: u64) -> Vec<f64> {
    match sample_rows(y.len(), cap, seed) {
        None => y.to_vec(),
        Some(rows) => rows.iter().map(|&i| y[i]).collect(),
    }
}

/// Boosting (on at most `max_rows` rows, sampled uniformly) as in [`fit_calibrated`].
fn fit_calibrated_sampled(d: &Design, y: &[f64], budget: f32, max_rows: usize) -> anyhow::Result<(Gbm, Platt)> {
    match sample_rows(d.rows, max_rows, 17) {
        None => fit_calibrated(d, y, budget),
        Some(rows) => {
            tracing::info!("boosting on a uniform sample of {} of {} training rows", rows.len(), d.rows);
            let ys: Vec<f64> = rows.iter().map(|&i| y[i]).collect();
            fit_calibrated(&d.take(&rows), &ys, budget)
        }
    }
}

/// Boosting on 80% of the rows, Platt calibration on the other 20% (a fixed split).
fn fit_calibrated(d: &Design, y: &[f64], budget: f32) -> anyhow::Result<(Gbm, Platt)> {
    let fit_rows: Vec<usize> = (0..d.rows).filter(|i| i % 5 != 4).collect();
    let cal_rows: Vec<usize> = (0..d.rows).filter(|i| i % 5 == 4).collect();
    let pick = |rows: &[usize]| rows.iter().map(|&i| y[i]).collect::<Vec<f64>>();
    let gbm = Gbm::fit(&d.take(&fit_rows), &pick(&fit_rows), budget).map_err(|e| anyhow::anyhow!(e))?;
    let platt = Platt::fit(&gbm.predict(&d.take(&cal_rows)), &pick(&cal_rows));
    Ok((gbm, platt))
}

#[cfg(test)]
mod tests {
    #[test]
    fn row_samples_are_uniform_and_seeded() {
        assert!(super::sample_rows(1_000, 1_000, 1).is_none());
        let s = super::sample_rows(1_000_000, 100_000, 1).unwrap();
        assert!((s.len() as f64 - 100_000.0).abs() < 1_500.0, "{}", s.len());
        assert!(s.windows(2).all(|w| w[0] < w[1]));
        // as many in each half: uniform over the rows
        let first_half = s.iter().filter(|&&i| i < 500_000).count() as f64;
        assert!((first_half / s.len() as f64 - 0.5).abs() < 0.01);
        assert_eq!(super::sample_rows(1_000_000, 100_000, 1), Some(s));
    }
}

#[derive(Serialize)]
struct ModelMetrics {
    model: &'static str,
    #[serde(flatten)]
    metrics: Metrics,
}

fn print_metrics(out: &mut impl Write, title: &str, rows: &[ModelMetrics]) -> std::io::Result<()> {
    writeln!(out, "{title}")?;
    writeln!(out, "  {:<28} {:>9} {:>9} {:>9} {:>9}", "model", "ROC AUC", "lift@10%", "Brier", "churn")?;
    for r in rows {
        let m = &r.metrics;
        writeln!(
            out,
            "  {:<28} {:>9.4} {:>9.2} {:>9.4} {:>8.1}%",
            r.model,
            m.roc_auc,
            m.top_decile_lift,
            m.brier,
            100.0 * m.base_rate
        )?;
    }
    if let Some(best) = rows.iter().find(|r| r.model.contains("calibrated")).or(rows.first()) {
        writeln!(out, "  calibration ({}): decile, customers, mean predicted, observed", best.model)?;
        for b in &best.metrics.calibration {
            writeln!(out, "    {:>2} {:>8} {:>8.4} {:>8.4}", b.bin, b.customers, b.mean_predicted, b.observed_rate)?;
        }
    }
    Ok(())
}

pub fn run(args: ChurnArgs) -> anyhow::Result<()> {
    match args.command {
        ChurnCommand::Train(a) => train(a),
        ChurnCommand::Evaluate(a) => cross_validate(a),
    }
}

/// A churn model fitted out of time and applied at T.
pub struct ChurnFit {
    pub test_t0: NaiveDate,
    /// The out-of-time test's labels.
    pub test_y: Vec<f64>,
    /// The postpaid customers at the test snapshot (features as of `test_t0`) with
    /// `churned` (within h months): behavioural signals are read off this.
    pub test_frame: DataFrame,
    /// `customer_id`, `p_churn_<h>m`, `loyalty`, churn_model, churn_reasons for every customer
    /// scored at T (postpaid by the classifier, prepaid by BG/NBD).
    pub scores: DataFrame,
    /// Everything `loyalty churn train --format json` prints (model_quality.json).
    pub report: serde_json::Value,
    results: Vec<ModelMetrics>,
    prepaid_test: Option<Metrics>,
    train_t0: Vec<NaiveDate>,
    train_rows: usize,
    prepaid_customers: usize,
    scored: usize,
    importance: Vec<(String, f32)>,
}

/// Train on snapshots before T, validate out of time, refit on every snapshot and score
/// the customers active at T.
///
/// Features at every date are computed with `base` (its date and horizon replaced), so
/// the model is trained on the features it scores. `at_t` is the feature table at T
/// when the caller has it (`loyalty run` computes it once for both); without it the
/// features at T are computed here.
pub fn fit_churn(
    v: &Validated,
    t: NaiveDate,
    h: u32,
    cfg: &ChurnConfig,
    base: &FeatureParams,
    at_t: Option<&DataFrame>,
) -> anyhow::Result<ChurnFit> {
    let ChurnConfig { train_snapshots, budget, max_train_rows, classifier } = *cfg;
    let started = Instant::now();
    let first_bill = {
        // On the streaming engine: the in-memory one reads the whole column (4.5 GiB at
        // 10M customers x 36 months).
        let df =
            loyalty_contract::collect_streaming(v.tables[&Table::Billing].clone().select([col(c::BILL_MONTH).min()]))?;
        let d = df.column(c::BILL_MONTH)?.date()?.physical().get(0).context("billing is empty")?;
        NaiveDate::from_ymd_opt(1970, 1, 1).context("epoch")? + chrono::Days::new(d as u64)
    };
    // Test on the latest T0 whose label window ends by T; train on T0s whose windows
    // end by the test T0 (every 3 months back, with at least 3 months of history).
    let test_t0 = month_end_minus(t, h)?;
    let earliest = first_bill.checked_add_months(Months::new(3)).context("date overflow")?;
    let train_t0: Vec<NaiveDate> = (0..train_snapshots)
        .filter_map(|k| month_end_minus(test_t0, h + 3 * k).ok())
        .filter(|d| *d >= earliest)
        .collect();
    if train_t0.is_empty() {
        return Err(InputRejected(format!(
            "out-of-time validation needs a training snapshot at least {h} months before the test one ({test_t0}) and 3 months after the first bill ({first_bill}); the data is too short (use `loyalty churn evaluate` for one snapshot)"
        ))
        .into());
    }
    // Memory and time stay bounded at tens of millions of customers: each snapshot is
    // computed for a uniform sample of customers when it has more than its share of
    // `max_train_rows` (training snapshots an equal share; the test snapshot at most
    // `max_train_rows` for the out-of-time metrics), then cut to exactly that share.
    let per_snapshot = if max_train_rows == 0 { 0 } else { max_train_rows.div_ceil(train_t0.len() + 1) };
    let test = snapshot(v, test_t0, h, None, base, max_train_rows)?;
    let names = test.design.names.clone();
    let (test_design, eval_y) = capped(test.design, &test.y, max_train_rows, 29);
    let mut train_design: Option<Design> = None;
    let mut train_y = Vec::new();
    let mut train_rows_seen = 0;
    for (k, d) in train_t0.iter().enumerate() {
        let s = snapshot(v, *d, h, Some(&names), base, per_snapshot)?;
        train_rows_seen += s.population;
        let (design, y) = capped(s.design, &s.y, per_snapshot, 31 + k as u64);
        train_y.extend_from_slice(&y);
        match &mut train_design {
            None => train_design = Some(design),
            Some(td) => td.append(&design),
        }
    }
    let train_design = train_design.context("no training rows")?;
    if train_y.iter().all(|y| *y == 0.0) || eval_y.iter().all(|y| *y == 0.0) {
        return Err(InputRejected("no churner in a training or test snapshot: nothing to learn or test".into()).into());
    }
    let (gbm, platt) = fit_calibrated_sampled(&train_design, &train_y, budget, max_train_rows)?;
    let logistic = Logistic::fit(&train_design, &train_y, 1.0);
    let raw = gbm.predict(&test_design);
    let logistic_test_p = logistic.predict(&test_design);
    let test_p = platt.apply(&raw);
    let results = vec![
        ModelMetrics { model: "gradient boosting", metrics: evaluate(&raw, &eval_y) },
        ModelMetrics { model: "gradient boosting calibrated", metrics: evaluate(&test_p, &eval_y) },
        ModelMetrics { model: "logistic regression (L2)", metrics: evaluate(&logistic_test_p, &eval_y) },
    ];

    // Final model: every snapshot, scored at T.
    let mut all = train_design;
    all.append(&capped(test_design, &eval_y, per_snapshot, 37).0);
    let mut all_y = train_y.clone();
    all_y.extend_from_slice(&capped_y(&eval_y, per_snapshot, 37));
    let fitted = match classifier {
        Classifier::Boosting => {
            let (gbm, platt) = fit_calibrated_sampled(&all, &all_y, budget, max_train_rows)?;
            Fitted::Boosting(Box::new(gbm), platt)
        }
        Classifier::Logistic => Fitted::Logistic(Logistic::fit(&all, &all_y, 1.0)),
    };
    drop(all);
    let computed;
    let at_t = match at_t {
        Some(df) => df,
        None => {
            let params = FeatureParams { as_of: t, churn_horizon_months: h, ..base.clone() };
            computed = customer_features(&v.tables, &params).with_context(|| format!("features as of {t}"))?.0;
            &computed
        }
    };
    let held = services_held(&v.tables, t)?;
    let (scored_ids, p, reasons, mut importance, platt) = match &fitted {
        Fitted::Boosting(gbm, platt) => {
            let importance: Vec<(String, f32)> = gbm
                .booster
                .calculate_feature_importance(perpetual::booster::config::ImportanceMethod::TotalGain, true)
                .into_iter()
                .map(|(j, g)| (names[j].clone(), g))
                .collect();
            let (ids, p, reasons) =
                score_at(at_t, &names, &held, |d| (platt.apply(&gbm.predict(d)), gbm.reasons(d, 3)))?;
            (ids, p, reasons, importance, Some(*platt))
        }
        Fitted::Logistic(lr) => {
            // Importance: each standardised coefficient's share of their absolute sum.
            let total: f64 = lr.coef.iter().map(|b| b.abs()).sum::<f64>().max(1e-300);
            let importance = names.iter().zip(&lr.coef).map(|(n, b)| (n.clone(), (b.abs() / total) as f32)).collect();
            let (ids, p, reasons) = score_at(at_t, &names, &held, |d| (lr.predict(d), lr.reasons(d, 3)))?;
            (ids, p, reasons, importance, None)
        }
    };
    drop(held);
    let prepaid_now =
        at_t.clone().lazy().filter(col(c::PLAN_TYPE).eq(lit("prepaid"))).select([col(c::CUSTOMER_ID)]).collect()?;
    let prepaid_now: Vec<i64> = prepaid_now.column(c::CUSTOMER_ID)?.i64()?.iter().flatten().collect();
    importance.sort_by(|a, b| b.1.total_cmp(&a.1));
    importance.truncate(10);
    let prepaid = prepaid_loyalty(v, t, h, &prepaid_now, base)?;
    // BG/NBD for prepaid customers, validated out of time too: fitted to the top-ups up
    // to the test snapshot, scored against churn in the following h months.
    let prepaid_test = match prepaid_loyalty(v, test_t0, h, &test.prepaid_ids, base)? {
        Some(pp) => {
            let end = test_t0.checked_add_months(Months::new(h)).context("date overflow")?;
            let churned = churned_between(v, test_t0, end)?;
            let y: Vec<f64> = pp.ids.iter().map(|id| f64::from(u8::from(churned.contains(id)))).collect();
            let p: Vec<f64> = pp.loyalty.iter().map(|l| 1.0 - l).collect();
            (y.iter().any(|v| *v > 0.0)).then(|| evaluate(&p, &y))
        }
        None => None,
    };
    let scored = scored_ids.len();
    let mut ids = scored_ids;
    let mut loyalty: Vec<f64> = p.iter().map(|x| 1.0 - x).collect();
    let mut why = reasons;
    let mut model = vec!["classifier"; ids.len()];
    if let Some(pp) = &prepaid {
        ids.extend_from_slice(&pp.ids);
        loyalty.extend_from_slice(&pp.loyalty);
        why.append_owned(StringChunked::from_iter_values(REASONS.into(), pp.reasons.iter().map(String::as_str)))?;
        model.extend(std::iter::repeat_n("bgnbd", pp.ids.len()));
    }
    let scores = DataFrame::new_infer_height(vec![
        Column::new(c::CUSTOMER_ID.into(), ids),
        Column::new(format!("p_churn_{h}m").into(), loyalty.iter().map(|l| 1.0 - l).collect::<Vec<f64>>()),
        Column::new("loyalty".into(), loyalty),
        Column::new("churn_model".into(), model),
        why.into_series().into(),
    ])?
    .sort([c::CUSTOMER_ID], SortMultipleOptions::default())?;
    let chosen_test_p = match classifier {
        Classifier::Boosting => test_p,
        Classifier::Logistic => logistic_test_p,
    };
    let roc: Vec<[f64; 2]> = loyalty_models::churn::roc_curve(&chosen_test_p, &eval_y, 50);
    let gains: Vec<[f64; 2]> = loyalty_models::churn::gains_curve(&chosen_test_p, &eval_y, 20);
    let report = json!({
        "horizon_months": h,
        "as_of": t.to_string(),
        "test_snapshot": {
            "as_of": test_t0.to_string(),
            "customers": test.population,
            "sampled_customers": test.y.len(),
            "churners": test.y.iter().sum::<f64>(),
            "evaluated_on": eval_y.len(),
        },
        "train_snapshots": train_t0.iter().map(|d| d.to_string()).collect::<Vec<_>>(),
        "train_customers": train_rows_seen,
        "train_rows_kept": train_y.len(),
        "features": names.len(),
        "out_of_time": results,
        "roc_curve_calibrated": roc,
        "gains_curve_calibrated": gains,
        "classifier": classifier,
        "platt": platt,
        "scored_customers": scored,
        "prepaid_out_of_time": prepaid_test,
        "prepaid": prepaid.as_ref().map(|pp| json!({
            "customers": pp.ids.len(),
            "model": "bgnbd",
            "params": pp.model,
            "log_likelihood": pp.log_likelihood,
            "mean_p_churn": pp.loyalty.iter().map(|l| 1.0 - l).sum::<f64>() / pp.loyalty.len().max(1) as f64,
        })),
        "mean_p_churn": p.iter().sum::<f64>() / p.len().max(1) as f64,
        "top_features_total_gain": importance.iter().map(|(n, g)| json!({"feature": n, "share": g})).collect::<Vec<_>>(),
        "wall_seconds": started.elapsed().as_secs_f64(),
    });
    Ok(ChurnFit {
        test_t0,
        test_y: test.y,
        test_frame: test.frame,
        scores,
        report,
        results,
        prepaid_test,
        train_rows: train_rows_seen,
        train_t0,
        prepaid_customers: prepaid.as_ref().map_or(0, |pp| pp.ids.len()),
        scored,
        importance,
    })
}

fn train(a: ChurnTrainArgs) -> anyhow::Result<()> {
    if let Some(path) = &a.out {
        loyalty_io::check_output_file(path, &[&a.data.data])?;
    }
    let v = load_validated(&a.data)?;
    let t = match a.as_of {
        Some(d) => d,
        None => default_as_of(&v)?,
    };
    let h = a.horizon_months;
    let cfg = ChurnConfig {
        budget: a.budget,
        train_snapshots: a.train_snapshots,
        max_train_rows: a.max_train_rows,
        classifier: Classifier::Boosting,
    };
    let mut fit = fit_churn(&v, t, h, &cfg, &FeatureParams::default(), None)?;
    if let Some(path) = &a.out {
        loyalty_io::write_table_atomic(&mut fit.scores, path)?;
    }
    let mut out = std::io::stdout().lock();
    match a.format {
        Format::Json => writeln!(out, "{}", serde_json::to_string_pretty(&fit.report)?)?,
        Format::Human => {
            let test_t0 = fit.test_t0;
            print_metrics(
                &mut out,
                &format!(
                    "out of time: trained on snapshots {} ({} customers), tested at {test_t0} ({} customers), churn within {h} months",
                    fit.train_t0.iter().map(|d| d.to_string()).collect::<Vec<_>>().join(", "),
                    fit.train_rows,
                    fit.test_y.len()
                ),
                &fit.results,
            )?;
            if let Some(m) = &fit.prepaid_test {
                writeln!(
                    out,
                    "prepaid, BG/NBD P(alive {h} months on), out of time at {test_t0}: ROC AUC {:.4}, lift@10% {:.2}, Brier {:.4} ({} customers, {:.1}% churned)",
                    m.roc_auc,
                    m.top_decile_lift,
                    m.brier,
                    m.customers,
                    100.0 * m.base_rate
                )?;
            }
            writeln!(
                out,
                "scored {} postpaid customers (classifier) and {} prepaid (BG/NBD) active at {t}; mean p_churn_{h}m {:.4} / {:.4}",
                fit.scored,
                fit.prepaid_customers,
                fit.report["mean_p_churn"],
                fit.report["prepaid"]["mean_p_churn"].as_f64().unwrap_or(f64::NAN)
            )?;
            writeln!(
                out,
                "top features: {}",
                fit.importance.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>().join(", ")
            )?;
        }
    }
    Ok(())
}

fn cross_validate(a: ChurnEvalArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    let v = load_validated(&a.data)?;
    let t = match a.as_of {
        Some(d) => d,
        None => default_as_of(&v)?,
    };
    let s = snapshot(&v, t, a.horizon_months, None, &FeatureParams::default(), 0)?;
    let churners = s.y.iter().sum::<f64>();
    if churners < a.folds as f64 || (s.y.len() as f64 - churners) < a.folds as f64 {
        return Err(InputRejected(format!(
            "{} customers, {churners} churners: too few of each class for {}-fold cross-validation",
            s.y.len(),
            a.folds
        ))
        .into());
    }
    let folds = stratified_folds(&s.y, a.folds, 7);
    let (mut gb, mut gb_cal, mut lr) = (vec![0.0; s.y.len()], vec![0.0; s.y.len()], vec![0.0; s.y.len()]);
    let mut fold_auc = Vec::new();
    for k in 0..a.folds {
        let train: Vec<usize> = (0..s.y.len()).filter(|&i| folds[i] != k).collect();
        let test: Vec<usize> = (0..s.y.len()).filter(|&i| folds[i] == k).collect();
        let ty: Vec<f64> = train.iter().map(|&i| s.y[i]).collect();
        let (d_train, d_test) = (s.design.take(&train), s.design.take(&test));
        let (gbm, platt) = fit_calibrated(&d_train, &ty, a.budget)?;
        let raw = gbm.predict(&d_test);
        let cal = platt.apply(&raw);
        let log = Logistic::fit(&d_train, &ty, 1.0).predict(&d_test);
        let yk: Vec<f64> = test.iter().map(|&i| s.y[i]).collect();
        fold_auc.push(loyalty_models::churn::roc_auc(&raw, &yk));
        for (j, &i) in test.iter().enumerate() {
            gb[i] = raw[j];
            gb_cal[i] = cal[j];
            lr[i] = log[j];
        }
    }
    let results = vec![
        ModelMetrics { model: "gradient boosting", metrics: evaluate(&gb, &s.y) },
        ModelMetrics { model: "gradient boosting calibrated", metrics: evaluate(&gb_cal, &s.y) },
        ModelMetrics { model: "logistic regression (L2)", metrics: evaluate(&lr, &s.y) },
    ];
    let mean = fold_auc.iter().sum::<f64>() / fold_auc.len() as f64;
    let sd = (fold_auc.iter().map(|a| (a - mean).powi(2)).sum::<f64>() / (fold_auc.len() - 1).max(1) as f64).sqrt();
    let report = json!({
        "as_of": t.to_string(),
        "horizon_months": a.horizon_months,
        "folds": a.folds,
        "customers": s.y.len(),
        "churners": churners,
        "features": s.design.names,
        "cross_validated": results,
        "gradient_boosting_fold_auc": {"mean": mean, "sd": sd, "folds": fold_auc},
        "wall_seconds": started.elapsed().as_secs_f64(),
    });
    let mut out = std::io::stdout().lock();
    match a.format {
        Format::Json => writeln!(out, "{}", serde_json::to_string_pretty(&report)?)?,
        Format::Human => {
            let title = format!(
                "{}-fold stratified cross-validation at {t}: {} postpaid customers, {churners} churned within {} months",
                a.folds,
                s.y.len(),
                a.horizon_months
            );
            print_metrics(&mut out, &title, &results)?;
            writeln!(out, "gradient boosting ROC AUC by fold: mean {mean:.4}, sd {sd:.4}")?;
        }
    }
    Ok(())
}
