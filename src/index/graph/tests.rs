use super::*;
use crate::index::test_data::unit_vectors;

/// The parameters of the graphs the tests build: `M` 32, so that the legacy
/// layouts (which have no other) can write them.
pub(super) fn params(ef_search: usize) -> BuildParams {
    BuildParams {
        m: LEGACY_M,
        ef_construction: 100,
        ef_search,
        neighbors: NeighborSelection::Diverse,
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
    let graph = Graph::build(ids.clone(), data.clone(), dim, &params(64)).unwrap();
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
    let float = Graph::build(ids.clone(), data.clone(), dim, &params(64)).unwrap();
    let mut quant = float.clone();
    quant.quantize(Quantization::Int8).unwrap();
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
    twice.quantize(Quantization::Int8).unwrap();
    assert_eq!(twice, quant);
}

#[test]
fn residual_codes_give_the_float_graphs_answers_at_the_int8_walk() {
    let (n, dim) = (1500, 32);
    let data = unit_vectors(n, dim, 21);
    let ids: Vec<u64> = (0..n as u64).collect();
    let float = Graph::build(ids, data.clone(), dim, &params(64)).unwrap();
    let mut fine = float.clone();
    fine.quantize(Quantization::Int8Residual).unwrap();
    assert_eq!(fine.quantization(), Quantization::Int8Residual);
    // A residual code a value on top of int8's codes and scales.
    let links = float.heap_bytes() - n * dim * 4;
    assert_eq!(fine.heap_bytes(), links + 2 * n * dim + n * 4);

    let queries = unit_vectors(100, dim, 22);
    let rf = recall_at_10(&float, &data, dim, &queries, 100);
    let rr = recall_at_10(&fine, &data, dim, &queries, 100);
    assert!(
        rr >= rf - 0.005,
        "int8-residual recall {rr} against float {rf}"
    );
    let (mut want, mut got) = (Vec::new(), Vec::new());
    for q in queries.chunks_exact(dim) {
        float.search(q, 100, &mut want);
        fine.search(q, 100, &mut got);
        // The walk is int8's, so the candidate sets may differ a little; the
        // scores of the points both found are the float ones.
        for &(score, id) in &got {
            let exact = distance::dot(q, &data[id as usize * dim..][..dim]);
            assert!((score - exact).abs() < 2e-4, "{score} vs {exact}");
        }
    }

    // Dropping the residual gives the int8 graph; the way back is refused.
    let mut coarse = fine.clone();
    coarse.quantize(Quantization::Int8).unwrap();
    let mut direct = float.clone();
    direct.quantize(Quantization::Int8).unwrap();
    assert_eq!(coarse, direct);
    let err = coarse.quantize(Quantization::Int8Residual).unwrap_err();
    assert!(err.contains("int8 cannot become int8-residual"), "{err}");
    assert!(fine.quantize(Quantization::None).is_err());
    assert_eq!(
        coarse, direct,
        "a refused change leaves the graph as it was"
    );
}

#[test]
fn tiny_and_empty_graphs() {
    let dim = 4;
    let empty = Graph::build(vec![], vec![], dim, &params(8)).unwrap();
    let mut found = vec![(0.0, 0)];
    empty.search(&[1.0, 0.0, 0.0, 0.0], 8, &mut found);
    assert!(found.is_empty());
    let data = unit_vectors(3, dim, 1);
    let g = Graph::build(vec![10, 20, 30], data.clone(), dim, &params(8)).unwrap();
    g.search(&data[4..8], 8, &mut found);
    assert_eq!(found.len(), 3);
    assert_eq!(found[0].1, 20);
    assert!(Graph::build(vec![1, 2], data, dim, &params(8)).is_err());
}

#[test]
fn builds_past_the_serial_prefix_link_every_point_on_many_threads() {
    // 1,025 points on 16 threads: 16 on one thread, then all 16 at once.
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(16)
        .build()
        .unwrap();
    let (n, dim) = (1025, 8);
    let data = unit_vectors(n, dim, 3);
    let ids: Vec<u64> = (0..n as u64).collect();
    let g = pool.install(|| Graph::build(ids, data.clone(), dim, &params(16)).unwrap());
    assert_well_formed(&g);
    let mut found = Vec::new();
    let mut linked = 0;
    for (i, q) in data.chunks_exact(dim).enumerate() {
        g.search(q, 64, &mut found);
        linked += usize::from(found[0].1 == i as u64);
    }
    assert!(linked >= n - 2, "{linked} of {n} points find themselves");
}

#[test]
fn small_builds_are_the_same_on_any_number_of_threads() {
    let (n, dim) = (1024, 8);
    let data = unit_vectors(n, dim, 4);
    let ids: Vec<u64> = (0..n as u64).collect();
    let on = |threads| {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        pool.install(|| Graph::build(ids.clone(), data.clone(), dim, &params(16)).unwrap())
    };
    assert_eq!(on(1), on(8));
}

/// Clustered unit vectors, like embeddings of classes: `n / per` centres, each
/// with `per` members around it.
fn clustered(n: usize, dim: usize, per: usize, seed: u64) -> Vec<f32> {
    let count = n.div_ceil(per);
    let centres = unit_vectors(count, dim, seed);
    let noise = unit_vectors(n, dim, seed + 1);
    let mut out = Vec::with_capacity(n * dim);
    for i in 0..n {
        let c = &centres[(i % count) * dim..][..dim];
        let e = &noise[i * dim..][..dim];
        let v: Vec<f32> = c.iter().zip(e).map(|(a, b)| a + 0.6 * b).collect();
        let norm = distance::norm_squared(&v).sqrt();
        out.extend(v.iter().map(|x| x / norm));
    }
    out
}

fn with(m: usize, neighbors: NeighborSelection) -> BuildParams {
    BuildParams {
        m,
        neighbors,
        ..params(64)
    }
}

/// Every list ends at its first empty slot, holds no point twice, never the
/// node itself, and upper layers shrink.
fn assert_well_formed(g: &Graph) {
    let zero = g.nodes.flat_links();
    let layers = std::iter::once((&zero, 2 * g.m)).chain(g.upper.iter().map(|l| (l, g.m)));
    for (links, width) in layers {
        for (node, list) in links.chunks_exact(width).enumerate() {
            let len = list.iter().position(|&p| p == INVALID).unwrap_or(width);
            assert!(
                list[len..].iter().all(|&p| p == INVALID),
                "node {node}: a gap"
            );
            let mut seen = list[..len].to_vec();
            assert!(
                !seen.contains(&(node as u32)),
                "node {node} links to itself"
            );
            seen.sort_unstable();
            seen.dedup();
            assert_eq!(seen.len(), len, "node {node} links a point twice");
        }
    }
    let sizes: Vec<usize> = g.upper.iter().map(|l| l.len() / g.m).collect();
    assert!(sizes.windows(2).all(|w| w[0] >= w[1]), "{sizes:?}");
}

#[test]
fn every_m_and_selection_builds_a_searchable_graph() {
    let (n, dim) = (1500, 16);
    let data = clustered(n, dim, 10, 21);
    let ids: Vec<u64> = (0..n as u64).collect();
    let queries = unit_vectors(100, dim, 22);
    for m in [4, 16, 48] {
        for neighbors in [
            NeighborSelection::Diverse,
            NeighborSelection::DiverseFill,
            NeighborSelection::Nearest,
        ] {
            let g = Graph::build(ids.clone(), data.clone(), dim, &with(m, neighbors)).unwrap();
            assert_eq!(g.m(), m);
            assert_well_formed(&g);
            // About n / M points reach layer 1.
            let layer1 = g.upper.first().map_or(0, |l| l.len() / m);
            assert!(
                layer1 > n / m / 3 && layer1 < 3 * n / m,
                "m {m}: {layer1} on layer 1"
            );
            let recall = recall_at_10(&g, &data, dim, &queries, 100);
            let floor = if m == 4 { 0.8 } else { 0.95 };
            assert!(recall > floor, "m {m} {neighbors:?}: recall {recall}");
            // Four nearest links a node cut clusters apart; the heuristic's do not.
            if m == 4 && neighbors == NeighborSelection::Nearest {
                continue;
            }
            let mut found = Vec::new();
            for (i, v) in data.chunks_exact(dim).enumerate().step_by(37) {
                g.search(v, 32, &mut found);
                assert_eq!(found[0].1, i as u64, "m {m} {neighbors:?}");
            }
        }
    }
    // The diversity rule keeps layer-0 lists shorter than filling them does.
    let links = |neighbors| {
        let g = Graph::build(ids.clone(), data.clone(), dim, &with(16, neighbors)).unwrap();
        g.nodes
            .flat_links()
            .iter()
            .filter(|&&p| p != INVALID)
            .count()
    };
    assert!(links(NeighborSelection::Diverse) < links(NeighborSelection::DiverseFill));
}

#[test]
fn m_outside_its_range_is_refused() {
    let data = unit_vectors(10, 4, 1);
    for m in [0, 1, 65] {
        let e = Graph::build(
            (0..10).collect(),
            data.clone(),
            4,
            &with(m, NeighborSelection::Diverse),
        );
        assert!(e.unwrap_err().contains("outside"), "m {m}");
    }
}

#[test]
fn one_thread_builds_the_same_graph_every_time() {
    let (n, dim) = (2500, 8);
    let data = unit_vectors(n, dim, 31);
    let ids: Vec<u64> = (0..n as u64).map(|i| i * 5).collect();
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap();
    let build =
        || pool.install(|| Graph::build(ids.clone(), data.clone(), dim, &params(64)).unwrap());
    assert_eq!(build(), build());
}

#[test]
fn threads_build_as_good_a_graph_as_one() {
    // Four threads insert concurrently from the 376th point on.
    let (n, dim) = (6000, 16);
    let data = clustered(n, dim, 20, 41);
    let ids: Vec<u64> = (0..n as u64).collect();
    let queries = unit_vectors(200, dim, 42);
    let on = |threads| {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        let p = with(16, NeighborSelection::Diverse);
        let g = pool.install(|| Graph::build(ids.clone(), data.clone(), dim, &p).unwrap());
        assert_well_formed(&g);
        recall_at_10(&g, &data, dim, &queries, 32)
    };
    let (one, four) = (on(1), on(4));
    assert!(one > 0.9, "one thread: {one}");
    assert!(four > one - 0.02, "four threads {four} against one {one}");
}

#[test]
fn recall_matches_instant_distance_on_the_same_data() {
    use super::legacy::tests::Boxed;
    // The graph builder this one replaced, at its M (32) and its default
    // selection (the heuristic, then the pruned fill the list).
    let (n, dim) = (3000, 16);
    let data = clustered(n, dim, 15, 51);
    let ids: Vec<u64> = (0..n as u64).collect();
    let queries = unit_vectors(200, dim, 52);
    let ef = 24;
    let points: Vec<Boxed> = data
        .chunks_exact(dim)
        .map(|c| Boxed(c.to_vec().into_boxed_slice()))
        .collect();
    let map = instant_distance::Builder::default()
        .ef_construction(100)
        .ef_search(ef)
        .seed(9)
        .build(points, ids.clone());
    let mut search = instant_distance::Search::default();
    let mut hit = 0;
    for q in queries.chunks_exact(dim) {
        let truth = exact(&data, dim, q, 10);
        let q = Boxed(q.to_vec().into_boxed_slice());
        hit += map
            .search(&q, &mut search)
            .take(10)
            .filter(|item| truth.contains(item.value))
            .count();
    }
    let theirs = hit as f64 / 2000.0;
    let g = Graph::build(
        ids,
        data.clone(),
        dim,
        &with(32, NeighborSelection::DiverseFill),
    )
    .unwrap();
    let ours = recall_at_10(&g, &data, dim, &queries, ef);
    assert!(
        ours >= theirs - 0.01,
        "recall@10 at ef {ef}: ours {ours}, instant-distance {theirs}"
    );
}
