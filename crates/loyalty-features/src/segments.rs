//! Value segments, the customer pyramid and the loyalty ladder (DOMAIN.md section 4)
//! on the one-row-per-customer table.

use polars::prelude::*;

use loyalty_contract::labels::{as_text, label, labels};

use crate::names as n;

/// The eight value segments by (high CCV, high CPV, high loyalty), with their strategy.
pub const SEGMENTS: [(bool, bool, bool, &str, &str); 8] = [
    (true, true, true, "platinum", "top priority: VIP service, relationship marketing, personal care"),
    (true, false, true, "gold", "keep: enough resources to hold a stable relationship"),
    (false, false, true, "loyal", "basic quality service; not a retention focus"),
    (false, true, true, "potential", "invest: personalised offers that raise current spend"),
    (true, true, false, "vulnerable", "find the churn reasons; targeted retention offers"),
    (true, false, false, "short_term", "maintain; do not overspend to keep them"),
    (false, false, false, "least_valuable", "minimal spend; let go if they leave"),
    (false, true, false, "developable", "improve satisfaction to convert into high value"),
];

/// Where "high" starts for CCV, CPV and loyalty.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Split {
    /// At this quantile of the active base (0.5: the median, the default).
    Quantile(f64),
    /// At these values (ccv, cpv, loyalty).
    Absolute(f64, f64, f64),
}

/// Column names added by [`assign`].
pub const VALUE_SEGMENT: &str = "value_segment";
pub const TIER: &str = "tier";
pub const STAGE: &str = "stage";
pub const NPS_GROUP: &str = "nps_group";
pub const SAT_QUADRANT: &str = "sat_quadrant";
pub const TERRORIST: &str = "terrorist";

/// The values of the text columns [`assign`] adds, held as labels
/// (`loyalty_contract::labels`: one byte a customer).
pub const TIERS: [&str; 4] = ["platinum", "gold", "iron", "lead"];
pub const STAGES: [&str; 3] = ["new", "repeat", "advocate"];
pub const NPS_GROUPS: [&str; 3] = ["promoter", "passive", "detractor"];
pub const QUADRANTS: [&str; 4] = ["apostle", "mercenary", "hostage", "defector"];

/// Where one axis turns high: values above `at` are high, values equal to it only
/// when `ties_high`.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Cut {
    pub at: f64,
    pub ties_high: bool,
}

impl Cut {
    /// An absolute cut: at or above is high, except at zero (no value is not high value).
    pub fn absolute(at: f64) -> Cut {
        Cut { at, ties_high: at != 0.0 }
    }

    /// Whether `name` is high; a missing value is low.
    fn high(self, name: &str) -> Expr {
        let v = col(name);
        let above = if self.ties_high { v.gt_eq(lit(self.at)) } else { v.gt(lit(self.at)) };
        above.fill_null(lit(false))
    }
}

/// The cut of each axis; `cpv` is None when CPV cannot be estimated (no services or
/// no service catalog in the data): then nobody is high CPV.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Cuts {
    pub ccv: Cut,
    pub cpv: Option<Cut>,
    pub loyalty: Cut,
}

/// The `q` quantile of `name` over the customers who have a value, and which side the
/// customers exactly at it go to. A value equal to a zero cut is not high (half the base
/// at CPV 0 holds no potential). Otherwise ties go to the side that brings the high
/// share closer to `1 - q` (high when both are as close), so a mass of equal values
/// at the median cannot make almost everyone high or almost nobody.
fn quantile_cut(df: &DataFrame, name: &str, q: f64) -> PolarsResult<Cut> {
    let s = df.column(name)?.as_materialized_series().cast(&DataType::Float64)?;
    let values = s.f64()?;
    let at = values.quantile(q, QuantileMethod::Linear)?.unwrap_or(0.0);
    let (mut above, mut equal, mut known) = (0usize, 0usize, 0usize);
    for v in values.iter().flatten() {
        known += 1;
        if v > at {
            above += 1;
        } else if v == at {
            equal += 1;
        }
    }
    let target = (1.0 - q) * known as f64;
    let closer_with_ties = ((above + equal) as f64 - target).abs() <= (above as f64 - target).abs();
    Ok(Cut { at, ties_high: at != 0.0 && closer_with_ties })
}

