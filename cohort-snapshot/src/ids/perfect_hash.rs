//! The run's minimal perfect hash from external id to bit (`ids.phf`): built when a
//! dictionary run is published, which then numbers its customers in hash order, so a
//! lookup computes an id's bit from 5.7 bits per id (one pilot read) and then reads the
//! id, to confirm it, beside the membership word; the loader only checks it, instead of
//! building an 11-byte-per-id hash table.
//!
//! The scheme is PTHash's (Pibiri and Trani, 2021) with a 16-bit pilot per bucket of about
//! 3.5 keys; docs/snapshot-format.md gives the file's layout and the lookup step by step.

use crate::Malformed;
use rayon::prelude::*;
use twox_hash::XxHash64;

use crate::memory::{huge_page_vec, huge_page_zeroed};

/// Leading bytes of an `ids.phf` file.
pub const MAGIC: &[u8; 8] = b"COHPHF01";
/// Buckets per `BUCKET_KEYS` keys: 2 per 7, about 3.5 keys per bucket (4.6 bits of pilot
/// per key). Against 4 keys per bucket and 1% spare slots, 3.5 and 3.3% halve the pilot
/// search (10M ids on one core of a busy machine: 8.3–10.7 s → 4.8–5.5 s) for 1.4 more
/// bits per key; the parameters
/// are in the file's header, so a reader takes either.
const BUCKETS: usize = 2;
const BUCKET_KEYS: usize = 7;
/// Spare slots, one per this many keys: the last single-key buckets still find a free
/// slot in ~30 tries. Keys placed in the spare slots are remapped to the holes below n.
const KEYS_PER_SPARE_SLOT: usize = 30;
/// Seeds tried before giving up (a 64-bit hash shared by two distinct ids, or a pilot
/// search that runs out of pilots, are each far rarer than one in a million).
const SEEDS: u64 = 4;
/// Spreads a pilot over all 64 bits before it is mixed into a key's hash.
const PILOT_SPREAD: u64 = 0x517c_c1b7_2722_0a95;
/// Pilots screened together by the build's search: 16 measured 14% faster than one by one
/// (8: 11%). A divisor of 2^16, at most 32 (a `u32` mask).
const PILOTS_AT_ONCE: usize = 16;
const _: () = assert!(PILOTS_AT_ONCE <= 32 && (1 << 16) % PILOTS_AT_ONCE == 0);
const HEADER: usize = 40;
/// Buckets whose pilots are searched for in parallel (see `place`).
const WINDOW: usize = 2048;

/// The perfect hash of a dictionary of `keys` ids: every id of the dictionary to a
/// distinct row in `0..keys`, any other id to some row (so a lookup confirms the row's id).
#[derive(Debug)]
pub struct PerfectHash {
    seed: u64,
    keys: u64,
    slots: u64,
    pilots: Vec<u16>,
    remap: Vec<u32>,
}

/// The 64-bit hash of an id's bytes (UTF-8 text, or an integer's 8 little-endian bytes):
/// XXH64 with the file's seed.
#[inline]
pub fn hash(seed: u64, key: &[u8]) -> u64 {
    XxHash64::oneshot(seed, key)
}

/// `x` scaled from `0..2^64` to `0..range`.
#[inline]
fn scale(x: u64, range: u64) -> u64 {
    ((x as u128 * range as u128) >> 64) as u64
}

/// MurmurHash3's 64-bit finalizer: every input bit reaches every output bit.
#[inline]
fn mix(mut x: u64) -> u64 {
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 33;
    x = x.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    x ^ (x >> 33)
}

/// The slot a pilot gives a key's hash.
#[inline]
fn slot(hash: u64, pilot: u16, slots: u64) -> u64 {
    scale(mix(hash ^ (pilot as u64).wrapping_mul(PILOT_SPREAD)), slots)
}

#[inline]
fn is_taken(taken: &[u64], s: u64) -> bool {
    taken[s as usize / 64] >> (s % 64) & 1 == 1
}

#[inline]
fn mark_taken(taken: &mut [u64], s: u64) {
    taken[s as usize / 64] |= 1 << (s % 64);
}

