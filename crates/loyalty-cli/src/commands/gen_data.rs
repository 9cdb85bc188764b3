//! `loyalty gen`: write a generated dataset and its ground truth.

use std::time::Instant;

use loyalty_synth::GenParams;
use tracing::info;

use crate::cli::GenArgs;
use crate::logging::progress;

pub fn run(args: GenArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    let d = GenParams::default();
    let params = GenParams {
        customers: args.customers.unwrap_or(d.customers),
        months: args.months.unwrap_or(d.months),
        start: args.start.unwrap_or(d.start),
        seed: args.seed.unwrap_or(d.seed),
        hive: args.hive,
        chunk_size: args.chunk_size.unwrap_or(d.chunk_size),
    };
    let bar = progress(params.customers as u64, "customers");
    let (out, truth) = loyalty_pipeline::generate::generate(params, &args.out, &|n| bar.inc(n as u64))?;
    bar.finish_and_clear();
    let rows: Vec<String> = truth.rows.iter().map(|(t, n)| format!("{t} {n}")).collect();
    info!("generated {} in {:.2}s: {}", out.display(), started.elapsed().as_secs_f64(), rows.join(", "));
    Ok(())
}
