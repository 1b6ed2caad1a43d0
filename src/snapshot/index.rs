//! The in-memory membership index a loaded run answers lookups from: every group's
//! Roaring containers, parsed from the portable format and addressed by (chunk, group)
//! in one table, so a lookup is a table read and one word test.
//!
//! Why not `RoaringBitmap::contains`: it binary-searches the container list and then,
//! for array containers, the values — several dependent cache misses per probe on a
//! snapshot far larger than the CPU cache. Here a probe reads one slot (the slots of one
//! chunk sit side by side for all groups, which is what `groups_of` scans) and one
//! 64-bit word. Array containers larger than [`SMALL_ARRAY`] values are stored as
//! bitmaps, which bounds the index by the size of plain bitsets (n/8 bytes per group).

use roaring::RoaringBitmap;

use super::memory::huge_page_zeroed;

/// Array containers up to this many values stay sorted arrays (≤ 1 KiB, a short binary
/// search); larger ones become 8 KiB bitmaps (at most 8× the array's bytes).
pub const SMALL_ARRAY: usize = 512;

const WORDS_PER_BITMAP: usize = 1024;
const NO_ROW: u32 = u32::MAX;
const COOKIE_NO_RUNS: u32 = 12346;
const COOKIE_RUNS: u16 = 12347;
/// The portable format writes container offsets with runs only from 4 containers on.
const NO_OFFSET_THRESHOLD: usize = 4;

/// All groups of one run.
#[derive(Debug, Default)]
pub struct MembershipIndex {
    groups: usize,
    /// Chunk key (bit >> 16) → row of `slots`, or `NO_ROW` when no group has that chunk.
    rows: Vec<u32>,
    /// `rows × groups` slots: the slot of (row, group) is at `row * groups + group`.
    slots: Vec<Slot>,
    /// Every group's bitmap containers, interleaved per chunk (see `Slot`), in one
    /// allocation backed by huge pages where the OS offers them, so random probes do not
    /// also miss the TLB.
    words: Vec<u64>,
    /// Each group's small array containers.
    values: Vec<Vec<u16>>,
}

/// Where one group keeps its containers' contents while it is parsed.
#[derive(Debug, Default)]
struct GroupData {
    words: Vec<u64>,
    values: Vec<u16>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq)]
enum Kind {
    #[default]
    Empty,
    Array,
    Bitmap,
}

/// One container. An array's values are `values[group][start..start + len]`; a bitmap's
/// word w is `words[start + w * len]` (`len` = the bitmaps interleaved in its chunk).
#[derive(Clone, Copy, Debug, Default)]
struct Slot {
    kind: Kind,
    len: u16,
    start: u32,
}

/// One group, parsed and checked.
#[derive(Debug, Default)]
pub struct ParsedGroup {
    keys: Vec<u16>,
    slots: Vec<Slot>,
    data: GroupData,
    cardinality: u64,
}

impl ParsedGroup {
    /// Members in the group.
    pub fn cardinality(&self) -> u64 {
        self.cardinality
    }
}

/// Little-endian reader over one group's bytes that reports truncation instead of panicking.
struct Bytes<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Bytes<'a> {
    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], String> {
        let end = self.at.checked_add(n).filter(|&e| e <= self.bytes.len());
        let end = end.ok_or_else(|| format!("truncated in {what} at byte {}", self.at))?;
        let slice = &self.bytes[self.at..end];
        self.at = end;
        Ok(slice)
    }

    fn u16(&mut self, what: &str) -> Result<u16, String> {
        self.take(2, what)
            .map(|b| u16::from_le_bytes(b.try_into().expect("2 bytes")))
    }

    fn u32(&mut self, what: &str) -> Result<u32, String> {
        self.take(4, what)
            .map(|b| u32::from_le_bytes(b.try_into().expect("4 bytes")))
    }
}

