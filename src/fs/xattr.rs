//! Extended attributes of image entries (`NAME` and `NAME.d`), with the FUSE
//! xattr protocol: a size-0 request asks for the length, too small a buffer is
//! ERANGE, a missing name is ENODATA, and nothing is ever ENOSYS.

use std::ffi::OsStr;
use std::path::PathBuf;
use std::sync::Arc;

use super::Fs;
use super::image::Image;
use super::tree::Node;
use crate::error::{Error, Result};

/// The answer to `getxattr`/`listxattr`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum XattrValue {
    /// The caller asked for the size only.
    Size(u32),
    /// The value itself.
    Data(Vec<u8>),
}

/// The attributes every image entry has, in `listxattr` order.
pub const NAMES: [&str; 6] = [
    "user.cache_mode",
    "user.in_memory",
    "user.uncache",
    "user.nifti.shape",
    "user.nifti.dtype",
    "user.nifti.volumes",
];

/// Applies the size protocol to a value.
fn sized(value: Vec<u8>, size: u32) -> Result<XattrValue> {
    let len = u32::try_from(value.len()).map_err(|_| Error::Range(value.len()))?;
    if size == 0 {
        Ok(XattrValue::Size(len))
    } else if len > size {
        Err(Error::Range(value.len()))
    } else {
        Ok(XattrValue::Data(value))
    }
}

impl Fs {
    /// The image an inode stands for (`NAME` or `NAME.d`), if it is an image entry.
    fn xattr_image(&self, ino: u64) -> Result<Option<(PathBuf, Arc<Image>)>> {
        let node = self.node_of(ino)?;
        let rel = match node {
            Node::Mirror(rel) | Node::ImageDir(rel, _) => rel,
            Node::Volume(..) | Node::ControlDir | Node::ControlFile(_) => return Ok(None),
        };
        Ok(self.image_at(&rel).map(|img| (rel, img)))
    }

    /// `getxattr(ino, name)` with a caller buffer of `size` bytes.
    pub fn getxattr(&self, ino: u64, name: &OsStr, size: u32) -> Result<XattrValue> {
        let missing = || Error::NoAttr(name.to_string_lossy().into_owned());
        let (rel, image) = self.xattr_image(ino)?.ok_or_else(missing)?;
        let layout = &image.layout;
        let value = match name.to_str().ok_or_else(missing)? {
            "user.cache_mode" => self.cache_mode(&rel).as_str().to_string(),
            "user.in_memory" => if self.in_memory(&rel) { "1" } else { "0" }.to_string(),
            "user.uncache" => String::new(),
            "user.nifti.shape" => layout
                .shape()
                .iter()
                .map(i64::to_string)
                .collect::<Vec<_>>()
                .join(","),
            "user.nifti.dtype" => layout.dtype().name.to_string(),
            "user.nifti.volumes" => layout.n_vols().to_string(),
            _ => return Err(missing()),
        };
        sized(value.into_bytes(), size)
    }

    /// `listxattr(ino)` with a caller buffer of `size` bytes.
    pub fn listxattr(&self, ino: u64, size: u32) -> Result<XattrValue> {
        let mut list = Vec::new();
        if self.xattr_image(ino)?.is_some() {
            for name in NAMES {
                list.extend_from_slice(name.as_bytes());
                list.push(0);
            }
        }
        sized(list, size)
    }

    /// `setxattr(ino, name, value)`: `user.cache_mode` and `user.uncache` only.
    pub fn setxattr(&self, ino: u64, name: &OsStr, value: &[u8]) -> Result<()> {
        let shown = name.to_string_lossy().into_owned();
        let Some((rel, image)) = self.xattr_image(ino)? else {
            return Err(Error::ReadOnly(shown));
        };
        match name.to_str() {
            Some("user.cache_mode") => {
                let text = String::from_utf8_lossy(value);
                let mode = text
                    .trim_end_matches(['\n', '\0'])
                    .parse()
                    .map_err(Error::Invalid)?;
                self.set_cache_mode(&rel, &image, mode);
                Ok(())
            }
            Some("user.uncache") => {
                self.uncache(&rel);
                Ok(())
            }
            Some(n) if NAMES.contains(&n) => Err(Error::Access(format!("{n} is read-only"))),
            _ => Err(Error::ReadOnly(shown)),
        }
    }

    /// `removexattr`: nothing can be removed.
    pub fn removexattr(&self, ino: u64, name: &OsStr) -> Result<()> {
        match self.xattr_image(ino)? {
            Some(_) if name.to_str().is_some_and(|n| NAMES.contains(&n)) => Err(Error::Access(
                format!("{} cannot be removed", name.to_string_lossy()),
            )),
            _ => Err(Error::NoAttr(name.to_string_lossy().into_owned())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn size_protocol() {
        assert_eq!(sized(b"fill".to_vec(), 0).unwrap(), XattrValue::Size(4));
        assert_eq!(
            sized(b"fill".to_vec(), 4).unwrap(),
            XattrValue::Data(b"fill".to_vec())
        );
        assert_eq!(
            sized(b"fill".to_vec(), 3).unwrap_err().errno(),
            libc::ERANGE
        );
    }
}
