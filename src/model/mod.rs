//! The embedding networks: a backbone, a projection and L2 normalisation, so
//! that a dot product between two outputs is their cosine similarity. One code
//! for every backend: the tensors' device picks it.
//!
//! The architectures are a closed set, named in the bundle header: the residual
//! glyph CNN ([`resnet`]) and ImageNet-pretrained EfficientNet-Lite0
//! ([`efficientnet`]).

pub mod bundle;
pub mod conv;
pub mod dense;
pub mod depthwise;
pub mod efficientnet;
pub mod head;
pub mod loss;
pub mod resnet;

use burn::module::Module;
use burn::tensor::{Device, Tensor};
use serde::de::Error as _;
use serde::ser::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::Result;

pub use bundle::{Bundle, BundleHeader, Calibration, TrainingSummary};
pub use efficientnet::{EfficientNetConfig, EfficientNetEmbedder};
pub use head::ProjectionHead;
pub use resnet::{ResNet, ResNetConfig};

/// The network a bundle holds, as its header names it.
///
/// In JSON it is the network's config with a `"name"`; headers written before
/// there was a choice have no name and are the glyph network.
#[derive(Clone, Debug, PartialEq)]
pub enum Architecture {
    /// The residual glyph CNN, `"resnet-glyph"`.
    ResNet(ResNetConfig),
    /// EfficientNet-Lite0, `"efficientnet-lite0"`.
    EfficientNetLite0(EfficientNetConfig),
}

const RESNET: &str = "resnet-glyph";
const EFFICIENTNET_LITE0: &str = "efficientnet-lite0";

impl Architecture {
    /// The name in the bundle header.
    pub fn name(&self) -> &'static str {
        match self {
            Architecture::ResNet(_) => RESNET,
            Architecture::EfficientNetLite0(_) => EFFICIENTNET_LITE0,
        }
    }

    /// Length of the output unit vectors.
    pub fn embedding_dim(&self) -> usize {
        match self {
            Architecture::ResNet(c) => c.embedding_dim,
            Architecture::EfficientNetLite0(c) => c.embedding_dim(),
        }
    }

    /// Refuses configurations that cannot build (a header is user input).
    pub fn validate(&self) -> Result<()> {
        match self {
            Architecture::ResNet(c) => c.validate(),
            Architecture::EfficientNetLite0(c) => c.validate(),
        }
    }

    /// Builds the network with fresh weights on `device`.
    pub fn init(&self, device: &Device) -> Result<EmbeddingModel> {
        Ok(match self {
            Architecture::ResNet(c) => EmbeddingModel::ResNet(c.init(device)?),
            Architecture::EfficientNetLite0(c) => EmbeddingModel::EfficientNet(c.init(device)?),
        })
    }
}

impl From<ResNetConfig> for Architecture {
    fn from(config: ResNetConfig) -> Self {
        Architecture::ResNet(config)
    }
}

impl From<EfficientNetConfig> for Architecture {
    fn from(config: EfficientNetConfig) -> Self {
        Architecture::EfficientNetLite0(config)
    }
}

impl Serialize for Architecture {
    fn serialize<S: Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        let config = match self {
            Architecture::ResNet(c) => serde_json::to_value(c),
            Architecture::EfficientNetLite0(c) => serde_json::to_value(c),
        };
        let mut value = config.map_err(S::Error::custom)?;
        if let serde_json::Value::Object(fields) = &mut value {
            fields.insert("name".into(), self.name().into());
        }
        value.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Architecture {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> std::result::Result<Self, D::Error> {
        let value = serde_json::Value::deserialize(deserializer)?;
        let name = value.get("name").and_then(|n| n.as_str()).unwrap_or(RESNET);
        match name {
            RESNET => serde_json::from_value(value).map(Architecture::ResNet),
            EFFICIENTNET_LITE0 => {
                serde_json::from_value(value).map(Architecture::EfficientNetLite0)
            }
            other => {
                return Err(D::Error::custom(format!(
                    "unknown architecture '{other}' (this build knows {RESNET} and {EFFICIENTNET_LITE0})"
                )));
            }
        }
        .map_err(D::Error::custom)
    }
}

/// Image batch `[n, 3, s, s]` → unit vectors `[n, embedding_dim]`.
// One value per loaded model, never in a collection: the size difference costs nothing,
// and burn's Module derive does not see through a Box.
#[allow(clippy::large_enum_variant)]
#[derive(Module, Debug)]
pub enum EmbeddingModel {
    ResNet(ResNet),
    EfficientNet(EfficientNetEmbedder),
}

impl EmbeddingModel {
    /// Unnormalised projection, what the losses see before normalisation.
    pub fn project(&self, images: Tensor<4>) -> Tensor<2> {
        match self {
            EmbeddingModel::ResNet(m) => m.project(images),
            EmbeddingModel::EfficientNet(m) => m.project(images),
        }
    }

