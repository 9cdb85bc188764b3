//! The whole `loyalty run` on a generated dataset: every output, the report in a real
//! browser, pseudonymised ids, and earlier outputs surviving a failed run.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use polars::prelude::*;
use serde_json::Value;

use crate::{all_files, loyalty, p, repo_root, stderr};

struct Fixture {
    _tmp: tempfile::TempDir,
    data: PathBuf,
    out: PathBuf,
}

/// One generated dataset (6,000 customers, 24 months) and one plain run of it, shared.
fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let tmp = tempfile::tempdir().unwrap();
        let data = tmp.path().join("data");
        let o = loyalty(&["gen", "--out", p(&data), "--customers", "6000", "--months", "24", "--seed", "11"]);
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        let out = tmp.path().join("out");
        let config = repo_root().join("loyalty.example.toml");
        // Last month's run, for the movement since then (as a monthly job has it).
        let previous = tmp.path().join("previous");
        let o = loyalty(&["run", "--data", p(&data), "--out", p(&previous), "--as-of", "2024-11-30", "-q"]);
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        let args = ["run", "--data", p(&data), "--out", p(&out), "--config", p(&config), "--previous", p(&previous)];
        let o = loyalty(&args);
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        assert!(stderr(&o).contains("report.html"), "the run says where the report is: {}", stderr(&o));
        Fixture { _tmp: tmp, data, out }
    })
}

fn parquet(path: &Path) -> DataFrame {
    LazyFrame::scan_parquet(PlRefPath::new(p(path)), Default::default()).unwrap().collect().unwrap()
}

