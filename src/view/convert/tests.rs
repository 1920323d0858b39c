//! Unit tests of the conversion rules, each against the value nibabel's arithmetic
//! gives, written as the float64/float32 expression that numpy evaluates (the byte-
//! for-byte comparison with real nibabel is `tests/core_convert.rs`).

use super::rules::{IntType, Plan, Raw, Scaling};
use super::*;
use crate::nifti::datatype;

/// A header with only what `Header::parse` and the conversion read: `sizeof_hdr`, the
/// magic and the scale factors (float32 in NIfTI-1, float64 in NIfTI-2), at the
/// offsets of nifti1.h / nifti2.h.
fn header(nifti2: bool, big: bool, slope: f64, inter: f64) -> Header {
    let order = |mut b: Vec<u8>| {
        if big {
            b.reverse();
        }
        b
    };
    let mut h;
    if nifti2 {
        h = vec![0u8; 540];
        h[0..4].copy_from_slice(&order(540i32.to_le_bytes().to_vec()));
        h[4..12].copy_from_slice(b"n+2\0\r\n\x1a\n");
        h[176..184].copy_from_slice(&order(slope.to_le_bytes().to_vec()));
        h[184..192].copy_from_slice(&order(inter.to_le_bytes().to_vec()));
    } else {
        h = vec![0u8; 348];
        h[0..4].copy_from_slice(&order(348i32.to_le_bytes().to_vec()));
        h[344..348].copy_from_slice(b"n+1\0");
        h[112..116].copy_from_slice(&order((slope as f32).to_le_bytes().to_vec()));
        h[116..120].copy_from_slice(&order((inter as f32).to_le_bytes().to_vec()));
    }
    Header::parse(&h).unwrap()
}

fn dt(code: i16) -> DataType {
    datatype::from_code(code).unwrap()
}

fn conv(code: i16, slope: f64, inter: f64, out: FloatType) -> FloatConversion {
    FloatConversion::new(&header(true, false, slope, inter), dt(code), out).unwrap()
}

/// Little-endian voxel bytes through a conversion.
fn run(c: &FloatConversion, src: &[u8]) -> Vec<u8> {
    let mut dst = vec![0u8; src.len() / c.in_bytes_per_voxel() * c.out_bytes_per_voxel()];
    c.convert(src, &mut dst).unwrap();
    dst
}

fn f32s(b: &[u8]) -> Vec<u32> {
    b.chunks(4)
        .map(|c| u32::from_le_bytes(c.try_into().unwrap()))
        .collect()
}

fn f64s(b: &[u8]) -> Vec<u64> {
    b.chunks(8)
        .map(|c| u64::from_le_bytes(c.try_into().unwrap()))
        .collect()
}

#[test]
fn float_views_exist_for_the_ten_real_types_only() {
    for t in datatype::ALL {
        let got = Raw::of(t);
        let has = [2, 256, 4, 512, 8, 768, 1024, 1280, 16, 64].contains(&t.code);
        assert_eq!(got.is_ok(), has, "{}", t.name);
        if let Err(why) = &got {
            assert!(why.contains(t.name), "{why}");
            let kind = match t.code {
                32 | 1792 | 2048 => "complex",
                128 | 2304 => "RGB",
                1536 => "binary128",
                _ => "no voxel values",
            };
            assert!(why.contains(kind), "{why}");
        }
        if let Ok(raw) = got {
            assert_eq!(raw.bytes() * 8, t.bits as usize, "{}", t.name);
        }
    }
}

