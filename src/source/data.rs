//! The file holding one image's voxels (a `.nii`, `.nii.gz`, `.img` or
//! `.img.gz`), as it was when its image was parsed.
//!
//! A [`DataFile`] is opened on first use (a view opened, a cache filled), not
//! when listed, so listing a tree of thousands of images holds no
//! descriptors; it is then checked to be the version that was parsed, and
//! kept open so that an open view reads that version. Compressed files go
//! through [`GzAccess`], which keeps a random-access index of the stream; a
//! first checked pass through the whole stream settles which decoded bytes
//! can be trusted before any is served.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;

use super::gzindex::{GzAccess, GzError, TRAILER_MISMATCH};
use super::{ByteSource, Store, Version, pread_full};
use crate::error::{Error, Result};

/// How often at most an image's growing gzip index is written to disk.
const SAVE_EVERY: std::time::Duration = std::time::Duration::from_secs(2);

/// Compressed bytes before a detected corruption that are not trusted either
/// (garbage can decode for a while before inflate notices it).
const CORRUPTION_MARGIN: u64 = 128 << 10;

/// The gzip side of a [`DataFile`]: its access index, opened on first use so
/// that listing directories never loads indexes.
struct Gzip {
    starts: Vec<u64>,
    index_dir: Option<PathBuf>,
    access: OnceLock<std::result::Result<GzAccess, String>>,
    verdict: OnceLock<Verdict>,
    last_save: Mutex<Option<Instant>>,
}

/// What one full pass through a gzip file, checking every member's CRC-32
/// and length, says about its decoded bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Verdict {
    /// Every byte is verified.
    Good,
    /// Only decoded bytes before this offset can be trusted, for this reason.
    GoodBefore(u64, String),
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
        let gz = gzip.then(|| Gzip {
            starts,
            index_dir: index_dir.map(Path::to_path_buf),
            access: OnceLock::new(),
            verdict: OnceLock::new(),
            last_save: Mutex::new(None),
        });
        DataFile {
            shown: Path::new(&store.describe()).join(rel).display().to_string(),
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

    /// The gzip access structure of a compressed file, opened (and its saved
    /// index loaded) if it was not yet; None for uncompressed files or when
    /// the file cannot be opened.
    pub fn gzip(&self) -> Option<&GzAccess> {
        self.gzip_access(self.gz.as_ref()?).ok()
    }

    /// The gzip access structure, opening (and loading a saved index) on first use.
    fn gzip_access<'a>(&'a self, gz: &'a Gzip) -> Result<&'a GzAccess> {
        let src = self.pin()?;
        let access = gz.access.get_or_init(|| {
            GzAccess::with_source(src.clone(), gz.starts.clone(), gz.index_dir.as_deref())
                .map_err(|e| e.to_string())
        });
        access
            .as_ref()
            .map_err(|e| Error::Data(format!("{}: {e}", self.shown)))
    }

    /// The verdict of a full checked pass through the stream, made on first
    /// use (it also completes the index). Later reads then never serve bytes
    /// that a CRC-32 mismatch or an inflate error could have corrupted.
    fn verdict<'a>(&self, gz: &'a Gzip, access: &GzAccess) -> &'a Verdict {
        gz.verdict.get_or_init(|| {
            let verdict = match access.build_all(&mut |_, _| {}) {
                Ok(()) => Verdict::Good,
                Err(GzError::Truncated { available }) => Verdict::GoodBefore(
                    available,
                    format!("the gzip stream is truncated after {available} decoded bytes"),
                ),
                Err(GzError::Corrupt { at_compressed, msg }) => {
                    // A checksum mismatch condemns its whole member; an inflate
                    // error only what decodes from near the bad bytes on.
                    let limit = if msg.starts_with(TRAILER_MISMATCH) {
                        access.member_start_before(at_compressed)
                    } else {
                        access.trusted_before(at_compressed, CORRUPTION_MARGIN)
                    };
                    let why = format!(
                        "the gzip data is corrupt near compressed byte {at_compressed} ({msg})"
                    );
                    Verdict::GoodBefore(limit, why)
                }
                Err(e) => Verdict::GoodBefore(0, e.to_string()),
            };
            if let Verdict::GoodBefore(limit, why) = &verdict {
                log::warn!(
                    "{}: {why}; volumes past decoded byte {limit} give EIO",
                    self.shown
                );
            }
            verdict
        })
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
            if let Verdict::GoodBefore(limit, why) = self.verdict(gz, access)
                && end > *limit
            {
                return Err(Error::Data(format!(
                    "{}: bytes {offset}..{end} cannot be served: {why}; only the first {limit} \
                         decoded bytes are intact (restore the file from a good copy)",
                    self.shown
                )));
            }
            return access.read_exact_at(offset, buf).map_err(|e| {
                Error::Data(format!(
                    "{}: cannot decode bytes {offset}..{end}: {e}",
                    self.shown
                ))
            });
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
}
