//! Background maintenance: sealing the growing segment into a graph, merging
//! segments by size tiers, compaction and optimisation, built off the index
//! (on another thread or a worker) and swapped in by `finish_maintenance`.

use super::*;
use graph::Graph;

/// The share of an index's vectors one graph must hold for
/// [`Index::start_optimize`] to insert the rest into it rather than rebuild:
/// the inserted points take no upper layer above the graph's top, which is
/// harmless for a quarter more points (the tests measure it).
pub const EXTEND_SHARE: f64 = 0.75;

/// A step of index maintenance (sealing the growing segment, or merging or
/// compacting sealed ones) taken out of the index by
/// [`Index::start_maintenance`]: the input vectors and what the result replaces.
pub struct MaintenanceJob {
    pub(super) name: String,
    pub(super) seed: u64,
    pub(super) input: Flat,
    /// A graph the input is inserted into instead of building one over the
    /// input alone (see [`Index::start_optimize`]).
    pub(super) base: Option<Graph>,
    /// Tombstoned ids left out of the input; their tombstones go with it.
    pub(super) dropped: Vec<u64>,
    pub(super) replaces: Vec<String>,
    /// Vectors taken from the front of the growing segment (0 for a merge).
    pub(super) growing: usize,
    pub(super) dim: usize,
    pub(super) config: IndexConfig,
    pub(super) fingerprint: String,
}

/// What [`MaintenanceJob::build`] made, for [`Index::finish_maintenance`].
pub struct BuiltSegment {
    pub(super) name: String,
    /// `None` when every input vector was deleted.
    pub(super) seg: Option<Sealed>,
    /// The segment's ids, sorted here rather than in the swap: at a million
    /// vectors the sort takes tens of milliseconds, and the swap holds the index.
    pub(super) sorted_ids: Vec<u64>,
    /// The encoded segment; `None` when the swap encodes it (see
    /// [`MaintenanceJob::build_unencoded`]).
    pub(super) bytes: Option<Vec<u8>>,
    pub(super) dropped: Vec<u64>,
    pub(super) replaces: Vec<String>,
    pub(super) growing: usize,
}

impl MaintenanceJob {
    /// Vectors the new segment will hold.
    pub fn len(&self) -> usize {
        self.input.len() + self.base.as_ref().map_or(0, Graph::len)
    }

    /// Whether every input vector was deleted (the job then only drops blobs).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether the job inserts into an existing graph rather than building one.
    pub fn is_incremental(&self) -> bool {
        self.base.is_some()
    }

    /// Builds and encodes the segment: the slow part, which needs nothing
    /// from the index.
    pub fn build(self) -> Result<BuiltSegment> {
        let (fingerprint, dim) = (self.fingerprint.clone(), self.dim);
        let mut built = self.build_unencoded()?;
        if let Some(seg) = &built.seg {
            built.bytes = Some(seg.encode(&fingerprint, dim)?);
        }
        Ok(built)
    }

    /// Builds the segment and leaves encoding it to the swap: where nothing
    /// searches meanwhile (the index's own `maintain`, `seal`, `optimize`),
    /// the swap first lets go of the vectors the segment replaces, so the
    /// encoded bytes never sit beside both copies of them.
    pub(super) fn build_unencoded(self) -> Result<BuiltSegment> {
        let seg = if self.is_empty() {
            None
        } else {
            Some(match self.base {
                Some(graph) => Sealed::extend(graph, self.input, &self.config, self.seed)?,
                None => Sealed::build(self.input, self.dim, &self.config, self.seed)?,
            })
        };
        let bytes = None;
        let sorted_ids = seg.as_ref().map(Sealed::sorted_ids).unwrap_or_default();
        Ok(BuiltSegment {
            name: self.name,
            seg,
            sorted_ids,
            bytes,
            dropped: self.dropped,
            replaces: self.replaces,
            growing: self.growing,
        })
    }
}

impl Index {
    /// Indices of `merge_factor` segments of the lowest tier that has that many.
    pub(super) fn merge_plan(&self) -> Option<Vec<usize>> {
        let sizes = self.sealed.iter().map(SealedEntry::live).enumerate();
        policy::merge_group(sizes, self.config.merge_factor, |n| self.config.tier(n))
    }

