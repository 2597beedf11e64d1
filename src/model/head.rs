//! The projection head on its own: what turns a backbone's pooled features
//! into an embedding. On-device adaptation retrains it on cached features
//! while the backbone stays as it is.

use burn::module::{Module, Param};
use burn::nn::{BatchNorm, Linear};
use burn::tensor::{Device, Tensor, TensorData};

use crate::{Error, Result};

/// A linear projection of the pooled features (before L2 normalisation).
#[derive(Module, Debug)]
pub struct ProjectionHead {
    projection: Linear,
}

impl ProjectionHead {
    /// `projection` followed by `neck` (in inference mode) as one linear map:
    /// the neck's running statistics and affine terms folded into the weights.
    pub fn folded(projection: &Linear, neck: Option<&BatchNorm>) -> Self {
        let mut projection = projection.clone();
        if let Some(bn) = neck {
            let scale = bn.gamma.val() / bn.running_var.value().add_scalar(bn.epsilon).sqrt();
            let [_, out] = projection.weight.dims();
            let weight = projection.weight.val() * scale.clone().reshape([1, out]);
            let bias = match &projection.bias {
                Some(b) => b.val(),
                None => scale.zeros_like(),
            };
            let bias = (bias - bn.running_mean.value()) * scale + bn.beta.val();
            projection.weight = Param::from_tensor(weight);
            projection.bias = Some(Param::from_tensor(bias));
        }
        Self { projection }
    }

    /// Unnormalised embeddings of `features` `[n, in]` → `[n, out]`.
    pub fn forward(&self, features: Tensor<2>) -> Tensor<2> {
        self.projection.forward(features)
    }

    /// The head as the layer a network holds.
    pub fn into_linear(self) -> Linear {
        self.projection
    }

    /// `[in, out]`: the feature length it takes and the embedding length it gives.
    pub fn dims(&self) -> [usize; 2] {
        self.projection.weight.dims()
    }

    /// The weights `[in · out]` (row major) followed by the bias `[out]`.
    pub fn to_floats(&self) -> Vec<f32> {
        let mut out = read(self.projection.weight.val().into_data());
        if let Some(bias) = &self.projection.bias {
            out.extend(read(bias.val().into_data()));
        }
        out
    }

    /// [`ProjectionHead::to_floats`], read back without blocking: the only
    /// way on WebGPU in a browser.
    pub async fn to_floats_async(&self) -> Result<Vec<f32>> {
        let mut out = read_async(self.projection.weight.val()).await?;
        if let Some(bias) = &self.projection.bias {
            out.extend(read_async(bias.val()).await?);
        }
        Ok(out)
    }

    /// A head of `[input, output]` from [`ProjectionHead::to_floats`]'s layout,
    /// on the device of `like` (another head, for its device and structure).
    pub fn from_floats(like: &ProjectionHead, floats: &[f32]) -> Result<Self> {
        Self::from_floats_on(like, floats, &like.projection.weight.device())
    }

    /// [`ProjectionHead::from_floats`] on `device`.
    pub fn from_floats_on(like: &ProjectionHead, floats: &[f32], device: &Device) -> Result<Self> {
        let [input, output] = like.dims();
        if floats.len() != input * output + output || floats.iter().any(|v| !v.is_finite()) {
            return Err(Error::corrupt(
                "projection head",
                format!(
                    "{input}×{output} needs {} finite floats, got {}",
                    input * output + output,
                    floats.len()
                ),
            ));
        }
        let (weight, bias) = floats.split_at(input * output);
        let mut projection = like.projection.clone();
        projection.weight = Param::from_tensor(Tensor::from_data(
            TensorData::new(weight.to_vec(), [input, output]),
            device,
        ));
        projection.bias = Some(Param::from_tensor(Tensor::from_data(
            TensorData::new(bias.to_vec(), [output]),
            device,
        )));
        Ok(Self { projection })
    }
}

async fn read_async<const D: usize>(tensor: Tensor<D>) -> Result<Vec<f32>> {
    let data = tensor
        .into_data_async()
        .await
        .map_err(|e| Error::Internal(format!("reading the projection head back: {e:?}")))?;
    data.convert::<f32>()
        .try_into_vec::<f32>()
        .map_err(|e| Error::Internal(format!("projection head: {e:?}")))
}

fn read(data: TensorData) -> Vec<f32> {
    data.convert::<f32>()
        .try_into_vec::<f32>()
        .expect("a float tensor converted to f32 reads as f32")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::Backend;
    use burn::module::RunningState;
    use burn::nn::{BatchNormConfig, LinearConfig};
    use burn::tensor::Distribution;

    #[test]
    fn folding_the_neck_keeps_the_outputs() {
        let device = Backend::Ndarray.device().unwrap();
        let linear = LinearConfig::new(6, 4).init(&device);
        let mut neck = BatchNormConfig::new(4).init(&device);
        let normal = Distribution::Normal(0.0, 1.0);
        neck.running_mean = RunningState::new(Tensor::random([4], normal, &device));
        neck.running_var = RunningState::new(Tensor::random(
            [4],
            Distribution::Uniform(0.5, 2.0),
            &device,
        ));
        neck.gamma = Param::from_tensor(Tensor::random([4], normal, &device));
        neck.beta = Param::from_tensor(Tensor::random([4], normal, &device));
        let x = Tensor::<2>::random([5, 6], normal, &device);
        let expected = read(neck.forward(linear.forward(x.clone())).into_data());
        let head = ProjectionHead::folded(&linear, Some(&neck));
        let got = read(head.forward(x).into_data());
        for (g, e) in got.iter().zip(&expected) {
            assert!((g - e).abs() < 1e-4, "{g} vs {e}");
        }
    }

    #[test]
    fn round_trips_through_floats_and_refuses_the_wrong_length() {
        let device = Backend::Ndarray.device().unwrap();
        let head = ProjectionHead::folded(&LinearConfig::new(3, 2).init(&device), None);
        let floats = head.to_floats();
        assert_eq!(floats.len(), 3 * 2 + 2);
        let back = ProjectionHead::from_floats(&head, &floats).unwrap();
        assert_eq!(back.to_floats(), floats);
        assert!(ProjectionHead::from_floats(&head, &floats[1..]).is_err());
        let mut nan = floats.clone();
        nan[0] = f32::NAN;
        assert!(ProjectionHead::from_floats(&head, &nan).is_err());
    }
}
