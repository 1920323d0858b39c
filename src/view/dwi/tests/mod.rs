//! Unit tests of the diffusion sidecars: parsing, the files of selections,
//! MRtrix3's clustering and selection, and the shells' names. The comparison
//! with the real MRtrix3 binaries is in `tests/core_dwi.rs`.

mod files;
mod parse;

use super::{Gradients, SidecarError};

/// Parses a pair given as text.
fn parse(bval: &str, bvec: &str, n: u64) -> Result<Gradients, SidecarError> {
    Gradients::parse(bval.as_bytes(), bvec.as_bytes(), n)
}

/// A pair that must parse.
fn grads(bval: &str, bvec: &str, n: u64) -> Gradients {
    parse(bval, bvec, n).unwrap()
}
