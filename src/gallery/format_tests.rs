//! What the gallery stores: manifest JSON, class pages, the export file, and
//! format-1 galleries.

use serde_json::json;

use super::format::{class_blob, decode_manifest, decode_page};
use super::pages::PageEntry;
use super::tests::{Blobs, DIM, enroll_many, near, new_gallery, sorted};
use super::*;
use crate::blob;

#[test]
fn unknown_manifest_format_is_named() {
    let (_, mut store) = new_gallery(16);
    let json = blob::open(MANIFEST, KIND_MANIFEST, &store.0[MANIFEST]).unwrap();
    let mut v: Value = serde_json::from_slice(json).unwrap();
    v["format"] = json!(3);
    store.0.insert(
        MANIFEST.into(),
        blob::seal(KIND_MANIFEST, &serde_json::to_vec(&v).unwrap()),
    );
    let err = Gallery::open(&store, None, OpenMode::SkipDamaged).unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("manifest") && msg.contains("format 3"),
        "{msg}"
    );
    store.0.insert(MANIFEST.into(), b"garbage".to_vec());
    assert!(matches!(
        Gallery::open(&store, None, OpenMode::SkipDamaged),
        Err(Error::Corrupt { name, .. }) if name == MANIFEST
    ));
}

#[test]
fn export_import_roundtrip() {
    let (mut g, mut store) = new_gallery(4);
    for i in 0..7 {
        store.apply(
            g.enroll(
                &format!("c{i}"),
                &[near(i, 0.0), near(i, 0.2)],
                Some(json!(i)),
                vec![vec![i as u8; 10]],
            )
            .unwrap(),
        );
    }
    store.apply(g.remove("c2").unwrap());
    let bytes = g.export_bytes().unwrap();
    let (back, cs) = Gallery::import_bytes(&bytes, Some("model-a")).unwrap();
    assert_eq!(back.classes(), g.classes());
    let (a, b) = (back.stats(), g.stats());
    assert_eq!(
        (a.classes, a.vectors, a.segments),
        (b.classes, b.vectors, b.segments)
    );
    assert!(a.bytes <= b.bytes, "stale records are left out");
    // The import change set recreates the stored blobs: the same names,
    // the same index blobs; class pages without the stale record.
    assert_eq!(cs.puts.last().map(|(n, _)| n.as_str()), Some(MANIFEST));
    let mut fresh = Blobs::default();
    fresh.apply(cs);
    assert_eq!(fresh.names(), store.names());
    for name in store.names() {
        if !name.starts_with("classes-") && name != MANIFEST {
            assert_eq!(fresh.0[&name], store.0[&name], "{name}");
        }
    }
    let (reopened, _) = Gallery::open(&fresh, None, OpenMode::Strict).unwrap();
    let q = near(3, 0.1);
    assert_eq!(
        reopened.search(&q, 3, None).unwrap(),
        g.search(&q, 3, None).unwrap()
    );

    assert!(matches!(
        Gallery::import_bytes(&bytes, Some("model-b")),
        Err(Error::ModelMismatch { .. })
    ));
    let mut bad = bytes.clone();
    bad[40] ^= 1;
    assert!(matches!(
        Gallery::import_bytes(&bad, None),
        Err(Error::Corrupt { name, .. }) if name == "export"
    ));
    assert!(Gallery::import_bytes(&bytes[..bytes.len() - 1], None).is_err());
    // A well-framed export whose blob list lies about lengths.
    let payload = blob::open("export", KIND_EXPORT, &bytes).unwrap();
    let mut lying = payload.to_vec();
    lying.truncate(lying.len() - 3);
    let err = Gallery::import_bytes(&blob::seal(KIND_EXPORT, &lying), None).unwrap_err();
    assert!(err.to_string().contains("truncated"), "{err}");
}

