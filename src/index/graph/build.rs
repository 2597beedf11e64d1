//! Building a graph: HNSW insertion, in parallel, straight into the layout
//! that [`search`](super::search) walks.
//!
//! Each point draws its top layer (`⌊−ln U / ln M⌋`, as in the HNSW paper and
//! hnswlib), and the points are put in order of their top layer, highest
//! first, so that every layer is a prefix of the points and point 0 is the
//! entry (the layout [`Graph`] keeps). Inserting a point is the paper's
//! algorithm 1: a greedy walk down to its top layer, then on each of its
//! layers a search of breadth `ef_construction`, the neighbours chosen among
//! what it found ([`NeighborSelection`]), and links back from each neighbour,
//! the neighbour's list pruned by the same rule when it is full.
//!
//! Threads insert points concurrently, as hnswlib does: the links are atomic
//! slots, read without a lock by the searches (a list being rewritten may be
//! seen half old, half new, which a search tolerates), and each node's list is
//! rewritten under that node's own spin lock. Threads take points from a
//! shared counter in small blocks, so the graph grows in order whatever the
//! thread count. A build on one thread gives the same graph every time for a
//! seed; on several, the graph depends on the timing, its quality does not.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering::Relaxed};

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use super::nodes::{Nodes, SharedNodes};
use super::search::{prefetch, prefetching};
use super::visited::Visited;
use super::{BuildParams, Graph, INVALID, M_RANGE, Scored, Vectors};
use crate::index::config::NeighborSelection;
use crate::index::distance;

/// A build of up to this many points runs on one thread, so that a small
/// gallery's graph is the same every time for a seed; a larger one starts
/// with at most this many before the other threads join, since the first
/// few hundred shape the upper layers.
const SERIAL_PREFIX: usize = 1024;

/// The points inserted on one thread before the others join. Past
/// [`SERIAL_PREFIX`] points, no more than a quarter of one thread's share:
/// a fixed prefix is the serial part that bounds a small build's speed-up
/// (1,024 of 5,355 points capped 16 threads at 4× one thread's speed).
fn serial_prefix(n: usize, threads: usize) -> usize {
    if n <= SERIAL_PREFIX {
        return n;
    }
    SERIAL_PREFIX.min(n / (4 * threads.max(1))).max(1)
}

/// Points a thread takes from the shared counter at a time.
const BLOCK: usize = 16;
/// Layers above 0 a point may have (a million points at M 16 reach about 5).
const MAX_LEVEL: usize = 16;

/// Builds the graph over `data` (`ids.len() × dim` unit vectors) on rayon's
/// current pool. The vectors are put in the graph's order and then into
/// layer 0's blocks where they are, so the build holds no second copy of them.
pub(super) fn build(mut ids: Vec<u64>, mut data: Vec<f32>, dim: usize, p: &BuildParams) -> Graph {
    let levels = draw_levels(ids.len(), p.m, p.seed);
    let mut order: Vec<u32> = (0..ids.len() as u32).collect();
    order.sort_by_key(|&i| Reverse(levels[i as usize]));
    let top = order.first().map_or(0, |&row| levels[row as usize]);
    // Layer l holds the points whose level is at least l: a prefix.
    let counts: Vec<usize> = (1..=top)
        .map(|l| order.partition_point(|&row| levels[row as usize] >= l))
        .collect();
    permute_rows(&mut data, &mut ids, dim, &order);
    let mut nodes = Nodes::from_vectors(data, dim, 2 * p.m);
    let upper = counts.iter().map(|&count| Layer::new(count, p.m)).collect();
    let builder = Builder::new(p, nodes.shared(), upper);
    builder.insert_all(ids.len());
    let upper = builder.upper.into_iter().map(Layer::into_links).collect();
    Graph {
        dim,
        m: p.m,
        ef_search: p.ef_search.max(1),
        vectors: Vectors::F32,
        ids,
        nodes,
        upper,
    }
}

