//! Which arithmetic nibabel 5.4.2 (with numpy 2.x) does for `img.get_fdata(dtype=...)`.
//!
//! Read from the installed package, in call order:
//! - `Nifti1Header.get_slope_inter` (also NIfTI-2): `scl_slope` 0 or non-finite means
//!   no scaling; a finite slope with a non-finite `scl_inter` raises `HeaderDataError`
//!   (so `nib.load` fails). Both come back as Python floats: float64, whatever the field
//!   width (NIfTI-1's float32 values widen exactly).
//! - `ArrayProxy._get_scaled`: `np.can_cast(float64, float32)` is false under numpy 2,
//!   so the factors stay float64 for either target.
//! - `apply_read_scaling`: `(slope, inter) == (1, 0)` returns the raw array; otherwise
//!   integer data gets the float type of `int_scinter_ftype(raw, slope, inter, float64)`
//!   (float64, or long double when `[min, max] * slope + inter` of the integer type
//!   overflows float64), float data is promoted by the float64 factors (float32 *
//!   float64 array is float64); then `* slope` if `slope != 1`, `+ inter` if `inter != 0`.
//! - `_get_scaled` / `__array__`: `astype(promote_types(result, dtype))`, then
//!   `astype(dtype)`. Unscaled int32/uint32/int64/uint64 with `dtype=float32` thus pass
//!   through float64 (two roundings for 64-bit integers).

use crate::nifti::{DataType, Header};

/// A source datatype that has float views: how its voxels are stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Raw {
    Int(IntType),
    F32,
    F64,
}

/// The integer datatypes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum IntType {
    U8,
    I8,
    I16,
    U16,
    I32,
    U32,
    I64,
    U64,
}

impl Raw {
    /// The stored type of `dtype`, or why an image of that type has no float view.
    pub(super) fn of(dtype: DataType) -> Result<Raw, String> {
        let what = format!("datatype {} ({})", dtype.name, dtype.code);
        Ok(match dtype.code {
            2 => Raw::Int(IntType::U8),
            256 => Raw::Int(IntType::I8),
            4 => Raw::Int(IntType::I16),
            512 => Raw::Int(IntType::U16),
            8 => Raw::Int(IntType::I32),
            768 => Raw::Int(IntType::U32),
            1024 => Raw::Int(IntType::I64),
            1280 => Raw::Int(IntType::U64),
            16 => Raw::F32,
            64 => Raw::F64,
            32 | 1792 | 2048 => {
                return Err(format!(
                    "{what} is complex: float views hold real data, and get_fdata would drop \
                     the imaginary part"
                ));
            }
            128 | 2304 => {
                return Err(format!(
                    "{what} is RGB: numpy cannot cast its (R, G, B) records to float, so \
                     get_fdata fails"
                ));
            }
            1536 => {
                return Err(format!(
                    "{what}: nibabel reads it only where the platform's long double is IEEE \
                     binary128; elsewhere (x86-64) nib.load refuses the image (\"data code \
                     1536 not supported\")"
                ));
            }
            _ => return Err(format!("{what}: nibabel reads no voxel values from it")),
        })
    }

    /// Bytes per voxel.
    pub(super) fn bytes(self) -> usize {
        match self {
            Raw::Int(IntType::U8 | IntType::I8) => 1,
            Raw::Int(IntType::I16 | IntType::U16) => 2,
            Raw::Int(IntType::I32 | IntType::U32) | Raw::F32 => 4,
            Raw::Int(IntType::I64 | IntType::U64) | Raw::F64 => 8,
        }
    }
}

impl IntType {
    /// `[min, max]` as numpy turns them into float64 (`int * float64 array` casts the
    /// integers first: int64 and uint64 round).
    fn range_f64(self) -> [f64; 2] {
        match self {
            IntType::U8 => [0.0, f64::from(u8::MAX)],
            IntType::I8 => [f64::from(i8::MIN), f64::from(i8::MAX)],
            IntType::I16 => [f64::from(i16::MIN), f64::from(i16::MAX)],
            IntType::U16 => [0.0, f64::from(u16::MAX)],
            IntType::I32 => [f64::from(i32::MIN), f64::from(i32::MAX)],
            IntType::U32 => [0.0, f64::from(u32::MAX)],
            IntType::I64 => [i64::MIN as f64, i64::MAX as f64],
            IntType::U64 => [0.0, u64::MAX as f64],
        }
    }
}

