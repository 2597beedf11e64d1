//! Index and gallery benchmarks.
//!
//! - `index_search`: query latency (criterion reports it; the throughput line is
//!   queries per second) of HNSW search and of the exact scan, k = 10, over
//!   100 000 random unit vectors of dimension 128 (one sealed graph plus a
//!   growing segment of 500). Recall@10 against the exact scan is printed once.
//! - `enroll`: enrolling one class of 3 vectors into a gallery of 10 000 vectors,
//!   including `FsStore::apply` (fsync'd) into a temp directory; with sealing
//!   deferred (the append path), and with automatic maintenance (the average then
//!   includes the occasional seal of a full growing segment and tier merges).
//!
//! `METRICANN_BENCH_N` overrides the 100 000 (e.g. for a quick run). Building
//! the graph takes minutes on two cores, so the built index is stored (with
//! `FsStore`, in the system temp dir) and reloaded by later runs;
//! `METRICANN_BENCH_REBUILD=1` forces a fresh build.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use metricann::gallery::{Gallery, GalleryConfig};
use metricann::index::{Index, IndexConfig, IndexManifest};
use metricann::metrics::mean_recall_at_k;
use metricann::store::{BlobRead, BlobStore, ChangeSet, FsStore};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const DIM: usize = 128;

/// Uniformly random directions: Gaussian components (Box–Muller), normalised.
fn random_unit(rng: &mut StdRng, n: usize, dim: usize) -> Vec<Vec<f32>> {
    (0..n)
        .map(|_| {
            let v: Vec<f32> = (0..dim)
                .map(|_| {
                    let u1: f64 = rng.random::<f64>().max(f64::MIN_POSITIVE);
                    let u2: f64 = rng.random();
                    ((-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()) as f32
                })
                .collect();
            let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
            v.into_iter().map(|x| x / norm).collect()
        })
        .collect()
}

/// `METRICANN_BENCH_DATA=clustered`: vectors in groups of 3 around random
/// centres (cosine ≈ 0.9 to their centre), like a gallery of 3-example classes,
/// instead of uniformly random directions (the hardest case for HNSW).
fn clustered() -> bool {
    std::env::var("METRICANN_BENCH_DATA").is_ok_and(|v| v == "clustered")
}

/// `n` vectors of the benchmark's data set (and `queries` queries from it).
fn dataset(rng: &mut StdRng, n: usize, queries: usize) -> (Vec<Vec<f32>>, Vec<Vec<f32>>) {
    if !clustered() {
        return (random_unit(rng, n, DIM), random_unit(rng, queries, DIM));
    }
    let centres = random_unit(rng, n.div_ceil(3), DIM);
    let perturb = |centre: &[f32], noise: &[f32]| -> Vec<f32> {
        let v: Vec<f32> = centre
            .iter()
            .zip(noise)
            .map(|(a, b)| a + 0.45 * b)
            .collect();
        let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        v.into_iter().map(|x| x / norm).collect()
    };
    let noise = random_unit(rng, n, DIM);
    let data = (0..n)
        .map(|i| perturb(&centres[i / 3], &noise[i]))
        .collect();
    let noise = random_unit(rng, queries, DIM);
    let qs = (0..queries)
        .map(|i| perturb(&centres[rng.random_range(0..centres.len())], &noise[i]))
        .collect();
    (data, qs)
}

fn bench_n() -> usize {
    std::env::var("METRICANN_BENCH_N")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(100_000)
}

/// Where the built 100k index is kept between runs (building it is the slow part).
fn cache_dir(n: usize) -> std::path::PathBuf {
    let c = IndexConfig::default();
    std::env::temp_dir().join(format!(
        "metricann-bench-index-{}-{n}x{DIM}-ef{}-{}-seed{}-v1",
        if clustered() { "clustered" } else { "random" },
        c.ef_construction,
        c.ef_search,
        c.seed
    ))
}

/// The benchmark index: `n − 500` vectors in one sealed graph, 500 growing.
/// Loaded from the cache when a previous run stored it (our own persistence,
/// strictly checked); built and stored otherwise. `METRICANN_BENCH_REBUILD=1`
/// forces a build.
fn bench_index(n: usize, vectors: &[Vec<f32>]) -> Index {
    const MANIFEST_BLOB: &str = "bench-index-manifest";
    let dir = cache_dir(n);
    if std::env::var_os("METRICANN_BENCH_REBUILD").is_none()
        && let Ok(store) = FsStore::open_read_only(&dir)
        && let Ok(Some(json)) = store.get(MANIFEST_BLOB)
        && let Ok(manifest) = serde_json::from_slice::<IndexManifest>(&json)
    {
        let start = Instant::now();
        match Index::load(DIM, "bench", &manifest, &store, false) {
            Ok((index, _)) if index.len() == n => {
                println!(
                    "index: loaded from {} in {:.1} s",
                    dir.display(),
                    start.elapsed().as_secs_f64()
                );
                return index;
            }
            Ok(_) => println!("index cache {} is stale: rebuilding", dir.display()),
            Err(e) => println!("index cache {} unusable ({e}): rebuilding", dir.display()),
        }
    }

    let mut index = Index::new(DIM, "bench", IndexConfig::default()).expect("index");
    let sealed = n.saturating_sub(500);
    let ids: Vec<u64> = (0..sealed as u64).collect();
    let start = Instant::now();
    let mut changes = index.add(&ids, &vectors[..sealed]).expect("add");
    changes.extend(index.seal().expect("seal").unwrap_or_default());
    println!(
        "index: HNSW build of {sealed} vectors took {:.1} s",
        start.elapsed().as_secs_f64()
    );
    let ids: Vec<u64> = (sealed as u64..n as u64).collect();
    if !ids.is_empty() {
        changes.extend(index.add(&ids, &vectors[sealed..]).expect("add growing"));
    }
    let _ = std::fs::remove_dir_all(&dir);
    let saved = FsStore::create(&dir).and_then(|mut store| {
        let json = serde_json::to_vec(&index.manifest()).expect("manifest json");
        changes.put(MANIFEST_BLOB, json);
        store.apply(changes)
    });
    match saved {
        Ok(()) => println!("index: cached in {}", dir.display()),
        Err(e) => println!("index: could not cache it ({e})"),
    }
    index
}

fn index_search(c: &mut Criterion) {
    let n = bench_n();
    let mut rng = StdRng::seed_from_u64(1);
    let (vectors, queries) = dataset(&mut rng, n, 1000);
    let index = bench_index(n, &vectors);
    println!(
        "index: {n} {} vectors, dim {DIM}, segments {:?}",
        if clustered() { "clustered" } else { "random" },
        index
            .segments()
            .iter()
            .map(|s| (s.kind, s.vectors))
            .collect::<Vec<_>>()
    );

    let probe = &queries[..200];
    let approx: Vec<Vec<u64>> = probe
        .iter()
        .map(|q| {
            index
                .search(q, 10)
                .expect("search")
                .iter()
                .map(|h| h.id)
                .collect()
        })
        .collect();
    let exact: Vec<Vec<u64>> = probe
        .iter()
        .map(|q| {
            index
                .search_exact(q, 10)
                .expect("exact")
                .iter()
                .map(|h| h.id)
                .collect()
        })
        .collect();
    println!(
        "recall@10 (HNSW vs exact, {} queries, ef_search {}): {:.4}",
        probe.len(),
        index.config().ef_search,
        mean_recall_at_k(&approx, &exact, 10)
    );

    let data = if clustered() { "clustered" } else { "random" };
    let mut group = c.benchmark_group(format!("index_search_{data}_{n}x{DIM}"));
    group.throughput(Throughput::Elements(1));
    let mut i = 0;
    group.bench_function("hnsw_k10", |b| {
        b.iter(|| {
            i = (i + 1) % queries.len();
            black_box(index.search(&queries[i], 10).expect("search"))
        })
    });
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(5));
    group.bench_function("exact_k10", |b| {
        b.iter(|| {
            i = (i + 1) % queries.len();
            black_box(index.search_exact(&queries[i], 10).expect("exact"))
        })
    });
    group.finish();
}

