//! The virtual tree's nodes and their inode numbers.
//!
//! Every entry the mount shows is a [`Node`]: a mirrored source entry, the
//! `NAME.d` directory of an image or one of its subdirectories, a view file
//! in them (a volume, a range, the whole image, a slice), a sidecar file, or
//! a control file under `.nifuse`. The [`InodeTable`] hands out one number per node, the first
//! time the node is seen, and keeps it for the life of the mount, so inode
//! numbers are stable while the source is unchanged. It also counts the
//! kernel's lookups so that forgetting an image's last inode can be noticed.
//!
//! Lock order: the inode table's lock is a leaf; nothing else is locked while
//! it is held.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::view::names::Sidecar;
use crate::view::{Dir, View};

/// The reserved name of the control directory at the mount's root.
pub const CONTROL_DIR: &str = ".nifuse";

/// Inode number of the mount's root (FUSE's fixed root).
pub const ROOT_INO: u64 = 1;

/// The files of the control directory.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Control {
    /// `.nifuse/drop_caches`: write `1` to drop every image cache.
    DropCaches,
    /// `.nifuse/stats`: JSON statistics.
    Stats,
}

impl Control {
    /// All control files, in listing order.
    pub const ALL: [Control; 2] = [Control::DropCaches, Control::Stats];

    /// The file name under `.nifuse`.
    pub fn name(self) -> &'static str {
        match self {
            Control::DropCaches => "drop_caches",
            Control::Stats => "stats",
        }
    }

    /// The control file called `name`, if any.
    pub fn from_name(name: &str) -> Option<Control> {
        Control::ALL.into_iter().find(|c| c.name() == name)
    }
}

/// One entry of the mount.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Node {
    /// A directory, file or symlink of SOURCE at this relative path ("" is the root).
    Mirror(PathBuf),
    /// `NAME.d` (or, for another [`Dir`], one of its subdirectories) of
    /// version `v` of the image at this relative path: `(path, v, dir)`. Each
    /// new version of a source file gets new inodes, so the kernel never
    /// mixes cached pages of two versions.
    ImageDir(PathBuf, u64, Dir),
    /// A view file of version `v` of the image: `(path, v, s, view)`, where
    /// `s` is the version of the image's diffusion sidecars for views chosen
    /// by them (`b0.nii`, shells) and 0 for every other view.
    View(PathBuf, u64, u64, View),
    /// A sidecar file (`.bval`, `.bvec`, `.json`) of a view: `(path, v, s,
    /// view, kind)`, `s` the version of the sidecars it is made from.
    Sidecar(PathBuf, u64, u64, View, Sidecar),
    /// The `.nifuse` directory.
    ControlDir,
    /// A file in `.nifuse`.
    ControlFile(Control),
}

impl Node {
    /// The source path whose references this node counts toward.
    fn source_path(&self) -> Option<&Path> {
        match self {
            Node::Mirror(p) | Node::ImageDir(p, ..) | Node::View(p, ..) | Node::Sidecar(p, ..) => {
                Some(p)
            }
            Node::ControlDir | Node::ControlFile(_) => None,
        }
    }
}

#[derive(Default)]
struct Inner {
    by_node: HashMap<Node, u64>,
    /// `nodes[ino - 1]`: the node and the kernel's lookup count for it.
    nodes: Vec<(Node, u64)>,
    /// Kernel lookups held, summed over all nodes of one source path
    /// (its mirror entry, and for images its `NAME.d` and volumes).
    path_refs: HashMap<PathBuf, u64>,
}

/// Node ↔ inode number, stable for the life of the mount.
pub struct InodeTable {
    inner: Mutex<Inner>,
}

impl Default for InodeTable {
    fn default() -> Self {
        Self::new()
    }
}