    /// A segment more than half deleted.
    pub(super) fn compaction_target(&self) -> Option<usize> {
        self.sealed
            .iter()
            .position(|s| policy::mostly_deleted(s.deleted, s.seg.len()))
    }

    /// Whether [`Index::maintain`] has work: a full growing segment, a tier with
    /// `merge_factor` segments, or a segment more than half deleted.
    pub fn needs_maintenance(&self) -> bool {
        self.growing.len() >= self.config.growing_capacity
            || self.merge_plan().is_some()
            || self.compaction_target().is_some()
    }

    /// Seals a full growing segment, merges tiers and compacts mostly deleted
    /// segments, until nothing is left to do. `None` when there was nothing.
    pub fn maintain(&mut self) -> Result<Option<ChangeSet>> {
        let mut cs = ChangeSet::new();
        let mut did = false;
        while let Some(job) = self.start_maintenance() {
            cs.extend(self.finish_maintenance(job.build_unencoded()?)?);
            did = true;
        }
        Ok(did.then_some(cs))
    }

    /// Seals the growing segment now, whatever its size (e.g. before a bulk
    /// export), then does any merging that follows. `None` when it was empty.
    pub fn seal(&mut self) -> Result<Option<ChangeSet>> {
        let Some(job) = self.start_seal()? else {
            return Ok(None);
        };
        let mut cs = self.finish_maintenance(job.build_unencoded()?)?;
        if let Some(more) = self.maintain()? {
            cs.extend(more);
        }
        Ok(Some(cs))
    }

    /// Takes sealing the growing segment, whatever its size, out of the index
    /// as a job (see [`Index::start_maintenance`]). `None` when it is empty; an
    /// error when a job is already out.
    pub fn start_seal(&mut self) -> Result<Option<MaintenanceJob>> {
        if self.job.is_some() {
            return Err(Error::BadInput(
                "index maintenance is already under way".into(),
            ));
        }
        Ok((!self.chunks.is_empty()).then(|| self.seal_job()))
    }

    /// Takes the next step of maintenance out of the index, for
    /// [`MaintenanceJob::build`] to run without it (on another thread: the
    /// graph build is the slow part, and searches and inserts go on
    /// meanwhile), and [`Index::finish_maintenance`] to swap in. `None` when
    /// there is nothing to do, or a job is already out.
    pub fn start_maintenance(&mut self) -> Option<MaintenanceJob> {
        if self.job.is_some() {
            return None;
        }
        if self.growing.len() >= self.config.growing_capacity {
            return Some(self.seal_job());
        }
        let group = self
            .merge_plan()
            .or_else(|| self.compaction_target().map(|i| vec![i]))?;
        let mut group = group;
        // Oldest first, so a rebuild of the same input is reproducible.
        group.sort_unstable();
        let (input, replaces) = self.gather(&group);
        Some(self.job_over(input, replaces, 0))
    }

    /// The vectors of the sealed segments `parts`, in that order, and their
    /// blob names: the input of a job that replaces them.
    pub(super) fn gather(&self, parts: &[usize]) -> (Flat, Vec<String>) {
        let mut input = Flat::default();
        let mut replaces = Vec::with_capacity(parts.len() + 1);
        for &i in parts {
            let part = &self.sealed[i];
            part.seg.for_each(self.dim, |id, v| {
                input.ids.push(id);
                input.data.extend_from_slice(v);
            });
            replaces.push(part.entry.name.clone());
        }
        (input, replaces)
    }