/// The cuts of `split` on the active base.
pub fn cuts(df: &DataFrame, loyalty_col: &str, split: Split, cpv_estimated: bool) -> PolarsResult<Cuts> {
    let (ccv, cpv, loyalty) = match split {
        Split::Quantile(q) => {
            (quantile_cut(df, n::CCV, q)?, quantile_cut(df, n::CPV, q)?, quantile_cut(df, loyalty_col, q)?)
        }
        Split::Absolute(a, b, c) => (Cut::absolute(a), Cut::absolute(b), Cut::absolute(c)),
    };
    Ok(Cuts { ccv, cpv: cpv_estimated.then_some(cpv), loyalty })
}

/// The lead tier's rule: the customer costs more than they bring, billed or (where
/// payments are known) collected.
pub(crate) fn unprofitable(billed: Expr, collected: Option<Expr>) -> Expr {
    let billed = billed.lt_eq(lit(0.0));
    match collected {
        Some(paid) => billed.or(paid.lt_eq(lit(0.0)).fill_null(lit(false))),
        None => billed,
    }
}

/// Add value_segment, tier, stage and nps_group to `df` (customers active at T, with
/// ccv, cpv, `loyalty_col`, margin_monthly, tenure_months, referrals_made and
/// survey_recommend). High means above the cut, or at it as [`Cut`] says; without a CPV
/// cut everyone is low CPV (the four low-CPV segments). Tiers rank margin_monthly:
/// the top `tier_shares[0]` are platinum, the next up to `tier_shares[1]` gold, the
/// rest iron while their margin is positive, lead at or below zero (billed, or collected
/// where `margin_collected_monthly` is there: a customer who does not pay is lead).
/// `satisfaction_scale` is the lowest and highest `overall` score: satisfied means in the
/// top quarter of the scale (4 or 5 of 1..5), the lowest score marks terrorists.
pub fn assign(
    df: DataFrame,
    loyalty_col: &str,
    cuts: Cuts,
    tier_shares: [f64; 2],
    satisfaction_scale: [i64; 2],
) -> PolarsResult<DataFrame> {
    let [lowest, highest] = satisfaction_scale.map(|v| v as f64);
    let high_cpv = cuts.cpv.map_or(lit(false), |c| c.high(n::CPV));
    let segment_type = labels(&SEGMENTS.map(|s| s.3));
    let mut segment = lit(NULL).cast(segment_type.clone());
    for (c, p, l, name, _) in SEGMENTS.iter().rev() {
        let cond = cuts
            .ccv
            .high(n::CCV)
            .eq(lit(*c))
            .and(high_cpv.clone().eq(lit(*p)))
            .and(cuts.loyalty.high(loyalty_col).eq(lit(*l)));
        segment = when(cond).then(label(name, &segment_type)).otherwise(segment);
    }
    // Rank by margin, highest first: the share of customers at or above a customer.
    let count = df.height().max(1) as f64;
    let rank = col(n::MARGIN_MONTHLY)
        .fill_null(lit(0.0))
        .rank(RankOptions { method: RankMethod::Ordinal, descending: true }, None)
        .cast(DataType::Float64)
        / lit(count);
    let collected = df.column(n::MARGIN_COLLECTED_MONTHLY).is_ok().then(|| col(n::MARGIN_COLLECTED_MONTHLY));
    let t = labels(&TIERS);
    let tier = when(unprofitable(col(n::MARGIN_MONTHLY).fill_null(lit(0.0)), collected))
        .then(label("lead", &t))
        .when(rank.clone().lt_eq(lit(tier_shares[0])))
        .then(label("platinum", &t))
        .when(rank.lt_eq(lit(tier_shares[1])))
        .then(label("gold", &t))
        .otherwise(label("iron", &t));
    let s = labels(&STAGES);
    let stage = when(col(n::TENURE_MONTHS).lt(lit(3)))
        .then(label("new", &s))
        .when(col(n::REFERRALS_MADE).fill_null(lit(0.0)).gt(lit(0.0)).or(col(n::SURVEY_RECOMMEND).gt_eq(lit(9.0))))
        .then(label("advocate", &s))
        .otherwise(label("repeat", &s));
    let g = labels(&NPS_GROUPS);
    let nps = when(col(n::SURVEY_RECOMMEND).is_null())
        .then(lit(NULL).cast(g.clone()))
        .when(col(n::SURVEY_RECOMMEND).gt_eq(lit(9.0)))
        .then(label("promoter", &g))
        .when(col(n::SURVEY_RECOMMEND).gt_eq(lit(7.0)))
        .then(label("passive", &g))
        .otherwise(label("detractor", &g));
    // Jones & Sasser quadrants: satisfied = latest overall score in the top quarter of
    // the scale (>= 4 of 1..5); loyal = loyalty at or above the split. No survey: no
    // quadrant. Terrorists: defectors with the lowest score and a complaint in the last
    // 12 months.
    let satisfied = col(n::SURVEY_OVERALL).gt_eq(lit(lowest + 0.75 * (highest - lowest)));
    let loyal = cuts.loyalty.high(loyalty_col);
    let q = labels(&QUADRANTS);
    let quadrant = when(col(n::SURVEY_OVERALL).is_null())
        .then(lit(NULL).cast(q.clone()))
        .when(satisfied.clone().and(loyal.clone()))
        .then(label("apostle", &q))
        .when(satisfied)
        .then(label("mercenary", &q))
        .when(loyal)
        .then(label("hostage", &q))
        .otherwise(label("defector", &q));
    let terrorist = quadrant
        .clone()
        .eq(lit("defector"))
        .and(col(n::SURVEY_OVERALL).lt_eq(lit(lowest)))
        .and(col(n::COMPLAINTS_12M).fill_null(lit(0.0)).gt(lit(0.0)))
        .fill_null(lit(false));
    df.lazy()
        .with_columns([
            segment.alias(VALUE_SEGMENT),
            tier.alias(TIER),
            stage.alias(STAGE),
            nps.alias(NPS_GROUP),
            quadrant.alias(SAT_QUADRANT),
        ])
        .with_column(terrorist.alias(TERRORIST))
        .collect()
}

