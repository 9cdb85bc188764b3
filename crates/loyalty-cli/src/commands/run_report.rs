//! The run's HTML report, built from its output tables (DOMAIN.md section 6).

use std::path::Path;

use loyalty_report::charts::{Bubble, LineChart, Series, Strip, bubble_chart, grouped_bars, range};
use loyalty_report::{Document, Figure, Section, Table};
use polars::prelude::*;

use crate::commands::run::Outputs;
use crate::config::RunConfig;

fn floats(df: &DataFrame, name: &str) -> Vec<f64> {
    df.column(name)
        .ok()
        .and_then(|c| c.as_materialized_series().cast(&DataType::Float64).ok())
        .and_then(|s| s.f64().ok().map(|ca| ca.iter().map(|v| v.unwrap_or(f64::NAN)).collect()))
        .unwrap_or_default()
}

fn strings(df: &DataFrame, name: &str) -> Vec<String> {
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

fn fmt_f(x: f64) -> String {
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
fn table(df: &DataFrame, caption: &str, columns: &[&str], max_rows: usize) -> Table {
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

fn figure(id: &str, caption: &str, svg: Result<String, String>) -> Figure {
    let svg = svg.unwrap_or_else(|e| {
        tracing::warn!("figure {id}: {e}");
        format!("<p>figure unavailable: {}</p>", loyalty_report::escape(&e))
    });
    Figure { id: id.to_string(), caption: caption.to_string(), svg }
}

pub fn document(
    out: &Outputs,
    summary: &loyalty_contract::summary::DatasetSummary,
    cfg: &RunConfig,
    data: &Path,
    version: &str,
) -> Document {
    let h = cfg.model.churn_horizon_months;
    let mut sections = Vec::new();

    // --- segments
    let seg = &out.segments;
    let names = strings(seg, "value_segment");
    let (ccv, loy, cust) = (floats(seg, "mean_ccv"), floats(seg, "mean_loyalty"), floats(seg, "customers"));
    let bubbles: Vec<Bubble> =
        (0..names.len()).map(|i| Bubble { label: names[i].clone(), x: ccv[i], y: loy[i], size: cust[i] }).collect();
    sections.push(Section {
        id: "segments".into(),
        title: "Value segments".into(),
        paragraphs: vec![format!(
            "Eight segments by high/low current value (CCV), potential value (CPV) and loyalty (P(still a customer {h} months after T)), split at the {} of the active base.",
            cfg.segments.split
        )],
        figures: vec![figure(
            "fig-segments",
            "Each bubble is a segment: mean CCV against mean loyalty; the area is the number of customers.",
            bubble_chart("The eight value segments", "mean CCV", "mean loyalty", &bubbles),
        )],
        tables: vec![table(
            seg,
            "Segments",
            &[
                "value_segment",
                "customers",
                "share",
                "revenue_share",
                "margin_share",
                "mean_ccv",
                "median_ccv",
                "mean_cpv",
                "mean_loyalty",
                "mean_clv",
                "strategy",
            ],
            20,
        )],
    });

    // --- pyramid and Lorenz
    let tiers = &out.tiers;
    let tier_names = strings(tiers, "tier");
    let lorenz = &out.lorenz;
    let lx = floats(lorenz, "customer_share");
    let ly = floats(lorenz, "margin_share");
    let top20 = lx.iter().position(|x| (*x - 0.2).abs() < 1e-9).map(|i| ly[i]).unwrap_or(f64::NAN);
    sections.push(Section {
        id: "pyramid".into(),
        title: "Customer pyramid and concentration".into(),
        paragraphs: vec![format!(
            "The top 20% of customers by monthly margin bring {:.1}% of the margin (the 80/20 check); Gini coefficient of margin {:.3}.",
            100.0 * top20,
            out.gini
        )],
        figures: vec![
            figure(
                "fig-pyramid",
                "Share of customers, revenue and margin per tier (platinum top 5%, gold next 15%, iron the profitable rest, lead margin <= 0).",
                grouped_bars(
                    "Customer pyramid",
                    "share",
                    &tier_names,
                    &[
                        ("customers".into(), floats(tiers, "share")),
                        ("revenue".into(), floats(tiers, "revenue_share")),
                        ("margin".into(), floats(tiers, "margin_share")),
                    ],
                ),
            ),
            figure(
                "fig-lorenz",
                "Customers sorted by margin, highest first: cumulative share of customers against cumulative share of margin.",
                LineChart {
                    title: format!("Concentration of margin (Gini {:.3})", out.gini),
                    x_label: "share of customers".into(),
                    y_label: "share of margin".into(),
                    x_range: (0.0, 1.0),
                    y_range: (range(ly.iter().copied()).0.min(0.0), 1.05),
                    series: vec![Series {
                        name: "margin".into(),
                        points: lx.iter().copied().zip(ly.iter().copied()).collect(),
                        line: true,
                        ..Default::default()
                    }],
                    diagonal: true,
                    ..Default::default()
                }
                .svg(),
            ),
        ],
        tables: vec![table(tiers, "Tiers", &[], 10)],
    });

    // --- satisfaction curves
    let cv = &out.curves;
    let lv = strings(cv, "competition_level");
    let sat = floats(cv, "satisfaction");
    let (obs, lo, hi) = (floats(cv, "observed_loyalty"), floats(cv, "ci_low"), floats(cv, "ci_high"));
    let (iso, modelled) = (floats(cv, "isotonic_loyalty"), floats(cv, "modelled_loyalty"));
    let zone = strings(cv, "zone");
    let few: Vec<bool> = cv
        .column("too_few")
        .ok()
        .and_then(|c| c.bool().ok().map(|b| b.iter().map(|v| v == Some(true)).collect()))
        .unwrap_or_default();
    let mut levels: Vec<String> = Vec::new();
    for l in &lv {
        if !levels.contains(l) {
            levels.push(l.clone());
        }
    }
    let y_lo = range(lo.iter().chain(modelled.iter()).copied()).0.max(0.0);
    let mut curve_figs = Vec::new();
    for level in &levels {
        let idx: Vec<usize> = (0..lv.len()).filter(|&i| &lv[i] == level).collect();
        let solid: Vec<usize> = idx.iter().copied().filter(|&i| !few[i]).collect();
        let thin: Vec<usize> = idx.iter().copied().filter(|&i| few[i]).collect();
        let mut strips = Vec::new();
        for (k, z) in ["defection", "indifference", "affection"].iter().enumerate() {
            let xs: Vec<f64> = idx.iter().filter(|&&i| zone[i] == *z).map(|&i| sat[i]).collect();
            if let (Some(a), Some(b)) = (xs.first(), xs.last()) {
                strips.push(Strip { from: a - 0.5, to: b + 0.5, label: z.to_string(), color: [1, 6, 2][k] });
            }
        }
        let pts = |rows: &[usize], v: &[f64]| rows.iter().map(|&i| (sat[i], v[i])).collect::<Vec<_>>();
        let scale = cfg.curves.satisfaction_scale;
        let mut series = vec![
            Series {
                name: "observed (95% Wilson interval)".into(),
                points: pts(&solid, &obs),
                error_bars: solid.iter().map(|&i| (sat[i], obs[i], lo[i], hi[i])).collect(),
                markers: true,
                color: 0,
                ..Default::default()
            },
            Series {
                name: "isotonic fit".into(),
                points: pts(&idx, &iso),
                band: idx.iter().map(|&i| (sat[i], lo[i], hi[i])).collect(),
                line: true,
                color: 0,
                ..Default::default()
            },
            Series {
                name: "modelled loyalty at T".into(),
                points: pts(&idx, &modelled),
                line: true,
                dashed: true,
                color: 1,
                ..Default::default()
            },
        ];
        if !thin.is_empty() {
            series.push(Series {
                name: "too few surveys (not trusted)".into(),
                points: pts(&thin, &obs),
                markers: true,
                color: 6,
                ..Default::default()
            });
        }
        curve_figs.push(figure(
            &format!("fig-curve-{level}"),
            &format!(
                "Competition {level}: share still a customer {h} months after the survey, by satisfaction; band = 95% interval; shaded = zones located on the fit."
            ),
            LineChart {
                title: format!("Satisfaction vs loyalty, competition {level}"),
                x_label: "satisfaction (overall)".into(),
                y_label: format!("retained {h} months on"),
                x_range: (scale[0] as f64 - 0.6, scale[1] as f64 + 0.6),
                y_range: (y_lo, 1.0),
                series,
                strips,
                diagonal: false,
            }
            .svg(),
        ));
    }
    sections.push(Section {
        id: "curves".into(),
        title: "Satisfaction versus loyalty".into(),
        paragraphs: vec![
            "Observed loyalty is measured on surveys old enough to know the outcome; modelled loyalty is the mean P(still a customer) at T of customers whose latest survey gave that score. Cells with too few surveys are drawn in grey.".into(),
        ],
        figures: curve_figs,
        tables: vec![
            table(&out.gaps, "Satisfied vs completely satisfied: ratio of churn rates (Katz 95% interval)", &[], 10),
            table(&out.zones, "Zones and the share of customers in each", &[], 20),
            table(
                &out.drivers,
                "Drivers: effect per standard deviation of each aspect (retention: log-odds; satisfaction: points), 95% intervals",
                &[],
                10,
            ),
            table(&out.signals, "Behavioural signals: retention over the horizon by behaviour (postpaid, out-of-time snapshot)", &[], 30),
        ],
    });

    // --- retention
    let mut ret_figs = Vec::new();
    let mut ret_text = Vec::new();
    if let Some((months, m, curve)) = &out.sbg {
        let obs: Vec<(f64, f64)> = curve.iter().filter_map(|(t, o, _)| o.map(|o| (f64::from(*t), o))).collect();
        let model: Vec<(f64, f64)> = curve.iter().map(|(t, _, s)| (f64::from(*t), *s)).collect();
        let y0 = range(model.iter().map(|p| p.1).chain(obs.iter().map(|p| p.1))).0.max(0.0);
        ret_text.push(format!(
            "Contract cohorts on {months}-month terms: shifted-beta-geometric fit alpha {:.3}, beta {:.3}.",
            m.alpha, m.beta
        ));
        ret_figs.push(figure(
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
                    Series {
                        name: "sBG".into(),
                        points: model,
                        line: true,
                        dashed: true,
                        color: 1,
                        ..Default::default()
                    },
                ],
                ..Default::default()
            }
            .svg(),
        ));
    } else {
        ret_text.push("No contract cohort has completed a term: no sBG fit.".into());
    }
    let mut tables = vec![table(
        &out.economics,
        "Retention economics: change in CLV and in next-12-month margin if yearly churn fell by 5% (rel5) or by 5 points (pp5)",
        &[
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
        ],
        20,
    )];
    tables.push(table(
        &out.winback,
        &format!(
            "Win-back list: the {} most valuable customers who left in the last {} months",
            cfg.output.report_winback_rows, cfg.output.winback_months
        ),
        &[
            "rank",
            "customer_id",
            "plan_type",
            "churn_date",
            "churn_reason",
            "tenure_months_at_churn",
            "margin_monthly_before_churn",
            "value_lost",
        ],
        cfg.output.report_winback_rows,
    ));
    sections.push(Section {
        id: "retention".into(),
        title: "Retention".into(),
        paragraphs: ret_text,
        figures: ret_figs,
        tables,
    });

    // --- churn model quality
    let mut q_figs = Vec::new();
    let mut q_text = Vec::new();
    let mut q_tables = Vec::new();
    if let Some(fit) = &out.churn {
        let pairs = |key: &str| -> Vec<(f64, f64)> {
            fit.report[key]
                .as_array()
                .map(|a| a.iter().filter_map(|p| Some((p[0].as_f64()?, p[1].as_f64()?))).collect())
                .unwrap_or_default()
        };
        let results = fit.report["out_of_time"].as_array().cloned().unwrap_or_default();
        let mut rows = Vec::new();
        for r in &results {
            rows.push(vec![
                r["model"].as_str().unwrap_or("").to_string(),
                fmt_f(r["roc_auc"].as_f64().unwrap_or(f64::NAN)),
                fmt_f(r["top_decile_lift"].as_f64().unwrap_or(f64::NAN)),
                fmt_f(r["brier"].as_f64().unwrap_or(f64::NAN)),
                r["customers"].to_string(),
                fmt_f(r["base_rate"].as_f64().unwrap_or(f64::NAN)),
            ]);
        }
        q_tables.push(Table {
            caption: format!("Out-of-time test at {} (churn within {h} months)", fit.test_t0),
            header: ["model", "ROC AUC", "lift at 10%", "Brier", "customers", "churn rate"].map(String::from).to_vec(),
            rows,
        });
        let auc = results.get(1).and_then(|r| r["roc_auc"].as_f64()).unwrap_or(f64::NAN);
        q_text.push(format!(
            "Postpaid churn classifier (gradient boosting, Platt-calibrated) trained on earlier snapshots and tested out of time at {}: ROC AUC {auc:.3}. Prepaid customers are scored by BG/NBD.",
            fit.test_t0
        ));
        q_figs.push(figure(
            "fig-roc",
            "ROC curve of the calibrated model on the out-of-time test snapshot.",
            LineChart {
                title: format!("ROC (AUC {auc:.3})"),
                x_label: "false positive rate".into(),
                y_label: "true positive rate".into(),
                x_range: (0.0, 1.0),
                y_range: (0.0, 1.0),
                series: vec![Series {
                    name: "calibrated boosting".into(),
                    points: pairs("roc_curve_calibrated"),
                    line: true,
                    ..Default::default()
                }],
                diagonal: true,
                ..Default::default()
            }
            .svg(),
        ));
        let gains = pairs("gains_curve_calibrated");
        let lift: Vec<(f64, f64)> = gains.iter().filter(|(x, _)| *x > 0.0).map(|(x, y)| (*x, y / x)).collect();
        q_figs.push(figure(
            "fig-lift",
            "Cumulative lift: churn rate among the top-scored share of customers over the base rate.",
            LineChart {
                title: "Lift".into(),
                x_label: "share of customers targeted".into(),
                y_label: "lift".into(),
                x_range: (0.0, 1.0),
                y_range: (0.0, lift.iter().map(|p| p.1).fold(1.0, f64::max) * 1.1),
                series: vec![Series {
                    name: "calibrated boosting".into(),
                    points: lift,
                    line: true,
                    markers: true,
                    ..Default::default()
                }],
                ..Default::default()
            }
            .svg(),
        ));
        let cal: Vec<(f64, f64)> = results
            .get(1)
            .and_then(|r| r["calibration"].as_array())
            .map(|a| {
                a.iter().filter_map(|b| Some((b["mean_predicted"].as_f64()?, b["observed_rate"].as_f64()?))).collect()
            })
            .unwrap_or_default();
        let top = cal.iter().flat_map(|p| [p.0, p.1]).fold(0.05, f64::max) * 1.1;
        q_figs.push(figure(
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
        ));
    } else {
        q_text.push("No churn classifier: the data is too short for out-of-time validation (or has no churner); loyalty comes from Kaplan-Meier curves.".into());
    }
    sections.push(Section {
        id: "model".into(),
        title: "Churn model quality".into(),
        paragraphs: q_text,
        figures: q_figs,
        tables: q_tables,
    });

    // --- data summary
    let mut rows: Vec<Vec<String>> = summary
        .tables
        .iter()
        .map(|t| vec![t.table.to_string(), t.files.to_string(), t.rows_read.to_string(), t.rows_rejected.to_string()])
        .collect();
    rows.sort();
    sections.push(Section {
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
    });

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
            ("loyalty".into(), version.to_string()),
        ],
        sections,
    }
}
