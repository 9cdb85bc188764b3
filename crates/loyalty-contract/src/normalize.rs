//! Coercion of whatever a producer wrote into the canonical types of the contract.
//!
//! Canonical types: Int -> Int64, Float -> Float64, Date -> Date, Timestamp ->
//! Datetime(us), Utf8 -> String, Bool -> Boolean. Strings in a numeric or date column
//! are parsed; the rows that fail to parse are caught by a row rule (`not_a_date`,
//! `not_a_number`), since the contract says a date that is not a date is bad *input*,
//! not a bad *file*.

use polars::prelude::*;

use crate::error::SchemaProblem;
use crate::rules::RowRule;
use crate::spec::{ColumnSpec, Kind, TableSpec, col};

/// The canonical frame of one table, plus the parse checks that normalisation needs.
pub struct Normalized {
    pub lf: LazyFrame,
    /// Columns of `lf` that are helpers (raw copies of parsed strings): dropped after validation.
    pub helper_columns: Vec<PlSmallStr>,
    pub parse_rules: Vec<RowRule>,
}

fn raw_name(name: &str) -> PlSmallStr {
    format!("__raw_{name}").into()
}

/// The prefix of an error message: "file `x`, column `y`".
pub fn canonical_dtype(kind: Kind) -> DataType {
    match kind {
        Kind::Int => DataType::Int64,
        Kind::Float => DataType::Float64,
        Kind::Date => DataType::Date,
        Kind::Timestamp => DataType::Datetime(TimeUnit::Microseconds, None),
        Kind::Utf8 => DataType::String,
        Kind::Bool => DataType::Boolean,
    }
}

enum Coercion {
    Cast,
    Parse,
    Fail,
}

fn coercion(kind: Kind, dtype: &DataType) -> Coercion {
    use Coercion::*;
    if matches!(dtype, DataType::Null) {
        return Cast;
    }
    match kind {
        Kind::Int if dtype.is_integer() => Cast,
        Kind::Float if dtype.is_float() || dtype.is_integer() => Cast,
        Kind::Date | Kind::Timestamp if matches!(dtype, DataType::Date | DataType::Datetime(_, _)) => Cast,
        Kind::Utf8 if dtype.is_string() || dtype.is_categorical() || dtype.is_enum() || dtype.is_integer() => Cast,
        Kind::Bool if dtype.is_bool() => Cast,
        Kind::Int | Kind::Float | Kind::Date | Kind::Timestamp if dtype.is_string() => Parse,
        _ => Fail,
    }
}

fn strptime(format: &str) -> StrptimeOptions {
    StrptimeOptions { format: Some(format.into()), strict: false, exact: true, cache: true }
}

fn cast_expr(column: &ColumnSpec, dtype: &DataType) -> Expr {
    let c = col(column.name);
    let target = canonical_dtype(column.kind);
    match (column.kind, dtype) {
        // Keep the wall-clock date of zoned timestamps (a bill dated in local time).
        (Kind::Date, DataType::Datetime(_, Some(_))) => {
            c.dt().replace_time_zone(None, lit("raise"), NonExistent::Null).cast(DataType::Date)
        }
        (Kind::Timestamp, DataType::Datetime(_, Some(_))) => {
            c.dt().replace_time_zone(None, lit("raise"), NonExistent::Null).cast(target)
        }
        _ => c.cast(target),
    }
}

fn parse_expr(column: &ColumnSpec) -> Expr {
    let raw = col(raw_name(column.name)).str().strip_chars(lit(NULL));
    match column.kind {
        Kind::Date => raw.str().to_date(strptime("%Y-%m-%d")),
        Kind::Timestamp => raw
            .clone()
            .str()
            .to_datetime(Some(TimeUnit::Microseconds), None, strptime("%Y-%m-%d %H:%M:%S"), lit("raise"))
            .fill_null(raw.str().to_date(strptime("%Y-%m-%d")).cast(canonical_dtype(Kind::Timestamp))),
        _ => raw.cast(canonical_dtype(column.kind)),
    }
}

