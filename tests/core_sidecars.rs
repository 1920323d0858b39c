//! Core tests (no mount) of the sidecars in `NAME.d/`: `.bval`/`.bvec`/`.json`
//! beside every view, `b0.nii` and `shell_B.nii`, broken sidecars, and
//! sidecars that appear, change and disappear while the image stays.

mod common;

use std::ffi::OsStr;
use std::fs;
use std::path::Path;

use common::corefs::*;
use common::nifti1;
use nifuse::cache::Mode;
use nifuse::fs::Fs;

/// b-values of a two-shell scheme with interleaved b=0 volumes, as written
/// (tokens in several notations), and unit vectors in 3 rows.
const N: usize = 20;
const BVALS: [&str; N] = [
    "0", "1000", "995", "1005", "0", "2000", "1.99e3", "2010", "1000", "5", "2000", "1000", "2005",
    "0", "1002", "1998", "1000", "2000", "998", "2e3",
];

fn bval_text() -> String {
    BVALS.join(" ") + "\n"
}

fn bvec_rows() -> [Vec<String>; 3] {
    let mut rows: [Vec<String>; 3] = Default::default();
    for k in 0..N {
        let a = k as f64 * 0.7;
        let v = [a.cos() * 0.6, a.sin() * 0.6, 0.8];
        for (r, c) in rows.iter_mut().zip(v) {
            r.push(format!("{c:.6}"));
        }
    }
    rows
}

fn bvec_text() -> String {
    bvec_rows().iter().map(|r| r.join("\t") + " \r\n").collect()
}

