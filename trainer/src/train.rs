//! The training loop: P×K batches, camera-like augmentation, a metric loss,
//! AdamW with warm-up + cosine decay, validation MAP@R each epoch, checkpoints,
//! early stopping and resume; on one device or data-parallel on several
//! ([`parallel`]).

mod best;
pub mod gradients;
mod parallel;

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::mpsc::sync_channel;
use std::time::Instant;

use burn::module::Module;
use burn::optim::{AdamWConfig, GradientsParams, ModuleOptimizer};
use burn::tensor::{Bytes, Device, Tensor, TensorData};
use image::DynamicImage;
use indicatif::{ProgressBar, ProgressStyle};
use rand::SeedableRng;
use rand::rngs::StdRng;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use tracing::info;

use metricann::backend::Backend;
use metricann::embed::Embedder;
use metricann::image::Preprocessing;
use metricann::model::{Architecture, Bundle, EmbeddingModel, TrainingSummary};
use metricann::{Error, Result};

use crate::eval::leave_one_out;
use crate::sampler::PkSampler;
use metricann::image::augment::{AugmentConfig, augment};
use metricann::model::loss::{LossKind, loss};
use parallel::{Exchange, Replicas};

/// Decoded images with their class indices, held in memory for the whole run.
pub struct LabeledImages {
    pub images: Vec<DynamicImage>,
    pub labels: Vec<usize>,
    pub classes: Vec<String>,
}

impl LabeledImages {
    pub fn len(&self) -> usize {
        self.images.len()
    }

    pub fn is_empty(&self) -> bool {
        self.images.is_empty()
    }
}

/// Everything a training run needs to know.
#[derive(Clone, Debug)]
pub struct TrainOptions {
    pub epochs: usize,
    /// Images per batch: P classes × `per_class` examples.
    pub batch_size: usize,
    pub per_class: usize,
    pub loss: LossKind,
    pub margin: f32,
    pub lr: f64,
    pub weight_decay: f32,
    /// Fraction of all steps spent warming the learning rate up.
    pub warmup_fraction: f64,
    pub backend: Backend,
    /// `--devices`: train data-parallel on these devices of `backend` (`all`,
    /// `cuda:0,cuda:1`); `None` is the single-device loop.
    pub devices: Option<String>,
    /// Epochs without a better validation MAP@R before stopping (0: never stop early).
    pub patience: usize,
    pub ckpt_dir: PathBuf,
    pub model_out: PathBuf,
    pub resume: Option<PathBuf>,
    pub preprocessing: Preprocessing,
    pub architecture: Architecture,
    /// A bundle whose backbone the run starts from (an imported ImageNet network).
    pub init: Option<PathBuf>,
    /// The backbone's learning rate as a fraction of the head's: a pretrained
    /// backbone moves less, so what it knows survives the first noisy steps.
    pub backbone_lr_scale: f64,
    /// Epochs in which only the head learns, the backbone frozen.
    pub freeze_backbone_epochs: usize,
    pub augment: AugmentConfig,
    pub seed: u64,
    pub progress: bool,
    pub dataset_name: String,
}

/// One line of `metrics.jsonl`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct EpochRecord {
    pub epoch: usize,
    pub train_loss: Option<f64>,
    pub val_map_at_r: f64,
    pub val_precision_at_1: f64,
    pub lr: f64,
    pub images_per_sec: Option<f64>,
    pub seconds: f64,
}

/// What `train` returns and the CLI prints.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TrainReport {
    pub epochs_run: usize,
    pub best_epoch: usize,
    pub best_map_at_r: f64,
    pub stopped_early: bool,
    pub fingerprint: String,
    pub model_out: PathBuf,
    pub history: Vec<EpochRecord>,
}

/// Resumable state, saved next to each epoch's checkpoint.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct RunState {
    epoch: usize,
    step: usize,
    best_epoch: usize,
    best_map_at_r: f64,
    epochs_without_gain: usize,
    history: Vec<EpochRecord>,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |e| Error::io(path, e)
}

