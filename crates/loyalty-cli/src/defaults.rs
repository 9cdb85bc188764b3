//! `--help` shows each option's default, read from the library's settings (where the
//! defaults are written, once), not restated in the argument definitions: an option
//! the user leaves out stays `None`, so the config file can still set it.

use clap::Command;
use loyalty_pipeline::fit::{SbgOptions, TxOptions};
use loyalty_pipeline::{BallistaSettings, RunConfig};

/// (subcommand path, long option, default shown in --help); `*` matches every path.
fn defaults() -> Vec<(&'static str, &'static str, String)> {
    let run = RunConfig::default();
    let (m, churn) = (&run.model, &run.churn);
    let gen_params = loyalty_synth::GenParams::default();
    let (tx, sbg, engine) = (TxOptions::default(), SbgOptions::default(), BallistaSettings::default());
    let billing = format!("{:?}", m.billing_engine).to_lowercase();
    vec![
        ("*", "margin-rate", m.margin_rate.to_string()),
        ("*", "discount-rate", m.annual_discount_rate.to_string()),
        ("*", "valuation-months", m.valuation_months.to_string()),
        ("*", "horizon-months", m.churn_horizon_months.to_string()),
        ("*", "billing-engine", billing),
        ("*", "margin-basis", format!("{:?}", m.margin_basis).to_lowercase()),
        ("*", "engine", "local".into()),
        ("*", "target-partitions", engine.target_partitions.to_string()),
        ("*", "job-timeout", engine.job_timeout_secs.to_string()),
        ("*", "trees", churn.trees.to_string()),
        ("*", "train-snapshots", churn.train_snapshots.to_string()),
        ("*", "max-train-rows", churn.max_train_rows.to_string()),
        ("*", "folds", churn.folds.to_string()),
        ("gen", "customers", gen_params.customers.to_string()),
        ("gen", "months", gen_params.months.to_string()),
        ("gen", "start", gen_params.start.to_string()),
        ("gen", "seed", gen_params.seed.to_string()),
        ("gen", "chunk-size", gen_params.chunk_size.to_string()),
        ("fit", "period", format!("{:?}", tx.period).to_lowercase()),
        ("fit", "horizon", tx.horizon.to_string()),
        ("fit", "clv-months", tx.clv_months.to_string()),
        ("fit", "discount", sbg.discount.to_string()),
        ("fit", "renewals", sbg.renewals.to_string()),
        ("fit", "by", loyalty_pipeline::fit::KM_DEFAULT_BY.into()),
    ]
    .into_iter()
    .chain(cluster_defaults())
    .collect()
}

#[cfg(feature = "ballista")]
fn cluster_defaults() -> Vec<(&'static str, &'static str, String)> {
    let c = loyalty_ballista::ClusterOptions::default();
    vec![
        ("cluster", "port", c.port.to_string()),
        ("cluster", "executors", c.executors.to_string()),
        ("cluster", "vcores", c.vcores.to_string()),
        ("cluster", "executor-timeout", c.executor_timeout_secs.to_string()),
    ]
}

#[cfg(not(feature = "ballista"))]
fn cluster_defaults() -> Vec<(&'static str, &'static str, String)> {
    Vec::new()
}

fn annotate(mut cmd: Command, path: &str, table: &[(&'static str, &'static str, String)]) -> Command {
    for (scope, long, value) in table {
        if *scope != "*" && !path.starts_with(*scope) {
            continue;
        }
        let Some(id) = cmd.get_arguments().find(|a| a.get_long() == Some(*long)).map(|a| a.get_id().clone()) else {
            continue;
        };
        cmd = cmd.mut_arg(id, |a| {
            let help = a.get_help().map(|h| h.to_string()).unwrap_or_default();
            a.help(format!("{help} [default: {value}]"))
        });
    }
    let names: Vec<String> = cmd.get_subcommands().map(|s| s.get_name().to_string()).collect();
    for name in names {
        let sub_path = if path.is_empty() { name.clone() } else { format!("{path} {name}") };
        cmd = cmd.mut_subcommand(&name, |s| annotate(s, &sub_path, table));
    }
    cmd
}

/// The command line with every default written into its option's help.
pub fn command() -> Command {
    annotate(<crate::cli::Cli as clap::CommandFactory>::command(), "", &defaults())
}
