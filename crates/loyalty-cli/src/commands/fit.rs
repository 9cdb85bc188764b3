//! `loyalty fit`: customer-base models by maximum likelihood, as a table or JSON.

use std::collections::BTreeMap;
use std::io::Write;
use std::time::Instant;

use anyhow::{Context, bail};
use chrono::{Datelike, Months, NaiveDate};
use loyalty_contract::{Table, col as c};
use loyalty_features::transactions::{cols as rc, rfm_summary};
use loyalty_models::{
    BgNbd, GammaGamma, Optimum, ParetoNbd, Rfm, Sbg, Spend, bgnbd, gamma_gamma, pareto_nbd, rfm, sbg,
};
use polars::prelude::*;
use rayon::prelude::*;
use serde::Serialize;
use serde_json::{Value, json};

use crate::InputRejected;
use crate::cli::{FitArgs, FitModel, Format, KmArgs, SbgArgs, TxFitArgs};
use crate::commands::features::default_as_of;
use crate::commands::load_validated;

#[derive(Serialize)]
struct FitReport {
    model: &'static str,
    params: BTreeMap<&'static str, f64>,
    std_errors: BTreeMap<&'static str, f64>,
    log_likelihood: f64,
    customers: f64,
    /// Likelihood rows after merging identical histories.
    rows: usize,
    converged: bool,
    evaluations: usize,
    #[serde(flatten)]
    extra: BTreeMap<&'static str, Value>,
    wall_seconds: f64,
}

fn report(model: &'static str, names: &[&'static str], o: &Optimum, customers: f64, rows: usize) -> FitReport {
    FitReport {
        model,
        params: names.iter().copied().zip(o.params.iter().copied()).collect(),
        std_errors: names.iter().copied().zip(o.std_errors.iter().copied()).collect(),
        log_likelihood: o.log_likelihood,
        customers,
        rows,
        converged: o.converged,
        evaluations: o.evaluations,
        extra: BTreeMap::new(),
        wall_seconds: 0.0,
    }
}

fn print(r: &FitReport, names: &[&'static str], format: Format) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    match format {
        Format::Json => writeln!(out, "{}", serde_json::to_string_pretty(r)?)?,
        Format::Human => {
            writeln!(out, "{} fitted to {} customers ({} likelihood rows)", r.model, r.customers, r.rows)?;
            writeln!(out, "  {:<8} {:>14} {:>12}", "param", "estimate", "std.error")?;
            for n in names {
                writeln!(out, "  {:<8} {:>14.6} {:>12.6}", n, r.params[n], r.std_errors[n])?;
            }
            writeln!(out, "  log-likelihood {:.4}   converged: {}", r.log_likelihood, r.converged)?;
            for (k, v) in &r.extra {
                writeln!(out, "  {k}: {v}")?;
            }
        }
    }
    Ok(())
}

pub fn run(args: FitArgs) -> anyhow::Result<()> {
    match args.model {
        FitModel::Sbg(a) => fit_sbg(a),
        FitModel::Bgnbd(a) => fit_transactions(a, Kind::BgNbd),
        FitModel::ParetoNbd(a) => fit_transactions(a, Kind::ParetoNbd),
        FitModel::GammaGamma(a) => fit_transactions(a, Kind::GammaGamma),
        FitModel::Km(a) => kaplan_meier(a),
    }
}

// ---- Kaplan-Meier ------------------------------------------------------------------

