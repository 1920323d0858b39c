//! Voxel bytes to float32/float64 exactly as nibabel's `img.get_fdata(dtype=...)` gives
//! them: the data of the `float32/` and `float64/` views.
//!
//! [`FloatConversion::new`] decides, from the header's scale factors and the datatype,
//! what nibabel 5.4.2 computes (see `rules` for the derivation from its source):
//!
//! | source | `scl_slope`/`scl_inter` | computed as | then |
//! |---|---|---|---|
//! | float32 to float32, float64 to float64 | none | the stored bytes, every bit kept | |
//! | any integer, float32, float64 | none | `float64(x)` | round to target |
//! | any integer, float32, float64 | slope s, inter i | `float64(x) * s + i` in float64, two roundings | round to target |
//! | integer, `[min, max] * s + i` overflows float64 | slope s, inter i | `x * s + i` in x87 long double (80-bit), two roundings | round to target |
//!
//! "none" is slope 0 or non-finite, or exactly (1, 0); a finite slope with a non-finite
//! intercept has no view (nibabel cannot load the image). `float64(x)` of an int64 or
//! uint64 rounds, so an unscaled 64-bit integer reaches float32 through two roundings
//! (numpy promotes int64 with float32 to float64; for 8- and 16-bit integers it goes
//! straight to float32, which is the same value, both being exact). NaNs keep their payload and are
//! quieted, except by the plain copy. Complex, RGB, binary and float128 data have no
//! float view ([`FloatConversion::new`] says why). The output has the source's byte order.

mod extended;
mod kernel;
mod rules;
#[cfg(test)]
mod tests;

use crate::nifti::{DataType, Header};
use rules::{IntType, Plan, Raw, Scaling};

/// `KERNEL::<N, S, M, T>(args)` for the stored type `S` of `N` bytes and the target
/// type `T` of `M` bytes that `out` names.
macro_rules! run {
    ($($k:ident)::+, $out:expr, ($n:literal, $s:ty), $($arg:expr),*) => {
        match $out {
            FloatType::F32 => $($k)::+::<$n, $s, 4, f32>($($arg),*),
            FloatType::F64 => $($k)::+::<$n, $s, 8, f64>($($arg),*),
        }
    };
}

/// [`run!`] for the integer type `int` names.
macro_rules! run_int {
    ($int:expr, $($k:ident)::+, $out:expr, $($arg:expr),*) => {
        match $int {
            IntType::U8 => run!($($k)::+, $out, (1, u8), $($arg),*),
            IntType::I8 => run!($($k)::+, $out, (1, i8), $($arg),*),
            IntType::I16 => run!($($k)::+, $out, (2, i16), $($arg),*),
            IntType::U16 => run!($($k)::+, $out, (2, u16), $($arg),*),
            IntType::I32 => run!($($k)::+, $out, (4, i32), $($arg),*),
            IntType::U32 => run!($($k)::+, $out, (4, u32), $($arg),*),
            IntType::I64 => run!($($k)::+, $out, (8, i64), $($arg),*),
            IntType::U64 => run!($($k)::+, $out, (8, u64), $($arg),*),
        }
    };
}

/// The data type of a float view.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FloatType {
    F32,
    F64,
}

impl FloatType {
    /// Both, in the order the views are listed.
    pub const ALL: [FloatType; 2] = [FloatType::F32, FloatType::F64];

    /// The NIfTI `datatype` code of the view's header: 16 or 64.
    pub fn code(self) -> i16 {
        match self {
            FloatType::F32 => 16,
            FloatType::F64 => 64,
        }
    }

    /// `bitpix` of the view's header: 32 or 64.
    pub fn bitpix(self) -> i16 {
        match self {
            FloatType::F32 => 32,
            FloatType::F64 => 64,
        }
    }

    /// Bytes per voxel: 4 or 8.
    pub fn bytes(self) -> usize {
        match self {
            FloatType::F32 => 4,
            FloatType::F64 => 8,
        }
    }

    /// numpy's name, which is also the view's directory name: `float32`, `float64`.
    pub fn name(self) -> &'static str {
        match self {
            FloatType::F32 => "float32",
            FloatType::F64 => "float64",
        }
    }
}

/// Buffers that do not hold the same number of whole voxels.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "float conversion of {src} source bytes ({in_bpv} per voxel) into {dst} bytes \
     ({out_bpv} per voxel): not the same number of whole voxels"
)]
pub struct LengthMismatch {
    pub src: usize,
    pub dst: usize,
    pub in_bpv: usize,
    pub out_bpv: usize,
}

/// How one float view computes its voxels from the stored ones.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FloatConversion {
    raw: Raw,
    out: FloatType,
    big_endian: bool,
    plan: Plan,
}

impl FloatConversion {
    /// How a float view of an image with this header and datatype computes its values, or
    /// why the image has no such view (complex, RGB, anything `get_fdata` does not give
    /// exactly). The scale factors and byte order come from `header`.
    pub fn new(
        header: &Header,
        dtype: DataType,
        out: FloatType,
    ) -> Result<FloatConversion, String> {
        let raw = Raw::of(dtype)?;
        let scaling = Scaling::of(header)?;
        let out_is_raw = matches!(
            (raw, out),
            (Raw::F32, FloatType::F32) | (Raw::F64, FloatType::F64)
        );
        let plan = Plan::of(raw, scaling, out_is_raw)?;
        Ok(FloatConversion {
            raw,
            out,
            big_endian: header.big_endian(),
            plan,
        })
    }

    /// Bytes per stored voxel.
    pub fn in_bytes_per_voxel(&self) -> usize {
        self.raw.bytes()
    }

    /// Bytes per converted voxel: 4 or 8.
    pub fn out_bytes_per_voxel(&self) -> usize {
        self.out.bytes()
    }

    /// The target type.
    pub fn out(&self) -> FloatType {
        self.out
    }

    /// Converts whole voxels: `src.len() == n * in_bpv` and `dst.len() == n * out_bpv`
    /// for some `n`, else nothing is written and the mismatch is returned.
    pub fn convert(&self, src: &[u8], dst: &mut [u8]) -> Result<(), LengthMismatch> {
        let (in_bpv, out_bpv) = (self.in_bytes_per_voxel(), self.out_bytes_per_voxel());
        let n = src.len() / in_bpv;
        if !src.len().is_multiple_of(in_bpv) || n.checked_mul(out_bpv) != Some(dst.len()) {
            return Err(LengthMismatch {
                src: src.len(),
                dst: dst.len(),
                in_bpv,
                out_bpv,
            });
        }
        let (out, big) = (self.out, self.big_endian);
        match (self.plan, self.raw) {
            (Plan::Copy, _) => dst.copy_from_slice(src),
            (Plan::Double { slope, inter }, Raw::Int(int)) => {
                run_int!(int, kernel::double, out, src, dst, big, slope, inter)
            }
            (Plan::Double { slope, inter }, Raw::F32) => {
                run!(kernel::double, out, (4, f32), src, dst, big, slope, inter)
            }
            (Plan::Double { slope, inter }, Raw::F64) => {
                run!(kernel::double, out, (8, f64), src, dst, big, slope, inter)
            }
            (Plan::Extended { int, slope, inter }, _) => {
                run_int!(int, extended::extended, out, src, dst, big, slope, inter)
            }
        }
        Ok(())
    }
}
