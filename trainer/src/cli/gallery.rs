//! The gallery commands: `build-index`, `search`, `update`, `remove`, `stats`,
//! `quantize` and `export`.

use std::fs;
use std::path::{Path, PathBuf};

use clap::Args;
use indicatif::ProgressBar;
use serde_json::json;
use tracing::info;

use metricann::backend::Backend;
use metricann::blob::ChangeSet;
use metricann::embed::Embedder;
use metricann::gallery::{Enrollment, Gallery, GalleryConfig, OpenMode, SearchResult};
use metricann::index::{IndexConfig, Quantization};
use metricann::store::{BlobStore, FsStore, MemoryStore};
use metricann::{Error, Result};

use super::common::{
    check_one_label_per_vector, embedder, load_bundle, open_folder, print_json, read_labels,
    read_meta, spinner,
};
use crate::dataset::ImageFolder;

#[derive(Args, Debug)]
pub struct BuildIndexArgs {
    /// Folder that `extract` wrote (vectors.npy, labels.tsv, meta.json).
    #[arg(long)]
    pub embeddings: PathBuf,
    /// Folder to create the gallery in (it must not hold one already).
    #[arg(long)]
    pub out: PathBuf,
    /// Vectors in the growing segment before it is sealed into an HNSW graph.
    #[arg(long, default_value_t = 1024)]
    pub segment_size: usize,
    /// How sealed graphs store vectors: none (f32), int8 (a quarter of the
    /// memory; the README's benchmark gives the recall it costs) or
    /// int8-residual (about half, float's recall at int8's search speed).
    #[arg(long, default_value = "none")]
    pub quantize: Quantization,
    /// HNSW efConstruction: candidates weighed for each new node's links.
    /// Lower builds faster, higher finds better neighbours (the recall at a
    /// given search ef).
    #[arg(long, default_value_t = IndexConfig::default().ef_construction)]
    pub ef_construction: usize,
    /// HNSW M (2 to 64): links per node, twice that on the bottom layer. 16
    /// is hnswlib's default; 32 raises the recall a given search ef reaches
    /// on hard data, for more memory and a slower build.
    #[arg(long, default_value_t = IndexConfig::default().m)]
    pub m: usize,
    /// Build one graph over every vector at the end, instead of sealing
    /// segments and merging their tiers as they fill: faster to build, and
    /// faster to search (each segment is searched per query). For bulk loads.
    #[arg(long)]
    pub optimize: bool,
    /// Print the gallery's stats as one JSON object on stdout.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct SearchArgs {
    /// The model bundle the gallery was built with (their fingerprints must match).
    #[arg(long)]
    pub model: PathBuf,
    /// The gallery folder.
    #[arg(long)]
    pub index: PathBuf,
    /// An image to look up; repeat for several.
    #[arg(long = "image", required = true)]
    pub images: Vec<PathBuf>,
    /// Classes to list per image, nearest first.
    #[arg(long, default_value_t = 5)]
    pub k: usize,
    /// Scores below this make a result "unknown" (default: the threshold the
    /// bundle was calibrated with, if any; -1 turns it off).
    #[arg(long)]
    pub threshold: Option<f32>,
    /// Backend to embed with: ndarray, wgpu or cuda.
    #[arg(long, default_value = "ndarray")]
    pub backend: String,
    /// Search what is intact when some segment or class record is damaged.
    #[arg(long)]
    pub skip_damaged: bool,
    /// Print the results as one JSON object on stdout.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct UpdateArgs {
    /// The model bundle the gallery was built with (their fingerprints must match).
    #[arg(long)]
    pub model: PathBuf,
    /// The gallery folder to enroll into.
    #[arg(long)]
    pub index: PathBuf,
    /// ImageFolder of the classes to enroll (new ones, or more examples of known ones).
    #[arg(long)]
    pub new_data: PathBuf,
    /// Backend to embed with: ndarray, wgpu or cuda.
    #[arg(long, default_value = "ndarray")]
    pub backend: String,
    /// Print the gallery's stats as one JSON object on stdout.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct RemoveArgs {
    /// The gallery folder.
    #[arg(long)]
    pub index: PathBuf,
    /// Name of the class to remove, with all its examples.
    #[arg(long)]
    pub class: String,
    /// Print the gallery's stats as one JSON object on stdout.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct StatsArgs {
    /// The gallery folder.
    #[arg(long)]
    pub index: PathBuf,
    /// Print the gallery's stats as one JSON object on stdout.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct QuantizeArgs {
    #[command(flatten)]
    pub gallery: StatsArgs,
    /// int8 (codes: a quarter of the floats' bytes) or int8-residual (codes
    /// plus residual codes: about half, float's recall); a gallery already
    /// int8-residual may become int8, not the other way.
    #[arg(long, default_value = "int8")]
    pub mode: Quantization,
}

