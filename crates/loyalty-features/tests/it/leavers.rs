//! Leavers, the win-back list, the leaky bucket, reason classes and collected margin
//! on the hand-computed fixture (see `fixture` in main.rs for its customers).

use loyalty_features::leavers::{
    BILL_DAY_BEFORE_WINDOW, LAST_DAY, ReasonMap, SilentPrepaid, TOPUP_DAY_BEFORE_WINDOW, analyse, leavers,
};
use loyalty_features::{
    BillingEngine, FeatureParams, MarginBasis, annuity_factor, customer_features, monthly_discount_rate, names as n,
};
use polars::prelude::*;

use super::{date, fixture};

fn params() -> FeatureParams {
    FeatureParams { as_of: date("2024-06-30"), ..Default::default() }
}

/// Today's pyramid, as the leavers' tiers are read against it: platinum from a margin
/// of 20, gold from 5.
fn active() -> DataFrame {
    df!("customer_id" => [1i64, 2], "tier" => ["platinum", "gold"], n::MARGIN_MONTHLY => [20.0, 5.0]).unwrap()
}

fn f64s(df: &DataFrame, name: &str) -> Vec<Option<f64>> {
    df.column(name).unwrap().as_materialized_series().cast(&DataType::Float64).unwrap().f64().unwrap().iter().collect()
}

/// `got` equals `want` to rounding.
fn close(got: Vec<Option<f64>>, want: &[f64]) {
    assert_eq!(got.len(), want.len(), "{got:?} vs {want:?}");
    for (g, w) in got.iter().zip(want) {
        assert!(g.is_some_and(|g| (g - w).abs() < 1e-9), "{got:?} vs {want:?}");
    }
}

fn strs(df: &DataFrame, name: &str) -> Vec<String> {
    let s = df.column(name).unwrap().as_materialized_series().cast(&DataType::String).unwrap();
    s.str().unwrap().iter().map(|v| v.unwrap_or("").to_string()).collect()
}

#[test]
fn recorded_and_silent_leavers_with_their_reason_classes() {
    let t = fixture();
    let ids = Column::new("customer_id".into(), [1i64, 2]);
    let gone = leavers(&t, &params(), &ids, &ReasonMap::default()).unwrap();
    // 3 left on 2024-04-15 (moved). 5 (prepaid) was last active in January: a top-up on
    // the 15th and a bill with usage for the month, so the 31st; 90 days later is 30 April.
    assert_eq!(strs(&gone, "customer_id"), ["3", "5"]);
    assert_eq!(strs(&gone, "churn_date"), ["2024-04-15", "2024-04-30"]);
    assert_eq!(strs(&gone, "active_until"), ["2024-04-15", "2024-01-31"]);
    assert_eq!(strs(&gone, "churn_inferred"), ["false", "true"]);
    assert_eq!(strs(&gone, "churn_reason"), ["moved", "inactive_inferred"]);
    assert_eq!(strs(&gone, "reason_class"), ["uncontrollable", "controllable"]);
}

