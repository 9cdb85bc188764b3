//! [`BallistaAggregator`]: the per-customer aggregates of billing, top-ups,
//! interactions and surveys as DataFusion SQL plans on a Ballista cluster.
//!
//! The client registers the dataset's files (the same files `loyalty-io` finds,
//! grouped by hive partition values) and submits one query per table; the scheduler
//! splits each scan into tasks, the executors read the files, aggregate partially,
//! shuffle by customer_id hash into `target_partitions` partitions, finish the
//! aggregation and write the result as Parquet into the exchange folder, which the
//! client reads back with Polars. The four queries run as concurrent jobs.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use ballista::prelude::{SessionConfigExt, SessionContextExt};
use datafusion::dataframe::DataFrameWriteOptions;
use datafusion::datasource::TableProvider;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl};
use datafusion::execution::SessionStateBuilder;
use datafusion::prelude::{SessionConfig, SessionContext};
use loyalty_contract::Table;
use loyalty_features::{AggregateFrames, AggregateRequest, Aggregator, FeatureError};
use polars::prelude::DataFrame;

use crate::sql::{self, Branch};

/// How to reach the cluster and where results are exchanged.
#[derive(Debug, Clone)]
pub struct BallistaOptions {
    /// `df://HOST:PORT` of the scheduler.
    pub scheduler: String,
    /// Partitions of the shuffle by customer hash (DataFusion's target_partitions).
    pub target_partitions: usize,
    /// A folder every executor and this client can read and write (a shared
    /// filesystem on a real cluster): the aggregates land there as Parquet.
    pub exchange_dir: PathBuf,
    /// A job that has not finished after this long fails the run.
    pub job_timeout: Duration,
}

/// Hive partition values (`key=value` folders) and the files under them.
type FileGroup = (Vec<(String, String)>, Vec<PathBuf>);

/// The files of one table, grouped by partition values (one scan per group).
#[derive(Debug, Clone)]
struct TableFiles {
    table: Table,
    groups: Vec<FileGroup>,
}

pub struct BallistaAggregator {
    options: BallistaOptions,
    tables: Vec<TableFiles>,
    runtime: tokio::runtime::Runtime,
    requests: AtomicUsize,
}

fn remote_err(what: impl std::fmt::Display) -> FeatureError {
    FeatureError::Remote(what.to_string())
}

impl BallistaAggregator {
    /// Find the dataset's files and check that the scheduler answers.
    pub fn connect(dataset: &Path, options: BallistaOptions) -> anyhow::Result<Self> {
        anyhow::ensure!(
            options.scheduler.starts_with("df://"),
            "--scheduler must look like df://HOST:PORT, not `{}`",
            options.scheduler
        );
        let mut tables = Vec::new();
        for table in [Table::Billing, Table::Topups, Table::Interactions, Table::Surveys] {
            let Some(location) = loyalty_io::locate_table(dataset, table)? else { continue };
            let mut groups: BTreeMap<Vec<(String, String)>, Vec<PathBuf>> = BTreeMap::new();
            for f in loyalty_io::list_files(&location)? {
                let path = std::path::absolute(&f.path).with_context(|| format!("resolving {}", f.path.display()))?;
                groups.entry(f.partitions).or_default().push(path);
            }
            tables.push(TableFiles { table, groups: groups.into_iter().collect() });
        }
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("ballista-client")
            .enable_all()
            .build()
            .context("starting the Ballista client runtime")?;
        let me = Self { options, tables, runtime, requests: AtomicUsize::new(0) };
        // A remote context connects lazily: open a gRPC channel to fail before any work.
        let endpoint = me.options.scheduler.replacen("df://", "http://", 1);
        let reach = async {
            tokio::time::timeout(
                Duration::from_secs(10),
                ballista_core::serde::protobuf::scheduler_grpc_client::SchedulerGrpcClient::connect(endpoint),
            )
            .await
        };
        match me.runtime.block_on(reach) {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => anyhow::bail!("cannot reach the Ballista scheduler at {}: {e:?}", me.options.scheduler),
            Err(_) => anyhow::bail!("the Ballista scheduler at {} did not answer within 10 s", me.options.scheduler),
        }
        std::fs::create_dir_all(&me.options.exchange_dir)
            .with_context(|| format!("creating the exchange folder {}", me.options.exchange_dir.display()))?;
        Ok(me)
    }

    async fn context(&self) -> datafusion::error::Result<SessionContext> {
        let config = SessionConfig::new_with_ballista().with_target_partitions(self.options.target_partitions.max(1));
        let state = SessionStateBuilder::new().with_config(config).with_default_features().build();
        SessionContext::remote_with_state(&self.options.scheduler, state).await
    }