    /// Takes rebuilding the whole index (every sealed segment and the growing
    /// segment, less deleted vectors) into one graph out of the index as a
    /// job, like [`Index::start_maintenance`]. After a bulk load, one graph
    /// searches faster than the tiers' several, and is built once instead of
    /// once per tier. `None` when the index is already one segment with
    /// nothing deleted; an error when a job is already out.
    ///
    /// When one float graph with nothing deleted and the configured `M` holds
    /// at least [`EXTEND_SHARE`] of the vectors, the others are inserted into
    /// it instead ([`MaintenanceJob::is_incremental`]): inserting the few costs
    /// a fraction of rebuilding the many, and gives as good a graph.
    pub fn start_optimize(&mut self) -> Result<Option<MaintenanceJob>> {
        if let Some(job) = &self.job {
            return Err(Error::BadInput(format!(
                "segment {job} is being built; optimise once it is in"
            )));
        }
        let parts = self.sealed.len() + usize::from(!self.chunks.is_empty());
        let deleted = self.sealed.iter().any(|s| s.deleted > 0);
        if parts == 0 || (parts == 1 && self.chunks.is_empty() && !deleted) {
            return Ok(None);
        }
        // Oldest first (names carry a sequence number), so the input order,
        // and with the seed the graph, is the same on every run.
        let mut order: Vec<usize> = (0..self.sealed.len()).collect();
        order.sort_by_key(|&i| seq_of(&self.sealed[i].entry.name));
        let base = self.extension_base();
        order.retain(|&i| Some(i) != base);
        let (mut input, mut replaces) = self.gather(&order);
        replaces.extend(self.chunks.iter().map(|c| c.name.clone()));
        self.frozen_chunks = self.chunks.len();
        input.ids.extend_from_slice(&self.growing.ids);
        input.data.extend_from_slice(&self.growing.data);
        let growing = self.growing.len();
        let mut job = self.job_over(input, replaces, growing);
        if let Some(i) = base {
            let Sealed::Hnsw(graph) = &self.sealed[i].seg else {
                unreachable!("extension_base names a graph");
            };
            job.base = Some(graph.clone());
            job.replaces.push(self.sealed[i].entry.name.clone());
        }
        Ok(Some(job))
    }

    /// The sealed segment [`Index::start_optimize`] inserts the rest into, if
    /// one qualifies.
    fn extension_base(&self) -> Option<usize> {
        let total: usize =
            self.sealed.iter().map(SealedEntry::live).sum::<usize>() + self.growing.len();
        let (i, s) = self
            .sealed
            .iter()
            .enumerate()
            .max_by_key(|(_, s)| s.live())?;
        let qualifies = matches!(&s.seg, Sealed::Hnsw(g) if !g.is_quantized() && g.m() == self.config.m)
            && s.deleted == 0
            && s.live() as f64 >= EXTEND_SHARE * total as f64;
        qualifies.then_some(i)
    }

    /// Rebuilds the whole index into one graph now (see
    /// [`Index::start_optimize`]). `None` when there was nothing to do.
    pub fn optimize(&mut self) -> Result<Option<ChangeSet>> {
        let Some(job) = self.start_optimize()? else {
            return Ok(None);
        };
        self.finish_maintenance(job.build_unencoded()?).map(Some)
    }

    /// Adds a batch as one sealed segment built now, straight from the
    /// caller's buffer: `vectors` holds `ids.len()` rows of the index's
    /// dimension one after another, is made unit in place and becomes the
    /// graph's storage. The bulk-load path: no growing chunk is written and no
    /// copy of the vectors is made, where [`Index::add`] then [`Index::seal`]
    /// hold three at their peak (the growing segment, its chunk blob, the
    /// seal's input). Bad input changes nothing; merging with other segments
    /// is left to [`Index::maintain`]. An error while a job is out.
    pub fn add_sealed(&mut self, ids: Vec<u64>, mut vectors: Vec<f32>) -> Result<ChangeSet> {
        if let Some(job) = &self.job {
            return Err(Error::BadInput(format!(
                "segment {job} is being built; add a sealed segment once it is in"
            )));
        }
        if ids.is_empty() {
            return Err(Error::BadInput("no vectors to add".into()));
        }
        if vectors.len() != ids.len() * self.dim {
            return Err(Error::BadInput(format!(
                "{} values for {} ids of dimension {}",
                vectors.len(),
                ids.len(),
                self.dim
            )));
        }
        self.check_new_ids(&ids)?;
        for (i, row) in vectors.chunks_exact_mut(self.dim).enumerate() {
            make_unit(row).map_err(|why| Error::BadInput(format!("vector {i} {why}")))?;
        }
        let job = self.job_over(Flat { ids, data: vectors }, Vec::new(), 0);
        let built = job.build_unencoded();
        if built.is_err() {
            self.job = None;
        }
        self.finish_maintenance(built?)
    }

