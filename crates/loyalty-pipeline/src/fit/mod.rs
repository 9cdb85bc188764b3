//! `loyalty fit`: customer-base models by maximum likelihood, with the report each
//! prints (parameters, standard errors, likelihood and model-specific extras).

mod km;
mod sbg;
mod transactions;

use std::collections::BTreeMap;

use loyalty_models::Optimum;
use serde::Serialize;
use serde_json::Value;

pub use km::{KM_DEFAULT_BY, KmGroup, KmSummary, kaplan_meier};
pub use sbg::{SbgOptions, SbgSource, fit_sbg, parse_survivors};
pub use transactions::{Kind, Period, TxFit, TxOptions, TxSource, fit_transactions};

/// One fitted model, as `loyalty fit --format json` prints it.
#[derive(Debug, Serialize)]
pub struct FitReport {
    pub model: &'static str,
    pub params: BTreeMap<&'static str, f64>,
    pub std_errors: BTreeMap<&'static str, f64>,
    pub log_likelihood: f64,
    pub customers: f64,
    /// Likelihood rows after merging identical histories.
    pub rows: usize,
    pub converged: bool,
    pub evaluations: usize,
    /// Model-specific results (curves, DERL, CLV, the calibration period).
    #[serde(flatten)]
    pub extra: BTreeMap<&'static str, Value>,
    pub wall_seconds: f64,
    /// The parameter names, in the model's order (for printing).
    #[serde(skip)]
    pub names: &'static [&'static str],
}

impl FitReport {
    fn new(model: &'static str, names: &'static [&'static str], o: &Optimum, customers: f64, rows: usize) -> Self {
        FitReport {
            model,
            params: names.iter().copied().zip(o.params.iter().copied()).collect(),
            std_errors: names.iter().copied().zip(o.std_errors.iter().copied()).collect(),
            log_likelihood: o.log_likelihood,
            customers,
            rows,
            converged: o.converged,
            evaluations: o.evaluations,
            extra: BTreeMap::new(),
            wall_seconds: 0.0,
            names,
        }
    }
}
