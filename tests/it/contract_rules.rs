//! One test per contract rule: a dataset that breaks it is refused (exit 1) with a
//! message naming the file, column and rule, earlier outputs are left untouched, and
//! `--lenient` sets the bad rows aside in `rejects/` and goes on.

use std::fs;
use std::path::{Path, PathBuf};

use loyalty_io::write_parquet;
use polars::prelude::*;

use crate::{loyalty, p, stderr};

/// A small valid dataset, one frame per table.
struct Tables {
    customers: DataFrame,
    billing: DataFrame,
    markets: DataFrame,
    catalog: DataFrame,
    services: DataFrame,
    topups: DataFrame,
    interactions: DataFrame,
    surveys: DataFrame,
    referrals: DataFrame,
}

fn dates(name: &str, v: &[&str]) -> Column {
    Column::new(name.into(), v).cast(&DataType::Date).unwrap()
}

fn valid() -> Tables {
    let mut customers = df!(
        "customer_id" => [1i64, 2, 3, 4],
        "market_id" => ["m1", "m1", "m2", "m2"],
        "plan_type" => ["postpaid", "prepaid", "postpaid", "postpaid"],
        "contract_months" => [Some(12i64), None, Some(0), Some(24)],
        "churn_reason" => [None::<&str>, None, None, None],
    )
    .unwrap();
    customers.with_column(dates("signup_date", &["2022-01-10", "2022-06-01", "2023-03-03", "2023-05-05"])).unwrap();
    let churn = Column::new("churn_date".into(), [None::<i32>, None, None, None]).cast(&DataType::Date).unwrap();
    customers.with_column(churn).unwrap();
    let mut billing = df!(
        "customer_id" => [1i64, 2, 3, 4, 1, 2, 3, 4],
        "total_charge" => [30.0, 10.0, 45.5, 20.0, 31.0, 12.0, 44.0, 20.0],
        "cost" => [20.0, 7.0, 30.0, 15.0, 20.0, 8.0, 30.0, 15.0],
        "discount" => [0.0; 8],
        "days_late" => [Some(0i64), Some(0), Some(3), None, Some(0), Some(0), Some(0), Some(1)],
    )
    .unwrap();
    billing
        .with_column(dates(
            "bill_month",
            &[
                "2024-01-01",
                "2024-01-01",
                "2024-01-01",
                "2024-01-01",
                "2024-02-01",
                "2024-02-01",
                "2024-02-01",
                "2024-02-01",
            ],
        ))
        .unwrap();
    let markets =
        df!("market_id" => ["m1", "m2"], "competitors" => [1i64, 4], "competition_index" => [0.2, 0.8]).unwrap();
    let catalog = df!("service" => ["voicemail"], "monthly_price" => [2.0], "monthly_margin" => [1.5]).unwrap();
    let mut services = df!("customer_id" => [1i64], "service" => ["voicemail"]).unwrap();
    services.with_column(dates("start_date", &["2023-01-01"])).unwrap();
    services.with_column(dates("end_date", &["2024-01-01"])).unwrap();
    let ts = Column::new("ts".into(), [1_704_103_200_000_000i64]) // 2024-01-01 10:00
        .cast(&DataType::Datetime(TimeUnit::Microseconds, None))
        .unwrap();
    let mut topups = df!("customer_id" => [2i64], "amount" => [10.0]).unwrap();
    topups.with_column(ts.clone()).unwrap();
    let mut interactions =
        df!("customer_id" => [3i64], "channel" => ["call"], "kind" => ["complaint"], "resolved" => [Some(false)])
            .unwrap();
    interactions.with_column(ts).unwrap();
    let mut surveys = df!(
        "customer_id" => [1i64, 3],
        "overall" => [4i64, 2],
        "price" => [Some(4i64), None],
        "recommend" => [Some(9i64), Some(3)],
    )
    .unwrap();
    surveys.with_column(dates("survey_date", &["2024-01-15", "2024-01-15"])).unwrap();
    let mut referrals = df!("customer_id" => [1i64], "referred_id" => [77i64]).unwrap();
    referrals.with_column(dates("referral_date", &["2024-02-02"])).unwrap();
    Tables { customers, billing, markets, catalog, services, topups, interactions, surveys, referrals }
}

