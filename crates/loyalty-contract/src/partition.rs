//! Customer hash partitions: the stages whose state grows with the number of
//! customers (per-customer group-bys, reference checks, feature assembly) run once per
//! partition, so their memory is bounded by the partition's size, not the dataset's.
//!
//! A customer's partition is a hash of its id, so every table's rows of one customer
//! land in the same partition and a per-customer result computed partition by
//! partition is exactly the result computed at once.

use polars::prelude::*;

use crate::spec::{Table, col as c};

/// The hash a customer id is partitioned and sampled by: splitmix64's finaliser
/// (well spread even for sequential ids), its top 32 bits.
pub fn customer_hash(id: i64) -> u32 {
    let mut z = (id as u64).wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    ((z ^ (z >> 31)) >> 32) as u32
}

/// [`customer_hash`] of an Int64 column, as UInt32 (null stays null).
pub fn hash_expr(id: Expr) -> Expr {
    id.map(
        |c| {
            let ids = c.as_materialized_series().cast(&DataType::Int64)?;
            let h: UInt32Chunked = ids.i64()?.iter().map(|v| v.map(customer_hash)).collect();
            Ok(h.with_name(c.name().clone()).into_column())
        },
        |_, f| Ok(Field::new(f.name().clone(), DataType::UInt32)),
    )
}

/// The partition of `count` that hash `h` falls in: partition `k` holds the `k`-th
/// of `count` equal shares of the hash range, so a small sample (the lowest hashes)
/// lies in partition 0, and partition `k` of `m * count` in partition `k / m` of `count`.
pub fn partition_of(h: u32, count: u32) -> u32 {
    ((u64::from(h) * u64::from(count)) >> 32) as u32
}

/// The hashes of partition `index` of `count` ([`partition_of`]): `lo..hi`.
fn hash_range(index: u32, count: u32) -> (u64, u64) {
    let bound = |k: u32| (u64::from(k) << 32).div_ceil(u64::from(count.max(1)));
    (bound(index), bound(index + 1))
}

/// One slice of the customers: partition `index` of `count`, or a uniform sample.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Slice {
    /// Customers whose hash falls in partition `index` of `count` ([`partition_of`]).
    Partition { index: u32, count: u32 },
    /// Customers whose hash falls below `fraction` of its range: a uniform sample,
    /// the same customers at every date.
    Sample { fraction: f64 },
}

impl Slice {
    /// Whether the row's `id_column` (a customer id) is in the slice (as [`Slice::contains`]).
    pub fn predicate(&self, id_column: &str) -> Expr {
        let h = hash_expr(col(id_column));
        match *self {
            Slice::Partition { index, count } => {
                let (lo, hi) = hash_range(index, count);
                let h = h.cast(DataType::Int64);
                h.clone().gt_eq(lit(lo as i64)).and(h.lt(lit(hi as i64)))
            }
            Slice::Sample { fraction } => h.cast(DataType::Float64).lt(lit(sample_bound(fraction))),
        }
    }

    /// Whether customer `id` is in the slice.
    pub fn contains(&self, id: i64) -> bool {
        let h = customer_hash(id);
        match *self {
            Slice::Partition { index, count } => partition_of(h, count) == index,
            Slice::Sample { fraction } => f64::from(h) < sample_bound(fraction),
        }
    }

    /// The partitions `0..count`.
    pub fn partitions(count: u32) -> impl Iterator<Item = Slice> {
        (0..count.max(1)).map(move |index| Slice::Partition { index, count: count.max(1) })
    }

    /// The partition of `count` that holds every customer of this slice, if one does.
    pub fn within(&self, count: u32) -> Option<u32> {
        let count = count.max(1);
        match *self {
            Slice::Partition { index, count: own } if own % count == 0 => Some(index / (own / count)),
            Slice::Partition { .. } => None,
            Slice::Sample { fraction } => (sample_bound(fraction) <= hash_range(0, count).1 as f64).then_some(0),
        }
    }

    /// The slices of a pass in `count` partitions: `[None]` (everything at once) for
    /// one partition.
    pub fn split(count: u32) -> Vec<Option<Slice>> {
        if count <= 1 { vec![None] } else { Slice::partitions(count).map(Some).collect() }
    }
}

/// Hashes below this bound are in a sample of `fraction`.
fn sample_bound(fraction: f64) -> f64 {
    fraction.clamp(0.0, 1.0) * 4_294_967_296.0
}

/// The column holding the customer a table's row belongs to (None: not per customer).
pub fn customer_column(table: Table) -> Option<&'static str> {
    match table {
        Table::Markets | Table::ServiceCatalog => None,
        _ => Some(c::CUSTOMER_ID),
    }
}