/// Per value segment (all eight, in the DOMAIN.md order): customers, share, revenue
/// (arpu_3m) and margin shares, mean and median ccv, cpv, loyalty and clv, strategy.
pub fn segment_table(df: &DataFrame, loyalty_col: &str) -> PolarsResult<DataFrame> {
    let total = df.height().max(1) as f64;
    let revenue: f64 =
        df.column(n::ARPU_3M)?.as_materialized_series().cast(&DataType::Float64)?.f64()?.sum().unwrap_or(0.0);
    let margin: f64 =
        df.column(n::MARGIN_MONTHLY)?.as_materialized_series().cast(&DataType::Float64)?.f64()?.sum().unwrap_or(0.0);
    let mut aggs = vec![
        len().cast(DataType::Float64).alias("customers"),
        (col(n::ARPU_3M).sum() / lit(if revenue != 0.0 { revenue } else { 1.0 })).alias("revenue_share"),
        (col(n::MARGIN_MONTHLY).sum() / lit(if margin != 0.0 { margin } else { 1.0 })).alias("margin_share"),
    ];
    aggs.extend(bad_debt_share(df));
    for v in [n::CCV, n::CPV, loyalty_col, n::CLV] {
        aggs.push(col(v).mean().alias(format!("mean_{v}")));
        aggs.push(col(v).median().alias(format!("median_{v}")));
    }
    let stats = df.clone().lazy().group_by([col(VALUE_SEGMENT)]).agg(aggs).collect()?;
    let stats = as_text(stats)?;
    let order = DataFrame::new_infer_height(vec![
        Column::new(VALUE_SEGMENT.into(), SEGMENTS.map(|s| s.3).to_vec()),
        Column::new("high_ccv".into(), SEGMENTS.map(|s| s.0).to_vec()),
        Column::new("high_cpv".into(), SEGMENTS.map(|s| s.1).to_vec()),
        Column::new("high_loyalty".into(), SEGMENTS.map(|s| s.2).to_vec()),
        Column::new("strategy".into(), SEGMENTS.map(|s| s.4).to_vec()),
    ])?;
    order
        .lazy()
        .join(
            stats.lazy(),
            [col(VALUE_SEGMENT)],
            [col(VALUE_SEGMENT)],
            JoinArgs { maintain_order: MaintainOrderJoin::Left, ..JoinArgs::new(JoinType::Left) },
        )
        .with_columns([
            col("customers").fill_null(lit(0.0)),
            (col("customers").fill_null(lit(0.0)) / lit(total)).alias("share"),
        ])
        .collect()
}

