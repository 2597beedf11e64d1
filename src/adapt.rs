//! Adapting a model to the user's own classes, on the device: the projection
//! head is retrained on the enrolled images, the backbone stays as shipped.
//!
//! The backbone's pooled features of every image, and of `views` camera-like
//! augmentations of it ([`crate::image::augment`]), are computed once through
//! the inference model; training then runs the head alone on those cached
//! features with burn's autodiff, a batch-hard triplet loss over the enrolled
//! classes and AdamW. The result is a metric, not a classifier: new classes
//! still enroll without training, and an unknown still scores low.
//!
//! The head trains on the CPU whatever the backbone runs on: it is one small
//! matrix, and a step is a few hundred microseconds there, less than one
//! round trip to a GPU and back for the loss. The features, nearly all the
//! work, come from the embedder's own device.
//!
//! A guard against making things worse: one image per class (of those with
//! two or more) is held out of training, and the adapted head is kept only if
//! the held-out images' top-1 among the classes does not drop. When every
//! class has a single image, one more augmented view of each, never trained
//! on, is held out instead. That check is weaker (a view of an image the head
//! trained on is easy, and the shipped head often gets them all right
//! already, so it cannot see harm), so there the head must do strictly better
//! on the views to be kept; the report says which check it was.
//!
//! The work is split into steps ([`Adaptation::next_images`] with
//! [`Adaptation::add_features`], [`Adaptation::step`]) so that a caller on a
//! browser's event loop can compute features asynchronously, report progress
//! and yield between them; [`adapt`] runs them all.

use std::ops::ControlFlow;

use ::image::DynamicImage;
use ::image::imageops::FilterType;
use burn::module::{Module, Param};
use burn::optim::{AdamWConfig, GradientsParams, ModuleOptimizer};
use burn::tensor::activation::log_softmax;
use burn::tensor::{Device, Tensor, TensorData};
use rand::rngs::SmallRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

use crate::backend::Backend;
use crate::embed::Embedder;
use crate::image::augment::{AugmentConfig, augment};
use crate::model::loss::{LossKind, loss};
use crate::model::{ProjectionHead, l2_normalize};
use crate::{Error, Result};

/// How to adapt.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct AdaptOptions {
    /// Optimisation steps.
    pub steps: usize,
    /// Augmented views of each training image, besides the image itself.
    pub views: usize,
    /// AdamW's learning rate.
    pub learning_rate: f64,
    /// The triplet margin (distances on the unit sphere, in [0, 2]).
    pub margin: f32,
    /// Classes in one batch (all of them when there are fewer).
    pub classes_per_batch: usize,
    /// Views of each class in one batch.
    pub views_per_class: usize,
    /// Seed of the augmentation and the batches: the same inputs and seed
    /// give the same head.
    pub seed: u64,
    /// The metric loss.
    pub loss: AdaptLoss,
}

/// The metric loss the head is retrained with.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum AdaptLoss {
    /// Batch-hard triplet over the views of `classes_per_batch` classes.
    #[default]
    Triplet,
    /// Normalised softmax over one proxy per class (Zhai & Wu 2019): the
    /// proxies start at the classes' mean embeddings and train with the head.
    Proxy,
}

/// The proxy loss's inverse temperature (Zhai & Wu's 0.05).
const PROXY_SCALE: f32 = 20.0;

/// What a step trains: the head, and with [`AdaptLoss::Proxy`] one proxy per
/// class with training images (created at the first step).
#[derive(Module, Debug)]
struct Trainee {
    head: ProjectionHead,
    proxies: Option<Param<Tensor<2>>>,
}

impl Default for AdaptOptions {
    fn default() -> Self {
        Self {
            steps: 150,
            views: 6,
            learning_rate: 1e-3,
            margin: 0.2,
            classes_per_batch: 32,
            views_per_class: 4,
            seed: 0,
            loss: AdaptLoss::Triplet,
        }
    }
}

