use super::*;
use serde_json::json;

#[derive(Default)]
pub(super) struct Blobs(pub(super) HashMap<String, Vec<u8>>);

impl BlobRead for Blobs {
    fn get(&self, name: &str) -> Result<Option<Vec<u8>>> {
        Ok(self.0.get(name).cloned())
    }
}

impl Blobs {
    pub(super) fn apply(&mut self, cs: ChangeSet) {
        for (n, b) in cs.puts {
            self.0.insert(n, b);
        }
        for n in cs.deletes {
            self.0.remove(&n);
        }
    }
    pub(super) fn names(&self) -> Vec<String> {
        let mut v: Vec<String> = self.0.keys().cloned().collect();
        v.sort();
        v
    }
}

pub(super) const DIM: usize = 8;

fn config(capacity: usize) -> GalleryConfig {
    GalleryConfig {
        dim: DIM,
        fingerprint: "model-a".into(),
        index: IndexConfig {
            growing_capacity: capacity,
            merge_factor: 2,
            ..Default::default()
        },
        head: None,
    }
}

/// A unit vector near axis `axis`, perturbed by `wobble` along axis + 1.
pub(super) fn near(axis: usize, wobble: f32) -> Vec<f32> {
    let mut v = vec![0.0; DIM];
    v[axis % DIM] = 1.0;
    v[(axis + 1) % DIM] = wobble;
    v
}

pub(super) fn new_gallery(capacity: usize) -> (Gallery, Blobs) {
    let (g, cs) = Gallery::create(config(capacity)).unwrap();
    let mut store = Blobs::default();
    store.apply(cs);
    (g, store)
}

pub(super) fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

#[test]
fn create_and_reopen_empty() {
    let (g, store) = new_gallery(16);
    assert_eq!(store.names(), vec![MANIFEST]);
    assert_eq!((g.dim(), g.fingerprint()), (DIM, "model-a"));
    let (back, damage) = Gallery::open(&store, Some("model-a"), OpenMode::Strict).unwrap();
    assert!(damage.is_empty() && back.is_empty());
    let r = back.search(&near(0, 0.0), 3, None).unwrap();
    assert!(r.matches.is_empty() && r.unknown);
    assert!(matches!(
        Gallery::open(&Blobs::default(), None, OpenMode::Strict),
        Err(Error::NotFound(_))
    ));
    for bad in [
        GalleryConfig {
            dim: 0,
            ..config(16)
        },
        GalleryConfig {
            fingerprint: " ".into(),
            ..config(16)
        },
        GalleryConfig {
            index: IndexConfig {
                merge_factor: 0,
                ..Default::default()
            },
            ..config(16)
        },
    ] {
        assert!(matches!(Gallery::create(bad), Err(Error::BadInput(_))));
    }
}

#[test]
fn class_level_search_uses_best_example() {
    let (mut g, mut store) = new_gallery(1000);
    // "cat" has one example close to the query and one far; "dog" one medium.
    store.apply(
        g.enroll(
            "cat",
            &[near(0, 0.1), near(4, 0.0)],
            Some(json!({"sound": "meow"})),
            vec![],
        )
        .unwrap(),
    );
    store.apply(g.enroll("dog", &[near(0, 0.8)], None, vec![]).unwrap());
    store.apply(g.enroll("fish", &[near(6, 0.0)], None, vec![]).unwrap());
    let q = near(0, 0.0);
    let r = g.search(&q, 2, None).unwrap();
    let labels: Vec<&str> = r.matches.iter().map(|m| m.label.as_str()).collect();
    assert_eq!(labels, vec!["cat", "dog"]);
    let cat_score = 1.0 / (1.0f32 + 0.01).sqrt();
    assert!((r.matches[0].score - cat_score).abs() < 1e-5);
    assert!((r.matches[0].distance - (1.0 - r.matches[0].score)).abs() < 1e-6);
    assert_eq!(r.matches[0].metadata, Some(json!({"sound": "meow"})));
    assert!(r.matches[0].score > r.matches[1].score);
    assert!(!r.unknown);
    // All three classes when asked for more than exist.
    assert_eq!(g.search(&q, 10, None).unwrap().matches.len(), 3);
    // Open set: a threshold above the best score means "unknown".
    let r = g.search(&q, 1, Some(0.999)).unwrap();
    assert!(r.unknown);
    assert_eq!(r.matches[0].label, "cat");
    assert!(!g.search(&q, 1, Some(0.9)).unwrap().unknown);
    assert!(matches!(g.search(&q, 0, None), Err(Error::BadInput(_))));
    assert!(matches!(
        g.search(&q, 1, Some(f32::NAN)),
        Err(Error::BadInput(_))
    ));
    assert!(matches!(
        g.search(&q[..3], 1, None),
        Err(Error::BadInput(_))
    ));
    let ex = g.search_examples(&q, 2).unwrap();
    assert_eq!(ex[0].label, "cat");
    assert_eq!(ex[1].label, "dog");
}

