//! What the churn models report about themselves: `model_quality.json`, the output
//! of `loyalty churn train --format json`, and the report's model section.

use loyalty_features::names as n;
use loyalty_models::BgNbd;
use loyalty_models::churn::{Design, Metrics, Platt, evaluate, gains_curve, roc_curve};
use serde::Serialize;

use super::OutOfTime;
use super::prepaid::Prepaid;
use super::snapshot::Plan;
use super::train::{FeatureShare, Fitted};
use crate::settings::Classifier;

pub(crate) const BOOSTING: &str = "gradient boosting";
pub(crate) const BOOSTING_CALIBRATED: &str = "gradient boosting calibrated";
pub(crate) const LOGISTIC: &str = "logistic regression (L2)";

/// One candidate model's metrics on held-out customers.
#[derive(Debug, Clone, Serialize)]
pub struct ModelMetrics {
    pub model: &'static str,
    #[serde(flatten)]
    pub metrics: Metrics,
}

/// The scoring model's out-of-time metrics among the customers of one competition level.
#[derive(Debug, Clone, Serialize)]
pub struct CompetitionMetrics {
    pub competition_level: &'static str,
    #[serde(flatten)]
    pub metrics: Metrics,
}

/// One plan type's out-of-time test snapshot.
#[derive(Debug, Clone, Serialize)]
pub struct TestSnapshot {
    /// Customers of the plan active at the snapshot.
    pub customers: usize,
    /// Of them, those whose features were computed (a uniform sample above the cap).
    pub sampled_customers: usize,
    pub churners: f64,
    /// Rows the metrics were computed on.
    pub evaluated_on: usize,
}

/// One plan type's classifier: how it was chosen, how it did out of time, what it scored.
#[derive(Debug, Clone, Serialize)]
pub struct PlanReport {
    pub plan: Plan,
    pub test_snapshot: TestSnapshot,
    /// Customers of the plan active at the training snapshots, before sampling.
    pub train_customers: usize,
    pub train_rows_kept: usize,
    pub features: usize,
    /// Every candidate on the out-of-time test; `scoring_model` names the one whose
    /// scores the outputs carry.
    pub out_of_time: Vec<ModelMetrics>,
    pub scoring_model: &'static str,
    /// The scoring model's out-of-time metrics per competition level.
    pub by_competition: Vec<CompetitionMetrics>,
    /// ROC curve (false positive rate, true positive rate) of the scoring model on
    /// the test snapshot.
    pub roc_curve: Vec<[f64; 2]>,
    /// Cumulative gains (share targeted, share of churners caught) of the scoring model.
    pub gains_curve: Vec<[f64; 2]>,
    pub platt: Option<Platt>,
    pub scored_customers: usize,
    /// Mean P(churn) of the customers it scored at T.
    pub mean_p_churn: f64,
    /// Total-gain shares (boosting) or shares of the absolute standardised
    /// coefficients (logistic), largest first.
    pub top_features: Vec<FeatureShare>,
}

impl PlanReport {
    /// The out-of-time metrics of the model whose scores the outputs carry.
    pub fn scoring_metrics(&self) -> Option<&Metrics> {
        self.out_of_time.iter().find(|m| m.model == self.scoring_model).map(|m| &m.metrics)
    }
}

