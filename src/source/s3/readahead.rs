//! Which bytes of an object to fetch for a read: the read itself, plus
//! read-ahead for sequential readers, or the whole range an opened volume
//! announced ([`ReadAhead::hint`]).
//!
//! A read that continues one of the last few reads (a stream) counts as
//! sequential. A read that continues no stream starts one, fetching
//! [`INITIAL`] bytes from the start of the object (a header read: one GET
//! of the first 64 KiB) or [`INITIAL_INSIDE`] elsewhere (a compressed volume
//! read from its checkpoint, which goes on for hundreds of KiB); that is
//! also the stream's first window. When a sequential read goes past what the
//! stream asked for, the fetch covers the read and one window beyond it,
//! and the window doubles (up to a maximum). The reader waits only for the
//! blocks it reads; the window's arrive meanwhile. A read inside a hinted
//! range fetches that range (in pieces of [`HINT_MAX`]), whatever part of it
//! is read first, and never reads ahead past it.
//!
//! Fetching only when a read goes past what was asked keeps the bytes of a
//! compressed volume read from its checkpoint near what it needs (1.5 times
//! for the 780 KB volumes of the benchmark, read 64 KiB at a time, in 3
//! requests), where doubling windows ahead of time fetch more in as many.

use std::collections::VecDeque;
use std::ops::Range;

/// The first fetch of a new stream at the start of an object, and its first window.
pub const INITIAL: u64 = 64 << 10;
/// The same for a new stream further in.
pub const INITIAL_INSIDE: u64 = 256 << 10;
/// A hinted range is fetched at most this much at a time.
pub const HINT_MAX: u64 = 64 << 20;
/// Streams followed per object.
const STREAMS: usize = 4;
/// Hints remembered per object.
const HINTS: usize = 8;

#[derive(Clone, Debug)]
struct Stream {
    /// Where the last read of the stream started.
    start: u64,
    /// Where it ended: the next sequential read starts here (or before).
    next: u64,
    /// The end of what the stream asked for so far.
    asked: u64,
    window: u64,
    last_used: u64,
}

/// The read-ahead state of one object.
#[derive(Debug)]
pub struct ReadAhead {
    max_window: u64,
    streams: Vec<Stream>,
    hints: VecDeque<Range<u64>>,
    tick: u64,
}

impl ReadAhead {
    /// Read-ahead windows up to `max_window` bytes.
    pub fn new(max_window: u64) -> ReadAhead {
        ReadAhead {
            max_window: max_window.max(INITIAL),
            streams: Vec::new(),
            hints: VecDeque::new(),
            tick: 0,
        }
    }

    /// Bytes `range` are about to be read (an opened volume).
    pub fn hint(&mut self, range: Range<u64>) {
        if range.is_empty() || self.hints.contains(&range) {
            return;
        }
        if self.hints.len() == HINTS {
            self.hints.pop_front();
        }
        self.hints.push_back(range);
    }

