//! EfficientNet-Lite0: the ImageNet-pretrained mobile network behind the
//! objects model.
//!
//! Lite0 is EfficientNet-B0 made for phones: ReLU6 instead of swish, no
//! squeeze-and-excitation, and a stem and head of fixed width. Its weights
//! come from TensorFlow, so the convolutions use TensorFlow's "SAME" padding,
//! which is asymmetric for the stride-2 layers: `(0, 1)` for a 3×3 kernel on an
//! even input, where PyTorch's symmetric padding would shift every feature map
//! by half a pixel and change the logits.
//!
//! The module tree mirrors the PyTorch checkpoint (`_conv_stem`, `_blocks.N`,
//! `_conv_head`, `_fc`), so the importer maps each tensor by a rename.

use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{BatchNorm, BatchNormConfig, Linear, LinearConfig, PaddingConfig2d};
use burn::tensor::activation::relu6;
use burn::tensor::{Device, Tensor};
use serde::{Deserialize, Serialize};

use super::conv::{fold_into_conv, host_weights};
use super::dense::{Activation, dense_conv};
use super::depthwise::{ConvShape, depthwise_conv};
use super::head::ProjectionHead;
use crate::backend::runs_inference_on_cpu;
use crate::{Error, Result};

/// Channels of the stem's output and of the head's, fixed in the Lite variants.
const STEM_CHANNELS: usize = 32;
/// Length of the pooled feature vector.
pub const FEATURE_DIM: usize = 1280;
/// TensorFlow's batch-norm epsilon, which the pretrained statistics assume.
const BN_EPSILON: f64 = 1e-3;

/// One stage of MBConv blocks: (repeats, kernel, first stride, expansion, output channels).
const STAGES: [(usize, usize, usize, usize, usize); 7] = [
    (1, 3, 1, 1, 16),
    (2, 3, 2, 6, 24),
    (2, 5, 2, 6, 40),
    (3, 3, 2, 6, 80),
    (3, 5, 1, 6, 112),
    (4, 5, 2, 6, 192),
    (1, 3, 1, 6, 320),
];

/// What the header says about an EfficientNet-Lite0 network.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EfficientNetConfig {
    /// Length of the projection (`None`: the pooled 1280 features are the embedding).
    #[serde(default)]
    pub projection_dim: Option<usize>,
    /// Batch normalisation of the projection before L2 normalisation (see the glyph
    /// model's `projection_norm` for why).
    #[serde(default)]
    pub projection_norm: bool,
    /// Classes of the ImageNet classifier kept from the import (`None` once fine-tuned).
    #[serde(default)]
    pub classifier_classes: Option<usize>,
}

impl EfficientNetConfig {
    /// The imported ImageNet network: pooled features as embeddings, 1000-way head kept.
    pub fn imagenet() -> Self {
        Self {
            projection_dim: None,
            projection_norm: false,
            classifier_classes: Some(1000),
        }
    }

    /// A retrieval network: the backbone, a projection to `dim` and a batch-norm neck.
    pub fn retrieval(dim: usize) -> Self {
        Self {
            projection_dim: Some(dim),
            projection_norm: true,
            classifier_classes: None,
        }
    }

    /// Length of the embeddings.
    pub fn embedding_dim(&self) -> usize {
        self.projection_dim.unwrap_or(FEATURE_DIM)
    }

    /// Refuses configurations that cannot build (a header is user input).
    pub fn validate(&self) -> Result<()> {
        if let Some(d) = self.projection_dim
            && !(2..=4096).contains(&d)
        {
            return Err(Error::BadInput("projection_dim must be in 2..=4096".into()));
        }
        if self.projection_norm && self.projection_dim.is_none() {
            return Err(Error::BadInput(
                "projection_norm needs a projection_dim".into(),
            ));
        }
        if let Some(c) = self.classifier_classes
            && !(1..=100_000).contains(&c)
        {
            return Err(Error::BadInput(
                "classifier_classes must be in 1..=100000".into(),
            ));
        }
        Ok(())
    }

    /// Builds the network with fresh weights on `device`.
    pub fn init(&self, device: &Device) -> Result<EfficientNetEmbedder> {
        self.validate()?;
        let projection = self
            .projection_dim
            .map(|d| LinearConfig::new(FEATURE_DIM, d).init(device));
        let neck = match (self.projection_norm, self.projection_dim) {
            (true, Some(d)) => Some(BatchNormConfig::new(d).init(device)),
            _ => None,
        };
        let classifier = self
            .classifier_classes
            .map(|c| LinearConfig::new(FEATURE_DIM, c).init(device));
        Ok(EfficientNetEmbedder {
            backbone: EfficientNetLite0::new(device),
            projection,
            neck,
            classifier,
        })
    }
}

