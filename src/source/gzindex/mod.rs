//! Random access to the uncompressed bytes of a gzip file (zran-style index).
//!
//! # Design
//! * **Checkpoints** (`index.rs`): places where inflation can resume: a deflate
//!   block boundary, stored as a compressed *bit* position plus the up to
//!   32 KiB of output before it (the window), or the start of a gzip member
//!   (no window). One is placed at the last block boundary before each
//!   requested start (each volume's first byte), and one every ~1 MiB inside
//!   regions longer than 2 MiB (and after the last start).
//! * **Segments** (`segments.rs`): the CRC-32 of the decoded bytes between
//!   consecutive boundaries (checkpoints, volume starts, deflate blocks,
//!   members, a 128 KiB grid); they combine into each member's CRC-32.
//! * **The first pass** (`pass.rs`, `pool.rs`): one build cursor per file
//!   inflates the stream from the start, placing checkpoints, recording
//!   segments and checking every member's CRC-32/ISIZE against its trailer.
//!   A reader takes it only as far as its own bytes (and, in background
//!   verify mode, a safety margin); a background continuation takes it on to
//!   the end. Readers wait on a condition variable while another thread
//!   drives it.
//! * **Reads** (`reader.rs`): a check cursor resumes at the last checkpoint
//!   before the offset (or continues a cached one), inflates forward and
//!   compares every segment it completes with the recorded CRC before any of
//!   its bytes is returned. A mismatch ([`GzError::Damaged`]) discards the
//!   index: it is rebuilt by a new pass.
//! * **Persistence** (`persist.rs`): `<index_dir>/<name>-<hash of key>.gzidx`,
//!   written atomically (temp file + rename) with a format version and a
//!   CRC-32 of the payload; a stale, truncated or corrupt file, or one of an
//!   older format, is ignored (logged) and rebuilt; every checkpoint is
//!   bounds-checked on load and again on use, and the segments must combine
//!   into the recorded member and checkpoint CRCs.
//!
//! # Locks
//! `save_lock` (serialises saves) may be taken before `inner` (index +
//! cursor cache); `inner` and the pass state are never held together (each
//! is taken alone for short bookkeeping) and never while inflating or doing
//! file I/O.

mod access_read;
mod accounting;
mod header;
mod index;
mod outcome;
mod pass;
mod persist;
#[cfg(test)]
mod persist_tests;
mod placement;
mod pool;
mod prefetch;
mod reader;
mod segments;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod verify_tests;
mod zlib;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, Weak};

use super::ByteSource;
use super::local::LocalFile;
use index::{Index, Rules};
use pass::{Goal, Pass};
use reader::{Ctx, Cursor};

pub use pass::{CORRUPTION_MARGIN, FailKind, Failure, Outcome, Verify};
pub use pool::{MAX_BACKGROUND_PASSES, wait_for_saves};

/// How a member whose CRC-32 or length does not match its trailer is reported
/// (in [`GzError::Corrupt`]'s message).
pub const TRAILER_MISMATCH: &str = "gzip member trailer mismatch";

/// The format version of saved index files (older ones are rebuilt, not read).
pub const INDEX_FORMAT_VERSION: u32 = persist::VERSION;

/// How many idle cursors (live inflate states) are kept per file.
const MAX_CURSORS: usize = 4;
/// A check cursor gets the segments this far past its read (it may decode
/// a little further than asked, and a sequential reader comes back for more).
const CHECK_AHEAD: u64 = 4 * segments::SEG_MAX;

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
    #[error("the decoded data does not match the gzip index: {0}")]
    Damaged(String),
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

/// How far the first pass has got, for statistics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PassReport {
    /// Decoded bytes indexed so far.
    pub decoded: u64,
    /// Total decoded size, once the pass completed.
    pub total: Option<u64>,
    /// Decoded bytes before this lie in members whose CRC-32 matched.
    pub verified: u64,
    /// Members whose CRC-32 and length matched their trailer.
    pub members_verified: usize,
    /// The pass is inflating now or queued to.
    pub running: bool,
    /// How the pass ended, if it did.
    pub outcome: Option<Outcome>,
}

struct Inner {
    index: Index,
    cursors: Vec<Cursor>,
    generation: u64,
    saved_generation: u64,
    /// Bumped whenever the index is discarded.
    epoch: u64,
}

/// Called once when a pass ends (from the thread that ended it, no lock held).
pub type Observer = Box<dyn Fn(&Outcome) + Send + Sync>;

/// Thread-safe (Send + Sync) random access to the uncompressed bytes of one gzip file.
pub struct GzAccess {
    file: Arc<dyn ByteSource>,
    file_len: u64,
    key: IndexKey,
    index_file: Option<PathBuf>,
    rules: Rules,
    inner: Mutex<Inner>,
    pass: Pass,
    save_lock: Mutex<()>,
    inflated: AtomicU64,
    /// Itself, when made by [`GzAccess::shared`]: the pass then goes on in
    /// the background after a reader's part.
    me: Weak<GzAccess>,
    observer: OnceLock<Observer>,
    /// Set when decoded bytes contradicted the index: until a new pass
    /// verified them, reads are strict.
    distrust: std::sync::atomic::AtomicBool,
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
    /// The first pass runs only as far as reads take it.
    pub fn with_source(
        file: Arc<dyn ByteSource>,
        starts: Vec<u64>,
        index_dir: Option<&Path>,
    ) -> Result<GzAccess, GzError> {
        Ok(GzAccess::make(file, starts, index_dir, Weak::new()))
    }

