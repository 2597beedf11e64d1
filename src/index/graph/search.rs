//! How a query walks a graph: greedy descent through the upper layers, then
//! the HNSW paper's layer search on layer 0, with `ef` chosen per query. The
//! heaps and the visited set live in a per-thread [`State`] that every query
//! on that thread reuses, so a search allocates nothing once its thread has
//! run one.

use std::cell::RefCell;
use std::cmp::Reverse;
use std::collections::BinaryHeap;

use super::nodes::Nodes;
use super::visited::Visited;
use super::{Graph, INVALID, M_RANGE, Scored, Vectors};
use crate::index::distance;

impl Graph {
    /// The (about) `ef` points most similar to `query`, best first, as
    /// (score, id) pairs; `query` has the graph's dimension.
    #[cfg(test)]
    pub(crate) fn search(&self, query: &[f32], ef: usize, out: &mut Vec<(f32, u64)>) {
        self.search_coded(query, &[], ef, out);
    }

    /// Like `search`, with the query's codes ([`distance::quantize_i8`]) when
    /// the caller already has them; empty, a quantised graph makes them.
    pub(crate) fn search_coded(
        &self,
        query: &[f32],
        codes: &[i8],
        ef: usize,
        out: &mut Vec<(f32, u64)>,
    ) {
        out.clear();
        if self.ids.is_empty() {
            return;
        }
        STATE.with(|cell| match cell.try_borrow_mut() {
            Ok(mut state) => self.search_with(query, codes, ef.max(1), &mut state, out),
            Err(_) => self.search_with(query, codes, ef.max(1), &mut State::default(), out),
        });
    }

    fn search_with(
        &self,
        query: &[f32],
        codes_given: &[i8],
        ef: usize,
        state: &mut State,
        out: &mut Vec<(f32, u64)>,
    ) {
        let dim = self.dim;
        match &self.vectors {
            Vectors::F32 => {
                let scorer = FloatScorer {
                    query,
                    nodes: &self.nodes,
                };
                self.walk(&scorer, ef, state);
                out.extend(
                    state
                        .results
                        .drain()
                        .map(|Reverse(s)| (s.score, self.ids[s.id as usize])),
                );
            }
            Vectors::I8 {
                codes,
                scales,
                residual,
            } => {
                let mut query_codes = std::mem::take(&mut state.query_codes);
                // The query's own scale is one positive factor on every walk
                // score: it changes no comparison, so it is left out.
                if codes_given.len() != dim {
                    query_codes.resize(dim, 0);
                    distance::quantize_i8(query, &mut query_codes);
                }
                let scorer = CodeScorer {
                    query: if codes_given.len() == dim {
                        codes_given
                    } else {
                        &query_codes
                    },
                    codes,
                    scales,
                    dim,
                };
                self.walk(&scorer, ef, state);
                out.extend(state.results.drain().map(|Reverse(s)| {
                    let p = s.id as usize;
                    let at = p * dim..(p + 1) * dim;
                    let mut dot = distance::dot_f32_i8(query, &codes[at.clone()]);
                    if let Some(residual) = residual {
                        dot +=
                            distance::dot_f32_i8(query, &residual[at]) / distance::RESIDUAL_STEPS;
                    }
                    (scales[p] * dot, self.ids[p])
                }));
                state.query_codes = query_codes;
            }
        }
        out.sort_unstable_by(|a, b| b.0.total_cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
    }

    /// Greedy descent through the upper layers, then the layer-0 search; leaves
    /// the `ef` best points in `state.results`.
    fn walk<S: Scorer>(&self, scorer: &S, ef: usize, state: &mut State) {
        let m = self.m;
        let mut entry = 0u32;
        let mut best = scorer.score(0);
        for layer in self.upper.iter().rev() {
            loop {
                let start = entry as usize * m;
                let mut moved = false;
                for &p in &layer[start..start + m] {
                    if p == INVALID {
                        break;
                    }
                    let s = scorer.score(p);
                    if s > best {
                        best = s;
                        entry = p;
                        moved = true;
                    }
                }
                if !moved {
                    break;
                }
            }
        }
        self.search_zero(scorer, ef, entry, best, state);
    }

    /// The HNSW paper's layer search (algorithm 2) on layer 0.
    fn search_zero<S: Scorer>(
        &self,
        scorer: &S,
        ef: usize,
        entry: u32,
        entry_score: f32,
        state: &mut State,
    ) {
        let State {
            visited,
            candidates,
            results,
            ..
        } = state;
        let m0 = 2 * self.m;
        visited.begin(self.ids.len());
        candidates.clear();
        results.clear();
        // Room for the candidates of a long walk up front: the heap keeps its
        // capacity between queries, so a later query that visits more than the
        // first one did must not be the one that grows it (no allocation per search).
        candidates.reserve((ef * m0).max(1024));
        results.reserve(ef + 1);
        visited.insert(entry);
        let first = Scored {
            score: entry_score,
            id: entry,
        };
        candidates.push(first);
        results.push(Reverse(first));
        let mut fresh = [0u32; 2 * *M_RANGE.end()];
        while let Some(c) = candidates.pop() {
            let worst = results.peek().map_or(f32::NEG_INFINITY, |r| r.0.score);
            if results.len() >= ef && c.score < worst {
                break;
            }
            // The next candidate's links, loaded while this one's neighbours
            // are scored (it is usually the one expanded next).
            if let Some(next) = candidates.peek() {
                prefetch(self.nodes.links(next.id as usize));
            }
            let mut count = 0;
            for &p in self.nodes.links(c.id as usize) {
                if p == INVALID {
                    break;
                }
                if visited.insert(p) {
                    fresh[count] = p;
                    count += 1;
                }
            }
            for p in prefetching(&fresh[..count], |p| scorer.prefetch(p)) {
                let score = scorer.score(p);
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
    }
}

/// How the walk scores a point against the query.
trait Scorer {
    fn score(&self, p: u32) -> f32;
    /// Hints the point's vector into the cache.
    fn prefetch(&self, p: u32);
}

/// Float vectors: the cosine similarity.
struct FloatScorer<'a> {
    query: &'a [f32],
    nodes: &'a Nodes,
}

impl Scorer for FloatScorer<'_> {
    #[inline(always)]
    fn score(&self, p: u32) -> f32 {
        distance::dot(self.query, self.nodes.vector(p as usize))
    }
    #[inline(always)]
    fn prefetch(&self, p: u32) {
        prefetch(self.nodes.vector(p as usize));
    }
}

/// Codes: the point's scale times the integer dot product with the quantised
/// query (the cosine similarity up to the query's scale, a positive constant).
struct CodeScorer<'a> {
    query: &'a [i8],
    codes: &'a [i8],
    scales: &'a [f32],
    dim: usize,
}

