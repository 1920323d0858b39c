//! MRtrix3's reading of a gradient table (3.0.3): the b-value scaling of
//! `DWI::get_DW_scheme`, the shell clustering of `DWI::Shells`, and the
//! volume selection of `dwiextract -bzero` and `dwiextract -shells B`.
//!
//! - Scaling (`BValueScaling` auto): with `n = x² + y² + z²` per volume, when
//!   `max |ln n| > 0.01` over all volumes, every b becomes `b * n`. A [0 0 0]
//!   vector has `|ln 0| = inf`, so in 3.0.3 any zero vector turns scaling on.
//! - `dwiextract -bzero`: the volumes with scaled b `< 10` (strictly).
//! - Clustering (a DBSCAN on b): b `<= 10` is the b=0 cluster; among the rest,
//!   two volumes are neighbours when their b differ by less than 80, a volume
//!   with at least 3 neighbours (itself included) is a core, and a cluster is
//!   every volume within reach of a chain of cores, taken in volume order; a
//!   volume reached by two clusters stays in the first, a volume reached by
//!   none belongs to no shell. MRtrix3 finds no shells when the number of
//!   clusters (the b=0 one included) exceeds `sqrt(volumes)`.
//! - A cluster's `max` is, as 3.0.3 computes it, the b of its last volume.
//!
//! The cluster expansion here is MRtrix3's, with the b-values sorted so that a
//! neighbourhood is a range: O(n log n) where MRtrix3's is O(n²). The
//! `mrtrix_reference` unit test checks it against a line-by-line port.

/// `BZeroThreshold`: b-values up to this are b=0 shells.
pub(super) const BZERO_THRESHOLD: f64 = 10.0;
/// `BValueEpsilon`: the largest b difference (exclusive) between neighbours.
const EPSILON: f64 = 80.0;
/// `DWI_SHELLS_MIN_LINKAGE`: neighbours (self included) that make a core.
const MIN_LINKAGE: usize = 3;

/// The b-values as MRtrix3 uses them: scaled by the squared vector norm when
/// the norms are not all close to 1. `vectors` are (x, y, z) per volume.
pub(super) fn scaled_bvalues(bvals: &[f64], vectors: &[[f64; 3]]) -> Vec<f64> {
    let norms: Vec<f64> = vectors
        .iter()
        .map(|v| v[0] * v[0] + v[1] * v[1] + v[2] * v[2])
        .collect();
    let max_log = norms.iter().map(|n| n.ln().abs()).fold(0.0, f64::max);
    if max_log > 0.01 {
        bvals.iter().zip(&norms).map(|(b, n)| b * n).collect()
    } else {
        bvals.to_vec()
    }
}

/// The volumes `dwiextract -bzero` selects, in volume order.
pub(super) fn bzero(b: &[f64]) -> Vec<usize> {
    (0..b.len()).filter(|&i| b[i] < BZERO_THRESHOLD).collect()
}

/// One cluster of volumes, as `DWI::Shell` describes it.
#[derive(Clone, Debug)]
pub(super) struct Cluster {
    /// Its volumes, in volume order.
    pub volumes: Vec<usize>,
    pub mean: f64,
    pub stdev: f64,
    pub min: f64,
    /// The b of the last volume (3.0.3's `max`).
    pub max: f64,
}

impl Cluster {
    pub fn new(b: &[f64], volumes: Vec<usize>) -> Cluster {
        let n = volumes.len() as f64;
        let mut sum = 0.0;
        let mut min = f64::MAX;
        let mut max = 0.0;
        for &v in &volumes {
            sum += b[v];
            min = if b[v] < min { b[v] } else { min };
            max = if min < b[v] { b[v] } else { min };
        }
        let mean = sum / n;
        let squares: f64 = volumes.iter().map(|&v| (b[v] - mean) * (b[v] - mean)).sum();
        let stdev = (squares / (n - 1.0)).sqrt();
        Cluster {
            volumes,
            mean,
            stdev,
            min,
            max,
        }
    }

    /// `Shell::is_bzero` of 3.0.3: mean strictly below the threshold.
    pub fn is_bzero(&self) -> bool {
        self.mean < BZERO_THRESHOLD
    }
}

/// The b-values above the threshold that can be neighbours (finite), sorted,
/// with the volume of each.
struct Sorted {
    values: Vec<f64>,
    volumes: Vec<usize>,
}

impl Sorted {
    fn new(b: &[f64]) -> Sorted {
        let mut volumes: Vec<usize> = (0..b.len())
            .filter(|&i| b[i] > BZERO_THRESHOLD && b[i].is_finite())
            .collect();
        volumes.sort_by(|&i, &j| b[i].total_cmp(&b[j]));
        let values = volumes.iter().map(|&i| b[i]).collect();
        Sorted { values, volumes }
    }

