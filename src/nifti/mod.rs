//! The NIfTI format layer: parse NIfTI-1/NIfTI-2 headers and extensions (either byte
//! order), validate them, and describe how a 4D+ image splits into 3D volume files.
//!
//! Nothing here does I/O: callers hand in the first bytes of a file and get back an
//! [`ImageLayout`] that says which bytes make each `vol_K.nii`.

pub mod datatype;
mod endian;
mod error;
mod extension;
mod fields;
mod header;
mod layout;
#[cfg(test)]
mod tests;

pub use datatype::DataType;
pub use error::FormatError;
pub use extension::{ECODE_AFNI, Extension, parse_extensions};
pub use fields::{Field, FieldTable, Kind, NIFTI1, NIFTI2};
pub use header::{Header, Version};
pub use layout::{INTENT_TIME_SERIES, ImageLayout, MAX_VOX_OFFSET, ReadPlan, build_header};
