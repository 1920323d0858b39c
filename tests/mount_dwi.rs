//! Mount tests of the diffusion sidecars: `b0.nii`, `shell_B.nii` and their
//! `.bval`/`.bvec` read through the kernel against MRtrix3's own
//! `dwiextract ... -export_grad_fsl` of the same source (Debian `mrtrix3`,
//! installed by `scripts/setup-deps`), on multi-shell and DSI-like schemes;
//! MRtrix3 reading the mounted whole image and its sidecars; broken sidecars
//! logged once; a rewritten bval seen by new reads.

#[path = "core_dwi/case.rs"]
#[allow(dead_code)]
mod case;
mod common;

use std::fs;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use case::{close, numbers, volumes_of};
use common::*;

/// A 4x4x2xN int16 image whose volume k holds k, with its bval/bvec.
fn write_dwi(src: &Path, name: &str, bvals: &[f64], tokens: bool) {
    let n = bvals.len();
    let data: Vec<u8> = (0..n)
        .flat_map(|k| (k as i16).to_le_bytes().repeat(32))
        .collect();
    fs::write(
        src.join(format!("{name}.nii")),
        nifti1(&[4, 4, 2, n as i16], 4, 16, 0, &data),
    )
    .unwrap();
    let b: Vec<String> = bvals
        .iter()
        .map(|b| {
            if tokens && *b > 100.0 {
                format!("{:e}", b)
            } else {
                format!("{b}")
            }
        })
        .collect();
    let mut rows = [String::new(), String::new(), String::new()];
    for k in 0..n {
        let a = k as f64 * 2.39996;
        let z = 1.0 - 2.0 * (k as f64 + 0.5) / n as f64;
        let r = (1.0 - z * z).sqrt();
        for (row, c) in rows.iter_mut().zip([r * a.cos(), r * a.sin(), z]) {
            row.push_str(&format!("{c:.7} "));
        }
    }
    fs::write(src.join(format!("{name}.bval")), b.join(" ") + "\n").unwrap();
    fs::write(src.join(format!("{name}.bvec")), rows.join("\n") + "\n").unwrap();
}

/// What dwiextract wrote: the source volumes, the exported b-values and bvec rows.
type Extracted = (Vec<u64>, Vec<f64>, Vec<Vec<f64>>);

/// `dwiextract -fslgrad BVEC BVAL IMG SELECT OUT -export_grad_fsl ..` on files
/// at `dir/stem.*`: (source volumes, exported bvals, exported bvec rows), or None
/// when dwiextract refuses.
fn dwiextract(dir: &Path, stem: &str, out: &Path, select: &[&str]) -> Option<Extracted> {
    let p = |ext: &str| dir.join(format!("{stem}.{ext}"));
    let (nii, obval, obvec) = (out.join("x.nii"), out.join("x.bval"), out.join("x.bvec"));
    let (ok, _, err) = run(
        Command::new("dwiextract")
            .args(["-quiet", "-force", "-nthreads", "0", "-fslgrad"])
            .args([p("bvec"), p("bval"), p("nii")])
            .args(select)
            .arg(&nii)
            .arg("-export_grad_fsl")
            .args([&obvec, &obval]),
        Duration::from_secs(60),
    );
    if !ok {
        assert!(
            err.contains("could not be classified")
                || err.contains("No b=0")
                || err.contains("robustly"),
            "dwiextract {select:?}: {err}"
        );
        return None;
    }
    let vols = volumes_of(&nii);
    let b = numbers(&fs::read_to_string(&obval).unwrap()).remove(0);
    Some((vols, b, numbers(&fs::read_to_string(&obvec).unwrap())))
}

/// Our file against dwiextract's selection of the source.
fn compare(m: &Mount, stem: &str, view: &str, select: &[&str]) {
    let out = tempfile::tempdir().unwrap();
    let (vols, b, vecs) = dwiextract(&m.src, stem, out.path(), select)
        .unwrap_or_else(|| panic!("dwiextract {select:?} refused"));
    let d = m.path(format!("{stem}.nii.d"));
    assert_eq!(
        volumes_of(&d.join(format!("{view}.nii"))),
        vols,
        "{view}.nii holds dwiextract's volumes"
    );
    let ours_b =
        numbers(&String::from_utf8(cat(&d.join(format!("{view}.bval")))).unwrap()).remove(0);
    assert_eq!(ours_b.len(), b.len(), "{view}.bval");
    assert!(
        ours_b.iter().zip(&b).all(|(a, b)| close(*a, *b)),
        "{view}.bval {ours_b:?} vs {b:?}"
    );
    let ours_v = numbers(&String::from_utf8(cat(&d.join(format!("{view}.bvec")))).unwrap());
    for (ours, theirs) in ours_v.iter().zip(&vecs) {
        assert!(
            ours.iter().zip(theirs).all(|(a, b)| (a - b).abs() < 1e-5),
            "{view}.bvec"
        );
    }
}

fn multishell() -> Vec<f64> {
    let mut b = Vec::new();
    for k in 0..46 {
        b.push(match k % 9 {
            0 => 0.0,
            1 | 4 | 7 => 1000.0 + (k % 5) as f64 * 4.0 - 8.0,
            2 | 5 | 8 => 2000.0 + (k % 7) as f64 * 3.0 - 9.0,
            _ => 3000.0 - (k % 3) as f64 * 10.0,
        });
    }
    b
}

