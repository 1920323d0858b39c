//! Read-ahead of compressed input for the first pass: a helper thread reads
//! the next input buffer from the source (a copy out of the page cache, or a
//! request to an object store) while the pass inflates the current one, so
//! the pass's own thread only inflates. One helper per build cursor; it ends
//! when the cursor is dropped (its request channel closes).

use std::sync::Arc;
use std::sync::mpsc::{Receiver, Sender, channel};

use super::GzError;
use super::reader::read_full_at;
use crate::source::ByteSource;

type Filled = (u64, Vec<u8>, Result<usize, GzError>);

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

    /// The read at `off` if it is the one in flight (waiting for it);
    /// otherwise the read in flight is abandoned and its buffer returned as
    /// `Err` for reuse.
    pub fn take(&mut self, off: u64) -> Option<Result<(Vec<u8>, Result<usize, GzError>), Vec<u8>>> {
        let pending = self.pending.take()?;
        let (at, buf, r) = self.got.recv().ok()?;
        if pending == off && at == off {
            Some(Ok((buf, r)))
        } else {
            Some(Err(buf))
        }
    }
}
