//! BG/NBD, Pareto/NBD and Gamma-Gamma on a transaction log (the top-ups) or on a
//! per-customer summary file.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use chrono::NaiveDate;
use loyalty_contract::{Table, col as c};
use loyalty_features::FeatureParams;
use loyalty_features::transactions::{cols as rc, rfm_summary};
use loyalty_models::{BgNbd, GammaGamma, ParetoNbd, Rfm, Spend, bgnbd, gamma_gamma, pareto_nbd, rfm};
use polars::prelude::*;
use rayon::prelude::*;
use serde_json::{Value, json};

use super::FitReport;
use crate::PipelineError;
use crate::dataset::{DataOptions, floats, load_validated};
use crate::error::{Context, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    BgNbd,
    ParetoNbd,
    GammaGamma,
}

/// The time unit of x, t_x and T.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Period {
    Day,
    Week,
    Month,
}

impl Period {
    pub fn days(self) -> f64 {
        match self {
            Period::Day => 1.0,
            Period::Week => 7.0,
            Period::Month => 365.25 / 12.0,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Period::Day => "day",
            Period::Week => "week",
            Period::Month => "month",
        }
    }
}

/// Where the per-customer summary comes from.
pub enum TxSource {
    /// The top-ups of a dataset, up to `calibration_end` (default: the last top-up's day).
    Dataset { data: DataOptions, calibration_end: Option<NaiveDate> },
    /// A summary file (.parquet or .csv): x, t_x, T (or lifetimes' frequency,
    /// recency, T) and, for Gamma-Gamma, mean_value (or monetary_value).
    Summary(PathBuf),
}

#[derive(Debug, Clone)]
pub struct TxOptions {
    pub period: Period,
    /// Horizon, in periods, of the per-customer expected transactions.
    pub horizon: f64,
    /// BG/NBD: also fit Gamma-Gamma and give each customer's CLV over this many
    /// months (0: no CLV).
    pub clv_months: u32,
    pub discount_rate: f64,
    pub margin_rate: f64,
}

impl Default for TxOptions {
    fn default() -> Self {
        let value = FeatureParams::default();
        Self {
            period: Period::Week,
            horizon: 52.0,
            clv_months: 24,
            discount_rate: value.annual_discount_rate,
            margin_rate: value.margin_rate,
        }
    }
}

/// A fitted transaction model: its report and the per-customer summary with the
/// predictions appended.
pub struct TxFit {
    pub report: FitReport,
    pub customers: DataFrame,
}

fn bad(why: String) -> PipelineError {
    PipelineError::Data(why)
}

/// A per-customer summary from a file, under our column names.
fn read_summary(path: &Path) -> Result<DataFrame> {
    if !path.is_file() {
        return Err(bad(format!("summary {} does not exist or is not a file", path.display())));
    }
    let name = PlRefPath::new(path.to_string_lossy().as_ref());
    let lf = if path.extension().is_some_and(|e| e == "csv") {
        LazyCsvReader::new(name).with_has_header(true).finish()
    } else {
        LazyFrame::scan_parquet(name, ScanArgsParquet::default())
    };
    let unreadable = |e: PolarsError| bad(format!("reading summary {}: {e}", path.display()));
    let mut df = lf.and_then(|lf| lf.collect()).map_err(unreadable)?;
    for (ours, theirs) in [(rc::X, "frequency"), (rc::T_X, "recency"), (rc::MEAN_VALUE, "monetary_value")] {
        if df.column(ours).is_err() && df.column(theirs).is_ok() {
            df.rename(theirs, ours.into())?;
        }
    }
    if let Some(needed) = [rc::X, rc::T_X, rc::T].into_iter().find(|n| df.column(n).is_err()) {
        return Err(bad(format!(
            "{}: no column `{needed}` (rule: missing_column); a summary needs x, t_x and T",
            path.display()
        )));
    }
    if df.column(rc::MEAN_VALUE).is_err() {
        df.with_column(Column::full_null(rc::MEAN_VALUE.into(), df.height(), &DataType::Float64))?;
    }
    Ok(df)
}

