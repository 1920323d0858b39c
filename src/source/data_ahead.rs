//! Read-ahead for sequential readers of a compressed file whose first pass
//! is complete: when a read continues the previous one (the next volume
//! file, the next request of a whole-image read), the following spans are
//! decoded from their own checkpoints on helper threads, up to
//! [`IN_FLIGHT`] of them at once, so a sequential reader is served by all
//! cores. Every span is read through [`GzAccess::read`], so its segments are
//! checked like any read; a span that fails is dropped and the reader decodes
//! (and fails) on its own. Reads of a cache fill ([`MAX_READ`] and larger)
//! are left alone: the fill spreads itself over the cores.

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, Weak};

use crate::source::gzindex::{GzAccess, Outcome, Verify};

/// Spans decoded ahead at once.
const IN_FLIGHT: usize = 2;
/// Reads at least this large do not trigger read-ahead.
pub const MAX_READ: usize = 4 << 20;
/// One span is the shortest whole multiple of the read that continued the
/// previous one reaching this length, capped at [`SPAN_MAX`].
const SPAN_MIN: u64 = 1 << 20;
const SPAN_MAX: u64 = 8 << 20;
/// Bytes held by the spans of all files together.
pub const BUDGET: u64 = 16 << 20;

/// Every span in memory, oldest first: (its file's read-ahead, span id, length).
type Held = (VecDeque<(Weak<Shared>, u64, u64)>, u64);

/// Names every span: several readers of one file can plan spans with the same
/// start, and each helper must complete its own.
static NEXT_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

fn held() -> &'static Mutex<Held> {
    static HELD: Mutex<Held> = Mutex::new((VecDeque::new(), 0));
    &HELD
}

/// Makes room for `len` more bytes of spans: forgets the oldest spans of any
/// file until the budget allows it. False if it cannot (a larger span).
fn reserve(owner: &Arc<Shared>, id: u64, len: u64) -> bool {
    if len > BUDGET {
        return false;
    }
    let mut evict = Vec::new();
    {
        let mut h = held().lock().unwrap_or_else(|p| p.into_inner());
        while h.1 + len > BUDGET {
            let Some((w, s, l)) = h.0.pop_front() else {
                break;
            };
            h.1 = h.1.saturating_sub(l);
            evict.push((w, s));
        }
        h.0.push_back((Arc::downgrade(owner), id, len));
        h.1 += len;
    }
    // Outside the budget's lock: each file's own lock.
    for (w, s) in evict {
        if let Some(shared) = w.upgrade() {
            shared
                .lock()
                .spans
                .retain(|x| x.id != s || x.data.is_none());
        }
    }
    true
}

/// The span `id` of `owner` left memory.
fn release(owner: &Shared, id: u64) {
    let mut h = held().lock().unwrap_or_else(|p| p.into_inner());
    if let Some(i) =
        h.0.iter()
            .position(|(w, s, _)| *s == id && std::ptr::eq(w.as_ptr(), owner))
        && let Some((_, _, l)) = h.0.remove(i)
    {
        h.1 = h.1.saturating_sub(l);
    }
}

/// One span: decoded bytes `start..start+len`, or None while in flight.
struct Span {
    id: u64,
    start: u64,
    len: u64,
    data: Option<Option<Vec<u8>>>,
}

#[derive(Default)]
struct State {
    /// Where the previous read ended.
    last_end: u64,
    spans: VecDeque<Span>,
}

#[derive(Default)]
struct Shared {
    state: Mutex<State>,
    done: Condvar,
    /// Reads served from spans (for tests and statistics).
    served: std::sync::atomic::AtomicU64,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A helper thread finished the span `id` (None: it failed).
    fn finish(&self, id: u64, data: Option<Vec<u8>>) {
        if let Some(s) = self.lock().spans.iter_mut().find(|s| s.id == id) {
            s.data = Some(data);
        }
        self.done.notify_all();
    }
}

/// Finishes span `.1` of `.0` with `.2` when dropped.
struct Finish(Arc<Shared>, u64, Option<Vec<u8>>);

impl Drop for Finish {
    fn drop(&mut self) {
        self.0.finish(self.1, self.2.take());
    }
}

/// The read-ahead of one compressed data file.
#[derive(Default)]
pub struct Ahead {
    shared: Arc<Shared>,
}

