//! Layer 0's nodes, each in one block: the node's float vector (when the
//! graph keeps floats), then its `2M` link slots.
//!
//! A search expands a node by reading its links and then scores the
//! neighbours by reading their vectors. With the vectors in one array and the
//! links in another, every node the search touches costs two far-apart reads
//! (two TLB entries, two streams of lines); in one block, the links of a node
//! whose vector was just scored sit on the same page. hnswlib lays its nodes
//! out the same way; at a million points this layout answered 2–9 % more
//! queries a second than the two arrays (bench/README.md, "Where the query
//! time goes").
//!
//! Blocks are padded to whole 64-byte lines and the first starts on a line, so
//! a 128-d vector is exactly eight lines. The words are one `u32` array (a
//! float is stored as its bits): the build turns its vector array into this
//! one in place ([`Nodes::from_vectors`]), so it never holds both.

use std::sync::atomic::AtomicU32;

use super::INVALID;

/// `u32` words in a 64-byte line.
const LINE: usize = 16;

/// Layer 0's nodes in blocks of `stride` words.
pub(super) struct Nodes {
    /// `start` words of alignment, then `n` blocks.
    words: Vec<u32>,
    start: usize,
    n: usize,
    /// Link slots per node (`2M`).
    links: usize,
    /// Floats per vector; 0 when the graph keeps its vectors elsewhere.
    dim: usize,
    stride: usize,
}

/// Words per block: `dim` floats and `links` slots, in whole lines when there is
/// a vector to align.
fn stride(links: usize, dim: usize) -> usize {
    if dim == 0 {
        links
    } else {
        (dim + links).div_ceil(LINE) * LINE
    }
}

/// The first word of `words` that starts a 64-byte line.
fn aligned_start(words: &[u32]) -> usize {
    let misaligned = (words.as_ptr() as usize / 4) % LINE;
    (LINE - misaligned) % LINE
}

impl Nodes {
    /// `n` nodes with empty link lists and zero vectors.
    pub(super) fn new(n: usize, links: usize, dim: usize) -> Nodes {
        let stride = stride(links, dim);
        let mut words = vec![0u32; n * stride + LINE - 1];
        let start = aligned_start(&words);
        for block in words[start..].chunks_exact_mut(stride) {
            block[dim..dim + links].fill(INVALID);
        }
        Nodes {
            words,
            start,
            n,
            links,
            dim,
            stride,
        }
    }

    /// Nodes over `data` (rows of `dim` floats) with empty link lists, made in
    /// `data`'s own allocation: the rows are spread out to their blocks from
    /// the last one down, so none is overwritten before it has moved.
    pub(super) fn from_vectors(data: Vec<f32>, dim: usize, links: usize) -> Nodes {
        let n = data.len() / dim.max(1);
        let stride = stride(links, dim);
        let mut words: Vec<u32> = bytemuck::allocation::cast_vec(data);
        words.reserve_exact(n * stride + LINE - 1 - words.len());
        words.resize(n * stride + LINE - 1, 0);
        let start = aligned_start(&words);
        for p in (0..n).rev() {
            let block = start + p * stride;
            words.copy_within(p * dim..(p + 1) * dim, block);
            words[block + dim..block + dim + links].fill(INVALID);
            words[block + dim + links..block + stride].fill(0);
        }
        Nodes {
            words,
            start,
            n,
            links,
            dim,
            stride,
        }
    }

    /// Nodes from a links array (`links` slots a node) and, for a float graph,
    /// its vectors (`dim` floats a node; empty and 0 otherwise).
    pub(super) fn from_parts(
        zero: &[u32],
        links: usize,
        vectors: &[f32],
        dim: usize,
    ) -> Result<Nodes, String> {
        let n = zero.len() / links.max(1);
        if n * links != zero.len() || vectors.len() != n * dim {
            return Err(format!(
                "{} layer-0 links ({links} a node) and {} vector values (dimension {dim})",
                zero.len(),
                vectors.len()
            ));
        }
        let mut nodes = Nodes::new(n, links, dim);
        for p in 0..n {
            nodes
                .links_mut(p)
                .copy_from_slice(&zero[p * links..][..links]);
            nodes
                .vector_mut(p)
                .copy_from_slice(&vectors[p * dim..][..dim]);
        }
        Ok(nodes)
    }

