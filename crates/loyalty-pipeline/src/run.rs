//! `loyalty run`: every stage in order, outputs staged in a temporary folder and
//! swapped into the output folder only when everything succeeded.
//!
//! validate -> churn model (trained before T) -> features at T -> scores and CLV -> segments
//! -> satisfaction curves -> retention (leavers, win-back, base movement, economics,
//! sBG) -> report -> write.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use loyalty_contract::ahead::side_by_side;
use loyalty_contract::reads::Source;
use loyalty_contract::summary::DatasetSummary;
use loyalty_contract::{Copier, Table, Validated, col as c};
use loyalty_features::curves::satisfaction_curves;
use loyalty_features::{
    ChurnProbabilities, FeatureParams, SurvivalCurves, leavers, migration, names as n, profiles, retention, segments,
};
use polars::prelude::*;
use tracing::{info, warn};

use crate::churn::{ChurnFit, TrainedChurn, train_churn};
use crate::cohorts::sbg_retention;
use crate::dataset::{DataOptions, as_of, load_validated_with};
use crate::engine::EngineChoice;
use crate::error::{Context, Result};
use crate::manifest::RunManifest;
use crate::observer::{Observer, Stages};
use crate::outputs::{MigrationTable, OffersFile, Outputs, write_run_rejects};
use crate::pseudonym::Pseudonymizer;
use crate::settings::RunConfig;

/// What a run reads, where it writes, and how.
pub struct RunRequest {
    pub data: DataOptions,
    pub out: PathBuf,
    /// The config file the settings came from (never written over, recorded in run.json).
    pub config_file: Option<PathBuf>,
    pub settings: RunConfig,
    pub engine: EngineChoice,
    /// Recorded in run.json.
    pub command_line: Vec<String>,
}

/// The columns of the table at T that CLV reads besides the churn scores (the survival
/// cohorts, the margin): the others wait on disk while the customers are scored.
const READ_BY_CLV: [&str; 5] =
    [c::PLAN_TYPE, c::CONTRACT_MONTHS, n::COMPETITION_LEVEL, n::TENURE_MONTHS, n::MARGIN_MONTHLY];

/// The columns of the table at T that the segments and every later stage read (the
/// segments, tiers, NPS and loyalty tables, the offers' adoption cells, the curves,
/// retention): after CLV they come back and the others wait on disk. A column a later
/// stage starts to read joins this list (a missing one fails the run, and the tests).
const READ_FROM_SEGMENTS_ON: [&str; 20] = [
    c::PLAN_TYPE,
    n::COMPETITION_LEVEL,
    n::TENURE_MONTHS,
    n::ARPU_3M,
    n::ARPU_12M,
    n::MARGIN_MONTHLY,
    n::MARGIN_COLLECTED_MONTHLY,
    n::CHARGE_3M,
    n::UNPAID_AMOUNT_3M,
    n::DATA_MB_3M,
    n::COMPLAINTS_12M,
    n::SURVEY_OVERALL,
    n::SURVEY_RECOMMEND,
    n::REFERRALS_MADE,
    n::TRANSACTIONAL_LOYALTY,
    n::EMOTIONAL_LOYALTY,
    n::CCV,
    n::CPV,
    n::CLV,
    n::LOYALTY,
];

/// The columns the offers read (their adoption cells; with the segment, which the
/// curves read too) besides those of [`READ_FROM_CURVES_ON`].
const READ_BY_OFFERS: [&str; 3] = [c::PLAN_TYPE, n::ARPU_12M, n::DATA_MB_3M];

/// The columns the curves and every later stage read, as above.
const READ_FROM_CURVES_ON: [&str; 7] = [
    n::COMPETITION_LEVEL,
    n::SURVEY_OVERALL,
    n::LOYALTY,
    n::CLV,
    n::MARGIN_MONTHLY,
    segments::VALUE_SEGMENT,
    segments::TIER,
];

/// What a finished run produced.
pub struct RunOutcome {
    /// The output folder, now holding the new outputs.
    pub target: PathBuf,
    pub outputs: Outputs,
    pub manifest: RunManifest,
}

/// The stages a run reports to its observer, in order.
pub const STAGES: [&str; 10] =
    ["validate", "buckets", "churn model", "features", "clv", "segments", "curves", "retention", "report", "write"];

/// The validated dataset and what the run knows about it before computing anything.
struct Input {
    validated: Validated,
    summary: DatasetSummary,
    files: Vec<loyalty_io::InputFile>,
}

