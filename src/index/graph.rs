//! A sealed HNSW graph, laid out for search.
//!
//! instant-distance builds the graph (its construction, neighbour heuristic and
//! layer assignment are what the design asks for), but its own search is slow
//! at scale: every point is a separate allocation (a pointer chase and a cache
//! miss per distance), the result list is a sorted `Vec` with an O(ef) insert
//! per improvement, and `ef` is fixed when the graph is built. So once a graph
//! is built (or read back) it moves into [`Graph`]:
//!
//! - the vectors in one contiguous `f32` array, in the graph's point order, so a
//!   node's vector is one offset away and can be prefetched;
//! - layer 0 as one `u32` array of `2M` slots per node, upper layers as `M`
//!   slots per node (`u32::MAX` ends a node's list), exactly instant-distance's
//!   links;
//! - a search with two binary heaps and a generation-stamped visited array
//!   reused per thread, and `ef` chosen per query.
//!
//! A graph can be **quantised** ([`Graph::quantize`]): each vector becomes `dim`
//! `i8` codes and one `f32` scale (132 bytes instead of 512 at dimension 128).
//! The walk then scores with [`distance::dot_i8`] against the query quantised
//! the same way, and the `ef` candidates it ends with are re-ranked by the float
//! query against their codes ([`distance::dot_f32_i8`]), so the reported scores
//! carry only the stored vectors' rounding. The float vectors are not kept:
//! that is the memory saved.
//!
//! A graph is stored in the [`packed`] layout: fixed-width arrays, read at
//! memory speed. Segments written before it are still read: a float graph in
//! instant-distance's own serialized form (`HnswMap<Point, u64>` through
//! serde), a quantised one in a varint layout ([`QuantizedLayout`]). Every
//! layout is decoded in one pass that checks every reference before anything
//! searches the graph.

use std::cell::RefCell;
use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;

use instant_distance::{Builder, Heuristic};
use serde::Serialize;
use serde::ser::Serializer;
#[cfg(test)]
use serde::ser::{SerializeSeq, SerializeStruct, SerializeTuple};

use super::distance;
use crate::blob::wire::{Reader, WireError};

pub(crate) mod packed;

/// instant-distance's `M`: links per node on the upper layers (twice that on layer 0).
pub(crate) const M: usize = 32;
const M0: usize = 2 * M;
/// An empty neighbour slot; it ends the node's list.
const INVALID: u32 = u32::MAX;

/// A built HNSW graph over `n` vectors of dimension `dim`.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Graph {
    dim: usize,
    /// The `ef` searches use unless told otherwise; also stored with the graph.
    ef_search: usize,
    /// `n × dim`, point order.
    vectors: Vectors,
    /// The caller's id of each point, point order.
    ids: Vec<u64>,
    /// `n × 2M` layer-0 links.
    zero: Vec<u32>,
    /// `upper[l - 1]`: layer `l`'s links, `M` per node. Layer `l` holds the first
    /// `upper[l - 1].len() / M` points (a prefix, shrinking upwards); a search
    /// enters at point 0 of the top layer.
    upper: Vec<Vec<u32>>,
}

/// A graph's vectors, in point order.
#[derive(Clone, Debug, PartialEq)]
enum Vectors {
    /// `n × dim` floats.
    F32(Vec<f32>),
    /// `n × dim` codes and `n` scales: vector `p` ≈ `scales[p] · codes[p]`.
    I8 { codes: Vec<i8>, scales: Vec<f32> },
}

/// Build parameters.
pub(crate) struct BuildParams {
    pub ef_construction: usize,
    pub ef_search: usize,
    pub heuristic: Option<Heuristic>,
    pub seed: u64,
}

/// A point as instant-distance sees it while building: a row of the caller's
/// contiguous array. It serializes as its row number, which is how the built
/// graph's point order is read back (see [`Graph::build`]).
#[derive(Clone, Copy)]
struct Row<'a> {
    row: u32,
    v: &'a [f32],
}

impl instant_distance::Point for Row<'_> {
    fn distance(&self, other: &Self) -> f32 {
        distance::cosine_distance(self.v, other.v)
    }
}

impl Serialize for Row<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u32(self.row)
    }
}

