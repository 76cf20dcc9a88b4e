//! What this CPU offers for bf16 matrix products, so that callers can
//! refuse a bf16 setting that would make libtorch *slower*.
//!
//! libtorch sends a bf16 matrix product on the CPU to oneDNN only when the
//! CPU has AVX-512 (F, BW, VL, DQ) or, on recent Intel CPUs, AVX-NE-CONVERT
//! (part of oneDNN's AVX2-VNNI-2 level); otherwise it runs a generic loop
//! that converts every element. On a 2-core AMD EPYC with
//! AVX2 only, one t5-mini training step (`examples/bench_t5.rs`, batch 64)
//! took 70.7 s with bf16 products against 2.8 s in `f32`, and PyTorch's
//! own bf16 autocast 63.1 s against 2.6 s (`docs/benchmarks.md`). With
//! AVX512-BF16 instructions the same step is 2.9x *faster* than `f32`.
//!
//! Pure Rust (no libtorch): on Linux the flags come from `/proc/cpuinfo`;
//! elsewhere on x86-64 from `is_x86_feature_detected!` (which cannot see
//! the bf16 instructions with this crate's minimum Rust, so the answer is
//! at best [`Bf16Support::Converted`]).
//!
//! ```
//! use graft_lm::cpu::{bf16_support, Bf16Support};
//! let support = bf16_support();
//! if support == Bf16Support::Generic {
//!     eprintln!("bf16 would be slow here: {}", support.describe());
//! }
//! ```

use std::sync::OnceLock;

/// How a CPU runs libtorch's bf16 matrix products, best first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Bf16Support {
    /// bf16 dot-product instructions (x86 AVX512-BF16 or AMX-BF16, Arm
    /// BF16): bf16 products are faster than `f32` (measured 1.5-2.9x per
    /// training step of T5 and SmolLM2).
    Native,
    /// oneDNN runs bf16 products by converting to `f32` in vector
    /// registers (AVX-512 or AVX-NE-CONVERT without bf16 dot products):
    /// not measured here, and not expected to beat `f32`.
    Converted,
    /// Neither: libtorch's generic loop, far slower than `f32` (measured
    /// 25x per t5-mini training step on an AVX2-only AMD EPYC).
    Generic,
    /// The flags could not be read (not Linux, not x86-64).
    Unknown,
}

impl Bf16Support {
    /// Classifies a CPU from its feature flags as `/proc/cpuinfo` spells
    /// them (`avx512_bf16`, `amx_bf16`, `avx512f`, ... on x86; `bf16` on
    /// Arm's `Features` line).
    ///
    /// ```
    /// use graft_lm::cpu::Bf16Support;
    /// assert_eq!(Bf16Support::from_flags(["avx2", "fma"]), Bf16Support::Generic);
    /// assert_eq!(Bf16Support::from_flags(["avx512f", "avx512_bf16"]), Bf16Support::Native);
    /// ```
    pub fn from_flags<'a>(flags: impl IntoIterator<Item = &'a str>) -> Self {
        let flags: Vec<&str> = flags.into_iter().collect();
        let has = |f: &str| flags.contains(&f);
        if has("avx512_bf16") || has("amx_bf16") || has("bf16") {
            Self::Native
        } else if ["avx512f", "avx512bw", "avx512vl", "avx512dq"]
            .iter()
            .all(|f| has(f))
            || has("avx_ne_convert")
        {
            Self::Converted
        } else {
            Self::Generic
        }
    }

    /// Classifies a CPU from the text of `/proc/cpuinfo`: the first
    /// `flags` (x86) or `Features` (Arm) line; [`Bf16Support::Unknown`]
    /// without one.
    pub fn from_cpuinfo(text: &str) -> Self {
        text.lines()
            .find_map(|line| {
                let (key, value) = line.split_once(':')?;
                matches!(key.trim(), "flags" | "Features").then_some(value)
            })
            .map_or(Self::Unknown, |value| {
                Self::from_flags(value.split_whitespace())
            })
    }

    /// One line for a user: what bf16 products cost on this CPU.
    pub fn describe(self) -> &'static str {
        match self {
            Self::Native => "this CPU has bf16 instructions (AVX512-BF16, AMX-BF16 or Arm BF16): bf16 products are faster than f32",
            Self::Converted => "this CPU has AVX-512 but no bf16 instructions: bf16 products are not expected to beat f32 (not measured)",
            Self::Generic => "this CPU has neither AVX-512 nor bf16 instructions: libtorch runs bf16 products in a generic loop, measured 25x slower than f32 per T5 training step",
            Self::Unknown => "this CPU's features could not be read",
        }
    }
}