impl AdaptOptions {
    /// Refuses settings that cannot train (they come from an app).
    pub fn validate(&self) -> Result<()> {
        let bad = |what: &str| Err(Error::BadInput(format!("adapt: {what}")));
        if !(1..=100_000).contains(&self.steps) {
            return bad("steps must be in 1..=100000");
        }
        if self.views > 64 {
            return bad("views must be at most 64");
        }
        if !(self.learning_rate > 0.0 && self.learning_rate <= 1.0) {
            return bad("learningRate must be in (0, 1]");
        }
        if !(self.margin > 0.0 && self.margin <= 2.0) {
            return bad("margin must be in (0, 2]");
        }
        if self.classes_per_batch < 2 || self.views_per_class < 2 {
            return bad("classesPerBatch and viewsPerClass must be at least 2");
        }
        Ok(())
    }
}

/// What an adaptation measured.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AdaptReport {
    /// Classes trained on.
    pub classes: usize,
    /// Images trained on (held-out ones excluded).
    pub images: usize,
    /// Feature vectors trained on (images and their views).
    pub views: usize,
    /// Steps run.
    pub steps: usize,
    /// The loss of the first and of the last step.
    pub first_loss: f32,
    pub last_loss: f32,
    /// The held-out check.
    pub held_out: Option<HeldOut>,
    /// Whether the adapted head is worth keeping (held-out top-1 did not drop).
    pub kept: bool,
}

/// Top-1 of the held-out images among the classes, before and after.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HeldOut {
    pub images: usize,
    /// The held-out images are augmented views of the training images (every
    /// class had one image), not images of their own.
    pub views: bool,
    pub top1_before: f32,
    pub top1_after: f32,
}

/// The result: the new head (see [`Embedder::with_head`]), the report, and
/// the embeddings of the classes' images through the new head.
#[derive(Debug)]
pub struct Adapted {
    /// The weights, in [`ProjectionHead::to_floats`]'s layout.
    pub head: Vec<f32>,
    pub report: AdaptReport,
    /// `embeddings[class][image]`: what [`Embedder::with_head`] would embed
    /// each given image as (up to rounding), from the features already
    /// computed: re-embedding the gallery needs no backbone pass.
    pub embeddings: Vec<Vec<Vec<f32>>>,
}

/// What [`adapt`] reports as it goes.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Progress {
    /// Feature vectors computed so far, of `total`.
    Features { done: usize, total: usize },
    /// One optimisation step done, with its loss.
    Step {
        step: usize,
        steps: usize,
        loss: f32,
    },
}

/// Adapts `embedder`'s head to `classes` (each the images of one class),
/// reporting progress; `on_progress` returning `Break` cancels (`Ok(None)`).
pub fn adapt(
    embedder: &Embedder,
    classes: &[Vec<DynamicImage>],
    options: &AdaptOptions,
    mut on_progress: impl FnMut(Progress) -> ControlFlow<()>,
) -> Result<Option<Adapted>> {
    let base = embedder.head().map(|h| h.to_floats()).unwrap_or_default();
    let sources = classes
        .iter()
        .map(|c| c.iter().cloned().map(Source::Image).collect())
        .collect();
    let mut run = Adaptation::new(embedder, &base, sources, options)?;
    while !run.features_done() {
        let (done, total) = run.extract(embedder, crate::embed::DEFAULT_BATCH)?;
        if on_progress(Progress::Features { done, total }).is_break() {
            return Ok(None);
        }
    }
    for step in 1..=options.steps {
        let loss = run.step()?;
        let progress = Progress::Step {
            step,
            steps: options.steps,
            loss,
        };
        if on_progress(progress).is_break() {
            return Ok(None);
        }
    }
    run.finish().map(Some)
}

