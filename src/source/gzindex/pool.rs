//! Background continuations of first passes: a few worker threads for the
//! whole process, each taking the next file from a queue and inflating it to
//! the end in chunks (the file's cursor can be taken over by a reader between
//! chunks). A file is queued at most once (`PassState::scheduled`); a worker
//! holds only a weak reference between chunks, so a file nobody uses any more
//! stops being inflated.

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
