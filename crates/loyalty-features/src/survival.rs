//! Survival curves for CLV: a discrete-time Kaplan-Meier estimate per cohort
//! (plan_type x contract_months x competition_level) over tenure months, with left
//! truncation (customers who joined before the data are at risk only from the first
//! billed month on). Thin cells borrow the plan-level hazard, then the overall one;
//! tenures past the data use the mean hazard of the last 12 observed months.
//!
//! [`SurvivalModel`] is the interface CLV uses; the churn-model issue plugs better
//! models in behind it.

use std::collections::BTreeMap;

use chrono::{Months, NaiveDate};
use loyalty_contract::col as c;
use loyalty_contract::labels::strs;
use loyalty_contract::{Table, collect_streaming};
use polars::prelude::*;
use rayon::prelude::*;

use crate::names as n;
use crate::per_customer::{months_between, months_until};
use crate::{FeatureError, FeatureParams, Tables};

/// Per-customer survival, as CLV needs it.
pub trait SurvivalModel {
    /// For each row of `features`, P(still a customer `months` after T).
    fn survival_at(&self, features: &DataFrame, months: u32) -> PolarsResult<Vec<f64>>;
    /// For each row, sum_{t=1..n} S(t) / (1+d)^t.
    fn discounted_survival(&self, features: &DataFrame, d: f64, n: u32) -> PolarsResult<Vec<f64>>;
    /// Both, [`Self::discounted_survival`] and [`Self::survival_at`] `months`, from one
    /// reading of the rows.
    fn discounted_and_at(&self, features: &DataFrame, d: f64, n: u32, months: u32) -> PolarsResult<[Vec<f64>; 2]>;
}

/// Survival from a churn model's scores: a customer with P(churn within h months) = p
/// keeps a constant monthly hazard, S(t) = (1 - p)^(t/h). Customers without a score
/// (new since the model ran, or not scored) fall back to the Kaplan-Meier curves.
pub struct ChurnScores<'a> {
    pub horizon_months: u32,
    pub p_churn: ChurnProbabilities<'a>,
    pub fallback: &'a SurvivalCurves,
}

/// Each customer's P(churn within the horizon).
pub enum ChurnProbabilities<'a> {
    /// By customer_id.
    ById(&'a std::collections::HashMap<i64, f64>),
    /// One per row of the table the survival is computed for, in its order (null: not
    /// scored). What a run has when it scored that table: at 10M customers a map
    /// built and looked up per row took about 3 s.
    InRowOrder(&'a Float64Chunked),
}

impl ChurnScores<'_> {
    /// `f` of each row's score, and for the rows without one `fallback` of those rows
    /// (the Kaplan-Meier value of a row depends on its own cohort and tenure only, so
    /// it is computed for the rows that need it: at 10M customers, for every row, it
    /// took most of the time CLV through the scores took).
    fn per_row<const K: usize>(
        &self,
        features: &DataFrame,
        fallback: impl Fn(&DataFrame) -> PolarsResult<[Vec<f64>; K]>,
        f: impl Fn(f64) -> [f64; K] + Sync,
    ) -> PolarsResult<[Vec<f64>; K]> {
        let scores: Vec<Option<f64>> = match self.p_churn {
            ChurnProbabilities::ById(map) => {
                let ids = features.column(c::CUSTOMER_ID)?.i64()?;
                ids.iter().map(|id| id.and_then(|id| map.get(&id).copied())).collect()
            }
            ChurnProbabilities::InRowOrder(p) if p.len() == features.height() => p.iter().collect(),
            ChurnProbabilities::InRowOrder(p) => {
                polars_bail!(ComputeError: "{} churn scores for {} customers", p.len(), features.height())
            }
        };
        let unscored: BooleanChunked = scores.iter().map(Option::is_none).collect();
        let kaplan_meier =
            if unscored.any() { fallback(&features.filter(&unscored)?)? } else { std::array::from_fn(|_| Vec::new()) };
        // The scored rows' values side by side, a block of rows at a time (a power and
        // a product a month for each: 0.47 s at 10M customers on one thread); the
        // unscored rows' then, in order.
        const BLOCK: usize = 1 << 16;
        let mut out: [Vec<f64>; K] = std::array::from_fn(|_| vec![0.0; scores.len()]);
        let mut columns: Vec<_> = out.iter_mut().map(|column| column.chunks_mut(BLOCK)).collect();
        let blocks: Vec<Vec<&mut [f64]>> =
            scores.chunks(BLOCK).map(|_| columns.iter_mut().filter_map(Iterator::next).collect()).collect();
        blocks.into_par_iter().zip(scores.par_chunks(BLOCK)).for_each(|(mut block, ps)| {
            for (i, p) in ps.iter().enumerate() {
                if let Some(p) = p {
                    for (column, value) in block.iter_mut().zip(f(p.clamp(0.0, 1.0))) {
                        column[i] = value;
                    }
                }
            }
        });
        let mut kaplan_meier = kaplan_meier.map(Vec::into_iter);
        for (i, _) in scores.iter().enumerate().filter(|(_, p)| p.is_none()) {
            for (column, fallback) in out.iter_mut().zip(&mut kaplan_meier) {
                column[i] = fallback.next().ok_or_else(|| polars_err!(ComputeError: "a row without its survival"))?;
            }
        }
        Ok(out)
    }

    /// S(`months`) of a customer with score `p`.
    fn at(&self, p: f64, months: u32) -> f64 {
        (1.0 - p).powf(f64::from(months) / f64::from(self.horizon_months.max(1)))
    }

    /// sum_{t=1..n} S(t) / (1+d)^t of a customer with score `p`.
    fn discounted(&self, p: f64, d: f64, n: u32) -> f64 {
        discounted_geometric((1.0 - p).powf(1.0 / f64::from(self.horizon_months.max(1))) / (1.0 + d), n)
    }
}

