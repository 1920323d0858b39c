//! Diffusion gradients beside an image (FSL `STEM.bval` + `STEM.bvec`) and the
//! sidecars that follow its views.
//!
//! [`Gradients::parse`] reads the pair for an image of `n_vols` volumes (the
//! rules are in [`parse`](Gradients::parse)); every number keeps its text as
//! written. From it come the `.bval`/`.bvec` files of any selection of volumes
//! ([`Gradients::bval_file`], [`Gradients::bvec_file`]), the volumes that
//! MRtrix3's `dwiextract -bzero` selects ([`Gradients::b0`]) and the shells as
//! MRtrix3 finds them, each with the volumes `dwiextract -shells B` selects for
//! its name ([`Gradients::shells`]).
//!
//! The MRtrix3 rules are those of MRtrix3 3.0.3 (`core/dwi/gradient.cpp`,
//! `core/dwi/shells.cpp`, `cmd/dwiextract.cpp`), the version that Debian
//! ships and that `tests/core_dwi.rs` runs against.

mod files;
mod mrtrix;
mod parse;
mod shells;
#[cfg(test)]
mod tests;

pub use parse::{Problem, SidecarError, SidecarKind};
pub use shells::Shell;

/// One number of a sidecar: its token exactly as written, and its value.
#[derive(Clone, Debug)]
pub struct Number {
    text: Box<str>,
    value: f64,
}

impl Number {
    /// The token as it stands in the source file (`1.0e3`, `NaN`, `-0`).
    pub fn text(&self) -> &str {
        &self.text
    }

    /// Its value, as MRtrix3 and FSL read it (correctly rounded to a double).
    pub fn value(&self) -> f64 {
        self.value
    }
}

/// The b-value and gradient direction of every volume of one image.
#[derive(Clone, Debug)]
pub struct Gradients {
    /// One b-value per volume, in volume order.
    bvals: Vec<Number>,
    /// One (x, y, z) direction per volume, in volume order.
    bvecs: Vec<[Number; 3]>,
}

impl Gradients {
    /// The number of volumes (entries in each file).
    pub fn len(&self) -> u64 {
        self.bvals.len() as u64
    }

    /// Whether there are no volumes (never, for a parsed pair).
    pub fn is_empty(&self) -> bool {
        self.bvals.is_empty()
    }

    /// The b-value of volume `k`, as written.
    pub fn bval(&self, k: u64) -> Option<&Number> {
        self.bvals.get(usize::try_from(k).ok()?)
    }

    /// The direction of volume `k` (x, y, z), as written.
    pub fn bvec(&self, k: u64) -> Option<&[Number; 3]> {
        self.bvecs.get(usize::try_from(k).ok()?)
    }
}
