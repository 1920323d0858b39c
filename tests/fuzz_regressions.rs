//! Fuzz regressions: every saved input in `tests/fuzz_inputs/<target>/` (crashes
//! found by `scripts/fuzz`) replayed through the same invariant checks as the
//! fuzz target, the generated seeds, and hand-made malformed headers that must be
//! refused with an error, never a panic.

mod fuzz_checks;

use fuzz_checks::{
    Input, check, check_layout_new, generate_image_start, make_extension, make_header,
};
use nifuse::nifti::{FormatError, ImageLayout, NIFTI1, NIFTI2};

const TARGETS: [&str; 4] = ["header", "layout", "gzip_stream", "gzip_index"];

#[test]
fn saved_fuzz_inputs_pass_their_checks() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz_inputs");
    let mut n = 0;
    for t in TARGETS {
        let Ok(dir) = std::fs::read_dir(root.join(t)) else {
            continue;
        };
        let mut files: Vec<_> = dir.filter_map(|e| e.ok()).map(|e| e.path()).collect();
        files.sort();
        for f in files {
            let bytes = std::fs::read(&f).unwrap();
            eprintln!("replaying {}", f.display());
            check(t, &bytes);
            n += 1;
        }
    }
    eprintln!("{n} saved fuzz inputs replayed");
}

#[test]
fn generated_seeds_pass_their_checks() {
    let seeds = fuzz_checks::seeds();
    assert!(seeds.len() > 20);
    for (t, name, bytes) in seeds {
        eprintln!("seed {t}/{name}");
        check(t, &bytes);
    }
}

/// A valid single-file NIfTI-1 start: 4D int16 64x64x30x10.
fn valid_n1() -> Vec<u8> {
    let mut b = make_header(
        false,
        false,
        false,
        [4, 64, 64, 30, 10, 1, 1, 1],
        4,
        16,
        352.0,
    );
    b.extend_from_slice(&[0; 4]);
    b
}

fn refused(head: &[u8], pair: bool) -> FormatError {
    // Run the full checks too (they assert the error is a one-line message).
    assert!(check_layout_new(head, pair).is_none());
    ImageLayout::new(head, pair).expect_err("malformed header accepted")
}

#[test]
fn the_valid_base_is_accepted() {
    let l = check_layout_new(&valid_n1(), false).expect("valid header refused");
    assert_eq!(l.n_vols(), 10);
    assert_eq!(l.vol_bytes(), 64 * 64 * 30 * 2);
    assert_eq!(l.vol_header().len(), 352);
}

#[test]
fn empty_and_short_inputs_are_errors() {
    for len in [0, 1, 3, 4, 100, 347] {
        let b = &valid_n1()[..len];
        for pair in [false, true] {
            let e = refused(b, pair);
            assert!(matches!(e, FormatError::Short { .. }), "len {len}: {e:?}");
        }
    }
    // NIfTI-2 cut inside its header.
    let b = make_header(true, false, false, [3, 2, 2, 2, 1, 1, 1, 1], 2, 8, 544.0);
    assert!(matches!(
        refused(&b[..539], false),
        FormatError::Short { .. }
    ));
    // Header complete but the bytes up to vox_offset are missing.
    let mut b = valid_n1();
    b.truncate(348);
    assert!(matches!(refused(&b, false), FormatError::NeedMore(352)));
}

#[test]
fn wrong_sizeof_hdr_is_an_error() {
    for v in [0i32, 347, 349, 541, -348, i32::MAX] {
        let mut b = valid_n1();
        b[..4].copy_from_slice(&v.to_le_bytes());
        assert!(
            matches!(refused(&b, false), FormatError::SizeofHdr(_)),
            "sizeof_hdr {v}"
        );
    }
    // The right size in the wrong table: 540 with a NIfTI-1 body is short / bad magic.
    let mut b = valid_n1();
    b[..4].copy_from_slice(&540i32.to_le_bytes());
    refused(&b, false);
}

