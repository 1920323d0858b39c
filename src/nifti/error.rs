//! Why a file is not a NIfTI image nifuse can slice into volumes.
//!
//! Each variant prints as one line naming the field and the value at fault; the
//! tree layer logs it once and shows the file as a plain file.

use thiserror::Error;

/// A header, extension or layout that nifuse refuses, or a request for more bytes.
#[derive(Clone, Debug, PartialEq, Error)]
pub enum FormatError {
    #[error("file is {got} bytes, shorter than the {need}-byte NIfTI header")]
    Short { got: usize, need: usize },
    #[error("sizeof_hdr is {0}, expected 348 or 540 (not a NIfTI header)")]
    SizeofHdr(i32),
    #[error("magic is {found:?}, expected {expected} (not a NIfTI-{version} header)")]
    Magic {
        version: u8,
        found: String,
        expected: &'static str,
    },
    #[error("dim[0] is {0}: nifuse needs 3 to 7 dimensions")]
    Ndim(i64),
    #[error("dim[{index}] is {value}: every dimension must be at least 1")]
    Dim { index: usize, value: i64 },
    #[error("datatype {0} is not a NIfTI datatype code")]
    UnknownDatatype(i16),
    #[error("bitpix {bitpix} disagrees with datatype {name} ({bits} bits)")]
    Bitpix {
        bitpix: i16,
        name: &'static str,
        bits: u32,
    },
    #[error("vox_offset {0} is not a finite number")]
    VoxOffsetNotFinite(f64),
    #[error("vox_offset {0} is negative")]
    VoxOffsetNegative(f64),
    #[error("vox_offset {0} is not a whole number")]
    VoxOffsetFraction(f64),
    #[error(
        "vox_offset {value} points inside the header: a single-file image needs at least {min}"
    )]
    VoxOffsetTooSmall { value: u64, min: u64 },
    #[error("vox_offset {value} is beyond nifuse's limit of {max} bytes of header and extensions")]
    VoxOffsetTooLarge { value: f64, max: u64 },
    #[error("the image is too large to address: {0} overflows 64 bits")]
    Overflow(&'static str),
    #[error("a volume of {voxels} voxels at {bits} bit(s) each is not a whole number of bytes")]
    VolumeNotByteAligned { voxels: u64, bits: u32 },
    #[error(
        "extension at byte {at} after the header has esize {esize}: must be a positive multiple of 16, at least 16"
    )]
    ExtensionSize { at: usize, esize: i32 },
    #[error(
        "extension at byte {at} after the header needs {need} bytes but only {left} remain before the data"
    )]
    ExtensionPastEnd { at: usize, need: usize, left: usize },
    #[error("need the first {0} bytes of the file to read header and extensions")]
    NeedMore(u64),
}