impl SurvivalModel for ChurnScores<'_> {
    fn survival_at(&self, features: &DataFrame, months: u32) -> PolarsResult<Vec<f64>> {
        let fallback = |rows: &DataFrame| Ok([self.fallback.survival_at(rows, months)?]);
        let [values] = self.per_row(features, fallback, |p| [self.at(p, months)])?;
        Ok(values)
    }

    fn discounted_survival(&self, features: &DataFrame, d: f64, n: u32) -> PolarsResult<Vec<f64>> {
        let fallback = |rows: &DataFrame| Ok([self.fallback.discounted_survival(rows, d, n)?]);
        let [values] = self.per_row(features, fallback, |p| [self.discounted(p, d, n)])?;
        Ok(values)
    }

    /// The scores read and the unscored rows' curves grouped once for both.
    fn discounted_and_at(&self, features: &DataFrame, d: f64, n: u32, months: u32) -> PolarsResult<[Vec<f64>; 2]> {
        let fallback = |rows: &DataFrame| self.fallback.discounted_and_at(rows, d, n, months);
        self.per_row(features, fallback, |p| [self.discounted(p, d, n), self.at(p, months)])
    }
}

/// The sum of r^t for t = 1..=n, by products: the discounted survival of a constant
/// monthly retention (one `powf` per customer, not one per month: at 10M customers
/// and 60 months the powers took 9 s).
fn discounted_geometric(r: f64, n: u32) -> f64 {
    let (mut term, mut sum) = (1.0, 0.0);
    for _ in 0..n {
        term *= r;
        sum += term;
    }
    sum
}

/// Cells with fewer customers at risk than this borrow a coarser hazard.
pub const MIN_AT_RISK: f64 = 30.0;

#[derive(Debug, Clone, Default)]
pub struct Hazard {
    pub at_risk: Vec<f64>,
    pub events: Vec<f64>,
}

/// A [`Hazard`] as customers are added: each risk interval counted at its two ends
/// (a difference array), the months between filled in once by [`Self::hazard`]. One
/// step per customer instead of one per month at risk; the counts are whole numbers,
/// so they come out as the month-by-month sums did, to the bit.
#[derive(Debug, Clone, Default)]
struct HazardCounts {
    /// Intervals starting at k minus those that ended at k - 1.
    delta: Vec<i64>,
    events: Vec<f64>,
}

impl HazardCounts {
    fn add(&mut self, entry: usize, exit: usize, event: bool) {
        self.add_many(entry, exit, event, 1);
    }

    /// `customers` customers with the same interval and event.
    fn add_many(&mut self, entry: usize, exit: usize, event: bool, customers: i64) {
        if self.events.len() <= exit {
            self.delta.resize(exit + 2, 0);
            self.events.resize(exit + 1, 0.0);
        }
        self.delta[entry] += customers;
        self.delta[exit + 1] -= customers;
        if event {
            // Whole numbers below 2^53: the sum is exact in any order.
            self.events[exit] += customers as f64;
        }
    }

