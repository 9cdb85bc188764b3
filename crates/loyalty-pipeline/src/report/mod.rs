//! The run's HTML report, built from its output tables (DOMAIN.md section 6): one
//! function per section.

mod curves;
mod model;
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

fn fmt_value(v: AnyValue) -> String {
    match v {
        AnyValue::Null => String::new(),
        AnyValue::Float64(x) => fmt_f(x),
        AnyValue::Float32(x) => fmt_f(f64::from(x)),
        AnyValue::Boolean(b) => if b { "yes" } else { "" }.to_string(),
        AnyValue::String(s) => s.to_string(),
        AnyValue::StringOwned(s) => s.to_string(),
        other => other.to_string().trim_matches('"').to_string(),
    }
}

pub(super) fn fmt_f(x: f64) -> String {
    if !x.is_finite() {
        String::new()
    } else if x != 0.0 && (x.abs() >= 1e6 || x.abs() < 1e-3) {
        format!("{x:.3e}")
    } else if x.abs() >= 100.0 {
        format!("{x:.0}")
    } else {
        format!("{x:.3}")
    }
}

/// A table of the chosen columns (all when empty), at most `max_rows` rows.
pub(super) fn table(df: &DataFrame, caption: &str, columns: &[&str], max_rows: usize) -> Table {
    let names: Vec<String> = if columns.is_empty() {
        df.get_column_names().iter().map(|s| s.to_string()).collect()
    } else {
        columns.iter().filter(|c| df.column(c).is_ok()).map(|c| c.to_string()).collect()
    };
    let cols: Vec<&Column> = names.iter().filter_map(|n| df.column(n).ok()).collect();
    let rows = (0..df.height().min(max_rows))
        .map(|i| cols.iter().map(|c| c.get(i).map(fmt_value).unwrap_or_default()).collect())
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
    let sections = vec![
        value::segments(out, cfg),
        value::pyramid(out),
        curves::section(out, cfg),
        retention::section(out, cfg),
        model::section(out, h),
        data_section(out, summary),
    ];
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
        .map(|t| vec![t.table.to_string(), t.files.to_string(), t.rows_read.to_string(), t.rows_rejected.to_string()])
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
