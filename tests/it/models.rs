//! `loyalty import cdnow` and `loyalty fit` on the real CDNOW log: the published
//! summary rebuilt from the raw purchases, and the published fits reproduced.

use serde_json::Value;

use crate::{loyalty, p, repo_root, stderr, stdout};

/// Equal to `digits` significant digits.
fn sig(got: f64, published: f64, digits: i32) -> bool {
    let scale = 10f64.powi(published.abs().log10().floor() as i32 - digits + 1);
    (got - published).abs() <= 0.5 * scale + 1e-12
}

fn fit_json(model: &str, data: &std::path::Path, extra: &[&str]) -> Value {
    let mut args = vec![
        "fit",
        model,
        "--data",
        p(data),
        "--calibration-end",
        "1997-09-30",
        "--period",
        "week",
        "--format",
        "json",
    ];
    args.extend_from_slice(extra);
    let o = loyalty(&args);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    serde_json::from_str(&stdout(&o)).expect("json")
}

#[test]
fn cdnow_sample_rebuilds_the_published_summary_and_fits() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("cdnow");
    let input = repo_root().join("data/external/CDNOW_sample.txt");
    let o = loyalty(&["import", "cdnow", "--input", p(&input), "--out", p(&data)]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));

    // BG/NBD, with the per-customer summary written next to it.
    let summary = dir.path().join("summary.csv");
    let j = fit_json("bgnbd", &data, &["--horizon", "39", "--out", p(&summary)]);
    let par = |j: &Value, k: &str| j["params"][k].as_f64().unwrap();
    assert_eq!(j["customers"], 2357.0);
    // Fader, Hardie & Lee (2005): r = 0.243, alpha = 4.414, a = 0.793, b = 2.426, LL = -9582.4
    assert!(sig(par(&j, "r"), 0.243, 3) && sig(par(&j, "alpha"), 4.41, 3), "{j}");
    assert!(sig(par(&j, "a"), 0.793, 3) && sig(par(&j, "b"), 2.43, 3), "{j}");
    assert!(sig(j["log_likelihood"].as_f64().unwrap(), -9582.4, 5), "{j}");
    assert!(j["std_errors"]["r"].as_f64().unwrap() > 0.0);

    // The summary equals the published cdnow_customers_summary_with_transactions.csv
    // (ID, x, t_x, T, zbar; rounded to 2 decimals there).
    let published =
        std::fs::read_to_string(repo_root().join("data/external/cdnow_customers_summary_with_transactions.csv"))
            .unwrap();
    let ours = std::fs::read_to_string(&summary).unwrap();
    let header: Vec<&str> = ours.lines().next().unwrap().split(',').collect();
    let at = |name: &str| header.iter().position(|h| *h == name).unwrap();
    let ours: Vec<Vec<String>> = ours.lines().skip(1).map(|l| l.split(',').map(String::from).collect()).collect();
    let published: Vec<Vec<f64>> =
        published.lines().skip(1).map(|l| l.split(',').map(|v| v.parse().unwrap()).collect()).collect();
    assert_eq!(ours.len(), published.len());
    for (row, want) in ours.iter().zip(&published) {
        let get = |name: &str| row[at(name)].parse::<f64>().unwrap_or(0.0);
        assert_eq!(get("customer_id"), want[0]);
        assert_eq!(get("x"), want[1], "customer {}", want[0]);
        for (name, w) in [("t_x", want[2]), ("T", want[3]), ("mean_value", want[4])] {
            assert!((get(name) - w).abs() <= 0.005 + 1e-9, "customer {} {name}: {} vs {w}", want[0], get(name));
        }
    }
    // FHL 2005: customer 1 (x = 2, t_x = 30.43, T = 38.86) is expected to buy 1.226 times in 39 weeks.
    let e: f64 = ours[0][at("expected_transactions_39")].parse().unwrap();
    assert!(sig(e, 1.226, 3), "{e}");

    let j = fit_json("pareto-nbd", &data, &[]);
    // Published: r = 0.553, alpha = 10.58, s = 0.606, beta = 11.67, LL = -9595.0
    assert!(sig(par(&j, "r"), 0.553, 3) && sig(par(&j, "alpha"), 10.6, 3), "{j}");
    assert!(sig(par(&j, "s"), 0.606, 3) && sig(par(&j, "beta"), 11.7, 3), "{j}");
    assert!(sig(j["log_likelihood"].as_f64().unwrap(), -9595.0, 5), "{j}");

    let j = fit_json("gamma-gamma", &data, &[]);
    // Fader & Hardie (2013): p = 6.25, q = 3.74, gamma = 15.44 on the 946 repeat buyers
    assert_eq!(j["customers"], 946.0);
    assert!(sig(par(&j, "p"), 6.25, 3) && sig(par(&j, "q"), 3.74, 3) && sig(par(&j, "gamma"), 15.4, 3), "{j}");
}

#[test]
fn sbg_from_survivor_counts_reproduces_fader_hardie_2007() {
    let o = loyalty(&["fit", "sbg", "--survivors", "1000,869,743,653,593,551,517,491", "--format", "json"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let j: Value = serde_json::from_str(&stdout(&o)).unwrap();
    // High-end customers: alpha = 0.668, beta = 3.806, LL = -1611.2
    assert!(sig(j["params"]["alpha"].as_f64().unwrap(), 0.668, 3), "{j}");
    assert!(sig(j["params"]["beta"].as_f64().unwrap(), 3.81, 3), "{j}");
    assert!(sig(j["log_likelihood"].as_f64().unwrap(), -1611.2, 5), "{j}");
    assert!(j["derl"]["value"].as_f64().unwrap() > 1.0);
    let o = loyalty(&["fit", "sbg", "--survivors", "1000,900,950"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("survivors rise"), "{}", stderr(&o));
}

#[test]
fn malformed_cdnow_is_refused_with_line_and_field_and_leaves_the_output_alone() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("cdnow");
    let good = dir.path().join("good.txt");
    std::fs::write(&good, " 00001 0001 19970101 1 11.77\n 00002 0002 19970102 2 20.00\n").unwrap();
    let o = loyalty(&["import", "cdnow", "--input", p(&good), "--out", p(&data)]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let before = std::fs::read(data.join("topups.parquet")).unwrap();
    let bad = dir.path().join("bad.txt");
    std::fs::write(&bad, " 00001 0001 19970101 1 11.77\n 00002 0002 19970231 2 20.00\n").unwrap();
    let o = loyalty(&["import", "cdnow", "--input", p(&bad), "--out", p(&data)]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(err.contains("bad.txt:2: field `date`") && err.contains("19970231"), "{err}");
    assert_eq!(std::fs::read(data.join("topups.parquet")).unwrap(), before);
}
