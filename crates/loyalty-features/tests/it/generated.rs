//! Features on generated data: no leakage, and CPV adoption against the truth.

use std::sync::OnceLock;

use chrono::NaiveDate;
use loyalty_contract::{Table, col as c};
use loyalty_features::{BillingEngine, FeatureParams, Tables, adoption_rates, customer_features, epoch_days};
use loyalty_synth::{GenParams, Generated, generate_in_memory};
use polars::prelude::*;

fn generated() -> &'static Generated {
    static G: OnceLock<Generated> = OnceLock::new();
    G.get_or_init(|| {
        generate_in_memory(GenParams {
            customers: 20_000,
            months: 18,
            seed: 3,
            chunk_size: 5_000,
            ..Default::default()
        })
        .expect("generate")
    })
}

fn tables(g: &Generated) -> Tables {
    let mut t = Tables::new();
    for table in Table::ALL {
        if let Some(df) = g.frames.get(table.name()) {
            t.insert(table, df.clone().lazy());
        }
    }
    t
}

/// Every row dated after T deleted; churn dates after T forgotten.
fn cut_at(t: &Tables, as_of: NaiveDate) -> Tables {
    let day = |e: Expr| e.cast(DataType::Date);
    let mut out = Tables::new();
    for (table, lf) in t {
        let lf = lf.clone();
        let cut = match table {
            Table::Customers => lf.filter(col(c::SIGNUP_DATE).lt_eq(lit(as_of))).with_columns([
                when(col(c::CHURN_DATE).gt(lit(as_of)))
                    .then(lit(NULL).cast(DataType::Date))
                    .otherwise(col(c::CHURN_DATE))
                    .alias(c::CHURN_DATE),
                when(col(c::CHURN_DATE).gt(lit(as_of)))
                    .then(lit(NULL).cast(DataType::String))
                    .otherwise(col(c::CHURN_REASON))
                    .alias(c::CHURN_REASON),
            ]),
            Table::Billing => lf.filter(col(c::BILL_MONTH).lt_eq(lit(as_of))),
            Table::Topups | Table::Interactions => lf.filter(day(col(c::TS)).lt_eq(lit(as_of))),
            Table::Surveys => lf.filter(col(c::SURVEY_DATE).lt_eq(lit(as_of))),
            Table::Referrals => lf.filter(col(c::REFERRAL_DATE).lt_eq(lit(as_of))),
            Table::Services => lf.filter(col(c::START_DATE).lt_eq(lit(as_of))).with_column(
                when(col(c::END_DATE).gt(lit(as_of)))
                    .then(lit(NULL).cast(DataType::Date))
                    .otherwise(col(c::END_DATE))
                    .alias(c::END_DATE),
            ),
            Table::Markets | Table::ServiceCatalog => lf,
        };
        out.insert(*table, cut);
    }
    out
}

#[test]
fn deleting_everything_after_t_changes_no_feature() {
    let g = generated();
    let full = tables(g);
    // Mid-month and month-end T, both inside the 18 generated months.
    for as_of in ["2023-09-14", "2024-02-29"] {
        let as_of = NaiveDate::parse_from_str(as_of, "%Y-%m-%d").unwrap();
        let params = FeatureParams { as_of, ..Default::default() };
        let (a, _) = customer_features(&full, &params).unwrap();
        let (b, _) = customer_features(&cut_at(&full, as_of), &params).unwrap();
        assert!(a.height() > 10_000, "{}", a.height());
        assert_eq!(a.get_column_names(), b.get_column_names());
        assert_eq!(a.height(), b.height());
        for column in a.columns() {
            let name = column.name();
            let (x, y) = (column.as_materialized_series(), b.column(name).unwrap().as_materialized_series());
            if x.dtype().is_float() {
                let (x, y) = (x.f64().unwrap(), y.f64().unwrap());
                for (i, (u, v)) in x.iter().zip(y.iter()).enumerate() {
                    match (u, v) {
                        (Some(u), Some(v)) => {
                            assert!((u - v).abs() <= 1e-9 * u.abs().max(1.0), "{name}[{i}] {u} vs {v} at {as_of}")
                        }
                        (u, v) => assert_eq!(u.is_none(), v.is_none(), "{name}[{i}] at {as_of}"),
                    }
                }
            } else {
                assert!(x.equals_missing(y), "column {name} differs at {as_of}");
            }
        }
    }
}

