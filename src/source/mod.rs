//! Where bytes come from: one seam for local files and objects.
//!
//! A [`Store`] is the tree under SOURCE: entries with their metadata
//! ([`Meta`]), directory listings, symlinks, and regular files opened as
//! [`ByteSource`]s, positioned reads of one version of one file. [`local`]
//! implements both over a local directory; an object store implements the same
//! two traits. Everything above them (images, views, caches, the gzip index in
//! [`gzindex`], the tree) is written once against these traits.
//!
//! [`DataFile`] is the file holding one image's voxels, opened on first use,
//! with gzip access layered over its byte source. [`s3`] implements the seam
//! over an object-store prefix.

pub mod data;
pub mod gzindex;
pub mod local;
pub mod s3;

use std::collections::HashMap;
use std::ffi::OsString;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use crate::error::Result;

pub use data::DataFile;

/// What kind of entry a source path is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    /// A directory.
    Dir,
    /// A regular file.
    File,
    /// A symbolic link.
    Symlink,
    /// A named pipe.
    Fifo,
    /// A socket.
    Socket,
    /// A character device.
    CharDevice,
    /// A block device.
    BlockDevice,
}

/// What identifies one version of a source entry: if any of it changes, the
/// entry was rewritten or replaced and everything derived from it is stale.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Version {
    /// Size in bytes.
    pub size: u64,
    /// Modification time, nanoseconds since the epoch.
    pub mtime_ns: i128,
    /// Status change time (owner and mode changes), nanoseconds since the epoch.
    pub ctime_ns: i128,
    /// What else tells versions apart: the inode of a local file, an object's ETag.
    pub tag: Tag,
}

/// The store-specific part of a [`Version`].
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Tag {
    /// A local file: its device and inode numbers.
    Inode {
        /// Device.
        dev: u64,
        /// Inode number.
        ino: u64,
    },
    /// An object: its ETag as the store reported it.
    Etag(Arc<str>),
}

impl Version {
    /// Whether `other` has the same content as `self`: same size, mtime and
    /// tag (a change of owner or mode alone keeps the bytes).
    pub fn same_content(&self, other: &Version) -> bool {
        self.size == other.size && self.mtime_ns == other.mtime_ns && self.tag == other.tag
    }

    /// The part of the gzip index key that tells versions of one locator apart.
    pub fn index_tag(&self) -> String {
        match &self.tag {
            Tag::Inode { ino, .. } => format!("mtime {} inode {ino}", self.mtime_ns),
            // A store whose listings carry no ETag: its modification time is all there is.
            Tag::Etag(etag) if etag.is_empty() => format!("mtime {}", self.mtime_ns),
            Tag::Etag(etag) => format!("etag {etag}"),
        }
    }
}

/// The metadata of one source entry (not following symlinks).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Meta {
    /// Entry kind.
    pub kind: Kind,
    /// Permission and type bits as `st_mode` has them (0o444 / 0o555 for objects).
    pub mode: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Hard links.
    pub nlink: u64,
    /// Device number of device nodes.
    pub rdev: u64,
    /// Last access.
    pub atime: SystemTime,
    /// Last modification.
    pub mtime: SystemTime,
    /// Last status change.
    pub ctime: SystemTime,
    /// Size and identity.
    pub version: Version,
}

impl Meta {
    /// Size in bytes.
    pub fn size(&self) -> u64 {
        self.version.size
    }
}

/// One entry of a directory listing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DirItem {
    /// Name within the directory.
    pub name: OsString,
    /// Entry kind (not following symlinks).
    pub kind: Kind,
}

/// Why a path does not lead to a regular file of the store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NotFile {
    /// Nothing is there.
    Missing,
    /// Something else is there; the reason is worth one log line.
    Other(String),
}

/// The tree of one SOURCE. Paths are relative to its root ("" is the root).
pub trait Store: Send + Sync {
    /// The whole source, for messages: a directory path or `s3://BUCKET/PREFIX`.
    fn describe(&self) -> String;

    /// The entry at `rel`, not following a symlink; `NotFound` if there is none.
    fn stat(&self, rel: &Path) -> Result<Meta>;

    /// The entries of directory `rel`, in no particular order.
    fn list(&self, rel: &Path) -> Result<Vec<DirItem>>;

    /// The target of symlink `rel`, as stored.
    fn read_link(&self, rel: &Path) -> Result<OsString>;