/// Inserts `data` (`ids.len() × dim` unit vectors) into a built float graph,
/// keeping its `M`.
///
/// The new points draw their layers as a build would, capped at the graph's
/// top layer (so its entry stays), and the points are merged by layer (old
/// ones first within a layer), which keeps every layer a prefix: the old
/// links are renumbered into the new order, then the new points are inserted
/// on every thread as in a build. Their neighbours' lists are pruned as in a
/// build, so the result is the graph a build would have grown had the new
/// points come last.
pub(super) fn extend(graph: &mut Graph, ids: Vec<u64>, data: Vec<f32>, p: &BuildParams) {
    debug_assert!(
        !graph.is_quantized(),
        "Graph::extend refuses quantised graphs"
    );
    let (dim, m, old_n, top) = (graph.dim, graph.m, graph.ids.len(), graph.upper.len());
    if ids.is_empty() {
        return;
    }
    let old_level = |i: usize| graph.upper.iter().take_while(|l| i < l.len() / m).count();
    let new_levels: Vec<usize> = draw_levels(ids.len(), m, p.seed)
        .into_iter()
        .map(|l| l.min(top))
        .collect();
    // Old points are already in order of level; the new ones are sorted.
    let mut new: Vec<u32> = (0..ids.len() as u32).collect();
    new.sort_by_key(|&j| Reverse(new_levels[j as usize]));
    let level_of = |p: u32| {
        let p = p as usize;
        if p < old_n {
            old_level(p)
        } else {
            new_levels[p - old_n]
        }
    };
    let mut order = Vec::with_capacity(old_n + ids.len());
    let (mut a, mut b) = (0usize, 0usize);
    while a < old_n || b < new.len() {
        let take_old = b == new.len() || (a < old_n && old_level(a) >= new_levels[new[b] as usize]);
        if take_old {
            order.push(a as u32);
            a += 1;
        } else {
            order.push(old_n as u32 + new[b]);
            b += 1;
        }
    }
    let mut position = vec![0u32; order.len()];
    for (pos, &p) in order.iter().enumerate() {
        position[p as usize] = pos as u32;
    }
    let counts: Vec<usize> = (1..=top)
        .map(|l| order.partition_point(|&p| level_of(p) >= l))
        .collect();
    let renumber = |links: &[u32], width: usize, nodes: usize| {
        let mut out = vec![INVALID; nodes * width];
        for (pos, &p) in order.iter().take(nodes).enumerate() {
            if (p as usize) < old_n {
                let from = &links[p as usize * width..][..width];
                for (slot, &q) in out[pos * width..][..width].iter_mut().zip(from) {
                    *slot = if q == INVALID {
                        INVALID
                    } else {
                        position[q as usize]
                    };
                }
            }
        }
        out
    };
    let upper = graph
        .upper
        .iter()
        .enumerate()
        .map(|(l, links)| Layer::from_links(renumber(links, m, counts[l]), m))
        .collect();
    // Layer 0 is renumbered where it is: the new points' blocks are added
    // after the old ones, every old link is mapped to its new position, and
    // the blocks are then put in the new order.
    let nodes = &mut graph.nodes;
    nodes.grow(order.len());
    for (j, v) in data.chunks_exact(dim).enumerate() {
        nodes.vector_mut(old_n + j).copy_from_slice(v);
    }
    drop(data);
    for node in 0..old_n {
        for slot in nodes.links_mut(node) {
            if *slot != INVALID {
                *slot = position[*slot as usize];
            }
        }
    }
    let mut all_ids = std::mem::take(&mut graph.ids);
    all_ids.extend_from_slice(&ids);
    nodes.permute(&mut all_ids, &order);
    let inserted: Vec<u32> = order
        .iter()
        .enumerate()
        .filter(|&(_, &p)| p as usize >= old_n)
        .map(|(pos, _)| pos as u32)
        .collect();
    let params = BuildParams { m, ..*p };
    let builder = Builder::new(&params, nodes.shared(), upper);
    builder.insert_parallel(&inserted);
    graph.upper = builder.upper.into_iter().map(Layer::into_links).collect();
    graph.ids = all_ids;
}

/// Reorders rows of `dim` values in place so that row `i` becomes what row
/// `order[i]` was: each cycle of the permutation is followed with one row
/// held aside.
pub(super) fn permute_rows<T: Copy + Default>(
    data: &mut [T],
    ids: &mut [u64],
    dim: usize,
    order: &[u32],
) {
    let mut done = vec![false; order.len()];
    let mut held = vec![T::default(); dim];
    for start in 0..order.len() {
        if done[start] {
            continue;
        }
        held.copy_from_slice(&data[start * dim..][..dim]);
        let held_id = ids[start];
        let mut i = start;
        loop {
            done[i] = true;
            let j = order[i] as usize;
            if j == start {
                data[i * dim..][..dim].copy_from_slice(&held);
                ids[i] = held_id;
                break;
            }
            data.copy_within(j * dim..(j + 1) * dim, i * dim);
            ids[i] = ids[j];
            i = j;
        }
    }
}

