//! How the caller watches a run: the binary draws spinners and reads the process's
//! peak memory; tests and embedders can pass [`Quiet`].

use std::time::Instant;

use serde::Serialize;
use tracing::info;

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
    /// Bytes the process read through system calls during the stage, MiB: the input
    /// and scratch files when polars reads them (`POLARS_FORCE_ASYNC=1`); memory-mapped
    /// reads, polars' default for local files, do not count.
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
    /// Bytes read through system calls during the stage (see [`StageUse::read_mib`]).
    pub read_mib: Option<f64>,
}

/// The stages of one run as they pass: each ends where the next begins.
pub(crate) struct Stages<'o> {
    observer: &'o mut dyn Observer,
    done: Vec<StageRecord>,
    current: Option<(&'static str, Instant)>,
    total: usize,
}

impl<'o> Stages<'o> {
    pub(crate) fn new(observer: &'o mut dyn Observer, total: usize) -> Self {
        Self { observer, done: Vec::new(), current: None, total }
    }

    /// End the current stage and start `stage`, unless the run was asked to stop.
    pub(crate) fn begin(&mut self, stage: &'static str) -> Result<(), loyalty_contract::cancel::Interrupted> {
        self.end();
        loyalty_contract::cancel::check()?;
        self.observer.stage_started(stage, self.done.len() + 1, self.total);
        self.current = Some((stage, Instant::now()));
        Ok(())
    }

    pub(crate) fn end(&mut self) {
        if let Some((stage, started)) = self.current.take() {
            let used = self.observer.stage_finished(stage);
            let peak_rss_mib = used.peak_rss_mib;
            let wall_seconds = started.elapsed().as_secs_f64();
            let record = StageRecord { stage, wall_seconds, peak_rss_mib, read_mib: used.read_mib };
            info!(
                "stage {stage} done in {:.2}s (peak {:.0} MiB)",
                record.wall_seconds,
                peak_rss_mib.unwrap_or(f64::NAN)
            );
            self.done.push(record);
        }
    }

    pub(crate) fn finish(mut self) -> Vec<StageRecord> {
        self.end();
        self.done
    }
}
