//! The fuzz targets' inputs replayed as ordinary tests (docs/testing.md,
//! "Fuzzing"): the starting seeds of every target, and every input that once
//! made a target fail, kept under `fuzz/regressions/<target>/`. Each must give
//! a result or an error, never a panic.
//!
//! `cargo test --test fuzz_replay -- --ignored write_seeds` writes the seeds
//! to `fuzz/corpus/` for `scripts/fuzz.sh`.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};

use metricann::fuzzing::{self, TARGETS};
use metricann::store::MemoryStore;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn run(target: &str, bases: &[MemoryStore], data: &[u8]) {
    match target {
        "blob_frame" => fuzzing::blob_frame(data),
        "gallery_blob" => fuzzing::gallery_blob(bases, data),
        "export" => fuzzing::export(data),
        "bundle" => fuzzing::bundle(data),
        "image" => fuzzing::image(data),
        other => panic!("no fuzz target {other}"),
    }
}

fn seeds() -> (Vec<MemoryStore>, Vec<(&'static str, Vec<u8>)>) {
    let bases = fuzzing::base_galleries(&repo()).expect("the legacy gallery fixtures");
    let seeds = fuzzing::seeds(&bases, &fuzzing::image_seeds());
    (bases, seeds)
}

fn files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|entries| entries.filter_map(|e| Some(e.ok()?.path())).collect())
        .unwrap_or_default();
    files.sort();
    files
}

#[test]
fn every_target_has_seeds_and_they_run() {
    let (bases, seeds) = seeds();
    for target in TARGETS {
        let count = seeds.iter().filter(|(t, _)| *t == target).count();
        assert!(count > 0, "no seeds for {target}");
    }
    for (i, (target, data)) in seeds.iter().enumerate() {
        let outcome = catch_unwind(AssertUnwindSafe(|| run(target, &bases, data)));
        assert!(outcome.is_ok(), "{target} seed {i} panicked");
    }
}

#[test]
fn inputs_that_once_failed_are_errors_now() {
    let (bases, _) = seeds();
    let root = repo().join("fuzz/regressions");
    let mut replayed = 0;
    for target in TARGETS {
        for file in files(&root.join(target)) {
            let data = std::fs::read(&file).expect("a regression input");
            let outcome = catch_unwind(AssertUnwindSafe(|| run(target, &bases, &data)));
            assert!(outcome.is_ok(), "{} panicked", file.display());
            replayed += 1;
        }
    }
    let dirs = files(&root).len();
    assert!(
        replayed > 0 || dirs == 0,
        "fuzz/regressions has folders but no inputs"
    );
    eprintln!("replayed {replayed} inputs from {}", root.display());
}

#[test]
#[ignore = "writes fuzz/corpus/ for scripts/fuzz.sh"]
fn write_seeds() {
    let (_, seeds) = seeds();
    let corpus = repo().join("fuzz/corpus");
    for (i, (target, data)) in seeds.iter().enumerate() {
        let dir = corpus.join(target);
        std::fs::create_dir_all(&dir).expect("fuzz/corpus is writable");
        std::fs::write(dir.join(format!("seed-{i:03}")), data).expect("a seed written");
    }
    eprintln!("{} seeds in {}", seeds.len(), corpus.display());
}
