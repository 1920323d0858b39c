//! Core tests of the views of `NAME.d/` (no mount): names and what is not a
//! name, the header rules of every view, and the data of every view at
//! every boundary, against a model computed here voxel by voxel, for
//! NIfTI-1 and NIfTI-2, both byte orders, 1- to 16-byte voxels, 3D to 7D,
//! extensions (AFNI's among them), pairs and gzip.

mod common;
#[path = "fuzz_checks/mod.rs"]
mod fuzz_checks;

use std::ffi::OsStr;
use std::fs;

#[path = "core_views/model.rs"]
mod model;

use common::corefs::*;
use common::gzip;
use fuzz_checks::put;
use model::{DATATYPES, Img, check_extensions, same_except, table};
use nifuse::cache::Mode;
use nifuse::fs::Fs;

/// Reads `ino` whole, and in pieces at awkward offsets, and checks both against `want`.
fn check_file(f: &Fs, ino: u64, want: &[u8], what: &str) {
    let size = want.len() as u64;
    assert_eq!(f.getattr(ino).unwrap().attr.size, size, "{what}: size");
    let fh = f.open(ino, libc::O_RDONLY).unwrap().fh;
    let got = f.read(fh, 0, size as u32 + 10).unwrap();
    assert!(
        got == want,
        "{what}: whole file ({} vs {} bytes)",
        got.len(),
        want.len()
    );
    for (off, len) in [
        (1u64, 3u32),
        (347, 7),
        (539, 9),
        (size / 3, 1000),
        (size - 1, 5),
        (size, 1),
    ] {
        let got = f.read(fh, off, len).unwrap();
        let (a, b) = (
            off.min(size) as usize,
            (off + u64::from(len)).min(size) as usize,
        );
        assert!(got == want[a..b], "{what}: read {off}+{len}");
    }
    f.release(fh);
}

fn header_of(f: &Fs, ino: u64) -> Vec<u8> {
    read_all(f, ino)
}

