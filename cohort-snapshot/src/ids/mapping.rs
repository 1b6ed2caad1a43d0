//! Customer ids ↔ bit numbers: the identity mapping (integer ids within 0..=u32::MAX) or a
//! dictionary (everything else) in the order of its perfect hash, and the remapping of
//! scan positions to bits.

use std::sync::{Arc, OnceLock};

use arrow::array::{Array, ArrayRef, AsArray, StringArray, UInt32Array};
use arrow::buffer::{Buffer, OffsetBuffer};
use arrow::compute::{concat, sort_to_indices, take, SortOptions};
use arrow::datatypes::{DataType, Int64Type, UInt64Type};
use rayon::prelude::*;
use roaring::RoaringBitmap;

use crate::ids::perfect_hash::{self, PerfectHash};
use crate::ids::runs::Runs;
use crate::ids::transposed::{self, Route};
use crate::ids::IdKey;
use crate::{Error, Result};

/// How scan positions map to published bits.
#[derive(Debug)]
pub struct IdMapping {
    /// `Some(dictionary)` — external ids, row n = bit n — or `None` for identity (or once
    /// taken, for its encoding, by a publish that frees it when encoded).
    pub dictionary: Option<ArrayRef>,
    /// The dictionary's perfect hash, which numbered it (absent only for a dictionary
    /// that is sorted instead).
    pub hash_index: Option<PerfectHash>,
    /// Bit of each scan position (unused for positions with a null id).
    pos_to_bit: Vec<u32>,
    /// Whether bit n is id n.
    identity: bool,
    /// Whether bits increase with positions (sorted input), which makes remapping a copy.
    monotonic: bool,
    /// The mapping as long runs of consecutive positions to consecutive bits, when it is
    /// one (integer ids, sorted within each batch).
    runs: Option<Runs>,
    /// One more than the largest bit.
    bit_space: u64,
    /// The route of positions to chunks of bits, for remapping groups together; made on
    /// first use.
    route: OnceLock<Route>,
}

const EXAMPLES: usize = 5;
/// Groups with at least one member per this many bits are remapped together (measured:
/// docs/performance.md).
const TOGETHER_DENSITY: u64 = 32;
/// Ids gathered at once, in parallel, into the dictionary.
const GATHER_PART: usize = 1 << 20;

impl IdMapping {
    /// Builds the mapping for the scanned `ids` (normalized: Int64, UInt64 or Utf8);
    /// `universe` holds the positions with non-null ids. Duplicate ids are an error.
    pub fn build(ids: &ArrayRef, universe: &RoaringBitmap, id_column: &str) -> Result<IdMapping> {
        let mut pos_to_bit = match identity_bits(ids, universe) {
            Some(bits) => {
                check_identity_unique(&bits, universe, id_column)?;
                return Ok(Self::from_bits(None, None, bits, universe));
            }
            None => vec![u32::MAX; ids.len()],
        };
        let (dictionary, hash_index) = if let Some((hash_index, dictionary)) =
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
        Ok(Self::from_bits(
            dictionary, hash_index, pos_to_bit, universe,
        ))
    }

    /// The mapping of `pos_to_bit`, with whether it is monotonic and its bit space.
    fn from_bits(
        dictionary: Option<ArrayRef>,
        hash_index: Option<PerfectHash>,
        pos_to_bit: Vec<u32>,
        universe: &RoaringBitmap,
    ) -> IdMapping {
        let (monotonic, bit_space) = if universe.len() == pos_to_bit.len() as u64 {
            // Every position has an id (the usual case): the bits themselves, in order.
            (
                pos_to_bit.windows(2).all(|w| w[0] < w[1]),
                pos_to_bit.iter().max().map_or(0, |&m| m as u64 + 1),
            )
        } else {
            let mut last: Option<u32> = None;
            let mut monotonic = true;
            let mut bit_space = 0u64;
            for p in universe {
                let bit = pos_to_bit[p as usize];
                monotonic &= last.is_none_or(|l| bit > l);
                last = Some(bit);
                bit_space = bit_space.max(bit as u64 + 1);
            }
            (monotonic, bit_space)
        };
        IdMapping {
            identity: dictionary.is_none(),
            dictionary,
            hash_index,
            runs: Runs::of(&pos_to_bit),
            pos_to_bit,
            monotonic,
            bit_space,
            route: OnceLock::new(),
        }
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
        // Each id's hash, its column's type resolved once.
        let at = |i: usize| present[i] as usize;
        let key_hash: Box<dyn Fn(u64, usize) -> u64 + Sync> = match ids.data_type() {
            DataType::Int64 => {
                let ids = ids.as_primitive::<Int64Type>();
                Box::new(move |seed, i| perfect_hash::hash(seed, &ids.value(at(i)).to_le_bytes()))
            }
            DataType::UInt64 => {
                let ids = ids.as_primitive::<UInt64Type>();
                Box::new(move |seed, i| perfect_hash::hash(seed, &ids.value(at(i)).to_le_bytes()))
            }
            _ => {
                let ids = ids.as_string::<i32>();
                Box::new(move |seed, i| perfect_hash::hash(seed, ids.value(at(i)).as_bytes()))
            }
        };
        let Some((hash_index, rows)) = PerfectHash::build(present.len(), key_hash) else {
            return Ok(None);
        };
        for (&position, &bit) in present.iter().zip(&rows) {
            pos_to_bit[position as usize] = bit;
        }
        if let Some(dictionary) = fixed_width_in_order(ids, &present, &rows) {
            return Ok(Some((hash_index, dictionary)));
        }
        // Gathered in bit order a part at a time on every core (a gather of 10M text ids
        // on one core is a second of cache misses), then joined.
        let mut order = vec![0u32; present.len()];
        for (&position, &bit) in present.iter().zip(&rows) {
            order[bit as usize] = position;
        }
        let parts = order
            .par_chunks(GATHER_PART)
            .map(|part| take(ids.as_ref(), &UInt32Array::from(part.to_vec()), None))
            .collect::<std::result::Result<Vec<ArrayRef>, _>>()?;
        let dictionary = match parts.as_slice() {
            [one] => one.clone(),
            _ => concat(&parts.iter().map(|p| p.as_ref()).collect::<Vec<_>>())?,
        };
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
        self.identity
    }

