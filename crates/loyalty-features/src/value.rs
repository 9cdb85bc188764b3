//! Loyalty scores and value: CCV, CPV and CLV (DOMAIN.md sections 1-2).
//!
//! CPV's adoption probability P_ij is the adoption rate of service j among
//! comparable customers: same plan_type, same ARPU quintile and same data-usage
//! tercile (both within the plan), where "adopted" means held at any time up to T.
//! Each cell's rate is shrunk toward the base-wide rate with a pseudo-count
//! (`adoption_prior_weight`), so small cells do not produce 0% or 100%.

use chrono::NaiveDate;
use loyalty_contract::col as c;
use loyalty_contract::{Table, collect_streaming};

use crate::billing_kernel::Slots;
use polars::prelude::*;
use rayon::prelude::*;

use crate::names as n;
use crate::survival::SurvivalModel;
use crate::{FeatureError, FeatureParams, Tables, annuity_factor, monthly_discount_rate};

pub(crate) const CELL: &str = "__cell";

/// Each value of column `name` as f64, rounded to 6 decimals (parallel float sums
/// differ in their last bits from run to run, and ranks must not flip on that noise),
/// as its [`rank_key`]; [`NO_KEY`] for a null. A key of 8 bytes a row, where the
/// rounded values as options took 16: at 10M customers each ranked column's buffers
/// were fresh pages to fault in.
fn rank_keys(df: &DataFrame, name: &str) -> PolarsResult<Vec<u64>> {
    let s = df.column(name)?.as_materialized_series().cast(&DataType::Float64)?;
    Ok(s.round(6, RoundMode::HalfToEven)?.f64()?.iter().map(|v| v.map_or(NO_KEY, rank_key)).collect())
}

/// The key of a null value: [`rank_key`] gives it to no float (only all-ones bits, a
/// NaN, would turn into it, and every NaN has the key `u64::MAX`).
const NO_KEY: u64 = 0;

/// A value's place in the order ranks are taken in, polars' own: NaN above every
/// number and every NaN one value, -0 and 0 one value.
fn rank_key(v: f64) -> u64 {
    if v.is_nan() {
        return u64::MAX;
    }
    let bits = (v + 0.0).to_bits();
    if bits >> 63 == 1 { !bits } else { bits | 1 << 63 }
}

/// How polars divides, to the last bit: a column by one number (a count, a
/// literal) is multiplied by its reciprocal; by a window's counts, divided.
#[derive(Clone, Copy)]
enum Share {
    OfColumn,
    OfWindow,
}

impl Share {
    fn of(self, x: f64, count: f64) -> f64 {
        match self {
            Share::OfColumn => x * (1.0 / count),
            Share::OfWindow => x / count,
        }
    }
}

/// The percentile rank in [0, 1] of each of `rows` by its value among theirs
/// (`keys`, by row: [`rank_keys`]), handed to `put(row, rank)`: polars' average rank
/// less 1 over the known values less 1 (ties share the mean of their ranks); 0.5 for
/// a null value, or for every row when fewer than two values are known.
fn pct_ranks_within(
    rows: impl Iterator<Item = usize> + Clone,
    keys: &[u64],
    share: Share,
    mut put: impl FnMut(usize, f64),
) {
    // Sized once: collected from a filter, the vector grew by doubling to up to twice
    // its rows (two ranks at a time held 0.27 GB for 0.2 GB of rows at 10M customers).
    let mut known: Vec<(u64, usize)> = Vec::with_capacity(rows.clone().filter(|&i| keys[i] != NO_KEY).count());
    known.extend(rows.clone().map(|i| (keys[i], i)).filter(|&(key, _)| key != NO_KEY));
    for i in rows {
        put(i, 0.5);
    }
    if known.len() <= 1 {
        return;
    }
    known.par_sort_unstable_by_key(|&(key, _)| key);
    let count = known.len() as f64;
    let mut start = 0;
    while start < known.len() {
        let end = start + known[start..].iter().take_while(|(key, _)| *key == known[start].0).count();
        // Ties share the mean of their ranks (1-based), as polars' average rank.
        let rank = 0.5 * ((start + 1) as f64 + end as f64);
        for &(_, i) in &known[start..end] {
            put(i, share.of(rank - 1.0, count - 1.0));
        }
        start = end;
    }
}

/// [`pct_ranks_within`] of every row of column `name`, among all rows or within each
/// value of the column `over` (a null one is a group too, as in a polars window).
fn pct_ranks(df: &DataFrame, name: &str, over: Option<&str>) -> PolarsResult<Vec<f64>> {
    let keys = rank_keys(df, name)?;
    let mut out = vec![0.5; df.height()];
    let Some(over) = over else {
        pct_ranks_within(0..df.height(), &keys, Share::OfColumn, |i, r| out[i] = r);
        return Ok(out);
    };
    // The groups read in place, the rows by 32-bit number: a text copy of a label
    // column and 64-bit row numbers were 0.15 GB at 10M customers, beside another rank.
    let mut rows_of: PlHashMap<Option<&str>, Vec<u32>> = PlHashMap::new();
    for (i, g) in loyalty_contract::labels::strs(df.column(over)?)?.enumerate() {
        rows_of.entry(g).or_default().push(i as u32);
    }
    for rows in rows_of.values() {
        pct_ranks_within(rows.iter().map(|&i| i as usize), &keys, Share::OfWindow, |i, r| out[i] = r);
    }
    Ok(out)
}

/// The comparable-customer cells of the customers of a base: `plan/arpu_bin/data_bin`,
/// the ARPU quintile and data-usage tercile within the plan (none without a plan type).
///
/// A bin is [`pct_rank`]'s within the plan times the bin count, floored: the
/// average rank of the value rounded to 6 decimals, 0.5 for a null value or a plan
/// of one. Here each plan's values are sorted once; as window expressions over the
/// plan (four of them, then strings joined) it took 3.6 s at 10M customers, twice a
/// run (CPV and the offers). The cells are numbered, and the counts and lookups that
/// follow go by number: a string per customer, formatted and then hashed in each
/// lookup, was half of CPV's time at 3M customers.
struct Cells {
    /// Each cell's name, by number.
    names: Vec<String>,
    /// The cell number of each customer of the base, in its order ([`NO_CELL`]: none).
    of: Vec<u32>,
    /// The customers' ids, in the base's order.
    ids: Column,
}