/// An adaptation in progress.
pub struct Adaptation {
    options: AdaptOptions,
    /// The held-out check uses augmented views (every class has one image).
    held_out_views: bool,
    rng: SmallRng,
    /// The classes' images, taken (and decoded) as their turn comes.
    sources: Vec<Option<Source>>,
    /// The image whose features are being computed, decoded and scaled down
    /// to what the views need: (source, image).
    current: Option<(usize, DynamicImage)>,
    /// Each source's class and place in it.
    origins: Vec<(usize, usize)>,
    /// Features still to compute, last first: (source image, role).
    pending: Vec<(usize, Role)>,
    /// Those handed out by `next_images`, awaiting their features.
    in_flight: Vec<(usize, Role)>,
    total: usize,
    input_size: u32,
    /// Training features by class.
    train: Vec<Vec<Vec<f32>>>,
    /// Held-out features and their class.
    held_out: Vec<(usize, Vec<f32>)>,
    /// The training images' own features, the classes' examples in the check.
    examples: Vec<(usize, Vec<f32>)>,
    /// Every given image's own features, by class and place.
    own: Vec<Vec<Vec<f32>>>,
    initial: ProjectionHead,
    trainee: Trainee,
    /// Each class's proxy (the proxy loss): classes without training images
    /// have none.
    proxy_of: Vec<Option<usize>>,
    optimizer: ModuleOptimizer,
    device: Device,
    losses: Vec<f32>,
    images: usize,
}

impl Adaptation {
    /// Plans the work: which images are held out, which views to compute.
    /// `base_head`: the embedder's head as [`ProjectionHead::to_floats`]
    /// reads it (the caller reads it, as its device allows).
    pub fn new(
        embedder: &Embedder,
        base_head: &[f32],
        classes: Vec<Vec<Source>>,
        options: &AdaptOptions,
    ) -> Result<Self> {
        options.validate()?;
        let like = embedder.head().ok_or_else(|| {
            Error::BadInput(
                "this model has no projection head to adapt (its embeddings are its features)"
                    .into(),
            )
        })?;
        let cpu = Backend::Ndarray.device()?;
        let head = ProjectionHead::from_floats_on(&like, base_head, &cpu)?;
        let usable = classes.iter().filter(|c| !c.is_empty()).count();
        if usable < 2 {
            return Err(Error::BadInput(
                "adapting needs at least two classes with images".into(),
            ));
        }
        let input_size = embedder.preprocessing().input_size;
        let mut sources = Vec::new();
        let mut origins = Vec::new();
        let mut pending = Vec::new();
        let mut images = 0;
        let held_out_views = classes.iter().all(|c| c.len() < 2);
        let own = classes.iter().map(|c| vec![Vec::new(); c.len()]).collect();
        let class_count = classes.len();
        for (class, class_images) in classes.into_iter().enumerate() {
            let held = (class_images.len() >= 2).then(|| class_images.len() - 1);
            for (i, image) in class_images.into_iter().enumerate() {
                let source = sources.len();
                sources.push(Some(image));
                origins.push((class, i));
                if Some(i) == held {
                    pending.push((source, Role::HeldOut));
                    continue;
                }
                if held_out_views {
                    pending.push((source, Role::HeldOutView));
                }
                pending.push((source, Role::Example));
                pending.extend((0..options.views).map(|_| (source, Role::View)));
                images += 1;
            }
        }
        pending.reverse();
        Ok(Self {
            held_out_views,
            total: pending.len(),
            pending,
            in_flight: Vec::new(),
            sources,
            current: None,
            origins,
            input_size,
            rng: SmallRng::seed_from_u64(options.seed),
            options: options.clone(),
            train: vec![Vec::new(); class_count],
            held_out: Vec::new(),
            examples: Vec::new(),
            own,
            trainee: Trainee {
                head: head.clone(),
                proxies: None,
            }
            .fork(&training_device(&cpu))
            .train(),
            proxy_of: Vec::new(),
            initial: head,
            optimizer: AdamWConfig::new().with_weight_decay(1e-4).init(),
            device: cpu,
            losses: Vec::new(),
            images,
        })
    }