/// Parses one group in the Roaring portable format, checking every structural rule
/// (ascending keys, offsets, sorted arrays, runs in range, cardinalities, no trailing
/// bytes), so a damaged file is refused rather than answered from.
pub fn parse_group(bytes: &[u8]) -> Result<ParsedGroup, String> {
    let mut r = Bytes { bytes, at: 0 };
    let first = r.u32("the cookie")?;
    let (count, runs, has_offsets) = if first == COOKIE_NO_RUNS {
        let count = r.u32("the container count")? as usize;
        (count, Vec::new(), true)
    } else if first as u16 == COOKIE_RUNS {
        let count = (first >> 16) as usize + 1;
        let runs = r.take(count.div_ceil(8), "the run bitset")?.to_vec();
        (count, runs, count >= NO_OFFSET_THRESHOLD)
    } else {
        return Err(format!("unknown cookie {first:#x}"));
    };
    if count > 1 << 16 {
        return Err(format!("{count} containers (at most 65536)"));
    }
    let header = r.take(4 * count, "the container headers")?;
    let offsets = if has_offsets {
        Some(r.take(4 * count, "the container offsets")?)
    } else {
        None
    };
    let mut group = ParsedGroup {
        keys: Vec::with_capacity(count),
        slots: Vec::with_capacity(count),
        ..ParsedGroup::default()
    };
    for i in 0..count {
        let key = u16::from_le_bytes([header[4 * i], header[4 * i + 1]]);
        let cardinality = u16::from_le_bytes([header[4 * i + 2], header[4 * i + 3]]) as usize + 1;
        if group.keys.last().is_some_and(|&last| last >= key) {
            return Err(format!("container keys out of order at container {i}"));
        }
        if let Some(offsets) = offsets {
            let offset = u32::from_le_bytes(offsets[4 * i..4 * i + 4].try_into().expect("4"));
            if offset as usize != r.at {
                return Err(format!(
                    "container {i} offset {offset} does not match its position {}",
                    r.at
                ));
            }
        }
        let is_run = runs.get(i / 8).is_some_and(|b| b >> (i % 8) & 1 == 1);
        let slot = if is_run {
            let values = read_runs(&mut r, cardinality, i)?;
            group.data.push_values(values.into_iter(), cardinality)
        } else if cardinality <= 4096 {
            let raw = r.take(2 * cardinality, "an array container")?;
            let values = raw
                .chunks_exact(2)
                .map(|b| u16::from_le_bytes([b[0], b[1]]));
            if !values
                .clone()
                .zip(values.clone().skip(1))
                .all(|(a, b)| a < b)
            {
                return Err(format!("array container {i} is not strictly ascending"));
            }
            group.data.push_values(values, cardinality)
        } else {
            let raw = r.take(8 * WORDS_PER_BITMAP, "a bitmap container")?;
            let start = group.data.words.len() / WORDS_PER_BITMAP;
            group.data.words.extend(
                raw.chunks_exact(8)
                    .map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes"))),
            );
            let ones: usize = group.data.words[start * WORDS_PER_BITMAP..]
                .iter()
                .map(|w| w.count_ones() as usize)
                .sum();
            if ones != cardinality {
                return Err(format!(
                    "bitmap container {i} holds {ones} values, its header says {cardinality}"
                ));
            }
            Slot {
                kind: Kind::Bitmap,
                len: 0,
                start: start as u32,
            }
        };
        group.keys.push(key);
        group.slots.push(slot);
        group.cardinality += cardinality as u64;
    }
    if r.at != bytes.len() {
        return Err(format!(
            "{} trailing bytes after the last container",
            bytes.len() - r.at
        ));
    }
    Ok(group)
}