/// The cell number of a customer without a plan type.
const NO_CELL: u32 = u32::MAX;

/// ARPU bins (quintiles) and data-usage bins (terciles) within a plan.
const ARPU_BINS: u8 = 5;
const DATA_BINS: u8 = 3;

/// The [`Cells`] of the customers of `base`.
fn cells_of(base: &DataFrame) -> PolarsResult<Cells> {
    let plans = base.column(c::PLAN_TYPE)?.cast(&DataType::String)?;
    let plans = plans.str()?;
    // The two columns' keys side by side (0.1 s each at 10M customers).
    let (arpu, data) = rayon::join(|| rank_keys(base, n::ARPU_12M), || rank_keys(base, n::DATA_MB_3M));
    let (arpu, data) = (arpu?, data?);
    // The plans in the order they first come, with their rows.
    let mut plan_names: Vec<&str> = Vec::new();
    let mut by_plan: Vec<Vec<usize>> = Vec::new();
    let mut number: PlHashMap<&str, u32> = PlHashMap::new();
    // Each customer's plan number first, their cell number once the bins are known.
    let mut of: Vec<u32> = Vec::with_capacity(base.height());
    for (i, plan) in plans.iter().enumerate() {
        of.push(plan.map_or(NO_CELL, |plan| {
            let p = *number.entry(plan).or_insert_with(|| {
                plan_names.push(plan);
                by_plan.push(Vec::new());
                (plan_names.len() - 1) as u32
            });
            by_plan[p as usize].push(i);
            p
        }));
    }
    let (mut arpu_bin, mut data_bin) = (vec![0u8; base.height()], vec![0u8; base.height()]);
    // One plan and column at a time: each sort is a parallel one, and two at once
    // would hold two sort buffers.
    for rows in &by_plan {
        bins_within(rows, &arpu, ARPU_BINS, &mut arpu_bin);
        bins_within(rows, &data, DATA_BINS, &mut data_bin);
    }
    for (i, cell) in of.iter_mut().enumerate().filter(|(_, p)| **p != NO_CELL) {
        let within_plan = u32::from(arpu_bin[i]) * u32::from(DATA_BINS) + u32::from(data_bin[i]);
        *cell = *cell * u32::from(ARPU_BINS * DATA_BINS) + within_plan;
    }
    let names: Vec<String> = plan_names
        .iter()
        .flat_map(|plan| (0..ARPU_BINS).flat_map(move |a| (0..DATA_BINS).map(move |d| format!("{plan}/{a}/{d}"))))
        .collect();
    Ok(Cells { names, of, ids: base.column(c::CUSTOMER_ID)?.clone() })
}

impl Cells {
    /// The cell number of the customer at `slot`, if they have one.
    fn cell(&self, slot: usize) -> Option<usize> {
        Some(self.of[slot]).filter(|&k| k != NO_CELL).map(|k| k as usize)
    }

    /// customer_id, `__cell` of each customer of the base, in its order.
    fn frame(&self) -> PolarsResult<DataFrame> {
        let cells: StringChunked =
            (0..self.of.len()).map(|slot| self.cell(slot).map(|k| self.names[k].as_str())).collect();
        DataFrame::new(self.of.len(), vec![self.ids.clone(), cells.with_name(CELL.into()).into_column()])
    }

    /// Each cell with a customer and its count of them: `__cell`, `__n`.
    fn sizes(&self) -> PolarsResult<DataFrame> {
        let mut counts = vec![0u64; self.names.len()];
        for k in (0..self.of.len()).filter_map(|slot| self.cell(slot)) {
            counts[k] += 1;
        }
        let (names, sizes): (Vec<&str>, Vec<f64>) = counts
            .iter()
            .enumerate()
            .filter(|(_, n)| **n > 0)
            .map(|(k, n)| (self.names[k].as_str(), *n as f64))
            .unzip();
        DataFrame::new(names.len(), vec![Column::new(CELL.into(), names), Column::new("__n".into(), sizes)])
    }
}

/// The bin 0..q-1 of each of `rows` (one plan's) by the percentile rank of its value
/// among theirs, written to `out`.
fn bins_within(rows: &[usize], keys: &[u64], q: u8, out: &mut [u8]) {
    let bin = |pct: f64| (pct * f64::from(q)).floor().clamp(0.0, f64::from(q - 1)) as u8;
    pct_ranks_within(rows.iter().copied(), keys, Share::OfWindow, |i, pct| out[i] = bin(pct));
}

/// The adoption model of the customers of a base: every comparable-customer cell's
/// adoption rate of every catalog service, each customer's cell, and which services
/// each customer has held by T and holds at T.
struct CellRates {
    /// `__cell`, service, monthly_margin, p_adopt: every cell x catalog service.
    rates: DataFrame,
    cells: Cells,
    holders: Holders,
}

