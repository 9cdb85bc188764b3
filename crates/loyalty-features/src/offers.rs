//! Next-best offers: per active customer, the optional services they do not hold,
//! ranked by the margin each is expected to add a month. The adoption probabilities
//! are CPV's own ([`crate::adoption_rates`]), so the offers add up to `cpv_monthly`.

use loyalty_contract::ahead::made_ahead;
use loyalty_contract::col as c;
use polars::prelude::*;

use crate::segments::VALUE_SEGMENT;
use crate::value::{Adoption, CELL};
use crate::{FeatureError, FeatureParams, Tables};

/// How many offers each customer gets at most.
pub const OFFERS_PER_CUSTOMER: u32 = 3;

/// The top offers of every customer of `customers` (the segmented table at T):
/// customer_id, value_segment, offer_rank (1 = best), service, p_adopt,
/// monthly_margin, expected_monthly_margin (p_adopt x monthly_margin). Ties go to the
/// service name. Empty without services or a catalog. The whole table in memory: for
/// many customers [`stream_offers`] hands it over in chunks instead.
pub fn next_best_offers(
    customers: &DataFrame,
    tables: &Tables,
    params: &FeatureParams,
) -> Result<DataFrame, FeatureError> {
    let mut offers: Option<DataFrame> = None;
    stream_offers(customers, tables, params, |chunk| {
        match offers.as_mut() {
            Some(all) => {
                all.vstack_mut(&chunk)?;
            }
            None => offers = Some(chunk),
        }
        Ok::<(), FeatureError>(())
    })?;
    match offers {
        Some(offers) => Ok(offers),
        None => Ok(no_offers()?),
    }
}

/// The rows of [`next_best_offers`], handed to `sink` a chunk of a quarter of
/// `params.customers_per_partition` customers at a time (0: all at once), in customer
/// order, and their [`offer_summary`]. At 10M customers the whole table (three offers
/// each) is over a gigabyte that nothing after this reads: the sink writes it out.
/// Without services or a catalog the sink gets one empty table with the columns.
pub fn stream_offers<E, F>(
    customers: &DataFrame,
    tables: &Tables,
    params: &FeatureParams,
    mut sink: F,
) -> Result<DataFrame, E>
where
    E: From<FeatureError> + Send,
    F: FnMut(DataFrame) -> Result<(), E>,
{
    let mut summary = OfferSummary::default();
    let started = std::time::Instant::now();
    let Some(adoption) = Adoption::of(customers, tables, params)? else {
        let empty = no_offers().map_err(FeatureError::from)?;
        summary.add(&empty).map_err(FeatureError::from)?;
        sink(empty)?;
        return Ok(summary.finish().map_err(FeatureError::from)?);
    };
    let cells = cells_by_customer(&adoption, customers).map_err(FeatureError::from)?;
    let menus = Menus::of(&adoption).map_err(FeatureError::from)?;
    tracing::debug!("offers: adoption rates and cells in {:.2}s", started.elapsed().as_secs_f64());
    let started = std::time::Instant::now();
    // In chunks of a quarter partition: every customer x service pair of 1M customers
    // and 7 services is about 0.35 GB, and ranking them held about 1 GB more at 10M.
    let n = cells.height();
    let size = match params.customers_per_partition {
        0 => n.max(1),
        k => usize::try_from(k.div_ceil(4)).unwrap_or(usize::MAX),
    };
    let mut handed = false;
    // The next chunk is ranked (on one thread) while the sink writes one.
    made_ahead(
        (0..n).step_by(size),
        |start| -> Result<DataFrame, E> {
            loyalty_contract::cancel::check().map_err(FeatureError::from)?;
            let chunk = cells.slice(start as i64, size.min(n - start));
            Ok(chunk_offers(&adoption, &menus, &chunk).map_err(FeatureError::from)?)
        },
        |top| {
            summary.add(&top).map_err(FeatureError::from)?;
            sink(top)?;
            handed = true;
            Ok(())
        },
    )?;
    if !handed {
        sink(no_offers().map_err(FeatureError::from)?)?;
    }
    tracing::debug!("offers: {n} customers ranked and handed over in {:.2}s", started.elapsed().as_secs_f64());
    Ok(summary.finish().map_err(FeatureError::from)?)
}