fn kaplan_meier(a: KmArgs) -> anyhow::Result<()> {
    if let Some(path) = &a.out {
        loyalty_io::check_output_file(path, &[&a.data.data])?;
    }
    let v = load_validated(&a.data)?;
    let as_of = match a.as_of {
        Some(d) => d,
        None => default_as_of(&v)?,
    };
    let params = loyalty_features::FeatureParams { as_of, ..Default::default() };
    let mut table = match loyalty_features::survival::kaplan_meier_by(&v.tables, &params, &a.by) {
        Ok(t) => t,
        Err(loyalty_features::FeatureError::Config(m)) => return Err(anyhow::anyhow!(m)),
        Err(e) => return Err(e.into()),
    };
    if let Some(path) = &a.out {
        loyalty_io::write_table_atomic(&mut table, path)?;
    }
    // Per group: survival at 6, 12, 24 and 36 months of tenure.
    let key = table.column(&a.by)?.str()?.clone();
    let tenure = table.column(loyalty_features::names::TENURE_MONTHS)?.i64()?.clone();
    let survival = table.column("survival")?.f64()?.clone();
    let mut groups: BTreeMap<String, BTreeMap<i64, f64>> = BTreeMap::new();
    for i in 0..table.height() {
        if let (Some(g), Some(k), Some(s)) = (key.get(i), tenure.get(i), survival.get(i)) {
            groups.entry(g.to_string()).or_default().insert(k, s);
        }
    }
    let at = |curve: &BTreeMap<i64, f64>, months: i64| curve.range(..=months).next_back().map(|(_, s)| *s);
    let summary: Vec<Value> = groups
        .iter()
        .map(|(g, curve)| {
            json!({"group": g, "survival_6m": at(curve, 6), "survival_12m": at(curve, 12),
                   "survival_24m": at(curve, 24), "survival_36m": at(curve, 36)})
        })
        .collect();
    let mut out = std::io::stdout().lock();
    match a.format {
        Format::Json => writeln!(
            out,
            "{}",
            serde_json::to_string_pretty(&json!({"by": a.by, "as_of": as_of.to_string(), "groups": summary}))?
        )?,
        Format::Human => {
            writeln!(out, "Kaplan-Meier retention by {} (customers known at {as_of}), survival at tenure", a.by)?;
            writeln!(out, "  {:<20} {:>8} {:>8} {:>8} {:>8}", "group", "6m", "12m", "24m", "36m")?;
            let f = |v: &Value| v.as_f64().map_or("-".to_string(), |x| format!("{x:.4}"));
            for s in &summary {
                writeln!(
                    out,
                    "  {:<20} {:>8} {:>8} {:>8} {:>8}",
                    s["group"].as_str().unwrap_or(""),
                    f(&s["survival_6m"]),
                    f(&s["survival_12m"]),
                    f(&s["survival_24m"]),
                    f(&s["survival_36m"])
                )?;
            }
        }
    }
    Ok(())
}

// ---- sBG -------------------------------------------------------------------------

/// Postpaid cohorts of a dataset: one per signup month among customers on a
/// `months`-month contract; survivors after t terms = customers whose churn_date is
/// after signup + t terms (or null), for the terms every member has completed by `as_of`.
fn contract_cohorts(df: &DataFrame, months: i64, as_of: NaiveDate) -> anyhow::Result<Vec<Vec<f64>>> {
    let ids = df.column(c::SIGNUP_DATE)?.date()?.physical().clone();
    let churn = df.column(c::CHURN_DATE)?.date()?.physical().clone();
    let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).context("epoch")?;
    let day = |d: i32| epoch + chrono::Days::new(d as u64);
    // (signup year, month) -> members' (signup, churn date)
    type Members = Vec<(NaiveDate, Option<NaiveDate>)>;
    let mut cohorts: BTreeMap<(i32, u32), Members> = BTreeMap::new();
    for (s, ch) in ids.iter().zip(churn.iter()) {
        let Some(s) = s else { continue };
        let s = day(s);
        cohorts.entry((s.year(), s.month())).or_default().push((s, ch.map(day)));
    }
    let term = |d: NaiveDate, t: u32| d.checked_add_months(Months::new(t * months as u32));
    let mut out = Vec::new();
    for members in cohorts.values() {
        let latest = members.iter().map(|m| m.0).max().context("empty cohort")?;
        let observed = (1..).take_while(|&t| term(latest, t).is_some_and(|e| e <= as_of)).count() as u32;
        if observed == 0 {
            continue;
        }
        let counts: Vec<f64> = (0..=observed)
            .map(|t| {
                members
                    .iter()
                    .filter(|(s, ch)| match (ch, term(*s, t)) {
                        (None, _) => true,
                        (Some(ch), Some(end)) => *ch > end,
                        (Some(_), None) => false,
                    })
                    .count() as f64
            })
            .collect();
        out.push(counts);
    }
    Ok(out)
}

