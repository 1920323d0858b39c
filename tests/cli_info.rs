//! `nifuse info [--json] FILE...` run as a binary on images written byte by byte:
//! shape, dtype, volumes, units, affines (sform, qform with qfac, pixdim), both
//! byte orders, NIfTI-1 and NIfTI-2, pairs with extensions, gzip and its index
//! state, and files that are not images. Expected affines are computed by hand.

mod common;

use common::json::{J, parse_json};

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::{BIN, gzip, run};

// ---------------------------------------------------------------- headers

/// A header under construction, in either version and byte order.
struct Hdr {
    b: Vec<u8>,
    big: bool,
    v2: bool,
}

impl Hdr {
    /// A single-file header (`n+1` / `n+2`) with `dims`, datatype and bitpix;
    /// pixdim all 1, scl_slope 1, vox_offset right after the extender.
    fn new(v2: bool, big: bool, dims: &[i64], datatype: i16, bitpix: i16) -> Hdr {
        let len = if v2 { 544 } else { 352 };
        let mut h = Hdr {
            b: vec![0; len],
            big,
            v2,
        };
        h.i32(0, if v2 { 540 } else { 348 });
        let (dim, dt, bp) = if v2 { (16, 12, 14) } else { (40, 70, 72) };
        h.int(dim, dims.len() as i64);
        for i in 1..8 {
            h.int(dim + i * h.iw(), dims.get(i - 1).copied().unwrap_or(1));
        }
        h.i16(dt, datatype);
        h.i16(bp, bitpix);
        for i in 0..8 {
            h.pixdim(i, 1.0);
        }
        h.float(if v2 { 176 } else { 112 }, 1.0);
        if v2 {
            h.i64(168, 544);
            h.b[4..12].copy_from_slice(b"n+2\0\r\n\x1a\n");
        } else {
            h.f32(108, 352.0);
            h.b[344..348].copy_from_slice(b"n+1\0");
        }
        h
    }

    fn put<const N: usize>(&mut self, at: usize, mut le: [u8; N]) {
        if self.big {
            le.reverse();
        }
        self.b[at..at + N].copy_from_slice(&le);
    }
    fn i16(&mut self, at: usize, v: i16) {
        self.put(at, v.to_le_bytes());
    }
    fn i32(&mut self, at: usize, v: i32) {
        self.put(at, v.to_le_bytes());
    }
    fn i64(&mut self, at: usize, v: i64) {
        self.put(at, v.to_le_bytes());
    }
    fn f32(&mut self, at: usize, v: f32) {
        self.put(at, v.to_le_bytes());
    }
    /// Width of dim entries.
    fn iw(&self) -> usize {
        if self.v2 { 8 } else { 2 }
    }
    /// A dim-width integer.
    fn int(&mut self, at: usize, v: i64) {
        if self.v2 {
            self.i64(at, v)
        } else {
            self.i16(at, v as i16)
        }
    }
    /// A float field: f64 in NIfTI-2, f32 in NIfTI-1.
    fn float(&mut self, at: usize, v: f64) {
        if self.v2 {
            self.put(at, v.to_le_bytes())
        } else {
            self.f32(at, v as f32)
        }
    }
    fn fw(&self) -> usize {
        if self.v2 { 8 } else { 4 }
    }
    fn pixdim(&mut self, i: usize, v: f64) {
        let at = if self.v2 { 104 } else { 76 } + i * self.fw();
        self.float(at, v);
    }
    fn units(&mut self, u: u8) {
        if self.v2 {
            self.i32(500, i32::from(u))
        } else {
            self.b[123] = u
        }
    }
    fn code(&mut self, at1: usize, at2: usize, code: i32) {
        if self.v2 {
            self.i32(at2, code)
        } else {
            self.i16(at1, code as i16)
        }
    }
    fn sform(&mut self, code: i32, rows: [[f64; 4]; 3]) {
        self.code(254, 348, code);
        let base = if self.v2 { 400 } else { 280 };
        for (r, row) in rows.iter().enumerate() {
            for (c, v) in row.iter().enumerate() {
                self.float(base + (4 * r + c) * self.fw(), *v);
            }
        }
    }
    fn qform(&mut self, code: i32, bcd: [f64; 3], offsets: [f64; 3]) {
        self.code(252, 344, code);
        let base = if self.v2 { 352 } else { 256 };
        for (i, v) in bcd.iter().chain(&offsets).enumerate() {
            self.float(base + i * self.fw(), *v);
        }
    }
    /// The file: header, extender, `data`.
    fn file(&self, data: &[u8]) -> Vec<u8> {
        let mut f = self.b.clone();
        f.extend_from_slice(data);
        f
    }
}