#[test]
fn silent_customers_last_activity_comes_from_the_features_where_they_found_it() {
    let t = fixture();
    let p = params();
    let at_t = loyalty_features::customer_features_with(&t, &p, None, Ok::<_, loyalty_features::FeatureError>).unwrap();
    // 5 fell silent after 31 January (days since the epoch: 19753), in the window: no
    // bill with usage before it.
    assert_eq!(strs(&at_t.silent.last_seen, "customer_id"), ["5"]);
    assert_eq!(strs(&at_t.silent.last_seen, LAST_DAY), ["19753"]);
    assert_eq!(strs(&at_t.silent.last_seen, BILL_DAY_BEFORE_WINDOW), [""]);
    assert_eq!(strs(&at_t.silent.last_seen, TOPUP_DAY_BEFORE_WINDOW), [""]);
    let run = |silent: Option<&SilentPrepaid>| {
        analyse(&t, &p, &active(), &ReasonMap::default(), 12, date("2024-01-01"), silent).unwrap()
    };
    let read = run(None);
    let found = run(Some(&at_t.silent));
    assert!(read.leavers.equals_missing(&found.leavers));
    assert!(read.winback.equals_missing(&found.winback));
    assert!(read.movement.equals_missing(&found.movement));
    // Not found in the window (null), or not in the features at all: read from the bills
    // and top-ups, the same.
    let unknown = SilentPrepaid { last_seen: df!("customer_id" => [5i64], LAST_DAY => [None::<i32>]).unwrap() };
    assert!(read.leavers.equals_missing(&run(Some(&unknown)).leavers));
    let absent = SilentPrepaid { last_seen: df!("customer_id" => [9i64], LAST_DAY => [Some(19_000i32)]).unwrap() };
    assert!(read.leavers.equals_missing(&run(Some(&absent)).leavers));
    // Not in the window, bills before it found by the features: only the top-ups are
    // read. With that bill (31 January) the same; without, the top-up of 15 January
    // (gone on 14 April).
    let bills_found = |day: Option<i32>| SilentPrepaid {
        last_seen: df!("customer_id" => [5i64], LAST_DAY => [None::<i32>], BILL_DAY_BEFORE_WINDOW => [day]).unwrap(),
    };
    assert!(read.leavers.equals_missing(&run(Some(&bills_found(Some(19_753)))).leavers));
    assert_eq!(strs(&run(Some(&bills_found(None))).leavers, "churn_date"), ["2024-04-15", "2024-04-14"]);
    // Both found before the window: nothing is read. A top-up on 9 December 2023 and no
    // bill: gone on 8 March (reading the top-ups would have found 15 January).
    let both = SilentPrepaid {
        last_seen: df!(
            "customer_id" => [5i64],
            LAST_DAY => [None::<i32>],
            BILL_DAY_BEFORE_WINDOW => [None::<i32>],
            TOPUP_DAY_BEFORE_WINDOW => [Some(19_700i32)]
        )
        .unwrap(),
    };
    assert_eq!(strs(&run(Some(&both)).leavers, "churn_date"), ["2024-04-15", "2024-03-08"]);
    // A day the features found is taken as it is: 15 February, so gone on 15 May.
    let later = SilentPrepaid { last_seen: df!("customer_id" => [5i64], LAST_DAY => [Some(19_768i32)]).unwrap() };
    let moved = run(Some(&later)).leavers;
    assert_eq!(strs(&moved, "churn_date"), ["2024-04-15", "2024-05-15"]);
}

#[test]
fn reason_codes_map_to_classes_whatever_their_case_and_unknown_ones_are_counted() {
    let map = ReasonMap::default();
    let df =
        df!("r" => [Some(" Non_Payment "), Some("PORTED_OUT"), Some("moved"), Some("alien abduction"), None]).unwrap();
    let out = df.lazy().select([map.class_of(col("r")).alias("class")]).collect().unwrap();
    assert_eq!(strs(&out, "class"), ["involuntary", "controllable", "uncontrollable", "unknown", "unknown"]);
}