/// This machine's [`Bf16Support`], detected once per process.
pub fn bf16_support() -> Bf16Support {
    static SUPPORT: OnceLock<Bf16Support> = OnceLock::new();
    *SUPPORT.get_or_init(detect)
}

fn detect() -> Bf16Support {
    if cfg!(target_os = "linux") {
        if let Ok(text) = std::fs::read_to_string("/proc/cpuinfo") {
            let found = Bf16Support::from_cpuinfo(&text);
            if found != Bf16Support::Unknown {
                return found;
            }
        }
    }
    detect_x86()
}

#[cfg(target_arch = "x86_64")]
fn detect_x86() -> Bf16Support {
    let avx512 = std::is_x86_feature_detected!("avx512f")
        && std::is_x86_feature_detected!("avx512bw")
        && std::is_x86_feature_detected!("avx512vl")
        && std::is_x86_feature_detected!("avx512dq");
    if avx512 {
        Bf16Support::Converted
    } else {
        Bf16Support::Generic
    }
}

#[cfg(not(target_arch = "x86_64"))]
fn detect_x86() -> Bf16Support {
    Bf16Support::Unknown
}

#[cfg(test)]
mod tests {
    use super::*;

    // First lines of /proc/cpuinfo on the machines this project has run on
    // (trimmed), and an Arm one.
    const EPYC_AVX2: &str = "processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC\n\
        flags\t\t: fpu vme sse2 ssse3 fma sse4_1 sse4_2 avx f16c avx2 bmi2 sha_ni\n\n\
        processor\t: 1\nflags\t\t: fpu avx512_bf16\n";
    const EPYC_BF16: &str = "model name\t: AMD EPYC\n\
        flags\t\t: avx2 avx512f avx512dq avx512bw avx512vl avx512_vnni avx512_bf16\n";
    const XEON_AMX: &str = "model name\t: Intel(R) Xeon(R) Processor\n\
        flags\t\t: avx2 avx512f avx512dq avx512bw avx512vl amx_bf16 amx_tile amx_int8\n";
    const SKYLAKE: &str = "flags\t\t: avx2 avx512f avx512dq avx512cd avx512bw avx512vl\n";
    const ARM: &str = "processor\t: 0\nBogoMIPS\t: 50.00\n\
        Features\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics bf16 i8mm\n";

    #[test]
    fn classifies_the_cpus_we_know() {
        // The first flags line counts, not a later processor's.
        assert_eq!(Bf16Support::from_cpuinfo(EPYC_AVX2), Bf16Support::Generic);
        assert_eq!(Bf16Support::from_cpuinfo(EPYC_BF16), Bf16Support::Native);
        assert_eq!(Bf16Support::from_cpuinfo(XEON_AMX), Bf16Support::Native);
        assert_eq!(Bf16Support::from_cpuinfo(SKYLAKE), Bf16Support::Converted);
        assert_eq!(Bf16Support::from_cpuinfo(ARM), Bf16Support::Native);
        assert_eq!(
            Bf16Support::from_cpuinfo("model name: x\n"),
            Bf16Support::Unknown
        );
        assert_eq!(Bf16Support::from_cpuinfo(""), Bf16Support::Unknown);
    }

    #[test]
    fn avx512_needs_all_four_subsets() {
        let three = ["avx512f", "avx512bw", "avx512vl"];
        assert_eq!(Bf16Support::from_flags(three), Bf16Support::Generic);
        assert_eq!(
            Bf16Support::from_flags(["avx2", "avx_ne_convert"]),
            Bf16Support::Converted
        );
        // Flags are whole words: a prefix is not the flag.
        assert_eq!(
            Bf16Support::from_flags(["avx512_bf16x"]),
            Bf16Support::Generic
        );
    }

    #[test]
    fn detection_is_stable_and_matches_this_machine() {
        let first = bf16_support();
        assert_eq!(first, bf16_support());
        let from_file = std::fs::read_to_string("/proc/cpuinfo")
            .map_or(Bf16Support::Unknown, |text| {
                Bf16Support::from_cpuinfo(&text)
            });
        if from_file != Bf16Support::Unknown {
            assert_eq!(first, from_file);
        }
        assert!(!first.describe().is_empty());
    }
}
