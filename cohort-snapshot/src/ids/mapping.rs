//! Customer ids ↔ bit numbers: the identity mapping (integer ids within 0..=u32::MAX) or a
//! dictionary (everything else) in the order of its perfect hash, and the remapping of
//! scan positions to bits.

use arrow::array::{Array, ArrayRef, AsArray, UInt32Array};
use arrow::compute::{sort_to_indices, take, SortOptions};
use arrow::datatypes::{DataType, Int64Type, UInt64Type};
use roaring::RoaringBitmap;

use crate::ids::perfect_hash::{self, PerfectHash};
use crate::ids::IdKey;
use crate::{Error, Result};

/// How scan positions map to published bits.
#[derive(Debug)]
pub struct IdMapping {
    /// `Some(dictionary)` — external ids, row n = bit n — or `None` for identity.
    pub dictionary: Option<ArrayRef>,
    /// The dictionary's perfect hash, which numbered it (absent only for a dictionary
    /// that is sorted instead).
    pub hash_index: Option<PerfectHash>,
    /// Bit of each scan position (unused for positions with a null id).
    pos_to_bit: Vec<u32>,
    /// Whether bits increase with positions (sorted input), which makes remapping a copy.
    monotonic: bool,
    /// One more than the largest bit.
    bit_space: u64,
}

const EXAMPLES: usize = 5;

impl IdMapping {
    /// Builds the mapping for the scanned `ids` (normalized: Int64, UInt64 or Utf8);
    /// `universe` holds the positions with non-null ids. Duplicate ids are an error.
    pub fn build(ids: &ArrayRef, universe: &RoaringBitmap, id_column: &str) -> Result<IdMapping> {
        let identity = match ids.data_type() {
            DataType::Int64 => {
                let a = ids.as_primitive::<Int64Type>();
                universe
                    .iter()
                    .all(|p| (0..=u32::MAX as i64).contains(&a.value(p as usize)))
            }
            DataType::UInt64 => {
                let a = ids.as_primitive::<UInt64Type>();
                universe
                    .iter()
                    .all(|p| a.value(p as usize) <= u32::MAX as u64)
            }
            _ => false,
        };
        let mut pos_to_bit = vec![u32::MAX; ids.len()];
        let (dictionary, hash_index) = if identity {
            let values: Vec<u32> = match ids.data_type() {
                DataType::Int64 => ids
                    .as_primitive::<Int64Type>()
                    .values()
                    .iter()
                    .map(|v| *v as u32)
                    .collect(),
                _ => ids
                    .as_primitive::<UInt64Type>()
                    .values()
                    .iter()
                    .map(|v| *v as u32)
                    .collect(),
            };
            let mut seen = RoaringBitmap::new();
            let mut duplicates = Vec::new();
            let mut duplicate_rows = 0u64;
            for p in universe {
                let bit = values[p as usize];
                if !seen.insert(bit) {
                    duplicate_rows += 1;
                    if duplicates.len() < EXAMPLES && !duplicates.contains(&bit) {
                        duplicates.push(bit);
                    }
                }
                pos_to_bit[p as usize] = bit;
            }
            if duplicate_rows > 0 {
                let examples: Vec<String> = duplicates.iter().map(|d| d.to_string()).collect();
                return Err(duplicate_error(id_column, duplicate_rows, &examples));
            }
            (None, None)
        } else if let Some((hash_index, dictionary)) =
            Self::in_hash_order(ids, universe, &mut pos_to_bit)?
        {
            (Some(dictionary), Some(hash_index))
        } else {
            // Repeated ids (or, about never, a hash that would not build): sort, which
            // finds the repeats to report, or else gives a sorted dictionary without one.
            (
                Some(Self::sorted(ids, universe, id_column, &mut pos_to_bit)?),
                None,
            )
        };
        let mut last: Option<u32> = None;
        let mut monotonic = true;
        let mut bit_space = 0u64;
        for p in universe {
            let bit = pos_to_bit[p as usize];
            monotonic &= last.is_none_or(|l| bit > l);
            last = Some(bit);
            bit_space = bit_space.max(bit as u64 + 1);
        }
        Ok(IdMapping {
            dictionary,
            hash_index,
            pos_to_bit,
            monotonic,
            bit_space,
        })
    }

