//! The file holding one image's voxels (a `.nii`, `.nii.gz`, `.img` or
//! `.img.gz`), as it was when its image was parsed.
//!
//! A [`DataFile`] is opened on first use (a view opened, a cache filled), not
//! when listed, so listing a tree of thousands of images holds no
//! descriptors; it is then checked to be the version that was parsed, and
//! kept open so that an open view reads that version. Compressed files go
//! through [`GzAccess`], which keeps a random-access index of the stream and
//! makes the first pass through it lazily (SPEC 5): a read waits only until
//! the pass is past its bytes (in `strict` mode: until their member's CRC-32
//! was checked), and the pass goes on in the background. When the pass then
//! finds damage, later reads of the damaged part fail, the owner's damage
//! hook drops the kernel's cached pages of the image, and one log line says
//! which bytes had been served before the damage was known.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;

use super::gzindex::{FailKind, Failure, GzAccess, GzError, Outcome};
use super::{ByteSource, Store, Version, pread_full};
use crate::error::{Error, Result};

pub use super::gzindex::Verify;

#[path = "data_ahead.rs"]
mod ahead;

/// How often at most an image's growing gzip index is written to disk.
const SAVE_EVERY: std::time::Duration = std::time::Duration::from_secs(2);

/// Called when the pass finds damage (drops the kernel's cached pages).
pub type DamageHook = Box<dyn Fn() + Send + Sync>;

/// The gzip side of a [`DataFile`]: its access index, opened on first use so
/// that listing directories never loads indexes.
struct Gzip {
    starts: Vec<u64>,
    index_dir: Option<PathBuf>,
    access: OnceLock<std::result::Result<Arc<GzAccess>, String>>,
    watch: Arc<Watch>,
    last_save: Mutex<Option<Instant>>,
    ahead: ahead::Ahead,
}

/// What the pass observer shares with its [`DataFile`].
struct Watch {
    shown: String,
    /// Decoded offsets where volumes start (to name them in messages).
    starts: Vec<u64>,
    verify: OnceLock<Verify>,
    on_damage: OnceLock<DamageHook>,
    /// The hull of the decoded ranges served before their member was verified.
    unverified_served: Mutex<Option<(u64, u64)>>,
}

impl Watch {
    fn verify(&self) -> Verify {
        self.verify.get().copied().unwrap_or_default()
    }

    /// Decoded bytes a failed pass still lets this mode serve.
    fn limit(&self, f: &Failure) -> u64 {
        match self.verify() {
            Verify::Background => f.limit,
            Verify::Strict => f.verified,
        }
    }

    fn why(f: &Failure) -> String {
        match &f.kind {
            FailKind::Truncated { available } => {
                format!("the gzip stream is truncated after {available} decoded bytes")
            }
            FailKind::Corrupt { at_compressed, msg } => {
                format!("the gzip data is corrupt near compressed byte {at_compressed} ({msg})")
            }
        }
    }

    /// Volume numbers holding decoded bytes `a..b`, for messages.
    fn volumes(&self, a: u64, b: u64) -> String {
        let vol = |x: u64| self.starts.partition_point(|&s| s <= x).saturating_sub(1);
        match (vol(a), vol(b.saturating_sub(1))) {
            (i, j) if i == j => format!("volume {i}"),
            (i, j) => format!("volumes {i}-{j}"),
        }
    }

    /// The pass ended: on damage, one log line and the damage hook.
    fn ended(&self, outcome: &Outcome) {
        let Outcome::Failed(f) = outcome else { return };
        let limit = self.limit(f);
        let why = Watch::why(f);
        let served = *self
            .unverified_served
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        match served.filter(|&(_, b)| b > limit) {
            Some((a, b)) => {
                let a = a.max(limit);
                log::warn!(
                    "{}: {why}; decoded bytes {a}..{b} ({}) had been served before the damage was known \
                     and cannot be recalled; later reads past decoded byte {limit} give EIO and the \
                     kernel's cached pages of this image are dropped (restore the file from a good copy)",
                    self.shown,
                    self.volumes(a, b)
                );
            }
            None => log::warn!(
                "{}: {why}; volumes past decoded byte {limit} give EIO (restore the file from a good copy)",
                self.shown
            ),
        }
        if let Some(hook) = self.on_damage.get() {
            hook();
        }
    }
}

/// One source file holding voxel data.
pub struct DataFile {
    store: Arc<dyn Store>,
    rel: PathBuf,
    shown: String,
    source: OnceLock<std::result::Result<Arc<dyn ByteSource>, String>>,
    version: Version,
    gz: Option<Gzip>,
}

