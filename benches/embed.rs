//! Embedding throughput on the CPU (burn's ndarray backend): images per second
//! through `Embedder::embed` — preprocessing plus the forward pass — for the
//! glyph architecture (widths 32-64-128-256, one block per stage, 128-d) at
//! 64×64 input, in batches of 1 (a camera frame) and 32 (a folder), and for
//! the shipped objects model (EfficientNet-Lite0) one frame at a time, at its
//! 160² and at 224².

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use image::{DynamicImage, Rgb, RgbImage};
use metricann::backend::Backend;
use metricann::embed::Embedder;
use metricann::image::Preprocessing;
use metricann::model::{Architecture, Bundle, ResNetConfig};

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

fn embed_objects(c: &mut Criterion) {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/www/models/objects.bundle");
    let bytes = std::fs::read(path).expect("the repository ships www/models/objects.bundle");
    let mut bundle = Bundle::from_bytes("objects.bundle", &bytes).expect("a valid bundle");
    let photo = DynamicImage::ImageRgb8(RgbImage::from_fn(256, 256, |x, y| {
        Rgb([(x % 256) as u8, (y % 256) as u8, ((x * y) % 251) as u8])
    }));
    let mut group = c.benchmark_group("embed_objects_ndarray");
    group.sample_size(10);
    for size in [160u32, 224] {
        bundle.header.preprocessing.input_size = size;
        let device = Backend::Ndarray
            .device()
            .expect("ndarray is always compiled in");
        let embedder = Embedder::new(&bundle, device).expect("the objects model loads");
        let images = [photo.clone()];
        group.throughput(Throughput::Elements(1));
        group.bench_function(format!("{size}px"), |b| {
            b.iter(|| black_box(embedder.embed(black_box(&images)).expect("embedding")))
        });
    }
    group.finish();
}

criterion_group!(benches, embed, embed_objects);
criterion_main!(benches);
