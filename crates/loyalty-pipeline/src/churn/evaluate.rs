//! One snapshot, no history: stratified k-fold cross-validation of the candidates.

use loyalty_contract::Validated;
use loyalty_features::FeatureParams;
use loyalty_models::churn::{Logistic, evaluate as metrics_of, roc_auc, stratified_folds};
use serde::Serialize;

use super::report::{BOOSTING, BOOSTING_CALIBRATED, LOGISTIC, ModelMetrics};
use super::snapshot::{Extra, Plan, snapshot};
use super::train::fit_calibrated;
use crate::PipelineError;
use crate::error::Result;
use crate::settings::ChurnConfig;

/// Gradient boosting's ROC AUC over the folds.
#[derive(Debug, Clone, Serialize)]
pub struct FoldAuc {
    pub mean: f64,
    pub sd: f64,
    pub folds: Vec<f64>,
}

/// What `loyalty churn evaluate` reports.
#[derive(Debug, Clone, Serialize)]
pub struct CrossValidation {
    pub as_of: String,
    pub horizon_months: u32,
    pub folds: usize,
    pub customers: usize,
    pub churners: f64,
    pub features: Vec<String>,
    pub cross_validated: Vec<ModelMetrics>,
    pub gradient_boosting_fold_auc: FoldAuc,
    pub wall_seconds: f64,
}

fn fold_auc(aucs: Vec<f64>) -> FoldAuc {
    let mean = aucs.iter().sum::<f64>() / aucs.len() as f64;
    let sd = (aucs.iter().map(|a| (a - mean).powi(2)).sum::<f64>() / (aucs.len() - 1).max(1) as f64).sqrt();
    FoldAuc { mean, sd, folds: aucs }
}

/// Cross-validate at `params.as_of` with `cfg.folds` folds: every customer is scored
/// by the models fitted on the other folds.
pub fn cross_validate(v: &Validated, cfg: &ChurnConfig, params: &FeatureParams) -> Result<CrossValidation> {
    let started = std::time::Instant::now();
    let mut snap =
        snapshot(v, &v.tables, params.as_of, None, params, &Extra::at(&v.tables, params.as_of, params, None)?)?;
    let s = snap.plans.remove(&Plan::Postpaid).ok_or_else(|| PipelineError::Data("no postpaid customers".into()))?;
    let (n, k) = (s.y.len(), cfg.folds);
    let churners = s.y.iter().sum::<f64>();
    if churners < k as f64 || (n as f64 - churners) < k as f64 {
        return Err(PipelineError::Data(format!(
            "{n} customers, {churners} churners: too few of each class for {k}-fold cross-validation"
        )));
    }
    let folds = stratified_folds(&s.y, k, 7);
    let (mut gb, mut gb_cal, mut lr) = (vec![0.0; n], vec![0.0; n], vec![0.0; n]);
    let mut aucs = Vec::new();
    for fold in 0..k {
        let train: Vec<usize> = (0..n).filter(|&i| folds[i] != fold).collect();
        let test: Vec<usize> = (0..n).filter(|&i| folds[i] == fold).collect();
        let ty: Vec<f64> = train.iter().map(|&i| s.y[i]).collect();
        let (d_train, d_test) = (s.design.take(&train), s.design.take(&test));
        let (gbm, platt) = fit_calibrated(&d_train, &ty, &cfg.boosting())?;
        let raw = gbm.predict(&d_test);
        let cal = platt.apply(&raw);
        let log = Logistic::fit(&d_train, &ty, 1.0).predict(&d_test);
        let yk: Vec<f64> = test.iter().map(|&i| s.y[i]).collect();
        aucs.push(roc_auc(&raw, &yk));
        for (j, &i) in test.iter().enumerate() {
            (gb[i], gb_cal[i], lr[i]) = (raw[j], cal[j], log[j]);
        }
    }
    Ok(CrossValidation {
        as_of: params.as_of.to_string(),
        horizon_months: params.churn_horizon_months,
        folds: k,
        customers: n,
        churners,
        features: s.design.names.clone(),
        cross_validated: vec![
            ModelMetrics { model: BOOSTING, metrics: metrics_of(&gb, &s.y) },
            ModelMetrics { model: BOOSTING_CALIBRATED, metrics: metrics_of(&gb_cal, &s.y) },
            ModelMetrics { model: LOGISTIC, metrics: metrics_of(&lr, &s.y) },
        ],
        gradient_boosting_fold_auc: fold_auc(aucs),
        wall_seconds: started.elapsed().as_secs_f64(),
    })
}
