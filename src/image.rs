//! Recognising NIfTI images in SOURCE and opening their voxel data.
//!
//! [`probe`] decides whether a source file is an image nifuse can split into
//! volumes: its name must be a NIfTI name (`.nii`, `.nii.gz`, `.hdr`,
//! `.hdr.gz`), and its header must parse into an [`ImageLayout`]. The header
//! is read from the (decoded) start of the file only; no voxel data is touched.
//! For a `.hdr` the voxels live in the sibling `.img` or `.img.gz`.

use std::fs::{self, File};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::nifti::{FormatError, ImageLayout};
use crate::source::{self, DataFile, FileIdent};

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
    /// Its header file (the image itself for single files).
    pub header_path: PathBuf,
    /// The header file's metadata when parsed (owner, mode and times of
    /// `NAME.d` and its volumes; any change to them makes a new parse).
    pub header_meta: std::fs::Metadata,
    /// Volume layout and synthesized volume header.
    pub layout: ImageLayout,
    /// The file holding the voxels (the image itself, or the pair's `.img`).
    pub data: DataFile,
    /// Which version of the source this is, within one mount (set by the
    /// registry; part of the inode identity of `NAME.d` and its volumes).
    pub version: u64,
}

impl Image {
    /// Width of the volume numbers in this image's `vol_K.nii` names.
    pub fn name_width(&self) -> usize {
        let last = self.layout.n_vols().saturating_sub(1);
        last.to_string().len().max(4)
    }

    /// The file name of volume `k`.
    pub fn volume_name(&self, k: u64) -> String {
        format!("vol_{k:0width$}.nii", width = self.name_width())
    }

    /// The volume number named by `name`, if it is one of this image's volume names.
    pub fn parse_volume_name(&self, name: &str) -> Option<u64> {
        let digits = name.strip_prefix("vol_")?.strip_suffix(".nii")?;
        if digits.len() != self.name_width() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let k: u64 = digits.parse().ok()?;
        (k < self.layout.n_vols()).then_some(k)
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
/// header file's, and for pairs the data file's.
pub fn current_idents(path: &Path) -> Option<(FileIdent, Option<FileIdent>)> {
    let meta = fs::metadata(path).ok()?;
    if !meta.is_file() {
        return None;
    }
    let data = match name_kind(path.file_name()?.to_str()?)? {
        NameKind::Single => None,
        NameKind::PairHeader => pair_data_candidates(path)
            .iter()
            .find_map(|p| fs::metadata(p).ok().filter(|m| m.is_file()))
            .map(|m| FileIdent::of(&m)),
    };
    Some((FileIdent::of(&meta), data))
}

/// Parses the image at `path` (`name` is its path relative to SOURCE).
pub fn probe(
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
    let file = File::open(path).map_err(|e| reason(&e))?;
    let meta = file.metadata().map_err(|e| reason(&e))?;
    if !meta.is_file() {
        return Err(NotImage::Quiet);
    }
    let gzip = source::is_gzip(&file).map_err(|e| reason(&e))?;
    let pair = kind == NameKind::PairHeader;
    let layout = parse_head(&file, gzip, pair).map_err(|e| reason(&e))?;
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
    let data_path = if pair {
        pair_data_candidates(path)
            .into_iter()
            .find(|p| p.is_file())
            .ok_or_else(|| NotImage::Reason("no .img or .img.gz beside this .hdr".into()))?
    } else {
        path.to_path_buf()
    };
    let starts = (0..layout.n_vols())
        .filter_map(|k| layout.vol_source_range(k).map(|r| r.start))
        .collect();
    let data = DataFile::open(&data_path, starts, index_dir).map_err(|e| reason(&e))?;
    Ok(Image {
        name: name.to_string(),
        header_path: path.to_path_buf(),
        header_meta: meta,
        layout,
        data,
        version: 0,
    })
}

/// Reads as much of the start of `file` as the header says it needs, and parses it.
fn parse_head(file: &File, gzip: bool, pair: bool) -> Result<ImageLayout> {
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