/// The contract cohorts of a dataset for sBG: postpaid customers on the most common
/// contract length (or `months`), one cohort per signup month.
pub(crate) fn dataset_cohorts(
    v: &loyalty_contract::Validated,
    as_of: NaiveDate,
    months: Option<i64>,
) -> anyhow::Result<(i64, Vec<Vec<f64>>)> {
    let customers = v.tables[&Table::Customers]
        .clone()
        .filter(col(c::PLAN_TYPE).eq(lit("postpaid")).and(col(c::CONTRACT_MONTHS).gt(lit(0))))
        .select([col(c::SIGNUP_DATE), col(c::CHURN_DATE), col(c::CONTRACT_MONTHS)])
        .collect()?;
    let months =
        match months {
            Some(m) => m,
            None => {
                let mut counts: BTreeMap<i64, usize> = BTreeMap::new();
                for m in customers.column(c::CONTRACT_MONTHS)?.i64()?.iter().flatten() {
                    *counts.entry(m).or_default() += 1;
                }
                counts.into_iter().max_by_key(|(m, n)| (*n, -*m)).map(|(m, _)| m).ok_or_else(|| {
                    InputRejected("no postpaid customer with a contract: nothing for sBG to fit".into())
                })?
            }
        };
    let chosen = customers.lazy().filter(col(c::CONTRACT_MONTHS).eq(lit(months))).collect()?;
    Ok((months, contract_cohorts(&chosen, months, as_of)?))
}

/// Pooled observed survival (the product of pooled period retention; None past the
/// longest cohort) against the model's, for periods 0..=horizon.
pub(crate) fn sbg_curve(m: &Sbg, cohorts: &[Vec<f64>], horizon: u32) -> Vec<(u32, Option<f64>, f64)> {
    let longest = cohorts.iter().map(Vec::len).max().unwrap_or(1) as u32 - 1;
    let mut observed = 1.0;
    let mut out = Vec::new();
    for t in 0..=horizon {
        if t > 0 && t <= longest {
            let at = |k: u32| cohorts.iter().filter(|n| n.len() > t as usize).map(|n| n[k as usize]).sum::<f64>();
            observed *= at(t) / at(t - 1);
        }
        out.push((t, (t <= longest).then_some(observed), m.survival(t)));
    }
    out
}

fn fit_sbg(a: SbgArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    let mut extra: BTreeMap<&'static str, Value> = BTreeMap::new();
    let cohorts: Vec<Vec<f64>> = match &a.data {
        None => {
            let counts: Result<Vec<f64>, _> = a.survivors.iter().map(|s| s.trim().parse::<f64>()).collect();
            vec![counts.map_err(|e| anyhow::anyhow!("--survivors: {e}: give counts like 1000,631,468"))?]
        }
        Some(dir) => {
            let data = crate::cli::DataArgs { data: dir.clone(), lenient: false, skip_validation: false };
            let v = load_validated(&data)?;
            let as_of = match a.as_of {
                Some(d) => d,
                None => default_as_of(&v)?,
            };
            let (months, cohorts) = dataset_cohorts(&v, as_of, a.contract_months)?;
            extra.insert("contract_months", json!(months));
            extra.insert("as_of", json!(as_of.to_string()));
            cohorts
        }
    };
    sbg::check(&cohorts).map_err(InputRejected)?;
    if cohorts.is_empty() {
        return Err(InputRejected("no cohort has completed a contract term by the as-of date".into()).into());
    }
    let (m, o) = sbg::fit(&cohorts);
    let longest = cohorts.iter().map(Vec::len).max().unwrap_or(1) as u32 - 1;
    let horizon = a.project.unwrap_or(longest + 5);
    let curve: Vec<Value> = sbg_curve(&m, &cohorts, horizon)
        .into_iter()
        .map(|(t, observed, model)| {
            json!({
                "period": t,
                "observed_survival": observed,
                "model_survival": model,
                "model_retention": if t > 0 { json!(m.retention(t)) } else { Value::Null },
            })
        })
        .collect();
    extra.insert("cohorts", json!(cohorts.len()));
    // Large alpha and beta mean no heterogeneity: every customer churns with the same
    // probability per period, alpha / (alpha + beta).
    extra.insert("mean_churn_per_period", json!(m.alpha / (m.alpha + m.beta)));
    // Churned / customer-periods at risk, over every cohort: the homogeneous estimate.
    let (lost, at_risk) =
        cohorts.iter().flat_map(|n| n.windows(2)).fold((0.0, 0.0), |(l, r), w| (l + w[0] - w[1], r + w[0]));
    extra.insert("pooled_churn_per_period", json!(lost / at_risk.max(1.0)));
    extra.insert(
        "derl",
        json!({"discount": a.discount, "renewals": a.renewals, "value": m.derl(a.discount, a.renewals)}),
    );
    extra.insert("curve", Value::Array(curve));
    let customers = cohorts.iter().map(|n| n[0]).sum();
    let mut r = report("sbg", &Sbg::NAMES, &o, customers, cohorts.len());
    r.extra = extra;
    r.wall_seconds = started.elapsed().as_secs_f64();
    print(&r, &Sbg::NAMES, a.format)
}