fn json(path: &Path) -> Value {
    serde_json::from_str(&fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn the_run_writes_every_output() {
    let f = fixture();
    for file in [
        "customers.parquet",
        "segments.parquet",
        "segments.csv",
        "tiers.parquet",
        "tiers.csv",
        "lorenz.parquet",
        "lorenz.csv",
        "curves.parquet",
        "curves.csv",
        "zones.csv",
        "satisfaction_gap.csv",
        "drivers.csv",
        "signals.csv",
        "winback.parquet",
        "winback.csv",
        "retention_economics.csv",
        "base_movement.csv",
        "churn_reasons.csv",
        "nps.csv",
        "loyalty_ladder.csv",
        "loyalty_kinds.csv",
        "offers.parquet",
        "offers_by_segment.csv",
        "migration.csv",
        "model_quality.json",
        "report.html",
        "run.json",
    ] {
        assert!(f.out.join(file).exists(), "{file} missing");
    }
    let customers = parquet(&f.out.join("customers.parquet"));
    for column in [
        "ccv",
        "cpv",
        "clv",
        "p_churn_6m",
        "loyalty",
        "value_segment",
        "tier",
        "stage",
        "sat_quadrant",
        "nps_group",
        "churn_model",
    ] {
        assert!(customers.column(column).is_ok(), "customers.parquet lacks {column}");
    }
    // p_churn and loyalty are complements; both are probabilities
    let pc = customers.column("p_churn_6m").unwrap().f64().unwrap().clone();
    let lo = customers.column("loyalty").unwrap().f64().unwrap().clone();
    for (a, b) in pc.iter().zip(lo.iter()) {
        let (a, b) = (a.unwrap(), b.unwrap());
        assert!((a + b - 1.0).abs() < 1e-12 && (0.0..=1.0).contains(&a));
    }
    // a classifier per plan type scored every customer (prepaid churn is observed)
    let models: Vec<&str> = customers.column("churn_model").unwrap().str().unwrap().iter().flatten().collect();
    assert!(models.iter().all(|m| *m == "classifier"), "{:?}", &models[..5]);

    let q = json(&f.out.join("model_quality.json"));
    let plans = q["plans"].as_array().unwrap();
    assert_eq!(plans.iter().map(|p| p["plan"].as_str().unwrap()).collect::<Vec<_>>(), ["postpaid", "prepaid"]);
    for plan in plans {
        let auc = plan["out_of_time"][1]["roc_auc"].as_f64().unwrap();
        assert!(auc > 0.55, "{}: out-of-time AUC {auc}", plan["plan"]);
        assert!(plan["roc_curve"].as_array().unwrap().len() > 5);
        // the example config picks the best candidate out of time, and names it
        let best = plan["out_of_time"].as_array().unwrap()[1..]
            .iter()
            .max_by(|a, b| a["roc_auc"].as_f64().unwrap().total_cmp(&b["roc_auc"].as_f64().unwrap()))
            .unwrap();
        assert_eq!(plan["scoring_model"], best["model"], "{}", plan["plan"]);
    }
    assert!(q["prepaid_bgnbd"].is_null());

    let run = json(&f.out.join("run.json"));
    assert_eq!(run["as_of"], "2024-12-31");
    assert!(run["command_line"].as_array().unwrap().iter().any(|a| a == "--config"));
    assert_eq!(run["config"]["model"]["churn_horizon_months"], 6);
    let files = run["inputs"]["files"].as_array().unwrap();
    assert!(files.iter().any(|f| f["path"] == "customers.parquet" && f["blake3"].as_str().unwrap().len() == 64));
    let stages: Vec<&str> = run["stages"].as_array().unwrap().iter().map(|s| s["stage"].as_str().unwrap()).collect();
    assert_eq!(
        stages,
        ["validate", "buckets", "churn model", "features", "clv", "segments", "curves", "retention", "report", "write"]
    );
    assert!(run["stages"].as_array().unwrap().iter().all(|s| s["peak_rss_mib"].as_f64().unwrap() > 1.0));
    // Every stage says what the process held when it began.
    assert!(run["stages"].as_array().unwrap().iter().all(|s| s["start_rss_mib"].as_f64().unwrap() > 1.0));

    // curves: every competition level x satisfaction level, intervals around the observed share
    let curves = parquet(&f.out.join("curves.parquet"));
    assert_eq!(curves.height(), 15, "{curves}");
    let obs = curves.column("observed_loyalty").unwrap().f64().unwrap().clone();
    let lo = curves.column("ci_low").unwrap().f64().unwrap().clone();
    let hi = curves.column("ci_high").unwrap().f64().unwrap().clone();
    for i in 0..curves.height() {
        if let (Some(o), Some(l), Some(h)) = (obs.get(i), lo.get(i), hi.get(i)) {
            assert!(l <= o && o <= h, "row {i}: {l} {o} {h}");
        }
    }
    let zones = fs::read_to_string(f.out.join("zones.csv")).unwrap();
    assert!(zones.contains("indifference"), "{zones}");
    // the win-back list is ranked by the value lost
    let wb = parquet(&f.out.join("winback.parquet"));
    assert!(wb.height() > 50, "{wb}");
    let v: Vec<f64> = wb.column("value_lost").unwrap().f64().unwrap().iter().flatten().collect();
    assert!(v.windows(2).all(|w| w[0] >= w[1]));
    // retention economics: keeping customers longer raises the value of the profitable
    // groups and lowers it where the margin is negative (the lead tier)
    let econ = CsvReadOptions::default()
        .try_into_reader_with_file_path(Some(f.out.join("retention_economics.csv")))
        .unwrap()
        .finish()
        .unwrap();
    let clv = econ.column("clv_total").unwrap().f64().unwrap().clone();
    for col in ["clv_gain_rel5", "clv_gain_pp5"] {
        let gains = econ.column(col).unwrap().f64().unwrap().clone();
        assert!(gains.iter().zip(clv.iter()).all(|(g, v)| g.unwrap() * v.unwrap() >= 0.0), "{col}: {econ}");
    }
    let all = (0..econ.height()).find(|&i| econ.column("group").unwrap().str().unwrap().get(i) == Some("all")).unwrap();
    assert!(econ.column("clv_gain_pp5").unwrap().f64().unwrap().get(all).unwrap() > 0.0);
}

const CHROMIUM_FLAGS: [&str; 9] = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
];

fn chromium() -> PathBuf {
    let path = std::env::var_os("CHROMIUM").map_or_else(|| PathBuf::from("/usr/bin/chromium"), PathBuf::from);
    assert!(path.exists(), "{} not found: `make test` installs Debian's chromium (or set CHROMIUM)", path.display());
    path
}

/// The report in headless Chromium: every figure renders with a non-empty box and
/// marks drawn in it, no script error or console error, and a screenshot is saved.
#[test]
fn the_report_renders_in_a_real_browser() {
    let f = fixture();
    let report = f.out.join("report.html");
    let html = fs::read_to_string(&report).unwrap();
    for fetch in [" src=", "href=\"http", "url(http", "<link", "@import"] {
        assert!(!html.contains(fetch), "the report would fetch something: {fetch}");
    }
    let expected = html.matches("<figure class=\"chart\"").count();
    assert!(expected >= 14, "only {expected} figures");
    for part in [
        "id=\"fig-base-movement\"",
        "id=\"fig-churn-reasons\"",
        "id=\"fig-migration-value-segment\"",
        "id=\"fig-migration-tier\"",
        "Base movement per month",
        "Churn reason classes",
        "NPS per competition level",
        "Loyalty-ladder stages",
        "Transactional against emotional loyalty",
        "Next-best offers",
        "Movement between tiers",
    ] {
        assert!(html.contains(part), "the report has no {part}");
    }
    let profile = tempfile::tempdir().unwrap();
    let url = format!("file://{}", report.display());
    let user_data = format!("--user-data-dir={}", profile.path().display());
    let o = Command::new(chromium())
        .args(CHROMIUM_FLAGS)
        .args([&user_data, "--enable-logging=stderr", "--v=0", "--virtual-time-budget=10000", "--dump-dom", &url])
        .output()
        .unwrap();
    let dom = String::from_utf8_lossy(&o.stdout);
    let log = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "chromium failed: {log}");
    let check = dom
        .split("<pre id=\"render-check\">")
        .nth(1)
        .and_then(|s| s.split("</pre>").next())
        .unwrap_or_else(|| panic!("no render check in the DOM: {log}"));
    let check: Value = serde_json::from_str(check).unwrap_or_else(|e| panic!("render check {check:?}: {e}"));
    assert_eq!(check["figures"].as_u64(), Some(expected as u64), "{check}");
    assert_eq!(check["failed"], Value::Array(vec![]), "figures that did not render: {check}");
    assert_eq!(check["errors"], Value::Array(vec![]), "script errors: {check}");
    let console: Vec<&str> = log.lines().filter(|l| l.contains("CONSOLE")).collect();
    assert!(console.is_empty(), "console messages: {console:?}");
    assert_eq!(dom.matches("data-rendered=\"yes\"").count(), expected);

    let shot = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("report.png");
    let _ = fs::remove_file(&shot);
    let o = Command::new(chromium())
        .args(CHROMIUM_FLAGS)
        .args([&user_data, "--window-size=1400,6000", &format!("--screenshot={}", shot.display()), &url])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let png = fs::read(&shot).unwrap();
    assert!(png.starts_with(b"\x89PNG") && png.len() > 50_000, "screenshot {} bytes", png.len());
    eprintln!("screenshot: {}", shot.display());
}

