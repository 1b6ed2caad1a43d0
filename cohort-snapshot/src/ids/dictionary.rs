//! A run's id dictionary (`ids.parquet`, row n = external id of bit n) and its index from
//! external id to bit: the run's perfect hash (`ids.phf`), checked against every id at
//! load, or for runs without one a hash table built on every core at load.
//!
//! With the perfect hash, a lookup computes the bit from one pilot read (5.7 bits per id)
//! and reads that bit's id to confirm it. Without it, a probe reads one slot of the table
//! (a 26-bit tag of the id's hash beside the bit) and, when the tag matches, that bit's id.
//! Ids, slots and pilots live in huge pages, so a probe costs cache misses but no page
//! walks (a page walk under virtualisation costs more than the miss itself).

use crate::Malformed;
use std::hash::BuildHasher;

use arrow::array::{Array, ArrayRef, AsArray, Int64Array, StringArray, UInt64Array};
use arrow::buffer::{Buffer, OffsetBuffer, ScalarBuffer};
use arrow::datatypes::{ArrowNativeType, DataType, Int64Type, UInt64Type};
use bytes::Bytes;
use hashbrown::DefaultHashBuilder;
use parquet::arrow::arrow_reader::{ArrowReaderMetadata, ParquetRecordBatchReaderBuilder};
use rayon::prelude::*;

use super::perfect_hash::PerfectHash;
use crate::memory::{huge_page_vec, huge_page_zeroed};

/// Index shards: contiguous regions of the slot table, each filled by one task. Many small
/// shards keep a task's inserts in the CPU cache (10M ids give ~1.7 MiB regions) and
/// spread over the cores.
const SHARDS: usize = 64;
/// Slots per id in a region: a load factor of 0.7 keeps linear probes short (2.2 slots
/// on average for a hit, mostly in one cache line) at 11.4 bytes per id.
const SLOTS_PER_ID: (usize, usize) = (10, 7);
/// Marks a slot as used: every filled slot is non-zero, an empty one is 0.
const USED: u32 = 1 << 31;

/// A lookup between its two halves: see [`Dictionary::candidate_of`].
#[derive(Clone, Copy, Debug)]
pub struct Candidate<'a> {
    customer_id: &'a str,
    key: Option<Key<'a>>,
    bit: Option<u32>,
}

/// The dictionary and its index.
#[derive(Debug)]
pub struct Dictionary {
    ids: Ids,
    index: Index,
}

/// External id → bit.
#[derive(Debug)]
enum Index {
    /// The run's perfect hash: the row an id hashes to is its row, if it is in the run.
    Perfect(PerfectHash),
    /// A table built at load.
    Probed {
        /// `SHARDS` regions of `region` slots; a slot is `(USED | tag) << 32 | bit`, or 0.
        slots: Vec<u64>,
        region: usize,
        hasher: DefaultHashBuilder,
    },
}

/// One external id, parsed for the dictionary's type.
#[derive(Clone, Copy, Debug, Hash, PartialEq, PartialOrd)]
enum Key<'a> {
    Signed(i64),
    Unsigned(u64),
    Text(&'a [u8]),
}

/// The dictionary column, its type resolved once (a lookup reads it millions of times).
#[derive(Debug)]
enum Ids {
    Signed(Int64Array),
    Unsigned(UInt64Array),
    Text(StringArray),
    /// Ids all `width` bytes long (zero-padded codes, UUIDs): row n starts at n × width,
    /// so a probe reads the id without first reading its offset.
    FixedText(StringArray, usize),
}

impl Ids {
    fn len(&self) -> usize {
        match self {
            Ids::Signed(a) => a.len(),
            Ids::Unsigned(a) => a.len(),
            Ids::Text(a) | Ids::FixedText(a, _) => a.len(),
        }
    }
}

#[inline]
fn key_at(ids: &Ids, row: usize) -> Key<'_> {
    match ids {
        Ids::Signed(a) => Key::Signed(a.value(row)),
        Ids::Unsigned(a) => Key::Unsigned(a.value(row)),
        Ids::Text(a) => Key::Text(a.value(row).as_bytes()),
        Ids::FixedText(a, width) => Key::Text(&a.value_data()[row * width..][..*width]),
    }
}

/// The shard of a hash: bits 32..38.
#[inline]
fn shard_of(hash: u64) -> usize {
    (hash >> 32) as usize & (SHARDS - 1)
}

