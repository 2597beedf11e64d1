//! Every gallery mutation, stopped at every step of its commit to a directory
//! (a failed step and a crash at it): the gallery then opens holding the state
//! before the mutation or after it, never a mix, and its searches find what
//! that state holds.

use std::path::{Path, PathBuf};

use super::fault::{FaultKind, Faults};
use super::{BlobStore, ChangeSet, FsStore, MemoryStore};
use crate::gallery::{ClassInfo, Gallery, GalleryConfig, OpenMode, SegmentKind};
use crate::index::{IndexConfig, Quantization};
use crate::{Error, Result};

const DIM: usize = 16;

fn config() -> GalleryConfig {
    GalleryConfig {
        dim: DIM,
        fingerprint: "fp".into(),
        index: IndexConfig {
            growing_capacity: 64,
            merge_factor: 2,
            ..IndexConfig::default()
        },
        head: None,
    }
}

/// Class `i`'s example `j`: near axis `i`, far from the other classes.
fn vector(i: usize, j: usize) -> Vec<f32> {
    let mut v = vec![0.0; DIM];
    v[i % DIM] = 1.0;
    v[(i + 1) % DIM] = 0.05 * j as f32;
    v
}

/// What a user can observe of a gallery: its classes, its shape, and which
/// class each probe finds.
#[derive(Debug, PartialEq)]
struct State {
    classes: Vec<ClassInfo>,
    vectors: usize,
    segments: Vec<(SegmentKind, usize)>,
    quantization: Quantization,
    found: Vec<Option<String>>,
}

fn state(g: &Gallery) -> State {
    let stats = g.stats();
    State {
        classes: g.classes(),
        vectors: stats.vectors,
        segments: stats.segments.iter().map(|s| (s.kind, s.vectors)).collect(),
        quantization: stats.quantization,
        found: (0..DIM)
            .map(|i| {
                let hits = g.search(&vector(i, 0), 1, Some(0.9)).unwrap();
                hits.matches.first().map(|m| m.label.clone())
            })
            .collect(),
    }
}

/// The state of the gallery in `dir`, opened as a user would after a crash:
/// `None` when no gallery was ever committed there.
fn reopen(dir: &Path) -> Option<State> {
    let store = FsStore::open(dir).unwrap();
    match Gallery::open(&store, None, OpenMode::Strict) {
        Ok((g, damage)) => {
            assert!(damage.is_empty(), "{damage:?}");
            Some(state(&g))
        }
        Err(Error::NotFound(_)) => None,
        Err(e) => panic!("the gallery does not open: {e}"),
    }
}

/// `n` examples of a large class, near axis 12: enough vectors for graphs.
fn bulk(n: usize) -> Vec<Vec<f32>> {
    (0..n)
        .map(|j| {
            let mut v = vec![0.0; DIM];
            v[12] = 1.0;
            v[13] = 0.01 * j as f32;
            v[14] = 0.005 * (j % 7) as f32;
            v
        })
        .collect()
}

fn images(n: usize) -> Vec<Vec<u8>> {
    (0..n).map(|j| vec![200, j as u8]).collect()
}

/// Six small classes with their images, and two large ones: a sealed graph
/// and a full growing segment, so the next maintenance seals a second graph
/// and then merges the two.
fn seeded(dir: &Path) {
    let mut store = FsStore::create(dir).unwrap();
    let (mut g, created) = Gallery::create(config()).unwrap();
    store.apply(created).unwrap();
    g.set_auto_maintain(false);
    let cs = g.enroll("bulk", &bulk(70), None, images(70)).unwrap();
    store.apply(cs).unwrap();
    store.apply(g.maintain().unwrap().unwrap()).unwrap();
    for i in 0..6 {
        let images = vec![vec![i as u8 + 1; 3], vec![i as u8 + 1; 5]];
        let vectors = [vector(i, 0), vector(i, 1)];
        store
            .apply(g.enroll(&format!("c{i}"), &vectors, None, images).unwrap())
            .unwrap();
    }
    let more = g.enroll("bulk", &bulk(60), None, images(60)).unwrap();
    store.apply(more).unwrap();
    let kinds: Vec<SegmentKind> = g.stats().segments.iter().map(|s| s.kind).collect();
    assert_eq!(kinds, [SegmentKind::Hnsw, SegmentKind::Growing]);
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        if entry.file_name() != ".lock" {
            std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
        }
    }
}

/// A mutation: from the seeded gallery, the change set it commits and the
/// directory it commits to (the seeded one, or a new one for an import).
type Mutation = fn(&mut Gallery) -> Result<(ChangeSet, bool)>;

