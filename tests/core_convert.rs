//! The float views' conversion against real nibabel, byte for byte: images of every
//! datatype nifuse converts, both byte orders, NIfTI-1 and NIfTI-2, and many scale
//! factors are written as files; one nibabel process computes `get_fdata(dtype=...)`
//! for all of them, and `FloatConversion` must give the same bytes (NaN payloads as
//! nibabel produces them), or refuse exactly where nibabel fails.
//!
//! Needs the venv of `scripts/setup-deps` (`.venv`, or `$NIFUSE_VENV`); fails without it.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use nifuse::nifti::{Header, datatype};
use nifuse::view::convert::{FloatConversion, FloatType};

/// One image: header fields that matter here, and the voxel values as stored.
struct Case {
    name: String,
    nifti2: bool,
    big: bool,
    code: i16,
    bits: i16,
    slope: f64,
    inter: f64,
    data: Vec<u8>,
}

/// Bytes of the header fields, in the case's byte order.
fn put(h: &mut [u8], at: usize, le: &[u8], big: bool) {
    let mut b = le.to_vec();
    if big {
        b.reverse();
    }
    h[at..at + b.len()].copy_from_slice(&b);
}

/// The case as a single `.nii` file, with the offsets of the NIfTI standards written
/// out here (independent of nifuse's field tables). NIfTI-1 stores the scale factors
/// as float32.
fn file_bytes(c: &Case) -> Vec<u8> {
    let n = c.data.len() / (c.bits as usize / 8);
    let big = c.big;
    let mut h;
    if c.nifti2 {
        h = vec![0u8; 544];
        put(&mut h, 0, &540i32.to_le_bytes(), big);
        h[4..12].copy_from_slice(b"n+2\0\r\n\x1a\n");
        put(&mut h, 12, &c.code.to_le_bytes(), big);
        put(&mut h, 14, &c.bits.to_le_bytes(), big);
        let dims = [3i64, n as i64, 1, 1, 1, 1, 1, 1];
        for (i, d) in dims.iter().enumerate() {
            put(&mut h, 16 + 8 * i, &d.to_le_bytes(), big);
            put(&mut h, 104 + 8 * i, &1f64.to_le_bytes(), big);
        }
        put(&mut h, 168, &544i64.to_le_bytes(), big);
        put(&mut h, 176, &c.slope.to_le_bytes(), big);
        put(&mut h, 184, &c.inter.to_le_bytes(), big);
    } else {
        h = vec![0u8; 352];
        put(&mut h, 0, &348i32.to_le_bytes(), big);
        let dims = [3i16, n as i16, 1, 1, 1, 1, 1, 1];
        for (i, d) in dims.iter().enumerate() {
            put(&mut h, 40 + 2 * i, &d.to_le_bytes(), big);
            put(&mut h, 76 + 4 * i, &1f32.to_le_bytes(), big);
        }
        put(&mut h, 70, &c.code.to_le_bytes(), big);
        put(&mut h, 72, &c.bits.to_le_bytes(), big);
        put(&mut h, 108, &352f32.to_le_bytes(), big);
        put(&mut h, 112, &(c.slope as f32).to_le_bytes(), big);
        put(&mut h, 116, &(c.inter as f32).to_le_bytes(), big);
        h[344..348].copy_from_slice(b"n+1\0");
    }
    h.extend_from_slice(&c.data);
    h
}

/// Deterministic pseudo-random 64-bit words, from `common::bytes` (enough for one case).
struct Words(std::vec::IntoIter<u8>);

impl Words {
    fn new(seed: u64) -> Words {
        Words(common::bytes(128 * 8, seed).into_iter())
    }

    fn next(&mut self) -> u64 {
        let b: Vec<u8> = self.0.by_ref().take(8).collect();
        u64::from_le_bytes(b.try_into().expect("enough pseudo-random bytes"))
    }
}

