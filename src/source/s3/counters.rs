//! What the store was asked for: GET requests and bytes received per file,
//! and listing requests, for `.nifuse/stats`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::source::Fetched;

/// Request and byte counts of one store.
#[derive(Default)]
pub struct Counters {
    files: Mutex<(HashMap<PathBuf, Fetched>, Fetched)>,
    lists: AtomicU64,
}

impl Counters {
    fn update(&self, rel: &Path, f: impl Fn(&mut Fetched)) {
        let mut files = self.files.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut files.1);
        match files.0.get_mut(rel) {
            Some(per) => f(per),
            None => {
                let mut per = Fetched::default();
                f(&mut per);
                files.0.insert(rel.to_path_buf(), per);
            }
        }
    }

    /// A GET of file `rel` was sent.
    pub fn request(&self, rel: &Path) {
        self.update(rel, |c| c.requests += 1);
    }

    /// `n` bytes of file `rel` arrived.
    pub fn received(&self, rel: &Path, n: u64) {
        self.update(rel, |c| c.bytes += n);
    }

    /// One page of a directory listing was requested.
    pub fn listed(&self) {
        self.lists.fetch_add(1, Ordering::Relaxed);
    }

    /// Per-file counts, their total, and the listing requests.
    pub fn snapshot(&self) -> (HashMap<PathBuf, Fetched>, Fetched, u64) {
        let files = self.files.lock().unwrap_or_else(|p| p.into_inner());
        (files.0.clone(), files.1, self.lists.load(Ordering::Relaxed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_add_up_per_file_and_in_total() {
        let c = Counters::default();
        c.request(Path::new("a.nii"));
        c.received(Path::new("a.nii"), 100);
        c.request(Path::new("b.nii"));
        c.received(Path::new("b.nii"), 5);
        c.listed();
        let (per, total, lists) = c.snapshot();
        assert_eq!(
            per[Path::new("a.nii")],
            Fetched {
                bytes: 100,
                requests: 1
            }
        );
        assert_eq!(
            total,
            Fetched {
                bytes: 105,
                requests: 2
            }
        );
        assert_eq!(lists, 1);
    }
}