    /// The regular file `rel` stands for: itself, or for a symlink its target
    /// when that is a regular file inside the store (as a path relative to
    /// the root), with the file's metadata.
    fn resolve(&self, rel: &Path) -> std::result::Result<(PathBuf, Meta), NotFile>;

    /// Opens the regular file `rel` (never following a symlink) for reading.
    fn open(&self, rel: &Path) -> Result<Arc<dyn ByteSource>>;

    /// What a remote store fetched so far, for `.nifuse/stats` (None: a local store).
    fn fetch_stats(&self) -> Option<FetchStats> {
        None
    }
}

/// Bytes and requests fetched from a remote store.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Fetched {
    /// Bytes received.
    pub bytes: u64,
    /// Requests made.
    pub requests: u64,
}

/// What a remote store fetched: per file (relative to SOURCE) and in all.
#[derive(Clone, Debug, Default)]
pub struct FetchStats {
    /// Object reads (GETs) per file.
    pub per_path: HashMap<PathBuf, Fetched>,
    /// Object reads of all files.
    pub total: Fetched,
    /// Directory listing requests (one per page).
    pub list_requests: u64,
    /// Fetched bytes kept in memory now.
    pub block_cache_bytes: u64,
    /// The most fetched bytes kept in memory.
    pub block_cache_budget: u64,
}

/// One version of one file, read at positions; shared by any number of threads.
pub trait ByteSource: Send + Sync {
    /// The version this source reads (taken when it was opened).
    fn version(&self) -> &Version;

    /// Size in bytes.
    fn len(&self) -> u64 {
        self.version().size
    }

    /// Whether the source holds no bytes.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Reads into `buf` from `offset`; returns the bytes read, fewer than
    /// `buf.len()` (maybe after several calls) only at the end of the source.
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<usize>;

    /// Fails with [`crate::Error::Data`] if the file is no longer the version
    /// that was opened (rewritten in place since).
    fn check_unchanged(&self) -> Result<()>;

    /// Where the bytes live, for messages and as the gzip index key: an
    /// absolute path, or `s3://ENDPOINT/BUCKET/KEY`.
    fn locator(&self) -> &str;

    /// A hint that bytes `offset..offset + len` are about to be read (an
    /// opened volume): a remote source fetches them in one request when the
    /// first of them is read. Local files ignore it (the kernel reads ahead).
    fn will_need(&self, _offset: u64, _len: u64) {}
}

/// The two gzip magic bytes.
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// Fills `buf` from `src` at `offset`; returns how many bytes were there
/// (fewer than `buf.len()` only at the end of the source).
pub fn pread_full(src: &dyn ByteSource, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
    let mut done = 0;
    while done < buf.len() {
        let pos = offset.saturating_add(done as u64);
        match src.read_at(pos, &mut buf[done..]) {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(done)
}

/// Reads a byte source from a position, as a [`Read`] (to feed a decoder).
pub struct SourceReader<'a> {
    src: &'a dyn ByteSource,
    pos: u64,
}

impl<'a> SourceReader<'a> {
    /// A reader starting at byte `pos` of `src`.
    pub fn new(src: &'a dyn ByteSource, pos: u64) -> Self {
        SourceReader { src, pos }
    }
}

impl Read for SourceReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.src.read_at(self.pos, buf)?;
        self.pos = self.pos.saturating_add(n as u64);
        Ok(n)
    }
}

/// Whether `src` starts with the gzip magic bytes.
pub fn is_gzip(src: &dyn ByteSource) -> io::Result<bool> {
    let mut magic = [0u8; 2];
    Ok(pread_full(src, 0, &mut magic)? == 2 && magic == GZIP_MAGIC)
}

/// Reads up to `want` bytes from the start of the (decoded) stream of `src`.
/// Fewer bytes come back only when the stream is shorter.
pub fn read_head(src: &dyn ByteSource, gzip: bool, want: usize) -> io::Result<Vec<u8>> {
    let mut buf = Vec::with_capacity(want.min(1 << 20));
    let limit = u64::try_from(want).unwrap_or(u64::MAX);
    if gzip {
        let dec = flate2::read::MultiGzDecoder::new(SourceReader::new(src, 0));
        dec.take(limit).read_to_end(&mut buf)?;
    } else {
        SourceReader::new(src, 0)
            .take(limit)
            .read_to_end(&mut buf)?;
    }
    Ok(buf)
}
