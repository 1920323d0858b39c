//! The read path of volume files: synthesized header bytes, then voxels from
//! the image's cache, the open file's decoded volume (gzip), or the source.
//!
//! Nothing on this path allocates per request: bytes are assembled in a
//! per-thread buffer that grows to the largest request once.

use std::cell::RefCell;
use std::path::Path;

use super::handle::{DECODE_WHOLE_LIMIT, VolumeHandle};
use crate::cache::Caches;
use crate::error::{Error, Result};

thread_local! {
    static BUFFER: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// Runs `f` on a per-thread buffer of exactly `len` bytes (contents unspecified).
pub fn with_buffer<R>(len: usize, f: impl FnOnce(&mut [u8]) -> R) -> R {
    BUFFER.with(|cell| match cell.try_borrow_mut() {
        Ok(mut buf) => {
            if buf.len() < len {
                buf.resize(len, 0);
            }
            f(&mut buf[..len])
        }
        // Re-entered (never on the request path): use a one-off buffer.
        Err(_) => f(&mut vec![0u8; len]),
    })
}

/// Bytes `offset..offset+size` of volume file `v`: its synthesized header
/// followed by the volume's voxels. `current` says whether `v` was opened on
/// the image version the cache belongs to (an older handle never touches it).
pub fn read_volume(
    caches: &Caches,
    v: &VolumeHandle,
    current: bool,
    offset: u64,
    size: u32,
    sink: &mut dyn FnMut(&[u8]),
) -> Result<()> {
    let layout = &v.image.layout;
    let plan = layout.plan_read(v.k, offset, size);
    let header = layout
        .vol_header()
        .get(plan.header.clone())
        .unwrap_or_default();
    let data_len = usize::try_from(plan.data.end.saturating_sub(plan.data.start))
        .map_err(|_| Error::Invalid("read too large".into()))?;
    let rel = Path::new(&v.image.name);
    let array_offset = plan.data.start.saturating_sub(layout.data_offset());
    with_buffer(header.len() + data_len, |buf| {
        buf[..header.len()].copy_from_slice(header);
        let data = &mut buf[header.len()..];
        if data_len == 0 || (current && caches.read(rel, &v.image, array_offset, data)) {
            sink(buf);
            return Ok(());
        }
        if v.image.data.is_gzip() && layout.vol_bytes() <= DECODE_WHOLE_LIMIT {
            let vol_start = layout.vol_source_range(v.k).map_or(0, |r| r.start);
            let decoded = v.decoded()?;
            let from = usize::try_from(plan.data.start - vol_start).unwrap_or(usize::MAX);
            let bytes = decoded
                .get(from..from.saturating_add(data_len))
                .ok_or_else(|| {
                    Error::Data(format!(
                        "{}: volume {} shorter than its header says",
                        v.image.name, v.k
                    ))
                })?;
            data.copy_from_slice(bytes);
        } else {
            v.image.data.read_exact_at(plan.data.start, data)?;
        }
        sink(buf);
        Ok(())
    })
}
