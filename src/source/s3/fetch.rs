//! One ranged GET of consecutive blocks of one object: sent with `If-Match`
//! and the ETag first seen, the response's ETag, size and range checked,
//! and its body cut into blocks as it arrives, so that each reader waits
//! only for the blocks it needs. At most [`PARALLEL`] GETs run at once.
//!
//! An object found changed (HTTP 412, another ETag or size) or gone makes its
//! directory listed again, so the next lookup shows the new version.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use futures_util::StreamExt;
use object_store::aws::AmazonS3;
use object_store::{GetOptions, GetRange, ObjectStore};

use super::blocks::{BLOCK, Blocks, Flight, Run};
use super::counters::Counters;
use super::errors::{self, Failure, HARD_BOUND, Kind};
use super::listing::Listings;

/// GETs in flight at most, per store.
pub const PARALLEL: usize = 8;
/// Blocks per GET at most: larger runs are split into parallel parts (8 MiB).
pub const PART_BLOCKS: usize = 128;

/// One object version, as every fetch of it needs it.
pub struct ObjectInfo {
    /// Unique per object version within the mount (the block cache key).
    pub id: u64,
    /// Its key.
    pub key: object_store::path::Path,
    /// Its path relative to SOURCE (for stats).
    pub rel: PathBuf,
    /// The key prefix of its directory (listed again when it changed).
    pub dir_prefix: String,
    /// Its size as listed.
    pub size: u64,
    /// `ENDPOINT BUCKET/KEY`, for messages.
    pub name: String,
    /// The ETag first seen: listed, or else sent with the first response.
    etag: Mutex<Option<Arc<str>>>,
}

impl ObjectInfo {
    /// An object version of `size` bytes, with its listed ETag if any.
    pub fn new(
        id: u64,
        key: object_store::path::Path,
        rel: PathBuf,
        dir_prefix: String,
        size: u64,
        name: String,
        etag: Option<Arc<str>>,
    ) -> ObjectInfo {
        ObjectInfo {
            id,
            key,
            rel,
            dir_prefix,
            size,
            name,
            etag: Mutex::new(etag),
        }
    }

    fn if_match(&self) -> Option<String> {
        let etag = self.etag.lock().unwrap_or_else(|p| p.into_inner());
        etag.as_deref().map(str::to_string)
    }

    /// Checks a response's ETag against the first seen (recording it if none was).
    fn check_etag(&self, got: Option<&str>) -> Result<(), Failure> {
        let mut etag = self.etag.lock().unwrap_or_else(|p| p.into_inner());
        match (etag.as_deref(), got) {
            (Some(first), Some(got)) if first != got => Err(Failure {
                kind: Kind::Changed,
                detail: format!("its ETag is now {got}, not {first}"),
            }),
            (None, Some(got)) => {
                *etag = Some(Arc::from(got));
                Ok(())
            }
            _ => Ok(()),
        }
    }

    fn block_len(&self, b: u64) -> usize {
        let start = b.saturating_mul(BLOCK);
        usize::try_from(self.size.saturating_sub(start).min(BLOCK)).unwrap_or(0)
    }
}

/// What all fetches of one store share.
pub struct Fetcher {
    /// The S3 client.
    pub s3: Arc<AmazonS3>,
    /// The fetched blocks.
    pub blocks: Blocks,
    /// Request and byte counts.
    pub counters: Counters,
    /// The store's listings (to list a changed object's directory again).
    pub listings: Arc<Listings>,
    permits: tokio::sync::Semaphore,
}

/// The blocks of one GET not yet delivered; on drop, whatever is left
/// fails with `why` (or as abandoned), so no reader waits for it.
struct Pending<'a> {
    blocks: &'a Blocks,
    obj: &'a ObjectInfo,
    next: u64,
    flights: VecDeque<Arc<Flight>>,
    buf: Vec<u8>,
    why: Option<Arc<str>>,
}