#[test]
fn adoption_probabilities_are_close_to_the_truth() {
    let g = generated();
    let t = tables(g);
    let as_of = NaiveDate::from_ymd_opt(2024, 6, 30).unwrap();
    let params = FeatureParams { as_of, ..Default::default() };
    let (base, _) = customer_features(&t, &params).unwrap();
    let est = adoption_rates(&base, &t, &params).unwrap();
    let joined = est
        .lazy()
        .join(
            g.frames["truth/adoption"].clone().lazy(),
            [col(c::CUSTOMER_ID), col(c::SERVICE)],
            [col(c::CUSTOMER_ID), col(c::SERVICE)],
            JoinArgs::new(JoinType::Inner),
        )
        .select([
            len().alias("pairs"),
            (col("p_adopt") - col("p_adopt_right")).abs().mean().alias("mae"),
            (col("p_adopt") - col("p_adopt_right")).mean().alias("bias"),
            col("p_adopt_right").mean().alias("truth_mean"),
            (col("p_adopt") * col("p_adopt_right")).mean().alias("xy"),
            (col("p_adopt") * col("p_adopt")).mean().alias("xx"),
            (col("p_adopt_right") * col("p_adopt_right")).mean().alias("yy"),
            col("p_adopt").mean().alias("x"),
        ])
        .collect()
        .unwrap();
    let get = |k: &str| joined.column(k).unwrap().cast(&DataType::Float64).unwrap().f64().unwrap().get(0).unwrap();
    let (mae, bias) = (get("mae"), get("bias"));
    // Pearson's r from the moments (the polars `cov` feature is not built for one test).
    let (x, y) = (get("x"), get("truth_mean"));
    let corr = (get("xy") - x * y) / ((get("xx") - x * x) * (get("yy") - y * y)).sqrt();
    eprintln!(
        "CPV adoption vs truth: pairs {}, MAE {mae:.4}, bias {bias:.4}, truth mean {:.4}, corr {corr:.3}",
        get("pairs"),
        get("truth_mean")
    );
    // See docs/methods.md, "Value": the estimator sees adoption up to T only
    // (adopters' start is delayed, some cancel) and does not see satisfaction.
    assert!(mae < 0.06, "mean absolute error {mae}");
    assert!(corr > 0.9, "correlation {corr}");
    let _ = epoch_days(as_of);
}

/// The same tables with customer ids spread far apart (a hash map instead of a
/// direct index inside the billing kernel).
fn sparse_ids(t: &Tables) -> Tables {
    let spread = |e: Expr| e * lit(1_000_003i64) + lit(-7_000_000_000i64);
    t.iter()
        .map(|(table, lf)| {
            let names = lf.clone().collect_schema().unwrap();
            let mut lf = lf.clone();
            for id in [c::CUSTOMER_ID, c::REFERRED_ID] {
                if names.contains(id) {
                    lf = lf.with_column(spread(col(id)).alias(id));
                }
            }
            (*table, lf)
        })
        .collect()
}

/// Every column of two frames equal: same nulls, numbers within 1e-9 (relative to
/// the column's scale: sums are added in a different order).
fn assert_same(a: &DataFrame, b: &DataFrame) {
    assert_eq!(a.get_column_names(), b.get_column_names());
    assert_eq!(a.height(), b.height());
    for (x, y) in a.columns().iter().zip(b.columns()) {
        let name = x.name();
        assert_eq!(x.is_null().sum(), y.is_null().sum(), "{name}: nulls differ");
        if x.dtype().is_primitive_numeric() {
            let (x, y) = (x.cast(&DataType::Float64).unwrap(), y.cast(&DataType::Float64).unwrap());
            let (x, y) = (x.f64().unwrap(), y.f64().unwrap());
            let scale = x.iter().flatten().fold(1.0f64, |m, v| m.max(v.abs()));
            for (i, (u, v)) in x.iter().zip(y.iter()).enumerate() {
                match (u, v) {
                    (Some(u), Some(v)) => assert!((u - v).abs() <= 1e-9 * scale, "{name}[{i}]: {u} vs {v}"),
                    (None, None) => {}
                    _ => panic!("{name}[{i}]: {u:?} vs {v:?}"),
                }
            }
        } else {
            assert!(x.as_materialized_series().equals_missing(y.as_materialized_series()), "{name} differs");
        }
    }
}

#[test]
fn billing_kernel_gives_the_numbers_of_the_reference_plan() {
    let t = tables(generated());
    for (label, t) in [("dense ids", t.clone()), ("sparse ids", sparse_ids(&t))] {
        for as_of in [NaiveDate::from_ymd_opt(2024, 6, 30).unwrap(), NaiveDate::from_ymd_opt(2023, 11, 15).unwrap()] {
            let run = |billing_engine| {
                let params = FeatureParams { as_of, billing_engine, ..Default::default() };
                customer_features(&t, &params).unwrap().0
            };
            let (kernel, reference) = (run(BillingEngine::Kernel), run(BillingEngine::Polars));
            assert!(kernel.height() > 5_000, "{label} {as_of}: {} customers", kernel.height());
            assert_same(&kernel, &reference);
        }
    }
}

