//! Reads of a [`GzAccess`]: wait for (or drive) the first pass as far as the
//! verify mode needs, then decode from the index with a check cursor (a
//! cached one or a new one at the nearest checkpoint), every segment checked
//! against its recorded CRC; a mismatch discards the index.

use std::sync::atomic::Ordering;

use super::pass::{Goal, PassState, Verify};
use super::reader::{Cursor, Role};
use super::{CHECK_AHEAD, GzAccess, GzError, MAX_CURSORS, index::Index, lock, segments};

impl GzAccess {
    /// Fill `buf` with uncompressed bytes starting at `offset` (exact; error
    /// if the stream ends first), in [`Verify::Background`] mode.
    pub fn read_exact_at(&self, offset: u64, buf: &mut [u8]) -> Result<(), GzError> {
        self.read(offset, buf, Verify::Background)
    }

    /// Fill `buf` with the uncompressed bytes at `offset`, once `verify`
    /// allows them to be served: the first pass is taken (or waited for) as
    /// far as that, then the bytes are decoded from the index and checked
    /// against its segment CRCs.
    pub fn read(&self, offset: u64, buf: &mut [u8], verify: Verify) -> Result<(), GzError> {
        if buf.is_empty() {
            return Ok(());
        }
        let verify = if self.distrust.load(Ordering::Relaxed) {
            Verify::Strict
        } else {
            verify
        };
        let len = buf.len() as u64;
        let end = offset.checked_add(len).ok_or(GzError::OutOfRange {
            offset,
            len,
            total: u64::MAX,
        })?;
        loop {
            let done = |st: &PassState| st.servable(end, verify).is_some();
            let copied = self.run_pass(Goal {
                done: &done,
                copy: Some((offset, &mut *buf)),
                progress: &mut |_, _| {},
            })?;
            let verdict = self.pass.lock().servable(end, verify);
            match verdict {
                Some(Err(f)) => return Err(f.error()),
                Some(Ok(())) if copied => return Ok(()),
                Some(Ok(())) => {}
                None => continue,
            }
            if let Some(r) = self.read_indexed(offset, buf) {
                return r;
            }
        }
    }

    /// Decodes `buf` at `offset` from the index with a check cursor. None if
    /// the index does not reach that far (it was discarded meanwhile).
    fn read_indexed(&self, offset: u64, buf: &mut [u8]) -> Option<Result<(), GzError>> {
        let end = offset + buf.len() as u64;
        let (mut c, epoch) = match self.checkout(offset, end)? {
            Ok(x) => x,
            Err(e) => return Some(Err(e)),
        };
        let r = c.read(&self.ctx(), offset, buf).map_err(|e| match e {
            GzError::Corrupt { msg, .. } => GzError::Damaged(msg),
            e => e,
        });
        match &r {
            Ok(()) if !c.blind => {
                let mut g = lock(&self.inner);
                if g.epoch == epoch {
                    if g.cursors.len() >= MAX_CURSORS {
                        g.cursors.remove(0);
                    }
                    g.cursors.push(c);
                }
            }
            Err(GzError::Damaged(msg)) => {
                self.distrust.store(true, Ordering::Relaxed);
                self.discard(epoch, msg);
            }
            Err(GzError::BadIndex(msg)) => self.discard(epoch, msg),
            _ => {}
        }
        Some(r)
    }

    /// The cheapest check cursor for `offset..end`: a cached one at or a
    /// little before `offset`, or a new one at the checkpoint before it.
    fn checkout(&self, offset: u64, end: u64) -> Option<Result<(Cursor, u64), GzError>> {
        let (cp, epoch) = {
            let mut g = lock(&self.inner);
            if let Some(total) = g.index.total
                && end > total
            {
                let len = end - offset;
                return Some(Err(GzError::OutOfRange { offset, len, total }));
            }
            if end > g.index.covered() {
                return None;
            }
            let cp = g.index.best_for(offset).cloned();
            let cp_cost = cp.as_ref().map_or(offset, |c| offset - c.out);
            let best = g
                .cursors
                .iter()
                .enumerate()
                .filter(|(_, c)| c.hist_base() <= offset && !c.blind)
                .map(|(i, c)| (offset.saturating_sub(c.out()), i))
                .filter(|&(cost, _)| cost <= cp_cost)
                .min();
            if let Some((_, i)) = best {
                let mut c = g.cursors.remove(i);
                c.check = segments::checklist(&g.index, c.seg_start(), end + CHECK_AHEAD);
                return Some(Ok((c, g.epoch)));
            }
            (cp, g.epoch)
        };
        let ctx = self.ctx();
        let made = match &cp {
            Some(cp) => Cursor::at_checkpoint(&ctx, cp, Role::Check),
            None => Cursor::at_start(&ctx, Role::Check),
        };
        Some(made.map(|mut c| {
            let ahead = end + CHECK_AHEAD;
            c.check = segments::checklist(&lock(&self.inner).index, c.seg_start(), ahead);
            (c, epoch)
        }))
    }

    /// Discards the index of `epoch` (it does not match the data): one log
    /// line, the saved file removed, and a new pass from the start.
    pub(super) fn discard(&self, epoch: u64, why: &str) {
        let new_epoch = {
            let mut g = lock(&self.inner);
            if g.epoch != epoch {
                return;
            }
            g.index = Index::new(self.rules.starts.to_vec());
            g.cursors.clear();
            g.epoch += 1;
            g.generation += 1;
            g.saved_generation = g.generation;
            g.epoch
        };
        log::warn!(
            "{}: its gzip index does not match the file ({why}); the read gives EIO and the index \
             is rebuilt from the file",
            self.key.locator
        );
        if let Some(f) = &self.index_file {
            let _ = std::fs::remove_file(f);
        }
        self.pass.reset(new_epoch);
    }
}