    pub(super) fn len(&self) -> usize {
        self.n
    }

    /// Link slots per node.
    pub(super) fn width(&self) -> usize {
        self.links
    }

    /// Floats per node (0 when the vectors are kept elsewhere).
    pub(super) fn dim(&self) -> usize {
        self.dim
    }

    /// Bytes the blocks take.
    pub(super) fn bytes(&self) -> usize {
        self.words.len() * 4
    }

    fn block(&self, p: usize) -> &[u32] {
        &self.words[self.start + p * self.stride..][..self.stride]
    }

    fn block_mut(&mut self, p: usize) -> &mut [u32] {
        &mut self.words[self.start + p * self.stride..][..self.stride]
    }

    /// Node `p`'s link slots (its list ends at the first [`INVALID`]).
    #[inline(always)]
    pub(super) fn links(&self, p: usize) -> &[u32] {
        &self.block(p)[self.dim..self.dim + self.links]
    }

    pub(super) fn links_mut(&mut self, p: usize) -> &mut [u32] {
        let (dim, links) = (self.dim, self.links);
        &mut self.block_mut(p)[dim..dim + links]
    }

    /// Node `p`'s vector (empty when the vectors are kept elsewhere).
    #[inline(always)]
    pub(super) fn vector(&self, p: usize) -> &[f32] {
        bytemuck::cast_slice(&self.block(p)[..self.dim])
    }

    pub(super) fn vector_mut(&mut self, p: usize) -> &mut [f32] {
        let dim = self.dim;
        bytemuck::cast_slice_mut(&mut self.block_mut(p)[..dim])
    }

    /// Every block, in node order: what [`Nodes::permute`] reorders.
    fn body_mut(&mut self) -> &mut [u32] {
        let end = self.start + self.n * self.stride;
        &mut self.words[self.start..end]
    }

    /// Adds nodes up to `n`, with empty lists and zero vectors, in the same
    /// allocation where the allocator can grow it (the blocks move only by
    /// the few words that keep them on a line).
    pub(super) fn grow(&mut self, n: usize) {
        if n <= self.n {
            return;
        }
        let (old, stride) = (self.n, self.stride);
        let len = n * stride + LINE - 1;
        self.words.reserve_exact(len - self.words.len());
        let start = aligned_start(&self.words);
        self.words
            .copy_within(self.start..self.start + old * stride, start);
        self.words.resize(len, 0);
        (self.start, self.n) = (start, n);
        for p in old..n {
            let (dim, links) = (self.dim, self.links);
            let block = self.block_mut(p);
            block.fill(0);
            block[dim..dim + links].fill(INVALID);
        }
    }

    /// Reorders the blocks so that block `i` becomes what block `order[i]`
    /// was, with `ids` alongside (see [`super::build`]'s `permute_rows`).
    pub(super) fn permute(&mut self, ids: &mut [u64], order: &[u32]) {
        let stride = self.stride;
        super::build::permute_rows(self.body_mut(), ids, stride, order);
    }

    /// The same links without the vectors (for a graph whose vectors became
    /// codes).
    pub(super) fn without_vectors(&self) -> Nodes {
        let mut links = Nodes::new(self.n, self.links, 0);
        for p in 0..self.n {
            links.links_mut(p).copy_from_slice(self.links(p));
        }
        links
    }

    /// The link slots of every node, node after node.
    #[cfg(test)]
    pub(super) fn flat_links(&self) -> Vec<u32> {
        (0..self.n).flat_map(|p| self.links(p)).copied().collect()
    }

    /// The blocks for a parallel build: links as atomic slots beside vectors
    /// that nothing writes while the view lives.
    pub(super) fn shared(&mut self) -> SharedNodes<'_> {
        let (n, links, dim, stride) = (self.n, self.links, self.dim, self.stride);
        let body = self.body_mut();
        // SAFETY: `AtomicU32` has the size, alignment (4 on every target this
        // builds for) and bit validity of `u32`, and `body` is borrowed
        // mutably for the view's life, so nothing else reads or writes it.
        let words = unsafe {
            std::slice::from_raw_parts(body.as_mut_ptr() as *const AtomicU32, body.len())
        };
        SharedNodes {
            words,
            n,
            links,
            dim,
            stride,
        }
    }
}

