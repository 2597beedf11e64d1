//! `metricann bench`: the index as an ANN library, on vectors from `.npy` files.
//!
//! Builds the index (one sealed HNSW segment, [`Index::add_sealed`]) over the
//! base vectors, then, for each `--ef`, runs every query on one thread and reports
//! queries per second, latency percentiles and recall@k against the ground truth
//! (a `--gt` file of row indices, or the index's own exact search). With
//! `--quantize none,int8-residual,int8` the same graph is then quantised and
//! measured again, so the runs differ only in how the vectors are stored. The shape of the
//! report is what `bench/ann_vs_hnswlib.py` compares with hnswlib.

use std::path::{Path, PathBuf};
use std::time::Instant;

use clap::Args;
use serde::{Deserialize, Serialize};

use metricann::index::{
    Index, IndexConfig, IndexManifest, NeighborSelection, Quantization, distance,
};
use metricann::metrics::mean_recall_at_k;
use metricann::store::{BlobRead, BlobStore, ChangeSet, FsStore};
use metricann::{Error, Result};

#[derive(Args, Debug)]
pub struct BenchArgs {
    /// Base vectors, an N×D float32 .npy: the index is built over them (ids = row numbers).
    #[arg(long)]
    pub base: PathBuf,
    /// Query vectors, a Q×D float32 .npy.
    #[arg(long)]
    pub queries: PathBuf,
    /// Ground truth, a Q×K' integer .npy (K' ≥ --k) of base row numbers, nearest
    /// first. Without it the index's exact search is the ground truth.
    #[arg(long)]
    pub gt: Option<PathBuf>,
    /// Neighbours per query (recall@k is measured at this k).
    #[arg(long, default_value_t = 10)]
    pub k: usize,
    /// HNSW ef at query time; one run per value (≥ --k).
    #[arg(long, num_args = 1.., value_delimiter = ',', default_values_t = [16, 32, 64, 128, 256])]
    pub ef: Vec<usize>,
    /// HNSW M: links per node on the upper layers, twice that on layer 0
    /// (2..=64); compare with hnswlib at the same M.
    #[arg(long, default_value_t = metricann::index::DEFAULT_M)]
    pub m: usize,
    /// HNSW efConstruction.
    #[arg(long, default_value_t = IndexConfig::default().ef_construction)]
    pub ef_construction: usize,
    /// Neighbour selection while building: diverse (the heuristic, as hnswlib),
    /// diverse-fill (the heuristic, then the pruned fill the list) or nearest.
    #[arg(long, default_value = "diverse")]
    pub neighbors: String,
    /// Threads building the graph (0: every core). Queries always run on one thread.
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
    /// Use only the first N base vectors (and ground truth computed on them).
    #[arg(long)]
    pub limit: Option<usize>,
    /// How the graph stores its vectors; with several, every --ef runs for each,
    /// in order, on the same graph: none, then int8-residual, then int8 (codes
    /// cannot become floats again, nor int8 codes get their residual back).
    #[arg(long, num_args = 1.., value_delimiter = ',', default_value = "none")]
    pub quantize: Vec<Quantization>,
    /// After the build, write the graph to this directory (its segment blobs and a
    /// manifest), so that later runs query the very same graph with --index.
    #[arg(long, conflicts_with = "index")]
    pub save_index: Option<PathBuf>,
    /// Query the graph a --save-index run wrote instead of building one (M and the
    /// build settings are then the saved graph's). --base still gives the rows'
    /// count and dimension and, without --gt, the exact ground truth.
    #[arg(long)]
    pub index: Option<PathBuf>,
    /// Print the report as one JSON object on stdout.
    #[arg(long)]
    pub json: bool,
}

/// One query run at one `ef`.
#[derive(Debug, Serialize)]
pub struct Run {
    pub quantization: Quantization,
    pub ef: usize,
    /// Queries per second on one thread.
    pub qps: f64,
    pub mean_ms: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub recall_at_k: f64,
    /// The index's vectors, links and ids in memory ([`Index::memory_bytes`]).
    pub index_memory_bytes: u64,
    /// The index's serialized size.
    pub index_bytes: u64,
}

