//! The object-store implementation of the seam: the keys under
//! `s3://BUCKET/PREFIX` as a [`Store`] (`/` separates directories), and
//! each object version as a [`ByteSource`] read with ranged GETs.
//!
//! - [`url`]: the SOURCE form and how paths map to keys.
//! - [`client`]: the S3 client and the tokio runtime that drives it.
//! - [`listing`]: directory listings (ListObjectsV2 pages), kept for `--metadata-ttl`.
//! - [`object`], [`fetch`], [`blocks`], [`readahead`]: reads, ranged GETs,
//!   fetched blocks in memory, read-ahead.
//! - [`errors`]: timeouts, retries, and how failures are told.
//!
//! Objects are shown owned by the mounting user, files 0444 and directories
//! 0555; an object store has no symlinks. A version is (size, last
//! modified, ETag) as listed; a GET that finds another ETag fails, and the
//! directory is listed again so the new version gets new inodes.

pub mod blocks;
pub mod client;
pub mod counters;
pub mod errors;
pub mod fetch;
pub mod listing;
pub mod object;
pub mod readahead;
pub mod url;

use std::collections::HashMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::{ByteSource, DirItem, FetchStats, Kind, Meta, NotFile, Store, Tag, Version};
use crate::error::{Error, Result};
use client::{Client, Options};
use errors::Kind as Failed;
use fetch::{Fetcher, ObjectInfo};
use listing::{Dir, Entry, Listings};
use object::S3Object;
pub use url::{S3Url, is_s3};

/// Read-ahead windows grow up to this (or an eighth of the block budget).
const MAX_WINDOW: u64 = 16 << 20;

/// What an object-store mount needs to know.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Bucket and prefix.
    pub url: S3Url,
    /// Endpoint, region, signing.
    pub options: Options,
    /// How long a directory listing is kept.
    pub metadata_ttl: Duration,
    /// Owner shown for every entry (the mounting user).
    pub uid: u32,
    /// Group shown for every entry.
    pub gid: u32,
    /// Memory for fetched blocks, in bytes.
    pub block_budget: u64,
}

/// The tree of keys under one prefix of one bucket.
pub struct S3Store {
    settings: Settings,
    client: Client,
    listings: Arc<Listings>,
    fetcher: Arc<Fetcher>,
    /// The open object of each key, with the version it reads.
    objects: Mutex<HashMap<String, Arc<S3Object>>>,
    next_id: AtomicU64,
    started: SystemTime,
    max_window: u64,
}

fn nanos(t: SystemTime) -> i128 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_nanos() as i128,
        Err(e) => -(e.duration().as_nanos() as i128),
    }
}

impl S3Store {
    /// Connects to the bucket and lists the prefix's top directory: wrong
    /// credentials, a missing bucket, an unreachable endpoint or an empty
    /// prefix fail here with one line saying what to do.
    pub fn connect(settings: Settings) -> std::result::Result<S3Store, String> {
        let client = Client::new(&settings.url.bucket, &settings.options)?;
        let listings = Arc::new(Listings::new(settings.metadata_ttl));
        let fetcher = Arc::new(Fetcher::new(
            client.s3.clone(),
            settings.block_budget,
            listings.clone(),
        ));
        let store = S3Store {
            max_window: MAX_WINDOW.min(settings.block_budget / 8),
            settings,
            client,
            listings,
            fetcher,
            objects: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(1),
            started: SystemTime::now(),
        };
        store.check()?;
        Ok(store)
    }

    fn check(&self) -> std::result::Result<(), String> {
        let url = &self.settings.url;
        let (what, endpoint) = (url.describe(), &self.client.endpoint);
        let prefix = url.dir_prefix(Path::new("")).unwrap_or_default();
        let dir = self
            .listings
            .get(&self.client, &prefix, &self.fetcher.counters)
            .map_err(|f| match f.kind {
                Failed::Denied => format!(
                    "{what}: {endpoint} refused access ({}): check AWS_ACCESS_KEY_ID and \
                     AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN), or use --no-sign-request \
                     for a public bucket",
                    f.detail
                ),
                Failed::NoBucket | Failed::NoKey => format!(
                    "{what}: {endpoint} has no bucket {:?} ({}): check the name, \
                     --endpoint-url and --region",
                    url.bucket, f.detail
                ),
                Failed::Redirect => format!(
                    "{what}: {endpoint} redirects the request ({}): the bucket is in another \
                     region; give --region",
                    f.detail
                ),
                Failed::Changed | Failed::Other => format!(
                    "{what}: cannot list it at {endpoint} ({}): check --endpoint-url and that \
                     the store is up",
                    f.detail
                ),
            })?;
        if dir.is_empty() && !url.prefix.is_empty() {
            return Err(format!(
                "{what}: no objects under this prefix at {endpoint}: check the prefix"
            ));
        }
        Ok(())
    }

    /// The listing of directory `rel`.
    fn dir(&self, rel: &Path) -> Result<Arc<Dir>> {
        let missing = || Error::NotFound(rel.display().to_string());
        let prefix = self.settings.url.dir_prefix(rel).ok_or_else(missing)?;
        self.listings
            .get(&self.client, &prefix, &self.fetcher.counters)
            .map_err(|f| {
                Error::io(
                    format!("listing {}", self.client.name(&prefix)),
                    std::io::Error::other(f.detail),
                )
            })
    }