#[test]
fn manifest_is_json_and_lists_everything() {
    let (mut g, mut store) = new_gallery(4);
    store.apply(g.enroll("a", &[near(0, 0.0)], None, vec![]).unwrap());
    g.remove("a").map(|cs| store.apply(cs)).unwrap();
    store.apply(g.enroll("b", &[near(1, 0.0)], None, vec![]).unwrap());
    let json = blob::open(MANIFEST, KIND_MANIFEST, &store.0[MANIFEST]).unwrap();
    let v: Value = serde_json::from_slice(json).unwrap();
    assert_eq!(v["format"], json!(2));
    assert_eq!(v["fingerprint"], json!("model-a"));
    assert_eq!(v["dim"], json!(DIM));
    assert_eq!(v["index"]["config"]["growing_capacity"], json!(4));
    assert_eq!(v["index"]["tombstones"], json!([1]));
    // a's and b's one-vector chunks merged into one (merge factor 2).
    let growing = v["index"]["growing"].as_array().unwrap();
    assert_eq!(growing.len(), 1);
    assert_eq!(growing[0]["vectors"], json!(2));
    // a's page went with a; b's page holds one record.
    let pages = v["pages"].as_array().unwrap();
    assert_eq!(pages.len(), 1);
    let name = format!("classes-{}", pages[0][0]);
    assert_eq!(pages[0][1], json!(store.0[&name].len()));
    assert_eq!(pages[0][2], json!(1));
    assert_eq!(v["removed_classes"], json!([]));
    let records = decode_page(&name, &store.0[&name]).unwrap();
    assert_eq!((records[0].0, records[0].1.label.as_str()), (2, "b"));
}

#[test]
fn class_pages_merge_by_tiers_and_keep_the_manifest_small() {
    let (mut g, mut store) = new_gallery(1 << 20);
    let n = 300;
    enroll_many(&mut g, &mut store, n);
    let m = decode_manifest(&store.0[MANIFEST]).unwrap().0;
    let per_tier = pages::PAGE_MERGE_FACTOR - 1;
    assert!(
        m.pages.len() <= per_tier * 5,
        "{} pages for {n} classes",
        m.pages.len()
    );
    let records: u64 = m.pages.iter().map(|p| p.records).sum();
    assert_eq!(records, n as u64, "no stale records without rewrites");
    // One more enrollment writes its chunk, one page and the manifest (and
    // merges whatever tier filled up).
    let cs = g.enroll("extra", &[near(3, 0.5)], None, vec![]).unwrap();
    let pages_written = cs
        .puts
        .iter()
        .filter(|(n, _)| n.starts_with("classes-"))
        .count();
    assert!(pages_written <= 1, "{pages_written}");
    store.apply(cs);
    assert_eq!(sorted(g.blob_names()), store.names());
    let (back, _) = Gallery::open(&store, None, OpenMode::Strict).unwrap();
    assert_eq!(back.classes(), g.classes());
}

#[test]
fn a_class_removed_or_renamed_inside_a_merged_page_stays_so_after_reopening() {
    let (mut g, mut store) = new_gallery(1 << 20);
    enroll_many(&mut g, &mut store, pages::PAGE_MERGE_FACTOR * 2);
    store.apply(g.remove("c1").unwrap());
    let m = decode_manifest(&store.0[MANIFEST]).unwrap().0;
    assert_eq!(
        m.removed_classes,
        vec![2],
        "c1 (class 2) has a stale record"
    );
    let (back, _) = Gallery::open(&store, None, OpenMode::Strict).unwrap();
    assert_eq!(back.classes(), g.classes());
    store.apply(g.rename("c2", "two").unwrap());
    store.apply(g.set_metadata("c3", Some(json!("m"))).unwrap());
    let (back, _) = Gallery::open(&store, None, OpenMode::Strict).unwrap();
    assert_eq!(back.classes(), g.classes());
    let labels: Vec<String> = back.classes().into_iter().map(|c| c.label).collect();
    assert!(!labels.contains(&"c1".into()) && !labels.contains(&"c2".into()));
    assert!(labels.contains(&"two".into()));
    // Once the merged pages are rewritten, no removed class is listed.
    enroll_many(
        &mut g,
        &mut store,
        pages::PAGE_MERGE_FACTOR * pages::PAGE_MERGE_FACTOR,
    );
    let mut g2 = Gallery::open(&store, None, OpenMode::Strict).unwrap().0;
    while let Some(cs) = g2.maintain().unwrap() {
        store.apply(cs);
    }
    let m = decode_manifest(&store.0[MANIFEST]).unwrap().0;
    let live = g2.len() as u64;
    let records: u64 = m.pages.iter().map(|p| p.records).sum();
    assert!(
        records >= live && records < 2 * live,
        "{records} records for {live}"
    );
    assert!(
        m.removed_classes
            .iter()
            .all(|id| !g2.classes.contains_key(id))
    );
    let (back, _) = Gallery::open(&store, None, OpenMode::Strict).unwrap();
    assert_eq!(back.classes(), g2.classes());
    assert_eq!(sorted(g2.blob_names()), store.names());
}

