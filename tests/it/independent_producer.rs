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
        "base_movement.csv",
        "churn_reasons.csv",
        "nps.csv",
        "loyalty_ladder.csv",
        "loyalty_kinds.csv",
        "offers.parquet",
        "report.html",
    ] {
        assert!(out.join(file).exists(), "{file} missing");
    }
    let html = std::fs::read_to_string(out.join("report.html")).unwrap();
    assert!(html.contains("No churn classifier"), "the report says why there is no model");
    assert!(html.contains("fig-base-movement") && html.contains("Joiners and leavers"), "no base movement section");
    leavers_by_hand(&out);
    // NPS: the latest surveys at T of the active customers give recommend 10 (1) and 3
    // (3); 6 gave none.
    let nps = std::fs::read_to_string(out.join("nps.csv")).unwrap();
    assert!(nps.contains("all,all,2,1,0,1,0.0"), "{nps}");
}

/// The leaky bucket, churn reasons and win-back list of the fixture, counted by hand:
/// before January customers 1, 2, 3, 4 and 6; 5 signs up on 10 January (bills 51, 52,
/// 53 at a cost of 30); 4 leaves on 20 February (ported_out: controllable) after bills
/// of 41 and 42 at a cost of 24.
fn leavers_by_hand(out: &std::path::Path) {
    let movement = std::fs::read_to_string(out.join("base_movement.csv")).unwrap();
    let rows: Vec<Vec<&str>> = movement.lines().map(|l| l.split(',').collect()).collect();
    let column = |name: &str| {
        let i = rows[0].iter().position(|h| *h == name).unwrap_or_else(|| panic!("no {name}: {movement}"));
        rows[1..].iter().map(|r| r[i]).collect::<Vec<_>>()
    };
    assert_eq!(column("month"), ["2024-01-01", "2024-02-01", "2024-03-01"]);
    assert_eq!(column("opening_base"), ["5", "6", "5"]);
    assert_eq!(column("gross_adds"), ["1", "0", "0"]);
    assert_eq!(column("churners"), ["0", "1", "0"]);
    assert_eq!(column("churners_controllable"), ["0", "1", "0"]);
    assert_eq!(column("closing_base"), ["6", "5", "5"]);
    let num = |name: &str, row: usize| column(name)[row].parse::<f64>().unwrap();
    assert!((num("churn_rate", 1) - 1.0 / 6.0).abs() < 1e-12);
    assert!((num("revenue_lost", 1) - 41.5).abs() < 1e-9 && (num("margin_lost", 1) - 17.5).abs() < 1e-9);
    assert!((num("revenue_gained", 0) - 52.0).abs() < 1e-9 && (num("margin_gained", 0) - 22.0).abs() < 1e-9);
    let reasons = std::fs::read_to_string(out.join("churn_reasons.csv")).unwrap();
    assert!(reasons.contains("all,all,controllable,1,1.0"), "{reasons}");
    assert!(reasons.contains("competition_level,medium,controllable,1,1.0"), "{reasons}");
    let winback = std::fs::read_to_string(out.join("winback.csv")).unwrap();
    assert_eq!(winback.lines().count(), 2, "{winback}");
    assert!(winback.lines().nth(1).unwrap().starts_with("1,4,postpaid,south,"), "{winback}");
    assert!(winback.contains(",ported_out,controllable,"), "{winback}");
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

/// `--previous`: the run at the end of January against the run at the end of March.
/// Active at 31 January: 1-6 (4 leaves on 20 February); at 31 March: 1, 2, 3, 5, 6.
#[test]
fn movement_since_a_previous_run_counts_who_stayed_left_and_joined() {
    let data = repo_root().join("tests/fixtures/pyarrow_dataset");
    let tmp = tempfile::tempdir().unwrap();
    let (january, march) = (tmp.path().join("january"), tmp.path().join("march"));
    let o = loyalty(&["run", "--data", p(&data), "--out", p(&january), "--as-of", "2024-01-31"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let o = loyalty(&["run", "--data", p(&data), "--out", p(&march), "--previous", p(&january)]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let m = std::fs::read_to_string(march.join("migration.csv")).unwrap();
    let rows: Vec<Vec<&str>> = m.lines().skip(1).map(|l| l.split(',').collect()).collect();
    for kind in ["value_segment", "tier"] {
        let of_kind: Vec<&Vec<&str>> = rows.iter().filter(|r| r[0] == kind).collect();
        let total: i64 = of_kind.iter().map(|r| r[3].parse::<i64>().unwrap()).sum();
        assert_eq!(total, 6, "{kind}: {m}");
        let gone: Vec<&&Vec<&str>> = of_kind.iter().filter(|r| r[2] == "gone").collect();
        assert_eq!(gone.len(), 1, "{kind}: {m}");
        assert_eq!(gone[0][3], "1");
        assert!(!of_kind.iter().any(|r| r[1] == "new"), "nobody joined: {m}");
    }
    let html = std::fs::read_to_string(march.join("report.html")).unwrap();
    assert!(html.contains("5 of its 6 active customers are still active; gone since: 1; new since: 0"), "report");
    assert!(html.contains("id=\"fig-migration-value-segment\""));
    // A folder without a customers table: exit 1 naming the file and the rule, and the
    // output folder as it was.
    let before = std::fs::read(march.join("migration.csv")).unwrap();
    let o = loyalty(&["run", "--data", p(&data), "--out", p(&march), "--previous", p(tmp.path())]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(err.contains("customers.parquet") && err.contains("missing_file"), "{err}");
    assert_eq!(std::fs::read(march.join("migration.csv")).unwrap(), before);
    // Plain ids then, pseudonymised now: they would never match, so the run refuses.
    let o = std::process::Command::new(crate::bin())
        .args(["run", "--data", p(&data), "--out", p(&march), "--previous", p(&january), "--pseudonymize-ids"])
        .env("LOYALTY_PSEUDONYM_KEY", "correct horse battery staple 42")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("previous_ids"), "{}", stderr(&o));
    assert_eq!(std::fs::read(march.join("migration.csv")).unwrap(), before);
}
