//! The filesystem's operations, in plain types: no FUSE in here.
//!
//! [`Fs`] answers lookups, attributes, listings, opens, reads and xattrs for
//! the virtual tree, returning [`Entry`], [`Attr`], [`DirEntry`] and bytes, or
//! an [`Error`] that the adapter turns into an errno. It is tested directly,
//! without mounting. The data path runs one way:
//! `fs → tree (which node) → registry (which image) → layout → source bytes`.

pub mod attr;
pub mod handle;
pub mod image;
mod listing;
pub mod read;
pub mod registry;
pub mod stats;
pub mod tree;
pub mod xattr;

use std::ffi::OsStr;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::cache::{Caches, Mode};
use crate::error::{Error, Result};
use crate::source::local::LocalStore;
use crate::source::{self, Store, pread_full};
use attr::{Attr, Kind};
use handle::{Handle, Handles, VolumeHandle};
use image::Image;
use registry::Registry;
use tree::{CONTROL_DIR, Control, InodeTable, Node};

/// Settings of one mount.
#[derive(Clone, Debug)]
pub struct Config {
    /// How long the kernel may cache names and attributes of mirrored entries.
    pub ttl: Duration,
    /// The same for `NAME.d` and volumes, which cannot change while the
    /// source is unchanged (a change found later is pushed to the kernel).
    pub volume_ttl: Duration,
    /// Where gzip indexes are kept (None: in memory only).
    pub index_dir: Option<PathBuf>,
    /// How long a stat of a source file stands for its current state (a
    /// burst of requests shares one; 0 checks every time).
    pub recheck: Duration,
    /// Cache mode of every image until set otherwise.
    pub cache_mode: Mode,
    /// Memory budget of all image caches together, in bytes.
    pub cache_size: u64,
    /// Owner of the control files (the user who mounted).
    pub uid: u32,
    /// Group of the control files.
    pub gid: u32,
}

/// What the kernel is told to forget when a source file changes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Invalidate {
    /// Cached attributes and pages of an inode.
    Inode(u64),
    /// A name in a directory (so the next path walk looks it up again).
    Entry {
        /// The directory's inode.
        parent: u64,
        /// The name.
        name: std::ffi::OsString,
    },
}

/// A looked-up entry: its attributes and how long the kernel may keep them.
#[derive(Clone, Debug)]
pub struct Entry {
    /// Attributes.
    pub attr: Attr,
    /// Validity of name and attributes.
    pub ttl: Duration,
}

/// How an open file should be treated by the kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Opened {
    /// The handle number.
    pub fh: u64,
    /// Bypass the page cache (files whose size is not known in advance).
    pub direct_io: bool,
    /// Keep cached pages from earlier opens (contents are immutable).
    pub keep_cache: bool,
}

/// The core filesystem.
pub struct Fs {
    store: Arc<dyn Store>,
    config: Config,
    pub(crate) inodes: InodeTable,
    images: Registry,
    pub(crate) handles: Handles,
    caches: Caches,
    invalidator: std::sync::OnceLock<Box<dyn Fn(Invalidate) + Send + Sync>>,
    started: SystemTime,
}

impl Fs {
    /// A filesystem showing the local directory `source` (which must be a
    /// readable directory).
    pub fn new(source: &Path, config: Config) -> Result<Fs> {
        Ok(Fs::with_store(Arc::new(LocalStore::new(source)?), config))
    }

    /// A filesystem showing `store`.
    pub fn with_store(store: Arc<dyn Store>, config: Config) -> Fs {
        Fs {
            images: Registry::new(store.clone(), config.index_dir.clone(), config.recheck),
            caches: Caches::new(config.cache_mode, config.cache_size),
            store,
            config,
            inodes: InodeTable::new(),
            handles: Handles::default(),
            invalidator: std::sync::OnceLock::new(),
            started: SystemTime::now(),
        }
    }

    /// The store the tree comes from.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// The node numbered `ino`.
    pub fn node_of(&self, ino: u64) -> Result<Node> {
        self.node(ino)
    }

    /// The image at source path `rel`, if it is one (re-parsed if it changed).
    ///
    /// When the source changed since the last look, the kernel is told to
    /// forget the name `NAME.d` (whose inode belongs to the old version) and
    /// the attributes of `NAME`.
    pub fn image_at(&self, rel: &Path) -> Option<Arc<Image>> {
        let before = self.images.known(rel);
        let now = self.images.get(rel);
        if let Some(old) = &before
            && now.as_ref().is_none_or(|new| !Arc::ptr_eq(old, new))
        {
            self.invalidate_image(rel);
        }
        now
    }

    /// Sets how the kernel is told to forget what it cached (the FUSE
    /// adapter's notifier; absent in tests without a mount).
    pub fn set_invalidator(&self, f: Box<dyn Fn(Invalidate) + Send + Sync>) {
        let _ = self.invalidator.set(f);
    }

