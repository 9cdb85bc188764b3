//! The leavers section: the leaky bucket month by month, and why customers left.

use loyalty_features::leavers::CLASSES;
use loyalty_features::migration;
use loyalty_report::charts::{LineChart, Series, grouped_bars, heatmap, range};
use loyalty_report::{Figure, Section};
use polars::prelude::*;

use super::{count, figure, floats, fmt_percent, strings, table};
use crate::outputs::{MigrationTable, Outputs};
use crate::settings::RunConfig;

const MOVEMENT_COLUMNS: [&str; 13] = [
    "month",
    "opening_base",
    "gross_adds",
    "churners",
    "churn_rate",
    "net_adds",
    "closing_base",
    "churners_controllable",
    "churners_uncontrollable",
    "churners_involuntary",
    "churners_unknown",
    "margin_lost",
    "margin_gained",
];

/// `movement` with its months as `YYYY-MM` (one short cell a row).
fn by_month(movement: &DataFrame) -> DataFrame {
    let months: Vec<String> = strings(movement, "month").iter().map(|m| m.get(..7).unwrap_or(m).to_string()).collect();
    let mut out = movement.clone();
    if out.with_column(Column::new("month".into(), months)).is_err() {
        return movement.clone();
    }
    out
}

/// Joiners, leavers and net adds per month.
fn movement_figure(out: &Outputs) -> Figure {
    let m = &out.movement;
    let months = strings(m, "month");
    let line = |name: &str, color: usize| {
        let points: Vec<(f64, f64)> = floats(m, name).into_iter().enumerate().map(|(i, v)| (i as f64, v)).collect();
        Series { name: name.replace('_', " "), points, markers: true, line: true, color, ..Default::default() }
    };
    let series = vec![line("gross_adds", 0), line("churners", 3), line("net_adds", 1)];
    let (lo, hi) = range(series.iter().flat_map(|s| s.points.iter().map(|p| p.1)));
    figure(
        "fig-base-movement",
        "The leaky bucket: customers joining and leaving each month, and the net change of the base.",
        LineChart {
            title: "Base movement".into(),
            x_label: format!("months from {}", months.first().map_or("", |s| s.get(..7).unwrap_or(s))),
            y_label: "customers".into(),
            x_range: (0.0, (months.len().max(2) - 1) as f64),
            y_range: (lo.min(0.0), hi),
            series,
            ..Default::default()
        }
        .svg(),
    )
}

/// The share of each reason class among the leavers of each competition level.
fn reason_figure(out: &Outputs) -> Figure {
    let mix = &out.reason_mix;
    let (grouping, group, class, share) =
        (strings(mix, "grouping"), strings(mix, "group"), strings(mix, "reason_class"), floats(mix, "share"));
    let levels: Vec<String> = ["low", "medium", "high", "unknown"]
        .iter()
        .filter(|l| (0..group.len()).any(|i| grouping[i] == "competition_level" && group[i] == **l))
        .map(|l| l.to_string())
        .collect();
    let bars: Vec<(String, Vec<f64>)> = CLASSES
        .iter()
        .map(|k| {
            let v = levels
                .iter()
                .map(|l| {
                    (0..group.len())
                        .find(|&i| grouping[i] == "competition_level" && &group[i] == l && class[i] == *k)
                        .map_or(0.0, |i| share[i])
                })
                .collect();
            (k.to_string(), v)
        })
        .collect();
    figure(
        "fig-churn-reasons",
        "Why customers left, by the competition in their market: share of the leavers of the win-back window per reason class.",
        grouped_bars("Churn reasons by competition level", "share of leavers", &levels, &bars),
    )
}

fn summary(out: &Outputs, cfg: &RunConfig) -> String {
    let m = &out.movement;
    let churners: f64 = floats(m, "churners").iter().sum();
    let adds: f64 = floats(m, "gross_adds").iter().sum();
    let opening = floats(m, "opening_base").first().copied().unwrap_or(f64::NAN);
    let closing = floats(m, "closing_base").last().copied().unwrap_or(f64::NAN);
    let months = m.height();
    let rate: Vec<f64> = floats(m, "churn_rate").into_iter().filter(|v| v.is_finite()).collect();
    let mean_rate = rate.iter().sum::<f64>() / rate.len().max(1) as f64;
    let excluded = cfg.churn_reasons.winback_excludes.join(" and ");
    format!(
        "Over {months} months the base went from {} to {} customers: {} joined and {} left, a mean monthly churn \
         rate of {}. Of the {} customers who left in the last {} months, {} are on the win-back list; the \
         others left for {} reasons, which the settings exclude from it. A prepaid customer without a churn \
         date counts as gone {} days after their last activity.",
        count(opening),
        count(closing),
        count(adds),
        count(churners),
        fmt_percent(mean_rate),
        count(out.leavers_in_window as f64),
        cfg.output.winback_months,
        count(out.winback.height() as f64),
        if excluded.is_empty() { "no".to_string() } else { excluded },
        cfg.model.prepaid_inactivity_days,
    )
}