/// Process memory (Linux `/proc/self/status`; absent elsewhere).
#[derive(Debug, Serialize)]
pub struct Memory {
    /// Resident set once the inputs are loaded, before the build.
    pub rss_inputs_bytes: Option<u64>,
    /// Peak resident set during the build (the peak is reset before it, where
    /// the kernel allows; otherwise it includes loading the inputs).
    pub peak_rss_build_bytes: Option<u64>,
    /// Resident set after the build (the base vectors became the index's storage).
    pub rss_after_build_bytes: Option<u64>,
    /// The index's serialized size: vectors, graph links and ids.
    pub index_bytes: u64,
}

#[derive(Debug, Serialize)]
pub struct Report {
    pub library: &'static str,
    pub base: PathBuf,
    pub queries: PathBuf,
    pub n: usize,
    pub dim: usize,
    pub nq: usize,
    pub k: usize,
    pub m: usize,
    pub ef_construction: usize,
    pub neighbors: NeighborSelection,
    pub build_threads: usize,
    pub build_seconds: f64,
    /// The --index directory the graph was loaded from (then nothing was built:
    /// the build fields are zero).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub loaded_from: Option<PathBuf>,
    /// The dot-product kernel the distances ran on.
    pub kernel: &'static str,
    /// `file` (--gt) or `exact` (the index's exact search).
    pub ground_truth: &'static str,
    pub memory: Memory,
    pub runs: Vec<Run>,
}

/// A `BadInput` naming `path`.
fn bad(path: &Path, reason: impl std::fmt::Display) -> Error {
    Error::BadInput(format!("{}: {reason}", path.display()))
}

pub(crate) fn read_vectors(path: &Path) -> Result<Vec<Vec<f32>>> {
    let rows = crate::npy::read_f32(path)?;
    match rows.first() {
        None => Err(bad(path, "no vectors")),
        Some(r) if r.is_empty() => Err(bad(path, "vectors of dimension 0")),
        Some(_) => Ok(rows),
    }
}