/// [`Nodes`] during a build: link slots written atomically by every thread,
/// vectors only read.
pub(super) struct SharedNodes<'a> {
    words: &'a [AtomicU32],
    n: usize,
    links: usize,
    dim: usize,
    stride: usize,
}

impl SharedNodes<'_> {
    pub(super) fn len(&self) -> usize {
        self.n
    }

    #[inline(always)]
    pub(super) fn links(&self, p: u32) -> &[AtomicU32] {
        &self.words[p as usize * self.stride + self.dim..][..self.links]
    }

    #[inline(always)]
    pub(super) fn vector(&self, p: u32) -> &[f32] {
        let words = &self.words[p as usize * self.stride..][..self.dim];
        // SAFETY: the vector words are in bounds (sliced above) and only ever
        // written before the view was made (no data race: every access to
        // them during the build is a read); `f32` has `u32`'s size and
        // alignment, and every bit pattern is a valid `f32`.
        unsafe { std::slice::from_raw_parts(words.as_ptr() as *const f32, self.dim) }
    }
}

impl Clone for Nodes {
    fn clone(&self) -> Nodes {
        // A copy of `words` would start at another alignment: copy blocks.
        let mut copy = Nodes::new(self.n, self.links, self.dim);
        let end = self.start + self.n * self.stride;
        copy.body_mut()
            .copy_from_slice(&self.words[self.start..end]);
        copy
    }
}

/// Bit for bit: the same links and the same float bits (so `-0.0` is not `0.0`).
impl PartialEq for Nodes {
    fn eq(&self, other: &Nodes) -> bool {
        self.n == other.n
            && self.links == other.links
            && self.dim == other.dim
            && (0..self.n).all(|p| self.block(p) == other.block(p))
    }
}

impl std::fmt::Debug for Nodes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Nodes")
            .field("n", &self.n)
            .field("links", &self.links)
            .field("dim", &self.dim)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vectors_spread_in_place_keep_their_values_and_lines() {
        let (n, dim, links) = (5, 3, 4);
        let data: Vec<f32> = (0..n * dim).map(|x| x as f32 + 0.5).collect();
        let nodes = Nodes::from_vectors(data.clone(), dim, links);
        assert_eq!(nodes.len(), n);
        for p in 0..n {
            assert_eq!(nodes.vector(p), &data[p * dim..(p + 1) * dim]);
            assert!(nodes.links(p).iter().all(|&l| l == INVALID));
            assert_eq!(nodes.vector(p).as_ptr() as usize % 64, 0, "node {p}");
        }
        assert_eq!(
            nodes,
            Nodes::from_parts(&nodes.flat_links(), links, &data, dim).unwrap()
        );
    }

    #[test]
    fn clones_permutations_and_growth_keep_every_block() {
        let mut nodes = Nodes::new(3, 2, 2);
        for p in 0..3 {
            nodes.links_mut(p).copy_from_slice(&[p as u32, INVALID]);
            nodes
                .vector_mut(p)
                .copy_from_slice(&[p as f32, -(p as f32)]);
        }
        let copy = nodes.clone();
        assert_eq!(copy, nodes);
        assert_eq!(copy.vector(2).as_ptr() as usize % 64, 0);
        let mut ids = vec![10, 11, 12];
        nodes.permute(&mut ids, &[2, 0, 1]);
        assert_eq!(ids, [12, 10, 11]);
        assert_eq!(nodes.vector(0), &[2.0, -2.0]);
        assert_eq!(nodes.links(1), &[0, INVALID]);
        nodes.grow(5);
        assert_eq!(nodes.len(), 5);
        assert_eq!(nodes.vector(2), &[1.0, -1.0]);
        assert_eq!(nodes.links(4), &[INVALID, INVALID]);
        let bare = nodes.without_vectors();
        assert_eq!((bare.dim(), bare.links(0)), (0, &[2, INVALID][..]));
    }

    #[test]
    fn parts_of_the_wrong_size_are_refused() {
        assert!(Nodes::from_parts(&[0, 1, 2], 2, &[], 0).is_err());
        assert!(Nodes::from_parts(&[0, 1], 2, &[1.0], 2).is_err());
    }
}
