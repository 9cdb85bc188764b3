//! Satisfaction-versus-loyalty curves (DOMAIN.md section 5).
//!
//! Per competition level and satisfaction level (`overall`):
//! - observed loyalty: among surveys old enough to know (`survey_date + h months <= T`)
//!   of customers active on the survey day, the share still a customer h months later,
//!   with a Wilson 95% interval (it behaves at small counts and at 0% or 100%);
//! - modelled loyalty: the mean `loyalty` (P(still a customer h months after T)) of the
//!   customers active at T whose latest survey gave that level;
//! - an isotonic (non-decreasing) fit of observed loyalty over satisfaction, weighted by
//!   the surveys behind each cell (pool-adjacent-violators);
//! - zones located on that fit: the indifference zone is the flat stretch with the most
//!   surveys, defection below it, affection above it;
//! - the churn-rate ratio of satisfied (second-highest level) to completely satisfied
//!   (highest level), with a Katz log interval;
//! - the aspects that move loyalty most: a logistic regression of retention on the six
//!   aspect scores, per standard deviation, with standard errors.
//!
//! Cells with fewer surveys than `min_cell_surveys` are flagged `too_few`.

use chrono::{Months, NaiveDate};
use loyalty_contract::partition::Slice;
use loyalty_contract::{Table, col as c, collect_streaming};
use loyalty_models::churn::{Design, Logistic};
use polars::prelude::*;
use serde::{Deserialize, Serialize};

use crate::per_customer::with_competition;
use crate::{FeatureError, FeatureParams, Tables, names as n};

/// The knobs of the curves.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CurveParams {
    /// The satisfaction scale of `surveys.overall`, lowest and highest level.
    pub satisfaction_scale: [i64; 2],
    /// Cells with fewer observed surveys are flagged `too_few`.
    pub min_cell_surveys: u64,
    /// A step of the fitted curve is steep when it rises by at least this share of the
    /// curve's whole rise.
    pub steep_step_share: f64,
    /// A curve that rises less than this (in probability) from the lowest to the highest
    /// level is flat: every level is in the zone of indifference.
    pub min_rise: f64,
}

impl Default for CurveParams {
    fn default() -> Self {
        Self { satisfaction_scale: [1, 5], min_cell_surveys: 30, steep_step_share: 0.25, min_rise: 0.03 }
    }
}

/// z for a two-sided 95% interval.
pub const Z95: f64 = 1.959_963_984_540_054;

/// Wilson score interval for `k` successes in `n` trials.
pub fn wilson(k: f64, n: f64, z: f64) -> (f64, f64) {
    if n <= 0.0 {
        return (f64::NAN, f64::NAN);
    }
    let p = k / n;
    let z2 = z * z;
    let den = 1.0 + z2 / n;
    let centre = (p + z2 / (2.0 * n)) / den;
    let half = z * (p * (1.0 - p) / n + z2 / (4.0 * n * n)).sqrt() / den;
    ((centre - half).max(0.0), (centre + half).min(1.0))
}

/// Weighted isotonic (non-decreasing) regression by pool-adjacent-violators. Points
/// with zero weight or a non-finite value get the fit of their neighbours' block
/// (NaN when there is no data at all).
pub fn isotonic(y: &[f64], w: &[f64]) -> Vec<f64> {
    // blocks of (weighted mean, weight, first index, last index)
    let mut blocks: Vec<(f64, f64, usize, usize)> = Vec::new();
    for i in 0..y.len() {
        if !(w[i] > 0.0 && y[i].is_finite()) {
            continue;
        }
        blocks.push((y[i], w[i], i, i));
        while blocks.len() > 1 {
            let (m2, w2, _, e2) = blocks[blocks.len() - 1];
            let (m1, w1, s1, _) = blocks[blocks.len() - 2];
            if m1 <= m2 {
                break;
            }
            blocks.pop();
            let last = blocks.len() - 1;
            blocks[last] = ((m1 * w1 + m2 * w2) / (w1 + w2), w1 + w2, s1, e2);
        }
    }
    let mut fit = vec![f64::NAN; y.len()];
    for (k, &(m, _, s, e)) in blocks.iter().enumerate() {
        let from = if k == 0 { 0 } else { s };
        let to = if k + 1 == blocks.len() { y.len() - 1 } else { e };
        for v in fit.iter_mut().take(to + 1).skip(from) {
            *v = m;
        }
        // gaps between blocks take the lower block's value (still monotone)
        if k + 1 < blocks.len() {
            for v in fit.iter_mut().take(blocks[k + 1].2).skip(e + 1) {
                *v = m;
            }
        }
    }
    fit
}

