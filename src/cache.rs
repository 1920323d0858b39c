//! Per-image caches with nibabel's semantics: `fill`, `unchanged`, `in_memory`, `uncache`.
//!
//! Each source image has at most one [`ImageCache`]: its whole decoded data
//! array, held in fixed-size chunks of anonymous memory. In `fill` mode the
//! first read of any volume starts a background thread that reads the array
//! from the start, chunk by chunk. For an uncompressed image a reader waits
//! only until the chunks it needs are in (its own volume plus the part before
//! it); for a compressed one it never waits, and decodes its own volume
//! through the gzip index meanwhile. The fill of a compressed image first
//! waits for (or drives) the first pass through its gzip stream, then fills
//! from the complete index on one thread per core, each decoding a
//! contiguous run of chunks from its own checkpoint. Fill threads run at a
//! lower priority (nice 10) than the threads serving requests. A reader falls back to the source if the
//! fill fails or is cancelled, and when the first gzip pass found damage in the
//! source after the fill read it (the cache is then dropped). In `unchanged`
//! mode a full cache is used and none is ever started.
//!
//! [`Caches`] bounds all caches together by a byte budget, evicting the least
//! recently used image first; an image larger than the budget is served
//! uncached. Lock order: `Caches` state, then an `ImageCache`'s progress lock;
//! neither is held during I/O.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock};

use memmap2::MmapMut;

use crate::fs::image::Image;

#[path = "cache_fill.rs"]
mod fill;
use fill::FillSlots;

/// Bytes per cache chunk.
pub const CHUNK: u64 = 4 << 20;

/// Fills running at once (more queue): more would compete for the cores, and each
/// running fill holds a chunk beyond the budget while it is being read.
pub const MAX_FILLS: usize = 2;

/// How reads treat an image's cache.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// The first read fills the whole array into memory.
    Fill,
    /// Use the cache when it is full; never fill it.
    Unchanged,
}

impl Mode {
    /// The attribute value: `fill` or `unchanged`.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Fill => "fill",
            Mode::Unchanged => "unchanged",
        }
    }
}

impl FromStr for Mode {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Mode, String> {
        match s {
            "fill" => Ok(Mode::Fill),
            "unchanged" => Ok(Mode::Unchanged),
            other => Err(format!(
                "cache_mode must be fill or unchanged, not {other:?}"
            )),
        }
    }
}

/// Fill progress of one cache.
#[derive(Debug, Default)]
struct Progress {
    /// Chunks filled, from the start.
    done: usize,
    /// Chunks filled in all (parallel fills complete them out of order).
    filled: usize,
    /// The fill stopped for good (failed, or cancelled by eviction).
    stopped: bool,
}

/// One image's data array in memory, filled front to back.
pub struct ImageCache {
    image: Arc<Image>,
    len: u64,
    chunks: Vec<OnceLock<MmapMut>>,
    progress: Mutex<Progress>,
    changed: Condvar,
    cancel: AtomicBool,
}