/// Voxel values of one datatype as little-endian records: the extremes and edge cases
/// first, then pseudo-random ones up to 96 values.
fn values(code: i16, rng: &mut Words) -> (i16, Vec<Vec<u8>>) {
    macro_rules! ints {
        ($t:ty, $bits:literal) => {{
            let mut v: Vec<$t> = vec![<$t>::MIN, <$t>::MAX, 0, 1, <$t>::MIN.wrapping_add(1)];
            v.extend([
                <$t>::MAX - 1,
                <$t>::MAX / 2,
                <$t>::MAX / 3,
                (<$t>::MAX / 2).wrapping_add(1),
            ]);
            v.push((-1i8) as $t); // -1, or the all-ones value of unsigned types
            if $bits == 64 {
                // Above 2^53 float64 rounds; the second is a tie for float64 that
                // float32 would break the other way from the exact integer.
                v.extend([(1u64 << 53) as $t + 1, ((1u64 << 62) + (1 << 38) + 1) as $t]);
                v.extend([((1u64 << 63) - 1025) as $t, ((1u64 << 63) - 512) as $t]);
            }
            while v.len() < 96 {
                let r = rng.next();
                // Small values, and full-width ones.
                v.push(if v.len().is_multiple_of(2) {
                    (r % 200) as $t
                } else {
                    r as $t
                });
            }
            ($bits, v.iter().map(|x| x.to_le_bytes().to_vec()).collect())
        }};
    }
    match code {
        2 => ints!(u8, 8),
        256 => ints!(i8, 8),
        4 => ints!(i16, 16),
        512 => ints!(u16, 16),
        8 => ints!(i32, 32),
        768 => ints!(u32, 32),
        1024 => ints!(i64, 64),
        1280 => ints!(u64, 64),
        16 => {
            let mut v: Vec<u32> = vec![
                0x7fc0_0000,
                0xffc0_0000,
                0x7f80_0001,
                0xff80_0001,
                0x7fa1_2345,
                0x7fff_ffff,
                0xffbf_ffff,
                0x7f80_0000,
                0xff80_0000,
                0,
                0x8000_0000,
                1,
                0x8000_0001,
                0x007f_ffff,
                0x0080_0000,
                0x7f7f_ffff,
                0xff7f_ffff,
                0x3f80_0000,
                0x3f80_0001,
            ];
            while v.len() < 96 {
                let r = rng.next();
                v.push(if v.len().is_multiple_of(3) {
                    r as u32
                } else {
                    ((r % 20000) as f32 / 7.0 - 1000.0).to_bits()
                });
            }
            (32, v.iter().map(|x| x.to_le_bytes().to_vec()).collect())
        }
        64 => {
            let mut v: Vec<u64> = vec![
                0x7ff8_0000_0000_0000,
                0xfff8_0000_0000_0000,
                0x7ff0_0000_0000_0001,
                0x7ff0_0000_2000_0000,
                0xfff7_ffff_ffff_ffff,
                0x7ff8_dead_beef_0001,
                0x7ff0_0000_0000_0000,
                0xfff0_0000_0000_0000,
                0,
                0x8000_0000_0000_0000,
                1,
                0x000f_ffff_ffff_ffff,
                0x7fef_ffff_ffff_ffff,
                0xffef_ffff_ffff_ffff,
                1e300f64.to_bits(),
                (-1e-300f64).to_bits(),
                3.5e38f64.to_bits(),
                // float32's max plus just under and just at half an ulp: the cast's edge.
                (f64::from(f32::MAX) + 2f64.powi(103) - 2f64.powi(50)).to_bits(),
                (f64::from(f32::MAX) + 2f64.powi(103)).to_bits(),
                // 1 + 2^-24 is a float32 tie (to even: 1); a bit more rounds up.
                (1.0 + 2f64.powi(-24)).to_bits(),
                (1.0 + 2f64.powi(-24) + 2f64.powi(-50)).to_bits(),
                1e-46f64.to_bits(),
                7e-46f64.to_bits(),
            ];
            while v.len() < 96 {
                let r = rng.next();
                v.push(if v.len().is_multiple_of(3) {
                    r
                } else {
                    ((r % 2_000_000) as f64 / 7.0 - 1e5).to_bits()
                });
            }
            (64, v.iter().map(|x| x.to_le_bytes().to_vec()).collect())
        }
        // float128: 16-byte records (nibabel cannot read them on x86-64).
        1536 => (
            128,
            (0..8)
                .map(|_| {
                    let (a, b) = (rng.next(), rng.next());
                    [a.to_le_bytes(), b.to_le_bytes()].concat()
                })
                .collect(),
        ),
        // Complex and RGB: records of random bytes (no float views by the contract).
        32 | 1792 | 128 | 2304 => {
            let bits = match code {
                32 => 64,
                1792 => 128,
                128 => 24,
                _ => 32,
            };
            let words = (0..8)
                .flat_map(|_| rng.next().to_le_bytes())
                .collect::<Vec<u8>>();
            let records = words.chunks(bits as usize / 8).map(<[u8]>::to_vec);
            (bits, records.collect())
        }
        _ => panic!("no values for datatype {code}"),
    }
}