/// The smallest pilot from `from` that puts every member of a non-empty bucket in a free
/// slot, all distinct, and those slots in `placed`: the same answer as trying pilots one by
/// one, found faster. Pilots are screened `PILOTS_AT_ONCE` at a time on the bucket's first
/// key into a mask with no branch per pilot (whether a slot is free is a coin toss for the
/// branch predictor until the table fills), then only the survivors are tried in full.
fn first_free_pilot(
    members: &[u64],
    slots: u64,
    taken: &[u64],
    placed: &mut Vec<u64>,
    from: u16,
) -> Option<u16> {
    let (&first, rest) = members.split_first()?;
    let start = from - from % PILOTS_AT_ONCE as u16;
    for base in (start..=u16::MAX).step_by(PILOTS_AT_ONCE) {
        let mut survivors = 0u32;
        for i in 0..PILOTS_AT_ONCE as u16 {
            survivors |= u32::from(!is_taken(taken, slot(first, base + i, slots))) << i;
        }
        if base == start {
            survivors &= u32::MAX << (from - start);
        }
        while survivors != 0 {
            let pilot = base + survivors.trailing_zeros() as u16;
            survivors &= survivors - 1;
            placed.clear();
            placed.push(slot(first, pilot, slots));
            let fits = rest.iter().all(|&h| {
                let s = slot(h, pilot, slots);
                let free = !is_taken(taken, s) && !placed.contains(&s);
                placed.push(s);
                free
            });
            if fits {
                return Some(pilot);
            }
        }
    }
    None
}

impl PerfectHash {
    /// Builds the hash of `keys` distinct ids, `key_hash(seed, i)` being [`hash`] of id `i`.
    /// Returns it with the row of each id, or `None` when the ids repeat (or, about never,
    /// when no seed works). Deterministic: the same ids give the same file.
    pub fn build(
        keys: usize,
        key_hash: impl Fn(u64, usize) -> u64 + Sync,
    ) -> Option<(PerfectHash, Vec<u32>)> {
        if keys == 0 || keys > u32::MAX as usize {
            return None;
        }
        (0..SEEDS).find_map(|seed| {
            let hashes: Vec<u64> = (0..keys)
                .into_par_iter()
                .map(|i| key_hash(seed, i))
                .collect();
            let phf = Self::place(seed, &hashes, WINDOW)?;
            let rows = hashes
                .par_iter()
                .map(|&h| phf.row_of_hash(h) as u32)
                .collect();
            Some((phf, rows))
        })
    }

    /// Finds a pilot for every bucket, largest buckets first, then remaps the spare slots.
    ///
    /// `window` buckets at a time search for their pilots in parallel, each against the
    /// slots taken before the window; then, in order, each takes its slots if they are
    /// still free, or searches on from its pilot. Slots taken since can only rule pilots
    /// out, so every bucket gets the pilot a search one bucket at a time gives it: the
    /// same file whatever the window and the cores.
    fn place(seed: u64, hashes: &[u64], window: usize) -> Option<PerfectHash> {
        let keys = hashes.len();
        let buckets = (keys * BUCKETS).div_ceil(BUCKET_KEYS);
        let slots = keys + keys.div_ceil(KEYS_PER_SPARE_SLOT);
        let bucket_of = |h: u64| scale(h, buckets as u64) as usize;
        // The hashes in order, so by bucket (a bucket is a range of hashes; the order of a
        // bucket's members changes nothing: its pilot puts all of them in free slots).
        let mut grouped = hashes.to_vec();
        grouped.par_sort_unstable();
        let mut starts = vec![0u32; buckets + 1];
        for &h in &grouped {
            starts[bucket_of(h) + 1] += 1;
        }
        for b in 0..buckets {
            starts[b + 1] += starts[b];
        }
        let size = |b: usize| (starts[b + 1] - starts[b]) as usize;
        // Buckets by size, largest first (a stable counting sort: deterministic).
        let largest = (0..buckets).map(size).max().unwrap_or(0);
        let mut by_size: Vec<Vec<u32>> = vec![Vec::new(); largest + 1];
        for b in 0..buckets {
            by_size[size(b)].push(b as u32);
        }
        let mut taken = vec![0u64; slots.div_ceil(64)];
        // Read at random on every lookup: huge pages, like the other lookup tables.
        let mut pilots = huge_page_zeroed::<u16>(buckets);
        let members =
            |b: u32| &grouped[starts[b as usize] as usize..starts[b as usize + 1] as usize];
        let order: Vec<u32> = by_size.iter().skip(1).rev().flatten().copied().collect();
        let mut placed = Vec::with_capacity(largest);
        for buckets in order.chunks(window.max(1)) {
            let guesses: Vec<Option<u16>> = buckets
                .par_iter()
                .map_init(
                    || Vec::with_capacity(largest),
                    |placed, &b| first_free_pilot(members(b), slots as u64, &taken, placed, 0),
                )
                .collect();
            for (&b, guess) in buckets.iter().zip(guesses) {
                let mut pilot = guess?;
                placed.clear();
                placed.extend(members(b).iter().map(|&h| slot(h, pilot, slots as u64)));
                if placed.iter().any(|&s| is_taken(&taken, s)) {
                    let from = pilot.checked_add(1)?;
                    pilot = first_free_pilot(members(b), slots as u64, &taken, &mut placed, from)?;
                }
                for &s in &placed {
                    mark_taken(&mut taken, s);
                }
                pilots[b as usize] = pilot;
            }
        }
        // Keys in spare slots (≥ keys) move to the free slots below `keys`, in order.
        let mut holes = (0..keys as u64).filter(|&s| !is_taken(&taken, s));
        let remap = (keys as u64..slots as u64)
            .map(|s| match is_taken(&taken, s) {
                true => holes.next().expect("as many holes as keys in spare slots") as u32,
                false => 0,
            })
            .collect();
        Some(PerfectHash {
            seed,
            keys: keys as u64,
            slots: slots as u64,
            pilots,
            remap,
        })
    }

