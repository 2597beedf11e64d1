//! The embedding network: a residual CNN backbone, a linear projection head and
//! L2 normalisation, so that a dot product between two outputs is their cosine
//! similarity. One code for every backend: the tensors' device picks it.

pub mod bundle;

use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{BatchNorm, BatchNormConfig, Linear, LinearConfig, PaddingConfig2d};
use burn::tensor::activation::relu;
use burn::tensor::{Device, Tensor};
use serde::{Deserialize, Serialize};

use crate::{Error, Result};

pub use bundle::{Bundle, BundleHeader, TrainingSummary};

/// The architecture, stored in the bundle header so a bundle rebuilds its own network.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModelConfig {
    /// Channels of each stage; every stage after the first halves the resolution.
    pub widths: Vec<usize>,
    /// Residual blocks per stage.
    pub blocks_per_stage: usize,
    /// Length of the output unit vectors.
    pub embedding_dim: usize,
    /// Batch normalisation of the projection before L2 normalisation ("BNNeck").
    /// It centres every coordinate, so unrelated images point in unrelated
    /// directions: without it the pooled ReLU features share one large positive
    /// component and batch-hard triplet training settles with every embedding
    /// within cosine 0.999 of every other, which ranks well but leaves no room
    /// for an "unknown" threshold. Headers written before it existed lack it.
    #[serde(default)]
    pub projection_norm: bool,
}

impl Default for ModelConfig {
    fn default() -> Self {
        Self {
            widths: vec![32, 64, 128, 256],
            blocks_per_stage: 1,
            embedding_dim: 128,
            projection_norm: true,
        }
    }
}

impl ModelConfig {
    /// A few-thousand-parameter network for tests and smoke runs.
    pub fn tiny(embedding_dim: usize) -> Self {
        Self {
            widths: vec![8, 16, 32],
            blocks_per_stage: 1,
            embedding_dim,
            projection_norm: true,
        }
    }

    /// Refuses configurations that cannot build (a header is user input).
    pub fn validate(&self) -> Result<()> {
        if self.widths.is_empty() || self.widths.len() > 8 {
            return Err(Error::BadInput("widths must list 1 to 8 stages".into()));
        }
        if self.widths.iter().any(|w| !(1..=2048).contains(w)) {
            return Err(Error::BadInput("every width must be in 1..=2048".into()));
        }
        if !(1..=8).contains(&self.blocks_per_stage) {
            return Err(Error::BadInput("blocks_per_stage must be in 1..=8".into()));
        }
        if !(2..=4096).contains(&self.embedding_dim) {
            return Err(Error::BadInput("embedding_dim must be in 2..=4096".into()));
        }
        Ok(())
    }

    /// Builds the network with fresh weights on `device`.
    pub fn init(&self, device: &Device) -> Result<EmbeddingModel> {
        self.validate()?;
        let stem = ConvBn::new(3, self.widths[0], 3, 1, device);
        let mut blocks = Vec::new();
        let mut channels = self.widths[0];
        for (stage, &width) in self.widths.iter().enumerate() {
            for b in 0..self.blocks_per_stage {
                let stride = if stage > 0 && b == 0 { 2 } else { 1 };
                blocks.push(ResidualBlock::new(channels, width, stride, device));
                channels = width;
            }
        }
        let head = LinearConfig::new(channels, self.embedding_dim).init(device);
        let neck = self
            .projection_norm
            .then(|| BatchNormConfig::new(self.embedding_dim).init(device));
        Ok(EmbeddingModel {
            stem,
            blocks,
            head,
            neck,
        })
    }
}

/// Convolution followed by batch normalisation.
#[derive(Module, Debug)]
pub struct ConvBn {
    conv: Conv2d,
    bn: BatchNorm,
}

impl ConvBn {
    fn new(cin: usize, cout: usize, kernel: usize, stride: usize, device: &Device) -> Self {
        let conv = Conv2dConfig::new([cin, cout], [kernel, kernel])
            .with_stride([stride, stride])
            .with_padding(PaddingConfig2d::Explicit(
                kernel / 2,
                kernel / 2,
                kernel / 2,
                kernel / 2,
            ))
            .with_bias(false)
            .init(device);
        Self {
            conv,
            bn: BatchNormConfig::new(cout).init(device),
        }
    }

    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        self.bn.forward(self.conv.forward(x))
    }
}

