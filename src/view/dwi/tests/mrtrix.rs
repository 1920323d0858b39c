//! MRtrix3's rules: scaling, `-bzero`, the clustering (against a line-by-line
//! port of `Shells::clusterBvalues`), and `-shells B` selection.

use super::super::mrtrix::{self, Cluster};
use super::Rng;

/// `Shells::clusterBvalues` and the `Shells` constructor of MRtrix3 3.0.3,
/// statement by statement (O(n²), neighbour lists with repeats): the
/// partition into clusters, or None for "could not be classified".
fn reference(b: &[f64]) -> Option<Vec<Vec<usize>>> {
    let (thr, eps) = (10.0, 80.0);
    let n = b.len();
    let region = |v: f64| -> Vec<usize> {
        (0..n)
            .filter(|&i| b[i] > thr && (v - b[i]).abs() < eps)
            .collect()
    };
    let mut visited = vec![false; n];
    let mut clusters = vec![0usize; n];
    let mut idx = 0;
    for i in 0..n {
        if b[i] <= thr {
            visited[i] = true;
            idx = 1;
            clusters[i] = 1;
        }
    }
    for i in 0..n {
        if !visited[i] {
            visited[i] = true;
            let mut nb = region(b[i]);
            if b[i] > thr && nb.len() < 3 {
                clusters[i] = 0;
            } else {
                idx += 1;
                clusters[i] = idx;
                let mut k = 0;
                while k < nb.len() {
                    let j = nb[k];
                    if !visited[j] {
                        visited[j] = true;
                        let nb2 = region(b[j]);
                        if nb2.len() >= 3 {
                            nb.extend(nb2);
                        }
                    }
                    if clusters[j] == 0 {
                        clusters[j] = idx;
                    }
                    k += 1;
                }
            }
        }
    }
    if idx < 1 || idx as f64 > (n as f64).sqrt() {
        return None;
    }
    Some(
        (1..=idx)
            .map(|c| (0..n).filter(|&v| clusters[v] == c).collect())
            .collect(),
    )
}

/// A b-value scheme built to exercise chains, shared borders, noise, b=0
/// values at and around the threshold, and +inf.
fn scheme(rng: &mut Rng) -> Vec<f64> {
    let n = 3 + rng.below(120) as usize;
    let centres: Vec<f64> = (0..1 + rng.below(14))
        .map(|_| 20.0 + rng.unit() * 3000.0)
        .collect();
    let jitter = [0.0, 2.0, 20.0, 45.0, 70.0, 120.0][rng.below(6) as usize];
    // Half of the schemes have many volumes anywhere on a continuum.
    let spread = rng.below(2) == 0;
    (0..n)
        .map(|_| match rng.below(20) {
            0..=2 => [0.0, 5.0, 10.0, -3.0, 10.000001][rng.below(5) as usize],
            3..=5 if spread => rng.unit() * 4000.0,
            4 if rng.below(10) == 0 => f64::INFINITY,
            _ => {
                let c = centres[rng.below(centres.len() as u64) as usize];
                (c + (rng.unit() * 2.0 - 1.0) * jitter).round()
            }
        })
        .collect()
}

#[test]
fn clustering_matches_a_line_by_line_port_of_mrtrix() {
    let mut rng = Rng::new(0x5eed_d1ff);
    let (mut found, mut none) = (0, 0);
    for case in 0..3000 {
        let b = scheme(&mut rng);
        let ours = mrtrix::clusters(&b).map(|cs| {
            let mut parts: Vec<Vec<usize>> = cs.into_iter().map(|c| c.volumes).collect();
            parts.sort();
            parts
        });
        let mut theirs = reference(&b);
        if let Some(t) = theirs.as_mut() {
            t.sort();
        }
        assert_eq!(ours, theirs, "case {case}: {b:?}");
        if ours.is_some() {
            found += 1
        } else {
            none += 1
        }
    }
    // Both outcomes are well represented.
    assert!(
        found > 1000 && none > 400,
        "{found} with shells, {none} without"
    );
}

#[test]
fn clusters_are_sorted_by_mean_with_mrtrix_statistics() {
    let b = [0.0, 1000.0, 2010.0, 5.0, 990.0, 1990.0, 1005.0, 2000.0, 0.0];
    let cs = mrtrix::clusters(&b).unwrap();
    let means: Vec<f64> = cs.iter().map(|c| c.mean).collect();
    assert_eq!(means, [5.0 / 3.0, 2995.0 / 3.0, 2000.0]);
    assert_eq!(cs[1].volumes, [1, 4, 6]);
    assert_eq!((cs[1].min, cs[1].max), (990.0, 1005.0));
    // 3.0.3's max is the b of the last volume, not the largest.
    assert_eq!((cs[2].min, cs[2].max), (1990.0, 2000.0));
    assert!(cs[0].is_bzero() && !cs[1].is_bzero());
    let one = Cluster::new(&b, vec![1]);
    assert!(one.stdev.is_nan());
}