/// Each point's top layer, seeded.
fn draw_levels(n: usize, m: usize, seed: u64) -> Vec<usize> {
    let mut rng = SmallRng::seed_from_u64(seed);
    let scale = 1.0 / (m.max(2) as f64).ln();
    (0..n)
        .map(|_| {
            // In (0, 1]: ln never sees 0.
            let u = 1.0 - rng.random::<f64>();
            ((-u.ln() * scale) as usize).min(MAX_LEVEL)
        })
        .collect()
}

/// One layer's links while building: `width` atomic slots per node, a list
/// ending at the first [`INVALID`].
struct Layer {
    width: usize,
    slots: Vec<AtomicU32>,
}

impl Layer {
    fn new(nodes: usize, width: usize) -> Layer {
        Layer {
            width,
            slots: (0..nodes * width)
                .map(|_| AtomicU32::new(INVALID))
                .collect(),
        }
    }

    #[inline(always)]
    fn list(&self, node: u32) -> &[AtomicU32] {
        &self.slots[node as usize * self.width..][..self.width]
    }

    fn from_links(links: Vec<u32>, width: usize) -> Layer {
        Layer {
            width,
            slots: links.into_iter().map(AtomicU32::new).collect(),
        }
    }

    fn into_links(self) -> Vec<u32> {
        self.slots.into_iter().map(AtomicU32::into_inner).collect()
    }
}

/// A thread's scratch space, reused by every point it inserts.
#[derive(Default)]
struct Scratch {
    visited: Visited,
    candidates: BinaryHeap<Scored<u32>>,
    results: BinaryHeap<Reverse<Scored<u32>>>,
    /// What a layer search found, best first.
    found: Vec<Scored<u32>>,
    chosen: Vec<Scored<u32>>,
    pruned: Vec<Scored<u32>>,
    /// A full neighbour list and the new link, when one is pruned, and what
    /// of it is kept.
    rewrite: Vec<Scored<u32>>,
    kept: Vec<Scored<u32>>,
}

struct Builder<'a> {
    m: usize,
    ef_construction: usize,
    neighbors: NeighborSelection,
    /// Layer 0 (`2M` slots a node) with the vectors.
    zero: SharedNodes<'a>,
    /// Layers 1 and up (`M` slots a node).
    upper: Vec<Layer>,
    locks: Vec<AtomicBool>,
}

impl<'a> Builder<'a> {
    /// Over layers that may already hold links (see [`extend`]).
    fn new(p: &BuildParams, zero: SharedNodes<'a>, upper: Vec<Layer>) -> Self {
        let n = zero.len();
        Builder {
            m: p.m,
            ef_construction: p.ef_construction.max(1),
            neighbors: p.neighbors,
            zero,
            upper,
            locks: (0..n).map(|_| AtomicBool::new(false)).collect(),
        }
    }

    /// `node`'s link slots on `layer`.
    #[inline(always)]
    fn list(&self, layer: usize, node: u32) -> &[AtomicU32] {
        match layer {
            0 => self.zero.links(node),
            _ => self.upper[layer - 1].list(node),
        }
    }

    /// Inserts points 1 to `n - 1` (point 0 is the entry).
    fn insert_all(&self, n: usize) {
        let serial = serial_prefix(n, rayon::current_num_threads());
        let mut scratch = Scratch::default();
        for point in 1..serial {
            self.insert(point as u32, &mut scratch);
        }
        self.insert_parallel(&(serial as u32..n as u32).collect::<Vec<_>>());
    }

    /// Inserts `points`, in about that order, on every thread of rayon's pool.
    fn insert_parallel(&self, points: &[u32]) {
        let threads = rayon::current_num_threads();
        if threads <= 1 || points.len() <= BLOCK {
            let mut scratch = Scratch::default();
            for &point in points {
                self.insert(point, &mut scratch);
            }
            return;
        }
        let next = AtomicUsize::new(0);
        rayon::scope(|s| {
            for _ in 0..threads {
                s.spawn(|_| {
                    let mut scratch = Scratch::default();
                    loop {
                        let start = next.fetch_add(BLOCK, Relaxed);
                        let Some(block) = points.get(start..(start + BLOCK).min(points.len()))
                        else {
                            break;
                        };
                        for &point in block {
                            self.insert(point, &mut scratch);
                        }
                    }
                });
            }
        });
    }

