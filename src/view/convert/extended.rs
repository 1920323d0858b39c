//! numpy's long double on x86-64 (x87 80-bit extended: 64-bit significand, 15-bit
//! exponent), emulated with `rustc_apfloat` for the one place nibabel uses it on the
//! data types nifuse converts: integers whose scaled range overflows float64.
//!
//! The integers convert exactly (64 bits fit the significand), the product and the sum
//! each round to nearest even in extended precision, and the result rounds once to the
//! target, as numpy's `astype` from long double does. No NaN or infinity can arise:
//! the operands are finite and the extended range (about 1.2e4932) holds any
//! `int * f64 + f64`.

use rustc_apfloat::ieee::{Double, Single, X87DoubleExtended};
use rustc_apfloat::{Float, FloatConvert};

use super::kernel::{Int, each_voxel};

/// The float64 `v` in extended precision (exact).
fn ext(v: f64) -> X87DoubleExtended {
    let mut loses = false;
    Double::from_bits(u128::from(v.to_bits()))
        .convert(&mut loses)
        .value
}

/// `x * slope + inter` in extended precision with nibabel's skips (`slope != 1`,
/// `inter != 0`), for integers `x`.
fn scaled(
    x: i128,
    slope: X87DoubleExtended,
    inter: X87DoubleExtended,
    skip: (bool, bool),
) -> X87DoubleExtended {
    let mut y = X87DoubleExtended::from_i128(x).value;
    if !skip.0 {
        y = (y * slope).value;
    }
    if !skip.1 {
        y = (y + inter).value;
    }
    y
}

/// The target float types, reached from extended precision by one rounding.
pub(super) trait FromExtended<const M: usize> {
    fn from_extended(v: X87DoubleExtended, big: bool) -> [u8; M];
}

/// float32 and float64 through rustc_apfloat's `$apf`, bits as the unsigned `$bits`.
macro_rules! from_extended {
    ($($t:ty: $n:literal, $apf:ty, $bits:ty);*) => {$(
        impl FromExtended<$n> for $t {
            fn from_extended(v: X87DoubleExtended, big: bool) -> [u8; $n] {
                let mut loses = false;
                let r: $apf = v.convert(&mut loses).value;
                // The bits of a `$apf` fit `$bits`; the fallback is unreachable.
                let bits = <$bits>::try_from(r.to_bits()).unwrap_or(<$bits>::MAX);
                if big { bits.to_be_bytes() } else { bits.to_le_bytes() }
            }
        }
    )*};
}
from_extended!(f32: 4, Single, u32; f64: 8, Double, u64);

/// The extended plan: decode the integer `S`, scale in extended precision, round to `T`.
pub(super) fn extended<const N: usize, S: Int<N>, const M: usize, T: FromExtended<M>>(
    src: &[u8],
    dst: &mut [u8],
    big: bool,
    slope: f64,
    inter: f64,
) {
    let skip = (slope == 1.0, inter == 0.0);
    let (slope, inter) = (ext(slope), ext(inter));
    each_voxel(src, dst, |b| {
        T::from_extended(
            scaled(S::from_bytes(b, big).to_i128(), slope, inter, skip),
            big,
        )
    });
}
