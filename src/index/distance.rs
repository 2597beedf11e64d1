//! Distance kernels on `f32` slices.
//!
//! Vectors in the index are unit length, so the score of a match is the cosine
//! similarity = the dot product, and the distance the HNSW graph works with is
//! `1 − score` (0 for identical directions, 2 for opposite ones).
//!
//! [`dot`] is the one kernel everything uses (the growing segment's exact scan,
//! flat segments, and the graphs' build and search). It picks, per target:
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
//!
//! **int8.** A quantised graph (`IndexConfig::quantization`) stores each vector
//! as `i8` codes with one scale of its own ([`quantize_i8`]): `x ≈ scale · code`.
//! [`dot_i8`] is the graph walk's kernel (the query quantised the same way,
//! `i32` sums: a quarter of the memory traffic of `f32`), with the same choice
//! of explicit kernels (AVX2 sign-extends to `i16` and uses `vpmaddwd`; wasm
//! uses `i32x4.dot_i16x8_s`); [`dot_f32_i8`] re-ranks the walk's candidates with
//! the float query against the codes, and, where the graph keeps them, against
//! the residual codes of what the codes rounded off ([`quantize_residual_i8`]).

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

/// Quantises `v` into `codes` (same length) with one symmetric scale, which it
/// returns: `code = round(x / scale)`, `scale = max |x| / 127`, so the largest
/// component maps to ±127 and `v ≈ scale · codes`. A zero vector gets scale 0.
///
/// Quantising `scale · codes` again gives the same codes and scale, so a
/// quantised segment merged into a new one loses nothing more.
pub fn quantize_i8(v: &[f32], codes: &mut [i8]) -> f32 {
    let max = v.iter().fold(0.0f32, |m, x| m.max(x.abs()));
    if max == 0.0 || !max.is_finite() {
        codes.iter_mut().for_each(|c| *c = 0);
        return 0.0;
    }
    let scale = max / 127.0;
    let inv = 127.0 / max;
    for (c, x) in codes.iter_mut().zip(v) {
        *c = (x * inv).round().clamp(-127.0, 127.0) as i8;
    }
    scale
}

/// `scale · codes` as floats, into `out`.
pub fn dequantize_i8(codes: &[i8], scale: f32, out: &mut [f32]) {
    for (o, &c) in out.iter_mut().zip(codes) {
        *o = scale * c as f32;
    }
}

/// What one residual code is worth, in units of the vector's scale: the
/// rounding [`quantize_i8`] leaves is within ±scale/2, so ±127 residual steps
/// of scale/254 cover it.
pub const RESIDUAL_STEPS: f32 = 254.0;

/// Codes what [`quantize_i8`] rounded off `v`: `residual = round((x − scale ·
/// code) · 254 / scale)`, so `v ≈ scale · (codes + residual / 254)` to within
/// scale/508 a component, about 250 times closer than the codes alone.
pub fn quantize_residual_i8(v: &[f32], codes: &[i8], scale: f32, residual: &mut [i8]) {
    if scale == 0.0 {
        residual.iter_mut().for_each(|r| *r = 0);
        return;
    }
    let inv = RESIDUAL_STEPS / scale;
    for ((r, x), &c) in residual.iter_mut().zip(v).zip(codes) {
        *r = ((x - scale * c as f32) * inv).round().clamp(-127.0, 127.0) as i8;
    }
}

/// `scale · (codes + residual / 254)` as floats, into `out`.
pub fn dequantize_residual_i8(codes: &[i8], residual: &[i8], scale: f32, out: &mut [f32]) {
    let fine = scale / RESIDUAL_STEPS;
    for ((o, &c), &r) in out.iter_mut().zip(codes).zip(residual) {
        *o = scale * c as f32 + fine * r as f32;
    }
}

/// Integer dot product of two code vectors over their common length.
#[inline]
pub fn dot_i8(a: &[i8], b: &[i8]) -> i32 {
    #[cfg(target_arch = "x86_64")]
    {
        if a.len().min(b.len()) >= 16 && x86::has_avx2_fma() {
            // SAFETY: the CPU supports AVX2 (checked just above).
            return unsafe { x86::dot_i8_avx2(a, b) };
        }
    }
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    {
        wasm::dot_i8_simd128(a, b)
    }
    #[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
    {
        dot_i8_portable(a, b)
    }
}

/// Portable integer dot product: sixteen `i32` lanes the compiler vectorises.
/// (The sum cannot overflow: 127² · 2 per pair of lanes, far below `i32::MAX`
/// for any vector an index holds.)
#[inline]
pub fn dot_i8_portable(a: &[i8], b: &[i8]) -> i32 {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut acc = [0i32; 16];
    let ca = a.chunks_exact(16);
    let cb = b.chunks_exact(16);
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for i in 0..16 {
            acc[i] += x[i] as i32 * y[i] as i32;
        }
    }
    let tail: i32 = ra.iter().zip(rb).map(|(x, y)| *x as i32 * *y as i32).sum();
    acc.iter().sum::<i32>() + tail
}

