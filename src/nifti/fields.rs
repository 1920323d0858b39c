//! The header field tables of NIfTI-1 and NIfTI-2: name, offset and storage type of
//! every field, in the style of nibabel's `header_dtd` (`nifti1.py`, `nifti2.py`).
//!
//! NIfTI-2 is NIfTI-1 with another table: wider numbers, other offsets, an 8-byte magic.
//! `FieldTable::all` lists every field in header order (tests check that it tiles the
//! header exactly); the named members are the fields nifuse decodes or patches.

/// How one element of a field is stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    U8,
    I16,
    I32,
    I64,
    F32,
    F64,
}

impl Kind {
    /// Bytes per element.
    pub const fn size(self) -> usize {
        match self {
            Kind::U8 => 1,
            Kind::I16 => 2,
            Kind::I32 | Kind::F32 => 4,
            Kind::I64 | Kind::F64 => 8,
        }
    }
}

/// Where a field lives: byte offset, element type and element count.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Field {
    pub offset: usize,
    pub kind: Kind,
    pub count: usize,
}

impl Field {
    /// Bytes the whole field takes.
    pub const fn size(self) -> usize {
        self.kind.size() * self.count
    }
}

const fn f(offset: usize, kind: Kind, count: usize) -> Field {
    Field {
        offset,
        kind,
        count,
    }
}

/// The layout of one header version.
#[derive(Debug)]
pub struct FieldTable {
    /// `sizeof_hdr`: 348 or 540.
    pub len: usize,
    pub sizeof_hdr: Field,
    pub magic: Field,
    pub dim: Field,
    pub intent_code: Field,
    pub datatype: Field,
    pub bitpix: Field,
    pub pixdim: Field,
    pub vox_offset: Field,
    pub scl_slope: Field,
    pub scl_inter: Field,
    pub qform_code: Field,
    pub sform_code: Field,
    /// Every field, in header order.
    pub all: &'static [(&'static str, Field)],
}

use Kind::*;

mod n1 {
    use super::{Field, Kind::*, f};
    pub const SIZEOF_HDR: Field = f(0, I32, 1);
    pub const DIM: Field = f(40, I16, 8);
    pub const INTENT_CODE: Field = f(68, I16, 1);
    pub const DATATYPE: Field = f(70, I16, 1);
    pub const BITPIX: Field = f(72, I16, 1);
    pub const PIXDIM: Field = f(76, F32, 8);
    pub const VOX_OFFSET: Field = f(108, F32, 1);
    pub const SCL_SLOPE: Field = f(112, F32, 1);
    pub const SCL_INTER: Field = f(116, F32, 1);
    pub const QFORM_CODE: Field = f(252, I16, 1);
    pub const SFORM_CODE: Field = f(254, I16, 1);
    pub const MAGIC: Field = f(344, U8, 4);
}

/// NIfTI-1: 348 bytes, magic `n+1\0` (single file) or `ni1\0` (pair).
pub const NIFTI1: FieldTable = FieldTable {
    len: 348,
    sizeof_hdr: n1::SIZEOF_HDR,
    magic: n1::MAGIC,
    dim: n1::DIM,
    intent_code: n1::INTENT_CODE,
    datatype: n1::DATATYPE,
    bitpix: n1::BITPIX,
    pixdim: n1::PIXDIM,
    vox_offset: n1::VOX_OFFSET,
    scl_slope: n1::SCL_SLOPE,
    scl_inter: n1::SCL_INTER,
    qform_code: n1::QFORM_CODE,
    sform_code: n1::SFORM_CODE,
    all: &[
        ("sizeof_hdr", n1::SIZEOF_HDR),
        ("data_type", f(4, U8, 10)),
        ("db_name", f(14, U8, 18)),
        ("extents", f(32, I32, 1)),
        ("session_error", f(36, I16, 1)),
        ("regular", f(38, U8, 1)),
        ("dim_info", f(39, U8, 1)),
        ("dim", n1::DIM),
        ("intent_p1", f(56, F32, 1)),
        ("intent_p2", f(60, F32, 1)),
        ("intent_p3", f(64, F32, 1)),
        ("intent_code", n1::INTENT_CODE),
        ("datatype", n1::DATATYPE),
        ("bitpix", n1::BITPIX),
        ("slice_start", f(74, I16, 1)),
        ("pixdim", n1::PIXDIM),
        ("vox_offset", n1::VOX_OFFSET),
        ("scl_slope", n1::SCL_SLOPE),
        ("scl_inter", n1::SCL_INTER),
        ("slice_end", f(120, I16, 1)),
        ("slice_code", f(122, U8, 1)),
        ("xyzt_units", f(123, U8, 1)),
        ("cal_max", f(124, F32, 1)),
        ("cal_min", f(128, F32, 1)),
        ("slice_duration", f(132, F32, 1)),
        ("toffset", f(136, F32, 1)),
        ("glmax", f(140, I32, 1)),
        ("glmin", f(144, I32, 1)),
        ("descrip", f(148, U8, 80)),
        ("aux_file", f(228, U8, 24)),
        ("qform_code", n1::QFORM_CODE),
        ("sform_code", n1::SFORM_CODE),
        ("quatern_b", f(256, F32, 1)),
        ("quatern_c", f(260, F32, 1)),
        ("quatern_d", f(264, F32, 1)),
        ("qoffset_x", f(268, F32, 1)),
        ("qoffset_y", f(272, F32, 1)),
        ("qoffset_z", f(276, F32, 1)),
        ("srow_x", f(280, F32, 4)),
        ("srow_y", f(296, F32, 4)),
        ("srow_z", f(312, F32, 4)),
        ("intent_name", f(328, U8, 16)),
        ("magic", n1::MAGIC),
    ],
};

