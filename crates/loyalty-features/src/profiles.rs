//! How the active base is spread over the attitude measures: NPS per competition level
//! and value segment, the loyalty ladder and the satisfaction quadrants, and
//! transactional against emotional loyalty.

use polars::prelude::*;

use crate::names as n;
use crate::segments::{NPS_GROUP, QUADRANTS, SAT_QUADRANT, STAGE, TERRORIST, VALUE_SEGMENT};
use loyalty_contract::labels::{label, labels};

/// The four kinds of loyalty, in the table's order.
const KINDS: [&str; 4] = ["both", "by habit", "by attachment", "neither"];

/// NPS (percentage of promoters minus percentage of detractors among the customers
/// whose latest survey has `recommend`) per competition level, per value segment and
/// over the whole base: respondents, promoters, passives, detractors, nps.
pub fn nps_table(df: &DataFrame) -> PolarsResult<DataFrame> {
    let count =
        |group: &str| col(NPS_GROUP).eq(lit(group.to_string())).cast(DataType::Int64).sum().alias(format!("{group}s"));
    let by = |key: Expr, grouping: &str| {
        df.clone()
            .lazy()
            .filter(col(NPS_GROUP).is_not_null())
            // Grouped by the key as it is held (a label), named as text once grouped:
            // text for every respondent was a copy of 0.1 GB at 10M customers.
            .group_by([key.alias("group")])
            .agg([
                len().cast(DataType::Int64).alias("respondents"),
                count("promoter"),
                count("passive"),
                count("detractor"),
            ])
            .with_columns([
                col("group").cast(DataType::String).fill_null(lit("unknown")),
                lit(grouping.to_string()).alias("grouping"),
            ])
            .sort(["group"], SortMultipleOptions::default())
    };
    let nps = lit(100.0) * (col("promoters") - col("detractors")).cast(DataType::Float64)
        / col("respondents").cast(DataType::Float64);
    concat(
        [
            by(col(n::COMPETITION_LEVEL), "competition_level"),
            by(col(VALUE_SEGMENT), "value_segment"),
            by(lit("all"), "all"),
        ],
        UnionArgs::default(),
    )?
    .with_column(nps.alias("nps"))
    .select([
        col("grouping"),
        col("group"),
        col("respondents"),
        col("promoters"),
        col("passives"),
        col("detractors"),
        col("nps"),
    ])
    .collect()
}

/// The loyalty-ladder stages and the satisfaction quadrants (`no survey` where the
/// customer answered none; `terrorist` counts the defectors flagged as such): per
/// stage or quadrant, customers, share of the base, share of margin, mean `loyalty_col`.
pub fn ladder_and_quadrants(df: &DataFrame, loyalty_col: &str) -> PolarsResult<DataFrame> {
    let total = df.height().max(1) as f64;
    let margin: f64 =
        df.column(n::MARGIN_MONTHLY)?.as_materialized_series().cast(&DataType::Float64)?.f64()?.sum().unwrap_or(0.0);
    let margin = if margin != 0.0 { margin } else { 1.0 };
    let by = |key: Expr, grouping: &str| {
        df.clone()
            .lazy()
            .group_by([key.alias("group")])
            .agg([
                len().cast(DataType::Int64).alias("customers"),
                (col(n::MARGIN_MONTHLY).sum() / lit(margin)).alias("margin_share"),
                col(loyalty_col).mean().alias("mean_loyalty"),
            ])
            // Sorted as text: labels sort in the order of their values.
            .with_columns([col("group").cast(DataType::String), lit(grouping.to_string()).alias("grouping")])
            .sort(["group"], SortMultipleOptions::default())
    };
    // The quadrant as a label of its own, text once grouped (as the stage).
    let kinds = labels(&[&QUADRANTS[..], &["defector (terrorist)", "no survey"]].concat());
    let quadrant = QUADRANTS.iter().fold(label("no survey", &kinds), |rest, &q| {
        when(col(SAT_QUADRANT).eq(lit(q))).then(label(q, &kinds)).otherwise(rest)
    });
    let quadrant =
        when(col(TERRORIST).fill_null(lit(false))).then(label("defector (terrorist)", &kinds)).otherwise(quadrant);
    concat([by(col(STAGE), "stage"), by(quadrant, "sat_quadrant")], UnionArgs::default())?
        .with_column((col("customers").cast(DataType::Float64) / lit(total)).alias("share"))
        .select([
            col("grouping"),
            col("group"),
            col("customers"),
            col("share"),
            col("margin_share"),
            col("mean_loyalty"),
        ])
        .collect()
}