    /// Whether every feature vector is computed.
    pub fn features_done(&self) -> bool {
        self.pending.is_empty()
    }

    /// Computes the features of up to `count` more images or views with
    /// `embedder`: (done, total).
    pub fn extract(&mut self, embedder: &Embedder, count: usize) -> Result<(usize, usize)> {
        let images = self.next_images(count)?;
        let features = embedder.features(&images)?;
        self.add_features(features)
    }

    /// The next up to `count` images or views whose features are needed, to
    /// hand to [`Adaptation::add_features`] in the same order.
    pub fn next_images(&mut self, count: usize) -> Result<Vec<DynamicImage>> {
        let take = count.min(self.pending.len());
        self.in_flight = (0..take).filter_map(|_| self.pending.pop()).collect();
        let config = camera_views();
        let mut images = Vec::with_capacity(take);
        for i in 0..self.in_flight.len() {
            let (source, role) = self.in_flight[i];
            self.decode_source(source)?;
            let Some((_, image)) = &self.current else {
                return Err(Error::Internal("adapt: no current source".into()));
            };
            images.push(match role {
                Role::View | Role::HeldOutView => {
                    DynamicImage::ImageRgb8(augment(image, self.input_size, &config, &mut self.rng))
                }
                Role::Example | Role::HeldOut => image.clone(),
            });
        }
        Ok(images)
    }

    /// Makes source `source` the current one, decoded once: a source's
    /// features are computed one after another (`pending` holds them in a
    /// row), so only one is held decoded at a time.
    fn decode_source(&mut self, source: usize) -> Result<()> {
        if self.current.as_ref().map(|(s, _)| *s) != Some(source) {
            let taken = self.sources[source]
                .take()
                .ok_or_else(|| Error::Internal(format!("adapt: source {source} taken twice")))?;
            let image = match taken {
                Source::Image(image) => image,
                Source::Encoded { name, bytes } => crate::image::decode(&name, &bytes)?,
            };
            self.current = Some((source, scaled_for_views(image, self.input_size)));
        }
        Ok(())
    }

    /// The features of what [`Adaptation::next_images`] handed out: (done,
    /// total).
    pub fn add_features(&mut self, features: Vec<Vec<f32>>) -> Result<(usize, usize)> {
        let batch = std::mem::take(&mut self.in_flight);
        if features.len() != batch.len() {
            return Err(Error::Internal(format!(
                "adapt: {} features for {} images",
                features.len(),
                batch.len()
            )));
        }
        for ((source, role), feature) in batch.into_iter().zip(features) {
            let (class, place) = self.origins[source];
            match role {
                Role::HeldOut => {
                    self.own[class][place] = feature.clone();
                    self.held_out.push((class, feature));
                }
                Role::HeldOutView => self.held_out.push((class, feature)),
                Role::Example => {
                    self.own[class][place] = feature.clone();
                    self.examples.push((class, feature.clone()));
                    self.train[class].push(feature);
                }
                Role::View => self.train[class].push(feature),
            }
        }
        Ok((self.total - self.pending.len(), self.total))
    }

    /// One optimisation step on a batch of classes and their views; the loss.
    pub fn step(&mut self) -> Result<f32> {
        if !self.features_done() || !self.in_flight.is_empty() {
            return Err(Error::Internal("adapt: step before the features".into()));
        }
        let (features, labels) = self.batch();
        let dim = features.len() / labels.len();
        let device = training_device(&self.device);
        let x = Tensor::<2>::from_data(TensorData::new(features, [labels.len(), dim]), &device);
        if self.options.loss == AdaptLoss::Proxy && self.trainee.proxies.is_none() {
            self.init_proxies()?;
        }
        let trainee = self.trainee.clone();
        let embeddings = l2_normalize(trainee.head.forward(x));
        let l = match (&trainee.proxies, self.options.loss) {
            (Some(proxies), AdaptLoss::Proxy) => {
                self.proxy_loss(embeddings, proxies.val(), &labels, &device)
            }
            _ => loss(
                LossKind::TripletHard,
                embeddings,
                &labels,
                self.options.margin,
            ),
        };
        let value = l.clone().into_scalar::<f32>();
        let grads = GradientsParams::from_grads(l.backward(), &trainee);
        self.trainee = self
            .optimizer
            .step(self.options.learning_rate, trainee, grads);
        if !value.is_finite() {
            return Err(Error::Internal("adapt: the loss is not finite".into()));
        }
        self.losses.push(value);
        Ok(value)
    }