    /// `other`'s counts added to these.
    fn absorb(&mut self, other: &HazardCounts) {
        if self.events.len() < other.events.len() {
            self.delta.resize(other.delta.len(), 0);
            self.events.resize(other.events.len(), 0.0);
        }
        self.delta.iter_mut().zip(&other.delta).for_each(|(a, b)| *a += b);
        self.events.iter_mut().zip(&other.events).for_each(|(a, b)| *a += b);
    }

    fn hazard(self) -> Hazard {
        let mut at = 0;
        let at_risk = self.delta[..self.events.len()]
            .iter()
            .map(|d| {
                at += d;
                at as f64
            })
            .collect();
        Hazard { at_risk, events: self.events }
    }
}

impl Hazard {
    fn rate(&self, k: usize) -> Option<f64> {
        match (self.at_risk.get(k), self.events.get(k)) {
            (Some(&r), Some(&e)) if r >= MIN_AT_RISK => Some(e / r),
            _ => None,
        }
    }

    /// Kaplan-Meier rows from tenure 0: (tenure, at risk, events, hazard, survival);
    /// a tenure nobody was at risk at has hazard 0.
    fn km_rows(&self) -> impl Iterator<Item = (usize, f64, f64, f64, f64)> + '_ {
        let mut s = 1.0;
        (0..self.at_risk.len()).map(move |k| {
            let r = if self.at_risk[k] > 0.0 { self.events[k] / self.at_risk[k] } else { 0.0 };
            s *= 1.0 - r;
            (k, self.at_risk[k], self.events[k], r, s)
        })
    }

    /// Mean hazard over the last 12 tenure months with enough customers at risk.
    fn tail_rate(&self) -> Option<f64> {
        let rates: Vec<f64> = (0..self.at_risk.len()).rev().filter_map(|k| self.rate(k)).take(12).collect();
        (!rates.is_empty()).then(|| rates.iter().sum::<f64>() / rates.len() as f64)
    }
}

pub type CohortKey = (String, i64, String);

/// Kaplan-Meier hazards by cohort, by plan, and overall.
#[derive(Debug, Clone, Default)]
pub struct SurvivalCurves {
    pub cohorts: BTreeMap<CohortKey, Hazard>,
    pub plans: BTreeMap<String, Hazard>,
    pub overall: Hazard,
}

impl SurvivalCurves {
    /// The monthly hazard at tenure month k for a cohort, with fallbacks.
    pub fn hazard(&self, key: &CohortKey, k: usize) -> f64 {
        let cohort = self.cohorts.get(key);
        let plan = self.plans.get(&key.0);
        cohort
            .and_then(|h| h.rate(k))
            .or_else(|| plan.and_then(|h| h.rate(k)))
            .or_else(|| self.overall.rate(k))
            .or_else(|| cohort.and_then(Hazard::tail_rate))
            .or_else(|| plan.and_then(Hazard::tail_rate))
            .or_else(|| self.overall.tail_rate())
            .unwrap_or(0.0)
    }

    /// S(t) for t = 1..=n for a customer of `key` at tenure `tenure`.
    pub fn curve(&self, key: &CohortKey, tenure: usize, n: u32) -> Vec<f64> {
        let mut s = 1.0;
        (0..n as usize)
            .map(|j| {
                s *= 1.0 - self.hazard(key, tenure + j);
                s
            })
            .collect()
    }

    /// The curves as a table: cohort, tenure month, at risk, events, hazard, survival.
    pub fn table(&self) -> PolarsResult<DataFrame> {
        let (mut plan, mut contract, mut level, mut k, mut risk, mut ev, mut haz, mut surv) =
            (vec![], vec![], vec![], vec![], vec![], vec![], vec![], vec![]);
        for ((p, cm, l), h) in &self.cohorts {
            for (i, at_risk, events, r, s) in h.km_rows() {
                plan.push(p.clone());
                contract.push(*cm);
                level.push(l.clone());
                k.push(i as i64);
                risk.push(at_risk);
                ev.push(events);
                haz.push(r);
                surv.push(s);
            }
        }
        df!(
            c::PLAN_TYPE => plan,
            c::CONTRACT_MONTHS => contract,
            n::COMPETITION_LEVEL => level,
            n::TENURE_MONTHS => k,
            "at_risk" => risk,
            "events" => ev,
            "hazard" => haz,
            "survival" => surv,
        )
    }

