//! Parsing, accessors, patchers and the synthesized volume header.

use super::*;

#[test]
fn round_trip_every_format_and_datatype() -> R {
    for (v, big) in FORMATS {
        for dt in datatype::ALL {
            let input = Build::new(v, big).datatype(dt.code, dt.bits as i16).file();
            let h = Header::parse(&input)?;
            assert_eq!(h.bytes(), &input[..off(v).len]);
            assert_eq!((h.version(), h.big_endian(), h.len()), (v, big, off(v).len));
            assert_eq!((h.datatype_code(), h.bitpix()), (dt.code, dt.bits as i16));
            assert_eq!(h.dims(), [4, 2, 3, 4, 5, 1, 1, 1]);
            assert_eq!(h.vox_offset(), off(v).len as f64 + 4.0);
            assert!(!h.is_pair());
            let layout = ImageLayout::new(&input, false)?;
            assert_eq!(layout.dtype(), dt);
            assert_eq!(
                layout.vol_bytes(),
                24 * u64::from(dt.bits) / 8,
                "{}",
                dt.name
            );
        }
    }
    Ok(())
}

#[test]
fn accessors_decode_in_the_header_byte_order() -> R {
    for (v, big) in FORMATS {
        let o = off(v);
        let (w, cw) = if v == Version::Nifti1 { (4, 2) } else { (8, 4) };
        let pix = [1.0, 2.5, 3.0, -4.0, 0.75, 6.0, 7.0, 8.0];
        let b = pix
            .iter()
            .enumerate()
            .fold(Build::new(v, big), |b, (i, p)| {
                b.float(o.pixdim + i * w, *p)
            });
        let b = b.float(o.scl_slope, 2.0).float(o.scl_inter, -1.5);
        let b = b
            .int(o.qform_code, cw, 1)
            .int(o.sform_code, cw, 4)
            .intent(1000);
        let h = Header::parse(&b.bytes())?;
        assert_eq!(h.pixdim(), pix);
        assert_eq!((h.scl_slope(), h.scl_inter()), (2.0, -1.5));
        assert_eq!(
            (h.qform_code(), h.sform_code(), h.intent_code()),
            (1, 4, 1000)
        );
        let first = if big {
            [0, 0]
        } else {
            [o.len as u8, (o.len >> 8) as u8]
        };
        assert_eq!(h.bytes()[..2], first);
    }
    Ok(())
}

#[test]
fn pair_magic_is_recognised() -> R {
    for (v, big) in FORMATS {
        let h = Header::parse(&Build::new(v, big).magic(b"ni1").bytes())?;
        assert!(h.is_pair());
    }
    Ok(())
}

#[test]
fn patchers_touch_only_their_field() -> R {
    for (v, big) in FORMATS {
        let o = off(v);
        let (dw, iw, vw) = if v == Version::Nifti1 {
            (2, 2, 4)
        } else {
            (8, 4, 8)
        };
        let src = Build::new(v, big).magic(b"ni1").intent(2001).bytes();
        let orig = Header::parse(&src)?;

        let mut h = orig.clone();
        h.set_dims([3, 7, 8, 9, 1, 1, 1, 1]);
        assert_eq!(h.dims(), [3, 7, 8, 9, 1, 1, 1, 1]);
        assert!(within(&diff(&src, h.bytes()), o.dim..o.dim + 8 * dw));

        let mut h = orig.clone();
        h.set_vox_offset(1 << 20);
        assert_eq!(h.vox_offset(), f64::from(1 << 20));
        assert!(within(
            &diff(&src, h.bytes()),
            o.vox_offset..o.vox_offset + vw
        ));

        let mut h = orig.clone();
        h.set_intent_code(0);
        assert_eq!(h.intent_code(), 0);
        let changed = diff(&src, h.bytes());
        assert!(!changed.is_empty() && within(&changed, o.intent_code..o.intent_code + iw));

        let mut h = orig.clone();
        h.set_single_file_magic();
        assert!(!h.is_pair());
        assert_eq!(diff(&src, h.bytes()), vec![o.magic + 1]);
        assert_eq!(
            &h.bytes()[o.magic..o.magic + 3],
            if v == Version::Nifti1 { b"n+1" } else { b"n+2" }
        );
    }
    Ok(())
}

