//! Charts drawn with plotters into SVG strings (no fonts needed: the browser lays out
//! the text).

use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;

/// A colour-blind-safe palette (Okabe-Ito).
pub const PALETTE: [RGBColor; 8] = [
    RGBColor(0, 114, 178),
    RGBColor(213, 94, 0),
    RGBColor(0, 158, 115),
    RGBColor(204, 121, 167),
    RGBColor(230, 159, 0),
    RGBColor(86, 180, 233),
    RGBColor(120, 120, 120),
    RGBColor(240, 228, 66),
];

const SIZE: (u32, u32) = (640, 400);

/// A chart that could not be drawn (a plotters backend error: a bug, not the data).
#[derive(Debug, Clone, thiserror::Error)]
#[error("drawing a chart: {0}")]
pub struct ChartError(String);

type Res<T> = Result<T, ChartError>;

fn err<E: std::fmt::Debug>(e: E) -> ChartError {
    ChartError(format!("{e:?}"))
}

fn legend<'a, DB: DrawingBackend + 'a>(
    chart: &mut ChartContext<'a, DB, Cartesian2d<RangedCoordf64, RangedCoordf64>>,
    position: SeriesLabelPosition,
) -> Res<()> {
    chart
        .configure_series_labels()
        .position(position)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK.mix(0.3))
        .draw()
        .map_err(err)
}

/// A line (optionally with markers, a dashed look, an interval band and error bars).
#[derive(Debug, Clone, Default)]
pub struct Series {
    pub name: String,
    pub points: Vec<(f64, f64)>,
    /// (x, low, high): drawn as a shaded band.
    pub band: Vec<(f64, f64, f64)>,
    /// (x, y, low, high): drawn as error bars on markers.
    pub error_bars: Vec<(f64, f64, f64, f64)>,
    pub markers: bool,
    pub line: bool,
    pub dashed: bool,
    pub color: usize,
}

/// A shaded vertical strip with a label (zones of a curve).
#[derive(Debug, Clone)]
pub struct Strip {
    pub from: f64,
    pub to: f64,
    pub label: String,
    pub color: usize,
}

#[derive(Debug, Clone, Default)]
pub struct LineChart {
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    pub x_range: (f64, f64),
    pub y_range: (f64, f64),
    pub series: Vec<Series>,
    pub strips: Vec<Strip>,
    /// Draw y = x (ROC, calibration, Lorenz).
    pub diagonal: bool,
}

fn finite(v: &[(f64, f64)]) -> Vec<(f64, f64)> {
    v.iter().copied().filter(|(x, y)| x.is_finite() && y.is_finite()).collect()
}

