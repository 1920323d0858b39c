//! Byte sources: the files under SOURCE that hold an image's header and voxels.
//!
//! A [`DataFile`] is one open source file, plain or gzip (detected by its magic
//! bytes, never by its name), with the identity it had when opened
//! ([`FileIdent`]). Reads are positioned (`pread`), so one open file serves any
//! number of threads. Compressed files go through [`crate::gzindex::GzAccess`],
//! which keeps a random-access index of the stream.

use std::fs::{File, Metadata};
use std::io::{self, Read};
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};
use std::time::Instant;

use crate::error::{Error, Result};
use crate::gzindex::{GzAccess, GzError};

/// What identifies one version of a source file: if any of these change, the
/// file was rewritten or replaced and everything derived from it is stale.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FileIdent {
    /// Device of the file.
    pub dev: u64,
    /// Inode number of the file.
    pub ino: u64,
    /// Size in bytes.
    pub size: u64,
    /// Modification time, nanoseconds since the epoch.
    pub mtime_ns: i128,
    /// Status change time (owner and mode changes), nanoseconds since the epoch.
    pub ctime_ns: i128,
}

impl FileIdent {
    /// The identity recorded in `meta`.
    pub fn of(meta: &Metadata) -> FileIdent {
        FileIdent {
            dev: meta.dev(),
            ino: meta.ino(),
            size: meta.size(),
            mtime_ns: i128::from(meta.mtime()) * 1_000_000_000 + i128::from(meta.mtime_nsec()),
            ctime_ns: i128::from(meta.ctime()) * 1_000_000_000 + i128::from(meta.ctime_nsec()),
        }
    }
}

/// The two gzip magic bytes.
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// Reads a file from a position with `pread`, leaving the descriptor's own
/// offset alone, so that a shared `File` can feed a decoder.
pub struct PositionedReader<'a> {
    file: &'a File,
    pos: u64,
}

impl<'a> PositionedReader<'a> {
    /// A reader starting at byte `pos` of `file`.
    pub fn new(file: &'a File, pos: u64) -> Self {
        PositionedReader { file, pos }
    }
}

impl Read for PositionedReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.file.read_at(buf, self.pos)?;
        self.pos = self.pos.saturating_add(n as u64);
        Ok(n)
    }
}