/// The zone of each level, from a fitted non-decreasing curve and the weight
/// (surveys) behind each level.
pub fn zones(fit: &[f64], weight: &[f64], p: &CurveParams) -> Vec<&'static str> {
    let known: Vec<usize> = (0..fit.len()).filter(|&i| fit[i].is_finite()).collect();
    let (Some(&lo), Some(&hi)) = (known.first(), known.last()) else {
        return vec!["unknown"; fit.len()];
    };
    let rise = fit[hi] - fit[lo];
    if rise < p.min_rise {
        return vec!["indifference"; fit.len()];
    }
    // runs of levels joined by flat steps
    let mut runs: Vec<(usize, usize)> = vec![(0, 0)];
    for i in 1..fit.len() {
        let step = fit[i] - fit[i - 1];
        if step.is_finite() && step >= p.steep_step_share * rise {
            runs.push((i, i));
        } else if let Some(last) = runs.last_mut() {
            last.1 = i;
        }
    }
    let mass = |&(a, b): &(usize, usize)| weight[a..=b].iter().sum::<f64>();
    let plateau = runs
        .iter()
        .copied()
        .max_by(|x, y| mass(x).total_cmp(&mass(y)).then((x.1 - x.0).cmp(&(y.1 - y.0))))
        .unwrap_or((0, fit.len() - 1));
    (0..fit.len())
        .map(|i| {
            if i < plateau.0 {
                "defection"
            } else if i > plateau.1 {
                "affection"
            } else {
                "indifference"
            }
        })
        .collect()
}

/// The four tables of the curves stage.
pub struct CurveTables {
    /// competition_level, satisfaction, customers, share_of_level, surveys, retained,
    /// observed_loyalty, ci_low, ci_high, modelled_loyalty, isotonic_loyalty, zone, too_few.
    pub curves: DataFrame,
    /// competition_level, zone, satisfaction_from, satisfaction_to, customers, share.
    pub zones: DataFrame,
    /// competition_level, churn_satisfied, churn_completely_satisfied, ratio, ci_low, ci_high.
    pub gaps: DataFrame,
    /// aspect, retention_* and satisfaction_* effects per standard deviation with their
    /// standard errors and 95% intervals, and the surveys behind each.
    pub drivers: DataFrame,
}