/// Build the canonical frame of `spec` from a raw scan whose schema is `schema`.
/// `location` names the file or folder in problems.
pub fn normalize(
    spec: &TableSpec,
    lf: LazyFrame,
    schema: &Schema,
    location: &str,
) -> Result<Normalized, Vec<SchemaProblem>> {
    let mut problems = Vec::new();
    let mut helpers = Vec::new();
    let mut raw_copies = Vec::new();
    let mut exprs = Vec::new();
    let mut parse_rules = Vec::new();

    for column in spec.columns {
        match schema.get(column.name) {
            None if column.nullable => {
                exprs.push(lit(NULL).cast(canonical_dtype(column.kind)).alias(column.name));
            }
            None => problems.push(SchemaProblem {
                table: spec.table,
                location: location.to_string(),
                column: column.name.to_string(),
                rule: "missing_column".into(),
                detail: format!("required column `{}` ({}) is not in the file", column.name, column.kind),
            }),
            Some(dtype) => match coercion(column.kind, dtype) {
                Coercion::Cast => exprs.push(cast_expr(column, dtype).alias(column.name)),
                Coercion::Parse => {
                    let raw = raw_name(column.name);
                    raw_copies.push(col(column.name).alias(raw.clone()));
                    exprs.push(col(raw.clone()));
                    exprs.push(parse_expr(column).alias(column.name));
                    helpers.push(raw.clone());
                    let (rule, what) = match column.kind {
                        Kind::Date | Kind::Timestamp => ("not_a_date", "a date (YYYY-MM-DD)"),
                        Kind::Int => ("not_an_integer", "an integer"),
                        _ => ("not_a_number", "a number"),
                    };
                    parse_rules.push(RowRule {
                        table: spec.table,
                        column: column.name,
                        rule,
                        description: format!("text in `{}` must parse as {what}", column.name),
                        violates: col(raw).is_not_null().and(col(column.name).is_null()),
                    });
                }
                Coercion::Fail => problems.push(SchemaProblem {
                    table: spec.table,
                    location: location.to_string(),
                    column: column.name.to_string(),
                    rule: "wrong_type".into(),
                    detail: format!(
                        "column `{}` has type {dtype}, which cannot be read as {}",
                        column.name, column.kind
                    ),
                }),
            },
        }
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    if schema.get(col::SOURCE_FILE).is_some() {
        // Files scanned by address (`file://`, read in bounded reads) are named by path.
        exprs.push(col(col::SOURCE_FILE).cast(DataType::String).str().strip_prefix(lit("file://")));
    }
    let lf = if raw_copies.is_empty() { lf } else { lf.with_columns(raw_copies) };
    Ok(Normalized { lf: lf.select(exprs), helper_columns: helpers, parse_rules })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::BILLING;

    fn normalized(df: DataFrame) -> Result<DataFrame, Vec<SchemaProblem>> {
        let schema = df.schema().clone();
        let n = normalize(&BILLING, df.lazy(), &schema, "billing.parquet")?;
        Ok(n.lf.collect().unwrap())
    }

    #[test]
    fn narrow_ints_float32_and_timestamps_are_coerced() {
        let df = df!(
            "customer_id" => [1i32, 2],
            "bill_month" => ["2024-01-01", "2024-02-01"],
            "total_charge" => [10.5f32, 0.0],
            "sms_count" => [3i8, 4],
            "extra" => ["x", "y"],
        )
        .unwrap();
        let out = normalized(df).unwrap();
        assert_eq!(out.column("customer_id").unwrap().dtype(), &DataType::Int64);
        assert_eq!(out.column("total_charge").unwrap().dtype(), &DataType::Float64);
        assert_eq!(out.column("bill_month").unwrap().dtype(), &DataType::Date);
        // Absent nullable columns are all-null; extra columns are dropped.
        assert_eq!(out.column("cost").unwrap().null_count(), 2);
        assert!(out.column("extra").is_err());
    }

    #[test]
    fn wrong_type_and_missing_column_are_schema_problems() {
        let df = df!("customer_id" => ["a"], "total_charge" => [true]).unwrap();
        let problems = normalized(df).unwrap_err();
        let rules: Vec<_> = problems.iter().map(|p| (p.column.as_str(), p.rule.as_str())).collect();
        assert_eq!(rules, [("bill_month", "missing_column"), ("total_charge", "wrong_type")]);
    }
}