/// The b-values of a DSI lattice: no shells for MRtrix3.
fn dsi() -> Vec<f64> {
    case::dsi_lattice()
        .into_iter()
        .map(|[x, y, z]| f64::from(4000 * (x * x + y * y + z * z) / 25))
        .collect()
}

#[test]
fn b0_and_shells_hold_what_dwiextract_selects() {
    let m = Mount::mount(|src| {
        write_dwi(src, "multi", &multishell(), true);
        write_dwi(src, "dsi", &dsi(), false);
    });
    compare(&m, "multi", "b0", &["-bzero"]);
    for shell in ["1000", "2000", "3000"] {
        compare(&m, "multi", &format!("shell_{shell}"), &["-shells", shell]);
    }
    let shells: Vec<String> = names(&m.path("multi.nii.d"))
        .into_iter()
        .filter(|n| n.starts_with("shell_") && n.ends_with(".nii"))
        .collect();
    assert_eq!(
        shells,
        ["shell_1000.nii", "shell_2000.nii", "shell_3000.nii"]
    );
    // DSI: no shells, as MRtrix3 finds none; the b=0 volumes are still there.
    let out = tempfile::tempdir().unwrap();
    assert!(dwiextract(&m.src, "dsi", out.path(), &["-shells", "1000"]).is_none());
    assert!(
        !names(&m.path("dsi.nii.d"))
            .iter()
            .any(|n| n.starts_with("shell_"))
    );
    compare(&m, "dsi", "b0", &["-bzero"]);
    // MRtrix3 reads the mounted whole image with its mounted sidecars.
    let d = m.path("multi.nii.d");
    let (vols, _, _) =
        dwiextract(&d, "multi", out.path(), &["-bzero"]).expect("dwiextract on the mount");
    assert_eq!(vols, volumes_of(&d.join("b0.nii")));
}

#[test]
fn broken_sidecars_are_logged_once_and_leave_the_image_alone() {
    let m = Mount::mount(|src| {
        let b = multishell();
        write_dwi(src, "count", &b, false);
        fs::write(src.join("count.bval"), "0 1000 1000\n").unwrap();
        write_dwi(src, "token", &b, false);
        let bad = fs::read_to_string(src.join("token.bval"))
            .unwrap()
            .replacen("1000", "1O00", 1);
        fs::write(src.join("token.bval"), bad).unwrap();
        write_dwi(src, "lonely", &b, false);
        fs::remove_file(src.join("lonely.bvec")).unwrap();
    });
    for (stem, why) in [
        ("count", "count.bval: 3 b-values for 46 volumes"),
        ("token", "\"1O00\""),
        ("lonely", "lonely.bval has no lonely.bvec beside it"),
    ] {
        for _ in 0..3 {
            let listed = names(&m.path(format!("{stem}.nii.d")));
            assert!(
                listed.contains(&"vol_0045.nii".to_string()),
                "{stem}: the image is served"
            );
            assert!(
                !listed
                    .iter()
                    .any(|n| n.ends_with(".bval") || n.starts_with("b0")),
                "{stem}: {listed:?}"
            );
        }
        let log = m.log();
        let lines: Vec<&str> = log.lines().filter(|l| l.contains(why)).collect();
        assert_eq!(
            lines.len(),
            1,
            "{stem}: one log line saying {why:?}:\n{log}"
        );
        assert!(lines[0].contains(&format!("{stem}.nii")), "{}", lines[0]);
    }
}

#[test]
fn a_rewritten_bval_changes_the_views_and_nothing_else() {
    let mut b = multishell();
    let m = Mount::mount(|src| write_dwi(src, "dwi", &b, false));
    let d = m.path("dwi.nii.d");
    let vol = cat(&d.join("vol_0003.nii"));
    let ino = fs::metadata(d.join("vol_0003.nii"))
        .map(|md| std::os::unix::fs::MetadataExt::ino(&md))
        .unwrap();
    assert_eq!(volumes_of(&d.join("b0.nii")), [0, 9, 18, 27, 36, 45]);
    b[3] = 0.0;
    let text: Vec<String> = b.iter().map(|v| format!("{v}")).collect();
    fs::write(m.src.join("dwi.bval.new"), text.join(" ") + "\n").unwrap();
    fs::rename(m.src.join("dwi.bval.new"), m.src.join("dwi.bval")).unwrap();
    // New opens see the new selection once the kernel's names expire (1 s).
    wait_for(
        Duration::from_secs(10),
        "b0.nii shows the rewritten bval",
        || volumes_of(&d.join("b0.nii")) == [0, 3, 9, 18, 27, 36, 45],
    );
    assert_eq!(
        String::from_utf8(cat(&d.join("vol_0003.bval"))).unwrap(),
        "0\n"
    );
    assert_eq!(cat(&d.join("vol_0003.nii")), vol, "the volume is unchanged");
    let now = fs::metadata(d.join("vol_0003.nii"))
        .map(|md| std::os::unix::fs::MetadataExt::ino(&md))
        .unwrap();
    assert_eq!(now, ino, "and keeps its inode");
}
