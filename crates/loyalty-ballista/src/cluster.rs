//! A Ballista cluster in this process: one scheduler and N executors on loopback, as
//! Ballista's own tests start one. `loyalty cluster` (and so `make cluster-up`) runs
//! one in the foreground; the end-to-end tests start one beside the binary under
//! test and stop its executors mid-job.
//!
//! Each component runs on a tokio runtime of its own, so stopping an executor is
//! shutting its runtime down: its task loop, heartbeats and shuffle (Flight)
//! service stop at once, as when the process of a real executor dies.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use ballista_core::ConfigProducer;
use ballista_core::config::TaskSchedulingPolicy;
use ballista_core::extension::SessionConfigExt;
use ballista_core::serde::BallistaCodec;
use ballista_core::serde::protobuf::scheduler_grpc_client::SchedulerGrpcClient;
use ballista_core::serde::protobuf::scheduler_grpc_server::SchedulerGrpcServer;
use ballista_core::utils::{GrpcServerConfig, create_grpc_server, default_config_producer, default_session_builder};
use ballista_scheduler::cluster::BallistaCluster;
use ballista_scheduler::config::SchedulerConfig;
use ballista_scheduler::metrics::default_metrics_collector;
use ballista_scheduler::scheduler_server::SchedulerServer;
use datafusion_proto::protobuf::{LogicalPlanNode, PhysicalPlanNode};
use tokio::runtime::Runtime;

/// How to start a local cluster.
#[derive(Debug, Clone)]
pub struct ClusterOptions {
    /// The scheduler's port on 127.0.0.1 (0: any free port).
    pub port: u16,
    pub executors: usize,
    /// Task slots per executor.
    pub vcores: usize,
    /// Seconds without a heartbeat after which the scheduler counts an executor
    /// lost; with no executor left, running jobs fail after as long again.
    pub executor_timeout_secs: u64,
}

impl Default for ClusterOptions {
    fn default() -> Self {
        Self { port: 50050, executors: 2, vcores: 1, executor_timeout_secs: 15 }
    }
}

/// A running local cluster; dropping it stops everything.
pub struct LocalCluster {
    addr: SocketAddr,
    scheduler: Option<Runtime>,
    executors: Vec<Runtime>,
}

fn runtime(name: &str, threads: usize) -> anyhow::Result<Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads.max(1))
        .thread_name(name)
        .enable_all()
        .build()
        .with_context(|| format!("starting the {name} runtime"))
}

async fn start_scheduler(options: &ClusterOptions) -> anyhow::Result<SocketAddr> {
    let timeout = options.executor_timeout_secs.max(2);
    let mut config = SchedulerConfig::default()
        .with_scheduler_policy(TaskSchedulingPolicy::PullStaged)
        .with_no_executors_grace_period_seconds(timeout);
    config.executor_timeout_seconds = timeout;
    config.expire_dead_executor_interval_seconds = (timeout / 3).max(1);
    let producer: ConfigProducer = Arc::new(default_config_producer);
    let max_message = producer().ballista_grpc_client_max_message_size();
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", options.port))
        .await
        .with_context(|| format!("binding the scheduler to 127.0.0.1:{}", options.port))?;
    let addr = listener.local_addr()?;
    let name = addr.to_string();
    let cluster = BallistaCluster::new_memory(&name, Arc::new(default_session_builder), producer);
    let metrics = default_metrics_collector().context("scheduler metrics")?;
    let mut server: SchedulerServer<LogicalPlanNode, PhysicalPlanNode> =
        SchedulerServer::new(name, cluster, BallistaCodec::default(), Arc::new(config), metrics);
    server.init().await.context("starting the scheduler")?;
    let service =
        SchedulerGrpcServer::new(server).max_decoding_message_size(max_message).max_encoding_message_size(max_message);
    tokio::spawn(
        create_grpc_server(&GrpcServerConfig::default())
            .add_service(service)
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );
    Ok(addr)
}

async fn connect(addr: SocketAddr) -> anyhow::Result<SchedulerGrpcClient<tonic::transport::Channel>> {
    let url = format!("http://{addr}");
    let mut last = None;
    for _ in 0..50 {
        match SchedulerGrpcClient::connect(url.clone()).await {
            Ok(client) => return Ok(client),
            Err(e) => last = Some(e),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err(anyhow::anyhow!("cannot reach the scheduler at {url}: {last:?}"))
}

impl LocalCluster {
    /// Start the scheduler, then the executors, and return once all are up.
    pub fn start(options: &ClusterOptions) -> anyhow::Result<Self> {
        anyhow::ensure!(options.executors >= 1, "a cluster needs at least one executor");
        let scheduler = runtime("ballista-scheduler", 2)?;
        let addr = scheduler.block_on(start_scheduler(options))?;
        let mut executors = Vec::with_capacity(options.executors);
        for i in 0..options.executors {
            let rt = runtime(&format!("ballista-executor-{i}"), options.vcores.max(1))?;
            rt.block_on(async {
                let client = connect(addr).await?;
                ballista_executor::new_standalone_executor(client, options.vcores.max(1), BallistaCodec::default())
                    .await
                    .with_context(|| format!("starting executor {i}"))
            })?;
            executors.push(rt);
        }
        tracing::info!("ballista cluster: scheduler on {addr}, {} executors", executors.len());
        Ok(Self { addr, scheduler: Some(scheduler), executors })
    }

    /// The scheduler's address for `--scheduler`: `df://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("df://{}", self.addr)
    }

    pub fn executors(&self) -> usize {
        self.executors.len()
    }

    /// Stop every executor at once, as if their processes died; the scheduler stays.
    pub fn stop_executors(&mut self) {
        for rt in self.executors.drain(..) {
            rt.shutdown_background();
        }
    }
}

impl Drop for LocalCluster {
    fn drop(&mut self) {
        self.stop_executors();
        if let Some(rt) = self.scheduler.take() {
            rt.shutdown_background();
        }
    }
}
