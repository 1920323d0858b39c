//! Random access to the uncompressed bytes of a gzip file (zran-style index).
//!
//! # Design
//! * **Checkpoints** (`index.rs`): places where inflation can resume: a deflate
//!   block boundary, stored as a compressed *bit* position plus the up to
//!   32 KiB of output before it (the window), or the start of a gzip member
//!   (no window). One is placed at the last block boundary before each
//!   requested start (each volume's first byte), and one every ~1 MiB inside
//!   regions longer than 2 MiB (and after the last start).
//! * **Cursors** (`reader.rs`): a live raw-inflate state (`zlib.rs`, the only
//!   `unsafe`) with a history buffer. A read takes the cheapest of (a cached
//!   cursor at or a little before the offset, a new cursor at the last
//!   checkpoint before the offset), inflates forward and returns the cursor to
//!   a small cache, so sequential readers never go backwards. Cursors apply
//!   the placement rules to every boundary they pass, so the index is built
//!   lazily, only as far as the furthest byte requested (`covered`), and
//!   continued later. Every member's CRC-32/ISIZE is checked when a cursor
//!   reaches it (checkpoints carry the running CRC of their member).
//! * **Persistence** (`persist.rs`): `<index_dir>/<name>-<hash of key>.gzidx`,
//!   written atomically (temp file + rename): magic `NIFUSEGZ`, format
//!   version, payload length, CRC-32 of the payload; the payload holds the
//!   key (locator, size, version tag), a digest of the requested
//!   starts, the covered range and the checkpoints with raw-deflated windows.
//!   A stale, truncated or corrupt file is ignored (logged) and rebuilt; every
//!   checkpoint is bounds-checked on load and again on use.
//!
//! A read whose bytes were all decoded succeeds even if the stream is cut
//! short just after them; whole-stream integrity (every member's CRC-32) is
//! established by one `build_all` pass, which `source::DataFile` makes before
//! serving any byte.
//!
//! # Locks
//! `save_lock` (serialises saves) may be taken before `inner` (index +
//! cursor cache); never the other way round. `inner` is only held for short
//! bookkeeping, never while inflating or doing file I/O.

mod header;
mod index;
mod persist;
#[cfg(test)]
mod persist_tests;
mod placement;
mod reader;
#[cfg(test)]
mod tests;
mod zlib;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use super::ByteSource;
use super::local::LocalFile;
use index::{Index, Rules};
use reader::{Ctx, Cursor};

/// How a member whose CRC-32 or length does not match its trailer is reported
/// (in [`GzError::Corrupt`]'s message).
pub const TRAILER_MISMATCH: &str = "gzip member trailer mismatch";

/// The format version of saved index files (older ones are rebuilt, not read).
pub const INDEX_FORMAT_VERSION: u32 = persist::VERSION;

/// How many idle cursors (live inflate states) are kept per file.
const MAX_CURSORS: usize = 4;
/// `build_all` merges its findings and reports progress every this many output bytes.
const BUILD_CHUNK: u64 = 16 << 20;

/// Errors of the gzip random-access layer.
#[derive(Debug, thiserror::Error)]
pub enum GzError {
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
    #[error("corrupt gzip data near compressed offset {at_compressed}: {msg}")]
    Corrupt { at_compressed: u64, msg: String },
    #[error("gzip stream truncated: only {available} uncompressed bytes available")]
    Truncated { available: u64 },
    #[error("invalid gzip index: {0}")]
    BadIndex(String),
    #[error("read of {len} bytes at {offset} is past the end of the data ({total} bytes)")]
    OutOfRange { offset: u64, len: u64, total: u64 },
}

impl From<GzError> for std::io::Error {
    fn from(e: GzError) -> std::io::Error {
        use std::io::ErrorKind;
        match e {
            GzError::Io(e) => e,
            e @ (GzError::Truncated { .. } | GzError::OutOfRange { .. }) => {
                std::io::Error::new(ErrorKind::UnexpectedEof, e.to_string())
            }
            e => std::io::Error::new(ErrorKind::InvalidData, e.to_string()),
        }
    }
}

/// Identity of one version of a source; an index is only used for the same key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexKey {
    /// Where the bytes live: a canonical path, or `s3://ENDPOINT/BUCKET/KEY`.
    pub locator: String,
    /// Size of the compressed source in bytes.
    pub size: u64,
    /// What tells versions of one locator apart (mtime and inode, or the ETag).
    pub tag: String,
}

impl IndexKey {
    /// The key of the file at `path` as it is now (symlinks followed).
    pub fn for_file(path: &Path) -> std::io::Result<IndexKey> {
        let src = LocalFile::open_followed(path).map_err(std::io::Error::other)?;
        Ok(IndexKey::of(&src))
    }

    /// The key of the version `src` reads.
    pub fn of(src: &dyn ByteSource) -> IndexKey {
        IndexKey {
            locator: src.locator().to_string(),
            size: src.len(),
            tag: src.version().index_tag(),
        }
    }
}

