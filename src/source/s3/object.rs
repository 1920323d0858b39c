//! One object version as a [`ByteSource`]: positioned reads served from
//! the store's fetched blocks, fetching what is missing (and what read-ahead
//! or an opened volume's hint asks for) with ranged GETs in the background.
//!
//! A read waits only for the blocks it covers, each within [`HARD_BOUND`]
//! (plus a little), and fails with the fetch's one-line reason.

use std::io;
use std::ops::Range;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::blocks::{BLOCK, Have, Run};
use super::errors::HARD_BOUND;
use super::fetch::{Fetcher, ObjectInfo, PART_BLOCKS};
use super::readahead::ReadAhead;
use crate::error::Result;
use crate::source::{ByteSource, Version};

/// An object version, read through the store's block cache.
pub struct S3Object {
    info: Arc<ObjectInfo>,
    fetcher: Arc<Fetcher>,
    rt: tokio::runtime::Handle,
    version: Version,
    locator: String,
    ahead: Mutex<ReadAhead>,
}

/// The blocks that hold bytes `r`.
fn blocks_of(r: &Range<u64>) -> Range<u64> {
    r.start / BLOCK..r.end.div_ceil(BLOCK)
}

impl S3Object {
    /// Reads of `info` at `version`, fetched by `fetcher` on `rt`; read-ahead
    /// windows up to `max_window` bytes.
    pub fn new(
        info: ObjectInfo,
        fetcher: Arc<Fetcher>,
        rt: tokio::runtime::Handle,
        version: Version,
        locator: String,
        max_window: u64,
    ) -> S3Object {
        S3Object {
            info: Arc::new(info),
            fetcher,
            rt,
            version,
            locator,
            ahead: Mutex::new(ReadAhead::new(max_window)),
        }
    }

    /// Starts the GETs of `runs`, split into parts of at most [`PART_BLOCKS`].
    fn start(&self, runs: Vec<Run>) {
        for run in runs {
            let mut flights = run.flights;
            let mut first = run.first;
            while !flights.is_empty() {
                let rest = flights.split_off(flights.len().min(PART_BLOCKS));
                let part = Run { first, flights };
                first += part.flights.len() as u64;
                flights = rest;
                let fetch = self.fetcher.clone().fetch(self.info.clone(), part);
                self.rt.spawn(fetch);
            }
        }
    }
}

impl ByteSource for S3Object {
    fn version(&self) -> &Version {
        &self.version
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
        let size = self.info.size;
        if buf.is_empty() || offset >= size {
            return Ok(0);
        }
        let end = offset.saturating_add(buf.len() as u64).min(size);
        let want = self
            .ahead
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .plan(offset, end, size);
        let need = blocks_of(&(offset..end));
        let (have, runs) = self
            .fetcher
            .blocks
            .claim(self.info.id, need.clone(), blocks_of(&want));
        self.start(runs);
        let deadline = Instant::now() + HARD_BOUND + Duration::from_secs(5);
        for (b, h) in need.zip(have) {
            let block = match h {
                Have::Ready(block) => block,
                Have::Wait(f) => f
                    .wait(deadline)
                    .map_err(|why| io::Error::other(why.to_string()))?,
                Have::Failed(why) => return Err(io::Error::other(why.to_string())),
            };
            let at = b * BLOCK;
            let (from, to) = (offset.max(at), end.min(at + block.len() as u64));
            if to < from {
                return Err(io::Error::other(format!(
                    "{}: block {b} holds {} bytes, fewer than the object's size says",
                    self.info.name,
                    block.len()
                )));
            }
            let dst = usize::try_from(from - offset).unwrap_or(usize::MAX);
            let src = usize::try_from(from - at).unwrap_or(usize::MAX);
            let n = usize::try_from(to - from).unwrap_or(0);
            buf[dst..dst + n].copy_from_slice(&block[src..src + n]);
        }
        Ok(usize::try_from(end - offset).unwrap_or(0))
    }

    fn check_unchanged(&self) -> Result<()> {
        // Every GET carries If-Match and its ETag is checked: bytes of
        // another version are never returned by `read_at`.
        Ok(())
    }

    fn locator(&self) -> &str {
        &self.locator
    }

    fn will_need(&self, offset: u64, len: u64) {
        let mut ahead = self.ahead.lock().unwrap_or_else(|p| p.into_inner());
        ahead.hint(offset..offset.saturating_add(len));
    }
}