// ---------------------------------------------------------------- helpers

/// `nifuse info ARGS`: (exit ok, stdout, stderr).
fn info(args: &[&str], files: &[&Path]) -> (bool, String, String) {
    run(
        Command::new(BIN).arg("info").args(args).args(files),
        Duration::from_secs(30),
    )
}

/// `nifuse info --json --index-dir DIR FILES`, parsed; asserts success.
fn info_json(index_dir: &Path, files: &[&Path]) -> Vec<J> {
    let dir = index_dir.to_str().unwrap();
    let (ok, out, err) = info(&["--json", "--index-dir", dir], files);
    assert!(ok, "nifuse info failed: {err}\n{out}");
    parse_json(&out).arr().to_vec()
}

fn assert_matrix(got: &[Vec<f64>], want: &[[f64; 4]; 4], tol: f64) {
    assert_eq!(got.len(), 4, "{got:?}");
    for (g, w) in got.iter().zip(want) {
        assert_eq!(g.len(), 4, "{got:?}");
        for (a, b) in g.iter().zip(w) {
            assert!((a - b).abs() <= tol, "affine {got:?}, expected {want:?}");
        }
    }
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> std::path::PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

// ---------------------------------------------------------------- tests

#[test]
fn sform_shape_dtype_units_and_volumes() {
    let d = tempfile::tempdir().unwrap();
    let mut h = Hdr::new(false, false, &[4, 5, 6, 7], 4, 16);
    for (i, v) in [2.0, 2.0, 2.5, 1.5].into_iter().enumerate() {
        h.pixdim(i + 1, v);
    }
    h.units(2 | 8); // mm, s
    h.sform(
        1,
        [
            [-2.0, 0.0, 0.0, 0.1],
            [0.0, 2.0, 0.0, -20.0],
            [0.0, 0.0, 2.5, 30.5],
        ],
    );
    h.qform(2, [0.0, 0.0, 1.0], [1.0, 2.0, 3.0]); // the sform wins
    let p = write(d.path(), "a.nii", &h.file(&[0; 4 * 5 * 6 * 7 * 2]));
    let objs = info_json(d.path(), &[&p]);
    assert_eq!(objs.len(), 1);
    let o = &objs[0];
    assert_eq!(o.get("path").str(), p.to_str().unwrap());
    assert_eq!(o.get("format").str(), "NIfTI-1");
    assert_eq!(o.get("storage").str(), "single");
    assert_eq!(o.get("byte_order").str(), "little");
    assert_eq!(o.get("compression").str(), "none");
    assert_eq!(o.get("shape").nums(), [4.0, 5.0, 6.0, 7.0]);
    assert_eq!(o.get("dtype").str(), "int16");
    assert_eq!(o.get("datatype_code").num(), 4.0);
    assert_eq!(o.get("voxel_sizes").nums(), [2.0, 2.0, 2.5, 1.5]);
    assert_eq!(o.get("space_units").str(), "mm");
    assert_eq!(o.get("time_units").str(), "s");
    assert_eq!(o.get("tr").num(), 1.5);
    assert_eq!(o.get("scl_slope").num(), 1.0);
    assert_eq!(o.get("scl_inter").num(), 0.0);
    assert_eq!(o.get("sform_code").num(), 1.0);
    assert_eq!(o.get("sform_name").str(), "scanner");
    assert_eq!(o.get("qform_code").num(), 2.0);
    assert_eq!(o.get("affine_source").str(), "sform");
    // srow values are float32 in NIfTI-1, reported as float64 (as nibabel does).
    let tenth = f64::from(0.1f32);
    let want = [
        [-2.0, 0.0, 0.0, tenth],
        [0.0, 2.0, 0.0, -20.0],
        [0.0, 0.0, 2.5, 30.5],
        [0.0, 0.0, 0.0, 1.0],
    ];
    assert_matrix(&o.get("affine").matrix(), &want, 0.0);
    assert_eq!(o.get("volumes").num(), 7.0);
    assert_eq!(o.get("volume_bytes").num(), 240.0);
    assert_eq!(o.get("volume_file_size").num(), 352.0 + 240.0);
    assert_eq!(o.get("extensions"), &J::Arr(vec![]));
    assert_eq!(o.get("gzip_index"), &J::Null);
}

#[test]
fn big_endian_qform_with_negative_qfac() {
    let d = tempfile::tempdir().unwrap();
    let mut h = Hdr::new(false, true, &[2, 3, 4, 3], 16, 32);
    for (i, v) in [-1.0, 2.0, 3.0, 4.0].into_iter().enumerate() {
        h.pixdim(i, v);
    }
    // 180 degrees about x: (b, c, d) = (1, 0, 0), w = 0: R = diag(1, -1, -1).
    h.qform(1, [1.0, 0.0, 0.0], [10.0, -20.0, 30.0]);
    let p = write(d.path(), "be.nii", &h.file(&[0; 2 * 3 * 4 * 3 * 4]));
    let o = &info_json(d.path(), &[&p])[0];
    assert_eq!(o.get("byte_order").str(), "big");
    assert_eq!(o.get("shape").nums(), [2.0, 3.0, 4.0, 3.0]);
    assert_eq!(o.get("dtype").str(), "float32");
    assert_eq!(o.get("volumes").num(), 3.0);
    assert_eq!(o.get("affine_source").str(), "qform");
    // R · diag(2, 3, 4 · qfac) = diag(1, -1, -1) · diag(2, 3, -4).
    let want = [
        [2.0, 0.0, 0.0, 10.0],
        [0.0, -3.0, 0.0, -20.0],
        [0.0, 0.0, 4.0, 30.0],
        [0.0, 0.0, 0.0, 1.0],
    ];
    assert_matrix(&o.get("affine").matrix(), &want, 0.0);
}

#[test]
fn nifti2_big_endian_5d_with_rotation_qform() {
    let d = tempfile::tempdir().unwrap();
    let mut h = Hdr::new(true, true, &[3, 4, 5, 2, 3], 16, 32);
    for (i, v) in [1.0, 1.5, 2.0, 3.0, 0.8].into_iter().enumerate() {
        h.pixdim(i, v);
    }
    h.units(3 | 16); // um, ms
    // 90 degrees about z: (b, c, d) = (0, 0, sin 45°), w = cos 45°.
    let s = std::f64::consts::FRAC_1_SQRT_2;
    h.qform(4, [0.0, 0.0, s], [-1.0, -2.0, -3.0]);
    let p = write(d.path(), "v2.nii", &h.file(&[0; 3 * 4 * 5 * 2 * 3 * 4]));
    let o = &info_json(d.path(), &[&p])[0];
    assert_eq!(o.get("format").str(), "NIfTI-2");
    assert_eq!(o.get("byte_order").str(), "big");
    assert_eq!(o.get("shape").nums(), [3.0, 4.0, 5.0, 2.0, 3.0]);
    assert_eq!(o.get("volumes").num(), 6.0);
    assert_eq!(o.get("volume_file_size").num(), 544.0 + 240.0);
    assert_eq!(o.get("space_units").str(), "um");
    assert_eq!(o.get("time_units").str(), "ms");
    assert_eq!(o.get("tr").num(), 0.8);
    assert_eq!(o.get("qform_name").str(), "mni");
    // R = [[0, -1, 0], [1, 0, 0], [0, 0, 1]], scaled by columns (1.5, 2, 3).
    let want = [
        [0.0, -2.0, 0.0, -1.0],
        [1.5, 0.0, 0.0, -2.0],
        [0.0, 0.0, 3.0, -3.0],
        [0.0, 0.0, 0.0, 1.0],
    ];
    assert_matrix(&o.get("affine").matrix(), &want, 1e-12);
}

#[test]
fn without_codes_the_affine_is_diag_pixdim() {
    let d = tempfile::tempdir().unwrap();
    let mut h = Hdr::new(true, false, &[4, 4, 4], 2, 8);
    for (i, v) in [1.0, 0.5, 0.75, 1.25].into_iter().enumerate() {
        h.pixdim(i, v);
    }
    let p = write(d.path(), "three.nii", &h.file(&[0; 64]));
    let o = &info_json(d.path(), &[&p])[0];
    assert_eq!(o.get("dtype").str(), "uint8");
    assert_eq!(o.get("volumes").num(), 1.0);
    assert_eq!(o.get("tr"), &J::Null);
    assert_eq!(o.get("affine_source").str(), "pixdim");
    let want = [
        [0.5, 0.0, 0.0, 0.0],
        [0.0, 0.75, 0.0, 0.0],
        [0.0, 0.0, 1.25, 0.0],
        [0.0, 0.0, 0.0, 1.0],
    ];
    assert_matrix(&o.get("affine").matrix(), &want, 0.0);
}

#[test]
fn gzip_is_detected_by_magic_and_its_index_state_reported() {
    let d = tempfile::tempdir().unwrap();
    let index = d.path().join("index");
    let (file, _) = common::image4d(8, 8, 4, 5, 3);
    // A gzip file named .nii: compression comes from the magic bytes.
    let p = write(d.path(), "z.nii", &gzip(&file));
    let o = &info_json(&index, &[&p])[0];
    assert_eq!(o.get("compression").str(), "gzip");
    assert_eq!(o.get("shape").nums(), [8.0, 8.0, 4.0, 5.0]);
    let gz = o.get("gzip_index");
    assert_eq!(gz.get("state").str(), "none");
    assert_eq!(gz.get("volumes").num(), 0.0);

    let (ok, _, err) = run(
        Command::new(BIN)
            .arg("index")
            .arg("--index-dir")
            .arg(&index)
            .arg(&p),
        Duration::from_secs(30),
    );
    assert!(ok, "nifuse index: {err}");
    let o = &info_json(&index, &[&p])[0];
    let gz = o.get("gzip_index");
    assert_eq!(gz.get("state").str(), "complete");
    assert_eq!(gz.get("volumes").num(), 5.0);
    assert_eq!(gz.get("bytes").num(), file.len() as f64);

    let (ok, out, err) = info(&["--index-dir", index.to_str().unwrap()], &[&p]);
    assert!(ok, "{err}");
    assert!(out.contains("\n  compression  gzip\n"), "{out}");
    assert!(
        out.contains("\n  gzip index   complete: all 5 volumes"),
        "{out}"
    );
}

#[test]
fn pair_with_extensions() {
    let d = tempfile::tempdir().unwrap();
    let mut h = Hdr::new(false, false, &[2, 2, 2, 4], 512, 16);
    h.f32(108, 0.0);
    h.b[344..348].copy_from_slice(b"ni1\0");
    h.b.truncate(348);
    h.b.extend_from_slice(&[1, 0, 0, 0]);
    for (code, size) in [(6i32, 32i32), (4, 16)] {
        h.b.extend_from_slice(&size.to_le_bytes());
        h.b.extend_from_slice(&code.to_le_bytes());
        h.b.extend(std::iter::repeat_n(b'x', size as usize - 8));
    }
    let hdr = write(d.path(), "p.hdr", &h.b);
    write(d.path(), "p.img", &[0; 2 * 2 * 2 * 4 * 2]);
    let o = &info_json(d.path(), &[&hdr])[0];
    assert_eq!(o.get("storage").str(), "pair");
    assert!(o.get("data_file").str().ends_with("p.img"), "{o:?}");
    assert_eq!(o.get("dtype").str(), "uint16");
    let exts: Vec<(f64, &str, f64)> = o
        .get("extensions")
        .arr()
        .iter()
        .map(|e| {
            (
                e.get("code").num(),
                e.get("name").str(),
                e.get("size").num(),
            )
        })
        .collect();
    assert_eq!(exts, [(6.0, "comment", 32.0), (4.0, "afni", 16.0)]);
    // Volume files keep the comment and drop AFNI's extension: 348 + 4 + 32, padded.
    assert_eq!(o.get("volume_file_size").num(), 384.0 + 16.0);
}

#[test]
fn bad_files_fail_with_their_reason_after_the_others() {
    let d = tempfile::tempdir().unwrap();
    let mut bad = common::nifti1(&[2, 2, 2], 4, 16, 0, &[0; 16]);
    bad[0..4].copy_from_slice(&123i32.to_le_bytes());
    let bad = write(d.path(), "bad.nii", &bad);
    let good = write(
        d.path(),
        "good.nii",
        &common::nifti1(&[2, 2, 2, 2], 4, 16, 0, &[0; 32]),
    );
    let text = write(d.path(), "notes.txt", b"hello");

    let (ok, out, err) = info(&[], &[&bad, &good, &text]);
    assert!(!ok, "should fail: {out}");
    assert!(out.starts_with(good.to_str().unwrap()), "{out}");
    assert!(out.contains("\n  shape        2 x 2 x 2 x 2\n"), "{out}");
    assert!(out.contains("\n  dtype        int16"), "{out}");
    assert!(!out.contains("bad.nii"), "{out}");
    assert!(
        err.contains("bad.nii: not an image nifuse can split: sizeof_hdr is 123"),
        "{err}"
    );
    assert!(
        err.contains("notes.txt: not an image nifuse can split: not a NIfTI file name"),
        "{err}"
    );
    assert!(err.contains("2 of 3 files"), "{err}");

    let (ok, out, err) = info(&["--json"], &[&bad, &good]);
    assert!(!ok, "should fail: {out}");
    let objs = parse_json(&out).arr().to_vec();
    assert_eq!(objs.len(), 2);
    assert_eq!(objs[0].get("path").str(), bad.to_str().unwrap());
    assert!(
        objs[0].get("error").str().contains("sizeof_hdr is 123"),
        "{out}"
    );
    assert_eq!(objs[1].get("volumes").num(), 2.0);
    assert!(err.contains("1 of 2 files"), "{err}");

    let missing = d.path().join("missing.nii");
    let (ok, _, err) = info(&[], &[&missing]);
    assert!(!ok);
    assert!(
        err.contains("missing.nii: not an image nifuse can split: No such file"),
        "{err}"
    );
}

/// A gzip index saved after reading into volume 2 of 8 is partial: `nifuse info`
/// counts the whole volumes below the covered offset. (`nifuse index` always
/// builds complete indexes, so the partial one is made with the library.)
#[test]
fn partial_gzip_index_counts_whole_volumes() {
    let d = tempfile::tempdir().unwrap();
    let index = d.path().join("index");
    std::fs::create_dir(&index).unwrap();
    // 8 volumes of 64 KiB of noisy uint8: short deflate blocks, so index boundaries.
    let (vol, n) = (64 * 64 * 16u64, 8u64);
    let data: Vec<u8> = common::bytes((vol * n) as usize, 5)
        .iter()
        .map(|b| b & 0x0f)
        .collect();
    let file = common::nifti1(&[64, 64, 16, 8], 2, 8, 0, &data);
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(6));
    std::io::Write::write_all(&mut e, &file).unwrap();
    let p = write(d.path(), "part.nii.gz", &e.finish().unwrap());

    let starts = (0..n).map(|k| 352 + k * vol).collect();
    let access = nifuse::source::gzindex::GzAccess::open(&p, starts, Some(&index)).unwrap();
    let mut buf = [0u8; 16];
    access.read_exact_at(352 + 2 * vol, &mut buf).unwrap();
    access.save().unwrap();
    drop(access);

    let o = &info_json(&index, &[&p])[0];
    let gz = o.get("gzip_index");
    assert_eq!(gz.get("state").str(), "partial", "{o:?}");
    let (volumes, covered) = (gz.get("volumes").num(), gz.get("bytes").num());
    assert!((1.0..n as f64).contains(&volumes), "{gz:?}");
    assert_eq!(volumes, ((covered - 352.0) / vol as f64).floor(), "{gz:?}");
    let (ok, out, err) = info(&["--index-dir", index.to_str().unwrap()], &[&p]);
    assert!(ok, "{err}");
    let line =
        format!("\n  gzip index   partial: first {volumes} of 8 volumes ({covered} decoded bytes)");
    assert!(out.contains(&line), "{out}");
}

