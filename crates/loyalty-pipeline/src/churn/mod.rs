//! The churn models: one classifier per plan type (postpaid, prepaid), and BG/NBD
//! for prepaid customers where no prepaid churn is observed.
//!
//! Training builds labelled snapshots (features as of T0, label = churned in
//! (T0, T0 + h]), validates out of time (trained on earlier T0s, tested on the latest
//! T0 whose label window has ended by T), picks the candidate that ranks the test
//! snapshot best, refits it on every snapshot and scores the customers active at T.
//! [`evaluate`] is for datasets with one snapshot only (no history): stratified
//! k-fold cross-validation.

pub mod evaluate;
mod prepaid;
mod report;
mod snapshot;
mod topups;
mod train;

use chrono::NaiveDate;
use loyalty_contract::{Validated, col as c, labels};
use loyalty_features::{FeatureParams, names as n};
use loyalty_models::BgNbd;
use loyalty_models::churn::{Design, Logistic, evaluate as metrics_of};
use polars::prelude::*;
use rayon::prelude::*;

pub use report::{ChurnReport, CompetitionMetrics, ModelMetrics, PlanReport, PrepaidReport, TestSnapshot};
pub use snapshot::Plan;
pub use train::FeatureShare;

use crate::PipelineError;
use crate::dataset::{first_bill_month, months_after, months_before};
use crate::error::{Context, Result};
use crate::settings::{ChurnConfig, Classifier};
use loyalty_features::transactions::DaySummaries;
use prepaid::{Prepaid, prepaid_loyalty, prepaid_out_of_time};
use snapshot::{Extra, Names, PlanRows, Snapshot, features_at, snapshot, snapshot_of, snapshot_sample};
use topups::TopupInputs;
pub use train::SCORE_ROWS;
use train::{Fitted, capped, capped_copy, fit_calibrated_sampled, largest_first, score_at};

/// The churn models fitted out of time and applied at T.
pub struct ChurnFit {
    /// The postpaid customers at the test snapshot (features as of its date) with
    /// `churned` (within h months): behavioural signals are read off this.
    pub test_frame: DataFrame,
    /// `customer_id`, `p_churn_<h>m`, `loyalty`, `churn_model`, `churn_reasons` for
    /// every customer scored at T (by their plan's classifier, or prepaid ones by
    /// BG/NBD), sorted by customer_id. `loyalty run` empties it once the scores are
    /// columns of its customers table.
    pub scores: DataFrame,
    /// Everything `loyalty churn train --format json` prints (model_quality.json).
    pub report: ChurnReport,
    /// Each classified plan type's out-of-time rows, when the settings keep them.
    pub designs: Vec<PlanDesigns>,
}

/// One plan type's out-of-time rows as the classifiers saw them: every model input
/// (NaN: missing) and `churned` (1.0 or 0.0), training rows and test rows.
pub struct PlanDesigns {
    pub plan: Plan,
    pub train: DataFrame,
    pub test: DataFrame,
}

