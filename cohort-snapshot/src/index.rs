//! The in-memory membership index a loaded run answers lookups from, built from every
//! group's Roaring containers as parsed (and checked) from the portable format.
//!
//! Why not `RoaringBitmap::contains`: it binary-searches the container list and then,
//! for array containers, the values — several dependent cache misses per probe on a
//! snapshot far larger than the CPU cache.
//!
//! Layout. Groups get columns of one bit matrix stored customer by customer, so a
//! customer's bits for all of them sit in `stride` adjacent bytes (13 bytes for 100
//! groups). Then `contains` reads one byte, at an address computed from the chunk's row
//! and the group's column with nothing read first, and `groups_of` reads one customer's
//! bytes. A column costs what a plain bitset does (n/8 bytes), but the cache lines a
//! workload touches grow with the customers it asks about, not with (customer, group)
//! pairs: a service checking a few thousand customers against many groups keeps them in
//! the CPU cache. Groups with a container over [`SMALL_ARRAY`] values get a column first
//! (within the matrix budget, so memory stays proportional to what is stored);
//! the others do too, largest first, while the matrix stays within [`MATRIX_BUDGET`]
//! times the containers' own bytes. Groups left over stay sorted arrays found through a
//! (chunk, group) slot table.

use crate::Malformed;
use std::borrow::Cow;

use rayon::prelude::*;
use roaring::RoaringBitmap;

use super::memory::huge_page_zeroed;
pub use super::portable::{parse_group, parsed_bytes, ParsedGroup, SMALL_ARRAY};
use super::portable::{Container, GroupData, Slot, WORDS_PER_BITMAP};
use super::transpose::transpose64;

const CHUNK: usize = 1 << 16;
const NO_ROW: u32 = u32::MAX;
/// The matrix may take up to this many times the bytes of the groups' containers.
pub const MATRIX_BUDGET: usize = 2;
/// ... or this many bytes (one chunk's first byte: a run of one chunk gets 8 columns
/// whatever its containers weigh).
const MATRIX_FLOOR: usize = CHUNK;

/// All groups of one run.
#[derive(Debug, Default)]
pub struct MembershipIndex {
    /// Chunk key (bit >> 16) → row, or `NO_ROW` when no group has that chunk.
    rows: Vec<u32>,
    /// Where each group's members are, by group number.
    places: Vec<Place>,
    /// Column k's group number.
    dense: Vec<usize>,
    /// Sparse group s's group number.
    sparse: Vec<usize>,
    /// Bytes per customer in `matrix`: one bit per dense group.
    stride: usize,
    /// `rows × 65,536` customers × `stride` bytes; bit k of a customer's bytes is column
    /// k. One allocation backed by huge pages where the OS offers them, so random probes
    /// do not also miss the TLB.
    matrix: Vec<u8>,
    /// `rows × sparse groups` slots: the containers of (row, s) at `slots[row * sparse + s]`.
    slots: Vec<Slot>,
    /// Sparse group s's containers (arrays, and bitmaps of groups the matrix had no room
    /// for), which its slots index.
    containers: Vec<GroupData>,
}

/// Where a group's members are.
#[derive(Clone, Copy, Debug)]
enum Place {
    /// Column k of the matrix.
    Column(usize),
    /// Sparse group s: arrays through the slot table.
    Arrays(usize),
}

