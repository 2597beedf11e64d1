//! Convolutions with one group on the CPU as a blocked matrix product, with
//! their bias and activation in the same pass.
//!
//! A 1×1 convolution over channels-last pixels is `out[p, o] = Σ_k x[p, k] ·
//! w[o, k]`: a matrix product of the `[pixels, in]` activations and the
//! `[in, out]` weights. A k×k convolution is the same product over patches:
//! each output pixel's `k·k·in` inputs gathered into one row (im2col), padding
//! as zeros. burn-ndarray runs these as a direct convolution whose inner loop
//! is one vector of output channels per input, so every multiply-add loads and
//! stores its accumulator; in an EfficientNet the 1×1 layers hold about 85 %
//! of the multiply-adds. Here each step of the inner loop keeps a `ROWS ×
//! LANES` tile of outputs in SIMD registers, reads `ROWS` inputs and one row
//! of `LANES` weights, and does `ROWS · LANES` multiply-adds (wasm SIMD in the
//! browser, SSE natively). The weights are packed once a call into panels of
//! `LANES` output channels, so the tile's weights are contiguous.
//!
//! Inference only, like [`super::depthwise`]: the result is a new tensor,
//! outside any autodiff graph.

use burn::tensor::{Tensor, TensorData};

use super::depthwise::{ConvShape, host_floats};

/// What follows the convolution, applied as the outputs are stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Activation {
    None,
    Relu,
    Relu6,
}

impl Activation {
    #[inline(always)]
    fn apply(self, v: f32) -> f32 {
        match self {
            Activation::None => v,
            Activation::Relu => v.max(0.0),
            Activation::Relu6 => v.clamp(0.0, 6.0),
        }
    }
}

/// Pixels of one output tile.
const ROWS: usize = 4;
/// Output channels of one output tile (two 4-lane vectors).
const LANES: usize = 8;

/// `x` `[n, in, h, w]` convolved with `weight` `[out, in, k, k]` (row major)
/// of `shape`, plus `bias` `[out]`, then `activation`. The output is
/// channels-last in memory, as the next layer on this path reads it.
pub fn dense_conv(
    x: Tensor<4>,
    weight: &[f32],
    bias: &[f32],
    shape: ConvShape,
    activation: Activation,
) -> Tensor<4> {
    let device = x.device();
    let [n, cin, h, w] = x.dims();
    let cout = bias.len();
    let k = shape.kernel;
    let input = host_floats(x.permute([0, 2, 3, 1]));
    let (rows, width) = if k == 1 && shape.stride == 1 {
        (input, cin)
    } else {
        (patches(&input, [n, h, w, cin], shape), k * k * cin)
    };
    let panels = pack_panels(&patch_order(weight, cin, k), width, cout);
    let out = matmul_bias(&rows, width, &panels, Epilogue { bias, activation });
    let dims = [n, shape.out_height, shape.out_width, cout];
    Tensor::<4>::from_data(TensorData::new(out, dims), &device).permute([0, 3, 1, 2])
}

/// Every output pixel's receptive field as one row `[k, k, in]` (zeros where
/// it reads padding): `[n · out_height · out_width, k · k · in]`.
fn patches(input: &[f32], [n, h, w, c]: [usize; 4], shape: ConvShape) -> Vec<f32> {
    let k = shape.kernel;
    let (oh, ow) = (shape.out_height, shape.out_width);
    let row = k * k * c;
    let mut out = vec![0.0f32; n * oh * ow * row];
    for (pixel, patch) in out.chunks_exact_mut(row).enumerate() {
        let (image, oy, ox) = (pixel / (oh * ow), pixel / ow % oh, pixel % ow);
        for ky in 0..k {
            let Some(iy) = (oy * shape.stride + ky)
                .checked_sub(shape.top)
                .filter(|&y| y < h)
            else {
                continue;
            };
            for kx in 0..k {
                let Some(ix) = (ox * shape.stride + kx)
                    .checked_sub(shape.left)
                    .filter(|&x| x < w)
                else {
                    continue;
                };
                let from = ((image * h + iy) * w + ix) * c;
                patch[(ky * k + kx) * c..][..c].copy_from_slice(&input[from..from + c]);
            }
        }
    }
    out
}