/// The basic ResNet block: two 3×3 convolutions with a shortcut, projected by a
/// 1×1 convolution when the shape changes.
#[derive(Module, Debug)]
pub struct ResidualBlock {
    first: ConvBn,
    second: ConvBn,
    shortcut: Option<ConvBn>,
}

impl ResidualBlock {
    fn new(cin: usize, cout: usize, stride: usize, device: &Device) -> Self {
        let shortcut =
            (stride != 1 || cin != cout).then(|| ConvBn::new(cin, cout, 1, stride, device));
        Self {
            first: ConvBn::new(cin, cout, 3, stride, device),
            second: ConvBn::new(cout, cout, 3, 1, device),
            shortcut,
        }
    }

    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let skip = match &self.shortcut {
            Some(projection) => projection.forward(x.clone()),
            None => x.clone(),
        };
        let y = relu(self.first.forward(x));
        relu(self.second.forward(y) + skip)
    }
}

/// Image batch `[n, 3, s, s]` → unit vectors `[n, embedding_dim]`.
#[derive(Module, Debug)]
pub struct EmbeddingModel {
    stem: ConvBn,
    blocks: Vec<ResidualBlock>,
    head: Linear,
    neck: Option<BatchNorm>,
}

impl EmbeddingModel {
    /// Unnormalised projection, what the losses see before normalisation.
    pub fn project(&self, images: Tensor<4>) -> Tensor<2> {
        let mut x = relu(self.stem.forward(images));
        for block in &self.blocks {
            x = block.forward(x);
        }
        let [n, c, _, _] = x.dims();
        let pooled = x.mean_dim(3).mean_dim(2).reshape([n, c]);
        let projected = self.head.forward(pooled);
        match &self.neck {
            Some(norm) => norm.forward(projected),
            None => projected,
        }
    }

    /// Unit-length embeddings: dot products are cosine similarities.
    pub fn forward(&self, images: Tensor<4>) -> Tensor<2> {
        l2_normalize(self.project(images))
    }
}

/// Scales every row to unit length (rows of zeros stay finite).
pub fn l2_normalize(x: Tensor<2>) -> Tensor<2> {
    let norm = x
        .clone()
        .powf_scalar(2.0)
        .sum_dim(1)
        .sqrt()
        .clamp_min(1e-12);
    x / norm
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::Backend;
    use burn::tensor::{Distribution, TensorData};

    #[test]
    fn outputs_unit_vectors_of_the_configured_dimension() {
        let device = Backend::Ndarray.device().unwrap();
        let model = ModelConfig::tiny(16).init(&device).unwrap();
        let x = Tensor::<4>::random([3, 3, 32, 32], Distribution::Normal(0.0, 1.0), &device);
        let y = model.valid().forward(x);
        assert_eq!(y.dims(), [3, 16]);
        let v: Vec<f32> = y.into_data().try_to_vec::<f32>().unwrap();
        for row in v.chunks(16) {
            let norm: f32 = row.iter().map(|x| x * x).sum::<f32>().sqrt();
            assert!((norm - 1.0).abs() < 1e-4, "norm {norm}");
        }
    }

    #[test]
    fn downsamples_once_per_stage_after_the_first() {
        let device = Backend::Ndarray.device().unwrap();
        let model = ModelConfig::tiny(8).init(&device).unwrap();
        // 3 stages, blocks 2 and 3 downsample: 32 → 8 before pooling; any size works.
        let y = model
            .valid()
            .forward(Tensor::<4>::zeros([1, 3, 20, 20], &device));
        assert_eq!(y.dims(), [1, 8]);
    }

    #[test]
    fn rejects_nonsense_configs() {
        let mut c = ModelConfig::default();
        c.widths.clear();
        assert!(c.validate().is_err());
        let c = ModelConfig {
            embedding_dim: 0,
            ..ModelConfig::default()
        };
        assert!(c.validate().is_err());
    }

    #[test]
    fn l2_normalize_handles_zero_rows() {
        let device = Backend::Ndarray.device().unwrap();
        let x = Tensor::<2>::from_data(
            TensorData::new(vec![3.0f32, 4.0, 0.0, 0.0], [2, 2]),
            &device,
        );
        let v: Vec<f32> = l2_normalize(x).into_data().try_to_vec::<f32>().unwrap();
        assert!((v[0] - 0.6).abs() < 1e-6 && (v[1] - 0.8).abs() < 1e-6);
        assert!(v[2].is_finite() && v[3].is_finite());
    }
}
