//! The pipeline in-process: a generated dataset, a run into a temporary folder, and
//! assertions on what `run` returns (no binary spawned).

use std::path::Path;

use loyalty_contract::reads::Source;
use loyalty_features::names as n;
use loyalty_pipeline::settings::Classifier;
use loyalty_pipeline::{DataOptions, EngineChoice, Overrides, PipelineError, Quiet, RunRequest, resolve};
use polars::prelude::*;

fn generate(dir: &Path, customers: usize, months: u32) {
    let params = loyalty_synth::GenParams { customers, months, seed: 5, ..Default::default() };
    loyalty_pipeline::generate::generate(params, dir, &|_| {}).unwrap();
}

fn request(data: &Path, out: &Path, config: &str) -> RunRequest {
    let file = out.with_extension("toml");
    std::fs::write(&file, config).unwrap();
    RunRequest {
        data: DataOptions::strict(data),
        out: out.to_path_buf(),
        config_file: Some(file.clone()),
        settings: resolve(Some(&file), &Overrides::default()).unwrap(),
        engine: EngineChoice::Local,
        command_line: vec!["in-process".into()],
    }
}

fn parquet(path: &Path) -> DataFrame {
    LazyFrame::scan_parquet(PlRefPath::new(path.to_str().unwrap()), Default::default()).unwrap().collect().unwrap()
}

fn floats(df: &DataFrame, name: &str) -> Vec<f64> {
    df.column(name).unwrap().f64().unwrap().iter().map(|v| v.unwrap()).collect()
}

#[test]
fn a_run_returns_its_outputs_and_writes_them() {
    let tmp = tempfile::tempdir().unwrap();
    let (data, out) = (tmp.path().join("data"), tmp.path().join("out"));
    generate(&data, 3_000, 24);
    let req = request(&data, &out, "[churn]\nclassifier = \"logistic\"\n[model]\nchurn_horizon_months = 3\n");
    let outcome = loyalty_pipeline::run(req, &mut Quiet).unwrap();
    let o = &outcome.outputs;

    // T defaults to the end of the last billed month; the horizon came from the file.
    assert_eq!(outcome.manifest.as_of, "2024-12-31");
    assert_eq!(outcome.manifest.active_customers_at_as_of, o.customers.height());
    assert!(o.customers.height() > 1_000, "{}", o.customers.height());
    assert_eq!(o.segments.height(), 8, "eight value segments");
    // customers.parquet has every column: those in memory, and those that waited on disk
    // (the features, scores and churn reasons), on the same customers' rows.
    let written = parquet(&outcome.target.join("customers.parquet"));
    let loyalty = floats(&written, n::LOYALTY);
    let p = floats(&written, &n::p_churn(3));
    assert!(loyalty.iter().zip(&p).all(|(l, p)| (l + p - 1.0).abs() < 1e-12 && (0.0..=1.0).contains(l)));
    assert_eq!(written.height(), o.customers.height());
    assert!(written.width() > o.customers.width() && written.column(n::CHURN_REASONS).is_ok());
    for name in o.customers.get_column_names() {
        let (a, b) = (written.column(name).unwrap(), o.customers.column(name).unwrap());
        assert!(a.equals_missing(b), "{name} differs in customers.parquet");
    }

    // The churn model scored with the configured classifier, and says so.
    let fit = o.churn.as_ref().expect("24 months are enough to train");
    assert_eq!(fit.report.classifier, Classifier::Logistic);
    assert_eq!(fit.report.horizon_months, 3);
    let postpaid = fit.report.plan(loyalty_pipeline::churn::Plan::Postpaid).expect("a postpaid classifier");
    assert_eq!(postpaid.scoring_model, "logistic regression (L2)");
    let auc = postpaid.scoring_metrics().unwrap().roc_auc;
    assert!(auc > 0.55, "out-of-time AUC {auc}");
    let html = std::fs::read_to_string(outcome.target.join("report.html")).unwrap();
    assert!(
        html.contains(&format!(
            "postpaid customers: logistic regression (L2), as configured, trained on earlier snapshots and tested out of time at {}: ROC AUC {auc:.3}",
            fit.report.test_snapshot
        )),
        "the report quotes the scoring model's AUC"
    );

    // The stages ran in the documented order, and every file is in the folder.
    let stages: Vec<&str> = outcome.manifest.stages.iter().map(|s| s.stage).collect();
    assert_eq!(stages, loyalty_pipeline::run::STAGES);
    for file in ["customers.parquet", "segments.csv", "model_quality.json", "run.json", "report.html"] {
        assert!(outcome.target.join(file).is_file(), "{file}");
    }
}

