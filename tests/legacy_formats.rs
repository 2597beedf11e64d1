//! Stored data of an earlier release still opens and answers as it did.
//!
//! `tests/fixtures/legacy/` holds galleries (growing segments with class
//! pages, a sealed graph, an int8 graph) and an export file written by the
//! release of 2026-12-03 (commit a51eea9), and `expected.json`:
//! what that release answered for the glyph embeddings in `queries.npy`.
//! A change to a stored format must keep these readable; a change in the
//! answers fails here. `METRICANN_BLESS_LEGACY=1` rewrites `expected.json`
//! (only ever with the release that wrote the fixtures). That release's model
//! bundles are the shipped ones in `www/models/`.

use std::path::{Path, PathBuf};

use metricann::backend::Backend;
use metricann::embed::Embedder;
use metricann::gallery::{Gallery, OpenMode};
use metricann::model::Bundle;
use metricann::store::fs::FsStore;
use serde::{Deserialize, Serialize};

const GALLERIES: [&str; 3] = ["gallery", "gallery-optimized", "gallery-int8"];
const EXPORT: &str = "gallery.export";
const TOP: usize = 3;
const QUERY_STRIDE: usize = 9;

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct Answers {
    classes: usize,
    vectors: usize,
    /// Per query: the top classes and their scores.
    top: Vec<Vec<(String, f32)>>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Expected {
    galleries: std::collections::BTreeMap<String, Answers>,
}

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/legacy")
}

/// The shipped models are the previous release's bundles (a copy here would
/// only double 12 MB); whoever replaces one keeps a small bundle of its format
/// in `tests/fixtures/legacy/` instead.
fn shipped(file: &str) -> Vec<u8> {
    std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("www/models")
            .join(file),
    )
    .unwrap()
}

/// Rows of a little-endian float32 .npy (as `metricann extract` writes).
fn read_npy(path: &Path) -> Vec<Vec<f32>> {
    let bytes = std::fs::read(path).unwrap();
    assert_eq!(&bytes[..6], b"\x93NUMPY", "{} is not .npy", path.display());
    let header_len = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
    let header = std::str::from_utf8(&bytes[10..10 + header_len]).unwrap();
    assert!(header.contains("'<f4'"), "float32 expected: {header}");
    let shape = header.split("'shape': (").nth(1).unwrap();
    let dims: Vec<usize> = shape
        .split(')')
        .next()
        .unwrap()
        .split(',')
        .filter_map(|d| d.trim().parse().ok())
        .collect();
    let floats: Vec<f32> = bytes[10 + header_len..]
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    assert_eq!(floats.len(), dims[0] * dims[1]);
    floats.chunks(dims[1]).map(<[f32]>::to_vec).collect()
}

fn queries() -> (Vec<Vec<f32>>, Vec<String>) {
    let vectors = read_npy(&dir().join("queries.npy"));
    let labels: Vec<String> = std::fs::read_to_string(dir().join("queries.txt"))
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    assert_eq!(vectors.len(), labels.len());
    let picked = (0..vectors.len()).step_by(QUERY_STRIDE);
    picked
        .map(|i| (vectors[i].clone(), labels[i].clone()))
        .unzip()
}

fn answers(gallery: &Gallery, queries: &[Vec<f32>]) -> Answers {
    let stats = gallery.stats();
    let top = queries
        .iter()
        .map(|q| {
            let found = gallery.search(q, TOP, None).unwrap();
            found
                .matches
                .into_iter()
                .map(|m| (m.label, m.score))
                .collect()
        })
        .collect();
    Answers {
        classes: stats.classes,
        vectors: stats.vectors,
        top,
    }
}

fn all_answers() -> Expected {
    let (queries, _) = queries();
    let mut expected = Expected::default();
    for name in GALLERIES {
        let store = FsStore::open_read_only(dir().join(name)).unwrap();
        let (gallery, damage) = Gallery::open(&store, None, OpenMode::Strict)
            .unwrap_or_else(|e| panic!("{name} no longer opens: {e}"));
        assert!(damage.is_empty(), "{name}: {damage:?}");
        expected
            .galleries
            .insert(name.to_string(), answers(&gallery, &queries));
    }
    let bytes = std::fs::read(dir().join(EXPORT)).unwrap();
    let (gallery, _) = Gallery::import_bytes(&bytes, None)
        .unwrap_or_else(|e| panic!("{EXPORT} no longer imports: {e}"));
    expected
        .galleries
        .insert(EXPORT.to_string(), answers(&gallery, &queries));
    expected
}