impl ImageCache {
    fn new(image: Arc<Image>) -> ImageCache {
        let len = image.layout.data_bytes();
        let n = usize::try_from(len.div_ceil(CHUNK)).unwrap_or(0);
        ImageCache {
            image,
            len,
            chunks: (0..n).map(|_| OnceLock::new()).collect(),
            progress: Mutex::new(Progress::default()),
            changed: Condvar::new(),
            cancel: AtomicBool::new(false),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Progress> {
        self.progress.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether every chunk is in memory.
    pub fn is_full(&self) -> bool {
        self.lock().filled == self.chunks.len()
    }

    /// Bytes held in memory now.
    pub fn resident(&self) -> u64 {
        let filled = self.lock().filled as u64;
        filled.saturating_mul(CHUNK).min(self.len)
    }

    /// Copies array bytes `offset..offset+out.len()` into `out`, waiting for
    /// the fill to reach them if `wait`. Returns false if the bytes are not
    /// (and will not be) in memory.
    fn read(&self, offset: u64, out: &mut [u8], wait: bool) -> bool {
        let end = offset.saturating_add(out.len() as u64);
        if end > self.len {
            return false;
        }
        let need = usize::try_from(end.div_ceil(CHUNK)).unwrap_or(usize::MAX);
        if wait {
            let mut p = self.lock();
            while p.done < need {
                if p.stopped {
                    return false;
                }
                p = self.changed.wait(p).unwrap_or_else(|e| e.into_inner());
            }
        }
        let mut pos = offset;
        let mut written = 0;
        while written < out.len() {
            let i = (pos / CHUNK) as usize;
            let Some(chunk) = self.chunks.get(i).and_then(OnceLock::get) else {
                return false;
            };
            let within = (pos % CHUNK) as usize;
            let n = (chunk.len() - within).min(out.len() - written);
            out[written..written + n].copy_from_slice(&chunk[within..within + n]);
            written += n;
            pos += n as u64;
        }
        true
    }
}

/// Cache bookkeeping of one image path.
#[derive(Default)]
struct Slot {
    mode: Option<Mode>,
    cache: Option<Arc<ImageCache>>,
    last_use: u64,
    hits: u64,
    misses: u64,
    warned_too_big: bool,
}

/// A snapshot of one image's cache, for `.nifuse/stats`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SlotStats {
    /// Image path relative to SOURCE.
    pub path: PathBuf,
    /// Effective mode.
    pub mode: Mode,
    /// `empty`, `filling`, `full`, or `partial` (the fill stopped early: a
    /// truncated or corrupt source).
    pub state: &'static str,
    /// Bytes in memory.
    pub bytes: u64,
    /// Reads served from memory.
    pub hits: u64,
    /// Reads served from the source.
    pub misses: u64,
}

#[derive(Default)]
struct State {
    slots: HashMap<PathBuf, Slot>,
    clock: u64,
}

/// All image caches of a mount, under one budget.
pub struct Caches {
    default_mode: Mode,
    budget: u64,
    state: Mutex<State>,
    fills: Arc<FillSlots>,
}

impl Caches {
    /// Caches with `default_mode` for every image and `budget` bytes in all.
    pub fn new(default_mode: Mode, budget: u64) -> Caches {
        Caches {
            default_mode,
            budget,
            state: Mutex::new(State::default()),
            fills: Arc::new(FillSlots::default()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The memory budget in bytes.
    pub fn budget(&self) -> u64 {
        self.budget
    }

    /// The mode of the image at `path`.
    pub fn mode(&self, path: &Path) -> Mode {
        self.lock()
            .slots
            .get(path)
            .and_then(|s| s.mode)
            .unwrap_or(self.default_mode)
    }

    /// Sets the mode of the image at `path`.
    pub fn set_mode(&self, path: &Path, mode: Mode) {
        self.lock()
            .slots
            .entry(path.to_path_buf())
            .or_default()
            .mode = Some(mode);
    }

    /// Whether the cache of `image` (at `path`) is full.
    pub fn in_memory(&self, path: &Path, image: &Arc<Image>) -> bool {
        let state = self.lock();
        let cache = state.slots.get(path).and_then(|s| s.cache.as_ref());
        cache.is_some_and(|c| Arc::ptr_eq(&c.image, image) && c.is_full())
    }

    /// Drops the cache of the image at `path`, if any. Returns whether there was one.
    pub fn uncache(&self, path: &Path) -> bool {
        let cache = self.lock().slots.get_mut(path).and_then(|s| s.cache.take());
        if let Some(c) = &cache {
            c.cancel.store(true, Ordering::Relaxed);
        }
        cache.is_some()
    }

    /// Drops every cache. Returns how many there were.
    pub fn drop_all(&self) -> usize {
        let mut state = self.lock();
        let mut n = 0;
        for slot in state.slots.values_mut() {
            if let Some(c) = slot.cache.take() {
                c.cancel.store(true, Ordering::Relaxed);
                n += 1;
            }
        }
        n
    }

    /// Bytes reserved by all caches.
    pub fn used(&self) -> u64 {
        self.lock()
            .slots
            .values()
            .filter_map(|s| s.cache.as_ref())
            .map(|c| c.len)
            .sum()
    }

    /// Reads `out.len()` bytes of the data array of `image` (at `path`) at
    /// array offset `offset` from its cache, filling the cache first in
    /// `fill` mode. Returns false when the caller must read the source.
    pub fn read(&self, path: &Path, image: &Arc<Image>, offset: u64, out: &mut [u8]) -> bool {
        if image.data.is_gzip() && image.data.intact_before().is_some() {
            // The first pass found damage after the fill may have read it.
            if self.uncache(path) {
                log::info!("{}: cache dropped: its gzip source is damaged", image.name);
            }
            return false;
        }
        let cache = self.cache_for(path, image);
        let served = cache
            .as_ref()
            .is_some_and(|(c, wait)| c.read(offset, out, *wait));
        let mut state = self.lock();
        if let Some(slot) = state.slots.get_mut(path) {
            if served {
                slot.hits += 1
            } else {
                slot.misses += 1
            }
        }
        served
    }

    /// The cache to read from, and whether to wait for its fill; starts a
    /// fill in `fill` mode when there is none.
    fn cache_for(&self, path: &Path, image: &Arc<Image>) -> Option<(Arc<ImageCache>, bool)> {
        let mut guard = self.lock();
        let state = &mut *guard;
        state.clock += 1;
        let now = state.clock;
        let slot = state.slots.entry(path.to_path_buf()).or_default();
        slot.last_use = now;
        let mode = slot.mode.unwrap_or(self.default_mode);
        // Readers wait for the fill of an uncompressed image (it runs at the
        // speed of the source); for a compressed one they decode their own
        // volume from the index rather than wait for a sequential inflate.
        let wait = !image.data.is_gzip();
        if let Some(c) = &slot.cache {
            if Arc::ptr_eq(&c.image, image) {
                return match mode {
                    Mode::Fill => Some((c.clone(), wait)),
                    Mode::Unchanged => c.is_full().then(|| (c.clone(), false)),
                };
            }
            // The source changed: the old array is stale.
            c.cancel.store(true, Ordering::Relaxed);
            slot.cache = None;
        }
        if mode != Mode::Fill {
            return None;
        }
        let len = image.layout.data_bytes();
        if len > self.budget {
            if !slot.warned_too_big {
                slot.warned_too_big = true;
                log::warn!(
                    "{}: its array ({}) is larger than --cache-size ({}); served uncached \
                     (mount with a larger --cache-size to cache it)",
                    image.name,
                    crate::size::human(len),
                    crate::size::human(self.budget)
                );
            }
            return None;
        }
        let cache = Arc::new(ImageCache::new(image.clone()));
        slot.cache = Some(cache.clone());
        Self::evict(state, path, self.budget);
        let filler = cache.clone();
        let fills = self.fills.clone();
        let spawned = std::thread::Builder::new()
            .name("nifuse-fill".into())
            .spawn(move || {
                // Queue for one of MAX_FILLS slots; an eviction meanwhile
                // makes the fill stop at once.
                let _slot = fills.acquire();
                filler.fill();
            });
        if let Err(e) = spawned {
            log::warn!("{}: cannot start a cache fill thread: {e}", image.name);
            if let Some(slot) = state.slots.get_mut(path) {
                slot.cache = None;
            }
            return None;
        }
        Some((cache, wait))
    }

    /// Evicts least recently used caches other than `keep` until all fit `budget`.
    fn evict(state: &mut State, keep: &Path, budget: u64) {
        loop {
            let used: u64 = state
                .slots
                .values()
                .filter_map(|s| s.cache.as_ref())
                .map(|c| c.len)
                .sum();
            if used <= budget {
                return;
            }
            let victim = state
                .slots
                .iter()
                .filter(|(p, s)| s.cache.is_some() && p.as_path() != keep)
                .min_by_key(|(_, s)| s.last_use)
                .map(|(p, _)| p.clone());
            let Some(victim) = victim else { return };
            if let Some(c) = state.slots.get_mut(&victim).and_then(|s| s.cache.take()) {
                log::debug!("{}: cache evicted (least recently used)", c.image.name);
                c.cancel.store(true, Ordering::Relaxed);
            }
        }
    }

    /// Per-image statistics, sorted by path.
    pub fn stats(&self) -> Vec<SlotStats> {
        let state = self.lock();
        let mut v: Vec<SlotStats> = state
            .slots
            .iter()
            .map(|(path, s)| {
                let (state, bytes) = match &s.cache {
                    None => ("empty", 0),
                    Some(c) if c.is_full() => ("full", c.resident()),
                    Some(c) if c.lock().stopped => ("partial", c.resident()),
                    Some(c) => ("filling", c.resident()),
                };
                SlotStats {
                    path: path.clone(),
                    mode: s.mode.unwrap_or(self.default_mode),
                    state,
                    bytes,
                    hits: s.hits,
                    misses: s.misses,
                }
            })
            .collect();
        v.sort_by(|a, b| a.path.cmp(&b.path));
        v
    }
}