/// A DWI image whose volume k holds k in every voxel.
fn dwi(src: &Path) {
    let data: Vec<u8> = (0..N)
        .flat_map(|k| (k as i16).to_le_bytes().repeat(32))
        .collect();
    fs::write(
        src.join("dwi.nii"),
        nifti1(&[4, 4, 2, N as i16], 4, 16, 0, &data),
    )
    .unwrap();
    fs::write(src.join("dwi.bval"), bval_text()).unwrap();
    fs::write(src.join("dwi.bvec"), bvec_text()).unwrap();
    fs::write(src.join("dwi.json"), br#"{"RepetitionTime": 3.2}"#).unwrap();
}

fn text(f: &Fs, path: &str) -> String {
    String::from_utf8(read_all(f, walk(f, path))).unwrap()
}

/// The volumes a view holds (voxel values are the volume numbers).
fn volumes_in(f: &Fs, path: &str) -> Vec<usize> {
    let file = read_all(f, walk(f, path));
    let data = &file[352..];
    data.chunks(64)
        .map(|v| i16::from_le_bytes([v[0], v[1]]) as usize)
        .collect()
}

fn bval_of(vols: &[usize]) -> String {
    vols.iter().map(|&k| BVALS[k]).collect::<Vec<_>>().join(" ") + "\n"
}

fn bvec_of(vols: &[usize]) -> String {
    bvec_rows()
        .iter()
        .map(|r| {
            vols.iter()
                .map(|&k| r[k].as_str())
                .collect::<Vec<_>>()
                .join(" ")
                + "\n"
        })
        .collect()
}

#[test]
fn sidecars_follow_every_view() {
    let s = Src::new(dwi);
    let f = s.fs(Mode::Unchanged);
    let listed = names(&list(&f, walk(&f, "dwi.nii.d")));
    for want in [
        "dwi.nii",
        "dwi.bval",
        "dwi.bvec",
        "dwi.json",
        "b0.nii",
        "b0.bval",
        "b0.bvec",
        "b0.json",
        "shell_1000.nii",
        "shell_1000.bval",
        "shell_2000.nii",
        "shell_2000.bvec",
        "vol_0000.bval",
        "vol_0019.bvec",
        "vol_0007.json",
        "float32",
    ] {
        assert!(
            listed.contains(&want.to_string()),
            "{want} listed in {listed:?}"
        );
    }
    assert!(
        !listed.iter().any(|n| n.starts_with("vols_")),
        "ranges are not listed"
    );
    // The source files as they are.
    assert_eq!(text(&f, "dwi.nii.d/dwi.bval"), bval_text());
    assert_eq!(text(&f, "dwi.nii.d/dwi.bvec"), bvec_text());
    assert_eq!(
        text(&f, "dwi.nii.d/float64/dwi.json"),
        r#"{"RepetitionTime": 3.2}"#
    );
    // Volumes and ranges: tokens copied as written.
    assert_eq!(text(&f, "dwi.nii.d/vol_0006.bval"), "1.99e3\n");
    assert_eq!(text(&f, "dwi.nii.d/vol_0006.bvec"), bvec_of(&[6]));
    assert_eq!(
        text(&f, "dwi.nii.d/vols_0002-0009_step3.bval"),
        bval_of(&[2, 5, 8])
    );
    assert_eq!(
        text(&f, "dwi.nii.d/float32/vols_0002-0009_step3.bvec"),
        bvec_of(&[2, 5, 8])
    );
    assert_eq!(
        text(&f, "dwi.nii.d/vol_0001.json"),
        r#"{"RepetitionTime": 3.2}"#
    );
    // b0 (b < 10, as dwiextract -bzero) and the shells, data and sidecars agreeing.
    let b0 = [0, 4, 9, 13];
    let shell1 = vec![1, 2, 3, 8, 11, 14, 16, 18];
    let shell2 = vec![5, 6, 7, 10, 12, 15, 17, 19];
    for (name, vols) in [
        ("b0", b0.to_vec()),
        ("shell_1000", shell1),
        ("shell_2000", shell2),
    ] {
        assert_eq!(
            volumes_in(&f, &format!("dwi.nii.d/{name}.nii")),
            vols,
            "{name}"
        );
        assert_eq!(
            text(&f, &format!("dwi.nii.d/{name}.bval")),
            bval_of(&vols),
            "{name}"
        );
        assert_eq!(
            text(&f, &format!("dwi.nii.d/{name}.bvec")),
            bvec_of(&vols),
            "{name}"
        );
        let float = read_all(&f, walk(&f, &format!("dwi.nii.d/float32/{name}.nii")));
        assert_eq!(float.len(), 352 + vols.len() * 32 * 4, "float32/{name}.nii");
    }
    // Slices: the JSON only.
    let z = names(&list(&f, walk(&f, "dwi.nii.d/z")));
    assert!(z.contains(&"slice_0001.json".to_string()) && !z.iter().any(|n| n.ends_with(".bval")));
    let d = walk(&f, "dwi.nii.d");
    for bad in [
        "shell_1500.nii",
        "shell_1000.bval.bval",
        "vol_0020.bval",
        "b0.nii.bval",
        "vols_0003-0002.bval",
    ] {
        assert_eq!(errno(f.lookup(d, OsStr::new(bad))), libc::ENOENT, "{bad}");
    }
}

#[test]
fn broken_sidecars_give_no_diffusion_files_but_the_image_and_json_stay() {
    let cases: [(&str, String, Option<String>); 5] = [
        (
            "unparsable",
            "0 1000 abc".to_string() + &" 1000".repeat(17) + "\n",
            Some(bvec_text()),
        ),
        (
            "wrong count",
            bval_text().replace(" 2e3", ""),
            Some(bvec_text()),
        ),
        (
            "two rows",
            bval_text(),
            Some(
                bvec_rows()[..2]
                    .iter()
                    .map(|r| r.join(" ") + "\n")
                    .collect(),
            ),
        ),
        ("no bvec", bval_text(), None),
        ("empty", String::new(), Some(bvec_text())),
    ];
    for (what, bval, bvec) in cases {
        let s = Src::new(|src| {
            dwi(src);
            fs::write(src.join("dwi.bval"), &bval).unwrap();
            match &bvec {
                Some(b) => fs::write(src.join("dwi.bvec"), b).unwrap(),
                None => fs::remove_file(src.join("dwi.bvec")).unwrap(),
            }
        });
        let f = s.fs(Mode::Unchanged);
        let listed = names(&list(&f, walk(&f, "dwi.nii.d")));
        assert!(
            !listed.iter().any(|n| n.ends_with(".bval")
                || n.ends_with(".bvec")
                || n.starts_with("b0")
                || n.starts_with("shell_")),
            "{what}: {listed:?}"
        );
        assert!(
            listed.contains(&"vol_0019.nii".to_string())
                && listed.contains(&"dwi.json".to_string()),
            "{what}"
        );
        let d = walk(&f, "dwi.nii.d");
        assert_eq!(
            errno(f.lookup(d, OsStr::new("vol_0000.bval"))),
            libc::ENOENT,
            "{what}"
        );
        assert_eq!(
            errno(f.lookup(d, OsStr::new("b0.nii"))),
            libc::ENOENT,
            "{what}"
        );
    }
}

#[test]
fn sidecars_appear_change_and_disappear_while_the_image_stays() {
    let s = Src::new(|src| {
        dwi(src);
        for ext in ["bval", "bvec", "json"] {
            fs::remove_file(src.join(format!("dwi.{ext}"))).unwrap();
        }
    });
    let f = s.fs(Mode::Fill);
    let d = walk(&f, "dwi.nii.d");
    let v0 = walk(&f, "dwi.nii.d/vol_0000.nii");
    read_all(&f, v0);
    assert!(filled(&f, "dwi.nii"));
    assert_eq!(errno(f.lookup(d, OsStr::new("b0.nii"))), libc::ENOENT);
    // They appear.
    fs::write(s.dir().join("dwi.bval"), bval_text()).unwrap();
    fs::write(s.dir().join("dwi.bvec"), bvec_text()).unwrap();
    assert_eq!(volumes_in(&f, "dwi.nii.d/b0.nii"), [0, 4, 9, 13]);
    let old_b0 = walk(&f, "dwi.nii.d/b0.nii");
    let old_bval = walk(&f, "dwi.nii.d/vol_0004.bval");
    // They change: volume 4 is no longer b=0.
    let changed = bval_text().replacen("1000 995 1005 0", "1000 995 1005 1000", 1);
    fs::write(s.dir().join("dwi.bval.tmp"), &changed).unwrap();
    fs::rename(s.dir().join("dwi.bval.tmp"), s.dir().join("dwi.bval")).unwrap();
    assert_eq!(volumes_in(&f, "dwi.nii.d/b0.nii"), [0, 9, 13]);
    assert_eq!(text(&f, "dwi.nii.d/vol_0004.bval"), "1000\n");
    assert_eq!(
        errno(f.getattr(old_b0)),
        libc::ESTALE,
        "the old b0.nii is stale"
    );
    assert_eq!(
        errno(f.getattr(old_bval)),
        libc::ESTALE,
        "the old vol_0004.bval is stale"
    );
    assert_eq!(
        walk(&f, "dwi.nii.d/vol_0000.nii"),
        v0,
        "the image's own inodes stay"
    );
    assert!(f.in_memory(Path::new("dwi.nii")), "and so does its cache");
    // They disappear.
    fs::remove_file(s.dir().join("dwi.bvec")).unwrap();
    assert_eq!(errno(f.lookup(d, OsStr::new("b0.nii"))), libc::ENOENT);
    assert_eq!(
        errno(f.lookup(d, OsStr::new("vol_0004.bval"))),
        libc::ENOENT
    );
    assert_eq!(walk(&f, "dwi.nii.d/vol_0000.nii"), v0);
}
