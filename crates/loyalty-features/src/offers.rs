//! Next-best offers: per active customer, the optional services they do not hold,
//! ranked by the margin each is expected to add a month. The adoption probabilities
//! are CPV's own ([`crate::adoption_rates`]), so the offers add up to `cpv_monthly`.

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
    E: From<FeatureError>,
    F: FnMut(DataFrame) -> Result<(), E>,
{
    let mut summary = OfferSummary::default();
    let Some(adoption) = Adoption::of(customers, tables, params)? else {
        let empty = no_offers().map_err(FeatureError::from)?;
        summary.add(&empty).map_err(FeatureError::from)?;
        sink(empty)?;
        return Ok(summary.finish().map_err(FeatureError::from)?);
    };
    let cells = cells_by_customer(&adoption, customers).map_err(FeatureError::from)?;
    // In chunks of a quarter partition: every customer x service pair of 1M customers
    // and 7 services is about 0.35 GB, and ranking them held about 1 GB more at 10M.
    let n = cells.height();
    let size = match params.customers_per_partition {
        0 => n.max(1),
        k => usize::try_from(k.div_ceil(4)).unwrap_or(usize::MAX),
    };
    let mut handed = false;
    for start in (0..n).step_by(size) {
        loyalty_contract::cancel::check().map_err(FeatureError::from)?;
        let chunk = cells.slice(start as i64, size.min(n - start));
        let top = chunk_offers(&adoption, &chunk).map_err(FeatureError::from)?;
        summary.add(&top).map_err(FeatureError::from)?;
        sink(top)?;
        handed = true;
    }
    if !handed {
        sink(no_offers().map_err(FeatureError::from)?)?;
    }
    Ok(summary.finish().map_err(FeatureError::from)?)
}

/// Every customer's adoption cell and value segment, in customer order, so the
/// chunks' offers come out already sorted: a sort and a join of the whole offers table
/// at the end held three copies of it at once.
fn cells_by_customer(adoption: &Adoption, customers: &DataFrame) -> PolarsResult<DataFrame> {
    let id = || [col(c::CUSTOMER_ID)];
    adoption
        .cells
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

/// The offers of the customers of `chunk` (a slice of [`cells_by_customer`]).
fn chunk_offers(adoption: &Adoption, chunk: &DataFrame) -> PolarsResult<DataFrame> {
    let top = top_offers(adoption.rows(&chunk.select([c::CUSTOMER_ID, CELL])?)?)?;
    with_segment(top, chunk)
}

/// A chunk's offers (sorted by customer, then rank) with each customer's value segment.
fn with_segment(top: DataFrame, chunk: &DataFrame) -> PolarsResult<DataFrame> {
    let id = || [col(c::CUSTOMER_ID)];
    let keep_order = JoinArgs { maintain_order: MaintainOrderJoin::Left, ..JoinArgs::new(JoinType::Left) };
    top.lazy()
        .join(chunk.clone().lazy().select([col(c::CUSTOMER_ID), col(VALUE_SEGMENT)]), id(), id(), keep_order)
        .select([
            col(c::CUSTOMER_ID),
            col(VALUE_SEGMENT),
            col("offer_rank"),
            col(c::SERVICE),
            col("p_adopt"),
            col(c::MONTHLY_MARGIN),
            col("expected_monthly_margin"),
        ])
        .collect()
}

/// The best [`OFFERS_PER_CUSTOMER`] services not held of each customer in `rows`.
fn top_offers(rows: LazyFrame) -> PolarsResult<DataFrame> {
    rows.filter(col("held").not())
        .with_column((col("p_adopt") * col(c::MONTHLY_MARGIN)).alias("expected_monthly_margin"))
        .sort(
            [c::CUSTOMER_ID, "expected_monthly_margin", c::SERVICE],
            SortMultipleOptions::default().with_order_descending_multi([false, true, false]),
        )
        .with_column(
            col(c::SERVICE).cum_count(false).over([col(c::CUSTOMER_ID)])?.cast(DataType::Int64).alias("offer_rank"),
        )
        .filter(col("offer_rank").lt_eq(lit(i64::from(OFFERS_PER_CUSTOMER))))
        .select([
            col(c::CUSTOMER_ID),
            col("offer_rank"),
            col(c::SERVICE),
            col("p_adopt"),
            col(c::MONTHLY_MARGIN),
            col("expected_monthly_margin"),
        ])
        .collect()
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
