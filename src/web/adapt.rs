//! `adapt` and `resetAdaptation`: the model's projection head retrained on
//! the gallery's kept images ([`crate::adapt`]), stored with the gallery,
//! and the gallery re-embedded with it; or the shipped head back.
//!
//! The features are computed on the model's backend (WebGPU or the CPU) and
//! read back asynchronously; between batches and every few training steps
//! the work yields to the event loop, reports progress and looks at the
//! abort signal.

use js_sys::{Function, Reflect};
use serde_json::{Value, json};
use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::*;

use super::options::{check_options, opt, opt_string};
use super::session::{Session, gallery_config};
use crate::adapt::{AdaptOptions, Adaptation, Source};
use crate::backend::Backend;
use crate::gallery::{AdaptedHead, GalleryConfig};
use crate::store::idb;
use crate::{Error, Result};

/// Training steps between two progress events (and yields).
const STEPS_PER_REPORT: usize = 10;

/// `adapt`'s options: the training settings, `onProgress` and `signal`.
pub(super) struct AdaptCall {
    options: AdaptOptions,
    on_progress: Option<Function>,
    signal: Option<JsValue>,
}

impl AdaptCall {
    pub(super) fn parse(options: &JsValue) -> Result<AdaptCall> {
        check_options(options, "adapt")?;
        let on_progress = opt(options, "onProgress")
            .map(|f| {
                f.dyn_into::<Function>()
                    .map_err(|_| Error::BadInput("adapt: onProgress must be a function".into()))
            })
            .transpose()?;
        let signal = opt(options, "signal");
        if let Some(s) = &signal
            && !Reflect::has(s, &"aborted".into()).unwrap_or(false)
        {
            return Err(Error::BadInput(
                "adapt: signal must be an AbortSignal".into(),
            ));
        }
        let mut settings = serde_json::Map::new();
        for key in [
            "steps",
            "views",
            "learningRate",
            "margin",
            "classesPerBatch",
            "viewsPerClass",
            "seed",
        ] {
            if let Some(v) = opt(options, key) {
                let n = v
                    .as_f64()
                    .filter(|n| n.is_finite())
                    .ok_or_else(|| Error::BadInput(format!("adapt: {key} must be a number")))?;
                // Whole numbers as integers: steps, views and seed are counts.
                let whole = n.fract() == 0.0 && (0.0..9.0e15).contains(&n);
                settings.insert(key.into(), if whole { json!(n as u64) } else { json!(n) });
            }
        }
        if let Some(loss) = opt_string(options, "loss")? {
            settings.insert("loss".into(), json!(loss));
        }
        let options: AdaptOptions = serde_json::from_value(Value::Object(settings))
            .map_err(|e| Error::BadInput(format!("adapt: {e}")))?;
        options.validate()?;
        Ok(AdaptCall {
            options,
            on_progress,
            signal,
        })
    }

    fn aborted(&self) -> bool {
        self.signal
            .as_ref()
            .and_then(|s| Reflect::get(s, &"aborted".into()).ok())
            .and_then(|v| v.as_bool())
            == Some(true)
    }

    /// Calls `onProgress`; an exception there is the app's, and ignored.
    fn report(&self, event: Value) {
        if let (Some(f), Ok(v)) = (&self.on_progress, super::js::to_value(&event)) {
            let _ = f.call1(&JsValue::NULL, &v);
        }
    }
}

