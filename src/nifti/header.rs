//! A NIfTI-1 or NIfTI-2 header is its bytes.
//!
//! `Header` keeps exactly the 348 or 540 header bytes as read. Accessors decode a field
//! on demand in the header's own byte order and width; patchers overwrite only their
//! field. Every byte nifuse does not touch survives untouched, so a volume header is
//! the source header with a few fields patched, never re-encoded.

use super::endian::{read_le, write_le};
use super::error::FormatError;
use super::fields::{Field, FieldTable, Kind, NIFTI1, NIFTI2};

/// Header format, settled by `sizeof_hdr`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Version {
    Nifti1,
    Nifti2,
}

impl Version {
    /// The field table of this version.
    pub fn table(self) -> &'static FieldTable {
        match self {
            Version::Nifti1 => &NIFTI1,
            Version::Nifti2 => &NIFTI2,
        }
    }
}

/// The trailing bytes of a NIfTI-2 magic after `n+2\0` / `ni2\0`.
const NIFTI2_MAGIC_TAIL: [u8; 4] = *b"\r\n\x1a\n";

/// The header bytes of one image, with their version and byte order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Header {
    bytes: Vec<u8>,
    version: Version,
    big_endian: bool,
}

impl Header {
    /// Parse the header at the start of `bytes` (further bytes are ignored).
    pub fn parse(bytes: &[u8]) -> Result<Header, FormatError> {
        let need4 = FormatError::Short {
            got: bytes.len(),
            need: 4,
        };
        let le = read_le::<4>(bytes, 0, false)
            .map(i32::from_le_bytes)
            .ok_or(need4)?;
        let (version, big_endian) = match (le, le.swap_bytes()) {
            (348, _) => (Version::Nifti1, false),
            (540, _) => (Version::Nifti2, false),
            (_, 348) => (Version::Nifti1, true),
            (_, 540) => (Version::Nifti2, true),
            _ => return Err(FormatError::SizeofHdr(le)),
        };
        let table = version.table();
        let head = bytes.get(..table.len).ok_or(FormatError::Short {
            got: bytes.len(),
            need: table.len,
        })?;
        let header = Header {
            bytes: head.to_vec(),
            version,
            big_endian,
        };
        header.check_magic()?;
        Ok(header)
    }

    fn magic(&self) -> &[u8] {
        let m = self.table().magic;
        self.bytes
            .get(m.offset..m.offset + m.size())
            .unwrap_or_default()
    }

    fn check_magic(&self) -> Result<(), FormatError> {
        let magic = self.magic();
        let (ok, version, expected) = match self.version {
            Version::Nifti1 => (
                magic == b"n+1\0" || magic == b"ni1\0",
                1,
                "\"n+1\\0\" or \"ni1\\0\"",
            ),
            Version::Nifti2 => (
                (magic.starts_with(b"n+2\0") || magic.starts_with(b"ni2\0"))
                    && magic.ends_with(&NIFTI2_MAGIC_TAIL),
                2,
                "\"n+2\\0\\r\\n\\x1a\\n\" or \"ni2\\0\\r\\n\\x1a\\n\"",
            ),
        };
        if ok {
            return Ok(());
        }
        Err(FormatError::Magic {
            version,
            found: magic.escape_ascii().to_string(),
            expected,
        })
    }

    pub fn version(&self) -> Version {
        self.version
    }

    pub fn big_endian(&self) -> bool {
        self.big_endian
    }

    /// Header length in bytes: 348 (NIfTI-1) or 540 (NIfTI-2).
    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    /// Never true: a parsed header has 348 or 540 bytes.
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// True for a `.hdr`/`.img` pair header (magic `ni1` / `ni2`).
    pub fn is_pair(&self) -> bool {
        self.magic().get(1) == Some(&b'i')
    }

