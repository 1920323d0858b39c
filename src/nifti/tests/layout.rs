//! Volume geometry, source ranges and read plans.

use super::*;

#[test]
fn pair_headers_take_extensions_to_the_end_of_the_hdr() -> R {
    for (v, big) in FORMATS {
        let mut hdr = Build::new(v, big)
            .magic(b"ni1")
            .with_extensions([1, 0, 0, 0], &[(6, 8)]);
        hdr = Build { buf: hdr, v, big }.vox_offset(0.0).bytes();
        let layout = ImageLayout::new(&hdr, true)?;
        assert_eq!(layout.data_offset(), 0);
        assert_eq!(layout.vol_header().len(), off(v).len + 4 + 16);
        assert_eq!(layout.vol_source_range(0), Some(0..48));
    }
    Ok(())
}

#[test]
fn short_single_file_head_asks_for_more() -> R {
    for (v, big) in FORMATS {
        let hlen = off(v).len;
        let file = Build::new(v, big).with_extensions([1, 0, 0, 0], &[(6, 40)]);
        let want = hlen as u64 + 4 + 48;
        for cut in [hlen, hlen + 4, file.len() - 1] {
            assert_eq!(
                ImageLayout::new(&file[..cut], false).err(),
                Some(FormatError::NeedMore(want))
            );
        }
        let layout = ImageLayout::new(&file, false)?;
        assert_eq!(layout.data_offset(), want);
    }
    Ok(())
}

#[test]
fn layout_math_for_3d_to_7d() -> R {
    let cases: [([i64; 8], u64, Vec<i64>); 5] = [
        ([3, 2, 3, 4, 9, 9, 9, 9], 1, vec![2, 3, 4]),
        ([4, 2, 3, 4, 5, 0, -1, 9], 5, vec![2, 3, 4, 5]),
        ([5, 2, 3, 4, 5, 6, 0, 0], 30, vec![2, 3, 4, 5, 6]),
        ([7, 2, 3, 4, 5, 6, 7, 8], 1680, vec![2, 3, 4, 5, 6, 7, 8]),
        ([4, 1, 1, 1, 1, 1, 1, 1], 1, vec![1, 1, 1, 1]),
    ];
    for (v, big) in FORMATS {
        for (dims, n_vols, shape) in &cases {
            let file = Build::new(v, big).dims(*dims).file();
            let l = ImageLayout::new(&file, false)?;
            let vol_bytes = (dims[1] * dims[2] * dims[3] * 2) as u64;
            let start = off(v).len as u64 + 4;
            assert_eq!(l.shape(), *shape);
            assert_eq!(
                (l.n_vols(), l.vol_bytes(), l.data_offset()),
                (*n_vols, vol_bytes, start)
            );
            assert_eq!(l.data_bytes(), n_vols * vol_bytes);
            assert_eq!(l.vol_file_size(), start + vol_bytes);
            assert_eq!(l.header().bytes(), &file[..off(v).len]);
            assert_eq!(l.vol_source_range(0), Some(start..start + vol_bytes));
            let last = n_vols - 1;
            let end = start + n_vols * vol_bytes;
            assert_eq!(l.vol_source_range(last), Some(end - vol_bytes..end));
            assert_eq!(l.vol_source_range(*n_vols), None);
            assert_eq!(l.vol_source_range(u64::MAX), None);
        }
    }
    Ok(())
}

#[test]
fn binary_volumes_need_whole_bytes() -> R {
    let file = Build::new(Version::Nifti1, false)
        .datatype(1, 1)
        .dims([4, 2, 2, 2, 3, 1, 1, 1])
        .file();
    let l = ImageLayout::new(&file, false)?;
    assert_eq!((l.vol_bytes(), l.n_vols()), (1, 3));
    let file = Build::new(Version::Nifti1, false)
        .datatype(1, 1)
        .dims([4, 3, 3, 3, 3, 1, 1, 1])
        .file();
    assert_eq!(
        ImageLayout::new(&file, false).err(),
        Some(FormatError::VolumeNotByteAligned {
            voxels: 27,
            bits: 1
        })
    );
    Ok(())
}

/// A 2x3x4x5 int16 NIfTI-1 image: 352-byte volume header, 48-byte volumes, so
/// `vol_K.nii` is 400 bytes and volume 2 lies at 448..496 in the source.
fn small() -> Result<ImageLayout, FormatError> {
    ImageLayout::new(&Build::new(Version::Nifti1, false).file(), false)
}

fn plan(header: std::ops::Range<usize>, data: std::ops::Range<u64>) -> ReadPlan {
    ReadPlan { header, data }
}

#[test]
fn plan_read_at_every_boundary() -> R {
    let l = small()?;
    assert_eq!(
        (l.vol_header().len(), l.vol_bytes(), l.vol_file_size()),
        (352, 48, 400)
    );
    assert_eq!(l.vol_source_range(2), Some(448..496));
    let cases = [
        ((0, 10), plan(0..10, 0..0)),
        ((100, 10), plan(100..110, 0..0)),
        ((340, 20), plan(340..352, 448..456)),
        ((351, 1), plan(351..352, 0..0)),
        ((351, 2), plan(351..352, 448..449)),
        ((352, 10), plan(0..0, 448..458)),
        ((390, 20), plan(0..0, 486..496)),
        ((399, 1), plan(0..0, 495..496)),
        ((0, 400), plan(0..352, 448..496)),
        ((0, u32::MAX), plan(0..352, 448..496)),
        ((400, 10), ReadPlan::default()),
        ((401, 10), ReadPlan::default()),
        ((u64::MAX, u32::MAX), ReadPlan::default()),
        ((10, 0), ReadPlan::default()),
        ((352, 0), ReadPlan::default()),
    ];
    for ((offset, size), want) in cases {
        assert_eq!(
            l.plan_read(2, offset, size),
            want,
            "read {size} at {offset}"
        );
    }
    assert_eq!(l.plan_read(5, 0, 10), ReadPlan::default());
    assert_eq!(l.plan_read(u64::MAX, 0, 10), ReadPlan::default());
    Ok(())
}

/// Every read of every volume, assembled from its plan, equals the same slice of the
/// volume file built the slow way: vol_header followed by the volume's source bytes.
#[test]
fn plans_reassemble_the_volume_files() -> R {
    let l = small()?;
    let source: Vec<u8> = (0..l.data_offset() + l.data_bytes())
        .map(|i| (i * 31 % 251) as u8)
        .collect();
    for k in 0..l.n_vols() {
        let range = l.vol_source_range(k).ok_or(FormatError::NeedMore(k))?;
        let mut file = l.vol_header().to_vec();
        file.extend_from_slice(&source[range.start as usize..range.end as usize]);
        assert_eq!(file.len() as u64, l.vol_file_size());
        for offset in 0..=file.len() + 2 {
            for size in [0, 1, 2, 15, 16, 47, 48, 49, 351, 352, 353, 400, 4096] {
                let p = l.plan_read(k, offset as u64, size);
                let mut got = l.vol_header()[p.header.clone()].to_vec();
                got.extend_from_slice(&source[p.data.start as usize..p.data.end as usize]);
                let end = (offset + size as usize).min(file.len());
                let want = file.get(offset..end).unwrap_or_default();
                assert_eq!(got, want, "vol {k}, read {size} at {offset}");
            }
        }
    }
    Ok(())
}
