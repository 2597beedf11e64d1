//! Depthwise convolution on the CPU: one k×k filter per channel, with its
//! bias and ReLU6 in the same pass.
//!
//! burn's ndarray backend runs a convolution with one channel per group on its
//! scalar path (its SIMD convolution vectorises across the output channels of
//! a group, and a depthwise group has one), after copying the input into a
//! padded array; batch norm and the activation then take a pass each.
//!
//! Here the work is done channels-last: burn-ndarray's SIMD convolution
//! leaves its output channels-last in memory (a permuted view), so asking for
//! the input as `[n, h, w, c]` reads it as one contiguous copy, and each tap
//! of the filter becomes a multiply-add over a row of channels, which the
//! compiler vectorises (wasm SIMD in the browser). Padding is never
//! materialised: a tap that would read it is skipped. The output goes back
//! channels-last, as the SIMD convolution that follows prefers it.
//!
//! Inference only: the result is a new tensor, outside any autodiff graph, so
//! the model takes this path only on a device without autodiff
//! ([`crate::backend::runs_inference_on_cpu`]).

use burn::tensor::{Tensor, TensorData};

/// The geometry of one convolution (depthwise here, dense in
/// [`super::dense`]): square `kernel`, `stride`, and the padding before each
/// axis (`top`, `left`); the padding after is implied by the output size.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConvShape {
    pub kernel: usize,
    pub stride: usize,
    pub top: usize,
    pub left: usize,
    pub out_height: usize,
    pub out_width: usize,
}

/// `x` `[n, c, h, w]` convolved with `weight` `[c, 1, k, k]`, plus `bias`
/// `[c]`, clamped to `[0, 6]` when `relu6`.
pub fn depthwise_conv(
    x: Tensor<4>,
    weight: &[f32],
    bias: &[f32],
    shape: ConvShape,
    relu6: bool,
) -> Tensor<4> {
    let device = x.device();
    let [n, c, h, w] = x.dims();
    let input = host_floats(x.permute([0, 2, 3, 1]));
    let filters = channels_last_filters(weight, c, shape.kernel);
    let out = convolve_nhwc(&input, [n, h, w, c], &filters, bias, shape, relu6);
    let dims = [n, shape.out_height, shape.out_width, c];
    Tensor::<4>::from_data(TensorData::new(out, dims), &device).permute([0, 3, 1, 2])
}

/// A tensor's floats in its logical order. burn-ndarray hands over a tensor
/// it alone holds, laid out in that order, without copying, but reads a
/// shared one (a layer's weights, a block input kept for the residual)
/// element by element through a generic iterator, which costs more than the
/// convolution. Adding zero first gives it a fresh array of the same memory
/// order, made by its SIMD elementwise kernel.
pub fn host_floats<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.add_scalar(0.0)
        .into_data()
        .convert::<f32>()
        .try_into_vec::<f32>()
        .expect("a float tensor converted to f32 reads as f32")
}

/// `[c, 1, k, k]` filters as `[k, k, c]`: one row of channels per tap.
fn channels_last_filters(weight: &[f32], c: usize, k: usize) -> Vec<f32> {
    assert_eq!(weight.len(), c * k * k, "one k×k filter per channel");
    let mut out = vec![0.0; weight.len()];
    for (channel, filter) in weight.chunks_exact(k * k).enumerate() {
        for (tap, &v) in filter.iter().enumerate() {
            out[tap * c + channel] = v;
        }
    }
    out
}

/// The convolution on channels-last slices: `input` `[n, h, w, c]`, `filters`
/// `[k, k, c]`, output `[n, out_height, out_width, c]`.
fn convolve_nhwc(
    input: &[f32],
    [n, h, w, c]: [usize; 4],
    filters: &[f32],
    bias: &[f32],
    shape: ConvShape,
    relu6: bool,
) -> Vec<f32> {
    let k = shape.kernel;
    assert_eq!(input.len(), n * h * w * c, "input length");
    assert_eq!(filters.len(), k * k * c, "one k×k filter per channel");
    assert_eq!(bias.len(), c, "one bias per channel");
    let (oh, ow) = (shape.out_height, shape.out_width);
    let mut out = vec![0.0f32; n * oh * ow * c];
    for (image, out_image) in out.chunks_exact_mut(oh * ow * c).enumerate() {
        let in_image = &input[image * h * w * c..(image + 1) * h * w * c];
        for (oy, out_row) in out_image.chunks_exact_mut(ow * c).enumerate() {
            for ky in 0..k {
                let Some(iy) = (oy * shape.stride + ky).checked_sub(shape.top) else {
                    continue;
                };
                if iy >= h {
                    continue;
                }
                let in_row = &in_image[iy * w * c..(iy + 1) * w * c];
                accumulate_row(
                    out_row,
                    in_row,
                    &filters[ky * k * c..(ky + 1) * k * c],
                    c,
                    shape,
                );
            }
            for pixel in out_row.chunks_exact_mut(c) {
                finish(pixel, bias, relu6);
            }
        }
    }
    out
}