/// `[out, in, k, k]` weights as `[out, k, k, in]`, the order of a patch row.
fn patch_order(weight: &[f32], cin: usize, k: usize) -> Vec<f32> {
    if k == 1 {
        return weight.to_vec();
    }
    let mut out = vec![0.0; weight.len()];
    for (o, filter) in weight.chunks_exact(cin * k * k).enumerate() {
        let dst = &mut out[o * cin * k * k..][..cin * k * k];
        for (i, &v) in filter.iter().enumerate() {
            let (c, tap) = (i / (k * k), i % (k * k));
            dst[tap * cin + c] = v;
        }
    }
    out
}

/// `[out, in]` weights as panels of `LANES` output channels, each `[in,
/// LANES]`; the last panel is padded with zeros.
fn pack_panels(weight: &[f32], cin: usize, cout: usize) -> Vec<f32> {
    assert_eq!(
        weight.len(),
        cin * cout,
        "one weight per input and output channel"
    );
    let mut panels = vec![0.0; cout.div_ceil(LANES) * cin * LANES];
    for (o, row) in weight.chunks_exact(cin).enumerate() {
        let panel = &mut panels[(o / LANES) * cin * LANES..][..cin * LANES];
        for (k, &v) in row.iter().enumerate() {
            panel[k * LANES + o % LANES] = v;
        }
    }
    panels
}

/// `input` `[pixels, cin]` times the packed weights, then the epilogue:
/// `[pixels, bias.len()]`.
fn matmul_bias(input: &[f32], cin: usize, panels: &[f32], epilogue: Epilogue) -> Vec<f32> {
    let cout = epilogue.bias.len();
    assert_eq!(input.len() % cin, 0, "whole pixels");
    assert_eq!(
        panels.len(),
        cout.div_ceil(LANES) * cin * LANES,
        "packed weights"
    );
    let pixels = input.len() / cin;
    let mut out = vec![0.0f32; pixels * cout];
    let tiles = pixels / ROWS;
    let (in_tiled, in_rest) = input.split_at(tiles * ROWS * cin);
    let (out_tiled, out_rest) = out.split_at_mut(tiles * ROWS * cout);
    for (x, y) in in_tiled
        .chunks_exact(ROWS * cin)
        .zip(out_tiled.chunks_exact_mut(ROWS * cout))
    {
        tile::<ROWS>(x, panels, y, epilogue);
    }
    for (x, y) in in_rest
        .chunks_exact(cin)
        .zip(out_rest.chunks_exact_mut(cout))
    {
        tile::<1>(x, panels, y, epilogue);
    }
    out
}

/// What is applied to each finished output.
#[derive(Clone, Copy)]
struct Epilogue<'a> {
    bias: &'a [f32],
    activation: Activation,
}

/// `M` pixels (`x`, `[M, cin]`) against every panel, into `y` (`[M, cout]`).
#[inline(always)]
fn tile<const M: usize>(x: &[f32], panels: &[f32], y: &mut [f32], epilogue: Epilogue) {
    let cout = epilogue.bias.len();
    let cin = x.len() / M;
    let rows: [&[f32]; M] = std::array::from_fn(|r| &x[r * cin..(r + 1) * cin]);
    for (p, panel) in panels.chunks_exact(cin * LANES).enumerate() {
        let mut acc = [[F32x4::splat(0.0); 2]; M];
        for (k, weights) in panel.chunks_exact(LANES).enumerate() {
            let (low, high) = weights.split_at(4);
            let (low, high) = (F32x4::load(low), F32x4::load(high));
            for (acc_row, row) in acc.iter_mut().zip(&rows) {
                let a = F32x4::splat(row[k]);
                acc_row[0] = acc_row[0].mul_add(a, low);
                acc_row[1] = acc_row[1].mul_add(a, high);
            }
        }
        let first = p * LANES;
        let width = LANES.min(cout - first);
        for (r, acc_row) in acc.iter().enumerate() {
            let sums = [acc_row[0].to_array(), acc_row[1].to_array()];
            let out = &mut y[r * cout + first..][..width];
            let bias = &epilogue.bias[first..first + width];
            for ((o, v), b) in out.iter_mut().zip(sums.as_flattened()).zip(bias) {
                *o = epilogue.activation.apply(v + b);
            }
        }
    }
}

