//! Where the heavy per-customer aggregation runs: in this process, or as DataFusion
//! plans on a Ballista cluster.

use std::path::{Path, PathBuf};

use loyalty_contract::Validated;
use loyalty_features::Engine;

use crate::PipelineError;

/// The engine a run asks for.
#[derive(Debug, Clone, Default)]
pub enum EngineChoice {
    /// In this process, on the Polars streaming engine.
    #[default]
    Local,
    Ballista(BallistaSettings),
}

/// How to reach a Ballista cluster.
#[derive(Debug, Clone)]
pub struct BallistaSettings {
    /// df://HOST:PORT; required.
    pub scheduler: Option<String>,
    pub target_partitions: usize,
    /// Shared with the executors (default: a temporary folder beside the output).
    pub exchange_dir: Option<PathBuf>,
    pub job_timeout_secs: u64,
}

impl Default for BallistaSettings {
    fn default() -> Self {
        Self { scheduler: None, target_partitions: 4, exchange_dir: None, job_timeout_secs: 3600 }
    }
}

/// The engine `choice` asks for. The distributed one reads the raw files, so it needs
/// data that passed validation whole: with rows set aside (--lenient) it refuses.
#[cfg(feature = "ballista")]
pub fn connect(choice: &EngineChoice, data: &Path, out: &Path, validated: &Validated) -> Result<Engine, PipelineError> {
    let EngineChoice::Ballista(b) = choice else { return Ok(Engine::default()) };
    let scheduler = b
        .scheduler
        .clone()
        .ok_or_else(|| PipelineError::Usage("--engine ballista needs --scheduler df://HOST:PORT".into()))?;
    let rejected: u64 = validated.report.violations.iter().map(|v| v.rows).sum();
    if rejected > 0 {
        return Err(PipelineError::Usage(format!(
            "--engine ballista reads the input files on the cluster, where the {rejected} row(s) that --lenient set \
             aside would count again; fix the input or use --engine local"
        )));
    }
    let exchange_dir = b.exchange_dir.clone().unwrap_or_else(|| default_exchange_dir(out));
    let options = loyalty_ballista::BallistaOptions {
        scheduler,
        target_partitions: b.target_partitions,
        exchange_dir,
        job_timeout: std::time::Duration::from_secs(b.job_timeout_secs.max(1)),
    };
    let aggregator = loyalty_ballista::BallistaAggregator::connect(data, options)
        .map_err(|e| PipelineError::Usage(format!("{e:#}")))?;
    Ok(Engine::remote(std::sync::Arc::new(aggregator)))
}

#[cfg(feature = "ballista")]
fn default_exchange_dir(out: &Path) -> PathBuf {
    let parent = out.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let name = out.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "out".into());
    parent.join(format!(".{name}.exchange-{}", std::process::id()))
}

#[cfg(not(feature = "ballista"))]
pub fn connect(choice: &EngineChoice, _: &Path, _: &Path, _: &Validated) -> Result<Engine, PipelineError> {
    match choice {
        EngineChoice::Local => Ok(Engine::default()),
        EngineChoice::Ballista(_) => Err(PipelineError::Usage(NOT_BUILT.into())),
    }
}

/// Why a build without the `ballista` feature cannot use a cluster.
pub const NOT_BUILT: &str = "this loyalty was built without the distributed engine; build it with \
     `cargo build --release --features loyalty-cli/ballista` (the Makefile does)";
