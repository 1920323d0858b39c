//! Names and attributes: which node a name in a directory is, and what
//! `stat` shows for each node.
//!
//! A name in a view directory (`NAME.d/`, `float32/`, `x/`, ...) is asked of
//! the image's [`Catalog`](crate::view::names::Catalog); attributes of views
//! come from the header alone ([`Shape`]), so `ls -l` reads no voxel data.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::attr::{self, Attr, Kind};
use super::handle::Handle;
use super::image::Image;
use super::tree::{CONTROL_DIR, Control, Node};
use super::{Entry, Fs};
use crate::error::{Error, Result};
use crate::view::names::Entry as Named;
use crate::view::shape::Shape;
use crate::view::{Dir, Selection, View};

impl Fs {
    /// `view` of version `v` of the image at `rel` (sidecar version `s`),
    /// resolved; ENOENT if the image has no such view, ESTALE if it changed.
    pub(crate) fn view_shape(
        &self,
        rel: &Path,
        v: u64,
        s: u64,
        view: View,
    ) -> Result<(Arc<Image>, Shape)> {
        let image = self.image_version(rel, v)?;
        let missing = || Error::NotFound(format!("{}.d: no such view {view:?}", rel.display()));
        let sets = match view.selection {
            Selection::B0 | Selection::Shell(_) => Some(self.volume_sets(rel, &image, s)?),
            _ => None,
        };
        let shape = Shape::resolve(&image.layout, view, sets.as_deref(), &image.floats)
            .ok_or_else(missing)?;
        Ok((image, shape))
    }

    /// The attributes of `node`, numbered `ino`.
    fn attr_of(&self, ino: u64, node: &Node) -> Result<Attr> {
        let (uid, gid, t) = (self.config.uid, self.config.gid, self.started);
        match node {
            Node::Mirror(rel) => {
                let meta = self.lstat(rel)?;
                // An image file that changed (even only its owner or mode) is
                // noticed the moment the kernel asks for its new attributes,
                // whatever the registry's recheck interval: the kernel is then
                // told to forget its NAME.d, whose attributes follow the file.
                if let Some(known) = self.images.known(rel)
                    && known.header_path == *rel
                    && known.header_meta.version != meta.version
                {
                    self.images.expire(rel);
                    self.image_at(rel);
                }
                Ok(attr::mirror(ino, &meta))
            }
            Node::ImageDir(rel, v, dir) => {
                let image = self.image_version(rel, *v)?;
                if !self.dir_exists(&image, *dir) {
                    return Err(Error::NotFound(format!("{}.d: {dir:?}", rel.display())));
                }
                Ok(attr::image_dir(ino, &image.header_meta))
            }
            Node::View(rel, v, s, view) => {
                let (image, shape) = self.view_shape(rel, *v, *s, *view)?;
                Ok(attr::volume(ino, &image.header_meta, shape.file_size()))
            }
            Node::Sidecar(rel, v, s, view, kind) => {
                let image = self.image_version(rel, *v)?;
                let size = self.sidecar_bytes(rel, &image, *s, *view, *kind)?.len() as u64;
                Ok(attr::volume(ino, &image.header_meta, size))
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

    /// Whether view directory `dir` exists for `image`.
    fn dir_exists(&self, image: &Image, dir: Dir) -> bool {
        dir == Dir::TOP || dir.output == crate::view::Output::Stored || image.catalog.floats
    }

    pub(crate) fn entry(&self, ino: u64, node: &Node) -> Result<Entry> {
        // What the sidecars choose may change while the image does not: the
        // kernel keeps such names no longer than mirrored ones.
        let ttl = match node {
            Node::View(_, _, 0, _) | Node::ImageDir(..) => self.config.volume_ttl,
            Node::View(..)
            | Node::Sidecar(..)
            | Node::Mirror(_)
            | Node::ControlDir
            | Node::ControlFile(_) => self.config.ttl,
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
                if self.store().stat(&rel).is_ok() {
                    return Ok(Node::Mirror(rel));
                }
                let image_name = name
                    .to_str()
                    .and_then(|n| n.strip_suffix(".d"))
                    .ok_or_else(missing)?;
                let image_rel = dir.join(image_name);
                let image = self.image_at(&image_rel).ok_or_else(missing)?;
                Ok(Node::ImageDir(image_rel, image.version, Dir::TOP))
            }
            Node::ImageDir(rel, v, dir) => {
                let image = self.image_version(rel, *v)?;
                let catalog = self.catalog(rel, &image);
                let named = name
                    .to_str()
                    .and_then(|n| catalog.lookup(*dir, n))
                    .ok_or_else(missing)?;
                Ok(self.named_node(rel, &image, named))
            }
            Node::ControlDir => {
                let c = name
                    .to_str()
                    .and_then(Control::from_name)
                    .ok_or_else(missing)?;
                Ok(Node::ControlFile(c))
            }
            Node::View(..) | Node::Sidecar(..) | Node::ControlFile(_) => {
                Err(Error::NotDir(name.to_string_lossy().into_owned()))
            }
        }
    }

    /// The node of an entry of one of `image`'s view directories.
    pub(crate) fn named_node(&self, rel: &Path, image: &Image, named: Named) -> Node {
        let (v, rel) = (image.version, rel.to_path_buf());
        match named {
            Named::Dir(dir) => Node::ImageDir(rel, v, dir),
            Named::View(view) => {
                let s = match view.selection {
                    Selection::B0 | Selection::Shell(_) => self.sidecar_version(&rel, image),
                    _ => 0,
                };
                Node::View(rel, v, s, view)
            }
            Named::Sidecar(view, kind) => {
                let s = self.sidecar_version(&rel, image);
                Node::Sidecar(rel, v, s, view, kind)
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
    /// open view keeps the attributes of the version it opened, even after
    /// the source changed (where a path lookup would give ESTALE).
    pub fn getattr_open(&self, ino: u64, fh: Option<u64>) -> Result<Entry> {
        if let Some(handle) = fh.and_then(|fh| self.handles.get(fh).ok())
            && let Handle::View(v) = &*handle
        {
            let attr = attr::volume(ino, &v.image.header_meta, v.file_size());
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
    /// views is open, loses its cache.
    pub fn forget(&self, ino: u64, n: u64) -> Option<PathBuf> {
        let path = self.inodes.forget(ino, n)?;
        let open = self
            .handles
            .any_view(|v| v.image.name == path.to_string_lossy());
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
        use std::os::unix::ffi::OsStringExt;
        match self.node(ino)? {
            Node::Mirror(rel) => self.store().read_link(&rel).map(|t| t.into_vec()),
            _ => Err(Error::Invalid("not a symlink".into())),
        }
    }
}