    /// [`GzAccess::with_source`], shared, with the first pass going on in
    /// the background (at most [`MAX_BACKGROUND_PASSES`] files at once)
    /// after the first read.
    pub fn shared(
        file: Arc<dyn ByteSource>,
        starts: Vec<u64>,
        index_dir: Option<&Path>,
    ) -> Arc<GzAccess> {
        Arc::new_cyclic(|me| GzAccess::make(file, starts, index_dir, me.clone()))
    }

    fn make(
        file: Arc<dyn ByteSource>,
        starts: Vec<u64>,
        index_dir: Option<&Path>,
        me: Weak<GzAccess>,
    ) -> GzAccess {
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
                Err(msg) => log::warn!(
                    "{}: ignoring its saved gzip index {}: {msg} (it is rebuilt)",
                    key.locator,
                    f.display()
                ),
            }
        }
        GzAccess {
            pass: Pass::new(&index),
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
                epoch: 0,
            }),
            save_lock: Mutex::new(()),
            inflated: AtomicU64::new(0),
            me,
            observer: OnceLock::new(),
            distrust: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// Sets what is called when the first pass ends (once; later calls are ignored).
    pub fn set_observer(&self, f: Observer) {
        let _ = self.observer.set(f);
    }

    fn ctx(&self) -> Ctx<'_> {
        Ctx {
            file: self.file.as_ref(),
            shared: &self.file,
            file_len: self.file_len,
            rules: &self.rules,
            inflated: &self.inflated,
        }
    }

    pub fn state(&self) -> IndexState {
        let g = lock(&self.inner);
        match (g.index.total, g.index.cps.is_empty()) {
            (Some(total_bytes), _) => IndexState::Complete { total_bytes },
            (None, true) => IndexState::None,
            (None, false) => IndexState::Partial {
                covered_bytes: g.index.covered(),
            },
        }
    }

    /// How far the first pass has got and which members were verified.
    pub fn pass_report(&self) -> PassReport {
        let (decoded, total, verified, members_verified) = {
            let g = lock(&self.inner);
            let ix = &g.index;
            (ix.covered(), ix.total, ix.verified_to(), ix.members.len())
        };
        let st = self.pass.lock();
        PassReport {
            decoded,
            total,
            verified,
            members_verified,
            running: st.active(),
            outcome: st.outcome.clone(),
        }
    }

    /// Waits (without driving it) until the first pass ended or `timeout`
    /// passed; returns how it ended.
    pub fn wait_for_pass(&self, timeout: std::time::Duration) -> Option<Outcome> {
        let deadline = std::time::Instant::now() + timeout;
        let mut st = self.pass.lock();
        while st.outcome.is_none() {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                return None;
            }
            st = self
                .pass
                .changed
                .wait_timeout(st, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        st.outcome.clone()
    }

    /// Persist the index if it grew since the last save (atomic write). Called after reads and on drop/unmount.
    /// After a failed pass only the part in verified members is kept.
    pub fn save(&self) -> Result<(), GzError> {
        let Some(target) = &self.index_file else {
            return Ok(());
        };
        let _s = lock(&self.save_lock);
        let failed = matches!(self.pass.lock().outcome, Some(Outcome::Failed(_)));
        let (snapshot, generation) = {
            let g = lock(&self.inner);
            if g.generation == g.saved_generation || g.index.cps.is_empty() {
                return Ok(());
            }
            let mut snapshot = g.index.clone();
            if failed {
                snapshot.truncate(snapshot.verified_to());
            }
            (snapshot, g.generation)
        };
        if !snapshot.cps.is_empty() {
            persist::save(target, &self.key, &snapshot)?;
        }
        lock(&self.inner).saved_generation = generation;
        Ok(())
    }

    /// Runs the first pass to the end now (for `nifuse index FILE`), calling
    /// progress(compressed_pos, compressed_len).
    pub fn build_all(&self, progress: &mut dyn FnMut(u64, u64)) -> Result<(), GzError> {
        let done = |_: &pass::PassState| false;
        self.run_pass(Goal {
            done: &done,
            copy: None,
            progress,
        })?;
        match self.pass.lock().outcome.clone() {
            Some(Outcome::Complete { .. }) => {
                progress(self.file_len, self.file_len);
                Ok(())
            }
            Some(Outcome::Failed(f)) => Err(f.error()),
            None => Err(GzError::BadIndex("the pass stopped early".into())),
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
    /// bytes at least `margin` bytes before the corruption (or from verified
    /// members), so it is trustworthy.
    pub fn trusted_before(&self, at_compressed: u64, margin: u64) -> u64 {
        segments::safe_before(&lock(&self.inner).index, at_compressed, margin)
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