/// A convolution with TensorFlow's SAME padding, batch norm, and optionally ReLU6.
#[derive(Module, Debug)]
pub struct ConvBnAct {
    conv: Conv2d,
    bn: BatchNorm,
    kernel: usize,
    stride: usize,
    activation: bool,
    /// The batch norm is folded into the convolution's weights and bias
    /// ([`ConvBnAct::fold_batch_norm`]), for inference.
    folded: bool,
}

impl ConvBnAct {
    fn new(
        [cin, cout]: [usize; 2],
        kernel: usize,
        stride: usize,
        groups: usize,
        activation: bool,
        device: &Device,
    ) -> Self {
        // Stride 1 pads (k-1)/2 on every side, as SAME does; stride 2 pads in forward.
        let pad = if stride == 1 { kernel / 2 } else { 0 };
        let conv = Conv2dConfig::new([cin, cout], [kernel, kernel])
            .with_stride([stride, stride])
            .with_groups(groups)
            .with_padding(PaddingConfig2d::Explicit(pad, pad, pad, pad))
            .with_bias(false)
            .init(device);
        Self {
            conv,
            bn: BatchNormConfig::new(cout)
                .with_epsilon(BN_EPSILON)
                .init(device),
            kernel,
            stride,
            activation,
            folded: false,
        }
    }

    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        if self.folded && runs_inference_on_cpu(&x.device()) {
            return self.forward_on_cpu(x);
        }
        let x = if self.stride == 1 {
            x
        } else {
            let [_, _, h, w] = x.dims();
            let (top, bottom) = same_padding(h, self.kernel, self.stride);
            let (left, right) = same_padding(w, self.kernel, self.stride);
            x.pad((left, right, top, bottom), 0.0)
        };
        let y = self.conv.forward(x);
        let y = if self.folded { y } else { self.bn.forward(y) };
        if self.activation { relu6(y) } else { y }
    }

    fn is_depthwise(&self) -> bool {
        let [out_channels, in_per_group, _, _] = self.conv.weight.dims();
        in_per_group == 1 && self.conv.groups == out_channels && out_channels > 1
    }

    /// The folded layer through the CPU kernels ([`depthwise_conv`],
    /// [`dense_conv`]), bias and ReLU6 included.
    fn forward_on_cpu(&self, x: Tensor<4>) -> Tensor<4> {
        let [_, _, h, w] = x.dims();
        // SAME padding, which for stride 1 and an odd kernel is the
        // symmetric `kernel / 2` the layer was built with.
        let shape = ConvShape {
            kernel: self.kernel,
            stride: self.stride,
            top: same_padding(h, self.kernel, self.stride).0,
            left: same_padding(w, self.kernel, self.stride).0,
            out_height: h.div_ceil(self.stride),
            out_width: w.div_ceil(self.stride),
        };
        let (weight, bias) = host_weights(&self.conv);
        if self.is_depthwise() {
            return depthwise_conv(x, &weight, &bias, shape, self.activation);
        }
        let activation = if self.activation {
            Activation::Relu6
        } else {
            Activation::None
        };
        dense_conv(x, &weight, &bias, shape, activation)
    }

    /// The same layer with its batch norm folded into the convolution
    /// ([`fold_into_conv`]).
    fn fold_batch_norm(mut self) -> Self {
        if !self.folded {
            self.conv = fold_into_conv(&self.conv, &self.bn);
            self.folded = true;
        }
        self
    }
}

/// TensorFlow's SAME padding of one axis: the output has `ceil(size / stride)`
/// positions, and the odd pixel of padding goes after.
pub fn same_padding(size: usize, kernel: usize, stride: usize) -> (usize, usize) {
    let out = size.div_ceil(stride);
    let total = ((out.saturating_sub(1)) * stride + kernel).saturating_sub(size);
    (total / 2, total - total / 2)
}

/// Mobile inverted bottleneck: 1×1 expansion, depthwise k×k, 1×1 projection,
/// and a shortcut when the shape is kept.
#[derive(Module, Debug)]
pub struct MbConv {
    expand: Option<ConvBnAct>,
    depthwise: ConvBnAct,
    project: ConvBnAct,
    residual: bool,
}

impl MbConv {
    fn new(
        cin: usize,
        cout: usize,
        kernel: usize,
        stride: usize,
        expansion: usize,
        device: &Device,
    ) -> Self {
        let mid = cin * expansion;
        let expand = (expansion != 1).then(|| ConvBnAct::new([cin, mid], 1, 1, 1, true, device));
        Self {
            expand,
            depthwise: ConvBnAct::new([mid, mid], kernel, stride, mid, true, device),
            project: ConvBnAct::new([mid, cout], 1, 1, 1, false, device),
            residual: stride == 1 && cin == cout,
        }
    }

