use super::*;
use crate::index::test_data::unit_vectors;

pub(super) fn params(ef_search: usize) -> BuildParams {
    BuildParams {
        ef_construction: 100,
        ef_search,
        heuristic: Some(Heuristic::default()),
        seed: 9,
    }
}

fn exact(data: &[f32], dim: usize, q: &[f32], k: usize) -> Vec<u64> {
    let mut all: Vec<(f32, u64)> = data
        .chunks_exact(dim)
        .enumerate()
        .map(|(i, v)| (distance::dot(q, v), i as u64))
        .collect();
    all.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    all.into_iter().take(k).map(|(_, id)| id).collect()
}

#[test]
fn out_of_range_finds_the_first_bad_link_and_allows_empty_slots() {
    assert_eq!(out_of_range(&[], 0), None);
    assert_eq!(out_of_range(&[INVALID, INVALID], 0), None);
    assert_eq!(out_of_range(&[0, 4, INVALID, 3], 5), None);
    assert_eq!(out_of_range(&[0, 4, INVALID, 5, 9], 5), Some(3));
    assert_eq!(out_of_range(&[INVALID - 1], 5), Some(0));
    assert_eq!(out_of_range(&[0], 0), Some(0));
}

#[test]
fn search_recall_rises_with_ef_and_every_point_finds_itself() {
    let (n, dim) = (1200, 16);
    let data = unit_vectors(n, dim, 5);
    let ids: Vec<u64> = (0..n as u64).collect();
    let graph = Graph::build(&ids, &data, dim, &params(64)).unwrap();
    let mut seen = 0;
    // Point order is the graph's, but every (id, vector) pair survived.
    graph.for_each(|id, v| {
        let start = id as usize * dim;
        assert_eq!(v, &data[start..start + dim]);
        seen += 1;
    });
    assert_eq!(seen, n);
    let queries = unit_vectors(100, dim, 6);
    let recall = |ef: usize| {
        let mut found = Vec::new();
        let mut hit = 0;
        for q in queries.chunks_exact(dim) {
            graph.search(q, ef, &mut found);
            assert!(found.len() <= ef.max(1));
            assert!(found.windows(2).all(|w| w[0].0 >= w[1].0), "best first");
            let truth = exact(&data, dim, q, 10);
            hit += found
                .iter()
                .take(10)
                .filter(|(_, id)| truth.contains(id))
                .count();
        }
        hit as f64 / 1000.0
    };
    let (low, high) = (recall(10), recall(200));
    assert!(high > 0.97, "recall@10 at ef 200: {high}");
    assert!(high >= low, "ef 200 {high} < ef 10 {low}");
    let mut found = Vec::new();
    for (i, v) in data.chunks_exact(dim).enumerate().step_by(23) {
        graph.search(v, 16, &mut found);
        assert_eq!(found[0].1, i as u64);
        assert!((found[0].0 - 1.0).abs() < 1e-5);
    }
}

fn recall_at_10(graph: &Graph, data: &[f32], dim: usize, queries: &[f32], ef: usize) -> f64 {
    let mut found = Vec::new();
    let mut hit = 0;
    let nq = queries.len() / dim;
    for q in queries.chunks_exact(dim) {
        graph.search(q, ef, &mut found);
        assert!(found.windows(2).all(|w| w[0].0 >= w[1].0), "best first");
        let truth = exact(data, dim, q, 10);
        hit += found
            .iter()
            .take(10)
            .filter(|(_, id)| truth.contains(id))
            .count();
    }
    hit as f64 / (nq * 10) as f64
}

#[test]
fn quantized_graph_keeps_recall_and_scores() {
    let (n, dim) = (1500, 32);
    let data = unit_vectors(n, dim, 11);
    let ids: Vec<u64> = (0..n as u64).collect();
    let float = Graph::build(&ids, &data, dim, &params(64)).unwrap();
    let mut quant = float.clone();
    quant.quantize();
    assert!(quant.is_quantized() && !float.is_quantized());
    // Codes and scales take about a quarter of the floats' memory.
    let links = float.heap_bytes() - n * dim * 4;
    assert_eq!(quant.heap_bytes(), links + n * dim + n * 4);

    let queries = unit_vectors(100, dim, 12);
    let (rf, rq) = (
        recall_at_10(&float, &data, dim, &queries, 100),
        recall_at_10(&quant, &data, dim, &queries, 100),
    );
    assert!(rf > 0.95, "float recall {rf}");
    assert!(rq > rf - 0.03, "int8 recall {rq} against float {rf}");

    // Re-ranked scores are the float query against the codes: within the
    // rounding of the stored vectors of the exact cosine.
    let mut found = Vec::new();
    for (i, v) in data.chunks_exact(dim).enumerate().step_by(41) {
        quant.search(v, 32, &mut found);
        assert_eq!(found[0].1, i as u64, "a stored vector finds itself");
        for &(score, id) in &found {
            let want = distance::dot(v, &data[id as usize * dim..][..dim]);
            assert!((score - want).abs() < 0.01, "{score} vs {want}");
        }
    }

    // Dequantised vectors are within half a step of the originals.
    quant.for_each(|id, v| {
        let orig = &data[id as usize * dim..][..dim];
        let max = orig.iter().fold(0.0f32, |m, x| m.max(x.abs()));
        assert!(
            v.iter()
                .zip(orig)
                .all(|(a, b)| (a - b).abs() <= max / 254.0 + 1e-6)
        );
    });

    // Quantising twice changes nothing.
    let mut twice = quant.clone();
    twice.quantize();
    assert_eq!(twice, quant);
}

#[test]
fn tiny_and_empty_graphs() {
    let dim = 4;
    let empty = Graph::build(&[], &[], dim, &params(8)).unwrap();
    let mut found = vec![(0.0, 0)];
    empty.search(&[1.0, 0.0, 0.0, 0.0], 8, &mut found);
    assert!(found.is_empty());
    let data = unit_vectors(3, dim, 1);
    let g = Graph::build(&[10, 20, 30], &data, dim, &params(8)).unwrap();
    g.search(&data[4..8], 8, &mut found);
    assert_eq!(found.len(), 3);
    assert_eq!(found[0].1, 20);
    assert!(Graph::build(&[1, 2], &data, dim, &params(8)).is_err());
}
