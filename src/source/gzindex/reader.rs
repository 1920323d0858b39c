//! A cursor: one live inflate state walking forward through a gzip file.
//!
//! A cursor starts either at the beginning of the file or at a checkpoint,
//! produces uncompressed output into its history buffer (which always keeps
//! at least the last 32 KiB, so the window of any block boundary it passes is
//! at hand), verifies each member's CRC-32 and ISIZE, and applies the
//! placement rules of `index.rs` to every block boundary it passes, collecting
//! new checkpoints in `pending` for the owner to merge into the index.

use crate::source::ByteSource;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use super::GzError;
use super::header::parse_header;
use super::index::{Checkpoint, Rules};
use super::zlib::{RawInflate, Status, WINDOW_SIZE};

const HIST_CAP: usize = 256 * 1024;
const IBUF_CAP: usize = 64 * 1024;
const MIN_STEP: usize = 16 * 1024;
/// After a read, go on to the end of the stream to check the trailer if at
/// most this many compressed bytes are left.
const TAIL_VERIFY: u64 = 128 * 1024;

/// What a cursor needs from its owner while it runs (no locks held).
pub struct Ctx<'a> {
    pub file: &'a dyn ByteSource,
    pub file_len: u64,
    pub rules: &'a Rules,
    pub inflated: &'a AtomicU64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Header,
    Body,
    Done,
}

/// A block boundary seen but not yet decided on.
pub(super) struct Boundary {
    pub(super) out: u64,
    pub(super) bitpos: u64,
    pub(super) member_out: u64,
    pub(super) crc: u32,
    pub(super) member_start: bool,
    pub(super) window: Option<Arc<[u8]>>,
}

pub struct Cursor {
    pub(super) rules: Rules,
    z: RawInflate,
    phase: Phase,
    members: u64,
    ibuf: Vec<u8>,
    ibuf_off: u64,
    ipos: usize,
    pub(super) hist: Vec<u8>,
    pub(super) hist_len: usize,
    pub(super) hist_base: u64,
    member_out: u64,
    pub(super) crc: crc32fast::Hasher,
    pub(super) last_cp: u64,
    pub(super) prev: Option<Boundary>,
    /// Checkpoints below this are already in the index (skip recording them).
    pub known_covered: u64,
    /// New checkpoints found since the last merge.
    pub pending: Vec<Checkpoint>,
    /// Offset of the last boundary seen: all checkpoints before it are decided.
    pub seen_to: u64,
    /// The checkpoint after the one this cursor started from: the cursor
    /// must meet it exactly (same bit position, member and CRC), else the
    /// index does not match the data.
    pub verify: Option<Checkpoint>,
    /// Total uncompressed size once the end of the stream was reached.
    pub total: Option<u64>,
}