    #[inline(always)]
    fn vector(&self, p: u32) -> &[f32] {
        self.zero.vector(p)
    }

    #[inline(always)]
    fn score(&self, a: &[f32], p: u32) -> f32 {
        distance::dot(a, self.vector(p))
    }

    /// The number of layers above 0 that `point` is on.
    fn level(&self, point: u32) -> usize {
        self.upper
            .iter()
            .take_while(|l| (point as usize) < l.slots.len() / l.width)
            .count()
    }

    /// Inserts `point`, whose vector is already in place, into every layer it
    /// is on.
    fn insert(&self, point: u32, scratch: &mut Scratch) {
        let q = self.vector(point);
        let level = self.level(point);
        let mut entry = Scored {
            score: self.score(q, 0),
            id: 0,
        };
        for layer in (level + 1..=self.upper.len()).rev() {
            entry = self.greedy(layer, q, entry);
        }
        for layer in (0..=level.min(self.upper.len())).rev() {
            self.search_layer(layer, q, entry, point, scratch);
            let Some(&best) = scratch.found.first() else {
                continue;
            };
            let Scratch {
                found,
                chosen,
                pruned,
                rewrite,
                kept,
                ..
            } = scratch;
            self.select(found, self.m, chosen, pruned);
            self.write_list(layer, point, chosen);
            for &c in chosen.iter() {
                self.link_back(layer, c, point, rewrite, kept, pruned);
            }
            entry = best;
        }
    }

    /// Greedy descent on one upper layer: the neighbour most similar to `q`,
    /// until none is better.
    fn greedy(&self, layer: usize, q: &[f32], mut entry: Scored<u32>) -> Scored<u32> {
        loop {
            let mut moved = false;
            for slot in self.list(layer, entry.id) {
                let p = slot.load(Relaxed);
                if p == INVALID {
                    break;
                }
                let score = self.score(q, p);
                if score > entry.score {
                    entry = Scored { score, id: p };
                    moved = true;
                }
            }
            if !moved {
                return entry;
            }
        }
    }

    /// The HNSW paper's layer search (algorithm 2) of breadth
    /// `ef_construction` from `entry`; leaves what it found, best first and
    /// without `point` itself, in `scratch.found`.
    fn search_layer(
        &self,
        layer: usize,
        q: &[f32],
        entry: Scored<u32>,
        point: u32,
        scratch: &mut Scratch,
    ) {
        let ef = self.ef_construction;
        let Scratch {
            visited,
            candidates,
            results,
            found,
            ..
        } = scratch;
        visited.begin(self.locks.len());
        candidates.clear();
        results.clear();
        visited.insert(entry.id);
        visited.insert(point);
        candidates.push(entry);
        results.push(Reverse(entry));
        let mut fresh = [0u32; 2 * *M_RANGE.end()];
        while let Some(c) = candidates.pop() {
            let worst = results.peek().map_or(f32::NEG_INFINITY, |r| r.0.score);
            if results.len() >= ef && c.score < worst {
                break;
            }
            let mut count = 0;
            for slot in self.list(layer, c.id) {
                let p = slot.load(Relaxed);
                if p == INVALID {
                    break;
                }
                if visited.insert(p) {
                    fresh[count] = p;
                    count += 1;
                }
            }
            for p in prefetching(&fresh[..count], |p| prefetch(self.vector(p))) {
                let score = self.score(q, p);
                let worst = results.peek().map_or(f32::NEG_INFINITY, |r| r.0.score);
                if results.len() < ef || score > worst {
                    let s = Scored { score, id: p };
                    candidates.push(s);
                    results.push(Reverse(s));
                    if results.len() > ef {
                        results.pop();
                    }
                }
            }
        }
        found.clear();
        found.extend(results.drain().map(|Reverse(s)| s));
        found.sort_unstable_by(|a, b| b.cmp(a));
    }