#[derive(Args, Debug)]
pub struct ExportArgs {
    /// The gallery folder to export.
    #[arg(long)]
    pub index: PathBuf,
    /// The export file to write (replaced when it exists).
    #[arg(long)]
    pub out: PathBuf,
    /// Print the gallery's stats and the export's size as one JSON object on stdout.
    #[arg(long)]
    pub json: bool,
}

pub(super) fn build_index(a: BuildIndexArgs) -> Result<()> {
    let extracted = read_embeddings(&a.embeddings)?;
    if a.out.join("manifest").exists() {
        return Err(Error::BadInput(format!(
            "{} already holds an index; use update",
            a.out.display()
        )));
    }
    let (mut gallery, created) = Gallery::create(GalleryConfig {
        dim: extracted.dim,
        fingerprint: extracted.fingerprint,
        index: IndexConfig {
            growing_capacity: a.segment_size,
            quantization: a.quantize,
            ef_construction: a.ef_construction,
            m: a.m,
            ..IndexConfig::default()
        },
        head: None,
    })?;
    // Built in memory, then written in one atomic commit.
    let mut staging = MemoryStore::default();
    staging.apply(created)?;
    if a.optimize {
        enroll_as_one_graph(&mut gallery, &mut staging, extracted.classes, a.json)?;
    } else {
        enroll_by_segment(&mut gallery, &mut staging, extracted.classes, &a)?;
    }
    let mut store = FsStore::create(&a.out)?;
    store.apply(staging.snapshot())?;
    print_stats("built", &gallery, a.json, json!({}));
    Ok(())
}

/// What `extract` wrote, as `build-index` needs it.
struct Extracted {
    /// The fingerprint of the model that made the vectors.
    fingerprint: String,
    dim: usize,
    /// One enrollment a class, in label order.
    classes: Vec<Enrollment>,
}

fn read_embeddings(dir: &Path) -> Result<Extracted> {
    let vectors = crate::npy::read_f32(&dir.join("vectors.npy"))?;
    let labels = read_labels(&dir.join("labels.tsv"))?;
    let meta = read_meta(dir)?;
    let fingerprint = meta["fingerprint"].as_str().ok_or_else(|| {
        Error::BadInput(format!(
            "{}: no fingerprint",
            dir.join("meta.json").display()
        ))
    })?;
    check_one_label_per_vector(vectors.len(), labels.len(), dir)?;
    let dim = vectors
        .first()
        .map(Vec::len)
        .ok_or_else(|| Error::BadInput("no vectors to index".into()))?;
    Ok(Extracted {
        fingerprint: fingerprint.to_string(),
        dim,
        classes: Enrollment::by_label(labels, vectors),
    })
}

/// Enrolls every class, one batch (one chunk, one class page, one manifest)
/// per segment's worth of vectors, so each batch seals into a segment and the
/// tiers merge them.
fn enroll_by_segment(
    gallery: &mut Gallery,
    staging: &mut MemoryStore,
    classes: Vec<Enrollment>,
    a: &BuildIndexArgs,
) -> Result<()> {
    let bar = spinner(classes.len() as u64, "indexing", a.json);
    let mut batch: Vec<Enrollment> = Vec::new();
    let mut pending = 0;
    for class in classes {
        pending += class.vectors.len();
        batch.push(class);
        if pending >= a.segment_size {
            staging.apply(gallery.enroll_batch(&batch)?)?;
            bar.inc(batch.len() as u64);
            batch.clear();
            pending = 0;
        }
    }
    if !batch.is_empty() {
        staging.apply(gallery.enroll_batch(&batch)?)?;
    }
    bar.finish_and_clear();
    Ok(())
}