/// The scale factors every datatype is tried with; NIfTI-1 stores them as float32.
fn scalings(nifti2: bool) -> Vec<(f64, f64)> {
    let nan = f64::NAN;
    let inf = f64::INFINITY;
    let mut s = vec![
        (1.0, 0.0),
        (1.0, -0.0),
        (0.0, 0.0),
        (0.0, 7.0),
        (-0.0, 3.0),
        (nan, 0.0),
        (nan, nan),
        (inf, 2.0),
        (-inf, 0.0),
        (inf, inf),
        (2.5, nan),
        (2.0, inf),
        (1.0, -inf),
        (2.5, -3.0),
        (-1.5, 0.25),
        (0.1, 0.3),
        (1.0, 7.0),
        (1.0, -0.25),
        (-1.0, 0.0),
        (-1.0, -0.0),
        (3.0, 0.0),
        (1e-30, 0.0),
        (1e-45, 0.0),
        (1e-3, 1e6),
        (3e38, 0.0),
        (3e38, -3e38),
        (1.7e38, 1e30),
    ];
    if nifti2 {
        s.extend([
            (0.1, 0.7),
            (1.0 / 3.0, -1e-3),
            // Products that overflow float32 but not float64.
            (1e200, 0.0),
            // Scaled ranges that overflow float64: nibabel computes in long double.
            (1e300, 0.5),
            (-1e300, 0.0),
            (1.5e306, 0.0),
            (1e306, 1.7e308),
            (2f64.powi(1000), -2f64.powi(1000)),
            (1e290, -1e300),
            (1.0, f64::MAX),
            (1e-300, f64::MAX),
        ]);
    }
    s
}

/// The datatypes with float views, then those without.
const CONVERTED: [i16; 10] = [2, 256, 4, 512, 8, 768, 1024, 1280, 16, 64];
const FLOAT128: i16 = 1536;
const COMPLEX: [i16; 2] = [32, 1792];
const RGB: [i16; 2] = [128, 2304];

/// Every case: each datatype in 2 byte orders x 2 versions x its scalings (all of
/// them, but two for complex and RGB data).
fn cases() -> Vec<Case> {
    let mut out = Vec::new();
    let codes = CONVERTED
        .iter()
        .chain(&[FLOAT128])
        .chain(&COMPLEX)
        .chain(&RGB);
    for &code in codes {
        for nifti2 in [false, true] {
            for big in [false, true] {
                let mut scales = scalings(nifti2);
                if COMPLEX.contains(&code) || RGB.contains(&code) {
                    scales = vec![(1.0, 0.0), (2.5, -3.0)];
                }
                for (k, (slope, inter)) in scales.into_iter().enumerate() {
                    let (bits, vals) = values(code, &mut Words::new(out.len() as u64 + 1));
                    let data = vals
                        .into_iter()
                        .flat_map(|mut b| {
                            if big {
                                b.reverse();
                            }
                            b
                        })
                        .collect();
                    let name = format!(
                        "dt{code}_n{}_{}_s{k}",
                        if nifti2 { 2 } else { 1 },
                        if big { "be" } else { "le" }
                    );
                    out.push(Case {
                        name,
                        nifti2,
                        big,
                        code,
                        bits,
                        slope,
                        inter,
                        data,
                    });
                }
            }
        }
    }
    out
}

/// For each image listed in argv[1], two lines in argv[2] (float32, then float64):
/// `ok HEX`, the bytes of `get_fdata(dtype=...)` in Fortran order and the image's
/// byte order, or `err MESSAGE` when nibabel cannot load the image or compute the data.
const NIBABEL: &str = r#"
import sys, warnings
import numpy as np, nibabel as nib
warnings.simplefilter("ignore")
print(nib.__version__, np.__version__)
out = open(sys.argv[2], "w")
def err(e, what):
    msg = f"{what}: {type(e).__name__}: {e}".replace("\n", " ")
    out.write(f"err {msg}\n")
for path in open(sys.argv[1]).read().split():
    try:
        img = nib.load(path)
    except Exception as e:
        err(e, "load")
        err(e, "load")
        continue
    big = img.header.endianness == ">"
    for dt in (np.float32, np.float64):
        try:
            a = img.get_fdata(dtype=dt, caching="unchanged")
            assert a.dtype == dt, a.dtype
            a = np.ascontiguousarray(a.reshape(-1, order="F"))
            if big:
                a = a.byteswap()
            out.write(f"ok {a.tobytes().hex()}\n")
        except Exception as e:
            err(e, "get_fdata")
"#;

fn python() -> PathBuf {
    let venv = std::env::var_os("NIFUSE_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv"));
    let py = venv.join("bin/python");
    assert!(
        py.exists(),
        "{} is missing: run scripts/setup-deps (this test compares with real nibabel)",
        py.display()
    );
    py
}