    pub(super) fn seal_job(&mut self) -> MaintenanceJob {
        let replaces = self.chunks.iter().map(|c| c.name.clone()).collect();
        self.frozen_chunks = self.chunks.len();
        let input = Flat {
            ids: self.growing.ids.clone(),
            data: self.growing.data.clone(),
        };
        let sealed = input.len();
        self.job_over(input, replaces, sealed)
    }

    /// A job rebuilding `input` (less its tombstoned vectors) into one segment
    /// that replaces the blobs `replaces` (`growing` of them vectors from the
    /// front of the growing segment).
    pub(super) fn job_over(
        &mut self,
        input: Flat,
        replaces: Vec<String>,
        growing: usize,
    ) -> MaintenanceJob {
        let (live, dropped) = without_tombstoned(input, self.dim, &self.tombstones);
        let (name, seq) = self.next_name("seg");
        self.job = Some(name.clone());
        MaintenanceJob {
            name,
            seed: self.config.seed.wrapping_add(seq),
            input: live,
            base: None,
            dropped,
            replaces,
            growing,
            dim: self.dim,
            config: self.config.clone(),
            fingerprint: self.fingerprint.clone(),
        }
    }

    /// Swaps a built segment in for what its job replaces. Vectors deleted
    /// while it was built stay tombstoned in the new segment.
    pub fn finish_maintenance(&mut self, built: BuiltSegment) -> Result<ChangeSet> {
        if self.job.as_deref() != Some(built.name.as_str()) {
            return Err(Error::BadInput(format!(
                "segment {} was not built for this index's maintenance job",
                built.name
            )));
        }
        self.job = None;
        let mut cs = ChangeSet::new();
        // A seal replaces chunks, a merge sealed segments, an optimise both.
        if built.growing > 0 {
            let n = built.growing;
            for id in self.growing.ids.drain(..n) {
                self.growing_ids.remove(&id);
            }
            self.growing.data.drain(..n * self.dim);
            // The sealed vectors' memory goes with them (a bulk load's
            // growing segment can be hundreds of megabytes).
            if self.growing.ids.capacity() > 2 * self.growing.ids.len().max(64) {
                self.growing.ids.shrink_to_fit();
                self.growing.data.shrink_to_fit();
            }
            self.chunks.retain(|c| !built.replaces.contains(&c.name));
            self.frozen_chunks = 0;
        }
        self.sealed
            .retain(|s| !built.replaces.contains(&s.entry.name));
        for name in built.replaces {
            cs.delete(name);
        }
        for id in &built.dropped {
            self.tombstones.remove(id);
        }
        let Some(seg) = built.seg else {
            return Ok(cs);
        };
        let bytes = match built.bytes {
            Some(bytes) => bytes,
            None => seg.encode(&self.fingerprint, self.dim)?,
        };
        let sorted_ids = built.sorted_ids;
        let deleted = self
            .tombstones
            .iter()
            .filter(|id| sorted_ids.binary_search(id).is_ok())
            .count();
        let entry = SegmentEntry {
            name: built.name.clone(),
            kind: seg.kind(),
            vectors: seg.len() as u64,
            bytes: bytes.len() as u64,
        };
        cs.put(built.name, bytes);
        self.sealed.push(SealedEntry {
            entry,
            seg,
            sorted_ids,
            deleted,
        });
        Ok(cs)
    }
}

/// `input` less its tombstoned vectors, compacted in place (a seal's input is
/// the whole growing segment: a second copy of it would be the build's
/// largest allocation), and the ids left out.
fn without_tombstoned(mut input: Flat, dim: usize, tombstones: &BTreeSet<u64>) -> (Flat, Vec<u64>) {
    let mut dropped = Vec::new();
    if tombstones.is_empty() {
        return (input, dropped);
    }
    let mut kept = 0;
    for row in 0..input.ids.len() {
        let id = input.ids[row];
        if tombstones.contains(&id) {
            dropped.push(id);
            continue;
        }
        if kept != row {
            input.ids[kept] = id;
            input
                .data
                .copy_within(row * dim..(row + 1) * dim, kept * dim);
        }
        kept += 1;
    }
    input.ids.truncate(kept);
    input.data.truncate(kept * dim);
    (input, dropped)
}
