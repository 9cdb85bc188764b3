//! The churn model section: per plan type, the out-of-time metrics of every
//! candidate, and the ROC, lift and calibration of the model that scored.

use loyalty_report::charts::{LineChart, Series};
use loyalty_report::{Figure, Section, Table};

use super::{figure, fmt_f};
use crate::churn::{ChurnFit, ChurnReport, PlanReport};
use crate::outputs::Outputs;
use crate::settings::Classifier;

fn pairs(points: &[[f64; 2]]) -> Vec<(f64, f64)> {
    points.iter().map(|p| (p[0], p[1])).collect()
}

fn metric_cells(x: &loyalty_models::churn::Metrics) -> Vec<String> {
    vec![fmt_f(x.roc_auc), fmt_f(x.top_decile_lift), fmt_f(x.brier), x.customers.to_string(), fmt_f(x.base_rate)]
}

fn metrics_table(r: &ChurnReport, h: u32) -> Table {
    let mut rows = Vec::new();
    for p in &r.plans {
        for m in &p.out_of_time {
            let chosen = if m.model == p.scoring_model { " (scores)" } else { "" };
            rows.push(
                [vec![p.plan.as_str().to_string(), format!("{}{chosen}", m.model)], metric_cells(&m.metrics)].concat(),
            );
        }
    }
    if let Some(m) = r.prepaid_bgnbd.as_ref().and_then(|b| b.out_of_time.as_ref()) {
        rows.push([vec!["prepaid".to_string(), "BG/NBD (scores)".to_string()], metric_cells(m)].concat());
    }
    Table {
        caption: format!("Out-of-time test at {} (churn within {h} months)", r.test_snapshot),
        header: ["plan", "model", "ROC AUC", "lift at 10%", "Brier", "customers", "churn rate"]
            .map(String::from)
            .to_vec(),
        rows,
    }
}

fn competition_table(r: &ChurnReport) -> Table {
    let rows = r
        .plans
        .iter()
        .flat_map(|p| {
            p.by_competition.iter().map(|c| {
                [vec![p.plan.as_str().to_string(), c.competition_level.to_string()], metric_cells(&c.metrics)].concat()
            })
        })
        .collect();
    Table {
        caption: "The scoring models out of time, by competition level".into(),
        header: ["plan", "competition", "ROC AUC", "lift at 10%", "Brier", "customers", "churn rate"]
            .map(String::from)
            .to_vec(),
        rows,
    }
}

fn series(name: String, points: Vec<(f64, f64)>) -> Series {
    Series { name, points, line: true, markers: true, ..Default::default() }
}

fn label(p: &PlanReport) -> String {
    format!("{} ({})", p.plan.as_str(), p.scoring_model)
}

fn roc_figure(r: &ChurnReport) -> Figure {
    figure(
        "fig-roc",
        "ROC curves of the scoring models on the out-of-time test snapshot, per plan type.",
        LineChart {
            title: "ROC, out of time".into(),
            x_label: "false positive rate".into(),
            y_label: "true positive rate".into(),
            x_range: (0.0, 1.0),
            y_range: (0.0, 1.0),
            series: r
                .plans
                .iter()
                .map(|p| Series { markers: false, ..series(label(p), pairs(&p.roc_curve)) })
                .collect(),
            diagonal: true,
            ..Default::default()
        }
        .svg(),
    )
}

fn lift_figure(r: &ChurnReport) -> Figure {
    let lifts: Vec<Series> = r
        .plans
        .iter()
        .map(|p| {
            let lift = pairs(&p.gains_curve).into_iter().filter(|(x, _)| *x > 0.0).map(|(x, y)| (x, y / x)).collect();
            series(label(p), lift)
        })
        .collect();
    let top = lifts.iter().flat_map(|s| s.points.iter().map(|p| p.1)).fold(1.0, f64::max) * 1.1;
    figure(
        "fig-lift",
        "Cumulative lift: churn rate among the top-scored share of customers over the base rate.",
        LineChart {
            title: "Lift".into(),
            x_label: "share of customers targeted".into(),
            y_label: "lift".into(),
            x_range: (0.0, 1.0),
            y_range: (0.0, top),
            series: lifts,
            ..Default::default()
        }
        .svg(),
    )
}

fn calibration_figure(r: &ChurnReport) -> Figure {
    let cal: Vec<Series> = r
        .plans
        .iter()
        .map(|p| {
            let points = p
                .scoring_metrics()
                .map(|m| m.calibration.iter().map(|b| (b.mean_predicted, b.observed_rate)).collect())
                .unwrap_or_default();
            series(label(p), points)
        })
        .collect();
    let top = cal.iter().flat_map(|s| s.points.iter().flat_map(|p| [p.0, p.1])).fold(0.05, f64::max) * 1.1;
    figure(
        "fig-calibration",
        "Calibration by decile of predicted probability: mean predicted against observed churn.",
        LineChart {
            title: "Calibration".into(),
            x_label: "mean predicted churn".into(),
            y_label: "observed churn".into(),
            x_range: (0.0, top),
            y_range: (0.0, top),
            series: cal,
            diagonal: true,
            ..Default::default()
        }
        .svg(),
    )
}

fn plan_sentence(p: &PlanReport, r: &ChurnReport) -> String {
    let auc = p.scoring_metrics().map_or(f64::NAN, |m| m.roc_auc);
    let why = match r.classifier {
        Classifier::Auto => "the candidate with the higher out-of-time ROC AUC",
        Classifier::Boosting | Classifier::Logistic => "as configured",
    };
    format!(
        "{} customers: {}, {why}, trained on earlier snapshots and tested out of time at {}: ROC AUC {auc:.3}.",
        p.plan.as_str(),
        p.scoring_model,
        r.test_snapshot
    )
}

fn fitted(fit: &ChurnFit, h: u32) -> (Vec<String>, Vec<Figure>, Vec<Table>) {
    let r = &fit.report;
    let mut text: Vec<String> = r.plans.iter().map(|p| plan_sentence(p, r)).collect();
    if r.prepaid_bgnbd.is_some() {
        text.push(
            "Prepaid customers are scored by BG/NBD: the data has no prepaid churn to train a classifier on.".into(),
        );
    }
    let mut tables = vec![metrics_table(r, h)];
    if r.plans.iter().any(|p| !p.by_competition.is_empty()) {
        tables.push(competition_table(r));
    }
    (text, vec![roc_figure(r), lift_figure(r), calibration_figure(r)], tables)
}

pub(super) fn section(out: &Outputs, h: u32) -> Section {
    let (paragraphs, figures, tables) = match &out.churn {
        Some(fit) => fitted(fit, h),
        None => (
            vec!["No churn classifier: the data is too short for out-of-time validation (or has no churner); loyalty comes from Kaplan-Meier curves.".into()],
            vec![],
            vec![],
        ),
    };
    Section { id: "model".into(), title: "Churn model quality".into(), paragraphs, figures, tables }
}
