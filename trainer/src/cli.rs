//! The `metricann` command line: one subcommand per pipeline stage.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use clap::{Args, Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;
use tracing::info;

use metricann::backend::Backend;
use metricann::blob::ChangeSet;
use metricann::embed::Embedder;
use metricann::gallery::{Enrollment, Gallery, GalleryConfig, OpenMode};
use metricann::image::Preprocessing;
use metricann::index::{IndexConfig, Quantization};
use metricann::model::{Architecture, Bundle, EfficientNetConfig, ResNetConfig};
use metricann::store::{BlobStore, FsStore, MemoryStore};
use metricann::{Error, Result};

use crate::augment::AugmentConfig;
use crate::dataset::ImageFolder;
use crate::loss::LossKind;
use crate::train::{LabeledImages, TrainOptions};

const EXAMPLES: &str = "\
Examples:
  metricann dataset glyphs --chars gb2312-1 --fonts /usr/share/fonts/truetype/wqy/wqy-zenhei.ttc --out data/train
  metricann train --data data/train --val-split 0.1 --epochs 30 --batch-size 128 --model-out model.bundle
  metricann extract --model model.bundle --data data/unseen --out emb/
  metricann build-index --embeddings emb/ --out gallery/
  metricann build-index --embeddings emb/ --out gallery-int8/ --quantize int8
  metricann build-index --embeddings emb/ --out gallery/ --optimize
  metricann export --index gallery/ --out gallery.export
  metricann search --model model.bundle --index gallery/ --image photo.jpg --k 5
  metricann update --model model.bundle --index gallery/ --new-data more/
  metricann remove --index gallery/ --class 猫
  metricann eval --model model.bundle --data data/unseen --shots 1 --json
  metricann import --pytorch efficientnet-lite0-57934424.pth --arch efficientnet-lite0 --out imagenet.bundle";

/// Few-shot visual recognition: train an embedding model, build a gallery, search it.
#[derive(Parser, Debug)]
#[command(name = "metricann", version, about, after_help = EXAMPLES)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Train an embedding model on an ImageFolder (one sub-folder per class).
    #[command(
        after_help = "Example:\n  metricann train --data fixtures/train --val-data fixtures/val --epochs 2 --batch-size 32 --backend ndarray --model-out m.bundle"
    )]
    Train(TrainArgs),
    /// Embed every image of an ImageFolder into vectors.npy + labels.tsv.
    #[command(
        after_help = "Example:\n  metricann extract --model m.bundle --data unseen/ --out emb/"
    )]
    Extract(ExtractArgs),
    /// Build a gallery index from extracted embeddings.
    #[command(
        after_help = "Examples:\n  metricann build-index --embeddings emb/ --out gallery/\n  metricann build-index --embeddings emb/ --out gallery/ --quantize int8\n  metricann build-index --embeddings emb/ --out gallery/ --optimize   (one graph: bulk loads)"
    )]
    BuildIndex(BuildIndexArgs),
    /// Find the classes nearest to query images.
    #[command(
        after_help = "Example:\n  metricann search --model m.bundle --index gallery/ --image a.png --image b.jpg --k 5 --json"
    )]
    Search(SearchArgs),
    /// Enroll new classes, or new examples of known ones, without rebuilding.
    #[command(
        after_help = "Example:\n  metricann update --model m.bundle --index gallery/ --new-data new/"
    )]
    Update(UpdateArgs),
    /// Remove a class from a gallery.
    #[command(after_help = "Example:\n  metricann remove --index gallery/ --class 猫")]
    Remove(RemoveArgs),
    /// Show a gallery's classes, vectors and segments.
    #[command(after_help = "Example:\n  metricann stats --index gallery/ --json")]
    Stats(StatsArgs),
    /// Quantise a gallery's float graphs to int8 codes in place (a quarter of
    /// the vectors' bytes; see the README on what it costs in recall).
    #[command(
        after_help = "Example:\n  metricann build-index --embeddings emb/ --out gallery/ --optimize\n  metricann quantize --index gallery/ --json"
    )]
    Quantize(StatsArgs),
    /// Pack a gallery into one export file, for the npm package's
    /// `MetricAnn.import` (a gallery built here, loaded in a browser).
    #[command(
        after_help = "Example:\n  metricann build-index --embeddings emb/ --out gallery/ --optimize --quantize int8\n  metricann export --index gallery/ --out gallery.export"
    )]
    Export(ExportArgs),
    /// Print a model bundle's header; optionally record provenance in it.
    #[command(
        after_help = "Examples:\n  metricann inspect --model m.bundle\n  metricann inspect --model m.bundle --set fonts='[\"NotoSansCJK-Regular.ttc\"]' --out m2.bundle"
    )]
    Inspect(InspectArgs),
    /// Few-shot evaluation on unseen classes.
    #[command(
        after_help = "Examples:\n  metricann eval --model m.bundle --data unseen/ --shots 1\n  metricann eval --model m.bundle --data unseen/ --shots 5 --ways 20 --episodes 1000 --json\n  metricann extract --model m.bundle --data unseen/ --out emb/ && metricann eval --embeddings emb/ --shots 3\n  metricann eval --baseline pixels --data unseen/ --shots 1"
    )]
    Eval(EvalArgs),
    /// Choose a bundle's "unknown" threshold on held-out classes and record it in
    /// the header; optionally store the weights in 16 bits.
    #[command(
        after_help = "Example:\n  metricann calibrate --model objects-f32.bundle --data val/ --half --out objects.bundle --json"
    )]
    Calibrate(crate::calibrate::CalibrateArgs),
    /// Time bare training steps on random images (for framework comparisons).
    #[command(
        after_help = "Example:\n  metricann bench-train --backend cuda --batch-size 256 --input-size 64 --steps 50 --json"
    )]
    BenchTrain(BenchTrainArgs),
    /// Benchmark the index as an ANN library: build time, memory, and per ef QPS (one thread) and recall@k.
    #[command(
        after_help = "Examples:\n  metricann bench --base base.npy --queries queries.npy --k 10 --ef 16,32,64,128,256 --json\n  metricann bench --base base.npy --queries queries.npy --gt gt.npy --k 10 --ef 64 --ef 128 --m 32 --ef-construction 100 --threads 1\n  metricann bench --base base.npy --queries queries.npy --gt gt.npy --quantize none,int8 --json"
    )]
    Bench(crate::ann_bench::BenchArgs),
    /// Benchmark enrolling classes one by one into a large gallery, with index maintenance on a background thread and searches running meanwhile.
    #[command(
        after_help = "Examples:\n  metricann bench-enroll --base base.npy --add add.npy --json\n  metricann bench-enroll --base base.npy --add add.npy --queries queries.npy --threads 16 --segment-size 1024"
    )]
    BenchEnroll(crate::enroll_bench::EnrollBenchArgs),
    /// Make datasets.
    #[command(subcommand)]
    Dataset(DatasetCommand),
    /// Turn a pretrained PyTorch checkpoint into a model bundle (the ImageNet
    /// classifier kept, so it can be checked; `train --init` fine-tunes it).
    #[command(
        after_help = "Example:\n  metricann import --pytorch efficientnet-lite0-57934424.pth --arch efficientnet-lite0 --out imagenet.bundle\n  metricann train --init imagenet.bundle --arch efficientnet-lite0 --data photos/ --val-split 0.1 --input-size 160 --model-out objects.bundle"
    )]
    Import(crate::import::ImportArgs),
}

