//! `metricann stress`: one gallery in a directory under load, natively.
//!
//! A writer thread holds the gallery (and the store's writer lock) and mutates
//! it without pause: enroll, remove, rename, set metadata, maintain, optimize.
//! Reader threads meanwhile reopen the directory read-only, check what they
//! find against the writer's journal of acknowledged mutations, search it, and
//! try to open it for writing (which must fail with `LOCKED`). Then the writer
//! runs enroll/remove cycles and samples the process's memory and the bytes on
//! disk, which must stay flat. At the end the gallery is reopened and must hold
//! exactly the acknowledged state.
//!
//! Labels are never reused, so a label's life is: enrolled, then perhaps
//! removed or renamed away, then gone for good. That makes the checks exact:
//! a reader that starts opening after a mutation was acknowledged must see it,
//! and no search may return a label whose removal was acknowledged before the
//! reader started opening.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use clap::Args;
use parking_lot::Mutex;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;

use metricann::gallery::{Gallery, GalleryConfig, OpenMode};
use metricann::index::IndexConfig;
use metricann::store::{BlobStore, FsStore};
use metricann::{Error, Result};

use crate::ann_bench::proc_status;
use crate::cli::common::print_report;
use crate::enroll_bench::bar;

const FINGERPRINT: &str = "stress";

#[derive(Args, Debug)]
pub struct StressArgs {
    /// Directory for the gallery; must not hold one (default: a new directory
    /// under the system's temp directory, removed afterwards).
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Seconds of mixed load (the writer and the readers together).
    #[arg(long, default_value_t = 600)]
    pub seconds: u64,
    /// Threads reopening, checking and searching the gallery meanwhile.
    #[arg(long, default_value_t = 2)]
    pub readers: usize,
    /// Enroll/remove cycles of the memory check, after the mixed load.
    #[arg(long, default_value_t = 10_000)]
    pub cycles: usize,
    /// Dimension of the random embeddings.
    #[arg(long, default_value_t = 64)]
    pub dim: usize,
    /// Seed of the mutations and the vectors.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Print the report as one JSON object on stdout.
    #[arg(long)]
    pub json: bool,
}

/// What the writer has acknowledged (its store committed), and what it is doing.
#[derive(Clone, Default)]
struct Journal {
    present: BTreeSet<String>,
    gone: BTreeSet<String>,
    /// Labels of the mutation being applied: either state is allowed for them.
    in_flight: Vec<String>,
    /// A change set is being applied (blobs may vanish under a reader).
    applying: bool,
    /// Change sets applied or being applied.
    applies: u64,
    /// The vector each present class was enrolled with.
    vectors: HashMap<String, Vec<f32>>,
}

#[derive(Debug, Default, Serialize)]
pub struct Counts {
    pub enroll: u64,
    pub remove: u64,
    pub rename: u64,
    pub metadata: u64,
    pub maintain: u64,
    pub optimize: u64,
}

#[derive(Debug, Default, Serialize)]
pub struct ReaderTotals {
    /// Read-only opens that completed, each checked against the journal.
    pub opens: u64,
    /// Opens that failed because the writer deleted a blob the reader was
    /// about to read (the documented race of a read-only reader; it reopens).
    pub opens_raced: u64,
    pub searches: u64,
    /// Attempts to open the directory for writing: each must fail with LOCKED.
    pub locked_as_expected: u64,
}

#[derive(Debug, Serialize)]
pub struct MemorySample {
    pub cycle: usize,
    pub rss_bytes: Option<u64>,
    pub disk_bytes: u64,
    pub blobs: usize,
}

#[derive(Debug, Serialize)]
pub struct StressReport {
    pub seconds: f64,
    pub readers: usize,
    /// Mutations of the mixed load (the cycles come on top).
    pub mutations: u64,
    pub by_kind: Counts,
    pub reader: ReaderTotals,
    /// Acknowledged mutations missing from a reader's view, removed classes
    /// seen or returned by a search, unexpected errors, a second writer let in.
    pub violations: Vec<String>,
    pub cycles: usize,
    pub memory: Vec<MemorySample>,
    pub final_classes: usize,
    pub final_matches_journal: bool,
}

/// Runs the stress test; an error when any check failed (after the report).
pub fn run(a: &StressArgs) -> Result<StressReport> {
    if a.dim == 0 || a.readers == 0 {
        return Err(Error::BadInput(
            "--dim and --readers must be at least 1".into(),
        ));
    }
    let default_dir = std::env::temp_dir().join(format!("metricann-stress-{}", std::process::id()));
    let dir = a.dir.clone().unwrap_or_else(|| default_dir.clone());
    let report = stress(a, &dir);
    if a.dir.is_none() {
        let _ = std::fs::remove_dir_all(&default_dir);
    }
    report
}

