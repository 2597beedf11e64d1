//! Measuring: `eval` (few-shot recognition on unseen classes) and
//! `bench-train` (training throughput).

use std::fs;
use std::path::{Path, PathBuf};

use clap::Args;

use metricann::embed::Embedder;
use metricann::{Error, Result};

use super::common::{
    check_one_label_per_vector, embed_images, embedder, load_images, open_folder, print_json,
    print_report, read_label_rows, read_meta, to_json,
};
use super::model::TrainArch;
use crate::eval::{EpisodicEval, GalleryEval, Support};

#[derive(Args, Debug)]
pub struct EvalArgs {
    /// The model to evaluate (or --baseline, or --embeddings).
    #[arg(long, required_unless_present_any = ["baseline", "embeddings"])]
    pub model: Option<PathBuf>,
    /// ImageFolder of the classes to evaluate on.
    #[arg(long, required_unless_present = "embeddings")]
    pub data: Option<PathBuf>,
    /// Evaluate vectors that `extract` wrote (vectors.npy, labels.tsv, meta.json) instead
    /// of embedding --data again: one extraction, many protocols.
    #[arg(long, conflicts_with_all = ["model", "data", "baseline"])]
    pub embeddings: Option<PathBuf>,
    /// A non-learned baseline instead of a model: `pixels` (16×16 grey, centred, unit length).
    #[arg(long, conflicts_with = "model")]
    pub baseline: Option<String>,
    /// Images enrolled per class; the rest are queries. Several (`1,3`) evaluate
    /// the same vectors once per count, one JSON line each.
    #[arg(long, value_delimiter = ',', default_value = "1")]
    pub shots: Vec<usize>,
    /// Enroll only images whose file name starts with this (e.g. `enroll-`) and
    /// query with the others, instead of picking --shots images at random (with
    /// --embeddings: the file names of labels.tsv's first column).
    #[arg(long)]
    pub support_prefix: Option<String>,
    /// --data (or --embeddings) holds one folder per source (emoji/, photo/, ...):
    /// evaluate each apart, with the model loaded once; every JSON line names its source.
    #[arg(long)]
    pub per_source: bool,
    /// Also run N-way episodes (Prototypical Networks protocol).
    #[arg(long)]
    pub ways: Option<usize>,
    /// Episodes to run with --ways.
    #[arg(long, default_value_t = 1000)]
    pub episodes: usize,
    /// Queries per class in an episode.
    #[arg(long, default_value_t = 5)]
    pub queries: usize,
    /// Seed for picking the enrolled images and the episodes.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Backend to embed with: ndarray, wgpu or cuda.
    #[arg(long, default_value = "ndarray")]
    pub backend: String,
    /// Print one JSON object per --shots count (and source) on stdout.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct BenchTrainArgs {
    /// Backend to time: ndarray, wgpu or cuda.
    #[arg(long, default_value = "ndarray")]
    pub backend: String,
    /// Images per step: P classes × --per-class examples.
    #[arg(long, default_value_t = 256)]
    pub batch_size: usize,
    /// Examples of each class in a batch (the K of P×K).
    #[arg(long, default_value_t = 4)]
    pub per_class: usize,
    /// Side of the square input images, in pixels.
    #[arg(long, default_value_t = 64)]
    pub input_size: u32,
    /// Channels per stage of resnet-glyph, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "32,64,128,256")]
    pub widths: Vec<usize>,
    /// Length of the embedding vectors.
    #[arg(long, default_value_t = 128)]
    pub embedding_dim: usize,
    /// The network: resnet-glyph (--widths) or efficientnet-lite0.
    #[arg(long, value_enum, default_value = "resnet-glyph")]
    pub arch: TrainArch,
    /// Untimed steps first (kernel compilation and autotuning).
    #[arg(long, default_value_t = 10)]
    pub warmup: usize,
    /// Timed steps.
    #[arg(long, default_value_t = 50)]
    pub steps: usize,
    /// Print the timings as one JSON object on stdout.
    #[arg(long)]
    pub json: bool,
}

