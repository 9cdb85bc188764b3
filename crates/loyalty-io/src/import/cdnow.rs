//! The CDNOW purchase log (Fader, Hardie & Lee 2005) into the contract.
//!
//! Two layouts: the master file (`customer_id date number_of_cds dollar_value`, one
//! header line) and the 1/10 sample (`master_id sample_id date cds dollars`, no
//! header; the sample id is the customer id, as in the published summaries).
//! Mapping: every customer is a `prepaid` customer of market `cdnow`, signed up on
//! their first purchase; each purchase line is a top-up (`ts` = its day, `amount` =
//! its dollars); billing holds one row per customer and month with purchases
//! (`total_charge` = that month's dollars, other columns null). Lines of $0.00 are
//! kept out of top-ups (the contract requires amount > 0) but still date the signup
//! and count in billing. Lost: the number of CDs, and the time of day (there is none).

use std::collections::BTreeMap;
use std::path::Path;

use chrono::{Datelike, NaiveDate};
use polars::prelude::*;

use super::{ImportError, billing_frame, days, lines};

fn date_column(name: &str, v: Vec<i32>) -> PolarsResult<Column> {
    super::date_column(name, v.into_iter().map(Some).collect())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    Master,
    Sample,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Purchase {
    pub customer_id: i64,
    pub date: NaiveDate,
    pub cds: i64,
    pub dollars: f64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct CdnowLog {
    pub layout: Layout,
    pub purchases: Vec<Purchase>,
}

/// Parse a CDNOW file's bytes (`path` names it in errors).
pub fn parse(bytes: &[u8], path: &Path) -> Result<CdnowLog, ImportError> {
    let mut layout = None;
    let mut purchases = Vec::new();
    for item in lines(bytes, path) {
        let (line, text) = item?;
        let fields: Vec<&str> = text.split_whitespace().collect();
        if fields.is_empty() {
            continue;
        }
        let err = |field: &str, value: &str, reason: &str| ImportError {
            path: path.to_path_buf(),
            line,
            field: field.into(),
            value: value.chars().take(40).collect(),
            reason: reason.into(),
        };
        if layout.is_none() && purchases.is_empty() && fields[0] == "customer_id" {
            continue; // the master file's header
        }
        let this = match fields.len() {
            4 => Layout::Master,
            5 => Layout::Sample,
            n => return Err(err("line", text.trim(), &format!("expected 4 fields (master) or 5 (sample), found {n}"))),
        };
        match layout {
            None => layout = Some(this),
            Some(l) if l != this => {
                return Err(err(
                    "line",
                    text.trim(),
                    &format!(
                        "{} fields, but earlier lines have {}",
                        fields.len(),
                        if l == Layout::Master { 4 } else { 5 }
                    ),
                ));
            }
            Some(_) => {}
        }
        let (id, rest) = match this {
            Layout::Master => (fields[0], &fields[1..]),
            Layout::Sample => (fields[1], &fields[2..]),
        };
        let customer_id = id
            .parse::<i64>()
            .ok()
            .filter(|v| *v >= 0)
            .ok_or_else(|| err("customer_id", id, "not a whole number >= 0"))?;
        let date = (rest[0].len() == 8 && rest[0].bytes().all(|b| b.is_ascii_digit()))
            .then(|| NaiveDate::parse_from_str(rest[0], "%Y%m%d").ok())
            .flatten()
            .ok_or_else(|| err("date", rest[0], "not a date YYYYMMDD"))?;
        let cds = rest[1]
            .parse::<i64>()
            .ok()
            .filter(|v| *v >= 0)
            .ok_or_else(|| err("number_of_cds", rest[1], "not a whole number >= 0"))?;
        let dollars = rest[2]
            .parse::<f64>()
            .ok()
            .filter(|v| v.is_finite() && *v >= 0.0)
            .ok_or_else(|| err("dollar_value", rest[2], "not a finite amount >= 0"))?;
        purchases.push(Purchase { customer_id, date, cds, dollars });
    }
    let layout = layout.ok_or_else(|| ImportError {
        path: path.to_path_buf(),
        line: 1,
        field: "file".into(),
        value: String::new(),
        reason: "no purchase lines".into(),
    })?;
    Ok(CdnowLog { layout, purchases })
}

/// The contract tables (customers, billing, topups) of a parsed log, and the number
/// of $0.00 lines kept out of top-ups.
pub fn tables(log: &CdnowLog) -> PolarsResult<(Vec<(&'static str, DataFrame)>, usize)> {
    use loyalty_contract::col as c;
    let mut first: BTreeMap<i64, NaiveDate> = BTreeMap::new();
    let mut months: BTreeMap<(i64, NaiveDate), f64> = BTreeMap::new();
    for p in &log.purchases {
        first.entry(p.customer_id).and_modify(|d| *d = (*d).min(p.date)).or_insert(p.date);
        let month = p.date.with_day(1).expect("day 1 exists");
        *months.entry((p.customer_id, month)).or_insert(0.0) += p.dollars;
    }
    let n = first.len();
    let customers = DataFrame::new_infer_height(vec![
        Column::new(c::CUSTOMER_ID.into(), first.keys().copied().collect::<Vec<i64>>()),
        date_column(c::SIGNUP_DATE, first.values().map(|d| days(*d)).collect())?,
        Column::new(c::MARKET_ID.into(), vec!["cdnow"; n]),
        Column::new(c::PLAN_TYPE.into(), vec!["prepaid"; n]),
        Column::full_null(c::CONTRACT_MONTHS.into(), n, &DataType::Int64),
        Column::full_null(c::CHURN_DATE.into(), n, &DataType::Date),
        Column::full_null(c::CHURN_REASON.into(), n, &DataType::String),
    ])?;
    let billing = billing_frame(
        months.keys().map(|k| k.0).collect(),
        months.keys().map(|k| days(k.1)).collect(),
        months.values().copied().collect(),
        None,
    )?;
    let paid: Vec<&Purchase> = log.purchases.iter().filter(|p| p.dollars > 0.0).collect();
    let topups = DataFrame::new_infer_height(vec![
        Column::new(c::CUSTOMER_ID.into(), paid.iter().map(|p| p.customer_id).collect::<Vec<i64>>()),
        date_column(c::TS, paid.iter().map(|p| days(p.date)).collect())?,
        Column::new(c::AMOUNT.into(), paid.iter().map(|p| p.dollars).collect::<Vec<f64>>()),
    ])?;
    let free = log.purchases.len() - paid.len();
    Ok((vec![("customers", customers), ("billing", billing), ("topups", topups)], free))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Result<CdnowLog, ImportError> {
        parse(s.as_bytes(), Path::new("x.txt"))
    }

    #[test]
    fn both_layouts_parse() {
        let m = p(
            " customer_id  date number_of_cds  dollar_value\n 00001 19970101  1   11.77\n 00002 19970112  5   77.00\n",
        )
        .unwrap();
        assert_eq!(m.layout, Layout::Master);
        assert_eq!(m.purchases.len(), 2);
        assert_eq!(m.purchases[1].customer_id, 2);
        let s = p(" 00004 0001 19970101  2   29.33\r\n\n 00021 0002 19970101  3   63.34").unwrap();
        assert_eq!(s.layout, Layout::Sample);
        assert_eq!(s.purchases[1].customer_id, 2);
        assert!((s.purchases[1].dollars - 63.34).abs() < 1e-12);
    }

    #[test]
    fn malformed_lines_name_line_and_field() {
        let cases = [
            (" 00001 19970101 1 11.77\n 00002 1997011 1 2.0\n", 2, "date"),
            (" 00001 19971301 1 11.77\n", 1, "date"),
            (" 0000x 19970101 1 11.77\n", 1, "customer_id"),
            (" 00001 19970101 -1 11.77\n", 1, "number_of_cds"),
            (" 00001 19970101 1 NaN\n", 1, "dollar_value"),
            (" 00001 19970101 1 -3\n", 1, "dollar_value"),
            (" 00001 19970101 1\n", 1, "line"),
            (" 00001 19970101 1 1.0\n 00004 0001 19970101  2   29.33\n", 2, "line"),
            ("", 1, "file"),
        ];
        for (text, line, field) in cases {
            let e = p(text).unwrap_err();
            assert_eq!((e.line, e.field.as_str()), (line, field), "{text:?}: {e}");
            assert!(e.to_string().starts_with(&format!("x.txt:{line}: field `{field}`")), "{e}");
        }
        let e = parse(b" 00001 19970101 1 1.0\n\xff\xfe 1\n", Path::new("x.txt")).unwrap_err();
        assert_eq!(e.line, 2);
    }
}