    /// Unit-length embeddings: dot products are cosine similarities.
    pub fn forward(&self, images: Tensor<4>) -> Tensor<2> {
        l2_normalize(self.project(images))
    }

    /// The network for inference only, with what can be precomputed from its
    /// weights precomputed (batch norms folded into the convolutions); the
    /// embeddings are the same to float rounding.
    pub fn for_inference(self) -> Self {
        match self {
            EmbeddingModel::EfficientNet(m) => EmbeddingModel::EfficientNet(m.fold_batch_norm()),
            EmbeddingModel::ResNet(m) => EmbeddingModel::ResNet(m.fold_batch_norm()),
        }
    }

    /// The backbone's pooled features, what the projection head takes.
    pub fn features(&self, images: Tensor<4>) -> Tensor<2> {
        match self {
            EmbeddingModel::ResNet(m) => m.features(images),
            EmbeddingModel::EfficientNet(m) => m.features(images),
        }
    }

    /// The projection head, its neck folded in; `None` for a network whose
    /// embeddings are its pooled features (an imported ImageNet classifier).
    pub fn head(&self) -> Option<ProjectionHead> {
        match self {
            EmbeddingModel::ResNet(m) => Some(m.head()),
            EmbeddingModel::EfficientNet(m) => m.head(),
        }
    }

    /// The same network with another projection head.
    pub fn with_head(self, head: ProjectionHead) -> Self {
        match self {
            EmbeddingModel::ResNet(m) => EmbeddingModel::ResNet(m.with_head(head)),
            EmbeddingModel::EfficientNet(m) => EmbeddingModel::EfficientNet(m.with_head(head)),
        }
    }

    /// Classifier logits, for a network that kept its ImageNet head.
    pub fn logits(&self, images: Tensor<4>) -> Option<Tensor<2>> {
        match self {
            EmbeddingModel::ResNet(_) => None,
            EmbeddingModel::EfficientNet(m) => m.logits(images),
        }
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
        let model = Architecture::from(ResNetConfig::tiny(16))
            .init(&device)
            .unwrap();
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
    fn headers_without_a_name_are_the_glyph_network() {
        let old =
            r#"{"widths":[32,64],"blocks_per_stage":1,"embedding_dim":64,"projection_norm":true}"#;
        let arch: Architecture = serde_json::from_str(old).unwrap();
        assert!(matches!(&arch, Architecture::ResNet(c) if c.embedding_dim == 64));
        let written = serde_json::to_string(&arch).unwrap();
        assert!(written.contains(r#""name":"resnet-glyph""#), "{written}");
        assert_eq!(
            serde_json::from_str::<Architecture>(&written).unwrap(),
            arch
        );
    }

    #[test]
    fn efficientnet_round_trips_and_unknown_names_are_refused() {
        let arch = Architecture::from(EfficientNetConfig::retrieval(128));
        let json = serde_json::to_string(&arch).unwrap();
        assert!(json.contains(r#""name":"efficientnet-lite0""#), "{json}");
        assert_eq!(serde_json::from_str::<Architecture>(&json).unwrap(), arch);
        assert_eq!(arch.embedding_dim(), 128);
        let err = serde_json::from_str::<Architecture>(r#"{"name":"vit-h14"}"#).unwrap_err();
        assert!(err.to_string().contains("vit-h14"), "{err}");
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