impl Pending<'_> {
    /// Cuts `bytes` into the blocks still awaited; false if more came than asked for.
    fn feed(&mut self, mut bytes: &[u8]) -> bool {
        while !bytes.is_empty() {
            let Some(flight) = self.flights.front().cloned() else {
                return false;
            };
            let want = self.obj.block_len(self.next);
            let take = (want - self.buf.len()).min(bytes.len());
            self.buf.extend_from_slice(&bytes[..take]);
            bytes = &bytes[take..];
            if self.buf.len() == want {
                let block = std::mem::replace(&mut self.buf, Vec::with_capacity(BLOCK as usize));
                self.blocks
                    .arrived(self.obj.id, self.next, &flight, block.into());
                self.flights.pop_front();
                self.next += 1;
            }
        }
        true
    }
}

impl Drop for Pending<'_> {
    fn drop(&mut self) {
        let why = self
            .why
            .clone()
            .unwrap_or_else(|| Arc::from("the fetch was abandoned"));
        for (i, f) in self.flights.iter().enumerate() {
            self.blocks
                .failed(self.obj.id, self.next + i as u64, f, why.clone());
        }
    }
}

impl Fetcher {
    /// A fetcher over `s3`, keeping blocks within `budget` bytes.
    pub fn new(s3: Arc<AmazonS3>, budget: u64, listings: Arc<Listings>) -> Fetcher {
        Fetcher {
            s3,
            blocks: Blocks::new(budget),
            counters: Counters::default(),
            listings,
            permits: tokio::sync::Semaphore::new(PARALLEL),
        }
    }

    /// Fetches the blocks of `run` (at most [`PART_BLOCKS`]) of `obj`,
    /// delivering or failing every one of them within [`HARD_BOUND`].
    pub async fn fetch(self: Arc<Self>, obj: Arc<ObjectInfo>, run: Run) {
        let start = run.first.saturating_mul(BLOCK);
        let end = run
            .first
            .saturating_add(run.flights.len() as u64)
            .saturating_mul(BLOCK)
            .min(obj.size);
        let mut pending = Pending {
            blocks: &self.blocks,
            obj: &obj,
            next: run.first,
            flights: run.flights.into(),
            buf: Vec::with_capacity(BLOCK as usize),
            why: None,
        };
        let failure =
            match tokio::time::timeout(HARD_BOUND, self.get(&mut pending, start, end)).await {
                Ok(Ok(())) => return,
                Ok(Err(f)) => f,
                Err(_) => errors::timed_out(),
            };
        let advice = match failure.kind {
            Kind::Changed | Kind::NoKey => {
                self.listings.forget(&obj.dir_prefix);
                "it changed on the store since it was first read; its new version is shown \
                 once its directory is listed again (open it anew)"
            }
            Kind::Denied => "check the credentials (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY)",
            _ => "reads work again once the store answers",
        };
        let last = end.saturating_sub(1);
        let why = format!(
            "GET {} bytes {start}-{last}: {}; {advice}",
            obj.name, failure.detail
        );
        log::debug!("{why}");
        pending.why = Some(Arc::from(why));
    }

    async fn get(&self, pending: &mut Pending<'_>, start: u64, end: u64) -> Result<(), Failure> {
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| errors::protocol("the mount is shutting down"))?;
        let obj = pending.obj;
        let opts = GetOptions {
            range: Some(GetRange::Bounded(start..end)),
            if_match: obj.if_match(),
            ..GetOptions::default()
        };
        self.counters.request(&obj.rel);
        let result = self
            .s3
            .get_opts(&obj.key, opts)
            .await
            .map_err(|e| errors::failure(&e))?;
        obj.check_etag(result.meta.e_tag.as_deref())?;
        if result.meta.size != obj.size {
            return Err(Failure {
                kind: Kind::Changed,
                detail: format!("its size is now {}, not {}", result.meta.size, obj.size),
            });
        }
        if result.range != (start..end) {
            return Err(errors::protocol(format!(
                "the store sent bytes {:?} for a request of {start}..{end}",
                result.range
            )));
        }
        let mut body = result.into_stream();
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|e| errors::failure(&e))?;
            self.counters.received(&obj.rel, chunk.len() as u64);
            if !pending.feed(&chunk) {
                return Err(errors::protocol("the store sent more bytes than asked for"));
            }
        }
        if !pending.flights.is_empty() {
            return Err(errors::protocol(format!(
                "the response ended {} bytes early",
                end - pending.next.saturating_mul(BLOCK) - pending.buf.len() as u64
            )));
        }
        Ok(())
    }
}