#[test]
fn slope_zero_or_non_finite_means_no_scaling_whatever_the_intercept() {
    for (nifti2, big) in [(false, false), (false, true), (true, false), (true, true)] {
        let s = |slope, inter| Scaling::of(&header(nifti2, big, slope, inter));
        for slope in [0.0, -0.0, f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            for inter in [0.0, 7.0, f64::NAN, f64::INFINITY] {
                assert_eq!(s(slope, inter), Ok(Scaling::None), "{slope} {inter}");
            }
        }
        assert_eq!(s(1.0, 0.0), Ok(Scaling::None));
        assert_eq!(s(1.0, -0.0), Ok(Scaling::None));
        let linear = Scaling::Linear {
            slope: 2.5,
            inter: -3.0,
        };
        assert_eq!(s(2.5, -3.0), Ok(linear));
        for inter in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            let why = s(2.5, inter).unwrap_err();
            assert!(why.contains("invalid intercept"), "{why}");
        }
    }
    // NIfTI-1 factors are float32, widened exactly; NIfTI-2 ones are float64.
    let n1 = Scaling::of(&header(false, false, 0.1, 0.0));
    let n2 = Scaling::of(&header(true, true, 0.1, 0.0));
    let f32_tenth = f64::from(0.1f32);
    assert_eq!(
        n1,
        Ok(Scaling::Linear {
            slope: f32_tenth,
            inter: 0.0
        })
    );
    assert_eq!(
        n2,
        Ok(Scaling::Linear {
            slope: 0.1,
            inter: 0.0
        })
    );
}

#[test]
fn plans_copy_only_unscaled_floats_of_the_target_type() {
    let plan = |raw, scaling, same| Plan::of(raw, scaling, same).unwrap();
    let unit = Plan::Double {
        slope: 1.0,
        inter: -0.0,
    };
    assert_eq!(plan(Raw::F32, Scaling::None, true), Plan::Copy);
    assert_eq!(plan(Raw::F32, Scaling::None, false), unit);
    assert_eq!(plan(Raw::Int(IntType::I16), Scaling::None, false), unit);
    let zero_inter = Scaling::Linear {
        slope: 2.0,
        inter: 0.0,
    };
    let doubled = Plan::Double {
        slope: 2.0,
        inter: -0.0,
    };
    assert_eq!(plan(Raw::F32, zero_inter, true), doubled);
    assert_eq!(plan(Raw::Int(IntType::U8), zero_inter, false), doubled);
    assert_eq!(
        conv(16, 1.0, 0.0, FloatType::F32).plan,
        Plan::Copy,
        "float32 data, unscaled"
    );
    assert_eq!(conv(64, 1.0, 0.0, FloatType::F32).plan, unit);
}

#[test]
fn long_double_exactly_where_the_integer_range_overflows_float64() {
    let lin = |slope, inter| Scaling::Linear { slope, inter };
    let plan = |int, slope, inter| Plan::of(Raw::Int(int), lin(slope, inter), false).unwrap();
    let is_ext = |p: Plan| matches!(p, Plan::Extended { .. });
    // uint64's max is 2^64 in float64, int64's range [-2^63, 2^63]: a slope of
    // f64::MAX / 2^64 (exact) just fits; the next float up overflows.
    let fits = f64::MAX / 2f64.powi(64);
    assert!(!is_ext(plan(IntType::U64, fits, 0.0)));
    assert!(is_ext(plan(IntType::U64, fits.next_up(), 0.0)));
    assert!(!is_ext(plan(IntType::I64, 2.0 * fits, 0.0)));
    assert!(is_ext(plan(IntType::I64, (2.0 * fits).next_up(), 0.0)));
    assert!(is_ext(plan(IntType::I64, -(2.0 * fits).next_up(), 0.0)));
    // A huge intercept alone does not overflow (the sum rounds to f64::MAX)...
    assert!(!is_ext(plan(IntType::U8, 1.0, f64::MAX)));
    assert!(!is_ext(plan(IntType::I8, 2.0, f64::MAX)));
    // ...with a product near the top it does.
    assert!(is_ext(plan(IntType::I8, 1e306, 1.7e308)));
    assert!(is_ext(plan(IntType::I8, 1.5e306, 0.0)));
    assert!(!is_ext(plan(IntType::I8, 1.4e306, 0.0)));
    // Float data is promoted to float64 and never escalates.
    assert!(!is_ext(Plan::of(Raw::F64, lin(1e300, 0.0), true).unwrap()));
    // The extended plan keeps the factors as they are (nibabel skips by comparing them).
    assert_eq!(
        plan(IntType::U16, 1e305, 0.0),
        Plan::Extended {
            int: IntType::U16,
            slope: 1e305,
            inter: 0.0
        }
    );
}