    fn fold_batch_norm(self) -> Self {
        Self {
            expand: self.expand.map(ConvBnAct::fold_batch_norm),
            depthwise: self.depthwise.fold_batch_norm(),
            project: self.project.fold_batch_norm(),
            residual: self.residual,
        }
    }

    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let y = match &self.expand {
            Some(expand) => expand.forward(x.clone()),
            None => x.clone(),
        };
        let y = self.project.forward(self.depthwise.forward(y));
        if self.residual { y + x } else { y }
    }
}

/// The convolutional trunk: image `[n, 3, s, s]` → feature map `[n, 1280, s/32, s/32]`.
#[derive(Module, Debug)]
pub struct EfficientNetLite0 {
    stem: ConvBnAct,
    blocks: Vec<MbConv>,
    head: ConvBnAct,
}

impl EfficientNetLite0 {
    fn new(device: &Device) -> Self {
        let stem = ConvBnAct::new([3, STEM_CHANNELS], 3, 2, 1, true, device);
        let mut blocks = Vec::new();
        let mut channels = STEM_CHANNELS;
        for (repeats, kernel, stride, expansion, out) in STAGES {
            for r in 0..repeats {
                let s = if r == 0 { stride } else { 1 };
                blocks.push(MbConv::new(channels, out, kernel, s, expansion, device));
                channels = out;
            }
        }
        let head = ConvBnAct::new([channels, FEATURE_DIM], 1, 1, 1, true, device);
        Self { stem, blocks, head }
    }

    fn fold_batch_norm(self) -> Self {
        Self {
            stem: self.stem.fold_batch_norm(),
            blocks: self
                .blocks
                .into_iter()
                .map(MbConv::fold_batch_norm)
                .collect(),
            head: self.head.fold_batch_norm(),
        }
    }

    /// Global-average-pooled features `[n, 1280]`.
    pub fn features(&self, images: Tensor<4>) -> Tensor<2> {
        let mut x = self.stem.forward(images);
        for block in &self.blocks {
            x = block.forward(x);
        }
        let x = self.head.forward(x);
        let [n, c, _, _] = x.dims();
        x.mean_dim(3).mean_dim(2).reshape([n, c])
    }
}

/// The backbone with what turns its features into an embedding (and, for an
/// imported ImageNet network, its classifier).
#[derive(Module, Debug)]
pub struct EfficientNetEmbedder {
    backbone: EfficientNetLite0,
    projection: Option<Linear>,
    neck: Option<BatchNorm>,
    classifier: Option<Linear>,
}

impl EfficientNetEmbedder {
    /// Unnormalised embedding: the projection (and neck) of the pooled features,
    /// or the pooled features themselves when there is no projection.
    pub fn project(&self, images: Tensor<4>) -> Tensor<2> {
        let features = self.backbone.features(images);
        let projected = match &self.projection {
            Some(linear) => linear.forward(features),
            None => features,
        };
        match &self.neck {
            Some(norm) => norm.forward(projected),
            None => projected,
        }
    }

    /// ImageNet logits `[n, classes]`, when the classifier was kept.
    pub fn logits(&self, images: Tensor<4>) -> Option<Tensor<2>> {
        let classifier = self.classifier.as_ref()?;
        Some(classifier.forward(self.backbone.features(images)))
    }

    /// The network for inference: every batch norm of the trunk folded into
    /// its convolution (see [`ConvBnAct::fold_batch_norm`]). Not for training:
    /// the folded layers no longer learn their statistics.
    pub fn fold_batch_norm(self) -> Self {
        Self {
            backbone: self.backbone.fold_batch_norm(),
            ..self
        }
    }

    /// Pooled backbone features `[n, 1280]`.
    pub fn features(&self, images: Tensor<4>) -> Tensor<2> {
        self.backbone.features(images)
    }

    /// The projection and neck as one linear head (`None` without a projection).
    pub fn head(&self) -> Option<ProjectionHead> {
        let projection = self.projection.as_ref()?;
        Some(ProjectionHead::folded(projection, self.neck.as_ref()))
    }

    /// The same network with `head` as its projection (and no neck).
    pub fn with_head(mut self, head: ProjectionHead) -> Self {
        self.projection = Some(head.into_linear());
        self.neck = None;
        self
    }

    /// The pretrained trunk (the trainer gives it its own learning rate).
    pub fn backbone(&self) -> &EfficientNetLite0 {
        &self.backbone
    }

