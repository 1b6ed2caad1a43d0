//! The Roaring portable serialization of one published group, parsed and checked (every
//! structural rule: ascending keys, offsets, sorted arrays, runs in range, cardinalities,
//! no trailing bytes) into the containers the lookup index is built from.

use crate::Malformed;
use std::borrow::Cow;

/// Array containers up to this many values stay sorted arrays (≤ 1 KiB, a short binary
/// search); a group with a larger one gets a matrix column (8 KiB per chunk, at most 8×
/// the array's bytes).
pub const SMALL_ARRAY: usize = 512;

pub(super) const WORDS_PER_BITMAP: usize = 1024;
/// The format's cookie when no container is a run container.
pub(super) const COOKIE_NO_RUNS: u32 = 12346;
const COOKIE_RUNS: u16 = 12347;
/// The portable format writes container offsets with runs only from 4 containers on.
const NO_OFFSET_THRESHOLD: usize = 4;
static NO_WORDS: [u64; WORDS_PER_BITMAP] = [0; WORDS_PER_BITMAP];

/// Where one group keeps its containers' contents while it is parsed.
#[derive(Debug, Default)]
pub(super) struct GroupData {
    pub(super) words: Vec<u64>,
    pub(super) values: Vec<u16>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub(super) enum Kind {
    #[default]
    Empty,
    Array,
    Bitmap,
}

/// One container as parsed: an array's values are `values[start..start + len]`, a
/// bitmap's words `words[start * 1024..][..1024]`.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Slot {
    pub(super) kind: Kind,
    pub(super) len: u16,
    pub(super) start: u32,
}

/// One group, parsed and checked.
#[derive(Debug, Default)]
pub struct ParsedGroup {
    pub(super) keys: Vec<u16>,
    pub(super) slots: Vec<Slot>,
    pub(super) data: GroupData,
    pub(super) cardinality: u64,
}

impl ParsedGroup {
    /// Members in the group.
    pub fn cardinality(&self) -> u64 {
        self.cardinality
    }

    /// Whether any container is over `SMALL_ARRAY` values (and so parsed as a bitmap).
    pub(super) fn has_bitmaps(&self) -> bool {
        self.slots.iter().any(|s| s.kind == Kind::Bitmap)
    }

    /// The bytes its containers take as parsed.
    pub(super) fn bytes(&self) -> usize {
        self.data.words.len() * 8 + self.data.values.len() * 2
    }

    /// A container's contents.
    pub(super) fn container(&self, slot: Slot) -> Container<'_> {
        self.data.container(slot)
    }

    /// Each container's key and contents, in key order.
    pub(super) fn containers(&self) -> impl Iterator<Item = (u16, Container<'_>)> {
        self.keys
            .iter()
            .zip(&self.slots)
            .map(|(key, slot)| (*key, self.data.container(*slot)))
    }
}

impl GroupData {
    /// The contents of one of its containers.
    pub(super) fn container(&self, slot: Slot) -> Container<'_> {
        let start = slot.start as usize;
        match slot.kind {
            Kind::Bitmap => {
                Container::Words(&self.words[start * WORDS_PER_BITMAP..][..WORDS_PER_BITMAP])
            }
            Kind::Array => Container::Values(&self.values[start..start + slot.len as usize]),
            Kind::Empty => Container::Empty,
        }
    }
}

/// One chunk of a dense group, on its way into the matrix.
#[derive(Clone, Copy, Debug)]
pub(super) enum Container<'a> {
    Empty,
    Words(&'a [u64]),
    Values(&'a [u16]),
}

impl<'a> Container<'a> {
    /// The container as 1024 bitmap words.
    pub(super) fn words(self) -> Cow<'a, [u64]> {
        match self {
            Container::Empty => Cow::Borrowed(&NO_WORDS[..]),
            Container::Words(words) => Cow::Borrowed(words),
            Container::Values(values) => {
                let mut words = vec![0u64; WORDS_PER_BITMAP];
                for &v in values {
                    words[v as usize >> 6] |= 1 << (v & 63);
                }
                Cow::Owned(words)
            }
        }
    }
}

