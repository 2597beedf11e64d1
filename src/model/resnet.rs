//! The glyph network: a small residual CNN (ResNet's basic blocks), a linear
//! projection and a batch-norm neck. It was trained on rendered Han characters.

use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{BatchNorm, BatchNormConfig, Linear, LinearConfig, PaddingConfig2d};
use burn::tensor::activation::relu;
use burn::tensor::{Device, Tensor};
use serde::{Deserialize, Serialize};

use super::conv::{fold_into_conv, host_weights};
use super::dense::{Activation, dense_conv};
use super::depthwise::ConvShape;
use super::head::ProjectionHead;
use crate::backend::runs_inference_on_cpu;
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
    /// The batch norm is folded into the convolution, for inference.
    folded: bool,
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
            folded: false,
        }
    }

    /// The layer, then ReLU when `relu`.
    fn forward(&self, x: Tensor<4>, relu_after: bool) -> Tensor<4> {
        if self.folded && runs_inference_on_cpu(&x.device()) {
            return self.forward_on_cpu(x, relu_after);
        }
        let y = self.conv.forward(x);
        let y = if self.folded { y } else { self.bn.forward(y) };
        if relu_after { relu(y) } else { y }
    }

    /// The folded layer through [`dense_conv`], bias and ReLU included.
    fn forward_on_cpu(&self, x: Tensor<4>, relu_after: bool) -> Tensor<4> {
        let [_, _, h, w] = x.dims();
        let [_, _, kernel, _] = self.conv.weight.dims();
        let [stride, _] = self.conv.stride;
        let pad = kernel / 2;
        let shape = ConvShape {
            kernel,
            stride,
            top: pad,
            left: pad,
            out_height: (h + 2 * pad - kernel) / stride + 1,
            out_width: (w + 2 * pad - kernel) / stride + 1,
        };
        let (weight, bias) = host_weights(&self.conv);
        let activation = if relu_after {
            Activation::Relu
        } else {
            Activation::None
        };
        dense_conv(x, &weight, &bias, shape, activation)
    }

    fn fold_batch_norm(mut self) -> Self {
        if !self.folded {
            self.conv = fold_into_conv(&self.conv, &self.bn);
            self.folded = true;
        }
        self
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
            Some(projection) => projection.forward(x.clone(), false),
            None => x.clone(),
        };
        let y = self.first.forward(x, true);
        relu(self.second.forward(y, false) + skip)
    }

    fn fold_batch_norm(self) -> Self {
        Self {
            first: self.first.fold_batch_norm(),
            second: self.second.fold_batch_norm(),
            shortcut: self.shortcut.map(ConvBn::fold_batch_norm),
        }
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
        let mut x = self.stem.forward(images, true);
        for block in &self.blocks {
            x = block.forward(x);
        }
        let [n, c, _, _] = x.dims();
        x.mean_dim(3).mean_dim(2).reshape([n, c])
    }

    /// The network for inference: every batch norm of the trunk folded into
    /// its convolution (the neck stays: it follows the projection).
    pub fn fold_batch_norm(self) -> Self {
        Self {
            stem: self.stem.fold_batch_norm(),
            blocks: self
                .blocks
                .into_iter()
                .map(ResidualBlock::fold_batch_norm)
                .collect(),
            ..self
        }
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
    fn folding_batch_norm_keeps_each_layers_outputs() {
        use burn::module::{Param, RunningState};
        use burn::tensor::Distribution;
        let device = Backend::Ndarray.device().unwrap();
        let x = Tensor::<4>::random([2, 6, 9, 9], Distribution::Normal(0.0, 1.0), &device);
        for (kernel, stride) in [(3, 1), (3, 2), (1, 2), (1, 1)] {
            let mut layer = ConvBn::new(6, 10, kernel, stride, &device);
            let ramp = |a: f32, b: f32| {
                let v: Vec<f32> = (0..10).map(|i| a + b * (i as f32 * 0.7).sin()).collect();
                Tensor::<1>::from_floats(v.as_slice(), &device)
            };
            layer.bn.gamma = Param::from_tensor(ramp(1.0, 0.5));
            layer.bn.beta = Param::from_tensor(ramp(0.0, 0.3));
            layer.bn.running_mean = RunningState::new(ramp(0.1, 0.2));
            layer.bn.running_var = RunningState::new(ramp(1.0, 0.6));
            let layer = layer.valid();
            for relu_after in [false, true] {
                let plain: Vec<f32> = layer
                    .forward(x.clone(), relu_after)
                    .into_data()
                    .try_to_vec()
                    .unwrap();
                let folded = layer.clone().fold_batch_norm();
                let fast: Vec<f32> = folded
                    .forward(x.clone(), relu_after)
                    .into_data()
                    .try_to_vec()
                    .unwrap();
                assert_eq!(plain.len(), fast.len());
                for (a, b) in plain.iter().zip(&fast) {
                    assert!((a - b).abs() < 1e-4, "k{kernel} s{stride}: {a} vs {b}");
                }
            }
        }
    }

    #[test]
    fn a_folded_network_embeds_as_the_trained_one() {
        let device = Backend::Ndarray.device().unwrap();
        let net = ResNetConfig::tiny(8).init(&device).unwrap().valid();
        let x = Tensor::<4>::random(
            [2, 3, 20, 20],
            burn::tensor::Distribution::Normal(0.0, 1.0),
            &device,
        );
        let plain: Vec<f32> = net.project(x.clone()).into_data().try_to_vec().unwrap();
        let fast: Vec<f32> = net
            .fold_batch_norm()
            .project(x)
            .into_data()
            .try_to_vec()
            .unwrap();
        for (a, b) in plain.iter().zip(&fast) {
            assert!((a - b).abs() < 1e-3 * (1.0 + a.abs()), "{a} vs {b}");
        }
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
