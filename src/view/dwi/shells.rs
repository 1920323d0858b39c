//! The b=0 volumes and the named shells of an image (rules on
//! [`Gradients::shells`]), from MRtrix3's reading in [`super::mrtrix`].

use super::Gradients;
use super::mrtrix::{self, BZERO_THRESHOLD, Cluster};

/// One diffusion shell: the volumes that `dwiextract -shells B` selects.
#[derive(Clone, Debug, PartialEq)]
pub struct Shell {
    /// `shell_B`, the name of its files without extension.
    pub name: String,
    /// The mean of its b-values as MRtrix3 scales them.
    pub mean_b: f64,
    /// Its volumes, in volume order.
    pub volumes: Vec<u64>,
}

/// Roundings tried in turn for a shell's name.
const STEPS: [f64; 3] = [100.0, 10.0, 1.0];
/// Names stay well inside NAME_MAX: B below 10^15.
const MAX_NAMED_B: f64 = 1e15;

fn to_u64(v: &[usize]) -> Vec<u64> {
    v.iter().map(|&k| k as u64).collect()
}

impl Gradients {
    /// The b-values as MRtrix3 uses them (scaled by the squared vector norm
    /// when the vectors are not all of unit norm), or None when a vector
    /// component is NaN.
    pub fn scaled_bvalues(&self) -> Option<Vec<f64>> {
        let vectors: Vec<[f64; 3]> = self
            .bvecs
            .iter()
            .map(|v| [v[0].value(), v[1].value(), v[2].value()])
            .collect();
        if vectors.iter().flatten().any(|c| c.is_nan()) {
            return None;
        }
        let bvals: Vec<f64> = self.bvals.iter().map(|b| b.value()).collect();
        Some(mrtrix::scaled_bvalues(&bvals, &vectors))
    }

    /// The volumes `dwiextract -bzero` selects (scaled b < 10, strictly), in
    /// volume order; empty when a vector component is NaN (MRtrix3 3.0.3's
    /// choice of scaling has no defined result then).
    pub fn b0(&self) -> Vec<u64> {
        self.scaled_bvalues()
            .map(|b| to_u64(&mrtrix::bzero(&b)))
            .unwrap_or_default()
    }

    /// The named shells in increasing b: MRtrix3's non-b=0 clusters (rules in
    /// `mrtrix.rs`), empty where it finds no shells.
    ///
    /// A shell is named `shell_B`, B its mean b rounded to the nearest 100;
    /// to the nearest 10 where two shells would share a name, where B would
    /// be a b=0 value (<= 10), or where `dwiextract -shells B` would not
    /// select exactly this shell's volumes; then, for the same reasons, to
    /// the nearest 1. A shell that no such B names (or with B >= 10^15) gets
    /// no file, so that `shell_B` always holds exactly what `dwiextract
    /// -shells B` selects. Rounding is half away from zero (1050 -> 1100).
    ///
    /// Shells need every vector component and every scaled b-value to be a
    /// number: MRtrix3 3.0.3 makes a NaN b a shell of its own and sorts by a
    /// NaN mean, which has no defined order.
    pub fn shells(&self) -> Vec<Shell> {
        self.clusters().map(|c| name_shells(&c)).unwrap_or_default()
    }

    /// The volumes `dwiextract -shells B` selects for `b` (any b, not only a
    /// shell's name), in volume order; None where it fails: no shells, or
    /// no b=0 shell for `b <= 10`, or no shell it can robustly choose.
    pub fn select_shell(&self, b: f64) -> Option<Vec<u64>> {
        mrtrix::select(&self.clusters()?, b).map(|v| to_u64(&v))
    }

    /// MRtrix3's clusters, b=0 included, or None where it finds no shells.
    fn clusters(&self) -> Option<Vec<Cluster>> {
        mrtrix::clusters(&self.scaled_bvalues()?)
    }
}

/// The name value of `mean` at rounding step `step`.
fn rounded(mean: f64, step: f64) -> f64 {
    (mean / step).round() * step
}

/// Names the non-b=0 clusters (rules in the module documentation).
pub(super) fn name_shells(clusters: &[Cluster]) -> Vec<Shell> {
    let shells: Vec<&Cluster> = clusters.iter().filter(|c| !c.is_bzero()).collect();
    // Per shell: the index into STEPS, or STEPS.len() once it has no name.
    let mut step = vec![0usize; shells.len()];
    loop {
        let name: Vec<Option<f64>> = (0..shells.len())
            .map(|s| STEPS.get(step[s]).map(|&st| rounded(shells[s].mean, st)))
            .collect();
        let mut changed = false;
        for s in 0..shells.len() {
            let Some(b) = name[s] else { continue };
            let shared = (0..shells.len()).any(|t| t != s && name[t] == Some(b));
            let fits = b > BZERO_THRESHOLD
                && b < MAX_NAMED_B
                && mrtrix::select(clusters, b).as_deref() == Some(&shells[s].volumes[..]);
            if shared || !fits {
                step[s] += 1;
                changed = true;
            }
        }
        if !changed {
            return (0..shells.len())
                .filter_map(|s| {
                    let b = name[s]?;
                    Some(Shell {
                        name: format!("shell_{b:.0}"),
                        mean_b: shells[s].mean,
                        volumes: to_u64(&shells[s].volumes),
                    })
                })
                .collect();
        }
    }
}