#[test]
fn features_in_customer_partitions_equal_features_at_once() {
    let t = tables(generated());
    let as_of = NaiveDate::from_ymd_opt(2024, 6, 30).unwrap();
    for billing_engine in [BillingEngine::Kernel, BillingEngine::Polars] {
        let run = |customers_per_partition| {
            let params = FeatureParams { as_of, billing_engine, customers_per_partition, ..Default::default() };
            customer_features(&t, &params).unwrap().0
        };
        let (whole, parts) = (run(0), run(1_500));
        assert!(whole.height() > 5_000, "{} customers: several partitions", whole.height());
        assert_same(&parts, &whole);
    }
}

#[test]
fn the_aggregates_are_columns_of_the_features() {
    let t = tables(generated());
    let as_of = NaiveDate::from_ymd_opt(2024, 6, 30).unwrap();
    for customers_per_partition in [0, 1_500] {
        let params = FeatureParams { as_of, customers_per_partition, ..Default::default() };
        let aggregates = loyalty_features::customer_aggregates(&t, &params).unwrap();
        let features = customer_features(&t, &params).unwrap().0;
        let names = features.get_column_names();
        let extra: Vec<_> = aggregates.get_column_names().into_iter().filter(|c| !names.contains(c)).collect();
        assert!(extra.is_empty(), "aggregates that are not features: {extra:?}");
        assert!(aggregates.width() > 20, "{} columns", aggregates.width());
        assert_same(&aggregates, &features.select(aggregates.get_column_names_owned()).unwrap());
    }
}

#[test]
fn the_values_need_only_the_value_inputs_of_each_partition() {
    let t = tables(generated());
    let as_of = NaiveDate::from_ymd_opt(2024, 6, 30).unwrap();
    let params = FeatureParams { as_of, customers_per_partition: 1_500, ..Default::default() };
    let whole = customer_features(&t, &params).unwrap().0;
    let kept: Vec<&str> = std::iter::once(c::CUSTOMER_ID).chain(loyalty_features::VALUE_INPUTS).collect();
    let narrow = loyalty_features::customer_features_with(&t, &params, None, |rows: DataFrame| {
        rows.select(kept.clone()).map_err(loyalty_features::FeatureError::from)
    })
    .unwrap()
    .table;
    // Every column the values add, from the kept columns alone.
    let added: Vec<PlSmallStr> =
        narrow.get_column_names_owned().into_iter().filter(|c| !kept.contains(&c.as_str())).collect();
    assert!(added.len() >= 8, "{added:?}");
    assert_same(&narrow.select(added.clone()).unwrap(), &whole.select(added).unwrap());
}

#[test]
fn bgnbd_periods_counted_with_the_features_are_the_top_up_summary_s() {
    use loyalty_features::transactions::{cols, rfm_summary};
    let t = tables(generated());
    let as_of = NaiveDate::from_ymd_opt(2024, 6, 30).unwrap();
    let summary = rfm_summary(t[&Table::Customers].clone(), t[&Table::Topups].clone(), as_of, 7.0).unwrap();
    let f = |name: &str| summary.column(name).unwrap().f64().unwrap().into_no_null_iter().collect::<Vec<_>>();
    let ids: Vec<i64> = summary.column(c::CUSTOMER_ID).unwrap().i64().unwrap().into_no_null_iter().collect();
    let (x, t_x, big_t) = (f(cols::X), f(cols::T_X), f(cols::T));
    let want: std::collections::HashMap<i64, (u64, u64, u64)> =
        (0..ids.len()).map(|k| (ids[k], (x[k].to_bits(), t_x[k].to_bits(), big_t[k].to_bits()))).collect();
    for customers_per_partition in [0, 1_500] {
        let params = FeatureParams { as_of, customers_per_partition, topup_days: true, ..Default::default() };
        let at_t = loyalty_features::customer_features_with(&t, &params, None, Ok::<_, loyalty_features::FeatureError>)
            .unwrap();
        let days = at_t.topup_days.expect("the top-up kernel counted the days");
        let periods = days.periods(7.0);
        assert!(periods.len() > 5_000, "{} customers summarised", periods.len());
        let prepaid_with_repeats = periods.iter().filter(|(_, (x, _, _))| *x > 1.0).count();
        assert!(prepaid_with_repeats > 1_000, "{prepaid_with_repeats} customers with repeat top-ups");
        for (id, (x, t_x, big_t)) in periods {
            assert_eq!(want.get(&id), Some(&(x.to_bits(), t_x.to_bits(), big_t.to_bits())), "customer {id}");
        }
        // Every customer of the table at T with a summary has one here.
        let at_t_ids: std::collections::HashSet<i64> =
            at_t.table.column(c::CUSTOMER_ID).unwrap().i64().unwrap().into_no_null_iter().collect();
        let summarised = days.periods(7.0).into_iter().map(|(id, _)| id).collect::<std::collections::HashSet<_>>();
        let missing = ids.iter().filter(|id| at_t_ids.contains(id) && !summarised.contains(id)).count();
        assert_eq!(missing, 0, "customers at T without their periods");
    }
    let without = FeatureParams { as_of, ..Default::default() };
    let at_t =
        loyalty_features::customer_features_with(&t, &without, None, Ok::<_, loyalty_features::FeatureError>).unwrap();
    assert!(at_t.topup_days.is_none(), "counted only when asked for");
}