/// `d` and its labels as a frame.
fn design_frame(d: &Design, y: &[f64]) -> Result<DataFrame> {
    let mut columns: Vec<Column> =
        d.names.iter().zip(&d.columns).map(|(name, values)| Column::new(name.into(), values.as_slice())).collect();
    columns.push(Column::new("churned".into(), y));
    Ok(DataFrame::new_infer_height(columns)?)
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

/// One plan type's out-of-time data: the test snapshot's rows and every training
/// snapshot's, each cut to its share of `max_train_rows` so memory and time stay
/// bounded at tens of millions of customers.
pub(crate) struct OutOfTime {
    plan: Plan,
    /// The model inputs, as the test snapshot has them.
    names: Vec<String>,
    /// Customers of the plan active at the test snapshot, and how many were sampled.
    test_population: usize,
    test_sampled: usize,
    test_churners: f64,
    test_design: Design,
    eval_y: Vec<f64>,
    train_design: Design,
    train_y: Vec<f64>,
    train_customers: usize,
    train_rows_kept: usize,
    per_snapshot: usize,
}

/// Every snapshot, features computed once per date for both plan types.
struct Snapshots {
    test: Snapshot,
    train: Vec<Snapshot>,
    /// BG/NBD of the prepaid top-up inputs at every date (None: no top-ups).
    topup_model: Option<BgNbd>,
}

/// Every snapshot, on one sample of about a snapshot's share of the row cap (read
/// from the data once): the same customers at every date that they are active.
fn snapshots(
    v: &Validated,
    test_t0: NaiveDate,
    train_t0: &[NaiveDate],
    base: &FeatureParams,
    cap: usize,
) -> Result<Snapshots> {
    let sample = snapshot_sample(v, test_t0, per_snapshot(cap, train_t0.len()))?;
    // The BG/NBD fit runs on one core: the test date's features, which do not read
    // it, are computed beside it.
    let (fitted, test_features) =
        rayon::join(|| topups::fit_model(&sample, test_t0, base), || features_at(&sample, test_t0, base));
    let (model, test_topups) = match fitted? {
        Some((model, inputs)) => (Some(model), inputs),
        None => (None, TopupInputs::default()),
    };
    let test_extra = Extra::with_topups(&sample, test_t0, test_topups)?;
    let test = snapshot_of(v, &sample, (test_t0, test_features?), None, base, &test_extra)?;
    let names: Names = test.plans.iter().map(|(p, r)| (*p, r.design.names.clone())).collect();
    // The training dates are independent, and one date's features at this sample's
    // size leave a core idle much of the time: they are computed side by side. (After
    // the test date's, not beside them: a failing engine fails the first date, and
    // the run stops then instead of after every date's job has failed.)
    let train = train_t0
        .par_iter()
        .map(|d| snapshot(v, &sample, *d, Some(&names), base, &Extra::at(&sample, *d, base, model.as_ref())?))
        .collect::<Result<_>>()?;
    Ok(Snapshots { test, train, topup_model: model })
}

/// Each snapshot's share of the row cap (0: no cap): the training snapshots together
/// and the test snapshot hold about `cap` rows.
fn per_snapshot(cap: usize, training_snapshots: usize) -> usize {
    if cap == 0 { 0 } else { cap.div_ceil(training_snapshots + 1) }
}

fn empty() -> Design {
    Design { names: Vec::new(), columns: Vec::new(), rows: 0 }
}

/// The out-of-time data of `plan`, moved out of the snapshots; None when either the
/// training or the test rows hold no churner (nothing to learn or to test).
fn out_of_time(s: &mut Snapshots, plan: Plan, cap: usize) -> Option<OutOfTime> {
    let per_snapshot = per_snapshot(cap, s.train.len());
    let take = |snap: &mut Snapshot| {
        snap.plans.remove(&plan).unwrap_or(PlanRows { ids: Vec::new(), design: empty(), y: Vec::new(), population: 0 })
    };
    let test = take(&mut s.test);
    let names = test.design.names.clone();
    let (test_sampled, test_churners) = (test.y.len(), test.y.iter().sum());
    let (test_design, eval_y) = capped(test.design, &test.y, cap, 29);
    let (mut train_design, mut train_y, mut train_customers) = (empty(), Vec::new(), 0);
    train_design.names = names.clone();
    train_design.columns = vec![Vec::new(); names.len()];
    for (k, snap) in s.train.iter_mut().enumerate() {
        let rows = take(snap);
        train_customers += rows.population;
        let (design, y) = capped(rows.design, &rows.y, per_snapshot, 31 + k as u64);
        train_y.extend_from_slice(&y);
        train_design.append(&design);
    }
    let learnable = |y: &[f64]| y.iter().any(|v| *v > 0.0) && y.contains(&0.0);
    if !learnable(&train_y) || !learnable(&eval_y) {
        tracing::info!("no {} classifier: no churner (or no stayer) in its training or test rows", plan.as_str());
        return None;
    }
    Some(OutOfTime {
        plan,
        names,
        test_population: test.population,
        test_sampled,
        test_churners,
        test_design,
        eval_y,
        train_design,
        train_rows_kept: train_y.len(),
        train_y,
        train_customers,
        per_snapshot,
    })
}

/// Every candidate's out-of-time metrics, the one that scores (the best out-of-time
/// ROC AUC unless the settings name one), and its test predictions.
fn compare(o: &OutOfTime, cfg: &ChurnConfig) -> Result<Compared> {
    let (gbm, platt) = fit_calibrated_sampled(&o.train_design, &o.train_y, &cfg.boosting(), cfg.max_train_rows)?;
    let raw = gbm.predict(&o.test_design);
    let calibrated = platt.apply(&raw);
    let logistic = Logistic::fit(&o.train_design, &o.train_y, 1.0).predict(&o.test_design);
    let results = vec![
        ModelMetrics { model: report::BOOSTING, metrics: metrics_of(&raw, &o.eval_y) },
        ModelMetrics { model: report::BOOSTING_CALIBRATED, metrics: metrics_of(&calibrated, &o.eval_y) },
        ModelMetrics { model: report::LOGISTIC, metrics: metrics_of(&logistic, &o.eval_y) },
    ];
    let chosen = match cfg.classifier {
        Classifier::Auto if results[2].metrics.roc_auc > results[1].metrics.roc_auc => Classifier::Logistic,
        Classifier::Auto => Classifier::Boosting,
        named => named,
    };
    let chosen_p = if chosen == Classifier::Logistic { logistic } else { calibrated };
    Ok((results, chosen, chosen_p))
}

/// The final model, fitted on every snapshot: the training rows and the test
/// snapshot's share of the row cap.
fn refit(o: &OutOfTime, classifier: Classifier, cfg: &ChurnConfig) -> Result<Fitted> {
    let (test, test_y) = capped_copy(&o.test_design, &o.eval_y, o.per_snapshot, 37);
    let mut all = o.train_design.clone();
    all.append(&test);
    drop(test);
    let mut all_y = o.train_y.clone();
    all_y.extend_from_slice(&test_y);
    Fitted::fit(classifier, &all, &all_y, &cfg.boosting(), cfg.max_train_rows)
}

/// One plan type's classifier, compared and chosen out of time and refitted.
struct PlanTrained {
    o: OutOfTime,
    results: Vec<ModelMetrics>,
    chosen: Classifier,
    chosen_p: Vec<f64>,
    by_competition: Vec<CompetitionMetrics>,
    fitted: Fitted,
    designs: Option<PlanDesigns>,
}

/// One plan type's classifier applied at T.
struct PlanFit {
    report: PlanReport,
    designs: Option<PlanDesigns>,
}

/// What [`compare`] gives: every candidate's metrics, the choice and its test predictions.
type Compared = (Vec<ModelMetrics>, Classifier, Vec<f64>);

/// A plan type's fit: its out-of-time comparison, or its final boosting fit.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Job {
    Compare,
    Refit,
}

