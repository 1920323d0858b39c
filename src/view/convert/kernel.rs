//! The conversion loops: stored voxels (either byte order) to float32/float64 in the same
//! byte order, one `ndarray::Zip` over fixed-size voxel records per plan.
//!
//! NaNs are converted bit for bit as x86-64 does in numpy's casts and arithmetic (quiet
//! bit set, payload kept in the top fraction bits), written out here rather than left
//! to the compiler, whose NaN payloads Rust does not promise.

use ndarray::{ArrayView1, ArrayViewMut1, Zip};

/// A stored voxel type of `N` bytes.
pub(super) trait Stored<const N: usize>: Copy {
    fn from_bytes(b: [u8; N], big: bool) -> Self;
    /// The value in float64 as numpy casts it (integers rounded to nearest, float32 exact).
    fn to_f64(self) -> f64;
}

/// An integer voxel type, exact as `i128`.
pub(super) trait Int<const N: usize>: Stored<N> {
    fn to_i128(self) -> i128;
}

macro_rules! int_stored {
    ($($t:ty: $n:literal),*) => {$(
        impl Stored<$n> for $t {
            #[inline(always)]
            fn from_bytes(b: [u8; $n], big: bool) -> $t {
                if big { <$t>::from_be_bytes(b) } else { <$t>::from_le_bytes(b) }
            }
            #[inline(always)]
            fn to_f64(self) -> f64 {
                self as f64
            }
        }
        impl Int<$n> for $t {
            #[inline(always)]
            fn to_i128(self) -> i128 {
                i128::from(self)
            }
        }
    )*};
}
int_stored!(u8: 1, i8: 1, i16: 2, u16: 2, i32: 4, u32: 4, i64: 8, u64: 8);

/// A target float type of `M` bytes.
pub(super) trait Target<const M: usize> {
    /// The float64 value rounded to this type, as bytes in the requested order.
    fn from_f64(v: f64, big: bool) -> [u8; M];
}

/// float32 and float64, stored (`$widen` to float64) and as targets (`$round` from
/// float64), with their bits as the unsigned `$bits`.
macro_rules! float_type {
    ($($t:ty: $n:literal, $bits:ty, $widen:expr, $round:expr);*) => {$(
        impl Stored<$n> for $t {
            #[inline(always)]
            fn from_bytes(b: [u8; $n], big: bool) -> $t {
                <$t>::from_bits(<$bits>::from_bytes(b, big))
            }
            #[inline(always)]
            fn to_f64(self) -> f64 {
                ($widen)(self)
            }
        }
        impl Target<$n> for $t {
            #[inline(always)]
            fn from_f64(v: f64, big: bool) -> [u8; $n] {
                let bits = ($round)(v).to_bits();
                if big { bits.to_be_bytes() } else { bits.to_le_bytes() }
            }
        }
    )*};
}
float_type!(f32: 4, u32, widen, narrow; f64: 8, u64, std::convert::identity, std::convert::identity);

const F64_QUIET: u64 = 1 << 51;

/// float32 to float64 as `cvtss2sd` does it: exact, a NaN quieted with its payload kept.
pub(super) fn widen(x: f32) -> f64 {
    let b = u64::from(x.to_bits());
    let nan = f64::from_bits(
        (b & 0x8000_0000) << 32 | 0x7ff0_0000_0000_0000 | F64_QUIET | (b & 0x007f_ffff) << 29,
    );
    if x.is_nan() { nan } else { f64::from(x) }
}

/// float64 to float32 as `cvtsd2ss` does it: rounded to nearest even (overflow to
/// infinity), a NaN quieted with the top of its payload kept.
pub(super) fn narrow(x: f64) -> f32 {
    // Both results, then a select: the loop stays branch-free and vectorizes.
    let b = x.to_bits();
    let sign = ((b >> 32) as u32) & 0x8000_0000;
    let nan = f32::from_bits(sign | 0x7fc0_0000 | (((b >> 29) as u32) & 0x007f_ffff));
    if x.is_nan() { nan } else { x as f32 }
}

/// `x * slope + inter` in float64, two roundings; a NaN comes out quieted, as SSE
/// arithmetic returns a NaN operand.
#[inline(always)]
fn scale(x: f64, slope: f64, inter: f64) -> f64 {
    let quiet = f64::from_bits(x.to_bits() | F64_QUIET);
    let y = x * slope + inter;
    if x.is_nan() { quiet } else { y }
}

/// Apply `f` to every `N`-byte record of `src`, writing `M`-byte records to `dst`.
/// The caller has checked that both hold the same number of whole records.
pub(super) fn each_voxel<const N: usize, const M: usize>(
    src: &[u8],
    dst: &mut [u8],
    f: impl Fn([u8; N]) -> [u8; M],
) {
    let (src, _) = src.as_chunks::<N>();
    let (dst, _) = dst.as_chunks_mut::<M>();
    Zip::from(ArrayViewMut1::from(dst))
        .and(ArrayView1::from(src))
        .for_each(|d, &s| *d = f(s));
}

/// The float64 plan: decode `S`, scale, round to `T`, in the source byte order.
pub(super) fn double<const N: usize, S: Stored<N>, const M: usize, T: Target<M>>(
    src: &[u8],
    dst: &mut [u8],
    big: bool,
    slope: f64,
    inter: f64,
) {
    // Two loops, so that the byte order is a constant inside each.
    if big {
        each_voxel(src, dst, |b| {
            T::from_f64(scale(S::from_bytes(b, true).to_f64(), slope, inter), true)
        });
    } else {
        each_voxel(src, dst, |b| {
            T::from_f64(scale(S::from_bytes(b, false).to_f64(), slope, inter), false)
        });
    }
}