#[test]
fn curves_in_customer_partitions_equal_them_at_once() {
    use loyalty_features::curves::{CurveParams, satisfaction_curves};
    let t = tables(generated());
    let as_of = NaiveDate::from_ymd_opt(2024, 6, 30).unwrap();
    let params = |customers_per_partition| FeatureParams { as_of, customers_per_partition, ..Default::default() };
    let (active, _) = customer_features(&t, &params(0)).unwrap();
    let loyalty = loyalty_features::names::survival_at(6);
    let curves = |p: &FeatureParams| satisfaction_curves(&t, p, &CurveParams::default(), &active, &loyalty).unwrap();
    let (whole, parts) = (curves(&params(0)), curves(&params(1_500)));
    assert_same(&parts.curves, &whole.curves);
    assert_same(&parts.gaps, &whole.gaps);
    // The regressions see the same surveys in another order: equal to rounding.
    assert_same(&parts.drivers, &whole.drivers);
}

#[test]
fn leaver_tables_do_not_depend_on_the_order_bills_arrive_in() {
    use loyalty_features::leavers::{ReasonMap, analyse};
    let t = tables(generated());
    let mut reversed = t.clone();
    reversed.insert(Table::Billing, t[&Table::Billing].clone().reverse());
    let params = FeatureParams { as_of: NaiveDate::from_ymd_opt(2024, 6, 30).unwrap(), ..Default::default() };
    let at_t =
        loyalty_features::customer_features_with(&t, &params, None, Ok::<_, loyalty_features::FeatureError>).unwrap();
    let active = loyalty_features::segments::assign(
        at_t.table.lazy().with_column(lit(0.5).alias("loyalty")).collect().unwrap(),
        "loyalty",
        loyalty_features::segments::Cuts {
            ccv: loyalty_features::segments::Cut::absolute(1.0),
            cpv: None,
            loyalty: loyalty_features::segments::Cut::absolute(0.5),
        },
        [0.05, 0.2],
        [1, 5],
    )
    .unwrap();
    let first = NaiveDate::from_ymd_opt(2022, 1, 1).unwrap();
    let run = |t: &Tables| analyse(t, &params, &active, &ReasonMap::default(), 12, first, None).unwrap();
    let (a, b) = (run(&t), run(&reversed));
    assert!(a.winback.height() > 500, "{} win-back rows", a.winback.height());
    assert!(a.winback.column("churn_inferred").unwrap().bool().unwrap().any(), "prepaid leavers found silent");
    // Bit for bit: a float sum in arrival order moves its last bit (as it did at 1M rows).
    assert!(a.winback.equals_missing(&b.winback), "win-back differs when the bills arrive in reverse order");
    assert!(a.movement.equals_missing(&b.movement), "base movement differs when the bills arrive in reverse order");
    // The silent prepaid customers' last activity as the features at T found it, instead
    // of read from the event tables: the same tables.
    assert!(at_t.silent.last_seen.height() > 50, "{} silent", at_t.silent.last_seen.height());
    let c = analyse(&t, &params, &active, &ReasonMap::default(), 12, first, Some(&at_t.silent)).unwrap();
    assert!(a.winback.equals_missing(&c.winback), "win-back differs with the features' last activity");
    assert!(a.movement.equals_missing(&c.movement), "base movement differs with the features' last activity");
    assert!(a.reason_mix.equals_missing(&c.reason_mix), "reason mix differs with the features' last activity");
    assert!(a.leavers.equals_missing(&c.leavers), "leavers differ with the features' last activity");
}

#[test]
fn billing_kernel_refuses_duplicate_bills_it_was_trusted_not_to_get() {
    let mut t = tables(generated());
    // A May 2024 bill of a customer who never churns, billed twice.
    let stayers = t[&Table::Customers].clone().filter(col(c::CHURN_DATE).is_null()).select([col(c::CUSTOMER_ID)]);
    let may = NaiveDate::from_ymd_opt(2024, 5, 1).unwrap();
    let again = t[&Table::Billing]
        .clone()
        .filter(col(c::BILL_MONTH).eq(lit(may)))
        .join(stayers, [col(c::CUSTOMER_ID)], [col(c::CUSTOMER_ID)], JoinArgs::new(JoinType::Semi))
        .slice(0, 1);
    let id = again.clone().collect().unwrap().column(c::CUSTOMER_ID).unwrap().i64().unwrap().get(0).unwrap();
    t.insert(Table::Billing, concat([t[&Table::Billing].clone(), again], UnionArgs::default()).unwrap());
    let as_of = NaiveDate::from_ymd_opt(2024, 6, 30).unwrap();
    let err = customer_features(&t, &FeatureParams { as_of, ..Default::default() }).unwrap_err().to_string();
    assert!(
        err.contains("duplicate_key") && err.contains(&format!("two bills for customer_id {id} in month 2024-05-01")),
        "{err}"
    );
}

