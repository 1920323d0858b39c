//! Open files and directories, by the handle number given to the kernel.
//!
//! A handle pins what was opened: a directory's listing as it was at
//! `opendir` (so paging through it is consistent), a mirrored file's
//! descriptor, or a volume's image version (so a source rewritten while a
//! volume is open never mixes old and new bytes within the open file).

use std::collections::HashMap;
use std::ffi::OsString;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use super::attr::Kind;
use super::image::Image;
use crate::error::{Error, Result};
use crate::source::ByteSource;

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

/// An open volume file: the image version it was opened on, and for
/// compressed sources the decoded volume, kept so that the kernel's many
/// small reads of one volume decode it once (volumes up to
/// [`DECODE_WHOLE_LIMIT`]; larger ones are decoded per request).
pub struct VolumeHandle {
    /// The image, as it was when the volume was opened.
    pub image: Arc<Image>,
    /// The volume number.
    pub k: u64,
    decoded: Mutex<Option<Arc<Vec<u8>>>>,
}

impl VolumeHandle {
    /// A handle on volume `k` of `image`.
    pub fn new(image: Arc<Image>, k: u64) -> VolumeHandle {
        VolumeHandle {
            image,
            k,
            decoded: Mutex::new(None),
        }
    }

    /// The decoded bytes of this volume, decoding them on first use.
    pub fn decoded(&self) -> Result<Arc<Vec<u8>>> {
        let mut slot = self.decoded.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(bytes) = slot.as_ref() {
            return Ok(bytes.clone());
        }
        let range =
            self.image.layout.vol_source_range(self.k).ok_or_else(|| {
                Error::NotFound(format!("{}: volume {}", self.image.name, self.k))
            })?;
        let too_big = || {
            Error::Data(format!(
                "{}: volume {} is too large to hold in memory",
                self.image.name, self.k
            ))
        };
        let len = usize::try_from(range.end - range.start).map_err(|_| too_big())?;
        let mut buf = Vec::new();
        buf.try_reserve_exact(len).map_err(|_| too_big())?;
        buf.resize(len, 0);
        self.image.data.read_exact_at(range.start, &mut buf)?;
        let bytes = Arc::new(buf);
        *slot = Some(bytes.clone());
        Ok(bytes)
    }
}

/// What a handle refers to.
pub enum Handle {
    /// An open directory and its listing.
    Dir(Vec<DirEntry>),
    /// A mirrored source file.
    File(Arc<dyn ByteSource>),
    /// A volume file.
    Volume(VolumeHandle),
    /// `.nifuse/stats`, with its contents fixed at open.
    Stats(Vec<u8>),
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

    /// Whether any open volume handle belongs to an image for which `pred` holds.
    pub fn any_volume(&self, pred: impl Fn(&VolumeHandle) -> bool) -> bool {
        self.lock()
            .values()
            .any(|h| matches!(&**h, Handle::Volume(v) if pred(v)))
    }
}
