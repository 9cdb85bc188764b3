//! Text for people: validation problems (the error of a strict run), dataset
//! summaries (`loyalty validate`), and the human format of the model reports
//! (`loyalty fit`, `loyalty churn`).

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

/// A fitted customer-base model: parameters with standard errors, then the extras.
pub fn fit_report(r: &crate::fit::FitReport) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "{} fitted to {} customers ({} likelihood rows)", r.model, r.customers, r.rows);
    let _ = writeln!(o, "  {:<8} {:>14} {:>12}", "param", "estimate", "std.error");
    for n in r.names {
        let _ = writeln!(o, "  {:<8} {:>14.6} {:>12.6}", n, r.params[n], r.std_errors[n]);
    }
    let _ = writeln!(o, "  log-likelihood {:.4}   converged: {}", r.log_likelihood, r.converged);
    for (k, v) in &r.extra {
        let _ = writeln!(o, "  {k}: {v}");
    }
    o
}

/// Kaplan-Meier survival at fixed tenures, one line per group.
pub fn km_summary(s: &crate::fit::KmSummary) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "Kaplan-Meier retention by {} (customers known at {}), survival at tenure", s.by, s.as_of);
    let _ = writeln!(o, "  {:<20} {:>8} {:>8} {:>8} {:>8}", "group", "6m", "12m", "24m", "36m");
    let f = |v: Option<f64>| v.map_or("-".to_string(), |x| format!("{x:.4}"));
    for g in &s.groups {
        let (a, b, c, d) = (f(g.survival_6m), f(g.survival_12m), f(g.survival_24m), f(g.survival_36m));
        let _ = writeln!(o, "  {:<20} {a:>8} {b:>8} {c:>8} {d:>8}", g.group);
    }
    o
}

/// The candidates' metrics under `title`, then the calibration table of `calibrated`.
fn metrics(o: &mut String, title: &str, rows: &[crate::churn::ModelMetrics], calibrated: &str) {
    let _ = writeln!(o, "{title}");
    let _ = writeln!(o, "  {:<28} {:>9} {:>9} {:>9} {:>9}", "model", "ROC AUC", "lift@10%", "Brier", "churn");
    for r in rows {
        let m = &r.metrics;
        let _ = writeln!(
            o,
            "  {:<28} {:>9.4} {:>9.2} {:>9.4} {:>8.1}%",
            r.model,
            m.roc_auc,
            m.top_decile_lift,
            m.brier,
            100.0 * m.base_rate
        );
    }
    if let Some(best) = rows.iter().find(|r| r.model == calibrated).or(rows.first()) {
        let _ = writeln!(o, "  calibration ({}): decile, customers, mean predicted, observed", best.model);
        for b in &best.metrics.calibration {
            let _ =
                writeln!(o, "    {:>2} {:>8} {:>8.4} {:>8.4}", b.bin, b.customers, b.mean_predicted, b.observed_rate);
        }
    }
}

/// `loyalty churn train`: per plan type the out-of-time test and what was scored,
/// then prepaid BG/NBD where it scores.
pub fn churn_training(r: &crate::churn::ChurnReport) -> String {
    let mut o = String::new();
    let h = r.horizon_months;
    for p in &r.plans {
        let plan = p.plan.as_str();
        let title = format!(
            "{plan}, out of time: trained on snapshots {} ({} customers), tested at {} ({} customers), churn within {h} months",
            r.train_snapshots.join(", "),
            p.train_customers,
            r.test_snapshot,
            p.test_snapshot.sampled_customers
        );
        metrics(&mut o, &title, &p.out_of_time, p.scoring_model);
        for c in &p.by_competition {
            let _ = writeln!(
                o,
                "  {} competition: ROC AUC {:.4}, lift@10% {:.2} ({} customers)",
                c.competition_level, c.metrics.roc_auc, c.metrics.top_decile_lift, c.metrics.customers
            );
        }
        let top: Vec<&str> = p.top_features.iter().map(|f| f.feature.as_str()).collect();
        let _ = writeln!(
            o,
            "scored {} {plan} customers active at {} with {}; mean p_churn_{h}m {:.4}; top features: {}",
            p.scored_customers,
            r.as_of,
            p.scoring_model,
            p.mean_p_churn,
            top.join(", ")
        );
    }
    if let Some(b) = &r.prepaid_bgnbd {
        if let Some(m) = &b.out_of_time {
            let _ = writeln!(
                o,
                "prepaid, BG/NBD P(alive {h} months on), out of time at {}: ROC AUC {:.4}, lift@10% {:.2}, Brier {:.4} ({} customers, {:.1}% churned)",
                r.test_snapshot,
                m.roc_auc,
                m.top_decile_lift,
                m.brier,
                m.customers,
                100.0 * m.base_rate
            );
        }
        let _ = writeln!(
            o,
            "scored {} prepaid customers active at {} with BG/NBD (no prepaid churn observed to train on); mean p_churn_{h}m {:.4}",
            b.customers, r.as_of, b.mean_p_churn
        );
    }
    o
}

/// `loyalty churn evaluate`: the cross-validated metrics and boosting's AUC by fold.
pub fn cross_validation(cv: &crate::churn::evaluate::CrossValidation) -> String {
    let mut o = String::new();
    let title = format!(
        "{}-fold stratified cross-validation at {}: {} postpaid customers, {} churned within {} months",
        cv.folds, cv.as_of, cv.customers, cv.churners, cv.horizon_months
    );
    metrics(&mut o, &title, &cv.cross_validated, "gradient boosting calibrated");
    let auc = &cv.gradient_boosting_fold_auc;
    let _ = writeln!(o, "gradient boosting ROC AUC by fold: mean {:.4}, sd {:.4}", auc.mean, auc.sd);
    o
}