/// Runs `mutate` on a copy of `seed` in `dir` with the commit stopped at step
/// `fault` (`None`: no fault). Returns the directory committed to (`dir`, or
/// `dir/new` for a mutation that makes a new gallery), the steps taken and
/// whether the commit reported success (a delete that fails after the commit
/// point leaves garbage, not an error).
fn run(
    seed: &Path,
    dir: &Path,
    mutate: Mutation,
    fault: Option<(u64, FaultKind)>,
) -> (PathBuf, u64, bool) {
    copy_dir(seed, dir);
    let mut g = {
        let store = FsStore::open(dir).unwrap();
        Gallery::open(&store, None, OpenMode::Strict).unwrap().0
    };
    g.set_auto_maintain(false);
    let (cs, into_new) = mutate(&mut g).unwrap();
    let target = if into_new {
        dir.join("new")
    } else {
        dir.to_path_buf()
    };
    let mut store = FsStore::create(&target).unwrap();
    store.set_faults(fault.map_or_else(Faults::default, |(k, kind)| Faults::at(k, kind)));
    let result = store.apply(cs);
    if !matches!(fault, Some((_, FaultKind::Fail))) {
        assert_eq!(
            result.is_err(),
            fault.is_some(),
            "{result:?} with {fault:?}"
        );
    }
    (target, store.faults().steps(), result.is_ok())
}

/// Stops `mutate`'s commit at each of its steps, failing it and crashing
/// there; returns how many steps it has.
fn every_step_leaves_before_or_after(name: &str, mutate: Mutation) -> u64 {
    let tmp = tempfile::tempdir().unwrap();
    let seed = tmp.path().join("seed");
    seeded(&seed);
    let (clean, steps, _) = run(&seed, &tmp.path().join("clean"), mutate, None);
    let before = if clean.ends_with("new") {
        None
    } else {
        reopen(&seed)
    };
    let after = reopen(&clean);
    assert!(after.is_some() && before != after, "{name} changed nothing");
    assert!(steps >= 3, "{name}: {steps} steps");
    for k in 0..steps {
        for kind in [FaultKind::Fail, FaultKind::Crash] {
            let (dir, _, ok) = run(
                &seed,
                &tmp.path().join(format!("{k}-{kind:?}")),
                mutate,
                Some((k, kind)),
            );
            let got = reopen(&dir);
            assert!(
                if ok {
                    got == after
                } else {
                    got == before || got == after
                },
                "{name}: {kind:?} at step {k} of {steps} left a mix: {got:#?}"
            );
            // Whatever the fault left behind, the next commit succeeds.
            let mut store = FsStore::open(&dir).unwrap();
            if got.is_some() {
                let (mut g, _) = Gallery::open(&store, None, OpenMode::Strict).unwrap();
                let cs = g.enroll("later", &[vector(9, 0)], None, vec![]).unwrap();
                store.apply(cs).unwrap();
            }
        }
    }
    steps
}

#[test]
fn every_write_step_of_every_mutation_leaves_the_old_or_the_new_gallery() {
    let mutations: [(&str, Mutation); 8] = [
        ("enroll", |g| {
            Ok((
                g.enroll("new", &[vector(7, 0)], None, vec![vec![9]])?,
                false,
            ))
        }),
        ("remove", |g| Ok((g.remove("c1")?, false))),
        ("rename", |g| Ok((g.rename("c2", "renamed")?, false))),
        ("merge", |g| {
            Ok((g.maintain()?.expect("a seal and a merge"), false))
        }),
        ("optimize", |g| {
            Ok((g.optimize()?.expect("several segments"), false))
        }),
        ("quantize", |g| Ok((g.quantize()?, false))),
        ("import", |g| {
            let (_, cs) = Gallery::import_bytes(&g.export_bytes()?, None)?;
            Ok((cs, true))
        }),
        ("re-embed", |g| {
            let config = GalleryConfig {
                fingerprint: "fp2".into(),
                ..config()
            };
            let (_, cs) = g.reembed(config, |label, images| {
                Ok(match label[1..].parse::<usize>() {
                    Ok(i) => (0..images.len()).map(|j| vector(i, j)).collect(),
                    Err(_) => bulk(images.len()),
                })
            })?;
            Ok((cs, true))
        }),
    ];
    for (name, mutate) in mutations {
        let steps = every_step_leaves_before_or_after(name, mutate);
        eprintln!("{name}: {steps} steps, each failed and crashed");
    }
}

#[test]
fn a_memory_store_fault_at_any_step_changes_nothing() {
    let mut store = MemoryStore::new();
    let (mut g, created) = Gallery::create(config()).unwrap();
    store.apply(created).unwrap();
    let cs = g.enroll("a", &[vector(0, 0)], None, vec![]).unwrap();
    let steps = (cs.puts.len() + cs.deletes.len()) as u64;
    for k in 0..steps {
        let mut copy = store.clone();
        copy.set_faults(Faults::at(k, FaultKind::Fail));
        let err = copy.apply(cs.clone()).unwrap_err();
        assert!(matches!(err, Error::QuotaExceeded(_)), "{err}");
        assert_eq!(copy.names(), store.names());
    }
    store.set_faults(Faults::default());
    store.apply(cs).unwrap();
    assert_eq!(store.faults().steps(), steps);
}
