//! Embedding throughput on the CPU (burn's ndarray backend): images per second
//! through `Embedder::embed` — preprocessing plus the forward pass — for the
//! default architecture (widths 32-64-128-256, one block per stage, 128-d) at
//! 64×64 input, in batches of 1 (a camera frame) and 32 (a folder).

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use image::{DynamicImage, Rgb, RgbImage};
use metricann::backend::Backend;
use metricann::embed::Embedder;
use metricann::image::Preprocessing;
use metricann::model::{Architecture, ResNetConfig};

fn glyph_like(k: u32) -> DynamicImage {
    DynamicImage::ImageRgb8(RgbImage::from_fn(80, 80, |x, y| {
        if (x * (k + 3) + y * 5) % 17 < 4 {
            Rgb([20, 20, 20])
        } else {
            Rgb([245, 245, 245])
        }
    }))
}

fn embed(c: &mut Criterion) {
    let device = Backend::Ndarray
        .device()
        .expect("ndarray is always compiled in");
    let model = Architecture::from(ResNetConfig::default())
        .init(&device)
        .expect("the default architecture builds");
    let embedder = Embedder::from_model(model, device, Preprocessing::new(64), "bench".into(), 128);
    let mut group = c.benchmark_group("embed_ndarray_64px");
    for batch in [1usize, 32] {
        let images: Vec<DynamicImage> = (0..batch as u32).map(glyph_like).collect();
        group.throughput(Throughput::Elements(batch as u64));
        group.bench_function(format!("batch_{batch}"), |b| {
            b.iter(|| black_box(embedder.embed(black_box(&images)).expect("embedding")))
        });
    }
    group.finish();
}

criterion_group!(benches, embed);
criterion_main!(benches);