    /// Register every group of `files` as its own listing table; the branches say
    /// which names and partition values they carry.
    async fn register(&self, ctx: &SessionContext, files: &TableFiles) -> anyhow::Result<Vec<Branch>> {
        let mut branches = Vec::new();
        for (i, (partitions, paths)) in files.groups.iter().enumerate() {
            let name = format!("{}_{i}", files.table.name());
            let urls = paths
                .iter()
                .map(|p| ListingTableUrl::parse(p.to_string_lossy()))
                .collect::<datafusion::error::Result<Vec<_>>>()?;
            // Every file is named explicitly, whatever its extension.
            let options = ListingOptions::new(Arc::new(ParquetFormat::default())).with_file_extension("");
            let config = ListingTableConfig::new_with_multi_paths(urls)
                .with_listing_options(options)
                .infer_schema(&ctx.state())
                .await
                .with_context(|| format!("reading the schema of {}", paths[0].display()))?;
            let table = ListingTable::try_new(config)?;
            let schema = table.schema().as_ref().clone();
            ctx.register_table(name.as_str(), Arc::new(table))?;
            branches.push(Branch { name, schema, partitions: partitions.clone() });
        }
        Ok(branches)
    }

    async fn run_job(
        &self,
        ctx: &SessionContext,
        table: Table,
        query: String,
        dir: PathBuf,
    ) -> anyhow::Result<DataFrame> {
        let started = Instant::now();
        tracing::info!("ballista: submitting the {table} aggregation to {}", self.options.scheduler);
        let df = ctx.sql(&query).await.with_context(|| format!("planning the {table} aggregation"))?;
        let path = dir.to_string_lossy().into_owned();
        let write = df.write_parquet(&path, DataFrameWriteOptions::new(), None);
        match tokio::time::timeout(self.options.job_timeout, write).await {
            Ok(result) => {
                result.with_context(|| format!("the {table} aggregation failed on the cluster"))?;
            }
            Err(_) => anyhow::bail!(
                "the {table} aggregation did not finish within {} s (are the cluster's executors up?)",
                self.options.job_timeout.as_secs()
            ),
        }
        let frame = read_parquet_dir(&dir)?;
        tracing::info!(
            "ballista: {table} aggregated, {} customers in {:.2}s",
            frame.height(),
            started.elapsed().as_secs_f64()
        );
        Ok(frame)
    }

    async fn aggregate_async(&self, request: &AggregateRequest, dir: &Path) -> anyhow::Result<AggregateFrames> {
        let ctx = self.context().await.with_context(|| format!("connecting to {}", self.options.scheduler))?;
        let mut jobs = Vec::new();
        for files in &self.tables {
            if files.table != Table::Billing && !request.tables.contains(&files.table) {
                continue;
            }
            let branches = self.register(&ctx, files).await?;
            let query = match files.table {
                Table::Billing => {
                    sql::billing(&branches, request.last_known_bill_month, request.window_start, request.margin_rate)
                }
                Table::Topups => sql::topups(&branches, request.as_of, request.year_before),
                Table::Interactions => sql::interactions(&branches, request.as_of, request.year_before),
                Table::Surveys => sql::surveys(&branches, request.as_of),
                _ => continue,
            };
            let out = dir.join(files.table.name());
            let table = files.table;
            let ctx = &ctx;
            jobs.push(async move { self.run_job(ctx, table, query, out).await.map(|df| (table, df)) });
        }
        let frames = futures::future::try_join_all(jobs).await?;
        Ok(AggregateFrames { frames })
    }
}

/// Every Parquet part a job wrote into `dir`, as one frame (empty without parts).
fn read_parquet_dir(dir: &Path) -> anyhow::Result<DataFrame> {
    if !dir.exists() {
        return Ok(DataFrame::empty());
    }
    let files = loyalty_io::list_files(dir)?;
    if files.is_empty() {
        return Ok(DataFrame::empty());
    }
    let lf = loyalty_io::scan_files(&files, false)?;
    lf.collect().with_context(|| format!("reading the aggregates in {}", dir.display()))
}

impl Aggregator for BallistaAggregator {
    fn describe(&self) -> String {
        format!("ballista {}", self.options.scheduler)
    }

    fn aggregate(&self, request: &AggregateRequest) -> Result<AggregateFrames, FeatureError> {
        let k = self.requests.fetch_add(1, Ordering::SeqCst);
        let dir = self.options.exchange_dir.join(format!("request-{k}-{}", request.as_of));
        let result = self.runtime.block_on(self.aggregate_async(request, &dir));
        // The results are in memory now (or the run is failing): the folder goes.
        let _ = std::fs::remove_dir_all(&dir);
        result.map_err(|e| remote_err(format!("{} (as of {}): {e:#}", self.describe(), request.as_of)))
    }
}

impl Drop for BallistaAggregator {
    fn drop(&mut self) {
        // Remove the exchange folder if this client made it empty.
        let _ = std::fs::remove_dir(&self.options.exchange_dir);
    }
}
