//! `loyalty churn`: the churn classifier for postpaid customers.
//!
//! `train` builds labelled snapshots (features as of T0, label = churned in
//! (T0, T0 + h]), validates out of time (trained on earlier T0s, tested on the latest
//! T0 whose label window has ended by T), then refits on every snapshot and scores the
//! postpaid customers active at T. `evaluate` is for datasets with one snapshot only
//! (no history): stratified k-fold cross-validation.

use std::collections::{BTreeMap, HashSet};
use std::io::Write;
use std::time::Instant;

use anyhow::Context;
use chrono::{Months, NaiveDate};
use loyalty_contract::{Table, Validated, col as c};
use loyalty_features::{FeatureParams, customer_features, names as n};
use loyalty_models::churn::{Design, Gbm, Logistic, Metrics, Platt, evaluate, stratified_folds};
use polars::prelude::*;
use serde::Serialize;
use serde_json::json;

use crate::InputRejected;
use crate::cli::{ChurnArgs, ChurnCommand, ChurnEvalArgs, ChurnTrainArgs, Format};
use crate::commands::features::default_as_of;
use crate::commands::load_validated;

/// Columns that are not model inputs: keys, dates, text, and the value outputs that
/// already fold in a survival curve.
const NOT_FEATURES: [&str; 4] = [c::CUSTOMER_ID, "ccv", "cpv", "clv"];

/// One labelled snapshot: the postpaid customers active at `as_of`.
struct Snapshot {
    ids: Vec<i64>,
    design: Design,
    y: Vec<f64>,
}

fn month_end_minus(t: NaiveDate, months: u32) -> anyhow::Result<NaiveDate> {
    let next = t.succ_opt().context("date overflow")?;
    let back = next.checked_sub_months(Months::new(months)).context("date underflow")?;
    back.pred_opt().context("date underflow")
}

fn snapshot(v: &Validated, as_of: NaiveDate, horizon: u32, names: Option<&[String]>) -> anyhow::Result<Snapshot> {
    let params = FeatureParams { as_of, churn_horizon_months: horizon, ..FeatureParams::default() };
    let (df, _) = customer_features(&v.tables, &params).with_context(|| format!("features as of {as_of}"))?;
    let end = as_of.checked_add_months(Months::new(horizon)).context("date overflow")?;
    let churn = v.tables[&Table::Customers].clone().select([col(c::CUSTOMER_ID), col(c::CHURN_DATE).alias("__churn")]);
    let df = df
        .lazy()
        .filter(col(c::PLAN_TYPE).eq(lit("postpaid")))
        .join(churn, [col(c::CUSTOMER_ID)], [col(c::CUSTOMER_ID)], JoinArgs::new(JoinType::Left))
        .with_columns([
            col("__churn").gt(lit(as_of)).and(col("__churn").lt_eq(lit(end))).fill_null(lit(false)).alias("__label"),
            when(col(n::COMPETITION_LEVEL).eq(lit("low")))
                .then(lit(0.0))
                .when(col(n::COMPETITION_LEVEL).eq(lit("medium")))
                .then(lit(1.0))
                .when(col(n::COMPETITION_LEVEL).eq(lit("high")))
                .then(lit(2.0))
                .otherwise(lit(NULL).cast(DataType::Float64))
                .alias(n::COMPETITION_LEVEL),
        ])
        .collect()?;
    let chosen: Vec<String> = match names {
        Some(names) => names.to_vec(),
        None => df
            .columns()
            .iter()
            .filter(|col| {
                let name = col.name().as_str();
                (col.dtype().is_primitive_numeric() || col.dtype().is_bool())
                    && !NOT_FEATURES.contains(&name)
                    && !name.starts_with("__")
            })
            .map(|col| col.name().to_string())
            .collect(),
    };
    let ids: Vec<i64> = df.column(c::CUSTOMER_ID)?.i64()?.iter().map(|v| v.unwrap_or(-1)).collect();
    let held = services_held(v, as_of)?;
    let chosen: Vec<String> = match names {
        Some(_) => chosen,
        None => chosen.into_iter().chain(held.keys().map(|s| format!("has_{s}"))).collect(),
    };
    let mut columns = Vec::with_capacity(chosen.len());
    for name in &chosen {
        if let Some(service) = name.strip_prefix("has_") {
            let holders = held.get(service);
            columns.push(ids.iter().map(|id| f64::from(u8::from(holders.is_some_and(|h| h.contains(id))))).collect());
            continue;
        }
        let s = df.column(name)?.as_materialized_series().cast(&DataType::Float64)?;
        columns.push(s.f64()?.iter().map(|v| v.unwrap_or(f64::NAN)).collect());
    }
    let y: Vec<f64> = df.column("__label")?.bool()?.iter().map(|v| f64::from(u8::from(v == Some(true)))).collect();
    let design = Design::new(chosen, columns).map_err(|e| anyhow::anyhow!(e))?;
    Ok(Snapshot { ids, design, y })
}

