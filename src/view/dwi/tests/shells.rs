//! b=0 volumes and named shells of whole gradient tables.

use super::super::Shell;
use super::super::mrtrix::{self, Cluster};
use super::super::shells::name_shells;
use super::{along_x, grads};

fn names(shells: &[Shell]) -> Vec<&str> {
    shells.iter().map(|s| s.name.as_str()).collect()
}

#[test]
fn a_multi_shell_scheme_in_increasing_b() {
    let g = along_x(&[
        0.0, 2005.0, 1000.0, 995.0, 0.0, 1990.0, 1010.0, 2000.0, 0.0, 1000.0,
    ]);
    assert_eq!(g.b0(), [0, 4, 8]);
    let shells = g.shells();
    assert_eq!(names(&shells), ["shell_1000", "shell_2000"]);
    assert_eq!(shells[0].volumes, [2, 3, 6, 9]);
    assert_eq!(shells[0].mean_b, 4005.0 / 4.0);
    assert_eq!(shells[1].volumes, [1, 5, 7]);
}

#[test]
fn shells_that_would_share_a_name_round_to_ten() {
    let g = along_x(&[
        0.0, 0.0, 0.0, 947.0, 953.0, 950.0, 1037.0, 1043.0, 1040.0, 3000.0, 3000.0, 3000.0, 0.0,
        0.0, 0.0, 0.0,
    ]);
    assert_eq!(
        names(&g.shells()),
        ["shell_950", "shell_1040", "shell_3000"]
    );
}

#[test]
fn a_low_shell_is_not_named_like_b0() {
    let g = along_x(&[0.0, 0.0, 0.0, 20.0, 40.0, 30.0]);
    let shells = g.shells();
    assert_eq!(names(&shells), ["shell_30"]);
    assert_eq!(shells[0].volumes, [3, 4, 5]);
}

#[test]
fn a_name_that_dwiextract_would_read_as_another_shell_is_refined() {
    // dwiextract -shells 1000 cannot choose between the wide shell at 900
    // and the narrow one at 1049 ("unable to robustly select"), so the
    // narrow one is shell_1050, which dwiextract selects.
    let mut b = vec![0.0; 6];
    b.extend([850.0, 870.0, 890.0, 910.0, 930.0, 950.0]);
    b.extend([1052.0, 1049.0, 1046.0]);
    b.extend([0.0; 10]);
    let g = along_x(&b);
    let shells = g.shells();
    assert_eq!(names(&shells), ["shell_900", "shell_1050"]);
    assert_eq!(shells[1].volumes, [12, 13, 14]);
    let clusters = mrtrix::clusters(&g.scaled_bvalues().unwrap()).unwrap();
    assert_eq!(mrtrix::select(&clusters, 1000.0), None);
}

#[test]
fn a_shell_no_b_can_name_gets_no_file() {
    // Two clusters whose means are within 1 of each other: no rounding
    // tells them apart (built directly: such data hardly exist).
    let b = [1000.0, 1000.5, 1001.0, 0.0];
    let a = Cluster::new(&b, vec![0, 1, 2]);
    let mut twin = a.clone();
    twin.volumes = vec![3];
    let mut other = Cluster::new(&[2000.0, 2000.0], vec![0, 1]);
    other.volumes = vec![4, 5];
    let shells = name_shells(&[a, twin, other]);
    assert_eq!(names(&shells), ["shell_2000"]);
}

#[test]
fn b_of_ten_is_a_b0_cluster_but_not_selected_by_bzero() {
    // dwiextract -bzero takes b < 10; the clustering puts b <= 10 in b=0.
    let g = along_x(&[0.0, 10.0, 1000.0, 1000.0, 1000.0, 5.0, 10.0, 1000.0, 9.99]);
    assert_eq!(g.b0(), [0, 5, 8]);
    assert_eq!(names(&g.shells()), ["shell_1000"]);
    assert_eq!(g.shells()[0].volumes, [2, 3, 4, 7]);
    // All b=0 volumes at exactly 10: MRtrix3 3.0.3 has no b=0 (mean not < 10).
    let g = grads(
        "10 1000 1000 1000 10 2000 2000 2000 10",
        "1 1 1 1 1 1 1 1 1\n0 0 0 0 0 0 0 0 0\n0 0 0 0 0 0 0 0 0\n",
        9,
    );
    assert_eq!(g.b0(), Vec::<u64>::new());
    assert_eq!(names(&g.shells()), ["shell_1000", "shell_2000"]);
}

