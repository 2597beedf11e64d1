//! Distance kernels: one exact scan of 10 000 vectors of dimension 128 (the
//! growing segment's inner loop) with each kernel, so the speed-up of the SIMD
//! kernel that `dot` picks over the scalar loop is measured, not assumed.
//! `cargo bench -p metricann --bench distance`. The wasm32 kernels are timed
//! under Node by `tests/wasm_simd/run.sh`.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use metricann::index::distance;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const DIM: usize = 128;
const N: usize = 10_000;

fn scan(c: &mut Criterion) {
    let mut rng = StdRng::seed_from_u64(3);
    let data: Vec<f32> = (0..N * DIM).map(|_| rng.random_range(-1.0..1.0)).collect();
    let q: Vec<f32> = (0..DIM).map(|_| rng.random_range(-1.0..1.0)).collect();
    let mut group = c.benchmark_group(format!("scan_{N}x{DIM}"));
    group.throughput(Throughput::Elements(N as u64));
    type Kernel = fn(&[f32], &[f32]) -> f32;
    let kernels: [(&str, Kernel); 3] = [
        ("dot", distance::dot),
        ("portable", distance::dot_portable),
        ("scalar", distance::dot_scalar),
    ];
    println!("distance: dot runs the {} kernel", distance::kernel_name());
    for (name, f) in kernels {
        group.bench_function(name, |b| {
            b.iter(|| {
                let mut best = f32::MIN;
                for v in data.chunks_exact(DIM) {
                    best = best.max(f(black_box(&q), v));
                }
                best
            })
        });
    }
    group.finish();
}

criterion_group!(benches, scan);
criterion_main!(benches);