#[test]
fn winback_keeps_winnable_classes_and_ranks_by_collected_margin() {
    let t = fixture();
    let p = params();
    let annuity = annuity_factor(monthly_discount_rate(p.annual_discount_rate), p.valuation_months);
    let run = |reasons: &ReasonMap| analyse(&t, &p, &active(), reasons, 12, date("2024-01-01"), None).unwrap();
    // Default: "moved" is uncontrollable, so only 5 is on the list: its one January bill of
    // 10 without a cost is a margin of 3.5 at the 35% margin rate.
    let default = run(&ReasonMap::default());
    assert_eq!(default.leavers_in_window, 2);
    let w = &default.winback;
    assert_eq!(strs(w, "customer_id"), ["5"]);
    close(f64s(w, "margin_monthly_before_churn"), &[3.5]);
    assert!((f64s(w, "value_lost")[0].unwrap() - 3.5 * annuity).abs() < 1e-9);
    // Nothing excluded: 3 (bills of 30 at a cost of 20 in Feb..Apr) ranks first.
    let all = run(&ReasonMap { winback_excludes: vec![], ..ReasonMap::default() });
    let w = &all.winback;
    assert_eq!(strs(w, "customer_id"), ["3", "5"]);
    close(f64s(w, "collected_margin_monthly_before_churn"), &[10.0, 3.5]);
    close(f64s(w, "lifetime_collected_margin"), &[40.0, 3.5]);
    // When 3 paid only 10 of its April bill of 30, it paid (10 + 10 - 10) / 3 a month.
    let mut short = t.clone();
    let april_of_3 = col("customer_id").eq(lit(3i64)).and(col("bill_month").eq(lit(date("2024-04-01"))));
    let billing = short[&loyalty_contract::Table::Billing].clone();
    short.insert(
        loyalty_contract::Table::Billing,
        billing.with_column(when(april_of_3).then(lit(10.0)).otherwise(col("amount_paid")).alias("amount_paid")),
    );
    let reasons = ReasonMap { winback_excludes: vec![], ..ReasonMap::default() };
    let w = analyse(&short, &p, &active(), &reasons, 12, date("2024-01-01"), None).unwrap().winback;
    assert_eq!(strs(&w, "customer_id"), ["5", "3"], "the short payer drops below 5");
    close(f64s(&w, "margin_monthly_before_churn"), &[3.5, 10.0]);
    assert!((f64s(&w, "collected_margin_monthly_before_churn")[1].unwrap() - 10.0 / 3.0).abs() < 1e-9);
    close(f64s(&w, "lifetime_collected_margin"), &[3.5, 20.0]);
}

#[test]
fn the_leaky_bucket_by_hand() {
    let t = fixture();
    let out = analyse(&t, &params(), &active(), &ReasonMap::default(), 12, date("2024-01-01"), None).unwrap();
    let m = &out.movement;
    assert_eq!(strs(m, "month"), ["2024-01-01", "2024-02-01", "2024-03-01", "2024-04-01", "2024-05-01", "2024-06-01"]);
    // Before January: 1, 3 and 5. 2 joins in February; 3 and 5 leave in April. 4 signs
    // up after T and is in no month.
    let ints = |name: &str| f64s(m, name).into_iter().map(|v| v.unwrap() as i64).collect::<Vec<_>>();
    assert_eq!(ints("opening_base"), [3, 3, 4, 4, 2, 2]);
    assert_eq!(ints("gross_adds"), [0, 1, 0, 0, 0, 0]);
    assert_eq!(ints("churners"), [0, 0, 0, 2, 0, 0]);
    assert_eq!(ints("closing_base"), [3, 4, 4, 2, 2, 2]);
    assert_eq!(ints("churners_postpaid"), [0, 0, 0, 1, 0, 0]);
    assert_eq!(ints("churners_uncontrollable"), [0, 0, 0, 1, 0, 0]);
    assert_eq!(ints("churners_controllable"), [0, 0, 0, 1, 0, 0]);
    close(vec![f64s(m, "churn_rate")[3]], &[0.5]);
    // Leaving in April: 3 billed 30 a month (margin 10), 5 billed 10 (margin 3.5).
    close(vec![f64s(m, "revenue_lost")[3]], &[40.0]);
    close(vec![f64s(m, "margin_lost")[3]], &[13.5]);
    // Joining in February: 2's first three bills, 10, 0 and 20 (margin 35%).
    close(vec![f64s(m, "revenue_gained")[1]], &[10.0]);
    assert!((f64s(m, "margin_gained")[1].unwrap() - 3.5).abs() < 1e-12);
}