#[test]
fn a_short_history_runs_without_a_classifier() {
    let tmp = tempfile::tempdir().unwrap();
    let (data, out) = (tmp.path().join("data"), tmp.path().join("out"));
    generate(&data, 800, 6);
    let outcome = loyalty_pipeline::run(request(&data, &out, ""), &mut Quiet).unwrap();
    assert!(outcome.outputs.churn.is_none());
    let customers = parquet(&outcome.target.join("customers.parquet"));
    assert_eq!(customers.height(), outcome.outputs.customers.height());
    let models = customers.column(n::CHURN_MODEL).unwrap().str().unwrap().clone();
    assert!(models.iter().all(|m| m == Some("kaplan_meier")));
    // The reason is a typed error the caller can tell apart.
    let v = loyalty_pipeline::dataset::load_validated(&DataOptions::strict(&data)).unwrap();
    let cfg = resolve(None, &Overrides { as_of: chrono::NaiveDate::from_ymd_opt(2023, 6, 30), ..Default::default() })
        .unwrap();
    let err = loyalty_pipeline::churn::fit_churn(&v, &cfg.churn, &cfg.model, None).err().unwrap();
    assert!(matches!(err, PipelineError::HistoryTooShort { horizon: 6, .. }), "{err}");
    assert!(err.is_bad_input());
}

#[test]
fn the_first_bill_month_is_the_validations_and_the_scans() {
    // The churn dates and the survival curves start there; strict validation finds it
    // on its pass over the bills, so they need not scan them for it.
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    generate(&data, 500, 8);
    let v = loyalty_pipeline::dataset::load_validated(&DataOptions::strict(&data)).unwrap();
    let first = v.billing.as_ref().and_then(|b| b.first_month).expect("the validation's billing summary");
    let scan = v.tables[&loyalty_contract::Table::Billing].clone().select([col("bill_month").min()]).collect().unwrap();
    let scanned = scan.column("bill_month").unwrap().date().unwrap().as_date_iter().next().flatten();
    assert_eq!(Some(first), scanned);
    assert_eq!(loyalty_pipeline::dataset::first_bill_month(&v).unwrap(), first);
}

#[test]
fn a_bad_setting_is_the_users_fault_and_nothing_is_written() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("c.toml");
    std::fs::write(&file, "[segments]\nsplit = \"thirds\"\n").unwrap();
    let err = resolve(Some(&file), &Overrides::default()).err().unwrap();
    assert!(matches!(err, PipelineError::Settings(_)) && err.is_bad_input(), "{err}");
    assert!(err.to_string().contains("segments.split"), "{err}");
}

/// `a` and `b` (sorted by customer_id) equal: floats within `tol` relative, the rest exactly.
fn assert_same_customers(a: &DataFrame, b: &DataFrame, what: &str, tol: f64) {
    let sort = |df: &DataFrame| df.sort(["customer_id"], SortMultipleOptions::default()).unwrap();
    let (a, b) = (sort(a), sort(b));
    assert_eq!(a.get_column_names(), b.get_column_names(), "{what}");
    assert_eq!(a.height(), b.height(), "{what}");
    for (x, y) in a.columns().iter().zip(b.columns()) {
        if x.dtype().is_float() {
            let (x, y) = (x.f64().unwrap(), y.f64().unwrap());
            for (i, (u, v)) in x.iter().zip(y.iter()).enumerate() {
                match (u, v) {
                    (Some(u), Some(v)) => {
                        assert!((u - v).abs() <= tol * (1.0 + u.abs()), "{what}: {} row {i}: {u} vs {v}", x.name())
                    }
                    (u, v) => assert_eq!(u.is_some(), v.is_some(), "{what}: {} row {i}", x.name()),
                }
            }
        } else {
            assert!(x.as_materialized_series().equals_missing(y.as_materialized_series()), "{what}: {}", x.name());
        }
    }
}