impl MembershipIndex {
    /// Lays the parsed groups out; group `g` is the `g`th of `parsed`.
    pub fn new(parsed: Vec<ParsedGroup>) -> Result<MembershipIndex, Malformed> {
        let max_key = parsed.iter().filter_map(|g| g.keys.last()).max();
        let mut rows = vec![NO_ROW; max_key.map_or(0, |&k| k as usize + 1)];
        for group in &parsed {
            for &key in &group.keys {
                rows[key as usize] = 0; // marked; numbered in key order below
            }
        }
        let mut used = 0usize;
        for row in rows.iter_mut().filter(|r| **r != NO_ROW) {
            *row = used as u32;
            used += 1;
        }
        let (mut dense, mut sparse) = (Vec::new(), Vec::new());
        let mut places = Vec::with_capacity(parsed.len());
        for (g, in_matrix) in matrix_columns(&parsed, used).into_iter().enumerate() {
            places.push(if in_matrix {
                dense.push(g);
                Place::Column(dense.len() - 1)
            } else {
                sparse.push(g);
                Place::Arrays(sparse.len() - 1)
            });
        }
        let mut slots = vec![Slot::default(); used * sparse.len()];
        for (s, &g) in sparse.iter().enumerate() {
            let group = &parsed[g];
            for (&key, &slot) in group.keys.iter().zip(&group.slots) {
                slots[rows[key as usize] as usize * sparse.len() + s] = slot;
            }
        }
        // Each row's containers of the dense groups, column by column.
        let mut columns = vec![vec![Container::Empty; dense.len()]; used];
        for (column, &g) in dense.iter().enumerate() {
            let group = &parsed[g];
            for (&key, &slot) in group.keys.iter().zip(&group.slots) {
                columns[rows[key as usize] as usize][column] = group.container(slot);
            }
        }
        let stride = dense.len().div_ceil(8);
        let total = (used * CHUNK)
            .checked_mul(stride)
            .ok_or_else(|| format!("{used} chunks × {} dense groups overflow", dense.len()))?;
        let mut matrix = huge_page_zeroed(total);
        if stride > 0 {
            matrix
                .par_chunks_mut(CHUNK * stride)
                .zip(&columns)
                .for_each(|(block, columns)| transpose_into(columns, block, stride));
        }
        drop(columns);
        let containers = parsed
            .into_iter()
            .zip(&places)
            .filter(|(_, place)| matches!(place, Place::Arrays(_)))
            .map(|(group, _)| group.data)
            .collect();
        Ok(MembershipIndex {
            rows,
            places,
            dense,
            sparse,
            stride,
            matrix,
            slots,
            containers,
        })
    }

    /// The row of the chunk holding `bit`, if any group has that chunk.
    #[inline]
    fn row(&self, bit: u32) -> Option<usize> {
        match self.rows.get((bit >> 16) as usize) {
            Some(&row) if row != NO_ROW => Some(row as usize),
            _ => None,
        }
    }

    /// Every customer's bytes in `row`.
    fn block(&self, row: usize) -> &[u8] {
        &self.matrix[row * CHUNK * self.stride..][..CHUNK * self.stride]
    }

    /// Customer `low` of `row`'s bits for every dense group.
    #[inline]
    fn customer(&self, row: usize, low: u16) -> &[u8] {
        let at = (row * CHUNK + low as usize) * self.stride;
        &self.matrix[at..at + self.stride]
    }