/// Every survey with its customer's competition level and, when the horizon has passed
/// by T, whether the customer was still there h months after it.
fn observed_surveys(tables: &Tables, params: &FeatureParams) -> Result<Option<LazyFrame>, FeatureError> {
    let Some(surveys) = tables.get(&Table::Surveys) else { return Ok(None) };
    let t = params.as_of;
    let h = params.churn_horizon_months;
    let last_survey = t.checked_sub_months(Months::new(h)).unwrap_or(NaiveDate::MIN);
    let mut customers = with_competition(
        tables[&Table::Customers].clone().select([
            col(c::CUSTOMER_ID),
            col(c::SIGNUP_DATE),
            col(c::CHURN_DATE),
            col(c::MARKET_ID),
            col(c::PLAN_TYPE),
        ]),
        tables,
        params,
    );
    // When each customer left. A prepaid churn_date is a declaration after
    // `prepaid_inactivity_days` of silence: the customer left when the silence began.
    // A prepaid customer not (yet) declared left at their last top-up when that is more
    // than the inactivity window before T.
    let day = |e: Expr| e.cast(DataType::Int32);
    let wait = params.prepaid_inactivity_days as i32;
    let t_day = crate::epoch_days(t);
    let last_topup = tables.get(&Table::Topups).map(|tp| {
        tp.clone().filter(col(c::TS).cast(DataType::Date).lt_eq(lit(t))).group_by([col(c::CUSTOMER_ID)]).agg([day(
            col(c::TS).cast(DataType::Date),
        )
        .max()
        .alias("__last_topup")])
    });
    customers = match last_topup {
        Some(lt) => customers.join(lt, [col(c::CUSTOMER_ID)], [col(c::CUSTOMER_ID)], JoinArgs::new(JoinType::Left)),
        None => customers.with_column(lit(NULL).cast(DataType::Int32).alias("__last_topup")),
    };
    let prepaid = col(c::PLAN_TYPE).eq(lit("prepaid"));
    let left = when(prepaid.clone().and(col(c::CHURN_DATE).is_not_null()))
        .then(day(col(c::CHURN_DATE)) - lit(wait))
        .when(prepaid.and(col("__last_topup").lt_eq(lit(t_day - wait))))
        .then(col("__last_topup"))
        .otherwise(day(col(c::CHURN_DATE)))
        .alias("__left");
    let mut keep = vec![col(c::CUSTOMER_ID), col(c::SURVEY_DATE), col(c::OVERALL)];
    keep.extend(c::ASPECTS.iter().map(|a| col(*a)));
    let target = day(col(c::SURVEY_DATE).dt().offset_by(lit(format!("{h}mo"))));
    let lf = surveys
        .clone()
        .select(keep)
        .filter(col(c::SURVEY_DATE).lt_eq(lit(last_survey)))
        .join(customers.with_column(left), [col(c::CUSTOMER_ID)], [col(c::CUSTOMER_ID)], JoinArgs::new(JoinType::Inner))
        // a customer on the books on the survey day
        .filter(col(c::SIGNUP_DATE).lt_eq(col(c::SURVEY_DATE)))
        .filter(col("__left").is_null().or(col("__left").gt(day(col(c::SURVEY_DATE)))))
        .with_column(col("__left").is_null().or(col("__left").gt(target)).alias("__retained"));
    Ok(Some(lf))
}

/// Every survey answered by T.
fn all_surveys(tables: &Tables, t: NaiveDate) -> LazyFrame {
    tables[&Table::Surveys].clone().filter(col(c::SURVEY_DATE).lt_eq(lit(t)))
}

fn level_order(level: &str) -> usize {
    ["low", "medium", "high", "unknown"].iter().position(|l| *l == level).unwrap_or(4)
}