#[test]
fn runs_in_customer_partitions_give_the_outputs_of_a_run_at_once() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    generate(&data, 3_000, 24);
    let run = |name: &str, per_partition: usize| {
        let out = tmp.path().join(name);
        let config = format!(
            "[churn]\nclassifier = \"logistic\"\n[model]\nchurn_horizon_months = 3\ncustomers_per_partition = {per_partition}\n"
        );
        loyalty_pipeline::run(request(&data, &out, &config), &mut Quiet).unwrap()
    };
    // At once: no copy, every pass reads the input files.
    let at_once = run("at-once", 0);
    // One partition, reading a one-bucket copy; 3 and 8 partitions: each reads its
    // bucket of a scratch copy; the model's finer top-up partitions read a quarter of a
    // bucket.
    for per_partition in [1_000_000, 1_000, 400] {
        let parts = run(&format!("parts-{per_partition}"), per_partition);
        let what = format!("{per_partition} customers per partition");
        assert_same_customers(&at_once.outputs.customers, &parts.outputs.customers, &what, 1e-9);
        // customers.parquet: the table in memory and the columns that waited on disk
        let written = |out: &loyalty_pipeline::RunOutcome| parquet(&out.target.join("customers.parquet"));
        assert_same_customers(&written(&at_once), &written(&parts), &what, 1e-9);
        assert!(at_once.outputs.segments.equals_missing(&parts.outputs.segments), "{what}: segments");
        assert!(at_once.outputs.curves.equals_missing(&parts.outputs.curves), "{what}: curves");
        // The offers are written a partition of customers at a time; their summary adds
        // up each partition's counts and sums.
        let offers = |out: &loyalty_pipeline::RunOutcome| parquet(&out.target.join("offers.parquet"));
        let (whole, chunked) = (offers(&at_once), offers(&parts));
        assert!(whole.height() > 3_000, "{} offers", whole.height());
        assert!(whole.equals_missing(&chunked), "{what}: offers.parquet");
        let (a, b) = (&at_once.outputs.offer_summary, &parts.outputs.offer_summary);
        assert_eq!(a.height(), b.height(), "{what}: offer summary");
        for name in ["value_segment", "service", "customers_offered", "as_best_offer"] {
            assert!(a.column(name).unwrap().equals_missing(b.column(name).unwrap()), "{what}: offer summary {name}");
        }
        for name in ["expected_monthly_margin_total", "mean_p_adopt"] {
            assert_eq!(floats(a, name).len(), floats(b, name).len());
            for (u, v) in floats(a, name).iter().zip(floats(b, name)) {
                assert!((u - v).abs() <= 1e-9 * (1.0 + u.abs()), "{what}: offer summary {name}: {u} vs {v}");
            }
        }
        if per_partition == 1_000_000 {
            assert_input_decoded_at_most_twice(&parts);
        }
    }
    // Each input table is decoded at most twice: validation's first pass writes the
    // bucket copy, and the partitions read the copy. (The churn model's sample is kept
    // to a bucket's share, as it is on a large base: on a small one it is every
    // customer, read from the input.)
    let decoded = |out: &loyalty_pipeline::RunOutcome| out.manifest.inputs.decoded.clone();
    let config = "[churn]\nclassifier = \"logistic\"\nmax_train_rows = 2000\n[model]\ncustomers_per_partition = 1000\n";
    let sampled = loyalty_pipeline::run(request(&data, &tmp.path().join("decodes"), config), &mut Quiet).unwrap();
    assert_input_decoded_at_most_twice(&sampled);
    assert!(decoded(&at_once).iter().all(|d| d.source == Source::Input && d.rows_decoded > 0));
    // The scratch copies are gone: only the datasets, outputs and their config files.
    let left: Vec<String> = std::fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.contains(".buckets-"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

/// Validation decodes each input table once and writes the copy that every later
/// pass reads: no input table is decoded more than twice, and the copy is read.
fn assert_input_decoded_at_most_twice(out: &loyalty_pipeline::RunOutcome) {
    let decoded = &out.manifest.inputs.decoded;
    for d in decoded {
        match d.source {
            Source::Input => assert!(d.full_decodes.unwrap() <= 2.0, "{d:?}"),
            Source::BucketCopy => assert!(d.rows_decoded > 0, "{d:?}"),
        }
    }
    assert!(decoded.iter().any(|d| d.source == Source::BucketCopy), "{decoded:?}");
}

/// Rows that validation sets aside (lenient) are not in the bucket copy the
/// partitions read, though validation's first pass wrote them into it.
#[test]
fn set_aside_rows_stay_out_of_the_partitions() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    generate(&data, 3_000, 24);
    // Every tenth bill gets a negative charge: a row rule that sets the bill aside.
    let billing = loyalty_io::locate_table(&data, loyalty_contract::Table::Billing).unwrap().unwrap();
    let bills = loyalty_io::scan_files(&loyalty_io::list_files(&billing).unwrap(), false).unwrap();
    let negative = col("customer_id").cast(DataType::Int64) % lit(10i64);
    let mut bad = bills
        .with_column(when(negative.eq(lit(3i64))).then(lit(-5.0)).otherwise(col("total_charge")).alias("total_charge"))
        .collect()
        .unwrap();
    match billing.is_dir() {
        true => std::fs::remove_dir_all(&billing).unwrap(),
        false => std::fs::remove_file(&billing).unwrap(),
    }
    ParquetWriter::new(std::fs::File::create(data.join("billing.parquet")).unwrap()).finish(&mut bad).unwrap();
    let run = |name: &str, per_partition: usize| {
        let out = tmp.path().join(name);
        let config = format!("[model]\nchurn_horizon_months = 3\ncustomers_per_partition = {per_partition}\n");
        let mut req = request(&data, &out, &config);
        req.data.lenient = true;
        loyalty_pipeline::run(req, &mut Quiet).unwrap()
    };
    let at_once = run("at-once", 0);
    assert!(at_once.manifest.rows_rejected > 1_000, "{}", at_once.manifest.rows_rejected);
    // One bucket (the whole table copied again from its clean rows) and three.
    for per_partition in [1_000_000, 1_000] {
        let parts = run(&format!("parts-{per_partition}"), per_partition);
        assert_eq!(at_once.manifest.rows_rejected, parts.manifest.rows_rejected);
        let what = format!("lenient, {per_partition} customers per partition");
        assert_same_customers(&at_once.outputs.customers, &parts.outputs.customers, &what, 1e-9);
    }
}
