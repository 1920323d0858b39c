//! Which bytes make `vol_K.nii`: the layout of a source image's data and the
//! synthesized header every volume file starts with.
//!
//! A volume file is `vol_header()` (the source header patched to 3D, plus its kept
//! extensions, padded to a multiple of 16) followed by the K-th `vol_bytes()` of the
//! source's data stream, exactly as stored. `plan_read` turns a read of a volume file
//! into "these header bytes, then this source range".

use std::ops::Range;

use super::datatype::{self, DataType};
use super::error::FormatError;
use super::extension::{ECODE_AFNI, Extension, parse_extensions};
use super::header::Header;

/// Largest `vox_offset` nifuse accepts: header and extensions are held in memory.
pub const MAX_VOX_OFFSET: u64 = 64 << 20;

/// `NIFTI_INTENT_TIME_SERIES`: meaningless for a single volume, so cleared in volume headers.
pub const INTENT_TIME_SERIES: i32 = 2001;

/// One read of a volume file: copy `vol_header()[header]`, then append the bytes of
/// the data stream in `data`. An empty range is `0..0`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReadPlan {
    pub header: Range<usize>,
    pub data: Range<u64>,
}

/// A validated source image: where its voxel data lies and how it splits into volumes.
#[derive(Clone, Debug)]
pub struct ImageLayout {
    header: Header,
    dtype: DataType,
    ndim: usize,
    data_offset: u64,
    vol_bytes: u64,
    n_vols: u64,
    sizes: [u64; 8],
    extender: [u8; 4],
    extensions: Vec<Extension>,
    vol_header: Vec<u8>,
    vol_file_size: u64,
}

impl ImageLayout {
    /// Validate the header at the start of `head` and compute the layout.
    ///
    /// `head` is the whole `.hdr` file for a pair (`pair == true`, data in the `.img`
    /// from `vox_offset`), or the start of a single file, at least up to `vox_offset`;
    /// if it is shorter, the answer is `NeedMore(vox_offset)`: read that much and retry.
    pub fn new(head: &[u8], pair: bool) -> Result<ImageLayout, FormatError> {
        let header = Header::parse(head)?;
        let dims = header.dims();
        let ndim = check_ndim(dims[0])?;
        let mut sizes = [1u64; 8];
        for (i, size) in sizes.iter_mut().enumerate().take(ndim + 1).skip(1) {
            *size = u64::try_from(dims[i])
                .ok()
                .filter(|d| *d >= 1)
                .ok_or(FormatError::Dim {
                    index: i,
                    value: dims[i],
                })?;
        }
        let dtype = check_dtype(&header)?;
        let data_offset = check_vox_offset(&header, pair)?;

        let overflow = FormatError::Overflow;
        let voxels = checked_product(&sizes[1..4]).ok_or(overflow("voxels per volume"))?;
        let vol_bits = voxels
            .checked_mul(u64::from(dtype.bits))
            .ok_or(overflow("bits per volume"))?;
        if vol_bits % 8 != 0 {
            return Err(FormatError::VolumeNotByteAligned {
                voxels,
                bits: dtype.bits,
            });
        }
        let vol_bytes = vol_bits / 8;
        let n_vols = checked_product(&sizes[4..8]).ok_or(overflow("volume count"))?;
        vol_bytes
            .checked_mul(n_vols)
            .and_then(|b| b.checked_add(data_offset))
            .ok_or(overflow("end of the voxel data"))?;

        let after_header = if pair {
            head.get(header.len()..)
        } else {
            usize::try_from(data_offset)
                .ok()
                .and_then(|end| head.get(header.len()..end))
        }
        .ok_or(FormatError::NeedMore(data_offset))?;
        let extensions = parse_extensions(after_header, header.big_endian())?;
        let extender: [u8; 4] = match extensions.is_empty() {
            true => [0; 4],
            false => after_header
                .get(..4)
                .and_then(|e| e.try_into().ok())
                .unwrap_or_default(),
        };
        let vol_header = build_header(&header, extender, &extensions, false, |h| {
            let d = h.dims();
            h.set_dims([3, d[1], d[2], d[3], 1, 1, 1, 1]);
            if h.intent_code() == INTENT_TIME_SERIES {
                h.set_intent_code(0);
            }
        })?;
        let vol_file_size = u64::try_from(vol_header.len())
            .ok()
            .and_then(|h| h.checked_add(vol_bytes))
            .ok_or(overflow("volume file size"))?;
        Ok(ImageLayout {
            header,
            dtype,
            ndim,
            data_offset,
            vol_bytes,
            n_vols,
            sizes,
            extender,
            extensions,
            vol_header,
            vol_file_size,
        })
    }

