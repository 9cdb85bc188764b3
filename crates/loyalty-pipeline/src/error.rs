//! The pipeline's errors, by whose fault they are: the input's or a setting's (exit 1
//! in the binary), the caller's usage or the machine's (exit 2).

use loyalty_contract::{ContractError, Violation};
use loyalty_features::FeatureError;
use loyalty_io::IoError;
use loyalty_models::ModelError;
use polars::prelude::PolarsError;

#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// Strict validation found rows that break the contract; the text names each rule.
    #[error("{}", crate::text::violations(.0))]
    Invalid(Vec<Violation>),
    /// A setting (config file, environment or flag) breaks its rule.
    #[error("{0}")]
    Settings(String),
    /// The data cannot answer what was asked (no cohort, no transaction log, ...).
    #[error("{0}")]
    Data(String),
    /// The history is too short for the churn model's out-of-time validation.
    #[error(
        "out-of-time validation needs a training snapshot at least {horizon} months before the test one ({test_t0}) and 3 months after the first bill ({first_bill}); the data is too short (use `loyalty churn evaluate` for one snapshot)"
    )]
    HistoryTooShort { horizon: u32, test_t0: chrono::NaiveDate, first_bill: chrono::NaiveDate },
    /// A training or test snapshot has no churner: nothing to learn or to test.
    #[error("no churner in a training or test snapshot: nothing to learn or test")]
    NoChurner,
    /// The request cannot be carried out as given (a missing secret, an engine that
    /// needs an address), not the data's fault.
    #[error("{0}")]
    Usage(String),
    #[error(transparent)]
    Contract(#[from] ContractError),
    #[error(transparent)]
    Io(#[from] IoError),
    #[error(transparent)]
    Features(#[from] FeatureError),
    #[error(transparent)]
    Model(#[from] ModelError),
    #[error(transparent)]
    Polars(#[from] PolarsError),
    #[error(transparent)]
    Interrupted(#[from] loyalty_contract::cancel::Interrupted),
    #[error(transparent)]
    Generate(#[from] loyalty_synth::SinkError),
    #[error("writing JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// What the pipeline was doing when `source` happened.
    #[error("{context}")]
    Context {
        context: String,
        #[source]
        source: Box<PipelineError>,
    },
}

impl PipelineError {
    /// The input or a setting is at fault (the caller fixes the data or the
    /// configuration, not the program): exit 1.
    pub fn is_bad_input(&self) -> bool {
        match self {
            Self::Invalid(_) | Self::Settings(_) | Self::Data(_) | Self::HistoryTooShort { .. } | Self::NoChurner => {
                true
            }
            Self::Io(e) => e.is_bad_input(),
            Self::Contract(e) => matches!(e, ContractError::Schema(_)),
            Self::Features(FeatureError::Config(_)) => true,
            Self::Model(ModelError::BadInput(_)) => true,
            Self::Context { source, .. } => source.is_bad_input(),
            _ => false,
        }
    }

    /// The churn model cannot be trained on this history: the run carries on with the
    /// Kaplan-Meier curves.
    pub fn is_untrainable(&self) -> bool {
        match self {
            Self::HistoryTooShort { .. } | Self::NoChurner => true,
            Self::Context { source, .. } => source.is_untrainable(),
            _ => false,
        }
    }

    /// The error came out of Polars (a decoder among them), so a corrupt input file
    /// may be behind it; a failed write is not.
    pub fn is_from_polars(&self) -> bool {
        match self {
            Self::Polars(_)
            | Self::Contract(ContractError::Polars { .. })
            | Self::Features(FeatureError::Polars(_)) => true,
            Self::Io(IoError::Polars { context, .. }) => !context.starts_with("writing"),
            Self::Context { source, .. } => source.is_from_polars(),
            _ => false,
        }
    }
}

/// `.during(...)` on results whose error converts into a [`PipelineError`].
pub trait Context<T> {
    fn during(self, context: impl Into<String>) -> Result<T, PipelineError>;
    fn during_with<S: Into<String>>(self, context: impl FnOnce() -> S) -> Result<T, PipelineError>;
}

impl<T, E: Into<PipelineError>> Context<T> for Result<T, E> {
    fn during(self, context: impl Into<String>) -> Result<T, PipelineError> {
        self.map_err(|e| PipelineError::Context { context: context.into(), source: Box::new(e.into()) })
    }

    fn during_with<S: Into<String>>(self, context: impl FnOnce() -> S) -> Result<T, PipelineError> {
        self.map_err(|e| PipelineError::Context { context: context().into(), source: Box::new(e.into()) })
    }
}

pub type Result<T, E = PipelineError> = std::result::Result<T, E>;
