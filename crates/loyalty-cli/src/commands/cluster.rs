//! `loyalty cluster`: a Ballista cluster in this process, and building the
//! distributed engine that `loyalty run --engine ballista` hands to the features.

use std::path::Path;
#[cfg(feature = "ballista")]
use std::time::Duration;

#[cfg(feature = "ballista")]
use anyhow::Context;
use loyalty_contract::Validated;
use loyalty_features::Engine;

use crate::cli::{ClusterArgs, EngineArg, EngineArgs};

/// The engine `args` ask for. The distributed one reads the raw files, so it needs
/// data that passed validation whole: with rows set aside (--lenient) it refuses.
#[cfg(feature = "ballista")]
pub fn engine(args: &EngineArgs, data: &Path, out: &Path, validated: &Validated) -> anyhow::Result<Engine> {
    if args.engine == EngineArg::Local {
        return Ok(Engine::default());
    }
    let scheduler = args.scheduler.clone().context("--engine ballista needs --scheduler df://HOST:PORT")?;
    let rejected: u64 = validated.report.violations.iter().map(|v| v.rows).sum();
    anyhow::ensure!(
        rejected == 0,
        "--engine ballista reads the input files on the cluster, where the {rejected} row(s) that --lenient set \
         aside would count again; fix the input or use --engine local"
    );
    let exchange_dir = match &args.exchange_dir {
        Some(d) => d.clone(),
        None => {
            let parent = out.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
            let name = out.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "out".into());
            parent.join(format!(".{name}.exchange-{}", std::process::id()))
        }
    };
    let options = loyalty_ballista::BallistaOptions {
        scheduler,
        target_partitions: args.target_partitions,
        exchange_dir,
        job_timeout: Duration::from_secs(args.job_timeout.max(1)),
    };
    let aggregator = loyalty_ballista::BallistaAggregator::connect(data, options)?;
    Ok(Engine::remote(std::sync::Arc::new(aggregator)))
}

#[cfg(not(feature = "ballista"))]
pub fn engine(args: &EngineArgs, _data: &Path, _out: &Path, _validated: &Validated) -> anyhow::Result<Engine> {
    match args.engine {
        EngineArg::Local => Ok(Engine::default()),
        EngineArg::Ballista => Err(not_built()),
    }
}

#[cfg(not(feature = "ballista"))]
fn not_built() -> anyhow::Error {
    anyhow::anyhow!(
        "this loyalty was built without the distributed engine; build it with \
         `cargo build --release --features loyalty-cli/ballista` (the Makefile does)"
    )
}

#[cfg(feature = "ballista")]
pub fn run(args: ClusterArgs) -> anyhow::Result<()> {
    let options = loyalty_ballista::ClusterOptions {
        port: args.port,
        executors: args.executors,
        vcores: args.vcores,
        executor_timeout_secs: args.executor_timeout,
    };
    let cluster = loyalty_ballista::LocalCluster::start(&options)?;
    // The address on stdout, for scripts; the process runs until it is killed.
    println!("{}", cluster.url());
    eprintln!(
        "ballista cluster up: scheduler {} with {} executors; stop it with `make cluster-down` or Ctrl-C",
        cluster.url(),
        cluster.executors()
    );
    loop {
        std::thread::park();
    }
}

#[cfg(not(feature = "ballista"))]
pub fn run(_args: ClusterArgs) -> anyhow::Result<()> {
    Err(not_built())
}