/// Every customer's adoption cell and value segment, in customer order, so the
/// chunks' offers come out already sorted: a sort and a join of the whole offers table
/// at the end held three copies of it at once.
fn cells_by_customer(adoption: &Adoption, customers: &DataFrame) -> PolarsResult<DataFrame> {
    let cells = adoption.cells();
    // The cells are the rows of `customers` in its order: when that is customer order
    // (the table at T is sorted by customer_id), the segments go beside them as they
    // are, without a join and a sort of every customer (0.18 s at 3M).
    let ids = customers.column(c::CUSTOMER_ID)?;
    if ids.equals_missing(cells.column(c::CUSTOMER_ID)?) && strictly_increasing(ids.i64()?) {
        let mut out = cells.clone();
        out.with_column(customers.column(VALUE_SEGMENT)?.clone())?;
        return Ok(out);
    }
    let id = || [col(c::CUSTOMER_ID)];
    cells
        .clone()
        .lazy()
        .join(
            customers.clone().lazy().select([col(c::CUSTOMER_ID), col(VALUE_SEGMENT)]),
            id(),
            id(),
            JoinArgs::new(JoinType::Left),
        )
        .sort([c::CUSTOMER_ID], SortMultipleOptions::default())
        .collect()
}

/// Whether `ids` has no null and each id is above the one before it.
fn strictly_increasing(ids: &Int64Chunked) -> bool {
    ids.null_count() == 0 && ids.into_no_null_iter().try_fold(i64::MIN, |last, id| (id > last).then_some(id)).is_some()
}

/// The offers of the customers of `chunk` (a slice of [`cells_by_customer`]), in
/// customer order, then rank.
///
/// The ranking of the catalog does not depend on the customer, only on their cell:
/// each cell's menu is ranked once ([`Menus`]), and a customer's offers are the first
/// items of it that they do not hold. Ranking each customer x service row in a sort
/// and a window over customers took 6.3 of the 7.5 s of the segment stage at 3M.
fn chunk_offers(adoption: &Adoption, menus: &Menus, chunk: &DataFrame) -> PolarsResult<DataFrame> {
    let ids = chunk.column(c::CUSTOMER_ID)?.i64()?;
    let cells = chunk.column(CELL)?.str()?;
    let segments = loyalty_contract::labels::strs(chunk.column(VALUE_SEGMENT)?)?;
    let mut out = OfferRows::default();
    for ((id, cell), segment) in ids.iter().zip(cells.iter()).zip(segments) {
        let (Some(id), Some(menu)) = (id, cell.and_then(|cell| menus.by_cell.get(cell))) else { continue };
        let held = |item: &&Item| menus.bit[item.service as usize].is_some_and(|j| adoption.holds(id, j));
        let offered = menu.iter().filter(|item| !held(item));
        for (rank, item) in (1..=i64::from(OFFERS_PER_CUSTOMER)).zip(offered) {
            out.push(id, segment, rank, &menus.names[item.service as usize], item);
        }
    }
    out.into_frame()
}

/// One catalog service of a cell's menu.
struct Item {
    /// Its position in [`Menus::names`].
    service: u32,
    p_adopt: f64,
    margin: f64,
    expected: f64,
}

/// Every cell's catalog services, best offer first: by expected monthly margin
/// (p_adopt x monthly_margin), highest first, ties to the service name.
struct Menus {
    names: Vec<String>,
    /// Each of `names`' position among the holders' bits ([`Adoption::holds`]).
    bit: Vec<Option<usize>>,
    by_cell: std::collections::HashMap<String, Vec<Item>>,
}

impl Menus {
    fn of(adoption: &Adoption) -> PolarsResult<Self> {
        let rates = adoption.rates();
        let (cells, services) = (rates.column(CELL)?.str()?, rates.column(c::SERVICE)?.str()?);
        let p = rates.column("p_adopt")?.cast(&DataType::Float64)?;
        let margin = rates.column(c::MONTHLY_MARGIN)?.cast(&DataType::Float64)?;
        let mut names: Vec<String> = services.iter().flatten().map(str::to_string).collect();
        names.sort();
        names.dedup();
        let mut by_cell: std::collections::HashMap<String, Vec<Item>> = std::collections::HashMap::new();
        for (i, (cell, service)) in cells.iter().zip(services.iter()).enumerate() {
            let (Some(cell), Some(service), Some(p_adopt), Some(margin)) =
                (cell, service, p.f64()?.get(i), margin.f64()?.get(i))
            else {
                continue;
            };
            let service = names.binary_search_by(|n| n.as_str().cmp(service)).unwrap_or_default() as u32;
            let expected = p_adopt * margin;
            by_cell.entry(cell.to_string()).or_default().push(Item { service, p_adopt, margin, expected });
        }
        // -0.0 ranks with 0.0, as in a sort; names are sorted, so their positions order
        // ties as the names do.
        let key = |item: &Item| item.expected + 0.0;
        for menu in by_cell.values_mut() {
            menu.sort_by(|a, b| key(b).total_cmp(&key(a)).then(a.service.cmp(&b.service)));
        }
        let bit = names.iter().map(|name| adoption.service(name)).collect();
        Ok(Menus { names, bit, by_cell })
    }
}

