//! NIfTI datatype codes: what each `datatype` value means and how many bits a voxel takes.
//!
//! The names are numpy's (as nibabel reports them), used for the `user.nifti.dtype` xattr.

/// One NIfTI datatype: its code, its numpy-style name and the bits per voxel (`bitpix`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DataType {
    pub code: i16,
    pub name: &'static str,
    pub bits: u32,
}

/// Every datatype the NIfTI-1 and NIfTI-2 standards define (`nifti1.h`, `NIFTI_TYPE_*`).
pub const ALL: [DataType; 17] = [
    dt(1, "binary", 1),
    dt(2, "uint8", 8),
    dt(4, "int16", 16),
    dt(8, "int32", 32),
    dt(16, "float32", 32),
    dt(32, "complex64", 64),
    dt(64, "float64", 64),
    dt(128, "rgb24", 24),
    dt(256, "int8", 8),
    dt(512, "uint16", 16),
    dt(768, "uint32", 32),
    dt(1024, "int64", 64),
    dt(1280, "uint64", 64),
    dt(1536, "float128", 128),
    dt(1792, "complex128", 128),
    dt(2048, "complex256", 256),
    dt(2304, "rgba32", 32),
];

const fn dt(code: i16, name: &'static str, bits: u32) -> DataType {
    DataType { code, name, bits }
}

/// The datatype with this code, or `None` for a code NIfTI does not define (including 0, "unknown").
pub fn from_code(code: i16) -> Option<DataType> {
    ALL.iter().copied().find(|t| t.code == code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_codes_round_trip() {
        for t in ALL {
            assert_eq!(from_code(t.code), Some(t));
        }
        assert_eq!(from_code(4).map(|t| (t.name, t.bits)), Some(("int16", 16)));
        assert_eq!(
            from_code(128).map(|t| (t.name, t.bits)),
            Some(("rgb24", 24))
        );
        assert_eq!(from_code(1).map(|t| (t.name, t.bits)), Some(("binary", 1)));
    }

    #[test]
    fn unknown_codes_are_none() {
        for code in [0, -1, 3, 77, 2305, i16::MAX, i16::MIN] {
            assert_eq!(from_code(code), None, "code {code}");
        }
    }
}