/// What a [`Job`] gives.
enum Done {
    Compared(Compared),
    Refitted(Fitted),
}

/// Every plan type's classifier, compared out of time and refitted.
///
/// The fits are most of the training time, and one fit keeps about one core busy, so
/// they run side by side, largest first: each plan type's comparison and, unless the
/// settings name the logistic model, its final boosting fit. That one does not wait for
/// the comparison's choice; it is thrown away in the rare case the logistic model wins.
fn train_plans(plans: Vec<OutOfTime>, cfg: &ChurnConfig) -> Result<Vec<PlanTrained>> {
    let boosting_may_win = cfg.classifier != Classifier::Logistic;
    let jobs: Vec<(usize, Job)> = (0..plans.len())
        .flat_map(|k| [(k, Job::Compare), (k, Job::Refit)])
        .filter(|&(_, job)| job == Job::Compare || boosting_may_win)
        .collect();
    let cost = |&(k, job): &(usize, Job)| {
        let o = &plans[k];
        let rows = match job {
            Job::Compare => o.train_design.rows,
            Job::Refit => o.train_design.rows + o.test_design.rows,
        };
        rows * o.names.len()
    };
    let done = largest_first(&jobs, cost, |&(k, job)| match job {
        Job::Compare => compare(&plans[k], cfg).map(Done::Compared),
        Job::Refit => refit(&plans[k], Classifier::Boosting, cfg).map(Done::Refitted),
    });
    let mut compared = Vec::with_capacity(plans.len());
    let mut refitted: Vec<Option<Fitted>> = plans.iter().map(|_| None).collect();
    for (&(k, _), done) in jobs.iter().zip(done) {
        match done? {
            Done::Compared(c) => compared.push(c),
            Done::Refitted(f) => refitted[k] = Some(f),
        }
    }
    plans.into_iter().zip(compared).zip(refitted).map(|((o, c), r)| plan_trained(o, c, r, cfg)).collect()
}

/// A plan type's classifier from its comparison and its final boosting fit, if made.
fn plan_trained(
    mut o: OutOfTime,
    compared: Compared,
    boosting: Option<Fitted>,
    cfg: &ChurnConfig,
) -> Result<PlanTrained> {
    let (results, chosen, chosen_p) = compared;
    let designs = match cfg.keep_designs {
        true => Some(PlanDesigns {
            plan: o.plan,
            train: design_frame(&o.train_design, &o.train_y)?,
            test: design_frame(&o.test_design, &o.eval_y)?,
        }),
        false => None,
    };
    let fitted = match boosting {
        Some(fitted) if chosen == Classifier::Boosting => fitted,
        _ => refit(&o, chosen, cfg)?,
    };
    let by_competition = report::by_competition(&o.test_design, &chosen_p, &o.eval_y);
    // At the row cap the designs are hundreds of megabytes; the report needs their counts only.
    o.train_design = empty();
    o.test_design = empty();
    o.train_y = Vec::new();
    Ok(PlanTrained { o, results, chosen, chosen_p, by_competition, fitted, designs })
}