#[test]
fn bad_dims_are_errors() {
    let t = &NIFTI1;
    let with_dims = |dims: [i64; 8]| make_header(false, false, false, dims, 4, 16, 352.0);
    for dims in [
        [2, 4, 4, 1, 1, 1, 1, 1],      // too few dims
        [8, 4, 4, 4, 4, 1, 1, 1],      // too many
        [-1, 4, 4, 4, 1, 1, 1, 1],     // negative dim[0]
        [4, 4, -4, 4, 2, 1, 1, 1],     // negative dim
        [4, 4, 4, 0, 2, 1, 1, 1],      // zero dim
        [4, 4, 4, 4, -32768, 1, 1, 1], // most negative i16
    ] {
        let mut b = with_dims(dims);
        b.extend_from_slice(&[0; 4]);
        let e = refused(&b, false);
        assert!(
            matches!(e, FormatError::Ndim(_) | FormatError::Dim { .. }),
            "{dims:?}: {e:?}"
        );
    }
    // Dims past dim[0] are ignored, even if nonsense.
    let mut b = with_dims([3, 4, 4, 4, -5, 0, -7, 9]);
    b.extend_from_slice(&[0; 4]);
    assert_eq!(
        check_layout_new(&b, false)
            .expect("dims past dim[0] matter")
            .n_vols(),
        1
    );
    let _ = t;
}

#[test]
fn huge_dims_overflow_is_an_error() {
    // NIfTI-2 (i64 dims): 2^62-sized dims overflow voxels, bits, volume count, end of data.
    let big = 1i64 << 62;
    for dims in [
        [3, big, big, 2, 1, 1, 1, 1],
        [3, big, 1, 1, 1, 1, 1, 1],   // voxels fit, bits don't
        [7, 1, 1, 1, big, big, 4, 1], // volume count
        [4, 1 << 20, 1 << 20, 1, 1 << 22, 1, 1, 1], // vol_bytes * n_vols
        [3, i64::MAX, 1, 1, 1, 1, 1, 1],
    ] {
        let mut b = make_header(true, false, false, dims, 64, 64, 544.0);
        b.extend_from_slice(&[0; 4]);
        b.resize(544, 0);
        let e = refused(&b, false);
        assert!(matches!(e, FormatError::Overflow(_)), "{dims:?}: {e:?}");
    }
    // NIfTI-1 maximum dims are fine (no overflow with i16 dims).
    let mut b = make_header(
        false,
        false,
        false,
        [7, 32767, 32767, 32767, 32767, 32767, 32767, 32767],
        2048,
        256,
        352.0,
    );
    b.extend_from_slice(&[0; 4]);
    let r = ImageLayout::new(&b, false);
    if let Ok(l) = &r {
        fuzz_checks::check_layout(&b, false, l);
    }
}

/// A vox_offset value and a check of the error it must give.
type VoxOffsetCase = (f64, fn(&FormatError) -> bool);

#[test]
fn bad_vox_offset_is_an_error() {
    let cases: [VoxOffsetCase; 7] = [
        (f64::NAN, |e| {
            matches!(e, FormatError::VoxOffsetNotFinite(_))
        }),
        (f64::INFINITY, |e| {
            matches!(e, FormatError::VoxOffsetNotFinite(_))
        }),
        (-16.0, |e| matches!(e, FormatError::VoxOffsetNegative(_))),
        (352.5, |e| matches!(e, FormatError::VoxOffsetFraction(_))),
        (0.0, |e| matches!(e, FormatError::VoxOffsetTooSmall { .. })),
        (351.0, |e| {
            matches!(e, FormatError::VoxOffsetTooSmall { .. })
        }),
        (1e12, |e| matches!(e, FormatError::VoxOffsetTooLarge { .. })),
    ];
    for (vo, ok) in cases {
        let mut b = make_header(false, false, false, [4, 2, 2, 2, 2, 1, 1, 1], 2, 8, vo);
        b.extend_from_slice(&[0; 4]);
        let e = refused(&b, false);
        assert!(ok(&e), "vox_offset {vo}: {e:?}");
    }
    // Past the end of what was read: NeedMore, then accepted once the bytes are there.
    let mut b = make_header(false, false, false, [4, 2, 2, 2, 2, 1, 1, 1], 2, 8, 4096.0);
    b.extend_from_slice(&[0; 4]);
    assert!(matches!(refused(&b, false), FormatError::NeedMore(4096)));
    b.resize(4096, 0);
    assert!(check_layout_new(&b, false).is_some());
    // NIfTI-2 i64 vox_offset: negative and huge.
    for vo in [-1.0, 9.0e18] {
        let mut b = make_header(true, false, false, [3, 2, 2, 2, 1, 1, 1, 1], 2, 8, vo);
        b.extend_from_slice(&[0; 4]);
        refused(&b, false);
    }
}