/// Expands a run container to its values, checking it holds `cardinality` of them.
fn read_runs(r: &mut Bytes<'_>, cardinality: usize, i: usize) -> Result<Vec<u16>, String> {
    let count = r.u16("a run container")? as usize;
    let pairs = r.take(4 * count, "a run container")?;
    let mut values = Vec::with_capacity(cardinality);
    let mut next = 0u32; // the smallest value the next run may start at
    for pair in pairs.chunks_exact(4) {
        let start = u16::from_le_bytes([pair[0], pair[1]]) as u32;
        let end = start + u16::from_le_bytes([pair[2], pair[3]]) as u32;
        if start < next || end > u16::MAX as u32 {
            return Err(format!(
                "run container {i} has overlapping or overlong runs"
            ));
        }
        values.extend((start..=end).map(|v| v as u16));
        next = end + 2;
    }
    if values.len() != cardinality {
        return Err(format!(
            "run container {i} holds {} values, its header says {cardinality}",
            values.len()
        ));
    }
    Ok(values)
}

impl GroupData {
    /// Stores ascending values as an array or, when large, as a bitmap.
    fn push_values(&mut self, values: impl Iterator<Item = u16>, cardinality: usize) -> Slot {
        if cardinality <= SMALL_ARRAY {
            let start = self.values.len() as u32;
            self.values.extend(values);
            Slot {
                kind: Kind::Array,
                len: cardinality as u16,
                start,
            }
        } else {
            let start = self.words.len() / WORDS_PER_BITMAP;
            self.words.resize(self.words.len() + WORDS_PER_BITMAP, 0);
            let words = &mut self.words[start * WORDS_PER_BITMAP..];
            for v in values {
                words[v as usize >> 6] |= 1 << (v & 63);
            }
            Slot {
                kind: Kind::Bitmap,
                len: 0,
                start: start as u32,
            }
        }
    }
}

impl MembershipIndex {
    /// Lays the parsed groups out by chunk; group `g` is the `g`th of `parsed`.
    pub fn new(parsed: Vec<ParsedGroup>) -> Result<MembershipIndex, String> {
        let groups = parsed.len();
        let max_key = parsed.iter().filter_map(|g| g.keys.last()).max();
        let mut rows = vec![NO_ROW; max_key.map_or(0, |&k| k as usize + 1)];
        let mut used = 0u32;
        for group in &parsed {
            for &key in &group.keys {
                if rows[key as usize] == NO_ROW {
                    rows[key as usize] = 0; // marked; numbered in key order below
                }
            }
        }
        for row in rows.iter_mut().filter(|r| **r != NO_ROW) {
            *row = used;
            used += 1;
        }
        // Bitmap words are interleaved per chunk: word w of every group with a bitmap in
        // that chunk sits side by side, so `groups_of` reads one contiguous run of words
        // (a few cache lines the CPU prefetches) instead of one line per group.
        let mut width = vec![0usize; used as usize];
        for group in &parsed {
            for (&key, slot) in group.keys.iter().zip(&group.slots) {
                if slot.kind == Kind::Bitmap {
                    width[rows[key as usize] as usize] += 1;
                }
            }
        }
        if width.iter().any(|&w| w > u16::MAX as usize) {
            return Err(format!("more than {} groups", u16::MAX));
        }
        let mut base = Vec::with_capacity(width.len());
        let mut total = 0usize;
        for &w in &width {
            base.push(total);
            total += w * WORDS_PER_BITMAP;
        }
        if total > u32::MAX as usize {
            return Err(format!(
                "{total} bitmap words exceed the index's 32-bit offsets"
            ));
        }
        let mut words = huge_page_zeroed(total);
        let mut filled = vec![0usize; width.len()];
        let mut slots = vec![Slot::default(); used as usize * groups];
        let mut values = Vec::with_capacity(groups);
        for (g, group) in parsed.into_iter().enumerate() {
            for (&key, &slot) in group.keys.iter().zip(&group.slots) {
                let row = rows[key as usize] as usize;
                let slot = match slot.kind {
                    Kind::Bitmap => {
                        let first = base[row] + filled[row];
                        filled[row] += 1;
                        let own = &group.data.words[slot.start as usize * WORDS_PER_BITMAP..]
                            [..WORDS_PER_BITMAP];
                        for (w, &word) in own.iter().enumerate() {
                            words[first + w * width[row]] = word;
                        }
                        Slot {
                            kind: Kind::Bitmap,
                            len: width[row] as u16,
                            start: first as u32,
                        }
                    }
                    _ => slot,
                };
                slots[row * groups + g] = slot;
            }
            values.push(group.data.values);
        }
        Ok(MembershipIndex {
            groups,
            rows,
            slots,
            words,
            values,
        })
    }