#[test]
fn clv_from_churn_scores_uses_them_and_falls_back_to_kaplan_meier() {
    let t = tables(generated());
    let as_of = NaiveDate::from_ymd_opt(2024, 6, 30).unwrap();
    let params = FeatureParams { as_of, ..Default::default() };
    let (km, _) = customer_features(&t, &params).unwrap();
    let ids: Vec<i64> = km.column(c::CUSTOMER_ID).unwrap().i64().unwrap().into_no_null_iter().collect();
    // Scores for the first three customers only: never churns, always churns, 50% in h.
    let scores: std::collections::HashMap<i64, f64> = [(ids[0], 0.0), (ids[1], 1.0), (ids[2], 0.5)].into();
    let (df, _) = loyalty_features::customer_features_with_churn_scores(&t, &params, &scores).unwrap();
    let get = |df: &DataFrame, name: &str, i: usize| df.column(name).unwrap().f64().unwrap().get(i).unwrap_or(0.0);
    let d = loyalty_features::monthly_discount_rate(params.annual_discount_rate);
    let n = params.valuation_months;
    // p = 0: CLV = margin x annuity = CCV. p = 1: nothing survives.
    assert!((get(&df, "clv", 0) - get(&df, "ccv", 0)).abs() < 1e-9 * get(&df, "ccv", 0).abs().max(1.0));
    assert_eq!(get(&df, "clv", 1), 0.0);
    // p = 0.5 within h months: S(t) = 0.5^(t/h).
    let h = f64::from(params.churn_horizon_months);
    let factor: f64 = (1..=n).map(|k| 0.5f64.powf(f64::from(k) / h) / (1.0 + d).powi(k as i32)).sum();
    let m = df.column("margin_monthly").unwrap().f64().unwrap().get(2).unwrap_or(0.0);
    assert!((get(&df, "clv", 2) - m * factor).abs() < 1e-9 * (m * factor).abs().max(1.0));
    // Everyone else keeps the Kaplan-Meier CLV.
    for i in 3..ids.len().min(500) {
        assert_eq!(get(&df, "clv", i), get(&km, "clv", i), "row {i}");
    }
}

#[test]
fn churn_scores_in_row_order_give_the_clv_scores_by_id_give() {
    use loyalty_features::{ChurnProbabilities, ChurnScores, with_survival};
    let t = tables(generated());
    let params = FeatureParams { as_of: NaiveDate::from_ymd_opt(2024, 6, 30).unwrap(), ..Default::default() };
    let (km, curves) = customer_features(&t, &params).unwrap();
    let ids: Vec<i64> = km.column(c::CUSTOMER_ID).unwrap().i64().unwrap().into_no_null_iter().collect();
    // Every third customer unscored (the Kaplan-Meier fallback), the others scored.
    let p: Float64Chunked = (0..ids.len()).map(|i| (i % 3 != 0).then(|| (i % 97) as f64 / 100.0)).collect();
    let by_id: std::collections::HashMap<i64, f64> =
        ids.iter().zip(p.iter()).filter_map(|(&id, p)| Some((id, p?))).collect();
    let h = params.churn_horizon_months;
    let clv = |p_churn| {
        let mut df = km.clone();
        with_survival(&mut df, &params, &ChurnScores { horizon_months: h, p_churn, fallback: &curves }).map(|()| df)
    };
    let (in_order, by_id) =
        (clv(ChurnProbabilities::InRowOrder(&p)).unwrap(), clv(ChurnProbabilities::ById(&by_id)).unwrap());
    for name in ["clv", "survival_6m"] {
        assert!(in_order.column(name).unwrap().equals_missing(by_id.column(name).unwrap()), "{name}");
    }
    assert_ne!(in_order.column("clv").unwrap().f64().unwrap().get(1), km.column("clv").unwrap().f64().unwrap().get(1));
    let short = p.slice(0, ids.len() - 1);
    let err = clv(ChurnProbabilities::InRowOrder(&short)).unwrap_err().to_string();
    assert!(err.contains("churn scores for"), "{err}");
}

