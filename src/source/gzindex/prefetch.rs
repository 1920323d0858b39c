//! Read-ahead of compressed input for the first pass: a helper thread reads
//! the next input buffer from the source (a copy out of the page cache, or a
//! request to an object store) while the pass inflates the current one, so
//! the pass's own thread only inflates. One helper per build cursor; it ends
//! when the cursor is dropped (its request channel closes).

use std::sync::Arc;
use std::sync::mpsc::{Receiver, Sender, TryRecvError, channel};

use super::GzError;
use super::reader::{Ctx, Cursor, Role, read_full_at};
use crate::source::ByteSource;

type Filled = (u64, Vec<u8>, Result<usize, GzError>);
/// A finished read: its buffer and how many bytes it got.
type Read = (Vec<u8>, Result<usize, GzError>);

/// The helper thread of one cursor and the buffer it is filling.
pub struct Prefetch {
    ask: Sender<(u64, Vec<u8>)>,
    got: Receiver<Filled>,
    /// The offset of the read in flight, if any.
    pending: Option<u64>,
}

impl Prefetch {
    /// Starts the helper thread over `file`; None if no thread can be started
    /// (the cursor then reads inline).
    pub fn start(file: Arc<dyn ByteSource>) -> Option<Prefetch> {
        let (ask, asks) = channel::<(u64, Vec<u8>)>();
        let (done, got) = channel::<Filled>();
        std::thread::Builder::new()
            .name("nifuse-gzread".into())
            .spawn(move || {
                for (off, mut buf) in asks {
                    let r = read_full_at(file.as_ref(), off, &mut buf);
                    if done.send((off, buf, r)).is_err() {
                        break;
                    }
                }
            })
            .ok()?;
        Some(Prefetch {
            ask,
            got,
            pending: None,
        })
    }

    /// Asks for the `buf.len()` bytes at `off` to be read in the background.
    /// Returns the buffer if the helper is gone.
    pub fn request(&mut self, off: u64, buf: Vec<u8>) -> Result<(), Vec<u8>> {
        if self.pending.is_some() {
            return Err(buf);
        }
        match self.ask.send((off, buf)) {
            Ok(()) => {
                self.pending = Some(off);
                Ok(())
            }
            Err(e) => Err(e.0.1),
        }
    }

    /// The read at `off` if it is done; a finished read of other bytes is
    /// returned as `Err` (its buffer, for reuse). None while the read is
    /// still in flight: the caller reads for itself rather than wait for a
    /// helper that another process may be keeping off the cores (its result
    /// then comes back as stale next time).
    pub fn take(&mut self, off: u64) -> Option<Result<Read, Vec<u8>>> {
        self.pending?;
        match self.got.try_recv() {
            Ok((at, buf, r)) => {
                self.pending = None;
                Some(if at == off { Ok((buf, r)) } else { Err(buf) })
            }
            Err(TryRecvError::Empty) => None,
            Err(TryRecvError::Disconnected) => {
                self.pending = None;
                None
            }
        }
    }
}

impl Cursor {
    /// Loads the input buffer with the compressed bytes at `off` (taken from
    /// the read-ahead when it has them) and, for the first pass, asks for the
    /// next buffer in the background. Returns the bytes loaded.
    pub(super) fn refill(&mut self, ctx: &Ctx, off: u64) -> Result<usize, GzError> {
        if self.role == Role::Build && !self.prefetch_tried {
            self.prefetch_tried = true;
            self.prefetch = Prefetch::start(ctx.shared.clone());
        }
        let mut spare = std::mem::take(&mut self.ibuf);
        let mut loaded = None;
        match self.prefetch.as_mut().and_then(|p| p.take(off)) {
            Some(Ok((buf, r))) => loaded = Some((std::mem::replace(&mut spare, buf), r)),
            Some(Err(stale)) => self.spare = stale,
            None => {}
        }
        let cap = self.ibuf_cap();
        let (mut buf, n) = match loaded {
            Some((old, r)) => {
                self.spare = old;
                (spare, r?)
            }
            None => {
                spare.resize(cap, 0);
                let n = read_full_at(ctx.file, off, &mut spare)?;
                (spare, n)
            }
        };
        buf.truncate(n);
        self.ibuf = buf;
        self.ibuf_off = off;
        self.ipos = 0;
        if n == cap
            && let Some(p) = self.prefetch.as_mut()
        {
            let mut next = std::mem::take(&mut self.spare);
            next.resize(cap, 0);
            if let Err(back) = p.request(off + n as u64, next) {
                self.spare = back;
            }
        }
        Ok(n)
    }
}
