//! Fetched bytes of objects in blocks of [`BLOCK`] bytes, kept in memory
//! within a byte budget (least recently used out first), and the fetches in
//! flight, so that readers of the same bytes wait for one request instead
//! of each making their own.
//!
//! A reader [`Blocks::claim`]s the blocks it needs and those it reads ahead:
//! blocks present are handed over, blocks in flight are waited for, and
//! missing ones become the reader's to fetch (their [`Flight`]s are
//! registered at once). A flight carries its block to every waiter, so a
//! block evicted right after it arrived still serves the readers that
//! waited for it. A block whose fetch failed fails again at once for
//! [`FAILURE_KEPT`], so that the kernel's retry of a failed read (and its
//! read-ahead) does not wait through the store's retries a second time.

use std::collections::HashMap;
use std::ops::Range;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use lru::LruCache;

/// Bytes per block: reads are rounded out to block boundaries.
pub const BLOCK: u64 = 64 << 10;

/// How long a failed block fails again without a new request.
pub const FAILURE_KEPT: Duration = Duration::from_secs(2);

/// Failed blocks remembered at most (older ones are forgotten first).
const FAILURES: usize = 1 << 16;

/// A block: (object id, block number).
type Key = (u64, u64);

#[derive(Clone)]
enum State {
    Pending,
    Done(Arc<[u8]>),
    Failed(Arc<str>),
}

/// One block on its way.
pub struct Flight {
    state: Mutex<State>,
    arrived: Condvar,
}