/// Enrolls every class into one graph built at once (`--optimize`), with a
/// spinner: no growing segment, no tiers to merge afterwards.
fn enroll_as_one_graph(
    gallery: &mut Gallery,
    staging: &mut MemoryStore,
    classes: Vec<Enrollment>,
    hidden: bool,
) -> Result<()> {
    let vectors: usize = classes.iter().map(|c| c.vectors.len()).sum();
    let bar = if hidden {
        ProgressBar::hidden()
    } else {
        ProgressBar::new_spinner()
    };
    bar.set_message(format!("building one graph over {vectors} vectors"));
    bar.enable_steady_tick(std::time::Duration::from_millis(250));
    let started = std::time::Instant::now();
    staging.apply(gallery.enroll_sealed(classes)?)?;
    bar.finish_and_clear();
    info!(
        vectors,
        seconds = started.elapsed().as_secs_f64(),
        "built one graph"
    );
    Ok(())
}

fn open_gallery(dir: &Path, fingerprint: Option<&str>, mode: OpenMode) -> Result<Gallery> {
    let store = FsStore::open_read_only(dir)?;
    let (gallery, damaged) = Gallery::open(&store, fingerprint, mode)?;
    for d in &damaged {
        eprintln!(
            "warning: skipped damaged {}: {}",
            dir.join(&d.blob).display(),
            d.reason
        );
    }
    Ok(gallery)
}

pub(super) fn search(a: SearchArgs) -> Result<()> {
    let bundle = load_bundle(&a.model)?;
    let threshold = a
        .threshold
        .or(bundle.header.calibration.as_ref().map(|c| c.threshold));
    let embedder = Embedder::new(&bundle, a.backend.parse::<Backend>()?.device()?)?;
    let mode = if a.skip_damaged {
        OpenMode::SkipDamaged
    } else {
        OpenMode::Strict
    };
    let gallery = open_gallery(&a.index, None, mode).map_err(|e| name_in(&a.index, e))?;
    // A gallery adapted on the device embeds queries with its own head.
    let embedder = gallery
        .embedder_for(&embedder)
        .map_err(|e| name_in(&a.index, e))?;
    let mut results = Vec::new();
    for path in &a.images {
        let bytes = fs::read(path).map_err(|e| Error::io(path, e))?;
        let image = metricann::image::decode(&path.display().to_string(), &bytes)?;
        let query = embedder.embed_one(&image)?;
        let found = gallery.search(&query, a.k, threshold)?;
        results.push((path, found));
    }
    if a.json {
        print_results_json(&results);
    } else {
        print_results(&results);
    }
    Ok(())
}

fn print_results_json(results: &[(&PathBuf, SearchResult)]) {
    let out: Vec<_> = results
        .iter()
        .map(|(p, r)| {
            json!({
                "image": p,
                "unknown": r.unknown,
                "matches": r.matches.iter().map(|m| json!({"label": m.label, "score": m.score, "distance": m.distance})).collect::<Vec<_>>(),
            })
        })
        .collect();
    print_json(&json!({ "results": out }));
}

fn print_results(results: &[(&PathBuf, SearchResult)]) {
    for (p, r) in results {
        println!(
            "{}{}",
            p.display(),
            if r.unknown { "  (unknown)" } else { "" }
        );
        for (rank, m) in r.matches.iter().enumerate() {
            println!("  {:>2}. {:<12} score {:.4}", rank + 1, m.label, m.score);
        }
    }
}

/// Errors from the store name the blob; say which index directory it is in.
fn name_in(dir: &Path, e: Error) -> Error {
    match e {
        Error::Corrupt { name, reason } if !name.starts_with(&*dir.to_string_lossy()) => {
            Error::Corrupt {
                name: dir.join(name).display().to_string(),
                reason,
            }
        }
        other => other,
    }
}

pub(super) fn update(a: UpdateArgs) -> Result<()> {
    let embedder = embedder(&a.model, &a.backend)?;
    let mut store = FsStore::open(&a.index)?;
    let (mut gallery, _) =
        Gallery::open(&store, None, OpenMode::Strict).map_err(|e| name_in(&a.index, e))?;
    let embedder = gallery
        .embedder_for(&embedder)
        .map_err(|e| name_in(&a.index, e))?;
    let folder = open_folder(&a.new_data)?;
    check_every_image_readable(&folder, &a.new_data)?;
    let bar = spinner(folder.classes().len() as u64, "enrolling", a.json);
    // All classes go into one change set: a crash leaves the old or the new index.
    let mut changes = ChangeSet::default();
    let mut added = 0;
    for (class, label) in folder.classes().iter().enumerate() {
        let mut images = Vec::new();
        for (i, item) in folder.items().iter().enumerate() {
            if item.class == class {
                images.push(folder.load(i).map_err(|e| Error::BadInput(e.to_string()))?);
            }
        }
        if images.is_empty() {
            continue;
        }
        let vectors = embedder.embed(&images)?;
        added += vectors.len();
        changes = changes.then(gallery.enroll(label, &vectors, None, Vec::new())?);
        bar.inc(1);
    }
    bar.finish_and_clear();
    store.apply(changes)?;
    print_stats("updated", &gallery, a.json, json!({ "added": added }));
    Ok(())
}

