use super::*;
use crate::index::test_data::random_unit;
use std::collections::HashMap;

struct Blobs(HashMap<String, Vec<u8>>);

impl BlobRead for Blobs {
    fn get(&self, name: &str) -> Result<Option<Vec<u8>>> {
        Ok(self.0.get(name).cloned())
    }
}

impl Blobs {
    fn new() -> Self {
        Blobs(HashMap::new())
    }
    fn apply(&mut self, cs: ChangeSet) {
        for (n, b) in cs.puts {
            self.0.insert(n, b);
        }
        for n in cs.deletes {
            self.0.remove(&n);
        }
    }
}

fn small_config() -> IndexConfig {
    IndexConfig {
        growing_capacity: 100,
        merge_factor: 2,
        ..Default::default()
    }
}

fn fill(index: &mut Index, blobs: &mut Blobs, vectors: &[Vec<f32>], first_id: u64, batch: usize) {
    for (b, chunk) in vectors.chunks(batch).enumerate() {
        let ids: Vec<u64> = (0..chunk.len())
            .map(|i| first_id + (b * batch + i) as u64)
            .collect();
        blobs.apply(index.add(&ids, chunk).unwrap());
        if let Some(cs) = index.maintain().unwrap() {
            blobs.apply(cs);
        }
    }
}

fn ids(hits: &[Hit]) -> Vec<u64> {
    hits.iter().map(|h| h.id).collect()
}

#[test]
fn tiers() {
    let c = IndexConfig::default();
    assert_eq!(SegmentKind::Hnsw.to_string(), "hnsw");
    assert_eq!(
        serde_json::to_string(&SegmentKind::Growing).unwrap(),
        "\"growing\""
    );
    assert_eq!(c.tier(0), 0);
    assert_eq!(c.tier(1024), 0);
    assert_eq!(c.tier(4 * 1024 - 1), 0);
    assert_eq!(c.tier(4 * 1024), 1);
    assert_eq!(c.tier(16 * 1024), 2);
    assert_eq!(c.tier(50_000), 2);
    assert_eq!(c.tier(100_000), 3);
    assert_eq!(c.tier(65_536), 3);
}

#[test]
fn contains_all_agrees_with_contains_across_segments() {
    let mut index = Index::new(8, "fp", small_config()).unwrap();
    let mut blobs = Blobs::new();
    // Ids with gaps, spread over several sealed segments and the growing one.
    let vectors = random_unit(450, 8, 21);
    fill(&mut index, &mut blobs, &vectors, 1, 40);
    assert!(index.sealed.len() >= 2 && !index.growing_ids.is_empty());
    index.remove(&[7, 300, 449]);
    let all: Vec<u64> = (1..=450).collect();
    let live: Vec<u64> = all
        .iter()
        .copied()
        .filter(|&id| index.contains(id))
        .collect();
    assert_eq!(live.len(), 447);
    assert!(index.contains_all(live.iter().copied()));
    assert!(index.contains_all([]));
    // Sparse and dense runs, each with one id that is not live.
    for missing in [0, 7, 300, 449, 451, 10_000] {
        for stride in [1, 3, 97] {
            let mut ids: Vec<u64> = live.iter().copied().step_by(stride).collect();
            ids.push(missing);
            ids.sort_unstable();
            assert!(
                !index.contains_all(ids.iter().copied()),
                "{missing} every {stride}"
            );
            ids.retain(|&id| id != missing);
            assert!(
                index.contains_all(ids.iter().copied()),
                "without {missing} every {stride}"
            );
        }
    }
}

#[test]
fn config_validation() {
    assert!(IndexConfig::default().validate().is_ok());
    for bad in [
        IndexConfig {
            growing_capacity: 0,
            ..Default::default()
        },
        IndexConfig {
            merge_factor: 1,
            ..Default::default()
        },
        IndexConfig {
            ef_search: 0,
            ..Default::default()
        },
    ] {
        assert!(matches!(bad.validate(), Err(Error::BadInput(_))));
    }
    assert!(Index::new(0, "fp", IndexConfig::default()).is_err());
}

#[test]
fn bad_vectors_are_rejected_and_change_nothing() {
    let mut index = Index::new(4, "fp", IndexConfig::default()).unwrap();
    let good = vec![1.0, 0.0, 0.0, 0.0];
    for (ids, vs) in [
        (vec![1], vec![vec![1.0, 0.0, 0.0]]),
        (vec![1], vec![vec![f32::NAN, 0.0, 0.0, 0.0]]),
        (vec![1], vec![vec![f32::INFINITY, 0.0, 0.0, 0.0]]),
        (vec![1], vec![vec![0.0; 4]]),
        (
            vec![1, 2],
            vec![good.clone(), vec![0.0, f32::NAN, 0.0, 0.0]],
        ),
        (vec![1, 1], vec![good.clone(), good.clone()]),
        (vec![1], vec![]),
        (vec![], vec![]),
    ] {
        assert!(matches!(index.add(&ids, &vs), Err(Error::BadInput(_))));
        assert_eq!(index.stored(), 0);
    }
    assert_eq!(index.max_id(), None);
    index.add(&[1], std::slice::from_ref(&good)).unwrap();
    assert_eq!(index.max_id(), Some(1));
    let err = index.add(&[1], std::slice::from_ref(&good)).unwrap_err();
    assert!(err.to_string().contains("already stored"));
    assert_eq!(index.len(), 1);
}