#[test]
fn search_widens_when_one_class_crowds_the_neighbours() {
    let (mut g, _) = new_gallery(10_000);
    // "crowd" has 200 examples all closer to the query than "other".
    let crowd: Vec<Vec<f32>> = (0..200).map(|i| near(0, 0.001 * i as f32)).collect();
    g.enroll("crowd", &crowd, None, vec![]).unwrap();
    g.enroll("other", &[near(0, 0.9)], None, vec![]).unwrap();
    // The first search (ef_search = 64 neighbours) sees only "crowd".
    let r = g.search(&near(0, 0.0), 2, None).unwrap();
    let labels: Vec<&str> = r.matches.iter().map(|m| m.label.as_str()).collect();
    assert_eq!(labels, vec!["crowd", "other"]);
}

#[test]
fn enroll_creates_or_extends_classes() {
    let (mut g, mut store) = new_gallery(1000);
    store.apply(
        g.enroll(
            "cat",
            &[near(0, 0.0)],
            Some(json!(1)),
            vec![b"img1".to_vec()],
        )
        .unwrap(),
    );
    // Adding examples keeps metadata when none is given, appends images.
    let cs = g
        .enroll(
            "cat",
            &[near(0, 0.2), near(0, 0.3)],
            None,
            vec![b"img2".to_vec()],
        )
        .unwrap();
    // Only its own chunk, its class record and the manifest are written.
    let puts: Vec<&str> = cs.puts.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(puts.len(), 3);
    assert!(puts[0].starts_with("grow-") && puts[1].starts_with("classes-"));
    assert_eq!(puts[2], MANIFEST);
    assert_eq!(cs.deletes.len(), 1, "the page of the old record");
    store.apply(cs);
    let info = &g.classes()[0];
    assert_eq!((info.label.as_str(), info.examples), ("cat", 3));
    assert_eq!(info.metadata, Some(json!(1)));
    assert!(info.has_images);
    assert_eq!(
        g.class_images("cat").unwrap(),
        &[b"img1".to_vec(), b"img2".to_vec()]
    );
    store.apply(
        g.enroll("cat", &[near(0, 0.4)], Some(json!({"n": 2})), vec![])
            .unwrap(),
    );
    assert_eq!(g.classes()[0].metadata, Some(json!({"n": 2})));
    store.apply(g.set_metadata("cat", None).unwrap());
    assert_eq!(g.classes()[0].metadata, None);
    assert!(matches!(g.class_images("dog"), Err(Error::NotFound(_))));
    let (back, _) = Gallery::open(&store, None, OpenMode::Strict).unwrap();
    assert_eq!(back.classes(), g.classes());
    assert_eq!(
        back.class_images("cat").unwrap(),
        g.class_images("cat").unwrap()
    );
    assert_eq!(sorted(g.blob_names()), store.names());
}

