//! Open files: opening (read-only by refusal), reading, writing the one
//! writable control file, and closing.
//!
//! A view file is opened on the image version it was looked up on, with its
//! header built once; mirrored files read their source; `.nifuse/stats` and
//! sidecars are fixed at open.

use std::path::Path;
use std::sync::Arc;

use super::handle::{Handle, ViewHandle};
use super::image::Image;
use super::read;
use super::tree::{CONTROL_DIR, Control, Node};
use super::{Entry, Fs, Opened};
use crate::error::{Error, Result};
use crate::source::{self, pread_full};
use crate::view::header::view_header;
use crate::view::shape::Shape;

/// How many source volumes of a view are announced to the byte source at open.
const HINTED_VOLUMES: u64 = 16;

/// Tells the source which runs of bytes an uncompressed view will read (a
/// remote one fetches each whole when its first byte is read): the first
/// volumes it takes; for the whole image, its whole data. Slices read strided
/// runs and announce nothing.
fn hint_source(image: &Image, shape: &Shape) {
    let layout = &image.layout;
    let Ok(src) = image.data.pin() else { return };
    if image.data.is_gzip() || shape.plane.is_some() {
        return;
    }
    if shape.view.selection == crate::view::Selection::Whole {
        src.will_need(layout.data_offset(), layout.data_bytes());
        return;
    }
    for i in 0..shape.volumes.count().min(HINTED_VOLUMES) {
        if let Some(r) = shape
            .volumes
            .get(i)
            .and_then(|k| layout.vol_source_range(k))
        {
            src.will_need(r.start, r.end - r.start);
        }
    }
}

impl Fs {
    /// Closes handle `fh` (file or directory).
    pub fn release(&self, fh: u64) {
        if let Some(handle) = self.handles.remove(fh)
            && let Handle::View(v) = &*handle
        {
            v.image.data.save_index(false);
        }
    }

    /// Opens file `ino` with open(2) `flags`. Anything but read-only access
    /// is refused with EROFS, except writing to `.nifuse/drop_caches`.
    pub fn open(&self, ino: u64, flags: i32) -> Result<Opened> {
        let node = self.node(ino)?;
        let writing = flags & libc::O_ACCMODE != libc::O_RDONLY || flags & libc::O_TRUNC != 0;
        let plain = |fh| Opened {
            fh,
            direct_io: false,
            keep_cache: false,
        };
        if writing && node != Node::ControlFile(Control::DropCaches) {
            return Err(Error::ReadOnly(format!("inode {ino}")));
        }
        match node {
            Node::Mirror(rel) => {
                let meta = self.lstat(&rel)?;
                match meta.kind {
                    source::Kind::Dir => return Err(Error::IsDir(rel.display().to_string())),
                    source::Kind::File => {}
                    _ => {
                        return Err(Error::Invalid(format!(
                            "{}: not a regular file",
                            rel.display()
                        )));
                    }
                }
                let file = self.store.open(&rel)?;
                Ok(plain(self.handles.insert(Handle::File(file))))
            }
            Node::View(rel, v, s, view) => {
                let (image, shape) = self.view_shape(&rel, v, s, view)?;
                // Open the source now, so this handle reads the version it opened.
                if let Err(e) = image.data.pin() {
                    // The file changed since it was listed: a newer version
                    // makes the kernel look the name up again (ESTALE); a file
                    // still being rewritten in place is EIO.
                    self.images.expire(&rel);
                    return match self.image_at(&rel) {
                        Some(now) if now.version != v => {
                            Err(Error::Stale(rel.display().to_string()))
                        }
                        _ => Err(e),
                    };
                }
                hint_source(&image, &shape);
                let header = view_header(&image.layout, &shape).map_err(|e| {
                    Error::Data(format!(
                        "{}: cannot make the header of {view:?}: {e}",
                        image.name
                    ))
                })?;
                // An inode always shows one version of the source, so the
                // kernel may keep its cached pages across opens.
                let fh = self
                    .handles
                    .insert(Handle::View(ViewHandle::new(image, shape, header)));
                Ok(Opened {
                    fh,
                    direct_io: false,
                    keep_cache: true,
                })
            }
            Node::Sidecar(rel, v, s, view, kind) => {
                let image = self.image_version(&rel, v)?;
                let bytes = self.sidecar_bytes(&rel, &image, s, view, kind)?;
                let fh = self.handles.insert(Handle::Bytes(bytes));
                Ok(Opened {
                    fh,
                    direct_io: false,
                    keep_cache: true,
                })
            }
            Node::ControlFile(Control::Stats) => {
                let fh = self
                    .handles
                    .insert(Handle::Bytes(self.stats_json().into_bytes()));
                Ok(Opened {
                    fh,
                    direct_io: true,
                    keep_cache: false,
                })
            }
            Node::ControlFile(Control::DropCaches) => {
                let fh = self.handles.insert(Handle::DropCaches);
                Ok(Opened {
                    fh,
                    direct_io: true,
                    keep_cache: false,
                })
            }
            Node::ImageDir(rel, ..) => Err(Error::IsDir(format!("{}.d", rel.display()))),
            Node::ControlDir => Err(Error::IsDir(CONTROL_DIR.into())),
        }
    }

