//! One case of the MRtrix3 comparison: a scratch image with its sidecars,
//! MRtrix3's commands run on it, and every check of nifuse's reading.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use nifuse::view::dwi::{Gradients, Shell};

/// A scratch directory holding one case's image and sidecars.
pub struct Case {
    _dir: tempfile::TempDir,
    root: PathBuf,
    n: usize,
    pub grads: Gradients,
}

impl Case {
    pub fn new(bval: &str, bvec: &str, n: usize) -> Case {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_path_buf();
        let data: Vec<u8> = (0..n)
            .flat_map(|k| (k as i16).to_le_bytes().repeat(32))
            .collect();
        std::fs::write(
            root.join("dwi.nii"),
            crate::common::nifti1(&[4, 4, 2, n as i16], 4, 16, 0, &data),
        )
        .unwrap();
        std::fs::write(root.join("dwi.bval"), bval).unwrap();
        std::fs::write(root.join("dwi.bvec"), bvec).unwrap();
        let grads = Gradients::parse(bval.as_bytes(), bvec.as_bytes(), n as u64).unwrap();
        Case {
            _dir: dir,
            root,
            n,
            grads,
        }
    }

    pub fn path(&self, name: &str) -> String {
        self.root.join(name).to_string_lossy().into_owned()
    }

    /// Runs an MRtrix3 command on the case's image with its gradients.
    pub fn mrtrix(&self, tool: &str, args: &[&str]) -> (bool, String, String) {
        static PROBED: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());
        let mut probed = PROBED.lock().unwrap();
        if !probed.iter().any(|t| t == tool) {
            let probe = Command::new(tool).arg("-version").output();
            assert!(
                probe.is_ok_and(|o| o.status.success()),
                "{tool} (MRtrix3) cannot run: scripts/setup-deps installs it"
            );
            probed.push(tool.to_string());
        }
        drop(probed);
        let mut cmd = Command::new(tool);
        cmd.args(["-quiet", "-nthreads", "0", "-fslgrad"])
            .args([
                self.path("dwi.bvec"),
                self.path("dwi.bval"),
                self.path("dwi.nii"),
            ])
            .args(args);
        crate::common::run(&mut cmd, Duration::from_secs(120))
    }

    /// `dwiextract` with `select` (`-bzero`, or `-shells B`): the source
    /// volumes of its output, or Err with its refusal.
    pub fn dwiextract(&self, select: &[&str]) -> Result<Vec<u64>, String> {
        let (out, bvec, bval) = (
            self.path("out.nii"),
            self.path("out.bvec"),
            self.path("out.bval"),
        );
        let mut args = select.to_vec();
        args.extend(["-force", &out, "-export_grad_fsl", &bvec, &bval]);
        let (ok, _, err) = self.mrtrix("dwiextract", &args);
        if !ok {
            // Only a selection that fails is an answer; anything else is a broken run.
            const REFUSALS: [&str; 4] = [
                "No b=0 volumes present",
                "could not be classified into b-value shells",
                "User selected b=0 shell, but no such data was found",
                "Unable to robustly select desired shell",
            ];
            assert!(
                REFUSALS.iter().any(|r| err.contains(r)),
                "dwiextract {select:?} failed: {err}"
            );
            return Err(err);
        }
        let vols = volumes_of(Path::new(&out));
        assert!(vols.iter().all(|&k| (k as usize) < self.n), "{vols:?}");
        self.check_export(
            &vols,
            &std::fs::read_to_string(&bval).unwrap(),
            &std::fs::read_to_string(&bvec).unwrap(),
        );
        Ok(vols)
    }

    /// The exported b-values are ours as MRtrix3 scales them; the vectors are
    /// ours normalised (a zero vector stays zero).
    pub fn check_export(&self, vols: &[u64], bval: &str, bvec: &str) {
        let b = self.grads.scaled_bvalues().unwrap();
        let (bvals, rows) = (numbers(bval), numbers(bvec));
        assert_eq!((bvals.len(), rows.len()), (1, 3));
        for (i, &k) in vols.iter().enumerate() {
            assert!(
                close(bvals[0][i], b[k as usize]),
                "volume {k}: b {} vs {}",
                bvals[0][i],
                b[k as usize]
            );
            let v = self.grads.bvec(k).unwrap().clone().map(|c| c.value());
            let norm = (v[0] * v[0] + v[1] * v[1] + v[2] * v[2]).sqrt();
            for axis in 0..3 {
                let want = if norm > 0.0 { v[axis] / norm } else { 0.0 };
                assert!(
                    close(rows[axis][i], want),
                    "volume {k} axis {axis}: {} vs {want}",
                    rows[axis][i]
                );
            }
        }
    }

    /// Checks everything for this case; returns our shells for case asserts.
    pub fn check(&self) -> Vec<Shell> {
        let b0 = self.grads.b0();
        match self.dwiextract(&["-bzero"]) {
            Ok(vols) => assert_eq!(vols, b0, "b0"),
            Err(err) => {
                assert!(err.contains("No b=0 volumes present"), "{err}");
                assert!(b0.is_empty(), "{b0:?}, dwiextract: {err}");
            }
        }
        let ours = self.grads.shells();
        let (ok, out, err) = self.mrtrix(
            "mrinfo",
            &["-shell_bvalues", "-shell_sizes", "-shell_indices"],
        );
        if !ok {
            assert!(
                err.contains("could not be classified into b-value shells"),
                "{err}"
            );
            assert!(ours.is_empty(), "MRtrix3 finds no shells, we find {ours:?}");
            return ours;
        }
        let lines: Vec<&str> = out.lines().collect();
        let means = &numbers(lines[0])[0];
        let groups: Vec<Vec<u64>> = lines[2]
            .split_whitespace()
            .map(|g| g.split(',').map(|k| k.parse().unwrap()).collect())
            .collect();
        let sizes = &numbers(lines[1])[0];
        assert_eq!(
            sizes,
            &groups.iter().map(|g| g.len() as f64).collect::<Vec<_>>()
        );
        // MRtrix3's non-b=0 shells (3.0.3: mean >= 10), in increasing b.
        let theirs: Vec<(f64, &Vec<u64>)> = means
            .iter()
            .copied()
            .zip(&groups)
            .filter(|(m, _)| *m >= 10.0)
            .collect();
        let mut named = ours.iter().peekable();
        for (mean, vols) in &theirs {
            match named.peek() {
                Some(s) if &s.volumes == *vols => {
                    assert!(
                        (s.mean_b - mean).abs() <= 1e-5 * mean.abs().max(1.0),
                        "{s:?} vs {mean}"
                    );
                    let b = s.name.strip_prefix("shell_").unwrap();
                    assert_eq!(
                        self.dwiextract(&["-shells", b]).as_ref(),
                        Ok(&s.volumes),
                        "{}",
                        s.name
                    );
                    named.next();
                }
                // A shell we do not name: no rounding of its mean selects it.
                _ => {
                    for step in [100.0, 10.0, 1.0] {
                        let b = format!("{}", (mean / step).round() * step);
                        assert_ne!(
                            self.dwiextract(&["-shells", &b]).as_ref(),
                            Ok(*vols),
                            "b={b}"
                        );
                    }
                }
            }
        }
        assert!(
            named.next().is_none(),
            "shells MRtrix3 does not have: {ours:?} vs {theirs:?}"
        );
        ours
    }
}