    fn invalidate_image(&self, rel: &Path) {
        let Some(notify) = self.invalidator.get() else {
            return;
        };
        let parent = Node::Mirror(rel.parent().map(Path::to_path_buf).unwrap_or_default());
        let (Some(parent), Some(name)) = (self.inodes.existing(&parent), rel.file_name()) else {
            return;
        };
        let mut dname = name.to_os_string();
        dname.push(".d");
        notify(Invalidate::Entry {
            parent,
            name: dname,
        });
        if let Some(ino) = self.inodes.existing(&Node::Mirror(rel.to_path_buf())) {
            notify(Invalidate::Inode(ino));
        }
    }

    /// The current image at `rel` if it is version `version`, else ESTALE
    /// (the node belongs to an older version of the file).
    pub(crate) fn image_version(&self, rel: &Path, version: u64) -> Result<Arc<Image>> {
        let image = self.image(rel)?;
        if image.version != version {
            return Err(Error::Stale(rel.display().to_string()));
        }
        Ok(image)
    }

    /// The cache mode of the image at `rel`.
    pub fn cache_mode(&self, rel: &Path) -> Mode {
        self.caches.mode(rel)
    }

    /// Sets the cache mode of `image` at `rel`.
    pub fn set_cache_mode(&self, rel: &Path, image: &Arc<Image>, mode: Mode) {
        log::info!("{}: cache_mode set to {}", image.name, mode.as_str());
        self.caches.set_mode(rel, mode);
    }

    /// Whether the image at `rel` has its whole array in memory.
    pub fn in_memory(&self, rel: &Path) -> bool {
        self.image_at(rel)
            .is_some_and(|img| self.caches.in_memory(rel, &img))
    }

    /// Drops the cache of the image at `rel`.
    pub fn uncache(&self, rel: &Path) {
        if self.caches.uncache(rel) {
            log::info!("{}: cache dropped (uncache)", rel.display());
        }
    }

    /// Drops every image cache (`.nifuse/drop_caches`).
    pub fn drop_caches(&self) -> usize {
        self.caches.drop_all()
    }

    pub(crate) fn node(&self, ino: u64) -> Result<Node> {
        self.inodes
            .node(ino)
            .ok_or_else(|| Error::NotFound(format!("inode {ino}")))
    }

    fn lstat(&self, rel: &Path) -> Result<source::Meta> {
        self.store.stat(rel)
    }

    /// The image at `rel`, or ENOENT for a path that is not (or no longer) one.
    pub(crate) fn image(&self, rel: &Path) -> Result<Arc<Image>> {
        self.image_at(rel)
            .ok_or_else(|| Error::NotFound(format!("{}.d", rel.display())))
    }

    /// The attributes of `node`, numbered `ino`.
    fn attr_of(&self, ino: u64, node: &Node) -> Result<Attr> {
        let (uid, gid, t) = (self.config.uid, self.config.gid, self.started);
        match node {
            Node::Mirror(rel) => Ok(attr::mirror(ino, &self.lstat(rel)?)),
            Node::ImageDir(rel, v) => {
                let image = self.image_version(rel, *v)?;
                Ok(attr::image_dir(ino, &image.header_meta))
            }
            Node::Volume(rel, k, v) => {
                let image = self.image_version(rel, *v)?;
                if *k >= image.layout.n_vols() {
                    return Err(Error::NotFound(format!("{}.d volume {k}", rel.display())));
                }
                Ok(attr::volume(
                    ino,
                    &image.header_meta,
                    image.layout.vol_file_size(),
                ))
            }
            Node::ControlDir => Ok(attr::synthetic(ino, Kind::Dir, 0o755, uid, gid, t)),
            Node::ControlFile(Control::DropCaches) => {
                Ok(attr::synthetic(ino, Kind::File, 0o644, uid, gid, t))
            }
            Node::ControlFile(Control::Stats) => {
                Ok(attr::synthetic(ino, Kind::File, 0o444, uid, gid, t))
            }
        }
    }

    pub(crate) fn entry(&self, ino: u64, node: &Node) -> Result<Entry> {
        let ttl = match node {
            Node::ImageDir(..) | Node::Volume(..) => self.config.volume_ttl,
            Node::Mirror(_) | Node::ControlDir | Node::ControlFile(_) => self.config.ttl,
        };
        Ok(Entry {
            attr: self.attr_of(ino, node)?,
            ttl,
        })
    }