#[test]
fn bad_input_changes_nothing() {
    let (mut g, mut store) = new_gallery(2);
    store.apply(g.enroll("cat", &[near(0, 0.0)], None, vec![]).unwrap());
    let before_classes = g.classes();
    let before_stats = g.stats();
    let ok = vec![near(1, 0.0)];
    let nan = vec![vec![f32::NAN; DIM]];
    let short = vec![vec![1.0; DIM - 1]];
    let mixed = vec![near(1, 0.0), vec![0.0; DIM]];
    type Case<'a> = (&'a str, &'a [Vec<f32>], Vec<Vec<u8>>);
    let cases: Vec<Case> = vec![
        ("", &ok, vec![]),
        ("   ", &ok, vec![]),
        ("tab\there", &ok, vec![]),
        ("dog", &[], vec![]),
        ("dog", &nan, vec![]),
        ("dog", &short, vec![]),
        ("dog", &mixed, vec![]),
        ("cat", &mixed, vec![]),
        ("dog", &ok, vec![vec![]]),
    ];
    for (label, vectors, images) in cases {
        let err = g.enroll(label, vectors, None, images).unwrap_err();
        assert!(matches!(err, Error::BadInput(_)), "{label:?}: {err:?}");
        assert_eq!(g.classes(), before_classes);
        assert_eq!(g.stats(), before_stats);
    }
    let long = "x".repeat(MAX_LABEL_BYTES + 1);
    assert!(matches!(
        g.enroll(&long, &ok, None, vec![]),
        Err(Error::BadInput(_))
    ));
    // And the next good mutation is consistent with the store.
    store.apply(g.enroll("dog", &ok, None, vec![]).unwrap());
    let (back, _) = Gallery::open(&store, None, OpenMode::Strict).unwrap();
    assert_eq!(back.classes(), g.classes());
}

#[test]
fn rename_and_remove() {
    let (mut g, mut store) = new_gallery(1000);
    store.apply(g.enroll("cat", &[near(0, 0.0)], None, vec![]).unwrap());
    store.apply(g.enroll("dog", &[near(0, 0.5)], None, vec![]).unwrap());
    assert!(matches!(g.rename("cow", "bull"), Err(Error::NotFound(_))));
    assert!(matches!(
        g.rename("cat", "dog"),
        Err(Error::AlreadyExists(_))
    ));
    assert!(matches!(g.rename("cat", ""), Err(Error::BadInput(_))));
    assert!(g.rename("cat", "cat").unwrap().is_empty());
    store.apply(g.rename("cat", "kitten").unwrap());
    assert_eq!(
        g.search(&near(0, 0.0), 1, None).unwrap().matches[0].label,
        "kitten"
    );
    assert!(matches!(g.remove("cat"), Err(Error::NotFound(_))));
    store.apply(g.remove("kitten").unwrap());
    let r = g.search(&near(0, 0.0), 5, None).unwrap();
    let labels: Vec<&str> = r.matches.iter().map(|m| m.label.as_str()).collect();
    assert_eq!(labels, vec!["dog"]);
    assert_eq!(g.stats().deleted, 1);
    assert_eq!(g.stats().vectors, 1);
    // The label can be enrolled again, as a new class.
    store.apply(g.enroll("kitten", &[near(5, 0.0)], None, vec![]).unwrap());
    let (back, _) = Gallery::open(&store, None, OpenMode::Strict).unwrap();
    assert_eq!(back.classes(), g.classes());
    assert_eq!(
        back.search(&near(0, 0.0), 1, None).unwrap().matches[0].label,
        "dog",
        "the removed kitten's vector is not found after reopening"
    );
    assert_eq!(sorted(g.blob_names()), store.names());
}