    /// The row an id's bytes hash to: its row if the dictionary holds it.
    #[inline]
    pub fn row(&self, key: &[u8]) -> usize {
        self.row_of_hash(self.hash(key))
    }

    /// [`hash`] with this file's seed.
    #[inline]
    pub fn hash(&self, key: &[u8]) -> u64 {
        hash(self.seed, key)
    }

    /// The row of a key's [`hash`](Self::hash).
    #[inline]
    pub fn row_of_hash(&self, hash: u64) -> usize {
        self.row_with_pilot(hash, self.pilot(hash))
    }

    /// The rows of many hashes, reading all their pilots before using any, so the reads'
    /// cache misses overlap instead of queueing.
    pub fn rows_of_hashes(&self, hashes: &[u64]) -> Vec<usize> {
        let pilots: Vec<u16> = hashes.iter().map(|&h| self.pilot(h)).collect();
        hashes
            .iter()
            .zip(pilots)
            .map(|(&h, pilot)| self.row_with_pilot(h, pilot))
            .collect()
    }

    #[inline]
    fn pilot(&self, hash: u64) -> u16 {
        self.pilots[scale(hash, self.pilots.len() as u64) as usize]
    }

    #[inline]
    fn row_with_pilot(&self, hash: u64, pilot: u16) -> usize {
        let s = slot(hash, pilot, self.slots);
        match s.checked_sub(self.keys) {
            None => s as usize,
            Some(spare) => self.remap[spare as usize] as usize,
        }
    }

    /// Ids the hash was built for.
    pub fn keys(&self) -> usize {
        self.keys as usize
    }