    /// The entry at `rel`, its ancestors listed first (a missing directory is
    /// never listed).
    fn entry(&self, rel: &Path) -> Result<Entry> {
        let missing = || Error::NotFound(rel.display().to_string());
        let (Some(parent), Some(name)) = (rel.parent(), rel.file_name()) else {
            return Ok(Entry::Dir);
        };
        if !parent.as_os_str().is_empty() && self.entry(parent)? != Entry::Dir {
            return Err(missing());
        }
        let name = name.to_str().ok_or_else(missing)?;
        self.dir(parent)?.get(name).cloned().ok_or_else(missing)
    }

    /// The entry at `rel` as last listed, without a request (None if unknown).
    fn known_entry(&self, rel: &Path) -> Option<Entry> {
        let prefix = self.settings.url.dir_prefix(rel.parent()?)?;
        let dir = self.listings.known(&prefix)?;
        dir.get(rel.file_name()?.to_str()?).cloned()
    }

    fn meta(&self, entry: &Entry) -> Meta {
        let (uid, gid) = (self.settings.uid, self.settings.gid);
        let (kind, mode, nlink, size, mtime, etag) = match entry {
            Entry::Dir => (Kind::Dir, libc::S_IFDIR | 0o555, 2, 0, self.started, None),
            Entry::File { size, mtime, etag } => (
                Kind::File,
                libc::S_IFREG | 0o444,
                1,
                *size,
                *mtime,
                etag.clone(),
            ),
        };
        let ns = nanos(mtime);
        Meta {
            kind,
            mode,
            uid,
            gid,
            nlink,
            rdev: 0,
            atime: mtime,
            mtime,
            ctime: mtime,
            version: Version {
                size,
                mtime_ns: ns,
                ctime_ns: ns,
                tag: Tag::Etag(etag.unwrap_or_else(|| Arc::from(""))),
            },
        }
    }
}

impl Store for S3Store {
    fn describe(&self) -> String {
        self.settings.url.describe()
    }

    fn stat(&self, rel: &Path) -> Result<Meta> {
        Ok(self.meta(&self.entry(rel)?))
    }

    fn list(&self, rel: &Path) -> Result<Vec<DirItem>> {
        if self.entry(rel)? != Entry::Dir {
            return Err(Error::NotDir(rel.display().to_string()));
        }
        Ok(self
            .dir(rel)?
            .iter()
            .map(|(name, e)| DirItem {
                name: OsString::from(name),
                kind: if *e == Entry::Dir {
                    Kind::Dir
                } else {
                    Kind::File
                },
            })
            .collect())
    }

    fn read_link(&self, rel: &Path) -> Result<OsString> {
        Err(Error::Invalid(format!(
            "{}: an object store has no symlinks",
            rel.display()
        )))
    }

    fn resolve(&self, rel: &Path) -> std::result::Result<(PathBuf, Meta), NotFile> {
        match self.entry(rel) {
            Ok(e @ Entry::File { .. }) => Ok((rel.to_path_buf(), self.meta(&e))),
            Ok(Entry::Dir) => Err(NotFile::Other("a directory".into())),
            Err(_) => Err(NotFile::Missing),
        }
    }

    fn open(&self, rel: &Path) -> Result<Arc<dyn ByteSource>> {
        // A listing seen before will do (If-Match guards every read): an
        // open during an outage of the store does not fail for want of one.
        let entry = match self.known_entry(rel) {
            Some(e) => e,
            None => self.entry(rel)?,
        };
        let Entry::File { size, ref etag, .. } = entry else {
            return Err(Error::IsDir(rel.display().to_string()));
        };
        let missing = || Error::NotFound(rel.display().to_string());
        let url = &self.settings.url;
        let key = url.key(rel).ok_or_else(missing)?;
        let dir_prefix = url
            .dir_prefix(rel.parent().ok_or_else(missing)?)
            .ok_or_else(missing)?;
        let version = self.meta(&entry).version;
        let mut objects = self.objects.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(obj) = objects.get(&key)
            && *obj.version() == version
        {
            return Ok(obj.clone());
        }
        let path = object_store::path::Path::parse(&key)
            .map_err(|e| Error::Invalid(format!("{}: {e}", self.client.name(&key))))?;
        let info = ObjectInfo::new(
            self.next_id.fetch_add(1, Ordering::Relaxed),
            path,
            rel.to_path_buf(),
            dir_prefix,
            size,
            self.client.name(&key),
            etag.clone(),
        );
        let obj = Arc::new(S3Object::new(
            info,
            self.fetcher.clone(),
            self.client.handle(),
            version,
            self.client.locator(&key),
            self.max_window,
        ));
        objects.insert(key, obj.clone());
        Ok(obj)
    }

    fn fetch_stats(&self) -> Option<FetchStats> {
        let (per_path, total, list_requests) = self.fetcher.counters.snapshot();
        Some(FetchStats {
            per_path,
            total,
            list_requests,
            block_cache_bytes: self.fetcher.blocks.used(),
            block_cache_budget: self.fetcher.blocks.budget(),
        })
    }
}
