//! Safe wrapper around a raw-deflate `z_stream` from `libz-rs-sys` (zlib-rs).
//!
//! This is the only module of `gzindex` that contains `unsafe` code. It exposes
//! exactly the zlib features that `flate2` does not: raw inflate that stops at
//! deflate block boundaries (`Z_BLOCK`), priming the bit buffer with the bits
//! of a partially consumed byte (`inflatePrime`), and setting / getting the
//! 32 KiB sliding window (`inflateSetDictionary` / `inflateGetDictionary`).
//!
//! The `z_stream` is boxed so that its address never changes after
//! `inflateInit2_` (zlib's state keeps a pointer back to the stream). Input and
//! output buffers are handed in as slices on every call and zlib keeps no
//! pointer to them between calls, so no borrow outlives a call.

use std::ffi::CStr;
use std::os::raw::{c_int, c_uint};

use libz_rs_sys as z;

/// Size of the deflate sliding window.
pub const WINDOW_SIZE: usize = 32 * 1024;

/// Outcome of one [`RawInflate::inflate_block`] call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Progress was made (or the call stopped at a block boundary).
    Ok,
    /// The end of the deflate stream (final block) was reached.
    StreamEnd,
    /// No progress was possible: more input or more output space is needed.
    NeedMore,
}

/// Result of one [`RawInflate::inflate_block`] call.
#[derive(Debug, Clone, Copy)]
pub struct Step {
    pub consumed: usize,
    pub produced: usize,
    pub status: Status,
    /// zlib's `data_type`: low 6 bits = bits held in the bit buffer,
    /// 64 = in last block, 128 = stopped at a block boundary.
    pub data_type: i32,
}

impl Step {
    /// True if inflate stopped just before a new block header (not at the start).
    pub fn at_block_boundary(&self) -> bool {
        self.data_type & 128 != 0 && self.data_type & 64 == 0
    }
    /// Number of bits already pulled from consumed input but not yet used.
    pub fn held_bits(&self) -> u64 {
        (self.data_type & 63) as u64
    }
}

/// A zlib error code with zlib's message, if any.
#[derive(Debug, Clone)]
pub struct ZError {
    pub code: i32,
    pub msg: String,
}

impl std::fmt::Display for ZError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "zlib error {}: {}", self.code, self.msg)
    }
}

/// A raw (headerless, windowBits = -15) inflate stream.
pub struct RawInflate {
    strm: Box<z::z_stream>,
}

// SAFETY: the z_stream and the state it points to are owned exclusively by
// this value (allocated by zlib-rs with the Rust allocator, no thread-local
// data, no pointers to caller buffers kept between calls), so moving it to
// another thread is sound. It is not Sync; all methods take &mut self or
// only read.
unsafe impl Send for RawInflate {}

impl RawInflate {
    /// Initialise a raw inflate stream.
    pub fn new() -> Result<RawInflate, ZError> {
        let mut strm = Box::new(z::z_stream::default());
        // SAFETY: `strm` is a valid, default-initialised z_stream (zalloc/zfree
        // set by Default to the Rust allocator); the version string is zlib-rs'
        // own NUL-terminated static string and the size is that of the struct.
        let rc = unsafe {
            z::inflateInit2_(
                &mut *strm,
                -15,
                z::zlibVersion(),
                std::mem::size_of::<z::z_stream>() as c_int,
            )
        };
        if rc != z::Z_OK {
            return Err(ZError {
                code: rc,
                msg: "inflateInit2 failed".into(),
            });
        }
        Ok(RawInflate { strm })
    }

    fn err(&self, code: i32) -> ZError {
        let msg = if self.strm.msg.is_null() {
            format!("code {code}")
        } else {
            // SAFETY: zlib-rs sets `msg` only to static NUL-terminated strings.
            unsafe { CStr::from_ptr(self.strm.msg) }
                .to_string_lossy()
                .into_owned()
        };
        ZError { code, msg }
    }

    /// Reset to the state right after initialisation (window and bits cleared).
    pub fn reset(&mut self) -> Result<(), ZError> {
        // SAFETY: `strm` was initialised by inflateInit2_ and never moved.
        let rc = unsafe { z::inflateReset(&mut *self.strm) };
        if rc != z::Z_OK {
            return Err(self.err(rc));
        }
        Ok(())
    }

    /// Insert `bits` (1..=7) low bits of `value` into the bit buffer.
    pub fn prime(&mut self, bits: u8, value: u8) -> Result<(), ZError> {
        if bits == 0 || bits > 7 {
            return Err(ZError {
                code: z::Z_STREAM_ERROR,
                msg: format!("bad prime bit count {bits}"),
            });
        }
        // SAFETY: `strm` is initialised; inflatePrime only touches the state.
        let rc = unsafe { z::inflatePrime(&mut *self.strm, c_int::from(bits), c_int::from(value)) };
        if rc != z::Z_OK {
            return Err(self.err(rc));
        }
        Ok(())
    }