pub fn run(req: RunRequest, observer: &mut dyn Observer) -> Result<RunOutcome> {
    let started = Instant::now();
    let mut cfg = req.settings.clone();
    // Fail before any work when the key is missing.
    let pseudonyms = if cfg.output.pseudonymize_ids { Some(Pseudonymizer::from_env()?) } else { None };
    // Every reason the output folder cannot be written is found here, before any stage
    // runs; the lock it takes keeps a second run off the same folder until this one ends.
    let inputs: Vec<&Path> = std::iter::once(req.data.data.as_path()).chain(req.config_file.as_deref()).collect();
    let staged = loyalty_io::OutputDir::begin(&req.out, loyalty_io::Holds::Outputs, &inputs)
        .during_with(|| format!("preparing {}", req.out.display()))?;
    // An earlier run to compare with is read now: a wrong folder fails before any work.
    let previous = read_previous(&cfg)?;
    let mut stages = Stages::new(observer, STAGES.len());

    stages.begin("validate")?;
    let mut copy = crate::dataset::bucket_copy(&req.data.data, cfg.model.customers_per_partition, &staged)?;
    let mut validated = load_validated_with(&req.data, copy.as_mut().map(|c| c as &mut dyn Copier))?;
    stages.watch(&validated.reads);
    stages.begin("buckets")?;
    crate::dataset::use_buckets(&mut validated, copy)?;
    let mut input = read_input(&req.data, validated)?;
    cfg.model.as_of = as_of(cfg.as_of_pinned.then_some(cfg.model.as_of), input.summary.billing.last_month)?;
    cfg.model.engine = crate::engine::connect(&req.engine, &req.data.data, &req.out, &input.validated)?;
    // The summary already read the first bill month: the leaky bucket starts there.
    let first_month = match input.summary.billing.first_month {
        Some(m) => m,
        None => crate::dataset::first_bill_month(&input.validated)?,
    };
    let mut out = compute(&input.validated, &cfg, first_month, (staged.path(), pseudonyms.as_ref()), &mut stages)?;
    if let Some(p) = &pseudonyms {
        out.pseudonymize(p)?;
    }
    if let Some(previous) = &previous {
        out.migration = Some(migration_since(previous, &out.customers, &cfg)?);
        // Why the customers of the previous run left, by the segment they had then.
        let by_segment = migration::reasons_by_previous_segment(previous, &out.leavers)?;
        out.reason_mix.vstack_mut(&by_segment)?;
    }

    stages.begin("report")?;
    let html = crate::report::document(&out, &input.summary, &cfg, &req.data.data).html();

    stages.begin("write")?;
    let dir = staged.path().to_path_buf();
    write_run_rejects(&input.validated, &dir, pseudonyms.as_ref())?;
    // The bucketed copy is read no more: its scratch folder goes now, not after the
    // swap, and beside the writes (unlinking the copy took a second at 10M customers).
    let copy = std::mem::take(&mut input.validated.tables);
    let (written, ()) = side_by_side(|| out.write(&dir), move || drop(copy));
    written?;
    loyalty_io::write_text(&html, &dir.join("report.html"))?;
    let records = stages.finish(|table, source| rows_of(&input, table, source));
    let decoded = input.validated.reads.report(|table, source| rows_of(&input, table, source));
    let manifest = RunManifest::new(&req, &cfg, input.summary, (input.files, decoded), &out, records, started)?;
    loyalty_io::write_json(&manifest, &dir.join("run.json"))?;
    let target = staged.commit().during_with(|| format!("moving outputs into {}", req.out.display()))?;
    info!("wrote {} in {:.2}s", target.display(), started.elapsed().as_secs_f64());
    Ok(RunOutcome { target, outputs: out, manifest })
}

/// The customers table of the run in `output.previous`, if set; its ids must be of
/// the same kind as this run's (plain, or pseudonymised).
fn read_previous(cfg: &RunConfig) -> Result<Option<DataFrame>> {
    let Some(dir) = &cfg.output.previous else { return Ok(None) };
    let path = dir.join("customers.parquet");
    let df = loyalty_io::read_parquet_columns(&path, &migration::PREVIOUS_COLUMNS)?;
    let hashed = df.column(c::CUSTOMER_ID)?.dtype() == &DataType::String;
    if hashed != cfg.output.pseudonymize_ids {
        let (then, now) = if hashed { ("pseudonymised", "plain") } else { ("plain", "pseudonymised") };
        return Err(crate::PipelineError::Settings(format!(
            "{}: customer_id is {then} there and {now} in this run (rule: previous_ids); compare runs with the same --pseudonymize-ids setting and key",
            path.display()
        )));
    }
    Ok(Some(df))
}