#[test]
fn integers_scale_in_float64_then_round_to_float32() {
    // nibabel's factors are Python floats, so int16 * float32 slope is computed in
    // float64: -3 * 0.1f + 0.3f rounds twice in float64, then once to float32.
    let (slope, inter) = (f64::from(0.1f32), f64::from(0.3f32));
    let c = FloatConversion::new(&header(false, false, 0.1, 0.3), dt(4), FloatType::F32).unwrap();
    let got = f32::from_bits(f32s(&run(&c, &(-3i16).to_le_bytes()))[0]);
    let want = (-3.0 * slope + inter) as f32;
    assert_eq!(got.to_bits(), want.to_bits());
    assert_ne!(
        got.to_bits(),
        (-3.0f32 * 0.1f32 + 0.3f32).to_bits(),
        "float32 arithmetic"
    );
    // The same in float64 for the float64 view, and float32 data is promoted too.
    let c = conv(16, 2.5, -3.0, FloatType::F64);
    let x = 0.1f32;
    assert_eq!(
        f64s(&run(&c, &x.to_le_bytes()))[0],
        (f64::from(x) * 2.5 - 3.0).to_bits()
    );
}

#[test]
fn unscaled_64_bit_integers_reach_float32_through_float64() {
    // numpy promotes int64 with float32 to float64: 2^62 + 2^38 + 1 rounds to the tie
    // 2^62 + 2^38 in float64, which float32 rounds to even (2^62); rounding the exact
    // integer once would give 2^62 + 2^39.
    let x: i64 = (1 << 62) + (1 << 38) + 1;
    let c = conv(1024, 1.0, 0.0, FloatType::F32);
    let got = f32s(&run(&c, &x.to_le_bytes()))[0];
    assert_eq!(got, 2f32.powi(62).to_bits());
    assert_ne!(got, (x as f32).to_bits());
    let c = conv(1280, 0.0, 0.0, FloatType::F32);
    assert_eq!(
        f32s(&run(&c, &u64::MAX.to_le_bytes()))[0],
        2f32.powi(64).to_bits()
    );
    let c = conv(1280, 0.0, 0.0, FloatType::F64);
    assert_eq!(
        f64s(&run(&c, &u64::MAX.to_le_bytes()))[0],
        2f64.powi(64).to_bits()
    );
}

#[test]
fn long_double_keeps_the_bits_float64_would_round_away() {
    // 2^53 + 1 is exact in long double; float64 would round it to 2^53 before
    // scaling. numpy 2.4.6 on x86-64 gives these bits for (2^53 + 1) * 1e290 - 1e300.
    let x: i64 = (1 << 53) + 1;
    let c = conv(1024, 1e290, -1e300, FloatType::F64);
    let got = f64s(&run(&c, &x.to_le_bytes()))[0];
    assert_eq!(got, 0x7f74_85cd_2036_3de0);
    assert_ne!(got, ((x as f64) * 1e290 - 1e300).to_bits());
    // Values past float64 become infinities only when rounded to the target.
    let c = conv(256, 1e306, 1.7e308, FloatType::F64);
    let got = f64s(&run(&c, &[127u8, 0xff, 0x80]));
    assert_eq!(got[0], f64::INFINITY.to_bits());
    assert_eq!(got[1], (-1e306f64 + 1.7e308).to_bits());
    // -128e306 + 1.7e308 is finite in long double (and rounds to a finite float64).
    assert!(f64::from_bits(got[2]).is_finite());
}