#[derive(Subcommand, Debug)]
pub enum DatasetCommand {
    /// Render Han characters from font files into an ImageFolder (a class per character, an image per font face).
    #[command(
        after_help = "Examples:\n  metricann dataset glyphs --chars gb2312-1 --fonts /usr/share/fonts/truetype/*/*.tt? --out data/train\n  metricann dataset glyphs --chars 'U+4E00..U+4E0F' --fonts a.ttf b.ttc --out tiny/ --size 64"
    )]
    Glyphs(GlyphArgs),
}

/// The networks `train` can build.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum TrainArch {
    ResnetGlyph,
    EfficientnetLite0,
}

#[derive(Args, Debug)]
pub struct TrainArgs {
    /// Training ImageFolder.
    #[arg(long)]
    pub data: PathBuf,
    /// Validation ImageFolder (classes unseen in training).
    #[arg(long, conflicts_with = "val_split")]
    pub val_data: Option<PathBuf>,
    /// Hold out this fraction of the classes for validation.
    #[arg(long)]
    pub val_split: Option<f32>,
    #[arg(long, default_value_t = 10)]
    pub epochs: usize,
    /// Images per batch: P classes × --per-class examples.
    #[arg(long, default_value_t = 64)]
    pub batch_size: usize,
    /// Examples of each class in a batch (the K of P×K).
    #[arg(long, default_value_t = 4)]
    pub per_class: usize,
    /// triplet (batch-hard), triplet-semihard or contrastive.
    #[arg(long, default_value = "triplet")]
    pub loss: String,
    #[arg(long, default_value_t = 0.2)]
    pub margin: f32,
    #[arg(long, default_value_t = 1e-3)]
    pub lr: f64,
    #[arg(long, default_value_t = 5e-4)]
    pub weight_decay: f32,
    /// ndarray, wgpu or cuda.
    #[arg(long, default_value = "ndarray")]
    pub backend: String,
    /// Stop after this many epochs without a better validation MAP@R (0: never).
    #[arg(long, default_value_t = 5)]
    pub patience: usize,
    #[arg(long, default_value = "checkpoints")]
    pub ckpt_dir: PathBuf,
    #[arg(long, default_value = "model.bundle")]
    pub model_out: PathBuf,
    /// Continue from an epoch checkpoint (`CKPT_DIR/epoch-NNN.bundle`).
    #[arg(long)]
    pub resume: Option<PathBuf>,
    #[arg(long, default_value_t = 64)]
    pub input_size: u32,
    #[arg(long, default_value_t = 128)]
    pub embedding_dim: usize,
    /// Channels per stage, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "32,64,128,256")]
    pub widths: Vec<usize>,
    #[arg(long, default_value_t = 1)]
    pub blocks_per_stage: usize,
    /// The network: resnet-glyph (the small glyph CNN, --widths) or efficientnet-lite0.
    #[arg(long, value_enum, default_value = "resnet-glyph")]
    pub arch: TrainArch,
    /// Start from this bundle's backbone (e.g. `metricann import`'s ImageNet network).
    #[arg(long)]
    pub init: Option<PathBuf>,
    /// The backbone's learning rate as a fraction of --lr (the head learns at --lr).
    #[arg(long, default_value_t = 0.1)]
    pub backbone_lr_scale: f64,
    /// Epochs in which the backbone stays frozen and only the head learns.
    #[arg(long, default_value_t = 0)]
    pub freeze_backbone_epochs: usize,
    /// Train without augmentation.
    #[arg(long)]
    pub no_augment: bool,
    /// Allow horizontal flips (off by default: glyphs are not mirror-symmetric).
    #[arg(long)]
    pub flip: bool,
    /// Smallest crop, as a fraction of the image's area (partial views of an object).
    #[arg(long, default_value_t = 0.7)]
    pub crop_min: f32,
    /// Probability of a low-quality JPEG round trip per training image.
    #[arg(long, default_value_t = 0.0)]
    pub jpeg_prob: f32,
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Print the report as one JSON object on stdout.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct ExtractArgs {
    #[arg(long)]
    pub model: PathBuf,
    #[arg(long)]
    pub data: PathBuf,
    #[arg(long)]
    pub out: PathBuf,
    #[arg(long, default_value = "ndarray")]
    pub backend: String,
    #[arg(long, default_value_t = 32)]
    pub batch_size: usize,
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct BuildIndexArgs {
    #[arg(long)]
    pub embeddings: PathBuf,
    #[arg(long)]
    pub out: PathBuf,
    /// Vectors in the growing segment before it is sealed into an HNSW graph.
    #[arg(long, default_value_t = 1024)]
    pub segment_size: usize,
    /// How sealed graphs store vectors: none (f32) or int8 (a quarter of the
    /// memory; the README's benchmark gives the recall it costs).
    #[arg(long, default_value = "none")]
    pub quantize: Quantization,
    /// HNSW efConstruction: candidates weighed for each new node's links.
    /// Lower builds faster, higher finds better neighbours (the recall at a
    /// given search ef).
    #[arg(long, default_value_t = IndexConfig::default().ef_construction)]
    pub ef_construction: usize,
    /// Build one graph over every vector at the end, instead of sealing
    /// segments and merging their tiers as they fill: faster to build, and
    /// faster to search (each segment is searched per query). For bulk loads.
    #[arg(long)]
    pub optimize: bool,
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct SearchArgs {
    #[arg(long)]
    pub model: PathBuf,
    #[arg(long)]
    pub index: PathBuf,
    #[arg(long = "image", required = true)]
    pub images: Vec<PathBuf>,
    #[arg(long, default_value_t = 5)]
    pub k: usize,
    /// Scores below this make a result "unknown" (default: the threshold the
    /// bundle was calibrated with, if any; -1 turns it off).
    #[arg(long)]
    pub threshold: Option<f32>,
    #[arg(long, default_value = "ndarray")]
    pub backend: String,
    /// Search what is intact when some segment or class record is damaged.
    #[arg(long)]
    pub skip_damaged: bool,
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct UpdateArgs {
    #[arg(long)]
    pub model: PathBuf,
    #[arg(long)]
    pub index: PathBuf,
    #[arg(long)]
    pub new_data: PathBuf,
    #[arg(long, default_value = "ndarray")]
    pub backend: String,
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct RemoveArgs {
    #[arg(long)]
    pub index: PathBuf,
    #[arg(long)]
    pub class: String,
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct StatsArgs {
    #[arg(long)]
    pub index: PathBuf,
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct ExportArgs {
    #[arg(long)]
    pub index: PathBuf,
    /// The export file to write (replaced when it exists).
    #[arg(long)]
    pub out: PathBuf,
    #[arg(long)]
    pub json: bool,
}

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
    #[arg(long, default_value_t = 1000)]
    pub episodes: usize,
    /// Queries per class in an episode.
    #[arg(long, default_value_t = 5)]
    pub queries: usize,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    #[arg(long, default_value = "ndarray")]
    pub backend: String,
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct BenchTrainArgs {
    #[arg(long, default_value = "ndarray")]
    pub backend: String,
    #[arg(long, default_value_t = 256)]
    pub batch_size: usize,
    #[arg(long, default_value_t = 4)]
    pub per_class: usize,
    #[arg(long, default_value_t = 64)]
    pub input_size: u32,
    #[arg(long, value_delimiter = ',', default_value = "32,64,128,256")]
    pub widths: Vec<usize>,
    #[arg(long, default_value_t = 128)]
    pub embedding_dim: usize,
    /// The network: resnet-glyph (--widths) or efficientnet-lite0.
    #[arg(long, value_enum, default_value = "resnet-glyph")]
    pub arch: TrainArch,
    #[arg(long, default_value_t = 10)]
    pub warmup: usize,
    #[arg(long, default_value_t = 50)]
    pub steps: usize,
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct GlyphArgs {
    /// gb2312-1, gb2312-2, a range like U+4E00..U+4E2F, a literal list, or a file.
    #[arg(long)]
    pub chars: String,
    /// Font files (.ttf, .otf, .ttc); every face of a collection is one example.
    #[arg(long, num_args = 1.., required = true)]
    pub fonts: Vec<PathBuf>,
    #[arg(long)]
    pub out: PathBuf,
    #[arg(long, default_value_t = 64)]
    pub size: u32,
    /// Drop characters drawn by fewer distinct faces.
    #[arg(long, default_value_t = 2)]
    pub min_fonts: usize,
    #[arg(long)]
    pub json: bool,
}

/// Runs one parsed command.
pub fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Train(a) => train(a),
        Command::Extract(a) => extract(a),
        Command::BuildIndex(a) => build_index(a),
        Command::Search(a) => search(a),
        Command::Update(a) => update(a),
        Command::Remove(a) => remove(a),
        Command::Stats(a) => stats(a),
        Command::Quantize(a) => quantize(a),
        Command::Export(a) => export(a),
        Command::Inspect(a) => inspect(a),
        Command::Eval(a) => eval(a),
        Command::Calibrate(a) => calibrate(a),
        Command::BenchTrain(a) => bench_train(a),
        Command::Bench(a) => crate::ann_bench::main(&a),
        Command::BenchEnroll(a) => crate::enroll_bench::main(&a),
        Command::Dataset(DatasetCommand::Glyphs(a)) => glyphs(a),
        Command::Import(a) => import(a),
    }
}

fn import(a: crate::import::ImportArgs) -> Result<()> {
    let json = a.json;
    let report = crate::import::main(a)?;
    if json {
        print_json(&serde_json::to_value(&report).map_err(|e| Error::Internal(e.to_string()))?);
    } else {
        println!(
            "{} ({} parameters, fingerprint {}) → {} ({} bytes)",
            report.architecture,
            report.parameters,
            report.fingerprint,
            report.out.display(),
            report.bytes
        );
    }
    Ok(())
}

fn calibrate(a: crate::calibrate::CalibrateArgs) -> Result<()> {
    let report = crate::calibrate::main(&a)?;
    if a.json {
        print_json(&serde_json::to_value(&report).map_err(|e| Error::Internal(e.to_string()))?);
    } else {
        let c = &report.calibration;
        println!(
            "threshold {:.3}: false accepts {:.2}% of {} other-class pairs, false rejects {:.2}% of {} same-class pairs → {} ({} bytes)",
            c.threshold,
            100.0 * c.false_accept,
            c.other_class_pairs,
            100.0 * c.false_reject,
            c.same_class_pairs,
            report.out.display(),
            report.bytes
        );
    }
    Ok(())
}

#[derive(Args, Debug)]
pub struct InspectArgs {
    #[arg(long)]
    pub model: PathBuf,
    /// KEY=VALUE recorded in the header's training notes (VALUE is JSON, or a
    /// plain string); the weights and the fingerprint do not change.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
    /// Where to write the annotated bundle (required with --set).
    #[arg(long)]
    pub out: Option<PathBuf>,
}

fn inspect(a: InspectArgs) -> Result<()> {
    let bytes = fs::read(&a.model).map_err(|e| Error::io(&a.model, e))?;
    let mut bundle = Bundle::from_bytes(&a.model.display().to_string(), &bytes)?;
    if !a.set.is_empty() {
        let out = a
            .out
            .as_ref()
            .ok_or_else(|| Error::BadInput("--set needs --out FILE".into()))?;
        let training = bundle.header.training.get_or_insert_with(Default::default);
        for pair in &a.set {
            let (key, value) = pair
                .split_once('=')
                .ok_or_else(|| Error::BadInput(format!("--set {pair}: expected KEY=VALUE")))?;
            let value = serde_json::from_str(value)
                .unwrap_or_else(|_| serde_json::Value::String(value.to_string()));
            training.extra.insert(key.to_string(), value);
        }
        crate::train::write_file(out, &bundle.to_bytes()?)?;
    }
    let mut header =
        serde_json::to_value(&bundle.header).map_err(|e| Error::Internal(e.to_string()))?;
    // What galleries of this model's embeddings are tagged with (build-index
    // reads it from extract's meta.json).
    if let Some(obj) = header.as_object_mut() {
        obj.insert("fingerprint".into(), json!(bundle.fingerprint()));
    }
    print_json(&header);
    Ok(())
}

fn print_json(value: &serde_json::Value) {
    println!("{value}");
}

fn spinner(len: u64, what: &str, hidden: bool) -> ProgressBar {
    if hidden {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(len);
    bar.set_style(
        ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} ({eta})")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar.set_prefix(what.to_string());
    bar
}

fn load_bundle(path: &Path) -> Result<Bundle> {
    let bytes = fs::read(path).map_err(|e| Error::io(path, e))?;
    Bundle::from_bytes(&path.display().to_string(), &bytes)
}

fn embedder(model: &Path, backend: &str) -> Result<Embedder> {
    let bundle = load_bundle(model)?;
    Embedder::new(&bundle, backend.parse::<Backend>()?.device()?)
}

/// Opens an ImageFolder, reporting every unreadable file it skipped.
pub(crate) fn open_folder(dir: &Path) -> Result<ImageFolder> {
    // The dataset already logs each skipped file and empty class folder.
    let folder = ImageFolder::open(dir).map_err(|e| Error::BadInput(e.to_string()))?;
    if folder.is_empty() {
        let empty = folder.empty_classes();
        let hint = if empty.is_empty() {
            String::new()
        } else {
            format!(" (empty class folders: {})", empty.join(", "))
        };
        return Err(Error::BadInput(format!(
            "{}: no readable images{hint}",
            dir.display()
        )));
    }
    Ok(folder)
}

/// Embeds decoded images in batches, with a progress bar.
pub(crate) fn embed_images(
    embedder: &Embedder,
    images: &[image::DynamicImage],
    hidden: bool,
) -> Result<Vec<Vec<f32>>> {
    let bar = spinner(images.len() as u64, "embedding", hidden);
    let mut vectors = Vec::with_capacity(images.len());
    for chunk in images.chunks(64) {
        vectors.extend(embedder.embed(chunk)?);
        bar.inc(chunk.len() as u64);
    }
    bar.finish_and_clear();
    Ok(vectors)
}

/// Decodes every image of a folder in memory, with a progress bar.
pub(crate) fn load_images(folder: &ImageFolder, hidden: bool) -> Result<LabeledImages> {
    let bar = spinner(folder.len() as u64, "loading", hidden);
    let mut images = Vec::with_capacity(folder.len());
    let mut labels = Vec::with_capacity(folder.len());
    for i in 0..folder.len() {
        let image = folder.load(i).map_err(|e| Error::BadInput(e.to_string()))?;
        images.push(image);
        labels.push(folder.items()[i].class);
        bar.inc(1);
    }
    bar.finish_and_clear();
    Ok(LabeledImages {
        images,
        labels,
        classes: folder.classes().to_vec(),
    })
}

fn train(a: TrainArgs) -> Result<()> {
    let loss: LossKind = a.loss.parse().map_err(Error::BadInput)?;
    let backend: Backend = a.backend.parse()?;
    let folder = open_folder(&a.data)?;
    let (train_folder, val_folder) = match (&a.val_data, a.val_split) {
        (Some(dir), _) => (folder, Some(open_folder(dir)?)),
        (None, Some(fraction)) => {
            if !(0.0..1.0).contains(&fraction) {
                return Err(Error::BadInput(format!(
                    "--val-split {fraction} must be in [0, 1)"
                )));
            }
            let (t, v) = folder.split_by_class(fraction, a.seed);
            (t, Some(v))
        }
        (None, None) => (folder, None),
    };
    let train_set = load_images(&train_folder, a.json)?;
    let val_set = match &val_folder {
        Some(f) => load_images(f, a.json)?,
        None => LabeledImages {
            images: vec![],
            labels: vec![],
            classes: vec![],
        },
    };
    info!(
        classes = train_set.classes.len(),
        images = train_set.len(),
        val_classes = val_set.classes.len(),
        val_images = val_set.len(),
        %backend,
        "training"
    );
    let augment = if a.no_augment {
        AugmentConfig {
            enabled: false,
            ..AugmentConfig::default()
        }
    } else {
        AugmentConfig {
            flip: a.flip,
            crop_scale: (a.crop_min, 1.0),
            jpeg_prob: a.jpeg_prob,
            ..AugmentConfig::default()
        }
    };
    let opts = TrainOptions {
        epochs: a.epochs,
        batch_size: a.batch_size,
        per_class: a.per_class,
        loss,
        margin: a.margin,
        lr: a.lr,
        weight_decay: a.weight_decay,
        warmup_fraction: 0.05,
        backend,
        patience: a.patience,
        ckpt_dir: a.ckpt_dir,
        model_out: a.model_out,
        resume: a.resume,
        preprocessing: Preprocessing::new(a.input_size),
        architecture: match a.arch {
            TrainArch::ResnetGlyph => ResNetConfig {
                widths: a.widths,
                blocks_per_stage: a.blocks_per_stage,
                embedding_dim: a.embedding_dim,
                projection_norm: true,
            }
            .into(),
            TrainArch::EfficientnetLite0 => EfficientNetConfig::retrieval(a.embedding_dim).into(),
        },
        init: a.init,
        backbone_lr_scale: a.backbone_lr_scale,
        freeze_backbone_epochs: a.freeze_backbone_epochs,
        augment,
        seed: a.seed,
        progress: !a.json,
        dataset_name: a.data.display().to_string(),
    };
    opts.architecture.validate()?;
    opts.preprocessing.validate()?;
    let report = crate::train::train(&train_set, &val_set, &opts)?;
    if a.json {
        print_json(&serde_json::to_value(&report).map_err(|e| Error::Internal(e.to_string()))?);
    } else {
        println!("epoch  loss      val MAP@R  val P@1   img/s");
        for r in &report.history {
            println!(
                "{:>5}  {:>8}  {:>9.4}  {:>7.4}  {:>6}",
                r.epoch,
                r.train_loss.map_or("-".into(), |l| format!("{l:.4}")),
                r.val_map_at_r,
                r.val_precision_at_1,
                r.images_per_sec.map_or("-".into(), |v| format!("{v:.0}"))
            );
        }
        println!(
            "best epoch {} (MAP@R {:.4}) → {} (fingerprint {})",
            report.best_epoch,
            report.best_map_at_r,
            report.model_out.display(),
            report.fingerprint
        );
    }
    Ok(())
}

fn extract(a: ExtractArgs) -> Result<()> {
    let embedder = embedder(&a.model, &a.backend)?;
    let folder = open_folder(&a.data)?;
    fs::create_dir_all(&a.out).map_err(|e| Error::io(&a.out, e))?;
    let bar = spinner(folder.len() as u64, "embedding", a.json);
    let mut vectors = Vec::with_capacity(folder.len());
    let mut tsv = String::from("path\tclass\n");
    let indices: Vec<usize> = (0..folder.len()).collect();
    for chunk in indices.chunks(a.batch_size.max(1)) {
        let mut images = Vec::with_capacity(chunk.len());
        for &i in chunk {
            images.push(folder.load(i).map_err(|e| Error::BadInput(e.to_string()))?);
            let item = &folder.items()[i];
            tsv.push_str(&format!(
                "{}\t{}\n",
                item.path.display(),
                folder.classes()[item.class]
            ));
        }
        vectors.extend(embedder.embed(&images)?);
        bar.inc(chunk.len() as u64);
    }
    bar.finish_and_clear();
    crate::npy::write_f32(&a.out.join("vectors.npy"), &vectors, embedder.dim())?;
    crate::train::write_file(&a.out.join("labels.tsv"), tsv.as_bytes())?;
    let meta = json!({ "fingerprint": embedder.fingerprint(), "dim": embedder.dim(), "model": a.model, "count": vectors.len() });
    crate::train::write_file(&a.out.join("meta.json"), meta.to_string().as_bytes())?;
    if a.json {
        print_json(
            &json!({ "vectors": vectors.len(), "dim": embedder.dim(), "fingerprint": embedder.fingerprint(), "out": a.out }),
        );
    } else {
        println!(
            "{} vectors of dimension {} → {}",
            vectors.len(),
            embedder.dim(),
            a.out.display()
        );
    }
    Ok(())
}

/// Reads `labels.tsv` (with its header) into the class of each row.
fn read_labels(path: &Path) -> Result<Vec<String>> {
    Ok(read_label_rows(path)?.into_iter().map(|(_, c)| c).collect())
}

/// labels.tsv's rows after its header: (image path, class).
fn read_label_rows(path: &Path) -> Result<Vec<(String, String)>> {
    let text = fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    text.lines()
        .skip(1)
        .filter(|l| !l.is_empty())
        .map(|line| {
            line.rsplit_once('\t')
                .map(|(file, class)| (file.to_string(), class.to_string()))
                .ok_or_else(|| {
                    Error::BadInput(format!("{}: line without a tab: {line}", path.display()))
                })
        })
        .collect()
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

fn stats_json(gallery: &Gallery) -> serde_json::Value {
    let stats = gallery.stats();
    json!({
        "classes": stats.classes,
        "vectors": stats.vectors,
        "deleted": stats.deleted,
        "segments": stats.segments.iter().map(|s| json!({"name": s.name, "kind": s.kind, "vectors": s.vectors})).collect::<Vec<_>>(),
        "bytes": stats.bytes,
    })
}

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

fn build_index(a: BuildIndexArgs) -> Result<()> {
    let vectors = crate::npy::read_f32(&a.embeddings.join("vectors.npy"))?;
    let labels = read_labels(&a.embeddings.join("labels.tsv"))?;
    let meta_path = a.embeddings.join("meta.json");
    let meta: serde_json::Value =
        serde_json::from_slice(&fs::read(&meta_path).map_err(|e| Error::io(&meta_path, e))?)
            .map_err(|e| Error::BadInput(format!("{}: {e}", meta_path.display())))?;
    let fingerprint = meta["fingerprint"]
        .as_str()
        .ok_or_else(|| Error::BadInput(format!("{}: no fingerprint", meta_path.display())))?;
    if vectors.len() != labels.len() {
        return Err(Error::BadInput(format!(
            "{} vectors but {} labels in {}",
            vectors.len(),
            labels.len(),
            a.embeddings.display()
        )));
    }
    let dim = vectors
        .first()
        .map(Vec::len)
        .ok_or_else(|| Error::BadInput("no vectors to index".into()))?;
    let mut by_class: BTreeMap<&str, Vec<Vec<f32>>> = BTreeMap::new();
    for (v, l) in vectors.into_iter().zip(&labels) {
        by_class.entry(l).or_default().push(v);
    }
    if a.out.join("manifest").exists() {
        return Err(Error::BadInput(format!(
            "{} already holds an index; use update",
            a.out.display()
        )));
    }
    let (mut gallery, created) = Gallery::create(GalleryConfig {
        dim,
        fingerprint: fingerprint.to_string(),
        index: IndexConfig {
            growing_capacity: a.segment_size,
            quantization: a.quantize,
            ef_construction: a.ef_construction,
            ..IndexConfig::default()
        },
    })?;
    // Built in memory, then written in one atomic commit.
    let mut staging = MemoryStore::default();
    staging.apply(created)?;
    gallery.set_auto_maintain(!a.optimize);
    // One batch (one chunk, one class page, one manifest) per segment's worth
    // of vectors, so each batch seals into a segment and the tiers merge them.
    let bar = spinner(by_class.len() as u64, "indexing", a.json);
    let mut batch: Vec<Enrollment> = Vec::new();
    let mut pending = 0;
    for (label, vs) in by_class {
        pending += vs.len();
        batch.push(Enrollment {
            label: label.to_string(),
            vectors: vs,
            metadata: None,
        });
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
    if a.optimize {
        let vectors = gallery.stats().vectors;
        let bar = if a.json {
            ProgressBar::hidden()
        } else {
            ProgressBar::new_spinner()
        };
        bar.set_message(format!("building one graph over {vectors} vectors"));
        bar.enable_steady_tick(std::time::Duration::from_millis(250));
        let started = std::time::Instant::now();
        if let Some(cs) = gallery.optimize()? {
            staging.apply(cs)?;
        }
        bar.finish_and_clear();
        info!(
            vectors,
            seconds = started.elapsed().as_secs_f64(),
            "built one graph"
        );
    }
    let mut store = FsStore::create(&a.out)?;
    store.apply(staging.snapshot())?;
    print_stats("built", &gallery, a.json, json!({}));
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

fn search(a: SearchArgs) -> Result<()> {
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
    let gallery = open_gallery(&a.index, Some(embedder.fingerprint()), mode)
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
    } else {
        for (p, r) in &results {
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
    Ok(())
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

fn update(a: UpdateArgs) -> Result<()> {
    let embedder = embedder(&a.model, &a.backend)?;
    let mut store = FsStore::open(&a.index)?;
    let (mut gallery, _) = Gallery::open(&store, Some(embedder.fingerprint()), OpenMode::Strict)
        .map_err(|e| name_in(&a.index, e))?;
    let folder = open_folder(&a.new_data)?;
    // Training may skip a bad file among thousands; enrolling must not: the
    // gallery would silently miss an example the user meant to add.
    if let Some((path, reason)) = folder.skipped().first() {
        return Err(Error::BadInput(format!(
            "{}: {reason} ({} unreadable file(s) in {}; fix or remove them)",
            path.display(),
            folder.skipped().len(),
            a.new_data.display()
        )));
    }
    if !folder.empty_classes().is_empty() {
        return Err(Error::BadInput(format!(
            "class folder(s) with no images in {}: {}",
            a.new_data.display(),
            folder.empty_classes().join(", ")
        )));
    }
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

fn remove(a: RemoveArgs) -> Result<()> {
    let mut store = FsStore::open(&a.index)?;
    let (mut gallery, _) =
        Gallery::open(&store, None, OpenMode::Strict).map_err(|e| name_in(&a.index, e))?;
    let changes = gallery.remove(&a.class)?;
    store.apply(changes)?;
    print_stats("removed", &gallery, a.json, json!({ "removed": a.class }));
    Ok(())
}

fn quantize(a: StatsArgs) -> Result<()> {
    let mut store = FsStore::open(&a.index)?;
    let (mut gallery, _) =
        Gallery::open(&store, None, OpenMode::Strict).map_err(|e| name_in(&a.index, e))?;
    let changes = gallery.quantize()?;
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

fn stats(a: StatsArgs) -> Result<()> {
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

fn export(a: ExportArgs) -> Result<()> {
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

fn eval(a: EvalArgs) -> Result<()> {
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
        Some(marked) => crate::eval::Support::Marked(marked),
        None => crate::eval::Support::Random(a.seed),
    };
    let g = crate::eval::gallery_eval(vectors, labels, classes, fingerprint, shots, support)?;
    let episodic = match a.ways {
        Some(ways) => Some(crate::eval::episodic_eval(
            vectors, labels, ways, shots, a.queries, a.episodes, a.seed,
        )?),
        None => None,
    };
    if a.json {
        let mut v = serde_json::to_value(&g).map_err(|e| Error::Internal(e.to_string()))?;
        if let (Some(obj), Some(e)) = (v.as_object_mut(), &episodic) {
            obj.insert(
                "episodic".into(),
                serde_json::to_value(e).map_err(|e| Error::Internal(e.to_string()))?,
            );
        }
        if let (Some(obj), Some(source)) = (v.as_object_mut(), source) {
            obj.insert("source".into(), source.into());
        }
        print_json(&v);
    } else {
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
    Ok(())
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
        let vectors = crate::npy::read_f32(&dir.join("vectors.npy"))?;
        let rows = read_label_rows(&dir.join("labels.tsv"))?;
        let names: Vec<String> = rows.iter().map(|(_, c)| c.clone()).collect();
        if vectors.len() != names.len() {
            return Err(Error::BadInput(format!(
                "{} vectors but {} labels in {}",
                vectors.len(),
                names.len(),
                dir.display()
            )));
        }
        let meta_path = dir.join("meta.json");
        let meta: serde_json::Value =
            serde_json::from_slice(&fs::read(&meta_path).map_err(|e| Error::io(&meta_path, e))?)
                .map_err(|e| Error::BadInput(format!("{}: {e}", meta_path.display())))?;
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
        let marked = a.support_prefix.as_ref().map(|prefix| {
            marked_by_prefix(rows.iter().map(|(f, _)| Path::new(f.as_str())), prefix)
        });
        return Ok(Scored {
            vectors,
            labels,
            classes,
            fingerprint,
            marked,
        });
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

fn bench_train(a: BenchTrainArgs) -> Result<()> {
    let architecture: Architecture = match a.arch {
        TrainArch::ResnetGlyph => ResNetConfig {
            widths: a.widths,
            blocks_per_stage: 1,
            embedding_dim: a.embedding_dim,
            projection_norm: true,
        }
        .into(),
        TrainArch::EfficientnetLite0 => EfficientNetConfig::retrieval(a.embedding_dim).into(),
    };
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
        print_json(&serde_json::to_value(&report).map_err(|e| Error::Internal(e.to_string()))?);
    } else {
        println!(
            "{}: {:.0} images/s ({} steps of {} at {}px in {:.2}s)",
            report.backend,
            report.images_per_sec,
            report.steps,
            report.batch_size,
            report.input_size,
            report.seconds
        );
    }
    Ok(())
}

fn glyphs(a: GlyphArgs) -> Result<()> {
    let chars = a
        .chars
        .parse::<crate::glyphs::CharSet>()
        .map_err(|e| Error::BadInput(e.to_string()))?;
    let spec = crate::glyphs::GlyphSpec {
        chars,
        fonts: a.fonts,
        out: a.out.clone(),
        size: a.size,
        min_fonts: a.min_fonts,
    };
    let report = crate::glyphs::render(&spec).map_err(|e| Error::BadInput(e.to_string()))?;
    if a.json {
        print_json(&serde_json::to_value(&report).map_err(|e| Error::Internal(e.to_string()))?);
    } else {
        println!("{report:#?}");
    }
    Ok(())
}
