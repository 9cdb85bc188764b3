//! Every row-level and key-level rule of SCHEMA.md, as data.

use chrono::NaiveDate;
use polars::prelude::*;

use crate::epoch_days;
use crate::spec::{Kind, PLAN_TYPES, Table, TableSpec, col as c};

/// A rule checked on each row by itself: `violates` is true for a bad row.
#[derive(Clone)]
pub struct RowRule {
    pub table: Table,
    pub column: &'static str,
    pub rule: &'static str,
    pub description: String,
    pub violates: Expr,
}

/// A column that must reference a key of a parent table.
#[derive(Debug, Clone, Copy)]
pub struct ForeignKey {
    pub column: &'static str,
    pub parent: Table,
    pub parent_column: &'static str,
    pub rule: &'static str,
}

fn rule(table: Table, column: &'static str, rule: &'static str, description: String, violates: Expr) -> RowRule {
    RowRule { table, column, rule, description, violates }
}

fn non_negative(table: Table, column: &'static str) -> RowRule {
    rule(table, column, "non_negative", format!("`{column}` must be >= 0"), col(column).lt(lit(0)))
}

fn in_range(table: Table, column: &'static str, lo: i64, hi: i64) -> RowRule {
    rule(
        table,
        column,
        "out_of_range",
        format!("`{column}` must be between {lo} and {hi}"),
        col(column).lt(lit(lo)).or(col(column).gt(lit(hi))),
    )
}

/// The dates every stage can compute with: those of a nanosecond timestamp, the
/// narrowest time type Polars converts dates to (1677-09-22 to 2262-04-11). A date
/// outside it, such as a 0001-01-01 "unknown" sentinel, would turn null in some
/// computation and drop its row silently.
pub const DATE_RANGE: (NaiveDate, NaiveDate) = (
    NaiveDate::from_ymd_opt(1677, 9, 22).expect("valid date"),
    NaiveDate::from_ymd_opt(2262, 4, 11).expect("valid date"),
);

fn date_in_range(table: Table, column: &'static str) -> RowRule {
    let (lo, hi) = DATE_RANGE;
    let days = col(column).cast(DataType::Date).cast(DataType::Int32);
    rule(
        table,
        column,
        "date_out_of_range",
        format!("`{column}` must be between {lo} and {hi} (a placeholder such as 0001-01-01 is not a date)"),
        days.clone().lt(lit(epoch_days(lo))).or(days.gt(lit(epoch_days(hi)))),
    )
}

/// The row rules of one table (type-parsing rules come from normalisation).
pub fn row_rules(spec: &TableSpec) -> Vec<RowRule> {
    let t = spec.table;
    let mut rules = Vec::new();
    for column in spec.columns.iter().filter(|c| !c.nullable) {
        rules.push(rule(
            t,
            column.name,
            "not_null",
            format!("`{}` must not be null", column.name),
            col(column.name).is_null(),
        ));
    }
    for column in spec.columns.iter().filter(|c| matches!(c.kind, Kind::Date | Kind::Timestamp)) {
        rules.push(date_in_range(t, column.name));
    }
    for column in spec.columns.iter().filter(|c| c.kind == Kind::Float) {
        rules.push(rule(
            t,
            column.name,
            "finite",
            format!("`{}` must be a finite number (not NaN or infinite)", column.name),
            // x - x is NaN exactly when x is NaN or infinite (null stays null): one
            // vectorised subtraction and NaN test, where polars' `is_infinite` built
            // its answer a value at a time.
            (col(column.name) - col(column.name)).is_nan(),
        ));
    }
    match t {
        Table::Customers => {
            let known = PLAN_TYPES
                .iter()
                .map(|p| col(c::PLAN_TYPE).eq(lit(*p)))
                .reduce(Expr::or)
                .expect("at least one plan type");
            rules.push(rule(
                t,
                c::PLAN_TYPE,
                "unknown_plan_type",
                format!("`plan_type` must be one of {}", PLAN_TYPES.join(", ")),
                known.not().and(col(c::PLAN_TYPE).is_not_null()),
            ));
            rules.push(non_negative(t, c::CONTRACT_MONTHS));
            rules.push(rule(
                t,
                c::CHURN_DATE,
                "churn_before_signup",
                "`churn_date` must not be before `signup_date`".into(),
                col(c::CHURN_DATE).lt(col(c::SIGNUP_DATE)),
            ));
        }
        Table::Billing => {
            rules.push(rule(
                t,
                c::BILL_MONTH,
                "not_first_of_month",
                "`bill_month` must be the first day of the billed month".into(),
                crate::dates::day_of_month_expr(col(c::BILL_MONTH)).neq(lit(1)),
            ));
            for column in [
                c::TOTAL_CHARGE,
                c::COST,
                c::DISCOUNT,
                c::AMOUNT_PAID,
                c::VOICE_MINUTES,
                c::DATA_MB,
                c::SMS_COUNT,
                c::DAYS_LATE,
            ] {
                rules.push(non_negative(t, column));
            }
        }
        Table::Markets => {
            rules.push(non_negative(t, c::COMPETITORS));
            rules.push(rule(
                t,
                c::COMPETITION_INDEX,
                "out_of_range",
                "`competition_index` must be between 0 and 1".into(),
                col(c::COMPETITION_INDEX).lt(lit(0.0)).or(col(c::COMPETITION_INDEX).gt(lit(1.0))),
            ));
        }
        Table::ServiceCatalog => rules.push(non_negative(t, c::MONTHLY_PRICE)),
        Table::Services => rules.push(rule(
            t,
            c::END_DATE,
            "end_before_start",
            "`end_date` must not be before `start_date`".into(),
            col(c::END_DATE).lt(col(c::START_DATE)),
        )),
        Table::Topups => rules.push(rule(
            t,
            c::AMOUNT,
            "not_positive",
            "`amount` must be > 0".into(),
            col(c::AMOUNT).lt_eq(lit(0.0)),
        )),
        Table::Interactions => {}
        Table::Surveys => {
            rules.push(in_range(t, c::OVERALL, 1, 5));
            for aspect in c::ASPECTS {
                rules.push(in_range(t, aspect, 1, 5));
            }
            rules.push(in_range(t, c::RECOMMEND, 0, 10));
        }
        Table::Referrals => rules.push(rule(
            t,
            c::REFERRED_ID,
            "self_referral",
            "`referred_id` must differ from `customer_id`".into(),
            col(c::REFERRED_ID).eq(col(c::CUSTOMER_ID)),
        )),
    }
    rules
}

/// The references a table makes to its parents.
pub fn foreign_keys(table: Table) -> Vec<ForeignKey> {
    let customer = ForeignKey {
        column: c::CUSTOMER_ID,
        parent: Table::Customers,
        parent_column: c::CUSTOMER_ID,
        rule: "unknown_customer",
    };
    match table {
        Table::Markets | Table::ServiceCatalog => vec![],
        Table::Customers => vec![ForeignKey {
            column: c::MARKET_ID,
            parent: Table::Markets,
            parent_column: c::MARKET_ID,
            rule: "unknown_market",
        }],
        Table::Services => vec![
            customer,
            ForeignKey {
                column: c::SERVICE,
                parent: Table::ServiceCatalog,
                parent_column: c::SERVICE,
                rule: "unknown_service",
            },
        ],
        Table::Billing | Table::Topups | Table::Interactions | Table::Surveys | Table::Referrals => {
            vec![customer]
        }
    }
}