#[test]
fn unknown_datatype_and_bitpix_mismatch_are_errors() {
    for code in [0i16, 3, 77, -1, i16::MAX] {
        let mut b = make_header(
            false,
            false,
            false,
            [3, 2, 2, 2, 1, 1, 1, 1],
            code,
            8,
            352.0,
        );
        b.extend_from_slice(&[0; 4]);
        assert!(
            matches!(refused(&b, false), FormatError::UnknownDatatype(_)),
            "code {code}"
        );
    }
    for (code, bitpix) in [(4i16, 8i16), (16, 64), (2, 0), (128, 32), (1, 8)] {
        let mut b = make_header(
            false,
            false,
            false,
            [3, 2, 2, 2, 1, 1, 1, 1],
            code,
            bitpix,
            352.0,
        );
        b.extend_from_slice(&[0; 4]);
        assert!(
            matches!(refused(&b, false), FormatError::Bitpix { .. }),
            "{code}/{bitpix}"
        );
    }
    // 1-bit volumes that are not whole bytes.
    let mut b = make_header(false, false, false, [3, 3, 1, 1, 1, 1, 1, 1], 1, 1, 352.0);
    b.extend_from_slice(&[0; 4]);
    assert!(matches!(
        refused(&b, false),
        FormatError::VolumeNotByteAligned { .. }
    ));
}

#[test]
fn bad_magic_and_extensions_are_errors() {
    let mut b = valid_n1();
    b[NIFTI1.magic.offset..NIFTI1.magic.offset + 4].copy_from_slice(b"n+2\0");
    assert!(matches!(refused(&b, false), FormatError::Magic { .. }));
    let mut b = make_header(true, false, false, [3, 2, 2, 2, 1, 1, 1, 1], 2, 8, 544.0);
    b[NIFTI2.magic.offset + 7] = 0;
    b.extend_from_slice(&[0; 4]);
    assert!(matches!(refused(&b, false), FormatError::Magic { .. }));
    // Extension sizes: not a multiple of 16, zero, negative, past vox_offset.
    for esize in [15i32, 0, -16, 17, 4096] {
        let mut b = make_header(false, false, false, [3, 2, 2, 2, 1, 1, 1, 1], 2, 8, 384.0);
        b.extend_from_slice(&[1, 0, 0, 0]);
        let mut e = make_extension(32, 6, false, 0xee);
        e[..4].copy_from_slice(&esize.to_le_bytes());
        b.extend_from_slice(&e);
        b.resize(384, 0);
        let e = refused(&b, false);
        assert!(
            matches!(
                e,
                FormatError::ExtensionSize { .. } | FormatError::ExtensionPastEnd { .. }
            ),
            "esize {esize}: {e:?}"
        );
    }
}

#[test]
fn layout_target_edge_inputs() {
    // Every short prefix of a structured input is a valid input to the layout target.
    let full: Vec<u8> = (0u8..=255).cycle().take(400).collect();
    for n in 0..full.len() {
        fuzz_checks::check_layout_target(&full[..n]);
        let mut inp = Input::new(&full[..n]);
        let _ = generate_image_start(&mut inp);
    }
}

#[test]
fn gzip_stream_edge_inputs() {
    let seed = [0u8; 9];
    for gz in [
        &b""[..],
        b"\x1f",
        b"\x1f\x8b",
        b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03",
        b"\x1f\x8b\x08\xff\x00\x00\x00\x00\x00\x03\x03\x00",
        b"\x1f\x8b\x07\x00\x00\x00\x00\x00\x00\x03\x03\x00\x00\x00\x00\x00\x00\x00\x00\x00",
        b"\x1f\x8b\x08\x04\x00\x00\x00\x00\x00\x03\xff\xff",
        b"not gzip at all",
    ] {
        fuzz_checks::check_gzip_stream(&[&seed[..], gz].concat());
    }
    // A good stream with its CRC-32 flipped: never served as complete.
    let mut gz = fuzz_checks::gzip_bytes(b"some bytes some bytes", 1, 1 << 20, 6);
    let n = gz.len();
    gz[n - 8] ^= 1;
    fuzz_checks::check_gzip_stream(&[&seed[..], &gz].concat());
}

#[test]
fn gzip_index_edge_inputs() {
    for data in [
        &b""[..],
        b"\x00",
        b"\x00\x00\x00\x00\x00\x00\x00\x00\x00NIFUSEGZ",
        b"\x01",
        b"\x02",
    ] {
        fuzz_checks::check_gzip_index(data);
    }
}