    /// Evaluate `f(cohort, tenure)` (K values) once per distinct (cohort, tenure) of
    /// `features`, in row order: each row is numbered by its group as it is read, and
    /// takes its group's values (a join of the distinct keys back onto the rows and a
    /// sort into row order took 1 s at 10M customers; a polars group-by on the four
    /// keys and a scatter of each group's rows took a fifth longer than this at 3M).
    fn per_row<const K: usize>(
        &self,
        features: &DataFrame,
        f: impl Fn(&CohortKey, usize) -> [f64; K],
    ) -> PolarsResult<[Vec<f64>; K]> {
        let contract = features.column(c::CONTRACT_MONTHS)?.cast(&DataType::Int64)?;
        let tenure = features.column(n::TENURE_MONTHS)?.cast(&DataType::Int64)?;
        let plan = strs(features.column(c::PLAN_TYPE)?)?;
        let level = strs(features.column(n::COMPETITION_LEVEL)?)?;
        let (contract, tenure) = (contract.i64()?, tenure.i64()?);
        let mut numbers: PlHashMap<(&str, i64, &str, i64), u32> = PlHashMap::new();
        let mut groups: Vec<(&str, i64, &str, i64)> = Vec::new();
        let keys = plan.zip(contract.iter()).zip(level).zip(tenure.iter());
        let group_of: Vec<u32> = keys
            .map(|(((p, ct), lv), tn)| {
                let key = (p.unwrap_or(""), ct.unwrap_or(0), lv.unwrap_or("unknown"), tn.unwrap_or(0).max(0));
                *numbers.entry(key).or_insert_with(|| {
                    groups.push(key);
                    (groups.len() - 1) as u32
                })
            })
            .collect();
        let group_values: Vec<[f64; K]> =
            groups.iter().map(|&(p, ct, lv, tn)| f(&(p.to_string(), ct, lv.to_string()), tn as usize)).collect();
        Ok(std::array::from_fn(|k| group_of.iter().map(|&g| group_values[g as usize][k]).collect()))
    }
}

impl SurvivalCurves {
    /// S(`months`) on the curve of a cohort from a tenure.
    fn at(&self, key: &CohortKey, tenure: usize, months: u32) -> f64 {
        *self.curve(key, tenure, months).last().unwrap_or(&1.0)
    }

    /// sum_{t=1..n} S(t) / (1+d)^t on the curve of a cohort from a tenure.
    fn discounted(&self, key: &CohortKey, tenure: usize, d: f64, n: u32) -> f64 {
        self.curve(key, tenure, n).iter().enumerate().map(|(j, s)| s / (1.0 + d).powi(j as i32 + 1)).sum()
    }
}

impl SurvivalModel for SurvivalCurves {
    fn survival_at(&self, features: &DataFrame, months: u32) -> PolarsResult<Vec<f64>> {
        let [values] = self.per_row(features, |key, tenure| [self.at(key, tenure, months)])?;
        Ok(values)
    }

    fn discounted_survival(&self, features: &DataFrame, d: f64, n: u32) -> PolarsResult<Vec<f64>> {
        let [values] = self.per_row(features, |key, tenure| [self.discounted(key, tenure, d, n)])?;
        Ok(values)
    }

    /// One grouping of the rows for both (each took 0.5 s at 10M customers).
    fn discounted_and_at(&self, features: &DataFrame, d: f64, n: u32, months: u32) -> PolarsResult<[Vec<f64>; 2]> {
        self.per_row(features, |key, tenure| [self.discounted(key, tenure, d, n), self.at(key, tenure, months)])
    }
}

/// The customers known at T with their left-truncated risk interval in tenure months
/// (`entry`: tenure when the data begins, `exit`: at churn or T) and `event`, plus the
/// grouping columns (plan, contract, competition level, market). The data begins at
/// the first bill month of `tables`: `first_bill` when the caller knows it (a scan
/// of every bill otherwise).
fn risk_set(tables: &Tables, params: &FeatureParams, first_bill: Option<NaiveDate>) -> Result<DataFrame, FeatureError> {
    Ok(collect_streaming(risk_rows(tables, params, first_bill, true)?)?)
}

