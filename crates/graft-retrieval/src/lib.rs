//! Exact cosine top-k retrieval over f32 embedding matrices, index
//! persistence, and an embedding cache keyed by model and text.
//!
//! - [`CosineIndex`]: rows L2-normalised once; [`top_k`](CosineIndex::top_k),
//!   [`top_k_among`](CosineIndex::top_k_among) (a candidate subset, e.g. a
//!   user's history for ELCoRec's retrieval-augmented prompt),
//!   [`top_k_excluding`](CosineIndex::top_k_excluding),
//!   [`neighbours`](CosineIndex::neighbours) and the rayon-parallel
//!   [`top_k_batch`](CosineIndex::top_k_batch). Results are deterministic:
//!   score descending, ties by lower index. Saved and loaded as checksummed
//!   safetensors.
//! - [`EmbeddingCache`]: text -> embedding on disk, per model, so repeated
//!   runs call the sentence encoder only for texts it has not seen.
//!
//! Pure Rust (no libtorch).
//!
//! # Example
//! ```
//! # fn main() -> graft_retrieval::Result<()> {
//! use graft_retrieval::{CosineIndex, Hit};
//! use ndarray::array;
//!
//! let items = array![[1.0f32, 0.0], [0.0, 1.0], [1.0, 1.0], [-1.0, 0.0]];
//! let index = CosineIndex::new(items.view())?.with_model("toy");
//!
//! let hits = index.top_k(array![2.0f32, 0.1].view(), 2)?;
//! assert_eq!(hits.iter().map(|h| h.index).collect::<Vec<_>>(), [0, 2]);
//!
//! // Only among a user's history (rows 1 and 3), best first.
//! let hits = index.top_k_among(array![1.0f32, 0.0].view(), &[1, 3], 1)?;
//! assert_eq!(hits[0].index, 1);
//!
//! // Items similar to item 2, excluding itself.
//! let Hit { index: i, score } = index.neighbours(2, 1)?[0];
//! assert_eq!(i, 0);
//! assert!((score - std::f32::consts::FRAC_1_SQRT_2).abs() < 1e-6);
//! # Ok(())
//! # }
//! ```

mod cache;
mod error;
mod hash;
mod index;
mod store;

pub use cache::EmbeddingCache;
pub use error::{Result, RetrievalError};
pub use hash::{fnv1a64, Fnv64, FNV64_OFFSET, FNV64_PRIME};
pub use index::{CosineIndex, Hit};

/// The `ndarray` this crate's API takes ([`CosineIndex::new`] reads an
/// `ArrayView2<f32>`), so users need not pin a matching version.
pub use ndarray;