    /// `dim[1..=3]`: the voxels of one volume along x, y and z.
    pub fn vol_dims(&self) -> [u64; 3] {
        [self.sizes[1], self.sizes[2], self.sizes[3]]
    }

    /// Bytes per voxel (`bitpix / 8`; every datatype with volume files has whole bytes).
    pub fn bytes_per_voxel(&self) -> u64 {
        u64::from(self.dtype.bits / 8)
    }

    /// The header's extensions, in file order, raw.
    pub fn extensions(&self) -> &[Extension] {
        &self.extensions
    }

    /// The length of a view header built from this image's header
    /// ([`build_header`]): header, extender and extensions (AFNI's only if
    /// `keep_afni`), padded to a multiple of 16.
    pub fn header_len(&self, keep_afni: bool) -> u64 {
        let kept: u64 = self
            .extensions
            .iter()
            .filter(|e| keep_afni || e.code != ECODE_AFNI)
            .map(|e| e.raw.len() as u64)
            .sum();
        // Every extension is at least 16 bytes, so some are kept iff `kept > 0`.
        let extender = if kept > 0 { 4 } else { 0 };
        (self.header.len() as u64 + extender + kept).next_multiple_of(16)
    }

    /// The 4 extender bytes after the header (zeros when there are no extensions).
    pub fn extender(&self) -> [u8; 4] {
        self.extender
    }

    pub fn header(&self) -> &Header {
        &self.header
    }

    pub fn dtype(&self) -> DataType {
        self.dtype
    }

    /// `dim[1..=dim[0]]`, e.g. `[64, 64, 30, 200]`.
    pub fn shape(&self) -> Vec<i64> {
        self.header
            .dims()
            .get(1..=self.ndim)
            .map(<[i64]>::to_vec)
            .unwrap_or_default()
    }

    /// Where voxel data starts in the data stream (the single file, or the `.img`).
    pub fn data_offset(&self) -> u64 {
        self.data_offset
    }

    pub fn vol_bytes(&self) -> u64 {
        self.vol_bytes
    }

    /// Product of `dim[4..=dim[0]]`: 1 for a 3D image.
    pub fn n_vols(&self) -> u64 {
        self.n_vols
    }

    /// `vol_bytes() * n_vols()`: what a complete source holds after `data_offset()`.
    pub fn data_bytes(&self) -> u64 {
        // Checked in `new`; saturating only to stay panic-free.
        self.vol_bytes.saturating_mul(self.n_vols)
    }

    /// Header, extender, kept extensions and padding: the start of every `vol_K.nii`.
    pub fn vol_header(&self) -> &[u8] {
        &self.vol_header
    }

    pub fn vol_file_size(&self) -> u64 {
        self.vol_file_size
    }

    /// The bytes of volume `k` in the data stream, or `None` if there is no volume `k`.
    pub fn vol_source_range(&self, k: u64) -> Option<Range<u64>> {
        if k >= self.n_vols {
            return None;
        }
        let start = self
            .vol_bytes
            .checked_mul(k)?
            .checked_add(self.data_offset)?;
        Some(start..start.checked_add(self.vol_bytes)?)
    }

