//! A sealed HNSW graph, laid out for search.
//!
//! [`build`] inserts the points (in parallel) straight into this layout:
//!
//! - layer 0 as one block per node ([`nodes`]): the node's float vector, then
//!   its `2M` link slots (`u32::MAX` ends a node's list), in the graph's point
//!   order, so a node is one offset away and can be prefetched; the upper
//!   layers as `M` slots per node; `M` chosen per graph;
//! - a search with two binary heaps and a generation-stamped visited array
//!   reused per thread, and `ef` chosen per query.
//!
//! A graph can be **quantised** ([`Graph::quantize`]): each vector becomes `dim`
//! `i8` codes and one `f32` scale (132 bytes instead of 512 at dimension 128).
//! The walk then scores with [`distance::dot_i8`] against the query quantised
//! the same way, and the `ef` candidates it ends with are re-ranked by the float
//! query against their codes ([`distance::dot_f32_i8`]), so the reported scores
//! carry only the stored vectors' rounding. The float vectors are not kept:
//! that is the memory saved. With [`Quantization::Int8Residual`] each vector
//! also keeps `dim` residual codes of what the codes rounded off
//! ([`distance::quantize_residual_i8`]), read only by the re-ranking: the walk
//! costs what int8's does, and the reported scores are within a 254th of
//! int8's rounding of the float ones (260 bytes a vector at dimension 128).
//!
//! A graph is stored in the [`packed`] layout: fixed-width arrays, read at
//! memory speed. Segments written before it are still read ([`legacy`]): a
//! float graph in instant-distance's own serialized form (the crate that built
//! graphs before [`build`]), a quantised one in a varint layout; both have
//! `M` = 32. Every layout is decoded in one pass that checks every
//! reference before anything searches the graph. The walk itself is in
//! [`search`].

use std::cmp::Ordering;

use super::distance;
use super::{NeighborSelection, Quantization};
use crate::blob::wire::{Reader, WireError};
use nodes::Nodes;

mod build;
pub(crate) mod legacy;
mod nodes;
pub(crate) mod packed;
mod search;
mod visited;

/// The `M` of graphs stored before `M` was a parameter (instant-distance's):
/// links per node on the upper layers, twice that on layer 0.
pub(crate) const LEGACY_M: usize = 32;
/// The range of `M` a graph may have: the search keeps a node's layer-0 list
/// (`2M` links) on the stack.
pub(crate) const M_RANGE: std::ops::RangeInclusive<usize> = 2..=64;
/// An empty neighbour slot; it ends the node's list.
const INVALID: u32 = u32::MAX;

/// A built HNSW graph over `n` vectors of dimension `dim`.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Graph {
    dim: usize,
    /// Links per node on the upper layers; `2m` on layer 0.
    m: usize,
    /// The `ef` searches use unless told otherwise; also stored with the graph.
    ef_search: usize,
    /// How the vectors are kept, point order.
    vectors: Vectors,
    /// The caller's id of each point, point order.
    ids: Vec<u64>,
    /// Layer 0: each point's `2m` links, with its float vector in a float graph.
    nodes: Nodes,
    /// `upper[l - 1]`: layer `l`'s links, `m` per node. Layer `l` holds the first
    /// `upper[l - 1].len() / m` points (a prefix, shrinking upwards); a search
    /// enters at point 0 of the top layer.
    upper: Vec<Vec<u32>>,
}

/// A graph's vectors, in point order.
#[derive(Clone, Debug, PartialEq)]
enum Vectors {
    /// Floats, in layer 0's [`Nodes`] beside each point's links.
    F32,
    /// `n × dim` codes and `n` scales: vector `p` ≈ `scales[p] · codes[p]`;
    /// with `n × dim` residual codes, `scales[p] · (codes[p] + residual[p] / 254)`.
    I8 {
        codes: Vec<i8>,
        scales: Vec<f32>,
        residual: Option<Vec<i8>>,
    },
}

impl Vectors {
    /// Bytes the codes take, in memory and in the packed layout alike (the
    /// floats are counted with the nodes).
    fn bytes(&self) -> usize {
        match self {
            Vectors::F32 => 0,
            Vectors::I8 {
                codes,
                scales,
                residual,
            } => codes.len() + scales.len() * 4 + residual.as_ref().map_or(0, Vec::len),
        }
    }
}

/// Build parameters.
#[derive(Clone, Copy)]
pub(crate) struct BuildParams {
    pub m: usize,
    pub ef_construction: usize,
    pub ef_search: usize,
    pub neighbors: NeighborSelection,
    pub seed: u64,
}