/// The customers holding each catalog service at the end of `as_of` (at most 50
/// services: an indicator feature each).
fn services_held(v: &Validated, as_of: NaiveDate) -> anyhow::Result<BTreeMap<String, HashSet<i64>>> {
    let mut held: BTreeMap<String, HashSet<i64>> = BTreeMap::new();
    let (Some(services), Some(catalog)) = (v.tables.get(&Table::Services), v.tables.get(&Table::ServiceCatalog)) else {
        return Ok(held);
    };
    let names = catalog.clone().select([col(c::SERVICE)]).limit(50).collect()?;
    for name in names.column(c::SERVICE)?.str()?.iter().flatten() {
        held.insert(name.to_string(), HashSet::new());
    }
    let rows = services
        .clone()
        .filter(
            col(c::START_DATE).lt_eq(lit(as_of)).and(col(c::END_DATE).is_null().or(col(c::END_DATE).gt(lit(as_of)))),
        )
        .select([col(c::CUSTOMER_ID), col(c::SERVICE)])
        .collect()?;
    for (id, service) in rows.column(c::CUSTOMER_ID)?.i64()?.iter().zip(rows.column(c::SERVICE)?.str()?.iter()) {
        if let (Some(id), Some(service)) = (id, service)
            && let Some(set) = held.get_mut(service)
        {
            set.insert(id);
        }
    }
    Ok(held)
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

fn train(a: ChurnTrainArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    let v = load_validated(&a.data)?;
    let t = match a.as_of {
        Some(d) => d,
        None => default_as_of(&v)?,
    };
    let h = a.horizon_months;
    let first_bill = {
        let df = v.tables[&Table::Billing].clone().select([col(c::BILL_MONTH).min()]).collect()?;
        let d = df.column(c::BILL_MONTH)?.date()?.physical().get(0).context("billing is empty")?;
        NaiveDate::from_ymd_opt(1970, 1, 1).context("epoch")? + chrono::Days::new(d as u64)
    };
    // Test on the latest T0 whose label window ends by T; train on T0s whose windows
    // end by the test T0 (every 3 months back, with at least 3 months of history).
    let test_t0 = month_end_minus(t, h)?;
    let earliest = first_bill.checked_add_months(Months::new(3)).context("date overflow")?;
    let train_t0: Vec<NaiveDate> = (0..a.train_snapshots)
        .filter_map(|k| month_end_minus(test_t0, h + 3 * k).ok())
        .filter(|d| *d >= earliest)
        .collect();
    if train_t0.is_empty() {
        return Err(InputRejected(format!(
            "out-of-time validation needs a training snapshot at least {h} months before the test one ({test_t0}) and 3 months after the first bill ({first_bill}); the data is too short (use `loyalty churn evaluate` for one snapshot)"
        ))
        .into());
    }
    let test = snapshot(&v, test_t0, h, None)?;
    let names = test.design.names.clone();
    let mut train_design: Option<Design> = None;
    let mut train_y = Vec::new();
    for d in &train_t0 {
        let s = snapshot(&v, *d, h, Some(&names))?;
        train_y.extend_from_slice(&s.y);
        match &mut train_design {
            None => train_design = Some(s.design),
            Some(td) => td.append(&s.design),
        }
    }
    let train_design = train_design.context("no training rows")?;
    if train_y.iter().all(|y| *y == 0.0) || test.y.iter().all(|y| *y == 0.0) {
        return Err(InputRejected("no churner in a training or test snapshot: nothing to learn or test".into()).into());
    }
    let (gbm, platt) = fit_calibrated(&train_design, &train_y, a.budget)?;
    let logistic = Logistic::fit(&train_design, &train_y, 1.0);
    let raw = gbm.predict(&test.design);
    let results = vec![
        ModelMetrics { model: "gradient boosting", metrics: evaluate(&raw, &test.y) },
        ModelMetrics { model: "gradient boosting calibrated", metrics: evaluate(&platt.apply(&raw), &test.y) },
        ModelMetrics { model: "logistic regression (L2)", metrics: evaluate(&logistic.predict(&test.design), &test.y) },
    ];

    // Final model: every snapshot, scored at T.
    let mut all = train_design;
    all.append(&test.design);
    let mut all_y = train_y.clone();
    all_y.extend_from_slice(&test.y);
    let (gbm, platt) = fit_calibrated(&all, &all_y, a.budget)?;
    let now = snapshot(&v, t, h, Some(&names))?;
    let p = platt.apply(&gbm.predict(&now.design));
    let reasons = gbm.reasons(&now.design, 3);
    let mut importance: Vec<(String, f32)> = gbm
        .booster
        .calculate_feature_importance(perpetual::booster::config::ImportanceMethod::TotalGain, true)
        .into_iter()
        .map(|(j, g)| (names[j].clone(), g))
        .collect();
    importance.sort_by(|a, b| b.1.total_cmp(&a.1));
    importance.truncate(10);
    if let Some(path) = &a.out {
        let mut df = DataFrame::new_infer_height(vec![
            Column::new(c::CUSTOMER_ID.into(), now.ids.clone()),
            Column::new(format!("p_churn_{h}m").into(), p.clone()),
            Column::new("loyalty".into(), p.iter().map(|x| 1.0 - x).collect::<Vec<f64>>()),
            Column::new("churn_reasons".into(), reasons.iter().map(|r| r.join(", ")).collect::<Vec<String>>()),
        ])?;
        loyalty_io::write_parquet_atomic(&mut df, path)?;
    }
    let report = json!({
        "horizon_months": h,
        "as_of": t.to_string(),
        "test_snapshot": {"as_of": test_t0.to_string(), "customers": test.y.len(), "churners": test.y.iter().sum::<f64>()},
        "train_snapshots": train_t0.iter().map(|d| d.to_string()).collect::<Vec<_>>(),
        "train_customers": train_y.len(),
        "features": names.len(),
        "out_of_time": results,
        "platt": platt,
        "scored_customers": now.ids.len(),
        "mean_p_churn": p.iter().sum::<f64>() / p.len().max(1) as f64,
        "top_features_total_gain": importance.iter().map(|(n, g)| json!({"feature": n, "share": g})).collect::<Vec<_>>(),
        "wall_seconds": started.elapsed().as_secs_f64(),
    });
    let mut out = std::io::stdout().lock();
    match a.format {
        Format::Json => writeln!(out, "{}", serde_json::to_string_pretty(&report)?)?,
        Format::Human => {
            print_metrics(
                &mut out,
                &format!(
                    "out of time: trained on snapshots {} ({} customers), tested at {test_t0} ({} customers), churn within {h} months",
                    train_t0.iter().map(|d| d.to_string()).collect::<Vec<_>>().join(", "),
                    train_y.len(),
                    test.y.len()
                ),
                &results,
            )?;
            writeln!(
                out,
                "scored {} postpaid customers active at {t}; mean p_churn_{h}m {:.4}",
                now.ids.len(),
                report["mean_p_churn"]
            )?;
            writeln!(
                out,
                "top features: {}",
                importance.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>().join(", ")
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
    let s = snapshot(&v, t, a.horizon_months, None)?;
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