/// [`CellRates`] of `base`; None without services or a catalog.
fn cell_rates(base: &DataFrame, tables: &Tables, params: &FeatureParams) -> Result<Option<CellRates>, FeatureError> {
    let (Some(services), Some(catalog)) = (tables.get(&Table::Services), tables.get(&Table::ServiceCatalog)) else {
        return Ok(None);
    };
    let cells = cells_of(base)?;
    let catalog = catalog.clone().select([col(c::SERVICE), col(c::MONTHLY_MARGIN)]);
    let menu = collect_streaming(catalog.clone().select([col(c::SERVICE).cast(DataType::String)]))?;
    let menu: Vec<String> = menu.column(c::SERVICE)?.str()?.iter().flatten().map(str::to_string).collect();
    let holders = Holders::count(&cells.ids, services.clone(), params.as_of, menu)?;
    let (adopters, base_rate) = (holders.adopters(&cells)?.lazy(), holders.base_rates(base.height())?.lazy());
    let a = params.adoption_prior_weight;
    let cell_sizes = cells.sizes()?.lazy();
    // Every cell x service (a cross join through a constant key).
    let rates = collect_streaming(
        cell_sizes
            .with_column(lit(1).alias("__one"))
            .join(
                catalog.with_column(lit(1).alias("__one")),
                [col("__one")],
                [col("__one")],
                JoinArgs::new(JoinType::Inner),
            )
            .join(adopters, [col(CELL), col(c::SERVICE)], [col(CELL), col(c::SERVICE)], JoinArgs::new(JoinType::Left))
            .join(base_rate, [col(c::SERVICE)], [col(c::SERVICE)], JoinArgs::new(JoinType::Left))
            .select([
                col(CELL),
                col(c::SERVICE),
                col(c::MONTHLY_MARGIN),
                ((col("__k").fill_null(lit(0.0)) + lit(a) * col("__p0").fill_null(lit(0.0))) / (col("__n") + lit(a)))
                    .alias("p_adopt"),
            ]),
    )?;
    Ok(Some(CellRates { rates, cells, holders }))
}

/// Which catalog services each customer of the base has held by T, and holds at T, a
/// bit each: the counts behind the adoption rates, the services CPV and the offers
/// leave out. As a unique of the (customer, service) rows and group-bys on the (cell,
/// service) strings, it hashed an encoded string key per row of services (about 4% of
/// the features stage at 10M customers), and the held services were a unique and a
/// sort of their own; here a row costs a lookup of its customer and service and a bit,
/// in one pass for both.
struct Holders {
    slots: Slots,
    menu: Vec<String>,
    index: PlHashMap<String, usize>,
    words: usize,
    /// Held by T: bit j of word `slot * words + j / 64`.
    ever: Vec<u64>,
    /// Held at T, the same way.
    now: Vec<u64>,
}

/// A services row held at T, as a column of the pass.
const HELD_NOW: &str = "__held_now";

impl Holders {
    /// One pass over the rows of `services` that start by `t`, for the customers `ids`
    /// (the base's customer_id) and the catalog services `menu`; other services and
    /// customers are not counted (the rates are of catalog services in the base).
    fn count(ids: &Column, services: LazyFrame, t: NaiveDate, menu: Vec<String>) -> PolarsResult<Holders> {
        let ids: Vec<i64> = ids.i64()?.iter().map(|v| v.unwrap_or(i64::MIN)).collect();
        let index = menu.iter().enumerate().map(|(j, s)| (s.clone(), j)).collect();
        let words = menu.len().div_ceil(64);
        let (ever, now) = (vec![0; ids.len() * words], vec![0; ids.len() * words]);
        let holders = Holders { slots: Slots::new(&ids), menu, index, words, ever, now };
        let rows = services.filter(col(c::START_DATE).lt_eq(lit(t))).select([
            col(c::CUSTOMER_ID).cast(DataType::Int64),
            col(c::SERVICE).cast(DataType::String),
            loyalty_contract::dates::held_at(t).alias(HELD_NOW),
        ]);
        loyalty_contract::fold_batches(rows, holders, |h, df| h.update(&df))
    }

    fn update(&mut self, df: &DataFrame) -> PolarsResult<()> {
        let ids = df.column(c::CUSTOMER_ID)?.i64()?;
        let services = df.column(c::SERVICE)?.str()?;
        let now = df.column(HELD_NOW)?.bool()?;
        for ((id, service), now) in ids.iter().zip(services.iter()).zip(now.iter()) {
            let (Some(id), Some(service)) = (id, service) else { continue };
            let (Some(slot), Some(&j)) = (self.slots.get(id), self.index.get(service)) else { continue };
            let (word, bit) = (slot * self.words + j / 64, 1u64 << (j % 64));
            self.ever[word] |= bit;
            if now == Some(true) {
                self.now[word] |= bit;
            }
        }
        Ok(())
    }

    /// Whether the customer at `slot` has held service j by T.
    fn has(&self, slot: usize, j: usize) -> bool {
        self.ever[slot * self.words + j / 64] & (1 << (j % 64)) != 0
    }

    /// Whether the customer at `slot` holds service j at T.
    fn holds(&self, slot: usize, j: usize) -> bool {
        self.now[slot * self.words + j / 64] & (1 << (j % 64)) != 0
    }

    /// The position of catalog service `name` in the bits.
    fn service(&self, name: &str) -> Option<usize> {
        self.index.get(name).copied()
    }

    /// The holders of each service among the customers of each cell: `__cell`,
    /// service, `__k`, for the pairs with a holder (customers without a cell are not
    /// in a cell), by cell number then service.
    fn adopters(&self, cells: &Cells) -> PolarsResult<DataFrame> {
        let width = self.menu.len();
        let mut counts = vec![0u64; cells.names.len() * width];
        for (slot, cell) in (0..cells.of.len()).filter_map(|slot| Some(slot).zip(cells.cell(slot))) {
            for j in (0..width).filter(|&j| self.has(slot, j)) {
                counts[cell * width + j] += 1;
            }
        }
        let held = || counts.iter().enumerate().filter(|(_, k)| **k > 0);
        DataFrame::new(
            held().count(),
            vec![
                Column::new(CELL.into(), held().map(|(i, _)| cells.names[i / width].as_str()).collect::<Vec<_>>()),
                Column::new(c::SERVICE.into(), held().map(|(i, _)| self.menu[i % width].as_str()).collect::<Vec<_>>()),
                Column::new("__k".into(), held().map(|(_, k)| *k as f64).collect::<Vec<_>>()),
            ],
        )
    }