/// Where a hash goes in its shard's region: its first slot (the low 32 bits, scaled to the
/// region) and its slot tag (bits 38..64, disjoint from those choosing slot and shard).
#[inline]
fn place(hash: u64, region: usize) -> (usize, u32) {
    let first = ((hash as u32 as u64 * region as u64) >> 32) as usize;
    (first, (hash >> 38) as u32 | USED)
}

/// The slots a linear probe visits in a region of `len` slots, from `first` on, wrapping.
/// (A region always has an empty slot, which ends every probe.)
#[inline]
fn probe(len: usize, first: usize) -> impl Iterator<Item = usize> {
    (first..len).chain(0..first)
}

/// A key's perfect-hash hash (text as its bytes, integers as 8 little-endian bytes, as the
/// publisher hashed them).
#[inline]
fn perfect_hash_of(hash: &PerfectHash, key: Key) -> u64 {
    match key {
        Key::Signed(v) => hash.hash(&v.to_le_bytes()),
        Key::Unsigned(v) => hash.hash(&v.to_le_bytes()),
        Key::Text(bytes) => hash.hash(bytes),
    }
}

/// The row the perfect hash gives a key.
#[inline]
fn perfect_row(hash: &PerfectHash, key: Key) -> usize {
    hash.row_of_hash(perfect_hash_of(hash, key))
}

impl Dictionary {
    /// Decodes `ids.parquet` and indexes it with the run's perfect hash (`ids.phf`), if it
    /// has one, or a table built now. Refuses null or repeated ids, and a perfect hash that
    /// does not lead every id to its row.
    pub fn read(bytes: Bytes, perfect_hash: Option<Bytes>) -> Result<Dictionary, Malformed> {
        let ids = decode(bytes)?;
        if ids.len() > u32::MAX as usize + 1 {
            return Err(malformed!("{} ids do not fit 32-bit bits", ids.len()));
        }
        let index = match perfect_hash {
            Some(bytes) => Index::Perfect(check_perfect_hash(&ids, &bytes)?),
            None => {
                let hasher = DefaultHashBuilder::default();
                let (slots, region) = build_index(&ids, &hasher)?;
                Index::Probed {
                    slots,
                    region,
                    hasher,
                }
            }
        };
        Ok(Dictionary { ids, index })
    }

    /// Ids in the dictionary.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// Whether the dictionary is empty.
    pub fn is_empty(&self) -> bool {
        self.ids.len() == 0
    }

    /// The bit of an external id given as text, if the dictionary holds it.
    pub fn bit_of(&self, customer_id: &str) -> Option<u32> {
        let key = self.key(customer_id)?;
        if let Index::Perfect(hash) = &self.index {
            let row = perfect_row(hash, key);
            return (key_at(&self.ids, row) == key).then_some(row as u32);
        }
        let (region, first, tag) = self.locate(key);
        probe(region.len(), first)
            .map(|at| region[at])
            .take_while(|&slot| slot != 0)
            .find(|&slot| {
                (slot >> 32) as u32 == tag && key_at(&self.ids, slot as u32 as usize) == key
            })
            .map(|slot| slot as u32)
    }

    /// `test` of the id's bit; false when the dictionary does not hold the id.
    ///
    /// Unlike `test(bit_of(id))`, runs `test` on the candidate bit (the perfect hash's row,
    /// or the first bit whose slot tag matches) while confirming that bit's id, so the two
    /// cache misses overlap.
    pub fn test_bit(&self, customer_id: &str, test: impl Fn(u32) -> bool) -> bool {
        self.test_candidate(self.candidate_of(customer_id), test)
    }

