//! The checkpoint list and the rules that decide where checkpoints go.
//!
//! A [`Checkpoint`] is a place in the gzip file where inflation can resume:
//! a deflate block boundary (compressed *bit* position + the up to 32 KiB of
//! output before it) or the start of a gzip member (no window needed). The
//! [`Index`] holds the sorted checkpoints, the requested volume starts, the
//! CRC-32 of every *segment* of decoded bytes from 0 to `covered()` (see
//! `segments.rs`), and the gzip members whose trailer was checked.
//!
//! Placement rules (applied by the cursor while inflating, see `reader.rs`):
//! * for each requested start `s`, the last block boundary at or before `s`;
//! * inside regions between starts longer than [`LARGE_REGION`] (and in the
//!   open region after the last start), a boundary every [`SPAN`] bytes.

use std::sync::{Arc, OnceLock};

use super::zlib::WINDOW_SIZE;

/// Spacing of extra checkpoints inside large volumes.
pub const SPAN: u64 = 1 << 20;
/// Volumes longer than this get extra checkpoints every [`SPAN`].
pub const LARGE_REGION: u64 = 2 << 20;

/// A resumable position in the compressed stream.
#[derive(Clone, Debug)]
pub struct Checkpoint {
    /// Uncompressed offset of the first byte produced after resuming.
    pub out: u64,
    /// Compressed position in bits (byte offset * 8 + bit within byte, LSB first).
    pub bitpos: u64,
    /// Uncompressed offset at which the current gzip member started.
    pub member_out: u64,
    /// CRC-32 of the member's output in `member_out..out`.
    pub crc: u32,
    /// True if this is the start of a gzip member (bitpos is just past the header).
    pub member_start: bool,
    /// The last `min(32 KiB, out - member_out)` bytes of output before `out`.
    pub window: Arc<[u8]>,
    /// The window deflated for the on-disk index, computed once on first save.
    pub packed: Arc<OnceLock<Arc<[u8]>>>,
}

impl Checkpoint {
    pub fn new(
        out: u64,
        bitpos: u64,
        member_out: u64,
        crc: u32,
        member_start: bool,
        window: Arc<[u8]>,
    ) -> Self {
        Checkpoint {
            out,
            bitpos,
            member_out,
            crc,
            member_start,
            window,
            packed: Arc::new(OnceLock::new()),
        }
    }

    /// Structural validity; `file_len` is the compressed file size.
    pub fn check(&self, file_len: u64) -> Result<(), String> {
        let byte = self.bitpos / 8;
        if byte >= file_len {
            return Err(format!(
                "checkpoint at {} points past the end of the file ({} >= {})",
                self.out, byte, file_len
            ));
        }
        if self.member_out > self.out {
            return Err(format!(
                "checkpoint at {}: member start {} after it",
                self.out, self.member_out
            ));
        }
        let expect = (self.out - self.member_out).min(WINDOW_SIZE as u64);
        if self.window.len() as u64 != expect {
            return Err(format!(
                "checkpoint at {}: window of {} bytes, expected {}",
                self.out,
                self.window.len(),
                expect
            ));
        }
        if self.member_start && (self.out != self.member_out || !self.bitpos.is_multiple_of(8)) {
            return Err(format!(
                "checkpoint at {}: inconsistent member start",
                self.out
            ));
        }
        Ok(())
    }
}

/// Compressed position of a segment end that is not known (segments loaded
/// from a saved index).
pub const UNKNOWN_IN: u64 = u64::MAX;

/// A run of decoded bytes ending at `end` (starting where the previous one
/// ends, or at 0) and the CRC-32 of its bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Seg {
    pub end: u64,
    pub crc: u32,
    /// Compressed byte position the inflater had reached when the segment's
    /// last byte came out ([`UNKNOWN_IN`] when loaded from disk).
    pub in_end: u64,
}

/// A gzip member whose CRC-32 and length matched its trailer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Member {
    pub start: u64,
    pub end: u64,
    pub crc: u32,
}

/// The in-memory index of one gzip file.
#[derive(Clone, Debug, Default)]
pub struct Index {
    /// Sorted, deduplicated uncompressed offsets that need a checkpoint.
    pub starts: Vec<u64>,
    /// Checkpoints sorted by `out` (strictly increasing).
    pub cps: Vec<Checkpoint>,
    /// Segments from 0 to `covered()`, each boundary a checkpoint, a volume
    /// start, a deflate block boundary, a member boundary or a grid point.
    pub segs: Vec<Seg>,
    /// Verified members, contiguous from 0.
    pub members: Vec<Member>,
    /// Total uncompressed size, once the whole stream has been indexed and verified.
    pub total: Option<u64>,
}