fn write(t: Tables, dir: &Path) {
    for (name, mut df) in [
        ("customers", t.customers),
        ("billing", t.billing),
        ("markets", t.markets),
        ("service_catalog", t.catalog),
        ("services", t.services),
        ("topups", t.topups),
        ("interactions", t.interactions),
        ("surveys", t.surveys),
        ("referrals", t.referrals),
    ] {
        if df.width() > 0 {
            write_parquet(&mut df, &dir.join(format!("{name}.parquet"))).unwrap();
        }
    }
}

/// Replace row `row` of column `name` with `value` (of the column's type or castable to it).
fn set(df: &mut DataFrame, name: &str, row: usize, value: AnyValue) {
    let s = df.column(name).unwrap().as_materialized_series().clone();
    let mut values: Vec<AnyValue> = s.iter().collect();
    values[row] = value;
    let dtype = if matches!(values[row], AnyValue::String(_)) && !s.dtype().is_string() {
        &DataType::String
    } else {
        s.dtype()
    };
    let new = Series::from_any_values_and_dtype(name.into(), &values, dtype, false).unwrap();
    df.with_column(new.into_column()).unwrap();
}

struct Case {
    dataset: PathBuf,
    out: PathBuf,
    _tmp: tempfile::TempDir,
}

/// Write the valid dataset with `mutate` applied, and an output folder holding a
/// previous run's file.
fn case(mutate: impl FnOnce(&mut Tables)) -> Case {
    let tmp = tempfile::tempdir().unwrap();
    let dataset = tmp.path().join("data");
    let mut t = valid();
    mutate(&mut t);
    write(t, &dataset);
    let out = tmp.path().join("out");
    fs::create_dir_all(&out).unwrap();
    fs::write(out.join("run.json"), "previous run").unwrap();
    fs::write(out.join(loyalty_io::OUTPUT_MARKER), "").unwrap();
    Case { dataset, out, _tmp: tmp }
}

/// Strict run: exit 1, message naming `needles`, previous output untouched.
fn refused(c: &Case, needles: &[&str]) -> String {
    let o = loyalty(&["run", "--data", p(&c.dataset), "--out", p(&c.out)]);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "expected exit 1, got {:?}: {err}", o.status.code());
    for n in needles {
        assert!(err.contains(n), "message lacks {n:?}:\n{err}");
    }
    assert_eq!(fs::read_to_string(c.out.join("run.json")).unwrap(), "previous run");
    assert_eq!(fs::read_dir(&c.out).unwrap().count(), 2, "nothing else written");
    let parent = c.out.parent().unwrap();
    assert_eq!(fs::read_dir(parent).unwrap().count(), 2, "no staging folder left behind");
    err
}

