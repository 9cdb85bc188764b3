//! The value sections: the eight segments, the pyramid and the concentration of margin.

use loyalty_report::Section;
use loyalty_report::charts::{Bubble, LineChart, Series, bubble_chart, grouped_bars, range};

use super::{figure, floats, fmt_f, strings, table};
use crate::outputs::Outputs;
use crate::settings::RunConfig;
use loyalty_features::segments::Cut;

/// Segments: mean CCV against mean loyalty.
pub(super) fn segments(out: &Outputs, cfg: &RunConfig) -> Section {
    let h = cfg.model.churn_horizon_months;
    let seg = &out.segments;
    let names = strings(seg, "value_segment");
    let (ccv, loy, cust) = (floats(seg, "mean_ccv"), floats(seg, "mean_loyalty"), floats(seg, "customers"));
    let bubbles: Vec<Bubble> =
        (0..names.len()).map(|i| Bubble { label: names[i].clone(), x: ccv[i], y: loy[i], size: cust[i] }).collect();
    Section {
        id: "segments".into(),
        title: "Value segments".into(),
        paragraphs: segment_paragraphs(out, cfg, h),
        figures: vec![figure(
            "fig-segments",
            "Each bubble is a segment: mean CCV against mean loyalty; the area is the number of customers.",
            bubble_chart("The eight value segments", "mean CCV", "mean loyalty", &bubbles),
        )],
        tables: vec![
            table(
                seg,
                "Segments",
                &[
                    "value_segment",
                    "customers",
                    "share",
                    "revenue_share",
                    "margin_share",
                    "bad_debt_share",
                    "mean_ccv",
                    "median_ccv",
                    "mean_cpv",
                    "mean_loyalty",
                    "mean_clv",
                    "strategy",
                ],
                20,
            ),
            table(
                &top_offers(&out.offer_summary, 3),
                "Next-best offers: per segment, the three services that add most expected monthly margin as a customer's top-3 offer (all in offers_by_segment.csv; per customer in offers.parquet)",
                &[],
                usize::MAX,
            ),
        ],
    }
}

/// The first `k` rows of each segment of the offer summary (sorted best first).
fn top_offers(summary: &polars::prelude::DataFrame, k: usize) -> polars::prelude::DataFrame {
    let segments = strings(summary, "value_segment");
    let keep: polars::prelude::BooleanChunked =
        (0..segments.len()).map(|i| i < k || segments[i - k] != segments[i]).collect();
    summary.filter(&keep).unwrap_or_else(|_| summary.clone())
}

/// What the segments are, where each axis turns high, and a warning when CPV is unknown.
fn segment_paragraphs(out: &Outputs, cfg: &RunConfig, h: u32) -> Vec<String> {
    let cut = |name: &str, c: Cut| format!("{name} {} {}", if c.ties_high { "≥" } else { ">" }, fmt_f(c.at));
    let cuts = &out.segment_cuts;
    let mut axes = vec![cut("CCV", cuts.ccv)];
    axes.extend(cuts.cpv.map(|c| cut("CPV", c)));
    axes.push(cut("loyalty", cuts.loyalty));
    let mut p = vec![format!(
        "Eight segments by high/low current value (CCV), potential value (CPV) and loyalty (P(still a customer {h} months after T)), split at the {} of the active base. High means {}.",
        cfg.segments.split,
        axes.join(", ")
    )];
    if cuts.cpv.is_none() {
        p.push(
            "CPV cannot be estimated: the data has no services or no service catalog. Every customer counts as low CPV, so only the four low-CPV segments (gold, loyal, short_term, least_valuable) hold customers.".into(),
        );
    }
    p
}

/// The pyramid of tiers and the Lorenz curve of margin.
pub(super) fn pyramid(out: &Outputs) -> Section {
    let tiers = &out.tiers;
    let tier_names = strings(tiers, "tier");
    let lorenz = &out.lorenz;
    let lx = floats(lorenz, "customer_share");
    let ly = floats(lorenz, "margin_share");
    let top20 = lx.iter().position(|x| (*x - 0.2).abs() < 1e-9).map(|i| ly[i]).unwrap_or(f64::NAN);
    Section {
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
    }
}