    /// The `ids.phf` file.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(HEADER + self.pilots.len() * 2 + self.remap.len() * 4);
        out.extend_from_slice(MAGIC);
        for field in [self.seed, self.keys, self.slots, self.pilots.len() as u64] {
            out.extend_from_slice(&field.to_le_bytes());
        }
        out.extend(self.pilots.iter().flat_map(|p| p.to_le_bytes()));
        out.extend(self.remap.iter().flat_map(|r| r.to_le_bytes()));
        out
    }

    /// Reads an `ids.phf` file, checking its shape (whether it maps the dictionary's ids
    /// to their rows is for the caller to check).
    pub fn from_bytes(bytes: &[u8]) -> Result<PerfectHash, Malformed> {
        let header = bytes
            .get(..HEADER)
            .filter(|h| h.starts_with(MAGIC))
            .ok_or("not a Cohort perfect hash file")?;
        let field = |i: usize| u64::from_le_bytes(header[8 + 8 * i..][..8].try_into().unwrap());
        let (seed, keys, slots, buckets) = (field(0), field(1), field(2), field(3));
        if keys == 0 || keys > u32::MAX as u64 + 1 || slots < keys || buckets == 0 {
            return Err(malformed!(
                "impossible shape: {keys} keys, {slots} slots, {buckets} buckets"
            ));
        }
        let expected = (HEADER as u64)
            .checked_add(buckets.checked_mul(2).ok_or("too many buckets")?)
            .and_then(|n| n.checked_add((slots - keys).checked_mul(4)?))
            .ok_or("impossible shape")?;
        if bytes.len() as u64 != expected {
            return Err(malformed!(
                "{} bytes where its header needs {expected} (truncated?)",
                bytes.len()
            ));
        }
        let body = &bytes[HEADER..];
        let (pilot_bytes, remap_bytes) = body.split_at(buckets as usize * 2);
        let mut pilots = huge_page_vec(buckets as usize);
        pilots.extend(
            pilot_bytes
                .chunks_exact(2)
                .map(|p| u16::from_le_bytes([p[0], p[1]])),
        );
        let remap: Vec<u32> = remap_bytes
            .chunks_exact(4)
            .map(|r| u32::from_le_bytes(r.try_into().unwrap()))
            .collect();
        if let Some(bad) = remap.iter().find(|&&r| r as u64 >= keys) {
            return Err(malformed!("remaps a slot to row {bad} of {keys}"));
        }
        Ok(PerfectHash {
            seed,
            keys,
            slots,
            pilots,
            remap,
        })
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        /// The screened search finds the pilot (and slots) that trying pilots one by one
        /// finds, from empty tables to ones so full that no pilot fits, from any pilot on.
        #[test]
        fn screened_pilot_search_equals_one_by_one(
            members in proptest::collection::vec(any::<u64>(), 1..6),
            slots in 1u64..3000,
            fill_per_mille in 0u64..1000,
            seed in any::<u64>(),
            from in prop_oneof![Just(0u16), any::<u16>()],
        ) {
            let mut taken = vec![0u64; (slots as usize).div_ceil(64)];
            for s in (0..slots).filter(|&s| mix(seed ^ s) % 1000 < fill_per_mille) {
                mark_taken(&mut taken, s);
            }
            let mut one_by_one = Vec::new();
            let expected = (from..=u16::MAX).find(|&pilot| {
                one_by_one.clear();
                members.iter().all(|&h| {
                    let s = slot(h, pilot, slots);
                    let free = !is_taken(&taken, s) && !one_by_one.contains(&s);
                    one_by_one.push(s);
                    free
                })
            });
            let mut placed = Vec::new();
            prop_assert_eq!(first_free_pilot(&members, slots, &taken, &mut placed, from), expected);
            if expected.is_some() {
                prop_assert_eq!(placed, one_by_one);
            }
        }
    }

    fn keys(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("customer-{i:07}")).collect()
    }

    /// Pilots searched for a window of buckets at a time, in parallel, give the file that
    /// searching one bucket at a time gives.
    #[test]
    fn parallel_placement_gives_the_same_file() {
        let hashes: Vec<u64> = keys(200_000)
            .iter()
            .map(|k| hash(7, k.as_bytes()))
            .collect();
        let one_at_a_time = PerfectHash::place(7, &hashes, 1).unwrap().to_bytes();
        for window in [2, 64, WINDOW] {
            let parallel = PerfectHash::place(7, &hashes, window).unwrap().to_bytes();
            assert!(parallel == one_at_a_time, "window {window}");
        }
    }

    /// Every size, from one id to enough for thousands of buckets: a bijection onto the
    /// rows that survives a round trip through the file.
    #[test]
    fn maps_every_id_to_its_own_row() {
        for n in [1, 2, 3, 5, 17, 100, 1000, 50_000] {
            let ids = keys(n);
            let (phf, rows) = PerfectHash::build(n, |seed, i| hash(seed, ids[i].as_bytes()))
                .unwrap_or_else(|| panic!("{n} ids"));
            let mut seen = vec![false; n];
            for (id, &row) in ids.iter().zip(&rows) {
                assert!(!std::mem::replace(&mut seen[row as usize], true), "{n} ids");
                assert_eq!(phf.row(id.as_bytes()), row as usize);
            }
            let read = PerfectHash::from_bytes(&phf.to_bytes()).unwrap();
            assert!(ids
                .iter()
                .zip(&rows)
                .all(|(id, &row)| read.row(id.as_bytes()) == row as usize));
            assert_eq!(read.to_bytes(), phf.to_bytes());
            // Ids outside the set still land on some row.
            assert!(read.row(b"someone else") < n);
        }
    }

    #[test]
    fn repeated_ids_are_refused() {
        let ids = ["a", "b", "a"];
        assert!(PerfectHash::build(3, |seed, i| hash(seed, ids[i].as_bytes())).is_none());
    }

    #[test]
    fn damaged_files_are_refused() {
        let ids = keys(1000);
        let (phf, _) = PerfectHash::build(1000, |seed, i| hash(seed, ids[i].as_bytes())).unwrap();
        let bytes = phf.to_bytes();
        let mut foreign = bytes.clone();
        foreign[0] = b'X';
        let mut remap_out_of_range = bytes.clone();
        let last = remap_out_of_range.len() - 4;
        remap_out_of_range[last..].copy_from_slice(&u32::MAX.to_le_bytes());
        for (case, damaged) in [
            ("empty", vec![]),
            ("foreign", foreign),
            ("truncated", bytes[..bytes.len() - 1].to_vec()),
            ("remap out of range", remap_out_of_range),
        ] {
            assert!(PerfectHash::from_bytes(&damaged).is_err(), "{case}");
        }
    }
}