#[test]
fn vectors_are_normalised_and_queries_checked() {
    let mut index = Index::new(2, "fp", IndexConfig::default()).unwrap();
    index.add(&[7], &[vec![3.0, 4.0]]).unwrap();
    let hits = index.search(&[0.6, 0.8], 1).unwrap();
    assert_eq!(hits[0].id, 7);
    assert!((hits[0].score - 1.0).abs() < 1e-6);
    // A non-unit query is normalised too: the score is the cosine.
    let hits = index.search(&[6.0, 8.0], 1).unwrap();
    assert!((hits[0].score - 1.0).abs() < 1e-6);
    let hits = index.search(&[1.0, 0.0], 1).unwrap();
    assert!((hits[0].score - 0.6).abs() < 1e-6);
    for q in [vec![1.0], vec![f32::NAN, 1.0], vec![0.0, 0.0]] {
        assert!(matches!(index.search(&q, 1), Err(Error::BadInput(_))));
    }
    assert!(index.search(&[1.0, 0.0], 0).unwrap().is_empty());
}

#[test]
fn growing_search_is_exact_and_ordered() {
    let mut index = Index::new(8, "fp", IndexConfig::default()).unwrap();
    let vs = random_unit(50, 8, 1);
    let ids: Vec<u64> = (100..150).collect();
    index.add(&ids, &vs).unwrap();
    let q = &random_unit(1, 8, 2)[0];
    let got = index.search(q, 10).unwrap();
    let mut want: Vec<(f32, u64)> = vs
        .iter()
        .zip(&ids)
        .map(|(v, &id)| (distance::dot(q, v), id))
        .collect();
    want.sort_by(|a, b| b.0.total_cmp(&a.0));
    assert_eq!(
        ids_of(&got),
        want[..10].iter().map(|w| w.1).collect::<Vec<_>>()
    );
    assert!(got.windows(2).all(|w| w[0].score >= w[1].score));
    assert_eq!(got, index.search_exact(q, 10).unwrap());
}

fn ids_of(h: &[Hit]) -> Vec<u64> {
    ids(h)
}

#[test]
fn sealing_and_tiered_merging() {
    let cfg = IndexConfig {
        growing_capacity: 20,
        merge_factor: 2,
        ..Default::default()
    };
    let mut index = Index::new(4, "fp", cfg).unwrap();
    let mut blobs = Blobs::new();
    let vs = random_unit(300, 4, 3);
    fill(&mut index, &mut blobs, &vs, 0, 5);
    assert_eq!(index.len(), 300);
    assert!(!index.needs_maintenance());
    // capacity 20, factor 2: 15 seals of 20 merge like a binary counter
    // into segments of 160 + 80 + 40 + 20.
    let mut sizes: Vec<usize> = index
        .segments()
        .iter()
        .filter(|s| s.kind != SegmentKind::Growing)
        .map(|s| s.vectors)
        .collect();
    sizes.sort_unstable();
    assert_eq!(sizes, vec![20, 40, 80, 160]);
    let kinds: Vec<SegmentKind> = index.segments().iter().map(|s| s.kind).collect();
    assert_eq!(kinds.iter().filter(|k| **k == SegmentKind::Hnsw).count(), 2);
    assert!(
        index
            .segments()
            .iter()
            .all(|s| s.kind != SegmentKind::Growing)
    );
    // Exactly the manifest's blobs are stored: chunks and merged-away
    // segments were deleted by the change sets.
    let m = index.manifest();
    let mut listed: Vec<&String> = m
        .segments
        .iter()
        .chain(&m.growing)
        .map(|e| &e.name)
        .collect();
    listed.sort();
    let mut stored: Vec<&String> = blobs.0.keys().collect();
    stored.sort();
    assert_eq!(listed, stored);
    // Every vector is still found exactly.
    for (i, v) in vs.iter().enumerate().step_by(7) {
        assert_eq!(index.search_exact(v, 1).unwrap()[0].id, i as u64);
        assert_eq!(index.search(v, 1).unwrap()[0].id, i as u64);
    }
}