/// Dot product of a float query with a code vector (multiply by the code
/// vector's scale for the score): the re-ranking step's kernel.
#[inline]
pub fn dot_f32_i8(q: &[f32], c: &[i8]) -> f32 {
    let n = q.len().min(c.len());
    let (q, c) = (&q[..n], &c[..n]);
    let mut acc = [0.0f32; 8];
    let cq = q.chunks_exact(8);
    let cc = c.chunks_exact(8);
    let (rq, rc) = (cq.remainder(), cc.remainder());
    for (x, y) in cq.zip(cc) {
        for i in 0..8 {
            acc[i] += x[i] * y[i] as f32;
        }
    }
    let tail: f32 = rq.iter().zip(rc).map(|(x, y)| x * *y as f32).sum();
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

    /// AVX2 integer dot product: 16 codes per step sign-extended to `i16`,
    /// multiplied and summed in pairs into `i32` lanes (`vpmaddwd`), two
    /// accumulators.
    ///
    /// # Safety
    /// The CPU must support AVX2.
    #[target_feature(enable = "avx2")]
    pub unsafe fn dot_i8_avx2(a: &[i8], b: &[i8]) -> i32 {
        let n = a.len().min(b.len());
        let (pa, pb) = (a.as_ptr(), b.as_ptr());
        let mut acc0 = _mm256_setzero_si256();
        let mut acc1 = _mm256_setzero_si256();
        let mut i = 0;
        // SAFETY (all loads): every 16-byte load reads indices i..i + 16 < n + 1,
        // inside both slices; `loadu` allows unaligned reads.
        unsafe {
            let load = |p: *const i8, at: usize| {
                _mm256_cvtepi8_epi16(_mm_loadu_si128(p.add(at) as *const __m128i))
            };
            while i + 32 <= n {
                acc0 = _mm256_add_epi32(acc0, _mm256_madd_epi16(load(pa, i), load(pb, i)));
                acc1 =
                    _mm256_add_epi32(acc1, _mm256_madd_epi16(load(pa, i + 16), load(pb, i + 16)));
                i += 32;
            }
            if i + 16 <= n {
                acc0 = _mm256_add_epi32(acc0, _mm256_madd_epi16(load(pa, i), load(pb, i)));
                i += 16;
            }
        }
        let sum = _mm256_add_epi32(acc0, acc1);
        let s = _mm_add_epi32(
            _mm256_castsi256_si128(sum),
            _mm256_extracti128_si256(sum, 1),
        );
        let s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0b01_00_11_10));
        let s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0b10_11_00_01));
        let mut total = _mm_cvtsi128_si32(s);
        while i < n {
            total += a[i] as i32 * b[i] as i32;
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

    /// `simd128` integer dot product: 16 codes per step, each half
    /// sign-extended to `i16x8` and multiplied and summed in pairs into `i32x4`
    /// (`i32x4.dot_i16x8_s`).
    #[inline]
    pub fn dot_i8_simd128(a: &[i8], b: &[i8]) -> i32 {
        let n = a.len().min(b.len());
        let (pa, pb) = (a.as_ptr(), b.as_ptr());
        let mut acc = i32x4_splat(0);
        let mut i = 0;
        // SAFETY (all loads): each `v128_load` reads the 16 codes at i..i + 16,
        // all < n, the length of both slices; `v128_load` allows unaligned reads.
        unsafe {
            while i + 16 <= n {
                let x = v128_load(pa.add(i) as *const v128);
                let y = v128_load(pb.add(i) as *const v128);
                acc = i32x4_add(
                    acc,
                    i32x4_dot_i16x8(i16x8_extend_low_i8x16(x), i16x8_extend_low_i8x16(y)),
                );
                acc = i32x4_add(
                    acc,
                    i32x4_dot_i16x8(i16x8_extend_high_i8x16(x), i16x8_extend_high_i8x16(y)),
                );
                i += 16;
            }
        }
        let mut total = (i32x4_extract_lane::<0>(acc) + i32x4_extract_lane::<1>(acc))
            + (i32x4_extract_lane::<2>(acc) + i32x4_extract_lane::<3>(acc));
        while i < n {
            total += a[i] as i32 * b[i] as i32;
            i += 1;
        }
        total
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn floats(seed: u64, n: usize) -> Vec<f32> {
        crate::index::test_data::uniform(n, seed)
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

    fn codes(seed: u64, n: usize) -> Vec<i8> {
        floats(seed, n)
            .iter()
            .map(|x| (x * 127.0).round() as i8)
            .collect()
    }

    fn naive_i8(a: &[i8], b: &[i8]) -> i32 {
        a.iter().zip(b).map(|(x, y)| *x as i32 * *y as i32).sum()
    }

    #[test]
    fn int8_kernels_are_exact_at_every_length() {
        for n in 0..300 {
            let a = codes(n as u64 + 3, n);
            let b = codes(n as u64 + 500, n);
            let want = naive_i8(&a, &b);
            assert_eq!(dot_i8(&a, &b), want, "dot_i8 at n={n}");
            assert_eq!(dot_i8_portable(&a, &b), want, "portable at n={n}");
            let fa: Vec<f32> = a.iter().map(|&c| c as f32).collect();
            assert_eq!(dot_f32_i8(&fa, &b), want as f32, "f32 x i8 at n={n}");
        }
        // The extremes: no overflow in the i16 products or the i32 sums.
        let max = vec![127i8; 4096];
        let min = vec![-127i8; 4096];
        assert_eq!(dot_i8(&max, &min), -127 * 127 * 4096);
        assert_eq!(dot_i8(&[1, 2], &[3]), 3, "common length");
    }

    #[test]
    fn quantization_roundtrips_within_half_a_step_and_is_idempotent() {
        for dim in [1, 7, 64, 128, 512] {
            let mut v = floats(dim as u64 + 9, dim);
            let norm = dot_scalar(&v, &v).sqrt();
            v.iter_mut().for_each(|x| *x /= norm);
            let mut c = vec![0i8; dim];
            let scale = quantize_i8(&v, &mut c);
            let max = v.iter().fold(0.0f32, |m, x| m.max(x.abs()));
            assert!((scale * 127.0 - max).abs() <= 1e-6, "dim {dim}");
            assert!(
                c.iter().any(|&x| x.abs() == 127),
                "the largest maps to ±127"
            );
            let mut back = vec![0.0f32; dim];
            dequantize_i8(&c, scale, &mut back);
            for (x, y) in v.iter().zip(&back) {
                assert!((x - y).abs() <= scale * 0.5 + 1e-7, "dim {dim}: {x} vs {y}");
            }
            // The score the index reports for a quantised vector is close to the
            // float one: the per-component error is at most half a step.
            let exact = dot_scalar(&v, &v);
            let approx = scale * dot_f32_i8(&v, &c);
            assert!(
                (exact - approx).abs() < 0.5 * scale * dim as f32,
                "dim {dim}"
            );
            // Quantising the dequantised vector again changes nothing.
            let mut again = vec![0i8; dim];
            let scale2 = quantize_i8(&back, &mut again);
            assert_eq!(again, c, "dim {dim}");
            assert!((scale2 - scale).abs() <= scale * 1e-6, "dim {dim}");
        }
        let mut c = [5i8; 3];
        assert_eq!(quantize_i8(&[0.0; 3], &mut c), 0.0);
        assert_eq!(c, [0; 3]);
    }

    #[test]
    fn residual_codes_bring_the_error_down_to_a_254th_of_a_step() {
        for dim in [1, 7, 128, 512] {
            let mut v = floats(dim as u64 + 31, dim);
            let norm = dot_scalar(&v, &v).sqrt();
            v.iter_mut().for_each(|x| *x /= norm);
            let mut c = vec![0i8; dim];
            let scale = quantize_i8(&v, &mut c);
            let mut r = vec![0i8; dim];
            quantize_residual_i8(&v, &c, scale, &mut r);
            let mut back = vec![0.0f32; dim];
            dequantize_residual_i8(&c, &r, scale, &mut back);
            for (x, y) in v.iter().zip(&back) {
                let bound = scale * 0.5 / RESIDUAL_STEPS + 1e-7;
                assert!((x - y).abs() <= bound, "dim {dim}: {x} vs {y}");
            }
            // The re-ranking's score: codes and residual, one scale.
            let score = scale * (dot_f32_i8(&v, &c) + dot_f32_i8(&v, &r) / RESIDUAL_STEPS);
            let coarse = scale * dot_f32_i8(&v, &c);
            let exact = dot_scalar(&v, &v);
            assert!(
                (exact - score).abs() <= (exact - coarse).abs() + 1e-6,
                "dim {dim}"
            );
            assert!((exact - score).abs() < 1e-4, "dim {dim}: {score}");
        }
        let mut r = [5i8; 3];
        quantize_residual_i8(&[0.0; 3], &[0; 3], 0.0, &mut r);
        assert_eq!(r, [0; 3]);
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn avx2_kernel_agrees_with_portable() {
        if !x86::has_avx2_fma() {
            println!("SKIPPED avx2_kernel_agrees_with_portable: this CPU has no AVX2+FMA");
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
