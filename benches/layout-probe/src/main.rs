//! Latency of one string-id membership test, stripped to its memory reads: today's
//! layout (hash, pilot, then id and word side by side) against an open-addressed table
//! whose slot is the bit (no pilot read), and against the int path (parse, word).
//! 10M 10-byte ids, 100 groups of plain bitmaps, probes cycling over 4096 customers and
//! the 100 groups like `benches/lookup.rs`; min of 5 rounds of `PROBE_N` calls.
//! `scale` and `mix` copy src/snapshot/perfect_hash.rs so the probe stands alone.
use std::hint::black_box;
use std::time::Instant;
use twox_hash::XxHash64;

const N: usize = 10_000_000;
const W: usize = 10;
const GROUPS: usize = 100;

fn huge<T: Copy + Default>(len: usize) -> Vec<T> {
    let mut v: Vec<T> = Vec::with_capacity(len);
    unsafe {
        let p = v.as_mut_ptr() as usize;
        let a = p.next_multiple_of(4096);
        let r = libc::madvise(
            a as *mut _,
            (p + len * std::mem::size_of::<T>() - a) / 4096 * 4096,
            libc::MADV_HUGEPAGE,
        );
        assert_eq!(r, 0);
    }
    v.resize(len, T::default());
    v
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
    use std::io::Write;
    let _ = std::io::stdout().flush();
}

fn main() {
    let iters: usize = std::env::var("PROBE_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2_000_000);
    let key = |i: usize| format!("c{:09}", i * 7 + 3).into_bytes();
    // Open addressing at load 0.8: bit = slot.
    let slots = N * 5 / 4;
    let mut table: Vec<u8> = huge(slots * W);
    for i in 0..N {
        let k = key(i);
        let mut s = scale(XxHash64::oneshot(1, &k), slots as u64) as usize;
        while table[s * W] != 0 {
            s = (s + 1) % slots;
        }
        table[s * W..][..W].copy_from_slice(&k);
    }
    // Minimal layout emulation: pilots (2.5M u16), rows 0..N, dense ids.
    let mut pilots: Vec<u16> = huge(N / 4);
    let mut x = 1u64;
    for p in pilots.iter_mut() {
        x = mix(x.wrapping_add(1));
        *p = x as u16;
    }
    let dense: Vec<u8> = huge(N * W);
    let words_oa: Vec<u64> = {
        let mut w = huge(GROUPS * slots.div_ceil(64));
        for (i, v) in w.iter_mut().enumerate() {
            *v = mix(i as u64);
        }
        w
    };
    let words_min: Vec<u64> = {
        let mut w = huge(GROUPS * N.div_ceil(64));
        for (i, v) in w.iter_mut().enumerate() {
            *v = mix(i as u64);
        }
        w
    };
    let (wo, wm) = (slots.div_ceil(64), N.div_ceil(64));
    let probes: Vec<Vec<u8>> = (0..4096)
        .map(|j| key((mix(j as u64 + 99) % N as u64) as usize))
        .collect();
    let ints: Vec<String> = (0..4096)
        .map(|j| (mix(j as u64 + 99) % N as u64).to_string())
        .collect();

    time("int: parse + word", iters, |i| {
        let id: usize = black_box(&ints[i % 4096]).parse().unwrap();
        let g = i % GROUPS;
        words_min[g * wm + id / 64] >> (id % 64) & 1 == 1
    });
    time("minimal: hash, pilot, then id + word", iters, |i| {
        let k = black_box(&probes[i % 4096]);
        let g = i % GROUPS;
        let h = XxHash64::oneshot(1, k);
        let p = pilots[scale(h, pilots.len() as u64) as usize];
        let row = scale(
            mix(h ^ (p as u64).wrapping_mul(0x517cc1b727220a95)),
            N as u64,
        ) as usize;
        let same = &dense[row * W..][..W] == k.as_slice();
        let bit = words_min[g * wm + row / 64] >> (row % 64) & 1 == 1;
        same | bit
    });
    time("open addressing: hash, then id + word", iters, |i| {
        let k = black_box(&probes[i % 4096]);
        let g = i % GROUPS;
        let h = XxHash64::oneshot(1, k);
        let s0 = scale(h, slots as u64) as usize;
        let word_at = g * wo + s0 / 64;
        let word = words_oa[word_at];
        let mut s = s0;
        loop {
            let here = &table[s * W..][..W];
            if here == k.as_slice() {
                break;
            }
            if here[0] == 0 {
                return false;
            }
            s = if s + 1 == slots { 0 } else { s + 1 };
        }
        let w = if s / 64 == s0 / 64 {
            word
        } else {
            words_oa[g * wo + s / 64]
        };
        w >> (s % 64) & 1 == 1
    });
    time("minimal, u64-pair compare", iters, |i| {
        let k = black_box(&probes[i % 4096]);
        let g = i % GROUPS;
        let h = XxHash64::oneshot(1, k);
        let p = pilots[scale(h, pilots.len() as u64) as usize];
        let row = scale(
            mix(h ^ (p as u64).wrapping_mul(0x517cc1b727220a95)),
            N as u64,
        ) as usize;
        let same = same_short(&dense[row * W..][..W], k);
        let bit = words_min[g * wm + row / 64] >> (row % 64) & 1 == 1;
        same | bit
    });
    time("minimal: hash, pilot, word only", iters, |i| {
        let k = black_box(&probes[i % 4096]);
        let g = i % GROUPS;
        let h = XxHash64::oneshot(1, k);
        let p = pilots[scale(h, pilots.len() as u64) as usize];
        let row = scale(
            mix(h ^ (p as u64).wrapping_mul(0x517cc1b727220a95)),
            N as u64,
        ) as usize;
        words_min[g * wm + row / 64] >> (row % 64) & 1 == 1
    });
    time("minimal: hash, pilot, id only", iters, |i| {
        let k = black_box(&probes[i % 4096]);
        let h = XxHash64::oneshot(1, k);
        let p = pilots[scale(h, pilots.len() as u64) as usize];
        let row = scale(
            mix(h ^ (p as u64).wrapping_mul(0x517cc1b727220a95)),
            N as u64,
        ) as usize;
        &dense[row * W..][..W] == k.as_slice()
    });
    time("hash, word only (no pilot)", iters, |i| {
        let k = black_box(&probes[i % 4096]);
        let g = i % GROUPS;
        let h = XxHash64::oneshot(1, k);
        let row = scale(h, N as u64) as usize;
        words_min[g * wm + row / 64] >> (row % 64) & 1 == 1
    });
    time("hash, pilot only", iters, |i| {
        let k = black_box(&probes[i % 4096]);
        let h = XxHash64::oneshot(1, k);
        pilots[scale(h, pilots.len() as u64) as usize] & 1 == 1
    });
    println!(
        "{}",
        std::fs::read_to_string("/proc/meminfo")
            .unwrap()
            .lines()
            .filter(|l| l.contains("AnonHuge"))
            .collect::<String>()
    );
    let (mut total, mut longest) = (0, 0);
    for k in &probes {
        let mut s = scale(XxHash64::oneshot(1, k), slots as u64) as usize;
        let mut n = 1;
        while &table[s * W..][..W] != k.as_slice() {
            s = (s + 1) % slots;
            n += 1;
        }
        total += n;
        longest = longest.max(n);
    }
    println!(
        "probe length: mean {:.2}, max {longest}",
        total as f64 / 4096.0
    );
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