    /// The first half of [`test_bit`](Self::test_bit): the id's candidate bit, whose read
    /// (a pilot or a slot) is the lookup's first cache miss. A caller with other work
    /// (finding the group) does it between the halves, while that read is in flight.
    #[inline]
    pub fn candidate_of<'a>(&self, customer_id: &'a str) -> Candidate<'a> {
        let key = self.key(customer_id);
        let bit = key.and_then(|key| match &self.index {
            Index::Perfect(hash) => Some(perfect_row(hash, key) as u32),
            Index::Probed { .. } => self.candidate(key),
        });
        Candidate {
            customer_id,
            key,
            bit,
        }
    }

    /// The second half of [`test_bit`](Self::test_bit): `test` of the candidate bit,
    /// confirmed against the bit's id.
    #[inline]
    pub fn test_candidate(&self, candidate: Candidate<'_>, test: impl Fn(u32) -> bool) -> bool {
        let (Some(key), Some(bit)) = (candidate.key, candidate.bit) else {
            return false;
        };
        let answer = test(bit);
        if key_at(&self.ids, bit as usize) == key {
            answer
        } else if let Index::Perfect(_) = &self.index {
            false // the one row the id can have holds another id
        } else {
            // Another id shares the tag (about 1 in 2^26 probes): search properly.
            self.bit_of(candidate.customer_id).is_some_and(test)
        }
    }

    /// `bit_of` for many ids, in passes over all of them (first slots, candidate bits,
    /// confirmation), so the cache misses of different ids overlap instead of queueing.
    pub fn bits_of(&self, customer_ids: &[&str]) -> Vec<Option<u32>> {
        let keys: Vec<Option<Key>> = customer_ids.iter().map(|id| self.key(id)).collect();
        if let Index::Perfect(hash) = &self.index {
            // Passes: all hashes, all pilots, all confirmations.
            let hashes: Vec<u64> = keys
                .iter()
                .map(|key| key.map_or(0, |key| perfect_hash_of(hash, key)))
                .collect();
            let rows = hash.rows_of_hashes(&hashes);
            return keys
                .iter()
                .zip(rows)
                .map(|(key, row)| {
                    key.filter(|&key| key_at(&self.ids, row) == key)
                        .map(|_| row as u32)
                })
                .collect();
        }
        let mut touched = 0;
        for key in keys.iter().flatten() {
            let (region, first, _) = self.locate(*key);
            touched ^= region[first];
        }
        std::hint::black_box(touched);
        let candidates: Vec<Option<u32>> = keys.iter().map(|key| self.candidate((*key)?)).collect();
        keys.iter()
            .zip(candidates)
            .zip(customer_ids)
            .map(|((key, candidate), id)| match (key, candidate) {
                (Some(key), Some(bit)) if key_at(&self.ids, bit as usize) == *key => Some(bit),
                (Some(_), Some(_)) => self.bit_of(id),
                _ => None,
            })
            .collect()
    }

    /// An id given as text as the dictionary's key type, if it can be one.
    fn key<'a>(&self, customer_id: &'a str) -> Option<Key<'a>> {
        Some(match self.ids {
            Ids::Signed(_) => Key::Signed(crate::ids::canonical(customer_id)?),
            Ids::Unsigned(_) => Key::Unsigned(crate::ids::canonical(customer_id)?),
            Ids::Text(_) | Ids::FixedText(..) => Key::Text(customer_id.as_bytes()),
        })
    }

    /// A key's shard region, its first slot there and its tag (probed index only).
    #[inline]
    fn locate(&self, key: Key) -> (&[u64], usize, u32) {
        let Index::Probed {
            slots,
            region,
            hasher,
        } = &self.index
        else {
            unreachable!("only the probed index has slots")
        };
        let hash = hasher.hash_one(key);
        let slots = &slots[shard_of(hash) * region..][..*region];
        let (first, tag) = place(hash, *region);
        (slots, first, tag)
    }

    /// The bit in the first slot on the key's probe whose tag matches the key's: the key's
    /// bit if the dictionary holds it, barring a tag shared with another id.
    #[inline]
    fn candidate(&self, key: Key) -> Option<u32> {
        let (region, first, tag) = self.locate(key);
        probe(region.len(), first)
            .map(|at| region[at])
            .take_while(|&slot| slot != 0)
            .find(|&slot| (slot >> 32) as u32 == tag)
            .map(|slot| slot as u32)
    }

    /// The external id of a bit, as text.
    pub fn external_id(&self, bit: u32) -> String {
        key_at(&self.ids, bit as usize).to_string()
    }
}

impl std::fmt::Display for Key<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Key::Signed(v) => v.fmt(f),
            Key::Unsigned(v) => v.fmt(f),
            Key::Text(v) => String::from_utf8_lossy(v).fmt(f),
        }
    }
}