#[test]
fn search_recall_against_exact() {
    let dim = 16;
    let cfg = IndexConfig {
        growing_capacity: 300,
        ..Default::default()
    };
    let mut index = Index::new(dim, "fp", cfg).unwrap();
    let mut blobs = Blobs::new();
    let vs = random_unit(650, dim, 4);
    fill(&mut index, &mut blobs, &vs, 0, 50);
    // Two graphs of 300 and a growing segment of 50.
    let kinds: Vec<SegmentKind> = index.segments().iter().map(|s| s.kind).collect();
    assert_eq!(
        kinds,
        [SegmentKind::Hnsw, SegmentKind::Hnsw, SegmentKind::Growing]
    );
    let queries = random_unit(50, dim, 5);
    let mut found = 0;
    for q in &queries {
        let approx = index.search(q, 10).unwrap();
        let exact = index.search_exact(q, 10).unwrap();
        assert_eq!(approx.len(), 10);
        let e: HashSet<u64> = ids(&exact).into_iter().collect();
        found += approx.iter().filter(|h| e.contains(&h.id)).count();
    }
    let recall = found as f64 / 500.0;
    assert!(recall > 0.9, "recall@10 = {recall}");
    // Each vector finds itself through the graphs.
    for (i, v) in vs.iter().enumerate().step_by(31) {
        assert_eq!(index.search(v, 1).unwrap()[0].id, i as u64);
    }
}

#[test]
fn set_ef_search_trades_recall_for_every_neighbor_selection() {
    let dim = 16;
    let vs = random_unit(600, dim, 11);
    let ids: Vec<u64> = (0..600).collect();
    let qs = random_unit(40, dim, 12);
    for neighbors in [
        NeighborSelection::DiverseFill,
        NeighborSelection::Diverse,
        NeighborSelection::Nearest,
    ] {
        let cfg = IndexConfig {
            growing_capacity: 600,
            ef_search: 10,
            neighbors,
            ..Default::default()
        };
        let mut index = Index::new(dim, "fp", cfg).unwrap();
        index.add(&ids, &vs).unwrap();
        index.maintain().unwrap().unwrap();
        assert_eq!(index.segments()[0].kind, SegmentKind::Hnsw);
        let recall = |index: &Index| {
            let approx: Vec<Vec<u64>> = qs
                .iter()
                .map(|q| ids_of(&index.search(q, 10).unwrap()))
                .collect();
            let exact: Vec<Vec<u64>> = qs
                .iter()
                .map(|q| ids_of(&index.search_exact(q, 10).unwrap()))
                .collect();
            crate::metrics::mean_recall_at_k(&approx, &exact, 10)
        };
        let low = recall(&index);
        index.set_ef_search(300).unwrap();
        assert_eq!(index.config().ef_search, 300);
        let high = recall(&index);
        assert!(
            high >= low,
            "{neighbors:?}: ef 300 recall {high} < ef 10 {low}"
        );
        assert!(high > 0.95, "{neighbors:?}: recall {high} at ef 300 of 600");
        // The segment is stored with its new ef.
        let (name, bytes) = index.blobs().unwrap().remove(0);
        let (_, _, seg) = Sealed::decode(&name, SegmentKind::Hnsw, &bytes).unwrap();
        assert!(matches!(seg, Sealed::Hnsw(g) if g.ef_search() == 300));
    }
    let mut index = Index::new(dim, "fp", IndexConfig::default()).unwrap();
    assert!(matches!(index.set_ef_search(0), Err(Error::BadInput(_))));
}