/// Little-endian reader over one group's bytes that reports truncation instead of panicking.
struct Bytes<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Bytes<'a> {
    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], Malformed> {
        let end = self.at.checked_add(n).filter(|&e| e <= self.bytes.len());
        let end = end.ok_or_else(|| format!("truncated in {what} at byte {}", self.at))?;
        let slice = &self.bytes[self.at..end];
        self.at = end;
        Ok(slice)
    }

    fn u16(&mut self, what: &str) -> Result<u16, Malformed> {
        self.take(2, what)
            .map(|b| u16::from_le_bytes(b.try_into().expect("2 bytes")))
    }

    fn u32(&mut self, what: &str) -> Result<u32, Malformed> {
        self.take(4, what)
            .map(|b| u32::from_le_bytes(b.try_into().expect("4 bytes")))
    }
}

/// Parses one group in the Roaring portable format, checking every structural rule
/// (ascending keys, offsets, sorted arrays, runs in range, cardinalities, no trailing
/// bytes), so a damaged file is refused rather than answered from.
pub fn parse_group(bytes: &[u8]) -> Result<ParsedGroup, Malformed> {
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
        return Err(malformed!("unknown cookie {first:#x}"));
    };
    if count > 1 << 16 {
        return Err(malformed!("{count} containers (at most 65536)"));
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
            return Err(malformed!("container keys out of order at container {i}"));
        }
        if let Some(offsets) = offsets {
            let offset = u32::from_le_bytes(offsets[4 * i..4 * i + 4].try_into().expect("4"));
            if offset as usize != r.at {
                return Err(malformed!(
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
                return Err(malformed!("array container {i} is not strictly ascending"));
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
                return Err(malformed!(
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
        return Err(malformed!(
            "{} trailing bytes after the last container",
            bytes.len() - r.at
        ));
    }
    Ok(group)
}

/// Expands a run container to its values, checking it holds `cardinality` of them.
fn read_runs(r: &mut Bytes<'_>, cardinality: usize, i: usize) -> Result<Vec<u16>, Malformed> {
    let count = r.u16("a run container")? as usize;
    let pairs = r.take(4 * count, "a run container")?;
    let mut values = Vec::with_capacity(cardinality);
    let mut next = 0u32; // the smallest value the next run may start at
    for pair in pairs.chunks_exact(4) {
        let start = u16::from_le_bytes([pair[0], pair[1]]) as u32;
        let end = start + u16::from_le_bytes([pair[2], pair[3]]) as u32;
        if start < next || end > u16::MAX as u32 {
            return Err(malformed!(
                "run container {i} has overlapping or overlong runs"
            ));
        }
        values.extend((start..=end).map(|v| v as u16));
        next = end + 2;
    }
    if values.len() != cardinality {
        return Err(malformed!(
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

/// The bytes `parse_group` will allocate for one group, from its header alone (an array
/// of up to [`SMALL_ARRAY`] values costs 2 bytes a value, any larger container 8 KiB): so a
/// loader can refuse a run whose few bytes on disk would expand past the memory it has
/// (a 6-byte run container can stand for 65,536 members) before allocating any of it.
/// Returns the bytes and the number of containers.
pub fn parsed_bytes(bytes: &[u8]) -> Result<(u64, u64), Malformed> {
    let mut r = Bytes { bytes, at: 0 };
    let first = r.u32("the cookie")?;
    let count = if first == COOKIE_NO_RUNS {
        r.u32("the container count")? as usize
    } else if first as u16 == COOKIE_RUNS {
        let count = (first >> 16) as usize + 1;
        r.take(count.div_ceil(8), "the run bitset")?;
        count
    } else {
        return Err(malformed!("unknown cookie {first:#x}"));
    };
    if count > 1 << 16 {
        return Err(malformed!("{count} containers (at most 65536)"));
    }
    let header = r.take(4 * count, "the container headers")?;
    let containers: u64 = header
        .chunks_exact(4)
        .map(|h| {
            let cardinality = u16::from_le_bytes([h[2], h[3]]) as u64 + 1;
            if cardinality as usize <= SMALL_ARRAY {
                2 * cardinality
            } else {
                8 * WORDS_PER_BITMAP as u64
            }
        })
        .sum();
    Ok((containers + 16 * count as u64, count as u64))
}