#[test]
fn format_1_galleries_are_read_and_migrated_by_the_next_mutation() {
    // A format-1 gallery as an earlier build stored it: one blob per class.
    let (mut g, mut store) = new_gallery(4);
    enroll_many(&mut g, &mut store, 6);
    let m = decode_manifest(&store.0[MANIFEST]).unwrap().0;
    let mut v1 = Blobs::default();
    let mut entries = Vec::new();
    for (&id, c) in &g.classes {
        let r = c.record(id).unwrap();
        let blob = blob::seal(KIND_CLASS, &postcard::to_allocvec(&r).unwrap());
        let seq = 100 + id;
        entries.push(json!([id, seq, blob.len()]));
        v1.0.insert(class_blob(seq), blob);
    }
    for name in store.names() {
        if name.starts_with("seg-") || name.starts_with("grow-") {
            v1.0.insert(name.clone(), store.0[&name].clone());
        }
    }
    let manifest = json!({
        "format": 1, "fingerprint": m.fingerprint, "dim": m.dim,
        "next_class_id": m.next_class_id, "next_vector_id": m.next_vector_id,
        "next_class_seq": 1, "index": serde_json::to_value(&m.index).unwrap(),
        "classes": entries,
    });
    v1.0.insert(
        MANIFEST.into(),
        blob::seal(KIND_MANIFEST, &serde_json::to_vec(&manifest).unwrap()),
    );
    let (mut old, _) = Gallery::open(&v1, Some("model-a"), OpenMode::Strict).unwrap();
    assert_eq!(old.classes(), g.classes());
    assert_eq!(sorted(old.blob_names()), v1.names());
    let cs = old.enroll("new", &[near(7, 0.7)], None, vec![]).unwrap();
    assert_eq!(
        cs.deletes
            .iter()
            .filter(|n| n.starts_with("class-"))
            .count(),
        6
    );
    v1.apply(cs);
    assert!(v1.names().iter().all(|n| !n.starts_with("class-")));
    let (migrated, _) = Gallery::open(&v1, None, OpenMode::Strict).unwrap();
    assert_eq!(migrated.len(), 7);
    assert_eq!(migrated.classes(), old.classes());
    let new_seq = decode_manifest(&v1.0[MANIFEST]).unwrap().0.pages[0].seq;
    assert!(new_seq > 106, "page names never reuse a format-1 sequence");
    assert_eq!(
        migrated.search(&near(3, 0.03), 1, None).unwrap().matches[0].label,
        "c3"
    );
}

#[test]
fn manifest_entries_are_json_arrays() {
    let page = PageEntry {
        seq: 7,
        bytes: 1234,
        records: 3,
    };
    assert_eq!(serde_json::to_string(&page).unwrap(), "[7,1234,3]");
    assert_eq!(
        serde_json::from_str::<PageEntry>("[7,1234,3]").unwrap(),
        page
    );
    let class = ClassEntry {
        id: 5,
        seq: 9,
        bytes: 321,
    };
    assert_eq!(serde_json::to_string(&class).unwrap(), "[5,9,321]");
    assert_eq!(
        serde_json::from_str::<ClassEntry>("[5,9,321]").unwrap(),
        class
    );
    // The manifest's error about a malformed entry names the entry.
    let err = serde_json::from_str::<PageEntry>("[7,1234]").unwrap_err();
    assert!(
        err.to_string()
            .contains("tuple struct PageEntry with 3 elements"),
        "{err}"
    );
    let err = serde_json::from_str::<ClassEntry>("{\"id\":5}").unwrap_err();
    assert!(
        err.to_string().contains("expected tuple struct ClassEntry"),
        "{err}"
    );
}
