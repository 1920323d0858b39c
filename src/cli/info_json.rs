//! Rendering of `nifuse info` reports: aligned text for people, and one JSON
//! object per file (written by hand: the shape is fixed and small).

use std::fmt::Write;
use std::path::Path;

use super::{GzIndex, Info, xform_name};
use crate::nifti::Version;

/// nibabel's labels of the NIfTI intent codes (`nifti1.intent_codes`).
#[rustfmt::skip]
const INTENTS: &[(i32, &str)] = &[
    (0, "none"), (2, "correlation"), (3, "t test"), (4, "f test"), (5, "z score"),
    (6, "chi2"), (7, "beta"), (8, "binomial"), (9, "gamma"), (10, "poisson"),
    (11, "normal"), (12, "non central f test"), (13, "non central chi2"),
    (14, "logistic"), (15, "laplace"), (16, "uniform"), (17, "non central t test"),
    (18, "weibull"), (19, "chi"), (20, "inverse gaussian"), (21, "extreme value 1"),
    (22, "p value"), (23, "log p value"), (24, "log10 p value"), (1001, "estimate"),
    (1002, "label"), (1003, "neuroname"), (1004, "general matrix"),
    (1005, "symmetric matrix"), (1006, "displacement vector"), (1007, "vector"),
    (1008, "pointset"), (1009, "triangle"), (1010, "quaternion"),
    (1011, "dimensionless"), (2001, "time series"), (2002, "node index"),
    (2003, "rgb vector"), (2004, "rgba vector"), (2005, "shape"),
    (2006, "fnirt disp field"), (2007, "fnirt cubic spline coef"),
    (2008, "fnirt dct coef"), (2009, "fnirt quad spline coef"),
    (2016, "topup cubic spline coef"), (2017, "topup quad spline coef"),
    (2018, "topup field"),
];

/// nibabel's labels of the extension codes (`nifti1.extension_codes`), indexed by `ecode / 2`.
#[rustfmt::skip]
const ECODES: [&str; 23] = [
    "ignore", "dicom", "afni", "comment", "xcede", "jimdiminfo", "workflow_fwds",
    "freesurfer", "pypickle", "mind_ident", "b_value", "spherical_direction",
    "dt_component", "shc_degreeorder", "voxbo", "caret", "cifti",
    "variable_frame_timing", "unassigned", "eval", "matlab", "quantiphyse", "mrs",
];

fn intent_name(code: i32) -> &'static str {
    INTENTS
        .iter()
        .find(|(c, _)| *c == code)
        .map_or("unknown", |(_, n)| n)
}

fn ecode_name(code: i32) -> &'static str {
    usize::try_from(code)
        .ok()
        .filter(|c| c % 2 == 0)
        .and_then(|c| ECODES.get(c / 2))
        .copied()
        .unwrap_or("unknown")
}

fn format_name(v: Version) -> &'static str {
    match v {
        Version::Nifti1 => "NIfTI-1",
        Version::Nifti2 => "NIfTI-2",
    }
}