pub(super) fn eval(a: EvalArgs) -> Result<()> {
    let model = match (&a.model, &a.embeddings) {
        (Some(path), None) => Some(embedder(path, &a.backend)?),
        _ => None,
    };
    let root = a.embeddings.as_ref().or(a.data.as_ref());
    let sources = match (root, a.per_source) {
        (Some(root), true) => source_folders(root)?,
        (root, _) => vec![(None, root.cloned())],
    };
    for (source, dir) in sources {
        let scored = eval_vectors(&a, dir.as_deref(), model.as_ref())?;
        for &shots in &a.shots {
            eval_shots(&a, &scored, shots, source.as_deref())?;
        }
    }
    Ok(())
}

/// The sub-folders of `root`, sorted, each with its name.
fn source_folders(root: &Path) -> Result<Vec<(Option<String>, Option<PathBuf>)>> {
    let mut found = Vec::new();
    for entry in fs::read_dir(root).map_err(|e| Error::io(root, e))? {
        let path = entry.map_err(|e| Error::io(root, e))?.path();
        if path.is_dir() {
            let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
            found.push((name, Some(path)));
        }
    }
    if found.is_empty() {
        return Err(Error::BadInput(format!(
            "{}: --per-source needs one sub-folder per source",
            root.display()
        )));
    }
    found.sort();
    Ok(found)
}

fn eval_shots(a: &EvalArgs, scored: &Scored, shots: usize, source: Option<&str>) -> Result<()> {
    let Scored {
        vectors,
        labels,
        classes,
        fingerprint,
        marked,
    } = scored;
    let support = match marked {
        Some(marked) => Support::Marked(marked),
        None => Support::Random(a.seed),
    };
    let g = crate::eval::gallery_eval(vectors, labels, classes, fingerprint, shots, support)?;
    let episodic = match a.ways {
        Some(ways) => Some(crate::eval::episodic_eval(
            vectors, labels, ways, shots, a.queries, a.episodes, a.seed,
        )?),
        None => None,
    };
    if a.json {
        print_eval_json(&g, episodic.as_ref(), source)
    } else {
        print_eval(&g, episodic.as_ref(), source);
        Ok(())
    }
}

/// One JSON line: the gallery protocol's keys, plus `episodic` and `source`
/// when there are any.
fn print_eval_json(
    g: &GalleryEval,
    episodic: Option<&EpisodicEval>,
    source: Option<&str>,
) -> Result<()> {
    let mut v = to_json(g)?;
    if let (Some(obj), Some(e)) = (v.as_object_mut(), episodic) {
        obj.insert("episodic".into(), to_json(e)?);
    }
    if let (Some(obj), Some(source)) = (v.as_object_mut(), source) {
        obj.insert("source".into(), source.into());
    }
    print_json(&v);
    Ok(())
}

fn print_eval(g: &GalleryEval, episodic: Option<&EpisodicEval>, source: Option<&str>) {
    println!(
        "{}{} classes, {} queries, {} shot(s)",
        source.map(|s| format!("{s}: ")).unwrap_or_default(),
        g.classes,
        g.queries,
        g.shots
    );
    println!(
        "top-1 {:.4}  top-5 {:.4}  MRR {:.4}  MAP@R {:.4}",
        g.top1, g.top5, g.mrr, g.map_at_r
    );
    if let Some(e) = episodic {
        println!(
            "{}-way {}-shot, {} episodes: accuracy {:.4} ± {:.4}",
            e.ways, e.shots, e.episodes, e.accuracy, e.ci95
        );
    }
}

/// What `eval` scores: one vector per image, its class id, the class names and
/// the fingerprint of what made the vectors.
struct Scored {
    vectors: Vec<Vec<f32>>,
    labels: Vec<usize>,
    classes: Vec<String>,
    fingerprint: String,
    /// With --support-prefix: which images are enrollment images.
    marked: Option<Vec<bool>>,
}