    /// What to copy to answer a read of `size` bytes at `offset` in `vol_K.nii`,
    /// clamped to the end of the file; empty for reads at or past the end or for `k`
    /// beyond the last volume.
    pub fn plan_read(&self, k: u64, offset: u64, size: u32) -> ReadPlan {
        let Some(source) = self.vol_source_range(k) else {
            return ReadPlan::default();
        };
        let end = offset
            .saturating_add(u64::from(size))
            .min(self.vol_file_size);
        if offset >= end {
            return ReadPlan::default();
        }
        let hlen = self.vol_file_size - self.vol_bytes;
        let header = usize::try_from(offset.min(hlen)).unwrap_or_default()
            ..usize::try_from(end.min(hlen)).unwrap_or_default();
        let data = source.start + (offset.max(hlen) - hlen)..source.start + (end.max(hlen) - hlen);
        ReadPlan {
            header: if header.is_empty() { 0..0 } else { header },
            data: if data.is_empty() { 0..0 } else { data },
        }
    }
}

fn check_ndim(dim0: i64) -> Result<usize, FormatError> {
    usize::try_from(dim0)
        .ok()
        .filter(|n| (3..=7).contains(n))
        .ok_or(FormatError::Ndim(dim0))
}

fn check_dtype(header: &Header) -> Result<DataType, FormatError> {
    let code = header.datatype_code();
    let dtype = datatype::from_code(code).ok_or(FormatError::UnknownDatatype(code))?;
    let bitpix = header.bitpix();
    if i64::from(bitpix) != i64::from(dtype.bits) {
        return Err(FormatError::Bitpix {
            bitpix,
            name: dtype.name,
            bits: dtype.bits,
        });
    }
    Ok(dtype)
}

/// `vox_offset` as a byte offset: finite, whole, non-negative, at most
/// `MAX_VOX_OFFSET`, and past header + extender in a single file.
fn check_vox_offset(header: &Header, pair: bool) -> Result<u64, FormatError> {
    let v = header.vox_offset();
    if !v.is_finite() {
        return Err(FormatError::VoxOffsetNotFinite(v));
    }
    if v < 0.0 {
        return Err(FormatError::VoxOffsetNegative(v));
    }
    if v.fract() != 0.0 {
        return Err(FormatError::VoxOffsetFraction(v));
    }
    if v > MAX_VOX_OFFSET as f64 {
        return Err(FormatError::VoxOffsetTooLarge {
            value: v,
            max: MAX_VOX_OFFSET,
        });
    }
    let offset = v as u64;
    let min = header.len() as u64 + 4;
    if !pair && offset < min {
        return Err(FormatError::VoxOffsetTooSmall { value: offset, min });
    }
    Ok(offset)
}

fn checked_product(sizes: &[u64]) -> Option<u64> {
    sizes.iter().try_fold(1u64, |acc, d| acc.checked_mul(*d))
}

/// A single-file header made from `source`: the header patched by `patch`,
/// with the single-file magic and a new `vox_offset`; then the extender and
/// every extension (AFNI's only if `keep_afni`), raw; then zeros to a
/// multiple of 16. Every view file starts with one (a volume's: SPEC section 3).
pub fn build_header(
    source: &Header,
    extender: [u8; 4],
    extensions: &[Extension],
    keep_afni: bool,
    patch: impl FnOnce(&mut Header),
) -> Result<Vec<u8>, FormatError> {
    let kept: Vec<&Extension> = extensions
        .iter()
        .filter(|e| keep_afni || e.code != ECODE_AFNI)
        .collect();
    let extender = if kept.is_empty() { [0; 4] } else { extender };
    let overflow = || FormatError::Overflow("view header size");
    let used = kept
        .iter()
        .try_fold(source.len() + extender.len(), |n, e| {
            n.checked_add(e.raw.len())
        })
        .ok_or_else(overflow)?;
    let vox_offset = used.checked_next_multiple_of(16).ok_or_else(overflow)?;

    let mut header = source.clone();
    patch(&mut header);
    header.set_single_file_magic();
    header.set_vox_offset(u64::try_from(vox_offset).map_err(|_| overflow())?);

    let mut out = Vec::with_capacity(vox_offset);
    out.extend_from_slice(header.bytes());
    out.extend_from_slice(&extender);
    for e in kept {
        out.extend_from_slice(&e.raw);
    }
    out.resize(vox_offset, 0);
    Ok(out)
}