/// Lenient run: exit 0, the bad rows of `table` in rejects/ with `rule` named.
fn set_aside(c: &Case, table: &str, rule: &str, rows: usize) {
    let o = loyalty(&["run", "--data", p(&c.dataset), "--out", p(&c.out), "--lenient"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let path = c.out.join("rejects").join(format!("{table}.parquet"));
    let rejects = LazyFrame::scan_parquet(PlRefPath::new(p(&path)), Default::default()).unwrap().collect().unwrap();
    assert_eq!(rejects.height(), rows, "{rejects}");
    let why = rejects.column("reject_rule").unwrap().str().unwrap().get(0).unwrap().to_string();
    assert!(why.contains(rule), "{why}");
    let file = rejects.column("source_file").unwrap().str().unwrap().get(0).unwrap().to_string();
    // Named by its path, however it was read.
    assert!(file.ends_with(".parquet") && file.starts_with(p(&c.dataset)), "{file}");
    let summary = fs::read_to_string(c.out.join("run.json")).unwrap();
    let s: serde_json::Value = serde_json::from_str(&summary).unwrap();
    assert!(s["dataset"]["rows_rejected"].as_u64().unwrap() >= rows as u64);
}

macro_rules! row_rule {
    ($name:ident, $table:literal, $column:literal, $rule:literal, $rows:expr, $mutate:expr) => {
        #[test]
        fn $name() {
            let c = case($mutate);
            let file = format!("{}.parquet", $table);
            refused(&c, &[&file, concat!("`", $column, "`"), concat!("`", $rule, "`")]);
            set_aside(&c, $table, $rule, $rows);
        }
    };
}

row_rule!(null_in_non_null_column, "customers", "signup_date", "not_null", 1, |t| set(
    &mut t.customers,
    "signup_date",
    1,
    AnyValue::Null
));
row_rule!(negative_charge, "billing", "total_charge", "non_negative", 1, |t| set(
    &mut t.billing,
    "total_charge",
    2,
    AnyValue::Float64(-5.0)
));
row_rule!(negative_discount, "billing", "discount", "non_negative", 1, |t| set(
    &mut t.billing,
    "discount",
    0,
    AnyValue::Float64(-1.0)
));
row_rule!(nan_cost, "billing", "cost", "finite", 1, |t| set(&mut t.billing, "cost", 0, AnyValue::Float64(f64::NAN)));
row_rule!(infinite_cost, "billing", "cost", "finite", 1, |t| set(
    &mut t.billing,
    "cost",
    1,
    AnyValue::Float64(f64::INFINITY)
));
row_rule!(negative_infinite_discount, "billing", "discount", "finite", 1, |t| set(
    &mut t.billing,
    "discount",
    3,
    AnyValue::Float64(f64::NEG_INFINITY)
));
row_rule!(bill_month_not_first_of_month, "billing", "bill_month", "not_first_of_month", 1, |t| set(
    &mut t.billing,
    "bill_month",
    0,
    AnyValue::Date(19_737) // 2024-01-15
));
row_rule!(duplicate_billing_key, "billing", "bill_month", "duplicate_key", 2, |t| set(
    &mut t.billing,
    "customer_id",
    4,
    AnyValue::Int64(2) // (2, 2024-02-01) now appears twice
));
row_rule!(duplicate_customer, "customers", "customer_id", "duplicate_key", 2, |t| set(
    &mut t.customers,
    "customer_id",
    3,
    AnyValue::Int64(1)
));
row_rule!(unknown_plan_type, "customers", "plan_type", "unknown_plan_type", 1, |t| set(
    &mut t.customers,
    "plan_type",
    0,
    AnyValue::String("hybrid")
));
row_rule!(negative_contract, "customers", "contract_months", "non_negative", 1, |t| set(
    &mut t.customers,
    "contract_months",
    0,
    AnyValue::Int64(-12)
));
row_rule!(churn_before_signup, "customers", "churn_date", "churn_before_signup", 1, |t| set(
    &mut t.customers,
    "churn_date",
    0,
    AnyValue::Date(18_000) // 2019-04-14, before the 2022 signup
));
row_rule!(survey_score_out_of_range, "surveys", "overall", "out_of_range", 1, |t| set(
    &mut t.surveys,
    "overall",
    0,
    AnyValue::Int64(6)
));
row_rule!(recommend_out_of_range, "surveys", "recommend", "out_of_range", 1, |t| set(
    &mut t.surveys,
    "recommend",
    1,
    AnyValue::Int64(11)
));
row_rule!(competition_index_out_of_range, "markets", "competition_index", "out_of_range", 1, |t| set(
    &mut t.markets,
    "competition_index",
    1,
    AnyValue::Float64(1.5)
));
row_rule!(billing_for_unknown_customer, "billing", "customer_id", "unknown_customer", 1, |t| set(
    &mut t.billing,
    "customer_id",
    7,
    AnyValue::Int64(999)
));
row_rule!(survey_of_unknown_customer, "surveys", "customer_id", "unknown_customer", 1, |t| set(
    &mut t.surveys,
    "customer_id",
    0,
    AnyValue::Int64(555)
));
row_rule!(unknown_service, "services", "service", "unknown_service", 1, |t| set(
    &mut t.services,
    "service",
    0,
    AnyValue::String("hologram")
));
row_rule!(unknown_market, "customers", "market_id", "unknown_market", 1, |t| set(
    &mut t.customers,
    "market_id",
    2,
    AnyValue::String("atlantis")
));
row_rule!(service_ends_before_start, "services", "end_date", "end_before_start", 1, |t| set(
    &mut t.services,
    "end_date",
    0,
    AnyValue::Date(19_000)
));
row_rule!(topup_not_positive, "topups", "amount", "not_positive", 1, |t| set(
    &mut t.topups,
    "amount",
    0,
    AnyValue::Float64(0.0)
));
row_rule!(self_referral, "referrals", "referred_id", "self_referral", 1, |t| set(
    &mut t.referrals,
    "referred_id",
    0,
    AnyValue::Int64(1)
));
row_rule!(date_that_is_not_a_date, "surveys", "survey_date", "not_a_date", 1, |t| {
    let s = Column::new("survey_date".into(), ["2024-01-15", "2024-13-45"]);
    t.surveys.with_column(s).unwrap();
});

#[test]
fn customer_rejected_in_lenient_mode_takes_its_billing_rows_along() {
    // A bad customer row is set aside, so its bills reference an unknown customer.
    let c = case(|t| set(&mut t.customers, "plan_type", 0, AnyValue::String("hybrid")));
    set_aside(&c, "customers", "unknown_plan_type", 1);
    let path = c.out.join("rejects").join("billing.parquet");
    let rejects = LazyFrame::scan_parquet(PlRefPath::new(p(&path)), Default::default()).unwrap().collect().unwrap();
    assert_eq!(rejects.height(), 2, "both bills of customer 1");
}

fn schema_problem(mutate: impl FnOnce(&mut Tables), needles: &[&str]) {
    let c = case(mutate);
    refused(&c, needles);
    // Column- and table-level problems cannot be set aside row by row.
    let o = loyalty(&["run", "--data", p(&c.dataset), "--out", p(&c.out), "--lenient"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert_eq!(fs::read_to_string(c.out.join("run.json")).unwrap(), "previous run");
}

#[test]
fn missing_required_column() {
    schema_problem(
        |t| t.billing = t.billing.drop("total_charge").unwrap(),
        &["billing", "`total_charge`", "missing_column"],
    );
}

#[test]
fn wrong_type_that_cannot_be_coerced() {
    schema_problem(
        |t| {
            let n = t.billing.height();
            t.billing.with_column(Column::new("total_charge".into(), vec![true; n])).unwrap();
        },
        &["billing.parquet", "`total_charge`", "wrong_type", "bool"],
    );
}

#[test]
fn missing_required_table() {
    schema_problem(|t| t.billing = DataFrame::empty(), &["`billing`", "missing_table"]);
}

#[test]
fn services_without_catalog() {
    schema_problem(|t| t.catalog = DataFrame::empty(), &["services", "service_catalog", "missing_table"]);
}

#[test]
fn file_that_is_not_parquet() {
    let c = case(|_| {});
    fs::remove_file(c.dataset.join("billing.parquet")).unwrap();
    fs::create_dir_all(c.dataset.join("billing")).unwrap();
    fs::write(c.dataset.join("billing/part-0.csv"), "customer_id,bill_month\n1,2024-01-01\n").unwrap();
    refused(&c, &["billing/part-0.csv", "not_parquet"]);
}

#[test]
fn clean_dataset_replaces_previous_output() {
    let c = case(|_| {});
    let o = loyalty(&["run", "--data", p(&c.dataset), "--out", p(&c.out)]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let s: serde_json::Value = serde_json::from_str(&fs::read_to_string(c.out.join("run.json")).unwrap()).unwrap();
    assert_eq!(s["dataset"]["customers"], 4);
    assert_eq!(s["dataset"]["rows_rejected"], 0);
}

#[test]
fn a_folder_of_other_files_is_never_replaced() {
    let c = case(|_| {});
    let other = c.out.parent().unwrap().join("precious");
    fs::create_dir_all(&other).unwrap();
    fs::write(other.join("thesis.txt"), "years of work").unwrap();
    let o = loyalty(&["run", "--data", p(&c.dataset), "--out", p(&other)]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("refusing to replace"), "{}", stderr(&o));
    assert_eq!(fs::read_to_string(other.join("thesis.txt")).unwrap(), "years of work");
}

row_rule!(
    placeholder_date_outside_what_the_engine_represents,
    "customers",
    "signup_date",
    "date_out_of_range",
    1,
    |t| {
        // 0001-01-01, a common "unknown" sentinel: day -719,162 of the Unix epoch.
        set(&mut t.customers, "signup_date", 0, AnyValue::Date(-719_162))
    }
);

/// Exit 1 naming `needles` from `validate` and from `run` alike (the run keeping the
/// previous output).
fn refused_by_validate_and_run(c: &Case, needles: &[&str]) {
    let o = loyalty(&["validate", "--data", p(&c.dataset)]);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "validate: expected exit 1: {err}");
    for n in needles {
        assert!(err.contains(n), "validate's message lacks {n:?}:\n{err}");
    }
    refused(c, needles);
}

/// Overwrite the middle third of `path` with garbage, leaving its footer intact.
fn corrupt_pages(path: &Path) {
    let mut bytes = fs::read(path).unwrap();
    let n = bytes.len();
    for (i, b) in bytes[n / 8..n / 2].iter_mut().enumerate() {
        *b = (i as u8).wrapping_mul(167).wrapping_add(13);
    }
    fs::write(path, bytes).unwrap();
}

#[test]
fn a_corrupt_data_page_names_the_file() {
    let c = case(|_| {});
    corrupt_pages(&c.dataset.join("billing.parquet"));
    refused_by_validate_and_run(&c, &["billing.parquet", "corrupt_file"]);
}

#[test]
fn a_duplicate_column_names_the_file_and_the_rule() {
    let c = case(|_| {});
    let fixture = crate::repo_root().join("tests/fixtures/duplicate_column.parquet");
    fs::copy(fixture, c.dataset.join("billing.parquet")).unwrap();
    refused_by_validate_and_run(&c, &["billing.parquet", "duplicate_column"]);
}

#[test]
fn a_file_of_another_table_in_a_table_folder_is_named() {
    let c = case(|_| {});
    let folder = c.dataset.join("billing");
    fs::create_dir_all(&folder).unwrap();
    fs::rename(c.dataset.join("billing.parquet"), folder.join("part-0.parquet")).unwrap();
    fs::copy(c.dataset.join("customers.parquet"), folder.join("part-1.parquet")).unwrap();
    refused_by_validate_and_run(&c, &["billing/part-1.parquet", "schema_mismatch"]);
}

#[test]
fn an_empty_required_table_is_refused() {
    let c = case(|t| t.billing = t.billing.head(Some(0)));
    refused_by_validate_and_run(&c, &["billing.parquet", "`billing`", "empty_table"]);
}

/// A seeded xorshift generator: the same mutations on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

fn frames(t: &mut Tables) -> [(&'static str, &mut DataFrame); 9] {
    [
        ("customers", &mut t.customers),
        ("billing", &mut t.billing),
        ("markets", &mut t.markets),
        ("service_catalog", &mut t.catalog),
        ("services", &mut t.services),
        ("topups", &mut t.topups),
        ("interactions", &mut t.interactions),
        ("surveys", &mut t.surveys),
        ("referrals", &mut t.referrals),
    ]
}

/// One random change to one column: another type, nulls, or values out of range.
fn mutate_column(t: &mut Tables, rng: &mut Rng) {
    let mut all = frames(t);
    let k = rng.below(all.len());
    let (_, df) = &mut all[k];
    let names: Vec<String> = df.get_column_names().iter().map(|n| n.to_string()).collect();
    let name = &names[rng.below(names.len())];
    let n = df.height();
    let row = rng.below(n);
    let dtype = df.column(name).unwrap().dtype().clone();
    match rng.below(4) {
        0 => drop(df.with_column(Column::new(name.as_str().into(), vec!["x"; n])).unwrap()),
        1 => drop(df.with_column(Column::new(name.as_str().into(), vec![true; n])).unwrap()),
        2 => set(df, name, row, AnyValue::Null),
        _ => {
            let value = match dtype {
                DataType::Float64 => [AnyValue::Float64(-1e9), AnyValue::Float64(f64::NAN), AnyValue::Float64(1e300)]
                    [rng.below(3)]
                .clone(),
                DataType::Int64 => {
                    [AnyValue::Int64(-1), AnyValue::Int64(i64::MAX), AnyValue::Int64(999)][rng.below(3)].clone()
                }
                DataType::Date => {
                    [AnyValue::Date(-719_162), AnyValue::Date(2_000_000), AnyValue::Date(-1)][rng.below(3)].clone()
                }
                _ => AnyValue::String("\u{0}??"),
            };
            set(df, name, row, value);
        }
    }
}

/// Flip bytes of one file at random places, or cut it short.
fn corrupt_file(dir: &Path, rng: &mut Rng) {
    let files: Vec<PathBuf> = crate::all_files(dir).into_keys().collect();
    let path = &files[rng.below(files.len())];
    let mut bytes = fs::read(path).unwrap();
    if rng.below(4) == 0 {
        bytes.truncate(rng.below(bytes.len()));
    } else {
        for _ in 0..1 + rng.below(16) {
            let at = rng.below(bytes.len());
            bytes[at] = rng.next() as u8;
        }
    }
    fs::write(path, bytes).unwrap();
}

/// Mutated datasets (wrong types, nulls, out-of-range values, corrupt bytes): validation
/// accepts each or refuses it naming a rule, and never panics or fails on its own.
/// LOYALTY_MUTATION_CASES sets how many (default 100).
#[test]
fn validation_accepts_or_names_a_rule_for_any_mutated_dataset() {
    let cases: u64 = std::env::var("LOYALTY_MUTATION_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(100);
    let (mut accepted, mut refused) = (0, 0);
    for case in 0..cases {
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ (case + 1).wrapping_mul(0xBF58_476D_1CE4_E5B9));
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("data");
        let mut t = valid();
        let corrupt = rng.below(3) == 0;
        if !corrupt {
            for _ in 0..1 + rng.below(3) {
                mutate_column(&mut t, &mut rng);
            }
        }
        write(t, &dir);
        if corrupt {
            corrupt_file(&dir, &mut rng);
        }
        let o = loyalty(&["validate", "--data", p(&dir)]);
        let err = stderr(&o);
        assert!(!err.contains("panicked"), "case {case}: a panic:\n{err}");
        match o.status.code() {
            Some(0) => accepted += 1,
            Some(1) => {
                assert!(err.contains("rule"), "case {case}: refused without naming a rule:\n{err}");
                refused += 1;
            }
            other => panic!("case {case}: exit {other:?}, expected 0 or 1:\n{err}"),
        }
    }
    assert!(refused > cases / 2, "only {refused} of {cases} mutated datasets refused ({accepted} accepted)");
}
