//! The first pass: one build cursor per file that inflates the stream from
//! the start (or from where a saved partial index stops), recording
//! checkpoints, segment CRCs and verified members as it goes.
//!
//! The pass is driven by whoever needs it: a reader whose bytes it has not
//! reached yet takes the cursor and inflates up to them (copying its own
//! bytes out on the way when it can, so they are inflated once), then hands
//! it back; a background continuation (`pool.rs`) takes it from there to the
//! end of the stream. Readers that find another thread driving wait on a
//! condition variable until the pass has gone far enough for them or ended.
//! No lock is held while inflating.
//!
//! How far is far enough depends on the [`Verify`] mode: `Strict` serves only
//! bytes of members whose trailer matched; `Background` also serves bytes
//! whose compressed data lies at least [`CORRUPTION_MARGIN`] bytes behind
//! the pass without an inflate error (garbage can decode for a while before
//! inflate notices it), so only damage that still inflates (caught by the
//! member's CRC-32) can be found after its bytes were served.

use std::sync::{Condvar, MutexGuard};

pub use super::outcome::{FailKind, Failure, Outcome, Verify};

use super::index::Index;
use super::reader::{Cursor, Role};
use super::segments::safe_before;
use super::{GzAccess, GzError, TRAILER_MISMATCH, lock};

/// Compressed bytes after a served byte that must inflate without error
/// before it is served in background mode (and, after an inflate error, the
/// compressed bytes before it whose output is not trusted either).
pub const CORRUPTION_MARGIN: u64 = 128 << 10;

/// Output between two publications of the pass's progress while a reader
/// drives it (a reader waits at most this much past its own bytes).
const PUBLISH_EVERY: u64 = 64 << 10;
/// Output a background continuation inflates between two chances for a
/// reader to take the cursor over.
const BACKGROUND_CHUNK: u64 = 1 << 20;

/// The shared state of the pass (under `Pass::state`).
pub(super) struct PassState {
    /// The build cursor while no one drives it (None before the first use).
    cursor: Option<Cursor>,
    /// A thread is inflating with the cursor now.
    driving: bool,
    /// Bumped when the index is discarded: a driver of an older epoch stops.
    pub(super) epoch: u64,
    /// Background mode may serve decoded bytes before this.
    ready: u64,
    /// Bytes before this lie in verified members.
    pub(super) verified: u64,
    pub(super) outcome: Option<Outcome>,
    /// A background continuation is queued or running.
    scheduled: bool,
    /// Readers waiting for the cursor: a driver that is not a reader (a
    /// cache fill, the background continuation) hands it over to them.
    readers_waiting: usize,
    /// The cursor resumed at a checkpoint of a loaded index (a failure may
    /// then be the index's fault: the pass is retried once from the start).
    resumed: bool,
}

pub(super) struct Pass {
    pub(super) state: std::sync::Mutex<PassState>,
    pub(super) changed: Condvar,
}

impl Pass {
    /// The pass of a file whose loaded (or empty) index is `index`.
    pub(super) fn new(index: &Index) -> Pass {
        let resume_pos = index.cps.last().map_or(0, |c| c.bitpos / 8);
        let outcome = index.total.map(|total| Outcome::Complete { total });
        Pass {
            state: std::sync::Mutex::new(PassState {
                cursor: None,
                driving: false,
                epoch: 0,
                ready: safe_before(index, resume_pos, CORRUPTION_MARGIN),
                verified: index.verified_to(),
                outcome,
                scheduled: false,
                readers_waiting: 0,
                resumed: false,
            }),
            changed: Condvar::new(),
        }
    }

    pub(super) fn lock(&self) -> MutexGuard<'_, PassState> {
        lock(&self.state)
    }

    /// Forget all progress (the index was discarded); a driver of the old
    /// epoch finds out when it publishes.
    pub(super) fn reset(&self, epoch: u64) {
        let mut st = self.lock();
        st.cursor = None;
        st.driving = false;
        st.epoch = epoch;
        st.ready = 0;
        st.verified = 0;
        st.outcome = None;
        st.resumed = false;
        st.scheduled = false;
        drop(st);
        self.changed.notify_all();
    }
}