// ---- transaction models ----------------------------------------------------------

#[derive(Clone, Copy)]
enum Kind {
    BgNbd,
    ParetoNbd,
    GammaGamma,
}

fn floats(df: &DataFrame, name: &str) -> anyhow::Result<Vec<f64>> {
    Ok(df
        .column(name)?
        .as_materialized_series()
        .cast(&DataType::Float64)?
        .f64()?
        .iter()
        .map(|v| v.unwrap_or(f64::NAN))
        .collect())
}

/// A per-customer summary from a file: x, t_x, T and (optional) mean_value, under
/// our names or lifetimes' (frequency, recency, T, monetary_value).
fn read_summary(path: &std::path::Path) -> anyhow::Result<DataFrame> {
    if !path.is_file() {
        return Err(InputRejected(format!("summary {} does not exist or is not a file", path.display())).into());
    }
    let name = PlRefPath::new(path.to_string_lossy().as_ref());
    let lf = if path.extension().is_some_and(|e| e == "csv") {
        LazyCsvReader::new(name).with_has_header(true).finish()
    } else {
        LazyFrame::scan_parquet(name, ScanArgsParquet::default())
    }
    .map_err(|e| InputRejected(format!("reading summary {}: {e}", path.display())))?;
    let mut df = lf.collect().map_err(|e| InputRejected(format!("reading summary {}: {e}", path.display())))?;
    for (ours, theirs) in [(rc::X, "frequency"), (rc::T_X, "recency"), (rc::MEAN_VALUE, "monetary_value")] {
        if df.column(ours).is_err() && df.column(theirs).is_ok() {
            df.rename(theirs, ours.into())?;
        }
    }
    for needed in [rc::X, rc::T_X, rc::T] {
        if df.column(needed).is_err() {
            return Err(InputRejected(format!(
                "{}: no column `{needed}` (rule: missing_column); a summary needs x, t_x and T",
                path.display()
            ))
            .into());
        }
    }
    if df.column(rc::MEAN_VALUE).is_err() {
        df.with_column(Column::full_null(rc::MEAN_VALUE.into(), df.height(), &DataType::Float64))?;
    }
    Ok(df)
}