/// [`risk_set`], with the competition level (a join of the markets onto every
/// customer) only when `with_level`.
fn risk_rows(
    tables: &Tables,
    params: &FeatureParams,
    first_bill: Option<NaiveDate>,
    with_level: bool,
) -> Result<LazyFrame, FeatureError> {
    let t = params.as_of;
    let first_bill = match first_bill {
        Some(month) => Some(crate::epoch_days(month)),
        None => {
            let first =
                collect_streaming(tables[&Table::Billing].clone().select([col(c::BILL_MONTH).min().alias("first")]))?;
            first.column("first")?.cast(&DataType::Date)?.date()?.physical().get(0)
        }
    };
    let data_start = match first_bill.and_then(loyalty_contract::dates::from_epoch_days) {
        Some(month) => month,
        None => t.checked_sub_months(Months::new(1)).unwrap_or(t),
    };
    let mut customers = tables[&Table::Customers].clone().filter(col(c::SIGNUP_DATE).lt_eq(lit(t)));
    if with_level {
        customers = crate::per_customer::with_competition(customers, tables, params);
    }
    let event = col(c::CHURN_DATE).is_not_null().and(col(c::CHURN_DATE).lt_eq(lit(t)));
    let end = when(event.clone()).then(col(c::CHURN_DATE)).otherwise(lit(t));
    let mut columns = vec![
        col(c::PLAN_TYPE),
        col(c::CONTRACT_MONTHS).fill_null(lit(0)).alias(c::CONTRACT_MONTHS),
        months_until(col(c::SIGNUP_DATE), data_start).clip_min(lit(0)).alias("entry"),
        months_between(col(c::SIGNUP_DATE), end).clip_min(lit(0)).alias("exit"),
        event.alias("event"),
        col(c::MARKET_ID),
    ];
    if with_level {
        columns.push(col(n::COMPETITION_LEVEL));
    }
    Ok(customers.select(columns))
}

/// Each market's competition level, as [`crate::per_customer::with_competition`] gives
/// it to the market's customers; a customer whose market is not here (or null) has
/// the level `unknown`.
fn market_levels(tables: &Tables, params: &FeatureParams) -> Result<PlHashMap<String, String>, FeatureError> {
    let Some(markets) = tables.get(&Table::Markets) else { return Ok(PlHashMap::new()) };
    let ids = markets.clone().select([col(c::MARKET_ID)]);
    let df = collect_streaming(
        crate::per_customer::with_competition(ids, tables, params)
            .select([col(c::MARKET_ID), col(n::COMPETITION_LEVEL)]),
    )?;
    let level = df.column(n::COMPETITION_LEVEL)?.cast(&DataType::String)?;
    let (market, level) = (df.column(c::MARKET_ID)?.str()?, level.str()?);
    Ok(market
        .iter()
        .zip(level.iter())
        .filter_map(|(m, l)| Some((m?.to_string(), l.unwrap_or("unknown").to_string())))
        .collect())
}

/// Fit the Kaplan-Meier hazards on the customers known at T; `first_bill`: the first
/// bill month of `tables` when the caller knows it (None: found by a scan).
pub fn fit_kaplan_meier(
    tables: &Tables,
    params: &FeatureParams,
    first_bill: Option<NaiveDate>,
) -> Result<SurvivalCurves, FeatureError> {
    // Customers of the same plan, contract, market, interval and event counted in a
    // streamed group-by: the rows themselves (0.5 GB at 10M customers) are never held.
    let keys = [c::PLAN_TYPE, c::CONTRACT_MONTHS, c::MARKET_ID, "entry", "exit", "event"];
    let df = collect_streaming(
        risk_rows(tables, params, first_bill, false)?
            .group_by(keys.map(col))
            .agg([len().cast(DataType::Int64).alias("customers")]),
    )?;
    let customers = df.column("customers")?.i64()?;
    let levels = market_levels(tables, params)?;
    let plan = df.column(c::PLAN_TYPE)?.str()?;
    let contract = df.column(c::CONTRACT_MONTHS)?.cast(&DataType::Int64)?;
    let contract = contract.i64()?;
    let market = df.column(c::MARKET_ID)?.cast(&DataType::String)?;
    let market = market.str()?;
    let entry = df.column("entry")?.cast(&DataType::Int64)?;
    let entry = entry.i64()?;
    let exit = df.column("exit")?.cast(&DataType::Int64)?;
    let exit = exit.i64()?;
    let ev = df.column("event")?.bool()?;
    // The rows are read in sequence and counted by the text they borrow: a row lookup
    // by index and two strings per customer took 14 s at 10M customers. Counted in
    // hash maps (the counts are whole numbers: the order they come in does not
    // matter) and kept sorted. Counted by market, whose level the markets give: a
    // cohort's counts are its markets' summed, a plan's its cohorts' and the overall
    // ones every cohort's, where the markets were joined onto every customer for the
    // level and three maps were updated a row.
    let mut by_market: PlHashMap<(&str, i64, Option<&str>), HazardCounts> = PlHashMap::new();
    let keys = plan.iter().zip(contract.iter()).zip(market.iter());
    let spans = entry.iter().zip(exit.iter()).zip(ev.iter()).zip(customers.iter());
    for (((p, ct), m), (((en, ex), e), k)) in keys.zip(spans) {
        let (Some(en), Some(ex)) = (en, ex) else { continue };
        if ex < en {
            continue; // left before the data began: not in the risk set
        }
        // Tenure is capped at 30 years to bound the arrays.
        let (en, ex) = (en.min(360) as usize, ex.min(360) as usize);
        let cell = by_market.entry((p.unwrap_or(""), ct.unwrap_or(0), m)).or_default();
        cell.add_many(en, ex, e.unwrap_or(false), k.unwrap_or(0));
    }
    let mut cohorts: PlHashMap<(&str, i64, &str), HazardCounts> = PlHashMap::new();
    for (&(p, ct, m), counts) in &by_market {
        let level = m.and_then(|m| levels.get(m)).map_or("unknown", String::as_str);
        cohorts.entry((p, ct, level)).or_default().absorb(counts);
    }
    let mut plans: PlHashMap<&str, HazardCounts> = PlHashMap::new();
    let mut overall = HazardCounts::default();
    for (&(p, _, _), counts) in &cohorts {
        plans.entry(p).or_default().absorb(counts);
        overall.absorb(counts);
    }
    Ok(SurvivalCurves {
        cohorts: cohorts
            .into_iter()
            .map(|((p, ct, lv), h)| ((p.to_string(), ct, lv.to_string()), h.hazard()))
            .collect(),
        plans: plans.into_iter().map(|(p, h)| (p.to_string(), h.hazard())).collect(),
        overall: overall.hazard(),
    })
}

