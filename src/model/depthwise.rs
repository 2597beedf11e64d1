//! Depthwise convolution on the CPU: one k×k filter per channel, with its
//! bias and ReLU6 in the same pass.
//!
//! burn's ndarray backend runs a convolution with one channel per group on its
//! scalar path (its SIMD convolution vectorises across the output channels of
//! a group, and a depthwise group has one), after copying the input into a
//! padded array; batch norm and the activation then take a pass each. Here
//! each output row is a sum of contiguous slices of input rows scaled by one
//! weight, which the compiler vectorises (wasm SIMD in the browser), and
//! padding is never materialised: a tap that would read it is skipped.
//!
//! Inference only: the result is a new tensor, outside any autodiff graph, so
//! the model takes this path only on a device without autodiff
//! ([`crate::backend::runs_inference_on_cpu`]).

use burn::tensor::{Tensor, TensorData};

/// The shape of one depthwise convolution: square `kernel`, `stride`, and
/// the padding before each axis (`top`, `left`); the padding after is implied
/// by the output size.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DepthwiseShape {
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
    shape: DepthwiseShape,
    relu6: bool,
) -> Tensor<4> {
    let device = x.device();
    let [n, c, h, w] = x.dims();
    let input: Vec<f32> = x
        .into_data()
        .convert::<f32>()
        .try_into_vec::<f32>()
        .expect("a float tensor converted to f32 reads as f32");
    let out = convolve(&input, [n, c, h, w], weight, bias, shape, relu6);
    let dims = [n, c, shape.out_height, shape.out_width];
    Tensor::from_data(TensorData::new(out, dims), &device)
}

/// The same on plain slices, NCHW in and out.
pub fn convolve(
    input: &[f32],
    [n, c, h, w]: [usize; 4],
    weight: &[f32],
    bias: &[f32],
    shape: DepthwiseShape,
    relu6: bool,
) -> Vec<f32> {
    let k = shape.kernel;
    assert_eq!(input.len(), n * c * h * w, "input length");
    assert_eq!(weight.len(), c * k * k, "one k×k filter per channel");
    assert_eq!(bias.len(), c, "one bias per channel");
    let plane_out = shape.out_height * shape.out_width;
    let mut out = vec![0.0f32; n * c * plane_out];
    let mut phases = Phases::new(shape.stride, w);
    for (plane, out_plane) in out.chunks_exact_mut(plane_out).enumerate() {
        let channel = plane % c;
        let filter = &weight[channel * k * k..(channel + 1) * k * k];
        let in_plane = &input[plane * h * w..(plane + 1) * h * w];
        convolve_plane(in_plane, [h, w], filter, shape, &mut phases, out_plane);
        finish(out_plane, bias[channel], relu6);
    }
    out
}

/// One channel of one image.
fn convolve_plane(
    input: &[f32],
    [h, w]: [usize; 2],
    filter: &[f32],
    shape: DepthwiseShape,
    phases: &mut Phases,
    out: &mut [f32],
) {
    let (k, s) = (shape.kernel, shape.stride);
    for (oy, out_row) in out.chunks_exact_mut(shape.out_width).enumerate() {
        for ky in 0..k {
            let Some(iy) = (oy * s + ky).checked_sub(shape.top).filter(|&y| y < h) else {
                continue;
            };
            let row = &input[iy * w..(iy + 1) * w];
            if s > 1 {
                phases.split(row);
            }
            for kx in 0..k {
                // Input column of output column `ox` is `ox * s + offset`, that is
                // element `ox + offset.div_euclid(s)` of phase `offset.rem_euclid(s)`.
                let offset = kx as isize - shape.left as isize;
                let shift = offset.div_euclid(s as isize);
                let phase = match s {
                    1 => row,
                    _ => phases.get(offset.rem_euclid(s as isize) as usize),
                };
                axpy(out_row, phase, shift, filter[ky * k + kx]);
            }
        }
    }
}

/// `out[i] += a * src[i + shift]` wherever `i + shift` is inside `src`.
fn axpy(out: &mut [f32], src: &[f32], shift: isize, a: f32) {
    let first = (-shift).max(0) as usize;
    let last = (src.len() as isize - shift).clamp(0, out.len() as isize) as usize;
    if first >= last {
        return;
    }
    let src_first = (first as isize + shift) as usize;
    let src = &src[src_first..src_first + (last - first)];
    for (o, x) in out[first..last].iter_mut().zip(src) {
        *o += a * x;
    }
}

fn finish(out: &mut [f32], bias: f32, relu6: bool) {
    if relu6 {
        out.iter_mut()
            .for_each(|v| *v = (*v + bias).clamp(0.0, 6.0));
    } else {
        out.iter_mut().for_each(|v| *v += bias);
    }
}

/// An input row split by column modulo the stride, so that every tap of a
/// strided convolution reads a contiguous slice (phase `p` holds columns
/// `p, p + s, p + 2s, …`). With stride 1 the one phase is the row itself.
struct Phases {
    stride: usize,
    width: usize,
    data: Vec<f32>,
}

impl Phases {
    fn new(stride: usize, width: usize) -> Self {
        let stride = stride.max(1);
        Self {
            stride,
            width,
            data: vec![0.0; width.div_ceil(stride) * stride],
        }
    }

    fn phase_len(&self) -> usize {
        self.width.div_ceil(self.stride)
    }

    fn split(&mut self, row: &[f32]) {
        let len = self.phase_len();
        for (i, &v) in row.iter().enumerate() {
            self.data[(i % self.stride) * len + i / self.stride] = v;
        }
    }

    fn get(&self, p: usize) -> &[f32] {
        let len = self.phase_len();
        // The last columns of a phase may lie past the row's end.
        let valid = (self.width + self.stride - 1 - p) / self.stride;
        &self.data[p * len..p * len + valid]
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
        shape: DepthwiseShape,
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
            let shape = DepthwiseShape {
                kernel: k,
                stride: s,
                top: pad,
                left: pad,
                out_height: out,
                out_width: out,
            };
            let x =
                Tensor::<4>::random([2, 3, size, size], Distribution::Normal(0.0, 2.0), &device);
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
        let shape = DepthwiseShape {
            kernel: 3,
            stride: 1,
            top: 1,
            left: 1,
            out_height: 1,
            out_width: 1,
        };
        let filter: Vec<f32> = (1..=9).map(|v| v as f32).collect();
        let out = convolve(&[2.0], [1, 1, 1, 1], &filter, &[0.5], shape, false);
        assert_eq!(out, vec![2.0 * 5.0 + 0.5]);
        let clamped = convolve(&[2.0], [1, 1, 1, 1], &filter, &[0.5], shape, true);
        assert_eq!(clamped, vec![6.0]);
    }
}
