//! From parsed arguments to the library's settings: the one resolution
//! (`loyalty_pipeline::resolve`: defaults < `--config` < environment and flags).

use loyalty_features::{BillingEngine, MarginBasis};
use loyalty_pipeline::{BallistaSettings, DataOptions, EngineChoice, Overrides, RunConfig};

use crate::cli::{BillingEngineArg, DataArgs, EngineArg, EngineArgs, MarginBasisArg, SettingsArgs};

pub fn data_options(d: &DataArgs) -> DataOptions {
    DataOptions { data: d.data.clone(), lenient: d.lenient, skip_validation: d.skip_validation }
}

/// The `[model]` options of the command line as overrides of the config file.
pub fn overrides(s: &SettingsArgs) -> Overrides {
    Overrides {
        as_of: s.as_of,
        margin_rate: s.margin_rate,
        discount_rate: s.discount_rate,
        valuation_months: s.valuation_months,
        horizon_months: s.horizon_months,
        billing_engine: s.billing_engine.map(|b| match b {
            BillingEngineArg::Kernel => BillingEngine::Kernel,
            BillingEngineArg::Polars => BillingEngine::Polars,
        }),
        margin_basis: s.margin_basis.map(|b| match b {
            MarginBasisArg::Billed => MarginBasis::Billed,
            MarginBasisArg::Collected => MarginBasis::Collected,
        }),
        ..Overrides::default()
    }
}

/// Resolve `s` together with the command's own overrides in `extra`.
pub fn resolve(s: &SettingsArgs, extra: Overrides) -> loyalty_pipeline::Result<RunConfig> {
    let base = overrides(s);
    let merged = Overrides {
        pseudonymize_ids: extra.pseudonymize_ids,
        previous: extra.previous,
        trees: extra.trees,
        train_snapshots: extra.train_snapshots,
        max_train_rows: extra.max_train_rows,
        folds: extra.folds,
        ..base
    };
    loyalty_pipeline::resolve(s.config.as_deref(), &merged)
}

pub fn engine_choice(e: &EngineArgs) -> EngineChoice {
    match e.engine {
        None | Some(EngineArg::Local) => EngineChoice::Local,
        Some(EngineArg::Ballista) => {
            let d = BallistaSettings::default();
            EngineChoice::Ballista(BallistaSettings {
                scheduler: e.scheduler.clone(),
                target_partitions: e.target_partitions.unwrap_or(d.target_partitions),
                exchange_dir: e.exchange_dir.clone(),
                job_timeout_secs: e.job_timeout.unwrap_or(d.job_timeout_secs),
            })
        }
    }
}