    /// Each service's holders over the `customers` of the base: service, `__p0`.
    fn base_rates(&self, customers: usize) -> PolarsResult<DataFrame> {
        let total = (customers as f64).max(1.0);
        let holders = |j: usize| (0..customers).filter(|&slot| self.has(slot, j)).count();
        let (names, rates): (Vec<&str>, Vec<f64>) = (0..self.menu.len())
            .filter_map(|j| Some(holders(j)).filter(|k| *k > 0).map(|k| (self.menu[j].as_str(), k as f64 / total)))
            .unzip();
        DataFrame::new(names.len(), vec![Column::new(c::SERVICE.into(), names), Column::new("__p0".into(), rates)])
    }
}

/// Estimated P(customer adopts service) for every (active customer, catalog service):
/// columns customer_id, service, p_adopt, held (at T), monthly_margin.
pub fn adoption_rates(base: &DataFrame, tables: &Tables, params: &FeatureParams) -> Result<DataFrame, FeatureError> {
    let Some(a) = Adoption::of(base, tables, params)? else { return Ok(DataFrame::empty()) };
    Ok(a.rows()?.sort([c::CUSTOMER_ID, c::SERVICE], SortMultipleOptions::default())?)
}

/// The adoption model ([`CellRates`]) for the offers: a customer's offers are the
/// best rates of their cell among the services they do not hold at T.
pub(crate) struct Adoption {
    model: CellRates,
    /// customer_id, `__cell` of each customer of the base, in its order.
    cells: DataFrame,
}

impl Adoption {
    /// None without services or a catalog.
    pub(crate) fn of(base: &DataFrame, tables: &Tables, params: &FeatureParams) -> Result<Option<Self>, FeatureError> {
        let Some(model) = cell_rates(base, tables, params)? else { return Ok(None) };
        let cells = model.cells.frame()?;
        Ok(Some(Adoption { model, cells }))
    }

    /// customer_id, `__cell` of each customer of the base, in its order.
    pub(crate) fn cells(&self) -> &DataFrame {
        &self.cells
    }

    /// Every cell x catalog service: `__cell`, service, monthly_margin, p_adopt.
    pub(crate) fn rates(&self) -> &DataFrame {
        &self.model.rates
    }

    /// The position of catalog service `name` for [`Adoption::holds`].
    pub(crate) fn service(&self, name: &str) -> Option<usize> {
        self.model.holders.service(name)
    }

    /// Whether customer `id` of the base holds catalog service `j` at T.
    pub(crate) fn holds(&self, id: i64, j: usize) -> bool {
        self.model.holders.slots.get(id).is_some_and(|slot| self.model.holders.holds(slot, j))
    }

    /// The rows of [`adoption_rates`], in no particular order: each customer with a
    /// cell, with every catalog service's rate in it.
    fn rows(&self) -> PolarsResult<DataFrame> {
        let rates = self.rates();
        let (cell, service) = (rates.column(CELL)?.str()?, rates.column(c::SERVICE)?.str()?);
        let p = rates.column("p_adopt")?.cast(&DataType::Float64)?;
        let margin = rates.column(c::MONTHLY_MARGIN)?.cast(&DataType::Float64)?;
        let (p, margin) = (p.f64()?, margin.f64()?);
        let mut by_cell: std::collections::HashMap<&str, Vec<usize>> = std::collections::HashMap::new();
        for (i, k) in cell.iter().enumerate() {
            if let (Some(k), Some(_)) = (k, service.get(i)) {
                by_cell.entry(k).or_default().push(i);
            }
        }
        let holders = &self.model.holders;
        let (mut ids, mut services, mut ps, mut held, mut margins) = (vec![], vec![], vec![], vec![], vec![]);
        let cells = self.cells();
        for (slot, (id, k)) in
            cells.column(c::CUSTOMER_ID)?.i64()?.iter().zip(cells.column(CELL)?.str()?.iter()).enumerate()
        {
            let Some(rows) = k.and_then(|k| by_cell.get(k)) else { continue };
            for &i in rows {
                let name = service.get(i).unwrap_or_default();
                ids.push(id);
                services.push(name);
                ps.push(p.get(i));
                held.push(holders.service(name).is_some_and(|j| holders.holds(slot, j)));
                margins.push(margin.get(i));
            }
        }
        df!(
            c::CUSTOMER_ID => ids,
            c::SERVICE => services,
            "p_adopt" => ps,
            "held" => held,
            c::MONTHLY_MARGIN => margins,
        )
    }
}

/// CPV per month of each customer of `base`, in its order: the expected margin of
/// their cell's whole catalog, less that of the services they hold at T; each sum in
/// [`exact_sum`](crate::per_customer::exact_sum)'s fixed point. Customers without a
/// cell (or a catalog) get 0.
///
/// The services held come from the bits of the pass that counted the adopters; each
/// one's value is looked up by the customer's cell, instead of joins of the held
/// services with the cells and the rates on string keys and a group-by per customer.
fn cpv_monthly(base: &DataFrame, tables: &Tables, params: &FeatureParams) -> Result<Float64Chunked, FeatureError> {
    let Some(model) = cell_rates(base, tables, params)? else {
        return Ok(Float64Chunked::full(n::CPV_MONTHLY.into(), 0.0, base.height()));
    };
    Ok(CellValues::of(&model.rates, &model.cells)?.cpv(&model.cells, &model.holders))
}

/// Each catalog service's expected margin (p_adopt x monthly_margin) in each cell, in
/// fixed point.
struct CellValues {
    services: PlHashMap<String, usize>,
    /// Cell `k`'s value of service `j` at `k * services + j` (None: no rate).
    values: Vec<Option<i64>>,
    /// Each cell's whole catalog.
    all: Vec<i64>,
}

