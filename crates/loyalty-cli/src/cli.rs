//! Command-line types (clap derive).
//!
//! Environment variables: every option of `loyalty run` reads `LOYALTY_<NAME>` (the
//! long name in upper snake case: `--as-of` reads `LOYALTY_AS_OF`), in every
//! subcommand that has it; options that `loyalty run` does not have read none. A flag
//! wins over its variable, and both over the `--config` file. Defaults are not
//! written here: they come from the library's settings (see `defaults.rs`, which
//! shows them in `--help`).

use std::path::PathBuf;

use chrono::NaiveDate;
use clap::{Args, Parser, Subcommand, ValueEnum};

/// Customer value, churn and loyalty analytics for telecom billing data.
///
/// Reads an operator's billing data (a folder of Parquet files following SCHEMA.md),
/// validates it, and derives per-customer value, churn and loyalty tables.
/// Exit codes: 0 ok, 1 the input or a setting breaks a rule, 2 usage, system or
/// internal error, 130/143 stopped by SIGINT/SIGTERM.
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
    /// Fit a customer-base model (sBG, BG/NBD, Pareto/NBD, Gamma-Gamma) by maximum likelihood.
    Fit(FitArgs),
    /// Convert a public dataset into the contract.
    Import(ImportArgs),
    /// Churn classifier for postpaid customers: out-of-time training and scoring, or cross-validation.
    Churn(ChurnArgs),
    /// Run a Ballista cluster in this process (one scheduler, N executors on 127.0.0.1)
    /// until stopped; `loyalty run --engine ballista` can use it.
    Cluster(ClusterArgs),
}

#[derive(Debug, Args)]
pub struct ClusterArgs {
    /// The scheduler's port on 127.0.0.1.
    #[arg(long)]
    pub port: Option<u16>,
    /// Number of executors.
    #[arg(long)]
    pub executors: Option<usize>,
    /// Task slots per executor.
    #[arg(long)]
    pub vcores: Option<usize>,
    /// Seconds without a heartbeat before an executor counts as lost (running jobs
    /// fail when none is left after as long again).
    #[arg(long)]
    pub executor_timeout: Option<u64>,
}

/// Where the heavy per-customer aggregation runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum EngineArg {
    /// In this process, on the Polars streaming engine (the default).
    Local,
    /// As DataFusion plans on a Ballista cluster (--scheduler).
    Ballista,
}

#[derive(Debug, Args)]
pub struct EngineArgs {
    /// Where the per-customer aggregation of billing, top-ups, interactions and surveys runs.
    #[arg(long, value_enum, env = "LOYALTY_ENGINE")]
    pub engine: Option<EngineArg>,
    /// The Ballista scheduler, df://HOST:PORT (with --engine ballista).
    #[arg(long, env = "LOYALTY_SCHEDULER")]
    pub scheduler: Option<String>,
    /// Partitions of the shuffle by customer hash on the cluster.
    #[arg(long, env = "LOYALTY_TARGET_PARTITIONS")]
    pub target_partitions: Option<usize>,
    /// A folder the executors and this process share, where the cluster writes the
    /// aggregates as Parquet (default: a temporary folder beside --out).
    #[arg(long, env = "LOYALTY_EXCHANGE_DIR")]
    pub exchange_dir: Option<PathBuf>,
    /// Fail the run when one aggregation job has not finished after this many seconds.
    #[arg(long, env = "LOYALTY_JOB_TIMEOUT")]
    pub job_timeout: Option<u64>,
}

#[derive(Debug, Args)]
pub struct ChurnArgs {
    #[command(subcommand)]
    pub command: ChurnCommand,
}

#[derive(Debug, Subcommand)]
pub enum ChurnCommand {
    /// Train on historical snapshots, validate out of time, score the customers active at T.
    Train(ChurnTrainArgs),
    /// One snapshot only (no history): stratified k-fold cross-validation.
    Evaluate(ChurnEvalArgs),
}

/// The tuning of the churn classifier (config section `[churn]`).
#[derive(Debug, Args)]
pub struct ChurnTuning {
    /// Boosting trees (the booster's cost is linear in them).
    #[arg(long)]
    pub trees: Option<u32>,
    /// Training snapshots, 3 months apart, before the test snapshot.
    #[arg(long)]
    pub train_snapshots: Option<u32>,
    /// Boost on a uniform sample of at most this many training rows (0: all).
    #[arg(long)]
    pub max_train_rows: Option<usize>,
}