/// The curves, zones, satisfaction gaps and drivers. `active` is the one-row-per-customer
/// table at T with `competition_level`, `survey_overall` and `loyalty_col`.
pub fn satisfaction_curves(
    tables: &Tables,
    params: &FeatureParams,
    cp: &CurveParams,
    active: &DataFrame,
    loyalty_col: &str,
) -> Result<CurveTables, FeatureError> {
    let [lo_level, hi_level] = cp.satisfaction_scale;
    if hi_level <= lo_level {
        return Err(FeatureError::Config("satisfaction_scale must be [lowest, highest] with lowest < highest".into()));
    }
    let levels: Vec<i64> = (lo_level..=hi_level).collect();
    // observed: (level, satisfaction) -> (surveys, retained), summed over customer
    // partitions (each joins its customers' surveys to their churn dates); the aspect
    // scores of at most DRIVER_ROWS surveys (a uniform customer sample) for the drivers.
    let mut obs: std::collections::HashMap<(String, i64), (f64, f64)> = Default::default();
    let mut competition_levels: std::collections::BTreeSet<String> = Default::default();
    let mut drivers = DriverRows::default().frame()?;
    if tables.contains_key(&Table::Surveys) {
        let sample = driver_sample(tables, params)?;
        let (mut retained_rows, mut answered_rows): (Vec<DataFrame>, Vec<DataFrame>) = (Vec::new(), Vec::new());
        for slice in crate::customer_slices(tables, params)? {
            loyalty_contract::cancel::check()?;
            let part = crate::restricted(tables, slice);
            let Some(lf) = observed_surveys(&part, params)? else { continue };
            let df = collect_streaming(lf.clone().group_by([col(n::COMPETITION_LEVEL), col(c::OVERALL)]).agg([
                len().cast(DataType::Float64).alias("n"),
                col("__retained").sum().cast(DataType::Float64).alias("k"),
            ]))?;
            let lv = df.column(n::COMPETITION_LEVEL)?.cast(&DataType::String)?;
            let lv = lv.str()?;
            let sat = df.column(c::OVERALL)?.cast(&DataType::Int64)?;
            let (nn, kk) = (df.column("n")?.f64()?.clone(), df.column("k")?.f64()?.clone());
            for i in 0..df.height() {
                if let (Some(l), Some(s), Some(n_), Some(k)) = (lv.get(i), sat.i64()?.get(i), nn.get(i), kk.get(i)) {
                    competition_levels.insert(l.to_string());
                    let cell = obs.entry((l.to_string(), s)).or_insert((0.0, 0.0));
                    cell.0 += n_;
                    cell.1 += k;
                }
            }
            let pick = |lf: LazyFrame| match sample {
                Some(s) => lf.filter(s.predicate(c::CUSTOMER_ID)),
                None => lf,
            };
            retained_rows.push(aspect_rows(pick(lf), col("__retained"))?);
            answered_rows.push(aspect_rows(pick(all_surveys(&part, params.as_of)), col(c::OVERALL))?);
        }
        drivers = driver_table(&retained_rows, &answered_rows)?;
    }

    // modelled: active customers by their latest survey's level
    let active_cells = active
        .clone()
        .lazy()
        .filter(col(n::SURVEY_OVERALL).is_not_null())
        .group_by([col(n::COMPETITION_LEVEL), col(n::SURVEY_OVERALL).cast(DataType::Int64).alias("__sat")])
        .agg([len().cast(DataType::Float64).alias("customers"), col(loyalty_col).mean().alias("modelled")])
        .collect()?;
    let mut modelled: std::collections::HashMap<(String, i64), (f64, f64)> = Default::default();
    {
        let lv = active_cells.column(n::COMPETITION_LEVEL)?.cast(&DataType::String)?;
        let lv = lv.str()?;
        let sat = active_cells.column("__sat")?.i64()?.clone();
        let cu = active_cells.column("customers")?.f64()?.clone();
        let mo = active_cells.column("modelled")?.cast(&DataType::Float64)?;
        let mo = mo.f64()?;
        for i in 0..active_cells.height() {
            if let (Some(l), Some(s), Some(cn)) = (lv.get(i), sat.get(i), cu.get(i)) {
                competition_levels.insert(l.to_string());
                modelled.insert((l.to_string(), s), (cn, mo.get(i).unwrap_or(f64::NAN)));
            }
        }
    }
    let mut order: Vec<String> = competition_levels.into_iter().collect();
    order.sort_by_key(|l| level_order(l));

    let mut rows = CurveRows::default();
    let mut zone_rows = ZoneRows::default();
    let mut gap_rows = GapRows::default();
    for level in &order {
        let cell = |s: i64| obs.get(&(level.clone(), s)).copied().unwrap_or((0.0, 0.0));
        let surveys: Vec<f64> = levels.iter().map(|&s| cell(s).0).collect();
        let retained: Vec<f64> = levels.iter().map(|&s| cell(s).1).collect();
        let rate: Vec<f64> =
            surveys.iter().zip(&retained).map(|(n_, k)| if *n_ > 0.0 { k / n_ } else { f64::NAN }).collect();
        let fit = isotonic(&rate, &surveys);
        let zone = zones(&fit, &surveys, cp);
        let customers: Vec<f64> =
            levels.iter().map(|&s| modelled.get(&(level.clone(), s)).map_or(0.0, |m| m.0)).collect();
        let level_customers: f64 = customers.iter().sum();
        for (i, &s) in levels.iter().enumerate() {
            let (lo, hi) = wilson(retained[i], surveys[i], Z95);
            rows.level.push(level.clone());
            rows.satisfaction.push(s);
            rows.customers.push(customers[i] as u64);
            rows.share.push(if level_customers > 0.0 { customers[i] / level_customers } else { f64::NAN });
            rows.surveys.push(surveys[i] as u64);
            rows.retained.push(retained[i] as u64);
            rows.observed.push(rate[i]);
            rows.ci_low.push(lo);
            rows.ci_high.push(hi);
            rows.modelled.push(modelled.get(&(level.clone(), s)).map_or(f64::NAN, |m| m.1));
            rows.isotonic.push(fit[i]);
            rows.zone.push(zone[i]);
            rows.too_few.push((surveys[i] as u64) < cp.min_cell_surveys);
        }
        for z in ["defection", "indifference", "affection"] {
            let idx: Vec<usize> = (0..levels.len()).filter(|&i| zone[i] == z).collect();
            let (Some(&a), Some(&b)) = (idx.first(), idx.last()) else { continue };
            let cust: f64 = idx.iter().map(|&i| customers[i]).sum();
            zone_rows.level.push(level.clone());
            zone_rows.zone.push(z);
            zone_rows.from.push(levels[a]);
            zone_rows.to.push(levels[b]);
            zone_rows.customers.push(cust as u64);
            zone_rows.share.push(if level_customers > 0.0 { cust / level_customers } else { f64::NAN });
        }
        // satisfied (second-highest level) vs completely satisfied (highest)
        let (n4, k4) = cell(hi_level - 1);
        let (n5, k5) = cell(hi_level);
        let (ratio, lo, hi) = churn_ratio(n4 - k4, n4, n5 - k5, n5);
        gap_rows.level.push(level.clone());
        gap_rows.churn4.push(if n4 > 0.0 { (n4 - k4) / n4 } else { f64::NAN });
        gap_rows.churn5.push(if n5 > 0.0 { (n5 - k5) / n5 } else { f64::NAN });
        gap_rows.ratio.push(ratio);
        gap_rows.lo.push(lo);
        gap_rows.hi.push(hi);
        gap_rows.too_few.push((n4 as u64) < cp.min_cell_surveys || (n5 as u64) < cp.min_cell_surveys);
    }
    Ok(CurveTables { curves: rows.frame()?, zones: zone_rows.frame()?, gaps: gap_rows.frame()?, drivers })
}

