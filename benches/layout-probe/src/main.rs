//! Latency of one string-id membership test, stripped to its memory reads: today's
//! layout (hash, pilot, then id and word side by side) against an open-addressed table
//! whose slot is the bit (no pilot read), and against the int path (parse, word).
//! 10M 10-byte ids, 100 groups of plain bitmaps, probes cycling over 4096 customers and
//! the 100 groups like `benches/lookup.rs`; min of 5 rounds of `PROBE_N` calls.
//! `scale` and `mix` copy cohort-snapshot/src/ids/perfect_hash.rs so the probe stands alone.
use std::hint::black_box;
use std::io::Write;
use std::time::Instant;
use twox_hash::XxHash64;

/// Customers.
const N: usize = 10_000_000;
/// Bytes per id.
const W: usize = 10;
const GROUPS: usize = 100;
/// Distinct customers the timed loops cycle over, as in `benches/lookup.rs`.
const PROBES: usize = 4096;
const PILOT_SPREAD: u64 = 0x517c_c1b7_2722_0a95;
const PAGE: usize = 4096;

/// `len` default values in memory advised for huge pages before it is touched.
fn huge<T: Copy + Default>(len: usize) -> Vec<T> {
    let mut v: Vec<T> = Vec::with_capacity(len);
    let start = v.as_ptr() as usize;
    let aligned = start.next_multiple_of(PAGE);
    let bytes = (start + len * std::mem::size_of::<T>() - aligned) / PAGE * PAGE;
    // SAFETY: a page-aligned range inside the allocation; advice never changes contents.
    let advised = unsafe { libc::madvise(aligned as *mut _, bytes, libc::MADV_HUGEPAGE) };
    assert_eq!(advised, 0, "madvise");
    v.resize(len, T::default());
    v
}

/// `len` pseudo-random words in huge pages: membership bitmaps of some density.
fn random_words(len: usize) -> Vec<u64> {
    let mut words = huge(len);
    for (i, word) in words.iter_mut().enumerate() {
        *word = mix(i as u64);
    }
    words
}

fn scale(x: u64, r: u64) -> u64 {
    ((x as u128 * r as u128) >> 64) as u64
}

fn mix(mut x: u64) -> u64 {
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51afd7ed558ccd);
    x ^= x >> 33;
    x = x.wrapping_mul(0xc4ceb9fe1a85ec53);
    x ^ (x >> 33)
}

fn hash(key: &[u8]) -> u64 {
    XxHash64::oneshot(1, key)
}

fn bit(words: &[u64], words_per_group: usize, group: usize, bit: usize) -> bool {
    words[group * words_per_group + bit / 64] >> (bit % 64) & 1 == 1
}

/// Equality of two 8..=16-byte slices of one length, as two overlapping u64 reads.
#[inline(always)]
fn same_short(a: &[u8], b: &[u8]) -> bool {
    let n = a.len();
    if n != b.len() {
        return false;
    }
    let r = |s: &[u8], at: usize| u64::from_le_bytes(s[at..at + 8].try_into().unwrap());
    (r(a, 0) ^ r(b, 0)) | (r(a, n - 8) ^ r(b, n - 8)) == 0
}

fn time(label: &str, iters: usize, mut f: impl FnMut(usize) -> bool) {
    let mut best = f64::MAX;
    for _ in 0..5 {
        let t = Instant::now();
        let mut acc = 0usize;
        for i in 0..iters {
            acc += f(i) as usize;
        }
        black_box(acc);
        best = best.min(t.elapsed().as_nanos() as f64 / iters as f64);
    }
    println!("{label:<40} {best:6.1} ns");
    let _ = std::io::stdout().flush();
}

/// Open addressing at load 0.8 with linear probing: an id's bit is its slot.
struct OpenTable {
    slots: usize,
    ids: Vec<u8>,
}

impl OpenTable {
    fn new(ids: impl Iterator<Item = Vec<u8>>) -> OpenTable {
        let slots = N * 5 / 4;
        let mut table = OpenTable {
            slots,
            ids: huge(slots * W),
        };
        for id in ids {
            let mut s = table.first_slot(&id);
            while table.id(s)[0] != 0 {
                s = table.next(s);
            }
            table.ids[s * W..][..W].copy_from_slice(&id);
        }
        table
    }

    fn first_slot(&self, key: &[u8]) -> usize {
        scale(hash(key), self.slots as u64) as usize
    }

