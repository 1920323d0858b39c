//! Directory listings: what `opendir` shows for each kind of directory, and
//! paging through it with `readdir` and `readdirplus`.
//!
//! A listing is fixed when the directory is opened (kept with the handle),
//! so paging is consistent even while SOURCE changes.

use std::collections::{HashMap, HashSet};
use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use super::attr::Kind;
use super::handle::{DirEntry, Handle};
use super::image::{self, Image};
use super::tree::{CONTROL_DIR, Control, Node, ROOT_INO};
use super::{Entry, Fs};
use crate::error::{Error, Result};
use crate::view::names::Entry as Named;
use crate::view::{Dir, Selection, View};

/// Header probes run at once while a directory is listed: a remote store
/// answers each after a round trip; locally they are short.
const PROBE_THREADS: usize = 16;

/// `NAME.d` for `NAME`.
fn dir_name(name: &OsStr) -> OsString {
    let mut d = name.to_os_string();
    d.push(".d");
    d
}

/// The directory a view's file is in.
fn view_dir(view: View) -> Dir {
    let axis = match view.selection {
        Selection::Slice { axis, .. } => Some(axis),
        _ => None,
    };
    Dir {
        output: view.output,
        axis,
    }
}

impl Fs {
    /// Opens directory `ino`, fixing its listing for the life of the handle.
    pub fn opendir(&self, ino: u64) -> Result<u64> {
        let node = self.node(ino)?;
        let mut entries = vec![
            DirEntry {
                ino,
                name: ".".into(),
                kind: Kind::Dir,
            },
            DirEntry {
                ino: self.parent_ino(&node),
                name: "..".into(),
                kind: Kind::Dir,
            },
        ];
        match &node {
            Node::Mirror(rel) => self.list_mirror(rel, &mut entries)?,
            Node::ImageDir(rel, v, dir) => {
                let image = self.image_version(rel, *v)?;
                let catalog = self.catalog(rel, &image);
                catalog.list(*dir, &mut |name, named| {
                    let kind = match named {
                        Named::Dir(_) => Kind::Dir,
                        Named::View(_) | Named::Sidecar(..) => Kind::File,
                    };
                    let ino = self.inodes.ino(&self.named_node(rel, &image, named));
                    entries.push(DirEntry {
                        ino,
                        name: name.into(),
                        kind,
                    });
                });
            }
            Node::ControlDir => {
                for c in Control::ALL {
                    let ino = self.inodes.ino(&Node::ControlFile(c));
                    entries.push(DirEntry {
                        ino,
                        name: c.name().into(),
                        kind: Kind::File,
                    });
                }
            }
            Node::View(..) | Node::Sidecar(..) | Node::ControlFile(_) => {
                return Err(Error::NotDir(format!("inode {ino}")));
            }
        }
        Ok(self.handles.insert(Handle::Dir(entries)))
    }

    fn parent_ino(&self, node: &Node) -> u64 {
        let parent = match node {
            Node::ImageDir(rel, v, dir) if *dir != Dir::TOP => {
                Node::ImageDir(rel.clone(), *v, dir.parent().unwrap_or(Dir::TOP))
            }
            Node::Mirror(rel) | Node::ImageDir(rel, ..) => match rel.parent() {
                Some(p) => Node::Mirror(p.to_path_buf()),
                None => return ROOT_INO,
            },
            Node::View(rel, v, _, view) | Node::Sidecar(rel, v, _, view, _) => {
                Node::ImageDir(rel.clone(), *v, view_dir(*view))
            }
            Node::ControlDir => return ROOT_INO,
            Node::ControlFile(_) => Node::ControlDir,
        };
        self.inodes.ino(&parent)
    }