/// Trains a model on `train`, validating on `val` (unseen classes) each epoch.
pub fn train(
    train: &LabeledImages,
    val: &LabeledImages,
    opts: &TrainOptions,
) -> Result<TrainReport> {
    if train.is_empty() {
        return Err(Error::BadInput("the training set has no images".into()));
    }
    if opts.per_class == 0 || opts.batch_size < 2 * opts.per_class {
        return Err(Error::BadInput(format!(
            "--batch-size {} must hold at least two classes of {} examples",
            opts.batch_size, opts.per_class
        )));
    }
    fs::create_dir_all(&opts.ckpt_dir).map_err(io(&opts.ckpt_dir))?;
    let devices = match &opts.devices {
        Some(spec) => opts.backend.training_devices(spec)?,
        None => vec![opts.backend.training_device()?],
    };
    let device = devices[0].clone();
    // --seed fixes the initial weights too, not only sampling and augmentation:
    // two runs of one command train the same model.
    device.seed(opts.seed);
    let (model, optimizer, mut state) = start(opts, &device)?;
    let mut replicas = match opts.devices {
        Some(_) => Replicas::data_parallel(model, optimizer, devices),
        None => Replicas::single(model, optimizer, device.clone()),
    };
    let p = opts.batch_size / opts.per_class;
    let sampler = PkSampler::new(&train.labels, p, opts.per_class, opts.seed)
        .map_err(|e| Error::BadInput(e.to_string()))?;
    let steps_per_epoch = sampler.batches_per_epoch() / replicas.len();
    if steps_per_epoch == 0 {
        return Err(Error::BadInput(format!(
            "an epoch has {} batches of {}, fewer than the {} devices: lower --batch-size",
            sampler.batches_per_epoch(),
            opts.batch_size,
            replicas.len()
        )));
    }
    let run = Run {
        train,
        val,
        opts,
        device,
        schedule: Schedule::new(opts.lr, steps_per_epoch * opts.epochs, opts.warmup_fraction),
        sampler,
        metrics_path: opts.ckpt_dir.join("metrics.jsonl"),
    };
    if state.epoch == 0 {
        run.untrained(replicas.first().0, &mut state)?;
    }
    let mut stopped_early = false;
    while state.epoch < opts.epochs {
        let epoch = state.epoch + 1;
        let totals = run.epoch(&mut replicas, &mut state, epoch)?;
        let (model, optimizer) = replicas.first();
        let improved = run.record(model, &mut state, epoch, totals)?;
        run.checkpoint(model, optimizer, &state, epoch, improved)?;
        if opts.patience > 0 && state.epochs_without_gain >= opts.patience {
            info!(
                epoch,
                patience = opts.patience,
                "validation MAP@R stopped improving: stopping early"
            );
            stopped_early = true;
            break;
        }
    }
    finish(opts, state, stopped_early)
}

/// The network, its optimizer and the run's state: fresh (from --init's
/// backbone, if given), or as --resume's checkpoint left them.
fn start(
    opts: &TrainOptions,
    device: &Device,
) -> Result<(EmbeddingModel, ModuleOptimizer, RunState)> {
    let mut model = opts.architecture.init(device)?;
    if let (Some(init), None) = (&opts.init, &opts.resume) {
        model = with_pretrained_backbone(model, init, device)?;
    }
    let optimizer = AdamWConfig::new()
        .with_weight_decay(opts.weight_decay)
        .init();
    let state = RunState {
        epoch: 0,
        step: 0,
        best_epoch: 0,
        best_map_at_r: f64::NEG_INFINITY,
        epochs_without_gain: 0,
        history: Vec::new(),
    };
    match &opts.resume {
        Some(checkpoint) => resume(checkpoint, opts, device, optimizer),
        None => Ok((model, optimizer, state)),
    }
}