/// The share of the last 3 months' billing a group left unpaid, when the table has the
/// billed and unpaid amounts.
fn bad_debt_share(df: &DataFrame) -> Option<Expr> {
    (df.column(n::CHARGE_3M).is_ok() && df.column(n::UNPAID_AMOUNT_3M).is_ok()).then(|| {
        let billed = col(n::CHARGE_3M).sum();
        when(billed.clone().gt(lit(0.0)))
            .then(col(n::UNPAID_AMOUNT_3M).sum() / billed)
            .otherwise(lit(NULL).cast(DataType::Float64))
            .alias("bad_debt_share")
    })
}

/// The pyramid: per tier, customers and shares of customers, revenue and margin.
pub fn tier_table(df: &DataFrame) -> PolarsResult<DataFrame> {
    let sum = |name: &str| -> PolarsResult<f64> {
        Ok(df.column(name)?.as_materialized_series().cast(&DataType::Float64)?.f64()?.sum().unwrap_or(0.0))
    };
    let (revenue, margin, total) = (sum(n::ARPU_3M)?, sum(n::MARGIN_MONTHLY)?, df.height().max(1) as f64);
    let order = df!(TIER => ["platinum", "gold", "iron", "lead"])?;
    let stats = df
        .clone()
        .lazy()
        .group_by([col(TIER)])
        .agg(
            [
                len().cast(DataType::Float64).alias("customers"),
                (col(n::ARPU_3M).sum() / lit(if revenue != 0.0 { revenue } else { 1.0 })).alias("revenue_share"),
                (col(n::MARGIN_MONTHLY).sum() / lit(if margin != 0.0 { margin } else { 1.0 })).alias("margin_share"),
            ]
            .into_iter()
            .chain(bad_debt_share(df))
            .collect::<Vec<_>>(),
        )
        .collect()?;
    let stats = as_text(stats)?;
    order
        .lazy()
        .join(
            stats.lazy(),
            [col(TIER)],
            [col(TIER)],
            JoinArgs { maintain_order: MaintainOrderJoin::Left, ..JoinArgs::new(JoinType::Left) },
        )
        .with_columns([
            col("customers").fill_null(lit(0.0)),
            (col("customers").fill_null(lit(0.0)) / lit(total)).alias("share"),
        ])
        .collect()
}

