//! `loyalty scan`: the physical floor of every stage that reads the dataset.

use std::io::Write;
use std::time::Instant;

use anyhow::Context;
use loyalty_contract::{RawTable, Table};
use polars::prelude::*;

use crate::cli::ScanArgs;

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

pub fn run(args: ScanArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    let raw =
        loyalty_io::open_dataset(&args.data).with_context(|| format!("reading dataset {}", args.data.display()))?;
    let tables: Vec<(&Table, &RawTable)> = if args.all_tables {
        raw.tables.iter().collect()
    } else {
        vec![raw.tables.get_key_value(&Table::Billing).context("no billing table")?]
    };
    // One streaming execution, so the tables are read concurrently.
    let plans = tables.iter().map(|(_, t)| decode_all(t).logical_plan).collect();
    let frames = LazyFrame::collect_all_with_engine(plans, Engine::Streaming, OptFlags::default())?;
    let (mut rows, mut columns) = (0u64, 0usize);
    for df in &frames {
        rows += df.column("__rows")?.cast(&DataType::UInt64)?.u64()?.get(0).unwrap_or(0);
        columns += df.width() - 1;
    }
    writeln!(
        std::io::stdout(),
        "{{\"tables\": {}, \"rows\": {rows}, \"columns\": {columns}, \"wall_seconds\": {:.3}}}",
        tables.len(),
        started.elapsed().as_secs_f64()
    )?;
    Ok(())
}
