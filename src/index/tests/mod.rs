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
    // A manifest written before `m` and `neighbors` existed gets today's
    // defaults for the graphs it builds from now on; its stored graphs keep
    // their own M.
    let old: IndexConfig = serde_json::from_str(r#"{"ef_search": 32}"#).unwrap();
    assert_eq!(old.neighbors, NeighborSelection::Diverse);
    assert_eq!(old.m, DEFAULT_M);
    let json = serde_json::to_string(&IndexConfig {
        neighbors: NeighborSelection::DiverseFill,
        ..Default::default()
    })
    .unwrap();
    assert!(json.contains(r#""neighbors":"diverse-fill""#), "{json}");
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
fn quantization_settings_parse_and_default_to_float() {
    // A manifest written before quantisation existed reads as float.
    let old: IndexConfig = serde_json::from_str(r#"{"growing_capacity":100}"#).unwrap();
    assert_eq!(old.quantization, Quantization::None);
    assert_eq!("int8".parse::<Quantization>().unwrap(), Quantization::Int8);
    for q in [
        Quantization::None,
        Quantization::Int8,
        Quantization::Int8Residual,
    ] {
        assert_eq!(q.name().parse::<Quantization>().unwrap(), q);
        let json = serde_json::to_string(&q).unwrap();
        assert_eq!(json, format!("\"{}\"", q.name()), "stored as it is named");
    }
    assert!("int4".parse::<Quantization>().is_err());
}

mod maintenance;
mod persistence;