/// The Lorenz curve of margin (customers sorted by margin, highest first: cumulative
/// share of customers vs of margin, 101 points) and its Gini coefficient.
pub fn lorenz(df: &DataFrame) -> PolarsResult<(DataFrame, f64)> {
    let mut m: Vec<f64> = df
        .column(n::MARGIN_MONTHLY)?
        .as_materialized_series()
        .cast(&DataType::Float64)?
        .f64()?
        .iter()
        .map(|v| v.unwrap_or(0.0))
        .collect();
    m.sort_by(|a, b| b.total_cmp(a));
    let total: f64 = m.iter().sum();
    let count = m.len();
    let mut cum = Vec::with_capacity(count + 1);
    cum.push(0.0);
    for v in &m {
        cum.push(cum.last().copied().unwrap_or(0.0) + v);
    }
    let share = |k: usize| if total != 0.0 { cum[k] / total } else { 0.0 };
    let (mut x, mut y) = (Vec::with_capacity(101), Vec::with_capacity(101));
    for p in 0..=100 {
        let k = (p * count).div_ceil(100).min(count);
        x.push(f64::from(p as u32) / 100.0);
        y.push(share(k));
    }
    // Gini from the concentration curve of the descending sort: G = 2 * area above the
    // diagonal = 2 * mean(share) - 1 over customers (trapezoids).
    let area: f64 =
        if count > 0 { (1..=count).map(|k| (share(k - 1) + share(k)) / 2.0).sum::<f64>() / count as f64 } else { 0.5 };
    let gini = 2.0 * area - 1.0;
    // The 80/20 check beside the curve: the margin share of the top 20%, and the Gini.
    let top20 = share((20 * count).div_ceil(100).min(count));
    let rows = x.len();
    Ok((
        df!(
            "customer_share" => x,
            "margin_share" => y,
            "top_20_percent_margin_share" => vec![top20; rows],
            "gini" => vec![gini; rows],
        )?,
        gini,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Eight customers, one per segment, plus one lead. Medians: ccv 10, cpv 10,
    /// loyalty 0.5 (values 20/0, 20/0, 0.9/0.1 on either side, and the lead customer at
    /// the cut points is "high", >= being high).
    fn fixture() -> DataFrame {
        df!(
            n::CCV => [20.0, 20.0, 0.0, 0.0, 20.0, 20.0, 0.0, 0.0, 10.0],
            n::CPV => [20.0, 0.0, 0.0, 20.0, 20.0, 0.0, 0.0, 20.0, 10.0],
            "loyalty" => [0.9, 0.9, 0.9, 0.9, 0.1, 0.1, 0.1, 0.1, 0.5],
            n::CLV => [1.0; 9],
            n::MARGIN_MONTHLY => [90.0, 80.0, 70.0, 60.0, 50.0, 40.0, 30.0, 20.0, -5.0],
            n::ARPU_3M => [100.0; 9],
            n::TENURE_MONTHS => [1i64, 5, 5, 5, 5, 5, 5, 5, 5],
            n::REFERRALS_MADE => [0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0],
            n::SURVEY_RECOMMEND => [None, Some(9.0), Some(10.0), Some(7.0), Some(6.0), None, None, None, None],
            n::SURVEY_OVERALL => [Some(5.0), Some(2.0), None, None, Some(4.0), Some(1.0), Some(1.0), None, None],
            n::COMPLAINTS_12M => [0.0, 0.0, 0.0, 0.0, 0.0, 2.0, 0.0, 0.0, 0.0],
        )
        .unwrap()
    }

    /// The fixture's first eight customers, one per segment, in the DOMAIN.md order.
    const ONE_PER_SEGMENT: [&str; 8] =
        ["platinum", "gold", "loyal", "potential", "vulnerable", "short_term", "least_valuable", "developable"];

    fn median_segments(df: DataFrame, cpv_estimated: bool) -> Vec<String> {
        let cuts = cuts(&df, "loyalty", Split::Quantile(0.5), cpv_estimated).unwrap();
        let df = as_text(assign(df, "loyalty", cuts, [0.12, 0.34], [1, 5]).unwrap()).unwrap();
        df.column(VALUE_SEGMENT).unwrap().str().unwrap().iter().map(|v| v.unwrap().to_string()).collect()
    }

    #[test]
    fn a_zero_median_is_not_high() {
        // Six of ten customers hold no potential (CPV 0): the median is 0, and only the
        // four with CPV > 0 are high CPV. CCV and loyalty split 5/5 without ties.
        let mut df = fixture().slice(0, 8);
        let extra = df!(
            n::CCV => [20.0, 0.0], n::CPV => [0.0, 0.0], "loyalty" => [0.9, 0.1], n::CLV => [1.0; 2],
            n::MARGIN_MONTHLY => [10.0, 5.0], n::ARPU_3M => [100.0; 2], n::TENURE_MONTHS => [5i64; 2],
            n::REFERRALS_MADE => [0.0; 2], n::SURVEY_RECOMMEND => [None::<f64>; 2],
            n::SURVEY_OVERALL => [None::<f64>; 2], n::COMPLAINTS_12M => [0.0; 2],
        )
        .unwrap();
        df.vstack_mut(&extra).unwrap();
        let cut = cuts(&df, "loyalty", Split::Quantile(0.5), true).unwrap();
        assert_eq!(cut.cpv, Some(Cut { at: 0.0, ties_high: false }));
        let s = median_segments(df, true);
        assert_eq!(s, [&ONE_PER_SEGMENT[..], &["gold", "least_valuable"]].concat());
    }

    #[test]
    fn without_a_catalog_only_the_four_low_cpv_segments_are_filled() {
        let s = median_segments(fixture(), false);
        assert_eq!(
            s,
            ["gold", "gold", "loyal", "loyal", "short_term", "short_term", "least_valuable", "least_valuable", "gold"]
        );
    }

    #[test]
    fn ties_at_a_nonzero_median_go_where_the_split_is_closest_to_half() {
        // Loyalty 0.8 for six of ten, 0.2 for four: the median is 0.8. Ties high gives
        // 6 high (1 from half), ties low 0 high (5 from half): the six are high.
        let loyalty = [0.8, 0.8, 0.8, 0.8, 0.8, 0.8, 0.2, 0.2, 0.2, 0.2];
        let df = df!(n::CCV => [1.0; 10], n::CPV => [1.0; 10], "loyalty" => loyalty).unwrap();
        let c = cuts(&df, "loyalty", Split::Quantile(0.5), true).unwrap();
        assert_eq!(c.loyalty, Cut { at: 0.8, ties_high: true });
        // 0.9 for three, 0.8 for five, 0.2 for two: median 0.8; ties high gives 8 high
        // (3 from half), ties low 3 (2 from half): the five at 0.8 are low.
        let loyalty = [0.9, 0.9, 0.9, 0.8, 0.8, 0.8, 0.8, 0.8, 0.2, 0.2];
        let df = df!(n::CCV => [1.0; 10], n::CPV => [1.0; 10], "loyalty" => loyalty).unwrap();
        let c = cuts(&df, "loyalty", Split::Quantile(0.5), true).unwrap();
        assert_eq!(c.loyalty, Cut { at: 0.8, ties_high: false });
        // every CCV equal (1.0): ties high, everyone high, as close to half as it gets
        assert_eq!(c.ccv, Cut { at: 1.0, ties_high: true });
        assert_eq!(Cut::absolute(0.0), Cut { at: 0.0, ties_high: false });
    }

    #[test]
    fn segments_tiers_stages_by_hand() {
        let df = fixture();
        let cuts = cuts(&df, "loyalty", Split::Quantile(0.5), true).unwrap();
        let df = assign(df, "loyalty", cuts, [0.12, 0.34], [1, 5]).unwrap();
        // Held as labels, compared as text.
        for name in [VALUE_SEGMENT, TIER, STAGE, NPS_GROUP, SAT_QUADRANT] {
            assert!(df.column(name).unwrap().dtype().is_enum(), "{name}");
        }
        let df = as_text(df).unwrap();
        let s: Vec<&str> = df.column(VALUE_SEGMENT).unwrap().str().unwrap().iter().map(|v| v.unwrap()).collect();
        assert_eq!(s, [&ONE_PER_SEGMENT[..], &["platinum"]].concat());
        // Tiers over 9 customers by margin: rank/9 <= 0.12 -> top 1 platinum; <= 0.34 ->
        // ranks 2-3 gold; positive margin otherwise iron; -5 is lead.
        let t: Vec<&str> = df.column(TIER).unwrap().str().unwrap().iter().map(|v| v.unwrap()).collect();
        assert_eq!(t, ["platinum", "gold", "gold", "iron", "iron", "iron", "iron", "iron", "lead"]);
        let st: Vec<&str> = df.column(STAGE).unwrap().str().unwrap().iter().map(|v| v.unwrap()).collect();
        assert_eq!(st, ["new", "advocate", "advocate", "repeat", "repeat", "repeat", "repeat", "repeat", "repeat"]);
        let nps: Vec<Option<&str>> = df.column(NPS_GROUP).unwrap().str().unwrap().iter().collect();
        assert_eq!(&nps[..5], [None, Some("promoter"), Some("promoter"), Some("passive"), Some("detractor")]);
        // Quadrants: 0 satisfied+loyal, 1 dissatisfied+loyal, 4 satisfied not loyal,
        // 5 and 6 dissatisfied not loyal (5 also complained: a terrorist).
        let q: Vec<Option<&str>> = df.column(SAT_QUADRANT).unwrap().str().unwrap().iter().collect();
        assert_eq!(
            &q[..7],
            [Some("apostle"), Some("hostage"), None, None, Some("mercenary"), Some("defector"), Some("defector")]
        );
        let terror: Vec<bool> = df.column(TERRORIST).unwrap().bool().unwrap().iter().map(|v| v.unwrap()).collect();
        assert_eq!(terror.iter().filter(|t| **t).count(), 1);
        assert!(terror[5]);

        let table = segment_table(&df, "loyalty").unwrap();
        let customers: Vec<f64> = table.column("customers").unwrap().f64().unwrap().into_no_null_iter().collect();
        assert_eq!(customers, [2.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0]);
        // platinum margin share: (90 - 5) / (90 + 80 + 70 + 60 + 50 + 40 + 30 + 20 - 5 = 435)
        let share = table.column("margin_share").unwrap().f64().unwrap().get(0).unwrap();
        assert!((share - 85.0 / 435.0).abs() < 1e-12, "{share}");

        let tiers = tier_table(&df).unwrap();
        let c: Vec<f64> = tiers.column("customers").unwrap().f64().unwrap().into_no_null_iter().collect();
        assert_eq!(c, [1.0, 2.0, 5.0, 1.0]);
    }

    #[test]
    fn lorenz_and_gini_of_known_cases() {
        // Equal margins: the diagonal, Gini 0.
        let eq = df!(n::MARGIN_MONTHLY => [5.0; 10]).unwrap();
        let (curve, g) = lorenz(&eq).unwrap();
        assert!(g.abs() < 1e-12, "{g}");
        assert!((curve.column("margin_share").unwrap().f64().unwrap().get(50).unwrap() - 0.5).abs() < 1e-12);
        // One customer has everything (of n = 4): shares 1,1,1,1 after the first;
        // area = (0.5 + 1 + 1 + 1)/4 = 0.875, Gini = 0.75 = (n-1)/n.
        let one = df!(n::MARGIN_MONTHLY => [0.0, 0.0, 12.0, 0.0]).unwrap();
        let (curve, g) = lorenz(&one).unwrap();
        assert!((g - 0.75).abs() < 1e-12, "{g}");
        // the top 20% of 4 customers is the first one: all of the margin
        let top = curve.column("top_20_percent_margin_share").unwrap().f64().unwrap().get(0).unwrap();
        assert_eq!(top, 1.0);
        // 10 customers with margins 10, 9, ..., 1 (sum 55): the top 2 bring 19/55
        let ten = df!(n::MARGIN_MONTHLY => (1..=10).map(f64::from).collect::<Vec<_>>()).unwrap();
        let (curve, _) = lorenz(&ten).unwrap();
        let top = curve.column("top_20_percent_margin_share").unwrap().f64().unwrap().get(0).unwrap();
        assert!((top - 19.0 / 55.0).abs() < 1e-12, "{top}");
    }
}
