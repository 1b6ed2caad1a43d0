//! Criterion micro-benchmarks of the hot paths: mask → bitmap, bitmap algebra, the
//! remapping of scan positions to published bits, building the lookup index, and reading a
//! group with large static id lists.

use std::hint::black_box;
use std::sync::Arc;

use cohort::ids::IdMapping;
use cohort::internals::bitmap_from_bits;
use cohort::internals::DEFAULT_BATCH_SIZE;
use cohort::snapshot::index::{parse_group, MembershipIndex};
use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use datafusion::arrow::array::{ArrayRef, Int64Array, StringArray};
use datafusion::arrow::buffer::BooleanBuffer;
use datafusion::arrow::compute::{sort_to_indices, take};
use roaring::RoaringBitmap;

fn masks(c: &mut Criterion) {
    // One batch at ~30% selectivity, the shape the scan sees per condition.
    let bits: Vec<bool> = (0..DEFAULT_BATCH_SIZE as u32)
        .map(|i| i.wrapping_mul(2_654_435_761) % 10 < 3)
        .collect();
    let buffer = BooleanBuffer::from(bits.as_slice());
    c.bench_function("mask_to_bitmap_one_batch", |b| {
        b.iter(|| bitmap_from_bits(black_box(DEFAULT_BATCH_SIZE as u32), black_box(&buffer)))
    });
}

fn remap(c: &mut Criterion) {
    // 1M customers whose batches arrived out of order (as from two partitions), and a
    // group of ~30% of them: what publishing does once per group.
    let rows = 1 << 20;
    let batch = DEFAULT_BATCH_SIZE;
    let batches = rows / batch;
    let ids: ArrayRef = Arc::new(Int64Array::from_iter_values((0..rows).map(|p| {
        let arrived = (p / batch * 7 + 3) % batches; // a fixed permutation of batches
        (arrived * batch + p % batch) as i64
    })));
    let universe: RoaringBitmap = (0..rows as u32).collect();
    let mapping = IdMapping::build(&ids, &universe, "customer_id").unwrap();
    let group: RoaringBitmap = (0..rows as u32)
        .filter(|i| i.wrapping_mul(2_654_435_761) % 10 < 3)
        .collect();
    c.bench_function("remap_1m_positions_30pct", |b| {
        b.iter(|| mapping.remap(black_box(&group)))
    });
}

/// Numbering 1M string customer ids, as `cohort run` does once per run: the perfect hash
/// of the ids and the dictionary put in its order (the earlier sort of the ids is the
/// fallback for repeated ids).
fn number_string_ids(c: &mut Criterion) {
    let rows = 1u32 << 20;
    let ids: ArrayRef =
        Arc::new(StringArray::from_iter_values((0..rows).map(|i| {
            format!("C{:09}", i.wrapping_mul(2_654_435_761) % rows)
        })));
    let universe: RoaringBitmap = (0..rows).collect();
    let mut group = c.benchmark_group("number_1m_string_ids");
    group.sample_size(10);
    group.bench_function("perfect_hash", |b| {
        b.iter(|| IdMapping::build(black_box(&ids), &universe, "customer_id").unwrap())
    });
    // What numbering cost before: sorting the ids (and taking them in that order).
    group.bench_function("sort", |b| {
        b.iter(|| {
            let order = sort_to_indices(black_box(&ids), None, None).unwrap();
            take(&ids, &order, None).unwrap()
        })
    });
    group.finish();
}

fn algebra(c: &mut Criterion) {
    let a: RoaringBitmap = (0..1_000_000u32).filter(|i| i % 3 == 0).collect();
    let b: RoaringBitmap = (0..1_000_000u32).filter(|i| i % 5 != 0).collect();
    c.bench_function("and_1m", |bench| {
        bench.iter(|| black_box(&a) & black_box(&b))
    });
    c.bench_function("or_1m", |bench| {
        bench.iter(|| black_box(&a) | black_box(&b))
    });
    c.bench_function("andnot_1m", |bench| {
        bench.iter(|| black_box(&a) - black_box(&b))
    });
}

fn index_build(c: &mut Criterion) {
    // 100 groups over 1M customers (16 chunks), densities 0.1% to 87% as in the lookup
    // bench: what a load does per 1M customers after checksums and parsing.
    let customers = 1u32 << 20;
    let densities = [1, 10, 60, 125, 250, 500, 750, 875]; // per mille
    let serialized: Vec<Vec<u8>> = (0..100u32)
        .map(|g| {
            let per_mille = densities[g as usize % densities.len()];
            let group: RoaringBitmap = (0..customers)
                .filter(|i| {
                    (i ^ g.wrapping_mul(0x9E37_79B9)).wrapping_mul(2_654_435_761) % 1000 < per_mille
                })
                .collect();
            let mut bytes = Vec::new();
            group.serialize_into(&mut bytes).unwrap();
            bytes
        })
        .collect();
    c.bench_function("index_build_100_groups_1m", |b| {
        b.iter_batched(
            || {
                serialized
                    .iter()
                    .map(|bytes| parse_group(bytes).unwrap())
                    .collect()
            },
            |parsed| MembershipIndex::new(parsed).unwrap(),
            BatchSize::LargeInput,
        )
    });
}

/// A suppression list as a user writes it: a group with 1M static include ids and 500k
/// exclude ids (half of them also included), parsed and linted as `validate` does. Every
/// check over id lists is linear (issue 36: the include/exclude lint was quadratic).
fn large_static_lists(c: &mut Criterion) {
    let ids = |range: std::ops::Range<u64>| {
        range
            .map(|i| format!("\"C{i:08}\""))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let text = format!(
        "[[include]]\nconditions = []\n[static]\ninclude = [{}]\nexclude = [{}]\n",
        ids(0..1_000_000),
        ids(750_000..1_250_000)
    );
    let path = std::path::Path::new("queries/suppressed.toml");
    let mut group = c.benchmark_group("definitions");
    group.sample_size(10);
    group.bench_function("validate_1m_include_500k_exclude_ids", |b| {
        b.iter(|| {
            let (parsed, problems) =
                cohort::definition::parse_group(path, black_box(&text)).expect("a valid group");
            assert!(problems.is_empty());
            let lints = cohort::definition::lint(std::slice::from_ref(&parsed));
            assert_eq!(lints.len(), 1, "one warning for the 250k ids in both lists");
            lints
        })
    });
    group.finish();
}

criterion_group!(
    benches,
    large_static_lists,
    masks,
    algebra,
    remap,
    number_string_ids,
    index_build
);
criterion_main!(benches);
