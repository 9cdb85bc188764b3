//! Everything `loyalty run` computes, and how it is laid out in the output folder.

use std::path::Path;

use loyalty_contract::{Tables, Validated};
use loyalty_features::{FeatureParams, offers};
use polars::prelude::*;

use crate::churn::{ChurnFit, ChurnReport};
use crate::cohorts::SbgRetention;
use crate::dataset::{Rewrite, write_rejects};
use crate::error::{Context, Result};
use crate::pseudonym::Pseudonymizer;

/// The tables, models and figures' data of one run.
pub struct Outputs {
    /// One row per customer active at T, with the columns the last stages read:
    /// customer_id, value segment, tier, CLV, monthly margin and loyalty. Every other
    /// column (features, scores, churn reasons, ...) waits on disk until
    /// customers.parquet, which holds them all, is written (see `spill`).
    pub customers: DataFrame,
    pub(crate) customers_spilled: Option<crate::spill::Spilled>,
    pub segments: DataFrame,
    pub tiers: DataFrame,
    pub lorenz: DataFrame,
    /// Gini coefficient of monthly margin.
    pub gini: f64,
    /// Where each segment axis turns high (no CPV cut: CPV could not be estimated).
    pub segment_cuts: loyalty_features::segments::Cuts,
    pub curves: DataFrame,
    pub zones: DataFrame,
    pub gaps: DataFrame,
    pub drivers: DataFrame,
    pub signals: DataFrame,
    pub winback: DataFrame,
    /// The leaky bucket: the base month by month, joiners and leavers.
    pub movement: DataFrame,
    /// Churn reason classes of the win-back window's leavers by plan, competition, tier.
    pub reason_mix: DataFrame,
    /// NPS per competition level and value segment.
    pub nps: DataFrame,
    /// Customers per loyalty-ladder stage and satisfaction quadrant.
    pub ladder: DataFrame,
    /// Transactional against emotional loyalty: the 2x2 with margin.
    pub loyalty_kinds: DataFrame,
    /// The offers per value segment and service (the offers themselves are written as
    /// they are ranked: [`OffersFile`]).
    pub offer_summary: DataFrame,
    /// Movement since the previous run, when one was given.
    pub migration: Option<MigrationTable>,
    /// Customers who left in the win-back window, before reasons are excluded.
    pub leavers_in_window: usize,
    /// Every leaver by T (customer_id, churn_date, reason_class); not written.
    pub leavers: DataFrame,
    pub economics: DataFrame,
    /// The Kaplan-Meier curves the customers without a churn score fall back on.
    pub survival: DataFrame,
    /// sBG on contract cohorts, when they exist.
    pub sbg: Option<SbgRetention>,
    /// The churn model, when the history was long enough to train one.
    pub churn: Option<ChurnFit>,
}

/// Where the top next-best offers of every active customer go: offers.parquet, written
/// a chunk of customers at a time (at 10M customers the whole table is over a gigabyte).
pub(crate) struct OffersFile<'a> {
    pub path: std::path::PathBuf,
    pub pseudonyms: Option<&'a Pseudonymizer>,
}

impl OffersFile<'_> {
    /// Rank and write the offers of `customers` (the segmented table at T); their
    /// summary per value segment and service.
    pub(crate) fn write(&self, customers: &DataFrame, tables: &Tables, params: &FeatureParams) -> Result<DataFrame> {
        let mut writer = loyalty_io::AppendWriter::new(&self.path);
        let summary = offers::stream_offers(customers, tables, params, |mut chunk| -> Result<()> {
            if let Some(p) = self.pseudonyms {
                p.apply(&mut chunk)?;
            }
            Ok(writer.append(&chunk)?)
        })
        .during("next-best offers")?;
        writer.finish()?;
        Ok(summary)
    }
}

/// How customers moved between segments and tiers since an earlier run.
pub struct MigrationTable {
    /// Per kind, from and to state: customers and margin (migration.csv).
    pub table: DataFrame,
    /// The earlier run's output folder.
    pub source: std::path::PathBuf,
}