impl Session {
    /// Adapts the model to the gallery's classes; `None` when aborted (the
    /// gallery unchanged). The result says what was measured and whether the
    /// adapted head was kept (and the gallery re-embedded with it).
    pub(super) async fn adapt(&mut self, call: &AdaptCall) -> Result<Option<Value>> {
        self.check_current()?;
        self.ensure_writable().await?;
        let (labels, classes) = self.kept_classes()?;
        let base = self.model.base.clone();
        let base_head = match base.head() {
            Some(head) => head.to_floats_async().await?,
            None => Vec::new(),
        };
        let mut run = Adaptation::new(&base, &base_head, classes, &call.options)?;
        let started = js_sys::Date::now();
        let batch = if self.model.backend == Backend::Wgpu {
            crate::embed::DEFAULT_BATCH
        } else {
            8
        };
        while !run.features_done() {
            let images = run.next_images(batch)?;
            let features = base.features_async(&images).await?;
            let (done, total) = run.add_features(features)?;
            call.report(json!({ "phase": "features", "done": done, "total": total }));
            if yield_or_abort(call).await {
                return Ok(None);
            }
        }
        let featured = js_sys::Date::now();
        let steps = call.options.steps;
        for step in 1..=steps {
            let loss = run.step()?;
            if step % STEPS_PER_REPORT == 0 || step == steps {
                call.report(
                    json!({ "phase": "training", "step": step, "steps": steps, "loss": loss }),
                );
                if yield_or_abort(call).await {
                    return Ok(None);
                }
            }
        }
        let adapted = run.finish()?;
        let trained = js_sys::Date::now();
        let kept = adapted.report.kept;
        if kept {
            self.adopt(&labels, adapted.embeddings, &adapted.head)
                .await?;
        }
        let mut result = serde_json::to_value(&adapted.report)
            .map_err(|e| Error::Internal(format!("adapt report: {e}")))?;
        if let Value::Object(fields) = &mut result {
            fields.insert("adapted".into(), json!(kept));
            fields.insert("featureSeconds".into(), json!((featured - started) / 1e3));
            fields.insert("trainingSeconds".into(), json!((trained - featured) / 1e3));
            fields.insert("fingerprint".into(), json!(self.gallery.fingerprint()));
        }
        Ok(Some(result))
    }

    /// Goes back to the shipped head: the gallery re-embedded with it from
    /// its kept images. Whether there was an adaptation to undo.
    pub(super) async fn reset_adaptation(&mut self) -> Result<bool> {
        if self.model.adapted.is_none() && self.gallery.head().is_none() {
            return Ok(false);
        }
        self.ensure_writable().await?;
        let adapted = self.model.adapted.take();
        let embedder = std::mem::replace(&mut self.model.embedder, self.model.base.clone());
        if let Err(e) = self.reembed().await {
            self.model.adapted = adapted;
            self.model.embedder = embedder;
            return Err(e);
        }
        Ok(true)
    }

    /// Every class's label and kept images (encoded: the adaptation decodes
    /// them one at a time); BAD_INPUT when a class kept none (it could not be
    /// re-embedded with the adapted head).
    fn kept_classes(&self) -> Result<(Vec<String>, Vec<Vec<Source>>)> {
        let mut labels = Vec::new();
        let mut classes = Vec::new();
        for class in self.gallery.classes() {
            if !class.has_images {
                return Err(Error::BadInput(format!(
                    "cannot adapt: class {:?} kept no enrollment images (enroll with keepImages: \
                     true); nothing was changed",
                    class.label
                )));
            }
            let images = self
                .gallery
                .class_images(&class.label)?
                .iter()
                .enumerate()
                .map(|(i, bytes)| Source::Encoded {
                    name: format!("kept image {i} of class {:?}", class.label),
                    bytes: bytes.clone(),
                })
                .collect();
            labels.push(class.label);
            classes.push(images);
        }
        Ok((labels, classes))
    }

    /// Makes the adapted head the model's and the gallery's: the gallery
    /// rebuilt from `embeddings` (by class, in `labels`' order) and stored
    /// whole with the head, in one transaction.
    async fn adopt(
        &mut self,
        labels: &[String],
        embeddings: Vec<Vec<Vec<f32>>>,
        head: &[f32],
    ) -> Result<()> {
        let embedder = self.model.base.with_head(head)?;
        let head = AdaptedHead {
            base_fingerprint: self.model.base.fingerprint().to_string(),
            weights: head.to_vec(),
        };
        let config = GalleryConfig {
            fingerprint: embedder.fingerprint().to_string(),
            head: Some(head.clone()),
            ..gallery_config(&self.model)
        };
        let mut rebuild = self.gallery.start_reembed(config)?;
        let mut by_label: std::collections::HashMap<&str, Vec<Vec<f32>>> =
            labels.iter().map(String::as_str).zip(embeddings).collect();
        while let Some((label, _)) = rebuild.next_class() {
            let vectors = by_label.remove(label).ok_or_else(|| {
                Error::Internal(format!("adapt: no embeddings for class {label:?}"))
            })?;
            rebuild.enroll(&vectors)?;
        }
        let (gallery, all) = rebuild.finish()?;
        self.commit(all, true).await?;
        self.gallery = gallery;
        self.damage.clear();
        self.model.embedder = embedder;
        self.model.adapted = Some(head);
        Ok(())
    }
}

/// Lets the event loop run (progress can paint, `abort()` can be called);
/// whether the signal has aborted.
async fn yield_or_abort(call: &AdaptCall) -> bool {
    idb::sleep(0).await;
    call.aborted()
}
