//! The model commands: `train`, `extract`, `inspect`, `import` and `calibrate`.

use std::fs;
use std::path::PathBuf;

use clap::Args;
use serde_json::json;
use tracing::info;

use metricann::backend::Backend;
use metricann::image::Preprocessing;
use metricann::model::{Architecture, Bundle, EfficientNetConfig, ResNetConfig};
use metricann::{Error, Result};

use super::common::{
    embedder, load_images, open_folder, print_json, print_report, spinner, to_json,
};
use crate::train::{LabeledImages, TrainOptions, TrainReport};
use metricann::image::augment::AugmentConfig;
use metricann::model::loss::LossKind;

/// The networks `train` can build.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum TrainArch {
    ResnetGlyph,
    EfficientnetLite0,
}

impl TrainArch {
    /// The network, sized by the flags that apply to it (`widths` and
    /// `blocks_per_stage` only to the glyph ResNet).
    pub(super) fn architecture(
        self,
        widths: Vec<usize>,
        blocks_per_stage: usize,
        embedding_dim: usize,
    ) -> Architecture {
        match self {
            TrainArch::ResnetGlyph => ResNetConfig {
                widths,
                blocks_per_stage,
                embedding_dim,
                projection_norm: true,
            }
            .into(),
            TrainArch::EfficientnetLite0 => EfficientNetConfig::retrieval(embedding_dim).into(),
        }
    }
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
    /// Training epochs at most (--patience may stop earlier).
    #[arg(long, default_value_t = 10)]
    pub epochs: usize,
    /// Images per batch: P classes × --per-class examples.
    #[arg(long, default_value_t = 64)]
    pub batch_size: usize,
    /// Examples of each class in a batch (the K of P×K).
    #[arg(long, default_value_t = 4)]
    pub per_class: usize,
    /// The loss: triplet (batch-hard), triplet-semihard or contrastive.
    #[arg(long, default_value = "triplet")]
    pub loss: String,
    /// Margin of the triplet or contrastive loss (Euclidean distance between unit vectors, 0 to 2).
    #[arg(long, default_value_t = 0.2)]
    pub margin: f32,
    /// Peak learning rate (warm-up over the first 5% of steps, then cosine decay).
    #[arg(long, default_value_t = 1e-3)]
    pub lr: f64,
    /// AdamW's weight decay.
    #[arg(long, default_value_t = 5e-4)]
    pub weight_decay: f32,
    /// Backend to train on: ndarray, wgpu or cuda.
    #[arg(long, default_value = "ndarray")]
    pub backend: String,
    /// Train data-parallel on these devices of the cuda backend: `all`, or a
    /// list such as `cuda:0,cuda:1`. Each step is one --batch-size batch per
    /// device, mined on its own; burn's all-reduce (NCCL) averages the gradients.
    #[arg(long, value_name = "LIST")]
    pub devices: Option<String>,
    /// Stop after this many epochs without a better validation MAP@R (0: never).
    #[arg(long, default_value_t = 5)]
    pub patience: usize,
    /// Folder for the epoch checkpoints and metrics.jsonl.
    #[arg(long, default_value = "checkpoints")]
    pub ckpt_dir: PathBuf,
    /// Where to write the best epoch's model bundle.
    #[arg(long, default_value = "model.bundle")]
    pub model_out: PathBuf,
    /// Continue from an epoch checkpoint (`CKPT_DIR/epoch-NNN.bundle`).
    #[arg(long)]
    pub resume: Option<PathBuf>,
    /// Side of the square input images, in pixels.
    #[arg(long, default_value_t = 64)]
    pub input_size: u32,
    /// Length of the embedding vectors.
    #[arg(long, default_value_t = 128)]
    pub embedding_dim: usize,
    /// Channels per stage, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "32,64,128,256")]
    pub widths: Vec<usize>,
    /// Residual blocks per stage of resnet-glyph.
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
    /// Seed of the initial weights, the --val-split class split, batch sampling and augmentation.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Print the report as one JSON object on stdout.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct ExtractArgs {
    /// The model bundle to embed with.
    #[arg(long)]
    pub model: PathBuf,
    /// ImageFolder to embed (one sub-folder per class).
    #[arg(long)]
    pub data: PathBuf,
    /// Folder to write vectors.npy, labels.tsv and meta.json to.
    #[arg(long)]
    pub out: PathBuf,
    /// Backend to embed with: ndarray, wgpu or cuda.
    #[arg(long, default_value = "ndarray")]
    pub backend: String,
    /// Images embedded at once.
    #[arg(long, default_value_t = 32)]
    pub batch_size: usize,
    /// Print a one-line JSON summary on stdout.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct InspectArgs {
    /// The model bundle to read.
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

pub(super) fn train(a: TrainArgs) -> Result<()> {
    let loss: LossKind = a.loss.parse().map_err(Error::BadInput)?;
    let backend: Backend = a.backend.parse()?;
    let (train_set, val_set) = training_sets(&a)?;
    info!(
        classes = train_set.classes.len(),
        images = train_set.len(),
        val_classes = val_set.classes.len(),
        val_images = val_set.len(),
        %backend,
        "training"
    );
    let json = a.json;
    let opts = train_options(a, loss, backend);
    opts.architecture.validate()?;
    opts.preprocessing.validate()?;
    let report = crate::train::train(&train_set, &val_set, &opts)?;
    if json {
        print_report(&report)
    } else {
        print_training(&report);
        Ok(())
    }
}

/// The training images and the validation images (none without --val-data
/// or --val-split), decoded.
fn training_sets(a: &TrainArgs) -> Result<(LabeledImages, LabeledImages)> {
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
    Ok((train_set, val_set))
}

fn augment_config(a: &TrainArgs) -> AugmentConfig {
    if a.no_augment {
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
    }
}

fn train_options(a: TrainArgs, loss: LossKind, backend: Backend) -> TrainOptions {
    let augment = augment_config(&a);
    TrainOptions {
        epochs: a.epochs,
        batch_size: a.batch_size,
        per_class: a.per_class,
        loss,
        margin: a.margin,
        lr: a.lr,
        weight_decay: a.weight_decay,
        warmup_fraction: 0.05,
        backend,
        devices: a.devices,
        patience: a.patience,
        ckpt_dir: a.ckpt_dir,
        model_out: a.model_out,
        resume: a.resume,
        preprocessing: Preprocessing::new(a.input_size),
        architecture: a
            .arch
            .architecture(a.widths, a.blocks_per_stage, a.embedding_dim),
        init: a.init,
        backbone_lr_scale: a.backbone_lr_scale,
        freeze_backbone_epochs: a.freeze_backbone_epochs,
        augment,
        seed: a.seed,
        progress: !a.json,
        dataset_name: a.data.display().to_string(),
    }
}

fn print_training(report: &TrainReport) {
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

pub(super) fn extract(a: ExtractArgs) -> Result<()> {
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

pub(super) fn inspect(a: InspectArgs) -> Result<()> {
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
    let mut header = to_json(&bundle.header)?;
    // What galleries of this model's embeddings are tagged with (build-index
    // reads it from extract's meta.json).
    if let Some(obj) = header.as_object_mut() {
        obj.insert("fingerprint".into(), json!(bundle.fingerprint()));
    }
    print_json(&header);
    Ok(())
}

pub(super) fn import(a: crate::import::ImportArgs) -> Result<()> {
    let json = a.json;
    let report = crate::import::main(a)?;
    if json {
        return print_report(&report);
    }
    println!(
        "{} ({} parameters, fingerprint {}) → {} ({} bytes)",
        report.architecture,
        report.parameters,
        report.fingerprint,
        report.out.display(),
        report.bytes
    );
    Ok(())
}

pub(super) fn calibrate(a: crate::calibrate::CalibrateArgs) -> Result<()> {
    let report = crate::calibrate::main(&a)?;
    if a.json {
        return print_report(&report);
    }
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
    Ok(())
}
