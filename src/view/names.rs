//! The names of a view directory: which name is which view, and what a
//! directory lists.
//!
//! In `NAME.d/` and in `float32/`, `float64/` (W = the width of the volume
//! numbers: 4, or as many digits as the last volume needs):
//!
//! | name | what | listed |
//! |---|---|---|
//! | `vol_K.nii` | volume K, K with exactly W digits | yes |
//! | `vols_A-B.nii`, `vols_A-B_stepS.nii` | volumes A..=B, every S-th | no: found on lookup |
//! | `STEM.nii` | the whole image | yes |
//! | `b0.nii`, `shell_B.nii` | diffusion b=0 volumes, shells | yes, with sidecars |
//! | `x/ y/ z/` | slice directories | yes |
//! | `float32/ float64/` | the same in float (in `NAME.d/` only) | yes, unless complex or RGB |
//! | `V.bval`, `V.bvec`, `V.json` | sidecars of the view `V.nii` | yes, where the source has them |
//!
//! In a slice directory: `slice_NNNN.nii` (and `slice_NNNN.json`), NNNN with
//! `max(4, digits)` digits. Every other name is not found: a malformed name is
//! never guessed at, so each view has exactly one name. Where `STEM.nii` would
//! be the name of another view (an image called `vol_0000.nii.gz`), the other
//! view keeps the name and the whole image is not offered.

use super::{Axis, Dir, Output, Selection, View};

/// What a name in a view directory stands for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Entry {
    /// An image file.
    View(View),
    /// A subdirectory.
    Dir(Dir),
    /// A sidecar file of a view.
    Sidecar(View, Sidecar),
}

/// The kinds of sidecar file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Sidecar {
    /// FSL b-values, `.bval`.
    Bval,
    /// FSL gradient directions, `.bvec`.
    Bvec,
    /// The BIDS JSON sidecar, `.json`.
    Json,
}

impl Sidecar {
    /// All kinds, in listing order.
    pub const ALL: [Sidecar; 3] = [Sidecar::Bval, Sidecar::Bvec, Sidecar::Json];

    /// The file extension, with its dot.
    pub fn ext(self) -> &'static str {
        match self {
            Sidecar::Bval => ".bval",
            Sidecar::Bvec => ".bvec",
            Sidecar::Json => ".json",
        }
    }
}

/// What the names of one image's view directories depend on.
#[derive(Clone, Debug, Default)]
pub struct Catalog {
    /// Number of volumes (dims 4..7 flattened).
    pub n_vols: u64,
    /// `dim[1..=3]`.
    pub dims: [u64; 3],
    /// The image name without `.nii`, `.nii.gz`, `.hdr`, `.img`, `.img.gz`.
    pub stem: String,
    /// Whether float views exist (not for complex or RGB data).
    pub floats: bool,
    /// The largest range count a header can hold (NIfTI-1 dims are 16 bits).
    pub max_count: u64,
    /// Whether b-value sidecars were read (so volume views get `.bval`/`.bvec`).
    pub gradients: bool,
    /// Whether there are any b=0 volumes (`b0.nii`).
    pub b0: bool,
    /// The names of the shells (`shell_1000`), in increasing b.
    pub shells: Vec<String>,
    /// Whether a BIDS `STEM.json` sits beside the image.
    pub json: bool,
}

/// The number of digits volume names have: 4, or as many as the last index needs.
pub fn width(count: u64) -> usize {
    count.saturating_sub(1).to_string().len().max(4)
}

/// `digits` as a number if it has exactly `width` ASCII digits.
fn fixed(digits: &str, width: usize) -> Option<u64> {
    (digits.len() == width && digits.bytes().all(|b| b.is_ascii_digit()))
        .then(|| digits.parse().ok())
        .flatten()
}

/// `digits` as a positive number written without leading zeros.
fn positive(digits: &str) -> Option<u64> {
    let ok = !digits.is_empty()
        && !digits.starts_with('0')
        && digits.bytes().all(|b| b.is_ascii_digit());
    ok.then(|| digits.parse().ok()).flatten()
}

impl Catalog {
    /// The width of the volume numbers.
    pub fn width(&self) -> usize {
        width(self.n_vols)
    }

    /// The number of slices along `axis`.
    pub fn slices(&self, axis: Axis) -> u64 {
        self.dims[axis.index()]
    }

    /// The file name (without directory) of `view`, if it is one a directory shows.
    pub fn name(&self, view: View) -> Option<String> {
        let w = self.width();
        let name = match view.selection {
            Selection::Volume(k) => format!("vol_{k:0w$}.nii"),
            Selection::Range { first, last, step } => match step {
                1 => format!("vols_{first:0w$}-{last:0w$}.nii"),
                s => format!("vols_{first:0w$}-{last:0w$}_step{s}.nii"),
            },
            Selection::Whole => format!("{}.nii", self.stem),
            Selection::Slice { axis, index } => {
                let sw = width(self.slices(axis));
                format!("slice_{index:0sw$}.nii")
            }
            Selection::B0 => "b0.nii".to_string(),
            Selection::Shell(i) => format!("{}.nii", self.shells.get(i as usize)?),
        };
        Some(name)
    }