impl Graph {
    /// Builds a graph over `data` (`ids.len() × dim`). Uses rayon's current pool.
    pub(crate) fn build(
        ids: &[u64],
        data: &[f32],
        dim: usize,
        p: &BuildParams,
    ) -> Result<Graph, String> {
        if dim == 0 || data.len() != ids.len() * dim {
            return Err(format!(
                "{} ids but {} floats (dimension {dim})",
                ids.len(),
                data.len()
            ));
        }
        if ids.len() >= INVALID as usize {
            return Err(format!("{} vectors: too many for one graph", ids.len()));
        }
        let rows: Vec<Row> = data
            .chunks_exact(dim)
            .enumerate()
            .map(|(i, v)| Row { row: i as u32, v })
            .collect();
        let map = Builder::default()
            .ef_construction(p.ef_construction)
            .ef_search(p.ef_search)
            .select_heuristic(p.heuristic)
            .seed(p.seed)
            .build(rows, ids.to_vec());
        // instant-distance keeps its graph private; its serialized form is the
        // documented way out. With rows serialized as row numbers it is small
        // (the links, about a quarter of the vectors' size) and read straight
        // into this layout.
        let bytes =
            postcard::to_allocvec(&map).map_err(|e| format!("encoding the built graph: {e}"))?;
        drop(map);
        let mut r = Reader::new(&bytes);
        let layout = MapLayout::read(&mut r, |r| r.u32_seq("points"))
            .and_then(|layout| r.finish().map(|()| layout))
            .map_err(|e| format!("reading the built graph back: {e}"))?;
        let order = &layout.points;
        let mut vectors = Vec::with_capacity(data.len());
        for &row in order {
            let start = row as usize * dim;
            let v = data
                .get(start..start + dim)
                .ok_or_else(|| format!("built graph names row {row} of {}", ids.len()))?;
            vectors.extend_from_slice(v);
        }
        Graph::from_layout(layout, dim, vectors)
    }

    /// Checks a decoded layout and assembles the graph.
    fn from_layout<P>(
        layout: MapLayout<P>,
        dim: usize,
        vectors: Vec<f32>,
    ) -> Result<Graph, String> {
        let MapLayout {
            ef_search,
            zero,
            upper,
            ids,
            ..
        } = layout;
        let n = ids.len();
        if vectors.len() != n * dim {
            return Err(format!(
                "{n} ids but {} vector values (dimension {dim})",
                vectors.len()
            ));
        }
        if let Some(pos) = vectors.iter().position(|x| !x.is_finite()) {
            return Err(format!("point {} has a non-finite value", pos / dim));
        }
        Graph::checked(dim, ef_search, Vectors::F32(vectors), ids, zero, upper)
    }

    /// Checks that every link is in range and the layers shrink upwards, and
    /// assembles the graph.
    fn checked(
        dim: usize,
        ef_search: u64,
        vectors: Vectors,
        ids: Vec<u64>,
        zero: Vec<u32>,
        layers: Vec<Vec<u32>>,
    ) -> Result<Graph, String> {
        let n = ids.len();
        if zero.len() != n * M0 {
            return Err(format!("{n} points but {} graph nodes", zero.len() / M0));
        }
        if let Some(bad) = out_of_range(&zero, n) {
            return Err(format!(
                "node {} links to point {} of {n}",
                bad / M0,
                zero[bad]
            ));
        }
        let mut below = n;
        let mut upper = Vec::with_capacity(layers.len());
        for (l, links) in layers.into_iter().enumerate() {
            let len = links.len() / M;
            if len == 0 || len * M != links.len() || len > below {
                return Err(format!(
                    "layer {} has {len} nodes (layer below has {below})",
                    l + 1
                ));
            }
            if let Some(bad) = out_of_range(&links, len) {
                return Err(format!(
                    "layer {} node {} links to point {} of {len}",
                    l + 1,
                    bad / M,
                    links[bad]
                ));
            }
            upper.push(links);
            below = len;
        }
        if n == 0 && !upper.is_empty() {
            return Err("empty graph with upper layers".into());
        }
        let ef_search = usize::try_from(ef_search)
            .ok()
            .filter(|ef| *ef >= 1)
            .ok_or_else(|| format!("bad ef_search {ef_search}"))?;
        Ok(Graph {
            dim,
            ef_search,
            vectors,
            ids,
            zero,
            upper,
        })
    }