pub(super) fn section(out: &Outputs, cfg: &RunConfig) -> Section {
    Section {
        id: "leavers".into(),
        title: "Joiners and leavers".into(),
        paragraphs: vec![summary(out, cfg)],
        figures: vec![movement_figure(out), reason_figure(out)],
        tables: vec![
            table(
                &by_month(&out.movement),
                "Base movement per month (base_movement.csv)",
                &MOVEMENT_COLUMNS,
                usize::MAX,
            ),
            table(
                &out.reason_mix,
                "Churn reason classes of the win-back window's leavers by plan type, competition level and tier (churn_reasons.csv)",
                &[],
                usize::MAX,
            ),
        ],
    }
}

/// The from x to matrix of one kind of movement as a heatmap of customers.
fn migration_figure(m: &MigrationTable, kind: &str, title: &str) -> Figure {
    let (kinds, from, to, count) =
        (strings(&m.table, "kind"), strings(&m.table, "from"), strings(&m.table, "to"), floats(&m.table, "customers"));
    let states = migration::states(kind);
    let rows: Vec<String> = states.iter().filter(|s| *s != migration::GONE).cloned().collect();
    let cols: Vec<String> = states.iter().filter(|s| *s != migration::NEW).cloned().collect();
    let values: Vec<Vec<f64>> = rows
        .iter()
        .map(|r| {
            cols.iter()
                .map(|c| {
                    (0..kinds.len())
                        .find(|&i| kinds[i] == kind && &from[i] == r && &to[i] == c)
                        .map_or(0.0, |i| count[i])
                })
                .collect()
        })
        .collect();
    figure(
        &format!("fig-migration-{}", kind.replace('_', "-")),
        &format!(
            "{title}: customers by their state in the previous run (rows) and now (columns); new customers in the first row, the gone in the last column."
        ),
        heatmap(title, "previous run", "this run", &rows, &cols, &values),
    )
}

/// The tier rows of the migration table (the segment rows are in the heatmap).
fn tier_rows(table: &DataFrame) -> DataFrame {
    let tier = strings(table, "kind").iter().map(|k| k == "tier").collect::<BooleanChunked>();
    table.filter(&tier).unwrap_or_else(|_| table.clone())
}

pub(super) fn migration_section(out: &Outputs) -> Option<Section> {
    let m = out.migration.as_ref()?;
    // Every customer of either run is in one tier row: the counts follow from them.
    let (kind, from, to, n) =
        (strings(&m.table, "kind"), strings(&m.table, "from"), strings(&m.table, "to"), floats(&m.table, "customers"));
    let sum_where = |keep: &dyn Fn(&str, &str) -> bool| -> f64 {
        (0..kind.len()).filter(|&i| kind[i] == "tier" && keep(&from[i], &to[i])).map(|i| n[i]).sum()
    };
    let (new, gone) = (migration::NEW, migration::GONE);
    let paragraph = format!(
        "Compared with the run in {}: {} of its {} active customers are still active; gone since: {}; new since: {}.",
        m.source.display(),
        count(sum_where(&|f, t| f != new && t != gone)),
        count(sum_where(&|f, _| f != new)),
        count(sum_where(&|_, t| t == gone)),
        count(sum_where(&|f, _| f == new)),
    );
    Some(Section {
        id: "migration".into(),
        title: "Movement since the previous run".into(),
        paragraphs: vec![paragraph],
        figures: vec![
            migration_figure(m, "value_segment", "Value segment movement"),
            migration_figure(m, "tier", "Tier movement"),
        ],
        tables: vec![table(
            &tier_rows(&m.table),
            "Movement between tiers (migration.csv also has the value segments)",
            &[],
            usize::MAX,
        )],
    })
}
