//! b=0 volumes and shells against the real MRtrix3 (Debian `mrtrix3`,
//! installed by `scripts/setup-deps`; a test that cannot run it fails).
//!
//! Each case writes a 4x4x2xN int16 image whose volume k holds the value k,
//! with its bval/bvec, and checks nifuse's reading against
//! `mrinfo -shell_bvalues -shell_sizes -shell_indices` (the shells),
//! `dwiextract -bzero` and `dwiextract -shells B` for every shell_B: the
//! volumes in the output image (read back by their values) and the exported
//! b-values and vectors (MRtrix3 reformats numbers, so compared as numbers).

mod common;

#[path = "core_dwi/case.rs"]
mod case;
#[path = "core_dwi/schemes.rs"]
mod schemes;

use case::Case;
use nifuse::view::dwi::Shell;
use schemes::{Rng, multishell, scheme, tables};

fn names(shells: &[Shell]) -> Vec<&str> {
    shells.iter().map(|s| s.name.as_str()).collect()
}

#[test]
fn multi_shell_with_interleaved_b0_and_jitter() {
    let mut rng = Rng(11);
    let b = multishell(&mut rng, &[1000.0, 2000.0, 3000.0], 12, 15.0, 6);
    for (zero, by_volume) in [(true, false), (false, true)] {
        let shells = scheme(&mut rng, &b, zero, by_volume).check();
        assert_eq!(names(&shells), ["shell_1000", "shell_2000", "shell_3000"]);
    }
}

#[test]
fn shells_made_by_vector_norms() {
    // One nominal b (3000); the shells come from |g|² = 1/3, 2/3, 1.
    let mut rng = Rng(12);
    let mut b = Vec::new();
    let mut v = Vec::new();
    for k in 0..40 {
        let scale: f64 = [0.0, 1.0 / 3.0, 2.0 / 3.0, 1.0][k % 4];
        b.push("3000".to_string());
        v.push(
            rng.direction()
                .map(|c| format!("{:.6}", c.parse::<f64>().unwrap() * scale.sqrt())),
        );
    }
    let (bval, bvec) = tables(&b, &v, true);
    let shells = Case::new(&bval, &bvec, 40).check();
    assert_eq!(names(&shells), ["shell_1000", "shell_2000", "shell_3000"]);
}

#[test]
fn shells_sharing_a_rounded_name() {
    let mut rng = Rng(13);
    let b = multishell(&mut rng, &[950.0, 1040.0, 2000.0], 8, 3.0, 6);
    assert_eq!(
        names(&scheme(&mut rng, &b, true, false).check()),
        ["shell_950", "shell_1040", "shell_2000"]
    );
}

#[test]
fn a_name_dwiextract_cannot_resolve_is_refined() {
    let mut rng = Rng(14);
    let mut b = vec![0.0; 6];
    b.extend([
        850.0, 870.0, 890.0, 910.0, 930.0, 950.0, 1052.0, 1049.0, 1046.0,
    ]);
    b.extend([0.0; 10]);
    let case = scheme(&mut rng, &b, true, false);
    assert_eq!(names(&case.check()), ["shell_900", "shell_1050"]);
    let err = case.dwiextract(&["-shells", "1000"]).unwrap_err();
    assert!(
        err.contains("Unable to robustly select desired shell b=1000"),
        "{err}"
    );
}

#[test]
fn low_b_values_and_the_b0_threshold() {
    let mut rng = Rng(15);
    // IVIM-like low b-values, b=10 exactly (in the b=0 cluster, not -bzero).
    let b = [
        0.0, 10.0, 9.99, 10.5, 20.0, 30.0, 40.0, 50.0, 0.0, 10.0, 1000.0, 1000.0, 1000.0, 25.0,
        35.0, 0.0,
    ];
    let shells = scheme(&mut rng, &b, true, false).check();
    assert!(!shells.is_empty());
    let mut rng = Rng(16);
    let b = [
        10.0, 1000.0, 1000.0, 1000.0, 10.0, 2000.0, 2000.0, 2000.0, 10.0,
    ];
    let case = scheme(&mut rng, &b, false, false);
    assert_eq!(names(&case.check()), ["shell_1000", "shell_2000"]);
    assert!(case.grads.b0().is_empty());
}

