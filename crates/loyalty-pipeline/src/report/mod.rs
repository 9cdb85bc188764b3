//! The run's HTML report, built from its output tables (DOMAIN.md section 6): one
//! function per section.

mod curves;
mod leavers;
mod model;
mod profiles;
mod retention;
mod value;

use std::path::Path;

use loyalty_contract::summary::DatasetSummary;
use loyalty_report::charts::ChartError;
use loyalty_report::{Document, Figure, Section, Table};
use polars::prelude::*;

use crate::outputs::Outputs;
use crate::settings::RunConfig;

pub(super) fn floats(df: &DataFrame, name: &str) -> Vec<f64> {
    df.column(name)
        .ok()
        .and_then(|c| c.as_materialized_series().cast(&DataType::Float64).ok())
        .and_then(|s| s.f64().ok().map(|ca| ca.iter().map(|v| v.unwrap_or(f64::NAN)).collect()))
        .unwrap_or_default()
}

pub(super) fn strings(df: &DataFrame, name: &str) -> Vec<String> {
    df.column(name)
        .ok()
        .and_then(|c| c.as_materialized_series().cast(&DataType::String).ok())
        .and_then(|s| s.str().ok().map(|ca| ca.iter().map(|v| v.unwrap_or("").to_string()).collect()))
        .unwrap_or_default()
}

/// A cell for people; `percent` columns (shares and rates) as percentages.
fn fmt_value(v: AnyValue, percent: bool) -> String {
    let number = |x: f64| if percent && x.is_finite() { fmt_percent(x) } else { fmt_f(x) };
    match v {
        AnyValue::Null => String::new(),
        AnyValue::Float64(x) => number(x),
        AnyValue::Float32(x) => number(f64::from(x)),
        AnyValue::Int64(x) if x.unsigned_abs() >= 10_000 => grouped(x as f64),
        AnyValue::UInt32(x) if x >= 10_000 => grouped(f64::from(x)),
        AnyValue::Boolean(b) => if b { "yes" } else { "" }.to_string(),
        AnyValue::String(s) => s.to_string(),
        AnyValue::StringOwned(s) => s.to_string(),
        other => other.to_string().trim_matches('"').to_string(),
    }
}

/// A number for people: thousands separators from 10,000, no exponents, two
/// significant digits below 0.001.
pub(super) fn fmt_f(x: f64) -> String {
    let a = x.abs();
    if !x.is_finite() {
        String::new()
    } else if a >= 10_000.0 {
        grouped(x)
    } else if a >= 100.0 {
        format!("{x:.0}")
    } else if a >= 1.0 {
        format!("{x:.2}")
    } else if a >= 1e-3 || x == 0.0 {
        format!("{x:.3}")
    } else {
        let decimals = (1.0 - a.log10().floor()) as usize;
        format!("{x:.decimals$}")
    }
}

/// A count for people: a whole number, with thousands separators from 10,000.
pub(super) fn count(x: f64) -> String {
    // + 0.0 turns the -0.0 of an empty sum into 0.
    let x = x + 0.0;
    if x.abs() >= 10_000.0 { grouped(x) } else { format!("{x:.0}") }
}

/// A share as a percentage: 0.1234 is "12.3%".
pub(super) fn fmt_percent(x: f64) -> String {
    let p = 100.0 * x;
    if p != 0.0 && p.abs() < 0.1 { format!("{}%", fmt_f(p)) } else { format!("{p:.1}%") }
}

