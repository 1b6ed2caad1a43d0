//! Criterion benchmarks of the lookup side: `Snapshot::open` (verified load), `contains`
//! (one at a time and 1000 per call) and `groups_of`, for 100 groups over 10M customers,
//! with integer ids (identity mapping) and string ids (dictionary mapping).
//!
//! `COHORT_BENCH_CUSTOMERS` overrides the customer count (default 10,000,000).

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use cohort::ids::IdMapping;
use cohort::snapshot::manifest::{IdMappingEntry, IdentityTag, Manifest, FORMAT_VERSION};
use cohort::snapshot::writer::{publish, Bits, EncodedIds, GroupHeader, Promote, PublishedGroup};
use cohort::Snapshot;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use datafusion::arrow::array::{ArrayRef, StringArray};
use rand::{Rng, RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use roaring::RoaringBitmap;

const GROUPS: usize = 100;

fn customers() -> u32 {
    std::env::var("COHORT_BENCH_CUSTOMERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000_000)
}

/// A group of roughly `density` over `n` customers: random bits, built from words.
fn random_group(rng: &mut ChaCha8Rng, n: u32, density: f64) -> RoaringBitmap {
    let words = (n as usize).div_ceil(64);
    let mut bytes = Vec::with_capacity(words * 8);
    for _ in 0..words {
        // AND-ing k random words gives density 2^-k; OR-ing gives 1 - 2^-k.
        let word = if density >= 0.5 {
            let k = (-(1.0 - density).log2()).round().max(1.0) as u32;
            (0..k).fold(0u64, |w, _| w | rng.next_u64())
        } else {
            let k = (-density.log2()).round().max(1.0) as u32;
            (0..k).fold(u64::MAX, |w, _| w & rng.next_u64())
        };
        bytes.extend_from_slice(&word.to_le_bytes());
    }
    let mut bitmap = RoaringBitmap::from_lsb0_bytes(0, &bytes);
    bitmap.remove_range(n..);
    bitmap
}

/// Publishes 100 groups (densities from 0.1% to 87%) over `n` customers into a temp dir.
fn published(n: u32, string_ids: bool) -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let url = dir.path().join("snap").display().to_string();
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let densities = [0.001, 0.01, 0.06, 0.125, 0.25, 0.5, 0.75, 0.875];
    let groups: Vec<PublishedGroup> = (0..GROUPS)
        .map(|g| PublishedGroup {
            header: GroupHeader {
                id: format!("group_{g:03}"),
                name: format!("Group {g}"),
                description: None,
                definition_hash: "sha256:bench".into(),
                carried: None,
            },
            bits: Bits::Bitmap(random_group(&mut rng, n, densities[g % densities.len()])),
        })
        .collect();
    // String ids numbered as `cohort run` numbers them (in the order of their perfect
    // hash); the groups are random either way.
    let mapping = string_ids.then(|| {
        let ids: ArrayRef = Arc::new(StringArray::from_iter_values(
            (0..n).map(|i| format!("C{i:09}")),
        ));
        IdMapping::build(&ids, &(0..n).collect(), "customer_id").unwrap()
    });
    let manifest = Manifest {
        format_version: FORMAT_VERSION,
        run_id: String::new(),
        created_at: "2026-11-22T00:00:00Z".into(),
        as_of: "2026-11-22T00:00:00Z".into(),
        tool_version: "bench".into(),
        sources: Vec::new(),
        customers: n as u64,
        null_ids: 0,
        id_column: "customer_id".into(),
        id_type: if string_ids { "string" } else { "int64" }.into(),
        id_mapping: IdMappingEntry::Identity(IdentityTag::Identity),
        warnings: Vec::new(),
        groups: Vec::new(),
    };
    let ids = EncodedIds::new(
        "customer_id",
        mapping.as_ref().and_then(|m| m.dictionary.as_ref()),
        mapping.as_ref().and_then(|m| m.hash_index.as_ref()),
    )
    .unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime
        .block_on(publish(
            &cohort::snapshot::location::resolve(&url).unwrap(),
            manifest,
            &groups,
            ids,
            Promote::Always,
        ))
        .unwrap();
    (dir, url)
}

fn lookups(c: &mut Criterion) {
    let n = customers();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    for (label, string_ids) in [("int_ids", false), ("string_ids", true)] {
        let (_dir, url) = published(n, string_ids);
        let mut load = c.benchmark_group(format!("load_{GROUPS}_groups_{n}_customers"));
        load.sample_size(10)
            .measurement_time(Duration::from_secs(20));
        load.bench_function(label, |b| {
            b.iter(|| runtime.block_on(Snapshot::open(&url)).unwrap())
        });
        load.finish();

        let snapshot = runtime.block_on(Snapshot::open(&url)).unwrap();
        let mut rng = ChaCha8Rng::seed_from_u64(11);
        // 4096 probes: customers across the whole range, and some unknown ids.
        let probes: Vec<String> = (0..4096)
            .map(|i| {
                let id = if i % 16 == 0 {
                    n + rng.random_range(0..1000)
                } else {
                    rng.random_range(0..n)
                };
                if string_ids {
                    format!("C{id:09}")
                } else {
                    id.to_string()
                }
            })
            .collect();
        let groups: Vec<String> = snapshot.groups().iter().map(|g| g.id.clone()).collect();
        let mut i = 0usize;
        c.bench_function(&format!("contains_{label}"), |b| {
            b.iter(|| {
                i = i.wrapping_add(1);
                let group = &groups[i % groups.len()];
                let id = &probes[i % probes.len()];
                black_box(snapshot.contains(black_box(group), black_box(id)).unwrap())
            })
        });
        // The same checks 1000 at a time (an HTTP batch check): criterion's time per
        // element is the time per check.
        let batch: Vec<(&str, &str)> = (0..1000)
            .map(|k| {
                (
                    groups[k % groups.len()].as_str(),
                    probes[k % probes.len()].as_str(),
                )
            })
            .collect();
        let mut many = c.benchmark_group(format!("contains_many_{label}"));
        many.throughput(Throughput::Elements(batch.len() as u64));
        let mut offset = 0usize;
        many.bench_function("1000_checks", |b| {
            b.iter(|| {
                // Rotate the batch through the probes so no two batches repeat.
                offset = (offset + 1000) % probes.len();
                let checks: Vec<(&str, &str)> = batch
                    .iter()
                    .enumerate()
                    .map(|(k, &(group, _))| (group, probes[(offset + k) % probes.len()].as_str()))
                    .collect();
                black_box(snapshot.contains_many(black_box(&checks)).unwrap())
            })
        });
        many.finish();
        let mut j = 0usize;
        c.bench_function(&format!("groups_of_{GROUPS}_groups_{label}"), |b| {
            b.iter(|| {
                j = j.wrapping_add(1);
                black_box(snapshot.groups_of(black_box(&probes[j % probes.len()])))
            })
        });
    }
}

/// The floor under `contains`: the same probes (group i % 100, customer i % 4096) each
/// reading one 64-bit word of a plain 10M-bit bitset per group (125 MB in all), and
/// nothing else. No index can answer a random probe faster than this read.
fn random_read_floor(c: &mut Criterion) {
    let per_group = (customers() as usize).div_ceil(64);
    let words: Vec<u64> = (0..(GROUPS * per_group) as u64).collect();
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    let probes: Vec<usize> = (0..4096)
        .map(|_| rng.random_range(0..customers() as usize) / 64)
        .collect();
    let mut i = 0usize;
    c.bench_function("random_word_read_floor", |b| {
        b.iter(|| {
            i = i.wrapping_add(1);
            let at = (i % GROUPS) * per_group + probes[i % probes.len()];
            black_box(words[black_box(at)])
        })
    });
}

/// The latency of one read from memory: each iteration follows one link of a random
/// cycle over 128 MiB in huge pages, so every read waits for the one before. A lookup
/// whose reads depend on each other (dictionary slot, then id and membership word) costs
/// at least this much per link.
fn dependent_read_floor(c: &mut Criterion) {
    let links = 16 << 20;
    let mut next: Vec<u64> = cohort::snapshot::memory::huge_page_zeroed(links);
    next.iter_mut().enumerate().for_each(|(i, n)| *n = i as u64);
    // Sattolo's shuffle: one cycle through every entry.
    let mut rng = ChaCha8Rng::seed_from_u64(13);
    for i in (1..links).rev() {
        next.swap(i, rng.random_range(0..i));
    }
    let mut at = 0u64;
    c.bench_function("dependent_read_floor", |b| {
        b.iter(|| {
            at = next[at as usize];
            at
        })
    });
}

criterion_group!(benches, lookups, random_read_floor, dependent_read_floor);
criterion_main!(benches);
