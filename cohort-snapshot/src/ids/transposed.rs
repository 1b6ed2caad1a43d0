//! Remapping up to 64 groups at once when scan positions map to bits in no useful order
//! (text ids, numbered by a perfect hash): the groups' words transposed into one word per
//! position (bit i: a member of group i), those words routed to the chunk of bits they
//! land in, and transposed back into each group's words. One pass over the
//! mapping per 64 groups instead of one scattered write per member per group, whose cache
//! misses dominated remapping text ids.

use std::sync::atomic::{AtomicU64, Ordering};

use rayon::prelude::*;
use roaring::RoaringBitmap;

use crate::portable::COOKIE_NO_RUNS;
use crate::transpose::transpose64;

/// Groups remapped together: one bit of a word each.
pub(super) const BATCH: usize = 64;
/// Positions or bits per container of a Roaring bitmap: the unit of work on each core.
const CHUNK: usize = 1 << 16;
/// Words per container.
const CHUNK_WORDS: usize = CHUNK / 64;
/// Words of a chunk taken from each group at once (a tile of 64 × 64 words, 32 KiB):
/// reading one word of each of 64 containers in turn would stall on 64 cache misses.
const TILE: usize = 64;
/// Containers with more values than this are bitmaps in the portable format.
const ARRAY_MAX: usize = 4096;

/// The inverse of a mapping, made once for all batches, as a route: each position's
/// word goes to a slot, slots grouped by the chunk of bits they land in (and in position
/// order within it), each slot knowing its bit within the chunk. A batch then writes its
/// words to their slots (a few hundred sequential streams) and reads each chunk's slots
/// back in order, scattering them within one chunk (512 KiB, in the core's cache):
/// gathering 10M words at random from 80 MB would miss the cache on about every one.
#[derive(Debug)]
pub(super) struct Route {
    /// The slot of each position (`u32::MAX`: none, the position has no bit).
    slot_of: Vec<u32>,
    /// Each slot's bit within its chunk of bits.
    bit_in_chunk: Vec<u16>,
    /// Where each chunk of bits' slots start (one more entry than chunks).
    chunk_start: Vec<usize>,
}

impl Route {
    /// The route of `pos_to_bit` (`u32::MAX`: a position without a bit) into
    /// `bit_space` bits.
    pub(super) fn of(pos_to_bit: &[u32], bit_space: u64) -> Route {
        let chunks = (bit_space as usize).div_ceil(CHUNK);
        let mut chunk_start = vec![0usize; chunks + 1];
        for &bit in pos_to_bit.iter().filter(|&&b| b != u32::MAX) {
            chunk_start[bit as usize / CHUNK + 1] += 1;
        }
        for k in 0..chunks {
            chunk_start[k + 1] += chunk_start[k];
        }
        let mut next = chunk_start.clone();
        let mut slot_of = vec![u32::MAX; pos_to_bit.len()];
        let mut bit_in_chunk = vec![0u16; chunk_start[chunks]];
        for (slot, &bit) in slot_of.iter_mut().zip(pos_to_bit) {
            if bit != u32::MAX {
                let at = &mut next[bit as usize / CHUNK];
                *slot = *at as u32;
                bit_in_chunk[*at] = (bit as usize % CHUNK) as u16;
                *at += 1;
            }
        }
        Route {
            slot_of,
            bit_in_chunk,
            chunk_start,
        }
    }

    /// `groups` (at most [`BATCH`], of positions that all have a bit) in bit space, on
    /// every core.
    pub(super) fn remap(&self, groups: &[&RoaringBitmap]) -> Vec<RoaringBitmap> {
        assert!(groups.len() <= BATCH, "at most {BATCH} groups at once");
        let serialized: Vec<Vec<u8>> = groups.par_iter().map(|g| serialized(g)).collect();
        let columns: Vec<Columns<'_>> = serialized.iter().map(|b| Columns::of(b)).collect();
        let slots = self.slots(&columns);
        drop(columns);
        drop(serialized);
        // Each chunk of bits: the groups' containers there.
        let chunks: Vec<Vec<RoaringBitmap>> = (0..self.chunk_start.len() - 1)
            .into_par_iter()
            .map(|key| self.chunk(&slots, key, groups.len()))
            .collect();
        drop(slots);
        let mut out = vec![RoaringBitmap::new(); groups.len()];
        for chunk in chunks {
            for (group, container) in out.iter_mut().zip(chunk) {
                if !container.is_empty() {
                    *group |= container;
                }
            }
        }
        out
    }