impl LineChart {
    pub fn svg(&self) -> Res<String> {
        let mut buf = String::new();
        {
            let root = SVGBackend::with_string(&mut buf, SIZE).into_drawing_area();
            root.fill(&WHITE).map_err(err)?;
            let (x0, x1) = self.x_range;
            let (y0, y1) = self.y_range;
            let mut chart = ChartBuilder::on(&root)
                .caption(&self.title, ("sans-serif", 18))
                .margin(12)
                .x_label_area_size(42)
                .y_label_area_size(56)
                .build_cartesian_2d(x0..x1, y0..y1)
                .map_err(err)?;
            chart
                .configure_mesh()
                .x_desc(&self.x_label)
                .y_desc(&self.y_label)
                .light_line_style(WHITE.mix(0.0))
                .draw()
                .map_err(err)?;
            for s in &self.strips {
                let c = PALETTE[s.color % PALETTE.len()];
                chart
                    .draw_series(std::iter::once(Rectangle::new([(s.from, y0), (s.to, y1)], c.mix(0.10).filled())))
                    .map_err(err)?;
                chart
                    .draw_series(std::iter::once(Text::new(
                        s.label.clone(),
                        (s.from + (s.to - s.from) * 0.05, y1 - (y1 - y0) * 0.03),
                        ("sans-serif", 13).into_font().color(&c),
                    )))
                    .map_err(err)?;
            }
            if self.diagonal {
                chart
                    .draw_series(LineSeries::new(
                        vec![(x0.max(y0), x0.max(y0)), (x1.min(y1), x1.min(y1))],
                        BLACK.mix(0.4).stroke_width(1),
                    ))
                    .map_err(err)?;
            }
            for s in &self.series {
                let c = PALETTE[s.color % PALETTE.len()];
                let band: Vec<(f64, f64, f64)> = s
                    .band
                    .iter()
                    .copied()
                    .filter(|(x, l, h)| x.is_finite() && l.is_finite() && h.is_finite())
                    .collect();
                if band.len() > 1 {
                    let mut poly: Vec<(f64, f64)> = band.iter().map(|(x, l, _)| (*x, *l)).collect();
                    poly.extend(band.iter().rev().map(|(x, _, h)| (*x, *h)));
                    chart.draw_series(std::iter::once(Polygon::new(poly, c.mix(0.18).filled()))).map_err(err)?;
                }
                let pts = finite(&s.points);
                let legend_style = c.stroke_width(2);
                if s.line && pts.len() > 1 {
                    let style = c.stroke_width(2);
                    let ann = if s.dashed {
                        chart.draw_series(DashedLineSeries::new(pts.clone(), 6, 4, style)).map_err(err)?
                    } else {
                        chart.draw_series(LineSeries::new(pts.clone(), style)).map_err(err)?
                    };
                    if !s.name.is_empty() {
                        ann.label(s.name.clone())
                            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], legend_style));
                    }
                }
                if s.markers && !pts.is_empty() {
                    let ann = chart.draw_series(pts.iter().map(|p| Circle::new(*p, 4, c.filled()))).map_err(err)?;
                    if !s.line && !s.name.is_empty() {
                        ann.label(s.name.clone()).legend(move |(x, y)| Circle::new((x + 9, y), 4, c.filled()));
                    }
                }
                let bars: Vec<_> = s
                    .error_bars
                    .iter()
                    .filter(|(x, y, l, h)| x.is_finite() && y.is_finite() && l.is_finite() && h.is_finite())
                    .map(|(x, y, l, h)| ErrorBar::new_vertical(*x, *l, *y, *h, c.stroke_width(1), 8))
                    .collect();
                if !bars.is_empty() {
                    chart.draw_series(bars).map_err(err)?;
                }
            }
            if self.series.iter().any(|s| !s.name.is_empty()) {
                legend(&mut chart, SeriesLabelPosition::LowerRight)?;
            }
            root.present().map_err(err)?;
        }
        Ok(buf)
    }
}

/// One bubble: label, x, y, size (area proportional to it).
#[derive(Debug, Clone)]
pub struct Bubble {
    pub label: String,
    pub x: f64,
    pub y: f64,
    pub size: f64,
}

pub fn bubble_chart(title: &str, x_label: &str, y_label: &str, bubbles: &[Bubble]) -> Res<String> {
    let pts: Vec<&Bubble> = bubbles.iter().filter(|b| b.x.is_finite() && b.y.is_finite() && b.size > 0.0).collect();
    let (xmin, xmax) = range(pts.iter().map(|b| b.x));
    let (ymin, ymax) = range(pts.iter().map(|b| b.y));
    let biggest = pts.iter().map(|b| b.size).fold(0.0, f64::max).max(1e-12);
    let mut buf = String::new();
    {
        let root = SVGBackend::with_string(&mut buf, SIZE).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 18))
            .margin(12)
            .x_label_area_size(42)
            .y_label_area_size(56)
            .build_cartesian_2d(xmin..xmax, ymin..ymax)
            .map_err(err)?;
        chart.configure_mesh().x_desc(x_label).y_desc(y_label).light_line_style(WHITE.mix(0.0)).draw().map_err(err)?;
        for (i, b) in pts.iter().enumerate() {
            let c = PALETTE[i % PALETTE.len()];
            let r = (4.0 + 36.0 * (b.size / biggest).sqrt()) as i32;
            chart.draw_series(std::iter::once(Circle::new((b.x, b.y), r, c.mix(0.55).filled()))).map_err(err)?;
            chart
                .draw_series(std::iter::once(Text::new(
                    b.label.clone(),
                    (b.x, b.y),
                    ("sans-serif", 12).into_font().color(&BLACK),
                )))
                .map_err(err)?;
        }
        root.present().map_err(err)?;
    }
    Ok(buf)
}