/// Four floats in one SIMD register: wasm SIMD in the browser (always there:
/// `.cargo/config.toml` builds wasm with simd128), SSE on x86-64, plain
/// arrays elsewhere. The compiler does not vectorise the tile loop by
/// itself: it keeps the accumulators in memory.
#[derive(Clone, Copy)]
struct F32x4(Lanes);

#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
type Lanes = core::arch::wasm32::v128;

#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
impl F32x4 {
    #[inline(always)]
    fn load(v: &[f32]) -> Self {
        let v: &[f32; 4] = v.try_into().expect("four floats");
        // SAFETY: `v` is four readable floats; v128_load needs no alignment.
        Self(unsafe { core::arch::wasm32::v128_load(v.as_ptr().cast()) })
    }

    #[inline(always)]
    fn splat(a: f32) -> Self {
        Self(core::arch::wasm32::f32x4_splat(a))
    }

    /// `self + a * b` lane by lane (wasm SIMD has no fused multiply-add).
    #[inline(always)]
    fn mul_add(self, a: Self, b: Self) -> Self {
        use core::arch::wasm32::{f32x4_add, f32x4_mul};
        Self(f32x4_add(self.0, f32x4_mul(a.0, b.0)))
    }

    #[inline(always)]
    fn to_array(self) -> [f32; 4] {
        use core::arch::wasm32::f32x4_extract_lane as lane;
        [
            lane::<0>(self.0),
            lane::<1>(self.0),
            lane::<2>(self.0),
            lane::<3>(self.0),
        ]
    }
}

#[cfg(target_arch = "x86_64")]
type Lanes = core::arch::x86_64::__m128;

#[cfg(target_arch = "x86_64")]
impl F32x4 {
    #[inline(always)]
    fn load(v: &[f32]) -> Self {
        let v: &[f32; 4] = v.try_into().expect("four floats");
        // SAFETY: `v` is four readable floats; SSE is part of x86-64.
        Self(unsafe { core::arch::x86_64::_mm_loadu_ps(v.as_ptr()) })
    }

    #[inline(always)]
    fn splat(a: f32) -> Self {
        // SAFETY: SSE is part of x86-64.
        Self(unsafe { core::arch::x86_64::_mm_set1_ps(a) })
    }

    /// `self + a * b` lane by lane.
    #[inline(always)]
    fn mul_add(self, a: Self, b: Self) -> Self {
        use core::arch::x86_64::{_mm_add_ps, _mm_mul_ps};
        // SAFETY: SSE is part of x86-64.
        Self(unsafe { _mm_add_ps(self.0, _mm_mul_ps(a.0, b.0)) })
    }

    #[inline(always)]
    fn to_array(self) -> [f32; 4] {
        let mut out = [0.0f32; 4];
        // SAFETY: `out` has room for four floats; SSE is part of x86-64.
        unsafe { core::arch::x86_64::_mm_storeu_ps(out.as_mut_ptr(), self.0) };
        out
    }
}

#[cfg(not(any(
    all(target_arch = "wasm32", target_feature = "simd128"),
    target_arch = "x86_64"
)))]
type Lanes = [f32; 4];

#[cfg(not(any(
    all(target_arch = "wasm32", target_feature = "simd128"),
    target_arch = "x86_64"
)))]
impl F32x4 {
    fn load(v: &[f32]) -> Self {
        Self(v.try_into().expect("four floats"))
    }

    fn splat(a: f32) -> Self {
        Self([a; 4])
    }

    fn mul_add(self, a: Self, b: Self) -> Self {
        Self(std::array::from_fn(|i| self.0[i] + a.0[i] * b.0[i]))
    }