/// Loads an epoch checkpoint with the optimizer state and run state saved beside it.
fn resume(
    checkpoint: &Path,
    opts: &TrainOptions,
    device: &Device,
    optimizer: ModuleOptimizer,
) -> Result<(EmbeddingModel, ModuleOptimizer, RunState)> {
    let bytes = fs::read(checkpoint).map_err(io(checkpoint))?;
    let bundle = Bundle::from_bytes(&checkpoint.display().to_string(), &bytes)?;
    if bundle.header.architecture != opts.architecture
        || bundle.header.preprocessing != opts.preprocessing
    {
        return Err(Error::BadInput(format!(
            "{} was trained with another architecture or input size than this run asks for",
            checkpoint.display()
        )));
    }
    let model = bundle.load_model(device)?;
    let optim_path = checkpoint.with_extension("optim");
    let optim_bytes = fs::read(&optim_path).map_err(io(&optim_path))?;
    let optimizer = optimizer
        .from_bytes(Bytes::from_bytes_vec(optim_bytes))
        .map_err(|e| Error::corrupt(optim_path.display().to_string(), e.to_string()))?;
    let state_path = checkpoint.with_extension("state.json");
    let text = fs::read(&state_path).map_err(io(&state_path))?;
    let state: RunState = serde_json::from_slice(&text)
        .map_err(|e| Error::corrupt(state_path.display().to_string(), e.to_string()))?;
    info!(epoch = state.epoch, checkpoint = %checkpoint.display(), "resuming");
    best::restore(checkpoint, state.epoch, state.best_epoch, &opts.ckpt_dir)?;
    Ok((model, optimizer, state))
}

/// What stays the same from epoch to epoch.
struct Run<'a> {
    train: &'a LabeledImages,
    val: &'a LabeledImages,
    opts: &'a TrainOptions,
    device: Device,
    schedule: Schedule,
    sampler: PkSampler,
    metrics_path: PathBuf,
}

/// The training loss summed over an epoch's batches, and the images seen.
struct EpochTotals {
    loss_sum: f64,
    batches: usize,
    images: usize,
    started: Instant,
    train_seconds: f64,
}

