//! The retention section: sBG on contract cohorts, retention economics, win-back.

use loyalty_report::charts::{LineChart, Series, range};
use loyalty_report::{Figure, Section, Table};

use super::{figure, table};
use crate::cohorts::SbgRetention;
use crate::outputs::Outputs;
use crate::settings::RunConfig;

fn sbg_figure(s: &SbgRetention) -> Figure {
    let months = s.contract_months;
    let obs: Vec<(f64, f64)> = s.curve.iter().filter_map(|p| p.observed.map(|o| (f64::from(p.period), o))).collect();
    let model: Vec<(f64, f64)> = s.curve.iter().map(|p| (f64::from(p.period), p.model)).collect();
    let y0 = range(model.iter().map(|p| p.1).chain(obs.iter().map(|p| p.1))).0.max(0.0);
    figure(
        "fig-retention",
        "Share of a contract cohort still a customer after t terms: pooled observed against sBG.",
        LineChart {
            title: "Retention: observed vs sBG".into(),
            x_label: format!("contract terms ({months} months)"),
            y_label: "surviving share".into(),
            x_range: (0.0, model.last().map_or(1.0, |p| p.0)),
            y_range: (y0, 1.02),
            series: vec![
                Series { name: "observed".into(), points: obs, markers: true, line: true, ..Default::default() },
                Series { name: "sBG".into(), points: model, line: true, dashed: true, color: 1, ..Default::default() },
            ],
            ..Default::default()
        }
        .svg(),
    )
}

const ECONOMICS_COLUMNS: [&str; 13] = [
    "grouping",
    "group",
    "customers",
    "mean_yearly_churn",
    "clv_total",
    "clv_gain_rel5",
    "clv_gain_rel5_pct",
    "margin_12m_gain_rel5",
    "clv_gain_pp5",
    "clv_gain_pp5_pct",
    "margin_12m_gain_pp5",
    "lifetime_gain_rel5_pct",
    "lifetime_gain_pp5_pct",
];

const WINBACK_COLUMNS: [&str; 10] = [
    "rank",
    "customer_id",
    "plan_type",
    "churn_date",
    "churn_reason",
    "reason_class",
    "tenure_months_at_churn",
    "margin_monthly_before_churn",
    "collected_margin_monthly_before_churn",
    "value_lost",
];

fn tables(out: &Outputs, cfg: &RunConfig) -> Vec<Table> {
    let rows = cfg.output.report_winback_rows;
    vec![
        table(
            &out.economics,
            "Retention economics: change in CLV and in next-12-month margin if yearly churn fell by 5% (rel5) or by 5 points (pp5)",
            &ECONOMICS_COLUMNS,
            20,
        ),
        table(
            &out.winback,
            &format!(
                "Win-back list: the {rows} most valuable customers who left in the last {} months, by the margin they paid",
                cfg.output.winback_months
            ),
            &WINBACK_COLUMNS,
            rows,
        ),
    ]
}

pub(super) fn section(out: &Outputs, cfg: &RunConfig) -> Section {
    let (paragraphs, figures) = match &out.sbg {
        Some(s) => (
            vec![format!(
                "Contract cohorts on {}-month terms: shifted-beta-geometric fit alpha {:.3}, beta {:.3}.",
                s.contract_months, s.model.alpha, s.model.beta
            )],
            vec![sbg_figure(s)],
        ),
        None => (vec!["No contract cohort has completed a term: no sBG fit.".into()], vec![]),
    };
    Section { id: "retention".into(), title: "Retention".into(), paragraphs, figures, tables: tables(out, cfg) }
}
