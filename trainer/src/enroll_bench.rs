//! `metricann bench-enroll`: enrolling classes one by one into a large gallery.
//!
//! Builds a gallery with one class per `--base` row (one batch, sealed into one
//! graph), then enrolls every `--add` row as a new class, one enrollment at a
//! time, each change set applied to an in-memory store. Index maintenance runs
//! the way an application should run it: on its own thread, building each
//! segment without holding the gallery and taking it only to swap the segment
//! in. A third thread searches all the while. The report gives the cost per
//! enrollment (amortised, p50/p99/max), each maintenance step (build seconds in
//! the background, and the pause: how long it held the gallery), and search
//! latency overall and while a build was running.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
// Fair locks: std's RwLock lets a thread that searches in a tight loop take
// the read lock again before a woken writer runs, and at 900k that held each
// enrollment back for many searches.
use parking_lot::{Mutex, RwLock};
use serde::Serialize;

use metricann::blob::{BlobRead, ChangeSet, MANIFEST};
use metricann::gallery::{Enrollment, Gallery, GalleryConfig, OpenMode};
use metricann::index::IndexConfig;
use metricann::metrics;
use metricann::store::{BlobStore, FsStore, MemoryStore};
use metricann::{Error, Result};

use crate::ann_bench::{percentile, proc_status, read_vectors};

const FINGERPRINT: &str = "bench-enroll";

#[derive(Args, Debug)]
pub struct EnrollBenchArgs {
    /// The gallery to start from, an N×D float32 .npy: one class per row.
    #[arg(long)]
    pub base: PathBuf,
    /// Vectors to enroll one by one, an M×D float32 .npy: one new class per row.
    #[arg(long)]
    pub add: PathBuf,
    /// Queries the search thread cycles through (default: the --add rows).
    #[arg(long)]
    pub queries: Option<PathBuf>,
    /// Classes per search.
    #[arg(long, default_value_t = 10)]
    pub k: usize,
    /// Threads building graphs (0: every core).
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
    /// Threads of the background maintenance builds (0: two fewer than
    /// --threads' count, at least one, leaving cores to the enrolling and the
    /// searching thread).
    #[arg(long, default_value_t = 0)]
    pub background_threads: usize,
    /// Vectors in the growing segment before it is sealed.
    #[arg(long, default_value_t = IndexConfig::default().growing_capacity)]
    pub segment_size: usize,
    /// Keep the starting gallery in this directory: built and saved there when
    /// it holds none, loaded from it when it does (so that a long base build is
    /// paid once across runs; `DIR.json` keeps its build time).
    #[arg(long)]
    pub base_gallery: Option<PathBuf>,
    /// Print the report as one JSON object on stdout.
    #[arg(long)]
    pub json: bool,
}