/// A field of `/proc/self/status` in bytes (`VmHWM`, `VmRSS`).
pub(crate) fn proc_status(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// Resets the kernel's peak-RSS counter (`VmHWM`) to the current RSS.
fn reset_peak_rss() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

pub(crate) fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// Runs the benchmark.
pub fn run(a: &BenchArgs) -> Result<Report> {
    let neighbors = check_args(a)?;
    let inputs = read_inputs(a)?;
    let (n, dim, nq) = (
        inputs.base.len() / inputs.dim,
        inputs.dim,
        inputs.queries.len(),
    );
    let rss_inputs = proc_status("VmRSS");
    let peak_reset = reset_peak_rss();
    let Inputs {
        base, queries, gt, ..
    } = inputs;
    let built = match &a.index {
        Some(dir) => load_saved(dir, dim, base.len() / dim)?,
        None => build(a, base, dim, neighbors)?,
    };
    if let Some(dir) = &a.save_index {
        save(&built.index, dir)?;
    }
    let peak_rss_build = proc_status(if peak_reset { "VmHWM" } else { "VmPeak" });
    let rss_after_build = proc_status("VmRSS");
    let mut index = built.index;
    let ground_truth = ground_truth(a, &index, &queries, gt)?;
    let index_bytes = index.bytes();
    let mut runs = Vec::with_capacity(a.ef.len() * a.quantize.len());
    for &quantization in &a.quantize {
        if quantization != Quantization::None {
            // The change set (the re-encoded segment) is dropped, as in `build`.
            index.quantize_to(quantization)?;
        }
        for &ef in &a.ef {
            runs.push(run_queries(
                &mut index,
                &queries,
                &ground_truth,
                a.k,
                ef,
                quantization,
            )?);
        }
    }
    Ok(Report {
        library: "metricann",
        base: a.base.clone(),
        queries: a.queries.clone(),
        n,
        dim,
        nq,
        k: a.k,
        m: index.config().m,
        ef_construction: index.config().ef_construction,
        neighbors: index.config().neighbors,
        build_threads: built.threads,
        build_seconds: built.seconds,
        loaded_from: a.index.clone(),
        kernel: distance::kernel_name(),
        ground_truth: if a.gt.is_some() { "file" } else { "exact" },
        memory: Memory {
            rss_inputs_bytes: rss_inputs,
            peak_rss_build_bytes: peak_rss_build,
            rss_after_build_bytes: rss_after_build,
            index_bytes,
        },
        runs,
    })
}

/// Refuses settings the benchmark cannot honour, before any file is read.
fn check_args(a: &BenchArgs) -> Result<NeighborSelection> {
    IndexConfig {
        m: a.m,
        ..IndexConfig::default()
    }
    .validate()
    .map_err(|e| Error::BadInput(format!("--m {}: {e}", a.m)))?;
    if a.k == 0 {
        return Err(Error::BadInput("--k must be at least 1".into()));
    }
    if let Some(ef) = a.ef.iter().find(|&&ef| ef < a.k) {
        return Err(Error::BadInput(format!(
            "--ef {ef} is below --k {}: the graph search would return fewer than k",
            a.k
        )));
    }
    if a.quantize.is_empty() {
        return Err(Error::BadInput(
            "--quantize needs none, int8-residual or int8".into(),
        ));
    }
    // The order one graph can go through: each step drops what the next lacks.
    let step = |q: &Quantization| match q {
        Quantization::None => 0,
        Quantization::Int8Residual => 1,
        Quantization::Int8 => 2,
    };
    if a.quantize.windows(2).any(|w| step(&w[0]) >= step(&w[1])) {
        return Err(Error::BadInput(
            "--quantize: list each once, in the order none, int8-residual, int8 \
             (codes cannot become floats again, nor int8 codes get a residual)"
                .into(),
        ));
    }
    a.neighbors
        .parse()
        .map_err(|e| Error::BadInput(format!("--neighbors: {e}")))
}

/// The base vectors (rows one after another, as hnswlib gets them from
/// numpy), the queries, and the ground truth file if there is one.
struct Inputs {
    base: Vec<f32>,
    queries: Vec<Vec<f32>>,
    dim: usize,
    gt: Option<Vec<Vec<u64>>>,
}

fn read_inputs(a: &BenchArgs) -> Result<Inputs> {
    let queries = read_vectors(&a.queries)?;
    let (dim, mut base) = crate::npy::read_f32_flat(&a.base)?;
    if base.is_empty() {
        return Err(bad(&a.base, "no vectors"));
    }
    if dim == 0 {
        return Err(bad(&a.base, "vectors of dimension 0"));
    }
    if let Some(limit) = a.limit {
        base.truncate(limit.max(1) * dim);
        base.shrink_to_fit();
    }
    if let Some(q) = queries.first().filter(|q| q.len() != dim) {
        return Err(bad(
            &a.queries,
            format!("dimension {} but the base vectors have {dim}", q.len()),
        ));
    }
    let gt = match &a.gt {
        None => None,
        Some(path) => Some(read_ground_truth(
            path,
            a.k,
            queries.len(),
            base.len() / dim,
        )?),
    };
    Ok(Inputs {
        base,
        queries,
        dim,
        gt,
    })
}

/// A `--gt` file: a row of at least `k` base row numbers per query.
fn read_ground_truth(path: &Path, k: usize, queries: usize, base: usize) -> Result<Vec<Vec<u64>>> {
    let gt = crate::npy::read_ids(path)?;
    if gt.len() != queries {
        return Err(bad(
            path,
            format!("{} rows for {queries} queries", gt.len()),
        ));
    }
    if let Some(row) = gt.iter().find(|r| r.len() < k) {
        return Err(bad(
            path,
            format!("{} neighbours per query, --k is {k}", row.len()),
        ));
    }
    if let Some(id) = gt.iter().flatten().find(|&&id| id >= base as u64) {
        return Err(bad(
            path,
            format!("row number {id} but --base has {base} rows"),
        ));
    }
    Ok(gt)
}

/// The sealed index over the base vectors, and how long it took on how many threads.
struct Built {
    index: Index,
    threads: usize,
    seconds: f64,
}

/// Builds one sealed graph over `base` (rows one after another), which
/// becomes the graph's storage: the bulk-load path, [`Index::add_sealed`].
fn build(a: &BenchArgs, base: Vec<f32>, dim: usize, neighbors: NeighborSelection) -> Result<Built> {
    let n = base.len() / dim;
    let config = IndexConfig {
        m: a.m,
        ef_construction: a.ef_construction,
        ef_search: a.ef.first().copied().unwrap_or(64),
        neighbors,
        ..IndexConfig::default()
    };
    let mut index = Index::new(dim, FINGERPRINT, config)?;
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(a.threads)
        .build()
        .map_err(|e| Error::Internal(format!("thread pool: {e}")))?;
    let threads = pool.current_num_threads();
    let ids: Vec<u64> = (0..n as u64).collect();
    let start = Instant::now();
    pool.install(|| -> Result<()> {
        // The change set (the segment blob a gallery would store) is dropped
        // at once; making it is part of the build, as it is for a gallery.
        index
            .add_sealed(ids, base)
            .map_err(|e| bad(&a.base, e.to_string()))?;
        Ok(())
    })?;
    Ok(Built {
        index,
        threads,
        seconds: start.elapsed().as_secs_f64(),
    })
}

/// The model fingerprint the benchmark's index carries (its vectors come from
/// no model); a saved graph is loaded back under the same one.
const FINGERPRINT: &str = "bench";

/// What `--save-index` writes as the directory's manifest blob.
#[derive(Serialize, Deserialize)]
struct Saved {
    dim: usize,
    index: IndexManifest,
}

/// Writes the index's blobs, then its manifest (the commit point), to `dir`.
fn save(index: &Index, dir: &Path) -> Result<()> {
    let saved = Saved {
        dim: index.dim(),
        index: index.manifest(),
    };
    let manifest = serde_json::to_vec(&saved).map_err(|e| Error::Internal(e.to_string()))?;
    let mut changes = ChangeSet::new();
    changes.puts = index.blobs()?;
    changes
        .puts
        .push((metricann::blob::MANIFEST.into(), manifest));
    FsStore::create(dir)?.apply(changes)
}

/// The index a `--save-index` run wrote to `dir`, checked against the base
/// vectors' dimension and row count.
fn load_saved(dir: &Path, dim: usize, rows: usize) -> Result<Built> {
    let store = FsStore::open_read_only(dir)?;
    let not_saved = |why: String| bad(dir, format!("not an index --save-index wrote: {why}"));
    let bytes = store
        .get(metricann::blob::MANIFEST)?
        .ok_or_else(|| not_saved("no manifest".into()))?;
    let saved: Saved = serde_json::from_slice(&bytes).map_err(|e| not_saved(e.to_string()))?;
    if saved.dim != dim {
        return Err(bad(
            dir,
            format!("dimension {} but the base vectors have {dim}", saved.dim),
        ));
    }
    let (index, _) = Index::load(dim, FINGERPRINT, &saved.index, &store, false)?;
    if index.len() != rows {
        return Err(bad(
            dir,
            format!("{} vectors but --base has {rows} rows", index.len()),
        ));
    }
    Ok(Built {
        index,
        threads: 0,
        seconds: 0.0,
    })
}

/// The first `--k` neighbours of each query: from `--gt`, or the index's exact search.
fn ground_truth(
    a: &BenchArgs,
    index: &Index,
    queries: &[Vec<f32>],
    gt: Option<Vec<Vec<u64>>>,
) -> Result<Vec<Vec<u64>>> {
    match gt {
        Some(gt) => Ok(gt.into_iter().map(|r| r[..a.k].to_vec()).collect()),
        // Queries are checked (and normalised) by the index itself.
        None => queries
            .iter()
            .enumerate()
            .map(|(i, q)| {
                index
                    .search_exact(q, a.k)
                    .map(|hits| hits.iter().map(|h| h.id).collect())
                    .map_err(|e| bad(&a.queries, format!("query {i}: {e}")))
            })
            .collect(),
    }
}

/// Every query at one `ef`, timed one by one on this thread.
fn run_queries(
    index: &mut Index,
    queries: &[Vec<f32>],
    ground_truth: &[Vec<u64>],
    k: usize,
    ef: usize,
    quantization: Quantization,
) -> Result<Run> {
    index.set_ef_search(ef)?;
    for q in queries.iter().take(10) {
        index.search(q, k)?;
    }
    // Timed as an app searches: one result buffer reused, nothing allocated.
    let mut found: Vec<Vec<_>> = (0..queries.len()).map(|_| Vec::with_capacity(k)).collect();
    let mut ms = Vec::with_capacity(queries.len());
    let all = Instant::now();
    for (q, hits) in queries.iter().zip(&mut found) {
        let t = Instant::now();
        index.search_into(q, k, None, hits)?;
        ms.push(t.elapsed().as_secs_f64() * 1e3);
    }
    let seconds = all.elapsed().as_secs_f64();
    let found: Vec<Vec<u64>> = found
        .iter()
        .map(|hits| hits.iter().map(|h| h.id).collect())
        .collect();
    ms.sort_by(f64::total_cmp);
    Ok(Run {
        quantization,
        ef,
        qps: queries.len() as f64 / seconds.max(1e-12),
        mean_ms: ms.iter().sum::<f64>() / ms.len().max(1) as f64,
        p50_ms: percentile(&ms, 0.5),
        p99_ms: percentile(&ms, 0.99),
        recall_at_k: mean_recall_at_k(&found, ground_truth, k),
        index_memory_bytes: index.memory_bytes(),
        index_bytes: index.bytes(),
    })
}

/// `metricann bench`: runs, then prints the report (one JSON object with --json).
pub fn main(a: &BenchArgs) -> Result<()> {
    let report = run(a)?;
    if a.json {
        let json = serde_json::to_string(&report).map_err(|e| Error::Internal(e.to_string()))?;
        println!("{json}");
    } else {
        print_table(&report);
    }
    Ok(())
}

/// The readable form of a report.
pub fn print_table(r: &Report) {
    let mib = |b: Option<u64>| b.map_or("-".into(), |b| format!("{:.0} MiB", b as f64 / 1048576.0));
    println!(
        "{} × {} (M {}, efConstruction {}, {:?}): built in {:.1} s on {} thread(s); kernel {}",
        r.n, r.dim, r.m, r.ef_construction, r.neighbors, r.build_seconds, r.build_threads, r.kernel
    );
    println!(
        "memory: index {} serialized, peak RSS during build {}, RSS after {}",
        mib(Some(r.memory.index_bytes)),
        mib(r.memory.peak_rss_build_bytes),
        mib(r.memory.rss_after_build_bytes)
    );
    println!(
        "{} queries, k {}, ground truth: {}",
        r.nq, r.k, r.ground_truth
    );
    println!(
        "vectors   ef       QPS   p50 ms   p99 ms  recall@{}  in memory",
        r.k
    );
    for run in &r.runs {
        println!(
            "{:<7} {:>5}  {:>8.0}  {:>7.3}  {:>7.3}  {:>9.4}  {:>6.0} MiB",
            format!("{:?}", run.quantization).to_lowercase(),
            run.ef,
            run.qps,
            run.p50_ms,
            run.p99_ms,
            run.recall_at_k,
            run.index_memory_bytes as f64 / 1048576.0
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(dir: &Path) -> BenchArgs {
        BenchArgs {
            base: dir.join("base.npy"),
            queries: dir.join("q.npy"),
            gt: None,
            k: 5,
            ef: vec![8, 64],
            m: 32,
            ef_construction: 40,
            neighbors: "diverse".into(),
            threads: 1,
            limit: None,
            quantize: vec![Quantization::None],
            save_index: None,
            index: None,
            json: true,
        }
    }

    fn rows(n: usize, dim: usize, seed: u64) -> Vec<Vec<f32>> {
        let mut s = seed | 1;
        (0..n)
            .map(|_| {
                (0..dim)
                    .map(|_| {
                        s ^= s << 13;
                        s ^= s >> 7;
                        s ^= s << 17;
                        (s >> 40) as f32 / (1u64 << 24) as f32 - 0.5
                    })
                    .collect()
            })
            .collect()
    }

    #[test]
    fn reports_recall_against_exact_and_against_a_gt_file() {
        let dir = tempfile::tempdir().unwrap();
        let a = args(dir.path());
        crate::npy::write_f32(&a.base, &rows(300, 8, 1), 8).unwrap();
        crate::npy::write_f32(&a.queries, &rows(20, 8, 2), 8).unwrap();
        let r = run(&a).unwrap();
        assert_eq!((r.n, r.dim, r.nq, r.runs.len()), (300, 8, 20, 2));
        assert_eq!(r.ground_truth, "exact");
        assert!(r.runs[1].recall_at_k > 0.9, "{:?}", r.runs);
        assert!(r.runs.iter().all(|x| x.qps > 0.0));
        assert!(r.memory.index_bytes > 300 * 8 * 4);
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(json["runs"][1]["ef"], 64);
        assert_eq!(json["neighbors"], "diverse");

        // The same graph quantised: the codes take a quarter of the floats'
        // memory, the graph the same, and recall stays close.
        let all = BenchArgs {
            quantize: vec![
                Quantization::None,
                Quantization::Int8Residual,
                Quantization::Int8,
            ],
            ..args(dir.path())
        };
        let r = run(&all).unwrap();
        assert_eq!(r.runs.len(), 6);
        let (float, fine, int8) = (&r.runs[1], &r.runs[3], &r.runs[5]);
        assert_eq!(
            (float.quantization, fine.quantization, int8.quantization),
            (
                Quantization::None,
                Quantization::Int8Residual,
                Quantization::Int8
            )
        );
        assert_eq!((float.ef, fine.ef), (int8.ef, int8.ef));
        // A float node keeps its 8 floats beside its 64 layer-0 links (M 32),
        // padded to whole 64-byte lines: 80 words, 320 bytes. A quantised one
        // keeps the 64 links (256 bytes) and 8 codes + a scale (12 bytes), and
        // 8 residual codes more (20 bytes).
        assert_eq!(r.m, 32);
        let (float_node, int8_node, fine_node) = (320, 256 + 12, 256 + 20);
        assert_eq!(
            float.index_memory_bytes - int8.index_memory_bytes,
            300 * (float_node - int8_node)
        );
        assert_eq!(
            float.index_memory_bytes - fine.index_memory_bytes,
            300 * (float_node - fine_node)
        );
        assert!(int8.index_bytes < fine.index_bytes && fine.index_bytes < float.index_bytes);
        assert!(int8.recall_at_k > float.recall_at_k - 0.1, "{:?}", r.runs);
        assert!(fine.recall_at_k > float.recall_at_k - 0.02, "{:?}", r.runs);
        for wrong in [
            vec![Quantization::Int8, Quantization::None],
            vec![Quantization::Int8, Quantization::Int8Residual],
            vec![Quantization::None, Quantization::None],
        ] {
            let back = BenchArgs {
                quantize: wrong,
                ..args(dir.path())
            };
            let e = run(&back).unwrap_err().to_string();
            assert!(e.contains("none, int8-residual, int8"), "{e}");
        }

        // A ground-truth file whose lists are all wrong: recall 0.
        let gt_path = dir.path().join("gt.npy");
        let wrong: Vec<Vec<f32>> = vec![vec![0.0; 5]; 20];
        crate::npy::write_f32(&gt_path, &wrong, 5).unwrap();
        let with_gt = BenchArgs {
            gt: Some(gt_path.clone()),
            ..args(dir.path())
        };
        // float32 is not an id array
        assert!(run(&with_gt).unwrap_err().to_string().contains("gt.npy"));
    }

    #[test]
    fn a_saved_graph_is_queried_again_without_a_build() {
        let dir = tempfile::tempdir().unwrap();
        let mut a = args(dir.path());
        a.m = 8;
        crate::npy::write_f32(&a.base, &rows(300, 8, 1), 8).unwrap();
        crate::npy::write_f32(&a.queries, &rows(20, 8, 2), 8).unwrap();
        a.save_index = Some(dir.path().join("graph"));
        let built = run(&a).unwrap();
        assert!(built.loaded_from.is_none() && built.build_seconds > 0.0);

        a.save_index = None;
        a.index = Some(dir.path().join("graph"));
        a.m = 32;
        let loaded = run(&a).unwrap();
        assert_eq!(loaded.loaded_from, a.index);
        assert_eq!((loaded.build_seconds, loaded.build_threads), (0.0, 0));
        assert_eq!(loaded.m, 8, "M is the saved graph's, not --m's");
        for (b, l) in built.runs.iter().zip(&loaded.runs) {
            assert_eq!(b.recall_at_k, l.recall_at_k, "ef {}", b.ef);
            assert_eq!(b.index_bytes, l.index_bytes);
        }
        let json = serde_json::to_value(&loaded).unwrap();
        assert!(json["loaded_from"].is_string());

        // Another base: the saved graph is refused, naming the directory.
        crate::npy::write_f32(&a.base, &rows(200, 8, 1), 8).unwrap();
        let err = run(&a).unwrap_err().to_string();
        assert!(
            err.contains("graph") && err.contains("300 vectors"),
            "{err}"
        );
        a.index = Some(dir.path().to_path_buf());
        let err = run(&a).unwrap_err().to_string();
        assert!(err.contains("not an index --save-index wrote"), "{err}");
    }

    #[test]
    fn bad_input_names_the_file_or_flag() {
        let dir = tempfile::tempdir().unwrap();
        let a = args(dir.path());
        crate::npy::write_f32(&a.base, &rows(100, 8, 1), 8).unwrap();
        crate::npy::write_f32(&a.queries, &rows(5, 4, 2), 4).unwrap();
        let e = run(&a).unwrap_err();
        assert!(e.is_user_error());
        assert!(e.to_string().contains("q.npy"), "{e}");

        crate::npy::write_f32(&a.queries, &rows(5, 8, 2), 8).unwrap();
        let mut nan = rows(100, 8, 1);
        nan[7][3] = f32::NAN;
        crate::npy::write_f32(&a.base, &nan, 8).unwrap();
        let e = run(&a).unwrap_err();
        assert!(
            e.to_string().contains("base.npy") && e.is_user_error(),
            "{e}"
        );

        for (bad, flag) in [
            (
                BenchArgs {
                    m: 65,
                    ..args(dir.path())
                },
                "--m",
            ),
            (
                BenchArgs {
                    ef: vec![2],
                    ..args(dir.path())
                },
                "--ef",
            ),
            (
                BenchArgs {
                    neighbors: "x".into(),
                    ..args(dir.path())
                },
                "--neighbors",
            ),
            (
                BenchArgs {
                    base: dir.path().join("missing.npy"),
                    ..args(dir.path())
                },
                "missing.npy",
            ),
        ] {
            let e = run(&bad).unwrap_err();
            assert!(e.is_user_error() && e.to_string().contains(flag), "{e}");
        }
    }
}