/// Kaplan-Meier retention by one grouping column (`plan_type`, `contract_months`,
/// `competition_level` or `market_id`), left-truncated like the CLV curves: one row
/// per group and tenure month with customers at risk, churn events, hazard and
/// survival from tenure 0.
/// `first_bill`: as for [`fit_kaplan_meier`].
pub fn kaplan_meier_by(
    tables: &Tables,
    params: &FeatureParams,
    by: &str,
    first_bill: Option<NaiveDate>,
) -> Result<DataFrame, FeatureError> {
    const GROUPS: [&str; 4] = [c::PLAN_TYPE, c::CONTRACT_MONTHS, n::COMPETITION_LEVEL, c::MARKET_ID];
    if !GROUPS.contains(&by) {
        return Err(FeatureError::Config(format!("Kaplan-Meier groups by one of {}, not `{by}`", GROUPS.join(", "))));
    }
    let df = risk_set(tables, params, first_bill)?;
    let key = df.column(by)?.cast(&DataType::String)?;
    let key = key.str()?;
    let entry = df.column("entry")?.cast(&DataType::Int64)?;
    let exit = df.column("exit")?.cast(&DataType::Int64)?;
    let (entry, exit, ev) = (entry.i64()?, exit.i64()?, df.column("event")?.bool()?);
    let mut groups: BTreeMap<String, HazardCounts> = BTreeMap::new();
    for i in 0..df.height() {
        let (Some(en), Some(ex)) = (entry.get(i), exit.get(i)) else { continue };
        if ex < en {
            continue;
        }
        let g = key.get(i).unwrap_or("(null)").to_string();
        groups.entry(g).or_default().add(en.min(360) as usize, ex.min(360) as usize, ev.get(i).unwrap_or(false));
    }
    let (mut group, mut k, mut risk, mut events, mut hazard, mut survival) =
        (vec![], vec![], vec![], vec![], vec![], vec![]);
    for (g, h) in groups {
        for (i, at_risk, ev, r, s_k) in h.hazard().km_rows().filter(|row| row.1 > 0.0) {
            group.push(g.clone());
            k.push(i as i64);
            risk.push(at_risk);
            events.push(ev);
            hazard.push(r);
            survival.push(s_k);
        }
    }
    Ok(df!(
        by => group,
        n::TENURE_MONTHS => k,
        "at_risk" => risk,
        "events" => events,
        "hazard" => hazard,
        "survival" => survival,
    )?)
}

