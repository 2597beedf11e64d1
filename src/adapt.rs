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
//! A guard against making things worse: one image per class (of those with
//! two or more) is held out of training, and the adapted head is kept only if
//! the held-out images' top-1 among the classes does not drop. When every
//! class has a single image, one more augmented view of each, never trained
//! on, is held out instead: a weaker check, and the report says which it was.
//!
//! The work is split into steps ([`Adaptation::extract`], [`Adaptation::step`])
//! so that a caller on a browser's event loop can report progress and yield
//! between them; [`adapt`] runs them all.

use std::ops::ControlFlow;

use ::image::DynamicImage;
use ::image::imageops::FilterType;
use burn::module::Module;
use burn::optim::{AdamWConfig, GradientsParams, ModuleOptimizer};
use burn::tensor::{Device, Tensor, TensorData};
use rand::rngs::SmallRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

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

/// The result: the new head (see [`Embedder::with_head`]) and the report.
#[derive(Debug)]
pub struct Adapted {
    pub head: ProjectionHead,
    pub report: AdaptReport,
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
    let mut run = Adaptation::new(embedder, classes, options)?;
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
    /// The classes' images, scaled down to what the views need.
    sources: Vec<DynamicImage>,
    /// Features still to compute, last first: (class, source image, role).
    pending: Vec<(usize, usize, Role)>,
    total: usize,
    input_size: u32,
    /// Training features by class.
    train: Vec<Vec<Vec<f32>>>,
    /// Held-out features and their class.
    held_out: Vec<(usize, Vec<f32>)>,
    /// The training images' own features, the classes' examples in the check.
    examples: Vec<(usize, Vec<f32>)>,
    initial: ProjectionHead,
    head: ProjectionHead,
    optimizer: ModuleOptimizer,
    device: Device,
    losses: Vec<f32>,
    images: usize,
}

impl Adaptation {
    /// Plans the work: which images are held out, which views to compute.
    pub fn new(
        embedder: &Embedder,
        classes: &[Vec<DynamicImage>],
        options: &AdaptOptions,
    ) -> Result<Self> {
        options.validate()?;
        let head = embedder.head().ok_or_else(|| {
            Error::BadInput(
                "this model has no projection head to adapt (its embeddings are its features)"
                    .into(),
            )
        })?;
        let usable = classes.iter().filter(|c| !c.is_empty()).count();
        if usable < 2 {
            return Err(Error::BadInput(
                "adapting needs at least two classes with images".into(),
            ));
        }
        let input_size = embedder.preprocessing().input_size;
        let mut sources = Vec::new();
        let mut pending = Vec::new();
        let mut images = 0;
        let held_out_views = classes.iter().all(|c| c.len() < 2);
        for (class, class_images) in classes.iter().enumerate() {
            let held = (class_images.len() >= 2).then(|| class_images.len() - 1);
            for (i, image) in class_images.iter().enumerate() {
                let source = sources.len();
                // Views crop down to a third of the image: twice the input
                // size keeps their detail, and a phone photo's megapixels
                // need not stay in memory.
                let bound = input_size * 2;
                sources.push(if image.width().max(image.height()) > bound {
                    image.resize(bound, bound, FilterType::Triangle)
                } else {
                    image.clone()
                });
                if Some(i) == held {
                    pending.push((class, source, Role::HeldOut));
                    continue;
                }
                if held_out_views {
                    pending.push((class, source, Role::HeldOutView));
                }
                pending.push((class, source, Role::Example));
                pending.extend((0..options.views).map(|_| (class, source, Role::View)));
                images += 1;
            }
        }
        pending.reverse();
        let device = embedder.device().clone();
        Ok(Self {
            held_out_views,
            total: pending.len(),
            pending,
            sources,
            input_size,
            rng: SmallRng::seed_from_u64(options.seed),
            options: options.clone(),
            train: vec![Vec::new(); classes.len()],
            held_out: Vec::new(),
            examples: Vec::new(),
            initial: head.clone(),
            head: head.fork(&training_device(&device)).train(),
            optimizer: AdamWConfig::new().with_weight_decay(1e-4).init(),
            device,
            losses: Vec::new(),
            images,
        })
    }

    /// Whether every feature vector is computed.
    pub fn features_done(&self) -> bool {
        self.pending.is_empty()
    }