/// A gallery of `vectors` vectors (classes of 3) stored in a fresh temp dir.
fn stored_gallery(vectors: usize, auto: bool) -> (tempfile::TempDir, FsStore, Gallery, StdRng) {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut store = FsStore::create(dir.path()).expect("store");
    let (mut gallery, _) = Gallery::create(GalleryConfig {
        dim: DIM,
        fingerprint: "bench".into(),
        index: IndexConfig::default(),
        head: None,
    })
    .expect("gallery");
    let mut rng = StdRng::seed_from_u64(2);
    for c in 0..vectors / 3 {
        let vs = random_unit(&mut rng, 3, DIM);
        gallery
            .enroll(&format!("class {c}"), &vs, None, vec![])
            .expect("enroll");
    }
    // Store the final state in one go rather than thousands of commits.
    let mut all = ChangeSet::new();
    for (name, bytes) in gallery.all_blobs().expect("blobs") {
        all.put(name, bytes);
    }
    store.apply(all).expect("apply");
    gallery.set_auto_maintain(auto);
    (dir, store, gallery, rng)
}

fn enroll(c: &mut Criterion) {
    let mut group = c.benchmark_group("enroll_3_vectors_into_10k_fs");
    group.sample_size(30);
    for (name, auto) in [("deferred_maintenance", false), ("auto_maintenance", true)] {
        let (_dir, mut store, mut gallery, mut rng) = stored_gallery(10_000, auto);
        let pool = random_unit(&mut rng, 3 * 512, DIM);
        let mut next = 0usize;
        group.bench_function(name, |b| {
            b.iter(|| {
                let at = (next % 512) * 3;
                let cs = gallery
                    .enroll(&format!("new {next}"), &pool[at..at + 3], None, vec![])
                    .expect("enroll");
                store.apply(cs).expect("apply");
                next += 1;
            })
        });
    }
    group.finish();
}

criterion_group!(benches, index_search, enroll);
criterion_main!(benches);