#[cfg(test)]
mod tests {
    #[test]
    fn risk_counts_from_the_interval_ends_are_the_month_by_month_counts() {
        // Intervals of every shape (one month, from 0, to the cap), events at some exits.
        let mut draw = crate::test_rng::below(0x2545_f491_4f6c_dd1d);
        let mut next = move |n: u64| draw(n) as usize;
        let mut counts = super::HazardCounts::default();
        let (mut at_risk, mut events) = (vec![0.0; 361], vec![0.0; 361]);
        let mut longest = 0;
        for _ in 0..20_000 {
            let entry = next(200);
            let exit = (entry + next(170)).min(360);
            let event = next(4) == 0;
            counts.add(entry, exit, event);
            at_risk[entry..=exit].iter_mut().for_each(|r| *r += 1.0);
            if event {
                events[exit] += 1.0;
            }
            longest = longest.max(exit + 1);
        }
        let h = counts.hazard();
        assert_eq!(h.at_risk.len(), longest);
        assert_eq!(h.at_risk, at_risk[..longest]);
        assert_eq!(h.events, events[..longest]);
    }

    #[test]
    fn discounted_geometric_sums_the_powers() {
        for (p, d, h, n) in
            [(0.2, 0.01, 6.0, 60u32), (0.0, 0.0, 6.0, 36), (1.0, 0.008, 12.0, 60), (0.03, 0.1, 1.0, 120)]
        {
            let direct: f64 =
                (1..=n).map(|t| (1.0_f64 - p).powf(f64::from(t) / h) / (1.0_f64 + d).powi(t as i32)).sum();
            let fast = super::discounted_geometric((1.0_f64 - p).powf(1.0 / h) / (1.0 + d), n);
            assert!((fast - direct).abs() <= 1e-12 * direct.max(1.0), "{p} {d}: {fast} vs {direct}");
        }
    }

    use super::*;

    #[test]
    fn absorbed_counts_are_the_counts_of_every_interval() {
        let spans = [(0, 5, true), (2, 3, false), (4, 9, true), (1, 1, false), (3, 3, true)];
        let (mut all, mut even, mut odd) = (HazardCounts::default(), HazardCounts::default(), HazardCounts::default());
        for (i, &(entry, exit, event)) in spans.iter().enumerate() {
            all.add(entry, exit, event);
            if i % 2 == 0 { even.add(entry, exit, event) } else { odd.add(entry, exit, event) }
        }
        // The shorter counts first: the sum grows to the longer ones.
        let mut summed = HazardCounts::default();
        summed.absorb(&odd);
        summed.absorb(&even);
        let (summed, all) = (summed.hazard(), all.hazard());
        assert_eq!(summed.at_risk, all.at_risk);
        assert_eq!(summed.events, all.events);
        assert_eq!(all.at_risk, vec![1.0, 2.0, 2.0, 3.0, 2.0, 2.0, 1.0, 1.0, 1.0, 1.0]);
        assert_eq!(all.events, vec![0.0, 0.0, 0.0, 1.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]);
    }