    /// Numbers the customers in the order of a perfect hash of their ids: returns the hash
    /// and the dictionary in that order, or `None` when the hash does not build (repeated
    /// ids).
    fn in_hash_order(
        ids: &ArrayRef,
        universe: &RoaringBitmap,
        pos_to_bit: &mut [u32],
    ) -> Result<Option<(PerfectHash, ArrayRef)>> {
        let present: Vec<u32> = universe.iter().collect();
        let key_hash = |seed: u64, i: usize| {
            let row = present[i] as usize;
            match ids.data_type() {
                DataType::Int64 => {
                    let id = ids.as_primitive::<Int64Type>().value(row);
                    perfect_hash::hash(seed, &id.to_le_bytes())
                }
                DataType::UInt64 => {
                    let id = ids.as_primitive::<UInt64Type>().value(row);
                    perfect_hash::hash(seed, &id.to_le_bytes())
                }
                _ => perfect_hash::hash(seed, ids.as_string::<i32>().value(row).as_bytes()),
            }
        };
        let Some((hash_index, rows)) = PerfectHash::build(present.len(), key_hash) else {
            return Ok(None);
        };
        let mut order = vec![0u32; present.len()];
        for (&position, &bit) in present.iter().zip(&rows) {
            order[bit as usize] = position;
            pos_to_bit[position as usize] = bit;
        }
        let dictionary = take(ids.as_ref(), &UInt32Array::from(order), None)?;
        Ok(Some((hash_index, dictionary)))
    }

    /// Numbers the customers in id order, refusing repeated ids; returns the dictionary.
    fn sorted(
        ids: &ArrayRef,
        universe: &RoaringBitmap,
        id_column: &str,
        pos_to_bit: &mut [u32],
    ) -> Result<ArrayRef> {
        let options = SortOptions {
            descending: false,
            nulls_first: false,
        };
        let order = sort_to_indices(ids.as_ref(), Some(options), None)?;
        let present = universe.len() as usize;
        let order = order.slice(0, present);
        let sorted = take(ids.as_ref(), &order, None)?;
        let mut duplicate_rows = 0u64;
        let mut examples = Vec::new();
        for rank in 1..present {
            if IdKey::of_row(&sorted, rank) == IdKey::of_row(&sorted, rank - 1) {
                duplicate_rows += 1;
                let id = IdKey::of_row(&sorted, rank).unwrap().to_string();
                if examples.len() < EXAMPLES && examples.last() != Some(&id) {
                    examples.push(id);
                }
            }
        }
        if duplicate_rows > 0 {
            return Err(duplicate_error(id_column, duplicate_rows, &examples));
        }
        for (rank, pos) in order.values().iter().enumerate() {
            pos_to_bit[*pos as usize] = rank as u32;
        }
        Ok(sorted)
    }

    /// The duplicate-id check of [`build`](Self::build) alone, without numbering anything:
    /// what `size` and `run --dry-run` run so that they never succeed where a run fails.
    pub fn check_unique(ids: &ArrayRef, universe: &RoaringBitmap, id_column: &str) -> Result<()> {
        use rayon::slice::ParallelSliceMut;
        fn repeats<T: Ord + Send + ToString>(mut keys: Vec<T>) -> (u64, Vec<String>) {
            keys.par_sort_unstable();
            let mut rows = 0u64;
            let mut examples: Vec<String> = Vec::new();
            for pair in keys.windows(2) {
                if pair[0] == pair[1] {
                    rows += 1;
                    let id = pair[1].to_string();
                    if examples.len() < EXAMPLES && examples.last() != Some(&id) {
                        examples.push(id);
                    }
                }
            }
            (rows, examples)
        }
        let (rows, examples) = match ids.data_type() {
            DataType::Int64 => {
                let a = ids.as_primitive::<Int64Type>();
                repeats(universe.iter().map(|p| a.value(p as usize)).collect())
            }
            DataType::UInt64 => {
                let a = ids.as_primitive::<UInt64Type>();
                repeats(universe.iter().map(|p| a.value(p as usize)).collect())
            }
            _ => {
                let a = ids.as_string::<i32>();
                repeats(
                    universe
                        .iter()
                        .map(|p| a.value(p as usize))
                        .collect::<Vec<&str>>(),
                )
            }
        };
        if rows > 0 {
            return Err(duplicate_error(id_column, rows, &examples));
        }
        Ok(())
    }

