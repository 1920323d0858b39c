//! Recognising NIfTI images in SOURCE and opening their voxel data.
//!
//! [`probe`] decides whether a source file is an image nifuse can split into
//! volumes: its name must be a NIfTI name (`.nii`, `.nii.gz`, `.hdr`,
//! `.hdr.gz`), and its header must parse into an [`ImageLayout`]. The header
//! is read from the (decoded) start of the file only; no voxel data is touched.
//! For a `.hdr` the voxels live in the sibling `.img` or `.img.gz`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::nifti::{FormatError, ImageLayout, Version as NiftiVersion};
use crate::source::local::LocalStore;
use crate::source::{self, ByteSource, DataFile, Meta, Store, Version};
use crate::view::convert::{FloatConversion, FloatType};
use crate::view::names::Catalog;

/// The largest header-plus-extensions block nifuse reads to parse an image.
const MAX_HEAD: u64 = 64 << 20;

/// The most volumes one image may have: more would make a `NAME.d` listing
/// (and the per-volume index bookkeeping) unreasonably large.
pub const MAX_VOLUMES: u64 = 1 << 20;

/// How a file name marks a NIfTI image.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NameKind {
    /// `.nii` or `.nii.gz`: header and data in one file.
    Single,
    /// `.hdr` or `.hdr.gz`: header only; data in the `.img` beside it.
    PairHeader,
}

/// Whether `name` is a NIfTI file name, and of which kind.
pub fn name_kind(name: &str) -> Option<NameKind> {
    let lower = name.to_ascii_lowercase();
    if lower.ends_with(".nii") || lower.ends_with(".nii.gz") {
        Some(NameKind::Single)
    } else if lower.ends_with(".hdr") || lower.ends_with(".hdr.gz") {
        Some(NameKind::PairHeader)
    } else {
        None
    }
}

/// The candidates for the data file of the pair whose header is `hdr`:
/// `x.hdr` → `x.img`, `x.img.gz`; `x.hdr.gz` → `x.img.gz`, `x.img` (same case as the header).
pub fn pair_data_candidates(hdr: &Path) -> Vec<PathBuf> {
    let Some(name) = hdr.file_name().and_then(|n| n.to_str()) else {
        return Vec::new();
    };
    let (stem, upper) = if let Some(s) = name.strip_suffix(".hdr.gz").or(name.strip_suffix(".hdr"))
    {
        (s, false)
    } else if let Some(s) = name.strip_suffix(".HDR.GZ").or(name.strip_suffix(".HDR")) {
        (s, true)
    } else {
        return Vec::new();
    };
    let (img, img_gz) = if upper {
        ("IMG", "IMG.GZ")
    } else {
        ("img", "img.gz")
    };
    let mut names = vec![format!("{stem}.{img}"), format!("{stem}.{img_gz}")];
    if name.to_ascii_lowercase().ends_with(".gz") {
        names.reverse();
    }
    names.into_iter().map(|n| hdr.with_file_name(n)).collect()
}

/// One NIfTI image of SOURCE, parsed, with its voxel data open.
pub struct Image {
    /// The image's path relative to SOURCE (the `NAME` of `NAME.d`), for messages.
    pub name: String,
    /// Its header file relative to SOURCE (the image itself for single
    /// files; a symlink's target).
    pub header_path: PathBuf,
    /// The header file's metadata when parsed (owner, mode and times of
    /// `NAME.d` and its volumes; any change to them makes a new parse).
    pub header_meta: Meta,
    /// Volume layout and synthesized volume header.
    pub layout: ImageLayout,
    /// The file holding the voxels (the image itself, or the pair's `.img`).
    pub data: DataFile,
    /// Which version of the source this is, within one mount (set by the
    /// registry; part of the inode identity of `NAME.d` and its volumes).
    pub version: u64,
    /// The names of its views, as far as the header decides them.
    pub catalog: Catalog,
    /// How its float32 and float64 views compute their voxels (none for
    /// complex, RGB, float128 data, or a slope nibabel refuses).
    pub floats: [Option<FloatConversion>; 2],
}

