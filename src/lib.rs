//! nifuse: every NIfTI image in a directory, shown as a directory of 3D volume files.
//!
//! The data path reads in one direction:
//!
//! ```text
//! fuse.rs (kernel requests) → fs.rs (operations, plain types) → tree.rs (which node)
//!   → registry.rs / image.rs (which image) → nifti/ (volume layout, header bytes)
//!   → cache.rs (the image's array in memory) or source.rs / gzindex/ (bytes on disk)
//! ```
//!
//! Everything below `fuse.rs` knows nothing of FUSE and is tested without
//! mounting; `mount.rs` and `cli.rs` are the command-line side.

pub mod attr;
pub mod cache;
pub mod cli;
pub mod error;
pub mod fs;
pub mod fuse;
pub mod gzindex;
pub mod handle;
pub mod image;
pub mod index_cmd;
pub mod info;
pub mod listing;
pub mod logging;
pub mod mount;
pub mod nifti;
pub mod read;
pub mod registry;
pub mod size;
pub mod source;
pub mod stats;
pub mod tree;
pub mod tune;
pub mod xattr;

pub use error::{Error, Result};
