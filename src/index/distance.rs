//! Distance kernels on `f32` slices.
//!
//! Vectors in the index are unit length, so the score of a match is the cosine
//! similarity = the dot product, and the distance the HNSW graph works with is
//! `1 − score` (0 for identical directions, 2 for opposite ones).
//!
//! [`dot`] is the one kernel everything uses (the growing segment's exact scan,
//! flat segments, and the [`Point`](super::Point) distance instant-distance calls
//! while building and searching graphs). It picks, per target:
//!
//! - **x86-64**: an explicit AVX2 + FMA kernel (`std::arch`) when the CPU has
//!   both, detected once at run time and cached in an atomic; otherwise
//!   [`dot_portable`] (SSE2, the x86-64 baseline);
//! - **wasm32 with `simd128`** (the npm package is built with
//!   `-C target-feature=+simd128`, see `.cargo/config.toml`): an explicit
//!   `core::arch::wasm32` kernel, four `f32x4` accumulators;
//! - everywhere else (wasm32 without `simd128`, aarch64 where NEON is baseline):
//!   [`dot_portable`], written for the auto-vectoriser: eight independent
//!   accumulators over `chunks_exact(8)`, so the additions do not form one serial
//!   dependency chain and the compiler emits packed multiply-adds.
//!
//! [`dot_scalar`] is the plain one-accumulator loop the tests (and the `distance`
//! criterion bench) compare every kernel with.

/// Dot product of `a` and `b` over their common length.
#[inline]
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    #[cfg(target_arch = "x86_64")]
    {
        if a.len().min(b.len()) >= 16 && x86::has_avx2_fma() {
            // SAFETY: the CPU supports AVX2 and FMA (checked just above).
            return unsafe { x86::dot_avx2_fma(a, b) };
        }
    }
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    {
        wasm::dot_simd128(a, b)
    }
    #[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
    {
        dot_portable(a, b)
    }
}

/// Which kernel [`dot`] runs on this machine: `"avx2+fma"`, `"simd128"` or
/// `"portable"` (reported by `metricann bench`).
pub fn kernel_name() -> &'static str {
    #[cfg(target_arch = "x86_64")]
    {
        if x86::has_avx2_fma() {
            return "avx2+fma";
        }
    }
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    {
        "simd128"
    }
    #[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
    {
        "portable"
    }
}

/// The reference: one accumulator, element by element (a serial dependency
/// chain the compiler must not reorder, so it stays scalar).
pub fn dot_scalar(a: &[f32], b: &[f32]) -> f32 {
    let mut sum = 0.0f32;
    for (x, y) in a.iter().zip(b) {
        sum += x * y;
    }
    sum
}

/// Portable dot product: eight independent lanes the compiler vectorises.
#[inline]
pub fn dot_portable(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut acc = [0.0f32; 8];
    let ca = a.chunks_exact(8);
    let cb = b.chunks_exact(8);
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for i in 0..8 {
            acc[i] += x[i] * y[i];
        }
    }
    let mut tail = 0.0f32;
    for (x, y) in ra.iter().zip(rb) {
        tail += x * y;
    }
    ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7])) + tail
}

/// Squared L2 norm.
#[inline]
pub fn norm_squared(a: &[f32]) -> f32 {
    dot(a, a)
}