/// The satisfaction-retention curves recovered from the data match the generator's
/// truth (the mean true P(still a customer h months after the survey) over the same
/// surveys) within their intervals; the fit is monotone; the contested market shows the
/// satisfied-vs-completely-satisfied gap the generator built in; price, the aspect with
/// the largest true weight, is the top driver.
#[test]
fn satisfaction_curves_recover_the_generators_truth() {
    use loyalty_features::curves::{CurveParams, satisfaction_curves};
    let g = generated();
    let t = tables(g);
    let as_of = NaiveDate::from_ymd_opt(2024, 6, 30).unwrap();
    assert_eq!(g.truth.world.data_end, as_of.succ_opt().unwrap(), "T must be the generator's last day");
    let params = FeatureParams { as_of, churn_horizon_months: g.truth.world.horizon_months, ..Default::default() };
    let (active, _) = customer_features(&t, &params).unwrap();
    let loyalty = loyalty_features::names::survival_at(params.churn_horizon_months);
    let out = satisfaction_curves(&t, &params, &CurveParams::default(), &active, &loyalty).unwrap();
    let cv = &out.curves;
    let level = cv.column("competition_level").unwrap().str().unwrap().clone();
    let sat = cv.column("satisfaction").unwrap().i64().unwrap().clone();
    let f = |name: &str| cv.column(name).unwrap().f64().unwrap().clone();
    let (obs, lo, hi, iso) = (f("observed_loyalty"), f("ci_low"), f("ci_high"), f("isotonic_loyalty"));
    let surveys = cv.column("surveys").unwrap().u64().unwrap().clone();
    let (mut cells, mut inside95, mut worst) = (0, 0, 0.0f64);
    for point in &g.truth.satisfaction_retention_curve {
        let i = (0..cv.height())
            .find(|&i| level.get(i) == Some(point.competition_level) && sat.get(i) == Some(i64::from(point.overall)))
            .unwrap_or_else(|| panic!("no cell {} {}", point.competition_level, point.overall));
        // the same surveys, but for the odd prepaid customer whose silence began before the survey
        let n_obs = surveys.get(i).unwrap() as f64;
        assert!(
            (n_obs - point.surveys as f64).abs() <= 0.02 * point.surveys as f64 + 2.0,
            "surveys in {} {}",
            point.competition_level,
            point.overall
        );
        if point.surveys < 30 {
            continue;
        }
        cells += 1;
        let (o, l, h) = (obs.get(i).unwrap(), lo.get(i).unwrap(), hi.get(i).unwrap());
        if (l..=h).contains(&point.p_retained) {
            inside95 += 1;
        }
        // z for 99.9% = 3.29 vs 1.96: every cell within the wider interval
        let wide = (h - l) / 2.0 * 3.29 / 1.96;
        worst = worst.max((o - point.p_retained).abs() / wide);
        assert!(
            (o - point.p_retained).abs() <= wide,
            "{} {}: observed {o:.4} [{l:.4}, {h:.4}] vs true {:.4}",
            point.competition_level,
            point.overall,
            point.p_retained
        );
    }
    assert!(cells >= 12, "only {cells} cells with data");
    assert!(inside95 as f64 >= 0.8 * cells as f64, "truth inside the 95% interval in {inside95} of {cells} cells");
    // monotone fit per level
    for l in ["low", "medium", "high"] {
        let fit: Vec<f64> =
            (0..cv.height()).filter(|&i| level.get(i) == Some(l)).map(|i| iso.get(i).unwrap()).collect();
        assert!(fit.windows(2).all(|w| w[0] <= w[1] + 1e-12), "{l}: {fit:?}");
    }
    // contested market: satisfied customers churn several times as often as completely satisfied ones
    let gaps = &out.gaps;
    let gl = gaps.column("competition_level").unwrap().str().unwrap().clone();
    let ratio = gaps.column("churn_ratio").unwrap().f64().unwrap().clone();
    let at = |l: &str| (0..gaps.height()).find(|&i| gl.get(i) == Some(l)).and_then(|i| ratio.get(i)).unwrap();
    assert!(at("high") > 2.0 && at("high") > at("low"), "ratios: high {} low {}", at("high"), at("low"));
    // zones: in the contested market the top level is in the zone of affection
    let zl: Vec<(String, String)> = (0..cv.height())
        .map(|i| (level.get(i).unwrap().to_string(), cv.column("zone").unwrap().str().unwrap().get(i).unwrap().into()))
        .collect();
    assert!(zl.iter().any(|(l, z)| l == "high" && z == "affection"), "{zl:?}");
    // drivers of satisfaction: the generator's weights are price 0.30 > service 0.25 >
    // product 0.20 > relationship, convenience 0.10 > brand 0.05 (the three weakest are
    // within each other's noise at this size: the top three must come out in order)
    let d = out
        .drivers
        .sort(["satisfaction_effect_per_sd"], SortMultipleOptions::default().with_order_descending(true))
        .unwrap();
    let order: Vec<&str> = d.column("aspect").unwrap().str().unwrap().iter().flatten().collect();
    assert_eq!(&order[..3], ["price", "service", "product"], "{d}");
    // every effect on satisfaction is positive and clear of zero
    assert!(d.column("satisfaction_ci_low").unwrap().f64().unwrap().into_no_null_iter().all(|v| v > 0.0), "{d}");
    eprintln!(
        "curves: {cells} cells, truth inside 95% in {inside95}, worst |error| / 99.9% half-width {worst:.2}\n{cv}"
    );
}

