//! Customer ids to dense positions: the index a per-customer kernel keeps its state at.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// Multiplicative hashing of integer ids (the keys are not attacker-controlled).
#[derive(Default)]
pub struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0.rotate_left(5) ^ u64::from(*b)).wrapping_mul(0x517c_c1b7_2722_0a95);
        }
    }
    fn write_i64(&mut self, v: i64) {
        let h = (v as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        self.0 = h ^ (h >> 29);
    }
}

/// customer_id -> slot (position in the customers table). Ids in a compact range
/// (the usual case: a sequence, or one hash partition of one) index an array
/// directly; others go through a hash map.
///
/// A partition of `P` holds one id in about `P` of its range, so its direct index is
/// `P` times longer than it is full. It is used up to [`SPARSEST`]: a kernel's rows
/// come in id order within a file, and so do its slots, so a direct lookup reads the
/// index and the state nearly in sequence, where a hash lookup misses the cache on
/// every row (70% of the billing kernel's time at 1M customers in a partition).
pub enum Slots {
    Dense { min: i64, index: Vec<u32> },
    Sparse(HashMap<i64, u32, BuildHasherDefault<IdHasher>>),
}

/// The most index entries per id a direct index may take.
const SPARSEST: i128 = 64;

/// The longest direct index (entries of 4 bytes: 256 MiB) a sparse id set may take.
const MAX_DENSE: i128 = 1 << 26;

impl Slots {
    pub fn new(ids: &[i64]) -> Self {
        let (Some(&min), Some(&max)) = (ids.iter().min(), ids.iter().max()) else {
            return Slots::Dense { min: 0, index: Vec::new() };
        };
        let span = i128::from(max) - i128::from(min) + 1;
        let n = ids.len() as i128;
        if span <= 4 * n + 4096 || (span <= SPARSEST * n && span <= MAX_DENSE) {
            let mut index = vec![u32::MAX; span as usize];
            for (slot, &id) in ids.iter().enumerate() {
                index[(id - min) as usize] = slot as u32;
            }
            Slots::Dense { min, index }
        } else {
            let mut map = HashMap::with_capacity_and_hasher(ids.len(), BuildHasherDefault::<IdHasher>::default());
            for (slot, &id) in ids.iter().enumerate() {
                map.insert(id, slot as u32);
            }
            Slots::Sparse(map)
        }
    }

    #[inline]
    pub fn get(&self, id: i64) -> Option<usize> {
        match self {
            Slots::Dense { min, index } => {
                let i = id.checked_sub(*min)?;
                let slot = *index.get(usize::try_from(i).ok()?)?;
                (slot != u32::MAX).then_some(slot as usize)
            }
            Slots::Sparse(map) => map.get(&id).map(|&s| s as usize),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slots_of(ids: &[i64]) -> (Slots, Vec<Option<usize>>) {
        let slots = Slots::new(ids);
        let found = ids.iter().map(|&id| slots.get(id)).collect();
        (slots, found)
    }

    #[test]
    fn a_hash_partition_of_a_sequence_is_indexed_directly() {
        // One partition of ten of the ids 1..=100_000, in id order.
        let ids: Vec<i64> = (1..=100_000).filter(|&id| crate::partition::customer_hash(id) % 10 == 3).collect();
        let (slots, found) = slots_of(&ids);
        assert!(matches!(slots, Slots::Dense { .. }));
        assert_eq!(found, (0..ids.len()).map(Some).collect::<Vec<_>>());
        // Ids of other partitions, and outside the range, have no slot.
        let others = (1..=100_000).filter(|&id| crate::partition::customer_hash(id) % 10 != 3);
        assert!(others.chain([0, -5, 100_001, i64::MAX, i64::MIN]).all(|id| slots.get(id).is_none()));
    }

    #[test]
    fn scattered_ids_go_through_the_hash_map_with_the_same_answers() {
        let ids: Vec<i64> = (0..1_000).map(|i| i * 1_000_003 - 7).chain([i64::MIN, i64::MAX]).collect();
        let (slots, found) = slots_of(&ids);
        assert!(matches!(slots, Slots::Sparse(_)));
        assert_eq!(found, (0..ids.len()).map(Some).collect::<Vec<_>>());
        assert!([0, 1, 1_000_002, -8].iter().all(|&id| slots.get(id).is_none()));
    }
}
