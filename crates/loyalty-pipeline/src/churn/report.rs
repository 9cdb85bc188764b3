//! What the churn model reports about itself: `model_quality.json`, the output of
//! `loyalty churn train --format json`, and the report's model section.

use chrono::NaiveDate;
use loyalty_features::FeatureParams;
use loyalty_models::BgNbd;
use loyalty_models::churn::{Metrics, Platt, gains_curve, roc_curve};
use serde::Serialize;

use super::OutOfTime;
use super::prepaid::Prepaid;
use super::train::{FeatureShare, Fitted};
use crate::settings::{ChurnConfig, Classifier};

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

/// The out-of-time test snapshot.
#[derive(Debug, Clone, Serialize)]
pub struct TestSnapshot {
    pub as_of: String,
    /// Postpaid customers active at the snapshot.
    pub customers: usize,
    /// Of them, those whose features were computed (a uniform sample above the cap).
    pub sampled_customers: usize,
    pub churners: f64,
    /// Rows the metrics were computed on.
    pub evaluated_on: usize,
}

/// BG/NBD on the prepaid customers at T.
#[derive(Debug, Clone, Serialize)]
pub struct PrepaidReport {
    pub customers: usize,
    pub model: &'static str,
    pub params: BgNbd,
    pub log_likelihood: f64,
    pub mean_p_churn: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct ChurnReport {
    pub horizon_months: u32,
    pub as_of: String,
    pub test_snapshot: TestSnapshot,
    pub train_snapshots: Vec<String>,
    /// Postpaid customers active at the training snapshots, before sampling.
    pub train_customers: usize,
    pub train_rows_kept: usize,
    pub features: usize,
    /// Every candidate on the out-of-time test; `scoring_model` names the one whose
    /// scores the outputs carry.
    pub out_of_time: Vec<ModelMetrics>,
    pub classifier: Classifier,
    pub scoring_model: &'static str,
    /// ROC curve (false positive rate, true positive rate) of the scoring model on
    /// the test snapshot.
    pub roc_curve: Vec<[f64; 2]>,
    /// Cumulative gains (share targeted, share of churners caught) of the scoring model.
    pub gains_curve: Vec<[f64; 2]>,
    pub platt: Option<Platt>,
    pub scored_customers: usize,
    pub prepaid_out_of_time: Option<Metrics>,
    pub prepaid: Option<PrepaidReport>,
    /// Mean P(churn) of the postpaid customers the classifier scored.
    pub mean_p_churn: f64,
    /// Total-gain shares (boosting) or shares of the absolute standardised
    /// coefficients (logistic), largest first.
    pub top_features: Vec<FeatureShare>,
    pub wall_seconds: f64,
}

/// What [`ChurnReport::new`] is built from.
pub(crate) struct Parts<'a> {
    pub cfg: &'a ChurnConfig,
    pub base: &'a FeatureParams,
    pub test_t0: NaiveDate,
    pub train_t0: &'a [NaiveDate],
    pub o: &'a OutOfTime,
    pub results: Vec<ModelMetrics>,
    pub chosen_test_p: &'a [f64],
    pub fitted: &'a Fitted,
    pub scored_p: &'a [f64],
    pub prepaid: Option<&'a Prepaid>,
    pub prepaid_test: Option<Metrics>,
    pub started: std::time::Instant,
}

fn mean(xs: impl ExactSizeIterator<Item = f64>) -> f64 {
    let n = xs.len().max(1) as f64;
    xs.sum::<f64>() / n
}

impl ChurnReport {
    pub(crate) fn new(p: Parts) -> Self {
        let o = p.o;
        let prepaid = p.prepaid.map(|pp| PrepaidReport {
            customers: pp.ids.len(),
            model: "bgnbd",
            params: pp.model,
            log_likelihood: pp.log_likelihood,
            mean_p_churn: mean(pp.loyalty.iter().map(|l| 1.0 - l)),
        });
        ChurnReport {
            horizon_months: p.base.churn_horizon_months,
            as_of: p.base.as_of.to_string(),
            test_snapshot: TestSnapshot {
                as_of: p.test_t0.to_string(),
                customers: o.test.population,
                sampled_customers: o.test.y.len(),
                churners: o.test.y.iter().sum(),
                evaluated_on: o.eval_y.len(),
            },
            train_snapshots: p.train_t0.iter().map(|d| d.to_string()).collect(),
            train_customers: o.train_customers,
            train_rows_kept: o.train_y.len(),
            features: o.names.len(),
            out_of_time: p.results,
            classifier: p.cfg.classifier,
            scoring_model: scoring_model(p.cfg.classifier),
            roc_curve: roc_curve(p.chosen_test_p, &o.eval_y, 50),
            gains_curve: gains_curve(p.chosen_test_p, &o.eval_y, 20),
            platt: p.fitted.platt(),
            scored_customers: p.scored_p.len(),
            prepaid_out_of_time: p.prepaid_test,
            prepaid,
            mean_p_churn: mean(p.scored_p.iter().copied()),
            top_features: p.fitted.importance(&o.names),
            wall_seconds: p.started.elapsed().as_secs_f64(),
        }
    }

    /// The out-of-time metrics of the model whose scores the outputs carry.
    pub fn scoring_metrics(&self) -> Option<&Metrics> {
        self.out_of_time.iter().find(|m| m.model == self.scoring_model).map(|m| &m.metrics)
    }
}

/// The candidate whose scores the outputs carry.
fn scoring_model(classifier: Classifier) -> &'static str {
    match classifier {
        Classifier::Boosting => BOOSTING_CALIBRATED,
        Classifier::Logistic => LOGISTIC,
    }
}
