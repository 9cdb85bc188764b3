//! Per-customer summaries of the transaction log (top-ups) for the BG/NBD,
//! Pareto/NBD and Gamma-Gamma models, as in the published analyses: purchases on the
//! same day merged into one transaction; the first transaction (or the signup, if
//! earlier) is the birth; x counts the later transaction days up to the end of the
//! calibration period, t_x is the time of the last one and T the time observed, both
//! from the birth, in periods of `unit_days`; mean_value is the mean value of the
//! repeat transactions (the first is left out, as the spend model requires).

use chrono::NaiveDate;
use loyalty_contract::col as c;
use polars::prelude::*;

use crate::epoch_days;
use crate::per_customer::day_num;

/// Column names of the summary.
pub mod cols {
    pub const X: &str = "x";
    pub const T_X: &str = "t_x";
    pub const T: &str = "T";
    pub const MEAN_VALUE: &str = "mean_value";
    pub const BIRTH: &str = "birth_date";
}

/// One row per customer of the log who is prepaid or has a transaction, born by the
/// end of the calibration period: customer_id, birth_date, x, t_x, T, mean_value
/// (null when x = 0). Sorted by customer_id.
pub fn rfm_summary(
    customers: LazyFrame,
    topups: LazyFrame,
    calibration_end: NaiveDate,
    unit_days: f64,
) -> PolarsResult<DataFrame> {
    let end = epoch_days(calibration_end);
    let daily = topups
        .select([col(c::CUSTOMER_ID), day_num(col(c::TS)).alias("__day"), col(c::AMOUNT)])
        .filter(col("__day").lt_eq(lit(end)))
        .group_by([col(c::CUSTOMER_ID), col("__day")])
        .agg([col(c::AMOUNT).sum().alias("__value")]);
    let first = daily.clone().group_by([col(c::CUSTOMER_ID)]).agg([col("__day").min().alias("__first")]);
    let births = customers
        .select([col(c::CUSTOMER_ID), day_num(col(c::SIGNUP_DATE)).alias("__signup"), col(c::PLAN_TYPE)])
        .join(first, [col(c::CUSTOMER_ID)], [col(c::CUSTOMER_ID)], JoinArgs::new(JoinType::Left))
        .filter(col("__first").is_not_null().or(col(c::PLAN_TYPE).eq(lit("prepaid"))))
        .select([
            col(c::CUSTOMER_ID),
            polars::lazy::dsl::min_horizontal([col("__signup"), col("__first")])?.alias("__birth"),
        ])
        .filter(col("__birth").lt_eq(lit(end)));
    let repeat = daily
        .join(births.clone(), [col(c::CUSTOMER_ID)], [col(c::CUSTOMER_ID)], JoinArgs::new(JoinType::Inner))
        .filter(col("__day").gt(col("__birth")))
        .group_by([col(c::CUSTOMER_ID)])
        .agg([
            len().cast(DataType::Float64).alias(cols::X),
            col("__day").max().alias("__last"),
            col("__value").sum().alias("__sum"),
        ]);
    let unit = lit(unit_days);
    births
        .join(repeat, [col(c::CUSTOMER_ID)], [col(c::CUSTOMER_ID)], JoinArgs::new(JoinType::Left))
        .select([
            col(c::CUSTOMER_ID),
            col("__birth").cast(DataType::Date).alias(cols::BIRTH),
            col(cols::X).fill_null(lit(0.0)),
            ((col("__last") - col("__birth")).cast(DataType::Float64) / unit.clone())
                .fill_null(lit(0.0))
                .alias(cols::T_X),
            ((lit(end) - col("__birth")).cast(DataType::Float64) / unit).alias(cols::T),
            (col("__sum") / col(cols::X)).alias(cols::MEAN_VALUE),
        ])
        .sort([c::CUSTOMER_ID], SortMultipleOptions::default())
        .collect_with_engine(Engine::Streaming)
        .map(|r| r.unwrap_single())
}
