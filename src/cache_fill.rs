//! The fill of one image cache: the thread body that reads the array into
//! its chunks (front to back; for a compressed image, after the first gzip
//! pass, in contiguous runs on one thread per core), and the semaphore that
//! bounds how many fills run at once.

use std::sync::atomic::Ordering;
use std::sync::{Condvar, Mutex};

use memmap2::MmapMut;

use super::{CHUNK, ImageCache, MAX_FILLS};
use crate::error::Error;

/// Niceness of fill threads: a fill is work ahead of need, so the threads
/// serving requests (which decode what a reader waits for) come first.
const FILL_NICE: libc::c_int = 10;

/// Lowers the scheduling priority of the calling thread to [`FILL_NICE`]
/// (Linux: the nice value is per thread). Best effort: a failure only means
/// the fill competes with readers as an equal.
fn lower_priority() {
    // SAFETY: gettid has no preconditions; setpriority on the calling
    // thread's own id only changes its niceness (raising it needs no privilege).
    unsafe {
        let tid = libc::syscall(libc::SYS_gettid) as libc::id_t;
        libc::setpriority(libc::PRIO_PROCESS, tid, FILL_NICE);
    }
}

impl ImageCache {
    /// Threads to fill with: one per core for a compressed image with a
    /// complete index (independent checkpoint spans), else one.
    fn fill_threads(&self) -> usize {
        use crate::source::gzindex::IndexState;
        let indexed = self
            .image
            .data
            .gzip()
            .is_some_and(|gz| matches!(gz.state(), IndexState::Complete { .. }));
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        if indexed {
            cores.min(self.chunks.len()).max(1)
        } else {
            1
        }
    }

    /// Reads the array into the chunks (the fill thread's body): front to
    /// back, or in contiguous runs on several threads.
    pub(super) fn fill(&self) {
        if let Some(gz) = self.image.data.gzip() {
            // Decoding the array alongside the first pass would inflate every
            // byte twice on cores the readers need: take part in the pass
            // (or wait for it) first, then fill from the complete index. A
            // failed pass is the readers' business (they get EIO); the fill
            // then keeps what reads without error.
            let _ = gz.build_all(&mut |_, _| {});
        }
        let n = self.chunks.len();
        let threads = self.fill_threads();
        if threads <= 1 {
            self.fill_range(0..n);
        } else {
            let per = n.div_ceil(threads);
            std::thread::scope(|s| {
                for t in 1..threads {
                    let range = (t * per).min(n)..((t + 1) * per).min(n);
                    let r = range.clone();
                    let spawned = std::thread::Builder::new()
                        .name("nifuse-fill".into())
                        .spawn_scoped(s, move || self.fill_range(r));
                    if spawned.is_err() {
                        self.fill_range(range);
                    }
                }
                self.fill_range(0..per.min(n));
            });
        }
        self.lock().stopped = true;
        self.changed.notify_all();
    }

    /// Fills chunks `range` in order; stops at the first failure.
    fn fill_range(&self, range: std::ops::Range<usize>) {
        lower_priority();
        let data_offset = self.image.layout.data_offset();
        for (i, slot) in self
            .chunks
            .iter()
            .enumerate()
            .skip(range.start)
            .take(range.len())
        {
            if self.cancel.load(Ordering::Relaxed) {
                break;
            }
            let start = i as u64 * CHUNK;
            let len = (self.len - start).min(CHUNK) as usize;
            let result = MmapMut::map_anon(len)
                .map_err(|e| Error::io("allocating cache memory", e))
                .and_then(|mut map| {
                    self.image
                        .data
                        .read_exact_at(data_offset + start, &mut map[..])?;
                    Ok(map)
                });
            match result {
                Ok(map) => {
                    let _ = slot.set(map);
                    let mut p = self.lock();
                    p.filled += 1;
                    while self.chunks.get(p.done).is_some_and(|c| c.get().is_some()) {
                        p.done += 1;
                    }
                    drop(p);
                    self.changed.notify_all();
                }
                Err(e) => {
                    log::info!(
                        "{}: cache fill stopped at byte {start}: {e}",
                        self.image.name
                    );
                    break;
                }
            }
        }
    }
}

/// A counting semaphore of [`MAX_FILLS`] slots for fill threads.
#[derive(Default)]
pub(super) struct FillSlots {
    running: Mutex<usize>,
    freed: Condvar,
}

/// One held fill slot; released on drop.
pub(super) struct FillSlot<'a>(&'a FillSlots);

impl FillSlots {
    pub(super) fn acquire(&self) -> FillSlot<'_> {
        let mut running = self.running.lock().unwrap_or_else(|p| p.into_inner());
        while *running >= MAX_FILLS {
            running = self.freed.wait(running).unwrap_or_else(|p| p.into_inner());
        }
        *running += 1;
        FillSlot(self)
    }
}

impl Drop for FillSlot<'_> {
    fn drop(&mut self) {
        let mut running = self.0.running.lock().unwrap_or_else(|p| p.into_inner());
        *running = running.saturating_sub(1);
        self.0.freed.notify_one();
    }
}
