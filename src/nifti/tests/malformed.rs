//! Every malformed input gives a `FormatError` with a one-line reason, never a panic.

use super::*;

fn layout_err(bytes: &[u8]) -> Option<FormatError> {
    ImageLayout::new(bytes, false).err()
}

#[test]
fn short_input() {
    let full = Build::new(Version::Nifti1, false).file();
    for n in [0, 3] {
        assert_eq!(
            Header::parse(&full[..n]).err(),
            Some(FormatError::Short { got: n, need: 4 })
        );
    }
    for n in [4, 100, 347] {
        assert_eq!(
            Header::parse(&full[..n]).err(),
            Some(FormatError::Short { got: n, need: 348 })
        );
    }
    let full = Build::new(Version::Nifti2, true).file();
    assert_eq!(
        Header::parse(&full[..539]).err(),
        Some(FormatError::Short {
            got: 539,
            need: 540
        })
    );
}

#[test]
fn wrong_sizeof_hdr() {
    for (value, big) in [(123, false), (0, false), (-1, false), (349, false)] {
        let b = Build::new(Version::Nifti1, big).int(0, 4, value).bytes();
        assert_eq!(
            Header::parse(&b).err(),
            Some(FormatError::SizeofHdr(value as i32))
        );
    }
}

#[test]
fn bad_magic() {
    let n1 = |m: &[u8]| Build::new(Version::Nifti1, false).raw_magic(m).bytes();
    let n2 = |m: &[u8]| Build::new(Version::Nifti2, true).raw_magic(m).bytes();
    for bytes in [
        n1(b"n+2\0"),
        n1(b"abc\0"),
        n1(b"n+1x"),
        n1(b"\0\0\0\0"),
        n2(b"n+1\0\r\n\x1a\n"),
        n2(b"n+2\0\n\r\x1a\n"),
        n2(b"n+2\0\0\0\0\0"),
    ] {
        assert!(matches!(
            Header::parse(&bytes),
            Err(FormatError::Magic { .. })
        ));
    }
}

#[test]
fn dim0_out_of_range() {
    for (v, big) in FORMATS {
        for d0 in [0, 1, 2, 8, -1, 300] {
            let b = Build::new(v, big).dims([d0, 2, 3, 4, 5, 1, 1, 1]).file();
            assert_eq!(layout_err(&b), Some(FormatError::Ndim(d0)), "dim[0] = {d0}");
        }
    }
}

#[test]
fn zero_or_negative_dims() {
    for (v, big) in FORMATS {
        for (index, value) in [(1, 0), (2, -3), (3, 0), (4, 0), (4, -1)] {
            let mut d = [4, 2, 3, 4, 5, 1, 1, 1];
            d[index] = value;
            let b = Build::new(v, big).dims(d).file();
            assert_eq!(layout_err(&b), Some(FormatError::Dim { index, value }));
        }
        let b = Build::new(v, big).dims([7, 2, 3, 4, 5, 6, 7, 0]).file();
        assert_eq!(
            layout_err(&b),
            Some(FormatError::Dim { index: 7, value: 0 })
        );
    }
}

#[test]
fn unknown_datatype_and_bitpix_mismatch() {
    for (v, big) in FORMATS {
        for code in [0, 77, -4, 3] {
            let b = Build::new(v, big).datatype(code, 16).file();
            assert_eq!(layout_err(&b), Some(FormatError::UnknownDatatype(code)));
        }
        let b = Build::new(v, big).datatype(4, 8).file();
        let want = FormatError::Bitpix {
            bitpix: 8,
            name: "int16",
            bits: 16,
        };
        assert_eq!(layout_err(&b), Some(want));
    }
}

