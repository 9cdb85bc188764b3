//! The churn model of postpaid customers, and BG/NBD for prepaid ones.
//!
//! Training builds labelled snapshots (features as of T0, label = churned in
//! (T0, T0 + h]), validates out of time (trained on earlier T0s, tested on the latest
//! T0 whose label window has ended by T), then refits on every snapshot and scores
//! the customers active at T. [`evaluate`] is for datasets with one snapshot only
//! (no history): stratified k-fold cross-validation.

pub mod evaluate;
mod prepaid;
mod report;
mod snapshot;
mod train;

use chrono::NaiveDate;
use loyalty_contract::{Validated, col as c};
use loyalty_features::{FeatureParams, customer_features, names as n};
use loyalty_models::churn::{Design, Logistic, evaluate as metrics_of};
use polars::prelude::*;

pub use report::{ChurnReport, ModelMetrics, PrepaidReport, TestSnapshot};
pub use train::FeatureShare;

use crate::PipelineError;
use crate::dataset::{first_bill_month, months_after, months_before};
use crate::error::{Context, Result};
use crate::settings::{ChurnConfig, Classifier};
use prepaid::{Prepaid, prepaid_loyalty, prepaid_out_of_time};
use snapshot::{Snapshot, prepaid_ids, services_held, snapshot};
use train::{Fitted, capped, capped_y, fit_calibrated_sampled, score_at};

/// A churn model fitted out of time and applied at T.
pub struct ChurnFit {
    /// The postpaid customers at the test snapshot (features as of its date) with
    /// `churned` (within h months): behavioural signals are read off this.
    pub test_frame: DataFrame,
    /// `customer_id`, `p_churn_<h>m`, `loyalty`, `churn_model`, `churn_reasons` for
    /// every customer scored at T (postpaid by the classifier, prepaid by BG/NBD),
    /// sorted by customer_id.
    pub scores: DataFrame,
    /// Everything `loyalty churn train --format json` prints (model_quality.json).
    pub report: ChurnReport,
}

/// The snapshot dates: the test T0 (the latest whose label window ends by T) and the
/// training T0s before it (every 3 months back, with at least 3 months of history).
fn snapshot_dates(v: &Validated, t: NaiveDate, h: u32, train_snapshots: u32) -> Result<(NaiveDate, Vec<NaiveDate>)> {
    let first_bill = first_bill_month(v)?;
    let test_t0 = months_before(t, h)?;
    let earliest = months_after(first_bill, 3)?;
    let train_t0: Vec<NaiveDate> = (0..train_snapshots)
        .filter_map(|k| months_before(test_t0, h + 3 * k).ok())
        .filter(|d| *d >= earliest)
        .collect();
    if train_t0.is_empty() {
        return Err(PipelineError::HistoryTooShort { horizon: h, test_t0, first_bill });
    }
    Ok((test_t0, train_t0))
}

/// The out-of-time data: the test snapshot and every training snapshot, each cut to
/// its share of `max_train_rows` so memory and time stay bounded at tens of millions
/// of customers.
pub(crate) struct OutOfTime {
    /// The model inputs, as the test snapshot has them.
    names: Vec<String>,
    /// The test snapshot (its design moved into `test_design`).
    test: Snapshot,
    test_design: Design,
    eval_y: Vec<f64>,
    train_design: Design,
    train_y: Vec<f64>,
    train_customers: usize,
    per_snapshot: usize,
}

fn out_of_time(
    v: &Validated,
    test_t0: NaiveDate,
    train_t0: &[NaiveDate],
    base: &FeatureParams,
    cfg: &ChurnConfig,
) -> Result<OutOfTime> {
    let cap = cfg.max_train_rows;
    // Training snapshots get an equal share; the test snapshot at most `cap` rows for
    // the out-of-time metrics.
    let per_snapshot = if cap == 0 { 0 } else { cap.div_ceil(train_t0.len() + 1) };
    let mut test = snapshot(v, test_t0, None, base, cap)?;
    let names = test.design.names.clone();
    let (test_design, eval_y) = capped(std::mem::replace(&mut test.design, empty()), &test.y, cap, 29);
    let (mut train_design, mut train_y, mut train_customers) = (None::<Design>, Vec::new(), 0);
    for (k, d) in train_t0.iter().enumerate() {
        let s = snapshot(v, *d, Some(&names), base, per_snapshot)?;
        train_customers += s.population;
        let (design, y) = capped(s.design, &s.y, per_snapshot, 31 + k as u64);
        train_y.extend_from_slice(&y);
        match &mut train_design {
            None => train_design = Some(design),
            Some(td) => td.append(&design),
        }
    }
    let train_design = train_design.ok_or_else(|| PipelineError::Data("no training rows".into()))?;
    if train_y.iter().all(|y| *y == 0.0) || eval_y.iter().all(|y| *y == 0.0) {
        return Err(PipelineError::NoChurner);
    }
    Ok(OutOfTime { names, test, test_design, eval_y, train_design, train_y, train_customers, per_snapshot })
}