/// A number for people: the shortest `f32` form when the value is an `f32` (as
/// NIfTI-1 fields are), else up to 6 decimals; `-0` shows as `0`.
fn num(v: f64) -> String {
    let v = v + 0.0;
    if !v.is_finite() {
        return v.to_string();
    }
    let f = v as f32;
    if f64::from(f) == v {
        return f.to_string();
    }
    let s = format!("{v:.6}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" { "0".into() } else { s.into() }
}

fn join<T>(items: &[T], sep: &str, f: impl Fn(&T) -> String) -> String {
    items.iter().map(f).collect::<Vec<_>>().join(sep)
}

/// The text report of one image: its path, then one aligned `key value` line per item.
pub fn text(info: &Info, index_dir: &Path) -> String {
    let mut lines: Vec<(&str, String)> = Vec::new();
    let storage = if info.pair {
        "pair (.hdr + .img)"
    } else {
        "single file"
    };
    let order = if info.big_endian {
        "big-endian"
    } else {
        "little-endian"
    };
    lines.push((
        "format",
        format!("{}, {storage}, {order}", format_name(info.version)),
    ));
    if info.pair {
        lines.push(("data file", info.data_file.clone()));
    }
    lines.push((
        "compression",
        if info.gzip { "gzip" } else { "none" }.into(),
    ));
    lines.push(("shape", join(&info.shape, " x ", i64::to_string)));
    let dt = format!(
        "{} (datatype {}, {} bits)",
        info.dtype, info.datatype_code, info.bitpix
    );
    lines.push(("dtype", dt));
    let sizes = join(&info.voxel_sizes, " x ", |v| num(*v));
    let units = format!("{}, time {}", info.space_units, info.time_units);
    lines.push(("voxel sizes", format!("{sizes} (space {units})")));
    if let Some(tr) = info.tr {
        let unit = match info.time_units {
            "unknown" => " (unit unknown)",
            u => u,
        };
        let sep = if unit.starts_with(' ') { "" } else { " " };
        lines.push(("TR", format!("{}{sep}{unit}", num(tr))));
    }
    let scaling = format!(
        "slope {}, inter {}",
        num(info.scl_slope),
        num(info.scl_inter)
    );
    lines.push(("scaling", scaling));
    let intent = format!("{} ({})", info.intent_code, intent_name(info.intent_code));
    lines.push(("intent", intent));
    let xform = |c: i32| format!("{c} ({})", xform_name(c).unwrap_or("invalid"));
    lines.push(("qform", xform(info.qform_code)));
    lines.push(("sform", xform(info.sform_code)));
    match &info.affine {
        Ok(a) => {
            lines.push(("affine", format!("from {}", info.affine_source)));
            let cells: Vec<Vec<String>> = a
                .iter()
                .map(|r| r.iter().map(|v| num(*v)).collect())
                .collect();
            let width = cells.iter().flatten().map(String::len).max().unwrap_or(1);
            for row in cells {
                lines.push(("", join(&row, "  ", |c| format!("{c:>width$}"))));
            }
        }
        Err(why) => lines.push(("affine", format!("unavailable: {why}"))),
    }
    let last = info.volumes.saturating_sub(1);
    let w = last.to_string().len().max(4);
    let vols = format!(
        "{} (vol_{:0w$}.nii .. vol_{last:0w$}.nii, {} bytes each, {} of them voxel data)",
        info.volumes, 0, info.volume_file_size, info.volume_bytes
    );
    lines.push(("volumes", vols));
    lines.push(("vox_offset", info.vox_offset.to_string()));
    let exts = match info.extensions.is_empty() {
        true => "none".to_string(),
        false => join(&info.extensions, ", ", |(c, s)| {
            format!("{c} ({}, {s} bytes)", ecode_name(*c))
        }),
    };
    lines.push(("extensions", exts));
    let dir = index_dir.display();
    let index = match &info.gz_index {
        GzIndex::NotCompressed => "not needed (not compressed)".to_string(),
        GzIndex::Unreadable(why) => format!("unreadable: {why}"),
        GzIndex::None => format!("none in {dir}"),
        GzIndex::Partial {
            covered_bytes,
            volumes,
            verified_bytes,
            members,
        } => format!(
            "partial: first {volumes} of {} volumes ({covered_bytes} decoded bytes) in {dir}; \
             {members} gzip member{} verified ({verified_bytes} decoded bytes)",
            info.volumes,
            if *members == 1 { "" } else { "s" }
        ),
        GzIndex::Complete {
            total_bytes,
            members,
        } => {
            format!(
                "complete: all {} volumes ({total_bytes} decoded bytes) in {dir}; \
                 all {members} gzip member{} verified",
                info.volumes,
                if *members == 1 { "" } else { "s" }
            )
        }
    };
    lines.push(("gzip index", index));
    let mut out = format!("{}\n", info.path);
    for (key, value) in lines {
        let _ = writeln!(out, "  {key:<13}{value}");
    }
    let _ = writeln!(
        out,
        "  views in {}.d/",
        info.path.rsplit('/').next().unwrap_or_default()
    );
    let wide = info.views.iter().map(|v| v.name.len()).max().unwrap_or(0);
    for v in &info.views {
        let on_lookup = if v.listed { "" } else { " (not listed)" };
        let _ = writeln!(out, "    {:<wide$}  {}{on_lookup}", v.name, v.what);
    }
    out
}

/// A JSON string literal.
fn jstr(s: &str) -> String {
    crate::fs::json_string(s)
}

/// A JSON number, full `f64` precision (`null` for NaN and infinities).
fn jnum(v: f64) -> String {
    if v.is_finite() {
        format!("{v:?}")
    } else {
        "null".into()
    }
}

fn jarr<T>(items: &[T], f: impl Fn(&T) -> String) -> String {
    format!("[{}]", join(items, ", ", f))
}

/// The JSON object of a file that is not an image nifuse can split.
pub fn json_error(path: &str, why: &str) -> String {
    format!("  {{\"path\": {}, \"error\": {}}}", jstr(path), jstr(why))
}

/// The JSON object of one image (see the module docs of `info` for the keys).
pub fn json(info: &Info, index_dir: &Path) -> String {
    let xname = |c: i32| jstr(xform_name(c).unwrap_or("invalid"));
    let (affine, affine_error) = match &info.affine {
        Ok(a) => (jarr(a, |row| jarr(row, |v| jnum(*v))), "null".to_string()),
        Err(why) => ("null".to_string(), jstr(why)),
    };
    let views = jarr(&info.views, |v| {
        format!(
            "{{\"name\": {}, \"listed\": {}, \"what\": {}}}",
            jstr(&v.name),
            v.listed,
            jstr(&v.what)
        )
    });
    let exts = jarr(&info.extensions, |(c, s)| {
        format!(
            "{{\"code\": {c}, \"name\": {}, \"size\": {s}}}",
            jstr(ecode_name(*c))
        )
    });
    let dir = jstr(&index_dir.display().to_string());
    let index = match &info.gz_index {
        GzIndex::NotCompressed => "null".to_string(),
        GzIndex::Unreadable(why) => {
            format!("{{\"state\": \"unreadable\", \"error\": {}}}", jstr(why))
        }
        GzIndex::None => format!(
            "{{\"state\": \"none\", \"volumes\": 0, \"bytes\": 0, \"verified_bytes\": 0, \
             \"members_verified\": 0, \"index_dir\": {dir}}}"
        ),
        GzIndex::Partial {
            covered_bytes,
            volumes,
            verified_bytes,
            members,
        } => format!(
            "{{\"state\": \"partial\", \"volumes\": {volumes}, \"bytes\": {covered_bytes}, \
             \"verified_bytes\": {verified_bytes}, \"members_verified\": {members}, \"index_dir\": {dir}}}"
        ),
        GzIndex::Complete {
            total_bytes,
            members,
        } => format!(
            "{{\"state\": \"complete\", \"volumes\": {}, \"bytes\": {total_bytes}, \
             \"verified_bytes\": {total_bytes}, \"members_verified\": {members}, \"index_dir\": {dir}}}",
            info.volumes
        ),
    };
    let fields: Vec<(&str, String)> = vec![
        ("path", jstr(&info.path)),
        ("format", jstr(format_name(info.version))),
        ("storage", jstr(if info.pair { "pair" } else { "single" })),
        ("data_file", jstr(&info.data_file)),
        (
            "byte_order",
            jstr(if info.big_endian { "big" } else { "little" }),
        ),
        ("compression", jstr(if info.gzip { "gzip" } else { "none" })),
        ("shape", jarr(&info.shape, i64::to_string)),
        ("dtype", jstr(info.dtype)),
        ("datatype_code", info.datatype_code.to_string()),
        ("bitpix", info.bitpix.to_string()),
        ("voxel_sizes", jarr(&info.voxel_sizes, |v| jnum(*v))),
        ("space_units", jstr(info.space_units)),
        ("time_units", jstr(info.time_units)),
        ("tr", info.tr.map_or("null".into(), jnum)),
        ("scl_slope", jnum(info.scl_slope)),
        ("scl_inter", jnum(info.scl_inter)),
        ("intent_code", info.intent_code.to_string()),
        ("intent_name", jstr(intent_name(info.intent_code))),
        ("qform_code", info.qform_code.to_string()),
        ("qform_name", xname(info.qform_code)),
        ("sform_code", info.sform_code.to_string()),
        ("sform_name", xname(info.sform_code)),
        ("affine_source", jstr(info.affine_source)),
        ("affine", affine),
        ("affine_error", affine_error),
        ("volumes", info.volumes.to_string()),
        ("volume_bytes", info.volume_bytes.to_string()),
        ("volume_file_size", info.volume_file_size.to_string()),
        ("vox_offset", info.vox_offset.to_string()),
        ("extensions", exts),
        ("gzip_index", index),
        ("views", views),
    ];
    let body = join(&fields, ",\n", |(k, v)| format!("    {}: {v}", jstr(k)));
    format!("  {{\n{body}\n  }}")
}