    /// Computes the features of up to `count` more images or views: (done,
    /// total).
    pub fn extract(&mut self, embedder: &Embedder, count: usize) -> Result<(usize, usize)> {
        let take = count.min(self.pending.len());
        let batch: Vec<_> = (0..take).filter_map(|_| self.pending.pop()).collect();
        let config = camera_views();
        let images: Vec<DynamicImage> = batch
            .iter()
            .map(|&(_, source, role)| {
                let image = &self.sources[source];
                match role {
                    Role::View | Role::HeldOutView => DynamicImage::ImageRgb8(augment(
                        image,
                        self.input_size,
                        &config,
                        &mut self.rng,
                    )),
                    Role::Example | Role::HeldOut => image.clone(),
                }
            })
            .collect();
        let features = embedder.features(&images)?;
        for ((class, _, role), feature) in batch.into_iter().zip(features) {
            match role {
                Role::HeldOut | Role::HeldOutView => self.held_out.push((class, feature)),
                Role::Example => {
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
        if !self.features_done() {
            return Err(Error::Internal("adapt: step before the features".into()));
        }
        let (features, labels) = self.batch();
        let dim = features.len() / labels.len();
        let device = training_device(&self.device);
        let x = Tensor::<2>::from_data(TensorData::new(features, [labels.len(), dim]), &device);
        let head = self.head.clone();
        let l = loss(
            LossKind::TripletHard,
            l2_normalize(head.forward(x)),
            &labels,
            self.options.margin,
        );
        let value = l.clone().into_scalar::<f32>();
        let grads = GradientsParams::from_grads(l.backward(), &head);
        self.head = self.optimizer.step(self.options.learning_rate, head, grads);
        if !value.is_finite() {
            return Err(Error::Internal("adapt: the loss is not finite".into()));
        }
        self.losses.push(value);
        Ok(value)
    }

    /// The adapted head and what was measured; the held-out check decides
    /// whether it is `kept`.
    pub fn finish(self) -> Result<Adapted> {
        let head = self.head.valid();
        let held_out = if self.held_out.is_empty() {
            None
        } else {
            Some(HeldOut {
                images: self.held_out.len(),
                views: self.held_out_views,
                top1_before: self.top1(&self.initial)?,
                top1_after: self.top1(&head)?,
            })
        };
        let kept = held_out
            .as_ref()
            .is_none_or(|h| h.top1_after >= h.top1_before);
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
        Ok(Adapted { head, report })
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

    /// Top-1 of the held-out features against the classes' examples through
    /// `head`: the nearest example's class is the answer.
    fn top1(&self, head: &ProjectionHead) -> Result<f32> {
        let project = |rows: &[&Vec<f32>]| -> Result<Vec<Vec<f32>>> {
            let dim = rows[0].len();
            let flat: Vec<f32> = rows.iter().flat_map(|r| r.iter().copied()).collect();
            let x = Tensor::<2>::from_data(TensorData::new(flat, [rows.len(), dim]), &self.device);
            let out = l2_normalize(head.forward(x));
            let [_, width] = out.dims();
            let flat = out
                .into_data()
                .convert::<f32>()
                .try_into_vec::<f32>()
                .map_err(|e| Error::Internal(format!("adapt: {e:?}")))?;
            Ok(flat.chunks(width).map(<[f32]>::to_vec).collect())
        };
        let gallery = project(&self.examples.iter().map(|(_, f)| f).collect::<Vec<_>>())?;
        let queries = project(&self.held_out.iter().map(|(_, f)| f).collect::<Vec<_>>())?;
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
        let with = e.with_head(adapted.head).unwrap();
        assert_ne!(with.fingerprint(), e.fingerprint());
        let after = with.embed_one(&image(1, 0)).unwrap();
        assert_eq!(after.len(), before.len());
        assert!((dot(&after, &after) - 1.0).abs() < 1e-4, "unit length");
        assert!(before.iter().zip(&after).any(|(a, b)| (a - b).abs() > 1e-3));
    }

    #[test]
    fn a_seed_gives_the_same_head_and_cancelling_stops() {
        let e = embedder();
        let run = || {
            adapt(&e, &classes(3, 2), &quick(), |_| ControlFlow::Continue(()))
                .unwrap()
                .unwrap()
                .head
                .to_floats()
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
    }
}