/// Ratio of two churn rates a/n1 over b/n2 with a Katz log interval (0.5 added to
/// every count when one is zero).
pub fn churn_ratio(a: f64, n1: f64, b: f64, n2: f64) -> (f64, f64, f64) {
    if n1 <= 0.0 || n2 <= 0.0 {
        return (f64::NAN, f64::NAN, f64::NAN);
    }
    let (a, n1, b, n2) = if a == 0.0 || b == 0.0 { (a + 0.5, n1 + 0.5, b + 0.5, n2 + 0.5) } else { (a, n1, b, n2) };
    let ratio = (a / n1) / (b / n2);
    let se = (1.0 / a - 1.0 / n1 + 1.0 / b - 1.0 / n2).max(0.0).sqrt();
    (ratio, ratio * (-Z95 * se).exp(), ratio * (Z95 * se).exp())
}

/// The regressions behind the drivers table use at most this many surveys each.
const DRIVER_ROWS: u64 = 1_000_000;

/// A uniform customer sample keeping about DRIVER_ROWS of the surveys answered by T
/// (None: all of them).
fn driver_sample(tables: &Tables, params: &FeatureParams) -> PolarsResult<Option<Slice>> {
    let n = collect_streaming(all_surveys(tables, params.as_of).select([len().cast(DataType::UInt64).alias("n")]))?;
    let n = n.column("n")?.u64()?.get(0).unwrap_or(0);
    Ok((n > DRIVER_ROWS).then(|| Slice::Sample { fraction: DRIVER_ROWS as f64 / n as f64 }))
}