    /// Sparse group `s`'s container in `row`.
    #[inline]
    fn sparse_container(&self, row: usize, s: usize) -> Container<'_> {
        let slot = self.slots[row * self.sparse.len() + s];
        self.containers[s].container(slot)
    }

    /// Whether sparse group `s` holds customer `low` of `row`.
    #[inline]
    fn sparse_contains(&self, row: usize, s: usize, low: u16) -> bool {
        match self.sparse_container(row, s) {
            Container::Values(values) => values.binary_search(&low).is_ok(),
            Container::Words(words) => words[low as usize >> 6] >> (low & 63) & 1 == 1,
            Container::Empty => false,
        }
    }

    /// Sparse group `s`'s values in `row`, ascending.
    fn sparse_values(&self, row: usize, s: usize) -> Box<dyn Iterator<Item = u16> + '_> {
        match self.sparse_container(row, s) {
            Container::Values(values) => Box::new(values.iter().copied()),
            Container::Words(words) => Box::new((0..CHUNK).filter_map(move |low| {
                (words[low >> 6] >> (low & 63) & 1 == 1).then_some(low as u16)
            })),
            Container::Empty => Box::new(std::iter::empty()),
        }
    }

    /// Whether `bit` is in group number `group`.
    #[inline]
    pub fn contains(&self, group: usize, bit: u32) -> bool {
        let Some(row) = self.row(bit) else {
            return false;
        };
        match self.places.get(group) {
            Some(&Place::Column(k)) => self.customer(row, bit as u16)[k / 8] >> (k % 8) & 1 == 1,
            Some(&Place::Arrays(s)) => self.sparse_contains(row, s, bit as u16),
            None => false,
        }
    }

    /// The numbers of the groups holding `bit`, ascending.
    pub fn groups_of(&self, bit: u32) -> impl Iterator<Item = usize> + '_ {
        let mut hits = vec![0u64; self.places.len().div_ceil(64)];
        let mut hit = |g: usize| hits[g / 64] |= 1 << (g % 64);
        if let Some(row) = self.row(bit) {
            for (i, &byte) in self.customer(row, bit as u16).iter().enumerate() {
                let mut byte = byte;
                while byte != 0 {
                    hit(self.dense[i * 8 + byte.trailing_zeros() as usize]);
                    byte &= byte - 1;
                }
            }
            for (s, &g) in self.sparse.iter().enumerate() {
                if self.sparse_contains(row, s, bit as u16) {
                    hit(g);
                }
            }
        }
        (0..self.places.len()).filter(move |g| hits[g / 64] >> (g % 64) & 1 == 1)
    }

    /// The largest bit any group holds.
    pub fn max_bit(&self) -> Option<u32> {
        let key = self.rows.iter().rposition(|&row| row != NO_ROW)?;
        let row = self.rows[key] as usize;
        let in_matrix = (self.stride > 0)
            .then(|| {
                (self.block(row).chunks_exact(self.stride)).rposition(|c| c.iter().any(|&b| b != 0))
            })
            .flatten();
        let in_arrays = (0..self.sparse.len()).filter_map(|s| self.sparse_values(row, s).last());
        let low = in_arrays.map(|low| low as usize).chain(in_matrix).max()?;
        Some((key << 16 | low) as u32)
    }

    /// One group as a Roaring bitmap (for set algebra, diffs and exports).
    pub fn bitmap(&self, group: usize) -> RoaringBitmap {
        let values = (0..self.rows.len() as u32)
            .filter(|&key| self.rows[key as usize] != NO_ROW)
            .flat_map(|key| self.bitmap_chunk(group, key));
        RoaringBitmap::from_sorted_iter(values).expect("chunks are visited in ascending order")
    }

    /// The values of `group` in chunk `key` (which has a row), ascending.
    fn bitmap_chunk(&self, group: usize, key: u32) -> Box<dyn Iterator<Item = u32> + '_> {
        let row = self.rows[key as usize] as usize;
        let lows: Box<dyn Iterator<Item = u16>> = match self.places[group] {
            Place::Column(k) => {
                let column = self.block(row)[k / 8..].iter().step_by(self.stride);
                Box::new(
                    column
                        .enumerate()
                        .filter(move |(_, &byte)| byte >> (k % 8) & 1 == 1)
                        .map(|(low, _)| low as u16),
                )
            }
            Place::Arrays(s) => self.sparse_values(row, s),
        };
        Box::new(lows.map(move |low| key << 16 | low as u32))
    }
}

/// Which groups get a matrix column: the groups with a bitmap container first, then the
/// others, the largest first within each, while the matrix stays within `MATRIX_BUDGET`
/// times the bytes of all containers as parsed (or its stride does not grow). A column
/// answers in one byte read and keeps a customer's answers in one cache line; a sparse
/// group costs a slot read and a binary search (or a bitmap word), and its lines add to
/// what a workload keeps in cache. The budget holds for every group, so memory stays
/// proportional to what is stored: a run whose few customers are spread over many
/// chunks (one per 65,536 ids) keeps every group sparse instead of allocating 64 Ki
/// customers × stride bytes per chunk.
fn matrix_columns(parsed: &[ParsedGroup], rows: usize) -> Vec<bool> {
    let budget =
        (MATRIX_BUDGET * parsed.iter().map(ParsedGroup::bytes).sum::<usize>()).max(MATRIX_FLOOR);
    let matrix_bytes = |columns: usize| rows * CHUNK * columns.div_ceil(8);
    let mut columns = vec![false; parsed.len()];
    let mut candidates: Vec<usize> = (0..parsed.len())
        .filter(|&g| parsed[g].cardinality > 0)
        .collect();
    candidates.sort_by_key(|&g| {
        let group = &parsed[g];
        (!group.has_bitmaps(), std::cmp::Reverse(group.cardinality))
    });
    for (count, g) in (0..).zip(candidates) {
        // Up to the next multiple of 8 columns costs nothing: the stride is whole bytes.
        if matrix_bytes(count + 1) > budget.max(matrix_bytes(count)) {
            break;
        }
        columns[g] = true;
    }
    columns
}

/// An upper bound of the bytes [`MembershipIndex::new`] allocates for groups whose
/// [`parsed_bytes`] are given: their containers, a matrix within its budget, the slot
/// table of sparse groups.
pub fn index_bytes(groups: &[(u64, u64)]) -> u64 {
    let containers: u64 = groups.iter().map(|g| g.0).sum();
    let chunks = groups.iter().map(|g| g.1).sum::<u64>().min(CHUNK as u64);
    let slots = chunks * groups.len() as u64 * std::mem::size_of::<Slot>() as u64;
    containers + (MATRIX_BUDGET as u64 * containers).max(MATRIX_FLOOR as u64) + slots
}

