//! Features: a hand-computed fixture, no leakage, and CPV adoption against the
//! generator's truth.

mod generated;
mod leavers;
mod offers;

use chrono::NaiveDate;
use loyalty_contract::Table;
use loyalty_features::{
    BillingEngine, FeatureParams, Tables, annuity_factor, customer_features, monthly_discount_rate, names as n,
};
use polars::prelude::*;

fn date(s: &str) -> NaiveDate {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
}

fn dates(name: &str, v: &[Option<&str>]) -> Column {
    let days: Vec<Option<i32>> = v
        .iter()
        .map(|d| d.map(|d| (date(d) - NaiveDate::from_ymd_opt(1970, 1, 1).unwrap()).num_days() as i32))
        .collect();
    Column::new(name.into(), days).cast(&DataType::Date).unwrap()
}

fn stamps(name: &str, v: &[&str]) -> Column {
    let us: Vec<i64> = v
        .iter()
        .map(|s| chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M").unwrap().and_utc().timestamp_micros())
        .collect();
    Column::new(name.into(), us).cast(&DataType::Datetime(TimeUnit::Microseconds, None)).unwrap()
}

fn with(mut df: DataFrame, cols: Vec<Column>) -> LazyFrame {
    for c in cols {
        df.with_column(c).unwrap();
    }
    df.lazy()
}

/// The fixture of the known-answer test; see `hand_computed_features` for the story.
fn fixture() -> Tables {
    let mut t = Tables::new();
    t.insert(
        Table::Customers,
        with(
            df!(
                "customer_id" => [1i64, 2, 3, 4, 5],
                "market_id" => ["m1", "m2", "m2", "m1", "m1"],
                "plan_type" => ["postpaid", "prepaid", "postpaid", "postpaid", "prepaid"],
                "contract_months" => [Some(12i64), None, Some(0), Some(12), None],
                "churn_reason" => [None::<&str>, None, Some("moved"), None, None],
            )
            .unwrap(),
            vec![
                dates(
                    "signup_date",
                    &[
                        Some("2023-01-10"),
                        Some("2024-02-20"),
                        Some("2022-05-05"),
                        Some("2024-07-05"),
                        Some("2023-06-01"),
                    ],
                ),
                dates("churn_date", &[None, None, Some("2024-04-15"), None, None]),
            ],
        ),
    );
    let months = ["2024-01-01", "2024-02-01", "2024-03-01", "2024-04-01", "2024-05-01", "2024-06-01", "2024-07-01"];
    let mut ids = vec![];
    let mut bm = vec![];
    let mut charge = vec![];
    let mut cost: Vec<Option<f64>> = vec![];
    let mut voice = vec![];
    let mut data = vec![];
    let mut sms = vec![];
    let mut discount: Vec<Option<f64>> = vec![];
    let mut paid = vec![];
    let mut late: Vec<Option<i64>> = vec![];
    // Customer 1: Jan..Jul (July is after T), charges 40, 42, .., 50, 999.
    for (i, m) in months.iter().enumerate() {
        ids.push(1i64);
        bm.push(Some(*m));
        let ch = if i == 6 { 999.0 } else { 40.0 + 2.0 * i as f64 };
        charge.push(ch);
        cost.push(if i == 5 { None } else { Some(30.0) });
        voice.push(100.0);
        data.push(1000.0 + 100.0 * i as f64);
        sms.push(10i64);
        discount.push(Some(if i == 2 { 5.0 } else { 0.0 }));
        paid.push(ch);
        late.push(Some([0, 3, 0, 10, 0, 0, 0][i]));
    }
    // Customer 2 (prepaid): Feb..Jun, charges 10, 0, 20, 10, 15; no cost, no discount.
    for (i, m) in months[1..6].iter().enumerate() {
        let ch = [10.0, 0.0, 20.0, 10.0, 15.0][i];
        ids.push(2);
        bm.push(Some(*m));
        charge.push(ch);
        cost.push(None);
        voice.push([50.0, 0.0, 60.0, 40.0, 45.0][i]);
        data.push([500.0, 0.0, 600.0, 400.0, 450.0][i]);
        sms.push(if ch > 0.0 { 5 } else { 0 });
        discount.push(None);
        paid.push(ch);
        late.push(Some(0));
    }
    // Customer 3 (churned in April): Jan..Apr at 30.
    for m in &months[..4] {
        ids.push(3);
        bm.push(Some(*m));
        charge.push(30.0);
        cost.push(Some(20.0));
        voice.push(10.0);
        data.push(10.0);
        sms.push(1);
        discount.push(Some(0.0));
        paid.push(30.0);
        late.push(Some(0));
    }
    // Customer 5 (prepaid): active in January only, then silent.
    for (i, m) in months[..6].iter().enumerate() {
        let ch = if i == 0 { 10.0 } else { 0.0 };
        ids.push(5);
        bm.push(Some(*m));
        charge.push(ch);
        cost.push(None);
        voice.push(if i == 0 { 20.0 } else { 0.0 });
        data.push(0.0);
        sms.push(0);
        discount.push(None);
        paid.push(ch);
        late.push(Some(0));
    }
    t.insert(
        Table::Billing,
        with(
            df!(
                "customer_id" => ids,
                "total_charge" => charge,
                "cost" => cost,
                "voice_minutes" => voice,
                "data_mb" => data,
                "sms_count" => sms,
                "discount" => discount,
                "amount_paid" => paid,
                "days_late" => late,
            )
            .unwrap(),
            vec![dates("bill_month", &bm)],
        ),
    );
    t.insert(
        Table::Markets,
        df!("market_id" => ["m1", "m2"], "competitors" => [Some(1i64), Some(5)], "competition_index" => [0.2, 0.9])
            .unwrap()
            .lazy(),
    );
    t.insert(
        Table::ServiceCatalog,
        df!("service" => ["voicemail", "streaming"], "monthly_price" => [2.0, 8.0], "monthly_margin" => [1.5, 3.0])
            .unwrap()
            .lazy(),
    );
    t.insert(
        Table::Services,
        with(
            df!("customer_id" => [1i64, 1, 3], "service" => ["voicemail", "streaming", "voicemail"]).unwrap(),
            vec![
                dates("start_date", &[Some("2023-02-01"), Some("2023-03-01"), Some("2022-06-01")]),
                dates("end_date", &[None, Some("2024-01-01"), None]),
            ],
        ),
    );
    t.insert(
        Table::Topups,
        with(
            df!("customer_id" => [2i64, 2, 2, 2, 2, 5], "amount" => [10.0, 20.0, 10.0, 15.0, 25.0, 10.0]).unwrap(),
            vec![stamps(
                "ts",
                &[
                    "2024-02-21 10:00",
                    "2024-04-03 10:00",
                    "2024-05-10 10:00",
                    "2024-06-12 10:00",
                    "2024-07-02 10:00",
                    "2024-01-15 10:00",
                ],
            )],
        ),
    );
    t.insert(
        Table::Interactions,
        with(
            df!(
                "customer_id" => [1i64, 1, 1, 1],
                "channel" => ["call", "web", "app", "call"],
                "kind" => ["complaint", "complaint", "inquiry", "complaint"],
                "resolved" => [Some(true), Some(false), Some(true), None],
            )
            .unwrap(),
            vec![stamps("ts", &["2023-05-01 09:00", "2024-03-03 09:00", "2024-06-30 23:00", "2024-07-01 09:00"])],
        ),
    );
    t.insert(
        Table::Surveys,
        with(
            df!(
                "customer_id" => [1i64, 1, 1, 2],
                "overall" => [3i64, 4, 1, 5],
                "product" => [None, Some(4i64), None, None],
                "service" => [None::<i64>, None, None, None],
                "relationship" => [None::<i64>, None, None, None],
                "price" => [Some(2i64), Some(3), Some(1), None],
                "convenience" => [None::<i64>, None, None, None],
                "brand" => [None::<i64>, None, None, None],
                "recommend" => [Some(6i64), Some(9), Some(0), Some(10)],
            )
            .unwrap(),
            vec![dates(
                "survey_date",
                &[Some("2024-01-15"), Some("2024-05-15"), Some("2024-07-15"), Some("2024-03-15")],
            )],
        ),
    );
    t.insert(
        Table::Referrals,
        with(
            df!("customer_id" => [1i64, 1], "referred_id" => [70i64, 71]).unwrap(),
            vec![dates("referral_date", &[Some("2023-03-01"), Some("2024-06-01")])],
        ),
    );
    t
}

fn value(df: &DataFrame, name: &str, row: usize) -> Option<f64> {
    df.column(name)
        .unwrap_or_else(|_| panic!("no column {name}"))
        .cast(&DataType::Float64)
        .unwrap()
        .f64()
        .unwrap()
        .get(row)
}

fn assert_close(df: &DataFrame, name: &str, row: usize, expected: f64) {
    let got = value(df, name, row).unwrap_or_else(|| panic!("{name}[{row}] is null, expected {expected}"));
    assert!((got - expected).abs() < 1e-6 * expected.abs().max(1.0), "{name}[{row}] = {got}, expected {expected}");
}

#[test]
fn hand_computed_features() {
    hand_computed(BillingEngine::Kernel);
}

#[test]
fn hand_computed_features_with_the_reference_billing_plan() {
    hand_computed(BillingEngine::Polars);
}

#[test]
fn a_service_held_twice_at_t_counts_once_in_cpv() {
    // Customer 1 holds voicemail on two open rows (signed up again in May): CPV and the
    // adoption rates are as in the fixture, where it is held once.
    let mut t = fixture();
    t.insert(
        Table::Services,
        with(
            df!("customer_id" => [1i64, 1, 1, 3], "service" => ["voicemail", "streaming", "voicemail", "voicemail"])
                .unwrap(),
            vec![
                dates("start_date", &[Some("2023-02-01"), Some("2023-03-01"), Some("2024-05-01"), Some("2022-06-01")]),
                dates("end_date", &[None, Some("2024-01-01"), None, None]),
            ],
        ),
    );
    let params = FeatureParams { as_of: date("2024-06-30"), ..Default::default() };
    let (df, _) = customer_features(&t, &params).unwrap();
    assert_close(&df, n::CPV_MONTHLY, 0, 6.0 / 11.0 * 3.0);
    assert_close(&df, n::CPV_MONTHLY, 1, 5.0 / 11.0 * 4.5);
}

fn hand_computed(billing_engine: BillingEngine) {
    let params = FeatureParams { as_of: date("2024-06-30"), billing_engine, ..Default::default() };
    let (df, _) = customer_features(&fixture(), &params).unwrap();
    // Active at T = 2024-06-30: 1 and 2. Not 3 (churned 2024-04-15), not 4 (joins in
    // July), not 5 (prepaid, last activity 2024-01-31: 151 days > 90 without activity).
    let ids: Vec<i64> = df.column("customer_id").unwrap().i64().unwrap().into_no_null_iter().collect();
    assert_eq!(ids, [1, 2]);

    // Customer 1 (row 0): postpaid, 12-month contract, signed 2023-01-10, market m1 (index 0.2: low).
    // Known bills Jan..Jun (July ends after T); k = 5..0 from January to June.
    let level = df.column(n::COMPETITION_LEVEL).unwrap().cast(&DataType::String).unwrap();
    assert_eq!(level.str().unwrap().get(0), Some("low"));
    assert_close(&df, n::TENURE_MONTHS, 0, 17.0); // 2024-06 - 2023-01 = 17; day 30 >= 10
    assert_close(&df, n::MONTHS_BILLED, 0, 6.0);
    assert_close(&df, n::MONTHS_TO_CONTRACT_END, 0, 7.0); // 12 - 17 mod 12
    assert_close(&df, n::ARPU_3M, 0, 48.0); // (46 + 48 + 50) / 3
    assert_close(&df, n::ARPU_12M, 0, 45.0); // 270 / 6
    assert_close(&df, n::MARGIN_MONTHLY, 0, (16.0 + 18.0 + 50.0 * 0.35) / 3.0); // June has no cost: 0.35 * 50
    assert_close(&df, n::CHARGE_TREND, 0, 2.0); // +2 a month
    assert_close(&df, n::CHARGE_VOLATILITY, 0, (70.0f64 / 6.0).sqrt() / 45.0); // deviations -5,-3,-1,1,3,5
    assert_close(&df, n::DISCOUNT_SHARE_12M, 0, 5.0 / 275.0);
    assert_close(&df, n::VOICE_TREND, 0, 0.0);
    assert_close(&df, n::DATA_TREND, 0, 100.0);
    assert_close(&df, n::DATA_MB_3M, 0, 1400.0);
    assert_close(&df, n::LATE_PAYMENT_RATE_12M, 0, 2.0 / 6.0); // Feb (3 days), Apr (10 days)
    assert_close(&df, n::MAX_DAYS_LATE_12M, 0, 10.0);
    assert_close(&df, n::UNPAID_AMOUNT_12M, 0, 0.0);
    // days_late at x = -5..0: 0,3,0,10,0,0: n=6, Sx=-15, Sy=13, Sxy=-32, Sxx=55 -> 3/105.
    assert_close(&df, n::DAYS_LATE_TREND, 0, 3.0 / 105.0);
    assert_close(&df, n::RECENCY_DAYS, 0, 0.0); // June bill with usage, month end = T
    assert_close(&df, n::TOPUPS_12M, 0, 0.0);
    // Contacts in (2023-06-30, 2024-06-30]: the 2024-03-03 complaint (web, unresolved)
    // and the 2024-06-30 inquiry (app); 2023-05-01 is too old, 2024-07-01 too new.
    assert_close(&df, n::COMPLAINTS_12M, 0, 1.0);
    assert_close(&df, n::CONTACTS_12M, 0, 2.0);
    assert_close(&df, n::UNRESOLVED_12M, 0, 1.0);
    assert_close(&df, n::CHANNELS_USED_12M, 0, 2.0);
    // Latest survey at or before T: 2024-05-15 (the July one is after T).
    assert_close(&df, n::SURVEYS_ANSWERED, 0, 2.0);
    assert_close(&df, n::SURVEY_OVERALL, 0, 4.0);
    assert_close(&df, n::SURVEY_RECOMMEND, 0, 9.0);
    assert_close(&df, &n::survey_aspect("price"), 0, 3.0);
    assert_close(&df, &n::survey_aspect("product"), 0, 4.0);
    assert!(value(&df, &n::survey_aspect("brand"), 0).is_none());
    assert_close(&df, n::SURVEY_AGE_DAYS, 0, 46.0); // May 15 -> June 30
    assert_close(&df, n::REFERRALS_MADE, 0, 2.0);
    assert_close(&df, n::REFERRALS_12M, 0, 1.0);
    assert_close(&df, n::SERVICES_HELD, 0, 1.0); // voicemail; streaming ended 2024-01-01
    assert_close(&df, n::SERVICES_MARGIN_MONTHLY, 0, 1.5);

    // Customer 2 (row 1): prepaid since 2024-02-20, market m2 (0.9: high).
    let level = df.column(n::COMPETITION_LEVEL).unwrap().cast(&DataType::String).unwrap();
    assert_eq!(level.str().unwrap().get(1), Some("high"));
    assert_close(&df, n::TENURE_MONTHS, 1, 4.0);
    assert!(value(&df, n::MONTHS_TO_CONTRACT_END, 1).is_none());
    assert_close(&df, n::ARPU_3M, 1, 15.0); // (20 + 10 + 15) / 3
    assert_close(&df, n::ARPU_12M, 1, 11.0); // 55 / 5
    assert_close(&df, n::MARGIN_MONTHLY, 1, 0.35 * 15.0);
    // Charges at x = -4..0: 10,0,20,10,15: n=5, Sx=-10, Sy=55, Sxy=-90, Sxx=30 -> 100/50.
    assert_close(&df, n::CHARGE_TREND, 1, 2.0);
    assert_close(&df, n::CHARGE_VOLATILITY, 1, (220.0f64 / 5.0).sqrt() / 11.0);
    assert_close(&df, n::DISCOUNT_SHARE_12M, 1, 0.0);
    assert_close(&df, n::TOPUPS_12M, 1, 4.0); // the 2024-07-02 top-up is after T
    assert_close(&df, n::TOPUP_AMOUNT_12M, 1, 55.0);
    assert_close(&df, n::TOPUPS_PER_MONTH, 1, 1.0); // 4 over 4 months of tenure
    assert_close(&df, n::RECENCY_DAYS, 1, 0.0);
    assert_close(&df, n::SURVEY_OVERALL, 1, 5.0);
    assert_close(&df, n::SURVEY_AGE_DAYS, 1, 107.0); // March 15 -> June 30
    assert_close(&df, n::SERVICES_HELD, 1, 0.0);

    // Scores over the two active customers.
    assert_close(&df, n::PREMIUM_PCT, 0, 0.0); // alone in (plan, market)
    assert_close(&df, n::ADVOCACY_SCORE, 0, 0.5 + 0.5 * 0.9);
    assert_close(&df, n::ADVOCACY_SCORE, 1, 0.5 * 1.0);
    assert_close(&df, n::ENGAGEMENT_SCORE, 0, 1.0); // 2 + 2 - 1 = 3 vs 1 + 0 - 0 = 1
    assert_close(&df, n::TRANSACTIONAL_LOYALTY, 0, (0.5 + 0.5 + 1.0 + 1.0) / 4.0);
    assert_close(&df, n::TRANSACTIONAL_LOYALTY, 1, (0.5 + 0.5 + 0.0 + 0.0) / 4.0);
    assert_close(&df, n::EMOTIONAL_LOYALTY, 0, (0.5 + 0.95 + 1.0) / 3.0);

    // Value. Annuity at d = 1.1^(1/12) - 1 over 24 months = (1 - 1/1.21) / d = 21.7646.
    let annuity = annuity_factor(monthly_discount_rate(0.10), 24);
    assert!((annuity - 21.7646).abs() < 1e-3, "{annuity}");
    let m1 = (16.0 + 18.0 + 17.5) / 3.0;
    assert_close(&df, n::CCV, 0, m1 * annuity);
    assert_close(&df, n::CCV, 1, 5.25 * annuity);
    // CPV: each customer is alone in its cell (plan/arpu quintile/data tercile); base
    // adoption rates (ever held by T, active customers): voicemail 1/2, streaming 1/2.
    // Customer 1's cell: (1 + 10 * 0.5) / (1 + 10) = 6/11 for both; it still holds
    // voicemail, so CPV counts streaming only: 6/11 * 3.0.
    // Customer 2's cell: (0 + 5) / 11 = 5/11 for both: 5/11 * (1.5 + 3.0).
    assert_close(&df, n::CPV_MONTHLY, 0, 6.0 / 11.0 * 3.0);
    assert_close(&df, n::CPV_MONTHLY, 1, 5.0 / 11.0 * 4.5);
    assert_close(&df, n::CPV, 1, 5.0 / 11.0 * 4.5 * annuity);
    // CLV: no survival cell has 30 customers at risk, so the hazard falls back to 0
    // and CLV equals CCV; survival after h = 6 months is 1.
    assert_close(&df, n::CLV, 0, m1 * annuity);
    assert_close(&df, &n::survival_at(6), 1, 1.0);
}