/// The six aspect scores and `y` of each survey of `lf`, as Float64.
fn aspect_rows(lf: LazyFrame, y: Expr) -> PolarsResult<DataFrame> {
    let mut sel: Vec<Expr> = c::ASPECTS.iter().map(|a| col(*a).cast(DataType::Float64)).collect();
    sel.push(y.cast(DataType::Float64).alias("__y"));
    collect_streaming(lf.select(sel))
}

/// The rows sorted by their values: the streaming engine returns them in an order
/// that varies from run to run, and the fits' float sums follow the row order, so
/// the same surveys give the same coefficients to the last bit only in a fixed order.
fn canonical_order(x: Vec<Vec<f64>>, y: Vec<f64>) -> (Vec<Vec<f64>>, Vec<f64>) {
    let mut order: Vec<usize> = (0..y.len()).collect();
    order.sort_by(|&a, &b| {
        x.iter().map(|col| col[a].total_cmp(&col[b])).find(|o| o.is_ne()).unwrap_or(y[a].total_cmp(&y[b]))
    });
    (x.iter().map(|col| order.iter().map(|&i| col[i]).collect()).collect(), order.iter().map(|&i| y[i]).collect())
}

/// What moves loyalty, per aspect, on standardised scores (per standard deviation,
/// holding the other aspects fixed), with 95% intervals:
/// - on retention: logistic regression of "still a customer h months after the survey"
///   (observable surveys; a missing aspect is imputed with its mean);
/// - on the overall satisfaction score: least squares over every survey up to T with
///   all six aspects answered (the first link of satisfaction -> loyalty, with far more
///   data behind it).
fn driver_table(retained: &[DataFrame], answered: &[DataFrame]) -> PolarsResult<DataFrame> {
    let to_vecs = |parts: &[DataFrame]| -> PolarsResult<(Vec<Vec<f64>>, Vec<f64>)> {
        let v = |name: &str| -> PolarsResult<Vec<f64>> {
            let mut out = Vec::new();
            for df in parts {
                out.extend(df.column(name)?.f64()?.iter().map(|v| v.unwrap_or(f64::NAN)));
            }
            Ok(out)
        };
        let (x, y): (Vec<Vec<f64>>, Vec<f64>) =
            (c::ASPECTS.iter().map(|a| v(a)).collect::<PolarsResult<_>>()?, v("__y")?);
        Ok(canonical_order(x, y))
    };
    let (ret_x, ret_y) = to_vecs(retained)?;
    let (sat_x, sat_y) = to_vecs(answered)?;
    let retention = (ret_y.len() >= 50)
        .then(|| Design::new(c::ASPECTS.iter().map(|a| a.to_string()).collect(), ret_x).ok())
        .flatten()
        .map(|d| {
            let m = Logistic::fit(&d, &ret_y, 0.0);
            let se = m.std_errors(&d);
            (m.coef, se, ret_y.len())
        });
    let satisfaction = loyalty_models::churn::ols_standardised(&sat_x, &sat_y);
    let mut rows = DriverRows::default();
    if retention.is_none() && satisfaction.is_none() {
        return rows.frame();
    }
    let nan = vec![f64::NAN; c::ASPECTS.len()];
    let (rb, rse, rn) = retention.unwrap_or((nan.clone(), nan.clone(), 0));
    let (sb, sse, sn) = satisfaction.unwrap_or((nan.clone(), nan, 0));
    for (j, a) in c::ASPECTS.iter().enumerate() {
        rows.aspect.push(a.to_string());
        rows.ret.push([rb[j], rse[j], rb[j] - Z95 * rse[j], rb[j] + Z95 * rse[j]]);
        rows.sat.push([sb[j], sse[j], sb[j] - Z95 * sse[j], sb[j] + Z95 * sse[j]]);
        rows.ret_n.push(rn as u64);
        rows.sat_n.push(sn as u64);
    }
    rows.frame()?.sort(
        ["retention_effect_per_sd"],
        SortMultipleOptions::default().with_order_descending(true).with_nulls_last(true),
    )
}