impl Graph {
    /// Builds a graph over `data` (`ids.len() × dim` unit vectors) on rayon's
    /// current pool ([`build`]).
    pub(crate) fn build(
        ids: Vec<u64>,
        data: Vec<f32>,
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
        if !M_RANGE.contains(&p.m) {
            return Err(format!("M {} is outside {M_RANGE:?}", p.m));
        }
        if let Some(pos) = data.iter().position(|x| !x.is_finite()) {
            return Err(format!("point {} has a non-finite value", pos / dim));
        }
        Ok(build::build(ids, data, dim, p))
    }

    /// Inserts more points into a built float graph (`ids.len() × dim` unit
    /// vectors), keeping its `M` ([`build::extend`]); `p`'s `M` is not used.
    pub(crate) fn extend(
        &mut self,
        ids: Vec<u64>,
        data: Vec<f32>,
        p: &BuildParams,
    ) -> Result<(), String> {
        if self.is_quantized() {
            return Err("a quantised graph keeps no float vectors to link new points by".into());
        }
        if data.len() != ids.len() * self.dim {
            return Err(format!(
                "{} ids but {} floats (dimension {})",
                ids.len(),
                data.len(),
                self.dim
            ));
        }
        if self.ids.len() + ids.len() >= INVALID as usize {
            return Err(format!(
                "{} vectors: too many for one graph",
                self.ids.len() + ids.len()
            ));
        }
        if let Some(pos) = data.iter().position(|x| !x.is_finite()) {
            return Err(format!("point {} has a non-finite value", pos / self.dim));
        }
        if self.ids.is_empty() {
            *self = Graph::build(ids, data, self.dim, &BuildParams { m: self.m, ..*p })?;
            return Ok(());
        }
        build::extend(self, ids, data, p);
        Ok(())
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
        let nodes = Nodes::from_parts(&zero, 2 * LEGACY_M, &vectors, dim)?;
        drop(vectors);
        Graph::checked(dim, LEGACY_M, ef_search, Vectors::F32, ids, nodes, upper)
    }

