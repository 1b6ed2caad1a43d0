//! Criterion micro-benchmarks of the hot paths: mask → bitmap, and bitmap algebra.

use std::hint::black_box;

use cohort::evaluate::bitmap_from_bits;
use criterion::{criterion_group, criterion_main, Criterion};
use datafusion::arrow::buffer::BooleanBuffer;
use roaring::RoaringBitmap;

fn masks(c: &mut Criterion) {
    // One 8192-row batch at ~30% selectivity, the shape the scan sees per condition.
    let bits: Vec<bool> = (0..8192u32)
        .map(|i| i.wrapping_mul(2_654_435_761) % 10 < 3)
        .collect();
    let buffer = BooleanBuffer::from(bits.as_slice());
    c.bench_function("mask_to_bitmap_8192_rows", |b| {
        b.iter(|| bitmap_from_bits(black_box(81_920), black_box(&buffer)))
    });
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

criterion_group!(benches, masks, algebra);
criterion_main!(benches);