impl Run<'_> {
    /// Epoch 0 is the untrained network: the baseline every later epoch must beat.
    fn untrained(&self, model: &EmbeddingModel, state: &mut RunState) -> Result<()> {
        let started = Instant::now();
        let (map, p1) = validate(model, &self.device, self.val, self.opts)?;
        let record = EpochRecord {
            epoch: 0,
            train_loss: None,
            val_map_at_r: map,
            val_precision_at_1: p1,
            lr: 0.0,
            images_per_sec: None,
            seconds: started.elapsed().as_secs_f64(),
        };
        info!(map_at_r = map, precision_at_1 = p1, "epoch 0 (untrained)");
        append_jsonl(&self.metrics_path, &record, true)?;
        state.history.push(record);
        state.best_map_at_r = map;
        if self.opts.epochs == 0 {
            // `--epochs 0` exports the untrained network: the baseline of the README's tables.
            let bundle = export(model, self.opts, self.train, state)?;
            write_file(&self.opts.ckpt_dir.join("best.bundle"), &bundle.to_bytes()?)?;
        }
        Ok(())
    }

    /// One pass over the epoch's batches (whole steps of one batch a device).
    /// A producer thread augments the next batches while the devices run these.
    fn epoch(
        &self,
        replicas: &mut Replicas,
        state: &mut RunState,
        epoch: usize,
    ) -> Result<EpochTotals> {
        let opts = self.opts;
        let mut batches = self.sampler.epoch_batches(epoch as u64);
        batches.truncate(batches.len() / replicas.len() * replicas.len());
        let steps = batches.len() / replicas.len();
        let bar = progress_bar(opts.progress, steps as u64, epoch, opts.epochs);
        let mut totals = EpochTotals {
            loss_sum: 0.0,
            batches: steps,
            images: 0,
            started: Instant::now(),
            train_seconds: 0.0,
        };
        std::thread::scope(|scope| -> Result<()> {
            let (tx, rx) = sync_channel::<Batch>(2 * replicas.len());
            let (train, seed, batches_ref) = (self.train, opts.seed, &batches);
            scope.spawn(move || {
                for (b, batch) in batches_ref.iter().enumerate() {
                    let prepared =
                        prepare_batch(train, batch, opts, seed ^ ((epoch as u64) << 32) ^ b as u64);
                    if tx.send(prepared).is_err() {
                        break;
                    }
                }
            });
            let first_step = state.step;
            let mut on_step = |loss: f32, images: usize| -> Result<()> {
                let loss = finite(loss, epoch)?;
                state.step += 1;
                totals.loss_sum += loss as f64;
                totals.images += images;
                bar.inc(1);
                bar.set_message(format!(
                    "loss {:.4}  {:.0} img/s",
                    totals.loss_sum / bar.position() as f64,
                    totals.images as f64 / totals.started.elapsed().as_secs_f64()
                ));
                Ok(())
            };
            replicas.run_steps(self, rx, first_step, epoch, &mut on_step)
        })?;
        bar.finish_and_clear();
        totals.train_seconds = totals.started.elapsed().as_secs_f64();
        Ok(totals)
    }

    /// The learning rates of step `step_index` of `epoch`: the schedule's,
    /// the backbone's scaled down and frozen in the first epochs.
    fn rates(&self, step_index: usize, epoch: usize) -> Rates {
        let opts = self.opts;
        let lr = self.schedule.at(step_index);
        let backbone = if epoch <= opts.freeze_backbone_epochs {
            0.0
        } else {
            lr * opts.backbone_lr_scale
        };
        Rates { head: lr, backbone }
    }

    /// One optimisation step on one batch on `device`, its gradients
    /// exchanged with the other devices' first; the batch's loss. The loss is
    /// read before the update is queued, on one device as on several: the
    /// all-reduce waits for the device there anyway, so both wait once a step.
    fn batch(
        &self,
        model: EmbeddingModel,
        optimizer: &mut ModuleOptimizer,
        device: &Device,
        exchange: &Exchange,
        rates: Rates,
        (pixels, labels): Batch,
    ) -> (EmbeddingModel, f32) {
        let opts = self.opts;
        let n = labels.len();
        let s = opts.preprocessing.input_size as usize;
        let input = Tensor::<4>::from_data(TensorData::new(pixels, [n, 3, s, s]), device);
        let (l, grads) = backward(&model, input, &labels, opts.loss, opts.margin);
        let grads = exchange.apply(&model, grads);
        let loss = l.into_scalar();
        (update(model, optimizer, grads, rates), loss)
    }

    /// Validates the epoch's network and records the epoch; true when its
    /// validation MAP@R is the best so far.
    fn record(
        &self,
        model: &EmbeddingModel,
        state: &mut RunState,
        epoch: usize,
        totals: EpochTotals,
    ) -> Result<bool> {
        let (map, p1) = validate(model, &self.device, self.val, self.opts)?;
        let record = EpochRecord {
            epoch,
            train_loss: Some(totals.loss_sum / totals.batches.max(1) as f64),
            val_map_at_r: map,
            val_precision_at_1: p1,
            lr: self.schedule.at(state.step.saturating_sub(1)),
            images_per_sec: Some(totals.images as f64 / totals.train_seconds),
            seconds: totals.started.elapsed().as_secs_f64(),
        };
        info!(
            epoch,
            loss = record.train_loss,
            map_at_r = map,
            precision_at_1 = p1,
            images_per_sec = record.images_per_sec,
            "epoch done"
        );
        append_jsonl(&self.metrics_path, &record, false)?;
        state.history.push(record);
        state.epoch = epoch;
        let improved = map > state.best_map_at_r || state.best_epoch == 0;
        if improved {
            state.best_map_at_r = map;
            state.best_epoch = epoch;
            state.epochs_without_gain = 0;
        } else {
            state.epochs_without_gain += 1;
        }
        Ok(improved)
    }

    /// Writes the epoch's bundle with the optimizer and run state beside it
    /// (what --resume reads), and best.bundle when the epoch improved.
    fn checkpoint(
        &self,
        model: &EmbeddingModel,
        optimizer: &ModuleOptimizer,
        state: &RunState,
        epoch: usize,
        improved: bool,
    ) -> Result<()> {
        let checkpoint = self.opts.ckpt_dir.join(format!("epoch-{epoch:03}.bundle"));
        let bundle = export(model, self.opts, self.train, state)?;
        write_file(&checkpoint, &bundle.to_bytes()?)?;
        let optim_path = checkpoint.with_extension("optim");
        let optim_bytes = optimizer
            .into_bytes()
            .map_err(|e| Error::Internal(format!("serialising optimizer state: {e}")))?;
        write_file(&optim_path, &optim_bytes)?;
        let state_json =
            serde_json::to_vec_pretty(state).map_err(|e| Error::Internal(e.to_string()))?;
        write_file(&checkpoint.with_extension("state.json"), &state_json)?;
        if improved {
            write_file(&self.opts.ckpt_dir.join("best.bundle"), &bundle.to_bytes()?)?;
        }
        Ok(())
    }
}

