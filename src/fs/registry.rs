//! The images of SOURCE, parsed on first sight and re-parsed when they change.
//!
//! [`Registry::get`] answers "is this source path an image, and which one":
//! it stats the file (and a pair's data file), and when their identities match
//! the last probe it returns the same [`Image`]; otherwise it parses the new
//! version. A file that does not parse is remembered too, so its reason is
//! logged once per version of the file. Symlinks count as images only when
//! they resolve to a regular file inside SOURCE.
//!
//! Lock order: the slot map's lock is never held during I/O or while taking
//! another lock.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::image::{self, Image, NotImage};
use crate::source::{NotFile, Store, Version};

type Idents = (Version, Option<Version>);

struct Slot {
    idents: Idents,
    image: Option<Arc<Image>>,
    /// When the file was last seen unchanged (None: look again next time).
    checked: Option<Instant>,
}

/// Parsed images by their path relative to SOURCE.
pub struct Registry {
    store: Arc<dyn Store>,
    index_dir: Option<PathBuf>,
    /// How long a stat of a source file is taken as current: requests in a
    /// burst (`ls -l` of a thousand volumes) share one stat.
    recheck: Duration,
    slots: Mutex<HashMap<PathBuf, Slot>>,
    versions: std::sync::atomic::AtomicU64,
    /// NIfTI-named entries that are not regular files inside SOURCE, already logged.
    logged: Mutex<std::collections::HashSet<PathBuf>>,
}

impl Registry {
    /// A registry of the images of `store`.
    pub fn new(store: Arc<dyn Store>, index_dir: Option<PathBuf>, recheck: Duration) -> Registry {
        Registry {
            store,
            index_dir,
            recheck,
            slots: Mutex::new(HashMap::new()),
            versions: std::sync::atomic::AtomicU64::new(1),
            logged: Mutex::new(std::collections::HashSet::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<PathBuf, Slot>> {
        self.slots.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The file an image path refers to: itself, or the target of a symlink
    /// that stays inside SOURCE (relative to it). A NIfTI-named entry that
    /// is neither is logged once, with the reason it has no `.d`.
    fn resolve(&self, rel: &Path) -> Option<PathBuf> {
        let why = match self.store.resolve(rel) {
            Ok((target, _)) => return Some(target),
            Err(NotFile::Missing) => return None,
            Err(NotFile::Other(why)) => why,
        };
        let first = self
            .logged
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(rel.to_path_buf());
        if first {
            log::info!("{}: shown as it is, without .d: {why}", rel.display());
        }
        None
    }

    /// The image at `rel` (relative to SOURCE), if it is one.
    pub fn get(&self, rel: &Path) -> Option<Arc<Image>> {
        if let Some(slot) = self.lock().get(rel)
            && slot.checked.is_some_and(|t| t.elapsed() < self.recheck)
        {
            return slot.image.clone();
        }
        let name = rel.to_str()?;
        let file_name = rel.file_name()?.to_str()?;
        image::name_kind(file_name)?;
        let path = self.resolve(rel)?;
        let idents = image::current_idents(self.store.as_ref(), &path)?;
        if let Some(slot) = self.lock().get_mut(rel)
            && slot.idents == idents
        {
            slot.checked = Some(Instant::now());
            return slot.image.clone();
        }
        let image = match image::probe(&self.store, &path, name, self.index_dir.as_deref()) {
            Ok(mut img) => {
                img.version = self
                    .versions
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                Some(Arc::new(img))
            }
            Err(NotImage::Quiet) => None,
            Err(NotImage::Reason(why)) => {
                log::warn!("{name}: shown as a plain file, not as an image: {why}");
                None
            }
        };
        let mut slots = self.lock();
        if let Some(old) = slots.get(rel)
            && old.idents != idents
            && old.image.is_some()
        {
            log::info!("{name}: changed on disk; its volumes now come from the new file");
        }
        slots.insert(
            rel.to_path_buf(),
            Slot {
                idents,
                image: image.clone(),
                checked: Some(Instant::now()),
            },
        );
        image
    }

    /// Makes the next [`Registry::get`] of `rel` look at the file again
    /// (something noticed that it changed).
    pub fn expire(&self, rel: &Path) {
        if let Some(slot) = self.lock().get_mut(rel) {
            slot.checked = None;
        }
    }

    /// The image at `rel` as last parsed, without touching the disk.
    pub fn known(&self, rel: &Path) -> Option<Arc<Image>> {
        self.lock().get(rel).and_then(|s| s.image.clone())
    }

    /// Every image parsed so far, with its relative path, sorted by path.
    pub fn all(&self) -> Vec<(PathBuf, Arc<Image>)> {
        let mut v: Vec<_> = self
            .lock()
            .iter()
            .filter_map(|(p, s)| s.image.clone().map(|i| (p.clone(), i)))
            .collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }
}
