//! Next-best offers on the hand-computed fixture: the services not held, by expected
//! margin at CPV's adoption rates (see `hand_computed` in main.rs for those rates).

use loyalty_features::offers::{next_best_offers, offer_summary};
use loyalty_features::{FeatureParams, customer_features, names as n};
use polars::prelude::*;

use super::{date, fixture};

#[test]
fn offers_rank_the_services_not_held_and_add_up_to_cpv() {
    let t = fixture();
    let p = FeatureParams { as_of: date("2024-06-30"), ..Default::default() };
    let (df, _) = customer_features(&t, &p).unwrap();
    let df = df.lazy().with_column(lit("gold").alias("value_segment")).collect().unwrap();
    let offers = next_best_offers(&df, &t, &p).unwrap();
    let col_str = |name: &str| -> Vec<String> {
        let s = offers.column(name).unwrap().as_materialized_series().cast(&DataType::String).unwrap();
        s.str().unwrap().iter().map(|v| v.unwrap().to_string()).collect()
    };
    // 1 holds voicemail: streaming only (6/11 x 3.0). 2 holds nothing: streaming
    // (5/11 x 3.0) before voicemail (5/11 x 1.5).
    assert_eq!(col_str("customer_id"), ["1", "2", "2"]);
    assert_eq!(col_str("service"), ["streaming", "streaming", "voicemail"]);
    assert_eq!(col_str("offer_rank"), ["1", "1", "2"]);
    let expected: Vec<f64> =
        offers.column("expected_monthly_margin").unwrap().f64().unwrap().into_no_null_iter().collect();
    for (got, want) in expected.iter().zip([18.0 / 11.0, 15.0 / 11.0, 7.5 / 11.0]) {
        assert!((got - want).abs() < 1e-12, "{expected:?}");
    }
    // Every service not held is offered here (the catalog has two), so each customer's
    // offers add up to their CPV per month.
    let cpv: Vec<f64> = df.column(n::CPV_MONTHLY).unwrap().f64().unwrap().into_no_null_iter().collect();
    assert!((expected[0] - cpv[0]).abs() < 1e-9 && (expected[1] + expected[2] - cpv[1]).abs() < 1e-9);
    let summary = offer_summary(&offers).unwrap();
    let services: Vec<&str> = summary.column("service").unwrap().str().unwrap().iter().flatten().collect();
    assert_eq!(services, ["streaming", "voicemail"], "the service that adds most first");
    let best: Vec<i64> = summary.column("as_best_offer").unwrap().i64().unwrap().into_no_null_iter().collect();
    assert_eq!(best, [2, 0]);
}
