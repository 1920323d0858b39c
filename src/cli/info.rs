//! `nifuse info FILE... [--json]`: what nifuse sees in an image, like `fslhd` or
//! `nib-ls`: format, compression, shape, dtype, voxel sizes and units, scaling,
//! intent, qform/sform and the affine, the volumes `NAME.d/vol_K.nii` would hold,
//! extensions, and how far the saved gzip index in the index directory reaches.
//!
//! Nothing is built or written: the gzip index is opened only to read its state.
//! Header fields are decoded through the field tables of [`crate::nifti`]; the
//! affine follows nibabel's `get_best_affine` (sform if its code is valid and not
//! 0, else the qform quaternion with `qfac`), except that with both codes 0 it is
//! `diag(pixdim[1..=3], 1)` (NIfTI "method 1"), where nibabel centres the grid.
//!
//! Output (rendered in `info_json.rs`): for people, the path, then aligned
//! `key  value` lines (format, data file for pairs, compression, shape, dtype,
//! voxel sizes, TR for 4D+, scaling, intent, qform, sform, affine rows, volumes,
//! vox_offset, extensions, gzip index), a blank line between images; reasons for
//! failed files go to stderr. With `--json`, one array holding per file either
//! `{"path", "error"}` or an object with the keys `path format storage data_file
//! byte_order compression shape dtype datatype_code bitpix voxel_sizes space_units
//! time_units tr scl_slope scl_inter intent_code intent_name qform_code qform_name
//! sform_code sform_name affine_source affine affine_error volumes volume_bytes
//! volume_file_size vox_offset extensions gzip_index` (numbers at full `f64`
//! precision; `gzip_index` is null for uncompressed data, else `{state, volumes,
//! bytes, verified_bytes, members_verified, index_dir}` with state `none`,
//! `partial` or `complete`: how far the saved first pass got, and how many gzip
//! members it found matching their CRC-32, covering the first `verified_bytes`).

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::fs::image::{self, Image, NotImage};
use crate::nifti::{self, Header, Kind, MAX_VOX_OFFSET, Version};
use crate::source;
use crate::source::Store;
use crate::source::gzindex::{GzAccess, IndexState};

#[path = "info_json.rs"]
mod render;
#[path = "info_views.rs"]
pub mod views;

/// A 4x4 affine, row-major.
pub type Affine = [[f64; 4]; 4];

/// How far the saved gzip index of a compressed image reaches.
#[derive(Clone, Debug, PartialEq)]
pub enum GzIndex {
    /// The data file is not gzip-compressed: no index needed.
    NotCompressed,
    /// The index could not be looked at (the message says why).
    Unreadable(String),
    /// No usable index saved (none, stale or corrupt).
    None,
    /// An index covering the decoded bytes before `covered_bytes`: the first
    /// `volumes` volumes; `members` gzip members verified, the first `verified_bytes`.
    Partial {
        covered_bytes: u64,
        volumes: u64,
        verified_bytes: u64,
        members: usize,
    },
    /// An index of the whole stream of `total_bytes` decoded bytes, all of
    /// its `members` gzip members verified.
    Complete { total_bytes: u64, members: usize },
}

/// Everything `nifuse info` reports about one image.
#[derive(Clone, Debug)]
pub struct Info {
    pub path: String,
    pub version: Version,
    pub pair: bool,
    /// The file holding the voxels (the image itself, or the pair's `.img`).
    pub data_file: String,
    pub big_endian: bool,
    pub gzip: bool,
    pub shape: Vec<i64>,
    pub dtype: &'static str,
    pub datatype_code: i16,
    pub bitpix: u32,
    /// `pixdim[1..=dim[0]]`.
    pub voxel_sizes: Vec<f64>,
    pub space_units: &'static str,
    pub time_units: &'static str,
    /// `pixdim[4]` for images of 4 or more dimensions.
    pub tr: Option<f64>,
    pub scl_slope: f64,
    pub scl_inter: f64,
    pub intent_code: i32,
    pub qform_code: i32,
    pub sform_code: i32,
    /// `sform`, `qform` or `pixdim`.
    pub affine_source: &'static str,
    pub affine: Result<Affine, String>,
    pub volumes: u64,
    pub volume_bytes: u64,
    pub volume_file_size: u64,
    pub vox_offset: u64,
    /// `(ecode, esize)` of every extension, in file order.
    pub extensions: Vec<(i32, usize)>,
    pub gz_index: GzIndex,
    /// The views `NAME.d/` offers besides the volumes.
    pub views: Vec<views::ViewLine>,
}

