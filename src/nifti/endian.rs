//! Fixed-width numbers at a byte offset, in either byte order.
//!
//! Values travel as little-endian arrays (`from_le_bytes` / `to_le_bytes`); these two
//! helpers flip them when the file is big-endian. Out-of-range offsets give `None` or
//! write nothing: callers check lengths first, this layer only refuses to panic.

/// The `N` bytes at `at`, reordered to little-endian, or `None` if they are not all there.
pub(crate) fn read_le<const N: usize>(
    bytes: &[u8],
    at: usize,
    big_endian: bool,
) -> Option<[u8; N]> {
    let end = at.checked_add(N)?;
    let mut out: [u8; N] = bytes.get(at..end)?.try_into().ok()?;
    if big_endian {
        out.reverse();
    }
    Some(out)
}

/// Store the little-endian value `le` at `at` in the given byte order; writes nothing
/// if the bytes are not all there.
pub(crate) fn write_le<const N: usize>(
    bytes: &mut [u8],
    at: usize,
    mut le: [u8; N],
    big_endian: bool,
) {
    if big_endian {
        le.reverse();
    }
    if let Some(dst) = at.checked_add(N).and_then(|end| bytes.get_mut(at..end)) {
        dst.copy_from_slice(&le);
    }
}

/// The `i32` at `at` in the given byte order.
pub(crate) fn i32_at(bytes: &[u8], at: usize, big_endian: bool) -> Option<i32> {
    read_le(bytes, at, big_endian).map(i32::from_le_bytes)
}
