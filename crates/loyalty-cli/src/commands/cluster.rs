//! `loyalty cluster`: a Ballista cluster in this process, until stopped.

use crate::cli::ClusterArgs;

#[cfg(feature = "ballista")]
pub fn run(args: ClusterArgs) -> anyhow::Result<()> {
    let d = loyalty_ballista::ClusterOptions::default();
    let options = loyalty_ballista::ClusterOptions {
        port: args.port.unwrap_or(d.port),
        executors: args.executors.unwrap_or(d.executors),
        vcores: args.vcores.unwrap_or(d.vcores),
        executor_timeout_secs: args.executor_timeout.unwrap_or(d.executor_timeout_secs),
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
    Err(loyalty_pipeline::PipelineError::Usage(loyalty_pipeline::engine::NOT_BUILT.into()).into())
}
