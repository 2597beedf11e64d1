//! Seeded random unit vectors for the index's and the gallery's tests.

use super::distance;

/// Random unit vectors (xorshift + Box–Muller, so directions are uniform).
pub(crate) fn random_unit(n: usize, dim: usize, seed: u64) -> Vec<Vec<f32>> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut next = move || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        ((s >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    };
    (0..n)
        .map(|_| {
            let v: Vec<f32> = (0..dim)
                .map(|_| {
                    let (u1, u2) = (next(), next());
                    ((-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()) as f32
                })
                .collect();
            let n = distance::norm_squared(&v).sqrt();
            v.into_iter().map(|x| x / n).collect()
        })
        .collect()
}

/// `len` floats uniform in [-1, 1) (xorshift).
pub(crate) fn uniform(len: usize, seed: u64) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect()
}

/// `n` unit vectors of uniform coordinates in [-1, 1] (xorshift), row after row.
pub(crate) fn unit_vectors(n: usize, dim: usize, seed: u64) -> Vec<f32> {
    let mut out = uniform(n * dim, seed);
    for row in out.chunks_exact_mut(dim) {
        let norm = distance::norm_squared(row).sqrt();
        row.iter_mut().for_each(|x| *x /= norm);
    }
    out
}
