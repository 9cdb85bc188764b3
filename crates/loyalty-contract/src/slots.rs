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
/// (the usual case: a sequence) index an array directly; others go through a hash map.
pub enum Slots {
    Dense { min: i64, index: Vec<u32> },
    Sparse(HashMap<i64, u32, BuildHasherDefault<IdHasher>>),
}

impl Slots {
    pub fn new(ids: &[i64]) -> Self {
        let (Some(&min), Some(&max)) = (ids.iter().min(), ids.iter().max()) else {
            return Slots::Dense { min: 0, index: Vec::new() };
        };
        let span = i128::from(max) - i128::from(min) + 1;
        if span <= 4 * ids.len() as i128 + 4096 {
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