/// Reports on every file (text, or one JSON array with `json`), then fails with a
/// one-line summary if any file is not an image nifuse can split.
pub fn run(files: &[PathBuf], json: bool, index_dir: &Path) -> Result<(), String> {
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let write_err = |e: std::io::Error| format!("writing to standard output: {e}");
    let mut failed = 0usize;
    let mut printed = false;
    if json {
        out.write_all(b"[").map_err(write_err)?;
    }
    for file in files {
        let shown = file.display().to_string();
        let result = inspect(file, &shown, index_dir);
        if result.is_err() {
            failed += 1;
        }
        let text = match (&result, json) {
            (Ok(info), true) => render::json(info, index_dir),
            (Ok(info), false) => render::text(info, index_dir),
            (Err(why), _) => {
                eprintln!("nifuse info: {shown}: not an image nifuse can split: {why}");
                if !json {
                    continue;
                }
                render::json_error(&shown, why)
            }
        };
        let sep = match (json, printed) {
            (true, false) => "\n",
            (true, true) => ",\n",
            (false, false) => "",
            (false, true) => "\n",
        };
        printed = true;
        write!(out, "{sep}{text}").map_err(write_err)?;
    }
    if json {
        out.write_all(if files.is_empty() { b"]\n" } else { b"\n]\n" })
            .map_err(write_err)?;
    }
    out.flush().map_err(write_err)?;
    match failed {
        0 => Ok(()),
        n => Err(format!(
            "{n} of {} files are not images nifuse can split (reasons above)",
            files.len()
        )),
    }
}

/// Parses `file` and gathers its report, or says why it is not a splittable image.
pub fn inspect(file: &Path, shown: &str, index_dir: &Path) -> Result<Info, String> {
    let meta = fs::metadata(file).map_err(|e| e.to_string())?;
    if !meta.is_file() {
        return Err("not a regular file".into());
    }
    let (store, img) = match image::probe_file(file, shown, None) {
        Ok(found) => found,
        Err(NotImage::Quiet) => {
            return Err("not a NIfTI file name (.nii, .nii.gz, .hdr, .hdr.gz)".into());
        }
        Err(NotImage::Reason(why)) => return Err(why),
    };
    let layout = &img.layout;
    let h = layout.header();
    let ndim = layout.shape().len();
    let pixdim = h.pixdim();
    let units = field_int(h, "xyzt_units", 0);
    let (affine_source, affine) = affine(h);
    Ok(Info {
        path: shown.to_string(),
        version: h.version(),
        pair: h.is_pair(),
        data_file: img.data.shown().to_string(),
        big_endian: h.big_endian(),
        gzip: img.data.is_gzip(),
        shape: layout.shape(),
        dtype: layout.dtype().name,
        datatype_code: layout.dtype().code,
        bitpix: layout.dtype().bits,
        voxel_sizes: pixdim
            .get(1..=ndim)
            .map(<[f64]>::to_vec)
            .unwrap_or_default(),
        space_units: space_unit(units),
        time_units: time_unit(units),
        tr: (ndim >= 4).then_some(pixdim[4]),
        scl_slope: h.scl_slope(),
        scl_inter: h.scl_inter(),
        intent_code: h.intent_code(),
        qform_code: h.qform_code(),
        sform_code: h.sform_code(),
        affine_source,
        affine,
        volumes: layout.n_vols(),
        volume_bytes: layout.vol_bytes(),
        volume_file_size: layout.vol_file_size(),
        vox_offset: layout.data_offset(),
        extensions: extensions(store.as_ref(), &img)?,
        gz_index: gz_index(&img, index_dir),
        views: views::views(&store, &img, &img.header_path.to_string_lossy()),
    })
}