impl CodeScorer<'_> {
    #[inline(always)]
    fn code(&self, p: u32) -> &[i8] {
        let start = p as usize * self.dim;
        &self.codes[start..start + self.dim]
    }
}

impl Scorer for CodeScorer<'_> {
    #[inline(always)]
    fn score(&self, p: u32) -> f32 {
        self.scales[p as usize] * distance::dot_i8(self.query, self.code(p)) as f32
    }
    #[inline(always)]
    fn prefetch(&self, p: u32) {
        // The scale lives in another array: a second line to fetch.
        prefetch(self.code(p));
        prefetch(std::slice::from_ref(&self.scales[p as usize]));
    }
}

/// How many neighbours ahead of the one being scored have their vectors
/// prefetched. Prefetching all of a node's (up to 2M) neighbours at once stalls
/// on the core's line-fill buffers once the graph outgrows the cache; a few
/// ahead keeps as many loads in flight while the distances run (bench/README.md,
/// "Where the query time goes", has the measurements; 8 ahead measured the same).
const PREFETCH_AHEAD: usize = 4;

/// `ids` in order, each handed out after `fetch` was called on the one
/// [`PREFETCH_AHEAD`] places further on (the first ones up front), so their
/// vectors are on their way while the earlier ones are scored.
#[inline(always)]
pub(super) fn prefetching<'a>(
    ids: &'a [u32],
    fetch: impl Fn(u32) + 'a,
) -> impl Iterator<Item = u32> + 'a {
    for &p in ids.iter().take(PREFETCH_AHEAD) {
        fetch(p);
    }
    ids.iter().enumerate().map(move |(i, &p)| {
        if let Some(&ahead) = ids.get(i + PREFETCH_AHEAD) {
            fetch(ahead);
        }
        p
    })
}

/// Issues a prefetch of `v`'s first cache lines (a hint: never faults).
#[inline(always)]
pub(super) fn prefetch<T>(v: &[T]) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
        // A 128-d float vector spans eight 64-byte lines, all of which the
        // distance reads: fetching only the first four left the dot product
        // waiting on the rest once the vectors outgrow the cache. Codes span two.
        let bytes = std::mem::size_of_val(v);
        let start = v.as_ptr() as *const i8;
        for line in (0..bytes.min(512)).step_by(64) {
            // SAFETY: prefetching is a hint and cannot fault; the address is
            // inside `v` anyway.
            #[allow(unused_unsafe)]
            unsafe {
                _mm_prefetch::<_MM_HINT_T0>(start.wrapping_add(line));
            }
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = v;
}

/// A thread's search state, reused by its queries.
#[derive(Default)]
struct State {
    visited: Visited,
    candidates: BinaryHeap<Scored<u32>>,
    results: BinaryHeap<Reverse<Scored<u32>>>,
    /// The query's codes, for a quantised graph.
    query_codes: Vec<i8>,
}

thread_local! {
    static STATE: RefCell<State> = RefCell::new(State::default());
}