/// Every candidate's out-of-time metrics, and the test predictions of `classifier`.
fn compare(o: &OutOfTime, cfg: &ChurnConfig) -> Result<(Vec<ModelMetrics>, Vec<f64>)> {
    let (gbm, platt) = fit_calibrated_sampled(&o.train_design, &o.train_y, cfg.budget, cfg.max_train_rows)?;
    let raw = gbm.predict(&o.test_design);
    let calibrated = platt.apply(&raw);
    let logistic = Logistic::fit(&o.train_design, &o.train_y, 1.0).predict(&o.test_design);
    let results = vec![
        ModelMetrics { model: report::BOOSTING, metrics: metrics_of(&raw, &o.eval_y) },
        ModelMetrics { model: report::BOOSTING_CALIBRATED, metrics: metrics_of(&calibrated, &o.eval_y) },
        ModelMetrics { model: report::LOGISTIC, metrics: metrics_of(&logistic, &o.eval_y) },
    ];
    let chosen = match cfg.classifier {
        Classifier::Boosting => calibrated,
        Classifier::Logistic => logistic,
    };
    Ok((results, chosen))
}

fn empty() -> Design {
    Design { names: Vec::new(), columns: Vec::new(), rows: 0 }
}

/// The final model, fitted on every snapshot (the designs move into it: at the row
/// cap they are hundreds of megabytes).
fn refit(o: &mut OutOfTime, cfg: &ChurnConfig) -> Result<Fitted> {
    let mut all = std::mem::replace(&mut o.train_design, empty());
    all.append(&capped(std::mem::replace(&mut o.test_design, empty()), &o.eval_y, o.per_snapshot, 37).0);
    let mut all_y = o.train_y.clone();
    all_y.extend_from_slice(&capped_y(&o.eval_y, o.per_snapshot, 37));
    Fitted::fit(cfg.classifier, &all, &all_y, cfg.budget, cfg.max_train_rows)
}

/// The scores table: postpaid customers by the classifier, then prepaid by BG/NBD.
fn scores_table(scored: train::Scored, prepaid: Option<&Prepaid>, h: u32) -> Result<DataFrame> {
    let train::Scored { mut ids, p, reasons: mut why } = scored;
    let mut loyalty: Vec<f64> = p.iter().map(|x| 1.0 - x).collect();
    let mut model = vec!["classifier"; ids.len()];
    if let Some(pp) = prepaid {
        ids.extend_from_slice(&pp.ids);
        loyalty.extend_from_slice(&pp.loyalty);
        why.append_owned(StringChunked::from_iter_values(
            n::CHURN_REASONS.into(),
            pp.reasons.iter().map(String::as_str),
        ))?;
        model.extend(std::iter::repeat_n("bgnbd", pp.ids.len()));
    }
    Ok(DataFrame::new_infer_height(vec![
        Column::new(c::CUSTOMER_ID.into(), ids),
        Column::new(n::p_churn(h).into(), loyalty.iter().map(|l| 1.0 - l).collect::<Vec<f64>>()),
        Column::new(n::LOYALTY.into(), loyalty),
        Column::new(n::CHURN_MODEL.into(), model),
        why.into_series().into(),
    ])?
    .sort([c::CUSTOMER_ID], SortMultipleOptions::default())?)
}

/// Train on snapshots before T, validate out of time, refit on every snapshot and score
/// the customers active at T.
///
/// Features at every date are computed with `base` (its date replaced), so the model
/// is trained on the features it scores; its horizon is the label's. `at_t` is the
/// feature table at `base.as_of` when the caller has it (`loyalty run` computes it
/// once for both); without it the features at T are computed here.
pub fn fit_churn(v: &Validated, cfg: &ChurnConfig, base: &FeatureParams, at_t: Option<&DataFrame>) -> Result<ChurnFit> {
    let started = std::time::Instant::now();
    let (t, h) = (base.as_of, base.churn_horizon_months);
    let (test_t0, train_t0) = snapshot_dates(v, t, h, cfg.train_snapshots)?;
    let mut o = out_of_time(v, test_t0, &train_t0, base, cfg)?;
    let (results, chosen_test_p) = compare(&o, cfg)?;
    let fitted = refit(&mut o, cfg)?;
    let computed;
    let at_t = match at_t {
        Some(df) => df,
        None => {
            computed = customer_features(&v.tables, base).during_with(|| format!("features as of {t}"))?.0;
            &computed
        }
    };
    let scored = score_at(at_t, &o.names, &services_held(&v.tables, t)?, &fitted)?;
    let prepaid = prepaid_loyalty(v, t, &prepaid_ids(at_t)?, base)?;
    let prepaid_test = prepaid_out_of_time(v, test_t0, &o.test.prepaid_ids, base)?;
    let report = ChurnReport::new(report::Parts {
        cfg,
        base,
        test_t0,
        train_t0: &train_t0,
        o: &o,
        results,
        chosen_test_p: &chosen_test_p,
        fitted: &fitted,
        scored_p: &scored.p,
        prepaid: prepaid.as_ref(),
        prepaid_test,
        started,
    });
    let scores = scores_table(scored, prepaid.as_ref(), h)?;
    Ok(ChurnFit { test_frame: o.test.frame, scores, report })
}
