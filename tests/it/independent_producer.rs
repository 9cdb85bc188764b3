//! A dataset written by pyarrow (tests/fixtures/make_pyarrow_fixture.py): hive
//! billing, Int32 ids, Float32 money, timestamp dates, extra columns, `_SUCCESS`.

use polars::prelude::*;
use serde_json::Value;

use crate::{loyalty, p, repo_root, stderr, stdout};

#[test]
fn pyarrow_dataset_validates_with_the_hand_counted_summary() {
    let data = repo_root().join("tests/fixtures/pyarrow_dataset");
    let o = loyalty(&["validate", "--data", p(&data), "--format", "json"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let s: Value = serde_json::from_str(&stdout(&o)).expect("json summary");
    assert_eq!(s["customers"], 6);
    assert_eq!(s["active_customers"], 5);
    assert_eq!(s["markets"], 3);
    assert_eq!(s["plan_mix"]["postpaid"], 4);
    assert_eq!(s["plan_mix"]["prepaid"], 2);
    assert_eq!(s["billing"]["rows"], 16);
    assert_eq!(s["billing"]["months"], 3);
    assert_eq!(s["billing"]["first_month"], "2024-01-01");
    assert_eq!(s["billing"]["last_month"], "2024-03-01");
    // Charges: 10*id + month for each billed (id, month); see the fixture script.
    // Jan: ids 1..5 -> 150 + 5*1; Feb: ids 1..6 -> 210 + 6*2; Mar: ids 1,2,3,5,6 -> 170 + 5*3.
    let total = s["billing"]["total_charge"].as_f64().unwrap();
    assert!((total - (155.0 + 222.0 + 185.0)).abs() < 1e-3, "{total}");
    assert_eq!(s["surveys"]["surveys"], 4);
    assert_eq!(s["surveys"]["customers_surveyed"], 3);
    assert_eq!(s["churn"]["churned"], 1);
    // One churn (2024-02-20) inside the billed months, over 16 customer-months.
    assert!((s["churn"]["monthly_churn_rate"].as_f64().unwrap() - 1.0 / 16.0).abs() < 1e-12);
    let tables: Vec<&str> = s["tables"].as_array().unwrap().iter().map(|t| t["table"].as_str().unwrap()).collect();
    assert_eq!(
        tables,
        [
            "markets",
            "service_catalog",
            "customers",
            "billing",
            "services",
            "topups",
            "interactions",
            "surveys",
            "referrals"
        ]
    );
}

#[test]
fn pyarrow_dataset_runs_and_writes_summary() {
    let data = repo_root().join("tests/fixtures/pyarrow_dataset");
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let o = loyalty(&["run", "--data", p(&data), "--out", p(&out)]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let s: Value = serde_json::from_str(&std::fs::read_to_string(out.join("run.json")).unwrap()).unwrap();
    assert_eq!(s["dataset"]["billing"]["rows"], 16);
    // T defaults to the end of the last billed month; customer 4 churned 2024-02-20.
    assert_eq!(s["as_of"], "2024-03-31");
    assert_eq!(s["active_customers_at_as_of"], 5);
    assert!(!out.join("rejects").exists());
    let path = out.join("customers.parquet");
    let customers = LazyFrame::scan_parquet(PlRefPath::new(p(&path)), Default::default()).unwrap().collect().unwrap();
    let ids: Vec<i64> = customers.column("customer_id").unwrap().i64().unwrap().into_no_null_iter().collect();
    assert_eq!(ids, [1, 2, 3, 5, 6]);
    for column in ["ccv", "cpv", "clv", "arpu_3m", "tenure_months", "competition_level"] {
        assert!(customers.column(column).is_ok(), "{column} missing");
    }
    // Customer 1: charges 11, 12, 13 in Jan..Mar (10 * id + month), cost 6 each.
    let arpu = customers.column("arpu_3m").unwrap().f64().unwrap().get(0).unwrap();
    assert!((arpu - 12.0).abs() < 1e-9, "{arpu}");
    let margin = customers.column("margin_monthly").unwrap().f64().unwrap().get(0).unwrap();
    assert!((margin - 6.0).abs() < 1e-9, "{margin}");
    assert!(out.join("survival.parquet").exists());
    // Segments: every customer in one of the eight, the tables beside them.
    for column in ["loyalty", "value_segment", "tier", "stage", "nps_group"] {
        assert!(customers.column(column).is_ok(), "{column} missing");
    }
    assert_eq!(customers.column("value_segment").unwrap().null_count(), 0);
    let segments = std::fs::read_to_string(out.join("segments.csv")).unwrap();
    assert_eq!(segments.lines().count(), 9, "{segments}");
    let seg_path = out.join("segments.parquet");
    let seg = LazyFrame::scan_parquet(PlRefPath::new(p(&seg_path)), Default::default()).unwrap().collect().unwrap();
    assert_eq!(seg.column("customers").unwrap().f64().unwrap().sum(), Some(5.0));
    assert_eq!(std::fs::read_to_string(out.join("tiers.csv")).unwrap().lines().count(), 5);
    assert!(s["margin_gini"].as_f64().is_some_and(|g| (-1.0..=1.0).contains(&g)), "{s}");
    // Six customers and three months: too short for an out-of-time churn model, so the
    // run says so and goes on with Kaplan-Meier; every other output is still there.
    assert_eq!(s["churn_classifier"], false, "{s}");
    let quality: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("model_quality.json")).unwrap()).unwrap();
    assert_eq!(quality["fitted"], false);
    for file in [
        "curves.csv",
        "zones.csv",
        "satisfaction_gap.csv",
        "drivers.csv",
        "winback.csv",
        "retention_economics.csv",
        "report.html",
    ] {
        assert!(out.join(file).exists(), "{file} missing");
    }
    let html = std::fs::read_to_string(out.join("report.html")).unwrap();
    assert!(html.contains("No churn classifier"), "the report says why there is no model");
}

#[test]
fn features_command_writes_one_row_per_active_customer() {
    let data = repo_root().join("tests/fixtures/pyarrow_dataset");
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("features.parquet");
    let o = loyalty(&["features", "--data", p(&data), "--as-of", "2024-02-29", "--out", p(&out)]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let df = LazyFrame::scan_parquet(PlRefPath::new(p(&out)), Default::default()).unwrap().collect().unwrap();
    // At 2024-02-29 customer 4 (churned 2024-02-20) is gone; customer 5 (signed up
    // 2024-01-10) is in; six signed up in all.
    let ids: Vec<i64> = df.column("customer_id").unwrap().i64().unwrap().into_no_null_iter().collect();
    assert_eq!(ids, [1, 2, 3, 5, 6]);
    assert!(df.column("churn_date").is_err(), "no future information in the output");
}