/// `(ecode, esize)` of the image's extensions, re-read from the header file
/// (the layout keeps only the ones volume files copy).
fn extensions(store: &dyn Store, img: &Image) -> Result<Vec<(i32, usize)>, String> {
    let h = img.layout.header();
    let what = |e: std::io::Error| format!("reading the extensions: {e}");
    let file = store
        .open(&img.header_path)
        .map_err(|e| format!("reading the extensions: {e}"))?;
    let file = file.as_ref();
    let gzip = source::is_gzip(file).map_err(what)?;
    let want = if h.is_pair() {
        MAX_VOX_OFFSET
    } else {
        img.layout.data_offset()
    };
    let want = usize::try_from(want).map_err(|_| "extensions too large".to_string())?;
    let head = source::read_head(file, gzip, want).map_err(what)?;
    let after = head.get(h.len()..).unwrap_or_default();
    let exts = nifti::parse_extensions(after, h.big_endian()).map_err(|e| e.to_string())?;
    Ok(exts.iter().map(|e| (e.code, e.raw.len())).collect())
}

/// The state of the image's saved gzip index in `index_dir`; builds nothing.
fn gz_index(img: &Image, index_dir: &Path) -> GzIndex {
    if !img.data.is_gzip() {
        return GzIndex::NotCompressed;
    }
    let layout = &img.layout;
    let starts = (0..layout.n_vols())
        .filter_map(|k| layout.vol_source_range(k).map(|r| r.start))
        .collect();
    let opened = img.data.pin().map_err(|e| e.to_string()).and_then(|src| {
        GzAccess::with_source(src.clone(), starts, Some(index_dir)).map_err(|e| e.to_string())
    });
    match opened {
        Err(e) => GzIndex::Unreadable(e),
        Ok(access) => match (access.state(), access.pass_report()) {
            (IndexState::None, _) => GzIndex::None,
            (IndexState::Complete { total_bytes }, pass) => GzIndex::Complete {
                total_bytes,
                members: pass.members_verified,
            },
            (IndexState::Partial { covered_bytes }, pass) => GzIndex::Partial {
                covered_bytes,
                verified_bytes: pass.verified,
                members: pass.members_verified,
                volumes: covered_bytes
                    .saturating_sub(layout.data_offset())
                    .checked_div(layout.vol_bytes())
                    .unwrap_or_default()
                    .min(layout.n_vols()),
            },
        },
    }
}

/// Element `i` of the header field `name` (from the version's field table, in
/// the header's byte order) as `f64`; NaN if the field does not exist.
pub fn field(h: &Header, name: &str, i: usize) -> f64 {
    let Some(f) = h
        .table()
        .all
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, f)| *f)
    else {
        return f64::NAN;
    };
    if i >= f.count {
        return f64::NAN;
    }
    let at = f.offset + i * f.kind.size();
    let bytes = h.bytes();
    let big = h.big_endian();
    let v = match f.kind {
        Kind::U8 => bytes.get(at).map(|b| f64::from(*b)),
        Kind::I16 => le::<2>(bytes, at, big).map(|b| f64::from(i16::from_le_bytes(b))),
        Kind::I32 => le::<4>(bytes, at, big).map(|b| f64::from(i32::from_le_bytes(b))),
        Kind::I64 => le::<8>(bytes, at, big).map(|b| i64::from_le_bytes(b) as f64),
        Kind::F32 => le::<4>(bytes, at, big).map(|b| f64::from(f32::from_le_bytes(b))),
        Kind::F64 => le::<8>(bytes, at, big).map(f64::from_le_bytes),
    };
    v.unwrap_or(f64::NAN)
}

/// An integer header field (0 if it does not exist).
fn field_int(h: &Header, name: &str, i: usize) -> i64 {
    let v = field(h, name, i);
    if v.is_finite() { v as i64 } else { 0 }
}

/// The `N` bytes at `at`, reordered to little-endian.
fn le<const N: usize>(bytes: &[u8], at: usize, big_endian: bool) -> Option<[u8; N]> {
    let mut out: [u8; N] = bytes.get(at..at.checked_add(N)?)?.try_into().ok()?;
    if big_endian {
        out.reverse();
    }
    Some(out)
}

/// The name of a qform/sform code, as nibabel's `xform_codes` has it; `None` if invalid.
pub fn xform_name(code: i32) -> Option<&'static str> {
    [
        "unknown",
        "scanner",
        "aligned",
        "talairach",
        "mni",
        "template",
    ]
    .get(usize::try_from(code).ok()?)
    .copied()
}

