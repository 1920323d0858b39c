//! The model of `core_views.rs`: generated images, and what their views'
//! headers and data must be, computed here voxel by voxel.

use crate::common::bytes;
use crate::fuzz_checks::{make_extension, make_header, put};
use nifuse::nifti::{FieldTable, NIFTI1, NIFTI2};

/// One generated image and everything the model needs.
pub struct Img {
    pub v2: bool,
    pub big: bool,
    /// dim[1..=ndim].
    pub dims: Vec<i64>,
    pub bpv: usize,
    /// The source header (348 or 540 bytes), single-file magic.
    pub header: Vec<u8>,
    /// Raw extensions, in order, with their ecodes.
    pub exts: Vec<(i32, Vec<u8>)>,
    /// The voxel data.
    pub data: Vec<u8>,
}

pub const DATATYPES: [(i16, i16); 6] =
    [(2, 8), (4, 16), (128, 24), (16, 32), (64, 64), (1792, 128)];

impl Img {
    pub fn new(v2: bool, big: bool, dims: &[i64], dt: (i16, i16), exts: &[i32], seed: u64) -> Img {
        let t = table(v2);
        let mut d = [1i64; 8];
        d[0] = dims.len() as i64;
        d[1..=dims.len()].copy_from_slice(dims);
        let mut h = make_header(v2, big, false, d, dt.0, dt.1, 0.0);
        let f = |name: &str| t.all.iter().find(|(n, _)| *n == name).unwrap().1;
        for (i, z) in [0.0, 2.0, 3.0, 4.0, 2.5].iter().enumerate() {
            put(&mut h, t.pixdim, i, *z, big);
        }
        put(&mut h, t.pixdim, 0, -1.0, big); // qfac
        put(&mut h, f("toffset"), 0, 1.25, big);
        put(&mut h, t.intent_code, 0, 2001.0, big);
        put(&mut h, t.qform_code, 0, 1.0, big);
        put(&mut h, t.sform_code, 0, 2.0, big);
        for (name, v) in [("quatern_b", 0.1), ("quatern_c", -0.2), ("quatern_d", 0.3)] {
            put(&mut h, f(name), 0, v, big);
        }
        for (name, v) in [
            ("qoffset_x", 10.0),
            ("qoffset_y", -20.0),
            ("qoffset_z", 30.5),
        ] {
            put(&mut h, f(name), 0, v, big);
        }
        for (r, row) in ["srow_x", "srow_y", "srow_z"].iter().enumerate() {
            for c in 0..4 {
                put(&mut h, f(row), c, (r * 4 + c) as f64 * 0.5 - 1.0, big);
            }
        }
        h[t.all
            .iter()
            .find(|(n, _)| *n == "descrip")
            .unwrap()
            .1
            .offset] = b'v';
        let exts: Vec<(i32, Vec<u8>)> = exts
            .iter()
            .enumerate()
            .map(|(i, &code)| (code, make_extension(32, code, big, b'a' + i as u8)))
            .collect();
        let bpv = (dt.1 / 8) as usize;
        let n: usize = dims.iter().map(|&x| x as usize).product();
        Img {
            v2,
            big,
            dims: dims.to_vec(),
            bpv,
            header: h,
            exts,
            data: bytes(n * bpv, seed),
        }
    }

    /// The single file (`n+1`/`n+2`) with extensions.
    pub fn file(&self) -> Vec<u8> {
        let mut out = self.header.clone();
        let used = out.len() + 4 + self.exts.iter().map(|e| e.1.len()).sum::<usize>();
        let vox = used.next_multiple_of(16);
        put(&mut out, table(self.v2).vox_offset, 0, vox as f64, self.big);
        out.extend_from_slice(&[u8::from(!self.exts.is_empty()), 0, 0, 0]);
        for (_, e) in &self.exts {
            out.extend_from_slice(e);
        }
        out.resize(vox, 0);
        out.extend_from_slice(&self.data);
        out
    }

    pub fn dim(&self, i: usize) -> usize {
        self.dims.get(i).map_or(1, |&d| d as usize)
    }

    pub fn n_vols(&self) -> usize {
        self.dims.iter().skip(3).map(|&d| d as usize).product()
    }

    pub fn vol_voxels(&self) -> usize {
        self.dim(0) * self.dim(1) * self.dim(2)
    }

    pub fn voxel(&self, x: usize, y: usize, z: usize, t: usize) -> &[u8] {
        let i = ((t * self.dim(2) + z) * self.dim(1) + y) * self.dim(0) + x;
        &self.data[i * self.bpv..(i + 1) * self.bpv]
    }

    pub fn volumes(&self, vols: &[usize]) -> Vec<u8> {
        let vb = self.vol_voxels() * self.bpv;
        vols.iter()
            .flat_map(|&k| self.data[k * vb..(k + 1) * vb].iter().copied())
            .collect()
    }

    pub fn slice(&self, axis: usize, s: usize) -> Vec<u8> {
        let mut out = Vec::new();
        for t in 0..self.n_vols() {
            for z in 0..self.dim(2) {
                for y in 0..self.dim(1) {
                    for x in 0..self.dim(0) {
                        if [x, y, z][axis] == s {
                            out.extend_from_slice(self.voxel(x, y, z, t));
                        }
                    }
                }
            }
        }
        out
    }

    pub fn get(&self, bytes: &[u8], name: &str, i: usize) -> f64 {
        let h = nifuse::nifti::Header::parse(bytes).expect("view header parses");
        h.get(name, i).unwrap()
    }
}

pub fn table(v2: bool) -> &'static FieldTable {
    if v2 { &NIFTI2 } else { &NIFTI1 }
}

/// The bytes a view header must have outside the fields it patches.
pub fn same_except(img: &Img, got: &[u8], patched: &[&str], what: &str) {
    let t = table(img.v2);
    let mut skip = vec![false; t.len];
    for name in patched.iter().chain(&["vox_offset"]) {
        let f = t.all.iter().find(|(n, _)| n == name).unwrap().1;
        skip[f.offset..f.offset + f.size()]
            .iter_mut()
            .for_each(|s| *s = true);
    }
    for i in 0..t.len {
        if !skip[i] {
            assert_eq!(got[i], img.header[i], "{what}: header byte {i} changed");
        }
    }
}

/// The extensions a view file carries after its header, and its vox_offset check.
pub fn check_extensions(img: &Img, file: &[u8], keep_afni: bool, what: &str) {
    let t = table(img.v2);
    let vox = img.get(file, "vox_offset", 0) as usize;
    assert_eq!(vox % 16, 0, "{what}: vox_offset {vox}");
    let kept: Vec<u8> = img
        .exts
        .iter()
        .filter(|(c, _)| keep_afni || *c != 4)
        .flat_map(|(_, e)| e.clone())
        .collect();
    let after = &file[t.len..vox];
    if kept.is_empty() {
        assert!(after.iter().all(|&b| b == 0), "{what}: no extensions");
    } else {
        assert_eq!(after[0], 1, "{what}: extender");
        assert_eq!(&after[4..4 + kept.len()], &kept[..], "{what}: extensions");
    }
}