#[derive(Debug, Args)]
pub struct ChurnTrainArgs {
    #[command(flatten)]
    pub data: DataArgs,
    #[command(flatten)]
    pub settings: SettingsArgs,
    #[command(flatten)]
    pub tuning: ChurnTuning,
    /// Write `p_churn_<h>m`, loyalty and the top reasons per customer to this Parquet file.
    #[arg(long, env = "LOYALTY_OUT")]
    pub out: Option<PathBuf>,
    /// Write each plan type's out-of-time training and test rows (every model input
    /// and `churned`) to `<plan>_train.parquet` and `<plan>_test.parquet` in this folder.
    #[arg(long)]
    pub designs_out: Option<PathBuf>,
    #[arg(long, value_enum, default_value_t = Format::Human)]
    pub format: Format,
}

#[derive(Debug, Args)]
pub struct ChurnEvalArgs {
    #[command(flatten)]
    pub data: DataArgs,
    #[command(flatten)]
    pub settings: SettingsArgs,
    /// Cross-validation folds.
    #[arg(long)]
    pub folds: Option<usize>,
    /// Boosting trees (the booster's cost is linear in them).
    #[arg(long)]
    pub trees: Option<u32>,
    #[arg(long, value_enum, default_value_t = Format::Human)]
    pub format: Format,
}

#[derive(Debug, Args)]
pub struct FitArgs {
    #[command(subcommand)]
    pub model: FitModel,
}

#[derive(Debug, Subcommand)]
pub enum FitModel {
    /// Shifted-beta-geometric retention of contract cohorts, with DERL.
    Sbg(SbgArgs),
    /// BG/NBD on the transaction log (top-ups).
    Bgnbd(TxFitArgs),
    /// Pareto/NBD on the transaction log (top-ups).
    ParetoNbd(TxFitArgs),
    /// Gamma-Gamma spend model on the repeat transactions' values.
    GammaGamma(TxFitArgs),
    /// Kaplan-Meier retention curves by plan, contract, competition level or market.
    Km(KmArgs),
}

#[derive(Debug, Args)]
pub struct KmArgs {
    #[command(flatten)]
    pub data: DataArgs,
    /// The grouping column: plan_type, contract_months, competition_level or market_id.
    #[arg(long)]
    pub by: Option<String>,
    /// Customers known at the end of this day (default: the end of the last billed month).
    #[arg(long, env = "LOYALTY_AS_OF")]
    pub as_of: Option<NaiveDate>,
    /// Write the table (group, tenure, at risk, events, hazard, survival) to this .parquet or .csv file.
    #[arg(long, env = "LOYALTY_OUT")]
    pub out: Option<PathBuf>,
    #[arg(long, value_enum, default_value_t = Format::Human)]
    pub format: Format,
}