    /// Chooses at most `cap` neighbours among `candidates` (best first, each
    /// scored against the node being linked) into `chosen`.
    ///
    /// The diversity rule is hnswlib's: a candidate is kept only when it is
    /// more similar to the node than to every neighbour already kept, so the
    /// links point in different directions instead of all into the nearest
    /// cluster. Fewer candidates than `cap` are all kept.
    fn select(
        &self,
        candidates: &[Scored<u32>],
        cap: usize,
        chosen: &mut Vec<Scored<u32>>,
        pruned: &mut Vec<Scored<u32>>,
    ) {
        chosen.clear();
        pruned.clear();
        if candidates.len() <= cap || self.neighbors == NeighborSelection::Nearest {
            chosen.extend(candidates.iter().take(cap));
            return;
        }
        for &c in candidates {
            if chosen.len() >= cap {
                break;
            }
            let v = self.vector(c.id);
            if chosen.iter().all(|r| self.score(v, r.id) <= c.score) {
                chosen.push(c);
            } else {
                pruned.push(c);
            }
        }
        if self.neighbors == NeighborSelection::DiverseFill {
            let room = cap - chosen.len();
            chosen.extend(pruned.iter().take(room));
        }
    }

    /// Writes `point`'s own list on `layer`.
    fn write_list(&self, layer: usize, point: u32, chosen: &[Scored<u32>]) {
        let _guard = self.lock(point);
        let list = self.list(layer, point);
        for (i, slot) in list.iter().enumerate() {
            slot.store(chosen.get(i).map_or(INVALID, |s| s.id), Relaxed);
        }
    }

    /// Adds `point` to `c`'s list on `layer` (`c.score` is their similarity);
    /// a full list is pruned to its width by [`Builder::select`].
    fn link_back(
        &self,
        layer: usize,
        c: Scored<u32>,
        point: u32,
        rewrite: &mut Vec<Scored<u32>>,
        kept: &mut Vec<Scored<u32>>,
        pruned: &mut Vec<Scored<u32>>,
    ) {
        let list = self.list(layer, c.id);
        let _guard = self.lock(c.id);
        if let Some(free) = list.iter().position(|s| s.load(Relaxed) == INVALID) {
            list[free].store(point, Relaxed);
            return;
        }
        let v = self.vector(c.id);
        rewrite.clear();
        rewrite.extend(list.iter().map(|s| {
            let id = s.load(Relaxed);
            Scored {
                score: self.score(v, id),
                id,
            }
        }));
        rewrite.push(Scored {
            score: c.score,
            id: point,
        });
        rewrite.sort_unstable_by(|a, b| b.cmp(a));
        self.select(rewrite, list.len(), kept, pruned);
        for (i, slot) in list.iter().enumerate() {
            slot.store(kept.get(i).map_or(INVALID, |s| s.id), Relaxed);
        }
    }

    /// Takes `node`'s spin lock until the guard drops.
    fn lock(&self, node: u32) -> NodeGuard<'_> {
        let lock = &self.locks[node as usize];
        let mut spins = 0u32;
        while lock
            .compare_exchange_weak(false, true, std::sync::atomic::Ordering::Acquire, Relaxed)
            .is_err()
        {
            spins += 1;
            if spins.is_multiple_of(64) {
                std::thread::yield_now();
            } else {
                std::hint::spin_loop();
            }
        }
        NodeGuard(lock)
    }
}

struct NodeGuard<'a>(&'a AtomicBool);

impl Drop for NodeGuard<'_> {
    fn drop(&mut self) {
        self.0.store(false, std::sync::atomic::Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_are_permuted_in_place() {
        let dim = 2;
        let mut data: Vec<f32> = (0..12).map(|x| x as f32).collect();
        let mut ids: Vec<u64> = (0..6).map(|i| 100 + i).collect();
        // Two cycles (0 3 5) (1 4) and a fixed point 2.
        let order = [3u32, 4, 2, 5, 1, 0];
        permute_rows(&mut data, &mut ids, dim, &order);
        for (i, &row) in order.iter().enumerate() {
            assert_eq!(ids[i], 100 + row as u64);
            assert_eq!(
                &data[i * dim..][..dim],
                &[2.0 * row as f32, 2.0 * row as f32 + 1.0]
            );
        }
    }

    #[test]
    fn levels_thin_out_by_about_m() {
        let levels = draw_levels(100_000, 16, 3);
        let at_least = |l: usize| levels.iter().filter(|&&x| x >= l).count();
        let (one, two) = (at_least(1), at_least(2));
        assert!((5_000..7_500).contains(&one), "{one} on layer 1 of 100,000");
        assert!((250..550).contains(&two), "{two} on layer 2");
        assert_eq!(levels, draw_levels(100_000, 16, 3), "seeded");
    }
}