/// The name of the category whose slot [i, i + 1) has its middle at `v` (an axis of
/// categories puts a tick at every half slot; only the middles are labelled), counted
/// from the far end when `flip` (rows drawn top down); empty elsewhere.
fn category_at(names: &[String], v: f64, flip: bool) -> String {
    let i = v.floor() as usize;
    let i = if flip { names.len().checked_sub(i + 1) } else { Some(i) };
    match i {
        Some(i) if (v - v.floor() - 0.5).abs() < 0.01 && i < names.len() => names[i].clone(),
        _ => String::new(),
    }
}

/// Grouped bars: categories along x, one bar per group within each.
pub fn grouped_bars(title: &str, y_label: &str, categories: &[String], groups: &[(String, Vec<f64>)]) -> Res<String> {
    let ymax = groups.iter().flat_map(|g| g.1.iter().copied()).filter(|v| v.is_finite()).fold(0.0, f64::max);
    let ymax = if ymax > 0.0 { ymax * 1.15 } else { 1.0 };
    let k = groups.len().max(1) as f64;
    let mut buf = String::new();
    {
        let root = SVGBackend::with_string(&mut buf, SIZE).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        let n = categories.len().max(1) as f64;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 18))
            .margin(12)
            .x_label_area_size(42)
            .y_label_area_size(56)
            .build_cartesian_2d(0.0..n, 0.0..ymax)
            .map_err(err)?;
        let cats = categories.to_vec();
        chart
            .configure_mesh()
            .y_desc(y_label)
            .x_labels(categories.len() * 2 + 1)
            .x_label_formatter(&move |x| category_at(&cats, *x, false))
            .light_line_style(WHITE.mix(0.0))
            .draw()
            .map_err(err)?;
        for (g, (name, values)) in groups.iter().enumerate() {
            let c = PALETTE[g % PALETTE.len()];
            let w = 0.8 / k;
            let rects: Vec<_> = values
                .iter()
                .enumerate()
                .filter(|(_, v)| v.is_finite())
                .map(|(i, v)| {
                    let left = i as f64 + 0.1 + g as f64 * w;
                    Rectangle::new([(left, 0.0), (left + w * 0.95, *v)], c.filled())
                })
                .collect();
            chart
                .draw_series(rects)
                .map_err(err)?
                .label(name.clone())
                .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 12, y + 5)], c.filled()));
        }
        legend(&mut chart, SeriesLabelPosition::UpperRight)?;
        root.present().map_err(err)?;
    }
    Ok(buf)
}