/// A prepared batch: its pixels (N×3×S×S) and class indices.
type Batch = (Vec<f32>, Vec<usize>);

/// The loss of a step, or the error that ends a run whose loss diverged.
fn finite(loss: f32, epoch: usize) -> Result<f32> {
    if loss.is_finite() {
        Ok(loss)
    } else {
        Err(Error::Internal(format!(
            "the loss became {loss} at epoch {epoch}; lower --lr"
        )))
    }
}

/// Copies the best epoch's bundle (by validation MAP@R) to --model-out.
fn finish(opts: &TrainOptions, state: RunState, stopped_early: bool) -> Result<TrainReport> {
    let best_path = opts.ckpt_dir.join("best.bundle");
    let best = fs::read(&best_path).map_err(io(&best_path))?;
    let bundle = Bundle::from_bytes(&best_path.display().to_string(), &best)?;
    if let Some(dir) = opts
        .model_out
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
    {
        fs::create_dir_all(dir).map_err(io(dir))?;
    }
    write_file(&opts.model_out, &best)?;
    Ok(TrainReport {
        epochs_run: state.epoch,
        best_epoch: state.best_epoch,
        best_map_at_r: state.best_map_at_r,
        stopped_early,
        fingerprint: bundle.fingerprint().to_string(),
        model_out: opts.model_out.clone(),
        history: state.history,
    })
}

/// Learning rates of one step: the pretrained backbone's may be lower, or 0 (frozen).
#[derive(Clone, Copy, Debug)]
pub struct Rates {
    pub head: f64,
    pub backbone: f64,
}

impl Rates {
    /// One rate for the whole network.
    pub fn uniform(lr: f64) -> Self {
        Self {
            head: lr,
            backbone: lr,
        }
    }
}

/// One optimisation step: forward, loss, backward, AdamW update.
pub fn step(
    model: EmbeddingModel,
    optimizer: &mut ModuleOptimizer,
    input: Tensor<4>,
    labels: &[usize],
    kind: LossKind,
    margin: f32,
    rates: Rates,
) -> (EmbeddingModel, Tensor<1>) {
    let (l, grads) = backward(&model, input, labels, kind, margin);
    (update(model, optimizer, grads, rates), l)
}

/// Forward, loss and backward: the batch's loss and every parameter's gradient.
pub fn backward(
    model: &EmbeddingModel,
    input: Tensor<4>,
    labels: &[usize],
    kind: LossKind,
    margin: f32,
) -> (Tensor<1>, GradientsParams) {
    let l = loss(kind, model.forward(input), labels, margin);
    let grads = l.clone().backward();
    (l.detach(), GradientsParams::from_grads(grads, model))
}

/// The AdamW update of `model` by `grads`: the backbone of an EfficientNet at
/// `rates.backbone` (frozen at 0), the rest at `rates.head`.
pub fn update(
    model: EmbeddingModel,
    optimizer: &mut ModuleOptimizer,
    mut grads: GradientsParams,
    rates: Rates,
) -> EmbeddingModel {
    let backbone = match &model {
        EmbeddingModel::EfficientNet(net) if rates.backbone != rates.head => {
            Some(gradients::split_off(&mut grads, net.backbone()))
        }
        _ => None,
    };
    let model = match backbone {
        Some(g) if rates.backbone > 0.0 => optimizer.step(rates.backbone, model, g),
        _ => model,
    };
    optimizer.step(rates.head, model, grads)
}

/// Replaces a fresh network's backbone with the one of the bundle at `path`.
fn with_pretrained_backbone(
    model: EmbeddingModel,
    path: &Path,
    device: &Device,
) -> Result<EmbeddingModel> {
    let bytes = fs::read(path).map_err(io(path))?;
    let bundle = Bundle::from_bytes(&path.display().to_string(), &bytes)?;
    match (model, bundle.load_model(device)?) {
        (EmbeddingModel::EfficientNet(fresh), EmbeddingModel::EfficientNet(pretrained)) => {
            info!(init = %path.display(), "starting from a pretrained backbone");
            Ok(EmbeddingModel::EfficientNet(
                fresh.with_backbone_of(pretrained),
            ))
        }
        _ => Err(Error::BadInput(format!(
            "--init {}: its architecture ({}) is not the one this run trains",
            path.display(),
            bundle.header.architecture.name()
        ))),
    }
}

