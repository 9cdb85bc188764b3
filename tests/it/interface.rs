//! The user-facing surface: settings resolved the same way by every subcommand, exit
//! codes, and the texts users read (snapshots: a change is a reviewed diff).

use std::fs;
use std::process::Command;

use polars::prelude::*;

use crate::{bin, loyalty, p, stderr, stdout};

fn parquet(path: &std::path::Path) -> DataFrame {
    LazyFrame::scan_parquet(PlRefPath::new(p(path)), Default::default()).unwrap().collect().unwrap()
}

/// The churn scores of the classifier rows, by customer.
fn classifier_scores(df: &DataFrame, column: &str) -> Vec<(i64, f64)> {
    let df = df
        .clone()
        .lazy()
        .filter(col("churn_model").eq(lit("classifier")))
        .select([col("customer_id"), col(column)])
        .sort(["customer_id"], Default::default())
        .collect()
        .unwrap();
    let ids = df.column("customer_id").unwrap().i64().unwrap().clone();
    let p = df.column(column).unwrap().f64().unwrap().clone();
    ids.iter().zip(p.iter()).map(|(i, p)| (i.unwrap(), p.unwrap())).collect()
}

#[test]
fn churn_train_honours_the_config_and_trains_the_model_run_trains() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let o = loyalty(&["gen", "--out", p(&data), "--customers", "3000", "--months", "24", "--seed", "8"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let config = tmp.path().join("c.toml");
    fs::write(&config, "[model]\nchurn_horizon_months = 3\nmargin_rate = 0.3\n[churn]\nclassifier = \"logistic\"\n")
        .unwrap();
    let out = tmp.path().join("out");
    let o = loyalty(&["run", "--data", p(&data), "--out", p(&out), "--config", p(&config)]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let scores = tmp.path().join("scores.parquet");
    let o = loyalty(&["churn", "train", "--data", p(&data), "--config", p(&config), "--out", p(&scores)]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stdout(&o).contains("logistic regression (L2)"), "{}", stdout(&o));
    // The horizon of the file names the column, and the same settings train the same
    // model: the same customers get the same scores. The run's p_churn is 1 - S(h)
    // with S(h) = (1 - p)^(h/h) from its CLV survival, which can differ from p in
    // the last bit (3e-16 seen), hence the tolerance.
    let from_run = classifier_scores(&parquet(&out.join("customers.parquet")), "p_churn_3m");
    let from_train = classifier_scores(&parquet(&scores), "p_churn_3m");
    assert!(from_run.len() > 500, "{}", from_run.len());
    assert_eq!(from_run.len(), from_train.len());
    for ((a, pa), (b, pb)) in from_run.iter().zip(&from_train) {
        assert_eq!(a, b);
        assert!((pa - pb).abs() < 1e-12, "customer {a}: {pa} vs {pb}");
    }
}

#[test]
fn a_bad_setting_exits_1_in_every_subcommand() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let o = loyalty(&["gen", "--out", p(&data), "--customers", "300", "--months", "6", "--seed", "2"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let bad = tmp.path().join("bad.toml");
    fs::write(&bad, "[model]\nmargin_rate = 1.5\n").unwrap();
    let out = tmp.path().join("out");
    let cases: Vec<Vec<&str>> = vec![
        vec!["fit", "km", "--data", p(&data), "--by", "shoe_size"],
        vec!["run", "--data", p(&data), "--out", p(&out), "--config", p(&bad)],
        vec!["features", "--data", p(&data), "--out", p(&out), "--config", p(&bad)],
        vec!["churn", "train", "--data", p(&data), "--config", p(&bad)],
        vec!["run", "--data", p(&data), "--out", p(&out), "--margin-rate", "2"],
        vec!["gen", "--out", p(&out), "--months", "0"],
        vec!["fit", "sbg", "--survivors", "1000,abc"],
    ];
    for args in cases {
        let o = loyalty(&args);
        assert_eq!(o.status.code(), Some(1), "{args:?}: {}", stderr(&o));
        assert!(!out.exists(), "{args:?} wrote something");
    }
    // What clap cannot parse is a usage error.
    let o = loyalty(&["fit", "km", "--data", p(&data), "--no-such-flag"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
}

/// `loyalty ARGS --help`, at a fixed width.
fn help(args: &[&str]) -> String {
    let o = Command::new(bin()).args(args).arg("--help").env("COLUMNS", "100").output().unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    stdout(&o)
}

#[test]
fn help_texts() {
    for args in [
        &[][..],
        &["run"],
        &["features"],
        &["churn", "train"],
        &["churn", "evaluate"],
        &["gen"],
        &["fit", "bgnbd"],
        &["fit", "km"],
        &["validate"],
    ] {
        let name = if args.is_empty() { "loyalty".to_string() } else { format!("loyalty {}", args.join(" ")) };
        insta::assert_snapshot!(name.replace(' ', "_"), help(args));
    }
}

#[test]
fn validation_report_text() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let o = loyalty(&["gen", "--out", p(&data), "--customers", "200", "--months", "3", "--seed", "4"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    // Two broken rules: a negative charge and a bill for a customer who does not exist.
    let billing = data.join("billing");
    let first = fs::read_dir(&billing).unwrap().map(|e| e.unwrap().path()).min().unwrap();
    let mut df = parquet(&first);
    let charge = df.column("total_charge").unwrap().f64().unwrap().clone();
    let broken: Float64Chunked = charge.iter().enumerate().map(|(i, v)| if i < 2 { Some(-5.0) } else { v }).collect();
    df.with_column(broken.into_series().with_name("total_charge".into()).into_column()).unwrap();
    let mut f = fs::File::create(&first).unwrap();
    ParquetWriter::new(&mut f).finish(&mut df).unwrap();
    let o = loyalty(&["validate", "--data", p(&data)]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let text = stderr(&o).replace(p(&data), "[DATA]");
    insta::assert_snapshot!("validation_report", text);
}
