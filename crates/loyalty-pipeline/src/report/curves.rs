//! The satisfaction-versus-loyalty section: one figure per competition level.

use loyalty_report::charts::{LineChart, Series, Strip, range};
use loyalty_report::{Figure, Section};
use polars::prelude::*;

use super::{figure, floats, strings, table};
use crate::outputs::Outputs;
use crate::settings::RunConfig;

/// The columns of curves.parquet the figures draw.
struct Curves {
    level: Vec<String>,
    satisfaction: Vec<f64>,
    observed: Vec<f64>,
    low: Vec<f64>,
    high: Vec<f64>,
    isotonic: Vec<f64>,
    modelled: Vec<f64>,
    zone: Vec<String>,
    too_few: Vec<bool>,
}

impl Curves {
    fn of(cv: &DataFrame) -> Self {
        let too_few = cv
            .column("too_few")
            .ok()
            .and_then(|c| c.bool().ok().map(|b| b.iter().map(|v| v == Some(true)).collect()))
            .unwrap_or_default();
        Curves {
            level: strings(cv, "competition_level"),
            satisfaction: floats(cv, "satisfaction"),
            observed: floats(cv, "observed_loyalty"),
            low: floats(cv, "ci_low"),
            high: floats(cv, "ci_high"),
            isotonic: floats(cv, "isotonic_loyalty"),
            modelled: floats(cv, "modelled_loyalty"),
            zone: strings(cv, "zone"),
            too_few,
        }
    }

    /// The competition levels, in the order the table has them.
    fn levels(&self) -> Vec<String> {
        let mut levels: Vec<String> = Vec::new();
        for l in &self.level {
            if !levels.contains(l) {
                levels.push(l.clone());
            }
        }
        levels
    }
}

/// The zones located on the fit, as shaded strips.
fn zone_strips(c: &Curves, idx: &[usize]) -> Vec<Strip> {
    let mut strips = Vec::new();
    for (k, z) in ["defection", "indifference", "affection"].iter().enumerate() {
        let xs: Vec<f64> = idx.iter().filter(|&&i| c.zone[i] == *z).map(|&i| c.satisfaction[i]).collect();
        if let (Some(a), Some(b)) = (xs.first(), xs.last()) {
            strips.push(Strip { from: a - 0.5, to: b + 0.5, label: z.to_string(), color: [1, 6, 2][k] });
        }
    }
    strips
}

/// Observed points with intervals, the isotonic fit with its band, the modelled
/// loyalty, and the cells with too few surveys in grey.
fn level_series(c: &Curves, idx: &[usize]) -> Vec<Series> {
    let solid: Vec<usize> = idx.iter().copied().filter(|&i| !c.too_few[i]).collect();
    let thin: Vec<usize> = idx.iter().copied().filter(|&i| c.too_few[i]).collect();
    let sat = &c.satisfaction;
    let pts = |rows: &[usize], v: &[f64]| rows.iter().map(|&i| (sat[i], v[i])).collect::<Vec<_>>();
    let mut series = vec![
        Series {
            name: "observed (95% Wilson interval)".into(),
            points: pts(&solid, &c.observed),
            error_bars: solid.iter().map(|&i| (sat[i], c.observed[i], c.low[i], c.high[i])).collect(),
            markers: true,
            color: 0,
            ..Default::default()
        },
        Series {
            name: "isotonic fit".into(),
            points: pts(idx, &c.isotonic),
            band: idx.iter().map(|&i| (sat[i], c.low[i], c.high[i])).collect(),
            line: true,
            color: 0,
            ..Default::default()
        },
        Series {
            name: "modelled loyalty at T".into(),
            points: pts(idx, &c.modelled),
            line: true,
            dashed: true,
            color: 1,
            ..Default::default()
        },
    ];
    if !thin.is_empty() {
        series.push(Series {
            name: "too few surveys (not trusted)".into(),
            points: pts(&thin, &c.observed),
            markers: true,
            color: 6,
            ..Default::default()
        });
    }
    series
}

fn level_figure(c: &Curves, level: &str, cfg: &RunConfig, y_lo: f64) -> Figure {
    let h = cfg.model.churn_horizon_months;
    let idx: Vec<usize> = (0..c.level.len()).filter(|&i| c.level[i] == level).collect();
    let scale = cfg.curves.satisfaction_scale;
    figure(
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
            series: level_series(c, &idx),
            strips: zone_strips(c, &idx),
            diagonal: false,
        }
        .svg(),
    )
}

pub(super) fn section(out: &Outputs, cfg: &RunConfig) -> Section {
    let c = Curves::of(&out.curves);
    let y_lo = range(c.low.iter().chain(c.modelled.iter()).copied()).0.max(0.0);
    Section {
        id: "curves".into(),
        title: "Satisfaction versus loyalty".into(),
        paragraphs: vec![
            "Observed loyalty is measured on surveys old enough to know the outcome; modelled loyalty is the mean P(still a customer) at T of customers whose latest survey gave that score. Cells with too few surveys are drawn in grey.".into(),
        ],
        figures: c.levels().iter().map(|level| level_figure(&c, level, cfg, y_lo)).collect(),
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
    }
}
