//! What a file in `NAME.d/` shows: a selection of the image's data and an output type.
//!
//! A [`View`] is a [`Selection`] (one volume, a run of volumes with a step,
//! the whole image, a slice along an axis, or the volumes of a diffusion
//! shell) and an [`Output`] type (the bytes as stored, float32 or float64).
//! Resolved against its image ([`Shape`], in `shape.rs`) a view gives its
//! header bytes (`header.rs`), its size, and for any read of its data the
//! source bytes to fetch and how to turn them into output (`gather.rs`).
//! Which name in which directory is which view is `names.rs`.
//!
//! ```text
//! NAME.d/vol_0003.nii       Volume(3), Stored
//! NAME.d/vols_0002-0009.nii Range { first: 2, last: 9, step: 1 }, Stored
//! NAME.d/bold.nii           Whole, Stored
//! NAME.d/float32/z/slice_0010.nii   Slice { axis: Z, index: 10 }, Float32
//! ```

pub mod convert;
pub mod dwi;
pub mod gather;
pub mod header;
pub mod names;
pub mod shape;

/// An axis of the voxel grid.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Axis {
    /// `dim[1]`.
    X,
    /// `dim[2]`.
    Y,
    /// `dim[3]`.
    Z,
}

impl Axis {
    /// All three, in order.
    pub const ALL: [Axis; 3] = [Axis::X, Axis::Y, Axis::Z];

    /// 0, 1 or 2.
    pub fn index(self) -> usize {
        match self {
            Axis::X => 0,
            Axis::Y => 1,
            Axis::Z => 2,
        }
    }

    /// The directory name: `x`, `y` or `z`.
    pub fn name(self) -> &'static str {
        match self {
            Axis::X => "x",
            Axis::Y => "y",
            Axis::Z => "z",
        }
    }
}

/// The data type a view's voxels are served as.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Output {
    /// The bytes exactly as stored in the source.
    Stored,
    /// `get_fdata(dtype=float32)`.
    Float32,
    /// `get_fdata(dtype=float64)`.
    Float64,
}

impl Output {
    /// The directory name of a float output (`float32`, `float64`).
    pub fn dir_name(self) -> Option<&'static str> {
        match self {
            Output::Stored => None,
            Output::Float32 => Some("float32"),
            Output::Float64 => Some("float64"),
        }
    }

    /// The float outputs, in listing order.
    pub const FLOATS: [Output; 2] = [Output::Float32, Output::Float64];
}

/// Which voxels of the image a view holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Selection {
    /// Volume `k` (`vol_K.nii`): a 3D image.
    Volume(u64),
    /// Volumes `first, first + step, ...` up to `last` (`vols_A-B[_stepS].nii`): 4D.
    Range {
        /// The first volume.
        first: u64,
        /// The last volume that may be taken.
        last: u64,
        /// Every `step`-th volume (at least 1).
        step: u64,
    },
    /// The whole image as one single file (`STEM.nii`).
    Whole,
    /// Index `index` along `axis`, in every volume (`x/slice_NNNN.nii`).
    Slice {
        /// The axis sliced.
        axis: Axis,
        /// The index along it.
        index: u64,
    },
    /// The volumes with b <= 10 (`b0.nii`), from the diffusion sidecars.
    B0,
    /// The volumes of the `n`-th diffusion shell (`shell_B.nii`), in increasing b.
    Shell(u32),
}

/// One file of `NAME.d/` (or of its subdirectories): a selection and an output type.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct View {
    /// Which voxels.
    pub selection: Selection,
    /// As what.
    pub output: Output,
}

/// A directory of views: `NAME.d/` itself, `float32/`, `float64/`, and the
/// slice directories `x/ y/ z/` under each of them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Dir {
    /// The output type of the views in it.
    pub output: Output,
    /// The axis of a slice directory.
    pub axis: Option<Axis>,
}

impl Dir {
    /// `NAME.d/` itself.
    pub const TOP: Dir = Dir {
        output: Output::Stored,
        axis: None,
    };

    /// The directory one level up (`NAME.d/` for `float32/` and `x/`), or
    /// `None` for `NAME.d/` itself.
    pub fn parent(self) -> Option<Dir> {
        match (self.axis, self.output) {
            (Some(_), output) => Some(Dir { output, axis: None }),
            (None, Output::Stored) => None,
            (None, _) => Some(Dir::TOP),
        }
    }
}
