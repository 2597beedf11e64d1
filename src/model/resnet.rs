//! The glyph network: a small residual CNN (ResNet's basic blocks), a linear
//! projection and a batch-norm neck. It was trained on rendered Han characters.

use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{BatchNorm, BatchNormConfig, Linear, LinearConfig, PaddingConfig2d};
use burn::tensor::activation::relu;
use burn::tensor::{Device, Tensor};
use serde::{Deserialize, Serialize};

use super::head::ProjectionHead;
use crate::{Error, Result};

/// The glyph network's architecture, stored in the bundle header.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ResNetConfig {
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

impl Default for ResNetConfig {
    fn default() -> Self {
        Self {
            widths: vec![32, 64, 128, 256],
            blocks_per_stage: 1,
            embedding_dim: 128,
            projection_norm: true,
        }
    }
}

impl ResNetConfig {
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
    pub fn init(&self, device: &Device) -> Result<ResNet> {
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
        Ok(ResNet {
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

/// Image batch `[n, 3, s, s]` → projections `[n, embedding_dim]`.
#[derive(Module, Debug)]
pub struct ResNet {
    stem: ConvBn,
    blocks: Vec<ResidualBlock>,
    head: Linear,
    neck: Option<BatchNorm>,
}

impl ResNet {
    /// Unnormalised projection, what the losses see before normalisation.
    pub fn project(&self, images: Tensor<4>) -> Tensor<2> {
        let projected = self.head.forward(self.features(images));
        match &self.neck {
            Some(norm) => norm.forward(projected),
            None => projected,
        }
    }

    /// Global-average-pooled features of the last stage `[n, widths.last()]`.
    pub fn features(&self, images: Tensor<4>) -> Tensor<2> {
        let mut x = relu(self.stem.forward(images));
        for block in &self.blocks {
            x = block.forward(x);
        }
        let [n, c, _, _] = x.dims();
        x.mean_dim(3).mean_dim(2).reshape([n, c])
    }

    /// The projection and neck as one linear head.
    pub fn head(&self) -> ProjectionHead {
        ProjectionHead::folded(&self.head, self.neck.as_ref())
    }

    /// The same network with `head` as its projection (and no neck).
    pub fn with_head(mut self, head: ProjectionHead) -> Self {
        self.head = head.into_linear();
        self.neck = None;
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::Backend;

    #[test]
    fn downsamples_once_per_stage_after_the_first() {
        let device = Backend::Ndarray.device().unwrap();
        let model = ResNetConfig::tiny(8).init(&device).unwrap();
        // 3 stages, blocks 2 and 3 downsample: 32 → 8 before pooling; any size works.
        let y = model
            .valid()
            .project(Tensor::<4>::zeros([1, 3, 20, 20], &device));
        assert_eq!(y.dims(), [1, 8]);
    }

    #[test]
    fn rejects_nonsense_configs() {
        let mut c = ResNetConfig::default();
        c.widths.clear();
        assert!(c.validate().is_err());
        let c = ResNetConfig {
            embedding_dim: 0,
            ..ResNetConfig::default()
        };
        assert!(c.validate().is_err());
    }
}
