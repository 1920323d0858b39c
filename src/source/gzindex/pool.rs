//! Background continuations of first passes: a few worker threads for the
//! whole process, each taking the next file from a queue and inflating it to
//! the end in chunks (the file's cursor can be taken over by a reader between
//! chunks). A file is queued at most once (`PassState::scheduled`); a worker
//! holds only a weak reference between chunks, so a file nobody uses any more
//! stops being inflated.
//!
//! Also the saves that a reader who finished a pass hands off
//! ([`SaveTicket::save_later`]), so that it is served before the windows are packed and
//! the file synced; [`wait_for_saves`] waits for them (at unmount).

use std::collections::VecDeque;
use std::sync::{Condvar, Mutex, OnceLock, Weak};

use super::{GzAccess, lock};

/// Passes continued in the background at once (more wait in the queue).
pub const MAX_BACKGROUND_PASSES: usize = 2;

#[derive(Default)]
struct Pool {
    queue: Mutex<(VecDeque<Weak<GzAccess>>, usize)>,
    ready: Condvar,
}

fn pool() -> &'static Pool {
    static POOL: OnceLock<Pool> = OnceLock::new();
    POOL.get_or_init(Pool::default)
}

/// Queues the continuation of `access`'s pass.
pub(super) fn submit(access: Weak<GzAccess>) {
    let p = pool();
    let mut q = lock(&p.queue);
    q.0.push_back(access);
    if q.1 < MAX_BACKGROUND_PASSES {
        let spawned = std::thread::Builder::new()
            .name("nifuse-gzpass".into())
            .spawn(worker);
        match spawned {
            Ok(_) => q.1 += 1,
            Err(e) => log::warn!("cannot start a background gzip pass thread: {e}"),
        }
    }
    drop(q);
    p.ready.notify_one();
}

fn worker() {
    let p = pool();
    loop {
        let job = {
            let mut q = lock(&p.queue);
            loop {
                if let Some(job) = q.0.pop_front() {
                    break job;
                }
                q = p.ready.wait(q).unwrap_or_else(|e| e.into_inner());
            }
        };
        while let Some(access) = job.upgrade() {
            if !access.continue_pass() {
                break;
            }
        }
    }
}

/// Saves handed off and not yet done.
fn pending() -> &'static (Mutex<usize>, Condvar) {
    static PENDING: OnceLock<(Mutex<usize>, Condvar)> = OnceLock::new();
    PENDING.get_or_init(|| (Mutex::new(0), Condvar::new()))
}

/// One save to come, counted by [`wait_for_saves`] from its creation until
/// it is dropped.
pub(super) struct SaveTicket(());

impl SaveTicket {
    pub(super) fn new() -> SaveTicket {
        *lock(&pending().0) += 1;
        SaveTicket(())
    }

    /// Saves `access`'s index on a thread of its own (on this one if none
    /// can start).
    pub(super) fn save_later(self, access: Weak<GzAccess>) {
        let here = access.clone();
        let spawned = std::thread::Builder::new()
            .name("nifuse-gzsave".into())
            .spawn(move || {
                if let Some(a) = access.upgrade() {
                    a.save_logged();
                    // Dropped before the ticket: a last reference dropped
                    // here saves (again, if it grew) on this thread.
                    drop(a);
                }
                drop(self);
            });
        if let Err(e) = spawned {
            log::debug!("no thread for a gzip index save ({e}); saving on this one");
            if let Some(a) = here.upgrade() {
                a.save_logged();
            }
        }
    }
}

impl Drop for SaveTicket {
    fn drop(&mut self) {
        let (n, changed) = pending();
        let mut g = lock(n);
        *g = g.saturating_sub(1);
        drop(g);
        changed.notify_all();
    }
}

/// Waits until every save counted so far has been written.
pub fn wait_for_saves() {
    let (n, changed) = pending();
    let mut g = lock(n);
    while *g > 0 {
        g = changed.wait(g).unwrap_or_else(|e| e.into_inner());
    }
}