    /// The node called `name` in directory `parent`, without counting a lookup.
    fn child(&self, parent: &Node, name: &OsStr) -> Result<Node> {
        let missing = || Error::NotFound(name.to_string_lossy().into_owned());
        if name.as_bytes().contains(&b'/') || name == "." || name == ".." {
            return Err(missing());
        }
        match parent {
            Node::Mirror(dir) => {
                if dir.as_os_str().is_empty() && name == CONTROL_DIR {
                    return Ok(Node::ControlDir);
                }
                let rel = dir.join(name);
                if self.store.stat(&rel).is_ok() {
                    return Ok(Node::Mirror(rel));
                }
                let image_name = name
                    .to_str()
                    .and_then(|n| n.strip_suffix(".d"))
                    .ok_or_else(missing)?;
                let image_rel = dir.join(image_name);
                let image = self.image_at(&image_rel).ok_or_else(missing)?;
                Ok(Node::ImageDir(image_rel, image.version))
            }
            Node::ImageDir(rel, v) => {
                let image = self.image_version(rel, *v)?;
                let k = name
                    .to_str()
                    .and_then(|n| image.parse_volume_name(n))
                    .ok_or_else(missing)?;
                Ok(Node::Volume(rel.clone(), k, *v))
            }
            Node::ControlDir => {
                let c = name
                    .to_str()
                    .and_then(Control::from_name)
                    .ok_or_else(missing)?;
                Ok(Node::ControlFile(c))
            }
            Node::Volume(..) | Node::ControlFile(_) => {
                Err(Error::NotDir(name.to_string_lossy().into_owned()))
            }
        }
    }

    /// Looks up `name` in directory `parent`, counting one kernel reference.
    pub fn lookup(&self, parent: u64, name: &OsStr) -> Result<Entry> {
        let node = self.child(&self.node(parent)?, name)?;
        let ino = self.inodes.ino(&node);
        let entry = self.entry(ino, &node)?;
        self.inodes.lookup(&node);
        Ok(entry)
    }

    /// The attributes of inode `ino` as seen through open handle `fh`: an
    /// open volume keeps the attributes of the version it opened, even after
    /// the source changed (where a path lookup would give ESTALE).
    pub fn getattr_open(&self, ino: u64, fh: Option<u64>) -> Result<Entry> {
        if let Some(handle) = fh.and_then(|fh| self.handles.get(fh).ok())
            && let Handle::Volume(v) = &*handle
        {
            let size = v.image.layout.vol_file_size();
            let attr = attr::volume(ino, &v.image.header_meta, size);
            return Ok(Entry {
                attr,
                ttl: self.config.volume_ttl,
            });
        }
        self.getattr(ino)
    }

    /// The attributes of inode `ino`.
    pub fn getattr(&self, ino: u64) -> Result<Entry> {
        let node = self.node(ino)?;
        self.entry(ino, &node)
    }

    /// The kernel drops `n` references to `ino`. Returns the source path of
    /// which no inode is referenced any more, if that happened.
    /// An image none of whose inodes the kernel holds, and none of whose
    /// volumes is open, loses its cache.
    pub fn forget(&self, ino: u64, n: u64) -> Option<PathBuf> {
        let path = self.inodes.forget(ino, n)?;
        let open = self
            .handles
            .any_volume(|v| v.image.name == path.to_string_lossy());
        if !open && self.caches.uncache(&path) {
            log::info!(
                "{}: cache dropped: the kernel forgot its files",
                path.display()
            );
        }
        Some(path)
    }

    /// The target of a mirrored symlink, as stored (never followed by nifuse).
    pub fn readlink(&self, ino: u64) -> Result<Vec<u8>> {
        match self.node(ino)? {
            Node::Mirror(rel) => self.store.read_link(&rel).map(|t| t.into_vec()),
            _ => Err(Error::Invalid("not a symlink".into())),
        }
    }

    /// Closes handle `fh` (file or directory).
    pub fn release(&self, fh: u64) {
        if let Some(handle) = self.handles.remove(fh)
            && let Handle::Volume(v) = &*handle
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
            Node::Volume(rel, k, v) => {
                let image = self.image_version(&rel, v)?;
                if k >= image.layout.n_vols() {
                    return Err(Error::NotFound(format!("{}.d volume {k}", rel.display())));
                }
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
                // A remote source fetches an uncompressed volume's bytes in
                // one request when the first of them is read.
                if !image.data.is_gzip()
                    && let (Ok(src), Some(r)) = (image.data.pin(), image.layout.vol_source_range(k))
                {
                    src.will_need(r.start, r.end - r.start);
                }
                // An inode always shows one version of the source, so the
                // kernel may keep its cached pages across opens.
                let fh = self
                    .handles
                    .insert(Handle::Volume(VolumeHandle::new(image, k)));
                Ok(Opened {
                    fh,
                    direct_io: false,
                    keep_cache: true,
                })
            }
            Node::ControlFile(Control::Stats) => {
                let fh = self
                    .handles
                    .insert(Handle::Stats(self.stats_json().into_bytes()));
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
            Node::ImageDir(rel, _) => Err(Error::IsDir(format!("{}.d", rel.display()))),
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
            Handle::Volume(v) => {
                let current = self
                    .images
                    .known(Path::new(&v.image.name))
                    .is_some_and(|img| Arc::ptr_eq(&img, &v.image));
                read::read_volume(&self.caches, v, current, offset, size, sink)
            }
            Handle::Stats(bytes) => {
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

    /// The JSON of `.nifuse/stats`.
    pub fn stats_json(&self) -> String {
        let fetched = self.store.fetch_stats();
        stats::render(&self.images.all(), &self.caches, fetched.as_ref())
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

/// `s` as a JSON string literal.
pub fn json_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}
