//! Helpers of the core tests (no mount): a temporary SOURCE, an `Fs` over
//! it, and walking and reading through the `Fs` API.
#![allow(dead_code)]

use std::ffi::OsStr;
use std::fs;
use std::path::Path;
use std::time::Duration;

use super::{bytes, gzip, nifti1};
use nifuse::cache::Mode;
use nifuse::fs::handle::DirEntry;
use nifuse::fs::xattr::XattrValue;
use nifuse::fs::{Config, Fs};

pub const ROOT: u64 = 1;
/// Bytes per volume of the 4x5x6 int16 test images.
pub const VOL: usize = 4 * 5 * 6 * 2;
pub const BUDGET: u64 = 1 << 30;

// ---------------------------------------------------------------- helpers

/// An int16 image of `dims` with pseudo-random voxels: (file bytes, voxel bytes).
pub fn image(dims: &[i16], seed: u64, intent: i16) -> (Vec<u8>, Vec<u8>) {
    let n: usize = dims.iter().map(|&d| d as usize).product::<usize>() * 2;
    let data = bytes(n, seed);
    (nifti1(dims, 4, 16, intent, &data), data)
}

/// What `vol_K.nii` of a `common::nifti1` source must hold: the source header
/// with dim[0] = 3, dim[4..7] = 1, intent 2001 cleared, then volume k's bytes.
pub fn expected_volume(file: &[u8], vol_bytes: usize, k: usize) -> Vec<u8> {
    let mut h = file[..352].to_vec();
    h[40..42].copy_from_slice(&3i16.to_le_bytes());
    for i in 4..8 {
        h[40 + 2 * i..42 + 2 * i].copy_from_slice(&1i16.to_le_bytes());
    }
    if i16::from_le_bytes([h[68], h[69]]) == 2001 {
        h[68..70].copy_from_slice(&0i16.to_le_bytes());
    }
    h.extend_from_slice(&file[352 + k * vol_bytes..352 + (k + 1) * vol_bytes]);
    h
}

