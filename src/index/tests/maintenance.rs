use super::*;

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
    for search in [Index::search, Index::search_exact] {
        let hits = search(&index, &vs[3], 5).unwrap();
        assert!(hits.iter().all(|h| h.id != 3));
        let hits = search(&index, &extra[5], 5).unwrap();
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
fn int8_residual_scores_as_float_drops_to_int8_and_persists() {
    let dim = 32;
    let mut index = Index::new(dim, "fp", small_config()).unwrap();
    let mut blobs = Blobs::new();
    let vs = random_unit(650, dim, 31);
    fill(&mut index, &mut blobs, &vs, 0, 50);
    let graphs = |index: &Index| {
        let s = index.segments();
        s.iter().filter(|s| s.kind == SegmentKind::HnswInt8).count()
    };
    let queries = random_unit(30, dim, 32);
    let float: Vec<Vec<Hit>> = queries
        .iter()
        .map(|q| index.search_ef(q, 10, 128).unwrap())
        .collect();
    let memory = index.memory_bytes();

    blobs.apply(index.quantize_to(Quantization::Int8Residual).unwrap());
    assert_eq!(index.config().quantization, Quantization::Int8Residual);
    assert!(graphs(&index) >= 2, "{:?}", index.segments());
    let residual_memory = index.memory_bytes();
    assert!(residual_memory < memory, "{residual_memory} vs {memory}");
    // Scores within a 254th of int8's rounding: the float ones, nearly.
    for (q, want) in queries.iter().zip(&float) {
        let got = index.search_ef(q, 10, 128).unwrap();
        let common = got
            .iter()
            .filter(|h| want.iter().any(|w| w.id == h.id))
            .count();
        assert!(common >= 9, "{got:?} vs {want:?}");
        for h in &got {
            let exact = vs[h.id as usize]
                .iter()
                .zip(q)
                .map(|(a, b)| a * b)
                .sum::<f32>();
            assert!((h.score - exact).abs() < 2e-4, "{} vs {exact}", h.score);
        }
    }
    // It reloads as it was.
    let (back, damage) = Index::load(dim, "fp", &index.manifest(), &blobs, false).unwrap();
    assert!(damage.is_empty());
    assert_eq!(back.config().quantization, Quantization::Int8Residual);
    assert_eq!(back.memory_bytes(), residual_memory);
    for q in &queries {
        assert_eq!(back.search(q, 10).unwrap(), index.search(q, 10).unwrap());
    }

    // Dropping the residuals is allowed; getting them back is not, and the
    // refusal changes nothing.
    blobs.apply(index.quantize().unwrap());
    assert_eq!(index.config().quantization, Quantization::Int8);
    assert!(index.memory_bytes() < residual_memory);
    let err = index.quantize_to(Quantization::Int8Residual).unwrap_err();
    assert!(
        err.is_user_error() && err.to_string().contains("cannot become int8-residual"),
        "{err}"
    );
    assert_eq!(index.config().quantization, Quantization::Int8);
    assert!(index.quantize_to(Quantization::None).is_err());
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
fn optimize_inserts_a_few_into_a_large_graph_instead_of_rebuilding() {
    let dim = 16;
    let config = IndexConfig {
        growing_capacity: 1600,
        ..IndexConfig::default()
    };
    let all = random_unit(2000, dim, 61);
    let queries = random_unit(40, dim, 62);
    let load = || {
        let mut index = Index::new(dim, "fp", config.clone()).unwrap();
        let mut blobs = Blobs::new();
        // One graph of 1,600 (sealed when the growing segment filled), 400 growing.
        fill(&mut index, &mut blobs, &all, 0, 400);
        assert_eq!(index.segments().len(), 2, "{:?}", index.segments());
        (index, blobs)
    };
    let (mut index, mut blobs) = load();
    let exact: Vec<Vec<u64>> = queries
        .iter()
        .map(|q| ids(&index.search_exact(q, 10).unwrap()))
        .collect();
    let job = index.start_optimize().unwrap().unwrap();
    assert!(job.is_incremental());
    assert_eq!(job.len(), 2000);
    blobs.apply(index.finish_maintenance(job.build().unwrap()).unwrap());
    let segs = index.segments();
    assert_eq!(segs.len(), 1, "{segs:?}");
    assert_eq!(segs[0].vectors, 2000);
    for (i, v) in all.iter().enumerate().step_by(7) {
        assert_eq!(index.search(v, 1).unwrap()[0].id, i as u64, "vector {i}");
    }
    let inserted = recall_at_10(&index, &queries, &exact);
    assert!(inserted >= 0.97, "recall@10 after inserting: {inserted}");
    let (back, damage) = Index::load(dim, "fp", &index.manifest(), &blobs, false).unwrap();
    assert!(damage.is_empty());
    assert_eq!(recall_at_10(&back, &queries, &exact), inserted);

    // A deletion in the large graph, or another M, means a rebuild.
    let (mut index, _) = load();
    index.remove(&[5]);
    assert!(!index.start_optimize().unwrap().unwrap().is_incremental());
    let (mut index, _) = load();
    index.config.m = 24;
    assert!(!index.start_optimize().unwrap().unwrap().is_incremental());
}

#[test]
fn add_sealed_builds_one_graph_from_the_callers_buffer() {
    let dim = 16;
    let mut index = Index::new(dim, "fp", small_config()).unwrap();
    let mut blobs = Blobs::new();
    let vs = random_unit(400, dim, 41);
    // Scaled rows: stored unit length, as `add` stores them.
    let flat: Vec<f32> = vs.iter().flatten().map(|x| 3.0 * x).collect();
    let cs = index.add_sealed((0..400).collect(), flat).unwrap();
    assert!(cs.deletes.is_empty());
    assert_eq!(cs.puts.len(), 1, "one segment blob, no growing chunk");
    blobs.apply(cs);
    let segs = index.segments();
    assert_eq!(segs.len(), 1, "{segs:?}");
    assert_eq!((segs[0].kind, segs[0].vectors), (SegmentKind::Hnsw, 400));
    let hit = index.search(&vs[17], 1).unwrap()[0];
    assert_eq!(hit.id, 17);
    assert!((hit.score - 1.0).abs() < 1e-5, "{}", hit.score);

    // The same recall as `add` then `seal` over the same vectors.
    let queries = random_unit(40, dim, 42);
    let truth: Vec<Vec<u64>> = queries
        .iter()
        .map(|q| ids(&index.search_exact(q, 10).unwrap()))
        .collect();
    let mut sealed = Index::new(dim, "fp", small_config()).unwrap();
    sealed.add(&(0..400).collect::<Vec<_>>(), &vs).unwrap();
    sealed.seal().unwrap();
    let (ours, theirs) = (
        recall_at_10(&index, &queries, &truth),
        recall_at_10(&sealed, &queries, &truth),
    );
    assert!(ours >= 0.95 && ours >= theirs - 0.02, "{ours} vs {theirs}");

    // It reloads as it is, and later vectors take the ordinary path.
    let (back, damage) = Index::load(dim, "fp", &index.manifest(), &blobs, false).unwrap();
    assert!(damage.is_empty());
    assert_eq!(
        back.search(&vs[3], 5).unwrap(),
        index.search(&vs[3], 5).unwrap()
    );
    index.add(&[400], &random_unit(1, dim, 43)).unwrap();
    assert_eq!(index.len(), 401);
}

#[test]
fn add_sealed_refuses_bad_input_and_a_running_job() {
    let dim = 4;
    let mut index = Index::new(dim, "fp", small_config()).unwrap();
    index.add(&[1], &random_unit(1, dim, 44)).unwrap();
    let good = [1.0, 0.0, 0.0, 0.0];
    let rows = |rows: &[[f32; 4]]| rows.iter().flatten().copied().collect::<Vec<f32>>();
    for (ids, data, why) in [
        (vec![], vec![], "no vectors"),
        (vec![2], vec![1.0, 0.0, 0.0], "3 values for 1 ids"),
        (
            vec![2, 3],
            rows(&[good, [0.0; 4]]),
            "vector 1 has zero length",
        ),
        (vec![2], rows(&[[f32::NAN, 0.0, 0.0, 0.0]]), "non-finite"),
        (vec![2, 2], rows(&[good, good]), "given twice"),
        (vec![1], rows(&[good]), "already stored"),
    ] {
        let err = index.add_sealed(ids, data).unwrap_err();
        assert!(
            matches!(&err, Error::BadInput(m) if m.contains(why)),
            "{err}"
        );
        assert_eq!((index.len(), index.segments().len()), (1, 1));
    }
    let job = index.start_seal().unwrap().expect("one growing vector");
    let err = index.add_sealed(vec![2], rows(&[good])).unwrap_err();
    assert!(err.to_string().contains("being built"), "{err}");
    index.finish_maintenance(job.build().unwrap()).unwrap();
    index.add_sealed(vec![2], rows(&[good])).unwrap();
    assert_eq!(index.len(), 2);
}