#[test]
fn b0_at_exactly_ten_changes_how_dwiextract_picks() {
    // 3.0.3 takes a cluster of mean 10 for a shell (not b=0) of spread 0,
    // so dwiextract measures distances in sqrt(mean): -shells 1000 is then
    // ambiguous between the shells at 1030 and 1150.
    let mut rng = Rng(17);
    // Volume 8 is the last of its shell: 3.0.3's range of it is [1005, 1005].
    let b = [
        10.0, 1055.0, 1140.0, 10.0, 1030.0, 1160.0, 10.0, 1150.0, 1005.0,
    ];
    let case = scheme(&mut rng, &b, false, false);
    assert_eq!(names(&case.check()), ["shell_1030", "shell_1150"]);
    assert!(case.dwiextract(&["-shells", "1000"]).is_err());
}

#[test]
fn shells_exactly_eighty_apart_stay_apart() {
    let mut rng = Rng(18);
    let b = [
        0.0, 1000.0, 1080.0, 1000.0, 1080.0, 0.0, 1000.0, 1080.0, 0.0,
    ];
    // No zero vector, so no scaling: the b-values stay exactly 80 apart.
    // (-shells 1100 is ambiguous for spreads of 0, hence shell_1080.)
    let shells = scheme(&mut rng, &b, false, false).check();
    assert_eq!(names(&shells), ["shell_1000", "shell_1080"]);
}

#[test]
fn dwiextract_shells_for_any_b() {
    // Every b from 0 to 3500 in steps of 25 on schemes of different spreads:
    // the range, rounding and spread rules of -shells, and their failures.
    let mut rng = Rng(19);
    let schemes = [
        multishell(&mut rng, &[700.0, 1000.0, 2000.0], 6, 20.0, 4),
        multishell(&mut rng, &[300.0, 1500.0, 2600.0], 7, 0.0, 3),
        vec![
            10.0, 1055.0, 1140.0, 10.0, 1030.0, 1160.0, 10.0, 1150.0, 1005.0,
        ],
        // 1025 is past the narrow shell's range [1023, 1024] but within 1 of
        // its mean; by spread alone it would be ambiguous with the wide one.
        vec![
            0.0, 1025.0, 1150.0, 1023.0, 1200.0, 1250.0, 0.0, 1300.0, 1024.0, 1350.0, 1400.0,
            1450.0, 0.0, 0.0, 0.0, 0.0,
        ],
        // 1000 is both ends of the range [1000, 1000] of a shell of mean 1033.
        vec![
            0.0, 1040.0, 1145.0, 0.0, 1060.0, 1195.0, 1245.0, 0.0, 1295.0, 1345.0, 1000.0, 0.0,
            0.0, 0.0, 0.0, 0.0,
        ],
    ];
    let mut outcomes = (0, 0);
    for b in schemes {
        let case = scheme(&mut rng, &b, false, false);
        for k in 0..=140 {
            let want = format!("{}", k * 25);
            let ours = case.grads.select_shell(f64::from(k * 25));
            match case.dwiextract(&["-shells", &want]) {
                Ok(vols) => {
                    assert_eq!(ours.as_ref(), Some(&vols), "b={want}: {b:?}");
                    outcomes.0 += 1;
                }
                Err(err) => {
                    assert_eq!(ours, None, "b={want}: dwiextract: {err}");
                    outcomes.1 += 1;
                }
            }
        }
    }
    assert!(
        outcomes.0 > 50 && outcomes.1 > 50,
        "{outcomes:?} (selected, failed)"
    );
}

