//! The churn models in-process: reruns give the same bytes, each plan type gets its
//! own classifier where its churn is observed (BG/NBD where it is not), and the
//! scores at the end of the data rank the future the generator drew after it.

use std::collections::HashMap;
use std::path::Path;

use loyalty_models::churn::roc_auc;
use loyalty_pipeline::churn::{Plan, fit_churn};
use loyalty_pipeline::dataset::{default_as_of, load_validated};
use loyalty_pipeline::{DataOptions, EngineChoice, Overrides, Quiet, RunConfig, RunRequest, resolve};
use polars::prelude::*;

fn generate(dir: &Path, customers: usize, months: u32, seed: u64) {
    let params = loyalty_synth::GenParams { customers, months, seed, ..Default::default() };
    loyalty_pipeline::generate::generate(params, dir, &|_| {}).unwrap();
}

fn settings_at_t(data: &Path) -> (loyalty_contract::Validated, RunConfig) {
    let v = load_validated(&DataOptions::strict(data)).unwrap();
    let mut cfg = resolve(None, &Overrides::default()).unwrap();
    cfg.model.as_of = default_as_of(&v).unwrap();
    (v, cfg)
}

fn read(path: &Path) -> DataFrame {
    let file = std::fs::File::open(path).unwrap();
    ParquetReader::new(file).finish().unwrap()
}

/// Every file under `dir`, by its path relative to `dir`.
fn files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(files(&path).into_iter().map(|p| Path::new(path.file_name().unwrap()).join(p)));
        } else {
            out.push(Path::new(path.file_name().unwrap()).to_path_buf());
        }
    }
    out.sort();
    out
}

/// model_quality.json without its timing.
fn without_timing(path: &Path) -> serde_json::Value {
    let mut v: serde_json::Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    v.as_object_mut().unwrap().remove("wall_seconds");
    v
}

#[test]
fn two_runs_give_byte_identical_outputs() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    generate(&data, 3_000, 24, 11);
    let run = |name: &str| {
        let out = tmp.path().join(name);
        let req = RunRequest {
            data: DataOptions::strict(&data),
            out: out.clone(),
            config_file: None,
            settings: resolve(None, &Overrides::default()).unwrap(),
            engine: EngineChoice::Local,
            command_line: vec!["in-process".into()],
        };
        loyalty_pipeline::run(req, &mut Quiet).unwrap();
        out
    };
    let (a, b) = (run("a"), run("b"));
    let names = files(&a);
    assert_eq!(names, files(&b));
    assert!(names.len() > 10, "{names:?}");
    for name in &names {
        let (x, y) = (a.join(name), b.join(name));
        match name.to_str().unwrap() {
            // Timings only.
            "run.json" => {}
            "model_quality.json" => assert_eq!(without_timing(&x), without_timing(&y)),
            _ => assert!(std::fs::read(&x).unwrap() == std::fs::read(&y).unwrap(), "{} differs", name.display()),
        }
    }
}

/// A customer id -> value map of two columns of `df`.
fn by_id(df: &DataFrame, value: &str) -> HashMap<i64, Option<f64>> {
    let ids = df.column("customer_id").unwrap().i64().unwrap();
    let v = df.column(value).unwrap().cast(&DataType::Float64).unwrap();
    ids.iter().zip(v.f64().unwrap().iter()).map(|(i, v)| (i.unwrap(), v)).collect()
}

