//! How the caller watches a run: the binary draws spinners and reads the process's
//! peak memory; tests and embedders can pass [`Quiet`].

use std::collections::BTreeMap;
use std::time::Instant;

use loyalty_contract::Table;
use loyalty_contract::reads::{PerTable, Reads, Source};
use serde::Serialize;
use tracing::{debug, info};

/// Told when each stage of a run starts and ends.
pub trait Observer {
    /// Stage `index` (1-based) of `total`, called `name`, starts.
    fn stage_started(&mut self, name: &'static str, index: usize, total: usize);
    /// The stage ended; returns what the observer could measure of it.
    fn stage_finished(&mut self, name: &'static str) -> StageUse;
}

/// What a stage used, as far as the observer can tell (None: not measured).
#[derive(Debug, Clone, Copy, Default)]
pub struct StageUse {
    /// Peak resident memory of the process during the stage, MiB.
    pub peak_rss_mib: Option<f64>,
    /// Resident memory when the stage began, MiB: what the stages before left held
    /// (the customers table at T, the models). The peak less this is the most the
    /// stage itself added.
    pub start_rss_mib: Option<f64>,
    /// Bytes the process read through system calls during the stage, MiB: the input
    /// files (read in bounded reads), and the scratch files when polars reads them so
    /// (`POLARS_FORCE_ASYNC=1`); memory-mapped reads, polars' default for a local path,
    /// do not count.
    pub read_mib: Option<f64>,
}

/// An observer that shows nothing and measures no memory.
pub struct Quiet;

impl Observer for Quiet {
    fn stage_started(&mut self, _: &'static str, _: usize, _: usize) {}

    fn stage_finished(&mut self, _: &'static str) -> StageUse {
        StageUse::default()
    }
}

/// Wall time and peak memory of one stage.
#[derive(Debug, Clone, Serialize)]
pub struct StageRecord {
    pub stage: &'static str,
    pub wall_seconds: f64,
    /// Peak resident memory of the process during the stage, as the observer measured it.
    pub peak_rss_mib: Option<f64>,
    /// Resident memory when the stage began (see [`StageUse::start_rss_mib`]).
    pub start_rss_mib: Option<f64>,
    /// Bytes read through system calls during the stage (see [`StageUse::read_mib`]).
    pub read_mib: Option<f64>,
    /// What the stage's scans decoded of each table, by source.
    pub decoded: Vec<StageDecodes>,
}

/// The values of one table from one source that a stage decoded.
#[derive(Debug, Clone, Serialize)]
pub struct StageDecodes {
    pub table: Table,
    pub source: Source,
    pub values_decoded: u64,
    /// Over the table's values (rows x columns), when its rows are known.
    pub full_decodes: Option<f64>,
}

/// The stages of one run as they pass: each ends where the next begins.
pub(crate) struct Stages<'o> {
    observer: &'o mut dyn Observer,
    done: Vec<StageRecord>,
    current: Option<(&'static str, Instant)>,
    total: usize,
    /// The run's scan counters, once the dataset is open, and their values when the
    /// current stage began.
    reads: Option<(Reads, PerTable<u64>)>,
}

impl<'o> Stages<'o> {
    pub(crate) fn new(observer: &'o mut dyn Observer, total: usize) -> Self {
        Self { observer, done: Vec::new(), current: None, total, reads: None }
    }

    /// End the current stage and start `stage`, unless the run was asked to stop.
    pub(crate) fn begin(&mut self, stage: &'static str) -> Result<(), loyalty_contract::cancel::Interrupted> {
        self.end();
        // What the last stage freed is not kept towards the next one's peak.
        loyalty_contract::memory::release();
        loyalty_contract::cancel::check()?;
        self.observer.stage_started(stage, self.done.len() + 1, self.total);
        self.current = Some((stage, Instant::now()));
        Ok(())
    }

    /// Count what each stage decodes with `reads` from now on; the current stage
    /// counts everything `reads` has counted so far.
    pub(crate) fn watch(&mut self, reads: &Reads) {
        self.reads = Some((reads.clone(), BTreeMap::new()));
    }

    /// The values decoded since the stage began, by table and source.
    fn decoded_since_begin(&mut self) -> Vec<StageDecodes> {
        let Some((reads, before)) = &mut self.reads else { return Vec::new() };
        let now = reads.values();
        let decoded = now
            .iter()
            .map(|(&(table, source), &v)| (table, source, v - before.get(&(table, source)).copied().unwrap_or(0)))
            .filter(|&(_, _, v)| v > 0)
            .map(|(table, source, values_decoded)| StageDecodes { table, source, values_decoded, full_decodes: None })
            .collect();
        *before = now;
        decoded
    }

    pub(crate) fn end(&mut self) {
        if let Some((stage, started)) = self.current.take() {
            let used = self.observer.stage_finished(stage);
            let peak_rss_mib = used.peak_rss_mib;
            let wall_seconds = started.elapsed().as_secs_f64();
            let decoded = self.decoded_since_begin();
            for d in &decoded {
                debug!("stage {stage} decoded {} values of `{}` ({:?})", d.values_decoded, d.table, d.source);
            }
            let start_rss_mib = used.start_rss_mib;
            let record =
                StageRecord { stage, wall_seconds, peak_rss_mib, start_rss_mib, read_mib: used.read_mib, decoded };
            info!(
                "stage {stage} done in {:.2}s (peak {:.0} MiB, {:.0} MiB held at its start)",
                record.wall_seconds,
                peak_rss_mib.unwrap_or(f64::NAN),
                start_rss_mib.unwrap_or(f64::NAN)
            );
            self.done.push(record);
        }
    }

    /// The records of every stage, with the decodes over the tables' values, `rows_of`
    /// giving a table's rows.
    pub(crate) fn finish(mut self, rows_of: impl Fn(Table, Source) -> Option<u64>) -> Vec<StageRecord> {
        self.end();
        if let Some((reads, _)) = &self.reads {
            for d in self.done.iter_mut().flat_map(|r| r.decoded.iter_mut()) {
                d.full_decodes = reads.full_decodes(d.table, d.source, d.values_decoded, rows_of(d.table, d.source));
            }
        }
        self.done
    }
}
