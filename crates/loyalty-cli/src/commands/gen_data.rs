//! `loyalty gen`: write a generated dataset and its ground truth.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;
use loyalty_io::AppendWriter;
use loyalty_synth::{GenParams, Sink, SinkError};
use polars::prelude::*;
use tracing::info;

use crate::cli::GenArgs;
use crate::logging::progress;

struct FsSink {
    root: PathBuf,
    hive: bool,
    writers: HashMap<String, AppendWriter>,
}

fn sink_err(e: loyalty_io::IoError) -> SinkError {
    SinkError::Write(e.to_string())
}

/// Every chunk the generator hands over is a point where a stop request is honoured.
fn stop_if_asked() -> Result<(), SinkError> {
    loyalty_contract::cancel::check().map_err(|e| SinkError::Write(e.to_string()))
}

impl Sink for FsSink {
    fn write_part(&self, table: &str, part: usize, mut df: DataFrame) -> Result<(), SinkError> {
        stop_if_asked()?;
        let dir = self.root.join(table);
        if !self.hive {
            return loyalty_io::write_parquet(&mut df, &dir.join(format!("part-{part:05}.parquet"))).map_err(sink_err);
        }
        let key = loyalty_contract::col::BILL_MONTH;
        for month in df.partition_by_stable([key], true)? {
            let value = month.column(key)?.get(0)?.to_string();
            let mut month = month.drop(key)?;
            let folder = dir.join(format!("{key}={value}"));
            loyalty_io::write_parquet(&mut month, &folder.join(format!("part-{part:05}.parquet"))).map_err(sink_err)?;
        }
        Ok(())
    }

    fn append(&mut self, table: &str, df: DataFrame) -> Result<(), SinkError> {
        stop_if_asked()?;
        if !self.writers.contains_key(table) {
            let path = self.root.join(format!("{table}.parquet"));
            let writer = AppendWriter::create(&path, df.schema()).map_err(sink_err)?;
            self.writers.insert(table.to_string(), writer);
        }
        let writer = self.writers.get_mut(table).expect("writer just inserted");
        writer.append(&df).map_err(sink_err)
    }
}

impl FsSink {
    fn finish(self) -> anyhow::Result<()> {
        for (_, w) in self.writers {
            w.finish()?;
        }
        Ok(())
    }
}

pub fn run(args: GenArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    let params = GenParams {
        customers: args.customers,
        months: args.months,
        start: args.start,
        seed: args.seed,
        hive: args.hive,
        chunk_size: args.chunk_size,
    };
    anyhow::ensure!(args.months > 0, "--months must be at least 1");
    anyhow::ensure!(args.customers > 0, "--customers must be at least 1");
    anyhow::ensure!(
        chrono::Datelike::day(&args.start) == 1,
        "--start must be the first day of a month, got {}",
        args.start
    );
    let staged = loyalty_io::OutputDir::begin(&args.out, loyalty_io::Holds::Dataset, &[])?;
    let mut sink = FsSink { root: staged.path().to_path_buf(), hive: args.hive, writers: HashMap::new() };
    let bar = progress(args.customers as u64, "customers");
    let truth = loyalty_synth::generate(params, &mut sink, &|n| bar.inc(n as u64)).context("generating the dataset")?;
    bar.finish_and_clear();
    sink.finish()?;
    write_small_tables(staged.path(), &truth.world)?;
    loyalty_io::write_json(&truth, &staged.path().join("truth").join("ground_truth.json"))?;
    let out = staged.commit()?;
    let rows: Vec<String> = truth.rows.iter().map(|(t, n)| format!("{t} {n}")).collect();
    info!("generated {} in {:.2}s: {}", out.display(), started.elapsed().as_secs_f64(), rows.join(", "));
    Ok(())
}

fn write_small_tables(root: &Path, world: &loyalty_synth::World) -> anyhow::Result<()> {
    loyalty_io::write_parquet(&mut world.markets_frame()?, &root.join("markets.parquet"))?;
    loyalty_io::write_parquet(&mut world.catalog_frame()?, &root.join("service_catalog.parquet"))?;
    Ok(())
}
