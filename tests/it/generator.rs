//! `loyalty gen`: deterministic, contract-following, and faithful to its ground truth.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;
use std::sync::OnceLock;

use polars::prelude::*;

use crate::{loyalty, p, stderr};

fn gen_into(dir: &Path, extra: &[&str]) {
    let mut args = vec!["gen", "--out", p(dir)];
    args.extend_from_slice(extra);
    let o = loyalty(&args);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
}

fn files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let path = e.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                out.insert(path.strip_prefix(dir).unwrap().display().to_string(), fs::read(&path).unwrap());
            }
        }
    }
    out
}

#[test]
fn same_seed_same_bytes_other_seed_other_data() {
    let tmp = tempfile::tempdir().unwrap();
    let small = ["--customers", "3000", "--months", "12", "--chunk-size", "700"];
    let (a, b, c) = (tmp.path().join("a"), tmp.path().join("b"), tmp.path().join("c"));
    gen_into(&a, &[&small[..], &["--seed", "5"]].concat());
    gen_into(&b, &[&small[..], &["--seed", "5"]].concat());
    gen_into(&c, &[&small[..], &["--seed", "6"]].concat());
    let (fa, fb, fc) = (files(&a), files(&b), files(&c));
    assert!(fa.contains_key("customers.parquet") && fa.contains_key("billing/part-00004.parquet"), "{:?}", fa.keys());
    assert_eq!(fa.keys().collect::<Vec<_>>(), fb.keys().collect::<Vec<_>>());
    for (name, bytes) in &fa {
        assert!(bytes == &fb[name], "{name} differs between two runs with the same seed");
    }
    assert_ne!(fa["customers.parquet"], fc["customers.parquet"]);
}

#[test]
fn generated_datasets_pass_strict_validation_flat_and_hive() {
    let tmp = tempfile::tempdir().unwrap();
    for hive in [false, true] {
        let dir = tmp.path().join(if hive { "hive" } else { "flat" });
        let mut args = vec!["--customers", "4000", "--months", "6", "--start", "2024-01-01"];
        if hive {
            args.push("--hive");
        }
        gen_into(&dir, &args);
        if hive {
            assert!(dir.join("billing/bill_month=2024-06-01/part-00000.parquet").exists());
        }
        let o = loyalty(&["validate", "--data", p(&dir), "--format", "json"]);
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        let s: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        assert_eq!(s["customers"], 4000);
        assert_eq!(s["billing"]["months"], 6);
        assert_eq!(s["billing"]["first_month"], "2024-01-01");
        assert_eq!(s["tables"].as_array().unwrap().len(), 9, "every table generated");
    }
}

/// One generated dataset shared by the ground-truth tests (60k customers, 24 months).
fn truth_dataset() -> &'static Path {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| {
        let tmp = tempfile::tempdir().unwrap();
        gen_into(&tmp.path().join("d"), &["--customers", "60000", "--months", "24", "--seed", "11"]);
        tmp
    })
    .path()
    .join("d")
    .leak()
}

fn read(path: &Path) -> LazyFrame {
    LazyFrame::scan_parquet(PlRefPath::new(p(path)), Default::default()).unwrap()
}

#[test]
fn churn_matches_the_true_hazards_in_every_cell() {
    let d = truth_dataset();
    // Observed churns vs the sum of the true monthly hazards over each customer's
    // exposure, per competition level x satisfaction: a Poisson-binomial count whose
    // variance is at most its mean.
    let cells = read(&d.join("truth/customers.parquet"))
        .group_by([col("competition_level"), col("satisfaction")])
        .agg([
            col("departure_date").is_not_null().sum().cast(DataType::Float64).alias("observed"),
            col("expected_churns").sum().alias("expected"),
            col("exposure_months").sum().cast(DataType::Float64).alias("exposure"),
        ])
        .sort(["competition_level", "satisfaction"], Default::default())
        .collect()
        .unwrap();
    assert_eq!(cells.height(), 15, "{cells}");
    let level = cells.column("competition_level").unwrap().str().unwrap().clone();
    let sat = cells.column("satisfaction").unwrap().i64().unwrap().clone();
    let obs = cells.column("observed").unwrap().f64().unwrap().clone();
    let exp = cells.column("expected").unwrap().f64().unwrap().clone();
    let expo = cells.column("exposure").unwrap().f64().unwrap().clone();
    let mut rate = BTreeMap::new();
    for i in 0..cells.height() {
        let (o, e) = (obs.get(i).unwrap(), exp.get(i).unwrap());
        let z = (o - e) / e.sqrt();
        assert!(
            z.abs() < 4.0,
            "cell {:?}/{:?}: observed {o} vs expected {e:.1} (z = {z:.2})\n{cells}",
            level.get(i),
            sat.get(i)
        );
        rate.insert((level.get(i).unwrap().to_string(), sat.get(i).unwrap()), o / expo.get(i).unwrap());
    }
    // The shape of DOMAIN.md section 5: in contested markets only the completely
    // satisfied stay; in near-monopolies even the dissatisfied stay.
    let r = |l: &str, s: i64| rate[&(l.to_string(), s)];
    assert!(
        r("high", 4) > 3.0 * r("high", 5),
        "contested: satisfied churn {} vs completely satisfied {}",
        r("high", 4),
        r("high", 5)
    );
    assert!(r("low", 1) < 2.5 * r("low", 5), "monopoly: dissatisfied churn {} vs {}", r("low", 1), r("low", 5));
    assert!(r("high", 1) > 2.0 * r("low", 1));
}