    #[inline]
    fn test(&self, group: usize, slot: Slot, low: u16) -> bool {
        match slot.kind {
            Kind::Bitmap => {
                let word =
                    self.words[slot.start as usize + (low >> 6) as usize * slot.len as usize];
                word >> (low & 63) & 1 == 1
            }
            Kind::Array => {
                let start = slot.start as usize;
                self.values[group][start..start + slot.len as usize]
                    .binary_search(&low)
                    .is_ok()
            }
            Kind::Empty => false,
        }
    }

    fn values_of(&self, group: usize, slot: Slot) -> Box<dyn Iterator<Item = u16> + '_> {
        match slot.kind {
            Kind::Bitmap => {
                let words = self.words[slot.start as usize..]
                    .iter()
                    .step_by(slot.len as usize)
                    .take(WORDS_PER_BITMAP);
                Box::new(words.enumerate().flat_map(|(w, &word)| {
                    (0..64u16)
                        .filter(move |b| word >> b & 1 == 1)
                        .map(move |b| (w as u16) << 6 | b)
                }))
            }
            Kind::Array => {
                let start = slot.start as usize;
                Box::new(
                    self.values[group][start..start + slot.len as usize]
                        .iter()
                        .copied(),
                )
            }
            Kind::Empty => Box::new(std::iter::empty()),
        }
    }

    /// The slots of every group for the chunk holding `bit` (empty when none has it).
    #[inline]
    fn chunk(&self, bit: u32) -> &[Slot] {
        match self.rows.get((bit >> 16) as usize) {
            Some(&row) if row != NO_ROW => {
                let start = row as usize * self.groups;
                &self.slots[start..start + self.groups]
            }
            _ => &[],
        }
    }

    /// Whether `bit` is in group number `group`.
    #[inline]
    pub fn contains(&self, group: usize, bit: u32) -> bool {
        self.chunk(bit)
            .get(group)
            .is_some_and(|&slot| self.test(group, slot, bit as u16))
    }

    /// The numbers of the groups holding `bit`, ascending.
    ///
    /// Two passes: the first tests every group without branching on what it reads, so the
    /// CPU overlaps the groups' cache misses instead of waiting on each in turn.
    pub fn groups_of(&self, bit: u32) -> impl Iterator<Item = usize> + '_ {
        let slots = self.chunk(bit);
        let mut hits = vec![0u64; slots.len().div_ceil(64)];
        for (g, &slot) in slots.iter().enumerate() {
            hits[g / 64] |= (self.test(g, slot, bit as u16) as u64) << (g % 64);
        }
        (0..slots.len()).filter(move |g| hits[g / 64] >> (g % 64) & 1 == 1)
    }

    /// The largest bit any group holds.
    pub fn max_bit(&self) -> Option<u32> {
        let key = self.rows.iter().rposition(|&row| row != NO_ROW)? as u32;
        (0..self.groups)
            .filter_map(|g| self.bitmap_chunk(g, key).max())
            .max()
    }

    /// One group as a Roaring bitmap (for set algebra, diffs and exports).
    pub fn bitmap(&self, group: usize) -> RoaringBitmap {
        let values = (0..self.rows.len() as u32)
            .filter(|&key| self.rows[key as usize] != NO_ROW)
            .flat_map(|key| self.bitmap_chunk(group, key));
        RoaringBitmap::from_sorted_iter(values).expect("chunks are visited in ascending order")
    }

    /// The values of `group` in chunk `key`, ascending.
    fn bitmap_chunk(&self, group: usize, key: u32) -> impl Iterator<Item = u32> + '_ {
        let slot = self.chunk(key << 16)[group];
        self.values_of(group, slot)
            .map(move |low| key << 16 | low as u32)
    }
}

#[cfg(test)]
mod tests {
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