#[derive(Debug, Args)]
pub struct SbgArgs {
    /// Survivors of one cohort at periods 0, 1, 2, ... (e.g. 1000,631,468); repeat for more cohorts.
    #[arg(long, value_delimiter = ',', num_args = 1.., action = clap::ArgAction::Append, required_unless_present = "data")]
    pub survivors: Vec<String>,
    /// Or: the postpaid cohorts of a dataset (one cohort per signup month, one period per contract term).
    #[arg(long, env = "LOYALTY_DATA", conflicts_with = "survivors")]
    pub data: Option<PathBuf>,
    /// With --data: the contract length whose customers are fitted (default: the most common).
    #[arg(long)]
    pub contract_months: Option<i64>,
    /// With --data: observe cohorts up to this date (default: the end of the last billed month).
    #[arg(long, env = "LOYALTY_AS_OF")]
    pub as_of: Option<NaiveDate>,
    /// Discount rate per period for DERL.
    #[arg(long)]
    pub discount: Option<f64>,
    /// DERL of a customer who has made this many renewals.
    #[arg(long)]
    pub renewals: Option<u32>,
    /// Periods to project the survivor curve to (default: the observed ones plus 5).
    #[arg(long)]
    pub project: Option<u32>,
    #[arg(long, value_enum, default_value_t = Format::Human)]
    pub format: Format,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Period {
    Day,
    Week,
    Month,
}

#[derive(Debug, Args)]
pub struct TxFitArgs {
    /// Dataset folder (see SCHEMA.md): the per-customer summary is built from its top-ups.
    #[arg(long, env = "LOYALTY_DATA", required_unless_present = "summary", conflicts_with = "summary")]
    pub data: Option<PathBuf>,
    /// Set rows that break the contract aside instead of failing.
    #[arg(long, env = "LOYALTY_LENIENT")]
    pub lenient: bool,
    /// Trust the input: coerce types but check no row rule.
    #[arg(long, env = "LOYALTY_SKIP_VALIDATION", conflicts_with = "lenient")]
    pub skip_validation: bool,
    /// Or: a per-customer summary (.parquet or .csv) with columns x, t_x, T (or lifetimes'
    /// frequency, recency, T) and, for gamma-gamma, mean_value (or monetary_value).
    #[arg(long)]
    pub summary: Option<PathBuf>,
    /// End of the calibration period (default: the last top-up's day).
    #[arg(long)]
    pub calibration_end: Option<NaiveDate>,
    /// Time unit of x, t_x and T.
    #[arg(long, value_enum)]
    pub period: Option<Period>,
    /// Horizon, in periods, of the per-customer expected transactions.
    #[arg(long)]
    pub horizon: Option<f64>,
    /// bgnbd: also fit Gamma-Gamma on the repeat transactions' values and write each
    /// customer's CLV over this many months (0: no CLV).
    #[arg(long)]
    pub clv_months: Option<u32>,
    /// Yearly discount rate for CLV.
    #[arg(long, env = "LOYALTY_DISCOUNT_RATE")]
    pub discount_rate: Option<f64>,
    /// Margin as a share of a transaction's value, for CLV.
    #[arg(long, env = "LOYALTY_MARGIN_RATE")]
    pub margin_rate: Option<f64>,
    /// Write one row per customer (summary and predictions) to this .parquet or .csv file.
    #[arg(long, env = "LOYALTY_OUT")]
    pub out: Option<PathBuf>,
    #[arg(long, value_enum, default_value_t = Format::Human)]
    pub format: Format,
}

#[derive(Debug, Args)]
pub struct ImportArgs {
    #[command(subcommand)]
    pub source: ImportSource,
}

#[derive(Debug, Subcommand)]
pub enum ImportSource {
    /// The CDNOW purchase log (master or 1/10 sample layout): purchases become top-ups.
    Cdnow(ImportFileArgs),
    /// IBM's Telco Customer Churn sample (wa_churn.csv): one snapshot of postpaid subscribers.
    WaChurn(ImportFileArgs),
    /// The MLC++ telecom churn table (mlc_churn.csv): one snapshot of usage and care calls.
    MlcChurn(ImportFileArgs),
}

#[derive(Debug, Args)]
pub struct ImportFileArgs {
    /// The input file.
    #[arg(long)]
    pub input: PathBuf,
    /// The dataset folder to write (replaced only if it is an earlier output).
    #[arg(long, env = "LOYALTY_OUT")]
    pub out: PathBuf,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Human,
    Json,
}

#[derive(Debug, Args)]
pub struct GenArgs {
    /// Folder to write the dataset into (replaced only if it is an earlier dataset).
    #[arg(long, env = "LOYALTY_OUT")]
    pub out: PathBuf,
    /// Number of customers.
    #[arg(long)]
    pub customers: Option<usize>,
    /// Number of billed months.
    #[arg(long)]
    pub months: Option<u32>,
    /// First billed month (YYYY-MM-01).
    #[arg(long)]
    pub start: Option<NaiveDate>,
    /// Random seed: the same seed gives the same files.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Partition billing by month: billing/bill_month=YYYY-MM-01/part-N.parquet.
    #[arg(long)]
    pub hive: bool,
    /// Customers per chunk (one thread simulates and writes one chunk).
    #[arg(long)]
    pub chunk_size: Option<usize>,
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
    #[arg(long, value_enum, default_value_t = Format::Human)]
    pub format: Format,
    /// With --lenient: also write the rejected rows into this folder, one Parquet file per table.
    #[arg(long, requires = "lenient")]
    pub rejects: Option<PathBuf>,
}

/// The settings every command that models the data shares: the config file and the
/// feature parameters (config section `[model]`).
#[derive(Debug, Args)]
pub struct SettingsArgs {
    /// TOML configuration (see loyalty.example.toml); flags and environment variables override it.
    #[arg(long, env = "LOYALTY_CONFIG")]
    pub config: Option<PathBuf>,
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
    /// Bill and top-up aggregation: `kernel` (fast) or `polars` (the reference group-by plans; same numbers).
    #[arg(long, value_enum, env = "LOYALTY_BILLING_ENGINE")]
    pub billing_engine: Option<BillingEngineArg>,
    /// What margin counts: `billed` (total_charge - cost) or `collected` (amount_paid - cost).
    #[arg(long, value_enum, env = "LOYALTY_MARGIN_BASIS")]
    pub margin_basis: Option<MarginBasisArg>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum MarginBasisArg {
    Billed,
    Collected,
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
    pub settings: SettingsArgs,
    /// Output Parquet file (written whole or not at all).
    #[arg(long, env = "LOYALTY_OUT")]
    pub out: PathBuf,
    /// `aggregates`: only the streaming per-customer aggregates (no scores, CPV, CLV).
    #[arg(long, value_enum, default_value_t = Stage::All)]
    pub stage: Stage,
    /// CLV from a churn model's scores (`loyalty churn train --out`) instead of the
    /// Kaplan-Meier curves, for the customers it scored.
    #[arg(long)]
    pub churn_scores: Option<PathBuf>,
    #[command(flatten)]
    pub engine: EngineArgs,
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
    pub settings: SettingsArgs,
    /// Output folder; replaced only when the whole run succeeds.
    #[arg(long, env = "LOYALTY_OUT")]
    pub out: PathBuf,
    /// Replace customer ids in every output with a keyed hash; the key comes from the
    /// environment variable LOYALTY_PSEUDONYM_KEY and is never written anywhere.
    #[arg(long, env = "LOYALTY_PSEUDONYMIZE_IDS")]
    pub pseudonymize_ids: bool,
    /// The output folder of an earlier run: migration.csv counts how customers moved
    /// between segments and tiers since then (ids plain or pseudonymised with the same key).
    #[arg(long, env = "LOYALTY_PREVIOUS")]
    pub previous: Option<PathBuf>,
    #[command(flatten)]
    pub engine: EngineArgs,
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use clap::CommandFactory;

    fn env_name(long: &str) -> String {
        format!("LOYALTY_{}", long.replace('-', "_").to_uppercase())
    }

    /// Every (command path, option) of the command line.
    fn options(cmd: &clap::Command, path: &str, out: &mut Vec<(String, clap::Arg)>) {
        for a in cmd.get_arguments() {
            if a.get_long().is_some_and(|l| l != "help" && l != "version") {
                out.push((path.to_string(), a.clone()));
            }
        }
        for s in cmd.get_subcommands() {
            options(s, &format!("{path} {}", s.get_name()), out);
        }
    }

    #[test]
    fn an_option_reads_the_environment_exactly_when_run_has_it() {
        let cli = super::Cli::command();
        let mut all = Vec::new();
        options(&cli, "loyalty", &mut all);
        let run: BTreeSet<&str> = all
            .iter()
            .filter(|(path, a)| path == "loyalty run" || (path == "loyalty" && a.is_global_set()))
            .filter_map(|(_, a)| a.get_long())
            .collect();
        assert!(run.contains("data") && run.contains("as-of") && run.contains("quiet"), "{run:?}");
        for (path, a) in &all {
            let long = a.get_long().unwrap();
            let env = a.get_env().map(|e| e.to_string_lossy().into_owned());
            let expected = run.contains(long).then(|| env_name(long));
            assert_eq!(env, expected, "{path} --{long}");
        }
    }

    #[test]
    fn no_option_restates_a_default_of_the_settings() {
        let cli = super::Cli::command();
        let mut all = Vec::new();
        options(&cli, "loyalty", &mut all);
        // Only presentation choices (the output format, the feature stage) default here.
        for (path, a) in &all {
            let long = a.get_long().unwrap();
            if !a.get_default_values().is_empty() && !matches!(a.get_action(), clap::ArgAction::SetTrue) {
                assert!(["format", "stage"].contains(&long), "{path} --{long} has a default in clap");
            }
        }
    }
}