    /// Each slot's word (bit i: its position is a member of group i), written chunk of
    /// positions by chunk of positions on every core.
    fn slots(&self, columns: &[Columns<'_>]) -> Vec<AtomicU64> {
        let slots: Vec<AtomicU64> = std::iter::repeat_with(|| AtomicU64::new(0))
            .take(self.bit_in_chunk.len())
            .collect();
        self.slot_of
            .par_chunks(CHUNK)
            .enumerate()
            .for_each(|(key, slot_of)| {
                let words: Vec<Column<'_>> = columns.iter().map(|c| c.at(key)).collect();
                if words.iter().all(|w| matches!(w, Column::Absent)) {
                    return;
                }
                let mut tile = vec![[0u64; 64]; TILE];
                for first in (0..CHUNK_WORDS).step_by(TILE) {
                    for (g, column) in words.iter().enumerate() {
                        column.tile(first, &mut tile, g);
                    }
                    for (t, square) in tile.iter_mut().enumerate() {
                        if square.iter().all(|&w| w == 0) {
                            continue;
                        }
                        transpose64(square);
                        let at = (first + t) * 64;
                        for (word, &slot) in square.iter().zip(slot_of.get(at..).unwrap_or(&[])) {
                            if *word != 0 {
                                slots[slot as usize].store(*word, Ordering::Relaxed);
                            }
                        }
                        *square = [0; 64];
                    }
                }
            });
        slots
    }

    /// Chunk `key` of bits of each of the `groups`, from the slots routed to it.
    fn chunk(&self, slots: &[AtomicU64], key: usize, groups: usize) -> Vec<RoaringBitmap> {
        let range = self.chunk_start[key]..self.chunk_start[key + 1];
        let mut words = vec![0u64; CHUNK];
        for (slot, &bit) in slots[range.clone()].iter().zip(&self.bit_in_chunk[range]) {
            words[bit as usize] = slot.load(Ordering::Relaxed);
        }
        let mut bytes = vec![[0u8; CHUNK / 8]; groups];
        for (w, square) in words.chunks_exact_mut(64).enumerate() {
            let square: &mut [u64; 64] = square.try_into().expect("64 words");
            if square.iter().all(|&word| word == 0) {
                continue;
            }
            transpose64(square);
            for (group, word) in bytes.iter_mut().zip(square.iter()) {
                group[w * 8..w * 8 + 8].copy_from_slice(&word.to_le_bytes());
            }
        }
        bytes
            .iter()
            .map(|group| RoaringBitmap::from_lsb0_bytes((key * CHUNK) as u32, group))
            .collect()
    }
}

/// The bitmap in the portable format without run containers (which `Columns` reads).
fn serialized(bitmap: &RoaringBitmap) -> Vec<u8> {
    let write = |bitmap: &RoaringBitmap| {
        let mut bytes = Vec::with_capacity(bitmap.serialized_size());
        bitmap
            .serialize_into(&mut bytes)
            .expect("writing to a Vec does not fail");
        bytes
    };
    let bytes = write(bitmap);
    if bytes.get(..4) == Some(&COOKIE_NO_RUNS.to_le_bytes()[..]) {
        return bytes;
    }
    let mut plain = bitmap.clone();
    plain.remove_run_compression();
    write(&plain)
}

/// One group's containers, read in place from its portable serialization (written just
/// now by `roaring`, so trusted: the `roaring` crate shows its containers only there).
/// Not `portable::parse_group`, which checks every rule and copies every container, for
/// bytes from outside: here that doubled the cost of reading the groups.
struct Columns<'a> {
    bytes: &'a [u8],
    /// Per key: (offset, values) of its container, values 0 when absent.
    by_key: Vec<(usize, usize)>,
}

/// One container of one group.
enum Column<'a> {
    Absent,
    /// 1,024 little-endian words.
    Bitmap(&'a [u8]),
    /// Sorted little-endian `u16` values, scattered into words once.
    Array(Vec<u64>),
}

impl<'a> Columns<'a> {
    fn of(bytes: &'a [u8]) -> Columns<'a> {
        let u16_at = |at: usize| u16::from_le_bytes([bytes[at], bytes[at + 1]]) as usize;
        let u32_at =
            |at: usize| u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4")) as usize;
        let count = u32_at(4);
        let mut by_key = Vec::new();
        for i in 0..count {
            let key = u16_at(8 + 4 * i);
            let values = u16_at(8 + 4 * i + 2) + 1;
            let offset = u32_at(8 + 4 * count + 4 * i);
            if by_key.len() <= key {
                by_key.resize(key + 1, (0, 0));
            }
            by_key[key] = (offset, values);
        }
        Columns { bytes, by_key }
    }

    fn at(&self, key: usize) -> Column<'a> {
        match self.by_key.get(key) {
            None | Some((_, 0)) => Column::Absent,
            Some(&(offset, values)) if values > ARRAY_MAX => {
                Column::Bitmap(&self.bytes[offset..offset + CHUNK / 8])
            }
            Some(&(offset, values)) => {
                let mut words = vec![0u64; CHUNK_WORDS];
                for v in self.bytes[offset..offset + 2 * values].chunks_exact(2) {
                    let v = u16::from_le_bytes([v[0], v[1]]);
                    words[v as usize >> 6] |= 1 << (v & 63);
                }
                Column::Array(words)
            }
        }
    }
}

