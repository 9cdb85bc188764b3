//! The churn model section: out-of-time metrics, ROC, lift and calibration of the
//! model that scored the customers.

use loyalty_report::charts::{LineChart, Series};
use loyalty_report::{Figure, Section, Table};

use super::{figure, fmt_f};
use crate::churn::{ChurnFit, ChurnReport};
use crate::outputs::Outputs;

fn pairs(points: &[[f64; 2]]) -> Vec<(f64, f64)> {
    points.iter().map(|p| (p[0], p[1])).collect()
}

fn metrics_table(r: &ChurnReport, h: u32) -> Table {
    let rows = r
        .out_of_time
        .iter()
        .map(|m| {
            let x = &m.metrics;
            vec![
                m.model.to_string(),
                fmt_f(x.roc_auc),
                fmt_f(x.top_decile_lift),
                fmt_f(x.brier),
                x.customers.to_string(),
                fmt_f(x.base_rate),
            ]
        })
        .collect();
    Table {
        caption: format!("Out-of-time test at {} (churn within {h} months)", r.test_snapshot.as_of),
        header: ["model", "ROC AUC", "lift at 10%", "Brier", "customers", "churn rate"].map(String::from).to_vec(),
        rows,
    }
}

fn roc_figure(r: &ChurnReport, auc: f64) -> Figure {
    figure(
        "fig-roc",
        &format!("ROC curve of the scoring model ({}) on the out-of-time test snapshot.", r.scoring_model),
        LineChart {
            title: format!("ROC (AUC {auc:.3})"),
            x_label: "false positive rate".into(),
            y_label: "true positive rate".into(),
            x_range: (0.0, 1.0),
            y_range: (0.0, 1.0),
            series: vec![Series {
                name: r.scoring_model.into(),
                points: pairs(&r.roc_curve),
                line: true,
                ..Default::default()
            }],
            diagonal: true,
            ..Default::default()
        }
        .svg(),
    )
}

fn lift_figure(r: &ChurnReport) -> Figure {
    let lift: Vec<(f64, f64)> =
        pairs(&r.gains_curve).into_iter().filter(|(x, _)| *x > 0.0).map(|(x, y)| (x, y / x)).collect();
    figure(
        "fig-lift",
        "Cumulative lift: churn rate among the top-scored share of customers over the base rate.",
        LineChart {
            title: "Lift".into(),
            x_label: "share of customers targeted".into(),
            y_label: "lift".into(),
            x_range: (0.0, 1.0),
            y_range: (0.0, lift.iter().map(|p| p.1).fold(1.0, f64::max) * 1.1),
            series: vec![Series {
                name: r.scoring_model.into(),
                points: lift,
                line: true,
                markers: true,
                ..Default::default()
            }],
            ..Default::default()
        }
        .svg(),
    )
}

fn calibration_figure(r: &ChurnReport) -> Figure {
    let cal: Vec<(f64, f64)> = r
        .scoring_metrics()
        .map(|m| m.calibration.iter().map(|b| (b.mean_predicted, b.observed_rate)).collect())
        .unwrap_or_default();
    let top = cal.iter().flat_map(|p| [p.0, p.1]).fold(0.05, f64::max) * 1.1;
    figure(
        "fig-calibration",
        "Calibration by decile of predicted probability: mean predicted against observed churn.",
        LineChart {
            title: "Calibration".into(),
            x_label: "mean predicted churn".into(),
            y_label: "observed churn".into(),
            x_range: (0.0, top),
            y_range: (0.0, top),
            series: vec![Series {
                name: "deciles".into(),
                points: cal,
                line: true,
                markers: true,
                ..Default::default()
            }],
            diagonal: true,
            ..Default::default()
        }
        .svg(),
    )
}

fn fitted(fit: &ChurnFit, h: u32) -> (Vec<String>, Vec<Figure>, Vec<Table>) {
    let r = &fit.report;
    let auc = r.scoring_metrics().map_or(f64::NAN, |m| m.roc_auc);
    let text = format!(
        "Postpaid churn classifier ({}) trained on earlier snapshots and tested out of time at {}: ROC AUC {auc:.3}. Prepaid customers are scored by BG/NBD.",
        r.scoring_model, r.test_snapshot.as_of
    );
    (vec![text], vec![roc_figure(r, auc), lift_figure(r), calibration_figure(r)], vec![metrics_table(r, h)])
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
