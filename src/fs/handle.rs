//! Open files and directories, by the handle number given to the kernel.
//!
//! A handle pins what was opened: a directory's listing as it was at
//! `opendir` (so paging through it is consistent), a mirrored file's
//! descriptor, or a view's image version (so a source rewritten while a
//! view is open never mixes old and new bytes within the open file).

use std::collections::HashMap;
use std::ffi::OsString;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use super::attr::Kind;
use super::image::Image;
use crate::error::{Error, Result};
use crate::source::ByteSource;
use crate::view::shape::Shape;

/// The largest compressed-source volume an open handle decodes and keeps whole.
pub const DECODE_WHOLE_LIMIT: u64 = 256 << 20;

/// One entry of a directory listing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DirEntry {
    /// Inode number.
    pub ino: u64,
    /// Name within the directory.
    pub name: OsString,
    /// Entry kind.
    pub kind: Kind,
}

/// An open view file: the image version it was opened on, the view resolved
/// against it, its header bytes, and for compressed sources the last source
/// volumes decoded, kept so that the kernel's many small reads of one volume
/// decode it once (volumes up to [`DECODE_WHOLE_LIMIT`]; larger ones, and
/// the planes of slice views, are decoded per request through the index).
pub struct ViewHandle {
    /// The image, as it was when the view was opened.
    pub image: Arc<Image>,
    /// The view.
    pub shape: Shape,
    /// The header bytes the file starts with.
    pub header: Vec<u8>,
    decoded: Mutex<Vec<(u64, Arc<Vec<u8>>)>>,
}

/// How many decoded source volumes an open view keeps.
const DECODED_KEPT: usize = 2;

impl ViewHandle {
    /// A handle on `shape` of `image`, whose file starts with `header`.
    pub fn new(image: Arc<Image>, shape: Shape, header: Vec<u8>) -> ViewHandle {
        ViewHandle {
            image,
            shape,
            header,
            decoded: Mutex::new(Vec::new()),
        }
    }

    /// The size of the file.
    pub fn file_size(&self) -> u64 {
        (self.header.len() as u64).saturating_add(self.shape.data_len())
    }

    /// The decoded bytes of source volume `k`, decoding them on first use.
    pub fn decoded(&self, k: u64) -> Result<Arc<Vec<u8>>> {
        let mut kept = self.decoded.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(i) = kept.iter().position(|(v, _)| *v == k) {
            let hit = kept.remove(i);
            let bytes = hit.1.clone();
            kept.push(hit);
            return Ok(bytes);
        }
        let range = self
            .image
            .layout
            .vol_source_range(k)
            .ok_or_else(|| Error::NotFound(format!("{}: volume {k}", self.image.name)))?;
        let too_big = || {
            Error::Data(format!(
                "{}: volume {k} is too large to hold in memory",
                self.image.name
            ))
        };
        let len = usize::try_from(range.end - range.start).map_err(|_| too_big())?;
        let mut buf = Vec::new();
        buf.try_reserve_exact(len).map_err(|_| too_big())?;
        buf.resize(len, 0);
        self.image.data.read_exact_at(range.start, &mut buf)?;
        let bytes = Arc::new(buf);
        if kept.len() >= DECODED_KEPT {
            kept.remove(0);
        }
        kept.push((k, bytes.clone()));
        Ok(bytes)
    }
}

/// What a handle refers to.
pub enum Handle {
    /// An open directory and its listing.
    Dir(Vec<DirEntry>),
    /// A mirrored source file.
    File(Arc<dyn ByteSource>),
    /// A view file.
    View(ViewHandle),
    /// A file whose contents were fixed at open (`.nifuse/stats`, sidecars).
    Bytes(Vec<u8>),
    /// `.nifuse/drop_caches`, open for writing.
    DropCaches,
}

/// The table of open handles.
pub struct Handles {
    next: AtomicU64,
    map: Mutex<HashMap<u64, Arc<Handle>>>,
}

impl Default for Handles {
    fn default() -> Self {
        Handles {
            next: AtomicU64::new(1),
            map: Mutex::new(HashMap::new()),
        }
    }
}

impl Handles {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Arc<Handle>>> {
        self.map.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Registers `handle` and returns its number.
    pub fn insert(&self, handle: Handle) -> u64 {
        let fh = self.next.fetch_add(1, Ordering::Relaxed);
        self.lock().insert(fh, Arc::new(handle));
        fh
    }

    /// The handle numbered `fh`.
    pub fn get(&self, fh: u64) -> Result<Arc<Handle>> {
        self.lock().get(&fh).cloned().ok_or(Error::BadHandle(fh))
    }

    /// Forgets handle `fh`, returning it.
    pub fn remove(&self, fh: u64) -> Option<Arc<Handle>> {
        self.lock().remove(&fh)
    }

    /// Whether any open view handle belongs to an image for which `pred` holds.
    pub fn any_view(&self, pred: impl Fn(&ViewHandle) -> bool) -> bool {
        self.lock()
            .values()
            .any(|h| matches!(&**h, Handle::View(v) if pred(v)))
    }
}