    /// The header bytes exactly as they are now.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    pub fn table(&self) -> &'static FieldTable {
        self.version.table()
    }

    /// `dim[0..8]`, as stored (dims past `dim[0]` are not cleaned up).
    pub fn dims(&self) -> [i64; 8] {
        std::array::from_fn(|i| self.int(self.table().dim, i))
    }

    pub fn datatype_code(&self) -> i16 {
        saturate(self.int(self.table().datatype, 0))
    }

    pub fn bitpix(&self) -> i16 {
        saturate(self.int(self.table().bitpix, 0))
    }

    /// `vox_offset`: an `f32` in NIfTI-1, an `i64` in NIfTI-2.
    pub fn vox_offset(&self) -> f64 {
        self.float(self.table().vox_offset, 0)
    }

    pub fn intent_code(&self) -> i32 {
        saturate(self.int(self.table().intent_code, 0))
    }

    pub fn scl_slope(&self) -> f64 {
        self.float(self.table().scl_slope, 0)
    }

    pub fn scl_inter(&self) -> f64 {
        self.float(self.table().scl_inter, 0)
    }

    pub fn pixdim(&self) -> [f64; 8] {
        std::array::from_fn(|i| self.float(self.table().pixdim, i))
    }

    pub fn qform_code(&self) -> i32 {
        saturate(self.int(self.table().qform_code, 0))
    }

    pub fn sform_code(&self) -> i32 {
        saturate(self.int(self.table().sform_code, 0))
    }

    /// Write `dim[0..8]`. In NIfTI-1 (`i16` dims) values are saturated to the `i16` range.
    pub fn set_dims(&mut self, dims: [i64; 8]) {
        for (i, d) in dims.into_iter().enumerate() {
            self.put_int(self.table().dim, i, d);
        }
    }

    /// Write `vox_offset` (exact in NIfTI-1's `f32` for multiples of 16 below 2^28).
    pub fn set_vox_offset(&mut self, offset: u64) {
        self.put_int(
            self.table().vox_offset,
            0,
            i64::try_from(offset).unwrap_or(i64::MAX),
        );
    }

    pub fn set_intent_code(&mut self, code: i32) {
        self.put_int(self.table().intent_code, 0, i64::from(code));
    }

    /// Turn a pair magic (`ni1`/`ni2`) into the single-file one (`n+1`/`n+2`); the only
    /// byte that differs is the second one.
    pub fn set_single_file_magic(&mut self) {
        let at = self.table().magic.offset + 1;
        if let Some(b) = self.bytes.get_mut(at) {
            *b = b'+';
        }
    }

    /// The field called `name` in this header's table (nibabel's names).
    pub fn field(&self, name: &str) -> Option<Field> {
        self.table()
            .all
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, f)| *f)
    }

    /// Element `i` of the field called `name`, as `f64`; `None` if there is no such element.
    pub fn get(&self, name: &str, i: usize) -> Option<f64> {
        let f = self.field(name).filter(|f| i < f.count)?;
        Some(self.float(f, i))
    }

    /// Stores `v` into element `i` of the field called `name`, in the field's
    /// own type and byte order (`f32` fields get `v` rounded to `f32`; integer
    /// fields get it truncated and saturated). Returns false if there is no such element.
    pub fn set(&mut self, name: &str, i: usize, v: f64) -> bool {
        let Some(f) = self.field(name).filter(|f| i < f.count) else {
            return false;
        };
        let at = f.offset + i * f.kind.size();
        let big = self.big_endian;
        match f.kind {
            Kind::F32 => write_le(&mut self.bytes, at, (v as f32).to_le_bytes(), big),
            Kind::F64 => write_le(&mut self.bytes, at, v.to_le_bytes(), big),
            _ => self.put_int(f, i, v as i64),
        }
        true
    }

    /// Element `i` of an integer field (float fields are truncated toward zero).
    fn int(&self, f: Field, i: usize) -> i64 {
        let at = f.offset + i * f.kind.size();
        match f.kind {
            Kind::U8 => i64::from(self.le::<1>(at)[0]),
            Kind::I16 => i64::from(i16::from_le_bytes(self.le(at))),
            Kind::I32 => i64::from(i32::from_le_bytes(self.le(at))),
            Kind::I64 => i64::from_le_bytes(self.le(at)),
            Kind::F32 | Kind::F64 => self.float(f, i) as i64,
        }
    }

    /// Element `i` of a numeric field, as `f64`.
    fn float(&self, f: Field, i: usize) -> f64 {
        let at = f.offset + i * f.kind.size();
        match f.kind {
            Kind::F32 => f64::from(f32::from_le_bytes(self.le(at))),
            Kind::F64 => f64::from_le_bytes(self.le(at)),
            _ => self.int(f, i) as f64,
        }
    }

    /// The `N` bytes at `at` in little-endian order. Fields lie inside the header by
    /// construction (the tables tile it, see `fields` tests), so the zero fallback is
    /// unreachable; it exists so that a bad table could never panic.
    fn le<const N: usize>(&self, at: usize) -> [u8; N] {
        read_le(&self.bytes, at, self.big_endian).unwrap_or([0; N])
    }

    /// Store `v` into element `i` of a field in the field's own width.
    fn put_int(&mut self, f: Field, i: usize, v: i64) {
        let at = f.offset + i * f.kind.size();
        let big = self.big_endian;
        let b = &mut self.bytes;
        match f.kind {
            Kind::U8 => write_le(b, at, [saturate::<u8>(v)], big),
            Kind::I16 => write_le(b, at, saturate::<i16>(v).to_le_bytes(), big),
            Kind::I32 => write_le(b, at, saturate::<i32>(v).to_le_bytes(), big),
            Kind::I64 => write_le(b, at, v.to_le_bytes(), big),
            Kind::F32 => write_le(b, at, (v as f32).to_le_bytes(), big),
            Kind::F64 => write_le(b, at, (v as f64).to_le_bytes(), big),
        }
    }
}

/// `v` clamped into `T`'s range (accessors use it on values decoded from a field no
/// wider than `T`, where it never clamps).
fn saturate<T: TryFrom<i64> + Bounded>(v: i64) -> T {
    T::try_from(v).unwrap_or(if v < 0 { T::MIN } else { T::MAX })
}

trait Bounded {
    const MIN: Self;
    const MAX: Self;
}

macro_rules! bounded {
    ($($t:ty),*) => {$(impl Bounded for $t { const MIN: Self = <$t>::MIN; const MAX: Self = <$t>::MAX; })*};
}
bounded!(u8, i16, i32);