impl DataFile {
    /// The voxel file `rel` of `store`, parsed at `version`; `gzip` says
    /// whether its stream is compressed (read from its magic bytes), `starts`
    /// are the offsets in the decoded stream where volumes begin (checkpoints
    /// for a gzip index), `index_dir` is where gzip indexes persist. Nothing
    /// is opened yet.
    pub fn new(
        store: Arc<dyn Store>,
        rel: &Path,
        version: Version,
        gzip: bool,
        starts: Vec<u64>,
        index_dir: Option<&Path>,
    ) -> DataFile {
        let shown = Path::new(&store.describe()).join(rel).display().to_string();
        let gz = gzip.then(|| Gzip {
            watch: Arc::new(Watch {
                shown: shown.clone(),
                starts: starts.clone(),
                verify: OnceLock::new(),
                on_damage: OnceLock::new(),
                unverified_served: Mutex::new(None),
            }),
            starts,
            index_dir: index_dir.map(Path::to_path_buf),
            access: OnceLock::new(),
            last_save: Mutex::new(None),
            ahead: ahead::Ahead::default(),
        });
        DataFile {
            shown,
            store,
            rel: rel.to_path_buf(),
            source: OnceLock::new(),
            version,
            gz,
        }
    }

    /// The open source, opening it on first use; fails if the file is no
    /// longer the version that was parsed.
    pub fn pin(&self) -> Result<&Arc<dyn ByteSource>> {
        let opened = self.source.get_or_init(|| {
            let src = self
                .store
                .open(&self.rel)
                .map_err(|e| format!("cannot open it: {e}"))?;
            if !src.version().same_content(&self.version) {
                return Err("it changed since it was listed; look it up again".to_string());
            }
            Ok(src)
        });
        opened
            .as_ref()
            .map_err(|e| Error::Data(format!("{}: {e}", self.shown)))
    }

    /// The file for messages: its path, or its object's URL.
    pub fn shown(&self) -> &str {
        &self.shown
    }

    /// The path of the file relative to SOURCE.
    pub fn rel(&self) -> &Path {
        &self.rel
    }

    /// The version the file had when parsed.
    pub fn version(&self) -> &Version {
        &self.version
    }

    /// Whether the stream is gzip-compressed.
    pub fn is_gzip(&self) -> bool {
        self.gz.is_some()
    }

    /// Sets how reads of a compressed file are verified and what to call
    /// when the pass finds damage. Only the first call counts (an image is
    /// configured by the filesystem that serves it before any read).
    pub fn configure(&self, verify: Verify, on_damage: DamageHook) {
        if let Some(gz) = &self.gz {
            let _ = gz.watch.verify.set(verify);
            let _ = gz.watch.on_damage.set(on_damage);
        }
    }

    /// Whether [`DataFile::configure`] was called (always true for uncompressed files).
    pub fn is_configured(&self) -> bool {
        self.gz
            .as_ref()
            .is_none_or(|gz| gz.watch.on_damage.get().is_some())
    }

    /// The verify mode of this file's reads.
    pub fn verify(&self) -> Verify {
        self.gz
            .as_ref()
            .map_or_else(Verify::default, |gz| gz.watch.verify())
    }

    /// The gzip access structure of a compressed file, opened (and its saved
    /// index loaded) if it was not yet; None for uncompressed files or when
    /// the file cannot be opened.
    pub fn gzip(&self) -> Option<&GzAccess> {
        self.gzip_access(self.gz.as_ref()?).ok().map(|a| &**a)
    }

    /// Decoded bytes before this offset are all that may still be served,
    /// once the first pass found damage (None: no damage found).
    pub fn intact_before(&self) -> Option<u64> {
        let gz = self.gz.as_ref()?;
        let Some(Ok(access)) = gz.access.get() else {
            return None;
        };
        match access.pass_report().outcome {
            Some(Outcome::Failed(f)) => Some(gz.watch.limit(&f)),
            _ => None,
        }
    }

    /// The gzip access structure, opening (and loading a saved index) on first use.
    fn gzip_access<'a>(&'a self, gz: &'a Gzip) -> Result<&'a Arc<GzAccess>> {
        let src = self.pin()?;
        let access = gz.access.get_or_init(|| {
            let a = GzAccess::shared(src.clone(), gz.starts.clone(), gz.index_dir.as_deref());
            let watch = gz.watch.clone();
            a.set_observer(Box::new(move |o| watch.ended(o)));
            Ok(a)
        });
        access
            .as_ref()
            .map_err(|e| Error::Data(format!("{}: {e}", self.shown)))
    }