/// `lf` (rows of `table`) restricted to the customers of `slice`; tables that are not
/// per customer are returned whole.
pub fn restrict(table: Table, lf: LazyFrame, slice: Option<Slice>) -> LazyFrame {
    match (slice, customer_column(table)) {
        (Some(s), Some(id)) => lf.filter(s.predicate(id)),
        _ => lf,
    }
}

/// How many partitions keep about `per_partition` customers in each (at least one).
pub fn partition_count(customers: u64, per_partition: u64) -> u32 {
    if per_partition == 0 {
        return 1;
    }
    customers.div_ceil(per_partition).clamp(1, 4096) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partitions_cover_every_customer_once_and_are_balanced() {
        let ids: Vec<i64> = (0..40_000).chain([-5, i64::MIN, i64::MAX]).collect();
        let df = df!(c::CUSTOMER_ID => &ids).unwrap();
        let mut seen = 0;
        for s in Slice::partitions(4) {
            let part = df.clone().lazy().filter(s.predicate(c::CUSTOMER_ID)).collect().unwrap();
            // 40,003 ids in 4 partitions: each within 3% of a quarter.
            assert!((part.height() as f64 - 10_000.0).abs() < 300.0, "{s:?}: {}", part.height());
            seen += part.height();
        }
        assert_eq!(seen, ids.len());
    }

    #[test]
    fn a_sample_keeps_its_fraction_and_is_not_a_block_of_ids() {
        let ids: Vec<i64> = (1..=100_000).collect();
        let df = df!(c::CUSTOMER_ID => &ids).unwrap();
        let kept = df.lazy().filter(Slice::Sample { fraction: 0.2 }.predicate(c::CUSTOMER_ID)).collect().unwrap();
        assert!((kept.height() as f64 - 20_000.0).abs() < 500.0, "{}", kept.height());
        // Sequential ids (often in signup order) are sampled across the whole range.
        let ids = kept.column(c::CUSTOMER_ID).unwrap().i64().unwrap().clone();
        let first_half = ids.iter().flatten().filter(|&v| v <= 50_000).count() as f64;
        assert!((first_half / kept.height() as f64 - 0.5).abs() < 0.02);
    }

    #[test]
    fn contains_agrees_with_the_predicate() {
        let ids: Vec<i64> = (-500..500).collect();
        let df = df!(c::CUSTOMER_ID => &ids).unwrap();
        let slices = [
            Slice::Partition { index: 0, count: 3 },
            Slice::Partition { index: 2, count: 3 },
            Slice::Partition { index: 6, count: 7 },
            Slice::Sample { fraction: 0.3 },
        ];
        for s in slices {
            let kept = df.clone().lazy().filter(s.predicate(c::CUSTOMER_ID)).collect().unwrap();
            let by_expr: Vec<i64> = kept.column(c::CUSTOMER_ID).unwrap().i64().unwrap().iter().flatten().collect();
            let by_fn: Vec<i64> = ids.iter().copied().filter(|id| s.contains(*id)).collect();
            assert_eq!(by_expr, by_fn, "{s:?}");
        }
    }

    #[test]
    fn partitions_are_shares_of_the_hash_range_and_nest() {
        let ids: Vec<i64> = (-2_000..20_000).chain([i64::MIN, i64::MAX]).collect();
        for id in ids {
            let h = customer_hash(id);
            let (k10, k30) = (partition_of(h, 10), partition_of(h, 30));
            assert!(k10 < 10 && k30 < 30);
            // A partition of 30 lies in one of 10, and both agree with `contains`.
            assert_eq!(k30 / 3, k10, "{id}");
            assert_eq!(Slice::Partition { index: k30, count: 30 }.within(10), Some(k10));
            assert!(Slice::Partition { index: k10, count: 10 }.contains(id));
            assert!(!Slice::Partition { index: (k10 + 1) % 10, count: 10 }.contains(id));
            // A sample of up to a tenth lies in partition 0 of 10.
            if (Slice::Sample { fraction: 0.1 }).contains(id) {
                assert_eq!(k10, 0, "{id}");
            }
        }
        assert_eq!(Slice::Sample { fraction: 0.1 }.within(10), Some(0));
        assert_eq!(Slice::Sample { fraction: 0.11 }.within(10), None);
        assert_eq!(Slice::Partition { index: 4, count: 15 }.within(10), None);
        assert_eq!((partition_of(0, 7), partition_of(u32::MAX, 7)), (0, 6));
    }

    #[test]
    fn partition_count_rounds_up() {
        assert_eq!(partition_count(0, 1_000_000), 1);
        assert_eq!(partition_count(1_000_000, 1_000_000), 1);
        assert_eq!(partition_count(1_000_001, 1_000_000), 2);
        assert_eq!(partition_count(10_000_000, 1_500_000), 7);
        assert_eq!(partition_count(5, 0), 1);
    }
}