#[test]
fn vector_norms_scale_b_values() {
    // One nominal b of 3000, shells made by the vector norms (b = 3000 |g|²).
    let r = |f: f64| f.sqrt();
    let (third, two) = (r(1.0 / 3.0), r(2.0 / 3.0));
    // 4 clusters need 16 volumes.
    let x = [
        0.0, 1.0, 1.0, 1.0, third, third, third, 0.0, two, two, two, 0.0, 0.0, 0.0, 0.0, 0.0,
    ];
    let row = |v: &[f64]| {
        v.iter()
            .map(|x| format!("{x:.17}"))
            .collect::<Vec<_>>()
            .join(" ")
    };
    let zeros = vec![0.0; x.len()];
    let bval = vec!["3000"; x.len()].join(" ");
    let bvec = format!("{}\n{}\n{}\n", row(&x), row(&zeros), row(&zeros));
    let g = grads(&bval, &bvec, x.len() as u64);
    assert_eq!(g.b0(), [0, 7, 11, 12, 13, 14, 15]);
    let shells = g.shells();
    assert_eq!(names(&shells), ["shell_1000", "shell_2000", "shell_3000"]);
    assert_eq!(shells[1].volumes, [8, 9, 10]);
    assert!((shells[0].mean_b - 1000.0).abs() < 1e-9);
    // The files keep the source's tokens; only the selection uses the scaling.
    assert_eq!(
        g.bval_file(&shells[0].volumes).unwrap(),
        b"3000 3000 3000\n"
    );
}

#[test]
fn no_shells_for_continuous_sampling_or_nan() {
    // b on a lattice of q (DSI): 23 b levels for 258 volumes > sqrt(258).
    let mut b = Vec::new();
    for x in -5i32..=5 {
        for y in -5i32..=5 {
            for z in -5i32..=5 {
                let q2 = x * x + y * y + z * z;
                let half = z > 0 || (z == 0 && (y > 0 || (y == 0 && x >= 0)));
                if q2 <= 25 && half {
                    b.push(4000.0 * f64::from(q2) / 25.0);
                }
            }
        }
    }
    let g = along_x(&b);
    assert_eq!(g.len(), 258);
    assert!(g.shells().is_empty());
    let origin = b.iter().position(|&b| b == 0.0).unwrap() as u64;
    assert_eq!(g.b0(), [origin]);
    // A NaN b-value: b=0 is still defined (NaN is not < 10), shells are not.
    let g = along_x(&[0.0, f64::NAN, 1000.0, 1000.0, 1000.0, 0.0]);
    assert_eq!(g.b0(), [0, 5]);
    assert!(g.shells().is_empty());
    // A NaN vector component: MRtrix3's scaling choice is undefined: neither.
    let g = grads("0 1000 1000 1000", "nan 1 1 1\n0 0 0 0\n0 0 0 0\n", 4);
    assert!(g.b0().is_empty() && g.shells().is_empty() && g.scaled_bvalues().is_none());
}

#[test]
fn only_b0_or_only_noise_gives_no_shell() {
    assert!(along_x(&[0.0, 0.0, 5.0]).shells().is_empty());
    let g = along_x(&[0.0, 0.0, 0.0, 0.0, 500.0, 1000.0, 1500.0, 2000.0, 2500.0]);
    assert!(g.shells().is_empty());
    assert_eq!(g.b0(), [0, 1, 2, 3]);
}

#[test]
fn large_tables_cluster_without_quadratic_cost() {
    // 300,000 volumes in one chain-free pair of shells: the O(n²) expansion
    // of MRtrix3 would take hours here.
    let b: Vec<f64> = (0..300_000)
        .map(|i| {
            if i % 3 == 0 {
                1000.0
            } else {
                2000.0 + (i % 7) as f64
            }
        })
        .collect();
    let cs = mrtrix::clusters(&b).unwrap();
    assert_eq!(cs.len(), 2);
    assert_eq!(cs[0].volumes.len(), 100_000);
    assert_eq!(
        cs[1].mean,
        b.iter().filter(|&&x| x > 1500.0).sum::<f64>() / 200_000.0
    );
}