/// BG/NBD on the prepaid customers at T (used where no prepaid churn is observed).
#[derive(Debug, Clone, Serialize)]
pub struct PrepaidReport {
    pub customers: usize,
    pub model: &'static str,
    pub params: BgNbd,
    pub log_likelihood: f64,
    pub mean_p_churn: f64,
    /// P(churn) = 1 - P(alive h months on), tested against churn after the test snapshot.
    pub out_of_time: Option<Metrics>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ChurnReport {
    pub horizon_months: u32,
    pub as_of: String,
    /// The out-of-time test date: the latest whose label window ends by T.
    pub test_snapshot: String,
    pub train_snapshots: Vec<String>,
    /// The configured choice: `auto` scores with the candidate of the highest
    /// out-of-time ROC AUC, per plan type.
    pub classifier: Classifier,
    /// A classifier per plan type with churners to learn from.
    pub plans: Vec<PlanReport>,
    /// BG/NBD for the prepaid customers when they have no classifier.
    pub prepaid_bgnbd: Option<PrepaidReport>,
    pub wall_seconds: f64,
}

impl ChurnReport {
    pub fn plan(&self, plan: Plan) -> Option<&PlanReport> {
        self.plans.iter().find(|p| p.plan == plan)
    }
}

/// What [`plan_report`] is built from besides the fitted model.
pub(crate) struct PlanParts<'a> {
    pub o: &'a OutOfTime,
    pub results: Vec<ModelMetrics>,
    pub chosen: Classifier,
    pub chosen_p: &'a [f64],
    pub by_competition: Vec<CompetitionMetrics>,
}

fn mean(xs: impl ExactSizeIterator<Item = f64>) -> f64 {
    let n = xs.len().max(1) as f64;
    xs.sum::<f64>() / n
}

pub(crate) fn plan_report(p: PlanParts, fitted: &Fitted, scored_p: &[f64]) -> PlanReport {
    let o = p.o;
    PlanReport {
        plan: o.plan,
        test_snapshot: TestSnapshot {
            customers: o.test_population,
            sampled_customers: o.test_sampled,
            churners: o.test_churners,
            evaluated_on: o.eval_y.len(),
        },
        train_customers: o.train_customers,
        train_rows_kept: o.train_rows_kept,
        features: o.names.len(),
        out_of_time: p.results,
        scoring_model: scoring_model(p.chosen),
        by_competition: p.by_competition,
        roc_curve: roc_curve(p.chosen_p, &o.eval_y, 50),
        gains_curve: gains_curve(p.chosen_p, &o.eval_y, 20),
        platt: fitted.platt(),
        scored_customers: scored_p.len(),
        mean_p_churn: mean(scored_p.iter().copied()),
        top_features: fitted.importance(&o.names),
    }
}

pub(crate) fn prepaid_report(pp: &Prepaid, out_of_time: Option<Metrics>) -> PrepaidReport {
    PrepaidReport {
        customers: pp.ids.len(),
        model: "bgnbd",
        params: pp.model,
        log_likelihood: pp.log_likelihood,
        mean_p_churn: mean(pp.loyalty.iter().map(|l| 1.0 - l)),
        out_of_time,
    }
}

/// The scoring model's metrics within each competition level of the test rows (the
/// design's `competition_level` input: 0 low, 1 medium, 2 high); levels without
/// both churners and stayers are left out.
pub(crate) fn by_competition(test: &Design, p: &[f64], y: &[f64]) -> Vec<CompetitionMetrics> {
    let Some(j) = test.names.iter().position(|c| c == n::COMPETITION_LEVEL) else { return Vec::new() };
    let level = &test.columns[j];
    [(0.0, "low"), (1.0, "medium"), (2.0, "high")]
        .into_iter()
        .filter_map(|(code, name)| {
            let rows: Vec<usize> = (0..y.len()).filter(|&i| level[i] == code).collect();
            let (pk, yk): (Vec<f64>, Vec<f64>) = rows.iter().map(|&i| (p[i], y[i])).unzip();
            let churners = yk.iter().sum::<f64>();
            (churners > 0.0 && churners < yk.len() as f64)
                .then(|| CompetitionMetrics { competition_level: name, metrics: evaluate(&pk, &yk) })
        })
        .collect()
}

/// The candidate whose scores the outputs carry.
fn scoring_model(classifier: Classifier) -> &'static str {
    match classifier {
        Classifier::Boosting | Classifier::Auto => BOOSTING_CALIBRATED,
        Classifier::Logistic => LOGISTIC,
    }
}