/// Fills one chunk's block (65,536 customers × `stride` bytes) from the dense groups'
/// containers there, column k becoming bit k of every customer's bytes: 64 × 64 bit
/// squares at a time (word w of 64 containers in, 64 customers' bytes out).
///
/// The squares are gathered 64 words of each container at a time (a tile of 32 KiB):
/// reading one word from each of 64 containers in turn stalls on 64 cache misses, while
/// 64 consecutive words of one container stream in.
fn transpose_into(columns: &[Container<'_>], block: &mut [u8], stride: usize) {
    const TILE: usize = 64;
    let words: Vec<Cow<'_, [u64]>> = columns.iter().map(|c| c.words()).collect();
    let mut tile = vec![[0u64; 64]; TILE];
    for first in (0..WORDS_PER_BITMAP).step_by(TILE) {
        // Last square first: see the stores below.
        for (square, containers) in words.chunks(64).enumerate().rev() {
            if containers.len() < 64 {
                tile.iter_mut().for_each(|bits| *bits = [0; 64]);
            }
            for (b, words) in containers.iter().enumerate() {
                for (bits, &word) in tile.iter_mut().zip(&words[first..first + TILE]) {
                    bits[b] = word;
                }
            }
            for (t, bits) in tile.iter_mut().enumerate() {
                if bits.iter().all(|&b| b == 0) {
                    continue; // the block starts zeroed
                }
                transpose64(bits);
                // Each customer's 8 bytes of this square go in one store. In the last
                // square of a stride that is not a multiple of 8 the store runs past the
                // customer into the next one's first bytes: with zeros (columns past the
                // last group), which that customer's own store for square 0 overwrites
                // later, as the squares go last first and customers in order.
                let start = (first + t) * 64 * stride + 8 * square;
                for (customer, &b) in bits.iter().enumerate() {
                    let at = start + customer * stride;
                    match block.get_mut(at..at + 8) {
                        Some(bytes) => bytes.copy_from_slice(&b.to_le_bytes()),
                        None => {
                            let tail = &mut block[at..];
                            let len = tail.len();
                            tail.copy_from_slice(&b.to_le_bytes()[..len]);
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn parsed(bitmap: &RoaringBitmap) -> ParsedGroup {
        let mut bytes = Vec::new();
        bitmap.serialize_into(&mut bytes).unwrap();
        parse_group(&bytes).unwrap()
    }

    #[test]
    fn index_answers_like_the_bitmaps_it_was_built_from() {
        let sparse: RoaringBitmap = (0..3_000_000).step_by(997).collect();
        let mid: RoaringBitmap = (0..3_000_000).step_by(61).collect(); // ~1074 per chunk
        let dense: RoaringBitmap = (0..3_000_000).filter(|v| v % 3 != 0).collect();
        let far: RoaringBitmap = [5, u32::MAX - 1, u32::MAX].into_iter().collect();
        let empty = RoaringBitmap::new();
        let all = [&sparse, &mid, &dense, &far, &empty];
        let index = MembershipIndex::new(all.iter().map(|b| parsed(b)).collect()).unwrap();
        for (g, b) in all.iter().enumerate() {
            assert_eq!(&&index.bitmap(g), b, "group {g} round-trips");
        }
        let probes = (0..3_100_000)
            .step_by(7)
            .chain([5, u32::MAX - 1, u32::MAX, 1 << 30]);
        for bit in probes {
            let expected: Vec<usize> = (0..all.len()).filter(|&g| all[g].contains(bit)).collect();
            assert_eq!(
                index.groups_of(bit).collect::<Vec<_>>(),
                expected,
                "bit {bit}"
            );
            for (g, b) in all.iter().enumerate() {
                assert_eq!(index.contains(g, bit), b.contains(bit));
            }
        }
        assert_eq!(index.max_bit(), Some(u32::MAX));
    }

    /// Regression: 65,536 customers, one per chunk of the whole u32 range, took 4.2 GB to
    /// load (a matrix row of 65,536 customers per chunk, forced by one bitmap container).
    #[test]
    fn customers_spread_over_the_id_range_keep_memory_proportional() {
        let spread: RoaringBitmap = (0..=u16::MAX as u32).map(|k| k << 16 | 7).collect();
        let every_other: RoaringBitmap =
            (0..=u16::MAX as u32).step_by(2).map(|k| k << 16).collect();
        let mut with_bitmap = spread.clone();
        with_bitmap.extend(0..10_000); // one bitmap container, in chunk 0
        let all = [spread, every_other, with_bitmap];
        let parsed: Vec<ParsedGroup> = all.iter().map(parsed).collect();
        let bound = index_bytes(
            &all.iter()
                .map(|b| {
                    let mut bytes = Vec::new();
                    b.serialize_into(&mut bytes).unwrap();
                    parsed_bytes(&bytes).unwrap()
                })
                .collect::<Vec<_>>(),
        );
        let index = MembershipIndex::new(parsed).unwrap();
        let allocated = index.matrix.len() + index.slots.len() * std::mem::size_of::<Slot>();
        assert!(
            allocated < 8 << 20,
            "{allocated} bytes for 3 × 65,536 members"
        );
        assert!(bound < 16 << 20, "bound {bound}");
        for (g, b) in all.iter().enumerate() {
            assert_eq!(&index.bitmap(g), b, "group {g} round-trips");
            for bit in b.iter().step_by(97).chain([1, 8, 9_999, 10_000, u32::MAX]) {
                assert_eq!(
                    index.contains(g, bit),
                    b.contains(bit),
                    "group {g}, bit {bit}"
                );
            }
        }
        assert_eq!(index.groups_of(9_999).collect::<Vec<_>>(), vec![2]);
        assert_eq!(index.groups_of(7).collect::<Vec<_>>(), vec![0, 2]);
        assert_eq!(index.max_bit(), Some(u32::MAX << 16 | 7));
    }

    #[test]
    fn chunks_with_more_than_64_bitmap_groups_are_laid_out_right() {
        // 80 groups over three chunks: 76 dense in two 64-column squares, a stride (10
        // bytes) that is not a multiple of 8, and sparse groups among them.
        let mut all: Vec<RoaringBitmap> = (0..80u32)
            .map(|g| {
                let step = if g % 20 == 19 { 1000 } else { 2 + g % 5 };
                (g..140_000).step_by(step as usize).collect()
            })
            .collect();
        // Dense in one chunk, an array in the next: both halves live in its column.
        all[33] = (0..65_536)
            .step_by(3)
            .chain((70_000..140_000).step_by(997))
            .collect();
        let index = MembershipIndex::new(all.iter().map(parsed).collect()).unwrap();
        for (g, b) in all.iter().enumerate() {
            assert_eq!(&index.bitmap(g), b, "group {g} round-trips");
        }
        for bit in (0..140_100).step_by(13) {
            let expected: Vec<usize> = (0..all.len()).filter(|&g| all[g].contains(bit)).collect();
            assert_eq!(
                index.groups_of(bit).collect::<Vec<_>>(),
                expected,
                "bit {bit}"
            );
        }
        assert_eq!(index.max_bit(), all.iter().filter_map(|b| b.max()).max());
    }

    #[test]
    fn sparse_groups_keep_arrays_beyond_the_matrix_budget() {
        // One dense group and nine of 100 members: budget 2 × (8 KiB + 9 × 200 B); one
        // byte per customer (8 columns) is the floor, a second byte is over budget.
        let dense: RoaringBitmap = (0..65_536).step_by(2).collect();
        let mut all = vec![dense];
        all.extend((0..9u32).map(|g| (0..100).map(|i| i * 600 + g).collect::<RoaringBitmap>()));
        let index = MembershipIndex::new(all.iter().map(parsed).collect()).unwrap();
        assert_eq!((index.dense.len(), index.sparse.len()), (8, 2));
        assert_eq!(
            index.sparse,
            [8, 9],
            "equal sizes: columns go in group order"
        );
        for bit in 0..70_000 {
            let expected: Vec<usize> = (0..all.len()).filter(|&g| all[g].contains(bit)).collect();
            assert_eq!(
                index.groups_of(bit).collect::<Vec<_>>(),
                expected,
                "bit {bit}"
            );
        }
    }

    /// A group over three chunks from a seed: each chunk empty, sparse (arrays), dense
    /// (bitmaps) or a few runs, so groups mix container kinds the way real ones do.
    fn random_group(seed: u64, kinds: [u8; 3]) -> RoaringBitmap {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let mut group = RoaringBitmap::new();
        for (chunk, kind) in kinds.into_iter().enumerate() {
            let base = chunk as u32 * CHUNK as u32;
            match kind % 4 {
                0 => {}
                1 => group.extend(
                    (0..rng.random_range(1..=SMALL_ARRAY as u32 + 40))
                        .map(|_| base + rng.random_range(0..CHUNK as u32)),
                ),
                2 => group.extend(
                    (0..CHUNK as u32)
                        .filter(|_| rng.random_bool(0.4))
                        .map(|v| base + v),
                ),
                _ => {
                    for _ in 0..rng.random_range(1..6) {
                        let start = base + rng.random_range(0..CHUNK as u32 - 3000);
                        group.insert_range(start..start + rng.random_range(1..3000));
                    }
                }
            }
        }
        group
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 16, failure_persistence: None, ..Default::default() })]

        #[test]
        fn index_equals_roaring_on_random_groups(
            groups in proptest::collection::vec((any::<u64>(), any::<[u8; 3]>()), 0..100),
        ) {
            let all: Vec<RoaringBitmap> =
                groups.iter().map(|&(seed, kinds)| random_group(seed, kinds)).collect();
            let index = MembershipIndex::new(all.iter().map(parsed).collect()).unwrap();
            for (g, b) in all.iter().enumerate() {
                prop_assert_eq!(&index.bitmap(g), b, "group {}", g);
            }
            let edges = [0, CHUNK as u32 - 1, CHUNK as u32, u32::MAX];
            for bit in (0..3 * CHUNK as u32 + 10).step_by(61).chain(edges) {
                let expected: Vec<usize> =
                    (0..all.len()).filter(|&g| all[g].contains(bit)).collect();
                prop_assert_eq!(index.groups_of(bit).collect::<Vec<_>>(), expected.clone());
                for g in 0..all.len() {
                    prop_assert_eq!(index.contains(g, bit), expected.contains(&g), "bit {}", bit);
                }
            }
            prop_assert_eq!(index.max_bit(), all.iter().filter_map(|b| b.max()).max());
        }
    }

    #[test]
    fn run_containers_from_other_writers_are_read() {
        // 12347 cookie, one container (key 2) of one run 10..=20, no offsets (< 4 containers).
        let mut bytes = vec![];
        bytes.extend_from_slice(&12347u16.to_le_bytes());
        bytes.extend_from_slice(&0u16.to_le_bytes()); // n - 1
        bytes.push(0b1); // container 0 is a run container
        bytes.extend_from_slice(&2u16.to_le_bytes()); // key
        bytes.extend_from_slice(&10u16.to_le_bytes()); // cardinality - 1
        bytes.extend_from_slice(&1u16.to_le_bytes()); // one run
        bytes.extend_from_slice(&10u16.to_le_bytes()); // start
        bytes.extend_from_slice(&10u16.to_le_bytes()); // length - 1
        let expected: RoaringBitmap = ((2 << 16) + 10..=(2 << 16) + 20).collect();
        assert_eq!(
            RoaringBitmap::deserialize_from(&bytes[..]).unwrap(),
            expected
        );
        let index = MembershipIndex::new(vec![parse_group(&bytes).unwrap()]).unwrap();
        assert_eq!(index.bitmap(0), expected);
    }

    #[test]
    fn malformed_groups_are_refused() {
        let mut good = Vec::new();
        let b: RoaringBitmap = (0..10_000).step_by(3).chain(70_000..80_000).collect();
        b.serialize_into(&mut good).unwrap();
        let cases: Vec<(&str, Vec<u8>)> = vec![
            ("empty", vec![]),
            ("truncated", good[..good.len() - 1].to_vec()),
            ("trailing byte", [good.clone(), vec![0]].concat()),
            (
                "bad cookie",
                [vec![1, 2, 3, 4], good[4..].to_vec()].concat(),
            ),
            (
                "huge count",
                [good[..4].to_vec(), vec![255; 4], good[8..].to_vec()].concat(),
            ),
            ("unsorted array", {
                let mut g = good.clone();
                let first_value = 8 + 8 * 2; // cookie + count, 2 headers, 2 offsets
                g.swap(first_value, first_value + 2);
                g
            }),
        ];
        for (what, bytes) in cases {
            assert!(parse_group(&bytes).is_err(), "{what} is refused");
        }
    }
}
