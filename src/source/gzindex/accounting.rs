//! Segment accounting of a cursor: every byte it produces is hashed into
//! the open segment, which is closed at each boundary (`segments.rs`): a
//! build cursor records it, a check cursor compares it with the index.

use super::GzError;
use super::index::Seg;
use super::reader::{Cursor, Role};
use super::segments::{combine, next_fixed};

impl Cursor {
    /// Build: ends the open segment where the output stopped (the stream
    /// was cut short), so that every decoded byte has a segment.
    pub fn close_open_segment(&mut self) {
        let (out, at) = (self.out(), self.in_pos());
        if self.role == Role::Build && out > self.seg_start {
            // Build never fails to close a segment (only Check compares).
            let _ = self.close_segment(out, at);
        }
    }

    /// Hash the new output `lo..hi` (in the history buffer) into segments,
    /// closing each one at its boundary.
    pub(super) fn account(&mut self, lo: u64, hi: u64) -> Result<(), GzError> {
        let mut pos = lo;
        while pos < hi {
            if self.blind || (self.role == Role::Check && self.check.is_empty()) {
                self.blind = true;
                return Ok(());
            }
            let boundary = self.next_boundary();
            let stop = boundary.min(hi);
            let (a, b) = (
                (pos - self.hist_base) as usize,
                (stop - self.hist_base) as usize,
            );
            self.seg_crc.update(&self.hist[a..b]);
            pos = stop;
            if pos == boundary {
                self.close_segment(pos, self.in_pos())?;
            }
        }
        Ok(())
    }

    /// Where the open segment ends, if no block or member boundary comes first.
    fn next_boundary(&self) -> u64 {
        match self.role {
            Role::Build => next_fixed(self.seg_start, &self.rules.starts),
            Role::Check => self.check.front().map_or(u64::MAX, |s| s.end),
        }
    }

    /// Ends the open segment at `at` (compressed position `in_end`): Build
    /// records it, Check compares it with the index.
    pub(super) fn close_segment(&mut self, at: u64, in_end: u64) -> Result<(), GzError> {
        if at <= self.seg_start {
            return Ok(());
        }
        let crc = std::mem::take(&mut self.seg_crc).finalize();
        let len = at - self.seg_start;
        match self.role {
            Role::Build => self.new_segs.push(Seg {
                end: at,
                crc,
                in_end,
            }),
            Role::Check => match self.check.pop_front() {
                Some(s) if s.end == at && s.crc == crc => {}
                Some(s) => {
                    return Err(GzError::Damaged(format!(
                        "decoded bytes {}..{at} have CRC-32 {crc:08x}, the index recorded {:08x} for {}..{}",
                        self.seg_start, s.crc, self.seg_start, s.end
                    )));
                }
                None => {
                    return Err(GzError::Damaged(format!(
                        "decoded bytes {}..{at} are past the segments of the index",
                        self.seg_start
                    )));
                }
            },
        }
        self.member_crc = combine(self.member_crc, crc, len);
        self.seg_start = at;
        Ok(())
    }
}