    /// Whether the mapping is the identity (bit n = id n).
    pub fn is_identity(&self) -> bool {
        self.dictionary.is_none()
    }

    /// Maps a bitmap of scan positions to the published bit space.
    pub fn remap(&self, positions: &RoaringBitmap) -> RoaringBitmap {
        if self.bit_space / 8 <= 16 * positions.len() {
            // Scatter into a plain bitset (one byte per 8 bits, cache-sized for millions of
            // customers), then convert in bulk: no sort. Used unless the group is so sparse
            // that the bitset would outweigh a sorted vector of its members.
            let mut bytes = vec![0u8; (self.bit_space as usize).div_ceil(8)];
            self.each_bit(positions, |bit| bytes[bit as usize >> 3] |= 1 << (bit & 7));
            RoaringBitmap::from_lsb0_bytes(0, &bytes)
        } else {
            let mut bits = Vec::with_capacity(positions.len() as usize);
            self.each_bit(positions, |bit| bits.push(bit));
            if !self.monotonic {
                bits.sort_unstable();
            }
            RoaringBitmap::from_sorted_iter(bits).expect("sorted")
        }
    }

    /// Calls `f` with the bit of each of `positions`, in position order.
    fn each_bit(&self, positions: &RoaringBitmap, mut f: impl FnMut(u32)) {
        // Positions are read thousands at a time (`next_many`): one at a time, the
        // iterator cost more than the mapping.
        let mut iter = positions.iter();
        let mut chunk = vec![0u32; 4096];
        loop {
            let read = iter.next_many(&mut chunk);
            if read.is_empty() {
                break;
            }
            for p in read.iter() {
                f(self.pos_to_bit[*p as usize]);
            }
        }
    }

    /// [`remap`](Self::remap) for many bitmaps, spread over the cores.
    pub fn remap_all(&self, bitmaps: &[&RoaringBitmap]) -> Vec<RoaringBitmap> {
        use rayon::prelude::*;
        bitmaps.par_iter().map(|b| self.remap(b)).collect()
    }
}

/// The error for repeated ids in `id_column`: how many extra rows, and a few examples.
pub fn duplicate_error(id_column: &str, rows: u64, examples: &[String]) -> Error {
    Error::DuplicateIds {
        column: id_column.to_string(),
        rows,
        examples: examples.to_vec(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Int64Array, StringArray};
    use std::sync::Arc;

    /// Every remapping strategy (monotonic copy, bitset scatter, sort) gives the bits of
    /// the same customers.
    #[test]
    fn remap_agrees_with_the_id_of_each_position() {
        let cases: Vec<(&str, ArrayRef)> = vec![
            (
                "identity, sorted",
                Arc::new(Int64Array::from_iter_values(0..5000)),
            ),
            (
                "identity, shuffled",
                Arc::new(Int64Array::from_iter_values(
                    (0..5000).map(|i| (i * 7919) % 5000),
                )),
            ),
            (
                "identity, sparse ids far apart",
                Arc::new(Int64Array::from_iter_values(
                    (0..5000).rev().map(|i| i * 800_000),
                )),
            ),
            (
                "dictionary, shuffled",
                Arc::new(StringArray::from_iter_values(
                    (0..5000).map(|i| format!("c{}", (i * 7919) % 5000)),
                )),
            ),
        ];
        for (what, ids) in cases {
            let universe: RoaringBitmap = (0..ids.len() as u32).collect();
            let mapping = IdMapping::build(&ids, &universe, "id").unwrap();
            for positions in [
                RoaringBitmap::new(),
                [3u32, 4000].into_iter().collect(),
                (0..5000).step_by(3).collect::<RoaringBitmap>(),
                universe.clone(),
            ] {
                let expected: RoaringBitmap = positions
                    .iter()
                    .map(|p| mapping.pos_to_bit[p as usize])
                    .collect();
                assert_eq!(mapping.remap(&positions), expected, "{what}");
                assert_eq!(mapping.remap_all(&[&positions]), vec![expected], "{what}");
            }
        }
    }
}
