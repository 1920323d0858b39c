//! The read path of view files: synthesized header bytes, then voxels from
//! the image's cache, the open file's decoded volumes (gzip), or the source,
//! gathered into the view's order by [`crate::view::gather`].
//!
//! Nothing on this path allocates per request: bytes are assembled in a
//! per-thread buffer that grows to the largest request once.

use std::cell::RefCell;
use std::path::Path;

use super::handle::{DECODE_WHOLE_LIMIT, ViewHandle};
use crate::cache::Caches;
use crate::error::{Error, Result};
use crate::view::gather;

thread_local! {
    static BUFFER: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// Runs `f` on a per-thread buffer of exactly `len` bytes (contents unspecified).
pub fn with_buffer<R>(len: usize, f: impl FnOnce(&mut [u8]) -> R) -> R {
    gather::scratch(&BUFFER, len, f)
}

/// Bytes `offset..offset+size` of view file `v`: its header bytes, then
/// its data, gathered from the image's cache, the open file's decoded
/// volumes (gzip) or the source. `current` says whether `v` was opened on the
/// image version the cache belongs to (an older handle never touches it).
pub fn read_view(
    caches: &Caches,
    v: &ViewHandle,
    current: bool,
    offset: u64,
    size: u32,
    sink: &mut dyn FnMut(&[u8]),
) -> Result<()> {
    let image = &v.image;
    let layout = &image.layout;
    let end = offset.saturating_add(u64::from(size)).min(v.file_size());
    let start = offset.min(end);
    let hlen = v.header.len() as u64;
    let header = v
        .header
        .get(
            usize::try_from(start.min(hlen)).unwrap_or(0)
                ..usize::try_from(end.min(hlen)).unwrap_or(0),
        )
        .unwrap_or_default();
    let data_start = start.max(hlen) - hlen;
    let data_len = usize::try_from(end.max(hlen) - hlen - data_start)
        .map_err(|_| Error::Invalid("read too large".into()))?;
    let rel = Path::new(&image.name);
    let vol_bytes = layout.vol_bytes();
    let whole_volumes =
        image.data.is_gzip() && vol_bytes <= DECODE_WHOLE_LIMIT && v.shape.plane.is_none();
    let mut fetch = |at: u64, buf: &mut [u8]| -> Result<()> {
        if current && caches.read(rel, image, at, buf) {
            return Ok(());
        }
        // Damage found after this volume was decoded (the first pass goes on in
        // the background) makes its kept copy unservable: the source says why.
        let end = layout.data_offset() + at + buf.len() as u64;
        let intact = image.data.intact_before().is_none_or(|limit| end <= limit);
        if whole_volumes && vol_bytes > 0 && intact {
            let k = at / vol_bytes;
            let decoded = v.decoded(k)?;
            let from = usize::try_from(at - k * vol_bytes).unwrap_or(usize::MAX);
            let bytes = decoded
                .get(from..from.saturating_add(buf.len()))
                .ok_or_else(|| {
                    Error::Data(format!(
                        "{}: volume {k} shorter than its header says",
                        image.name
                    ))
                })?;
            buf.copy_from_slice(bytes);
            return Ok(());
        }
        image.data.read_exact_at(layout.data_offset() + at, buf)
    };
    with_buffer(header.len() + data_len, |buf| {
        buf[..header.len()].copy_from_slice(header);
        let data = &mut buf[header.len()..];
        if !data.is_empty() {
            gather::read_data(
                &v.shape,
                vol_bytes,
                layout.vol_dims(),
                data_start,
                data,
                &mut fetch,
            )?;
        }
        sink(buf);
        Ok(())
    })
}