/// migration.csv: movement between the previous run's segments and tiers and this one's.
fn migration_since(previous: &DataFrame, customers: &DataFrame, cfg: &RunConfig) -> Result<MigrationTable> {
    let (table, matched) = migration::migration(previous, customers).during("movement since the previous run")?;
    if matched == 0 && previous.height() > 0 && customers.height() > 0 {
        warn!("no customer of the previous run is in this one: a different dataset, or another pseudonym key?");
    }
    let source = cfg.output.previous.clone().unwrap_or_default();
    Ok(MigrationTable { table, source })
}

/// The rows of `table` in `source`, when validation counted them: a table's copy
/// has its clean rows.
fn rows_of(input: &Input, table: Table, source: Source) -> Option<u64> {
    let t = input.summary.tables.iter().find(|t| t.table == table)?;
    let rows = if source == Source::BucketCopy { t.rows_read.saturating_sub(t.rows_rejected) } else { t.rows_read };
    (t.rows_read > 0).then_some(rows)
}

/// What the run knows of `validated` before computing anything.
fn read_input(data: &DataOptions, validated: Validated) -> Result<Input> {
    let summary = loyalty_contract::summary::summarize(&validated).during("summarising the dataset")?;
    let files = loyalty_io::fingerprints(&data.data)?;
    Ok(Input { validated, summary, files })
}

/// CPV needs the services customers hold and the catalog of what they could add.
fn cpv_estimated(v: &Validated) -> bool {
    use loyalty_contract::Table;
    v.tables.contains_key(&Table::Services) && v.tables.contains_key(&Table::ServiceCatalog)
}