/// Read as many bytes as possible at `pos` (short only at end of file).
pub fn read_full_at(file: &dyn ByteSource, mut pos: u64, buf: &mut [u8]) -> Result<usize, GzError> {
    let mut n = 0;
    while n < buf.len() {
        match file.read_at(pos, &mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => {
                n += k;
                pos = pos.saturating_add(k as u64);
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(GzError::Io(e)),
        }
    }
    Ok(n)
}

fn zerr(at: u64, e: super::zlib::ZError) -> GzError {
    GzError::Corrupt {
        at_compressed: at,
        msg: e.msg,
    }
}

impl Cursor {
    fn blank(rules: &Rules, known_covered: u64) -> Result<Cursor, GzError> {
        Ok(Cursor {
            rules: rules.clone(),
            z: RawInflate::new().map_err(|e| zerr(0, e))?,
            phase: Phase::Header,
            members: 0,
            ibuf: Vec::with_capacity(IBUF_CAP),
            ibuf_off: 0,
            ipos: 0,
            hist: vec![0u8; HIST_CAP],
            hist_len: 0,
            hist_base: 0,
            member_out: 0,
            crc: crc32fast::Hasher::new(),
            last_cp: 0,
            prev: None,
            known_covered,
            pending: Vec::new(),
            seen_to: 0,
            verify: None,
            total: None,
        })
    }

    /// A cursor at the very start of the file (parses the first gzip header).
    pub fn at_start(ctx: &Ctx, known_covered: u64) -> Result<Cursor, GzError> {
        Cursor::blank(ctx.rules, known_covered)
    }

    /// A cursor resuming at checkpoint `cp` (validated against the file first).
    pub fn at_checkpoint(
        ctx: &Ctx,
        cp: &Checkpoint,
        known_covered: u64,
    ) -> Result<Cursor, GzError> {
        cp.check(ctx.file_len).map_err(GzError::BadIndex)?;
        let mut c = Cursor::blank(ctx.rules, known_covered)?;
        let byte = cp.bitpos / 8;
        let bit = (cp.bitpos % 8) as u8;
        c.ibuf_off = byte;
        if bit != 0 {
            let mut b = [0u8; 1];
            if read_full_at(ctx.file, byte, &mut b)? != 1 {
                return Err(GzError::BadIndex(format!(
                    "checkpoint at {} is past the end of the file",
                    cp.out
                )));
            }
            c.z.prime(8 - bit, b[0] >> bit)
                .map_err(|e| GzError::BadIndex(e.msg))?;
            c.ibuf_off = byte + 1;
        }
        c.z.set_dictionary(&cp.window)
            .map_err(|e| GzError::BadIndex(e.msg))?;
        let w = cp.window.len();
        c.hist[..w].copy_from_slice(&cp.window);
        c.hist_len = w;
        c.hist_base = cp.out - w as u64; // check() guarantees w <= out - member_out
        c.member_out = cp.member_out;
        c.crc = crc32fast::Hasher::new_with_initial_len(cp.crc, cp.out - cp.member_out);
        c.phase = Phase::Body;
        c.members = 1;
        c.last_cp = cp.out;
        c.seen_to = cp.out;
        c.prev = Some(Boundary {
            out: cp.out,
            bitpos: cp.bitpos,
            member_out: cp.member_out,
            crc: cp.crc,
            member_start: cp.member_start,
            window: Some(cp.window.clone()),
        });
        Ok(c)
    }

    /// Uncompressed offset of the next byte to be produced.
    pub fn out(&self) -> u64 {
        self.hist_base + self.hist_len as u64
    }

    /// Oldest uncompressed offset still held in the history buffer.
    pub fn hist_base(&self) -> u64 {
        self.hist_base
    }

    pub fn is_done(&self) -> bool {
        self.phase == Phase::Done
    }

    /// Compressed position (bytes) reached.
    pub fn in_pos(&self) -> u64 {
        self.ibuf_off + self.ipos as u64
    }

    /// Copy `buf.len()` bytes at `offset` (>= `hist_base()`) into `buf`.
    pub fn read(&mut self, ctx: &Ctx, offset: u64, buf: &mut [u8]) -> Result<(), GzError> {
        let end = offset
            .checked_add(buf.len() as u64)
            .ok_or_else(|| GzError::Io(std::io::Error::other("read range overflows")))?;
        if offset < self.hist_base {
            return Err(GzError::Io(std::io::Error::other(
                "cursor is past the requested offset",
            )));
        }
        let mut pos = offset;
        loop {
            let out = self.out();
            if pos < out {
                let upto = end.min(out);
                let (a, b) = (
                    (pos - self.hist_base) as usize,
                    (upto - self.hist_base) as usize,
                );
                let d = (pos - offset) as usize;
                buf[d..d + (b - a)].copy_from_slice(&self.hist[a..b]);
                pos = upto;
            }
            if pos >= end {
                self.settle();
                // The requested bytes are in `buf`; a stream that is cut short
                // after them does not make them wrong (callers verify whole
                // streams separately), so only corruption fails the read here.
                return match self.verify_tail(ctx, end) {
                    Err(GzError::Truncated { .. }) => Ok(()),
                    other => other,
                };
            }
            if let Some(total) = self.total {
                return Err(GzError::OutOfRange {
                    offset,
                    len: buf.len() as u64,
                    total,
                });
            }
            let want = usize::try_from(end - self.out()).unwrap_or(usize::MAX);
            self.step(ctx, want)?;
        }
    }

    /// If the end of the file is near, inflate on to it so the member's CRC-32
    /// and ISIZE get checked, as long as the bytes from `keep_from` on stay in
    /// the history buffer (so a sequential reader can continue from there).
    fn verify_tail(&mut self, ctx: &Ctx, keep_from: u64) -> Result<(), GzError> {
        while self.phase != Phase::Done && ctx.file_len.saturating_sub(self.in_pos()) <= TAIL_VERIFY
        {
            let full = HIST_CAP - self.hist_len < MIN_STEP;
            if full && self.out() > keep_from.saturating_add(WINDOW_SIZE as u64) {
                break;
            }
            self.step(ctx, MIN_STEP)?;
        }
        Ok(())
    }

    /// Inflate until the output reaches `until` or the stream ends.
    pub fn run_to(&mut self, ctx: &Ctx, until: u64) -> Result<(), GzError> {
        while self.out() < until && self.phase != Phase::Done {
            self.step(ctx, usize::MAX)?;
        }
        Ok(())
    }

    fn seek_in(&mut self, pos: u64) {
        let lo = self.ibuf_off;
        let hi = lo + self.ibuf.len() as u64;
        if pos >= lo && pos <= hi {
            self.ipos = (pos - lo) as usize;
        } else {
            self.ibuf.clear();
            self.ibuf_off = pos;
            self.ipos = 0;
        }
    }

    fn step(&mut self, ctx: &Ctx, want: usize) -> Result<(), GzError> {
        match self.phase {
            Phase::Done => Ok(()),
            Phase::Header => self.header(ctx),
            Phase::Body => self.body(ctx, want),
        }
    }

    fn header(&mut self, ctx: &Ctx) -> Result<(), GzError> {
        let pos = self.in_pos();
        match parse_header(ctx.file, pos, ctx.file_len, self.members, self.out())? {
            Some(data) => {
                self.z.reset().map_err(|e| zerr(pos, e))?;
                self.members += 1;
                let out = self.out();
                self.member_out = out;
                self.crc = crc32fast::Hasher::new();
                self.seek_in(data);
                self.phase = Phase::Body;
                let b = Boundary {
                    out,
                    bitpos: data.saturating_mul(8),
                    member_out: out,
                    crc: 0,
                    member_start: true,
                    window: Some(Arc::from(Vec::new())),
                };
                self.on_boundary(b)?;
            }
            None => {
                let total = self.out();
                if let Some(p) = self.prev.take()
                    && self.rules.start_in(p.out, total)
                {
                    self.record(p);
                }
                self.seen_to = total;
                self.total = Some(total);
                self.phase = Phase::Done;
            }
        }
        Ok(())
    }

    fn body(&mut self, ctx: &Ctx, want: usize) -> Result<(), GzError> {
        if self.ipos >= self.ibuf.len() {
            let off = self.in_pos();
            self.ibuf.resize(IBUF_CAP, 0);
            let n = read_full_at(ctx.file, off, &mut self.ibuf)?;
            self.ibuf.truncate(n);
            self.ibuf_off = off;
            self.ipos = 0;
            if n == 0 {
                return Err(GzError::Truncated {
                    available: self.out(),
                });
            }
        }
        if HIST_CAP - self.hist_len < MIN_STEP {
            self.compact();
        }
        let cap = HIST_CAP.min(self.hist_len.saturating_add(want.max(MIN_STEP)));
        let at = self.in_pos();
        let s = self
            .z
            .inflate_block(&self.ibuf[self.ipos..], &mut self.hist[self.hist_len..cap])
            .map_err(|e| zerr(at, e))?;
        self.ipos += s.consumed;
        let produced = &self.hist[self.hist_len..self.hist_len + s.produced];
        self.crc.update(produced);
        self.hist_len += s.produced;
        ctx.inflated.fetch_add(s.produced as u64, Ordering::Relaxed);
        match s.status {
            Status::StreamEnd => {
                let held = s.held_bits() / 8;
                let trailer = self
                    .in_pos()
                    .checked_sub(held)
                    .ok_or_else(|| GzError::Corrupt {
                        at_compressed: at,
                        msg: "inconsistent inflate state at member end".into(),
                    })?;
                self.trailer(ctx, trailer)?;
            }
            Status::Ok | Status::NeedMore => {
                if s.at_block_boundary() {
                    let out = self.out();
                    if self.prev.as_ref().is_none_or(|p| p.out != out) {
                        let bitpos = self
                            .in_pos()
                            .saturating_mul(8)
                            .saturating_sub(s.held_bits());
                        let b = Boundary {
                            out,
                            bitpos,
                            member_out: self.member_out,
                            crc: self.crc.clone().finalize(),
                            member_start: false,
                            window: None,
                        };
                        self.on_boundary(b)?;
                    }
                }
                if s.consumed == 0 && s.produced == 0 && s.status == Status::NeedMore {
                    return Err(GzError::Corrupt {
                        at_compressed: at,
                        msg: "inflate made no progress".into(),
                    });
                }
            }
        }
        Ok(())
    }

    fn trailer(&mut self, ctx: &Ctx, pos: u64) -> Result<(), GzError> {
        let mut t = [0u8; 8];
        if read_full_at(ctx.file, pos, &mut t)? < 8 {
            return Err(GzError::Truncated {
                available: self.out(),
            });
        }
        let crc = u32::from_le_bytes([t[0], t[1], t[2], t[3]]);
        let isize = u32::from_le_bytes([t[4], t[5], t[6], t[7]]);
        let got_crc = self.crc.clone().finalize();
        let got_len = (self.out() - self.member_out) as u32; // ISIZE is the length mod 2^32
        if crc != got_crc || isize != got_len {
            return Err(GzError::Corrupt {
                at_compressed: pos,
                msg: format!(
                    "{} (crc {crc:08x} vs computed {got_crc:08x}, size {isize} vs {got_len})",
                    super::TRAILER_MISMATCH
                ),
            });
        }
        self.seek_in(pos + 8);
        self.phase = Phase::Header;
        Ok(())
    }

    /// Keep only the last 32 KiB of history, saving the window of a pending boundary first.
    fn compact(&mut self) {
        if self.hist_len <= WINDOW_SIZE {
            return;
        }
        if let Some(p) = self.prev.take() {
            let p = if p.window.is_none() && p.out >= self.known_covered {
                let w = self.window_at(p.out, p.member_out);
                Boundary { window: w, ..p }
            } else {
                p
            };
            self.prev = Some(p);
        }
        let keep_from = self.hist_len - WINDOW_SIZE;
        self.hist.copy_within(keep_from..self.hist_len, 0);
        self.hist_base += keep_from as u64;
        self.hist_len = WINDOW_SIZE;
    }
}