fn stress(a: &StressArgs, dir: &Path) -> Result<StressReport> {
    let mut store = FsStore::create(dir)?;
    let (gallery, created) = Gallery::create(GalleryConfig {
        dim: a.dim,
        fingerprint: FINGERPRINT.into(),
        index: IndexConfig {
            growing_capacity: 256,
            ..IndexConfig::default()
        },
        head: None,
    })?;
    store.apply(created)?;
    let mut writer = Writer {
        gallery,
        store,
        journal: Arc::new(Mutex::new(Journal::default())),
        rng: StdRng::seed_from_u64(a.seed),
        dim: a.dim,
        next: 0,
        counts: Counts::default(),
    };
    let violations = Arc::new(Mutex::new(Vec::new()));
    let started = Instant::now();
    let (mutations, reader) = mixed_load(a, dir, &mut writer, &violations)?;
    let seconds = started.elapsed().as_secs_f64();
    let by_kind = std::mem::take(&mut writer.counts);
    let memory = writer.cycles(a.cycles, dir, a.json)?;
    drop(writer.store);
    let (final_classes, final_matches_journal) = check_final(dir, &writer.journal.lock())?;
    let violations = std::mem::take(&mut *violations.lock());
    Ok(StressReport {
        seconds,
        readers: a.readers,
        mutations,
        by_kind,
        reader,
        violations,
        cycles: a.cycles,
        memory,
        final_classes,
        final_matches_journal,
    })
}

