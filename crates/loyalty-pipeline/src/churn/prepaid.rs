//! Prepaid customers: loyalty = P(still active h months after T) under BG/NBD fitted
//! to the top-ups up to T (weeks): P(alive at T) x P(no dropout at a purchase in the
//! next h months).

use std::collections::{HashMap, HashSet};

use chrono::NaiveDate;
use loyalty_contract::ahead::made_ahead;
use loyalty_contract::{Table, Validated, col as c, dates};
use loyalty_features::transactions::{cols as rc, rfm_summary};
use loyalty_features::{FeatureParams, Tables};
use loyalty_models::churn::{Metrics, evaluate};
use loyalty_models::{BgNbd, Rfm, bgnbd, rfm};
use polars::prelude::*;

use crate::dataset::{floats, ids, months_after};
use crate::error::Result;

/// The prepaid customers scored at one date.
pub(crate) struct Prepaid {
    pub ids: Vec<i64>,
    pub loyalty: Vec<f64>,
    pub reasons: Vec<String>,
    pub model: BgNbd,
    pub log_likelihood: f64,
}

/// (x, t_x, T) of one customer, in weeks.
pub(crate) type History = (f64, f64, f64);

/// Days per period of the top-up summaries: BG/NBD runs in weeks.
pub(crate) const WEEK_DAYS: f64 = 7.0;

/// The compressed rows of a BG/NBD fit and the histories of chosen customers.
pub(crate) type Summaries = (Vec<Rfm>, Vec<(i64, History)>);

/// Every customer's compressed (x, t_x, T) rows for the fit, and the histories of
/// the customers `wanted` says to keep, one customer partition at a time (a
/// pass over the partition's top-ups).
pub(crate) fn summaries(
    tables: &Tables,
    t: NaiveDate,
    base: &FeatureParams,
    wanted: impl Fn(i64) -> bool,
) -> Result<Summaries> {
    let mut fit_rows: Vec<Rfm> = Vec::new();
    let mut asked: Vec<(i64, History)> = Vec::new();
    // The summaries hold every top-up of a partition's customers (24 bytes each, ~16
    // per prepaid customer and year): about 400 MB at three years of history. Each
    // partition reads its own bucket once (partitions of half the size read each
    // bucket twice, 15.6 s at 10M customers).
    // The next partition's top-ups are summarised while one's rows are compressed.
    made_ahead(
        loyalty_features::customer_slices(tables, base)?,
        |slice| -> Result<_> {
            loyalty_contract::cancel::check()?;
            let part = loyalty_features::restricted(tables, slice);
            let summary = rfm_summary(part[&Table::Customers].clone(), part[&Table::Topups].clone(), t, WEEK_DAYS)?;
            tracing::debug!("BG/NBD summaries at {t}: {slice:?}, {} customers", summary.height());
            Ok(summary)
        },
        |summary| {
            let (x, t_x, big_t) =
                (floats(&summary, rc::X, 0.0)?, floats(&summary, rc::T_X, 0.0)?, floats(&summary, rc::T, 0.0)?);
            let rows: Vec<Rfm> = (0..x.len()).map(|i| Rfm { x: x[i], t_x: t_x[i], t: big_t[i], weight: 1.0 }).collect();
            fit_rows.extend(rfm::compress(&rows));
            for (i, id) in summary.column(c::CUSTOMER_ID)?.i64()?.iter().enumerate() {
                if let Some(id) = id.filter(|id| wanted(*id)) {
                    asked.push((id, (x[i], t_x[i], big_t[i])));
                }
            }
            Ok(())
        },
    )?;
    Ok((fit_rows, asked))
}

/// BG/NBD fitted at `t` and applied to the prepaid customers `ids` (None: no top-ups).
pub(crate) fn prepaid_loyalty(
    v: &Validated,
    t: NaiveDate,
    ids: &[i64],
    base: &FeatureParams,
) -> Result<Option<Prepaid>> {
    if !v.tables.contains_key(&Table::Topups) || ids.is_empty() {
        return Ok(None);
    }
    let wanted: HashSet<i64> = ids.iter().copied().collect();
    let (fit_rows, asked) = summaries(&v.tables, t, base, |id| wanted.contains(&id))?;
    let asked: HashMap<i64, History> = asked.into_iter().collect();
    if fit_rows.is_empty() {
        return Ok(None);
    }
    let (model, o) = bgnbd::fit(&rfm::compress(&fit_rows));
    let weeks = f64::from(base.churn_horizon_months) * 365.25 / 12.0 / WEEK_DAYS;
    let (mut kept, mut loyalty, mut reasons) = (Vec::new(), Vec::new(), Vec::new());
    for id in ids {
        let Some(&(x, t_x, big_t)) = asked.get(id) else { continue };
        kept.push(*id);
        loyalty.push(model.p_alive_after(weeks, x, t_x, big_t));
        reasons.push(format!("BG/NBD: {} repeat top-up days, the last {:.0} weeks ago", x, big_t - t_x));
    }
    Ok(Some(Prepaid { ids: kept, loyalty, reasons, model, log_likelihood: o.log_likelihood }))
}

/// BG/NBD validated out of time: fitted to the top-ups up to the test snapshot
/// `t0`, scored against churn in the following h months (None: nothing to test).
pub(crate) fn prepaid_out_of_time(
    v: &Validated,
    t0: NaiveDate,
    ids_at_t0: &[i64],
    base: &FeatureParams,
) -> Result<Option<Metrics>> {
    let Some(pp) = prepaid_loyalty(v, t0, ids_at_t0, base)? else { return Ok(None) };
    let end = months_after(t0, base.churn_horizon_months)?;
    let churned: HashSet<i64> = {
        let df =
            v.tables[&Table::Customers].clone().filter(dates::churned_between(t0, end)).select([col(c::CUSTOMER_ID)]);
        ids(&loyalty_contract::collect_streaming(df)?, c::CUSTOMER_ID)?.into_iter().collect()
    };
    let y: Vec<f64> = pp.ids.iter().map(|id| f64::from(u8::from(churned.contains(id)))).collect();
    let p: Vec<f64> = pp.loyalty.iter().map(|l| 1.0 - l).collect();
    Ok(y.iter().any(|v| *v > 0.0).then(|| evaluate(&p, &y)))
}