#[derive(Default)]
struct CurveRows {
    level: Vec<String>,
    satisfaction: Vec<i64>,
    customers: Vec<u64>,
    share: Vec<f64>,
    surveys: Vec<u64>,
    retained: Vec<u64>,
    observed: Vec<f64>,
    ci_low: Vec<f64>,
    ci_high: Vec<f64>,
    modelled: Vec<f64>,
    isotonic: Vec<f64>,
    zone: Vec<&'static str>,
    too_few: Vec<bool>,
}

fn nan_to_null(name: &str, v: Vec<f64>) -> Column {
    Column::new(name.into(), v.into_iter().map(|x| x.is_finite().then_some(x)).collect::<Vec<Option<f64>>>())
}

impl CurveRows {
    fn frame(self) -> PolarsResult<DataFrame> {
        DataFrame::new_infer_height(vec![
            Column::new(n::COMPETITION_LEVEL.into(), self.level),
            Column::new("satisfaction".into(), self.satisfaction),
            Column::new("customers".into(), self.customers),
            nan_to_null("share_of_level", self.share),
            Column::new("surveys".into(), self.surveys),
            Column::new("retained".into(), self.retained),
            nan_to_null("observed_loyalty", self.observed),
            nan_to_null("ci_low", self.ci_low),
            nan_to_null("ci_high", self.ci_high),
            nan_to_null("modelled_loyalty", self.modelled),
            nan_to_null("isotonic_loyalty", self.isotonic),
            Column::new("zone".into(), self.zone),
            Column::new("too_few".into(), self.too_few),
        ])
    }
}

#[derive(Default)]
struct ZoneRows {
    level: Vec<String>,
    zone: Vec<&'static str>,
    from: Vec<i64>,
    to: Vec<i64>,
    customers: Vec<u64>,
    share: Vec<f64>,
}

impl ZoneRows {
    fn frame(self) -> PolarsResult<DataFrame> {
        DataFrame::new_infer_height(vec![
            Column::new(n::COMPETITION_LEVEL.into(), self.level),
            Column::new("zone".into(), self.zone),
            Column::new("satisfaction_from".into(), self.from),
            Column::new("satisfaction_to".into(), self.to),
            Column::new("customers".into(), self.customers),
            nan_to_null("share", self.share),
        ])
    }
}

#[derive(Default)]
struct GapRows {
    level: Vec<String>,
    churn4: Vec<f64>,
    churn5: Vec<f64>,
    ratio: Vec<f64>,
    lo: Vec<f64>,
    hi: Vec<f64>,
    too_few: Vec<bool>,
}

impl GapRows {
    fn frame(self) -> PolarsResult<DataFrame> {
        DataFrame::new_infer_height(vec![
            Column::new(n::COMPETITION_LEVEL.into(), self.level),
            nan_to_null("churn_satisfied", self.churn4),
            nan_to_null("churn_completely_satisfied", self.churn5),
            nan_to_null("churn_ratio", self.ratio),
            nan_to_null("ci_low", self.lo),
            nan_to_null("ci_high", self.hi),
            Column::new("too_few".into(), self.too_few),
        ])
    }
}

#[derive(Default)]
struct DriverRows {
    aspect: Vec<String>,
    /// effect, se, ci_low, ci_high
    ret: Vec<[f64; 4]>,
    sat: Vec<[f64; 4]>,
    ret_n: Vec<u64>,
    sat_n: Vec<u64>,
}

