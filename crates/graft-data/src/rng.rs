//! Portable seeded randomness: ChaCha8 streams and our own bounded draws, so
//! the same seed gives the same samples on every machine and with every
//! version of the `rand` crates (whose `gen_range` is not value-stable).

use rand_chacha::ChaCha8Rng;
use rand_core::{RngCore, SeedableRng};

/// A ChaCha8 generator for `seed`, on an independent `stream` (e.g. a user id),
/// so per-user draws do not depend on iteration order or parallelism.
pub fn stream_rng(seed: u64, stream: u64) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(stream);
    rng
}

/// A uniform integer in `0..n` (Lemire's multiply-and-reject; unbiased).
/// Returns 0 when `n == 0`.
pub fn below(rng: &mut impl RngCore, n: u32) -> u32 {
    if n == 0 {
        return 0;
    }
    let threshold = n.wrapping_neg() % n;
    loop {
        let m = u64::from(rng.next_u32()) * u64::from(n);
        if (m as u32) >= threshold {
            return (m >> 32) as u32;
        }
    }
}

/// A uniform `f64` in `[0, 1)` with 53 random bits.
pub fn unit_f64(rng: &mut impl RngCore) -> f64 {
    (rng.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
}

/// Fisher-Yates shuffle with [`below`].
pub fn shuffle<T>(rng: &mut impl RngCore, v: &mut [T]) {
    for i in (1..v.len()).rev() {
        let j = below(rng, (i + 1) as u32) as usize;
        v.swap(i, j);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn below_is_in_range_and_covers() {
        let mut rng = stream_rng(7, 0);
        let mut seen = [0usize; 5];
        for _ in 0..5000 {
            seen[below(&mut rng, 5) as usize] += 1;
        }
        assert!(seen.iter().all(|&c| c > 800), "{seen:?}");
        assert_eq!(below(&mut rng, 0), 0);
        let x = unit_f64(&mut rng);
        assert!((0.0..1.0).contains(&x));
    }

    #[test]
    fn streams_differ_and_repeat() {
        let a: Vec<u32> = (0..4).map(|_| below(&mut stream_rng(1, 0), 1000)).collect();
        let b: Vec<u32> = (0..4).map(|_| below(&mut stream_rng(1, 0), 1000)).collect();
        assert_eq!(a, b);
        let mut r0 = stream_rng(1, 0);
        let mut r1 = stream_rng(1, 1);
        let x: Vec<u32> = (0..8).map(|_| r0.next_u32()).collect();
        let y: Vec<u32> = (0..8).map(|_| r1.next_u32()).collect();
        assert_ne!(x, y);
    }
}