    /// The bytes to have fetched for a read of `offset..end` of an object of
    /// `size` bytes: a range that contains the read, within the object.
    pub fn plan(&mut self, offset: u64, end: u64, size: u64) -> Range<u64> {
        self.tick += 1;
        let clip = |r: Range<u64>| r.start.min(size)..r.end.min(size);
        if let Some(h) = self.hints.iter().find(|h| h.contains(&offset)) {
            // The piece of the hint that holds `offset`: whichever of its
            // reads comes first (the kernel sends them in any order) fetches
            // all of it.
            let from = h.start + (offset - h.start) / HINT_MAX * HINT_MAX;
            let stop = h.end.min(from.saturating_add(HINT_MAX)).max(end);
            return clip(from..stop);
        }
        let tick = self.tick;
        if let Some(s) = self
            .streams
            .iter_mut()
            .find(|s| s.start <= offset && offset <= s.next)
        {
            s.start = offset;
            s.next = s.next.max(end);
            s.last_used = tick;
            if end > s.asked {
                s.asked = end.saturating_add(s.window);
                s.window = (s.window * 2).min(self.max_window);
                return clip(offset..s.asked);
            }
            return clip(offset..end);
        }
        let first = if offset == 0 { INITIAL } else { INITIAL_INSIDE };
        let asked = end.max(offset.saturating_add(first));
        let fresh = Stream {
            start: offset,
            next: end,
            asked,
            window: first,
            last_used: tick,
        };
        if self.streams.len() < STREAMS {
            self.streams.push(fresh);
        } else if let Some(oldest) = self.streams.iter_mut().min_by_key(|s| s.last_used) {
            *oldest = fresh;
        }
        clip(offset..asked)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const K: u64 = 1024;

    #[test]
    fn a_first_read_fetches_64_kib_and_sequential_reads_double_the_window() {
        let mut ra = ReadAhead::new(16 << 20);
        assert_eq!(ra.plan(0, 2, 1 << 30), 0..64 * K);
        let mut asked = 64 * K;
        let mut fetches = vec![];
        for i in 0..64u64 {
            let r = ra.plan(i * 64 * K, (i + 1) * 64 * K, 1 << 30);
            assert!(r.start <= i * 64 * K && r.end >= (i + 1) * 64 * K);
            if r.end > asked {
                fetches.push(r.end - asked);
                asked = r.end;
            }
        }
        // Growing windows: few requests for 4 MiB, and little read past it.
        assert!(fetches.windows(2).all(|w| w[1] >= w[0]), "{fetches:?}");
        assert!(fetches.len() <= 7, "{fetches:?}");
        assert!(
            asked < 6 << 20,
            "read-ahead stays within a few windows: {asked}"
        );
    }

    #[test]
    fn windows_stop_at_the_maximum_and_the_object_end() {
        let mut ra = ReadAhead::new(256 * K);
        let (mut asked, mut biggest) = (0, 0);
        for i in 0..100u64 {
            let r = ra.plan(i * 64 * K, (i + 1) * 64 * K, 5 << 20);
            assert!(r.end <= 5 << 20);
            biggest = biggest.max(r.end.saturating_sub(asked));
            asked = asked.max(r.end);
        }
        assert_eq!(asked, 5 << 20);
        assert!(
            biggest <= 64 * K + 256 * K,
            "new bytes per fetch: the read and at most a window: {biggest}"
        );
    }

    #[test]
    fn a_hint_is_fetched_whole_and_never_read_past() {
        let mut ra = ReadAhead::new(16 << 20);
        ra.hint(1000..1000 + 1_179_648);
        // Whichever read comes first fetches the whole range.
        let mut other = ReadAhead::new(16 << 20);
        other.hint(1000..1000 + 1_179_648);
        assert_eq!(other.plan(263_144, 525_288, 1 << 30), 1000..1_180_648);
        assert_eq!(ra.plan(1000, 1000 + 262_144, 1 << 30), 1000..1_180_648);
        for off in (1000 + 262_144..1_180_648).step_by(262_144) {
            let r = ra.plan(off, (off + 262_144).min(1_180_648), 1 << 30);
            assert!(r.end <= 1_180_648, "{r:?}");
        }
        // Outside the hint: a new stream.
        assert_eq!(
            ra.plan(5_000_000, 5_000_010, 1 << 30),
            5_000_000..5_000_000 + INITIAL_INSIDE
        );
        // A huge hint is fetched in bounded pieces.
        ra.hint(0..1 << 30);
        assert_eq!(ra.plan(0, 10, 1 << 40), 0..HINT_MAX);
        assert_eq!(
            ra.plan(HINT_MAX + 5, HINT_MAX + 9, 1 << 40),
            HINT_MAX..2 * HINT_MAX
        );
    }

    #[test]
    fn interleaved_streams_keep_their_own_windows() {
        let mut ra = ReadAhead::new(16 << 20);
        let a0 = ra.plan(0, 64 * K, 1 << 30);
        let b0 = ra.plan(100 << 20, (100 << 20) + 64 * K, 1 << 30);
        let a1 = ra.plan(64 * K, 128 * K, 1 << 30);
        let b1 = ra.plan((100 << 20) + 64 * K, (100 << 20) + 128 * K, 1 << 30);
        assert_eq!((a0.end, a1.end), (64 * K, 192 * K));
        // b started inside the object: its first fetch covers both reads.
        assert_eq!(
            (b0.end - (100 << 20), b1.end - (100 << 20)),
            (INITIAL_INSIDE, 128 * K)
        );
    }

    #[test]
    fn a_compressed_volume_read_from_its_checkpoint_takes_few_requests() {
        // 64 KiB reads from a checkpoint to 850 KiB past it (a 780 KB
        // compressed volume and the deflate block before it).
        let mut ra = ReadAhead::new(16 << 20);
        let c = 10 << 20;
        let (mut asked, mut requests) = (c, 0);
        for off in (c..c + 850 * K).step_by(64 * K as usize) {
            let r = ra.plan(off, off + 64 * K, 1 << 30);
            if r.end > asked {
                requests += 1;
                asked = r.end;
            }
        }
        assert_eq!(requests, 3);
        assert!(
            asked - c <= 850 * K * 3 / 2,
            "{} KiB fetched",
            (asked - c) / K
        );
    }
}