/// Every table of the run, from the validated data and the resolved settings.
fn compute(
    v: &Validated,
    cfg: &RunConfig,
    first_month: chrono::NaiveDate,
    (staged, pseudonyms): (&Path, Option<&Pseudonymizer>),
    stages: &mut Stages,
) -> Result<Outputs> {
    let params = &cfg.model;
    // The classifiers are trained on snapshots before T first, so that the training
    // rows and the feature table at T are never in memory together.
    stages.begin("churn model")?;
    let trained = train_churn_model(v, cfg)?;

    // Features at T once: the classifier scores them and CLV reads the scores back.
    stages.begin("features")?;
    // From here on each stage holds the columns it reads; the others wait on disk. The
    // rest of this stage reads the scores' and values' inputs.
    let mut runs = crate::spill::PartitionRuns::new(staged, &loyalty_features::VALUE_INPUTS);
    // The top-up kernel counts the prepaid classifier's BG/NBD periods at T on its way,
    // so that scoring does not read every top-up again.
    let at_t_params =
        FeatureParams { topup_days: trained.as_ref().is_some_and(TrainedChurn::reads_topup_inputs), ..params.clone() };
    let features = loyalty_features::customer_features_with(&v.tables, &at_t_params, Some(first_month), |rows| {
        runs.set_aside(rows)
    })
    .during("computing features")?;
    let loyalty_features::FeaturesAtT { table: customers, from, curves: curves_km, silent, topup_days } = features;
    let spilled = runs.spilled(from);
    // The classifier reads its inputs back a chunk of rows at a time; CLV reads the
    // survival cohorts.
    let (mut customers, spilled) = crate::spill::spill_all_but(customers, staged, spilled, &READ_BY_CLV)?;
    // CLV and the survival through the curves, from the survival cohorts kept (beside
    // every value's inputs and outputs they were the features stage's peak at 10M
    // customers): the classifiers read the survival, and the customers they do not
    // score keep both.
    loyalty_features::with_survival(&mut customers, params, &curves_km).during("CLV from the survival curves")?;

    stages.begin("clv")?;
    let at_t = crate::spill::WithSpilled { kept: &customers, spilled: spilled.as_ref() };
    let mut churn = match trained {
        Some(trained) => {
            Some(trained.score(v, params, &at_t, topup_days.as_ref()).during("scoring the customers at T")?)
        }
        None => None,
    };
    // Only the scoring reads the top-up periods at T (24 bytes a customer with top-ups).
    drop(topup_days);
    let customers = with_churn(customers, churn.as_ref(), params, &curves_km)?;
    // The scores are columns of the customers table now: the fit's copy (about 0.5 GB
    // at 10M customers) is read no more.
    if let Some(fit) = churn.as_mut() {
        fit.scores = DataFrame::empty();
    }
    // The churn model and reasons of each customer join them on disk, and the columns
    // the segments and later stages read come back.
    let (customers, mut customers_spilled) =
        crate::spill::spill_all_but(customers, staged, spilled, &READ_FROM_SEGMENTS_ON)?;
    let customers = bring_back(customers, customers_spilled.as_mut(), &READ_FROM_SEGMENTS_ON)?;

    stages.begin("segments")?;
    let split = cfg.segments.split()?;
    let scale = cfg.curves.satisfaction_scale;
    let cuts = segments::cuts(&customers, n::LOYALTY, split, cpv_estimated(v)).during("segment cuts")?;
    if cuts.cpv.is_none() {
        warn!("no services or service catalog: CPV cannot be estimated, every customer counts as low CPV");
    }
    let customers =
        segments::assign(customers, n::LOYALTY, cuts, cfg.segments.tier_shares, scale).during("assigning segments")?;
    loyalty_contract::memory::release();
    let started = Instant::now();
    let segment_table = segments::segment_table(&customers, n::LOYALTY)?;
    let tier_table = segments::tier_table(&customers)?;
    let (lorenz, gini) = segments::lorenz(&customers)?;
    let nps = profiles::nps_table(&customers)?;
    let ladder = profiles::ladder_and_quadrants(&customers, n::LOYALTY)?;
    let loyalty_kinds = profiles::loyalty_kinds(&customers, n::LOYALTY)?;
    tracing::debug!("segment tables in {:.2}s", started.elapsed().as_secs_f64());
    // The offers rank every customer's catalog in chunks, with the columns they and the
    // later stages read only: beside the segment tables they held memory on top of the
    // whole segmented table's. They go straight into the staged folder; every other table
    // is written at the end.
    let keep: Vec<&str> = READ_BY_OFFERS.iter().chain(&READ_FROM_CURVES_ON).copied().collect();
    let (customers, customers_spilled) = crate::spill::spill_all_but(customers, staged, customers_spilled, &keep)?;
    let started = Instant::now();
    let offers_file = OffersFile { path: staged.join("offers.parquet"), pseudonyms };
    let offer_summary = offers_file.write(&customers, &v.tables, params)?;
    tracing::debug!("next-best offers in {:.2}s", started.elapsed().as_secs_f64());

    stages.begin("curves")?;
    // From here on the table is read for these columns only (the curves, retention, the
    // movement since a previous run, the report): the others wait on disk for
    // customers.parquet.
    let (customers, customers_spilled) =
        crate::spill::spill_all_but(customers, staged, customers_spilled, &READ_FROM_CURVES_ON)?;
    let curve_tables = satisfaction_curves(&v.tables, params, &cfg.curves, &customers, n::LOYALTY)
        .during("satisfaction-loyalty curves")?;
    let signals = match &churn {
        Some(fit) => retention::signal_table(&fit.test_frame, "churned")?,
        None => DataFrame::empty(),
    };

    stages.begin("retention")?;
    // The leavers' pass reads every bill again; the economics and the sBG curves read
    // neither its results nor the bills, and go beside it.
    let (gone, (economics, sbg)) = side_by_side(
        || {
            leavers::analyse(
                &v.tables,
                params,
                &customers,
                &cfg.churn_reasons,
                cfg.output.winback_months,
                first_month,
                Some(&silent),
            )
            .during("leavers, win-back list and base movement")
        },
        || {
            let started = Instant::now();
            let economics =
                retention::retention_economics(&customers, params, n::LOYALTY).during("retention economics");
            tracing::debug!("retention economics in {:.2}s", started.elapsed().as_secs_f64());
            let started = Instant::now();
            let sbg = sbg_retention(v, params.as_of).during("sBG retention curves");
            tracing::debug!("sBG retention curves in {:.2}s", started.elapsed().as_secs_f64());
            (economics, sbg)
        },
    );
    let (gone, economics, sbg) = (gone?, economics?, sbg?);
    Ok(Outputs {
        customers,
        customers_spilled,
        segments: segment_table,
        tiers: tier_table,
        lorenz,
        gini,
        segment_cuts: cuts,
        curves: curve_tables.curves,
        zones: curve_tables.zones,
        gaps: curve_tables.gaps,
        drivers: curve_tables.drivers,
        signals,
        winback: gone.winback,
        movement: gone.movement,
        reason_mix: gone.reason_mix,
        leavers_in_window: gone.leavers_in_window,
        leavers: gone.leavers,
        nps,
        ladder,
        loyalty_kinds,
        migration: None,
        offer_summary,
        economics,
        survival: curves_km.table()?,
        sbg,
        churn,
    })
}