#[test]
fn bad_vox_offset() {
    let n1 = |x: f64| layout_err(&Build::new(Version::Nifti1, false).vox_offset(x).file());
    assert!(matches!(
        n1(f64::NAN),
        Some(FormatError::VoxOffsetNotFinite(_))
    ));
    assert!(matches!(
        n1(f64::INFINITY),
        Some(FormatError::VoxOffsetNotFinite(_))
    ));
    assert_eq!(n1(-16.0), Some(FormatError::VoxOffsetNegative(-16.0)));
    assert_eq!(n1(352.5), Some(FormatError::VoxOffsetFraction(352.5)));
    assert_eq!(
        n1(348.0),
        Some(FormatError::VoxOffsetTooSmall {
            value: 348,
            min: 352
        })
    );
    assert_eq!(
        n1(0.0),
        Some(FormatError::VoxOffsetTooSmall { value: 0, min: 352 })
    );
    let max = MAX_VOX_OFFSET;
    assert_eq!(
        n1(1e9),
        Some(FormatError::VoxOffsetTooLarge { value: 1e9, max })
    );
    let n2 = |x: f64| layout_err(&Build::new(Version::Nifti2, true).vox_offset(x).file());
    assert_eq!(n2(-1.0), Some(FormatError::VoxOffsetNegative(-1.0)));
    assert_eq!(
        n2(540.0),
        Some(FormatError::VoxOffsetTooSmall {
            value: 540,
            min: 544
        })
    );
    assert!(matches!(
        n2(i64::MAX as f64),
        Some(FormatError::VoxOffsetTooLarge { .. })
    ));
    // A pair's vox_offset is an offset into the .img: 0 is fine there.
    let pair = Build::new(Version::Nifti1, false)
        .magic(b"ni1")
        .vox_offset(0.0)
        .bytes();
    assert!(ImageLayout::new(&pair, true).is_ok());
}

#[test]
fn sizes_that_overflow_u64() {
    let huge = 1 << 40;
    let b = Build::new(Version::Nifti2, false)
        .dims([3, huge, huge, 1 << 30, 1, 1, 1, 1])
        .file();
    assert_eq!(
        layout_err(&b),
        Some(FormatError::Overflow("voxels per volume"))
    );
    // 2^60 voxels of 256 bits: the bit count overflows.
    let b = Build::new(Version::Nifti2, false)
        .datatype(2048, 256)
        .dims([3, huge, 1 << 20, 1, 1, 1, 1, 1])
        .file();
    assert_eq!(
        layout_err(&b),
        Some(FormatError::Overflow("bits per volume"))
    );
    let b = Build::new(Version::Nifti2, true)
        .dims([7, 2, 2, 2, huge, huge, 1, 1])
        .file();
    assert_eq!(layout_err(&b), Some(FormatError::Overflow("volume count")));
    let b = Build::new(Version::Nifti2, true)
        .datatype(2048, 256)
        .dims([4, huge, 1, 1, 1 << 20, 1, 1, 1])
        .file();
    assert_eq!(
        layout_err(&b),
        Some(FormatError::Overflow("end of the voxel data"))
    );
    let m = i16::MAX.into();
    let b = Build::new(Version::Nifti1, true)
        .datatype(2048, 256)
        .dims([7, m, m, m, m, m, m, m])
        .file();
    assert!(matches!(layout_err(&b), Some(FormatError::Overflow(_))));
}

#[test]
fn malformed_extensions() {
    let ext = |esize: i32, tail: usize| {
        let mut b = vec![1, 0, 0, 0];
        b.extend_from_slice(&esize.to_le_bytes());
        b.extend_from_slice(&6i32.to_le_bytes());
        b.resize(4 + 8 + tail, 0);
        b
    };
    for esize in [0, 8, 24, -16, i32::MIN] {
        let want = FormatError::ExtensionSize { at: 4, esize };
        assert_eq!(
            parse_extensions(&ext(esize, 24), false),
            Err(want),
            "esize {esize}"
        );
    }
    let want = FormatError::ExtensionPastEnd {
        at: 4,
        need: 64,
        left: 32,
    };
    assert_eq!(parse_extensions(&ext(64, 24), false), Err(want));
    let mut trailing = ext(16, 8);
    trailing.extend_from_slice(&[1, 2, 3]);
    let want = FormatError::ExtensionPastEnd {
        at: 20,
        need: 8,
        left: 3,
    };
    assert_eq!(parse_extensions(&trailing, false), Err(want));
    // In a file, the same errors surface from the layout.
    let mut file = Build::new(Version::Nifti1, false)
        .vox_offset(352.0 + 32.0)
        .bytes();
    file.extend_from_slice(&ext(0, 24));
    assert!(matches!(
        layout_err(&file),
        Some(FormatError::ExtensionSize { esize: 0, .. })
    ));
}

