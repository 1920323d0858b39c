//! The sidecar files beside an image: `STEM.bval` + `STEM.bvec` (FSL
//! diffusion gradients) and `STEM.json` (BIDS), read when an image's views
//! first need them and again whenever they change.
//!
//! Sidecars are separate from the image: rewriting a bval changes the
//! image's `.bval`/`.bvec` files and its `b0.nii`/`shell_B.nii` (which get
//! new inodes: nodes made from sidecars carry the sidecar version), while the
//! image's own inodes, cache and index stay as they are. Sidecars that cannot
//! be used (unparsable, wrong counts, a bval without a bvec) give no
//! `.bval`/`.bvec` and no b-value views, logged once per version of the files.
//!
//! Lock order: the state map's lock is a leaf, never held during I/O.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::image::{Image, stem};
use crate::error::{Error, Result};
use crate::source::{Store, Version, pread_full};
use crate::view::dwi::Gradients;
use crate::view::names::{Catalog, Sidecar};
use crate::view::shape::{Shape, VolumeSets};
use crate::view::{Selection, View};

/// Sidecar files larger than this are not read (a bval of 10^6 volumes is ~8 MB).
const MAX_SIDECAR: u64 = 64 << 20;

/// What the sidecars of one image say, at one version of the files.
#[derive(Debug, Default)]
pub struct State {
    /// Changes whenever any of the files changes (0: no sidecars seen yet).
    pub version: u64,
    /// The files' versions when read: bval, bvec, json.
    idents: [Option<Version>; 3],
    /// When the files were last seen unchanged.
    checked: Option<Instant>,
    /// The gradients, when bval and bvec are there and fit the image.
    pub gradients: Option<Arc<Gradients>>,
    /// The volumes of `b0.nii` and of each shell.
    pub sets: Arc<VolumeSets>,
    /// The shells' names (`shell_1000`), in increasing b.
    pub shell_names: Vec<String>,
    /// The source files' bytes as they are: bval, bvec, json.
    raw: [Option<Arc<[u8]>>; 3],
    /// Why bval/bvec give nothing, if they are there but cannot be used.
    problem: Option<String>,
}

impl State {
    /// Why the bval/bvec beside the image give no sidecars, if so.
    pub fn problem(&self) -> Option<&str> {
        self.problem.as_deref()
    }

    /// Whether usable bval and bvec files are there.
    pub fn has_gradients(&self) -> bool {
        self.gradients.is_some()
    }

    /// How many volumes `b0.nii` holds.
    pub fn b0_count(&self) -> usize {
        self.sets.b0.len()
    }

    /// The shells: name and number of volumes, in increasing b.
    pub fn shells(&self) -> Vec<(String, usize)> {
        self.shell_names
            .iter()
            .zip(&self.sets.shells)
            .map(|(n, v)| (n.clone(), v.len()))
            .collect()
    }

    /// Whether a BIDS JSON sidecar is there.
    pub fn has_json(&self) -> bool {
        self.raw[2].is_some()
    }

    /// `catalog` with what these sidecars add to it.
    pub fn apply(&self, catalog: &mut Catalog) {
        catalog.gradients = self.gradients.is_some();
        catalog.b0 = !self.sets.b0.is_empty();
        catalog.shells = self.shell_names.clone();
        catalog.json = self.raw[2].is_some();
    }

    /// The bytes of the sidecar `kind` of a view taking `volumes`, or of the
    /// source files themselves for the whole image (`volumes` None).
    pub fn file(&self, kind: Sidecar, volumes: Option<&[u64]>) -> Option<Vec<u8>> {
        let raw = |i: usize| self.raw[i].as_ref().map(|b| b.to_vec());
        match (kind, volumes) {
            (Sidecar::Json, _) => raw(2),
            (Sidecar::Bval, None) => self.gradients.as_ref().and_then(|_| raw(0)),
            (Sidecar::Bvec, None) => self.gradients.as_ref().and_then(|_| raw(1)),
            (Sidecar::Bval, Some(v)) => self.gradients.as_ref()?.bval_file(v),
            (Sidecar::Bvec, Some(v)) => self.gradients.as_ref()?.bvec_file(v),
        }
    }
}