    /// The adapted head and what was measured; the held-out check decides
    /// whether it is `kept`.
    pub fn finish(self) -> Result<Adapted> {
        if !self.features_done() || !self.in_flight.is_empty() {
            return Err(Error::Internal("adapt: finish before the features".into()));
        }
        let head = self.trainee.valid().head;
        let held_out = if self.held_out.is_empty() {
            None
        } else {
            let features: Vec<&Vec<f32>> = self.held_out.iter().map(|(_, f)| f).collect();
            Some(HeldOut {
                images: self.held_out.len(),
                views: self.held_out_views,
                top1_before: self.top1(&self.initial, &features)?,
                top1_after: self.top1(&head, &features)?,
            })
        };
        let kept = held_out.as_ref().is_none_or(|h| {
            if h.views {
                h.top1_after > h.top1_before
            } else {
                h.top1_after >= h.top1_before
            }
        });
        let mut embeddings = Vec::with_capacity(self.own.len());
        for class in &self.own {
            let rows: Vec<&Vec<f32>> = class.iter().collect();
            embeddings.push(project(&head, &rows, &self.device)?);
        }
        let report = AdaptReport {
            classes: self.train.iter().filter(|c| !c.is_empty()).count(),
            images: self.images,
            views: self.train.iter().map(Vec::len).sum(),
            steps: self.losses.len(),
            first_loss: self.losses.first().copied().unwrap_or(0.0),
            last_loss: self.losses.last().copied().unwrap_or(0.0),
            held_out,
            kept,
        };
        Ok(Adapted {
            head: head.to_floats(),
            report,
            embeddings,
        })
    }

    /// One proxy per class with training images: the mean of its training
    /// images' embeddings through the shipped head, on the unit sphere.
    fn init_proxies(&mut self) -> Result<()> {
        let mut sums: Vec<Option<Vec<f32>>> = vec![None; self.train.len()];
        let features: Vec<&Vec<f32>> = self.examples.iter().map(|(_, f)| f).collect();
        let embedded = project(&self.initial, &features, &self.device)?;
        for ((class, _), e) in self.examples.iter().zip(embedded) {
            let sum = sums[*class].get_or_insert_with(|| vec![0.0; e.len()]);
            sum.iter_mut().zip(&e).for_each(|(s, x)| *s += x);
        }
        let mut rows = Vec::new();
        self.proxy_of = sums
            .into_iter()
            .map(|sum| {
                sum.map(|sum| {
                    let norm = dot(&sum, &sum).sqrt().max(1e-12);
                    rows.extend(sum.iter().map(|x| x / norm));
                    rows.len() / sum.len() - 1
                })
            })
            .collect();
        let count = self.proxy_of.iter().flatten().count();
        let dim = rows.len() / count.max(1);
        let device = training_device(&self.device);
        let proxies = Tensor::<2>::from_data(TensorData::new(rows, [count, dim]), &device);
        self.trainee.proxies = Some(Param::from_tensor(proxies));
        Ok(())
    }