impl Index {
    pub fn new(mut starts: Vec<u64>) -> Index {
        starts.sort_unstable();
        starts.dedup();
        Index {
            starts,
            ..Index::default()
        }
    }

    /// Decoded bytes before this offset are indexed: every checkpoint they
    /// need is present and every byte has a segment CRC.
    pub fn covered(&self) -> u64 {
        self.segs.last().map_or(0, |s| s.end)
    }

    /// Decoded bytes before this offset lie in members whose trailer matched.
    pub fn verified_to(&self) -> u64 {
        self.members.last().map_or(0, |m| m.end)
    }

    /// The last checkpoint with `out <= offset`.
    pub fn best_for(&self, offset: u64) -> Option<&Checkpoint> {
        let i = self.cps.partition_point(|c| c.out <= offset);
        i.checked_sub(1).and_then(|i| self.cps.get(i))
    }

    /// Insert checkpoints that are not yet present (by `out`). Returns how many were added.
    pub fn merge(&mut self, new: Vec<Checkpoint>) -> usize {
        let mut added = 0;
        for cp in new {
            match self.cps.binary_search_by_key(&cp.out, |c| c.out) {
                Ok(_) => {}
                Err(i) => {
                    self.cps.insert(i, cp);
                    added += 1;
                }
            }
        }
        added
    }

    /// Forget everything at or after decoded offset `out` (a checkpoint where
    /// a pass resumes).
    pub fn truncate(&mut self, out: u64) {
        self.cps.retain(|c| c.out <= out);
        self.segs.retain(|s| s.end <= out);
        self.members.retain(|m| m.end <= out);
        self.total = None;
    }

    /// Validate ordering and every checkpoint (used on load).
    pub fn validate(&self, file_len: u64) -> Result<(), String> {
        let first = self.cps.first().ok_or("index has no checkpoints")?;
        if first.out != 0 || !first.member_start {
            return Err("first checkpoint is not the start of the stream".into());
        }
        for w in self.cps.windows(2) {
            if let [a, b] = w
                && (b.out <= a.out || b.bitpos <= a.bitpos)
            {
                return Err(format!("checkpoints out of order at {}", b.out));
            }
        }
        for c in &self.cps {
            c.check(file_len)?;
        }
        super::segments::validate(self)?;
        let covered = self.covered();
        let last = self.cps.last().map_or(0, |c| c.out);
        if covered < last {
            return Err("covered range ends before the last checkpoint".into());
        }
        if let Some(t) = self.total
            && (t != covered || self.verified_to() != covered)
        {
            return Err("complete index with covered != total or unverified members".into());
        }
        Ok(())
    }
}

/// The checkpoint placement rules, shared (read-only) by all cursors.
#[derive(Debug, Clone)]
pub struct Rules {
    pub starts: Arc<[u64]>,
}

impl Rules {
    /// Is there a requested start in `lo..hi`?
    pub fn start_in(&self, lo: u64, hi: u64) -> bool {
        let i = self.starts.partition_point(|&s| s < lo);
        self.starts.get(i).is_some_and(|&s| s < hi)
    }

    /// Does the region containing `x` get a checkpoint every [`SPAN`]?
    pub fn large_region(&self, x: u64) -> bool {
        let i = self.starts.partition_point(|&s| s <= x);
        let lo = if i == 0 {
            0
        } else {
            self.starts.get(i - 1).copied().unwrap_or(0)
        };
        match self.starts.get(i) {
            Some(&hi) => hi.saturating_sub(lo) > LARGE_REGION,
            None => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules() {
        let r = Rules {
            starts: Arc::from(vec![100u64, 200, 200 + 3 * LARGE_REGION]),
        };
        assert!(r.start_in(100, 101));
        assert!(!r.start_in(101, 200));
        assert!(r.start_in(150, 201));
        assert!(!r.large_region(50));
        assert!(!r.large_region(150));
        assert!(r.large_region(300));
        assert!(r.large_region(200 + 4 * LARGE_REGION));
    }

    #[test]
    fn merge_and_best() {
        let mut ix = Index::new(vec![5, 1, 5]);
        assert_eq!(ix.starts, vec![1, 5]);
        let cp = |o| {
            Checkpoint::new(
                o,
                o * 8,
                0,
                0,
                o == 0,
                Arc::from(vec![0u8; o.min(32768) as usize]),
            )
        };
        assert_eq!(ix.merge(vec![cp(0), cp(10), cp(5)]), 3);
        assert_eq!(ix.merge(vec![cp(10)]), 0);
        assert_eq!(ix.best_for(7).map(|c| c.out), Some(5));
        assert_eq!(ix.best_for(100).map(|c| c.out), Some(10));
        assert!(ix.validate(1000).is_err(), "checkpoints without segments");
        ix.truncate(5);
        assert_eq!(ix.cps.len(), 2);
    }
}
