//! FNV-1a, a stable non-cryptographic hash.
//!
//! Unlike `std`'s `DefaultHasher`, FNV-1a is fully specified, so its values
//! are identical across Rust versions, platforms and runs. The crate uses it
//! to key the [`EmbeddingCache`](crate::EmbeddingCache) and to checksum the
//! files it writes (a single changed byte always changes the hash, because
//! every FNV-1a step is a bijection of the state).

/// FNV-1a 64-bit offset basis (`0xcbf29ce484222325`).
pub const FNV64_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
/// FNV-1a 64-bit prime (`2^40 + 2^8 + 0xb3 = 0x100000001b3`).
pub const FNV64_PRIME: u64 = 0x0000_0100_0000_01b3;

/// Incremental FNV-1a 64-bit hasher.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fnv64(u64);

impl Default for Fnv64 {
    fn default() -> Self {
        Self(FNV64_OFFSET)
    }
}

impl Fnv64 {
    /// A hasher in the initial state.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds `bytes` into the hash.
    pub fn update(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(FNV64_PRIME);
        }
    }

    /// The hash of everything fed so far.
    #[must_use]
    pub fn finish(&self) -> u64 {
        self.0
    }
}

/// FNV-1a 64 of `bytes` in one call.
///
/// ```
/// assert_eq!(graft_retrieval::fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
/// ```
#[must_use]
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    let mut h = Fnv64::new();
    h.update(bytes);
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reference values from the FNV specification's test suite.
    #[test]
    fn pinned_values() {
        assert_eq!(fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a64(b"foobar"), 0x8594_4171_f739_67e8);
        let mut h = Fnv64::new();
        h.update(b"foo");
        h.update(b"bar");
        assert_eq!(h.finish(), fnv1a64(b"foobar"));
    }
}
