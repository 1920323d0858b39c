//! The hostile-input corpus of `mount_hostile.rs`: malformed images built
//! byte by byte, each with a model of what its volumes must hold, computed
//! without nifuse.
#![allow(dead_code)]

use std::fs;
use std::path::Path;

use super::common::*;

// ---------------------------------------------------------------------------
// Building the corpus
// ---------------------------------------------------------------------------

pub fn put_i16(h: &mut [u8], at: usize, v: i16) {
    h[at..at + 2].copy_from_slice(&v.to_le_bytes());
}
pub fn put_i32(h: &mut [u8], at: usize, v: i32) {
    h[at..at + 4].copy_from_slice(&v.to_le_bytes());
}
pub fn put_f32(h: &mut [u8], at: usize, v: f32) {
    h[at..at + 4].copy_from_slice(&v.to_le_bytes());
}

/// A little-endian NIfTI-2 single file (`n+2`): `dims` (dim[0] = dims.len()),
/// datatype, bitpix, `vox_offset`, then `data` right after the 544-byte head.
pub fn nifti2(dims: &[i64], datatype: i16, bitpix: i16, vox_offset: i64, data: &[u8]) -> Vec<u8> {
    let mut h = vec![0u8; 544];
    h[0..4].copy_from_slice(&540i32.to_le_bytes());
    h[4..12].copy_from_slice(b"n+2\0\r\n\x1a\n");
    h[12..14].copy_from_slice(&datatype.to_le_bytes());
    h[14..16].copy_from_slice(&bitpix.to_le_bytes());
    h[16..24].copy_from_slice(&(dims.len() as i64).to_le_bytes());
    for i in 0..7 {
        let d = dims.get(i).copied().unwrap_or(1);
        h[24 + 8 * i..32 + 8 * i].copy_from_slice(&d.to_le_bytes());
    }
    for i in 0..8 {
        h[104 + 8 * i..112 + 8 * i].copy_from_slice(&1f64.to_le_bytes());
    }
    h[168..176].copy_from_slice(&vox_offset.to_le_bytes());
    h[176..184].copy_from_slice(&1f64.to_le_bytes());
    h[240..252].copy_from_slice(b"nifuse tests");
    h.extend_from_slice(data);
    h
}

/// What nifuse may do with an entry.
pub enum Expect {
    /// A valid image: it must have a `.d` and every volume must read right.
    Split(Model),
    /// Doubtful input: no `.d` (then the file reads back identical), or a `.d`
    /// whose volumes follow `Model` (right bytes, or EIO/ENOENT).
    Either(Model),
    /// Not an image nifuse can split: no `.d`, reads back identical.
    Plain,
    /// A non-regular entry (FIFO, directory, symlink): no `.d`; symlinks keep their target.
    Special,
}

/// What the volumes of an image must hold, computed independently of nifuse.
#[derive(Clone)]
pub struct Model {
    pub nifti2: bool,
    /// Offset of voxel data in the decoded data stream.
    pub voxoff: u128,
    pub vol_bytes: u128,
    pub n_vols: u128,
    /// The decoded data stream (the file itself, the `.img`, or the gunzipped bytes).
    pub decoded: Vec<u8>,
    /// `decoded` is exactly what is there: a volume entirely inside it must read
    /// normally (SPEC 6). False for damaged gzip: EIO is then always allowed.
    pub exact: bool,
}

impl Model {
    pub fn new(
        nifti2: bool,
        voxoff: u128,
        vol_bytes: u128,
        n_vols: u128,
        decoded: Vec<u8>,
        exact: bool,
    ) -> Model {
        Model {
            nifti2,
            voxoff,
            vol_bytes,
            n_vols,
            decoded,
            exact,
        }
    }
    /// The volume-number width of the `vol_K.nii` names.
    pub fn width(&self) -> usize {
        (self.n_vols.saturating_sub(1)).to_string().len().max(4)
    }
    /// The decoded bytes `from..from+len` of the data stream, if all present.
    pub fn bytes(&self, from: u128, len: u128) -> Option<&[u8]> {
        let end = from.checked_add(len)?;
        if end > self.decoded.len() as u128 {
            return None;
        }
        Some(&self.decoded[from as usize..end as usize])
    }
}