#[test]
fn each_plan_type_gets_a_classifier_and_the_scores_rank_the_future() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    generate(&data, 12_000, 24, 21);
    let (v, cfg) = settings_at_t(&data);
    let h = cfg.model.churn_horizon_months;
    let fit = fit_churn(&v, &cfg.churn, &cfg.model, None).unwrap();
    let plans: Vec<Plan> = fit.report.plans.iter().map(|p| p.plan).collect();
    assert_eq!(plans, [Plan::Postpaid, Plan::Prepaid], "prepaid churn is observed: no BG/NBD");
    assert!(fit.report.prepaid_bgnbd.is_none());

    // The future: churn recorded in the h months after T, and the true probability of it.
    let truth = read(&data.join("truth").join("customers.parquet"));
    let future = by_id(&truth, "future_churn_date");
    let ceiling = by_id(&truth, &format!("true_p_churn_{h}m"));
    // T is a month end: the horizon ends on the month end h months later.
    let t = cfg.model.as_of;
    let horizon_end = (t.succ_opt().unwrap() + chrono::Months::new(h)).pred_opt().unwrap();
    let limit = f64::from(loyalty_contract::dates::epoch_days(horizon_end));
    let customers = read(&data.join("customers.parquet"));
    let plan_of: HashMap<i64, String> = customers
        .column("customer_id")
        .unwrap()
        .i64()
        .unwrap()
        .iter()
        .zip(customers.column("plan_type").unwrap().str().unwrap().iter())
        .map(|(i, p)| (i.unwrap(), p.unwrap().to_string()))
        .collect();
    let scores = &fit.scores;
    let ids = scores.column("customer_id").unwrap().i64().unwrap();
    let p = scores.column(&format!("p_churn_{h}m")).unwrap().f64().unwrap();
    for plan in ["postpaid", "prepaid"] {
        let (mut ours, mut best, mut y) = (Vec::new(), Vec::new(), Vec::new());
        for (id, p) in ids.iter().zip(p.iter()) {
            let (id, p) = (id.unwrap(), p.unwrap());
            let Some(Some(true_p)) = ceiling.get(&id) else { continue };
            if plan_of[&id] != plan {
                continue;
            }
            ours.push(p);
            best.push(*true_p);
            y.push(f64::from(u8::from(future[&id].is_some_and(|d| d <= limit))));
        }
        let (auc, top) = (roc_auc(&ours, &y), roc_auc(&best, &y));
        eprintln!(
            "{plan}: {} customers, {} churn in the future; AUC {auc:.4}, true-hazard AUC {top:.4}",
            y.len(),
            y.iter().sum::<f64>()
        );
        assert!(y.len() > 1_000 && y.iter().sum::<f64>() > 50.0, "{plan}: {} rows", y.len());
        // Within a stated fraction of the ceiling: at least 60% of its lift over chance
        // (the true hazards hold the latent satisfaction that only sampled surveys
        // reveal; measured on this dataset: 0.693 of 0.744 postpaid, 79%; 0.719 of
        // 0.826 prepaid, 67%).
        assert!(auc - 0.5 >= 0.6 * (top - 0.5), "{plan}: AUC {auc:.4} vs ceiling {top:.4}");
    }
}

#[test]
fn prepaid_customers_fall_back_to_bgnbd_where_their_churn_is_not_observed() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    generate(&data, 3_000, 24, 31);
    // An operator that never records prepaid churn.
    let path = data.join("customers.parquet");
    let mut customers = read(&path)
        .lazy()
        .with_column(
            when(col("plan_type").eq(lit("prepaid")))
                .then(lit(NULL).cast(DataType::Date))
                .otherwise(col("churn_date"))
                .alias("churn_date"),
        )
        .with_column(
            when(col("plan_type").eq(lit("prepaid")))
                .then(lit(NULL).cast(DataType::String))
                .otherwise(col("churn_reason"))
                .alias("churn_reason"),
        )
        .collect()
        .unwrap();
    ParquetWriter::new(std::fs::File::create(&path).unwrap()).finish(&mut customers).unwrap();
    let (v, cfg) = settings_at_t(&data);
    let fit = fit_churn(&v, &cfg.churn, &cfg.model, None).unwrap();
    let plans: Vec<Plan> = fit.report.plans.iter().map(|p| p.plan).collect();
    assert_eq!(plans, [Plan::Postpaid]);
    let bg = fit.report.prepaid_bgnbd.as_ref().expect("BG/NBD scores the prepaid customers");
    assert!(bg.customers > 500, "{}", bg.customers);
    let models = fit.scores.column("churn_model").unwrap().cast(&DataType::String).unwrap();
    let models = models.str().unwrap();
    assert!(models.iter().any(|m| m == Some("bgnbd")) && models.iter().any(|m| m == Some("classifier")));
}