    /// Reads up to `size` bytes at `offset` from open file `fh`, handing
    /// them to `sink` (one call on success; the slice may borrow a reusable
    /// per-thread buffer or the decoded volume, so nothing is allocated).
    pub fn read_with(
        &self,
        fh: u64,
        offset: u64,
        size: u32,
        sink: &mut dyn FnMut(&[u8]),
    ) -> Result<()> {
        match &*self.handles.get(fh)? {
            Handle::File(file) => read::with_buffer(size as usize, |buf| {
                let n = pread_full(file.as_ref(), offset, buf)
                    .map_err(|e| Error::io(format!("reading handle {fh}"), e))?;
                sink(&buf[..n]);
                Ok(())
            }),
            Handle::View(v) => {
                let current = self
                    .images
                    .known(Path::new(&v.image.name))
                    .is_some_and(|img| Arc::ptr_eq(&img, &v.image));
                read::read_view(&self.caches, v, current, offset, size, sink)
            }
            Handle::Bytes(bytes) => {
                sink(slice_at(bytes, offset, size));
                Ok(())
            }
            Handle::DropCaches => {
                sink(&[]);
                Ok(())
            }
            Handle::Dir(_) => Err(Error::IsDir(format!("handle {fh}"))),
        }
    }

    /// [`Fs::read_with`] into a new vector.
    pub fn read(&self, fh: u64, offset: u64, size: u32) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        self.read_with(fh, offset, size, &mut |b| out.extend_from_slice(b))?;
        Ok(out)
    }

    /// `setattr`: only truncating `.nifuse/drop_caches` (as `echo 1 >` does) is
    /// accepted, and changes nothing; everything else is EROFS.
    pub fn setattr(&self, ino: u64, size: Option<u64>) -> Result<Entry> {
        let node = self.node(ino)?;
        if node == Node::ControlFile(Control::DropCaches) && size.is_none_or(|s| s == 0) {
            return self.entry(ino, &node);
        }
        Err(Error::ReadOnly(format!("inode {ino}")))
    }

    /// Writes to open file `fh`: only `.nifuse/drop_caches` accepts writes.
    pub fn write(&self, fh: u64, data: &[u8]) -> Result<u32> {
        match &*self.handles.get(fh)? {
            Handle::DropCaches => {
                let text = String::from_utf8_lossy(data);
                match text.trim() {
                    "1" | "3" => {
                        let n = self.drop_caches();
                        log::info!("drop_caches: dropped {n} image caches");
                        Ok(u32::try_from(data.len()).unwrap_or(u32::MAX))
                    }
                    other => Err(Error::Invalid(format!(
                        "drop_caches: write 1 to drop every image cache, not {other:?}"
                    ))),
                }
            }
            _ => Err(Error::ReadOnly(format!("handle {fh}"))),
        }
    }
}

/// `bytes[offset..offset+size]`, clamped to the end.
fn slice_at(bytes: &[u8], offset: u64, size: u32) -> &[u8] {
    let start = usize::try_from(offset)
        .unwrap_or(usize::MAX)
        .min(bytes.len());
    let end = start.saturating_add(size as usize).min(bytes.len());
    &bytes[start..end]
}