#[test]
fn offers_in_customer_chunks_equal_them_at_once() {
    use loyalty_features::offers::next_best_offers;
    let t = tables(generated());
    let as_of = NaiveDate::from_ymd_opt(2024, 6, 30).unwrap();
    let params = |customers_per_partition| FeatureParams { as_of, customers_per_partition, ..Default::default() };
    let (active, _) = customer_features(&t, &params(0)).unwrap();
    let active = active.lazy().with_column(lit("gold").alias("value_segment")).collect().unwrap();
    let (whole, chunks) =
        (next_best_offers(&active, &t, &params(0)).unwrap(), next_best_offers(&active, &t, &params(1_500)).unwrap());
    assert!(active.height() > 3_000 && whole.height() > active.height(), "{} offers", whole.height());
    assert!(whole.equals_missing(&chunks), "offers differ when ranked in chunks of 1,500 customers");
}

/// The generated dataset, the features' parameters at 2024-06-30, and the customers
/// active then with a value segment each: gold for every third id, iron otherwise.
fn active_in_two_segments() -> (Tables, FeatureParams, DataFrame) {
    let t = tables(generated());
    let params = FeatureParams { as_of: NaiveDate::from_ymd_opt(2024, 6, 30).unwrap(), ..Default::default() };
    let (active, _) = customer_features(&t, &params).unwrap();
    let segment = when((col(c::CUSTOMER_ID) % lit(3)).eq(lit(0))).then(lit("gold")).otherwise(lit("iron"));
    let active = active.lazy().with_column(segment.alias("value_segment")).collect().unwrap();
    (t, params, active)
}

#[test]
fn offers_do_not_depend_on_the_order_of_the_customers_table() {
    use loyalty_features::offers::next_best_offers;
    let (t, params, active) = active_in_two_segments();
    // In customer order the segments are placed beside the cells as they are; in any
    // other order they are joined on and sorted.
    let (sorted, reversed) =
        (next_best_offers(&active, &t, &params).unwrap(), next_best_offers(&active.reverse(), &t, &params).unwrap());
    assert!(sorted.height() > active.height(), "{} offers", sorted.height());
    assert!(sorted.equals_missing(&reversed), "offers differ when the customers come in reverse order");
}

#[test]
fn offers_are_the_ranking_of_every_customer_x_service_row() {
    use loyalty_features::offers::next_best_offers;
    // Segments vary, so each offer must carry its own customer's.
    let (t, params, active) = active_in_two_segments();
    let offers = next_best_offers(&active, &t, &params).unwrap();
    // The ranking as a sort of every customer x service row and a window per customer.
    let rows = loyalty_features::adoption_rates(&active, &t, &params).unwrap();
    let reference = rows
        .lazy()
        .filter(col("held").not())
        .with_column((col("p_adopt") * col(c::MONTHLY_MARGIN)).alias("expected_monthly_margin"))
        .sort(
            [c::CUSTOMER_ID, "expected_monthly_margin", c::SERVICE],
            SortMultipleOptions::default().with_order_descending_multi([false, true, false]),
        )
        .with_column(
            col(c::SERVICE)
                .cum_count(false)
                .over([col(c::CUSTOMER_ID)])
                .unwrap()
                .cast(DataType::Int64)
                .alias("offer_rank"),
        )
        .filter(col("offer_rank").lt_eq(lit(3i64)))
        .join(
            active.clone().lazy().select([col(c::CUSTOMER_ID), col("value_segment")]),
            [col(c::CUSTOMER_ID)],
            [col(c::CUSTOMER_ID)],
            JoinArgs { maintain_order: MaintainOrderJoin::Left, ..JoinArgs::new(JoinType::Left) },
        )
        .select(
            [
                c::CUSTOMER_ID,
                "value_segment",
                "offer_rank",
                c::SERVICE,
                "p_adopt",
                c::MONTHLY_MARGIN,
                "expected_monthly_margin",
            ]
            .map(col),
        )
        .collect()
        .unwrap();
    let held =
        loyalty_features::adoption_rates(&active, &t, &params).unwrap().column("held").unwrap().bool().unwrap().sum();
    assert!(
        held.unwrap_or(0) > 1_000 && offers.height() > active.height(),
        "{held:?} held, {} offers",
        offers.height()
    );
    assert!(offers.equals_missing(&reference), "{offers}\n{reference}");
}