impl Column<'_> {
    /// Words `first..first + TILE` into row `g` of each square of `tile`.
    fn tile(&self, first: usize, tile: &mut [[u64; 64]], g: usize) {
        match self {
            Column::Absent => {}
            Column::Bitmap(bytes) => {
                let words = bytes[first * 8..(first + TILE) * 8].chunks_exact(8);
                for (square, word) in tile.iter_mut().zip(words) {
                    square[g] = u64::from_le_bytes(word.try_into().expect("8 bytes"));
                }
            }
            Column::Array(words) => {
                for (square, &word) in tile.iter_mut().zip(&words[first..first + TILE]) {
                    square[g] = word;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::ids::tests::remapped_one_by_one as one_by_one;

    /// Positions shuffled over a bit space with spare bits (as a perfect hash leaves
    /// them), some positions without a bit, over more than one chunk; groups empty,
    /// sparse, dense, full and absent from whole chunks, fewer than and exactly 64.
    #[test]
    fn remapping_together_equals_remapping_each_member() {
        let positions = 150_000u32;
        let bit_space = 160_003u64;
        let pos_to_bit: Vec<u32> = (0..positions)
            .map(|p| match p % 1_009 {
                0 => u32::MAX,
                _ => (p as u64 * 7_919 % bit_space) as u32,
            })
            .collect();
        let universe: Vec<u32> = (0..positions)
            .filter(|&p| pos_to_bit[p as usize] != u32::MAX)
            .collect();
        let route = Route::of(&pos_to_bit, bit_space);
        let group = |n: u32| -> RoaringBitmap {
            universe
                .iter()
                .copied()
                .filter(|&p| match n % 5 {
                    0 => false,
                    1 => p.wrapping_mul(2_654_435_761) % (n + 2) == 0,
                    2 => p < 70_000 && p % 3 != 0,
                    3 => true,
                    _ => p.wrapping_mul(40_503) % 1_000 < n,
                })
                .collect()
        };
        for count in [1, 7, BATCH] {
            let groups: Vec<RoaringBitmap> = (0..count as u32).map(group).collect();
            let refs: Vec<&RoaringBitmap> = groups.iter().collect();
            let together = route.remap(&refs);
            assert_eq!(together.len(), count);
            for (n, (got, positions)) in together.iter().zip(&groups).enumerate() {
                assert_eq!(
                    *got,
                    one_by_one(&pos_to_bit, positions),
                    "group {n} of {count}"
                );
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]

        /// Any numbering of positions into a bit space with spare bits (some positions
        /// without a bit), any groups of them up to a batch: together is member by member.
        #[test]
        fn any_numbering_remaps_together_as_member_by_member(
            positions in 1usize..140_000,
            spare in 0usize..20_000,
            seed in any::<u64>(),
            densities in prop::collection::vec(0u32..=64, 1..=BATCH),
        ) {
            let bit_space = positions + spare;
            // A seeded permutation of the bits; the first `positions` go to positions.
            let mut bits: Vec<u32> = (0..bit_space as u32).collect();
            let mut state = seed | 1;
            for i in (1..bits.len()).rev() {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                bits.swap(i, (state % (i as u64 + 1)) as usize);
            }
            let pos_to_bit: Vec<u32> = bits[..positions]
                .iter()
                .enumerate()
                .map(|(p, &b)| if p % 211 == 5 { u32::MAX } else { b })
                .collect();
            let route = Route::of(&pos_to_bit, bit_space as u64);
            let groups: Vec<RoaringBitmap> = densities
                .iter()
                .enumerate()
                .map(|(g, &density)| {
                    (0..positions as u32)
                        .filter(|&p| pos_to_bit[p as usize] != u32::MAX)
                        .filter(|&p| (p ^ g as u32).wrapping_mul(2_654_435_761) >> 26 < density)
                        .collect()
                })
                .collect();
            let refs: Vec<&RoaringBitmap> = groups.iter().collect();
            for (got, positions) in route.remap(&refs).iter().zip(&groups) {
                prop_assert_eq!(got, &one_by_one(&pos_to_bit, positions));
            }
        }
    }
}