    /// Writes the gzip index to disk if it grew, at most every few seconds
    /// unless `now`. Failures are logged, not returned: the index is a cache.
    pub fn save_index(&self, now: bool) {
        let Some(gz) = &self.gz else { return };
        let Some(Ok(access)) = gz.access.get() else {
            return;
        };
        let mut last = gz.last_save.lock().unwrap_or_else(|p| p.into_inner());
        if !now && last.is_some_and(|t| t.elapsed() < SAVE_EVERY) {
            return;
        }
        *last = Some(Instant::now());
        if let Err(e) = access.save() {
            log::warn!(
                "{}: cannot save its gzip index: {e} (it will be rebuilt next time; check --index-dir)",
                self.shown
            );
        }
    }

    /// Builds this gzip file's whole index now and saves it, reporting
    /// `progress(compressed_pos, compressed_len)`. Returns the number of checkpoints.
    pub fn build_index(&self, progress: &mut dyn FnMut(u64, u64)) -> Result<usize> {
        let Some(gz) = &self.gz else {
            return Err(Error::Invalid(format!(
                "{} is not gzip-compressed",
                self.shown
            )));
        };
        let access = self.gzip_access(gz)?;
        let fail = |e: GzError| Error::Data(format!("{}: {e}", self.shown));
        access.build_all(progress).map_err(fail)?;
        access.save().map_err(fail)?;
        Ok(access.checkpoint_count())
    }

    /// Fills `buf` with the decoded bytes at `offset`, or fails with
    /// [`Error::Data`] naming the file and the missing range.
    ///
    /// The file's identity is checked before and after: bytes of a file
    /// rewritten in place since it was opened (or while being read) are never
    /// served, so one read never mixes two versions.
    pub fn read_exact_at(&self, offset: u64, buf: &mut [u8]) -> Result<()> {
        let src = self.pin()?;
        src.check_unchanged()?;
        self.read_unchecked(src.as_ref(), offset, buf)?;
        src.check_unchanged()
    }

    fn read_unchecked(&self, src: &dyn ByteSource, offset: u64, buf: &mut [u8]) -> Result<()> {
        let end = offset.saturating_add(buf.len() as u64);
        if let Some(gz) = &self.gz {
            let access = self.gzip_access(gz)?;
            let verify = gz.watch.verify();
            let small = buf.len() < ahead::MAX_READ;
            let read = if small && gz.ahead.take(offset, buf) {
                Ok(())
            } else {
                access.read(offset, buf, verify)
            };
            if small {
                gz.ahead.after_read(access, verify, offset, end);
            }
            return match read {
                Ok(()) => {
                    let verified = access.pass_report().verified;
                    if end > verified {
                        let mut hull = gz
                            .watch
                            .unverified_served
                            .lock()
                            .unwrap_or_else(|p| p.into_inner());
                        let (a, b) = hull.unwrap_or((offset, end));
                        *hull = Some((a.min(offset), b.max(end)));
                    }
                    Ok(())
                }
                Err(e) => Err(self.gzip_error(access, offset, end, e)),
            };
        }
        let got = pread_full(src, offset, buf)
            .map_err(|e| Error::io(format!("reading {}", self.shown), e))?;
        if got < buf.len() {
            return Err(Error::Data(format!(
                "{}: bytes {offset}..{end} are missing: the file ends at byte {} (truncated?)",
                self.shown,
                offset.saturating_add(got as u64)
            )));
        }
        Ok(())
    }

    /// The error of a failed read of decoded bytes `offset..end`.
    fn gzip_error(&self, access: &GzAccess, offset: u64, end: u64, e: GzError) -> Error {
        if let (GzError::Truncated { .. } | GzError::Corrupt { .. }, Some(Outcome::Failed(f))) =
            (&e, access.pass_report().outcome)
            && let Some(gz) = &self.gz
        {
            let limit = gz.watch.limit(&f);
            return Error::Data(format!(
                "{}: bytes {offset}..{end} cannot be served: {}; only the first {limit} decoded \
                 bytes are intact{} (restore the file from a good copy)",
                self.shown,
                Watch::why(&f),
                if self.verify() == Verify::Strict {
                    " and verified"
                } else {
                    ""
                }
            ));
        }
        Error::Data(format!(
            "{}: cannot decode bytes {offset}..{end}: {e}",
            self.shown
        ))
    }
}

impl Drop for DataFile {
    /// Saves the gzip index now: a background pass may still hold the
    /// access structure for a moment (it saves again when it lets go).
    fn drop(&mut self) {
        self.save_index(true);
    }
}