/// Rounded to a whole number with commas between thousands: 4011000.4 is "4,011,000".
fn grouped(x: f64) -> String {
    let digits = format!("{:.0}", x.abs());
    let mut out = String::with_capacity(digits.len() + digits.len() / 3 + 1);
    if x < 0.0 && digits != "0" {
        out.push('-');
    }
    for (i, ch) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

/// Whether a column holds shares or rates (shown as percentages).
fn is_percent(name: &str) -> bool {
    name.ends_with("share") || name.ends_with("_rate")
}

/// A table of the chosen columns (all when empty), at most `max_rows` rows.
pub(super) fn table(df: &DataFrame, caption: &str, columns: &[&str], max_rows: usize) -> Table {
    let names: Vec<String> = if columns.is_empty() {
        df.get_column_names().iter().map(|s| s.to_string()).collect()
    } else {
        columns.iter().filter(|c| df.column(c).is_ok()).map(|c| c.to_string()).collect()
    };
    let cols: Vec<(&Column, bool)> =
        names.iter().filter_map(|n| df.column(n).ok().map(|c| (c, is_percent(n)))).collect();
    let rows = (0..df.height().min(max_rows))
        .map(|i| cols.iter().map(|(c, pct)| c.get(i).map(|v| fmt_value(v, *pct)).unwrap_or_default()).collect())
        .collect();
    Table { caption: caption.to_string(), header: names, rows }
}

pub(super) fn figure(id: &str, caption: &str, svg: Result<String, ChartError>) -> Figure {
    let svg = svg.unwrap_or_else(|e| {
        tracing::warn!("figure {id}: {e}");
        format!("<p>figure unavailable: {}</p>", loyalty_report::escape(&e.to_string()))
    });
    Figure { id: id.to_string(), caption: caption.to_string(), svg }
}

pub fn document(out: &Outputs, summary: &DatasetSummary, cfg: &RunConfig, data: &Path) -> Document {
    let h = cfg.model.churn_horizon_months;
    let mut sections = vec![
        value::segments(out, cfg),
        value::pyramid(out),
        curves::section(out, cfg),
        profiles::section(out),
        retention::section(out, cfg),
        leavers::section(out, cfg),
    ];
    sections.extend(leavers::migration_section(out));
    sections.extend([model::section(out, h), data_section(out, summary)]);
    Document {
        title: "Customer value and loyalty".into(),
        meta: vec![
            ("as of (T)".into(), cfg.model.as_of.to_string()),
            ("data".into(), data.display().to_string()),
            ("churn horizon".into(), format!("{h} months")),
            ("valuation horizon".into(), format!("{} months", cfg.model.valuation_months)),
            (
                "customer ids".into(),
                if cfg.output.pseudonymize_ids { "pseudonymised" } else { "as in the data" }.into(),
            ),
            ("loyalty".into(), env!("CARGO_PKG_VERSION").to_string()),
        ],
        sections,
    }
}

/// The data the run read.
fn data_section(out: &Outputs, summary: &DatasetSummary) -> Section {
    let mut rows: Vec<Vec<String>> = summary
        .tables
        .iter()
        .map(|t| {
            let n = |x: u64| count(x as f64);
            vec![t.table.to_string(), n(t.files as u64), n(t.rows_read), n(t.rows_rejected)]
        })
        .collect();
    rows.sort();
    Section {
        id: "data".into(),
        title: "Data".into(),
        paragraphs: vec![format!(
            "{} customers ({} without a churn date) in {} markets; {} active at T were analysed. Plans: {}.",
            summary.customers,
            summary.active_customers,
            summary.markets,
            out.customers.height(),
            summary.plan_mix.iter().map(|(k, v)| format!("{k} {v}")).collect::<Vec<_>>().join(", ")
        )],
        figures: vec![],
        tables: vec![Table {
            caption: "Input tables".into(),
            header: ["table", "files", "rows read", "rows rejected"].map(String::from).to_vec(),
            rows,
        }],
    }
}

#[cfg(test)]
mod format_tests {
    use super::*;

    #[test]
    fn numbers_read_as_people_write_them() {
        assert_eq!(fmt_f(4_011_000.4), "4,011,000");
        assert_eq!(fmt_f(-12_345.6), "-12,346");
        assert_eq!(fmt_f(1_234.5), "1234");
        assert_eq!(fmt_f(42.126), "42.13");
        assert_eq!(fmt_f(0.5), "0.500");
        assert_eq!(fmt_f(-1.504e-4), "-0.00015");
        assert_eq!(fmt_f(0.0), "0.000");
        assert_eq!(fmt_f(f64::NAN), "");
        assert_eq!(fmt_percent(0.1234), "12.3%");
        assert_eq!((count(4.0), count(12_345.0), count(-0.0)), ("4".into(), "12,345".into(), "0".into()));
        assert_eq!(fmt_percent(0.0002), "0.020%");
        assert_eq!(fmt_percent(0.0), "0.0%");
        assert_eq!(fmt_value(AnyValue::Int64(1_500_000), false), "1,500,000");
        assert_eq!(fmt_value(AnyValue::Float64(0.25), true), "25.0%");
        assert!(is_percent("margin_share") && is_percent("churn_rate") && !is_percent("customers"));
    }
}
