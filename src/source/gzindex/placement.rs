//! Checkpoint placement: what a cursor does at each block boundary.
//!
//! Applies the rules of `index.rs` (last boundary before each requested start,
//! one every `SPAN` in large regions) and takes the window from the cursor's
//! history buffer. Only the first pass ([`super::reader::Role::Build`]) places
//! checkpoints.

use std::sync::Arc;

use super::index::{Checkpoint, SPAN};
use super::reader::{Boundary, Cursor};
use super::zlib::WINDOW_SIZE;

impl Cursor {
    /// Decide the pending boundary now if a requested start lies between it
    /// and the current position (no other boundary can come before that start).
    pub fn settle(&mut self) {
        let out = self.out();
        if let Some(p) = self.prev.take() {
            if self.rules.start_in(p.out, out.saturating_add(1)) {
                self.record(Boundary {
                    window: p.window.clone(),
                    ..p
                });
            }
            self.prev = Some(p);
        }
    }
    /// The window for a boundary at `out`, if the history still holds it.
    pub(super) fn window_at(&self, out: u64, member_out: u64) -> Option<Arc<[u8]>> {
        let wlen = out.checked_sub(member_out)?.min(WINDOW_SIZE as u64);
        let from = out.checked_sub(wlen)?.checked_sub(self.hist_base)?;
        let to = out.checked_sub(self.hist_base)?;
        if to > self.hist_len as u64 {
            return None;
        }
        self.hist.get(from as usize..to as usize).map(Arc::from)
    }
    pub(super) fn on_boundary(&mut self, b: Boundary) {
        if let Some(p) = self.prev.take()
            && self.rules.start_in(p.out, b.out)
        {
            self.record(p);
        }
        let first = b.out == 0 && b.member_start;
        let span = self.rules.large_region(b.out) && b.out.saturating_sub(self.last_cp) >= SPAN;
        if first || span {
            self.record(b);
        } else {
            self.prev = Some(b);
        }
    }
    pub(super) fn record(&mut self, b: Boundary) {
        self.last_cp = b.out;
        let w = match b.window {
            Some(w) => Some(w),
            None => self.window_at(b.out, b.member_out),
        };
        match w {
            Some(window) => self.pending.push(Checkpoint::new(
                b.out,
                b.bitpos,
                b.member_out,
                b.crc,
                b.member_start,
                window,
            )),
            None => log::debug!(
                "gzindex: window for checkpoint at {} no longer available; skipped",
                b.out
            ),
        }
    }

    /// Drop history before the last 32 KiB (and before `keep_from`, if that
    /// leaves room), saving the window of a pending boundary first.
    pub(super) fn compact(&mut self) {
        if self.hist_len <= WINDOW_SIZE {
            return;
        }
        if let Some(p) = self.prev.take() {
            let p = if p.window.is_none() {
                let w = self.window_at(p.out, p.member_out);
                Boundary { window: w, ..p }
            } else {
                p
            };
            self.prev = Some(p);
        }
        let mut keep_from = self.hist_len - WINDOW_SIZE;
        if let Some(k) = self.keep_from.checked_sub(self.hist_base) {
            let k = usize::try_from(k).unwrap_or(usize::MAX);
            if k < keep_from && self.hist_len - k <= self.hist.len() * 3 / 4 {
                keep_from = k;
            }
        }
        self.hist.copy_within(keep_from..self.hist_len, 0);
        self.hist_base += keep_from as u64;
        self.hist_len -= keep_from;
    }
}