impl Ahead {
    /// How many reads were served from spans decoded ahead.
    #[cfg(test)]
    pub fn served(&self) -> u64 {
        self.shared
            .served
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Copies decoded bytes `offset..offset+buf.len()` from a span decoded
    /// ahead (waiting for it if it is being decoded). False if no span holds
    /// them all, or the span failed.
    pub fn take(&self, offset: u64, buf: &mut [u8]) -> bool {
        let end = offset.saturating_add(buf.len() as u64);
        let mut st = self.shared.lock();
        loop {
            let Some(i) = st
                .spans
                .iter()
                .position(|s| s.start <= offset && end <= s.start + s.len)
            else {
                return false;
            };
            match &st.spans[i].data {
                None => st = self.shared.done.wait(st).unwrap_or_else(|p| p.into_inner()),
                Some(None) => {
                    if let Some(sp) = st.spans.remove(i) {
                        release(&self.shared, sp.id);
                    }
                    return false;
                }
                Some(Some(data)) => {
                    let from = (offset - st.spans[i].start) as usize;
                    buf.copy_from_slice(&data[from..from + buf.len()]);
                    let served = &self.shared.served;
                    served.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    // Spans that end with this read are consumed.
                    let shared = &self.shared;
                    st.spans.retain(|s| {
                        let keep = s.start + s.len > end || s.data.is_none();
                        if !keep {
                            release(shared, s.id);
                        }
                        keep
                    });
                    return true;
                }
            }
        }
    }

    /// After a read of `offset..end` (served or decoded): if it continued the
    /// previous read, decode the next spans in the background; otherwise
    /// forget what was decoded ahead.
    pub fn after_read(&self, access: &Arc<GzAccess>, verify: Verify, offset: u64, end: u64) {
        let Some(Outcome::Complete { total }) = access.pass_report().outcome else {
            return;
        };
        // Decide under this file's lock; make room in the budget without it
        // (that may lock other files); then start the spans.
        let plan: Vec<(u64, u64)> = {
            let mut st = self.shared.lock();
            let sequential = offset == st.last_end && offset > 0;
            st.last_end = end;
            if !sequential {
                let shared = &self.shared;
                st.spans.retain(|s| {
                    if s.data.is_some() {
                        release(shared, s.id);
                    }
                    s.data.is_none()
                });
                return;
            }
            // Whole multiples of the read, so spans line up with the reads.
            let read = end - offset;
            let len = (read * SPAN_MIN.div_ceil(read)).min(SPAN_MAX.max(read));
            let mut next = st.spans.back().map_or(end, |s| s.start + s.len).max(end);
            let mut plan = Vec::new();
            for _ in st.spans.len()..IN_FLIGHT {
                let len = len.min(total.saturating_sub(next));
                if len == 0 {
                    break;
                }
                plan.push((next, len));
                next += len;
            }
            plan
        };
        for (start, len) in plan {
            let id = NEXT_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            if !reserve(&self.shared, id, len) {
                break;
            }
            self.shared.lock().spans.push_back(Span {
                id,
                start,
                len,
                data: None,
            });
            let (shared, access) = (self.shared.clone(), access.clone());
            let spawned = std::thread::Builder::new()
                .name("nifuse-gzahead".into())
                .spawn(move || {
                    // Completes the span also if the read panics: a reader
                    // waiting for it must never wait for ever.
                    let mut done = Finish(shared, id, None);
                    let mut buf = vec![0u8; len as usize];
                    if access.read(start, &mut buf, verify).is_ok() {
                        done.2 = Some(buf);
                    }
                });
            if spawned.is_err() {
                self.shared.lock().spans.retain(|s| s.id != id);
                release(&self.shared, id);
                break;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::sync::Arc;

    use crate::source::local::LocalStore;
    use crate::source::{DataFile, Store};

    const VOL: usize = 300_000;
    const N: usize = 12;

    fn data_file(dir: &std::path::Path) -> (DataFile, Vec<u8>) {
        let data: Vec<u8> = (0..VOL * N)
            .map(|i| ((i * 7) % 251) as u8 ^ (i >> 11) as u8)
            .collect();
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(6));
        e.write_all(&data).unwrap();
        std::fs::write(dir.join("img.nii.gz"), e.finish().unwrap()).unwrap();
        let store: Arc<dyn Store> = Arc::new(LocalStore::new(dir).unwrap());
        let rel = std::path::Path::new("img.nii.gz");
        let version = store.stat(rel).unwrap().version;
        let starts = (0..N as u64).map(|k| k * VOL as u64).collect();
        (DataFile::new(store, rel, version, true, starts, None), data)
    }

    fn ahead(f: &DataFile) -> u64 {
        f.gz.as_ref().unwrap().ahead.served()
    }

    #[test]
    fn a_sequential_reader_is_served_from_spans_decoded_ahead() {
        let d = tempfile::tempdir().unwrap();
        let (f, data) = data_file(d.path());
        f.build_index(&mut |_, _| {}).unwrap();
        let mut buf = vec![0u8; VOL];
        for k in 0..N {
            f.read_exact_at((k * VOL) as u64, &mut buf).unwrap();
            assert_eq!(buf, &data[k * VOL..(k + 1) * VOL], "volume {k}");
        }
        assert!(ahead(&f) >= (N - 3) as u64, "served ahead: {}", ahead(&f));
        // Out of order: nothing is decoded ahead, every read is right.
        let before = ahead(&f);
        for k in [7, 2, 9, 4] {
            f.read_exact_at((k * VOL) as u64, &mut buf).unwrap();
            assert_eq!(buf, &data[k * VOL..(k + 1) * VOL], "volume {k}");
        }
        assert_eq!(ahead(&f), before);
    }

    #[test]
    fn spans_with_equal_starts_are_each_completed_by_their_own_helper() {
        // Two readers that plan at once (views of one image read together)
        // can put two spans with one start in flight. Completions matched by
        // start reached the first span twice and left the other in flight
        // for ever, with a reader waiting on it (seen in the S3 test).
        use super::{Ahead, Span};
        let a = Ahead::default();
        for id in [1, 2] {
            let data = None;
            a.shared.lock().spans.push_back(Span {
                id,
                start: 100,
                len: 10,
                data,
            });
        }
        a.shared.finish(2, Some(vec![7; 10]));
        a.shared.finish(1, None);
        let st = a.shared.lock();
        let got: Vec<_> = st.spans.iter().map(|s| (s.id, s.data.clone())).collect();
        assert_eq!(got, vec![(1, Some(None)), (2, Some(Some(vec![7; 10])))]);
    }

    #[test]
    fn no_read_ahead_before_the_first_pass_is_complete() {
        let d = tempfile::tempdir().unwrap();
        let (f, data) = data_file(d.path());
        let mut buf = vec![0u8; VOL];
        for k in 0..3 {
            f.read_exact_at((k * VOL) as u64, &mut buf).unwrap();
            assert_eq!(buf, &data[k * VOL..(k + 1) * VOL], "volume {k}");
        }
        assert_eq!(ahead(&f), 0);
    }
}