#[test]
fn neighbor_selection_defaults_and_parses() {
    let old: IndexConfig = serde_json::from_str(r#"{"ef_search": 32}"#).unwrap();
    assert_eq!(old.neighbors, NeighborSelection::DiverseFill);
    let json = serde_json::to_string(&IndexConfig {
        neighbors: NeighborSelection::Diverse,
        ..Default::default()
    })
    .unwrap();
    assert!(json.contains(r#""neighbors":"diverse""#), "{json}");
    assert_eq!(
        "nearest".parse::<NeighborSelection>().unwrap(),
        NeighborSelection::Nearest
    );
    assert!(matches!(
        "best".parse::<NeighborSelection>(),
        Err(Error::BadInput(_))
    ));
}

#[test]
fn k_above_ef_search_still_returns_k() {
    // The graph is then searched with ef = k.
    let dim = 8;
    let cfg = IndexConfig {
        growing_capacity: 200,
        ef_search: 16,
        ..Default::default()
    };
    let mut index = Index::new(dim, "fp", cfg).unwrap();
    let vs = random_unit(200, dim, 6);
    let ids: Vec<u64> = (0..200).collect();
    index.add(&ids, &vs).unwrap();
    index.maintain().unwrap().unwrap();
    assert_eq!(index.segments()[0].kind, SegmentKind::Hnsw);
    let got = index.search(&vs[0], 50).unwrap();
    assert_eq!(got.len(), 50);
    assert_eq!(got[0].id, 0);
    let exact = index.search_exact(&vs[0], 50).unwrap();
    let recall = crate::metrics::mean_recall_at_k(&[ids_of(&got)], &[ids_of(&exact)], 50);
    assert!(recall >= 0.9, "recall@50 {recall}");
    // A per-query ef: a larger one is at least as good, and ef < 1 is refused.
    let q = random_unit(1, dim, 7).remove(0);
    let exact = ids_of(&index.search_exact(&q, 10).unwrap());
    let r = |ef| {
        let hits = index.search_ef(&q, 10, ef).unwrap();
        assert_eq!(hits.len(), 10);
        crate::metrics::mean_recall_at_k(&[ids_of(&hits)], std::slice::from_ref(&exact), 10)
    };
    assert_eq!(r(200), 1.0, "ef = every point is exact");
    assert!(matches!(
        index.search_ef(&q, 10, 0),
        Err(Error::BadInput(_))
    ));
}

#[test]
fn tombstones_hide_and_rebuilds_drop_them() {
    let dim = 8;
    let cfg = IndexConfig {
        growing_capacity: 100,
        merge_factor: 4,
        ..Default::default()
    };
    let mut index = Index::new(dim, "fp", cfg).unwrap();
    let mut blobs = Blobs::new();
    let vs = random_unit(150, dim, 7);
    fill(&mut index, &mut blobs, &vs, 0, 150);
    // 150 added at once: sealed into one segment of 150.
    assert_eq!(index.segments().len(), 1);
    let extra = random_unit(10, dim, 8);
    blobs.apply(
        index
            .add(&(1000..1010).collect::<Vec<_>>(), &extra)
            .unwrap(),
    );
    assert_eq!(index.remove(&[3, 1005, 99_999]), 2);
    assert_eq!(index.remove(&[3]), 0, "already deleted");
    assert_eq!(index.len(), 158);
    assert_eq!(index.deleted(), 2);
    assert!(!index.contains(3) && !index.contains(1005) && index.contains(4));
    for exact in [false, true] {
        let hits = index.search_impl(&vs[3], 5, None, exact).unwrap();
        assert!(hits.iter().all(|h| h.id != 3));
        let hits = index.search_impl(&extra[5], 5, None, exact).unwrap();
        assert!(hits.iter().all(|h| h.id != 1005));
    }
    assert_eq!(index.manifest().tombstones, vec![3, 1005]);
    // Sealing the growing segment drops 1005's tombstone; 3 stays.
    let cs = index.seal().unwrap().unwrap();
    blobs.apply(cs);
    assert_eq!(index.manifest().tombstones, vec![3]);
    assert_eq!(index.stored(), 159);
    assert_eq!(index.max_id(), Some(1009));
    // Deleting most of the big segment triggers its compaction.
    let many: Vec<u64> = (0..100).collect();
    index.remove(&many);
    assert!(index.needs_maintenance());
    blobs.apply(index.maintain().unwrap().unwrap());
    assert_eq!(index.deleted(), 0);
    assert_eq!(index.len(), 59);
    assert_eq!(index.stored(), 59);
    assert!(index.ids().iter().all(|&id| id >= 100));
}

#[test]
fn growing_chunks_merge_by_tiers_but_not_under_a_seal_job() {
    let dim = 4;
    let cfg = IndexConfig {
        growing_capacity: 10_000,
        merge_factor: 4,
        ..Default::default()
    };
    let mut index = Index::new(dim, "fp", cfg).unwrap();
    let mut blobs = Blobs::new();
    let vs = random_unit(300, dim, 5);
    let mut written = 0usize;
    for (i, v) in vs.iter().enumerate() {
        let cs = index.add(&[i as u64], std::slice::from_ref(v)).unwrap();
        written += cs.puts.iter().map(|(_, b)| b.len()).sum::<usize>();
        blobs.apply(cs);
        // Exactly the listed chunks are stored, and they hold every vector.
        let m = index.manifest();
        let mut names: Vec<_> = m.growing.iter().map(|c| c.name.clone()).collect();
        let mut stored: Vec<_> = blobs.0.keys().cloned().collect();
        names.sort();
        stored.sort();
        assert_eq!(names, stored);
        assert_eq!(
            m.growing.iter().map(|c| c.vectors).sum::<u64>(),
            i as u64 + 1
        );
    }
    // 300 = 4³·4 + … in base 4: 1,0,2,3,0 → 1 + 2 + 3 chunks, at most 3 per tier.
    let sizes: Vec<u64> = index.manifest().growing.iter().map(|c| c.vectors).collect();
    assert_eq!(sizes, vec![256, 16, 16, 4, 4, 4]);
    // Each vector is rewritten once per tier it climbs, not once per insert.
    let one = blobs.0.values().map(|b| b.len()).sum::<usize>() / 300;
    assert!(written < one * 300 * 6, "wrote {written} bytes");
    let (reloaded, damage) = Index::load(dim, "fp", &index.manifest(), &blobs, false).unwrap();
    assert!(damage.is_empty());
    assert_eq!(reloaded.ids(), index.ids());

    // A seal job holds every chunk there is; new ones merge among themselves.
    let job = index.start_seal().unwrap().unwrap();
    let held = index.manifest().growing.len();
    let extra = random_unit(20, dim, 6);
    for (i, v) in extra.iter().enumerate() {
        blobs.apply(
            index
                .add(&[1000 + i as u64], std::slice::from_ref(v))
                .unwrap(),
        );
    }
    let m = index.manifest();
    assert_eq!(
        &m.growing[..held]
            .iter()
            .map(|c| c.vectors)
            .collect::<Vec<_>>(),
        &sizes
    );
    assert_eq!(
        m.growing[held..]
            .iter()
            .map(|c| c.vectors)
            .collect::<Vec<_>>(),
        vec![16, 4]
    );
    blobs.apply(index.finish_maintenance(job.build().unwrap()).unwrap());
    let m = index.manifest();
    assert_eq!(
        m.growing.iter().map(|c| c.vectors).collect::<Vec<_>>(),
        vec![16, 4]
    );
    assert_eq!(index.len(), 320);
    for (i, v) in extra.iter().enumerate() {
        assert_eq!(index.search(v, 1).unwrap()[0].id, 1000 + i as u64);
    }
}

#[test]
fn maintenance_built_off_the_index_keeps_what_changed_meanwhile() {
    let dim = 8;
    let cfg = IndexConfig {
        growing_capacity: 50,
        merge_factor: 4,
        ..Default::default()
    };
    let mut index = Index::new(dim, "fp", cfg).unwrap();
    let mut blobs = Blobs::new();
    let vs = random_unit(60, dim, 21);
    blobs.apply(index.add(&(0..60).collect::<Vec<_>>(), &vs).unwrap());
    index.remove(&[7]);
    let job = index.start_maintenance().expect("a full growing segment");
    assert_eq!(job.len(), 59, "the tombstoned vector is left out");
    assert!(index.start_maintenance().is_none(), "one job at a time");
    assert!(index.seal().is_err());
    // While the job is out: inserts, deletes (of a vector being sealed and
    // of a new one) and searches all go on.
    let extra = random_unit(5, dim, 22);
    blobs.apply(index.add(&(100..105).collect::<Vec<_>>(), &extra).unwrap());
    index.remove(&[8, 102]);
    assert_eq!(index.search(&vs[3], 1).unwrap()[0].id, 3);
    let built = std::thread::spawn(move || job.build())
        .join()
        .unwrap()
        .unwrap();
    let cs = index.finish_maintenance(built).unwrap();
    assert_eq!(cs.puts.len(), 1, "the new segment");
    assert_eq!(cs.deletes.len(), 1, "the sealed chunk");
    blobs.apply(cs);
    let segs = index.segments();
    assert_eq!(
        segs.iter().map(|s| (s.kind, s.vectors)).collect::<Vec<_>>(),
        vec![(SegmentKind::Flat, 59), (SegmentKind::Growing, 5)]
    );
    assert_eq!(
        index.manifest().tombstones,
        vec![8, 102],
        "7's went with the build"
    );
    assert_eq!((index.len(), index.deleted()), (62, 2));
    for (i, v) in vs.iter().enumerate().filter(|&(i, _)| i != 7 && i != 8) {
        assert_eq!(index.search(v, 1).unwrap()[0].id, i as u64);
    }
    assert!(index.search(&vs[8], 3).unwrap().iter().all(|h| h.id != 8));
    assert_eq!(index.search(&extra[4], 1).unwrap()[0].id, 104);
    let (back, damage) = Index::load(dim, "fp", &index.manifest(), &blobs, false).unwrap();
    assert!(damage.is_empty());
    assert_eq!(back.segments(), index.segments());
    assert_eq!(back.deleted(), 2);
    // A result from another job is refused.
    let mut other = Index::new(
        dim,
        "fp",
        IndexConfig {
            growing_capacity: 1,
            ..Default::default()
        },
    )
    .unwrap();
    other.add(&[1], &vs[..1]).unwrap();
    let foreign = other.start_maintenance().unwrap().build().unwrap();
    assert!(matches!(
        index.finish_maintenance(foreign),
        Err(Error::BadInput(_))
    ));
}

#[test]
fn persisted_state_reloads_identically() {
    let dim = 8;
    let mut index = Index::new(dim, "fp", small_config()).unwrap();
    let mut blobs = Blobs::new();
    let vs = random_unit(250, dim, 9);
    fill(&mut index, &mut blobs, &vs, 0, 30);
    index.remove(&[5, 240]);
    let m = index.manifest();
    let (back, damage) = Index::load(dim, "fp", &m, &blobs, false).unwrap();
    assert!(damage.is_empty());
    assert_eq!(back.manifest(), m);
    assert_eq!(back.segments(), index.segments());
    for q in random_unit(5, dim, 10) {
        assert_eq!(back.search(&q, 10).unwrap(), index.search(&q, 10).unwrap());
    }
    // Export re-encodes byte-identical blobs.
    for (name, bytes) in index.blobs().unwrap() {
        assert_eq!(blobs.0.get(&name), Some(&bytes), "{name}");
    }
}

/// Recall@10 of `index.search_ef(q, 10, 128)` against each query's exact top 10.
fn recall_at_10(index: &Index, queries: &[Vec<f32>], truth: &[Vec<u64>]) -> f64 {
    let hit: usize = queries
        .iter()
        .zip(truth)
        .map(|(q, t)| {
            let found = index.search_ef(q, 10, 128).unwrap();
            found.iter().filter(|h| t.contains(&h.id)).count()
        })
        .sum();
    hit as f64 / (10 * queries.len()) as f64
}

#[test]
fn quantizing_shrinks_memory_keeps_recall_and_persists() {
    let dim = 32;
    let mut index = Index::new(dim, "fp", small_config()).unwrap();
    let mut blobs = Blobs::new();
    let vs = random_unit(650, dim, 21);
    fill(&mut index, &mut blobs, &vs, 0, 50);
    index.remove(&[3, 400]);
    let hnsw = |index: &Index, kind| index.segments().iter().filter(|s| s.kind == kind).count();
    let graphs = hnsw(&index, SegmentKind::Hnsw);
    assert!(graphs >= 2, "{:?}", index.segments());
    let queries = random_unit(40, dim, 22);
    let truth: Vec<Vec<u64>> = queries
        .iter()
        .map(|q| ids(&index.search_exact(q, 10).unwrap()))
        .collect();
    let recall = |index: &Index| recall_at_10(index, &queries, &truth);
    let (memory, stored, float_recall) = (index.memory_bytes(), index.bytes(), recall(&index));

    let before: Vec<String> = index
        .manifest()
        .segments
        .iter()
        .map(|s| s.name.clone())
        .collect();
    let cs = index.quantize().unwrap();
    // Each graph gets a new blob and the old one goes; flat segments stay.
    assert_eq!(cs.puts.len(), graphs);
    assert_eq!(cs.deletes.len(), graphs);
    assert!(cs.deletes.iter().all(|d| before.contains(d)));
    assert!(cs.puts.iter().all(|(n, _)| !before.contains(n)));
    blobs.apply(cs);
    assert_eq!(hnsw(&index, SegmentKind::HnswInt8), graphs);
    assert_eq!(hnsw(&index, SegmentKind::Hnsw), 0);
    assert!(
        index.memory_bytes() < memory,
        "{} vs {memory}",
        index.memory_bytes()
    );
    assert!(index.bytes() < stored);
    let int8_recall = recall(&index);
    assert!(
        int8_recall >= float_recall - 0.05,
        "{int8_recall} vs {float_recall}"
    );
    // Deleted ids stay deleted; a stored vector still finds itself.
    let hits = index.search(&vs[3], 5).unwrap();
    assert!(hits.iter().all(|h| h.id != 3));
    let hits = index.search(&vs[7], 1).unwrap();
    assert_eq!(hits[0].id, 7);
    assert!((hits[0].score - 1.0).abs() < 0.01, "{}", hits[0].score);
    // Quantising again changes nothing.
    assert!(index.quantize().unwrap().is_empty());

    // Later seals are quantised too, and everything reloads as it was.
    fill(&mut index, &mut blobs, &random_unit(250, dim, 23), 1000, 50);
    assert_eq!(index.config().quantization, Quantization::Int8);
    assert_eq!(hnsw(&index, SegmentKind::Hnsw), 0, "{:?}", index.segments());
    let m = index.manifest();
    let json = serde_json::to_string(&m).unwrap();
    assert!(
        json.contains("\"hnsw-int8\"") && json.contains("\"int8\""),
        "{json}"
    );
    let (back, damage) = Index::load(dim, "fp", &m, &blobs, false).unwrap();
    assert!(damage.is_empty());
    assert_eq!(back.segments(), index.segments());
    assert_eq!(back.memory_bytes(), index.memory_bytes());
    for q in &queries {
        assert_eq!(back.search(q, 10).unwrap(), index.search(q, 10).unwrap());
    }
    for (name, bytes) in index.blobs().unwrap() {
        assert_eq!(blobs.0.get(&name), Some(&bytes), "{name}");
    }
}

#[test]
fn quantization_settings_parse_and_default_to_float() {
    // A manifest written before quantisation existed reads as float.
    let old: IndexConfig = serde_json::from_str(r#"{"growing_capacity":100}"#).unwrap();
    assert_eq!(old.quantization, Quantization::None);
    assert_eq!("int8".parse::<Quantization>().unwrap(), Quantization::Int8);
    assert!("int4".parse::<Quantization>().is_err());
}

#[test]
fn optimize_rebuilds_everything_into_one_graph() {
    let dim = 16;
    // Seals that do not merge: several sealed segments and the growing one.
    let config = IndexConfig {
        merge_factor: 8,
        ..small_config()
    };
    let mut index = Index::new(dim, "fp", config.clone()).unwrap();
    let mut blobs = Blobs::new();
    let vs = random_unit(530, dim, 31);
    fill(&mut index, &mut blobs, &vs, 0, 40);
    index.remove(&[2, 300]);
    let m = index.manifest();
    assert!(m.segments.len() >= 2 && !m.growing.is_empty(), "{m:?}");
    let queries = random_unit(30, dim, 32);
    let exact: Vec<Vec<u64>> = queries
        .iter()
        .map(|q| ids(&index.search_exact(q, 10).unwrap()))
        .collect();

    let job = index.start_optimize().unwrap().expect("several parts");
    // Enrolled while the graph is built: stays in the growing segment.
    blobs.apply(index.add(&[9000], &random_unit(1, dim, 33)).unwrap());
    index.remove(&[7]);
    assert!(index.start_maintenance().is_none(), "a job is out");
    assert!(index.start_optimize().is_err());
    let cs = index.finish_maintenance(job.build().unwrap()).unwrap();
    // Every old blob goes, one graph comes.
    let old: HashSet<String> = m
        .segments
        .iter()
        .chain(&m.growing)
        .map(|s| s.name.clone())
        .collect();
    assert_eq!(cs.deletes.iter().cloned().collect::<HashSet<_>>(), old);
    assert_eq!(cs.puts.len(), 1);
    blobs.apply(cs);
    let segs = index.segments();
    assert_eq!(segs.len(), 2, "{segs:?}"); // the graph and the new chunk
    assert_eq!(
        segs.iter().filter(|s| s.kind == SegmentKind::Hnsw).count(),
        1
    );
    // Vectors deleted before the job are gone from it; the one deleted
    // during it stays tombstoned; the new one is found.
    assert_eq!(index.len(), 530 - 3 + 1);
    assert!(!index.contains(2) && !index.contains(7) && index.contains(9000));
    assert_eq!(index.deleted(), 1);
    let hit: usize = queries
        .iter()
        .zip(&exact)
        .map(|(q, t)| {
            let found = index.search_ef(q, 10, 128).unwrap();
            assert!(found.iter().all(|h| h.id != 7));
            found.iter().filter(|h| t.contains(&h.id)).count()
        })
        .sum();
    assert!(hit as f64 >= 0.9 * (10 * queries.len()) as f64, "{hit}");
    // It reloads as it is.
    let (back, damage) = Index::load(dim, "fp", &index.manifest(), &blobs, false).unwrap();
    assert!(damage.is_empty());
    assert_eq!(back.segments(), index.segments());

    // Optimising again folds in the chunk and the deleted vector; then
    // there is nothing left to do.
    blobs.apply(index.optimize().unwrap().expect("a chunk and a deletion"));
    assert_eq!(index.segments().len(), 1);
    assert_eq!(index.deleted(), 0);
    assert!(index.optimize().unwrap().is_none());
    assert!(
        Index::new(dim, "fp", config)
            .unwrap()
            .optimize()
            .unwrap()
            .is_none()
    );
}

#[test]
fn quantize_waits_for_a_running_job() {
    let dim = 8;
    let mut index = Index::new(dim, "fp", small_config()).unwrap();
    let ids: Vec<u64> = (0..150).collect();
    index.add(&ids, &random_unit(150, dim, 5)).unwrap();
    let job = index.start_maintenance().expect("a seal is due");
    let err = index.quantize().unwrap_err();
    assert!(
        err.is_user_error() && err.to_string().contains("being built"),
        "{err}"
    );
    index.finish_maintenance(job.build().unwrap()).unwrap();
    assert!(index.quantize().is_ok());
}

#[test]
fn damaged_blobs_fail_strict_and_are_skipped_otherwise() {
    let dim = 8;
    let mut index = Index::new(dim, "fp", small_config()).unwrap();
    let mut blobs = Blobs::new();
    let vs = random_unit(230, dim, 11);
    fill(&mut index, &mut blobs, &vs, 0, 10);
    let m = index.manifest();
    assert!(!m.segments.is_empty() && !m.growing.is_empty());
    let seg = m.segments[0].name.clone();
    let chunk = m.growing[0].name.clone();
    // Flip a byte in the segment, drop the chunk.
    let b = blobs.0.get_mut(&seg).unwrap();
    let mid = b.len() / 2;
    b[mid] ^= 0x40;
    blobs.0.remove(&chunk);

    let err = Index::load(dim, "fp", &m, &blobs, false).unwrap_err();
    match err {
        Error::Corrupt { name, .. } => assert_eq!(name, seg),
        other => panic!("{other:?}"),
    }
    let (back, damage) = Index::load(dim, "fp", &m, &blobs, true).unwrap();
    let names: Vec<&str> = damage.iter().map(|d| d.blob.as_str()).collect();
    assert_eq!(names, vec![seg.as_str(), chunk.as_str()]);
    assert!(damage[0].reason.contains("checksum"));
    assert!(damage[1].reason.contains("missing"));
    let lost = m.segments[0].vectors + m.growing[0].vectors;
    assert_eq!(back.len() as u64, 230 - lost);
    let m2 = back.manifest();
    assert!(m2.segments.iter().all(|e| e.name != seg));
    assert!(m2.growing.iter().all(|e| e.name != chunk));
    // The survivors are searchable.
    let survivor = *back.ids().last().unwrap();
    assert_eq!(
        back.search(&vs[survivor as usize], 1).unwrap()[0].id,
        survivor
    );
}

#[test]
fn another_models_segment_is_refused() {
    let dim = 4;
    let mut index = Index::new(dim, "model-a", IndexConfig::default()).unwrap();
    let mut blobs = Blobs::new();
    blobs.apply(index.add(&[1], &random_unit(1, dim, 1)).unwrap());
    let m = index.manifest();
    match Index::load(dim, "model-b", &m, &blobs, false).unwrap_err() {
        Error::ModelMismatch {
            what,
            expected,
            found,
        } => {
            assert!(what.contains("index") && what.contains("grow-1"));
            assert_eq!((expected.as_str(), found.as_str()), ("model-b", "model-a"));
        }
        other => panic!("{other:?}"),
    }
    let err = Index::load(8, "model-a", &m, &blobs, false).unwrap_err();
    assert!(err.to_string().contains("dimension 4"), "{err}");
    // Manifest size mismatch.
    let mut m2 = m.clone();
    m2.growing[0].bytes += 1;
    let err = Index::load(dim, "model-a", &m2, &blobs, false).unwrap_err();
    assert!(err.to_string().contains("the manifest says"), "{err}");
}

#[test]
fn duplicate_ids_across_blobs_are_corrupt() {
    let dim = 4;
    let mut index = Index::new(dim, "fp", IndexConfig::default()).unwrap();
    let mut blobs = Blobs::new();
    blobs.apply(index.add(&[1, 2], &random_unit(2, dim, 1)).unwrap());
    let mut m = index.manifest();
    let mut dup = m.growing[0].clone();
    dup.name = "grow-9".into();
    blobs.0.insert("grow-9".into(), blobs.0["grow-1"].clone());
    m.growing.push(dup);
    let err = Index::load(dim, "fp", &m, &blobs, false).unwrap_err();
    assert!(err.to_string().contains("grow-9") && err.to_string().contains("twice"));
}

#[test]
fn blob_names_are_never_reused() {
    let dim = 4;
    let cfg = IndexConfig {
        growing_capacity: 30,
        merge_factor: 2,
        ..Default::default()
    };
    let mut index = Index::new(dim, "fp", cfg).unwrap();
    let mut blobs = Blobs::new();
    let mut names = HashSet::new();
    let vs = random_unit(300, dim, 12);
    for (b, chunk) in vs.chunks(7).enumerate() {
        let ids: Vec<u64> = (0..chunk.len()).map(|i| (b * 7 + i) as u64).collect();
        let mut cs = index.add(&ids, chunk).unwrap();
        if let Some(more) = index.maintain().unwrap() {
            cs.extend(more);
        }
        for (n, _) in &cs.puts {
            assert!(names.insert(n.clone()), "{n} reused");
        }
        blobs.apply(cs);
    }
    // A reload continues the sequence.
    let (mut back, _) = Index::load(dim, "fp", &index.manifest(), &blobs, false).unwrap();
    let cs = back.add(&[10_000], &random_unit(1, dim, 13)).unwrap();
    assert!(!names.contains(&cs.puts[0].0));
}