pub struct Case {
    /// Path relative to SOURCE; its stem is unique in the corpus, so it can be
    /// looked for in the log.
    pub name: String,
    pub expect: Expect,
    /// Whether the daemon log must name it (bad files).
    pub logged: bool,
    /// Reading it may kill or hang a careless daemon: checked last.
    pub dangerous: bool,
}

pub fn case(name: &str, expect: Expect, logged: bool) -> Case {
    Case {
        name: name.into(),
        expect,
        logged,
        dangerous: false,
    }
}

pub const NX: i16 = 4;
pub const NT: i16 = 6;
pub const VOL: usize = (NX as usize).pow(3) * 2;

/// Writes the corpus under `src` (and a sibling `outside/` directory) and
/// returns what is expected of each entry.
pub fn build_corpus(src: &Path, bombs: bool) -> Vec<Case> {
    let mut cases = Vec::new();
    let w = |name: &str, bytes: &[u8]| fs::write(src.join(name), bytes).unwrap();
    let (img, _) = image4d(NX, NX, NX, NT, 40);
    let int16 = |decoded: Vec<u8>, voxoff: u128| {
        Model::new(false, voxoff, VOL as u128, NT as u128, decoded, true)
    };

    // Valid images, as controls and as the gzip-by-magic cases.
    w("v01_good.nii", &img);
    cases.push(case(
        "v01_good.nii",
        Expect::Split(int16(img.clone(), 352)),
        false,
    ));
    w("v02_fake_gz.nii.gz", &img);
    cases.push(case(
        "v02_fake_gz.nii.gz",
        Expect::Split(int16(img.clone(), 352)),
        false,
    ));
    w("v03_real_gz.nii", &gzip(&img));
    cases.push(case(
        "v03_real_gz.nii",
        Expect::Split(int16(img.clone(), 352)),
        false,
    ));

    // Huge dimensions. NIfTI-1 with i16::MAX in every dim (voxel count overflows
    // u64 when multiplied by the volume count).
    let huge_dims = [i16::MAX; 7];
    let huge = nifti1(&huge_dims, 4, 16, 0, &bytes(1000, 41));
    let m = |d: Vec<u8>, exact| {
        let e = i16::MAX as u128;
        Model::new(false, 352, e * e * e * 2, e * e * e * e, d, exact)
    };
    w("m01_huge_i16.nii", &huge);
    cases.push(case(
        "m01_huge_i16.nii",
        Expect::Either(m(huge.clone(), true)),
        true,
    ));
    w("m02_huge_i16_gz.nii.gz", &gzip(&huge));
    cases.push(case(
        "m02_huge_i16_gz.nii.gz",
        Expect::Either(m(huge.clone(), true)),
        true,
    ));
    // One 70 TB volume (3D, i16::MAX cubed, int16) in a 1.3 kB file.
    let huge3 = nifti1(&[i16::MAX; 3], 4, 16, 0, &bytes(1000, 42));
    let e = i16::MAX as u128;
    let m3 = |d: Vec<u8>| Model::new(false, 352, e * e * e * 2, 1, d, true);
    w("m03_huge3d.nii", &huge3);
    cases.push(case(
        "m03_huge3d.nii",
        Expect::Either(m3(huge3.clone())),
        true,
    ));
    w("m04_huge3d_gz.nii.gz", &gzip(&huge3));
    cases.push(Case {
        dangerous: true,
        ..case(
            "m04_huge3d_gz.nii.gz",
            Expect::Either(m3(huge3.clone())),
            true,
        )
    });
    // NIfTI-2 dims near i64::MAX: one volume of 2^60 bytes (uint8; 2^63-1
    // would overflow the bit count and is covered by m07).
    let n2vol = nifti2(&[1 << 60, 1, 1], 2, 8, 544, &bytes(1000, 43));
    let mv = |d: Vec<u8>| Model::new(true, 544, 1 << 60, 1, d, true);
    w("m05_n2_huge_vol.nii", &n2vol);
    cases.push(case(
        "m05_n2_huge_vol.nii",
        Expect::Either(mv(n2vol.clone())),
        true,
    ));
    w("m06_n2_huge_vol_gz.nii.gz", &gzip(&n2vol));
    cases.push(Case {
        dangerous: true,
        ..case(
            "m06_n2_huge_vol_gz.nii.gz",
            Expect::Either(mv(n2vol.clone())),
            true,
        )
    });
    // NIfTI-2: sizes whose product overflows.
    let n2o = nifti2(&[i64::MAX, i64::MAX, 2, 2], 2, 8, 544, &bytes(100, 44));
    w("m07_n2_overflow.nii", &n2o);
    cases.push(case(
        "m07_n2_overflow.nii",
        Expect::Either(Model::new(
            true,
            544,
            (i64::MAX as u128) * (i64::MAX as u128) * 2,
            2,
            n2o.clone(),
            true,
        )),
        true,
    ));
    // Volume counts in the quintillions with 1-byte volumes: 100 of them are
    // really there and must read right; listing the .d must not hang the daemon.
    let many1 = nifti1(
        &[1, 1, 1, i16::MAX, i16::MAX, i16::MAX, i16::MAX],
        2,
        8,
        0,
        &bytes(100, 45),
    );
    w("m08_i16_many_vols.nii", &many1);
    cases.push(Case {
        dangerous: true,
        ..case(
            "m08_i16_many_vols.nii",
            Expect::Either(Model::new(
                false,
                352,
                1,
                e * e * e * e,
                many1.clone(),
                true,
            )),
            true,
        )
    });
    let many2 = nifti2(&[1, 1, 1, i64::MAX], 2, 8, 544, &bytes(100, 46));
    w("m09_n2_many_vols.nii", &many2);
    cases.push(Case {
        dangerous: true,
        ..case(
            "m09_n2_many_vols.nii",
            Expect::Either(Model::new(
                true,
                544,
                1,
                i64::MAX as u128,
                many2.clone(),
                true,
            )),
            true,
        )
    });

    // Negative dims, dim[0] out of range.
    let neg = nifti1(&[4, -4, 4, 6], 4, 16, 0, &bytes(VOL * 6, 47));
    w("p01_neg_dim.nii", &neg);
    cases.push(case("p01_neg_dim.nii", Expect::Plain, true));
    let n2neg = nifti2(&[4, 4, 4, -1], 4, 16, 544, &bytes(VOL, 48));
    w("p02_n2_neg_dim.nii", &n2neg);
    cases.push(case("p02_n2_neg_dim.nii", Expect::Plain, true));
    for (name, d0) in [
        ("p03_dim0_zero.nii", 0i16),
        ("p04_dim0_eight.nii", 8),
        ("p05_dim0_neg.nii", -1),
    ] {
        let mut h = img.clone();
        put_i16(&mut h, 40, d0);
        w(name, &h);
        cases.push(case(name, Expect::Plain, true));
    }

    // vox_offset: past EOF, NaN, infinite, negative, fractional, huge, inside the
    // header, and pointing into the middle of the data.
    let with_voxoff = |v: f32| {
        let mut h = img.clone();
        put_f32(&mut h, 108, v);
        h
    };
    w("m10_voxoff_past_eof.nii", &with_voxoff(4096.0));
    cases.push(case(
        "m10_voxoff_past_eof.nii",
        Expect::Either(int16(with_voxoff(4096.0), 4096)),
        true,
    ));
    for (name, v) in [
        ("p06_voxoff_nan.nii", f32::NAN),
        ("p07_voxoff_inf.nii", f32::INFINITY),
        ("p08_voxoff_neg.nii", -352.0),
        ("p09_voxoff_1e30.nii", 1e30),
    ] {
        w(name, &with_voxoff(v));
        cases.push(case(name, Expect::Plain, true));
    }
    // nibabel takes int(vox_offset): 352.5 means 352 if nifuse accepts it at all.
    w("m11_voxoff_frac.nii", &with_voxoff(352.5));
    cases.push(case(
        "m11_voxoff_frac.nii",
        Expect::Either(int16(with_voxoff(352.5), 352)),
        true,
    ));
    w("m12_voxoff_small.nii", &with_voxoff(96.0));
    cases.push(case(
        "m12_voxoff_small.nii",
        Expect::Either(int16(with_voxoff(96.0), 96)),
        true,
    ));
    // 1.5 volumes in: volumes 0..=3 are whole and must read, 4 and 5 run past EOF.
    let mid = (352 + VOL * 3 / 2) as f32;
    w("m13_voxoff_middle.nii", &with_voxoff(mid));
    cases.push(case(
        "m13_voxoff_middle.nii",
        Expect::Either(int16(with_voxoff(mid), mid as u128)),
        true,
    ));
    let mut n2negoff = nifti2(&[4, 4, 4, 6], 4, 16, -544, &bytes(VOL * 6, 49));
    w("p10_n2_voxoff_neg.nii", &n2negoff);
    cases.push(case("p10_n2_voxoff_neg.nii", Expect::Plain, true));
    n2negoff[168..176].copy_from_slice(&i64::MAX.to_le_bytes());
    w("p11_n2_voxoff_max.nii", &n2negoff);
    cases.push(case("p11_n2_voxoff_max.nii", Expect::Plain, true));

    // Datatype and bitpix.
    let mut unk = img.clone();
    put_i16(&mut unk, 70, 77);
    w("p12_unknown_dtype.nii", &unk);
    cases.push(case("p12_unknown_dtype.nii", Expect::Plain, true));
    let mut bp = img.clone();
    put_i16(&mut bp, 72, 32);
    w("m14_bitpix_mismatch.nii", &bp);
    // nibabel sizes voxels by the datatype (int16), not bitpix.
    cases.push(case(
        "m14_bitpix_mismatch.nii",
        Expect::Either(int16(bp.clone(), 352)),
        true,
    ));

    // sizeof_hdr wrong, short headers, empty files.
    for (name, v) in [
        ("p13_sizeof_349.nii", 349),
        ("p14_sizeof_zero.nii", 0),
        ("p15_sizeof_neg.nii", -348),
    ] {
        let mut h = img.clone();
        put_i32(&mut h, 0, v);
        w(name, &h);
        cases.push(case(name, Expect::Plain, true));
    }
    for (name, n) in [
        ("p16_short0.nii", 0),
        ("p17_short1.nii", 1),
        ("p18_short347.nii", 347),
    ] {
        w(name, &img[..n]);
        cases.push(case(name, Expect::Plain, true));
    }
    // 351 bytes: a whole header, the extender cut short, no voxels.
    w("m15_short351.nii", &img[..351]);
    cases.push(case(
        "m15_short351.nii",
        Expect::Either(int16(img[..351].to_vec(), 352)),
        true,
    ));
    w("p19_short347_gz.nii.gz", &gzip(&img[..347]));
    cases.push(case("p19_short347_gz.nii.gz", Expect::Plain, true));
    w("p20_empty_gz.nii.gz", b"");
    cases.push(case("p20_empty_gz.nii.gz", Expect::Plain, true));
    w("p21_empty_gzip_stream.nii.gz", &gzip(b""));
    cases.push(case("p21_empty_gzip_stream.nii.gz", Expect::Plain, true));

    // Extensions with nonsense sizes.
    for (name, esize) in [
        ("m16_ext_zero.nii", 0i32),
        ("m17_ext_huge.nii", i32::MAX),
        ("m18_ext_neg.nii", -16),
    ] {
        let mut h = img[..352].to_vec();
        h[348] = 1;
        let mut ext = vec![0u8; 16];
        put_i32(&mut ext, 0, esize);
        put_i32(&mut ext, 4, 6);
        ext[8..16].copy_from_slice(b"comment!");
        h.extend_from_slice(&ext);
        put_f32(&mut h, 108, 368.0);
        h.extend_from_slice(&img[352..]);
        w(name, &h);
        cases.push(case(name, Expect::Either(int16(h.clone(), 368)), true));
    }

    // Damaged gzip: truncated stream; corrupted bytes; gzip magic then garbage.
    let (big, _) = image4d(16, 16, 16, 10, 50);
    let gz = gzip(&big);
    let big_model = |exact| Model::new(false, 352, 16 * 16 * 16 * 2, 10, big.clone(), exact);
    w("m19_trunc_gz.nii.gz", &gz[..gz.len() * 55 / 100]);
    cases.push(case(
        "m19_trunc_gz.nii.gz",
        Expect::Either(big_model(false)),
        true,
    ));
    let smooth: Vec<u8> = {
        let mut d = Vec::new();
        for i in 0..(16 * 16 * 16 * 10) {
            d.extend_from_slice(&(((i % 61) * 7 + i / 4096) as i16).to_le_bytes());
        }
        nifti1(&[16, 16, 16, 10], 4, 16, 0, &d)
    };
    let mut bad = gzip(&smooth);
    let at = bad.len() / 2;
    bad[at..at + 24].fill(0xa5);
    w("m20_corrupt_gz.nii.gz", &bad);
    cases.push(case(
        "m20_corrupt_gz.nii.gz",
        Expect::Either(Model::new(
            false,
            352,
            16 * 16 * 16 * 2,
            10,
            smooth.clone(),
            false,
        )),
        true,
    ));
    let mut garbage = vec![0x1f, 0x8b];
    garbage.extend(bytes(2000, 51));
    w("p22_gz_magic_garbage.nii.gz", &garbage);
    cases.push(case("p22_gz_magic_garbage.nii.gz", Expect::Plain, true));

    // Analyze-style pairs: a .hdr without .img; an .img without .hdr; a valid
    // .hdr whose .img is empty.
    let mut pair_hdr = img[..348].to_vec();
    pair_hdr[344..348].copy_from_slice(b"ni1\0");
    put_f32(&mut pair_hdr, 108, 0.0);
    w("p23_lonely.hdr", &pair_hdr);
    cases.push(case("p23_lonely.hdr", Expect::Plain, true));
    w("o01_orphan.img", &img[352..]);
    cases.push(case("o01_orphan.img", Expect::Plain, false));
    w("m21_emptyimg.hdr", &pair_hdr);
    w("m21_emptyimg.img", b"");
    cases.push(case(
        "m21_emptyimg.hdr",
        Expect::Either(int16(Vec::new(), 0)),
        true,
    ));
    cases.push(case("m21_emptyimg.img", Expect::Plain, false));

    // Non-regular entries with NIfTI names.
    let fifo = std::ffi::CString::new(src.join("s01_fifo.nii").to_str().unwrap()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o644) }, 0);
    cases.push(case("s01_fifo.nii", Expect::Special, true));
    fs::create_dir(src.join("s02_dir.nii")).unwrap();
    fs::write(src.join("s02_dir.nii/inner.txt"), b"inside").unwrap();
    cases.push(case("s02_dir.nii", Expect::Special, false));
    let link =
        |target: &str, name: &str| std::os::unix::fs::symlink(target, src.join(name)).unwrap();
    link("s03_loop_b.nii", "s03_loop_a.nii");
    link("s03_loop_a.nii", "s03_loop_b.nii");
    link("s04_self.nii", "s04_self.nii");
    let outside = src.parent().unwrap().join("outside");
    fs::create_dir_all(&outside).unwrap();
    fs::write(outside.join("real.nii"), &img).unwrap();
    link(
        outside.join("real.nii").to_str().unwrap(),
        "s05_outside_abs.nii",
    );
    link("../outside/real.nii", "s06_outside_rel.nii");
    link("nowhere/missing.nii", "s07_dangling.nii");
    link("s01_fifo.nii", "s08_link_to_fifo.nii");
    link("s02_dir.nii", "s09_link_to_dir.nii");
    for name in [
        "s03_loop_a.nii",
        "s03_loop_b.nii",
        "s04_self.nii",
        "s05_outside_abs.nii",
        "s06_outside_rel.nii",
        "s07_dangling.nii",
        "s08_link_to_fifo.nii",
    ] {
        cases.push(case(name, Expect::Special, true));
    }
    cases.push(case("s09_link_to_dir.nii", Expect::Special, false));
    if !bombs {
        for c in cases.iter().filter(|c| c.dangerous) {
            fs::remove_file(src.join(&c.name)).unwrap();
        }
        cases.retain(|c| !c.dangerous);
    }
    cases
}

// ---------------------------------------------------------------------------
// Checking
// ---------------------------------------------------------------------------