    /// Maps a bitmap of scan positions to the published bit space.
    pub fn remap(&self, positions: &RoaringBitmap) -> RoaringBitmap {
        if self.bit_space / 8 <= 16 * positions.len() {
            if let Some(runs) = &self.runs {
                return runs.remap(positions, self.bit_space);
            }
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

    /// Most groups remapped at once by [`remap_together`](Self::remap_together).
    pub const TOGETHER: usize = transposed::BATCH;

    /// Whether `positions` is best remapped with others, by
    /// [`remap_together`](Self::remap_together): when positions map to bits in no order
    /// (text ids, numbered by a perfect hash) over a bit space not much larger than the
    /// positions, for a group dense enough that its members' scattered writes would cost
    /// more than its share of one pass over the mapping.
    pub fn remaps_together(&self, positions: &RoaringBitmap) -> bool {
        self.runs.is_none()
            && !self.monotonic
            && self.bit_space <= 2 * self.pos_to_bit.len() as u64
            && positions.len() * TOGETHER_DENSITY >= self.bit_space
    }

    /// [`remap`](Self::remap) for up to [`TOGETHER`](Self::TOGETHER) bitmaps at once, on
    /// every core: one pass over the mapping for all of them.
    pub fn remap_together(&self, groups: &[&RoaringBitmap]) -> Vec<RoaringBitmap> {
        if groups.len() > Self::TOGETHER {
            return self.remap_all(groups);
        }
        self.route
            .get_or_init(|| Route::of(&self.pos_to_bit, self.bit_space))
            .remap(groups)
    }

    /// [`remap`](Self::remap) for many bitmaps, spread over the cores.
    pub fn remap_all(&self, bitmaps: &[&RoaringBitmap]) -> Vec<RoaringBitmap> {
        bitmaps.par_iter().map(|b| self.remap(b)).collect()
    }
}

/// The dictionary when every id is text of one width (zero-padded codes, UUIDs): each id
/// copied to its bit's place, the ids read in position order, where a gather in bit
/// order would miss the cache twice per id. `None` for other ids. The same array as
/// `take` in bit order.
fn fixed_width_in_order(ids: &ArrayRef, present: &[u32], rows: &[u32]) -> Option<ArrayRef> {
    let ids = ids.as_string_opt::<i32>()?;
    let offsets = ids.value_offsets();
    let length = |p: u32| (offsets[p as usize + 1] - offsets[p as usize]) as usize;
    let width = length(*present.first()?);
    if width == 0 || !present.iter().all(|&p| length(p) == width) {
        return None;
    }
    let values = ids.value_data();
    let mut out = vec![0u8; present.len() * width];
    for (&p, &bit) in present.iter().zip(rows) {
        let from = offsets[p as usize] as usize;
        out[bit as usize * width..][..width].copy_from_slice(&values[from..from + width]);
    }
    let offsets = OffsetBuffer::from_lengths(std::iter::repeat_n(width, present.len()));
    let array = StringArray::try_new(offsets, Buffer::from_vec(out), None).ok()?;
    Some(Arc::new(array))
}

/// The bit of each position when the ids are integers within `0..=u32::MAX` (the id
/// itself; `u32::MAX` where the id is null), or `None` when some id is not.
fn identity_bits(ids: &ArrayRef, universe: &RoaringBitmap) -> Option<Vec<u32>> {
    fn bits<T: Copy + Send + Sync>(
        values: &[T],
        universe: &RoaringBitmap,
        bit: impl Fn(T) -> Option<u32> + Sync,
    ) -> Option<Vec<u32>> {
        if universe.len() == values.len() as u64 {
            // Every position has an id: all of them, on every core.
            return values.par_iter().map(|&v| bit(v)).collect();
        }
        let mut out = vec![u32::MAX; values.len()];
        for p in universe {
            out[p as usize] = bit(values[p as usize])?;
        }
        Some(out)
    }
    match ids.data_type() {
        DataType::Int64 => bits(ids.as_primitive::<Int64Type>().values(), universe, |v| {
            u32::try_from(v).ok()
        }),
        DataType::UInt64 => bits(ids.as_primitive::<UInt64Type>().values(), universe, |v| {
            u32::try_from(v).ok()
        }),
        _ => None,
    }
}

/// Refuses repeated ids under the identity mapping (each position's bit, in position
/// order).
fn check_identity_unique(bits: &[u32], universe: &RoaringBitmap, id_column: &str) -> Result<()> {
    let (rows, repeated) = if universe.len() == bits.len() as u64 {
        repeated_bits(bits.iter().copied(), bits.len())
    } else {
        repeated_bits(universe.iter().map(|p| bits[p as usize]), bits.len())
    };
    if rows > 0 {
        let examples: Vec<String> = repeated.iter().map(|d| d.to_string()).collect();
        return Err(duplicate_error(id_column, rows, &examples));
    }
    Ok(())
}

/// How many of `bits` repeat an earlier one, and the first few repeated (`positions`
/// being about how many there are).
fn repeated_bits(bits: impl Iterator<Item = u32> + Clone, positions: usize) -> (u64, Vec<u32>) {
    /// Bits seen so far: a plain bitset when the bits are dense enough for one (at most
    /// 64 bits of it per position), a Roaring bitmap otherwise.
    enum Seen {
        Dense(Vec<u64>),
        Sparse(RoaringBitmap),
    }
    impl Seen {
        /// Marks `bit`; whether it was marked before.
        fn again(&mut self, bit: u32) -> bool {
            match self {
                Seen::Dense(words) => {
                    let (word, mask) = (&mut words[bit as usize / 64], 1u64 << (bit % 64));
                    let again = *word & mask != 0;
                    *word |= mask;
                    again
                }
                Seen::Sparse(bitmap) => !bitmap.insert(bit),
            }
        }
    }
    let space = bits.clone().max().map_or(0, |m| m as u64 + 1);
    let mut seen = match space <= 64 * positions.max(1 << 16) as u64 {
        true => Seen::Dense(vec![0u64; (space as usize).div_ceil(64)]),
        false => Seen::Sparse(RoaringBitmap::new()),
    };
    let (mut rows, mut repeated) = (0u64, Vec::new());
    for bit in bits {
        if seen.again(bit) {
            rows += 1;
            if repeated.len() < EXAMPLES && !repeated.contains(&bit) {
                repeated.push(bit);
            }
        }
    }
    (rows, repeated)
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

    /// Row n of the dictionary is the id of bit n, whether the ids have one width (copied
    /// to their places) or not (gathered), with null ids skipped.
    #[test]
    fn the_dictionary_holds_each_bits_id() {
        for width in [Some(7), None] {
            let ids: ArrayRef = Arc::new(StringArray::from_iter((0..3000).map(|i| {
                let id = match width {
                    Some(w) => format!("{:0w$}", (i * 7919) % 3000, w = w),
                    None => format!("id-{}", (i * 7919) % 3000),
                };
                (i % 10 != 3).then_some(id)
            })));
            let universe: RoaringBitmap = (0..3000u32).filter(|i| i % 10 != 3).collect();
            let mapping = IdMapping::build(&ids, &universe, "id").unwrap();
            let dictionary = mapping
                .dictionary
                .as_ref()
                .unwrap()
                .as_string::<i32>()
                .clone();
            assert_eq!(dictionary.len(), universe.len() as usize);
            let strings = ids.as_string::<i32>();
            for p in &universe {
                let bit = mapping.pos_to_bit[p as usize] as usize;
                assert_eq!(
                    dictionary.value(bit),
                    strings.value(p as usize),
                    "{width:?}"
                );
            }
        }
    }

    /// Repeated integer ids are found alike whether the ids are dense enough for a plain
    /// bitset or so far apart that a Roaring bitmap is used, with or without null ids.
    #[test]
    fn repeated_integer_ids_are_found_dense_or_sparse() {
        for (what, scale) in [("dense", 1i64), ("sparse", 1 << 28)] {
            let ids: ArrayRef = Arc::new(Int64Array::from_iter_values(
                [5, 1, 5, 7, 1, 5, 9].map(|i| i * scale),
            ));
            for universe in [
                (0..7).collect::<RoaringBitmap>(),
                [0u32, 2, 3, 4, 6].into_iter().collect(),
            ] {
                let full = universe.len() == 7;
                let err = IdMapping::build(&ids, &universe, "id").unwrap_err();
                let Error::DuplicateIds { rows, examples, .. } = err else {
                    panic!("{what}: {err}");
                };
                let expected = match full {
                    true => (3, vec![5 * scale, scale]),
                    false => (1, vec![5 * scale]),
                };
                let examples: Vec<i64> = examples.iter().map(|e| e.parse().unwrap()).collect();
                assert_eq!((rows, examples), expected, "{what}, full: {full}");
            }
        }
    }

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
                "dictionary of one width, shuffled",
                Arc::new(StringArray::from_iter_values(
                    (0..5000).map(|i| format!("c{:05}", (i * 7919) % 5000)),
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