/// Waits for the background fill of `name` (compressed images fill while
/// their readers decode their own volume); true once it is in memory.
pub fn filled(f: &Fs, name: &str) -> bool {
    let start = std::time::Instant::now();
    while !f.in_memory(Path::new(name)) {
        if start.elapsed() > Duration::from_secs(10) {
            return false;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    true
}

pub fn config(mode: Mode, budget: u64) -> Config {
    Config {
        verify: nifuse::source::data::Verify::Background,
        ttl: Duration::from_secs(1),
        volume_ttl: Duration::from_secs(1),
        recheck: Duration::ZERO,
        index_dir: None,
        cache_mode: mode,
        cache_size: budget,
        uid: 1234,
        gid: 5678,
    }
}

pub struct Src {
    pub tmp: tempfile::TempDir,
}

impl Src {
    pub fn new(fill: impl FnOnce(&Path)) -> Src {
        let tmp = tempfile::tempdir().expect("tempdir");
        fs::create_dir(tmp.path().join("src")).unwrap();
        fill(&tmp.path().join("src"));
        Src { tmp }
    }
    pub fn dir(&self) -> std::path::PathBuf {
        self.tmp.path().join("src")
    }
    pub fn fs(&self, mode: Mode) -> Fs {
        Fs::new(&self.dir(), config(mode, BUDGET)).expect("Fs::new")
    }
}

pub fn errno<T: std::fmt::Debug>(r: nifuse::Result<T>) -> i32 {
    r.expect_err("expected an error").errno()
}

/// Looks up a `/`-separated path from the root, counting one lookup per component.
pub fn walk(f: &Fs, path: &str) -> u64 {
    let mut ino = ROOT;
    for part in path.split('/') {
        ino = f
            .lookup(ino, OsStr::new(part))
            .unwrap_or_else(|e| panic!("lookup {part} of {path}: {e}"))
            .attr
            .ino;
    }
    ino
}

/// The whole listing of directory `ino`.
pub fn list(f: &Fs, ino: u64) -> Vec<DirEntry> {
    let fh = f.opendir(ino).expect("opendir");
    let v = f.readdir(fh, 0).expect("readdir");
    f.release(fh);
    v
}

pub fn names(v: &[DirEntry]) -> Vec<String> {
    let mut n: Vec<String> = v
        .iter()
        .map(|e| e.name.to_string_lossy().into_owned())
        .collect();
    n.sort();
    n
}

/// The whole contents of file `ino`, through open/read/release.
pub fn read_all(f: &Fs, ino: u64) -> Vec<u8> {
    let fh = f.open(ino, libc::O_RDONLY).expect("open").fh;
    let out = f.read(fh, 0, 1 << 24).expect("read");
    f.release(fh);
    out
}

pub fn xattr(f: &Fs, ino: u64, name: &str) -> String {
    match f
        .getxattr(ino, OsStr::new(name), 4096)
        .unwrap_or_else(|e| panic!("getxattr {name}: {e}"))
    {
        XattrValue::Data(d) => String::from_utf8(d).unwrap(),
        XattrValue::Size(n) => panic!("getxattr {name} with a buffer returned a size {n}"),
    }
}

pub fn standard_source(src: &Path) {
    let (a, _) = image(&[4, 5, 6, 7], 1, 0);
    fs::write(src.join("a.nii"), &a).unwrap();
    let (b, _) = image(&[4, 5, 6, 7], 2, 2001);
    fs::write(src.join("b.nii.gz"), gzip(&b)).unwrap();
    fs::write(src.join("notes.txt"), b"hello\n").unwrap();
    fs::create_dir(src.join("sub")).unwrap();
    fs::write(src.join("sub/c.nii"), image(&[4, 5, 6, 3], 3, 0).0).unwrap();
    // An image whose NAME.d already exists in SOURCE: the real directory wins.
    fs::write(src.join("x.nii"), image(&[4, 5, 6, 2], 4, 0).0).unwrap();
    fs::create_dir(src.join("x.nii.d")).unwrap();
    fs::write(src.join("x.nii.d/real.txt"), b"real").unwrap();
    fs::write(src.join("bad.nii"), b"not a nifti header").unwrap();
    fs::create_dir(src.join("dir.nii")).unwrap();
    std::os::unix::fs::symlink("a.nii", src.join("link.nii")).unwrap();
    let outside = src.parent().unwrap().join("outside.nii");
    fs::write(&outside, &a).unwrap();
    std::os::unix::fs::symlink(&outside, src.join("out.nii")).unwrap();
    // 5D: 3 x 2 volumes, flattened.
    fs::write(src.join("five.nii"), image(&[2, 2, 2, 3, 2], 5, 0).0).unwrap();
    // A real .nifuse in SOURCE is hidden by the control directory.
    fs::create_dir(src.join(".nifuse")).unwrap();
    fs::write(src.join(".nifuse/secret"), b"x").unwrap();
}

// ---------------------------------------------------------------- tree

pub fn check_reads(f: &Fs, ino: u64, whole: &[u8], what: &str) {
    let size = whole.len() as u64;
    assert_eq!(f.getattr(ino).unwrap().attr.size, size, "{what}: size");
    let fh = f.open(ino, libc::O_RDONLY).unwrap().fh;
    let cases: [(u64, u32); 16] = [
        (0, 0),
        (0, 100),
        (0, 352),
        (100, 252),
        (300, 100),
        (351, 2),
        (352, 1),
        (352, VOL as u32),
        (400, 10),
        (0, size as u32),
        (0, size as u32 + 1000),
        (size - 5, 100),
        (size - 1, 1),
        (size, 10),
        (size + 100, 10),
        (u64::MAX - 10, 5),
    ];
    for (off, len) in cases {
        let got = f
            .read(fh, off, len)
            .unwrap_or_else(|e| panic!("{what}: read {off}+{len}: {e}"));
        let start = off.min(size) as usize;
        let end = off.saturating_add(u64::from(len)).min(size) as usize;
        assert!(
            got == whole[start..end],
            "{what}: read {off}+{len} ({} bytes)",
            got.len()
        );
    }
    f.release(fh);
    assert_eq!(errno(f.read(fh, 0, 10)), libc::EBADF);
}