    /// Replaces the float vectors by `i8` codes with a scale per vector (see the
    /// module documentation). A graph already quantised is left as it is.
    pub(crate) fn quantize(&mut self) {
        let Vectors::F32(data) = &self.vectors else {
            return;
        };
        let mut codes = vec![0i8; data.len()];
        let scales = data
            .chunks_exact(self.dim)
            .zip(codes.chunks_exact_mut(self.dim))
            .map(|(v, c)| distance::quantize_i8(v, c))
            .collect();
        self.vectors = Vectors::I8 { codes, scales };
    }

    pub(crate) fn is_quantized(&self) -> bool {
        matches!(self.vectors, Vectors::I8 { .. })
    }

    /// Bytes the graph holds in memory: vectors (or codes and scales), links
    /// and ids.
    pub(crate) fn heap_bytes(&self) -> usize {
        let vectors = match &self.vectors {
            Vectors::F32(data) => data.len() * 4,
            Vectors::I8 { codes, scales } => codes.len() + scales.len() * 4,
        };
        let links: usize = self.zero.len() + self.upper.iter().map(Vec::len).sum::<usize>();
        vectors + links * 4 + self.ids.len() * 8
    }

    pub(crate) fn len(&self) -> usize {
        self.ids.len()
    }

    pub(crate) fn ids(&self) -> &[u64] {
        &self.ids
    }

    pub(crate) fn ef_search(&self) -> usize {
        self.ef_search
    }

    pub(crate) fn set_ef_search(&mut self, ef: usize) {
        self.ef_search = ef.max(1);
    }

    /// Calls `f` with every (id, vector), in point order; a quantised graph's
    /// vectors are dequantised (`scale · codes`).
    pub(crate) fn for_each(&self, mut f: impl FnMut(u64, &[f32])) {
        match &self.vectors {
            Vectors::F32(data) => self
                .ids
                .iter()
                .zip(data.chunks_exact(self.dim))
                .for_each(|(&id, v)| f(id, v)),
            Vectors::I8 { codes, scales } => {
                let mut v = vec![0.0f32; self.dim];
                for ((&id, c), &scale) in self
                    .ids
                    .iter()
                    .zip(codes.chunks_exact(self.dim))
                    .zip(scales)
                {
                    distance::dequantize_i8(c, scale, &mut v);
                    f(id, &v);
                }
            }
        }
    }

    /// The (about) `ef` points most similar to `query`, best first, as
    /// (score, id) pairs; `query` has the graph's dimension.
    pub(crate) fn search(&self, query: &[f32], ef: usize, out: &mut Vec<(f32, u64)>) {
        out.clear();
        if self.ids.is_empty() {
            return;
        }
        STATE.with(|cell| match cell.try_borrow_mut() {
            Ok(mut state) => self.search_with(query, ef.max(1), &mut state, out),
            Err(_) => self.search_with(query, ef.max(1), &mut State::default(), out),
        });
    }