#[test]
fn nans_are_quieted_keeping_their_payload_except_by_the_copy() {
    let snan32: u32 = 0x7f80_0001;
    let neg_nan32: u32 = 0xffa1_2345;
    let src: Vec<u8> = [snan32, neg_nan32]
        .iter()
        .flat_map(|b| b.to_le_bytes())
        .collect();
    assert_eq!(
        f32s(&run(&conv(16, 1.0, 0.0, FloatType::F32), &src)),
        [snan32, neg_nan32]
    );
    assert_eq!(
        f64s(&run(&conv(16, 1.0, 0.0, FloatType::F64), &src)),
        [0x7ff8_0000_2000_0000, 0xfffc_2468_a000_0000]
    );
    assert_eq!(
        f32s(&run(&conv(16, 2.0, 0.0, FloatType::F32), &src)),
        [0x7fc0_0001, 0xffe1_2345]
    );
    let snan64: u64 = 0x7ff0_0000_2000_0000;
    let src = snan64.to_le_bytes();
    assert_eq!(
        f64s(&run(&conv(64, 0.0, 0.0, FloatType::F64), &src)),
        [snan64]
    );
    assert_eq!(
        f32s(&run(&conv(64, 0.0, 0.0, FloatType::F32), &src)),
        [0x7fc0_0001]
    );
    assert_eq!(
        f64s(&run(&conv(64, 1.0, 5.0, FloatType::F64), &src)),
        [0x7ff8_0000_2000_0000]
    );
}

#[test]
fn infinities_zeros_and_float32_overflow() {
    let src: Vec<u8> = [f64::INFINITY, 0.0, 1e300, -0.0]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    let got = f32s(&run(&conv(64, -1.0, 0.0, FloatType::F32), &src));
    let want = [f32::NEG_INFINITY, -0.0, f32::NEG_INFINITY, 0.0];
    assert_eq!(got, want.map(f32::to_bits));
    // An integer 0 times a negative slope is -0; a zero intercept is not added.
    let got = f32s(&run(
        &conv(4, -1.0, 0.0, FloatType::F32),
        &0i16.to_le_bytes(),
    ));
    assert_eq!(got, [(-0.0f32).to_bits()]);
    let got = f32s(&run(
        &conv(4, -1.0, -0.0, FloatType::F32),
        &0i16.to_le_bytes(),
    ));
    assert_eq!(got, [(-0.0f32).to_bits()]);
}

#[test]
fn output_keeps_the_source_byte_order() {
    for nifti2 in [false, true] {
        let be = header(nifti2, true, 2.0, 1.0);
        let le = header(nifti2, false, 2.0, 1.0);
        let c = FloatConversion::new(&be, dt(4), FloatType::F32).unwrap();
        assert_eq!(run(&c, &258i16.to_be_bytes()), 517f32.to_be_bytes());
        let c = FloatConversion::new(&le, dt(4), FloatType::F64).unwrap();
        assert_eq!(run(&c, &258i16.to_le_bytes()), 517f64.to_le_bytes());
        let c = FloatConversion::new(&be, dt(1024), FloatType::F64).unwrap();
        assert_eq!(run(&c, &(-7i64).to_be_bytes()), (-13f64).to_be_bytes());
        let c = FloatConversion::new(&header(nifti2, true, 1.0, 0.0), dt(16), FloatType::F32);
        assert_eq!(
            run(&c.unwrap(), &1.5f32.to_be_bytes()),
            1.5f32.to_be_bytes()
        );
    }
}

#[test]
fn mismatched_lengths_are_errors_and_write_nothing() {
    let c = conv(4, 2.0, 0.0, FloatType::F64);
    assert_eq!((c.in_bytes_per_voxel(), c.out_bytes_per_voxel()), (2, 8));
    for (src, dst) in [(3, 8), (4, 8), (4, 24), (2, 0), (0, 8)] {
        let mut out = vec![0xaau8; dst];
        let err = c.convert(&vec![1u8; src], &mut out).unwrap_err();
        assert_eq!(
            (err.src, err.dst, err.in_bpv, err.out_bpv),
            (src, dst, 2, 8)
        );
        assert!(out.iter().all(|&b| b == 0xaa));
    }
    let mut none: [u8; 0] = [];
    assert_eq!(c.convert(&[], &mut none), Ok(()));
}

#[test]
fn float_type_header_values() {
    let got: Vec<_> = FloatType::ALL
        .iter()
        .map(|t| (t.code(), t.bitpix(), t.bytes(), t.name()))
        .collect();
    assert_eq!(got, [(16, 32, 4, "float32"), (64, 64, 8, "float64")]);
    for t in FloatType::ALL {
        let d = dt(t.code());
        assert_eq!((d.name, d.bits), (t.name(), t.bitpix() as u32));
    }
}
