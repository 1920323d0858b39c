//! One error type for the core, and the one place that turns it into an errno.
//!
//! Every operation in [`crate::fs`] returns `Result<_, Error>`; the FUSE adapter
//! only calls [`Error::errno`]. Each variant also knows how loudly it should be
//! logged: a name that does not exist is routine (debug), a volume whose bytes
//! are missing from the source is worth a warning.

use std::io;

/// What went wrong, in terms a filesystem caller can act on.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No such entry (routine: `lookup` of a missing name).
    #[error("{0}: no such file or directory")]
    NotFound(String),
    /// A directory operation on something that is not a directory.
    #[error("{0}: not a directory")]
    NotDir(String),
    /// A file operation on a directory.
    #[error("{0}: is a directory")]
    IsDir(String),
    /// Any attempt to modify the tree: nifuse never writes to SOURCE.
    #[error("{0}: nifuse is read-only (SOURCE is never modified)")]
    ReadOnly(String),
    /// A request with a bad argument (an unknown `user.cache_mode` value, say).
    #[error("{0}")]
    Invalid(String),
    /// An extended attribute that this entry does not have.
    #[error("{0}: no such attribute")]
    NoAttr(String),
    /// An extended-attribute namespace nifuse does not have (only `user.`
    /// exists): answering so makes `ls` stop asking for SELinux labels and ACLs.
    #[error("{0}: only user.* attributes exist here")]
    NotSupported(String),
    /// The caller's buffer is too small for the reply (xattr protocol).
    #[error("reply of {0} bytes does not fit the caller's buffer")]
    Range(usize),
    /// A file handle the daemon does not know (never handed out, or released).
    #[error("unknown file handle {0}")]
    BadHandle(u64),
    /// The caller may not do this (control files belong to the mount's owner).
    #[error("{0}: permission denied")]
    Access(String),
    /// An inode of an older version of a source file: the kernel looks the
    /// name up again and gets the current version.
    #[error("{0}: the source changed; look it up again")]
    Stale(String),
    /// Voxel bytes that cannot be served: truncated source, corrupt gzip stream.
    #[error("{0}")]
    Data(String),
    /// An I/O error from the source tree, with what we were doing.
    #[error("{what}: {source}")]
    Io {
        /// What nifuse was doing, naming the file.
        what: String,
        /// The underlying error; its errno is passed through.
        #[source]
        source: io::Error,
    },
}

impl Error {
    /// Wraps an I/O error with a description of the operation and file.
    pub fn io(what: impl Into<String>, source: io::Error) -> Error {
        Error::Io {
            what: what.into(),
            source,
        }
    }

    /// The errno the kernel should see. Exhaustive: a new variant must choose.
    pub fn errno(&self) -> i32 {
        match self {
            Error::NotFound(_) => libc::ENOENT,
            Error::NotDir(_) => libc::ENOTDIR,
            Error::IsDir(_) => libc::EISDIR,
            Error::ReadOnly(_) => libc::EROFS,
            Error::Invalid(_) => libc::EINVAL,
            Error::NoAttr(_) => libc::ENODATA,
            Error::NotSupported(_) => libc::EOPNOTSUPP,
            Error::Range(_) => libc::ERANGE,
            Error::BadHandle(_) => libc::EBADF,
            Error::Access(_) => libc::EACCES,
            Error::Stale(_) => libc::ESTALE,
            Error::Data(_) => libc::EIO,
            Error::Io { source, .. } => source.raw_os_error().unwrap_or(libc::EIO),
        }
    }

    /// How loudly a failed request should be logged.
    pub fn log_level(&self) -> log::Level {
        match self {
            Error::NotFound(_)
            | Error::NoAttr(_)
            | Error::NotSupported(_)
            | Error::Range(_)
            | Error::Stale(_) => log::Level::Debug,
            Error::NotDir(_)
            | Error::IsDir(_)
            | Error::ReadOnly(_)
            | Error::Invalid(_)
            | Error::Access(_)
            | Error::BadHandle(_) => log::Level::Info,
            Error::Data(_) | Error::Io { .. } => log::Level::Warn,
        }
    }
}

/// Shorthand for core results.
pub type Result<T> = std::result::Result<T, Error>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errno_map_passes_os_errors_through() {
        let e = Error::io("reading x", io::Error::from_raw_os_error(libc::ELOOP));
        assert_eq!(e.errno(), libc::ELOOP);
        let e = Error::io("reading x", io::Error::other("custom"));
        assert_eq!(e.errno(), libc::EIO);
        assert_eq!(Error::NoAttr("x".into()).errno(), libc::ENODATA);
        assert_eq!(Error::ReadOnly("x".into()).errno(), libc::EROFS);
        assert_eq!(Error::Data("x".into()).errno(), libc::EIO);
    }

    #[test]
    fn missing_names_are_not_warnings() {
        assert_eq!(Error::NotFound("a".into()).log_level(), log::Level::Debug);
        assert_eq!(Error::Data("a".into()).log_level(), log::Level::Warn);
    }
}
