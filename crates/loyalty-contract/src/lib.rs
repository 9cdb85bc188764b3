//! The input contract of `loyalty` (SCHEMA.md): what a dataset must look like, how
//! loosely typed producers are coerced into it, and every rule a row must obey.
//!
//! Pure: everything here takes and returns `LazyFrame`s; reading files is the job of
//! `loyalty-io`.

pub mod ahead;
pub mod cancel;
pub mod dates;
pub mod error;
mod keys;
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

use std::sync::{Arc, Mutex};

use polars::prelude::{DataFrame, Engine, LazyFrame, PlanCallback, PolarsResult, polars_err};

pub use dates::epoch_days;

/// Run a plan on the streaming engine (bounded memory over large scans).
pub fn collect_streaming(lf: LazyFrame) -> PolarsResult<DataFrame> {
    Ok(lf.collect_with_engine(Engine::Streaming)?.unwrap_single())
}

/// Run `lf` on the streaming engine, folding each batch it produces into `state` with
/// `fold` (one batch at a time, from the engine's threads); the state at the end.
/// The kernels that keep a compact record per customer are fed this way: the engine
/// scans, filters and decodes in parallel, and no frame of every row exists.
pub fn fold_batches<S: Send + 'static>(
    lf: LazyFrame,
    state: S,
    fold: impl Fn(&mut S, DataFrame) -> PolarsResult<()> + Send + Sync + 'static,
) -> PolarsResult<S> {
    let shared = Arc::new(Mutex::new(Some(state)));
    let fed = shared.clone();
    let plan = lf.sink_batches(
        PlanCallback::new(move |df: DataFrame| {
            let mut guard = fed.lock().map_err(|_| polars_err!(ComputeError: "a batch fold panicked"))?;
            let state = guard.as_mut().ok_or_else(|| polars_err!(ComputeError: "a batch fold already ended"))?;
            fold(state, df)?;
            Ok(false)
        }),
        false,
        None,
    )?;
    collect_streaming(plan)?;
    let state = shared.lock().ok().and_then(|mut s| s.take());
    state.ok_or_else(|| polars_err!(ComputeError: "a batch fold lost its state"))
}