/// A matrix of counts as coloured cells (darker: more), each with its number: rows
/// down the left (the first at the top), columns along the bottom. The chart is taller
/// with more rows and wider with more columns, so labels do not overlap.
pub fn heatmap(
    title: &str,
    row_label: &str,
    col_label: &str,
    rows: &[String],
    cols: &[String],
    values: &[Vec<f64>],
) -> Res<String> {
    let max = values.iter().flatten().copied().filter(|v| v.is_finite()).fold(0.0, f64::max).max(1.0);
    let (nr, nc) = (rows.len().max(1), cols.len().max(1));
    let height = (120 + 34 * nr as u32).max(260);
    let mut buf = String::new();
    {
        // Wide enough for a label like `least_valuable` under every column.
        let width = (130 + 100 * nc as u32).max(SIZE.0);
        let root = SVGBackend::with_string(&mut buf, (width, height)).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 18))
            .margin(12)
            .x_label_area_size(48)
            .y_label_area_size(110)
            .build_cartesian_2d(0.0..nc as f64, 0.0..nr as f64)
            .map_err(err)?;
        let (r2, c2) = (rows.to_vec(), cols.to_vec());
        let fx = move |v: &f64| category_at(&c2, *v, false);
        let fy = move |v: &f64| category_at(&r2, *v, true);
        chart
            .configure_mesh()
            .x_desc(col_label)
            .y_desc(row_label)
            .x_labels(nc * 2 + 1)
            .y_labels(nr * 2 + 1)
            .x_label_formatter(&fx)
            .y_label_formatter(&fy)
            .disable_mesh()
            .draw()
            .map_err(err)?;
        for (i, row) in values.iter().enumerate() {
            let y = (nr - 1 - i) as f64;
            for (j, v) in row.iter().enumerate() {
                let share = if v.is_finite() { v / max } else { 0.0 };
                let fill = PALETTE[0].mix(0.08 + 0.9 * share);
                chart
                    .draw_series(std::iter::once(Rectangle::new(
                        [(j as f64, y), (j as f64 + 1.0, y + 1.0)],
                        fill.filled(),
                    )))
                    .map_err(err)?;
                let text = if v.is_finite() && *v != 0.0 { format!("{v:.0}") } else { String::new() };
                let color = if share > 0.55 { WHITE } else { BLACK };
                chart
                    .draw_series(std::iter::once(Text::new(
                        text,
                        (j as f64 + 0.5, y + 0.5),
                        ("sans-serif", 12).into_font().color(&color).pos(plotters::style::text_anchor::Pos::new(
                            plotters::style::text_anchor::HPos::Center,
                            plotters::style::text_anchor::VPos::Center,
                        )),
                    )))
                    .map_err(err)?;
            }
        }
        root.present().map_err(err)?;
    }
    Ok(buf)
}

/// A padded range of the finite values (0..1 when there are none).
pub fn range(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let (lo, hi) =
        values.filter(|v| v.is_finite()).fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| (a.min(v), b.max(v)));
    if !lo.is_finite() {
        return (0.0, 1.0);
    }
    let pad = ((hi - lo) * 0.12).max(1e-9 + lo.abs() * 0.05);
    (lo - pad, hi + pad)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charts_draw_their_elements() {
        let chart = LineChart {
            title: "t".into(),
            x_label: "x".into(),
            y_label: "y".into(),
            x_range: (0.0, 1.0),
            y_range: (0.0, 1.0),
            series: vec![Series {
                name: "s".into(),
                points: vec![(0.0, 0.1), (0.5, 0.5), (1.0, 0.9)],
                band: vec![(0.0, 0.0, 0.2), (1.0, 0.8, 1.0)],
                error_bars: vec![(0.5, 0.5, 0.4, 0.6)],
                markers: true,
                line: true,
                ..Default::default()
            }],
            strips: vec![Strip { from: 0.0, to: 0.3, label: "zone".into(), color: 1 }],
            diagonal: true,
        };
        let svg = chart.svg().unwrap();
        assert!(svg.starts_with("<svg"));
        assert!(svg.contains("<polyline") && svg.contains("<circle") && svg.contains("<polygon"), "{svg}");
        assert!(svg.contains("zone\n</text>") || svg.contains(">zone<") || svg.contains(">\nzone"), "{svg}");
        let b = bubble_chart("b", "x", "y", &[Bubble { label: "gold".into(), x: 1.0, y: 2.0, size: 3.0 }]).unwrap();
        assert!(b.contains("gold") && b.contains("<circle"));
        let g = grouped_bars("g", "share", &["a".into(), "b".into()], &[("s".into(), vec![0.2, 0.8])]).unwrap();
        assert!(g.contains("<rect"));
    }
}
