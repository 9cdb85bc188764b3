//! The product as a library: every stage of `loyalty run` and the work of the other
//! subcommands, as functions of plain inputs and resolved settings, returning typed
//! results and errors. The binary (`loyalty-cli`) parses arguments, resolves the
//! settings ([`settings::resolve`]), calls one function here and maps the error to an
//! exit code ([`PipelineError::is_bad_input`]).
//!
//! `loyalty run` ([`run::run`]) runs, in order:
//!
//! | stage | where |
//! |---|---|
//! | validate | [`dataset::load_validated`] (loyalty-contract's rules) |
//! | features at T | `loyalty_features::customer_features` |
//! | churn model | [`churn::fit_churn`]: snapshots, out-of-time test, refit, scoring; BG/NBD for prepaid |
//! | clv | `run::with_churn`: CLV from the churn scores, `loyalty`, `p_churn_<h>m` |
//! | segments | `loyalty_features::segments` |
//! | curves | `loyalty_features::curves::satisfaction_curves` |
//! | retention | `loyalty_features::retention`, [`cohorts::sbg_retention`] |
//! | report | [`report::document`] |
//! | write | [`outputs::Outputs`], [`manifest::RunManifest`] (run.json), then one atomic swap |

pub mod churn;
pub mod cohorts;
pub mod dataset;
pub mod engine;
mod error;
pub mod features;
pub mod fit;
pub mod generate;
pub mod import;
pub mod manifest;
pub mod observer;
pub mod outputs;
pub mod pseudonym;
pub mod report;
pub mod run;
pub mod scan;
pub mod settings;
mod spill;
pub mod text;

pub use dataset::DataOptions;
pub use engine::{BallistaSettings, EngineChoice};
pub use error::{Context, PipelineError, Result};
pub use observer::{Observer, Quiet, StageRecord, StageUse};
pub use run::{RunOutcome, RunRequest, run};
pub use settings::{Overrides, RunConfig, resolve};