impl PassState {
    /// May a read of bytes before `end` go ahead? `Some(Err)` if it never will.
    pub(super) fn servable(&self, end: u64, verify: Verify) -> Option<Result<(), Failure>> {
        let strict = verify == Verify::Strict;
        match &self.outcome {
            Some(Outcome::Complete { .. }) => Some(Ok(())),
            Some(Outcome::Failed(f)) => {
                let limit = if strict { f.verified } else { f.limit };
                Some(if end <= limit { Ok(()) } else { Err(f.clone()) })
            }
            None => {
                let limit = if strict { self.verified } else { self.ready };
                (end <= limit).then_some(Ok(()))
            }
        }
    }

    /// Is the pass running or queued to run?
    pub(super) fn active(&self) -> bool {
        self.driving || self.scheduled
    }
}

/// What a driver wants from the pass.
pub(super) struct Goal<'a> {
    /// Stop driving once this holds (or the pass ended).
    pub done: &'a dyn Fn(&PassState) -> bool,
    /// Bytes to copy out of the cursor on the way: (offset, buffer).
    pub copy: Option<(u64, &'a mut [u8])>,
    pub progress: &'a mut dyn FnMut(u64, u64),
}

impl GzAccess {
    /// Runs the pass until `goal.done` holds or the pass ends: drives it in
    /// this thread while no other thread does, waits otherwise. Returns
    /// whether the bytes of `goal.copy` were copied out (all of them).
    pub(super) fn run_pass(&self, mut goal: Goal) -> Result<bool, GzError> {
        let mut copied = false;
        let reader = goal.copy.is_some();
        loop {
            let mut st = self.pass.lock();
            // A reader goes first: others also wait while one is waiting.
            while (st.driving || (!reader && st.readers_waiting > 0))
                && st.outcome.is_none()
                && !(goal.done)(&st)
            {
                st.readers_waiting += usize::from(reader);
                st = self
                    .pass
                    .changed
                    .wait(st)
                    .unwrap_or_else(|e| e.into_inner());
                st.readers_waiting -= usize::from(reader);
            }
            if st.outcome.is_some() || (goal.done)(&st) {
                if reader {
                    // One waiting reader fewer: a fill may now go on.
                    drop(st);
                    self.pass.changed.notify_all();
                }
                return Ok(copied);
            }
            st.driving = true;
            let epoch = st.epoch;
            let cursor = st.cursor.take();
            drop(st);
            let mut c = match cursor {
                Some(c) => c,
                None => match self.build_cursor(epoch) {
                    Ok(c) => c,
                    Err(e) => {
                        if let Err(GzError::Io(e)) = self.release(None, epoch, Err(e), false) {
                            return Err(GzError::Io(e));
                        }
                        continue;
                    }
                },
            };
            let ctx = self.ctx();
            let mut r = Ok(());
            if let Some((offset, buf)) = goal.copy.take() {
                if c.hist_base() <= offset {
                    r = c.read(&ctx, offset, buf);
                    copied = r.is_ok();
                } else {
                    goal.copy = Some((offset, buf));
                }
            }
            while r.is_ok() {
                let fresh = self.publish(&mut c, epoch);
                (goal.progress)(c.in_pos().min(self.file_len), self.file_len);
                let stop = {
                    let st = self.pass.lock();
                    let yield_to_reader = !reader && st.readers_waiting > 0;
                    !fresh || c.is_done() || (goal.done)(&st) || yield_to_reader
                };
                if stop {
                    break;
                }
                r = c.run_to(&ctx, c.out().saturating_add(PUBLISH_EVERY));
            }
            if let Err(GzError::Io(e)) = self.release(Some(c), epoch, r, false) {
                return Err(GzError::Io(e));
            }
        }
    }