/// Training may skip a bad file among thousands; enrolling must not: the
/// gallery would silently miss an example the user meant to add.
fn check_every_image_readable(folder: &ImageFolder, dir: &Path) -> Result<()> {
    if let Some((path, reason)) = folder.skipped().first() {
        return Err(Error::BadInput(format!(
            "{}: {reason} ({} unreadable file(s) in {}; fix or remove them)",
            path.display(),
            folder.skipped().len(),
            dir.display()
        )));
    }
    if !folder.empty_classes().is_empty() {
        return Err(Error::BadInput(format!(
            "class folder(s) with no images in {}: {}",
            dir.display(),
            folder.empty_classes().join(", ")
        )));
    }
    Ok(())
}

pub(super) fn remove(a: RemoveArgs) -> Result<()> {
    let mut store = FsStore::open(&a.index)?;
    let (mut gallery, _) =
        Gallery::open(&store, None, OpenMode::Strict).map_err(|e| name_in(&a.index, e))?;
    let changes = gallery.remove(&a.class)?;
    store.apply(changes)?;
    print_stats("removed", &gallery, a.json, json!({ "removed": a.class }));
    Ok(())
}

pub(super) fn quantize(a: QuantizeArgs) -> Result<()> {
    let QuantizeArgs { gallery: a, mode } = a;
    let mut store = FsStore::open(&a.index)?;
    let (mut gallery, _) =
        Gallery::open(&store, None, OpenMode::Strict).map_err(|e| name_in(&a.index, e))?;
    let changes = gallery.quantize_to(mode)?;
    let written = changes.put_bytes();
    store.apply(changes)?;
    print_stats(
        "quantized",
        &gallery,
        a.json,
        json!({ "written_bytes": written }),
    );
    Ok(())
}

pub(super) fn stats(a: StatsArgs) -> Result<()> {
    let gallery =
        open_gallery(&a.index, None, OpenMode::Strict).map_err(|e| name_in(&a.index, e))?;
    print_stats(
        &a.index.display().to_string(),
        &gallery,
        a.json,
        json!({ "fingerprint": gallery.fingerprint() }),
    );
    Ok(())
}

pub(super) fn export(a: ExportArgs) -> Result<()> {
    let gallery =
        open_gallery(&a.index, None, OpenMode::Strict).map_err(|e| name_in(&a.index, e))?;
    let bytes = gallery.export_bytes()?;
    fs::write(&a.out, &bytes).map_err(|e| Error::io(&a.out, e))?;
    print_stats(
        &a.out.display().to_string(),
        &gallery,
        a.json,
        json!({ "fingerprint": gallery.fingerprint(), "out": a.out, "export_bytes": bytes.len() }),
    );
    Ok(())
}

fn stats_json(gallery: &Gallery) -> serde_json::Value {
    let stats = gallery.stats();
    json!({
        "classes": stats.classes,
        "vectors": stats.vectors,
        "deleted": stats.deleted,
        "segments": stats.segments.iter().map(|s| json!({"name": s.name, "kind": s.kind, "vectors": s.vectors})).collect::<Vec<_>>(),
        "bytes": stats.bytes,
        "memory_bytes": stats.memory_bytes,
        "quantization": stats.quantization,
    })
}

/// A gallery's counts and segments after `what`; `extra` adds the command's
/// own keys to the JSON.
fn print_stats(what: &str, gallery: &Gallery, json_out: bool, extra: serde_json::Value) {
    if json_out {
        let mut v = stats_json(gallery);
        if let (Some(obj), Some(extra)) = (v.as_object_mut(), extra.as_object()) {
            obj.extend(extra.clone());
        }
        print_json(&v);
    } else {
        let s = gallery.stats();
        println!(
            "{what}: {} classes, {} vectors in {} segments",
            s.classes,
            s.vectors,
            s.segments.len()
        );
        for seg in &s.segments {
            println!(
                "  {:<16} {:<8} {:>8} vectors",
                seg.name, seg.kind, seg.vectors
            );
        }
    }
}
