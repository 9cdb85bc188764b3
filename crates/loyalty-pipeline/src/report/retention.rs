//! The retention section: sBG on contract cohorts, retention economics, win-back.

use loyalty_report::charts::{LineChart, Series, range};
use loyalty_report::{Figure, Section, Table};

use super::{figure, fmt_f, fmt_percent, table};
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

/// alpha + beta above this: the beta distribution of churn probabilities is a spike.
const DEGENERATE_SBG: f64 = 1e4;

/// The sBG fit in words; a fit whose alpha and beta run off to huge values is said to
/// be degenerate: the cohorts' churn does not vary between customers, and sBG reduces
/// to a constant churn probability per term (a geometric model).
fn sbg_paragraph(s: &SbgRetention) -> String {
    let (a, b) = (s.model.alpha, s.model.beta);
    let fit = format!("Contract cohorts on {}-month terms: shifted-beta-geometric fit", s.contract_months);
    if a + b > DEGENERATE_SBG {
        format!(
            "{fit} degenerate (alpha {}, beta {}): both run off to very large values, which means the data shows no \
             spread in churn between customers; the model reduces to a constant churn of {} per term, and its \
             retention does not rise with tenure as sBG's usually does.",
            fmt_f(a),
            fmt_f(b),
            fmt_percent(a / (a + b))
        )
    } else {
        format!("{fit} alpha {a:.3}, beta {b:.3} (mean churn per term {}).", fmt_percent(a / (a + b)))
    }
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
        Some(s) => (vec![sbg_paragraph(s)], vec![sbg_figure(s)]),
        None => (vec!["No contract cohort has completed a term: no sBG fit.".into()], vec![]),
    };
    Section { id: "retention".into(), title: "Retention".into(), paragraphs, figures, tables: tables(out, cfg) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fit(alpha: f64, beta: f64) -> SbgRetention {
        SbgRetention { contract_months: 24, model: loyalty_models::sbg::Sbg { alpha, beta }, curve: vec![] }
    }

    #[test]
    fn a_degenerate_sbg_fit_is_said_in_words() {
        let text = sbg_paragraph(&fit(576_369.167, 9_297_757.548));
        assert!(text.contains("degenerate") && text.contains("576,369") && text.contains("5.8% per term"), "{text}");
        let text = sbg_paragraph(&fit(0.704, 1.182));
        assert!(!text.contains("degenerate") && text.contains("alpha 0.704, beta 1.182"), "{text}");
    }
}
