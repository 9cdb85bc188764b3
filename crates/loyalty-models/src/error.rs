//! What can go wrong in a model: its inputs (the caller's data or settings).

/// A model could not be built or fitted.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ModelError {
    /// The rows handed to a model break its input rules (the data's fault).
    #[error("{0}")]
    BadInput(String),
}
