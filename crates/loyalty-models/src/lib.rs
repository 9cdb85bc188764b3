//! Customer-base models fitted by maximum likelihood, with standard errors:
//! sBG for contractual retention (and DERL), BG/NBD and Pareto/NBD for
//! non-contractual transaction logs, Gamma-Gamma for spend.
//!
//! Every likelihood is evaluated in log space with stable special functions
//! ([`special`]); customers with the same history are one weighted row ([`rfm::compress`]).
//! The churn classifiers ([`churn`], [`gbm`]) are deterministic: the same rows give
//! the same model to the last bit, whatever the thread count.

pub mod bgnbd;
pub mod churn;
mod error;
pub mod gamma_gamma;
pub mod gbm;
pub mod optimize;
pub mod pareto_nbd;
pub mod rfm;
pub mod sbg;
pub mod special;

pub use bgnbd::BgNbd;
pub use error::ModelError;
pub use gamma_gamma::{GammaGamma, Spend};
pub use optimize::Optimum;
pub use pareto_nbd::ParetoNbd;
pub use rfm::Rfm;
pub use sbg::Sbg;
