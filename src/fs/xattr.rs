//! Extended attributes, with the FUSE xattr protocol: a size-0 request asks
//! for the length, too small a buffer is ERANGE, a missing name is ENODATA,
//! and nothing is ever ENOSYS.
//!
//! Only `user.` names exist. An image's entry `NAME` and its `NAME.d` have
//! the cache controls and the image's `user.nifti.*`; every view file has
//! the `user.nifti.*` of what it holds. Any other namespace (`security.`,
//! `system.`, `trusted.`) answers EOPNOTSUPP, which makes `ls -l` stop
//! asking this mount for SELinux labels and ACLs after the first file.

use std::ffi::OsStr;
use std::path::PathBuf;
use std::sync::Arc;

use super::Fs;
use super::image::Image;
use super::tree::Node;
use crate::error::{Error, Result};
use crate::view::shape::Shape;
use crate::view::{Output, Selection};

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

/// The attributes of view files: what the file holds.
pub const VIEW_NAMES: [&str; 3] = ["user.nifti.shape", "user.nifti.dtype", "user.nifti.volumes"];

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

/// Refuses names outside the `user.` namespace.
fn user_name(name: &OsStr) -> Result<&str> {
    match name.to_str() {
        Some(n) if n.starts_with("user.") => Ok(n),
        _ => Err(Error::NotSupported(name.to_string_lossy().into_owned())),
    }
}

/// What an inode's attributes describe.
enum Subject {
    /// `NAME` or `NAME.d`: the image, with its cache.
    Image(PathBuf, Arc<Image>),
    /// A view file.
    View(Arc<Image>, Shape),
    /// Anything else: no attributes.
    Nothing,
}

/// `shape`, `dtype` and `volumes` of a view, as its `user.nifti.*` say them.
fn view_info(image: &Image, shape: &Shape) -> (String, String, String) {
    let layout = &image.layout;
    let count = shape.volumes.count();
    let [dx, dy, dz] = layout.vol_dims();
    let mut dims: Vec<u64> = vec![dx, dy, dz];
    match shape.plane {
        Some((axis, _)) => {
            dims[axis.index()] = 1;
            dims.extend(layout.shape().iter().skip(3).map(|&d| d.max(0) as u64));
        }
        None => match shape.view.selection {
            Selection::Volume(_) => {}
            Selection::Whole => {
                dims.extend(layout.shape().iter().skip(3).map(|&d| d.max(0) as u64))
            }
            _ => dims.push(count),
        },
    }
    let dtype = match shape.view.output {
        Output::Stored => layout.dtype().name,
        Output::Float32 => "float32",
        Output::Float64 => "float64",
    };
    let text = dims
        .iter()
        .map(u64::to_string)
        .collect::<Vec<_>>()
        .join(",");
    (text, dtype.to_string(), count.to_string())
}

impl Fs {
    /// What the attributes of inode `ino` describe.
    fn subject(&self, ino: u64) -> Result<Subject> {
        Ok(match self.node_of(ino)? {
            Node::Mirror(rel) | Node::ImageDir(rel, _, crate::view::Dir::TOP) => {
                match self.image_at(&rel) {
                    Some(img) => Subject::Image(rel, img),
                    None => Subject::Nothing,
                }
            }
            Node::View(rel, v, s, view) => {
                let (image, shape) = self.view_shape(&rel, v, s, view)?;
                Subject::View(image, shape)
            }
            Node::ImageDir(..) | Node::Sidecar(..) | Node::ControlDir | Node::ControlFile(_) => {
                Subject::Nothing
            }
        })
    }

    /// `getxattr(ino, name)` with a caller buffer of `size` bytes.
    pub fn getxattr(&self, ino: u64, name: &OsStr, size: u32) -> Result<XattrValue> {
        let name = user_name(name)?;
        let missing = || Error::NoAttr(name.to_string());
        let value = match (self.subject(ino)?, name) {
            (Subject::Image(rel, _), "user.cache_mode") => self.cache_mode(&rel).as_str().into(),
            (Subject::Image(rel, _), "user.in_memory") => {
                if self.in_memory(&rel) { "1" } else { "0" }.to_string()
            }
            (Subject::Image(..), "user.uncache") => String::new(),
            (Subject::Image(_, image), "user.nifti.shape") => image
                .layout
                .shape()
                .iter()
                .map(i64::to_string)
                .collect::<Vec<_>>()
                .join(","),
            (Subject::Image(_, image), "user.nifti.dtype") => image.layout.dtype().name.into(),
            (Subject::Image(_, image), "user.nifti.volumes") => image.layout.n_vols().to_string(),
            (Subject::View(image, shape), n) => {
                let (dims, dtype, count) = view_info(&image, &shape);
                match n {
                    "user.nifti.shape" => dims,
                    "user.nifti.dtype" => dtype,
                    "user.nifti.volumes" => count,
                    _ => return Err(missing()),
                }
            }
            _ => return Err(missing()),
        };
        sized(value.into_bytes(), size)
    }

    /// `listxattr(ino)` with a caller buffer of `size` bytes.
    pub fn listxattr(&self, ino: u64, size: u32) -> Result<XattrValue> {
        let names: &[&str] = match self.subject(ino)? {
            Subject::Image(..) => &NAMES,
            Subject::View(..) => &VIEW_NAMES,
            Subject::Nothing => &[],
        };
        let mut list = Vec::new();
        for name in names {
            list.extend_from_slice(name.as_bytes());
            list.push(0);
        }
        sized(list, size)
    }

    /// `setxattr(ino, name, value)`: `user.cache_mode` and `user.uncache` only.
    pub fn setxattr(&self, ino: u64, name: &OsStr, value: &[u8]) -> Result<()> {
        let name = user_name(name)?;
        match (self.subject(ino)?, name) {
            (Subject::Image(rel, image), "user.cache_mode") => {
                let text = String::from_utf8_lossy(value);
                let mode = text
                    .trim_end_matches(['\n', '\0'])
                    .parse()
                    .map_err(Error::Invalid)?;
                self.set_cache_mode(&rel, &image, mode);
                Ok(())
            }
            (Subject::Image(rel, _), "user.uncache") => {
                self.uncache(&rel);
                Ok(())
            }
            (Subject::Image(..), n) if NAMES.contains(&n) => {
                Err(Error::Access(format!("{n} is read-only")))
            }
            (Subject::View(..), n) if VIEW_NAMES.contains(&n) => {
                Err(Error::Access(format!("{n} is read-only")))
            }
            _ => Err(Error::ReadOnly(name.to_string())),
        }
    }

    /// `removexattr`: nothing can be removed.
    pub fn removexattr(&self, ino: u64, name: &OsStr) -> Result<()> {
        let name = user_name(name)?;
        let exists = match self.subject(ino)? {
            Subject::Image(..) => NAMES.contains(&name),
            Subject::View(..) => VIEW_NAMES.contains(&name),
            Subject::Nothing => false,
        };
        if exists {
            return Err(Error::Access(format!("{name} cannot be removed")));
        }
        Err(Error::NoAttr(name.to_string()))
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

    #[test]
    fn only_the_user_namespace_exists() {
        for name in [
            "security.selinux",
            "system.posix_acl_access",
            "trusted.x",
            "userx",
        ] {
            let e = user_name(OsStr::new(name)).unwrap_err();
            assert_eq!(e.errno(), libc::EOPNOTSUPP, "{name}");
        }
        assert_eq!(
            user_name(OsStr::new("user.cache_mode")).unwrap(),
            "user.cache_mode"
        );
    }
}