    fn search_with(&self, query: &[f32], ef: usize, state: &mut State, out: &mut Vec<(f32, u64)>) {
        let dim = self.dim;
        match &self.vectors {
            Vectors::F32(data) => {
                self.walk(&FloatScorer { query, data, dim }, ef, state);
                out.extend(
                    state
                        .results
                        .drain()
                        .map(|Reverse(s)| (s.score, self.ids[s.id as usize])),
                );
            }
            Vectors::I8 { codes, scales } => {
                let mut query_codes = std::mem::take(&mut state.query_codes);
                query_codes.resize(dim, 0);
                // The query's own scale is one positive factor on every walk
                // score: it changes no comparison, so it is left out.
                distance::quantize_i8(query, &mut query_codes);
                let scorer = CodeScorer {
                    query: &query_codes,
                    codes,
                    scales,
                    dim,
                };
                self.walk(&scorer, ef, state);
                out.extend(state.results.drain().map(|Reverse(s)| {
                    let p = s.id as usize;
                    let code = &codes[p * dim..(p + 1) * dim];
                    (scales[p] * distance::dot_f32_i8(query, code), self.ids[p])
                }));
                state.query_codes = query_codes;
            }
        }
        out.sort_unstable_by(|a, b| b.0.total_cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
    }

    /// Greedy descent through the upper layers, then the layer-0 search; leaves
    /// the `ef` best points in `state.results`.
    fn walk<S: Scorer>(&self, scorer: &S, ef: usize, state: &mut State) {
        let mut entry = 0u32;
        let mut best = scorer.score(0);
        for layer in self.upper.iter().rev() {
            loop {
                let start = entry as usize * M;
                let mut moved = false;
                for &p in &layer[start..start + M] {
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
        visited.begin(self.ids.len());
        candidates.clear();
        results.clear();
        visited.insert(entry);
        let first = Scored {
            score: entry_score,
            id: entry,
        };
        candidates.push(first);
        results.push(Reverse(first));
        let mut fresh = [0u32; M0];
        while let Some(c) = candidates.pop() {
            let worst = results.peek().map_or(f32::NEG_INFINITY, |r| r.0.score);
            if results.len() >= ef && c.score < worst {
                break;
            }
            // Unvisited neighbours first, their vectors prefetched, then the
            // distances: the loads overlap instead of stalling one by one.
            let start = c.id as usize * M0;
            let mut count = 0;
            for &p in &self.zero[start..start + M0] {
                if p == INVALID {
                    break;
                }
                if visited.insert(p) {
                    scorer.prefetch(p);
                    fresh[count] = p;
                    count += 1;
                }
            }
            for &p in &fresh[..count] {
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

    /// Serializes a float graph in instant-distance's `HnswMap<Point, u64>`
    /// layout (a quantised one has [`Graph::quantized_layout`]): segments were
    /// stored so before the packed layout, and the tests write them this way.
    #[cfg(test)]
    pub(crate) fn serializable(&self) -> impl Serialize + '_ {
        MapRef(self)
    }

    /// A quantised graph's serializable form as stored before the packed
    /// layout; `None` for a float graph.
    #[cfg(test)]
    pub(crate) fn quantized_layout(&self) -> Option<QuantizedLayoutRef<'_>> {
        let Vectors::I8 { codes, scales } = &self.vectors else {
            return None;
        };
        Some(QuantizedLayoutRef {
            ef_search: self.ef_search as u64,
            ids: &self.ids,
            scales,
            // i8 and u8 share a layout; postcard writes bytes as one block.
            codes: serde_bytes::ByteBuf::from(codes.iter().map(|&c| c as u8).collect::<Vec<u8>>()),
            zero: &self.zero,
            upper: &self.upper,
        })
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
    data: &'a [f32],
    dim: usize,
}

impl FloatScorer<'_> {
    #[inline(always)]
    fn vector(&self, p: u32) -> &[f32] {
        let start = p as usize * self.dim;
        &self.data[start..start + self.dim]
    }
}

impl Scorer for FloatScorer<'_> {
    #[inline(always)]
    fn score(&self, p: u32) -> f32 {
        distance::dot(self.query, self.vector(p))
    }
    #[inline(always)]
    fn prefetch(&self, p: u32) {
        prefetch(self.vector(p));
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

/// A quantised graph's serialized form: its ids, scales, codes (as bytes) and
/// links (layer 0 with `2M` slots per node, upper layers with `M`).
#[cfg(test)]
#[derive(Serialize)]
pub(crate) struct QuantizedLayoutRef<'a> {
    ef_search: u64,
    ids: &'a [u64],
    scales: &'a [f32],
    codes: serde_bytes::ByteBuf,
    zero: &'a [u32],
    upper: &'a [Vec<u32>],
}

/// A quantised graph as read back, not yet checked: [`QuantizedLayout::check`]
/// makes it a [`Graph`].
pub(crate) struct QuantizedLayout {
    ef_search: u64,
    ids: Vec<u64>,
    scales: Vec<f32>,
    codes: Vec<i8>,
    zero: Vec<u32>,
    upper: Vec<Vec<u32>>,
}

impl QuantizedLayout {
    /// Reads what [`QuantizedLayoutRef`] wrote.
    pub(crate) fn read(r: &mut Reader) -> Result<QuantizedLayout, WireError> {
        let ef_search = r.u64("ef_search")?;
        let ids = r.u64_seq("ids")?;
        let scales = r.f32_seq("scales")?;
        let codes = r.bytes("codes")?.iter().map(|&b| b as i8).collect();
        let zero = r.u32_seq("layer 0")?;
        let layers = r.len("layers", 1)?;
        let upper = (0..layers)
            .map(|_| r.u32_seq("upper layer"))
            .collect::<Result<_, _>>()?;
        Ok(QuantizedLayout {
            ef_search,
            ids,
            scales,
            codes,
            zero,
            upper,
        })
    }

    pub(crate) fn check(self, dim: usize) -> Result<Graph, String> {
        let n = self.ids.len();
        if self.scales.len() != n || self.codes.len() != n * dim {
            return Err(format!(
                "{n} ids but {} scales and {} codes (dimension {dim})",
                self.scales.len(),
                self.codes.len()
            ));
        }
        if let Some(p) = self.scales.iter().position(|s| !s.is_finite() || *s < 0.0) {
            return Err(format!("point {p} has scale {}", self.scales[p]));
        }
        let vectors = Vectors::I8 {
            codes: self.codes,
            scales: self.scales,
        };
        Graph::checked(
            dim,
            self.ef_search,
            vectors,
            self.ids,
            self.zero,
            self.upper,
        )
    }
}

/// Reads a float graph in instant-distance's layout (written by
/// [`Graph::serializable`], or by instant-distance itself) and checks it:
/// every point must have `dim` values and every reference must be in range.
pub(crate) fn read_stored(r: &mut Reader, dim: usize) -> Result<Graph, String> {
    let mut layout = MapLayout::read(r, |r| {
        let n = r.len("points", 1)?;
        let mut vectors = Vec::with_capacity(n.saturating_mul(dim).min(r.remaining() / 4));
        for p in 0..n {
            let len = r.len("point", 4)?;
            if len != dim {
                return Err(WireError::from(format!(
                    "point {p} has {len} values, expected {dim}"
                )));
            }
            r.f32s_into("point", len, &mut vectors)?;
        }
        Ok(vectors)
    })?;
    let vectors = std::mem::take(&mut layout.points);
    Graph::from_layout(layout, dim, vectors)
}

/// The position of the first link to a point at or past `n` (the empty slot
/// aside). Opening a million-point graph checks 64 million links, so the
/// common case is one pass the compiler vectorises: `p + 1` wraps the empty
/// slot (all ones) to 0, and a link is out of range iff `p + 1 > n`.
fn out_of_range(links: &[u32], n: usize) -> Option<usize> {
    let largest = links.iter().fold(0u32, |m, &p| m.max(p.wrapping_add(1)));
    if largest as usize <= n {
        return None;
    }
    links.iter().position(|&p| p != INVALID && p as usize >= n)
}

/// Issues a prefetch of `v`'s first cache lines (a hint: never faults).
#[inline(always)]
fn prefetch<T>(v: &[T]) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
        // A 128-d float vector spans eight 64-byte lines; the first four are
        // enough for the hardware prefetcher to follow the rest. Its codes span two.
        let bytes = std::mem::size_of_val(v);
        let start = v.as_ptr() as *const i8;
        for line in (0..bytes.min(256)).step_by(64) {
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

/// A score with what it scores: a graph point here, a vector id in the index's
/// top-K. Ordered by score, then lower id first on ties (greater = better), so
/// results are deterministic.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Scored<I> {
    pub score: f32,
    pub id: I,
}

impl<I: Ord> PartialEq for Scored<I> {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl<I: Ord> Eq for Scored<I> {}
impl<I: Ord> PartialOrd for Scored<I> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl<I: Ord> Ord for Scored<I> {
    fn cmp(&self, other: &Self) -> Ordering {
        self.score
            .total_cmp(&other.score)
            .then_with(|| other.id.cmp(&self.id))
    }
}

/// Points visited by the current search: a stamp per point, so starting a
/// search costs nothing (no clearing) except once every 2³² searches.
#[derive(Default)]
struct Visited {
    marks: Vec<u32>,
    stamp: u32,
}

impl Visited {
    fn begin(&mut self, n: usize) {
        if self.marks.len() < n {
            self.marks.resize(n, 0);
        }
        self.stamp = self.stamp.wrapping_add(1);
        if self.stamp == 0 {
            self.marks.fill(0);
            self.stamp = 1;
        }
    }

    /// True when `p` had not been visited.
    #[inline]
    fn insert(&mut self, p: u32) -> bool {
        let mark = &mut self.marks[p as usize];
        let new = *mark != self.stamp;
        *mark = self.stamp;
        new
    }
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

// ---- instant-distance's serialized layout ----
//
// `HnswMap { hnsw: Hnsw { ef_search: usize, points: Vec<P>, zero: Vec<[PointId; 2M]>,
// layers: Vec<Vec<[PointId; M]>> }, values: Vec<V> }`, where `PointId` is a
// `u32` newtype and a node's array is a fixed-size tuple.

#[cfg(test)]
struct MapRef<'a>(&'a Graph);

#[cfg(test)]
impl Serialize for MapRef<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let g = self.0;
        let mut map = s.serialize_struct("HnswMap", 2)?;
        map.serialize_field("hnsw", &HnswRef(g))?;
        map.serialize_field("values", &g.ids)?;
        map.end()
    }
}

#[cfg(test)]
struct HnswRef<'a>(&'a Graph);

#[cfg(test)]
impl Serialize for HnswRef<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let g = self.0;
        let mut h = s.serialize_struct("Hnsw", 4)?;
        h.serialize_field("ef_search", &g.ef_search)?;
        h.serialize_field("points", &RowsRef(g))?;
        h.serialize_field("zero", &LinksRef::<M0>(&g.zero))?;
        let layers: Vec<LinksRef<M>> = g.upper.iter().map(|l| LinksRef::<M>(l)).collect();
        h.serialize_field("layers", &layers)?;
        h.end()
    }
}

#[cfg(test)]
struct RowsRef<'a>(&'a Graph);