/// The leavers' and joiners' bill values as the group-by over the window rows they
/// were computed with before the kernel (the reference for [`bill_values`]).
fn bill_values_by_group_by(t: &Tables, params: &FeatureParams, people: &DataFrame) -> DataFrame {
    use loyalty_features::leavers::{ACTIVE_UNTIL, WHOLE_HISTORY};
    let charge = col(c::TOTAL_CHARGE);
    let margin = (charge.clone() - col(c::COST)).fill_null(charge.clone() * lit(params.margin_rate));
    let unpaid = (charge.clone() - col(c::AMOUNT_PAID)).clip_min(lit(0.0)).fill_null(lit(0.0));
    let month = |e: Expr| e.dt().truncate(lit("1mo"));
    let windows = people.clone().lazy().select([
        col(c::CUSTOMER_ID),
        month(col(c::SIGNUP_DATE)).alias("__join_from"),
        month(col(c::SIGNUP_DATE)).dt().offset_by(lit("2mo")).alias("__join_to"),
        month(col(ACTIVE_UNTIL)).dt().offset_by(lit("-2mo")).alias("__leave_from"),
        month(col(ACTIVE_UNTIL)).alias("__leave_to"),
        col(WHOLE_HISTORY).alias("__whole"),
    ]);
    let bm = || col(c::BILL_MONTH);
    let rows = t[&Table::Billing]
        .clone()
        .filter(bm().lt_eq(lit(params.last_known_bill_month())))
        .join(windows, [col(c::CUSTOMER_ID)], [col(c::CUSTOMER_ID)], JoinArgs::new(JoinType::Inner))
        .select([
            col(c::CUSTOMER_ID),
            charge.clone().alias("__charge"),
            margin.clone().alias("__margin"),
            (margin - unpaid).alias("__collected"),
            bm().gt_eq(col("__leave_from")).and(bm().lt_eq(col("__leave_to"))).fill_null(lit(false)).alias("__leave"),
            bm().gt_eq(col("__join_from")).and(bm().lt_eq(col("__join_to"))).alias("__join"),
            col("__whole"),
        ])
        .filter(col("__leave").or(col("__join")).or(col("__whole")));
    let mean_where = |value: &str, flag: &str| {
        let k = col(flag).cast(DataType::Float64);
        when(k.clone().sum().gt(lit(0.0))).then((col(value) * k.clone()).sum() / k.sum()).otherwise(lit(NULL))
    };
    let whole = |e: Expr| when(col("__whole").any(false)).then(e).otherwise(lit(NULL));
    rows.group_by([col(c::CUSTOMER_ID)])
        .agg([
            mean_where("__charge", "__leave").alias("charge_before_leaving"),
            mean_where("__margin", "__leave").alias("margin_before_leaving"),
            mean_where("__collected", "__leave").alias("collected_margin_before_leaving"),
            whole(col("__collected").sum()).alias("lifetime_collected_margin"),
            whole(col("__margin").sum()).alias("lifetime_margin"),
            whole(len().cast(DataType::Int64)).alias("months_billed"),
            mean_where("__charge", "__join").alias("charge_after_joining"),
            mean_where("__margin", "__join").alias("margin_after_joining"),
        ])
        .sort([c::CUSTOMER_ID], SortMultipleOptions::default())
        .collect()
        .unwrap()
}

#[test]
fn leaver_bill_values_are_the_numbers_of_the_group_by() {
    use loyalty_features::leavers::{ACTIVE_UNTIL, WHOLE_HISTORY, bill_values};
    let t = tables(generated());
    let as_of = NaiveDate::from_ymd_opt(2024, 6, 30).unwrap();
    let params = FeatureParams { as_of, ..Default::default() };
    // Leavers (some with their whole history), joiners who stay, and people without a
    // bill in either window.
    let people = t[&Table::Customers]
        .clone()
        .select([
            col(c::CUSTOMER_ID),
            col(c::SIGNUP_DATE),
            col(c::CHURN_DATE).alias(ACTIVE_UNTIL),
            col(c::CHURN_DATE)
                .gt(lit(NaiveDate::from_ymd_opt(2024, 1, 1).unwrap()))
                .fill_null(lit(false))
                .alias(WHOLE_HISTORY),
        ])
        .collect()
        .unwrap();
    let got =
        bill_values(&t, &params, &people).unwrap().sort([c::CUSTOMER_ID], SortMultipleOptions::default()).unwrap();
    let expected = bill_values_by_group_by(&t, &params, &people);
    assert!(got.column("lifetime_margin").unwrap().null_count() < got.height(), "some whole histories");
    assert!(got.column("charge_before_leaving").unwrap().null_count() < got.height(), "some leavers");
    assert!(got.height() > 5_000, "{} people", got.height());
    assert_same(&got, &expected);
}
