//! File attributes of the mount's entries, as plain structs.
//!
//! Mirrored entries take the source's `lstat` minus write bits. An image's
//! `NAME.d` and volumes take the image file's owner, read bits and times, so
//! `stat` of a volume needs only the header.

use std::time::SystemTime;

pub use crate::source::Kind;
use crate::source::Meta;

/// The attributes `stat` shows for one inode.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attr {
    /// Inode number.
    pub ino: u64,
    /// Entry kind.
    pub kind: Kind,
    /// Size in bytes.
    pub size: u64,
    /// Permission bits (never any write bit, except on `.nifuse/drop_caches`).
    pub perm: u16,
    /// Hard links.
    pub nlink: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Device number for device nodes.
    pub rdev: u32,
    /// Last access.
    pub atime: SystemTime,
    /// Last modification.
    pub mtime: SystemTime,
    /// Last status change.
    pub ctime: SystemTime,
}

impl Attr {
    /// Allocated 512-byte blocks, as `stat` expects them for a file of this size.
    pub fn blocks(&self) -> u64 {
        self.size.div_ceil(512)
    }
}

/// All write bits.
const WRITE_BITS: u32 = 0o222;

/// The attributes of a mirrored source entry (its `lstat`), without write bits.
pub fn mirror(ino: u64, meta: &Meta) -> Attr {
    Attr {
        ino,
        kind: meta.kind,
        size: meta.size(),
        perm: perm_bits(meta.mode & !WRITE_BITS),
        nlink: u32::try_from(meta.nlink).unwrap_or(u32::MAX),
        uid: meta.uid,
        gid: meta.gid,
        rdev: u32::try_from(meta.rdev).unwrap_or(0),
        atime: meta.atime,
        mtime: meta.mtime,
        ctime: meta.ctime,
    }
}

/// The attributes of an image's `NAME.d`: a directory readable (and
/// searchable) by whoever may read the image.
pub fn image_dir(ino: u64, image_meta: &Meta) -> Attr {
    let read = image_meta.mode & 0o444;
    Attr {
        kind: Kind::Dir,
        size: 4096,
        perm: perm_bits(read | (read >> 2)),
        nlink: 2,
        ..mirror(ino, image_meta)
    }
}

/// The attributes of a volume file of `size` bytes of the image with `image_meta`.
pub fn volume(ino: u64, image_meta: &Meta, size: u64) -> Attr {
    Attr {
        kind: Kind::File,
        size,
        perm: perm_bits(image_meta.mode & 0o444),
        nlink: 1,
        rdev: 0,
        ..mirror(ino, image_meta)
    }
}

/// The attributes of a synthetic entry owned by the mount's owner.
pub fn synthetic(ino: u64, kind: Kind, perm: u16, uid: u32, gid: u32, when: SystemTime) -> Attr {
    Attr {
        ino,
        kind,
        size: if kind == Kind::Dir { 4096 } else { 0 },
        perm,
        nlink: if kind == Kind::Dir { 2 } else { 1 },
        uid,
        gid,
        rdev: 0,
        atime: when,
        mtime: when,
        ctime: when,
    }
}

fn perm_bits(mode: u32) -> u16 {
    u16::try_from(mode & 0o7777).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn write_bits_are_removed_and_read_bits_kept() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        std::fs::write(&p, b"abc").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o640)).unwrap();
        let meta = crate::source::local::meta_of(&std::fs::symlink_metadata(&p).unwrap());
        let a = mirror(7, &meta);
        assert_eq!((a.perm, a.size, a.kind), (0o440, 3, Kind::File));
        let d = image_dir(8, &meta);
        assert_eq!((d.perm, d.kind, d.nlink), (0o550, Kind::Dir, 2));
        let v = volume(9, &meta, 1000);
        assert_eq!((v.perm, v.size, v.mtime), (0o440, 1000, a.mtime));
    }
}