/// The feature table at T as the classifiers read it: whole in memory, or with some
/// columns set aside on disk (as `loyalty run` keeps it).
pub trait FeatureRows: Sync {
    /// The columns in memory; customer_id and plan_type are among them.
    fn in_memory(&self) -> &DataFrame;
    /// Rows `start..start + len` with every column.
    fn rows(&self, start: usize, len: usize) -> Result<DataFrame>;
}

impl FeatureRows for DataFrame {
    fn in_memory(&self) -> &DataFrame {
        self
    }

    fn rows(&self, start: usize, len: usize) -> Result<DataFrame> {
        Ok(self.slice(start as i64, len))
    }
}

/// Every plan's classifier applied to the feature table at T: each plan's report and
/// every scored customer, in the table's order.
fn score_plans(
    plans: Vec<PlanTrained>,
    at_t: &dyn FeatureRows,
    extra: &Extra,
) -> Result<(Vec<PlanFit>, train::Scored)> {
    let models: Vec<(Plan, &[String], &Fitted)> =
        plans.iter().map(|p| (p.o.plan, p.o.names.as_slice(), &p.fitted)).collect();
    let train::ScoredAtT { all, by_plan } = score_at(at_t, &models, extra)?;
    Ok((plans.into_iter().zip(by_plan).map(|(p, scored_p)| plan_fit(p, &scored_p)).collect(), all))
}

fn plan_fit(p: PlanTrained, scored_p: &[f64]) -> PlanFit {
    let PlanTrained { o, results, chosen, chosen_p, by_competition, fitted, designs } = p;
    let parts = report::PlanParts { o: &o, results, chosen, chosen_p: &chosen_p, by_competition };
    PlanFit { report: report::plan_report(parts, &fitted, scored_p), designs }
}

/// The scores table, by customer_id: the classifiers' scores (`scored`, in the feature
/// table's order), with prepaid BG/NBD scores placed among them when there are any.
fn scores_table(scored: train::Scored, prepaid: Option<&Prepaid>, h: u32) -> Result<DataFrame> {
    let train::Scored { mut ids, p: mut p_churn, reasons: mut why } = scored;
    let mut model = vec!["classifier"; ids.len()];
    if let Some(pp) = prepaid {
        ids.extend_from_slice(&pp.ids);
        p_churn.extend(pp.loyalty.iter().map(|l| 1.0 - l));
        let reasons = StringChunked::from_iter_values(n::CHURN_REASONS.into(), pp.reasons.iter().map(String::as_str));
        why.append_owned(reasons.into_series().cast(&labels::texts())?)?;
        model.extend(std::iter::repeat_n("bgnbd", pp.ids.len()));
    }
    let loyalty: Vec<f64> = p_churn.iter().map(|p| 1.0 - p).collect();
    let df = DataFrame::new_infer_height(vec![
        Column::new(c::CUSTOMER_ID.into(), ids),
        Column::new(n::p_churn(h).into(), p_churn),
        Column::new(n::LOYALTY.into(), loyalty),
        Column::new(n::CHURN_MODEL.into(), model).cast(&labels::labels(&n::CHURN_MODELS))?,
        why.into(),
    ])?;
    // Sorted already when the feature table was (as the features at T are), so check
    // rather than sort: a sort copies every column at once.
    let ids = df.column(c::CUSTOMER_ID)?.i64()?;
    let sorted = ids.iter().zip(ids.iter().skip(1)).all(|(a, b)| a < b);
    Ok(if sorted { df } else { df.sort([c::CUSTOMER_ID], SortMultipleOptions::default())? })
}

/// The prepaid customers of a feature table.
fn prepaid_ids(features: &DataFrame) -> Result<Vec<i64>> {
    let prepaid = features
        .clone()
        .lazy()
        .filter(col(c::PLAN_TYPE).eq(lit(Plan::Prepaid.as_str())))
        .select([col(c::CUSTOMER_ID)])
        .collect()?;
    Ok(crate::dataset::ids(&prepaid, c::CUSTOMER_ID)?)
}

