//! The local implementation of the seam: a directory as a [`Store`], its
//! files as [`ByteSource`]s read with `pread`.
//!
//! Symlinks are shown as they are and followed only to decide whether one
//! stands for an image, and only when the target stays inside the root.

use std::ffi::OsString;
use std::fs::{self, File};
use std::io;
use std::os::unix::ffi::OsStringExt;
use std::os::unix::fs::{FileExt, FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::{ByteSource, DirItem, Kind, Meta, NotFile, Store, Tag, Version};
use crate::error::{Error, Result};

/// A directory of the local file system.
pub struct LocalStore {
    root: PathBuf,
}

impl LocalStore {
    /// The directory `root` (canonicalized; it must be a readable directory).
    pub fn new(root: &Path) -> Result<LocalStore> {
        let root = fs::canonicalize(root)
            .map_err(|e| Error::io(format!("SOURCE {}", root.display()), e))?;
        fs::read_dir(&root)
            .map_err(|e| Error::io(format!("listing SOURCE {}", root.display()), e))?;
        Ok(LocalStore { root })
    }

    /// The canonical root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn abs(&self, rel: &Path) -> PathBuf {
        self.root.join(rel)
    }
}

/// The kind of a file type (as `lstat` or `read_dir` reports it, not followed).
pub fn kind_of(t: &fs::FileType) -> Kind {
    if t.is_dir() {
        Kind::Dir
    } else if t.is_symlink() {
        Kind::Symlink
    } else if t.is_fifo() {
        Kind::Fifo
    } else if t.is_socket() {
        Kind::Socket
    } else if t.is_char_device() {
        Kind::CharDevice
    } else if t.is_block_device() {
        Kind::BlockDevice
    } else {
        Kind::File
    }
}

fn time(secs: i64, nsecs: i64) -> SystemTime {
    let nanos = u32::try_from(nsecs.clamp(0, 999_999_999)).unwrap_or(0);
    if secs >= 0 {
        UNIX_EPOCH + Duration::new(secs.unsigned_abs(), nanos)
    } else {
        UNIX_EPOCH - Duration::new(secs.unsigned_abs(), 0) + Duration::new(0, nanos)
    }
}

/// The identity recorded in `meta`.
pub fn version_of(meta: &fs::Metadata) -> Version {
    Version {
        size: meta.size(),
        mtime_ns: i128::from(meta.mtime()) * 1_000_000_000 + i128::from(meta.mtime_nsec()),
        ctime_ns: i128::from(meta.ctime()) * 1_000_000_000 + i128::from(meta.ctime_nsec()),
        tag: Tag::Inode {
            dev: meta.dev(),
            ino: meta.ino(),
        },
    }
}

/// `meta` as the seam's [`Meta`].
pub fn meta_of(meta: &fs::Metadata) -> Meta {
    Meta {
        kind: kind_of(&meta.file_type()),
        mode: meta.mode(),
        uid: meta.uid(),
        gid: meta.gid(),
        nlink: meta.nlink(),
        rdev: meta.rdev(),
        atime: time(meta.atime(), meta.atime_nsec()),
        mtime: time(meta.mtime(), meta.mtime_nsec()),
        ctime: time(meta.ctime(), meta.ctime_nsec()),
        version: version_of(meta),
    }
}

impl Store for LocalStore {
    fn describe(&self) -> String {
        self.root.display().to_string()
    }

    fn stat(&self, rel: &Path) -> Result<Meta> {
        let abs = self.abs(rel);
        fs::symlink_metadata(&abs)
            .map(|m| meta_of(&m))
            .map_err(|e| match e.kind() {
                io::ErrorKind::NotFound => Error::NotFound(rel.display().to_string()),
                _ => Error::io(format!("stat {}", abs.display()), e),
            })
    }