    #[test]
    fn grouped_curves_add_up_to_the_plan_curves() {
        let g = loyalty_synth::generate_in_memory(loyalty_synth::GenParams {
            customers: 4_000,
            months: 18,
            seed: 2,
            chunk_size: 2_000,
            ..Default::default()
        })
        .expect("generate");
        let mut tables = Tables::new();
        for table in Table::ALL {
            if let Some(df) = g.frames.get(table.name()) {
                tables.insert(table, df.clone().lazy());
            }
        }
        let params =
            FeatureParams { as_of: chrono::NaiveDate::from_ymd_opt(2024, 6, 30).unwrap(), ..Default::default() };
        let curves = fit_kaplan_meier(&tables, &params, None).unwrap();
        let by_plan = kaplan_meier_by(&tables, &params, c::PLAN_TYPE, None).unwrap();
        // The plan table is exactly the plan hazards of the CLV curves.
        for (plan, h) in &curves.plans {
            let rows = by_plan.clone().lazy().filter(col(c::PLAN_TYPE).eq(lit(plan.as_str()))).collect().unwrap();
            let risk: f64 = rows.column("at_risk").unwrap().f64().unwrap().sum().unwrap();
            assert!((risk - h.at_risk.iter().sum::<f64>()).abs() < 1e-9, "{plan}");
        }
        // Markets partition the customers: at-risk counts add up to the overall ones.
        let by_market = kaplan_meier_by(&tables, &params, c::MARKET_ID, None).unwrap();
        let total: f64 = by_market.column("at_risk").unwrap().f64().unwrap().sum().unwrap();
        assert!((total - curves.overall.at_risk.iter().sum::<f64>()).abs() < 1e-9);
        assert!(by_market.column(c::MARKET_ID).unwrap().n_unique().unwrap() >= 10);
        assert!(kaplan_meier_by(&tables, &params, "shoe_size", None).is_err());
        // The first bill month a caller knows gives the curves the scan finds it for;
        // a later one starts the data later (fewer months at risk).
        let first = tables[&Table::Billing].clone().select([col(c::BILL_MONTH).min()]).collect().unwrap();
        let first = first.column(c::BILL_MONTH).unwrap().date().unwrap().as_date_iter().next().unwrap().unwrap();
        let known = fit_kaplan_meier(&tables, &params, Some(first)).unwrap();
        assert_eq!(format!("{known:?}"), format!("{curves:?}"));
        let later = fit_kaplan_meier(&tables, &params, first.checked_add_months(Months::new(6))).unwrap();
        assert!(later.overall.at_risk.iter().sum::<f64>() < curves.overall.at_risk.iter().sum::<f64>());
        // Both per-row values from one grouping are each one's own, row by row.
        let rows = df!(
            c::PLAN_TYPE => [Some("prepaid"), Some("postpaid"), None, Some("postpaid"), Some("prepaid")],
            c::CONTRACT_MONTHS => [Some(0i64), Some(12), Some(24), Some(12), None],
            n::COMPETITION_LEVEL => [Some("high"), Some("low"), Some("medium"), Some("low"), None],
            n::TENURE_MONTHS => [3i64, 14, 0, 14, 40],
        )
        .unwrap();
        let [discounted, at] = curves.discounted_and_at(&rows, 0.01, 36, 6).unwrap();
        assert_eq!(discounted, curves.discounted_survival(&rows, 0.01, 36).unwrap());
        assert_eq!(at, curves.survival_at(&rows, 6).unwrap());
        assert_eq!((discounted[1], at[1]), (discounted[3], at[3]), "one cohort and tenure, one value");
        assert!(at.iter().all(|s| (0.0..=1.0).contains(s)) && discounted.iter().all(|v| *v > 0.0));
        // The same through churn scores, the unscored rows on the curves.
        let p =
            Float64Chunked::from_iter_options("p".into(), [Some(0.2), None, Some(0.9), None, Some(0.0)].into_iter());
        let scores = ChurnScores { horizon_months: 6, p_churn: ChurnProbabilities::InRowOrder(&p), fallback: &curves };
        let [discounted, at] = scores.discounted_and_at(&rows, 0.01, 36, 6).unwrap();
        assert_eq!(discounted, scores.discounted_survival(&rows, 0.01, 36).unwrap());
        assert_eq!(at, scores.survival_at(&rows, 6).unwrap());
        assert_eq!((at[0], at[4]), (0.8, 1.0));
        assert_eq!(
            (discounted[1], at[3]),
            (curves.discounted_survival(&rows, 0.01, 36).unwrap()[1], curves.survival_at(&rows, 6).unwrap()[3])
        );
    }

    #[test]
    fn kaplan_meier_hazards_and_curve() {
        // 40 customers at risk from tenure 0; 4 churn at tenure 1, 6 at tenure 3.
        // h(0) = 0, h(1) = 4/40 = 0.1, h(2) = 0, h(3) = 6/36 = 1/6.
        let mut h = HazardCounts::default();
        for i in 0..40 {
            match i {
                0..4 => h.add(0, 1, true),
                4..10 => h.add(0, 3, true),
                _ => h.add(0, 5, false),
            }
        }
        let mut curves = SurvivalCurves::default();
        let key = ("postpaid".to_string(), 12, "high".to_string());
        curves.cohorts.insert(key.clone(), h.hazard());
        assert!((curves.hazard(&key, 1) - 0.1).abs() < 1e-12);
        assert!((curves.hazard(&key, 3) - 6.0 / 36.0).abs() < 1e-12);
        // From tenure 0: S(1) = 1, S(2) = 0.9, S(3) = 0.9, S(4) = 0.9 * 5/6 = 0.75.
        let s = curves.curve(&key, 0, 4);
        assert!((s[1] - 0.9).abs() < 1e-12 && (s[3] - 0.75).abs() < 1e-12, "{s:?}");
        // Past tenure 5 the tail rate (mean of h(0..=5) = (0.1 + 1/6)/6) applies.
        let tail = (0.1 + 6.0 / 36.0) / 6.0;
        assert!((curves.hazard(&key, 40) - tail).abs() < 1e-12);
    }
}