    /// One chunk of the background continuation. Returns whether to go on.
    pub(super) fn continue_pass(&self) -> bool {
        let mut st = self.pass.lock();
        if st.outcome.is_some() || st.driving || st.readers_waiting > 0 {
            st.scheduled = false;
            return false;
        }
        st.driving = true;
        let epoch = st.epoch;
        let cursor = st.cursor.take();
        drop(st);
        let mut c = match cursor.map_or_else(|| self.build_cursor(epoch), Ok) {
            Ok(c) => c,
            Err(e) => return self.release(None, epoch, Err(e), true).is_ok(),
        };
        let ctx = self.ctx();
        let r = c.run_to(&ctx, c.out().saturating_add(BACKGROUND_CHUNK));
        self.release(Some(c), epoch, r, true).is_ok()
    }

    /// A build cursor where the index stops: at its last checkpoint (what
    /// follows it is dropped and decoded again) or at the start.
    fn build_cursor(&self, epoch: u64) -> Result<Cursor, GzError> {
        let ctx = self.ctx();
        let cp = {
            let mut g = lock(&self.inner);
            if g.epoch != epoch {
                return Err(GzError::BadIndex("the index was discarded".into()));
            }
            let cp = g.index.cps.last().cloned();
            if let Some(cp) = &cp {
                g.index.truncate(cp.out);
            }
            cp
        };
        let Some(cp) = cp else {
            self.pass.lock().resumed = false;
            return Cursor::at_start(&ctx, Role::Build);
        };
        {
            // What followed the checkpoint is decoded again before it is served.
            let mut st = self.pass.lock();
            st.ready = st.ready.min(cp.out);
            st.verified = st.verified.min(cp.out);
            st.resumed = cp.out > 0;
        }
        match Cursor::at_checkpoint(&ctx, &cp, Role::Build) {
            Ok(c) => Ok(c),
            Err(GzError::BadIndex(msg)) => {
                self.discard(epoch, &msg);
                Err(GzError::BadIndex(msg))
            }
            Err(e) => Err(e),
        }
    }

    /// Merges what the cursor found into the index and publishes the new
    /// limits. Returns false if the index was discarded meanwhile.
    fn publish(&self, c: &mut Cursor, epoch: u64) -> bool {
        let (ready, verified) = {
            let mut g = lock(&self.inner);
            if g.epoch != epoch {
                return false;
            }
            let added = g.index.merge(std::mem::take(&mut c.pending));
            let (segs, members) = (
                std::mem::take(&mut c.new_segs),
                std::mem::take(&mut c.new_members),
            );
            let changed = added > 0 || !segs.is_empty() || !members.is_empty();
            g.index.segs.extend(segs);
            g.index.members.extend(members);
            if let Some(t) = c.total
                && g.index.total.is_none()
            {
                g.index.total = Some(t);
            }
            if changed {
                g.generation += 1;
            }
            (
                safe_before(&g.index, c.in_pos(), CORRUPTION_MARGIN),
                g.index.verified_to(),
            )
        };
        let mut st = self.pass.lock();
        if st.epoch != epoch {
            return false;
        }
        st.ready = ready;
        st.verified = verified;
        drop(st);
        self.pass.changed.notify_all();
        true
    }