fn assert_same(name: &str, now: &Answers, then: &Answers) {
    assert_eq!(
        (now.classes, now.vectors),
        (then.classes, then.vectors),
        "{name}"
    );
    assert_eq!(now.top.len(), then.top.len(), "{name}");
    for (q, (a, b)) in now.top.iter().zip(&then.top).enumerate() {
        let labels = |r: &Vec<(String, f32)>| r.iter().map(|m| m.0.clone()).collect::<Vec<_>>();
        assert_eq!(labels(a), labels(b), "{name}, query {q}");
        for (x, y) in a.iter().zip(b) {
            assert!(
                (x.1 - y.1).abs() <= 1e-5,
                "{name}, query {q}: {} vs {}",
                x.1,
                y.1
            );
        }
    }
}

#[test]
fn galleries_and_exports_of_the_previous_release_answer_as_they_did() {
    let now = all_answers();
    let path = dir().join("expected.json");
    if std::env::var_os("METRICANN_BLESS_LEGACY").is_some() {
        std::fs::write(&path, serde_json::to_string_pretty(&now).unwrap()).unwrap();
    }
    let then: Expected = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    assert_eq!(
        now.galleries.keys().collect::<Vec<_>>(),
        then.galleries.keys().collect::<Vec<_>>()
    );
    for (name, answers) in &now.galleries {
        assert_same(name, answers, &then.galleries[name]);
    }
}

#[test]
fn the_previous_release_finds_each_query_in_its_own_class() {
    let (queries, labels) = queries();
    let then: Expected =
        serde_json::from_slice(&std::fs::read(dir().join("expected.json")).unwrap()).unwrap();
    for (name, answers) in &then.galleries {
        let right = answers
            .top
            .iter()
            .zip(&labels)
            .filter(|(top, label)| &top[0].0 == *label)
            .count();
        assert_eq!(
            right,
            queries.len(),
            "{name}: the fixture's own vectors must come first"
        );
    }
}

fn embed_fixture_glyph(bundle: &Bundle) -> Vec<f32> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/glyphs/val/千/DroidSansFallbackFull.png");
    let image = image::open(path).unwrap();
    let embedder = Embedder::new(bundle, Backend::Ndarray.device().unwrap()).unwrap();
    embedder.embed_one(&image).unwrap()
}

#[test]
fn bundles_of_the_previous_releases_load_and_embed_as_they_did() {
    let recorded = &read_npy(&dir().join("queries.npy"))[0];
    let bytes = shipped("glyphs.bundle");
    let bundle = Bundle::from_bytes("glyphs.bundle", &bytes)
        .unwrap_or_else(|e| panic!("glyphs.bundle no longer loads: {e}"));
    assert_eq!(
        bundle.fingerprint(),
        "c81bd90654744dcb",
        "www/models/glyphs.bundle is no longer the first release's: keep that format here"
    );
    assert!(bundle.header.calibration.is_none());
    let vector = embed_fixture_glyph(&bundle);
    let cosine: f32 = vector.iter().zip(recorded).map(|(a, b)| a * b).sum();
    assert!(
        cosine > 0.9999,
        "cosine {cosine} with the recorded embedding"
    );
    let bytes = shipped("objects.bundle");
    let bundle = Bundle::from_bytes("objects.bundle", &bytes).unwrap();
    assert_eq!(
        bundle.fingerprint(),
        "8a97f91971d1fbbc",
        "www/models/objects.bundle is no longer this release's: keep an f16 bundle here"
    );
    assert_eq!(bundle.header.embedding_dim, 128);
    let threshold = bundle.header.calibration.as_ref().map(|c| c.threshold);
    assert!(
        threshold.is_some_and(|t| (t - 0.313).abs() < 0.001),
        "{threshold:?}"
    );
    bundle
        .load_model(&Backend::Ndarray.device().unwrap())
        .unwrap();
}