/// The churn classifiers trained before T, or None when the history cannot train one
/// (loyalty then comes from the Kaplan-Meier curves alone).
fn train_churn_model(v: &Validated, cfg: &RunConfig) -> Result<Option<TrainedChurn>> {
    match train_churn(v, &cfg.churn, &cfg.model) {
        Ok(trained) => Ok(Some(trained)),
        Err(e) if e.is_untrainable() => {
            warn!("no churn classifier ({e}); loyalty comes from the Kaplan-Meier curves alone");
            Ok(None)
        }
        Err(e) => Err(e).during("fitting the churn model"),
    }
}

/// CLV from the churn scores where there are any, then `loyalty`, `p_churn_<h>m`,
/// `churn_model` and `churn_reasons` for every customer.
fn with_churn(
    mut customers: DataFrame,
    churn: Option<&ChurnFit>,
    params: &FeatureParams,
    curves_km: &SurvivalCurves,
) -> Result<DataFrame> {
    let h = params.churn_horizon_months;
    // Every customer scored, in the table's order (the common case): CLV and the
    // placement below take the scores as they are (CLV and survival below add columns,
    // never reorder rows).
    let in_order = match churn {
        Some(fit) => fit.scores.column(c::CUSTOMER_ID)?.equals(customers.column(c::CUSTOMER_ID)?),
        None => false,
    };
    if let Some(fit) = churn {
        let p = fit.scores.column(&n::p_churn(h))?.f64()?;
        let map: HashMap<i64, f64>;
        let p_churn = if in_order {
            ChurnProbabilities::InRowOrder(p)
        } else {
            let ids = fit.scores.column(c::CUSTOMER_ID)?.i64()?;
            map = ids.iter().zip(p.iter()).filter_map(|(id, p)| Some((id?, p?))).collect();
            ChurnProbabilities::ById(&map)
        };
        let model = loyalty_features::ChurnScores { horizon_months: h, p_churn, fallback: curves_km };
        loyalty_features::with_survival(&mut customers, params, &model).during("CLV from the churn scores")?;
    }
    let survival = n::survival_at(h);
    let customers = customers
        .lazy()
        .with_columns([
            col(survival.as_str()).alias(n::LOYALTY),
            (lit(1.0) - col(survival.as_str())).alias(n::p_churn(h).as_str()),
        ])
        .collect()?;
    place_scores(customers, churn, in_order)
}

/// The churn model and reasons of each scored customer, placed by customer_id (no
/// join: it would copy every column of the table). `in_order`: the scores are every
/// customer's, in the table's order.
fn place_scores(mut customers: DataFrame, churn: Option<&ChurnFit>, in_order: bool) -> Result<DataFrame> {
    let Some(fit) = churn else {
        return Ok(customers.lazy().with_columns([kaplan_meier().alias(n::CHURN_MODEL)]).collect()?);
    };
    let scored = fit.scores.select([n::CHURN_MODEL, n::CHURN_REASONS])?;
    // In order: the columns as they are, where a placement would copy the reasons
    // (0.5 GB at 10M customers).
    let placed = if in_order {
        scored
    } else {
        let index: HashMap<i64, IdxSize> = fit
            .scores
            .column(c::CUSTOMER_ID)?
            .i64()?
            .iter()
            .enumerate()
            .filter_map(|(i, id)| Some((id?, i as IdxSize)))
            .collect();
        let at: IdxCa = customers
            .column(c::CUSTOMER_ID)?
            .i64()?
            .iter()
            .map(|id| id.and_then(|id| index.get(&id).copied()))
            .collect();
        scored.take(&at)?
    };
    customers.hstack_mut(placed.columns())?;
    Ok(customers.lazy().with_column(col(n::CHURN_MODEL).fill_null(kaplan_meier())).collect()?)
}

/// `customers` with the columns among `names` that were set aside back.
fn bring_back(customers: DataFrame, spilled: Option<&mut crate::spill::Spilled>, names: &[&str]) -> Result<DataFrame> {
    match spilled {
        Some(spilled) => spilled.bring_back(customers, names),
        None => Ok(customers),
    }
}

/// The churn model of a customer that no model scored.
fn kaplan_meier() -> Expr {
    loyalty_contract::labels::label("kaplan_meier", &loyalty_contract::labels::labels(&n::CHURN_MODELS))
}