#[test]
fn postpaid_churn_dates_are_the_true_departures_and_contract_ends_spike() {
    let d = truth_dataset();
    let month = |e: Expr| e.clone().dt().year().cast(DataType::Int64) * lit(12) + e.dt().month().cast(DataType::Int64);
    let postpaid = read(&d.join("customers.parquet"))
        .join(
            read(&d.join("truth/customers.parquet")),
            [col("customer_id")],
            [col("customer_id")],
            JoinArgs::new(JoinType::Inner),
        )
        .filter(col("plan_type").eq(lit("postpaid")));
    let same = postpaid
        .clone()
        .select([(col("churn_date")
            .eq(col("departure_date"))
            .or(col("churn_date").is_null().and(col("departure_date").is_null())))
        .all(true)
        .alias("same")])
        .collect()
        .unwrap();
    assert_eq!(same.column("same").unwrap().bool().unwrap().get(0), Some(true));
    // Terms renew every contract_months; the month a term ends has a 4.0x hazard
    // against 0.3x inside the term. For 12-month contracts 1 month in 12 is an end
    // month, so end months should hold 4/12 / (4/12 + 0.3 * 11/12) = 55% of churn.
    let tenure = month(col("departure_date")) - month(col("signup_date"));
    let share = postpaid
        .filter(col("contract_months").eq(lit(12)).and(col("departure_date").is_not_null()))
        .select([(tenure.clone().gt(lit(0)).and((tenure % lit(12)).eq(lit(0))))
            .cast(DataType::Float64)
            .mean()
            .alias("end_share")])
        .collect()
        .unwrap();
    let share = share.column("end_share").unwrap().f64().unwrap().get(0).unwrap();
    assert!((0.40..0.70).contains(&share), "share of 12-month-contract churn in term-end months: {share}");
}

#[test]
fn retention_after_surveys_matches_the_true_curve() {
    let d = truth_dataset();
    // Observed: still a customer 6 months after the survey (departure after it);
    // truth: the mean of each survey's true P(retained).
    let cells = read(&d.join("truth/surveys.parquet"))
        .filter(col("observable"))
        .join(
            read(&d.join("truth/customers.parquet")).select([col("customer_id"), col("departure_date")]),
            [col("customer_id")],
            [col("customer_id")],
            JoinArgs::new(JoinType::Left),
        )
        .with_column(
            col("departure_date")
                .is_null()
                .or(col("departure_date").gt(col("survey_date").dt().offset_by(lit("6mo"))))
                .cast(DataType::Float64)
                .alias("retained"),
        )
        .group_by([col("competition_level"), col("overall")])
        .agg([len().alias("n"), col("retained").mean().alias("observed"), col("p_retained_true").mean().alias("truth")])
        .collect()
        .unwrap();
    assert_eq!(cells.height(), 15, "{cells}");
    let truth: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(d.join("truth/ground_truth.json")).unwrap()).unwrap();
    let curve = truth["satisfaction_retention_curve"].as_array().unwrap();
    assert_eq!(curve.len(), 15);
    for i in 0..cells.height() {
        let n = cells.column("n").unwrap().cast(&DataType::Float64).unwrap().f64().unwrap().get(i).unwrap();
        let o = cells.column("observed").unwrap().f64().unwrap().get(i).unwrap();
        let t = cells.column("truth").unwrap().f64().unwrap().get(i).unwrap();
        let se = (t * (1.0 - t) / n).sqrt().max(1e-3);
        assert!((o - t).abs() < 4.0 * se, "cell {i}: observed {o:.3} vs true {t:.3} (n = {n}, se = {se:.4})\n{cells}");
        // The published curve is the same mean.
        let level = cells.column("competition_level").unwrap().str().unwrap().get(i).unwrap();
        let overall = cells.column("overall").unwrap().i64().unwrap().get(i).unwrap();
        let point = curve.iter().find(|c| c["competition_level"] == level && c["overall"] == overall).unwrap();
        assert!((point["p_retained"].as_f64().unwrap() - t).abs() < 1e-9);
    }
}
