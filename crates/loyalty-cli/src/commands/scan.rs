//! `loyalty scan`: the physical floor of every stage that reads billing.

use std::io::Write;
use std::time::Instant;

use anyhow::Context;
use loyalty_contract::{Table, collect_streaming};
use polars::prelude::*;

use crate::cli::ScanArgs;

pub fn run(args: ScanArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    let raw =
        loyalty_io::open_dataset(&args.data).with_context(|| format!("reading dataset {}", args.data.display()))?;
    let billing = raw.tables.get(&Table::Billing).context("no billing table")?;
    // Sum every column (dates and integers through their physical values).
    let sums: Vec<Expr> = billing
        .schema
        .iter_names()
        .map(|name| col(name.clone()).to_physical().cast(DataType::Float64).sum())
        .chain([len().alias("__rows")])
        .collect();
    let df = collect_streaming(billing.lf.clone().select(sums))?;
    let rows = df.column("__rows")?.cast(&DataType::UInt64)?.u64()?.get(0).unwrap_or(0);
    writeln!(
        std::io::stdout(),
        "{{\"rows\": {rows}, \"columns\": {}, \"wall_seconds\": {:.3}}}",
        df.width() - 1,
        started.elapsed().as_secs_f64()
    )?;
    Ok(())
}
