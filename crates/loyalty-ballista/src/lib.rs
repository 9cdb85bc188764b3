//! The distributed engine: the heavy per-customer aggregation of the event tables
//! as DataFusion SQL plans on an Apache DataFusion Ballista cluster
//! ([`BallistaAggregator`], an [`loyalty_features::Aggregator`]), and a cluster in
//! this process ([`LocalCluster`]) for `loyalty cluster` and the tests.

mod cluster;
mod engine;
pub mod sql;

pub use cluster::{ClusterOptions, LocalCluster};
pub use engine::{BallistaAggregator, BallistaOptions};