#[test]
fn lenient_extension_cases() -> R {
    assert_eq!(parse_extensions(&[], false)?, vec![]);
    assert_eq!(parse_extensions(&[1, 0, 0], false)?, vec![]);
    assert_eq!(parse_extensions(&[0, 0, 0, 0, 0xff, 0xff], false)?, vec![]);
    assert_eq!(parse_extensions(&[1, 0, 0, 0], false)?, vec![]);
    // Zero padding up to vox_offset after the extender is no extension.
    let mut padded = vec![1, 0, 0, 0];
    padded.resize(4 + 32, 0);
    assert_eq!(parse_extensions(&padded, false)?, vec![]);
    let mut be = vec![1, 0, 0, 0];
    be.extend_from_slice(&16i32.to_be_bytes());
    be.extend_from_slice(&4i32.to_be_bytes());
    be.extend_from_slice(&[7; 8]);
    let exts = parse_extensions(&be, true)?;
    assert_eq!(
        exts,
        vec![Extension {
            code: 4,
            raw: be[4..].to_vec()
        }]
    );
    assert!(parse_extensions(&be, false).is_err());
    Ok(())
}

#[test]
fn messages_are_one_clear_line() {
    let cases = [
        (
            FormatError::SizeofHdr(123),
            "sizeof_hdr is 123, expected 348 or 540 (not a NIfTI header)",
        ),
        (
            FormatError::Ndim(2),
            "dim[0] is 2: nifuse needs 3 to 7 dimensions",
        ),
        (
            FormatError::UnknownDatatype(77),
            "datatype 77 is not a NIfTI datatype code",
        ),
        (
            FormatError::Bitpix {
                bitpix: 8,
                name: "int16",
                bits: 16,
            },
            "bitpix 8 disagrees with datatype int16 (16 bits)",
        ),
        (
            FormatError::VoxOffsetFraction(12.5),
            "vox_offset 12.5 is not a whole number",
        ),
    ];
    for (e, text) in cases {
        assert_eq!(e.to_string(), text);
    }
    let b = Build::new(Version::Nifti1, false)
        .raw_magic(b"ab\n\0")
        .bytes();
    let e = Header::parse(&b)
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(
        e.starts_with("magic is \"ab\\\\n\\\\x00\"") && !e.contains('\n'),
        "{e}"
    );
}

/// A small xorshift generator: deterministic pseudo-random mutations without a dependency.
fn xorshift(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

/// Random byte flips and truncations of valid files: every outcome is an error or a
/// layout whose volume header parses back and whose arithmetic holds.
#[test]
fn mutated_files_never_panic() {
    let mut seed = 0x9e37_79b9_7f4a_7c15;
    for (v, big) in FORMATS {
        let base = Build::new(v, big).with_extensions([1, 0, 0, 0], &[(6, 24), (4, 8)]);
        for _ in 0..3000 {
            let mut b = base.clone();
            for _ in 0..1 + xorshift(&mut seed) % 4 {
                let at = (xorshift(&mut seed) % b.len() as u64) as usize;
                b[at] = xorshift(&mut seed) as u8;
            }
            b.truncate((xorshift(&mut seed) % (b.len() as u64 + 40)) as usize);
            let pair = xorshift(&mut seed).is_multiple_of(2);
            if let Ok(l) = ImageLayout::new(&b, pair) {
                let h = Header::parse(l.vol_header()).map(|h| (h.dims()[0], h.vox_offset()));
                assert_eq!(h, Ok((3, l.vol_header().len() as f64)));
                assert_eq!(l.vol_header().len() % 16, 0);
                assert!(l.data_offset().checked_add(l.data_bytes()).is_some());
                let last = l.vol_source_range(l.n_vols() - 1);
                assert_eq!(last.map(|r| r.end), Some(l.data_offset() + l.data_bytes()));
            }
        }
    }
}
