//! A batch of images → unit vectors, with the model a bundle describes.

use ::image::DynamicImage;
use burn::module::Module;
use burn::tensor::{Device, Tensor, TensorData};

use crate::image::Preprocessing;
use crate::model::{Bundle, EmbeddingModel, ProjectionHead};
use crate::{Error, Result};

/// Images per forward pass: bounds peak memory on a phone and in a 2-core CI.
pub const DEFAULT_BATCH: usize = 32;

/// Runs a bundle's model on one device.
#[derive(Debug, Clone)]
pub struct Embedder {
    model: EmbeddingModel,
    device: Device,
    preprocessing: Preprocessing,
    fingerprint: String,
    dim: usize,
}

impl Embedder {
    /// Loads the bundle's network onto `device`, in inference mode.
    pub fn new(bundle: &Bundle, device: Device) -> Result<Self> {
        let model = bundle.load_model(&device)?.valid();
        Ok(Self::from_model(
            model,
            device,
            bundle.header.preprocessing.clone(),
            bundle.fingerprint().to_string(),
            bundle.header.embedding_dim,
        ))
    }

    /// Wraps an in-memory model (the trainer validates with this between epochs).
    pub fn from_model(
        model: EmbeddingModel,
        device: Device,
        preprocessing: Preprocessing,
        fingerprint: String,
        dim: usize,
    ) -> Self {
        Self {
            model: model.for_inference(),
            device,
            preprocessing,
            fingerprint,
            dim,
        }
    }

    /// Fingerprint of the model's weights.
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    /// Length of the embeddings.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// The preprocessing the model expects.
    pub fn preprocessing(&self) -> &Preprocessing {
        &self.preprocessing
    }

    /// The device the model runs on.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Embeds images, in batches of [`DEFAULT_BATCH`].
    pub fn embed(&self, images: &[DynamicImage]) -> Result<Vec<Vec<f32>>> {
        let mut out = Vec::with_capacity(images.len());
        for chunk in images.chunks(DEFAULT_BATCH) {
            let data = self.forward(chunk)?.into_data();
            out.extend(self.rows(data)?);
        }
        Ok(out)
    }

    /// Embeds images, reading results back asynchronously: the only way on WebGPU,
    /// where a synchronous read would block the browser's event loop.
    pub async fn embed_async(&self, images: &[DynamicImage]) -> Result<Vec<Vec<f32>>> {
        let mut out = Vec::with_capacity(images.len());
        for chunk in images.chunks(DEFAULT_BATCH) {
            let data = self
                .forward(chunk)?
                .into_data_async()
                .await
                .map_err(|e| Error::Internal(format!("reading embeddings back: {e:?}")))?;
            out.extend(self.rows(data)?);
        }
        Ok(out)
    }

    /// The backbone's pooled features of each image (what the projection head
    /// takes), in batches of [`DEFAULT_BATCH`].
    pub fn features(&self, images: &[DynamicImage]) -> Result<Vec<Vec<f32>>> {
        let mut out = Vec::with_capacity(images.len());
        for chunk in images.chunks(DEFAULT_BATCH) {
            let features = self.model.features(self.input(chunk));
            out.extend(rows_of(features.into_data())?);
        }
        Ok(out)
    }

    /// [`Embedder::features`], read back without blocking (WebGPU).
    pub async fn features_async(&self, images: &[DynamicImage]) -> Result<Vec<Vec<f32>>> {
        let mut out = Vec::with_capacity(images.len());
        for chunk in images.chunks(DEFAULT_BATCH) {
            let data = self
                .model
                .features(self.input(chunk))
                .into_data_async()
                .await
                .map_err(|e| Error::Internal(format!("reading features back: {e:?}")))?;
            out.extend(rows_of(data)?);
        }
        Ok(out)
    }

    /// The projection head (its neck folded in), or `None` when the
    /// embeddings are the pooled features themselves.
    pub fn head(&self) -> Option<ProjectionHead> {
        self.model.head()
    }

    /// This model with another projection head (`weights` in
    /// [`ProjectionHead::to_floats`]'s layout): same backbone, new
    /// embeddings, and a fingerprint of its own (derived from this one's and
    /// the weights), so a gallery knows which vectors it holds.
    pub fn with_head(&self, weights: &[f32]) -> Result<Self> {
        let like = self.head().ok_or_else(|| {
            Error::BadInput("this model has no projection head to replace".into())
        })?;
        let head = ProjectionHead::from_floats(&like, weights)?;
        let [_, dim] = head.dims();
        let mut bytes = self.fingerprint.as_bytes().to_vec();
        bytes.extend(weights.iter().flat_map(|v| v.to_le_bytes()));
        Ok(Self {
            model: self.model.clone().with_head(head),
            device: self.device.clone(),
            preprocessing: self.preprocessing.clone(),
            fingerprint: crate::model::bundle::fingerprint(&bytes),
            dim,
        })
    }