impl CellValues {
    /// `rates`: `__cell`, service, monthly_margin, p_adopt; `cells`: those of the
    /// customers of the base.
    fn of(rates: &DataFrame, cells: &Cells) -> PolarsResult<Self> {
        let (cell, service) = (rates.column(CELL)?.str()?, rates.column(c::SERVICE)?.str()?);
        let value = (rates.column("p_adopt")?.as_materialized_series()
            * rates.column(c::MONTHLY_MARGIN)?.as_materialized_series())?;
        let value = value.cast(&DataType::Float64)?;
        let number: PlHashMap<&str, usize> =
            cells.names.iter().enumerate().map(|(k, name)| (name.as_str(), k)).collect();
        let mut services: PlHashMap<String, usize> = PlHashMap::new();
        for j in service.iter().flatten() {
            let next = services.len();
            services.entry(j.to_string()).or_insert(next);
        }
        let width = services.len();
        let mut values = vec![None; cells.names.len() * width];
        let mut all = vec![0i64; cells.names.len()];
        for ((k, j), v) in cell.iter().zip(service.iter()).zip(value.f64()?.iter()) {
            let (Some(k), Some(j)) = (k.and_then(|k| number.get(k)), j) else { continue };
            let v = v.and_then(crate::per_customer::fixed);
            values[k * width + services[j]] = v;
            all[*k] = all[*k].wrapping_add(v.unwrap_or(0));
        }
        Ok(CellValues { services, values, all })
    }

    /// Each customer's cell's whole catalog less the services they hold at T
    /// (`cells` and `holders`, whose slots are the customers' rows), a service the
    /// cell has no rate for counting nothing. The sums are in fixed point, so their
    /// order does not matter.
    fn cpv(&self, cells: &Cells, holders: &Holders) -> Float64Chunked {
        let width = self.services.len();
        let value_at: Vec<Option<usize>> = holders.menu.iter().map(|s| self.services.get(s).copied()).collect();
        let of = crate::per_customer::from_fixed;
        let values = (0..cells.of.len()).map(|slot| {
            let Some(k) = cells.cell(slot) else { return Some(0.0) };
            let mut held: Option<i64> = None;
            for (j, at) in value_at.iter().enumerate() {
                let Some(v) = at.and_then(|at| self.values[k * width + at]) else { continue };
                if holders.holds(slot, j) {
                    held = Some(held.unwrap_or(0).wrapping_add(v));
                }
            }
            Some(of(self.all[k]) - held.map_or(0.0, of))
        });
        values.collect::<Float64Chunked>().with_name(n::CPV_MONTHLY.into())
    }
}

/// Every column but customer_id that the features stage reads once a partition's
/// aggregates are placed (CPV, the scores, CCV), and the survival cohorts and margin
/// that CLV reads after it ([`with_survival`]): what
/// [`crate::customer_features_with`]'s `aside` must keep in memory. The scores' inputs
/// that are functions of a customer's own row are computed as each partition is done
/// ([`row_inputs`]), so the columns they read are not among these.
pub const VALUE_INPUTS: [&str; 9] = [
    c::PLAN_TYPE,
    c::MARKET_ID,
    c::CONTRACT_MONTHS,
    n::ARPU_12M,
    n::DATA_MB_3M,
    n::MARGIN_MONTHLY,
    n::RECENCY_DAYS,
    n::TENURE_MONTHS,
    n::COMPETITION_LEVEL,
];

/// The scores' inputs computed from each customer's own row: the purchase frequency
/// ranked within the plan, the sum the engagement ranks and the advocacy score.
const FREQUENCY: &str = "__frequency";
const ENGAGED: &str = "__engaged";
const ADVOCACY: &str = "__advocacy";
pub(crate) const ROW_INPUTS: [&str; 3] = [FREQUENCY, ENGAGED, ADVOCACY];

/// The scores' inputs of `rows` computed from each row alone (DOMAIN.md section 3),
/// named for [`with_scores`], which drops them. Taken as each customer partition is
/// done, they are three columns held to the end of the features stage where the seven
/// they read were (0.19 GB at 10M customers).
pub(crate) fn row_inputs(rows: &DataFrame) -> PolarsResult<DataFrame> {
    let frequency = when(col(c::PLAN_TYPE).eq(lit("prepaid")))
        .then(col(n::TOPUPS_PER_MONTH))
        .otherwise(col(n::MONTHS_BILLED).cast(DataType::Float64));
    let engaged = col(n::SURVEYS_ANSWERED) + col(n::CONTACTS_12M) - col(n::COMPLAINTS_12M);
    let advocacy = lit(0.5) * col(n::REFERRALS_MADE).gt(lit(0.0)).cast(DataType::Float64)
        + lit(0.5) * (col(n::SURVEY_RECOMMEND) / lit(10.0)).fill_null(lit(0.0));
    rows.clone().lazy().select([frequency.alias(FREQUENCY), engaged.alias(ENGAGED), advocacy.alias(ADVOCACY)]).collect()
}

/// `base` with CPV, the loyalty scores, CCV and CPV over the valuation horizon: every
/// value but those of the survival model ([`with_survival`]).
pub(crate) fn add_scores(base: DataFrame, tables: &Tables, params: &FeatureParams) -> Result<DataFrame, FeatureError> {
    let d = monthly_discount_rate(params.annual_discount_rate);
    let annuity = annuity_factor(d, params.valuation_months);

    // CPV: expected margin of the services not held, at the comparable customers' rates.
    let started = std::time::Instant::now();
    let cpv_monthly = cpv_monthly(&base, tables, params)?;
    let mut base = base;
    base.with_column(cpv_monthly.into_column())?;
    // The adoption cells and rates are freed.
    loyalty_contract::memory::release();
    tracing::debug!("cpv: {:.2}s", started.elapsed().as_secs_f64());
    let started = std::time::Instant::now();

    let mut df = with_scores(base)?;
    df = df
        .lazy()
        .with_columns([
            (col(n::MARGIN_MONTHLY).fill_null(lit(0.0)) * lit(annuity)).alias(n::CCV),
            (col(n::CPV_MONTHLY) * lit(annuity)).alias(n::CPV),
        ])
        .collect()?;

    tracing::debug!("scores: {:.2}s", started.elapsed().as_secs_f64());
    Ok(df)
}

/// The column a rank's input is computed into, just before the rank.
const RANKED: &str = "__ranked";