    /// Set the sliding window (at most 32 KiB; the last bytes of output before
    /// the resume point).
    pub fn set_dictionary(&mut self, dict: &[u8]) -> Result<(), ZError> {
        if dict.is_empty() {
            return Ok(());
        }
        if dict.len() > WINDOW_SIZE {
            return Err(ZError {
                code: z::Z_STREAM_ERROR,
                msg: "dictionary larger than 32 KiB".into(),
            });
        }
        // SAFETY: `dict` is a valid slice of `dict.len()` (<= 32 KiB, fits in
        // c_uint) readable bytes; zlib copies it and keeps no pointer.
        let rc = unsafe {
            z::inflateSetDictionary(&mut *self.strm, dict.as_ptr(), dict.len() as c_uint)
        };
        if rc != z::Z_OK {
            return Err(self.err(rc));
        }
        Ok(())
    }

    /// Return a copy of the current sliding window (at most 32 KiB).
    #[allow(dead_code)] // part of the wrapper's API; the cursor keeps its own history
    pub fn get_dictionary(&self) -> Result<Vec<u8>, ZError> {
        let mut buf = vec![0u8; WINDOW_SIZE];
        let mut len: c_uint = 0;
        // SAFETY: `buf` is writable for 32 KiB, which zlib documents as always
        // enough; `len` is a valid out-pointer.
        let rc = unsafe { z::inflateGetDictionary(&*self.strm, buf.as_mut_ptr(), &mut len) };
        if rc != z::Z_OK {
            return Err(self.err(rc));
        }
        buf.truncate((len as usize).min(WINDOW_SIZE));
        Ok(buf)
    }

    /// Inflate from `input` into `output`, stopping at the next deflate block
    /// boundary (`Z_BLOCK`), when input is exhausted or output is full.
    pub fn inflate_block(&mut self, input: &[u8], output: &mut [u8]) -> Result<Step, ZError> {
        let in_len = input.len().min(c_uint::MAX as usize);
        let out_len = output.len().min(c_uint::MAX as usize);
        self.strm.next_in = input.as_ptr();
        self.strm.avail_in = in_len as c_uint;
        self.strm.next_out = output.as_mut_ptr();
        self.strm.avail_out = out_len as c_uint;
        // SAFETY: next_in/avail_in describe the readable `input` slice and
        // next_out/avail_out the writable `output` slice, both alive for the
        // duration of this call; zlib keeps no pointer to them afterwards (we
        // clear them below).
        let rc = unsafe { z::inflate(&mut *self.strm, z::Z_BLOCK) };
        let consumed = in_len - self.strm.avail_in as usize;
        let produced = out_len - self.strm.avail_out as usize;
        self.strm.next_in = std::ptr::null();
        self.strm.avail_in = 0;
        self.strm.next_out = std::ptr::null_mut();
        self.strm.avail_out = 0;
        let status = match rc {
            z::Z_OK => Status::Ok,
            z::Z_STREAM_END => Status::StreamEnd,
            z::Z_BUF_ERROR => Status::NeedMore,
            _ => return Err(self.err(rc)),
        };
        Ok(Step {
            consumed,
            produced,
            status,
            data_type: self.strm.data_type,
        })
    }
}

impl Drop for RawInflate {
    fn drop(&mut self) {
        // SAFETY: `strm` was initialised by inflateInit2_ and is ended once.
        unsafe {
            z::inflateEnd(&mut *self.strm);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn raw_deflate(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::new(6));
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    #[test]
    fn inflates_and_reports_boundaries() {
        let data: Vec<u8> = (0..300_000u32)
            .map(|i| (i * 7 % 251) as u8 ^ (i >> 9) as u8)
            .collect();
        let comp = raw_deflate(&data);
        let mut z = RawInflate::new().unwrap();
        let mut out = vec![0u8; data.len() + 10];
        let (mut ip, mut op, mut boundaries) = (0, 0, 0);
        loop {
            let s = z.inflate_block(&comp[ip..], &mut out[op..]).unwrap();
            ip += s.consumed;
            op += s.produced;
            if s.at_block_boundary() {
                boundaries += 1;
            }
            if s.status == Status::StreamEnd {
                break;
            }
            assert_ne!(s.status, Status::NeedMore);
        }
        assert_eq!(&out[..op], &data[..]);
        assert!(boundaries >= 1);
        let d = z.get_dictionary().unwrap();
        assert_eq!(&d[..], &data[data.len() - WINDOW_SIZE..]);
        z.reset().unwrap();
        assert!(z.prime(0, 0).is_err());
    }

    #[test]
    fn corrupt_input_is_error() {
        let mut z = RawInflate::new().unwrap();
        let mut out = vec![0u8; 100];
        // block type 3 is invalid
        let r = z.inflate_block(&[0xff, 0xff, 0xff], &mut out);
        assert!(r.is_err(), "{r:?}");
    }
}