    /// Replaces this network's backbone with `other`'s (pretrained) one.
    pub fn with_backbone_of(mut self, other: EfficientNetEmbedder) -> Self {
        self.backbone = other.backbone;
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::Backend;
    use burn::module::{Param, RunningState};
    use burn::tensor::Distribution;

    #[test]
    fn same_padding_matches_tensorflow() {
        // Even inputs with stride 2 put the odd pixel after.
        assert_eq!(same_padding(224, 3, 2), (0, 1));
        assert_eq!(same_padding(112, 5, 2), (1, 2));
        // Odd inputs need one pixel less.
        assert_eq!(same_padding(7, 3, 2), (1, 1));
        assert_eq!(same_padding(15, 5, 2), (2, 2));
        // Stride 1 is symmetric.
        assert_eq!(same_padding(56, 5, 1), (2, 2));
    }

    #[test]
    fn has_the_published_shape() {
        let device = Backend::Ndarray.device().unwrap();
        let net = EfficientNetConfig::imagenet().init(&device).unwrap();
        assert_eq!(net.backbone.blocks.len(), 16);
        // 4.65 M parameters with the classifier (as published), 3.37 M without.
        let params = net.num_params();
        assert!((4_600_000..4_700_000).contains(&params), "{params}");
        let x = Tensor::<4>::zeros([1, 3, 64, 64], &device);
        assert_eq!(net.project(x.clone()).dims(), [1, FEATURE_DIM]);
        assert_eq!(net.logits(x).unwrap().dims(), [1, 1000]);
    }

    #[test]
    fn a_retrieval_head_projects_to_its_dimension() {
        let device = Backend::Ndarray.device().unwrap();
        let net = EfficientNetConfig::retrieval(64).init(&device).unwrap();
        let x = Tensor::<4>::zeros([2, 3, 32, 32], &device);
        assert_eq!(net.valid().project(x.clone()).dims(), [2, 64]);
        assert!(net.logits(x).is_none());
    }

    /// Gives every batch norm of `layer` statistics and an affine map far from
    /// the identity, so that folding has something to get wrong.
    fn perturb(mut layer: ConvBnAct, seed: f64) -> ConvBnAct {
        let [c, _, _, _] = layer.conv.weight.dims();
        let device = layer.conv.weight.device();
        let ramp = |a: f64, b: f64| {
            let v: Vec<f32> = (0..c)
                .map(|i| (a + b * ((i as f64 + seed) * 0.7).sin()) as f32)
                .collect();
            Tensor::<1>::from_floats(v.as_slice(), &device)
        };
        layer.bn.gamma = Param::from_tensor(ramp(1.0, 0.5));
        layer.bn.beta = Param::from_tensor(ramp(0.0, 0.3));
        layer.bn.running_mean = RunningState::new(ramp(0.1, 0.2));
        layer.bn.running_var = RunningState::new(ramp(1.0, 0.6));
        layer
    }

    #[test]
    fn folding_batch_norm_keeps_the_outputs() {
        let device = Backend::Ndarray.device().unwrap();
        let x = Tensor::<4>::random([2, 24, 13, 13], Distribution::Normal(0.0, 1.0), &device);
        let layers = [
            ConvBnAct::new([24, 24], 5, 2, 24, true, &device),
            ConvBnAct::new([24, 24], 3, 1, 24, true, &device),
            ConvBnAct::new([24, 40], 1, 1, 1, false, &device),
            ConvBnAct::new([24, 16], 3, 2, 1, true, &device),
        ];
        for (i, layer) in layers.into_iter().enumerate() {
            let layer = perturb(layer, i as f64);
            let depthwise = layer.is_depthwise();
            let plain: Vec<f32> = layer.forward(x.clone()).into_data().try_to_vec().unwrap();
            let folded = layer.fold_batch_norm();
            let fast: Vec<f32> = folded.forward(x.clone()).into_data().try_to_vec().unwrap();
            assert_eq!(plain.len(), fast.len(), "layer {i}");
            let worst = plain
                .iter()
                .zip(&fast)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0f32, f32::max);
            assert!(worst < 1e-4, "layer {i} (depthwise {depthwise}): {worst}");
        }
    }

    #[test]
    fn a_folded_network_embeds_as_the_trained_one() {
        let device = Backend::Ndarray.device().unwrap();
        let net = EfficientNetConfig::retrieval(32)
            .init(&device)
            .unwrap()
            .valid();
        let x = Tensor::<4>::random([1, 3, 48, 48], Distribution::Normal(0.0, 1.0), &device);
        let plain: Vec<f32> = net.project(x.clone()).into_data().try_to_vec().unwrap();
        let folded = net.fold_batch_norm();
        assert!(folded.backbone.blocks.iter().all(|b| b.depthwise.folded));
        let fast: Vec<f32> = folded.project(x).into_data().try_to_vec().unwrap();
        for (a, b) in plain.iter().zip(&fast) {
            assert!((a - b).abs() < 1e-3 * (1.0 + a.abs()), "{a} vs {b}");
        }
    }

    #[test]
    fn rejects_nonsense_configs() {
        let mut c = EfficientNetConfig::retrieval(1);
        assert!(c.validate().is_err());
        c.projection_dim = None;
        assert!(c.validate().is_err(), "a neck without a projection");
    }
}