    fn next(&self, slot: usize) -> usize {
        if slot + 1 == self.slots {
            0
        } else {
            slot + 1
        }
    }

    fn id(&self, slot: usize) -> &[u8] {
        &self.ids[slot * W..][..W]
    }

    /// The key's slot, probing from `first`; `None` at an empty slot.
    fn find(&self, key: &[u8], first: usize) -> Option<usize> {
        let mut s = first;
        loop {
            let here = self.id(s);
            if here == key {
                return Some(s);
            }
            if here[0] == 0 {
                return None;
            }
            s = self.next(s);
        }
    }
}

fn main() {
    let iters: usize = std::env::var("PROBE_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2_000_000);
    let key = |i: usize| format!("c{:09}", i * 7 + 3).into_bytes();
    let table = OpenTable::new((0..N).map(key));
    let words_open = random_words(GROUPS * table.slots.div_ceil(64));
    let per_group_open = table.slots.div_ceil(64);
    // Today's layout, emulated: random pilots (2.5M u16) and dense ids; the row they give
    // is as random as the real one, which is all the timing needs.
    let mut pilots: Vec<u16> = huge(N / 4);
    for (i, pilot) in pilots.iter_mut().enumerate() {
        *pilot = mix(i as u64 + 2) as u16;
    }
    let dense: Vec<u8> = huge(N * W);
    let words_dense = random_words(GROUPS * N.div_ceil(64));
    let per_group_dense = N.div_ceil(64);
    let customers: Vec<usize> = (0..PROBES)
        .map(|j| (mix(j as u64 + 99) % N as u64) as usize)
        .collect();
    let probes: Vec<Vec<u8>> = customers.iter().map(|&c| key(c)).collect();
    let ints: Vec<String> = customers.iter().map(|c| c.to_string()).collect();
    let probe = |i: usize| black_box(probes[i % PROBES].as_slice());
    let pilot = |h: u64| pilots[scale(h, pilots.len() as u64) as usize];
    let row = |h: u64| {
        scale(
            mix(h ^ (pilot(h) as u64).wrapping_mul(PILOT_SPREAD)),
            N as u64,
        )
    };
    let row = |k: &[u8]| row(hash(k)) as usize;
    let dense_id = |row: usize| &dense[row * W..][..W];
    let dense_bit = |i: usize, row: usize| bit(&words_dense, per_group_dense, i % GROUPS, row);

    time("int: parse + word", iters, |i| {
        let id: usize = black_box(&ints[i % PROBES]).parse().unwrap();
        dense_bit(i, id)
    });
    time("minimal: hash, pilot, then id + word", iters, |i| {
        let k = probe(i);
        let row = row(k);
        (dense_id(row) == k) | dense_bit(i, row)
    });
    time("open addressing: hash, then id + word", iters, |i| {
        let k = probe(i);
        let first = table.first_slot(k);
        // Read before the probe, as a lookup would: it holds the id's bit most times.
        let word = words_open[(i % GROUPS) * per_group_open + first / 64];
        let Some(slot) = table.find(k, first) else {
            return false;
        };
        match slot / 64 == first / 64 {
            true => word >> (slot % 64) & 1 == 1,
            false => bit(&words_open, per_group_open, i % GROUPS, slot),
        }
    });
    time("minimal, u64-pair compare", iters, |i| {
        let k = probe(i);
        let row = row(k);
        same_short(dense_id(row), k) | dense_bit(i, row)
    });
    time("minimal: hash, pilot, word only", iters, |i| {
        dense_bit(i, row(probe(i)))
    });
    time("minimal: hash, pilot, id only", iters, |i| {
        let k = probe(i);
        dense_id(row(k)) == k
    });
    time("hash, word only (no pilot)", iters, |i| {
        dense_bit(i, scale(hash(probe(i)), N as u64) as usize)
    });
    time("hash, pilot only", iters, |i| {
        pilot(hash(probe(i))) & 1 == 1
    });
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    println!(
        "{}",
        meminfo
            .lines()
            .filter(|l| l.contains("AnonHuge"))
            .collect::<String>()
    );
    let lengths: Vec<usize> = probes
        .iter()
        .map(|k| {
            let first = table.first_slot(k);
            let slot = table.find(k, first).expect("every probe is in the table");
            (slot + table.slots - first) % table.slots + 1
        })
        .collect();
    println!(
        "probe length: mean {:.2}, max {}",
        lengths.iter().sum::<usize>() as f64 / PROBES as f64,
        lengths.iter().max().unwrap()
    );
}
