//! The views `nifuse info` lists: what `NAME.d/` of an image holds besides
//! its volumes, with their names, each in one line of words.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use crate::fs::image::{Image, stem};
use crate::fs::sidecars::Sidecars;
use crate::source::Store;
use crate::view::names::width;
use crate::view::shape::Shape;
use crate::view::{Axis, Output, Selection, View};

/// One kind of view an image offers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ViewLine {
    /// Its name or name pattern in `NAME.d/` (`bold.nii`, `vols_A-B.nii`, `z/`).
    pub name: String,
    /// Whether `ls` shows it (ranges are found on lookup only).
    pub listed: bool,
    /// What it holds.
    pub what: String,
}

fn line(name: impl Into<String>, listed: bool, what: impl Into<String>) -> ViewLine {
    ViewLine {
        name: name.into(),
        listed,
        what: what.into(),
    }
}

/// The views of `img` (its file `file_name` in `store`, whose sidecars sit beside it).
pub fn views(store: &Arc<dyn Store>, img: &Image, file_name: &str) -> Vec<ViewLine> {
    let layout = &img.layout;
    let n = layout.n_vols();
    let w = width(n);
    let stem = stem(file_name);
    let size =
        |view: View| Shape::resolve(layout, view, None, &img.floats).map_or(0, |s| s.file_size());
    let whole = View {
        selection: Selection::Whole,
        output: Output::Stored,
    };
    let mut out = vec![
        line(
            format!("{stem}.nii"),
            true,
            format!("the whole image, uncompressed, {} bytes", size(whole)),
        ),
        line(
            "vols_A-B.nii, vols_A-B_stepS.nii",
            false,
            format!(
                "volumes A to B (every S-th), A and B with {w} digits, from 0 to {}",
                n.saturating_sub(1)
            ),
        ),
    ];
    out.push(match img.floats {
        [Some(_), Some(_)] => line(
            "float32/, float64/",
            true,
            "the same files with the data as get_fdata(dtype) gives it",
        ),
        _ => line(
            "float32/, float64/",
            false,
            format!("none: {} data", layout.dtype().name),
        ),
    });
    let dims = layout.vol_dims();
    for axis in Axis::ALL {
        let count = dims[axis.index()];
        let sw = width(count);
        out.push(line(
            format!("{}/", axis.name()),
            true,
            format!(
                "slice_{:0sw$}.nii .. slice_{:0sw$}.nii: {count} slices across all volumes",
                0,
                count.saturating_sub(1)
            ),
        ));
    }
    let sidecars = Sidecars::new(store.clone(), Duration::ZERO).of(Path::new(file_name), img);
    if let Some(why) = sidecars.problem() {
        out.push(line(".bval, .bvec", false, format!("none: {why}")));
    } else if sidecars.has_gradients() {
        out.push(line(
            "V.bval, V.bvec",
            true,
            "beside every volume, range, b0 and shell view V.nii",
        ));
        let b0 = sidecars.b0_count();
        if b0 > 0 {
            out.push(line("b0.nii", true, format!("{b0} volumes with b < 10")));
        }
        let shells = sidecars.shells();
        if shells.is_empty() {
            out.push(line("shell_B.nii", false, "none: MRtrix3 finds no shells"));
        }
        for (name, count) in shells {
            out.push(line(
                format!("{name}.nii"),
                true,
                format!("{count} volumes"),
            ));
        }
    }
    if sidecars.has_json() {
        out.push(line(
            "V.json",
            true,
            format!("{stem}.json, beside every view V.nii"),
        ));
    }
    out
}