/// Decodes the dictionary's row groups on every core, in order, into one column in huge
/// pages.
fn decode(bytes: Bytes) -> Result<Ids, Malformed> {
    let metadata = ArrowReaderMetadata::load(&bytes, Default::default())
        .map_err(|e| Malformed(e.to_string()))?;
    if metadata.schema().fields().len() != 1 {
        return Err("expected exactly one column".into());
    }
    let data_type = metadata.schema().field(0).data_type().clone();
    let row_groups: Vec<Result<Vec<ArrayRef>, Malformed>> =
        (0..metadata.metadata().num_row_groups())
            .into_par_iter()
            .map(|row_group| {
                ParquetRecordBatchReaderBuilder::new_with_metadata(bytes.clone(), metadata.clone())
                    .with_row_groups(vec![row_group])
                    .with_batch_size(64 * 1024)
                    .build()
                    .map_err(|e| Malformed(e.to_string()))?
                    .map(|batch| {
                        batch
                            .map(|b| b.column(0).clone())
                            .map_err(|e| Malformed(e.to_string()))
                    })
                    .collect()
            })
            .collect();
    let chunks: Vec<ArrayRef> = row_groups
        .into_iter()
        .collect::<Result<Vec<_>, Malformed>>()?
        .into_iter()
        .flatten()
        .collect();
    if chunks.iter().any(|c| c.null_count() > 0) {
        return Err("the dictionary holds null ids".into());
    }
    let rows = chunks.iter().map(|c| c.len()).sum();
    Ok(match data_type {
        DataType::Int64 => Ids::Signed(Int64Array::new(
            gather_values(&chunks, rows, |c| c.as_primitive::<Int64Type>().values()),
            None,
        )),
        DataType::UInt64 => Ids::Unsigned(UInt64Array::new(
            gather_values(&chunks, rows, |c| c.as_primitive::<UInt64Type>().values()),
            None,
        )),
        DataType::Utf8 => {
            let ids = gather_text(&chunks, rows)?;
            match fixed_width(&ids) {
                Some(width) => Ids::FixedText(ids, width),
                None => Ids::Text(ids),
            }
        }
        other => return Err(malformed!("unsupported id type {other}")),
    })
}

/// Concatenates fixed-width chunks into one huge-page buffer.
fn gather_values<T: ArrowNativeType>(
    chunks: &[ArrayRef],
    rows: usize,
    values: impl Fn(&ArrayRef) -> &[T],
) -> ScalarBuffer<T> {
    let mut all = huge_page_vec(rows);
    for chunk in chunks {
        all.extend_from_slice(values(chunk));
    }
    all.into()
}

/// Concatenates string chunks into one string array whose bytes and offsets live in huge
/// pages.
fn gather_text(chunks: &[ArrayRef], rows: usize) -> Result<StringArray, Malformed> {
    let strings: Vec<&StringArray> = chunks.iter().map(|c| c.as_string::<i32>()).collect();
    let span = |s: &StringArray| {
        let offsets = s.value_offsets();
        (offsets[0] as usize, offsets[s.len()] as usize)
    };
    let total: usize = strings.iter().map(|s| span(s).1 - span(s).0).sum();
    if total > i32::MAX as usize {
        return Err(malformed!("{total} bytes of ids exceed 2 GiB"));
    }
    let mut bytes = huge_page_zeroed::<u8>(total);
    let mut offsets = huge_page_zeroed::<i32>(rows + 1);
    // Each chunk's share of the output as its own slices, so chunks copy in parallel.
    let mut parts = Vec::with_capacity(strings.len());
    let (mut rest_bytes, mut rest_offsets) = (&mut bytes[..], &mut offsets[1..]);
    let mut written = 0;
    for s in strings {
        let (start, end) = span(s);
        let (part_bytes, more_bytes) = rest_bytes.split_at_mut(end - start);
        let (part_offsets, more_offsets) = rest_offsets.split_at_mut(s.len());
        parts.push((
            s,
            start..end,
            written as i32 - start as i32,
            part_bytes,
            part_offsets,
        ));
        (rest_bytes, rest_offsets, written) = (more_bytes, more_offsets, written + end - start);
    }
    parts
        .into_par_iter()
        .for_each(|(s, span, shift, part_bytes, part_offsets)| {
            part_bytes.copy_from_slice(&s.value_data()[span]);
            for (out, &offset) in part_offsets.iter_mut().zip(&s.value_offsets()[1..]) {
                *out = offset + shift;
            }
        });
    StringArray::try_new(
        OffsetBuffer::new(offsets.into()),
        Buffer::from_vec(bytes),
        None,
    )
    .map_err(|e| Malformed(e.to_string()))
}

