//! The input contract of `loyalty` (SCHEMA.md): what a dataset must look like, how
//! loosely typed producers are coerced into it, and every rule a row must obey.
//!
//! Pure: everything here takes and returns `LazyFrame`s; reading files is the job of
//! `loyalty-io`.

pub mod ahead;
pub mod cancel;
pub mod dates;
pub mod error;
pub mod fold;
mod keys;
pub mod labels;
pub mod memory;
pub mod normalize;
pub mod partition;
pub mod reads;
pub mod rules;
pub mod slots;
pub mod spec;
pub mod summary;
pub mod tables;
pub mod validate;

pub use error::{ContractError, SchemaProblem};
pub use spec::{Kind, Table, col};
pub use tables::Tables;
pub use validate::{
    Copier, RawDataset, RawTable, RowSink, TableReport, Validated, ValidationReport, Violation, trust, validate,
    validate_copying,
};

use polars::prelude::{DataFrame, Engine, LazyFrame, PolarsResult};

pub use dates::epoch_days;
pub use fold::{FoldThread, fold_batches};

/// Run a plan on the streaming engine (bounded memory over large scans).
pub fn collect_streaming(lf: LazyFrame) -> PolarsResult<DataFrame> {
    Ok(lf.collect_with_engine(Engine::Streaming)?.unwrap_single())
}