    fn list(&self, rel: &Path) -> Result<Vec<DirItem>> {
        let abs = self.abs(rel);
        let what = || format!("listing {}", abs.display());
        let mut out = Vec::new();
        for item in fs::read_dir(&abs).map_err(|e| Error::io(what(), e))? {
            let item = item.map_err(|e| Error::io(what(), e))?;
            let kind = item.file_type().map(|t| kind_of(&t)).unwrap_or(Kind::File);
            out.push(DirItem {
                name: item.file_name(),
                kind,
            });
        }
        Ok(out)
    }

    fn read_link(&self, rel: &Path) -> Result<OsString> {
        let abs = self.abs(rel);
        fs::read_link(&abs)
            .map(|t| OsString::from_vec(t.into_os_string().into_vec()))
            .map_err(|e| Error::io(format!("readlink {}", abs.display()), e))
    }

    fn resolve(&self, rel: &Path) -> std::result::Result<(PathBuf, Meta), NotFile> {
        let abs = self.abs(rel);
        let meta = fs::symlink_metadata(&abs).map_err(|_| NotFile::Missing)?;
        if meta.is_file() {
            return Ok((rel.to_path_buf(), meta_of(&meta)));
        }
        if meta.is_dir() {
            return Err(NotFile::Other("a directory".into()));
        }
        if !meta.file_type().is_symlink() {
            return Err(NotFile::Other(
                "not a regular file (FIFO, socket or device)".into(),
            ));
        }
        let target = fs::canonicalize(&abs)
            .map_err(|e| NotFile::Other(format!("a symlink that cannot be followed ({e})")))?;
        let Ok(inside) = target.strip_prefix(&self.root) else {
            return Err(NotFile::Other(format!(
                "a symlink that leads out of SOURCE (to {})",
                target.display()
            )));
        };
        match fs::symlink_metadata(&target) {
            Ok(m) if m.is_file() => Ok((inside.to_path_buf(), meta_of(&m))),
            _ => Err(NotFile::Other(
                "a symlink to something that is not a regular file".into(),
            )),
        }
    }

    fn open(&self, rel: &Path) -> Result<Arc<dyn ByteSource>> {
        Ok(Arc::new(LocalFile::open(&self.abs(rel))?))
    }
}

/// One open local file, with the version it had when opened.
pub struct LocalFile {
    file: File,
    version: Version,
    locator: String,
}

impl LocalFile {
    /// Opens the regular file at `path` (a symlink in its last component is
    /// refused, and so is a FIFO or device, without blocking on it).
    pub fn open(path: &Path) -> Result<LocalFile> {
        let what = || format!("opening {}", path.display());
        let file = File::options()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
            .open(path)
            .map_err(|e| Error::io(what(), e))?;
        let meta = file.metadata().map_err(|e| Error::io(what(), e))?;
        if !meta.is_file() {
            return Err(Error::Invalid(format!(
                "{}: not a regular file",
                path.display()
            )));
        }
        Ok(LocalFile {
            file,
            version: version_of(&meta),
            locator: path.display().to_string(),
        })
    }

    /// Opens the file at `path`, following symlinks (for `nifuse info` and
    /// `nifuse index`, which are given paths by the user).
    pub fn open_followed(path: &Path) -> Result<LocalFile> {
        let canon = fs::canonicalize(path).map_err(|e| Error::io(path.display().to_string(), e))?;
        LocalFile::open(&canon)
    }
}

impl ByteSource for LocalFile {
    fn version(&self) -> &Version {
        &self.version
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
        self.file.read_at(buf, offset)
    }

    fn check_unchanged(&self) -> Result<()> {
        let meta = self
            .file
            .metadata()
            .map_err(|e| Error::io(format!("stat {}", self.locator), e))?;
        if meta.size() != self.version.size || version_of(&meta).mtime_ns != self.version.mtime_ns {
            return Err(Error::Data(format!(
                "{}: changed while open (rewritten in place); reopen the file to read the new version",
                self.locator
            )));
        }
        Ok(())
    }

    fn locator(&self) -> &str {
        &self.locator
    }
}