fn check_image(f: &Fs, name: &str, img: &Img) {
    let ndim = img.dims.len();
    let n = img.n_vols();
    let d = walk(f, &format!("{name}.d"));
    let stem = name
        .strip_suffix(".gz")
        .unwrap_or(name)
        .strip_suffix(".nii")
        .unwrap();
    let w = n.saturating_sub(1).to_string().len().max(4);

    // The whole image: the source header, every extension, all data.
    let whole = walk(f, &format!("{name}.d/{stem}.nii"));
    let file = header_of(f, whole);
    let hlen = file.len() - img.data.len();
    same_except(img, &file, &[], &format!("{name} whole"));
    check_extensions(img, &file, true, &format!("{name} whole"));
    assert_eq!(&file[hlen..], &img.data[..], "{name} whole: data");
    check_file(f, whole, &file, &format!("{name} whole"));

    // Ranges.
    let tr = 2.5;
    let mut ranges = vec![
        (0, n - 1, 1),
        (n - 1, n - 1, 1),
        (0, n - 1, 2),
        (1.min(n - 1), n - 1, 3),
    ];
    ranges.dedup();
    for (a, b, s) in ranges {
        let vname = match s {
            1 => format!("vols_{a:0w$}-{b:0w$}.nii"),
            s => format!("vols_{a:0w$}-{b:0w$}_step{s}.nii"),
        };
        let what = format!("{name}/{vname}");
        let ino = f
            .lookup(d, OsStr::new(&vname))
            .unwrap_or_else(|e| panic!("{what}: {e}"))
            .attr
            .ino;
        let vols: Vec<usize> = (a..=b).step_by(s).collect();
        let file = header_of(f, ino);
        let hlen = file.len() - vols.len() * img.vol_voxels() * img.bpv;
        same_except(
            img,
            &file,
            &["dim", "pixdim", "toffset", "intent_code"],
            &what,
        );
        check_extensions(img, &file, false, &what);
        assert_eq!(img.get(&file, "dim", 0), 4.0, "{what}");
        assert_eq!(img.get(&file, "dim", 4), vols.len() as f64, "{what}");
        for i in 5..8 {
            assert_eq!(img.get(&file, "dim", i), 1.0, "{what}: dim[{i}]");
        }
        assert_eq!(
            img.get(&file, "pixdim", 4),
            tr * s as f64,
            "{what}: pixdim[4]"
        );
        assert_eq!(
            img.get(&file, "toffset", 0),
            1.25 + a as f64 * tr,
            "{what}: toffset"
        );
        let intent = if ndim > 4 { 0.0 } else { 2001.0 };
        assert_eq!(img.get(&file, "intent_code", 0), intent, "{what}: intent");
        assert_eq!(&file[hlen..], &img.volumes(&vols)[..], "{what}: data");
        check_file(f, ino, &file, &what);
    }

    // Volumes: 3D headers, intent 2001 cleared, AFNI dropped.
    for k in [0, n / 2, n - 1] {
        let what = format!("{name}/vol_{k}");
        let ino = walk(f, &format!("{name}.d/vol_{k:0w$}.nii"));
        let file = header_of(f, ino);
        same_except(img, &file, &["dim", "intent_code"], &what);
        check_extensions(img, &file, false, &what);
        assert_eq!(img.get(&file, "intent_code", 0), 0.0, "{what}");
        let hlen = file.len() - img.vol_voxels() * img.bpv;
        assert_eq!(&file[hlen..], &img.volumes(&[k])[..], "{what}: data");
    }

    // Slices along every axis, first, middle and last index.
    for (axis, dir) in ["x", "y", "z"].iter().enumerate() {
        let len = img.dim(axis);
        let sw = len.saturating_sub(1).to_string().len().max(4);
        for s in [0, len / 2, len - 1] {
            let what = format!("{name}/{dir}/{s}");
            let ino = walk(f, &format!("{name}.d/{dir}/slice_{s:0sw$}.nii"));
            let file = header_of(f, ino);
            let moved = [
                "dim",
                "qoffset_x",
                "qoffset_y",
                "qoffset_z",
                "srow_x",
                "srow_y",
                "srow_z",
            ];
            same_except(img, &file, &moved, &what);
            check_extensions(img, &file, false, &what);
            for i in 0..8 {
                let want = match i {
                    0 => ndim as f64,
                    i if i == axis + 1 => 1.0,
                    i => img.dim(i - 1) as f64,
                };
                assert_eq!(img.get(&file, "dim", i), want, "{what}: dim[{i}]");
            }
            for row in ["srow_x", "srow_y", "srow_z"] {
                let src = |c| img.get(&img.header, row, c);
                let want = (src(3) + s as f64 * src(axis)) as f32;
                assert_eq!(img.get(&file, row, 3) as f32, want, "{what}: {row}[3]");
                for c in 0..3 {
                    assert_eq!(img.get(&file, row, c), src(c), "{what}: {row}[{c}] kept");
                }
            }
            let slice = img.slice(axis, s);
            let hlen = file.len() - slice.len();
            assert!(file[hlen..] == slice[..], "{what}: data");
            check_file(f, ino, &file, &what);
        }
        let past = format!("slice_{len:0sw$}.nii");
        let sd = walk(f, &format!("{name}.d/{dir}"));
        assert_eq!(
            errno(f.lookup(sd, OsStr::new(&past))),
            libc::ENOENT,
            "{what}",
            what = past
        );
        let listed = list(f, sd);
        assert_eq!(listed.len(), 2 + len, "{name}/{dir}: one file per index");
    }
}

#[test]
fn every_view_of_every_kind_of_image_matches_the_model() {
    let mut imgs = Vec::new();
    for (i, &dt) in DATATYPES.iter().enumerate() {
        for (v2, big) in [(false, false), (false, true), (true, false), (true, true)] {
            let dims: &[i64] = match i % 3 {
                0 => &[5, 4, 3, 6],
                1 => &[3, 5, 2, 2, 3],
                _ => &[4, 3, 5, 2, 2, 1, 2],
            };
            let exts: &[i32] = if big { &[6, 4] } else { &[4, 6, 4] };
            let name = format!(
                "i{i}_{}{}.nii",
                u8::from(v2) + 1,
                if big { "be" } else { "le" }
            );
            imgs.push((name, Img::new(v2, big, dims, dt, exts, i as u64 + 7)));
        }
    }
    imgs.push((
        "three.nii".into(),
        Img::new(false, false, &[6, 5, 4], (4, 16), &[], 99),
    ));
    imgs.push((
        "noext.nii".into(),
        Img::new(true, false, &[6, 5, 4, 3], (4, 16), &[], 98),
    ));
    let gz = Img::new(false, false, &[7, 6, 5, 4], (512, 16), &[6], 97);
    let s = Src::new(|src| {
        for (name, img) in &imgs {
            fs::write(src.join(name), img.file()).unwrap();
        }
        fs::write(src.join("g.nii.gz"), gzip(&gz.file())).unwrap();
    });
    let f = s.fs(Mode::Unchanged);
    for (name, img) in &imgs {
        check_image(&f, name, img);
    }
    check_image(&f, "g.nii.gz", &gz);
    // The same views again with the cache full.
    let f = s.fs(Mode::Fill);
    read_all(&f, walk(&f, "g.nii.gz.d/vol_0000.nii"));
    assert!(filled(&f, "g.nii.gz"));
    check_image(&f, "g.nii.gz", &gz);
}