#[test]
fn nifti1_dims_saturate_to_i16() -> R {
    let mut h = Header::parse(&Build::new(Version::Nifti1, false).bytes())?;
    h.set_dims([3, 70000, -70000, 4, 1, 1, 1, 1]);
    assert_eq!(h.dims(), [3, 32767, -32768, 4, 1, 1, 1, 1]);
    Ok(())
}

/// The vol header, with every byte of the source header checked: only dims, intent
/// (when 2001), magic and vox_offset may differ.
fn check_vol_header(v: Version, big: bool, intent: i32) -> R {
    let o = off(v);
    let (dw, iw, vw) = if v == Version::Nifti1 {
        (2, 2, 4)
    } else {
        (8, 4, 8)
    };
    let src = Build::new(v, big)
        .magic(b"ni1")
        .dims([5, 2, 3, 4, 5, 6, 9, 9])
        .intent(intent)
        .bytes();
    let layout = ImageLayout::new(&src, true)?;
    let vh = layout.vol_header();
    assert_eq!(vh.len(), o.len + 4);
    assert_eq!(vh.len() % 16, 0);
    assert_eq!(&vh[o.len..], &[0, 0, 0, 0]);
    let h = Header::parse(vh)?;
    assert_eq!(h.dims(), [3, 2, 3, 4, 1, 1, 1, 1]);
    assert_eq!(h.intent_code(), if intent == 2001 { 0 } else { intent });
    assert!(!h.is_pair());
    assert_eq!(h.vox_offset(), vh.len() as f64);
    for i in diff(&src, h.bytes()) {
        let allowed = (o.dim..o.dim + 8 * dw).contains(&i)
            || (o.intent_code..o.intent_code + iw).contains(&i)
            || (o.vox_offset..o.vox_offset + vw).contains(&i)
            || i == o.magic + 1;
        assert!(allowed, "byte {i} changed");
    }
    assert_eq!(layout.vol_file_size(), vh.len() as u64 + layout.vol_bytes());
    Ok(())
}

#[test]
fn vol_header_rules() -> R {
    for (v, big) in FORMATS {
        check_vol_header(v, big, 2001)?;
        check_vol_header(v, big, 1000)?;
        check_vol_header(v, big, 0)?;
    }
    Ok(())
}

#[test]
fn vol_header_keeps_extensions_but_afni() -> R {
    for (v, big) in FORMATS {
        let hlen = off(v).len;
        let file =
            Build::new(v, big).with_extensions([1, 9, 8, 7], &[(6, 24), (ECODE_AFNI, 40), (2, 8)]);
        let layout = ImageLayout::new(&file, false)?;
        assert_eq!(layout.data_offset(), file.len() as u64);
        let vh = layout.vol_header();
        // Source: header, extender, comment (32), AFNI (48), dicom (16).
        let (comment, dicom) = (hlen + 4..hlen + 36, hlen + 84..hlen + 100);
        let mut want = file[hlen..hlen + 4].to_vec();
        want.extend_from_slice(&file[comment]);
        want.extend_from_slice(&file[dicom]);
        assert_eq!(&vh[hlen..], &want[..]);
        assert_eq!(Header::parse(vh)?.vox_offset(), vh.len() as f64);
        assert_eq!(vh.len() % 16, 0);
        let kept = parse_extensions(&vh[hlen..], big)?;
        assert_eq!(kept.iter().map(|e| e.code).collect::<Vec<_>>(), vec![6, 2]);

        let only_afni = Build::new(v, big).with_extensions([1, 0, 0, 0], &[(ECODE_AFNI, 24)]);
        let vh = ImageLayout::new(&only_afni, false)?.vol_header().to_vec();
        assert_eq!(vh.len(), hlen + 4);
        assert_eq!(&vh[hlen..], &[0, 0, 0, 0]);
    }
    Ok(())
}