/// How much of a file the index covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IndexState {
    None,
    Partial { covered_bytes: u64 },
    Complete { total_bytes: u64 },
}

struct Inner {
    index: Index,
    cursors: Vec<Cursor>,
    generation: u64,
    saved_generation: u64,
}

/// Thread-safe (Send + Sync) random access to the uncompressed bytes of one gzip file.
pub struct GzAccess {
    file: Arc<dyn ByteSource>,
    file_len: u64,
    key: IndexKey,
    index_file: Option<PathBuf>,
    rules: Rules,
    inner: Mutex<Inner>,
    save_lock: Mutex<()>,
    inflated: AtomicU64,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl GzAccess {
    /// [`GzAccess::with_source`] over the local file at `path` (symlinks followed).
    pub fn open(
        path: &Path,
        starts: Vec<u64>,
        index_dir: Option<&Path>,
    ) -> Result<GzAccess, GzError> {
        let src = LocalFile::open_followed(path).map_err(std::io::Error::other)?;
        GzAccess::with_source(Arc::new(src), starts, index_dir)
    }

    /// Random access to the gzip stream of `file`.
    /// `starts`: uncompressed offsets that must get a checkpoint (each volume's first byte), sorted.
    /// `index_dir`: where to load/save the persistent index (None = memory only). Loads a valid saved index if present.
    pub fn with_source(
        file: Arc<dyn ByteSource>,
        starts: Vec<u64>,
        index_dir: Option<&Path>,
    ) -> Result<GzAccess, GzError> {
        let key = IndexKey::of(file.as_ref());
        let file_len = file.len();
        let mut index = Index::new(starts);
        let rules = Rules {
            starts: Arc::from(index.starts.clone()),
        };
        let index_file = index_dir.map(|d| d.join(persist::file_name(&key)));
        if let Some(f) = &index_file {
            match persist::load(f, &key, &index.starts) {
                Ok(Some(loaded)) => index = loaded,
                Ok(None) => {}
                Err(msg) => log::warn!("gzindex: ignoring index {}: {msg}", f.display()),
            }
        }
        Ok(GzAccess {
            file,
            file_len,
            key,
            index_file,
            rules,
            inner: Mutex::new(Inner {
                index,
                cursors: Vec::new(),
                generation: 0,
                saved_generation: 0,
            }),
            save_lock: Mutex::new(()),
            inflated: AtomicU64::new(0),
        })
    }

    fn ctx(&self) -> Ctx<'_> {
        Ctx {
            file: self.file.as_ref(),
            file_len: self.file_len,
            rules: &self.rules,
            inflated: &self.inflated,
        }
    }

    /// Take the cheapest way to reach `offset`: a cached cursor or a new one at a checkpoint.
    fn checkout(&self, offset: u64, len: u64) -> Result<Cursor, GzError> {
        let (cp, next, known) = {
            let mut g = lock(&self.inner);
            if let Some(total) = g.index.total
                && offset.checked_add(len).is_none_or(|e| e > total)
            {
                return Err(GzError::OutOfRange { offset, len, total });
            }
            let cp = g.index.best_for(offset).cloned();
            let cp_cost = cp.as_ref().map_or(offset, |c| offset - c.out);
            let best = g
                .cursors
                .iter()
                .enumerate()
                .filter(|(_, c)| c.hist_base() <= offset)
                .map(|(i, c)| (offset.saturating_sub(c.out()), i))
                .filter(|&(cost, _)| cost <= cp_cost)
                .min();
            if let Some((_, i)) = best {
                return Ok(g.cursors.remove(i));
            }
            let next = g
                .index
                .cps
                .get(g.index.cps.partition_point(|c| c.out <= offset))
                .cloned();
            (cp, next, g.index.covered)
        };
        let ctx = self.ctx();
        let mut c = match cp {
            Some(cp) => Cursor::at_checkpoint(&ctx, &cp, known),
            None => Cursor::at_start(&ctx, known),
        }?;
        c.verify = next;
        Ok(c)
    }

    /// Merge what the cursor learned into the index; keep it for reuse if `keep`.
    fn checkin(&self, mut c: Cursor, result: &Result<(), GzError>) {
        let mut g = lock(&self.inner);
        if let Err(GzError::BadIndex(msg)) = result {
            log::warn!("gzindex: {}: discarding the index: {msg}", self.key.locator);
            g.index = Index::new(self.rules.starts.to_vec());
            g.cursors.clear();
            g.generation += 1;
            return;
        }
        let keep = result.is_ok();
        let added = g.index.merge(std::mem::take(&mut c.pending));
        let mut changed = added > 0;
        if c.seen_to > g.index.covered {
            g.index.covered = c.seen_to;
        }
        if let Some(t) = c.total
            && g.index.total.is_none()
        {
            g.index.total = Some(t);
            g.index.covered = t;
            changed = true;
        }
        if changed {
            g.generation += 1;
        }
        c.known_covered = g.index.covered;
        if keep {
            if g.cursors.len() >= MAX_CURSORS {
                g.cursors.remove(0);
            }
            g.cursors.push(c);
        }
    }