/// The four kinds of loyalty: transactional (behaviour) against emotional (attitude)
/// score, each high at or above its median over the base: `both`, `by habit` (high
/// transactional only), `by attachment` (high emotional only), `neither`. Per cell:
/// customers, share, monthly margin in total and per customer, margin share, mean
/// `loyalty_col`.
pub fn loyalty_kinds(df: &DataFrame, loyalty_col: &str) -> PolarsResult<DataFrame> {
    let median = |name: &str| -> PolarsResult<f64> {
        Ok(df.column(name)?.as_materialized_series().cast(&DataType::Float64)?.f64()?.median().unwrap_or(f64::NAN))
    };
    let (tm, em) = (median(n::TRANSACTIONAL_LOYALTY)?, median(n::EMOTIONAL_LOYALTY)?);
    let high = |name: &str, m: f64| col(name).gt_eq(lit(m)).fill_null(lit(false));
    let (t, e) = (high(n::TRANSACTIONAL_LOYALTY, tm), high(n::EMOTIONAL_LOYALTY, em));
    // A label, text once grouped: text for every customer was a copy of 0.1 GB at 10M.
    let k = labels(&KINDS);
    let kind = when(t.clone().and(e.clone()))
        .then(label("both", &k))
        .when(t.clone())
        .then(label("by habit", &k))
        .when(e.clone())
        .then(label("by attachment", &k))
        .otherwise(label("neither", &k));
    let total = df.height().max(1) as f64;
    let margin: f64 =
        df.column(n::MARGIN_MONTHLY)?.as_materialized_series().cast(&DataType::Float64)?.f64()?.sum().unwrap_or(0.0);
    let margin = if margin != 0.0 { margin } else { 1.0 };
    let order = df!(
        "loyalty_kind" => KINDS,
        "transactional" => ["high", "high", "low", "low"],
        "emotional" => ["high", "low", "high", "low"],
    )?;
    let cells = df
        .clone()
        .lazy()
        .group_by([kind.alias("loyalty_kind")])
        .agg([
            len().cast(DataType::Int64).alias("customers"),
            col(n::MARGIN_MONTHLY).sum().alias("margin_monthly_total"),
            col(n::MARGIN_MONTHLY).mean().alias("margin_monthly_mean"),
            (col(n::MARGIN_MONTHLY).sum() / lit(margin)).alias("margin_share"),
            col(loyalty_col).mean().alias("mean_loyalty"),
        ])
        .with_column(col("loyalty_kind").cast(DataType::String));
    order
        .lazy()
        .join(
            cells,
            [col("loyalty_kind")],
            [col("loyalty_kind")],
            JoinArgs { maintain_order: MaintainOrderJoin::Left, ..JoinArgs::new(JoinType::Left) },
        )
        .with_column(col("customers").fill_null(lit(0)))
        .with_column((col("customers").cast(DataType::Float64) / lit(total)).alias("share"))
        .select([
            col("loyalty_kind"),
            col("transactional"),
            col("emotional"),
            col("customers"),
            col("share"),
            col("margin_monthly_total"),
            col("margin_monthly_mean"),
            col("margin_share"),
            col("mean_loyalty"),
        ])
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Six customers: NPS groups, stages, quadrants and both loyalty scores by hand.
    fn fixture() -> DataFrame {
        df!(
            n::COMPETITION_LEVEL => ["low", "low", "low", "high", "high", "high"],
            VALUE_SEGMENT => ["gold", "gold", "loyal", "loyal", "loyal", "gold"],
            NPS_GROUP => [Some("promoter"), Some("promoter"), Some("detractor"), Some("passive"), Some("detractor"), None],
            STAGE => ["advocate", "advocate", "repeat", "repeat", "new", "repeat"],
            SAT_QUADRANT => [Some("apostle"), Some("apostle"), Some("defector"), Some("hostage"), Some("defector"), None],
            TERRORIST => [false, false, true, false, false, false],
            n::MARGIN_MONTHLY => [40.0, 30.0, 10.0, 10.0, 5.0, 5.0],
            "loyalty" => [0.9, 0.8, 0.3, 0.7, 0.2, 0.5],
            n::TRANSACTIONAL_LOYALTY => [0.9, 0.2, 0.8, 0.1, 0.3, 0.6],
            n::EMOTIONAL_LOYALTY => [0.9, 0.8, 0.1, 0.2, 0.7, 0.3],
        )
        .unwrap()
    }

    fn rows(df: &DataFrame, cols: &[&str]) -> Vec<String> {
        (0..df.height())
            .map(|i| {
                cols.iter()
                    .map(|c| df.column(c).unwrap().get(i).unwrap().to_string().trim_matches('"').to_string())
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .collect()
    }

    #[test]
    fn nps_by_hand() {
        let t = nps_table(&fixture()).unwrap();
        // low: 2 promoters, 1 detractor of 3 -> 33.3; high: 1 passive, 1 detractor of 2
        // (the sixth customer has no recommend) -> -50; all: 2 - 2 of 5 -> 0.
        let got = rows(&t, &["grouping", "group", "respondents", "promoters", "passives", "detractors"]);
        assert_eq!(
            got,
            [
                "competition_level high 2 0 1 1",
                "competition_level low 3 2 0 1",
                "value_segment gold 2 2 0 0",
                "value_segment loyal 3 0 1 2",
                "all all 5 2 1 2",
            ]
        );
        let nps: Vec<f64> = t.column("nps").unwrap().f64().unwrap().into_no_null_iter().collect();
        assert!((nps[0] + 50.0).abs() < 1e-12 && (nps[1] - 100.0 / 3.0).abs() < 1e-12);
        assert_eq!((nps[2], nps[3], nps[4]), (100.0, -200.0 / 3.0, 0.0));
    }

    #[test]
    fn ladder_and_quadrants_by_hand() {
        let t = ladder_and_quadrants(&fixture(), "loyalty").unwrap();
        let got = rows(&t, &["grouping", "group", "customers"]);
        assert_eq!(
            got,
            [
                "stage advocate 2",
                "stage new 1",
                "stage repeat 3",
                "sat_quadrant apostle 2",
                "sat_quadrant defector 1",
                "sat_quadrant defector (terrorist) 1",
                "sat_quadrant hostage 1",
                "sat_quadrant no survey 1",
            ]
        );
        // advocates: margin 70 of 100, loyalty (0.9 + 0.8) / 2
        let share = t.column("margin_share").unwrap().f64().unwrap().get(0).unwrap();
        let loyalty = t.column("mean_loyalty").unwrap().f64().unwrap().get(0).unwrap();
        assert!((share - 0.7).abs() < 1e-12 && (loyalty - 0.85).abs() < 1e-12);
    }

    #[test]
    fn transactional_against_emotional_by_hand() {
        // medians: transactional (0.3 + 0.6) / 2 = 0.45, emotional (0.3 + 0.7) / 2 = 0.5.
        let t = loyalty_kinds(&fixture(), "loyalty").unwrap();
        let got = rows(&t, &["loyalty_kind", "customers", "margin_monthly_total"]);
        assert_eq!(got, ["both 1 40.0", "by habit 2 15.0", "by attachment 2 35.0", "neither 1 10.0"]);
        let share = t.column("margin_share").unwrap().f64().unwrap().get(2).unwrap();
        assert!((share - 0.35).abs() < 1e-12);
    }
}
