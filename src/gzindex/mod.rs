//! Random access into gzip streams (interim: decodes from the stream start).

use std::fs::File;
use std::io::{self, Read};
use std::path::Path;

use crate::source::PositionedReader;

/// Errors of the gzip layer.
#[derive(Debug, thiserror::Error)]
pub enum GzError {
    /// I/O error reading the compressed file.
    #[error("{0}")]
    Io(#[from] io::Error),
    /// The stream ended before the requested bytes.
    #[error("the stream ends after {available} decoded bytes (truncated)")]
    Truncated {
        /// Decoded bytes available.
        available: u64,
    },
}

/// Access to the decoded bytes of one gzip file.
pub struct GzAccess {
    file: File,
}

impl GzAccess {
    /// Opens `path`.
    pub fn open(path: &Path, _starts: Vec<u64>, _index_dir: Option<&Path>) -> Result<GzAccess, GzError> {
        Ok(GzAccess { file: File::open(path)? })
    }

    /// Fills `buf` from decoded offset `offset`.
    pub fn read_exact_at(&self, offset: u64, buf: &mut [u8]) -> Result<(), GzError> {
        let mut dec = flate2::read::MultiGzDecoder::new(PositionedReader::new(&self.file, 0));
        let skipped = io::copy(&mut (&mut dec).take(offset), &mut io::sink())?;
        let mut done = 0;
        while done < buf.len() {
            let n = dec.read(&mut buf[done..])?;
            if n == 0 {
                return Err(GzError::Truncated { available: skipped + done as u64 });
            }
            done += n;
        }
        Ok(())
    }
}

/// How much of a file's index exists.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IndexState {
    /// No index.
    None,
}

impl std::fmt::Display for IndexState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("none")
    }
}

impl GzAccess {
    /// The index state.
    pub fn state(&self) -> IndexState {
        IndexState::None
    }
}