/// Training throughput of the bare step (random images, no data loading), for
/// comparison with other frameworks on the same network and batch.
#[derive(Clone, Debug, Serialize)]
pub struct StepBenchmark {
    pub backend: String,
    pub batch_size: usize,
    pub input_size: u32,
    pub architecture: Architecture,
    pub steps: usize,
    pub seconds: f64,
    pub images_per_sec: f64,
}

/// Times `steps` training steps after `warmup` untimed ones.
pub fn benchmark_steps(
    backend: Backend,
    architecture: &Architecture,
    batch_size: usize,
    per_class: usize,
    input_size: u32,
    warmup: usize,
    steps: usize,
) -> Result<StepBenchmark> {
    let device = backend.training_device()?;
    let mut model = architecture.init(&device)?;
    let mut optimizer = AdamWConfig::new().with_weight_decay(5e-4).init();
    let s = input_size as usize;
    let input = Tensor::<4>::random(
        [batch_size, 3, s, s],
        burn::tensor::Distribution::Normal(0.0, 1.0),
        &device,
    );
    let labels: Vec<usize> = (0..batch_size).map(|i| i / per_class.max(1)).collect();
    let begun = Instant::now();
    // Warm-up steps wait for the device one by one and log, so that a backend
    // still compiling its kernels shows how far it got.
    let mut run = |model: EmbeddingModel, n: usize, warming: bool| -> Result<EmbeddingModel> {
        let mut model = model;
        let mut last = None;
        for i in 0..n {
            let (next, l) = step(
                model,
                &mut optimizer,
                input.clone(),
                &labels,
                LossKind::TripletHard,
                0.2,
                Rates::uniform(1e-3),
            );
            model = next;
            if warming {
                let loss: f32 = l.into_scalar();
                let elapsed = begun.elapsed().as_secs_f64();
                info!(
                    "warm-up step {}/{n}: loss {loss:.4}, {elapsed:.1} s in",
                    i + 1
                );
                continue;
            }
            last = Some(l);
        }
        if let Some(l) = last {
            // Reading the loss waits for the device to finish the queued steps.
            let _: f32 = l.into_scalar();
        }
        Ok(model)
    };
    model = run(model, warmup, true)?;
    let started = Instant::now();
    let _ = run(model, steps, false)?;
    let seconds = started.elapsed().as_secs_f64();
    Ok(StepBenchmark {
        backend: backend.to_string(),
        batch_size,
        input_size,
        architecture: architecture.clone(),
        steps,
        seconds,
        images_per_sec: (batch_size * steps) as f64 / seconds,
    })
}

/// Augments and normalises one batch on all cores.
fn prepare_batch(
    data: &LabeledImages,
    batch: &[usize],
    opts: &TrainOptions,
    seed: u64,
) -> (Vec<f32>, Vec<usize>) {
    let size = opts.preprocessing.input_size;
    let per_image: Vec<Vec<f32>> = batch
        .par_iter()
        .enumerate()
        .map(|(i, &item)| {
            let mut rng =
                StdRng::seed_from_u64(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ i as u64);
            let source = metricann::image::fit_square(&data.images[item], size.max(64));
            let rgb = augment(
                &DynamicImage::ImageRgb8(source),
                size,
                &opts.augment,
                &mut rng,
            );
            opts.preprocessing.normalise(&rgb)
        })
        .collect();
    let labels = batch.iter().map(|&i| data.labels[i]).collect();
    (per_image.concat(), labels)
}

/// Validation MAP@R and P@1 of leave-one-out retrieval among the validation images.
fn validate(
    model: &EmbeddingModel,
    device: &Device,
    val: &LabeledImages,
    opts: &TrainOptions,
) -> Result<(f64, f64)> {
    if val.is_empty() {
        return Ok((0.0, 0.0));
    }
    let embedder = Embedder::from_model(
        model.valid(),
        device.clone().without_autodiff(),
        opts.preprocessing.clone(),
        String::new(),
        opts.architecture.embedding_dim(),
    );
    let vectors = embedder.embed(&val.images)?;
    let m = leave_one_out(&vectors, &val.labels);
    Ok((m.map_at_r, m.precision_at_1))
}

