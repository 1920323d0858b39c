//! Directory listings of the bucket: a directory is listed with one
//! ListObjectsV2 request (delimiter `/`) per page when it is first needed,
//! and the listing is kept for `--metadata-ttl`. Sizes, modification times
//! and ETags come from the listing; no object is asked about on its own.
//!
//! Concurrent lookups in one directory wait for the same listing. When the
//! store cannot be reached, a listing seen before is kept in use (and
//! retried every [`STALE_RETRY`]), so the tree stays usable while it is down.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use object_store::list::{PaginatedListOptions, PaginatedListStore};

use super::client::Client;
use super::counters::Counters;
use super::errors::{self, Failure};

/// How long a listing kept in use after a failed refresh lasts before the next try.
pub const STALE_RETRY: Duration = Duration::from_secs(10);

/// One entry of a directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Entry {
    /// A common prefix: a directory.
    Dir,
    /// An object.
    File {
        /// Size in bytes.
        size: u64,
        /// Last modified.
        mtime: SystemTime,
        /// The ETag as listed (quoted), if the store lists them.
        etag: Option<Arc<str>>,
    },
}

/// A directory: its entries by name.
pub type Dir = BTreeMap<String, Entry>;

struct Listed {
    /// When it was listed.
    at: Instant,
    /// Until when it stands for the directory without a new listing.
    until: Instant,
    dir: Arc<Dir>,
}

/// One directory's listing, and whether it was found out of date.
#[derive(Default)]
struct Slot {
    /// Held while the directory is being listed (so one listing serves all
    /// who wait for it): never taken from inside the runtime.
    listed: Mutex<Option<Listed>>,
    /// Set without waiting (by fetches on the runtime's threads, which must
    /// never block on `listed`, held across a listing they would have to
    /// drive): the next [`Listings::get`] lists again.
    stale: AtomicBool,
}

/// The listings of one bucket, by key prefix (`""` or `a/b/`).
pub struct Listings {
    ttl: Duration,
    dirs: Mutex<HashMap<String, Arc<Slot>>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Listings {
    /// Listings kept for `ttl`.
    pub fn new(ttl: Duration) -> Listings {
        Listings {
            ttl,
            dirs: Mutex::new(HashMap::new()),
        }
    }

    fn slot(&self, prefix: &str) -> Arc<Slot> {
        lock(&self.dirs)
            .entry(prefix.to_string())
            .or_default()
            .clone()
    }

    /// The directory under `prefix`, listed now unless a listing younger
    /// than the TTL is kept.
    pub fn get(
        &self,
        client: &Client,
        prefix: &str,
        counters: &Counters,
    ) -> Result<Arc<Dir>, Failure> {
        let slot = self.slot(prefix);
        let mut listed = lock(&slot.listed);
        let stale = slot.stale.swap(false, Ordering::AcqRel);
        if let Some(l) = listed.as_ref()
            && Instant::now() < l.until
            && !stale
        {
            return Ok(l.dir.clone());
        }
        let fresh = client
            .run(list_all(client, prefix, counters))
            .unwrap_or_else(|| Err(errors::timed_out()));
        match (fresh, listed.as_mut()) {
            (Ok(dir), _) => {
                let dir = Arc::new(dir);
                let at = Instant::now();
                *listed = Some(Listed {
                    at,
                    until: at + self.ttl,
                    dir: dir.clone(),
                });
                Ok(dir)
            }
            (Err(f), Some(old)) => {
                log::warn!(
                    "listing {} failed: {}; showing the listing from {} s ago until the store answers",
                    client.name(prefix),
                    f.detail,
                    old.at.elapsed().as_secs()
                );
                old.until = Instant::now() + STALE_RETRY.min(self.ttl);
                Ok(old.dir.clone())
            }
            (Err(f), None) => Err(f),
        }
    }

    /// The directory under `prefix` as last listed (however old), without a request.
    pub fn known(&self, prefix: &str) -> Option<Arc<Dir>> {
        let slot = lock(&self.dirs).get(prefix).cloned()?;
        lock(&slot.listed).as_ref().map(|l| l.dir.clone())
    }

    /// Makes the next [`Listings::get`] of `prefix` list it again (an object
    /// in it changed). Never waits: called from the runtime's threads.
    pub fn forget(&self, prefix: &str) {
        if let Some(slot) = lock(&self.dirs).get(prefix) {
            slot.stale.store(true, Ordering::Release);
        }
    }

    /// Whether the listing of `prefix` was forgotten (for tests).
    #[cfg(test)]
    fn is_stale(&self, prefix: &str) -> bool {
        self.slot(prefix).stale.load(Ordering::Acquire)
    }
}

/// Lists the directory under `prefix`, every page.
async fn list_all(client: &Client, prefix: &str, counters: &Counters) -> Result<Dir, Failure> {
    let mut dir = Dir::new();
    let mut token = None;
    loop {
        let opts = PaginatedListOptions {
            delimiter: Some("/".into()),
            page_token: token.take(),
            ..PaginatedListOptions::default()
        };
        counters.listed();
        let page = client
            .s3
            .list_paginated((!prefix.is_empty()).then_some(prefix), opts)
            .await
            .map_err(|e| errors::failure(&e))?;
        for p in &page.result.common_prefixes {
            if let Some(name) = name_in(p.as_ref(), prefix) {
                dir.insert(name.to_string(), Entry::Dir);
            }
        }
        for o in page.result.objects {
            let Some(name) = name_in(o.location.as_ref(), prefix) else {
                continue; // the directory's own marker object ("prefix/")
            };
            if dir.get(name) == Some(&Entry::Dir) {
                log::info!(
                    "{}: hidden by the directory of the same name",
                    client.name(o.location.as_ref())
                );
                continue;
            }
            dir.insert(
                name.to_string(),
                Entry::File {
                    size: o.size,
                    mtime: SystemTime::from(o.last_modified),
                    etag: o.e_tag.map(Arc::from),
                },
            );
        }
        match page.page_token {
            Some(t) => token = Some(t),
            None => return Ok(dir),
        }
    }
}

/// The name of `key` (a listed key or common prefix, without trailing `/`)
/// in the directory under `prefix`.
fn name_in<'a>(key: &'a str, prefix: &str) -> Option<&'a str> {
    let name = key.strip_prefix(prefix)?;
    (!name.is_empty() && !name.contains('/')).then_some(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_taken_relative_to_the_prefix() {
        assert_eq!(name_in("ds/sub-01", "ds/"), Some("sub-01"));
        assert_eq!(name_in("ds/a b ü.nii", "ds/"), Some("a b ü.nii"));
        assert_eq!(name_in("x.nii", ""), Some("x.nii"));
        assert_eq!(name_in("ds", "ds/"), None, "the directory marker");
        assert_eq!(name_in("other/x", "ds/"), None);
        assert_eq!(name_in("ds/a/b", "ds/"), None);
    }

    #[test]
    fn forgotten_and_unknown_listings() {
        let l = Listings::new(Duration::from_secs(60));
        assert!(l.known("a/").is_none());
        let at = Instant::now();
        *lock(&l.slot("a/").listed) = Some(Listed {
            at,
            until: at + Duration::from_secs(60),
            dir: Arc::new(Dir::new()),
        });
        assert!(l.known("a/").is_some());
        // Forgetting never waits for a listing in progress.
        let held = l.slot("a/");
        let _listing = lock(&held.listed);
        l.forget("a/");
        assert!(l.is_stale("a/"));
        drop(_listing);
        assert!(
            l.known("a/").is_some(),
            "a forgotten listing is still known"
        );
    }
}
