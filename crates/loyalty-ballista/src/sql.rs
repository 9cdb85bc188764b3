//! The per-customer aggregations as DataFusion SQL.
//!
//! Each query mirrors a local Polars plan of `loyalty-features::per_customer` column
//! for column, with the same null semantics: Polars sums skip nulls and give 0 for a
//! group of nulls, so every SUM is wrapped in COALESCE(..., 0); MAX and COUNT(col)
//! skip nulls in both; Polars' n_unique counts null as a value, COUNT(DISTINCT) does
//! not, so a null is added back. The inputs are the raw files, so each column is
//! first brought to its contract type (integers of any width to BIGINT, text dates
//! parsed), as the contract's normalisation does locally.

use chrono::NaiveDate;
use datafusion::arrow::datatypes::{DataType, Schema};
use loyalty_contract::spec::Kind;
use loyalty_contract::{Table, col as c};
use loyalty_features::names as n;

/// One scan of files that share their hive partition values.
#[derive(Debug, Clone)]
pub struct Branch {
    /// The name the files are registered under.
    pub name: String,
    /// The files' (inferred) schema.
    pub schema: Schema,
    /// Partition values from the folder names (`key=value`).
    pub partitions: Vec<(String, String)>,
}

fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

fn ident(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

fn sql_type(kind: Kind) -> &'static str {
    match kind {
        Kind::Int => "BIGINT",
        Kind::Float => "DOUBLE",
        Kind::Date | Kind::Timestamp => "DATE",
        Kind::Utf8 => "VARCHAR",
        Kind::Bool => "BOOLEAN",
    }
}

/// `value` (a column or a literal) as its contract type; dates and timestamps as the
/// DATE of their day (every aggregation here works on days).
fn normalised(value: &str, kind: Kind, text: bool) -> String {
    match (kind, text) {
        (Kind::Date, true) => format!("CAST(TRIM({value}) AS DATE)"),
        (Kind::Timestamp, true) => format!("CAST(CAST(TRIM({value}) AS TIMESTAMP) AS DATE)"),
        (Kind::Utf8, _) => format!("CAST({value} AS VARCHAR)"),
        _ => format!("CAST({value} AS {})", sql_type(kind)),
    }
}

fn is_text(dt: &DataType) -> bool {
    match dt {
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => true,
        DataType::Dictionary(_, v) => is_text(v),
        _ => false,
    }
}

/// SELECT of `columns` of `table` from one branch, each in its contract type: from
/// the file when it has the column, else from the folder name, else NULL.
fn branch_select(table: Table, columns: &[&str], branch: &Branch) -> String {
    let spec = table.spec();
    let items: Vec<String> = columns
        .iter()
        .map(|&name| {
            let kind = spec.column(name).map(|s| s.kind).unwrap_or(Kind::Float);
            let value = if let Ok(field) = branch.schema.field_with_name(name) {
                normalised(&ident(name), kind, is_text(field.data_type()))
            } else if let Some((_, v)) = branch.partitions.iter().find(|(k, _)| k == name) {
                normalised(&quote(v), kind, true)
            } else {
                format!("CAST(NULL AS {})", sql_type(kind))
            };
            format!("{value} AS {}", ident(name))
        })
        .collect();
    format!("SELECT {} FROM {}", items.join(", "), ident(&branch.name))
}

/// The rows of a table (all its branches) with every contract column in its type.
fn relation(table: Table, branches: &[Branch]) -> String {
    let columns: Vec<&str> = table.spec().columns.iter().map(|c| c.name).collect();
    branches.iter().map(|b| branch_select(table, &columns, b)).collect::<Vec<_>>().join("\nUNION ALL\n")
}

fn date(d: NaiveDate) -> String {
    format!("DATE '{}'", d.format("%Y-%m-%d"))
}

fn days(d: NaiveDate) -> i32 {
    loyalty_features::epoch_days(d)
}

fn sum(e: &str, alias: &str) -> String {
    format!("COALESCE(SUM({e}), 0.0) AS {}", ident(alias))
}