#[test]
fn the_views_an_image_offers_with_sidecars_and_without_float_for_complex() {
    let dir = tempfile::tempdir().unwrap();
    let n = 12;
    let data = vec![0u8; 4 * 4 * 2 * n * 2];
    let dwi = write(
        dir.path(),
        "dwi.nii",
        &common::nifti1(&[4, 4, 2, n as i16], 4, 16, 0, &data),
    );
    let b: Vec<&str> = (0..n)
        .map(|k| if k % 4 == 0 { "0" } else { "1000" })
        .collect();
    write(
        dir.path(),
        "dwi.bval",
        format!("{}\n", b.join(" ")).as_bytes(),
    );
    let row = |c: &str| vec![c; n].join(" ");
    write(
        dir.path(),
        "dwi.bvec",
        format!("{}\n{}\n{}\n", row("0"), row("0"), row("1")).as_bytes(),
    );
    write(dir.path(), "dwi.json", b"{}");
    let complex = write(
        dir.path(),
        "c.nii",
        &common::nifti1(&[2, 2, 2, 2], 32, 64, 0, &[0u8; 128]),
    );
    let (ok, out, err) = info(&[], &[&dwi, &complex]);
    assert!(ok, "{err}");
    for want in [
        "views in dwi.nii.d/",
        "dwi.nii  ",
        "the whole image, uncompressed, 1120 bytes",
        "vols_A-B.nii, vols_A-B_stepS.nii",
        "(not listed)",
        "z/",
        "slice_0000.nii .. slice_0001.nii: 2 slices",
        "b0.nii",
        "3 volumes with b < 10",
        "shell_1000.nii",
        "9 volumes",
        "dwi.json, beside every view",
        "none: complex64 data",
    ] {
        assert!(out.contains(want), "{want:?} in:\n{out}");
    }
    let j = info_json(dir.path(), &[&dwi]);
    let views = j[0].get("views").arr();
    let names: Vec<&str> = views.iter().map(|v| v.get("name").str()).collect();
    assert!(
        names.contains(&"b0.nii") && names.contains(&"float32/, float64/"),
        "{names:?}"
    );
    // Broken sidecars: the reason instead.
    write(dir.path(), "dwi.bval", b"0 1000\n");
    let (_, out, _) = info(&[], &[&dwi]);
    assert!(
        out.contains("none: dwi.bval: 2 b-values for 12 volumes"),
        "{out}"
    );
}