/// Which transform nibabel's `get_best_affine` uses, and the affine.
fn affine(h: &Header) -> (&'static str, Result<Affine, String>) {
    // nibabel resets an invalid code to 0 when it loads a header.
    let usable = |code: i32| code != 0 && xform_name(code).is_some();
    if usable(h.sform_code()) {
        let row = |name| std::array::from_fn(|j| field(h, name, j));
        return (
            "sform",
            Ok([
                row("srow_x"),
                row("srow_y"),
                row("srow_z"),
                [0.0, 0.0, 0.0, 1.0],
            ]),
        );
    }
    let p = h.pixdim();
    if usable(h.qform_code()) {
        return ("qform", qform_affine(h, p));
    }
    let mut a = [[0.0; 4]; 4];
    for (i, row) in a.iter_mut().enumerate() {
        row[i] = if i < 3 { p[i + 1] } else { 1.0 };
    }
    ("pixdim", Ok(a))
}

/// nibabel's `Nifti1Header.get_qform`: `fillpositive` on (b, c, d), `quat2mat`,
/// scaled by `pixdim[1..=3]` (0 read as 1, negatives as their magnitude, as
/// nibabel's header check fixes them) with `pixdim[3] *= qfac`, and the qoffsets.
fn qform_affine(h: &Header, pixdim: [f64; 8]) -> Result<Affine, String> {
    let [b, c, d] = ["quatern_b", "quatern_c", "quatern_d"].map(|n| field(h, n, 0));
    let eps = match h.version() {
        Version::Nifti1 => f64::from(f32::EPSILON),
        Version::Nifti2 => f64::EPSILON,
    };
    let w2 = one_minus_squares([b, c, d]);
    let w = if w2.abs() < 3.0 * eps {
        0.0
    } else if w2 >= 0.0 {
        w2.sqrt()
    } else {
        return Err(format!(
            "invalid qform quaternion: b²+c²+d² = {} exceeds 1 (quatern_b, c, d = {b}, {c}, {d})",
            1.0 - w2
        ));
    };
    let r = quat2mat(w, b, c, d);
    let fix = |v: f64| if v == 0.0 { 1.0 } else { v.abs() };
    let qfac = if pixdim[0] == -1.0 { -1.0 } else { 1.0 };
    let vox = [fix(pixdim[1]), fix(pixdim[2]), fix(pixdim[3]) * qfac];
    let offsets = ["qoffset_x", "qoffset_y", "qoffset_z"].map(|n| field(h, n, 0));
    let mut a = [[0.0, 0.0, 0.0, 1.0]; 4];
    for i in 0..3 {
        for j in 0..3 {
            a[i][j] = r[i][j] * vox[j];
        }
        a[i][3] = offsets[i];
    }
    Ok(a)
}

/// `1 - (b² + c² + d²)` with error-free products and sums: nibabel computes it in
/// extended precision, and it cancels badly for rotations near 180 degrees.
fn one_minus_squares(xs: [f64; 3]) -> f64 {
    let (mut hi, mut lo) = (1.0f64, 0.0f64);
    for x in xs {
        let p = x * x;
        let p_err = x.mul_add(x, -p);
        let s = hi - p;
        let back = s - hi;
        let s_err = (hi - (s - back)) + (-p - back);
        hi = s;
        lo += s_err - p_err;
    }
    hi + lo
}

/// The rotation matrix of the quaternion (w, x, y, z) (nibabel's `quat2mat`).
fn quat2mat(w: f64, x: f64, y: f64, z: f64) -> [[f64; 3]; 3] {
    let nq = w * w + x * x + y * y + z * z;
    if nq < f64::EPSILON {
        return [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]];
    }
    let s = 2.0 / nq;
    let (xs, ys, zs) = (x * s, y * s, z * s);
    let (wx, wy, wz) = (w * xs, w * ys, w * zs);
    let (xx, xy, xz) = (x * xs, x * ys, x * zs);
    let (yy, yz, zz) = (y * ys, y * zs, z * zs);
    [
        [1.0 - (yy + zz), xy - wz, xz + wy],
        [xy + wz, 1.0 - (xx + zz), yz - wx],
        [xz - wy, yz + wx, 1.0 - (xx + yy)],
    ]
}

/// The spatial unit of `xyzt_units`.
fn space_unit(units: i64) -> &'static str {
    match units & 0x07 {
        1 => "m",
        2 => "mm",
        3 => "um",
        _ => "unknown",
    }
}

/// The temporal unit of `xyzt_units`.
fn time_unit(units: i64) -> &'static str {
    match units & 0x38 {
        8 => "s",
        16 => "ms",
        24 => "us",
        32 => "Hz",
        40 => "ppm",
        48 => "rad/s",
        _ => "unknown",
    }
}
