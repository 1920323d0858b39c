//! A cursor: one live inflate state walking forward through a gzip file.
//!
//! A cursor starts either at the beginning of the file or at a checkpoint,
//! produces uncompressed output into its history buffer (which always keeps
//! at least the last 32 KiB, so the window of any block boundary it passes is
//! at hand) and splits it into segments (`segments.rs`). It has one of two
//! roles:
//! * [`Role::Build`] (the first pass, one per file): applies the placement
//!   rules of `index.rs` to every block boundary it passes, records each
//!   segment's CRC-32 and each member whose CRC-32 and ISIZE match its
//!   trailer, collecting them in `pending`, `new_segs` and `new_members` for
//!   the owner to merge into the index;
//! * [`Role::Check`] (every other read): compares each segment it completes
//!   with the CRC the index recorded for it ([`GzError::Damaged`] if they
//!   differ), so that no byte is returned before its segment was checked.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::source::ByteSource;

use super::GzError;
use super::header::parse_header;
use super::index::{Checkpoint, Member, Rules, Seg};
use super::prefetch::Prefetch;
use super::zlib::{RawInflate, Status};

/// History and input buffers of the first pass (one cursor per file: large,
/// so a reader that follows the pass finds its bytes still in the history)
/// and of the check cursors of reads (several per file: smaller).
const BUILD_HIST: usize = 512 * 1024;
const BUILD_IBUF: usize = 128 * 1024;
const CHECK_HIST: usize = 256 * 1024;
const CHECK_IBUF: usize = 64 * 1024;
const MIN_STEP: usize = 16 * 1024;

/// What a cursor needs from its owner while it runs (no locks held).
pub struct Ctx<'a> {
    pub file: &'a dyn ByteSource,
    /// The same file, shared (for the read-ahead thread of the first pass).
    pub shared: &'a Arc<dyn ByteSource>,
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