#[test]
fn pseudonymized_outputs_hold_no_raw_ids_and_never_the_key() {
    let f = fixture();
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("shared");
    let key = "correct horse battery staple 42";
    let run = |out: &Path, key: Option<&str>| {
        let mut cmd = Command::new(crate::bin());
        cmd.args(["run", "--data", p(&f.data), "--out", p(out), "--pseudonymize-ids"]);
        cmd.env_remove("LOYALTY_PSEUDONYM_KEY");
        if let Some(k) = key {
            cmd.env("LOYALTY_PSEUDONYM_KEY", k);
        }
        cmd.output().unwrap()
    };
    // without a key: a usage error, nothing written
    let o = run(&out, None);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("LOYALTY_PSEUDONYM_KEY"));
    assert!(!out.exists());

    let o = run(&out, Some(key));
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(!stderr(&o).contains(key) && !crate::stdout(&o).contains(key), "the key leaked into the logs");
    let customers = parquet(&out.join("customers.parquet"));
    let ids: Vec<String> =
        customers.column("customer_id").unwrap().str().unwrap().iter().flatten().map(String::from).collect();
    assert_eq!(ids.len(), customers.height());
    assert!(ids.iter().all(|id| id.len() == 17 && id.starts_with('c')), "{:?}", &ids[..3]);
    // offers.parquet is written while the run ranks them, before the other tables
    let offers = parquet(&out.join("offers.parquet"));
    let offered: Vec<&str> = offers.column("customer_id").unwrap().str().unwrap().iter().flatten().collect();
    assert!(!offered.is_empty() && offered.len() == offers.height());
    let known: std::collections::HashSet<&str> = ids.iter().map(String::as_str).collect();
    assert!(offered.iter().all(|id| known.contains(id)), "offers for customers not in the table");
    // the raw ids of the plain run's win-back list appear nowhere in the shared outputs
    let plain = parquet(&f.out.join("winback.parquet"));
    let raw: Vec<String> =
        plain.column("customer_id").unwrap().i64().unwrap().iter().flatten().map(|v| v.to_string()).collect();
    let files = all_files(&out);
    for (path, bytes) in &files {
        let text = String::from_utf8_lossy(bytes);
        assert!(!text.contains(key), "{} holds the key", path.display());
        let name = path.file_name().unwrap().to_string_lossy();
        if name.ends_with(".csv") && text.lines().next().unwrap_or("").contains("customer_id") {
            let col = text.lines().next().unwrap().split(',').position(|h| h == "customer_id").unwrap();
            for line in text.lines().skip(1).take(200) {
                let cell = line.split(',').nth(col).unwrap();
                assert!(cell.starts_with('c') && cell.len() == 17, "{name}: raw id {cell}");
            }
        }
        if name == "report.html" {
            for id in raw.iter().take(50) {
                assert!(!text.contains(&format!("<td>{id}</td>")), "report shows raw id {id}");
            }
        }
    }
    let wb = parquet(&out.join("winback.parquet"));
    assert_eq!(wb.height(), plain.height());
    // the same key gives the same pseudonyms (outputs still join across runs); another key other ones
    let again = tmp.path().join("again");
    assert_eq!(run(&again, Some(key)).status.code(), Some(0));
    let other = tmp.path().join("other");
    assert_eq!(run(&other, Some("another secret key 0123456789")).status.code(), Some(0));
    let first = |dir: &Path| {
        parquet(&dir.join("winback.parquet")).column("customer_id").unwrap().str().unwrap().get(0).map(String::from)
    };
    assert_eq!(first(&out), first(&again));
    assert_ne!(first(&out), first(&other));
}