fn export(
    model: &EmbeddingModel,
    opts: &TrainOptions,
    train: &LabeledImages,
    state: &RunState,
) -> Result<Bundle> {
    let mut metrics = std::collections::BTreeMap::new();
    if let Some(last) = state.history.last() {
        metrics.insert("val_map_at_r".to_string(), last.val_map_at_r);
        metrics.insert("val_precision_at_1".to_string(), last.val_precision_at_1);
    }
    let mut extra = std::collections::BTreeMap::new();
    extra.insert("margin".to_string(), serde_json::json!(opts.margin));
    extra.insert("lr".to_string(), serde_json::json!(opts.lr));
    extra.insert("batch_size".to_string(), serde_json::json!(opts.batch_size));
    extra.insert("seed".to_string(), serde_json::json!(opts.seed));
    extra.insert(
        "augment".to_string(),
        serde_json::json!(format!("{:?}", opts.augment)),
    );
    let summary = TrainingSummary {
        dataset: opts.dataset_name.clone(),
        classes: train.classes.len(),
        images: train.len(),
        epochs: state.epoch,
        loss: opts.loss.to_string(),
        backend: opts.backend.to_string(),
        metrics,
        extra,
    };
    Bundle::from_model(
        model,
        &opts.architecture,
        &opts.preprocessing,
        Some(summary),
    )
}

/// Writes by temp-then-rename so a killed run never leaves half a checkpoint.
pub fn write_file(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension("tmp-write");
    let mut f = fs::File::create(&tmp).map_err(io(&tmp))?;
    f.write_all(bytes).map_err(io(&tmp))?;
    f.sync_all().map_err(io(&tmp))?;
    fs::rename(&tmp, path).map_err(io(path))
}

fn append_jsonl(path: &Path, record: &EpochRecord, truncate: bool) -> Result<()> {
    let mut f = fs::OpenOptions::new()
        .create(true)
        .write(true)
        .append(!truncate)
        .truncate(truncate)
        .open(path)
        .map_err(io(path))?;
    let line = serde_json::to_string(record).map_err(|e| Error::Internal(e.to_string()))?;
    writeln!(f, "{line}").map_err(io(path))
}

fn progress_bar(enabled: bool, len: u64, epoch: usize, epochs: usize) -> ProgressBar {
    if !enabled {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(len);
    bar.set_style(
        ProgressStyle::with_template("epoch {prefix} [{bar:30}] {pos}/{len} {msg} ({eta})")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar.set_prefix(format!("{epoch}/{epochs}"));
    bar
}

/// Linear warm-up, then cosine decay to 1% of the base rate.
#[derive(Clone, Copy, Debug)]
pub struct Schedule {
    base: f64,
    warmup: usize,
    total: usize,
}

impl Schedule {
    pub fn new(base: f64, total: usize, warmup_fraction: f64) -> Self {
        let warmup = ((total as f64 * warmup_fraction).round() as usize).clamp(1, total.max(1));
        Self {
            base,
            warmup,
            total: total.max(1),
        }
    }

    pub fn at(&self, step: usize) -> f64 {
        if step < self.warmup {
            return self.base * (step + 1) as f64 / self.warmup as f64;
        }
        let span = (self.total - self.warmup).max(1) as f64;
        let t = ((step - self.warmup) as f64 / span).min(1.0);
        let floor = self.base * 0.01;
        floor + (self.base - floor) * 0.5 * (1.0 + (std::f64::consts::PI * t).cos())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedule_warms_up_then_decays() {
        let s = Schedule::new(1e-3, 100, 0.1);
        assert!(s.at(0) < s.at(5));
        assert!((s.at(9) - 1e-3).abs() < 1e-12);
        assert!(s.at(50) < s.at(10));
        assert!((s.at(99) - 1e-5).abs() < 2e-6, "{}", s.at(99));
        assert!(s.at(1000) >= 1e-5);
    }
}