/// Latency summary in milliseconds.
#[derive(Debug, Serialize, Default)]
pub struct Latency {
    pub count: usize,
    pub mean_ms: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

impl Latency {
    fn of(mut ms: Vec<f64>) -> Latency {
        if ms.is_empty() {
            return Latency::default();
        }
        ms.sort_by(f64::total_cmp);
        Latency {
            count: ms.len(),
            mean_ms: ms.iter().sum::<f64>() / ms.len() as f64,
            p50_ms: percentile(&ms, 0.5),
            p99_ms: percentile(&ms, 0.99),
            max_ms: ms[ms.len() - 1],
        }
    }
}

/// One maintenance step run in the background.
#[derive(Debug, Serialize)]
pub struct Step {
    /// Vectors in the segment built.
    pub vectors: usize,
    /// Building and encoding it, without holding the gallery.
    pub build_seconds: f64,
    /// Taking the job's input out (a copy of the vectors) plus swapping the
    /// segment in (and merging class pages): waiting for the gallery's write
    /// lock and holding it.
    pub pause_ms: f64,
    /// Of `pause_ms`, the part spent holding the lock (the rest is waiting
    /// for it).
    pub hold_ms: f64,
    /// Applying its change set to the store, without holding the gallery.
    pub store_ms: f64,
}

#[derive(Debug, Serialize)]
pub struct EnrollReport {
    pub library: &'static str,
    pub base: usize,
    pub added: usize,
    pub dim: usize,
    pub segment_size: usize,
    pub build_threads: usize,
    pub background_threads: usize,
    /// Building the starting gallery (one batch, one graph).
    pub base_build_seconds: f64,
    /// Wall time of all the one-by-one enrollments.
    pub enroll_seconds: f64,
    /// One enrollment: gallery mutation + applying its change set to the store.
    pub enroll: Latency,
    /// Of each enrollment, the wait for the gallery's write lock (held by a
    /// search or a maintenance step meanwhile).
    pub enroll_lock_wait: Latency,
    /// Bytes the enrollments' change sets wrote (manifests included).
    pub enroll_bytes_written: u64,
    pub maintenance: Vec<Step>,
    pub longest_pause_ms: f64,
    pub search: Latency,
    /// Searches started while a segment was being built in the background.
    pub search_during_builds: Latency,
    /// Added vectors whose own class is the top match at the end (a sample).
    pub added_found_top1: f64,
    pub segments_after: usize,
    pub peak_rss_bytes: Option<u64>,
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// A progress bar of `len` steps named `what` (hidden for --json runs).
pub(crate) fn bar(len: u64, what: &str, hidden: bool) -> ProgressBar {
    let bar = if hidden {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(len)
    };
    bar.set_style(
        ProgressStyle::with_template("{msg} {bar:40} {pos}/{len} [{elapsed_precise}, eta {eta}]")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar.set_message(what.to_string());
    bar
}

/// Builds the starting gallery: one class per row, one batch, one graph.
fn build_base(
    base: Vec<Vec<f32>>,
    dim: usize,
    segment_size: usize,
    build_threads: usize,
) -> Result<(Gallery, MemoryStore, f64)> {
    let (mut gallery, created) = Gallery::create(GalleryConfig {
        dim,
        fingerprint: FINGERPRINT.into(),
        index: IndexConfig {
            growing_capacity: segment_size,
            ..IndexConfig::default()
        },
        head: None,
    })?;
    let mut store = MemoryStore::new();
    store.apply(created)?;
    tracing::info!(
        base = base.len(),
        dim,
        build_threads,
        "building the starting gallery"
    );
    let start = Instant::now();
    let batch: Vec<Enrollment> = base
        .into_iter()
        .enumerate()
        .map(|(i, v)| Enrollment {
            label: format!("base-{i}"),
            vectors: vec![v],
            metadata: None,
        })
        .collect();
    store.apply(gallery.enroll_batch(&batch)?)?;
    drop(batch);
    while let Some(cs) = gallery.maintain()? {
        store.apply(cs)?;
    }
    let seconds = start.elapsed().as_secs_f64();
    tracing::info!(seconds, "starting gallery built");
    Ok((gallery, store, seconds))
}

fn build_seconds_path(dir: &Path) -> PathBuf {
    let mut p = dir.as_os_str().to_owned();
    p.push(".json");
    PathBuf::from(p)
}

fn save_base(dir: &Path, store: &MemoryStore, seconds: f64) -> Result<()> {
    let mut fs = FsStore::create(dir)?;
    fs.apply(store.snapshot())?;
    let json = serde_json::json!({ "base_build_seconds": seconds }).to_string();
    let path = build_seconds_path(dir);
    std::fs::write(&path, json).map_err(|e| Error::io(&path, e))?;
    tracing::info!(dir = %dir.display(), "starting gallery saved");
    Ok(())
}

/// Loads a starting gallery `save_base` wrote, into memory; it must hold one
/// class per `--base` row.
fn load_base(dir: &Path, rows: usize) -> Result<(Gallery, MemoryStore, f64)> {
    let fs = FsStore::open_read_only(dir)?;
    let mut changes = ChangeSet::new();
    for name in fs.names()? {
        if let Some(bytes) = fs.get(&name)? {
            changes.put(name, bytes);
        }
    }
    let mut store = MemoryStore::new();
    store.apply(changes)?;
    let (gallery, _) = Gallery::open(&store, Some(FINGERPRINT), OpenMode::Strict)?;
    let classes = gallery.stats().classes;
    if classes != rows {
        return Err(Error::BadInput(format!(
            "{} holds a gallery of {classes} classes; --base has {rows} rows",
            dir.display()
        )));
    }
    let path = build_seconds_path(dir);
    let seconds = std::fs::read_to_string(&path)
        .ok()
        .and_then(|s| serde_json::from_str::<serde_json::Value>(&s).ok())
        .and_then(|v| v["base_build_seconds"].as_f64())
        .ok_or_else(|| Error::BadInput(format!("{}: no build time", path.display())))?;
    tracing::info!(dir = %dir.display(), classes, "starting gallery loaded");
    Ok((gallery, store, seconds))
}

/// Runs the benchmark.
pub fn run(a: &EnrollBenchArgs) -> Result<EnrollReport> {
    let (base, add, queries) = read_inputs(a)?;
    let dim = base[0].len();
    // Graph builds use rayon's global pool; only its first configuration
    // counts (a test in the same process may have made it already).
    let _ = rayon::ThreadPoolBuilder::new()
        .num_threads(a.threads)
        .build_global();
    let build_threads = rayon::current_num_threads();
    let background_threads = match a.background_threads {
        0 => build_threads.saturating_sub(2).max(1),
        n => n,
    };
    let background = rayon::ThreadPoolBuilder::new()
        .num_threads(background_threads)
        .build()
        .map_err(|e| Error::Internal(format!("a thread pool: {e}")))?;
    let (mut gallery, store, base_build_seconds) = starting_gallery(a, base, dim, build_threads)?;
    let n_base = gallery.stats().classes;
    if gallery.stats().segments.len() != 1 {
        tracing::warn!("the starting gallery is not one sealed segment");
    }
    gallery.set_auto_maintain(false);
    let shared = Shared {
        gallery: Arc::new(RwLock::new(gallery)),
        store: Arc::new(Mutex::new(store)),
        done: Arc::new(AtomicBool::new(false)),
        building: Arc::new(AtomicBool::new(false)),
    };
    let maintainer = spawn_maintainer(shared.clone(), background);
    let searcher = spawn_searcher(shared.clone(), queries, a.k);
    let enrolled = enroll_one_by_one(&shared, &add, a.json);
    shared.done.store(true, Ordering::Release);
    tracing::info!(
        seconds = enrolled.seconds,
        "enrolled; waiting for the background maintenance"
    );
    let lock_err = || Error::Internal("a benchmark thread panicked".into());
    let (search_all, search_during) = searcher.join().map_err(|_| lock_err())??;
    let steps = maintainer.join().map_err(|_| lock_err())??;
    tracing::info!(steps = steps.len(), "background maintenance done");
    if let Some(e) = enrolled.failure {
        return Err(e);
    }
    let gallery = shared.gallery.read();
    Ok(EnrollReport {
        library: "metricann",
        base: n_base,
        added: add.len(),
        dim,
        segment_size: a.segment_size,
        build_threads,
        background_threads,
        base_build_seconds,
        enroll_seconds: enrolled.seconds,
        enroll: Latency::of(enrolled.enroll_ms),
        enroll_lock_wait: Latency::of(enrolled.lock_wait_ms),
        enroll_bytes_written: enrolled.written,
        longest_pause_ms: steps.iter().map(|s| s.pause_ms).fold(0.0, f64::max),
        maintenance: steps,
        search: Latency::of(search_all),
        search_during_builds: Latency::of(search_during),
        added_found_top1: added_found_top1(&gallery, &add)?,
        segments_after: gallery.stats().segments.len(),
        peak_rss_bytes: proc_status("VmHWM"),
    })
}

/// Vectors, one per row of an .npy file.
type Rows = Vec<Vec<f32>>;

/// The --base, --add and --queries rows (--add's without --queries).
fn read_inputs(a: &EnrollBenchArgs) -> Result<(Rows, Rows, Rows)> {
    if a.k == 0 {
        return Err(Error::BadInput("--k must be at least 1".into()));
    }
    let base = read_vectors(&a.base)?;
    let add = read_vectors(&a.add)?;
    let queries = match &a.queries {
        Some(q) => read_vectors(q)?,
        None => add.clone(),
    };
    let dim = base[0].len();
    for (what, rows) in [("--add", &add), ("--queries", &queries)] {
        if rows[0].len() != dim {
            return Err(Error::BadInput(format!(
                "{what} has dimension {}, --base {dim}",
                rows[0].len()
            )));
        }
    }
    Ok((base, add, queries))
}

/// The starting gallery: loaded from --base-gallery when it holds one, else
/// built (and saved there when given).
fn starting_gallery(
    a: &EnrollBenchArgs,
    base: Rows,
    dim: usize,
    build_threads: usize,
) -> Result<(Gallery, MemoryStore, f64)> {
    let saved = a
        .base_gallery
        .as_deref()
        .filter(|d| d.join(MANIFEST).exists());
    if let Some(dir) = saved {
        return load_base(dir, base.len());
    }
    let (gallery, store, seconds) = build_base(base, dim, a.segment_size, build_threads)?;
    if let Some(dir) = &a.base_gallery {
        save_base(dir, &store, seconds)?;
    }
    Ok((gallery, store, seconds))
}

/// What the enrolling, maintaining and searching threads share.
#[derive(Clone)]
struct Shared {
    gallery: Arc<RwLock<Gallery>>,
    store: Arc<Mutex<MemoryStore>>,
    /// Set when every enrollment is done: the other threads finish.
    done: Arc<AtomicBool>,
    /// Set while a segment is being built in the background.
    building: Arc<AtomicBool>,
}

/// Runs maintenance steps as the enrollments make them due, until `done` and
/// nothing is left to do.
fn spawn_maintainer(
    shared: Shared,
    background: rayon::ThreadPool,
) -> std::thread::JoinHandle<Result<Vec<Step>>> {
    std::thread::spawn(move || -> Result<Vec<Step>> {
        let mut steps = Vec::new();
        loop {
            match maintenance_step(&shared, &background)? {
                Some(step) => steps.push(step),
                None if shared.done.load(Ordering::Acquire) => return Ok(steps),
                None => std::thread::sleep(Duration::from_millis(2)),
            }
        }
    })
}

/// One maintenance step, the segment built without holding the gallery;
/// `None` when none is due.
fn maintenance_step(shared: &Shared, background: &rayon::ThreadPool) -> Result<Option<Step>> {
    let t = Instant::now();
    let (job, start_hold) = {
        let mut g = shared.gallery.write();
        let held = Instant::now();
        (g.start_maintenance(), ms(held.elapsed()))
    };
    let start_ms = ms(t.elapsed());
    let Some(job) = job else {
        return Ok(None);
    };
    let vectors = job.len();
    tracing::info!(vectors, "background build");
    shared.building.store(true, Ordering::Release);
    let t = Instant::now();
    let built = background.install(|| job.build());
    let build_seconds = t.elapsed().as_secs_f64();
    shared.building.store(false, Ordering::Release);
    let t = Instant::now();
    let (cs, finish_hold) = {
        let mut g = shared.gallery.write();
        let held = Instant::now();
        (g.finish_maintenance(built?)?, ms(held.elapsed()))
    };
    let pause_ms = start_ms + ms(t.elapsed());
    let t = Instant::now();
    shared.store.lock().apply(cs)?;
    Ok(Some(Step {
        vectors,
        build_seconds,
        pause_ms,
        hold_ms: start_hold + finish_hold,
        store_ms: ms(t.elapsed()),
    }))
}

/// Searches `queries` in turn until `done`: the latencies of all searches, and
/// of those started while a segment was being built.
fn spawn_searcher(
    shared: Shared,
    queries: Rows,
    k: usize,
) -> std::thread::JoinHandle<Result<(Vec<f64>, Vec<f64>)>> {
    std::thread::spawn(move || -> Result<(Vec<f64>, Vec<f64>)> {
        let (mut all, mut during) = (Vec::new(), Vec::new());
        // At least one search, however late this thread is scheduled.
        for q in queries.iter().cycle() {
            let was_building = shared.building.load(Ordering::Acquire);
            let t = Instant::now();
            shared.gallery.read().search(q, k, None)?;
            let took = ms(t.elapsed());
            all.push(took);
            if was_building {
                during.push(took);
            }
            if shared.done.load(Ordering::Acquire) {
                break;
            }
        }
        Ok((all, during))
    })
}

/// What enrolling the --add rows one by one cost.
struct Enrolled {
    enroll_ms: Vec<f64>,
    lock_wait_ms: Vec<f64>,
    written: u64,
    seconds: f64,
    /// The error that stopped the enrollments; reported once the other
    /// threads have finished.
    failure: Option<Error>,
}

fn enroll_one_by_one(shared: &Shared, add: &[Vec<f32>], hidden: bool) -> Enrolled {
    let progress = bar(add.len() as u64, "enrolling", hidden);
    let mut out = Enrolled {
        enroll_ms: Vec::with_capacity(add.len()),
        lock_wait_ms: Vec::with_capacity(add.len()),
        written: 0,
        seconds: 0.0,
        failure: None,
    };
    let start = Instant::now();
    for (i, v) in add.iter().enumerate() {
        let t = Instant::now();
        let enrolled = {
            let mut g = shared.gallery.write();
            out.lock_wait_ms.push(ms(t.elapsed()));
            g.enroll(
                &format!("added-{i}"),
                std::slice::from_ref(v),
                None,
                Vec::new(),
            )
        };
        let cs = match enrolled {
            Ok(cs) => cs,
            Err(e) => {
                out.failure = Some(e);
                break;
            }
        };
        out.written += cs.puts.iter().map(|(_, b)| b.len() as u64).sum::<u64>();
        if let Err(e) = shared.store.lock().apply(cs) {
            out.failure = Some(e);
            break;
        }
        out.enroll_ms.push(ms(t.elapsed()));
        progress.inc(1);
        if (i + 1) % (add.len() / 10).max(1) == 0 {
            tracing::info!(
                enrolled = i + 1,
                seconds = start.elapsed().as_secs_f64(),
                "enrolling"
            );
        }
    }
    out.seconds = start.elapsed().as_secs_f64();
    progress.finish_and_clear();
    out
}

/// Top-1 accuracy of a sample of the added rows as queries for their own class.
fn added_found_top1(gallery: &Gallery, add: &[Vec<f32>]) -> Result<f64> {
    let sample: Vec<usize> = (0..add.len()).step_by((add.len() / 1000).max(1)).collect();
    let mut answers = Vec::with_capacity(sample.len());
    for &i in &sample {
        let r = gallery.search(&add[i], 1, None)?;
        answers.push(r.matches.into_iter().map(|m| m.label).collect());
    }
    let truth: Vec<String> = sample.iter().map(|i| format!("added-{i}")).collect();
    Ok(metrics::top_k_accuracy(&answers, &truth, 1))
}

/// `metricann bench-enroll`: runs, then prints the report (JSON with --json).
pub fn main(a: &EnrollBenchArgs) -> Result<()> {
    let r = run(a)?;
    if a.json {
        let json = serde_json::to_string(&r).map_err(|e| Error::Internal(e.to_string()))?;
        println!("{json}");
        return Ok(());
    }
    let l = |x: &Latency| {
        format!(
            "mean {:.3} ms, p50 {:.3}, p99 {:.3}, max {:.3} ({} runs)",
            x.mean_ms, x.p50_ms, x.p99_ms, x.max_ms, x.count
        )
    };
    println!(
        "{} base classes (built in {:.1} s on {} threads), {} enrolled one by one in {:.1} s",
        r.base, r.base_build_seconds, r.build_threads, r.added, r.enroll_seconds
    );
    println!("enroll:  {}", l(&r.enroll));
    println!("  waiting for the gallery: {}", l(&r.enroll_lock_wait));
    println!("search:  {}", l(&r.search));
    println!("  during builds: {}", l(&r.search_during_builds));
    println!(
        "maintenance: {} steps in the background, longest pause {:.2} ms, largest build {:.1} s",
        r.maintenance.len(),
        r.longest_pause_ms,
        r.maintenance
            .iter()
            .map(|s| s.build_seconds)
            .fold(0.0, f64::max)
    );
    println!("added classes found at top-1: {:.3}", r.added_found_top1);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unit_rows(n: usize, dim: usize, seed: u64) -> Vec<Vec<f32>> {
        let mut s = seed | 1;
        (0..n)
            .map(|_| {
                let v: Vec<f32> = (0..dim)
                    .map(|_| {
                        s ^= s << 13;
                        s ^= s >> 7;
                        s ^= s << 17;
                        (s >> 40) as f32 / (1u64 << 24) as f32 - 0.5
                    })
                    .collect();
                let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
                v.into_iter().map(|x| x / n).collect()
            })
            .collect()
    }

    #[test]
    fn enrolls_every_row_with_background_maintenance() {
        let dir = tempfile::tempdir().unwrap();
        let (base, add) = (dir.path().join("base.npy"), dir.path().join("add.npy"));
        crate::npy::write_f32(&base, &unit_rows(300, 16, 1), 16).unwrap();
        crate::npy::write_f32(&add, &unit_rows(200, 16, 2), 16).unwrap();
        let r = run(&EnrollBenchArgs {
            base,
            add,
            queries: None,
            k: 5,
            threads: 1,
            background_threads: 1,
            segment_size: 32,
            base_gallery: None,
            json: true,
        })
        .unwrap();
        assert_eq!((r.base, r.added, r.enroll.count), (300, 200, 200));
        // Seals, and the merges they lead to (the background thread may seal
        // more than one segment's worth at a time when it lags).
        assert!(!r.maintenance.is_empty());
        assert!(r.segments_after < 10, "{} segments", r.segments_after);
        assert!(
            r.maintenance
                .iter()
                .all(|s| s.vectors > 0 && s.pause_ms >= 0.0)
        );
        assert!(r.search.count > 0);
        assert_eq!(r.added_found_top1, 1.0);
        assert!(r.enroll_bytes_written > 0);
        assert_eq!(r.enroll_lock_wait.count, 200);
        assert!(r.enroll_lock_wait.mean_ms <= r.enroll.mean_ms);
        assert!(r.maintenance.iter().all(|s| s.hold_ms <= s.pause_ms));
    }

    #[test]
    fn a_saved_starting_gallery_is_loaded_not_rebuilt() {
        let dir = tempfile::tempdir().unwrap();
        let (base, add) = (dir.path().join("base.npy"), dir.path().join("add.npy"));
        crate::npy::write_f32(&base, &unit_rows(100, 8, 3), 8).unwrap();
        crate::npy::write_f32(&add, &unit_rows(20, 8, 4), 8).unwrap();
        let saved = dir.path().join("base-gallery");
        let args = |base: &Path| EnrollBenchArgs {
            base: base.to_path_buf(),
            add: add.clone(),
            queries: None,
            k: 3,
            threads: 1,
            background_threads: 1,
            segment_size: 1000,
            base_gallery: Some(saved.clone()),
            json: true,
        };
        let first = run(&args(&base)).unwrap();
        assert!(saved.join(MANIFEST).exists());
        let second = run(&args(&base)).unwrap();
        assert_eq!((second.base, second.added_found_top1), (100, 1.0));
        assert_eq!(second.base_build_seconds, first.base_build_seconds);
        // Enrollments of the first run were not saved into it.
        let fs = FsStore::open_read_only(&saved).unwrap();
        let (g, _) = Gallery::open(&fs, Some(FINGERPRINT), OpenMode::Strict).unwrap();
        assert_eq!(g.stats().classes, 100);
        // Another --base of a different size is refused.
        let other = dir.path().join("other.npy");
        crate::npy::write_f32(&other, &unit_rows(50, 8, 5), 8).unwrap();
        let err = run(&args(&other)).unwrap_err();
        assert!(err.to_string().contains("100 classes"), "{err}");
    }
}