mod n2 {
    use super::{Field, Kind::*, f};
    pub const SIZEOF_HDR: Field = f(0, I32, 1);
    pub const MAGIC: Field = f(4, U8, 8);
    pub const DATATYPE: Field = f(12, I16, 1);
    pub const BITPIX: Field = f(14, I16, 1);
    pub const DIM: Field = f(16, I64, 8);
    pub const PIXDIM: Field = f(104, F64, 8);
    pub const VOX_OFFSET: Field = f(168, I64, 1);
    pub const SCL_SLOPE: Field = f(176, F64, 1);
    pub const SCL_INTER: Field = f(184, F64, 1);
    pub const QFORM_CODE: Field = f(344, I32, 1);
    pub const SFORM_CODE: Field = f(348, I32, 1);
    pub const INTENT_CODE: Field = f(504, I32, 1);
}

/// NIfTI-2: 540 bytes, magic `n+2\0` or `ni2\0` followed by `\r\n\x1a\n`.
pub const NIFTI2: FieldTable = FieldTable {
    len: 540,
    sizeof_hdr: n2::SIZEOF_HDR,
    magic: n2::MAGIC,
    dim: n2::DIM,
    intent_code: n2::INTENT_CODE,
    datatype: n2::DATATYPE,
    bitpix: n2::BITPIX,
    pixdim: n2::PIXDIM,
    vox_offset: n2::VOX_OFFSET,
    scl_slope: n2::SCL_SLOPE,
    scl_inter: n2::SCL_INTER,
    qform_code: n2::QFORM_CODE,
    sform_code: n2::SFORM_CODE,
    all: &[
        ("sizeof_hdr", n2::SIZEOF_HDR),
        ("magic", n2::MAGIC),
        ("datatype", n2::DATATYPE),
        ("bitpix", n2::BITPIX),
        ("dim", n2::DIM),
        ("intent_p1", f(80, F64, 1)),
        ("intent_p2", f(88, F64, 1)),
        ("intent_p3", f(96, F64, 1)),
        ("pixdim", n2::PIXDIM),
        ("vox_offset", n2::VOX_OFFSET),
        ("scl_slope", n2::SCL_SLOPE),
        ("scl_inter", n2::SCL_INTER),
        ("cal_max", f(192, F64, 1)),
        ("cal_min", f(200, F64, 1)),
        ("slice_duration", f(208, F64, 1)),
        ("toffset", f(216, F64, 1)),
        ("slice_start", f(224, I64, 1)),
        ("slice_end", f(232, I64, 1)),
        ("descrip", f(240, U8, 80)),
        ("aux_file", f(320, U8, 24)),
        ("qform_code", n2::QFORM_CODE),
        ("sform_code", n2::SFORM_CODE),
        ("quatern_b", f(352, F64, 1)),
        ("quatern_c", f(360, F64, 1)),
        ("quatern_d", f(368, F64, 1)),
        ("qoffset_x", f(376, F64, 1)),
        ("qoffset_y", f(384, F64, 1)),
        ("qoffset_z", f(392, F64, 1)),
        ("srow_x", f(400, F64, 4)),
        ("srow_y", f(432, F64, 4)),
        ("srow_z", f(464, F64, 4)),
        ("slice_code", f(496, I32, 1)),
        ("xyzt_units", f(500, I32, 1)),
        ("intent_code", n2::INTENT_CODE),
        ("intent_name", f(508, U8, 16)),
        ("dim_info", f(524, U8, 1)),
        ("unused_str", f(525, U8, 15)),
    ],
};

#[cfg(test)]
mod tests {
    use super::*;

    fn named(t: &FieldTable) -> [(&'static str, Field); 12] {
        [
            ("sizeof_hdr", t.sizeof_hdr),
            ("magic", t.magic),
            ("dim", t.dim),
            ("intent_code", t.intent_code),
            ("datatype", t.datatype),
            ("bitpix", t.bitpix),
            ("pixdim", t.pixdim),
            ("vox_offset", t.vox_offset),
            ("scl_slope", t.scl_slope),
            ("scl_inter", t.scl_inter),
            ("qform_code", t.qform_code),
            ("sform_code", t.sform_code),
        ]
    }

    #[test]
    fn tables_tile_the_header_exactly() {
        for t in [&NIFTI1, &NIFTI2] {
            let mut at = 0;
            for (name, field) in t.all {
                assert_eq!(field.offset, at, "{name} in the {}-byte table", t.len);
                at += field.size();
            }
            assert_eq!(at, t.len);
        }
    }

    #[test]
    fn named_fields_agree_with_the_table() {
        for t in [&NIFTI1, &NIFTI2] {
            for (name, field) in named(t) {
                let listed: Vec<_> = t.all.iter().filter(|(n, _)| *n == name).collect();
                assert_eq!(
                    listed,
                    vec![&(name, field)],
                    "{name} in the {}-byte table",
                    t.len
                );
            }
        }
    }
}