    /// Hands the cursor back after driving ended with `r`; settles how the
    /// pass ended if it did. Schedules the background continuation (a
    /// reader) or says whether to go on (`worker`). Returns `r`, or `Err` to
    /// stop a worker.
    fn release(
        &self,
        c: Option<Cursor>,
        epoch: u64,
        r: Result<(), GzError>,
        worker: bool,
    ) -> Result<(), GzError> {
        let mut c = c;
        if let (Some(cur), Err(GzError::Truncated { .. })) = (c.as_mut(), &r) {
            cur.close_open_segment();
        }
        if let Some(cur) = c.as_mut() {
            self.publish(cur, epoch);
        }
        let finished = c.as_ref().is_some_and(Cursor::is_done) && r.is_ok();
        let failure = match &r {
            Err(GzError::Truncated { .. } | GzError::Corrupt { .. }) => Some(self.failure(&r)),
            _ => None,
        };
        let mut st = self.pass.lock();
        if st.epoch != epoch {
            return Err(GzError::BadIndex("the index was discarded".into()));
        }
        if let (Some(_), true) = (&failure, st.resumed) {
            // The cursor resumed at a loaded checkpoint: start over once
            // rather than condemn the file for what may be the index's fault.
            drop(st);
            self.discard(
                epoch,
                "the pass failed after resuming at a saved checkpoint",
            );
            return Err(GzError::BadIndex("retrying the pass from the start".into()));
        }
        st.driving = false;
        let outcome = match (finished, failure) {
            (true, _) => self.total().map(|total| Outcome::Complete { total }),
            (false, Some(Ok(f))) => Some(Outcome::Failed(f)),
            _ => None,
        };
        // Counted before the outcome is seen: whoever sees it and then
        // waits for the saves ([`super::pool::wait_for_saves`]) finds it written.
        let ticket = outcome.as_ref().map(|_| super::pool::SaveTicket::new());
        if outcome.is_some() {
            st.outcome = outcome.clone();
            st.scheduled = false;
        } else if r.is_ok() {
            st.cursor = c;
        }
        let go_on = outcome.is_none() && r.is_ok();
        let submit = go_on && !worker && !st.scheduled && self.me.strong_count() > 0;
        if submit {
            st.scheduled = true;
        }
        if worker && !go_on {
            st.scheduled = false;
        }
        drop(st);
        self.pass.changed.notify_all();
        if submit {
            super::pool::submit(self.me.clone());
        }
        if let Some(o) = &outcome {
            if let Some(f) = self.observer.get() {
                f(o);
            }
            // Saved now, not only at unmount: the pass may have taken long.
            // Whoever drove the pass to the end (a reader, above all) goes on
            // at once: packing the windows and syncing the file happen on
            // another thread (on this one for an access that is not shared).
            if let Some(t) = ticket {
                if self.me.strong_count() == 0 {
                    self.save_logged();
                } else {
                    t.save_later(self.me.clone());
                }
            }
        }
        match (worker, go_on) {
            (true, true) => Ok(()),
            (true, false) => Err(GzError::BadIndex("pass stopped".into())),
            (false, _) => r,
        }
    }

    /// Saves the index; a failure is one warning (the index is rebuilt next time).
    pub(super) fn save_logged(&self) {
        if let Err(e) = self.save() {
            log::warn!(
                "{}: cannot save its gzip index: {e} (it will be rebuilt next time; check --index-dir)",
                self.key.locator
            );
        }
    }

    fn total(&self) -> Option<u64> {
        lock(&self.inner).index.total
    }

    /// The limits after the pass stopped with `r` (Truncated or Corrupt).
    fn failure(&self, r: &Result<(), GzError>) -> Result<Failure, ()> {
        let g = lock(&self.inner);
        let verified = g.index.verified_to();
        let (kind, limit) = match r {
            Err(GzError::Truncated { available }) => (
                FailKind::Truncated {
                    available: *available,
                },
                *available,
            ),
            Err(GzError::Corrupt { at_compressed, msg }) => {
                let limit = if msg.starts_with(TRAILER_MISMATCH) {
                    verified
                } else {
                    safe_before(&g.index, *at_compressed, CORRUPTION_MARGIN)
                };
                let kind = FailKind::Corrupt {
                    at_compressed: *at_compressed,
                    msg: msg.clone(),
                };
                (kind, limit)
            }
            _ => return Err(()),
        };
        Ok(Failure {
            kind,
            limit,
            verified,
        })
    }
}
