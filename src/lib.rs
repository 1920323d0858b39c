//! nifuse: every NIfTI image of a directory or an S3 bucket, shown as a
//! directory of plain files: volumes, the whole image, ranges, float views,
//! slices and diffusion sidecars, each made on read from the source bytes.
//!
//! The data path reads in one direction:
//!
//! ```text
//! fuse/ (kernel requests) → fs/ (operations in plain types: tree, images, listings, reads, xattrs)
//!   → view/ (which bytes a file holds: names, headers, gathered runs, float conversion, sidecars)
//!   → cache.rs (the image's array in memory)
//!     or source/ (bytes behind one seam: a local file or an S3 object, the gzip index over either)
//! ```
//!
//! `nifti/` is the format (header bytes, field tables, layout). Everything
//! below `fuse/` knows nothing of FUSE and is tested without mounting;
//! `cli/` is the command-line side (mount, info, index).

pub mod cache;
pub mod cli;
pub mod error;
pub mod fs;
pub mod fuse;
pub mod nifti;
pub mod size;
pub mod source;
pub mod view;

pub use error::{Error, Result};
