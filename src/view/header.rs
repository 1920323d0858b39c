//! The header bytes of a view: the source header with only what the view
//! changes patched, every other byte copied.
//!
//! | view | patched |
//! |---|---|
//! | volume | `dim` 3D; `intent_code` 2001 becomes 0 |
//! | range | `dim[0] = 4`, `dim[4]` = count, `dim[5..7] = 1`; `pixdim[4]` × step; `toffset` + first × `pixdim[4]`; 5D+ sources: `intent_code` 0 |
//! | `b0`, shells | as a range, without the `pixdim[4]`/`toffset` changes (the volumes are not evenly spaced) |
//! | whole image | nothing (a pair's magic becomes single-file) |
//! | slice | the sliced `dim` becomes 1; the `qoffset` and `srow` translations move to the slice |
//! | float | `datatype` 16/64, `bitpix` 32/64, `scl_slope` 1, `scl_inter` 0 |
//!
//! Every view is a single file: `vox_offset` is recomputed, extensions are
//! kept raw, AFNI's (which describes the whole dataset) only in the whole image.

use super::shape::Shape;
use super::{Axis, Output, Selection};
use crate::nifti::{FormatError, Header, INTENT_TIME_SERIES, ImageLayout, Version, build_header};

/// The header (with extensions and padding) `shape`'s file starts with.
pub fn view_header(layout: &ImageLayout, shape: &Shape) -> Result<Vec<u8>, FormatError> {
    let view = shape.view;
    let keep_afni = view.selection == Selection::Whole;
    let ndim = layout.shape().len();
    let count = i64::try_from(shape.volumes.count()).unwrap_or(i64::MAX);
    build_header(
        layout.header(),
        layout.extender(),
        layout.extensions(),
        keep_afni,
        |h| {
            let d = h.dims();
            match view.selection {
                Selection::Volume(_) => {
                    h.set_dims([3, d[1], d[2], d[3], 1, 1, 1, 1]);
                    if h.intent_code() == INTENT_TIME_SERIES {
                        h.set_intent_code(0);
                    }
                }
                Selection::Range { first, step, .. } => {
                    four_d(h, count, ndim);
                    let tr = h.get("pixdim", 4).unwrap_or(0.0);
                    h.set("pixdim", 4, tr * step as f64);
                    let toffset = h.get("toffset", 0).unwrap_or(0.0);
                    h.set("toffset", 0, toffset + first as f64 * tr);
                }
                Selection::B0 | Selection::Shell(_) => four_d(h, count, ndim),
                Selection::Whole => {}
                Selection::Slice { axis, index } => {
                    let mut dims = d;
                    dims[axis.index() + 1] = 1;
                    h.set_dims(dims);
                    move_translations(h, axis, index);
                }
            }
            match view.output {
                Output::Stored => {}
                Output::Float32 => float(h, 16, 32),
                Output::Float64 => float(h, 64, 64),
            }
        },
    )
}

/// `dim` of a 4D run of `count` volumes; a 5D+ source's intent no longer applies.
fn four_d(h: &mut Header, count: i64, ndim: usize) {
    let d = h.dims();
    h.set_dims([4, d[1], d[2], d[3], count, 1, 1, 1]);
    if ndim > 4 {
        h.set_intent_code(0);
    }
}

/// The datatype fields of a float view.
fn float(h: &mut Header, datatype: i16, bitpix: i16) {
    h.set("datatype", 0, f64::from(datatype));
    h.set("bitpix", 0, f64::from(bitpix));
    h.set("scl_slope", 0, 1.0);
    h.set("scl_inter", 0, 0.0);
}

/// Moves the origin of both affines to voxel `index` along `axis`: the
/// translation gains `index` times the affine's column for that axis,
/// computed in double and stored in the header's own type. Rotations,
/// zooms and codes are left as they are.
fn move_translations(h: &mut Header, axis: Axis, index: u64) {
    let i = axis.index();
    let steps = index as f64;
    for row in ["srow_x", "srow_y", "srow_z"] {
        let (Some(t), Some(c)) = (h.get(row, 3), h.get(row, i)) else {
            continue;
        };
        h.set(row, 3, t + steps * c);
    }
    let column = qform_column(h, i);
    for (name, c) in ["qoffset_x", "qoffset_y", "qoffset_z"]
        .into_iter()
        .zip(column)
    {
        let t = h.get(name, 0).unwrap_or(0.0);
        h.set(name, 0, t + steps * c);
    }
}

/// Column `i` of the qform's 3x3 part: the rotation of the quaternion
/// (`quatern_b/c/d`, `a` completing the unit quaternion, as nibabel's
/// `fillpositive` and `quat2mat` do) times the voxel size, with `qfac`
/// (`pixdim[0]`, taken as 1 unless it is -1) on the third axis.
pub fn qform_column(h: &Header, i: usize) -> [f64; 3] {
    let q = |name| h.get(name, 0).unwrap_or(0.0);
    let (b, c, d) = (q("quatern_b"), q("quatern_c"), q("quatern_d"));
    // As nibabel: 1 - |bcd|^2 within 3 float eps of the stored precision
    // (float32 in NIfTI-1, float64 in NIfTI-2) means a 180 degree rotation.
    let eps = match h.version() {
        Version::Nifti1 => f64::from(f32::EPSILON),
        Version::Nifti2 => f64::EPSILON,
    };
    let w2 = 1.0 - (b * b + c * c + d * d);
    let a = if w2.abs() < 3.0 * eps {
        0.0
    } else {
        w2.max(0.0).sqrt()
    };
    let n = a * a + b * b + c * c + d * d;
    let rot = if n < f64::EPSILON {
        [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]
    } else {
        let s = 2.0 / n;
        let (x, y, z) = (b * s, c * s, d * s);
        let (wx, wy, wz) = (a * x, a * y, a * z);
        let (xx, xy, xz) = (b * x, b * y, b * z);
        let (yy, yz, zz) = (c * y, c * z, d * z);
        [
            [1.0 - (yy + zz), xy - wz, xz + wy],
            [xy + wz, 1.0 - (xx + zz), yz - wx],
            [xz - wy, yz + wx, 1.0 - (xx + yy)],
        ]
    };
    let pixdim = h.pixdim();
    let qfac = if pixdim[0] == -1.0 { -1.0 } else { 1.0 };
    let zoom = pixdim[i + 1] * if i == 2 { qfac } else { 1.0 };
    [rot[0][i] * zoom, rot[1][i] * zoom, rot[2][i] * zoom]
}