/// The summary of a dataset's top-ups up to the calibration end.
fn summarise_dataset(
    data: &DataOptions,
    calibration_end: Option<NaiveDate>,
    period: Period,
    extra: &mut BTreeMap<&'static str, Value>,
) -> Result<DataFrame> {
    let v = load_validated(data)?;
    let Some(topups) = v.tables.get(&Table::Topups) else {
        return Err(bad(format!(
            "{}: no topups table: these models need a transaction log (SCHEMA.md, topups)",
            data.data.display()
        )));
    };
    let end = match calibration_end {
        Some(d) => d,
        None => {
            let df = topups.clone().select([col(c::TS).cast(DataType::Date).max()]).collect()?;
            let day = df.column(c::TS)?.date()?.physical().get(0);
            day.and_then(loyalty_contract::dates::from_epoch_days)
                .ok_or_else(|| bad("the topups table is empty".into()))?
        }
    };
    extra.insert("calibration_end", json!(end.to_string()));
    extra.insert("period", json!(period.name()));
    rfm_summary(v.tables[&Table::Customers].clone(), topups.clone(), end, period.days())
        .during("summarising the transaction log")
}

/// Every customer's (x, t_x, T), checked.
fn histories(x: &[f64], t_x: &[f64], t: &[f64]) -> Result<Vec<Rfm>> {
    let all: Vec<Rfm> = (0..x.len()).map(|i| Rfm { x: x[i], t_x: t_x[i], t: t[i], weight: 1.0 }).collect();
    if all.is_empty() {
        return Err(bad("no customer to fit (none born by the calibration end, or an empty summary)".into()));
    }
    if let Err((i, why)) = rfm::check(&all) {
        let r = &all[i];
        return Err(bad(format!("summary row {} (x {}, t_x {}, T {}): {why}", i + 1, r.x, r.t_x, r.t)));
    }
    Ok(all)
}

/// The Gamma-Gamma rows: customers with repeat transactions of a positive mean value.
fn repeat_buyers(x: &[f64], mean: &[f64]) -> Vec<Spend> {
    x.iter()
        .zip(mean)
        .filter(|(x, v)| **x > 0.0 && v.is_finite() && **v > 0.0)
        .map(|(x, v)| Spend { x: *x, mean_value: *v, weight: 1.0 })
        .collect()
}

/// P(alive) and expected transactions in the next `horizon` periods, per customer.
fn predict(all: &[Rfm], horizon: f64, f: impl Fn(&Rfm) -> (f64, f64) + Sync) -> Vec<Column> {
    let values: Vec<(f64, f64)> = all.par_iter().map(&f).collect();
    vec![
        Column::new("p_alive".into(), values.iter().map(|v| v.0).collect::<Vec<f64>>()),
        Column::new(
            format!("expected_transactions_{horizon}").into(),
            values.iter().map(|v| v.1).collect::<Vec<f64>>(),
        ),
    ]
}

/// Gamma-Gamma on the repeat buyers, then each customer's CLV = margin x E[value] x
/// discounted expected BG/NBD transactions, month by month.
fn bgnbd_clv(
    m: &BgNbd,
    all: &[Rfm],
    mean: &[f64],
    spend: &[Spend],
    o: &TxOptions,
    extra: &mut BTreeMap<&'static str, Value>,
) -> Vec<Column> {
    let (gg, go) = gamma_gamma::fit(spend);
    let month = 365.25 / 12.0 / o.period.days();
    let d = loyalty_features::monthly_discount_rate(o.discount_rate);
    let values: Vec<(f64, f64)> = all
        .par_iter()
        .zip(mean.par_iter())
        .map(|(q, v)| {
            let value = if q.x > 0.0 && v.is_finite() && *v > 0.0 {
                gg.expected_value(q.x, *v)
            } else {
                gg.expected_value(0.0, 0.0)
            };
            let n = m.discounted_transactions(month, o.clv_months, d, q.x, q.t_x, q.t);
            (value, o.margin_rate * value * n)
        })
        .collect();
    extra.insert("gamma_gamma", json!({"params": gg, "log_likelihood": go.log_likelihood, "customers": spend.len()}));
    extra.insert(
        "clv",
        json!({"months": o.clv_months, "annual_discount_rate": o.discount_rate, "margin_rate": o.margin_rate,
               "mean": values.iter().map(|v| v.1).sum::<f64>() / values.len().max(1) as f64}),
    );
    vec![
        Column::new("expected_value".into(), values.iter().map(|v| v.0).collect::<Vec<f64>>()),
        Column::new(format!("clv_{}m", o.clv_months).into(), values.iter().map(|v| v.1).collect::<Vec<f64>>()),
    ]
}