/// Train on snapshots before T, validate out of time, refit on every snapshot and score
/// the customers active at T.
///
/// Features at every date are computed with `base` (its date replaced), so the model
/// is trained on the features it scores; its horizon is the label's. `at_t` is the
/// feature table at `base.as_of` when the caller has it; without it the features at T
/// are computed here.
pub fn fit_churn(v: &Validated, cfg: &ChurnConfig, base: &FeatureParams, at_t: Option<&DataFrame>) -> Result<ChurnFit> {
    let trained = train_churn(v, cfg, base)?;
    match at_t {
        Some(df) => trained.score(v, base, df, None),
        None => {
            let t = base.as_of;
            let computed = crate::features::features_at_t(v, base).during_with(|| format!("features as of {t}"))?;
            trained.score(v, base, &computed, None)
        }
    }
}

/// The classifiers trained before T, not yet applied at T: `loyalty run` trains them
/// before it computes the features at T, so the training snapshots and the feature
/// table at T are never in memory together.
pub struct TrainedChurn {
    plans: Vec<PlanTrained>,
    topup_model: Option<BgNbd>,
    test_frame: DataFrame,
    test_t0: NaiveDate,
    train_t0: Vec<NaiveDate>,
    prepaid_at_test: Vec<i64>,
    classifier: Classifier,
    seconds: f64,
}

/// The training half of [`fit_churn`]: snapshots before T, the out-of-time comparison
/// and the refit of each plan type's classifier.
pub fn train_churn(v: &Validated, cfg: &ChurnConfig, base: &FeatureParams) -> Result<TrainedChurn> {
    let started = std::time::Instant::now();
    let (t, h) = (base.as_of, base.churn_horizon_months);
    let (test_t0, train_t0) = snapshot_dates(v, t, h, cfg.train_snapshots)?;
    let mut snaps = snapshots(v, test_t0, &train_t0, base, cfg.max_train_rows)?;
    let test_frame = std::mem::replace(&mut snaps.test.frame, DataFrame::empty());
    let prepaid_at_test = snaps.test.plans.get(&Plan::Prepaid).map(|r| r.ids.clone()).unwrap_or_default();
    let plans: Vec<OutOfTime> =
        Plan::ALL.iter().filter_map(|p| out_of_time(&mut snaps, *p, cfg.max_train_rows)).collect();
    if plans.is_empty() {
        return Err(PipelineError::NoChurner);
    }
    let topup_model = snaps.topup_model.take();
    drop(snaps);
    let plans = train_plans(plans, cfg)?;
    Ok(TrainedChurn {
        plans,
        topup_model,
        test_frame,
        test_t0,
        train_t0,
        prepaid_at_test,
        classifier: cfg.classifier,
        seconds: started.elapsed().as_secs_f64(),
    })
}

impl TrainedChurn {
    /// Whether scoring reads the top-up inputs at T (a prepaid classifier with a
    /// top-up model): then the features at T may count them
    /// (`FeatureParams::topup_days`) for [`TrainedChurn::score`].
    pub fn reads_topup_inputs(&self) -> bool {
        self.topup_model.is_some() && self.prepaid_classified()
    }

    fn prepaid_classified(&self) -> bool {
        self.plans.iter().any(|p| p.o.plan == Plan::Prepaid)
    }