#[test]
fn a_failed_run_leaves_the_previous_output_intact() {
    let f = fixture();
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let o = loyalty(&["run", "--data", p(&f.data), "--out", p(&out)]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let before = all_files(&out);
    assert!(before.len() > 15);
    // a config with a typo: exit 1 before anything is read
    let bad_config = tmp.path().join("bad.toml");
    fs::write(&bad_config, "[model]\nchurn_horizon = 6\n").unwrap();
    let o = loyalty(&["run", "--data", p(&f.data), "--out", p(&out), "--config", p(&bad_config)]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("churn_horizon"), "{}", stderr(&o));
    // a dataset whose billing file is truncated: exit 1, naming the file
    let broken = tmp.path().join("broken");
    fs::create_dir_all(broken.join("billing")).unwrap();
    for entry in fs::read_dir(&f.data).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            fs::copy(&path, broken.join(path.file_name().unwrap())).unwrap();
        }
    }
    let part = fs::read_dir(f.data.join("billing")).unwrap().next().unwrap().unwrap().path();
    let bytes = fs::read(&part).unwrap();
    fs::write(broken.join("billing").join(part.file_name().unwrap()), &bytes[..bytes.len() / 2]).unwrap();
    let o = loyalty(&["run", "--data", p(&broken), "--out", p(&out)]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains(&*part.file_name().unwrap().to_string_lossy()), "{}", stderr(&o));
    assert_eq!(all_files(&out), before, "the previous outputs changed");
    let leftovers: Vec<_> = fs::read_dir(tmp.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(leftovers.len(), 3, "staging folders left behind: {leftovers:?}");
}
