//! `loyalty gen`: a generated dataset and its ground truth, staged and swapped into
//! the output folder whole.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use loyalty_io::AppendWriter;
use loyalty_synth::{GenParams, GroundTruth, Sink, SinkError};
use polars::prelude::*;

use crate::PipelineError;
use crate::error::{Context, Result};

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
        let root = &self.root;
        let writer = self
            .writers
            .entry(table.to_string())
            .or_insert_with(|| AppendWriter::new(&root.join(format!("{table}.parquet"))));
        writer.append(&df).map_err(sink_err)
    }
}

impl FsSink {
    fn finish(self) -> Result<()> {
        for (_, w) in self.writers {
            w.finish()?;
        }
        Ok(())
    }
}

fn check(p: &GenParams) -> Result<()> {
    let bad = |m: &str| Err(PipelineError::Settings(m.to_string()));
    if p.months == 0 {
        return bad("--months must be at least 1");
    }
    if p.customers == 0 {
        return bad("--customers must be at least 1");
    }
    if chrono::Datelike::day(&p.start) != 1 {
        return Err(PipelineError::Settings(format!("--start must be the first day of a month, got {}", p.start)));
    }
    Ok(())
}

/// Generate `params` into `out`; `progress` is told of every customer simulated.
/// Returns the folder written and the ground truth.
pub fn generate(params: GenParams, out: &Path, progress: &(dyn Fn(usize) + Sync)) -> Result<(PathBuf, GroundTruth)> {
    check(&params)?;
    let staged = loyalty_io::OutputDir::begin(out, loyalty_io::Holds::Dataset, &[])?;
    let mut sink = FsSink { root: staged.path().to_path_buf(), hive: params.hive, writers: HashMap::new() };
    let truth = loyalty_synth::generate(params, &mut sink, progress).during("generating the dataset")?;
    sink.finish()?;
    let root = staged.path();
    loyalty_io::write_parquet(&mut truth.world.markets_frame()?, &root.join("markets.parquet"))?;
    loyalty_io::write_parquet(&mut truth.world.catalog_frame()?, &root.join("service_catalog.parquet"))?;
    loyalty_io::write_json(&truth, &root.join("truth").join("ground_truth.json"))?;
    Ok((staged.commit()?, truth))
}