type Fitted = (FitReport, Vec<Column>);

fn fit_bgnbd(all: &[Rfm], x: &[f64], mean: &[f64], o: &TxOptions, extra: &mut BTreeMap<&'static str, Value>) -> Fitted {
    let rows = rfm::compress(all);
    let (m, opt) = bgnbd::fit(&rows);
    let mut p =
        predict(all, o.horizon, |q| (m.p_alive(q.x, q.t_x, q.t), m.expected_transactions(o.horizon, q.x, q.t_x, q.t)));
    extra.insert(
        "expected_transactions_new_customer",
        json!({"periods": o.horizon, "value": m.expected_transactions_new(o.horizon)}),
    );
    let spend = repeat_buyers(x, mean);
    if o.clv_months > 0 && spend.len() >= 10 {
        p.extend(bgnbd_clv(&m, all, mean, &spend, o, extra));
    }
    (FitReport::new("bgnbd", &BgNbd::NAMES, &opt, all.len() as f64, rows.len()), p)
}

fn fit_pareto(all: &[Rfm], o: &TxOptions) -> Fitted {
    let rows = rfm::compress(all);
    let (m, opt) = pareto_nbd::fit(&rows);
    let p =
        predict(all, o.horizon, |q| (m.p_alive(q.x, q.t_x, q.t), m.expected_transactions(o.horizon, q.x, q.t_x, q.t)));
    (FitReport::new("pareto-nbd", &ParetoNbd::NAMES, &opt, all.len() as f64, rows.len()), p)
}

fn fit_gamma_gamma(x: &[f64], mean: &[f64], extra: &mut BTreeMap<&'static str, Value>) -> Result<Fitted> {
    let spend = repeat_buyers(x, mean);
    if spend.is_empty() {
        return Err(bad("no customer with a repeat transaction: nothing for Gamma-Gamma to fit".into()));
    }
    let (m, opt) = gamma_gamma::fit(&spend);
    let ev: Vec<f64> = x
        .iter()
        .zip(mean)
        .map(|(x, v)| if *x > 0.0 { m.expected_value(*x, *v) } else { m.expected_value(0.0, 0.0) })
        .collect();
    extra.insert("population_mean_value", json!(m.expected_value(0.0, 0.0)));
    let report = FitReport::new("gamma-gamma", &GammaGamma::NAMES, &opt, spend.len() as f64, spend.len());
    Ok((report, vec![Column::new("expected_value".into(), ev)]))
}

pub fn fit_transactions(kind: Kind, source: TxSource, o: &TxOptions) -> Result<TxFit> {
    let started = std::time::Instant::now();
    let mut extra: BTreeMap<&'static str, Value> = BTreeMap::new();
    let mut summary = match &source {
        TxSource::Summary(path) => {
            extra.insert("summary", json!(path.display().to_string()));
            read_summary(path)?
        }
        TxSource::Dataset { data, calibration_end } => summarise_dataset(data, *calibration_end, o.period, &mut extra)?,
    };
    let (x, t_x, t, mean) = (
        floats(&summary, rc::X, f64::NAN)?,
        floats(&summary, rc::T_X, f64::NAN)?,
        floats(&summary, rc::T, f64::NAN)?,
        floats(&summary, rc::MEAN_VALUE, f64::NAN)?,
    );
    let all = histories(&x, &t_x, &t)?;
    let (mut report, predictions) = match kind {
        Kind::BgNbd => fit_bgnbd(&all, &x, &mean, o, &mut extra),
        Kind::ParetoNbd => fit_pareto(&all, o),
        Kind::GammaGamma => fit_gamma_gamma(&x, &mean, &mut extra)?,
    };
    report.extra = extra;
    summary.hstack_mut(&predictions)?;
    report.wall_seconds = started.elapsed().as_secs_f64();
    Ok(TxFit { report, customers: summary })
}
