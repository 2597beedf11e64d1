//! The distance kernels, compiled alone for wasm32 (with and without `simd128`)
//! and checked under Node by `run.mjs`: every kernel [`distance::dot`] can pick on
//! wasm32 agrees with the scalar reference, and so does every `dot_i8` kernel.
//! `distance.rs` has no dependencies,
//! so this is one `rustc` call, not a wasm build of the whole crate.
//! Run: `tests/wasm_simd/run.sh` (part of `make check-wasm`).

#[path = "../../src/index/distance.rs"]
#[allow(dead_code)]
mod distance;

/// Deterministic floats in [-1, 1) (xorshift), as the native unit tests use.
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

/// How many lengths 0..300 where `dot` or `dot_portable` differ from the f64
/// reference by more than the rounding allowance (0 = all good).
#[unsafe(no_mangle)]
pub extern "C" fn mismatches() -> u32 {
    let mut bad = 0;
    for n in 0..300usize {
        let a = floats(n as u64 + 1, n);
        let b = floats(n as u64 + 1000, n);
        let want: f64 = a.iter().zip(&b).map(|(x, y)| *x as f64 * *y as f64).sum();
        let tol = 1e-5 * (n as f64 + 1.0);
        for got in [distance::dot(&a, &b), distance::dot_portable(&a, &b)] {
            if (got as f64 - want).abs() > tol {
                bad += 1;
            }
        }
        // The int8 kernels are exact.
        let ca: Vec<i8> = a.iter().map(|x| (x * 127.0).round() as i8).collect();
        let cb: Vec<i8> = b.iter().map(|x| (x * 127.0).round() as i8).collect();
        let want: i32 = ca.iter().zip(&cb).map(|(x, y)| *x as i32 * *y as i32).sum();
        for got in [distance::dot_i8(&ca, &cb), distance::dot_i8_portable(&ca, &cb)] {
            if got != want {
                bad += 1;
            }
        }
    }
    bad
}

/// 1 when `dot` runs the `simd128` kernel.
#[unsafe(no_mangle)]
pub extern "C" fn simd128() -> u32 {
    u32::from(distance::kernel_name() == "simd128")
}

/// `reps` passes of an exact scan of `n` vectors of dimension `dim` with kernel
/// `which` (0 = `dot`, 1 = `dot_scalar`); returns the sum so nothing is elided.
#[unsafe(no_mangle)]
pub extern "C" fn scan(which: u32, n: u32, dim: u32, reps: u32) -> f32 {
    let (n, dim) = (n as usize, dim as usize);
    let data = floats(7, n * dim);
    let q = floats(8, dim);
    let mut total = 0.0;
    for _ in 0..reps {
        for v in data.chunks_exact(dim) {
            total += match which {
                0 => distance::dot(&q, v),
                _ => distance::dot_scalar(&q, v),
            };
        }
    }
    total
}