/// The image file name without its NIfTI extension (`.nii`, `.nii.gz`,
/// `.hdr`, `.hdr.gz`, `.img`, `.img.gz`, any case): the `STEM` of
/// `STEM.nii`, `STEM.bval`, `STEM.json`.
pub fn stem(file_name: &str) -> &str {
    let lower = file_name.to_ascii_lowercase();
    for ext in [".nii.gz", ".hdr.gz", ".img.gz", ".nii", ".hdr", ".img"] {
        if lower.ends_with(ext) && file_name.len() > ext.len() {
            return &file_name[..file_name.len() - ext.len()];
        }
    }
    file_name
}

/// The float conversions of an image: float32 and float64, or why it has none.
fn floats(layout: &ImageLayout, name: &str) -> [Option<FloatConversion>; 2] {
    FloatType::ALL.map(|t| {
        FloatConversion::new(layout.header(), layout.dtype(), t)
            .map_err(|why| log::debug!("{name}: no {} views: {why}", t.name()))
            .ok()
    })
}

/// The header-given part of the view names of an image called `file_name`.
fn catalog(layout: &ImageLayout, file_name: &str, floats: bool) -> Catalog {
    let max_count = match layout.header().version() {
        NiftiVersion::Nifti1 => i16::MAX as u64,
        NiftiVersion::Nifti2 => i64::MAX as u64,
    };
    Catalog {
        n_vols: layout.n_vols(),
        dims: layout.vol_dims(),
        stem: stem(file_name).to_string(),
        floats,
        max_count,
        ..Catalog::default()
    }
}

/// Why a source file is shown as a plain file rather than an image.
#[derive(Debug)]
pub enum NotImage {
    /// Not a NIfTI name or not a regular file: nothing worth logging.
    Quiet,
    /// A NIfTI-named file that does not parse: logged once with this reason.
    Reason(String),
}

/// The identities that decide whether a probe result is still valid: the
/// header file's, and for pairs the data file's. `path` is the resolved
/// header file, relative to the root of `store`.
pub fn current_idents(store: &dyn Store, path: &Path) -> Option<(Version, Option<Version>)> {
    let meta = store.stat(path).ok()?;
    if meta.kind != source::Kind::File {
        return None;
    }
    let data = match name_kind(path.file_name()?.to_str()?)? {
        NameKind::Single => None,
        NameKind::PairHeader => pair_data(store, path).map(|(_, m)| m.version),
    };
    Some((meta.version, data))
}

/// The data file of the pair whose header is `hdr`: the first candidate that
/// is (or leads to) a regular file of the store.
fn pair_data(store: &dyn Store, hdr: &Path) -> Option<(PathBuf, Meta)> {
    pair_data_candidates(hdr)
        .iter()
        .find_map(|p| store.resolve(p).ok())
}

/// Parses the image whose header file is `path` (relative to the root of
/// `store`, already resolved to a regular file); `name` is its path relative
/// to SOURCE as listed.
pub fn probe(
    store: &Arc<dyn Store>,
    path: &Path,
    name: &str,
    index_dir: Option<&Path>,
) -> std::result::Result<Image, NotImage> {
    let file_name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default();
    let Some(kind) = name_kind(file_name) else {
        return Err(NotImage::Quiet);
    };
    let reason = |e: &dyn std::fmt::Display| NotImage::Reason(format!("{e}"));
    let meta = match store.stat(path) {
        Ok(m) if m.kind == source::Kind::File => m,
        Ok(_) => return Err(NotImage::Quiet),
        Err(e) => return Err(reason(&e)),
    };
    let file = store.open(path).map_err(|e| reason(&e))?;
    let gzip = source::is_gzip(file.as_ref()).map_err(|e| reason(&e))?;
    let pair = kind == NameKind::PairHeader;
    let layout = parse_head(file.as_ref(), gzip, pair).map_err(|e| reason(&e))?;
    drop(file);
    if layout.n_vols() > MAX_VOLUMES {
        return Err(NotImage::Reason(format!(
            "{} volumes is more than nifuse lists ({MAX_VOLUMES}); check dim[4..7]",
            layout.n_vols()
        )));
    }
    if layout.dtype().code == 1 {
        return Err(NotImage::Reason(
            "datatype 1 (binary, 1 bit per voxel) has no volume files".into(),
        ));
    }
    if layout.header().is_pair() != pair {
        let magic = if pair {
            "a single-file magic (n+1/n+2)"
        } else {
            "a pair magic (ni1/ni2)"
        };
        return Err(NotImage::Reason(format!(
            "the header has {magic}, which does not match its file name"
        )));
    }
    let starts = (0..layout.n_vols())
        .filter_map(|k| layout.vol_source_range(k).map(|r| r.start))
        .collect();
    let (data_path, data_version, data_gzip) = if pair {
        let (data_path, data_meta) = pair_data(store.as_ref(), path)
            .ok_or_else(|| NotImage::Reason("no .img or .img.gz beside this .hdr".into()))?;
        let data_file = store.open(&data_path).map_err(|e| reason(&e))?;
        let data_gzip = source::is_gzip(data_file.as_ref()).map_err(|e| reason(&e))?;
        (data_path, data_meta.version, data_gzip)
    } else {
        (path.to_path_buf(), meta.version.clone(), gzip)
    };
    let data = DataFile::new(
        store.clone(),
        &data_path,
        data_version,
        data_gzip,
        starts,
        index_dir,
    );
    let listed_name = Path::new(name)
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or(file_name);
    let floats = floats(&layout, name);
    Ok(Image {
        catalog: catalog(&layout, listed_name, floats.iter().all(Option::is_some)),
        floats,
        name: name.to_string(),
        header_path: path.to_path_buf(),
        header_meta: meta,
        layout,
        data,
        version: 0,
    })
}