/// Cosine distance between two unit vectors: `1 − a·b`.
#[inline]
pub fn cosine_distance(a: &[f32], b: &[f32]) -> f32 {
    1.0 - dot(a, b)
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;
    use std::sync::atomic::{AtomicU8, Ordering};

    /// 0 = not yet detected, 1 = no, 2 = yes.
    static DETECTED: AtomicU8 = AtomicU8::new(0);

    #[inline]
    pub fn has_avx2_fma() -> bool {
        match DETECTED.load(Ordering::Relaxed) {
            2 => true,
            1 => false,
            _ => {
                let yes =
                    std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma");
                DETECTED.store(if yes { 2 } else { 1 }, Ordering::Relaxed);
                yes
            }
        }
    }

    /// AVX2/FMA dot product with four 8-wide accumulators (32 floats per step).
    ///
    /// # Safety
    /// The CPU must support AVX2 and FMA.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn dot_avx2_fma(a: &[f32], b: &[f32]) -> f32 {
        let n = a.len().min(b.len());
        let (pa, pb) = (a.as_ptr(), b.as_ptr());
        let mut acc0 = _mm256_setzero_ps();
        let mut acc1 = _mm256_setzero_ps();
        let mut acc2 = _mm256_setzero_ps();
        let mut acc3 = _mm256_setzero_ps();
        let mut i = 0;
        // SAFETY (all loads): every index read is < n, the length of both slices.
        unsafe {
            while i + 32 <= n {
                acc0 =
                    _mm256_fmadd_ps(_mm256_loadu_ps(pa.add(i)), _mm256_loadu_ps(pb.add(i)), acc0);
                acc1 = _mm256_fmadd_ps(
                    _mm256_loadu_ps(pa.add(i + 8)),
                    _mm256_loadu_ps(pb.add(i + 8)),
                    acc1,
                );
                acc2 = _mm256_fmadd_ps(
                    _mm256_loadu_ps(pa.add(i + 16)),
                    _mm256_loadu_ps(pb.add(i + 16)),
                    acc2,
                );
                acc3 = _mm256_fmadd_ps(
                    _mm256_loadu_ps(pa.add(i + 24)),
                    _mm256_loadu_ps(pb.add(i + 24)),
                    acc3,
                );
                i += 32;
            }
            while i + 8 <= n {
                acc0 =
                    _mm256_fmadd_ps(_mm256_loadu_ps(pa.add(i)), _mm256_loadu_ps(pb.add(i)), acc0);
                i += 8;
            }
        }
        let sum = _mm256_add_ps(_mm256_add_ps(acc0, acc1), _mm256_add_ps(acc2, acc3));
        // Horizontal sum of the eight lanes.
        let lo = _mm256_castps256_ps128(sum);
        let hi = _mm256_extractf128_ps(sum, 1);
        let s = _mm_add_ps(lo, hi);
        let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
        let s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 0x55));
        let mut total = _mm_cvtss_f32(s);
        while i < n {
            total += a[i] * b[i];
            i += 1;
        }
        total
    }
}

#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
mod wasm {
    use core::arch::wasm32::*;