    /// Normalised softmax cross-entropy of `embeddings` against the proxies.
    fn proxy_loss(
        &self,
        embeddings: Tensor<2>,
        proxies: Tensor<2>,
        labels: &[usize],
        device: &Device,
    ) -> Tensor<1> {
        let [count, _] = proxies.dims();
        let logits = embeddings
            .matmul(l2_normalize(proxies).transpose())
            .mul_scalar(PROXY_SCALE);
        let mut one_hot = vec![0.0f32; labels.len() * count];
        for (row, class) in labels.iter().enumerate() {
            if let Some(proxy) = self.proxy_of[*class] {
                one_hot[row * count + proxy] = 1.0;
            }
        }
        let one_hot =
            Tensor::<2>::from_data(TensorData::new(one_hot, [labels.len(), count]), device);
        (log_softmax(logits, 1) * one_hot).sum_dim(1).mean().neg()
    }

    /// `classes_per_batch` classes with two views or more, `views_per_class`
    /// views of each (drawn with replacement when a class has fewer).
    fn batch(&mut self) -> (Vec<f32>, Vec<usize>) {
        let mut classes: Vec<usize> = (0..self.train.len())
            .filter(|&c| !self.train[c].is_empty())
            .collect();
        classes.shuffle(&mut self.rng);
        classes.truncate(self.options.classes_per_batch);
        let mut features = Vec::new();
        let mut labels = Vec::new();
        for class in classes {
            let views = &self.train[class];
            for _ in 0..self.options.views_per_class {
                features.extend_from_slice(&views[self.rng.random_range(0..views.len())]);
                labels.push(class);
            }
        }
        (features, labels)
    }

    /// Top-1 of the held-out `queries` (in `held_out`'s order) against the
    /// classes' examples through `head`: the nearest example's class is the
    /// answer.
    fn top1(&self, head: &ProjectionHead, queries: &[&Vec<f32>]) -> Result<f32> {
        let examples: Vec<&Vec<f32>> = self.examples.iter().map(|(_, f)| f).collect();
        let gallery = project(head, &examples, &self.device)?;
        let queries = project(head, queries, &self.device)?;
        let mut right = 0;
        for (query, (class, _)) in queries.iter().zip(&self.held_out) {
            let best = gallery
                .iter()
                .zip(&self.examples)
                .map(|(g, (c, _))| (dot(g, query), *c))
                .max_by(|a, b| a.0.total_cmp(&b.0))
                .map(|(_, c)| c);
            right += usize::from(best == Some(*class));
        }
        Ok(right as f32 / self.held_out.len() as f32)
    }
}

/// `rows` of features through `head` on `device`, as unit vectors.
fn project(head: &ProjectionHead, rows: &[&Vec<f32>], device: &Device) -> Result<Vec<Vec<f32>>> {
    let Some(first) = rows.first() else {
        return Ok(Vec::new());
    };
    let dim = first.len();
    let flat: Vec<f32> = rows.iter().flat_map(|r| r.iter().copied()).collect();
    let x = Tensor::<2>::from_data(TensorData::new(flat, [rows.len(), dim]), device);
    let out = l2_normalize(head.forward(x));
    let [_, width] = out.dims();
    let flat = out
        .into_data()
        .convert::<f32>()
        .try_into_vec::<f32>()
        .map_err(|e| Error::Internal(format!("adapt: {e:?}")))?;
    Ok(flat.chunks(width).map(<[f32]>::to_vec).collect())
}

/// An image to adapt to: decoded, or encoded (a gallery's kept images),
/// decoded only when its turn comes, so that a large gallery's images are
/// never all decoded at once.
#[derive(Clone, Debug)]
pub enum Source {
    Image(DynamicImage),
    Encoded { name: String, bytes: Vec<u8> },
}

/// `image` as small as the views need: they crop down to a third of it, so
/// twice the model's input size keeps their detail, and a phone photo's
/// megapixels need not stay in memory while the features are computed.
pub fn scaled_for_views(image: DynamicImage, input_size: u32) -> DynamicImage {
    let bound = input_size * 2;
    if image.width().max(image.height()) > bound {
        image.resize(bound, bound, FilterType::Triangle)
    } else {
        image
    }
}