#[cfg(test)]
impl Serialize for RowsRef<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let g = self.0;
        let mut seq = s.serialize_seq(Some(g.len()))?;
        let mut failed = None;
        g.for_each(|_, row| {
            if failed.is_none()
                && let Err(e) = seq.serialize_element(row)
            {
                failed = Some(e);
            }
        });
        if let Some(e) = failed {
            return Err(e);
        }
        seq.end()
    }
}

#[cfg(test)]
struct LinksRef<'a, const N: usize>(&'a [u32]);

#[cfg(test)]
impl<const N: usize> Serialize for LinksRef<'_, N> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(self.0.len() / N))?;
        for node in self.0.chunks_exact(N) {
            seq.serialize_element(&NodeRef(node))?;
        }
        seq.end()
    }
}

#[cfg(test)]
struct NodeRef<'a>(&'a [u32]);

#[cfg(test)]
impl Serialize for NodeRef<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut t = s.serialize_tuple(self.0.len())?;
        for p in self.0 {
            t.serialize_element(&PointIdRef(*p))?;
        }
        t.end()
    }
}

#[cfg(test)]
struct PointIdRef(u32);

#[cfg(test)]
impl Serialize for PointIdRef {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_newtype_struct("PointId", &self.0)
    }
}

/// instant-distance's `HnswMap` as read back, with its points read by the
/// caller (row numbers for a graph just built, vectors for a stored one).
struct MapLayout<P> {
    ef_search: u64,
    points: P,
    /// Layer 0, `M0` slots per node.
    zero: Vec<u32>,
    /// Layers 1 and up, `M` slots per node.
    upper: Vec<Vec<u32>>,
    /// The caller's id of each point (`values`).
    ids: Vec<u64>,
}

impl<P> MapLayout<P> {
    fn read(
        r: &mut Reader,
        points: impl FnOnce(&mut Reader) -> Result<P, WireError>,
    ) -> Result<MapLayout<P>, WireError> {
        let ef_search = r.u64("ef_search")?;
        let points = points(r)?;
        let zero = read_links(r, "layer 0", M0)?;
        let layers = r.len("layers", 1)?;
        let upper = (0..layers)
            .map(|_| read_links(r, "upper layer", M))
            .collect::<Result<_, _>>()?;
        let ids = r.u64_seq("ids")?;
        Ok(MapLayout {
            ef_search,
            points,
            zero,
            upper,
            ids,
        })
    }
}

/// A layer as instant-distance writes it: a sequence of nodes, each a tuple of
/// `slots` point ids (no length of its own), flattened.
fn read_links(r: &mut Reader, what: &str, slots: usize) -> Result<Vec<u32>, WireError> {
    let nodes = r.len(what, slots)?;
    let mut links = Vec::new();
    r.u32s_into(what, nodes * slots, &mut links)?;
    Ok(links)
}

#[cfg(test)]
mod tests;
