//! Seeded random features.

use ndarray::Array2;
use rand_chacha::ChaCha8Rng;
use rand_core::{RngCore, SeedableRng};

/// `(n, d)` matrix of independent `N(0, sigma^2)` draws.
///
/// Deterministic and portable: ChaCha8 seeded with `seed`, uniforms from
/// the top 53 bits of each `u64`, normals by the Box-Muller transform in
/// `f64` (both outputs of each pair used, row-major order), rounded once to
/// `f32`. The values do not depend on the thread count or the backend, so
/// every kernel propagates the same `E0`.
///
/// ```
/// let e = graft_propagate::normal_embeddings(1000, 16, 0.5, 42);
/// let var = e.iter().map(|x| x * x).sum::<f32>() / e.len() as f32;
/// assert!((var.sqrt() - 0.5).abs() < 0.02);
/// assert_eq!(e, graft_propagate::normal_embeddings(1000, 16, 0.5, 42));
/// ```
pub fn normal_embeddings(n: usize, d: usize, sigma: f32, seed: u64) -> Array2<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let sigma = f64::from(sigma);
    let total = n * d;
    let mut data = Vec::with_capacity(total);
    while data.len() < total {
        // u1 in (0, 1] so that ln(u1) is finite.
        let u1 = 1.0 - unit(&mut rng);
        let u2 = unit(&mut rng);
        let r = (-2.0 * u1.ln()).sqrt() * sigma;
        let t = std::f64::consts::TAU * u2;
        data.push((r * t.cos()) as f32);
        if data.len() < total {
            data.push((r * t.sin()) as f32);
        }
    }
    Array2::from_shape_vec((n, d), data).unwrap_or_else(|_| Array2::zeros((n, d)))
}

/// Uniform in `[0, 1)` with 53 random bits.
fn unit(rng: &mut ChaCha8Rng) -> f64 {
    (rng.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
}