#[test]
fn dsi_lattice_has_no_shells() {
    let mut b = Vec::new();
    let mut v = Vec::new();
    for [x, y, z] in case::dsi_lattice() {
        let q2 = x * x + y * y + z * z;
        b.push(format!("{}", 4000 * q2 / 25));
        v.push([x, y, z].map(|c| format!("{}", f64::from(c) / f64::from(q2.max(1)).sqrt())));
    }
    let (bval, bvec) = tables(&b, &v, true);
    let case = Case::new(&bval, &bvec, b.len());
    assert!(case.check().is_empty());
    let (ok, _, err) = case.mrtrix("mrinfo", &["-shell_bvalues"]);
    assert!(!ok && err.contains("could not be classified"), "{err}");
    assert_eq!(case.grads.b0().len(), 1);
}

#[test]
fn b_on_a_continuum_matches_mrtrix() {
    // Random b over [0, 3000]: whatever MRtrix3 finds (noise, one long
    // chain, or no shells), nifuse finds the same.
    for seed in 1..=6 {
        let mut rng = Rng(100 + seed);
        let n = [40, 60, 90][seed as usize % 3];
        let b: Vec<f64> = (0..n)
            .map(|i| {
                if i % 10 == 0 {
                    0.0
                } else {
                    (rng.unit() * 3000.0).round()
                }
            })
            .collect();
        scheme(&mut rng, &b, true, false).check();
    }
}

#[test]
fn generated_schemes_match_mrtrix() {
    let mut rng = Rng(0xd1ff);
    for _ in 0..24 {
        let centres: Vec<f64> = (0..1 + (rng.unit() * 8.0) as usize)
            .map(|_| 30.0 + (rng.unit() * 3000.0).round())
            .collect();
        let count = 3 + (rng.unit() * 10.0) as usize;
        let jitter = rng.pick(&[0.0, 5.0, 30.0, 60.0]);
        let b0 = (rng.unit() * 8.0) as usize;
        let b = multishell(&mut rng, &centres, count, jitter, b0);
        let zero = rng.unit() < 0.5;
        let by_volume = rng.unit() < 0.5;
        scheme(&mut rng, &b, zero, by_volume).check();
    }
}

#[test]
fn three_by_three_vectors_and_a_column_of_b_values_read_as_mrtrix_reads_them() {
    // Three rows are x, y, z, also for 3 volumes: volume 2 is (0.6, 0, 0.8).
    // b = 5 for all, so dwiextract -bzero exports every vector.
    let case = Case::new("5\n5\r\n5\n", "1 0 0.6\n0 1 0\n0 0 0.8\n", 3);
    case.check();
    assert_eq!(case.grads.b0(), [0, 1, 2]);
    assert_eq!(case.grads.bvec(2).unwrap()[0].text(), "0.6");
}

#[test]
fn a_nan_b_value_gives_b0_but_no_shells() {
    // MRtrix3 3.0.3 makes the NaN volume a shell of its own ("nan" in
    // mrinfo) and sorts shells by a NaN mean, which has no defined order:
    // nifuse offers no shells then. dwiextract -bzero is defined (NaN < 10
    // is false) and nifuse's b0 is the same.
    let mut rng = Rng(20);
    let mut b: Vec<String> = ["0", "1000", "1000", "1000", "0", "2000", "2000", "2000"]
        .repeat(2)
        .iter()
        .map(|s| s.to_string())
        .collect();
    b.push("NaN".into());
    let v: Vec<[String; 3]> = b
        .iter()
        .map(|b| match b.as_str() {
            "0" | "NaN" => ["0".to_string(), "0".into(), "0".into()],
            _ => rng.direction(),
        })
        .collect();
    let (bval, bvec) = tables(&b, &v, false);
    let case = Case::new(&bval, &bvec, b.len());
    assert_eq!(case.dwiextract(&["-bzero"]), Ok(case.grads.b0()));
    assert_eq!(case.grads.b0(), [0, 4, 8, 12]);
    assert!(case.grads.shells().is_empty());
    let (ok, out, err) = case.mrtrix("mrinfo", &["-shell_bvalues"]);
    assert!(ok && out.contains("nan"), "{out} {err}");
}