#[test]
fn too_many_clusters_or_nan_means_no_shells() {
    // 4 clusters (b=0, 1000, 2000, 3000) need at least 16 volumes.
    let mut b: Vec<f64> = [0.0, 1000.0, 2000.0, 3000.0]
        .iter()
        .flat_map(|&x| [x; 3])
        .collect();
    assert!(mrtrix::clusters(&b).is_none());
    b.extend([1000.0; 4]);
    assert_eq!(mrtrix::clusters(&b).unwrap().len(), 4);
    b[0] = f64::NAN;
    assert!(mrtrix::clusters(&b).is_none());
}

#[test]
fn scaling_follows_the_vector_norms() {
    let unit = [[1.0, 0.0, 0.0], [0.0, 0.6, 0.8], [0.999, 0.0, 0.0]];
    assert_eq!(
        mrtrix::scaled_bvalues(&[1000.0, 1000.0, 1000.0], &unit),
        [1000.0, 1000.0, 1000.0]
    );
    // A zero vector has |ln 0| = inf: 3.0.3 scales then, by 0.998001 here.
    let with_zero = [[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.999, 0.0, 0.0]];
    let b = mrtrix::scaled_bvalues(&[5.0, 1000.0, 1000.0], &with_zero);
    assert_eq!(b, [0.0, 1000.0, 1000.0 * (0.999 * 0.999)]);
    let half = [[0.5f64.sqrt(), 0.0, 0.0], [1.0, 0.0, 0.0]];
    let b = mrtrix::scaled_bvalues(&[3000.0, 3000.0], &half);
    assert!((b[0] - 1500.0).abs() < 1e-9 && b[1] == 3000.0);
}

#[test]
fn bzero_is_strictly_below_ten() {
    let b = [0.0, 10.0, 9.999, -1.0, f64::NAN, 10.5, 1000.0];
    assert_eq!(mrtrix::bzero(&b), [0, 2, 3]);
}

fn cluster(b: &[f64]) -> Cluster {
    Cluster::new(b, (0..b.len()).collect())
}

#[test]
fn select_by_range_then_rounding_then_spread() {
    let bz = cluster(&[0.0, 0.0]);
    // Volumes 0.. of each shell; the values matter, not the indices.
    let mut a = cluster(&[1000.0, 1010.0, 995.0]);
    a.volumes = vec![2, 3, 4];
    let mut b = cluster(&[2000.0, 2002.0, 1990.0]);
    b.volumes = vec![5, 6, 7];
    let shells = [bz, a, b];
    assert_eq!(mrtrix::select(&shells, 0.0).unwrap(), [0, 1]);
    assert_eq!(mrtrix::select(&shells, 10.0).unwrap(), [0, 1]);
    assert_eq!(mrtrix::select(&shells, -1.0), None);
    // In [min, last] = [995, 995]: only 995 itself; 1000 is within 1 of no mean.
    assert_eq!(mrtrix::select(&shells, 995.0).unwrap(), [2, 3, 4]);
    assert_eq!(mrtrix::select(&shells, 1001.0).unwrap(), [2, 3, 4]);
    assert_eq!(mrtrix::select(&shells, 1990.0).unwrap(), [5, 6, 7]);
    // Far from both: the spread decides (1.7 stdevs from the 1000 shell).
    assert_eq!(mrtrix::select(&shells, 1015.0).unwrap(), [2, 3, 4]);
    // Between the two, as close in stdevs to each: ambiguous, as dwiextract says.
    assert_eq!(mrtrix::select(&shells, 1500.0), None);
    // No b=0 shell: b=0 cannot be selected.
    assert_eq!(mrtrix::select(&shells[1..], 0.0), None);
}

#[test]
fn two_means_within_one_fall_back_to_the_spread() {
    // Outside both ranges ([999.2, 999.4] and [1000.2, 1000.6]), within 1 of
    // both means: rounding cannot decide, and the spreads are as close.
    let shells = [
        cluster(&[999.2, 999.8, 999.4]),
        cluster(&[1000.8, 1000.2, 1000.6]),
    ];
    assert_eq!(mrtrix::select(&shells, 1000.0), None);
    assert_eq!(mrtrix::select(&shells[..1], 1000.0).unwrap(), [0, 1, 2]);
}