    fn to_array(self) -> [f32; 4] {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::Backend;
    use burn::tensor::Distribution;
    use burn::tensor::module::conv2d;
    use burn::tensor::ops::ConvOptions;

    #[test]
    fn matches_burns_convolution() {
        let device = Backend::Ndarray.device().unwrap();
        // (size, in, out, kernel, stride, padding): pixel counts with and
        // without a partial tile, channel counts with and without a partial
        // panel, 1×1 and 3×3, stride 1 and 2, symmetric and TensorFlow's
        // asymmetric SAME padding (0 before, 1 after on an even input).
        let cases: [(usize, usize, usize, usize, usize, usize); 6] = [
            (4, 16, 24, 1, 1, 0),
            (5, 3, 13, 1, 1, 0),
            (1, 5, 1, 1, 1, 0),
            (6, 3, 8, 3, 1, 1),
            (7, 4, 9, 3, 2, 1),
            (8, 3, 16, 3, 2, 0),
        ];
        let normal = Distribution::Normal(0.0, 2.0);
        for (size, cin, cout, k, stride, pad) in cases {
            let out = (size + 2 * pad).saturating_sub(k) / stride + 1;
            let out = out.max(size.div_ceil(stride));
            let shape = ConvShape {
                kernel: k,
                stride,
                top: pad,
                left: pad,
                out_height: out,
                out_width: out,
            };
            let after = ((out - 1) * stride + k).saturating_sub(size + pad);
            let x = Tensor::<4>::random([2, cin, size, size], normal, &device);
            let weight = Tensor::<4>::random([cout, cin, k, k], normal, &device);
            let bias = Tensor::<1>::random([cout], normal, &device);
            let options = ConvOptions::new([stride, stride], [0, 0], [1, 1], 1);
            let padded = x.clone().pad((pad, after, pad, after), 0.0);
            let reference = conv2d(padded, weight.clone(), Some(bias.clone()), options);
            for activation in [Activation::None, Activation::Relu, Activation::Relu6] {
                let expected = match activation {
                    Activation::None => reference.clone(),
                    Activation::Relu => reference.clone().clamp_min(0.0),
                    Activation::Relu6 => reference.clone().clamp(0.0, 6.0),
                };
                let expected: Vec<f32> = expected.into_data().try_into_vec().unwrap();
                let w: Vec<f32> = weight.clone().into_data().try_into_vec().unwrap();
                let b: Vec<f32> = bias.clone().into_data().try_into_vec().unwrap();
                let got: Vec<f32> = dense_conv(x.clone(), &w, &b, shape, activation)
                    .into_data()
                    .try_into_vec()
                    .unwrap();
                assert_eq!(got.len(), expected.len(), "{size}² k{k} s{stride}");
                for (i, (g, e)) in got.iter().zip(&expected).enumerate() {
                    assert!(
                        (g - e).abs() < 1e-3,
                        "{size}² {cin}→{cout} k{k} s{stride} {activation:?} [{i}]: {g} vs {e}"
                    );
                }
            }
        }
    }

    #[test]
    fn packs_output_channels_into_zero_padded_panels() {
        // 2 inputs, 9 outputs: weight[o][k] = 10 o + k.
        let weight: Vec<f32> = (0..9)
            .flat_map(|o| [10.0 * o as f32, 10.0 * o as f32 + 1.0])
            .collect();
        let panels = pack_panels(&weight, 2, 9);
        assert_eq!(panels.len(), 2 * 2 * LANES);
        assert_eq!(
            panels[..LANES],
            [0.0, 10.0, 20.0, 30.0, 40.0, 50.0, 60.0, 70.0]
        );
        assert_eq!(
            panels[LANES..2 * LANES],
            [1.0, 11.0, 21.0, 31.0, 41.0, 51.0, 61.0, 71.0]
        );
        assert_eq!(panels[2 * LANES..2 * LANES + 2], [80.0, 0.0]);
        assert_eq!(panels[3 * LANES], 81.0);
    }
}