/// The length every id shares, if they all share one. (`gather_text` starts offsets at 0.)
fn fixed_width(ids: &StringArray) -> Option<usize> {
    let offsets = ids.value_offsets();
    let width = offsets.get(1)? - offsets[0];
    offsets
        .par_windows(2)
        .all(|pair| pair[1] - pair[0] == width)
        .then_some(width as usize)
}

/// Reads the run's perfect hash and checks, on every core, that it leads each id to its own
/// row (which also proves the ids distinct): a wrong or foreign file would otherwise answer
/// "not a member" for members.
fn check_perfect_hash(ids: &Ids, bytes: &[u8]) -> Result<PerfectHash, Malformed> {
    let hash = PerfectHash::from_bytes(bytes).map_err(|e| format!("ids.phf: {e}"))?;
    if hash.keys() != ids.len() {
        return Err(malformed!(
            "ids.phf hashes {} ids, the dictionary holds {}",
            hash.keys(),
            ids.len()
        ));
    }
    // In blocks, each reading all its pilots before using any (see `rows_of_hashes`).
    const BLOCK: usize = 256;
    let stray = (0..ids.len().div_ceil(BLOCK))
        .into_par_iter()
        .with_min_len(256)
        .find_map_first(|block| {
            let rows = block * BLOCK..((block + 1) * BLOCK).min(ids.len());
            let hashes: Vec<u64> = rows
                .clone()
                .map(|row| perfect_hash_of(&hash, key_at(ids, row)))
                .collect();
            rows.zip(hash.rows_of_hashes(&hashes))
                .find(|(row, hashed)| row != hashed)
                .map(|(row, _)| row)
        });
    match stray {
        Some(row) => Err(malformed!(
            "ids.phf does not lead id '{}' (row {row}) to its row (a foreign or damaged file)",
            key_at(ids, row)
        )),
        None => Ok(hash),
    }
}

/// Hashes every id, buckets the rows by shard, then fills the shards' regions, all on
/// every core. Dictionaries without a perfect hash are sorted, so ascending rows prove the
/// ids distinct and inserts need no lookup first; an unsorted one is still read, checking
/// each insert.
fn build_index(ids: &Ids, hasher: &DefaultHashBuilder) -> Result<(Vec<u64>, usize), Malformed> {
    let rows = ids.len();
    let span = rows.div_ceil(rayon::current_num_threads()).max(1);
    // Per span of rows: is it ascending, and its (hash, row) pairs bucketed by shard. The
    // hash is kept: computing it again would read every id a second time, out of order.
    type Buckets = Vec<Vec<(u64, u32)>>;
    let spans: Vec<(bool, Buckets)> = (0..rows.div_ceil(span))
        .into_par_iter()
        .map(|i| {
            let (start, end) = (i * span, ((i + 1) * span).min(rows));
            // Each span also checks the pair across its left edge.
            let sorted = (start.max(1)..end).all(|r| key_at(ids, r - 1) < key_at(ids, r));
            let mut buckets: Buckets = (0..SHARDS)
                .map(|_| Vec::with_capacity((end - start) / SHARDS * 9 / 8))
                .collect();
            for row in start..end {
                let hash = hasher.hash_one(key_at(ids, row));
                buckets[shard_of(hash)].push((hash, row as u32));
            }
            (sorted, buckets)
        })
        .collect();
    let sorted = spans.iter().all(|(sorted, _)| *sorted);
    let fullest = (0..SHARDS)
        .map(|shard| spans.iter().map(|(_, b)| b[shard].len()).sum::<usize>())
        .max()
        .unwrap_or(0);
    let region = (fullest * SLOTS_PER_ID.0).div_ceil(SLOTS_PER_ID.1) + 1;
    let mut slots = huge_page_zeroed::<u64>(SHARDS * region);
    slots
        .par_chunks_mut(region)
        .enumerate()
        .try_for_each(|(shard, table)| {
            for &(hash, row) in spans.iter().flat_map(|(_, b)| &b[shard]) {
                let (first, tag) = place(hash, region);
                for at in probe(region, first) {
                    let slot = table[at];
                    if slot == 0 {
                        table[at] = (tag as u64) << 32 | row as u64;
                        break;
                    }
                    let repeated =
                        || key_at(ids, slot as u32 as usize) == key_at(ids, row as usize);
                    if !sorted && (slot >> 32) as u32 == tag && repeated() {
                        return Err(malformed!("row {row} repeats an earlier id"));
                    }
                }
            }
            Ok(())
        })?;
    Ok((slots, region))
}

#[cfg(test)]
mod tests;