    /// `simd128` dot product: four `f32x4` accumulators (16 floats per step),
    /// then one accumulator for 4-float steps, then a scalar tail.
    /// Safe to call: `simd128` is enabled at compile time for this whole build.
    #[inline]
    pub fn dot_simd128(a: &[f32], b: &[f32]) -> f32 {
        let n = a.len().min(b.len());
        let (pa, pb) = (a.as_ptr(), b.as_ptr());
        let mut acc0 = f32x4_splat(0.0);
        let mut acc1 = f32x4_splat(0.0);
        let mut acc2 = f32x4_splat(0.0);
        let mut acc3 = f32x4_splat(0.0);
        let mut i = 0;
        // SAFETY (all loads): each `v128_load` reads the 4 floats at i..i + 4,
        // all < n, the length of both slices; `v128_load` allows unaligned reads.
        unsafe {
            let load = |p: *const f32, at: usize| v128_load(p.add(at) as *const v128);
            while i + 16 <= n {
                acc0 = f32x4_add(acc0, f32x4_mul(load(pa, i), load(pb, i)));
                acc1 = f32x4_add(acc1, f32x4_mul(load(pa, i + 4), load(pb, i + 4)));
                acc2 = f32x4_add(acc2, f32x4_mul(load(pa, i + 8), load(pb, i + 8)));
                acc3 = f32x4_add(acc3, f32x4_mul(load(pa, i + 12), load(pb, i + 12)));
                i += 16;
            }
            while i + 4 <= n {
                acc0 = f32x4_add(acc0, f32x4_mul(load(pa, i), load(pb, i)));
                i += 4;
            }
        }
        let sum = f32x4_add(f32x4_add(acc0, acc1), f32x4_add(acc2, acc3));
        let mut total = (f32x4_extract_lane::<0>(sum) + f32x4_extract_lane::<2>(sum))
            + (f32x4_extract_lane::<1>(sum) + f32x4_extract_lane::<3>(sum));
        while i < n {
            total += a[i] * b[i];
            i += 1;
        }
        total
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Deterministic pseudo-random floats in [-1, 1) (xorshift).
    fn floats(seed: u64, n: usize) -> Vec<f32> {
        let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        (0..n)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
            })
            .collect()
    }

    fn naive(a: &[f32], b: &[f32]) -> f64 {
        a.iter().zip(b).map(|(x, y)| *x as f64 * *y as f64).sum()
    }

    #[test]
    fn dot_matches_naive_sum_at_every_length() {
        for n in 0..300 {
            let a = floats(n as u64 + 1, n);
            let b = floats(n as u64 + 1000, n);
            let want = naive(&a, &b);
            let tol = 1e-5 * (n as f64 + 1.0);
            for (what, got) in [
                ("dot", dot(&a, &b)),
                ("portable", dot_portable(&a, &b)),
                ("scalar", dot_scalar(&a, &b)),
            ] {
                assert!(
                    (got as f64 - want).abs() <= tol,
                    "{what} at n={n}: {got} vs {want}"
                );
            }
        }
    }

    #[test]
    fn exact_on_small_integers() {
        let a: Vec<f32> = (1..=37).map(|x| x as f32).collect();
        let b: Vec<f32> = (1..=37).map(|x| (x % 3) as f32).collect();
        let want: f32 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
        assert_eq!(dot(&a, &b), want);
        assert_eq!(dot_portable(&a, &b), want);
        assert_eq!(dot_scalar(&a, &b), want);
        assert_eq!(norm_squared(&[3.0, 4.0]), 25.0);
    }

    #[test]
    fn uses_common_length() {
        assert_eq!(dot(&[1.0, 2.0, 3.0], &[1.0, 1.0]), 3.0);
        assert_eq!(dot(&[], &[1.0]), 0.0);
    }

    #[test]
    fn cosine_distance_of_unit_vectors() {
        let x = [1.0, 0.0];
        let y = [0.0, 1.0];
        let z = [-1.0, 0.0];
        assert_eq!(cosine_distance(&x, &x), 0.0);
        assert_eq!(cosine_distance(&x, &y), 1.0);
        assert_eq!(cosine_distance(&x, &z), 2.0);
    }

    #[test]
    fn kernels_agree_with_scalar_on_unit_vectors() {
        // The index's actual inputs: unit vectors of the embedding dimensions.
        for dim in [3, 64, 128, 256, 384, 512, 768] {
            let mut a = floats(dim as u64, dim);
            let mut b = floats(dim as u64 + 5, dim);
            for v in [&mut a, &mut b] {
                let norm = dot_scalar(v, v).sqrt();
                v.iter_mut().for_each(|x| *x /= norm);
            }
            let want = dot_scalar(&a, &b);
            assert!((dot(&a, &b) - want).abs() < 1e-5, "dot, dim {dim}");
            assert!(
                (dot_portable(&a, &b) - want).abs() < 1e-5,
                "portable, dim {dim}"
            );
            assert!(
                (cosine_distance(&a, &a)).abs() < 1e-5,
                "self distance, dim {dim}"
            );
        }
        assert!(["avx2+fma", "simd128", "portable"].contains(&kernel_name()));
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn avx2_kernel_agrees_with_portable() {
        if !x86::has_avx2_fma() {
            return;
        }
        for n in [16, 17, 31, 32, 33, 64, 128, 129, 512, 1000] {
            let a = floats(7 + n as u64, n);
            let b = floats(99 + n as u64, n);
            // SAFETY: checked above.
            let fast = unsafe { x86::dot_avx2_fma(&a, &b) };
            let want = naive(&a, &b);
            assert!((fast as f64 - want).abs() < 1e-5 * n as f64, "n={n}");
        }
    }
}