/// What an image is to the adaptation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Role {
    /// A training image as enrolled: trained on, and an example in the check.
    Example,
    /// An augmented view of a training image: trained on.
    View,
    /// Held out of training, for the check.
    HeldOut,
    /// An augmented view held out for the check (every class has one image).
    HeldOutView,
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// The device a head trains on: `device` with autodiff.
fn training_device(device: &Device) -> Device {
    device.clone().autodiff()
}

/// Camera-like views for photos and drawings alike: partial, off-centre
/// crops, tilt, colour cast, blur, noise, JPEG; no mirror images (text and
/// glyphs are not symmetric).
fn camera_views() -> AugmentConfig {
    AugmentConfig {
        crop_scale: (0.35, 1.0),
        jpeg_prob: 0.3,
        ..AugmentConfig::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::embed::tiny_embedder;
    use ::image::{Rgb, RgbImage};

    fn embedder() -> Embedder {
        tiny_embedder(24)
    }

    /// Class `c`: stripes of its own period and colour; `i` shifts them.
    fn image(c: usize, i: usize) -> DynamicImage {
        let period = 3 + c as u32 * 2;
        let colour = [(60 * c) as u8, 255 - (50 * c) as u8, (90 * i) as u8];
        DynamicImage::ImageRgb8(RgbImage::from_fn(32, 32, |x, y| {
            if (x + y + i as u32) % period < period / 2 {
                Rgb(colour)
            } else {
                Rgb([255, 255, 255])
            }
        }))
    }

    fn classes(n: usize, per_class: usize) -> Vec<Vec<DynamicImage>> {
        (0..n)
            .map(|c| (0..per_class).map(|i| image(c, i)).collect())
            .collect()
    }

    fn quick() -> AdaptOptions {
        AdaptOptions {
            steps: 30,
            views: 3,
            classes_per_batch: 4,
            ..AdaptOptions::default()
        }
    }

    #[test]
    fn trains_the_head_and_reports_what_it_measured() {
        let e = embedder();
        let mut seen = Vec::new();
        let adapted = adapt(&e, &classes(4, 3), &quick(), |p| {
            seen.push(p);
            ControlFlow::Continue(())
        })
        .unwrap()
        .unwrap();
        let r = &adapted.report;
        assert_eq!((r.classes, r.images, r.steps), (4, 8, 30));
        assert_eq!(r.views, 8 * (1 + 3));
        let held = r
            .held_out
            .as_ref()
            .expect("every class has a held-out image");
        assert_eq!(held.images, 4);
        assert_eq!(r.kept, held.top1_after >= held.top1_before);
        assert!(
            r.last_loss < r.first_loss,
            "{} → {}",
            r.first_loss,
            r.last_loss
        );
        assert!(matches!(seen.first(), Some(Progress::Features { .. })));
        assert!(matches!(seen.last(), Some(Progress::Step { step: 30, .. })));

        let before = e.embed_one(&image(1, 0)).unwrap();
        let with = e.with_head(&adapted.head).unwrap();
        assert_ne!(with.fingerprint(), e.fingerprint());
        let after = with.embed_one(&image(1, 0)).unwrap();
        assert_eq!(after.len(), before.len());
        assert!((dot(&after, &after) - 1.0).abs() < 1e-4, "unit length");
        assert!(before.iter().zip(&after).any(|(a, b)| (a - b).abs() > 1e-3));
        // The embeddings handed back are what the adapted model embeds, the
        // held-out image's included.
        assert_eq!(adapted.embeddings.len(), 4);
        assert!(adapted.embeddings.iter().all(|c| c.len() == 3));
        for (c, i) in [(1, 0), (2, 2)] {
            let direct = with.embed_one(&image(c, i)).unwrap();
            let given = &adapted.embeddings[c][i];
            assert!(dot(&direct, given) > 0.9999, "class {c} image {i}");
        }
    }

    #[test]
    fn a_seed_gives_the_same_head_and_cancelling_stops() {
        let e = embedder();
        let run = || {
            adapt(&e, &classes(3, 2), &quick(), |_| ControlFlow::Continue(()))
                .unwrap()
                .unwrap()
                .head
        };
        assert_eq!(run(), run());
        let mut calls = 0;
        let cancelled = adapt(&e, &classes(3, 2), &quick(), |_| {
            calls += 1;
            ControlFlow::Break(())
        })
        .unwrap();
        assert!(cancelled.is_none());
        assert_eq!(calls, 1);
    }

    #[test]
    fn encoded_sources_give_the_head_decoded_ones_do() {
        let e = embedder();
        let base = e.head().unwrap().to_floats();
        let run = |sources: Vec<Vec<Source>>| {
            let mut run = Adaptation::new(&e, &base, sources, &quick()).unwrap();
            while !run.features_done() {
                run.extract(&e, 5).unwrap();
            }
            for _ in 0..quick().steps {
                run.step().unwrap();
            }
            run.finish().unwrap().head
        };
        let png = |c, i| {
            let mut bytes = std::io::Cursor::new(Vec::new());
            image(c, i)
                .write_to(&mut bytes, ::image::ImageFormat::Png)
                .unwrap();
            Source::Encoded {
                name: format!("{c}/{i}"),
                bytes: bytes.into_inner(),
            }
        };
        let decoded = (0..3)
            .map(|c| (0..2).map(|i| Source::Image(image(c, i))).collect())
            .collect();
        let encoded = (0..3)
            .map(|c| (0..2).map(|i| png(c, i)).collect())
            .collect();
        assert_eq!(run(decoded), run(encoded));

        let broken = vec![
            vec![Source::Encoded {
                name: "broken".into(),
                bytes: vec![1, 2, 3],
            }],
            vec![Source::Image(image(1, 0))],
        ];
        let mut bad = Adaptation::new(&e, &base, broken, &quick()).unwrap();
        assert!(matches!(bad.extract(&e, 5), Err(Error::BadImage { .. })));
    }

    #[test]
    fn the_proxy_loss_trains_the_head_too() {
        let e = embedder();
        let options = AdaptOptions {
            loss: AdaptLoss::Proxy,
            ..quick()
        };
        let adapted = adapt(&e, &classes(4, 3), &options, |_| ControlFlow::Continue(()))
            .unwrap()
            .unwrap();
        let r = &adapted.report;
        assert_eq!(r.steps, 30);
        assert!(
            r.last_loss < r.first_loss,
            "{} → {}",
            r.first_loss,
            r.last_loss
        );
        let triplet = adapt(&e, &classes(4, 3), &quick(), |_| ControlFlow::Continue(()))
            .unwrap()
            .unwrap();
        assert_ne!(adapted.head, triplet.head, "another loss, another head");
    }

    #[test]
    fn refuses_what_cannot_train() {
        let e = embedder();
        let one_class = adapt(&e, &classes(1, 3), &quick(), |_| ControlFlow::Continue(()));
        assert!(matches!(one_class, Err(Error::BadInput(_))));
        let bad = AdaptOptions {
            steps: 0,
            ..quick()
        };
        assert!(matches!(
            adapt(&e, &classes(3, 2), &bad, |_| ControlFlow::Continue(())),
            Err(Error::BadInput(_))
        ));
        // Classes of one image each: the check holds out a view of each.
        let r = adapt(&e, &classes(3, 1), &quick(), |_| ControlFlow::Continue(()))
            .unwrap()
            .unwrap()
            .report;
        let held = r.held_out.expect("a held-out view per class");
        assert_eq!((held.images, held.views), (3, true));
        assert_eq!(r.images, 3);
        assert_eq!(
            r.kept,
            held.top1_after > held.top1_before,
            "views must improve"
        );
    }
}