    /// Checks that every link is in range and the layers shrink upwards, and
    /// assembles the graph.
    fn checked(
        dim: usize,
        m: usize,
        ef_search: u64,
        vectors: Vectors,
        ids: Vec<u64>,
        nodes: Nodes,
        layers: Vec<Vec<u32>>,
    ) -> Result<Graph, String> {
        let n = ids.len();
        if !M_RANGE.contains(&m) {
            return Err(format!("M {m} is outside {M_RANGE:?}"));
        }
        if nodes.len() != n || nodes.width() != 2 * m {
            return Err(format!(
                "{n} points but {} graph nodes of {} links",
                nodes.len(),
                nodes.width()
            ));
        }
        let floats = if matches!(vectors, Vectors::F32) {
            dim
        } else {
            0
        };
        if nodes.dim() != floats {
            return Err(format!(
                "nodes of dimension {} in a graph of {floats}",
                nodes.dim()
            ));
        }
        for p in 0..n {
            if let Some(bad) = out_of_range(nodes.links(p), n) {
                return Err(format!(
                    "node {p} links to point {} of {n}",
                    nodes.links(p)[bad]
                ));
            }
        }
        let mut below = n;
        let mut upper = Vec::with_capacity(layers.len());
        for (l, links) in layers.into_iter().enumerate() {
            let len = links.len() / m;
            if len == 0 || len * m != links.len() || len > below {
                return Err(format!(
                    "layer {} has {len} nodes (layer below has {below})",
                    l + 1
                ));
            }
            if let Some(bad) = out_of_range(&links, len) {
                return Err(format!(
                    "layer {} node {} links to point {} of {len}",
                    l + 1,
                    bad / m,
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
            m,
            ef_search,
            vectors,
            ids,
            nodes,
            upper,
        })
    }

    /// Stores the vectors as `mode` says (see the module documentation):
    /// float vectors become codes, with residual codes for `Int8Residual`;
    /// residual codes are dropped for `Int8`. What cannot be had back from
    /// codes (floats, or the residual of codes stored without one) is an
    /// error, and the graph is left as it was.
    pub(crate) fn quantize(&mut self, mode: Quantization) -> Result<(), String> {
        if !self.can_store_as(mode) {
            return Err(format!(
                "a graph stored as {} cannot become {}: what its codes rounded off is not kept",
                self.quantization().name(),
                mode.name()
            ));
        }
        let dim = self.dim;
        match (&mut self.vectors, mode) {
            (Vectors::F32, Quantization::Int8 | Quantization::Int8Residual) => {
                let values = self.ids.len() * dim;
                let mut codes = vec![0i8; values];
                let mut residual = (mode == Quantization::Int8Residual).then(|| vec![0i8; values]);
                let nodes = &self.nodes;
                let scales = codes
                    .chunks_exact_mut(dim)
                    .enumerate()
                    .map(|(p, c)| {
                        let v = nodes.vector(p);
                        let scale = distance::quantize_i8(v, c);
                        if let Some(r) = &mut residual {
                            let r = &mut r[p * dim..(p + 1) * dim];
                            distance::quantize_residual_i8(v, c, scale, r);
                        }
                        scale
                    })
                    .collect();
                self.vectors = Vectors::I8 {
                    codes,
                    scales,
                    residual,
                };
                self.nodes = self.nodes.without_vectors();
            }
            (Vectors::I8 { residual, .. }, Quantization::Int8) => *residual = None,
            _ => {}
        }
        Ok(())
    }

    /// Whether [`Graph::quantize`] can store this graph's vectors as `mode`.
    pub(crate) fn can_store_as(&self, mode: Quantization) -> bool {
        let now = self.quantization();
        now == mode
            || now == Quantization::None
            || (now == Quantization::Int8Residual && mode == Quantization::Int8)
    }

    /// How the graph stores its vectors.
    pub(crate) fn quantization(&self) -> Quantization {
        match &self.vectors {
            Vectors::F32 => Quantization::None,
            Vectors::I8 { residual: None, .. } => Quantization::Int8,
            Vectors::I8 {
                residual: Some(_), ..
            } => Quantization::Int8Residual,
        }
    }

    pub(crate) fn is_quantized(&self) -> bool {
        matches!(self.vectors, Vectors::I8 { .. })
    }

    /// Bytes the graph holds in memory: layer 0's nodes (links, and float
    /// vectors), codes and scales, upper links and ids.
    pub(crate) fn heap_bytes(&self) -> usize {
        let upper: usize = self.upper.iter().map(Vec::len).sum();
        self.nodes.bytes() + self.vectors.bytes() + upper * 4 + self.ids.len() * 8
    }

    pub(crate) fn len(&self) -> usize {
        self.ids.len()
    }

    pub(crate) fn ids(&self) -> &[u64] {
        &self.ids
    }

    pub(crate) fn m(&self) -> usize {
        self.m
    }

    pub(crate) fn ef_search(&self) -> usize {
        self.ef_search
    }

    pub(crate) fn set_ef_search(&mut self, ef: usize) {
        self.ef_search = ef.max(1);
    }

    /// Calls `f` with every (id, vector), in point order; a quantised graph's
    /// vectors are dequantised (`scale · codes`, plus the residual if kept).
    pub(crate) fn for_each(&self, mut f: impl FnMut(u64, &[f32])) {
        match &self.vectors {
            Vectors::F32 => self
                .ids
                .iter()
                .enumerate()
                .for_each(|(p, &id)| f(id, self.nodes.vector(p))),
            Vectors::I8 {
                codes,
                scales,
                residual,
            } => {
                let mut v = vec![0.0f32; self.dim];
                for (p, (&id, &scale)) in self.ids.iter().zip(scales).enumerate() {
                    let at = p * self.dim..(p + 1) * self.dim;
                    match residual {
                        Some(r) => distance::dequantize_residual_i8(
                            &codes[at.clone()],
                            &r[at],
                            scale,
                            &mut v,
                        ),
                        None => distance::dequantize_i8(&codes[at], scale, &mut v),
                    }
                    f(id, &v);
                }
            }
        }
    }
}

// ---- instant-distance's serialized layout ----
//
// `HnswMap { hnsw: Hnsw { ef_search: usize, points: Vec<P>, zero: Vec<[PointId; 2M]>,
// layers: Vec<Vec<[PointId; M]>> }, values: Vec<V> }`, where `PointId` is a
// `u32` newtype and a node's array is a fixed-size tuple.

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
        let zero = read_links(r, "layer 0", 2 * LEGACY_M)?;
        let layers = r.len("layers", 1)?;
        let upper = (0..layers)
            .map(|_| read_links(r, "upper layer", LEGACY_M))
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

#[cfg(test)]
mod tests;
