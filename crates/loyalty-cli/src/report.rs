//! Human-readable text for validation problems and dataset summaries.

use std::fmt::Write;

use loyalty_contract::Violation;
use loyalty_contract::summary::DatasetSummary;

/// One block per broken rule: table, file, column, rule, count, examples.
pub fn violations(list: &[Violation]) -> String {
    let rows: u64 = list.iter().map(|v| v.rows).sum();
    let mut s = format!("input failed validation: {} rule(s) broken, {} row(s)\n", list.len(), rows);
    for v in list {
        let _ = writeln!(
            s,
            "  table `{}` ({}), column `{}`, rule `{}`: {} row(s); {}",
            v.table, v.location, v.column, v.rule, v.rows, v.description
        );
        if !v.files.is_empty() {
            let _ = writeln!(s, "    file: {}", v.files.join(", "));
        }
        for e in &v.examples {
            let _ = writeln!(s, "    e.g. {e}");
        }
    }
    s.push_str("nothing was written; fix the input, or rerun with --lenient to set these rows aside");
    s
}

fn pct(x: f64) -> String {
    format!("{:.1}%", 100.0 * x)
}

pub fn summary(data: &str, s: &DatasetSummary) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "dataset {data}");
    let _ = writeln!(o, "  tables:");
    for t in &s.tables {
        let rejected = if t.rows_rejected > 0 { format!(" ({} rejected)", t.rows_rejected) } else { String::new() };
        let _ =
            writeln!(o, "    {:<16} {:>12} rows in {:>4} file(s){rejected}", t.table.to_string(), t.rows_read, t.files);
    }
    let _ = writeln!(o, "  customers:     {} ({} active, {} markets)", s.customers, s.active_customers, s.markets);
    let mix: Vec<String> =
        s.plan_mix.iter().map(|(k, v)| format!("{k} {}", pct(*v as f64 / s.customers.max(1) as f64))).collect();
    let _ = writeln!(o, "  plan mix:      {}", mix.join(", "));
    let contracts: Vec<String> = s.contract_mix.iter().map(|(k, v)| format!("{k}: {v}")).collect();
    let _ = writeln!(o, "  contracts:     {}", contracts.join(", "));
    let b = &s.billing;
    let range = match (b.first_month, b.last_month) {
        (Some(f), Some(l)) => format!("{f} .. {l}"),
        _ => "empty".into(),
    };
    let _ = writeln!(
        o,
        "  billing:       {} rows, {} months ({range}), {} customers billed",
        b.rows, b.months, b.customers_billed
    );
    let _ = writeln!(
        o,
        "  churn:         {} churned ({}), monthly churn rate {}",
        s.churn.churned,
        pct(s.churn.churned_share),
        pct(s.churn.monthly_churn_rate)
    );
    match &s.surveys {
        Some(v) => {
            let _ = writeln!(
                o,
                "  surveys:       {} surveys, {} customers ({} coverage)",
                v.surveys,
                v.customers_surveyed,
                pct(v.coverage)
            );
        }
        None => {
            let _ = writeln!(o, "  surveys:       none");
        }
    }
    if s.rows_rejected > 0 {
        let _ = writeln!(o, "  rejected:      {} row(s) set aside (--lenient)", s.rows_rejected);
    }
    o
}