#[test]
fn malformed_view_names_are_not_found() {
    let img = Img::new(false, false, &[3, 3, 3, 12], (4, 16), &[], 1);
    let s = Src::new(|src| fs::write(src.join("run.nii"), img.file()).unwrap());
    let f = s.fs(Mode::Unchanged);
    let d = walk(&f, "run.nii.d");
    for good in [
        "vols_0000-0011.nii",
        "vols_0003-0003.nii",
        "vols_0002-0011_step3.nii",
        "vols_0002-0011_step1.nii",
        "vols_0000-0011_step100.nii",
        "run.nii",
    ] {
        assert!(f.lookup(d, OsStr::new(good)).is_ok(), "{good}");
    }
    for bad in [
        "vols_0004-0003.nii",
        "vols_0000-0012.nii",
        "vols_000-0011.nii",
        "vols_00000-00011.nii",
        "vols_0000-0011_step0.nii",
        "vols_0000-0011_step03.nii",
        "vols_0000-0011_step-1.nii",
        "vols_0000-0011_step.nii",
        "vols_0000-0011_step99999999999999999999999.nii",
        "vols_0000_0011.nii",
        "vols_0000-0011.nii.gz",
        "vols_0000-0011.img",
        "vols_0000-0011",
        "vols_+001-0011.nii",
        "vols_0000-0011_step2.NII",
        "vol_12.nii",
        "run.nii.gz",
        "run",
        "slice_0000.nii",
        "float16",
        "w",
    ] {
        assert_eq!(errno(f.lookup(d, OsStr::new(bad))), libc::ENOENT, "{bad}");
    }
    let z = walk(&f, "run.nii.d/z");
    for bad in [
        "slice_0003.nii",
        "slice_002.nii",
        "slice_00002.nii",
        "vol_0000.nii",
        "run.nii",
    ] {
        assert_eq!(errno(f.lookup(z, OsStr::new(bad))), libc::ENOENT, "z/{bad}");
    }
    // Ranges are found on lookup, never listed.
    assert!(!names(&list(&f, d)).iter().any(|n| n.starts_with("vols_")));
}

#[test]
fn a_truncated_image_serves_the_complete_parts_of_views() {
    let img = Img::new(false, false, &[4, 4, 4, 6], (4, 16), &[], 3);
    let mut file = img.file();
    let vb = 4 * 4 * 4 * 2;
    file.truncate(file.len() - vb - vb / 2); // volume 4 half there, 5 missing
    let s = Src::new(|src| fs::write(src.join("t.nii"), &file).unwrap());
    let f = s.fs(Mode::Unchanged);
    let whole = walk(&f, "t.nii.d/t.nii");
    let fh = f.open(whole, libc::O_RDONLY).unwrap().fh;
    let hlen = 352u64;
    assert_eq!(
        f.read(fh, hlen, vb as u32 * 4).unwrap(),
        img.volumes(&[0, 1, 2, 3])
    );
    assert_eq!(
        errno(f.read(fh, hlen + 4 * vb as u64 + vb as u64 / 2, 16)),
        libc::EIO
    );
    // Volumes 0, 2, 4 of which 4 is only half there.
    let range = walk(&f, "t.nii.d/vols_0000-0005_step2.nii");
    let fh = f.open(range, libc::O_RDONLY).unwrap().fh;
    assert_eq!(
        f.read(fh, hlen, 2 * vb as u32).unwrap(),
        img.volumes(&[0, 2])
    );
    let half = f.read(fh, hlen + 2 * vb as u64, vb as u32 / 2).unwrap();
    assert_eq!(half, img.volumes(&[4])[..vb / 2]);
    assert_eq!(
        errno(f.read(fh, hlen + 2 * vb as u64, vb as u32)),
        libc::EIO
    );
    let z = walk(&f, "t.nii.d/z/slice_0000.nii");
    let fh = f.open(z, libc::O_RDONLY).unwrap().fh;
    let plane = 4 * 4 * 2;
    assert_eq!(
        f.read(fh, hlen, plane as u32 * 4).unwrap(),
        img.slice(2, 0)[..plane * 4]
    );
    assert_eq!(errno(f.read(fh, hlen, plane as u32 * 6)), libc::EIO);
}