/// `base` (with `cpv_monthly` and the [`row_inputs`]) with the premium, the advocacy
/// and the three loyalty scores (DOMAIN.md section 3). The percentile ranks are taken
/// here, each a sort of its column's keys: as polars window ranks they were 5.3 s of
/// the features stage at 10M customers.
fn with_scores(base: DataFrame) -> PolarsResult<DataFrame> {
    let df = base
        .lazy()
        .with_columns([
            col(n::CPV_MONTHLY).fill_null(lit(0.0)),
            (col(n::ARPU_12M) / col(n::ARPU_12M).median().over([col(c::PLAN_TYPE), col(c::MARKET_ID)])? - lit(1.0))
                .alias(n::PREMIUM_PCT),
            col(ADVOCACY).alias(n::ADVOCACY_SCORE),
        ])
        .collect()?
        .drop(ADVOCACY)?;
    // One rank at a time, its input computed just before it and each summed into its
    // score as it comes (in the order of the scores' sums, so the same bits): two ranks
    // at a time, with the three inputs held through all of them, were 0.35 GB of the
    // features stage's peak at 10M customers, for half a second.
    let rank_of = |input: Expr, over: Option<&str>| -> PolarsResult<Vec<f64>> {
        let picked: Vec<Expr> = std::iter::once(input.alias(RANKED)).chain(over.map(col)).collect();
        let ranks = pct_ranks(&df.clone().lazy().select(picked).collect()?, RANKED, over);
        loyalty_contract::memory::release();
        ranks
    };
    let add = |score: &mut [f64], rank: Vec<f64>| score.iter_mut().zip(rank).for_each(|(s, r)| *s += r);
    let mut transactional = rank_of(-col(n::RECENCY_DAYS), None)?;
    add(&mut transactional, rank_of(col(FREQUENCY), Some(c::PLAN_TYPE))?);
    add(&mut transactional, rank_of(col(n::ARPU_12M), None)?);
    add(&mut transactional, rank_of(col(n::TENURE_MONTHS), None)?);
    transactional.iter_mut().for_each(|t| *t = Share::OfColumn.of(*t, 4.0));
    let premium = rank_of(col(n::PREMIUM_PCT), None)?;
    let engagement = rank_of(col(ENGAGED), None)?;
    let mut df = df.drop_many([FREQUENCY, ENGAGED]);
    let advocacy = df.column(n::ADVOCACY_SCORE)?.f64()?.clone();
    let emotional: Float64Chunked = advocacy
        .iter()
        .enumerate()
        .map(|(i, a)| a.map(|a| Share::OfColumn.of(premium[i] + a + engagement[i], 3.0)))
        .collect();
    drop(premium);
    df.with_column(Column::new(n::ENGAGEMENT_SCORE.into(), engagement))?;
    df.with_column(Column::new(n::TRANSACTIONAL_LOYALTY.into(), transactional))?;
    df.with_column(emotional.with_name(n::EMOTIONAL_LOYALTY.into()).into_column())?;
    Ok(df)
}