/// Fills `buf` from `file` at `offset`; returns how many bytes were there
/// (fewer than `buf.len()` only at end of file).
pub fn pread_full(file: &File, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
    let mut done = 0;
    while done < buf.len() {
        let pos = offset.saturating_add(done as u64);
        match file.read_at(&mut buf[done..], pos) {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(done)
}

/// Whether `file` starts with the gzip magic bytes.
pub fn is_gzip(file: &File) -> io::Result<bool> {
    let mut magic = [0u8; 2];
    Ok(pread_full(file, 0, &mut magic)? == 2 && magic == GZIP_MAGIC)
}

/// Reads up to `want` bytes from the start of the (decoded) stream of `file`.
/// Fewer bytes come back only when the stream is shorter.
pub fn read_head(file: &File, gzip: bool, want: usize) -> io::Result<Vec<u8>> {
    let mut buf = Vec::with_capacity(want.min(1 << 20));
    let limit = u64::try_from(want).unwrap_or(u64::MAX);
    if gzip {
        let dec = flate2::read::MultiGzDecoder::new(PositionedReader::new(file, 0));
        dec.take(limit).read_to_end(&mut buf)?;
    } else {
        PositionedReader::new(file, 0)
            .take(limit)
            .read_to_end(&mut buf)?;
    }
    Ok(buf)
}

/// How often at most an image's growing gzip index is written to disk.
const SAVE_EVERY: std::time::Duration = std::time::Duration::from_secs(2);

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

/// Compressed bytes before a detected corruption that are not trusted either
/// (garbage can decode for a while before inflate notices it).
const CORRUPTION_MARGIN: u64 = 128 << 10;

/// One source file holding voxel data (a `.nii`, `.nii.gz`, `.img` or
/// `.img.gz`), as it was when its image was parsed. It is opened on first use
/// (a volume opened, a cache filled), not when listed, so listing a tree of
/// thousands of images holds no descriptors; it is then checked to be the
/// version that was parsed, and kept open so an open volume reads that version.
pub struct DataFile {
    path: PathBuf,
    file: OnceLock<std::result::Result<File, String>>,
    ident: FileIdent,
    gz: Option<Gzip>,
}

impl DataFile {
    /// Records the identity of `path` and whether it is gzip (reading its
    /// first two bytes; the descriptor is not kept). `starts` are the offsets
    /// in the decoded stream where volumes begin (checkpoints for a gzip
    /// index); `index_dir` is where gzip indexes persist.
    pub fn open(path: &Path, starts: Vec<u64>, index_dir: Option<&Path>) -> Result<DataFile> {
        let what = || format!("opening {}", path.display());
        let file = File::open(path).map_err(|e| Error::io(what(), e))?;
        let meta = file.metadata().map_err(|e| Error::io(what(), e))?;
        let gz = is_gzip(&file)
            .map_err(|e| Error::io(what(), e))?
            .then(|| Gzip {
                starts,
                index_dir: index_dir.map(Path::to_path_buf),
                access: OnceLock::new(),
                verdict: OnceLock::new(),
                last_save: Mutex::new(None),
            });
        Ok(DataFile {
            path: path.to_path_buf(),
            file: OnceLock::new(),
            ident: FileIdent::of(&meta),
            gz,
        })
    }

    /// The open file, opening it on first use; fails if the file at the path
    /// is no longer the version that was parsed.
    pub fn pin(&self) -> Result<&File> {
        let opened = self.file.get_or_init(|| {
            let file = File::open(&self.path).map_err(|e| format!("cannot open it: {e}"))?;
            let meta = file
                .metadata()
                .map_err(|e| format!("cannot stat it: {e}"))?;
            if !self.is_version(&FileIdent::of(&meta)) {
                return Err("it changed since it was listed; look it up again".to_string());
            }
            Ok(file)
        });
        opened
            .as_ref()
            .map_err(|e| Error::Data(format!("{}: {e}", self.path.display())))
    }

    /// Whether `now` is the version of the file that was parsed.
    fn is_version(&self, now: &FileIdent) -> bool {
        now.dev == self.ident.dev
            && now.ino == self.ident.ino
            && now.size == self.ident.size
            && now.mtime_ns == self.ident.mtime_ns
    }

    /// The path this file was opened from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The identity the file had when opened.
    pub fn ident(&self) -> FileIdent {
        self.ident
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
        self.pin()?;
        let access = gz.access.get_or_init(|| {
            let access = GzAccess::open(&self.path, gz.starts.clone(), gz.index_dir.as_deref())
                .map_err(|e| e.to_string())?;
            let key = access.key();
            if key.inode != self.ident.ino
                || key.size != self.ident.size
                || key.mtime_ns != self.ident.mtime_ns
            {
                return Err("it changed since it was listed; look it up again".to_string());
            }
            Ok(access)
        });
        access
            .as_ref()
            .map_err(|e| Error::Data(format!("{}: {e}", self.path.display())))
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
                    let limit = if msg.starts_with(crate::gzindex::TRAILER_MISMATCH) {
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
                    self.path.display()
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
                self.path.display()
            );
        }
    }

    /// Builds this gzip file's whole index now and saves it, reporting
    /// `progress(compressed_pos, compressed_len)`. Returns the number of checkpoints.
    pub fn build_index(&self, progress: &mut dyn FnMut(u64, u64)) -> Result<usize> {
        let Some(gz) = &self.gz else {
            return Err(Error::Invalid(format!(
                "{} is not gzip-compressed",
                self.path.display()
            )));
        };
        let access = self.gzip_access(gz)?;
        let fail =
            |e: crate::gzindex::GzError| Error::Data(format!("{}: {e}", self.path.display()));
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
        self.check_unchanged()?;
        self.read_unchecked(offset, buf)?;
        self.check_unchanged()
    }

    /// Fails with [`Error::Data`] if the open file is no longer the version
    /// that was opened (size or mtime changed: rewritten in place).
    fn check_unchanged(&self) -> Result<()> {
        let meta = self
            .pin()?
            .metadata()
            .map_err(|e| Error::io(format!("stat {}", self.path.display()), e))?;
        let now = FileIdent::of(&meta);
        if now.size != self.ident.size || now.mtime_ns != self.ident.mtime_ns {
            return Err(Error::Data(format!(
                "{}: changed while open (rewritten in place); reopen the volume to read the new version",
                self.path.display()
            )));
        }
        Ok(())
    }

    fn read_unchecked(&self, offset: u64, buf: &mut [u8]) -> Result<()> {
        let end = offset.saturating_add(buf.len() as u64);
        if let Some(gz) = &self.gz {
            let access = self.gzip_access(gz)?;
            if let Verdict::GoodBefore(limit, why) = self.verdict(gz, access)
                && end > *limit
            {
                return Err(Error::Data(format!(
                    "{}: bytes {offset}..{end} cannot be served: {why}; only the first {limit} \
                         decoded bytes are intact (restore the file from a good copy)",
                    self.path.display()
                )));
            }
            return access.read_exact_at(offset, buf).map_err(|e| {
                Error::Data(format!(
                    "{}: cannot decode bytes {offset}..{end}: {e}",
                    self.path.display()
                ))
            });
        }
        let got = pread_full(self.pin()?, offset, buf)
            .map_err(|e| Error::io(format!("reading {}", self.path.display()), e))?;
        if got < buf.len() {
            return Err(Error::Data(format!(
                "{}: bytes {offset}..{end} are missing: the file ends at byte {} (truncated?)",
                self.path.display(),
                offset.saturating_add(got as u64)
            )));
        }
        Ok(())
    }
}