#[test]
fn a_pair_becomes_one_single_file() {
    for v2 in [false, true] {
        let img = Img::new(v2, true, &[4, 3, 2, 5], (4, 16), &[6, 4], 11);
        let t = table(v2);
        let mut hdr = img.header.clone();
        hdr[t.magic.offset + 1] = b'i'; // ni1 / ni2
        hdr.extend_from_slice(&[1, 0, 0, 0]);
        for (_, e) in &img.exts {
            hdr.extend_from_slice(e);
        }
        let s = Src::new(|src| {
            fs::write(src.join("p.hdr"), &hdr).unwrap();
            fs::write(src.join("p.img"), &img.data).unwrap();
        });
        let f = s.fs(Mode::Unchanged);
        let file = read_all(&f, walk(&f, "p.hdr.d/p.nii"));
        same_except(&img, &file, &[], "pair whole");
        assert_eq!(
            &file[t.magic.offset..t.magic.offset + 3],
            if v2 { b"n+2" } else { b"n+1" }
        );
        check_extensions(&img, &file, true, "pair whole");
        assert_eq!(&file[file.len() - img.data.len()..], &img.data[..]);
        let vol = read_all(&f, walk(&f, "p.hdr.d/vol_0003.nii"));
        check_extensions(&img, &vol, false, "pair volume");
        assert_eq!(&vol[vol.len() - 24 * 2..], &img.volumes(&[3])[..]);
    }
}

#[test]
fn float_views_scale_like_get_fdata_and_are_absent_for_complex_and_rgb() {
    let mut img = Img::new(false, true, &[3, 4, 5, 2], (4, 16), &[], 21);
    let t = table(false);
    put(&mut img.header, t.scl_slope, 0, 0.5, true);
    put(&mut img.header, t.scl_inter, 0, -3.0, true);
    let rgb = Img::new(false, false, &[3, 4, 5, 2], (128, 24), &[], 22);
    let complex = Img::new(true, false, &[3, 4, 5, 2], (32, 64), &[], 23);
    let s = Src::new(|src| {
        fs::write(src.join("s.nii"), img.file()).unwrap();
        fs::write(src.join("rgb.nii"), rgb.file()).unwrap();
        fs::write(src.join("c.nii"), complex.file()).unwrap();
    });
    let f = s.fs(Mode::Unchanged);
    let stored = img.volumes(&[1]);
    let want: Vec<u8> = stored
        .chunks(2)
        .flat_map(|b| {
            ((f64::from(i16::from_be_bytes([b[0], b[1]])) * 0.5 - 3.0) as f32).to_be_bytes()
        })
        .collect();
    for (dir, bytes) in [("float32", 4usize), ("float64", 8)] {
        let file = read_all(&f, walk(&f, &format!("s.nii.d/{dir}/vol_0001.nii")));
        assert_eq!(
            img.get(&file, "datatype", 0),
            if bytes == 4 { 16.0 } else { 64.0 }
        );
        assert_eq!(img.get(&file, "bitpix", 0), (bytes * 8) as f64);
        assert_eq!(
            (
                img.get(&file, "scl_slope", 0),
                img.get(&file, "scl_inter", 0)
            ),
            (1.0, 0.0)
        );
        let data = &file[file.len() - 60 * bytes..];
        if bytes == 4 {
            assert_eq!(
                data,
                &want[..],
                "float32 = float32(float64(x) * 0.5 - 3), big-endian"
            );
        }
        let z = read_all(&f, walk(&f, &format!("s.nii.d/{dir}/z/slice_0002.nii")));
        assert_eq!(z.len() as u64, 352 + 3 * 4 * 2 * bytes as u64);
    }
    for name in ["rgb.nii.d", "c.nii.d"] {
        let d = walk(&f, name);
        for dir in ["float32", "float64"] {
            assert_eq!(
                errno(f.lookup(d, OsStr::new(dir))),
                libc::ENOENT,
                "{name}/{dir}"
            );
        }
        assert!(
            !names(&list(&f, d)).iter().any(|n| n.starts_with("float")),
            "{name}"
        );
    }
    assert!(names(&list(&f, walk(&f, "s.nii.d"))).contains(&"float32".to_string()));
}
