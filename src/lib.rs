//! nifuse: every NIfTI image in a directory, shown as a directory of 3D volume files.
//!
//! The data path reads in one direction:
//!
//! ```text
//! fuse.rs (kernel requests) → fs/ (operations in plain types: tree, images, listings, reads, xattrs)
//!   → nifti/ (header bytes, volume layout)
//!   → cache.rs (the image's array in memory) or source/ (bytes: a local file, the gzip index over it)
//! ```
//!
//! Everything below `fuse.rs` knows nothing of FUSE and is tested without
//! mounting; `cli/` is the command-line side (mount, info, index).

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