    /// The scoring half of [`fit_churn`]: every customer of `at_t` (the feature table at
    /// `base.as_of`) scored by their plan's classifier, or prepaid ones by BG/NBD where
    /// no prepaid classifier could be trained. `topup_days`: the BG/NBD periods at T
    /// that the features' pass counted (`FeaturesAtT::topup_days`) for the customers of
    /// `at_t`; without them a pass over the top-ups summarises every customer.
    pub fn score(
        self,
        v: &Validated,
        base: &FeatureParams,
        at_t: &dyn FeatureRows,
        topup_days: Option<&DaySummaries>,
    ) -> Result<ChurnFit> {
        let started = std::time::Instant::now();
        let (t, h) = (base.as_of, base.churn_horizon_months);
        let prepaid_classified = self.prepaid_classified();
        let model = self.topup_model.as_ref().filter(|_| prepaid_classified);
        let extra = match (model, topup_days) {
            (Some(model), Some(days)) => Extra::with_topups(&v.tables, t, TopupInputs::of_days(model, days, base))?,
            _ => Extra::at(&v.tables, t, base, model)?,
        };
        let (fits, scored) = score_plans(self.plans, at_t, &extra)?;
        let (plans, designs) = fits.into_iter().map(|f| (f.report, f.designs)).unzip::<_, _, Vec<_>, Vec<_>>();
        let designs = designs.into_iter().flatten().collect();
        // BG/NBD only where the prepaid churn could not be learned.
        let (prepaid, prepaid_test) = if prepaid_classified {
            (None, None)
        } else {
            (
                prepaid_loyalty(v, t, &prepaid_ids(at_t.in_memory())?, base)?,
                prepaid_out_of_time(v, self.test_t0, &self.prepaid_at_test, base)?,
            )
        };
        let prepaid_report = prepaid.as_ref().map(|pp| report::prepaid_report(pp, prepaid_test));
        let scores = scores_table(scored, prepaid.as_ref(), h)?;
        let report = ChurnReport {
            horizon_months: h,
            as_of: t.to_string(),
            test_snapshot: self.test_t0.to_string(),
            train_snapshots: self.train_t0.iter().map(|d| d.to_string()).collect(),
            classifier: self.classifier,
            plans,
            prepaid_bgnbd: prepaid_report,
            wall_seconds: self.seconds + started.elapsed().as_secs_f64(),
        };
        Ok(ChurnFit { test_frame: self.test_frame, scores, report, designs })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Seeded uniforms in [0, 1).
    fn uniforms(mut s: u64) -> impl FnMut() -> f64 {
        move || {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 11) as f64 / (1u64 << 53) as f64
        }
    }

    /// `n` rows whose churn odds rise linearly in the first feature, with four
    /// features of noise beside it: a logistic model's case.
    fn linear_rows(n: usize, seed: u64) -> (Design, Vec<f64>) {
        let mut u = uniforms(seed);
        let columns: Vec<Vec<f64>> = (0..5).map(|_| (0..n).map(|_| u()).collect()).collect();
        let y = (0..n).map(|i| f64::from(u() < 1.0 / (1.0 + (3.0 - 6.0 * columns[0][i]).exp()))).collect();
        (Design::new((0..5).map(|j| format!("x{j}")).collect(), columns).unwrap(), y)
    }

    fn out_of_time() -> OutOfTime {
        let (train_design, train_y) = linear_rows(400, 7);
        let (test_design, eval_y) = linear_rows(2_000, 11);
        OutOfTime {
            plan: Plan::Postpaid,
            names: train_design.names.clone(),
            test_population: eval_y.len(),
            test_sampled: eval_y.len(),
            test_churners: eval_y.iter().sum(),
            test_design,
            eval_y,
            train_customers: train_y.len(),
            train_rows_kept: train_y.len(),
            train_design,
            train_y,
            per_snapshot: 400,
        }
    }

    /// A model's scores of rows neither fit saw.
    fn scores(fitted: &Fitted) -> Vec<f64> {
        fitted.score(&linear_rows(300, 13).0).0
    }

    #[test]
    fn the_logistic_model_scores_when_it_wins_out_of_time_though_boosting_was_refitted_first() {
        // Boosting refits while the comparison runs; when the logistic model ranks the
        // test snapshot better, that refit is thrown away and the logistic one is fitted.
        let cfg = ChurnConfig { trees: 40, ..ChurnConfig::default() };
        let trained = train_plans(vec![out_of_time()], &cfg).unwrap().pop().unwrap();
        let auc = |model: &str| trained.results.iter().find(|r| r.model == model).unwrap().metrics.roc_auc;
        assert!(auc(report::LOGISTIC) > auc(report::BOOSTING_CALIBRATED), "the case needs the logistic model to win");
        assert_eq!(trained.chosen, Classifier::Logistic);
        assert!(matches!(trained.fitted, Fitted::Logistic(_)));
        let logistic = refit(&out_of_time(), Classifier::Logistic, &cfg).unwrap();
        assert_eq!(scores(&trained.fitted), scores(&logistic));

        // Named boosting keeps its refit, whatever ranks better.
        let named = ChurnConfig { classifier: Classifier::Boosting, ..cfg };
        let trained = train_plans(vec![out_of_time()], &named).unwrap().pop().unwrap();
        assert_eq!(trained.chosen, Classifier::Boosting);
        let boosting = refit(&out_of_time(), Classifier::Boosting, &named).unwrap();
        assert!(matches!(trained.fitted, Fitted::Boosting(..)));
        assert_eq!(scores(&trained.fitted), scores(&boosting));
    }
}