/// The billing sums of the reference plan (`billing_sums_polars`): per customer the
/// last known bill month, the number of known bills, and the window sums.
pub fn billing(branches: &[Branch], lkbm: NaiveDate, window_start: NaiveDate, margin_rate: f64) -> String {
    let mut aggs = vec![
        "MAX(active) AS \"__last_active_bill\"".to_string(),
        sum("w3", "__n3"),
        sum("y * w3", "__charge3"),
        sum("margin * w3", "__margin3"),
        sum("ok_data3", "__data_n3"),
        sum("COALESCE(data, 0.0) * w3", "__data3"),
        "CAST(COUNT(*) AS DOUBLE) AS \"__n12\"".to_string(),
        sum("y", "__charge12"),
        sum("y * y", "__charge_sq12"),
        sum("disc", "__discount12"),
        sum("late", "__late12"),
        "MAX(dl) AS \"__max_late\"".to_string(),
        "CAST(COUNT(dl) AS DOUBLE) AS \"__late_known12\"".to_string(),
        sum("unpaid", n::UNPAID_AMOUNT_12M),
        sum("unpaid * w3", "__unpaid3"),
    ];
    for (prefix, y, ok) in
        [("charge", "y", "w6"), ("voice", "voice", "ok_voice"), ("data", "data", "ok_data"), ("late", "dl", "ok_late")]
    {
        let y = format!("COALESCE({y}, 0.0)");
        aggs.push(sum(ok, &format!("__{prefix}_n")));
        aggs.push(sum(&format!("x * {ok}"), &format!("__{prefix}_sx")));
        aggs.push(sum(&format!("{y} * {ok}"), &format!("__{prefix}_sy")));
        aggs.push(sum(&format!("x * {y} * {ok}"), &format!("__{prefix}_sxy")));
        aggs.push(sum(&format!("x * x * {ok}"), &format!("__{prefix}_sxx")));
    }
    let flag = |cond: &str| format!("CASE WHEN {cond} THEN 1.0 ELSE 0.0 END");
    let id = ident(c::CUSTOMER_ID);
    let bm = ident(c::BILL_MONTH);
    format!(
        "WITH b AS ({rel}),
k AS (SELECT * FROM b WHERE {bm} <= {lkbm}),
h AS (SELECT {id}, MAX({bm}) AS {last}, COUNT(*) AS {months} FROM k GROUP BY {id}),
r0 AS (SELECT {id},
    CASE WHEN COALESCE(voice_minutes, 0.0) + COALESCE(data_mb, 0.0) + COALESCE(CAST(sms_count AS DOUBLE), 0.0) + total_charge > 0
         THEN {bm} END AS active,
    ROUND((CAST(CAST({bm} AS INT) AS DOUBLE) - {lk_days}) / 30.4375) AS x,
    total_charge AS y,
    COALESCE(total_charge - cost, total_charge * {margin_rate:?}) AS margin,
    COALESCE(discount, 0.0) AS disc,
    {late} AS late,
    CAST(days_late AS DOUBLE) AS dl,
    COALESCE(GREATEST(total_charge - amount_paid, 0.0), 0.0) AS unpaid,
    voice_minutes AS voice, data_mb AS data
  FROM k WHERE {bm} >= {window}),
r1 AS (SELECT *, {w3} AS w3, {w6} AS w6 FROM r0),
r AS (SELECT *, w6 * {voice_ok} AS ok_voice, w6 * {data_ok} AS ok_data, w6 * {late_ok} AS ok_late,
    w3 * {data_ok} AS ok_data3 FROM r1),
w AS (SELECT {id} AS wid, {aggs} FROM r GROUP BY {id})
SELECT h.*, w.* FROM h LEFT JOIN w ON h.{id} = w.wid",
        rel = relation(Table::Billing, branches),
        lkbm = date(lkbm),
        window = date(window_start),
        last = ident(n::LAST_BILL_MONTH),
        months = ident(n::MONTHS_BILLED),
        lk_days = days(lkbm),
        late = flag(
            "COALESCE(days_late > 0, false) OR COALESCE(days_late IS NULL AND amount_paid IS NOT NULL AND amount_paid < total_charge, false)"
        ),
        w3 = flag("x >= -2"),
        w6 = flag("x >= -5"),
        voice_ok = flag("voice IS NOT NULL"),
        data_ok = flag("data IS NOT NULL"),
        late_ok = flag("dl IS NOT NULL"),
        aggs = aggs.join(",\n    "),
    )
}

/// Top-ups in (T - 12 months, T]: count, amount, last day (days since the epoch).
pub fn topups(branches: &[Branch], t: NaiveDate, year_before: NaiveDate) -> String {
    let id = ident(c::CUSTOMER_ID);
    format!(
        "WITH e AS ({rel})
SELECT {id}, CAST(COUNT(*) AS DOUBLE) AS {count}, {amount}, MAX(CAST(ts AS INT)) AS \"__last_topup_day\"
FROM e WHERE ts <= {t} AND ts > {before} GROUP BY {id}",
        rel = relation(Table::Topups, branches),
        count = ident(n::TOPUPS_12M),
        amount = sum("amount", n::TOPUP_AMOUNT_12M),
        t = date(t),
        before = date(year_before),
    )
}