#[test]
fn reason_mix_by_plan_competition_and_tier() {
    let t = fixture();
    let out = analyse(&t, &params(), &active(), &ReasonMap::default(), 12, date("2024-01-01"), None).unwrap();
    let mix = &out.reason_mix;
    let rows: Vec<String> = (0..mix.height())
        .map(|i| {
            let get = |c: &str| strs(mix, c)[i].clone();
            format!("{} {} {} {} {}", get("grouping"), get("group"), get("reason_class"), get("leavers"), get("share"))
        })
        .collect();
    // 3 (postpaid, market m2: competition 0.9, margin 10: gold) moved; 5 (prepaid, m1:
    // 0.2, margin 3.5: iron) fell silent.
    assert_eq!(
        rows,
        [
            "plan_type postpaid uncontrollable 1 1.0",
            "plan_type prepaid controllable 1 1.0",
            "competition_level high uncontrollable 1 1.0",
            "competition_level low controllable 1 1.0",
            "tier gold uncontrollable 1 1.0",
            "tier iron controllable 1 1.0",
            "all all controllable 1 0.5",
            "all all uncontrollable 1 0.5",
        ]
    );
}

/// Customer 1 leaves 8 of May's 48 and all of June's 50 unpaid.
fn unpaid_by_1() -> loyalty_features::Tables {
    let mut t = fixture();
    let billing = t[&loyalty_contract::Table::Billing].clone();
    let of_1 = |m: &str| col("customer_id").eq(lit(1i64)).and(col("bill_month").eq(lit(date(m))));
    let paid =
        when(of_1("2024-05-01")).then(lit(40.0)).when(of_1("2024-06-01")).then(lit(0.0)).otherwise(col("amount_paid"));
    t.insert(loyalty_contract::Table::Billing, billing.with_column(paid.alias("amount_paid")));
    t
}

#[test]
fn collected_margin_and_bad_debt_by_hand_on_both_billing_engines() {
    for billing_engine in [BillingEngine::Kernel, BillingEngine::Polars] {
        for (basis, margin) in [(MarginBasis::Billed, 51.5 / 3.0), (MarginBasis::Collected, (51.5 - 58.0) / 3.0)] {
            let p = FeatureParams { billing_engine, margin_basis: basis, ..params() };
            let (df, _) = customer_features(&unpaid_by_1(), &p).unwrap();
            let one = df.filter(&df.column("customer_id").unwrap().i64().unwrap().equal(1)).unwrap();
            // Apr..Jun: 46 - 30, 48 - 30, and 50 at 35% (no cost): 51.5 billed; 58 unpaid.
            let get = |c: &str| f64s(&one, c)[0].unwrap();
            assert!((get(n::MARGIN_MONTHLY) - margin).abs() < 1e-9, "{billing_engine:?} {basis:?}");
            assert!((get(n::MARGIN_COLLECTED_MONTHLY) - (51.5 - 58.0) / 3.0).abs() < 1e-9);
            assert_eq!((get(n::CHARGE_3M), get(n::UNPAID_AMOUNT_3M)), (144.0, 58.0));
        }
    }
}

#[test]
fn a_customer_who_does_not_pay_is_lead_and_bad_debt_is_shared_per_tier() {
    use loyalty_features::segments::{Cut, Cuts, assign, tier_table};
    let (df, _) = customer_features(&unpaid_by_1(), &params()).unwrap();
    let cuts = Cuts { ccv: Cut::absolute(0.0), cpv: None, loyalty: Cut::absolute(0.5) };
    let df = df.lazy().with_column(lit(0.9).alias("loyalty")).collect().unwrap();
    let df = assign(df, "loyalty", cuts, [0.05, 0.2], [1, 5]).unwrap();
    // 1 bills the highest margin but paid less than it cost: lead.
    let tiers: Vec<(String, String)> = strs(&df, "customer_id").into_iter().zip(strs(&df, "tier")).collect();
    assert!(tiers.contains(&("1".into(), "lead".into())), "{tiers:?}");
    let table = tier_table(&df).unwrap();
    let lead = strs(&table, "tier").iter().position(|x| x == "lead").unwrap();
    // lead holds 1 alone (58 of its 144 unpaid): 2 paid its bills, 5 is no longer active.
    assert!((f64s(&table, "bad_debt_share")[lead].unwrap() - 58.0 / 144.0).abs() < 1e-12);
}