/// One filter row (`taps`, `[k, c]`) applied along one input row: every
/// output pixel gets, for each tap that lands inside the row, the input
/// pixel's channels times the tap's weights.
fn accumulate_row(out_row: &mut [f32], in_row: &[f32], taps: &[f32], c: usize, shape: ConvShape) {
    let w = in_row.len() / c;
    for (ox, out_pixel) in out_row.chunks_exact_mut(c).enumerate() {
        for (kx, weights) in taps.chunks_exact(c).enumerate() {
            let Some(ix) = (ox * shape.stride + kx).checked_sub(shape.left) else {
                continue;
            };
            if ix >= w {
                continue;
            }
            let in_pixel = &in_row[ix * c..(ix + 1) * c];
            for ((o, x), wt) in out_pixel.iter_mut().zip(in_pixel).zip(weights) {
                *o += x * wt;
            }
        }
    }
}

fn finish(pixel: &mut [f32], bias: &[f32], relu6: bool) {
    if relu6 {
        for (v, b) in pixel.iter_mut().zip(bias) {
            *v = (*v + b).clamp(0.0, 6.0);
        }
    } else {
        for (v, b) in pixel.iter_mut().zip(bias) {
            *v += b;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::Backend;
    use burn::tensor::Distribution;
    use burn::tensor::module::conv2d;
    use burn::tensor::ops::ConvOptions;

    fn burn_reference(
        x: Tensor<4>,
        weight: Tensor<4>,
        bias: Tensor<1>,
        shape: ConvShape,
    ) -> Vec<f32> {
        let [_, c, h, w] = x.dims();
        let (k, s) = (shape.kernel, shape.stride);
        let bottom = ((shape.out_height - 1) * s + k).saturating_sub(h + shape.top);
        let right = ((shape.out_width - 1) * s + k).saturating_sub(w + shape.left);
        let x = x.pad((shape.left, right, shape.top, bottom), 0.0);
        let options = ConvOptions::new([s, s], [0, 0], [1, 1], c);
        conv2d(x, weight, Some(bias), options)
            .clamp(0.0, 6.0)
            .into_data()
            .try_into_vec::<f32>()
            .unwrap()
    }

    #[test]
    fn matches_burns_grouped_convolution_with_same_padding() {
        let device = Backend::Ndarray.device().unwrap();
        // (kernel, stride, input size, top/left padding): SAME padding of
        // EfficientNet's layers, odd sizes, and a stride-2 layer padded evenly.
        let cases: [(usize, usize, usize, usize); 5] = [
            (3, 1, 9, 1),
            (5, 1, 7, 2),
            (3, 2, 10, 0),
            (5, 2, 11, 2),
            (3, 2, 7, 1),
        ];
        for (k, s, size, pad) in cases {
            let out = (size + 2 * pad - k) / s + 1;
            let out = out.max(size.div_ceil(s));
            let shape = ConvShape {
                kernel: k,
                stride: s,
                top: pad,
                left: pad,
                out_height: out,
                out_width: out,
            };
            // Inputs in both memory layouts: channels-first, and the
            // channels-last view burn-ndarray's SIMD convolution returns.
            let normal = Distribution::Normal(0.0, 2.0);
            let x = if s == 1 {
                Tensor::<4>::random([2, 3, size, size], normal, &device)
            } else {
                Tensor::<4>::random([2, size, size, 3], normal, &device).permute([0, 3, 1, 2])
            };
            let weight = Tensor::<4>::random([3, 1, k, k], Distribution::Normal(0.0, 1.0), &device);
            let bias = Tensor::<1>::random([3], Distribution::Normal(0.0, 1.0), &device);
            let expected = burn_reference(x.clone(), weight.clone(), bias.clone(), shape);
            let w: Vec<f32> = weight.into_data().try_into_vec::<f32>().unwrap();
            let b: Vec<f32> = bias.into_data().try_into_vec::<f32>().unwrap();
            let got: Vec<f32> = depthwise_conv(x, &w, &b, shape, true)
                .into_data()
                .try_into_vec::<f32>()
                .unwrap();
            assert_eq!(got.len(), expected.len(), "k{k} s{s} size {size}");
            for (i, (g, e)) in got.iter().zip(&expected).enumerate() {
                assert!(
                    (g - e).abs() < 1e-4,
                    "k{k} s{s} size {size} [{i}]: {g} vs {e}"
                );
            }
        }
    }

    #[test]
    fn padding_is_skipped_not_read() {
        // A 1×1 input with a 3×3 kernel: only the centre tap lands on data.
        let shape = ConvShape {
            kernel: 3,
            stride: 1,
            top: 1,
            left: 1,
            out_height: 1,
            out_width: 1,
        };
        let filter: Vec<f32> = (1..=9).map(|v| v as f32).collect();
        let out = convolve_nhwc(&[2.0], [1, 1, 1, 1], &filter, &[0.5], shape, false);
        assert_eq!(out, vec![2.0 * 5.0 + 0.5]);
        let clamped = convolve_nhwc(&[2.0], [1, 1, 1, 1], &filter, &[0.5], shape, true);
        assert_eq!(clamped, vec![6.0]);
    }
}