/// Rows of numbers of a text (as MRtrix3 writes them).
pub fn numbers(text: &str) -> Vec<Vec<f64>> {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.split_whitespace().map(|t| t.parse().unwrap()).collect())
        .collect()
}

pub fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * b.abs().max(1.0)
}

/// The source volumes held by an image MRtrix3 wrote: each of its volumes
/// must be constant, and its value is the source index.
pub fn volumes_of(path: &Path) -> Vec<u64> {
    let f = std::fs::read(path).unwrap();
    let i16_at = |o: usize| i16::from_le_bytes([f[o], f[o + 1]]);
    let f32_at = |o: usize| f32::from_le_bytes([f[o], f[o + 1], f[o + 2], f[o + 3]]);
    assert_eq!(
        i32::from_le_bytes([f[0], f[1], f[2], f[3]]),
        348,
        "a little-endian NIfTI-1 file"
    );
    let dims: Vec<usize> = (1..=4).map(|i| i16_at(40 + 2 * i) as usize).collect();
    assert_eq!(&dims[..3], [4, 4, 2]);
    let (datatype, offset) = (i16_at(70), f32_at(108) as usize);
    let (slope, inter) = (f32_at(112) as f64, f32_at(116) as f64);
    let (slope, inter) = if slope == 0.0 || !slope.is_finite() {
        (1.0, 0.0)
    } else {
        (slope, inter)
    };
    let size = match datatype {
        4 => 2,
        16 => 4,
        64 => 8,
        other => panic!("datatype {other}"),
    };
    let value = |i: usize| {
        let o = offset + i * size;
        let raw = match datatype {
            4 => i16_at(o) as f64,
            16 => f32_at(o) as f64,
            _ => f64::from_le_bytes(f[o..o + 8].try_into().unwrap()),
        };
        raw * slope + inter
    };
    (0..dims[3])
        .map(|t| {
            let v: Vec<f64> = (0..32).map(|i| value(t * 32 + i)).collect();
            assert!(
                v.iter().all(|&x| x == v[0]),
                "volume {t} of {path:?} is not one source volume"
            );
            let k = v[0].round();
            assert!((v[0] - k).abs() < 1e-3 && k >= 0.0, "{}", v[0]);
            k as u64
        })
        .collect()
}

/// The points q of a DSI q-space lattice (|q| <= 5, one half-sphere): with
/// b = 4000 |q|^2 / 25 it takes 26 values 160 apart, more clusters than
/// MRtrix3 calls shells.
pub fn dsi_lattice() -> Vec<[i32; 3]> {
    let mut q = Vec::new();
    for x in -5i32..=5 {
        for y in -5i32..=5 {
            for z in -5i32..=5 {
                let q2 = x * x + y * y + z * z;
                if q2 <= 25 && (z > 0 || (z == 0 && (y > 0 || (y == 0 && x >= 0)))) {
                    q.push([x, y, z]);
                }
            }
        }
    }
    q
}