impl DriverRows {
    fn frame(self) -> PolarsResult<DataFrame> {
        let pick = |v: &[[f64; 4]], k: usize| v.iter().map(|r| r[k]).collect::<Vec<f64>>();
        let mut cols = vec![Column::new("aspect".into(), self.aspect)];
        for (prefix, v) in [("retention", &self.ret), ("satisfaction", &self.sat)] {
            cols.push(nan_to_null(&format!("{prefix}_effect_per_sd"), pick(v, 0)));
            cols.push(nan_to_null(&format!("{prefix}_std_error"), pick(v, 1)));
            cols.push(nan_to_null(&format!("{prefix}_ci_low"), pick(v, 2)));
            cols.push(nan_to_null(&format!("{prefix}_ci_high"), pick(v, 3)));
        }
        cols.push(nan_to_null("retention_odds_ratio_per_sd", pick(&self.ret, 0).into_iter().map(f64::exp).collect()));
        cols.push(Column::new("retention_surveys".into(), self.ret_n));
        cols.push(Column::new("satisfaction_surveys".into(), self.sat_n));
        DataFrame::new_infer_height(cols)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wilson_by_hand() {
        // 8 of 10, z = 1.96: centre (0.8 + 0.19208)/1.38416 = 0.71680,
        // half 1.96*sqrt(0.016 + 0.0096040)/1.38416 = 0.22656.
        let (lo, hi) = wilson(8.0, 10.0, 1.96);
        assert!((lo - 0.490_16).abs() < 1e-4, "{lo}");
        assert!((hi - 0.943_36).abs() < 1e-4, "{hi}");
        // never outside [0, 1], even at 0 of n
        let (lo, hi) = wilson(0.0, 5.0, 1.96);
        assert_eq!(lo, 0.0);
        assert!(hi > 0.0 && hi < 0.5);
    }

    #[test]
    fn isotonic_pools_violators() {
        // (0.5, 0.3) pool with weights (1, 3): (0.5 + 0.9)/4 = 0.35
        let fit = isotonic(&[0.2, 0.5, 0.3, 0.9], &[1.0, 1.0, 3.0, 1.0]);
        let want = [0.2, 0.35, 0.35, 0.9];
        for (a, b) in fit.iter().zip(want) {
            assert!((a - b).abs() < 1e-12, "{fit:?}");
        }
        // a missing cell takes its lower neighbour's block
        let fit = isotonic(&[0.4, f64::NAN, 0.6], &[1.0, 0.0, 1.0]);
        assert_eq!(fit, vec![0.4, 0.4, 0.6]);
        let monotone = isotonic(&[0.9, 0.8, 0.7, 0.6], &[1.0; 4]);
        assert!(monotone.iter().all(|v| (v - 0.75).abs() < 1e-12));
    }

    #[test]
    fn zones_from_a_fitted_curve() {
        let p = CurveParams::default();
        // contested market: flat 1..4, then a jump
        let z = zones(&[0.60, 0.62, 0.64, 0.66, 0.95], &[1.0, 2.0, 5.0, 5.0, 3.0], &p);
        assert_eq!(z, ["indifference", "indifference", "indifference", "indifference", "affection"]);
        // the classic picture: a jump out of defection, a plateau, a jump into affection
        let z = zones(&[0.30, 0.70, 0.72, 0.74, 0.95], &[1.0, 2.0, 5.0, 5.0, 3.0], &p);
        assert_eq!(z, ["defection", "indifference", "indifference", "indifference", "affection"]);
        // near-monopoly: no rise worth the name
        let z = zones(&[0.95, 0.95, 0.96, 0.96, 0.97], &[1.0; 5], &p);
        assert!(z.iter().all(|z| *z == "indifference"));
    }

    #[test]
    fn churn_ratio_by_hand() {
        // 30/100 vs 10/100: ratio 3, se sqrt(1/30 - 1/100 + 1/10 - 1/100) = 0.33665
        let (r, lo, hi) = churn_ratio(30.0, 100.0, 10.0, 100.0);
        assert!((r - 3.0).abs() < 1e-12);
        assert!((lo - 3.0 * (-1.959_964 * 0.336_650_f64).exp()).abs() < 1e-4);
        assert!((hi - 3.0 * (1.959_964 * 0.336_650_f64).exp()).abs() < 1e-4);
    }
}