    fn list_mirror(&self, rel: &Path, out: &mut Vec<DirEntry>) -> Result<()> {
        let mut names = Vec::new();
        for item in self.store().list(rel)? {
            if rel.as_os_str().is_empty() && item.name == CONTROL_DIR {
                continue;
            }
            names.push((item.name, item.kind));
        }
        let present: HashSet<_> = names.iter().map(|(n, _)| n.clone()).collect();
        // NIfTI-named files without a real `NAME.d` beside them: probed (their
        // headers read) all at once, since a remote store answers each after a
        // round trip.
        let candidates: Vec<PathBuf> = names
            .iter()
            .filter(|(name, kind)| {
                matches!(kind, Kind::File | Kind::Symlink)
                    && name.to_str().and_then(image::name_kind).is_some()
                    && !present.contains(&dir_name(name))
            })
            .map(|(name, _)| rel.join(name))
            .collect();
        let images = self.probe_all(&candidates);
        for (name, kind) in names {
            let child = rel.join(&name);
            let ino = self.inodes.ino(&Node::Mirror(child.clone()));
            out.push(DirEntry {
                ino,
                name: name.clone(),
                kind,
            });
            let Some(image) = images.get(&child) else {
                continue;
            };
            let ino = self
                .inodes
                .ino(&Node::ImageDir(child, image.version, Dir::TOP));
            out.push(DirEntry {
                ino,
                name: dir_name(&name),
                kind: Kind::Dir,
            });
        }
        if rel.as_os_str().is_empty() {
            let ino = self.inodes.ino(&Node::ControlDir);
            out.push(DirEntry {
                ino,
                name: CONTROL_DIR.into(),
                kind: Kind::Dir,
            });
        }
        Ok(())
    }

    /// The images among `paths`, probed on up to [`PROBE_THREADS`] threads.
    fn probe_all(&self, paths: &[PathBuf]) -> HashMap<PathBuf, Arc<Image>> {
        let next = AtomicUsize::new(0);
        let found = Mutex::new(HashMap::new());
        let work = || {
            while let Some(p) = paths.get(next.fetch_add(1, Ordering::Relaxed)) {
                if let Some(image) = self.image_at(p) {
                    found
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .insert(p.clone(), image);
                }
            }
        };
        let threads = paths.len().min(PROBE_THREADS);
        if threads <= 1 {
            work();
        } else {
            std::thread::scope(|s| {
                for _ in 0..threads {
                    s.spawn(work);
                }
            });
        }
        found.into_inner().unwrap_or_else(|e| e.into_inner())
    }

    /// The entries of open directory `fh` from position `offset` on. Entry
    /// `i` of the result has position `offset + i + 1` for the next call.
    pub fn readdir(&self, fh: u64, offset: u64) -> Result<Vec<DirEntry>> {
        let mut out = Vec::new();
        self.readdir_with(fh, offset, &mut |e| {
            out.push(e.clone());
            false
        })?;
        Ok(out)
    }

    /// Hands the entries of open directory `fh` from position `offset` on to
    /// `add`, until it returns true (the caller's buffer is full).
    pub fn readdir_with(
        &self,
        fh: u64,
        offset: u64,
        add: &mut dyn FnMut(&DirEntry) -> bool,
    ) -> Result<()> {
        match &*self.handles.get(fh)? {
            Handle::Dir(entries) => {
                let skip = usize::try_from(offset).unwrap_or(usize::MAX);
                for e in entries.iter().skip(skip) {
                    if add(e) {
                        break;
                    }
                }
                Ok(())
            }
            _ => Err(Error::NotDir(format!("handle {fh}"))),
        }
    }

    /// Like [`Fs::readdir_with`], with each entry's attributes (readdirplus).
    /// Every entry `add` accepts (returns false for) counts as a kernel
    /// lookup, except `.` and `..`; entries that vanished are skipped.
    pub fn readdirplus_with(
        &self,
        fh: u64,
        offset: u64,
        add: &mut dyn FnMut(u64, &DirEntry, &Entry) -> bool,
    ) -> Result<()> {
        let mut pos = offset;
        self.readdir_with(fh, offset, &mut |e| {
            pos += 1;
            let Some(node) = self.inodes.node(e.ino) else {
                return false;
            };
            let Ok(entry) = self.entry(e.ino, &node) else {
                return false;
            };
            if add(pos, e, &entry) {
                return true;
            }
            if e.name != "." && e.name != ".." {
                self.inodes.lookup(&node);
            }
            false
        })
    }
}
