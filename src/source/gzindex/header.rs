//! Parsing of gzip member headers (RFC 1952) directly from the file.

use crate::source::ByteSource;

use super::GzError;
use super::reader::read_full_at;

/// Parse a gzip member header at `pos`. Returns the offset of the deflate data,
/// or `None` at the end of the gzip data (end of file, or trailing garbage
/// after at least one member, which gzip also ignores).
pub fn parse_header(
    file: &dyn ByteSource,
    pos: u64,
    file_len: u64,
    members: u64,
    out: u64,
) -> Result<Option<u64>, GzError> {
    let trunc = GzError::Truncated { available: out };
    if pos >= file_len {
        return if members == 0 { Err(trunc) } else { Ok(None) };
    }
    let mut h = [0u8; 10];
    let n = read_full_at(file, pos, &mut h)?;
    let magic_ok = h[0] == 0x1f && (n < 2 || h[1] == 0x8b);
    if !magic_ok || (n < 10 && members > 0) {
        if members == 0 {
            return Err(GzError::Corrupt {
                at_compressed: pos,
                msg: "not a gzip file (bad magic)".into(),
            });
        }
        log::debug!(
            "gzindex: ignoring {} trailing bytes after the gzip data",
            file_len - pos
        );
        return Ok(None);
    }
    if n < 10 {
        return Err(trunc);
    }
    if h[2] != 8 || h[3] & 0xe0 != 0 {
        let msg = format!(
            "unsupported gzip header (method {}, flags {:#04x})",
            h[2], h[3]
        );
        return Err(GzError::Corrupt {
            at_compressed: pos,
            msg,
        });
    }
    let flags = h[3];
    let mut p = pos + 10;
    if flags & 4 != 0 {
        let mut x = [0u8; 2];
        if read_full_at(file, p, &mut x)? < 2 {
            return Err(trunc);
        }
        p += 2 + u64::from(u16::from_le_bytes(x));
    }
    for bit in [8u8, 16] {
        if flags & bit != 0 {
            p = skip_zero_terminated(file, p).map_err(|e| match e {
                GzError::Truncated { .. } => GzError::Truncated { available: out },
                e => e,
            })?;
        }
    }
    if flags & 2 != 0 {
        p += 2;
    }
    if p >= file_len {
        return Err(trunc);
    }
    Ok(Some(p))
}

/// Offset just past the NUL that ends the string at `p`.
fn skip_zero_terminated(file: &dyn ByteSource, mut p: u64) -> Result<u64, GzError> {
    let mut chunk = [0u8; 4096];
    loop {
        let n = read_full_at(file, p, &mut chunk)?;
        if n == 0 {
            return Err(GzError::Truncated { available: 0 });
        }
        if let Some(i) = chunk[..n].iter().position(|&b| b == 0) {
            return Ok(p + i as u64 + 1);
        }
        p += n as u64;
    }
}
