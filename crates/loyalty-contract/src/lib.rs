//! The input contract of `loyalty` (SCHEMA.md): what a dataset must look like, how
//! loosely typed producers are coerced into it, and every rule a row must obey.
//!
//! Pure: everything here takes and returns `LazyFrame`s; reading files is the job of
//! `loyalty-io`.

pub mod cancel;
pub mod error;
pub mod normalize;
pub mod partition;
pub mod rules;
pub mod spec;
pub mod summary;
pub mod validate;

pub use error::{ContractError, SchemaProblem};
pub use spec::{Kind, Table, col};
pub use validate::{RawDataset, RawTable, TableReport, Validated, ValidationReport, Violation, trust, validate};

use polars::prelude::{DataFrame, Engine, LazyFrame, PolarsResult};

/// Days since 1970-01-01, as Polars stores a Date.
pub fn epoch_days(d: chrono::NaiveDate) -> i32 {
    (d - chrono::NaiveDate::from_ymd_opt(1970, 1, 1).expect("valid date")).num_days() as i32
}

/// Run a plan on the streaming engine (bounded memory over large scans).
pub fn collect_streaming(lf: LazyFrame) -> PolarsResult<DataFrame> {
    Ok(lf.collect_with_engine(Engine::Streaming)?.unwrap_single())
}
