//! A view resolved against its image: which source volumes, which plane,
//! how many bytes per voxel in and out, and so the exact file size.
//!
//! Everything here comes from the header alone (and, for `b0.nii` and
//! `shell_B.nii`, from the diffusion sidecars), so `stat` of any view reads
//! no voxel data.

use std::sync::Arc;

use super::convert::FloatConversion;
use super::{Axis, Output, Selection, View};
use crate::nifti::ImageLayout;

/// The source volumes a view takes, in output order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Volumes {
    /// `first, first + step, ...`, `count` of them.
    Stepped {
        /// The first volume.
        first: u64,
        /// How many.
        count: u64,
        /// The distance between two.
        step: u64,
    },
    /// These volumes (a diffusion shell).
    List(Arc<[u64]>),
}

impl Volumes {
    /// How many volumes.
    pub fn count(&self) -> u64 {
        match self {
            Volumes::Stepped { count, .. } => *count,
            Volumes::List(list) => list.len() as u64,
        }
    }

    /// All the source volumes, in order.
    pub fn to_vec(&self) -> Vec<u64> {
        (0..self.count()).filter_map(|i| self.get(i)).collect()
    }

    /// The source volume of output volume `i`.
    pub fn get(&self, i: u64) -> Option<u64> {
        match self {
            Volumes::Stepped { first, count, step } => {
                (i < *count).then(|| first.checked_add(i.checked_mul(*step)?))?
            }
            Volumes::List(list) => list.get(usize::try_from(i).ok()?).copied(),
        }
    }
}

/// The volume lists chosen by an image's diffusion sidecars.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VolumeSets {
    /// The volumes of `b0.nii`.
    pub b0: Arc<[u64]>,
    /// The volumes of each `shell_B.nii`, in increasing b.
    pub shells: Vec<Arc<[u64]>>,
}

/// A view of one image, resolved: what its file holds.
#[derive(Clone, Debug)]
pub struct Shape {
    /// The view.
    pub view: View,
    /// The source volumes, in output order.
    pub volumes: Volumes,
    /// For a slice: the axis and the index along it.
    pub plane: Option<(Axis, u64)>,
    /// Voxels per output volume (a whole volume, or one plane of it).
    pub vol_voxels: u64,
    /// Bytes per voxel in the source.
    pub in_bpv: u64,
    /// Bytes per voxel in the view.
    pub out_bpv: u64,
    /// Bytes of header (and extensions) before the data.
    pub header_len: u64,
    /// For a float view: how its voxels are computed from the stored ones.
    pub conversion: Option<FloatConversion>,
}

impl Shape {
    /// `view` of the image with `layout`, or `None` if the image has no such
    /// view (an index out of range, a shell the sidecars do not define, a
    /// float view of complex data). `floats` are the image's float32 and
    /// float64 conversions, where it has them.
    pub fn resolve(
        layout: &ImageLayout,
        view: View,
        sets: Option<&VolumeSets>,
        floats: &[Option<FloatConversion>; 2],
    ) -> Option<Shape> {
        let n = layout.n_vols();
        let all = Volumes::Stepped {
            first: 0,
            count: n,
            step: 1,
        };
        let (volumes, plane) = match view.selection {
            Selection::Volume(k) => (
                Volumes::Stepped {
                    first: k,
                    count: u64::from(k < n),
                    step: 1,
                },
                None,
            ),
            Selection::Range { first, last, step } => {
                if step == 0 || first > last || last >= n {
                    return None;
                }
                let count = (last - first) / step + 1;
                (Volumes::Stepped { first, count, step }, None)
            }
            Selection::Whole => (all, None),
            Selection::Slice { axis, index } => {
                if index >= layout.vol_dims()[axis.index()] {
                    return None;
                }
                (all, Some((axis, index)))
            }
            Selection::B0 => (Volumes::List(sets?.b0.clone()), None),
            Selection::Shell(i) => (
                Volumes::List(sets?.shells.get(usize::try_from(i).ok()?)?.clone()),
                None,
            ),
        };
        if volumes.count() == 0 {
            return None;
        }
        let [dx, dy, dz] = layout.vol_dims();
        let vol_voxels = match plane {
            None => dx.checked_mul(dy)?.checked_mul(dz)?,
            Some((Axis::X, _)) => dy.checked_mul(dz)?,
            Some((Axis::Y, _)) => dx.checked_mul(dz)?,
            Some((Axis::Z, _)) => dx.checked_mul(dy)?,
        };
        let conversion = match view.output {
            Output::Stored => None,
            Output::Float32 => Some(floats[0]?),
            Output::Float64 => Some(floats[1]?),
        };
        let out_bpv =
            conversion.map_or(layout.bytes_per_voxel(), |c| c.out_bytes_per_voxel() as u64);
        let keep_afni = view.selection == Selection::Whole;
        Some(Shape {
            view,
            volumes,
            plane,
            vol_voxels,
            in_bpv: layout.bytes_per_voxel(),
            out_bpv,
            header_len: layout.header_len(keep_afni),
            conversion,
        })
    }

    /// Bytes of one output volume.
    pub fn out_vol_bytes(&self) -> u64 {
        self.vol_voxels.saturating_mul(self.out_bpv)
    }

    /// Bytes of data after the header.
    pub fn data_len(&self) -> u64 {
        self.out_vol_bytes().saturating_mul(self.volumes.count())
    }

    /// The size of the view's file.
    pub fn file_size(&self) -> u64 {
        self.header_len.saturating_add(self.data_len())
    }
}