    /// Fill `buf` with uncompressed bytes starting at `offset` (exact; error if the stream ends first).
    pub fn read_exact_at(&self, offset: u64, buf: &mut [u8]) -> Result<(), GzError> {
        if buf.is_empty() {
            return Ok(());
        }
        let mut c = self.checkout(offset, buf.len() as u64)?;
        let r = c.read(&self.ctx(), offset, buf);
        if let Err(e) = &r {
            log::debug!(
                "gzindex: {}: read of {} bytes at {offset}: {e}",
                self.key.locator,
                buf.len()
            );
        }
        self.checkin(c, &r);
        r
    }

    pub fn state(&self) -> IndexState {
        let g = lock(&self.inner);
        match (g.index.total, g.index.cps.is_empty()) {
            (Some(total_bytes), _) => IndexState::Complete { total_bytes },
            (None, true) => IndexState::None,
            (None, false) => IndexState::Partial {
                covered_bytes: g.index.covered,
            },
        }
    }

    /// Persist the index if it grew since the last save (atomic write). Called after reads and on drop/unmount.
    pub fn save(&self) -> Result<(), GzError> {
        let Some(target) = &self.index_file else {
            return Ok(());
        };
        let _s = lock(&self.save_lock);
        let (snapshot, generation) = {
            let g = lock(&self.inner);
            if g.generation == g.saved_generation || g.index.cps.is_empty() {
                return Ok(());
            }
            (g.index.clone(), g.generation)
        };
        persist::save(target, &self.key, &snapshot)?;
        lock(&self.inner).saved_generation = generation;
        Ok(())
    }

    /// Build the whole index now (for `nifuse index FILE`), calling progress(compressed_pos, compressed_len).
    pub fn build_all(&self, progress: &mut dyn FnMut(u64, u64)) -> Result<(), GzError> {
        let ctx = self.ctx();
        let start = {
            let g = lock(&self.inner);
            if g.index.total.is_some() {
                progress(self.file_len, self.file_len);
                return Ok(());
            }
            g.index.covered
        };
        let mut c = self.checkout(start, 0)?;
        loop {
            let r = c.run_to(&ctx, c.out().saturating_add(BUILD_CHUNK));
            progress(c.in_pos().min(self.file_len), self.file_len);
            let done = c.is_done();
            let pending = std::mem::take(&mut c.pending);
            {
                let mut g = lock(&self.inner);
                if g.index.merge(pending) > 0 {
                    g.generation += 1;
                }
                g.index.covered = g.index.covered.max(c.seen_to);
                c.known_covered = g.index.covered;
            }
            if let Err(e) = r {
                log::debug!("gzindex: {}: building index: {e}", self.key.locator);
                let r = Err(e);
                self.checkin(c, &r);
                return r;
            }
            if done {
                self.checkin(c, &Ok(()));
                return Ok(());
            }
        }
    }

    /// Total bytes inflated by this instance so far (for tests and statistics).
    pub fn inflated_bytes(&self) -> u64 {
        self.inflated.load(Ordering::Relaxed)
    }

    /// Number of checkpoints currently in the index.
    pub fn checkpoint_count(&self) -> usize {
        lock(&self.inner).index.cps.len()
    }

    /// After corruption found at compressed byte `at_compressed`: the
    /// uncompressed offset before which output came only from compressed
    /// bytes at least `margin` bytes before the corruption, so it is
    /// trustworthy (0 if no checkpoint is that early).
    pub fn trusted_before(&self, at_compressed: u64, margin: u64) -> u64 {
        let limit_bits = at_compressed.saturating_sub(margin).saturating_mul(8);
        lock(&self.inner)
            .index
            .cps
            .iter()
            .filter(|c| c.bitpos < limit_bits)
            .map(|c| c.out)
            .max()
            .unwrap_or(0)
    }

    /// The uncompressed offset where the gzip member holding compressed byte
    /// `at_compressed` starts: after a trailer (CRC-32/ISIZE) mismatch no byte
    /// of that member can be trusted, those of earlier members can.
    pub fn member_start_before(&self, at_compressed: u64) -> u64 {
        let bits = at_compressed.saturating_mul(8);
        lock(&self.inner)
            .index
            .cps
            .iter()
            .filter(|c| c.bitpos < bits)
            .map(|c| c.member_out)
            .max()
            .unwrap_or(0)
    }

    /// Uncompressed offsets of all checkpoints (for tests and diagnostics).
    pub fn checkpoint_offsets(&self) -> Vec<u64> {
        lock(&self.inner).index.cps.iter().map(|c| c.out).collect()
    }

    /// The identity of the file this instance reads (taken when opened).
    pub fn key(&self) -> &IndexKey {
        &self.key
    }

    /// Path of the persistent index file, if an index dir was given.
    pub fn index_path(&self) -> Option<&Path> {
        self.index_file.as_deref()
    }
}

impl Drop for GzAccess {
    fn drop(&mut self) {
        if let Err(e) = self.save() {
            log::warn!("gzindex: {}: saving index failed: {e}", self.key.locator);
        }
    }
}
