//! `loyalty scan`: the physical floor of every stage that reads the dataset.

use std::path::Path;
use std::time::Instant;

use loyalty_contract::{RawTable, Table};
use polars::prelude::*;
use serde::Serialize;

use crate::PipelineError;
use crate::error::{Context, Result};

/// What one scan read.
#[derive(Debug, Clone, Serialize)]
pub struct ScanReport {
    pub tables: usize,
    pub rows: u64,
    pub columns: usize,
    pub wall_seconds: f64,
}

/// Decode every column of a table: numbers and dates summed through their physical
/// values, strings by their byte lengths, booleans by their true count.
fn decode_all(t: &RawTable) -> LazyFrame {
    let sums: Vec<Expr> = t
        .schema
        .iter()
        .map(|(name, dtype)| {
            let c = col(name.clone());
            match dtype {
                DataType::String => c.str().len_bytes().cast(DataType::Float64).sum(),
                DataType::Boolean => c.cast(DataType::Float64).sum(),
                _ => c.to_physical().cast(DataType::Float64).sum(),
            }
        })
        .chain([len().alias("__rows")])
        .collect();
    t.lf.clone().select(sums)
}

/// Read every column of billing (or of every table) once, in one streaming execution
/// so the tables are read concurrently.
pub fn scan(data: &Path, all_tables: bool) -> Result<ScanReport> {
    let started = Instant::now();
    let raw = loyalty_io::open_dataset(data).during_with(|| format!("reading dataset {}", data.display()))?;
    let tables: Vec<(&Table, &RawTable)> = if all_tables {
        raw.tables.iter().collect()
    } else {
        vec![raw.tables.get_key_value(&Table::Billing).ok_or_else(|| PipelineError::Data("no billing table".into()))?]
    };
    let plans = tables.iter().map(|(_, t)| decode_all(t).logical_plan).collect();
    let frames = LazyFrame::collect_all_with_engine(plans, Engine::Streaming, OptFlags::default())?;
    let (mut rows, mut columns) = (0u64, 0usize);
    for df in &frames {
        rows += df.column("__rows")?.cast(&DataType::UInt64)?.u64()?.get(0).unwrap_or(0);
        columns += df.width() - 1;
    }
    Ok(ScanReport { tables: tables.len(), rows, columns, wall_seconds: started.elapsed().as_secs_f64() })
}
