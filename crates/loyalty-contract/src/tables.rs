//! The clean tables of a dataset, and where a pass over one customer partition reads
//! its rows from.
//!
//! A partition of the customers is, by default, a filter of every file by a hash of
//! the customer id: ten partitions read the data ten times. When the tables have been
//! copied once into customer hash buckets (`loyalty_io::BucketCopy`), a partition whose
//! count is a multiple of the bucket count reads its one bucket instead.

use std::any::Any;
use std::collections::BTreeMap;
use std::sync::Arc;

use polars::prelude::*;

use crate::partition::{Slice, partition_count, restrict};
use crate::spec::Table;

/// The tables of a dataset by table, each a lazy plan.
#[derive(Clone, Default)]
pub struct Tables {
    frames: BTreeMap<Table, LazyFrame>,
    buckets: Option<Buckets>,
}

/// A copy of the per-customer tables split by [`Slice::Partition`] of `count`:
/// bucket `k` of a table holds exactly its rows of partition `k`.
#[derive(Clone)]
struct Buckets {
    count: u32,
    scans: BTreeMap<Table, Vec<LazyFrame>>,
    /// Whatever holds the copy's files (a scratch folder removed on drop), kept alive
    /// as long as a plan may read them.
    _files: Arc<dyn Any + Send + Sync>,
}

impl Tables {
    pub fn new() -> Self {
        Self::default()
    }

    /// Add or replace a table; a replaced table is no longer read from buckets.
    pub fn insert(&mut self, table: Table, lf: LazyFrame) -> Option<LazyFrame> {
        if let Some(b) = &mut self.buckets {
            b.scans.remove(&table);
        }
        self.frames.insert(table, lf)
    }

    pub fn get(&self, table: &Table) -> Option<&LazyFrame> {
        self.frames.get(table)
    }

    pub fn contains_key(&self, table: &Table) -> bool {
        self.frames.contains_key(table)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&Table, &LazyFrame)> {
        self.frames.iter()
    }

    /// These tables, with `scans[table][k]` holding the rows of partition `k` of
    /// `count` of each per-customer table in `scans`, and `files` kept alive while any
    /// copy of the result is.
    pub fn with_buckets(
        mut self,
        count: u32,
        scans: BTreeMap<Table, Vec<LazyFrame>>,
        files: Arc<dyn Any + Send + Sync>,
    ) -> Self {
        let scans = scans.into_iter().filter(|(_, s)| s.len() == count as usize).collect();
        self.buckets = Some(Buckets { count, scans, _files: files });
        self
    }

    /// The bucket count, when the tables have a bucketed copy.
    pub fn bucket_count(&self) -> Option<u32> {
        self.buckets.as_ref().map(|b| b.count)
    }

    /// How many partitions keep about `per_partition` of `customers` customers in
    /// each: at least [`partition_count`]'s, rounded up to a multiple of the bucket
    /// count when there are buckets, so that every partition reads one bucket.
    pub fn partition_count(&self, customers: u64, per_partition: u64) -> u32 {
        let parts = partition_count(customers, per_partition);
        match self.bucket_count() {
            Some(b) if parts > 1 => parts.div_ceil(b) * b,
            _ => parts,
        }
    }

    /// These tables restricted to the customers of `slice` (all of them for None).
    ///
    /// A slice that lies within one bucket ([`Slice::within`]: a partition of a
    /// multiple of the bucket count, or a sample of at most one bucket's share) reads
    /// that bucket, filtered further unless it is the bucket itself.
    pub fn restricted(&self, slice: Option<Slice>) -> Tables {
        let Some(slice) = slice else { return self.clone() };
        let frames = self
            .frames
            .iter()
            .map(|(t, lf)| {
                let lf = match self.bucket_of(*t, slice) {
                    Some((bucket, true)) => bucket,
                    Some((bucket, false)) => restrict(*t, bucket, Some(slice)),
                    None => restrict(*t, lf.clone(), Some(slice)),
                };
                (*t, lf)
            })
            .collect();
        Tables { frames, buckets: None }
    }

    /// The bucket of `table` that holds every row of `slice`, if there is one, and
    /// whether it holds only those rows.
    fn bucket_of(&self, table: Table, slice: Slice) -> Option<(LazyFrame, bool)> {
        let b = self.buckets.as_ref()?;
        let bucket = slice.within(b.count)?;
        let whole = slice == Slice::Partition { index: bucket, count: b.count };
        let scans = b.scans.get(&table)?;
        Some((scans[bucket as usize].clone(), whole))
    }
}

impl std::ops::Index<&Table> for Tables {
    type Output = LazyFrame;

    fn index(&self, table: &Table) -> &LazyFrame {
        &self.frames[table]
    }
}

impl FromIterator<(Table, LazyFrame)> for Tables {
    fn from_iter<I: IntoIterator<Item = (Table, LazyFrame)>>(iter: I) -> Self {
        Tables { frames: iter.into_iter().collect(), buckets: None }
    }
}

impl IntoIterator for Tables {
    type Item = (Table, LazyFrame);
    type IntoIter = std::collections::btree_map::IntoIter<Table, LazyFrame>;

    fn into_iter(self) -> Self::IntoIter {
        self.frames.into_iter()
    }
}

impl<'a> IntoIterator for &'a Tables {
    type Item = (&'a Table, &'a LazyFrame);
    type IntoIter = std::collections::btree_map::Iter<'a, Table, LazyFrame>;

    fn into_iter(self) -> Self::IntoIter {
        self.frames.iter()
    }
}