/// `model_quality.json`: the churn model's report, or why there is none.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(untagged)]
pub enum ModelQuality<'a> {
    Fitted(&'a ChurnReport),
    NotFitted { fitted: bool, reason: &'static str },
}

impl Outputs {
    pub fn model_quality(&self) -> ModelQuality<'_> {
        match &self.churn {
            Some(fit) => ModelQuality::Fitted(&fit.report),
            None => ModelQuality::NotFitted {
                fitted: false,
                reason: "the data is too short for out-of-time validation, or has no churner",
            },
        }
    }

    /// Replace the customer ids of every per-customer table.
    pub(crate) fn pseudonymize(&mut self, p: &Pseudonymizer) -> Result<()> {
        // The rows of the columns on disk are matched by position from here on.
        if let Some(spilled) = &self.customers_spilled {
            spilled.check_rows(&self.customers)?;
        }
        p.apply(&mut self.customers)?;
        p.apply(&mut self.leavers)?;
        Ok(p.apply(&mut self.winback)?)
    }

    /// Write every table into `dir`: the large ones as Parquet, the ones analysts open
    /// in a spreadsheet as CSV too, the small ones as CSV only. customers.parquet (a
    /// gigabyte at 10M customers, its set-aside columns read back as it goes) is
    /// written beside the other files: each alone left one of two cores idle.
    pub(crate) fn write(&mut self, dir: &Path) -> Result<()> {
        let (customers, spilled) = (&mut self.customers, self.customers_spilled.as_ref());
        let mut csv_only = vec![
            ("zones", &mut self.zones),
            ("satisfaction_gap", &mut self.gaps),
            ("drivers", &mut self.drivers),
            ("signals", &mut self.signals),
            ("retention_economics", &mut self.economics),
            ("base_movement", &mut self.movement),
            ("churn_reasons", &mut self.reason_mix),
            ("nps", &mut self.nps),
            ("loyalty_ladder", &mut self.ladder),
            ("loyalty_kinds", &mut self.loyalty_kinds),
            ("offers_by_segment", &mut self.offer_summary),
        ];
        if let Some(m) = &mut self.migration {
            csv_only.push(("migration", &mut m.table));
        }
        let others = OtherTables {
            parquet_only: vec![("survival", &mut self.survival)],
            parquet_and_csv: vec![
                ("segments", &mut self.segments),
                ("tiers", &mut self.tiers),
                ("lorenz", &mut self.lorenz),
                ("curves", &mut self.curves),
                ("winback", &mut self.winback),
            ],
            csv_only,
        };
        let (wrote_customers, wrote_others) = loyalty_contract::ahead::side_by_side(
            || timed("customers.parquet", || write_customers(customers, spilled, dir)),
            || timed("the other tables", || others.write(dir)),
        );
        wrote_customers?;
        wrote_others?;
        loyalty_io::write_json(&self.model_quality(), &dir.join("model_quality.json"))?;
        Ok(())
    }
}

/// `work`, with its time in the debug log.
fn timed<T>(what: &str, work: impl FnOnce() -> T) -> T {
    let started = std::time::Instant::now();
    let out = work();
    tracing::debug!("wrote {what} in {:.2}s", started.elapsed().as_secs_f64());
    out
}

/// customers.parquet: the kept columns with the set-aside ones joined back.
fn write_customers(customers: &mut DataFrame, spilled: Option<&crate::spill::Spilled>, dir: &Path) -> Result<()> {
    let path = dir.join("customers.parquet");
    match spilled {
        Some(spilled) => spilled.write_joined(customers, &path),
        None => Ok(loyalty_io::write_parquet(customers, &path)?),
    }
}

/// Every table of the run but customers.parquet, by the formats it is written in
/// (named as its files are).
struct OtherTables<'a> {
    parquet_only: Vec<(&'static str, &'a mut DataFrame)>,
    parquet_and_csv: Vec<(&'static str, &'a mut DataFrame)>,
    csv_only: Vec<(&'static str, &'a mut DataFrame)>,
}

impl OtherTables<'_> {
    fn write(self, dir: &Path) -> Result<()> {
        let parquet =
            |df: &mut DataFrame, name: &str| loyalty_io::write_parquet(df, &dir.join(format!("{name}.parquet")));
        let csv = |df: &mut DataFrame, name: &str| loyalty_io::write_csv(df, &dir.join(format!("{name}.csv")));
        for (name, df) in self.parquet_only {
            parquet(df, name)?;
        }
        for (name, df) in self.parquet_and_csv {
            parquet(df, name)?;
            csv(df, name)?;
        }
        for (name, df) in self.csv_only {
            csv(df, name)?;
        }
        Ok(())
    }
}

/// The rejected rows of a lenient run into `dir/rejects`, pseudonymised when the
/// outputs are.
pub(crate) fn write_run_rejects(v: &Validated, dir: &Path, pseudonyms: Option<&Pseudonymizer>) -> Result<()> {
    if v.rejects.is_empty() {
        return Ok(());
    }
    let rewrite = |df: &mut DataFrame| pseudonyms.map_or(Ok(()), |p| p.apply(df));
    let rewrite: Option<Rewrite> = pseudonyms.is_some().then_some(&rewrite as _);
    write_rejects(v, &dir.join("rejects"), rewrite)
}
