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
mod lookup;
mod open;
pub mod read;
pub mod registry;
pub mod sidecars;
pub mod stats;
pub mod tree;
pub mod xattr;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::cache::{Caches, Mode};
use crate::error::{Error, Result};
use crate::source::local::LocalStore;
use crate::source::{self, Store};
use attr::Attr;
use handle::Handles;
use image::Image;
use registry::Registry;
use tree::{InodeTable, Node};

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
    /// How reads of compressed images are checked against their CRC-32 (SPEC 5).
    pub verify: source::data::Verify,
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

/// How the kernel is told to forget what it cached (set by the FUSE adapter).
type Notifier = Box<dyn Fn(Invalidate) + Send + Sync>;

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
    pub(crate) inodes: Arc<InodeTable>,
    images: Registry,
    pub(crate) handles: Handles,
    caches: Caches,
    sidecars: sidecars::Sidecars,
    invalidator: Arc<std::sync::OnceLock<Notifier>>,
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
            sidecars: sidecars::Sidecars::new(store.clone(), config.recheck),
            store,
            config,
            inodes: Arc::new(InodeTable::new()),
            handles: Handles::default(),
            invalidator: Arc::new(std::sync::OnceLock::new()),
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
        if let Some(image) = &now
            && !image.data.is_configured()
        {
            self.configure_image(rel, image);
        }
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

    /// Sets the verify mode of an image's data file, and the hook through
    /// which it has the kernel drop the cached pages of every file of the
    /// image (from the invalidation thread) when it finds damage.
    fn configure_image(&self, rel: &Path, image: &Image) {
        let (inodes, notify, path) = (
            self.inodes.clone(),
            self.invalidator.clone(),
            rel.to_path_buf(),
        );
        image.data.configure(
            self.config.verify,
            Box::new(move || {
                if let Some(notify) = notify.get() {
                    for ino in inodes.inodes_of_path(&path) {
                        notify(Invalidate::Inode(ino));
                    }
                }
            }),
        );
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

    /// The JSON of `.nifuse/stats`.
    pub fn stats_json(&self) -> String {
        let fetched = self.store.fetch_stats();
        stats::render(&self.images.all(), &self.caches, fetched.as_ref())
    }
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