/// The scale factors as nibabel applies them.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) enum Scaling {
    /// No scaling: slope 0 or non-finite, or exactly (1, 0).
    None,
    /// `value * slope + inter`, both finite, not (1, 0).
    Linear { slope: f64, inter: f64 },
}

impl Scaling {
    /// `get_slope_inter` of this header, or why nibabel cannot load the image at all.
    pub(super) fn of(header: &Header) -> Result<Scaling, String> {
        let (slope, inter) = (header.scl_slope(), header.scl_inter());
        if slope == 0.0 || !slope.is_finite() {
            return Ok(Scaling::None);
        }
        if !inter.is_finite() {
            return Err(format!(
                "scl_slope {slope} with scl_inter {inter}: nibabel refuses to load the image \
                 (\"Valid slope but invalid intercept\")"
            ));
        }
        if slope == 1.0 && inter == 0.0 {
            return Ok(Scaling::None);
        }
        Ok(Scaling::Linear { slope, inter })
    }
}

/// The arithmetic of one float view.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) enum Plan {
    /// Float data of the target type, unscaled: the stored bytes as they are
    /// (`astype` of the same dtype keeps every bit, signalling NaNs included).
    Copy,
    /// Widen to float64, `* slope + inter` there, round to the target. The unscaled
    /// case is slope 1, inter -0.0, which changes no value: `x * 1 == x` and
    /// `x + -0.0 == x` for every x, so skipping the operations (as nibabel does) and
    /// doing them give the same bits; NaNs are only quieted, as numpy's casts and
    /// arithmetic quiet them.
    Double { slope: f64, inter: f64 },
    /// Integer data whose scaled range overflows float64: numpy's long double (x87
    /// 80-bit extended on x86-64), multiplying only if `slope != 1`, adding only if
    /// `inter != 0`, then rounding once to the target.
    Extended {
        int: IntType,
        slope: f64,
        inter: f64,
    },
}

/// Whether numpy's long double is the x87 80-bit format nifuse emulates.
const LONG_DOUBLE_IS_X87: bool = cfg!(target_arch = "x86_64");

impl Plan {
    /// The plan for `raw` data scaled by `scaling` as `out_is_raw` (the target is the
    /// stored float type), or why nibabel computes no result nifuse can reproduce.
    pub(super) fn of(raw: Raw, scaling: Scaling, out_is_raw: bool) -> Result<Plan, String> {
        let Scaling::Linear { slope, inter } = scaling else {
            return Ok(if out_is_raw {
                Plan::Copy
            } else {
                Plan::Double {
                    slope: 1.0,
                    inter: -0.0,
                }
            });
        };
        let double = Plan::Double {
            slope,
            inter: nonzero_or_neg_zero(inter),
        };
        let Raw::Int(int) = raw else {
            return Ok(double);
        };
        let range = int.range_f64();
        if range
            .iter()
            .all(|&v| scaled_f64(v, slope, inter).is_finite())
        {
            return Ok(double);
        }
        if !LONG_DOUBLE_IS_X87 {
            return Err(format!(
                "scl_slope {slope}, scl_inter {inter} overflow float64 over the integer range: \
                 nibabel computes in the platform's long double, which nifuse reproduces only \
                 as x86-64's 80-bit format"
            ));
        }
        Ok(Plan::Extended { int, slope, inter })
    }
}

/// `v * slope + inter` in float64 with nibabel's skips (`_ftype4scaled_finite`).
fn scaled_f64(v: f64, slope: f64, inter: f64) -> f64 {
    let mut t = v;
    if slope != 1.0 {
        t *= slope;
    }
    if inter != 0.0 {
        t += inter;
    }
    t
}

/// `inter`, or -0.0 for either zero: adding -0.0 is the identity that skipping is.
fn nonzero_or_neg_zero(inter: f64) -> f64 {
    if inter == 0.0 { -0.0 } else { inter }
}