impl InodeTable {
    /// A table holding just the root.
    pub fn new() -> InodeTable {
        let mut inner = Inner::default();
        inner.by_node.insert(Node::Mirror(PathBuf::new()), ROOT_INO);
        inner.nodes.push((Node::Mirror(PathBuf::new()), 1));
        InodeTable {
            inner: Mutex::new(inner),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A poisoned lock only means another thread panicked mid-update of
        // plain data that stays consistent; keep serving.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The inode number of `node`, assigning one if it has none yet.
    pub fn ino(&self, node: &Node) -> u64 {
        let mut inner = self.lock();
        if let Some(&ino) = inner.by_node.get(node) {
            return ino;
        }
        inner.nodes.push((node.clone(), 0));
        let ino = inner.nodes.len() as u64;
        inner.by_node.insert(node.clone(), ino);
        ino
    }

    /// The inode number of `node` if it has one, without assigning.
    pub fn existing(&self, node: &Node) -> Option<u64> {
        self.lock().by_node.get(node).copied()
    }

    /// `ino` for `node`, counting one kernel lookup of it.
    pub fn lookup(&self, node: &Node) -> u64 {
        let ino = self.ino(node);
        let mut inner = self.lock();
        if let Some(slot) = index(ino).and_then(|i| inner.nodes.get_mut(i)) {
            slot.1 = slot.1.saturating_add(1);
        }
        if let Some(path) = node.source_path() {
            let refs = inner.path_refs.entry(path.to_path_buf()).or_insert(0);
            *refs = refs.saturating_add(1);
        }
        ino
    }

    /// The node numbered `ino`.
    pub fn node(&self, ino: u64) -> Option<Node> {
        let inner = self.lock();
        index(ino)
            .and_then(|i| inner.nodes.get(i))
            .map(|(n, _)| n.clone())
    }

    /// The kernel forgets `n` lookups of `ino`. Returns the source path the
    /// node belongs to when that was the last reference to any node of that
    /// path (the image's entry, its `NAME.d` and all its volumes).
    pub fn forget(&self, ino: u64, n: u64) -> Option<PathBuf> {
        if ino == ROOT_INO {
            return None;
        }
        let mut inner = self.lock();
        let slot = index(ino).and_then(|i| inner.nodes.get_mut(i))?;
        let dropped = slot.1.min(n);
        if dropped == 0 {
            return None;
        }
        slot.1 -= dropped;
        let path = slot.0.source_path()?.to_path_buf();
        let refs = inner.path_refs.get_mut(&path)?;
        *refs = refs.saturating_sub(dropped);
        if *refs > 0 {
            return None;
        }
        inner.path_refs.remove(&path);
        Some(path)
    }

    /// The inode numbers of every node of the source path `path` (its
    /// mirrored entry, and for images its `NAME.d` and volumes).
    pub fn inodes_of_path(&self, path: &Path) -> Vec<u64> {
        let inner = self.lock();
        (1u64..)
            .zip(inner.nodes.iter())
            .filter(|(_, (node, _))| node.source_path() == Some(path))
            .map(|(ino, _)| ino)
            .collect()
    }

    /// Whether the kernel still holds any inode of the source path `path`
    /// (its mirrored entry, and for images its `NAME.d` or any volume).
    pub fn path_referenced(&self, path: &Path) -> bool {
        self.lock().path_refs.get(path).is_some_and(|&n| n > 0)
    }
}

fn index(ino: u64) -> Option<usize> {
    usize::try_from(ino.checked_sub(1)?).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::view::{Output, Selection};

    fn vol(k: u64, v: u64) -> Node {
        let view = View {
            selection: Selection::Volume(k),
            output: Output::Stored,
        };
        Node::View("img.nii".into(), v, 0, view)
    }

    #[test]
    fn numbers_are_stable_and_distinct() {
        let t = InodeTable::new();
        let a = t.ino(&Node::Mirror("img.nii".into()));
        let b = t.ino(&vol(3, 1));
        assert_ne!(a, b);
        assert_ne!(a, ROOT_INO);
        assert_eq!(t.ino(&Node::Mirror("img.nii".into())), a);
        assert_eq!(t.node(b), Some(vol(3, 1)));
        assert_ne!(t.ino(&vol(3, 2)), b, "a new version is a new inode");
        assert_eq!(t.node(ROOT_INO), Some(Node::Mirror(PathBuf::new())));
        assert_eq!(t.node(0), None);
        assert_eq!(t.node(999), None);
    }

    #[test]
    fn forgetting_the_last_lookup_reports_the_node() {
        let t = InodeTable::new();
        let v = Node::View(
            "img.nii".into(),
            1,
            0,
            View {
                selection: Selection::Volume(0),
                output: Output::Stored,
            },
        );
        let d = Node::ImageDir("img.nii".into(), 1, Dir::TOP);
        let ino = t.lookup(&v);
        t.lookup(&v);
        let dino = t.lookup(&d);
        assert!(t.path_referenced(Path::new("img.nii")));
        assert_eq!(t.forget(ino, 1), None);
        assert_eq!(t.forget(ino, 1), None, "NAME.d still holds the image");
        assert_eq!(t.forget(dino, 5), Some(PathBuf::from("img.nii")));
        assert!(!t.path_referenced(Path::new("img.nii")));
        assert_eq!(t.forget(ino, 1), None);
        assert_eq!(t.forget(ROOT_INO, 1), None);
    }

    #[test]
    fn inodes_of_a_path_are_all_its_nodes() {
        let t = InodeTable::new();
        let m = t.ino(&Node::Mirror("img.nii".into()));
        let d = t.ino(&Node::ImageDir("img.nii".into(), 1, Dir::TOP));
        let v = t.ino(&vol(0, 1));
        t.ino(&Node::View(
            "other.nii".into(),
            1,
            0,
            View {
                selection: Selection::Volume(0),
                output: Output::Stored,
            },
        ));
        assert_eq!(t.inodes_of_path(Path::new("img.nii")), vec![m, d, v]);
        assert!(t.inodes_of_path(Path::new("none.nii")).is_empty());
    }
}