/// The writer mutating for `--seconds` while the readers check.
fn mixed_load(
    a: &StressArgs,
    dir: &Path,
    writer: &mut Writer,
    violations: &Arc<Mutex<Vec<String>>>,
) -> Result<(u64, ReaderTotals)> {
    let done = Arc::new(AtomicBool::new(false));
    let readers: Vec<_> = (0..a.readers)
        .map(|i| {
            let reader = Reader {
                dir: dir.to_path_buf(),
                journal: writer.journal.clone(),
                violations: violations.clone(),
                rng: StdRng::seed_from_u64(a.seed ^ (0x5eed << 8) ^ i as u64),
                totals: ReaderTotals::default(),
            };
            let done = done.clone();
            std::thread::spawn(move || reader.run(&done))
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(a.seconds);
    let bar = bar(a.seconds, "mixed load (s)", a.json);
    let mut mutations = 0u64;
    let mut outcome = Ok(());
    while Instant::now() < deadline {
        if let Err(e) = writer.mutate() {
            outcome = Err(e);
            break;
        }
        mutations += 1;
        bar.set_position(a.seconds - deadline.saturating_duration_since(Instant::now()).as_secs());
    }
    bar.finish_and_clear();
    done.store(true, Ordering::Release);
    let mut totals = ReaderTotals::default();
    for reader in readers {
        let t = reader
            .join()
            .map_err(|_| Error::Internal("a reader thread panicked".into()))?;
        totals.opens += t.opens;
        totals.opens_raced += t.opens_raced;
        totals.searches += t.searches;
        totals.locked_as_expected += t.locked_as_expected;
    }
    tracing::info!(
        mutations,
        opens = totals.opens,
        searches = totals.searches,
        "mixed load done"
    );
    outcome.map(|()| (mutations, totals))
}

struct Writer {
    gallery: Gallery,
    store: FsStore,
    journal: Arc<Mutex<Journal>>,
    rng: StdRng,
    dim: usize,
    next: u64,
    counts: Counts,
}

impl Writer {
    fn fresh_label(&mut self, prefix: &str) -> String {
        self.next += 1;
        format!("{prefix}{}", self.next)
    }

    fn vector(&mut self) -> Vec<f32> {
        (0..self.dim)
            .map(|_| self.rng.random_range(-1.0..1.0))
            .collect()
    }

    /// One random mutation, applied and acknowledged in the journal.
    fn mutate(&mut self) -> Result<()> {
        let (present, pick) = {
            let journal = self.journal.lock();
            let n = journal.present.len();
            let pick = (n > 0).then(|| self.rng.random_range(0..n));
            (n, pick.and_then(|i| journal.present.iter().nth(i).cloned()))
        };
        let roll = self.rng.random_range(0..100);
        match pick {
            Some(label) if roll < 25 || present > 2_000 => self.remove(&label),
            Some(label) if roll < 35 => {
                let new = self.fresh_label("r");
                self.rename(&label, &new)
            }
            Some(label) if roll < 40 => {
                let changes = self
                    .gallery
                    .set_metadata(&label, Some(serde_json::json!({ "n": self.next })))?;
                self.counts.metadata += 1;
                self.commit(vec![label], changes, |_| {})
            }
            _ if roll < 43 => {
                self.counts.maintain += 1;
                match self.gallery.maintain()? {
                    Some(changes) => self.commit(Vec::new(), changes, |_| {}),
                    None => Ok(()),
                }
            }
            _ if roll < 44 => {
                self.counts.optimize += 1;
                match self.gallery.optimize()? {
                    Some(changes) => self.commit(Vec::new(), changes, |_| {}),
                    None => Ok(()),
                }
            }
            _ => {
                let label = self.fresh_label("c");
                self.enroll(&label)
            }
        }
    }

    fn enroll(&mut self, label: &str) -> Result<()> {
        let vector = self.vector();
        let changes =
            self.gallery
                .enroll(label, std::slice::from_ref(&vector), None, Vec::new())?;
        self.counts.enroll += 1;
        let owned = label.to_string();
        self.commit(vec![owned.clone()], changes, move |j| {
            j.present.insert(owned.clone());
            j.vectors.insert(owned, vector);
        })
    }

    fn remove(&mut self, label: &str) -> Result<()> {
        let changes = self.gallery.remove(label)?;
        self.counts.remove += 1;
        let owned = label.to_string();
        self.commit(vec![owned.clone()], changes, move |j| {
            j.present.remove(&owned);
            j.vectors.remove(&owned);
            j.gone.insert(owned);
        })
    }

    fn rename(&mut self, old: &str, new: &str) -> Result<()> {
        let changes = self.gallery.rename(old, new)?;
        self.counts.rename += 1;
        let (old, new) = (old.to_string(), new.to_string());
        self.commit(vec![old.clone(), new.clone()], changes, move |j| {
            j.present.remove(&old);
            if let Some(v) = j.vectors.remove(&old) {
                j.vectors.insert(new.clone(), v);
            }
            j.gone.insert(old);
            j.present.insert(new);
        })
    }

    /// Applies `changes` with `labels` marked in flight, then acknowledges
    /// them in the journal.
    fn commit(
        &mut self,
        labels: Vec<String>,
        changes: metricann::blob::ChangeSet,
        acknowledge: impl FnOnce(&mut Journal),
    ) -> Result<()> {
        {
            let mut journal = self.journal.lock();
            journal.in_flight = labels;
            journal.applying = true;
            journal.applies += 1;
        }
        self.store.apply(changes)?;
        let mut journal = self.journal.lock();
        acknowledge(&mut journal);
        journal.in_flight.clear();
        journal.applying = false;
        Ok(())
    }

    /// Enroll/remove cycles (with maintenance as an application runs it),
    /// sampling memory and disk ten times.
    fn cycles(&mut self, cycles: usize, dir: &Path, quiet: bool) -> Result<Vec<MemorySample>> {
        let bar = bar(cycles as u64, "enroll/remove cycles", quiet);
        let every = (cycles / 10).max(1);
        let mut samples = Vec::new();
        for cycle in 0..=cycles {
            if cycle % every == 0 {
                let (disk_bytes, blobs) = disk_usage(dir)?;
                samples.push(MemorySample {
                    cycle,
                    rss_bytes: proc_status("VmRSS"),
                    disk_bytes,
                    blobs,
                });
            }
            if cycle == cycles {
                break;
            }
            let label = self.fresh_label("m");
            self.enroll(&label)?;
            self.remove(&label)?;
            while let Some(changes) = self.gallery.maintain()? {
                self.commit(Vec::new(), changes, |_| {})?;
            }
            bar.inc(1);
        }
        bar.finish_and_clear();
        Ok(samples)
    }
}

struct Reader {
    dir: PathBuf,
    journal: Arc<Mutex<Journal>>,
    violations: Arc<Mutex<Vec<String>>>,
    rng: StdRng,
    totals: ReaderTotals,
}

impl Reader {
    fn run(mut self, done: &AtomicBool) -> ReaderTotals {
        while !done.load(Ordering::Acquire) {
            self.round();
        }
        self.totals
    }

    fn violation(&self, what: String) {
        tracing::error!(%what, "stress: violation");
        self.violations.lock().push(what);
    }

    /// Tries to write, reopens read-only, checks the view and searches it.
    fn round(&mut self) {
        match FsStore::open(&self.dir) {
            Err(Error::Locked(_)) => self.totals.locked_as_expected += 1,
            Ok(_) => self.violation("a second writer opened the store".into()),
            Err(e) => self.violation(format!("opening for writing: {e} (expected LOCKED)")),
        }
        let before = self.journal.lock().clone();
        let opened = FsStore::open_read_only(&self.dir)
            .and_then(|store| Gallery::open(&store, Some(FINGERPRINT), OpenMode::Strict));
        let after = self.journal.lock().clone();
        let gallery = match opened {
            Ok((gallery, _)) => gallery,
            // The writer deleted a blob of the manifest this reader had read.
            Err(_) if before.applying || after.applies != before.applies => {
                self.totals.opens_raced += 1;
                return;
            }
            Err(e) => {
                return self.violation(format!("read-only open with no write meanwhile: {e}"));
            }
        };
        self.totals.opens += 1;
        self.check_view(&gallery, &before, &after);
        self.search(&gallery, &before);
    }

    /// Every class acknowledged before the open began and not touched since is
    /// there; none acknowledged gone before the open began is.
    fn check_view(&self, gallery: &Gallery, before: &Journal, after: &Journal) {
        let seen: BTreeSet<String> = gallery.classes().into_iter().map(|c| c.label).collect();
        let touched = |l: &String| after.gone.contains(l) || after.in_flight.contains(l);
        if let Some(l) = before
            .present
            .iter()
            .find(|l| !touched(l) && !seen.contains(*l))
        {
            self.violation(format!(
                "acknowledged class {l:?} missing from a reopened gallery"
            ));
        }
        if let Some(l) = before.gone.iter().find(|l| seen.contains(*l)) {
            self.violation(format!(
                "class {l:?} still listed after its removal was acknowledged"
            ));
        }
    }

    fn search(&mut self, gallery: &Gallery, before: &Journal) {
        for _ in 0..8 {
            let Some(query) = random_vector_of(&mut self.rng, before) else {
                return;
            };
            match gallery.search(&query, 10, None) {
                Ok(result) => {
                    self.totals.searches += 1;
                    if let Some(m) = result
                        .matches
                        .iter()
                        .find(|m| before.gone.contains(&m.label))
                    {
                        self.violation(format!("search returned removed class {:?}", m.label));
                    }
                }
                Err(e) => self.violation(format!("search failed: {e}")),
            }
        }
    }
}

fn random_vector_of(rng: &mut StdRng, journal: &Journal) -> Option<Vec<f32>> {
    let n = journal.vectors.len();
    (n > 0).then(|| {
        journal
            .vectors
            .values()
            .nth(rng.random_range(0..n))
            .cloned()
    })?
}

/// The reopened gallery's classes, and whether they are exactly the journal's.
fn check_final(dir: &Path, journal: &Journal) -> Result<(usize, bool)> {
    let store = FsStore::open(dir)?;
    let (gallery, damage) = Gallery::open(&store, Some(FINGERPRINT), OpenMode::Strict)?;
    let seen: BTreeSet<String> = gallery.classes().into_iter().map(|c| c.label).collect();
    Ok((seen.len(), damage.is_empty() && seen == journal.present))
}

fn disk_usage(dir: &Path) -> Result<(u64, usize)> {
    let entries = std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))?;
    let (mut bytes, mut files) = (0, 0);
    for entry in entries.flatten() {
        if let Ok(meta) = entry.metadata() {
            bytes += meta.len();
            files += 1;
        }
    }
    Ok((bytes, files))
}

/// Runs the command: the report, then an error if any check failed.
pub fn main(a: &StressArgs) -> Result<()> {
    let r = run(a)?;
    if a.json {
        print_report(&r)?;
    } else {
        println!(
            "{} mutations in {:.0} s ({:?}); readers: {:?}",
            r.mutations, r.seconds, r.by_kind, r.reader
        );
        for s in &r.memory {
            println!(
                "cycle {:>6}: RSS {:>6.1} MiB, {} blobs, {} bytes on disk",
                s.cycle,
                s.rss_bytes.unwrap_or(0) as f64 / 1048576.0,
                s.blobs,
                s.disk_bytes
            );
        }
        println!(
            "final: {} classes, matches the journal: {}",
            r.final_classes, r.final_matches_journal
        );
    }
    if !r.violations.is_empty() || !r.final_matches_journal {
        return Err(Error::Internal(format!(
            "stress: {} violations (first: {:?}); final state matches the journal: {}",
            r.violations.len(),
            r.violations.first(),
            r.final_matches_journal
        )));
    }
    Ok(())
}