/// What a cursor does with the segments it decodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Record checkpoints, segments and verified members (the first pass).
    Build,
    /// Check segments against `Cursor::check` (reads from the index).
    Check,
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
    pub(super) role: Role,
    z: RawInflate,
    phase: Phase,
    pub(super) members: u64,
    pub(super) ibuf: Vec<u8>,
    pub(super) ibuf_off: u64,
    pub(super) ipos: usize,
    pub(super) hist: Vec<u8>,
    pub(super) hist_len: usize,
    pub(super) hist_base: u64,
    pub(super) member_out: u64,
    /// CRC-32 of the member's bytes `member_out..seg_start`.
    pub(super) member_crc: u32,
    /// Start of the segment being decoded, and the CRC of its bytes so far.
    pub(super) seg_start: u64,
    pub(super) seg_crc: crc32fast::Hasher,
    pub(super) last_cp: u64,
    pub(super) prev: Option<Boundary>,
    /// History from this offset on is kept when the buffer is compacted
    /// (bytes a sequential reader will ask for next).
    pub keep_from: u64,
    /// Build: new checkpoints found since the last merge.
    pub pending: Vec<Checkpoint>,
    /// Build: segments completed since the last merge.
    pub new_segs: Vec<Seg>,
    /// Build: members verified since the last merge.
    pub new_members: Vec<Member>,
    /// Check: the recorded segments ahead, the first starting at `seg_start`.
    pub check: VecDeque<Seg>,
    /// Total uncompressed size once the end of the stream was reached.
    pub total: Option<u64>,
    /// Check: bytes were decoded past the segments in `check`, unchecked
    /// (the cursor is not reused).
    pub blind: bool,
    /// Build: the read-ahead of the next input buffer, and its buffer.
    pub(super) prefetch: Option<Prefetch>,
    pub(super) prefetch_tried: bool,
    pub(super) spare: Vec<u8>,
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
    fn blank(rules: &Rules, role: Role) -> Result<Cursor, GzError> {
        Ok(Cursor {
            rules: rules.clone(),
            role,
            z: RawInflate::new().map_err(|e| zerr(0, e))?,
            phase: Phase::Header,
            members: 0,
            ibuf: Vec::new(),
            ibuf_off: 0,
            ipos: 0,
            hist: vec![
                0u8;
                match role {
                    Role::Build => BUILD_HIST,
                    Role::Check => CHECK_HIST,
                }
            ],
            hist_len: 0,
            hist_base: 0,
            member_out: 0,
            member_crc: 0,
            seg_start: 0,
            seg_crc: crc32fast::Hasher::new(),
            last_cp: 0,
            prev: None,
            keep_from: 0,
            pending: Vec::new(),
            new_segs: Vec::new(),
            new_members: Vec::new(),
            check: VecDeque::new(),
            total: None,
            blind: false,
            prefetch: None,
            prefetch_tried: false,
            spare: Vec::new(),
        })
    }

    /// A cursor at the very start of the file (parses the first gzip header).
    pub fn at_start(ctx: &Ctx, role: Role) -> Result<Cursor, GzError> {
        Cursor::blank(ctx.rules, role)
    }

    /// A cursor resuming at checkpoint `cp` (validated against the file first).
    pub fn at_checkpoint(ctx: &Ctx, cp: &Checkpoint, role: Role) -> Result<Cursor, GzError> {
        cp.check(ctx.file_len).map_err(GzError::BadIndex)?;
        let mut c = Cursor::blank(ctx.rules, role)?;
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
        c.member_crc = cp.crc;
        c.seg_start = cp.out;
        c.keep_from = cp.out;
        c.phase = Phase::Body;
        c.members = 1;
        c.last_cp = cp.out;
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

    /// Start of the segment being decoded: every byte before it is in a
    /// completed segment (checked against the index, for [`Role::Check`]).
    pub fn seg_start(&self) -> u64 {
        self.seg_start
    }

    /// Size of one read of compressed input.
    pub(super) fn ibuf_cap(&self) -> usize {
        match self.role {
            Role::Build => BUILD_IBUF,
            Role::Check => CHECK_IBUF,
        }
    }

    pub fn is_done(&self) -> bool {
        self.phase == Phase::Done
    }

    /// Compressed position (bytes) reached.
    pub fn in_pos(&self) -> u64 {
        self.ibuf_off + self.ipos as u64
    }

    /// Copy `buf.len()` bytes at `offset` (>= `hist_base()`) into `buf`; a
    /// [`Role::Check`] cursor returns only once every segment holding them
    /// matched its recorded CRC.
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
            self.keep_from = pos;
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
            let checked = self.role == Role::Build || self.seg_start >= end;
            if pos >= end && checked {
                self.keep_from = end;
                if self.role == Role::Build {
                    self.settle();
                }
                return Ok(());
            }
            if let Some(total) = self.total {
                if pos < end {
                    return Err(GzError::OutOfRange {
                        offset,
                        len: buf.len() as u64,
                        total,
                    });
                }
                return Err(GzError::Damaged(format!(
                    "the stream ends at {total} inside a segment of the index"
                )));
            }
            if self.role == Role::Check && self.check.is_empty() {
                return Err(GzError::Damaged(format!(
                    "bytes up to {end} are not covered by the index"
                )));
            }
            let want = usize::try_from(end.saturating_sub(self.out())).unwrap_or(usize::MAX);
            self.step(ctx, want)?;
        }
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
                self.member_crc = 0;
                self.seg_start = out;
                self.seg_crc = crc32fast::Hasher::new();
                self.seek_in(data);
                self.phase = Phase::Body;
                if self.role == Role::Build {
                    let b = Boundary {
                        out,
                        bitpos: data.saturating_mul(8),
                        member_out: out,
                        crc: 0,
                        member_start: true,
                        window: Some(Arc::from(Vec::new())),
                    };
                    self.on_boundary(b);
                }
            }
            None => {
                let total = self.out();
                if self.role == Role::Build
                    && let Some(p) = self.prev.take()
                    && self.rules.start_in(p.out, total)
                {
                    self.record(p);
                }
                self.total = Some(total);
                self.phase = Phase::Done;
            }
        }
        Ok(())
    }

    fn body(&mut self, ctx: &Ctx, want: usize) -> Result<(), GzError> {
        if self.ipos >= self.ibuf.len() {
            let off = self.in_pos();
            if self.refill(ctx, off)? == 0 {
                return Err(GzError::Truncated {
                    available: self.out(),
                });
            }
        }
        if self.hist.len() - self.hist_len < MIN_STEP {
            self.compact();
        }
        let cap = self
            .hist
            .len()
            .min(self.hist_len.saturating_add(want.max(MIN_STEP)));
        let at = self.in_pos();
        let s = self
            .z
            .inflate_block(&self.ibuf[self.ipos..], &mut self.hist[self.hist_len..cap])
            .map_err(|e| zerr(at, e))?;
        self.ipos += s.consumed;
        let lo = self.out();
        self.hist_len += s.produced;
        ctx.inflated.fetch_add(s.produced as u64, Ordering::Relaxed);
        self.account(lo, self.out())?;
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
                let out = self.out();
                if self.blind {
                    // Past the checked segments: nothing to compare with.
                    self.seek_in(trailer + 8);
                    self.phase = Phase::Header;
                    return Ok(());
                }
                self.close_segment(out, trailer)?;
                self.trailer(ctx, trailer)?;
            }
            Status::Ok | Status::NeedMore => {
                if s.at_block_boundary() && self.role == Role::Build {
                    let out = self.out();
                    if self.prev.as_ref().is_none_or(|p| p.out != out) {
                        let bitpos = self
                            .in_pos()
                            .saturating_mul(8)
                            .saturating_sub(s.held_bits());
                        self.close_segment(out, self.in_pos())?;
                        let b = Boundary {
                            out,
                            bitpos,
                            member_out: self.member_out,
                            crc: self.member_crc,
                            member_start: false,
                            window: None,
                        };
                        self.on_boundary(b);
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
        let got_crc = self.member_crc;
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
        if self.role == Role::Build {
            self.new_members.push(Member {
                start: self.member_out,
                end: self.out(),
                crc,
            });
        }
        self.seek_in(pos + 8);
        self.phase = Phase::Header;
        Ok(())
    }
}