/// The sidecar states of all images of a mount.
pub struct Sidecars {
    store: Arc<dyn Store>,
    recheck: Duration,
    states: Mutex<HashMap<PathBuf, Arc<State>>>,
    versions: AtomicU64,
}

/// The sidecar paths of the image at `rel`: bval, bvec, json.
fn paths(rel: &Path) -> [PathBuf; 3] {
    let name = rel.file_name().and_then(|n| n.to_str()).unwrap_or_default();
    let stem = stem(name);
    let dir = rel.parent().unwrap_or(Path::new(""));
    [".bval", ".bvec", ".json"].map(|ext| dir.join(format!("{stem}{ext}")))
}

impl Sidecars {
    /// Sidecars of the images of `store`; a look at the files stands for
    /// `recheck` (a burst of requests shares one).
    pub fn new(store: Arc<dyn Store>, recheck: Duration) -> Sidecars {
        Sidecars {
            store,
            recheck,
            states: Mutex::new(HashMap::new()),
            versions: AtomicU64::new(1),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<PathBuf, Arc<State>>> {
        self.states.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The sidecars of `image` (at `rel`) as they are now.
    pub fn of(&self, rel: &Path, image: &Image) -> Arc<State> {
        if let Some(s) = self.lock().get(rel)
            && s.checked.is_some_and(|t| t.elapsed() < self.recheck)
        {
            return s.clone();
        }
        let paths = paths(rel);
        let idents = paths
            .clone()
            .map(|p| self.store.resolve(&p).ok().map(|(_, m)| m.version));
        if let Some(s) = self.lock().get_mut(rel)
            && s.idents == idents
        {
            let fresh = Arc::new(State {
                checked: Some(Instant::now()),
                idents: s.idents.clone(),
                gradients: s.gradients.clone(),
                sets: s.sets.clone(),
                shell_names: s.shell_names.clone(),
                raw: s.raw.clone(),
                problem: s.problem.clone(),
                version: s.version,
            });
            *s = fresh.clone();
            return fresh;
        }
        let state = Arc::new(self.read(rel, image, &paths, idents));
        self.lock().insert(rel.to_path_buf(), state.clone());
        state
    }

    /// Reads and checks the sidecars of `image`, whose files have `idents`.
    fn read(
        &self,
        rel: &Path,
        image: &Image,
        paths: &[PathBuf; 3],
        idents: [Option<Version>; 3],
    ) -> State {
        let version = if idents.iter().all(Option::is_none) {
            0
        } else {
            self.versions.fetch_add(1, Ordering::Relaxed)
        };
        let raw: [Option<Arc<[u8]>>; 3] = std::array::from_fn(|i| {
            idents[i].as_ref()?;
            match self.read_file(&paths[i]) {
                Ok(bytes) => Some(Arc::from(bytes)),
                Err(why) => {
                    log::warn!(
                        "{}: {why}; {} is served without it",
                        paths[i].display(),
                        rel.display()
                    );
                    None
                }
            }
        });
        let mut state = State {
            version,
            idents,
            checked: Some(Instant::now()),
            raw,
            ..State::default()
        };
        let shown = |i: usize| paths[i].display().to_string();
        let gradients = match (&state.raw[0], &state.raw[1]) {
            (None, None) => None,
            (Some(_), None) => Some(Err(format!("{} has no {} beside it", shown(0), shown(1)))),
            (None, Some(_)) => Some(Err(format!("{} has no {} beside it", shown(1), shown(0)))),
            (Some(bval), Some(bvec)) => Some(
                Gradients::parse(bval, bvec, image.layout.n_vols()).map_err(|e| {
                    let file = if e.file == crate::view::dwi::SidecarKind::Bval {
                        0
                    } else {
                        1
                    };
                    format!("{}: {}", shown(file), e.problem)
                }),
            ),
        };
        match gradients {
            None => {}
            Some(Ok(g)) => {
                let shells = g.shells();
                state.sets = Arc::new(VolumeSets {
                    b0: Arc::from(g.b0()),
                    shells: shells
                        .iter()
                        .map(|s| Arc::from(s.volumes.clone()))
                        .collect(),
                });
                state.shell_names = shells.into_iter().map(|s| s.name).collect();
                state.gradients = Some(Arc::new(g));
            }
            Some(Err(why)) => {
                log::warn!(
                    "{why}; {} is served without .bval/.bvec files and b0/shell views (fix the \
                     sidecar: one entry per volume, FSL format)",
                    rel.display()
                );
                state.problem = Some(why);
            }
        }
        state
    }

    /// The bytes of the source file `rel`, or why not.
    fn read_file(&self, rel: &Path) -> std::result::Result<Vec<u8>, String> {
        let src = self
            .store
            .open(rel)
            .map_err(|e| format!("cannot be read: {e}"))?;
        if src.len() > MAX_SIDECAR {
            return Err(format!("is larger than {} bytes", MAX_SIDECAR));
        }
        let mut buf = vec![0u8; usize::try_from(src.len()).map_err(|e| e.to_string())?];
        let n =
            pread_full(src.as_ref(), 0, &mut buf).map_err(|e| format!("cannot be read: {e}"))?;
        buf.truncate(n);
        Ok(buf)
    }
}

impl super::Fs {
    /// The sidecars of `image` at `rel`, as they are now.
    fn sidecar_state(&self, rel: &Path, image: &Image) -> Arc<State> {
        self.sidecars.of(rel, image)
    }

    /// The current version of the sidecars of `image` at `rel`.
    pub(crate) fn sidecar_version(&self, rel: &Path, image: &Image) -> u64 {
        self.sidecar_state(rel, image).version
    }

    /// The sidecar state of version `s`, or ESTALE if the files changed since.
    fn sidecars_at(&self, rel: &Path, image: &Image, s: u64) -> Result<Arc<State>> {
        let state = self.sidecar_state(rel, image);
        if state.version != s {
            return Err(Error::Stale(format!("{}: sidecars changed", rel.display())));
        }
        Ok(state)
    }

    /// The volumes of `b0.nii` and the shells at sidecar version `s`.
    pub(crate) fn volume_sets(&self, rel: &Path, image: &Image, s: u64) -> Result<Arc<VolumeSets>> {
        Ok(self.sidecars_at(rel, image, s)?.sets.clone())
    }

    /// The bytes of sidecar `kind` of `view`, at sidecar version `s`.
    pub(crate) fn sidecar_bytes(
        &self,
        rel: &Path,
        image: &Image,
        s: u64,
        view: View,
        kind: Sidecar,
    ) -> Result<Vec<u8>> {
        let state = self.sidecars_at(rel, image, s)?;
        let missing =
            || Error::NotFound(format!("{}: no {} for {view:?}", rel.display(), kind.ext()));
        let volumes = match view.selection {
            Selection::Whole => None,
            _ => {
                let shape = Shape::resolve(&image.layout, view, Some(&state.sets), &image.floats)
                    .ok_or_else(missing)?;
                Some(shape.volumes.to_vec())
            }
        };
        state.file(kind, volumes.as_deref()).ok_or_else(missing)
    }

    /// The names of `image`'s views, with what its sidecars add.
    pub(crate) fn catalog(&self, rel: &Path, image: &Image) -> Catalog {
        let mut catalog = image.catalog.clone();
        self.sidecar_state(rel, image).apply(&mut catalog);
        catalog
    }
}