#[test]
fn another_models_gallery_is_refused() {
    let (_, store) = new_gallery(16);
    match Gallery::open(&store, Some("model-b"), OpenMode::SkipDamaged) {
        Err(Error::ModelMismatch {
            what,
            expected,
            found,
        }) => {
            assert_eq!(
                (what.as_str(), expected.as_str(), found.as_str()),
                ("gallery", "model-b", "model-a")
            );
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn sealing_happens_inside_the_enrollment_change_set() {
    let (mut g, mut store) = new_gallery(4);
    let mut sealed = false;
    for i in 0..DIM {
        let cs = g
            .enroll(
                &format!("c{i}"),
                &[near(i, 0.1), near(i, 0.2)],
                None,
                vec![],
            )
            .unwrap();
        sealed |= cs.puts.iter().any(|(n, _)| n.starts_with("seg-"));
        store.apply(cs);
        assert_eq!(
            sorted(g.blob_names()),
            store.names(),
            "after enrollment {i}"
        );
    }
    assert!(sealed);
    assert!(
        g.stats()
            .segments
            .iter()
            .any(|s| s.kind != SegmentKind::Growing)
    );
    assert!(!g.needs_maintenance());
    let (back, _) = Gallery::open(&store, Some("model-a"), OpenMode::Strict).unwrap();
    for i in 0..DIM {
        let r = back.search(&near(i, 0.15), 1, None).unwrap();
        assert_eq!(r.matches[0].label, format!("c{i}"));
    }
    let stats = back.stats();
    assert_eq!(
        (stats.classes, stats.vectors, stats.deleted),
        (DIM, 2 * DIM, 0)
    );
    let stored: u64 = store.0.values().map(|b| b.len() as u64).sum();
    assert_eq!(stats.bytes, stored);
    assert_eq!(g.stats().bytes, stored);
}

#[test]
fn quantize_is_one_change_set_and_survives_reopening() {
    let (mut g, mut store) = new_gallery(64);
    // 40 classes of two examples each, spread over the 8 dimensions.
    let example = |c: usize, e: usize| {
        let mut v: Vec<f32> = (0..DIM)
            .map(|d| (((c * 7 + d * 3) % 11) as f32 - 5.0) + 0.01 * (e + d) as f32)
            .collect();
        v[c % DIM] += 8.0;
        v
    };
    for c in 0..40 {
        store.apply(
            g.enroll(
                &format!("c{c}"),
                &[example(c, 0), example(c, 1)],
                None,
                vec![],
            )
            .unwrap(),
        );
    }
    assert!(
        g.stats()
            .segments
            .iter()
            .any(|s| s.kind == SegmentKind::Hnsw)
    );
    let before = g.stats();
    assert_eq!(before.quantization, Quantization::None);
    store.apply(g.quantize().unwrap());
    let after = g.stats();
    assert_eq!(after.quantization, Quantization::Int8);
    assert!(after.memory_bytes < before.memory_bytes);
    assert!(
        after
            .segments
            .iter()
            .any(|s| s.kind == SegmentKind::HnswInt8)
    );
    assert_eq!(sorted(g.blob_names()), store.names());
    let (back, _) = Gallery::open(&store, Some("model-a"), OpenMode::Strict).unwrap();
    assert_eq!(back.stats(), after);
    for c in 0..40 {
        let r = back.search(&example(c, 0), 1, None).unwrap();
        assert_eq!(r.matches[0].label, format!("c{c}"));
    }
}

#[test]
fn optimize_leaves_one_graph_and_every_class() {
    let (mut g, mut store) = new_gallery(16);
    g.set_auto_maintain(false);
    // Scattered directions, one per class (none repeats).
    let example = |c: usize| -> Vec<f32> {
        (0..DIM)
            .map(|d| ((c * 7919 + d * 104_729 + c * d * 31) % 1000) as f32 / 500.0 - 1.0)
            .collect()
    };
    for c in 0..90 {
        store.apply(
            g.enroll(&format!("c{c}"), &[example(c)], None, vec![])
                .unwrap(),
        );
    }
    store.apply(g.maintain().unwrap().expect("seals are due"));
    store.apply(g.remove("c4").unwrap());
    for c in 90..100 {
        store.apply(
            g.enroll(&format!("c{c}"), &[example(c)], None, vec![])
                .unwrap(),
        );
    }
    assert!(g.stats().segments.len() > 1);
    store.apply(g.optimize().unwrap().expect("several segments"));
    let stats = g.stats();
    assert_eq!(stats.segments.len(), 1, "{:?}", stats.segments);
    assert_eq!(stats.segments[0].kind, SegmentKind::Hnsw);
    assert_eq!(stats.vectors, 99);
    assert!(g.optimize().unwrap().is_none());
    assert_eq!(sorted(g.blob_names()), store.names());
    let (back, _) = Gallery::open(&store, Some("model-a"), OpenMode::Strict).unwrap();
    assert_eq!(back.stats(), stats);
    for c in (0..100).filter(|&c| c != 4) {
        let r = back.search(&example(c), 1, None).unwrap();
        assert_eq!(r.matches[0].label, format!("c{c}"));
    }
}

#[test]
fn deferred_maintenance() {
    let (mut g, mut store) = new_gallery(4);
    g.set_auto_maintain(false);
    assert!(!g.auto_maintain());
    for i in 0..3 {
        let cs = g
            .enroll(
                &format!("c{i}"),
                &[near(i, 0.0), near(i, 0.1)],
                None,
                vec![],
            )
            .unwrap();
        assert!(cs.puts.iter().all(|(n, _)| !n.starts_with("seg-")));
        store.apply(cs);
    }
    assert!(g.needs_maintenance());
    let cs = g.maintain().unwrap().expect("work to do");
    assert!(cs.puts.iter().any(|(n, _)| n.starts_with("seg-")));
    assert_eq!(cs.puts.last().map(|(n, _)| n.as_str()), Some(MANIFEST));
    store.apply(cs);
    assert!(!g.needs_maintenance());
    assert!(g.maintain().unwrap().is_none());
    assert_eq!(sorted(g.blob_names()), store.names());
    let (back, _) = Gallery::open(&store, None, OpenMode::Strict).unwrap();
    assert_eq!(back.stats().vectors, 6);
}

fn damaged_gallery() -> (Gallery, Blobs, String, String) {
    let (mut g, mut store) = new_gallery(4);
    for i in 0..6 {
        store.apply(
            g.enroll(
                &format!("c{i}"),
                &[near(i, 0.0), near(i, 0.1)],
                None,
                vec![],
            )
            .unwrap(),
        );
    }
    let m = decode_manifest(&store.0[MANIFEST]).unwrap().0;
    let seg = m.index.segments[0].name.clone();
    // Damage one segment (bit flip) and the class record of "c5".
    let seg_bytes = store.0.get_mut(&seg).unwrap();
    let at = seg_bytes.len() - 10;
    seg_bytes[at] ^= 1;
    // c5 was enrolled last, so its page holds it alone.
    let c5 = m
        .pages
        .iter()
        .map(|e| page_blob(e.seq))
        .find(|n| {
            let records = decode_page(n, &store.0[n]).unwrap();
            records.len() == 1 && records[0].1.label == "c5"
        })
        .unwrap();
    let b = store.0.get_mut(&c5).unwrap();
    let at = b.len() / 2;
    b[at] ^= 0x10;
    (g, store, seg, c5)
}

/// Three classes of one vector each, then the page holding `c2`
/// rewritten (checksum and size still right) by `tamper`.
fn inconsistent_gallery(tamper: impl Fn(&mut Class, &Class)) -> (Blobs, String) {
    let (mut g, mut store) = new_gallery(16);
    for i in 0..3 {
        store.apply(
            g.enroll(&format!("c{i}"), &[near(i, 0.0)], None, vec![])
                .unwrap(),
        );
    }
    let m = decode_manifest(&store.0[MANIFEST]).unwrap().0;
    let pages: Vec<Vec<(u64, Class)>> = m
        .pages
        .iter()
        .map(|e| decode_page(&page_blob(e.seq), &store.0[&page_blob(e.seq)]).unwrap())
        .collect();
    let c0 = pages
        .iter()
        .flatten()
        .find(|(_, c)| c.label == "c0")
        .unwrap()
        .1
        .clone();
    let at = pages
        .iter()
        .position(|p| p.len() == 1 && p[0].1.label == "c2")
        .unwrap();
    let name = page_blob(m.pages[at].seq);
    let (id, mut c2) = pages[at][0].clone();
    tamper(&mut c2, &c0);
    let bytes = encode_page(&BTreeMap::from([(id, c2)]), &[id]).unwrap();
    assert_eq!(
        bytes.len(),
        store.0[&name].len(),
        "the manifest's size still fits"
    );
    store.0.insert(name.clone(), bytes);
    (store, name)
}

#[test]
fn class_records_that_contradict_each_other_are_named_or_dropped() {
    type Tamper = fn(&mut Class, &Class);
    let cases: [(&str, Tamper); 2] = [
        ("belongs to two classes", |c, c0| {
            c.vector_ids = c0.vector_ids.clone()
        }),
        ("is used by another class", |c, c0| {
            c.label = c0.label.clone()
        }),
    ];
    for (reason_has, tamper) in cases {
        let (store, page) = inconsistent_gallery(tamper);
        match Gallery::open(&store, None, OpenMode::Strict) {
            Err(Error::Corrupt { name, reason }) => {
                assert_eq!(name, page);
                assert!(reason.contains(reason_has), "{reason}");
            }
            other => panic!("{reason_has}: {:?}", other.map(|_| ())),
        }
        // Skipping: the later class is dropped, the first keeps its
        // vector, and the dropped class's own vector belongs to nobody.
        let (g, damage) = Gallery::open(&store, None, OpenMode::SkipDamaged).unwrap();
        assert_eq!(damage.len(), 1);
        assert_eq!(damage[0].blob, page);
        let labels: Vec<String> = g.classes().into_iter().map(|c| c.label).collect();
        assert_eq!(labels, ["c0", "c1"], "{reason_has}");
        for i in 0..2 {
            let r = g.search(&near(i, 0.05), 1, None).unwrap();
            assert_eq!(r.matches[0].label, format!("c{i}"), "{reason_has}");
        }
        let r = g.search(&near(2, 0.05), 3, None).unwrap();
        assert!(r.matches.iter().all(|m| m.label != "c2"), "{reason_has}");
        assert_eq!(g.stats().vectors, 2, "{reason_has}");
    }
}

#[test]
fn strict_open_names_the_first_damaged_blob() {
    let (_, store, seg, _) = damaged_gallery();
    match Gallery::open(&store, None, OpenMode::Strict) {
        Err(Error::Corrupt { name, reason }) => {
            assert_eq!(name, seg);
            assert!(reason.contains("checksum"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn skip_damaged_keeps_the_rest_and_repairs_on_next_mutation() {
    let (orig, mut store, seg, c5) = damaged_gallery();
    let (mut g, damage) = Gallery::open(&store, Some("model-a"), OpenMode::SkipDamaged).unwrap();
    let names: Vec<&str> = damage.iter().map(|d| d.blob.as_str()).collect();
    assert_eq!(names, vec![seg.as_str(), c5.as_str()]);
    // c5 is gone; classes whose vectors lived in the damaged segment are
    // still listed (with fewer or no examples) so they can be re-enrolled.
    let labels: Vec<String> = g.classes().into_iter().map(|c| c.label).collect();
    assert!(!labels.contains(&"c5".to_string()));
    assert_eq!(labels.len(), 5);
    let lost: usize = orig.classes().iter().map(|c| c.examples).sum::<usize>()
        - g.classes().iter().map(|c| c.examples).sum::<usize>();
    assert!(lost >= 2, "the damaged segment's vectors are gone");
    // c5's vectors (orphans now) never match; the survivors still do.
    let r = g.search(&near(5, 0.05), 6, None).unwrap();
    assert!(r.matches.iter().all(|m| m.label != "c5"));
    let survivor = g.classes().into_iter().find(|c| c.examples == 2).unwrap();
    let i: usize = survivor.label[1..].parse().unwrap();
    assert_eq!(
        g.search(&near(i, 0.05), 1, None).unwrap().matches[0].label,
        survivor.label
    );

    // The next mutation drops the damaged blobs from the manifest (and the store).
    let cs = g.enroll("new", &[near(7, 0.3)], None, vec![]).unwrap();
    assert!(cs.deletes.contains(&seg) && cs.deletes.contains(&c5));
    store.apply(cs);
    assert_eq!(sorted(g.blob_names()), store.names());
    let (back, damage) = Gallery::open(&store, Some("model-a"), OpenMode::Strict).unwrap();
    assert!(damage.is_empty());
    assert_eq!(back.classes(), g.classes());
    assert_eq!(back.stats().vectors, g.stats().vectors);

    // Emptied classes can be enrolled again (re-embedded) or removed, and
    // a search asking for more classes than can match returns the others.
    let empty: Vec<String> = g
        .classes()
        .into_iter()
        .filter(|c| c.examples == 0)
        .map(|c| c.label)
        .collect();
    assert!(empty.len() >= 2, "{empty:?}");
    store.apply(g.enroll(&empty[0], &[near(0, 0.5)], None, vec![]).unwrap());
    store.apply(g.remove(&empty[1]).unwrap());
    let searchable = g.classes().iter().filter(|c| c.examples > 0).count();
    let r = g.search(&near(0, 0.5), 20, None).unwrap();
    assert_eq!(r.matches.len(), searchable);
    assert_eq!(r.matches[0].label, empty[0]);
    let (back, _) = Gallery::open(&store, None, OpenMode::Strict).unwrap();
    assert_eq!(back.search(&near(0, 0.5), 20, None).unwrap(), r);
}

/// Enrolls `n` one-example classes `c0..`, applying each change set.
pub(super) fn enroll_many(g: &mut Gallery, store: &mut Blobs, n: usize) {
    for i in 0..n {
        store.apply(
            g.enroll(&format!("c{i}"), &[near(i, i as f32 * 0.01)], None, vec![])
                .unwrap(),
        );
    }
}

#[test]
fn a_batch_is_one_chunk_one_page_and_bad_input_in_it_changes_nothing() {
    let (mut g, mut store) = new_gallery(1000);
    let entry = |label: &str, vectors: Vec<Vec<f32>>, metadata| Enrollment {
        label: label.into(),
        vectors,
        metadata,
    };
    let batch = vec![
        entry("a", vec![near(0, 0.0), near(0, 0.1)], None),
        entry("b", vec![near(2, 0.0)], Some(json!("bee"))),
        entry("a", vec![near(0, 0.2)], Some(json!("ay"))),
    ];
    let cs = g.enroll_batch(&batch).unwrap();
    let puts: Vec<&str> = cs.puts.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(puts.len(), 3, "{puts:?}");
    assert!(puts[0].starts_with("grow-") && puts[1].starts_with("classes-"));
    store.apply(cs);
    let info = g.classes();
    assert_eq!(
        info.iter()
            .map(|c| (c.label.as_str(), c.examples, c.metadata.clone()))
            .collect::<Vec<_>>(),
        vec![("a", 3, Some(json!("ay"))), ("b", 1, Some(json!("bee")))]
    );
    assert_eq!(
        g.search(&near(2, 0.05), 1, None).unwrap().matches[0].label,
        "b"
    );
    let before = (g.classes(), g.stats());
    for bad in [
        vec![
            entry("c", vec![near(3, 0.0)], None),
            entry("d", vec![vec![f32::NAN; DIM]], None),
        ],
        vec![
            entry("c", vec![near(3, 0.0)], None),
            entry("", vec![near(4, 0.0)], None),
        ],
        vec![entry("c", vec![], None)],
        vec![],
    ] {
        assert!(matches!(g.enroll_batch(&bad), Err(Error::BadInput(_))));
        assert_eq!((g.classes(), g.stats()), before);
    }
    let (back, _) = Gallery::open(&store, None, OpenMode::Strict).unwrap();
    assert_eq!(back.classes(), g.classes());
}

#[test]
fn a_sealed_bulk_load_is_one_segment_and_bad_input_changes_nothing() {
    let (mut g, mut store) = new_gallery(4);
    let entry = |label: &str, vectors: Vec<Vec<f32>>| Enrollment {
        label: label.into(),
        vectors,
        metadata: None,
    };
    let before = (g.classes(), g.stats());
    for bad in [
        vec![
            entry("a", vec![near(0, 0.0)]),
            entry("b", vec![vec![1.0; DIM + 1]]),
        ],
        vec![
            entry("a", vec![near(0, 0.0)]),
            entry("b", vec![vec![f32::NAN; DIM]]),
        ],
        vec![entry("a", vec![])],
        vec![],
    ] {
        assert!(matches!(g.enroll_sealed(bad), Err(Error::BadInput(_))));
        assert_eq!((g.classes(), g.stats()), before);
    }
    // More vectors than the growing segment holds, and not one chunk written.
    let batch = (0..6)
        .map(|i| entry(&format!("c{i}"), vec![near(i, 0.0), near(i, 0.1)]))
        .collect();
    let cs = g.enroll_sealed(batch).unwrap();
    assert!(cs.puts.iter().all(|(n, _)| !n.starts_with("grow-")));
    store.apply(cs);
    assert_eq!((g.stats().vectors, g.classes().len()), (12, 6));
    let segments = g.index().segments();
    assert_eq!(segments.len(), 1, "{segments:?}");
    assert_eq!(
        g.search(&near(4, 0.05), 1, None).unwrap().matches[0].label,
        "c4"
    );
    store.apply(g.enroll("c6", &[near(6, 0.0)], None, vec![]).unwrap());
    let (back, _) = Gallery::open(&store, None, OpenMode::Strict).unwrap();
    assert_eq!(back.classes(), g.classes());
    assert_eq!(
        back.search(&near(6, 0.0), 1, None).unwrap().matches[0].label,
        "c6"
    );
}

#[test]
fn maintenance_built_on_another_thread_while_the_gallery_is_used() {
    let (mut g, mut store) = new_gallery(4);
    g.set_auto_maintain(false);
    enroll_many(&mut g, &mut store, 5);
    let job = g.start_maintenance().expect("the growing segment is full");
    let builder = std::thread::spawn(move || job.build());
    // Meanwhile the gallery is searched, enrolled into and changed.
    assert_eq!(
        g.search(&near(1, 0.01), 1, None).unwrap().matches[0].label,
        "c1"
    );
    store.apply(g.enroll("late", &[near(6, 0.3)], None, vec![]).unwrap());
    store.apply(g.remove("c0").unwrap());
    let cs = g
        .finish_maintenance(builder.join().unwrap().unwrap())
        .unwrap();
    assert!(cs.puts.iter().any(|(n, _)| n.starts_with("seg-")));
    assert_eq!(cs.puts.last().map(|(n, _)| n.as_str()), Some(MANIFEST));
    store.apply(cs);
    assert_eq!(sorted(g.blob_names()), store.names());
    let (back, _) = Gallery::open(&store, None, OpenMode::Strict).unwrap();
    assert_eq!(back.classes(), g.classes());
    assert_eq!((back.stats().vectors, back.stats().deleted), (5, 1));
    for (label, q) in [
        ("c1", near(1, 0.01)),
        ("late", near(6, 0.3)),
        ("c4", near(4, 0.04)),
    ] {
        assert_eq!(back.search(&q, 1, None).unwrap().matches[0].label, label);
    }
    assert!(
        back.search(&near(0, 0.0), 5, None)
            .unwrap()
            .matches
            .iter()
            .all(|m| m.label != "c0")
    );
}

/// Enrolling and removing a class, over and over, leaves nothing behind: what
/// is stored, the blobs and what the index holds in memory stay flat, since
/// the maintenance that follows drops removed vectors and stale records.
/// `METRICANN_CYCLES` runs more than the default 1,000.
#[test]
fn enroll_remove_cycles_keep_storage_and_memory_flat() {
    let cycles: usize = std::env::var("METRICANN_CYCLES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    let (mut g, mut store) = new_gallery(16);
    enroll_many(&mut g, &mut store, 20);
    let size = |g: &Gallery, store: &Blobs| {
        let stored: usize = store.0.values().map(Vec::len).sum();
        (stored, store.0.len(), g.stats().memory_bytes as usize)
    };
    let mut early = (0, 0, 0);
    let mut peak = (0, 0, 0);
    for c in 0..cycles {
        let label = format!("passing-{c}");
        let image = vec![c as u8; 200];
        store.apply(
            g.enroll(&label, &[near(c, 0.3)], None, vec![image])
                .unwrap(),
        );
        store.apply(g.remove(&label).unwrap());
        let now = size(&g, &store);
        if c == cycles / 10 {
            early = now;
        }
        if c >= cycles / 10 {
            peak = (peak.0.max(now.0), peak.1.max(now.1), peak.2.max(now.2));
        }
    }
    assert_eq!(g.classes().len(), 20);
    assert_eq!(g.stats().vectors, 20);
    eprintln!("{cycles} cycles: stored bytes, blobs, index memory early {early:?}, peak {peak:?}");
    // Tiers and pages fill and empty in waves: bounded by a small multiple of
    // the early size, not growing with the number of cycles.
    assert!(
        peak.0 <= 3 * early.0 && peak.1 <= 3 * early.1 && peak.2 <= 3 * early.2,
        "early {early:?}, peak over {cycles} cycles {peak:?}"
    );
    let (back, _) = Gallery::open(&store, None, OpenMode::Strict).unwrap();
    assert_eq!(back.classes(), g.classes());
}

#[test]
fn rows_group_into_one_enrollment_a_label_in_label_order() {
    let labels = ["b", "a", "b", "c"].map(String::from);
    let rows = vec![vec![1.0], vec![2.0], vec![3.0], vec![4.0]];
    let grouped = Enrollment::by_label(labels, rows);
    let shape: Vec<(&str, Vec<Vec<f32>>)> = grouped
        .iter()
        .map(|e| (e.label.as_str(), e.vectors.clone()))
        .collect();
    assert_eq!(
        shape,
        vec![
            ("a", vec![vec![2.0]]),
            ("b", vec![vec![1.0], vec![3.0]]),
            ("c", vec![vec![4.0]]),
        ]
    );
    assert!(grouped.iter().all(|e| e.metadata.is_none()));
}
