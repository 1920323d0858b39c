//! Tests of the format layer against headers built by hand, field by field.
//!
//! `header`: parsing, accessors, patchers and volume headers; `layout`: volume
//! geometry and read plans; `malformed`: every refusal is an error, never a panic.
//!
//! The builder writes fields at offsets copied from the NIfTI standards (not from
//! `fields.rs`), over a background of pattern bytes, so that a wrong table entry or a
//! patcher that touches a neighbour shows up as a failure.

use super::*;

mod header;
mod layout;
mod malformed;

pub(super) type R = Result<(), FormatError>;

pub(super) const FORMATS: [(Version, bool); 4] = [
    (Version::Nifti1, false),
    (Version::Nifti1, true),
    (Version::Nifti2, false),
    (Version::Nifti2, true),
];

/// Offsets of the fields the tests write, straight from nifti1.h / nifti2.h.
pub(super) struct Off {
    pub(super) len: usize,
    pub(super) magic: usize,
    pub(super) dim: usize,
    pub(super) intent_code: usize,
    pub(super) datatype: usize,
    pub(super) bitpix: usize,
    pub(super) pixdim: usize,
    pub(super) vox_offset: usize,
    pub(super) scl_slope: usize,
    pub(super) scl_inter: usize,
    pub(super) qform_code: usize,
    pub(super) sform_code: usize,
}

pub(super) fn off(v: Version) -> Off {
    match v {
        Version::Nifti1 => Off {
            len: 348,
            magic: 344,
            dim: 40,
            intent_code: 68,
            datatype: 70,
            bitpix: 72,
            pixdim: 76,
            vox_offset: 108,
            scl_slope: 112,
            scl_inter: 116,
            qform_code: 252,
            sform_code: 254,
        },
        Version::Nifti2 => Off {
            len: 540,
            magic: 4,
            dim: 16,
            intent_code: 504,
            datatype: 12,
            bitpix: 14,
            pixdim: 104,
            vox_offset: 168,
            scl_slope: 176,
            scl_inter: 184,
            qform_code: 344,
            sform_code: 348,
        },
    }
}

/// A header under construction: pattern bytes, then fields written one by one.
pub(super) struct Build {
    pub(super) buf: Vec<u8>,
    pub(super) v: Version,
    pub(super) big: bool,
}

impl Build {
    /// A valid single-file int16 image of shape 2x3x4x5, vox_offset right after the extender.
    pub(super) fn new(v: Version, big: bool) -> Build {
        let o = off(v);
        let buf = (0..o.len).map(|i| (i * 7 + 3) as u8).collect();
        let b = Build { buf, v, big };
        b.int(0, 4, o.len as i64)
            .magic(b"n+1")
            .dims([4, 2, 3, 4, 5, 1, 1, 1])
            .datatype(4, 16)
            .vox_offset(o.len as f64 + 4.0)
            .intent(0)
    }
    pub(super) fn put(mut self, at: usize, le: &[u8]) -> Build {
        let mut b = le.to_vec();
        if self.big {
            b.reverse();
        }
        self.buf[at..at + b.len()].copy_from_slice(&b);
        self
    }
    /// A signed integer of `width` bytes.
    pub(super) fn int(self, at: usize, width: usize, x: i64) -> Build {
        self.put(at, &x.to_le_bytes()[..width])
    }
    /// A float of the version's width (f32 in NIfTI-1, f64 in NIfTI-2).
    pub(super) fn float(self, at: usize, x: f64) -> Build {
        match self.v {
            Version::Nifti1 => self.put(at, &(x as f32).to_le_bytes()),
            Version::Nifti2 => self.put(at, &x.to_le_bytes()),
        }
    }
    /// `b"n+1"` or `b"ni1"`; the version digit and NIfTI-2 tail are filled in.
    pub(super) fn magic(mut self, m: &[u8; 3]) -> Build {
        let at = off(self.v).magic;
        let mut full = m.to_vec();
        match self.v {
            Version::Nifti1 => full.push(0),
            Version::Nifti2 => {
                full[2] = b'2';
                full.extend_from_slice(b"\0\r\n\x1a\n");
            }
        }
        self.buf[at..at + full.len()].copy_from_slice(&full);
        self
    }
    pub(super) fn raw_magic(mut self, m: &[u8]) -> Build {
        let at = off(self.v).magic;
        self.buf[at..at + m.len()].copy_from_slice(m);
        self
    }
    pub(super) fn dims(self, d: [i64; 8]) -> Build {
        let (at, w) = match self.v {
            Version::Nifti1 => (off(self.v).dim, 2),
            Version::Nifti2 => (off(self.v).dim, 8),
        };
        d.iter()
            .enumerate()
            .fold(self, |b, (i, x)| b.int(at + i * w, w, *x))
    }
    pub(super) fn datatype(self, code: i16, bitpix: i16) -> Build {
        let o = off(self.v);
        self.int(o.datatype, 2, code.into())
            .int(o.bitpix, 2, bitpix.into())
    }
    pub(super) fn vox_offset(self, x: f64) -> Build {
        let at = off(self.v).vox_offset;
        match self.v {
            Version::Nifti1 => self.float(at, x),
            Version::Nifti2 => self.int(at, 8, x as i64),
        }
    }
    pub(super) fn intent(self, code: i32) -> Build {
        let at = off(self.v).intent_code;
        let w = if self.v == Version::Nifti1 { 2 } else { 4 };
        self.int(at, w, code.into())
    }
    /// Header, extender and extensions `(ecode, data length)`, vox_offset set to their end.
    pub(super) fn with_extensions(self, extender: [u8; 4], exts: &[(i32, usize)]) -> Vec<u8> {
        let big = self.big;
        let mut tail = extender.to_vec();
        for &(code, data) in exts {
            let esize = (8 + data) as i32;
            for x in [esize, code] {
                let mut b = x.to_le_bytes();
                if big {
                    b.reverse();
                }
                tail.extend_from_slice(&b);
            }
            tail.extend((0..data).map(|i| (i as u8) ^ (code as u8)));
        }
        let len = self.buf.len() + tail.len();
        let mut out = self.vox_offset(len as f64).buf;
        out.extend_from_slice(&tail);
        out
    }
    pub(super) fn bytes(self) -> Vec<u8> {
        self.buf
    }
    /// The header plus a zero extender, as a single file's head up to vox_offset.
    pub(super) fn file(self) -> Vec<u8> {
        let mut b = self.buf;
        b.extend_from_slice(&[0; 4]);
        b
    }
}

/// The bytes of `a` and `b` that differ, as offsets.
pub(super) fn diff(a: &[u8], b: &[u8]) -> Vec<usize> {
    assert_eq!(a.len(), b.len());
    (0..a.len()).filter(|&i| a[i] != b[i]).collect()
}

pub(super) fn within(offsets: &[usize], range: std::ops::Range<usize>) -> bool {
    offsets.iter().all(|o| range.contains(o))
}