/// The columns of a chunk's offers as they are found.
#[derive(Default)]
struct OfferRows<'a> {
    id: Vec<i64>,
    segment: Vec<Option<&'a str>>,
    rank: Vec<i64>,
    service: Vec<&'a str>,
    p_adopt: Vec<f64>,
    margin: Vec<f64>,
    expected: Vec<f64>,
}

impl<'a> OfferRows<'a> {
    fn push(&mut self, id: i64, segment: Option<&'a str>, rank: i64, service: &'a str, item: &Item) {
        self.id.push(id);
        self.segment.push(segment);
        self.rank.push(rank);
        self.service.push(service);
        self.p_adopt.push(item.p_adopt);
        self.margin.push(item.margin);
        self.expected.push(item.expected);
    }

    fn into_frame(self) -> PolarsResult<DataFrame> {
        df!(
            c::CUSTOMER_ID => self.id,
            VALUE_SEGMENT => self.segment,
            "offer_rank" => self.rank,
            c::SERVICE => self.service,
            "p_adopt" => self.p_adopt,
            c::MONTHLY_MARGIN => self.margin,
            "expected_monthly_margin" => self.expected,
        )
    }
}

/// The offers table of a dataset without services or a catalog: its columns, no rows.
fn no_offers() -> PolarsResult<DataFrame> {
    df!(
        c::CUSTOMER_ID => Vec::<i64>::new(),
        VALUE_SEGMENT => Vec::<String>::new(),
        "offer_rank" => Vec::<i64>::new(),
        c::SERVICE => Vec::<String>::new(),
        "p_adopt" => Vec::<f64>::new(),
        c::MONTHLY_MARGIN => Vec::<f64>::new(),
        "expected_monthly_margin" => Vec::<f64>::new(),
    )
}

/// Per value segment and service, over the customers' top offers: customers offered
/// it, how many as their best offer, the expected monthly margin it adds in total and
/// the mean adoption probability; sorted by segment, then margin added.
pub fn offer_summary(offers: &DataFrame) -> PolarsResult<DataFrame> {
    let mut summary = OfferSummary::default();
    summary.add(offers)?;
    summary.finish()
}

/// [`offer_summary`] built up a chunk of offers at a time: per chunk the counts and sums
/// per segment and service (a few hundred rows), added up at the end.
#[derive(Default)]
struct OfferSummary {
    parts: Vec<DataFrame>,
}

impl OfferSummary {
    fn add(&mut self, offers: &DataFrame) -> PolarsResult<()> {
        let part = offers
            .clone()
            .lazy()
            .group_by([col(VALUE_SEGMENT), col(c::SERVICE)])
            .agg([
                len().cast(DataType::Int64).alias("customers_offered"),
                col("offer_rank").eq(lit(1i64)).cast(DataType::Int64).sum().alias("as_best_offer"),
                col("expected_monthly_margin").sum().alias("expected_monthly_margin_total"),
                col("p_adopt").sum().alias("__p_adopt_sum"),
                col("p_adopt").count().cast(DataType::Int64).alias("__p_adopt_n"),
            ])
            .collect()?;
        self.parts.push(part);
        Ok(())
    }

    fn finish(self) -> PolarsResult<DataFrame> {
        let parts: Vec<LazyFrame> = self.parts.into_iter().map(IntoLazy::lazy).collect();
        concat(parts, UnionArgs::default())?
            .group_by([col(VALUE_SEGMENT), col(c::SERVICE)])
            .agg([
                col("customers_offered").sum(),
                col("as_best_offer").sum(),
                col("expected_monthly_margin_total").sum(),
                (col("__p_adopt_sum").sum() / col("__p_adopt_n").sum().cast(DataType::Float64)).alias("mean_p_adopt"),
            ])
            .sort(
                [VALUE_SEGMENT, "expected_monthly_margin_total", c::SERVICE],
                SortMultipleOptions::default().with_order_descending_multi([false, true, false]),
            )
            .collect()
    }
}
