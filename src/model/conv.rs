//! A convolution in its inference form, as both networks use it: its batch
//! norm folded in, and its weights read out for the CPU kernels.

use burn::module::Param;
use burn::nn::BatchNorm;
use burn::nn::conv::Conv2d;

use super::depthwise::host_floats;

/// `conv` followed by `bn` (in inference mode) as one convolution: the
/// weights of output channel `c` scaled by `gamma[c] / sqrt(var[c] + eps)` and
/// a bias of `beta[c] - mean[c] * scale[c]`. One pass over the activations
/// instead of five, for the same outputs (inference only: the running
/// statistics are baked in).
pub fn fold_into_conv(conv: &Conv2d, bn: &BatchNorm) -> Conv2d {
    let mut conv = conv.clone();
    let scale = bn.gamma.val() / bn.running_var.value().add_scalar(bn.epsilon).sqrt();
    let shift = bn.beta.val() - bn.running_mean.value() * scale.clone();
    let shift = match &conv.bias {
        Some(bias) => shift + bias.val() * scale.clone(),
        None => shift,
    };
    let [out_channels, _, _, _] = conv.weight.dims();
    let weight = conv.weight.val() * scale.reshape([out_channels, 1, 1, 1]);
    conv.weight = Param::from_tensor(weight);
    conv.bias = Some(Param::from_tensor(shift));
    conv
}

/// The weights `[out, in, k, k]` and the bias `[out]` (zeros without one) of
/// `conv`, as the CPU kernels take them.
pub fn host_weights(conv: &Conv2d) -> (Vec<f32>, Vec<f32>) {
    let [out_channels, _, _, _] = conv.weight.dims();
    let bias = match &conv.bias {
        Some(bias) => host_floats(bias.val()),
        None => vec![0.0; out_channels],
    };
    (host_floats(conv.weight.val()), bias)
}