/// Set (or replace) `clv` and `survival_<h>m` of the feature table `df` from the
/// survival model.
pub fn with_survival(df: &mut DataFrame, params: &FeatureParams, survival: &dyn SurvivalModel) -> PolarsResult<()> {
    let d = monthly_discount_rate(params.annual_discount_rate);
    let started = std::time::Instant::now();
    let [discounted, s_h] = survival.discounted_and_at(df, d, params.valuation_months, params.churn_horizon_months)?;
    let margin = df.column(n::MARGIN_MONTHLY)?.cast(&DataType::Float64)?;
    let clv: Vec<f64> = margin.f64()?.iter().zip(&discounted).map(|(m, s)| m.unwrap_or(0.0) * s).collect();
    df.with_column(Column::new(n::CLV.into(), clv))?;
    df.with_column(Column::new(n::survival_at(params.churn_horizon_months).into(), s_h))?;
    tracing::debug!("survival per customer: {:.2}s", started.elapsed().as_secs_f64());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Percentile rank in [0, 1] (average ties) within `over`, nulls 0.5, as polars
    /// window expressions: the reference for [`pct_ranks`].
    fn pct_rank(x: Expr, over: Option<&str>) -> PolarsResult<Expr> {
        let x = x.cast(DataType::Float64).round(6, RoundMode::HalfToEven);
        let rank = x
            .clone()
            .rank(RankOptions { method: RankMethod::Average, descending: false }, None)
            .cast(DataType::Float64);
        let count = x.count().cast(DataType::Float64);
        let (rank, count) = match over {
            Some(g) => (rank.over([col(g)])?, count.over([col(g)])?),
            None => (rank, count),
        };
        Ok(when(count.clone().gt(lit(1.0)))
            .then((rank - lit(1.0)) / (count - lit(1.0)))
            .otherwise(lit(0.5))
            .fill_null(lit(0.5)))
    }

    /// The scores as window expressions (the reference for [`with_scores`]).
    fn scores_by_windows(base: DataFrame) -> DataFrame {
        let frequency = when(col(c::PLAN_TYPE).eq(lit("prepaid")))
            .then(col(n::TOPUPS_PER_MONTH))
            .otherwise(col(n::MONTHS_BILLED).cast(DataType::Float64));
        let advocacy = lit(0.5) * col(n::REFERRALS_MADE).gt(lit(0.0)).cast(DataType::Float64)
            + lit(0.5) * (col(n::SURVEY_RECOMMEND) / lit(10.0)).fill_null(lit(0.0));
        let rank = |x: Expr, over: Option<&str>| pct_rank(x, over).unwrap();
        base.lazy()
            .with_columns([
                col(n::CPV_MONTHLY).fill_null(lit(0.0)),
                (col(n::ARPU_12M) / col(n::ARPU_12M).median().over([col(c::PLAN_TYPE), col(c::MARKET_ID)]).unwrap()
                    - lit(1.0))
                .alias(n::PREMIUM_PCT),
                advocacy.alias(n::ADVOCACY_SCORE),
                rank(col(n::SURVEYS_ANSWERED) + col(n::CONTACTS_12M) - col(n::COMPLAINTS_12M), None)
                    .alias(n::ENGAGEMENT_SCORE),
                ((rank(-col(n::RECENCY_DAYS), None)
                    + rank(frequency, Some(c::PLAN_TYPE))
                    + rank(col(n::ARPU_12M), None)
                    + rank(col(n::TENURE_MONTHS), None))
                    / lit(4.0))
                .alias(n::TRANSACTIONAL_LOYALTY),
            ])
            .with_columns([((rank(col(n::PREMIUM_PCT), None) + col(n::ADVOCACY_SCORE) + col(n::ENGAGEMENT_SCORE))
                / lit(3.0))
            .alias(n::EMOTIONAL_LOYALTY)])
            .collect()
            .unwrap()
    }

    #[test]
    fn scores_rank_as_polars_windows_do() {
        // Ties (also after rounding to 6 decimals), nulls, NaN of both signs, -0 and 0,
        // a plan of one customer, a customer without a plan, a market whose median
        // ARPU is 0.
        let rows = 500usize;
        let plan: Vec<Option<&str>> = (0..rows)
            .map(|i| match i {
                0 | 7 => None,
                1 => Some("hybrid"),
                i if i % 3 == 0 => Some("prepaid"),
                _ => Some("postpaid"),
            })
            .collect();
        let market: Vec<&str> = (0..rows).map(|i| ["m1", "m2", "m3"][i % 3]).collect();
        let arpu: Vec<Option<f64>> = (0..rows)
            .map(|i| match i % 29 {
                5 => None,
                6 => Some(f64::NAN),
                8 => Some(-f64::NAN),
                9 => Some(-0.0),
                10 => Some(0.0),
                _ if i % 3 == 2 => Some(0.0),
                _ => Some(((i * 37) % 23) as f64 + 1e-8 * (i % 2) as f64),
            })
            .collect();
        let small = |k: usize, m: usize| -> Vec<Option<f64>> {
            (0..rows).map(|i| (i % m != 4).then(|| ((i * k) % 7) as f64)).collect()
        };
        let base = df!(
            c::CUSTOMER_ID => (0..rows as i64).collect::<Vec<_>>(),
            c::PLAN_TYPE => plan,
            c::MARKET_ID => market,
            n::ARPU_12M => arpu,
            n::CPV_MONTHLY => (0..rows).map(|i| (i % 5 != 0).then_some(i as f64)).collect::<Vec<_>>(),
            n::TOPUPS_PER_MONTH => small(3, 11),
            n::MONTHS_BILLED => (0..rows as i64).map(|i| i % 13).collect::<Vec<_>>(),
            n::REFERRALS_MADE => small(5, 17),
            n::SURVEY_RECOMMEND => small(11, 3),
            n::SURVEYS_ANSWERED => small(2, 19),
            n::CONTACTS_12M => small(13, 23),
            n::COMPLAINTS_12M => small(17, 31),
            n::RECENCY_DAYS => (0..rows as i64).map(|i| (i * 7) % 90).collect::<Vec<_>>(),
            n::TENURE_MONTHS => (0..rows).map(|i| ((i * 3) % 40) as f64 * 0.5).collect::<Vec<_>>(),
        )
        .unwrap();
        let inputs = row_inputs(&base).unwrap();
        let got = with_scores(base.hstack(inputs.columns()).unwrap()).unwrap();
        let want = scores_by_windows(base);
        assert_eq!(got.get_column_names(), want.get_column_names());
        for name in got.get_column_names() {
            let (g, w) = (got.column(name).unwrap(), want.column(name).unwrap());
            match (g.f64(), w.f64()) {
                // To the bit, NaN too (equals_missing has NaN unequal to itself).
                (Ok(g), Ok(w)) => {
                    let bits = |v: Option<f64>| v.map(f64::to_bits);
                    let differ = g.iter().zip(w.iter()).position(|(a, b)| bits(a) != bits(b));
                    assert_eq!(
                        differ,
                        None,
                        "{name}: {:?} vs {:?}",
                        differ.map(|i| g.get(i)),
                        differ.map(|i| w.get(i))
                    );
                }
                _ => assert!(g.equals_missing(w), "{name}: {g:?}\n{w:?}"),
            }
        }
        let distinct = got.column(n::TRANSACTIONAL_LOYALTY).unwrap().n_unique().unwrap();
        assert!(distinct > 100, "{distinct} distinct transactional scores");
    }

    /// The cells as window expressions over the plan (the reference for [`cells_of`]).
    fn cells_by_windows(base: &DataFrame) -> DataFrame {
        let bin = |name: &str, q: u32| {
            (pct_rank(col(name), Some(c::PLAN_TYPE)).unwrap() * lit(f64::from(q)))
                .floor()
                .clip(lit(0.0), lit(f64::from(q - 1)))
                .cast(DataType::Int32)
                .cast(DataType::String)
        };
        let cell = concat_str([col(c::PLAN_TYPE), bin(n::ARPU_12M, 5), bin(n::DATA_MB_3M, 3)], "/", false);
        base.clone().lazy().select([col(c::CUSTOMER_ID), cell.alias(CELL)]).collect().unwrap()
    }

    #[test]
    fn cells_are_the_bins_of_the_ranks_within_each_plan() {
        // Ties (also after rounding to 6 decimals), nulls, a plan of one customer and
        // a customer without a plan.
        let n_rows = 400usize;
        let plan: Vec<Option<&str>> = (0..n_rows)
            .map(|i| match i {
                0 => None,
                1 => Some("hybrid"),
                i if i % 3 == 0 => Some("prepaid"),
                _ => Some("postpaid"),
            })
            .collect();
        let arpu: Vec<Option<f64>> =
            (0..n_rows).map(|i| (i % 17 != 5).then(|| ((i * 37) % 23) as f64 + 1e-8 * (i % 2) as f64)).collect();
        let data: Vec<Option<f64>> = (0..n_rows).map(|i| (i % 11 != 2).then(|| ((i * 13) % 7) as f64 * 0.5)).collect();
        let base = df!(
            c::CUSTOMER_ID => (0..n_rows as i64).collect::<Vec<_>>(),
            c::PLAN_TYPE => plan,
            n::ARPU_12M => arpu,
            n::DATA_MB_3M => data,
        )
        .unwrap();
        let (got, want) = (cells_of(&base).unwrap().frame().unwrap(), cells_by_windows(&base));
        assert!(got.equals_missing(&want), "{got}\n{want}");
        let distinct = got.column(CELL).unwrap().n_unique().unwrap();
        assert!(distinct > 20, "{distinct} cells");
    }

    fn sorted(lf: LazyFrame, by: Vec<&str>) -> DataFrame {
        lf.sort(by, SortMultipleOptions::default()).collect().unwrap()
    }

    /// The unique and group-bys [`Holders`] replaced: holders per (cell, service) and
    /// per service over the base, as lazy plans.
    fn holders_by_group_bys(cells: &DataFrame, services: &DataFrame, total: f64) -> (DataFrame, DataFrame) {
        let ever = services
            .clone()
            .lazy()
            .select([col(c::CUSTOMER_ID), col(c::SERVICE)])
            .unique(None, UniqueKeepStrategy::Any)
            .join(cells.clone().lazy(), [col(c::CUSTOMER_ID)], [col(c::CUSTOMER_ID)], JoinArgs::new(JoinType::Inner));
        let adopters = ever
            .clone()
            .filter(col(CELL).is_not_null())
            .group_by([col(CELL), col(c::SERVICE)])
            .agg([len().cast(DataType::Float64).alias("__k")]);
        let rates = ever.group_by([col(c::SERVICE)]).agg([(len().cast(DataType::Float64) / lit(total)).alias("__p0")]);
        (sorted(adopters, vec![CELL, c::SERVICE]), sorted(rates, vec![c::SERVICE]))
    }

    #[test]
    fn holders_count_as_the_unique_and_group_bys_did() {
        // 300 customers in 4 cells and none; services held twice, a service off the
        // menu, customers outside the base, a null service.
        let of: Vec<u32> = (0..300).map(|i| if i % 9 != 4 { i % 4 } else { NO_CELL }).collect();
        let names: Vec<String> = (0..4).map(|k| format!("postpaid/{k}/0")).collect();
        let cells = Cells { names, of, ids: Column::new(c::CUSTOMER_ID.into(), (0..300i64).collect::<Vec<_>>()) };
        let menu = ["tv", "net", "mobile", "cloud"];
        let ids: Vec<i64> = (0..2_000i64).map(|k| (k * 7919) % 340).collect();
        let services: Vec<Option<&str>> = (0..2_000usize)
            .map(|k| if k % 97 == 3 { None } else { Some(["tv", "net", "mobile", "gaming"][(k * 31) % 4]) })
            .collect();
        // Rows start before T but one in 13 (after it), and end before T one in 5.
        let t = NaiveDate::from_ymd_opt(2024, 6, 30).unwrap();
        let day = |d: i64| t + chrono::Duration::days(d);
        let start: Vec<NaiveDate> = (0..2_000i64).map(|k| day(if k % 13 == 0 { 10 } else { -100 - k % 50 })).collect();
        let end: Vec<Option<NaiveDate>> =
            (0..2_000i64).map(|k| if k % 5 == 0 { Some(day(-3)) } else { (k % 2 == 0).then(|| day(30)) }).collect();
        let services = df!(
            c::CUSTOMER_ID => ids,
            c::SERVICE => services,
            c::START_DATE => start,
            c::END_DATE => end,
        )
        .unwrap();
        let held = Holders::count(&cells.ids, services.clone().lazy(), t, menu.map(String::from).to_vec()).unwrap();
        let ever = services.clone().lazy().filter(col(c::START_DATE).lt_eq(lit(t))).collect().unwrap();
        let (want_adopters, want_rates) = holders_by_group_bys(&cells.frame().unwrap(), &ever, 300.0);
        let on_menu = |df: DataFrame| df.lazy().filter(col(c::SERVICE).neq(lit("gaming")));
        let adopters = sorted(held.adopters(&cells).unwrap().lazy(), vec![CELL, c::SERVICE]);
        assert!(adopters.equals(&sorted(on_menu(want_adopters), vec![CELL, c::SERVICE])), "{adopters}");
        let rates = sorted(held.base_rates(300).unwrap().lazy(), vec![c::SERVICE]);
        assert!(rates.equals(&sorted(on_menu(want_rates), vec![c::SERVICE])), "{rates}");
        assert_eq!(rates.height(), 3, "cloud has no holder, gaming is off the menu");
        // Held at T: the unique (customer, service) pairs of the rows held at T.
        let now = services
            .lazy()
            .filter(loyalty_contract::dates::held_at(t).and(col(c::SERVICE).neq(lit("gaming"))))
            .filter(col(c::CUSTOMER_ID).lt(lit(300i64)))
            .select([col(c::CUSTOMER_ID), col(c::SERVICE)])
            .unique(None, UniqueKeepStrategy::Any)
            .collect()
            .unwrap();
        let mut want: Vec<(i64, usize)> = now
            .column(c::CUSTOMER_ID)
            .unwrap()
            .i64()
            .unwrap()
            .iter()
            .zip(now.column(c::SERVICE).unwrap().str().unwrap().iter())
            .map(|(id, s)| (id.unwrap(), held.service(s.unwrap()).unwrap()))
            .collect();
        want.sort_unstable();
        let held = &held;
        let got: Vec<(i64, usize)> = (0..300usize)
            .flat_map(|slot| (0..4).filter(move |&j| held.holds(slot, j)).map(move |j| (slot as i64, j)))
            .collect();
        assert_eq!(got, want);
        assert!(got.len() > 50 && got.len() < 300 * 3, "{} held at T", got.len());
    }
}