/// The vectors `eval` scores: from a model, a baseline, or an earlier `extract`.
/// `dir` is --data's image folder, or with --embeddings the extracted vectors'.
fn eval_vectors(a: &EvalArgs, dir: Option<&Path>, model: Option<&Embedder>) -> Result<Scored> {
    if a.embeddings.is_some() {
        let dir = dir.ok_or_else(|| Error::BadInput("--embeddings is required".into()))?;
        return extracted_vectors(dir, a.support_prefix.as_deref());
    }
    let data_dir = dir.ok_or_else(|| Error::BadInput("--data is required".into()))?;
    let folder = open_folder(data_dir)?;
    let data = load_images(&folder, a.json)?;
    let (vectors, fingerprint) = match (&a.baseline, &a.model) {
        (Some(name), _) if name == "pixels" => {
            let v = data
                .images
                .iter()
                .map(|i| crate::eval::pixel_vector(i, 16))
                .collect();
            (v, "pixels-16x16".to_string())
        }
        (Some(name), _) => {
            return Err(Error::BadInput(format!(
                "--baseline {name}: the baseline is `pixels`"
            )));
        }
        (None, Some(_)) => {
            let embedder =
                model.ok_or_else(|| Error::Internal("the model was not loaded".into()))?;
            let vectors = embed_images(embedder, &data.images, a.json)?;
            (vectors, embedder.fingerprint().to_string())
        }
        (None, None) => return Err(Error::BadInput("--model or --baseline is required".into())),
    };
    let marked = a
        .support_prefix
        .as_ref()
        .map(|prefix| marked_by_prefix(folder.items().iter().map(|i| i.path.as_path()), prefix));
    Ok(Scored {
        vectors,
        labels: data.labels,
        classes: data.classes,
        fingerprint,
        marked,
    })
}

/// The vectors `extract` wrote to `dir`, their classes numbered in name order.
fn extracted_vectors(dir: &Path, support_prefix: Option<&str>) -> Result<Scored> {
    let vectors = crate::npy::read_f32(&dir.join("vectors.npy"))?;
    let rows = read_label_rows(&dir.join("labels.tsv"))?;
    let names: Vec<String> = rows.iter().map(|(_, c)| c.clone()).collect();
    check_one_label_per_vector(vectors.len(), names.len(), dir)?;
    let meta = read_meta(dir)?;
    let fingerprint = meta["fingerprint"]
        .as_str()
        .unwrap_or("extracted")
        .to_string();
    let mut classes: Vec<String> = names.clone();
    classes.sort();
    classes.dedup();
    let labels = names
        .iter()
        .map(|n| classes.binary_search(n).unwrap_or_default())
        .collect();
    let marked = support_prefix
        .map(|prefix| marked_by_prefix(rows.iter().map(|(f, _)| Path::new(f.as_str())), prefix));
    Ok(Scored {
        vectors,
        labels,
        classes,
        fingerprint,
        marked,
    })
}

/// Which images are enrollment images: those whose file name starts with `prefix`.
fn marked_by_prefix<'a>(files: impl Iterator<Item = &'a Path>, prefix: &str) -> Vec<bool> {
    files
        .map(|f| {
            f.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with(prefix))
        })
        .collect()
}

pub(super) fn bench_train(a: BenchTrainArgs) -> Result<()> {
    let architecture = a.arch.architecture(a.widths, 1, a.embedding_dim);
    let report = crate::train::benchmark_steps(
        a.backend.parse()?,
        &architecture,
        a.batch_size,
        a.per_class,
        a.input_size,
        a.warmup,
        a.steps,
    )?;
    if a.json {
        return print_report(&report);
    }
    println!(
        "{}: {:.0} images/s ({} steps of {} at {}px in {:.2}s)",
        report.backend,
        report.images_per_sec,
        report.steps,
        report.batch_size,
        report.input_size,
        report.seconds
    );
    Ok(())
}
