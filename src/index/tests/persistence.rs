use super::*;

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
