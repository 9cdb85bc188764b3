//! The heavy per-customer aggregates on another engine.
//!
//! The per-customer reduction of the large event tables (billing, top-ups,
//! interactions, surveys) is the part of the feature stage that grows with rows; the
//! rest works on one row per customer. An [`Aggregator`] computes that reduction
//! somewhere else (the Ballista cluster of `loyalty-ballista`) and hands back one
//! frame per table with exactly the columns of the local plans: the billing sums of
//! the reference group-by (`BillingEngine::Polars`) and the event-table group-bys.
//! `assemble` casts what comes back to the local plans' schemas, then proceeds as
//! it does with local results, so every expression after the reduction is shared.

use std::fmt;
use std::sync::Arc;

use chrono::NaiveDate;
use loyalty_contract::Table;
use polars::prelude::*;

use crate::FeatureError;

/// What the remote engine is asked for: the dates that bound every window.
#[derive(Debug, Clone, PartialEq)]
pub struct AggregateRequest {
    /// T, the end of the day at which features are taken.
    pub as_of: NaiveDate,
    /// The first day of the last month whose bill is known at T.
    pub last_known_bill_month: NaiveDate,
    /// The first month of the 12-month billing window.
    pub window_start: NaiveDate,
    /// T minus 12 months: events count when dated after it (and at or before T).
    pub year_before: NaiveDate,
    /// Margin as a share of total_charge when a bill has no cost.
    pub margin_rate: f64,
    /// The event tables present in the dataset among top-ups, interactions and
    /// surveys (billing is always there).
    pub tables: Vec<Table>,
}

/// What comes back: one frame per table, each one row per customer with a
/// `customer_id` column.
#[derive(Debug, Default)]
pub struct AggregateFrames {
    pub frames: Vec<(Table, DataFrame)>,
}

impl AggregateFrames {
    pub fn take(&mut self, table: Table) -> Option<DataFrame> {
        let i = self.frames.iter().position(|(t, _)| *t == table)?;
        Some(self.frames.swap_remove(i).1)
    }
}

/// An engine that computes the per-customer aggregates of billing, top-ups,
/// interactions and surveys.
pub trait Aggregator: Send + Sync {
    /// A short name for logs and errors ("ballista df://host:port").
    fn describe(&self) -> String;
    /// The aggregates for `request`; an error says what failed where.
    fn aggregate(&self, request: &AggregateRequest) -> Result<AggregateFrames, FeatureError>;
}

/// Where the per-customer aggregates run: in this process (the default) or on an
/// [`Aggregator`]. Not part of the configuration file: it is chosen on the command
/// line (`--engine`).
#[derive(Clone, Default)]
pub struct Engine(pub Option<Arc<dyn Aggregator>>);

impl Engine {
    pub fn remote(aggregator: Arc<dyn Aggregator>) -> Self {
        Self(Some(aggregator))
    }
}

impl fmt::Debug for Engine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            None => f.write_str("local"),
            Some(a) => f.write_str(&a.describe()),
        }
    }
}

/// `df` with the columns of `schema`, in its order and with its types (a remote
/// engine's integers and floats may come back in other widths). A missing column is
/// an error naming it.
pub(crate) fn conform(df: DataFrame, schema: &Schema, what: &str) -> Result<DataFrame, FeatureError> {
    if df.width() == 0 {
        // No customer had a row: nothing was written.
        return Ok(DataFrame::empty_with_schema(schema));
    }
    let mut exprs = Vec::with_capacity(schema.len());
    for (name, dtype) in schema.iter() {
        if df.schema().get(name).is_none() {
            return Err(FeatureError::Config(format!(
                "the remote {what} aggregate has no column `{name}` (it has: {})",
                df.get_column_names().iter().map(|n| n.as_str()).collect::<Vec<_>>().join(", ")
            )));
        }
        exprs.push(col(name.clone()).strict_cast(dtype.clone()));
    }
    Ok(df.lazy().select(exprs).collect()?)
}