    /// The positions of the neighbours of value `v`: `|v - s| < EPSILON`.
    fn around(&self, v: f64) -> std::ops::Range<usize> {
        let lo = self
            .values
            .partition_point(|&s| s < v && (v - s) >= EPSILON);
        let hi = self
            .values
            .partition_point(|&s| s <= v || (s - v) < EPSILON);
        lo..hi
    }
}

/// `DWI::Shells` of b-values `b`: the clusters sorted by mean, or None where
/// MRtrix3 throws "could not be classified into b-value shells". `b` must
/// hold no NaN (MRtrix3's sort of a NaN mean has no defined result).
pub(super) fn clusters(b: &[f64]) -> Option<Vec<Cluster>> {
    if b.iter().any(|x| x.is_nan()) {
        return None;
    }
    let n = b.len();
    let sorted = Sorted::new(b);
    let mut position = vec![usize::MAX; n];
    for (p, &v) in sorted.volumes.iter().enumerate() {
        position[v] = p;
    }
    // 0: no cluster; 1: b=0 (when present); then in order of expansion.
    let mut cluster = vec![0usize; n];
    let mut visited = vec![false; n];
    let mut count = 0;
    for i in 0..n {
        if b[i] <= BZERO_THRESHOLD {
            visited[i] = true;
            cluster[i] = 1;
            count = 1;
        }
    }
    for i in 0..n {
        if visited[i] {
            continue;
        }
        visited[i] = true;
        // +inf is nobody's neighbour, not even its own (inf - inf is NaN).
        if position[i] == usize::MAX || sorted.around(b[i]).len() < MIN_LINKAGE {
            continue;
        }
        count += 1;
        cluster[i] = count;
        // The covered positions are one range: each core's neighbourhood
        // overlaps it (the core is in it), so only the new ends are queued.
        let mut covered = sorted.around(b[i]);
        let mut queue: Vec<usize> = covered.clone().collect();
        while let Some(p) = queue.pop() {
            let v = sorted.volumes[p];
            if !visited[v] {
                visited[v] = true;
                let near = sorted.around(b[v]);
                if near.len() >= MIN_LINKAGE {
                    queue.extend(near.start..covered.start);
                    queue.extend(covered.end..near.end);
                    covered = covered.start.min(near.start)..covered.end.max(near.end);
                }
            }
            if cluster[v] == 0 {
                cluster[v] = count;
            }
        }
    }
    if count < 1 || count as f64 > (n as f64).sqrt() {
        return None;
    }
    let mut members = vec![Vec::new(); count + 1];
    for (v, &c) in cluster.iter().enumerate() {
        members[c].push(v);
    }
    let mut shells: Vec<Cluster> = members
        .into_iter()
        .skip(1)
        .map(|m| Cluster::new(b, m))
        .collect();
    shells.sort_by(|a, b| a.mean.total_cmp(&b.mean));
    Some(shells)
}

/// The volumes `dwiextract -shells B` selects, in volume order, or None where
/// it fails ("no such data", "unable to robustly select").
pub(super) fn select(shells: &[Cluster], b: f64) -> Option<Vec<usize>> {
    if b < 0.0 {
        return None;
    }
    let mut retain = vec![false; shells.len()];
    if b <= BZERO_THRESHOLD {
        let first = shells.first().filter(|s| s.is_bzero())?;
        return Some(first.volumes.clone());
    }
    for (s, shell) in shells.iter().enumerate() {
        retain[s] = b >= shell.min && b <= shell.max;
    }
    if !retain.contains(&true) {
        let near: Vec<usize> = (0..shells.len())
            .filter(|&s| (b - shells[s].mean).abs() <= 1.0)
            .collect();
        if let [only] = near[..] {
            retain[only] = true;
        } else {
            retain[nearest_by_spread(shells, b)?] = true;
        }
    }
    let mut volumes: Vec<usize> = shells
        .iter()
        .zip(&retain)
        .filter(|(_, keep)| **keep)
        .flat_map(|(s, _)| s.volumes.iter().copied())
        .collect();
    volumes.sort_unstable();
    Some(volumes)
}

/// The last resort of `select_shells`: the shell fewest standard deviations
/// away, None when 3.0.3 calls that ambiguous (its flag is the verdict of the
/// last comparison, as there).
fn nearest_by_spread(shells: &[Cluster], b: f64) -> Option<usize> {
    let zero_stdev = shells.iter().any(|s| !s.is_bzero() && s.stdev < 1.0);
    let mut best = 0;
    let mut best_num = f64::MAX;
    let mut ambiguous = false;
    for (s, shell) in shells.iter().enumerate() {
        let stdev = if shell.is_bzero() {
            0.5 * BZERO_THRESHOLD
        } else if zero_stdev {
            shell.mean.sqrt()
        } else {
            shell.stdev
        };
        let num = ((b - shell.mean) / stdev).abs();
        if num < best_num {
            ambiguous = num >= 0.1 * best_num;
            best = s;
            best_num = num;
        } else {
            ambiguous = num < 10.0 * best_num;
        }
    }
    (!ambiguous).then_some(best)
}