impl Flight {
    fn new() -> Arc<Flight> {
        Arc::new(Flight {
            state: Mutex::new(State::Pending),
            arrived: Condvar::new(),
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The block, once it arrived; its fetch's failure, or a timeout at `deadline`.
    pub fn wait(&self, deadline: Instant) -> Result<Arc<[u8]>, Arc<str>> {
        let mut state = self.lock();
        loop {
            match &*state {
                State::Done(b) => return Ok(b.clone()),
                State::Failed(why) => return Err(why.clone()),
                State::Pending => {}
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err("the store did not deliver in time".into());
            }
            state = self
                .arrived
                .wait_timeout(state, left)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }

    fn finish(&self, to: State) {
        let mut state = self.lock();
        if matches!(*state, State::Pending) {
            *state = to;
            self.arrived.notify_all();
        }
    }
}

/// A block a reader needs: here already, or on its way.
pub enum Have {
    /// In memory.
    Ready(Arc<[u8]>),
    /// Being fetched.
    Wait(Arc<Flight>),
    /// Its fetch failed a moment ago, for this reason.
    Failed(Arc<str>),
}

/// Consecutive missing blocks a reader claimed and must fetch.
pub struct Run {
    /// The first block's number.
    pub first: u64,
    /// One flight per block, in order.
    pub flights: Vec<Arc<Flight>>,
}

struct Inner {
    lru: LruCache<Key, Arc<[u8]>>,
    bytes: u64,
    loading: HashMap<Key, Arc<Flight>>,
    failed: HashMap<Key, (Instant, Arc<str>)>,
}

/// All fetched blocks of one store.
pub struct Blocks {
    budget: u64,
    failure_kept: Duration,
    inner: Mutex<Inner>,
}

impl Blocks {
    /// Blocks kept within `budget` bytes; failures kept for [`FAILURE_KEPT`].
    pub fn new(budget: u64) -> Blocks {
        Blocks::with_failure_kept(budget, FAILURE_KEPT)
    }

    /// Blocks kept within `budget` bytes; failures kept for `failure_kept`.
    pub fn with_failure_kept(budget: u64, failure_kept: Duration) -> Blocks {
        Blocks {
            budget,
            failure_kept,
            inner: Mutex::new(Inner {
                lru: LruCache::unbounded(),
                bytes: 0,
                loading: HashMap::new(),
                failed: HashMap::new(),
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// For object `id`: the blocks of `need` (in order), and the runs of
    /// missing blocks of `need` and `want` (a range around it) that the
    /// caller now has to fetch.
    pub fn claim(&self, id: u64, need: Range<u64>, want: Range<u64>) -> (Vec<Have>, Vec<Run>) {
        let mut inner = self.lock();
        let mut have = Vec::new();
        let mut runs: Vec<Run> = Vec::new();
        let all = want.start.min(need.start)..want.end.max(need.end);
        for b in all {
            let needed = need.contains(&b);
            if let Some(block) = inner.lru.get(&(id, b)) {
                if needed {
                    have.push(Have::Ready(block.clone()));
                }
                continue;
            }
            if let Some(f) = inner.loading.get(&(id, b)) {
                if needed {
                    have.push(Have::Wait(f.clone()));
                }
                continue;
            }
            if let Some((at, why)) = inner.failed.get(&(id, b)) {
                if at.elapsed() < self.failure_kept {
                    if needed {
                        have.push(Have::Failed(why.clone()));
                    }
                    continue;
                }
                inner.failed.remove(&(id, b));
            }
            let f = Flight::new();
            inner.loading.insert((id, b), f.clone());
            if needed {
                have.push(Have::Wait(f.clone()));
            }
            match runs.last_mut() {
                Some(run) if run.first + run.flights.len() as u64 == b => run.flights.push(f),
                _ => runs.push(Run {
                    first: b,
                    flights: vec![f],
                }),
            }
        }
        (have, runs)
    }

    /// Block `b` of object `id` arrived: kept (evicting the least recently
    /// used beyond the budget) and handed to its waiters.
    pub fn arrived(&self, id: u64, b: u64, flight: &Flight, bytes: Arc<[u8]>) {
        let mut inner = self.lock();
        inner.loading.remove(&(id, b));
        inner.failed.remove(&(id, b));
        let len = bytes.len() as u64;
        if len <= self.budget {
            if let Some(old) = inner.lru.put((id, b), bytes.clone()) {
                inner.bytes -= old.len() as u64;
            }
            inner.bytes += len;
            while inner.bytes > self.budget {
                let Some((_, old)) = inner.lru.pop_lru() else {
                    break;
                };
                inner.bytes -= old.len() as u64;
            }
        }
        drop(inner);
        flight.finish(State::Done(bytes));
    }

    /// Block `b` of object `id` could not be fetched: its waiters get `why`,
    /// and so do readers for a while; after that, a reader fetches it again.
    pub fn failed(&self, id: u64, b: u64, flight: &Flight, why: Arc<str>) {
        let mut inner = self.lock();
        inner.loading.remove(&(id, b));
        if inner.failed.len() >= FAILURES {
            let kept = self.failure_kept;
            inner.failed.retain(|_, (at, _)| at.elapsed() < kept);
            if inner.failed.len() >= FAILURES {
                inner.failed.clear();
            }
        }
        inner.failed.insert((id, b), (Instant::now(), why.clone()));
        drop(inner);
        flight.finish(State::Failed(why));
    }

    /// Bytes kept now.
    pub fn used(&self) -> u64 {
        self.lock().bytes
    }

    /// The budget.
    pub fn budget(&self) -> u64 {
        self.budget
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn soon() -> Instant {
        Instant::now() + Duration::from_secs(5)
    }

    #[test]
    fn missing_blocks_are_claimed_once_and_shared_with_later_readers() {
        let blocks = Blocks::new(1 << 20);
        let (have, runs) = blocks.claim(1, 2..4, 2..6);
        assert_eq!(have.len(), 2);
        assert_eq!(runs.len(), 1);
        assert_eq!((runs[0].first, runs[0].flights.len()), (2, 4));
        // A second reader of block 3 claims nothing and waits for the flight.
        let (have2, runs2) = blocks.claim(1, 3..4, 3..4);
        assert!(runs2.is_empty());
        let Have::Wait(f) = &have2[0] else {
            panic!("block 3 should be in flight")
        };
        let data: Arc<[u8]> = vec![7u8; 10].into();
        blocks.arrived(1, 3, &runs[0].flights[1], data.clone());
        assert_eq!(&*f.wait(soon()).unwrap(), &*data);
        // Now it is present; other objects do not see it.
        let (have3, runs3) = blocks.claim(1, 3..4, 3..4);
        assert!(runs3.is_empty() && matches!(have3[0], Have::Ready(_)));
        let (_, runs4) = blocks.claim(2, 3..4, 3..4);
        assert_eq!(runs4.len(), 1);
    }

    #[test]
    fn runs_split_at_present_blocks_and_failures_free_the_claim() {
        let blocks = Blocks::with_failure_kept(1 << 20, Duration::from_millis(50));
        let (_, runs) = blocks.claim(1, 1..2, 1..2);
        blocks.arrived(1, 1, &runs[0].flights[0], vec![1u8].into());
        let (_, runs) = blocks.claim(1, 0..3, 0..3);
        let firsts: Vec<_> = runs.iter().map(|r| (r.first, r.flights.len())).collect();
        assert_eq!(firsts, [(0, 1), (2, 1)]);
        blocks.failed(1, 0, &runs[0].flights[0], "HTTP 503".into());
        assert_eq!(&*runs[0].flights[0].wait(soon()).unwrap_err(), "HTTP 503");
        // For a moment, readers of the block fail at once without a request.
        let start = Instant::now();
        loop {
            let (have, again) = blocks.claim(1, 0..1, 0..1);
            if let Some(Have::Failed(why)) = have.first() {
                assert!(again.is_empty() && &**why == "HTTP 503");
                assert!(
                    start.elapsed() < Duration::from_secs(5),
                    "the failure is never forgotten"
                );
                std::thread::sleep(Duration::from_millis(5));
                continue;
            }
            assert_eq!(again.len(), 1, "then a failed block is fetched again");
            break;
        }
    }

    #[test]
    fn the_budget_evicts_least_recently_used_blocks() {
        let blocks = Blocks::new(20);
        for b in 0..3 {
            let (_, runs) = blocks.claim(1, b..b + 1, b..b + 1);
            blocks.arrived(1, b, &runs[0].flights[0], vec![0u8; 10].into());
        }
        assert_eq!(blocks.used(), 20);
        let (have, runs) = blocks.claim(1, 0..3, 0..3);
        assert_eq!(runs.len(), 1, "block 0 was evicted");
        assert!(matches!(have[1], Have::Ready(_)) && matches!(have[2], Have::Ready(_)));
        let waited = Flight::new();
        assert!(
            waited.wait(Instant::now()).is_err(),
            "a wait ends at its deadline"
        );
    }
}