fn fit_transactions(a: TxFitArgs, kind: Kind) -> anyhow::Result<()> {
    let started = Instant::now();
    if let Some(path) = &a.out {
        let inputs: Vec<&std::path::Path> = a.data.iter().chain(&a.summary).map(|p| p.as_path()).collect();
        loyalty_io::check_output_file(path, &inputs)?;
    }
    let mut extra: BTreeMap<&'static str, Value> = BTreeMap::new();
    let mut summary = match (&a.data, &a.summary) {
        (_, Some(path)) => {
            extra.insert("summary", json!(path.display().to_string()));
            read_summary(path)?
        }
        (Some(dir), None) => {
            let data =
                crate::cli::DataArgs { data: dir.clone(), lenient: a.lenient, skip_validation: a.skip_validation };
            let v = load_validated(&data)?;
            let Some(topups) = v.tables.get(&Table::Topups) else {
                return Err(InputRejected(format!(
                    "{}: no topups table: these models need a transaction log (SCHEMA.md, topups)",
                    dir.display()
                ))
                .into());
            };
            let end = match a.calibration_end {
                Some(d) => d,
                None => {
                    let df = topups.clone().select([col(c::TS).cast(DataType::Date).max()]).collect()?;
                    let d = df
                        .column(c::TS)?
                        .date()?
                        .physical()
                        .get(0)
                        .ok_or_else(|| InputRejected("the topups table is empty".into()))?;
                    NaiveDate::from_ymd_opt(1970, 1, 1).context("epoch")? + chrono::Days::new(d as u64)
                }
            };
            extra.insert("calibration_end", json!(end.to_string()));
            extra.insert("period", json!(format!("{:?}", a.period).to_lowercase()));
            rfm_summary(v.tables[&Table::Customers].clone(), topups.clone(), end, a.period.days())
                .map_err(anyhow::Error::from)
                .context("summarising the transaction log")?
        }
        (None, None) => bail!("give --data or --summary"),
    };
    let (x, t_x, t, mean) = (
        floats(&summary, rc::X)?,
        floats(&summary, rc::T_X)?,
        floats(&summary, rc::T)?,
        floats(&summary, rc::MEAN_VALUE)?,
    );
    let all: Vec<Rfm> = (0..x.len()).map(|i| Rfm { x: x[i], t_x: t_x[i], t: t[i], weight: 1.0 }).collect();
    if all.is_empty() {
        return Err(
            InputRejected("no customer to fit (none born by the calibration end, or an empty summary)".into()).into()
        );
    }
    if let Err((i, why)) = rfm::check(&all) {
        return Err(InputRejected(format!(
            "summary row {} (x {}, t_x {}, T {}): {why}",
            i + 1,
            all[i].x,
            all[i].t_x,
            all[i].t
        ))
        .into());
    }
    let rows = rfm::compress(&all);
    let (mut r, names, predictions): (FitReport, &[&'static str], Vec<Column>) = match kind {
        Kind::BgNbd => {
            let (m, o) = bgnbd::fit(&rows);
            let p = predict(&all, a.horizon, |q| {
                (m.p_alive(q.x, q.t_x, q.t), m.expected_transactions(a.horizon, q.x, q.t_x, q.t))
            });
            extra.insert(
                "expected_transactions_new_customer",
                json!({"periods": a.horizon, "value": m.expected_transactions_new(a.horizon)}),
            );
            let mut p = p;
            // CLV = margin x E[value] x discounted expected transactions, month by month.
            let spend = repeat_buyers(&x, &mean);
            if a.clv_months > 0 && spend.len() >= 10 {
                let (gg, go) = gamma_gamma::fit(&spend);
                let month = 365.25 / 12.0 / a.period.days();
                let d = loyalty_features::monthly_discount_rate(a.discount_rate);
                let values: Vec<(f64, f64)> = all
                    .par_iter()
                    .zip(mean.par_iter())
                    .map(|(q, v)| {
                        let value = if q.x > 0.0 && v.is_finite() && *v > 0.0 {
                            gg.expected_value(q.x, *v)
                        } else {
                            gg.expected_value(0.0, 0.0)
                        };
                        let n = m.discounted_transactions(month, a.clv_months, d, q.x, q.t_x, q.t);
                        (value, a.margin_rate * value * n)
                    })
                    .collect();
                p.push(Column::new("expected_value".into(), values.iter().map(|v| v.0).collect::<Vec<f64>>()));
                p.push(Column::new(
                    format!("clv_{}m", a.clv_months).into(),
                    values.iter().map(|v| v.1).collect::<Vec<f64>>(),
                ));
                extra.insert(
                    "gamma_gamma",
                    json!({"params": gg, "log_likelihood": go.log_likelihood, "customers": spend.len()}),
                );
                extra.insert(
                    "clv",
                    json!({"months": a.clv_months, "annual_discount_rate": a.discount_rate, "margin_rate": a.margin_rate,
                           "mean": values.iter().map(|v| v.1).sum::<f64>() / values.len().max(1) as f64}),
                );
            }
            (report("bgnbd", &BgNbd::NAMES, &o, all.len() as f64, rows.len()), &BgNbd::NAMES, p)
        }
        Kind::ParetoNbd => {
            let (m, o) = pareto_nbd::fit(&rows);
            let p = predict(&all, a.horizon, |q| {
                (m.p_alive(q.x, q.t_x, q.t), m.expected_transactions(a.horizon, q.x, q.t_x, q.t))
            });
            (report("pareto-nbd", &ParetoNbd::NAMES, &o, all.len() as f64, rows.len()), &ParetoNbd::NAMES, p)
        }
        Kind::GammaGamma => {
            let spend = repeat_buyers(&x, &mean);
            if spend.is_empty() {
                return Err(InputRejected(
                    "no customer with a repeat transaction: nothing for Gamma-Gamma to fit".into(),
                )
                .into());
            }
            let (m, o) = gamma_gamma::fit(&spend);
            let ev: Vec<f64> = x
                .iter()
                .zip(&mean)
                .map(|(x, v)| if *x > 0.0 { m.expected_value(*x, *v) } else { m.expected_value(0.0, 0.0) })
                .collect();
            extra.insert("population_mean_value", json!(m.expected_value(0.0, 0.0)));
            (
                report("gamma-gamma", &GammaGamma::NAMES, &o, spend.len() as f64, spend.len()),
                &GammaGamma::NAMES,
                vec![Column::new("expected_value".into(), ev)],
            )
        }
    };
    r.extra = extra;
    if let Some(path) = &a.out {
        summary.hstack_mut(&predictions)?;
        loyalty_io::write_table_atomic(&mut summary, path)?;
    }
    r.wall_seconds = started.elapsed().as_secs_f64();
    print(&r, names, a.format)
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