/// nibabel's answer for one image and target: the bytes, or its error.
fn parse_result(line: &str) -> Result<Vec<u8>, String> {
    match line.split_once(' ') {
        Some(("ok", hex)) => Ok((0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
            .collect()),
        Some(("err", msg)) => Err(msg.to_string()),
        _ => panic!("unexpected nibabel output line {line:?}"),
    }
}

#[test]
fn float_views_equal_nibabel_get_fdata_byte_for_byte() {
    let py = python();
    let dir = tempfile::tempdir().unwrap();
    let cases = cases();
    let mut list = String::new();
    let mut files = Vec::new();
    for c in &cases {
        let path = dir.path().join(format!("{}.nii", c.name));
        files.push(file_bytes(c));
        std::fs::write(&path, files.last().unwrap()).unwrap();
        list.push_str(&format!("{}\n", path.display()));
    }
    let (manifest, results) = (dir.path().join("manifest"), dir.path().join("results"));
    std::fs::write(&manifest, list).unwrap();
    let (ok, out, err) = common::run(
        Command::new(&py)
            .arg("-c")
            .arg(NIBABEL)
            .arg(&manifest)
            .arg(&results),
        Duration::from_secs(300),
    );
    assert!(ok, "nibabel failed:\n{out}\n{err}");
    let results = std::fs::read_to_string(&results).unwrap();
    let mut nibabel = results.lines().map(parse_result);

    let mut problems = Vec::new();
    let (mut compared, mut refused, mut complex) = (0, 0, 0);
    for (c, file) in cases.iter().zip(&files) {
        let header = Header::parse(file).unwrap();
        let dtype = datatype::from_code(c.code).unwrap();
        let data = &file[header.vox_offset() as usize..];
        for out in FloatType::ALL {
            let want = nibabel.next().expect("a nibabel result for every case");
            let ours = FloatConversion::new(&header, dtype, out);
            let what = format!(
                "{} -> {} (slope {:e}, inter {:e})",
                c.name,
                out.name(),
                c.slope,
                c.inter
            );
            match (want, ours) {
                (Ok(want), Ok(conv)) => {
                    let n = data.len() / conv.in_bytes_per_voxel();
                    let mut got = vec![0u8; n * conv.out_bytes_per_voxel()];
                    conv.convert(data, &mut got).unwrap();
                    compared += 1;
                    if got != want {
                        let diff = first_difference(&got, &want, out.bytes(), c.big);
                        problems.push(format!("{what}: {diff}"));
                    }
                }
                // nibabel drops the imaginary part (ComplexWarning); float views are
                // for real data only.
                (Ok(_), Err(why)) if COMPLEX.contains(&c.code) && why.contains("complex") => {
                    complex += 1
                }
                (Ok(_), Err(why)) => {
                    problems.push(format!("{what}: nibabel gives data, nifuse refuses: {why}"))
                }
                (Err(nib), Ok(_)) => {
                    problems.push(format!("{what}: nibabel fails ({nib}), nifuse converts"))
                }
                (Err(_), Err(_)) => refused += 1,
            }
        }
    }
    assert!(
        nibabel.next().is_none(),
        "nibabel gave more results than cases"
    );
    assert!(
        problems.is_empty(),
        "{} of {} conversions differ from nibabel ({}):\n{}",
        problems.len(),
        cases.len() * 2,
        out.trim(),
        problems[..problems.len().min(30)].join("\n")
    );
    // Where nibabel fails too: a finite slope with a non-finite intercept (3 scalings x
    // 2 versions x 2 byte orders x 2 targets per datatype), float128 and RGB throughout.
    let float128 = 2 * 2 * (scalings(false).len() + scalings(true).len());
    assert_eq!(
        refused,
        CONVERTED.len() * 3 * 8 + float128 + RGB.len() * 2 * 8,
        "refused"
    );
    assert_eq!(complex, COMPLEX.len() * 2 * 8, "complex");
    assert_eq!(compared + refused + complex, cases.len() * 2);
}

/// The first voxel where two float arrays differ, as bits.
fn first_difference(got: &[u8], want: &[u8], width: usize, big: bool) -> String {
    if got.len() != want.len() {
        return format!("{} bytes, nibabel {}", got.len(), want.len());
    }
    let word = |b: &[u8]| {
        let mut b = b.to_vec();
        if !big {
            b.reverse();
        }
        b.iter().map(|x| format!("{x:02x}")).collect::<String>()
    };
    let (i, (g, w)) = got
        .chunks(width)
        .zip(want.chunks(width))
        .enumerate()
        .find(|(_, (g, w))| g != w)
        .unwrap();
    let n = got
        .chunks(width)
        .zip(want.chunks(width))
        .filter(|(g, w)| g != w)
        .count();
    format!(
        "{n} voxels differ, first voxel {i}: nifuse {} nibabel {}",
        word(g),
        word(w)
    )
}