    /// Embeds one image.
    pub fn embed_one(&self, image: &DynamicImage) -> Result<Vec<f32>> {
        self.embed(std::slice::from_ref(image))?
            .pop()
            .ok_or_else(|| Error::Internal("no embedding for one image".into()))
    }

    fn forward(&self, images: &[DynamicImage]) -> Result<Tensor<2>> {
        Ok(self.model.forward(self.input(images)))
    }

    fn input(&self, images: &[DynamicImage]) -> Tensor<4> {
        let size = self.preprocessing.input_size as usize;
        let mut pixels = Vec::with_capacity(images.len() * self.preprocessing.tensor_len());
        for image in images {
            pixels.extend(self.preprocessing.apply(image));
        }
        Tensor::<4>::from_data(
            TensorData::new(pixels, [images.len(), 3, size, size]),
            &self.device,
        )
    }

    fn rows(&self, data: TensorData) -> Result<Vec<Vec<f32>>> {
        let flat: Vec<f32> = data
            .try_to_vec::<f32>()
            .map_err(|e| Error::Internal(format!("embedding tensor: {e:?}")))?;
        if flat.iter().any(|x| !x.is_finite()) {
            return Err(Error::Internal(
                "the model produced non-finite embeddings".into(),
            ));
        }
        Ok(flat.chunks(self.dim).map(<[f32]>::to_vec).collect())
    }
}

/// The rows of a `[n, width]` feature tensor's data.
fn rows_of(data: TensorData) -> Result<Vec<Vec<f32>>> {
    let width = data.shape().last().copied().unwrap_or(0).max(1);
    let flat = data
        .convert::<f32>()
        .try_into_vec::<f32>()
        .map_err(|e| Error::Internal(format!("feature tensor: {e:?}")))?;
    Ok(flat.chunks(width).map(<[f32]>::to_vec).collect())
}

/// A tiny glyph network of fresh weights (8-d embeddings) on the CPU, with
/// `input_size` inputs: for tests of what sits on the embedder. The weights
/// are the same in every run: the backend's generator is seeded, under a lock
/// so that tests initialising networks in parallel do not interleave draws.
#[cfg(test)]
pub(crate) fn tiny_embedder(input_size: u32) -> Embedder {
    use crate::backend::Backend;
    use crate::model::{Architecture, ResNetConfig};
    static INIT: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let device = Backend::Ndarray.device().unwrap();
    let config = Architecture::from(ResNetConfig::tiny(8));
    let model = {
        let _one_at_a_time = INIT.lock().unwrap_or_else(|e| e.into_inner());
        device.seed(0x7e57);
        config.init(&device).unwrap()
    };
    let preprocessing = Preprocessing::new(input_size);
    let bundle = Bundle::from_model(&model, &config, &preprocessing, None).unwrap();
    Embedder::new(&bundle, device).unwrap()
}

#[cfg(test)]
mod tests {
    use super::*;
    use ::image::{Rgb, RgbImage};

    fn embedder() -> Embedder {
        tiny_embedder(16)
    }

    fn square(shade: u8, size: u32) -> DynamicImage {
        DynamicImage::ImageRgb8(RgbImage::from_fn(size, size, |x, y| {
            if (x + y) % 5 == 0 {
                Rgb([shade, 0, 0])
            } else {
                Rgb([255, 255, 255])
            }
        }))
    }

    #[test]
    fn embeds_batches_of_any_size_deterministically() {
        let e = embedder();
        let images: Vec<_> = (0..DEFAULT_BATCH + 3)
            .map(|i| square(i as u8 * 7, 24))
            .collect();
        let all = e.embed(&images).unwrap();
        assert_eq!(all.len(), images.len());
        assert!(all.iter().all(|v| v.len() == 8));
        // Batch composition must not change an image's embedding (inference mode).
        let one = e.embed_one(&images[DEFAULT_BATCH + 1]).unwrap();
        for (a, b) in one.iter().zip(&all[DEFAULT_BATCH + 1]) {
            assert!((a - b).abs() < 1e-4);
        }
    }

    #[test]
    fn async_path_matches_sync_path() {
        let e = embedder();
        let images = vec![square(10, 16), square(200, 40)];
        let sync = e.embed(&images).unwrap();
        let asynchronous = futures_lite_block_on(e.embed_async(&images)).unwrap();
        assert_eq!(sync, asynchronous);
    }

    /// A minimal executor: the ndarray backend completes its futures at once.
    fn futures_lite_block_on<F: std::future::Future>(f: F) -> F::Output {
        use std::task::{Context, Poll, Waker};
        let mut f = std::pin::pin!(f);
        let mut cx = Context::from_waker(Waker::noop());
        loop {
            if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
                return v;
            }
        }
    }
}