/// Parses the image file at `path`, given by a user (symlinks followed
/// anywhere; a pair's data file is looked for beside the header's target).
/// Returns the store made for it (the file's directory) with the image.
pub fn probe_file(
    path: &Path,
    shown: &str,
    index_dir: Option<&Path>,
) -> std::result::Result<(Arc<dyn Store>, Image), NotImage> {
    let reason = |e: &dyn std::fmt::Display| NotImage::Reason(format!("{e}"));
    let canon = std::fs::canonicalize(path).map_err(|e| reason(&e))?;
    let (Some(dir), Some(name)) = (canon.parent(), canon.file_name()) else {
        return Err(NotImage::Quiet);
    };
    let store: Arc<dyn Store> = Arc::new(LocalStore::new(dir).map_err(|e| reason(&e))?);
    let image = probe(&store, Path::new(name), shown, index_dir)?;
    Ok((store, image))
}

/// Reads as much of the start of `file` as the header says it needs, and parses it.
fn parse_head(file: &dyn ByteSource, gzip: bool, pair: bool) -> Result<ImageLayout> {
    let io_err = |e| Error::io("reading the header", e);
    let mut want = 540u64;
    loop {
        let len = usize::try_from(want).map_err(|_| Error::Invalid("header too large".into()))?;
        let head = source::read_head(file, gzip, if pair { MAX_HEAD as usize } else { len })
            .map_err(io_err)?;
        match ImageLayout::new(&head, pair) {
            Ok(layout) => return Ok(layout),
            Err(FormatError::NeedMore(n)) if !pair && n > want && n <= MAX_HEAD => want = n,
            Err(e) => return Err(Error::Invalid(e.to_string())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nifti_names() {
        assert_eq!(name_kind("a.nii"), Some(NameKind::Single));
        assert_eq!(name_kind("a.NII.GZ"), Some(NameKind::Single));
        assert_eq!(name_kind("a.hdr"), Some(NameKind::PairHeader));
        assert_eq!(name_kind("a.img"), None);
        assert_eq!(name_kind("a.nii.d"), None);
        assert_eq!(name_kind("notes.txt"), None);
    }

    #[test]
    fn pair_candidates_follow_the_header_case_and_compression() {
        let c = pair_data_candidates(Path::new("/d/x.hdr"));
        assert_eq!(
            c,
            vec![PathBuf::from("/d/x.img"), PathBuf::from("/d/x.img.gz")]
        );
        let c = pair_data_candidates(Path::new("/d/x.hdr.gz"));
        assert_eq!(
            c,
            vec![PathBuf::from("/d/x.img.gz"), PathBuf::from("/d/x.img")]
        );
        let c = pair_data_candidates(Path::new("/d/X.HDR"));
        assert_eq!(
            c,
            vec![PathBuf::from("/d/X.IMG"), PathBuf::from("/d/X.IMG.GZ")]
        );
    }
}