/// Care contacts in (T - 12 months, T].
pub fn interactions(branches: &[Branch], t: NaiveDate, year_before: NaiveDate) -> String {
    let id = ident(c::CUSTOMER_ID);
    format!(
        "WITH e AS ({rel})
SELECT {id}, {complaints}, CAST(COUNT(*) AS DOUBLE) AS {contacts}, {unresolved},
    CAST(COUNT(DISTINCT channel) + MAX(CASE WHEN channel IS NULL THEN 1 ELSE 0 END) AS DOUBLE) AS {channels}
FROM e WHERE ts <= {t} AND ts > {before} GROUP BY {id}",
        rel = relation(Table::Interactions, branches),
        complaints = sum("CASE WHEN kind = 'complaint' THEN 1.0 ELSE 0.0 END", n::COMPLAINTS_12M),
        contacts = ident(n::CONTACTS_12M),
        unresolved = sum("CASE WHEN resolved = false THEN 1.0 ELSE 0.0 END", n::UNRESOLVED_12M),
        channels = ident(n::CHANNELS_USED_12M),
        t = date(t),
        before = date(year_before),
    )
}

/// Surveys answered by T, and the latest one's scores (several on its day: the
/// highest of each).
pub fn surveys(branches: &[Branch], t: NaiveDate) -> String {
    let id = ident(c::CUSTOMER_ID);
    let mut scores = vec![
        format!("CAST(MAX(k.overall) AS DOUBLE) AS {}", ident(n::SURVEY_OVERALL)),
        format!("CAST(MAX(k.recommend) AS DOUBLE) AS {}", ident(n::SURVEY_RECOMMEND)),
    ];
    scores.extend(
        c::ASPECTS.iter().map(|a| format!("CAST(MAX(k.{}) AS DOUBLE) AS {}", ident(a), ident(&n::survey_aspect(a)))),
    );
    format!(
        "WITH s AS ({rel}),
k AS (SELECT * FROM s WHERE survey_date <= {t}),
c AS (SELECT {id} AS cid, COUNT(*) AS answered, MAX(survey_date) AS latest FROM k GROUP BY {id})
SELECT c.cid AS {id}, CAST(MAX(c.answered) AS DOUBLE) AS {answered},
    CAST({t_days} - MAX(CAST(c.latest AS INT)) AS DOUBLE) AS {age}, {scores}
FROM c JOIN k ON k.{id} = c.cid AND k.survey_date = c.latest GROUP BY c.cid",
        rel = relation(Table::Surveys, branches),
        t = date(t),
        t_days = days(t),
        answered = ident(n::SURVEYS_ANSWERED),
        age = ident(n::SURVEY_AGE_DAYS),
        scores = scores.join(", "),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::datatypes::Field;

    fn branch(fields: Vec<Field>, partitions: Vec<(&str, &str)>) -> Branch {
        Branch {
            name: "billing_0".into(),
            schema: Schema::new(fields),
            partitions: partitions.into_iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        }
    }

    #[test]
    fn columns_come_from_the_file_the_folder_name_or_null() {
        let b = branch(
            vec![Field::new("customer_id", DataType::Int32, false), Field::new("ts", DataType::Utf8, true)],
            vec![("amount", "1.5")],
        );
        let s = branch_select(Table::Topups, &[c::CUSTOMER_ID, c::TS, c::AMOUNT], &b);
        assert!(s.contains("CAST(\"customer_id\" AS BIGINT) AS \"customer_id\""), "{s}");
        assert!(s.contains("CAST(CAST(TRIM(\"ts\") AS TIMESTAMP) AS DATE) AS \"ts\""), "{s}");
        assert!(s.contains("CAST('1.5' AS DOUBLE) AS \"amount\""), "{s}");
        let s = branch_select(Table::Billing, &[c::COST], &b);
        assert!(s.contains("CAST(NULL AS DOUBLE) AS \"cost\""), "{s}");
    }

    #[test]
    fn quotes_are_escaped() {
        assert_eq!(quote("it's"), "'it''s'");
        assert_eq!(ident("a\"b"), "\"a\"\"b\"");
    }
}
