//! NIfTI header extensions: the 4 extender bytes after the header and the
//! `esize`/`ecode`/data records that follow when `extender[0] != 0`.
//!
//! Each extension is kept raw (all `esize` bytes) so that a volume header can copy
//! the ones it keeps byte for byte.

use super::endian::i32_at;
use super::error::FormatError;

/// `ecode` of AFNI's extension, which describes the whole 4D dataset.
pub const ECODE_AFNI: i32 = 4;

/// One header extension.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Extension {
    /// `ecode`.
    pub code: i32,
    /// The whole extension, `esize` bytes including `esize` and `ecode`, untouched.
    pub raw: Vec<u8>,
}

/// Parse the extensions in `bytes_after_header`: the bytes from the end of the header
/// (the extender) to `vox_offset` for a single file, or to the end of a `.hdr` file.
///
/// Fewer than 4 bytes, or `extender[0] == 0`, mean no extensions (nibabel is as
/// lenient). Extensions then run to the end of the bytes; one whose `esize` is not a
/// positive multiple of 16 or runs past the end is an error.
pub fn parse_extensions(
    bytes_after_header: &[u8],
    big_endian: bool,
) -> Result<Vec<Extension>, FormatError> {
    let mut out = Vec::new();
    match bytes_after_header.first() {
        Some(&flag) if flag != 0 && bytes_after_header.len() >= 4 => {}
        _ => return Ok(out),
    }
    let mut at = 4;
    while at < bytes_after_header.len() {
        let left = bytes_after_header.len() - at;
        let past_end = |need| FormatError::ExtensionPastEnd { at, need, left };
        if left < 8 {
            return Err(past_end(8));
        }
        let esize = i32_at(bytes_after_header, at, big_endian).unwrap_or_default();
        if esize == 0 && bytes_after_header[at..].iter().all(|&b| b == 0) {
            // Zero padding up to vox_offset after the last extension.
            break;
        }
        let size = usize::try_from(esize)
            .ok()
            .filter(|s| *s >= 16 && s % 16 == 0)
            .ok_or(FormatError::ExtensionSize { at, esize })?;
        let raw = at
            .checked_add(size)
            .and_then(|end| bytes_after_header.get(at..end))
            .ok_or(past_end(size))?;
        let code = i32_at(raw, 4, big_endian).unwrap_or_default();
        out.push(Extension {
            code,
            raw: raw.to_vec(),
        });
        at += size;
    }
    Ok(out)
}
