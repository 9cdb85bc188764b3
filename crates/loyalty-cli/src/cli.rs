//! Command-line types (clap derive). Every option also reads an environment variable.

use std::path::PathBuf;

use chrono::NaiveDate;
use clap::{Args, Parser, Subcommand, ValueEnum};

/// Customer value, churn and loyalty analytics for telecom billing data.
///
/// Reads an operator's billing data (a folder of Parquet files following SCHEMA.md),
/// validates it, and derives per-customer value, churn and loyalty tables.
/// Exit codes: 0 ok, 1 the input failed validation, 2 usage or internal error.
#[derive(Debug, Parser)]
#[command(name = "loyalty", version, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    #[command(flatten)]
    pub global: GlobalArgs,
}

#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// Only print errors.
    #[arg(long, short, global = true, env = "LOYALTY_QUIET")]
    pub quiet: bool,
    /// Print debug logs.
    #[arg(long, short, global = true, env = "LOYALTY_VERBOSE", conflicts_with = "quiet")]
    pub verbose: bool,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Generate a realistic telecom dataset that follows the contract, with its ground truth.
    Gen(GenArgs),
    /// Validate a dataset against the contract and print a summary.
    Validate(ValidateArgs),
    /// Compute per-customer features and value (CCV, CPV, CLV) as of a date.
    Features(FeaturesArgs),
    /// Run the pipeline: validate, then write every output into --out.
    Run(RunArgs),
    /// Read every billing column once and sum it: the I/O floor that benchmarks compare with.
    Scan(ScanArgs),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Human,
    Json,
}

#[derive(Debug, Args)]
pub struct GenArgs {
    /// Folder to write the dataset into (replaced if it exists).
    #[arg(long, env = "LOYALTY_GEN_OUT")]
    pub out: PathBuf,
    /// Number of customers.
    #[arg(long, default_value_t = 20_000, env = "LOYALTY_GEN_CUSTOMERS")]
    pub customers: usize,
    /// Number of billed months.
    #[arg(long, default_value_t = 24, env = "LOYALTY_GEN_MONTHS")]
    pub months: u32,
    /// First billed month (YYYY-MM-01).
    #[arg(long, default_value = "2023-01-01", env = "LOYALTY_GEN_START")]
    pub start: NaiveDate,
    /// Random seed: the same seed gives the same files.
    #[arg(long, default_value_t = 42, env = "LOYALTY_GEN_SEED")]
    pub seed: u64,
    /// Partition billing by month: billing/bill_month=YYYY-MM-01/part-N.parquet.
    #[arg(long, env = "LOYALTY_GEN_HIVE")]
    pub hive: bool,
    /// Customers per chunk (one thread simulates and writes one chunk).
    #[arg(long, default_value_t = 50_000, env = "LOYALTY_GEN_CHUNK")]
    pub chunk_size: usize,
}

#[derive(Debug, Args)]
pub struct DataArgs {
    /// Dataset folder (see SCHEMA.md).
    #[arg(long, env = "LOYALTY_DATA")]
    pub data: PathBuf,
    /// Set rows that break the contract aside (counted, written to rejects) instead of failing.
    #[arg(long, env = "LOYALTY_LENIENT")]
    pub lenient: bool,
    /// Trust the input: coerce types but check no row rule (for data validated upstream).
    #[arg(long, env = "LOYALTY_SKIP_VALIDATION", conflicts_with = "lenient")]
    pub skip_validation: bool,
}

#[derive(Debug, Args)]
pub struct ValidateArgs {
    #[command(flatten)]
    pub data: DataArgs,
    /// Output format of the summary.
    #[arg(long, value_enum, default_value_t = Format::Human, env = "LOYALTY_FORMAT")]
    pub format: Format,
    /// With --lenient: also write the rejected rows into this folder, one Parquet file per table.
    #[arg(long, requires = "lenient")]
    pub rejects: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct ModelArgs {
    /// T: features use only what is known at the end of this day (default: the end of the last billed month).
    #[arg(long, env = "LOYALTY_AS_OF")]
    pub as_of: Option<NaiveDate>,
    /// Margin as a share of total_charge when bills carry no cost.
    #[arg(long, env = "LOYALTY_MARGIN_RATE")]
    pub margin_rate: Option<f64>,
    /// Yearly discount rate for CCV, CPV and CLV.
    #[arg(long, env = "LOYALTY_DISCOUNT_RATE")]
    pub discount_rate: Option<f64>,
    /// Valuation horizon n in months.
    #[arg(long, env = "LOYALTY_VALUATION_MONTHS")]
    pub valuation_months: Option<u32>,
    /// Churn horizon h in months.
    #[arg(long, env = "LOYALTY_HORIZON_MONTHS")]
    pub horizon_months: Option<u32>,
    /// Billing aggregation: `kernel` (fast) or `polars` (the reference group-by plan; same numbers).
    #[arg(long, value_enum, default_value_t = BillingEngineArg::Kernel, env = "LOYALTY_BILLING_ENGINE")]
    pub billing_engine: BillingEngineArg,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BillingEngineArg {
    Kernel,
    Polars,
}

#[derive(Debug, Args)]
pub struct FeaturesArgs {
    #[command(flatten)]
    pub data: DataArgs,
    #[command(flatten)]
    pub model: ModelArgs,
    /// Output Parquet file (written whole or not at all).
    #[arg(long, env = "LOYALTY_FEATURES_OUT")]
    pub out: PathBuf,
    /// `aggregates`: only the streaming per-customer aggregates (no scores, CPV, CLV).
    #[arg(long, value_enum, default_value_t = Stage::All)]
    pub stage: Stage,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Stage {
    All,
    Aggregates,
}

#[derive(Debug, Args)]
pub struct ScanArgs {
    /// Dataset folder (see SCHEMA.md).
    #[arg(long, env = "LOYALTY_DATA")]
    pub data: PathBuf,
    /// Read every table of the dataset, not only billing.
    #[arg(long)]
    pub all_tables: bool,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub data: DataArgs,
    #[command(flatten)]
    pub model: ModelArgs,
    /// Output folder; replaced only when the whole run succeeds.
    #[arg(long, env = "LOYALTY_OUT")]
    pub out: PathBuf,
}
