//! What retention is worth and where to look: behavioural churn signals, the win-back
//! list and the economics of lower churn.

use chrono::Months;
use loyalty_contract::col as c;
use polars::prelude::*;

use crate::curves::{Z95, wilson};
use crate::leavers::{CHURN_INFERRED, REASON_CLASS, ReasonMap};
use crate::{FeatureParams, annuity_factor, monthly_discount_rate, names as n, segments};

/// One signal: its name, the feature it reads and the bucket of a value (None: unknown).
type Bucketer = (&'static str, &'static str, fn(f64) -> &'static str);

const SIGNALS: [Bucketer; 5] = [
    ("complaints in the last 12 months", n::COMPLAINTS_12M, |v| match v {
        v if v < 0.5 => "0",
        v if v < 1.5 => "1",
        _ => "2+",
    }),
    ("unresolved contacts in the last 12 months", n::UNRESOLVED_12M, |v| if v < 0.5 { "0" } else { "1+" }),
    ("share of bills paid late (12 months)", n::LATE_PAYMENT_RATE_12M, |v| match v {
        v if v <= 0.0 => "never",
        v if v <= 0.25 => "up to 1 bill in 4",
        _ => "more than 1 bill in 4",
    }),
    ("days late trend", n::DAYS_LATE_TREND, |v| if v > 0.5 { "rising (> 0.5 day/month)" } else { "flat or falling" }),
    ("contact channels used (12 months)", n::CHANNELS_USED_12M, |v| match v {
        v if v < 0.5 => "0",
        v if v < 1.5 => "1",
        v if v < 2.5 => "2",
        _ => "3+",
    }),
];

/// Retention by behavioural signal (where surveys are missing, behaviour still tells):
/// `frame` holds one row per customer at a snapshot with the signal features and a
/// boolean `churned_col` (churned within the horizon). Per signal and bucket: customers,
/// retained, retention with a Wilson 95% interval, and churn relative to the first
/// bucket (the calm one).
pub fn signal_table(frame: &DataFrame, churned_col: &str) -> PolarsResult<DataFrame> {
    let churned: Vec<bool> = frame.column(churned_col)?.bool()?.iter().map(|v| v == Some(true)).collect();
    let (mut sig, mut bucket, mut customers, mut retained) = (vec![], vec![], vec![], vec![]);
    let (mut rate, mut lo, mut hi, mut rel) = (vec![], vec![], vec![], vec![]);
    for (name, feature, f) in SIGNALS {
        let Ok(column) = frame.column(feature) else { continue };
        let values = column.as_materialized_series().cast(&DataType::Float64)?;
        // bucket -> (customers, retained, smallest value seen: the buckets' order)
        let mut counts: Vec<(&'static str, f64, f64, f64)> = Vec::new();
        for (v, gone) in values.f64()?.iter().zip(&churned) {
            let v = v.filter(|v| v.is_finite());
            let b = v.map_or("unknown", f);
            let key = v.unwrap_or(f64::INFINITY);
            match counts.iter_mut().find(|(k, ..)| *k == b) {
                Some(e) => {
                    e.1 += 1.0;
                    e.2 += f64::from(u8::from(!gone));
                    e.3 = e.3.min(key);
                }
                None => counts.push((b, 1.0, f64::from(u8::from(!gone)), key)),
            }
        }
        counts.sort_by(|a, b| a.3.total_cmp(&b.3));
        let reference = counts.first().map(|(_, n, k, _)| (n - k) / n).unwrap_or(f64::NAN);
        for (b, n_, k, _) in counts {
            let (l, h) = wilson(k, n_, Z95);
            sig.push(name);
            bucket.push(b);
            customers.push(n_ as u64);
            retained.push(k as u64);
            rate.push(k / n_);
            lo.push(l);
            hi.push(h);
            rel.push(if reference > 0.0 { ((n_ - k) / n_) / reference } else { f64::NAN });
        }
    }
    DataFrame::new_infer_height(vec![
        Column::new("signal".into(), sig),
        Column::new("bucket".into(), bucket),
        Column::new("customers".into(), customers),
        Column::new("retained".into(), retained),
        Column::new("retention".into(), rate),
        Column::new("ci_low".into(), lo),
        Column::new("ci_high".into(), hi),
        Column::new(
            "churn_relative_to_first".into(),
            rel.into_iter().map(|v| v.is_finite().then_some(v)).collect::<Vec<_>>(),
        ),
    ])
}

/// Customers who left in the `months_back` months up to T (`leavers`, from
/// [`crate::leavers::leavers`]: recorded churn and prepaid customers who fell silent),
/// ranked by the value they took: the mean monthly margin they paid over their bills
/// of the 3 months up to their last active month, valued over the valuation horizon
/// (`value_lost`, the CCV they had on collected margin: a customer who did not pay is
/// not worth winning back). Leavers whose reason class `reasons` excludes are left out.
/// Rank 1 is the most valuable to win back.
/// `values` holds the leavers' [`crate::leavers::bill_values`].
pub fn winback(
    leavers: &DataFrame,
    values: &DataFrame,
    params: &FeatureParams,
    months_back: u32,
    reasons: &ReasonMap,
) -> PolarsResult<DataFrame> {
    let t = params.as_of;
    let from = t.checked_sub_months(Months::new(months_back)).unwrap_or(t);
    let excluded: Vec<&str> = reasons.winback_excludes.iter().map(String::as_str).collect();
    let keep = excluded.iter().fold(col(c::CHURN_DATE).gt(lit(from)), |k, x| k.and(col(REASON_CLASS).neq(lit(*x))));
    let recent = leavers.clone().lazy().filter(keep);
    let annuity = annuity_factor(monthly_discount_rate(params.annual_discount_rate), params.valuation_months);
    let tenure = ((col(c::CHURN_DATE).cast(DataType::Int32) - col(c::SIGNUP_DATE).cast(DataType::Int32))
        .cast(DataType::Float64)
        / lit(365.25 / 12.0))
    .floor()
    .cast(DataType::Int64);
    recent
        .join(values.clone().lazy(), [col(c::CUSTOMER_ID)], [col(c::CUSTOMER_ID)], JoinArgs::new(JoinType::Left))
        .select([
            col(c::CUSTOMER_ID),
            col(c::PLAN_TYPE),
            col(c::MARKET_ID),
            col(c::SIGNUP_DATE),
            col(c::CHURN_DATE),
            col(CHURN_INFERRED),
            col(c::CHURN_REASON),
            col(REASON_CLASS),
            tenure.alias("tenure_months_at_churn"),
            col(n::MONTHS_BILLED).fill_null(lit(0)),
            col("charge_before_leaving").alias("arpu_before_churn"),
            col("margin_before_leaving").alias("margin_monthly_before_churn"),
            col("collected_margin_before_leaving").alias("collected_margin_monthly_before_churn"),
            col("lifetime_margin").fill_null(lit(0.0)),
            col("lifetime_collected_margin").fill_null(lit(0.0)),
            (col("collected_margin_before_leaving").fill_null(lit(0.0)) * lit(annuity)).alias("value_lost"),
        ])
        .sort(["value_lost", c::CUSTOMER_ID], SortMultipleOptions::default().with_order_descending_multi([true, false]))
        .with_row_index("rank", Some(1))
        .collect()
}

/// sum_{t=1..n} q^t for q = r / (1 + d), n = None for the infinite sum.
fn discounted_sum(r: Expr, d: f64, n: Option<u32>) -> Expr {
    let q = r / lit(1.0 + d);
    match n {
        Some(n) => {
            let n = lit(n as f64);
            when(q.clone().lt(lit(1.0 - 1e-12)))
                .then(q.clone() * (lit(1.0) - q.clone().pow(n.clone())) / (lit(1.0) - q.clone()))
                .otherwise(n)
        }
        None => q.clone() / (lit(1.0) - q.clone()).clip_min(lit(1e-12)),
    }
}

/// What lower churn is worth, per value segment, per tier and over the whole base.
/// Each customer's monthly retention is r = loyalty^(1/h) (loyalty = P(still a customer
/// h months after T)); yearly churn a = 1 - r^12. Two scenarios: churn down 5% of itself
/// (a' = 0.95 a) and down 5 percentage points (a' = max(a - 0.05, 0)); r' = (1 - a')^(1/12).
/// CLV moves by the ratio of discounted retention sums over the valuation horizon
/// (clv' = clv x G_n(r') / G_n(r)); the next 12 months' margin by
/// margin_monthly x (sum_{t<=12} r'^t - r^t); `lifetime_*` uses the infinite discounted
/// horizon (how the literature's "5% less churn = 25-85% more profit" is usually meant).
pub fn retention_economics(df: &DataFrame, params: &FeatureParams, loyalty_col: &str) -> PolarsResult<DataFrame> {
    let d = monthly_discount_rate(params.annual_discount_rate);
    let h = params.churn_horizon_months as f64;
    let nv = params.valuation_months;
    let r = col(loyalty_col).clip(lit(1e-9), lit(1.0)).pow(lit(1.0 / h));
    let annual = lit(1.0) - r.clone().pow(lit(12.0));
    let r_of = |a: Expr| (lit(1.0) - a).clip_min(lit(0.0)).pow(lit(1.0 / 12.0));
    let scen_rel = r_of(annual.clone() * lit(0.95));
    let scen_pp = r_of((annual.clone() - lit(0.05)).clip_min(lit(0.0)));
    let m12 = |r: Expr| discounted_sum(r, 0.0, Some(12));
    let mut exprs = vec![
        col(segments::VALUE_SEGMENT),
        col(segments::TIER),
        col(n::CLV).fill_null(lit(0.0)).alias("__clv"),
        annual.alias("__annual_churn"),
        (col(n::MARGIN_MONTHLY).fill_null(lit(0.0)) * m12(r.clone())).alias("__m12"),
        // lifetime value: margin x infinite discounted retention sum
        (col(n::MARGIN_MONTHLY).fill_null(lit(0.0)) * discounted_sum(r.clone(), d, None)).alias("__life"),
    ];
    for (tag, r2) in [("rel5", scen_rel), ("pp5", scen_pp)] {
        exprs.push(
            (col(n::CLV).fill_null(lit(0.0))
                * (discounted_sum(r2.clone(), d, Some(nv)) / discounted_sum(r.clone(), d, Some(nv)) - lit(1.0)))
            .alias(format!("__dclv_{tag}")),
        );
        exprs.push(
            (col(n::MARGIN_MONTHLY).fill_null(lit(0.0)) * (m12(r2.clone()) - m12(r.clone())))
                .alias(format!("__dm12_{tag}")),
        );
        exprs.push(
            (col(n::MARGIN_MONTHLY).fill_null(lit(0.0))
                * (discounted_sum(r2.clone(), d, None) - discounted_sum(r.clone(), d, None)))
            .alias(format!("__dlife_{tag}")),
        );
    }
    let per_customer = df.clone().lazy().select(exprs);
    let aggs = || {
        let mut a = vec![
            len().cast(DataType::Int64).alias("customers"),
            col("__annual_churn").mean().alias("mean_yearly_churn"),
            col("__clv").sum().alias("clv_total"),
            col("__m12").sum().alias("margin_next_12m"),
            col("__life").sum().alias("lifetime_value_total"),
        ];
        for tag in ["rel5", "pp5"] {
            a.push(col(format!("__dclv_{tag}")).sum().alias(format!("clv_gain_{tag}")));
            a.push(col(format!("__dm12_{tag}")).sum().alias(format!("margin_12m_gain_{tag}")));
            a.push(col(format!("__dlife_{tag}")).sum().alias(format!("lifetime_gain_{tag}")));
        }
        a
    };
    let by = |key: &str, label: &str| {
        per_customer
            .clone()
            .group_by([col(key).alias("group")])
            .agg(aggs())
            .with_columns([col("group").cast(DataType::String), lit(label.to_string()).alias("grouping")])
    };
    let all =
        per_customer.clone().select(aggs()).with_columns([lit("all").alias("group"), lit("all").alias("grouping")]);
    let ordered = |lf: LazyFrame| lf.select([col("grouping"), col("group"), all_except(["grouping", "group"])]);
    let mut out = concat(
        [ordered(by(segments::VALUE_SEGMENT, "value_segment")), ordered(by(segments::TIER, "tier")), ordered(all)],
        UnionArgs::default(),
    )?;
    for tag in ["rel5", "pp5"] {
        out = out.with_columns([
            (lit(100.0) * col(format!("clv_gain_{tag}")) / col("clv_total")).alias(format!("clv_gain_{tag}_pct")),
            (lit(100.0) * col(format!("lifetime_gain_{tag}")) / col("lifetime_value_total"))
                .alias(format!("lifetime_gain_{tag}_pct")),
        ]);
    }
    // Streamed: the per-customer terms exist a morsel at a time, where collecting them
    // held 13 columns of every customer (0.6 GB at 10M customers).
    loyalty_contract::collect_streaming(
        out.sort(["grouping", "clv_total"], SortMultipleOptions::default().with_order_descending_multi([false, true])),
    )
}

fn all_except<const N: usize>(names: [&str; N]) -> Expr {
    all().exclude_cols(names).as_expr()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn economics_of_one_customer_by_hand() {
        // loyalty over h = 6 months 0.9^6 -> r = 0.9, yearly churn 1 - 0.9^12 = 0.717570.
        // 5% relative: a' = 0.681691, r' = 0.318309^(1/12) = 0.909060.
        let df = df!(
            "value_segment" => ["gold"],
            "tier" => ["gold"],
            "clv" => [100.0],
            "margin_monthly" => [10.0],
            "loyalty" => [0.9f64.powi(6)],
        )
        .unwrap();
        let p = FeatureParams { annual_discount_rate: 0.0, valuation_months: 24, ..FeatureParams::default() };
        let out = retention_economics(&df, &p, "loyalty").unwrap();
        let row = out.filter(&out.column("grouping").unwrap().str().unwrap().equal("all")).unwrap();
        let get = |c: &str| row.column(c).unwrap().f64().unwrap().get(0).unwrap();
        let a = 1.0 - 0.9f64.powi(12);
        assert!((get("mean_yearly_churn") - a).abs() < 1e-12);
        let r2 = (1.0 - 0.95 * a).powf(1.0 / 12.0);
        let g = |r: f64, n: i32| (1..=n).map(|t| r.powi(t)).sum::<f64>();
        assert!((get("clv_gain_rel5") - 100.0 * (g(r2, 24) / g(0.9, 24) - 1.0)).abs() < 1e-9);
        assert!((get("margin_12m_gain_rel5") - 10.0 * (g(r2, 12) - g(0.9, 12))).abs() < 1e-9);
        // 5 points: a' = 0.667570
        let r3 = (1.0 - (a - 0.05)).powf(1.0 / 12.0);
        assert!((get("clv_gain_pp5") - 100.0 * (g(r3, 24) / g(0.9, 24) - 1.0)).abs() < 1e-9);
        // lifetime (d = 0): sum r^t = r / (1 - r)
        let life = |r: f64| r / (1.0 - r);
        assert!((get("lifetime_gain_rel5_pct") - 100.0 * (life(r2) / life(0.9) - 1.0)).abs() < 1e-6);
    }

    #[test]
    fn signals_bucket_and_compare() {
        let df = df!(
            n::COMPLAINTS_12M => [0.0, 0.0, 0.0, 0.0, 1.0, 3.0, 2.0, 2.0],
            "churned" => [false, false, false, true, false, true, true, false],
        )
        .unwrap();
        let t = signal_table(&df, "churned").unwrap();
        let buckets: Vec<&str> = t.column("bucket").unwrap().str().unwrap().iter().flatten().collect();
        assert_eq!(buckets, ["0", "1", "2+"]);
        let retention: Vec<f64> = t.column("retention").unwrap().f64().unwrap().iter().flatten().collect();
        assert_eq!(retention, [0.75, 1.0, 1.0 / 3.0]);
        // churn 2/3 vs 1/4
        let rel = t.column("churn_relative_to_first").unwrap().f64().unwrap().get(2).unwrap();
        assert!((rel - (2.0 / 3.0) / 0.25).abs() < 1e-12);
    }
}