    /// What `name` in directory `dir` stands for, if anything.
    pub fn lookup(&self, dir: Dir, name: &str) -> Option<Entry> {
        if let Some(axis) = dir.axis {
            return self.lookup_slice(dir.output, axis, name);
        }
        if let Some(axis) = Axis::ALL.into_iter().find(|a| a.name() == name) {
            return Some(Entry::Dir(Dir {
                output: dir.output,
                axis: Some(axis),
            }));
        }
        if dir.output == Output::Stored && self.floats {
            let float = Output::FLOATS
                .into_iter()
                .find(|o| o.dir_name() == Some(name));
            if let Some(output) = float {
                return Some(Entry::Dir(Dir { output, axis: None }));
            }
        }
        if let Some(stem) = name.strip_suffix(".nii") {
            let selection = self.selection(stem)?;
            return Some(Entry::View(View {
                selection,
                output: dir.output,
            }));
        }
        let (stem, kind) = Sidecar::ALL
            .into_iter()
            .find_map(|k| name.strip_suffix(k.ext()).map(|s| (s, k)))?;
        let selection = self.selection(stem)?;
        let view = View {
            selection,
            output: dir.output,
        };
        self.has_sidecar(view, kind)
            .then_some(Entry::Sidecar(view, kind))
    }

    fn lookup_slice(&self, output: Output, axis: Axis, name: &str) -> Option<Entry> {
        let (stem, sidecar) = match name.strip_suffix(".nii") {
            Some(stem) => (stem, None),
            None => (name.strip_suffix(".json")?, Some(Sidecar::Json)),
        };
        let index = fixed(stem.strip_prefix("slice_")?, width(self.slices(axis)))?;
        if index >= self.slices(axis) {
            return None;
        }
        let view = View {
            selection: Selection::Slice { axis, index },
            output,
        };
        match sidecar {
            None => Some(Entry::View(view)),
            Some(kind) => self
                .has_sidecar(view, kind)
                .then_some(Entry::Sidecar(view, kind)),
        }
    }

    /// The selection named `stem` (a file name without `.nii`) in a volume directory.
    fn selection(&self, stem: &str) -> Option<Selection> {
        let w = self.width();
        let n = self.n_vols;
        if let Some(k) = stem.strip_prefix("vol_").and_then(|d| fixed(d, w))
            && k < n
        {
            return Some(Selection::Volume(k));
        }
        if let Some(range) = stem.strip_prefix("vols_").and_then(|r| self.range(r)) {
            return Some(range);
        }
        if stem == "b0" {
            return self.b0.then_some(Selection::B0);
        }
        if let Some(i) = self.shells.iter().position(|s| s == stem) {
            return u32::try_from(i).ok().map(Selection::Shell);
        }
        (stem == self.stem && !self.stem.is_empty()).then_some(Selection::Whole)
    }

    /// `A-B` or `A-B_stepS`, as a range within the image.
    fn range(&self, rest: &str) -> Option<Selection> {
        let w = self.width();
        let (bounds, step) = match rest.split_once("_step") {
            Some((bounds, s)) => (bounds, positive(s)?),
            None => (rest, 1),
        };
        let (a, b) = bounds.split_once('-')?;
        let (first, last) = (fixed(a, w)?, fixed(b, w)?);
        if first > last || last >= self.n_vols {
            return None;
        }
        let count = (last - first) / step + 1;
        (count <= self.max_count).then_some(Selection::Range { first, last, step })
    }

    /// Whether `view` has a sidecar of `kind`.
    pub fn has_sidecar(&self, view: View, kind: Sidecar) -> bool {
        match (kind, view.selection) {
            (Sidecar::Json, _) => self.json,
            (_, Selection::Slice { .. }) => false,
            (Sidecar::Bval | Sidecar::Bvec, _) => self.gradients,
        }
    }

    /// Everything directory `dir` lists, in listing order, with its name.
    pub fn list(&self, dir: Dir, add: &mut dyn FnMut(String, Entry)) {
        let output = dir.output;
        if let Some(axis) = dir.axis {
            for index in 0..self.slices(axis) {
                let view = View {
                    selection: Selection::Slice { axis, index },
                    output,
                };
                self.add_view(view, add);
            }
            return;
        }
        if output == Output::Stored && self.floats {
            for output in Output::FLOATS {
                let name = output.dir_name().unwrap_or_default().to_string();
                add(name, Entry::Dir(Dir { output, axis: None }));
            }
        }
        for axis in Axis::ALL {
            let sub = Dir {
                output,
                axis: Some(axis),
            };
            add(axis.name().to_string(), Entry::Dir(sub));
        }
        let mut selections = Vec::new();
        if self.lookup(dir, &format!("{}.nii", self.stem))
            == Some(Entry::View(View {
                selection: Selection::Whole,
                output,
            }))
        {
            selections.push(Selection::Whole);
        }
        if self.b0 {
            selections.push(Selection::B0);
        }
        selections.extend(
            (0..self.shells.len()).filter_map(|i| u32::try_from(i).ok().map(Selection::Shell)),
        );
        for selection in selections {
            self.add_view(View { selection, output }, add);
        }
        for k in 0..self.n_vols {
            let view = View {
                selection: Selection::Volume(k),
                output,
            };
            self.add_view(view, add);
        }
    }

    /// Lists `view` and its sidecars.
    fn add_view(&self, view: View, add: &mut dyn FnMut(String, Entry)) {
        let Some(name) = self.name(view) else { return };
        let stem = name.strip_suffix(".nii").unwrap_or(&name).to_string();
        add(name, Entry::View(view));
        for kind in Sidecar::ALL {
            if self.has_sidecar(view, kind) {
                add(format!("{stem}{}", kind.ext()), Entry::Sidecar(view, kind));
            }
        }
    }
}
