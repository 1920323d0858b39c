//! Unit tests of the diffusion sidecars: parsing, the files of selections,
//! MRtrix3's clustering and selection, and the shells' names. The comparison
//! with the real MRtrix3 binaries is in `tests/core_dwi.rs`.

mod files;
mod mrtrix;
mod parse;
mod shells;

use super::{Gradients, SidecarError};

/// Parses a pair given as text.
fn parse(bval: &str, bvec: &str, n: u64) -> Result<Gradients, SidecarError> {
    Gradients::parse(bval.as_bytes(), bvec.as_bytes(), n)
}

/// A pair that must parse.
fn grads(bval: &str, bvec: &str, n: u64) -> Gradients {
    parse(bval, bvec, n).unwrap()
}

/// Unit vectors along x for `bvals` (a zero vector where b is 0), as a pair.
fn along_x(bvals: &[f64]) -> Gradients {
    let row =
        |f: &dyn Fn(f64) -> &'static str| bvals.iter().map(|&b| f(b)).collect::<Vec<_>>().join(" ");
    let b: Vec<String> = bvals.iter().map(|b| b.to_string()).collect();
    let x = row(&|b| if b == 0.0 { "0" } else { "1" });
    let zeros = row(&|_| "0");
    grads(
        &b.join(" "),
        &format!("{x}\n{zeros}\n{zeros}\n"),
        bvals.len() as u64,
    )
}

/// Deterministic pseudo-random numbers for generated schemes: the n-th is
/// the std hash of (seed, n), so no generator state is written here.
struct Rng {
    seed: u64,
    n: u64,
}

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng { seed, n: 0 }
    }

    fn next(&mut self) -> u64 {
        use std::hash::{DefaultHasher, Hash, Hasher};
        let mut h = DefaultHasher::new();
        (self.seed, self.n).hash(&mut h);
        self.n += 1;
        h.finish()
    }

    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in [0, n).
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}
