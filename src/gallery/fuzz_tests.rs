//! Structure-aware mutation of every blob a gallery stores and of its export:
//! each mutated payload is framed again with its kind and a valid checksum,
//! so that it reaches the decoder behind the frame. The property: opening
//! (strict and skipping damage), listing, searching and importing give an
//! `Err` or a working gallery, never a panic.
//!
//! Seeded and deterministic; `METRICANN_FUZZ_ITERS` (mutations per blob,
//! default 300) runs it longer.

use std::panic::{AssertUnwindSafe, catch_unwind};

use super::*;
use crate::blob::{self, BlobRead};
use crate::fuzzing::{DIM, fresh_gallery as gallery, use_gallery};
use crate::mutate::{Rng, iterations, mutate};

fn vector(i: usize, j: usize) -> Vec<f32> {
    crate::fuzzing::vector(i, j, DIM)
}

#[test]
fn mutated_blobs_of_every_kind_are_errors_never_panics() {
    let iters = iterations(300);
    for storage in [
        Quantization::None,
        Quantization::Int8,
        Quantization::Int8Residual,
    ] {
        let store = gallery(storage);
        let names = store.names();
        assert!(names.iter().any(|n| n.starts_with("seg-")), "{names:?}");
        assert!(names.iter().any(|n| n.starts_with("grow-")), "{names:?}");
        for (b, name) in names.iter().enumerate() {
            let bytes = store.get(name).unwrap().unwrap();
            let kind = blob::peek_kind(&bytes).expect("a framed blob");
            let payload = blob::open(name, kind, &bytes).unwrap().to_vec();
            let mut rng = Rng(0x9E37_79B9 ^ (b as u64) << 20 ^ storage as u64);
            let mut accepted = 0;
            for i in 0..iters {
                let fuzzed = blob::seal(kind, &mutate(&mut rng, &payload));
                let mut copy = store.clone();
                copy.raw_mut().insert(name.clone(), fuzzed);
                let outcome = catch_unwind(AssertUnwindSafe(|| use_gallery(&copy)));
                match outcome {
                    Ok(ok) => accepted += usize::from(ok),
                    Err(_) => panic!("{name} ({storage:?}), mutation {i}: a panic"),
                }
            }
            eprintln!("{name} ({storage:?}): {iters} mutations, {accepted} opened");
        }
    }
}

#[test]
fn mutated_exports_are_errors_never_panics() {
    let store = gallery(Quantization::None);
    let (g, _) = Gallery::open(&store, None, OpenMode::Strict).unwrap();
    let export = g.export_bytes().unwrap();
    let kind = blob::peek_kind(&export).unwrap();
    let payload = blob::open("export", kind, &export).unwrap().to_vec();
    let mut rng = Rng(0xE4_0127);
    for i in 0..iterations(300) * 4 {
        let fuzzed = blob::seal(kind, &mutate(&mut rng, &payload));
        let outcome = catch_unwind(AssertUnwindSafe(|| {
            if let Ok((g, _)) = Gallery::import_bytes(&fuzzed, None) {
                let _ = g.classes();
                let _ = g.search(&vector(1, 0), 3, None);
            }
        }));
        assert!(outcome.is_ok(), "export mutation {i}: a panic");
    }
}

/// What the mutations above found: ids and counters near `u64::MAX` made
/// counting on from them overflow. Each is now corruption, named.
#[test]
fn ids_and_counters_past_2_pow_53_are_corrupt() {
    let store = gallery(Quantization::None);
    let reseal = |name: &str, change: &dyn Fn(&[u8]) -> Vec<u8>| {
        let bytes = store.get(name).unwrap().unwrap();
        let kind = blob::peek_kind(&bytes).unwrap();
        let mut copy = store.clone();
        let payload = change(blob::open(name, kind, &bytes).unwrap());
        copy.raw_mut()
            .insert(name.into(), blob::seal(kind, &payload));
        copy
    };
    let manifest_with = |field: &str, value: u64| {
        reseal(blob::MANIFEST, &|json| {
            let mut m: serde_json::Value = serde_json::from_slice(json).unwrap();
            let slot = field.split('.').fold(&mut m, |v, key| &mut v[key]);
            *slot = value.into();
            serde_json::to_vec(&m).unwrap()
        })
    };
    for field in [
        "next_vector_id",
        "next_class_id",
        "next_class_seq",
        "index.next_seq",
    ] {
        for value in [u64::MAX, blob::MAX_ID] {
            let err = Gallery::open(&manifest_with(field, value), None, OpenMode::SkipDamaged)
                .map(|_| ())
                .unwrap_err();
            assert!(err.to_string().contains("out of range"), "{field}: {err}");
        }
        let fine = manifest_with(field, blob::MAX_ID - 1);
        assert!(
            Gallery::open(&fine, None, OpenMode::Strict).is_ok(),
            "{field}"
        );
    }
    let chunk = store
        .names()
        .into_iter()
        .find(|n| n.starts_with("grow-"))
        .unwrap();
    let huge = crate::index::segment::encode_flat_parts(
        crate::index::segment::KIND_GROWING_CHUNK,
        "fp",
        DIM,
        &[u64::MAX],
        &vector(6, 0),
    )
    .unwrap();
    let mut copy = store.clone();
    let size = huge.len() as u64;
    copy.raw_mut().insert(chunk.clone(), huge);
    // The manifest lists the chunk's size: keep it truthful so the id is what fails.
    let copy = {
        let m = copy.get(blob::MANIFEST).unwrap().unwrap();
        let mut json: serde_json::Value = serde_json::from_slice(
            blob::open("manifest", blob::peek_kind(&m).unwrap(), &m).unwrap(),
        )
        .unwrap();
        for entry in json["index"]["growing"].as_array_mut().unwrap() {
            if entry["name"] == chunk.as_str() {
                entry["bytes"] = size.into();
            }
        }
        let mut copy = copy;
        let kind = blob::peek_kind(&m).unwrap();
        copy.raw_mut().insert(
            blob::MANIFEST.into(),
            blob::seal(kind, &serde_json::to_vec(&json).unwrap()),
        );
        copy
    };
    let err = Gallery::open(&copy, None, OpenMode::Strict)
        .map(|_| ())
        .unwrap_err();
    assert!(err.to_string().contains("vector id"), "{err}");
    let (g, damage) = Gallery::open(&copy, None, OpenMode::SkipDamaged).unwrap();
    assert_eq!(damage.len(), 1, "{damage:?}");
    assert!(g.search(&vector(1, 0), 1, None).is_ok());
}
